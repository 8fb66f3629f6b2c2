/* stats.h: per-worker counters (written by their worker, summed when read) and `stats`. */
#ifndef MG_STATS_H
#define MG_STATS_H

#include <stdatomic.h>

#include "buf.h"

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
        herd_lock_expired, herd_coalesced, herd_marked_stale;
};

/* Reply latency buckets: upper bounds in microseconds (the last one is open). */
#define LAT_BUCKETS 14
extern const uint32_t stats_lat_bounds_us[LAT_BUCKETS];

/* Herd counters and reply latencies of one pool in one worker (stats pools). */
struct pool_herd {
    atomic_uint_fast64_t wins, stale_hits, waits, wait_hits, wait_timeouts, lock_expired, coalesced,
        marked_stale;
    atomic_uint_fast64_t lat[LAT_BUCKETS]; /* backend reply latency histogram */
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

struct worker;

/* Count one backend reply that took us microseconds, for pool index pool of w. */
void stats_latency(struct worker *w, int pool, double us);

/* The one way a subsystem renders a stat: "STAT <prefix><name> <v>\r\n" into out. */
void stats_line(struct buf *out, const char *prefix, const char *name, uint64_t v);

#endif
