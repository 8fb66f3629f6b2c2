/* fuzz.h: what the parser fuzz targets (fuzz_text.c, fuzz_meta.c) share with their drivers.
 *
 * Each target is one file that exports LLVMFuzzerTestOneInput for libFuzzer (`make fuzz`)
 * and, when built with -DFUZZ_NO_ENTRY, only its own entry point (fuzz_text_input,
 * fuzz_meta_input), so one plain gcc binary can drive both: fuzz_smoke (a bounded
 * mutator) and fuzz_replay (the committed corpus), both run by `make test`.
 *
 * An input is FUZZ_HDR control bytes, then the byte stream a peer sends:
 *   [0]    value_max: 0..253 -> n * 4 (so both sides of small sizes get explored),
 *          254 -> MG_VALUE_MAX_DEFAULT, 255 -> UINT32_MAX
 *   [1]    options: fuzz_text: bit 0 accepts client keys up to FUZZ_LONG_KEY_MAX;
 *          fuzz_meta: one more flag letter to look up with mg_meta_flag;
 *          fuzz_bin: where in its list of text replies the renderer starts
 *   [2..3] where the stream is split in two deliveries, little endian, modulo len + 1
 * Shorter inputs are padded with zero control bytes and an empty stream. */
#ifndef MG_FUZZ_H
#define MG_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mg.h"

#define FUZZ_HDR 4
#define FUZZ_LONG_KEY_MAX 1024
/* Streams up to this long are also delivered one byte at a time; longer ones in about
 * FUZZ_BYTEWISE_MAX / 2 pieces (each delivery re-parses the pending line). */
#define FUZZ_BYTEWISE_MAX 1024

int fuzz_text_input(const uint8_t *data, size_t size);
int fuzz_meta_input(const uint8_t *data, size_t size);
int fuzz_bin_input(const uint8_t *data, size_t size);

/* A broken property: say which, then abort so libFuzzer and ASan print the stack. */
#define FUZZ_CHECK(cond)                                                                \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

struct fuzz_hdr {
    uint32_t value_max;
    uint8_t opts;
    size_t split; /* 0..len */
    const char *stream;
    size_t len;
};

static inline struct fuzz_hdr fuzz_hdr_parse(const uint8_t *data, size_t size)
{
    uint8_t h[FUZZ_HDR] = { 0 };
    struct fuzz_hdr f;

    for (size_t i = 0; i < FUZZ_HDR && i < size; i++)
        h[i] = data[i];
    f.value_max = h[0] == 255 ? UINT32_MAX : h[0] == 254 ? MG_VALUE_MAX_DEFAULT : h[0] * 4u;
    f.opts = h[1];
    f.stream = size > FUZZ_HDR ? (const char *)data + FUZZ_HDR : "";
    f.len = size > FUZZ_HDR ? size - FUZZ_HDR : 0;
    f.split = (size_t)(h[2] | h[3] << 8) % (f.len + 1);
    return f;
}

/* Piece size of the many-small-deliveries run. */
static inline size_t fuzz_small_piece(size_t len)
{
    return len <= FUZZ_BYTEWISE_MAX ? 1 : len / (FUZZ_BYTEWISE_MAX / 2) + 1;
}

/* True when s lies inside [lo, lo + n). An empty slice may point anywhere (even NULL). */
static inline bool fuzz_inside(struct mg_slice s, const char *lo, size_t n)
{
    return s.len == 0 || (s.p >= lo && s.len <= n && (size_t)(s.p - lo) <= n - s.len);
}

/* Stream offset of a slice seen in a buffer whose first byte is stream offset at;
 * -1 for an empty slice, whose pointer means nothing. */
static inline int64_t fuzz_off(struct mg_slice s, const char *base, size_t at)
{
    return s.len ? (int64_t)at + (s.p - base) : -1;
}

#endif
