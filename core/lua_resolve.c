/* lua_resolve.c: route and key functions per key, in coroutines that keep running a loop.
 *
 * Each coroutine of the pool that resolves keys runs the resolver loop for good:
 * one resume per key, or one per batch of up to LUA_BATCH_MAX keys of a multi-key get.
 * The coroutine pool, its resumes and pool calls are lua_api.c's.
 *
 * With mg.memo (the script declares its functions pure), a key's resolution is looked up
 * in the worker's memo first (lua_memo.c) and a hit fills it without entering Lua. What
 * the functions asked besides the key decides what is kept: the resolver loop yields it
 * per key (MEMO_DEP_*): a switch (the entry lives while no switch changes), req.command
 * (the entry is for that command only), anything else of req (req.user, req.client, ...;
 * not kept), and a pool call (co->called; not kept). Errors and refused results are never
 * kept. */
#include "lua_resolve.h"

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "log.h"
#include "lua_co.h"
#include "lua_memo.h"
#include "request.h"
#include "stats.h"
#include "switch.h"
#include "worker.h"

/* What a key's functions asked besides the key (lua/mintgate/resolver.lua yields it). */
enum { MEMO_DEP_SWITCH = 1, MEMO_DEP_CMD = 2, MEMO_DEP_OTHER = 4 };

/* The per-key resolver is lua/mintgate/resolver.lua: a loop a coroutine runs for good,
 * one resume per key or per batch; its header says what each turn takes and yields. */
int lua_resolve_load(lua_State *L)
{
    /* mintgate.resolver's factory, found on the script's package.path like the rest */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "mintgate.resolver");
    if (lua_pcall(L, 1, 1, 0) != 0)
        return MG_ERR;
    lua_getfield(L, -1, "new");
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "mintgate.resolver has no function new");
        return MG_ERR;
    }
    return MG_OK;
}

/* Fail key i of r with a reply line made of prefix and msg (appended to r->rkeys: the
 * keys earlier ops resolved to stay there for their resends). */
static void res_fail(struct request *r, uint32_t i, const char *prefix, const char *msg)
{
    struct resolution *res = &r->ops[i].res;
    uint32_t off = (uint32_t)r->rkeys.len;
    lua_error_line(&r->rkeys, prefix, msg);
    res->pool = RES_FAILED;
    res->policy = RES_TABLE;
    res->key_off = off;
    res->key_len = (uint32_t)r->rkeys.len - off;
}

/* Key k of op i of r from vm's memo into its resolution (the backend key appended to
 * r->rkeys). Returns true on a hit; counts hits and misses. */
static bool memo_fill(struct lua_vm *vm, struct request *r, uint32_t i, const char *k, size_t n,
                      uint64_t gen)
{
    struct memo_hit h;
    struct stats *st = &r->w->st;
    if (!lua_memo_get(vm->memo, lua_memo_hash(k, n), k, n, (int)r->cmd, gen, &h)) {
        STAT_INC(st->lua_memo_misses);
        return false;
    }
    struct resolution *res = &r->ops[i].res;
    *res = (struct resolution){ h.pool, h.policy, (uint32_t)r->rkeys.len, h.key_len };
    if (h.key_len) {
        if (r->rkeys.cap - r->rkeys.len < h.key_len && buf_reserve(&r->rkeys, h.key_len) != MG_OK) {
            STAT_INC(st->lua_memo_misses);
            return false;
        }
        buf_put(&r->rkeys, h.key, h.key_len);
    }
    STAT_INC(st->lua_memo_hits);
    return true;
}

/* Keep the resolution res of key k (of r's command), computed by co's turn whose
 * functions asked dep (MEMO_DEP_*), when it may be kept. */
static void memo_keep(struct lua_co *co, struct request *r, const char *k, size_t n, int dep,
                      const struct resolution *res)
{
    struct lua_vm *vm = co->vm;
    struct worker *w = r->w;
    if (res->pool == RES_FAILED || (dep & MEMO_DEP_OTHER) || co->called) {
        STAT_INC(w->st.lua_memo_uncacheable);
        return;
    }
    struct memo_hit h = { res->pool, res->policy, r->rkeys.data + res->key_off, res->key_len };
    int rc = lua_memo_put(vm->memo, lua_memo_hash(k, n), k, n,
                          (dep & MEMO_DEP_CMD) ? (int)r->cmd : LUA_MEMO_ANY_CMD,
                          (dep & MEMO_DEP_SWITCH) != 0, co->mgen, &h);
    if (rc < 0)
        STAT_INC(w->st.lua_memo_uncacheable);
    else if (rc > 0)
        STAT_INC(w->st.lua_memo_evictions);
    if (vm == w->vm) /* a state a reload replaced is not the one counted */
        atomic_store_explicit(&w->st.lua_memo_entries, lua_memo_count(vm->memo),
                              memory_order_relaxed);
}

static void resolve_k(struct lua_co *co, const char *err)
{
    struct request *r = co->r;
    lua_State *L = co->L;
    uint32_t i = co->bfirst;
    struct resolution *res = &r->ops[i].res;
    *res = (struct resolution){ RES_TABLE, RES_TABLE, 0, 0 };
    if (err) {
        res_fail(r, i, "SERVER_ERROR lua: ", err);
        if (co->vm->memo)
            STAT_INC(r->w->st.lua_memo_uncacheable);
    } else {
        /* yielded: the done mark, the pool's id (or nil: the prefix table), key (or nil),
         * policy id (or nil); the resolver loop checked the types */
        if (lua_type(L, 2) == LUA_TNUMBER)
            res->pool = (int)lua_tointeger(L, 2);
        if (lua_type(L, 4) == LUA_TNUMBER)
            res->policy = (int)lua_tointeger(L, 4);
        if (res->pool >= (int)r->w->cfg->npools) {
            res_fail(r, i, "SERVER_ERROR lua: ", "route function returned no pool");
        } else if (lua_type(L, 3) == LUA_TSTRING) {
            size_t n;
            const char *k = lua_tolstring(L, 3, &n);
            res->key_off = (uint32_t)r->rkeys.len; /* after the keys earlier ops resolved to */
            if (n == 0)
                res_fail(r, i, "SERVER_ERROR lua: ", "key function returned an empty key");
            else if (buf_append(&r->rkeys, k, n) == MG_OK)
                res->key_len = (uint32_t)n;
        }
        if (co->vm->memo)
            memo_keep(co, r, co->mkey, co->mklen, (int)lua_tointeger(L, 5), res);
    }
    r->res_until = i + 1;
    if (!err)
        lua_co_put(co);
    if (r->parked) /* it waited: pick the dispatch up where it stopped */
        dispatch_resume(r);
}

/* The pool the prefix table (or the default) gives a key: whose key function applies
 * when the route function names none. */
static int table_pool(struct request *r, const char *key, size_t klen)
{
    const struct stale_policy *pol;
    return (int)config_route(r->w->cfg, key, klen, &pol)->id;
}

/* A coroutine that does not run the resolver loop yet gets the loop function and its
 * start arguments (req, ks, rs) pushed. Returns how many values that pushed. */
static int resolver_start(struct lua_co *co, struct request *r)
{
    co->cur = r; /* req.client is looked up lazily (req_index) from here */
    if (co->resolver)
        return 0;
    lua_State *L = co->L;
    if (co->vm->memo) { /* req.command through __index, where reading it is noted */
        lua_rawgeti(L, LUA_REGISTRYINDEX, co->req_ref);
        lua_rawgeti(L, LUA_REGISTRYINDEX, co->vm->s_command);
        lua_pushnil(L);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, co->vm->resolve_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, co->req_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, co->ks_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, co->rs_ref);
    co->resolver = true;
    return 3; /* the function is not an argument */
}

/* The command argument of a resolver turn: its name when it changed, else nil (always nil
 * with a memo: req.command comes from __index). */
static void push_cmd(struct lua_co *co, struct request *r)
{
    if (co->last_cmd != (int)r->cmd && co->vm->memo == NULL) {
        co->last_cmd = (int)r->cmd;
        lua_rawgeti(co->L, LUA_REGISTRYINDEX, co->vm->s_cmd[r->cmd]);
    } else {
        lua_pushnil(co->L);
    }
}

/* A batch's results from rs (and ks) into its ops; keys go to r->rkeys. Turn key j is op
 * bfirst + j, or with a memo op bfirst + bmap[j] (the keys it did not have); the batch
 * covers bspan ops. */
static void resolve_batch_k(struct lua_co *co, const char *err)
{
    struct request *r = co->r;
    lua_State *L = co->L;
    int npools = (int)r->w->cfg->npools;
    bool keys = co->vm->has_key_fn, memo = co->vm->memo != NULL;
    int rs = 0, ks = 0;
    if (!err && lua_checkstack(L, 4)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, co->rs_ref);
        rs = lua_gettop(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, co->ks_ref);
        ks = rs + 1;
    }
    for (uint32_t j = 0; j < co->bn; j++) {
        struct op *op = &r->ops[co->bfirst + (memo ? co->bmap[j] : j)];
        struct resolution *res = &op->res;
        *res = (struct resolution){ RES_FAILED, RES_TABLE, 0, 0 };
        if (rs == 0) {
            if (memo)
                STAT_INC(r->w->st.lua_memo_uncacheable);
            continue;
        }
        lua_rawgeti(L, rs, (int)j + 1);
        lua_Integer code = lua_tointeger(L, -1);
        lua_pop(L, 1);
        int pool = (int)(code % 65536) - 2, policy = (int)(code / 65536) - 1;
        if (code <= 0 || keys) {
            lua_rawgeti(L, ks, (int)j + 1);
            size_t n = 0;
            const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
            if (code <= 0) {
                log_error("lua: %s", k ? k : "error");
                pool = RES_FAILED;
            } else if (k && n == 0) {
                log_error("lua: key function returned an empty key");
                pool = RES_FAILED;
            } else if (k) {
                res->key_off = (uint32_t)r->rkeys.len;
                res->key_len = (uint32_t)n;
                if (buf_append(&r->rkeys, k, n) != MG_OK)
                    pool = RES_FAILED;
            }
            lua_pop(L, 1);
        }
        if (pool >= npools) {
            log_error("lua: route function returned no pool");
            pool = RES_FAILED;
        }
        res->pool = pool;
        res->policy = policy;
        if (memo) {
            lua_rawgeti(L, rs, LUA_BATCH_MAX + (int)j + 1);
            int dep = (int)lua_tointeger(L, -1);
            lua_pop(L, 1);
            memo_keep(co, r, op->ckey.p, op->ckey.len, dep, res);
        }
    }
    r->res_until = co->bfirst + (memo ? co->bspan : co->bn);
    if (!err)
        lua_co_put(co);
    if (r->parked)
        dispatch_resume(r);
}

int lua_resolve_batch(struct request *r, uint32_t first, uint32_t n)
{
    struct lua_vm *vm = r->w->vm;
    if (r->w->cfg->npools >= 65534 || r->w->cfg->nnamed >= 65535)
        return MG_ERR;                  /* ids would not fit the batch's packed results */
    if (vm->resolve_ref == LUA_NOREF) { /* hooks only: tables and styles decide */
        for (uint32_t i = first; i < first + n; i++)
            r->ops[i].res = (struct resolution){ RES_TABLE, RES_TABLE, 0, 0 };
        r->res_until = first + n;
        return MG_OK;
    }
    uint8_t bmap[LUA_BATCH_MAX];
    uint32_t nrun = n;
    uint64_t gen = 0;
    if (vm->memo) { /* the keys the memo has are done; the others go to Lua */
        gen = switch_generation();
        nrun = 0;
        for (uint32_t i = 0; i < n; i++) {
            const struct mg_slice *k = &r->ops[first + i].ckey;
            if (!memo_fill(vm, r, first + i, k->p, k->len, gen))
                bmap[nrun++] = (uint8_t)i;
        }
        if (nrun == 0) {
            r->res_until = first + n;
            return MG_OK;
        }
    }
    struct lua_co *co = lua_co_get(vm, true);
    if (co == NULL)
        return MG_ERR;
    co->r = r;
    co->k = resolve_batch_k;
    co->bfirst = first;
    co->bn = nrun;
    co->bspan = n;
    co->called = false;
    co->mgen = gen;
    if (vm->memo)
        memcpy(co->bmap, bmap, nrun);
    lua_State *L = co->L;
    int nargs = resolver_start(co, r) + 3;
    lua_rawgeti(L, LUA_REGISTRYINDEX, co->ks_ref);
    for (uint32_t j = 0; j < nrun; j++) {
        const struct mg_slice *k = &r->ops[first + (vm->memo ? bmap[j] : j)].ckey;
        lua_pushlstring(L, k->p, k->len);
        lua_rawseti(L, -2, (int)j + 1);
    }
    lua_pop(L, 1);
    if (vm->has_key_fn) { /* the table's pool of each key, for its key function */
        lua_rawgeti(L, LUA_REGISTRYINDEX, co->rs_ref);
        for (uint32_t j = 0; j < nrun; j++) {
            const struct mg_slice *k = &r->ops[first + (vm->memo ? bmap[j] : j)].ckey;
            lua_pushinteger(L, table_pool(r, k->p, k->len));
            lua_rawseti(L, -2, (int)j + 1);
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    push_cmd(co, r);
    lua_pushinteger(L, (lua_Integer)nrun);
    return lua_co_run(co, nargs) == MG_EAGAIN ? MG_EAGAIN : MG_OK;
}

int lua_resolve_key(struct request *r, uint32_t i, const char *key, size_t klen)
{
    struct lua_vm *vm = r->w->vm;
    if (vm->resolve_ref == LUA_NOREF) { /* hooks only: tables and styles decide */
        r->ops[i].res = (struct resolution){ RES_TABLE, RES_TABLE, 0, 0 };
        r->res_until = i + 1;
        return MG_OK;
    }
    uint64_t gen = 0;
    if (vm->memo) {
        gen = switch_generation(); /* before the functions read any switch */
        if (memo_fill(vm, r, i, key, klen, gen)) {
            r->res_until = i + 1;
            return MG_OK;
        }
    }
    struct lua_co *co = lua_co_get(vm, true);
    if (co == NULL) { /* the key fails with this line (it once went on with a stale pool) */
        res_fail(r, i, "SERVER_ERROR ", "out of memory");
        r->res_until = i + 1;
        return MG_ERR;
    }
    co->r = r;
    co->k = resolve_k;
    co->bfirst = i;
    co->bn = 1;
    co->called = false;
    co->mgen = gen;
    co->mkey = key;
    co->mklen = (uint32_t)klen;
    lua_State *L = co->L;
    int nargs = resolver_start(co, r) + 4;
    lua_pushlstring(L, key, klen);
    push_cmd(co, r);
    lua_pushnil(L);
    if (vm->has_key_fn)
        lua_pushinteger(L, table_pool(r, key, klen));
    else
        lua_pushnil(L);
    return lua_co_run(co, nargs) == MG_EAGAIN ? MG_EAGAIN : MG_OK;
}
