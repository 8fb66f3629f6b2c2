/* meta_render.c: the backend commands that are not per-key hot (see meta_render.h). */
#include "meta_render.h"

#include "proto_text.h"

void meta_render_invalidate(struct buf *wb, const char *key, size_t klen, uint32_t ttl,
                            bool has_cas, uint64_t cas)
{
    meta_key(wb, "md ", key, klen);
    buf_put(wb, " I", 2);
    if (ttl)
        meta_num(wb, " T", ttl);
    if (has_cas)
        meta_num(wb, " C", cas);
    meta_end(wb);
}

void meta_render_arith_bin(struct buf *wb, const char *key, size_t klen, bool decr, uint64_t delta,
                           bool vivify, int64_t ttl, uint64_t initial)
{
    meta_key(wb, "ma ", key, klen);
    buf_put(wb, decr ? " v c MD D" : " v c D", decr ? 9 : 6);
    buf_put_u64(wb, delta);
    if (vivify) {
        buf_put(wb, " N", 2);
        buf_put_i64(wb, ttl);
        meta_num(wb, " J", initial);
    }
    meta_end(wb);
}

void meta_render_read(struct buf *wb, const char *key, size_t klen, bool with_flags)
{
    meta_key(wb, "mg ", key, klen);
    buf_put(wb, with_flags ? " v f" : " v", with_flags ? 4 : 2);
    meta_end(wb);
}

void meta_render_lease(struct buf *wb, const char *key, size_t klen, uint32_t lock)
{
    meta_key(wb, "ms ", key, klen);
    buf_put(wb, " 1 c ME T", 9);
    buf_put_u64(wb, lock);
    buf_put(wb, "\r\n1\r\n", 5);
}

void meta_render_forward(struct buf *wb, const char cmd[3], const char *key, size_t klen,
                         struct mg_slice args, struct mg_slice data, bool ms, bool drop_k,
                         uint32_t ttl_cap)
{
    bool capped = ttl_cap == 0;
    meta_key(wb, cmd, key, klen);
    if (ms) {
        wb->data[wb->len++] = ' ';
        buf_put_u64(wb, data.len);
    }
    uint32_t pos = 0;
    struct mg_slice tok;
    while (mg_text_next_token(args, &pos, &tok)) { /* checked by the parser */
        if (tok.p[0] == 'q' || (drop_k && tok.p[0] == 'k'))
            continue;
        if (!capped && tok.p[0] == 'T') { /* a T within the cap, or negative, stays */
            capped = true;
            uint64_t v = 0;
            bool keep = tok.len > 1 && tok.p[1] == '-';
            if (!keep && tok.len > 1 && tok.len < 12) {
                keep = true;
                for (uint32_t i = 1; i < tok.len; i++) {
                    keep = keep && tok.p[i] >= '0' && tok.p[i] <= '9';
                    v = v * 10 + (uint64_t)(tok.p[i] - '0');
                }
                keep = keep && v > 0 && v <= ttl_cap;
            }
            if (!keep) {
                meta_num(wb, " T", ttl_cap);
                continue;
            }
        }
        wb->data[wb->len++] = ' ';
        buf_put(wb, tok.p, tok.len);
    }
    if (!capped)
        meta_num(wb, " T", ttl_cap);
    meta_end(wb);
    if (ms) {
        buf_put(wb, data.p, data.len);
        meta_end(wb);
    }
}

void meta_render_flush_all(struct buf *wb, int64_t delay)
{
    if (delay > 0) {
        buf_put(wb, "flush_all ", 10);
        buf_put_i64(wb, delay);
        meta_end(wb);
    } else {
        buf_put(wb, "flush_all\r\n", 11);
    }
}

int meta_render_auth(struct buf *wb, const char *auth, size_t len)
{
    if (buf_printf(wb, "set mintgate:auth 0 0 %zu\r\n", len) != MG_OK ||
        buf_append(wb, auth, len) != MG_OK || buf_append(wb, "\r\n", 2) != MG_OK)
        return MG_ERR;
    return MG_OK;
}
