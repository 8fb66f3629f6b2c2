/* lua_memo.h: a worker's bounded memo of resolutions (route and key functions declared pure). */
#ifndef MG_LUA_MEMO_H
#define MG_LUA_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mg.h"

/* Sizes mg.memo accepts (entries per worker), and the longest key or backend key an entry
 * keeps (a longer one is not memoized). */
#define LUA_MEMO_MIN 64
#define LUA_MEMO_MAX (16u * 1024 * 1024)
#define LUA_MEMO_KEY_MAX MG_LINE_MAX
/* An entry's command when the functions never read req.command: valid for every one. */
#define LUA_MEMO_ANY_CMD 0xff

struct lua_memo;

/* What a hit gives back: what the functions answered. key points into the memo (valid
 * until the next lua_memo_put); key_len 0: the pool's key style applies. */
struct memo_hit {
    int pool, policy;
    const char *key;
    uint32_t key_len;
};

/* A memo of at most size entries (rounded down to a multiple of its 4-way sets), empty.
 * NULL when out of memory. Owned by the caller (lua_memo_free). */
struct lua_memo *lua_memo_new(uint32_t size);
void lua_memo_free(struct lua_memo *m);
/* The entries it holds, and at most. */
uint32_t lua_memo_count(const struct lua_memo *m);
uint32_t lua_memo_capacity(const struct lua_memo *m);

/* The hash lookups and stores use for key k (never 0). */
uint64_t lua_memo_hash(const char *k, size_t n);
/* The entry for key k (hash h) valid for command cmd: its command is cmd or any, and when
 * its functions asked a switch, it was computed under switch generation gen. Fills out and
 * returns true, or returns false. */
bool lua_memo_get(struct lua_memo *m, uint64_t h, const char *k, size_t n, int cmd, uint64_t gen,
                  struct memo_hit *out);
/* Keep a resolution of key k (hash h): cmd is the command it depends on or
 * LUA_MEMO_ANY_CMD; asked_switch with the switch generation gen read before the functions
 * ran. It replaces the entry lookups for cmd would find, else an empty one, else the least
 * recently used of its set. Returns 1 when that pushed a live entry out, 0 when not, -1
 * when it was not kept (a key too long, out of memory). */
int lua_memo_put(struct lua_memo *m, uint64_t h, const char *k, size_t n, int cmd,
                 bool asked_switch, uint64_t gen, const struct memo_hit *res);

#endif
