/* memstats.h: memcached's own stats of the backends (items, bytes, slabs), fetched in the
 * background by worker 0 and summed for the gateway's `stats` family. */
#ifndef MG_MEMSTATS_H
#define MG_MEMSTATS_H

#include "buf.h"

struct worker;

/* What a client asked for: the backends' lines of plain `stats`, or `stats items`,
 * `stats slabs`, `stats sizes`. */
enum memstats_kind { MEMSTATS_GENERAL = 0, MEMSTATS_ITEMS, MEMSTATS_SLABS, MEMSTATS_SIZES };

/* Worker 0's housekeeping, about once a second (other workers return at once): ask every
 * server of w's config that is not ejected for its stats, on a connection of the poller's
 * own, without waiting. Each server's answer replaces its cached numbers when it is
 * complete; a failed or refused fetch drops them. */
void memstats_poll(struct worker *w);

/* Append kind's STAT lines (no END), summed over the servers whose last fetch worked, to
 * out. Any thread; never waits on a backend, only on a short lock. */
void memstats_render(struct buf *out, enum memstats_kind kind);

#endif
