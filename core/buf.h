/* buf.h: growable byte buffers with a read offset, used for socket I/O and replies. */
#ifndef MG_BUF_H
#define MG_BUF_H

#include <string.h>

#include "mg.h"

/* A byte buffer: data[off..len) is the unread part. The buffer owns data (malloc'd);
 * whoever owns the struct calls buf_free. Slices into it die on any buf_* call that may
 * grow or compact it. */
struct buf {
    char *data;
    size_t off, len, cap;
};

/* Make room for n more bytes after len. Returns MG_OK or MG_ERR (out of memory). */
int buf_reserve(struct buf *b, size_t n);
/* Append n bytes. Returns MG_OK or MG_ERR. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
/* Append printf-formatted text. Returns MG_OK or MG_ERR. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append an unsigned decimal number. */
int buf_append_u64(struct buf *b, uint64_t v);
int buf_append_i64(struct buf *b, int64_t v);
/* Drop everything already read: move data[off..len) to the front. */
void buf_compact(struct buf *b);
/* Forget the contents but keep the memory (and shrink it when it grew past keep). */
void buf_reset(struct buf *b, size_t keep);
void buf_free(struct buf *b);

static inline size_t buf_unread(const struct buf *b)
{
    return b->len - b->off;
}

/* Unchecked appends for the hot path: the caller reserved the room (buf_reserve). */
static inline void buf_put(struct buf *b, const char *s, size_t n)
{
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static inline void buf_put_u64(struct buf *b, uint64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof(tmp), *p = e;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_put(b, p, (size_t)(e - p));
}

static inline void buf_put_i64(struct buf *b, int64_t v)
{
    if (v < 0) {
        b->data[b->len++] = '-';
        buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        buf_put_u64(b, (uint64_t)v);
    }
}
static inline char *buf_head(const struct buf *b)
{
    return b->data + b->off;
}

#endif
