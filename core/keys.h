/* keys.h: built-in key transforms (newcache, Django, prefix) compiled from mg.keys. */
#ifndef MG_KEYS_H
#define MG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mg.h"

/*
 * Backend key formats ("+" is concatenation, md5hex is 32 lowercase hex digits):
 *
 *   newcache  flavor + "-" + version + "-" + md5hex(key)
 *             flavor absent: "", version absent: "1"; an empty string stays empty
 *             ("-1-<md5>", "prod--<md5>"), as newcache does. No prefix.
 *   django    prefix + ":" + version + ":" + key
 *             prefix absent: "", version absent: "1" (":1:games"). No flavor.
 *   prefix    [flavor + ":"] [version + ":"] prefix + key
 *   (or none) each part left out when absent or empty; nothing set means the
 *             key passes through unchanged.
 *
 * With hash_long, a django/prefix result longer than MG_KEY_MAX bytes or holding
 * a byte <= 0x20 or 0x7f is replaced by md5hex(whole result). Without it such a
 * key is refused (the caller answers CLIENT_ERROR). newcache always hashes, so
 * hash_long changes nothing there.
 */

/* Longest input key that can still be hashed (hashing needs head + key in one
 * stack buffer); longer keys are refused. Any key of a command line fits. */
#define KEYS_IN_MAX MG_LINE_MAX

enum key_style_kind {
    KEY_STYLE_PREFIX = 0,
    KEY_STYLE_DJANGO,
    KEY_STYLE_NEWCACHE,
};

/* Filled once by keys_style_init and never written again, so worker threads read
 * it without locks. Owned by whoever embeds it (the compiled config); holds no
 * pointers, so it may be copied. */
struct key_style {
    enum key_style_kind kind;
    bool hash_long;
    uint16_t head_len;
    char head[MG_KEY_MAX + 1]; /* everything written before the key, NUL-ended */
};

/* Validates the mg.keys fields and precomputes the fixed part of every key.
 * style is NULL, "", "prefix", "django" or "newcache"; prefix, version and
 * flavor may be NULL (absent). version is a string even when Lua gave a number.
 * Returns MG_OK, or MG_ERR with a message in err (which may be NULL). */
int keys_style_init(struct key_style *ks, const char *style, const char *prefix,
                    const char *version, const char *flavor, bool hash_long, char *err,
                    size_t errlen);

/* Writes the backend key for key[0..len) into out, NUL-terminated; out must not
 * overlap key and cap must be >= MG_KEY_MAX + 1. Returns the key's length
 * (1..MG_KEY_MAX), or -1 when there is no valid key: too long or bad bytes
 * without hash_long, an empty result, len > KEYS_IN_MAX, or cap too small.
 * Allocates nothing; safe to call from any thread. */
int keys_apply(const struct key_style *ks, const char *key, size_t len, char *out, size_t cap);

/* As keys_apply; with any_bytes, the key may hold any byte (a base64 meta key, which goes
 * to the backend encoded again): only the length decides whether it is hashed. */
int keys_apply_bytes(const struct key_style *ks, const char *key, size_t len, bool any_bytes,
                     char *out, size_t cap);

#endif
