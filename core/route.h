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

/* The replica of replicated route rp that serves a read of the key whose placement bytes
 * are place (reads = first/fastest/random; none that has missed deletes to replay). */
uint32_t route_read_replica(struct request *r, const struct pool *rp, struct mg_slice place,
                            bool b64);
/* A delete through a failover or warm-up reaches every pool, not only op's. */
void route_delete_on_children(struct request *r, struct op *op, const struct mg_text_req *t,
                              struct mg_slice where);
/* A shadow route: copy t to the copy pool when its switch has the key on. */
void route_shadow_copy(struct request *r, struct op *op, const struct mg_text_req *t,
                       struct mg_slice where);
/* A write through a replicated route: copies to the other replicas; op (sent to b as bkey
 * when sent) waits for its share of their answers. */
void route_replicate_write(struct request *r, struct op *op, const struct mg_text_req *t,
                           struct mg_slice where, bool sent, struct backend *b, const char *bkey,
                           size_t bklen);

/* --- from the reply path (request.c) ------------------------------------------------- */

/* Send op to its route's next pool instead of failing it with why, or (after a miss, with
 * on_miss) instead of answering the miss. True when it was sent on: leave op alone. */
bool route_failover(struct op *op, enum op_fail why);
bool route_miss_next(struct op *op);
/* A warm-up route's read answered by warm (rep, a VA): add the value to cold. */
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

/* Send op again to its route's pool op->child (already advanced): render, place, push.
 * True: sent, or failed for good through op_fail. */
bool dispatch_resend(struct op *op);
/* Is bk one of the gateway's own keys, out of r's reach? */
bool dispatch_key_reserved(const struct request *r, struct mg_slice bk);

#endif
