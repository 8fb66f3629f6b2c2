/* request.c: turning client commands into backend meta commands and replies back. */
#include "request.h"

#include <resolv.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "conn.h"
#include "herd.h"
#include "ketama.h"
#include "log.h"
#include "stats.h"
#include "worker.h"

#define REQ_CACHE_MAX 4096
#define REQ_BUF_KEEP (16 * 1024)

static const char END_CRLF[] = "END\r\n";

/* A request from the worker's cache, or a new one. Returns NULL when out of memory. */
static struct request *request_get(struct worker *w)
{
    struct request *r = w->free_reqs;
    if (r) {
        w->free_reqs = r->next;
        w->nfree_reqs--;
    } else {
        r = calloc(1, sizeof(*r));
        if (r == NULL)
            return NULL;
    }
    r->next = NULL;
    r->done = r->noreply = r->quiet = false;
    r->nops = r->pending = r->nfailed = 0;
    r->outlen = 0;
    r->err = NULL;
    return r;
}

/* Make room for n ops and reset them. Returns MG_OK or MG_ERR. */
static int request_ops(struct request *r, uint32_t n)
{
    if (n > r->ops_cap) {
        struct op *ops = realloc(r->ops, n * sizeof(struct op));
        if (ops == NULL)
            return MG_ERR;
        memset(ops + r->ops_cap, 0, (n - r->ops_cap) * sizeof(struct op));
        r->ops = ops;
        r->ops_cap = n;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct op *op = &r->ops[i];
        op->req = r;
        op->be = NULL;
        op->next = NULL;
        op->status = MG_R_NONE;
        op->out.off = op->out.len = 0;
        op->pol = NULL;
        op->hw = NULL;
        op->followers = op->next_follower = NULL;
        op->leading = false;
    }
    r->nops = n;
    return MG_OK;
}

void request_release(struct request *r)
{
    struct worker *w = r->w;
    for (uint32_t i = 0; i < r->ops_cap; i++) {
        buf_reset(&r->ops[i].out, REQ_BUF_KEEP);
        buf_reset(&r->ops[i].key, REQ_BUF_KEEP);
    }
    buf_reset(&r->out, REQ_BUF_KEEP);
#ifndef MG_SANITIZE
    if (w->nfree_reqs < REQ_CACHE_MAX && r->ops_cap <= 64) {
        r->next = w->free_reqs;
        w->free_reqs = r;
        w->nfree_reqs++;
        return;
    }
#else
    MG_UNUSED(w);
#endif
    for (uint32_t i = 0; i < r->ops_cap; i++) {
        buf_free(&r->ops[i].out);
        buf_free(&r->ops[i].key);
    }
    free(r->ops);
    buf_free(&r->out);
    free(r);
}

void request_cache_drain(void *worker)
{
    struct worker *w = worker;
    while (w->free_reqs) {
        struct request *r = w->free_reqs;
        w->free_reqs = r->next;
        for (uint32_t i = 0; i < r->ops_cap; i++) {
            buf_free(&r->ops[i].out);
            buf_free(&r->ops[i].key);
        }
        free(r->ops);
        buf_free(&r->out);
        free(r);
    }
    w->nfree_reqs = 0;
}

static bool is_retrieval(enum mg_cmd cmd)
{
    return cmd == MG_CMD_GET || cmd == MG_CMD_GETS || cmd == MG_CMD_GAT || cmd == MG_CMD_GATS;
}

/* Every op of r answered: settle the reply and hand it to the connection. */
static void request_complete(struct request *r)
{
    struct worker *w = r->w;
    if (r->c == NULL) { /* the gateway's own request: nobody to answer */
        request_release(r);
        return;
    }
    if (is_retrieval(r->cmd)) {
        if (r->nfailed && r->nfailed == r->nops) {
            buf_append_str(&r->out, r->err);
            buf_append(&r->out, "\r\n", 2);
        } else {
            if (r->nfailed)
                STAT_ADD(w->st.get_errors, r->nfailed);
            buf_append(&r->out, END_CRLF, sizeof(END_CRLF) - 1);
        }
    } else if (r->cmd == MG_CMD_FLUSH_ALL) {
        if (r->nfailed) {
            buf_append_str(&r->out, r->err);
            buf_append(&r->out, "\r\n", 2);
        } else {
            buf_append(&r->out, "OK\r\n", 4);
        }
    }
    size_t total = 0;
    for (uint32_t i = 0; i < r->nops; i++) {
        if (r->noreply)
            r->ops[i].out.off = r->ops[i].out.len = 0;
        total += buf_unread(&r->ops[i].out);
    }
    if (r->noreply)
        r->out.off = r->out.len = 0;
    r->outlen = total + buf_unread(&r->out);
    conn_request_done(r->c, r);
}

static void op_finish(struct op *op)
{
    struct request *r = op->req;
    if (--r->pending == 0)
        request_complete(r);
}

/* Append s and \r\n to b. */
static void put_line(struct buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n + 2) != MG_OK)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len++] = '\r';
    b->data[b->len++] = '\n';
}

void op_reply_miss(struct op *op)
{
    op->out.off = op->out.len = 0;
    STAT_INC(op->req->w->st.get_misses);
    op_finish(op);
}

void op_fail(struct op *op, const char *err)
{
    struct request *r = op->req;
    herd_forget(op);
    for (struct op *f = herd_unlead(r->w, op), *next; f; f = next) {
        next = f->next_follower;
        op_fail(f, err);
    }
    op->out.off = op->out.len = 0;
    op->status = MG_R_NONE;
    STAT_INC(r->w->st.backend_errors);
    if (is_retrieval(r->cmd) || r->cmd == MG_CMD_FLUSH_ALL) {
        r->nfailed++;
        if (r->err == NULL)
            r->err = err;
    } else {
        put_line(&op->out, err, strlen(err));
    }
    op_finish(op);
}

/* Pass a reply through verbatim (meta clients, and errors). */
static void out_verbatim(struct op *op, const struct mg_meta_reply *rep)
{
    put_line(&op->out, rep->line.p, rep->line.len);
    if (rep->status == MG_R_VA) {
        buf_append(&op->out, rep->data.p, rep->data.len);
        buf_append(&op->out, "\r\n", 2);
    }
}

/* Finish a VALUE line begun at dispatch ("VALUE <key> ") from a VA reply. */
static void out_value(struct op *op, const struct mg_meta_reply *rep, bool with_cas)
{
    struct mg_slice f = { "0", 1 }, cas = { "0", 1 };
    mg_meta_flag(rep->flags, 'f', &f);
    if (f.len == 0)
        f = (struct mg_slice){ "0", 1 };
    if (with_cas)
        mg_meta_flag(rep->flags, 'c', &cas);
    struct buf *b = &op->out;
    if (buf_reserve(b, f.len + cas.len + 32 + rep->data.len) != MG_OK)
        return;
    memcpy(b->data + b->len, f.p, f.len);
    b->len += f.len;
    b->data[b->len++] = ' ';
    buf_append_u64(b, rep->data.len);
    if (with_cas) {
        b->data[b->len++] = ' ';
        memcpy(b->data + b->len, cas.p, cas.len);
        b->len += cas.len;
    }
    memcpy(b->data + b->len, "\r\n", 2);
    b->len += 2;
    memcpy(b->data + b->len, rep->data.p, rep->data.len);
    b->len += rep->data.len;
    memcpy(b->data + b->len, "\r\n", 2);
    b->len += 2;
}

/* A reply that does not fit the command: a backend error line is passed on, anything else
 * becomes a generic error. */
static void out_unexpected(struct op *op, const struct mg_meta_reply *rep)
{
    struct request *r = op->req;
    if (is_retrieval(r->cmd) || r->cmd == MG_CMD_FLUSH_ALL) {
        op->out.off = op->out.len = 0;
        r->nfailed++;
        if (r->err == NULL)
            r->err = "SERVER_ERROR backend error";
        return;
    }
    if (rep->status == MG_R_CLIENT_ERROR || rep->status == MG_R_SERVER_ERROR ||
        rep->status == MG_R_ERROR)
        put_line(&op->out, rep->line.p, rep->line.len);
    else
        put_line(&op->out, "SERVER_ERROR unexpected backend reply", 37);
}

/* Answer a classic get under a staleness policy as herd decided. */
static void herd_answer(struct op *op, const struct mg_meta_reply *rep, enum herd_verdict v)
{
    struct stats *st = &op->req->w->st;
    switch (v) {
    case HERD_PENDING:
        return; /* herd answers it later */
    case HERD_HIT:
        STAT_INC(st->get_hits);
        out_value(op, rep, op->req->cmd == MG_CMD_GETS);
        break;
    case HERD_MISS:
        STAT_INC(st->get_misses);
        op->out.off = op->out.len = 0;
        break;
    case HERD_ERROR:
        out_unexpected(op, rep);
        break;
    }
    op_finish(op);
}

#define OUT_LIT(op, s) put_line(&(op)->out, s, sizeof(s) - 1)

void op_reply(struct op *op, const struct mg_meta_reply *rep)
{
    struct request *r = op->req;
    struct stats *st = &r->w->st;
    enum mg_rstatus s = rep->status;
    op->status = s;
    if (op->pol && is_retrieval(r->cmd)) { /* a classic get under a staleness policy */
        struct op *f = herd_unlead(r->w, op);
        herd_answer(op, rep, herd_on_get_reply(op, rep));
        while (f) {
            struct op *next = f->next_follower;
            herd_answer(f, rep, herd_on_follower_reply(f, rep));
            f = next;
        }
        return;
    }
    switch (r->cmd) {
    case MG_CMD_GET:
    case MG_CMD_GETS:
    case MG_CMD_GAT:
    case MG_CMD_GATS:
        if (s == MG_R_VA) {
            STAT_INC(st->get_hits);
            out_value(op, rep, r->cmd == MG_CMD_GETS || r->cmd == MG_CMD_GATS);
        } else if (s == MG_R_EN) {
            STAT_INC(st->get_misses);
            op->out.off = op->out.len = 0;
        } else {
            out_unexpected(op, rep);
        }
        break;
    case MG_CMD_SET:
    case MG_CMD_ADD:
    case MG_CMD_REPLACE:
    case MG_CMD_APPEND:
    case MG_CMD_PREPEND:
    case MG_CMD_CAS:
        if (s == MG_R_HD) {
            OUT_LIT(op, "STORED");
            if (r->cmd == MG_CMD_CAS)
                STAT_INC(st->cas_hits);
            if (op->pol)
                herd_on_stored(r->w, buf_head(&op->key), buf_unread(&op->key));
        } else if (s == MG_R_NS) {
            OUT_LIT(op, "NOT_STORED");
        } else if (s == MG_R_EX) {
            OUT_LIT(op, "EXISTS");
            STAT_INC(st->cas_badval);
        } else if (s == MG_R_NF) {
            OUT_LIT(op, "NOT_FOUND");
            STAT_INC(st->cas_misses);
        } else {
            out_unexpected(op, rep);
        }
        break;
    case MG_CMD_DELETE:
        if (s == MG_R_HD) {
            OUT_LIT(op, "DELETED");
            STAT_INC(st->delete_hits);
        } else if (s == MG_R_NF) {
            OUT_LIT(op, "NOT_FOUND");
            STAT_INC(st->delete_misses);
        } else {
            out_unexpected(op, rep);
        }
        break;
    case MG_CMD_INCR:
    case MG_CMD_DECR:
        if (s == MG_R_VA) {
            put_line(&op->out, rep->data.p, rep->data.len);
            if (r->cmd == MG_CMD_INCR)
                STAT_INC(st->incr_hits);
            else
                STAT_INC(st->decr_hits);
        } else if (s == MG_R_NF) {
            OUT_LIT(op, "NOT_FOUND");
            if (r->cmd == MG_CMD_INCR)
                STAT_INC(st->incr_misses);
            else
                STAT_INC(st->decr_misses);
        } else {
            out_unexpected(op, rep);
        }
        break;
    case MG_CMD_TOUCH:
        if (s == MG_R_HD) {
            OUT_LIT(op, "TOUCHED");
            STAT_INC(st->touch_hits);
        } else if (s == MG_R_EN) {
            OUT_LIT(op, "NOT_FOUND");
            STAT_INC(st->touch_misses);
        } else {
            out_unexpected(op, rep);
        }
        break;
    case MG_CMD_FLUSH_ALL:
        if (s != MG_R_OK)
            out_unexpected(op, rep);
        break;
    default: /* meta commands: verbatim, minus what q hides */
        /* as memcached's q: mg hides EN; ms and md hide HD; ma hides HD and VA */
        if (r->quiet && ((s == MG_R_EN && r->cmd == MG_CMD_MG) ||
                         (s == MG_R_HD && r->cmd != MG_CMD_MG) ||
                         (s == MG_R_VA && r->cmd == MG_CMD_MA)))
            break;
        out_verbatim(op, rep);
        break;
    }
    op_finish(op);
}

/* The backend that owns key (and the staleness policy for it in *pol), or NULL after
 * failing op when that backend is ejected. */
static struct backend *op_backend(struct worker *w, struct op *op, const char *key, size_t klen,
                                  const struct stale_policy **pol)
{
    const struct pool *p = config_route(w->cfg, key, klen, pol);
    uint32_t i = p->nservers == 1 ? 0 : ketama_pick(p->ring, key, klen);
    struct backend *b = worker_backend(w, p->servers[i]->id);
    if (MG_UNLIKELY(!backend_usable(b))) {
        op_fail(op, "SERVER_ERROR backend down");
        return NULL;
    }
    return b;
}

/* Keep the backend key on op for herd bookkeeping that outlives the parse. */
static bool op_keep_key(struct op *op, const char *key, size_t klen)
{
    op->key.off = op->key.len = 0;
    return buf_append(&op->key, key, klen) == MG_OK;
}

/* Small helpers to render into a backend's write buffer, after a buf_reserve. */
static inline void put(struct buf *b, const char *s, size_t n)
{
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static inline void put_u64(struct buf *b, uint64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof(tmp), *p = e;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(b, p, (size_t)(e - p));
}

static inline void put_i64(struct buf *b, int64_t v)
{
    if (v < 0) {
        b->data[b->len++] = '-';
        put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(b, (uint64_t)v);
    }
}

/* Start r: enqueue on c with n ops. Returns NULL (after answering) when out of memory. */
static struct request *request_begin(struct conn *c, enum mg_cmd cmd, uint32_t n, bool noreply)
{
    struct request *r = request_get(c->w);
    if (r == NULL || request_ops(r, n) != MG_OK) {
        if (r) {
            r->w = c->w;
            request_release(r);
        }
        log_error("out of memory");
        return NULL;
    }
    r->w = c->w;
    r->cmd = cmd;
    r->noreply = noreply;
    r->pending = n + 1; /* +1 held until every op went out: no completion mid-dispatch */
    conn_enqueue(c, r);
    return r;
}

struct request *request_internal(struct worker *w, uint32_t n)
{
    struct request *r = request_get(w);
    if (r == NULL)
        return NULL;
    r->w = w;
    r->c = NULL;
    if (request_ops(r, n) != MG_OK) {
        request_release(r);
        return NULL;
    }
    r->cmd = MG_CMD_NONE;
    r->pending = n + 1;
    return r;
}

static void request_end_dispatch(struct request *r)
{
    if (--r->pending == 0)
        request_complete(r);
}

void request_internal_go(struct request *r) { request_end_dispatch(r); }

static void dispatch_retrieval(struct conn *c, const struct mg_text_req *t)
{
    struct worker *w = c->w;
    struct request *r = request_begin(c, t->cmd, t->nkeys, false);
    if (r == NULL)
        return;
    bool cas = t->cmd == MG_CMD_GETS || t->cmd == MG_CMD_GATS;
    bool touch = t->cmd == MG_CMD_GAT || t->cmd == MG_CMD_GATS;
    uint32_t pos = 0, i = 0;
    struct mg_slice k;
    while (i < r->nops && mg_text_next_token(t->keys, &pos, &k)) {
        struct op *op = &r->ops[i++];
        STAT_INC(w->st.cmd_get);
        if (touch)
            STAT_INC(w->st.cmd_touch);
        const struct stale_policy *pol;
        struct backend *b = op_backend(w, op, k.p, k.len, &pol);
        if (b == NULL)
            continue;
        if (buf_reserve(&b->wbuf, k.len + HERD_GET_EXTRA) != MG_OK ||
            buf_reserve(&op->out, k.len + 48) != MG_OK) {
            op_fail(op, "SERVER_ERROR out of memory");
            continue;
        }
        put(&op->out, "VALUE ", 6);
        put(&op->out, k.p, k.len);
        op->out.data[op->out.len++] = ' ';
        struct buf *wb = &b->wbuf;
        if (pol && !touch && op_keep_key(op, k.p, k.len)) {
            op->pol = pol;
            op->be = b;
            if (pol->coalesce && herd_follow(w, op))
                continue; /* answered with the identical get already on the wire */
            herd_render_get(wb, k.p, k.len, false, pol);
            backend_push(b, op);
            if (pol->coalesce)
                herd_lead(w, op);
            continue;
        }
        put(wb, "mg ", 3);
        put(wb, k.p, k.len);
        put(wb, cas ? " v f c" : " v f", cas ? 6 : 4);
        if (touch) {
            put(wb, " T", 2);
            put_i64(wb, t->exptime);
        }
        put(wb, "\r\n", 2);
        backend_push(b, op);
    }
    while (i < r->nops) /* the parser counted more keys than we found: never leave one hanging */
        op_fail(&r->ops[i++], "SERVER_ERROR internal error");
    request_end_dispatch(r);
}

static void dispatch_storage(struct conn *c, const struct mg_text_req *t)
{
    struct worker *w = c->w;
    struct request *r = request_begin(c, t->cmd, 1, t->noreply);
    if (r == NULL)
        return;
    STAT_INC(w->st.cmd_set);
    struct op *op = &r->ops[0];
    const struct stale_policy *pol;
    struct backend *b = op_backend(w, op, t->key.p, t->key.len, &pol);
    if (b != NULL) {
        struct buf *wb = &b->wbuf;
        int64_t ttl = t->exptime;
        /* append/prepend/cas bypass the herd logic (they keep the item's TTL or are
         * compare-and-swap by the client); set/add/replace get the grace period */
        if (pol && (t->cmd == MG_CMD_SET || t->cmd == MG_CMD_ADD || t->cmd == MG_CMD_REPLACE)) {
            ttl = herd_store_ttl(t->exptime, pol);
            if (op_keep_key(op, t->key.p, t->key.len))
                op->pol = pol; /* so a STORED wakes local waiters */
        }
        if (buf_reserve(wb, t->key.len + t->data.len + 96) != MG_OK) {
            op_fail(op, "SERVER_ERROR out of memory");
        } else {
            static const char *modes[] = {
                [MG_CMD_SET] = "", [MG_CMD_ADD] = " ME", [MG_CMD_REPLACE] = " MR",
                [MG_CMD_APPEND] = " MA", [MG_CMD_PREPEND] = " MP", [MG_CMD_CAS] = "",
            };
            put(wb, "ms ", 3);
            put(wb, t->key.p, t->key.len);
            wb->data[wb->len++] = ' ';
            put_u64(wb, t->data.len);
            put(wb, " F", 2);
            put_u64(wb, t->flags);
            put(wb, " T", 2);
            put_i64(wb, ttl);
            put(wb, modes[t->cmd], strlen(modes[t->cmd]));
            if (t->cmd == MG_CMD_CAS) {
                put(wb, " C", 2);
                put_u64(wb, t->cas);
            }
            put(wb, "\r\n", 2);
            put(wb, t->data.p, t->data.len);
            put(wb, "\r\n", 2);
            backend_push(b, op);
        }
    }
    request_end_dispatch(r);
}

/* delete, incr, decr, touch */
static void dispatch_keyed(struct conn *c, const struct mg_text_req *t)
{
    struct worker *w = c->w;
    struct request *r = request_begin(c, t->cmd, 1, t->noreply);
    if (r == NULL)
        return;
    if (t->cmd == MG_CMD_TOUCH)
        STAT_INC(w->st.cmd_touch);
    struct op *op = &r->ops[0];
    const struct stale_policy *pol;
    struct backend *b = op_backend(w, op, t->key.p, t->key.len, &pol);
    if (b != NULL) {
        struct buf *wb = &b->wbuf;
        if (buf_reserve(wb, t->key.len + 64) != MG_OK) {
            op_fail(op, "SERVER_ERROR out of memory");
        } else {
            put(wb, t->cmd == MG_CMD_DELETE ? "md " : t->cmd == MG_CMD_TOUCH ? "mg " : "ma ", 3);
            put(wb, t->key.p, t->key.len);
            if (t->cmd == MG_CMD_TOUCH) {
                put(wb, " T", 2);
                put_i64(wb, herd_store_ttl(t->exptime, pol));
            } else if (t->cmd == MG_CMD_DELETE && pol && pol->mark_stale) {
                /* fill on invalidate: the next reader refreshes, the rest get stale */
                put(wb, " I", 2);
                if (pol->grace) {
                    put(wb, " T", 2);
                    put_u64(wb, pol->grace);
                }
                STAT_INC(w->st.herd_marked_stale);
            } else if (t->cmd != MG_CMD_DELETE) {
                put(wb, t->cmd == MG_CMD_DECR ? " v MD D" : " v D", t->cmd == MG_CMD_DECR ? 7 : 4);
                put_u64(wb, t->delta);
            }
            put(wb, "\r\n", 2);
            backend_push(b, op);
        }
    }
    request_end_dispatch(r);
}

/* True when the meta flags contain the lone flag letter f. */
static bool meta_has_flag(struct mg_slice args, char f)
{
    uint32_t pos = 0;
    struct mg_slice tok;
    while (mg_text_next_token(args, &pos, &tok))
        if (tok.len == 1 && tok.p[0] == f)
            return true;
    return false;
}

/* mg/ms/md/ma/me: forwarded with their flags; q is kept here (hidden replies are dropped
 * by the gateway) so every backend request has exactly one reply to match. */
static void dispatch_meta(struct conn *c, const struct mg_text_req *t)
{
    static const char *names[] = {
        [MG_CMD_MG] = "mg ", [MG_CMD_MS] = "ms ", [MG_CMD_MD] = "md ",
        [MG_CMD_MA] = "ma ", [MG_CMD_ME] = "me ",
    };
    struct worker *w = c->w;
    struct request *r = request_begin(c, t->cmd, 1, false);
    if (r == NULL)
        return;
    STAT_INC(w->st.cmd_meta);
    struct op *op = &r->ops[0];
    const struct stale_policy *pol;
    /* a base64 key (b flag) is placed by what it decodes to, as memcached stores it */
    struct mg_slice where = t->key;
    unsigned char raw[MG_KEY_MAX + 1];
    if (meta_has_flag(t->args, 'b')) {
        char enc[MG_KEY_MAX + 1];
        memcpy(enc, t->key.p, t->key.len);
        enc[t->key.len] = '\0';
        int n = b64_pton(enc, raw, sizeof(raw));
        if (n <= 0) {
            op_fail(op, "CLIENT_ERROR bad data chunk");
            request_end_dispatch(r);
            return;
        }
        where = (struct mg_slice){ (const char *)raw, (uint32_t)n };
    }
    struct backend *b = op_backend(w, op, where.p, where.len, &pol);
    if (b != NULL) {
        struct buf *wb = &b->wbuf;
        size_t need = t->key.len + t->args.len + t->data.len + 48;
        if (buf_reserve(wb, need) != MG_OK) {
            op_fail(op, "SERVER_ERROR out of memory");
        } else {
            put(wb, names[t->cmd], 3);
            put(wb, t->key.p, t->key.len);
            if (t->cmd == MG_CMD_MS) {
                wb->data[wb->len++] = ' ';
                put_u64(wb, t->data.len);
            }
            uint32_t pos = 0;
            struct mg_slice tok;
            while (mg_text_next_token(t->args, &pos, &tok)) {
                if (tok.len == 1 && tok.p[0] == 'q') {
                    r->quiet = true;
                    continue;
                }
                wb->data[wb->len++] = ' ';
                put(wb, tok.p, tok.len);
            }
            put(wb, "\r\n", 2);
            if (t->cmd == MG_CMD_MS) {
                put(wb, t->data.p, t->data.len);
                put(wb, "\r\n", 2);
            }
            backend_push(b, op);
        }
    }
    request_end_dispatch(r);
}

/* flush_all goes to every server of the current config. */
static void dispatch_flush(struct conn *c, const struct mg_text_req *t)
{
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    struct request *r = request_begin(c, t->cmd, cfg->nservers, t->noreply);
    if (r == NULL)
        return;
    STAT_INC(w->st.cmd_flush);
    for (uint32_t i = 0; i < cfg->nservers; i++) {
        struct op *op = &r->ops[i];
        struct backend *b = worker_backend(w, i);
        if (!backend_usable(b)) {
            op_fail(op, "SERVER_ERROR backend down");
            continue;
        }
        if (t->num > 0)
            buf_printf(&b->wbuf, "flush_all %lld\r\n", (long long)t->num);
        else
            buf_append(&b->wbuf, "flush_all\r\n", 11);
        backend_push(b, op);
    }
    request_end_dispatch(r);
}

void request_drop_key(struct conn *c, const struct mg_text_req *t)
{
    struct worker *w = c->w;
    if (t->key.len == 0)
        return;
    struct request *r = request_internal(w, 1);
    if (r == NULL)
        return;
    const struct stale_policy *pol;
    struct backend *b = op_backend(w, &r->ops[0], t->key.p, t->key.len, &pol);
    if (b != NULL) {
        if (buf_reserve(&b->wbuf, t->key.len + 8) != MG_OK) {
            op_fail(&r->ops[0], "SERVER_ERROR out of memory");
        } else {
            put(&b->wbuf, "md ", 3);
            put(&b->wbuf, t->key.p, t->key.len);
            put(&b->wbuf, "\r\n", 2);
            backend_push(b, &r->ops[0]);
        }
    }
    request_internal_go(r);
}

void request_reply_line(struct conn *c, const char *line)
{
    struct request *r = request_begin(c, MG_CMD_NONE, 0, false);
    if (r == NULL)
        return;
    put_line(&r->out, line, strlen(line));
    request_end_dispatch(r);
}

void request_dispatch(struct conn *c, const struct mg_text_req *t)
{
    switch (t->cmd) {
    case MG_CMD_GET:
    case MG_CMD_GETS:
    case MG_CMD_GAT:
    case MG_CMD_GATS:
        dispatch_retrieval(c, t);
        break;
    case MG_CMD_SET:
    case MG_CMD_ADD:
    case MG_CMD_REPLACE:
    case MG_CMD_APPEND:
    case MG_CMD_PREPEND:
    case MG_CMD_CAS:
        dispatch_storage(c, t);
        break;
    case MG_CMD_DELETE:
    case MG_CMD_INCR:
    case MG_CMD_DECR:
    case MG_CMD_TOUCH:
        dispatch_keyed(c, t);
        break;
    case MG_CMD_MG:
    case MG_CMD_MS:
    case MG_CMD_MD:
    case MG_CMD_MA:
    case MG_CMD_ME:
        dispatch_meta(c, t);
        break;
    case MG_CMD_MN:
        request_reply_line(c, "MN");
        break;
    case MG_CMD_FLUSH_ALL:
        dispatch_flush(c, t);
        break;
    case MG_CMD_VERSION:
        request_reply_line(c, "VERSION " MG_VERSION_REPLY);
        break;
    case MG_CMD_VERBOSITY:
        if (!t->noreply)
            request_reply_line(c, "OK");
        break;
    case MG_CMD_STATS: {
        struct request *r = request_begin(c, MG_CMD_STATS, 0, false);
        if (r == NULL)
            return;
        stats_render(c->w, t->args, &r->out);
        request_end_dispatch(r);
        break;
    }
    case MG_CMD_QUIT:
        c->close_after_flush = true;
        ev_io_stop(c->w->loop, &c->rio);
        worker_dirty_conn(c->w, c); /* closes once earlier replies are out */
        break;
    default:
        request_reply_line(c, "ERROR");
        break;
    }
}
