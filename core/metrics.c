/* metrics.c: every counter the gateway keeps, as Prometheus metrics (text format 0.0.4).
 * Names follow Prometheus' and memcached_exporter's conventions: _total for counters, base
 * units (seconds, bytes), snake_case labels. Summed over the workers at scrape time: each
 * worker writes its own counters without locks (stats.h). */
#include "metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backend.h"
#include "health.h"
#include "hotkeys.h"
#include "near.h"
#include "request.h"
#include "slowlog.h"
#include "stats.h"
#include "switch.h"
#include "trace.h"
#include "worker.h"

atomic_uint_fast64_t metrics_reloads_ok, metrics_reloads_failed;

static void family(struct buf *o, const char *name, const char *type, const char *help)
{
    buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped (the text format's rules). */
static void label(struct buf *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_printf(o, "\\%c", *s);
        else if (*s == '\n')
            buf_append(o, "\\n", 2);
        else
            buf_append(o, s, 1);
    }
}

static const char *const le_names[HIST_BUCKETS] = {
    "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",  "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "+Inf",
};

/* A histogram's series: name_bucket (cumulative), name_sum (seconds), name_count; labels is
 * the label list without braces ("command=\"get\""). */
static void hist_lines(struct buf *o, const char *name, const char *labels,
                       const uint64_t b[HIST_BUCKETS], uint64_t sum_us)
{
    uint64_t cum = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        cum += b[i];
        buf_printf(o, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels, le_names[i],
                   (unsigned long long)cum);
    }
    buf_printf(o, "%s_sum{%s} %.6f\n", name, labels, (double)sum_us / 1e6);
    buf_printf(o, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}

static void hist_sum(uint64_t b[HIST_BUCKETS], uint64_t *sum, const struct hist *h)
{
    for (int i = 0; i < HIST_BUCKETS; i++)
        b[i] += STAT_GET(h->b[i]);
    *sum += STAT_GET(h->sum_us);
}

static uint64_t sum_stat(size_t off)
{
    uint64_t v = 0;
    for (int i = 0; i < nworkers; i++)
        v += atomic_load_explicit((atomic_uint_fast64_t *)((char *)&workers[i].st + off),
                                  memory_order_relaxed);
    return v;
}

static void counter(struct buf *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, "counter", help);
    buf_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(struct buf *o, const char *name, const char *help, double v)
{
    family(o, name, "gauge", help);
    buf_printf(o, "%s %.17g\n", name, v);
}

static void render_commands(struct buf *o)
{
    static const enum mg_cmd cmds[] = {
        MG_CMD_GET,    MG_CMD_GETS,    MG_CMD_GAT,    MG_CMD_GATS,      MG_CMD_SET,
        MG_CMD_ADD,    MG_CMD_REPLACE, MG_CMD_APPEND, MG_CMD_PREPEND,   MG_CMD_CAS,
        MG_CMD_DELETE, MG_CMD_INCR,    MG_CMD_DECR,   MG_CMD_TOUCH,     MG_CMD_FLUSH_ALL,
        MG_CMD_MG,     MG_CMD_MS,      MG_CMD_MD,     MG_CMD_MA,        MG_CMD_MN,
        MG_CMD_ME,     MG_CMD_VERSION, MG_CMD_STATS,  MG_CMD_VERBOSITY, MG_CMD_NONE,
    };
    uint64_t b[MG_ARRAY_LEN(cmds)][HIST_BUCKETS], sum[MG_ARRAY_LEN(cmds)];
    memset(b, 0, sizeof(b));
    memset(sum, 0, sizeof(sum));
    for (size_t c = 0; c < MG_ARRAY_LEN(cmds); c++)
        for (int i = 0; i < nworkers; i++) {
            hist_sum(b[c], &sum[c], &workers[i].st.cmd_lat[cmds[c]]);
            if (cmds[c] == MG_CMD_NONE) /* errors, admin and unknown words: "other" */
                hist_sum(b[c], &sum[c], &workers[i].st.cmd_lat[MG_CMD_UNKNOWN]);
        }
    family(o, "mintgate_commands_total", "counter",
           "Client commands answered, by command (a multi-key get is one).");
    for (size_t c = 0; c < MG_ARRAY_LEN(cmds); c++) {
        uint64_t n = 0;
        for (int i = 0; i < HIST_BUCKETS; i++)
            n += b[c][i];
        buf_printf(o, "mintgate_commands_total{command=\"%s\"} %llu\n",
                   cmds[c] == MG_CMD_NONE ? "other" : mg_cmd_name(cmds[c]), (unsigned long long)n);
    }
    family(o, "mintgate_command_duration_seconds", "histogram",
           "Client-observed latency: from a command's parse to its reply being ready.");
    for (size_t c = 0; c < MG_ARRAY_LEN(cmds); c++) {
        char l[48];
        snprintf(l, sizeof(l), "command=\"%s\"",
                 cmds[c] == MG_CMD_NONE ? "other" : mg_cmd_name(cmds[c]));
        hist_lines(o, "mintgate_command_duration_seconds", l, b[c], sum[c]);
    }
}

#define STAT(field) sum_stat(offsetof(struct stats, field))

static void render_general(struct buf *o)
{
    counter(o, "mintgate_get_hits_total", "Keys of get/gets/gat/gats found.", STAT(get_hits));
    counter(o, "mintgate_get_misses_total", "Keys of get/gets/gat/gats not found.",
            STAT(get_misses));
    counter(o, "mintgate_get_keys_total", "Keys asked for by get/gets/gat/gats.", STAT(cmd_get));
    counter(o, "mintgate_client_errors_total", "Client commands refused as malformed.",
            STAT(client_errors));
    counter(o, "mintgate_backend_failures_total",
            "Backend requests that failed (all servers, all kinds).", STAT(backend_errors));
    counter(o, "mintgate_read_bytes_total", "Bytes read from clients.", STAT(bytes_read));
    counter(o, "mintgate_written_bytes_total", "Bytes written to clients.", STAT(bytes_written));
    gauge(o, "mintgate_connections", "Client connections open.", (double)STAT(curr_connections));
    counter(o, "mintgate_connections_total", "Client connections accepted.",
            STAT(total_connections));
    counter(o, "mintgate_connections_rejected_total",
            "Client connections refused (over the limit).", STAT(rejected_connections));
    counter(o, "mintgate_slow_requests_total", "Requests over the slow log's threshold.",
            STAT(slow_requests));
    family(o, "mintgate_config_reloads_total", "counter", "Config reloads, by result.");
    buf_printf(o, "mintgate_config_reloads_total{result=\"ok\"} %llu\n",
               (unsigned long long)atomic_load(&metrics_reloads_ok));
    buf_printf(o, "mintgate_config_reloads_total{result=\"failed\"} %llu\n",
               (unsigned long long)atomic_load(&metrics_reloads_failed));
    uint64_t kb = 0;
    for (int i = 0; i < nworkers; i++)
        kb += atomic_load_explicit(&workers[i].lua_kb, memory_order_relaxed);
    gauge(o, "mintgate_lua_memory_bytes", "Memory of the workers' Lua states.", (double)kb * 1024);
    counter(o, "mintgate_lua_memo_hits_total",
            "Keys resolved from the memo (mg.memo), no Lua call.", STAT(lua_memo_hits));
    counter(o, "mintgate_lua_memo_misses_total",
            "Keys the memo did not have: their route and key functions ran.",
            STAT(lua_memo_misses));
    counter(o, "mintgate_lua_memo_evictions_total", "Memo entries pushed out by new ones.",
            STAT(lua_memo_evictions));
    counter(o, "mintgate_lua_memo_uncacheable_total",
            "Resolutions the memo may not keep (req fields, pool calls, errors).",
            STAT(lua_memo_uncacheable));
    gauge(o, "mintgate_lua_memo_entries", "Resolutions the workers' memos hold.",
          (double)STAT(lua_memo_entries));
    gauge(o, "mintgate_threads", "Worker threads.", nworkers);
    family(o, "mintgate_build_info", "gauge", "The gateway's version.");
    buf_printf(o, "mintgate_build_info{version=\"%s\"} 1\n", MG_VERSION);
}

/* Herd counters (mintgate_herd_*_total{pool}). */
static const struct {
    const char *name, *help;
    size_t off;
} herd_counters[] = {
    { "wins", "Readers told to regenerate an expired or missing value.",
      offsetof(struct pool_herd, wins) },
    { "stale_hits", "Readers answered with a stale value while another regenerates.",
      offsetof(struct pool_herd, stale_hits) },
    { "waits", "Readers that waited for a value being regenerated.",
      offsetof(struct pool_herd, waits) },
    { "wait_hits", "Waiting readers that got the new value.",
      offsetof(struct pool_herd, wait_hits) },
    { "wait_timeouts", "Waiting readers that gave up (a miss).",
      offsetof(struct pool_herd, wait_timeouts) },
    { "lock_expired", "Regeneration leases that expired unused.",
      offsetof(struct pool_herd, lock_expired) },
    { "coalesced", "Identical gets answered by one backend request.",
      offsetof(struct pool_herd, coalesced) },
    { "marked_stale", "Deletes that marked a value stale instead.",
      offsetof(struct pool_herd, marked_stale) },
    { "sets_refused", "Regenerations' stores refused or retracted: a newer write came first.",
      offsetof(struct pool_herd, sets_refused) },
};

/* Near cache counters (mintgate_near_*_total{pool}), pools with the near cache only. */
static const struct {
    const char *name, *help;
    size_t off;
} near_counters[] = {
    { "hits", "Gets answered from the gateway's near cache.",
      offsetof(struct pool_herd, near_hits) },
    { "misses", "Gets of near-cached keys the near cache did not have.",
      offsetof(struct pool_herd, near_misses) },
    { "fills", "Values stored in the near cache.", offsetof(struct pool_herd, near_fills) },
};

/* Route counters (mintgate_route_*_total{route,kind}). */
static const struct {
    const char *name, *help;
    size_t off;
} route_counters[] = {
#define R(n, h)                                      \
    {                                                \
#n, h, offsetof(struct pool_herd, route_##n) \
    }
    R(requests, "Keys routed through the route."),
    R(fallbacks, "Keys sent on to the next pool after a failure."),
    R(fallback_writes, "Writes that landed on a pool after the first."),
    R(misses_moved, "Reads sent on to the next pool after a miss."),
    R(failed, "Keys every pool failed."),
    R(deletes_skipped, "Deletes a pool did not get (it was down)."),
    R(fills, "Warm-up hits added to the cold pool."),
    R(shadow_copies, "Commands copied to the shadow pool."),
    R(shadow_errors, "Shadow copies that failed."),
    R(shadow_mismatches, "Shadowed reads whose copy answered differently."),
    R(replica_errors, "Replica writes that failed."),
    R(replays_queued, "Deletes kept for a replica that missed them."),
    R(replays_dropped, "Missed deletes dropped (the queue was full)."),
#undef R
};

static uint64_t pool_counter(const struct config *cfg, uint32_t p, size_t off)
{
    uint64_t v = 0;
    for (int i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        if (w->backends_cfg == cfg && p < w->npool_herd)
            v += atomic_load_explicit((atomic_uint_fast64_t *)((char *)&w->pool_herd[p] + off),
                                      memory_order_relaxed);
    }
    return v;
}

static const char *const kind_names[] = { "servers", "failover", "warmup", "shadow", "replicate" };

static void render_pools(struct buf *o, const struct config *cfg)
{
    char name[96];
    for (size_t k = 0; k < MG_ARRAY_LEN(herd_counters); k++) {
        snprintf(name, sizeof(name), "mintgate_herd_%s_total", herd_counters[k].name);
        family(o, name, "counter", herd_counters[k].help);
        for (uint32_t p = 0; p < cfg->npools; p++) {
            if (cfg->pools[p].kind != POOL_SERVERS && cfg->pools[p].stale == NULL)
                continue;
            buf_printf(o, "%s{pool=\"", name);
            label(o, cfg->pools[p].name);
            buf_printf(o, "\"} %llu\n",
                       (unsigned long long)pool_counter(cfg, p, herd_counters[k].off));
        }
    }
    for (size_t k = 0; cfg->near.on && k < MG_ARRAY_LEN(near_counters); k++) {
        snprintf(name, sizeof(name), "mintgate_near_%s_total", near_counters[k].name);
        family(o, name, "counter", near_counters[k].help);
        for (uint32_t p = 0; p < cfg->npools; p++) {
            if (cfg->pools[p].kind != POOL_SERVERS || !cfg->pools[p].near)
                continue;
            buf_printf(o, "%s{pool=\"", name);
            label(o, cfg->pools[p].name);
            buf_printf(o, "\"} %llu\n",
                       (unsigned long long)pool_counter(cfg, p, near_counters[k].off));
        }
    }
    if (cfg->near.on) {
        struct near_totals t;
        near_totals(&t);
        family(o, "mintgate_near_bytes", "gauge", "Bytes the near cache holds (entries and keys).");
        buf_printf(o, "mintgate_near_bytes %llu\n", (unsigned long long)t.bytes);
        family(o, "mintgate_near_entries", "gauge", "Entries in the near cache.");
        buf_printf(o, "mintgate_near_entries %llu\n", (unsigned long long)t.entries);
        family(o, "mintgate_near_evictions_total", "counter",
               "Near cache entries evicted to stay within its size.");
        buf_printf(o, "mintgate_near_evictions_total %llu\n", (unsigned long long)t.evictions);
        family(o, "mintgate_near_invalidations_total", "counter",
               "Near cache entries dropped by writes through this gateway.");
        buf_printf(o, "mintgate_near_invalidations_total %llu\n",
                   (unsigned long long)t.invalidations);
        family(o, "mintgate_near_refreshes_total", "counter",
               "Background reads that refreshed near cache entries.");
        uint64_t rf = 0;
        for (int i = 0; i < nworkers; i++)
            rf += STAT_GET(workers[i].st.near_refreshes);
        buf_printf(o, "mintgate_near_refreshes_total %llu\n", (unsigned long long)rf);
        family(o, "mintgate_near_hot_wakes_total", "counter",
               "Times a worker's hot-key detector saw a key reach the near cache's hot rate and "
               "had the hot set published at once.");
        uint64_t wk = 0;
        for (int i = 0; i < nworkers; i++)
            wk += STAT_GET(workers[i].st.near_hot_wakes);
        buf_printf(o, "mintgate_near_hot_wakes_total %llu\n", (unsigned long long)wk);
    }
    bool any_route = false;
    for (uint32_t p = 0; p < cfg->npools; p++)
        any_route |= cfg->pools[p].kind != POOL_SERVERS;
    for (size_t k = 0; any_route && k < MG_ARRAY_LEN(route_counters); k++) {
        snprintf(name, sizeof(name), "mintgate_route_%s_total", route_counters[k].name);
        family(o, name, "counter", route_counters[k].help);
        for (uint32_t p = 0; p < cfg->npools; p++) {
            const struct pool *r = &cfg->pools[p];
            if (r->kind == POOL_SERVERS)
                continue;
            buf_printf(o, "%s{route=\"", name);
            label(o, r->name);
            buf_printf(o, "\",kind=\"%s\"} %llu\n", kind_names[r->kind],
                       (unsigned long long)pool_counter(cfg, p, route_counters[k].off));
        }
    }
}

/* Per server of each server pool: requests, failures by kind, latency, up. */
static void render_backends(struct buf *o, const struct config *cfg)
{
    static const char *const fail_names[SLOT_FAIL_KINDS] = {
        [OP_FAIL_DOWN] = "down",   [OP_FAIL_TIMEOUT] = "timeout",     [OP_FAIL_CLOSED] = "closed",
        [OP_FAIL_ERROR] = "error", [OP_FAIL_TOO_LARGE] = "too_large", [OP_FAIL_CLIENT] = "client",
    };
    struct slot_sum {
        uint64_t b[HIST_BUCKETS], sum, fail[SLOT_FAIL_KINDS];
    };
    struct slot_sum *sums = calloc(cfg->nslots ? cfg->nslots : 1, sizeof(*sums));
    if (sums == NULL)
        return;
    for (int i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        if (w->backends_cfg != cfg || w->nslots != cfg->nslots)
            continue;
        for (uint32_t s = 0; s < cfg->nslots; s++) {
            hist_sum(sums[s].b, &sums[s].sum, &w->slots[s].lat);
            for (int k = 0; k < SLOT_FAIL_KINDS; k++)
                sums[s].fail[k] += STAT_GET(w->slots[s].fail[k]);
        }
    }
    /* the labels of slot s: pool="..",server=".." */
    struct buf lb = { 0 };
    family(o, "mintgate_backend_requests_total", "counter",
           "Requests to a server of a pool that were answered or failed.");
    for (int pass = 0; pass < 4; pass++) {
        if (pass == 1)
            family(o, "mintgate_backend_errors_total", "counter",
                   "Requests to a server of a pool that failed, by kind.");
        if (pass == 2)
            family(o, "mintgate_backend_up", "gauge",
                   "1 while the server takes requests, 0 while it is ejected.");
        if (pass == 3)
            family(o, "mintgate_backend_duration_seconds", "histogram",
                   "Backend reply latency, from queueing the request to its reply.");
        for (uint32_t p = 0; p < cfg->npools; p++) {
            const struct pool *pool = &cfg->pools[p];
            if (pool->kind != POOL_SERVERS)
                continue;
            for (uint32_t k = 0; k < pool->nservers; k++) {
                const struct slot_sum *ss = &sums[pool->slot_base + k];
                const struct server *srv = pool->servers[k];
                lb.off = lb.len = 0;
                buf_append_str(&lb, "pool=\"");
                label(&lb, pool->name);
                buf_append_str(&lb, "\",server=\"");
                label(&lb, srv->name);
                buf_append(&lb, "\"", 1);
                buf_append(&lb, "", 1); /* NUL, not counted */
                lb.len--;
                uint64_t fails = 0, n = 0;
                for (int f = 0; f < SLOT_FAIL_KINDS; f++)
                    fails += ss->fail[f];
                for (int i = 0; i < HIST_BUCKETS; i++)
                    n += ss->b[i];
                if (pass == 0) {
                    buf_printf(o, "mintgate_backend_requests_total{%s} %llu\n", lb.data,
                               (unsigned long long)(n + fails));
                } else if (pass == 1) {
                    for (int f = 1; f < SLOT_FAIL_KINDS; f++)
                        if (fail_names[f])
                            buf_printf(o, "mintgate_backend_errors_total{%s,kind=\"%s\"} %llu\n",
                                       lb.data, fail_names[f], (unsigned long long)ss->fail[f]);
                } else if (pass == 2) {
                    struct worker *w0 = &workers[0];
                    bool up = true;
                    if (w0->backends_cfg == cfg && srv->id < w0->nbackends) {
                        const struct backend *b = w0->backends[srv->id];
                        up = health_until(b->health) == 0 &&
                             strcmp(backend_state_name(b), "down") != 0;
                    }
                    buf_printf(o, "mintgate_backend_up{%s} %d\n", lb.data, up ? 1 : 0);
                } else {
                    hist_lines(o, "mintgate_backend_duration_seconds", lb.data, ss->b, ss->sum);
                }
            }
        }
    }
    free(lb.data);
    free(sums);
}

static void render_switches(struct buf *o)
{
    int n = switch_count();
    family(o, "mintgate_switch_percent", "gauge", "The share of keys a switch has on.");
    for (int i = 0; i < n; i++) {
        const struct mg_switch *s = switch_get(i);
        buf_append_str(o, "mintgate_switch_percent{switch=\"");
        label(o, s->name);
        buf_printf(o, "\"} %.3f\n", atomic_load(&s->share) * 100.0 / SWITCH_SCALE);
    }
    family(o, "mintgate_switch_keys_total", "counter", "Keys a switch decided, by side.");
    for (int i = 0; i < n; i++) {
        const struct mg_switch *s = switch_get(i);
        for (int side = 0; side < 2; side++) {
            buf_append_str(o, "mintgate_switch_keys_total{switch=\"");
            label(o, s->name);
            buf_printf(o, "\",side=\"%s\"} %llu\n", side ? "off" : "on",
                       (unsigned long long)atomic_load(side ? &s->off : &s->on));
        }
    }
}

/* The process metrics Prometheus' client libraries export. */
static void render_process(struct buf *o)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    family(o, "process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.");
    buf_printf(o, "process_cpu_seconds_total %.6f\n", cpu);
    long page = sysconf(_SC_PAGESIZE);
    unsigned long vsz = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &vsz, &rss) != 2)
            vsz = rss = 0;
        fclose(f);
    }
    gauge(o, "process_resident_memory_bytes", "Resident memory size in bytes.",
          (double)rss * (double)page);
    gauge(o, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
          (double)vsz * (double)page);
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the one opendir holds */
    }
    gauge(o, "process_open_fds", "Number of open file descriptors.", fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        gauge(o, "process_max_fds", "Maximum number of open file descriptors.",
              rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur);
    gauge(o, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
          (double)process_started);
}

static void render_hotkeys(struct buf *o, const struct config *cfg);

void metrics_render(struct buf *out)
{
    render_general(out);
    render_commands(out);
    render_switches(out);
    pthread_mutex_lock(&worker_config_lock);
    const struct config *cfg = nworkers > 0 ? workers[0].backends_cfg : NULL;
    if (cfg != NULL) {
        render_backends(out, cfg);
        render_pools(out, cfg);
    }
    render_hotkeys(out, cfg); /* under the lock: its pool names are cfg's */
    pthread_mutex_unlock(&worker_config_lock);
    render_process(out);
}

uint32_t metrics_hotkeys(struct hotkey_entry *out, uint32_t max, double *rate_scale)
{
    uint32_t top = (uint32_t)atomic_load(&hot_top);
    if (top > max)
        top = max;
    uint32_t per = top * 2 < 64 ? 64 : top * 2; /* each worker's top, before the merge */
    struct hotkey_entry *all =
        calloc((size_t)per * (size_t)(nworkers ? nworkers : 1), sizeof(*all));
    if (all == NULL)
        return 0;
    double now = ev_time();
    uint32_t n = 0;
    for (int i = 0; i < nworkers; i++)
        if (workers[i].hot)
            n += hotkeys_top(workers[i].hot, now, all + n, per);
    uint32_t got = hotkeys_merge(all, n, out, top);
    free(all);
    /* counts are samples in the window: requests per second = count * sample / window (the
     * time since start while that is shorter) */
    double window = settings.hot.window ? settings.hot.window : HOT_WINDOW;
    double up = now - (double)process_started;
    if (up < window)
        window = up > 1 ? up : 1;
    uint32_t sample = (uint32_t)atomic_load(&hot_sample);
    *rate_scale = (sample ? sample : 1) / window;
    return got;
}

/* The hot keys as mintgate_hotkey_requests_per_second{rank,pool[,key]}. */
static void render_hotkeys(struct buf *o, const struct config *cfg)
{
    struct hotkey_entry top[256];
    double scale;
    uint32_t n = metrics_hotkeys(top, MG_ARRAY_LEN(top), &scale);
    bool keys = atomic_load(&hot_expose);
    family(o, "mintgate_hotkey_requests_per_second", "gauge",
           "The hottest keys' estimated request rate (sampled; key label with expose_keys).");
    for (uint32_t i = 0; i < n; i++) {
        const struct hotkey_entry *e = &top[i];
        buf_printf(o, "mintgate_hotkey_requests_per_second{rank=\"%u\",pool=\"", i + 1);
        label(o, e->pool >= 0 && cfg && (uint32_t)e->pool < cfg->npools ? cfg->pools[e->pool].name
                                                                        : "");
        if (keys) {
            char esc[HOTKEY_KEY_MAX * 4 + 1];
            hotkey_escape(esc, sizeof(esc), e->key, e->klen);
            buf_append_str(o, "\",key=\"");
            label(o, esc);
        }
        buf_printf(o, "\"} %.3f\n", e->count * scale);
    }
}

void hotkey_escape(char *dst, size_t dlen, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < dlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch > ' ' && ch < 127 && ch != '\\')
            dst[o++] = (char)ch;
        else
            o += (size_t)snprintf(dst + o, dlen - o, "\\x%02x", ch);
    }
    dst[o] = '\0';
}

int observe_apply(const struct settings *s, char *err, size_t errlen)
{
    atomic_store(&hot_sample, s->hot.disabled ? 0
                              : s->hot.sample ? s->hot.sample
                                              : HOT_SAMPLE_DEFAULT);
    atomic_store(&hot_top, s->hot.top ? s->hot.top : HOT_TOP_DEFAULT);
    atomic_store(&hot_expose, s->hot.expose_keys);
    double ms = s->slowlog_off ? 1e13 : s->slowlog_ms >= 0 ? s->slowlog_ms : SLOWLOG_DEFAULT_MS;
    if (slowlog_configure(ms, s->slowlog_size ? s->slowlog_size : SLOWLOG_DEFAULT_SIZE) != MG_OK) {
        snprintf(err, errlen, "slow log: out of memory");
        return MG_ERR;
    }
    return trace_apply(&s->trace, err, errlen);
}
