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

/* A delete through a route reaches every child, not only the one that answers the
 * client: each other child gets an md of its own (fire and forget; a child that is down
 * is counted as skipped). where: the key's placement bytes. */
void route_delete_on_children(struct request *r, struct op *op, const struct mg_text_req *t,
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

/* Send a copy of op's command (t) to the shadow route's copy pool when its switch has
 * the key on. Never delays or changes the client's answer. where: placement bytes. */
void route_shadow_copy(struct request *r, struct op *op, const struct mg_text_req *t,
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

/* A write (or delete) through a replicated route: op goes to the first replica (tg, sent
 * when sent is true); each other replica gets its own copy. The client's answer waits for
 * `writes`' share of them and is the worst. where: the key's placement bytes. */
void route_replicate_write(struct request *r, struct op *op, const struct mg_text_req *t,
                           struct mg_slice where, bool sent, struct backend *b, const char *bkey,
                           size_t bklen)
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
    if (rw->is_delete && !sent && b && op->fail == OP_FAIL_DOWN)
        repl_missed(rw, b->health, bkey, bklen, t->b64); /* the first replica's */
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

uint32_t route_read_replica(struct request *r, const struct pool *rp, struct mg_slice place,
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

bool route_failover(struct op *op, enum op_fail why)
{
    const struct pool *fo = route_next(op);
    if (fo == NULL || !(fo->fo_on & (1u << why)) ||
        (fo->kind == POOL_REPLICATE && !is_read(op->req->cmd))) {
        ROUTE_COUNT(op->req->w, op->route, failed);
        return false;
    }
    op->child++;
    ROUTE_COUNT(op->req->w, op->route, fallbacks);
    return dispatch_resend(op);
}

bool route_miss_next(struct op *op)
{
    struct request *r = op->req;
    if (!is_retrieval(r->cmd) && r->cmd != MG_CMD_MG)
        return false;
    const struct pool *fo = route_next(op);
    if (fo == NULL || !fo->fo_on_miss)
        return false;
    op->child++;
    ROUTE_COUNT(r->w, op->route, misses_moved);
    return dispatch_resend(op);
}
