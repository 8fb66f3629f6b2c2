/* lua_vm.h: LuaJIT states: running the config script and compiling what it declared. */
#ifndef MG_LUA_VM_H
#define MG_LUA_VM_H

#include "config.h"

struct lua_State;

/* A new state with the standard libraries and package.path set to find `mintgate`
 * next to the binary, in MG_LUADIR, or in $MINTGATE_LUA_PATH. NULL on failure. */
struct lua_State *lua_vm_new(char *err, size_t errlen);

/* Run the script at path in L with a traceback on error. MG_OK, or MG_ERR with err. */
int lua_vm_run(struct lua_State *L, const char *path, char *err, size_t errlen);

/* Run the script at path in a fresh state and compile its declarations into a finished
 * config. Listen addresses go to s->listen unless they came from the command line.
 * Returns NULL with err filled (the Lua message and traceback) on any failure. */
struct config *lua_config_load(const char *path, struct settings *s, char *err, size_t errlen);

#endif
