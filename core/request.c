/* request.c: turning client commands into backend meta commands and replies back. */
#include "request.h"
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "conn.h"
#include "herd.h"
#include "log.h"
#include "near.h"
#include "plugin.h"
#include "slowlog.h"
#include "stats.h"
#include "trace.h"
#include "worker.h"

/* Requests kept for reuse per worker, and the buffer size each keeps: bounded so that a
 * burst of large replies does not stay in the cache after its connections are gone. */
#define REQ_CACHE_MAX 1024
#define REQ_BUF_KEEP (4 * 1024)

static const char END_CRLF[] = "END\r\n";

/* A request from the worker's cache, or a new one. Returns NULL when out of memory. */
struct request *request_get(struct worker *w)
{
    struct request *r = w->free_reqs;
    if (r) {
        w->free_reqs = r->next;
        w->nfree_reqs--;
    } else {
        r = calloc(1, sizeof(*r));
        if (r == NULL)
            return NULL;
    }
    r->next = NULL;
    r->w = w;
    r->cfg = w->cfg;
    w->cfg_live++;
    r->done = r->noreply = r->quiet = r->partial = r->bin_hit = false;
    r->line = NULL;
    r->flow = 0;
    r->own_copy = r->parked = r->res_nobatch = r->t_stale = false;
    r->next_key = r->keypos = r->res_until = 0;
    r->key_head_len = r->key_len = 0;
    r->rkeys.off = r->rkeys.len = 0; /* the resolutions' keys: kept for a route's resends */
    r->on_done = NULL;
    r->explain_to = NULL;
    r->tr_session = 0;
    r->nops = r->pending = r->nfailed = 0;
    r->outlen = 0;
    r->err = NULL;
    return r;
}

/* Make room for n ops and reset them. Returns MG_OK or MG_ERR. */
int request_ops(struct request *r, uint32_t n)
{
    if (n > r->ops_cap) {
        struct op *ops = realloc(r->ops, n * sizeof(struct op));
        if (ops == NULL)
            return MG_ERR;
        memset(ops + r->ops_cap, 0, (n - r->ops_cap) * sizeof(struct op));
        r->ops = ops;
        r->ops_cap = n;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct op *op = &r->ops[i];
        op->req = r;
        op->be = NULL;
        op->next = NULL;
        op->status = MG_R_NONE;
        op->fail = OP_FAIL_NONE;
        op->out.off = op->out.len = 0;
        op->pol = NULL;
        op->hw = NULL;
        op->followers = op->next_follower = NULL;
        op->leading = false;
        op->rekey = false;
        op->add_k = false;
        op->herd_lease = false;
        op->guard = OP_GUARD_NONE;
        op->no_wait = false;
        op->near_fill = op->near_inval = false;
        op->near_wf = NULL;
        op->ckey = (struct mg_slice){ NULL, 0 };
        op->pool = -1;
        op->route = -1;
        op->depth = op->fx_pre = op->fx_post = 0;
        op->warm = -1;
        op->shadow = NULL;
        op->repl = NULL;
    }
    r->nops = n;
    return MG_OK;
}

struct get_line *get_line_new(void)
{
    struct get_line *l = calloc(1, sizeof(*l));
    if (l)
        l->refs = 1;
    return l;
}

void get_line_unref(struct get_line *l)
{
    if (l && --l->refs == 0)
        free(l);
}

void get_line_add(struct get_line *l, struct request *r, bool partial)
{
    l->refs++;
    r->line = l;
    if (partial) {
        l->open++;
    } else {
        l->last = r;
        if (l->open)
            r->pending++; /* released by the last earlier piece to complete */
    }
}

void request_release(struct request *r)
{
    struct worker *w = r->w;
    if (MG_LIKELY(r->cfg == w->cfg))
        w->cfg_live--;
    else
        worker_cfg_release(w, r->cfg);
    if (MG_UNLIKELY(r->line != NULL)) {
        get_line_unref(r->line);
        r->line = NULL;
    }
    for (uint32_t i = 0; i < r->ops_cap; i++) {
        buf_reset(&r->ops[i].out, REQ_BUF_KEEP);
        buf_reset(&r->ops[i].key, REQ_BUF_KEEP);
    }
    buf_reset(&r->out, REQ_BUF_KEEP);
    buf_reset(&r->raw, REQ_BUF_KEEP);
    buf_reset(&r->rkeys, REQ_BUF_KEEP);
    buf_reset(&r->tkeys, REQ_BUF_KEEP);
#ifndef MG_SANITIZE
    if (w->nfree_reqs < REQ_CACHE_MAX && r->ops_cap <= 64) {
        r->next = w->free_reqs;
        w->free_reqs = r;
        w->nfree_reqs++;
        return;
    }
#else
    MG_UNUSED(w);
#endif
    for (uint32_t i = 0; i < r->ops_cap; i++) {
        buf_free(&r->ops[i].out);
        buf_free(&r->ops[i].key);
    }
    free(r->ops);
    buf_free(&r->out);
    buf_free(&r->raw);
    buf_free(&r->rkeys);
    buf_free(&r->tkeys);
    free(r);
}

void request_cache_drain(void *worker)
{
    struct worker *w = worker;
    while (w->free_reqs) {
        struct request *r = w->free_reqs;
        w->free_reqs = r->next;
        for (uint32_t i = 0; i < r->ops_cap; i++) {
            buf_free(&r->ops[i].out);
            buf_free(&r->ops[i].key);
        }
        free(r->ops);
        buf_free(&r->out);
        buf_free(&r->raw);
        buf_free(&r->rkeys);
        buf_free(&r->tkeys);
        free(r);
    }
    w->nfree_reqs = 0;
}

/* A slow request into the slow log, and every Nth request into the log when the sampled
 * request log is on. */
static void request_note(struct worker *w, struct request *r, uint64_t us)
{
    uint_fast32_t every = atomic_load_explicit(&requestlog_every, memory_order_relaxed);
    bool slow = us >= atomic_load_explicit(&slowlog_threshold_us, memory_order_relaxed);
    bool sampled = every && ++w->requestlog_n % every == 0;
    if (!slow && !sampled)
        return;
    struct slow_entry e = { .us = us, .cmd = mg_cmd_name(r->cmd) };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e.when = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    e.klen = r->key_head_len;
    e.key_len = r->key_len;
    memcpy(e.key, r->key_head, e.klen);
    snprintf(e.client, sizeof(e.client), "%s", r->c->peer);
    const struct op *op = r->nops ? &r->ops[0] : NULL;
    if (op && op->pool >= 0 && r->cfg == w->cfg && (uint32_t)op->pool < w->cfg->npools)
        snprintf(e.pool, sizeof(e.pool), "%s", w->cfg->pools[op->pool].name);
    if (op && op->be)
        snprintf(e.server, sizeof(e.server), "%s", op->be->name);
    /* outcome: a read's hits, else the first reply line */
    const struct buf *b = op && buf_unread(&op->out) ? &op->out : &r->out;
    if (is_retrieval(r->cmd) && r->nfailed < r->nops) {
        uint32_t hits = 0;
        for (uint32_t i = 0; i < r->nops; i++)
            hits += r->ops[i].status == MG_R_VA;
        snprintf(e.outcome, sizeof(e.outcome), "hits %u/%u", hits, r->nops);
    } else if (r->nfailed && r->err) {
        snprintf(e.outcome, sizeof(e.outcome), "%s", r->err);
    } else {
        const char *l = buf_head(b);
        size_t n = 0, max = buf_unread(b);
        while (n < max && n < sizeof(e.outcome) - 1 && l[n] != '\r' && l[n] != '\n')
            n++;
        memcpy(e.outcome, l, n);
        e.outcome[n] = '\0';
    }
    if (slow) {
        STAT_INC(w->st.slow_requests);
        slowlog_push(&e);
    }
    if (sampled) {
        char line[1024];
        slowlog_line(&e, line, sizeof(line));
        log_warn("request: %s", line); /* asked for at run time: shown at any -v */
    }
}

/* What op's client was told, as a backend status for trace_outcome (MG_R_NONE: failed).
 * A classic read's reply is the one to go by: a herd follower's status stays unset, and a
 * stale value herd turned into a miss was not returned. */
static enum mg_rstatus trace_status(const struct request *r, const struct op *op)
{
    if (op->fail != OP_FAIL_NONE)
        return MG_R_NONE;
    if (is_retrieval(r->cmd)) { /* the VALUE line begun at dispatch stays for a hit only */
        if (buf_unread(&op->out))
            return MG_R_VA;
        return op->status == MG_R_VA || op->status == MG_R_EN || op->status == MG_R_NONE
                   ? MG_R_EN
                   : MG_R_NONE;
    }
    return op->status;
}

/* A traced request's lines (one per traced key) to its worker's trace buffer. */
static void request_trace(struct request *r)
{
    struct buf *b = &r->tkeys;
    size_t from = b->len;
    uint32_t lines = 0;
    for (uint32_t i = 0; i < r->nops; i++) {
        const struct op *op = &r->ops[i];
        if (op->tkey_len == 0)
            continue;
        enum mg_rstatus s = trace_status(r, op);
        struct trace_rec rec = { .when = r->tr_when,
                                 .op = r->tr_op,
                                 .outcome = trace_outcome(r->cmd, s),
                                 .klen = op->tkey_len,
                                 .ttl = r->tr_ttl };
        rec.vsize = r->tr_vsize != TRACE_VSIZE_REPLY ? r->tr_vsize : s == MG_R_VA ? op->vlen : 0;
        if (buf_reserve(b, op->tkey_len + TRACE_LINE_EXTRA) != MG_OK)
            break;
        rec.key = b->data + op->tkey_off; /* after the reserve: it may have moved */
        if (trace_line(b, &rec) == MG_OK)
            lines++;
    }
    trace_put(r->w->id, r->tr_session, b->data + from, b->len - from, lines);
    r->tr_session = 0;
}

bool request_is_bin(const struct request *r)
{
    return r->c && r->c->bin;
}

void request_bin_cas(struct request *r, const struct mg_meta_reply *rep)
{
    struct mg_slice v;
    uint64_t cas = 0;
    if (mg_meta_flag(rep->flags, 'c', &v))
        for (uint32_t i = 0; i < v.len && v.p[i] >= '0' && v.p[i] <= '9'; i++)
            cas = cas * 10 + (uint64_t)(v.p[i] - '0');
    r->bin_cas = cas;
}

/* A binary client's request: its text reply (one op's part, or the trailer) becomes
 * memcached's binary answer, in the request's own raw buffer (the command is no longer
 * needed), which then takes the trailer's place. */
static void request_bin_render(struct request *r)
{
    if (r->bin_hit) { /* out_value_bin made the packet: the text trailer (END) goes */
        r->out.off = r->out.len = 0;
        return;
    }
    const struct buf *text = r->nops && buf_unread(&r->ops[0].out) ? &r->ops[0].out : &r->out;
    struct buf *b = &r->raw;
    b->off = b->len = 0;
    if (mg_bin_from_text(b, &r->bin, buf_head(text), buf_unread(text), r->bin_cas) != MG_OK) {
        b->off = b->len = 0;
        mg_bin_from_text(b, &r->bin, "SERVER_ERROR out of memory", 26, 0);
    }
    for (uint32_t i = 0; i < r->nops; i++)
        r->ops[i].out.off = r->ops[i].out.len = 0;
    struct buf t = r->out;
    r->out = *b;
    *b = t;
}

/* Every op of r answered: settle the reply and hand it to the connection. */
void request_complete(struct request *r)
{
    struct worker *w = r->w;
    if (r->c == NULL) { /* the gateway's own request: nobody to answer */
        if (r->on_done)
            r->on_done(r); /* e.g. resumes the Lua coroutine of a pool call */
        else
            request_release(r);
        return;
    }
    if (MG_LIKELY(stats_observe)) {
        /* client-observed: from its parse (this loop's time then) to its reply being ready */
        ev_tstamp took = ev_now(w->loop) - r->t0;
        uint64_t us = took > 0 ? (uint64_t)(took * 1e6) : 0;
        hist_add(&w->st.cmd_lat[r->cmd <= MG_CMD_UNKNOWN ? r->cmd : MG_CMD_UNKNOWN], us);
        if (MG_UNLIKELY(us >= atomic_load_explicit(&slowlog_gate_us, memory_order_relaxed)))
            request_note(w, r, us);
    }
    if (MG_UNLIKELY(r->tr_session != 0))
        request_trace(r);
    uint32_t nops = r->nops, nfailed = r->nfailed;
    const char *err = r->err;
    struct get_line *l = r->line;
    if (MG_UNLIKELY(l != NULL)) { /* a piece of a long get line: the line's totals decide */
        nops = l->nops += r->nops;
        nfailed = l->nfailed += r->nfailed;
        if (l->err == NULL)
            l->err = r->err;
        err = l->err;
    }
    if (MG_UNLIKELY(r->partial)) { /* a piece before the last: no trailer */
        if (r->nfailed)
            STAT_ADD(w->st.get_errors, r->nfailed);
        if (l && --l->open == 0 && l->last && --l->last->pending == 0)
            request_complete(l->last);
    } else if (is_retrieval(r->cmd)) {
        if (nfailed && nfailed == nops) {
            buf_append_str(&r->out, err);
            buf_append(&r->out, "\r\n", 2);
        } else {
            if (r->nfailed)
                STAT_ADD(w->st.get_errors, r->nfailed);
            buf_append(&r->out, END_CRLF, sizeof(END_CRLF) - 1);
        }
    } else if (r->cmd == MG_CMD_FLUSH_ALL) {
        if (r->nfailed) {
            buf_append_str(&r->out, r->err);
            buf_append(&r->out, "\r\n", 2);
        } else {
            buf_append(&r->out, "OK\r\n", 4);
        }
    }
    if (MG_UNLIKELY(r->c->bin))
        request_bin_render(r);
    size_t total = 0;
    for (uint32_t i = 0; i < r->nops; i++) {
        if (r->noreply)
            r->ops[i].out.off = r->ops[i].out.len = 0;
        total += buf_unread(&r->ops[i].out);
    }
    if (r->noreply)
        r->out.off = r->out.len = 0;
    r->outlen = total + buf_unread(&r->out);
    conn_request_done(r->c, r);
}

void op_finish(struct op *op)
{
    struct request *r = op->req;
    if (MG_UNLIKELY(op->near_inval)) { /* a write: no worker answers the old value near */
        op->near_inval = false;
        if (r->c)
            r->c->near_writes--;
        if (near_invalidate(op->near_h))
            STAT_INC(r->w->st.near_invalidations);
        if (MG_UNLIKELY(op->near_wf != NULL))
            dispatch_near_write_fill(op); /* its own value, when nothing else came between */
    } else if (MG_UNLIKELY(r->cmd == MG_CMD_FLUSH_ALL) && near_ready()) {
        near_clear();
    }
    if (MG_UNLIKELY(op->repl != NULL) && route_repl_hold(op))
        return;
    if (--r->pending == 0)
        request_complete(r);
}

/* Append s and \r\n to b. */
void put_line(struct buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n + 2) != MG_OK)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len++] = '\r';
    b->data[b->len++] = '\n';
}

void op_reply_miss(struct op *op)
{
    op->out.off = op->out.len = 0;
    STAT_INC(op->req->w->st.get_misses);
    op_finish(op);
}

void op_fail(struct op *op, enum op_fail why, const char *err)
{
    struct request *r = op->req;
    herd_forget(op);
    for (struct op *f = herd_unlead(r->w, op), *next; f; f = next) {
        next = f->next_follower;
        op_fail(f, why, err); /* through a failover route each follower moves on itself */
    }
    if (MG_UNLIKELY(op->shadow != NULL))
        route_shadow_main(op, NULL);
    if (MG_UNLIKELY(op->route >= 0) && route_failover(op, why))
        return; /* sent to the route's next pool, with fresh herd bookkeeping there */
    op->out.off = op->out.len = 0;
    op->status = MG_R_NONE;
    op->fail = why;
    STAT_INC(r->w->st.backend_errors);
    if (op->be && r->cfg == r->w->cfg)
        stats_backend_fail(r->w, op->pool, op->be, why);
    if (is_retrieval(r->cmd) || r->cmd == MG_CMD_FLUSH_ALL) {
        r->nfailed++;
        if (r->err == NULL)
            r->err = err;
    } else {
        put_line(&op->out, err, strlen(err));
    }
    op_finish(op);
}

/* Where in rep's line a k flag goes: before the first returned flag that the request had
 * after k (after: their mg_meta_letter_bit set), or before the W, X and Z marks. */
static size_t k_position(const struct mg_meta_reply *rep, uint64_t after)
{
    if (rep->flags.len == 0)
        return rep->line.len;
    const char *p = rep->flags.p, *end = p + rep->flags.len;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        if (p == end)
            break;
        int bit = mg_meta_letter_bit((unsigned char)*p);
        if (bit >= 0 && (((after >> bit) & 1) || strchr("WXZ", *p)))
            return (size_t)(p - rep->line.p) - 1; /* the space before it */
        while (p < end && *p != ' ')
            p++;
    }
    return (size_t)(end - rep->line.p);
}

/* Pass a reply through verbatim (meta clients, and errors). A k flag carrying a
 * transformed key is given the client's key back. */
static void out_verbatim(struct op *op, const struct mg_meta_reply *rep)
{
    struct mg_slice kv;
    if (op->rekey && mg_meta_flag(rep->flags, 'k', &kv)) {
        size_t head = (size_t)(kv.p - rep->line.p), tail = rep->line.len - head - kv.len;
        buf_append(&op->out, rep->line.p, head);
        buf_append(&op->out, op->ckey.p, op->ckey.len);
        put_line(&op->out, kv.p + kv.len, tail);
    } else if (op->add_k && rep->status >= MG_R_VA && rep->status <= MG_R_EX) {
        /* where memcached puts it: flags answer in the request's order, then W, X, Z */
        size_t at = k_position(rep, op->k_after);
        buf_append(&op->out, rep->line.p, at);
        buf_append(&op->out, " k", 2);
        buf_append(&op->out, op->ckey.p, op->ckey.len);
        buf_append(&op->out, " b", 2);
        put_line(&op->out, rep->line.p + at, rep->line.len - at);
    } else {
        put_line(&op->out, rep->line.p, rep->line.len);
    }
    if (rep->status == MG_R_VA) {
        buf_append(&op->out, rep->data.p, rep->data.len);
        buf_append(&op->out, "\r\n", 2);
    }
}

/* Finish a VALUE line begun at dispatch ("VALUE <key> ") from a VA reply. */
/* The f (client flags) and c (CAS) of a meta reply's flags, in one pass; 0 when absent. */
static void meta_flags_fc(struct mg_slice flags, uint32_t *f, uint64_t *cas)
{
    const char *p = flags.p, *end = flags.p + flags.len;
    *f = 0;
    *cas = 0;
    while (p < end) {
        char letter = *p++;
        uint64_t v = 0;
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            v = v * 10 + (uint64_t)(*p - '0');
        if (letter == 'f')
            *f = (uint32_t)v;
        else if (letter == 'c')
            *cas = v;
        while (p < end && *p != ' ') /* the rest of a token that is not a number */
            p++;
        while (p < end && *p == ' ')
            p++;
    }
}

/* A binary client's hit: its packet (the flags in the extras, the CAS in the header)
 * straight from the backend's reply, with no text in between (request_bin_render then
 * only drops the trailer). */
static void out_value_bin(struct op *op, const struct mg_meta_reply *rep)
{
    struct request *r = op->req;
    uint32_t flags;
    uint64_t cas;
    meta_flags_fc(rep->flags, &flags, &cas);
    const char fl[4] = { (char)(flags >> 24), (char)(flags >> 16), (char)(flags >> 8),
                         (char)flags };
    struct mg_slice key = { r->bin.key, r->bin.with_key ? r->bin.klen : 0 };
    struct mg_slice val = r->bin.opcode == MG_BIN_TOUCH ? (struct mg_slice){ NULL, 0 } : rep->data;
    op->out.off = op->out.len = 0; /* the "VALUE <key> " dispatch began: text only */
    if (mg_bin_packet(&op->out, &r->bin, MG_BIN_OK, cas, (struct mg_slice){ fl, 4 }, key, val) ==
        MG_OK)
        r->bin_hit = true;
}

static void out_value(struct op *op, const struct mg_meta_reply *rep, bool with_cas)
{
    if (MG_UNLIKELY(request_is_bin(op->req))) {
        out_value_bin(op, rep);
        return;
    }
    struct mg_slice f = { "0", 1 }, cas = { "0", 1 };
    mg_meta_flag(rep->flags, 'f', &f);
    if (f.len == 0)
        f = (struct mg_slice){ "0", 1 };
    if (with_cas)
        mg_meta_flag(rep->flags, 'c', &cas);
    struct buf *b = &op->out;
    if (buf_reserve(b, f.len + cas.len + 32 + rep->data.len) != MG_OK)
        return;
    memcpy(b->data + b->len, f.p, f.len);
    b->len += f.len;
    b->data[b->len++] = ' ';
    buf_append_u64(b, rep->data.len);
    if (with_cas) {
        b->data[b->len++] = ' ';
        memcpy(b->data + b->len, cas.p, cas.len);
        b->len += cas.len;
    }
    memcpy(b->data + b->len, "\r\n", 2);
    b->len += 2;
    memcpy(b->data + b->len, rep->data.p, rep->data.len);
    b->len += rep->data.len;
    memcpy(b->data + b->len, "\r\n", 2);
    b->len += 2;
}

/* A reply that does not fit the command: a backend error line is passed on, anything else
 * becomes a generic error. */
static void out_unexpected(struct op *op, const struct mg_meta_reply *rep)
{
    struct request *r = op->req;
    if (is_retrieval(r->cmd) || r->cmd == MG_CMD_FLUSH_ALL) {
        op->out.off = op->out.len = 0;
        r->nfailed++;
        if (r->err == NULL)
            r->err = "SERVER_ERROR backend error";
        return;
    }
    if (rep->status == MG_R_CLIENT_ERROR || rep->status == MG_R_SERVER_ERROR ||
        rep->status == MG_R_ERROR)
        put_line(&op->out, rep->line.p, rep->line.len);
    else
        put_line(&op->out, "SERVER_ERROR unexpected backend reply", 37);
}

/* Run the plug-in's hook for event on op, if it has one (out of line: rarely taken). */
static int op_hook(struct op *op, int event)
{
    const struct engine_plugin *pl = op->req->w->plugin;
    return pl->hook && op->ckey.p ? pl->hook(op, (enum op_event)event) : MG_OK;
}

/* The op's reply is rendered: run the script's hook for event (if it has one), then
 * finish. A hook that waits for pool calls finishes the op from its continuation. */
static inline void op_settle(struct op *op, int event)
{
    if (event >= 0 && op->req->w->plugin && op_hook(op, event) == MG_EAGAIN)
        return;
    op_finish(op);
}

/* Answer a classic get under a staleness policy as herd decided. */
static void herd_answer(struct op *op, const struct mg_meta_reply *rep, enum herd_verdict v)
{
    struct stats *st = &op->req->w->st;
    switch (v) {
    case HERD_PENDING:
        return; /* herd answers it later */
    case HERD_HIT:
        STAT_INC(st->get_hits);
        op->vlen = rep->data.len; /* a follower's too (the trace) */
        out_value(op, rep, op->req->cmd == MG_CMD_GETS);
        break;
    case HERD_MISS:
        STAT_INC(st->get_misses);
        op->out.off = op->out.len = 0;
        break;
    case HERD_ERROR:
        out_unexpected(op, rep);
        break;
    }
    op_settle(op, v == HERD_MISS ? OP_EV_MISS : -1);
}

/* How a backend status becomes a classic reply: the line (NULL: the value itself, for
 * incr/decr) and the counter it moves (an offset in struct stats, or -1). */
struct xlate {
    enum mg_rstatus status;
    const char *line;
    long stat;
};
#define XS(f) ((long)offsetof(struct stats, f))
static const struct xlate xl_store[] = {
    { MG_R_HD, "STORED", -1 },
    { MG_R_NS, "NOT_STORED", -1 },
    { MG_R_EX, "EXISTS", XS(cas_badval) },
    { MG_R_NF, "NOT_FOUND", XS(cas_misses) },
    { MG_R_NONE, NULL, -1 },
};
static const struct xlate xl_cas[] = {
    { MG_R_HD, "STORED", XS(cas_hits) },
    { MG_R_NS, "NOT_STORED", -1 },
    { MG_R_EX, "EXISTS", XS(cas_badval) },
    { MG_R_NF, "NOT_FOUND", XS(cas_misses) },
    { MG_R_NONE, NULL, -1 },
};
static const struct xlate xl_delete[] = {
    { MG_R_HD, "DELETED", XS(delete_hits) },
    { MG_R_NF, "NOT_FOUND", XS(delete_misses) },
    { MG_R_NONE, NULL, -1 },
};
static const struct xlate xl_incr[] = {
    { MG_R_VA, NULL, XS(incr_hits) },
    { MG_R_NF, "NOT_FOUND", XS(incr_misses) },
    { MG_R_NONE, NULL, -1 },
};
static const struct xlate xl_decr[] = {
    { MG_R_VA, NULL, XS(decr_hits) },
    { MG_R_NF, "NOT_FOUND", XS(decr_misses) },
    { MG_R_NONE, NULL, -1 },
};
static const struct xlate xl_touch[] = {
    { MG_R_HD, "TOUCHED", XS(touch_hits) },
    { MG_R_EN, "NOT_FOUND", XS(touch_misses) },
    { MG_R_NONE, NULL, -1 },
};
#undef XS

/* Render rep for op by table xl; a status the table lacks is unexpected. A store that
 * went through wakes herd waiters for its key. */
static void out_status(struct op *op, const struct mg_meta_reply *rep, const struct xlate *xl)
{
    for (; xl->status != MG_R_NONE; xl++) {
        if (xl->status != rep->status)
            continue;
        if (xl->line)
            put_line(&op->out, xl->line, strlen(xl->line));
        else
            put_line(&op->out, rep->data.p, rep->data.len);
        if (xl->stat >= 0)
            STAT_INC(*(atomic_uint_fast64_t *)((char *)&op->req->w->st + xl->stat));
        if (MG_UNLIKELY(request_is_bin(op->req)))
            request_bin_cas(op->req, rep);
        if (rep->status == MG_R_HD && op->pol && op->req->cmd >= MG_CMD_SET &&
            op->req->cmd <= MG_CMD_CAS)
            herd_on_stored(op->req->w, buf_head(&op->key), buf_unread(&op->key));
        return;
    }
    out_unexpected(op, rep);
}

void op_reply(struct op *op, const struct mg_meta_reply *rep)
{
    struct request *r = op->req;
    if (op->be) /* ev_now: the time this loop iteration started, good to a few µs here */
        stats_latency(r->w, r->cfg == r->w->cfg ? op->pool : -1, op->be,
                      (ev_now(r->w->loop) - op->sent) * 1e6);
    struct stats *st = &r->w->st;
    enum mg_rstatus s = rep->status;
    if (MG_UNLIKELY(op->route >= 0)) {
        if (MG_UNLIKELY(op->shadow != NULL))
            route_shadow_main(op, rep);
        if (s == MG_R_EN && route_miss_next(op))
            return;
        if (s == MG_R_VA && op->warm >= 0 && is_retrieval(r->cmd))
            route_warm_fill(op, rep);
    }
    op->status = s;
    op->vlen = s == MG_R_VA ? rep->data.len : 0;
    if (MG_UNLIKELY(op->near_fill) && s == MG_R_VA)
        dispatch_near_fill(op, rep);
    if (MG_UNLIKELY(op->near_wf != NULL) && s == MG_R_HD)
        dispatch_near_stored(op, rep);
    if (op->pol && is_retrieval(r->cmd)) { /* a classic get under a staleness policy */
        struct op *f = herd_unlead(r->w, op);
        herd_answer(op, rep, herd_on_get_reply(op, rep));
        while (f) {
            struct op *next = f->next_follower;
            herd_answer(f, rep, herd_on_follower_reply(f, rep));
            f = next;
        }
        return;
    }
    switch (r->cmd) {
    case MG_CMD_GET:
    case MG_CMD_GETS:
    case MG_CMD_GAT:
    case MG_CMD_GATS:
        if (s == MG_R_VA) {
            STAT_INC(st->get_hits);
            out_value(op, rep, r->cmd == MG_CMD_GETS || r->cmd == MG_CMD_GATS);
        } else if (s == MG_R_EN) {
            STAT_INC(st->get_misses);
            op->out.off = op->out.len = 0;
        } else {
            out_unexpected(op, rep);
        }
        break;
    case MG_CMD_SET:
    case MG_CMD_ADD:
    case MG_CMD_REPLACE:
    case MG_CMD_APPEND:
    case MG_CMD_PREPEND:
        if (MG_UNLIKELY(op->guard != OP_GUARD_NONE) && herd_on_guarded_reply(op, rep)) {
            /* A regeneration's store refused: a write or delete of the key reached memcached
             * after the win and before this store, so the value (read from the database
             * before that write, for all we know) may be stale. The client still hears
             * STORED: the two writes were concurrent, and the store is ordered just before
             * the other one, which then overwrote or deleted it. Every reader sees a history
             * that could have happened, and the stale value never lands; NOT_STORED would
             * send a client that only filled a cache down an error path. Its hooks see the
             * set it was told of. */
            s = op->status = MG_R_HD;
            put_line(&op->out, "STORED", 6);
            break;
        }
        out_status(op, rep, xl_store);
        break;
    case MG_CMD_CAS:
        out_status(op, rep, xl_cas);
        break;
    case MG_CMD_DELETE:
        out_status(op, rep, xl_delete);
        break;
    case MG_CMD_INCR:
        out_status(op, rep, xl_incr);
        break;
    case MG_CMD_DECR:
        out_status(op, rep, xl_decr);
        break;
    case MG_CMD_TOUCH:
        out_status(op, rep, xl_touch);
        break;
    case MG_CMD_FLUSH_ALL:
        if (s != MG_R_OK)
            out_unexpected(op, rep);
        break;
    case MG_CMD_NONE: /* the gateway's own request: keep the reply for whoever asked */
        out_verbatim(op, rep);
        break;
    default: /* meta commands: verbatim, minus what q hides */
        /* as memcached's q: mg hides EN; ms and md hide HD; ma hides HD and VA */
        if (r->quiet &&
            ((s == MG_R_EN && r->cmd == MG_CMD_MG) || (s == MG_R_HD && r->cmd != MG_CMD_MG) ||
             (s == MG_R_VA && r->cmd == MG_CMD_MA)))
            break;
        out_verbatim(op, rep);
        break;
    }
    int event = -1;
    if (is_retrieval(r->cmd) && s == MG_R_EN)
        event = OP_EV_MISS;
    else if (r->cmd >= MG_CMD_SET && r->cmd <= MG_CMD_CAS && s == MG_R_HD)
        event = OP_EV_SET;
    else if (r->cmd == MG_CMD_DELETE && (s == MG_R_HD || s == MG_R_NF))
        event = OP_EV_DELETE;
    op_settle(op, event);
}
