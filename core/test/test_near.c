/* test_near.c: the near cache's store alone: a fill is refused after an invalidation of its
 * key's slot (or a clear) since its read, and only then; lookups, the reply head, expiry. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "near.h"

#define STRIPE(h) (((h) >> 58) & (NEAR_STRIPES - 1))
#define SLOT(h) (((h) >> 40) & (NEAR_SEQ_SLOTS - 1))

static bool fill(const char *k, uint64_t seq, const char *v, double now)
{
    struct near_meta m = { 7, 42, -1 };
    return near_fill(near_hash(k, strlen(k)), seq, 1, 0, k, strlen(k), &m, " 7 1 42", 7, 4, v,
                     (uint32_t)strlen(v), now + 10, now + 5);
}

/* A key other than k in k's stripe: same slot (same_slot) or another one. */
static void neighbour(const char *k, bool same_slot, char *out, size_t n)
{
    uint64_t h = near_hash(k, strlen(k));
    for (int i = 0;; i++) {
        snprintf(out, n, "n%d", i);
        uint64_t g = near_hash(out, strlen(out));
        if (strcmp(out, k) != 0 && STRIPE(g) == STRIPE(h) && (SLOT(g) == SLOT(h)) == same_slot)
            return;
    }
}

static void test_fill_races(void)
{
    CHECK(near_configure(1 << 20) == MG_OK);
    const char *k = "hot";
    uint64_t h = near_hash(k, strlen(k));
    char other[32], twin[32];
    neighbour(k, false, other, sizeof(other));
    neighbour(k, true, twin, sizeof(twin));
    /* a write of another key of the stripe, another slot: the fill stands */
    uint64_t seq = near_seq(h);
    near_invalidate(near_hash(other, strlen(other)));
    CHECK(fill(k, seq, "a", 100));
    /* a write of a key of the same slot: refused (its order against the read is unknown) */
    seq = near_seq(h);
    near_invalidate(near_hash(twin, strlen(twin)));
    CHECK(!fill(k, seq, "b", 100));
    /* the key's own write: dropped, and a fill read before it refused; one read after stands */
    seq = near_seq(h);
    CHECK_EQ_INT(near_invalidate(h), 1);
    CHECK(!fill(k, seq, "c", 100));
    /* a write's own fill: its read of seq, then its invalidation, nothing else (seq + 1) */
    seq = near_seq(h);
    near_invalidate(h);
    CHECK(fill(k, seq + 1, "d", 100));
    /* a clear refuses every fill in flight */
    seq = near_seq(h);
    near_clear();
    CHECK(!fill(k, seq, "e", 100));
    CHECK(fill(k, near_seq(h), "f", 100));
    near_clear();
}

static void test_lookup_reply(void)
{
    const char *k = "key1";
    uint64_t h = near_hash(k, strlen(k));
    CHECK(fill(k, near_seq(h), "v", 100));
    struct buf o = { 0 };
    bool refresh = true;
    CHECK(near_lookup_reply(h, 1, 0, k, strlen(k), 101, &o, false, &refresh));
    CHECK(!refresh);
    CHECK(o.len == 9 && memcmp(o.data, " 7 1\r\nv\r\n", 9) == 0);
    o.len = 0;
    CHECK(near_lookup_reply(h, 1, 0, k, strlen(k), 106, &o, true, &refresh)); /* refresh due */
    CHECK(refresh);
    CHECK(o.len == 12 && memcmp(o.data, " 7 1 42\r\nv\r\n", 12) == 0);
    o.len = 0;
    CHECK(!near_lookup_reply(h, 2, 0, k, strlen(k), 101, &o, false, &refresh)); /* generation */
    CHECK(!near_lookup_reply(h, 1, 1, k, strlen(k), 101, &o, false, &refresh)); /* pool */
    CHECK(!near_lookup_reply(h, 1, 0, k, strlen(k), 111, &o, false, &refresh)); /* expired */
    CHECK_EQ_INT(o.len, 0);
    buf_free(&o);
}

static int wakes;
static void count_wake(void)
{
    wakes++;
}

/* The early wake: a worker's detector reaching the hot rate -- for all workers together with
 * its share, or alone -- wakes the main thread once until it takes the wake. */
static void test_hot_wake(void)
{
    near_hot_set_waker(count_wake);
    near_hot_settings(true, 100, 32);
    CHECK(!near_hot_count(16, 1)); /* no scale yet (no publication): no wakes */
    near_hot_set_scale(64 / 10.0); /* 1 in 64 sampled, a 10 s window: 16 samples are 100 rps */
    CHECK(!near_hot_count(7, 2));
    CHECK(near_hot_count(8, 2)); /* half of 16: this worker's share of two */
    CHECK_EQ_INT(wakes, 1);
    CHECK(!near_hot_count(8, 2)); /* another key: the wake is on its way */
    CHECK_EQ_INT(wakes, 1);
    near_hot_woken();
    CHECK(!near_hot_count(9, 2));
    CHECK(!near_hot_count(15, 2));
    CHECK(near_hot_count(16, 2)); /* the whole rate on this worker alone */
    near_hot_woken();
    CHECK(!near_hot_count(17, 1));
    CHECK(!near_hot_count(8, 1));
    CHECK(near_hot_count(16, 1));
    near_hot_woken();
    CHECK(!near_hot_count(0, 1));
    near_hot_set_scale(64 / 2.0); /* the uptime (2 s) shorter than the window: 4 samples */
    CHECK(!near_hot_count(3, 1));
    CHECK(near_hot_count(4, 1));
    near_hot_woken();
    near_hot_set_scale(64 / 10.0);
    near_hot_settings(true, 0.001, 32); /* under one sample a window: the first sample */
    CHECK(near_hot_count(1, 4));
    near_hot_woken();
    near_hot_settings(false, 100, 32); /* hot keys off: no wakes */
    CHECK(!near_hot_count(16, 1));
    CHECK_EQ_INT(wakes, 5);
    near_hot_set_waker(NULL);
    near_hot_settings(true, 100, 32);
    CHECK(near_hot_count(16, 1)); /* no waker: counted, nothing called */
    CHECK_EQ_INT(wakes, 5);
    near_hot_woken();
}

/* The hot set holds up to NEAR_HOT_MAX keys, each per pool; a new set replaces the old. */
static void test_hot_set(void)
{
    enum { N = NEAR_HOT_MAX + 10 };
    static char names[N][16];
    const char *keys[N];
    uint32_t lens[N];
    int pools[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "hot%d", i);
        keys[i] = names[i];
        lens[i] = (uint32_t)strlen(names[i]);
        pools[i] = i % 3;
    }
    near_hot_publish(keys, lens, pools, N);
    for (int i = 0; i < NEAR_HOT_MAX; i++) {
        CHECK(near_hot(i % 3, near_hash(keys[i], lens[i])));
        CHECK(!near_hot(i % 3 + 1, near_hash(keys[i], lens[i])));
    }
    for (int i = NEAR_HOT_MAX; i < N; i++) /* over the bound: left out */
        CHECK(!near_hot(i % 3, near_hash(keys[i], lens[i])));
    CHECK(!near_hot(0, near_hash("cold", 4)));
    near_hot_publish(keys + 1, lens + 1, pools + 1, 1);
    CHECK(near_hot(1, near_hash(keys[1], lens[1])));
    CHECK(!near_hot(0, near_hash(keys[0], lens[0])));
    CHECK(!near_hot(2, near_hash(keys[2], lens[2])));
    near_hot_publish(NULL, NULL, NULL, 0);
    CHECK(!near_hot(1, near_hash(keys[1], lens[1])));
    CHECK(!near_hot_empty());
}

int main(void)
{
    RUN(test_fill_races);
    RUN(test_lookup_reply);
    RUN(test_hot_wake);
    RUN(test_hot_set);
    near_free();
    CTEST_END();
}
