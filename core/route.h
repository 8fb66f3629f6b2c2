/* route.h: routes over pools (route.c): what dispatch and the reply path call. */
#ifndef MG_ROUTE_H
#define MG_ROUTE_H

#include "request.h"

struct backend;
struct pool;

/* A read: what a replicated route serves from one replica. */
static inline bool is_read(enum mg_cmd cmd)
{
    return is_retrieval(cmd) || cmd == MG_CMD_MG || cmd == MG_CMD_ME;
}

/* --- from dispatch (dispatch.c), while the client's command is at hand ----------------- */

/* The server pool op goes to through route p (a route's child may be a route again):
 * the levels op has chosen (op->lv[0..depth)) are kept, the rest chosen now (a replicated
 * route's read replica, else the first child). *ttl_cap gets the tightest TTL cap of the
 * failover routes passed on a fallback, *no_pol true under a warm-up route. place: the
 * key's placement bytes. */
const struct pool *route_descend(struct request *r, struct op *op, const struct pool *p,
                                 struct mg_slice place, bool b64, uint32_t *ttl_cap, bool *no_pol);
/* The replica of replicated route rp that serves a read of the key whose placement bytes
 * are place (reads = first/fastest/random; none that has missed deletes to replay). */
uint32_t route_read_replica(struct request *r, const struct op *op, const struct pool *rp,
                            struct mg_slice place, bool b64);
/* What op's route levels not done yet (op->fx_pre) send before op itself goes out to b as
 * bkey (sent: it does; else it failed already): a replicated route's copies of a write (op
 * waits for its share of their answers), a failover or warm-up route's deletes to its other
 * pools -- not yet when early (op's backend cannot take it, and op may move on to one of
 * those pools). where: the key's placement bytes. */
void route_before_send(struct request *r, struct op *op, const struct mg_text_req *t,
                       struct mg_slice where, bool sent, bool early, struct backend *b,
                       const char *bkey, size_t bklen);
/* Send a copy of op's command (t) to the copy pool of shadow route sh, whose switch has the
 * key on: to each pool under it a write reaches, a read to one. Never delays or changes the
 * client's answer. where: placement bytes. */
void route_shadow_copy(struct request *r, struct op *op, const struct mg_text_req *t,
                       struct mg_slice where, const struct pool *sh);
/* ... and after it went out: a shadow route's copy when its switch has the key on. */
void route_after_send(struct request *r, struct op *op, const struct mg_text_req *t,
                      struct mg_slice where, bool sent);

/* --- from the reply path (request.c) ------------------------------------------------- */

/* Send op to the next pool of the deepest of its routes that moves on instead of failing it
 * with why, or (after a miss, with on_miss or a warm-up) instead of answering the miss. True
 * when it was sent on: leave op alone. */
bool route_failover(struct op *op, enum op_fail why);
bool route_miss_next(struct op *op);
/* A read through a warm-up route's warm pool answered (rep, a VA): add the value to cold. */
void route_warm_fill(struct op *op, const struct mg_meta_reply *rep);
/* A shadowed read's own outcome (rep, or NULL when it failed), for the comparison. */
void route_shadow_main(struct op *op, const struct mg_meta_reply *rep);
/* A replicated write's own answer is in: true while it must wait for its replicas (the
 * route finishes it then). */
bool route_repl_hold(struct op *op);

/* --- from the worker (worker.c) -------------------------------------------------------- */

/* Send the deletes b's server missed while down (a replicated route's), if it is up. */
void route_replay(struct worker *w, struct backend *b);
/* Free what routes keep per worker (at its end). */
void route_worker_destroy(struct worker *w);

/* --- dispatch.c, for routes ---------------------------------------------------------- */

/* Send op again through its routes (a level's child already advanced): render, place,
 * push. True: sent, or failed for good through op_fail. */
bool dispatch_resend(struct op *op);
/* The backend key the plug-in's key function gave op (length 0: none; the pools' own key
 * styles apply). */
struct mg_slice dispatch_op_key(const struct request *r, const struct op *op);
/* Is bk one of the gateway's own keys, out of r's reach? */
bool dispatch_key_reserved(const struct request *r, struct mg_slice bk);

#endif
