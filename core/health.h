/* health.h: whether a memcached server is ejected, shared by every worker thread.
 *
 * A worker that ejects a backend (failure_limit consecutive failures) marks its server
 * down until the retry time; every worker then treats it as down (no client request is
 * risked on it) and pools with eject = "remap" place its keys over the live servers. The
 * first worker whose retry gets a reply marks it up again. Entries are keyed by the
 * server's "host:port" and live as long as the process, so a reload keeps them. */
#ifndef MG_HEALTH_H
#define MG_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct health_replay; /* a delete a replica missed while it was down (health.c) */

struct health {
    _Atomic int64_t down_until_us; /* 0: up; else ejected until then (ev_now, in µs) */
    /* deletes of a replicated route this server missed: replayed before it serves reads */
    _Atomic uint32_t replay_n;        /* queued */
    _Atomic uint32_t replay_inflight; /* sent, not answered yet */
    struct health_replay *replay;     /* under the table's lock */
};

/* Most deletes kept for one server; more are dropped (counted by the caller). */
#define HEALTH_REPLAY_MAX 10000

/* Keep a missed delete of key (as sent to that server; b64: with the b flag). Returns
 * false when the queue is full or out of memory. */
bool health_replay_push(struct health *h, const char *key, size_t klen, bool b64);
/* Take every queued delete (the caller sends them); NULL when none. */
struct health_replay *health_replay_take(struct health *h);
/* Walk a taken list: the key of r, and the next one (r is freed). */
struct health_replay *health_replay_next(struct health_replay *r, char *key, size_t *klen,
                                         bool *b64);

/* True while h's server must not serve reads (missed deletes not replayed yet). */
static inline bool health_replaying(const struct health *h)
{
    return h && (atomic_load_explicit(&h->replay_n, memory_order_relaxed) |
                 atomic_load_explicit(&h->replay_inflight, memory_order_relaxed)) != 0;
}

/* The entry for server name, created on first use; NULL when out of memory or past
 * HEALTH_MAX entries (that server's ejections then stay per worker). Thread-safe. */
struct health *health_get(const char *name);

/* Mark h down until until_us (keeps a later time another worker set), or up. Each change
 * bumps health_epoch. h may be NULL. */
void health_down(struct health *h, int64_t until_us);
void health_up(struct health *h);

/* Until when h is marked down (0: up); h may be NULL. */
static inline int64_t health_until(const struct health *h)
{
    return h ? atomic_load_explicit(&h->down_until_us, memory_order_relaxed) : 0;
}

/* True while h is ejected at now_us. */
static inline bool health_is_down(const struct health *h, int64_t now_us)
{
    int64_t u = health_until(h);
    return u != 0 && now_us < u;
}

/* Changes whenever some server goes down or up: remap rings rebuild when it moved. */
uint32_t health_epoch(void);

/* Free every entry (at exit, after the workers stopped). */
void health_free_all(void);

#endif
