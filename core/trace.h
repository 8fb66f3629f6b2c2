/* trace.h: the request trace: one line per key operation, sampled by key, written to a file
 * by a writer thread from bounded per-worker buffers (format: the top of trace.c). */
#ifndef MG_TRACE_H
#define MG_TRACE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mg.h"
#include "proto_meta.h"
#include "proto_text.h"

#define TRACE_PATH_MAX 512
#define TRACE_MAX_SIZE_DEFAULT (64ull * 1024 * 1024)
#define TRACE_WBUF_SIZE \
    (1024 * 1024)            /* each worker's buffer; a line that does not fit is dropped */
#define TRACE_KEY_MAX 1024   /* longer keys (long-key styles) are not traced */
#define TRACE_LINE_EXTRA 128 /* a line's bytes besides its key, at most */

/* A trace as configured (mg.trace) or asked for (admin `trace start`). A plain value. */
struct trace_opts {
    char path[TRACE_PATH_MAX];
    double sample;     /* 0..1: the share of keys traced (by key hash) */
    bool hash_keys;    /* keys written as '#' and 16 hex digits of their hash */
    uint64_t max_size; /* the file's bytes at most; reaching it stops the trace */
    bool given;        /* mg.trace was called (settings only) */
};

/* The gate the engine reads per keyed request (relaxed): the running trace's session
 * number, 0 while no trace runs. A request remembers the session it began under and hands
 * its lines to that session only. */
extern atomic_uint_fast32_t trace_session;

/* The per-worker buffers for nworkers workers (main, before the workers start). Returns
 * MG_OK or MG_ERR (out of memory). */
int trace_init(int nworkers);
/* Start a trace with o (a running one is stopped first): the file is created (truncated),
 * its header written and the writer thread started. Any thread. Returns MG_OK, or MG_ERR
 * with err filled (the file cannot be opened, out of memory). */
int trace_start(const struct trace_opts *o, char *err, size_t errlen);
/* Stop the running trace, if any: the writer drains every buffer, closes the file and is
 * joined (the caller waits for that write, at most a buffer per worker). */
void trace_stop(void);
/* A config's mg.trace (o->given false: none), at startup and at each reload: a change
 * starts the trace anew or stops it; the same settings leave a running trace alone.
 * Returns MG_OK or MG_ERR with err filled. */
int trace_apply(const struct trace_opts *o, char *err, size_t errlen);
/* The config's options, the base of an admin `trace start` (hash_keys, max_size). */
struct trace_opts trace_config_opts(void);

/* Is the key (as the client gave it) traced under the current sample rate? */
bool trace_sampled(const char *key, size_t len);
/* The key as the trace writes it into dst (TRACE_KEY_MAX + 1 bytes at least): the key, or
 * with hash_keys '#' and 16 hex digits of trace_hash mixed once more (a traced key's
 * trace_hash is below the sampling threshold: its top digits would be alike). Returns the
 * bytes written, 0 when the key is too long. */
size_t trace_key(char *dst, const char *key, size_t len);
/* 64-bit FNV-1a of the bytes, finished with murmur3's fmix64 (sampling and hash_keys). */
uint64_t trace_hash(const char *key, size_t len);

/* The classic name a command is traced under (meta ones by their mode flag, in args), or
 * NULL for one that is not traced. */
const char *trace_op_name(enum mg_cmd cmd, struct mg_slice args);
/* A meta command's T flag (its TTL) from its flags, 0 when absent. */
int64_t trace_meta_ttl(struct mg_slice args);
/* The outcome word for a backend status under command cmd (MG_R_NONE: failed). */
const char *trace_outcome(enum mg_cmd cmd, enum mg_rstatus s);

/* One record's fields. */
struct trace_rec {
    double when; /* unix time */
    const char *op, *outcome;
    const char *key; /* as trace_key wrote it */
    size_t klen;
    uint64_t vsize;
    int64_t ttl;
};
/* Append r as one line to b. r->key may point into b when the caller reserved r->klen +
 * TRACE_LINE_EXTRA bytes first (nothing moves then). Returns MG_OK or MG_ERR. */
int trace_line(struct buf *b, const struct trace_rec *r);
/* Hand nlines whole lines (len bytes) of session to worker wid's buffer; they are dropped
 * (counted) when it is full, and silently when session is no longer running. */
void trace_put(int wid, uint32_t session, const char *lines, size_t len, uint32_t nlines);

/* `stats trace`: the trace's state and counters as STAT lines (no END). */
void trace_render(struct buf *out);
/* Stop the trace and free the buffers (main, after the workers stopped). */
void trace_free(void);

#endif
