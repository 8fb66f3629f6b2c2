/* dispatch.c: from a parsed client command to meta commands on the right backends. */
#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "conn.h"
#include "herd.h"
#include "log.h"
#include "meta_render.h"
#include "plugin.h"
#include "request.h"
#include "stats.h"
#include "switch.h"
#include "worker.h"

/* Characters of the base64 encoding of n bytes. */
#define B64_LEN(n) (4 * (((n) + 2) / 3))

/* Where one key goes: backend, staleness policy and backend key. */
struct target {
    struct backend *b;
    const struct stale_policy *pol;
    const char *bkey; /* the backend key as sent (base64 for a b-flag key) */
    uint32_t bklen;
    struct mg_slice plain; /* the backend key's bytes (what memcached stores) */
    char kbuf[MG_KEY_MAX + 1];
    char ebuf[B64_LEN(MG_KEY_MAX) + 1]; /* a base64 key's backend key, re-encoded */
    uint32_t ttl_cap; /* a failover route's child after the first: writes live at most this */
};

/* Keys the gateway keeps for itself (herd leases, fleet switches) start with this; a
 * client's key never maps there unless it came on a trusted (admin) connection. */
static bool key_reserved(const struct request *r, struct mg_slice bk)
{
    size_t n = sizeof(MG_RESERVED_PREFIX) - 1; /* "mintgate:": one 8-byte load and a byte */
    uint64_t head, want;
    if (MG_LIKELY(bk.len < n))
        return false;
    memcpy(&head, bk.p, 8);
    memcpy(&want, MG_RESERVED_PREFIX, 8);
    if (MG_LIKELY(head != want) || bk.p[8] != MG_RESERVED_PREFIX[8])
        return false;
    return r->c != NULL && !r->c->trusted;
}

/* A read: what a replicated route serves from one replica. */
static inline bool is_read(enum mg_cmd cmd)
{
    return is_retrieval(cmd) || cmd == MG_CMD_MG || cmd == MG_CMD_ME;
}

static uint32_t replica_for_read(struct request *r, const struct pool *rp, struct mg_slice place,
                                 bool b64);

/* Resolve key k for op: the pool (pool_idx, or the prefix table when RES_TABLE), the
 * backend key (lkey when the resolver gave one, else the pool's key style), the backend by ketama
 * over the backend key. For a base64 meta key (b64), place holds its decoded bytes: routing, the
 * transform and placement work on them as on any key, and the result is encoded again for the
 * backend, so the b flag reaches no key outside the client's namespace. Returns MG_OK, or fails op
 * and returns MG_ERR. */
static int target_of(struct request *r, struct op *op, struct mg_slice k, struct mg_slice place,
                     bool b64, int pool_idx, int policy_idx, struct mg_slice lkey,
                     struct target *tg)
{
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    const struct pool *p;
    tg->b = NULL;
    if (MG_UNLIKELY(w->tearing_down)) {
        op_fail(op, OP_FAIL_ERROR, "SERVER_ERROR gateway shutting down");
        return MG_ERR;
    }
    if (pool_idx >= 0) {
        p = &cfg->pools[pool_idx];
        tg->pol = p->stale;
    } else {
        p = config_route(cfg, place.p, place.len, &tg->pol);
    }
    op->pool = (int)p->id;
    if (policy_idx >= 0 && (uint32_t)policy_idx < cfg->nnamed) { /* chosen per request */
        const struct stale_policy *np = &cfg->named[policy_idx].pol;
        tg->pol = np->off ? NULL : np;
    }
    tg->ttl_cap = 0;
    if (MG_UNLIKELY(p->kind != POOL_SERVERS)) {
        if (op->route < 0) {
            op->route = (int)p->id;
            op->child = 0;
            ROUTE_COUNT(w, op->route, requests);
            if (p->kind == POOL_REPLICATE && is_read(r->cmd))
                op->child = replica_for_read(r, p, place, b64);
        }
        if (p->kind == POOL_FAILOVER && op->child > 0)
            tg->ttl_cap = p->fo_ttl;
        if (p->kind == POOL_WARMUP)
            tg->pol = NULL;                      /* a herd win on cold would hide warm's value */
        p = &cfg->pools[p->children[op->child]]; /* the route's (or entry's) policy stays */
        op->pool = (int)p->id;
    }
    struct mg_slice bk = place;
    if (lkey.len) {
        if (b64 ? lkey.len > MG_KEY_MAX : !mg_text_key_ok(lkey.p, lkey.len))
            goto bad_key;
        bk = lkey;
    } else if (p->keys) {
        int n = keys_apply_bytes(p->keys, place.p, place.len, b64, tg->kbuf, sizeof(tg->kbuf));
        if (n < 0)
            goto bad_key;
        bk = (struct mg_slice){ tg->kbuf, (uint32_t)n };
    }
    if (bk.len > MG_KEY_MAX) /* a long client key that no style hashed */
        goto bad_key;
    if (MG_UNLIKELY(key_reserved(r, bk))) {
        op_fail(op, OP_FAIL_CLIENT, "CLIENT_ERROR key is in the gateway's reserved namespace");
        return MG_ERR;
    }
    tg->bkey = bk.p;
    tg->bklen = bk.len;
    tg->plain = bk;
    if (b64) {
        int n = b64_ntop((const unsigned char *)bk.p, bk.len, tg->ebuf, sizeof(tg->ebuf));
        if (n <= 0 || n > MG_KEY_MAX) /* memcached limits the encoded key */
            goto bad_key;
        tg->bkey = tg->ebuf;
        tg->bklen = (uint32_t)n;
    }
    op->rekey = tg->bklen != k.len || (tg->bkey != k.p && memcmp(tg->bkey, k.p, k.len) != 0);
    tg->b = worker_pick(w, p, bk.p, bk.len);
    if (MG_UNLIKELY(!backend_usable(tg->b))) {
        op_fail(op, OP_FAIL_DOWN, "SERVER_ERROR backend down");
        return MG_ERR;
    }
    if (MG_UNLIKELY(tg->b->nq >= tg->b->opts.max_inflight)) {
        STAT_INC(tg->b->st.busy);
        op_fail(op, OP_FAIL_ERROR, "SERVER_ERROR backend busy");
        return MG_ERR;
    }
    return MG_OK;
bad_key:
    op_fail(op, OP_FAIL_CLIENT, "CLIENT_ERROR bad command line format");
    return MG_ERR;
}

/* Keep the backend key on op for herd bookkeeping that outlives the parse. */
static bool op_keep_key(struct op *op, const char *key, size_t klen)
{
    op->key.off = op->key.len = 0;
    return buf_append(&op->key, key, klen) == MG_OK;
}

/* A TTL (memcached's: 0 never expires, over 30 days an absolute time, negative already
 * expired) capped at cap seconds; cap 0: as is. */
static int64_t cap_ttl(int64_t ttl, uint32_t cap)
{
    if (MG_LIKELY(cap == 0) || ttl < 0)
        return ttl;
    if (ttl > 2592000) { /* absolute: what is left of it */
        int64_t left = ttl - (int64_t)time(NULL);
        return left > 0 && left <= (int64_t)cap ? ttl : left > 0 ? (int64_t)cap : ttl;
    }
    return ttl == 0 || ttl > (int64_t)cap ? (int64_t)cap : ttl;
}

static MG_ALWAYS_INLINE void send_retrieval(struct request *r, struct op *op,
                                            const struct mg_text_req *t, struct mg_slice k,
                                            struct target *tg)
{
    struct worker *w = r->w;
    bool cas = t->cmd == MG_CMD_GETS || t->cmd == MG_CMD_GATS;
    bool touch = t->cmd == MG_CMD_GAT || t->cmd == MG_CMD_GATS;
    struct backend *b = tg->b;
    if (buf_reserve(&b->wbuf, tg->bklen + META_EXTRA) != MG_OK ||
        buf_reserve(&op->out, k.len + 48) != MG_OK) {
        op_fail(op, OP_FAIL_ERROR, "SERVER_ERROR out of memory");
        return;
    }
    buf_put(&op->out, "VALUE ", 6);
    buf_put(&op->out, k.p, k.len);
    op->out.data[op->out.len++] = ' ';
    struct buf *wb = &b->wbuf;
    if (tg->pol && !touch && op_keep_key(op, tg->bkey, tg->bklen)) {
        op->pol = tg->pol;
        op->be = b;
        if (tg->pol->coalesce && herd_follow(w, op))
            return; /* answered with the identical get already on the wire */
        meta_render_herd_get(wb, tg->bkey, tg->bklen, tg->pol->grace);
        backend_push(b, op);
        if (tg->pol->coalesce)
            herd_lead(w, op);
        return;
    }
    /* gat/gats: a plain read, but the new TTL gets the grace like touch */
    meta_render_get(wb, tg->bkey, tg->bklen, cas, touch,
                    touch ? herd_store_ttl(cap_ttl(t->exptime, tg->ttl_cap), tg->pol) : 0,
                    op->route >= 0 && op->child > 0); /* a warm-up's fill takes warm's TTL */
    backend_push(b, op);
}

static MG_ALWAYS_INLINE void send_storage(struct request *r, struct op *op,
                                          const struct mg_text_req *t, struct target *tg)
{
    static const enum meta_mode modes[] = {
        [MG_CMD_SET] = META_SET,         [MG_CMD_ADD] = META_ADD,
        [MG_CMD_REPLACE] = META_REPLACE, [MG_CMD_APPEND] = META_APPEND,
        [MG_CMD_PREPEND] = META_PREPEND, [MG_CMD_CAS] = META_SET,
    };
    MG_UNUSED(r);
    struct buf *wb = &tg->b->wbuf;
    /* a failover's later pool caps the nominal TTL; a staleness policy's grace follows */
    int64_t ttl = cap_ttl(t->exptime, tg->ttl_cap);
    /* append/prepend/cas bypass the herd logic (they keep the item's TTL or are
     * compare-and-swap by the client); set/add/replace get the grace period */
    if (tg->pol && (t->cmd == MG_CMD_SET || t->cmd == MG_CMD_ADD || t->cmd == MG_CMD_REPLACE)) {
        ttl = herd_store_ttl(ttl, tg->pol);
        if (op_keep_key(op, tg->bkey, tg->bklen))
            op->pol = tg->pol; /* so a STORED wakes local waiters */
    }
    if (buf_reserve(wb, tg->bklen + t->data.len + META_EXTRA) != MG_OK) {
        op_fail(op, OP_FAIL_ERROR, "SERVER_ERROR out of memory");
        return;
    }
    meta_render_store(wb, tg->bkey, tg->bklen, t->data, t->flags, ttl, modes[t->cmd],
                      t->cmd == MG_CMD_CAS, t->cas);
    backend_push(tg->b, op);
}

/* delete, incr, decr, touch */
static MG_ALWAYS_INLINE void send_keyed(struct request *r, struct op *op,
                                        const struct mg_text_req *t, struct target *tg)
{
    struct buf *wb = &tg->b->wbuf;
    if (buf_reserve(wb, tg->bklen + META_EXTRA) != MG_OK) {
        op_fail(op, OP_FAIL_ERROR, "SERVER_ERROR out of memory");
        return;
    }
    if (t->cmd == MG_CMD_TOUCH) {
        meta_render_touch(wb, tg->bkey, tg->bklen,
                          herd_store_ttl(cap_ttl(t->exptime, tg->ttl_cap), tg->pol));
    } else if (t->cmd == MG_CMD_DELETE && tg->pol && tg->pol->mark_stale) {
        /* fill on invalidate: the next reader refreshes, the rest get stale */
        meta_render_invalidate(wb, tg->bkey, tg->bklen, tg->pol->grace, false, 0);
        HERD_COUNT(r->w, op->pool, marked_stale);
    } else if (t->cmd == MG_CMD_DELETE) {
        meta_render_delete(wb, tg->bkey, tg->bklen);
    } else {
        meta_render_arith(wb, tg->bkey, tg->bklen, t->cmd == MG_CMD_DECR, t->delta);
    }
    backend_push(tg->b, op);
}

/* mg/ms/md/ma/me: forwarded with their flags; q is kept here (hidden replies are dropped
 * by the gateway) so every backend request has exactly one reply to match. */
static MG_ALWAYS_INLINE void send_meta(struct request *r, struct op *op,
                                       const struct mg_text_req *t, struct target *tg)
{
    static const char *names[] = {
        [MG_CMD_MG] = "mg ", [MG_CMD_MS] = "ms ", [MG_CMD_MD] = "md ",
        [MG_CMD_MA] = "ma ", [MG_CMD_ME] = "me ",
    };
    struct buf *wb = &tg->b->wbuf;
    if (buf_reserve(wb, tg->bklen + t->args.len + t->data.len + META_EXTRA) != MG_OK) {
        op_fail(op, OP_FAIL_ERROR, "SERVER_ERROR out of memory");
        return;
    }
    r->quiet = t->quiet;
    meta_render_forward(wb, names[t->cmd], tg->bkey, tg->bklen, t->args, t->data,
                        t->cmd == MG_CMD_MS, op->add_k, t->cmd == MG_CMD_MS ? tg->ttl_cap : 0);
    backend_push(tg->b, op);
}

/* Send op for key k once its target is known. Inlined: the per-key hot path (dispatch_keys)
 * lost ~50 instructions per get when a second caller (redispatch) made it a call. */
static MG_ALWAYS_INLINE void send_op(struct request *r, struct op *op, const struct mg_text_req *t,
                                     struct mg_slice k, struct target *tg)
{
    if (tg->pol && !is_retrieval(t->cmd) && t->cmd != MG_CMD_MG && t->cmd != MG_CMD_ME)
        herd_on_write(r->w, r->c, tg->b, tg->plain.p, tg->plain.len);
    if (MG_UNLIKELY(op->route >= 0) && op->child > 0 && !is_retrieval(t->cmd) &&
        t->cmd != MG_CMD_MG && t->cmd != MG_CMD_ME)
        ROUTE_COUNT(r->w, op->route, fallback_writes);
    switch (t->cmd) {
    case MG_CMD_GET:
    case MG_CMD_GETS:
    case MG_CMD_GAT:
    case MG_CMD_GATS:
        send_retrieval(r, op, t, k, tg);
        break;
    case MG_CMD_SET:
    case MG_CMD_ADD:
    case MG_CMD_REPLACE:
    case MG_CMD_APPEND:
    case MG_CMD_PREPEND:
    case MG_CMD_CAS:
        send_storage(r, op, t, tg);
        break;
    case MG_CMD_DELETE:
    case MG_CMD_INCR:
    case MG_CMD_DECR:
    case MG_CMD_TOUCH:
        send_keyed(r, op, t, tg);
        break;
    default:
        send_meta(r, op, t, tg);
        break;
    }
}

/* A key as a route's child pool p stores it: its backend (*b), and the key as sent (in
 * kbuf or ebuf, base64 again for a b-flag key). where: the key's placement bytes. Returns
 * false when p's key style refuses it or it is one of the gateway's own keys. */
struct child_key {
    struct backend *b;
    const char *key;
    size_t klen;
    char kbuf[MG_KEY_MAX + 1];
    char ebuf[B64_LEN(MG_KEY_MAX) + 1];
};

static bool child_key(struct request *r, const struct pool *p, struct mg_slice where, bool b64,
                      struct child_key *ck)
{
    struct mg_slice bk = where;
    if (p->keys) {
        int n = keys_apply_bytes(p->keys, where.p, where.len, b64, ck->kbuf, sizeof(ck->kbuf));
        if (n < 0)
            return false;
        bk = (struct mg_slice){ ck->kbuf, (uint32_t)n };
    }
    if (bk.len > MG_KEY_MAX || key_reserved(r, bk))
        return false;
    ck->key = bk.p;
    ck->klen = bk.len;
    if (b64) {
        int n = b64_ntop((const unsigned char *)bk.p, bk.len, ck->ebuf, sizeof(ck->ebuf));
        if (n <= 0 || n > MG_KEY_MAX)
            return false;
        ck->key = ck->ebuf;
        ck->klen = (size_t)n;
    }
    ck->b = worker_pick(r->w, p, bk.p, bk.len);
    return true;
}

/* A delete through a route reaches every child, not only the one that answers the
 * client: each other child gets an md of its own (fire and forget; a child that is down
 * is counted as skipped). where: the key's placement bytes. */
static void delete_on_children(struct request *r, struct op *op, const struct mg_text_req *t,
                               struct mg_slice where)
{
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    const struct pool *fo = &cfg->pools[op->route];
    for (uint32_t i = 0; i < fo->nchildren; i++) {
        struct child_key ck;
        if (i == op->child || !child_key(r, &cfg->pools[fo->children[i]], where, t->b64, &ck))
            continue;
        enum op_fail why;
        struct request *ir = request_one(w, ck.b, ck.klen + 2, NULL, NULL, &why);
        if (ir == NULL) {
            ROUTE_COUNT(w, op->route, deletes_skipped);
            continue;
        }
        meta_key(&ck.b->wbuf, "md ", ck.key, ck.klen);
        if (t->b64)
            buf_put(&ck.b->wbuf, " b", 2);
        meta_end(&ck.b->wbuf);
        request_one_send(ir);
    }
}

/* A route's copy of command t for another pool's backend (ck): reads as a plain mg, the
 * rest as the client sent it (cas as a set: the copy has its own cas values). */
static void render_copy(struct buf *wb, const struct mg_text_req *t, const struct child_key *ck,
                        bool drop_k)
{
    static const enum meta_mode modes[] = {
        [MG_CMD_SET] = META_SET,         [MG_CMD_ADD] = META_ADD,
        [MG_CMD_REPLACE] = META_REPLACE, [MG_CMD_APPEND] = META_APPEND,
        [MG_CMD_PREPEND] = META_PREPEND, [MG_CMD_CAS] = META_SET,
    };
    static const char *names[] = {
        [MG_CMD_MG] = "mg ",
        [MG_CMD_MS] = "ms ",
        [MG_CMD_MD] = "md ",
        [MG_CMD_MA] = "ma ",
    };
    switch (t->cmd) {
    case MG_CMD_GET:
    case MG_CMD_GETS:
    case MG_CMD_GAT:
    case MG_CMD_GATS:
        meta_render_get(wb, ck->key, ck->klen, false, false, 0, false);
        break;
    case MG_CMD_DELETE:
        meta_render_delete(wb, ck->key, ck->klen);
        break;
    case MG_CMD_INCR:
    case MG_CMD_DECR:
        meta_render_arith(wb, ck->key, ck->klen, t->cmd == MG_CMD_DECR, t->delta);
        break;
    case MG_CMD_TOUCH:
        meta_render_touch(wb, ck->key, ck->klen, t->exptime);
        break;
    case MG_CMD_MG:
    case MG_CMD_MS:
    case MG_CMD_MD:
    case MG_CMD_MA:
        meta_render_forward(wb, names[t->cmd], ck->key, ck->klen, t->args, t->data,
                            t->cmd == MG_CMD_MS, drop_k, 0);
        break;
    default:
        meta_render_store(wb, ck->key, ck->klen, t->data, t->flags, t->exptime, modes[t->cmd],
                          false, 0);
        break;
    }
}

/* A shadow route's copy of a command, and for a read the comparison of both answers: each
 * side settles once (its reply, or a failure); the second one compares. */
struct shadow_read {
    struct worker *w;
    int route;
    int pending;  /* sides still to answer */
    bool compare; /* a classic read: count a mismatch */
    bool failed;  /* a side failed: nothing to compare */
    bool hit[2];  /* main, copy */
    uint64_t hash[2];
};

/* FNV-1a over a value and its client flags. */
static uint64_t shadow_hash(const struct mg_meta_reply *rep)
{
    uint64_t h = 1469598103934665603ull;
    struct mg_slice f;
    if (mg_meta_flag(rep->flags, 'f', &f))
        for (uint32_t i = 0; i < f.len; i++)
            h = (h ^ (unsigned char)f.p[i]) * 1099511628211ull;
    h = (h ^ '|') * 1099511628211ull;
    for (uint32_t i = 0; i < rep->data.len; i++)
        h = (h ^ (unsigned char)rep->data.p[i]) * 1099511628211ull;
    return h;
}

static void shadow_side(struct shadow_read *s, int side, const struct mg_meta_reply *rep)
{
    if (rep == NULL || (rep->status != MG_R_VA && rep->status != MG_R_EN)) {
        s->failed = true;
    } else {
        s->hit[side] = rep->status == MG_R_VA;
        s->hash[side] = s->hit[side] ? shadow_hash(rep) : 0;
    }
    if (--s->pending > 0)
        return;
    if (s->compare && !s->failed && (s->hit[0] != s->hit[1] || s->hash[0] != s->hash[1]))
        ROUTE_COUNT(s->w, s->route, shadow_mismatches);
    free(s);
}

void dispatch_shadow_main(struct op *op, const struct mg_meta_reply *rep)
{
    struct shadow_read *s = op->shadow;
    op->shadow = NULL;
    shadow_side(s, 0, rep);
}

static void shadow_copy_done(struct request *ir)
{
    struct shadow_read *s = ir->udata;
    struct op *o = &ir->ops[0];
    struct mg_meta_reply rep;
    size_t used;
    bool ok = o->fail == OP_FAIL_NONE &&
              mg_meta_parse_reply(buf_head(&o->out), buf_unread(&o->out), UINT32_MAX, &rep,
                                  &used) == MG_OK &&
              rep.status != MG_R_ERROR && rep.status != MG_R_CLIENT_ERROR &&
              rep.status != MG_R_SERVER_ERROR;
    if (!ok)
        ROUTE_COUNT(s->w, s->route, shadow_errors);
    if (s->compare)
        shadow_side(s, 1, ok ? &rep : NULL);
    else
        free(s);
    request_release(ir);
}

/* Send a copy of op's command (t) to the shadow route's copy pool when its switch has
 * the key on. Never delays or changes the client's answer. where: placement bytes. */
static void shadow_copy(struct request *r, struct op *op, const struct mg_text_req *t,
                        struct mg_slice where)
{
    struct worker *w = r->w;
    const struct pool *sh = &w->cfg->pools[op->route];
    struct child_key ck;
    if (t->cmd == MG_CMD_ME || !switch_on(sh->shadow_switch, where.p, where.len) ||
        !child_key(r, &w->cfg->pools[sh->children[1]], where, t->b64, &ck))
        return;
    struct shadow_read *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return;
    s->w = w;
    s->route = op->route;
    s->pending = 1;
    /* a classic read still waiting for its own answer, with no herd bookkeeping: compare */
    if (is_retrieval(t->cmd) && op->be && op->pol == NULL && op->fail == OP_FAIL_NONE &&
        op->status == MG_R_NONE) {
        s->compare = true;
        s->pending = 2;
        op->shadow = s;
    }
    enum op_fail why;
    struct request *ir =
        request_one(w, ck.b, ck.klen + t->data.len + t->args.len + 64, shadow_copy_done, s, &why);
    ROUTE_COUNT(w, s->route, shadow_copies);
    if (ir == NULL) {
        ROUTE_COUNT(w, s->route, shadow_errors);
        if (s->compare) {
            op->shadow = NULL;
            s->pending = 1;
            s->failed = true;
        }
        free(s);
        return;
    }
    render_copy(&ck.b->wbuf, t, &ck, op->add_k);
    request_one_send(ir);
}

/* --- replicated routes -------------------------------------------------------------------- */

/* A replicated write: the client's op (the first replica's) waits until `need` answers
 * are in, its own included, then gets the worst of them. */
struct repl_write {
    struct op *op; /* the client's op until it is answered (NULL: not waited for) */
    struct worker *w;
    int route;
    uint32_t n;       /* replicas */
    uint32_t need;    /* all: n; majority: n / 2 + 1; async: 1 */
    uint32_t ok, bad; /* answers in that did the write, that did not (the op's included) */
    uint32_t left;    /* replica copies not back yet */
    int worst_rank;   /* the worst replica answer so far: 0 none, 2 not done, 3 failed */
    char worst[128];  /* its line for the client (no \r\n) */
    uint32_t worst_len;
    bool op_in;     /* the op's own answer is in (held in op->out) */
    bool is_delete; /* a delete: one a replica misses is replayed later */
    bool b64;       /* its key is sent with the b flag */
    bool majority;
    struct repl_write *next_free; /* on the worker's cache */
};

/* repl_write objects come from a small per-worker cache: no malloc per replicated write. */
#define REPL_CACHE_MAX 256

static struct repl_write *repl_get(struct worker *w)
{
#ifndef MG_SANITIZE
    struct repl_write *rw = w->repl_free;
    if (rw) {
        w->repl_free = rw->next_free;
        w->nrepl_free--;
        memset(rw, 0, sizeof(*rw));
        return rw;
    }
#else
    MG_UNUSED(w);
#endif
    return calloc(1, sizeof(struct repl_write));
}

static void repl_put(struct repl_write *rw)
{
#ifndef MG_SANITIZE
    struct worker *w = rw->w;
    if (w->nrepl_free < REPL_CACHE_MAX) {
        rw->next_free = w->repl_free;
        w->repl_free = rw;
        w->nrepl_free++;
        return;
    }
#endif
    free(rw);
}

void dispatch_worker_destroy(struct worker *w)
{
    while (w->repl_free) {
        struct repl_write *rw = w->repl_free;
        w->repl_free = rw->next_free;
        free(rw);
    }
    w->nrepl_free = 0;
}

/* How bad an answer is for a write: 1 done, 2 not done (NS, EX, NF, EN), 3 failed. */
static int write_rank(enum mg_rstatus s, bool failed)
{
    if (failed)
        return 3;
    switch (s) {
    case MG_R_HD:
    case MG_R_VA:
    case MG_R_OK:
        return 1;
    case MG_R_NS:
    case MG_R_EX:
    case MG_R_NF:
    case MG_R_EN:
        return 2;
    default:
        return 3;
    }
}

/* A replica's meta answer as the client's command would have it. */
static void repl_client_line(struct repl_write *rw, enum mg_cmd cmd,
                             const struct mg_meta_reply *rep, const struct buf *failed)
{
    const char *l;
    size_t n;
    if (failed) {
        l = buf_head(failed);
        n = buf_unread(failed);
        while (n && (l[n - 1] == '\n' || l[n - 1] == '\r'))
            n--;
    } else if (cmd >= MG_CMD_MG || rep->status >= MG_R_ERROR) {
        l = rep->line.p;
        n = rep->line.len;
    } else {
        l = rep->status == MG_R_NS   ? "NOT_STORED"
            : rep->status == MG_R_EX ? "EXISTS"
            : rep->status == MG_R_NF || rep->status == MG_R_EN
                ? "NOT_FOUND"
                : "SERVER_ERROR unexpected backend reply";
        n = strlen(l);
    }
    if (n > sizeof(rw->worst))
        n = sizeof(rw->worst);
    memcpy(rw->worst, l, n);
    rw->worst_len = (uint32_t)n;
}

/* Can the client's op answer? all: every replica answered; majority: a majority did the
 * write, or can no longer; async: its own answer is enough. */
static bool repl_ready(const struct repl_write *rw)
{
    if (!rw->op_in)
        return false;
    if (rw->majority)
        return rw->ok >= rw->need || rw->bad > rw->n - rw->need;
    return rw->ok + rw->bad >= rw->need;
}

/* The client's op answers: with its own answer, unless the replicas it waited for make the
 * write worse (all: the worst answer; majority: the worst when no majority did it). */
static void repl_apply(struct repl_write *rw, struct op *op)
{
    int own = write_rank(op->status, op->fail != OP_FAIL_NONE);
    bool use_worst = rw->majority ? rw->ok < rw->need : rw->worst_rank > own;
    if (use_worst && rw->worst_rank > 0) {
        op->out.off = op->out.len = 0;
        put_line(&op->out, rw->worst, rw->worst_len);
    } else if (rw->majority && own > 1 && rw->ok >= rw->need) {
        /* a majority did it, this replica did not: the majority's answer */
        enum mg_cmd cmd = op->req->cmd;
        const char *l = cmd >= MG_CMD_MG                           ? "HD"
                        : cmd == MG_CMD_DELETE                     ? "DELETED"
                        : cmd == MG_CMD_TOUCH                      ? "TOUCHED"
                        : cmd == MG_CMD_INCR || cmd == MG_CMD_DECR ? NULL
                                                                   : "STORED";
        if (l) {
            op->out.off = op->out.len = 0;
            put_line(&op->out, l, strlen(l));
        }
    }
}

static void repl_release(struct repl_write *rw)
{
    struct op *op = rw->op;
    repl_apply(rw, op);
    op->repl = NULL;
    rw->op = NULL;
}

static void repl_maybe_free(struct repl_write *rw)
{
    if (rw->op == NULL && rw->left == 0)
        repl_put(rw);
}

bool dispatch_repl_hold(struct op *op)
{
    struct repl_write *rw = op->repl;
    rw->op_in = true;
    if (write_rank(op->status, op->fail != OP_FAIL_NONE) == 1)
        rw->ok++;
    else
        rw->bad++;
    if (!repl_ready(rw))
        return true; /* held: the replica that makes it ready finishes it */
    repl_release(rw);
    repl_maybe_free(rw);
    return false;
}

/* Keep a delete a replica missed (h: its server); counted on the route. */
static void repl_missed(struct repl_write *rw, struct health *h, const char *key, size_t klen,
                        bool b64)
{
    if (health_replay_push(h, key, klen, b64))
        ROUTE_COUNT(rw->w, rw->route, replays_queued);
    else
        ROUTE_COUNT(rw->w, rw->route, replays_dropped);
}

/* A replica's copy is back (ir->udata: its write; a delete's key as that replica stores
 * it is in ir->raw). */
static void repl_done(struct request *ir)
{
    struct repl_write *rw = ir->udata;
    struct op *o = &ir->ops[0];
    bool failed = o->fail != OP_FAIL_NONE;
    int rank = write_rank(o->status, failed);
    if (rank == 3)
        ROUTE_COUNT(rw->w, rw->route, replica_errors);
    if (rw->is_delete && failed && o->be)
        repl_missed(rw, o->be->health, buf_head(&ir->raw), buf_unread(&ir->raw), rw->b64);
    rw->left--;
    if (rw->op) {
        if (rank == 1)
            rw->ok++;
        else
            rw->bad++;
        if (rank > 1 && rank > rw->worst_rank) {
            struct mg_meta_reply rep;
            size_t used;
            bool parsed = !failed && mg_meta_parse_reply(buf_head(&o->out), buf_unread(&o->out),
                                                         UINT32_MAX, &rep, &used) == MG_OK;
            rw->worst_rank = rank;
            repl_client_line(rw, rw->op->req->cmd, parsed ? &rep : NULL, parsed ? NULL : &o->out);
        }
        if (repl_ready(rw)) {
            struct op *op = rw->op;
            repl_release(rw);
            op_finish(op);
        }
    }
    repl_maybe_free(rw);
    request_release(ir);
}

/* A write (or delete) through a replicated route: op goes to the first replica (tg, sent
 * when sent is true); each other replica gets its own copy. The client's answer waits for
 * `writes`' share of them and is the worst. where: the key's placement bytes. */
static void replicate_write(struct request *r, struct op *op, const struct mg_text_req *t,
                            struct mg_slice where, bool sent, const struct target *tg)
{
    struct worker *w = r->w;
    const struct pool *rp = &w->cfg->pools[op->route];
    struct repl_write *rw = repl_get(w);
    if (rw == NULL)
        return;
    rw->w = w;
    rw->route = op->route;
    rw->is_delete = t->cmd == MG_CMD_DELETE || t->cmd == MG_CMD_MD;
    rw->b64 = t->b64;
    uint32_t n = rp->nchildren;
    rw->n = n;
    rw->majority = rp->rep_writes == REP_WRITES_MAJORITY;
    rw->need = rp->rep_writes == REP_WRITES_ALL        ? n
               : rp->rep_writes == REP_WRITES_MAJORITY ? n / 2 + 1
                                                       : 1;
    if (rw->is_delete && !sent && tg->b && (op->fail == OP_FAIL_DOWN))
        repl_missed(rw, tg->b->health, tg->bkey, tg->bklen, t->b64); /* the first replica's */
    if (sent && rp->rep_writes != REP_WRITES_ASYNC) {
        rw->op = op; /* dispatch_repl_hold decides when it answers */
        op->repl = rw;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct child_key ck;
        if (i == op->child || !child_key(r, &w->cfg->pools[rp->children[i]], where, t->b64, &ck))
            continue;
        enum op_fail why;
        struct request *ir =
            request_one(w, ck.b, ck.klen + t->data.len + t->args.len + 64, repl_done, rw, &why);
        if (ir == NULL) { /* that replica is down (or no memory): its answer is a failure */
            ROUTE_COUNT(w, rw->route, replica_errors);
            if (rw->is_delete && why == OP_FAIL_DOWN)
                repl_missed(rw, ck.b->health, ck.key, ck.klen, t->b64);
            if (rw->op) {
                rw->bad++;
                if (rw->worst_rank < 3) {
                    rw->worst_rank = 3;
                    static const char down[] = "SERVER_ERROR backend down";
                    memcpy(rw->worst, down, sizeof(down) - 1);
                    rw->worst_len = sizeof(down) - 1;
                }
            }
            continue;
        }
        if (rw->is_delete && buf_append(&ir->raw, ck.key, ck.klen) != MG_OK)
            buf_reset(&ir->raw, 0); /* no replay for it then */
        rw->left++;
        render_copy(&ck.b->wbuf, t, &ck, op->add_k);
        request_one_send(ir);
    }
    repl_maybe_free(rw);
}

/* Replayed deletes: each answered one lets its server serve reads again. */
struct replay_sent {
    struct health *h;
    bool b64;
    uint16_t klen;
    char key[];
};

static void replay_done(struct request *ir)
{
    struct replay_sent *rs = ir->udata;
    if (ir->ops[0].fail != OP_FAIL_NONE) /* still not there: keep it */
        health_replay_push(rs->h, rs->key, rs->klen, rs->b64);
    atomic_fetch_sub(&rs->h->replay_inflight, 1);
    free(rs);
    request_release(ir);
}

void dispatch_replay(struct worker *w, struct backend *b)
{
    if (!backend_usable(b))
        return;
    struct health_replay *list = health_replay_take(b->health);
    while (list) {
        char key[MG_KEY_MAX + 1];
        size_t klen;
        bool b64;
        list = health_replay_next(list, key, &klen, &b64);
        struct replay_sent *rs = malloc(sizeof(*rs) + klen);
        struct backend *c = backend_conn(b, key, klen);
        enum op_fail why;
        struct request *ir = rs ? request_one(w, c, klen + 4, replay_done, rs, &why) : NULL;
        if (ir == NULL) {
            health_replay_push(b->health, key, klen, b64);
            free(rs);
            continue;
        }
        rs->h = b->health;
        rs->b64 = b64;
        rs->klen = (uint16_t)klen;
        memcpy(rs->key, key, klen);
        atomic_fetch_add(&b->health->replay_inflight, 1);
        meta_key(&c->wbuf, "md ", key, klen);
        if (b64)
            buf_put(&c->wbuf, " b", 2);
        meta_end(&c->wbuf);
        request_one_send(ir);
    }
}

static uint32_t replica_for_read(struct request *r, const struct pool *rp, struct mg_slice place,
                                 bool b64)
{
    static _Thread_local uint64_t rng = 0x9e3779b97f4a7c15ull;
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    uint32_t n = rp->nchildren, pick = 0;
    if (rp->rep_reads == REP_READS_RANDOM) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        pick = (uint32_t)(rng % n);
    } else if (rp->rep_reads == REP_READS_FASTEST) {
        double best = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t c = rp->children[i];
            double e = c < w->npool_herd ? w->pool_herd[c].lat_ewma_us : 0;
            if (i == 0 || e < best) {
                best = e;
                pick = i;
            }
        }
    }
    /* a replica that missed deletes serves no reads until they are replayed */
    for (uint32_t k = 0; k < n; k++) {
        uint32_t c = (pick + k) % n;
        struct child_key ck;
        if (!child_key(r, &cfg->pools[rp->children[c]], place, b64, &ck))
            return pick;
        if (!health_replaying(ck.b->health))
            return c;
        dispatch_replay(w, ck.b); /* now, if it is up: the next read may use it again */
    }
    return pick;
}

void dispatch_warm_fill(struct op *op, const struct mg_meta_reply *rep)
{
    struct request *r = op->req;
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    const struct mg_text_req *t = &r->t;
    if (r->cfg != cfg || !r->own_copy || t->b64)
        return;
    const struct pool *wu = &cfg->pools[op->route];
    struct mg_slice where = op->ckey, v;
    struct child_key ck;
    if (wu->kind != POOL_WARMUP || op->child != 1 ||
        !child_key(r, &cfg->pools[wu->children[0]], where, false, &ck))
        return;
    int64_t ttl = wu->fo_ttl; /* warm's remaining TTL when it has one */
    uint64_t flags = 0;
    if (mg_meta_flag(rep->flags, 't', &v) && v.len && v.p[0] != '-') {
        int64_t left = 0;
        for (uint32_t i = 0; i < v.len && v.p[i] >= '0' && v.p[i] <= '9'; i++)
            left = left * 10 + (v.p[i] - '0');
        if (left > 0)
            ttl = left;
    }
    if (mg_meta_flag(rep->flags, 'f', &v))
        for (uint32_t i = 0; i < v.len && v.p[i] >= '0' && v.p[i] <= '9' && i < 10; i++)
            flags = flags * 10 + (uint64_t)(v.p[i] - '0');
    enum op_fail why;
    struct request *ir = request_one(w, ck.b, ck.klen + rep->data.len + 64, NULL, NULL, &why);
    if (ir == NULL)
        return;
    /* add: a value written to cold meanwhile wins */
    meta_render_store(&ck.b->wbuf, ck.key, ck.klen, rep->data, (uint32_t)flags, ttl, META_ADD,
                      false, 0);
    request_one_send(ir);
    ROUTE_COUNT(w, op->route, fills);
}

/* Count a command once, whichever path it takes. */
static void count_command(struct worker *w, const struct mg_text_req *t)
{
    switch (t->cmd) {
    case MG_CMD_GET:
    case MG_CMD_GETS:
        STAT_ADD(w->st.cmd_get, t->nkeys);
        break;
    case MG_CMD_GAT:
    case MG_CMD_GATS:
        STAT_ADD(w->st.cmd_get, t->nkeys);
        STAT_ADD(w->st.cmd_touch, t->nkeys);
        break;
    case MG_CMD_TOUCH:
        STAT_INC(w->st.cmd_touch);
        break;
    case MG_CMD_MG:
    case MG_CMD_MS:
    case MG_CMD_MD:
    case MG_CMD_MA:
    case MG_CMD_ME:
        STAT_INC(w->st.cmd_meta);
        break;
    default:
        if (t->cmd >= MG_CMD_SET && t->cmd <= MG_CMD_CAS)
            STAT_INC(w->st.cmd_set);
        break;
    }
}

/* Take the request's next key for op: the next token of a retrieval's keys, else the key.
 * Returns false when there is none (the parser counted otherwise: never leave it hanging). */
static bool next_key(struct request *r, const struct mg_text_req *t, struct op *op)
{
    struct mg_slice k;
    if (is_retrieval(t->cmd)) {
        if (!mg_text_next_token(t->keys, &r->keypos, &k))
            return false;
    } else {
        k = t->key;
    }
    op->ckey = k;
    return true;
}

/* The bytes that name key k: k itself, or for a base64 meta key (b flag) what it
 * decodes to (into dec, MG_KEY_MAX + 1 bytes), as memcached stores it. Returns NULL, or
 * the error line when the key is longer than memcached takes or the base64 is bad. */
static const char *placement_key(const struct mg_text_req *t, struct mg_slice k,
                                 struct mg_slice *where, unsigned char *dec)
{
    *where = k;
    if (!t->b64)
        return NULL;
    if (k.len > MG_KEY_MAX) /* a long-key style raised the parser's limit */
        return "CLIENT_ERROR bad command line format";
    char enc[MG_KEY_MAX + 1];
    memcpy(enc, k.p, k.len);
    enc[k.len] = '\0';
    int n = b64_pton(enc, dec, MG_KEY_MAX + 1);
    if (n <= 0)
        return "CLIENT_ERROR error decoding key";
    *where = (struct mg_slice){ (const char *)dec, (uint32_t)n };
    return NULL;
}

static void request_end_dispatch(struct request *r)
{
    if (--r->pending == 0)
        request_complete(r);
}

/* Keys a batch resolution takes at most. */
#define RES_BATCH_MAX 64

/* Multi-key classic reads resolve their keys through the plug-in in batches (for Lua: one
 * coroutine turn for up to RES_BATCH_MAX keys) when more than one key is left. */
static bool batchable(const struct request *r, const struct mg_text_req *t)
{
    return r->nops - r->next_key > 1 && (t->cmd == MG_CMD_GET || t->cmd == MG_CMD_GETS ||
                                         t->cmd == MG_CMD_GAT || t->cmd == MG_CMD_GATS);
}

/* Parse the keys of the next batch (from r->next_key on) into their ops; returns how
 * many are ready, stopping before a key that does not parse (the loop fails it). */
static uint32_t batch_keys(struct request *r, const struct mg_text_req *t)
{
    uint32_t n = 0;
    while (n < RES_BATCH_MAX && r->next_key + n < r->nops) {
        struct op *op = &r->ops[r->next_key + n];
        if (op->ckey.p == NULL && !next_key(r, t, op))
            break;
        n++;
    }
    return n;
}

/* The resolver failed for op's key: a read leaves the key out of its reply (and says so
 * when no key is left), anything else answers the resolution's error line. */
static void key_failed(struct request *r, const struct mg_text_req *t, struct op *op)
{
    if (is_retrieval(t->cmd)) { /* no partial VALUE line for it */
        op->out.off = op->out.len = 0;
        r->nfailed++;
        if (r->err == NULL)
            r->err = "SERVER_ERROR lua error (see the gateway log)";
    } else {
        put_line(&op->out, r->rkeys.data + op->res.key_off, op->res.key_len);
    }
    op_finish(op);
}

/* Make sure op (r->ops[r->next_key], its placement key where) has its resolution, batch
 * by batch where the command allows. Returns MG_EAGAIN when the plug-in waits. */
static int resolve(struct request *r, const struct mg_text_req *t, const struct engine_plugin *pl,
                   struct mg_slice where)
{
    if (r->next_key < r->res_until)
        return MG_OK;
    if (!r->res_nobatch && batchable(r, t)) {
        uint32_t n = batch_keys(r, t);
        int rc = n > 1 ? pl->resolve_batch(r, r->next_key, n) : MG_OK;
        if (rc == MG_EAGAIN)
            return MG_EAGAIN;
        if (rc == MG_ERR)
            r->res_nobatch = true; /* key by key from here on */
        if (r->next_key < r->res_until)
            return MG_OK;
    }
    return pl->resolve_key(r, r->next_key, where.p, where.len) == MG_EAGAIN ? MG_EAGAIN : MG_OK;
}

/* Dispatch r's keys from r->next_key on. With a plug-in (pl) this may stop at a key whose
 * resolution waits; dispatch_resume continues from there. */
static void dispatch_keys(struct request *r, const struct mg_text_req *t,
                          const struct engine_plugin *pl)
{
    static const struct resolution by_table = { RES_TABLE, RES_TABLE, 0, 0 };
    unsigned char dec[MG_KEY_MAX + 1];
    while (r->next_key < r->nops) {
        struct op *op = &r->ops[r->next_key];
        struct mg_slice k, where;
        if (op->ckey.p == NULL && !next_key(r, t, op)) {
            r->next_key++;
            op_fail(op, OP_FAIL_ERROR, "SERVER_ERROR internal error");
            continue;
        }
        k = op->ckey;
        const char *kerr = placement_key(t, k, &where, dec);
        if (kerr != NULL) {
            r->next_key++;
            op_fail(op, OP_FAIL_CLIENT, kerr);
            continue;
        }
        if (pl && resolve(r, t, pl, where) == MG_EAGAIN) {
            r->parked = true;
            return;
        }
        const struct resolution *res = r->next_key < r->res_until ? &op->res : &by_table;
        r->next_key++;
        if (res->pool == RES_FAILED) {
            key_failed(r, t, op);
            continue;
        }
        struct mg_slice lkey = { res->key_len ? r->rkeys.data + res->key_off : NULL, res->key_len };
        struct target tg;
        int trc = target_of(r, op, k, where, t->b64, res->pool, res->policy, lkey, &tg);
        if (MG_UNLIKELY(op->route >= 0)) {
            enum pool_kind kind = r->w->cfg->pools[op->route].kind;
            if (kind == POOL_REPLICATE && !is_read(t->cmd))
                replicate_write(r, op, t, where, trc == MG_OK, &tg);
            else if ((t->cmd == MG_CMD_DELETE || t->cmd == MG_CMD_MD) && kind != POOL_SHADOW)
                delete_on_children(r, op, t, where); /* a fallback's copy must not outlive it */
        }
        if (trc != MG_OK)
            continue;
        /* mg k on a base64 key: memcached 1.6 echoes an item that mg's N flag created with
         * its decoded bytes (\r\n and all: a split reply line), so the gateway adds k */
        if (t->cmd >= MG_CMD_MG) {
            op->add_k = t->b64 && t->echo_key && t->cmd == MG_CMD_MG;
            op->k_after = t->k_after;
            /* its reply's k flag gets the client's key back, after the read buffer moved */
            if ((op->rekey || op->add_k) && !r->own_copy) {
                if (!op_keep_key(op, k.p, k.len)) {
                    op_fail(op, OP_FAIL_ERROR, "SERVER_ERROR out of memory");
                    continue;
                }
                op->ckey = (struct mg_slice){ buf_head(&op->key), k.len };
            }
        }
        send_op(r, op, t, k, &tg);
        if (MG_UNLIKELY(op->route >= 0) && r->w->cfg->pools[op->route].kind == POOL_SHADOW)
            shadow_copy(r, op, t, where);
    }
    request_end_dispatch(r);
}

/* Send op again, to its failover route's child op->child (already advanced). True: it was
 * sent, or failed for good through op_fail. */
static bool redispatch(struct op *op)
{
    struct request *r = op->req;
    const struct mg_text_req *t = &r->t;
    unsigned char dec[MG_KEY_MAX + 1];
    struct mg_slice where, none = { NULL, 0 };
    if (placement_key(t, op->ckey, &where, dec) != NULL)
        return false;
    op->out.off = op->out.len = 0;
    op->status = MG_R_NONE;
    op->be = NULL;
    op->pol = NULL; /* herd bookkeeping starts again on the next pool's server */
    op->herd_lease = false;
    struct target tg;
    if (target_of(r, op, op->ckey, where, t->b64, op->route, RES_TABLE, none, &tg) == MG_OK)
        send_op(r, op, t, op->ckey, &tg);
    return true;
}

/* May op move on to its route's next child? Only under the config it was sent with, and
 * with the request's own copy of the command to render it again. */
static const struct pool *route_next(struct op *op)
{
    struct request *r = op->req;
    struct worker *w = r->w;
    if (r->cfg != w->cfg || !r->own_copy || w->tearing_down)
        return NULL;
    const struct pool *fo = &w->cfg->pools[op->route];
    return op->child + 1 < fo->nchildren ? fo : NULL;
}

bool dispatch_failover(struct op *op, enum op_fail why)
{
    const struct pool *fo = route_next(op);
    if (fo == NULL || !(fo->fo_on & (1u << why)) ||
        (fo->kind == POOL_REPLICATE && !is_read(op->req->cmd))) {
        ROUTE_COUNT(op->req->w, op->route, failed);
        return false;
    }
    op->child++;
    ROUTE_COUNT(op->req->w, op->route, fallbacks);
    return redispatch(op);
}

bool dispatch_miss_next(struct op *op)
{
    struct request *r = op->req;
    if (!is_retrieval(r->cmd) && r->cmd != MG_CMD_MG)
        return false;
    const struct pool *fo = route_next(op);
    if (fo == NULL || !fo->fo_on_miss)
        return false;
    op->child++;
    ROUTE_COUNT(r->w, op->route, misses_moved);
    return redispatch(op);
}

void dispatch_resume(struct request *r)
{
    r->parked = false;
    dispatch_keys(r, &r->t, r->w->plugin);
}

/* Start r: enqueue on c with n ops. Returns NULL (after answering) when out of memory. */
static struct request *request_begin(struct conn *c, enum mg_cmd cmd, uint32_t n, bool noreply)
{
    struct request *r = request_get(c->w);
    if (r == NULL || request_ops(r, n) != MG_OK) {
        if (r) {
            r->w = c->w;
            request_release(r);
        }
        log_error("out of memory");
        return NULL;
    }
    r->w = c->w;
    r->cmd = cmd;
    r->noreply = noreply;
    r->pending = n + 1; /* +1 held until every op went out: no completion mid-dispatch */
    r->flow = n;
    c->inflight_keys += n;
    conn_enqueue(c, r);
    return r;
}

struct request *request_internal(struct worker *w, uint32_t n)
{
    struct request *r = request_get(w);
    if (r == NULL)
        return NULL;
    r->w = w;
    r->c = NULL;
    if (request_ops(r, n) != MG_OK) {
        request_release(r);
        return NULL;
    }
    r->cmd = MG_CMD_NONE;
    r->pending = n + 1;
    return r;
}

void request_internal_go(struct request *r)
{
    request_end_dispatch(r);
}

struct request *request_one(struct worker *w, struct backend *b, size_t need,
                            void (*on_done)(struct request *r), void *udata, enum op_fail *why)
{
    if (!backend_usable(b)) {
        *why = OP_FAIL_DOWN;
        return NULL;
    }
    struct request *r = request_internal(w, 1);
    if (r == NULL || buf_reserve(&b->wbuf, need + META_EXTRA) != MG_OK) {
        if (r)
            request_release(r);
        *why = OP_FAIL_ERROR;
        return NULL;
    }
    r->on_done = on_done;
    r->udata = udata;
    r->ops[0].be = b;
    return r;
}

void request_one_send(struct request *r)
{
    backend_push(r->ops[0].be, &r->ops[0]);
    request_end_dispatch(r);
}

/* Rebase a slice from the client's buffer into the request's own copy. */
static void rebase(struct mg_slice *s, const char *from, const char *to, size_t len)
{
    if (s->p && s->p >= from && s->p <= from + len)
        s->p = to + (s->p - from);
}

/* Copy the raw command into r so its keys survive waiting for Lua. */
static bool request_keep(struct request *r, const struct mg_text_req *t, const char *raw,
                         size_t rawlen)
{
    r->raw.off = r->raw.len = 0;
    if (buf_append(&r->raw, raw, rawlen) != MG_OK)
        return false;
    r->t = *t;
    struct mg_slice *s[] = { &r->t.key, &r->t.keys, &r->t.data, &r->t.args, &r->t.line };
    for (size_t i = 0; i < MG_ARRAY_LEN(s); i++)
        rebase(s[i], raw, r->raw.data, rawlen);
    r->own_copy = true;
    return true;
}

static void dispatch_keyed(struct conn *c, const struct mg_text_req *t, const char *raw,
                           size_t rawlen)
{
    struct worker *w = c->w;
    uint32_t n = is_retrieval(t->cmd) ? t->nkeys : 1;
    bool noreply = t->noreply && !is_retrieval(t->cmd) && t->cmd < MG_CMD_MG;
    struct request *r = request_begin(c, t->cmd, n, noreply);
    if (r == NULL)
        return;
    r->partial = t->partial;
    if (c->line && is_retrieval(t->cmd))
        get_line_add(c->line, r, t->partial);
    count_command(w, t);
    if (w->plugin || w->cfg->has_failover) {
        /* it may wait between keys, or go to a route's next child: it keeps its own copy */
        if (!request_keep(r, t, raw, rawlen)) {
            for (uint32_t i = 0; i < n; i++)
                op_fail(&r->ops[i], OP_FAIL_ERROR, "SERVER_ERROR out of memory");
            request_end_dispatch(r);
            return;
        }
        dispatch_keys(r, &r->t, w->plugin);
        return;
    }
    dispatch_keys(r, t, NULL);
}

/* flush_all goes to every server of the current config. */
static void dispatch_flush(struct conn *c, const struct mg_text_req *t)
{
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    struct request *r = request_begin(c, t->cmd, cfg->nservers, t->noreply);
    if (r == NULL)
        return;
    STAT_INC(w->st.cmd_flush);
    for (uint32_t i = 0; i < cfg->nservers; i++) {
        struct op *op = &r->ops[i];
        struct backend *b = worker_backend(w, i);
        if (!backend_usable(b)) {
            op_fail(op, OP_FAIL_DOWN, "SERVER_ERROR backend down");
            continue;
        }
        if (buf_reserve(&b->wbuf, META_EXTRA) != MG_OK) {
            op_fail(op, OP_FAIL_ERROR, "SERVER_ERROR out of memory");
            continue;
        }
        meta_render_flush_all(&b->wbuf, t->num);
        backend_push(b, op);
    }
    request_end_dispatch(r);
}

void request_drop_key(struct conn *c, const struct mg_text_req *t)
{
    struct worker *w = c->w;
    if (t->key.len == 0)
        return;
    struct request *r = request_internal(w, 1);
    if (r == NULL)
        return;
    struct target tg;
    struct mg_slice none = { NULL, 0 };
    if (target_of(r, &r->ops[0], t->key, t->key, false, -1, -1, none, &tg) == MG_OK) {
        if (buf_reserve(&tg.b->wbuf, tg.bklen + META_EXTRA) != MG_OK) {
            op_fail(&r->ops[0], OP_FAIL_ERROR, "SERVER_ERROR out of memory");
        } else {
            meta_render_delete(&tg.b->wbuf, tg.bkey, tg.bklen);
            backend_push(tg.b, &r->ops[0]);
        }
    }
    request_internal_go(r);
}

struct request *request_reply_later(struct conn *c)
{
    return request_begin(c, MG_CMD_NONE, 0, false);
}

void request_reply_now(struct request *r, const char *line)
{
    put_line(&r->out, line, strlen(line));
    request_end_dispatch(r);
}

void request_reply_line(struct conn *c, const char *line)
{
    struct request *r = request_begin(c, MG_CMD_NONE, 0, false);
    if (r == NULL)
        return;
    put_line(&r->out, line, strlen(line));
    request_end_dispatch(r);
}

void request_dispatch(struct conn *c, const struct mg_text_req *t, const char *raw, size_t rawlen)
{
    switch (t->cmd) {
    case MG_CMD_GET:
    case MG_CMD_GETS:
    case MG_CMD_GAT:
    case MG_CMD_GATS:
    case MG_CMD_SET:
    case MG_CMD_ADD:
    case MG_CMD_REPLACE:
    case MG_CMD_APPEND:
    case MG_CMD_PREPEND:
    case MG_CMD_CAS:
    case MG_CMD_DELETE:
    case MG_CMD_INCR:
    case MG_CMD_DECR:
    case MG_CMD_TOUCH:
    case MG_CMD_MG:
    case MG_CMD_MS:
    case MG_CMD_MD:
    case MG_CMD_MA:
    case MG_CMD_ME:
        dispatch_keyed(c, t, raw, rawlen);
        break;
    case MG_CMD_MN:
        request_reply_line(c, "MN");
        break;
    case MG_CMD_FLUSH_ALL:
        dispatch_flush(c, t);
        break;
    case MG_CMD_VERSION:
        request_reply_line(c, "VERSION " MG_VERSION_REPLY);
        break;
    case MG_CMD_VERBOSITY:
        if (!t->noreply)
            request_reply_line(c, "OK");
        break;
    case MG_CMD_STATS: {
        struct request *r = request_begin(c, MG_CMD_STATS, 0, false);
        if (r == NULL)
            return;
        if (conn_server && conn_server->stats)
            conn_server->stats(c->w, t->args, &r->out);
        else
            put_line(&r->out, "ERROR", 5);
        request_end_dispatch(r);
        break;
    }
    case MG_CMD_QUIT:
        c->close_after_flush = true;
        ev_io_stop(c->w->loop, &c->rio);
        worker_dirty_conn(c->w, c); /* closes once earlier replies are out */
        break;
    default:
        request_reply_line(c, "ERROR");
        break;
    }
}
