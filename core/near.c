/* near.c: the near cache's store and hot set (near.h). */
#include "near.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mg.h"

struct near_entry {
    struct near_entry *hnext;         /* hash chain */
    struct near_entry *lprev, *lnext; /* LRU, most recent at the head */
    uint64_t hash, gen;
    struct near_meta meta;
    double expires, refresh_at;
    uint32_t vlen, size; /* size: what it counts against the budget */
    int32_t pool;
    uint16_t klen;
    uint8_t hlen, hcas; /* the reply head: its length, and without the CAS */
    bool refreshing;
    char data[]; /* key, reply head, value */
};

struct near_stripe {
    pthread_mutex_t mu;
    struct near_entry **tab;
    uint32_t cap, n; /* cap: a power of two */
    struct near_entry *head, *tail;
    uint64_t bytes;
    uint64_t seq;                      /* bumped by near_clear: every fill in flight is refused */
    uint32_t slot_seq[NEAR_SEQ_SLOTS]; /* invalidations by (h >> 40) & (NEAR_SEQ_SLOTS - 1) */
    uint64_t evictions, invalidations, expired, refused;
    char pad[64];
};

static struct near_stripe *stripes;
static atomic_uint_fast64_t budget; /* bytes per stripe */

static struct near_stripe *stripe_of(uint64_t h)
{
    return &stripes[(h >> 58) & (NEAR_STRIPES - 1)];
}

/* The invalidation count a fill of h is checked against (s locked): the stripe's clears and
 * the writes of h's slot. Finer than the stripe, so that writes of other keys (a stripe takes
 * a 64th of them all) do not refuse a hot key's fills. */
static uint64_t seq_of(const struct near_stripe *s, uint64_t h)
{
    return (s->seq << 32) | s->slot_seq[(h >> 40) & (NEAR_SEQ_SLOTS - 1)];
}

bool near_ready(void)
{
    return stripes != NULL;
}

int near_configure(uint64_t size)
{
    if (stripes == NULL) {
        struct near_stripe *s = calloc(NEAR_STRIPES, sizeof(*s));
        if (s == NULL)
            return MG_ERR;
        for (int i = 0; i < NEAR_STRIPES; i++) {
            s[i].cap = 64;
            s[i].tab = calloc(s[i].cap, sizeof(*s[i].tab));
            if (s[i].tab == NULL) {
                for (int j = 0; j < i; j++)
                    free(s[j].tab);
                free(s);
                return MG_ERR;
            }
            pthread_mutex_init(&s[i].mu, NULL);
        }
        stripes = s;
    }
    atomic_store(&budget, size / NEAR_STRIPES);
    return MG_OK;
}

static bool same(const struct near_entry *e, uint64_t h, const char *key, size_t klen)
{
    return e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0;
}

static void lru_unlink(struct near_stripe *s, struct near_entry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        s->head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        s->tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push(struct near_stripe *s, struct near_entry *e)
{
    e->lprev = NULL;
    e->lnext = s->head;
    if (s->head)
        s->head->lprev = e;
    s->head = e;
    if (s->tail == NULL)
        s->tail = e;
}

/* Unlink e (found at *link in its chain) and free it. */
static void drop(struct near_stripe *s, struct near_entry **link, struct near_entry *e)
{
    *link = e->hnext;
    lru_unlink(s, e);
    s->bytes -= e->size;
    s->n--;
    free(e);
}

/* The chain link that points to e. */
static struct near_entry **link_of(struct near_stripe *s, struct near_entry *e)
{
    struct near_entry **l = &s->tab[e->hash & (s->cap - 1)];
    while (*l != e)
        l = &(*l)->hnext;
    return l;
}

/* The live entry of key (s locked), or NULL; an expired one is dropped. A hit moves to the
 * LRU's head and sets *refresh when it is due for one nobody took yet. */
static struct near_entry *find_live(struct near_stripe *s, uint64_t h, uint64_t gen, int pool,
                                    const char *key, size_t klen, double now, bool *refresh)
{
    struct near_entry **l = &s->tab[h & (s->cap - 1)];
    for (struct near_entry *e = *l; e; l = &e->hnext, e = e->hnext) {
        if (!same(e, h, key, klen) || e->pool != pool || e->gen != gen)
            continue;
        if (now >= e->expires) {
            s->expired++;
            drop(s, l, e);
            return NULL;
        }
        if (now >= e->refresh_at && !e->refreshing) {
            e->refreshing = true;
            *refresh = true;
        }
        if (s->head != e) {
            lru_unlink(s, e);
            lru_push(s, e);
        }
        return e;
    }
    return NULL;
}

static const char *value_of(const struct near_entry *e)
{
    return e->data + e->klen + e->hlen;
}

bool near_lookup(uint64_t h, uint64_t gen, int pool, const char *key, size_t klen, double now,
                 struct buf *val, struct near_meta *m, bool *refresh)
{
    struct near_stripe *s = stripe_of(h);
    *refresh = false;
    pthread_mutex_lock(&s->mu);
    struct near_entry *e = find_live(s, h, gen, pool, key, klen, now, refresh);
    val->off = val->len = 0;
    if (e && buf_reserve(val, e->vlen) == MG_OK) {
        memcpy(val->data, value_of(e), e->vlen);
        val->len = e->vlen;
        *m = e->meta;
    } else if (e) {
        e->refreshing = e->refreshing && !*refresh; /* not taken after all */
        *refresh = false;
        e = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    return e != NULL;
}

bool near_lookup_reply(uint64_t h, uint64_t gen, int pool, const char *key, size_t klen, double now,
                       struct buf *out, bool with_cas, bool *refresh)
{
    struct near_stripe *s = stripe_of(h);
    *refresh = false;
    pthread_mutex_lock(&s->mu);
    struct near_entry *e = find_live(s, h, gen, pool, key, klen, now, refresh);
    size_t hl = e ? (with_cas ? e->hlen : e->hcas) : 0;
    if (e && buf_reserve(out, hl + e->vlen + 4) == MG_OK) {
        char *d = out->data + out->len;
        memcpy(d, e->data + e->klen, hl);
        d[hl] = '\r';
        d[hl + 1] = '\n';
        memcpy(d + hl + 2, value_of(e), e->vlen);
        d[hl + 2 + e->vlen] = '\r';
        d[hl + 3 + e->vlen] = '\n';
        out->len += hl + e->vlen + 4;
    } else if (e) {
        e->refreshing = e->refreshing && !*refresh;
        *refresh = false;
        e = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    return e != NULL;
}

bool near_has(uint64_t h, const char *key, size_t klen, double now)
{
    struct near_stripe *s = stripe_of(h);
    bool has = false;
    pthread_mutex_lock(&s->mu);
    for (struct near_entry *e = s->tab[h & (s->cap - 1)]; e; e = e->hnext)
        if (same(e, h, key, klen) && now < e->expires) {
            has = true;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return has;
}

uint64_t near_seq(uint64_t h)
{
    struct near_stripe *s = stripe_of(h);
    pthread_mutex_lock(&s->mu);
    uint64_t seq = seq_of(s, h);
    pthread_mutex_unlock(&s->mu);
    return seq;
}

static void grow(struct near_stripe *s)
{
    uint32_t ncap = s->cap * 2;
    struct near_entry **nt = calloc(ncap, sizeof(*nt));
    if (nt == NULL)
        return; /* longer chains, still correct */
    for (uint32_t i = 0; i < s->cap; i++) {
        for (struct near_entry *e = s->tab[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = nt[e->hash & (ncap - 1)];
            nt[e->hash & (ncap - 1)] = e;
        }
    }
    free(s->tab);
    s->tab = nt;
    s->cap = ncap;
}

bool near_fill(uint64_t h, uint64_t seq, uint64_t gen, int pool, const char *key, size_t klen,
               const struct near_meta *m, const char *head, uint8_t hlen, uint8_t hcas,
               const char *val, uint32_t vlen, double expires, double refresh_at)
{
    struct near_stripe *s = stripe_of(h);
    size_t size = sizeof(struct near_entry) + klen + hlen + vlen;
    uint64_t max = atomic_load_explicit(&budget, memory_order_relaxed);
    if (klen > UINT16_MAX || size > max)
        return false;
    struct near_entry *e = malloc(size);
    if (e == NULL)
        return false;
    e->hash = h;
    e->gen = gen;
    e->meta = *m;
    e->expires = expires;
    e->refresh_at = refresh_at;
    e->vlen = vlen;
    e->size = (uint32_t)size;
    e->pool = pool;
    e->klen = (uint16_t)klen;
    e->hlen = hlen;
    e->hcas = hcas <= hlen ? hcas : hlen;
    e->refreshing = false;
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, head, hlen);
    memcpy(e->data + klen + hlen, val, vlen);
    pthread_mutex_lock(&s->mu);
    if (seq_of(s, h) != seq) { /* a write dropped keys of this slot since the read went out */
        s->refused++;
        pthread_mutex_unlock(&s->mu);
        free(e);
        return false;
    }
    struct near_entry **l = &s->tab[h & (s->cap - 1)];
    while (*l) {
        struct near_entry *o = *l;
        if (same(o, h, key, klen) && o->pool == pool)
            drop(s, l, o); /* the older value, or another generation's */
        else
            l = &o->hnext;
    }
    while (s->tail && s->bytes + size > max) {
        s->evictions++;
        struct near_entry *v = s->tail;
        drop(s, link_of(s, v), v);
    }
    if (s->n + 1 > s->cap)
        grow(s);
    struct near_entry **b = &s->tab[h & (s->cap - 1)];
    e->hnext = *b;
    *b = e;
    lru_push(s, e);
    s->bytes += size;
    s->n++;
    pthread_mutex_unlock(&s->mu);
    return true;
}

uint32_t near_invalidate(uint64_t h)
{
    struct near_stripe *s = stripe_of(h);
    uint32_t n = 0;
    pthread_mutex_lock(&s->mu);
    s->slot_seq[(h >> 40) & (NEAR_SEQ_SLOTS - 1)]++;
    struct near_entry **l = &s->tab[h & (s->cap - 1)];
    while (*l) {
        struct near_entry *e = *l;
        if (e->hash == h) {
            drop(s, l, e);
            n++;
        } else {
            l = &e->hnext;
        }
    }
    s->invalidations += n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void near_clear(void)
{
    if (stripes == NULL)
        return;
    for (int i = 0; i < NEAR_STRIPES; i++) {
        struct near_stripe *s = &stripes[i];
        pthread_mutex_lock(&s->mu);
        s->seq++;
        while (s->head)
            drop(s, link_of(s, s->head), s->head);
        pthread_mutex_unlock(&s->mu);
    }
}

void near_totals(struct near_totals *t)
{
    memset(t, 0, sizeof(*t));
    if (stripes == NULL)
        return;
    for (int i = 0; i < NEAR_STRIPES; i++) {
        struct near_stripe *s = &stripes[i];
        pthread_mutex_lock(&s->mu);
        t->bytes += s->bytes;
        t->entries += s->n;
        t->evictions += s->evictions;
        t->invalidations += s->invalidations;
        t->expired += s->expired;
        t->fills_refused += s->refused;
        pthread_mutex_unlock(&s->mu);
    }
}

/* --- the hot set ------------------------------------------------------------------- */

/* Open addressing over 64-bit hashes of (pool, key); 0 marks an empty slot. A false
 * positive (two keys, one hash) only caches a key that is not hot: harmless. Every set has
 * room for NEAR_HOT_MAX keys at most half full, and is allocated once. */
#define HOT_SLOTS (2 * NEAR_HOT_MAX)
struct hot_set {
    _Atomic uint64_t slot[HOT_SLOTS];
};

/* Three sets in turn, never freed while the gateway runs: a reader holds one for a few
 * hundred nanoseconds, and the main thread rewrites the set retired two publications ago.
 * Publications are at least NEAR_HOT_GAP apart, but a reader preempted in the middle of a
 * lookup may still see that set rewritten under it: its slots are atomic words, so it then
 * reads some keys of one set and some of another, and answers wrongly about one key (a key
 * that is not hot gets cached, or a hot one is missed once) -- harmless either way. */
static struct hot_set *hot_ring[3];
static int hot_next;
static _Atomic(struct hot_set *) hot_cur;

static uint64_t hot_key(int pool, uint64_t h)
{
    h ^= (uint64_t)(uint32_t)pool * 0x9e3779b97f4a7c15ull;
    return h ? h : 1;
}

void near_hot_publish(const char *const *keys, const uint32_t *lens, const int *pools, uint32_t n)
{
    struct hot_set *hs = hot_ring[hot_next];
    if (hs == NULL) {
        hs = calloc(1, sizeof(*hs));
        if (hs == NULL)
            return;
        hot_ring[hot_next] = hs;
    }
    if (n > NEAR_HOT_MAX)
        n = NEAR_HOT_MAX;
    for (uint32_t j = 0; j < HOT_SLOTS; j++)
        atomic_store_explicit(&hs->slot[j], 0, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t k = hot_key(pools[i], near_hash(keys[i], lens[i]));
        uint32_t j = (uint32_t)k % HOT_SLOTS;
        uint64_t v;
        while ((v = atomic_load_explicit(&hs->slot[j], memory_order_relaxed)) != 0 && v != k)
            j = (j + 1) % HOT_SLOTS;
        atomic_store_explicit(&hs->slot[j], k, memory_order_relaxed);
    }
    atomic_store_explicit(&hot_cur, hs, memory_order_release);
    hot_next = (hot_next + 1) % 3;
}

bool near_hot(int pool, uint64_t h)
{
    struct hot_set *hs = atomic_load_explicit(&hot_cur, memory_order_acquire);
    if (hs == NULL)
        return false;
    uint64_t k = hot_key(pool, h);
    uint32_t j = (uint32_t)k % HOT_SLOTS;
    for (uint32_t probes = 0; probes < HOT_SLOTS; probes++, j = (j + 1) % HOT_SLOTS) {
        uint64_t v = atomic_load_explicit(&hs->slot[j], memory_order_relaxed);
        if (v == k)
            return true;
        if (v == 0)
            return false;
    }
    return false; /* a set rewritten under a preempted reader may have no empty slot left */
}

static atomic_bool hot_on;
static _Atomic double hot_rps;
static atomic_uint hot_top_n;

void near_hot_settings(bool on, double rps, uint32_t top)
{
    atomic_store(&hot_rps, rps);
    atomic_store(&hot_top_n, top);
    atomic_store(&hot_on, on);
}

void near_hot_params(bool *on, double *rps, uint32_t *top)
{
    *on = atomic_load(&hot_on);
    *rps = atomic_load(&hot_rps);
    *top = atomic_load(&hot_top_n);
}

/* The early wake: a worker's detector saw a key reach the hot rate (near_hot_count); the
 * main thread's waker runs once until it calls near_hot_woken. */
typedef void (*hot_waker_fn)(void);
static _Atomic(hot_waker_fn) hot_waker;
static atomic_bool hot_wanted;

void near_hot_set_waker(void (*fn)(void))
{
    atomic_store(&hot_waker, fn);
}

void near_hot_woken(void)
{
    atomic_store(&hot_wanted, false);
}

static _Atomic double hot_scale; /* requests per second a sample stands for (main.c's) */

void near_hot_set_scale(double scale)
{
    atomic_store_explicit(&hot_scale, scale > 0 ? scale : 0, memory_order_relaxed);
}

bool near_hot_count(uint64_t sure, int nw)
{
    double scale = atomic_load_explicit(&hot_scale, memory_order_relaxed);
    if (sure == 0 || !(scale > 0) || !atomic_load_explicit(&hot_on, memory_order_relaxed))
        return false;
    double rps = atomic_load_explicit(&hot_rps, memory_order_relaxed);
    double all = ceil(rps / scale); /* samples in a window at the rate, on one worker */
    uint64_t one = all < 1 ? 1 : all > 1e18 ? UINT64_MAX : (uint64_t)all;
    uint64_t share = nw > 1 ? (one + (uint64_t)nw - 1) / (uint64_t)nw : one;
    if (sure != one && sure != share)
        return false;
    if (atomic_exchange(&hot_wanted, true))
        return false; /* a wake is on its way */
    hot_waker_fn wake = atomic_load(&hot_waker);
    if (wake)
        wake();
    return true;
}

bool near_hot_empty(void)
{
    return atomic_load_explicit(&hot_cur, memory_order_relaxed) == NULL;
}

void near_free(void)
{
    if (stripes) {
        near_clear();
        for (int i = 0; i < NEAR_STRIPES; i++) {
            free(stripes[i].tab);
            pthread_mutex_destroy(&stripes[i].mu);
        }
        free(stripes);
        stripes = NULL;
    }
    atomic_store(&hot_cur, NULL);
    atomic_store(&hot_wanted, false);
    atomic_store(&hot_scale, 0);
    for (int i = 0; i < 3; i++) {
        free(hot_ring[i]);
        hot_ring[i] = NULL;
    }
}
