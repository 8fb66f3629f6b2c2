/* proto_bin.c: memcached's binary protocol from clients (parser and reply renderer). */
#include "proto_bin.h"

#include <string.h>

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t rd64(const unsigned char *p)
{
    return ((uint64_t)rd32(p) << 32) | rd32(p + 4);
}

static void wr16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void wr32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void wr64(unsigned char *p, uint64_t v)
{
    wr32(p, (uint32_t)(v >> 32));
    wr32(p + 4, (uint32_t)v);
}

static bool is_quiet(uint8_t op)
{
    switch (op) {
    case MG_BIN_GETQ:
    case MG_BIN_GETKQ:
    case MG_BIN_GATQ:
    case MG_BIN_GATKQ:
    case MG_BIN_SETQ:
    case MG_BIN_ADDQ:
    case MG_BIN_REPLACEQ:
    case MG_BIN_DELETEQ:
    case MG_BIN_INCRQ:
    case MG_BIN_DECRQ:
    case MG_BIN_QUITQ:
    case MG_BIN_FLUSHQ:
    case MG_BIN_APPENDQ:
    case MG_BIN_PREPENDQ:
        return true;
    default:
        return false;
    }
}

/* An answer that keeps the connection: drop what is left of the packet after its header,
 * extras and key (the caller checked they are there). */
static int bin_refuse(struct mg_bin_req *req, uint16_t status, size_t head, uint32_t body,
                      size_t *consumed)
{
    req->status = status;
    *consumed = MG_BIN_HDR + head;
    req->t.swallow = body - head;
    return MG_ESWALLOW;
}

/* A request memcached answers and then closes on (a protocol error). */
static int bin_close(struct mg_bin_req *req, uint16_t status)
{
    req->status = status;
    return MG_ECLOSE;
}

int mg_bin_parse(const char *buf, size_t len, uint32_t value_max, struct mg_bin_req *req,
                 size_t *consumed)
{
    const unsigned char *h = (const unsigned char *)buf;
    *consumed = 0;
    if (len && h[0] != MG_BIN_REQ) { /* not a binary request: no need to wait for more */
        memset(&req->t, 0, sizeof(req->t));
        memset(&req->ctx, 0, sizeof(req->ctx));
        req->status = 0;
        return MG_ECLOSE;
    }
    if (len < MG_BIN_HDR)
        return MG_EAGAIN;
    memset(&req->t, 0, sizeof(req->t));
    req->status = 0;
    req->gateway = false;
    req->body = (struct mg_slice){ NULL, 0 };
    struct mg_bin_ctx *x = &req->ctx;
    x->opcode = h[1];
    x->quiet = is_quiet(h[1]);
    x->with_key = x->vivify = false;
    x->klen = 0;
    memcpy(&x->opaque, h + 12, 4);
    if (h[0] != MG_BIN_REQ)
        return bin_close(req, 0); /* memcached closes without a word */
    uint16_t klen = rd16(h + 2);
    uint8_t elen = h[4];
    uint32_t blen = rd32(h + 8);
    uint64_t cas = rd64(h + 16);
    if ((uint32_t)klen + elen > blen)
        return bin_close(req, MG_BIN_UNKNOWN); /* as memcached */
    if (klen > MG_KEY_MAX)
        return bin_close(req, MG_BIN_EINVAL);
    size_t head = (size_t)elen + klen; /* extras and key: always read before deciding */
    if (len < MG_BIN_HDR + head)
        return MG_EAGAIN;
    const unsigned char *ext = h + MG_BIN_HDR;
    struct mg_text_req *t = &req->t;
    t->key = (struct mg_slice){ (const char *)ext + elen, klen };
    uint32_t vlen = blen - (uint32_t)head;
    bool store = false;
    switch (x->opcode) {
    case MG_BIN_GET:
    case MG_BIN_GETQ:
    case MG_BIN_GETK:
    case MG_BIN_GETKQ:
        if (elen != 0 || klen == 0 || blen != klen)
            return bin_close(req, MG_BIN_EINVAL);
        t->cmd = MG_CMD_GETS; /* the reply carries the CAS */
        x->with_key = x->opcode == MG_BIN_GETK || x->opcode == MG_BIN_GETKQ;
        break;
    case MG_BIN_TOUCH:
    case MG_BIN_GAT:
    case MG_BIN_GATQ:
    case MG_BIN_GATK:
    case MG_BIN_GATKQ:
        if (elen != 4 || klen == 0 || vlen != 0)
            return bin_close(req, MG_BIN_EINVAL);
        t->cmd = MG_CMD_GATS; /* touch too: memcached answers its flags and CAS */
        t->exptime = rd32(ext);
        x->with_key = x->opcode == MG_BIN_GATK || x->opcode == MG_BIN_GATKQ;
        break;
    case MG_BIN_SET:
    case MG_BIN_SETQ:
    case MG_BIN_ADD:
    case MG_BIN_ADDQ:
    case MG_BIN_REPLACE:
    case MG_BIN_REPLACEQ:
        if (elen != 8 || klen == 0)
            return bin_close(req, MG_BIN_EINVAL);
        t->flags = rd32(ext);
        t->exptime = rd32(ext + 4);
        t->cmd = x->opcode == MG_BIN_SET || x->opcode == MG_BIN_SETQ   ? MG_CMD_SET
                 : x->opcode == MG_BIN_ADD || x->opcode == MG_BIN_ADDQ ? MG_CMD_ADD
                                                                       : MG_CMD_REPLACE;
        if (cas) {
            t->cmd = MG_CMD_CAS;
            t->cas = cas;
        }
        store = true;
        break;
    case MG_BIN_APPEND:
    case MG_BIN_APPENDQ:
    case MG_BIN_PREPEND:
    case MG_BIN_PREPENDQ:
        if (elen != 0 || klen == 0)
            return bin_close(req, MG_BIN_EINVAL);
        t->cmd = x->opcode == MG_BIN_APPEND || x->opcode == MG_BIN_APPENDQ ? MG_CMD_APPEND
                                                                           : MG_CMD_PREPEND;
        store = true;
        break;
    case MG_BIN_DELETE:
    case MG_BIN_DELETEQ:
        if (elen != 0 || klen == 0 || vlen != 0)
            return bin_close(req, MG_BIN_EINVAL);
        t->cmd = MG_CMD_DELETE;
        break;
    case MG_BIN_INCR:
    case MG_BIN_INCRQ:
    case MG_BIN_DECR:
    case MG_BIN_DECRQ: {
        if (elen != 20 || klen == 0 || vlen != 0)
            return bin_close(req, MG_BIN_EINVAL);
        t->cmd = x->opcode == MG_BIN_INCR || x->opcode == MG_BIN_INCRQ ? MG_CMD_INCR : MG_CMD_DECR;
        t->delta = rd64(ext);
        x->initial = rd64(ext + 8);
        uint32_t exp = rd32(ext + 16);
        x->vivify = exp != 0xffffffffu;
        x->vivify_ttl = exp;
        break;
    }
    case MG_BIN_FLUSH:
    case MG_BIN_FLUSHQ:
        if (klen != 0 || vlen != 0 || (elen != 0 && elen != 4))
            return bin_close(req, MG_BIN_EINVAL);
        t->cmd = MG_CMD_FLUSH_ALL;
        t->num = elen ? rd32(ext) : 0;
        break;
    case MG_BIN_NOOP:
    case MG_BIN_VERSION:
    case MG_BIN_QUIT:
    case MG_BIN_QUITQ:
    case MG_BIN_SASL_LIST:
        if (blen != 0)
            return bin_close(req, MG_BIN_EINVAL);
        t->cmd = x->opcode == MG_BIN_NOOP        ? MG_CMD_MN
                 : x->opcode == MG_BIN_VERSION   ? MG_CMD_VERSION
                 : x->opcode == MG_BIN_SASL_LIST ? MG_CMD_NONE
                                                 : MG_CMD_QUIT;
        req->gateway = x->opcode == MG_BIN_SASL_LIST;
        break;
    case MG_BIN_VERBOSITY:
        if (elen != 4 || klen != 0 || vlen != 0)
            return bin_close(req, MG_BIN_EINVAL);
        t->cmd = MG_CMD_VERBOSITY;
        t->num = rd32(ext);
        break;
    case MG_BIN_STAT:
        if (elen != 0 || vlen != 0)
            return bin_close(req, MG_BIN_EINVAL);
        t->cmd = MG_CMD_STATS;
        t->args = t->key;
        t->key = (struct mg_slice){ NULL, 0 };
        break;
    case MG_BIN_SASL_AUTH:
    case MG_BIN_SASL_STEP:
        if (elen != 0 || klen == 0)
            return bin_close(req, MG_BIN_EINVAL);
        if (vlen > 4096) /* a mechanism's data is a user and a password */
            return bin_refuse(req, MG_BIN_EINVAL, head, blen, consumed);
        req->gateway = true;
        break;
    default:
        return bin_refuse(req, MG_BIN_UNKNOWN, head, blen, consumed);
    }
    if (klen && !req->gateway && t->cmd != MG_CMD_STATS && !mg_text_key_ok(t->key.p, klen))
        return bin_refuse(req, MG_BIN_EINVAL, head, blen, consumed); /* meta keys are text */
    if (store && vlen > value_max) {
        req->t.vlen = vlen;
        return bin_refuse(req, MG_BIN_E2BIG, head, blen, consumed);
    }
    if (len - MG_BIN_HDR < blen)
        return MG_EAGAIN;
    if (store) {
        t->vlen = vlen;
        t->data = (struct mg_slice){ (const char *)ext + head, vlen };
    }
    if (req->gateway)
        req->body = (struct mg_slice){ (const char *)ext + head, vlen };
    if (t->key.len) {
        t->keys = t->key;
        t->nkeys = 1;
    }
    if (x->with_key) {
        x->klen = (uint8_t)klen;
        memcpy(x->key, t->key.p, klen);
    }
    t->line = (struct mg_slice){ buf, MG_BIN_HDR + blen };
    *consumed = MG_BIN_HDR + (size_t)blen;
    return MG_OK;
}

int mg_bin_packet(struct buf *out, const struct mg_bin_ctx *ctx, uint16_t status, uint64_t cas,
                  struct mg_slice extras, struct mg_slice key, struct mg_slice value)
{
    size_t body = (size_t)extras.len + key.len + value.len;
    if (buf_reserve(out, MG_BIN_HDR + body) != MG_OK)
        return MG_ERR;
    unsigned char *h = (unsigned char *)out->data + out->len;
    h[0] = MG_BIN_RES;
    h[1] = ctx->opcode;
    wr16(h + 2, (uint16_t)key.len);
    h[4] = (unsigned char)extras.len;
    h[5] = 0;
    wr16(h + 6, status);
    wr32(h + 8, (uint32_t)body);
    memcpy(h + 12, &ctx->opaque, 4);
    wr64(h + 16, cas);
    out->len += MG_BIN_HDR;
    if (extras.len)
        buf_put(out, extras.p, extras.len);
    if (key.len)
        buf_put(out, key.p, key.len);
    if (value.len)
        buf_put(out, value.p, value.len);
    return MG_OK;
}

const char *mg_bin_status_text(uint16_t status)
{
    switch (status) {
    case MG_BIN_ENOENT:
        return "Not found";
    case MG_BIN_EEXISTS:
        return "Data exists for key.";
    case MG_BIN_E2BIG:
        return "Too large.";
    case MG_BIN_EINVAL:
        return "Invalid arguments";
    case MG_BIN_NOT_STORED:
        return "Not stored.";
    case MG_BIN_DELTA_BADVAL:
        return "Non-numeric server-side value for incr or decr";
    case MG_BIN_AUTH_ERROR:
        return "Auth failure.";
    case MG_BIN_UNKNOWN:
        return "Unknown command";
    case MG_BIN_ENOMEM:
        return "Out of memory";
    default:
        return "";
    }
}

const char *mg_bin_status_line(uint16_t status)
{
    switch (status) {
    case MG_BIN_E2BIG:
        return "SERVER_ERROR object too large for cache";
    case MG_BIN_UNKNOWN:
        return "ERROR";
    case MG_BIN_AUTH_ERROR:
        return "CLIENT_ERROR unauthenticated";
    case MG_BIN_ENOMEM:
        return "SERVER_ERROR out of memory";
    default:
        return "CLIENT_ERROR bad command line format";
    }
}

static const struct mg_slice none = { NULL, 0 };

/* An error packet: the status's text as its body (or msg when given). */
static int bin_error(struct buf *out, const struct mg_bin_ctx *ctx, uint16_t status,
                     const char *msg, size_t n)
{
    if (msg == NULL) {
        msg = mg_bin_status_text(status);
        n = strlen(msg);
    }
    return mg_bin_packet(out, ctx, status, 0, none, none, (struct mg_slice){ msg, (uint32_t)n });
}

static bool starts(const char *p, size_t n, const char *s)
{
    size_t l = strlen(s);
    return n >= l && memcmp(p, s, l) == 0;
}

static bool line_is(const char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* The next space-separated token of p[*i..n) as a number (0 when not one). */
static uint64_t next_num(const char *p, size_t n, size_t *i)
{
    while (*i < n && p[*i] == ' ')
        (*i)++;
    uint64_t v = 0;
    while (*i < n && p[*i] >= '0' && p[*i] <= '9')
        v = v * 10 + (uint64_t)(p[(*i)++] - '0');
    return v;
}

/* A hit: "VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n". */
static int bin_value(struct buf *out, const struct mg_bin_ctx *ctx, const char *p, size_t n,
                     size_t ll)
{
    size_t i = 6;
    while (i < ll && p[i] != ' ')
        i++;
    uint32_t flags = (uint32_t)next_num(p, ll, &i);
    uint64_t bytes = next_num(p, ll, &i);
    uint64_t cas = next_num(p, ll, &i);
    if (ll + 2 + bytes > n)
        return bin_error(out, ctx, MG_BIN_EINTERNAL, "Bad reply", 9);
    unsigned char fl[4];
    wr32(fl, flags);
    struct mg_slice key = ctx->with_key ? (struct mg_slice){ ctx->key, ctx->klen } : none;
    struct mg_slice val = { p + ll + 2, (uint32_t)bytes };
    if (ctx->opcode == MG_BIN_TOUCH)
        val = none;
    return mg_bin_packet(out, ctx, MG_BIN_OK, cas, (struct mg_slice){ (const char *)fl, 4 }, key,
                         val);
}

/* "STAT <name> <value>" lines and END: a packet per line, an empty one to end. */
static int bin_stats(struct buf *out, const struct mg_bin_ctx *ctx, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t ll = nl ? (size_t)(nl - p) : n;
        size_t l = ll && p[ll - 1] == '\r' ? ll - 1 : ll;
        if (starts(p, l, "STAT ")) {
            const char *k = p + 5;
            const char *sp = memchr(k, ' ', l - 5);
            size_t kl = sp ? (size_t)(sp - k) : l - 5;
            struct mg_slice v = sp ? (struct mg_slice){ sp + 1, (uint32_t)(p + l - sp - 1) } : none;
            if (mg_bin_packet(out, ctx, MG_BIN_OK, 0, none, (struct mg_slice){ k, (uint32_t)kl },
                              v) != MG_OK)
                return MG_ERR;
        } else if (line_is(p, l, "END")) {
            return mg_bin_packet(out, ctx, MG_BIN_OK, 0, none, none, none);
        } else if (l) {
            return bin_error(out, ctx, MG_BIN_ENOENT, NULL, 0); /* an unknown group */
        }
        if (nl == NULL)
            break;
        n -= ll + 1;
        p = nl + 1;
    }
    return mg_bin_packet(out, ctx, MG_BIN_OK, 0, none, none, none);
}

int mg_bin_from_text(struct buf *out, const struct mg_bin_ctx *ctx, const char *p, size_t n,
                     uint64_t cas)
{
    if (n == 0)
        return MG_OK;
    const char *nl = memchr(p, '\n', n);
    size_t ll = nl ? (size_t)(nl - p) : n;
    if (ll && p[ll - 1] == '\r')
        ll--;
    uint8_t op = ctx->opcode;
    if (starts(p, ll, "VALUE "))
        return bin_value(out, ctx, p, n, ll);
    if (op == MG_BIN_STAT && !starts(p, ll, "ERROR") && !starts(p, ll, "CLIENT_ERROR") &&
        !starts(p, ll, "SERVER_ERROR"))
        return bin_stats(out, ctx, p, n);
    uint16_t st = MG_BIN_OK;
    struct mg_slice val = none, key = none;
    unsigned char num[8];
    if (line_is(p, ll, "END")) { /* a miss */
        if (ctx->quiet)
            return MG_OK;
        if (ctx->with_key)
            return mg_bin_packet(out, ctx, MG_BIN_ENOENT, 0, none,
                                 (struct mg_slice){ ctx->key, ctx->klen }, none);
        return bin_error(out, ctx, MG_BIN_ENOENT, NULL, 0);
    } else if (line_is(p, ll, "STORED") || line_is(p, ll, "DELETED") || line_is(p, ll, "TOUCHED") ||
               line_is(p, ll, "OK") || line_is(p, ll, "MN")) {
        st = MG_BIN_OK;
    } else if (starts(p, ll, "OK ")) { /* the gateway's own answers with a body (SASL) */
        val = (struct mg_slice){ p + 3, (uint32_t)(ll - 3) };
    } else if (starts(p, ll, "VERSION ")) {
        val = (struct mg_slice){ p + 8, (uint32_t)(ll - 8) };
    } else if (ll && p[0] >= '0' && p[0] <= '9') { /* incr/decr's new value */
        size_t i = 0;
        wr64(num, next_num(p, ll, &i));
        val = (struct mg_slice){ (const char *)num, 8 };
    } else if (line_is(p, ll, "NOT_STORED")) {
        st = op == MG_BIN_ADD || op == MG_BIN_ADDQ           ? MG_BIN_EEXISTS
             : op == MG_BIN_REPLACE || op == MG_BIN_REPLACEQ ? MG_BIN_ENOENT
                                                             : MG_BIN_NOT_STORED;
    } else if (line_is(p, ll, "EXISTS")) {
        st = MG_BIN_EEXISTS;
    } else if (line_is(p, ll, "NOT_FOUND")) {
        st = MG_BIN_ENOENT;
    } else if (line_is(p, ll, "ERROR")) {
        st = MG_BIN_UNKNOWN;
    } else if (starts(p, ll, "CLIENT_ERROR cannot increment")) {
        st = MG_BIN_DELTA_BADVAL;
    } else if (starts(p, ll, "CLIENT_ERROR unauthenticated")) {
        st = MG_BIN_AUTH_ERROR;
    } else if (starts(p, ll, "CLIENT_ERROR")) {
        st = MG_BIN_EINVAL;
    } else if (starts(p, ll, "SERVER_ERROR object too large")) {
        st = MG_BIN_E2BIG;
    } else if (starts(p, ll, "SERVER_ERROR out of memory")) {
        st = MG_BIN_ENOMEM;
    } else {
        size_t skip = starts(p, ll, "SERVER_ERROR ") ? 13 : 0;
        return bin_error(out, ctx, MG_BIN_EINTERNAL, p + skip, ll - skip);
    }
    if (st != MG_BIN_OK)
        return bin_error(out, ctx, st, NULL, 0);
    if (ctx->quiet)
        return MG_OK;
    return mg_bin_packet(out, ctx, st, cas, none, key, val);
}
