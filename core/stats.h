/* stats.h: per-worker counters (written by their worker, summed when read) and `stats`. */
#ifndef MG_STATS_H
#define MG_STATS_H

#include <stdatomic.h>

#include "buf.h"
#include "proto_text.h"

/* A latency histogram one worker owns (the metrics endpoint sums the workers'): buckets
 * with upper bounds hist_bounds_us (the last one is +Inf) and the sum of what was counted. */
#define HIST_BUCKETS 17
extern const uint64_t hist_bounds_us[HIST_BUCKETS - 1];
/* By floor(log2(us)): the first bucket whose bound is at least 2^that. Each bound is at
 * least twice the one before, so one more comparison finds the bucket. */
extern const uint8_t hist_log2[64];
struct hist {
    atomic_uint_fast64_t b[HIST_BUCKETS];
    atomic_uint_fast64_t sum_us;
};

/* Counters one worker owns. Only the owner writes (STAT_INC/STAT_ADD: a relaxed load and
 * store, no locked instruction); any thread may read them for `stats`. */
struct stats {
    atomic_uint_fast64_t curr_connections, total_connections, rejected_connections;
    atomic_uint_fast64_t listen_disabled_num; /* accepting paused: out of descriptors */
    atomic_uint_fast64_t cmd_get, get_hits, get_misses, get_expired, get_errors;
    atomic_uint_fast64_t cmd_set, cmd_touch, touch_hits, touch_misses;
    atomic_uint_fast64_t delete_hits, delete_misses, incr_hits, incr_misses, decr_hits, decr_misses,
        cas_hits, cas_misses, cas_badval;
    atomic_uint_fast64_t cmd_flush, cmd_meta, backend_errors, client_errors;
    atomic_uint_fast64_t bytes_read, bytes_written;
    /* herd bookkeeping (herd.c) */
    atomic_uint_fast64_t herd_wins, herd_stale_hits, herd_waits, herd_wait_hits, herd_wait_timeouts,
        herd_lock_expired, herd_coalesced, herd_marked_stale, herd_sets_refused;
    /* the near cache (near.h): gets answered from it, eligible gets it did not have, values
     * stored in it, background refreshes sent, writes that dropped a key from it */
    atomic_uint_fast64_t near_hits, near_misses, near_fills, near_refreshes, near_invalidations;
    atomic_uint_fast64_t near_hot_wakes; /* the detector woke the main thread to publish */
    /* the Lua layer's memo of resolutions (lua_memo.h): keys resolved from it, keys whose
     * functions ran, entries pushed out by new ones, results it may not keep (see
     * lua_resolve.c); entries held and capacity (gauges of the worker's current state) */
    atomic_uint_fast64_t lua_memo_hits, lua_memo_misses, lua_memo_evictions, lua_memo_uncacheable;
    atomic_uint_fast64_t lua_memo_entries, lua_memo_capacity;
    /* client-observed latency by command: from the request's parse to its reply being
     * ready (metrics: mintgate_command_duration_seconds, mintgate_commands_total) */
    struct hist cmd_lat[MG_CMD_UNKNOWN + 1];
    atomic_uint_fast64_t slow_requests; /* over the slow log's threshold */
};

/* One server of one pool in one worker (config: pool->slot_base + the server's place in
 * the pool): its reply latency and its failures by kind (enum op_fail). */
#define SLOT_FAIL_KINDS 8
struct srv_slot {
    struct hist lat;
    atomic_uint_fast64_t fail[SLOT_FAIL_KINDS];
};

/* Reply latency buckets: upper bounds in microseconds (the last one is open). */
#define LAT_BUCKETS 14
extern const uint32_t stats_lat_bounds_us[LAT_BUCKETS];

/* Herd counters and reply latencies of one pool in one worker (stats pools). */
struct pool_herd {
    atomic_uint_fast64_t wins, stale_hits, waits, wait_hits, wait_timeouts, lock_expired, coalesced,
        marked_stale, sets_refused;
    /* recompute time: a moving average (µs) of win -> the winner's store, written by the
     * owner only (xfetch's delta) */
    atomic_uint_fast64_t regen_us;
    atomic_uint_fast64_t near_hits, near_misses, near_fills; /* the near cache's, this pool's */
    atomic_uint_fast64_t lat[LAT_BUCKETS];                   /* backend reply latency histogram */
    /* a route's (stats routes): keys routed through it, sent on to the next child after
     * a failure, writes that landed on a child after the first, reads sent on after a miss,
     * keys every child failed, deletes a child did not get (it was down), warm-up hits
     * added to the cold pool, shadow copies sent, shadow copies that failed, and shadowed
     * reads whose copy answered differently (hit/miss, value or flags) */
    atomic_uint_fast64_t route_requests, route_fallbacks, route_fallback_writes, route_misses_moved,
        route_failed, route_deletes_skipped, route_fills, route_shadow_copies, route_shadow_errors,
        route_shadow_mismatches, route_replica_errors, route_replays_queued, route_replays_dropped,
        route_replays_sent;
    double lat_ewma_us; /* reply latency, moving average (replicate reads = fastest); owner only */
};

#define STAT_ADD(field, n)                                                                      \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (n), \
                          memory_order_relaxed)
#define STAT_INC(field) STAT_ADD(field, 1)
#define STAT_DEC(field) STAT_ADD(field, (uint_fast64_t)-1)
#define STAT_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)
/* Count a herd event for worker w, overall and for pool index pool (if known). */
#define HERD_COUNT(w, pool, f)                                 \
    do {                                                       \
        STAT_INC((w)->st.herd_##f);                            \
        if ((pool) >= 0 && (uint32_t)(pool) < (w)->npool_herd) \
            STAT_INC((w)->pool_herd[(pool)].f);                \
    } while (0)

/* Count a failover route event for worker w and route (pool index) idx. */
#define ROUTE_COUNT(w, idx, f)                                     \
    do {                                                           \
        int64_t route_i_ = (int64_t)(idx);                         \
        if (route_i_ >= 0 && (uint64_t)route_i_ < (w)->npool_herd) \
            STAT_INC((w)->pool_herd[route_i_].route_##f);          \
    } while (0)

/* Count us microseconds in h (owner only). */
static inline void hist_add(struct hist *h, uint64_t us)
{
    int i = 0;
    if (MG_LIKELY(us > 0)) {
        i = hist_log2[63 - __builtin_clzll(us)];
        i += i < HIST_BUCKETS - 1 && us > hist_bounds_us[i];
    }
    STAT_INC(h->b[i]);
    STAT_ADD(h->sum_us, us);
}

/* Per-request observability (latency histograms, per-server counters, the slow log, hot-key
 * sampling) is on; `--observe off` turns it off (to measure what it costs). Set before the
 * workers start, read-only after. */
extern bool stats_observe;

/* The hot-key detector (hotkeys.h): each worker samples 1 in hot_sample keys (0: off) into
 * its own top-K (HOT_CAPACITY counters over a sliding window); `stats hotkeys` and the
 * metrics show the hot_top hottest, with their keys in the metrics only with hot_expose. */
#define HOT_CAPACITY 256
#define HOT_WINDOW 10
#define HOT_SAMPLE_DEFAULT 64
#define HOT_TOP_DEFAULT 16
extern atomic_uint_fast32_t hot_sample, hot_top;
extern atomic_bool hot_expose;

struct worker;
struct backend;

/* Count one backend reply from b that took us microseconds, for pool index pool of w's
 * config (the caller checks the op was sent under it). */
void stats_latency(struct worker *w, int pool, const struct backend *b, double us);
/* Every hot_sample-th key of worker w (w->hot_left reached 0): into its hot-key detector. */
void stats_hot_sample(struct worker *w, enum mg_cmd cmd, int pool, const char *key, size_t len);
/* Count a failure (enum op_fail why) of a request to b for pool index pool. */
void stats_backend_fail(struct worker *w, int pool, const struct backend *b, int why);

/* The one way a subsystem renders a stat: "STAT <prefix><name> <v>\r\n" into out. */
void stats_line(struct buf *out, const char *prefix, const char *name, uint64_t v);

#endif
