/* lua_api.c: a worker's LuaJIT state for the request phase: coroutines and pool calls.
 *
 * Every function of the script that runs per request (the route and key functions,
 * hooks) runs in a coroutine taken from the worker's free list. Pool calls inside it
 * (pool:get, pool:set, ...) send a meta command as a request of the gateway's own and
 * yield; the reply resumes the coroutine with the results (OpenResty style: waiting is
 * invisible to the script; failures come back as nil, err). All resumes go through
 * lua_co_run. A coroutine that raised is dropped, never reused. Route and key functions
 * run under the resolver loop of lua_resolve.c. */
#include "lua_api.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "conn.h"
#include "log.h"
#include "meta_render.h"
#include "near.h"
#include "lua_co.h"
#include "lua_memo.h"
#include "lua_resolve.h"
#include "lua_vm.h"
#include "proto_meta.h"
#include "proto_text.h"
#include "request.h"
#include "switch.h"
#include "worker.h"

enum { CALL_GET = 1, CALL_SET, CALL_ADD, CALL_DELETE, CALL_TOUCH, CALL_INCR, CALL_DECR };

static const char *const hook_names[OP_EV_COUNT] = { "set", "delete", "miss" };
static const char *const cmd_names[] = {
    [MG_CMD_GET] = "get",         [MG_CMD_GETS] = "gets",     [MG_CMD_GAT] = "gat",
    [MG_CMD_GATS] = "gats",       [MG_CMD_SET] = "set",       [MG_CMD_ADD] = "add",
    [MG_CMD_REPLACE] = "replace", [MG_CMD_APPEND] = "append", [MG_CMD_PREPEND] = "prepend",
    [MG_CMD_CAS] = "cas",         [MG_CMD_DELETE] = "delete", [MG_CMD_INCR] = "incr",
    [MG_CMD_DECR] = "decr",       [MG_CMD_TOUCH] = "touch",   [MG_CMD_MG] = "mg",
    [MG_CMD_MS] = "ms",           [MG_CMD_MD] = "md",         [MG_CMD_MA] = "ma",
    [MG_CMD_ME] = "me",
};

const char lua_resolver_done = 0; /* lua_co.h */

static void vm_unref(struct lua_vm *vm)
{
    if (--vm->refs > 0)
        return;
    while (vm->free_cos) {
        struct lua_co *co = vm->free_cos;
        vm->free_cos = co->next;
        free(co);
    }
    while (vm->free_resolvers) {
        struct lua_co *co = vm->free_resolvers;
        vm->free_resolvers = co->next;
        free(co);
    }
    lua_close(vm->L);
    lua_memo_free(vm->memo);
    free(vm);
}

/* --- coroutines ---------------------------------------------------------------------- */

/* A coroutine from the pool: one parked in the resolver loop when resolver is set and
 * there is one, else a finished or new one. */
/* Fault injection for the specs: MINTGATE_FAULT=no-coroutines makes every new coroutine
 * fail to allocate, as when memory runs out. Read once per process. */
static bool fault_no_coroutines(void)
{
    static atomic_int on = -1;
    int v = atomic_load_explicit(&on, memory_order_relaxed);
    if (v < 0) {
        const char *f = getenv("MINTGATE_FAULT");
        v = f != NULL && strcmp(f, "no-coroutines") == 0;
        atomic_store_explicit(&on, v, memory_order_relaxed);
    }
    return v;
}

struct lua_co *lua_co_get(struct lua_vm *vm, bool resolver)
{
    struct lua_co *co = NULL;
    if (resolver && vm->free_resolvers) {
        co = vm->free_resolvers;
        vm->free_resolvers = co->next;
    } else if (vm->free_cos) {
        co = vm->free_cos;
        vm->free_cos = co->next;
    } else {
        co = MG_UNLIKELY(fault_no_coroutines()) ? NULL : calloc(1, sizeof(*co));
        if (co == NULL)
            return NULL;
        lua_State *L = vm->L;
        co->vm = vm;
        co->L = lua_newthread(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->cos_ref);
        lua_pushvalue(L, -2);
        lua_pushlightuserdata(L, co);
        lua_rawset(L, -3);
        lua_pop(L, 1);
        co->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_createtable(L, 0, 4);
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->req_mt);
        lua_setmetatable(L, -2);
        co->req_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_createtable(L, LUA_BATCH_MAX, 0);
        co->ks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_createtable(L, 3 * LUA_BATCH_MAX, 0);
        co->rs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        co->last_cmd = -1;
    }
    co->next = NULL;
    co->r = NULL;
    co->op = NULL;
    co->in_call = false;
    co->waiting = false;
    co->sync = false;
    co->early = NULL;
    vm->refs++;
    return co;
}

/* Back to the pool once its function returned, or its resolver loop yielded a result. */
void lua_co_put(struct lua_co *co)
{
    struct lua_vm *vm = co->vm;
    lua_settop(co->L, 0);
    if (co->resolver) {
        co->next = vm->free_resolvers;
        vm->free_resolvers = co;
    } else {
        co->next = vm->free_cos;
        vm->free_cos = co;
    }
    vm_unref(vm);
}

/* A coroutine that raised is dead: forget it. */
static void co_drop(struct lua_co *co)
{
    struct lua_vm *vm = co->vm;
    lua_State *L = vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->cos_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, co->ref);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, co->ref);
    luaL_unref(L, LUA_REGISTRYINDEX, co->req_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, co->ks_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, co->rs_ref);
    free(co);
    vm_unref(vm);
}

/* The one place coroutines are resumed. The function and its nargs arguments (first
 * run), the next key for a parked resolver, or the results of a pool call are on
 * co->L's stack. Returns MG_OK when it finished: returned, or the resolver loop yielded
 * its result (co->k was called); MG_EAGAIN when it waits on a pool call; MG_ERR when it
 * raised or yielded on its own (co->k was called with the message; the coroutine is
 * gone). */
int lua_co_run(struct lua_co *co, int nargs)
{
    int st = lua_resume(co->L, nargs);
    if (st == LUA_YIELD) {
        if (co->waiting)
            return MG_EAGAIN;
        if (lua_gettop(co->L) >= 1 && lua_touserdata(co->L, 1) == &lua_resolver_done) {
            co->k(co, NULL);
            return MG_OK;
        }
        /* The script called coroutine.yield itself: nothing would ever resume it. */
        lua_pushstring(co->L, "coroutine.yield is not allowed here (only pool calls wait)");
    } else if (st == 0) {
        co->k(co, NULL);
        return MG_OK;
    }
    const char *msg = lua_tostring(co->L, -1);
    luaL_traceback(co->vm->L, co->L, msg ? msg : "(error object is not a string)", 0);
    const char *tb = lua_tostring(co->vm->L, -1);
    log_error("lua: %s", tb ? tb : "?");
    lua_pop(co->vm->L, 1);
    co->k(co, msg ? msg : "error");
    co_drop(co);
    return MG_ERR;
}

/* Fill co's req table for key of r and push it. The hot path: field names and command
 * names come from registry refs; command and client are set only when they change. */
static void push_req(struct lua_co *co, struct request *r, const char *key, size_t klen)
{
    lua_State *L = co->L;
    struct lua_vm *vm = co->vm;
    lua_rawgeti(L, LUA_REGISTRYINDEX, co->req_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->s_key);
    lua_pushlstring(L, key, klen);
    lua_rawset(L, -3);
    if (co->last_cmd != (int)r->cmd) {
        co->last_cmd = (int)r->cmd;
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->s_command);
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->s_cmd[r->cmd]);
        lua_rawset(L, -3);
    }
    co->cur = r; /* req.client is looked up lazily (req_index) from here */
}

/* __index of req tables: fields computed only when a script reads them. With a memo, a
 * resolver's req has no raw `command` either: each field read here is noted in the track
 * table (cmd or other), so a resolution that depends on more than the key is kept by
 * command, or not at all (lua_resolve.c). */
static int req_index(lua_State *L)
{
    const char *k = lua_tostring(L, 2);
    lua_getfield(L, LUA_REGISTRYINDEX, "mintgate.cos");
    lua_pushthread(L);
    lua_rawget(L, -2);
    struct lua_co *co = lua_touserdata(L, -1);
    if (co && co->cur && co->resolver && co->vm->track_ref != LUA_NOREF) {
        bool cmd = k && strcmp(k, "command") == 0;
        lua_rawgeti(L, LUA_REGISTRYINDEX, co->vm->track_ref);
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, cmd ? "cmd" : "other");
        lua_pop(L, 1);
        if (cmd) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, co->vm->s_cmd[co->cur->cmd]);
            return 1;
        }
    }
    if (co && co->cur && k && strcmp(k, "client") == 0) {
        lua_pushstring(L, co->cur->c ? co->cur->c->peer : "");
        return 1;
    }
    if (co && co->cur && k && strcmp(k, "user") == 0 && co->cur->c && co->cur->c->user) {
        lua_pushstring(L, co->cur->c->user);
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

static int intern(lua_State *L, const char *s)
{
    lua_pushstring(L, s);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Append a Lua error's first line, prefixed, to b as a reply line. */
void lua_error_line(struct buf *b, const char *prefix, const char *msg)
{
    buf_append_str(b, prefix);
    size_t n = strcspn(msg, "\r\n");
    if (n > 200)
        n = 200;
    buf_append(b, msg, n);
}

/* --- hooks ------------------------------------------------------------------------------ */

static void hook_k(struct lua_co *co, const char *err)
{
    struct op *op = co->op;
    if (err) {
        struct request *r = op->req;
        if (is_retrieval(r->cmd)) {
            op->out.off = op->out.len = 0;
            r->nfailed++;
            if (r->err == NULL)
                r->err = "SERVER_ERROR lua error (see the gateway log)";
        } else {
            struct buf line = { 0 };
            lua_error_line(&line, "SERVER_ERROR lua: ", err);
            op->out.off = op->out.len = 0;
            put_line(&op->out, line.data, line.len);
            buf_free(&line);
        }
    } else {
        lua_co_put(co);
    }
    if (co->sync) /* finished without waiting: the caller finishes the op */
        return;
    op_finish(op);
}

static int lua_api_hook(struct op *op, enum op_event event)
{
    struct worker *w = op->req->w;
    struct lua_vm *vm = w->vm;
    if (vm == NULL || vm->hook_ref[event] == LUA_NOREF)
        return MG_OK;
    struct lua_co *co = lua_co_get(vm, false);
    if (co == NULL)
        return MG_OK;
    co->op = op;
    co->k = hook_k;
    co->sync = true;
    lua_rawgeti(co->L, LUA_REGISTRYINDEX, vm->hook_ref[event]);
    push_req(co, op->req, op->ckey.p, op->ckey.len);
    lua_rawgeti(co->L, LUA_REGISTRYINDEX, vm->pools_ref); /* the op's pool, or nil */
    lua_rawgeti(co->L, -1, op->pool);
    lua_remove(co->L, -2);
    if (lua_co_run(co, 2) == MG_EAGAIN) {
        co->sync = false; /* still alive: it waits on a pool call */
        return MG_EAGAIN;
    }
    return MG_OK;
}

/* --- pool calls ------------------------------------------------------------------------- */

static struct lua_co *co_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "mintgate.cos");
    lua_pushthread(L);
    lua_rawget(L, -2);
    struct lua_co *co = lua_touserdata(L, -1);
    lua_pop(L, 2);
    return co;
}

/* The error word for a pool call that failed (why), OpenResty's vocabulary. */
static const char *error_word(enum op_fail why)
{
    switch (why) {
    case OP_FAIL_TIMEOUT:
        return "timeout";
    case OP_FAIL_CLOSED:
        return "closed";
    case OP_FAIL_DOWN:
        return "backend down";
    case OP_FAIL_TOO_LARGE:
        return "too large";
    default:
        return "backend error";
    }
}

/* Push the results of pool call r (of kind call) onto L. Returns how many. */
static int push_results(lua_State *L, struct request *r, int call)
{
    struct op *op = &r->ops[0];
    struct mg_meta_reply rep;
    size_t used;
    if (op->fail != OP_FAIL_NONE) {
        lua_pushnil(L);
        lua_pushstring(L, error_word(op->fail));
        return 2;
    }
    if (mg_meta_parse_reply(buf_head(&op->out), buf_unread(&op->out), UINT32_MAX, &rep, &used) !=
        MG_OK) {
        lua_pushnil(L);
        lua_pushstring(L, "backend error");
        return 2;
    }
    switch (rep.status) {
    case MG_R_VA:
        if (call == CALL_INCR || call == CALL_DECR) {
            lua_pushnumber(L, strtod(rep.data.p, NULL));
            return 1;
        }
        lua_pushlstring(L, rep.data.p, rep.data.len);
        struct mg_slice f;
        lua_pushnumber(L, mg_meta_flag(rep.flags, 'f', &f) ? strtod(f.p, NULL) : 0);
        return 2;
    case MG_R_HD:
        lua_pushboolean(L, 1);
        return 1;
    case MG_R_EN:
    case MG_R_NF:
    case MG_R_NS:
    case MG_R_EX:
        if (call == CALL_GET || call == CALL_INCR || call == CALL_DECR)
            lua_pushnil(L);
        else
            lua_pushboolean(L, 0);
        return 1;
    case MG_R_CLIENT_ERROR:
        lua_pushnil(L);
        lua_pushstring(L, memmem(rep.line.p, rep.line.len, "non-numeric", 11) ? "not a number"
                                                                              : "client error");
        return 2;
    default: /* memcached's own SERVER_ERROR (its words, not ours) */
        lua_pushnil(L);
        lua_pushstring(L, memmem(rep.line.p, rep.line.len, "too large", 9) ? "too large"
                                                                           : "backend error");
        return 2;
    }
}

/* A request made by a pool call completed (its on_done): resume the coroutine. */
static void call_done(struct request *r)
{
    struct lua_co *co = r->udata;
    if (co->in_call) { /* completed before core.call could yield */
        co->early = r;
        return;
    }
    int n = push_results(co->L, r, co->call);
    request_release(r);
    co->waiting = false;
    lua_co_run(co, n);
}

/* core.call(pool, op, key, ...): one meta command; yields until the reply. */
static int l_call(lua_State *L)
{
    struct lua_co *co = co_of(L);
    if (co == NULL)
        return luaL_error(L, "pool calls are only possible while serving a request");
    co->called = true; /* a resolution that asked a backend is not the key's alone */
    struct worker *w = co->vm->w;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "_id");
    int pid = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : -1;
    lua_pop(L, 1);
    if (pid < 0 || pid >= (int)w->cfg->npools)
        return luaL_error(L, "not a pool of the running config");
    if (w->tearing_down) {
        lua_pushnil(L);
        lua_pushstring(L, "closed");
        return 2;
    }
    const char *what = luaL_checkstring(L, 2);
    size_t klen;
    const char *key = luaL_checklstring(L, 3, &klen);
    if (!mg_text_key_ok(key, klen))
        return luaL_error(L, "bad key for %s: 1 to 250 bytes, no spaces or control characters",
                          what);
    static const struct {
        const char *name;
        int call;
    } calls[] = { { "get", CALL_GET },       { "set", CALL_SET },     { "add", CALL_ADD },
                  { "delete", CALL_DELETE }, { "touch", CALL_TOUCH }, { "incr", CALL_INCR },
                  { "decr", CALL_DECR } };
    int call = 0;
    for (size_t i = 0; i < MG_ARRAY_LEN(calls); i++)
        if (strcmp(what, calls[i].name) == 0)
            call = calls[i].call;
    if (call == 0)
        return luaL_error(L, "unknown pool call '%s'", what);
    struct backend *b = worker_pick(w, &w->cfg->pools[pid], key, klen);
    if (!backend_usable(b)) {
        lua_pushnil(L);
        lua_pushstring(L, "backend down");
        return 2;
    }
    struct mg_slice val = { NULL, 0 };
    if (call == CALL_SET || call == CALL_ADD) {
        size_t vlen;
        val.p = luaL_checklstring(L, 4, &vlen);
        if (vlen > settings.value_max) {
            lua_pushnil(L);
            lua_pushstring(L, "too large");
            return 2;
        }
        val.len = (uint32_t)vlen;
    }
    /* the optional numbers before anything is allocated: a bad one raises */
    lua_Number ttl = 0, flags = 0, delta = 1;
    if (call == CALL_SET || call == CALL_ADD) {
        ttl = luaL_optnumber(L, 5, 0);
        flags = luaL_optnumber(L, 6, 0);
    } else if (call == CALL_TOUCH) {
        ttl = luaL_optnumber(L, 4, 0);
    } else if (call == CALL_INCR || call == CALL_DECR) {
        delta = luaL_optnumber(L, 4, 1);
    }
    enum op_fail why;
    struct request *r = request_one(w, b, klen + val.len, call_done, co, &why);
    if (r == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, why == OP_FAIL_DOWN ? "backend down" : "out of memory");
        return 2;
    }
    struct buf *wb = &b->wbuf;
    switch (call) {
    case CALL_GET:
        meta_render_read(wb, key, klen, true);
        break;
    case CALL_SET:
    case CALL_ADD:
        meta_render_store(wb, key, klen, val, (uint64_t)flags, (int64_t)ttl,
                          call == CALL_ADD ? META_ADD : META_SET, false, 0, 0);
        break;
    case CALL_DELETE:
        meta_render_delete(wb, key, klen, false, 0);
        break;
    case CALL_TOUCH:
        meta_render_touch(wb, key, klen, (int64_t)ttl);
        break;
    default:
        meta_render_arith(wb, key, klen, call == CALL_DECR, (uint64_t)delta);
        break;
    }
    if (call != CALL_GET && near_ready()) { /* a write: the near cache drops the key once done */
        r->ops[0].near_inval = true;
        r->ops[0].near_h = near_hash(key, klen);
    }
    co->call = call;
    co->in_call = true;
    co->early = NULL;
    request_one_send(r);
    co->in_call = false;
    if (co->early) { /* failed at once (e.g. connect refused): answer without yielding */
        struct request *done = co->early;
        co->early = NULL;
        int n = push_results(L, done, call);
        request_release(done);
        return n;
    }
    co->waiting = true;
    return lua_yield(L, 0);
}

/* core.switch_on(id, key) */
static int l_switch_on(lua_State *L)
{
    size_t n;
    int id = (int)luaL_checkinteger(L, 1);
    const char *k = luaL_checklstring(L, 2, &n);
    lua_pushboolean(L, switch_on(id, k, n));
    return 1;
}

static int luaopen_core(lua_State *L)
{
    static const luaL_Reg fns[] = { { "call", l_call },
                                    { "switch_on", l_switch_on },
                                    { NULL, NULL } };
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}

/* --- setup ------------------------------------------------------------------------------- */

/* What the engine calls (plugin.h): installed on a worker whose script runs per request. */
static const struct engine_plugin lua_plugin = {
    .resolve_key = lua_resolve_key,
    .resolve_batch = lua_resolve_batch,
    .hook = lua_api_hook,
};

/* Bind declared pools (_id, and vm->pools_ref by id) and switches (id) of the state
 * table on top to w's config. */
/* Give each object of list field `what` of the state table at index st its config id
 * (`_id`) and put it at that id in the table on top. */
static int bind_ids(lua_State *L, int st, const char *what, struct worker *w, char *err,
                    size_t errlen)
{
    lua_getfield(L, st, what);
    int n = (int)lua_objlen(L, -1);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "name");
        int id = config_find_pool(w->cfg, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (id < 0) {
            snprintf(err, errlen, "the script declared %s unlike its first run", what);
            return MG_ERR;
        }
        lua_pushinteger(L, id);
        lua_setfield(L, -2, "_id");
        lua_rawseti(L, -3, id);
    }
    lua_pop(L, 1);
    return MG_OK;
}

static int bind_state(lua_State *L, struct lua_vm *vm, struct worker *w, char *err, size_t errlen)
{
    /* pools and routes by id (route functions return either; hooks look pools up) */
    int st = lua_gettop(L);
    lua_newtable(L);
    if (bind_ids(L, st, "pools", w, err, errlen) != MG_OK ||
        bind_ids(L, st, "routes", w, err, errlen) != MG_OK)
        return MG_ERR;
    vm->pools_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "switches");
    int n = (int)lua_objlen(L, -1);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "name");
        lua_getfield(L, -2, "percent");
        lua_getfield(L, -3, "fleet_pool");
        lua_getfield(L, -4, "fleet_key");
        int id = switch_register(lua_tostring(L, -4), lua_tonumber(L, -3), lua_tostring(L, -2),
                                 lua_tostring(L, -1));
        lua_pop(L, 4);
        if (id < 0) {
            snprintf(err, errlen, "too many switches");
            return MG_ERR;
        }
        lua_pushinteger(L, id);
        lua_setfield(L, -2, "id");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return MG_OK;
}

/* mg.memo (state.memo of the state table at st): the memo and the track table the module
 * and the resolver loop note what a key's functions asked in (vm->track_ref). */
static int memo_init(lua_State *L, struct lua_vm *vm, int st, char *err, size_t errlen)
{
    lua_getfield(L, st, "memo");
    lua_Number size = 0;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "size");
        size = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (size == 0)
        return MG_OK;
    if (!(size >= LUA_MEMO_MIN && size <= LUA_MEMO_MAX)) { /* mg.memo checked it */
        snprintf(err, errlen, "mg.memo: bad size");
        return MG_ERR;
    }
    lua_getfield(L, st - 1, "_track");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        snprintf(err, errlen, "mintgate has no _track table");
        return MG_ERR;
    }
    vm->track_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    vm->memo = lua_memo_new((uint32_t)size);
    if (vm->memo == NULL) {
        snprintf(err, errlen, "mg.memo: out of memory");
        return MG_ERR;
    }
    return MG_OK;
}

int lua_api_worker_init(struct worker *w, const char *script, char *err, size_t errlen)
{
    lua_State *L = lua_vm_new(err, errlen);
    if (L == NULL)
        return MG_ERR;
    struct lua_vm *vm = calloc(1, sizeof(*vm));
    if (vm == NULL) {
        lua_close(L);
        snprintf(err, errlen, "out of memory");
        return MG_ERR;
    }
    vm->L = L;
    vm->w = w;
    vm->refs = 1;
    vm->resolve_ref = LUA_NOREF;
    vm->pools_ref = LUA_NOREF;
    vm->track_ref = LUA_NOREF;
    for (int i = 0; i < OP_EV_COUNT; i++)
        vm->hook_ref[i] = LUA_NOREF;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_core);
    lua_setfield(L, -2, "mintgate.core");
    lua_pop(L, 2);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "mintgate.cos");
    lua_pushvalue(L, -1);
    vm->cos_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* coroutine.yield raises inside the gateway's coroutines (only pool calls may wait
     * there: a bare yield would never be resumed); the original goes to the registry for
     * the resolver loop. Coroutines the script makes itself yield as usual. */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "mintgate.guard"); /* lua/mintgate/guard.lua */
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(err, errlen, "yield guard: %s", lua_tostring(L, -1));
        goto fail;
    }
    lua_getfield(L, -1, "install");
    lua_remove(L, -2);
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "mintgate.yield");
    vm->s_key = intern(L, "key");
    vm->s_command = intern(L, "command");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, req_index);
    lua_setfield(L, -2, "__index");
    vm->req_mt = luaL_ref(L, LUA_REGISTRYINDEX);
    for (size_t i = 0; i < MG_ARRAY_LEN(vm->s_cmd); i++)
        vm->s_cmd[i] = intern(L, i < MG_ARRAY_LEN(cmd_names) && cmd_names[i] ? cmd_names[i] : "?");
    if (lua_vm_run(L, script, err, errlen) != MG_OK)
        goto fail;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "mintgate");
    if (lua_istable(L, -1))
        lua_getfield(L, -1, "_state");
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "%s: the script never did require \"mintgate\"", script);
        goto fail;
    }
    if (bind_state(L, vm, w, err, errlen) != MG_OK)
        goto fail;
    int st = lua_gettop(L); /* the state table; the module is just below it */
    if (memo_init(L, vm, st, err, errlen) != MG_OK)
        goto fail;
    lua_getfield(L, st, "route_fn");
    lua_getfield(L, st - 1, "_key_fns");
    lua_call(L, 0, 2); /* key functions by pool id, and mg.keys' */
    vm->has_key_fn = !lua_isnil(L, -2);
    if (vm->has_key_fn || !lua_isnil(L, -3)) {
        if (lua_resolve_load(L) != MG_OK) {
            snprintf(err, errlen, "resolver: %s", lua_tostring(L, -1));
            goto fail;
        }
        lua_insert(L, st + 1); /* below route_fn */
        lua_getfield(L, st, "policy_ids");
        lua_pushlightuserdata(L, (void *)&lua_resolver_done);
        lua_getfield(L, LUA_REGISTRYINDEX, "mintgate.yield");
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->track_ref); /* nil without a memo */
        lua_call(L, 7, 1);
        vm->resolve_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        vm->per_request = true;
    } else { /* nothing to memoize */
        lua_pop(L, 3);
        lua_memo_free(vm->memo);
        vm->memo = NULL;
    }
    lua_getfield(L, -1, "hooks");
    for (int i = 0; i < OP_EV_COUNT; i++) {
        lua_getfield(L, -1, hook_names[i]);
        if (lua_isfunction(L, -1)) {
            vm->hook_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
            vm->per_request = true;
        } else {
            lua_pop(L, 1);
        }
    }
    lua_settop(L, 0);
    w->vm = vm;
    w->plugin = vm->per_request ? &lua_plugin : NULL;
    atomic_store_explicit(&w->st.lua_memo_entries, 0, memory_order_relaxed);
    atomic_store_explicit(&w->st.lua_memo_capacity, vm->memo ? lua_memo_capacity(vm->memo) : 0,
                          memory_order_relaxed);
    return MG_OK;
fail:
    lua_close(L);
    lua_memo_free(vm->memo);
    free(vm);
    return MG_ERR;
}

void lua_api_vm_release(struct lua_vm *vm)
{
    vm_unref(vm);
}

void lua_api_worker_release(struct worker *w)
{
    if (w->vm)
        vm_unref(w->vm);
    w->vm = NULL;
    w->plugin = NULL;
}

size_t lua_api_mem_kb(const struct worker *w)
{
    return w->vm ? (size_t)lua_gc(w->vm->L, LUA_GCCOUNT, 0) : 0;
}
