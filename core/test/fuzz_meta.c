/* fuzz_meta.c: fuzz target for the backend reply parser (mg_meta_parse_reply), fed like a backend.
 *
 * The stream (see fuzz.h for the input layout) is delivered all at once, in two pieces
 * split where the input says, and one byte at a time, and parsed the way backend.c reads
 * replies: drop *consumed bytes per MG_OK, wait at MG_EAGAIN, close at MG_ERR. The three
 * runs must see the same replies at the same stream offsets. Every call is checked for
 * what callers rely on (check_call), and the flags of every reply are searched with
 * mg_meta_flag and compared with a plain token scan. The unconsumed bytes sit at the very
 * end of a heap block of the stream's size, so ASan catches any read past them.
 *
 *   make fuzz FUZZ_TARGETS=fuzz_meta        build/fuzz/fuzz_meta crash-file */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto_meta.h"

/* One parser answer other than MG_EAGAIN, slices as stream offsets. */
struct meta_event {
    int rc;
    enum mg_rstatus status;
    size_t at, consumed;
    int64_t flags, data, line;
    uint32_t flags_len, data_len, line_len, vlen;
};

/* One simulated backend connection. The first run records its events; later ones compare. */
struct meta_conn {
    const struct fuzz_hdr *h;
    char *buf;        /* owned: h->len bytes; the pending bytes sit at its end */
    size_t pos, recv; /* stream offsets: first unconsumed byte, bytes delivered */
    bool closed;
    struct meta_event *ev; /* owned by fuzz_meta_input; room for len + 1 events */
    size_t nev, nref;      /* events seen in this run; recorded by the first */
    bool record;
};

/* The reference mg_meta_flag is compared with: the first space-separated token that
 * starts with f, its value the rest of the token. */
static bool flag_scan(struct mg_slice flags, char f, struct mg_slice *val)
{
    uint32_t i = 0;

    while (i < flags.len) {
        if (flags.p[i] == ' ') {
            i++;
            continue;
        }
        uint32_t t = i;
        while (i < flags.len && flags.p[i] != ' ')
            i++;
        if (flags.p[t] == f) {
            val->p = flags.p + t + 1;
            val->len = i - t - 1;
            return true;
        }
    }
    return false;
}

static void check_flags(struct mg_slice flags, uint8_t extra)
{
    static const char letters[] = "bcfhklOqstvWXZ";
    struct mg_slice v, w;

    for (size_t i = 0; i < sizeof(letters); i++) {
        char f = i < sizeof(letters) - 1 ? letters[i] : (char)extra;
        bool found = mg_meta_flag(flags, f, &v);
        FUZZ_CHECK(found == flag_scan(flags, f, &w));
        if (found) {
            FUZZ_CHECK(fuzz_inside(v, flags.p, flags.len));
            FUZZ_CHECK((v.len == 0 || v.p == w.p) && v.len == w.len);
        }
    }
}

/* What every mg_meta_parse_reply answer must satisfy, however the bytes arrived. */
static void check_call(const struct meta_conn *c, const char *b, size_t n, int rc,
                       const struct mg_meta_reply *r, size_t consumed)
{
    FUZZ_CHECK(rc == MG_OK || rc == MG_EAGAIN || rc == MG_ERR);
    FUZZ_CHECK(consumed <= n);
    FUZZ_CHECK(fuzz_inside(r->flags, b, n) && fuzz_inside(r->data, b, n) &&
               fuzz_inside(r->line, b, n));
    if (rc != MG_OK) {
        FUZZ_CHECK(consumed == 0);
        return;
    }
    const char *nl = memchr(b, '\n', n);
    FUZZ_CHECK(nl != NULL);
    size_t line_bytes = (size_t)(nl - b) + 1;
    FUZZ_CHECK(r->line.len >= 1 && r->line.p == b);
    FUZZ_CHECK(r->line.len + 1 == line_bytes ||
               (r->line.len + 2 == line_bytes && b[r->line.len] == '\r'));
    for (uint32_t i = 0; i < r->line.len; i++)
        FUZZ_CHECK((unsigned char)b[i] >= 0x20 && b[i] != 0x7f);
    FUZZ_CHECK(fuzz_inside(r->flags, r->line.p, r->line.len));
    FUZZ_CHECK(r->status > MG_R_NONE && r->status <= MG_R_OTHER);
    if (r->status == MG_R_VA) {
        FUZZ_CHECK(r->data.len == r->vlen && r->vlen <= c->h->value_max);
        FUZZ_CHECK(consumed == line_bytes + (size_t)r->vlen + 2);
        FUZZ_CHECK(r->vlen == 0 || r->data.p == b + line_bytes);
        FUZZ_CHECK(b[consumed - 2] == '\r' && b[consumed - 1] == '\n');
    } else {
        FUZZ_CHECK(consumed == line_bytes && r->data.len == 0 && r->vlen == 0);
    }
    if (r->status != MG_R_OTHER && r->flags.len)
        FUZZ_CHECK(r->flags.p[0] != ' ' && r->flags.p[r->flags.len - 1] != ' ');
    check_flags(r->flags, c->h->opts);
}

static struct meta_event event_of(int rc, const struct mg_meta_reply *r, const char *b, size_t at,
                                  size_t consumed)
{
    struct meta_event e = {
        .rc = rc,
        .status = r->status,
        .at = at,
        .consumed = consumed,
        .flags = fuzz_off(r->flags, b, at),
        .data = fuzz_off(r->data, b, at),
        .line = fuzz_off(r->line, b, at),
        .flags_len = r->flags.len,
        .data_len = r->data.len,
        .line_len = r->line.len,
        .vlen = r->vlen,
    };
    return e;
}

static void note(struct meta_conn *c, const struct meta_event *e)
{
    if (c->record) {
        c->ev[c->nev++] = *e;
        return;
    }
    FUZZ_CHECK(c->nev < c->nref);
    const struct meta_event *a = &c->ev[c->nev++];
    FUZZ_CHECK(a->rc == e->rc && a->status == e->status && a->at == e->at &&
               a->consumed == e->consumed && a->flags == e->flags && a->data == e->data &&
               a->line == e->line && a->flags_len == e->flags_len && a->data_len == e->data_len &&
               a->line_len == e->line_len && a->vlen == e->vlen);
}

/* n more stream bytes arrive: parse every complete reply, as a backend read does. */
static void meta_arrive(struct meta_conn *c, size_t n)
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
        struct mg_meta_reply r;
        int rc = mg_meta_parse_reply(b, left, c->h->value_max, &r, &consumed);
        check_call(c, b, left, rc, &r, consumed);
        if (rc == MG_EAGAIN)
            return;
        struct meta_event e = event_of(rc, &r, b, c->pos, consumed);
        note(c, &e);
        if (rc == MG_ERR) {
            c->closed = true;
            return;
        }
        c->pos += consumed;
    }
}

/* Delivers the whole stream in pieces of `piece` bytes (the first one `first` bytes). */
static void meta_run(struct meta_conn *c, size_t first, size_t piece)
{
    size_t len = c->h->len;

    c->pos = c->recv = 0;
    c->closed = false;
    c->nev = 0;
    meta_arrive(c, first);
    while (c->recv < len)
        meta_arrive(c, len - c->recv < piece ? len - c->recv : piece);
}

int fuzz_meta_input(const uint8_t *data, size_t size)
{
    struct fuzz_hdr h = fuzz_hdr_parse(data, size);
    struct meta_conn c = { .h = &h };

    c.buf = malloc(h.len ? h.len : 1);
    c.ev = malloc((h.len + 1) * sizeof(*c.ev));
    FUZZ_CHECK(c.buf && c.ev);

    c.record = true;
    meta_run(&c, h.len, h.len ? h.len : 1);
    size_t nev = c.nref = c.nev, pos = c.pos;
    bool closed = c.closed;

    c.record = false;
    meta_run(&c, h.split, h.len ? h.len : 1);
    FUZZ_CHECK(c.nev == nev && c.pos == pos && c.closed == closed);
    size_t piece = fuzz_small_piece(h.len);
    meta_run(&c, piece < h.len ? piece : h.len, piece);
    FUZZ_CHECK(c.nev == nev && c.pos == pos && c.closed == closed);

    free(c.ev);
    free(c.buf);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_meta_input(data, size);
}
#endif
