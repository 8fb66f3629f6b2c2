/* stats_render.c: the `stats` command (server layer), summed over every worker. */
#include "stats_render.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "hotkeys.h"
#include "metrics.h"
#include "conn.h"
#include "memstats.h"
#include "near.h"
#include "slowlog.h"
#include "stats.h"
#include "switch.h"
#include "trace.h"
#include "worker.h"

/* A counter's name and its offset in struct stats, for summing over workers. */
#define F(name)                             \
    {                                       \
#name, offsetof(struct stats, name) \
    }
static const struct {
    const char *name;
    size_t off;
} counters[] = {
    /* clang-format off */
    F(curr_connections), F(total_connections), F(rejected_connections),
    F(listen_disabled_num),
    F(cmd_get),          F(cmd_set),           F(cmd_flush),
    F(cmd_touch),        F(cmd_meta),          F(get_hits),
    F(get_misses),       F(get_expired),       F(get_errors),
    F(delete_misses),    F(delete_hits),       F(incr_misses),
    F(incr_hits),        F(decr_misses),       F(decr_hits),
    F(cas_misses),       F(cas_hits),          F(cas_badval),
    F(touch_hits),       F(touch_misses),      F(backend_errors),
    F(client_errors),    F(bytes_read),        F(bytes_written),
    /* clang-format on */
};
static const struct {
    const char *name;
    size_t off;
} herd_counters[] = {
    F(herd_wins),      F(herd_stale_hits),    F(herd_waits),
    F(herd_wait_hits), F(herd_wait_timeouts), F(herd_lock_expired),
    F(herd_coalesced), F(herd_marked_stale),  F(herd_sets_refused),
};
/* mg.memo's (lua_memo.h): hits, misses, evictions, results not kept, entries, capacity */
static const struct {
    const char *name;
    size_t off;
} memo_counters[] = {
    F(lua_memo_hits),        F(lua_memo_misses),  F(lua_memo_evictions),
    F(lua_memo_uncacheable), F(lua_memo_entries), F(lua_memo_capacity),
};

#undef F

static uint64_t sum_counter(size_t off)
{
    uint64_t v = 0;
    for (int i = 0; i < nworkers; i++) {
        atomic_uint_fast64_t *p = (atomic_uint_fast64_t *)((char *)&workers[i].st + off);
        v += atomic_load_explicit(p, memory_order_relaxed);
    }
    return v;
}

static void render_general(struct buf *out, uint64_t cfg_generation)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    time_t now = time(NULL);
    buf_printf(out, "STAT pid %ld\r\n", (long)getpid());
    buf_printf(out, "STAT uptime %ld\r\n", (long)(now - process_started));
    buf_printf(out, "STAT time %ld\r\n", (long)now);
    buf_printf(out, "STAT version %s\r\n", MG_VERSION_REPLY);
    buf_printf(out, "STAT pointer_size %d\r\n", (int)(8 * sizeof(void *)));
    buf_printf(out, "STAT rusage_user %ld.%06ld\r\n", (long)ru.ru_utime.tv_sec,
               (long)ru.ru_utime.tv_usec);
    buf_printf(out, "STAT rusage_system %ld.%06ld\r\n", (long)ru.ru_stime.tv_sec,
               (long)ru.ru_stime.tv_usec);
    buf_printf(out, "STAT max_connections %d\r\n", settings.max_conns);
    for (size_t i = 0; i < MG_ARRAY_LEN(counters); i++)
        stats_line(out, "", counters[i].name, sum_counter(counters[i].off));
    for (size_t i = 0; i < MG_ARRAY_LEN(herd_counters); i++)
        stats_line(out, "", herd_counters[i].name, sum_counter(herd_counters[i].off));
    uint64_t lua_kb = 0;
    for (int i = 0; i < nworkers; i++)
        lua_kb += atomic_load_explicit(&workers[i].lua_kb, memory_order_relaxed);
    buf_printf(out, "STAT lua_memory_kb %llu\r\n", (unsigned long long)lua_kb);
    for (size_t i = 0; i < MG_ARRAY_LEN(memo_counters); i++)
        stats_line(out, "", memo_counters[i].name, sum_counter(memo_counters[i].off));
    buf_printf(out, "STAT config_generation %llu\r\n", (unsigned long long)cfg_generation);
    buf_printf(out, "STAT threads %d\r\n", nworkers);
    buf_printf(out, "STAT item_size_max %u\r\n", settings.value_max);
    memstats_render(out, MEMSTATS_GENERAL); /* curr_items, bytes, ...: the backends' */
    buf_printf(out, "STAT mintgate_version %s\r\n", MG_VERSION);
}

/* `stats settings`: memcached's names where a setting of the gateway's has one, then the
 * gateway's own (its pools' defaults: the flags; a pool may set its own). */
static void render_settings(struct worker *w, struct buf *out)
{
    int port = 0;
    const char *sock = "NULL";
    struct buf inter = { 0 };
    for (int i = 0; i < w->nlisten; i++) {
        const struct listener *l = &w->listen[i];
        if (l->admin)
            continue;
        if (strncmp(l->addr, "unix:", 5) == 0) {
            sock = l->addr + 5;
            continue;
        }
        if (port == 0)
            port = l->port;
        buf_printf(&inter, "%s%s", inter.len ? "," : "", l->addr);
    }
    buf_printf(out, "STAT maxconns %d\r\n", settings.max_conns);
    buf_printf(out, "STAT tcpport %d\r\n", port);
    buf_printf(out, "STAT udpport 0\r\n");
    buf_printf(out, "STAT inter %s\r\n", inter.len ? inter.data : "NULL");
    buf_printf(out, "STAT domain_socket %s\r\n", sock);
    buf_printf(out, "STAT num_threads %d\r\n", nworkers);
    buf_printf(out, "STAT cas_enabled yes\r\n");
    buf_printf(out, "STAT binding_protocol ascii\r\n");
    buf_printf(out, "STAT auth_enabled_sasl no\r\n");
    buf_printf(out, "STAT item_size_max %u\r\n", settings.value_max);
    buf_printf(out, "STAT flush_enabled yes\r\n");
    buf_printf(out, "STAT mintgate_version %s\r\n", MG_VERSION);
    buf_printf(out, "STAT admin_listeners %d\r\n", settings.nadmin);
    buf_printf(out, "STAT admin_on_data_port %s\r\n", settings.admin_on_data_port ? "yes" : "no");
    buf_printf(out, "STAT batch_loops %d\r\n", settings.batch_loops);
    buf_printf(out, "STAT pools %u\r\n", w->cfg->npools);
    buf_printf(out, "STAT servers %u\r\n", w->cfg->nservers);
    const struct pool_opts *o = &settings.opts;
    buf_printf(out, "STAT pool_connect_timeout %.3f\r\n", o->connect_timeout);
    buf_printf(out, "STAT pool_timeout %.3f\r\n", o->timeout);
    buf_printf(out, "STAT pool_failure_limit %u\r\n", o->failure_limit);
    buf_printf(out, "STAT pool_retry_timeout %.3f\r\n", o->retry_timeout);
    if (o->max_inflight == UINT32_MAX)
        buf_printf(out, "STAT pool_max_inflight none\r\n");
    else
        buf_printf(out, "STAT pool_max_inflight %u\r\n", o->max_inflight);
    buf_printf(out, "STAT pool_connections %u\r\n", o->connections);
    buf_printf(out, "STAT pool_eject %s\r\n", settings.eject_remap ? "remap" : "fail");
    buf_free(&inter);
}

/* fd's address (local, or peer) as memcached writes it: tcp:host:port, tcp6:[host]:port,
 * unix:path. */
static void sock_name(int fd, bool peer, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    memset(&ss, 0, sizeof(ss));
    if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &sl)
              : getsockname(fd, (struct sockaddr *)&ss, &sl)) < 0) {
        snprintf(out, len, "unknown");
    } else if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(out, len, "tcp:%s:%u", host, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(out, len, "tcp6:[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
        size_t n = sl > offsetof(struct sockaddr_un, sun_path)
                       ? sl - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        snprintf(out, len, "unix:%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
    } else {
        snprintf(out, len, "unknown");
    }
}

/* `stats conns`, as memcached lists them (<fd>:addr, listen_addr, state): the listeners
 * and the client connections of the asking worker, which owns them (another worker's
 * list is its own thread's; curr_connections counts every worker's). */
static void render_conns(struct worker *w, struct buf *out)
{
    char addr[160];
    for (int i = 0; i < w->nlisten; i++) {
        const struct listener *l = &w->listen[i];
        sock_name(l->fd, false, addr, sizeof(addr));
        buf_printf(out, "STAT %d:addr %s\r\n", l->fd, addr);
        buf_printf(out, "STAT %d:state conn_listening\r\n", l->fd);
    }
    for (const struct conn *c = w->conns; c; c = c->next) {
        if (c->fd < 0)
            continue;
        const char *state = c->closing         ? "conn_closing"
                            : c->swallow       ? "conn_swallow"
                            : c->paused        ? "conn_mwrite"
                            : c->inflight_keys ? "conn_io_queue"
                                               : "conn_parse_cmd";
        sock_name(c->fd, true, addr, sizeof(addr));
        if (strcmp(addr, "unix:") == 0) /* an unnamed client socket: its listener's path */
            sock_name(c->fd, false, addr, sizeof(addr));
        buf_printf(out, "STAT %d:addr %s\r\n", c->fd, addr);
        sock_name(c->fd, false, addr, sizeof(addr));
        buf_printf(out, "STAT %d:listen_addr %s\r\n", c->fd, addr);
        buf_printf(out, "STAT %d:state %s\r\n", c->fd, state);
    }
}

/* Per backend: the asking worker's view of its state, counters summed over workers
 * (every worker has the same servers in the same order); backend.c renders them. */
static void render_backends(struct worker *self, struct buf *out)
{
    const struct config *cfg = self->cfg;
    for (uint32_t s = 0; s < cfg->nservers; s++) {
        struct backend_totals t = { .state = backend_state_name(self->backends[s]) };
        for (int i = 0; i < nworkers; i++) {
            struct worker *w = &workers[i];
            if (w->backends == NULL || w->backends_cfg != cfg || s >= w->nbackends)
                continue;
            backend_stats_add(&t, w->backends[s]);
        }
        backend_stats_lines(out, cfg->servers[s].name, &t);
    }
}

/* A pool's counter at offset off in struct pool_herd, summed over the workers on cfg. */
static uint64_t sum_pool_counter(const struct config *cfg, uint32_t p, size_t off)
{
    uint64_t v = 0;
    for (int i = 0; i < nworkers; i++) {
        struct worker *ow = &workers[i];
        if (ow->cfg == cfg && p < ow->npool_herd)
            v += atomic_load_explicit((atomic_uint_fast64_t *)((char *)&ow->pool_herd[p] + off),
                                      memory_order_relaxed);
    }
    return v;
}

static void render_pools(struct worker *self, struct buf *out)
{
    const struct config *cfg = self->cfg;
    for (uint32_t p = 0; p < cfg->npools; p++) {
        const struct pool *pool = &cfg->pools[p];
        if (pool->kind != POOL_SERVERS)
            continue; /* stats routes */
        buf_printf(out, "STAT pool:%s:servers %u\r\n", pool->name, pool->nservers);
        for (uint32_t i = 0; i < pool->nservers; i++)
            buf_printf(out, "STAT pool:%s:server:%u %s\r\n", pool->name, i, pool->servers[i]->name);
        buf_printf(out, "STAT pool:%s:stale %s\r\n", pool->name, pool->stale ? "yes" : "no");
        static const struct {
            const char *name;
            size_t off;
        } f[] = {
#define PH(x) { #x, offsetof(struct pool_herd, x) }
            PH(wins),         PH(stale_hits), PH(waits),        PH(wait_hits),    PH(wait_timeouts),
            PH(lock_expired), PH(coalesced),  PH(marked_stale), PH(sets_refused),
#undef PH
        };
        for (size_t k = 0; k < MG_ARRAY_LEN(f); k++)
            buf_printf(out, "STAT pool:%s:herd_%s %llu\r\n", pool->name, f[k].name,
                       (unsigned long long)sum_pool_counter(cfg, p, f[k].off));
        /* recompute time (win -> store), the mean of the workers that measured one */
        uint64_t regen = 0, nregen = 0;
        for (int i = 0; i < nworkers; i++) {
            struct worker *ow = &workers[i];
            uint64_t us =
                ow->cfg == cfg && p < ow->npool_herd ? STAT_GET(ow->pool_herd[p].regen_us) : 0;
            regen += us;
            nregen += us != 0;
        }
        buf_printf(out, "STAT pool:%s:herd_regen_ms %.3f\r\n", pool->name,
                   nregen ? (double)regen / (double)nregen / 1000.0 : 0.0);
        /* reply latency histogram, cumulative: replies that took at most each bound */
        uint64_t cum = 0;
        for (int b = 0; b < LAT_BUCKETS; b++) {
            for (int i = 0; i < nworkers; i++) {
                struct worker *ow = &workers[i];
                if (ow->cfg == cfg && p < ow->npool_herd)
                    cum += STAT_GET(ow->pool_herd[p].lat[b]);
            }
            if (b < LAT_BUCKETS - 1)
                buf_printf(out, "STAT pool:%s:latency_le_%uus %llu\r\n", pool->name,
                           stats_lat_bounds_us[b], (unsigned long long)cum);
        }
        buf_printf(out, "STAT pool:%s:latency_count %llu\r\n", pool->name, (unsigned long long)cum);
    }
}

/* The hottest keys over every worker (stats hotkeys): rank, the key (printable, \xNN for
 * the rest), estimated requests per second in all and by command kind, the over-estimation
 * bound, the pool of its latest sample. */
static void render_hotkeys(struct worker *self, struct buf *out)
{
    static const char *const kinds[HK_KINDS] = { "get", "set", "delete", "other" };
    struct hotkey_entry top[256];
    double scale;
    uint32_t n = metrics_hotkeys(top, MG_ARRAY_LEN(top), &scale);
    const struct config *cfg = self->cfg;
    buf_printf(out, "STAT hotkeys_sample %u\r\n", (unsigned)atomic_load(&hot_sample));
    buf_printf(out, "STAT hotkeys_window %u\r\n",
               settings.hot.window ? settings.hot.window : HOT_WINDOW);
    buf_printf(out, "STAT hotkeys_top %u\r\n", (unsigned)atomic_load(&hot_top));
    for (uint32_t i = 0; i < n; i++) {
        const struct hotkey_entry *e = &top[i];
        char esc[HOTKEY_KEY_MAX * 4 + 1];
        hotkey_escape(esc, sizeof(esc), e->key, e->klen);
        buf_printf(out, "STAT hotkey:%u:key %s\r\n", i + 1, esc);
        buf_printf(out, "STAT hotkey:%u:rps %.1f\r\n", i + 1, e->count * scale);
        buf_printf(out, "STAT hotkey:%u:error_rps %.1f\r\n", i + 1, e->err * scale);
        for (int k = 0; k < HK_KINDS; k++)
            buf_printf(out, "STAT hotkey:%u:%s_rps %.1f\r\n", i + 1, kinds[k], e->kinds[k] * scale);
        buf_printf(out, "STAT hotkey:%u:pool %s\r\n", i + 1,
                   e->pool >= 0 && (uint32_t)e->pool < cfg->npools ? cfg->pools[e->pool].name
                                                                   : "-");
        /* served from the near cache: in its hot set (the pool caches hot keys) */
        bool near = cfg->near.on && cfg->near.hot && e->pool >= 0 &&
                    (uint32_t)e->pool < cfg->npools && cfg->pools[e->pool].near &&
                    near_hot(e->pool, near_hash(e->key, e->klen));
        buf_printf(out, "STAT hotkey:%u:near %s\r\n", i + 1, near ? "yes" : "no");
    }
}

/* `stats near`: the near cache's settings, counters over the workers, the store's totals
 * and per pool hits, misses and fills. */
static void render_near(struct worker *self, struct buf *out)
{
    const struct config *cfg = self->cfg;
    const struct near_conf *nc = &cfg->near;
    buf_printf(out, "STAT near_enabled %s\r\n", nc->on ? "yes" : "no");
    buf_printf(out, "STAT near_size %llu\r\n", (unsigned long long)nc->size);
    buf_printf(out, "STAT near_ttl %g\r\n", nc->ttl);
    buf_printf(out, "STAT near_hot %s\r\n", nc->hot && nc->on ? "yes" : "no");
    buf_printf(out, "STAT near_hot_rps %g\r\n", nc->hot_rps);
    buf_printf(out, "STAT near_max_value %u\r\n", nc->max_value);
    static const struct {
        const char *name;
        size_t off;
    } f[] = {
        { "near_hits", offsetof(struct stats, near_hits) },
        { "near_misses", offsetof(struct stats, near_misses) },
        { "near_fills", offsetof(struct stats, near_fills) },
        { "near_refreshes", offsetof(struct stats, near_refreshes) },
        { "near_invalidations", offsetof(struct stats, near_invalidations) },
        { "near_hot_wakes", offsetof(struct stats, near_hot_wakes) },
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(f); i++)
        stats_line(out, "", f[i].name, sum_counter(f[i].off));
    struct near_totals t;
    near_totals(&t);
    buf_printf(out, "STAT near_entries %llu\r\n", (unsigned long long)t.entries);
    buf_printf(out, "STAT near_bytes %llu\r\n", (unsigned long long)t.bytes);
    buf_printf(out, "STAT near_evictions %llu\r\n", (unsigned long long)t.evictions);
    buf_printf(out, "STAT near_expired %llu\r\n", (unsigned long long)t.expired);
    buf_printf(out, "STAT near_dropped %llu\r\n", (unsigned long long)t.invalidations);
    buf_printf(out, "STAT near_fills_refused %llu\r\n", (unsigned long long)t.fills_refused);
    for (uint32_t p = 0; p < cfg->npools; p++) {
        const struct pool *pool = &cfg->pools[p];
        if (pool->kind != POOL_SERVERS || !pool->near)
            continue;
        buf_printf(out, "STAT pool:%s:near_ttl %g\r\n", pool->name, pool->near_ttl);
        buf_printf(out, "STAT pool:%s:near_prefixes %u\r\n", pool->name, pool->nnear_prefixes);
        buf_printf(
            out, "STAT pool:%s:near_hits %llu\r\n", pool->name,
            (unsigned long long)sum_pool_counter(cfg, p, offsetof(struct pool_herd, near_hits)));
        buf_printf(
            out, "STAT pool:%s:near_misses %llu\r\n", pool->name,
            (unsigned long long)sum_pool_counter(cfg, p, offsetof(struct pool_herd, near_misses)));
        buf_printf(
            out, "STAT pool:%s:near_fills %llu\r\n", pool->name,
            (unsigned long long)sum_pool_counter(cfg, p, offsetof(struct pool_herd, near_fills)));
    }
}

/* Per failover route: its pools in order, options, and counters summed over workers. */
static void render_routes(struct worker *self, struct buf *out)
{
    const struct config *cfg = self->cfg;
    static const struct {
        const char *name;
        size_t off;
    } f[] = {
#define RC(x) { #x, offsetof(struct pool_herd, route_##x) }
        RC(requests),        RC(fallbacks),         RC(fallback_writes), RC(misses_moved),
        RC(failed),          RC(deletes_skipped),   RC(fills),           RC(shadow_copies),
        RC(shadow_errors),   RC(shadow_mismatches), RC(replica_errors),  RC(replays_queued),
        RC(replays_dropped), RC(replays_sent),
#undef RC
    };
    for (uint32_t p = 0; p < cfg->npools; p++) {
        const struct pool *r = &cfg->pools[p];
        if (r->kind == POOL_SERVERS)
            continue;
        static const char *kinds[] = { [POOL_FAILOVER] = "failover",
                                       [POOL_WARMUP] = "warmup",
                                       [POOL_SHADOW] = "shadow",
                                       [POOL_REPLICATE] = "replicate" };
        buf_printf(out, "STAT route:%s:kind %s\r\n", r->name, kinds[r->kind]);
        for (uint32_t i = 0; i < r->nchildren; i++)
            buf_printf(out, "STAT route:%s:child:%u %s\r\n", r->name, i,
                       cfg->pools[r->children[i]].name);
        buf_printf(out, "STAT route:%s:ttl %u\r\n", r->name, r->fo_ttl);
        buf_printf(out, "STAT route:%s:on_miss %s\r\n", r->name, r->fo_on_miss ? "yes" : "no");
        if (r->kind == POOL_REPLICATE) {
            static const char *reads[] = { "first", "fastest", "failover", "random" };
            static const char *writes[] = { "all", "majority", "async" };
            buf_printf(out, "STAT route:%s:reads %s\r\n", r->name, reads[r->rep_reads]);
            buf_printf(out, "STAT route:%s:writes %s\r\n", r->name, writes[r->rep_writes]);
        }
        for (size_t k = 0; k < MG_ARRAY_LEN(f); k++)
            buf_printf(out, "STAT route:%s:%s %llu\r\n", r->name, f[k].name,
                       (unsigned long long)sum_pool_counter(cfg, p, f[k].off));
    }
}

void stats_render(struct worker *w, struct mg_slice args, struct buf *out)
{
    while (args.len && args.p[0] == ' ') {
        args.p++;
        args.len--;
    }
    while (args.len && args.p[args.len - 1] == ' ')
        args.len--;
    if (args.len == 7 && memcmp(args.p, "slowlog", 7) == 0) { /* its own lock and END */
        slowlog_render(out);
        return;
    }
    if (args.len == 5 && memcmp(args.p, "trace", 5) == 0) { /* its own lock */
        trace_render(out);
        buf_append_str(out, "END\r\n");
        return;
    }
    /* other workers may be swapping their config (reload): hold them off while reading */
    pthread_mutex_lock(&worker_config_lock);
    if (args.len == 0)
        render_general(out, w->cfg->generation);
    else if (args.len == 8 && memcmp(args.p, "backends", 8) == 0)
        render_backends(w, out);
    else if (args.len == 8 && memcmp(args.p, "switches", 8) == 0)
        switch_render(out);
    else if (args.len == 5 && memcmp(args.p, "pools", 5) == 0)
        render_pools(w, out);
    else if (args.len == 6 && memcmp(args.p, "routes", 6) == 0)
        render_routes(w, out);
    else if (args.len == 8 && memcmp(args.p, "settings", 8) == 0)
        render_settings(w, out);
    else if (args.len == 5 && memcmp(args.p, "items", 5) == 0)
        memstats_render(out, MEMSTATS_ITEMS);
    else if (args.len == 5 && memcmp(args.p, "slabs", 5) == 0)
        memstats_render(out, MEMSTATS_SLABS);
    else if (args.len == 5 && memcmp(args.p, "sizes", 5) == 0)
        memstats_render(out, MEMSTATS_SIZES);
    else if (args.len == 5 && memcmp(args.p, "conns", 5) == 0)
        render_conns(w, out);
    else if (args.len == 7 && memcmp(args.p, "hotkeys", 7) == 0)
        render_hotkeys(w, out);
    else if (args.len == 4 && memcmp(args.p, "near", 4) == 0)
        render_near(w, out);
    else if (args.len == 4 && memcmp(args.p, "herd", 4) == 0)
        for (size_t i = 0; i < MG_ARRAY_LEN(herd_counters); i++)
            stats_line(out, "", herd_counters[i].name + 5, sum_counter(herd_counters[i].off));
    else {
        pthread_mutex_unlock(&worker_config_lock);
        buf_append_str(out, "ERROR\r\n");
        return;
    }
    pthread_mutex_unlock(&worker_config_lock);
    buf_append_str(out, "END\r\n");
}
