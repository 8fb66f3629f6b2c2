/* stats.c: per-worker counters: what a subsystem counts, and the lines it renders. */
#include "stats.h"

#include "worker.h"

const uint32_t stats_lat_bounds_us[LAT_BUCKETS] = {
    100,   200,   500,    1000,   2000,   5000,    10000,
    20000, 50000, 100000, 200000, 500000, 1000000, UINT32_MAX,
};

void stats_latency(struct worker *w, int pool, double us)
{
    if (pool < 0 || (uint32_t)pool >= w->npool_herd)
        return;
    int i = 0;
    while (i < LAT_BUCKETS - 1 && us > stats_lat_bounds_us[i])
        i++;
    STAT_INC(w->pool_herd[pool].lat[i]);
    double *e = &w->pool_herd[pool].lat_ewma_us;
    *e += (us - *e) / 8;
}

void stats_line(struct buf *out, const char *prefix, const char *name, uint64_t v)
{
    buf_printf(out, "STAT %s%s %llu\r\n", prefix, name, (unsigned long long)v);
}
