/* test_switch.c: switch placement golden vectors, so a key never silently changes sides. */
#include "switch.h"

#include <stdint.h>
#include <string.h>

#include "ctest.h"
#include "mg.h"

/* The vectors below were computed once from switch.c as of this file's first commit
 * (FNV-1a plus a final mix, modulo SWITCH_SCALE) and pasted as literals. Gateways of a
 * fleet, and one gateway across an upgrade, must put every key on the same side: a
 * change here is a change of placement, to be made on purpose or not at all. */

/* A key, its bucket (the hash modulo SWITCH_SCALE: the key is on iff bucket < share),
 * and on (1) / off (0) at 0.001, 1, 10, 12.5, 50 and 99.999 %. */
struct golden {
    const char *key;
    unsigned bucket;
    const char *on;
};

static const double PERCENTS[] = { 0.001, 1, 10, 12.5, 50, 99.999 };
#define NPERCENTS (sizeof(PERCENTS) / sizeof(PERCENTS[0]))

/* clang-format off */
static const struct golden GOLDEN[] = {
    { "", 74976, "000001" },
    { "a", 65451, "000001" },
    { "b", 56315, "000001" },
    { "user:1", 19140, "000011" },
    { "user:2", 48184, "000011" },
    { "user:3", 13373, "000011" },
    { "user:27", 1042, "001111" },
    { "user:28", 10220, "000111" },
    { "user:29", 3276, "001111" },
    { "user:179", 636, "011111" },
    { "user:240", 747, "011111" },
    { "user:7076", 5, "011111" },
    { "session:42", 49532, "000011" },
    { "games", 72831, "000001" },
    { "canary", 84849, "000001" },
    { "ab:1", 66672, "000001" },
    { "ab:2", 76540, "000001" },
    { "ab:10", 85328, "000001" },
    { "ab:2000", 89198, "000001" },
    { "mintgate", 17373, "000011" },
    { "K\xc3\xa9y", 62356, "000001" },
    { "key with space", 88171, "000001" },
};
/* clang-format on */

/* How many of "key:0" .. "key:99999" are on at each of PERCENTS. */
static const unsigned GOLDEN_COUNTS[NPERCENTS] = { 0, 986, 9918, 12485, 49941, 99999 };

static int sw(const char *name)
{
    int id = switch_register(name, 0, NULL, NULL);
    CHECK(id >= 0);
    return id;
}

static bool on_at(int id, const char *name, double percent, const char *k, size_t n)
{
    CHECK_EQ_INT(switch_set(name, percent), MG_OK);
    return switch_on(id, k, n);
}

/* The key's bucket, found through the public API: the smallest share that turns it on,
 * minus one (a key is on iff bucket < share; at SWITCH_SCALE every key is on). */
static unsigned bucket_of(int id, const char *name, const char *k, size_t n)
{
    unsigned lo = 1, hi = SWITCH_SCALE;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (on_at(id, name, mid / 1000.0, k, n))
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo - 1;
}

static void test_golden_buckets(void)
{
    int id = sw("golden_bucket");
    for (size_t i = 0; i < sizeof(GOLDEN) / sizeof(GOLDEN[0]); i++) {
        const struct golden *g = &GOLDEN[i];
        unsigned b = bucket_of(id, "golden_bucket", g->key, strlen(g->key));
        if (b != g->bucket) {
            fprintf(stderr, "  key '%s': bucket %u, expected %u\n", g->key, b, g->bucket);
            ctest_cur_failed++;
        }
    }
    /* longer and binary keys */
    char k250[250];
    memset(k250, 'k', sizeof(k250));
    CHECK_EQ_INT(bucket_of(id, "golden_bucket", k250, sizeof(k250)), 88158);
    const char bin[] = { 0, 1, 2, (char)0xff, '\r', '\n' };
    CHECK_EQ_INT(bucket_of(id, "golden_bucket", bin, sizeof(bin)), 9946);
}

static void test_golden_on_off(void)
{
    int id = sw("golden_on");
    for (size_t i = 0; i < sizeof(GOLDEN) / sizeof(GOLDEN[0]); i++) {
        const struct golden *g = &GOLDEN[i];
        char got[NPERCENTS + 1];
        for (size_t j = 0; j < NPERCENTS; j++)
            got[j] = on_at(id, "golden_on", PERCENTS[j], g->key, strlen(g->key)) ? '1' : '0';
        got[NPERCENTS] = '\0';
        if (strcmp(got, g->on) != 0) {
            fprintf(stderr,
                    "  key '%s': on/off at 0.001,1,10,12.5,50,99.999 %% is %s, expected %s\n",
                    g->key, got, g->on);
            ctest_cur_failed++;
        }
    }
}

static void test_golden_counts(void)
{
    int id = sw("golden_count");
    for (size_t j = 0; j < NPERCENTS; j++) {
        CHECK_EQ_INT(switch_set("golden_count", PERCENTS[j]), MG_OK);
        unsigned n = 0;
        char k[32];
        for (int i = 0; i < 100000; i++) {
            int len = snprintf(k, sizeof(k), "key:%d", i);
            n += switch_on(id, k, (size_t)len);
        }
        if (n != GOLDEN_COUNTS[j]) {
            fprintf(stderr, "  at %g %%: %u of 100000 keys on, expected %u\n", PERCENTS[j], n,
                    GOLDEN_COUNTS[j]);
            ctest_cur_failed++;
        }
    }
}

/* 0 is never on, 100 always; raising the share only adds keys. */
static void test_edges_and_monotony(void)
{
    int id = sw("edges");
    char k[32];
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)snprintf(k, sizeof(k), "m:%d", i);
        CHECK(!on_at(id, "edges", 0, k, len));
        CHECK(on_at(id, "edges", 100, k, len));
        bool was = false;
        for (double p = 5; p <= 100; p += 5) {
            bool now = on_at(id, "edges", p, k, len);
            CHECK(now || !was);
            was = now;
        }
    }
}

/* Register keeps an existing switch's value (what lets a reload keep a runtime change);
 * percentages are kept to 0.001; each lookup counts one side. */
static void test_register_keeps_value(void)
{
    int id = switch_register("keep", 10, NULL, NULL);
    CHECK(id >= 0);
    CHECK_EQ_INT(switch_set("keep", 37.5), MG_OK);
    CHECK_EQ_INT(switch_register("keep", 10, NULL, NULL), id);
    struct mg_switch *s = switch_get(id);
    CHECK(s != NULL);
    CHECK_EQ_INT(atomic_load(&s->share), 37500);
    CHECK_EQ_INT(switch_set("keep", 12.345), MG_OK);
    CHECK_EQ_INT(atomic_load(&s->share), 12345);
    uint64_t before = atomic_load(&s->on) + atomic_load(&s->off);
    for (int i = 0; i < 10; i++)
        switch_on(id, "x", 1);
    CHECK_EQ_INT(atomic_load(&s->on) + atomic_load(&s->off), before + 10);
    CHECK_EQ_INT(switch_set("nosuch", 5), MG_ERR);
    CHECK_EQ_INT(switch_set("keep", 100.5), MG_ERR);
    CHECK_EQ_INT(atomic_load(&s->share), 12345);
}

int main(void)
{
    RUN(test_golden_buckets);
    RUN(test_golden_on_off);
    RUN(test_golden_counts);
    RUN(test_edges_and_monotony);
    RUN(test_register_keeps_value);
    CTEST_END();
}
