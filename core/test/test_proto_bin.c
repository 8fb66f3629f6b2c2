/* test_proto_bin.c: the binary protocol parser (every opcode, bad lengths, every split of a
 * pipeline, one byte at a time) and the text-to-binary reply renderer. */
#include <stdint.h>
#include <stdlib.h>

#include "ctest.h"
#include "proto_bin.h"

#define VMAX 100

/* Build a request packet into out; returns its length. */
static size_t pkt(unsigned char *out, uint8_t op, const char *ext, uint8_t elen, const char *key,
                  uint16_t klen, const char *val, uint32_t vlen, uint32_t opaque, uint64_t cas)
{
    uint32_t blen = (uint32_t)elen + klen + vlen;
    memset(out, 0, 24);
    out[0] = 0x80;
    out[1] = op;
    out[2] = (unsigned char)(klen >> 8);
    out[3] = (unsigned char)klen;
    out[4] = elen;
    out[8] = (unsigned char)(blen >> 24);
    out[9] = (unsigned char)(blen >> 16);
    out[10] = (unsigned char)(blen >> 8);
    out[11] = (unsigned char)blen;
    memcpy(out + 12, &opaque, 4);
    for (int i = 0; i < 8; i++)
        out[16 + i] = (unsigned char)(cas >> (56 - 8 * i));
    if (elen)
        memcpy(out + 24, ext, elen);
    if (klen)
        memcpy(out + 24 + elen, key, klen);
    if (vlen)
        memcpy(out + 24 + elen + klen, val, vlen);
    return 24 + blen;
}

static int parse(const unsigned char *b, size_t n, struct mg_bin_req *q, size_t *used)
{
    return mg_bin_parse((const char *)b, n, VMAX, q, used);
}

/* Every prefix of a whole request is MG_EAGAIN, consuming nothing. */
static void check_prefixes(const unsigned char *b, size_t n)
{
    struct mg_bin_req q;
    size_t used = 7;
    for (size_t i = 0; i < n; i++) {
        int rc = parse(b, i, &q, &used);
        CHECK_EQ_INT(rc, MG_EAGAIN);
        CHECK_EQ_INT(used, 0);
    }
}

static void test_get_family(void)
{
    unsigned char b[512];
    struct mg_bin_req q;
    size_t used;
    static const uint8_t ops[] = { MG_BIN_GET, MG_BIN_GETQ, MG_BIN_GETK, MG_BIN_GETKQ };
    for (size_t i = 0; i < MG_ARRAY_LEN(ops); i++) {
        size_t n = pkt(b, ops[i], NULL, 0, "foo", 3, NULL, 0, 0xdeadbeef, 0);
        check_prefixes(b, n);
        CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
        CHECK_EQ_INT(used, n);
        CHECK_EQ_INT(q.t.cmd, MG_CMD_GETS);
        CHECK_SLICE(q.t.key, "foo");
        CHECK_SLICE(q.t.keys, "foo");
        CHECK_EQ_INT(q.t.nkeys, 1);
        CHECK_EQ_INT(q.ctx.opcode, ops[i]);
        CHECK_EQ_INT(q.ctx.quiet, ops[i] == MG_BIN_GETQ || ops[i] == MG_BIN_GETKQ);
        CHECK_EQ_INT(q.ctx.with_key, ops[i] == MG_BIN_GETK || ops[i] == MG_BIN_GETKQ);
        uint32_t op;
        memcpy(&op, b + 12, 4);
        CHECK_EQ_INT(q.ctx.opaque, op);
    }
    /* extras on a get: memcached's protocol error (EINVAL, then close) */
    size_t n = pkt(b, MG_BIN_GET, "abcd", 4, "foo", 3, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_ECLOSE);
    CHECK_EQ_INT(q.status, MG_BIN_EINVAL);
    /* no key */
    n = pkt(b, MG_BIN_GET, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_ECLOSE);
    /* a body longer than the key */
    n = pkt(b, MG_BIN_GET, NULL, 0, "foo", 3, "x", 1, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_ECLOSE);
}

static void test_store_family(void)
{
    unsigned char b[512];
    struct mg_bin_req q;
    size_t used;
    const char ext[8] = { 0, 0, 0, 42, 0, 0, 1, 0 }; /* flags 42, exptime 256 */
    size_t n = pkt(b, MG_BIN_SET, ext, 8, "key", 3, "value", 5, 1, 0);
    check_prefixes(b, n);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(used, n);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_SET);
    CHECK_EQ_INT(q.t.flags, 42);
    CHECK_EQ_INT(q.t.exptime, 256);
    CHECK_EQ_INT(q.t.vlen, 5);
    CHECK_SLICE(q.t.data, "value");
    CHECK_SLICE(q.t.key, "key");
    /* a CAS makes it a cas */
    n = pkt(b, MG_BIN_SETQ, ext, 8, "key", 3, "v", 1, 1, 12345);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_CAS);
    CHECK_EQ_INT(q.t.cas, 12345);
    CHECK(q.ctx.quiet);
    n = pkt(b, MG_BIN_ADDQ, ext, 8, "key", 3, "", 0, 1, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_ADD);
    CHECK_EQ_INT(q.t.vlen, 0);
    n = pkt(b, MG_BIN_REPLACE, ext, 8, "key", 3, "zz", 2, 1, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_REPLACE);
    n = pkt(b, MG_BIN_APPEND, NULL, 0, "key", 3, "zz", 2, 1, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_APPEND);
    CHECK_SLICE(q.t.data, "zz");
    n = pkt(b, MG_BIN_PREPENDQ, NULL, 0, "key", 3, "zz", 2, 1, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_PREPEND);
    /* set without its extras */
    n = pkt(b, MG_BIN_SET, NULL, 0, "key", 3, "v", 1, 1, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_ECLOSE);
    CHECK_EQ_INT(q.status, MG_BIN_EINVAL);
    /* append with extras */
    n = pkt(b, MG_BIN_APPEND, ext, 8, "key", 3, "v", 1, 1, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_ECLOSE);
}

static void test_too_large(void)
{
    static unsigned char b[VMAX + 200];
    static char val[VMAX + 1];
    struct mg_bin_req q;
    size_t used;
    const char ext[8] = { 0 };
    memset(val, 'x', sizeof(val));
    size_t n = pkt(b, MG_BIN_SET, ext, 8, "key", 3, val, VMAX, 1, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    n = pkt(b, MG_BIN_SET, ext, 8, "key", 3, val, VMAX + 1, 1, 0);
    /* decided on the header, extras and key alone: the body need not have arrived */
    CHECK_EQ_INT(parse(b, 24 + 8 + 3, &q, &used), MG_ESWALLOW);
    CHECK_EQ_INT(q.status, MG_BIN_E2BIG);
    CHECK_EQ_INT(used, 24 + 8 + 3);
    CHECK_EQ_INT(q.t.swallow, VMAX + 1);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_SET);
    CHECK_SLICE(q.t.key, "key");
}

static void test_arith_and_misc(void)
{
    unsigned char b[512];
    struct mg_bin_req q;
    size_t used;
    char ext[20] = { 0 };
    ext[7] = 5;   /* delta 5 */
    ext[15] = 9;  /* initial 9 */
    ext[19] = 60; /* expiration 60 */
    size_t n = pkt(b, MG_BIN_INCR, ext, 20, "n", 1, NULL, 0, 0, 0);
    check_prefixes(b, n);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_INCR);
    CHECK_EQ_INT(q.t.delta, 5);
    CHECK_EQ_INT(q.ctx.initial, 9);
    CHECK(q.ctx.vivify);
    CHECK_EQ_INT(q.ctx.vivify_ttl, 60);
    memset(ext + 16, 0xff, 4);
    n = pkt(b, MG_BIN_DECRQ, ext, 20, "n", 1, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_DECR);
    CHECK(!q.ctx.vivify);
    CHECK(q.ctx.quiet);
    n = pkt(b, MG_BIN_DELETE, NULL, 0, "k", 1, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_DELETE);
    const char e4[4] = { 0, 0, 0, 10 };
    n = pkt(b, MG_BIN_TOUCH, e4, 4, "k", 1, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_GATS);
    CHECK_EQ_INT(q.t.exptime, 10);
    n = pkt(b, MG_BIN_GATKQ, e4, 4, "k", 1, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK(q.ctx.with_key && q.ctx.quiet);
    n = pkt(b, MG_BIN_FLUSH, e4, 4, NULL, 0, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_FLUSH_ALL);
    CHECK_EQ_INT(q.t.num, 10);
    n = pkt(b, MG_BIN_FLUSHQ, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.num, 0);
    n = pkt(b, MG_BIN_NOOP, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_MN);
    n = pkt(b, MG_BIN_VERSION, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_VERSION);
    n = pkt(b, MG_BIN_QUITQ, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_QUIT);
    n = pkt(b, MG_BIN_STAT, NULL, 0, "settings", 8, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_STATS);
    CHECK_SLICE(q.t.args, "settings");
    n = pkt(b, MG_BIN_VERBOSITY, e4, 4, NULL, 0, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_VERBOSITY);
    n = pkt(b, MG_BIN_SASL_AUTH, NULL, 0, "PLAIN", 5, "\0u\0p", 4, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK(q.gateway);
    CHECK_EQ_INT(q.body.len, 4);
    n = pkt(b, MG_BIN_SASL_LIST, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_OK);
    CHECK(q.gateway);
    CHECK_EQ_INT(q.t.cmd, MG_CMD_NONE);
}

static void test_bad_input(void)
{
    unsigned char b[512];
    struct mg_bin_req q;
    size_t used;
    /* bad magic: close without an answer */
    size_t n = pkt(b, MG_BIN_GET, NULL, 0, "k", 1, NULL, 0, 0, 0);
    b[0] = 0x81;
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_ECLOSE);
    CHECK_EQ_INT(q.status, 0);
    /* a text command on a binary connection */
    CHECK_EQ_INT(mg_bin_parse("get foo\r\n                 ", 26, VMAX, &q, &used), MG_ECLOSE);
    CHECK_EQ_INT(mg_bin_parse("get\r\n", 5, VMAX, &q, &used), MG_ECLOSE);
    /* key + extras over the body: unknown command and close, as memcached */
    n = pkt(b, MG_BIN_GET, NULL, 0, "key", 3, NULL, 0, 0, 0);
    b[11] = 2;
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_ECLOSE);
    CHECK_EQ_INT(q.status, MG_BIN_UNKNOWN);
    /* a key over 250 bytes: refused on the header */
    n = pkt(b, MG_BIN_GET, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    b[2] = 1; /* 256 + 0 */
    b[9] = 0;
    b[10] = 1;
    b[11] = 0;
    CHECK_EQ_INT(parse(b, 24, &q, &used), MG_ECLOSE);
    CHECK_EQ_INT(q.status, MG_BIN_EINVAL);
    /* unknown opcode: 0x81, its body dropped, the connection goes on */
    n = pkt(b, 0x77, "ee", 2, "kk", 2, "vvvv", 4, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_ESWALLOW);
    CHECK_EQ_INT(q.status, MG_BIN_UNKNOWN);
    CHECK_EQ_INT(used + q.t.swallow, n);
    /* a key the meta protocol cannot carry */
    n = pkt(b, MG_BIN_GET, NULL, 0, "a b", 3, NULL, 0, 0, 0);
    CHECK_EQ_INT(parse(b, n, &q, &used), MG_ESWALLOW);
    CHECK_EQ_INT(q.status, MG_BIN_EINVAL);
    CHECK_EQ_INT(used + q.t.swallow, n);
    /* garbage never crashes, never reads past the end */
    for (unsigned seed = 1; seed < 3000; seed++) {
        unsigned char g[64];
        unsigned x = seed;
        for (size_t i = 0; i < sizeof(g); i++) {
            x = x * 1103515245u + 12345u;
            g[i] = (unsigned char)(x >> 16);
        }
        g[0] = 0x80;
        g[2] = 0;
        size_t len = seed % sizeof(g);
        unsigned char *h = malloc(len ? len : 1);
        memcpy(h, g, len);
        int rc = parse(h, len, &q, &used);
        CHECK(rc == MG_OK || rc == MG_EAGAIN || rc == MG_ECLOSE || rc == MG_ESWALLOW);
        CHECK(used <= len);
        free(h);
    }
}

/* A pipeline of several requests fed in two pieces at every split point, and one byte at a
 * time, parses to the same requests as all at once. */
static void test_every_split(void)
{
    unsigned char b[1024];
    const char ext[8] = { 0, 0, 0, 1, 0, 0, 0, 0 };
    char incr[20] = { 0 };
    incr[7] = 1;
    size_t n = 0;
    n += pkt(b + n, MG_BIN_SETQ, ext, 8, "a", 1, "hello", 5, 1, 0);
    n += pkt(b + n, MG_BIN_GETKQ, NULL, 0, "a", 1, NULL, 0, 2, 0);
    n += pkt(b + n, MG_BIN_INCR, incr, 20, "n", 1, NULL, 0, 3, 0);
    n += pkt(b + n, MG_BIN_NOOP, NULL, 0, NULL, 0, NULL, 0, 4, 0);
    static const enum mg_cmd want[] = { MG_CMD_SET, MG_CMD_GETS, MG_CMD_INCR, MG_CMD_MN };
    for (size_t step = 0; step <= n; step++) {
        /* feed: first `step` bytes, then the rest; step 0 stands for one byte at a time */
        unsigned char acc[1024];
        size_t have = 0, off = 0, fed = 0, got = 0;
        while (fed < n || off < have) {
            size_t chunk = step == 0 ? 1 : (fed == 0 ? step : n - fed);
            if (fed < n) {
                memcpy(acc + have, b + fed, chunk);
                have += chunk;
                fed += chunk;
            }
            for (;;) {
                struct mg_bin_req q;
                size_t used = 0;
                int rc = parse(acc + off, have - off, &q, &used);
                if (rc == MG_EAGAIN)
                    break;
                CHECK_EQ_INT(rc, MG_OK);
                if (rc != MG_OK || got >= MG_ARRAY_LEN(want))
                    return;
                CHECK_EQ_INT(q.t.cmd, want[got]);
                uint32_t opq;
                memcpy(&opq, &q.ctx.opaque, 4);
                CHECK_EQ_INT(opq, got + 1);
                got++;
                off += used;
            }
            if (fed == n && off < have) {
                CHECK(0); /* bytes left that never parse */
                return;
            }
        }
        CHECK_EQ_INT(got, 4);
    }
}

/* Render a text reply for a context and return the packet's status (or -1: none). */
static int render(const struct mg_bin_ctx *x, const char *text, uint64_t cas, struct buf *out)
{
    out->off = out->len = 0;
    CHECK_EQ_INT(mg_bin_from_text(out, x, text, strlen(text), cas), MG_OK);
    if (out->len == 0)
        return -1;
    const unsigned char *h = (const unsigned char *)out->data;
    CHECK_EQ_INT(h[0], MG_BIN_RES);
    CHECK_EQ_INT(h[1], x->opcode);
    CHECK(memcmp(h + 12, &x->opaque, 4) == 0);
    return (h[6] << 8) | h[7];
}

static void test_render(void)
{
    struct buf out = { 0 };
    struct mg_bin_ctx x = { .opcode = MG_BIN_GET, .opaque = 0x01020304 };
    CHECK_EQ_INT(render(&x, "VALUE foo 7 5 99\r\nhello\r\n", 0, &out), MG_BIN_OK);
    const unsigned char *h = (const unsigned char *)out.data;
    CHECK_EQ_INT(out.len, 24 + 4 + 5);
    CHECK_EQ_INT(h[4], 4);  /* extras: flags */
    CHECK_EQ_INT(h[27], 7); /* flags 7 */
    CHECK_EQ_INT(h[23], 99);
    CHECK(memcmp(out.data + 28, "hello", 5) == 0);
    CHECK_EQ_INT(render(&x, "END\r\n", 0, &out), MG_BIN_ENOENT);
    CHECK(memcmp(out.data + 24, "Not found", 9) == 0);
    x.opcode = MG_BIN_GETKQ;
    x.quiet = x.with_key = true;
    x.klen = 3;
    memcpy(x.key, "foo", 3);
    CHECK_EQ_INT(render(&x, "END\r\n", 0, &out), -1);
    CHECK_EQ_INT(render(&x, "VALUE foo 0 1 5\r\nh\r\n", 0, &out), MG_BIN_OK);
    CHECK_EQ_INT(out.len, 24 + 4 + 3 + 1);
    x.opcode = MG_BIN_GETK;
    x.quiet = false;
    CHECK_EQ_INT(render(&x, "END\r\n", 0, &out), MG_BIN_ENOENT);
    CHECK_EQ_INT(out.len, 24 + 3); /* the key, as memcached */
    x = (struct mg_bin_ctx){ .opcode = MG_BIN_SET };
    CHECK_EQ_INT(render(&x, "STORED\r\n", 77, &out), MG_BIN_OK);
    CHECK_EQ_INT(((const unsigned char *)out.data)[23], 77);
    x.opcode = MG_BIN_SETQ;
    x.quiet = true;
    CHECK_EQ_INT(render(&x, "STORED\r\n", 77, &out), -1);
    CHECK_EQ_INT(render(&x, "EXISTS\r\n", 0, &out), MG_BIN_EEXISTS);
    x = (struct mg_bin_ctx){ .opcode = MG_BIN_ADD };
    CHECK_EQ_INT(render(&x, "NOT_STORED\r\n", 0, &out), MG_BIN_EEXISTS);
    x.opcode = MG_BIN_REPLACE;
    CHECK_EQ_INT(render(&x, "NOT_STORED\r\n", 0, &out), MG_BIN_ENOENT);
    x.opcode = MG_BIN_APPEND;
    CHECK_EQ_INT(render(&x, "NOT_STORED\r\n", 0, &out), MG_BIN_NOT_STORED);
    x.opcode = MG_BIN_INCR;
    CHECK_EQ_INT(render(&x, "258\r\n", 0, &out), MG_BIN_OK);
    CHECK_EQ_INT(out.len, 32);
    CHECK_EQ_INT(((const unsigned char *)out.data)[30], 1);
    CHECK_EQ_INT(((const unsigned char *)out.data)[31], 2);
    CHECK_EQ_INT(
        render(&x, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n", 0, &out),
        MG_BIN_DELTA_BADVAL);
    CHECK_EQ_INT(render(&x, "SERVER_ERROR backend down\r\n", 0, &out), MG_BIN_EINTERNAL);
    CHECK(memcmp(out.data + 24, "backend down", 12) == 0);
    x.opcode = MG_BIN_VERSION;
    CHECK_EQ_INT(render(&x, "VERSION 1.6.18\r\n", 0, &out), MG_BIN_OK);
    CHECK_EQ_INT(out.len, 24 + 6);
    x.opcode = 0x77;
    CHECK_EQ_INT(render(&x, "ERROR\r\n", 0, &out), MG_BIN_UNKNOWN);
    x.opcode = MG_BIN_STAT;
    CHECK_EQ_INT(render(&x, "STAT pid 12\r\nSTAT uptime 3\r\nEND\r\n", 0, &out), MG_BIN_OK);
    CHECK_EQ_INT(out.len, (24 + 3 + 2) + (24 + 6 + 1) + 24);
    buf_free(&out);
}

int main(void)
{
    RUN(test_get_family);
    RUN(test_store_family);
    RUN(test_too_large);
    RUN(test_arith_and_misc);
    RUN(test_bad_input);
    RUN(test_every_split);
    RUN(test_render);
    CTEST_END();
}
