/* lua_vm.c: LuaJIT states: running the config script and compiling what it declared. */
#include "lua_vm.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "near.h"
#include "request.h"
#include "switch.h"

/* Directory of the running binary, for finding lua/ beside it. */
static void exe_dir(char *out, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", out, len - 1);
    if (n <= 0) {
        snprintf(out, len, ".");
        return;
    }
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
}

struct lua_State *lua_vm_new(char *err, size_t errlen)
{
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        snprintf(err, errlen, "cannot create a Lua state");
        return NULL;
    }
    luaL_openlibs(L);
    char dir[4096];
    exe_dir(dir, sizeof(dir));
    const char *extra = getenv("MINTGATE_LUA_PATH");
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    /* beside the binary (a build tree), the tree it is installed in (luarocks: bin/ and
     * share/lua/5.1/ side by side), the configured prefix, then Lua's own path */
    lua_pushfstring(L,
                    "%s%s%s/lua/?.lua;%s/lua/?/init.lua;%s/../share/lua/5.1/?.lua;"
                    "%s/../share/lua/5.1/?/init.lua;%s/?.lua;%s/?/init.lua;%s",
                    extra ? extra : "", extra ? ";" : "", dir, dir, dir, dir, MG_LUADIR, MG_LUADIR,
                    lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
    return L;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

int lua_vm_run(lua_State *L, const char *path, char *err, size_t errlen)
{
    int base = lua_gettop(L);
    lua_pushcfunction(L, traceback);
    int rc = luaL_loadfile(L, path);
    if (rc == 0)
        rc = lua_pcall(L, 0, 0, base + 1);
    if (rc != 0)
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
    lua_settop(L, base);
    return rc == 0 ? MG_OK : MG_ERR;
}

/* Read a key style table at idx into ks. Returns 1 when there is one, 0 for none (nil
 * or a function: functions run per request), -1 on error (err filled). */
static int read_keys(lua_State *L, int idx, struct key_style *ks, char *err, size_t errlen)
{
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    if (!lua_istable(L, idx))
        return 0;
    const char *f[4] = { "style", "prefix", "version", "flavor" };
    const char *v[4];
    for (int i = 0; i < 4; i++) {
        lua_getfield(L, idx, f[i]);
        v[i] = lua_tostring(L, -1); /* strings stay anchored in the table */
        lua_pop(L, 1);
    }
    lua_getfield(L, idx, "hash_long");
    bool hash_long = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return keys_style_init(ks, v[0], v[1], v[2], v[3], hash_long, err, errlen) == MG_OK ? 1 : -1;
}

/* Read number field name of the table on top into *out when present.
 * Returns MG_ERR when present but not a number. */
static int opt_number(lua_State *L, const char *name, double *out)
{
    lua_getfield(L, -1, name);
    int rc = MG_OK;
    if (lua_isnumber(L, -1))
        *out = lua_tonumber(L, -1);
    else if (!lua_isnil(L, -1))
        rc = MG_ERR;
    lua_pop(L, 1);
    return rc;
}

/* Read the policy at stack index idx (a table, false, or nil) into *out.
 * Returns 1 when a policy (or an explicit "none") is there, 0 for nil. */
static int read_policy(lua_State *L, int idx, struct stale_policy *out)
{
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    if (lua_isnil(L, idx))
        return 0;
    memset(out, 0, sizeof(*out));
    if (!lua_istable(L, idx)) {
        out->off = true;
        return 1;
    }
    lua_getfield(L, idx, "grace");
    out->grace = (uint32_t)lua_tonumber(L, -1);
    lua_getfield(L, idx, "lock");
    out->lock = (uint32_t)lua_tonumber(L, -1);
    lua_getfield(L, idx, "wait");
    out->wait_ms = (uint32_t)lua_tonumber(L, -1);
    lua_getfield(L, idx, "on_delete");
    const char *od = lua_tostring(L, -1);
    out->mark_stale = od && strcmp(od, "mark_stale") == 0;
    lua_getfield(L, idx, "coalesce");
    out->coalesce = lua_toboolean(L, -1);
    lua_getfield(L, idx, "beta");
    out->beta = (float)lua_tonumber(L, -1);
    lua_getfield(L, idx, "delta");
    out->delta_ms = (uint32_t)lua_tonumber(L, -1);
    lua_getfield(L, idx, "guard");
    out->guard = lua_toboolean(L, -1);
    lua_pop(L, 8);
    return 1;
}

/* A pool's near = { ttl =, prefixes = } (checked by the module) into p. */
static int read_pool_near(lua_State *L, struct pool *p)
{
    lua_getfield(L, -1, "near");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return MG_OK;
    }
    p->near = true;
    lua_getfield(L, -1, "ttl");
    p->near_ttl = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
    lua_pop(L, 1);
    lua_getfield(L, -1, "prefixes");
    uint32_t n = (uint32_t)lua_objlen(L, -1);
    if (n) {
        p->near_prefixes = calloc(n, sizeof(char *));
        p->near_prefix_len = calloc(n, sizeof(uint32_t));
        if (p->near_prefixes == NULL || p->near_prefix_len == NULL) {
            lua_pop(L, 2);
            return MG_ERR;
        }
        for (uint32_t i = 0; i < n; i++) {
            lua_rawgeti(L, -1, (int)i + 1);
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            p->near_prefixes[i] = s ? strndup(s, len) : NULL;
            lua_pop(L, 1);
            if (p->near_prefixes[i] == NULL) {
                lua_pop(L, 2);
                return MG_ERR;
            }
            p->near_prefix_len[i] = (uint32_t)len;
            p->nnear_prefixes = i + 1;
        }
    }
    lua_pop(L, 2);
    return MG_OK;
}

/* mg.near (checked by the module) into c->near; then which pools have the near cache. */
static void read_near(lua_State *L, struct config *c)
{
    struct near_conf *nc = &c->near;
    lua_getfield(L, -1, "near");
    if (lua_istable(L, -1)) {
        static const char *const f[] = { "size", "ttl", "hot", "max_value", "hot_rps", "hot_top" };
        double v[6];
        for (int i = 0; i < 6; i++) {
            lua_getfield(L, -1 - i, f[i]);
            v[i] = lua_isboolean(L, -1) ? lua_toboolean(L, -1) : lua_tonumber(L, -1);
        }
        lua_pop(L, 6);
        nc->given = true;
        nc->size = (uint64_t)v[0];
        nc->ttl = v[1];
        nc->hot = v[2] != 0;
        nc->max_value = (uint32_t)v[3];
        nc->hot_rps = v[4];
        nc->hot_top = (uint32_t)v[5];
    } else {
        nc->size = NEAR_SIZE_DEFAULT;
        nc->ttl = NEAR_TTL_DEFAULT;
        nc->max_value = NEAR_MAX_VALUE_DEFAULT;
        nc->hot_rps = 100;
        nc->hot_top = 32;
    }
    lua_pop(L, 1);
    for (uint32_t i = 0; i < c->npools; i++) {
        struct pool *p = &c->pools[i];
        if (p->kind != POOL_SERVERS)
            continue;
        if (nc->given && nc->hot)
            p->near = true;
        /* its own ttl, at most mg.near's when that was given */
        if (p->near_ttl <= 0 || (nc->given && p->near_ttl > nc->ttl))
            p->near_ttl = nc->ttl;
        nc->on |= p->near;
    }
}

/* The pool on top of the stack's auth { user, password } (checked by init.lua) into o. */
static int read_pool_auth(lua_State *L, struct pool_opts *o)
{
    int rc = MG_OK;
    lua_getfield(L, -1, "auth");
    if (lua_istable(L, -1)) {
        size_t ul = 0, pl = 0;
        lua_getfield(L, -1, "user");
        lua_getfield(L, -2, "password");
        const char *u = lua_tolstring(L, -2, &ul), *p = lua_tolstring(L, -1, &pl);
        if (u == NULL || p == NULL || ul == 0 || ul + 1 + pl >= sizeof(o->auth)) {
            rc = MG_ERR;
        } else {
            memcpy(o->auth, u, ul);
            o->auth[ul] = ' ';
            memcpy(o->auth + ul + 1, p, pl);
            o->auth_len = (uint16_t)(ul + 1 + pl);
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    return rc;
}

/* Compile pools from the state table on top of the stack into c. */
static int compile_pools(lua_State *L, struct config *c, const struct settings *s, char *err,
                         size_t errlen)
{
    lua_getfield(L, -1, "pools");
    int n = (int)lua_objlen(L, -1);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "name");
        const char *name = lua_tostring(L, -1);
        lua_pop(L, 1);
        struct pool_opts o = s->opts;
        double fl = o.failure_limit, mi = -1, nc = o.connections;
        if (opt_number(L, "connect_timeout", &o.connect_timeout) != MG_OK ||
            opt_number(L, "timeout", &o.timeout) != MG_OK ||
            opt_number(L, "retry_timeout", &o.retry_timeout) != MG_OK ||
            opt_number(L, "failure_limit", &fl) != MG_OK ||
            opt_number(L, "max_inflight", &mi) != MG_OK ||
            opt_number(L, "connections", &nc) != MG_OK || nc < 1 || nc > 64 || nc != (int)nc) {
            snprintf(err, errlen, "pool '%s': bad option", name ? name : "?");
            return MG_ERR;
        }
        o.failure_limit = (uint32_t)fl;
        if (mi >= 1 && mi < UINT32_MAX)
            o.max_inflight = (uint32_t)mi;
        o.connections = (uint32_t)nc;
        o.auth_len = 0;
        if (read_pool_auth(L, &o) != MG_OK) {
            snprintf(err, errlen, "pool '%s': bad auth", name ? name : "?");
            return MG_ERR;
        }
        lua_getfield(L, -1, "servers");
        int ns = (int)lua_objlen(L, -1);
        const char **names = calloc((size_t)ns + 1, sizeof(char *));
        if (names == NULL) {
            snprintf(err, errlen, "out of memory");
            return MG_ERR;
        }
        for (int j = 1; j <= ns; j++) {
            lua_rawgeti(L, -1, j);
            names[j - 1] = lua_tostring(L, -1); /* kept alive by the servers table */
            lua_pop(L, 1);
        }
        int rc = config_add_pool(c, name ? name : "?", names, (uint32_t)ns, &o, err, errlen);
        free(names);
        lua_pop(L, 1); /* servers */
        if (rc >= 0) {
            lua_getfield(L, -1, "stale");
            struct pool *p = &c->pools[rc];
            p->has_stale = read_policy(L, -1, &p->own_stale) != 0;
            lua_pop(L, 1);
            lua_getfield(L, -1, "keys");
            int k = read_keys(L, -1, &p->own_keys, err, errlen);
            if (lua_isfunction(L, -1)) /* the pool's own key function gets long keys too */
                c->long_keys = true;
            lua_pop(L, 1);
            if (k < 0)
                return MG_ERR;
            p->has_keys = k > 0;
            if (k > 0 && p->own_keys.hash_long)
                c->long_keys = true;
            lua_getfield(L, -1, "eject");
            const char *ej = lua_tostring(L, -1);
            p->remap = ej && strcmp(ej, "remap") == 0;
            lua_pop(L, 1);
            if (read_pool_near(L, p) != MG_OK) {
                snprintf(err, errlen, "out of memory");
                return MG_ERR;
            }
        }
        lua_pop(L, 1); /* pool */
        if (rc < 0)
            return MG_ERR;
    }
    lua_pop(L, 1);
    return MG_OK;
}

/* Routes (mg.failover, mg.warmup), after the pools they name. */
static int compile_failovers(lua_State *L, struct config *c, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        uint32_t bits;
    } kinds[] = {
        { "down", (1u << OP_FAIL_DOWN) | (1u << OP_FAIL_CLOSED) },
        { "timeout", 1u << OP_FAIL_TIMEOUT },
        { "error", 1u << OP_FAIL_ERROR },
    };
    lua_getfield(L, -1, "routes");
    int n = (int)lua_objlen(L, -1);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "name");
        const char *name = lua_tostring(L, -1);
        lua_getfield(L, -2, "children");
        int nc = (int)lua_objlen(L, -1);
        const char *names[64];
        if (name == NULL || nc < 2 || nc > 64) {
            snprintf(err, errlen, "failover %d: bad declaration", i);
            return MG_ERR;
        }
        for (int j = 1; j <= nc; j++) {
            lua_rawgeti(L, -1, j);
            names[j - 1] = lua_tostring(L, -1); /* kept alive by the children table */
            lua_pop(L, 1);
        }
        uint32_t on = 0;
        lua_getfield(L, -3, "on");
        for (size_t k = 0; k < MG_ARRAY_LEN(kinds); k++) {
            lua_getfield(L, -1, kinds[k].name);
            if (lua_toboolean(L, -1))
                on |= kinds[k].bits;
            lua_pop(L, 1);
        }
        lua_getfield(L, -4, "ttl");
        lua_getfield(L, -5, "on_miss");
        lua_getfield(L, -6, "kind");
        double ttl = lua_tonumber(L, -3);
        uint32_t t = ttl > 0 && ttl < 4e9 ? (uint32_t)ttl : 0;
        const char *kind = lua_tostring(L, -1);
        int rc;
        if (kind && strcmp(kind, "warmup") == 0 && nc == 2) {
            rc = config_add_warmup(c, name, names[0], names[1], t, err, errlen);
        } else if (kind && strcmp(kind, "shadow") == 0 && nc == 2) {
            lua_getfield(L, -7, "switch");
            lua_getfield(L, -8, "percent");
            const char *swname = lua_tostring(L, -2);
            int sw = swname ? switch_register(swname, lua_tonumber(L, -1), NULL, NULL) : -1;
            lua_pop(L, 2);
            rc = sw < 0 ? MG_ERR : config_add_shadow(c, name, names[0], names[1], sw, err, errlen);
            if (sw < 0)
                snprintf(err, errlen, "shadow '%s': cannot register its switch", name);
        } else if (kind && strcmp(kind, "replicate") == 0) {
            lua_getfield(L, -7, "reads");
            lua_getfield(L, -8, "writes");
            const char *rd = lua_tostring(L, -2), *wr = lua_tostring(L, -1);
            enum rep_reads reads = !rd                           ? REP_READS_FIRST
                                   : strcmp(rd, "fastest") == 0  ? REP_READS_FASTEST
                                   : strcmp(rd, "failover") == 0 ? REP_READS_FAILOVER
                                   : strcmp(rd, "random") == 0   ? REP_READS_RANDOM
                                                                 : REP_READS_FIRST;
            enum rep_writes writes = !wr                           ? REP_WRITES_ALL
                                     : strcmp(wr, "majority") == 0 ? REP_WRITES_MAJORITY
                                     : strcmp(wr, "async") == 0    ? REP_WRITES_ASYNC
                                                                   : REP_WRITES_ALL;
            lua_pop(L, 2);
            rc = config_add_replicate(c, name, names, (uint32_t)nc, reads, writes, on, err, errlen);
        } else {
            rc = config_add_failover(c, name, names, (uint32_t)nc, on, t, lua_toboolean(L, -2), err,
                                     errlen);
        }
        lua_pop(L, 7); /* kind, on_miss, ttl, on, children, name, route */
        if (rc < 0)
            return MG_ERR;
    }
    lua_pop(L, 1);
    return MG_OK;
}

static int compile_routes(lua_State *L, struct config *c, char *err, size_t errlen)
{
    lua_getfield(L, -1, "route");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return MG_OK; /* every key goes to the first pool */
    }
    lua_getfield(L, -1, "default");
    if (lua_isstring(L, -1))
        config_add_route(c, NULL, 0, config_find_pool(c, lua_tostring(L, -1)), NULL);
    lua_pop(L, 1);
    lua_getfield(L, -1, "prefixes");
    int n = (int)lua_objlen(L, -1);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        lua_rawgeti(L, -3, 3);
        struct stale_policy pol;
        int has = read_policy(L, -1, &pol);
        size_t len;
        const char *prefix = lua_tolstring(L, -3, &len);
        int pi = config_find_pool(c, lua_tostring(L, -2));
        if (prefix == NULL || pi < 0 ||
            config_add_route(c, prefix, len, pi, has ? &pol : NULL) != MG_OK) {
            snprintf(err, errlen, "bad route entry %d", i);
            return MG_ERR;
        }
        lua_pop(L, 4);
    }
    lua_pop(L, 2);
    return MG_OK;
}

/* Named policies (mg.policy and the built-in names), in declaration order. */
static int compile_named(lua_State *L, struct config *c, char *err, size_t errlen)
{
    lua_getfield(L, -1, "policies");
    int n = (int)lua_objlen(L, -1);
    c->named = calloc((size_t)n + 1, sizeof(struct named_policy));
    if (c->named == NULL) {
        snprintf(err, errlen, "out of memory");
        lua_pop(L, 1);
        return MG_ERR;
    }
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_rawgeti(L, -1, 1);
        snprintf(c->named[i - 1].name, sizeof(c->named[i - 1].name), "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        lua_rawgeti(L, -1, 2);
        if (read_policy(L, -1, &c->named[i - 1].pol) == 0)
            c->named[i - 1].pol.off = true;
        lua_pop(L, 2);
    }
    c->nnamed = (uint32_t)n;
    lua_pop(L, 1);
    return MG_OK;
}

/* mg.auth { file = ... }: the clients' users file, unless --auth-file gave one. */
static void take_auth(lua_State *L, struct settings *s)
{
    lua_getfield(L, -1, "auth_file");
    if (lua_isstring(L, -1) && !s->auth_from_cli) {
        free(s->auth_file);
        s->auth_file = strdup(lua_tostring(L, -1));
    }
    lua_pop(L, 1);
}

static void take_admin(lua_State *L, struct settings *s)
{
    lua_getfield(L, -1, "admin_on_data_port");
    if (lua_toboolean(L, -1))
        s->admin_on_data_port = true;
    lua_pop(L, 1);
    lua_getfield(L, -1, "admin_public"); /* the opt-in covers the script's own listeners */
    bool public = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, -1, "admin_secret_file");
    if (lua_isstring(L, -1) && !s->admin_secret_from_cli) {
        free(s->admin_secret_file);
        s->admin_secret_file = strdup(lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "admin");
    int n = (int)lua_objlen(L, -1);
    if (!s->admin_from_cli && public)
        s->admin_public = true;
    if (!s->admin_from_cli && n > 0) {
        for (int i = 0; i < s->nadmin; i++)
            free(s->admin[i]);
        s->nadmin = 0;
        for (int i = 1; i <= n && s->nadmin < MG_MAX_LISTENERS; i++) {
            lua_rawgeti(L, -1, i);
            s->admin[s->nadmin++] = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* mg.trace (validated by the module): its options over the defaults. */
static void take_trace(lua_State *L, struct settings *s)
{
    memset(&s->trace, 0, sizeof(s->trace));
    lua_getfield(L, -1, "trace");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "path");
        snprintf(s->trace.path, sizeof(s->trace.path), "%s", lua_tostring(L, -1));
        lua_getfield(L, -2, "sample");
        s->trace.sample = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 1.0;
        lua_getfield(L, -3, "hash_keys");
        s->trace.hash_keys = lua_toboolean(L, -1);
        lua_getfield(L, -4, "max_size");
        s->trace.max_size =
            lua_isnumber(L, -1) ? (uint64_t)lua_tonumber(L, -1) : TRACE_MAX_SIZE_DEFAULT;
        lua_pop(L, 4);
        s->trace.given = true;
    }
    lua_pop(L, 1);
}

/* mg.metrics, mg.slowlog, mg.hotkeys, mg.trace (the command line's flags win). */
static void take_observe(lua_State *L, struct settings *s)
{
    lua_getfield(L, -1, "metrics");
    int n = (int)lua_objlen(L, -1);
    if (!s->metrics_from_cli && n > 0) {
        for (int i = 0; i < s->nmetrics; i++)
            free(s->metrics[i]);
        s->nmetrics = 0;
        for (int i = 1; i <= n && s->nmetrics < MG_MAX_LISTENERS; i++) {
            lua_rawgeti(L, -1, i);
            s->metrics[s->nmetrics++] = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "slowlog");
    if (lua_istable(L, -1) && !s->slowlog_from_cli) {
        lua_getfield(L, -1, "threshold_ms");
        if (lua_isnumber(L, -1))
            s->slowlog_ms = lua_tonumber(L, -1);
        else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
            s->slowlog_off = true;
        lua_getfield(L, -2, "size");
        if (lua_isnumber(L, -1))
            s->slowlog_size = (uint32_t)lua_tonumber(L, -1);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "hotkeys");
    if (lua_istable(L, -1)) {
        static const char *const nums[] = { "top", "sample", "window" };
        uint32_t *dst[] = { &s->hot.top, &s->hot.sample, &s->hot.window };
        for (int i = 0; i < 3; i++) {
            lua_getfield(L, -1, nums[i]);
            if (lua_isnumber(L, -1))
                *dst[i] = (uint32_t)lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        lua_getfield(L, -1, "expose_keys");
        s->hot.expose_keys = lua_toboolean(L, -1);
        lua_getfield(L, -2, "enabled");
        s->hot.disabled = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
        lua_pop(L, 2);
        s->hot.given = true;
    }
    lua_pop(L, 1);
    take_trace(L, s);
}

static void take_listen(lua_State *L, struct settings *s)
{
    take_admin(L, s);
    take_auth(L, s);
    take_observe(L, s);
    lua_getfield(L, -1, "listen");
    int n = (int)lua_objlen(L, -1);
    if (!s->listen_from_cli && n > 0) {
        for (int i = 0; i < s->nlisten; i++)
            free(s->listen[i]);
        s->nlisten = 0;
        for (int i = 1; i <= n && s->nlisten < MG_MAX_LISTENERS; i++) {
            lua_rawgeti(L, -1, i);
            s->listen[s->nlisten++] = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

struct config *lua_config_load(const char *path, struct settings *s, char *err, size_t errlen)
{
    struct config *c = NULL;
    lua_State *L = lua_vm_new(err, errlen);
    if (L == NULL)
        return NULL;
    if (lua_vm_run(L, path, err, errlen) != MG_OK)
        goto done;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "mintgate");
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "%s: the script never did require \"mintgate\"", path);
        goto done;
    }
    lua_getfield(L, -1, "_state");
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "%s: mintgate module has no state", path);
        goto done;
    }
    c = config_new();
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    lua_getfield(L, -1, "stale");
    c->has_default_stale = read_policy(L, -1, &c->default_stale) != 0;
    lua_pop(L, 1);
    lua_getfield(L, -1, "keys");
    int k = read_keys(L, -1, &c->default_keys, err, errlen);
    if (lua_isfunction(L, -1)) /* a key function may hash long keys: it gets them all */
        c->long_keys = true;
    lua_pop(L, 1);
    if (k < 0) {
        config_unref(c);
        c = NULL;
        goto done;
    }
    c->has_default_keys = k > 0;
    if (k > 0 && c->default_keys.hash_long)
        c->long_keys = true;
    if (compile_named(L, c, err, errlen) != MG_OK || compile_pools(L, c, s, err, errlen) != MG_OK ||
        compile_failovers(L, c, err, errlen) != MG_OK ||
        compile_routes(L, c, err, errlen) != MG_OK || config_finish(c, err, errlen) != MG_OK) {
        config_unref(c);
        c = NULL;
        goto done;
    }
    read_near(L, c);
    near_hot_settings(c->near.on && c->near.hot, c->near.hot_rps, c->near.hot_top);
    if (near_ready())
        near_clear(); /* entries of the config before: nobody asks for them again */
    if (c->near.on && near_configure(c->near.size) != MG_OK) {
        snprintf(err, errlen, "near cache: out of memory");
        config_unref(c);
        c = NULL;
        goto done;
    }
    take_listen(L, s);
done:
    lua_close(L);
    return c;
}
