/* slowlog.c: the slow log ring and the sampled request log's settings. */
#include "slowlog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mg.h"

atomic_uint_fast64_t slowlog_threshold_us = SLOWLOG_DEFAULT_MS * 1000;
atomic_uint_fast32_t requestlog_every = 0;
atomic_uint_fast64_t slowlog_gate_us = SLOWLOG_DEFAULT_MS * 1000;

static void gate_update(void)
{
    atomic_store(&slowlog_gate_us,
                 atomic_load(&requestlog_every) ? 0 : atomic_load(&slowlog_threshold_us));
}

void requestlog_set(uint32_t every)
{
    atomic_store(&requestlog_every, every);
    gate_update();
}

/* Shared by the workers: slow requests are rare by definition, so one lock is cheap. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slow_entry *ring;
static uint32_t cap, head, count; /* head: the next slot to write */
static uint64_t total;            /* entries ever pushed (since the last reset) */

int slowlog_configure(double threshold_ms, uint32_t size)
{
    if (size < 1 || size > SLOWLOG_SIZE_MAX || !(threshold_ms >= 0))
        return MG_ERR;
    atomic_store(&slowlog_threshold_us,
                 threshold_ms > 1e12 ? UINT64_MAX : (uint_fast64_t)(threshold_ms * 1000));
    gate_update();
    pthread_mutex_lock(&lock);
    int rc = MG_OK;
    if (size != cap) {
        struct slow_entry *n = calloc(size, sizeof(*n));
        if (n == NULL) {
            rc = MG_ERR;
        } else {
            free(ring);
            ring = n;
            cap = size;
            head = count = 0;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void slowlog_push(const struct slow_entry *e)
{
    pthread_mutex_lock(&lock);
    if (ring == NULL) { /* never configured: the default size */
        ring = calloc(SLOWLOG_DEFAULT_SIZE, sizeof(*ring));
        cap = ring ? SLOWLOG_DEFAULT_SIZE : 0;
    }
    if (cap) {
        ring[head] = *e;
        head = (head + 1) % cap;
        if (count < cap)
            count++;
        total++;
    }
    pthread_mutex_unlock(&lock);
}

/* Bytes as a log token: printable ASCII but space, '\\' and '"' as is, the rest \xNN. */
static void put_escaped(char *dst, size_t dlen, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < dlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch > ' ' && ch < 127 && ch != '\\' && ch != '"')
            dst[o++] = (char)ch;
        else
            o += (size_t)snprintf(dst + o, dlen - o, "\\x%02x", ch);
    }
    dst[o] = '\0';
}

void slowlog_line(const struct slow_entry *e, char *line, size_t len)
{
    char key[SLOWLOG_KEY_MAX * 4 + 8], out[64 * 4 + 8];
    put_escaped(key, sizeof(key), e->key, e->klen);
    put_escaped(out, sizeof(out), e->outcome, strnlen(e->outcome, sizeof(e->outcome)));
    snprintf(line, len,
             "time=%.3f us=%llu cmd=%s key=%s%s key_len=%u pool=%s server=%s client=%s "
             "outcome=%s",
             e->when, (unsigned long long)e->us, e->cmd ? e->cmd : "?", e->klen ? key : "-",
             e->klen < e->key_len ? "..." : "", e->key_len, e->pool[0] ? e->pool : "-",
             e->server[0] ? e->server : "-", e->client[0] ? e->client : "-", out[0] ? out : "-");
}

void slowlog_render(struct buf *out)
{
    uint64_t th = atomic_load(&slowlog_threshold_us);
    pthread_mutex_lock(&lock);
    buf_printf(out, "STAT slowlog_threshold_us %llu\r\n",
               th == UINT64_MAX ? 0ull : (unsigned long long)th);
    buf_printf(out, "STAT slowlog_size %u\r\n", cap ? cap : SLOWLOG_DEFAULT_SIZE);
    buf_printf(out, "STAT slowlog_entries %u\r\n", count);
    buf_printf(out, "STAT slowlog_total %llu\r\n", (unsigned long long)total);
    for (uint32_t i = 0; i < count; i++) {
        const struct slow_entry *e = &ring[(head + cap - 1 - i) % cap];
        char line[1024];
        slowlog_line(e, line, sizeof(line));
        buf_printf(out, "STAT slow:%u %s\r\n", i, line);
    }
    pthread_mutex_unlock(&lock);
    buf_append(out, "END\r\n", 5);
}

uint32_t slowlog_size(void)
{
    pthread_mutex_lock(&lock);
    uint32_t n = cap ? cap : SLOWLOG_DEFAULT_SIZE;
    pthread_mutex_unlock(&lock);
    return n;
}

void slowlog_reset(void)
{
    pthread_mutex_lock(&lock);
    head = count = 0;
    total = 0;
    pthread_mutex_unlock(&lock);
}

uint64_t slowlog_total(void)
{
    pthread_mutex_lock(&lock);
    uint64_t t = total;
    pthread_mutex_unlock(&lock);
    return t;
}

void slowlog_free(void)
{
    pthread_mutex_lock(&lock);
    free(ring);
    ring = NULL;
    cap = head = count = 0;
    pthread_mutex_unlock(&lock);
}
