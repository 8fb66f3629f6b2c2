/* dispatch_explain.c: the admin `route` command (dispatch_explain): where a key would go and
 * why -- the resolution (script or prefix table), the route chain, the pool, backend key,
 * server and its state, the staleness policy and every switch -- without sending it. */
#include <string.h>

#include "backend.h"
#include "conn.h"
#include "dispatch_int.h"
#include "keys.h"
#include "plugin.h"
#include "request.h"
#include "route.h"
#include "switch.h"
#include "worker.h"

static void explain_policy(struct buf *o, const struct stale_policy *pol)
{
    if (pol == NULL) {
        buf_append_str(o, "STAT policy none\r\n");
        return;
    }
    buf_printf(o, "STAT policy grace=%u lock=%u wait_ms=%u%s%s%s", pol->grace, pol->lock,
               pol->wait_ms, pol->mark_stale ? " mark_stale" : "", pol->coalesce ? " coalesce" : "",
               pol->guard ? " guard" : "");
    if (pol->beta > 0)
        buf_printf(o, " xfetch beta=%g delta_ms=%u", (double)pol->beta, pol->delta_ms);
    buf_append_str(o, "\r\n");
}

void dispatch_explain_finish(struct request *ir)
{
    static const char *const kinds[] = { "pool", "failover", "warmup", "shadow", "replicate" };
    struct request *r = ir->explain_to;
    struct worker *w = ir->w;
    const struct config *cfg = w->cfg;
    struct op *op = &ir->ops[0];
    struct buf *o = &r->out;
    struct mg_slice key = op->ckey;
    ir->explain_to = NULL;
    buf_printf(o, "STAT command %s\r\n", mg_cmd_name(ir->cmd));
    buf_append_str(o, "STAT key ");
    buf_append(o, key.p, key.len);
    buf_append_str(o, "\r\n");
    if (ir->res_until > 0 && op->res.pool == RES_FAILED) {
        buf_append_str(o, "STAT error ");
        for (uint32_t i = 0; i < op->res.key_len; i++) { /* one line, whatever the script said */
            char ch = ir->rkeys.data[op->res.key_off + i];
            buf_append(o, ch == '\r' || ch == '\n' ? " " : &ch, 1);
        }
        buf_append_str(o, "\r\n");
        request_release(ir);
        request_reply_now(r, "END");
        return;
    }
    int pool_idx = ir->res_until > 0 ? op->res.pool : RES_TABLE;
    int policy_idx = ir->res_until > 0 ? op->res.policy : RES_TABLE;
    struct mg_slice lkey = dispatch_op_key(ir, op);
    buf_printf(o, "STAT resolved_by %s\r\n",
               w->plugin ? (pool_idx >= 0 ? "script" : "script, then the prefix table")
                         : "prefix table");
    const struct stale_policy *pol;
    const struct pool *p;
    if (pool_idx >= 0 && (uint32_t)pool_idx < cfg->npools) {
        p = &cfg->pools[pool_idx];
        pol = p->stale;
    } else {
        p = config_route(cfg, key.p, key.len, &pol);
    }
    if (policy_idx >= 0 && (uint32_t)policy_idx < cfg->nnamed)
        pol = cfg->named[policy_idx].pol.off ? NULL : &cfg->named[policy_idx].pol;
    /* the route chain: each route and the child a first try takes */
    buf_append_str(o, "STAT chain ");
    for (int d = 0; p->kind != POOL_SERVERS && d < MG_ROUTE_DEPTH; d++) {
        uint32_t child = 0;
        if (p->kind == POOL_REPLICATE && is_read(ir->cmd))
            child = route_read_replica(ir, op, p, key, false);
        if (p->kind == POOL_WARMUP)
            pol = NULL;
        buf_printf(o, "%s(%s) > ", kinds[p->kind], p->name);
        if (p->kind == POOL_SHADOW)
            buf_printf(o, "[copy to %s: %s] ", cfg->pools[p->children[1]].name,
                       switch_peek(p->shadow_switch, key.p, key.len) ? "yes" : "no");
        p = &cfg->pools[p->children[child]];
    }
    buf_printf(o, "%s\r\n", p->name);
    buf_printf(o, "STAT pool %s\r\n", p->name);
    char kbuf[MG_KEY_MAX + 1];
    struct mg_slice bk = key;
    if (lkey.len) {
        bk = lkey;
    } else if (p->keys) {
        int n = keys_apply_bytes(p->keys, key.p, key.len, false, kbuf, sizeof(kbuf));
        bk = n < 0 ? (struct mg_slice){ NULL, 0 } : (struct mg_slice){ kbuf, (uint32_t)n };
    }
    if (bk.p == NULL || bk.len > MG_KEY_MAX || !mg_text_key_ok(bk.p, bk.len)) {
        buf_append_str(o, "STAT error CLIENT_ERROR bad command line format\r\n");
    } else {
        buf_append_str(o, "STAT backend_key ");
        buf_append(o, bk.p, bk.len);
        buf_append_str(o, "\r\n");
        struct backend *b = worker_pick(w, p, bk.p, bk.len);
        buf_printf(o, "STAT server %s\r\nSTAT server_state %s\r\n", b->name,
                   backend_usable(b) ? backend_state_name(b) : "down");
    }
    explain_policy(o, pol);
    for (int i = 0; i < switch_count(); i++) {
        const struct mg_switch *sw = switch_get(i);
        buf_printf(o, "STAT switch:%s %s\r\n", sw->name,
                   switch_peek(i, key.p, key.len) ? "on" : "off");
    }
    request_release(ir);
    request_reply_now(r, "END");
}

void dispatch_explain(struct conn *c, enum mg_cmd cmd, struct mg_slice key)
{
    struct worker *w = c->w;
    struct request *r = request_reply_later(c);
    if (r == NULL)
        return;
    struct request *ir = request_internal(w, 1);
    if (ir == NULL || buf_append(&ir->raw, key.p, key.len) != MG_OK) {
        if (ir)
            request_release(ir);
        request_reply_now(r, "SERVER_ERROR out of memory");
        return;
    }
    ir->cmd = cmd;
    memset(&ir->t, 0, sizeof(ir->t));
    ir->t.cmd = cmd;
    ir->t.key = ir->t.keys = (struct mg_slice){ ir->raw.data, key.len };
    ir->t.nkeys = 1;
    ir->own_copy = true;
    ir->ops[0].ckey = ir->t.key;
    ir->explain_to = r;
    const struct engine_plugin *pl = w->plugin;
    if (pl && pl->resolve_key(ir, 0, ir->t.key.p, key.len) == MG_EAGAIN) {
        ir->parked = true; /* the script waits on something: dispatch_resume finishes it */
        return;
    }
    dispatch_explain_finish(ir);
}
