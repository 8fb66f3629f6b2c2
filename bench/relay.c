/* relay: a TCP relay that delays the replies (server to client) by a fixed time, for the bench. */

/*
 * Stands in for the network hop between a gateway and a remote memcached:
 * `relay --listen PORT --to HOST:PORT --delay-us 500` accepts on 127.0.0.1:PORT,
 * opens one upstream connection per client connection, forwards the client's
 * bytes at once and holds every chunk read from the upstream for --delay-us
 * before writing it to the client. The delay is the same for every chunk, so
 * a single FIFO of chunks across all connections is already in due order: the
 * loop sleeps until its head is due, whatever the number of connections. Order within a
 * connection is kept because chunks are appended to the client's output in
 * arrival order. Pipelining needs nothing special: whatever bytes arrive are
 * relayed as they are, a chunk per read.
 *
 * Why plain epoll, not libev: libev hands epoll_wait a timeout in whole
 * milliseconds (rounded up), which would turn a 0.5 ms delay into 1 ms.
 * epoll_pwait2 (Linux 5.11, glibc 2.35) takes nanoseconds and costs no system
 * call beyond the wait itself (a timerfd costs a settime and a read per
 * wakeup); without it the relay falls back to epoll_wait and says so. One
 * thread: the relay forwards bytes without parsing them; `--stats` prints the
 * CPU it used.
 *
 * Flow control: a side whose peer has more than MAX_PENDING bytes not yet
 * written (queued chunks plus output) stops being read until that drains, so a
 * slow reader cannot make the relay buffer without bound.
 *
 * Closing: either side's EOF or error closes the pair. Chunks still queued for
 * a closed pair stay in the FIFO (they hold the pair) and are dropped when due;
 * the pair is freed when it is closed and no chunk refers to it.
 */

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define READ_CHUNK (64 * 1024)
#define MAX_PENDING (4 * 1024 * 1024) /* bytes queued towards one side before its peer waits */
#define MAX_EVENTS 256
#define MAX_DELAY_US 10000000
#define SLACK_NS 20000 /* chunks due this soon are released with the one due now */

/* One chunk read from an upstream, waiting in the FIFO; owned by the FIFO, points to its pair. */
struct chunk {
    struct chunk *next;
    struct pair *pair;
    uint64_t due_ns;
    size_t len;
    char data[];
};

/* What is waiting to be written to one side; owned by that side. */
struct outbuf {
    char *p;
    size_t len, pos, cap;
};

enum side_id { SIDE_CLIENT, SIDE_SERVER };

/* One socket of a pair; embedded in the pair, epoll's data.ptr points here. */
struct side {
    struct pair *pair;
    int fd;
    uint32_t events; /* what epoll is asked for now */
    bool connecting; /* the server side until its connect completes */
    struct outbuf out;
};

/*
 * A client connection and its upstream. Owned by the relay's list of live
 * pairs until closed; then by whichever of the close path and the last queued
 * chunk lets go last (queued counts the chunks that point here).
 */
struct pair {
    struct side side[2];
    size_t delayed; /* bytes in the FIFO for this pair's client */
    unsigned queued;
    bool closed;
    struct pair *next_dead;
};

struct relay {
    int epfd, lfd;
    struct sockaddr_storage to;
    socklen_t tolen;
    uint64_t delay_ns;
    struct chunk *head, *tail; /* the FIFO, in due order */
    struct pair *dead;         /* closed this iteration, freed after the batch */
    uint64_t conns, bytes_up, bytes_down, chunks;
};

static volatile sig_atomic_t g_stop;
static char g_scratch[READ_CHUNK]; /* every read lands here first; one thread */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int set_events(struct relay *r, struct side *s, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.ptr = s };

    if (ev == s->events)
        return MG_OK;
    s->events = ev;
    return epoll_ctl(r->epfd, EPOLL_CTL_MOD, s->fd, &e) == 0 ? MG_OK : MG_ERR;
}

/*
 * Recomputes what each side of p waits for: input unless its peer has too much
 * pending (or the server is still connecting), output while it has bytes left.
 */
static void pair_update(struct relay *r, struct pair *p)
{
    struct side *c = &p->side[SIDE_CLIENT], *s = &p->side[SIDE_SERVER];
    size_t to_client = c->out.len - c->out.pos + p->delayed;
    size_t to_server = s->out.len - s->out.pos;
    uint32_t ce = 0, se = 0;

    if (p->closed)
        return;
    if (to_server < MAX_PENDING)
        ce |= EPOLLIN;
    if (c->out.len > c->out.pos)
        ce |= EPOLLOUT;
    if (s->connecting) {
        se = EPOLLOUT;
    } else {
        if (to_client < MAX_PENDING)
            se |= EPOLLIN;
        if (to_server > 0)
            se |= EPOLLOUT;
    }
    set_events(r, c, ce);
    set_events(r, s, se);
}

/* Closes both sockets; the pair is freed later (after the batch, once no chunk holds it). */
static void pair_close(struct relay *r, struct pair *p)
{
    if (p->closed)
        return;
    p->closed = true;
    for (int i = 0; i < 2; i++) {
        if (p->side[i].fd >= 0)
            close(p->side[i].fd);
        p->side[i].fd = -1;
    }
    p->next_dead = r->dead;
    r->dead = p;
}

static void pair_free(struct pair *p)
{
    free(p->side[0].out.p);
    free(p->side[1].out.p);
    free(p);
}

/* Appends n bytes to o; MG_ERR if out of memory. */
static int out_append(struct outbuf *o, const char *d, size_t n)
{
    if (o->pos > 0 && o->pos == o->len)
        o->pos = o->len = 0;
    if (o->cap - o->len < n) {
        if (o->pos > 0) {
            memmove(o->p, o->p + o->pos, o->len - o->pos);
            o->len -= o->pos;
            o->pos = 0;
        }
        if (o->cap - o->len < n) {
            size_t cap = o->cap ? o->cap : 16384;
            char *np;

            while (cap - o->len < n)
                cap *= 2;
            np = realloc(o->p, cap);
            if (np == NULL)
                return MG_ERR;
            o->p = np;
            o->cap = cap;
        }
    }
    memcpy(o->p + o->len, d, n);
    o->len += n;
    return MG_OK;
}

/* Writes what s->out holds. Returns MG_OK (maybe with bytes left) or MG_ERR on a broken socket. */
static int side_flush(struct side *s)
{
    while (s->out.pos < s->out.len) {
        ssize_t n = send(s->fd, s->out.p + s->out.pos, s->out.len - s->out.pos, MSG_NOSIGNAL);

        if (n > 0) {
            s->out.pos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return MG_OK;
        return MG_ERR;
    }
    s->out.pos = s->out.len = 0;
    return MG_OK;
}

/* Sends what the client side may already hold, else writes straight from d; keeps the rest. */
static int side_write(struct side *s, const char *d, size_t n)
{
    if (s->out.len == s->out.pos) {
        while (n > 0) {
            ssize_t w = send(s->fd, d, n, MSG_NOSIGNAL);

            if (w > 0) {
                d += w;
                n -= (size_t)w;
                continue;
            }
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            return MG_ERR;
        }
        if (n == 0)
            return MG_OK;
    }
    return out_append(&s->out, d, n);
}

/*
 * Hands every due chunk to its client, dropping those of closed pairs. Chunks
 * due within SLACK_NS go in the same pass: one wakeup instead of several, an
 * error far below the delay.
 */
static void fifo_release(struct relay *r)
{
    uint64_t now = now_ns() + SLACK_NS;

    while (r->head != NULL && r->head->due_ns <= now) {
        struct chunk *ch = r->head;
        struct pair *p = ch->pair;

        r->head = ch->next;
        if (r->head == NULL)
            r->tail = NULL;
        p->queued--;
        p->delayed -= ch->len;
        if (!p->closed) {
            if (side_write(&p->side[SIDE_CLIENT], ch->data, ch->len) != MG_OK)
                pair_close(r, p);
            else
                pair_update(r, p);
        }
        free(ch);
    }
}

/* Reads from the server side and queues the bytes for the client. */
static void server_readable(struct relay *r, struct pair *p)
{
    struct chunk *ch;
    ssize_t n = recv(p->side[SIDE_SERVER].fd, g_scratch, sizeof g_scratch, 0);

    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            pair_close(r, p);
        return;
    }
    r->bytes_down += (uint64_t)n;
    r->chunks++;
    if (r->delay_ns == 0) {
        if (side_write(&p->side[SIDE_CLIENT], g_scratch, (size_t)n) != MG_OK)
            pair_close(r, p);
        pair_update(r, p);
        return;
    }
    ch = malloc(sizeof *ch + (size_t)n);
    if (ch == NULL) {
        pair_close(r, p);
        return;
    }
    memcpy(ch->data, g_scratch, (size_t)n);
    ch->next = NULL;
    ch->pair = p;
    ch->len = (size_t)n;
    ch->due_ns = now_ns() + r->delay_ns;
    if (r->tail != NULL)
        r->tail->next = ch;
    else
        r->head = ch;
    r->tail = ch;
    p->queued++;
    p->delayed += (size_t)n;
    pair_update(r, p);
}

/* Reads from the client and forwards at once (buffered while the upstream connects or is full). */
static void client_readable(struct relay *r, struct pair *p)
{
    struct side *s = &p->side[SIDE_SERVER];
    ssize_t n = recv(p->side[SIDE_CLIENT].fd, g_scratch, sizeof g_scratch, 0);

    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            pair_close(r, p);
        return;
    }
    r->bytes_up += (uint64_t)n;
    if ((s->connecting ? out_append(&s->out, g_scratch, (size_t)n)
                       : side_write(s, g_scratch, (size_t)n)) != MG_OK) {
        pair_close(r, p);
        return;
    }
    pair_update(r, p);
}

static void side_event(struct relay *r, struct side *s, uint32_t ev)
{
    struct pair *p = s->pair;
    bool client = s == &p->side[SIDE_CLIENT];

    if (p->closed)
        return;
    if (s->connecting && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;

        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
            fprintf(stderr, "relay: connect upstream: %s\n", strerror(err ? err : errno));
            pair_close(r, p);
            return;
        }
        s->connecting = false;
    }
    if ((ev & EPOLLOUT) && side_flush(s) != MG_OK) {
        pair_close(r, p);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (client)
            client_readable(r, p);
        else
            server_readable(r, p);
    }
    pair_update(r, p);
}

/* Accepts what is waiting and starts an upstream connect for each. */
static void relay_accept(struct relay *r)
{
    for (;;) {
        int cfd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), sfd, one = 1;
        struct pair *p;
        struct epoll_event e;

        if (cfd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "relay: accept: %s\n", strerror(errno));
            return;
        }
        sfd = socket(r->to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        p = calloc(1, sizeof *p);
        if (sfd < 0 || p == NULL ||
            (connect(sfd, (struct sockaddr *)&r->to, r->tolen) < 0 && errno != EINPROGRESS)) {
            fprintf(stderr, "relay: upstream: %s\n", strerror(errno));
            close(cfd);
            if (sfd >= 0)
                close(sfd);
            free(p);
            continue;
        }
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        p->side[SIDE_CLIENT] = (struct side){ .pair = p, .fd = cfd, .events = EPOLLIN };
        p->side[SIDE_SERVER] =
            (struct side){ .pair = p, .fd = sfd, .events = EPOLLOUT, .connecting = true };
        e = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &p->side[SIDE_CLIENT] };
        epoll_ctl(r->epfd, EPOLL_CTL_ADD, cfd, &e);
        e = (struct epoll_event){ .events = EPOLLOUT, .data.ptr = &p->side[SIDE_SERVER] };
        epoll_ctl(r->epfd, EPOLL_CTL_ADD, sfd, &e);
        r->conns++;
    }
}

/* Waits for events until the FIFO's head is due (forever if it is empty); returns epoll's count. */
static int relay_wait(struct relay *r, struct epoll_event *evs)
{
    static bool no_pwait2;
    struct timespec ts;
    uint64_t now, left;

    if (r->head == NULL)
        return epoll_wait(r->epfd, evs, MAX_EVENTS, -1);
    now = now_ns();
    left = r->head->due_ns > now ? r->head->due_ns - now : 0;
    if (!no_pwait2) {
        ts.tv_sec = (time_t)(left / 1000000000ull);
        ts.tv_nsec = (long)(left % 1000000000ull);
        int n = epoll_pwait2(r->epfd, evs, MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        no_pwait2 = true;
        fprintf(stderr, "relay: no epoll_pwait2; delays are rounded up to whole milliseconds\n");
    }
    return epoll_wait(r->epfd, evs, MAX_EVENTS, (int)((left + 999999) / 1000000));
}

/* Frees the pairs closed in this batch that no queued chunk still holds. */
static void relay_reap(struct relay *r)
{
    struct pair **pp = &r->dead;

    while (*pp != NULL) {
        struct pair *p = *pp;

        if (p->queued == 0) {
            *pp = p->next_dead;
            pair_free(p);
        } else {
            pp = &p->next_dead;
        }
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: relay --listen PORT --to HOST:PORT [--delay-us N] [--stats]\n"
               "  --listen PORT   accept on 127.0.0.1:PORT\n"
               "  --to HOST:PORT  the upstream (loopback only)\n"
               "  --delay-us N    hold every reply chunk N microseconds (default 500)\n"
               "  --stats         on exit (TERM, INT) print connections, bytes, CPU on stderr\n");
}

/* Resolves HOST:PORT into r->to; loopback only, as for the other bench clients. */
static int parse_to(struct relay *r, const char *arg)
{
    char host[256];
    const char *colon = strrchr(arg, ':');
    struct addrinfo hints, *res = NULL;
    int rc;

    if (colon == NULL || (size_t)(colon - arg) >= sizeof host || colon == arg) {
        fprintf(stderr, "relay: --to wants HOST:PORT, got '%s'\n", arg);
        return MG_ERR;
    }
    memcpy(host, arg, (size_t)(colon - arg));
    host[colon - arg] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "relay: cannot resolve '%s': %s\n", arg, gai_strerror(rc));
        return MG_ERR;
    }
    rc = MG_ERR;
    if (addr_is_loopback(res->ai_addr) && res->ai_addrlen <= sizeof r->to) {
        memcpy(&r->to, res->ai_addr, res->ai_addrlen);
        r->tolen = res->ai_addrlen;
        rc = MG_OK;
    } else {
        fprintf(stderr, "relay: '%s' is not a loopback address; refusing\n", arg);
    }
    freeaddrinfo(res);
    return rc;
}

static int listen_on(struct relay *r, int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int one = 1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->lfd < 0)
        return MG_ERR;
    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(r->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(r->lfd, 4096) < 0)
        return MG_ERR;
    return MG_OK;
}

/* Parses argv into r and *port; MG_ERR (message printed) or 1 for --help. */
static int parse_args(struct relay *r, int *port, bool *stats, int argc, char **argv)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' },   { "to", required_argument, NULL, 't' },
        { "delay-us", required_argument, NULL, 'd' }, { "stats", no_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },           { NULL, 0, NULL, 0 },
    };
    bool have_to = false;
    long v;
    char *end;
    int opt;

    *port = 0;
    r->delay_ns = 500000;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'l':
        case 'd':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || v < (opt == 'l' ? 1 : 0) ||
                v > (opt == 'l' ? 65535 : MAX_DELAY_US)) {
                fprintf(stderr, "relay: bad --%s '%s'\n", opt == 'l' ? "listen" : "delay-us",
                        optarg);
                return MG_ERR;
            }
            if (opt == 'l')
                *port = (int)v;
            else
                r->delay_ns = (uint64_t)v * 1000;
            break;
        case 't':
            if (parse_to(r, optarg) != MG_OK)
                return MG_ERR;
            have_to = true;
            break;
        case 's':
            *stats = true;
            break;
        case 'h':
            return 1;
        default:
            return MG_ERR;
        }
    }
    if (optind != argc || *port == 0 || !have_to) {
        fprintf(stderr, "relay: --listen and --to are required\n");
        return MG_ERR;
    }
    return MG_OK;
}

static void print_stats(const struct relay *r)
{
    struct rusage ru;
    double cpu = 0;

    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
              (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    fprintf(
        stderr,
        "relay: conns=%llu bytes_up=%llu bytes_down=%llu chunks=%llu cpu_s=%.3f delay_us=%llu\n",
        (unsigned long long)r->conns, (unsigned long long)r->bytes_up,
        (unsigned long long)r->bytes_down, (unsigned long long)r->chunks, cpu,
        (unsigned long long)(r->delay_ns / 1000));
}

int main(int argc, char **argv)
{
    static struct relay r;
    struct epoll_event evs[MAX_EVENTS], e;
    struct sigaction sa;
    bool stats = false;
    int port, rc;

    rc = parse_args(&r, &port, &stats, argc, argv);
    if (rc != MG_OK) {
        usage(rc == 1 ? stdout : stderr);
        return rc == 1 ? 0 : 1;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (listen_on(&r, port) != MG_OK) {
        fprintf(stderr, "relay: listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    r.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r.epfd < 0) {
        fprintf(stderr, "relay: epoll: %s\n", strerror(errno));
        return 1;
    }
    /* The listener is told apart from the sides by this address. */
    e = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &r.lfd };
    epoll_ctl(r.epfd, EPOLL_CTL_ADD, r.lfd, &e);

    while (!g_stop) {
        int n = relay_wait(&r, evs);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "relay: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;

            if (ptr == &r.lfd) {
                relay_accept(&r);
            } else {
                side_event(&r, ptr, evs[i].events);
            }
        }
        if (r.head != NULL && r.head->due_ns <= now_ns() + SLACK_NS)
            fifo_release(&r);
        relay_reap(&r);
    }
    if (stats)
        print_stats(&r);
    return 0;
}
