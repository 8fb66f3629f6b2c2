/* worker.c: worker threads: loop setup, accepting clients, the before-sleep flush. */
#include "worker.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "backend.h"
#include "conn.h"
#include "health.h"
#include "herd.h"
#include "fleet.h"
#include "lua_api.h"
#include "lua_vm.h"
#include "memstats.h"
#include "proto_meta.h"
#include "proto_text.h"
#include "log.h"
#include "request.h"
#include "hotkeys.h"
#include "metrics.h"
#include "route.h"

struct worker *workers;
pthread_mutex_t worker_config_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
int nworkers;
atomic_int total_conns;
time_t process_started;

#define ACCEPT_BATCH 64
#define DRAIN_MAX_SECONDS 2.0
/* Out of descriptors: how long accepting rests, and how often that may be logged. */
#define ACCEPT_BACKOFF_SECONDS 0.05
#define ACCEPT_LOG_INTERVAL 5.0

static void worker_accept_cb(struct ev_loop *loop, ev_io *io, int revents);

void worker_dirty_backend(struct worker *w, struct backend *b)
{
    w->npush++;
    if (b->dirty)
        return;
    b->dirty = true;
    b->next_dirty = w->dirty_backends;
    w->dirty_backends = b;
}

void worker_dirty_conn(struct worker *w, struct conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->next_dirty = w->dirty_conns;
    w->dirty_conns = c;
}

/* Before the loop sleeps: write every batch built during this iteration, once. */
static void worker_flush_conns(struct worker *w)
{
    while (w->dirty_conns) {
        struct conn *c = w->dirty_conns;
        w->dirty_conns = c->next_dirty;
        c->dirty = false;
        conn_flush(c);
    }
}

static void worker_flush_all(struct worker *w)
{
    while (w->dirty_backends || w->dirty_conns) {
        while (w->dirty_backends) {
            struct backend *b = w->dirty_backends;
            w->dirty_backends = b->next_dirty;
            b->dirty = false;
            backend_flush(b);
        }
        worker_flush_conns(w);
    }
}

/* Only there to make the loop poll without sleeping while backend writes wait. */
static void worker_batch_idle_cb(struct ev_loop *loop, ev_idle *i, int revents)
{
    MG_UNUSED(revents);
    ev_idle_stop(loop, i);
}

/* Before the loop sleeps. Replies to clients go out now. Backend writes may wait up to
 * settings.batch_loops iterations, as long as each iteration brought more requests:
 * the loop then polls without sleeping (the idle watcher), so a write waits only for
 * requests that are already there. Bigger batches mean fewer wakeups and syscalls in
 * memcached; see README "Internals". */
static void worker_prepare_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    MG_UNUSED(revents);
    struct worker *w = p->data;
    if (w->dirty_backends && w->batch_loops < settings.batch_loops &&
        (w->batch_loops == 0 || w->npush != w->npush_seen)) {
        w->batch_loops++;
        w->npush_seen = w->npush;
        worker_flush_conns(w);
        ev_idle_start(loop, &w->batch_idle);
        return;
    }
    w->batch_loops = 0;
    ev_idle_stop(loop, &w->batch_idle);
    worker_flush_all(w);
}

static void worker_stop_listeners(struct worker *w)
{
    for (int i = 0; i < w->nlisten; i++)
        ev_io_stop(w->loop, &w->listen[i].io);
    ev_timer_stop(w->loop, &w->accept_rest); /* it would start them again */
    w->accept_paused = false;
}

/* Does c still have requests to finish? Queued ones (answered or not: a reply the client
 * has not read yet is still in flight), and those it sent that are not parsed yet: in our
 * buffer, held back by backpressure, or still in the socket. */
static bool conn_busy(struct conn *c)
{
    if (c->closing)
        return false;
    if (c->head || c->paused || buf_unread(&c->rbuf))
        return true;
    int n = 0;
    return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

/* Nothing left to finish while stopping (the drain ends earlier at its deadline). */
static bool worker_idle(struct worker *w)
{
    for (uint32_t i = 0; i < w->nbackends; i++)
        if (backend_queued(w->backends[i]))
            return false;
    for (struct conn *c = w->conns; c; c = c->next)
        if (conn_busy(c))
            return false;
    return true;
}

static void worker_drain_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    MG_UNUSED(revents);
    struct worker *w = t->data;
    if (worker_idle(w) || ev_now(loop) >= w->drain_deadline) {
        ev_timer_stop(loop, t);
        ev_break(loop, EVBREAK_ALL);
    }
}

static bool backend_waited_on(struct worker *w, struct backend *b)
{
    for (struct herd_wait *hw = w->herd_waits; hw; hw = herd_wait_next(hw))
        if (herd_wait_backend(hw) == b)
            return true;
    return false;
}

/* --- eject = "remap" ---------------------------------------------------------------------- */

/* A pool's ring over its live servers, rebuilt when server health changed. */
struct live_ring {
    struct ketama *ring;
    uint32_t *ids; /* server id of each ring index */
    uint32_t n;
    uint32_t epoch;     /* health_epoch() it was built at */
    int64_t recheck_us; /* the earliest retry of a server it left out (0: none) */
    bool built;
};

static void live_rings_free(struct worker *w)
{
    for (uint32_t i = 0; i < w->nlive; i++) {
        if (w->live[i].ring)
            ketama_free(w->live[i].ring);
        free(w->live[i].ids);
    }
    free(w->live);
    w->live = NULL;
    w->nlive = 0;
}

/* For the worker's current config: one empty slot per pool, built on first use. */
static void live_rings_reset(struct worker *w)
{
    live_rings_free(w);
    w->live = calloc(w->cfg->npools, sizeof(*w->live));
    if (w->live)
        w->nlive = w->cfg->npools;
}

static void live_ring_build(struct worker *w, const struct pool *p, struct live_ring *lr,
                            uint32_t epoch, int64_t now_us)
{
    if (lr->ring)
        ketama_free(lr->ring);
    lr->ring = NULL;
    lr->n = 0;
    lr->recheck_us = 0;
    lr->epoch = epoch;
    lr->built = true;
    if (lr->ids == NULL && (lr->ids = calloc(p->nservers, sizeof(*lr->ids))) == NULL)
        return;
    const char **names = calloc(p->nservers, sizeof(*names));
    if (names == NULL)
        return;
    for (uint32_t i = 0; i < p->nservers; i++) {
        const struct server *srv = p->servers[i];
        struct backend *b = w->backends[srv->id];
        if (backend_usable(b)) {
            names[lr->n] = srv->name;
            lr->ids[lr->n++] = srv->id;
            continue;
        }
        int64_t back = (int64_t)(b->retry_at * 1e6);
        int64_t shared = health_until(b->health);
        if (shared > back)
            back = shared;
        if (back > now_us && (lr->recheck_us == 0 || back < lr->recheck_us))
            lr->recheck_us = back;
    }
    char err[128];
    if (lr->n > 0) /* the same names in the same order: libmemcached's ring over them */
        lr->ring = ketama_new(names, NULL, lr->n, err, sizeof(err));
    if (lr->n > 0 && lr->ring == NULL) {
        log_warn("pool %s: no ring over the live servers: %s", p->name, err);
        lr->n = 0;
    }
    free(names);
}

struct backend *worker_pick_live(struct worker *w, const struct pool *p, const char *key,
                                 size_t klen, struct backend *primary)
{
    if (p->id >= w->nlive)
        return primary;
    struct live_ring *lr = &w->live[p->id];
    uint32_t epoch = health_epoch();
    int64_t now = (int64_t)(ev_now(w->loop) * 1e6);
    if (!lr->built || lr->epoch != epoch || (lr->recheck_us && now >= lr->recheck_us))
        live_ring_build(w, p, lr, epoch, now);
    if (lr->n == 0)
        return primary;
    return w->backends[lr->ids[lr->n == 1 ? 0 : ketama_pick(lr->ring, key, klen)]];
}

/* Free retired backends nobody uses any more. */
static void worker_free_retired(struct worker *w)
{
    struct backend **pp = &w->retired;
    while (*pp) {
        struct backend *b = *pp;
        bool busy = false;
        for (uint32_t i = 0; i < (b->nconns ? b->nconns : 1); i++) {
            struct backend *x = b->nconns ? b->conns[i] : b;
            busy = busy || x->nq || x->dirty || backend_waited_on(w, x);
        }
        if (!busy) {
            *pp = b->next_retired;
            backend_free(b);
        } else {
            pp = &b->next_retired;
        }
    }
}

/* The worker moves from old to a new generation: its reference to old goes now, or, while
 * requests begun under old live, when the last of them is released. */
static void cfg_retire(struct worker *w, struct config *old)
{
    struct cfg_hold *h = w->cfg_live ? malloc(sizeof(*h)) : NULL;
    if (w->cfg_live && h == NULL) {
        log_error("worker %d: out of memory: generation %llu is kept", w->id,
                  (unsigned long long)old->generation);
    } else if (h) {
        h->cfg = old;
        h->live = w->cfg_live;
        h->next = w->cfg_holds;
        w->cfg_holds = h;
    } else {
        config_unref(old);
    }
    w->cfg_live = 0;
}

void worker_cfg_release(struct worker *w, const struct config *cfg)
{
    if (MG_LIKELY(cfg == w->cfg)) {
        w->cfg_live--;
        return;
    }
    for (struct cfg_hold **pp = &w->cfg_holds; *pp; pp = &(*pp)->next) {
        struct cfg_hold *h = *pp;
        if (h->cfg != cfg)
            continue;
        if (--h->live == 0) {
            *pp = h->next;
            config_unref(h->cfg);
            free(h);
        }
        return;
    }
}

/* The near cache's express lane (dispatch_near_express) is open when the config has the
 * near cache and nothing decides per request in Lua or needs a request's own copy. */
static void worker_set_express(struct worker *w)
{
    w->near_express = w->cfg->near.on && w->plugin == NULL && !w->cfg->has_failover;
    w->near_pre.p = NULL;
}

/* Take a new config generation (a reload): a new Lua state, backends matched by address
 * (connections to unchanged servers are kept), requests in flight finish as they are. */
static void worker_apply(struct worker *w, struct config *nc)
{
    char err[1024];
    struct config *old = w->cfg;
    struct lua_vm *oldvm = w->vm;
    const struct engine_plugin *oldplugin = w->plugin;
    w->vm = NULL;
    w->plugin = NULL;
    w->cfg = nc;
    if (settings.script && lua_api_worker_init(w, settings.script, err, sizeof(err)) != MG_OK) {
        log_error("reload: worker %d keeps its config: %s", w->id, err);
        snprintf(w->reload_err, sizeof(w->reload_err), "%.200s", err);
        atomic_store_explicit(&w->failed_gen, nc->generation, memory_order_release);
        w->cfg = old;
        w->vm = oldvm;
        w->plugin = oldplugin;
        config_unref(nc);
        return;
    }
    struct backend **nb = calloc(nc->nservers, sizeof(struct backend *));
    struct pool_herd *ph = calloc(nc->npools, sizeof(struct pool_herd)); /* new pools */
    struct srv_slot *sl = calloc(nc->nslots ? nc->nslots : 1, sizeof(struct srv_slot));
    if (ph == NULL || sl == NULL) { /* counters: keep the old ones (bounds-checked) */
        free(ph);
        free(sl);
        ph = NULL;
        sl = NULL;
    }
    if (nb == NULL) {
        log_error("reload: worker %d: out of memory", w->id);
        snprintf(w->reload_err, sizeof(w->reload_err), "out of memory");
        atomic_store_explicit(&w->failed_gen, nc->generation, memory_order_release);
        free(ph);
        free(sl);
        lua_api_worker_release(w);
        w->cfg = old;
        w->vm = oldvm;
        w->plugin = oldplugin;
        config_unref(nc);
        return;
    }
    /* stats threads read the backend arrays and their config under the lock */
    pthread_mutex_lock(&worker_config_lock);
    for (uint32_t i = 0; i < nc->nservers; i++) {
        const struct server *srv = &nc->servers[i];
        for (uint32_t j = 0; j < w->nbackends; j++) {
            struct backend *b = w->backends[j];
            /* the same server with as many connections as before */
            if (b && strcmp(b->name, srv->name) == 0 &&
                (b->nconns ? b->nconns : 1) == srv->opts.connections) {
                b->server_id = i;
                for (uint32_t k = 1; k < b->nconns; k++)
                    b->conns[k]->server_id = i;
                backend_set_opts(b, &srv->opts);
                nb[i] = b;
                w->backends[j] = NULL;
                break;
            }
        }
        if (nb[i] == NULL)
            nb[i] = backend_new(w, srv);
    }
    for (uint32_t j = 0; j < w->nbackends; j++)
        if (w->backends[j]) {
            w->backends[j]->next_retired = w->retired;
            w->retired = w->backends[j];
        }
    free(w->backends);
    w->backends = nb;
    w->nbackends = nc->nservers;
    w->backends_cfg = nc;
    if (ph) {
        free(w->pool_herd);
        w->pool_herd = ph;
        w->npool_herd = nc->npools;
        free(w->slots);
        w->slots = sl;
        w->nslots = nc->nslots;
    }
    pthread_mutex_unlock(&worker_config_lock);
    cfg_retire(w, old);
    live_rings_reset(w);
    mg_text_set_key_max(nc->long_keys ? KEYS_IN_MAX : MG_KEY_MAX);
    if (oldvm)
        lua_api_vm_release(oldvm);
    worker_free_retired(w);
    worker_set_express(w);
    atomic_store_explicit(&w->cfg_gen, nc->generation, memory_order_release);
    log_info("worker %d: config generation %llu", w->id, (unsigned long long)nc->generation);
}

int worker_reload_status(uint64_t gen, char *err, size_t errlen)
{
    int rc = MG_OK;
    for (int i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        if (atomic_load_explicit(&w->failed_gen, memory_order_acquire) >= gen) {
            snprintf(err, errlen, "worker %d: %s", w->id, w->reload_err);
            return MG_ERR;
        }
        /* stop, not stopping: that one is the worker's own (a data race under TSan) */
        if (atomic_load_explicit(&w->cfg_gen, memory_order_acquire) < gen &&
            !atomic_load_explicit(&w->stop, memory_order_acquire))
            rc = MG_EAGAIN;
    }
    return rc;
}

/* At a reload (under reload_lock): read the clients' users file again, from --auth-file
 * or the new script's mg.auth (taking copy->auth_file over). Turning authentication on or
 * off takes a restart: connections already let in would otherwise be left as they are. A
 * file that fails to load keeps the users loaded before. */
static void worker_reload_auth(struct settings *copy)
{
    char aerr[512];
    if (!auth_required()) {
        if (copy->auth_file && !copy->auth_from_cli) {
            log_error("reload: mg.auth takes a restart to turn authentication on");
            free(copy->auth_file);
        }
        return;
    }
    if (!copy->auth_from_cli && copy->auth_file) {
        free(settings.auth_file);
        settings.auth_file = copy->auth_file;
    } else if (!copy->auth_from_cli) {
        log_warn("reload: the script has no mg.auth any more; authentication stays on "
                 "(with %s) until a restart",
                 settings.auth_file);
    }
    if (auth_load(settings.auth_file, aerr, sizeof(aerr)) != MG_OK)
        log_error("reload: %s; the users loaded before stay", aerr);
}

int worker_reload_all(char *err, size_t errlen, uint64_t *generation)
{
    if (settings.script == NULL) {
        snprintf(err, errlen, "no config script to reload (started with -s)");
        return MG_ERR;
    }
    pthread_mutex_lock(&reload_lock);
    struct settings copy = settings; /* listeners stay as they are */
    copy.listen_from_cli = copy.admin_from_cli = copy.admin_secret_from_cli = true;
    copy.metrics_from_cli = true; /* metrics listeners stay too */
    if (!copy.auth_from_cli)
        copy.auth_file = NULL; /* the script's mg.auth, if any, fills it afresh */
    struct config *nc = lua_config_load(settings.script, &copy, err, errlen);
    if (nc == NULL) {
        if (!copy.auth_from_cli)
            free(copy.auth_file);
        atomic_fetch_add(&metrics_reloads_failed, 1);
        pthread_mutex_unlock(&reload_lock);
        log_error("reload failed, the old config stays: %s", err);
        return MG_ERR;
    }
    for (int i = 0; i < nworkers; i++) {
        config_ref(nc);
        struct config *prev = atomic_exchange(&workers[i].next_cfg, nc);
        if (prev)
            config_unref(prev);
        ev_async_send(workers[i].loop, &workers[i].wake);
    }
    uint64_t gen = nc->generation;
    config_unref(nc);
    atomic_fetch_add(&metrics_reloads_ok, 1);
    char oerr[256];
    if (observe_apply(&copy, oerr, sizeof(oerr)) != MG_OK) /* slow log, hot keys */
        log_warn("reload: %s", oerr);
    worker_reload_auth(&copy);
    pthread_mutex_unlock(&reload_lock);
    log_warn("reload: config generation %llu loaded", (unsigned long long)gen);
    if (generation)
        *generation = gen;
    return MG_OK;
}

static void worker_housekeeping_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    MG_UNUSED(loop);
    MG_UNUSED(revents);
    struct worker *w = t->data;
    worker_free_retired(w);
    atomic_store_explicit(&w->lua_kb, lua_api_mem_kb(w), memory_order_relaxed);
    if (w->id == 0)
        fleet_poll(w);
    memstats_poll(w);                           /* worker 0 only: the backends' own stats */
    for (uint32_t i = 0; i < w->nbackends; i++) /* deletes a replica missed while down */
        if (w->backends[i]->health &&
            atomic_load_explicit(&w->backends[i]->health->replay_n, memory_order_relaxed))
            route_replay(w, w->backends[i]);
}

/* Another thread asked for something: a new config, or to stop (drain, then leave). */
static void worker_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    MG_UNUSED(revents);
    struct worker *w = a->data;
    struct config *nc = atomic_exchange(&w->next_cfg, NULL);
    if (nc && !w->stopping)
        worker_apply(w, nc);
    else if (nc)
        config_unref(nc);
    if (!atomic_load(&w->stop) || w->stopping)
        return;
    w->stopping = true;
    worker_stop_listeners(w);
    w->drain_deadline = ev_now(loop) + DRAIN_MAX_SECONDS;
    ev_timer_init(&w->drain, worker_drain_cb, 0., 0.02);
    w->drain.data = w;
    ev_timer_again(loop, &w->drain);
    worker_drain_cb(loop, &w->drain, 0);
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    } else {
        snprintf(out, len, "unix");
        return;
    }
    snprintf(out, len, "%s:%u", host, port);
}

/* accept failed for want of descriptors or kernel memory. The connection stays in the
 * backlog and the listening socket stays readable, so trying again at once would spin
 * (and log) as fast as the loop turns. Like memcached's listen_disabled: stop this
 * worker's accept watchers and let a timer start them again shortly. An episode (from
 * the first failure to the next accept that works) is logged once, at most every
 * ACCEPT_LOG_INTERVAL seconds; every pause is counted. */
static void worker_accept_pause(struct worker *w, int err)
{
    if (w->accept_paused)
        return;
    w->accept_paused = true;
    for (int i = 0; i < w->nlisten; i++)
        ev_io_stop(w->loop, &w->listen[i].io);
    ev_timer_set(&w->accept_rest, ACCEPT_BACKOFF_SECONDS, 0.);
    ev_timer_start(w->loop, &w->accept_rest);
    STAT_INC(w->st.listen_disabled_num);
    if (w->accept_starved)
        return;
    w->accept_starved = true;
    ev_tstamp now = ev_now(w->loop);
    if (w->accept_logged == 0 || now - w->accept_logged >= ACCEPT_LOG_INTERVAL) {
        w->accept_logged = now;
        log_warn("worker %d: accept: %s: not accepting for %.0f ms at a time until it clears "
                 "(stats listen_disabled_num counts the pauses)",
                 w->id, strerror(err), ACCEPT_BACKOFF_SECONDS * 1000);
    }
}

static void worker_accept_rest_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    MG_UNUSED(revents);
    struct worker *w = t->data;
    w->accept_paused = false;
    if (w->stopping)
        return;
    for (int i = 0; i < w->nlisten; i++)
        ev_io_start(loop, &w->listen[i].io);
}

static void worker_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    MG_UNUSED(loop);
    MG_UNUSED(revents);
    struct worker *w = io->data;
    const struct listener *l = (const struct listener *)io; /* its first member */
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                worker_accept_pause(w, errno);
            else if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        if (w->accept_starved) {
            w->accept_starved = false;
            log_info("worker %d: accepting again", w->id);
        }
        if (atomic_fetch_add(&total_conns, 1) >= settings.max_conns) {
            static const char msg[] = "ERROR Too many open connections\r\n";
            ssize_t n = write(fd, msg, sizeof(msg) - 1);
            (void)n;
            close(fd);
            atomic_fetch_sub(&total_conns, 1);
            STAT_INC(w->st.rejected_connections);
            continue;
        }
        struct conn *c = conn_new(w, fd);
        if (c == NULL) {
            atomic_fetch_sub(&total_conns, 1);
            continue;
        }
        c->admin = l->admin;
        c->trusted = (c->admin || settings.admin_on_data_port) && !admin_has_secret();
        peer_name(&ss, c->peer, sizeof(c->peer));
    }
}

int worker_init(struct worker *w, int id, const struct listener *ls, int n, struct config *cfg,
                char *err, size_t errlen)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (w->loop == NULL) {
        snprintf(err, errlen, "cannot create an event loop");
        return MG_ERR;
    }
    config_ref(cfg);
    w->cfg = cfg;
    w->backends_cfg = cfg;
    w->nbackends = cfg->nservers;
    w->backends = calloc(cfg->nservers, sizeof(struct backend *));
    if (w->backends == NULL)
        goto oom;
    for (uint32_t i = 0; i < cfg->nservers; i++) {
        w->backends[i] = backend_new(w, &cfg->servers[i]);
        if (w->backends[i] == NULL)
            goto oom;
    }
    live_rings_reset(w);
    if (settings.script && lua_api_worker_init(w, settings.script, err, errlen) != MG_OK)
        return MG_ERR;
    worker_set_express(w);
    atomic_store(&w->cfg_gen, cfg->generation);
    w->pool_herd = calloc(cfg->npools, sizeof(struct pool_herd));
    if (w->pool_herd == NULL)
        goto oom;
    w->npool_herd = cfg->npools;
    w->slots = calloc(cfg->nslots ? cfg->nslots : 1, sizeof(struct srv_slot));
    if (w->slots == NULL)
        goto oom;
    w->nslots = cfg->nslots;
    w->hot = hotkeys_new(HOT_CAPACITY, settings.hot.window ? settings.hot.window : HOT_WINDOW);
    if (w->hot == NULL)
        goto oom;
    w->hot_left = 1;
    ev_idle_init(&w->batch_idle, worker_batch_idle_cb);
    ev_prepare_init(&w->prepare, worker_prepare_cb);
    w->prepare.data = w;
    ev_prepare_start(w->loop, &w->prepare);
    ev_async_init(&w->wake, worker_wake_cb);
    w->wake.data = w;
    ev_async_start(w->loop, &w->wake);
    ev_timer_init(&w->housekeeping, worker_housekeeping_cb, 0.5, 1.0);
    w->housekeeping.data = w;
    ev_timer_start(w->loop, &w->housekeeping);
    ev_timer_init(&w->accept_rest, worker_accept_rest_cb, ACCEPT_BACKOFF_SECONDS, 0.);
    w->accept_rest.data = w;
    w->nlisten = n;
    for (int i = 0; i < n; i++) {
        struct listener *l = &w->listen[i];
        *l = ls[i];
        ev_io_init(&l->io, worker_accept_cb, l->fd, EV_READ);
        l->io.data = w;
        ev_io_start(w->loop, &l->io);
    }
    return MG_OK;
oom:
    snprintf(err, errlen, "out of memory");
    return MG_ERR;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    mg_text_set_key_max(w->cfg->long_keys ? KEYS_IN_MAX : MG_KEY_MAX); /* this thread's */
    ev_run(w->loop, 0);
    return NULL;
}

int worker_start(struct worker *w)
{
    return pthread_create(&w->tid, NULL, worker_main, w) == 0 ? MG_OK : MG_ERR;
}

/* Ask every worker to stop, then wait for them all: they drain at the same time, so the
 * whole stop takes at most DRAIN_MAX_SECONDS, not that much per worker. */
void worker_stop_all(void)
{
    for (int i = 0; i < nworkers; i++) {
        atomic_store(&workers[i].stop, true);
        ev_async_send(workers[i].loop, &workers[i].wake);
    }
    for (int i = 0; i < nworkers; i++)
        pthread_join(workers[i].tid, NULL);
}

void worker_destroy(struct worker *w)
{
    if (w->loop == NULL)
        return;
    for (struct conn *c = w->conns; c; c = c->next)
        conn_close(c);
    /* failing the ops below may resume Lua code that dispatches again: refuse it */
    w->tearing_down = true;
    w->dirty_backends = NULL;
    for (uint32_t i = 0; i < w->nbackends; i++)
        backend_free(w->backends[i]);
    while (w->retired) {
        struct backend *b = w->retired;
        w->retired = b->next_retired;
        backend_free(b);
    }
    struct config *nc = atomic_exchange(&w->next_cfg, NULL);
    if (nc)
        config_unref(nc);
    free(w->backends);
    w->backends = NULL;
    live_rings_free(w);
    herd_worker_destroy(w);
    route_worker_destroy(w); /* after the backends: no wait is polling any more */
    admin_worker_destroy(w);
    worker_flush_all(w);
    while (w->conns) { /* every request completed above, so each conn frees itself */
        struct conn *c = w->conns;
        conn_flush(c);
        if (w->conns == c) {
            log_error("worker %d: connection %s still has requests at exit", w->id, c->peer);
            break;
        }
    }
    request_cache_drain(w);
    lua_api_worker_release(w);
    buf_free(&w->scratch);
    free(w->pool_herd);
    w->pool_herd = NULL;
    w->npool_herd = 0;
    free(w->slots);
    w->slots = NULL;
    w->nslots = 0;
    hotkeys_free(w->hot);
    buf_free(&w->near_val);
    w->hot = NULL;
    for (int i = 0; i < w->nlisten; i++)
        if (!w->listen[i].shared)
            close(w->listen[i].fd);
    ev_loop_destroy(w->loop);
    w->loop = NULL;
    while (w->cfg_holds) {
        struct cfg_hold *h = w->cfg_holds;
        w->cfg_holds = h->next;
        config_unref(h->cfg);
        free(h);
    }
    config_unref(w->cfg);
}
