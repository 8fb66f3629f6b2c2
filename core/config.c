/* config.c: building, routing through and freeing config generations. */
#include "config.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "ketama.h"

struct settings settings;
static atomic_uint_fast64_t generations;

void config_default_opts(struct pool_opts *o)
{
    /* connect/read timeouts a little under libmemcached's seconds-long defaults: a cache
     * that answers in more than a second is as good as down. Failure limit as twemproxy,
     * retry timeout as libmemcached/pylibmc (2 s). */
    o->connect_timeout = 1.0;
    o->timeout = 1.0;
    o->failure_limit = 2;
    o->retry_timeout = 2.0;
    o->max_inflight = UINT32_MAX; /* no limit */
    o->connections = 1;
}

struct config *config_new(void)
{
    struct config *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    c->default_idx = -1;
    c->generation = atomic_fetch_add(&generations, 1) + 1;
    return c;
}

int config_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return MG_ERR;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return MG_ERR;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return MG_ERR;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || p < 0 || p > 65535)
        return MG_ERR;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return MG_OK;
}

static int find_server(const struct config *c, const char *name)
{
    for (uint32_t i = 0; i < c->nservers; i++)
        if (strcmp(c->servers[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Grow an array to hold one more element. Returns MG_OK or MG_ERR. */
static int grow(void **arr, uint32_t n, uint32_t *cap, size_t elem)
{
    if (n < *cap)
        return MG_OK;
    uint32_t ncap = *cap ? *cap * 2 : 4;
    void *p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return MG_ERR;
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return MG_OK;
}

int config_find_pool(const struct config *c, const char *name)
{
    for (uint32_t i = 0; i < c->npools; i++)
        if (strcmp(c->pools[i].name, name) == 0)
            return (int)i;
    return -1;
}

int config_add_pool(struct config *c, const char *name, const char *const *servers, uint32_t n,
                    const struct pool_opts *opts, char *err, size_t errlen)
{
    if (n == 0) {
        snprintf(err, errlen, "pool '%s' has no servers", name);
        return MG_ERR;
    }
    if (config_find_pool(c, name) >= 0) {
        snprintf(err, errlen, "pool '%s' declared twice", name);
        return MG_ERR;
    }
    if (grow((void **)&c->pools, c->npools, &c->pools_cap, sizeof(struct pool)) != MG_OK)
        goto oom;
    struct pool *p = &c->pools[c->npools];
    memset(p, 0, sizeof(*p));
    p->name = strdup(name);
    p->servers = calloc(n, sizeof(struct server *)); /* filled with indexes, fixed later */
    if (p->name == NULL || p->servers == NULL)
        goto oom;
    p->opts = *opts;
    p->id = c->npools;
    for (uint32_t i = 0; i < n; i++) {
        char host[256];
        uint16_t port;
        bool unix_ok = strncmp(servers[i], "unix:/", 6) == 0 && strlen(servers[i]) < 5 + 108;
        if (!unix_ok && config_split_hostport(servers[i], host, sizeof(host), &port) != MG_OK) {
            snprintf(err, errlen, "pool '%s': bad server '%s' (want host:port or unix:/path)", name,
                     servers[i]);
            free(p->name);
            free(p->servers);
            return MG_ERR;
        }
        int si = find_server(c, servers[i]);
        if (si < 0) {
            if (grow((void **)&c->servers, c->nservers, &c->servers_cap, sizeof(struct server)) !=
                MG_OK)
                goto oom;
            struct server *s = &c->servers[c->nservers];
            s->name = strdup(servers[i]);
            if (s->name == NULL)
                goto oom;
            s->id = c->nservers;
            s->opts = *opts;
            si = (int)c->nservers++;
        }
        /* an index for now: c->servers may still move */
        p->servers[i] = (struct server *)(uintptr_t)(si + 1);
    }
    p->nservers = n;
    return (int)c->npools++;
oom:
    snprintf(err, errlen, "out of memory");
    return MG_ERR;
}

int config_add_failover(struct config *c, const char *name, const char *const *children, uint32_t n,
                        uint32_t on, uint32_t ttl, bool on_miss, char *err, size_t errlen)
{
    if (n < 2) {
        snprintf(err, errlen, "route '%s': needs at least two pools", name);
        return MG_ERR;
    }
    if (config_find_pool(c, name) >= 0) {
        snprintf(err, errlen, "'%s' declared twice", name);
        return MG_ERR;
    }
    uint32_t *ids = calloc(n, sizeof(*ids));
    if (ids == NULL)
        goto oom;
    for (uint32_t i = 0; i < n; i++) {
        int id = config_find_pool(c, children[i]);
        if (id < 0) {
            snprintf(err, errlen, "route '%s': '%s' is not a pool or route declared before it",
                     name, children[i]);
            free(ids);
            return MG_ERR;
        }
        ids[i] = (uint32_t)id;
    }
    if (grow((void **)&c->pools, c->npools, &c->pools_cap, sizeof(struct pool)) != MG_OK) {
        free(ids);
        goto oom;
    }
    struct pool *p = &c->pools[c->npools];
    memset(p, 0, sizeof(*p));
    p->name = strdup(name);
    if (p->name == NULL) {
        free(ids);
        goto oom;
    }
    p->id = c->npools;
    p->kind = POOL_FAILOVER;
    p->children = ids;
    p->nchildren = n;
    p->fo_on = on;
    p->fo_ttl = ttl;
    p->fo_on_miss = on_miss;
    p->opts = c->pools[ids[0]].opts;
    c->has_failover = true; /* a shadow and a replicate with reads != failover unset it */
    return (int)c->npools++;
oom:
    snprintf(err, errlen, "out of memory");
    return MG_ERR;
}

/* Does some route send a request again later (a failover's next pool, a warm-up's warm
 * read)? Then requests keep their own copy of the command (has_failover). Shadow copies
 * and replicated writes are sent while the command is still at hand. */
static void config_update_resend(struct config *c)
{
    c->has_failover = false;
    for (uint32_t i = 0; i < c->npools; i++) {
        const struct pool *p = &c->pools[i];
        if (p->kind == POOL_FAILOVER || p->kind == POOL_WARMUP ||
            (p->kind == POOL_REPLICATE && p->rep_reads == REP_READS_FAILOVER))
            c->has_failover = true;
    }
}

int config_add_warmup(struct config *c, const char *name, const char *cold, const char *warm,
                      uint32_t ttl, char *err, size_t errlen)
{
    const char *children[2] = { cold, warm };
    int id = config_add_failover(c, name, children, 2, 0, ttl, true, err, errlen);
    if (id >= 0)
        c->pools[id].kind = POOL_WARMUP;
    return id;
}

int config_add_shadow(struct config *c, const char *name, const char *main, const char *copy,
                      int sw, char *err, size_t errlen)
{
    const char *children[2] = { main, copy };
    int id = config_add_failover(c, name, children, 2, 0, 0, false, err, errlen);
    if (id >= 0) {
        c->pools[id].kind = POOL_SHADOW;
        c->pools[id].shadow_switch = sw;
        config_update_resend(c);
    }
    return id;
}

int config_add_replicate(struct config *c, const char *name, const char *const *children,
                         uint32_t n, enum rep_reads reads, enum rep_writes writes, uint32_t on,
                         char *err, size_t errlen)
{
    int id = config_add_failover(c, name, children, n, reads == REP_READS_FAILOVER ? on : 0, 0,
                                 false, err, errlen);
    if (id >= 0) {
        c->pools[id].kind = POOL_REPLICATE;
        c->pools[id].rep_reads = reads;
        c->pools[id].rep_writes = writes;
        config_update_resend(c);
    }
    return id;
}

int config_add_route(struct config *c, const char *prefix, size_t len, int pool_idx,
                     const struct stale_policy *stale)
{
    if (prefix == NULL) {
        c->default_idx = pool_idx;
        return MG_OK;
    }
    if (grow((void **)&c->routes, c->nroutes, &c->routes_cap, sizeof(struct route_entry)) != MG_OK)
        return MG_ERR;
    struct route_entry *r = &c->routes[c->nroutes];
    r->prefix = malloc(len + 1);
    if (r->prefix == NULL)
        return MG_ERR;
    memcpy(r->prefix, prefix, len);
    r->prefix[len] = '\0';
    r->len = (uint32_t)len;
    r->pool = (struct pool *)(uintptr_t)(pool_idx + 1);
    r->has_stale = stale != NULL;
    if (stale)
        r->own_stale = *stale;
    c->nroutes++;
    return MG_OK;
}

static int route_cmp(const void *a, const void *b)
{
    const struct route_entry *x = a, *y = b;
    return (int)y->len - (int)x->len;
}

static int resolve(struct server *s, char *err, size_t errlen)
{
    if (strncmp(s->name, "unix:", 5) == 0) { /* the ring (ketama.c) checked the path */
        struct sockaddr_un *un = (struct sockaddr_un *)&s->addr;
        size_t len = strlen(s->name + 5);
        if (len == 0 || len >= sizeof(un->sun_path)) {
            snprintf(err, errlen, "bad unix socket path in '%s'", s->name);
            return MG_ERR;
        }
        memset(un, 0, sizeof(*un));
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, s->name + 5, len);
        s->addrlen = (socklen_t)sizeof(*un);
        return MG_OK;
    }
    char host[256];
    uint16_t port;
    if (config_split_hostport(s->name, host, sizeof(host), &port) != MG_OK) {
        snprintf(err, errlen, "bad server '%s'", s->name);
        return MG_ERR;
    }
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve '%s': %s", s->name, gai_strerror(rc));
        return MG_ERR;
    }
    memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
    s->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return MG_OK;
}

int config_finish(struct config *c, char *err, size_t errlen)
{
    if (c->npools == 0) {
        snprintf(err, errlen, "no pool declared");
        return MG_ERR;
    }
    for (uint32_t i = 0; i < c->nservers; i++)
        if (resolve(&c->servers[i], err, errlen) != MG_OK)
            return MG_ERR;
    for (uint32_t i = 0; i < c->npools; i++) {
        struct pool *p = &c->pools[i];
        if (p->kind != POOL_SERVERS)
            continue;
        const char **names = calloc(p->nservers, sizeof(char *));
        if (names == NULL) {
            snprintf(err, errlen, "out of memory");
            return MG_ERR;
        }
        for (uint32_t j = 0; j < p->nservers; j++) {
            p->servers[j] = &c->servers[(uintptr_t)p->servers[j] - 1];
            names[j] = p->servers[j]->name;
        }
        p->ring = ketama_new(names, NULL, p->nservers, err, errlen);
        free(names);
        if (p->ring == NULL)
            return MG_ERR;
        p->slot_of = malloc(c->nservers * sizeof(uint16_t));
        if (p->slot_of == NULL || p->nservers >= UINT16_MAX) {
            snprintf(err, errlen, "pool '%s': out of memory or too many servers", p->name);
            return MG_ERR;
        }
        memset(p->slot_of, 0xff, c->nservers * sizeof(uint16_t));
        for (uint32_t j = p->nservers; j-- > 0;) /* a server named twice: its first place */
            p->slot_of[p->servers[j]->id] = (uint16_t)j;
        p->slot_base = c->nslots;
        c->nslots += p->nservers;
    }
    /* children come before their routes: one pass sees every child's depth and leaves */
    for (uint32_t i = 0; i < c->npools; i++) {
        struct pool *p = &c->pools[i];
        p->depth = 0;
        p->nleaves = p->kind == POOL_SERVERS ? 1 : 0;
        p->tree_shadow = p->kind == POOL_SHADOW;
        p->tree_pre = p->kind != POOL_SERVERS && p->kind != POOL_SHADOW;
        for (uint32_t j = 0; j < p->nchildren; j++) {
            const struct pool *ch = &c->pools[p->children[j]];
            p->tree_shadow |= ch->tree_shadow;
            p->tree_pre |= ch->tree_pre;
            if (ch->depth + 1u > p->depth)
                p->depth = ch->depth + 1u;
            p->nleaves += ch->nleaves;
        }
        p->flat = p->depth == 1 && p->kind != POOL_REPLICATE;
        if (p->depth > MG_ROUTE_DEPTH || p->nleaves > MG_ROUTE_LEAVES) {
            snprintf(err, errlen,
                     "route '%s': routes nest %u deep over %u pools (at most %d and %d)", p->name,
                     p->depth, p->nleaves, MG_ROUTE_DEPTH, MG_ROUTE_LEAVES);
            return MG_ERR;
        }
    }
    for (uint32_t i = 0; i < c->npools; i++) {
        struct pool *p = &c->pools[i];
        p->stale = p->has_stale ? &p->own_stale : c->has_default_stale ? &c->default_stale : NULL;
        if (p->stale && p->stale->off)
            p->stale = NULL;
        p->keys = p->has_keys ? &p->own_keys : c->has_default_keys ? &c->default_keys : NULL;
    }
    for (uint32_t i = 0; i < c->nroutes; i++) {
        struct route_entry *r = &c->routes[i];
        r->pool = &c->pools[(uintptr_t)r->pool - 1];
    }
    if (c->nroutes > 1)
        qsort(c->routes, c->nroutes, sizeof(struct route_entry), route_cmp);
    if (c->default_idx < 0)
        c->default_idx = 0;
    c->default_pool = &c->pools[c->default_idx];
    /* after the sort: entries no longer move */
    for (uint32_t i = 0; i < c->nroutes; i++) {
        struct route_entry *r = &c->routes[i];
        r->stale = r->has_stale ? &r->own_stale : r->pool->stale;
        if (r->stale && r->stale->off)
            r->stale = NULL;
    }
    return MG_OK;
}

struct pool *config_route(const struct config *c, const char *key, size_t len,
                          const struct stale_policy **stale)
{
    for (uint32_t i = 0; i < c->nroutes; i++) {
        const struct route_entry *r = &c->routes[i];
        if (r->len <= len && memcmp(r->prefix, key, r->len) == 0) {
            *stale = r->stale;
            return r->pool;
        }
    }
    *stale = c->default_pool->stale;
    return c->default_pool;
}

void config_ref(struct config *c)
{
    atomic_fetch_add(&c->refs, 1);
}

static void config_free(struct config *c)
{
    for (uint32_t i = 0; i < c->npools; i++) {
        free(c->pools[i].name);
        free(c->pools[i].servers);
        free(c->pools[i].children);
        free(c->pools[i].slot_of);
        for (uint32_t j = 0; j < c->pools[i].nnear_prefixes; j++)
            free(c->pools[i].near_prefixes[j]);
        free(c->pools[i].near_prefixes);
        free(c->pools[i].near_prefix_len);
        if (c->pools[i].ring)
            ketama_free(c->pools[i].ring);
    }
    for (uint32_t i = 0; i < c->nservers; i++)
        free(c->servers[i].name);
    for (uint32_t i = 0; i < c->nroutes; i++)
        free(c->routes[i].prefix);
    free(c->pools);
    free(c->servers);
    free(c->routes);
    free(c->named);
    free(c);
}

void config_unref(struct config *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1)
        config_free(c);
}
