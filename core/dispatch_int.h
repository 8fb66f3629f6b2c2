/* dispatch_int.h: what dispatch.c shares with its near cache part (dispatch_near.c) and the
 * admin `route` explanation (dispatch_explain.c): where one key goes, the near cache's two
 * steps of dispatching it, the explanation's last step. Engine-internal. */
#ifndef MG_DISPATCH_INT_H
#define MG_DISPATCH_INT_H

#include "config.h"
#include "proto_text.h"
#include "request.h"

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
    const struct pool *pool; /* the server pool the key went to */
};

/* target_of's answer when the near cache may have the key: target_pick finishes the job
 * (the server) if it does not. */
#define TARGET_NEAR 1

/* Keep the backend key on op for herd bookkeeping that outlives the parse. */
static inline bool op_keep_key(struct op *op, const char *key, size_t klen)
{
    op->key.off = op->key.len = 0;
    return buf_append(&op->key, key, klen) == MG_OK;
}

/* A write (every command but get, gets, me and an mg that changes nothing; gat, gats and
 * touch included) drops its key from the near cache once done. Near cache on only. */
void dispatch_near_write(struct op *op, const struct mg_text_req *t, const struct target *tg);

/* A get, gets or mg of a key in a pool with the near cache (target_of said TARGET_NEAR):
 * answered from the cache (true: op is done), or marked to fill it from memcached's reply
 * (false: the caller picks the server and sends it). */
bool dispatch_near_get(struct request *r, struct op *op, const struct mg_text_req *t,
                       struct mg_slice k, struct mg_slice where, struct target *tg);

/* The explanation's resolution is in (ir->ops[0].res, or the tables): render what would
 * happen to ir->explain_to's key and answer it; ir is released. From dispatch_explain, or
 * dispatch_resume when the script had to wait. */
void dispatch_explain_finish(struct request *ir);

#endif
