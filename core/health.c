/* health.c: the process-wide table of server health (see health.h). */
#include "health.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* More distinct servers than this over the process's life share no health. */
#define HEALTH_MAX 4096

struct health_entry {
    struct health h; /* first: the pointer handed out is the entry's */
    char *name;
    struct health_entry *next;
};

static pthread_mutex_t health_lock = PTHREAD_MUTEX_INITIALIZER;
static struct health_entry *health_list;
static uint32_t health_n;
static _Atomic uint32_t epoch;

struct health *health_get(const char *name)
{
    struct health *found = NULL;
    pthread_mutex_lock(&health_lock);
    for (struct health_entry *e = health_list; e; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            found = &e->h;
            break;
        }
    }
    if (found == NULL && health_n < HEALTH_MAX) {
        struct health_entry *e = calloc(1, sizeof(*e));
        if (e && (e->name = strdup(name)) != NULL) {
            atomic_init(&e->h.down_until_us, 0);
            atomic_init(&e->h.replay_n, 0);
            atomic_init(&e->h.replay_inflight, 0);
            e->next = health_list;
            health_list = e;
            health_n++;
            found = &e->h;
        } else {
            free(e);
        }
    }
    pthread_mutex_unlock(&health_lock);
    return found;
}

void health_down(struct health *h, int64_t until_us)
{
    if (h == NULL)
        return;
    int64_t cur = atomic_load_explicit(&h->down_until_us, memory_order_relaxed);
    while (cur < until_us &&
           !atomic_compare_exchange_weak_explicit(&h->down_until_us, &cur, until_us,
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
    atomic_fetch_add_explicit(&epoch, 1, memory_order_release);
}

void health_up(struct health *h)
{
    if (h == NULL || atomic_exchange_explicit(&h->down_until_us, 0, memory_order_relaxed) == 0)
        return;
    atomic_fetch_add_explicit(&epoch, 1, memory_order_release);
}

struct health_replay {
    struct health_replay *next;
    uint16_t len;
    bool b64;
    char key[];
};

bool health_replay_push(struct health *h, const char *key, size_t klen, bool b64)
{
    if (h == NULL || klen > 65535)
        return false;
    struct health_replay *r = malloc(sizeof(*r) + klen);
    if (r == NULL)
        return false;
    r->len = (uint16_t)klen;
    r->b64 = b64;
    memcpy(r->key, key, klen);
    bool ok = false;
    pthread_mutex_lock(&health_lock);
    if (atomic_load(&h->replay_n) < HEALTH_REPLAY_MAX) {
        r->next = h->replay;
        h->replay = r;
        atomic_fetch_add(&h->replay_n, 1);
        ok = true;
    }
    pthread_mutex_unlock(&health_lock);
    if (!ok)
        free(r);
    return ok;
}

struct health_replay *health_replay_take(struct health *h)
{
    if (h == NULL || atomic_load_explicit(&h->replay_n, memory_order_relaxed) == 0)
        return NULL;
    pthread_mutex_lock(&health_lock);
    struct health_replay *r = h->replay;
    h->replay = NULL;
    atomic_store(&h->replay_n, 0);
    pthread_mutex_unlock(&health_lock);
    return r;
}

struct health_replay *health_replay_next(struct health_replay *r, char *key, size_t *klen,
                                         bool *b64)
{
    struct health_replay *next = r->next;
    memcpy(key, r->key, r->len);
    *klen = r->len;
    *b64 = r->b64;
    free(r);
    return next;
}

uint32_t health_epoch(void)
{
    return atomic_load_explicit(&epoch, memory_order_acquire);
}

void health_free_all(void)
{
    pthread_mutex_lock(&health_lock);
    while (health_list) {
        struct health_entry *e = health_list;
        health_list = e->next;
        while (e->h.replay) {
            struct health_replay *r = e->h.replay;
            e->h.replay = r->next;
            free(r);
        }
        free(e->name);
        free(e);
    }
    health_n = 0;
    pthread_mutex_unlock(&health_lock);
}
