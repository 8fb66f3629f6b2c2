/* keys.c: built-in key transforms applied per request without calling Lua. */
#include "keys.h"

#include <stdio.h>
#include <string.h>

#include <libhashkit-1.0/hashkit.h>

#define MD5_HEX_LEN 32

/*
 * Where the formats come from (read, not copied):
 *
 * - newcache: ericflo/django-newcache newcache.py, key_func() (later get_key()):
 *   ''.join((FLAVOR, '-', CACHE_VERSION, '-', md5(smart_str(key)).hexdigest())),
 *   with FLAVOR = getattr(settings, 'FLAVOR', '') and CACHE_VERSION =
 *   str(getattr(settings, 'CACHE_VERSION', 1)). It has no key prefix. Its README
 *   gives the vector we test: FLAVOR 'staging', version 2, 'games' ->
 *   'staging-2-9cfa7aefcc61936b70aaec6729329eda'. (Some later copies of the
 *   module hash with sha_constructor, i.e. SHA-1; we follow the README and md5.)
 *
 * - django: django/django django/core/cache/backends/base.py, default_key_func()
 *   returns "%s:%s:%s" % (key_prefix, version, key); BaseCache.__init__ defaults
 *   KEY_PREFIX to "" and VERSION to 1; make_key() passes them through. Django does
 *   not hash. memcache_key_warnings() (used by validate_key(), which the memcached
 *   backends turn into InvalidCacheKey) refuses len > MEMCACHE_MAX_KEY_LENGTH (250)
 *   and any of [\x00-\x20\x7f]. We count bytes, which is what memcached limits.
 *
 * - hash_long: the common Django KEY_FUNCTION recipe, e.g. mkai/django-reuse
 *   reuse/utils/cache.py safe_cache_key(): build default_key_func()'s result and,
 *   when it is longer than MEMCACHE_MAX_KEY_LENGTH, use md5(result).hexdigest().
 *   We do the same, and also for bad bytes (Django would just refuse them).
 *   Hashing the whole result keeps the version inside the hash, so bumping the
 *   version still invalidates hashed keys.
 */

static const char hex_digits[] = "0123456789abcdef";

/* memcached's rule (and Django's memcached_error_chars_re): no byte <= ' ', no DEL. */
static inline bool key_byte_ok(unsigned char c)
{
    return c > ' ' && c != 127;
}

static bool bytes_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!key_byte_ok((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* Writes md5hex(in[0..len)) to out (32 bytes, no NUL). */
static void md5_hex(const char *in, size_t len, char *out)
{
    unsigned char d[16];

    libhashkit_md5_signature((const unsigned char *)in, len, d);
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex_digits[d[i] >> 4];
        out[2 * i + 1] = hex_digits[d[i] & 15];
    }
}

static void set_err(char *err, size_t errlen, const char *msg, const char *arg)
{
    if (err && errlen)
        snprintf(err, errlen, "mg.keys: %s%s%s", msg, arg ? " " : "", arg ? arg : "");
}

static bool has(const char *s)
{
    return s && *s;
}

/* Appends s to the head unless that would make it longer than limit. */
static bool head_add(struct key_style *ks, const char *s, size_t limit)
{
    size_t n = strlen(s);

    if (n > limit - ks->head_len)
        return false;
    memcpy(ks->head + ks->head_len, s, n);
    ks->head_len = (uint16_t)(ks->head_len + n);
    return true;
}

/* A part with a space or control byte would make every key invalid: refuse it
 * at config time rather than on every request. */
static bool part_ok(const char *s, const char *what, char *err, size_t errlen)
{
    if (s && !bytes_ok(s, strlen(s))) {
        set_err(err, errlen, what, "has a space or control character");
        return false;
    }
    return true;
}

int keys_style_init(struct key_style *ks, const char *style, const char *prefix,
                    const char *version, const char *flavor, bool hash_long, char *err,
                    size_t errlen)
{
    const char *parts[6];
    size_t nparts = 0, limit = MG_KEY_MAX - 1; /* leave room for a 1-byte key */

    memset(ks, 0, sizeof(*ks));
    ks->hash_long = hash_long;
    if (!has(style) || strcmp(style, "prefix") == 0) {
        ks->kind = KEY_STYLE_PREFIX;
    } else if (strcmp(style, "django") == 0) {
        ks->kind = KEY_STYLE_DJANGO;
    } else if (strcmp(style, "newcache") == 0) {
        ks->kind = KEY_STYLE_NEWCACHE;
    } else {
        set_err(err, errlen, "unknown style (newcache, django, prefix):", style);
        goto fail;
    }
    if (!part_ok(prefix, "prefix", err, errlen) || !part_ok(version, "version", err, errlen) ||
        !part_ok(flavor, "flavor", err, errlen))
        goto fail;

    switch (ks->kind) {
    case KEY_STYLE_NEWCACHE:
        if (has(prefix)) {
            set_err(err, errlen, "style newcache takes no prefix (newcache has none)", NULL);
            goto fail;
        }
        parts[nparts++] = flavor ? flavor : "";
        parts[nparts++] = "-";
        parts[nparts++] = version ? version : "1";
        parts[nparts++] = "-";
        limit = MG_KEY_MAX - MD5_HEX_LEN;
        break;
    case KEY_STYLE_DJANGO:
        if (has(flavor)) {
            set_err(err, errlen, "style django takes no flavor (use prefix)", NULL);
            goto fail;
        }
        parts[nparts++] = prefix ? prefix : "";
        parts[nparts++] = ":";
        parts[nparts++] = version ? version : "1";
        parts[nparts++] = ":";
        break;
    case KEY_STYLE_PREFIX:
        if (has(flavor)) {
            parts[nparts++] = flavor;
            parts[nparts++] = ":";
        }
        if (has(version)) {
            parts[nparts++] = version;
            parts[nparts++] = ":";
        }
        if (has(prefix))
            parts[nparts++] = prefix;
        break;
    }
    for (size_t i = 0; i < nparts; i++) {
        if (!head_add(ks, parts[i], limit)) {
            set_err(err, errlen, "prefix, version and flavor leave no room for the key", NULL);
            goto fail;
        }
    }
    ks->head[ks->head_len] = '\0';
    return MG_OK;

fail:
    memset(ks, 0, sizeof(*ks));
    return MG_ERR;
}

/* hash_long: md5hex of head + key. libhashkit's md5 is one-shot, so the two are
 * joined on the stack first. */
static int apply_hashed(const struct key_style *ks, const char *key, size_t len, char *out)
{
    char buf[MG_KEY_MAX + KEYS_IN_MAX];
    const char *src = key;

    if (ks->head_len) {
        memcpy(buf, ks->head, ks->head_len);
        memcpy(buf + ks->head_len, key, len);
        src = buf;
    }
    md5_hex(src, ks->head_len + len, out);
    out[MD5_HEX_LEN] = '\0';
    return MD5_HEX_LEN;
}

int keys_apply(const struct key_style *ks, const char *key, size_t len, char *out, size_t cap)
{
    return keys_apply_bytes(ks, key, len, false, out, cap);
}

int keys_apply_bytes(const struct key_style *ks, const char *key, size_t len, bool any_bytes,
                     char *out, size_t cap)
{
    size_t total = ks->head_len + len;

    if (MG_UNLIKELY(cap < MG_KEY_MAX + 1 || len > KEYS_IN_MAX))
        return -1;
    memcpy(out, ks->head, ks->head_len);
    if (ks->kind == KEY_STYLE_NEWCACHE) {
        /* init kept head_len <= MG_KEY_MAX - 32 */
        md5_hex(key, len, out + ks->head_len);
        out[ks->head_len + MD5_HEX_LEN] = '\0';
        return ks->head_len + MD5_HEX_LEN;
    }
    if (MG_UNLIKELY(total == 0))
        return -1;
    if (MG_LIKELY(total <= MG_KEY_MAX && (any_bytes || bytes_ok(key, len)))) {
        memcpy(out + ks->head_len, key, len);
        out[total] = '\0';
        return (int)total;
    }
    if (!ks->hash_long)
        return -1;
    return apply_hashed(ks, key, len, out);
}
