/* conn.h: a client connection: reads and parses requests, writes replies in order. */
#ifndef MG_CONN_H
#define MG_CONN_H

#include <ev.h>

#include "buf.h"
#include "mg.h"

struct worker;
struct request;
struct get_line;
struct mg_bin_ctx;

/* TEXT_AUTH: a text client that has yet to authenticate (auth.h); TEXT once it has. */
enum { CONN_PROTO_UNKNOWN = 0, CONN_PROTO_TEXT, CONN_PROTO_BIN, CONN_PROTO_TEXT_AUTH };

/* Owned by its worker (worker->conns list). Freed only from the worker's prepare step once
 * it is closing and none of its requests still waits on a backend. */
struct conn {
    struct worker *w;
    struct conn *prev, *next; /* worker->conns */
    struct conn *next_dirty;
    int fd;
    ev_io rio, wio;
    struct buf rbuf;
    struct request *head, *tail; /* FIFO of requests, in arrival order */
    uint32_t nreq;               /* in the FIFO */
    size_t ready_bytes;          /* reply bytes of done requests (and xout) not yet written */
    size_t wpos;                 /* bytes of head's reply already written */
    struct buf xout;             /* replies of the near cache's express lane, all of them
                                  * before any request queued (only added to while the queue
                                  * is empty); written first; len 0 once all is written */
    uint64_t swallow;            /* data bytes still to drop (value too large) */
    uint32_t inflight_keys;      /* keys of its requests not answered yet */
    uint32_t near_writes;        /* its writes in flight that drop a near cache key once done
                                  * (dispatch_near.c): until then its gets skip the near
                                  * cache, as memcached would answer them after the write */
    uint8_t key_log2;            /* reply bytes per key, as a power of two (flow window) */
    uint8_t key_small;           /* replies in a row below it: it shrinks after a few */
    uint32_t window;             /* keys it may have in flight, from key_log2 (conn.c) */
    bool skip_line;              /* drop bytes through the next '\n' (a refused long get) */
    struct get_line *line;       /* the long get line being read (a reference), or NULL */
    bool dirty;
    bool paused;                      /* not reading: too much queued (backpressure) */
    bool closing;                     /* fd closed or to close; no more reads */
    bool close_after_flush;           /* quit, or a fatal protocol error */
    uint8_t proto;                    /* CONN_PROTO_*: known from the first byte (conn.c) */
    bool bin;                         /* speaks memcached's binary protocol (proto_bin.h) */
    bool authed;                      /* a binary client that authenticated (SASL PLAIN, auth.h) */
    char *user;                       /* the user it authenticated as (either protocol), or
                                       * NULL; owned by the conn (req.user in Lua) */
    const struct mg_bin_ctx *bin_cur; /* while a binary request is dispatched: its context,
                                       * copied by each request it makes (dispatch.c) */
    bool admin;                       /* came in on an admin listener */
    bool admin_authed;                /* sent the admin secret (admin.c) */
    bool trusted;                     /* may use the gateway's own keys: an admin connection that
                                       * needs no secret or sent it (worker.c, admin.c) */
    uint8_t auth_failures;            /* bad secrets sent so far (admin.c) */
    uint64_t serial;                  /* unique per worker: tells connections apart */
    char peer[64];
};

/* What the server layer installs before the workers start (main.c): the net and engine
 * layers reach server code only through these. NULL, or a NULL entry: none. */
struct server_calls {
    /* A command the parser did not know (line: its text): answer it on c and return
     * true (admin commands), or return false (it is answered as an error). */
    bool (*command)(struct conn *c, struct mg_slice line);
    /* The answer to `stats <args>` asked on worker w: STAT lines and END into out. */
    void (*stats)(struct worker *w, struct mg_slice args, struct buf *out);
};
extern const struct server_calls *conn_server;

/* Take an accepted socket. Returns NULL (and closes fd) when out of memory. */
struct conn *conn_new(struct worker *w, int fd);
/* Append request r to c's FIFO (its reply goes out after those before it). */
void conn_enqueue(struct conn *c, struct request *r);
/* r is complete: its reply may go out once those before it went. */
void conn_request_done(struct conn *c, struct request *r);
/* Write what can be written; resume reading when drained; free a finished closing conn.
 * Called from the worker's prepare step only. */
void conn_flush(struct conn *c);
/* Close c now (errors, shutdown); it is freed once its requests completed. */
void conn_close(struct conn *c);

#endif
