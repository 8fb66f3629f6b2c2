/* fleet.c: fleet switches: worker 0 reads each one's value from its pool about once a
 * second (server layer; through the engine's one-op requests). */
#include "fleet.h"

#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "log.h"
#include "meta_render.h"
#include "proto_meta.h"
#include "request.h"
#include "switch.h"
#include "worker.h"

/* A switch's fleet value arrived: apply it when it is a percentage. */
static void fleet_apply(struct request *r)
{
    struct mg_switch *s = switch_get((int)(intptr_t)r->udata);
    struct mg_meta_reply rep;
    size_t used;
    struct buf *o = &r->ops[0].out;
    if (s == NULL || mg_meta_parse_reply(buf_head(o), buf_unread(o), 64, &rep, &used) != MG_OK ||
        rep.status != MG_R_VA)
        return;
    char num[32];
    size_t n = rep.data.len < sizeof(num) - 1 ? rep.data.len : sizeof(num) - 1;
    memcpy(num, rep.data.p, n);
    num[n] = '\0';
    while (n > 0 && num[n - 1] == ' ') /* as `set` by hand may leave it */
        n--;
    double v;
    if (rep.data.len >= sizeof(num) || switch_parse_percent(num, n, &v) != MG_OK ||
        switch_set(s->name, v) != MG_OK)
        log_warn("switch %s: ignoring fleet value '%s' (want 0 to 100)", s->name, num);
}

static void fleet_done(struct request *r)
{
    fleet_apply(r);
    request_release(r);
}

void fleet_poll(struct worker *w)
{
    for (int id = 0; id < switch_count(); id++) {
        char fpool[64], fkey[251];
        if (!switch_fleet(id, fpool, fkey))
            continue;
        int pi = config_find_pool(w->cfg, fpool);
        if (pi < 0)
            continue;
        size_t klen = strlen(fkey);
        struct backend *b = worker_pick(w, &w->cfg->pools[pi], fkey, klen);
        enum op_fail why;
        struct request *r = request_one(w, b, klen, fleet_done, (void *)(intptr_t)id, &why);
        if (r == NULL && why == OP_FAIL_DOWN)
            continue;
        if (r == NULL)
            return;
        meta_render_read(&b->wbuf, fkey, klen, false);
        request_one_send(r);
    }
}
