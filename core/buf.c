/* buf.c: growable byte buffers. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return MG_OK;
    if (b->off > 0 && b->cap - (b->len - b->off) >= n) {
        buf_compact(b);
        return MG_OK;
    }
    size_t need = b->len + n;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return MG_ERR;
    b->data = p;
    b->cap = cap;
    return MG_OK;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) != MG_OK)
        return MG_ERR;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return MG_OK;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n + 1) != MG_OK)
        return MG_ERR;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return MG_OK;
}

int buf_append_u64(struct buf *b, uint64_t v)
{
    if (buf_reserve(b, 20) != MG_OK)
        return MG_ERR;
    buf_put_u64(b, v);
    return MG_OK;
}

int buf_append_i64(struct buf *b, int64_t v)
{
    if (v < 0) {
        if (buf_append(b, "-", 1) != MG_OK)
            return MG_ERR;
        return buf_append_u64(b, (uint64_t)0 - (uint64_t)v);
    }
    return buf_append_u64(b, (uint64_t)v);
}

void buf_compact(struct buf *b)
{
    if (b->off == 0)
        return;
    size_t n = b->len - b->off;
    if (n)
        memmove(b->data, b->data + b->off, n);
    b->off = 0;
    b->len = n;
}

void buf_reset(struct buf *b, size_t keep)
{
    b->off = b->len = 0;
    if (b->cap > keep) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}
