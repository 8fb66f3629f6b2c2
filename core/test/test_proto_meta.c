/* test_proto_meta.c: table-driven tests for the backend reply parser (meta protocol). */
#include <stdint.h>
#include <stdlib.h>

#include "ctest.h"
#include "proto_meta.h"

#define VMAX 100

/* One reply and what parsing it must give; want is the signature made by rep_sig. */
struct mcase {
    const char *in;
    size_t inlen; /* 0: strlen(in) */
    int rc;
    const char *want;
};

static const char *status_name(enum mg_rstatus s)
{
    static const char *names[] = {
        [MG_R_NONE] = "none",
        [MG_R_VA] = "VA",
        [MG_R_HD] = "HD",
        [MG_R_EN] = "EN",
        [MG_R_NF] = "NF",
        [MG_R_NS] = "NS",
        [MG_R_EX] = "EX",
        [MG_R_MN] = "MN",
        [MG_R_ME] = "ME",
        [MG_R_OK] = "OK",
        [MG_R_ERROR] = "ERROR",
        [MG_R_CLIENT_ERROR] = "CLIENT_ERROR",
        [MG_R_SERVER_ERROR] = "SERVER_ERROR",
        [MG_R_OTHER] = "OTHER",
    };
    return (size_t)s < MG_ARRAY_LEN(names) && names[s] ? names[s] : "?";
}

static void put(char *out, size_t cap, size_t *n, const char *txt)
{
    size_t l = strlen(txt);
    if (*n + l >= cap)
        l = cap - 1 - *n;
    memcpy(out + *n, txt, l);
    *n += l;
    out[*n] = '\0';
}

static void put_slice(char *out, size_t cap, size_t *n, const char *name, struct mg_slice s,
                      const char *buf, size_t len)
{
    if (s.p == NULL && s.len == 0)
        return;
    if (s.len)
        CHECK(s.p >= buf && s.p + s.len <= buf + len);
    put(out, cap, n, " ");
    put(out, cap, n, name);
    put(out, cap, n, "=");
    if (s.len > 300) {
        char h[64];
        snprintf(h, sizeof(h), "<%u bytes>", s.len);
        put(out, cap, n, h);
        return;
    }
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        char e[8];
        if (c < 32 || c > 126 || c == '\\')
            snprintf(e, sizeof(e), "\\x%02x", c);
        else
            snprintf(e, sizeof(e), "%c", c);
        put(out, cap, n, e);
    }
}

/* "status flags=.. data=.. vlen=..": the line is checked separately. */
static void rep_sig(char *out, size_t cap, const struct mg_meta_reply *r, const char *buf,
                    size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    put(out, cap, &n, status_name(r->status));
    if (r->flags.len) /* an empty flags slice may point anywhere in the line */
        put_slice(out, cap, &n, "flags", r->flags, buf, len);
    put_slice(out, cap, &n, "data", r->data, buf, len);
    if (r->vlen) {
        char t[32];
        snprintf(t, sizeof(t), " vlen=%u", r->vlen);
        put(out, cap, &n, t);
    }
}

static void show_input(const char *in, size_t n)
{
    fprintf(stderr, "    input (%zu bytes): '", n);
    for (size_t i = 0; i < n && i < 200; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 32 || c > 126)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fprintf(stderr, "%s'\n", n > 200 ? "..." : "");
}

/* Parses k bytes from an exactly-sized heap copy (ASan catches over-reads). */
static int parse_exact(const char *in, size_t k, uint32_t vmax, char *sig, size_t cap,
                       size_t *consumed)
{
    char *buf = malloc(k ? k : 1);
    struct mg_meta_reply r;
    int rc;

    memcpy(buf, in, k);
    memset(&r, 0xa5, sizeof(r));
    rc = mg_meta_parse_reply(buf, k, vmax, &r, consumed);
    sig[0] = '\0';
    if (rc == MG_OK) {
        const char *nl = memchr(buf, '\n', k);
        size_t want = nl ? (size_t)(nl - buf) : 0;
        if (want > 0 && buf[want - 1] == '\r')
            want--;
        CHECK(r.line.p == buf);
        CHECK_EQ_INT(r.line.len, want);
        rep_sig(sig, cap, &r, buf, k);
    } else {
        CHECK_EQ_INT(*consumed, 0);
    }
    free(buf);
    return rc;
}

/* Whole input, then every prefix: shorter -> MG_EAGAIN, full -> the same answer. An MG_ERR
 * case may be decided before its last byte (a bad line is bad once its '\n' is in), so
 * prefixes there may be EAGAIN or ERR but never OK. */
static void check_mcase_vmax(const struct mcase *tc, uint32_t vmax, size_t step)
{
    size_t n = tc->inlen ? tc->inlen : strlen(tc->in);
    char sig[1024], ps[1024];
    size_t consumed, pc;
    int rc = parse_exact(tc->in, n, vmax, sig, sizeof(sig), &consumed);

    if (rc != tc->rc || (rc == MG_OK && (consumed != n || strcmp(sig, tc->want) != 0))) {
        fprintf(stderr, "  case mismatch: rc %d (want %d) consumed %zu of %zu\n", rc, tc->rc,
                consumed, n);
        fprintf(stderr, "    got  '%s'\n    want '%s'\n", sig, tc->want ? tc->want : "");
        show_input(tc->in, n);
        CHECK(0);
        return;
    }
    for (size_t k = 0; k < n; k += (k + step < n ? step : 1)) {
        int prc = parse_exact(tc->in, k, vmax, ps, sizeof(ps), &pc);
        bool ok = tc->rc == MG_ERR ? prc == MG_EAGAIN || prc == MG_ERR : prc == MG_EAGAIN;
        if (!ok) {
            fprintf(stderr, "  prefix %zu of %zu: rc %d '%s'\n", k, n, prc, ps);
            show_input(tc->in, n);
            CHECK(0);
            return;
        }
    }
}

static void check_mcase(const struct mcase *tc)
{
    check_mcase_vmax(tc, VMAX, 1);
}

static const struct mcase ok_cases[] = {
    { "VA 5 f0 c1\r\nhello\r\n", 0, MG_OK, "VA flags=f0 c1 data=hello vlen=5" },
    { "VA 5\r\nhello\r\n", 0, MG_OK, "VA data=hello vlen=5" },
    { "VA 5\nhello\r\n", 0, MG_OK, "VA data=hello vlen=5" },
    { "VA 0\r\n\r\n", 0, MG_OK, "VA data=" },
    { "VA 2 \r\nxx\r\n", 0, MG_OK, "VA data=xx vlen=2" },
    { "VA 2  t-1  Oab kfoo\r\nxx\r\n", 0, MG_OK, "VA flags=t-1  Oab kfoo data=xx vlen=2" },
    { "VA 4 s4\r\n\r\n\r\n\r\n", 0, MG_OK, "VA flags=s4 data=\\x0d\\x0a\\x0d\\x0a vlen=4" },
    { "VA 3\r\n\x00\x80\n\r\n", 11, MG_OK, "VA data=\\x00\\x80\\x0a vlen=3" },
    { "VA 100\r\n"
      "01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901"
      "23456789"
      "\r\n",
      0, MG_OK,
      "VA "
      "data="
      "01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901"
      "23456789 vlen=100" },
    { "HD\r\n", 0, MG_OK, "HD" },
    { "HD\n", 0, MG_OK, "HD" },
    { "HD c123 O1 kfoo b\r\n", 0, MG_OK, "HD flags=c123 O1 kfoo b" },
    { "HD   \r\n", 0, MG_OK, "HD" },
    { "EN\r\n", 0, MG_OK, "EN" },
    { "EN Oabc kZm9v b\r\n", 0, MG_OK, "EN flags=Oabc kZm9v b" },
    { "NF\r\n", 0, MG_OK, "NF" },
    { "NF O9\r\n", 0, MG_OK, "NF flags=O9" },
    { "NS\r\n", 0, MG_OK, "NS" },
    { "EX c5\r\n", 0, MG_OK, "EX flags=c5" },
    { "MN\r\n", 0, MG_OK, "MN" },
    { "ME foo exp=-1 la=2 cas=3 fetch=no cls=1 size=63\r\n", 0, MG_OK,
      "ME flags=foo exp=-1 la=2 cas=3 fetch=no cls=1 size=63" },
    { "OK\r\n", 0, MG_OK, "OK" },
    { "ERROR\r\n", 0, MG_OK, "ERROR" },
    { "ERROR cannot pipeline other commands before watch\r\n", 0, MG_OK,
      "ERROR flags=cannot pipeline other commands before watch" },
    { "CLIENT_ERROR bad command line format\r\n", 0, MG_OK,
      "CLIENT_ERROR flags=bad command line format" },
    { "CLIENT_ERROR\r\n", 0, MG_OK, "CLIENT_ERROR" },
    { "SERVER_ERROR out of memory storing object\r\n", 0, MG_OK,
      "SERVER_ERROR flags=out of memory storing object" },
    { "SERVER_ERROR object too large for cache\n", 0, MG_OK,
      "SERVER_ERROR flags=object too large for cache" },
    /* anything else that looks like a reply is passed on whole */
    { "VERSION 1.6.18\r\n", 0, MG_OK, "OTHER flags=VERSION 1.6.18" },
    { "STAT pid 4531\r\n", 0, MG_OK, "OTHER flags=STAT pid 4531" },
    { "END\r\n", 0, MG_OK, "OTHER flags=END" },
    { "STORED\r\n", 0, MG_OK, "OTHER flags=STORED" },
    { "EXISTS\r\n", 0, MG_OK, "OTHER flags=EXISTS" },
    { "NOT_FOUND\r\n", 0, MG_OK, "OTHER flags=NOT_FOUND" },
    { "ERRORS\r\n", 0, MG_OK, "OTHER flags=ERRORS" },
    { "OKAY\r\n", 0, MG_OK, "OTHER flags=OKAY" },
    { "VAX 5\r\n", 0, MG_OK, "OTHER flags=VAX 5" },
    { "HDx\r\n", 0, MG_OK, "OTHER flags=HDx" },
    { "X\r\n", 0, MG_OK, "OTHER flags=X" },
    { "42\r\n", 0, MG_OK, "OTHER flags=42" },
    { "EN k\xc3\xa9\r\n", 0, MG_OK, "EN flags=k\\xc3\\xa9" },
};

static const struct mcase err_cases[] = {
    { "VA\r\n", 0, MG_ERR, NULL },
    { "VA \r\n", 0, MG_ERR, NULL },
    { "VA x\r\n", 0, MG_ERR, NULL },
    { "VA 5x\r\nhello\r\n", 0, MG_ERR, NULL },
    { "VA -1\r\n", 0, MG_ERR, NULL },
    { "VA +1\r\nx\r\n", 0, MG_ERR, NULL },
    { "VA 101\r\n", 0, MG_ERR, NULL },
    { "VA 99999999999999999999999\r\n", 0, MG_ERR, NULL },
    { "VA 5\r\nhelloXX", 0, MG_ERR, NULL },
    { "VA 5\r\nhello\n\n", 0, MG_ERR, NULL },
    { "VA 5\r\nhello\r\r", 0, MG_ERR, NULL },
    { "VA 2 f1\r\nxx\rx", 0, MG_ERR, NULL },
    { "VA 0\r\nab", 0, MG_ERR, NULL },
    { "\r\n", 0, MG_ERR, NULL },
    { "\n", 0, MG_ERR, NULL },
    { " HD\r\n", 0, MG_ERR, NULL },
    { "hd\r\n", 0, MG_ERR, NULL },
    { "HD \x01\r\n", 0, MG_ERR, NULL },
    { "HD\t\r\n", 0, MG_ERR, NULL },
    { "EN\x7f\r\n", 0, MG_ERR, NULL },
    { "\x81\x00\x00\x00\x04\x00\x00\x00\n", 9, MG_ERR, NULL },
    { "\x00\r\n", 3, MG_ERR, NULL },
    { "HD\r\r\n", 0, MG_ERR, NULL },
};

static const struct mcase eagain_cases[] = {
    { "", 0, MG_EAGAIN, NULL },
    { "H", 0, MG_EAGAIN, NULL },
    { "HD", 0, MG_EAGAIN, NULL },
    { "HD\r", 0, MG_EAGAIN, NULL },
    { "VA 5\r\n", 0, MG_EAGAIN, NULL },
    { "VA 5\r\nhel", 0, MG_EAGAIN, NULL },
    { "VA 5\r\nhello\r", 0, MG_EAGAIN, NULL },
    { "VA 100\r\n", 0, MG_EAGAIN, NULL },
    { "\x81\x00\x00", 3, MG_EAGAIN, NULL },
};

static void test_ok_table(void)
{
    for (size_t i = 0; i < MG_ARRAY_LEN(ok_cases); i++)
        check_mcase(&ok_cases[i]);
}

static void test_err_table(void)
{
    for (size_t i = 0; i < MG_ARRAY_LEN(err_cases); i++)
        check_mcase(&err_cases[i]);
}

static void test_eagain_table(void)
{
    for (size_t i = 0; i < MG_ARRAY_LEN(eagain_cases); i++)
        check_mcase(&eagain_cases[i]);
}

/* Every pair of valid replies back to back parses as two. */
static void test_pairs(void)
{
    static char cat[1024];
    for (size_t i = 0; i < MG_ARRAY_LEN(ok_cases); i++) {
        const struct mcase *a = &ok_cases[i];
        size_t la = a->inlen ? a->inlen : strlen(a->in);
        for (size_t j = 0; j < MG_ARRAY_LEN(ok_cases); j++) {
            const struct mcase *b = &ok_cases[j];
            size_t lb = b->inlen ? b->inlen : strlen(b->in);
            struct mg_meta_reply r;
            char s1[1024], s2[1024];
            size_t c1, c2;
            memcpy(cat, a->in, la);
            memcpy(cat + la, b->in, lb);
            int rc1 = mg_meta_parse_reply(cat, la + lb, VMAX, &r, &c1);
            rep_sig(s1, sizeof(s1), &r, cat, la + lb);
            int rc2 = mg_meta_parse_reply(cat + c1, la + lb - c1, VMAX, &r, &c2);
            rep_sig(s2, sizeof(s2), &r, cat + c1, la + lb - c1);
            if (rc1 != MG_OK || c1 != la || strcmp(s1, a->want) != 0 || rc2 != MG_OK || c2 != lb ||
                strcmp(s2, b->want) != 0) {
                fprintf(stderr, "  pair %zu+%zu: '%s' / '%s'\n", i, j, s1, s2);
                show_input(cat, la + lb);
                CHECK(0);
                return;
            }
        }
    }
}

/* All valid replies as one stream, fed in chunks of several sizes. */
static void test_stream_all_chunkings(void)
{
    static char stream[8192], want[16384], got[16384];
    size_t n = 0, wn = 0;

    for (size_t i = 0; i < MG_ARRAY_LEN(ok_cases); i++) {
        size_t l = ok_cases[i].inlen ? ok_cases[i].inlen : strlen(ok_cases[i].in);
        memcpy(stream + n, ok_cases[i].in, l);
        n += l;
        wn += (size_t)snprintf(want + wn, sizeof(want) - wn, "%s\n", ok_cases[i].want);
    }
    static const size_t chunks[] = { 1, 2, 3, 7, 64, 8192 };
    for (size_t c = 0; c < MG_ARRAY_LEN(chunks); c++) {
        char *buf = malloc(n);
        size_t have = 0, fed = 0, gn = 0;
        got[0] = '\0';
        while (fed < n) {
            size_t take = n - fed < chunks[c] ? n - fed : chunks[c];
            memcpy(buf + have, stream + fed, take);
            have += take;
            fed += take;
            for (;;) {
                struct mg_meta_reply r;
                char s[1024];
                size_t used;
                int rc = mg_meta_parse_reply(buf, have, VMAX, &r, &used);
                if (rc != MG_OK) {
                    CHECK_EQ_INT(rc, MG_EAGAIN);
                    break;
                }
                rep_sig(s, sizeof(s), &r, buf, have);
                gn += (size_t)snprintf(got + gn, sizeof(got) - gn, "%s\n", s);
                memmove(buf, buf + used, have - used);
                have -= used;
            }
        }
        CHECK_EQ_INT(have, 0);
        if (strcmp(got, want) != 0) {
            fprintf(stderr, "  chunk size %zu: stream results differ\n", chunks[c]);
            CHECK(0);
        }
        free(buf);
    }
}

/* A typical pipelined answer to "mg a v\r\nmg b v\r\nmn\r\n". */
static void test_pipeline(void)
{
    static const char p[] = "VA 2 f0 c7\r\nab\r\nEN\r\nMN\r\n";
    const char *at = p, *end = p + sizeof(p) - 1;
    struct mg_meta_reply r;
    struct mg_slice v;
    size_t c;

    CHECK_EQ_INT(mg_meta_parse_reply(at, (size_t)(end - at), VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.status, MG_R_VA);
    CHECK_SLICE(r.data, "ab");
    CHECK_SLICE(r.line, "VA 2 f0 c7");
    CHECK(mg_meta_flag(r.flags, 'c', &v));
    CHECK_SLICE(v, "7");
    at += c;
    CHECK_EQ_INT(mg_meta_parse_reply(at, (size_t)(end - at), VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.status, MG_R_EN);
    at += c;
    CHECK_EQ_INT(mg_meta_parse_reply(at, (size_t)(end - at), VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.status, MG_R_MN);
    at += c;
    CHECK(at == end);
}

static void test_line_limit(void)
{
    /* 8192 bytes before '\n' is the most a reply line may hold */
    size_t n = 8192 + 10;
    char *s = malloc(n);
    char sig[1024];
    size_t c;

    memcpy(s, "SERVER_ERROR ", 13);
    memset(s + 13, 'x', n - 13);
    CHECK_EQ_INT(parse_exact(s, 8192, VMAX, sig, sizeof(sig), &c), MG_EAGAIN);
    CHECK_EQ_INT(parse_exact(s, 8193, VMAX, sig, sizeof(sig), &c), MG_ERR);
    s[8191] = '\r';
    s[8192] = '\n';
    CHECK_EQ_INT(parse_exact(s, 8193, VMAX, sig, sizeof(sig), &c), MG_OK);
    CHECK_EQ_INT(c, 8193);
    s[8191] = 'x';
    s[8192] = 'x';
    s[8193] = '\n';
    CHECK_EQ_INT(parse_exact(s, 8194, VMAX, sig, sizeof(sig), &c), MG_ERR);
    free(s);
}

static void test_value_max(void)
{
    char sig[1024];
    size_t c;
    /* value_max bounds VA exactly; 0 still admits empty values */
    struct mcase va1 = { "VA 1\r\nx\r\n", 0, MG_OK, "VA data=x vlen=1" };
    check_mcase_vmax(&va1, 1, 1);
    CHECK_EQ_INT(parse_exact("VA 1\r\nx\r\n", 9, 0, sig, sizeof(sig), &c), MG_ERR);
    CHECK_EQ_INT(parse_exact("VA 0\r\n\r\n", 8, 0, sig, sizeof(sig), &c), MG_OK);
    /* the largest size must not overflow the total */
    CHECK_EQ_INT(parse_exact("VA 4294967295\r\nxx", 17, UINT32_MAX, sig, sizeof(sig), &c),
                 MG_EAGAIN);
    CHECK_EQ_INT(parse_exact("VA 4294967296\r\nxx", 17, UINT32_MAX, sig, sizeof(sig), &c), MG_ERR);

    /* a default-sized value */
    size_t n = 12 + MG_VALUE_MAX_DEFAULT + 2;
    char *s = malloc(n);
    memcpy(s, "VA 1048576\r\n", 12);
    memset(s + 12, 'v', MG_VALUE_MAX_DEFAULT);
    memcpy(s + n - 2, "\r\n", 2);
    struct mg_meta_reply r;
    CHECK_EQ_INT(mg_meta_parse_reply(s, n, MG_VALUE_MAX_DEFAULT, &r, &c), MG_OK);
    CHECK_EQ_INT(c, n);
    CHECK_EQ_INT(r.data.len, MG_VALUE_MAX_DEFAULT);
    CHECK_EQ_INT(mg_meta_parse_reply(s, n - 1, MG_VALUE_MAX_DEFAULT, &r, &c), MG_EAGAIN);
    CHECK_EQ_INT(mg_meta_parse_reply(s, n, MG_VALUE_MAX_DEFAULT - 1, &r, &c), MG_ERR);
    free(s);
}

static void test_meta_flag(void)
{
    struct mg_slice flags = { "f30 c12 kfoo b", 14 }, v;

    CHECK(mg_meta_flag(flags, 'c', &v));
    CHECK_SLICE(v, "12");
    CHECK(mg_meta_flag(flags, 'f', &v));
    CHECK_SLICE(v, "30");
    CHECK(mg_meta_flag(flags, 'k', &v));
    CHECK_SLICE(v, "foo");
    CHECK(mg_meta_flag(flags, 'b', &v));
    CHECK_SLICE(v, "");
    CHECK(!mg_meta_flag(flags, 'x', &v));
    CHECK(!mg_meta_flag(flags, '3', &v)); /* only first letters count */
    CHECK(!mg_meta_flag(flags, 'o', &v));

    struct mg_slice spaced = { "   Oab    t-1   ", 16 };
    CHECK(mg_meta_flag(spaced, 'O', &v));
    CHECK_SLICE(v, "ab");
    CHECK(mg_meta_flag(spaced, 't', &v));
    CHECK_SLICE(v, "-1");
    CHECK(!mg_meta_flag(spaced, ' ', &v));

    struct mg_slice empty = { NULL, 0 }, blank = { "   ", 3 };
    CHECK(!mg_meta_flag(empty, 'c', &v));
    CHECK(!mg_meta_flag(blank, 'c', &v));

    /* first match wins */
    struct mg_slice dup = { "c1 c2", 5 };
    CHECK(mg_meta_flag(dup, 'c', &v));
    CHECK_SLICE(v, "1");

    /* straight from a parsed reply */
    struct mg_meta_reply r;
    size_t c;
    CHECK_EQ_INT(mg_meta_parse_reply("HD c99 t-1 kab\r\n", 16, VMAX, &r, &c), MG_OK);
    CHECK(mg_meta_flag(r.flags, 'k', &v));
    CHECK_SLICE(v, "ab");
    CHECK(mg_meta_flag(r.flags, 't', &v));
    CHECK_SLICE(v, "-1");
}

static void test_garbage(void)
{
    uint32_t x = 88172645u;
    for (int round = 0; round < 2000; round++) {
        char junk[200];
        size_t n = 1 + round % sizeof(junk);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            static const char hot[] = "\r\n 0123VAHDENOK\x81\x00";
            junk[i] = (x & 3) ? hot[(x >> 8) % (sizeof(hot) - 1)] : (char)(x >> 16);
        }
        char *buf = malloc(n);
        memcpy(buf, junk, n);
        size_t at = 0;
        while (at < n) {
            struct mg_meta_reply r;
            size_t c;
            int rc = mg_meta_parse_reply(buf + at, n - at, VMAX, &r, &c);
            if (rc != MG_OK) {
                CHECK_EQ_INT(c, 0);
                break;
            }
            CHECK(c > 0 && c <= n - at);
            if (c == 0 || c > n - at)
                break;
            at += c;
        }
        free(buf);
    }
}

int main(void)
{
    RUN(test_ok_table);
    RUN(test_err_table);
    RUN(test_eagain_table);
    RUN(test_pairs);
    RUN(test_stream_all_chunkings);
    RUN(test_pipeline);
    RUN(test_line_limit);
    RUN(test_value_max);
    RUN(test_meta_flag);
    RUN(test_garbage);
    CTEST_END();
}
