/* meta_render.h: every command the gateway sends a backend, rendered in one place.
 *
 * The renderers write into a backend's write buffer and assume the caller reserved room:
 * the key, any data, and META_EXTRA bytes (META_FWD_EXTRA plus the arguments for
 * meta_render_forward). The hot ones are inline: they run once per key. */
#ifndef MG_META_RENDER_H
#define MG_META_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "mg.h"

/* Room a command needs beyond its key, its data and (forwarded) arguments. */
#define META_EXTRA 96

static inline void meta_key(struct buf *wb, const char cmd[3], const char *key, size_t klen)
{
    buf_put(wb, cmd, 3);
    buf_put(wb, key, klen);
}

static inline void meta_num(struct buf *wb, const char flag[2], uint64_t v)
{
    buf_put(wb, flag, 2);
    buf_put_u64(wb, v);
}

static inline void meta_end(struct buf *wb)
{
    buf_put(wb, "\r\n", 2);
}

/* A classic read: value and flags (cas: and the CAS); touch: a new TTL too (gat). */
static MG_ALWAYS_INLINE void meta_render_get(struct buf *wb, const char *key, size_t klen, bool cas,
                                             bool touch, int64_t ttl, bool with_ttl)
{
    meta_key(wb, "mg ", key, klen);
    buf_put(wb, cas ? " v f c" : " v f", cas ? 6 : 4);
    if (with_ttl)
        buf_put(wb, " t", 2);
    if (touch) {
        buf_put(wb, " T", 2);
        buf_put_i64(wb, ttl);
    }
    meta_end(wb);
}

/* A classic get under a staleness policy: value, flags, cas, (with_ttl) the remaining TTL,
 * and (recache > 0) the R flag that makes memcached pick one winner fleet-wide once the
 * remaining TTL is below it (herd_recache computes it). */
static inline void meta_render_herd_get(struct buf *wb, const char *key, size_t klen,
                                        uint32_t recache, bool with_ttl)
{
    meta_key(wb, "mg ", key, klen);
    buf_put(wb, " v f c", 6);
    if (with_ttl)
        buf_put(wb, " t", 2);
    if (recache)
        meta_num(wb, " R", recache);
    meta_end(wb);
}

/* Store modes (the ms M flag): set, add, replace, append, prepend. */
enum meta_mode { META_SET = 0, META_ADD, META_REPLACE, META_APPEND, META_PREPEND };

/* Extra ms flags (meta_render_store's opts): I (with C: a CAS older than the item's
 * stores the value marked stale instead of failing), c (answer the stored item's CAS). */
#define META_STORE_INVALIDATE 1u
#define META_STORE_RETURN_CAS 2u

/* ms with its data: F flags, T ttl, the mode, C cas when has_cas, opts (META_STORE_*). */
static inline void meta_render_store(struct buf *wb, const char *key, size_t klen,
                                     struct mg_slice data, uint64_t flags, int64_t ttl,
                                     enum meta_mode mode, bool has_cas, uint64_t cas, unsigned opts)
{
    static const char modes[][4] = { "", " ME", " MR", " MA", " MP" };
    meta_key(wb, "ms ", key, klen);
    wb->data[wb->len++] = ' ';
    buf_put_u64(wb, data.len);
    meta_num(wb, " F", flags);
    buf_put(wb, " T", 2);
    buf_put_i64(wb, ttl);
    buf_put(wb, modes[mode], mode == META_SET ? 0 : 3);
    if (has_cas)
        meta_num(wb, " C", cas);
    if (MG_UNLIKELY(opts != 0)) {
        if (opts & META_STORE_INVALIDATE)
            buf_put(wb, " I", 2);
        if (opts & META_STORE_RETURN_CAS)
            buf_put(wb, " c", 2);
    }
    meta_end(wb);
    buf_put(wb, data.p, data.len);
    meta_end(wb);
}

/* md: a plain delete; with has_cas only if the CAS still matches (nobody stored since). */
static inline void meta_render_delete(struct buf *wb, const char *key, size_t klen, bool has_cas,
                                      uint64_t cas)
{
    meta_key(wb, "md ", key, klen);
    if (has_cas)
        meta_num(wb, " C", cas);
    meta_end(wb);
}

/* mg with a new TTL and nothing back: touch. */
static inline void meta_render_touch(struct buf *wb, const char *key, size_t klen, int64_t ttl)
{
    meta_key(wb, "mg ", key, klen);
    buf_put(wb, " T", 2);
    buf_put_i64(wb, ttl);
    meta_end(wb);
}

/* ma returning the new value: incr (or decr) by delta. */
static inline void meta_render_arith(struct buf *wb, const char *key, size_t klen, bool decr,
                                     uint64_t delta)
{
    meta_key(wb, "ma ", key, klen);
    buf_put(wb, decr ? " v MD D" : " v D", decr ? 7 : 4);
    buf_put_u64(wb, delta);
    meta_end(wb);
}

/* ma for a binary client: the new value and CAS; vivify: a missing item is created with
 * initial for ttl seconds (memcached's binary incr/decr). */
void meta_render_arith_bin(struct buf *wb, const char *key, size_t klen, bool decr, uint64_t delta,
                           bool vivify, int64_t ttl, uint64_t initial);
/* md I: mark stale instead of deleting (ttl: and keep it that long, 0: as it is); with
 * has_cas only if the CAS still matches (nobody stored since). */
void meta_render_invalidate(struct buf *wb, const char *key, size_t klen, uint32_t ttl,
                            bool has_cas, uint64_t cas);
/* mg asking for the value only (the gateway's own reads) or with its flags too. */
void meta_render_read(struct buf *wb, const char *key, size_t klen, bool with_flags);
/* The cold-miss lease: add key with a 1-byte value for lock seconds, answering its CAS. */
void meta_render_lease(struct buf *wb, const char *key, size_t klen, uint32_t lock);
/* A client's meta command forwarded (cmd "mg ", "ms ", ... with its key), its arguments
 * but the q flag (and the k flag when drop_k), and for ms its data. ttl_cap > 0: its T
 * flag (none: never expires) becomes at most ttl_cap. */
void meta_render_forward(struct buf *wb, const char cmd[3], const char *key, size_t klen,
                         struct mg_slice args, struct mg_slice data, bool ms, bool drop_k,
                         uint32_t ttl_cap);
/* flush_all, with a delay when delay > 0 (the text command: meta has none). */
void meta_render_flush_all(struct buf *wb, int64_t delay);

/* memcached's text auth (memcached -Y; mg.pool { auth }): a set whose value is auth[0..len)
 * ("user password"), answered STORED; the first command on a new connection. Appends it to
 * wb (growing it). Returns MG_OK or MG_ERR (out of memory). */
int meta_render_auth(struct buf *wb, const char *auth, size_t len);

#endif
