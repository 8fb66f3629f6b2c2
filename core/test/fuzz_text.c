/* fuzz_text.c: fuzz target for the client request parser, mg_text_parse, driven like a connection.
 *
 * The stream (see fuzz.h for the input layout) is delivered three ways: all at once, in
 * two pieces split where the input says, and one byte at a time. Each delivery is parsed
 * the way conn.c does it: parse from the first unconsumed byte, drop *consumed bytes,
 * after MG_ESWALLOW drop req.swallow more (across deliveries if they have not arrived),
 * wait at MG_EAGAIN, stop for good at MG_ECLOSE. The three runs must see the same
 * requests at the same stream offsets: an incremental parser's answer may not depend on
 * how the bytes arrive. Every call is also checked for what callers rely on (see
 * check_call). The unconsumed bytes sit at the very end of a heap block of the stream's
 * size, so ASan catches any read past them.
 *
 *   make fuzz FUZZ_TARGETS=fuzz_text        build/fuzz/fuzz_text crash-file */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto_meta.h"
#include "proto_text.h"

/* One parser answer other than MG_EAGAIN, slices as stream offsets. */
struct text_event {
    int rc;
    enum mg_cmd cmd;
    size_t at, consumed;
    uint64_t swallow;
    int64_t key, keys, data, args, line;
    uint32_t key_len, keys_len, data_len, args_len, line_len;
    uint32_t nkeys, flags, vlen;
    int64_t exptime, num;
    uint64_t cas, delta;
    bool noreply;
    const char *err;
};

/* One simulated connection. The first run records its events in ev; later runs compare. */
struct text_conn {
    const struct fuzz_hdr *h;
    uint32_t key_max;
    char *buf;        /* owned: h->len bytes; the pending bytes sit at its end */
    size_t pos, recv; /* stream offsets: first unconsumed byte, bytes delivered */
    uint64_t swallow; /* data block bytes still to drop */
    bool closed;
    struct text_event *ev; /* owned by text_run's caller; room for len + 1 events */
    size_t nev, nref;      /* events seen in this run; recorded by the first */
    bool record;
};

static bool key_bytes_ok(struct mg_slice k, uint32_t max)
{
    if (k.len == 0 || k.len > max)
        return false;
    for (uint32_t i = 0; i < k.len; i++) {
        unsigned char c = (unsigned char)k.p[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static bool is_storage(enum mg_cmd c)
{
    return (c >= MG_CMD_SET && c <= MG_CMD_CAS) || c == MG_CMD_MS;
}

static bool is_retrieval(enum mg_cmd c)
{
    return c >= MG_CMD_GET && c <= MG_CMD_GATS;
}

static bool has_one_key(enum mg_cmd c)
{
    return is_storage(c) || (c >= MG_CMD_DELETE && c <= MG_CMD_TOUCH) || c == MG_CMD_MG ||
           c == MG_CMD_MD || c == MG_CMD_MA || c == MG_CMD_ME;
}

/* Retrieval keys: walked with mg_text_next_token as the dispatcher does; nkeys of them,
 * the first one is req.key, each a valid key. */
static void check_keys(const struct mg_text_req *r, uint32_t key_max)
{
    struct mg_slice tok;
    uint32_t pos = 0, n = 0;

    FUZZ_CHECK(r->nkeys >= 1 && r->keys.len >= 1);
    while (mg_text_next_token(r->keys, &pos, &tok)) {
        FUZZ_CHECK(fuzz_inside(tok, r->keys.p, r->keys.len));
        FUZZ_CHECK(key_bytes_ok(tok, key_max));
        if (n == 0)
            FUZZ_CHECK(tok.p == r->key.p && tok.len == r->key.len);
        n++;
    }
    FUZZ_CHECK(n == r->nkeys);
    FUZZ_CHECK(r->keys.p[0] != ' ' && r->keys.p[r->keys.len - 1] != ' ');
}

/* Meta flags are handed to mg_meta_flag by the meta commands' callers. */
static void check_meta_args(struct mg_slice args)
{
    static const char letters[] = "bcfhklnqstvEIMNOqTU";
    struct mg_slice v;

    if (args.len)
        FUZZ_CHECK(args.p[0] != ' ' && args.p[args.len - 1] != ' ');
    for (size_t i = 0; i < sizeof(letters) - 1; i++) {
        if (mg_meta_flag(args, letters[i], &v)) {
            FUZZ_CHECK(fuzz_inside(v, args.p, args.len));
            FUZZ_CHECK(v.p > args.p && v.p[-1] == letters[i]);
        }
    }
}

/* What every mg_text_parse answer must satisfy, however the bytes arrived. */
static void check_call(const struct text_conn *c, const char *b, size_t n, int rc,
                       const struct mg_text_req *r, size_t consumed)
{
    FUZZ_CHECK(rc == MG_OK || rc == MG_EAGAIN || rc == MG_ECLIENT || rc == MG_ESWALLOW ||
               rc == MG_ECLOSE);
    FUZZ_CHECK(consumed <= n);
    FUZZ_CHECK((rc == MG_OK || rc == MG_EAGAIN) == (r->err == NULL));
    FUZZ_CHECK(fuzz_inside(r->key, b, n) && fuzz_inside(r->keys, b, n) &&
               fuzz_inside(r->data, b, n) && fuzz_inside(r->args, b, n) &&
               fuzz_inside(r->line, b, n));
    if (rc == MG_EAGAIN || rc == MG_ECLOSE) {
        FUZZ_CHECK(consumed == 0);
        return;
    }
    if (r->partial) { /* a piece of a long get line (proto_text.h): no whole line here */
        FUZZ_CHECK(r->cmd >= MG_CMD_GET && r->cmd <= MG_CMD_GATS && consumed > 0);
        FUZZ_CHECK(rc == MG_OK || rc == MG_ECLIENT);
        if (rc == MG_OK)
            FUZZ_CHECK(r->nkeys >= 1 && r->nkeys <= MG_GET_CHUNK_KEYS && r->prefix_len < consumed &&
                       fuzz_inside(r->keys, b, consumed));
        return;
    }
    /* a line was seen: it starts the buffer and ends in \n or \r\n */
    const char *nl = memchr(b, '\n', n);
    FUZZ_CHECK(nl != NULL);
    size_t line_bytes = (size_t)(nl - b) + 1;
    FUZZ_CHECK(r->line.len == 0 || r->line.p == b);
    FUZZ_CHECK(r->line.len + 1 == line_bytes ||
               (r->line.len + 2 == line_bytes && b[r->line.len] == '\r'));
    FUZZ_CHECK(consumed >= line_bytes);
    FUZZ_CHECK(fuzz_inside(r->key, b, consumed) && fuzz_inside(r->keys, b, consumed) &&
               fuzz_inside(r->data, b, consumed) && fuzz_inside(r->args, b, consumed));

    if (rc == MG_ESWALLOW) {
        FUZZ_CHECK(is_storage(r->cmd) && consumed == line_bytes);
        /* too large, or an ms refused for its key or flags once its length was known */
        FUZZ_CHECK(r->swallow == (uint64_t)r->vlen + 2);
        FUZZ_CHECK(r->vlen > c->h->value_max ||
                   (r->cmd == MG_CMD_MS && strncmp(r->err, "CLIENT_ERROR", 12) == 0));
        return;
    }
    if (rc == MG_ECLIENT) {
        if (r->cmd == MG_CMD_UNKNOWN)
            FUZZ_CHECK(r->args.p == r->line.p && r->args.len == r->line.len);
        return;
    }
    /* MG_OK */
    FUZZ_CHECK(r->cmd > MG_CMD_NONE && r->cmd < MG_CMD_UNKNOWN);
    if (is_storage(r->cmd)) {
        FUZZ_CHECK(r->data.len == r->vlen && r->vlen <= c->h->value_max);
        FUZZ_CHECK(consumed == line_bytes + (size_t)r->vlen + 2);
        FUZZ_CHECK(r->vlen == 0 || r->data.p == b + line_bytes);
        FUZZ_CHECK(b[consumed - 2] == '\r' && b[consumed - 1] == '\n');
    } else {
        FUZZ_CHECK(consumed == line_bytes && r->data.len == 0);
    }
    if (is_retrieval(r->cmd))
        check_keys(r, c->key_max);
    if (has_one_key(r->cmd))
        FUZZ_CHECK(key_bytes_ok(r->key, c->key_max));
    if (r->cmd >= MG_CMD_MG && r->cmd <= MG_CMD_ME)
        check_meta_args(r->args);
}

static struct text_event event_of(int rc, const struct mg_text_req *r, const char *b, size_t at,
                                  size_t consumed)
{
    struct text_event e = {
        .rc = rc,
        .cmd = r->cmd,
        .at = at,
        .consumed = consumed,
        .swallow = r->swallow,
        .key = fuzz_off(r->key, b, at),
        .keys = fuzz_off(r->keys, b, at),
        .data = fuzz_off(r->data, b, at),
        .args = fuzz_off(r->args, b, at),
        .line = fuzz_off(r->line, b, at),
        .key_len = r->key.len,
        .keys_len = r->keys.len,
        .data_len = r->data.len,
        .args_len = r->args.len,
        .line_len = r->line.len,
        .nkeys = r->nkeys,
        .flags = r->flags,
        .vlen = r->vlen,
        .exptime = r->exptime,
        .num = r->num,
        .cas = r->cas,
        .delta = r->delta,
        .noreply = r->noreply,
        .err = r->err,
    };
    return e;
}

static bool event_eq(const struct text_event *a, const struct text_event *b)
{
    bool err_eq = a->err == b->err || (a->err && b->err && strcmp(a->err, b->err) == 0);

    return a->rc == b->rc && a->cmd == b->cmd && a->at == b->at && a->consumed == b->consumed &&
           a->swallow == b->swallow && a->key == b->key && a->keys == b->keys &&
           a->data == b->data && a->args == b->args && a->line == b->line &&
           a->key_len == b->key_len && a->keys_len == b->keys_len && a->data_len == b->data_len &&
           a->args_len == b->args_len && a->line_len == b->line_len && a->nkeys == b->nkeys &&
           a->flags == b->flags && a->vlen == b->vlen && a->exptime == b->exptime &&
           a->num == b->num && a->cas == b->cas && a->delta == b->delta &&
           a->noreply == b->noreply && err_eq;
}

static void drop_swallow(struct text_conn *c)
{
    uint64_t k = c->recv - c->pos;

    if (k > c->swallow)
        k = c->swallow;
    c->pos += (size_t)k;
    c->swallow -= k;
}

static void note(struct text_conn *c, const struct text_event *e)
{
    if (c->record) {
        c->ev[c->nev++] = *e;
        return;
    }
    FUZZ_CHECK(c->nev < c->nref && event_eq(&c->ev[c->nev], e));
    c->nev++;
}

/* n more stream bytes arrive: parse all complete requests, as a connection's read does. */
static void text_arrive(struct text_conn *c, size_t n)
{
    c->recv += n;
    if (c->closed)
        return;
    drop_swallow(c);
    if (c->swallow)
        return;
    size_t avail = c->recv - c->pos;
    char *base = c->buf + c->h->len - avail;
    memcpy(base, c->h->stream + c->pos, avail);
    while (c->pos < c->recv) {
        const char *b = base + (c->pos - (c->recv - avail));
        size_t left = c->recv - c->pos, consumed;
        struct mg_text_req r;
        int rc = mg_text_parse(b, left, c->h->value_max, &r, &consumed);
        check_call(c, b, left, rc, &r, consumed);
        if (rc == MG_EAGAIN)
            return;
        struct text_event e = event_of(rc, &r, b, c->pos, consumed);
        note(c, &e);
        if (rc == MG_ECLOSE) {
            c->closed = true;
            return;
        }
        c->pos += consumed;
        if (rc == MG_ESWALLOW) {
            c->swallow = r.swallow;
            drop_swallow(c);
            if (c->swallow)
                return;
        }
    }
}

/* Delivers the whole stream in pieces of `piece` bytes (the first one `first` bytes). */
static void text_run(struct text_conn *c, size_t first, size_t piece)
{
    size_t len = c->h->len;

    c->pos = c->recv = 0;
    c->swallow = 0;
    c->closed = false;
    c->nev = 0;
    text_arrive(c, first);
    while (c->recv < len)
        text_arrive(c, len - c->recv < piece ? len - c->recv : piece);
}

int fuzz_text_input(const uint8_t *data, size_t size)
{
    struct fuzz_hdr h = fuzz_hdr_parse(data, size);
    struct text_conn c = { .h = &h };

    c.key_max = h.opts & 1 ? FUZZ_LONG_KEY_MAX : MG_KEY_MAX;
    mg_text_set_key_max(c.key_max);
    c.buf = malloc(h.len ? h.len : 1);
    c.ev = malloc((h.len + 1) * sizeof(*c.ev));
    FUZZ_CHECK(c.buf && c.ev);

    c.record = true;
    text_run(&c, h.len, h.len ? h.len : 1);
    size_t nev = c.nref = c.nev, pos = c.pos;
    uint64_t swallow = c.swallow;
    bool closed = c.closed;

    c.record = false;
    text_run(&c, h.split, h.len ? h.len : 1);
    FUZZ_CHECK(c.nev == nev && c.pos == pos && c.swallow == swallow && c.closed == closed);
    size_t piece = fuzz_small_piece(h.len);
    text_run(&c, piece < h.len ? piece : h.len, piece);
    FUZZ_CHECK(c.nev == nev && c.pos == pos && c.swallow == swallow && c.closed == closed);

    free(c.ev);
    free(c.buf);
    mg_text_set_key_max(MG_KEY_MAX);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_text_input(data, size);
}
#endif
