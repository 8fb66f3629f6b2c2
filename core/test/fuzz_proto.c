/* fuzz_proto.c: libFuzzer entry point feeding both protocol parsers (make test drives it with
 * fuzz_smoke.c, a bounded mutator; this file alone is the coverage-guided fuzzer).
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icore \
 *         -o build/fuzz_proto core/test/fuzz_proto.c core/proto_text.c core/proto_meta.c
 *   ./build/fuzz_proto -max_total_time=60
 *
 * Besides "no crash, no read past the end", it checks the properties callers rely on:
 * consumed stays inside the buffer, every slice points into it, and a result depends on
 * the bytes it consumed only (one byte fewer is MG_EAGAIN, exactly those bytes give the
 * same answer), which is what makes incremental reads safe. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto_meta.h"
#include "proto_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void in_buf(struct mg_slice s, const char *buf, size_t len)
{
    if (s.len && (s.p < buf || s.p + s.len > buf + len))
        abort();
}

/* Parses a heap copy of exactly n bytes, so ASan sees reads past its end. */
static int text_exact(const char *p, size_t n, uint32_t vmax, size_t *consumed)
{
    char *b = malloc(n ? n : 1);
    struct mg_text_req r;
    memcpy(b, p, n);
    int rc = mg_text_parse(b, n, vmax, &r, consumed);
    free(b);
    return rc;
}

static int meta_exact(const char *p, size_t n, uint32_t vmax, size_t *consumed)
{
    char *b = malloc(n ? n : 1);
    struct mg_meta_reply r;
    memcpy(b, p, n);
    int rc = mg_meta_parse_reply(b, n, vmax, &r, consumed);
    free(b);
    return rc;
}

static void fuzz_text(const char *buf, size_t len, uint32_t vmax)
{
    size_t at = 0;
    bool first = true;

    while (at < len) {
        struct mg_text_req r;
        size_t c;
        int rc = mg_text_parse(buf + at, len - at, vmax, &r, &c);
        if (rc == MG_EAGAIN || rc == MG_ECLOSE) {
            if (c != 0)
                abort();
            return;
        }
        if (c == 0 || c > len - at)
            abort();
        if ((rc == MG_OK) != (r.err == NULL))
            abort();
        in_buf(r.key, buf + at, c);
        in_buf(r.keys, buf + at, c);
        in_buf(r.data, buf + at, c);
        in_buf(r.args, buf + at, c);
        in_buf(r.line, buf + at, c);
        if (first) {
            size_t c2;
            if (text_exact(buf + at, c - 1, vmax, &c2) != MG_EAGAIN || c2 != 0)
                abort();
            if (text_exact(buf + at, c, vmax, &c2) != rc || c2 != c)
                abort();
            first = false;
        }
        at += c;
        if (rc == MG_ESWALLOW)
            at += r.swallow < len - at ? (size_t)r.swallow : len - at;
    }
}

static void fuzz_meta(const char *buf, size_t len, uint32_t vmax)
{
    size_t at = 0;
    bool first = true;

    while (at < len) {
        struct mg_meta_reply r;
        size_t c;
        int rc = mg_meta_parse_reply(buf + at, len - at, vmax, &r, &c);
        if (rc != MG_OK) {
            if (c != 0 || (rc != MG_EAGAIN && rc != MG_ERR))
                abort();
            return;
        }
        if (c == 0 || c > len - at)
            abort();
        in_buf(r.flags, buf + at, c);
        in_buf(r.data, buf + at, c);
        in_buf(r.line, buf + at, c);
        struct mg_slice v;
        if (mg_meta_flag(r.flags, 'c', &v))
            in_buf(v, buf + at, c);
        if (first) {
            size_t c2;
            if (meta_exact(buf + at, c - 1, vmax, &c2) != MG_EAGAIN)
                abort();
            if (meta_exact(buf + at, c, vmax, &c2) != MG_OK || c2 != c)
                abort();
            first = false;
        }
        at += c;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the first byte picks a value_max, so both sides of it get explored */
    uint32_t vmax = size ? (uint32_t)data[0] * 4 : 0;
    const char *buf = (const char *)data + (size ? 1 : 0);
    size_t len = size ? size - 1 : 0;

    fuzz_text(buf, len, vmax);
    fuzz_meta(buf, len, vmax);
    return 0;
}
