/* near.h: the near cache — hot keys answered from the gateway's own memory for a bounded
 * time (mg.near, a pool's near = {...}).
 *
 * One store shared by every worker: NEAR_STRIPES stripes, each a hash table with its own
 * mutex, LRU list and a byte budget of size / NEAR_STRIPES. Shared rather than one cache
 * per worker because a write through any worker must drop the key for all of them before
 * its reply goes out: with one store that is one locked removal, with per-worker caches
 * it would be a message to every worker and a wait for each. A stripe's lock is held for
 * a hash probe and a copy of the value, so contention stays low with two to a few dozen
 * workers.
 *
 * Races with fills: each stripe counts its invalidations in NEAR_SEQ_SLOTS slots by hash
 * (and its clears). A get that may fill reads the count of its key's slot before it goes to
 * memcached (near_seq); its fill is refused if any invalidation of that slot (or a clear)
 * happened since, so a value read before a write can never be stored after that write
 * dropped the key. */
#ifndef MG_NEAR_H
#define MG_NEAR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mg.h"

#define NEAR_STRIPES 64
#define NEAR_SEQ_SLOTS 256 /* invalidation counts per stripe (see Races with fills) */
#define NEAR_SIZE_DEFAULT (64ull << 20)
#define NEAR_MAX_VALUE_DEFAULT (64u << 10)
#define NEAR_TTL_DEFAULT 1.0

/* What an entry keeps besides its value: the client flags, the CAS, and when the item
 * itself expires in memcached (wall clock; < 0: never), for a meta reply's t flag. */
struct near_meta {
    uint32_t flags;
    uint64_t cas;
    double item_exp;
};

/* Counters of the store (all workers together). */
struct near_totals {
    uint64_t bytes, entries, evictions, invalidations, expired, fills_refused;
};

/* Create the store (first call) or change its budget. size: bytes of entries (keys,
 * values and bookkeeping) across the stripes. Main thread, before the config that uses
 * it is published. Returns MG_OK or MG_ERR (out of memory). */
int near_configure(uint64_t size);
/* True once near_configure succeeded (then the store exists for the process's life). */
bool near_ready(void);

/* A hash of key for near_* calls (computed once per request): mg_mix64 of its FNV-1a, so a
 * scan that hashes as it goes (MG_FNV_STEP) gets it with near_hash_fnv. */
static inline uint64_t near_hash_fnv(uint64_t fnv)
{
    return mg_mix64(fnv); /* the stripe takes the high bits, the table the low */
}
static inline uint64_t near_hash(const char *key, size_t klen)
{
    return near_hash_fnv(mg_fnv1a64(key, klen));
}

/* Look key up for pool of config generation gen at time now (ev_now: wall clock, the same
 * for every worker). A hit copies the value into val (emptied first), sets *flags, *cas
 * and returns true (m: its flags, CAS and item expiry); *refresh is set when this hit should
 * refresh the entry (past its refresh time and nobody refreshing it yet: the caller sends one
 * background read). */
bool near_lookup(uint64_t h, uint64_t gen, int pool, const char *key, size_t klen, double now,
                 struct buf *val, struct near_meta *m, bool *refresh);

/* A classic hit's reply, for the express lane: like near_lookup, but appends to out, under
 * the stripe's lock, the entry's reply head (its first hcas bytes, or all of it with_cas:
 * see near_fill) followed by \r\n, the value and \r\n. False on a miss (or no memory:
 * nothing appended). */
bool near_lookup_reply(uint64_t h, uint64_t gen, int pool, const char *key, size_t klen, double now,
                       struct buf *out, bool with_cas, bool *refresh);

/* The stripe's invalidation count for h: read before a read that may fill. */
uint64_t near_seq(uint64_t h);

/* Store a value read from memcached (refused, false, when the stripe saw an invalidation
 * since seq, or it does not fit). The entry lives until expires and asks for a refresh
 * from refresh_at. Replaces an entry of the same key. head[0..hlen): the reply head
 * near_lookup_reply hands out (its caller's rendering, e.g. " flags bytes cas"; hcas <=
 * hlen: the part without the CAS). */
bool near_fill(uint64_t h, uint64_t seq, uint64_t gen, int pool, const char *key, size_t klen,
               const struct near_meta *m, const char *head, uint8_t hlen, uint8_t hcas,
               const char *val, uint32_t vlen, double expires, double refresh_at);

/* Drop the key of hash h (near_hash) in every pool and generation: a write went through.
 * By hash alone (a write's op keeps no copy of its key): another key of the same 64-bit
 * hash is dropped too, which costs it a refill, nothing more. Returns the entries dropped;
 * bumps the stripe's seq even when there was none. */
uint32_t near_invalidate(uint64_t h);
/* Drop everything (flush_all, a config without near). */
void near_clear(void);

/* Whether key is there now (for stats hotkeys' "near" mark); no LRU update. */
bool near_has(uint64_t h, const char *key, size_t klen, double now);

void near_totals(struct near_totals *t);
/* Free the store (shutdown, no other thread using it). */
void near_free(void);

/* --- the hot set: keys the hot-key detector finds hot, published by the main thread --- */

/* The most keys a hot set holds (mg.near's hot_top is capped to it). */
#define NEAR_HOT_MAX 256
/* Publications of the hot set are at least this far apart (seconds). */
#define NEAR_HOT_GAP 0.01

/* What makes a key hot for the near cache (a config's mg.near: on, requests per second, at
 * most top keys); any thread. The main thread reads them every quarter second, and when a
 * worker's detector wakes it (near_hot_count), takes the hot-key detector's hottest keys at
 * or over the rate and publishes them (main.c). */
void near_hot_settings(bool on, double rps, uint32_t top);
void near_hot_params(bool *on, double *rps, uint32_t *top);
/* A worker's detector counted sure samples of a key in its current window (hotkeys_add), on
 * one of nw workers. When that reaches the hot rate -- for all workers together, each with
 * its share, or for this one alone; a sample standing for the requests per second the main
 * thread last set with near_hot_set_scale (none set yet: never) -- the waker set by
 * near_hot_set_waker is called (any thread), at most once until near_hot_woken; returns
 * whether it was. So a key that turns hot is published within milliseconds rather than at
 * the next quarter-second tick. */
bool near_hot_count(uint64_t sure, int nw);
/* The rate one sample stands for, as the main thread's publication reckons it
 * (metrics_hotkeys: the sampling interval over the window, or over the uptime while that is
 * shorter), so a wake comes exactly when the publication takes the key. */
void near_hot_set_scale(double scale);
void near_hot_set_waker(void (*fn)(void));
/* The main thread took the wake (before it reads the detector). */
void near_hot_woken(void);
/* No hot set was published (or the last one was cleared with n = 0 keys: still one). */
bool near_hot_empty(void);

/* Replace the hot set with keys[0..n) (lens[i] bytes each, pools[i] their pool); readers on
 * other threads see either set. Main thread only. */
void near_hot_publish(const char *const *keys, const uint32_t *lens, const int *pools, uint32_t n);
/* Is (pool, the key of hash h = near_hash(key)) in the hot set? Any thread; lock-free. */
bool near_hot(int pool, uint64_t h);

#endif
