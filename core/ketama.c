/* ketama.c: key -> server placement, computed by libmemcached's own ketama ring. */

/*
 * Why delegate instead of reimplementing: clients such as pylibmc place keys with
 * libmemcached, and "ketama" there is not textbook ketama. What pylibmc
 * behaviors={"ketama": True} really does (pylibmc src/_pylibmcmodule.h, PylibMC_behaviors[]:
 * "ketama" -> MEMCACHED_BEHAVIOR_KETAMA; src/_pylibmcmodule.c, PylibMC_Client_init: behaviors
 * are set before any server is added, servers are added with
 * memcached_server_add_with_weight(host, port, weight=1); src/pylibmc/client.py
 * translate_server_spec: "[::1]:p" becomes host "::1"):
 *
 *  - libmemcached-awesome 1.1.4 src/libmemcached/behavior.cc, memcached_behavior_set:
 *    MEMCACHED_BEHAVIOR_KETAMA only sets the distribution to CONSISTENT_KETAMA (and turns
 *    weighting off). It does NOT switch the key hash to MD5; only KETAMA_WEIGHTED does that.
 *    So keys are hashed with the default one-at-a-time hash (libhashkit/hashkit.cc,
 *    _hashkit_init). It widens each plain char, so where char is signed (x86-64) bytes
 *    >= 0x80 are sign-extended and where it is not (arm64) they are not: libmemcached, and
 *    so pylibmc and this file, place such keys differently on the two (one_at_a_time.cc).
 *  - hosts.cc, update_continuum: 100 points per server, each the same one-at-a-time hash of
 *    "host-i" (port 11211) or "host:port-i" (other ports), i = 0..99, host exactly as given
 *    (never resolved). Points are sorted by (value, server index), so of two identical
 *    servers the later one never receives a key.
 *  - hosts.cc, server_add: a server added with weight > 1 while the distribution is already
 *    consistent switches the ring to weighted ketama (160 points per server on average,
 *    MD5 points, key hash still one-at-a-time). So equal weights of 2 do not give the ring
 *    that NULL (or all 1) gives, in pylibmc either. That is also why the behaviour is set
 *    first, as pylibmc does: set afterwards it would silently turn weighting off again.
 *  - update_continuum asserts (and the Debian build aborts) when more than
 *    MEMCACHED_CONTINUUM_SIZE / MEMCACHED_POINTS_PER_SERVER = 100 servers are added, so
 *    ketama_new refuses more before libmemcached sees them.
 *
 * Thread safety of ketama_pick: hash.cc, memcached_generate_hash takes a const memcached_st
 * and only reads it: _generate_hash_wrapper (server count, namespace flag, hashkit_digest ->
 * a pure hash function) then dispatch_host (a binary search over ketama.continuum). Unlike
 * memcached_generate_hash_with_redistribution it never calls _regen_for_auto_eject, which
 * would rebuild the ring. The installed libmemcached.so.11 disassembles to the same: no
 * stores to the struct, no calls besides memcached_server_count and hashkit_digest (random()
 * only for the RANDOM distribution). The memcached_st is never written after ketama_new
 * returns, so any number of threads may pick concurrently without locks.
 *
 * No network I/O: memcached_create, memcached_behavior_set(KETAMA),
 * memcached_server_add_with_weight, memcached_generate_hash and memcached_free neither
 * resolve names nor open sockets; connections are only made by commands, which this file
 * never sends.
 */

#include "ketama.h"

#include <ctype.h>
#include <libmemcached/memcached.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KETAMA_MAX_SERVERS (MEMCACHED_CONTINUUM_SIZE / MEMCACHED_POINTS_PER_SERVER)
#define KETAMA_HOST_MAX 255 /* longest DNS name is 253; libmemcached itself allows 1024 */
#define KETAMA_PATH_MAX 108 /* sizeof(((struct sockaddr_un *)0)->sun_path) on Linux */

/* Owns mc. Immutable after ketama_new returns; shared read-only by every worker thread. */
struct ketama {
    memcached_st *mc;
    uint32_t n;
};

/* printf into err (if any); always NUL-terminated, truncated to errlen. */
static void ketama_errorf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A host must be something libmemcached would hash and later connect to as TCP: printable,
 * no whitespace, not a unix socket path ('/' would make libmemcached treat it as one), and
 * no ':' unless it came from inside brackets. */
static bool ketama_host_ok(const char *host, size_t len, bool bracketed)
{
    if (len == 0 || len > KETAMA_HOST_MAX || host[0] == '/')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isgraph(c) || c == '[' || c == ']' || c == ',' || (c == ':' && !bracketed))
            return false;
    }
    return true;
}

/* A unix socket path libmemcached and connect(2) take: absolute, printable, no ',' (the
 * server list separator), shorter than sockaddr_un's sun_path. */
static bool ketama_path_ok(const char *path)
{
    size_t len = strlen(path);
    if (len < 2 || len >= KETAMA_PATH_MAX || path[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isgraph((unsigned char)path[i]) || path[i] == ',')
            return false;
    return true;
}

/* Parse a decimal port 1..65535 that runs to the end of s. Returns MG_OK or MG_ERR. */
static int ketama_parse_port(const char *s, in_port_t *port)
{
    unsigned long v = 0;
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 5)
            return MG_ERR;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (i == 0 || v == 0 || v > 65535)
        return MG_ERR;
    *port = (in_port_t)v;
    return MG_OK;
}

/* Split "host:port" or "[v6addr]:port" into host (copied into host[], brackets dropped as
 * pylibmc drops them) and port. Returns MG_OK, or MG_ERR with err filled. */
static int ketama_parse_server(const char *spec, uint32_t idx, char *host, in_port_t *port,
                               char *err, size_t errlen)
{
    const char *h = spec, *colon;
    size_t hlen;
    bool bracketed = spec[0] == '[';

    if (bracketed) {
        const char *close = strchr(spec, ']');
        if (close == NULL || close[1] != ':')
            goto bad;
        h = spec + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strchr(spec, ':');
        if (colon == NULL)
            goto bad;
        hlen = (size_t)(colon - spec);
        if (strchr(colon + 1, ':') != NULL) {
            ketama_errorf(err, errlen, "server %u \"%s\": too many ':' (write IPv6 as [addr]:port)",
                          idx, spec);
            return MG_ERR;
        }
    }
    if (!ketama_host_ok(h, hlen, bracketed)) {
        ketama_errorf(err, errlen, "server %u \"%s\": bad host", idx, spec);
        return MG_ERR;
    }
    if (ketama_parse_port(colon + 1, port) != MG_OK) {
        ketama_errorf(err, errlen, "server %u \"%s\": port must be 1..65535", idx, spec);
        return MG_ERR;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    return MG_OK;

bad:
    ketama_errorf(err, errlen, "server %u \"%s\": expected host:port or [addr]:port", idx, spec);
    return MG_ERR;
}

/* Check the arguments libmemcached would either abort on or silently reinterpret. */
static int ketama_check_args(const char *const *servers, const uint32_t *weights, uint32_t n,
                             char *err, size_t errlen)
{
    if (servers == NULL || n == 0) {
        ketama_errorf(err, errlen, "no servers");
        return MG_ERR;
    }
    if (n > KETAMA_MAX_SERVERS) {
        ketama_errorf(err, errlen, "%u servers: libmemcached's ketama allows at most %d", n,
                      KETAMA_MAX_SERVERS);
        return MG_ERR;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (servers[i] == NULL) {
            ketama_errorf(err, errlen, "server %u is missing", i);
            return MG_ERR;
        }
        /* libmemcached quietly turns weight 0 into 1; a 0 in a config is more likely a
         * wish to drain the server, which this ring cannot express. */
        if (weights != NULL && weights[i] == 0) {
            ketama_errorf(err, errlen, "server %u \"%s\": weight must be at least 1", i,
                          servers[i]);
            return MG_ERR;
        }
    }
    return MG_OK;
}

struct ketama *ketama_new(const char *const *servers, const uint32_t *weights, uint32_t n,
                          char *err, size_t errlen)
{
    struct ketama *k = NULL;
    memcached_return_t rc;

    if (ketama_check_args(servers, weights, n, err, errlen) != MG_OK)
        goto fail;
    k = calloc(1, sizeof(*k));
    if (k == NULL || (k->mc = memcached_create(NULL)) == NULL) {
        ketama_errorf(err, errlen, "out of memory");
        goto fail;
    }
    k->n = n;

    /* Before any server, as pylibmc does (see the top of this file for why it matters). */
    rc = memcached_behavior_set(k->mc, MEMCACHED_BEHAVIOR_KETAMA, 1);
    if (rc != MEMCACHED_SUCCESS) {
        ketama_errorf(err, errlen, "libmemcached: ketama: %s", memcached_strerror(k->mc, rc));
        goto fail;
    }

    for (uint32_t i = 0; i < n; i++) {
        char host[KETAMA_HOST_MAX + 1];
        in_port_t port;

        if (strncmp(servers[i], "unix:", 5) == 0) {
            /* pylibmc's "/path" server: libmemcached points "/path:0-i" on the ring */
            const char *path = servers[i] + 5;
            if (!ketama_path_ok(path)) {
                ketama_errorf(err, errlen, "server %u \"%s\": bad unix socket path", i, servers[i]);
                goto fail;
            }
            rc =
                memcached_server_add_unix_socket_with_weight(k->mc, path, weights ? weights[i] : 1);
        } else if (ketama_parse_server(servers[i], i, host, &port, err, errlen) != MG_OK) {
            goto fail;
        } else {
            rc = memcached_server_add_with_weight(k->mc, host, port, weights ? weights[i] : 1);
        }
        if (rc != MEMCACHED_SUCCESS) {
            ketama_errorf(err, errlen, "server %u \"%s\": libmemcached: %s", i, servers[i],
                          memcached_last_error_message(k->mc));
            goto fail;
        }
    }
    if (memcached_server_count(k->mc) != n ||
        memcached_behavior_get_distribution(k->mc) != MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA) {
        ketama_errorf(err, errlen, "libmemcached did not build a ketama ring of %u servers", n);
        goto fail;
    }
    return k;

fail:
    ketama_free(k);
    return NULL;
}

uint32_t ketama_pick(const struct ketama *k, const char *key, size_t len)
{
    uint32_t idx;

    if (k->n == 1)
        return 0;
    idx = memcached_generate_hash(k->mc, key, len);
    return MG_LIKELY(idx < k->n) ? idx : 0;
}

void ketama_free(struct ketama *k)
{
    if (k == NULL)
        return;
    if (k->mc != NULL)
        memcached_free(k->mc);
    free(k);
}
