/* lua_resolve.h: route and key functions per key (the request phase's resolver). */
#ifndef MG_LUA_RESOLVE_H
#define MG_LUA_RESOLVE_H

#include <lua.h>
#include <stdint.h>

#include "mg.h"

struct request;

/* Keys a batch resolves in one coroutine turn at most. */
#define LUA_BATCH_MAX 64

/* Resolve the key at r->next_key with the script's route and key functions.
 * MG_OK: r->lua_pool (-1: the prefix table decides) and r->lua_key (empty: the pool's key
 * style applies) are set. MG_EAGAIN: a function waits on a pool call; dispatch_resume(r)
 * is called once it returned. MG_ERR: it failed (logged); r->lua_key holds the reply line. */
int lua_resolve_key(struct request *r, const char *key, size_t klen);
/* Resolve the keys of ops [first, first + n) (their ckey set; n <= LUA_BATCH_MAX) in one
 * turn of a coroutine: each op gets lpool (-1: the prefix table; -2: the script failed
 * for it, logged), lpolicy, and lkey_off/lkey_len into r->lua_key (len 0: the pool's
 * style). MG_OK: done, r->lua_until = first + n. MG_EAGAIN: it waits on a pool call;
 * dispatch_resume(r) is called once done if r->lua_parked. MG_ERR: out of memory, or ids
 * that do not fit the packed results (the caller resolves key by key). */
int lua_resolve_batch(struct request *r, uint32_t first, uint32_t n);
/* Push the resolver loop's chunk (its arguments: route function, key function, policy
 * ids, &lua_resolver_done, the original coroutine.yield). Returns 0, or an error status
 * with the message pushed. */
int lua_resolve_load(lua_State *L);

#endif
