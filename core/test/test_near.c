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

int main(void)
{
    RUN(test_fill_races);
    RUN(test_lookup_reply);
    CTEST_END();
}
