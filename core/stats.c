/* stats.c: per-worker counters: what a subsystem counts, and the lines it renders. */
#include "stats.h"

#include "backend.h"
#include "config.h"
#include "hotkeys.h"
#include "near.h"
#include "request.h"
#include "worker.h"

const uint32_t stats_lat_bounds_us[LAT_BUCKETS] = {
    100,   200,   500,    1000,   2000,   5000,    10000,
    20000, 50000, 100000, 200000, 500000, 1000000, UINT32_MAX,
};

/* 50 µs to 5 s, in the 1-2.5-5 steps Prometheus' client libraries use */
const uint64_t hist_bounds_us[HIST_BUCKETS - 1] = {
    50,    100,   250,    500,    1000,   2500,    5000,    10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
};

/* The slot of server b in pool index pool of w's config, or NULL. */
static struct srv_slot *slot_of(struct worker *w, int pool, const struct backend *b)
{
    const struct config *cfg = w->cfg;
    if (b == NULL || pool < 0 || (uint32_t)pool >= cfg->npools)
        return NULL;
    const struct pool *p = &cfg->pools[pool];
    if (p->slot_of == NULL || b->server_id >= cfg->nservers)
        return NULL;
    uint32_t k = p->slot_of[b->server_id];
    if (k == UINT16_MAX || p->slot_base + k >= w->nslots)
        return NULL; /* remapped to a server outside the pool, or a reload under way */
    return &w->slots[p->slot_base + k];
}

bool stats_observe = true;
atomic_uint_fast32_t hot_sample = HOT_SAMPLE_DEFAULT, hot_top = HOT_TOP_DEFAULT;
atomic_bool hot_expose;

void stats_hot_sample(struct worker *w, enum mg_cmd cmd, int pool, const char *key, size_t len)
{
    uint32_t every = (uint32_t)atomic_load_explicit(&hot_sample, memory_order_relaxed);
    /* the next gap is random, 1 .. 2 * every - 1 (every on average): a fixed one would
     * only ever see one key of a client that repeats a short cycle (get a, get b, ...) */
    uint64_t x = w->hot_rng ? w->hot_rng : 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)w;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->hot_rng = x;
    w->hot_left = every ? 1 + (uint32_t)(x % (2u * every - 1u)) : 4096; /* off: look later */
    if (every == 0 || w->hot == NULL || !stats_observe)
        return;
    enum hk_kind kind = is_retrieval(cmd) || cmd == MG_CMD_MG                          ? HK_GET
                        : (cmd >= MG_CMD_SET && cmd <= MG_CMD_CAS) || cmd == MG_CMD_MS ? HK_SET
                        : cmd == MG_CMD_DELETE || cmd == MG_CMD_MD                     ? HK_DELETE
                                                                                       : HK_OTHER;
    uint64_t sure = hotkeys_add(w->hot, key, len, kind, pool, ev_now(w->loop));
    if (near_hot_count(sure, settings.threads)) /* the near cache's early wake (near.h) */
        STAT_INC(w->st.near_hot_wakes);
}

void stats_backend_fail(struct worker *w, int pool, const struct backend *b, int why)
{
    struct srv_slot *s = slot_of(w, pool, b);
    if (s && why > 0 && why < SLOT_FAIL_KINDS)
        STAT_INC(s->fail[why]);
}

const uint8_t hist_log2[64] = {
    0,  0,  0,  0,  0,  0,  1,  2,  3,  4,  5,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 14,
    15, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
};

/* The same for stats_lat_bounds_us (stats pools). */
static const uint8_t lat_log2[64] = {
    0,  0,  0,  0,  0,  0,  0,  1,  2,  3,  4,  5,  5,  6,  7,  8,  9,  10, 11, 12, 13, 13,
    13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13,
    13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13,
};

void stats_latency(struct worker *w, int pool, const struct backend *b, double us)
{
    if (pool < 0 || (uint32_t)pool >= w->npool_herd)
        return;
    uint64_t u = us > 0 ? (uint64_t)us : 0;
    struct srv_slot *s = stats_observe ? slot_of(w, pool, b) : NULL;
    if (s)
        hist_add(&s->lat, u);
    int i = 0;
    if (u > 0) {
        i = lat_log2[63 - __builtin_clzll(u)];
        i += i < LAT_BUCKETS - 1 && u > stats_lat_bounds_us[i];
    }
    STAT_INC(w->pool_herd[pool].lat[i]);
    double *e = &w->pool_herd[pool].lat_ewma_us;
    *e += (us - *e) / 8;
}

void stats_line(struct buf *out, const char *prefix, const char *name, uint64_t v)
{
    buf_printf(out, "STAT %s%s %llu\r\n", prefix, name, (unsigned long long)v);
}
