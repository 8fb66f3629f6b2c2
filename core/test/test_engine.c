/* test_engine.c: the engine without Lua (and without the server layer): a client
 * connection over a socketpair, dispatch, herd and a backend connection to a fake
 * memcached on loopback whose bytes the test reads and writes itself. Linked from the
 * proto, net and engine objects only (Makefile: build/test_engine), with stand-ins for
 * the few worker functions the engine calls back. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "conn.h"
#include "ctest.h"
#include "plugin.h"
#include "request.h"
#include "worker.h"

/* --- stand-ins for the server layer (worker.c) ------------------------------------- */

atomic_int total_conns;

void worker_dirty_backend(struct worker *w, struct backend *b)
{
    w->npush++;
    if (b->dirty)
        return;
    b->dirty = true;
    b->next_dirty = w->dirty_backends;
    w->dirty_backends = b;
}

void worker_dirty_conn(struct worker *w, struct conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->next_dirty = w->dirty_conns;
    w->dirty_conns = c;
}

void worker_cfg_release(struct worker *w, const struct config *cfg)
{
    MG_UNUSED(cfg);
    w->cfg_live--;
}

/* The rig's pools never remap (p->remap is false), so this is never called. */
struct backend *worker_pick_live(struct worker *w, const struct pool *p, const char *key,
                                 size_t klen, struct backend *primary)
{
    MG_UNUSED(w);
    MG_UNUSED(p);
    MG_UNUSED(key);
    MG_UNUSED(klen);
    return primary;
}

/* --- the rig ---------------------------------------------------------------------------- */

static struct worker W;
static int client_fd = -1;  /* the test's end of the client connection */
static int backend_fd = -1; /* the fake memcached's end of the backend connection */
static int listen_fd = -1;

/* What the worker's prepare step does: flush dirty backends and clients. */
static void flush_dirty(void)
{
    while (W.dirty_backends || W.dirty_conns) {
        while (W.dirty_backends) {
            struct backend *b = W.dirty_backends;
            W.dirty_backends = b->next_dirty;
            b->dirty = false;
            backend_flush(b);
        }
        while (W.dirty_conns) {
            struct conn *c = W.dirty_conns;
            W.dirty_conns = c->next_dirty;
            c->dirty = false;
            conn_flush(c);
        }
    }
}

/* Turn the loop (without blocking) for about ms milliseconds. */
static void pump(int ms)
{
    for (int i = 0; i < ms; i++) {
        ev_run(W.loop, EVRUN_NOWAIT);
        flush_dirty();
        usleep(1000);
    }
}

/* Read from fd until the bytes read end with want's length or 1 s passed; returns
 * whether exactly want arrived (the loop is pumped meanwhile). */
static bool expect(int fd, const char *want)
{
    char got[4096];
    size_t n = 0, len = strlen(want);
    for (int i = 0; i < 1000 && n < len; i++) {
        pump(1);
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 0) != 1)
            continue;
        ssize_t r = read(fd, got + n, sizeof(got) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    got[n] = '\0';
    if (n != len || memcmp(got, want, len) != 0) {
        fprintf(stderr, "  got '%s'\n  want '%s'\n", got, want);
        return false;
    }
    return true;
}

static void send_str(int fd, const char *s)
{
    size_t n = strlen(s);
    CHECK(write(fd, s, n) == (ssize_t)n);
}

/* The fake backend's side of its connection: accepted once the gateway connected. */
static bool backend_accept(void)
{
    for (int i = 0; i < 1000 && backend_fd < 0; i++) {
        pump(1);
        struct pollfd p = { listen_fd, POLLIN, 0 };
        if (poll(&p, 1, 0) == 1)
            backend_fd = accept(listen_fd, NULL, NULL);
    }
    return backend_fd >= 0;
}

static int rig_setup(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sl) != 0 ||
        listen(listen_fd, 4) != 0 || getsockname(listen_fd, (struct sockaddr *)&sa, &sl) != 0)
        return MG_ERR;
    char server[64], err[256];
    snprintf(server, sizeof(server), "127.0.0.1:%u", ntohs(sa.sin_port));
    const char *servers[] = { server };
    settings.value_max = MG_VALUE_MAX_DEFAULT;
    struct pool_opts opts;
    config_default_opts(&opts);
    opts.timeout = 5;
    struct config *cfg = config_new();
    /* grace 30 s, lock 5 s, no waiting: a classic get becomes mg ... v f c R31 */
    cfg->default_stale = (struct stale_policy){ .grace = 30, .lock = 5 };
    cfg->has_default_stale = true;
    int pi = config_add_pool(cfg, "main", servers, 1, &opts, err, sizeof(err));
    if (pi < 0 || config_add_route(cfg, NULL, 0, pi, NULL) != MG_OK ||
        config_finish(cfg, err, sizeof(err)) != MG_OK) {
        fprintf(stderr, "config: %s\n", err);
        return MG_ERR;
    }
    W.loop = ev_loop_new(EVFLAG_AUTO);
    W.cfg = cfg;
    W.backends_cfg = cfg;
    W.nbackends = cfg->nservers;
    W.backends = calloc(cfg->nservers, sizeof(struct backend *));
    W.backends[0] = backend_new(&W, &cfg->servers[0]);
    W.pool_herd = calloc(cfg->npools, sizeof(struct pool_herd));
    W.npool_herd = cfg->npools;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || conn_new(&W, sv[0]) == NULL)
        return MG_ERR;
    client_fd = sv[1];
    return MG_OK;
}

/* --- tests ------------------------------------------------------------------------------ */

/* A classic get under a staleness policy asks for the win (R) and the CAS; a value that
 * someone else refreshes (Z) is a plain hit for the classic client. */
static void test_get_stale_hit(void)
{
    send_str(client_fd, "get foo\r\n");
    CHECK(backend_accept());
    CHECK(expect(backend_fd, "mg foo v f c R31\r\n"));
    send_str(backend_fd, "VA 3 f5 c99 Z\r\nbar\r\n");
    CHECK(expect(client_fd, "VALUE foo 5 3\r\nbar\r\nEND\r\n"));
    CHECK_EQ_INT(STAT_GET(W.st.get_hits), 1);
    CHECK_EQ_INT(STAT_GET(W.st.herd_stale_hits), 1);
}

/* The win (W) becomes a miss: this classic client regenerates the value. */
static void test_get_win_is_miss(void)
{
    send_str(client_fd, "gets foo\r\n");
    CHECK(expect(backend_fd, "mg foo v f c R31\r\n"));
    send_str(backend_fd, "VA 3 f5 c99 W\r\nbar\r\n");
    CHECK(expect(client_fd, "END\r\n"));
    CHECK_EQ_INT(STAT_GET(W.st.herd_wins), 1);
    CHECK(W.herd_locks != NULL); /* the win is held for lock seconds */
}

/* A set under the policy stores with the grace added; its STORED ends the win. */
static void test_set_adds_grace(void)
{
    send_str(client_fd, "set foo 5 100 3\r\nbaz\r\n");
    CHECK(expect(backend_fd, "ms foo 3 F5 T130\r\nbaz\r\n"));
    send_str(backend_fd, "HD\r\n");
    CHECK(expect(client_fd, "STORED\r\n"));
    CHECK(W.herd_locks == NULL);
}

/* A plug-in that is not Lua: every key goes to the prefix table's pool as "p:<key>". */
static int fake_resolve_key(struct request *r, uint32_t i, const char *key, size_t klen)
{
    r->rkeys.off = r->rkeys.len = 0;
    buf_append(&r->rkeys, "p:", 2);
    buf_append(&r->rkeys, key, klen);
    r->ops[i].res = (struct resolution){ RES_TABLE, RES_TABLE, 0, (uint32_t)r->rkeys.len };
    r->res_until = i + 1;
    return MG_OK;
}

static int fake_resolve_batch(struct request *r, uint32_t first, uint32_t n)
{
    MG_UNUSED(r);
    MG_UNUSED(first);
    MG_UNUSED(n);
    return MG_ERR; /* key by key */
}

static int hooks_run;
static int fake_hook(struct op *op, enum op_event event)
{
    MG_UNUSED(op);
    hooks_run += event == OP_EV_MISS;
    return MG_OK;
}

static void test_plugin_resolves(void)
{
    static const struct engine_plugin fake = { fake_resolve_key, fake_resolve_batch, fake_hook };
    W.plugin = &fake;
    send_str(client_fd, "get a b\r\n");
    CHECK(expect(backend_fd, "mg p:a v f c R31\r\nmg p:b v f c R31\r\n"));
    send_str(backend_fd, "VA 1 f0 c1\r\nA\r\nEN\r\n");
    CHECK(expect(client_fd, "VALUE a 0 1\r\nA\r\nEND\r\n"));
    CHECK_EQ_INT(hooks_run, 1); /* b's miss */
    W.plugin = NULL;
}

/* One op of the gateway's own: its failure kind is on the op, not in a text. */
static enum op_fail seen_fail = OP_FAIL_NONE;
static bool seen_done;
static void one_done(struct request *r)
{
    seen_fail = r->ops[0].fail;
    seen_done = true;
    request_release(r);
}

static void test_internal_request_fails_closed(void)
{
    enum op_fail why;
    struct backend *b = W.backends[0];
    struct request *r = request_one(&W, b, 3, one_done, NULL, &why);
    CHECK(r != NULL);
    if (r == NULL)
        return;
    buf_put(&b->wbuf, "mn\r\n", 4);
    request_one_send(r);
    CHECK(expect(backend_fd, "mn\r\n"));
    close(backend_fd); /* memcached goes away before it answers */
    backend_fd = -1;
    for (int i = 0; i < 1000 && !seen_done; i++)
        pump(1);
    CHECK(seen_done);
    CHECK_EQ_INT(seen_fail, OP_FAIL_CLOSED);
}

int main(void)
{
    if (rig_setup() != MG_OK) {
        fprintf(stderr, "rig setup failed: %s\n", strerror(errno));
        return 1;
    }
    RUN(test_get_stale_hit);
    RUN(test_get_win_is_miss);
    RUN(test_set_adds_grace);
    RUN(test_plugin_resolves);
    RUN(test_internal_request_fails_closed);
    CTEST_END();
}
