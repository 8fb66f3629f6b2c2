/* auth.h: client authentication (memcached's -Y users file): SASL PLAIN for binary
 * clients, memcached's text auth (a set whose value is "user password") for text ones. */
#ifndef MG_AUTH_H
#define MG_AUTH_H

#include "mg.h"

/* Load the users file (user:password per line, as memcached's -Y) and make it the table
 * every later check uses (at start, and again at each reload: checks running meanwhile see
 * the old table or the new one, whole). Returns MG_OK, or MG_ERR with err and the table
 * loaded before (if any) left as it was. */
int auth_load(const char *path, char *err, size_t errlen);
/* True when a users file is loaded: every client must authenticate first. */
bool auth_required(void);
void auth_free(void);
/* Does user/password match an entry? Compared in constant time (for a given entry
 * count and password lengths); the password is never logged. */
bool auth_check(struct mg_slice user, struct mg_slice password);
/* SASL PLAIN's message ("[authzid]\0user\0password"): the user and password in it.
 * Returns false when it is not one. */
bool auth_plain_split(struct mg_slice msg, struct mg_slice *user, struct mg_slice *password);

#endif
