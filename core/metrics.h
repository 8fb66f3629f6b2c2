/* metrics.h: Prometheus metrics (text format 0.0.4) over HTTP on the main thread's loop,
 * and the observability settings (slow log, hot keys) applied from settings. */
#ifndef MG_METRICS_H
#define MG_METRICS_H

#include <ev.h>
#include <stdatomic.h>

#include "buf.h"
#include "config.h"

/* Config reloads, by outcome (mintgate_config_reloads_total). */
extern atomic_uint_fast64_t metrics_reloads_ok, metrics_reloads_failed;

/* Every metric, summed over the workers, into out. Any thread; takes the workers' config
 * lock while it reads their per-config counters (workers take it only to reload). */
void metrics_render(struct buf *out);

/* Serve GET /metrics on listening socket fd from loop (the main thread's). */
int metrics_http_start(struct ev_loop *loop, int fd, char *err, size_t errlen);
void metrics_http_stop(struct ev_loop *loop);

/* The hottest keys over every worker (at most max, at most hot_top): *rate_scale turns an
 * entry's count into requests per second. Any thread. */
struct hotkey_entry;
uint32_t metrics_hotkeys(struct hotkey_entry *out, uint32_t max, double *rate_scale);
/* A key as printable ASCII (the rest, space and backslash as \xNN) into dst. */
void hotkey_escape(char *dst, size_t dlen, const char *s, size_t n);

/* The slow log's, the hot-key detector's and the trace's settings from s (at start and each
 * reload: a changed mg.trace starts the trace anew or stops it).
 * Returns MG_OK or MG_ERR with err filled. */
int observe_apply(const struct settings *s, char *err, size_t errlen);

#endif
