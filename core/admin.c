/* admin.c: admin commands (switch changes, reload, auth) on admin listeners. */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "proto_text.h"
#include "request.h"
#include "slowlog.h"
#include "switch.h"
#include "trace.h"
#include "worker.h"

#define ADMIN_MAX_WORDS 4
#define ADMIN_SECRET_MAX 256
#define ADMIN_AUTH_TRIES 3 /* bad secrets before the connection is closed */

/* The shared secret, or NULL: set before the workers start, read-only afterwards. */
static char *admin_secret;
static size_t admin_secret_len;

int admin_secret_load(const char *path, char *err, size_t errlen)
{
    char buf[ADMIN_SECRET_MAX + 3]; /* room for \r\n and one byte too many */
    int rc = MG_ERR;
    ssize_t n = -1;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || (n = read(fd, buf, sizeof(buf))) < 0) {
        snprintf(err, errlen, "admin secret file %s: %s", path, strerror(errno));
        goto done;
    }
    size_t len = (size_t)n;
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    for (size_t i = 0; i < len; i++)
        if (buf[i] <= ' ' || buf[i] > '~') {
            len = 0;
            break;
        }
    if (len == 0 || len > ADMIN_SECRET_MAX || (size_t)n == sizeof(buf)) {
        snprintf(err, errlen,
                 "admin secret file %s: want one word of 1 to %d printable characters "
                 "(no spaces), optionally followed by a newline",
                 path, ADMIN_SECRET_MAX);
        goto done;
    }
    if (st.st_mode & 077)
        log_warn("admin secret file %s can be read by other users (mode %03o): chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
    admin_secret_free();
    admin_secret = malloc(len);
    if (admin_secret == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    memcpy(admin_secret, buf, len);
    admin_secret_len = len;
    rc = MG_OK;
done:
    memset(buf, 0, sizeof(buf));
    if (fd >= 0)
        close(fd);
    return rc;
}

bool admin_has_secret(void)
{
    return admin_secret != NULL;
}

void admin_secret_free(void)
{
    if (admin_secret)
        memset(admin_secret, 0, admin_secret_len);
    free(admin_secret);
    admin_secret = NULL;
    admin_secret_len = 0;
}

/* Does given match the secret? The time taken depends on the secret's length only, not on
 * where given differs from it. */
static bool admin_secret_equal(struct mg_slice given)
{
    volatile unsigned char diff = given.len != admin_secret_len;
    for (size_t i = 0; i < admin_secret_len; i++)
        diff |= (unsigned char)admin_secret[i] ^
                (unsigned char)(i < given.len ? given.p[i] : ~admin_secret[i]);
    return diff == 0;
}

/* auth SECRET: without a configured secret there is nothing to prove (OK). After
 * ADMIN_AUTH_TRIES bad secrets the connection is closed once the answer is out. */
static void admin_auth(struct conn *c, const struct mg_slice *words)
{
    if (admin_secret == NULL || admin_secret_equal(words[1])) {
        c->admin_authed = true;
        c->trusted = c->admin || settings.admin_on_data_port;
        request_reply_line(c, "OK");
        return;
    }
    c->admin_authed = c->trusted = false;
    request_reply_line(c, "CLIENT_ERROR bad secret");
    if (++c->auth_failures < ADMIN_AUTH_TRIES)
        return;
    log_warn("admin: client %s sent %d bad secrets: closing it", c->peer, ADMIN_AUTH_TRIES);
    /* as conn.c does for a fatal protocol error: no more reads, close once flushed */
    c->close_after_flush = true;
    ev_io_stop(c->w->loop, &c->rio);
}

/* Split line at single spaces into at most max words. Returns how many words the line has
 * (it may exceed max: only max are stored), or -1 when a word is empty: leading, trailing
 * or doubled spaces. Admin input is parsed strictly, unlike the data protocol's. */
static int admin_words(struct mg_slice line, struct mg_slice *words, int max)
{
    int n = 0;
    uint32_t start = 0;
    for (uint32_t i = 0; i <= line.len; i++) {
        if (i < line.len && line.p[i] != ' ')
            continue;
        if (i == start)
            return -1;
        if (n < max)
            words[n] = (struct mg_slice){ line.p + start, i - start };
        n++;
        start = i + 1;
    }
    return n;
}

/* switch NAME PERCENT */
static void admin_switch(struct conn *c, const struct mg_slice *words)
{
    struct mg_slice name = words[1], pct = words[2];
    double percent;
    if (switch_parse_percent(pct.p, pct.len, &percent) != MG_OK) {
        request_reply_line(c, "CLIENT_ERROR percent must be a number from 0 to 100");
        return;
    }
    char n[64];
    if (name.len >= sizeof(n)) {
        request_reply_line(c, "CLIENT_ERROR unknown switch");
        return;
    }
    memcpy(n, name.p, name.len);
    n[name.len] = '\0';
    if (switch_set(n, percent) != MG_OK) {
        request_reply_line(c, "CLIENT_ERROR unknown switch");
        return;
    }
    request_reply_line(c, "OK");
}

/* An admin `reload` waiting for every worker to take the new generation. Owned by its
 * worker's list; the request keeps the client's place in its reply order. */
struct reload_wait {
    ev_timer timer;
    struct worker *w;
    struct request *r;
    uint64_t gen;
    ev_tstamp deadline;
    struct reload_wait *next;
};

#define RELOAD_CONFIRM_SECONDS 5.0

static void reload_line(char *line, size_t len, const char *err)
{
    size_t n = strcspn(err, "\r\n");
    snprintf(line, len, "SERVER_ERROR reload failed: %.*s", (int)(n > 500 ? 500 : n), err);
}

static void reload_finish(struct reload_wait *rw, const char *line)
{
    struct worker *w = rw->w;
    ev_timer_stop(w->loop, &rw->timer);
    for (struct reload_wait **pp = &w->reload_waits; *pp; pp = &(*pp)->next)
        if (*pp == rw) {
            *pp = rw->next;
            break;
        }
    request_reply_now(rw->r, line);
    free(rw);
}

static void reload_poll(struct ev_loop *loop, ev_timer *t, int revents)
{
    MG_UNUSED(revents);
    struct reload_wait *rw = t->data;
    char err[512], line[600];
    int rc = worker_reload_status(rw->gen, err, sizeof(err));
    if (rc == MG_OK) {
        reload_finish(rw, "OK");
    } else if (rc == MG_ERR) {
        reload_line(line, sizeof(line), err);
        reload_finish(rw, line);
    } else if (ev_now(loop) >= rw->deadline) {
        reload_finish(rw, "SERVER_ERROR reload: the workers did not confirm in time");
    }
}

/* reload: load and check the script here, hand it to every worker, and answer once all
 * of them run it (or one could not), so "OK" means the new config is in force. */
static void admin_reload(struct conn *c, const struct mg_slice *words)
{
    MG_UNUSED(words);
    char err[2048], line[600];
    uint64_t gen;
    if (worker_reload_all(err, sizeof(err), &gen) != MG_OK) {
        reload_line(line, sizeof(line), err);
        request_reply_line(c, line);
        return;
    }
    struct worker *w = c->w;
    struct reload_wait *rw = calloc(1, sizeof(*rw));
    struct request *r = rw ? request_reply_later(c) : NULL;
    if (r == NULL) {
        free(rw);
        request_reply_line(c, "OK"); /* loaded; confirmation unavailable */
        return;
    }
    rw->w = w;
    rw->r = r;
    rw->gen = gen;
    rw->deadline = ev_now(w->loop) + RELOAD_CONFIRM_SECONDS;
    rw->next = w->reload_waits;
    w->reload_waits = rw;
    ev_timer_init(&rw->timer, reload_poll, 0.002, 0.002);
    rw->timer.data = rw;
    ev_timer_start(w->loop, &rw->timer);
}

void admin_worker_destroy(struct worker *w)
{
    while (w->reload_waits)
        reload_finish(w->reload_waits, "SERVER_ERROR gateway shutting down");
}

/* A whole number from a word (at most max). */
static bool admin_uint(struct mg_slice w, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (w.len == 0 || w.len > 12)
        return false;
    for (uint32_t i = 0; i < w.len; i++) {
        if (w.p[i] < '0' || w.p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(w.p[i] - '0');
    }
    *out = v;
    return v <= max;
}

static bool word_is(struct mg_slice w, const char *s)
{
    return w.len == strlen(s) && memcmp(w.p, s, w.len) == 0;
}

/* slowlog reset | slowlog MS [SIZE] | slowlog off */
static void admin_slowlog(struct conn *c, const struct mg_slice *words, int n)
{
    if (n == 2 && word_is(words[1], "reset")) {
        slowlog_reset();
        request_reply_line(c, "OK");
        return;
    }
    uint64_t ms = 0, size = 0;
    bool off = n == 2 && word_is(words[1], "off");
    if ((!off && !admin_uint(words[1], 1000000000, &ms)) ||
        (n == 3 && (!admin_uint(words[2], SLOWLOG_SIZE_MAX, &size) || size == 0))) {
        request_reply_line(c, "CLIENT_ERROR usage: slowlog reset | off | MS [SIZE]");
        return;
    }
    if (slowlog_configure(off ? 1e13 : (double)ms, n == 3 ? (uint32_t)size : slowlog_size()) !=
        MG_OK) {
        request_reply_line(c, "SERVER_ERROR out of memory");
        return;
    }
    request_reply_line(c, "OK");
}

/* requestlog N: log every Nth request (0: off) */
static void admin_requestlog(struct conn *c, const struct mg_slice *words, int n)
{
    MG_UNUSED(n);
    uint64_t every;
    if (!admin_uint(words[1], 1000000000, &every)) {
        request_reply_line(c, "CLIENT_ERROR usage: requestlog N (every Nth request; 0: off)");
        return;
    }
    requestlog_set((uint32_t)every);
    request_reply_line(c, "OK");
}

/* trace start PATH [SAMPLE] | trace stop. hash_keys and max_size are the config's mg.trace
 * ones (or the defaults). Stopping waits for the writer's last write. */
static void admin_trace(struct conn *c, const struct mg_slice *words, int n)
{
    static const char usage[] = "CLIENT_ERROR usage: trace start PATH [SAMPLE] | trace stop";
    if (n == 2 && word_is(words[1], "stop")) {
        trace_stop();
        request_reply_line(c, "OK");
        return;
    }
    struct trace_opts o = trace_config_opts();
    if (n < 3 || !word_is(words[1], "start") || words[2].len >= sizeof(o.path)) {
        request_reply_line(c, usage);
        return;
    }
    memcpy(o.path, words[2].p, words[2].len);
    o.path[words[2].len] = '\0';
    o.sample = 1.0;
    if (n == 4) {
        char num[32], *end;
        snprintf(num, sizeof(num), "%.*s", (int)words[3].len, words[3].p);
        o.sample = strtod(num, &end);
        if (words[3].len >= sizeof(num) || *end != '\0' || !(o.sample >= 0 && o.sample <= 1)) {
            request_reply_line(c, "CLIENT_ERROR trace: SAMPLE is a number from 0 to 1");
            return;
        }
    }
    char err[TRACE_PATH_MAX + 128], line[TRACE_PATH_MAX + 160];
    if (trace_start(&o, err, sizeof(err)) != MG_OK) {
        snprintf(line, sizeof(line), "SERVER_ERROR %s", err);
        request_reply_line(c, line);
        return;
    }
    request_reply_line(c, "OK");
}

/* route COMMAND KEY: what a command for KEY would do */
static void admin_route(struct conn *c, const struct mg_slice *words, int n)
{
    MG_UNUSED(n);
    static const struct {
        const char *name;
        enum mg_cmd cmd;
    } cmds[] = {
        { "get", MG_CMD_GET },         { "gets", MG_CMD_GETS },     { "gat", MG_CMD_GAT },
        { "gats", MG_CMD_GATS },       { "set", MG_CMD_SET },       { "add", MG_CMD_ADD },
        { "replace", MG_CMD_REPLACE }, { "append", MG_CMD_APPEND }, { "prepend", MG_CMD_PREPEND },
        { "cas", MG_CMD_CAS },         { "delete", MG_CMD_DELETE }, { "incr", MG_CMD_INCR },
        { "decr", MG_CMD_DECR },       { "touch", MG_CMD_TOUCH },   { "mg", MG_CMD_MG },
        { "ms", MG_CMD_MS },           { "md", MG_CMD_MD },         { "ma", MG_CMD_MA },
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(cmds); i++)
        if (word_is(words[1], cmds[i].name)) {
            if (words[2].len > MG_KEY_MAX || !mg_text_key_ok(words[2].p, words[2].len)) {
                request_reply_line(c, "CLIENT_ERROR bad key");
                return;
            }
            dispatch_explain(c, cmds[i].cmd, words[2]);
            return;
        }
    request_reply_line(c, "CLIENT_ERROR usage: route COMMAND KEY (a keyed command: get, set, ...)");
}

static void admin_switch_n(struct conn *c, const struct mg_slice *words, int n)
{
    MG_UNUSED(n);
    admin_switch(c, words);
}

static void admin_reload_n(struct conn *c, const struct mg_slice *words, int n)
{
    MG_UNUSED(n);
    admin_reload(c, words);
}

static void admin_auth_n(struct conn *c, const struct mg_slice *words, int n)
{
    MG_UNUSED(n);
    admin_auth(c, words);
}

/* The admin commands: their word, how many words they take in all (from, to), the usage. */
static const struct admin_cmd {
    const char *name;
    int minwords, maxwords;
    const char *usage;
    void (*run)(struct conn *c, const struct mg_slice *words, int n);
} admin_cmds[] = {
    { "switch", 3, 3, "CLIENT_ERROR usage: switch NAME PERCENT", admin_switch_n },
    { "reload", 1, 1, "CLIENT_ERROR usage: reload", admin_reload_n },
    { "auth", 2, 2, "CLIENT_ERROR usage: auth SECRET", admin_auth_n },
    { "slowlog", 2, 3, "CLIENT_ERROR usage: slowlog reset | off | MS [SIZE]", admin_slowlog },
    { "requestlog", 2, 2, "CLIENT_ERROR usage: requestlog N (every Nth request; 0: off)",
      admin_requestlog },
    { "route", 3, 3, "CLIENT_ERROR usage: route COMMAND KEY", admin_route },
    { "trace", 2, 4, "CLIENT_ERROR usage: trace start PATH [SAMPLE] | trace stop", admin_trace },
};

static const struct admin_cmd *admin_lookup(struct mg_slice word)
{
    for (size_t i = 0; i < sizeof(admin_cmds) / sizeof(admin_cmds[0]); i++)
        if (word.len == strlen(admin_cmds[i].name) &&
            memcmp(word.p, admin_cmds[i].name, word.len) == 0)
            return &admin_cmds[i];
    return NULL;
}

bool admin_command(struct conn *c, struct mg_slice line)
{
    uint32_t pos = 0;
    struct mg_slice word, words[ADMIN_MAX_WORDS];
    if (!mg_text_next_token(line, &pos, &word))
        return false;
    const struct admin_cmd *cmd = admin_lookup(word);
    if (cmd == NULL)
        return false;
    if (!c->admin && !settings.admin_on_data_port) {
        request_reply_line(c, "CLIENT_ERROR admin commands are only accepted on the admin port");
        return true;
    }
    if (admin_secret && !c->admin_authed && cmd->run != admin_auth_n) {
        request_reply_line(c, "CLIENT_ERROR authentication required");
        return true;
    }
    int n = admin_words(line, words, ADMIN_MAX_WORDS);
    if (n < cmd->minwords || n > cmd->maxwords) {
        request_reply_line(c, cmd->usage);
        return true;
    }
    cmd->run(c, words, n);
    return true;
}
