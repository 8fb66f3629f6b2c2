/* test_ketama.c: ketama_pick places keys exactly where libmemcached (pylibmc "ketama") does. */

#include "ketama.h"

#include "ctest.h"

#include <libmemcached/memcached.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 256
#define NKEYS_LIVE 10000

/* ---- golden vectors ------------------------------------------------------------------ */

/* Generated once, on x86-64, not by ketama.c: memcached_server_by_key() on a memcached_st
 * built with memcached_server_add_with_weight() (KETAMA set first, as pylibmc does), the
 * returned instance's name and port matched back to the list; the unweighted rows also
 * agreed with an independent one-at-a-time model (test_model below). libmemcached-awesome
 * 1.1.4. Where char is unsigned (arm64) libmemcached itself hashes "caf\xc3\xa9" otherwise. */
static const char *const golden_keys[] = {
    "a",
    "foo",
    "bar",
    "baz",
    "hello",
    "user:1",
    "user:2",
    "user:42",
    "user:1000",
    "session:0f8e7d6c",
    "key0",
    "key1",
    "key2",
    "key3",
    "key4",
    "key5",
    "key6",
    "key7",
    "key8",
    "key9",
    "mintgate",
    "caf\xc3\xa9",
    "quick-brown-fox",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
};

struct golden {
    const char *name;
    const char *servers[10];
    uint32_t n;
    uint32_t weights[10]; /* all zero: pass NULL (equal weights) */
    const char *expect;   /* the server index for each golden key, one digit per key */
};

static const struct golden goldens[] = {
    { "one", { "10.0.0.1:11211" }, 1, { 0 }, "000000000000000000000000" },
    { "two", { "10.0.0.1:11211", "10.0.0.2:11211" }, 2, { 0 }, "010110011000110111001111" },
    { "three_names",
      { "cache-a.example.com:11211", "cache-b.example.com:11211", "cache-c.example.com:11211" },
      3,
      { 0 },
      "110010201002001011012120" },
    { "ten",
      { "10.0.1.1:11211", "10.0.1.2:11211", "10.0.1.3:11211", "10.0.1.4:11211", "10.0.1.5:11211",
        "10.0.1.6:11211", "10.0.1.7:11211", "10.0.1.8:11211", "10.0.1.9:11211", "10.0.1.10:11211" },
      10,
      { 0 },
      "527161697902187481574555" },
    /* ports other than 11211 hash "host:port-i" instead of "host-i" */
    { "two_ports", { "127.0.0.1:21211", "127.0.0.1:21212" }, 2, { 0 }, "100111110000111001010001" },
    { "three_ports",
      { "192.168.1.10:11212", "192.168.1.11:11213", "192.168.1.12:22122" },
      3,
      { 0 },
      "211212202111002200111122" },
    { "ten_ports",
      { "127.0.0.1:30001", "127.0.0.1:30002", "127.0.0.1:30003", "127.0.0.1:30004",
        "127.0.0.1:30005", "127.0.0.1:30006", "127.0.0.1:30007", "127.0.0.1:30008",
        "127.0.0.1:30009", "127.0.0.1:30010" },
      10,
      { 0 },
      "967120372259922318326701" },
    /* names are hashed as written: localhost is not 127.0.0.1 */
    { "mixed",
      { "127.0.0.1:11211", "127.0.0.1:11212", "localhost:11211" },
      3,
      { 0 },
      "110000212020002110121220" },
    /* pylibmc drops the brackets, so "::1-i" and "::1:11212-i" are hashed */
    { "ipv6",
      { "[::1]:11211", "[::1]:11212", "[2001:db8::7]:11211" },
      3,
      { 0 },
      "012221001222210210120110" },
    /* any weight > 1 switches libmemcached to weighted ketama (MD5 points) */
    { "weighted",
      { "10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211" },
      3,
      { 1, 2, 5 },
      "222222122221222212222122" },
    /* equal weights above 1 still make a weighted ring, unlike "two" */
    { "equal_two",
      { "10.0.0.1:11211", "10.0.0.2:11211" },
      2,
      { 2, 2 },
      "001110110110000111101110" },
    /* the later of two identical servers never gets a key: same as "two" */
    { "dup",
      { "10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.1:11211" },
      3,
      { 0 },
      "010110011000110111001111" },
};

static struct ketama *golden_ring(const struct golden *g)
{
    char err[ERRLEN] = "";
    const uint32_t *w = g->weights[0] ? g->weights : NULL;
    struct ketama *k = ketama_new(g->servers, w, g->n, err, sizeof(err));

    if (k == NULL)
        fprintf(stderr, "  %s: ketama_new: %s\n", g->name, err);
    return k;
}

static void test_golden(void)
{
    for (size_t gi = 0; gi < MG_ARRAY_LEN(goldens); gi++) {
        const struct golden *g = &goldens[gi];
        struct ketama *k = golden_ring(g);

        CHECK(k != NULL);
        CHECK_EQ_INT(strlen(g->expect), MG_ARRAY_LEN(golden_keys));
        if (k == NULL)
            continue;
        for (size_t i = 0; i < MG_ARRAY_LEN(golden_keys); i++) {
            const char *key = golden_keys[i];
            uint32_t got = ketama_pick(k, key, strlen(key));
            if (got != (uint32_t)(g->expect[i] - '0')) {
                fprintf(stderr, "  %s: key \"%s\" -> %u, expected %c\n", g->name, key, got,
                        g->expect[i]);
                ctest_cur_failed++;
            }
        }
        ketama_free(k);
    }
}

/* ---- random keys --------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* A valid memcached key of 1..250 bytes; about one in eight carries bytes >= 0x80, which
 * one-at-a-time hashes sign-extended. Returns its length. */
static size_t rng_key(char *buf)
{
    size_t len = 1 + (size_t)(rng_next() % MG_KEY_MAX);
    bool high = rng_next() % 8 == 0;

    if (rng_next() % 2)
        len = 1 + len % 24; /* plenty of short keys, as in real traffic */
    for (size_t i = 0; i < len; i++) {
        uint64_t r = rng_next();
        buf[i] = high && r % 5 == 0 ? (char)(0x80 + r % 128) : (char)(0x21 + r % 94);
    }
    return len;
}

/* ---- live cross-check against memcached_server_by_key -------------------------------- */

struct addr {
    const char *host;
    in_port_t port;
};

struct live {
    const char *name;
    struct addr addrs[10];
    uint32_t n;
    uint32_t weights[10];
};

static const struct live lives[] = {
    { "two", { { "10.0.0.1", 11211 }, { "10.0.0.2", 11211 } }, 2, { 0 } },
    { "three_ports",
      { { "127.0.0.1", 40001 }, { "127.0.0.1", 40002 }, { "127.0.0.1", 40003 } },
      3,
      { 0 } },
    { "five_names",
      { { "mc1.internal", 11211 },
        { "mc2.internal", 11211 },
        { "mc3.internal", 11211 },
        { "mc4.internal", 11300 },
        { "mc5.internal", 11211 } },
      5,
      { 0 } },
    { "ten_mixed",
      { { "10.9.0.1", 11211 },
        { "10.9.0.2", 11212 },
        { "10.9.0.3", 11211 },
        { "10.9.0.4", 11213 },
        { "10.9.0.5", 11211 },
        { "10.9.0.6", 11214 },
        { "10.9.0.7", 11211 },
        { "10.9.0.8", 11215 },
        { "10.9.0.9", 11211 },
        { "10.9.0.10", 11216 } },
      10,
      { 0 } },
    { "ipv6", { { "::1", 11211 }, { "fe80::1", 11211 }, { "2001:db8::2", 22122 } }, 3, { 0 } },
    { "weighted",
      { { "10.0.0.1", 11211 },
        { "10.0.0.2", 11211 },
        { "10.0.0.3", 11211 },
        { "10.0.0.4", 11211 } },
      4,
      { 3, 1, 1, 2 } },
    { "weights_all_one", { { "10.0.0.1", 11211 }, { "10.0.0.2", 11211 } }, 2, { 1, 1 } },
    { "weights_all_two", { { "10.0.0.1", 11211 }, { "10.0.0.2", 11211 } }, 2, { 2, 2 } },
};

/* "host:port", or "[host]:port" when host is an IPv6 address. */
static void addr_spec(char *buf, size_t len, const char *host, in_port_t port)
{
    snprintf(buf, len, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
}

/* The independent side: libmemcached configured the pylibmc way from literal host/port
 * pairs (no "host:port" parsing involved), queried through memcached_server_by_key. */
static memcached_st *live_memc(const struct addr *addrs, const uint32_t *weights, uint32_t n)
{
    memcached_st *mc = memcached_create(NULL);

    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA, 1);
    for (uint32_t i = 0; i < n; i++)
        memcached_server_add_with_weight(mc, addrs[i].host, addrs[i].port,
                                         weights ? weights[i] : 1);
    return mc;
}

/* Compare ketama_pick with libmemcached for nkeys random keys. Returns mismatches. */
static int live_compare(const char *name, const struct addr *addrs, const uint32_t *weights,
                        uint32_t n, int nkeys)
{
    char specs[100][80], err[ERRLEN] = "", key[MG_KEY_MAX];
    const char *sp[100];
    memcached_st *mc = live_memc(addrs, weights, n);
    struct ketama *k;
    int bad = 0;

    for (uint32_t i = 0; i < n; i++) {
        addr_spec(specs[i], sizeof(specs[i]), addrs[i].host, addrs[i].port);
        sp[i] = specs[i];
    }
    k = ketama_new(sp, weights, n, err, sizeof(err));
    if (k == NULL) {
        fprintf(stderr, "  %s: ketama_new: %s\n", name, err);
        memcached_free(mc);
        return nkeys;
    }
    for (int i = 0; i < nkeys; i++) {
        size_t len = rng_key(key);
        memcached_return_t rc;
        const memcached_instance_st *in = memcached_server_by_key(mc, key, len, &rc);
        uint32_t idx = ketama_pick(k, key, len);

        if (in == NULL || strcmp(memcached_server_name(in), addrs[idx].host) != 0 ||
            memcached_server_port(in) != addrs[idx].port) {
            if (bad++ < 5)
                fprintf(stderr, "  %s: key %.*s -> %u, libmemcached says %s:%u\n", name, (int)len,
                        key, idx, in ? memcached_server_name(in) : "(error)",
                        in ? (unsigned)memcached_server_port(in) : 0);
        }
    }
    ketama_free(k);
    memcached_free(mc);
    return bad;
}

static void test_live(void)
{
    rng_state = 0x6b6574616d61ULL;
    for (size_t li = 0; li < MG_ARRAY_LEN(lives); li++) {
        const struct live *l = &lives[li];
        const uint32_t *w = l->weights[0] ? l->weights : NULL;
        CHECK_EQ_INT(live_compare(l->name, l->addrs, w, l->n, NKEYS_LIVE), 0);
    }
}

/* The largest ring libmemcached's continuum allows (it aborts above 100 servers). */
static void test_live_max_servers(void)
{
    static char hosts[100][32];
    struct addr addrs[100];

    for (int i = 0; i < 100; i++) {
        snprintf(hosts[i], sizeof(hosts[i]), "10.7.%d.%d", i / 10, i % 10 + 1);
        addrs[i].host = hosts[i];
        addrs[i].port = (in_port_t)(i % 3 ? 11211 : 20000 + i);
    }
    rng_state = 0x313030ULL;
    CHECK_EQ_INT(live_compare("hundred", addrs, NULL, 100, NKEYS_LIVE), 0);
}

/* ---- an independent model of the unweighted ring -------------------------------------- */

/* libhashkit's one-at-a-time. It converts each char straight to uint32_t, so on x86-64
 * (signed char) bytes >= 0x80 are sign-extended; spelled out here so the model says so. */
static uint32_t model_oaat(const char *p, size_t len)
{
    uint32_t v = 0;

    while (len--) {
        v += (uint32_t)(int32_t)(signed char)*p++;
        v += v << 10;
        v ^= v >> 6;
    }
    v += v << 3;
    v ^= v >> 11;
    v += v << 15;
    return v;
}

struct model_point {
    uint32_t value, index;
};

static int model_cmp(const void *a, const void *b)
{
    const struct model_point *x = a, *y = b;

    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* 100 points per server: one-at-a-time of "host-i" (port 11211) or "host:port-i". */
static uint32_t model_pick(const struct model_point *ring, uint32_t npoints, uint32_t n,
                           const char *key, size_t len)
{
    uint32_t h = model_oaat(key, len), lo = 0, hi = npoints;

    if (n == 1)
        return 0;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ring[mid].value < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return ring[hi == npoints ? 0 : hi].index;
}

static void test_model(void)
{
    static struct model_point ring[10 * 100];
    char key[MG_KEY_MAX];

    rng_state = 0x6d6f64656cULL;
    for (size_t li = 0; li < MG_ARRAY_LEN(lives); li++) {
        const struct live *l = &lives[li];
        char specs[10][80], err[ERRLEN] = "";
        const char *sp[10];
        uint32_t np = 0;
        struct ketama *k;
        int bad = 0;

        if (l->weights[0] > 1 || l->weights[1] > 1)
            continue; /* weighted rings use MD5 */
        for (uint32_t i = 0; i < l->n; i++) {
            addr_spec(specs[i], sizeof(specs[i]), l->addrs[i].host, l->addrs[i].port);
            sp[i] = specs[i];
            for (uint32_t p = 0; p < 100; p++) {
                char s[128];
                int n = l->addrs[i].port == 11211
                            ? snprintf(s, sizeof(s), "%s-%u", l->addrs[i].host, p)
                            : snprintf(s, sizeof(s), "%s:%u-%u", l->addrs[i].host,
                                       (unsigned)l->addrs[i].port, p);
                ring[np].value = model_oaat(s, (size_t)n);
                ring[np++].index = i;
            }
        }
        qsort(ring, np, sizeof(ring[0]), model_cmp);
        k = ketama_new(sp, NULL, l->n, err, sizeof(err));
        CHECK(k != NULL);
        if (k == NULL)
            continue;
        for (int i = 0; i < NKEYS_LIVE; i++) {
            size_t len = rng_key(key);
            if (ketama_pick(k, key, len) != model_pick(ring, np, l->n, key, len))
                bad++;
        }
        CHECK_EQ_INT(bad, 0);
        ketama_free(k);
    }
}

/* ---- ring properties ----------------------------------------------------------------- */

/* Remove each server of n in turn: only the removed server's keys move (compared by name,
 * since indexes after it shift down), and they are about 1/n of all keys. */
static void remap_check(uint32_t n, double lo, double hi)
{
    enum { NK = 20000 };
    static char names[10][32], keys[NK][MG_KEY_MAX];
    static size_t lens[NK];
    const char *all[10], *rest[10];
    char err[ERRLEN] = "";
    struct ketama *full;

    for (uint32_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "10.3.0.%u:%u", i + 1, i % 2 ? 11211 : 11300 + i);
        all[i] = names[i];
    }
    rng_state = 0x72656d6170ULL + n;
    for (int i = 0; i < NK; i++)
        lens[i] = rng_key(keys[i]);
    full = ketama_new(all, NULL, n, err, sizeof(err));
    CHECK(full != NULL);
    if (full == NULL)
        return;

    for (uint32_t r = 0; r < n; r++) {
        struct ketama *less;
        int moved = 0, stray = 0;

        for (uint32_t i = 0, j = 0; i < n; i++)
            if (i != r)
                rest[j++] = all[i];
        less = ketama_new(rest, NULL, n - 1, err, sizeof(err));
        CHECK(less != NULL);
        if (less == NULL)
            continue;
        for (int i = 0; i < NK; i++) {
            uint32_t before = ketama_pick(full, keys[i], lens[i]);
            uint32_t after = ketama_pick(less, keys[i], lens[i]);
            if (before == r)
                moved++;
            else if (strcmp(all[before], rest[after]) != 0)
                stray++;
        }
        CHECK_EQ_INT(stray, 0);
        if (moved < lo * NK || moved > hi * NK) {
            fprintf(stderr, "  n=%u without %u: %d of %d keys moved\n", n, r, moved, NK);
            ctest_cur_failed++;
        }
        ketama_free(less);
    }
    ketama_free(full);
}

static void test_remap(void)
{
    remap_check(5, 0.10, 0.30);
    remap_check(10, 0.04, 0.17);
}

static void test_one_server(void)
{
    const char *one[] = { "memcache.example.net:11211" };
    char err[ERRLEN] = "", key[MG_KEY_MAX];
    struct ketama *k = ketama_new(one, NULL, 1, err, sizeof(err));
    int nonzero = 0;

    CHECK(k != NULL);
    if (k == NULL)
        return;
    rng_state = 1;
    for (int i = 0; i < 1000; i++) {
        size_t len = rng_key(key);
        nonzero += ketama_pick(k, key, len) != 0;
    }
    CHECK_EQ_INT(nonzero, 0);
    CHECK_EQ_INT(ketama_pick(k, "", 0), 0);
    ketama_free(k);
}

/* Keys that differ only in the host spelling land differently: nothing is resolved. */
static void test_host_as_written(void)
{
    const char *ip[] = { "127.0.0.1:11211", "10.0.0.2:11211" };
    const char *name[] = { "localhost:11211", "10.0.0.2:11211" };
    char err[ERRLEN] = "", key[MG_KEY_MAX];
    struct ketama *a = ketama_new(ip, NULL, 2, err, sizeof(err));
    struct ketama *b = ketama_new(name, NULL, 2, err, sizeof(err));
    int differ = 0;

    CHECK(a != NULL && b != NULL);
    if (a == NULL || b == NULL)
        goto done;
    rng_state = 2;
    for (int i = 0; i < 1000; i++) {
        size_t len = rng_key(key);
        differ += ketama_pick(a, key, len) != ketama_pick(b, key, len);
    }
    CHECK(differ > 100);
done:
    ketama_free(a);
    ketama_free(b);
}

static void test_duplicates(void)
{
    const char *dup[] = { "10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.1:11211" };
    char err[ERRLEN] = "", key[MG_KEY_MAX];
    struct ketama *k = ketama_new(dup, NULL, 3, err, sizeof(err));
    struct ketama *two = ketama_new(dup, NULL, 2, err, sizeof(err));
    int to_third = 0, differ = 0;

    CHECK(k != NULL && two != NULL);
    if (k == NULL || two == NULL)
        goto done;
    rng_state = 3;
    for (int i = 0; i < NKEYS_LIVE; i++) {
        size_t len = rng_key(key);
        uint32_t idx = ketama_pick(k, key, len);
        to_third += idx == 2;
        differ += idx != ketama_pick(two, key, len);
    }
    CHECK_EQ_INT(to_third, 0);
    CHECK_EQ_INT(differ, 0);
done:
    ketama_free(k);
    ketama_free(two);
}

/* ---- bad input ----------------------------------------------------------------------- */

/* ketama_new must fail with a message that names the offending server. */
static void bad_spec(const char *spec)
{
    const char *list[] = { "10.0.0.1:11211", spec };
    char err[ERRLEN] = "";
    struct ketama *k = ketama_new(list, NULL, 2, err, sizeof(err));

    if (k != NULL || strstr(err, "server 1") == NULL) {
        fprintf(stderr, "  spec \"%s\": k=%p err=\"%s\"\n", spec, (void *)k, err);
        ctest_cur_failed++;
    }
    ketama_free(k);
}

static void test_bad_specs(void)
{
    static const char *const bad[] = {
        "",           "host",         "host:",       ":11211",       "host:0",
        "host:65536", "host:123456",  "host:12ab",   "host:+1",      "host: 1",
        "host:-1",    "host:11211:2", "ho st:11211", "host\t:11211", "::1:11211",
        "[::1]",      "[::1",         "[]:11211",    "[::1]11211",   "/tmp/mc.sock:11211",
        "a,b:11211",  "[::1]:11211x",
    };
    char longhost[400];

    for (size_t i = 0; i < MG_ARRAY_LEN(bad); i++)
        bad_spec(bad[i]);
    memset(longhost, 'h', 300);
    strcpy(longhost + 300, ":11211");
    bad_spec(longhost);
}

static void test_bad_lists(void)
{
    static char names[101][32];
    const char *many[101], *with_null[] = { "10.0.0.1:11211", NULL };
    const uint32_t zero_weight[] = { 1, 0 };
    char err[ERRLEN] = "", tiny[8];
    struct ketama *k;

    CHECK(ketama_new(with_null, NULL, 0, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "no servers") != NULL);
    CHECK(ketama_new(NULL, NULL, 2, err, sizeof(err)) == NULL);
    CHECK(ketama_new(with_null, NULL, 2, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "server 1 is missing") != NULL);
    k = ketama_new(with_null, zero_weight, 1, err, sizeof(err)); /* only weight 1 is read */
    CHECK(k != NULL);
    ketama_free(k);

    for (int i = 0; i < 101; i++) {
        snprintf(names[i], sizeof(names[i]), "10.8.%d.%d:11211", i / 100, i % 100 + 1);
        many[i] = names[i];
    }
    CHECK(ketama_new(many, NULL, 101, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "at most 100") != NULL);
    k = ketama_new(many, NULL, 100, err, sizeof(err));
    CHECK(k != NULL);
    ketama_free(k);

    many[1] = "10.0.0.2:11211";
    CHECK(ketama_new(many, zero_weight, 2, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "weight") != NULL);

    /* no error buffer, or a tiny one, is fine */
    CHECK(ketama_new(with_null, NULL, 0, NULL, 0) == NULL);
    memset(tiny, 'x', sizeof(tiny));
    CHECK(ketama_new(with_null, NULL, 0, tiny, sizeof(tiny)) == NULL);
    CHECK_EQ_INT(strlen(tiny), sizeof(tiny) - 1);
    ketama_free(NULL);
}

/* ---- many threads, one ring ---------------------------------------------------------- */

enum { THREADS = 4, THREAD_KEYS = 20000 };

struct thread_job {
    const struct ketama *k;
    char (*keys)[MG_KEY_MAX];
    const size_t *lens;
    const uint32_t *expect;
    int wrong;
};

static void *thread_main(void *arg)
{
    struct thread_job *job = arg;

    for (int round = 0; round < 5; round++)
        for (int i = 0; i < THREAD_KEYS; i++)
            job->wrong += ketama_pick(job->k, job->keys[i], job->lens[i]) != job->expect[i];
    return NULL;
}

static void test_threads(void)
{
    static char keys[THREAD_KEYS][MG_KEY_MAX];
    static size_t lens[THREAD_KEYS];
    static uint32_t expect[THREAD_KEYS];
    const char *const *servers = goldens[3].servers; /* "ten" */
    char err[ERRLEN] = "";
    struct ketama *k = ketama_new(servers, NULL, 10, err, sizeof(err));
    struct thread_job jobs[THREADS];
    pthread_t tids[THREADS];

    CHECK(k != NULL);
    if (k == NULL)
        return;
    rng_state = 4;
    for (int i = 0; i < THREAD_KEYS; i++) {
        lens[i] = rng_key(keys[i]);
        expect[i] = ketama_pick(k, keys[i], lens[i]);
    }
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (struct thread_job){ k, keys, lens, expect, 0 };
        CHECK_EQ_INT(pthread_create(&tids[t], NULL, thread_main, &jobs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(tids[t], NULL);
        CHECK_EQ_INT(jobs[t].wrong, 0);
    }
    ketama_free(k);
}

int main(void)
{
    RUN(test_golden);
    RUN(test_live);
    RUN(test_live_max_servers);
    RUN(test_model);
    RUN(test_remap);
    RUN(test_one_server);
    RUN(test_host_as_written);
    RUN(test_duplicates);
    RUN(test_bad_specs);
    RUN(test_bad_lists);
    RUN(test_threads);
    CTEST_END();
}
