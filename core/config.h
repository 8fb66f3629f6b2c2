/* config.h: one config generation (pools, servers, rings, routes) plus process settings. */
#ifndef MG_CONFIG_H
#define MG_CONFIG_H

#include <stdatomic.h>
#include <sys/socket.h>

#include "keys.h"
#include "mg.h"
#include "trace.h"

struct ketama;

#define MG_MAX_LISTENERS 16

/* Backend behaviour of a pool. Defaults: see config_default_opts. */
#define MG_BACKEND_AUTH_MAX 256 /* "user password" for a backend's text auth */

struct pool_opts {
    double connect_timeout; /* seconds */
    double timeout;         /* seconds a request may wait for its reply */
    uint32_t failure_limit; /* consecutive failures before ejection */
    double retry_timeout;   /* seconds an ejected backend rests before a retry */
    uint32_t max_inflight;  /* requests queued on one backend connection; past it "busy" */
    uint32_t connections;   /* connections per server per worker (1..64) */
    /* mg.pool { auth = ... }: "user password", memcached's text auth, sent first on every
     * new connection to the pool's servers; auth_len 0: none. Copied with the options (a
     * backend keeps its own copy across reloads); never logged. */
    uint16_t auth_len;
    char auth[MG_BACKEND_AUTH_MAX];
};

/* A staleness policy (DESIGN.md §5): how classic clients are shielded from herds.
 * Immutable once its config is finished; lives inside its pool or route entry. */
struct stale_policy {
    uint32_t grace;   /* seconds a value is served stale past its nominal expiry */
    uint32_t lock;    /* seconds a refresher holds the win before another may win */
    uint32_t wait_ms; /* how long a non-winner waits for the value on a cold miss */
    bool mark_stale;  /* on_delete = "mark_stale": delete marks instead of removing */
    bool coalesce;    /* identical gets in flight on one worker share a backend request */
    bool guard;       /* a regeneration's late store cannot overwrite a newer write (herd.c) */
    bool off;         /* "none": explicitly no policy (overrides a default) */
    /* xfetch (probabilistic early recomputation, Vattani et al., VLDB 2015): a reader
     * refreshes early when -delta*beta*ln(rand) reaches the remaining TTL; 0: off */
    float beta;
    uint32_t delta_ms; /* the recompute time delta; 0: measured per pool (herd_regen) */
};

/* A staleness policy a route function may choose by name, per request. */
struct named_policy {
    char name[32];
    struct stale_policy pol;
};

/* One memcached server. Owned by its config; unique by name within a config. */
struct server {
    char *name; /* "host:port" as configured */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint32_t id;           /* index in config->servers; workers index their backends by it */
    struct pool_opts opts; /* from the first pool that names the server */
};

/* A named set of servers with a ketama ring, or a route over pools and routes declared
 * before it (kind POOL_FAILOVER; POOL_WARMUP: children cold then warm, fo_ttl the fill TTL;
 * POOL_SHADOW: main then copy; POOL_REPLICATE; no servers). Owned by its config. Wherever a
 * pool index is taken (route tables, route functions, a route's children), a route's is too.
 */
enum pool_kind { POOL_SERVERS = 0, POOL_FAILOVER, POOL_WARMUP, POOL_SHADOW, POOL_REPLICATE };
/* A replicated route's read and write modes (mg.replicate). */
enum rep_reads { REP_READS_FIRST = 0, REP_READS_FASTEST, REP_READS_FAILOVER, REP_READS_RANDOM };
enum rep_writes { REP_WRITES_ALL = 0, REP_WRITES_MAJORITY, REP_WRITES_ASYNC };

struct pool {
    char *name;
    uint32_t id;
    enum pool_kind kind;
    uint32_t *children; /* failover: pool indexes, tried in order */
    uint32_t nchildren;
    uint32_t fo_on;           /* failover: the op_fail kinds that move on (1 << kind) */
    uint32_t fo_ttl;          /* failover: cap on the TTL of writes to a child after the first */
    bool fo_on_miss;          /* failover: reads move on after a miss too */
    uint32_t depth;           /* route levels under it (0: a server pool); config_finish */
    uint32_t nleaves;         /* server pools under it, counted once per path */
    bool tree_shadow;         /* a shadow route is at or under it (copies after a send) */
    bool tree_pre;            /* a route with copies before a send (not a shadow) is */
    bool flat;                /* a route over server pools that reads from its first (all
                               * but a replicated one; for writes, that one too) */
    int shadow_switch;        /* shadow: the switch whose share of keys is copied to children[1] */
    enum rep_reads rep_reads; /* replicate: which replica serves a read */
    enum rep_writes rep_writes; /* replicate: how many replicas a write waits for */
    struct server **servers;    /* borrowed from config->servers, in ring order */
    uint32_t nservers;
    struct ketama *ring;
    bool remap;         /* eject = "remap": an ejected server's keys go over the live servers */
    uint32_t slot_base; /* a server pool's first per-server slot (struct srv_slot, metrics) */
    uint16_t *slot_of;  /* by server id: its place in this pool, UINT16_MAX if not in it */
    struct pool_opts opts;
    struct stale_policy own_stale;
    bool has_stale;
    const struct stale_policy *stale; /* own, else the config default, else NULL */
    struct key_style own_keys;
    bool has_keys;
    const struct key_style *keys; /* own, else the config default, else NULL (as is) */
    /* the near cache (near.h): its keys may be answered from the gateway's memory (hot ones
     * when mg.near's hot is on, and those with near_prefixes always), for near_ttl s */
    bool near;
    double near_ttl;
    char **near_prefixes;
    uint32_t *near_prefix_len;
    uint32_t nnear_prefixes;
};

struct route_entry {
    char *prefix;
    uint32_t len;
    struct pool *pool;
    struct stale_policy own_stale;
    bool has_stale;
    const struct stale_policy *stale; /* own, else the pool's */
};

/* A config generation: immutable once config_finish succeeded, shared by all workers
 * (read without locks), freed when the last reference is dropped. */
struct config {
    atomic_int refs;
    uint64_t generation;
    struct server *servers;
    uint32_t nservers, servers_cap;
    struct pool *pools;
    uint32_t npools, pools_cap;
    struct route_entry *routes; /* sorted longest prefix first */
    uint32_t nroutes, routes_cap;
    uint32_t nslots; /* per-server slots of all server pools (pool->slot_base) */
    struct pool *default_pool;
    int default_idx;
    struct stale_policy default_stale; /* mg.stale{}: for pools without their own */
    bool has_default_stale;
    struct key_style default_keys; /* mg.keys{}: for pools without their own */
    bool has_default_keys;
    bool has_failover;          /* some route is a failover: requests keep their own copy */
    bool long_keys;             /* some style hashes long keys: accept client keys over 250 bytes */
    struct named_policy *named; /* by index, as the script's mg.policy declared them */
    uint32_t nnamed;
    /* mg.near (near.h); on: some pool has the near cache */
    struct near_conf {
        bool on, given, hot;
        double ttl, hot_rps;
        uint64_t size;
        uint32_t max_value, hot_top;
    } near;
};

/* Process-wide settings from the command line and the script's mg.listen. */
struct settings {
    char *listen[MG_MAX_LISTENERS];
    int nlisten;
    bool listen_from_cli;
    char *admin[MG_MAX_LISTENERS]; /* admin listeners (-A, mg.admin) */
    int nadmin;
    bool admin_from_cli;
    bool admin_on_data_port;    /* accept admin commands on data ports too */
    bool admin_public;          /* admin commands may be reached on non-loopback addresses */
    char *admin_secret_file;    /* file holding the admin secret (--admin-secret-file, mg.admin) */
    bool admin_secret_from_cli; /* --admin-secret-file wins over the script's */
    char *auth_file;            /* clients' users file (--auth-file, mg.auth), or NULL */
    bool auth_from_cli;         /* --auth-file wins over the script's */
    char *servers_arg;          /* -s */
    char *script;               /* config script path, or NULL */
    int threads;
    int max_conns;
    uint32_t value_max;
    int batch_loops;                 /* loop iterations a backend write may wait to gather more */
    bool eject_remap;                /* --eject remap: for the -s pool */
    char *metrics[MG_MAX_LISTENERS]; /* Prometheus endpoints (--metrics, mg.metrics) */
    int nmetrics;
    bool metrics_from_cli;
    double slowlog_ms;     /* the slow log's threshold; < 0: not given (the default) */
    bool slowlog_off;      /* mg.slowlog { threshold_ms = false } */
    uint32_t slowlog_size; /* 0: not given */
    bool slowlog_from_cli;
    struct hot_settings {
        uint32_t top, sample, window; /* 0: not given */
        bool expose_keys, disabled, given;
    } hot;
    /* mg.trace (trace.given: it was called) */
    struct trace_opts trace;
    struct pool_opts opts; /* defaults for pools, from flags */
    bool opts_set[4];      /* which of opts came from flags (they override the script) */
};

extern struct settings settings;

void config_default_opts(struct pool_opts *o);
struct config *config_new(void);
/* Add a pool; servers are "host:port" strings. Returns the pool index or MG_ERR. */
int config_add_pool(struct config *c, const char *name, const char *const *servers, uint32_t n,
                    const struct pool_opts *opts, char *err, size_t errlen);
int config_find_pool(const struct config *c, const char *name);
/* Add a failover route over the pools named in children (pools or routes declared before).
 * Returns its pool index or MG_ERR with err filled. */
int config_add_failover(struct config *c, const char *name, const char *const *children, uint32_t n,
                        uint32_t on, uint32_t ttl, bool on_miss, char *err, size_t errlen);
/* Add a warm-up route: reads try cold, a miss reads warm, whose hit is added to cold with
 * its remaining TTL (else ttl); writes go to cold, deletes to both. */
int config_add_warmup(struct config *c, const char *name, const char *cold, const char *warm,
                      uint32_t ttl, char *err, size_t errlen);
/* Add a shadow route: main serves; the keys switch sw (an id) has on are also sent to copy,
 * whose replies only count. */
int config_add_shadow(struct config *c, const char *name, const char *main, const char *copy,
                      int sw, char *err, size_t errlen);
/* Add a replicated route over children (every write and delete to each). on: the failure
 * kinds a read moves on after (reads = failover). */
int config_add_replicate(struct config *c, const char *name, const char *const *children,
                         uint32_t n, enum rep_reads reads, enum rep_writes writes, uint32_t on,
                         char *err, size_t errlen);
/* prefix NULL sets the default pool. stale may be NULL (the pool's policy applies).
 * Returns MG_OK or MG_ERR. */
int config_add_route(struct config *c, const char *prefix, size_t len, int pool_idx,
                     const struct stale_policy *stale);
/* Resolve addresses, build rings, sort routes. Returns MG_OK or MG_ERR with err filled. */
int config_finish(struct config *c, char *err, size_t errlen);
/* Pool for a key: longest matching prefix, else the default pool. *stale gets the
 * staleness policy that applies (NULL: none). */
struct pool *config_route(const struct config *c, const char *key, size_t len,
                          const struct stale_policy **stale);
void config_ref(struct config *c);
void config_unref(struct config *c);
/* Parse "host:port" (or "[v6]:port"). Returns MG_OK or MG_ERR. host must hold 256 bytes. */
int config_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

#endif
