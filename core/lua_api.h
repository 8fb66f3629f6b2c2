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
 * function, hooks)? Then requests keep their own copy and go through lua_resolve_key. */
bool lua_api_per_request(const struct worker *w);

/* Run the hook for event on op (if the script has one). MG_EAGAIN: it waits on a pool
 * call and op_finish(op) is called when it returned; MG_OK: nothing left to do. */
int lua_api_hook(struct op *op, int event);

/* A request made by a pool call completed: resume the coroutine that made it. */
void lua_api_call_done(struct request *r);

/* Lua memory of the worker's state in KiB (stats). */
size_t lua_api_mem_kb(const struct worker *w);

#endif
