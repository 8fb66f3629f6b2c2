/* fuzz_bin.c: fuzz target for the client binary protocol parser (mg_bin_parse), fed like
 * a binary client connection, and for the reply renderer (mg_bin_from_text) on what it
 * parsed.
 *
 * The stream (see fuzz.h for the input layout) is delivered all at once, in two pieces
 * split where the input says, and in small pieces, and parsed the way conn.c reads a
 * binary connection: drop *consumed bytes per MG_OK, drop *consumed and then t.swallow
 * more per MG_ESWALLOW, wait at MG_EAGAIN, close at MG_ECLOSE. The three runs must see
 * the same packets at the same stream offsets. Every call is checked for what callers
 * rely on (check_call); every parsed request's context is rendered with a few text
 * replies the engine could give, and the packets that makes must be well formed
 * (check_render). The unconsumed bytes sit at the very end of a heap block of the
 * stream's size, so ASan catches any read past them.
 *
 *   make fuzz FUZZ_TARGETS=fuzz_bin        build/fuzz/fuzz_bin crash-file */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "proto_bin.h"

/* One parser answer other than MG_EAGAIN, slices as stream offsets. */
struct bin_event {
    int rc;
    uint16_t status;
    uint8_t opcode;
    int cmd;
    size_t at, consumed;
    uint64_t swallow;
    int64_t key, data, body;
    uint32_t key_len, data_len, body_len;
};

/* One simulated binary client connection. The first run records its events; later ones
 * compare. */
struct bin_conn {
    const struct fuzz_hdr *h;
    char *buf;        /* owned: h->len bytes; the pending bytes sit at its end */
    size_t pos, recv; /* stream offsets: first unconsumed byte, bytes delivered */
    uint64_t swallow; /* bytes still to drop */
    bool closed;
    struct bin_event *ev; /* owned by fuzz_bin_input; room for len + 1 events */
    size_t nev, nref;
    bool record;
};

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* out[0..n) must be whole response packets for ctx: magic, opcode, opaque, lengths. */
static void check_packets(const struct mg_bin_ctx *ctx, const char *out, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const unsigned char *h = (const unsigned char *)out + i;
        FUZZ_CHECK(n - i >= MG_BIN_HDR);
        FUZZ_CHECK(h[0] == MG_BIN_RES && h[1] == ctx->opcode);
        FUZZ_CHECK(memcmp(h + 12, &ctx->opaque, 4) == 0);
        uint32_t klen = (uint32_t)h[2] << 8 | h[3], body = rd32(h + 8);
        FUZZ_CHECK(klen + h[4] <= body && n - i - MG_BIN_HDR >= body);
        i += MG_BIN_HDR + body;
    }
}

/* Render ctx's answer to each text reply the engine could give it. */
static void check_render(const struct mg_bin_ctx *ctx, uint8_t pick)
{
    static const char *const replies[] = {
        "END\r\n",
        "VALUE k 5 3 42\r\nabc\r\nEND\r\n",
        "VALUE k 4294967295 0 18446744073709551615\r\n\r\nEND\r\n",
        "STORED\r\n",
        "NOT_STORED\r\n",
        "EXISTS\r\n",
        "NOT_FOUND\r\n",
        "DELETED\r\n",
        "TOUCHED\r\n",
        "OK\r\n",
        "ERROR\r\n",
        "CLIENT_ERROR bad data chunk\r\n",
        "SERVER_ERROR backend down\r\n",
        "VA 2 c7\r\n42\r\n",
        "HD c9\r\n",
        "STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n",
        "VERSION 1.6.18\r\n",
        "12345\r\n",
        "",
        "VALUE k 5 3\r\nabc",
    };
    size_t nr = sizeof(replies) / sizeof(replies[0]);
    for (size_t i = 0; i < nr; i++) {
        struct buf out = { 0 };
        const char *r = replies[(i + pick) % nr];
        FUZZ_CHECK(mg_bin_from_text(&out, ctx, r, strlen(r), (uint64_t)pick << 32 | i) == MG_OK);
        check_packets(ctx, out.data, out.len);
        buf_free(&out);
    }
}

/* What every mg_bin_parse answer must satisfy, however the bytes arrived. */
static void check_call(const struct bin_conn *c, const char *b, size_t n, int rc,
                       const struct mg_bin_req *q, size_t consumed)
{
    const unsigned char *h = (const unsigned char *)b;
    FUZZ_CHECK(rc == MG_OK || rc == MG_EAGAIN || rc == MG_ESWALLOW || rc == MG_ECLOSE);
    FUZZ_CHECK(consumed <= n);
    if (rc == MG_EAGAIN) { /* a non-request byte closes at once, never waits */
        FUZZ_CHECK(consumed == 0 && h[0] == MG_BIN_REQ);
        return;
    }
    if (rc == MG_ECLOSE) {
        FUZZ_CHECK(consumed == 0);
        FUZZ_CHECK(h[0] == MG_BIN_REQ || q->status == 0);
        return;
    }
    FUZZ_CHECK(n >= MG_BIN_HDR && h[0] == MG_BIN_REQ && q->ctx.opcode == h[1]);
    FUZZ_CHECK(memcmp(&q->ctx.opaque, h + 12, 4) == 0);
    uint64_t packet = MG_BIN_HDR + (uint64_t)rd32(h + 8);
    FUZZ_CHECK(q->t.key.len <= MG_KEY_MAX);
    if (rc == MG_ESWALLOW) {
        FUZZ_CHECK(q->status != 0 && consumed >= MG_BIN_HDR);
        FUZZ_CHECK(consumed + q->t.swallow == packet);
        FUZZ_CHECK(fuzz_inside(q->t.key, b, consumed));
        return;
    }
    FUZZ_CHECK(consumed == packet);
    FUZZ_CHECK(fuzz_inside(q->t.key, b, consumed) && fuzz_inside(q->t.keys, b, consumed) &&
               fuzz_inside(q->t.args, b, consumed) && fuzz_inside(q->t.data, b, consumed) &&
               fuzz_inside(q->body, b, consumed) && fuzz_inside(q->t.line, b, consumed));
    FUZZ_CHECK(q->t.data.len == 0 || q->t.data.len <= c->h->value_max);
    FUZZ_CHECK(q->ctx.klen <= MG_KEY_MAX);
    FUZZ_CHECK(!q->gateway || q->t.data.len == 0);
}

static int64_t off_of(struct mg_slice s, const char *b, size_t at)
{
    return fuzz_off(s, b, at);
}

static void note(struct bin_conn *c, const struct bin_event *e)
{
    if (c->record) {
        c->ev[c->nev++] = *e;
        return;
    }
    FUZZ_CHECK(c->nev < c->nref);
    const struct bin_event *a = &c->ev[c->nev++];
    FUZZ_CHECK(a->rc == e->rc && a->status == e->status && a->opcode == e->opcode &&
               a->cmd == e->cmd && a->at == e->at && a->consumed == e->consumed &&
               a->swallow == e->swallow && a->key == e->key && a->data == e->data &&
               a->body == e->body && a->key_len == e->key_len && a->data_len == e->data_len &&
               a->body_len == e->body_len);
}

/* n more stream bytes arrive: parse every complete packet, as conn_parse_bin does. */
static void bin_arrive(struct bin_conn *c, size_t n)
{
    c->recv += n;
    if (c->closed)
        return;
    size_t avail = c->recv - c->pos;
    char *base = c->buf + c->h->len - avail;
    memcpy(base, c->h->stream + c->pos, avail);
    while (c->pos < c->recv) {
        const char *b = base + (c->pos - (c->recv - avail));
        size_t left = c->recv - c->pos, consumed;
        if (c->swallow) {
            size_t drop = left < c->swallow ? left : (size_t)c->swallow;
            c->pos += drop;
            c->swallow -= drop;
            continue;
        }
        struct mg_bin_req q;
        int rc = mg_bin_parse(b, left, c->h->value_max, &q, &consumed);
        check_call(c, b, left, rc, &q, consumed);
        if (rc == MG_EAGAIN)
            return;
        struct bin_event e = {
            .rc = rc,
            .status = q.status,
            .opcode = rc == MG_ECLOSE ? 0 : q.ctx.opcode,
            .cmd = rc == MG_OK ? (int)q.t.cmd : -1,
            .at = c->pos,
            .consumed = consumed,
            .swallow = rc == MG_ESWALLOW ? q.t.swallow : 0,
            .key = rc == MG_ECLOSE ? -1 : off_of(q.t.key, b, c->pos),
            .data = rc == MG_OK ? off_of(q.t.data, b, c->pos) : -1,
            .body = rc == MG_OK ? off_of(q.body, b, c->pos) : -1,
            .key_len = rc == MG_ECLOSE ? 0 : q.t.key.len,
            .data_len = rc == MG_OK ? q.t.data.len : 0,
            .body_len = rc == MG_OK ? q.body.len : 0,
        };
        note(c, &e);
        if (rc == MG_ECLOSE) {
            c->closed = true;
            return;
        }
        if (c->record && rc == MG_OK)
            check_render(&q.ctx, c->h->opts);
        c->pos += consumed;
        c->swallow = e.swallow;
    }
}

/* Delivers the whole stream in pieces of `piece` bytes (the first one `first` bytes). */
static void bin_run(struct bin_conn *c, size_t first, size_t piece)
{
    size_t len = c->h->len;

    c->pos = c->recv = 0;
    c->swallow = 0;
    c->closed = false;
    c->nev = 0;
    bin_arrive(c, first);
    while (c->recv < len)
        bin_arrive(c, len - c->recv < piece ? len - c->recv : piece);
}

int fuzz_bin_input(const uint8_t *data, size_t size)
{
    struct fuzz_hdr h = fuzz_hdr_parse(data, size);
    struct bin_conn c = { .h = &h };

    c.buf = malloc(h.len ? h.len : 1);
    c.ev = malloc((h.len + 1) * sizeof(*c.ev));
    FUZZ_CHECK(c.buf && c.ev);

    c.record = true;
    bin_run(&c, h.len, h.len ? h.len : 1);
    size_t nev = c.nref = c.nev, pos = c.pos;
    bool closed = c.closed;

    c.record = false;
    bin_run(&c, h.split, h.len ? h.len : 1);
    FUZZ_CHECK(c.nev == nev && c.pos == pos && c.closed == closed);
    size_t piece = fuzz_small_piece(h.len);
    bin_run(&c, piece < h.len ? piece : h.len, piece);
    FUZZ_CHECK(c.nev == nev && c.pos == pos && c.closed == closed);

    free(c.ev);
    free(c.buf);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_bin_input(data, size);
}
#endif
