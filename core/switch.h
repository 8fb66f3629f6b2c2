/* switch.h: feature switches shared by every worker: a share of keys goes the other way. */
#ifndef MG_SWITCH_H
#define MG_SWITCH_H

#include <stdatomic.h>

#include "buf.h"

#define MG_MAX_SWITCHES 64
#define SWITCH_SCALE 100000u /* percent with 0.001 resolution */

/* One switch. Registered once (by name) and never freed; its value is an atomic so a
 * change reaches every worker at once, with no lock on the hot path. */
struct mg_switch {
    char name[64];
    atomic_uint share; /* 0..SWITCH_SCALE */
    atomic_uint_fast64_t on, off;
    char fleet_pool[64]; /* follow a value kept in this pool ("" = no); under reg_lock: */
    char fleet_key[251]; /* read them through switch_fleet */
};

/* Register (or find) a switch. A new one starts at percent; an existing one keeps its
 * current value (so a reload does not undo a runtime change). Returns its id or -1. */
int switch_register(const char *name, double percent, const char *fleet_pool,
                    const char *fleet_key);
/* Is key on? Deterministic by a hash of the key; counts both sides. */
bool switch_on(int id, const char *key, size_t len);
/* The same for LuaJIT's FFI (exported from the binary; lua/mintgate/init.lua binds it):
 * a JIT-compiled route function calls it without leaving the trace. */
int mg_switch_on(int id, const char *key, size_t len);

/* Set by name. Returns MG_OK, or MG_ERR for an unknown name or a bad percent. */
int switch_set(const char *name, double percent);
/* A percent as an operator writes it: a plain decimal number from 0 to 100, digits with
 * an optional fraction ("12.5"); no sign, exponent, hex, nan/inf, spaces or anything
 * after it. s need not be NUL-terminated. Returns MG_OK (*out set) or MG_ERR. */
int switch_parse_percent(const char *s, size_t len, double *out);
int switch_count(void);
struct mg_switch *switch_get(int id);
/* Copy switch id's fleet source (pool name and key; a reload may rewrite them while a
 * worker polls). Returns false when it follows none. */
bool switch_fleet(int id, char pool[64], char key[251]);
/* `stats switches`: percent, on and off counts of each switch. */
void switch_render(struct buf *out);

#endif
