/* herd.c: thundering-herd bookkeeping for classic clients on memcached's meta flags.
 *
 * memcached (>= 1.6) arbitrates, fleet-wide, who refreshes a key:
 *   mg ... R<s>  once the remaining TTL drops below s, the first reader gets W (win) and
 *                every later reader Z (someone else is refreshing), all with the value;
 *   md ... I     mark stale (X) instead of deleting and clear the win token, so the next
 *                reader wins again; with C<cas> only if nobody stored since.
 * A classic client cannot see flags, so here W becomes a miss (that client regenerates)
 * and Z a plain hit (the stale value). A winner that never stores loses the win after
 * `lock` seconds: the gateway that handed it out marks the item stale again with
 * md I C<cas>, which only succeeds if no store happened in between.
 *
 * A cold miss has no item to hang a token on. memcached's N flag (vivify) would create an
 * empty placeholder in the key itself, which classic commands then see (an add after a
 * get would fail, incr would find a non-number); so the lease is a key of its own on the
 * same server: the first reader's `ms <lease> 1 T<lock> ME` (add) wins, the others wait
 * for the value, polling the key, woken at once by a store through this worker. The
 * winner's store through this worker deletes the lease; otherwise it expires by itself.
 *
 * Guard (policy option, on by default): the winner read its database before someone else
 * wrote it and deleted (or set) the key, so its store comes late with an old value — the
 * stale-set race that Facebook's memcache leases close (NSDI 2013). Fleet-wide through
 * memcached's own CAS, with no state shared between gateways:
 *   hot win   the item's CAS at the win is kept; the winning connection's set (or replace)
 *             goes as ms C<cas> (and I under on_delete = "mark_stale": a CAS older than
 *             the item's stores the value marked stale, so the next reader wins again).
 *             EX/NF: someone wrote or deleted since the win, and the value is dropped;
 *   cold win  the lease add answers its CAS; the winner's store returns its own (ms c),
 *             and md <lease> C<lease cas>, pipelined right behind it, releases the lease.
 *             HD: it was intact, the value stands. NF/EX: a write revoked it (or it expired,
 *             or is another reader's) while the winner regenerated: md <key> C<store cas>
 *             retracts the value, unless someone stored since. The check goes right behind
 *             the store, not after its reply: every write the winner's connection sends
 *             later revokes the lease behind the check, and a write that changes nothing
 *             (an add finding the value, a cas or md C with a wrong CAS) must not pass
 *             for one the value predates;
 *   revoke    with leases in the policy (wait > 0), every other store or delete of the key
 *             through any gateway deletes its lease first, on the key's own backend
 *             connection: one more backend command per write in such pools. */
#include "herd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "conn.h"
#include "log.h"
#include "meta_render.h"
#include "request.h"
#include "worker.h"

/* A waiting op: polls its backend until a value appears, a store wakes it, or it times
 * out. Owned by the worker's waits list; the op points to it while it waits. */
struct herd_wait {
    ev_timer timer;
    struct op *op;
    struct worker *w;
    struct herd_wait *prev, *next;
    ev_tstamp deadline;
    bool polling; /* a poll is on the wire */
    bool again;   /* woken while polling: poll again as soon as it answers */
};

/* A win handed out here: when it times out, the item is marked stale again. Owned by the
 * worker's herd_locks list; freed when it times out, or when its winner writes the key. */
struct herd_lock {
    ev_timer timer;
    struct worker *w;
    struct herd_lock *prev, *next;
    uint32_t server; /* backend index in the worker's config of generation gen */
    int pool;
    bool lease; /* a cold-miss lease this worker won (deleted by the winner's store) */
    bool guard; /* the policy guards the winner's store (only the winner's write ends it) */
    uint64_t gen;
    uint64_t cas;    /* the won item's (hot win) or the lease's (cold) */
    double item_exp; /* a hot win: when the item expires (wall clock), < 0 never or unknown */
    uint64_t conn;   /* the winning connection's serial (0: none); a conn may be gone by now */
    ev_tstamp since; /* when the win was handed out: its store measures the recompute time */
    uint32_t lock;   /* seconds the win (or the lease) lasts */
    bool stored;     /* someone else's store went through this worker since: the item is
                      * fresh, so the lock's md I C<cas> would fail anyway (not sent) */
    uint8_t klen;
    char key[MG_KEY_MAX];
};

#define LEASE_PREFIX MG_RESERVED_PREFIX "lease:"
#define LEASE_PREFIX_LEN (sizeof(LEASE_PREFIX) - 1)

/* The lease key of key into out (MG_KEY_MAX + 1 bytes): the prefix and the key, or for a
 * long key its first bytes and a 64-bit hash of it. Returns its length. */
static size_t lease_key(const char *key, size_t klen, char *out)
{
    memcpy(out, LEASE_PREFIX, LEASE_PREFIX_LEN);
    if (LEASE_PREFIX_LEN + klen <= MG_KEY_MAX) {
        memcpy(out + LEASE_PREFIX_LEN, key, klen);
        return LEASE_PREFIX_LEN + klen;
    }
    uint64_t h = mg_fnv1a64(key, klen);
    size_t keep = MG_KEY_MAX - LEASE_PREFIX_LEN - 17;
    memcpy(out + LEASE_PREFIX_LEN, key, keep);
    size_t n = LEASE_PREFIX_LEN + keep;
    out[n++] = '#';
    for (int i = 15; i >= 0; i--)
        out[n++] = "0123456789abcdef"[(h >> (i * 4)) & 15];
    return n;
}

/* memcached reads an exptime above 30 days as an absolute unix time */
#define REALTIME_MAXDELTA (60 * 60 * 24 * 30)

int64_t herd_store_ttl(int64_t exptime, const struct stale_policy *pol)
{
    if (exptime <= 0 || pol == NULL || pol->grace == 0)
        return exptime;
    if (exptime > INT64_MAX - (int64_t)time(NULL) - (int64_t)pol->grace)
        return exptime; /* no room for the grace: memcached refuses such a TTL anyway */
    if (exptime <= REALTIME_MAXDELTA && exptime + pol->grace > REALTIME_MAXDELTA)
        return (int64_t)time(NULL) + exptime + pol->grace; /* relative, pushed past the line */
    return exptime + pol->grace;
}

/* A uniform draw in (0, 1) from the worker's xorshift64* state. */
static double herd_uniform(struct worker *w)
{
    uint64_t x = w->herd_rng ? w->herd_rng : 0x2545f4914f6cdd1dull ^ (uint64_t)(uintptr_t)w;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->herd_rng = x;
    return ((double)((x * 0x2545f4914f6cdd1dull) >> 11) + 0.5) / 9007199254740992.0;
}

uint32_t herd_recache(struct worker *w, int pool, const struct stale_policy *pol)
{
    /* stored with TTL T + grace; memcached expires an item at the clock tick its TTL
     * reaches 0 and wins a reader while the remaining TTL (whole seconds, >= 1 while the
     * item lives) is below the token: grace + 1 opens the window at the grace */
    uint32_t token = pol->grace ? pol->grace + 1 : 0;
    if (pol->beta <= 0)
        return token;
    double delta = pol->delta_ms / 1000.0;
    if (delta == 0 && pool >= 0 && (uint32_t)pool < w->npool_herd)
        delta = (double)STAT_GET(w->pool_herd[pool].regen_us) / 1e6;
    if (delta <= 0)
        return token; /* nothing measured yet: no early refresh */
    /* refresh when x = delta * beta * -ln(u) >= the real remaining time r. memcached only
     * knows whole seconds: a remaining count n means r in (n - 1, n], and nothing tells
     * where (a 1 s item just stored counts 1 as it will just before it expires). Win only
     * when x >= n, the upper bound: never more eagerly than xfetch itself (rounding x at
     * random instead refreshed a 1 s key right after each store), at the price of recompute
     * times well under a second rarely refreshing early at all */
    double x = delta * pol->beta * -log(herd_uniform(w));
    if (x < 1)
        return token;
    uint32_t early = x > 1e6 ? 1000000u : (uint32_t)x;
    return pol->grace + early + 1;
}

/* The winner of key stored: fold the time since the win into the pool's recompute
 * time (a moving average, 1/4 weight to the newest). */
static void regen_measured(struct worker *w, int pool, ev_tstamp took)
{
    if (pool < 0 || (uint32_t)pool >= w->npool_herd || took < 0 || took > 3600)
        return;
    uint64_t us = (uint64_t)(took * 1e6) + 1, old = STAT_GET(w->pool_herd[pool].regen_us);
    atomic_store_explicit(&w->pool_herd[pool].regen_us, old ? (3 * old + us) / 4 : us,
                          memory_order_relaxed);
}

static bool has_flag(struct mg_slice flags, char f)
{
    struct mg_slice v;
    return mg_meta_flag(flags, f, &v);
}

static uint64_t cas_of(struct mg_slice flags)
{
    return mg_meta_flag_u64(flags, 'c');
}

/* --- lock timers ------------------------------------------------------------------- */

static void lock_unlink(struct herd_lock *l)
{
    struct worker *w = l->w;
    if (l->prev)
        l->prev->next = l->next;
    else
        w->herd_locks = l->next;
    if (l->next)
        l->next->prev = l->prev;
}

static void lock_free(struct herd_lock *l)
{
    ev_timer_stop(l->w->loop, &l->timer);
    lock_unlink(l);
    free(l);
}

static void lock_fire(struct ev_loop *loop, ev_timer *t, int revents)
{
    MG_UNUSED(revents);
    struct herd_lock *l = t->data;
    struct worker *w = l->w;
    ev_timer_stop(loop, t);
    lock_unlink(l);
    if (!l->lease && !l->stored && l->gen == w->cfg->generation && l->server < w->nbackends) {
        /* the connection the key's own commands take, so this cannot overtake them */
        struct backend *b = backend_conn(worker_backend(w, l->server), l->key, l->klen);
        enum op_fail why;
        struct request *r = request_one(w, b, l->klen, NULL, NULL, &why);
        if (r) {
            meta_render_invalidate(&b->wbuf, l->key, l->klen, 0, true, l->cas);
            HERD_COUNT(w, l->pool, lock_expired);
            request_one_send(r);
        } else if (why == OP_FAIL_DOWN) {
            STAT_INC(w->st.backend_errors);
        }
    }
    free(l);
}

/* The win of key on server that connection conn holds on w, or NULL. */
static struct herd_lock *lock_find(struct worker *w, uint64_t conn, uint32_t server,
                                   const char *key, size_t klen)
{
    for (struct herd_lock *l = w->herd_locks; l; l = l->next)
        if (l->conn == conn && l->klen == klen && l->server == server &&
            l->gen == w->cfg->generation && memcmp(l->key, key, klen) == 0)
            return l;
    return NULL;
}

/* A win handed out for op's key: the won item's CAS (or the lease's), the win's length,
 * whether it is a cold-miss lease, and (hot) the win's reply flags, for the item's expiry. */
static void lock_start(struct op *op, uint64_t cas, uint32_t lock, bool lease,
                       const struct mg_slice *flags)
{
    struct worker *w = op->req->w;
    struct herd_lock *l = malloc(sizeof(*l));
    if (l == NULL)
        return;
    l->w = w;
    l->lease = lease;
    l->guard = op->pol->guard;
    /* no_wait: the winner's connection wrote the key after its get went out, before the win
     * came back. That write was the one to end the win (herd_guard_write), and it found none:
     * the win is over, and a later store of that connection is not the regeneration's (held
     * for it, it would be guarded against a lease that write revoked, or a CAS it changed) */
    l->conn = op->req->c && !op->no_wait ? op->req->c->serial : 0;
    l->server = op->be ? op->be->server_id : UINT32_MAX;
    l->gen = w->cfg->generation;
    l->pool = op->pool;
    l->cas = cas;
    l->since = ev_now(w->loop);
    l->lock = lock;
    l->stored = false;
    l->item_exp = -1;
    struct mg_slice t; /* the remaining TTL, asked for with t (the guard's): -1 never */
    if (flags && mg_meta_flag(*flags, 't', &t) && t.len && t.p[0] != '-')
        l->item_exp = l->since + (double)mg_meta_flag_u64(*flags, 't');
    l->klen = (uint8_t)buf_unread(&op->key);
    memcpy(l->key, buf_head(&op->key), l->klen);
    /* a win its connection already held for the key is over: it asked again (its lease
     * revoked or ended, its item written), and its next store is this win's; held, the old
     * win would guard a second store against a lease or a CAS long gone */
    struct herd_lock *old = l->conn ? lock_find(w, l->conn, l->server, l->key, l->klen) : NULL;
    if (old)
        lock_free(old);
    l->prev = NULL;
    l->next = w->herd_locks;
    if (w->herd_locks)
        w->herd_locks->prev = l;
    w->herd_locks = l;
    ev_timer_init(&l->timer, lock_fire, lock, 0.);
    l->timer.data = l;
    ev_timer_start(w->loop, &l->timer);
}

/* --- waits -------------------------------------------------------------------------- */

static void wait_unlink(struct herd_wait *hw)
{
    struct worker *w = hw->w;
    ev_timer_stop(w->loop, &hw->timer);
    if (hw->prev)
        hw->prev->next = hw->next;
    else
        w->herd_waits = hw->next;
    if (hw->next)
        hw->next->prev = hw->prev;
    hw->op->hw = NULL;
    free(hw);
}

/* Send the op's get again. Returns false when its backend cannot take it now. */
static bool wait_poll(struct herd_wait *hw)
{
    struct op *op = hw->op;
    struct backend *b = op->be;
    if (b == NULL || !backend_usable(b) ||
        buf_reserve(&b->wbuf, buf_unread(&op->key) + META_EXTRA) != MG_OK)
        return false;
    meta_render_herd_get(&b->wbuf, buf_head(&op->key), buf_unread(&op->key),
                         op->pol->grace ? op->pol->grace + 1 : 0, false);
    hw->polling = true;
    hw->again = false;
    backend_push(b, op);
    return true;
}

static void wait_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    MG_UNUSED(revents);
    struct herd_wait *hw = t->data;
    ev_timer_stop(loop, t);
    if (hw->polling)
        return;
    struct op *op = hw->op;
    if (ev_now(loop) >= hw->deadline || !wait_poll(hw)) {
        HERD_COUNT(hw->w, hw->op->pool, wait_timeouts);
        wait_unlink(hw);
        op_reply_miss(op);
    }
}

/* Poll interval: a few polls within the wait, never a busy loop. */
static double wait_interval(const struct stale_policy *pol)
{
    double ms = pol->wait_ms / 4.0;
    if (ms < 2)
        ms = 2;
    if (ms > 50)
        ms = 50;
    return ms / 1000.0;
}

static void wait_arm(struct herd_wait *hw)
{
    struct ev_loop *loop = hw->w->loop;
    double after = wait_interval(hw->op->pol);
    double left = hw->deadline - ev_now(loop);
    if (left < after)
        after = left > 0.0005 ? left : 0.0005;
    ev_timer_set(&hw->timer, after, 0.);
    ev_timer_start(loop, &hw->timer);
}

static bool wait_start(struct op *op)
{
    struct worker *w = op->req->w;
    if (op->no_wait)
        return false;
    struct herd_wait *hw = calloc(1, sizeof(*hw));
    if (hw == NULL)
        return false;
    hw->op = op;
    hw->w = w;
    hw->deadline = ev_now(w->loop) + op->pol->wait_ms / 1000.0;
    ev_init(&hw->timer, wait_timer_cb);
    hw->timer.data = hw;
    hw->next = w->herd_waits;
    if (w->herd_waits)
        w->herd_waits->prev = hw;
    w->herd_waits = hw;
    op->hw = hw;
    HERD_COUNT(w, op->pool, waits);
    wait_arm(hw);
    return true;
}

void herd_forget(struct op *op)
{
    if (op->hw)
        wait_unlink(op->hw);
}

/* Delete key's lease on b (the key's own connection, so it keeps its place among the key's
 * commands): the value is in, so the next cold miss does not wait for nothing; or a write
 * revokes it. has_cas: only the lease of that CAS, and on_done(r) gets the answer.
 * Returns false when it could not be sent (udata, on_done's, is then freed here). */
static bool lease_release(struct worker *w, struct backend *b, const char *key, size_t klen,
                          bool has_cas, uint64_t cas, void (*on_done)(struct request *r),
                          void *udata)
{
    char lk[MG_KEY_MAX + 1];
    size_t n = lease_key(key, klen, lk);
    enum op_fail why;
    struct request *r = request_one(w, b, n, on_done, udata, &why);
    if (r) {
        meta_render_delete(&b->wbuf, lk, n, has_cas, cas);
        request_one_send(r);
        return true;
    }
    if (why == OP_FAIL_DOWN)
        STAT_INC(w->st.backend_errors);
    free(udata); /* on_done's, never called */
    return false;
}

/* A lease winner's stored value, checked once its lease's conditional release answers.
 * Owned by that release's request (its udata); the store's op points to it until the
 * store's reply, which comes first (the same backend connection, in order). */
struct lease_check {
    uint64_t cas; /* of the winner's stored item: 0 until (or unless) it is stored */
    int pool;
    uint32_t grace;
    bool mark_stale;
    uint8_t klen;
    char key[MG_KEY_MAX];
};

/* The answer to md <lease> C<cas> (r's op; r->udata the lease_check, both freed here). NF
 * or EX: the lease was revoked by a write (or expired, or is another reader's now) while
 * its winner regenerated, so the value may predate that write: retract it, as the pool
 * deletes (a delete, or a mark under mark_stale), unless someone stored since (C<cas>).
 * Nothing to retract when the store did not store (or its reply was lost). */
static void lease_checked(struct request *r)
{
    struct lease_check *lc = r->udata;
    struct op *op = &r->ops[0];
    struct worker *w = r->w;
    if (lc->cas != 0 && (op->status == MG_R_NF || op->status == MG_R_EX)) {
        struct backend *b = op->be;
        enum op_fail why;
        struct request *rr = request_one(w, b, lc->klen, NULL, NULL, &why);
        if (rr) {
            if (lc->mark_stale)
                meta_render_invalidate(&b->wbuf, lc->key, lc->klen, lc->grace, true, lc->cas);
            else
                meta_render_delete(&b->wbuf, lc->key, lc->klen, true, lc->cas);
            HERD_COUNT(w, lc->pool, sets_refused);
            request_one_send(rr);
        } else if (why == OP_FAIL_DOWN) {
            STAT_INC(w->st.backend_errors);
        }
    }
    free(lc);
    request_release(r);
}

/* Ask for the cold-miss lease of op's key (an add on its own key, same server).
 * Returns false when it cannot be sent (the caller answers a miss). */
static bool lease_try(struct op *op)
{
    struct backend *b = op->be;
    char lk[MG_KEY_MAX + 1];
    size_t n = lease_key(buf_head(&op->key), buf_unread(&op->key), lk);
    if (b == NULL || !backend_usable(b) || buf_reserve(&b->wbuf, n + META_EXTRA) != MG_OK)
        return false;
    /* a second longer than the lock: memcached's clock ticks once a second, each tick
     * re-armed a second after the last one ran, so the ticks drift and one now and then
     * steps over a whole second: a T-second item may then end after anything above T - 2 s.
     * The guard trusts the lease for lock - 1 s (herd_guard_write), so it lives longer */
    meta_render_lease(&b->wbuf, lk, n, (op->pol->lock ? op->pol->lock : 1) + 1);
    op->herd_lease = true;
    backend_push(b, op);
    return true;
}

void herd_on_stored(struct worker *w, const char *key, size_t klen)
{
    /* a store ends an unguarded win: its md I C<cas> would fail anyway, spare the round
     * trip (a guarded win ends with its winner's write, herd_guard_write) */
    for (struct herd_lock *l = w->herd_locks, *next; l; l = next) {
        next = l->next;
        if (l->klen == klen && memcmp(l->key, key, klen) == 0) {
            if (l->guard) { /* another's store: the winner's late store must still be guarded */
                l->stored = true;
                continue;
            }
            ev_timer_stop(w->loop, &l->timer);
            lock_unlink(l);
            if (l->gen == w->cfg->generation)
                regen_measured(w, l->pool, ev_now(w->loop) - l->since);
            if (l->lease && l->gen == w->cfg->generation && l->server < w->nbackends)
                lease_release(w, backend_conn(worker_backend(w, l->server), l->key, l->klen),
                              l->key, l->klen, false, 0, NULL, NULL);
            free(l);
        }
    }
    for (struct herd_wait *hw = w->herd_waits, *next; hw; hw = next) {
        next = hw->next;
        struct op *op = hw->op;
        if (buf_unread(&op->key) != klen || memcmp(buf_head(&op->key), key, klen) != 0)
            continue;
        if (hw->polling) {
            hw->again = true;
            continue;
        }
        ev_timer_stop(w->loop, &hw->timer);
        if (!wait_poll(hw)) {
            HERD_COUNT(w, op->pool, wait_timeouts);
            wait_unlink(hw);
            op_reply_miss(op);
        }
    }
}

/* --- coalescing: identical gets in flight share one backend request ----------------- */

/* Keys are (backend, key): backends are stable objects across reloads, ids are not. */
static uint32_t key_hash(const struct backend *be, const char *k, size_t n)
{
    uint32_t h = 2166136261u ^ (uint32_t)((uintptr_t)be >> 4);
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)k[i]) * 16777619u;
    return h;
}

static bool same_get(const struct op *a, const struct backend *server, const char *k, size_t n)
{
    return a->be == server && buf_unread(&a->key) == n && memcmp(buf_head(&a->key), k, n) == 0;
}

/* Slot of op's key in the table: where it is, or the empty slot where it would go. */
static uint32_t slot_of(struct worker *w, const struct backend *server, const char *k, size_t n)
{
    uint32_t mask = w->inflight_cap - 1;
    uint32_t i = key_hash(server, k, n) & mask;
    while (w->inflight[i] && !same_get(w->inflight[i], server, k, n))
        i = (i + 1) & mask;
    return i;
}

static bool table_grow(struct worker *w)
{
    uint32_t ncap = w->inflight_cap ? w->inflight_cap * 2 : 64;
    struct op **old = w->inflight;
    uint32_t ocap = w->inflight_cap;
    w->inflight = calloc(ncap, sizeof(struct op *));
    if (w->inflight == NULL) {
        w->inflight = old;
        return false;
    }
    w->inflight_cap = ncap;
    for (uint32_t i = 0; i < ocap; i++) {
        struct op *o = old[i];
        if (o)
            w->inflight[slot_of(w, o->be, buf_head(&o->key), buf_unread(&o->key))] = o;
    }
    free(old);
    return true;
}

bool herd_follow(struct worker *w, struct op *op)
{
    if (w->inflight_n == 0)
        return false;
    uint32_t i = slot_of(w, op->be, buf_head(&op->key), buf_unread(&op->key));
    struct op *lead = w->inflight[i];
    if (lead == NULL)
        return false;
    op->next_follower = lead->followers;
    lead->followers = op;
    HERD_COUNT(w, op->pool, coalesced);
    return true;
}

void herd_lead(struct worker *w, struct op *op)
{
    if ((w->inflight_n + 1) * 2 > w->inflight_cap && !table_grow(w))
        return;
    uint32_t i = slot_of(w, op->be, buf_head(&op->key), buf_unread(&op->key));
    if (w->inflight[i])
        return; /* another leader already (a poll): do without */
    w->inflight[i] = op;
    w->inflight_n++;
    op->leading = true;
    op->followers = NULL;
}

/* Take the op in slot i out of the table. Backward-shift deletion keeps every probe
 * chain intact without tombstones. */
static void table_delete(struct worker *w, uint32_t i)
{
    uint32_t mask = w->inflight_cap - 1;
    w->inflight[i] = NULL;
    w->inflight_n--;
    for (uint32_t j = (i + 1) & mask; w->inflight[j]; j = (j + 1) & mask) {
        struct op *o = w->inflight[j];
        uint32_t home = key_hash(o->be, buf_head(&o->key), buf_unread(&o->key)) & mask;
        /* move o into the hole when the hole lies on its probe path */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            w->inflight[i] = o;
            w->inflight[j] = NULL;
            i = j;
        }
    }
}

struct op *herd_unlead(struct worker *w, struct op *op)
{
    if (!op->leading)
        return NULL;
    op->leading = false;
    uint32_t i = slot_of(w, op->be, buf_head(&op->key), buf_unread(&op->key));
    if (w->inflight[i] == op) /* else a write took it out already */
        table_delete(w, i);
    struct op *f = op->followers;
    op->followers = NULL;
    return f;
}

void herd_on_write(struct worker *w, struct conn *c, struct backend *be, const char *key,
                   size_t klen)
{
    if (w->inflight_n) { /* its followers were sent before the write: they stay */
        uint32_t i = slot_of(w, be, key, klen);
        if (w->inflight[i])
            table_delete(w, i);
    }
    if (c == NULL)
        return;
    for (struct request *r = c->head; r; r = r->next) {
        if (r->done || !is_retrieval(r->cmd))
            continue;
        for (uint32_t i = 0; i < r->nops; i++) {
            struct op *op = &r->ops[i];
            if (op->pol == NULL || !same_get(op, be, key, klen))
                continue;
            op->no_wait = true;
            struct herd_wait *hw = op->hw;
            if (hw == NULL || hw->polling) /* a poll on the wire predates the write */
                continue;
            ev_timer_stop(w->loop, &hw->timer);
            wait_unlink(hw);
            op_reply_miss(op);
        }
    }
}

/* --- the guard: a regeneration's late store ----------------------------------------- */

void herd_guard_write(struct op *op, const struct stale_policy *pol, enum mg_cmd cmd,
                      struct backend *be, const char *key, size_t klen)
{
    struct worker *w = op->req->w;
    struct conn *c = op->req->c;
    bool store = cmd >= MG_CMD_SET && cmd <= MG_CMD_CAS;
    if (!store && cmd != MG_CMD_DELETE && cmd != MG_CMD_MS && cmd != MG_CMD_MD)
        return; /* incr, touch, ma: they neither end a win nor revoke a lease */
    struct herd_lock *l =
        w->herd_locks && c ? lock_find(w, c->serial, be->server_id, key, klen) : NULL;
    if (l) {
        /* the winner's store: a hot win's item exists, so add would fail anyway (and gets
         * no C); a lease's key was missing, so any of the three may fill it */
        /* A hot win's item may expire before the winner stores (an early refresh near the
         * end, xfetch's): its ms C<cas> would then answer NF as if someone had deleted it,
         * and a fresh value would be dropped. Within two seconds of the item's expiry (its
         * whole-second clock, whose tick may step over a second: lease_try) the store is not
         * guarded. */
        bool hot = !l->lease && (cmd == MG_CMD_SET || cmd == MG_CMD_REPLACE) &&
                   !(l->item_exp >= 0 && ev_now(w->loop) > l->item_exp - 2.0);
        /* A lease lives lock + 1 seconds, and memcached's whole-second clock may end it up
         * to two seconds early (lease_try): its check could then not tell a revocation from
         * the end of its life and would retract a value nobody overwrote. A store that late
         * is not guarded (as a hot win's after its lock); it releases the lease as an
         * unguarded store does. */
        bool cold = l->lease && (cmd == MG_CMD_SET || cmd == MG_CMD_ADD || cmd == MG_CMD_REPLACE) &&
                    ev_now(w->loop) - l->since < (double)l->lock - 1.0;
        if ((hot || cold) && l->cas != 0) {
            op->guard = hot ? OP_GUARD_WIN : OP_GUARD_LEASE;
            op->guard_cas = l->cas;
            op->lease_check = NULL; /* herd_guard_sent's */
        }
        if (store && l->gen == w->cfg->generation)
            regen_measured(w, l->pool, ev_now(w->loop) - l->since);
        lock_free(l); /* this write ends the win: a second store is not the regeneration's */
        if (op->guard != OP_GUARD_NONE)
            return; /* it must not revoke its own lease: herd_on_guarded_reply checks it */
    }
    if (pol->wait_ms && mg_text_key_ok(key, klen)) /* a meta b-flag key's bytes may not be */
        lease_release(w, be, key, klen, false, 0, NULL, NULL);
}

void herd_guard_sent(struct op *op)
{
    if (op->guard != OP_GUARD_LEASE || op->be == NULL)
        return;
    struct worker *w = op->req->w;
    size_t klen = buf_unread(&op->key);
    struct lease_check *lc = malloc(sizeof(*lc));
    if (lc == NULL) { /* cannot check it: release the lease as an unguarded store does */
        op->guard = OP_GUARD_NONE;
        lease_release(w, op->be, buf_head(&op->key), klen, false, 0, NULL, NULL);
        return;
    }
    lc->cas = 0;
    lc->pool = op->pool;
    lc->grace = op->pol->grace;
    lc->mark_stale = op->pol->mark_stale;
    lc->klen = (uint8_t)klen;
    memcpy(lc->key, buf_head(&op->key), klen);
    if (lease_release(w, op->be, lc->key, klen, true, op->guard_cas, lease_checked, lc))
        op->lease_check = lc;
    else
        op->guard = OP_GUARD_NONE; /* the lease ends by itself */
}

bool herd_on_guarded_reply(struct op *op, const struct mg_meta_reply *rep)
{
    if (op->guard == OP_GUARD_WIN) {
        if (rep->status != MG_R_EX && rep->status != MG_R_NF)
            return false;
        HERD_COUNT(op->req->w, op->pool, sets_refused);
        return true;
    }
    /* the lease's check is on the wire behind this store and answers after it */
    if (rep->status == MG_R_HD && op->lease_check)
        op->lease_check->cas = cas_of(rep->flags);
    return false;
}

/* --- the verdict --------------------------------------------------------------------- */

static enum herd_verdict verdict(struct op *op, const struct mg_meta_reply *rep, bool follower);

enum herd_verdict herd_on_get_reply(struct op *op, const struct mg_meta_reply *rep)
{
    return verdict(op, rep, false);
}

enum herd_verdict herd_on_follower_reply(struct op *op, const struct mg_meta_reply *rep)
{
    return verdict(op, rep, true);
}

static enum herd_verdict verdict(struct op *op, const struct mg_meta_reply *rep, bool follower)
{
    struct worker *w = op->req->w;
    const struct stale_policy *pol = op->pol;
    struct herd_wait *hw = op->hw;
    if (op->herd_lease) { /* the reply to our lease add */
        op->herd_lease = false;
        if (rep->status == MG_R_HD) { /* ours: this client regenerates */
            HERD_COUNT(w, op->pool, wins);
            if (op->no_wait) { /* but its own write came since (lock_start): the win is over */
                lease_release(w, op->be, buf_head(&op->key), buf_unread(&op->key), true,
                              cas_of(rep->flags), NULL, NULL);
                return HERD_MISS;
            }
            lock_start(op, cas_of(rep->flags), pol->lock ? pol->lock : 1, true, NULL);
            return HERD_MISS;
        }
        if (rep->status == MG_R_NS && wait_start(op))
            return HERD_PENDING; /* someone else regenerates: wait for the value */
        return HERD_MISS;
    }
    if (rep->status == MG_R_EN) {
        if (hw) { /* still no value */
            hw->polling = false;
            if (ev_now(w->loop) >= hw->deadline || op->no_wait) {
                HERD_COUNT(w, op->pool, wait_timeouts);
                wait_unlink(hw);
                return HERD_MISS;
            }
            if (!hw->again || !wait_poll(hw))
                wait_arm(hw);
            return HERD_PENDING;
        }
        if (pol->wait_ms == 0)
            return HERD_MISS; /* no waiting: every cold reader regenerates */
        if (follower)         /* the leader asks for the lease; we wait for the value */
            return wait_start(op) ? HERD_PENDING : HERD_MISS;
        return lease_try(op) ? HERD_PENDING : HERD_MISS;
    }
    bool waited = hw != NULL;
    if (hw)
        wait_unlink(hw);
    if (rep->status != MG_R_VA)
        return HERD_ERROR;
    bool win = has_flag(rep->flags, 'W');
    bool other = has_flag(rep->flags, 'Z');
    bool stale = has_flag(rep->flags, 'X');
    if (follower && win) { /* the leader refreshes; for us it is someone else */
        win = false;
        other = true;
    }
    if (win) {
        HERD_COUNT(w, op->pool, wins);
        if (pol->lock)
            lock_start(op, cas_of(rep->flags), pol->lock, false, &rep->flags);
        return HERD_MISS;
    }
    if (waited)
        HERD_COUNT(w, op->pool, wait_hits);
    else if (other || stale)
        HERD_COUNT(w, op->pool, stale_hits);
    return HERD_HIT;
}

struct herd_wait *herd_wait_next(struct herd_wait *hw)
{
    return hw->next;
}

struct backend *herd_wait_backend(struct herd_wait *hw)
{
    return hw->op->be;
}

void herd_worker_destroy(struct worker *w)
{
    free(w->inflight);
    w->inflight = NULL;
    w->inflight_cap = w->inflight_n = 0;
    while (w->herd_waits) {
        struct op *op = w->herd_waits->op;
        wait_unlink(w->herd_waits);
        op_reply_miss(op);
    }
    while (w->herd_locks) {
        struct herd_lock *l = w->herd_locks;
        ev_timer_stop(w->loop, &l->timer);
        lock_unlink(l);
        free(l);
    }
}
