/* trace.c: the request trace, one line per key operation of the clients' requests.
 *
 * Format (v1), text, one record per line, fields separated by one space:
 *
 *   # mintgate-trace v1 sample=<s> hash_keys=<0|1> start=<unix time, seconds>
 *   <unix time, 6 decimals> <op> <key> <value_size> <ttl> <outcome>
 *
 * time: when the gateway read the request (its loop's clock); lines of different workers,
 * and of requests answered out of order, are not sorted by it. op: the classic name (get
 * gets gat gats set add replace append prepend cas delete incr decr touch); meta commands
 * map to them (mg get, ms set/add/append/prepend/replace by its M flag and cas with C, md
 * delete, ma incr/decr by its M flag); me and keyless commands are not traced. key: as the
 * client gave it (a meta b-flag key in its base64 form), or with hash_keys '#' and 16 hex
 * digits of its hash (trace_key). value_size: the bytes of the value stored, or returned
 * by a hit (0 when none). ttl: the exptime the client gave (classic, or meta's T flag; 0
 * when none). outcome: hit miss stored not_stored exists not_found deleted touched error
 * (an incr/decr answering a number is a hit, a failed backend an error).
 *
 * Sampling is by key: a key is traced when its hash is below sample * 2^64, so every
 * operation on a traced key is in the trace and a key never traced has none there.
 *
 * Workers never touch the file: each appends whole lines to its own bounded buffer (under
 * the buffer's mutex, uncontended but for the writer's swap); a line that does not fit is
 * dropped and counted. The writer thread swaps each buffer for its spare every 100 ms
 * and writes it out; at max_size the trace stops itself. */
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define TRACE_FLUSH_NS (100 * 1000 * 1000)

atomic_uint_fast32_t trace_session = 0;

/* What the running trace samples and writes: read by the workers (relaxed); a request that
 * reads them as the trace changes is traced under the old or the new settings. */
static atomic_uint_fast64_t threshold; /* keys whose hash is below it are traced */
static atomic_bool all_keys;           /* sample >= 1 */
static atomic_bool hashed;             /* hash_keys */

/* A worker's buffer. The worker appends (trace_put), the writer swaps data for its spare;
 * both under lock. data is the running trace's (allocated by trace_start, NULL when none). */
struct wbuf {
    pthread_mutex_t lock;
    char *data;
    size_t len;
    uint32_t lines;
    uint32_t session; /* the session data belongs to; lines of any other are not taken */
};
static struct wbuf *wbufs; /* trace_init .. trace_free: nwbufs of them, one per worker */
static int nwbufs;

enum trace_state { TS_OFF = 0, TS_RUNNING, TS_STOPPED, TS_MAX_SIZE, TS_WRITE_ERROR };
static const char *const state_names[] = { "off", "running", "stopped", "max_size", "write_error" };

/* Start and stop (and stats) hold ctl. The writer thread owns fd and spare while it runs;
 * it touches nothing else but the buffers (their locks) and the atomics below. */
static pthread_mutex_t ctl = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static bool stopping; /* under wake_lock: the writer drains a last time and ends */
static pthread_t writer;
static bool writer_joinable;
static int fd = -1;
static char *spare;
static uint32_t last_session;
static struct trace_opts cur;     /* the running (or last) trace's options */
static struct trace_opts cfg_now; /* the config's mg.trace as last applied */
static atomic_uint_fast64_t n_records, n_dropped, n_bytes, max_bytes;
static atomic_int state;

int trace_init(int nworkers)
{
    wbufs = calloc((size_t)(nworkers > 0 ? nworkers : 1), sizeof(*wbufs));
    if (wbufs == NULL)
        return MG_ERR;
    nwbufs = nworkers;
    for (int i = 0; i < nwbufs; i++)
        pthread_mutex_init(&wbufs[i].lock, NULL);
    return MG_OK;
}

uint64_t trace_hash(const char *key, size_t len)
{
    return mg_mix64(mg_fnv1a64(key, len));
}

bool trace_sampled(const char *key, size_t len)
{
    if (atomic_load_explicit(&all_keys, memory_order_relaxed))
        return true;
    return trace_hash(key, len) < atomic_load_explicit(&threshold, memory_order_relaxed);
}

size_t trace_key(char *dst, const char *key, size_t len)
{
    if (atomic_load_explicit(&hashed, memory_order_relaxed)) {
        static const char hex[] = "0123456789abcdef";
        /* mixed once more: the sampled keys' hashes are all below the threshold */
        uint64_t h = mg_mix64(trace_hash(key, len) ^ 0x9e3779b97f4a7c15ull);
        dst[0] = '#';
        for (int i = 0; i < 16; i++)
            dst[1 + i] = hex[(h >> (60 - 4 * i)) & 15];
        return 17;
    }
    if (len == 0 || len > TRACE_KEY_MAX)
        return 0;
    memcpy(dst, key, len);
    return len;
}

/* The first letter of meta flag f's token in args, or 0 when the flag is absent. */
static char meta_mode(struct mg_slice args, char f)
{
    struct mg_slice v;
    return mg_meta_flag(args, f, &v) && v.len ? v.p[0] : 0;
}

const char *trace_op_name(enum mg_cmd cmd, struct mg_slice args)
{
    struct mg_slice v;
    switch (cmd) {
    case MG_CMD_MG:
        return "get";
    case MG_CMD_MS:
        switch (meta_mode(args, 'M')) {
        case 'E':
        case 'e':
            return "add";
        case 'A':
        case 'a':
            return "append";
        case 'P':
        case 'p':
            return "prepend";
        case 'R':
        case 'r':
            return "replace";
        default:
            return mg_meta_flag(args, 'C', &v) ? "cas" : "set";
        }
    case MG_CMD_MD:
        return "delete";
    case MG_CMD_MA: {
        char m = meta_mode(args, 'M');
        return m == 'D' || m == 'd' || m == '-' ? "decr" : "incr";
    }
    default:
        return cmd >= MG_CMD_GET && cmd <= MG_CMD_TOUCH ? mg_cmd_name(cmd) : NULL;
    }
}

int64_t trace_meta_ttl(struct mg_slice args)
{
    struct mg_slice v;
    if (!mg_meta_flag(args, 'T', &v))
        return 0;
    bool neg = v.len && v.p[0] == '-';
    int64_t n = 0;
    for (uint32_t i = neg; i < v.len && i < 12 && v.p[i] >= '0' && v.p[i] <= '9'; i++)
        n = n * 10 + (v.p[i] - '0');
    return neg ? -n : n;
}

const char *trace_outcome(enum mg_cmd cmd, enum mg_rstatus s)
{
    switch (cmd) {
    case MG_CMD_GET:
    case MG_CMD_GETS:
    case MG_CMD_GAT:
    case MG_CMD_GATS:
    case MG_CMD_MG:
        return s == MG_R_VA || s == MG_R_HD ? "hit" : s == MG_R_EN ? "miss" : "error";
    case MG_CMD_TOUCH:
        return s == MG_R_HD ? "touched" : s == MG_R_EN || s == MG_R_NF ? "not_found" : "error";
    case MG_CMD_INCR:
    case MG_CMD_DECR:
    case MG_CMD_MA:
        if (s == MG_R_VA || s == MG_R_HD)
            return "hit";
        break;
    case MG_CMD_DELETE:
    case MG_CMD_MD:
        if (s == MG_R_HD)
            return "deleted";
        break;
    default:
        if (s == MG_R_HD)
            return "stored";
        break;
    }
    switch (s) {
    case MG_R_NS:
        return "not_stored";
    case MG_R_EX:
        return "exists";
    case MG_R_NF:
        return "not_found";
    default:
        return "error";
    }
}

int trace_line(struct buf *b, const struct trace_rec *r)
{
    size_t need = r->klen + TRACE_LINE_EXTRA;
    if (buf_reserve(b, need) != MG_OK)
        return MG_ERR;
    int n =
        snprintf(b->data + b->len, need, "%.6f %s %.*s %llu %lld %s\n", r->when, r->op,
                 (int)r->klen, r->key, (unsigned long long)r->vsize, (long long)r->ttl, r->outcome);
    if (n < 0 || (size_t)n >= need)
        return MG_ERR;
    b->len += (size_t)n;
    return MG_OK;
}

void trace_put(int wid, uint32_t session, const char *lines, size_t len, uint32_t nlines)
{
    if (wid < 0 || wid >= nwbufs || len == 0)
        return;
    struct wbuf *wb = &wbufs[wid];
    pthread_mutex_lock(&wb->lock);
    if (wb->session == session && wb->data != NULL) {
        if (wb->len + len <= TRACE_WBUF_SIZE) {
            memcpy(wb->data + wb->len, lines, len);
            wb->len += len;
            wb->lines += nlines;
        } else {
            atomic_fetch_add_explicit(&n_dropped, nlines, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&wb->lock);
}

static uint32_t count_lines(const char *p, size_t n)
{
    uint32_t k = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
        k++;
    return k;
}

/* Write p[0..n) to fd whole. Returns MG_OK or MG_ERR (errno kept). */
static int write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return MG_ERR;
        p += w;
        n -= (size_t)w;
    }
    return MG_OK;
}

/* The writer: the lines p[0..n) (lines of them) go to the file, as many whole ones as
 * max_size leaves room for. Returns MG_OK, or MG_ERR when the trace must end (the state
 * says why). */
static int write_lines(const char *p, size_t n, uint32_t lines)
{
    uint64_t bytes = atomic_load(&n_bytes), max = atomic_load(&max_bytes);
    size_t take = n;
    int rc = MG_OK;
    if (bytes + n > max) { /* the whole lines that fit */
        size_t room = max > bytes ? (size_t)(max - bytes) : 0;
        take = 0;
        for (size_t i = room; i > 0; i--)
            if (p[i - 1] == '\n') {
                take = i;
                break;
            }
        rc = MG_ERR;
        atomic_store(&state, TS_MAX_SIZE);
    }
    uint32_t took = take == n ? lines : count_lines(p, take);
    if (take && write_all(p, take) != MG_OK) {
        log_warn("trace: writing %s: %s; the trace stops", cur.path, strerror(errno));
        atomic_store(&state, TS_WRITE_ERROR);
        atomic_fetch_add(&n_dropped, lines);
        return MG_ERR;
    }
    atomic_fetch_add(&n_bytes, take);
    atomic_fetch_add(&n_records, took);
    atomic_fetch_add(&n_dropped, lines - took);
    return rc;
}

/* The writer: take every worker's lines and write them. last: the buffers are closed and
 * freed too; discard: their lines are dropped (counted), not written. Returns as
 * write_lines. */
static int drain(bool last, bool discard)
{
    int rc = MG_OK;
    for (int i = 0; i < nwbufs; i++) {
        struct wbuf *wb = &wbufs[i];
        pthread_mutex_lock(&wb->lock);
        char *d = wb->data;
        size_t n = wb->len;
        uint32_t lines = wb->lines;
        if (last) {
            wb->data = NULL;
            wb->session = 0;
        } else {
            wb->data = spare;
            spare = d;
        }
        wb->len = 0;
        wb->lines = 0;
        pthread_mutex_unlock(&wb->lock);
        if (n && (discard || rc != MG_OK))
            atomic_fetch_add(&n_dropped, lines);
        else if (n && write_lines(d, n, lines) != MG_OK)
            rc = MG_ERR;
        if (last)
            free(d);
    }
    return rc;
}

static void *writer_main(void *arg)
{
    MG_UNUSED(arg);
    bool last = false;
    int rc = MG_OK;
    while (!last && rc == MG_OK) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += TRACE_FLUSH_NS;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&wake_lock);
        while (!stopping && pthread_cond_timedwait(&wake, &wake_lock, &until) == 0)
            ;
        last = stopping;
        pthread_mutex_unlock(&wake_lock);
        rc = drain(last, false);
    }
    if (!last) { /* it ended itself (max_size, a write error): no new lines, none kept */
        atomic_store(&trace_session, 0);
        drain(true, true);
    }
    close(fd);
    fd = -1;
    return NULL;
}

/* Stop the running trace (ctl held). */
static void stop_locked(void)
{
    if (!writer_joinable)
        return;
    atomic_store(&trace_session, 0);
    pthread_mutex_lock(&wake_lock);
    stopping = true;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&wake_lock);
    pthread_join(writer, NULL);
    writer_joinable = false;
    stopping = false;
    free(spare);
    spare = NULL;
    int expect = TS_RUNNING;
    atomic_compare_exchange_strong(&state, &expect, TS_STOPPED);
}

void trace_stop(void)
{
    pthread_mutex_lock(&ctl);
    stop_locked();
    pthread_mutex_unlock(&ctl);
}

/* Give each worker a fresh buffer of session s (nothing is running). MG_ERR: out of memory. */
static int buffers_open(uint32_t s)
{
    char **d = calloc((size_t)nwbufs + 1, sizeof(*d));
    int ok = d != NULL;
    for (int i = 0; ok && i <= nwbufs; i++)
        ok = (d[i] = malloc(TRACE_WBUF_SIZE)) != NULL;
    if (!ok) {
        for (int i = 0; d && i <= nwbufs; i++)
            free(d[i]);
        free(d);
        return MG_ERR;
    }
    spare = d[nwbufs];
    for (int i = 0; i < nwbufs; i++) {
        pthread_mutex_lock(&wbufs[i].lock);
        free(wbufs[i].data); /* a stopped trace's: none, but for safety */
        wbufs[i].data = d[i];
        wbufs[i].len = 0;
        wbufs[i].lines = 0;
        wbufs[i].session = s;
        pthread_mutex_unlock(&wbufs[i].lock);
    }
    free(d);
    return MG_OK;
}

static void buffers_close(void)
{
    for (int i = 0; i < nwbufs; i++) {
        pthread_mutex_lock(&wbufs[i].lock);
        free(wbufs[i].data);
        wbufs[i].data = NULL;
        wbufs[i].session = 0;
        pthread_mutex_unlock(&wbufs[i].lock);
    }
    free(spare);
    spare = NULL;
}

static void set_sampling(const struct trace_opts *o)
{
    double t = o->sample * 18446744073709551616.0; /* 2^64 */
    atomic_store(&all_keys, t >= 18446744073709551615.0);
    atomic_store(&threshold, t >= 18446744073709551615.0 ? UINT64_MAX : t > 0 ? (uint64_t)t : 0);
    atomic_store(&hashed, o->hash_keys);
}

/* The file, its header, the buffers and the writer (ctl held). A running trace is stopped
 * once the new file is open (one that cannot be opened leaves it running); the file is
 * emptied only then, as the old trace may have been writing to it. */
static int start_locked(const struct trace_opts *o, char *err, size_t errlen)
{
    if (o->path[0] == '\0' || !(o->sample >= 0 && o->sample <= 1) || o->max_size == 0) {
        snprintf(err, errlen, "trace: bad options (a path, sample 0..1, max_size > 0)");
        return MG_ERR;
    }
    int nfd = open(o->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (nfd < 0) {
        snprintf(err, errlen, "trace: cannot open %s: %s", o->path, strerror(errno));
        return MG_ERR;
    }
    stop_locked();
    fd = nfd;
    char head[128];
    int hl = snprintf(head, sizeof(head), "# mintgate-trace v1 sample=%g hash_keys=%d start=%lld\n",
                      o->sample, o->hash_keys ? 1 : 0, (long long)time(NULL));
    uint32_t s = ++last_session ? last_session : ++last_session;
    const char *why = ftruncate(fd, 0) != 0 || write_all(head, (size_t)hl) != MG_OK
                          ? strerror(errno)
                      : buffers_open(s) != MG_OK ? "out of memory"
                                                 : NULL;
    if (why != NULL) {
        snprintf(err, errlen, "trace: %s: %s", o->path, why);
        close(fd);
        fd = -1;
        return MG_ERR;
    }
    cur = *o;
    atomic_store(&n_records, 0);
    atomic_store(&n_dropped, 0);
    atomic_store(&n_bytes, (uint64_t)hl);
    atomic_store(&max_bytes, o->max_size);
    set_sampling(o);
    /* the writer takes no signal: the main thread's loop handles them */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int prc = pthread_create(&writer, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        snprintf(err, errlen, "trace: cannot start the writer thread: %s", strerror(prc));
        buffers_close();
        close(fd);
        fd = -1;
        return MG_ERR;
    }
    writer_joinable = true;
    atomic_store(&state, TS_RUNNING);
    atomic_store(&trace_session, s);
    return MG_OK;
}

int trace_start(const struct trace_opts *o, char *err, size_t errlen)
{
    pthread_mutex_lock(&ctl);
    int rc = start_locked(o, err, errlen);
    pthread_mutex_unlock(&ctl);
    if (rc == MG_OK)
        log_info("trace: recording to %s (sample %g)", o->path, o->sample);
    return rc;
}

static bool same_opts(const struct trace_opts *a, const struct trace_opts *b)
{
    return a->given == b->given && strcmp(a->path, b->path) == 0 && a->sample == b->sample &&
           a->hash_keys == b->hash_keys && a->max_size == b->max_size;
}

int trace_apply(const struct trace_opts *o, char *err, size_t errlen)
{
    pthread_mutex_lock(&ctl);
    int rc = MG_OK;
    if (!same_opts(o, &cfg_now)) {
        bool had = cfg_now.given;
        cfg_now = *o;
        if (o->given) {
            rc = start_locked(o, err, errlen);
        } else if (had) {
            stop_locked();
        }
    }
    pthread_mutex_unlock(&ctl);
    return rc;
}

struct trace_opts trace_config_opts(void)
{
    pthread_mutex_lock(&ctl);
    struct trace_opts o = cfg_now;
    pthread_mutex_unlock(&ctl);
    if (!o.given) {
        o.hash_keys = false;
        o.max_size = TRACE_MAX_SIZE_DEFAULT;
    }
    return o;
}

void trace_render(struct buf *out)
{
    pthread_mutex_lock(&ctl);
    int st = atomic_load(&state);
    buf_printf(out, "STAT trace_active %d\r\n", atomic_load(&trace_session) != 0);
    buf_printf(out, "STAT trace_state %s\r\n", state_names[st]);
    buf_printf(out, "STAT trace_path %s\r\n", st == TS_OFF ? "-" : cur.path);
    buf_printf(out, "STAT trace_sample %g\r\n", st == TS_OFF ? 0 : cur.sample);
    buf_printf(out, "STAT trace_hash_keys %d\r\n", st != TS_OFF && cur.hash_keys);
    buf_printf(out, "STAT trace_max_size %llu\r\n",
               (unsigned long long)(st == TS_OFF ? 0 : cur.max_size));
    buf_printf(out, "STAT trace_records %llu\r\n", (unsigned long long)atomic_load(&n_records));
    buf_printf(out, "STAT trace_dropped %llu\r\n", (unsigned long long)atomic_load(&n_dropped));
    buf_printf(out, "STAT trace_bytes %llu\r\n", (unsigned long long)atomic_load(&n_bytes));
    pthread_mutex_unlock(&ctl);
}

void trace_free(void)
{
    trace_stop();
    for (int i = 0; i < nwbufs; i++) {
        free(wbufs[i].data);
        pthread_mutex_destroy(&wbufs[i].lock);
    }
    free(wbufs);
    wbufs = NULL;
    nwbufs = 0;
}
