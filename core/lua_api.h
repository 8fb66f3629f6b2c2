/* lua_api.h: a worker's LuaJIT state for the request phase: coroutines and pool calls. */
#ifndef MG_LUA_API_H
#define MG_LUA_API_H

#include "mg.h"

struct worker;
struct request;
struct op;
struct lua_vm;

enum { LUA_HOOK_SET = 0, LUA_HOOK_DELETE, LUA_HOOK_MISS, LUA_HOOK_COUNT };

/* Give w a Lua state of its own: run the config script in it and bind its pools and
 * switches to w's config. Returns MG_OK, or MG_ERR with err filled. */
int lua_api_worker_init(struct worker *w, const char *script, char *err, size_t errlen);
/* Let go of a state a reload replaced (freed once no coroutine of it waits). */
void lua_api_vm_release(struct lua_vm *vm);
/* Drop w's state (freed once no coroutine of it waits any more). */
void lua_api_worker_release(struct worker *w);

/* Does the worker's script have functions to run per request (route function, key
 * function, hooks)? Then requests keep their own copy and go through lua_api_resolve. */
bool lua_api_per_request(const struct worker *w);

/* Resolve the key at r->next_key with the script's route and key functions.
 * MG_OK: r->lua_pool (-1: the prefix table decides) and r->lua_key (empty: the pool's key
 * style applies) are set. MG_EAGAIN: a function waits on a pool call; dispatch_resume(r)
 * is called once it returned. MG_ERR: it failed (logged); r->lua_key holds the reply line. */
int lua_api_resolve(struct request *r, const char *key, size_t klen);
/* Keys a batch resolves in one coroutine turn at most. */
#define LUA_BATCH_MAX 64
/* Resolve the keys of ops [first, first + n) (their ckey set; n <= LUA_BATCH_MAX) in one
 * turn of a coroutine: each op gets lpool (-1: the prefix table; -2: the script failed
 * for it, logged), lpolicy, and lkey_off/lkey_len into r->lua_key (len 0: the pool's
 * style). MG_OK: done, r->lua_until = first + n. MG_EAGAIN: it waits on a pool call;
 * dispatch_resume(r) is called once done if r->lua_parked. MG_ERR: out of memory. */
int lua_api_resolve_batch(struct request *r, uint32_t first, uint32_t n);

/* Run the hook for event on op (if the script has one). MG_EAGAIN: it waits on a pool
 * call and op_finish(op) is called when it returned; MG_OK: nothing left to do. */
int lua_api_hook(struct op *op, int event);

/* A request made by a pool call completed: resume the coroutine that made it. */
void lua_api_call_done(struct request *r);

/* Lua memory of the worker's state in KiB (stats). */
size_t lua_api_mem_kb(const struct worker *w);

#endif
