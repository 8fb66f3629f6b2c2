/* route.c: routes over pools (mg.failover, mg.warmup, mg.shadow, mg.replicate): the next
 * pool after a failure or a miss, warm-up fills, shadow copies and their comparison,
 * replicated writes and the replay of deletes a replica missed. Dispatch (dispatch.c)
 * picks a route's pool per key in target_of and calls in here; replies and failures reach
 * it through request.c. See README "Lua API" for each route's semantics. */
#include "route.h"

#include <resolv.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "health.h"
#include "meta_render.h"
#include "stats.h"
#include "switch.h"
#include "worker.h"

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

static bool child_key(struct request *r, const struct op *op, const struct pool *p,
                      struct mg_slice where, bool b64, struct child_key *ck)
{
    struct mg_slice bk = where, lkey = dispatch_op_key(r, op);
    if (lkey.len) { /* the script's key function's key: the same on every pool of a route */
        if (b64 ? lkey.len > MG_KEY_MAX : !mg_text_key_ok(lkey.p, lkey.len))
            return false;
        bk = lkey;
    } else if (p->keys) {
        int n = keys_apply_bytes(p->keys, where.p, where.len, b64, ck->kbuf, sizeof(ck->kbuf));
        if (n < 0)
            return false;
        bk = (struct mg_slice){ ck->kbuf, (uint32_t)n };
    }
    if (bk.len > MG_KEY_MAX || dispatch_key_reserved(r, bk))
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

/* How a copy reaches the server pools under a route's child: a delete every one of them
 * (LEAVES_ALL), a write what a write through the child reaches (LEAVES_WRITE: each replica of
 * a replicated route, the first child of any other route), a read the pool a read would try
 * first (LEAVES_READ). */
enum leaves_for { LEAVES_ALL, LEAVES_WRITE, LEAVES_READ };

/* Append the server pools under pool id to out (n of them already, MG_ROUTE_LEAVES at most,
 * which config_finish checked); returns the new count. */
static uint32_t leaves(const struct config *cfg, uint32_t id, enum leaves_for how, uint32_t *out,
                       uint32_t n)
{
    const struct pool *p = &cfg->pools[id];
    if (p->kind == POOL_SERVERS) {
        if (n < MG_ROUTE_LEAVES)
            out[n++] = id;
        return n;
    }
    for (uint32_t i = 0; i < p->nchildren; i++) {
        if (i > 0 && (how == LEAVES_READ || (how == LEAVES_WRITE && p->kind != POOL_REPLICATE)))
            break;
        n = leaves(cfg, p->children[i], how, out, n);
    }
    return n;
}

/* The server pools under level d of op's routes, except under the child op took there. */
static uint32_t other_leaves(const struct config *cfg, const struct op *op, uint32_t d,
                             enum leaves_for how, uint32_t *out)
{
    const struct pool *rt = &cfg->pools[op->lv[d].route];
    uint32_t n = 0;
    for (uint32_t i = 0; i < rt->nchildren; i++) {
        uint32_t c = rt->children[i];
        if (i == op->lv[d].child)
            continue;
        if (cfg->pools[c].kind == POOL_SERVERS) /* the common case without the recursion */
            out[n++] = c;
        else
            n = leaves(cfg, c, how, out, n);
    }
    return n;
}

/* A delete through a failover or warm-up route (level d of op's) reaches every pool under
 * it, not only the one that answers the client: each other one gets an md of its own (fire
 * and forget; one that is down is counted as skipped). where: the key's placement bytes. */
static void delete_on_children(struct request *r, struct op *op, const struct mg_text_req *t,
                               struct mg_slice where, uint32_t d)
{
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    uint32_t ids[MG_ROUTE_LEAVES];
    uint32_t n = other_leaves(cfg, op, d, LEAVES_ALL, ids);
    for (uint32_t i = 0; i < n; i++) {
        struct child_key ck;
        if (!child_key(r, op, &cfg->pools[ids[i]], where, t->b64, &ck))
            continue;
        enum op_fail why;
        struct request *ir = request_one(w, ck.b, ck.klen + 2, NULL, NULL, &why);
        if (ir == NULL) {
            ROUTE_COUNT(w, op->lv[d].route, deletes_skipped);
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
        meta_render_delete(wb, ck->key, ck->klen, false, 0);
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
                          false, 0, 0);
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

/* A hash of a value and its client flags, to compare the two sides of a shadowed read. */
static uint64_t hash_bytes(uint64_t h, const char *p, uint32_t n)
{
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) { /* eight bytes a step: only ever compared in this process */
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return (h ^ n) * 0x9e3779b97f4a7c15ull;
}

static uint64_t shadow_hash(const struct mg_meta_reply *rep)
{
    uint64_t h = 1469598103934665603ull;
    struct mg_slice f;
    if (mg_meta_flag(rep->flags, 'f', &f))
        h = hash_bytes(h, f.p, f.len);
    return hash_bytes(h ^ '|', rep->data.p, rep->data.len);
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

void route_shadow_main(struct op *op, const struct mg_meta_reply *rep)
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

/* One shadow copy of op's command t (route: the shadow route's index) to server pool to. */
static void shadow_copy_to(struct request *r, struct op *op, const struct mg_text_req *t,
                           struct mg_slice where, uint32_t route, const struct pool *to)
{
    struct worker *w = r->w;
    struct child_key ck;
    if (!child_key(r, op, to, where, t->b64, &ck))
        return;
    struct shadow_read *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return;
    s->w = w;
    s->route = (int)route;
    s->pending = 1;
    /* a classic read still waiting for its own answer, with no herd bookkeeping: compare */
    if (is_retrieval(t->cmd) && op->be && op->pol == NULL && op->fail == OP_FAIL_NONE &&
        op->status == MG_R_NONE && op->shadow == NULL) {
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

__attribute__((noinline)) void route_shadow_copy(struct request *r, struct op *op,
                                                 const struct mg_text_req *t, struct mg_slice where,
                                                 const struct pool *sh)
{
    const struct config *cfg = r->w->cfg;
    uint32_t ids[MG_ROUTE_LEAVES];
    bool del = t->cmd == MG_CMD_DELETE || t->cmd == MG_CMD_MD;
    uint32_t n = leaves(cfg, sh->children[1],
                        is_read(t->cmd) ? LEAVES_READ
                        : del           ? LEAVES_ALL
                                        : LEAVES_WRITE,
                        ids, 0);
    for (uint32_t i = 0; i < n; i++)
        shadow_copy_to(r, op, t, where, sh->id, &cfg->pools[ids[i]]);
}

/* --- replicated routes -------------------------------------------------------------------- */

/* A replicated write: the client's op (the first replica's) waits until `need` answers
 * are in, its own included, then gets the worst of them. */
struct repl_write {
    struct op *op; /* the client's op until it is answered (NULL: not waited for) */
    struct worker *w;
    int route;
    uint32_t level;   /* the level of the op's routes this route is at */
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

void route_worker_destroy(struct worker *w)
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

bool route_repl_hold(struct op *op)
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

/* A replica's answer that is a failure before anything was sent (line: its reply). */
static void repl_bad(struct repl_write *rw, const char *line)
{
    if (rw->op == NULL)
        return;
    rw->bad++;
    if (rw->worst_rank < 3) {
        size_t n = strlen(line);
        rw->worst_rank = 3;
        memcpy(rw->worst, line, n);
        rw->worst_len = (uint32_t)n;
    }
}

/* A write (or delete) through the replicated route at level d of op's routes: op goes to
 * the replica it took (b, sent when sent is true); each other replica (each server pool under
 * it that a write reaches; a delete: every one) gets its own copy. With hold (op was sent, or
 * is about to fail and still answers), the client's answer waits for `writes`' share of them
 * and is the worst; with a replicated route above this one already holding op, this one's
 * copies are sent without holding it. where: the key's placement bytes. */
static void replicate_write(struct request *r, struct op *op, const struct mg_text_req *t,
                            struct mg_slice where, bool sent, bool hold, struct backend *b,
                            const char *bkey, size_t bklen, uint32_t d)
{
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    const struct pool *rp = &cfg->pools[op->lv[d].route];
    struct repl_write *rw = repl_get(w);
    if (rw == NULL)
        return;
    rw->w = w;
    rw->route = (int)rp->id;
    rw->level = d;
    rw->is_delete = t->cmd == MG_CMD_DELETE || t->cmd == MG_CMD_MD;
    rw->b64 = t->b64;
    uint32_t ids[MG_ROUTE_LEAVES];
    uint32_t ncopies = other_leaves(cfg, op, d, rw->is_delete ? LEAVES_ALL : LEAVES_WRITE, ids);
    uint32_t n = ncopies + 1;
    rw->n = n;
    rw->majority = rp->rep_writes == REP_WRITES_MAJORITY;
    rw->need = rp->rep_writes == REP_WRITES_ALL        ? n
               : rp->rep_writes == REP_WRITES_MAJORITY ? n / 2 + 1
                                                       : 1;
    if (rw->is_delete && !sent && b != NULL) /* the replica op went to is down or busy */
        repl_missed(rw, b->health, bkey, bklen, t->b64);
    if (hold && rp->rep_writes != REP_WRITES_ASYNC && op->repl == NULL) {
        rw->op = op; /* route_repl_hold decides when it answers */
        op->repl = rw;
    }
    for (uint32_t i = 0; i < ncopies; i++) {
        struct child_key ck;
        if (!child_key(r, op, &cfg->pools[ids[i]], where, t->b64, &ck)) {
            /* that replica's key style refuses the key: an answer that did not write it */
            ROUTE_COUNT(w, rw->route, replica_errors);
            repl_bad(rw, "CLIENT_ERROR bad command line format");
            continue;
        }
        enum op_fail why;
        struct request *ir =
            request_one(w, ck.b, ck.klen + t->data.len + t->args.len + 64, repl_done, rw, &why);
        if (ir == NULL) { /* that replica is down (or no memory): its answer is a failure */
            ROUTE_COUNT(w, rw->route, replica_errors);
            if (rw->is_delete && why == OP_FAIL_DOWN)
                repl_missed(rw, ck.b->health, ck.key, ck.klen, t->b64);
            repl_bad(rw, "SERVER_ERROR backend down");
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

void route_replay(struct worker *w, struct backend *b)
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

uint32_t route_read_replica(struct request *r, const struct op *op, const struct pool *rp,
                            struct mg_slice place, bool b64)
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
            uint32_t c;
            leaves(cfg, rp->children[i], LEAVES_READ, &c, 0);
            double e = c < w->npool_herd ? w->pool_herd[c].lat_ewma_us : 0;
            if (i == 0 || e < best) {
                best = e;
                pick = i;
            }
        }
    }
    /* a replica that missed deletes serves no reads until they are replayed (a replica that
     * is a route: the pool a read through it tries first) */
    for (uint32_t k = 0; k < n; k++) {
        uint32_t c = (pick + k) % n, first;
        struct child_key ck;
        leaves(cfg, rp->children[c], LEAVES_READ, &first, 0);
        if (!child_key(r, op, &cfg->pools[first], place, b64, &ck))
            return pick;
        if (!health_replaying(ck.b->health))
            return c;
        route_replay(w, ck.b); /* now, if it is up: the next read may use it again */
    }
    return pick;
}

void route_warm_fill(struct op *op, const struct mg_meta_reply *rep)
{
    struct request *r = op->req;
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    const struct mg_text_req *t = &r->t;
    if (r->cfg != cfg || !r->own_copy || t->b64 || op->warm < 0)
        return;
    const struct pool *wu = &cfg->pools[op->lv[op->warm].route];
    struct mg_slice where = op->ckey, v;
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
    /* cold may be a route: each server pool a write through it reaches is filled */
    uint32_t ids[MG_ROUTE_LEAVES];
    uint32_t n = leaves(cfg, wu->children[0], LEAVES_WRITE, ids, 0);
    for (uint32_t i = 0; i < n; i++) {
        struct child_key ck;
        enum op_fail why;
        if (!child_key(r, op, &cfg->pools[ids[i]], where, false, &ck))
            continue;
        struct request *ir = request_one(w, ck.b, ck.klen + rep->data.len + 64, NULL, NULL, &why);
        if (ir == NULL)
            continue;
        /* add: a value written to cold meanwhile wins */
        meta_render_store(&ck.b->wbuf, ck.key, ck.klen, rep->data, (uint32_t)flags, ttl, META_ADD,
                          false, 0, 0);
        request_one_send(ir);
        ROUTE_COUNT(w, wu->id, fills);
    }
}

const struct pool *route_descend(struct request *r, struct op *op, const struct pool *p,
                                 struct mg_slice place, bool b64, uint32_t *ttl_cap, bool *no_pol)
{
    struct worker *w = r->w;
    const struct config *cfg = w->cfg;
    if (op->route < 0) {
        op->route = (int)p->id;
        op->depth = op->fx_pre = op->fx_post = 0;
    }
    op->warm = -1;
    for (uint32_t d = 0; p->kind != POOL_SERVERS; d++) {
        if (d == op->depth) { /* a level not chosen yet (config_finish bounds the depth) */
            op->lv[d].route = p->id;
            op->lv[d].child = p->kind == POOL_REPLICATE && is_read(r->cmd)
                                  ? route_read_replica(r, op, p, place, b64)
                                  : 0;
            op->depth++;
            ROUTE_COUNT(w, p->id, requests);
        }
        uint32_t child = op->lv[d].child;
        if (p->kind == POOL_FAILOVER && child > 0 && p->fo_ttl &&
            (*ttl_cap == 0 || p->fo_ttl < *ttl_cap))
            *ttl_cap = p->fo_ttl; /* the tightest cap of the fallbacks on the way */
        if (p->kind == POOL_WARMUP) {
            *no_pol = true; /* a herd win on cold would hide warm's value */
            if (child == 1)
                op->warm = (int8_t)d;
        }
        p = &cfg->pools[p->children[child]];
    }
    return p;
}

void route_before_send(struct request *r, struct op *op, const struct mg_text_req *t,
                       struct mg_slice where, bool sent, bool early, struct backend *b,
                       const char *bkey, size_t bklen)
{
    const struct config *cfg = r->w->cfg;
    bool del = t->cmd == MG_CMD_DELETE || t->cmd == MG_CMD_MD;
    bool write = !is_read(t->cmd);
    if (op->depth == 1 && op->fx_pre == 0 && write && op->lv[0].child == 0 &&
        cfg->pools[op->route].kind == POOL_REPLICATE) { /* the common case, shorter */
        op->fx_pre = 1;
        replicate_write(r, op, t, where, sent, sent || early, b, bkey, bklen, 0);
        return;
    }
    for (uint32_t d = 0; d < op->depth; d++) {
        const struct pool *rt = &cfg->pools[op->lv[d].route];
        if (op->fx_pre & (1u << d))
            continue;
        if (rt->kind == POOL_REPLICATE && write) {
            replicate_write(r, op, t, where, sent, sent || early, b, bkey, bklen, d);
        } else if (del && rt->kind != POOL_SHADOW) {
            if (early)
                continue; /* the pool op moves to next must not have it deleted first */
            delete_on_children(r, op, t, where, d); /* a fallback's copy must not outlive it */
        }
        op->fx_pre |= (uint8_t)(1u << d);
    }
    for (uint32_t d = 0; sent && write && d < op->depth; d++) /* each time it is sent */
        if (op->lv[d].child > 0 && cfg->pools[op->lv[d].route].kind == POOL_FAILOVER)
            ROUTE_COUNT(r->w, op->lv[d].route, fallback_writes);
}

void route_after_send(struct request *r, struct op *op, const struct mg_text_req *t,
                      struct mg_slice where, bool sent)
{
    uint32_t todo = ((1u << op->depth) - 1u) & ~(uint32_t)op->fx_post;
    op->fx_post = (uint8_t)(op->fx_post | todo);
    if (!sent || t->cmd == MG_CMD_ME)
        return;
    const struct config *cfg = r->w->cfg;
    while (todo) {
        uint32_t d = (uint32_t)__builtin_ctz(todo);
        todo &= todo - 1;
        const struct pool *sh = &cfg->pools[op->lv[d].route];
        if (sh->kind == POOL_SHADOW && switch_on(sh->shadow_switch, where.p, where.len))
            route_shadow_copy(r, op, t, where, sh);
    }
}

/* The deepest level of op's routes that moves op on to its next child: after a failure of
 * kind why, or (why < 0) after a miss. -1 when none does, or when op cannot be sent again:
 * only under the config it was sent with, and with the request's own copy of the command. */
static int next_level(struct op *op, int why)
{
    struct request *r = op->req;
    struct worker *w = r->w;
    if (r->cfg != w->cfg || !r->own_copy || w->tearing_down)
        return -1;
    for (int d = (int)op->depth - 1; d >= 0; d--) {
        const struct pool *rt = &w->cfg->pools[op->lv[d].route];
        if (op->lv[d].child + 1 >= rt->nchildren)
            continue;
        if (why < 0 ? rt->fo_on_miss
                    : (rt->fo_on & (1u << why)) &&
                          !(rt->kind == POOL_REPLICATE && !is_read(r->cmd))) /* writes: all */
            return d;
    }
    return -1;
}

/* Send op to the next child of level d; the levels below it are chosen anew. A replicated
 * write below d no longer holds op: the pool it moves to answers (mcrouter's failover of an
 * AllSyncRoute), the replicas' copies go on by themselves. */
static bool move_on(struct op *op, int d)
{
    struct repl_write *rw = op->repl;
    if (rw != NULL && rw->level > (uint32_t)d) {
        rw->op = NULL;
        op->repl = NULL;
        repl_maybe_free(rw);
    }
    op->lv[d].child++;
    op->depth = (uint8_t)(d + 1);
    op->fx_pre &= (uint8_t)((1u << op->depth) - 1); /* the levels below are new */
    op->fx_post &= (uint8_t)((1u << op->depth) - 1);
    return dispatch_resend(op);
}

bool route_failover(struct op *op, enum op_fail why)
{
    int d = next_level(op, (int)why);
    if (d < 0) {
        ROUTE_COUNT(op->req->w, op->route, failed);
        return false;
    }
    ROUTE_COUNT(op->req->w, op->lv[d].route, fallbacks);
    return move_on(op, d);
}

bool route_miss_next(struct op *op)
{
    struct request *r = op->req;
    if (!is_retrieval(r->cmd) && r->cmd != MG_CMD_MG)
        return false;
    int d = next_level(op, -1);
    if (d < 0)
        return false;
    ROUTE_COUNT(r->w, op->lv[d].route, misses_moved);
    return move_on(op, d);
}
