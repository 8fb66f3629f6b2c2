/* ketama.h: key -> server placement, delegated to libmemcached (the only file using it). */
#ifndef MG_KETAMA_H
#define MG_KETAMA_H

#include "mg.h"

struct ketama; /* opaque; immutable after creation, safe to read from many threads */

/* Build a ring for servers[0..n) given as "host:port" strings, in that order, exactly as
 * libmemcached with MEMCACHED_BEHAVIOR_KETAMA (pylibmc behaviors={"ketama": True}) would.
 * weights may be NULL (all equal). Returns NULL and fills err (errlen bytes) on failure.
 * The caller frees it with ketama_free. */
struct ketama *ketama_new(const char *const *servers, const uint32_t *weights, uint32_t n,
                          char *err, size_t errlen);

/* Index (0..n-1, in the order given to ketama_new) of the server for key. Thread-safe. */
uint32_t ketama_pick(const struct ketama *k, const char *key, size_t len);

void ketama_free(struct ketama *k);

#endif
