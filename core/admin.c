/* admin.c: admin commands (switch changes, reload) on admin listeners. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "proto_text.h"
#include "request.h"
#include "switch.h"
#include "worker.h"

static bool word_is(struct mg_slice s, const char *w)
{
    return s.len == strlen(w) && memcmp(s.p, w, s.len) == 0;
}

/* switch NAME PERCENT */
static void admin_switch(struct conn *c, struct mg_slice args, uint32_t pos)
{
    struct mg_slice name, pct, extra;
    if (!mg_text_next_token(args, &pos, &name) || !mg_text_next_token(args, &pos, &pct) ||
        mg_text_next_token(args, &pos, &extra) || name.len >= 64 || pct.len >= 32) {
        request_reply_line(c, "CLIENT_ERROR usage: switch NAME PERCENT");
        return;
    }
    char n[64], v[32], *end;
    memcpy(n, name.p, name.len);
    n[name.len] = '\0';
    memcpy(v, pct.p, pct.len);
    v[pct.len] = '\0';
    double percent = strtod(v, &end);
    if (*end != '\0' || end == v || !(percent >= 0 && percent <= 100)) {
        request_reply_line(c, "CLIENT_ERROR percent must be a number from 0 to 100");
        return;
    }
    if (switch_set(n, percent) != MG_OK) {
        request_reply_line(c, "CLIENT_ERROR unknown switch");
        return;
    }
    request_reply_line(c, "OK");
}

static void admin_reload(struct conn *c)
{
    char err[2048], line[600];
    if (worker_reload_all(err, sizeof(err)) == MG_OK) {
        request_reply_line(c, "OK");
        return;
    }
    size_t n = strcspn(err, "\r\n");
    snprintf(line, sizeof(line), "SERVER_ERROR reload failed: %.*s", (int)(n > 500 ? 500 : n), err);
    request_reply_line(c, line);
}

bool admin_command(struct conn *c, struct mg_slice line)
{
    uint32_t pos = 0;
    struct mg_slice word;
    if (!mg_text_next_token(line, &pos, &word))
        return false;
    bool is_switch = word_is(word, "switch"), is_reload = word_is(word, "reload");
    if (!is_switch && !is_reload)
        return false;
    if (!c->admin && !settings.admin_on_data_port) {
        request_reply_line(c, "CLIENT_ERROR admin commands are only accepted on the admin port");
        return true;
    }
    if (is_switch)
        admin_switch(c, line, pos);
    else
        admin_reload(c);
    return true;
}
