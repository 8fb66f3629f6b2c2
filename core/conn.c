/* conn.c: client connections: read, parse, queue requests, write replies in order. */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "proto_bin.h"
#include "proto_text.h"
#include "request.h"
#include "worker.h"

#define CONN_READ_CHUNK (16 * 1024)
/* Backpressure: a client with this many requests queued, or this many reply bytes it has
 * not read, is not read from until it drains to half of it. */
#define CONN_MAX_PIPELINE 1024
#define CONN_MAX_READY (4u << 20)
/* Keys in flight per connection: replies on their way from backends are bytes the client
 * has not read either. The window is CONN_MAX_READY over the connection's reply size per
 * key, kept as a power of two (raised at once by a larger reply, lowered one step after
 * CONN_SHRINK_AFTER smaller ones in a row), within [CONN_WINDOW_MIN, CONN_WINDOW_MAX]; a
 * new connection assumes 2^CONN_KEY_LOG2_START bytes per key (a window of 16) until its
 * replies say otherwise. */
#define CONN_WINDOW_MIN 4u
#define CONN_WINDOW_MAX 256u
#define CONN_KEY_LOG2_START 18
#define CONN_SHRINK_AFTER 4
#define CONN_IOV 64
/* An express lane's reply buffer larger than this is freed once written out. */
#define CONN_XOUT_KEEP 1024u

/* How many keys a connection may have in flight when its replies run to 2^log2 bytes per
 * key (see CONN_WINDOW_MIN). */
static uint32_t conn_window_of(unsigned log2)
{
    uint32_t n = log2 >= 31 ? 0 : CONN_MAX_READY >> log2;
    return n < CONN_WINDOW_MIN ? CONN_WINDOW_MIN : n > CONN_WINDOW_MAX ? CONN_WINDOW_MAX : n;
}

const struct server_calls *conn_server;

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_process(struct conn *c);

struct conn *conn_new(struct worker *w, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->w = w;
    c->fd = fd;
    c->serial = ++w->conn_serial;
    c->key_log2 = CONN_KEY_LOG2_START;
    c->window = conn_window_of(c->key_log2);
    ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
    c->rio.data = c->wio.data = c;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    ev_io_start(w->loop, &c->rio);
    STAT_INC(w->st.curr_connections);
    STAT_INC(w->st.total_connections);
    return c;
}

void conn_enqueue(struct conn *c, struct request *r)
{
    r->c = c;
    r->next = NULL;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->nreq++;
}

void conn_request_done(struct conn *c, struct request *r)
{
    r->done = true;
    c->ready_bytes += r->outlen;
    if (r->flow) {
        c->inflight_keys -= r->flow;
        /* bytes per key as a power of two: up at once, down a step at a time */
        size_t per_key = r->flow == 1 ? r->outlen : r->outlen / r->flow;
        unsigned log2 = per_key > 1 ? 64 - (unsigned)__builtin_clzll((uint64_t)per_key - 1) : 0;
        if (log2 >= c->key_log2) {
            c->key_small = 0;
            if (log2 > c->key_log2) {
                c->key_log2 = (uint8_t)log2;
                c->window = conn_window_of(log2);
            }
        } else if (++c->key_small >= CONN_SHRINK_AFTER) {
            c->key_small = 0;
            c->key_log2--;
            c->window = conn_window_of(c->key_log2);
        }
    }
    worker_dirty_conn(c->w, c);
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    ev_io_stop(c->w->loop, &c->rio);
    ev_io_stop(c->w->loop, &c->wio);
    close(c->fd);
    c->fd = -1;
    STAT_DEC(c->w->st.curr_connections);
    atomic_fetch_sub(&total_conns, 1);
    worker_dirty_conn(c->w, c);
}

static void conn_free(struct conn *c)
{
    struct worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    buf_free(&c->rbuf);
    buf_free(&c->xout);
    get_line_unref(c->line);
    free(c->user);
    free(c);
}

/* Pop the head request, which must be done and fully written. */
static void conn_pop(struct conn *c)
{
    struct request *r = c->head;
    c->head = r->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->nreq--;
    c->ready_bytes -= r->outlen;
    c->wpos = 0;
    request_release(r);
}

/* Add b's unread bytes to iov, skipping *skip bytes first. */
static void iov_add(struct iovec *iov, int *n, size_t *skip, const struct buf *b)
{
    size_t len = buf_unread(b);
    if (len <= *skip) {
        *skip -= len;
        return;
    }
    iov[*n].iov_base = buf_head(b) + *skip;
    iov[*n].iov_len = len - *skip;
    *skip = 0;
    (*n)++;
}

/* One writev of as many ready replies as fit. Returns bytes written, 0 when nothing was
 * ready, MG_EAGAIN when the socket is full, MG_ERR on error (errno kept). */
static ssize_t conn_write_some(struct conn *c)
{
    struct iovec iov[CONN_IOV];
    int n = 0;
    size_t skip = c->wpos;
    /* pieces strictly in order; stop at the first that does not fit */
    for (struct request *r = c->head; r && r->done; r = r->next) {
        for (uint32_t i = 0; i < r->nops; i++) {
            if (n == CONN_IOV)
                goto full;
            iov_add(iov, &n, &skip, &r->ops[i].out);
        }
        if (n == CONN_IOV)
            goto full;
        iov_add(iov, &n, &skip, &r->out);
    }
full:
    if (n == 0)
        return 0;
    ssize_t w = writev(c->fd, iov, n);
    if (w < 0)
        return (errno == EAGAIN || errno == EINTR) ? MG_EAGAIN : MG_ERR;
    STAT_ADD(c->w->st.bytes_written, (uint64_t)w);
    return w;
}

/* Write the express buffer (it goes before any queued request). Returns false when c must
 * wait (socket full: the write watcher is on) or was closed; the buffer has len 0 once all
 * of it is out (conn_flush tests only that). */
static bool conn_flush_xout(struct conn *c)
{
    ssize_t w = write(c->fd, buf_head(&c->xout), buf_unread(&c->xout));
    if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            ev_io_start(c->w->loop, &c->wio);
            return false;
        }
        log_debug("client %s: write: %s", c->peer, strerror(errno));
        conn_close(c);
        return false;
    }
    STAT_ADD(c->w->st.bytes_written, (uint64_t)w);
    c->ready_bytes -= (size_t)w;
    c->xout.off += (size_t)w;
    if (buf_unread(&c->xout)) {
        ev_io_start(c->w->loop, &c->wio); /* a short write: the socket is full */
        return false;
    }
    c->xout.off = c->xout.len = 0;
    if (c->xout.cap > CONN_XOUT_KEEP)
        buf_free(&c->xout); /* a burst's buffer goes; a small one stays for the next */
    return true;
}

/* Account for w written bytes: pop every request whose reply went out completely. */
static void conn_consume(struct conn *c, size_t w)
{
    while (c->head && c->head->done) {
        size_t left = c->head->outlen - c->wpos;
        if (w < left) {
            c->wpos += w;
            return;
        }
        w -= left;
        conn_pop(c);
    }
}

void conn_flush(struct conn *c)
{
    if (c->closing) {
        while (c->head && c->head->done) {
            c->wpos = 0;
            conn_pop(c);
        }
        if (c->head == NULL)
            conn_free(c);
        return;
    }
    if (MG_UNLIKELY(c->xout.len) && !conn_flush_xout(c))
        return;
    for (;;) {
        conn_consume(c, 0); /* drop finished requests with empty replies */
        ssize_t w = conn_write_some(c);
        if (w == 0)
            break;
        if (w == MG_EAGAIN) {
            ev_io_start(c->w->loop, &c->wio);
            return;
        }
        if (w < 0) {
            log_debug("client %s: write: %s", c->peer, strerror(errno));
            conn_close(c);
            return;
        }
        conn_consume(c, (size_t)w);
    }
    if (c->close_after_flush && c->head == NULL) {
        conn_close(c);
        return;
    }
    if (c->paused && c->nreq < CONN_MAX_PIPELINE / 2 && c->ready_bytes < CONN_MAX_READY / 2 &&
        c->inflight_keys <= c->window / 2) {
        c->paused = false;
        ev_io_start(c->w->loop, &c->rio);
        conn_process(c);
    }
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    MG_UNUSED(revents);
    struct conn *c = w->data;
    ev_io_stop(loop, w);
    worker_dirty_conn(c->w, c);
}

/* Parse and dispatch every complete request in b: the worker's scratch buffer (fresh
 * bytes of a connection that had nothing pending) or the connection's own rbuf. What is
 * left over (a partial request, or everything after a pause) ends up in rbuf; an idle
 * connection holds no buffer at all. */
/* True when c must stop reading for now: too much queued (backpressure). */
static bool conn_full(struct conn *c)
{
    if (c->nreq >= CONN_MAX_PIPELINE || c->ready_bytes >= CONN_MAX_READY ||
        c->inflight_keys >= c->window) {
        c->paused = true;
        ev_io_stop(c->w->loop, &c->rio);
        return true;
    }
    return false;
}

/* Answer a binary request with status (as its text line, rendered back by the engine). */
static void conn_bin_answer(struct conn *c, uint16_t status)
{
    request_reply_line(c, mg_bin_status_line(status));
    STAT_INC(c->w->st.client_errors);
}

/* Stop reading c and close it once its replies are out. */
static void conn_close_after(struct conn *c)
{
    c->close_after_flush = true;
    ev_io_stop(c->w->loop, &c->rio);
    worker_dirty_conn(c->w, c);
}

/* c authenticated as user (a slice of the read buffer): keep the name for req.user. An
 * out-of-memory leaves it NULL, which only routes by user can tell. */
static void conn_set_user(struct conn *c, struct mg_slice user)
{
    free(c->user);
    c->user = strndup(user.p, user.len);
}

/* SASL for a binary client when a users file is loaded: list the mechanisms (PLAIN), or
 * check a PLAIN message. Until it passes only these and version are answered; anything
 * else gets memcached's auth error and a close. Returns true when q was answered here. */
static bool conn_bin_auth(struct conn *c, const struct mg_bin_req *q)
{
    struct mg_slice user, pass;
    switch (q->ctx.opcode) {
    case MG_BIN_SASL_LIST:
        request_reply_line(c, "OK PLAIN");
        return true;
    case MG_BIN_SASL_AUTH:
        if (q->t.key.len == 5 && memcmp(q->t.key.p, "PLAIN", 5) == 0 &&
            auth_plain_split(q->body, &user, &pass) && auth_check(user, pass)) {
            c->authed = true;
            conn_set_user(c, user);
            request_reply_line(c, "OK Authenticated");
            return true;
        }
        c->authed = false;
        free(c->user);
        c->user = NULL;
        log_info("client %s: authentication failed", c->peer);
        conn_bin_answer(c, MG_BIN_AUTH_ERROR);
        return true;
    case MG_BIN_SASL_STEP: /* PLAIN has no second step */
        conn_bin_answer(c, MG_BIN_AUTH_ERROR);
        return true;
    case MG_BIN_VERSION:
        return false;
    default:
        if (c->authed)
            return false;
        conn_bin_answer(c, MG_BIN_AUTH_ERROR);
        conn_close_after(c);
        return true;
    }
}

/* One parsed binary request: what the connection answers itself, or the engine's. */
static void conn_bin_request(struct conn *c, struct mg_bin_req *q, const char *raw, size_t len)
{
    if (MG_UNLIKELY(auth_required()) && (!c->authed || q->gateway) && conn_bin_auth(c, q))
        return;
    if (q->gateway) { /* SASL without authentication configured: memcached without -S */
        conn_bin_answer(c, MG_BIN_UNKNOWN);
        return;
    }
    if (q->t.cmd == MG_CMD_QUIT && !q->ctx.quiet)
        request_reply_cmd(c, MG_CMD_QUIT, "OK");
    request_dispatch(c, &q->t, raw, len);
}

/* Drop what b holds of the data block being swallowed (c->swallow bytes). Returns true
 * when all of it is gone, false when more must arrive first. */
static bool conn_swallow(struct conn *c, struct buf *b)
{
    size_t n = buf_unread(b) < c->swallow ? buf_unread(b) : (size_t)c->swallow;
    b->off += n;
    c->swallow -= n;
    return c->swallow == 0;
}

/* The binary twin of the text loop below: every complete packet in b. A packet that is
 * not a binary request (a client switching protocols) closes the connection. */
static void conn_parse_bin(struct conn *c, struct buf *b)
{
    while (!c->closing && !c->close_after_flush && !conn_full(c)) {
        if (c->swallow) { /* a refused data block still arriving */
            if (!conn_swallow(c, b))
                break;
            continue;
        }
        if (buf_unread(b) == 0)
            break;
        struct mg_bin_req q;
        size_t used = 0;
        int rc = mg_bin_parse(buf_head(b), buf_unread(b), settings.value_max, &q, &used);
        if (rc == MG_EAGAIN)
            break;
        c->bin_cur = &q.ctx;
        if (rc == MG_OK) {
            conn_bin_request(c, &q, buf_head(b), used);
        } else if (rc == MG_ESWALLOW) {
            c->swallow = q.t.swallow;
            if (q.t.cmd == MG_CMD_SET && q.status == MG_BIN_E2BIG)
                request_drop_key(c, &q.t); /* as memcached: the old value goes */
            conn_bin_answer(c, q.status);
        } else {
            if (q.status)
                conn_bin_answer(c, q.status);
            log_debug("client %s: binary protocol error, closing", c->peer);
            c->close_after_flush = true;
            ev_io_stop(c->w->loop, &c->rio);
            worker_dirty_conn(c->w, c);
        }
        c->bin_cur = NULL;
        b->off += used;
    }
}

/* The connection's protocol, from its first byte as memcached tells them apart: 0x80 is
 * a binary request, anything else text (TEXT_AUTH while a text client must still
 * authenticate). Returns CONN_PROTO_UNKNOWN until a byte came. */
static uint8_t conn_proto(struct conn *c, const struct buf *b)
{
    if (c->proto != CONN_PROTO_UNKNOWN || buf_unread(b) == 0)
        return c->proto;
    /* admin listeners have their own secret (admin.c), not the users file */
    c->proto = (unsigned char)buf_head(b)[0] == MG_BIN_REQ ? CONN_PROTO_BIN
               : auth_required() && !c->admin              ? CONN_PROTO_TEXT_AUTH
                                                           : CONN_PROTO_TEXT;
    c->bin = c->proto == CONN_PROTO_BIN;
    return c->proto;
}

/* memcached's text auth: until a client's first set carries "user password" as its value
 * (STORED), every command gets CLIENT_ERROR unauthenticated and reaches no backend. */
static void conn_text_auth(struct conn *c, struct buf *b)
{
    while (c->proto == CONN_PROTO_TEXT_AUTH && !c->closing && !c->close_after_flush &&
           buf_unread(b)) {
        struct mg_text_req t;
        size_t used = 0;
        int rc = mg_text_parse(buf_head(b), buf_unread(b), settings.value_max, &t, &used);
        if (rc == MG_EAGAIN)
            return;
        if (rc == MG_ESWALLOW || rc == MG_ECLOSE) { /* not an auth: too large, too long */
            request_reply_line(c, "CLIENT_ERROR unauthenticated");
            conn_close_after(c);
            return;
        }
        const char *sp =
            rc == MG_OK && t.cmd == MG_CMD_SET ? memchr(t.data.p, ' ', t.data.len) : NULL;
        if (sp) {
            struct mg_slice user = { t.data.p, (uint32_t)(sp - t.data.p) };
            struct mg_slice pass = { sp + 1, (uint32_t)(t.data.p + t.data.len - sp - 1) };
            if (auth_check(user, pass)) {
                c->proto = CONN_PROTO_TEXT;
                conn_set_user(c, user);
                request_reply_line(c, "STORED");
            } else {
                log_info("client %s: authentication failed", c->peer);
                request_reply_line(c, "CLIENT_ERROR authentication failure");
            }
        } else {
            request_reply_line(c, "CLIENT_ERROR unauthenticated");
        }
        b->off += used ? used : buf_unread(b);
    }
}

static void conn_process_buf(struct conn *c, struct buf *b)
{
    if (MG_UNLIKELY(c->proto != CONN_PROTO_TEXT)) {
        uint8_t proto = conn_proto(c, b);
        if (proto == CONN_PROTO_BIN) {
            conn_parse_bin(c, b);
            goto keep;
        }
        if (proto == CONN_PROTO_TEXT_AUTH)
            conn_text_auth(c, b);
        if (c->proto != CONN_PROTO_TEXT)
            goto keep;
    }
    while (!c->closing && !c->close_after_flush && !conn_full(c)) {
        if (c->skip_line) {
            const char *nl = memchr(buf_head(b), '\n', buf_unread(b));
            size_t n = nl ? (size_t)(nl - buf_head(b)) + 1 : buf_unread(b);
            b->off += n;
            c->skip_line = nl == NULL;
            if (nl == NULL)
                break;
            continue;
        }
        if (c->swallow) { /* a refused data block still arriving */
            if (!conn_swallow(c, b))
                break;
            continue;
        }
        if (buf_unread(b) == 0)
            break;
        struct mg_text_req t;
        size_t used = 0;
        bool express = MG_UNLIKELY(c->w->near_express) && c->head == NULL && c->line == NULL;
        if (express && dispatch_near_express(c, buf_head(b), buf_unread(b), &used)) {
            b->off += used; /* answered from the near cache */
            continue;
        }
        int rc = mg_text_parse(buf_head(b), buf_unread(b), settings.value_max, &t, &used);
        if (rc == MG_EAGAIN)
            break;
        switch (rc) {
        case MG_OK:
            if (t.partial && c->line == NULL && (c->line = get_line_new()) == NULL) {
                request_reply_line(c, "SERVER_ERROR out of memory");
                c->skip_line = true;
                break;
            }
            request_dispatch(c, &t, buf_head(b), used);
            if (t.partial) { /* the line's command goes back before its other keys */
                memmove(buf_head(b) + used - t.prefix_len, buf_head(b), t.prefix_len);
                used -= t.prefix_len;
            } else if (c->line) { /* its last piece went out */
                get_line_unref(c->line);
                c->line = NULL;
            }
            break;
        case MG_ESWALLOW:
            c->swallow = t.swallow;
            if (t.cmd == MG_CMD_SET) /* memcached unlinks the old item for set only */
                request_drop_key(c, &t);
            if (!t.noreply) /* memcached stays silent on noreply errors too */
                request_reply_line(c, t.err);
            STAT_INC(c->w->st.client_errors);
            break;
        case MG_ECLOSE:
            request_reply_line(c, t.err);
            STAT_INC(c->w->st.client_errors);
            c->close_after_flush = true;
            ev_io_stop(c->w->loop, &c->rio);
            break;
        default:
            c->skip_line = t.partial;             /* a bad key in a long get: the rest goes too */
            if (c->line && is_retrieval(t.cmd)) { /* the line ends with this error */
                get_line_unref(c->line);
                c->line = NULL;
            }
            if (t.cmd == MG_CMD_UNKNOWN && conn_server && conn_server->command &&
                conn_server->command(c, t.args))
                break;
            if (t.cmd == MG_CMD_UNKNOWN)
                log_debug("client %s: unknown command", c->peer);
            if (!t.noreply)
                request_reply_line(c, t.err);
            STAT_INC(c->w->st.client_errors);
            break;
        }
        if (express)
            c->w->near_pre.p = NULL; /* what it found out was for this request only */
        b->off += used;
    }
keep:
    if (b != &c->rbuf) {
        if (buf_unread(b) && buf_append(&c->rbuf, buf_head(b), buf_unread(b)) != MG_OK)
            conn_close(c);
        b->off = b->len = 0;
    } else if (buf_unread(b) == 0) {
        buf_free(b);
    } else if (b->off) {
        buf_compact(b);
    }
}

static void conn_process(struct conn *c)
{
    conn_process_buf(c, &c->rbuf);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    MG_UNUSED(loop);
    MG_UNUSED(revents);
    struct conn *c = w->data;
    /* nothing pending: read into the worker's scratch buffer, keep only leftovers */
    struct buf *b = c->rbuf.len ? &c->rbuf : &c->w->scratch;
    if (buf_reserve(b, CONN_READ_CHUNK) != MG_OK) {
        conn_close(c);
        return;
    }
    ssize_t n = read(c->fd, b->data + b->len, b->cap - b->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == 0 && (c->head || c->xout.len)) {
        /* half-close (printf ... | nc): answer what was asked, then close */
        c->close_after_flush = true;
        ev_io_stop(c->w->loop, &c->rio);
        return;
    }
    if (n <= 0) {
        conn_close(c);
        return;
    }
    b->len += (size_t)n;
    STAT_ADD(c->w->st.bytes_read, (uint64_t)n);
    conn_process_buf(c, b);
    /* only express replies (nothing queued): out now rather than after the loop's other
     * events, the same one writev either way */
    if (MG_UNLIKELY(c->xout.len) && c->head == NULL && !c->closing)
        conn_flush(c);
}
