/* hotkeys.c: hot-key detection per worker: Space-Saving over a two-table sliding window. */
#include "hotkeys.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "switch.h" /* switch_hash */

/*
 * The window: two Space-Saving tables, the current window of `window` seconds and the one
 * before it; a key's estimate is cur + prev * (the share of the previous window still inside
 * [now - window, now]), the sliding-window approximation rate limiters use. Chosen over an
 * exponential decay of the counts because:
 *  - a key that stopped is gone, exactly 0, at most two windows later; a decayed count only
 *    shrinks, and the key stays listed until other keys push it out of the table, so with
 *    little traffic a key that stopped a minute ago would still be "hot";
 *  - counts stay integers, so each table is textbook Space-Saving with its guarantees
 *    (count - err <= true count <= count, err <= samples / m) and per-kind counts are exact;
 *  - each table starts empty every window, so the over-estimation a key inherited when it
 *    came in is forgotten; with decay a key monitored for hours keeps it.
 * The price is a merge of the two tables in hotkeys_top, which runs rarely (stats, admin).
 *
 * A table: m counters; an open-addressing hash (linear probing, at most half full) from key
 * to counter, with backward-shift deletion because under a long tail nearly every sample
 * evicts a counter and tombstones would pile up; and the counters ranked by count in an array
 * (rank[0] is Space-Saving's minimum). Counts only ever grow by 1, so a counter moves up by
 * swapping places with the last counter of its equal-count run, found by a search over the
 * contiguous counts: O(1) expected lookup, O(log m) reads and one swap per sample, where a
 * min-heap sifts through scattered counters (measured under a long tail: ~500 instructions
 * per sample against ~840). Unused counters have count 0 and rank first, so filling the
 * table and evicting are one path.
 */

/* Written by the owner under the lock; read by hotkeys_top under it. */
struct hk_counter {
    uint64_t err;             /* the count it inherited when it came in */
    uint64_t kinds[HK_KINDS]; /* samples of each kind since it came in: they sum to count - err */
    uint32_t hash;
    uint32_t slot; /* its hash slot, while it holds a key */
    uint32_t rank; /* its place in rank[] */
    int pool;
    uint32_t klen;
    char key[HOTKEY_KEY_MAX];
};

struct hk_rank {
    uint64_t count; /* here, not in the counter: the binary search reads one small array */
    uint32_t c;     /* index into the counters */
};

/* One window's Space-Saving table. The arrays are allocated once, by hotkeys_new. */
struct hk_table {
    struct hk_counter *c; /* m of them */
    struct hk_rank *rank; /* m, ascending by count; count 0: unused */
    uint32_t *slot;       /* hash slots: index into c + 1, 0 = empty */
};

/* A key in hotkeys_top: its counter in the newer and the older table (either may be NULL). */
struct hk_cand {
    double count;
    const struct hk_counter *a, *b;
};

struct hotkeys {
    pthread_mutex_t lock; /* the owner's adds against other threads' hotkeys_top */
    uint32_t m, mask;     /* counters per table; hash slots - 1 (a power of two - 1) */
    double window;
    bool started;
    double start; /* when the current window began (valid once started) */
    unsigned cur; /* t[cur] is the current window, t[cur ^ 1] the previous one */
    struct hk_table t[2];
    struct hk_cand *cand; /* 2m: hotkeys_top's scratch, under lock */
};

/* Empty t: O(m), once per window. */
static void table_clear(const struct hotkeys *h, struct hk_table *t)
{
    memset(t->slot, 0, ((size_t)h->mask + 1) * sizeof(*t->slot));
    for (uint32_t i = 0; i < h->m; i++) {
        t->rank[i] = (struct hk_rank){ 0, i };
        t->c[i].rank = i;
    }
}

struct hotkeys *hotkeys_new(uint32_t capacity, double window)
{
    if (capacity == 0 || capacity > HOTKEYS_CAPACITY_MAX || !(window > 0) || !isfinite(window))
        return NULL;
    struct hotkeys *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        return NULL;
    }
    uint32_t slots = 2;
    while (slots < 2 * capacity) /* load <= 1/2: short probes, and an empty slot always */
        slots <<= 1;
    h->m = capacity;
    h->mask = slots - 1;
    h->window = window;
    for (int i = 0; i < 2; i++) {
        h->t[i].c = calloc(capacity, sizeof(*h->t[i].c));
        h->t[i].rank = calloc(capacity, sizeof(*h->t[i].rank));
        h->t[i].slot = calloc(slots, sizeof(*h->t[i].slot));
        if (!h->t[i].c || !h->t[i].rank || !h->t[i].slot)
            goto fail;
        table_clear(h, &h->t[i]);
    }
    h->cand = calloc(2 * (size_t)capacity, sizeof(*h->cand));
    if (h->cand == NULL)
        goto fail;
    return h;
fail:
    hotkeys_free(h);
    return NULL;
}

void hotkeys_free(struct hotkeys *h)
{
    if (h == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        free(h->t[i].c);
        free(h->t[i].rank);
        free(h->t[i].slot);
    }
    free(h->cand);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* The slot holding key, or the empty slot where it would go. */
static uint32_t find_slot(const struct hotkeys *h, const struct hk_table *t, const char *key,
                          uint32_t len, uint32_t hash)
{
    for (uint32_t i = hash & h->mask;; i = (i + 1) & h->mask) {
        uint32_t s = t->slot[i];
        if (s == 0)
            return i;
        const struct hk_counter *c = &t->c[s - 1];
        if (c->hash == hash && c->klen == len && memcmp(c->key, key, len) == 0)
            return i;
    }
}

/* Empty slot i, moving later entries of its probe run back so that every key stays reachable
 * from its home slot without tombstones. */
static void slot_delete(const struct hotkeys *h, struct hk_table *t, uint32_t i)
{
    uint32_t j = i;
    for (;;) {
        t->slot[i] = 0;
        uint32_t s;
        for (;;) {
            j = (j + 1) & h->mask;
            s = t->slot[j];
            if (s == 0)
                return;
            uint32_t home = t->c[s - 1].hash & h->mask;
            /* it may move to i only if i lies on its probe path, home .. j */
            if (((j - home) & h->mask) >= ((j - i) & h->mask))
                break;
        }
        t->slot[i] = s;
        t->c[s - 1].slot = i;
        i = j;
    }
}

/* Count the counter ranked p up by one: it trades places with the last counter of its
 * equal-count run, so the ranks stay sorted. */
static void bump(const struct hotkeys *h, struct hk_table *t, uint32_t p)
{
    uint64_t v = t->rank[p].count;
    /* the first rank after p with a higher count: galloping, then a binary search, as runs
     * are mostly short (a counter that already ranks last of its run costs one compare) */
    uint32_t lo = p + 1, hi = p + 1, step = 1;
    while (hi < h->m && t->rank[hi].count <= v) {
        lo = hi + 1;
        hi += step;
        step *= 2;
    }
    if (hi > h->m)
        hi = h->m;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->rank[mid].count > v)
            hi = mid;
        else
            lo = mid + 1;
    }
    uint32_t q = lo - 1, a = t->rank[p].c, b = t->rank[q].c;
    t->rank[p].c = b;
    t->c[b].rank = p;
    t->rank[q] = (struct hk_rank){ v + 1, a };
    t->c[a].rank = q;
}

/* Space-Saving's update: count the key's counter up, or take the smallest counter over (an
 * unused one while there is one); the newcomer inherits its count as the over-estimation
 * bound. */
static uint64_t table_add(const struct hotkeys *h, struct hk_table *t, const char *key,
                          uint32_t len, uint32_t hash, enum hk_kind kind, int pool)
{
    uint32_t s = find_slot(h, t, key, len, hash);
    struct hk_counter *c;
    if (t->slot[s] != 0) {
        c = &t->c[t->slot[s] - 1];
    } else {
        c = &t->c[t->rank[0].c];
        if (t->rank[0].count > 0) {
            slot_delete(h, t, c->slot);
            s = find_slot(h, t, key, len, hash); /* the deletion may have moved the run */
        }
        t->slot[s] = t->rank[0].c + 1;
        c->slot = s;
        c->err = t->rank[0].count;
        memset(c->kinds, 0, sizeof(c->kinds));
        c->hash = hash;
        c->klen = len;
        memcpy(c->key, key, len);
    }
    c->kinds[kind]++;
    c->pool = pool;
    bump(h, t, c->rank);
    return t->rank[c->rank].count - c->err;
}

/* Move the windows forward to now: the current one becomes the previous one once per window;
 * after two windows or more without a sample both are dropped. Windows stay aligned to the
 * first sample, so a stopped key is gone at most two windows after its last sample. */
static void advance(struct hotkeys *h, double now)
{
    if (!h->started) {
        h->started = true;
        h->start = now;
        return;
    }
    if (!(now - h->start >= h->window))
        return;
    double k = floor((now - h->start) / h->window);
    if (k >= 2) {
        table_clear(h, &h->t[0]);
        table_clear(h, &h->t[1]);
    } else {
        h->cur ^= 1;
        table_clear(h, &h->t[h->cur]);
    }
    h->start += k * h->window;
}

uint64_t hotkeys_add(struct hotkeys *h, const char *key, size_t len, enum hk_kind kind, int pool,
                     double now)
{
    if (h == NULL || key == NULL || !isfinite(now))
        return 0;
    if ((unsigned)kind >= HK_KINDS)
        kind = HK_OTHER;
    uint32_t klen = len > HOTKEY_KEY_MAX ? HOTKEY_KEY_MAX : (uint32_t)len;
    uint32_t hash = switch_hash(key, klen);
    pthread_mutex_lock(&h->lock);
    advance(h, now);
    uint64_t sure = table_add(h, &h->t[h->cur], key, klen, hash, kind, pool);
    pthread_mutex_unlock(&h->lock);
    return sure;
}

static uint64_t count_of(const struct hk_table *t, const struct hk_counter *c)
{
    return t->rank[c->rank].count;
}

/* The counter of c's key in table t, or NULL. */
static const struct hk_counter *table_get(const struct hotkeys *h, const struct hk_table *t,
                                          const struct hk_counter *c)
{
    uint32_t s = t->slot[find_slot(h, t, c->key, c->klen, c->hash)];
    return s ? &t->c[s - 1] : NULL;
}

/* Add weight w of counter c of table t to e; kinds are scaled from what was seen to the
 * whole count. */
static void entry_add(struct hotkey_entry *e, const struct hk_table *t, const struct hk_counter *c,
                      double w)
{
    if (c == NULL || w <= 0)
        return;
    double count = (double)count_of(t, c);
    double seen = count - (double)c->err; /* >= 1: a counter is counted up on entry */
    e->count += w * count;
    e->err += w * (double)c->err;
    for (int k = 0; k < HK_KINDS; k++)
        e->kinds[k] += w * (double)c->kinds[k] * count / seen;
}

static int key_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

static int cand_cmp(const void *x, const void *y)
{
    const struct hk_cand *p = x, *q = y;
    if (p->count != q->count)
        return p->count > q->count ? -1 : 1;
    const struct hk_counter *pc = p->a ? p->a : p->b, *qc = q->a ? q->a : q->b;
    return key_cmp(pc->key, pc->klen, qc->key, qc->klen);
}

/* Fill h->cand with every key of the two tables and its estimate at now; wa and wb are the
 * weights of the newer and the older table: the share of each inside [now - window, now].
 * A reader whose clock is past the current window sees the rotation advance() has not done
 * yet. Returns how many candidates. Under h->lock. */
static uint32_t collect(struct hotkeys *h, double now, double *wa, double *wb)
{
    const struct hk_table *ta = &h->t[h->cur], *tb = &h->t[h->cur ^ 1];
    double age = (now - h->start) / h->window;
    uint32_t nc = 0;
    *wa = 1;
    *wb = 1 - (age > 0 ? age : 0);
    if (age >= 1) {
        *wa = 2 - age;
        *wb = 0;
    }
    if (!h->started || *wa <= 0)
        return 0;
    for (uint32_t i = 0; i < h->m; i++) {
        const struct hk_counter *a = &ta->c[i], *b;
        if (count_of(ta, a) == 0)
            continue;
        b = *wb > 0 ? table_get(h, tb, a) : NULL;
        double count = *wa * (double)count_of(ta, a) + (b ? *wb * (double)count_of(tb, b) : 0);
        h->cand[nc++] = (struct hk_cand){ count, a, b };
    }
    for (uint32_t i = 0; *wb > 0 && i < h->m; i++) {
        const struct hk_counter *b = &tb->c[i];
        if (count_of(tb, b) > 0 && table_get(h, ta, b) == NULL)
            h->cand[nc++] = (struct hk_cand){ *wb * (double)count_of(tb, b), NULL, b };
    }
    return nc;
}

uint32_t hotkeys_top(struct hotkeys *h, double now, struct hotkey_entry *out, uint32_t n)
{
    if (h == NULL || n == 0 || !isfinite(now))
        return 0;
    double wa, wb;
    uint32_t got = 0;
    pthread_mutex_lock(&h->lock);
    uint32_t nc = collect(h, now, &wa, &wb);
    qsort(h->cand, nc, sizeof(*h->cand), cand_cmp);
    for (; got < n && got < nc; got++) {
        const struct hk_cand *cd = &h->cand[got];
        const struct hk_counter *c = cd->a ? cd->a : cd->b;
        struct hotkey_entry *e = &out[got];
        memset(e, 0, sizeof(*e));
        memcpy(e->key, c->key, c->klen);
        e->klen = c->klen;
        e->pool = c->pool; /* the newer table's when it has the key: the latest sample */
        entry_add(e, &h->t[h->cur], cd->a, wa);
        entry_add(e, &h->t[h->cur ^ 1], cd->b, wb);
    }
    pthread_mutex_unlock(&h->lock);
    return got;
}

/* hotkeys_merge: the entries of one key, summed. */
struct hk_group {
    const struct hotkey_entry *first; /* its key */
    double count, err, kinds[HK_KINDS], best;
    int pool; /* that of its entry with the highest count (best) */
};

static uint32_t entry_klen(const struct hotkey_entry *e)
{
    return e->klen > HOTKEY_KEY_MAX ? HOTKEY_KEY_MAX : e->klen;
}

static int entry_key_cmp(const void *x, const void *y)
{
    const struct hotkey_entry *p = *(const struct hotkey_entry *const *)x;
    const struct hotkey_entry *q = *(const struct hotkey_entry *const *)y;
    return key_cmp(p->key, entry_klen(p), q->key, entry_klen(q));
}

static int group_cmp(const void *x, const void *y)
{
    const struct hk_group *p = x, *q = y;
    if (p->count != q->count)
        return p->count > q->count ? -1 : 1;
    return key_cmp(p->first->key, entry_klen(p->first), q->first->key, entry_klen(q->first));
}

uint32_t hotkeys_merge(const struct hotkey_entry *in, uint32_t nin, struct hotkey_entry *out,
                       uint32_t max)
{
    uint32_t ng = 0, got = 0;
    const struct hotkey_entry **by_key = NULL;
    struct hk_group *g = NULL;
    if (nin == 0 || max == 0)
        goto done;
    by_key = malloc(nin * sizeof(*by_key));
    g = malloc(nin * sizeof(*g));
    if (by_key == NULL || g == NULL)
        goto done;
    for (uint32_t i = 0; i < nin; i++)
        by_key[i] = &in[i];
    qsort(by_key, nin, sizeof(*by_key), entry_key_cmp); /* equal keys side by side */
    for (uint32_t i = 0; i < nin; i++) {
        const struct hotkey_entry *e = by_key[i];
        if (i == 0 || entry_key_cmp(&by_key[i - 1], &by_key[i]) != 0) {
            memset(&g[ng], 0, sizeof(g[ng]));
            g[ng].first = e;
            g[ng].best = -INFINITY;
            ng++;
        }
        struct hk_group *cur = &g[ng - 1];
        cur->count += e->count;
        cur->err += e->err;
        for (int k = 0; k < HK_KINDS; k++)
            cur->kinds[k] += e->kinds[k];
        if (e->count > cur->best) {
            cur->best = e->count;
            cur->pool = e->pool;
        }
    }
    qsort(g, ng, sizeof(*g), group_cmp);
    for (; got < max && got < ng; got++) {
        struct hotkey_entry *o = &out[got];
        memset(o, 0, sizeof(*o));
        o->klen = entry_klen(g[got].first);
        memcpy(o->key, g[got].first->key, o->klen);
        o->count = g[got].count;
        o->err = g[got].err;
        memcpy(o->kinds, g[got].kinds, sizeof(o->kinds));
        o->pool = g[got].pool;
    }
done:
    free(by_key);
    free(g);
    return got;
}
