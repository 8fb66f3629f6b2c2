/* test_proto_text.c: table-driven tests for the client request parser (text + meta). */
#include <stdint.h>
#include <stdlib.h>

#include "ctest.h"
#include "proto_text.h"

/* The tables use a small value_max so the "too large" boundary is cheap to build. */
#define VMAX 100

#define E_ERROR "ERROR"
#define E_FORMAT "CLIENT_ERROR bad command line format"
#define E_DELETE "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
#define E_DELTA "CLIENT_ERROR invalid numeric delta argument"
#define E_EXPTIME "CLIENT_ERROR invalid exptime argument"
#define E_CHUNK "CLIENT_ERROR bad data chunk"
#define E_LARGE "SERVER_ERROR object too large for cache"
#define E_LINE "CLIENT_ERROR line too long"

/* One request and what parsing it must give. `want` is the signature built by req_sig
 * (only non-empty fields, fixed order). consumed 0 means "the whole input" for the
 * codes that consume; EAGAIN and ECLOSE always expect 0. */
struct tcase {
    const char *in;
    size_t inlen; /* 0: strlen(in); set it for inputs holding NUL bytes */
    int rc;
    const char *want;
    size_t consumed;
    uint64_t swallow;
};

/* The command's word (proto_text.c's table, the one the gateway uses). */
static const char *cmd_name(enum mg_cmd c)
{
    return mg_cmd_name(c);
}

/* Appends printf-style text to a bounded signature buffer. */
struct sigbuf {
    char s[4096];
    size_t n;
};

static void sig_raw(struct sigbuf *b, const char *txt)
{
    size_t l = strlen(txt);
    if (b->n + l >= sizeof(b->s))
        l = sizeof(b->s) - 1 - b->n;
    memcpy(b->s + b->n, txt, l);
    b->n += l;
    b->s[b->n] = '\0';
}

static void sig_num(struct sigbuf *b, const char *name, long long v, int is_unsigned)
{
    char t[64];
    if (is_unsigned)
        snprintf(t, sizeof(t), " %s=%llu", name, (unsigned long long)v);
    else
        snprintf(t, sizeof(t), " %s=%lld", name, v);
    sig_raw(b, t);
}

/* Slices are printed escaped and checked to lie inside the parsed buffer. */
static void sig_slice(struct sigbuf *b, const char *name, struct mg_slice s, const char *buf,
                      size_t len)
{
    char t[8];
    if (s.len == 0 && s.p == NULL)
        return;
    if (s.len) {
        CHECK(s.p >= buf && s.p + s.len <= buf + len);
    }
    snprintf(t, sizeof(t), " %s=", name);
    sig_raw(b, t);
    /* long slices (big keys, big data) are summarised to keep signatures short */
    if (s.len > 300) {
        char h[64];
        snprintf(h, sizeof(h), "<%u bytes %02x..%02x>", s.len, (unsigned char)s.p[0],
                 (unsigned char)s.p[s.len - 1]);
        sig_raw(b, h);
        return;
    }
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        char e[8];
        if (c < 32 || c > 126 || c == '\\')
            snprintf(e, sizeof(e), "\\x%02x", c);
        else
            snprintf(e, sizeof(e), "%c", c);
        sig_raw(b, e);
    }
}

static const char *req_sig(struct sigbuf *b, const struct mg_text_req *r, const char *buf,
                           size_t len)
{
    b->n = 0;
    b->s[0] = '\0';
    sig_raw(b, "cmd=");
    sig_raw(b, cmd_name(r->cmd));
    sig_slice(b, "key", r->key, buf, len);
    if (r->nkeys) {
        sig_slice(b, "keys", r->keys, buf, len);
        sig_num(b, "nkeys", r->nkeys, 1);
    }
    if (r->flags)
        sig_num(b, "flags", r->flags, 1);
    if (r->exptime)
        sig_num(b, "exp", r->exptime, 0);
    if (r->vlen)
        sig_num(b, "vlen", r->vlen, 1);
    if (r->data.p)
        sig_slice(b, "data", r->data, buf, len);
    if (r->cas)
        sig_num(b, "cas", (long long)r->cas, 1);
    if (r->delta)
        sig_num(b, "delta", (long long)r->delta, 1);
    if (r->num)
        sig_num(b, "num", r->num, 0);
    if (r->noreply)
        sig_raw(b, " noreply");
    if (r->args.len)
        sig_slice(b, "args", r->args, buf, len);
    if (r->err) {
        sig_raw(b, " err=");
        sig_raw(b, r->err);
    }
    if (r->swallow)
        sig_num(b, "swallow", (long long)r->swallow, 1);
    return b->s;
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

/* Parses the first k bytes of in from an exactly-sized heap copy, so ASan sees any read
 * past the end, and returns rc; sig and consumed describe the result. */
static int parse_exact(const char *in, size_t k, uint32_t vmax, struct sigbuf *sig,
                       size_t *consumed)
{
    char *buf = malloc(k ? k : 1);
    struct mg_text_req req;
    int rc;

    memcpy(buf, in, k);
    memset(&req, 0xa5, sizeof(req)); /* the parser must not depend on a clean req */
    rc = mg_text_parse(buf, k, vmax, &req, consumed);
    if (rc != MG_EAGAIN && rc != MG_ECLOSE) {
        /* line is always the first line without its terminator */
        const char *nl = memchr(buf, '\n', k);
        size_t want = nl ? (size_t)(nl - buf) : 0;
        if (want > 0 && buf[want - 1] == '\r')
            want--;
        CHECK(req.line.p == buf);
        CHECK_EQ_INT(req.line.len, want);
    }
    if (rc == MG_OK || rc == MG_ECLIENT || rc == MG_ESWALLOW || rc == MG_ECLOSE)
        req_sig(sig, &req, buf, k);
    else
        sig->s[0] = '\0';
    if (rc == MG_OK)
        CHECK(req.err == NULL);
    else if (rc != MG_EAGAIN)
        CHECK(req.err != NULL);
    free(buf);
    return rc;
}

/* Checks one case on the whole input, then on every prefix (step bytes apart, always
 * including the boundaries around `consumed`): shorter than what the request needs ->
 * MG_EAGAIN with nothing consumed, enough -> the very same result. */
static void check_case_step(const struct tcase *tc, uint32_t vmax, size_t step)
{
    size_t n = tc->inlen ? tc->inlen : strlen(tc->in);
    size_t want_consumed = tc->consumed ? tc->consumed : n;
    struct sigbuf sig;
    size_t consumed;
    int rc;

    if (tc->rc == MG_EAGAIN || tc->rc == MG_ECLOSE)
        want_consumed = 0;
    rc = parse_exact(tc->in, n, vmax, &sig, &consumed);
    if (rc != tc->rc || consumed != want_consumed || (tc->want && strcmp(sig.s, tc->want) != 0)) {
        fprintf(stderr, "  case mismatch: rc %d (want %d) consumed %zu (want %zu)\n", rc, tc->rc,
                consumed, want_consumed);
        fprintf(stderr, "    got  '%s'\n    want '%s'\n", sig.s, tc->want ? tc->want : "");
        show_input(tc->in, n);
        CHECK(0);
        return;
    }
    if (tc->rc == MG_ECLOSE)
        return; /* prefixes of over-long lines are covered by test_line_limits */

    /* The byte count at which the parser must commit to its answer. */
    size_t need = tc->rc == MG_EAGAIN ? n + 1 : want_consumed;
    if (tc->rc == MG_ESWALLOW || (tc->rc == MG_ECLIENT && tc->consumed))
        need = want_consumed; /* answered as soon as the line is in */
    for (size_t k = 0; k < n; k += (k + step < need || k >= need + 2 || step == 1) ? step : 1) {
        struct sigbuf ps;
        size_t pc;
        int prc = parse_exact(tc->in, k, vmax, &ps, &pc);
        if (k < need) {
            if (prc != MG_EAGAIN || pc != 0) {
                fprintf(stderr, "  prefix %zu of %zu: rc %d consumed %zu, want EAGAIN\n", k, n, prc,
                        pc);
                show_input(tc->in, n);
                CHECK(0);
                return;
            }
        } else if (prc != rc || pc != consumed || strcmp(ps.s, sig.s) != 0) {
            fprintf(stderr, "  prefix %zu of %zu: rc %d '%s', want rc %d '%s'\n", k, n, prc, ps.s,
                    rc, sig.s);
            show_input(tc->in, n);
            CHECK(0);
            return;
        }
    }
}

static void check_case(const struct tcase *tc)
{
    check_case_step(tc, VMAX, 1);
}

/* ------------------------------------------------------------------------------------ */
/* The tables. Every reply and error string was checked against memcached 1.6.18. */

static const struct tcase ok_cases[] = {
    /* retrieval */
    { "get a\r\n", 0, MG_OK, "cmd=get key=a keys=a nkeys=1", 0, 0 },
    { "get a\n", 0, MG_OK, "cmd=get key=a keys=a nkeys=1", 0, 0 },
    { "gets foo bar baz\r\n", 0, MG_OK, "cmd=gets key=foo keys=foo bar baz nkeys=3", 0, 0 },
    { "get   a    b  \r\n", 0, MG_OK, "cmd=get key=a keys=a    b nkeys=2", 0, 0 },
    { "  get a\r\n", 0, MG_OK, "cmd=get key=a keys=a nkeys=1", 0, 0 },
    { "get \xc3\xa9t\xc3\xa9\r\n", 0, MG_OK,
      "cmd=get key=\\xc3\\xa9t\\xc3\\xa9 keys=\\xc3\\xa9t\\xc3\\xa9 nkeys=1", 0, 0 },
    { "get a:b/c{d}~!\r\n", 0, MG_OK, "cmd=get key=a:b/c{d}~! keys=a:b/c{d}~! nkeys=1", 0, 0 },
    { "gat 10 a b\r\n", 0, MG_OK, "cmd=gat key=a keys=a b nkeys=2 exp=10", 0, 0 },
    { "gats -1 k\n", 0, MG_OK, "cmd=gats key=k keys=k nkeys=1 exp=-1", 0, 0 },
    { "gat 0 k\r\n", 0, MG_OK, "cmd=gat key=k keys=k nkeys=1", 0, 0 },
    { "gat +5 k\r\n", 0, MG_OK, "cmd=gat key=k keys=k nkeys=1 exp=5", 0, 0 },
    { "get noreply\r\n", 0, MG_OK, "cmd=get key=noreply keys=noreply nkeys=1", 0, 0 },
    /* storage */
    { "set a 1 2 3\r\nabc\r\n", 0, MG_OK, "cmd=set key=a flags=1 exp=2 vlen=3 data=abc", 0, 0 },
    { "set a 1 2 3\nabc\r\n", 0, MG_OK, "cmd=set key=a flags=1 exp=2 vlen=3 data=abc", 0, 0 },
    { "add a 0 0 1\r\nx\r\n", 0, MG_OK, "cmd=add key=a vlen=1 data=x", 0, 0 },
    { "replace a 0 0 1\r\nx\r\n", 0, MG_OK, "cmd=replace key=a vlen=1 data=x", 0, 0 },
    { "append a 0 0 1\r\nx\r\n", 0, MG_OK, "cmd=append key=a vlen=1 data=x", 0, 0 },
    { "prepend a 0 0 1\r\nx\r\n", 0, MG_OK, "cmd=prepend key=a vlen=1 data=x", 0, 0 },
    { "cas a 0 0 1 99\r\nx\r\n", 0, MG_OK, "cmd=cas key=a vlen=1 data=x cas=99", 0, 0 },
    { "cas a 0 0 1 18446744073709551615 noreply\r\nx\r\n", 0, MG_OK,
      "cmd=cas key=a vlen=1 data=x cas=18446744073709551615 noreply", 0, 0 },
    { "set a 0 0 5 noreply\r\nhello\r\n", 0, MG_OK, "cmd=set key=a vlen=5 data=hello noreply", 0,
      0 },
    /* memcached ignores a 6th word that is not noreply */
    { "set a 0 0 5 garbage\r\nhello\r\n", 0, MG_OK, "cmd=set key=a vlen=5 data=hello", 0, 0 },
    { "set  a   0  0  1  \r\nx\r\n", 0, MG_OK, "cmd=set key=a vlen=1 data=x", 0, 0 },
    { "set a 0 0 0\r\n\r\n", 0, MG_OK, "cmd=set key=a data=", 0, 0 },
    { "set a 0 0 4\r\n\r\n\r\n\r\n", 0, MG_OK, "cmd=set key=a vlen=4 data=\\x0d\\x0a\\x0d\\x0a", 0,
      0 },
    { "set a 0 0 3\r\n\x00\x80\n\r\n", 18, MG_OK, "cmd=set key=a vlen=3 data=\\x00\\x80\\x0a", 0,
      0 },
    { "set a 4294967295 -5 1\r\nx\r\n", 0, MG_OK,
      "cmd=set key=a flags=4294967295 exp=-5 vlen=1 data=x", 0, 0 },
    { "set a +1 9223372036854775807 +1\r\nx\r\n", 0, MG_OK,
      "cmd=set key=a flags=1 exp=9223372036854775807 vlen=1 data=x", 0, 0 },
    { "set a 0 -9223372036854775808 1\r\nx\r\n", 0, MG_OK,
      "cmd=set key=a exp=-9223372036854775808 vlen=1 data=x", 0, 0 },
    { "set a 007 0 01\r\nx\r\n", 0, MG_OK, "cmd=set key=a flags=7 vlen=1 data=x", 0, 0 },
    /* single key */
    { "delete a\r\n", 0, MG_OK, "cmd=delete key=a", 0, 0 },
    { "delete a 0\r\n", 0, MG_OK, "cmd=delete key=a", 0, 0 },
    { "delete a noreply\r\n", 0, MG_OK, "cmd=delete key=a noreply", 0, 0 },
    { "delete a 0 noreply\n", 0, MG_OK, "cmd=delete key=a noreply", 0, 0 },
    { "incr a 1\r\n", 0, MG_OK, "cmd=incr key=a delta=1", 0, 0 },
    { "incr a 0\r\n", 0, MG_OK, "cmd=incr key=a", 0, 0 },
    { "decr a 18446744073709551615 noreply\r\n", 0, MG_OK,
      "cmd=decr key=a delta=18446744073709551615 noreply", 0, 0 },
    { "incr a 1 x\r\n", 0, MG_OK, "cmd=incr key=a delta=1", 0, 0 },
    { "touch a 10\r\n", 0, MG_OK, "cmd=touch key=a exp=10", 0, 0 },
    { "touch a -1 noreply\r\n", 0, MG_OK, "cmd=touch key=a exp=-1 noreply", 0, 0 },
    { "touch a 10 x\r\n", 0, MG_OK, "cmd=touch key=a exp=10", 0, 0 },
    /* gateway-level */
    { "flush_all\r\n", 0, MG_OK, "cmd=flush_all", 0, 0 },
    { "flush_all noreply\r\n", 0, MG_OK, "cmd=flush_all noreply", 0, 0 },
    { "flush_all 10\r\n", 0, MG_OK, "cmd=flush_all num=10", 0, 0 },
    { "flush_all 10 noreply\r\n", 0, MG_OK, "cmd=flush_all num=10 noreply", 0, 0 },
    { "flush_all -5\r\n", 0, MG_OK, "cmd=flush_all num=-5", 0, 0 },
    { "flush_all 10 x\r\n", 0, MG_OK, "cmd=flush_all num=10", 0, 0 },
    { "version\r\n", 0, MG_OK, "cmd=version", 0, 0 },
    { "version foo bar\r\n", 0, MG_OK, "cmd=version", 0, 0 },
    { "quit\r\n", 0, MG_OK, "cmd=quit", 0, 0 },
    { "quit foo\n", 0, MG_OK, "cmd=quit", 0, 0 },
    { "verbosity 1\r\n", 0, MG_OK, "cmd=verbosity num=1", 0, 0 },
    { "verbosity 0 noreply\r\n", 0, MG_OK, "cmd=verbosity noreply", 0, 0 },
    { "verbosity 4294967295 x\r\n", 0, MG_OK, "cmd=verbosity num=4294967295", 0, 0 },
    { "stats\r\n", 0, MG_OK, "cmd=stats", 0, 0 },
    { "stats items\r\n", 0, MG_OK, "cmd=stats args=items", 0, 0 },
    { "stats  detail  dump \r\n", 0, MG_OK, "cmd=stats args=detail  dump", 0, 0 },
    /* meta */
    { "mg a\r\n", 0, MG_OK, "cmd=mg key=a", 0, 0 },
    { "mg a v t\r\n", 0, MG_OK, "cmd=mg key=a args=v t", 0, 0 },
    { "mg   a    v  f  \n", 0, MG_OK, "cmd=mg key=a args=v  f", 0, 0 },
    { "mg Zm9vYmFy b v\r\n", 0, MG_OK, "cmd=mg key=Zm9vYmFy args=b v", 0, 0 },
    { "md a q C123\r\n", 0, MG_OK, "cmd=md key=a args=q C123", 0, 0 },
    { "ma a MD D5\r\n", 0, MG_OK, "cmd=ma key=a args=MD D5", 0, 0 },
    { "mn\r\n", 0, MG_OK, "cmd=mn", 0, 0 },
    { "mn x y\r\n", 0, MG_OK, "cmd=mn args=x y", 0, 0 },
    { "me a\r\n", 0, MG_OK, "cmd=me key=a", 0, 0 },
    { "ms a 2\r\nxx\r\n", 0, MG_OK, "cmd=ms key=a vlen=2 data=xx", 0, 0 },
    { "ms a 2 T0 F5 c\r\nxx\r\n", 0, MG_OK, "cmd=ms key=a vlen=2 data=xx args=T0 F5 c", 0, 0 },
    { "ms a 0 q\n\r\n", 0, MG_OK, "cmd=ms key=a data= args=q", 0, 0 },
    { "ms  a  3  \r\n\r\nx\r\n", 0, MG_OK, "cmd=ms key=a vlen=3 data=\\x0d\\x0ax", 0, 0 },
};

static const struct tcase err_cases[] = {
    /* unknown words, empty lines, junk: ERROR, line consumed, whole line in args */
    { "foo bar\r\n", 0, MG_ECLIENT, "cmd=unknown args=foo bar err=ERROR", 0, 0 },
    { "GET a\r\n", 0, MG_ECLIENT, "cmd=unknown args=GET a err=ERROR", 0, 0 },
    { "shutdown graceful\n", 0, MG_ECLIENT, "cmd=unknown args=shutdown graceful err=ERROR", 0, 0 },
    { "g\r\n", 0, MG_ECLIENT, "cmd=unknown args=g err=ERROR", 0, 0 },
    { "mq a\r\n", 0, MG_ECLIENT, "cmd=unknown args=mq a err=ERROR", 0, 0 },
    { "mgg a\r\n", 0, MG_ECLIENT, "cmd=unknown args=mgg a err=ERROR", 0, 0 },
    { "getx a\r\n", 0, MG_ECLIENT, "cmd=unknown args=getx a err=ERROR", 0, 0 },
    { "\r\n", 0, MG_ECLIENT, "cmd=unknown err=ERROR", 0, 0 },
    { "\n", 0, MG_ECLIENT, "cmd=unknown err=ERROR", 0, 0 },
    { "   \r\n", 0, MG_ECLIENT, "cmd=unknown args=    err=ERROR", 0, 0 },
    { "\r\r\n", 0, MG_ECLIENT, "cmd=unknown args=\\x0d err=ERROR", 0, 0 },
    { "get\ta\r\n", 0, MG_ECLIENT, "cmd=unknown args=get\\x09a err=ERROR", 0, 0 },
    /* binary garbage: a binary-protocol GET header, NULs, high bytes */
    { "\x80\x00\x00\x01\x00\x00\x00\x00\n", 9, MG_ECLIENT,
      "cmd=unknown args=\\x80\\x00\\x00\\x01\\x00\\x00\\x00\\x00 err=ERROR", 0, 0 },
    { "\x00\x00\x00\r\n", 5, MG_ECLIENT, "cmd=unknown args=\\x00\\x00\\x00 err=ERROR", 0, 0 },
    { "\xff\xfe get a\r\n", 0, MG_ECLIENT, "cmd=unknown args=\\xff\\xfe get a err=ERROR", 0, 0 },
    /* retrieval */
    { "get\r\n", 0, MG_ECLIENT, "cmd=get err=ERROR", 0, 0 },
    { "get   \r\n", 0, MG_ECLIENT, "cmd=get err=ERROR", 0, 0 },
    { "gets\n", 0, MG_ECLIENT, "cmd=gets err=ERROR", 0, 0 },
    { "get a\x00"
      "b\r\n",
      9, MG_ECLIENT, "cmd=get key=a\\x00b err=" E_FORMAT, 0, 0 },
    { "get a\tb\r\n", 0, MG_ECLIENT, "cmd=get key=a\\x09b err=" E_FORMAT, 0, 0 },
    { "get a \x7f\r\n", 0, MG_ECLIENT, "cmd=get key=a err=" E_FORMAT, 0, 0 },
    { "get a b\x01\r\n", 0, MG_ECLIENT, "cmd=get key=a err=" E_FORMAT, 0, 0 },
    { "get a\r\r\n", 0, MG_ECLIENT, "cmd=get key=a\\x0d err=" E_FORMAT, 0, 0 },
    { "gat\r\n", 0, MG_ECLIENT, "cmd=gat err=ERROR", 0, 0 },
    { "gat 10\r\n", 0, MG_ECLIENT, "cmd=gat exp=10 err=END", 0, 0 },
    { "gats 10   \r\n", 0, MG_ECLIENT, "cmd=gats exp=10 err=END", 0, 0 },
    { "gat x a\r\n", 0, MG_ECLIENT, "cmd=gat err=" E_EXPTIME, 0, 0 },
    { "gat 9223372036854775808 a\r\n", 0, MG_ECLIENT, "cmd=gat err=" E_EXPTIME, 0, 0 },
    /* storage: too few / too many words -> ERROR, the data is then parsed as commands */
    { "set a 0 0\r\n", 0, MG_ECLIENT, "cmd=set err=ERROR", 0, 0 },
    { "set\r\n", 0, MG_ECLIENT, "cmd=set err=ERROR", 0, 0 },
    { "set a 0 0 5 noreply extra\r\nhello\r\n", 0, MG_ECLIENT, "cmd=set err=ERROR", 27, 0 },
    { "cas a 0 0 1\r\nx\r\n", 0, MG_ECLIENT, "cmd=cas err=ERROR", 13, 0 },
    { "cas a 0 0 1 1 noreply x\r\n", 0, MG_ECLIENT, "cmd=cas err=ERROR", 0, 0 },
    /* storage: bad numbers -> CLIENT_ERROR, line only consumed (no swallow) */
    { "set a x 0 5\r\nhello\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 13, 0 },
    { "set a 0 0 -1\r\nxyz\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 14, 0 },
    { "set a 0 0 1x\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 0, 0 },
    { "set a 0 0 +\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 0, 0 },
    { "set a -1 0 1\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 0, 0 },
    { "set a 4294967296 0 1\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 0, 0 },
    { "set a 0 0 4294967296\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 0, 0 },
    { "set a 0 9223372036854775808 1\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 0, 0 },
    { "set a 0 -9223372036854775809 1\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 0, 0 },
    { "set a 0 99999999999999999999 1\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 0, 0 },
    { "set a 0 - 1\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 0, 0 },
    { "set a 0 -+1 1\r\n", 0, MG_ECLIENT, "cmd=set key=a err=" E_FORMAT, 0, 0 },
    { "set a 0 x 5 noreply\r\nhello\r\n", 0, MG_ECLIENT, "cmd=set key=a noreply err=" E_FORMAT, 21,
      0 },
    { "set a 0 0 noreply\r\n", 0, MG_ECLIENT, "cmd=set key=a noreply err=" E_FORMAT, 0, 0 },
    { "set a\x01 0 0 1\r\nx\r\n", 0, MG_ECLIENT, "cmd=set key=a\\x01 err=" E_FORMAT, 14, 0 },
    { "cas a 0 0 1 noreply\r\nx\r\n", 0, MG_ECLIENT, "cmd=cas key=a vlen=1 noreply err=" E_FORMAT,
      21, 0 },
    { "cas a 0 0 1 x\r\n", 0, MG_ECLIENT, "cmd=cas key=a vlen=1 err=" E_FORMAT, 0, 0 },
    { "cas a 0 0 1 -1\r\n", 0, MG_ECLIENT, "cmd=cas key=a vlen=1 err=" E_FORMAT, 0, 0 },
    { "cas a 0 0 1 18446744073709551616\r\n", 0, MG_ECLIENT, "cmd=cas key=a vlen=1 err=" E_FORMAT,
      0, 0 },
    /* data block not ending in \r\n: consumed = line + vlen + 2, as memcached does */
    { "set a 0 0 5\r\nhelloXX", 0, MG_ECLIENT, "cmd=set key=a vlen=5 err=" E_CHUNK, 0, 0 },
    { "set a 0 0 5\r\nhello\nX", 0, MG_ECLIENT, "cmd=set key=a vlen=5 err=" E_CHUNK, 0, 0 },
    { "set a 0 0 5\r\nhello\r\r", 0, MG_ECLIENT, "cmd=set key=a vlen=5 err=" E_CHUNK, 0, 0 },
    { "set a 0 0 0\r\nab", 0, MG_ECLIENT, "cmd=set key=a err=" E_CHUNK, 0, 0 },
    { "set a 0 0 5 noreply\r\nhelloXX", 0, MG_ECLIENT, "cmd=set key=a vlen=5 noreply err=" E_CHUNK,
      0, 0 },
    { "ms a 2\r\nxxyy", 0, MG_ECLIENT, "cmd=ms key=a vlen=2 err=" E_CHUNK, 0, 0 },
    /* too large: answer, consume the line, swallow the block */
    { "set a 0 0 101\r\n", 0, MG_ESWALLOW, "cmd=set key=a vlen=101 err=" E_LARGE " swallow=103", 0,
      103 },
    { "set a 0 0 101 noreply\r\n", 0, MG_ESWALLOW,
      "cmd=set key=a vlen=101 noreply err=" E_LARGE " swallow=103", 0, 103 },
    { "cas a 0 0 4294967295 1\r\n", 0, MG_ESWALLOW,
      "cmd=cas key=a vlen=4294967295 cas=1 err=" E_LARGE " swallow=4294967297", 0, 4294967297ull },
    { "ms a 101 T0\r\n", 0, MG_ESWALLOW,
      "cmd=ms key=a vlen=101 args=T0 err=" E_LARGE " swallow=103", 0, 103 },
    /* delete */
    { "delete\r\n", 0, MG_ECLIENT, "cmd=delete err=ERROR", 0, 0 },
    { "delete a 5\r\n", 0, MG_ECLIENT, "cmd=delete key=a err=" E_DELETE, 0, 0 },
    { "delete a 5 noreply\r\n", 0, MG_ECLIENT, "cmd=delete key=a noreply err=" E_DELETE, 0, 0 },
    { "delete a noreply 0\r\n", 0, MG_ECLIENT, "cmd=delete key=a err=" E_DELETE, 0, 0 },
    { "delete a 0 0\r\n", 0, MG_ECLIENT, "cmd=delete key=a err=" E_DELETE, 0, 0 },
    { "delete a 00\r\n", 0, MG_ECLIENT, "cmd=delete key=a err=" E_DELETE, 0, 0 },
    { "delete a x y z\r\n", 0, MG_ECLIENT, "cmd=delete err=ERROR", 0, 0 },
    { "delete a\x7f\r\n", 0, MG_ECLIENT, "cmd=delete key=a\\x7f err=" E_FORMAT, 0, 0 },
    /* incr / decr */
    { "incr a\r\n", 0, MG_ECLIENT, "cmd=incr err=ERROR", 0, 0 },
    { "decr a\r\n", 0, MG_ECLIENT, "cmd=decr err=ERROR", 0, 0 },
    { "incr a 1 2 3\r\n", 0, MG_ECLIENT, "cmd=incr err=ERROR", 0, 0 },
    { "incr a x\r\n", 0, MG_ECLIENT, "cmd=incr key=a err=" E_DELTA, 0, 0 },
    { "incr a -1\r\n", 0, MG_ECLIENT, "cmd=incr key=a err=" E_DELTA, 0, 0 },
    { "incr a 18446744073709551616\r\n", 0, MG_ECLIENT, "cmd=incr key=a err=" E_DELTA, 0, 0 },
    { "decr a 1.5\r\n", 0, MG_ECLIENT, "cmd=decr key=a err=" E_DELTA, 0, 0 },
    { "incr a x noreply\r\n", 0, MG_ECLIENT, "cmd=incr key=a noreply err=" E_DELTA, 0, 0 },
    /* touch */
    { "touch a\r\n", 0, MG_ECLIENT, "cmd=touch err=ERROR", 0, 0 },
    { "touch a x\r\n", 0, MG_ECLIENT, "cmd=touch key=a err=" E_EXPTIME, 0, 0 },
    { "touch a x noreply\r\n", 0, MG_ECLIENT, "cmd=touch key=a noreply err=" E_EXPTIME, 0, 0 },
    /* flush_all / verbosity */
    { "flush_all x\r\n", 0, MG_ECLIENT, "cmd=flush_all err=" E_EXPTIME, 0, 0 },
    { "flush_all noreply 10\r\n", 0, MG_ECLIENT, "cmd=flush_all err=" E_EXPTIME, 0, 0 },
    { "flush_all noreply noreply\r\n", 0, MG_ECLIENT, "cmd=flush_all noreply err=" E_EXPTIME, 0,
      0 },
    { "flush_all 1 2 3\r\n", 0, MG_ECLIENT, "cmd=flush_all err=ERROR", 0, 0 },
    { "verbosity\r\n", 0, MG_ECLIENT, "cmd=verbosity err=ERROR", 0, 0 },
    { "verbosity x\r\n", 0, MG_ECLIENT, "cmd=verbosity err=" E_FORMAT, 0, 0 },
    { "verbosity -1\r\n", 0, MG_ECLIENT, "cmd=verbosity err=" E_FORMAT, 0, 0 },
    { "verbosity noreply\r\n", 0, MG_ECLIENT, "cmd=verbosity noreply err=" E_FORMAT, 0, 0 },
    { "verbosity 1 2 3\r\n", 0, MG_ECLIENT, "cmd=verbosity err=ERROR", 0, 0 },
    /* meta */
    { "mg\r\n", 0, MG_ECLIENT, "cmd=mg err=ERROR", 0, 0 },
    { "md  \r\n", 0, MG_ECLIENT, "cmd=md err=ERROR", 0, 0 },
    { "ma\r\n", 0, MG_ECLIENT, "cmd=ma err=ERROR", 0, 0 },
    { "me\r\n", 0, MG_ECLIENT, "cmd=me err=" E_FORMAT, 0, 0 },
    { "ms\r\n", 0, MG_ECLIENT, "cmd=ms err=ERROR", 0, 0 },
    { "ms a\r\nxx\r\n", 0, MG_ECLIENT, "cmd=ms key=a err=" E_FORMAT, 6, 0 },
    { "ms a x\r\nxx\r\n", 0, MG_ECLIENT, "cmd=ms key=a err=" E_FORMAT, 8, 0 },
    { "ms a -1\r\n", 0, MG_ECLIENT, "cmd=ms key=a err=" E_FORMAT, 0, 0 },
    { "ms a 4294967296 T0\r\n", 0, MG_ECLIENT, "cmd=ms key=a err=" E_FORMAT, 0, 0 },
    { "mg a\x01 v\r\n", 0, MG_ECLIENT, "cmd=mg key=a\\x01 err=" E_FORMAT, 0, 0 },
    { "ms a\x01 2\r\nxx\r\n", 0, MG_ESWALLOW, "cmd=ms key=a\\x01 vlen=2 err=" E_FORMAT " swallow=4",
      9, 4 },
};

static const struct tcase eagain_cases[] = {
    { "", 0, MG_EAGAIN, NULL, 0, 0 },
    { "g", 0, MG_EAGAIN, NULL, 0, 0 },
    { "get a", 0, MG_EAGAIN, NULL, 0, 0 },
    { "get a\r", 0, MG_EAGAIN, NULL, 0, 0 },
    { "set a 0 0 5\r\n", 0, MG_EAGAIN, NULL, 0, 0 },
    { "set a 0 0 5\r\nhel", 0, MG_EAGAIN, NULL, 0, 0 },
    { "set a 0 0 5\r\nhello", 0, MG_EAGAIN, NULL, 0, 0 },
    { "set a 0 0 5\r\nhello\r", 0, MG_EAGAIN, NULL, 0, 0 },
    { "ms a 2 T0\r\nx", 0, MG_EAGAIN, NULL, 0, 0 },
    { "set a 0 0 100\r\n", 0, MG_EAGAIN, NULL, 0, 0 },
    { "\x80\x01\x02", 3, MG_EAGAIN, NULL, 0, 0 },
};

static void run_table(const struct tcase *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_case(&t[i]);
}

static void test_ok_table(void)
{
    run_table(ok_cases, MG_ARRAY_LEN(ok_cases));
}

static void test_err_table(void)
{
    run_table(err_cases, MG_ARRAY_LEN(err_cases));
}

static void test_eagain_table(void)
{
    run_table(eagain_cases, MG_ARRAY_LEN(eagain_cases));
}

/* ------------------------------------------------------------------------------------ */
/* Streams: requests back to back must parse one after the other, however they are cut. */

static bool self_contained(const struct tcase *tc)
{
    size_t n = tc->inlen ? tc->inlen : strlen(tc->in);
    if (tc->rc == MG_OK || tc->rc == MG_ECLIENT)
        return tc->consumed == 0 || tc->consumed == n;
    return false;
}

/* Parses the concatenation of every pair (a, b) of self-contained cases as two requests. */
static void check_pairs(const struct tcase *ta, size_t na, const struct tcase *tb, size_t nb)
{
    static char cat[8192];
    for (size_t i = 0; i < na; i++) {
        if (!self_contained(&ta[i]))
            continue;
        size_t la = ta[i].inlen ? ta[i].inlen : strlen(ta[i].in);
        for (size_t j = 0; j < nb; j++) {
            if (!self_contained(&tb[j]))
                continue;
            size_t lb = tb[j].inlen ? tb[j].inlen : strlen(tb[j].in);
            struct mg_text_req r;
            struct sigbuf s;
            size_t c1, c2;
            memcpy(cat, ta[i].in, la);
            memcpy(cat + la, tb[j].in, lb);
            int rc1 = mg_text_parse(cat, la + lb, VMAX, &r, &c1);
            int ok1 = rc1 == ta[i].rc && c1 == la &&
                      strcmp(req_sig(&s, &r, cat, la + lb), ta[i].want) == 0;
            int rc2 = mg_text_parse(cat + c1, la + lb - c1, VMAX, &r, &c2);
            int ok2 = rc2 == tb[j].rc && c2 == lb &&
                      strcmp(req_sig(&s, &r, cat + c1, la + lb - c1), tb[j].want) == 0;
            if (!ok1 || !ok2) {
                fprintf(stderr, "  pair %zu+%zu failed (rc %d/%d consumed %zu/%zu)\n", i, j, rc1,
                        rc2, c1, c2);
                show_input(cat, la + lb);
                CHECK(0);
                return;
            }
        }
    }
}

static void test_pairs(void)
{
    check_pairs(ok_cases, MG_ARRAY_LEN(ok_cases), ok_cases, MG_ARRAY_LEN(ok_cases));
    check_pairs(ok_cases, MG_ARRAY_LEN(ok_cases), err_cases, MG_ARRAY_LEN(err_cases));
    check_pairs(err_cases, MG_ARRAY_LEN(err_cases), ok_cases, MG_ARRAY_LEN(ok_cases));
    check_pairs(err_cases, MG_ARRAY_LEN(err_cases), err_cases, MG_ARRAY_LEN(err_cases));
}

/* A connection in miniature: bytes arrive chunk by chunk into a buffer, the parser runs
 * until MG_EAGAIN, swallowed blocks are dropped as they arrive. Records a signature per
 * request into out (newline separated). */
static void drive(const char *stream, size_t n, size_t chunk, uint32_t vmax, char *out,
                  size_t outcap)
{
    char *buf = malloc(n + 1);
    size_t have = 0, fed = 0, outn = 0;
    uint64_t swallow = 0;

    out[0] = '\0';
    while (fed < n || have > 0) {
        size_t take = n - fed < chunk ? n - fed : chunk;
        memcpy(buf + have, stream + fed, take);
        have += take;
        fed += take;
        if (swallow) {
            size_t drop = have < swallow ? have : (size_t)swallow;
            memmove(buf, buf + drop, have - drop);
            have -= drop;
            swallow -= drop;
        }
        for (;;) {
            struct mg_text_req r;
            struct sigbuf s;
            size_t c;
            if (swallow)
                break;
            int rc = mg_text_parse(buf, have, vmax, &r, &c);
            if (rc == MG_EAGAIN) {
                CHECK_EQ_INT(c, 0);
                break;
            }
            req_sig(&s, &r, buf, have);
            int w = snprintf(out + outn, outcap - outn, "%d %s\n", rc, s.s);
            if (w > 0 && (size_t)w < outcap - outn)
                outn += (size_t)w;
            if (rc == MG_ECLOSE) {
                free(buf);
                return;
            }
            CHECK(c > 0 && c <= have);
            if (c == 0 || c > have)
                break; /* already reported; do not spin or run off the buffer */
            memmove(buf, buf + c, have - c);
            have -= c;
            if (rc == MG_ESWALLOW) {
                size_t drop = have < r.swallow ? have : (size_t)r.swallow;
                memmove(buf, buf + drop, have - drop);
                have -= drop;
                swallow = r.swallow - drop;
            }
        }
        if (fed == n)
            break;
    }
    CHECK_EQ_INT(swallow, 0);
    free(buf);
}

static void test_stream_all_chunkings(void)
{
    static char stream[16384], want[65536], got[65536];
    size_t n = 0, wn = 0;
    const struct tcase *tabs[] = { ok_cases, err_cases };
    size_t lens[] = { MG_ARRAY_LEN(ok_cases), MG_ARRAY_LEN(err_cases) };

    for (size_t t = 0; t < 2; t++) {
        for (size_t i = 0; i < lens[t]; i++) {
            const struct tcase *tc = &tabs[t][i];
            if (!self_contained(tc))
                continue;
            size_t l = tc->inlen ? tc->inlen : strlen(tc->in);
            memcpy(stream + n, tc->in, l);
            n += l;
            wn += (size_t)snprintf(want + wn, sizeof(want) - wn, "%d %s\n", tc->rc, tc->want);
        }
    }
    /* a too-large set with its block, then a normal one: the swallow must line up */
    static const char big[] = "set big 0 0 150\r\n";
    memcpy(stream + n, big, sizeof(big) - 1);
    n += sizeof(big) - 1;
    memset(stream + n, 'v', 150);
    n += 150;
    memcpy(stream + n, "\r\nget after\r\n", 13);
    n += 13;
    wn += (size_t)snprintf(want + wn, sizeof(want) - wn,
                           "%d cmd=set key=big vlen=150 err=" E_LARGE " swallow=152\n"
                           "%d cmd=get key=after keys=after nkeys=1\n",
                           MG_ESWALLOW, MG_OK);

    static const size_t chunks[] = { 1, 2, 3, 5, 7, 13, 64, 1000, 16384 };
    for (size_t c = 0; c < MG_ARRAY_LEN(chunks); c++) {
        drive(stream, n, chunks[c], VMAX, got, sizeof(got));
        if (strcmp(got, want) != 0) {
            fprintf(stderr, "  chunk size %zu: stream results differ\n", chunks[c]);
            CHECK(0);
        }
    }
}

/* A pipeline as a client would send it, checked step by step. */
static void test_pipeline(void)
{
    static const char p[] = "get a b\r\nset k 5 0 3 noreply\r\nabc\r\ndelete k\nincr n 7\r\n"
                            "bogus\r\nmg k v\r\nms k 1 T5\r\nz\r\nquit\r\n";
    const char *at = p, *end = p + sizeof(p) - 1;
    struct mg_text_req r;
    size_t c;

    CHECK_EQ_INT(mg_text_parse(at, (size_t)(end - at), VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.cmd, MG_CMD_GET);
    CHECK_EQ_INT(r.nkeys, 2);
    CHECK_SLICE(r.keys, "a b");
    at += c;
    CHECK_EQ_INT(mg_text_parse(at, (size_t)(end - at), VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.cmd, MG_CMD_SET);
    CHECK_SLICE(r.data, "abc");
    CHECK_SLICE(r.line, "set k 5 0 3 noreply");
    CHECK(r.noreply);
    CHECK_EQ_INT(r.flags, 5);
    at += c;
    CHECK_EQ_INT(mg_text_parse(at, (size_t)(end - at), VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.cmd, MG_CMD_DELETE);
    CHECK_SLICE(r.line, "delete k");
    at += c;
    CHECK_EQ_INT(mg_text_parse(at, (size_t)(end - at), VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.cmd, MG_CMD_INCR);
    CHECK_EQ_INT(r.delta, 7);
    at += c;
    CHECK_EQ_INT(mg_text_parse(at, (size_t)(end - at), VMAX, &r, &c), MG_ECLIENT);
    CHECK_EQ_INT(r.cmd, MG_CMD_UNKNOWN);
    CHECK_SLICE(r.args, "bogus");
    CHECK(strcmp(r.err, "ERROR") == 0);
    at += c;
    CHECK_EQ_INT(mg_text_parse(at, (size_t)(end - at), VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.cmd, MG_CMD_MG);
    CHECK_SLICE(r.key, "k");
    CHECK_SLICE(r.args, "v");
    at += c;
    CHECK_EQ_INT(mg_text_parse(at, (size_t)(end - at), VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.cmd, MG_CMD_MS);
    CHECK_SLICE(r.data, "z");
    CHECK_SLICE(r.args, "T5");
    at += c;
    CHECK_EQ_INT(mg_text_parse(at, (size_t)(end - at), VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.cmd, MG_CMD_QUIT);
    at += c;
    CHECK(at == end);
    CHECK_EQ_INT(mg_text_parse(at, 0, VMAX, &r, &c), MG_EAGAIN);
}

/* What memcached does after a bad line: the data block is read as commands. */
static void test_bad_line_then_data(void)
{
    static const char p[] = "set a x 0 5\r\nhello\r\nget a\r\n";
    const char *at = p, *end = p + sizeof(p) - 1;
    struct mg_text_req r;
    size_t c;

    CHECK_EQ_INT(mg_text_parse(at, (size_t)(end - at), VMAX, &r, &c), MG_ECLIENT);
    CHECK(strcmp(r.err, E_FORMAT) == 0);
    at += c;
    CHECK_EQ_INT(mg_text_parse(at, (size_t)(end - at), VMAX, &r, &c), MG_ECLIENT);
    CHECK_EQ_INT(r.cmd, MG_CMD_UNKNOWN);
    CHECK_SLICE(r.args, "hello");
    at += c;
    CHECK_EQ_INT(mg_text_parse(at, (size_t)(end - at), VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.cmd, MG_CMD_GET);
    /* and a bad chunk: the next command starts right after line + vlen + 2 */
    static const char q[] = "set a 0 0 5\r\nhelloXXget a\r\n";
    CHECK_EQ_INT(mg_text_parse(q, sizeof(q) - 1, VMAX, &r, &c), MG_ECLIENT);
    CHECK_EQ_INT(c, 20);
    CHECK_EQ_INT(mg_text_parse(q + c, sizeof(q) - 1 - c, VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(r.cmd, MG_CMD_GET);
}

/* ------------------------------------------------------------------------------------ */
/* Generated inputs: key length and value_max boundaries, line limits. */

static char *repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

static void test_key_length_boundary(void)
{
    char *k250 = repeat('k', 250), *k251 = repeat('k', 251);
    static const char *fmts[] = {
        "get %s\r\n",
        "gets x %s y\r\n",
        "gat 1 %s\r\n",
        "set %s 0 0 1\r\nx\r\n",
        "cas %s 0 0 1 1\r\nx\r\n",
        "delete %s\r\n",
        "incr %s 1\r\n",
        "touch %s 1\r\n",
        "mg %s v\r\n",
        "ms %s 1\r\nx\r\n",
        "md %s\r\n",
        "ma %s\r\n",
        "me %s\r\n",
    };
    static char in[1024];
    for (size_t i = 0; i < MG_ARRAY_LEN(fmts); i++) {
        struct tcase tc = { in, 0, MG_OK, NULL, 0, 0 };
        snprintf(in, sizeof(in), fmts[i], k250);
        check_case(&tc);
        snprintf(in, sizeof(in), fmts[i], k251);
        tc.rc = MG_ECLIENT;
        /* set/cas with a bad key consume the line only; ms, whose length is known by
         * then, drops its data block too (swallow) */
        const char *nl = strchr(in, '\n');
        tc.consumed = (size_t)(nl - in) + 1;
        if (strncmp(in, "ms ", 3) == 0) {
            tc.rc = MG_ESWALLOW;
            tc.swallow = 3;
        }
        check_case(&tc);
        struct mg_text_req r;
        size_t c;
        mg_text_parse(in, strlen(in), VMAX, &r, &c);
        CHECK(r.err && strcmp(r.err, E_FORMAT) == 0);
    }
    /* delete checks its word count before the key, as memcached does */
    snprintf(in, sizeof(in), "delete %s 5\r\n", k251);
    struct tcase d = { in, 0, MG_ECLIENT, NULL, 0, 0 };
    check_case(&d);
    struct mg_text_req dr;
    size_t dc;
    mg_text_parse(in, strlen(in), VMAX, &dr, &dc);
    CHECK(dr.err && strcmp(dr.err, E_DELETE) == 0);
    CHECK(mg_text_key_ok(k250, 250));
    CHECK(!mg_text_key_ok(k251, 251));
    free(k250);
    free(k251);
}

static void test_value_max_boundary(void)
{
    static char in[512];
    char *v = repeat('v', 100);
    struct tcase tc = { in, 0, MG_OK, NULL, 0, 0 };

    snprintf(in, sizeof(in), "set a 0 0 100\r\n%s\r\n", v);
    check_case(&tc);
    /* one more byte is too large; the line alone is enough to say so */
    snprintf(in, sizeof(in), "set a 0 0 101\r\n%sv\r\n", v);
    struct tcase big = { in, 0,  MG_ESWALLOW, "cmd=set key=a vlen=101 err=" E_LARGE " swallow=103",
                         15, 103 };
    check_case(&big);
    snprintf(in, sizeof(in), "ms a 100 T1\r\n%s\r\n", v);
    struct tcase ms = { in, 0, MG_OK, NULL, 0, 0 };
    check_case(&ms);
    snprintf(in, sizeof(in), "ms a 101 T1\r\n%sv\r\n", v);
    struct tcase msbig = { in, 0, MG_ESWALLOW, NULL, 13, 103 };
    check_case(&msbig);
    /* value_max 0 still admits empty values; UINT32_MAX admits the largest length */
    struct tcase zero = { "set a 0 0 0\r\n\r\n", 0, MG_OK, "cmd=set key=a data=", 0, 0 };
    check_case_step(&zero, 0, 1);
    struct tcase one = { "set a 0 0 1\r\nx\r\n", 0, MG_ESWALLOW, NULL, 13, 3 };
    check_case_step(&one, 0, 1);
    struct mg_text_req r;
    size_t c;
    CHECK_EQ_INT(mg_text_parse("set a 0 0 4294967295\r\nxx", 24, UINT32_MAX, &r, &c), MG_EAGAIN);
    CHECK_EQ_INT(c, 0);
    free(v);
}

static void test_default_value_max(void)
{
    static const char hdr[] = "set a 0 0 1048576\r\n";
    size_t n = sizeof(hdr) - 1 + MG_VALUE_MAX_DEFAULT + 2;
    char *in = malloc(n);
    struct mg_text_req r;
    size_t c;

    memcpy(in, hdr, sizeof(hdr) - 1);
    memset(in + sizeof(hdr) - 1, 'x', MG_VALUE_MAX_DEFAULT);
    memcpy(in + n - 2, "\r\n", 2);
    CHECK_EQ_INT(mg_text_parse(in, n, MG_VALUE_MAX_DEFAULT, &r, &c), MG_OK);
    CHECK_EQ_INT(c, n);
    CHECK_EQ_INT(r.data.len, MG_VALUE_MAX_DEFAULT);
    CHECK_EQ_INT(mg_text_parse(in, n - 1, MG_VALUE_MAX_DEFAULT, &r, &c), MG_EAGAIN);
    CHECK_EQ_INT(mg_text_parse(in, n, MG_VALUE_MAX_DEFAULT - 1, &r, &c), MG_ESWALLOW);
    CHECK_EQ_INT(c, sizeof(hdr) - 1);
    CHECK_EQ_INT(r.swallow, MG_VALUE_MAX_DEFAULT + 2);
    free(in);
}

/* Builds "<prefix><filler...>" of exactly n bytes (before the optional "\r\n"). */
static char *line_of(const char *prefix, size_t n, const char *filler, bool crlf)
{
    size_t pl = strlen(prefix), fl = strlen(filler);
    char *s = malloc(n + 3);
    memcpy(s, prefix, pl);
    for (size_t i = pl; i < n; i++)
        s[i] = filler[(i - pl) % fl];
    if (crlf)
        memcpy(s + n, "\r\n", 2);
    s[n + (crlf ? 2 : 0)] = '\0';
    return s;
}

/* Prefix-monotonic: a buffer without '\n' is EAGAIN up to the limit, ECLOSE past it. */
static void check_no_newline(const char *s, size_t limit)
{
    struct sigbuf sig;
    size_t c;
    CHECK_EQ_INT(parse_exact(s, limit, VMAX, &sig, &c), MG_EAGAIN);
    CHECK_EQ_INT(parse_exact(s, limit + 1, VMAX, &sig, &c), MG_ECLOSE);
    CHECK_EQ_INT(c, 0);
    CHECK(strstr(sig.s, "err=" E_LINE) != NULL);
}

/* Feed a get line to the parser step bytes at a time, as a connection does: a partial
 * piece is taken and the line's command put back before the rest; an error drops the rest
 * of the line. Returns the keys seen (each piece at most MG_GET_CHUNK_KEYS), counting
 * error replies in *errors when given. */
static size_t stream_get(const char *line, size_t n, size_t step, size_t *errors)
{
    char *buf = malloc(n + 64);
    size_t have = 0, off = 0, fed = 0, keys = 0;
    bool skip = false;
    for (;;) {
        struct mg_text_req r;
        size_t c = 0;
        if (skip) {
            const char *nl = memchr(buf + off, '\n', have - off);
            if (nl) {
                off = (size_t)(nl - buf) + 1;
                skip = false;
                continue;
            }
            off = have;
        }
        int rc =
            skip || have == off ? MG_EAGAIN : mg_text_parse(buf + off, have - off, VMAX, &r, &c);
        if (rc == MG_OK) {
            CHECK(r.nkeys >= 1 && r.nkeys <= MG_GET_CHUNK_KEYS);
            keys += r.nkeys;
            if (r.partial) {
                CHECK(r.prefix_len < c);
                memmove(buf + off + c - r.prefix_len, buf + off, r.prefix_len);
                c -= r.prefix_len;
            }
            off += c;
            continue;
        }
        if (rc == MG_ECLIENT) {
            if (errors)
                (*errors)++;
            skip = r.partial;
            off += c;
            continue;
        }
        CHECK_EQ_INT(rc, MG_EAGAIN);
        if (fed == n)
            break;
        memmove(buf, buf + off, have - off); /* compact, as the connection does */
        have -= off;
        off = 0;
        size_t add = n - fed < step ? n - fed : step;
        memcpy(buf + have, line + fed, add);
        have += add;
        fed += add;
    }
    CHECK_EQ_INT(have, off);
    free(buf);
    return keys;
}

static void test_line_limits(void)
{
    struct sigbuf sig;
    size_t c;

    /* ordinary lines: MG_LINE_MAX bytes before '\n' (the '\r' counts) is the most */
    char *junk = line_of("x", MG_LINE_MAX + 10, "x", false);
    check_no_newline(junk, MG_LINE_MAX);
    free(junk);

    char *st = line_of("stats ", MG_LINE_MAX - 1, "ab ", true); /* 2047 + \r = 2048 */
    struct tcase ok = { st, 0, MG_OK, NULL, 0, 0 };
    check_case_step(&ok, VMAX, 97);
    free(st);
    st = line_of("stats ", MG_LINE_MAX, "ab ", true); /* 2049 bytes before '\n' */
    CHECK_EQ_INT(parse_exact(st, strlen(st), VMAX, &sig, &c), MG_ECLOSE);
    free(st);
    st = line_of("stats ", MG_LINE_MAX, "ab ", false); /* 2048 + '\n' is fine */
    st[MG_LINE_MAX] = '\n';
    CHECK_EQ_INT(parse_exact(st, MG_LINE_MAX + 1, VMAX, &sig, &c), MG_OK);
    free(st);

    /* a complete but over-long junk line, e.g. a set with a huge key */
    char *set = line_of("set ", 3000, "k", true);
    CHECK_EQ_INT(parse_exact(set, strlen(set), VMAX, &sig, &c), MG_ECLOSE);
    CHECK_EQ_INT(c, 0);
    free(set);

    /* the multiget words may run long (in pieces); other words may not */
    static const char *not_mg[] = { "getx ", "gett a ", "mg ", "get", "delete " };
    for (size_t i = 0; i < MG_ARRAY_LEN(not_mg); i++) {
        char *g = line_of(not_mg[i], MG_LINE_MAX + 10, "k", false);
        check_no_newline(g, MG_LINE_MAX);
        free(g);
    }
    static const char *mg_words[] = { "get ", "gets ", "gat 0 ", "gats 0 ", "   get " };
    for (size_t i = 0; i < MG_ARRAY_LEN(mg_words); i++) {
        for (size_t step = 1; step < 20000; step = step * 7 + 3) {
            char *g = line_of(mg_words[i], 60000, "key ", true);
            size_t want = (60000 - strlen(mg_words[i]) + 3) / 4; /* the last may be short */
            CHECK_EQ_INT(stream_get(g, strlen(g), step, NULL), want);
            free(g);
        }
    }
    /* one key longer than a line: the connection closes */
    char *g = line_of("get ", MG_LINE_MAX + 10, "k", false);
    check_no_newline(g, MG_LINE_MAX);
    free(g);

    /* many keys, one of them bad, deep into a long line: an error for its piece, the
     * rest of the line dropped */
    g = line_of("get ", 5000, "abc ", true);
    g[4000] = '\x01';
    size_t bad = 0;
    stream_get(g, strlen(g), 5002, &bad);
    CHECK_EQ_INT(bad, 1);
    free(g);
}

/* ------------------------------------------------------------------------------------ */

static void test_garbage_survives(void)
{
    /* deterministic pseudo-random junk: the parser must consume or ask for more, never
     * loop without progress, and always stay inside the buffer (ASan build) */
    uint32_t x = 2463534242u;
    for (int round = 0; round < 2000; round++) {
        char junk[300];
        size_t n = 1 + round % sizeof(junk);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            /* bias toward bytes that matter: newlines, spaces, digits, command letters */
            static const char hot[] = "\n\r 0123456789getsmcd\x80\x00";
            junk[i] = (x & 3) ? hot[(x >> 8) % (sizeof(hot) - 1)] : (char)(x >> 16);
        }
        char *buf = malloc(n);
        memcpy(buf, junk, n);
        size_t at = 0;
        while (at < n) {
            struct mg_text_req r;
            size_t c;
            int rc = mg_text_parse(buf + at, n - at, VMAX, &r, &c);
            if (rc == MG_EAGAIN || rc == MG_ECLOSE) {
                CHECK_EQ_INT(c, 0);
                break;
            }
            CHECK(c > 0 && c <= n - at);
            if (c == 0)
                break;
            at += c;
            if (rc == MG_ESWALLOW)
                at += (size_t)r.swallow < n - at ? (size_t)r.swallow : n - at;
        }
        free(buf);
    }
}

static void test_next_token(void)
{
    struct mg_slice s = { "  foo bar   baz  ", 17 }, tok;
    uint32_t pos = 0;

    CHECK(mg_text_next_token(s, &pos, &tok));
    CHECK_SLICE(tok, "foo");
    CHECK(mg_text_next_token(s, &pos, &tok));
    CHECK_SLICE(tok, "bar");
    CHECK(mg_text_next_token(s, &pos, &tok));
    CHECK_SLICE(tok, "baz");
    CHECK(!mg_text_next_token(s, &pos, &tok));
    CHECK(!mg_text_next_token(s, &pos, &tok));

    struct mg_slice empty = { NULL, 0 }, spaces = { "   ", 3 };
    pos = 0;
    CHECK(!mg_text_next_token(empty, &pos, &tok));
    pos = 0;
    CHECK(!mg_text_next_token(spaces, &pos, &tok));

    /* iterating req->keys of a parsed multiget */
    struct mg_text_req r;
    size_t c;
    const char *in = "get a  bb   ccc\r\n";
    CHECK_EQ_INT(mg_text_parse(in, strlen(in), VMAX, &r, &c), MG_OK);
    pos = 0;
    int n = 0;
    static const char *want[] = { "a", "bb", "ccc" };
    while (mg_text_next_token(r.keys, &pos, &tok)) {
        if (n < 3)
            CHECK_SLICE(tok, want[n]);
        n++;
    }
    CHECK_EQ_INT(n, r.nkeys);
}

static void test_key_ok(void)
{
    CHECK(mg_text_key_ok("a", 1));
    CHECK(mg_text_key_ok("foo:bar/baz", 11));
    CHECK(mg_text_key_ok("\xc3\xa9", 2));
    CHECK(mg_text_key_ok("~!", 2));
    CHECK(!mg_text_key_ok("", 0));
    CHECK(!mg_text_key_ok("a b", 3));
    CHECK(!mg_text_key_ok("a\tb", 3));
    CHECK(!mg_text_key_ok("a\rb", 3));
    CHECK(!mg_text_key_ok("a\nb", 3));
    CHECK(!mg_text_key_ok("a\0b", 3));
    CHECK(!mg_text_key_ok("a\x7f", 2));
    CHECK(!mg_text_key_ok("\x1f", 1));
    /* every byte value at every place of keys of 1 to 20 bytes (8 bytes a turn, then one
     * by one) against the definition: above ' ', not 127 */
    char k[20];
    for (size_t len = 1; len <= sizeof(k); len++)
        for (size_t at = 0; at < len; at++)
            for (int c = 0; c < 256; c++) {
                memset(k, 'a', sizeof(k));
                k[at] = (char)c;
                bool want = c > ' ' && c != 127;
                if (mg_text_key_ok(k, len) != want) {
                    CHECK(mg_text_key_ok(k, len) == want);
                    return;
                }
            }
    memset(k, 0x80, sizeof(k)); /* high bytes beside a bad one (no borrow in between) */
    k[9] = ' ';
    CHECK(!mg_text_key_ok(k, sizeof(k)));
    k[9] = (char)0xff;
    CHECK(mg_text_key_ok(k, sizeof(k)));
}

/* The parser must not keep state between calls or depend on what *req held. */
static void test_req_reset(void)
{
    struct mg_text_req r;
    size_t c;
    CHECK_EQ_INT(mg_text_parse("set a 1 2 3 noreply\r\nabc\r\n", 26, VMAX, &r, &c), MG_OK);
    CHECK_EQ_INT(mg_text_parse("get b\r\n", 7, VMAX, &r, &c), MG_OK);
    CHECK(!r.noreply);
    CHECK_EQ_INT(r.flags, 0);
    CHECK(r.data.p == NULL);
    CHECK(r.err == NULL);
    CHECK_EQ_INT(r.swallow, 0);
}

/* Meta flags are checked flag by flag: every command forwarded has one reply of a known
 * shape (a "qx" memcached reads as q once desynced a shared backend connection). */
static void test_meta_flags(void)
{
    static const struct {
        const char *in;
        const char *err; /* NULL: accepted */
        bool b64, quiet;
    } rows[] = {
        { "mg k v\r\n", NULL, false, false },
        { "mg k b c f h k l q s t u v O1 N30 R5 T0 E9\r\n", NULL, true, true },
        { "mg k Oabc-_/+=!\r\n", NULL, false, false },
        { "ms k 1 b c I k q C1 E1 F5 MS O2 T9\r\nx\r\n", NULL, true, true },
        { "md k b I k q x C1 E1 O3 T3\r\n", NULL, true, true },
        { "ma k b c k t q v C1 D2 E3 J4 MI N5 O6 T7\r\n", NULL, true, true },
        { "me k b\r\n", "CLIENT_ERROR invalid flag", false, false }, /* see meta_grammar */
        { "mg k qx\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "mg k q1\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "mg k vq\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "mg k v\r\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "mg k O1\r\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "mg k O\x01\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "mg k O\x80\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "mg k v\tk\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "mg k 5\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "mg k I\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "mg k Z\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "md k v\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "ma k f\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "me k v\r\n", "CLIENT_ERROR invalid flag", false, false },
        { "mg k b b\r\n", "CLIENT_ERROR duplicate flag", false, false },
        { "mg k v v\r\n", "CLIENT_ERROR duplicate flag", false, false },
        { "mg k T1 T2\r\n", "CLIENT_ERROR duplicate flag", false, false },
        { "mg k O12345678901234567890123456789012345678901234567890123456789012345\r\n",
          "CLIENT_ERROR invalid flag", false, false },
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(rows); i++) {
        struct mg_text_req r;
        size_t c;
        size_t n = strlen(rows[i].in);
        int rc = mg_text_parse(rows[i].in, n, VMAX, &r, &c);
        bool ms = strncmp(rows[i].in, "ms ", 3) == 0;
        if (rows[i].err == NULL) {
            CHECK_EQ_INT(rc, MG_OK);
            CHECK_EQ_INT(c, n);
            CHECK(r.b64 == rows[i].b64 && r.quiet == rows[i].quiet);
        } else {
            CHECK_EQ_INT(rc, ms ? MG_ESWALLOW : MG_ECLIENT);
            CHECK(r.err && strcmp(r.err, rows[i].err) == 0);
        }
        if (rc != (rows[i].err ? (ms ? MG_ESWALLOW : MG_ECLIENT) : MG_OK))
            fprintf(stderr, "  row %zu: %s\n", i, rows[i].in);
    }
    /* a refused ms drops exactly its data block */
    struct mg_text_req r;
    size_t c;
    CHECK_EQ_INT(mg_text_parse("ms k 5 qz\r\nhello\r\n", 19, VMAX, &r, &c), MG_ESWALLOW);
    CHECK_EQ_INT(c, 11);
    CHECK_EQ_INT(r.swallow, 7);
}

int main(void)
{
    RUN(test_ok_table);
    RUN(test_err_table);
    RUN(test_eagain_table);
    RUN(test_pairs);
    RUN(test_stream_all_chunkings);
    RUN(test_pipeline);
    RUN(test_bad_line_then_data);
    RUN(test_key_length_boundary);
    RUN(test_value_max_boundary);
    RUN(test_default_value_max);
    RUN(test_line_limits);
    RUN(test_garbage_survives);
    RUN(test_next_token);
    RUN(test_key_ok);
    RUN(test_req_reset);
    RUN(test_meta_flags);
    CTEST_END();
}
