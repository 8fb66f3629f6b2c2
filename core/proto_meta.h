/* proto_meta.h: parser for replies coming back from memcached backends (meta protocol). */
#ifndef MG_PROTO_META_H
#define MG_PROTO_META_H

#include "mg.h"

enum mg_rstatus {
    MG_R_NONE = 0,
    MG_R_VA,           /* VA <size> <flags>*\r\n<data>\r\n */
    MG_R_HD,           /* HD <flags>* */
    MG_R_EN,           /* EN (miss) */
    MG_R_NF,           /* NF (not found) */
    MG_R_NS,           /* NS (not stored) */
    MG_R_EX,           /* EX (exists / cas mismatch) */
    MG_R_MN,           /* MN (meta no-op) */
    MG_R_ME,           /* ME <key> <debug data> (the whole line after "ME " in flags) */
    MG_R_OK,           /* OK (flush_all, verbosity) */
    MG_R_ERROR,        /* ERROR */
    MG_R_CLIENT_ERROR, /* CLIENT_ERROR <msg>; msg in flags */
    MG_R_SERVER_ERROR, /* SERVER_ERROR <msg>; msg in flags */
    MG_R_OTHER,        /* any other line (VERSION ..., STAT ...): whole line in flags */
};

/* One parsed reply. Slices borrow from the buffer passed to mg_meta_parse_reply. */
struct mg_meta_reply {
    enum mg_rstatus status;
    struct mg_slice flags; /* the tokens after the status code (after <size> for VA) */
    struct mg_slice data;  /* VA: the value without its trailing \r\n */
    struct mg_slice line;  /* the whole first line without \r\n */
    uint32_t vlen;         /* VA: announced size */
};

/* Parse one reply from buf[0..len).
 * Returns MG_OK (reply filled, *consumed = bytes of the whole reply incl. data block),
 * MG_EAGAIN (incomplete, *consumed = 0) or MG_ERR (the stream is corrupt: garbage that
 * is not a reply, a VA whose data block does not end in \r\n, a line over 8 KiB, a VA
 * larger than value_max). On MG_ERR the caller must close the backend connection. */
int mg_meta_parse_reply(const char *buf, size_t len, uint32_t value_max, struct mg_meta_reply *rep,
                        size_t *consumed);

/* Find flag letter f in a meta flags slice ("f123 c456 k..."). Returns true and sets
 * *val to the token after the letter (possibly empty) when found. */
bool mg_meta_flag(struct mg_slice flags, char f, struct mg_slice *val);

/* The number after flag letter f (its leading digits; c, f, t ...): 0 when the flag is not
 * there or has none. */
static inline uint64_t mg_meta_flag_u64(struct mg_slice flags, char f)
{
    struct mg_slice v;
    uint64_t x = 0;
    if (!mg_meta_flag(flags, f, &v))
        return 0;
    for (uint32_t i = 0; i < v.len && v.p[i] >= '0' && v.p[i] <= '9'; i++)
        x = x * 10 + (uint64_t)(v.p[i] - '0');
    return x;
}

#endif
