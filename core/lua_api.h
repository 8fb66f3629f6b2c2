/* lua_api.h: a worker's LuaJIT state for the request phase: coroutines and pool calls. */
#ifndef MG_LUA_API_H
#define MG_LUA_API_H

#include "mg.h"

struct worker;
struct request;
struct op;
struct lua_vm;

/* Give w a Lua state of its own: run the config script in it and bind its pools and
 * switches to w's config; when the script has functions to run per request (route, key
 * functions, hooks), install the engine plug-in (w->plugin). Returns MG_OK, or MG_ERR
 * with err filled (w is left as it was). */
int lua_api_worker_init(struct worker *w, const char *script, char *err, size_t errlen);
/* Let go of a state a reload replaced (freed once no coroutine of it waits). */
void lua_api_vm_release(struct lua_vm *vm);
/* Drop w's state (freed once no coroutine of it waits any more). */
void lua_api_worker_release(struct worker *w);

/* Lua memory of the worker's state in KiB (stats). */
size_t lua_api_mem_kb(const struct worker *w);

#endif
