/* admin.c: admin commands (switch changes, reload) on admin listeners. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "config.h"
#include "conn.h"
#include "proto_text.h"
#include "request.h"
#include "switch.h"
#include "worker.h"

#define ADMIN_MAX_WORDS 4

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

/* The admin commands: their word, how many words they take in all, the usage line. */
static const struct admin_cmd {
    const char *name;
    int nwords;
    const char *usage;
    void (*run)(struct conn *c, const struct mg_slice *words);
} admin_cmds[] = {
    { "switch", 3, "CLIENT_ERROR usage: switch NAME PERCENT", admin_switch },
    { "reload", 1, "CLIENT_ERROR usage: reload", admin_reload },
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
    if (admin_words(line, words, ADMIN_MAX_WORDS) != cmd->nwords) {
        request_reply_line(c, cmd->usage);
        return true;
    }
    cmd->run(c, words);
    return true;
}
