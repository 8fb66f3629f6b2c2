/* backend.c: pipelined meta-protocol connections to memcached, with timeouts and ejection. */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "health.h"
#include "log.h"
#include "meta_render.h"
#include "proto_meta.h"
#include "request.h"
#include "worker.h"

/* Replies from a backend are trusted more than clients, but still bounded. */
#define BACKEND_VALUE_MAX (256u * 1024 * 1024)
#define BACKEND_READ_CHUNK (16 * 1024)
#define BACKEND_BUF_KEEP (64 * 1024)
/* A server up for less than this when it fails again is flapping: each such ejection
 * doubles its rest, up to 2^BACKEND_BACKOFF_MAX times retry_timeout. */
#define BACKEND_STEADY 30.0
#define BACKEND_BACKOFF_MAX 4u

static void backend_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void backend_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void backend_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void backend_fail(struct backend *b, enum op_fail why, const char *err);
static void backend_connect(struct backend *b);
static int backend_auth_first(struct backend *b);
static int backend_auth_reply(struct backend *b);

/* Every state change goes through here, so that st.down tells other threads (stats) what
 * they may not read from state itself. */
static void backend_set_state(struct backend *b, enum backend_state st)
{
    b->state = st;
    atomic_store_explicit(&b->st.down, st == BE_DOWN, memory_order_relaxed);
}

static struct backend *backend_new_one(struct worker *w, const struct server *srv)
{
    struct backend *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->name = strdup(srv->name);
    if (b->name == NULL) {
        free(b);
        return NULL;
    }
    b->w = w;
    b->server_id = srv->id;
    b->addr = srv->addr;
    b->addrlen = srv->addrlen;
    b->opts = srv->opts;
    b->health = health_get(srv->name);
    b->fd = -1;
    backend_set_state(b, BE_IDLE);
    ev_init(&b->rio, backend_read_cb);
    ev_init(&b->wio, backend_write_cb);
    ev_init(&b->timer, backend_timer_cb);
    b->rio.data = b->wio.data = b->timer.data = b;
    return b;
}

/* Close the socket and stop every watcher; the queue is left to the caller. */
static void backend_close(struct backend *b)
{
    ev_io_stop(b->w->loop, &b->rio);
    ev_io_stop(b->w->loop, &b->wio);
    ev_timer_stop(b->w->loop, &b->timer);
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
    b->wbuf.off = b->wbuf.len = 0;
    b->rbuf.off = b->rbuf.len = 0;
}

struct backend *backend_new(struct worker *w, const struct server *srv)
{
    struct backend *b = backend_new_one(w, srv);
    uint32_t n = srv->opts.connections;
    if (b == NULL || n <= 1)
        return b;
    b->conns = calloc(n, sizeof(*b->conns));
    if (b->conns == NULL) {
        backend_free(b);
        return NULL;
    }
    b->conns[0] = b;
    b->nconns = 1;
    for (uint32_t i = 1; i < n; i++) {
        struct backend *x = backend_new_one(w, srv);
        if (x == NULL) {
            backend_free(b);
            return NULL;
        }
        x->extra = true;
        b->conns[b->nconns++] = x;
    }
    return b;
}

uint32_t backend_queued(const struct backend *b)
{
    uint32_t n = b->nq;
    for (uint32_t i = 1; i < b->nconns; i++)
        n += b->conns[i]->nq;
    return n;
}

void backend_set_opts(struct backend *b, const struct pool_opts *o)
{
    b->opts = *o;
    for (uint32_t i = 1; i < b->nconns; i++)
        b->conns[i]->opts = *o;
}

void backend_free(struct backend *b)
{
    if (b == NULL)
        return;
    for (uint32_t i = 1; i < b->nconns; i++)
        backend_free(b->conns[i]);
    free(b->conns);
    b->conns = NULL;
    b->nconns = 0;
    /* Ops still queued belong to requests being torn down with the worker. */
    backend_fail(b, OP_FAIL_ERROR, "SERVER_ERROR gateway shutting down");
    backend_close(b);
    buf_free(&b->wbuf);
    buf_free(&b->rbuf);
    free(b->name);
    free(b);
}

const char *backend_state_name(const struct backend *b)
{
    if (b->probing)
        return "probing";
    switch (b->state) {
    case BE_IDLE:
        return b->failures ? "retrying" : "idle";
    case BE_CONNECTING:
        return "connecting";
    case BE_UP:
        return "up";
    case BE_DOWN:
        return "down";
    }
    return "?";
}

static inline int64_t now_us(const struct backend *b)
{
    return (int64_t)(ev_now(b->w->loop) * 1e6);
}

/* An ejected server's retry: connect and send `mn`; its MN brings the server back for
 * every worker (backend_read_cb), a failure ejects it again for longer (backend_fail).
 * Meanwhile the shared health says down, so no worker sends it a client request. */
static void backend_probe(struct backend *b)
{
    double bound = b->opts.connect_timeout + b->opts.timeout;
    log_info("backend %s: probing after ejection", b->name);
    health_down(b->health, (int64_t)((ev_now(b->w->loop) + bound) * 1e6));
    backend_set_state(b, BE_IDLE);
    b->probing = true;
    if (buf_append(&b->wbuf, "mn\r\n", 4) != MG_OK) {
        backend_fail(b, OP_FAIL_ERROR, "SERVER_ERROR out of memory");
        return;
    }
    backend_connect(b);
}

bool backend_usable_slow(struct backend *b)
{
    if (b->state != BE_DOWN) {
        /* another worker ejected the server (or is probing it) */
        int64_t until = health_until(b->health);
        if (until == 0)
            return true;
        if (now_us(b) < until)
            return false;
        if (b->state == BE_IDLE && !b->probing) { /* its rest is over: test it */
            backend_probe(b);
            return false;
        }
        if (b->state == BE_UP && !b->probing) /* this worker's connection kept working */
            health_up(b->health);
        return !b->probing;
    }
    if (ev_now(b->w->loop) >= b->retry_at && !health_is_down(b->health, now_us(b))) {
        if (b->health) { /* a probe decides; no client request is risked on it */
            backend_probe(b);
            return false;
        }
        log_info("backend %s: retry after ejection", b->name);
        backend_set_state(b, BE_IDLE);
        return true;
    }
    return false;
}

/* (Re)arm the timer for the connect timeout or the oldest op's read timeout. */
static void backend_arm_timer(struct backend *b)
{
    struct ev_loop *loop = b->w->loop;
    double after;
    if (b->state == BE_CONNECTING) {
        after = b->opts.connect_timeout;
    } else if (b->qhead) {
        after = b->qhead->sent + b->opts.timeout - ev_now(loop);
        if (after < 0.001)
            after = 0.001;
    } else if (b->probing) {
        after = b->opts.timeout;
    } else {
        ev_timer_stop(loop, &b->timer);
        return;
    }
    ev_timer_stop(loop, &b->timer);
    ev_timer_set(&b->timer, after, 0.);
    ev_timer_start(loop, &b->timer);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL, 0);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Start a non-blocking connect. Failures are handled through backend_fail. */
static void backend_connect(struct backend *b)
{
    int fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || set_nonblock(fd) < 0) {
        log_warn("backend %s: socket: %s", b->name, strerror(errno));
        if (fd >= 0)
            close(fd);
        backend_fail(b, OP_FAIL_DOWN, "SERVER_ERROR backend connect failed");
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    b->fd = fd;
    int rc = connect(fd, (struct sockaddr *)&b->addr, b->addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
        log_info("backend %s: connect: %s", b->name, strerror(errno));
        backend_fail(b, OP_FAIL_DOWN, "SERVER_ERROR backend connect failed");
        return;
    }
    backend_set_state(b, BE_CONNECTING);
    ev_io_set(&b->rio, fd, EV_READ);
    ev_io_set(&b->wio, fd, EV_WRITE);
    ev_io_start(b->w->loop, &b->wio);
    backend_arm_timer(b);
}

void backend_push(struct backend *b, struct op *op)
{
    op->be = b;
    op->next = NULL;
    op->sent = ev_now(b->w->loop);
    if (b->qtail)
        b->qtail->next = op;
    else
        b->qhead = op;
    b->qtail = op;
    b->nq++;
    STAT_INC(b->st.requests);
    STAT_INC(b->st.inflight);
    if (b->state == BE_IDLE) {
        backend_connect(b);
        return;
    }
    if (b->state == BE_UP && !ev_is_active(&b->timer))
        backend_arm_timer(b);
    worker_dirty_backend(b->w, b);
}

/* Tear the connection down and fail every queued op with err. Counts a failure and
 * ejects the backend when failure_limit is reached. */
static void backend_fail(struct backend *b, enum op_fail why, const char *err)
{
    bool had_conn = b->fd >= 0 || b->state == BE_CONNECTING;
    bool was_probing = b->probing;
    backend_close(b);
    b->probing = false;
    b->authing = false;
    struct op *q = b->qhead;
    b->qhead = b->qtail = NULL;
    b->nq = 0;
    if (had_conn || q) {
        STAT_INC(b->st.errors);
        if (why == OP_FAIL_TIMEOUT)
            STAT_INC(b->st.timeouts);
        b->failures++;
    }
    if (b->failures >= b->opts.failure_limit && b->opts.failure_limit > 0) {
        /* a server that fails again soon after coming back rests longer each time */
        ev_tstamp now = ev_now(b->w->loop);
        if (was_probing) { /* still down */
            if (b->streak < BACKEND_BACKOFF_MAX)
                b->streak++;
        } else if (b->state != BE_DOWN) {
            b->streak = b->up_since > 0 && now - b->up_since < BACKEND_STEADY ? b->streak + 1 : 0;
            STAT_INC(b->st.ejections);
        }
        double rest = b->opts.retry_timeout * (double)(1u << b->streak);
        if (was_probing)
            log_info("backend %s: probe failed, resting %.1fs: %s", b->name, rest, err);
        else if (b->state != BE_DOWN)
            log_warn("backend %s ejected for %.1fs: %s", b->name, rest, err);
        backend_set_state(b, BE_DOWN);
        b->retry_at = now + rest;
        health_down(b->health, (int64_t)(b->retry_at * 1e6));
    } else {
        backend_set_state(b, BE_IDLE);
    }
    while (q) {
        struct op *next = q->next;
        STAT_DEC(b->st.inflight);
        q->next = NULL;
        op_fail(q, why, err);
        q = next;
    }
}

void backend_flush(struct backend *b)
{
    if (b->state != BE_UP || buf_unread(&b->wbuf) == 0)
        return;
    ssize_t n = write(b->fd, buf_head(&b->wbuf), buf_unread(&b->wbuf));
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            ev_io_start(b->w->loop, &b->wio);
            return;
        }
        log_info("backend %s: write: %s", b->name, strerror(errno));
        backend_fail(b, OP_FAIL_ERROR, "SERVER_ERROR backend write failed");
        return;
    }
    STAT_INC(b->st.writes);
    b->wbuf.off += (size_t)n;
    if (buf_unread(&b->wbuf) == 0) {
        b->wbuf.off = b->wbuf.len = 0;
        if (b->wbuf.cap > BACKEND_BUF_KEEP)
            buf_reset(&b->wbuf, BACKEND_BUF_KEEP);
        ev_io_stop(b->w->loop, &b->wio);
    } else {
        ev_io_start(b->w->loop, &b->wio);
    }
}

static void backend_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    MG_UNUSED(loop);
    MG_UNUSED(revents);
    struct backend *b = w->data;
    if (b->state == BE_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            log_info("backend %s: connect: %s", b->name, strerror(err));
            backend_fail(b, OP_FAIL_DOWN, "SERVER_ERROR backend connect failed");
            return;
        }
        backend_set_state(b, BE_UP);
        if (b->opts.auth_len && backend_auth_first(b) != MG_OK) {
            backend_fail(b, OP_FAIL_ERROR, "SERVER_ERROR out of memory");
            return;
        }
        ev_io_start(b->w->loop, &b->rio);
        backend_arm_timer(b);
    }
    ev_io_stop(b->w->loop, &b->wio);
    backend_flush(b);
}

/* A new connection to a server that wants memcached's text auth: the auth set goes before
 * the commands already rendered, and its answer comes first (backend_auth_reply). Returns
 * MG_OK or MG_ERR (out of memory). */
static int backend_auth_first(struct backend *b)
{
    struct buf nb = { 0 };
    int rc = meta_render_auth(&nb, b->opts.auth, b->opts.auth_len);
    if (rc == MG_OK)
        rc = buf_append(&nb, buf_head(&b->wbuf), buf_unread(&b->wbuf));
    if (rc != MG_OK) {
        buf_free(&nb);
        return MG_ERR;
    }
    buf_free(&b->wbuf);
    b->wbuf = nb;
    b->authing = true;
    return MG_OK;
}

/* The auth's answer at the head of b's read buffer: STORED lets the connection serve.
 * Returns MG_OK (consumed), MG_EAGAIN (not all there), or MG_ERR (refused: b failed). */
static int backend_auth_reply(struct backend *b)
{
    const char *p = buf_head(&b->rbuf);
    const char *nl = memchr(p, '\n', buf_unread(&b->rbuf));
    if (nl == NULL && buf_unread(&b->rbuf) < 512)
        return MG_EAGAIN;
    size_t n = nl ? (size_t)(nl - p) + 1 : buf_unread(&b->rbuf);
    if (n == 8 && memcmp(p, "STORED\r\n", 8) == 0) {
        b->rbuf.off += n;
        b->authing = false;
        return MG_OK;
    }
    char shown[96];
    log_warn("backend %s: authentication refused: %s", b->name,
             log_quote(shown, sizeof(shown), p, n));
    backend_fail(b, OP_FAIL_ERROR, "SERVER_ERROR backend authentication failed");
    return MG_ERR;
}

static void backend_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    MG_UNUSED(loop);
    MG_UNUSED(revents);
    struct backend *b = w->data;
    if (buf_reserve(&b->rbuf, BACKEND_READ_CHUNK) != MG_OK) {
        backend_fail(b, OP_FAIL_ERROR, "SERVER_ERROR out of memory");
        return;
    }
    ssize_t n = read(b->fd, b->rbuf.data + b->rbuf.len, b->rbuf.cap - b->rbuf.len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        log_info("backend %s: %s", b->name, n == 0 ? "closed by peer" : strerror(errno));
        backend_fail(b, OP_FAIL_CLOSED, "SERVER_ERROR backend closed connection");
        return;
    }
    b->rbuf.len += (size_t)n;
    if (MG_UNLIKELY(b->authing) && backend_auth_reply(b) != MG_OK)
        return;
    if (MG_UNLIKELY(b->probing)) { /* the probe's answer comes first */
        struct mg_meta_reply rep;
        size_t used = 0;
        int rc = mg_meta_parse_reply(buf_head(&b->rbuf), buf_unread(&b->rbuf), 0, &rep, &used);
        if (rc == MG_EAGAIN)
            return;
        if (rc != MG_OK || rep.status != MG_R_MN) {
            backend_fail(b, OP_FAIL_ERROR, "SERVER_ERROR backend protocol error");
            return;
        }
        b->rbuf.off += used;
        b->probing = false;
        b->failures = 0;
        b->up_since = ev_now(b->w->loop);
        backend_set_state(b, BE_UP);
        health_up(b->health);
        log_warn("backend %s: back after its probe", b->name);
        backend_arm_timer(b);
    }
    while (b->qhead && buf_unread(&b->rbuf)) {
        struct mg_meta_reply rep;
        size_t used = 0;
        int rc = mg_meta_parse_reply(buf_head(&b->rbuf), buf_unread(&b->rbuf), BACKEND_VALUE_MAX,
                                     &rep, &used);
        if (rc == MG_EAGAIN)
            break;
        if (rc != MG_OK) {
            char shown[96];
            log_warn("backend %s: unparsable reply: %s", b->name,
                     log_quote(shown, sizeof(shown), buf_head(&b->rbuf), buf_unread(&b->rbuf)));
            backend_fail(b, OP_FAIL_ERROR, "SERVER_ERROR backend protocol error");
            return;
        }
        struct op *op = b->qhead;
        b->qhead = op->next;
        if (b->qhead == NULL)
            b->qtail = NULL;
        b->nq--;
        b->failures = 0;
        STAT_DEC(b->st.inflight);
        op->next = NULL;
        op_reply(op, &rep);
        b->rbuf.off += used;
    }
    if (b->qhead == NULL && buf_unread(&b->rbuf)) {
        log_warn("backend %s: reply without a request", b->name);
        backend_fail(b, OP_FAIL_ERROR, "SERVER_ERROR backend protocol error");
        return;
    }
    if (buf_unread(&b->rbuf) == 0) {
        b->rbuf.off = b->rbuf.len = 0;
        if (b->rbuf.cap > BACKEND_BUF_KEEP)
            buf_reset(&b->rbuf, BACKEND_BUF_KEEP);
    } else {
        buf_compact(&b->rbuf);
    }
    backend_arm_timer(b);
}

static void backend_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    MG_UNUSED(revents);
    struct backend *b = w->data;
    if (b->state == BE_CONNECTING) {
        log_info("backend %s: connect timeout", b->name);
        backend_fail(b, OP_FAIL_TIMEOUT, "SERVER_ERROR backend connect timeout");
        return;
    }
    if (b->qhead == NULL) {
        if (b->probing) {
            log_info("backend %s: probe timeout", b->name);
            backend_fail(b, OP_FAIL_TIMEOUT, "SERVER_ERROR backend timeout");
        }
        return;
    }
    if (ev_now(loop) - b->qhead->sent >= b->opts.timeout - 0.0005) {
        log_info("backend %s: read timeout", b->name);
        backend_fail(b, OP_FAIL_TIMEOUT, "SERVER_ERROR backend timeout");
        return;
    }
    backend_arm_timer(b);
}

void backend_stats_add(struct backend_totals *t, const struct backend *b)
{
    for (uint32_t i = 1; i < b->nconns; i++)
        backend_stats_add(t, b->conns[i]);
    t->requests += STAT_GET(b->st.requests);
    t->writes += STAT_GET(b->st.writes);
    t->errors += STAT_GET(b->st.errors);
    t->timeouts += STAT_GET(b->st.timeouts);
    t->ejections += STAT_GET(b->st.ejections);
    t->busy += STAT_GET(b->st.busy);
    t->inflight += STAT_GET(b->st.inflight);
    if (STAT_GET(b->st.down))
        t->state = "down";
}

void backend_stats_lines(struct buf *out, const char *name, const struct backend_totals *t)
{
    buf_printf(out, "STAT backend:%s:state %s\r\n", name, t->state);
    buf_printf(out, "STAT backend:%s:requests %llu\r\n", name, (unsigned long long)t->requests);
    buf_printf(out, "STAT backend:%s:writes %llu\r\n", name, (unsigned long long)t->writes);
    buf_printf(out, "STAT backend:%s:errors %llu\r\n", name, (unsigned long long)t->errors);
    buf_printf(out, "STAT backend:%s:timeouts %llu\r\n", name, (unsigned long long)t->timeouts);
    buf_printf(out, "STAT backend:%s:ejections %llu\r\n", name, (unsigned long long)t->ejections);
    buf_printf(out, "STAT backend:%s:busy %llu\r\n", name, (unsigned long long)t->busy);
    buf_printf(out, "STAT backend:%s:inflight %llu\r\n", name, (unsigned long long)t->inflight);
}
