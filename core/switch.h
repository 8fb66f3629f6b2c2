/* switch.h: feature switches shared by every worker: a share of keys goes the other way. */
#ifndef MG_SWITCH_H
#define MG_SWITCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* The registered switches (switch_n of them): switch.c writes them, switch_on reads. */
extern struct mg_switch switch_table[MG_MAX_SWITCHES];
extern atomic_int switch_n;
/* Bumped (after the new value is stored) each time a switch's value changes: whoever kept
 * an answer computed from switches under an older generation must compute it again (the
 * Lua layer's memo of resolutions). */
extern atomic_uint_fast64_t switch_gen;

static inline uint64_t switch_generation(void)
{
    return atomic_load_explicit(&switch_gen, memory_order_acquire);
}

/* FNV-1a, then a final mix so neighbouring keys ("user:1", "user:2") spread evenly. The
 * values are a contract: gateways of a fleet must agree (core/test/test_switch.c pins
 * them). */
static inline uint32_t switch_hash(const char *k, size_t n)
{
    uint32_t h = 2166136261u;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) { /* unrolled: the same values, fewer loop instructions */
        h = (h ^ (uint8_t)k[i]) * 16777619u;
        h = (h ^ (uint8_t)k[i + 1]) * 16777619u;
        h = (h ^ (uint8_t)k[i + 2]) * 16777619u;
        h = (h ^ (uint8_t)k[i + 3]) * 16777619u;
    }
    for (; i < n; i++)
        h = (h ^ (uint8_t)k[i]) * 16777619u;
    h ^= h >> 16;
    h *= 0x7feb352dU;
    h ^= h >> 15;
    h *= 0x846ca68bU;
    h ^= h >> 16;
    return h;
}

/* Is key on? Deterministic by a hash of the key; counts both sides. Inline: the shadow
 * route asks it for every request. */
static inline bool switch_on(int id, const char *key, size_t len)
{
    if (id < 0 || id >= atomic_load_explicit(&switch_n, memory_order_acquire))
        return false;
    struct mg_switch *s = &switch_table[id];
    unsigned share = atomic_load_explicit(&s->share, memory_order_relaxed);
    bool on = share >= SWITCH_SCALE || (share > 0 && switch_hash(key, len) % SWITCH_SCALE < share);
    atomic_fetch_add_explicit(on ? &s->on : &s->off, 1, memory_order_relaxed);
    return on;
}
/* Is key on, without counting it (admin `route`: what would happen)? */
static inline bool switch_peek(int id, const char *key, size_t len)
{
    if (id < 0 || id >= atomic_load_explicit(&switch_n, memory_order_acquire))
        return false;
    unsigned share = atomic_load_explicit(&switch_table[id].share, memory_order_relaxed);
    return share >= SWITCH_SCALE || (share > 0 && switch_hash(key, len) % SWITCH_SCALE < share);
}

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
