/* plugin.h: how a scripting layer plugs into the engine: a table of function pointers. */
#ifndef MG_PLUGIN_H
#define MG_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

struct request;
struct op;

/* Events an op's settled reply raises (the script's hooks). */
enum op_event { OP_EV_SET = 0, OP_EV_DELETE, OP_EV_MISS, OP_EV_COUNT };

/* Installed on a worker (worker->plugin) by the Lua layer when its script has functions
 * to run per request; NULL: no script, or none per request (tables and styles decide).
 * The engine reaches the script only through these. Each returns a status code. */
struct engine_plugin {
    /* Resolve the key of op index i of r (key: its placement bytes) into r->ops[i].res.
     * MG_OK/MG_ERR: r->res_until is i + 1 (MG_ERR: res.pool is RES_FAILED, the key
     * slice holds the reply line); MG_EAGAIN: dispatch_resume(r) follows once done. */
    int (*resolve_key)(struct request *r, uint32_t i, const char *key, size_t klen);
    /* Resolve ops [first, first + n) of a multi-key read (their ckey set) in one go.
     * MG_OK: r->res_until is first + n; MG_EAGAIN: dispatch_resume(r) follows once done;
     * MG_ERR: no batch could be made (the caller resolves key by key). */
    int (*resolve_batch)(struct request *r, uint32_t first, uint32_t n);
    /* Run the hook for event on op. MG_EAGAIN: it waits, and op_finish(op) is called
     * once it returned; MG_OK: nothing left to do. */
    int (*hook)(struct op *op, enum op_event event);
};

#endif
