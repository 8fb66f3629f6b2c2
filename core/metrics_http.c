/* metrics_http.c: a minimal HTTP/1.1 server for GET /metrics on the main thread's loop (off
 * the workers' loops: a scrape never delays a request). One request per connection
 * (answered with Connection: close), bounded connections, a deadline per connection; bad
 * requests get 400, unknown paths 404, other methods 405. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "mg.h"

#define HTTP_MAX_CONNS 64
#define HTTP_HEAD_MAX 8192 /* request line and headers */
#define HTTP_DEADLINE 10.0 /* seconds a connection may take in all */

struct hconn {
    ev_io io;
    ev_timer deadline;
    int fd;
    char in[HTTP_HEAD_MAX];
    size_t inlen;
    struct buf out;
    struct hconn *next;
};

struct hlistener {
    ev_io io;
    int fd;
};

static struct hlistener listeners[MG_MAX_LISTENERS];
static int nlisteners;
static struct hconn *conns;
static int nconns;
static double last_scrape_s; /* the previous scrape's render time (a metric of its own) */

static void hconn_close(struct ev_loop *loop, struct hconn *h)
{
    ev_io_stop(loop, &h->io);
    ev_timer_stop(loop, &h->deadline);
    close(h->fd);
    for (struct hconn **pp = &conns; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    nconns--;
    free(h->out.data);
    free(h);
}

static void on_write(struct ev_loop *loop, ev_io *io, int revents)
{
    MG_UNUSED(revents);
    struct hconn *h = io->data;
    while (buf_unread(&h->out)) {
        ssize_t n = write(h->fd, buf_head(&h->out), buf_unread(&h->out));
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* the loop calls again when it can take more */
        if (n <= 0) {
            hconn_close(loop, h);
            return;
        }
        h->out.off += (size_t)n;
    }
    shutdown(h->fd, SHUT_WR);
    hconn_close(loop, h);
}

static void respond(struct ev_loop *loop, struct hconn *h, int status, const char *reason,
                    const char *extra_headers, const char *type, const struct buf *body,
                    bool head_only)
{
    size_t blen = body ? buf_unread(body) : 0;
    buf_printf(&h->out,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
               "Connection: close\r\n\r\n",
               status, reason, type, blen, extra_headers ? extra_headers : "");
    if (body && !head_only)
        buf_append(&h->out, buf_head(body), blen);
    ev_io_stop(loop, &h->io);
    ev_io_init(&h->io, on_write, h->fd, EV_WRITE);
    h->io.data = h;
    ev_io_start(loop, &h->io);
}

static void respond_text(struct ev_loop *loop, struct hconn *h, int status, const char *reason,
                         const char *extra, const char *text)
{
    struct buf b = { 0 };
    buf_append_str(&b, text);
    respond(loop, h, status, reason, extra, "text/plain; charset=utf-8", &b, false);
    free(b.data);
}

static bool token_char(char c)
{
    return c >= 'A' && c <= 'Z';
}

/* The request head is in: answer it. */
static void handle(struct ev_loop *loop, struct hconn *h, size_t line_len)
{
    const char *l = h->in;
    size_t i = 0, mlen, tstart, tlen;
    while (i < line_len && token_char(l[i]))
        i++;
    mlen = i;
    if (mlen == 0 || i >= line_len || l[i] != ' ') {
        respond_text(loop, h, 400, "Bad Request", NULL, "bad request line\n");
        return;
    }
    tstart = ++i;
    while (i < line_len && l[i] != ' ' && (unsigned char)l[i] > ' ' && l[i] != 127)
        i++;
    tlen = i - tstart;
    if (tlen == 0 || l[tstart] != '/' || i >= line_len || l[i] != ' ' || line_len - i - 1 != 8 ||
        memcmp(l + i + 1, "HTTP/1.", 7) != 0 || (l[i + 8] != '0' && l[i + 8] != '1')) {
        respond_text(loop, h, 400, "Bad Request", NULL, "bad request line\n");
        return;
    }
    bool get = mlen == 3 && memcmp(l, "GET", 3) == 0;
    bool head = mlen == 4 && memcmp(l, "HEAD", 4) == 0;
    if (!get && !head) {
        respond_text(loop, h, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                     "only GET and HEAD\n");
        return;
    }
    size_t plen = 0;
    while (plen < tlen && l[tstart + plen] != '?')
        plen++;
    if (plen == 8 && memcmp(l + tstart, "/metrics", 8) == 0) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct buf body = { 0 };
        metrics_render(&body);
        buf_printf(&body,
                   "# HELP mintgate_scrape_duration_seconds The previous scrape's render time.\n"
                   "# TYPE mintgate_scrape_duration_seconds gauge\n"
                   "mintgate_scrape_duration_seconds %.6f\n",
                   last_scrape_s);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        last_scrape_s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
        respond(loop, h, 200, "OK", NULL, "text/plain; version=0.0.4; charset=utf-8", &body, head);
        free(body.data);
    } else if (plen == 1) {
        respond_text(loop, h, 200, "OK", NULL, "mintgate: metrics at /metrics\n");
    } else {
        respond_text(loop, h, 404, "Not Found", NULL, "not found: try /metrics\n");
    }
}

static void on_read(struct ev_loop *loop, ev_io *io, int revents)
{
    MG_UNUSED(revents);
    struct hconn *h = io->data;
    ssize_t n = read(h->fd, h->in + h->inlen, sizeof(h->in) - h->inlen);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) { /* gone before its request was complete */
        hconn_close(loop, h);
        return;
    }
    size_t old = h->inlen;
    h->inlen += (size_t)n;
    /* the head ends at an empty line ("\n\n" or "\n\r\n"); look from a little before the new
     * bytes */
    for (size_t i = old > 2 ? old - 2 : 0; i < h->inlen; i++) {
        if (h->in[i] != '\n')
            continue;
        if ((i >= 1 && h->in[i - 1] == '\n') ||
            (i >= 2 && h->in[i - 1] == '\r' && h->in[i - 2] == '\n')) {
            size_t line = 0;
            while (line < h->inlen && h->in[line] != '\r' && h->in[line] != '\n')
                line++;
            handle(loop, h, line);
            return;
        }
    }
    for (size_t i = old; i < h->inlen; i++)
        if (h->in[i] == '\0') {
            respond_text(loop, h, 400, "Bad Request", NULL, "NUL in request\n");
            return;
        }
    if (h->inlen == sizeof(h->in))
        respond_text(loop, h, 431, "Request Header Fields Too Large", NULL,
                     "request head too large\n");
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
    MG_UNUSED(revents);
    hconn_close(loop, t->data);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    MG_UNUSED(revents);
    struct hlistener *l = io->data;
    for (int k = 0; k < 16; k++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct hconn *h = nconns < HTTP_MAX_CONNS ? calloc(1, sizeof(*h)) : NULL;
        if (h == NULL) { /* too many at once: this one is dropped */
            close(fd);
            continue;
        }
        h->fd = fd;
        ev_io_init(&h->io, on_read, fd, EV_READ);
        h->io.data = h;
        ev_timer_init(&h->deadline, on_deadline, HTTP_DEADLINE, 0);
        h->deadline.data = h;
        ev_io_start(loop, &h->io);
        ev_timer_start(loop, &h->deadline);
        h->next = conns;
        conns = h;
        nconns++;
    }
}

int metrics_http_start(struct ev_loop *loop, int fd, char *err, size_t errlen)
{
    if (nlisteners >= MG_MAX_LISTENERS) {
        snprintf(err, errlen, "too many metrics listeners");
        return MG_ERR;
    }
    struct hlistener *l = &listeners[nlisteners++];
    l->fd = fd;
    ev_io_init(&l->io, on_accept, fd, EV_READ);
    l->io.data = l;
    ev_io_start(loop, &l->io);
    return MG_OK;
}

void metrics_http_stop(struct ev_loop *loop)
{
    for (int i = 0; i < nlisteners; i++) {
        ev_io_stop(loop, &listeners[i].io);
        close(listeners[i].fd);
    }
    nlisteners = 0;
    while (conns)
        hconn_close(loop, conns);
}
