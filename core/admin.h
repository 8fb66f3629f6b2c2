/* admin.h: admin commands (switch changes, reload) on admin listeners. */
#ifndef MG_ADMIN_H
#define MG_ADMIN_H

#include "mg.h"

struct conn;

/* If line (a command the parser did not know) is an admin command, answer it on c and
 * return true: on an admin listener it runs, elsewhere it is refused. False otherwise. */
bool admin_command(struct conn *c, struct mg_slice line);

struct worker;
/* Answer every `reload` of w still waiting for the workers (at worker exit). */
void admin_worker_destroy(struct worker *w);

#endif
