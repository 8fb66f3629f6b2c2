/* proto_bin.h: memcached's binary protocol from clients: parsing into the text request,
 * and rendering a request's text reply as binary response packets. */
#ifndef MG_PROTO_BIN_H
#define MG_PROTO_BIN_H

#include "buf.h"
#include "proto_text.h"

#define MG_BIN_REQ 0x80
#define MG_BIN_RES 0x81
#define MG_BIN_HDR 24

/* Opcodes memcached implements (protocol_binary.h). */
enum mg_bin_op {
    MG_BIN_GET = 0x00,
    MG_BIN_SET = 0x01,
    MG_BIN_ADD = 0x02,
    MG_BIN_REPLACE = 0x03,
    MG_BIN_DELETE = 0x04,
    MG_BIN_INCR = 0x05,
    MG_BIN_DECR = 0x06,
    MG_BIN_QUIT = 0x07,
    MG_BIN_FLUSH = 0x08,
    MG_BIN_GETQ = 0x09,
    MG_BIN_NOOP = 0x0a,
    MG_BIN_VERSION = 0x0b,
    MG_BIN_GETK = 0x0c,
    MG_BIN_GETKQ = 0x0d,
    MG_BIN_APPEND = 0x0e,
    MG_BIN_PREPEND = 0x0f,
    MG_BIN_STAT = 0x10,
    MG_BIN_SETQ = 0x11,
    MG_BIN_ADDQ = 0x12,
    MG_BIN_REPLACEQ = 0x13,
    MG_BIN_DELETEQ = 0x14,
    MG_BIN_INCRQ = 0x15,
    MG_BIN_DECRQ = 0x16,
    MG_BIN_QUITQ = 0x17,
    MG_BIN_FLUSHQ = 0x18,
    MG_BIN_APPENDQ = 0x19,
    MG_BIN_PREPENDQ = 0x1a,
    MG_BIN_VERBOSITY = 0x1b,
    MG_BIN_TOUCH = 0x1c,
    MG_BIN_GAT = 0x1d,
    MG_BIN_GATQ = 0x1e,
    MG_BIN_SASL_LIST = 0x20,
    MG_BIN_SASL_AUTH = 0x21,
    MG_BIN_SASL_STEP = 0x22,
    MG_BIN_GATK = 0x23,
    MG_BIN_GATKQ = 0x24,
};

/* Response statuses, as memcached answers them. */
enum mg_bin_status {
    MG_BIN_OK = 0x0000,
    MG_BIN_ENOENT = 0x0001,
    MG_BIN_EEXISTS = 0x0002,
    MG_BIN_E2BIG = 0x0003,
    MG_BIN_EINVAL = 0x0004,
    MG_BIN_NOT_STORED = 0x0005,
    MG_BIN_DELTA_BADVAL = 0x0006,
    MG_BIN_AUTH_ERROR = 0x0020,
    MG_BIN_AUTH_CONTINUE = 0x0021,
    MG_BIN_UNKNOWN = 0x0081,
    MG_BIN_ENOMEM = 0x0082,
    MG_BIN_EINTERNAL = 0x0084,
};

/* What a binary request's reply needs besides the text reply the engine renders: kept
 * with the request (copied; the key too, for the commands that return it). */
struct mg_bin_ctx {
    uint8_t opcode; /* as the client sent it: the reply carries it back */
    bool quiet;     /* the Q variants: success (a get's miss) is not answered */
    bool with_key;  /* getk, gatk (and quiet): the key goes back */
    bool vivify;    /* incr/decr: create the item with `initial` when it is missing */
    uint8_t klen;
    uint32_t opaque; /* as sent (network order kept: it is echoed, never read) */
    uint64_t initial;
    int64_t vivify_ttl;
    char key[MG_KEY_MAX];
};

/* One parsed binary request: the text request it stands for, and its context. Slices
 * borrow the buffer given to mg_bin_parse. */
struct mg_bin_req {
    struct mg_text_req t;
    struct mg_bin_ctx ctx;
    struct mg_slice body; /* sasl: the mechanism in t.key, the data here */
    uint16_t status;      /* MG_ECLIENT/MG_ECLOSE/MG_ESWALLOW: the status to answer */
    bool gateway;         /* noop, sasl: answered by the connection, not dispatched */
};

/* Parse one request from buf[0..len).
 * Returns:
 *   MG_OK       *req filled; *consumed = header + body bytes.
 *   MG_EAGAIN   the header, its extras and key are not all there yet (the body of a store
 *               too, when it is within value_max); *consumed = 0.
 *   MG_ESWALLOW answer req->status (for req->ctx), drop *consumed bytes and then
 *               req->t.swallow more (a body over value_max, an unknown opcode's body).
 *   MG_ECLOSE   answer req->status if it is not 0, then close (bad magic: status 0,
 *               lengths that do not add up, a key over 250 bytes, bad extras).
 * Never allocates, never reads past buf+len. */
int mg_bin_parse(const char *buf, size_t len, uint32_t value_max, struct mg_bin_req *req,
                 size_t *consumed);

/* Append one response packet to out. Returns MG_OK or MG_ERR (out of memory). */
int mg_bin_packet(struct buf *out, const struct mg_bin_ctx *ctx, uint16_t status, uint64_t cas,
                  struct mg_slice extras, struct mg_slice key, struct mg_slice value);

/* Render the text reply text[0..len) (what the engine rendered for the text request the
 * binary one became) as memcached's binary answer into out, following ctx; cas: the item's
 * CAS after a store or an incr (0 when unknown). Quiet requests that succeeded add nothing.
 * Returns MG_OK or MG_ERR (out of memory). */
int mg_bin_from_text(struct buf *out, const struct mg_bin_ctx *ctx, const char *text, size_t len,
                     uint64_t cas);

/* The text reply line that mg_bin_from_text turns into status (for the errors the parser
 * finds: E2BIG, EINVAL, UNKNOWN, AUTH_ERROR, ENOMEM). */
const char *mg_bin_status_line(uint16_t status);

/* The text of a status, as memcached words it in an error's body. */
const char *mg_bin_status_text(uint16_t status);

#endif
