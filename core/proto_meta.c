/* proto_meta.c: allocation-free parser for replies from memcached backends (meta protocol). */
#include "proto_meta.h"

#include <string.h>

/* A reply line longer than this is not something memcached sends: the stream is bad. */
#define META_LINE_MAX 8192

static inline struct mg_slice slice_of(const char *p, const char *end)
{
    struct mg_slice s = { p, (uint32_t)(end - p) };
    return s;
}

static inline const char *skip_spaces(const char *p, const char *end)
{
    while (p < end && *p == ' ')
        p++;
    return p;
}

/* The rest of a line after a status word: leading and trailing spaces dropped. */
static struct mg_slice rest_of(const char *p, const char *end)
{
    p = skip_spaces(p, end);
    while (end > p && end[-1] == ' ')
        end--;
    return slice_of(p, end);
}

/* Every memcached reply line starts with an upper-case status word or a digit (incr/decr
 * answers) and holds printable bytes only. Anything else (binary protocol packets,
 * NULs, a reply stream we are misaligned in) is corruption, not an "other" line. Bytes
 * >= 0x80 are allowed after the first: keys echoed back by the k flag may be UTF-8. */
static bool line_sane(const char *p, const char *end)
{
    if (p == end || !((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
        return false;
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < ' ' || c == 127)
            return false;
    }
    return true;
}

/* True when the line is exactly word w, or w followed by a space. */
static inline bool word_is(const char *p, size_t n, const char *w, size_t wn)
{
    return n >= wn && memcmp(p, w, wn) == 0 && (n == wn || p[wn] == ' ');
}

static enum mg_rstatus two_letter(const char *p)
{
    switch (p[0]) {
    case 'V':
        return p[1] == 'A' ? MG_R_VA : MG_R_NONE;
    case 'H':
        return p[1] == 'D' ? MG_R_HD : MG_R_NONE;
    case 'E':
        if (p[1] == 'N')
            return MG_R_EN;
        return p[1] == 'X' ? MG_R_EX : MG_R_NONE;
    case 'N':
        if (p[1] == 'F')
            return MG_R_NF;
        return p[1] == 'S' ? MG_R_NS : MG_R_NONE;
    case 'M':
        if (p[1] == 'N')
            return MG_R_MN;
        return p[1] == 'E' ? MG_R_ME : MG_R_NONE;
    case 'O':
        return p[1] == 'K' ? MG_R_OK : MG_R_NONE;
    }
    return MG_R_NONE;
}

/* VA <size> <flags>*: then the data block and its \r\n. */
static int parse_va(const char *buf, size_t len, size_t line_bytes, const char *end,
                    uint32_t value_max, struct mg_meta_reply *rep, size_t *consumed)
{
    const char *p = skip_spaces(buf + 2, end);
    uint64_t v = 0;

    if (p == end)
        return MG_ERR;
    for (; p < end && *p != ' '; p++) {
        unsigned d = (unsigned)(unsigned char)*p - '0';
        if (d > 9)
            return MG_ERR;
        v = v * 10 + d;
        if (v > value_max) /* also bounds v, so the multiply cannot overflow */
            return MG_ERR;
    }
    rep->vlen = (uint32_t)v;
    rep->flags = rest_of(p, end);

    uint64_t total = (uint64_t)line_bytes + v + 2;
    if ((uint64_t)len < total)
        return MG_EAGAIN;
    const char *d = buf + line_bytes;
    if (d[v] != '\r' || d[v + 1] != '\n')
        return MG_ERR;
    rep->data = slice_of(d, d + v);
    *consumed = (size_t)total;
    return MG_OK;
}

int mg_meta_parse_reply(const char *buf, size_t len, uint32_t value_max, struct mg_meta_reply *rep,
                        size_t *consumed)
{
    memset(rep, 0, sizeof(*rep));
    *consumed = 0;
    if (len == 0) /* buf may be NULL then */
        return MG_EAGAIN;

    size_t scan = len <= META_LINE_MAX ? len : META_LINE_MAX + 1;
    const char *nl = memchr(buf, '\n', scan);
    if (!nl)
        return len <= META_LINE_MAX ? MG_EAGAIN : MG_ERR;

    size_t line_bytes = (size_t)(nl - buf) + 1;
    const char *end = nl > buf && nl[-1] == '\r' ? nl - 1 : nl;
    size_t n = (size_t)(end - buf);
    if (!line_sane(buf, end))
        return MG_ERR;
    rep->line = slice_of(buf, end);

    enum mg_rstatus st = MG_R_NONE;
    if (n == 2 || (n > 2 && buf[2] == ' '))
        st = two_letter(buf);
    if (st == MG_R_VA) {
        rep->status = st;
        int rc = parse_va(buf, len, line_bytes, end, value_max, rep, consumed);
        if (rc != MG_OK)
            rep->status = MG_R_NONE;
        return rc;
    }
    *consumed = line_bytes;
    if (st != MG_R_NONE) {
        rep->status = st;
        rep->flags = rest_of(buf + 2, end);
    } else if (word_is(buf, n, "ERROR", 5)) {
        rep->status = MG_R_ERROR;
        rep->flags = rest_of(buf + 5, end);
    } else if (word_is(buf, n, "CLIENT_ERROR", 12)) {
        rep->status = MG_R_CLIENT_ERROR;
        rep->flags = rest_of(buf + 12, end);
    } else if (word_is(buf, n, "SERVER_ERROR", 12)) {
        rep->status = MG_R_SERVER_ERROR;
        rep->flags = rest_of(buf + 12, end);
    } else {
        rep->status = MG_R_OTHER;
        rep->flags = rep->line;
    }
    return MG_OK;
}

bool mg_meta_flag(struct mg_slice flags, char f, struct mg_slice *val)
{
    if (flags.len == 0) /* also keeps NULL + 0 out of the arithmetic below */
        return false;

    const char *p = flags.p, *end = flags.p + flags.len;

    while ((p = skip_spaces(p, end)) < end) {
        const char *t = p;
        while (p < end && *p != ' ')
            p++;
        if (*t == f) {
            *val = slice_of(t + 1, p);
            return true;
        }
    }
    return false;
}
