/* mg.h: shared status codes, slices and limits used by every core file. */
#ifndef MG_H
#define MG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MG_VERSION "0.1.0"
/* What `version` (and stats' `version`) answers: the memcached release whose protocol the
 * gateway speaks and is tested against, written as memcached writes it. Nothing after it:
 * clients parse the line as memcached's (node's `memcached` takes the last x.y.z, so
 * "1.6.0-mintgate-0.1.0" read as 0.1.0). `stats` names the gateway's own in mintgate_version. */
#define MG_VERSION_REPLY "1.6.18"

/* Status codes returned by core functions. */
enum mg_status {
    MG_OK = 0,
    MG_ERR = -1,      /* generic failure; details in an error buffer or errno */
    MG_EAGAIN = -2,   /* need more input / try again later */
    MG_ECLIENT = -3,  /* client sent something bad; answer it and go on */
    MG_ECLOSE = -4,   /* client sent something we cannot recover from: answer, close */
    MG_ESWALLOW = -5, /* answer, then drop a data block that may not have arrived yet */
};

/* Limits (memcached's defaults where it has one). */
#define MG_KEY_MAX 250
#define MG_LINE_MAX 2048 /* a command line without '\n' longer than this is fatal */
/* get/gets/gat/gats lines have no length limit: they are taken this many keys at a time
 * (and an unterminated one MG_LINE_MAX bytes at a time), each piece a request of its own. */
#define MG_GET_CHUNK_KEYS 64
#define MG_VALUE_MAX_DEFAULT (1024 * 1024)
/* Routes inside routes: at most this many levels, and this many server pools under one. */
#define MG_ROUTE_DEPTH 4
#define MG_ROUTE_LEAVES 32

/* Backend keys the gateway keeps for itself (herd leases, fleet switch values) begin
 * with this; client keys are kept out of it (dispatch.c). */
#define MG_RESERVED_PREFIX "mintgate:"

/* A borrowed byte range. Who owns the bytes is said where a slice is stored. */
struct mg_slice {
    const char *p;
    uint32_t len;
};

#define MG_UNUSED(x) ((void)(x))
#define MG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* Characters of the base64 encoding of n bytes. */
#define B64_LEN(n) (4 * (((n) + 2) / 3))

/* FNV-1a, 64-bit, over n bytes (MG_FNV_STEP: one byte more, for loops that hash as they
 * scan). */
#define MG_FNV_OFFSET 14695981039346656037ull
#define MG_FNV_STEP(h, c) (((h) ^ (uint8_t)(c)) * 1099511628211ull)
static inline uint64_t mg_fnv1a64(const char *p, size_t n)
{
    uint64_t h = MG_FNV_OFFSET;
    for (size_t i = 0; i < n; i++)
        h = MG_FNV_STEP(h, p[i]);
    return h;
}

/* murmur3's finalizer (fmix64): FNV-1a's high bits barely change between short keys that
 * differ at the end; after this every bit depends on every byte. */
static inline uint64_t mg_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

#if defined(__GNUC__)
#define MG_LIKELY(x) __builtin_expect(!!(x), 1)
#define MG_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MG_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MG_LIKELY(x) (x)
#define MG_UNLIKELY(x) (x)
#define MG_ALWAYS_INLINE inline
#endif

#endif
