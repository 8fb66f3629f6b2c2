/* dispatch.c: from a parsed client command to meta commands on the right backends. */
#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "conn.h"
#include "dispatch_int.h"
#include "herd.h"
#include "log.h"
#include "meta_render.h"
#include "near.h"
#include "plugin.h"
#include "request.h"
#include "route.h"
#include "stats.h"
#include "switch.h"
#include "trace.h"
#include "worker.h"

static int target_pick(struct request *r, struct op *op, const struct mg_text_req *t,
                       struct mg_slice k, struct mg_slice place, struct target *tg);

static void request_own_t(struct request *r);

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

bool dispatch_key_reserved(const struct request *r, struct mg_slice bk)
{
    return key_reserved(r, bk);
}

/* op's backend cannot take it: before its failure may move it on to a route's next pool, the
 * routes it went through send their copies (a replicated write's other replicas get it even
 * when the failover above moves op to its gutter). */
static void route_fail_early(struct request *r, struct op *op, const struct mg_text_req *t,
                             struct mg_slice place, const struct target *tg)
{
    if (op->route >= 0 && t != NULL)
        route_before_send(r, op, t, place, false, true, tg->b, tg->bkey, tg->bklen);
}

/* Resolve key k for op: the pool (pool_idx, or the prefix table when RES_TABLE), the
 * backend key (lkey when the resolver gave one, else the pool's key style), the backend by ketama
 * over the backend key. For a base64 meta key (b64), place holds its decoded bytes: routing, the
 * transform and placement work on them as on any key, and the result is encoded again for the
 * backend, so the b flag reaches no key outside the client's namespace. Returns MG_OK, or fails op
 * and returns MG_ERR. */
static int target_of(struct request *r, struct op *op, const struct mg_text_req *t,
                     struct mg_slice k, struct mg_slice place, bool b64, int pool_idx,
                     int policy_idx, struct mg_slice lkey, struct target *tg)
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
        if (op->route < 0 && (p->flat || (p->depth == 1 && !is_read(r->cmd)))) {
            /* the common case inline: a route over pools, first try (its first pool) */
            op->route = (int)p->id;
            op->depth = 1;
            op->fx_pre = op->fx_post = 0;
            op->warm = -1;
            op->lv[0] = (struct route_step){ p->id, 0 };
            ROUTE_COUNT(w, p->id, requests);
            if (p->kind == POOL_WARMUP)
                tg->pol = NULL; /* a herd win on cold would hide warm's value */
            p = &cfg->pools[p->children[0]];
        } else {
            bool no_pol = false;
            p = route_descend(r, op, p, place, b64, &tg->ttl_cap, &no_pol);
            if (no_pol)
                tg->pol = NULL; /* else the route's (or entry's) policy stays */
        }
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
    tg->pool = p;
    if (MG_UNLIKELY(cfg->near.on) && p->near && op->route < 0 &&
        (r->cmd == MG_CMD_GET || r->cmd == MG_CMD_GETS || r->cmd == MG_CMD_MG))
        return TARGET_NEAR; /* the near cache first: no server needed for a hit */
    return target_pick(r, op, t, k, place, tg);
bad_key:
    op_fail(op, OP_FAIL_CLIENT, "CLIENT_ERROR bad command line format");
    return MG_ERR;
}

/* The rest of target_of: the server of tg's backend key in tg->pool, if it can take op. */
static int target_pick(struct request *r, struct op *op, const struct mg_text_req *t,
                       struct mg_slice k, struct mg_slice place, struct target *tg)
{
    struct worker *w = r->w;
    const struct pool *p = tg->pool;
    op->rekey = tg->bklen != k.len || (tg->bkey != k.p && memcmp(tg->bkey, k.p, k.len) != 0);
    tg->b = worker_pick(w, p, tg->plain.p, tg->plain.len);
    if (MG_UNLIKELY(!backend_usable(tg->b))) {
        stats_backend_fail(w, (int)p->id, tg->b, OP_FAIL_DOWN);
        route_fail_early(r, op, t, place, tg);
        op_fail(op, OP_FAIL_DOWN, "SERVER_ERROR backend down");
        return MG_ERR;
    }
    if (MG_UNLIKELY(tg->b->nq >= tg->b->opts.max_inflight)) {
        STAT_INC(tg->b->st.busy);
        route_fail_early(r, op, t, place, tg);
        op_fail(op, OP_FAIL_ERROR, "SERVER_ERROR backend busy");
        return MG_ERR;
    }
    return MG_OK;
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
        meta_render_herd_get(wb, tg->bkey, tg->bklen, herd_recache(w, op->pool, tg->pol),
                             op->near_fill || tg->pol->guard); /* t: a win's expiry */
        backend_push(b, op);
        if (tg->pol->coalesce)
            herd_lead(w, op);
        return;
    }
    /* gat/gats: a plain read, but the new TTL gets the grace like touch */
    meta_render_get(wb, tg->bkey, tg->bklen, cas || op->near_fill, touch,
                    touch ? herd_store_ttl(cap_ttl(t->exptime, tg->ttl_cap), tg->pol) : 0,
                    op->warm >= 0 || op->near_fill); /* a warm-up's fill takes warm's TTL */
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
    struct buf *wb = &tg->b->wbuf;
    /* a failover's later pool caps the nominal TTL; a staleness policy's grace follows */
    int64_t ttl = cap_ttl(t->exptime, tg->ttl_cap);
    /* append/prepend/cas bypass the herd logic (they keep the item's TTL or are
     * compare-and-swap by the client); set/add/replace get the grace period */
    bool has_cas = t->cmd == MG_CMD_CAS;
    uint64_t cas = t->cas;
    unsigned opts = 0;
    if (tg->pol && (t->cmd == MG_CMD_SET || t->cmd == MG_CMD_ADD || t->cmd == MG_CMD_REPLACE)) {
        ttl = herd_store_ttl(ttl, tg->pol);
        if (op_keep_key(op, tg->bkey, tg->bklen))
            op->pol = tg->pol; /* so a STORED wakes local waiters */
        else
            op->guard = OP_GUARD_NONE;   /* its reply could not be checked */
        if (op->guard == OP_GUARD_WIN) { /* only if nobody wrote since the win */
            has_cas = true;
            cas = op->guard_cas;
            opts = tg->pol->mark_stale ? META_STORE_INVALIDATE : 0;
        } else if (op->guard == OP_GUARD_LEASE) {
            opts = META_STORE_RETURN_CAS; /* its lease's check needs it */
        }
    }
    if (MG_UNLIKELY(request_is_bin(r) || op->near_wf != NULL))
        opts |= META_STORE_RETURN_CAS; /* a binary store answers it; a near fill keeps it */
    if (buf_reserve(wb, tg->bklen + t->data.len + META_EXTRA) != MG_OK) {
        op_fail(op, OP_FAIL_ERROR, "SERVER_ERROR out of memory");
        return;
    }
    meta_render_store(wb, tg->bkey, tg->bklen, t->data, t->flags, ttl, modes[t->cmd], has_cas, cas,
                      opts);
    backend_push(tg->b, op);
    if (MG_UNLIKELY(op->guard == OP_GUARD_LEASE))
        herd_guard_sent(op); /* its lease's check, right behind it */
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
        meta_render_delete(wb, tg->bkey, tg->bklen, false, 0);
    } else if (MG_UNLIKELY(request_is_bin(r))) { /* the CAS, and maybe an initial value */
        const struct mg_bin_ctx *x = &r->bin;
        meta_render_arith_bin(wb, tg->bkey, tg->bklen, t->cmd == MG_CMD_DECR, t->delta, x->vivify,
                              cap_ttl(x->vivify_ttl, tg->ttl_cap), x->initial);
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
    if (tg->pol && !is_retrieval(t->cmd) && t->cmd != MG_CMD_MG && t->cmd != MG_CMD_ME) {
        herd_on_write(r->w, r->c, tg->b, tg->plain.p, tg->plain.len);
        if (tg->pol->guard)
            herd_guard_write(op, tg->pol, t->cmd, tg->b, tg->plain.p, tg->plain.len);
    }
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
static MG_ALWAYS_INLINE bool next_key(struct request *r, const struct mg_text_req *t, struct op *op)
{
    struct mg_slice k;
    if (is_retrieval(t->cmd)) {
        if (!mg_text_next_token(t->keys, &r->keypos, &k))
            return false;
    } else {
        k = t->key;
    }
    op->ckey = k;
    if (r->t_stale) /* the same bytes in the request's own copy: they outlive the client's */
        op->ckey.p = r->raw.data + (k.p - r->raw_from);
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
        op->fail = OP_FAIL_ERROR; /* for the trace: not a miss */
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
        int trc = target_of(r, op, t, k, where, t->b64, res->pool, res->policy, lkey, &tg);
        if (MG_UNLIKELY(--r->w->hot_left == 0)) /* 1 in hot_sample keys: hot-key detector */
            stats_hot_sample(r->w, t->cmd, op->pool, where.p, where.len);
        if (MG_UNLIKELY(trc == TARGET_NEAR)) {
            if (dispatch_near_get(r, op, t, k, where, &tg))
                continue; /* answered from the near cache */
            trc = target_pick(r, op, t, k, where, &tg);
        }
        if (MG_UNLIKELY(op->route >= 0)) {
            /* reads, and routes of only shadows, send nothing before: skip the call */
            if (!is_read(t->cmd) && r->w->cfg->pools[op->route].tree_pre)
                route_before_send(r, op, t, where, trc == MG_OK, false, tg.b, tg.bkey, tg.bklen);
            if (trc != MG_OK)
                route_after_send(r, op, t, where, false);
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
        if (MG_UNLIKELY(r->w->cfg->near.on))
            dispatch_near_write(op, t, &tg);
        send_op(r, op, t, k, &tg);
        if (MG_UNLIKELY(op->route >= 0)) {
            const struct pool *rt = &r->w->cfg->pools[op->route];
            if (rt->kind == POOL_SHADOW && rt->depth == 1 && !(op->fx_post & 1)) {
                op->fx_post = 1; /* a shadow over pools, the common case, inline */
                if (t->cmd != MG_CMD_ME && switch_on(rt->shadow_switch, where.p, where.len))
                    route_shadow_copy(r, op, t, where, rt);
            } else if (rt->tree_shadow) {
                route_after_send(r, op, t, where, true);
            }
        }
    }
    request_end_dispatch(r);
}

struct mg_slice dispatch_op_key(const struct request *r, const struct op *op)
{
    uint32_t i = (uint32_t)(op - r->ops);
    if (i < r->res_until && op->res.pool != RES_FAILED && op->res.key_len)
        return (struct mg_slice){ r->rkeys.data + op->res.key_off, op->res.key_len };
    return (struct mg_slice){ NULL, 0 };
}

bool dispatch_resend(struct op *op)
{
    struct request *r = op->req;
    const struct mg_text_req *t = &r->t;
    unsigned char dec[MG_KEY_MAX + 1];
    struct mg_slice where;
    if (r->t_stale)
        request_own_t(r);
    if (placement_key(t, op->ckey, &where, dec) != NULL)
        return false;
    op->out.off = op->out.len = 0;
    op->status = MG_R_NONE;
    op->be = NULL;
    op->pol = NULL; /* herd bookkeeping starts again on the next pool's server */
    op->herd_lease = false;
    op->guard = OP_GUARD_NONE;
    struct target tg;
    /* the resolver's key and named policy hold on every pool of the route */
    uint32_t i = (uint32_t)(op - r->ops);
    int policy = i < r->res_until ? op->res.policy : RES_TABLE;
    int trc = target_of(r, op, t, op->ckey, where, t->b64, op->route, policy,
                        dispatch_op_key(r, op), &tg);
    /* the levels chosen anew below the one that moved on send their copies too */
    route_before_send(r, op, t, where, trc == MG_OK, false, tg.b, tg.bkey, tg.bklen);
    if (trc == MG_OK)
        send_op(r, op, t, op->ckey, &tg);
    route_after_send(r, op, t, where, trc == MG_OK);
    return true;
}

void dispatch_resume(struct request *r)
{
    r->parked = false;
    if (MG_UNLIKELY(r->explain_to != NULL)) {
        dispatch_explain_finish(r);
        return;
    }
    dispatch_keys(r, &r->t, r->w->plugin);
}

/* A binary client's request: keep what its binary reply needs (the key only when the
 * reply carries it back). */
static void request_bin_begin(struct request *r, const struct mg_bin_ctx *x)
{
    r->bin.opcode = x->opcode;
    r->bin.quiet = x->quiet;
    r->bin.with_key = x->with_key;
    r->bin.vivify = x->vivify;
    r->bin.opaque = x->opaque;
    r->bin.initial = x->initial;
    r->bin.vivify_ttl = x->vivify_ttl;
    r->bin.klen = x->with_key ? x->klen : 0;
    memcpy(r->bin.key, x->key, r->bin.klen);
    r->bin_cas = 0;
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
    if (MG_LIKELY(stats_observe))
        r->t0 = ev_now(c->w->loop);
    r->noreply = noreply;
    if (MG_UNLIKELY(c->bin_cur != NULL))
        request_bin_begin(r, c->bin_cur);
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

/* Rebase a slice from the client's buffer (from, len bytes; it may be gone: only the
 * addresses are compared) into the request's own copy at to. */
static void rebase(struct mg_slice *s, const char *from, const char *to, size_t len)
{
    uintptr_t p = (uintptr_t)s->p, f = (uintptr_t)from;
    if (p && p >= f && p <= f + len)
        s->p = to + (p - f);
}

/* Point r->t's slices into r's own copy of the command. */
static void request_own_t(struct request *r)
{
    struct mg_slice *s[] = { &r->t.key, &r->t.keys, &r->t.data, &r->t.args, &r->t.line };
    for (size_t i = 0; i < MG_ARRAY_LEN(s); i++)
        rebase(s[i], r->raw_from, r->raw.data, r->raw.len);
    r->t_stale = false;
}

/* Copy the raw command into r so its keys survive waiting for Lua or a route's next pool.
 * lazy: dispatch goes on with the client's t right away (no wait between keys), so only the
 * ops' keys move into the copy now (next_key) and t's slices when a resend needs them. */
static bool request_keep(struct request *r, const struct mg_text_req *t, const char *raw,
                         size_t rawlen, bool lazy)
{
    r->raw.off = r->raw.len = 0;
    if (r->raw.cap < rawlen && buf_reserve(&r->raw, rawlen) != MG_OK)
        return false;
    memcpy(r->raw.data, raw, rawlen);
    r->raw.len = rawlen;
    r->t = *t;
    r->own_copy = true;
    r->raw_from = raw;
    r->t_stale = true;
    if (!lazy)
        request_own_t(r);
    return true;
}

/* The trace (session s) samples r's keys: the traced ones are copied (the client's bytes
 * are gone by the time r completes) with what their lines will say. */
static void trace_begin(struct request *r, const struct mg_text_req *t, uint32_t s)
{
    const char *name = trace_op_name(t->cmd, t->args);
    if (name == NULL)
        return;
    char key[TRACE_KEY_MAX + 1];
    uint32_t pos = 0;
    bool any = false;
    r->tkeys.off = r->tkeys.len = 0;
    for (uint32_t i = 0; i < r->nops; i++) {
        struct op *op = &r->ops[i];
        struct mg_slice k = t->key;
        op->tkey_len = 0; /* every op's, before any is read */
        if (is_retrieval(t->cmd) && !mg_text_next_token(t->keys, &pos, &k))
            continue;
        size_t kl = trace_sampled(k.p, k.len) ? trace_key(key, k.p, k.len) : 0;
        if (kl == 0 || buf_append(&r->tkeys, key, kl) != MG_OK)
            continue;
        op->tkey_off = (uint32_t)(r->tkeys.len - kl);
        op->tkey_len = (uint32_t)kl;
        any = true;
    }
    if (!any)
        return;
    r->tr_session = s;
    r->tr_op = name;
    r->tr_when = ev_now(r->w->loop);
    r->tr_ttl = 0;
    r->tr_vsize = TRACE_VSIZE_REPLY;
    if (t->cmd >= MG_CMD_SET && t->cmd <= MG_CMD_CAS) {
        r->tr_vsize = t->vlen;
        r->tr_ttl = t->exptime;
    } else if (t->cmd == MG_CMD_TOUCH || t->cmd == MG_CMD_GAT || t->cmd == MG_CMD_GATS) {
        r->tr_ttl = t->exptime;
    } else if (t->cmd >= MG_CMD_MG) {
        r->tr_ttl = trace_meta_ttl(t->args);
        if (t->cmd == MG_CMD_MS)
            r->tr_vsize = t->vlen;
    }
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
    if (MG_LIKELY(stats_observe)) { /* for the slow log: the client's bytes will be gone */
        r->key_len = t->key.len;
        r->key_head_len = t->key.len < sizeof(r->key_head) ? t->key.len : sizeof(r->key_head);
        memcpy(r->key_head, t->key.p, r->key_head_len);
    }
    uint32_t ts = (uint32_t)atomic_load_explicit(&trace_session, memory_order_relaxed);
    if (MG_UNLIKELY(ts != 0))
        trace_begin(r, t, ts);
    if (c->line && is_retrieval(t->cmd))
        get_line_add(c->line, r, t->partial);
    count_command(w, t);
    if (w->plugin || w->cfg->has_failover) {
        /* it may wait between keys, or go to a route's next child: it keeps its own copy */
        if (!request_keep(r, t, raw, rawlen, w->plugin == NULL)) {
            for (uint32_t i = 0; i < n; i++)
                op_fail(&r->ops[i], OP_FAIL_ERROR, "SERVER_ERROR out of memory");
            request_end_dispatch(r);
            return;
        }
        dispatch_keys(r, w->plugin ? &r->t : t, w->plugin);
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
    if (target_of(r, &r->ops[0], NULL, t->key, t->key, false, -1, -1, none, &tg) == MG_OK) {
        if (buf_reserve(&tg.b->wbuf, tg.bklen + META_EXTRA) != MG_OK) {
            op_fail(&r->ops[0], OP_FAIL_ERROR, "SERVER_ERROR out of memory");
        } else {
            meta_render_delete(&tg.b->wbuf, tg.bkey, tg.bklen, false, 0);
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
    request_reply_cmd(c, MG_CMD_NONE, line);
}

void request_reply_cmd(struct conn *c, enum mg_cmd cmd, const char *line)
{
    struct request *r = request_begin(c, cmd, 0, false);
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
        request_reply_cmd(c, t->cmd, "MN");
        break;
    case MG_CMD_FLUSH_ALL:
        dispatch_flush(c, t);
        break;
    case MG_CMD_VERSION:
        request_reply_cmd(c, t->cmd, "VERSION " MG_VERSION_REPLY);
        break;
    case MG_CMD_VERBOSITY:
        if (!t->noreply)
            request_reply_cmd(c, t->cmd, "OK");
        break;
    case MG_CMD_STATS: {
        struct request *r = request_begin(c, MG_CMD_STATS, 0, false);
        if (r == NULL)
            return;
        struct mg_slice a = t->args; /* the slow log holds keys and client addresses */
        while (a.len && a.p[0] == ' ')
            a = (struct mg_slice){ a.p + 1, a.len - 1 };
        if (a.len >= 7 && memcmp(a.p, "slowlog", 7) == 0 && !c->trusted)
            put_line(&r->out, "CLIENT_ERROR stats slowlog is answered on the admin port only", 61);
        else if (a.len >= 5 && memcmp(a.p, "trace", 5) == 0 && !c->trusted) /* its path */
            put_line(&r->out, "CLIENT_ERROR stats trace is answered on the admin port only", 59);
        else if (conn_server && conn_server->stats)
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
