/* slowlog.h: the slow log (requests over a threshold, in a bounded ring shared by the
 * workers) and the sampled request log (every Nth request to the log), both changeable at
 * run time from the admin port. */
#ifndef MG_SLOWLOG_H
#define MG_SLOWLOG_H

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"

#define SLOWLOG_KEY_MAX 64 /* key bytes kept per entry (its full length is kept too) */
#define SLOWLOG_DEFAULT_MS 100
#define SLOWLOG_DEFAULT_SIZE 128
#define SLOWLOG_SIZE_MAX 100000

/* Requests that took at least this many microseconds go into the slow log (UINT64_MAX:
 * off). Read by every worker per request (relaxed); written by settings and the admin. */
extern atomic_uint_fast64_t slowlog_threshold_us;
/* Every Nth client request is logged (0: off): `requestlog N` on the admin port. */
extern atomic_uint_fast32_t requestlog_every;
/* The one value a request's duration is compared with: the threshold, or 0 while the
 * request log is on (every request is looked at then). */
extern atomic_uint_fast64_t slowlog_gate_us;
void requestlog_set(uint32_t every);

/* One slow request, as the engine saw it when its reply was ready. */
struct slow_entry {
    double when; /* wall clock, seconds */
    uint64_t us; /* client-observed duration */
    const char *cmd;
    char key[SLOWLOG_KEY_MAX];
    uint32_t klen, key_len; /* bytes kept, the key's full length */
    char pool[64], server[64], client[64], outcome[64];
};

/* Threshold (ms) and ring size (entries, 1..SLOWLOG_SIZE_MAX); the ring is emptied when its
 * size changes. Returns MG_OK or MG_ERR (out of memory: the old ring stays). */
int slowlog_configure(double threshold_ms, uint32_t size);
void slowlog_push(const struct slow_entry *e);
/* The ring's size (entries). */
uint32_t slowlog_size(void);
/* `stats slowlog`: the threshold, totals and one STAT line per entry, newest first. */
void slowlog_render(struct buf *out);
void slowlog_reset(void);
uint64_t slowlog_total(void);
/* e's fields as one log line (the sampled request log). */
void slowlog_line(const struct slow_entry *e, char *line, size_t len);
void slowlog_free(void);

#endif
