/* buf.h: growable byte buffers with a read offset, used for socket I/O and replies. */
#ifndef MG_BUF_H
#define MG_BUF_H

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

static inline size_t buf_unread(const struct buf *b) { return b->len - b->off; }
static inline char *buf_head(const struct buf *b) { return b->data + b->off; }

#endif
