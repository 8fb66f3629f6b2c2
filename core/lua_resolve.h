/* lua_resolve.h: route and key functions per key (the request phase's resolver). */
#ifndef MG_LUA_RESOLVE_H
#define MG_LUA_RESOLVE_H

#include <lua.h>
#include <stdint.h>

#include "mg.h"

struct request;

/* Keys a batch resolves in one coroutine turn at most. */
#define LUA_BATCH_MAX 64

/* The engine plug-in's resolvers (plugin.h says what they promise): route and key
 * functions for key i of r, or for ops [first, first + n) (n <= LUA_BATCH_MAX) in one
 * coroutine turn. A batch's key function failures and bad results fail only their key
 * (RES_FAILED, logged); MG_ERR from a batch: out of memory, or ids that do not fit the
 * packed results. */
int lua_resolve_key(struct request *r, uint32_t i, const char *key, size_t klen);
int lua_resolve_batch(struct request *r, uint32_t first, uint32_t n);
/* Push the resolver loop's chunk (its arguments: route function, key function, policy
 * ids, &lua_resolver_done, the original coroutine.yield). Returns 0, or an error status
 * with the message pushed. */
int lua_resolve_load(lua_State *L);

#endif
