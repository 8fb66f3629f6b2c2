/* proto_text.h: incremental parser for client requests (classic text + meta commands). */
#ifndef MG_PROTO_TEXT_H
#define MG_PROTO_TEXT_H

#include "mg.h"

enum mg_cmd {
    MG_CMD_NONE = 0,
    /* retrieval: keys in req->keys (space separated, nkeys of them) */
    MG_CMD_GET,
    MG_CMD_GETS,
    MG_CMD_GAT,  /* gat <exptime> <key>+ */
    MG_CMD_GATS, /* gats <exptime> <key>+ */
    /* storage: key, flags, exptime, vlen, data (+cas for CAS) */
    MG_CMD_SET,
    MG_CMD_ADD,
    MG_CMD_REPLACE,
    MG_CMD_APPEND,
    MG_CMD_PREPEND,
    MG_CMD_CAS,
    /* single key */
    MG_CMD_DELETE, /* delete <key> [0] [noreply] */
    MG_CMD_INCR,   /* incr <key> <delta> [noreply] */
    MG_CMD_DECR,
    MG_CMD_TOUCH, /* touch <key> <exptime> [noreply] */
    /* gateway-level */
    MG_CMD_FLUSH_ALL, /* flush_all [delay] [noreply]; delay in num */
    MG_CMD_VERSION,
    MG_CMD_VERBOSITY, /* verbosity <n> [noreply] */
    MG_CMD_STATS,     /* stats [args...]; args slice holds the rest of the line */
    MG_CMD_QUIT,
    /* meta: key in req->key, the rest of the line (flags) in req->args */
    MG_CMD_MG,
    MG_CMD_MS, /* ms <key> <datalen> <flags>*; vlen + data; args = flags after datalen */
    MG_CMD_MD,
    MG_CMD_MA,
    MG_CMD_MN, /* no key */
    MG_CMD_ME, /* me <key> */
    /* anything else: a word we do not know. args = whole line (for the admin layer). */
    MG_CMD_UNKNOWN,
};

/* One parsed request. Every slice borrows from the buffer passed to mg_text_parse and
 * is valid only until that buffer is compacted or freed: copy what must outlive it. */
struct mg_text_req {
    enum mg_cmd cmd;
    struct mg_slice key;  /* first (or only) key */
    struct mg_slice keys; /* retrieval: every key, separated by runs of spaces */
    uint32_t nkeys;
    uint32_t flags;       /* storage: client flags (32-bit) */
    int64_t exptime;      /* storage, touch, gat, gats */
    uint32_t vlen;        /* storage/ms: announced data length */
    struct mg_slice data; /* storage/ms: the data block without its trailing \r\n */
    uint64_t cas;         /* cas */
    uint64_t delta;       /* incr/decr */
    int64_t num;          /* flush_all delay (0 if absent), verbosity level */
    bool noreply;
    bool b64;             /* meta: the b flag (the key is base64) */
    bool partial;         /* retrieval: more keys of the same line follow (see below) */
    uint32_t prefix_len;  /* partial: bytes of the line before its first key */
    bool quiet;           /* meta: the q flag */
    bool echo_key;        /* meta: the k flag (return the key) */
    uint64_t k_after;     /* meta: the flags after k (mg_meta_letter_bit) */
    struct mg_slice args; /* meta flags (checked: see below); stats arguments; unknown: line */
    struct mg_slice line; /* the command line without \r\n (always set when a line was seen) */
    /* errors */
    const char *err;  /* on MG_ECLIENT/MG_ECLOSE/MG_ESWALLOW: full reply line without \r\n */
    uint64_t swallow; /* on MG_ESWALLOW: bytes still to drop after *consumed */
};

/* A meta flag letter's bit in a 64-bit set: a-z 0..25, A-Z 26..51; -1 for anything else. */
static inline int mg_meta_letter_bit(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= 'A' && c <= 'Z')
        return 26 + (c - 'A');
    return -1;
}

/* Meta flags (mg/ms/md/ma/me) are checked flag by flag, so that every command forwarded
 * has exactly one reply of a known shape: each flag is one letter the command knows
 * (protocol.txt), upper-case ones (but I) take a token of printable ASCII, the others
 * stand alone ("qx" is refused, not read as q), no letter twice, no control bytes.
 * Anything else is MG_ECLIENT ("CLIENT_ERROR invalid flag" / "... duplicate flag"); for
 * ms, whose length is known by then, MG_ESWALLOW drops its data block too. */

/* Parse one request from buf[0..len).
 * Returns:
 *   MG_OK       *req filled; *consumed = bytes of line (+ data block + \r\n)
 *   MG_EAGAIN   incomplete; *consumed = 0. Caller reads more and calls again with the
 *               same start. (If len > MG_LINE_MAX without '\n' this is MG_ECLOSE instead,
 *               except for get/gets/gat/gats: see partial.)
 * A get/gets/gat/gats line is taken MG_GET_CHUNK_KEYS keys at a time, and one without its
 * '\n' after MG_LINE_MAX bytes as far as its last whole key: req->partial is then set,
 * *consumed covers the keys taken, and the caller puts the line's first prefix_len bytes
 * (the command and exptime) back just before the rest and parses again. A partial request
 * is answered without END. On MG_ECLIENT with partial set, the caller drops the rest of
 * the line (through its '\n').
 *   MG_ECLIENT  bad request; reply req->err; *consumed bytes are dropped; keep going.
 *               (unknown command -> "ERROR", bad format -> "CLIENT_ERROR ...",
 *               data block not ending in \r\n -> "CLIENT_ERROR bad data chunk")
 *   MG_ESWALLOW value larger than value_max: reply req->err
 *               ("SERVER_ERROR object too large for cache"), drop *consumed bytes (the
 *               line) and then req->swallow more bytes (the data block + \r\n).
 *   MG_ECLOSE   reply req->err, then close the connection (line too long).
 * Never allocates, never reads past buf+len. */
int mg_text_parse(const char *buf, size_t len, uint32_t value_max, struct mg_text_req *req,
                  size_t *consumed);

/* Iterate over space-separated tokens of s. *pos starts at 0. Returns false at the end. */
bool mg_text_next_token(struct mg_slice s, uint32_t *pos, struct mg_slice *tok);

/* Accept client keys up to n bytes (default MG_KEY_MAX) in this thread's parses. A worker
 * sets it from its config (a key style that hashes long keys raises it; a reload that
 * drops it lowers it again); whoever transforms keys checks the result is <= MG_KEY_MAX. */
void mg_text_set_key_max(uint32_t n);

/* True when k is a valid key for the text protocol: 1..250 bytes, no control chars/space. */
bool mg_text_key_ok(const char *k, size_t len);

/* The command's word as clients send it ("get", "ms", ...; "none" for MG_CMD_NONE, the
 * gateway's own answers). */
const char *mg_cmd_name(enum mg_cmd cmd);

#endif
