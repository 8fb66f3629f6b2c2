/* memstats.c: memcached's own stats of every backend (curr_items, bytes, stats items,
 * slabs, sizes): worker 0 fetches them about once a second on a connection of its own per
 * server, and a client's `stats` sums the last answers (server layer). */
#include "memstats.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "health.h"
#include "log.h"
#include "meta_render.h"
#include "stats.h"
#include "worker.h"

/* Not on the backends' own connections: their reader (proto_meta.c) takes each line for
 * one reply, and these replies are many STAT lines and an END each. */
static const char memstats_request[] = "stats\r\nstats items\r\nstats slabs\r\nstats sizes\r\n";
#define MEMSTATS_REPLIES 4
/* memcached sends neither a longer line nor (sizes tracking on, 1 MB items) more bytes */
#define MEMSTATS_LINE_MAX 8192
#define MEMSTATS_REPLY_MAX (8u << 20)
#define MEMSTATS_READ_CHUNK (16 * 1024)
#define MEMSTATS_BUF_KEEP (64 * 1024)

/* The fields of memcached's plain `stats` that only the servers have, summed. */
static const char *const general[] = {
    "curr_items",        "total_items",       "bytes",
    "limit_maxbytes",    "evictions",         "reclaimed",
    "expired_unfetched", "evicted_unfetched", "evicted_active",
};
#define NGENERAL MG_ARRAY_LEN(general)

/* One server as the poller sees it. Owned by the poller: worker 0's thread does the I/O;
 * the fields below `have` are also read by any thread that renders stats, under pub_lock
 * (worker 0 writes them under it too). */
struct ms_server {
    char *name; /* "host:port" as configured */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct pool_opts opts;
    struct health *health;
    int fd;          /* -1: no connection */
    bool connecting; /* connect() under way */
    bool busy;       /* a fetch is under way (the timer runs) */
    bool failing;    /* the last fetch failed: logged once until one works */
    bool kept;       /* ms_sync: found in the new config */
    bool authing;    /* the first answer is to the auth (opts.auth: a new connection) */
    struct buf wreq; /* what a fetch sends: (the auth and) memstats_request */
    size_t woff;     /* bytes of wreq written */
    size_t scan;     /* bytes of rbuf checked, whole lines */
    int replies;     /* replies complete (END, or an error line) */
    struct buf rbuf;
    ev_io io;
    ev_timer timer;
    /* the last fetch that worked */
    bool have;
    uint64_t gen[NGENERAL];
    struct buf sec[3]; /* "name value\n" lines of stats items, slabs, sizes */
};

static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;
/* The servers of the config the poller follows: the array is replaced under pub_lock by
 * worker 0, the only writer (NULL entries: out of memory). */
static struct ms_server **servers;
static uint32_t nservers;
static struct ev_loop *poll_loop; /* worker 0's */
static uint64_t poll_generation;
static bool poll_synced;

static void ms_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void ms_timer_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* --- fetching (worker 0) ------------------------------------------------------------------ */

static void ms_watch(struct ms_server *s, int events)
{
    ev_io_stop(poll_loop, &s->io);
    ev_io_set(&s->io, s->fd, events);
    ev_io_start(poll_loop, &s->io);
}

static void ms_close(struct ms_server *s)
{
    ev_io_stop(poll_loop, &s->io);
    ev_timer_stop(poll_loop, &s->timer);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->connecting = s->busy = s->authing = false;
    buf_reset(&s->rbuf, MEMSTATS_BUF_KEEP);
}

/* Publish s's numbers (have: gen and sec, which are taken) or forget them (!have). */
static void ms_publish(struct ms_server *s, bool have, const uint64_t *gen, struct buf *sec)
{
    struct buf old[3];
    pthread_mutex_lock(&pub_lock);
    memcpy(old, s->sec, sizeof(old));
    s->have = have;
    if (have) {
        memcpy(s->gen, gen, sizeof(s->gen));
        memcpy(s->sec, sec, sizeof(s->sec));
    } else {
        memset(s->sec, 0, sizeof(s->sec));
    }
    pthread_mutex_unlock(&pub_lock);
    for (int i = 0; i < 3; i++)
        buf_free(&old[i]);
}

static void ms_fail(struct ms_server *s, const char *why)
{
    if (!s->failing)
        log_info("backend %s: stats not fetched: %s", s->name, why);
    s->failing = true;
    ms_close(s);
    ms_publish(s, false, NULL, NULL);
}

/* The value of a STAT line as a number: true when it is one (digits only). */
static bool ms_number(const char *p, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    if (n == 0 || n > 19)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(p[i] - '0');
    }
    *v = x;
    return true;
}

/* Every reply is in rbuf (checked line by line): keep the numbers of plain `stats` that
 * matter and the other replies' STAT lines, and publish them. */
static void ms_done(struct ms_server *s)
{
    uint64_t gen[NGENERAL] = { 0 };
    struct buf sec[3];
    memset(sec, 0, sizeof(sec));
    int k = 0; /* which reply */
    bool oom = false;
    const char *p = s->rbuf.data, *end = p + s->rbuf.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        bool stat = e - p >= 5 && memcmp(p, "STAT ", 5) == 0; /* else END or an error */
        const char *name = p + 5;
        const char *sp = stat ? memchr(name, ' ', (size_t)(e - name)) : NULL;
        if (!stat) {
            k++;
        } else if (sp && k == 0) {
            for (size_t i = 0; i < NGENERAL; i++)
                if (strlen(general[i]) == (size_t)(sp - name) &&
                    memcmp(general[i], name, (size_t)(sp - name)) == 0)
                    ms_number(sp + 1, (size_t)(e - sp - 1), &gen[i]);
        } else if (sp && k <= 3) {
            oom |= buf_append(&sec[k - 1], name, (size_t)(e - name)) != MG_OK ||
                   buf_append(&sec[k - 1], "\n", 1) != MG_OK;
        }
        p = nl + 1;
    }
    s->busy = false;
    ev_timer_stop(poll_loop, &s->timer);
    buf_reset(&s->rbuf, MEMSTATS_BUF_KEEP);
    ms_watch(s, EV_READ); /* an idle connection: only its close is expected */
    if (oom) {
        for (int i = 0; i < 3; i++)
            buf_free(&sec[i]);
        ms_fail(s, "out of memory");
        return;
    }
    if (s->failing)
        log_info("backend %s: stats fetched again", s->name);
    s->failing = false;
    ms_publish(s, true, gen, sec);
}

/* Is line p[0..n) (without its \r\n) one that ends a reply? memcached answers a stats
 * subcommand it does not know with ERROR, and may refuse one with a CLIENT_ or SERVER_ERROR. */
static bool ms_reply_end(const char *p, size_t n)
{
    return (n == 3 && memcmp(p, "END", 3) == 0) || (n >= 5 && memcmp(p, "ERROR", 5) == 0) ||
           (n >= 12 && memcmp(p, "CLIENT_ERROR", 12) == 0) ||
           (n >= 12 && memcmp(p, "SERVER_ERROR", 12) == 0);
}

static void ms_read(struct ms_server *s)
{
    if (buf_reserve(&s->rbuf, MEMSTATS_READ_CHUNK) != MG_OK) {
        ms_fail(s, "out of memory");
        return;
    }
    ssize_t n = read(s->fd, s->rbuf.data + s->rbuf.len, s->rbuf.cap - s->rbuf.len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 && !s->busy) { /* the server closed an idle connection: connect next time */
        ms_close(s);
        return;
    }
    if (n <= 0) {
        ms_fail(s, n == 0 ? "closed by peer" : strerror(errno));
        return;
    }
    if (!s->busy) {
        ms_fail(s, "bytes without a request");
        return;
    }
    s->rbuf.len += (size_t)n;
    while (s->scan < s->rbuf.len) {
        const char *p = s->rbuf.data + s->scan;
        size_t left = s->rbuf.len - s->scan;
        const char *nl = memchr(p, '\n', left);
        if (nl == NULL) {
            if (left > MEMSTATS_LINE_MAX) {
                ms_fail(s, "line too long");
                return;
            }
            break;
        }
        size_t len = (size_t)(nl - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (MG_UNLIKELY(s->authing)) { /* the auth's answer (at scan 0): taken out of rbuf */
            if (len != 6 || memcmp(p, "STORED", 6) != 0) {
                ms_fail(s, "authentication refused");
                return;
            }
            s->authing = false;
            size_t used = (size_t)(nl - p) + 1;
            memmove(s->rbuf.data, s->rbuf.data + used, s->rbuf.len - used);
            s->rbuf.len -= used;
            continue;
        }
        if (ms_reply_end(p, len)) {
            s->replies++;
        } else if (len < 5 || memcmp(p, "STAT ", 5) != 0 || s->replies >= MEMSTATS_REPLIES) {
            ms_fail(s, "unexpected reply");
            return;
        }
        s->scan += (size_t)(nl - p) + 1;
    }
    if (s->rbuf.len > MEMSTATS_REPLY_MAX)
        ms_fail(s, "reply too large");
    else if (s->replies == MEMSTATS_REPLIES && s->scan != s->rbuf.len)
        ms_fail(s, "unexpected reply");
    else if (s->replies == MEMSTATS_REPLIES)
        ms_done(s);
}

static void ms_write(struct ms_server *s)
{
    if (s->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            ms_fail(s, strerror(err));
            return;
        }
        s->connecting = false;
    }
    size_t total = s->wreq.len;
    if (s->busy && s->woff < total) {
        ssize_t n = write(s->fd, s->wreq.data + s->woff, total - s->woff);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            ms_fail(s, strerror(errno));
            return;
        }
        if (n > 0)
            s->woff += (size_t)n;
    }
    if (!s->busy || s->woff == total)
        ms_watch(s, EV_READ);
}

static void ms_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    MG_UNUSED(loop);
    struct ms_server *s = io->data;
    if (revents & EV_WRITE) {
        ms_write(s);
        if (s->fd < 0)
            return;
    }
    if (revents & EV_READ)
        ms_read(s);
}

static void ms_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    MG_UNUSED(loop);
    MG_UNUSED(revents);
    struct ms_server *s = t->data;
    ms_fail(s, s->connecting ? "connect timeout" : "timeout");
}

/* Send the requests, connecting first when there is no connection. Bounded by the
 * server's connect timeout plus its read timeout; fails through ms_fail. */
static void ms_start(struct ms_server *s)
{
    s->busy = true;
    s->woff = s->scan = 0;
    s->replies = 0;
    buf_reset(&s->rbuf, MEMSTATS_BUF_KEEP);
    ev_timer_set(&s->timer, s->opts.connect_timeout + s->opts.timeout, 0.);
    ev_timer_start(poll_loop, &s->timer);
    s->wreq.off = s->wreq.len = 0;
    s->authing = s->fd < 0 && s->opts.auth_len; /* a new connection: memcached's text auth first */
    if ((s->authing && meta_render_auth(&s->wreq, s->opts.auth, s->opts.auth_len) != MG_OK) ||
        buf_append(&s->wreq, memstats_request, sizeof(memstats_request) - 1) != MG_OK) {
        ms_fail(s, "out of memory");
        return;
    }
    if (s->fd < 0) {
        int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            ms_fail(s, strerror(errno));
            return;
        }
        s->fd = fd;
        if (s->addr.ss_family != AF_UNIX) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        if (connect(fd, (struct sockaddr *)&s->addr, s->addrlen) < 0 && errno != EINPROGRESS) {
            ms_fail(s, strerror(errno));
            return;
        }
        s->connecting = true; /* SO_ERROR tells once writable, whether it was at once or not */
    }
    ms_watch(s, EV_READ | EV_WRITE);
}

static struct ms_server *ms_new(const struct server *srv)
{
    struct ms_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->name = strdup(srv->name);
    if (s->name == NULL) {
        free(s);
        return NULL;
    }
    s->health = health_get(srv->name);
    s->fd = -1;
    ev_init(&s->io, ms_io_cb);
    ev_init(&s->timer, ms_timer_cb);
    s->io.data = s->timer.data = s;
    return s;
}

static void ms_free(struct ms_server *s)
{
    ms_close(s);
    buf_free(&s->rbuf);
    buf_free(&s->wreq);
    for (int i = 0; i < 3; i++)
        buf_free(&s->sec[i]);
    free(s->name);
    free(s);
}

/* Follow cfg's servers: keep those still there (by name, with their connection), add the
 * new ones, close the others. Out of memory: the old list stays, tried again next time. */
static void ms_sync(const struct config *cfg)
{
    struct ms_server **nv = calloc(cfg->nservers ? cfg->nservers : 1, sizeof(*nv));
    if (nv == NULL)
        return;
    for (uint32_t i = 0; i < cfg->nservers; i++) {
        const struct server *srv = &cfg->servers[i];
        for (uint32_t j = 0; j < nservers && nv[i] == NULL; j++)
            if (servers[j] && !servers[j]->kept && strcmp(servers[j]->name, srv->name) == 0) {
                nv[i] = servers[j];
                nv[i]->kept = true; /* not in servers[] itself: readers walk it */
            }
        if (nv[i] == NULL && (nv[i] = ms_new(srv)) == NULL)
            continue;
        nv[i]->addr = srv->addr;
        nv[i]->addrlen = srv->addrlen;
        nv[i]->opts = srv->opts;
    }
    struct ms_server **old = servers;
    uint32_t nold = nservers;
    pthread_mutex_lock(&pub_lock);
    servers = nv;
    nservers = cfg->nservers;
    pthread_mutex_unlock(&pub_lock);
    for (uint32_t j = 0; j < nold; j++)
        if (old[j] && !old[j]->kept)
            ms_free(old[j]);
    for (uint32_t i = 0; i < cfg->nservers; i++)
        if (nv[i])
            nv[i]->kept = false;
    free(old);
    poll_generation = cfg->generation;
    poll_synced = true;
}

void memstats_poll(struct worker *w)
{
    if (w->id != 0)
        return;
    poll_loop = w->loop;
    if (!poll_synced || poll_generation != w->cfg->generation)
        ms_sync(w->cfg);
    int64_t now_us = (int64_t)(ev_now(w->loop) * 1e6);
    for (uint32_t i = 0; i < nservers; i++) {
        struct ms_server *s = servers[i];
        if (s == NULL || s->busy)
            continue; /* a slow fetch keeps the numbers it had until its deadline */
        if (health_is_down(s->health, now_us)) { /* ejected: no client reaches its items */
            ms_close(s);
            if (s->have)
                ms_publish(s, false, NULL, NULL);
            continue;
        }
        ms_start(s);
    }
}

/* --- summing (any thread) ----------------------------------------------------------------- */

/* One STAT line of one server's reply, or (merged) of every server's. */
struct ms_line {
    const char *name, *val;
    uint32_t nlen, vlen;
    uint32_t cls; /* slab class (stats sizes: the size) it is about; UINT32_MAX: none */
    uint32_t pos; /* its place among its class's lines: memcached's field order */
    uint32_t seq; /* its place in the input: the first server's value comes first */
    uint64_t v;
    bool num;
};

/* "items:12:number" and "12:chunk_size" are about class 12, "96" (stats sizes) about 96. */
static uint32_t ms_class(const char *p, uint32_t n)
{
    if (n > 6 && memcmp(p, "items:", 6) == 0) {
        p += 6;
        n -= 6;
    }
    uint64_t v = 0;
    uint32_t i = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '9' && v < UINT32_MAX; i++)
        v = v * 10 + (uint64_t)(p[i] - '0');
    if (i == 0 || v >= UINT32_MAX || (i < n && p[i] != ':'))
        return UINT32_MAX;
    return (uint32_t)v;
}

/* Fields for which the pool's value is the largest of the servers' (ages, a class's
 * geometry), not their sum. */
static bool ms_takes_max(const char *name, uint32_t n)
{
    static const char *const maxed[] = { "age",          "age_hot",    "age_warm",
                                         "evicted_time", "chunk_size", "chunks_per_page",
                                         "active_slabs" };
    const char *f = name;
    for (uint32_t i = 0; i < n; i++)
        if (name[i] == ':')
            f = name + i + 1;
    size_t fn = (size_t)(name + n - f);
    for (size_t i = 0; i < MG_ARRAY_LEN(maxed); i++)
        if (strlen(maxed[i]) == fn && memcmp(maxed[i], f, fn) == 0)
            return true;
    return false;
}

static int ms_by_name(const void *a, const void *b)
{
    const struct ms_line *x = a, *y = b;
    uint32_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
    int c = memcmp(x->name, y->name, n);
    if (c == 0 && x->nlen != y->nlen)
        c = x->nlen < y->nlen ? -1 : 1;
    if (c == 0)
        c = x->seq < y->seq ? -1 : x->seq > y->seq;
    return c;
}

static int ms_by_place(const void *a, const void *b)
{
    const struct ms_line *x = a, *y = b;
    if (x->cls != y->cls)
        return x->cls < y->cls ? -1 : 1;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return ms_by_name(a, b);
}

/* Split text (each server's "name value\n" lines, servers apart by an empty line) into
 * lines. Returns how many, or -1 when out of memory (*out then NULL). */
static long ms_split(const struct buf *text, struct ms_line **out)
{
    size_t cap = 0;
    for (size_t i = 0; i < text->len; i++)
        cap += text->data[i] == '\n';
    *out = calloc(cap ? cap : 1, sizeof(**out));
    if (*out == NULL)
        return -1;
    long n = 0;
    uint32_t cls = UINT32_MAX - 1, pos = 0; /* no class yet */
    const char *p = text->data, *end = p + text->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *sp = memchr(p, ' ', (size_t)(nl - p));
        if (sp == NULL) { /* the next server's lines begin */
            cls = UINT32_MAX - 1;
            p = nl + 1;
            continue;
        }
        struct ms_line *l = &(*out)[n];
        l->name = p;
        l->nlen = (uint32_t)(sp - p);
        l->val = sp + 1;
        l->vlen = (uint32_t)(nl - sp - 1);
        l->cls = ms_class(l->name, l->nlen);
        if (l->cls != cls) {
            cls = l->cls;
            pos = 0;
        }
        l->pos = pos++;
        l->seq = (uint32_t)n;
        l->num = ms_number(l->val, l->vlen, &l->v);
        n++;
        p = nl + 1;
    }
    return n;
}

/* Sum every server's lines of one kind into STAT lines on out: a field's values added
 * (or the largest taken, ms_takes_max); a value that is not a number is the first
 * server's. In memcached's order: by class, then as memcached lists a class's fields. */
static void ms_sum(const struct buf *text, struct buf *out)
{
    struct ms_line *l;
    long n = ms_split(text, &l);
    if (n <= 0) {
        free(l);
        return;
    }
    qsort(l, (size_t)n, sizeof(*l), ms_by_name);
    long m = 0;
    for (long i = 0; i < n;) {
        struct ms_line g = l[i];
        bool max = ms_takes_max(g.name, g.nlen);
        long j = i + 1;
        for (; j < n && l[j].nlen == g.nlen && memcmp(l[j].name, g.name, g.nlen) == 0; j++) {
            if (l[j].pos < g.pos)
                g.pos = l[j].pos;
            if (!g.num || !l[j].num)
                g.num = false;
            else if (max)
                g.v = l[j].v > g.v ? l[j].v : g.v;
            else
                g.v += l[j].v;
        }
        l[m++] = g;
        i = j;
    }
    qsort(l, (size_t)m, sizeof(*l), ms_by_place);
    for (long i = 0; i < m; i++) {
        if (l[i].num)
            buf_printf(out, "STAT %.*s %llu\r\n", (int)l[i].nlen, l[i].name,
                       (unsigned long long)l[i].v);
        else
            buf_printf(out, "STAT %.*s %.*s\r\n", (int)l[i].nlen, l[i].name, (int)l[i].vlen,
                       l[i].val);
    }
    free(l);
}

void memstats_render(struct buf *out, enum memstats_kind kind)
{
    if (kind == MEMSTATS_GENERAL) {
        uint64_t sum[NGENERAL] = { 0 };
        uint64_t counted = 0;
        pthread_mutex_lock(&pub_lock);
        for (uint32_t i = 0; i < nservers; i++) {
            const struct ms_server *s = servers[i];
            if (s == NULL || !s->have)
                continue;
            counted++;
            for (size_t f = 0; f < NGENERAL; f++)
                sum[f] += s->gen[f];
        }
        pthread_mutex_unlock(&pub_lock);
        for (size_t f = 0; f < NGENERAL; f++)
            stats_line(out, "", general[f], sum[f]);
        stats_line(out, "", "backend_stats_servers", counted);
        return;
    }
    /* copied out under the lock, summed outside it: worker 0 never waits for the sum */
    struct buf text = { 0 };
    bool oom = false;
    pthread_mutex_lock(&pub_lock);
    for (uint32_t i = 0; i < nservers && !oom; i++) {
        const struct ms_server *s = servers[i];
        if (s == NULL || !s->have)
            continue;
        const struct buf *b = &s->sec[kind - 1];
        oom = buf_append(&text, "\n", 1) != MG_OK ||
              (b->len && buf_append(&text, b->data, b->len) != MG_OK);
    }
    pthread_mutex_unlock(&pub_lock);
    if (!oom)
        ms_sum(&text, out);
    buf_free(&text);
}
