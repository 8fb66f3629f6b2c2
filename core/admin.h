/* admin.h: admin commands (switch changes, reload, auth) on admin listeners. */
#ifndef MG_ADMIN_H
#define MG_ADMIN_H

#include "mg.h"

struct conn;

/* If line (a command the parser did not know) is an admin command, answer it on c and
 * return true: on an admin listener (or a data port with admin_on_data_port) it runs once
 * the connection has authenticated, if a secret is set; elsewhere it is refused. Words
 * are parsed strictly (single spaces, exact counts). False when it is no admin command. */
bool admin_command(struct conn *c, struct mg_slice line);

/* Read the admin secret from the file at path: its content without one trailing newline,
 * one word of printable ASCII of at most 256 bytes. From then on every admin connection
 * must send `auth <secret>` before an admin command. Main thread, before the workers
 * start. Returns MG_OK, or MG_ERR with err filled. Warns when others may read the file. */
int admin_secret_load(const char *path, char *err, size_t errlen);
bool admin_has_secret(void);
/* Wipe and free the secret (at exit). */
void admin_secret_free(void);

struct worker;
/* Answer every `reload` of w still waiting for the workers (at worker exit). */
void admin_worker_destroy(struct worker *w);

#endif
