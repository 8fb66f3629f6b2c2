/* herd: thundering-herd benchmark client for memcached-protocol targets (libev, loopback only). */

/*
 * Model. Many naive application clients, each one connection with one request
 * in flight, spread round-robin over one or more targets (gateways sharing the
 * same backends, or one memcached), hammer K hot keys that carry a short TTL:
 *
 *   loop: get a random key among K
 *         hit:  count it (stale if the value is older than the TTL), think, loop
 *         miss: count a regeneration, stay idle for --regen-ms (a libev timer,
 *               the "expensive computation"), then `set key 0 TTL` a new value
 *               and loop
 *
 * Every value says which generation of its key it is and when it was built:
 * "g=<generation> t=<unix ms> " padded with dots. All writers live in this
 * process, so the bookkeeping is exact: each key knows the newest generation
 * stored so far. A miss on a get issued while generation g was the newest
 * means g expired; the regeneration aims at g+1. Every regenerating client
 * aims at the same g+1, so the number of distinct generations aimed at is the
 * number of expiries that happened (and were noticed), whatever the backend's
 * clock does, and regenerations / expiries is the herd size.
 *
 * Expiry window of one expiry of key k (generation g expires, g+1 replaces
 * it): opens at the earlier of g's nominal expiry (when g was first stored,
 * plus the TTL) and the issue time of the first get that missed on g; closes
 * when g+1 is first stored. A get is "in a window" if it was issued while any
 * key's window was open; latencies are split on that at the end, from a log
 * of (issue time, latency) of every get.
 *
 * Phases: connect every client, prefill every key with generation 1 (so the
 * run starts warm and every measured expiry is a refresh), then the run.
 * Nothing can wait forever: connects and replies time out, and a hard limit
 * stops the loop.
 */

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MAX_TARGETS 64
#define MAX_CLIENTS 20000
#define MAX_KEYS 100000
#define MAX_LABEL 64
#define MAX_PREFIX 100
#define MAX_KEY (MAX_PREFIX + 24)
#define MIN_VALUE 48 /* room for "g=<gen> t=<ms> " */
#define MAX_VALUE 1024
#define RBUF_SIZE (MAX_VALUE + 512)
#define OBUF_SIZE (MAX_VALUE + MAX_KEY + 64)
#define MAX_CONNECTING 128      /* connects in flight at once */
#define MAX_NOTES 5             /* failure messages printed */
#define MAX_SAMPLES (16u << 20) /* get latencies kept for the window split: 128 MB */
#define SCAN_INTERVAL 0.25      /* seconds between timeout scans */

enum phase { P_CONNECT, P_PREFILL, P_RUN, P_DONE };
enum client_state { C_INIT, C_CONNECTING, C_READY, C_DEAD };

/* What a ready client is doing; exactly one of these at any time. */
enum client_wait { W_IDLE, W_GET, W_SET, W_REGEN, W_THINK };

struct target {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char text[280];
};

/* Parsed command line; filled once in main, read-only afterwards. */
struct options {
    struct target targets[MAX_TARGETS];
    int ntargets, clients, keys, ttl;
    int value_size;
    double regen_ms, think_ms, duration, connect_timeout, timeout, max_time;
    uint64_t seed;
    char label[MAX_LABEL + 1];
    char prefix[MAX_PREFIX + 1];
};

/*
 * One hot key and what this process knows about it. gen/gen_ns change when a
 * newer generation is first seen stored (our own STORED, or a hit on it);
 * aim/miss_ns when a miss starts the regeneration of a newer generation.
 */
struct key {
    char name[MAX_KEY + 1];
    size_t len;
    uint64_t gen;     /* newest generation known to be stored */
    uint64_t gen_ns;  /* when it was first known stored */
    uint64_t aim;     /* newest generation a regeneration aims at */
    uint64_t miss_ns; /* issue time of the earliest get that missed on aim - 1 */
};

/* One application client: one connection, one request at a time. Owned by the bench's array. */
struct client {
    struct bench *b;
    int fd, target;
    enum client_state state;
    enum client_wait wait;
    bool prefill; /* set requests are prefill, not regenerations */
    ev_io rio, wio;
    ev_timer timer;         /* regeneration delay or think time */
    uint64_t since_ns;      /* connect started, or request sent: for timeouts */
    uint64_t issue_ns;      /* get issued */
    uint64_t seen_at_issue; /* the key's newest generation when the get was issued */
    uint64_t writing;       /* generation the pending set stores */
    size_t key, prefill_next;
    size_t rlen, olen, opos;
    char rbuf[RBUF_SIZE];
    char obuf[OBUF_SIZE];
};

/* A get's issue time (µs since the run began) and latency (ns, clamped to 4.29 s). */
struct sample {
    uint32_t at_us;
    uint32_t lat_ns;
};

/* An interval in ns since the run began. */
struct span {
    uint64_t from, to;
};

struct totals {
    uint64_t gets, hits, misses, regens, stale_hits, superseded, expiries;
    uint64_t sets, get_errors, set_errors, bad_values, prefill_errors;
    uint64_t conns_failed, conns_lost, samples_dropped;
    uint64_t life_sum_ns, life_n;
};

/* Everything the run owns; one loop, one thread. */
struct bench {
    const struct options *o;
    struct ev_loop *loop;
    struct client *clients;
    struct key *keys;
    enum phase phase, was; /* was: the phase the run stopped in */
    int next_connect, connecting, settled, ready, notes;
    size_t prefill_left, prefill_stride;
    bool measuring, done, hit_limit, connecting_more;
    uint64_t rng, ttl_ns, start_ns, stop_ns;
    ev_timer run_timer, hard_timer, scan_timer;
    struct totals t;
    struct sample *samples;
    size_t nsamples, samples_cap;
    struct span *wins;
    size_t nwins, wins_cap;
};

static void client_close(struct client *c, const char *why);
static void client_get(struct client *c);
static void bench_connect_more(struct bench *b);

/* Wall clock in ms: what a value's timestamp says, comparable across processes. */
static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

static void note(struct bench *b, const struct client *c, const char *why)
{
    if (b->done || b->notes >= MAX_NOTES)
        return;
    b->notes++;
    fprintf(stderr, "herd: %s: client %d (%s): %s%s\n", b->o->label, (int)(c - b->clients),
            b->o->targets[c->target].text, why,
            b->notes == MAX_NOTES ? " (further messages suppressed)" : "");
}

/* ---- bookkeeping ---- */

/* Appends a window [from, to] (absolute ns), clipped to the run; drops it when full. */
static void window_add(struct bench *b, uint64_t from, uint64_t to)
{
    if (from < b->start_ns)
        from = b->start_ns;
    if (to <= from)
        return;
    if (b->nwins == b->wins_cap) {
        size_t cap = b->wins_cap ? 2 * b->wins_cap : 1024;
        struct span *n = realloc(b->wins, cap * sizeof *n);

        if (n == NULL)
            return;
        b->wins = n;
        b->wins_cap = cap;
    }
    b->wins[b->nwins].from = from - b->start_ns;
    b->wins[b->nwins].to = to - b->start_ns;
    b->nwins++;
}

/* Logs one get for the latency split; counts what cannot be kept. */
static void sample_add(struct bench *b, uint64_t issue, uint64_t lat)
{
    if (b->nsamples == b->samples_cap) {
        size_t cap = b->samples_cap ? 2 * b->samples_cap : 65536;
        struct sample *n = cap <= MAX_SAMPLES ? realloc(b->samples, cap * sizeof *n) : NULL;

        if (n == NULL) {
            b->t.samples_dropped++;
            return;
        }
        b->samples = n;
        b->samples_cap = cap;
    }
    b->samples[b->nsamples].at_us = (uint32_t)((issue - b->start_ns) / 1000);
    b->samples[b->nsamples].lat_ns = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
    b->nsamples++;
}

/*
 * Generation gen of k is now known to be stored (at now). If it replaces an
 * older one during the run, the expiry window of that older one closes here.
 */
static void key_stored(struct bench *b, struct key *k, uint64_t gen, uint64_t now)
{
    if (gen <= k->gen)
        return;
    if (b->measuring && k->gen_ns != 0) {
        uint64_t open = k->gen_ns + b->ttl_ns;

        if (k->miss_ns != 0 && k->miss_ns < open)
            open = k->miss_ns;
        window_add(b, open, now);
    }
    k->gen = gen;
    k->gen_ns = now;
    if (k->aim <= gen) {
        k->aim = gen;
        k->miss_ns = 0;
    }
}

/* A get issued while seen was the newest generation missed: seen has expired. */
static void key_missed(struct bench *b, struct key *k, uint64_t seen, uint64_t issue)
{
    uint64_t want = seen + 1;

    if (want > k->aim) {
        k->aim = want;
        k->miss_ns = issue;
        b->t.expiries++;
        if (seen == k->gen && k->gen_ns != 0 && issue > k->gen_ns) {
            b->t.life_sum_ns += issue - k->gen_ns;
            b->t.life_n++;
        }
    } else if (want == k->aim && k->miss_ns != 0 && issue < k->miss_ns) {
        k->miss_ns = issue;
    }
}

/* ---- requests ---- */

static void put(struct client *c, const void *p, size_t n)
{
    memcpy(c->obuf + c->olen, p, n);
    c->olen += n;
}

/* Writes what obuf holds; returns MG_ERR if c was closed. Leaves EV_WRITE armed if short. */
static int client_flush(struct client *c)
{
    struct bench *b = c->b;

    while (c->opos < c->olen) {
        ssize_t n = send(c->fd, c->obuf + c->opos, c->olen - c->opos, MSG_NOSIGNAL);

        if (n > 0) {
            c->opos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(b->loop, &c->wio);
            return MG_OK;
        }
        client_close(c, n < 0 ? strerror(errno) : "send returned 0");
        return MG_ERR;
    }
    c->olen = c->opos = 0;
    ev_io_stop(b->loop, &c->wio);
    return MG_OK;
}

/* Sends `set key 0 TTL n` with a value for generation gen built now. */
static void client_set(struct client *c, size_t key, uint64_t gen)
{
    const struct options *o = c->b->o;
    const struct key *k = &c->b->keys[key];
    char *v;
    size_t n;

    c->olen = c->opos = 0;
    put(c, "set ", 4);
    put(c, k->name, k->len);
    put(c, " 0 ", 3);
    c->olen += fmt_u64(c->obuf + c->olen, (uint64_t)o->ttl);
    put(c, " ", 1);
    c->olen += fmt_u64(c->obuf + c->olen, (uint64_t)o->value_size);
    put(c, "\r\n", 2);
    v = c->obuf + c->olen;
    memcpy(v, "g=", 2);
    n = 2 + fmt_u64(v + 2, gen);
    memcpy(v + n, " t=", 3);
    n += 3 + fmt_u64(v + n + 3, wall_ms());
    memset(v + n, '.', (size_t)o->value_size - n);
    v[n] = ' ';
    c->olen += (size_t)o->value_size;
    put(c, "\r\n", 2);
    c->key = key;
    c->writing = gen;
    c->wait = W_SET;
    c->since_ns = now_ns();
    client_flush(c);
}

static void client_get(struct client *c)
{
    struct bench *b = c->b;
    const struct key *k;

    if (!b->measuring || c->state != C_READY) {
        c->wait = W_IDLE;
        return;
    }
    c->key = (size_t)(rng_next(&b->rng) % (uint64_t)b->o->keys);
    k = &b->keys[c->key];
    c->olen = c->opos = 0;
    put(c, "get ", 4);
    put(c, k->name, k->len);
    put(c, "\r\n", 2);
    c->seen_at_issue = k->gen;
    c->wait = W_GET;
    c->issue_ns = c->since_ns = now_ns();
    client_flush(c);
}

/* After a request: think for a while, or ask again at once. */
static void client_next(struct client *c)
{
    struct bench *b = c->b;

    if (!b->measuring) {
        c->wait = W_IDLE;
        return;
    }
    if (b->o->think_ms > 0) {
        c->wait = W_THINK;
        ev_timer_stop(b->loop, &c->timer);
        ev_timer_set(&c->timer, b->o->think_ms / 1e3, 0.);
        ev_timer_start(b->loop, &c->timer);
        return;
    }
    client_get(c);
}

static void client_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct client *c = t->data;

    (void)loop;
    (void)revents;
    if (c->state != C_READY)
        return;
    if (c->wait == W_REGEN && c->b->measuring)
        client_set(c, c->key, c->writing);
    else if (c->wait == W_THINK)
        client_get(c);
    else
        c->wait = W_IDLE;
}

/* ---- replies ---- */

/* Reads "g=<gen> t=<ms> ..." from a value; MG_ERR if it is not one of ours. */
static int value_parse(const char *v, size_t len, uint64_t *gen, uint64_t *ms)
{
    size_t pos = 2;

    if (len < 2 || memcmp(v, "g=", 2) != 0 || parse_u64(v, len, &pos, gen) != MG_OK)
        return MG_ERR;
    if (len - pos < 3 || memcmp(v + pos, " t=", 3) != 0)
        return MG_ERR;
    pos += 3;
    return parse_u64(v, len, &pos, ms);
}

static void client_on_hit(struct client *c, const char *v, size_t len, uint64_t now)
{
    struct bench *b = c->b;
    struct key *k = &b->keys[c->key];
    uint64_t gen, ms, wall = wall_ms();

    b->t.hits++;
    if (value_parse(v, len, &gen, &ms) != MG_OK) {
        b->t.bad_values++;
        return;
    }
    if (wall > ms && wall - ms > (uint64_t)b->o->ttl * 1000)
        b->t.stale_hits++;
    if (gen < c->seen_at_issue)
        b->t.superseded++;
    key_stored(b, k, gen, now);
}

static void client_on_miss(struct client *c)
{
    struct bench *b = c->b;

    b->t.misses++;
    b->t.regens++;
    key_missed(b, &b->keys[c->key], c->seen_at_issue, c->issue_ns);
    c->writing = c->seen_at_issue + 1;
    c->wait = W_REGEN;
    ev_timer_stop(b->loop, &c->timer);
    ev_timer_set(&c->timer, b->o->regen_ms / 1e3, 0.);
    ev_timer_start(b->loop, &c->timer);
}

/*
 * Returns the length of the complete get reply at the start of rbuf, 0 if
 * more bytes are needed, or -1 if it is malformed. On a hit, *val and *vlen
 * point at the data (borrowed from rbuf).
 */
static long get_reply_len(const struct client *c, const char **val, size_t *vlen)
{
    const char *nl = memchr(c->rbuf, '\n', c->rlen);
    size_t line, pos, need;
    uint64_t flags, bytes;

    *val = NULL;
    if (nl == NULL)
        return c->rlen == sizeof c->rbuf ? -1 : 0;
    line = (size_t)(nl - c->rbuf) + 1;
    if (line < 2 || c->rbuf[line - 2] != '\r')
        return -1;
    if (line - 2 < 6 || memcmp(c->rbuf, "VALUE ", 6) != 0)
        return (long)line; /* END, or an error line: the caller tells which */
    pos = 6;
    while (pos < line - 2 && c->rbuf[pos] != ' ')
        pos++;
    pos++;
    if (parse_u64(c->rbuf, line - 2, &pos, &flags) != MG_OK || pos >= line - 2)
        return -1;
    pos++;
    if (parse_u64(c->rbuf, line - 2, &pos, &bytes) != MG_OK || bytes > MAX_VALUE)
        return -1;
    need = line + (size_t)bytes + 2 + 5;
    if (c->rlen < need)
        return need > sizeof c->rbuf ? -1 : 0;
    if (memcmp(c->rbuf + line + bytes, "\r\nEND\r\n", 7) != 0)
        return -1;
    *val = c->rbuf + line;
    *vlen = (size_t)bytes;
    return (long)need;
}

/* Handles the reply to a get if complete; returns bytes consumed, 0 for "need more", -1 if closed.
 */
static long client_get_reply(struct client *c, uint64_t now)
{
    struct bench *b = c->b;
    const char *val;
    size_t vlen = 0;
    long n = get_reply_len(c, &val, &vlen);

    if (n < 0) {
        client_close(c, "malformed get reply");
        return -1;
    }
    if (n == 0)
        return 0;
    if (!b->measuring)
        return n;
    b->t.gets++;
    sample_add(b, c->issue_ns, now - c->issue_ns);
    if (val != NULL) {
        client_on_hit(c, val, vlen, now);
        client_next(c);
    } else if (n == 5 && memcmp(c->rbuf, "END\r\n", 5) == 0) {
        client_on_miss(c);
    } else {
        b->t.get_errors++;
        note(b, c, "get answered with an error");
        client_next(c);
    }
    return n;
}

static void prefill_next(struct client *c);

/* Handles the reply to a set if complete; returns bytes consumed, 0 for "need more", -1 if closed.
 */
static long client_set_reply(struct client *c, uint64_t now)
{
    struct bench *b = c->b;
    const char *nl = memchr(c->rbuf, '\n', c->rlen);
    size_t line;
    bool ok;

    if (nl == NULL) {
        if (c->rlen < sizeof c->rbuf)
            return 0;
        client_close(c, "reply line too long");
        return -1;
    }
    line = (size_t)(nl - c->rbuf) + 1;
    ok = line == 8 && memcmp(c->rbuf, "STORED\r\n", 8) == 0;
    if (ok)
        key_stored(b, &b->keys[c->key], c->writing, now);
    if (c->prefill) {
        if (!ok)
            b->t.prefill_errors++;
        b->prefill_left--;
        prefill_next(c);
        return (long)line;
    }
    if (!b->measuring)
        return (long)line;
    b->t.sets++;
    if (!ok) {
        b->t.set_errors++;
        note(b, c, "set not stored");
    }
    client_next(c);
    return (long)line;
}

static void client_on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct client *c = io->data;
    uint64_t now;
    long used;
    ssize_t n;

    (void)loop;
    (void)revents;
    n = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, 0);
    if (n == 0) {
        client_close(c, "closed by peer");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            client_close(c, strerror(errno));
        return;
    }
    c->rlen += (size_t)n;
    now = now_ns();
    if (c->wait == W_GET)
        used = client_get_reply(c, now);
    else if (c->wait == W_SET)
        used = client_set_reply(c, now);
    else
        used = -2;
    if (used == -2) {
        client_close(c, "reply with no request outstanding");
        return;
    }
    if (used <= 0)
        return;
    if ((size_t)used != c->rlen) {
        client_close(c, "more reply than one request asked for");
        return;
    }
    c->rlen = 0;
}

static void client_on_writable(struct ev_loop *loop, ev_io *io, int revents);

/* ---- connections ---- */

/* Marks c dead and releases its socket; never frees c (callers may still hold it). */
static void client_close(struct client *c, const char *why)
{
    struct bench *b = c->b;
    enum client_state was = c->state;

    if (was == C_DEAD)
        return;
    ev_io_stop(b->loop, &c->rio);
    ev_io_stop(b->loop, &c->wio);
    ev_timer_stop(b->loop, &c->timer);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = C_DEAD;
    note(b, c, why);
    if (was == C_CONNECTING || was == C_INIT) {
        b->t.conns_failed++;
        b->connecting -= was == C_CONNECTING;
        b->settled++;
        bench_connect_more(b);
        return;
    }
    b->ready--;
    if (!b->done)
        b->t.conns_lost++;
    if (c->prefill) {
        /* what it had not set yet stays unset: the run starts with those keys cold */
        size_t left = c->wait == W_SET ? 1 : 0;

        for (size_t k = c->prefill_next; k < (size_t)b->o->keys; k += b->prefill_stride)
            left++;
        b->t.prefill_errors += left;
        b->prefill_left = b->prefill_left > left ? b->prefill_left - left : 0;
        c->prefill = false;
        prefill_next(c);
    }
}

static void client_on_writable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct client *c = io->data;
    struct bench *b = c->b;
    int err = 0;
    socklen_t len = sizeof err;

    (void)loop;
    (void)revents;
    if (c->state != C_CONNECTING) {
        client_flush(c);
        return;
    }
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        client_close(c, strerror(err));
        return;
    }
    ev_io_stop(b->loop, &c->wio);
    c->state = C_READY;
    c->wait = W_IDLE;
    ev_io_start(b->loop, &c->rio);
    b->connecting--;
    b->settled++;
    b->ready++;
    bench_connect_more(b);
}

/* Starts a non-blocking connect; completion arrives as writability. */
static int client_connect(struct client *c)
{
    struct bench *b = c->b;
    const struct target *t = &b->o->targets[c->target];
    int one = 1;

    c->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return MG_ERR;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *)&t->addr, t->addrlen) < 0 && errno != EINPROGRESS)
        return MG_ERR;
    c->state = C_CONNECTING;
    c->since_ns = now_ns();
    b->connecting++;
    ev_io_set(&c->rio, c->fd, EV_READ);
    ev_io_set(&c->wio, c->fd, EV_WRITE);
    ev_io_start(b->loop, &c->wio);
    return MG_OK;
}

/* ---- phases ---- */

static void bench_stop(struct bench *b)
{
    if (b->done)
        return;
    b->done = true;
    b->measuring = false;
    b->was = b->phase;
    b->phase = P_DONE;
    b->stop_ns = now_ns();
    ev_break(b->loop, EVBREAK_ALL);
}

static void bench_on_run_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    bench_stop(t->data);
}

static void bench_on_hard_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct bench *b = t->data;

    (void)loop;
    (void)revents;
    fprintf(stderr, "herd: %s: hard time limit reached, stopping\n", b->o->label);
    b->hit_limit = true;
    bench_stop(b);
}

/* Closes clients whose connect or reply takes longer than allowed. */
static void bench_on_scan(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct bench *b = t->data;
    uint64_t now = now_ns();
    uint64_t ct = (uint64_t)(b->o->connect_timeout * 1e9), rt = (uint64_t)(b->o->timeout * 1e9);

    (void)loop;
    (void)revents;
    for (int i = 0; i < b->o->clients; i++) {
        struct client *c = &b->clients[i];

        if (c->state == C_CONNECTING && now - c->since_ns > ct)
            client_close(c, "connect timeout");
        else if (c->state == C_READY && (c->wait == W_GET || c->wait == W_SET) &&
                 now - c->since_ns > rt)
            client_close(c, "no reply within the timeout");
    }
    if (!b->done && b->ready == 0 && b->settled == b->o->clients) {
        fprintf(stderr, "herd: %s: no client left\n", b->o->label);
        bench_stop(b);
    }
}

static void bench_begin(struct bench *b)
{
    b->phase = P_RUN;
    b->measuring = true;
    b->start_ns = now_ns();
    ev_timer_init(&b->run_timer, bench_on_run_timer, b->o->duration, 0.);
    b->run_timer.data = b;
    ev_timer_start(b->loop, &b->run_timer);
    for (int i = 0; i < b->o->clients && b->measuring; i++)
        if (b->clients[i].state == C_READY)
            client_get(&b->clients[i]);
}

/* Sets this client's next prefill key, or starts the run once every key is set. */
static void prefill_next(struct client *c)
{
    struct bench *b = c->b;

    if (c->prefill && c->state == C_READY && c->prefill_next < (size_t)b->o->keys) {
        size_t k = c->prefill_next;

        c->prefill_next += b->prefill_stride;
        client_set(c, k, 1);
        return;
    }
    c->prefill = false;
    if (b->prefill_left == 0 && b->phase == P_PREFILL)
        bench_begin(b);
}

/* All connects settled: hand keys to ready clients round-robin and set generation 1 of each. */
static void bench_prefill(struct bench *b)
{
    int slot = 0;

    if (b->ready == 0) {
        fprintf(stderr, "herd: %s: no client could connect\n", b->o->label);
        bench_stop(b);
        return;
    }
    b->phase = P_PREFILL;
    b->prefill_left = (size_t)b->o->keys;
    b->prefill_stride = (size_t)b->ready;
    for (int i = 0; i < b->o->clients; i++) {
        struct client *c = &b->clients[i];

        if (c->state != C_READY)
            continue;
        c->prefill = (size_t)slot < (size_t)b->o->keys;
        c->prefill_next = (size_t)slot++;
    }
    for (int i = 0; i < b->o->clients && !b->done; i++)
        if (b->clients[i].prefill)
            prefill_next(&b->clients[i]);
}

/* Starts connects up to MAX_CONNECTING; once all have settled, the prefill. */
static void bench_connect_more(struct bench *b)
{
    if (b->connecting_more)
        return; /* a failed connect closes from inside the loop below */
    b->connecting_more = true;
    while (b->connecting < MAX_CONNECTING && b->next_connect < b->o->clients) {
        struct client *c = &b->clients[b->next_connect++];

        if (client_connect(c) != MG_OK)
            client_close(c, strerror(errno));
    }
    b->connecting_more = false;
    if (b->settled == b->o->clients && b->phase == P_CONNECT)
        bench_prefill(b);
}

/* ---- report ---- */

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;

    return x->from < y->from ? -1 : x->from > y->from;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* Sorts and merges the windows in place; returns how many disjoint ones are left. */
static size_t spans_merge(struct span *s, size_t n)
{
    size_t m = 0;

    if (n == 0)
        return 0;
    qsort(s, n, sizeof *s, cmp_span);
    for (size_t i = 1; i < n; i++) {
        if (s[i].from <= s[m].to) {
            if (s[i].to > s[m].to)
                s[m].to = s[i].to;
        } else {
            s[++m] = s[i];
        }
    }
    return m + 1;
}

static bool spans_contain(const struct span *s, size_t n, uint64_t t)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (s[mid].to < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && s[lo].from <= t;
}

/* Value at quantile q of a sorted array, in µs; 0 when empty. */
static double quantile_us(const uint32_t *a, size_t n, double q)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(q * (double)n);
    if ((double)i < q * (double)n)
        i++;
    i = i > 0 ? i - 1 : 0;
    return (double)a[i < n ? i : n - 1] / 1e3;
}

/* Windows still open when the run stopped end there. */
static void close_open_windows(struct bench *b)
{
    for (int i = 0; i < b->o->keys; i++) {
        const struct key *k = &b->keys[i];
        uint64_t open;

        if (k->gen_ns == 0)
            continue;
        open = k->gen_ns + b->ttl_ns;
        if (k->aim > k->gen && k->miss_ns != 0 && k->miss_ns < open)
            open = k->miss_ns;
        if (open < b->stop_ns)
            window_add(b, open, b->stop_ns);
    }
}

static double per(uint64_t a, uint64_t n)
{
    return n ? (double)a / (double)n : 0;
}

/* Prints the result line; returns MG_ERR only if memory for the latency split ran out. */
static int report(struct bench *b)
{
    const struct options *o = b->o;
    size_t nw, nin = 0, nout = 0;
    uint32_t *all = NULL, *in = NULL, *out = NULL;
    uint64_t covered = 0, run = b->stop_ns > b->start_ns ? b->stop_ns - b->start_ns : 0;
    double secs = (double)run / 1e9;
    const struct totals *t = &b->t;
    int rc = MG_ERR;

    close_open_windows(b);
    nw = spans_merge(b->wins, b->nwins);
    for (size_t i = 0; i < nw; i++)
        covered += b->wins[i].to - b->wins[i].from;
    all = malloc((b->nsamples + 1) * sizeof *all);
    in = malloc((b->nsamples + 1) * sizeof *in);
    out = malloc((b->nsamples + 1) * sizeof *out);
    if (all == NULL || in == NULL || out == NULL) {
        fprintf(stderr, "herd: out of memory for %zu samples\n", b->nsamples);
        goto done;
    }
    for (size_t i = 0; i < b->nsamples; i++) {
        const struct sample *s = &b->samples[i];

        all[i] = s->lat_ns;
        if (spans_contain(b->wins, nw, (uint64_t)s->at_us * 1000))
            in[nin++] = s->lat_ns;
        else
            out[nout++] = s->lat_ns;
    }
    qsort(all, b->nsamples, sizeof *all, cmp_u32);
    qsort(in, nin, sizeof *in, cmp_u32);
    qsort(out, nout, sizeof *out, cmp_u32);

    printf("herd target=%s gateways=%d clients=%d clients_ok=%d keys=%d ttl=%d regen_ms=%.0f"
           " think_ms=%g secs=%.2f",
           o->label, o->ntargets, o->clients, b->ready, o->keys, o->ttl, o->regen_ms, o->think_ms,
           secs);
    printf(" gets=%" PRIu64 " hits=%" PRIu64 " misses=%" PRIu64 " regens=%" PRIu64
           " expiries=%" PRIu64 " regen_per_expiry=%.2f miss_per_expiry=%.2f"
           " expiries_per_key_s=%.3f lifetime_ms=%.0f stale_hits=%" PRIu64
           " superseded_hits=%" PRIu64,
           t->gets, t->hits, t->misses, t->regens, t->expiries, per(t->regens, t->expiries),
           per(t->misses, t->expiries), secs > 0 ? (double)t->expiries / o->keys / secs : 0,
           per(t->life_sum_ns, t->life_n) / 1e6, t->stale_hits, t->superseded);
    printf(" p50_us=%.1f p99_us=%.1f p99_win_us=%.1f p99_steady_us=%.1f p50_win_us=%.1f"
           " p50_steady_us=%.1f max_us=%.1f win_gets=%zu steady_gets=%zu win_pct=%.1f",
           quantile_us(all, b->nsamples, 0.5), quantile_us(all, b->nsamples, 0.99),
           quantile_us(in, nin, 0.99), quantile_us(out, nout, 0.99), quantile_us(in, nin, 0.5),
           quantile_us(out, nout, 0.5), b->nsamples ? (double)all[b->nsamples - 1] / 1e3 : 0, nin,
           nout, run ? 100.0 * (double)covered / (double)run : 0);
    printf(" sets=%" PRIu64 " get_errors=%" PRIu64 " set_errors=%" PRIu64 " bad_values=%" PRIu64
           " prefill_errors=%" PRIu64 " conns_failed=%" PRIu64 " conns_lost=%" PRIu64
           " samples_dropped=%" PRIu64 " hit_limit=%d\n",
           t->sets, t->get_errors, t->set_errors, t->bad_values, t->prefill_errors, t->conns_failed,
           t->conns_lost, t->samples_dropped, b->hit_limit ? 1 : 0);
    fflush(stdout);
    rc = MG_OK;
done:
    free(all);
    free(in);
    free(out);
    return rc;
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: herd --target HOST:PORT [--target ...] [options]\n"
            "  --target HOST:PORT   a target (gateway or memcached); repeat for several;\n"
            "                       clients are spread round-robin; loopback only\n"
            "  --clients N          application clients, one connection each (default 150)\n"
            "  --keys K             hot keys (default 10)\n"
            "  --ttl S              exptime of every set, whole seconds (default 1)\n"
            "  --regen-ms MS        time a client spends regenerating after a miss (default 200)\n"
            "  --think-ms MS        pause after each completed request (default 0)\n"
            "  --duration SEC       measured run (default 10)\n"
            "  --value-size BYTES   value length, %d..%d (default 64)\n"
            "  --label NAME         target name in the result line (default \"target\")\n"
            "  --key-prefix STR     key prefix (default \"herd:<random>:\")\n"
            "  --connect-timeout S  per connect (default 2)\n"
            "  --timeout S          close a client whose reply takes this long (default 5)\n"
            "  --max-time S         hard limit for the whole process (default duration+60)\n"
            "  --seed N             PRNG seed (default from the clock)\n",
            MIN_VALUE, MAX_VALUE);
}

static int opt_num(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo) || !(v <= hi)) {
        fprintf(stderr, "herd: --%s wants a number in [%g, %g], got '%s'\n", name, lo, hi, s);
        return MG_ERR;
    }
    *out = v;
    return MG_OK;
}

static int opt_int(const char *name, const char *s, int lo, int hi, int *out)
{
    double v;

    if (opt_num(name, s, lo, hi, &v) != MG_OK)
        return MG_ERR;
    if (v != (double)(int)v) {
        fprintf(stderr, "herd: --%s wants an integer, got '%s'\n", name, s);
        return MG_ERR;
    }
    *out = (int)v;
    return MG_OK;
}

/* Resolves "host:port" or "[v6]:port" to a loopback address; anything else is refused. */
static int opt_target(struct options *o, const char *s)
{
    struct target *t;
    struct addrinfo hints, *res = NULL, *ai;
    char host[256];
    const char *colon = strrchr(s, ':');
    size_t hlen;
    int rc;

    if (o->ntargets == MAX_TARGETS) {
        fprintf(stderr, "herd: at most %d targets\n", MAX_TARGETS);
        return MG_ERR;
    }
    t = &o->targets[o->ntargets];
    hlen = colon ? (size_t)(colon - s) : 0;
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        s++;
        hlen -= 2;
    }
    if (colon == NULL || hlen == 0 || hlen >= sizeof host || colon[1] == '\0' ||
        strlen(s) >= sizeof t->text) {
        fprintf(stderr, "herd: --target wants HOST:PORT, got '%s'\n", s);
        return MG_ERR;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "herd: cannot resolve '%s': %s\n", s, gai_strerror(rc));
        return MG_ERR;
    }
    rc = MG_ERR;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (!addr_is_loopback(ai->ai_addr) || ai->ai_addrlen > sizeof t->addr)
            continue;
        memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
        t->addrlen = ai->ai_addrlen;
        snprintf(t->text, sizeof t->text, "%s:%s", host, colon + 1);
        o->ntargets++;
        rc = MG_OK;
        break;
    }
    freeaddrinfo(res);
    if (rc != MG_OK)
        fprintf(stderr, "herd: '%s' is not a loopback address; refusing\n", s);
    return rc;
}

static int opt_text(const char *name, const char *s, size_t max, char *out)
{
    if (strlen(s) > max || strpbrk(s, " \t\r\n") != NULL || s[0] == '\0') {
        fprintf(stderr, "herd: --%s: 1 to %zu bytes, no whitespace\n", name, max);
        return MG_ERR;
    }
    strcpy(out, s);
    return MG_OK;
}

enum {
    OPT_TARGET = 256,
    OPT_CLIENTS,
    OPT_KEYS,
    OPT_TTL,
    OPT_REGEN,
    OPT_THINK,
    OPT_DURATION,
    OPT_VSIZE,
    OPT_LABEL,
    OPT_PREFIX,
    OPT_CTIMEOUT,
    OPT_TIMEOUT,
    OPT_MAXTIME,
    OPT_SEED,
    OPT_HELP
};

static const struct option long_opts[] = {
    { "target", required_argument, NULL, OPT_TARGET },
    { "clients", required_argument, NULL, OPT_CLIENTS },
    { "keys", required_argument, NULL, OPT_KEYS },
    { "ttl", required_argument, NULL, OPT_TTL },
    { "regen-ms", required_argument, NULL, OPT_REGEN },
    { "think-ms", required_argument, NULL, OPT_THINK },
    { "duration", required_argument, NULL, OPT_DURATION },
    { "value-size", required_argument, NULL, OPT_VSIZE },
    { "label", required_argument, NULL, OPT_LABEL },
    { "key-prefix", required_argument, NULL, OPT_PREFIX },
    { "connect-timeout", required_argument, NULL, OPT_CTIMEOUT },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "max-time", required_argument, NULL, OPT_MAXTIME },
    { "seed", required_argument, NULL, OPT_SEED },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

static int opt_one(struct options *o, int opt, const char *arg)
{
    double v;

    switch (opt) {
    case OPT_TARGET:
        return opt_target(o, arg);
    case OPT_CLIENTS:
        return opt_int("clients", arg, 1, MAX_CLIENTS, &o->clients);
    case OPT_KEYS:
        return opt_int("keys", arg, 1, MAX_KEYS, &o->keys);
    case OPT_TTL:
        return opt_int("ttl", arg, 1, 3600, &o->ttl);
    case OPT_REGEN:
        return opt_num("regen-ms", arg, 0, 600000, &o->regen_ms);
    case OPT_THINK:
        return opt_num("think-ms", arg, 0, 600000, &o->think_ms);
    case OPT_DURATION:
        return opt_num("duration", arg, 0.1, 86400, &o->duration);
    case OPT_VSIZE:
        return opt_int("value-size", arg, MIN_VALUE, MAX_VALUE, &o->value_size);
    case OPT_LABEL:
        return opt_text("label", arg, MAX_LABEL, o->label);
    case OPT_PREFIX:
        return opt_text("key-prefix", arg, MAX_PREFIX, o->prefix);
    case OPT_CTIMEOUT:
        return opt_num("connect-timeout", arg, 0.01, 600, &o->connect_timeout);
    case OPT_TIMEOUT:
        return opt_num("timeout", arg, 0.01, 600, &o->timeout);
    case OPT_MAXTIME:
        return opt_num("max-time", arg, 1, 90000, &o->max_time);
    case OPT_SEED:
        if (opt_num("seed", arg, 0, 1e18, &v) != MG_OK)
            return MG_ERR;
        o->seed = (uint64_t)v;
        return MG_OK;
    default:
        return MG_ERR;
    }
}

/* Fills o from argv; returns MG_OK, MG_ERR (message printed), or 1 for --help. */
static int opt_parse(struct options *o, int argc, char **argv)
{
    int opt;

    memset(o, 0, sizeof *o);
    strcpy(o->label, "target");
    o->clients = 150;
    o->keys = 10;
    o->ttl = 1;
    o->regen_ms = 200;
    o->duration = 10;
    o->value_size = 64;
    o->connect_timeout = 2;
    o->timeout = 5;
    o->seed = now_ns() ^ ((uint64_t)getpid() << 32);
    while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (opt == OPT_HELP)
            return 1;
        if (opt == '?' || opt_one(o, opt, optarg) != MG_OK)
            return MG_ERR;
    }
    if (optind != argc || o->ntargets == 0) {
        fprintf(stderr, "herd: %s\n",
                o->ntargets == 0 ? "--target is required" : "stray arguments");
        return MG_ERR;
    }
    if (o->prefix[0] == '\0')
        snprintf(o->prefix, sizeof o->prefix, "herd:%08x:", (unsigned)(o->seed & 0xffffffffu));
    if (o->max_time == 0)
        o->max_time = o->duration + 60;
    return MG_OK;
}

/* Raises the descriptor limit as far as the hard limit allows; MG_ERR if still too low. */
static int raise_nofile(int clients)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)clients + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return MG_OK;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need) {
        fprintf(stderr, "herd: need %lu descriptors, the hard limit is %lu\n", (unsigned long)need,
                (unsigned long)rl.rlim_max);
        return MG_ERR;
    }
    return MG_OK;
}

/* ---- main ---- */

static int bench_init(struct bench *b, const struct options *o)
{
    memset(b, 0, sizeof *b);
    b->o = o;
    b->rng = (o->seed ^ 0x9E3779B97F4A7C15ull) | 1;
    b->ttl_ns = (uint64_t)o->ttl * 1000000000ull;
    b->loop = ev_loop_new(EVFLAG_AUTO);
    b->clients = calloc((size_t)o->clients, sizeof *b->clients);
    b->keys = calloc((size_t)o->keys, sizeof *b->keys);
    if (b->loop == NULL || b->clients == NULL || b->keys == NULL)
        return MG_ERR;
    for (int i = 0; i < o->keys; i++) {
        struct key *k = &b->keys[i];

        k->len = (size_t)snprintf(k->name, sizeof k->name, "%s%d", o->prefix, i);
    }
    for (int i = 0; i < o->clients; i++) {
        struct client *c = &b->clients[i];

        c->b = b;
        c->fd = -1;
        c->target = i % o->ntargets;
        ev_io_init(&c->rio, client_on_readable, -1, EV_READ);
        ev_io_init(&c->wio, client_on_writable, -1, EV_WRITE);
        ev_timer_init(&c->timer, client_on_timer, 1., 0.);
        c->rio.data = c->wio.data = c->timer.data = c;
    }
    return MG_OK;
}

static void bench_free(struct bench *b)
{
    for (int i = 0; b->clients != NULL && i < b->o->clients; i++)
        if (b->clients[i].fd >= 0)
            close(b->clients[i].fd);
    free(b->clients);
    free(b->keys);
    free(b->samples);
    free(b->wins);
    if (b->loop != NULL)
        ev_loop_destroy(b->loop);
}

int main(int argc, char **argv)
{
    static struct options o; /* the target table is large: keep it off the stack */
    static struct bench b;
    int rc = opt_parse(&o, argc, argv);

    if (rc != MG_OK) {
        usage(rc == 1 ? stdout : stderr);
        return rc == 1 ? 0 : 2;
    }
    rc = 1;
    if (raise_nofile(o.clients) != MG_OK)
        return 1;
    if (bench_init(&b, &o) != MG_OK) {
        fprintf(stderr, "herd: out of memory\n");
        goto done;
    }
    ev_timer_init(&b.hard_timer, bench_on_hard_timer, o.max_time, 0.);
    b.hard_timer.data = &b;
    ev_timer_start(b.loop, &b.hard_timer);
    ev_timer_init(&b.scan_timer, bench_on_scan, SCAN_INTERVAL, SCAN_INTERVAL);
    b.scan_timer.data = &b;
    ev_timer_start(b.loop, &b.scan_timer);
    bench_connect_more(&b);
    if (!b.done)
        ev_run(b.loop, 0);
    if (b.stop_ns == 0)
        b.stop_ns = now_ns();
    if (b.was != P_RUN) {
        fprintf(stderr, "herd: %s: the run never started (%" PRIu64 " of %d clients connected)\n",
                o.label, (uint64_t)b.ready, o.clients);
        goto done;
    }
    if (report(&b) == MG_OK && !b.hit_limit && b.ready > 0)
        rc = 0;
done:
    bench_free(&b);
    return rc;
}
