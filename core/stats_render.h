/* stats_render.h: the `stats` command: counters of every worker, summed when read. */
#ifndef MG_STATS_RENDER_H
#define MG_STATS_RENDER_H

#include "buf.h"
#include "mg.h"

struct worker;

/* Render the answer to `stats <args>` into out (STAT lines and END, or an error line).
 * args is the text after "stats" (may be empty). Sums every worker's counters. Installed
 * as conn_server->stats (conn.h). */
void stats_render(struct worker *w, struct mg_slice args, struct buf *out);

#endif
