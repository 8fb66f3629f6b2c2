/* backend.h: a worker's pipelined meta-protocol connection to one memcached server. */
#ifndef MG_BACKEND_H
#define MG_BACKEND_H

#include <ev.h>
#include <stdatomic.h>

#include "buf.h"
#include "config.h"
#include "health.h"

struct worker;
struct op;

enum backend_state {
    BE_IDLE = 0,   /* no connection; the next request connects */
    BE_CONNECTING, /* non-blocking connect under way */
    BE_UP,         /* connected */
    BE_DOWN,       /* ejected until retry_at */
};

/* Per-backend counters, written by the owning worker only, read by any thread (stats). */
struct backend_stats {
    atomic_uint_fast64_t requests, writes, errors, timeouts, ejections, inflight;
    atomic_uint_fast64_t busy; /* requests refused past max_inflight */
    atomic_uint_fast64_t down; /* 1 while ejected: what other threads may read of state */
};

/* One server's counters summed over workers, and the state to show (stats backends). */
struct backend_totals {
    const char *state;
    uint64_t requests, writes, errors, timeouts, ejections, inflight, busy;
};

/* Owned by its worker (worker->backends[server id]); ops point back to it while queued.
 * Keeps its own copy of the server's name and address so it can outlive a config. */
struct backend {
    struct worker *w;
    uint32_t server_id; /* index in the worker's config */
    char *name;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct pool_opts opts;
    int fd;
    enum backend_state state; /* this worker's only: others read st.down */
    ev_io rio, wio;
    ev_timer timer;     /* connect timeout, then the oldest request's read timeout */
    uint32_t failures;  /* consecutive */
    ev_tstamp retry_at; /* BE_DOWN until then */
    bool probing;       /* its connection carries the `mn` that tests an ejected server */
    bool authing;       /* its connection's first answer is to the auth (opts.auth) */
    uint32_t streak;    /* ejections with less than BACKEND_STEADY s up between them */
    ev_tstamp up_since; /* the last probe that got its answer */
    struct buf wbuf;    /* commands rendered but not yet written */
    struct buf rbuf;
    struct op *qhead, *qtail; /* every op whose command is in wbuf or on the wire */
    uint32_t nq;
    bool dirty; /* on the worker's flush list */
    struct backend *next_dirty;
    struct backend *next_retired; /* on the worker's retired list after a reload */
    struct backend_stats st;
    struct health *health; /* shared with the other workers' backends of this server */
    /* connections = N > 1: the server's connections, conns[0] the backend itself (the one
     * the worker's array holds); a key always takes the same one, so its commands stay in
     * order. NULL on the others (extra) and when there is one. */
    struct backend **conns;
    uint32_t nconns;
    bool extra;
};

struct backend *backend_new(struct worker *w, const struct server *srv);
/* The connection of b's server that key takes (b itself with one connection). */
static inline struct backend *backend_conn(struct backend *b, const char *key, size_t klen)
{
    if (MG_LIKELY(b->nconns <= 1))
        return b;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < klen; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return b->conns[h % b->nconns];
}
/* Requests queued on any of b's connections. */
uint32_t backend_queued(const struct backend *b);
/* New options (a reload) for b and its other connections. */
void backend_set_opts(struct backend *b, const struct pool_opts *o);
void backend_free(struct backend *b);

/* True when a request may be queued now (connected, connecting, or worth a reconnect).
 * False while ejected: the caller fails the request at once. */
bool backend_usable_slow(struct backend *b);
static inline bool backend_usable(struct backend *b)
{
    if (MG_LIKELY(b->state != BE_DOWN && health_until(b->health) == 0))
        return true;
    return backend_usable_slow(b);
}
/* Queue op whose command the caller has just appended to b->wbuf. Starts a connect when
 * idle and schedules a flush before the loop sleeps. */
void backend_push(struct backend *b, struct op *op);
/* Write pending commands (called once per loop iteration for dirty backends). */
void backend_flush(struct backend *b);
const char *backend_state_name(const struct backend *b);

/* Add b's counters to t (any thread: they are atomics); an ejected b shows "down". */
void backend_stats_add(struct backend_totals *t, const struct backend *b);
/* Append the STAT lines of server name with totals t to out. */
void backend_stats_lines(struct buf *out, const char *name, const struct backend_totals *t);

#endif
