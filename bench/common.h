/* bench/common.h: small helpers shared by the bench clients (mgload.c, herd.c): clocks, a
 * PRNG, decimal formatting and parsing, and the loopback check. Header-only, static. */
#ifndef MG_BENCH_COMMON_H
#define MG_BENCH_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define MG_OK 0
#define MG_ERR (-1)

/* Monotonic nanoseconds. */
static inline uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: fast, good enough to pick keys; *s must not be 0. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Decimal digits of v into out (at least 20 bytes, not terminated); returns the length. */
static inline size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[24];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* A decimal number at s[*pos..len), ended by a space or the end, advancing *pos past it;
 * MG_ERR on no digits, overflow, or anything else after the digits. */
static inline int parse_u64(const char *s, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = *pos;

    if (i >= len || s[i] < '0' || s[i] > '9')
        return MG_ERR;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return MG_ERR;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < len && s[i] != ' ')
        return MG_ERR;
    *pos = i;
    *out = v;
    return MG_OK;
}

/* The bench clients only ever talk to this machine. */
static inline bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

#endif
