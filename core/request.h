/* request.h: client requests, their backend operations, and reply rendering. */
#ifndef MG_REQUEST_H
#define MG_REQUEST_H

#include <ev.h>

#include "buf.h"
#include "proto_bin.h"
#include "proto_meta.h"
#include "proto_text.h"

struct conn;
struct backend;
struct worker;
struct stale_policy;
struct herd_wait;
struct lease_check;

/* Where a resolver (the plug-in, plugin.h) sends one key: engine concepts. */
#define RES_TABLE (-1)  /* pool: the prefix table decides; policy: the pool's own */
#define RES_FAILED (-2) /* pool: the resolver failed for this key (logged) */
struct resolution {
    int pool;                  /* pool index, or RES_TABLE / RES_FAILED */
    int policy;                /* named policy index, or RES_TABLE */
    uint32_t key_off, key_len; /* backend key in the request's rkeys; len 0: the pool's
                                * key style (for RES_FAILED: the reply line, if any) */
};

/* Why an op failed (op->fail): what the gateway's own callers act on (Lua's pool calls
 * answer nil and a word for each); the reply line that goes with it is for clients. */
enum op_fail {
    OP_FAIL_NONE = 0,
    OP_FAIL_DOWN,      /* the backend is ejected, or connecting to it failed */
    OP_FAIL_TIMEOUT,   /* connect or read timeout */
    OP_FAIL_CLOSED,    /* the backend closed the connection */
    OP_FAIL_ERROR,     /* anything else: write or protocol error, out of memory, shutdown */
    OP_FAIL_TOO_LARGE, /* a value over the limit */
    OP_FAIL_CLIENT,    /* the client's key or command was refused */
};

/* One level of the routes an op goes through: a route (pool index) and the child it
 * took. A route's child may be a route again, MG_ROUTE_DEPTH levels deep at most. */
struct route_step {
    uint32_t route;
    uint32_t child;
};

/* How a classic store of a key its client won is guarded against a newer write (herd.c):
 * not at all, conditional on the won item's CAS, or followed by a check of the lease. */
enum op_guard { OP_GUARD_NONE = 0, OP_GUARD_WIN, OP_GUARD_LEASE };

/* One operation sent to one backend: a key of a request. Owned by its request (in the
 * request's ops array); a backend points to it only while it waits for its reply. */
struct op {
    struct op *next;                /* backend FIFO */
    struct request *req;            /* parent */
    struct backend *be;             /* where it was sent; NULL if it never went out */
    struct buf out;                 /* this op's part of the client reply */
    ev_tstamp sent;                 /* when it was queued on the backend */
    uint32_t vlen;                  /* retrieval hits: value bytes (stats) */
    enum mg_rstatus status;         /* the reply's status, MG_R_NONE on failure */
    enum op_fail fail;              /* why it failed, OP_FAIL_NONE if it did not */
    const struct stale_policy *pol; /* herd policy for a classic get, or NULL */
    struct buf key;                 /* the backend key, kept only when pol is set */
    struct herd_wait *hw;           /* set while the op waits for a value (herd.c owns it) */
    struct op *followers;           /* coalesced gets answered with this op's reply */
    struct op *next_follower;
    bool leading;         /* in the worker's in-flight table (herd.c) */
    bool rekey;           /* the backend key differs: meta replies' k flag is rewritten */
    bool add_k;           /* mg k on a base64 key: sent without k, the reply gets "k<key> b" */
    uint64_t k_after;     /* add_k: the request's flags after k (mg_meta_letter_bit) */
    bool herd_lease;      /* the op's command on the wire is its cold-miss lease add */
    uint8_t guard;        /* enum op_guard: how herd guards this store of a win */
    uint64_t guard_cas;   /* OP_GUARD_WIN: the item's CAS at the win; LEASE: the lease's */
    bool no_wait;         /* its connection wrote the key since: never wait for a value */
    struct mg_slice ckey; /* the client's key (borrows the request's own copy) */
    int pool;             /* pool index it was routed to (hooks), -1 if none */
    int route;            /* the outermost route it goes through (pool index), -1 if none */
    uint8_t depth;        /* route levels chosen so far (lv[0..depth)), outermost first */
    uint8_t fx_pre;       /* bit per level: its copies and deletes before the send went out */
    uint8_t fx_post;      /* bit per level: its copies after the send (shadow) went out */
    int8_t warm;          /* the level of a warm-up route reading its warm pool, -1 if none */
    struct route_step lv[MG_ROUTE_DEPTH];
    struct shadow_read *shadow; /* a shadowed read: its outcome goes there (dispatch.c) */
    struct repl_write *repl;    /* a replicated write waiting for its replicas (dispatch.c) */
    struct resolution res;      /* the plug-in's resolution, valid below req->res_until */
    /* traced requests: its key as traced in the request's tkeys (len 0: not traced) */
    uint32_t tkey_off, tkey_len;
    /* the near cache (near.h): a get whose VA may fill it (its stripe's seq when sent,
     * the backend key in key), or a write that drops the key (hash near_h) once done */
    bool near_fill, near_inval;
    uint64_t near_h, near_seq;
    struct near_wfill *near_wf; /* a write whose value fills the near cache once STORED
                                 * (dispatch_near.c), or NULL */
    /* guard OP_GUARD_LEASE: its lease's check, sent right behind it (herd.c), owned by the
     * check's request; valid until this op's reply, which comes first */
    struct lease_check *lease_check;
};

/* The pieces of one get line taken MG_GET_CHUNK_KEYS keys at a time: the last piece's
 * trailer (END, or the error when every key of the line failed) needs all of them.
 * Shared by the pieces and, while the line is being read, its connection (refs). */
struct get_line {
    uint32_t refs;
    uint32_t open;          /* pieces before the last that have not completed */
    uint32_t nops, nfailed; /* of the completed pieces */
    struct request *last;   /* the last piece once dispatched; it waits for open == 0 */
    const char *err;
};

/* One client command. Owned by its client connection's FIFO; freed (to the worker's free
 * list) once its reply has been written, or when the client is gone and it completed. */
struct request {
    struct request *next; /* client FIFO / free list */
    struct worker *w;
    const struct config *cfg; /* generation it began under: kept alive until released */
    struct conn *c;           /* NULL for the gateway's own requests (request_internal) */
    enum mg_cmd cmd;
    ev_tstamp t0; /* a client's request: its loop's time when it was parsed */
    /* its (first) key's head, for the slow log: the client's buffer is gone by then */
    char key_head[64];
    uint32_t key_head_len, key_len;
    bool noreply;
    bool quiet;            /* meta q flag: hide the nominal reply */
    bool partial;          /* a piece of a long get line: no END, more pieces follow */
    struct get_line *line; /* the pieces of a long get line share it, else NULL */
    bool done;
    uint32_t flow; /* keys counted in its connection's in-flight window (conn.c) */
    uint32_t nops, pending, nfailed;
    struct op *ops; /* ops[0..nops) */
    uint32_t ops_cap;
    struct buf out;  /* trailer after the ops' parts (END, or the whole reply) */
    size_t outlen;   /* total reply bytes once done */
    const char *err; /* first failure (static string) */
    /* When the script has per-request functions, the request keeps its own copy of the
     * command (t's slices point into raw) so it can wait for Lua between keys. */
    struct mg_text_req t;
    struct buf raw;
    bool own_copy;
    /* t's slices still point where the client's command was (raw_from, gone once dispatch
     * returns): only the ops' keys were moved into raw; request_own_t moves the rest. */
    bool t_stale;
    const char *raw_from;
    uint32_t next_key, keypos; /* dispatch progress over the keys */
    bool parked;               /* dispatch waits for the plug-in to resolve a key */
    uint32_t res_until;        /* ops below it have their resolution (op->res) */
    bool res_nobatch;          /* a batch could not be made: key by key */
    struct buf rkeys;          /* backend keys (and error lines) the resolutions point into */
    /* The gateway's own requests: once complete, on_done(r) takes r (and releases it);
     * udata is its maker's (a Lua coroutine, a switch id). NULL: just released. */
    void (*on_done)(struct request *r);
    void *udata;
    struct request *explain_to; /* admin `route`: the reply that explains this request */
    /* The trace (trace.h): the session it was sampled under (0: not traced; the ops'
     * tkey_* are valid only then), what its lines say, and the traced keys as written. */
    uint32_t tr_session;
    const char *tr_op;
    double tr_when;
    int64_t tr_ttl;
    uint64_t tr_vsize; /* the value stored, or TRACE_VSIZE_REPLY: the reply's */
    struct buf tkeys;
    /* A binary client's request (its connection's bin is set): how its text reply becomes
     * binary (request_complete), and the CAS a store or incr answered (bin_cas). */
    struct mg_bin_ctx bin;
    uint64_t bin_cas;
    bool bin_hit; /* a get's hit was rendered as its binary packet already (out_value) */
};
#define TRACE_VSIZE_REPLY UINT64_MAX

/* Parse-side entry (dispatch.c): act on one parsed request from client c. t's slices
 * borrow raw[0..rawlen), c's read buffer; whatever is needed later is copied first. */
void request_dispatch(struct conn *c, const struct mg_text_req *t, const char *raw, size_t rawlen);
/* Go on dispatching r's keys after the plug-in resolved what it waited for. */
void dispatch_resume(struct request *r);
/* Admin `route CMD KEY`: answer on c what a command cmd for key would do (the route chain,
 * pool, server, backend key, staleness policy, each switch's decision), without doing it. */
void dispatch_explain(struct conn *c, enum mg_cmd cmd, struct mg_slice key);
/* The near cache's express lane (conn.c, text clients with nothing queued, config with the
 * near cache and no per-request plug-in or failover route): when p[0..n) starts with a
 * single-key `get KEY\r\n` or `gets KEY\r\n` that the near cache has, its reply goes
 * straight into c's express buffer (no request object) and *used is set: returns true.
 * Anything else returns false and is parsed and dispatched as usual. */
bool dispatch_near_express(struct conn *c, const char *p, size_t n, size_t *used);
/* A write whose value may fill the near cache (op->near_wf) was stored (rep: HD, with the
 * item's new CAS); op_finish then fills it, unless another write of its stripe came
 * between (dispatch_near_write_fill frees op->near_wf either way). */
void dispatch_near_stored(struct op *op, const struct mg_meta_reply *rep);
void dispatch_near_write_fill(struct op *op);
/* A get marked to fill the near cache got rep (a VA): store it if it may be (near.h). */
void dispatch_near_fill(struct op *op, const struct mg_meta_reply *rep);
/* A store was refused as too large: drop the key's old value, as memcached does (the
 * client's next read must not see a value it meant to overwrite). */
void request_drop_key(struct conn *c, const struct mg_text_req *t);
/* A reply that is not known yet: r holds c's place in the reply order until
 * request_reply_now(r, line) gives it. NULL when out of memory. */
struct request *request_reply_later(struct conn *c);
void request_reply_now(struct request *r, const char *line);
/* Queue an error/status line (without \r\n) as a reply of its own on c, in order. */
void request_reply_line(struct conn *c, const char *line);
/* The same as the answer to command cmd (counted under it). */
void request_reply_cmd(struct conn *c, enum mg_cmd cmd, const char *line);

/* Backend-side entries: the reply for op arrived (rep's slices borrow the backend's read
 * buffer), or op failed for reason why, answered with err (a full reply line like
 * "SERVER_ERROR backend timeout", static). */
void op_reply(struct op *op, const struct mg_meta_reply *rep);
void op_fail(struct op *op, enum op_fail why, const char *err);

/* The op is answered as a miss (herd: waiting ended without a value). */
void op_reply_miss(struct op *op);

/* A request of the gateway's own with n ops (no client; its replies are dropped).
 * The caller renders and pushes its ops, then calls request_internal_go. */
struct request *request_internal(struct worker *w, uint32_t n);
void request_internal_go(struct request *r);
/* One command of the gateway's own to backend b (herd's lease and lock release, Lua pool
 * calls, fleet switch reads): a request with one op and no client. Returns it with need
 * bytes (plus META_EXTRA) reserved in b->wbuf for the caller to render the command into
 * (meta_render.h), then request_one_send(r); once the reply (r->ops[0].out, verbatim) or
 * failure (r->ops[0].fail) is in, on_done(r) takes r, or (NULL) it is released. Returns
 * NULL, nothing sent, when b is down (*why OP_FAIL_DOWN) or out of memory. */
struct request *request_one(struct worker *w, struct backend *b, size_t need,
                            void (*on_done)(struct request *r), void *udata, enum op_fail *why);
void request_one_send(struct request *r);

/* A binary connection's requests: whether r's client speaks binary, and the CAS in rep
 * (ms/ma with c) kept for its reply. */
bool request_is_bin(const struct request *r);
void request_bin_cas(struct request *r, const struct mg_meta_reply *rep);

/* Shared by request.c and dispatch.c. */
struct request *request_get(struct worker *w);
int request_ops(struct request *r, uint32_t n);
void request_complete(struct request *r);
/* get, gets, gat, gats */
static inline bool is_retrieval(enum mg_cmd cmd)
{
    return cmd >= MG_CMD_GET && cmd <= MG_CMD_GATS;
}
void op_finish(struct op *op);
void put_line(struct buf *b, const char *s, size_t n);

/* A long get line's record: a new one (NULL when out of memory), and letting go of one. */
struct get_line *get_line_new(void);
void get_line_unref(struct get_line *l);
/* Attach piece r (partial: more follow; else the line's last) to line l. */
void get_line_add(struct get_line *l, struct request *r, bool partial);

/* Free a request (and its ops' buffers) back to the worker's free list. */
void request_release(struct request *r);
/* Free the worker's cached requests (at worker exit). */
void request_cache_drain(void *worker);

#endif
