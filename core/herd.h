/* herd.h: thundering-herd bookkeeping for classic clients on memcached's meta flags. */
#ifndef MG_HERD_H
#define MG_HERD_H

#include "buf.h"
#include "config.h"
#include "proto_meta.h"
#include "proto_text.h"

struct backend;
struct conn;
struct op;
struct worker;

enum herd_verdict {
    HERD_HIT,     /* answer the value (fresh, or stale while someone else refreshes) */
    HERD_MISS,    /* answer a miss: this client regenerates, or waiting timed out */
    HERD_PENDING, /* the op waits; herd answers it later through op_reply/op_fail */
    HERD_ERROR,   /* not a reply a get expects: the caller reports it */
};

/* The R (recache) token of a classic get of op's key under pol: with grace, the window
 * that opens at the grace; with xfetch (pol->beta), an early-refresh draw on top, so one
 * reader (memcached picks it, fleet-wide) refreshes before the expiry. 0: no R flag. */
uint32_t herd_recache(struct worker *w, int pool, const struct stale_policy *pol);

/* The TTL to store for a classic exptime under pol: the grace period is added so the
 * value outlives its nominal expiry by that much (0, negative: unchanged). */
int64_t herd_store_ttl(int64_t exptime, const struct stale_policy *pol);

/* What a classic get sees for rep, the reply to herd_render_get's command for op (whose
 * op->key holds the backend key). May start a wait or a lock timer. */
enum herd_verdict herd_on_get_reply(struct op *op, const struct mg_meta_reply *rep);

/* Coalescing: when an identical get (same backend, same key) is already on the wire
 * from this worker, attach op to it and return true; op is then answered from that
 * reply. Otherwise return false: the caller sends op and calls herd_lead(op). */
bool herd_follow(struct worker *w, struct op *op);
void herd_lead(struct worker *w, struct op *op);
/* op's reply arrived (or it failed): take it out of the table and return its followers
 * (a list through next_follower) for the caller to answer. */
struct op *herd_unlead(struct worker *w, struct op *op);

/* As herd_on_get_reply, for a follower of a leader that got rep: a win belongs to the
 * leader, so a follower sees it as someone else's. */
enum herd_verdict herd_on_follower_reply(struct op *op, const struct mg_meta_reply *rep);

/* The op failed (backend error): forget any wait it was in. */
void herd_forget(struct op *op);

/* A write of key on backend be (store, delete, incr, touch...) is being sent for client
 * c (NULL: the gateway's own): later gets must not share a get sent before it, and c's
 * own earlier gets of the key must not wait for a value (it could only be this write's,
 * or later: they answer what they find, or a miss). */
void herd_on_write(struct worker *w, struct conn *c, struct backend *be, const char *key,
                   size_t klen);

/* A store of key went through this worker: wake local waiters for it at once. */
void herd_on_stored(struct worker *w, const char *key, size_t klen);

/* Under a policy with guard: a write (cmd) of key on backend be is about to be rendered for
 * op. The winning client's own store of a win it holds here is guarded (op->guard and
 * op->guard_cas set: the caller renders it with C<guard_cas>, plus I under mark_stale, for
 * OP_GUARD_WIN, or with c for OP_GUARD_LEASE); any other store or delete ends its writer's
 * win, and under a policy with leases first revokes the key's lease (md, sent ahead of the
 * write on the same connection). Cost: that md, one backend command per such write. */
void herd_guard_write(struct op *op, const struct stale_policy *pol, enum mg_cmd cmd,
                      struct backend *be, const char *key, size_t klen);

/* op's store has just been queued on its backend: a lease store (OP_GUARD_LEASE) sends its
 * lease's conditional release right behind it, on the same connection, so that no later
 * write can revoke the lease between the two; the release's answer retracts the value if
 * the lease was revoked before. Anything else: nothing. */
void herd_guard_sent(struct op *op);

/* The reply to a guarded store (op->guard set). Returns true when memcached refused a hot
 * win's store (EX, NF: a write or delete came since the win): the client is answered
 * STORED all the same. A lease store's HD hands its CAS to the lease's check (sent by
 * herd_guard_sent, answered next); the reply stands as it is. */
bool herd_on_guarded_reply(struct op *op, const struct mg_meta_reply *rep);

/* Walking the worker's waits (to know which backends they still need). */
struct herd_wait *herd_wait_next(struct herd_wait *hw);
struct backend *herd_wait_backend(struct herd_wait *hw);

/* Cancel every wait and lock timer of w (waiting ops are answered as misses). */
void herd_worker_destroy(struct worker *w);

#endif
