/* test_keys.c: built-in key transforms against upstream vectors and md5sum. */
#include "keys.h"

#include <string.h>

#include "ctest.h"

/* Expected md5 values below were computed with `printf '%s' ... | md5sum`. */

static char out[MG_KEY_MAX + 1];
static char err[200];

static struct key_style style(const char *st, const char *prefix, const char *version,
                              const char *flavor, bool hash_long)
{
    struct key_style ks;

    err[0] = '\0';
    CHECK_EQ_INT(keys_style_init(&ks, st, prefix, version, flavor, hash_long, err, sizeof(err)),
                 MG_OK);
    return ks;
}

/* Applies ks to the C string key and checks the result is want (NULL: refused). */
#define CHECK_KEY(ks, key, want) check_key(&(ks), (key), strlen(key), (want), __LINE__)

static void check_key(const struct key_style *ks, const char *key, size_t len, const char *want,
                      int line)
{
    int n;

    memset(out, 'Z', sizeof(out));
    n = keys_apply(ks, key, len, out, sizeof(out));
    if (!want) {
        if (n != -1) {
            fprintf(stderr, "  line %d: got '%.*s', expected refusal\n", line, n > 0 ? n : 0, out);
            ctest_cur_failed++;
        }
        return;
    }
    if (n != (int)strlen(want) || memcmp(out, want, strlen(want)) != 0 || out[n] != '\0') {
        fprintf(stderr, "  line %d: got %d '%.*s', expected '%s'\n", line, n, n > 0 ? n : 0, out,
                want);
        ctest_cur_failed++;
    }
}

static char *fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void test_newcache_readme_vector(void)
{
    struct key_style ks = style("newcache", NULL, "2", "staging", false);

    CHECK_KEY(ks, "games", "staging-2-9cfa7aefcc61936b70aaec6729329eda");
    CHECK_EQ_INT(ks.kind, KEY_STYLE_NEWCACHE);
}

static void test_newcache_defaults_and_empty(void)
{
    struct key_style ks = style("newcache", NULL, NULL, NULL, false);

    /* FLAVOR defaults to '', CACHE_VERSION to str(1) */
    CHECK_KEY(ks, "games", "-1-9cfa7aefcc61936b70aaec6729329eda");
    ks = style("newcache", "", "", "prod", false); /* str('') stays empty */
    CHECK_KEY(ks, "games", "prod--9cfa7aefcc61936b70aaec6729329eda");
}

static void test_newcache_hashes_anything(void)
{
    char big[301];
    struct key_style ks = style("newcache", NULL, "3", "prod", false);

    CHECK_KEY(ks, fill(big, 'a', 300), "prod-3-4e5475d125a33c6190718e75adc1b704");
    CHECK_KEY(ks, "games with space", "prod-3-eb6d80f9649a51825d5aa9533389c3fe");
    check_key(&ks, "weird key\001", 10, "prod-3-3970f0b4582ca7bc27512c317ed2536f", __LINE__);
    check_key(&ks, "", 0, "prod-3-d41d8cd98f00b204e9800998ecf8427e", __LINE__);
}

static void test_newcache_bad_config(void)
{
    struct key_style ks;
    char flavor[300];

    CHECK_EQ_INT(keys_style_init(&ks, "newcache", "app:", "2", "prod", false, err, sizeof(err)),
                 MG_ERR);
    CHECK(strstr(err, "prefix") != NULL);
    /* 217 + "-1-" + 32 = 252 > 250 */
    CHECK_EQ_INT(keys_style_init(&ks, "newcache", NULL, NULL, fill(flavor, 'f', 217), false, err,
                                 sizeof(err)),
                 MG_ERR);
    /* 215 + "-1-" + 32 = 250: fits exactly */
    ks = style("newcache", NULL, NULL, fill(flavor, 'f', 215), false);
    CHECK_EQ_INT(keys_apply(&ks, "games", 5, out, sizeof(out)), 250);
}

static void test_django_default_key_func(void)
{
    struct key_style ks = style("django", NULL, NULL, NULL, false);

    CHECK_KEY(ks, "games", ":1:games");
    ks = style("django", "site", "3", NULL, false);
    CHECK_KEY(ks, "games", "site:3:games");
    ks = style("django", "site", "", NULL, false); /* "%s" of '' */
    CHECK_KEY(ks, "games", "site::games");
    ks = style("django", "", "v2", NULL, false);
    CHECK_KEY(ks, "games", ":v2:games");
    CHECK_EQ_INT(ks.kind, KEY_STYLE_DJANGO);
}

static void test_django_boundary(void)
{
    char k[400];
    struct key_style off = style("django", NULL, NULL, NULL, false);
    struct key_style on = style("django", NULL, NULL, NULL, true);

    /* ":1:" + 247 = 250 bytes: passes through unhashed either way */
    fill(k, 'a', 247);
    CHECK_EQ_INT(keys_apply(&off, k, 247, out, sizeof(out)), 250);
    CHECK(memcmp(out, ":1:aaa", 6) == 0 && out[249] == 'a' && out[250] == '\0');
    CHECK_EQ_INT(keys_apply(&on, k, 247, out, sizeof(out)), 250);
    /* 251 bytes: refused, or md5 of the whole ":1:" + 248 a */
    CHECK_KEY(off, fill(k, 'a', 248), NULL);
    CHECK_KEY(on, fill(k, 'a', 248), "ace6b336cc4220a780bc32c7973b8edf");
    CHECK_KEY(off, fill(k, 'a', 300), NULL);
    CHECK_KEY(on, fill(k, 'a', 300), "59f1d4110a3907f5f62df33eab897bc3");
}

static void test_django_bad_bytes(void)
{
    struct key_style off = style("django", NULL, NULL, NULL, false);
    struct key_style on = style("django", NULL, NULL, NULL, true);
    struct key_style site = style("django", "site", "3", NULL, true);

    CHECK_KEY(off, "hello world", NULL);
    CHECK_KEY(on, "hello world", "c8c4298cdc908b0e70673a8b56f205e3");
    CHECK_KEY(site, "hello world", "8f6cbabca46776d801e5ae7a8735e588");
    CHECK_KEY(off, "tab\there", NULL);
    CHECK_KEY(on, "tab\there", "a1c7b5d062519a81531f5269039267ca");
    CHECK_KEY(on, "del\x7f", "99c41d68cf959a93c60e316a4c26d7bf");
    CHECK_KEY(on, "nl\nx", "4eda815acf43114b92875d5330410b02");
    check_key(&off, "nul\0x", 5, NULL, __LINE__);
    /* bytes >= 0x80 (UTF-8) are fine for memcached and Django alike */
    CHECK_KEY(off, "caf\xc3\xa9", ":1:caf\xc3\xa9");
}

static void test_django_bad_config(void)
{
    struct key_style ks;

    CHECK_EQ_INT(keys_style_init(&ks, "django", NULL, "1", "prod", false, err, sizeof(err)),
                 MG_ERR);
    CHECK(strstr(err, "flavor") != NULL);
    CHECK_EQ_INT(keys_style_init(&ks, "django", "my site", NULL, NULL, false, err, sizeof(err)),
                 MG_ERR);
    CHECK(strstr(err, "prefix") != NULL);
    CHECK_EQ_INT(keys_style_init(&ks, "django", NULL, "1\n", NULL, false, err, sizeof(err)),
                 MG_ERR);
    CHECK(strstr(err, "version") != NULL);
}

static void test_prefix_formats(void)
{
    struct key_style ks = style(NULL, NULL, NULL, NULL, false);

    CHECK_KEY(ks, "games", "games");
    CHECK_EQ_INT(ks.kind, KEY_STYLE_PREFIX);
    ks = style("prefix", "app:", NULL, NULL, false);
    CHECK_KEY(ks, "games", "app:games");
    ks = style("", "app:", "3", "prod", false);
    CHECK_KEY(ks, "games", "prod:3:app:games");
    ks = style("prefix", NULL, "3", NULL, false);
    CHECK_KEY(ks, "games", "3:games");
    ks = style("prefix", NULL, NULL, "prod", false);
    CHECK_KEY(ks, "games", "prod:games");
    ks = style("prefix", "", "", "", false);
    CHECK_KEY(ks, "games", "games");
}

static void test_prefix_boundary_and_hash(void)
{
    char k[400];
    struct key_style off = style(NULL, NULL, NULL, NULL, false);
    struct key_style on = style(NULL, NULL, NULL, NULL, true);
    struct key_style full = style("prefix", "app:", "3", "prod", true);

    CHECK_EQ_INT(keys_apply(&off, fill(k, 'a', 250), 250, out, sizeof(out)), 250);
    CHECK_KEY(off, fill(k, 'a', 251), NULL);
    CHECK_KEY(on, fill(k, 'a', 251), "21f5b107cda33036590a19419afd7fb6");
    CHECK_KEY(on, fill(k, 'a', 300), "4e5475d125a33c6190718e75adc1b704");
    CHECK_KEY(on, "games with space", "eb6d80f9649a51825d5aa9533389c3fe");
    /* "prod:3:app:" is 11 bytes: 239 + 11 = 250 passes, 246 + 11 is hashed whole */
    CHECK_EQ_INT(keys_apply(&full, fill(k, 'a', 239), 239, out, sizeof(out)), 250);
    CHECK_KEY(full, fill(k, 'a', 246), "73bfbb8378e9bb2cfcab1dc5151943ba");
    /* an empty result is not a key */
    check_key(&on, "", 0, NULL, __LINE__);
    check_key(&full, "", 0, "prod:3:app:", __LINE__);
}

static void test_prefix_bad_config(void)
{
    struct key_style ks;
    char p[300];

    CHECK_EQ_INT(keys_style_init(&ks, "memcache", NULL, NULL, NULL, false, err, sizeof(err)),
                 MG_ERR);
    CHECK(strstr(err, "unknown style") != NULL);
    CHECK_EQ_INT(keys_style_init(&ks, NULL, fill(p, 'p', 250), NULL, NULL, false, err, sizeof(err)),
                 MG_ERR);
    CHECK(strstr(err, "no room") != NULL);
    ks = style(NULL, fill(p, 'p', 249), NULL, NULL, false);
    CHECK_EQ_INT(keys_apply(&ks, "k", 1, out, sizeof(out)), 250);
    CHECK_EQ_INT(keys_apply(&ks, "kk", 2, out, sizeof(out)), -1);
    /* a NULL error buffer is allowed */
    CHECK_EQ_INT(keys_style_init(&ks, "nope", NULL, NULL, NULL, false, NULL, 0), MG_ERR);
}

static void test_limits(void)
{
    static char big[KEYS_IN_MAX + 2];
    char small[MG_KEY_MAX];
    struct key_style on = style("django", NULL, NULL, NULL, true);

    /* ":1:" + 2048 b: the longest key that can be hashed */
    memset(big, 'b', KEYS_IN_MAX + 1);
    check_key(&on, big, KEYS_IN_MAX, "0b6761aad920d7d797c250a6fa3352ca", __LINE__);
    CHECK_EQ_INT(keys_apply(&on, big, KEYS_IN_MAX + 1, out, sizeof(out)), -1);
    CHECK_EQ_INT(keys_apply(&on, "games", 5, small, sizeof(small)), -1);
}

int main(void)
{
    RUN(test_newcache_readme_vector);
    RUN(test_newcache_defaults_and_empty);
    RUN(test_newcache_hashes_anything);
    RUN(test_newcache_bad_config);
    RUN(test_django_default_key_func);
    RUN(test_django_boundary);
    RUN(test_django_bad_bytes);
    RUN(test_django_bad_config);
    RUN(test_prefix_formats);
    RUN(test_prefix_boundary_and_hash);
    RUN(test_prefix_bad_config);
    RUN(test_limits);
    CTEST_END();
}
