/* lua_co.h: the Lua layer's coroutines and per-worker state, shared by lua_api.c (the pool
 * of coroutines, hooks, pool calls) and lua_resolve.c (route and key functions). */
#ifndef MG_LUA_CO_H
#define MG_LUA_CO_H

#include <lua.h>

#include "buf.h"
#include "lua_api.h"
#include "lua_resolve.h"
#include "plugin.h"
#include "proto_text.h"

struct lua_co;
typedef void (*co_cont)(struct lua_co *co, const char *err);

/* A coroutine with its reusable req table. Owned by its vm (free list, or busy while it
 * runs a function); its thread is anchored in the registry by ref. */
struct lua_co {
    lua_State *L;
    int ref, req_ref;
    struct lua_vm *vm;
    struct lua_co *next;
    co_cont k;           /* called once the function returned (or raised: err) */
    struct request *r;   /* the request it resolves a key for */
    struct op *op;       /* the op a hook runs for */
    int last_cmd;        /* req.command as last set (skipped when unchanged) */
    struct request *cur; /* the request req describes */
    bool in_call;        /* inside core.call, before it yields */
    bool waiting;        /* yielded in core.call: resumed by its reply */
    bool resolver;       /* runs the resolver loop: parked there between keys */
    int ks_ref, rs_ref;  /* a batch's keys in, and results out (tables) */
    uint32_t bfirst, bn; /* the batch being resolved: ops [bfirst, bfirst + bn) */
    /* with a memo: the batch's keys the memo did not have (the turn's ks[j + 1] is op
     * bfirst + bmap[j]; bn of them) and the ops the batch covers */
    uint32_t bspan;
    uint8_t bmap[LUA_BATCH_MAX];
    bool called;      /* made a pool call since the turn began: its result is not kept */
    uint64_t mgen;    /* the switch generation read before the turn */
    const char *mkey; /* one key's turn: its key (valid until the turn ends) */
    uint32_t mklen;
    bool sync;             /* a hook that has not waited yet: its caller finishes the op */
    struct request *early; /* a pool call that completed before the yield */
    int call;              /* the pool call under way (lua_api.c's CALL_*) */
};

/* A worker's Lua state. Owned by the worker; kept alive by busy coroutines after a
 * reload replaced it (refs). */
struct lua_vm {
    lua_State *L;
    struct worker *w;
    int refs;
    int resolve_ref;               /* the per-key resolver, or LUA_NOREF */
    int hook_ref[OP_EV_COUNT];     /* hooks, or LUA_NOREF */
    int cos_ref;                   /* registry table: thread -> lightuserdata(co) */
    int pools_ref;                 /* registry table: config pool id -> the script's pool */
    struct lua_co *free_cos;       /* finished coroutines, for hooks or a new resolver */
    struct lua_co *free_resolvers; /* parked in the resolver loop, ready for a key */
    bool per_request;
    bool has_key_fn; /* the script has a key function (batches return keys) */
    /* strings interned once and pushed by registry ref: no hashing per request */
    int s_key, s_command;
    int req_mt; /* metatable of req tables */
    int s_cmd[MG_CMD_UNKNOWN + 1];
    /* mg.memo: resolutions kept by client key (owned), and the table the resolver loop
     * notes per key what the functions asked in (req fields, switches); NULL/LUA_NOREF */
    struct lua_memo *memo;
    int track_ref;
};

/* Its address is what the resolver loop yields first once a key (or batch) is resolved. */
extern const char lua_resolver_done;

/* A coroutine from vm's pool: one parked in the resolver loop when resolver is set and
 * there is one, else a finished or new one. NULL when out of memory. */
struct lua_co *lua_co_get(struct lua_vm *vm, bool resolver);
/* Back to the pool once its function returned, or its resolver loop yielded a result. */
void lua_co_put(struct lua_co *co);
/* The one place coroutines are resumed (see lua_api.c). Returns MG_OK when it finished
 * (co->k was called), MG_EAGAIN when it waits on a pool call, MG_ERR when it raised or
 * yielded on its own (co->k was called with the message; the coroutine is gone). */
int lua_co_run(struct lua_co *co, int nargs);
/* Append a Lua error's first line, prefixed, to b as a reply line. */
void lua_error_line(struct buf *b, const char *prefix, const char *msg);

#endif
