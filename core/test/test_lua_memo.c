/* test_lua_memo.c: the memo of resolutions alone: hits, commands, switch generations,
 * the size bound and least-recently-used eviction, long keys. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "lua_memo.h"

static int put(struct lua_memo *m, const char *k, int cmd, bool sw, uint64_t gen, int pool,
               const char *nk)
{
    struct memo_hit h = { pool, -1, nk, nk ? (uint32_t)strlen(nk) : 0 };
    return lua_memo_put(m, lua_memo_hash(k, strlen(k)), k, strlen(k), cmd, sw, gen, &h);
}

static bool get(struct lua_memo *m, const char *k, int cmd, uint64_t gen, struct memo_hit *h)
{
    return lua_memo_get(m, lua_memo_hash(k, strlen(k)), k, strlen(k), cmd, gen, h);
}

static void test_hit_and_miss(void)
{
    struct lua_memo *m = lua_memo_new(64);
    struct memo_hit h;
    CHECK_EQ_INT(lua_memo_capacity(m), 64);
    CHECK(!get(m, "a", 1, 0, &h));
    CHECK_EQ_INT(put(m, "a", LUA_MEMO_ANY_CMD, false, 0, 3, "app:a"), 0);
    CHECK(get(m, "a", 1, 0, &h));
    CHECK_EQ_INT(h.pool, 3);
    CHECK_EQ_INT(h.policy, -1);
    CHECK(h.key_len == 5 && memcmp(h.key, "app:a", 5) == 0);
    CHECK(get(m, "a", 7, 99, &h)); /* any command; no switch asked: any generation */
    CHECK(!get(m, "b", 1, 0, &h));
    CHECK(!get(m, "aa", 1, 0, &h));
    CHECK_EQ_INT(put(m, "b", LUA_MEMO_ANY_CMD, false, 0, 1, NULL), 0);
    CHECK(get(m, "b", 1, 0, &h));
    CHECK_EQ_INT(h.key_len, 0); /* the pool's key style */
    CHECK_EQ_INT(lua_memo_count(m), 2);
    CHECK_EQ_INT(put(m, "a", LUA_MEMO_ANY_CMD, false, 0, 4, "x"), 0); /* replaced in place */
    CHECK(get(m, "a", 1, 0, &h));
    CHECK(h.pool == 4 && h.key_len == 1 && h.key[0] == 'x');
    CHECK_EQ_INT(lua_memo_count(m), 2);
    lua_memo_free(m);
}

static void test_commands_and_switches(void)
{
    struct lua_memo *m = lua_memo_new(64);
    struct memo_hit h;
    put(m, "k", 1, false, 0, 1, NULL); /* read req.command: for command 1 only */
    CHECK(get(m, "k", 1, 0, &h));
    CHECK(!get(m, "k", 2, 0, &h));
    put(m, "k", 2, false, 0, 2, NULL);
    CHECK(get(m, "k", 1, 0, &h) && h.pool == 1);
    CHECK(get(m, "k", 2, 0, &h) && h.pool == 2);
    CHECK_EQ_INT(lua_memo_count(m), 2);
    put(m, "s", LUA_MEMO_ANY_CMD, true, 5, 1, NULL); /* asked a switch under generation 5 */
    CHECK(get(m, "s", 1, 5, &h));
    CHECK(!get(m, "s", 1, 6, &h)); /* a switch changed */
    put(m, "s", LUA_MEMO_ANY_CMD, true, 6, 2, NULL);
    CHECK(get(m, "s", 1, 6, &h) && h.pool == 2);
    CHECK_EQ_INT(lua_memo_count(m), 3);
    lua_memo_free(m);
}

static void test_bound_and_lru(void)
{
    struct lua_memo *m = lua_memo_new(64);
    struct memo_hit h;
    char k[32];
    int evicted = 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(k, sizeof(k), "key:%d", i);
        evicted += put(m, k, LUA_MEMO_ANY_CMD, false, 0, i % 7, k);
        CHECK(lua_memo_count(m) <= 64);
        CHECK(get(m, k, 1, 0, &h)); /* the newest is always there */
    }
    CHECK_EQ_INT(lua_memo_count(m), 64);
    CHECK_EQ_INT(evicted, 10000 - 64);
    int held = 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(k, sizeof(k), "key:%d", i);
        if (get(m, k, 1, 0, &h)) {
            held++;
            CHECK(h.pool == i % 7 && h.key_len == strlen(k) && memcmp(h.key, k, h.key_len) == 0);
        }
    }
    CHECK_EQ_INT(held, 64);
    lua_memo_free(m);

    /* one set of 4 (size 4 is rounded up to the smallest memo, one set): used keys stay */
    m = lua_memo_new(4);
    CHECK_EQ_INT(lua_memo_capacity(m), 4);
    put(m, "a", LUA_MEMO_ANY_CMD, false, 0, 1, NULL);
    put(m, "b", LUA_MEMO_ANY_CMD, false, 0, 1, NULL);
    put(m, "c", LUA_MEMO_ANY_CMD, false, 0, 1, NULL);
    put(m, "d", LUA_MEMO_ANY_CMD, false, 0, 1, NULL);
    CHECK(get(m, "a", 1, 0, &h)); /* a used: b is the least recently used */
    CHECK_EQ_INT(put(m, "e", LUA_MEMO_ANY_CMD, false, 0, 1, NULL), 1);
    CHECK(get(m, "a", 1, 0, &h));
    CHECK(!get(m, "b", 1, 0, &h));
    CHECK(get(m, "e", 1, 0, &h));
    lua_memo_free(m);
}

static void test_long_keys(void)
{
    struct lua_memo *m = lua_memo_new(64);
    struct memo_hit h;
    char *k = malloc(LUA_MEMO_KEY_MAX + 2);
    memset(k, 'x', LUA_MEMO_KEY_MAX + 1);
    k[LUA_MEMO_KEY_MAX + 1] = '\0';
    CHECK_EQ_INT(put(m, k, LUA_MEMO_ANY_CMD, false, 0, 1, NULL), -1); /* too long: not kept */
    k[LUA_MEMO_KEY_MAX] = '\0';
    CHECK_EQ_INT(put(m, k, LUA_MEMO_ANY_CMD, false, 0, 1, k), 0);
    CHECK(get(m, k, 1, 0, &h));
    CHECK(h.key_len == LUA_MEMO_KEY_MAX && memcmp(h.key, k, LUA_MEMO_KEY_MAX) == 0);
    k[100] = 'y'; /* same length, same start: compared to the last byte */
    CHECK(!get(m, k, 1, 0, &h));
    /* keys of every length up to 40 that differ in one byte only are told apart */
    for (size_t n = 1; n <= 40; n++)
        for (size_t at = 0; at < n; at++) {
            memset(k, 'a', n);
            k[n] = '\0';
            put(m, k, LUA_MEMO_ANY_CMD, false, 0, (int)n, NULL);
            k[at] = 'b'; /* only keys of a's were kept */
            CHECK(!get(m, k, 1, 0, &h));
        }
    free(k);
    lua_memo_free(m);
}

int main(void)
{
    RUN(test_hit_and_miss);
    RUN(test_commands_and_switches);
    RUN(test_bound_and_lru);
    RUN(test_long_keys);
    CTEST_END();
}
