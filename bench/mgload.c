/* mgload: closed-loop load generator for the memcached text protocol (libev, loopback only). */

/*
 * Model. Each connection keeps up to --depth requests in flight (1 = strict
 * request/reply), issuing a new one as soon as a reply completes, so this is a
 * closed loop: throughput is what the target sustains at that concurrency, and
 * latency is measured from the moment a request is queued for sending to the
 * moment its last reply byte is read. Replies are matched to requests in order
 * (the text protocol has no opaque), so the parser must frame every reply
 * exactly: VALUE blocks are skipped by their byte count, END closes a get,
 * STORED a set. Anything else is an error.
 *
 * Phases: connect (at most MAX_CONNECTING connects in flight per loop, so a
 * large --idle does not overrun a listen backlog), optional prefill on its own
 * connections, then the measured run. Nothing here can wait forever: connects
 * and stalled pipelines time out, and every loop also has a hard time limit.
 * With --target-pid the server's CPU time and RSS are read from /proc at the
 * phase boundaries, so a script gets them without racing the run.
 *
 * Keys. Uniform over --keys by default; --zipf S draws key k (0-based) with
 * weight 1/(k+1)^S from a CDF built once in main (binary search per draw), so
 * key 0 is the most popular. --hot-share P sends a share P of requests to one
 * extra key, --hot-key (default <prefix>hot), whatever --zipf says; it has its
 * own value size (--hot-value-size, so a memcached keeps it in a slab class of
 * its own and `stats slabs` counts its hits exactly), is set by the prefill
 * like the others, and its requests get their own count and histogram. In a
 * multi-key get the hot key replaces the first key.
 *
 * Open loop: --rate R offers R requests per second (all connections together),
 * arriving as a Poisson process whatever the target does, so latency is what a
 * request sees at that load rather than the closed loop's queue at saturation.
 * Each arrival goes to a connection with fewer than --depth requests in flight;
 * with none free it waits (counted as "late") for the next one that frees up.
 * Latency is measured from the arrival, not the send, so a target that falls
 * behind is charged for the wait (no coordinated omission). A timerfd paces the
 * arrivals (the loop's own timers have millisecond resolution).
 *
 * Memory: every buffer is sized once when a connection is set up; the request
 * path allocates nothing. Latencies go to a log-linear histogram (HDR-style,
 * 128 linear steps per power of two, under 1% error) per thread, merged at the
 * end.
 */

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MAX_CONNS 100000
#define MAX_IDLE 200000
#define MAX_DEPTH 4096
#define MAX_MULTIGET 1000
#define MAX_VALUE_SIZE (1024 * 1024)
#define MAX_PREFIX 200
#define MAX_ZIPF_KEYS 10000000 /* 80 MB of CDF */
#define MAX_THREADS 64
#define MAX_CONNECTING 128 /* connects in flight per loop */
#define MAX_NOTES 5        /* failure messages printed per loop */
#define LOAD_BUF (64 * 1024)
#define IDLE_BUF 512 /* a VALUE line with a 200-byte prefix fits */
#define PREFILL_CONNS 16
#define PREFILL_DEPTH 32

/* Histogram of nanoseconds: exact below 2*HIST_SUB, then HIST_SUB buckets per octave. */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 36 /* values clamp at 2^36 ns, about 68 s */
#define HIST_LIMIT (1ull << HIST_MAX_EXP)
#define HIST_BUCKETS (2 * HIST_SUB + (HIST_MAX_EXP - HIST_SUB_BITS - 1) * HIST_SUB)

enum req_kind { REQ_GET, REQ_SET, REQ_VERSION };
enum conn_state { CONN_INIT, CONN_CONNECTING, CONN_READY, CONN_DEAD };
enum parse_state { PARSE_LINE, PARSE_DATA, PARSE_DATA_END };
enum result { RES_OK, RES_MISS, RES_ERR };

/* Parsed command line; filled once in main, read-only (and shared) afterwards. */
struct options {
    char host[256];
    int port;
    int conns, depth, threads, multiget, idle;
    double duration, connect_timeout, stall_timeout, max_time;
    uint64_t requests, keys, seed;
    unsigned ratio_get, ratio_set;
    unsigned hot_ratio_get, hot_ratio_set; /* the hot key's own mix (0:0: as --ratio) */
    size_t value_size, hot_value_size;
    double zipf, hot_share;
    double rate; /* --rate: offered requests per second (0: closed loop) */
    char prefix[MAX_PREFIX + 1];
    size_t prefix_len;
    char hot_key[MAX_PREFIX + 4]; /* --hot-key, or <prefix>hot */
    size_t hot_key_len;
    bool hot_value_set;
    bool prefill, prefill_only, idle_get, json;
    bool binary; /* --binary: memcached's binary protocol (bin_* below) */
    pid_t target_pid;
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total, sum, max;
};

struct stats {
    uint64_t ops, gets, sets, errors, misses;
    uint64_t hot_ops, hot_gets, hot_sets, hot_errors, hot_misses;
    uint64_t conns_failed, conns_lost;
    uint64_t idle_ok, idle_failed, idle_closed;
};

/* One request in flight; lives in its connection's ring. */
struct pending {
    uint64_t start_ns;
    uint16_t nkeys;
    uint8_t kind;
    bool hot; /* asks for the hot key */
};

/*
 * One TCP connection. Owned by its worker's conns array; its buffers and ring
 * are owned by it and freed only when the worker is torn down, so a connection
 * that dies inside a callback is only marked CONN_DEAD, never freed there.
 */
struct conn {
    struct worker *w;
    int fd;
    enum conn_state state;
    bool idle, was_ready, version_done, version_ok;
    ev_io rio, wio;
    ev_timer timer; /* connect timeout, then stall check */
    ev_tstamp last_activity;
    char *rbuf;
    size_t rcap, rlen;
    char *obuf;
    size_t ocap, olen, opos;
    struct pending *ring;
    unsigned ring_cap, rhead, rcount;
    enum parse_state pstate;
    uint64_t data_left;
    unsigned nvalues;
};

/* One event loop and the connections it drives; owned by main, run by one thread. */
struct worker {
    int id;
    const struct options *o;
    struct ev_loop *loop;
    struct conn *conns; /* load connections first, then idle ones */
    int nconns, nload, nidle;
    int next_connect, connecting, live_load, notes;
    unsigned depth;
    bool prefill, begun, done, measuring, hit_limit, idle_reported;
    uint64_t budget, issued, inflight, next_key, rng;
    uint64_t start_ns, stop_ns;
    ev_timer run_timer, hard_timer;
    /* --rate: this loop's share of arrivals, the next one's time, the arrivals waiting
     * for a free connection (a ring of their times), the timerfd that paces them */
    double rate;
    uint64_t next_ns, late, dropped;
    uint64_t *due;
    unsigned due_cap, due_head, due_count;
    int tfd, rr;
    ev_io tio;
    struct stats st;
    struct hist hist;
    struct hist hot_hist; /* the hot key's requests only (also in hist) */
    pthread_t tid;
};

static char *g_value; /* value bytes for every set, read-only after main sets it */
/* --zipf: g_zipf_cdf[k] = P(key <= k), built by main before any loop runs, then read-only. */
static double *g_zipf_cdf;
static size_t g_req_max; /* largest request we can build, for buffer sizing */

/*
 * What --target-pid saw of the server under test. cpu is utime+stime in
 * seconds; rss is VmRSS in KB; -1 when unread. rss_idle is written by the
 * loop holding the idle connections and read by main after the join.
 */
struct target_sample {
    double cpu;
    long rss;
};

static struct target_sample g_tgt_before = { -1, -1 }, g_tgt_idle = { -1, -1 };

static void conn_close(struct conn *c, const char *why);
static void conn_fill(struct conn *c);
static int conn_flush(struct conn *c);
static void worker_connect_more(struct worker *w);
static void worker_check_done(struct worker *w);

/*
 * Reads utime+stime and VmRSS of pid from /proc. Fields it cannot read stay
 * -1: the target may have exited, and a report with a gap beats no report.
 */
static struct target_sample target_sample(pid_t pid)
{
    struct target_sample ts = { -1, -1 };
    char path[64], buf[2048];
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    f = fopen(path, "r");
    if (f != NULL) {
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* The command name may hold spaces and ')': fields restart after the last ')'. */
        char *p = strrchr(buf, ')');
        unsigned long long ut, st;
        if (p != NULL &&
            sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
            ts.cpu = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    f = fopen(path, "r");
    if (f != NULL) {
        while (fgets(buf, sizeof buf, f) != NULL)
            if (sscanf(buf, "VmRSS: %ld", &ts.rss) == 1)
                break;
        fclose(f);
    }
    return ts;
}

/* ---- histogram ---- */

static unsigned hist_index(uint64_t v)
{
    unsigned e, shift;

    if (v >= HIST_LIMIT)
        v = HIST_LIMIT - 1;
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    e = 63u - (unsigned)__builtin_clzll(v);
    shift = e - HIST_SUB_BITS;
    return 2 * HIST_SUB + (e - HIST_SUB_BITS - 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* Returns the midpoint of bucket idx, the value a percentile reports. */
static uint64_t hist_value(unsigned idx)
{
    unsigned k, e, shift;
    uint64_t m;

    if (idx < 2 * HIST_SUB)
        return idx;
    k = idx - 2 * HIST_SUB;
    e = k / HIST_SUB + HIST_SUB_BITS + 1;
    shift = e - HIST_SUB_BITS;
    m = HIST_SUB + k % HIST_SUB;
    return (m << shift) + ((1ull << shift) >> 1);
}

static void hist_record(struct hist *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    h->total++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static void hist_merge(struct hist *dst, const struct hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    if (src->max > dst->max)
        dst->max = src->max;
}

/* Returns the value at quantile q (0..1) in ns, 0 for an empty histogram. */
static uint64_t hist_percentile(const struct hist *h, double q)
{
    double want = q * (double)h->total;
    uint64_t rank = (uint64_t)want, seen = 0;

    if (h->total == 0)
        return 0;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---- request building ---- */

/* Key number k, 0..keys-1; k == keys (HOT_KEY) is the hot key. */
#define HOT_KEY(o) ((o)->keys)

static size_t fmt_key(const struct options *o, char *out, uint64_t k)
{
    if (k == HOT_KEY(o)) {
        memcpy(out, o->hot_key, o->hot_key_len);
        return o->hot_key_len;
    }
    memcpy(out, o->prefix, o->prefix_len);
    return o->prefix_len + fmt_u64(out + o->prefix_len, k);
}

/* Draws a key number: uniform, or Zipf by binary search in g_zipf_cdf (first k with cdf >= u). */
static uint64_t draw_key(const struct options *o, uint64_t *rng)
{
    double u;
    uint64_t lo = 0, hi;

    if (g_zipf_cdf == NULL)
        return rng_next(rng) % o->keys;
    u = (double)(rng_next(rng) >> 11) * 0x1.0p-53;
    hi = o->keys - 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;

        if (g_zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* True for a request that goes to the hot key (one draw per request, only with --hot-share). */
static bool draw_hot(const struct options *o, uint64_t *rng)
{
    return o->hot_share > 0 && (double)(rng_next(rng) >> 11) * 0x1.0p-53 < o->hot_share;
}

/*
 * Builds the CDF of Zipf(s) over n keys into g_zipf_cdf; MG_ERR if out of memory.
 * Summed from the smallest weight up, so the rounding stays small at large n.
 */
static int zipf_init(uint64_t n, double s)
{
    double sum = 0;

    g_zipf_cdf = malloc((size_t)n * sizeof *g_zipf_cdf);
    if (g_zipf_cdf == NULL)
        return MG_ERR;
    for (uint64_t k = n; k-- > 0;)
        sum += pow((double)(k + 1), -s);
    double acc = 0;
    for (uint64_t k = 0; k < n; k++) {
        acc += pow((double)(k + 1), -s);
        g_zipf_cdf[k] = acc / sum;
    }
    g_zipf_cdf[n - 1] = 1.0; /* whatever the rounding, every draw lands */
    return MG_OK;
}

/* ---- the binary protocol (--binary) ---- */

#define BIN_HDR 24
enum { BIN_GET = 0x00, BIN_SET = 0x01, BIN_NOOP = 0x0a, BIN_VERSION = 0x0b, BIN_GETKQ = 0x0d };

static void put_be(char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (char)(v & 0xff);
}

/* A request header at out (opaque and CAS 0); returns BIN_HDR. */
static size_t bin_header(char *out, uint8_t op, size_t klen, uint8_t elen, size_t body)
{
    memset(out, 0, BIN_HDR);
    out[0] = (char)0x80;
    out[1] = (char)op;
    put_be(out + 2, klen, 2);
    out[4] = (char)elen;
    put_be(out + 8, body, 4);
    return BIN_HDR;
}

/* One key: a get; more: a getkq per key and a noop (memcached's multi-get). */
static size_t bin_build_get(const struct options *o, char *out, uint64_t first, unsigned nkeys)
{
    size_t n = 0;
    for (unsigned i = 0; i < nkeys; i++) {
        char *h = out + n;
        n += BIN_HDR;
        size_t kl =
            fmt_key(o, out + n, i == 0 && first == HOT_KEY(o) ? first : (first + i) % o->keys);
        bin_header(h, nkeys == 1 ? BIN_GET : BIN_GETKQ, kl, 0, kl);
        n += kl;
    }
    if (nkeys > 1)
        n += bin_header(out + n, BIN_NOOP, 0, 0, 0);
    return n;
}

static size_t bin_build_set(const struct options *o, char *out, uint64_t key)
{
    size_t vsize = key == HOT_KEY(o) ? o->hot_value_size : o->value_size;
    size_t kl = fmt_key(o, out + BIN_HDR + 8, key);
    bin_header(out, BIN_SET, kl, 8, 8 + kl + vsize);
    memset(out + BIN_HDR, 0, 8); /* flags 0, no expiry */
    memcpy(out + BIN_HDR + 8 + kl, g_value, vsize);
    return BIN_HDR + 8 + kl + vsize;
}

/*
 * Appends `get k..` with nkeys distinct consecutive keys from first; returns
 * bytes written. first may be HOT_KEY: the hot key, then keys 0, 1, ...
 */
static size_t build_get(const struct options *o, char *out, uint64_t first, unsigned nkeys)
{
    size_t n = 3;

    if (o->binary)
        return bin_build_get(o, out, first, nkeys);
    memcpy(out, "get", 3);
    for (unsigned i = 0; i < nkeys; i++) {
        out[n++] = ' ';
        n += fmt_key(o, out + n, i == 0 && first == HOT_KEY(o) ? first : (first + i) % o->keys);
    }
    memcpy(out + n, "\r\n", 2);
    return n + 2;
}

static size_t build_set(const struct options *o, char *out, uint64_t key)
{
    size_t n = 4;
    size_t vsize = key == HOT_KEY(o) ? o->hot_value_size : o->value_size;

    if (o->binary)
        return bin_build_set(o, out, key);
    memcpy(out, "set ", 4);
    n += fmt_key(o, out + n, key);
    memcpy(out + n, " 0 0 ", 5);
    n += 5;
    n += fmt_u64(out + n, vsize);
    memcpy(out + n, "\r\n", 2);
    n += 2;
    memcpy(out + n, g_value, vsize);
    n += vsize;
    memcpy(out + n, "\r\n", 2);
    return n + 2;
}

/* ---- connection ---- */

static void worker_note(struct worker *w, const struct conn *c, const char *why)
{
    if (w->done || w->notes >= MAX_NOTES)
        return;
    if (++w->notes == MAX_NOTES)
        fprintf(stderr, "mgload: loop %d: conn %d: %s (further messages suppressed)\n", w->id,
                (int)(c - w->conns), why);
    else
        fprintf(stderr, "mgload: loop %d: conn %d: %s\n", w->id, (int)(c - w->conns), why);
}

static void worker_idle_check(struct worker *w)
{
    uint64_t settled = w->st.idle_ok + w->st.idle_failed; /* closed ones counted in ok */

    if (w->nidle == 0 || w->idle_reported || settled < (uint64_t)w->nidle)
        return;
    w->idle_reported = true;
    if (w->o->target_pid > 0)
        g_tgt_idle = target_sample(w->o->target_pid);
    /* stderr, right away: a script sampling the target's RSS waits for this line. */
    fprintf(stderr, "idle_ready ok=%" PRIu64 " failed=%" PRIu64 "\n", w->st.idle_ok,
            w->st.idle_failed);
    fflush(stderr);
}

static bool worker_may_issue(const struct worker *w)
{
    if (!w->measuring || w->done)
        return false;
    return w->budget == 0 || w->issued < w->budget;
}

static void conn_push(struct conn *c, enum req_kind kind, unsigned nkeys, bool hot, uint64_t t)
{
    struct pending *p = &c->ring[(c->rhead + c->rcount) % c->ring_cap];

    if (c->rcount == 0)
        c->last_activity = ev_now(c->w->loop); /* an idle gap is not a stall */
    p->start_ns = t;
    p->nkeys = (uint16_t)nkeys;
    p->kind = (uint8_t)kind;
    p->hot = hot;
    c->rcount++;
    c->w->inflight++;
}

/* Makes room for one request at the end of obuf; false if it must drain first. */
static bool conn_room(struct conn *c, size_t need)
{
    if (c->ocap - c->olen >= need)
        return true;
    if (c->opos > 0) {
        memmove(c->obuf, c->obuf + c->opos, c->olen - c->opos);
        c->olen -= c->opos;
        c->opos = 0;
    }
    return c->ocap - c->olen >= need;
}

/* Queues one request whose clock starts at t. */
static void conn_issue(struct conn *c, uint64_t t)
{
    struct worker *w = c->w;
    const struct options *o = w->o;
    uint64_t r = rng_next(&w->rng);
    bool hot = !w->prefill && draw_hot(o, &w->rng);
    bool get = !w->prefill && (hot && o->hot_ratio_get + o->hot_ratio_set
                                   ? r % (o->hot_ratio_get + o->hot_ratio_set) < o->hot_ratio_get
                                   : r % (o->ratio_get + o->ratio_set) < o->ratio_get);

    if (get) {
        uint64_t first = hot ? HOT_KEY(o) : draw_key(o, &w->rng);
        c->olen += build_get(o, c->obuf + c->olen, first, (unsigned)o->multiget);
        conn_push(c, REQ_GET, (unsigned)o->multiget, hot, t);
    } else {
        /* The prefill's budget covers HOT_KEY last when there is a hot key. */
        uint64_t key = w->prefill ? w->next_key++ : hot ? HOT_KEY(o) : draw_key(o, &w->rng);
        c->olen += build_set(o, c->obuf + c->olen, key);
        conn_push(c, REQ_SET, 0, hot || key == HOT_KEY(o), t);
    }
    w->issued++;
}

/* Queues requests until depth is reached, the budget is spent or obuf is full; with
 * --rate, only arrivals that are due (oldest first), timed from their arrival. */
static void conn_fill(struct conn *c)
{
    struct worker *w = c->w;
    uint64_t t = 0;

    if (c->state != CONN_READY || c->idle)
        return;
    while (c->rcount < w->depth && worker_may_issue(w) && conn_room(c, g_req_max)) {
        if (w->rate > 0) {
            if (w->due_count == 0)
                return;
            uint64_t at = w->due[w->due_head], now = now_ns();
            w->due_head = (w->due_head + 1) % w->due_cap;
            w->due_count--;
            conn_issue(c, at < now ? at : now); /* one sent early is timed from its send */
            continue;
        }
        if (t == 0)
            t = now_ns();
        conn_issue(c, t);
    }
}

/* Writes what obuf holds. Returns MG_OK (maybe with EV_WRITE armed) or MG_ERR if closed. */
static int conn_flush(struct conn *c)
{
    struct worker *w = c->w;

    while (c->opos < c->olen) {
        ssize_t n = send(c->fd, c->obuf + c->opos, c->olen - c->opos, MSG_NOSIGNAL);

        if (n > 0) {
            c->opos += (size_t)n;
            c->last_activity = ev_now(w->loop);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(w->loop, &c->wio);
            return MG_OK;
        }
        conn_close(c, n < 0 ? strerror(errno) : "send returned 0");
        return MG_ERR;
    }
    c->olen = c->opos = 0;
    ev_io_stop(w->loop, &c->wio);
    return MG_OK;
}

/*
 * Marks c dead: closes the socket, counts what was in flight as errors and
 * settles the worker's bookkeeping. Never frees c (the caller may still hold it).
 */
static void conn_close(struct conn *c, const char *why)
{
    struct worker *w = c->w;
    bool was_connecting = c->state == CONN_CONNECTING;

    if (c->state == CONN_DEAD)
        return;
    ev_io_stop(w->loop, &c->rio);
    ev_io_stop(w->loop, &c->wio);
    ev_timer_stop(w->loop, &c->timer);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = CONN_DEAD;
    w->inflight -= c->rcount;
    if (c->idle) {
        if (c->version_ok)
            w->st.idle_closed++;
        else if (!c->version_done)
            w->st.idle_failed++;
        worker_idle_check(w);
    } else {
        if (!w->done)
            w->st.errors += c->rcount + 1; /* lost replies, plus the connection */
        if (c->was_ready)
            w->st.conns_lost++;
        else
            w->st.conns_failed++;
        w->live_load--;
    }
    c->rcount = 0;
    worker_note(w, c, why);
    if (was_connecting) {
        w->connecting--;
        worker_connect_more(w);
    }
    worker_check_done(w);
}

/* Settles the oldest request with result r; the ring entry is consumed. */
static void conn_complete(struct conn *c, uint64_t now, enum result r)
{
    struct worker *w = c->w;
    struct pending p = c->ring[c->rhead];

    c->rhead = (c->rhead + 1) % c->ring_cap;
    c->rcount--;
    c->nvalues = 0;
    w->inflight--;
    if (c->idle) {
        /* A miss is still an answer: the connection is open and served. */
        c->version_done = true;
        c->version_ok = r != RES_ERR;
        if (c->version_ok)
            w->st.idle_ok++;
        else
            w->st.idle_failed++;
        ev_timer_stop(w->loop, &c->timer); /* idle from now on: no stall check */
        worker_idle_check(w);
        return;
    }
    if (!w->measuring || w->done)
        return;
    if (p.kind == REQ_GET)
        w->st.gets++;
    else
        w->st.sets++;
    if (p.hot)
        *(p.kind == REQ_GET ? &w->st.hot_gets : &w->st.hot_sets) += 1;
    if (r == RES_ERR) {
        w->st.errors++;
        w->st.hot_errors += p.hot;
    } else {
        uint64_t lat = now > p.start_ns ? now - p.start_ns : 0;

        w->st.ops++;
        if (r == RES_MISS)
            w->st.misses++;
        hist_record(&w->hist, lat);
        if (p.hot) {
            w->st.hot_ops++;
            w->st.hot_misses += r == RES_MISS;
            hist_record(&w->hot_hist, lat);
        }
    }
    worker_check_done(w);
}

static bool line_is(const char *line, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len == n && memcmp(line, word, n) == 0;
}

/* "VALUE <key> <flags> <bytes>[ <cas>]": returns MG_OK and the data length. */
static int parse_value_line(const char *line, size_t len, uint64_t *bytes)
{
    size_t pos = 6;
    uint64_t flags;
    const char *sp = memchr(line + pos, ' ', len - pos);

    if (sp == NULL || sp == line + pos)
        return MG_ERR;
    pos = (size_t)(sp - line) + 1;
    if (parse_u64(line, len, &pos, &flags) != MG_OK || pos >= len)
        return MG_ERR;
    pos++;
    return parse_u64(line, len, &pos, bytes);
}

/* Handles one reply line (without CRLF). Returns MG_ERR if it closed c. */
static int conn_on_line(struct conn *c, const char *line, size_t len, uint64_t now)
{
    const struct pending *p;
    uint64_t bytes;

    if (c->rcount == 0) {
        conn_close(c, "reply with no request outstanding");
        return MG_ERR;
    }
    p = &c->ring[c->rhead];
    switch (p->kind) {
    case REQ_GET:
        if (len > 6 && memcmp(line, "VALUE ", 6) == 0) {
            if (parse_value_line(line, len, &bytes) != MG_OK) {
                conn_close(c, "malformed VALUE line");
                return MG_ERR;
            }
            c->nvalues++;
            c->data_left = bytes;
            c->pstate = PARSE_DATA;
            return MG_OK;
        }
        if (!line_is(line, len, "END"))
            conn_complete(c, now, RES_ERR);
        else if (c->nvalues > p->nkeys)
            conn_complete(c, now, RES_ERR);
        else
            conn_complete(c, now, c->nvalues < p->nkeys ? RES_MISS : RES_OK);
        return MG_OK;
    case REQ_SET:
        conn_complete(c, now, line_is(line, len, "STORED") ? RES_OK : RES_ERR);
        return MG_OK;
    default:
        conn_complete(c, now, len > 8 && memcmp(line, "VERSION ", 8) == 0 ? RES_OK : RES_ERR);
        return MG_OK;
    }
}

/* One binary response header (its body follows, skipped as a value's data is). Returns
 * MG_ERR if it closed c. */
static int bin_on_header(struct conn *c, const unsigned char *h, uint64_t now)
{
    if (c->rcount == 0 || h[0] != 0x81) {
        conn_close(c, h[0] != 0x81 ? "bad binary response magic"
                                   : "reply with no request outstanding");
        return MG_ERR;
    }
    const struct pending *p = &c->ring[c->rhead];
    uint16_t status = (uint16_t)(h[6] << 8 | h[7]);
    switch (p->kind) {
    case REQ_GET:
        if (h[1] == BIN_GETKQ) { /* a multi-get's hit; the noop ends it */
            c->nvalues++;
            return MG_OK;
        }
        if (h[1] == BIN_NOOP)
            conn_complete(c, now,
                          c->nvalues > p->nkeys   ? RES_ERR
                          : c->nvalues < p->nkeys ? RES_MISS
                                                  : RES_OK);
        else
            conn_complete(c, now, status == 0 ? RES_OK : status == 1 ? RES_MISS : RES_ERR);
        return MG_OK;
    default: /* set, version */
        conn_complete(c, now, status == 0 ? RES_OK : RES_ERR);
        return MG_OK;
    }
}

/* conn_parse for --binary: headers, then their bodies skipped (PARSE_DATA). */
static int conn_parse_bin(struct conn *c, uint64_t now)
{
    size_t pos = 0;

    while (pos < c->rlen && c->state == CONN_READY) {
        size_t avail = c->rlen - pos;
        if (c->pstate == PARSE_DATA) {
            size_t take = avail < c->data_left ? avail : (size_t)c->data_left;
            pos += take;
            c->data_left -= take;
            if (c->data_left == 0)
                c->pstate = PARSE_LINE;
            continue;
        }
        if (avail < BIN_HDR)
            break;
        const unsigned char *h = (const unsigned char *)c->rbuf + pos;
        pos += BIN_HDR;
        c->data_left = (uint64_t)h[8] << 24 | (uint64_t)h[9] << 16 | (uint64_t)h[10] << 8 | h[11];
        if (c->data_left)
            c->pstate = PARSE_DATA;
        if (bin_on_header(c, h, now) != MG_OK)
            return MG_ERR;
    }
    if (c->state != CONN_READY)
        return MG_ERR;
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
    return MG_OK;
}

/*
 * Consumes every complete reply element in rbuf and keeps the rest for the
 * next read. Returns MG_ERR if c was closed.
 */
static int conn_parse(struct conn *c, uint64_t now)
{
    size_t pos = 0;

    if (c->w->o->binary)
        return conn_parse_bin(c, now);
    while (pos < c->rlen && c->state == CONN_READY) {
        size_t avail = c->rlen - pos;

        if (c->pstate == PARSE_DATA) {
            size_t take = avail < c->data_left ? avail : (size_t)c->data_left;
            pos += take;
            c->data_left -= take;
            if (c->data_left == 0)
                c->pstate = PARSE_DATA_END;
        } else if (c->pstate == PARSE_DATA_END) {
            if (avail < 2)
                break;
            if (c->rbuf[pos] != '\r' || c->rbuf[pos + 1] != '\n') {
                conn_close(c, "value block not followed by CRLF");
                return MG_ERR;
            }
            pos += 2;
            c->pstate = PARSE_LINE;
        } else {
            char *line = c->rbuf + pos;
            char *nl = memchr(line, '\n', avail);
            size_t len;

            if (nl == NULL) {
                if (pos == 0 && c->rlen == c->rcap) {
                    conn_close(c, "reply line longer than the read buffer");
                    return MG_ERR;
                }
                break;
            }
            len = (size_t)(nl - line);
            pos += len + 1;
            if (len > 0 && line[len - 1] == '\r')
                len--;
            if (conn_on_line(c, line, len, now) != MG_OK)
                return MG_ERR;
        }
    }
    if (c->state != CONN_READY)
        return MG_ERR;
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
    return MG_OK;
}

static void conn_on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    ssize_t n;

    (void)revents;
    n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (n == 0) {
        conn_close(c, "closed by peer");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_close(c, strerror(errno));
        return;
    }
    c->rlen += (size_t)n;
    c->last_activity = ev_now(loop);
    if (conn_parse(c, now_ns()) != MG_OK)
        return;
    conn_fill(c);
    conn_flush(c);
}

static void conn_on_ready(struct conn *c)
{
    struct worker *w = c->w;

    ev_io_stop(w->loop, &c->wio);
    ev_timer_stop(w->loop, &c->timer);
    c->state = CONN_READY;
    c->was_ready = true;
    w->connecting--;
    ev_io_start(w->loop, &c->rio);
    c->last_activity = ev_now(w->loop);
    c->timer.repeat = w->o->stall_timeout;
    ev_timer_again(w->loop, &c->timer);
    if (c->idle && w->o->idle_get) {
        /* A proxy must route this one (and may not know `version` at all). */
        uint64_t key = (uint64_t)(c - w->conns) % w->o->keys;
        c->olen = build_get(w->o, c->obuf, key, 1);
        conn_push(c, REQ_GET, 1, false, now_ns());
    } else if (c->idle && w->o->binary) {
        c->olen = bin_header(c->obuf, BIN_VERSION, 0, 0, 0);
        conn_push(c, REQ_VERSION, 0, false, now_ns());
    } else if (c->idle) {
        memcpy(c->obuf, "version\r\n", 9);
        c->olen = 9;
        conn_push(c, REQ_VERSION, 0, false, now_ns());
    } else {
        conn_fill(c);
    }
    conn_flush(c); /* may close c; the connect slot is free either way */
    worker_connect_more(w);
}

static void conn_on_writable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    int err = 0;
    socklen_t len = sizeof err;

    (void)loop;
    (void)revents;
    if (c->state == CONN_CONNECTING) {
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0)
            conn_close(c, strerror(err));
        else
            conn_on_ready(c);
        return;
    }
    if (conn_flush(c) != MG_OK || c->olen != 0)
        return;
    conn_fill(c);
    conn_flush(c);
}

/* Connect timeout while connecting; afterwards, closes a pipeline that makes no progress. */
static void conn_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct conn *c = t->data;
    const struct options *o = c->w->o;
    ev_tstamp left;
    bool busy;

    (void)revents;
    if (c->state == CONN_CONNECTING) {
        conn_close(c, "connect timeout");
        return;
    }
    if (c->state != CONN_READY)
        return;
    busy = c->rcount > 0 || c->opos < c->olen;
    left = c->last_activity + o->stall_timeout - ev_now(loop);
    if (busy && left <= 0) {
        conn_close(c, "stalled: no reply within the timeout");
        return;
    }
    t->repeat = busy ? left : o->stall_timeout;
    ev_timer_again(loop, t);
}

/* Starts a non-blocking connect; completion arrives as writability. */
static int conn_start(struct conn *c)
{
    struct worker *w = c->w;
    const struct options *o = w->o;
    int one = 1;

    c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return MG_ERR;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addrlen) < 0 && errno != EINPROGRESS)
        return MG_ERR;
    c->state = CONN_CONNECTING;
    w->connecting++;
    ev_io_set(&c->rio, c->fd, EV_READ);
    ev_io_set(&c->wio, c->fd, EV_WRITE);
    ev_io_start(w->loop, &c->wio);
    ev_timer_set(&c->timer, o->connect_timeout, 0.);
    ev_timer_start(w->loop, &c->timer);
    return MG_OK;
}

/* --rate: the arrivals due by now (and those within PACE_EARLY_NS, which are
 * timed from their send) join the waiting ring and go out on free connections;
 * the timerfd is set for the next one. */
#define PACE_EARLY_NS 5000
static void worker_pace_arm(struct worker *w)
{
    struct itimerspec its = {
        { 0, 0 }, { (time_t)(w->next_ns / 1000000000ull), (long)(w->next_ns % 1000000000ull) }
    };

    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1;
    timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void worker_on_pace(struct ev_loop *loop, ev_io *io, int revents)
{
    struct worker *w = io->data;
    uint64_t expirations, now = now_ns();
    unsigned added = 0;

    (void)loop;
    (void)revents;
    if (read(w->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return;
    if (w->done || !w->measuring)
        return;
    while (w->next_ns <= now + PACE_EARLY_NS) {
        if (w->due_count == w->due_cap) {
            w->dropped++; /* the target is far behind: the waiting ring is full */
        } else {
            w->due[(w->due_head + w->due_count) % w->due_cap] = w->next_ns;
            w->due_count++;
            added++;
        }
        /* Poisson arrivals: exponential gaps with mean 1/rate */
        double u = ((double)(rng_next(&w->rng) >> 11) + 1.0) * 0x1.0p-53;
        w->next_ns += (uint64_t)(-log(u) / w->rate * 1e9) + 1;
    }
    /* round robin over the connections, so no one connection takes every arrival */
    for (int k = 0; k < w->nload && w->due_count > 0; k++) {
        struct conn *c = &w->conns[(w->rr + k) % w->nload];

        if (c->state != CONN_READY || c->rcount >= w->depth)
            continue;
        conn_fill(c);
        conn_flush(c);
    }
    w->rr = (w->rr + 1) % (w->nload > 0 ? w->nload : 1);
    /* arrivals that found no free connection wait for the next one that frees up */
    w->late += added < w->due_count ? added : w->due_count;
    worker_pace_arm(w);
}

/* ---- worker ---- */

static void worker_stop(struct worker *w)
{
    if (w->done)
        return;
    w->done = true;
    w->stop_ns = now_ns();
    if (w->tfd >= 0)
        ev_io_stop(w->loop, &w->tio);
    ev_break(w->loop, EVBREAK_ALL);
}

static void worker_check_done(struct worker *w)
{
    if (!w->begun || w->done)
        return;
    if (w->nload > 0 && w->live_load == 0)
        worker_stop(w);
    else if (w->budget != 0 && w->issued >= w->budget && w->inflight == 0)
        worker_stop(w);
}

static void worker_on_run_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    worker_stop(t->data);
}

static void worker_on_hard_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;

    (void)loop;
    (void)revents;
    fprintf(stderr, "mgload: loop %d: hard time limit reached, stopping\n", w->id);
    w->hit_limit = true;
    worker_stop(w);
}

/* All connects settled: start the clock and the load. */
static void worker_begin(struct worker *w)
{
    w->begun = true;
    w->measuring = true;
    w->start_ns = now_ns();
    if (!w->prefill && w->o->duration > 0) {
        ev_timer_init(&w->run_timer, worker_on_run_timer, w->o->duration, 0.);
        w->run_timer.data = w;
        ev_timer_start(w->loop, &w->run_timer);
    }
    if (w->rate > 0) {
        w->next_ns = w->start_ns;
        ev_io_init(&w->tio, worker_on_pace, w->tfd, EV_READ);
        w->tio.data = w;
        ev_io_start(w->loop, &w->tio);
        worker_pace_arm(w);
    }
    for (int i = 0; i < w->nload && !w->done && w->rate == 0; i++) {
        struct conn *c = &w->conns[i];

        if (c->state != CONN_READY)
            continue;
        conn_fill(c);
        conn_flush(c);
    }
    worker_check_done(w);
}

static void worker_connect_more(struct worker *w)
{
    while (w->connecting < MAX_CONNECTING && w->next_connect < w->nconns) {
        struct conn *c = &w->conns[w->next_connect++];

        if (conn_start(c) != MG_OK) {
            const char *why = strerror(errno);

            if (c->fd >= 0)
                close(c->fd);
            c->fd = -1;
            conn_close(c, why);
        }
    }
    if (!w->begun && w->next_connect == w->nconns && w->connecting == 0)
        worker_begin(w);
}

static int conn_init(struct worker *w, struct conn *c, bool idle)
{
    size_t bufsz = idle ? IDLE_BUF : LOAD_BUF;

    c->w = w;
    c->fd = -1;
    c->idle = idle;
    c->rcap = bufsz;
    c->ocap = idle ? IDLE_BUF : (g_req_max > LOAD_BUF ? g_req_max : LOAD_BUF);
    c->ring_cap = idle ? 1 : w->depth;
    c->rbuf = malloc(c->rcap);
    c->obuf = malloc(c->ocap);
    c->ring = calloc(c->ring_cap, sizeof *c->ring);
    if (c->rbuf == NULL || c->obuf == NULL || c->ring == NULL)
        return MG_ERR;
    ev_io_init(&c->rio, conn_on_readable, -1, EV_READ);
    ev_io_init(&c->wio, conn_on_writable, -1, EV_WRITE);
    ev_timer_init(&c->timer, conn_on_timer, 1., 0.);
    c->rio.data = c->wio.data = c->timer.data = c;
    return MG_OK;
}

/* Sets up a worker; returns MG_ERR on allocation failure (the caller frees). */
static int worker_init(struct worker *w, const struct options *o, int id, int nload, int nidle,
                       unsigned depth, bool prefill, uint64_t budget)
{
    w->id = id;
    w->o = o;
    w->nload = nload;
    w->nidle = nidle;
    w->nconns = nload + nidle;
    w->live_load = nload;
    w->depth = depth;
    w->prefill = prefill;
    w->budget = budget;
    w->rng = (o->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(id + 1))) | 1;
    w->tfd = -1;
    if (o->rate > 0 && !prefill && nload > 0) {
        w->rate = o->rate * nload / o->conns;
        w->due_cap = 1u << 16;
        w->due = malloc(w->due_cap * sizeof *w->due);
        w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (w->due == NULL || w->tfd < 0)
            return MG_ERR;
    }
    w->loop = ev_loop_new(EVFLAG_AUTO);
    w->conns = calloc((size_t)w->nconns, sizeof *w->conns);
    if (w->loop == NULL || (w->nconns > 0 && w->conns == NULL))
        return MG_ERR;
    for (int i = 0; i < w->nconns; i++)
        if (conn_init(w, &w->conns[i], i >= nload) != MG_OK)
            return MG_ERR;
    return MG_OK;
}

static void worker_free(struct worker *w)
{
    for (int i = 0; w->conns != NULL && i < w->nconns; i++) {
        struct conn *c = &w->conns[i];

        if (c->w == NULL)
            continue; /* never set up: calloc'd, fd is not ours */
        if (c->fd >= 0)
            close(c->fd);
        free(c->rbuf);
        free(c->obuf);
        free(c->ring);
    }
    free(w->conns);
    free(w->due);
    if (w->tfd >= 0)
        close(w->tfd);
    if (w->loop != NULL)
        ev_loop_destroy(w->loop);
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;

    if (w->rate > 0)
        prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0); /* pace to the microsecond, not 50 */
    ev_timer_init(&w->hard_timer, worker_on_hard_timer, w->o->max_time, 0.);
    w->hard_timer.data = w;
    ev_timer_start(w->loop, &w->hard_timer);
    worker_connect_more(w);
    if (!w->done)
        ev_run(w->loop, 0);
    if (w->stop_ns == 0)
        w->stop_ns = now_ns();
    if (w->start_ns == 0)
        w->start_ns = w->stop_ns;
    return NULL;
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mgload --port P [options]\n"
            "  --host H             target, must resolve to loopback (default 127.0.0.1)\n"
            "  --port P             target port (required)\n"
            "  --conns N            load connections (default 20; 0 allowed with --idle)\n"
            "  --depth D            requests in flight per connection (default 1)\n"
            "  --duration SEC       measured run length (default 10 unless --requests)\n"
            "  --requests N         stop after N requests (with --duration: first wins)\n"
            "  --ratio G:S          get:set mix (default 9:1)\n"
            "  --value-size BYTES   set value length (default 32)\n"
            "  --keys K             key space (default 10000)\n"
            "  --key-prefix STR     key prefix (default \"mgload:\")\n"
            "  --multiget M         keys per get (default 1)\n"
            "  --zipf S             key popularity Zipf(S) over --keys, key 0 the most popular\n"
            "                       (default 0: uniform)\n"
            "  --hot-share P        a share P (0..1) of requests goes to one extra key, the\n"
            "                       hot key; prints hot_* figures (count, p50, p99)\n"
            "  --hot-key KEY        the hot key's name (default <key-prefix>hot)\n"
            "  --hot-value-size B   the hot key's value length (default --value-size)\n"
            "  --hot-ratio G:S      the hot key's own get:set mix (default --ratio)\n"
            "  --prefill            set every key once before measuring\n"
            "  --prefill-only       set every key once, print prefill_keys/prefill_errors, exit\n"
            "  --idle N             also hold N idle connections (one `version` each) for\n"
            "                       the run; prints `idle_ready ...` on stderr once open\n"
            "  --idle-get           idle connections send one `get` of a key (not `version`)\n"
            "  --target-pid PID     report the server's CPU (target_cpu_us, from after the\n"
            "                       prefill to the end) and VmRSS (before connecting, once\n"
            "                       every idle connection was answered, at the end)\n"
            "  --threads T          event loops/threads to split --conns over (default 1)\n"
            "  --connect-timeout S  per connect (default 2)\n"
            "  --timeout S          close a connection whose replies stall this long (default 5)\n"
            "  --max-time S         hard limit per loop (default duration+60, or 600)\n"
            "  --seed N             PRNG seed (default from the clock)\n"
            "  --json               print one JSON object instead of key=value pairs\n"
            "  --binary             memcached's binary protocol: get (getkq.. noop with\n"
            "                       --multiget), set, version\n"
            "  --rate R             open loop: R requests/s in all, Poisson arrivals, each\n"
            "                       timed from its arrival; prints offered_rate, late\n"
            "                       (arrivals that waited for a free connection), dropped\n");
}

/* Parses an unsigned integer in [lo, hi]; returns MG_ERR with a message otherwise. */
static int opt_u64(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "mgload: --%s wants an integer in [%" PRIu64 ", %" PRIu64 "], got '%s'\n",
                name, lo, hi, s);
        return MG_ERR;
    }
    *out = v;
    return MG_OK;
}

static int opt_int(const char *name, const char *s, int lo, int hi, int *out)
{
    uint64_t v;

    if (opt_u64(name, s, (uint64_t)lo, (uint64_t)hi, &v) != MG_OK)
        return MG_ERR;
    *out = (int)v;
    return MG_OK;
}

static int opt_secs(const char *name, const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > 86400) {
        fprintf(stderr, "mgload: --%s wants seconds in (0, 86400], got '%s'\n", name, s);
        return MG_ERR;
    }
    *out = v;
    return MG_OK;
}

/* Parses a real number in [lo, hi]; returns MG_ERR with a message otherwise. */
static int opt_real(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "mgload: --%s wants a number in [%g, %g], got '%s'\n", name, lo, hi, s);
        return MG_ERR;
    }
    *out = v;
    return MG_OK;
}

static int opt_ratio(const char *name, const char *s, unsigned *get, unsigned *set)
{
    unsigned g, st;
    int used = 0;

    if (sscanf(s, "%u:%u%n", &g, &st, &used) != 2 || s[used] != '\0' || g > 1000000 ||
        st > 1000000 || g + st == 0) {
        fprintf(stderr, "mgload: --%s wants G:S (e.g. 9:1), got '%s'\n", name, s);
        return MG_ERR;
    }
    *get = g;
    *set = st;
    return MG_OK;
}

/* Resolves host:port and keeps the first loopback address; anything else is refused. */
static int opt_resolve(struct options *o)
{
    struct addrinfo hints, *res = NULL, *ai;
    char port[16];
    int rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", o->port);
    rc = getaddrinfo(o->host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "mgload: cannot resolve '%s': %s\n", o->host, gai_strerror(rc));
        return MG_ERR;
    }
    rc = MG_ERR;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (!addr_is_loopback(ai->ai_addr) || ai->ai_addrlen > sizeof o->addr)
            continue;
        memcpy(&o->addr, ai->ai_addr, ai->ai_addrlen);
        o->addrlen = ai->ai_addrlen;
        rc = MG_OK;
        break;
    }
    freeaddrinfo(res);
    if (rc != MG_OK)
        fprintf(stderr, "mgload: '%s' is not a loopback address; refusing\n", o->host);
    return rc;
}

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_CONNS,
    OPT_DEPTH,
    OPT_DURATION,
    OPT_REQUESTS,
    OPT_RATIO,
    OPT_VSIZE,
    OPT_KEYS,
    OPT_PREFIX,
    OPT_MULTIGET,
    OPT_PREFILL,
    OPT_IDLE,
    OPT_THREADS,
    OPT_CTIMEOUT,
    OPT_TIMEOUT,
    OPT_MAXTIME,
    OPT_SEED,
    OPT_JSON,
    OPT_HELP,
    OPT_PREFILL_ONLY,
    OPT_IDLE_GET,
    OPT_TARGET_PID,
    OPT_ZIPF,
    OPT_HOT_SHARE,
    OPT_HOT_RATIO,
    OPT_HOT_KEY,
    OPT_HOT_VSIZE,
    OPT_BINARY,
    OPT_RATE
};

static const struct option long_opts[] = {
    { "host", required_argument, NULL, OPT_HOST },
    { "port", required_argument, NULL, OPT_PORT },
    { "conns", required_argument, NULL, OPT_CONNS },
    { "depth", required_argument, NULL, OPT_DEPTH },
    { "duration", required_argument, NULL, OPT_DURATION },
    { "requests", required_argument, NULL, OPT_REQUESTS },
    { "ratio", required_argument, NULL, OPT_RATIO },
    { "value-size", required_argument, NULL, OPT_VSIZE },
    { "keys", required_argument, NULL, OPT_KEYS },
    { "key-prefix", required_argument, NULL, OPT_PREFIX },
    { "multiget", required_argument, NULL, OPT_MULTIGET },
    { "prefill", no_argument, NULL, OPT_PREFILL },
    { "prefill-only", no_argument, NULL, OPT_PREFILL_ONLY },
    { "idle-get", no_argument, NULL, OPT_IDLE_GET },
    { "target-pid", required_argument, NULL, OPT_TARGET_PID },
    { "zipf", required_argument, NULL, OPT_ZIPF },
    { "hot-share", required_argument, NULL, OPT_HOT_SHARE },
    { "hot-ratio", required_argument, NULL, OPT_HOT_RATIO },
    { "hot-key", required_argument, NULL, OPT_HOT_KEY },
    { "hot-value-size", required_argument, NULL, OPT_HOT_VSIZE },
    { "idle", required_argument, NULL, OPT_IDLE },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "connect-timeout", required_argument, NULL, OPT_CTIMEOUT },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "max-time", required_argument, NULL, OPT_MAXTIME },
    { "seed", required_argument, NULL, OPT_SEED },
    { "json", no_argument, NULL, OPT_JSON },
    { "binary", no_argument, NULL, OPT_BINARY },
    { "rate", required_argument, NULL, OPT_RATE },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

static int opt_one(struct options *o, int opt, const char *arg)
{
    uint64_t v;

    switch (opt) {
    case OPT_HOST:
        if (strlen(arg) >= sizeof o->host) {
            fprintf(stderr, "mgload: --host too long\n");
            return MG_ERR;
        }
        strcpy(o->host, arg);
        return MG_OK;
    case OPT_PORT:
        return opt_int("port", arg, 1, 65535, &o->port);
    case OPT_CONNS:
        return opt_int("conns", arg, 0, MAX_CONNS, &o->conns);
    case OPT_DEPTH:
        return opt_int("depth", arg, 1, MAX_DEPTH, &o->depth);
    case OPT_DURATION:
        return opt_secs("duration", arg, &o->duration);
    case OPT_REQUESTS:
        return opt_u64("requests", arg, 1, UINT64_MAX / 2, &o->requests);
    case OPT_RATIO:
        return opt_ratio("ratio", arg, &o->ratio_get, &o->ratio_set);
    case OPT_VSIZE:
        if (opt_u64("value-size", arg, 0, MAX_VALUE_SIZE, &v) != MG_OK)
            return MG_ERR;
        o->value_size = (size_t)v;
        return MG_OK;
    case OPT_KEYS:
        return opt_u64("keys", arg, 1, UINT64_MAX / 2, &o->keys);
    case OPT_PREFIX:
        if (strlen(arg) > MAX_PREFIX || strpbrk(arg, " \t\r\n") != NULL) {
            fprintf(stderr, "mgload: --key-prefix: at most %d bytes, no whitespace\n", MAX_PREFIX);
            return MG_ERR;
        }
        strcpy(o->prefix, arg);
        return MG_OK;
    case OPT_MULTIGET:
        return opt_int("multiget", arg, 1, MAX_MULTIGET, &o->multiget);
    case OPT_ZIPF:
        return opt_real("zipf", arg, 0, 10, &o->zipf);
    case OPT_HOT_SHARE:
        return opt_real("hot-share", arg, 0, 1, &o->hot_share);
    case OPT_RATE:
        return opt_real("rate", arg, 1, 1e8, &o->rate);
    case OPT_HOT_RATIO:
        return opt_ratio("hot-ratio", arg, &o->hot_ratio_get, &o->hot_ratio_set);
    case OPT_HOT_KEY:
        if (strlen(arg) > MAX_PREFIX || arg[0] == '\0' || strpbrk(arg, " \t\r\n") != NULL) {
            fprintf(stderr, "mgload: --hot-key: 1 to %d bytes, no whitespace\n", MAX_PREFIX);
            return MG_ERR;
        }
        strcpy(o->hot_key, arg);
        return MG_OK;
    case OPT_HOT_VSIZE:
        if (opt_u64("hot-value-size", arg, 0, MAX_VALUE_SIZE, &v) != MG_OK)
            return MG_ERR;
        o->hot_value_size = (size_t)v;
        o->hot_value_set = true;
        return MG_OK;
    case OPT_PREFILL:
        o->prefill = true;
        return MG_OK;
    case OPT_PREFILL_ONLY:
        o->prefill = o->prefill_only = true;
        return MG_OK;
    case OPT_IDLE_GET:
        o->idle_get = true;
        return MG_OK;
    case OPT_TARGET_PID:
        if (opt_u64("target-pid", arg, 1, INT32_MAX, &v) != MG_OK)
            return MG_ERR;
        o->target_pid = (pid_t)v;
        return MG_OK;
    case OPT_IDLE:
        return opt_int("idle", arg, 0, MAX_IDLE, &o->idle);
    case OPT_THREADS:
        return opt_int("threads", arg, 1, MAX_THREADS, &o->threads);
    case OPT_CTIMEOUT:
        return opt_secs("connect-timeout", arg, &o->connect_timeout);
    case OPT_TIMEOUT:
        return opt_secs("timeout", arg, &o->stall_timeout);
    case OPT_MAXTIME:
        return opt_secs("max-time", arg, &o->max_time);
    case OPT_SEED:
        return opt_u64("seed", arg, 0, UINT64_MAX, &o->seed);
    case OPT_JSON:
        o->json = true;
        return MG_OK;
    case OPT_BINARY:
        o->binary = true;
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
    strcpy(o->host, "127.0.0.1");
    strcpy(o->prefix, "mgload:");
    o->conns = 20;
    o->depth = 1;
    o->threads = 1;
    o->multiget = 1;
    o->ratio_get = 9;
    o->ratio_set = 1;
    o->value_size = 32;
    o->keys = 10000;
    o->connect_timeout = 2;
    o->stall_timeout = 5;
    o->seed = now_ns();
    while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (opt == OPT_HELP)
            return 1;
        if (opt == '?' || opt_one(o, opt, optarg) != MG_OK)
            return MG_ERR;
    }
    if (optind != argc || o->port == 0) {
        fprintf(stderr, "mgload: %s\n", o->port == 0 ? "--port is required" : "stray arguments");
        return MG_ERR;
    }
    if (o->conns == 0 && o->idle == 0 && !o->prefill_only) {
        fprintf(stderr, "mgload: nothing to do (--conns 0 and no --idle)\n");
        return MG_ERR;
    }
    if ((uint64_t)o->multiget > o->keys) {
        fprintf(stderr, "mgload: --multiget larger than --keys\n");
        return MG_ERR;
    }
    if (o->zipf > 0 && o->keys > MAX_ZIPF_KEYS) {
        fprintf(stderr, "mgload: --zipf takes at most %d keys\n", MAX_ZIPF_KEYS);
        return MG_ERR;
    }
    o->prefix_len = strlen(o->prefix);
    if (o->hot_key[0] == '\0')
        snprintf(o->hot_key, sizeof o->hot_key, "%shot", o->prefix);
    o->hot_key_len = strlen(o->hot_key);
    if (!o->hot_value_set)
        o->hot_value_size = o->value_size;
    if (o->duration == 0 && o->requests == 0)
        o->duration = 10;
    if (o->max_time == 0)
        o->max_time = o->duration > 0 ? o->duration + 60 : 600;
    if (o->threads > o->conns)
        o->threads = o->conns > 0 ? o->conns : 1;
    return opt_resolve(o);
}

/* Raises the descriptor limit as far as the hard limit allows; MG_ERR if still too low. */
static int raise_nofile(const struct options *o)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)o->conns + (rlim_t)o->idle + PREFILL_CONNS + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return MG_OK;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need) {
        fprintf(stderr, "mgload: need %lu descriptors, the hard limit is %lu\n",
                (unsigned long)need, (unsigned long)rl.rlim_max);
        return MG_ERR;
    }
    return MG_OK;
}

/* ---- report ---- */

static void stats_add(struct stats *a, const struct stats *b)
{
    a->ops += b->ops;
    a->gets += b->gets;
    a->sets += b->sets;
    a->errors += b->errors;
    a->misses += b->misses;
    a->hot_ops += b->hot_ops;
    a->hot_gets += b->hot_gets;
    a->hot_sets += b->hot_sets;
    a->hot_errors += b->hot_errors;
    a->hot_misses += b->hot_misses;
    a->conns_failed += b->conns_failed;
    a->conns_lost += b->conns_lost;
    a->idle_ok += b->idle_ok;
    a->idle_failed += b->idle_failed;
    a->idle_closed += b->idle_closed;
}

struct kv {
    const char *key;
    char val[32];
};

/* CPU seconds this process has used so far, all threads. */
static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/*
 * Prints the one result line. cpu is what the measured phase cost us: near
 * 100% per thread means the generator, not the target, set the pace.
 */
static void report(const struct options *o, const struct worker *ws, int nw,
                   const struct stats *pre, double cpu, struct target_sample tgt_end)
{
    static struct hist h, hh; /* 30 KB each: keep them off the stack */
    struct stats st;
    struct kv kv[48];
    uint64_t start = UINT64_MAX, stop = 0;
    double secs;
    int n = 0;

    memset(&st, 0, sizeof st);
    memset(&h, 0, sizeof h);
    memset(&hh, 0, sizeof hh);
    for (int i = 0; i < nw; i++) {
        stats_add(&st, &ws[i].st);
        hist_merge(&h, &ws[i].hist);
        hist_merge(&hh, &ws[i].hot_hist);
        if (ws[i].start_ns < start)
            start = ws[i].start_ns;
        if (ws[i].stop_ns > stop)
            stop = ws[i].stop_ns;
    }
    secs = stop > start ? (double)(stop - start) / 1e9 : 0;

#define KV_U(k, v) \
    (kv[n].key = (k), snprintf(kv[n].val, sizeof kv[n].val, "%" PRIu64, (uint64_t)(v)), n++)
#define KV_F(k, v) \
    (kv[n].key = (k), snprintf(kv[n].val, sizeof kv[n].val, "%.1f", (double)(v)), n++)
    KV_U("ops", st.ops);
    KV_F("ops_s", secs > 0 ? (double)st.ops / secs : 0);
    KV_F("p50_us", (double)hist_percentile(&h, 0.50) / 1e3);
    KV_F("p90_us", (double)hist_percentile(&h, 0.90) / 1e3);
    KV_F("p99_us", (double)hist_percentile(&h, 0.99) / 1e3);
    KV_F("p999_us", (double)hist_percentile(&h, 0.999) / 1e3);
    KV_F("max_us", (double)h.max / 1e3);
    KV_F("mean_us", h.total ? (double)h.sum / (double)h.total / 1e3 : 0);
    KV_U("errors", st.errors);
    KV_U("misses", st.misses);
    KV_U("gets", st.gets);
    KV_U("sets", st.sets);
    KV_U("conns", o->conns);
    KV_U("conns_failed", st.conns_failed);
    KV_U("conns_lost", st.conns_lost);
    KV_F("elapsed_s", secs);
    KV_F("cpu_pct", secs > 0 ? 100.0 * cpu / secs : 0);
    if (o->hot_share > 0) {
        /* Only with --hot-share: other scripts parse the line as it was. */
        KV_U("hot_ops", st.hot_ops);
        KV_U("hot_gets", st.hot_gets);
        KV_U("hot_sets", st.hot_sets);
        KV_U("hot_errors", st.hot_errors);
        KV_U("hot_misses", st.hot_misses);
        KV_F("hot_p50_us", (double)hist_percentile(&hh, 0.50) / 1e3);
        KV_F("hot_p99_us", (double)hist_percentile(&hh, 0.99) / 1e3);
        KV_F("hot_p999_us", (double)hist_percentile(&hh, 0.999) / 1e3);
    }
    if (o->rate > 0) {
        uint64_t late = 0, dropped = 0;

        for (int i = 0; i < nw; i++) {
            late += ws[i].late;
            dropped += ws[i].dropped;
        }
        KV_F("offered_rate", o->rate);
        KV_U("late", late);
        KV_U("dropped", dropped);
    }
    if (o->idle > 0) {
        KV_U("idle_ok", st.idle_ok);
        KV_U("idle_failed", st.idle_failed);
        KV_U("idle_closed", st.idle_closed);
    }
    if (o->prefill)
        KV_U("prefill_errors", pre->errors);
    if (o->target_pid > 0) {
        /* Integer microseconds: KV_F keeps one decimal, too coarse for seconds. */
        if (g_tgt_before.cpu >= 0 && tgt_end.cpu >= 0)
            KV_U("target_cpu_us", (tgt_end.cpu - g_tgt_before.cpu) * 1e6 + 0.5);
        if (g_tgt_before.rss >= 0)
            KV_U("target_rss_kb_before", g_tgt_before.rss);
        if (o->idle > 0 && g_tgt_idle.rss >= 0)
            KV_U("target_rss_kb_idle", g_tgt_idle.rss);
        if (tgt_end.rss >= 0)
            KV_U("target_rss_kb_end", tgt_end.rss);
    }
#undef KV_U
#undef KV_F

    if (o->json)
        putchar('{');
    for (int i = 0; i < n; i++) {
        if (o->json)
            printf("%s\"%s\":%s", i ? "," : "", kv[i].key, kv[i].val);
        else
            printf("%s%s=%s", i ? " " : "", kv[i].key, kv[i].val);
    }
    printf(o->json ? "}\n" : "\n");
    fflush(stdout);
}

/* ---- main ---- */

/* Sets every key once over its own connections; returns MG_ERR if nothing could connect. */
static int run_prefill(const struct options *o, struct stats *out)
{
    struct worker *w = calloc(1, sizeof *w);
    int nconns = o->conns > 0 ? o->conns : 1;
    int rc = MG_ERR;

    if (w == NULL)
        return MG_ERR;
    if (nconns > PREFILL_CONNS)
        nconns = PREFILL_CONNS;
    uint64_t nkeys = o->keys + (o->hot_share > 0 ? 1 : 0); /* HOT_KEY is the last */

    if ((uint64_t)nconns > o->keys)
        nconns = (int)o->keys;
    if (worker_init(w, o, -1, nconns, 0, PREFILL_DEPTH, true, nkeys) == MG_OK) {
        worker_run(w);
        *out = w->st;
        rc = w->st.conns_failed == (uint64_t)nconns || w->hit_limit ? MG_ERR : MG_OK;
        if (w->issued < nkeys || w->st.errors > 0)
            fprintf(stderr,
                    "mgload: prefill: %" PRIu64 " of %" PRIu64 " keys sent, %" PRIu64 " errors\n",
                    w->issued, nkeys, w->st.errors);
    }
    worker_free(w);
    free(w);
    return rc;
}

/* Splits total into nw near-equal shares; share i. */
static uint64_t share(uint64_t total, int nw, int i)
{
    return total / (uint64_t)nw + ((uint64_t)i < total % (uint64_t)nw ? 1 : 0);
}

int main(int argc, char **argv)
{
    struct options o;
    struct stats pre;
    struct worker *ws = NULL;
    int rc = 1, nw = 0, started = 0;
    bool any_ready = false;
    uint64_t ops = 0;
    double cpu0;

    rc = opt_parse(&o, argc, argv);
    if (rc != MG_OK) {
        usage(rc == 1 ? stdout : stderr);
        return rc == 1 ? 0 : 1;
    }
    rc = 1;
    signal(SIGPIPE, SIG_IGN);
    if (raise_nofile(&o) != MG_OK)
        return 1;
    {
        size_t vmax = o.value_size > o.hot_value_size ? o.value_size : o.hot_value_size;
        size_t key_max = (o.prefix_len + 20 > o.hot_key_len ? o.prefix_len + 20 : o.hot_key_len);
        size_t get_max = 5 + (size_t)o.multiget * (key_max + 1);
        size_t set_max = 4 + key_max + 5 + 20 + 2 + vmax + 2;
        if (o.binary) { /* a header per key and a noop; a header and extras per set */
            get_max = (size_t)(o.multiget + 1) * (BIN_HDR + key_max);
            set_max = BIN_HDR + 8 + key_max + vmax;
        }

        g_value = malloc(vmax + 1);
        if (g_value == NULL)
            return 1;
        memset(g_value, 'x', vmax);
        g_req_max = get_max > set_max ? get_max : set_max;
    }
    if (o.zipf > 0 && zipf_init(o.keys, o.zipf) != MG_OK) {
        fprintf(stderr, "mgload: out of memory for the --zipf table\n");
        goto cleanup;
    }
    memset(&pre, 0, sizeof pre);
    if (o.prefill && run_prefill(&o, &pre) != MG_OK) {
        fprintf(stderr, "mgload: prefill failed\n");
        rc = 2;
        goto cleanup;
    }
    if (o.prefill_only) {
        printf(o.json ? "{\"prefill_keys\":%" PRIu64 ",\"prefill_errors\":%" PRIu64 "}\n"
                      : "prefill_keys=%" PRIu64 " prefill_errors=%" PRIu64 "\n",
               o.keys, pre.errors);
        rc = pre.errors == 0 ? 0 : 2;
        goto cleanup;
    }
    if (o.target_pid > 0)
        g_tgt_before = target_sample(o.target_pid);

    cpu0 = cpu_seconds();
    nw = o.threads;
    ws = calloc((size_t)nw, sizeof *ws);
    if (ws == NULL)
        goto cleanup;
    for (int i = 0; i < nw; i++) {
        if (worker_init(&ws[i], &o, i, (int)share((uint64_t)o.conns, nw, i), i == 0 ? o.idle : 0,
                        (unsigned)o.depth, false,
                        o.requests ? share(o.requests, nw, i) : 0) != MG_OK) {
            fprintf(stderr, "mgload: out of memory\n");
            nw = i + 1;
            goto cleanup;
        }
    }
    for (started = 1; started < nw; started++)
        if (pthread_create(&ws[started].tid, NULL, worker_run, &ws[started]) != 0)
            break;
    worker_run(&ws[0]);
    for (int i = 1; i < started; i++)
        pthread_join(ws[i].tid, NULL);
    if (started < nw) {
        fprintf(stderr, "mgload: could not start thread %d\n", started);
        nw = started; /* the others never ran; report what did */
    }

    report(&o, ws, nw, &pre, cpu_seconds() - cpu0,
           o.target_pid > 0 ? target_sample(o.target_pid) : g_tgt_before);
    rc = 0;
    for (int i = 0; i < nw; i++) {
        if (ws[i].hit_limit)
            rc = 2;
        ops += ws[i].st.ops;
        if (ws[i].st.conns_failed < (uint64_t)ws[i].nload || ws[i].st.idle_ok > 0)
            any_ready = true;
    }
    if (!any_ready || (o.conns > 0 && ops == 0))
        rc = 2; /* nothing was measured: let scripts notice */
cleanup:
    for (int i = 0; ws != NULL && i < nw; i++)
        worker_free(&ws[i]);
    free(ws);
    free(g_value);
    free(g_zipf_cdf);
    return rc;
}
