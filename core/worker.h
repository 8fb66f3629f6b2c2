/* worker.h: a worker thread: its libev loop, client connections and backend connections. */
#ifndef MG_WORKER_H
#define MG_WORKER_H

#include <ev.h>
#include <pthread.h>

#include "backend.h"
#include "buf.h"
#include "config.h"
#include "ketama.h"
#include "stats.h"

struct conn;
struct backend;
struct request;
struct herd_wait;
struct herd_lock;
struct op;
struct lua_vm;
struct reload_wait;
struct engine_plugin;

/* A listening socket. main opens it (one per worker, or one unix socket every worker
 * shares) and describes it; each worker keeps a copy with its own accept watcher. */
struct listener {
    ev_io io; /* the worker's accept watcher (worker.c) */
    int fd;
    const char *addr; /* as configured (settings owns it) */
    uint16_t port;    /* the port bound (TCP) */
    bool admin;       /* an admin listener */
    bool shared;      /* shared by all workers (unix): main closes it */
    bool public;      /* reachable off this host (main warns) */
};

/* A generation this worker replaced while its requests (and their ops' staleness policies,
 * herd waits included) still point into it: the worker's reference to it is let go when
 * the last of them is released. Owned by the worker's cfg_holds list. */
struct cfg_hold {
    struct config *cfg;
    uint32_t live;
    struct cfg_hold *next;
};

/* Owned by main (workers[]); everything hanging off it is owned by its thread. */
struct worker {
    int id;
    pthread_t tid;
    struct ev_loop *loop;
    ev_idle batch_idle;         /* active while backend writes wait (worker_prepare_cb) */
    int batch_loops;            /* iterations they have waited */
    uint64_t npush, npush_seen; /* requests queued to backends: all, and at the last wait */
    ev_prepare prepare;         /* flushes dirty backends and clients before the loop sleeps */
    ev_async wake;              /* another thread asks: stop, or a new config */
    struct listener listen[MG_MAX_LISTENERS * 2];
    int nlisten;
    ev_timer accept_rest;              /* out of descriptors: starts the accept watchers again */
    bool accept_paused;                /* the accept watchers are stopped until accept_rest fires */
    bool accept_starved;               /* accept keeps failing (an episode, logged once) */
    ev_tstamp accept_logged;           /* when an episode was last logged */
    _Atomic(struct config *) next_cfg; /* a reload's new generation, taken on wake */
    struct backend *retired;           /* backends an older config had, freed once idle */
    ev_timer housekeeping;             /* retired backends, Lua memory, fleet switches */
    atomic_uint_fast64_t lua_kb;       /* Lua memory of this worker, for stats */
    /* reload outcome, read by the worker that answers an admin `reload` */
    atomic_uint_fast64_t cfg_gen;      /* generation running now */
    atomic_uint_fast64_t failed_gen;   /* last generation this worker could not take */
    char reload_err[256];              /* why; written before failed_gen is stored */
    struct reload_wait *reload_waits;  /* admin reloads answered once workers confirm */
    struct config *cfg;                /* current generation; a reference is held */
    uint32_t cfg_live;                 /* requests begun under cfg (request_get), not released */
    struct cfg_hold *cfg_holds;        /* older generations live requests still point into */
    const struct config *backends_cfg; /* what backends belong to: stats reads it (lock) */
    struct backend **backends;         /* by server id of cfg */
    uint32_t nbackends;
    struct backend *dirty_backends;
    struct conn *dirty_conns;
    struct conn *conns; /* every open client (doubly linked) */
    uint64_t conn_serial;
    struct buf scratch;        /* where fresh client bytes are read (conn.c) */
    struct request *free_reqs; /* cached requests */
    uint32_t nfree_reqs;
    struct lua_vm *vm; /* the script's state in this worker (Lua layer's), or NULL */
    const struct engine_plugin *plugin; /* installed by the Lua layer, or NULL (plugin.h) */
    struct herd_wait *herd_waits;       /* ops waiting for a value (herd.c) */
    struct herd_lock *herd_locks;       /* wins handed out here, with their timers (herd.c) */
    struct op **inflight;               /* open-addressing table of leading gets (herd.c) */
    uint32_t inflight_cap, inflight_n;
    atomic_bool stop;
    bool stopping;
    bool tearing_down; /* worker_destroy: backends are going away, dispatch nothing */
    ev_timer drain;    /* while stopping: waits for requests in flight */
    ev_tstamp drain_deadline;
    struct stats st;
    struct pool_herd *pool_herd;  /* by pool index of cfg */
    struct live_ring *live;       /* by pool index of cfg: rings over live servers (remap) */
    struct repl_write *repl_free; /* replicated writes' records, for reuse (dispatch.c) */
    uint32_t nrepl_free;
    uint32_t nlive;
    uint32_t npool_herd;
    struct srv_slot *slots; /* by config slot (pool->slot_base + place): metrics */
    uint64_t requestlog_n;  /* client requests seen by the sampled request log */
    struct hotkeys *hot;    /* the hot-key detector's sampled keys (stats hotkeys), or NULL */
    uint32_t hot_left;      /* keys until the next sample */
    uint64_t hot_rng;       /* xorshift state for the sampling gaps */
    uint64_t herd_rng;      /* xorshift state for xfetch's draws (herd.c) */
    struct buf near_val;    /* a near cache hit's value, copied out under its stripe's lock */
    bool near_express;      /* the near cache's express lane is open (worker_set_express) */
    struct near_pre {       /* what the express lane found out about the key it let pass */
        const char *p;      /* the key's bytes in the read buffer (NULL: nothing) */
        uint32_t len;
        uint64_t h; /* near_hash of its backend key */
        bool want;  /* a key the near cache serves */
    } near_pre;
    uint32_t nslots;
};

extern struct worker *workers;
extern int nworkers;
extern atomic_int total_conns; /* across workers, for -c */
extern time_t process_started;

/* Create worker id with its loop and listeners ls[0..n) (copied; their fds are the
 * worker's own but for shared ones). */
int worker_init(struct worker *w, int id, const struct listener *ls, int n, struct config *cfg,
                char *err, size_t errlen);
/* Load the config script again and hand the new generation to every worker. Any thread.
 * Returns MG_OK, or MG_ERR with err filled (the old config stays). */
int worker_reload_all(char *err, size_t errlen, uint64_t *generation);
/* Has every worker taken generation gen (MG_OK), has one failed to (MG_ERR, err filled),
 * or is it still under way (MG_EAGAIN)? */
int worker_reload_status(uint64_t gen, char *err, size_t errlen);
/* Held by a worker while it swaps its config and backends, and by stats readers. */
extern pthread_mutex_t worker_config_lock;
int worker_start(struct worker *w);
void worker_stop_all(void); /* from the main thread: ask every worker, then join */
void worker_destroy(struct worker *w);

/* A request begun under generation cfg is released (request.c): the worker lets go of an
 * older generation once nothing points into it any more. */
void worker_cfg_release(struct worker *w, const struct config *cfg);

/* Schedule b / c for a flush before the loop next sleeps. */
void worker_dirty_backend(struct worker *w, struct backend *b);
void worker_dirty_conn(struct worker *w, struct conn *c);
/* Backend for a server of the worker's current config. */
static inline struct backend *worker_backend(struct worker *w, uint32_t server_id)
{
    return w->backends[server_id];
}

/* For a pool with eject = "remap" whose ketama server for key is ejected: the backend that
 * libmemcached's ketama over the pool's live servers gives key (primary when none is). */
struct backend *worker_pick_live(struct worker *w, const struct pool *p, const char *key,
                                 size_t klen, struct backend *primary);

/* The backend of pool p (of the worker's current config) that key goes to: the one place
 * a key is mapped to a server (ketama over the backend key). */
static inline struct backend *worker_pick(struct worker *w, const struct pool *p, const char *key,
                                          size_t klen)
{
    struct backend *b =
        w->backends[p->servers[p->nservers == 1 ? 0 : ketama_pick(p->ring, key, klen)]->id];
    if (MG_UNLIKELY(p->remap) && !backend_usable(b))
        b = worker_pick_live(w, p, key, klen, b);
    return backend_conn(b, key, klen);
}

#endif
