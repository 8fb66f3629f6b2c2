/* dispatch_near.c: dispatch's part of the near cache (near.h holds the store): a get of an
 * eligible key answered from the cache or marked to fill it, the fill from memcached's
 * reply, the background refresh of an entry, and the mark that makes a write drop its key
 * once done (request.c's op_finish). dispatch.c calls it only when a config has the near
 * cache on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "conn.h"
#include "dispatch_int.h"
#include "meta_render.h"
#include "near.h"
#include "slowlog.h"
#include "stats.h"
#include "trace.h"
#include "worker.h"

/* Does a meta get change the item (touch, vivify, invalidate, a new TTL on a miss)? */
static bool mg_writes(const struct mg_text_req *t)
{
    for (size_t i = 0; i < t->args.len; i++) {
        char c = t->args.p[i];
        if ((i == 0 || t->args.p[i - 1] == ' ') && (c == 'T' || c == 'N' || c == 'I' || c == 'E'))
            return true;
    }
    return false;
}

/* May a meta get be answered from the near cache? Its flags must all be ones the cache can
 * answer as memcached would: v f c t s k O q u (no b: a base64 key; no h, l, a: what only
 * memcached knows of the item's use; no N, R, T, E, I, M: those change it). */
static bool mg_near_flags(const struct mg_text_req *t)
{
    if (t->b64)
        return false;
    for (size_t i = 0; i < t->args.len; i++) {
        if (i > 0 && t->args.p[i - 1] != ' ')
            continue;
        char c = t->args.p[i];
        if (c != ' ' && !strchr("vfctskOqu", c))
            return false;
    }
    return true;
}

/* Answer a meta get from the near cache entry m (value in w->near_val), flags in the order
 * the client gave them, as memcached renders them; t from the item's expiry as read. */
static bool near_meta_hit(struct request *r, struct op *op, const struct mg_text_req *t,
                          struct mg_slice k, const struct near_meta *m, double now)
{
    struct worker *w = r->w;
    struct buf *o = &op->out;
    size_t vlen = w->near_val.len;
    bool value = false;
    for (size_t i = 0; i < t->args.len; i++)
        value |= t->args.p[i] == 'v' && (i == 0 || t->args.p[i - 1] == ' ');
    if (buf_reserve(o, t->args.len + k.len + vlen + 96) != MG_OK)
        return false;
    if (value) {
        buf_put(o, "VA ", 3);
        buf_append_u64(o, vlen);
    } else {
        buf_put(o, "HD", 2);
    }
    for (size_t i = 0; i < t->args.len; i++) {
        if (t->args.p[i] == ' ' || (i > 0 && t->args.p[i - 1] != ' '))
            continue;
        size_t end = i;
        while (end < t->args.len && t->args.p[end] != ' ')
            end++;
        char c = t->args.p[i];
        if (c == 'v' || c == 'q' || c == 'u')
            continue;
        o->data[o->len++] = ' ';
        o->data[o->len++] = c;
        if (c == 'f') {
            buf_append_u64(o, m->flags);
        } else if (c == 'c') {
            buf_append_u64(o, m->cas);
        } else if (c == 's') {
            buf_append_u64(o, vlen);
        } else if (c == 'k') {
            buf_put(o, k.p, k.len);
        } else if (c == 'O') {
            buf_put(o, t->args.p + i + 1, end - i - 1);
        } else if (c == 't') {
            if (m->item_exp < 0) {
                buf_put(o, "-1", 2);
            } else {
                double left = m->item_exp - now;
                buf_append_u64(o, left > 0 ? (uint64_t)(left + 0.5) : 0);
            }
        }
    }
    buf_put(o, "\r\n", 2);
    if (value) {
        buf_put(o, w->near_val.data, vlen);
        buf_put(o, "\r\n", 2);
    }
    op->status = MG_R_VA;
    op->vlen = (uint32_t)vlen;
    STAT_INC(w->st.near_hits);
    if ((uint32_t)op->pool < w->npool_herd)
        STAT_INC(w->pool_herd[op->pool].near_hits);
    op_finish(op);
    return true;
}

/* A background read of a near entry (one per entry per refresh time, per gateway). */
struct near_refresh {
    uint64_t gen, h, seq;
    int pool;
    uint32_t grace;
    double ttl;
    uint32_t max_value;
    uint16_t klen;
    char key[];
};

/* How long a value read with remaining TTL t (meta t: whole seconds, -1 none) may live in
 * the near cache: at most ttl, and at most its nominal remaining time less a second
 * (memcached's clock ticks in seconds; grace: a staleness policy's, past the nominal
 * expiry). 0: not at all. */
static double near_life(struct mg_slice flags, uint32_t grace, double ttl)
{
    struct mg_slice v;
    if (!mg_meta_flag(flags, 't', &v) || v.len == 0)
        return 0;
    if (v.p[0] == '-')
        return ttl; /* never expires */
    int64_t left = 0;
    for (uint32_t i = 0; i < v.len && v.p[i] >= '0' && v.p[i] <= '9'; i++)
        left = left * 10 + (v.p[i] - '0');
    left -= (int64_t)grace + 1;
    if (left <= 0)
        return 0;
    return (double)left < ttl ? (double)left : ttl;
}

/* An entry's reply head for the express lane, rendered once at its fill: " flags bytes"
 * then " cas" from cas_at on. */
struct near_head {
    char s[72];
    uint8_t len, cas_at;
};

static void near_head_of(struct near_head *hd, const struct near_meta *m, uint32_t vlen)
{
    int at = snprintf(hd->s, sizeof(hd->s), " %u %u", m->flags, vlen);
    int n = snprintf(hd->s + at, sizeof(hd->s) - (size_t)at, " %llu", (unsigned long long)m->cas);
    hd->cas_at = (uint8_t)at;
    hd->len = (uint8_t)(at + n);
}

/* Store rep (a VA) in the near cache if it may be: not a win, not stale, not past the
 * policy's stale point, small enough. */
static bool near_store(const struct config *cfg, uint64_t gen, int pool, uint64_t h, uint64_t seq,
                       const char *key, size_t klen, const struct mg_meta_reply *rep,
                       uint32_t grace, double ttl, double now)
{
    struct mg_slice v;
    if (rep->data.len > cfg->near.max_value || mg_meta_flag(rep->flags, 'W', &v) ||
        mg_meta_flag(rep->flags, 'X', &v) || mg_meta_flag(rep->flags, 'Z', &v))
        return false;
    double life = near_life(rep->flags, grace, ttl);
    if (life <= 0)
        return false;
    /* t was there (near_life): -1 never, else seconds memcached has left for the item */
    struct near_meta m = { (uint32_t)mg_meta_flag_u64(rep->flags, 'f'),
                           mg_meta_flag_u64(rep->flags, 'c'), -1 };
    if (mg_meta_flag(rep->flags, 't', &v) && v.len && v.p[0] != '-')
        m.item_exp = now + (double)mg_meta_flag_u64(rep->flags, 't');
    /* the express lane's reply head, rendered once: " flags bytes" then " cas" */
    struct near_head hd = { .len = 0 };
    near_head_of(&hd, &m, (uint32_t)rep->data.len);
    return near_fill(h, seq, gen, pool, key, klen, &m, hd.s, hd.len, hd.cas_at, rep->data.p,
                     (uint32_t)rep->data.len, now + life, now + life / 2);
}

void dispatch_near_fill(struct op *op, const struct mg_meta_reply *rep)
{
    struct request *r = op->req;
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    if (r->cfg != cfg || op->pool < 0 || (uint32_t)op->pool >= cfg->npools)
        return;
    const struct pool *p = &cfg->pools[op->pool];
    if (near_store(cfg, cfg->generation, op->pool, op->near_h, op->near_seq, buf_head(&op->key),
                   buf_unread(&op->key), rep, op->pol ? op->pol->grace : 0, p->near_ttl,
                   ev_now(w->loop))) {
        STAT_INC(w->st.near_fills);
        if ((uint32_t)op->pool < w->npool_herd)
            STAT_INC(w->pool_herd[op->pool].near_fills);
    }
}

static void near_refresh_done(struct request *rr)
{
    struct near_refresh *nr = rr->udata;
    struct worker *w = rr->w;
    const struct op *op = &rr->ops[0];
    struct mg_meta_reply rep;
    size_t used;
    if (op->fail == OP_FAIL_NONE && w->cfg->generation == nr->gen &&
        mg_meta_parse_reply(buf_head(&op->out), buf_unread(&op->out), nr->max_value + 1, &rep,
                            &used) == MG_OK) {
        if (rep.status != MG_R_VA ||
            !near_store(w->cfg, nr->gen, nr->pool, nr->h, nr->seq, nr->key, nr->klen, &rep,
                        nr->grace, nr->ttl, ev_now(w->loop)))
            near_invalidate(nr->h); /* gone, stale or expiring: stop answering it near */
    }
    free(nr);
    request_release(rr);
}

/* Read key again in the background (the hit that asked for it answers at once). */
static void near_refresh(struct worker *w, const struct config *cfg, int pool,
                         const struct target *tg, uint64_t h)
{
    struct near_refresh *nr = malloc(sizeof(*nr) + tg->plain.len);
    if (nr == NULL)
        return;
    nr->gen = cfg->generation;
    nr->h = h;
    nr->seq = near_seq(h);
    nr->pool = pool;
    nr->grace = tg->pol ? tg->pol->grace : 0;
    nr->ttl = cfg->pools[pool].near_ttl;
    nr->max_value = cfg->near.max_value;
    nr->klen = (uint16_t)tg->plain.len;
    memcpy(nr->key, tg->plain.p, tg->plain.len);
    enum op_fail why;
    struct backend *b = worker_pick(w, tg->pool, tg->plain.p, tg->plain.len);
    struct request *rr =
        backend_usable(b) ? request_one(w, b, tg->bklen, near_refresh_done, nr, &why) : NULL;
    if (rr == NULL) {
        free(nr);
        return;
    }
    meta_render_get(&b->wbuf, tg->bkey, tg->bklen, true, false, 0, true);
    request_one_send(rr);
    STAT_INC(w->st.near_refreshes);
}

/* Is key where (of near_hash hw) one the near cache of pool p serves: one of its prefixes,
 * or found hot? */
static bool near_wanted(const struct config *cfg, const struct pool *p, struct mg_slice where,
                        uint64_t hw)
{
    for (uint32_t i = 0; i < p->nnear_prefixes; i++)
        if (where.len >= p->near_prefix_len[i] &&
            memcmp(where.p, p->near_prefixes[i], p->near_prefix_len[i]) == 0)
            return true;
    /* the hot-key detector counts the placement key; the cache holds the backend key (the
     * same bytes unless a key style or function changed them) */
    return cfg->near.hot && near_hot((int)p->id, hw);
}

/* near_hash of plain, and of where (the same when the bytes are). */
static uint64_t near_hashes(struct mg_slice where, struct mg_slice plain, uint64_t *hw)
{
    uint64_t hp = near_hash(plain.p, plain.len);
    bool same_key = where.len == plain.len && memcmp(where.p, plain.p, where.len) == 0;
    *hw = same_key ? hp : near_hash(where.p, where.len);
    return hp;
}

/* Append a classic hit's reply for client key k to o: VALUE k flags bytes [cas], the value
 * and its \r\n (op_reply's rendering of a backend's hit). */
static MG_ALWAYS_INLINE void near_value_line(struct buf *o, struct mg_slice k,
                                             const struct near_meta *m, const struct buf *val,
                                             bool gets)
{
    buf_put(o, "VALUE ", 6);
    buf_put(o, k.p, k.len);
    o->data[o->len++] = ' ';
    buf_append_u64(o, m->flags);
    o->data[o->len++] = ' ';
    buf_append_u64(o, val->len);
    if (gets) {
        o->data[o->len++] = ' ';
        buf_append_u64(o, m->cas);
    }
    buf_put(o, "\r\n", 2);
    buf_put(o, val->data, val->len);
    buf_put(o, "\r\n", 2);
}

/* A classic set, add, replace or cas of a near-cached key: its value, kept until memcached
 * answers (op->near_wf). */
struct near_wfill {
    uint64_t seq; /* the stripe's invalidation count when the write went out */
    uint64_t gen; /* config generation */
    uint64_t cas; /* the stored item's, from memcached's reply */
    double sent;  /* ev_now then: the TTL counts from here */
    int64_t exptime;
    uint32_t flags, vlen, grace;
    int pool;
    bool stored;
    uint16_t klen;
    char data[]; /* key, then value */
};

/* Keep t's value on op when memcached's STORED may put it in the near cache: a classic
 * set/add/replace/cas with a reply, of a key the pool's near cache serves, small enough. */
static void near_write_keep(struct op *op, const struct mg_text_req *t, const struct target *tg)
{
    struct request *r = op->req;
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    const struct pool *p = tg->pool;
    if (t->noreply || t->b64 || op->route >= 0 || p == NULL || !p->near ||
        t->data.len > cfg->near.max_value || tg->plain.len > UINT16_MAX || t->exptime < 0)
        return;
    uint64_t hw;
    uint64_t h = near_hashes(t->key, tg->plain, &hw);
    if (!near_wanted(cfg, p, t->key, hw))
        return;
    struct near_wfill *wf = malloc(sizeof(*wf) + tg->plain.len + t->data.len);
    if (wf == NULL)
        return;
    wf->seq = near_seq(h);
    wf->gen = cfg->generation;
    wf->cas = 0;
    wf->sent = ev_now(w->loop);
    wf->exptime = t->exptime;
    wf->flags = t->flags;
    wf->vlen = t->data.len;
    wf->grace = tg->pol ? tg->pol->grace : 0;
    wf->pool = (int)p->id;
    wf->stored = false;
    wf->klen = (uint16_t)tg->plain.len;
    memcpy(wf->data, tg->plain.p, tg->plain.len);
    memcpy(wf->data + wf->klen, t->data.p, t->data.len);
    op->near_wf = wf;
}

void dispatch_near_stored(struct op *op, const struct mg_meta_reply *rep)
{
    struct mg_slice v;
    if (mg_meta_flag(rep->flags, 'c', &v)) {
        op->near_wf->cas = mg_meta_flag_u64(rep->flags, 'c');
        op->near_wf->stored = true;
    }
}

void dispatch_near_write_fill(struct op *op)
{
    struct near_wfill *wf = op->near_wf;
    struct request *r = op->req;
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    op->near_wf = NULL;
    /* a guarded store (a herd win's) may have been refused or be retracted: no fill */
    if (wf->stored && op->fail == OP_FAIL_NONE && op->guard == OP_GUARD_NONE &&
        wf->gen == cfg->generation && (uint32_t)wf->pool < cfg->npools) {
        /* the item expires exptime after the write (0: never; over 30 days: a unix time);
         * the entry at most ttl, and a second before the item (memcached's clock) */
        double ttl = cfg->pools[wf->pool].near_ttl, life = ttl;
        struct near_meta m = { wf->flags, wf->cas, -1 };
        if (wf->exptime > 0) {
            double left = wf->exptime > 2592000
                              ? (double)wf->exptime - (double)time(NULL)
                              : (double)wf->exptime - (ev_now(w->loop) - wf->sent);
            m.item_exp = ev_now(w->loop) + left + wf->grace;
            life = left - 1 < ttl ? left - 1 : ttl;
        }
        struct near_head hd = { .len = 0 };
        near_head_of(&hd, &m, wf->vlen);
        uint64_t h = near_hash(wf->data, wf->klen);
        double now = ev_now(w->loop);
        /* seq + 1: this write's own invalidation (op_finish, just before) and no other */
        if (life > 0 &&
            near_fill(h, wf->seq + 1, wf->gen, wf->pool, wf->data, wf->klen, &m, hd.s, hd.len,
                      hd.cas_at, wf->data + wf->klen, wf->vlen, now + life, now + life / 2)) {
            STAT_INC(w->st.near_fills);
            if ((uint32_t)wf->pool < w->npool_herd)
                STAT_INC(w->pool_herd[wf->pool].near_fills);
        }
    }
    free(wf);
}

void dispatch_near_write(struct op *op, const struct mg_text_req *t, const struct target *tg)
{
    enum mg_cmd cmd = t->cmd;
    if (cmd == MG_CMD_GET || cmd == MG_CMD_GETS || cmd == MG_CMD_ME ||
        (cmd == MG_CMD_MG && !mg_writes(t)))
        return;
    op->near_inval = true;
    op->near_h = near_hash(tg->plain.p, tg->plain.len);
    if (op->req->c)
        op->req->c->near_writes++; /* op_finish counts it down */
    if (cmd == MG_CMD_SET || cmd == MG_CMD_ADD || cmd == MG_CMD_REPLACE || cmd == MG_CMD_CAS)
        near_write_keep(op, t, tg);
}

bool dispatch_near_get(struct request *r, struct op *op, const struct mg_text_req *t,
                       struct mg_slice k, struct mg_slice where, struct target *tg)
{
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    enum mg_cmd cmd = t->cmd;
    bool meta = cmd == MG_CMD_MG;
    if (r->c && r->c->near_writes)
        return false; /* a write of this client is in flight: the get goes after it */
    if (meta && (mg_writes(t) || !mg_near_flags(t)))
        return false; /* a write (near_write marks it), or flags only memcached can answer */
    uint64_t h;
    bool want;
    if (w->near_pre.p == where.p && w->near_pre.len == where.len) {
        h = w->near_pre.h; /* the express lane looked at this very key a moment ago */
        want = w->near_pre.want;
        w->near_pre.p = NULL;
    } else {
        uint64_t hw;
        h = near_hashes(where, tg->plain, &hw);
        want = near_wanted(cfg, tg->pool, where, hw);
    }
    if (!want)
        return false;
    struct near_meta m;
    bool refresh;
    double now = ev_now(w->loop);
    if (near_lookup(h, cfg->generation, op->pool, tg->plain.p, tg->plain.len, now, &w->near_val, &m,
                    &refresh)) {
        if (refresh)
            near_refresh(w, cfg, op->pool, tg, h);
        if (meta)
            return near_meta_hit(r, op, t, k, &m, now);
        /* the reply as op_reply renders a backend's hit: VALUE key flags bytes [cas] */
        struct buf *o = &op->out;
        size_t vlen = w->near_val.len;
        if (buf_reserve(o, k.len + vlen + 80) != MG_OK)
            return false;
        near_value_line(o, k, &m, &w->near_val, cmd == MG_CMD_GETS);
        op->status = MG_R_VA;
        op->vlen = (uint32_t)vlen;
        STAT_INC(w->st.get_hits);
        STAT_INC(w->st.near_hits);
        if ((uint32_t)op->pool < w->npool_herd)
            STAT_INC(w->pool_herd[op->pool].near_hits);
        op_finish(op); /* a hit has no hook event */
        return true;
    }
    STAT_INC(w->st.near_misses);
    if ((uint32_t)op->pool < w->npool_herd)
        STAT_INC(w->pool_herd[op->pool].near_misses);
    if (meta)
        return false; /* its reply carries the client's flags, not what a fill needs */
    if (tg->plain.len > UINT16_MAX || !op_keep_key(op, tg->plain.p, tg->plain.len))
        return false;
    op->near_fill = true;
    op->near_h = h;
    op->near_seq = near_seq(h);
    /* Right after a write dropped a hot key, every client of the worker misses it at once:
     * without a staleness policy of their own, such gets share one backend read (herd.c's
     * coalescing, nothing else of a policy: no grace, no lock, no wait) */
    static const struct stale_policy coalesce_only = { .coalesce = true };
    if (tg->pol == NULL)
        tg->pol = &coalesce_only;
    return false;
}

bool dispatch_near_express(struct conn *c, const char *p, size_t n, size_t *used)
{
    struct worker *w = c->w;
    size_t ks;
    if (n >= 7 && memcmp(p, "get ", 4) == 0)
        ks = 4;
    else if (n >= 8 && memcmp(p, "gets ", 5) == 0)
        ks = 5;
    else
        return false;
    /* the key: bytes memcached takes in a key, hashed as they are scanned, up to \r\n */
    const char *key = p + ks, *end = p + n;
    const char *stop = end - key > MG_KEY_MAX ? key + MG_KEY_MAX : end;
    const char *q = key;
    uint64_t fnv = MG_FNV_OFFSET;
    for (; q < stop; q++) {
        unsigned char ch = (unsigned char)*q;
        if (ch <= ' ' || ch == 127)
            break;
        fnv = MG_FNV_STEP(fnv, ch);
    }
    if (q == key || end - q < 2 || q[0] != '\r' || q[1] != '\n')
        return false; /* not one key and \r\n: the parser says what it is */
    struct mg_slice k = { key, (uint32_t)(q - key) };
    const struct config *cfg = w->cfg;
    if (MG_UNLIKELY(w->tearing_down) ||
        atomic_load_explicit(&trace_session, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&slowlog_gate_us, memory_order_relaxed) == 0)
        return false; /* traced or logged: those need the request */
    struct target tg;
    const struct pool *pool = config_route(cfg, k.p, k.len, &tg.pol);
    if (pool->kind != POOL_SERVERS || !pool->near)
        return false;
    tg.plain = k;
    uint64_t hw = near_hash_fnv(fnv), h = hw;
    if (pool->keys) {
        int kn = keys_apply_bytes(pool->keys, k.p, k.len, false, tg.kbuf, sizeof(tg.kbuf));
        if (kn < 0 || kn > MG_KEY_MAX)
            return false;
        tg.plain = (struct mg_slice){ tg.kbuf, (uint32_t)kn };
        h = near_hashes(k, tg.plain, &hw);
    }
    if (tg.plain.len >= sizeof(MG_RESERVED_PREFIX) - 1 &&
        memcmp(tg.plain.p, MG_RESERVED_PREFIX, sizeof(MG_RESERVED_PREFIX) - 1) == 0)
        return false; /* the gateway's own keys: dispatch decides who may */
    bool want = near_wanted(cfg, pool, k, hw);
    w->near_pre = (struct near_pre){ k.p, k.len, h, want }; /* for the usual path, if it comes */
    if (!want)
        return false;
    int pid = (int)pool->id;
    bool refresh, gets = ks == 5;
    struct buf *o = &c->xout;
    size_t mark = buf_unread(o); /* a reserve may move the unread bytes to the front */
    if (buf_reserve(o, k.len + 16) != MG_OK)
        return false;
    buf_put(o, "VALUE ", 6);
    buf_put(o, k.p, k.len);
    if (!near_lookup_reply(h, cfg->generation, pid, tg.plain.p, tg.plain.len, ev_now(w->loop), o,
                           gets, &refresh) ||
        buf_append(o, "END\r\n", 5) != MG_OK) {
        o->len = o->off + mark; /* a miss: the usual path asks memcached */
        if (mark == 0)
            o->off = o->len = 0; /* empty means len 0 (conn.c tests only that) */
        return false;
    }
    c->ready_bytes += buf_unread(o) - mark;
    w->near_pre.p = NULL;
    if (refresh) {
        tg.pool = pool;
        tg.bkey = tg.plain.p;
        tg.bklen = tg.plain.len;
        near_refresh(w, cfg, pid, &tg, h);
    }
    *used = (size_t)(q + 2 - p);
    STAT_INC(w->st.cmd_get);
    STAT_INC(w->st.get_hits);
    STAT_INC(w->st.near_hits);
    if ((uint32_t)pid < w->npool_herd)
        STAT_INC(w->pool_herd[pid].near_hits);
    enum mg_cmd cmd = gets ? MG_CMD_GETS : MG_CMD_GET;
    if (MG_LIKELY(stats_observe))
        hist_add(&w->st.cmd_lat[cmd], 0); /* answered within the loop turn that read it */
    if (MG_UNLIKELY(--w->hot_left == 0))
        stats_hot_sample(w, cmd, pid, k.p, k.len);
    worker_dirty_conn(w, c);
    return true;
}
