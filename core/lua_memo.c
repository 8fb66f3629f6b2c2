/* lua_memo.c: a worker's bounded memo of resolutions: client key -> pool, policy, backend key.
 *
 * A fixed array of 4-way sets (a set by the key's hash), least recently used out first:
 * it never grows past the size mg.memo gave. Each entry owns one heap block with the
 * client key and the backend key, reused while the next entry's keys fit. One worker
 * owns a memo (its Lua state's); no locks. */
#include "lua_memo.h"

#include <stdlib.h>
#include <string.h>

#define WAYS 4

/* One resolution. Owned by its memo; data (key, then backend key) by the entry. */
struct memo_ent {
    uint64_t h;     /* the key's hash; 0: empty */
    uint64_t gen;   /* switch generation it was computed under (asked_switch) */
    uint32_t stamp; /* last use, for the set's least recently used */
    uint16_t klen, nklen, cap;
    uint8_t cmd; /* the command it depends on, or LUA_MEMO_ANY_CMD */
    bool asked_switch;
    int32_t pool, policy;
    char *data;
};

struct lua_memo {
    struct memo_ent *ents; /* nsets * WAYS */
    uint32_t nsets, count, tick;
};

struct lua_memo *lua_memo_new(uint32_t size)
{
    if (size < WAYS)
        size = WAYS;
    struct lua_memo *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->nsets = size / WAYS;
    m->ents = calloc((size_t)m->nsets * WAYS, sizeof(*m->ents));
    if (m->ents == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void lua_memo_free(struct lua_memo *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < (size_t)m->nsets * WAYS; i++)
        free(m->ents[i].data);
    free(m->ents);
    free(m);
}

uint32_t lua_memo_count(const struct lua_memo *m)
{
    return m->count;
}

uint32_t lua_memo_capacity(const struct lua_memo *m)
{
    return m->nsets * WAYS;
}

/* Eight bytes at a time, multiply and xor-shift, the last one to eight bytes in two
 * overlapping loads, a final mix: a table index, not a contract (collisions are settled
 * by comparing keys). Short keys, the common case, take no loop turn. */
uint64_t lua_memo_hash(const char *k, size_t n)
{
    uint64_t h = (n + 1) * 0x9e3779b97f4a7c15ULL, v = 0;
    for (; n > 8; k += 8, n -= 8) {
        memcpy(&v, k, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, k, 4);
        memcpy(&b, k + n - 4, 4);
        v = (uint64_t)a << 32 | b;
    } else if (n > 0) {
        v = (uint64_t)(uint8_t)k[0] << 16 | (uint64_t)(uint8_t)k[n >> 1] << 8 | (uint8_t)k[n - 1];
    }
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h ? h : 1;
}

/* a and b hold the same n bytes (no library call: keys are short). */
static inline bool bytes_eq(const char *a, const char *b, size_t n)
{
    uint64_t x, y;
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return false;
    }
    if (n >= 4) {
        uint32_t p, q, r, t;
        memcpy(&p, a, 4);
        memcpy(&q, b, 4);
        memcpy(&r, a + n - 4, 4);
        memcpy(&t, b + n - 4, 4);
        return p == q && r == t;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* The first entry of h's set (Lemire's multiply-shift: any number of sets). */
static struct memo_ent *set_of(const struct lua_memo *m, uint64_t h)
{
    return &m->ents[(size_t)(((h >> 32) * m->nsets) >> 32) * WAYS];
}

static bool same_key(const struct memo_ent *e, uint64_t h, const char *k, size_t n)
{
    return e->h == h && e->klen == n && bytes_eq(e->data, k, n);
}

bool lua_memo_get(struct lua_memo *m, uint64_t h, const char *k, size_t n, int cmd, uint64_t gen,
                  struct memo_hit *out)
{
    struct memo_ent *s = set_of(m, h);
    for (int i = 0; i < WAYS; i++) {
        struct memo_ent *e = &s[i];
        if (e->h != h || e->klen != n || (e->cmd != LUA_MEMO_ANY_CMD && e->cmd != cmd) ||
            (e->asked_switch && e->gen != gen) || !bytes_eq(e->data, k, n))
            continue;
        e->stamp = ++m->tick;
        out->pool = e->pool;
        out->policy = e->policy;
        out->key = e->data + e->klen;
        out->key_len = e->nklen;
        return true;
    }
    return false;
}

/* The entry a new resolution of k for cmd goes to: the one lookups for cmd would find
 * (it missed, so it is out of date), else an empty one, else the least recently used. */
static struct memo_ent *slot_for(struct memo_ent *s, uint64_t h, const char *k, size_t n, int cmd)
{
    struct memo_ent *victim = NULL;
    for (int i = 0; i < WAYS; i++) {
        struct memo_ent *e = &s[i];
        if (same_key(e, h, k, n) &&
            (e->cmd == LUA_MEMO_ANY_CMD || cmd == LUA_MEMO_ANY_CMD || e->cmd == cmd))
            return e;
    }
    for (int i = 0; i < WAYS; i++) {
        struct memo_ent *e = &s[i];
        if (e->h == 0)
            return e;
        if (victim == NULL || (int32_t)(e->stamp - victim->stamp) < 0)
            victim = e;
    }
    return victim;
}

int lua_memo_put(struct lua_memo *m, uint64_t h, const char *k, size_t n, int cmd,
                 bool asked_switch, uint64_t gen, const struct memo_hit *res)
{
    if (n == 0 || n > LUA_MEMO_KEY_MAX || res->key_len > LUA_MEMO_KEY_MAX)
        return -1;
    struct memo_ent *e = slot_for(set_of(m, h), h, k, n, cmd);
    int evicted = e->h != 0 && !same_key(e, h, k, n);
    size_t need = n + res->key_len;
    if (need > e->cap) {
        size_t cap = (need + 15) & ~(size_t)15;
        char *d = realloc(e->data, cap);
        if (d == NULL)
            return -1; /* e is as it was */
        e->data = d;
        e->cap = (uint16_t)cap;
    }
    if (e->h == 0)
        m->count++;
    memcpy(e->data, k, n);
    if (res->key_len)
        memcpy(e->data + n, res->key, res->key_len);
    e->h = h;
    e->klen = (uint16_t)n;
    e->nklen = (uint16_t)res->key_len;
    e->cmd = (uint8_t)cmd;
    e->asked_switch = asked_switch;
    e->gen = gen;
    e->pool = res->pool;
    e->policy = res->policy;
    e->stamp = ++m->tick;
    return evicted;
}
