/* proto_text.c: incremental, allocation-free parser for client requests (text + meta). */
#include "proto_text.h"

#include <string.h>

/*
 * Behaviour follows memcached 1.6's proto_text.c, checked against a live 1.6.18:
 * the word count decides "ERROR" before any argument is looked at, "noreply" is the
 * last word of a well-counted line, and the first bad argument picks the message.
 * req->noreply is set on errors too, exactly when memcached would then stay silent
 * ("set a 0 x 5 noreply", "delete a 5 noreply"); on a miscounted line it is false.
 *
 * Deliberately stricter than memcached: numbers that do not fit their field are
 * refused (memcached truncates flags, exptime and bytes to 32 bits without a word),
 * exptime is any int64, keys may not hold control bytes, and a line over the limit
 * closes the connection even when its '\n' arrived (memcached only closes when the
 * '\n' is missing from its first read).
 *
 * Every scan is bounded by the line end, which is itself found inside [buf, buf+len);
 * nothing is read past buf+len and only *req and *consumed are written.
 */

#define ERR_ERROR "ERROR"
#define ERR_FORMAT "CLIENT_ERROR bad command line format"
#define ERR_DELETE "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
#define ERR_DELTA "CLIENT_ERROR invalid numeric delta argument"
#define ERR_EXPTIME "CLIENT_ERROR invalid exptime argument"
#define ERR_CHUNK "CLIENT_ERROR bad data chunk"
#define ERR_TOO_LARGE "SERVER_ERROR object too large for cache"
#define ERR_LINE "CLIENT_ERROR line too long"
#define ERR_FLAG "CLIENT_ERROR invalid flag"
#define ERR_FLAG_DUP "CLIENT_ERROR duplicate flag"

/* A meta flag's token (the letter included) longer than this is refused: memcached's
 * longest (opaque) is 32 bytes, numbers are at most 20 digits. */
#define META_TOKEN_MAX 64

/* Positional words after the command that any fixed-arity command may take (cas has
 * six); one more slot lets "too many" be seen without counting the whole line. */
#define TEXT_MAX_ARGS 7

static inline bool is_key_byte(unsigned char c)
{
    return c > ' ' && c != 127;
}

static inline const char *skip_spaces(const char *p, const char *end)
{
    while (p < end && *p == ' ')
        p++;
    return p;
}

static inline const char *skip_word(const char *p, const char *end)
{
    while (p < end && *p != ' ')
        p++;
    return p;
}

static inline struct mg_slice slice_of(const char *p, const char *end)
{
    struct mg_slice s = { p, (uint32_t)(end - p) };
    return s;
}

/* The rest of a line without its leading and trailing spaces (meta flags, stats args). */
static struct mg_slice trim(const char *p, const char *end)
{
    p = skip_spaces(p, end);
    while (end > p && end[-1] == ' ')
        end--;
    return slice_of(p, end);
}

static inline bool slice_is(struct mg_slice s, const char *lit, size_t n)
{
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

static inline bool is_noreply(struct mg_slice s)
{
    return slice_is(s, "noreply", 7);
}

/* Bounded decimal parsers: the buffer is not NUL-terminated, so no strto*. A leading
 * '+' is accepted because memcached's strtoul/strtol accept it; overflow is an error
 * (memcached truncates some of these silently; we refuse rather than guess). */
static bool parse_u64(struct mg_slice s, uint64_t *out)
{
    const char *p = s.p, *end = s.p + s.len;
    uint64_t v = 0;

    if (p < end && *p == '+')
        p++;
    if (p == end)
        return false;
    for (; p < end; p++) {
        unsigned d = (unsigned)(unsigned char)*p - '0';
        if (d > 9)
            return false;
        if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_u32(struct mg_slice s, uint32_t *out)
{
    uint64_t v;

    if (!parse_u64(s, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool parse_i64(struct mg_slice s, int64_t *out)
{
    bool neg = s.len > 0 && s.p[0] == '-';
    struct mg_slice mag = s;
    uint64_t v;

    if (neg) {
        mag.p++;
        mag.len--;
        if (mag.len > 0 && mag.p[0] == '+') /* "-+5" is not a number */
            return false;
    }
    if (!parse_u64(mag, &v))
        return false;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
        *out = v == 0 ? 0 : -(int64_t)(v - 1) - 1;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

/* Longest client key accepted: MG_KEY_MAX, unless a key style hashes long keys (then the
 * backend key is checked after the transform; see mg_text_set_key_max). Per thread: each
 * worker sets it from the config it runs, so a reload never writes it under another. */
static _Thread_local uint32_t client_key_max = MG_KEY_MAX;

void mg_text_set_key_max(uint32_t n)
{
    client_key_max = n;
}

static inline bool key_ok(struct mg_slice k)
{
    if (k.len > MG_KEY_MAX && k.len <= client_key_max)
        return mg_text_key_ok(k.p, MG_KEY_MAX) &&
               mg_text_key_ok(k.p + MG_KEY_MAX, k.len - MG_KEY_MAX);
    return mg_text_key_ok(k.p, k.len);
}

/* Does any byte of v fall below 0x21 (space, controls) or equal 0x7f? Exact (the borrow
 * of the subtraction can only mark bytes above one that is really there). Bytes from 0x80
 * have their top bit set in v, so ~v keeps them out. */
static inline bool word_has_bad_key_byte(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t d = v ^ (ones * 0x7f);
    return (((v - ones * 0x21) & ~v) | ((d - ones) & ~d)) & high;
}

bool mg_text_key_ok(const char *k, size_t len)
{
    if (len == 0 || len > MG_KEY_MAX)
        return false;
    uint64_t v;
    if (len >= 8) { /* a backend key from a Lua key function: 8 bytes a turn, the last 8 too */
        for (size_t i = 0; i + 8 < len; i += 8) {
            memcpy(&v, k + i, 8);
            if (word_has_bad_key_byte(v))
                return false;
        }
        memcpy(&v, k + len - 8, 8);
        return !word_has_bad_key_byte(v);
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_key_byte((unsigned char)k[i]))
            return false;
    }
    return true;
}

bool mg_text_next_token(struct mg_slice s, uint32_t *pos, struct mg_slice *tok)
{
    if (*pos >= s.len) /* checked first: s.p may be NULL when s is empty */
        return false;

    const char *end = s.p + s.len;
    const char *p;

    p = skip_spaces(s.p + *pos, end);
    if (p == end) {
        *pos = s.len;
        return false;
    }
    const char *e = skip_word(p, end);
    *tok = slice_of(p, e);
    *pos = (uint32_t)(e - s.p);
    return true;
}

static inline __attribute__((always_inline)) enum mg_cmd lookup_cmd(const char *w, size_t n)
{
#define IS(lit) (memcmp(w, lit, sizeof(lit) - 1) == 0)
    switch (n) {
    case 2:
        if (w[0] != 'm')
            break;
        switch (w[1]) {
        case 'g':
            return MG_CMD_MG;
        case 's':
            return MG_CMD_MS;
        case 'd':
            return MG_CMD_MD;
        case 'a':
            return MG_CMD_MA;
        case 'n':
            return MG_CMD_MN;
        case 'e':
            return MG_CMD_ME;
        }
        break;
    case 3:
        if (IS("get"))
            return MG_CMD_GET;
        if (IS("set"))
            return MG_CMD_SET;
        if (IS("gat"))
            return MG_CMD_GAT;
        if (IS("add"))
            return MG_CMD_ADD;
        if (IS("cas"))
            return MG_CMD_CAS;
        break;
    case 4:
        if (IS("gets"))
            return MG_CMD_GETS;
        if (IS("gats"))
            return MG_CMD_GATS;
        if (IS("incr"))
            return MG_CMD_INCR;
        if (IS("decr"))
            return MG_CMD_DECR;
        if (IS("quit"))
            return MG_CMD_QUIT;
        break;
    case 5:
        if (IS("touch"))
            return MG_CMD_TOUCH;
        if (IS("stats"))
            return MG_CMD_STATS;
        break;
    case 6:
        if (IS("delete"))
            return MG_CMD_DELETE;
        if (IS("append"))
            return MG_CMD_APPEND;
        break;
    case 7:
        if (IS("replace"))
            return MG_CMD_REPLACE;
        if (IS("prepend"))
            return MG_CMD_PREPEND;
        if (IS("version"))
            return MG_CMD_VERSION;
        break;
    case 9:
        if (IS("flush_all"))
            return MG_CMD_FLUSH_ALL;
        if (IS("verbosity"))
            return MG_CMD_VERBOSITY;
        break;
    }
    return MG_CMD_UNKNOWN;
#undef IS
}

/* get/gets/gat/gats, whose lines may be of any length. Leading spaces are skipped as
 * memcached does. */
static bool is_multiget(const char *buf, size_t len)
{
    const char *end = buf + len;
    const char *p = skip_spaces(buf, end);
    size_t n = (size_t)(end - p);

    if (n >= 4 && (memcmp(p, "get ", 4) == 0 || memcmp(p, "gat ", 4) == 0))
        return true;
    return n >= 5 && (memcmp(p, "gets ", 5) == 0 || memcmp(p, "gats ", 5) == 0);
}

/* Finds the '\n' ending the first line. Returns it, or NULL with *rc set to MG_EAGAIN
 * (keep reading) or MG_ECLOSE (no '\n' where one must be by now). A line may hold up
 * to MG_LINE_MAX bytes before its '\n' ('\r' included): a prefix that could still become
 * valid is never refused. */
static const char *find_eol(const char *buf, size_t len, int *rc)
{
    size_t scan = len <= MG_LINE_MAX ? len : MG_LINE_MAX + 1;
    const char *nl = memchr(buf, '\n', scan);

    if (MG_LIKELY(nl != NULL))
        return nl;
    *rc = len <= MG_LINE_MAX ? MG_EAGAIN : MG_ECLOSE;
    return NULL;
}

static inline int fail(struct mg_text_req *req, int rc, const char *err)
{
    req->err = err;
    return rc;
}

/* Splits up to TEXT_MAX_ARGS words; returns how many there are, capped at one more than
 * that so "too many" is visible without walking a long junk line to its end. */
static uint32_t split_args(const char *p, const char *end, struct mg_slice *a)
{
    uint32_t n = 0;

    for (;;) {
        p = skip_spaces(p, end);
        if (p == end)
            return n;
        if (n == TEXT_MAX_ARGS)
            return n + 1;
        const char *e = skip_word(p, end);
        a[n++] = slice_of(p, e);
        p = e;
    }
}

/* get/gets/gat/gats: one pass counts and validates the keys, MG_GET_CHUNK_KEYS at most.
 * *next is set to where the next key starts when more follow, else NULL. memcached's
 * get accepts any byte but space in a key; we refuse control bytes too (they cannot be
 * forwarded safely and break the meta protocol to the backends). */
static int parse_retrieval(struct mg_text_req *req, const char *p, const char *end, bool touch,
                           const char **next)
{
    bool bad = false;
    const char *first, *last_end = NULL;

    *next = NULL;
    p = skip_spaces(p, end);
    if (p == end)
        return fail(req, MG_ECLIENT, ERR_ERROR);
    if (touch) {
        const char *e = skip_word(p, end);
        if (!parse_i64(slice_of(p, e), &req->exptime))
            return fail(req, MG_ECLIENT, ERR_EXPTIME);
        p = skip_spaces(e, end);
        /* "gat 10" with no key: memcached answers a bare "END". Reporting it as an
         * error whose reply is END gives the client exactly that, and spares every
         * caller an nkeys == 0 case. */
        if (p == end)
            return fail(req, MG_ECLIENT, "END");
    }
    first = p;
    while (p < end) {
        if (req->nkeys == MG_GET_CHUNK_KEYS) {
            *next = p;
            break;
        }
        const char *k = p;
        while (p < end && *p != ' ') {
            bad |= !is_key_byte((unsigned char)*p);
            p++;
        }
        bad |= (size_t)(p - k) > client_key_max;
        if (req->nkeys == 0)
            req->key = slice_of(k, p);
        req->nkeys++;
        last_end = p;
        p = skip_spaces(p, end);
    }
    if (bad) {
        req->nkeys = 0; /* key still names the first one, for the log */
        return fail(req, MG_ECLIENT, ERR_FORMAT);
    }
    req->keys = slice_of(first, last_end);
    return MG_OK;
}

/* A get/gets/gat/gats piece: the keys from rest up to end (the line's end, or for an
 * unterminated line its last space), MG_GET_CHUNK_KEYS at most; more keys after them
 * (or an unterminated line) make it partial. */
static inline __attribute__((always_inline)) int parse_get_piece(struct mg_text_req *req,
                                                                 const char *buf, const char *rest,
                                                                 const char *end, bool line_ends,
                                                                 size_t *consumed)
{
    const char *next;
    int rc =
        parse_retrieval(req, rest, end, req->cmd == MG_CMD_GAT || req->cmd == MG_CMD_GATS, &next);

    if (next == NULL && line_ends)
        return rc;
    if (next == NULL) /* the whole unterminated piece: through its last space */
        next = skip_spaces(end, buf + *consumed);
    req->partial = true;
    *consumed = (size_t)(next - buf);
    if (rc == MG_OK)
        req->prefix_len = (uint32_t)(req->keys.p - buf);
    return rc;
}

/* The data block of set/add/.../cas/ms: line bytes are already known good. */
static int take_data(struct mg_text_req *req, const char *buf, size_t len, size_t line_bytes,
                     uint32_t value_max, size_t *consumed)
{
    if (req->vlen > value_max) {
        *consumed = line_bytes;
        req->swallow = (uint64_t)req->vlen + 2;
        return fail(req, MG_ESWALLOW, ERR_TOO_LARGE);
    }
    /* value_max may be up to UINT32_MAX: do the sum in 64 bits for 32-bit hosts. */
    uint64_t total = (uint64_t)line_bytes + req->vlen + 2;
    if ((uint64_t)len < total) {
        *consumed = 0;
        return MG_EAGAIN;
    }
    const char *d = buf + line_bytes;
    *consumed = (size_t)total;
    /* memcached consumes the whole announced block before complaining, then reads on
     * from there; mirror it so both ends agree on where the next command starts. */
    if (d[req->vlen] != '\r' || d[req->vlen + 1] != '\n')
        return fail(req, MG_ECLIENT, ERR_CHUNK);
    req->data.p = d;
    req->data.len = req->vlen;
    return MG_OK;
}

/* set/add/replace/append/prepend/cas. On a bad line memcached does NOT swallow the data
 * block ("set a x 0 5\r\nhello\r\n" answers CLIENT_ERROR then ERROR for "hello"): it
 * only knows to swallow once the length parsed and the item could not be allocated. We
 * consume the line alone in the same cases so client and gateway stay in step.
 * One difference: memcached calls a length above INT_MAX - 2 a bad line; we take any
 * uint32 length and swallow it as too large, which keeps us in step should the client
 * really send that many bytes. */
static int parse_storage(struct mg_text_req *req, const char *p, const char *end, const char *buf,
                         size_t len, size_t line_bytes, uint32_t value_max, size_t *consumed)
{
    struct mg_slice a[TEXT_MAX_ARGS];
    bool cas = req->cmd == MG_CMD_CAS;
    uint32_t want = cas ? 5 : 4;
    uint32_t n = split_args(p, end, a);

    if (n != want && n != want + 1)
        return fail(req, MG_ECLIENT, ERR_ERROR);
    /* Like memcached, any extra last word that is not "noreply" is ignored. */
    req->noreply = is_noreply(a[n - 1]);
    req->key = a[0];
    if (!key_ok(a[0]))
        return fail(req, MG_ECLIENT, ERR_FORMAT);
    if (!parse_u32(a[1], &req->flags) || !parse_i64(a[2], &req->exptime) ||
        !parse_u32(a[3], &req->vlen))
        return fail(req, MG_ECLIENT, ERR_FORMAT);
    if (cas && !parse_u64(a[4], &req->cas))
        return fail(req, MG_ECLIENT, ERR_FORMAT);
    return take_data(req, buf, len, line_bytes, value_max, consumed);
}

/* The flags each meta command takes (protocol.txt, memcached 1.6): letters that stand
 * alone, and letters that take a token. E is the newer explicit-CAS flag, x md's
 * "remove the value only"; a backend that lacks one answers a single CLIENT_ERROR. */
struct meta_grammar {
    const char *bare, *token;
};
static const struct meta_grammar meta_grammar[] = {
    [MG_CMD_MG] = { "bcfhklqstuv", "ENORT" },
    [MG_CMD_MS] = { "bcIkq", "CEFMOT" },
    [MG_CMD_MD] = { "bIkqx", "CEOT" },
    [MG_CMD_MA] = { "bcktqv", "CDEJMNOT" },
    /* no b: memcached 1.6 answers `me` for an item that mg's N flag created with the
     * decoded key bytes, which may hold \r\n and split the reply line */
    [MG_CMD_ME] = { "", "" },
};

#define letter_bit mg_meta_letter_bit

/* Check req->args flag by flag for req->cmd (see proto_text.h); sets b64 and quiet.
 * Returns NULL when good, else the error line. */
static const char *meta_check_flags(struct mg_text_req *req)
{
    const struct meta_grammar *g = &meta_grammar[req->cmd];
    const char *p = req->args.p, *end = p + req->args.len;
    uint64_t seen = 0;
    req->k_after = 0;

    while ((p = skip_spaces(p, end)) < end) {
        const char *e = skip_word(p, end);
        size_t n = (size_t)(e - p);
        unsigned char f = (unsigned char)*p;
        int bit = letter_bit(f);
        if (bit < 0 || n > META_TOKEN_MAX)
            return ERR_FLAG;
        if (strchr(g->bare, f) != NULL) {
            if (n != 1)
                return ERR_FLAG;
        } else if (strchr(g->token, f) == NULL) {
            return ERR_FLAG;
        }
        for (const char *q = p + 1; q < e; q++)
            if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 127)
                return ERR_FLAG;
        if (seen & (1ull << bit))
            return ERR_FLAG_DUP;
        if (seen & (1ull << letter_bit('k')))
            req->k_after |= 1ull << bit;
        seen |= 1ull << bit;
        p = e;
    }
    req->b64 = (seen >> letter_bit('b')) & 1;
    req->quiet = (seen >> letter_bit('q')) & 1;
    req->echo_key = (seen >> letter_bit('k')) & 1;
    return NULL;
}

/* ms <key> <datalen> <flags>*. A line whose length does not parse is consumed alone, as
 * memcached does; once the length is known, a bad key or flag also drops the data block
 * (newer memcached does the same for the key), so the value is never read as commands. */
static int parse_ms(struct mg_text_req *req, const char *p, const char *end, const char *buf,
                    size_t len, size_t line_bytes, uint32_t value_max, size_t *consumed)
{
    p = skip_spaces(p, end);
    if (p == end)
        return fail(req, MG_ECLIENT, ERR_ERROR);
    const char *e = skip_word(p, end);
    req->key = slice_of(p, e);
    p = skip_spaces(e, end);
    e = skip_word(p, end);
    if (p == end || !parse_u32(slice_of(p, e), &req->vlen))
        return fail(req, MG_ECLIENT, ERR_FORMAT);
    req->args = trim(e, end);
    const char *err = key_ok(req->key) ? meta_check_flags(req) : ERR_FORMAT;
    if (err != NULL) {
        req->swallow = (uint64_t)req->vlen + 2;
        return fail(req, MG_ESWALLOW, err);
    }
    return take_data(req, buf, len, line_bytes, value_max, consumed);
}

/* mg/md/ma/me <key> <flags>*. memcached answers ERROR for a missing key except for me,
 * which says CLIENT_ERROR. */
static int parse_meta_key(struct mg_text_req *req, const char *p, const char *end)
{
    p = skip_spaces(p, end);
    if (p == end)
        return fail(req, MG_ECLIENT, req->cmd == MG_CMD_ME ? ERR_FORMAT : ERR_ERROR);
    const char *e = skip_word(p, end);
    req->key = slice_of(p, e);
    if (!key_ok(req->key))
        return fail(req, MG_ECLIENT, ERR_FORMAT);
    req->args = trim(e, end);
    const char *err = meta_check_flags(req);
    return err ? fail(req, MG_ECLIENT, err) : MG_OK;
}

/* delete <key> [0] [noreply]: the legacy hold time may only be "0". */
static int parse_delete(struct mg_text_req *req, const struct mg_slice *a, uint32_t n)
{
    if (n < 1 || n > 3)
        return fail(req, MG_ECLIENT, ERR_ERROR);
    req->key = a[0];
    if (n > 1) {
        bool zero = slice_is(a[1], "0", 1);
        req->noreply = is_noreply(a[n - 1]);
        if (!(n == 2 ? zero || req->noreply : zero && req->noreply))
            return fail(req, MG_ECLIENT, ERR_DELETE);
    }
    return key_ok(a[0]) ? MG_OK : fail(req, MG_ECLIENT, ERR_FORMAT);
}

/* incr/decr <key> <delta> [noreply] and touch <key> <exptime> [noreply]. */
static int parse_key_num(struct mg_text_req *req, const struct mg_slice *a, uint32_t n)
{
    bool ok;

    if (n != 2 && n != 3)
        return fail(req, MG_ECLIENT, ERR_ERROR);
    req->noreply = is_noreply(a[n - 1]);
    req->key = a[0];
    if (!key_ok(a[0]))
        return fail(req, MG_ECLIENT, ERR_FORMAT);
    if (req->cmd == MG_CMD_TOUCH) {
        ok = parse_i64(a[1], &req->exptime);
        return ok ? MG_OK : fail(req, MG_ECLIENT, ERR_EXPTIME);
    }
    ok = parse_u64(a[1], &req->delta);
    return ok ? MG_OK : fail(req, MG_ECLIENT, ERR_DELTA);
}

/* flush_all [delay] [noreply]. memcached parses the first word as the delay whenever the
 * word count is not exactly "flush_all [noreply]", so "flush_all 10 x" is a 10 s flush
 * and "flush_all noreply 10" is a bad delay. */
static int parse_flush_all(struct mg_text_req *req, const struct mg_slice *a, uint32_t n)
{
    if (n > 2)
        return fail(req, MG_ECLIENT, ERR_ERROR);
    req->noreply = n > 0 && is_noreply(a[n - 1]);
    if (n != (req->noreply ? 1u : 0u) && !parse_i64(a[0], &req->num))
        return fail(req, MG_ECLIENT, ERR_EXPTIME);
    return MG_OK;
}

/* verbosity <level> [noreply]: a second word that is not noreply is ignored. */
static int parse_verbosity(struct mg_text_req *req, const struct mg_slice *a, uint32_t n)
{
    uint32_t level;

    if (n != 1 && n != 2)
        return fail(req, MG_ECLIENT, ERR_ERROR);
    req->noreply = is_noreply(a[n - 1]);
    if (!parse_u32(a[0], &level))
        return fail(req, MG_ECLIENT, ERR_FORMAT);
    req->num = level;
    return MG_OK;
}

/* A get line with no '\n' in its first MG_LINE_MAX bytes: take the keys that end before
 * the last space there. None (a key, or an exptime, longer than that) closes the
 * connection. */
static int parse_unterminated_get(struct mg_text_req *req, const char *buf, size_t *consumed)
{
    const char *end = buf + MG_LINE_MAX;
    const char *w = skip_spaces(buf, end);
    const char *rest = skip_word(w, end);

    req->cmd = lookup_cmd(w, (size_t)(rest - w));
    while (end > rest && end[-1] != ' ')
        end--;
    while (end > rest && end[-1] == ' ')
        end--;
    const char *k = skip_spaces(rest, end);
    if (req->cmd == MG_CMD_GAT || req->cmd == MG_CMD_GATS)
        k = skip_spaces(skip_word(k, end), end);
    if (k == end)
        return fail(req, MG_ECLOSE, ERR_LINE);
    req->line = slice_of(buf, end);
    *consumed = MG_LINE_MAX; /* bound for parse_get_piece's skip over spaces */
    return parse_get_piece(req, buf, rest, end, false, consumed);
}

int mg_text_parse(const char *buf, size_t len, uint32_t value_max, struct mg_text_req *req,
                  size_t *consumed)
{
    struct mg_slice a[TEXT_MAX_ARGS];
    int rc = MG_OK;

    memset(req, 0, sizeof(*req));
    *consumed = 0;
    if (len == 0)
        return MG_EAGAIN;

    const char *nl = find_eol(buf, len, &rc);
    if (!nl) {
        if (rc == MG_ECLOSE && is_multiget(buf, len))
            return parse_unterminated_get(req, buf, consumed);
        if (rc == MG_ECLOSE)
            req->err = ERR_LINE;
        return rc;
    }
    size_t line_bytes = (size_t)(nl - buf) + 1;
    const char *end = nl > buf && nl[-1] == '\r' ? nl - 1 : nl;
    req->line = slice_of(buf, end);
    *consumed = line_bytes;

    const char *w = skip_spaces(buf, end);
    const char *rest = skip_word(w, end);
    req->cmd = lookup_cmd(w, (size_t)(rest - w));

    switch (req->cmd) {
    case MG_CMD_GET:
    case MG_CMD_GETS:
    case MG_CMD_GAT:
    case MG_CMD_GATS:
        return parse_get_piece(req, buf, rest, end, true, consumed);
    case MG_CMD_SET:
    case MG_CMD_ADD:
    case MG_CMD_REPLACE:
    case MG_CMD_APPEND:
    case MG_CMD_PREPEND:
    case MG_CMD_CAS:
        return parse_storage(req, rest, end, buf, len, line_bytes, value_max, consumed);
    case MG_CMD_MS:
        return parse_ms(req, rest, end, buf, len, line_bytes, value_max, consumed);
    case MG_CMD_MG:
    case MG_CMD_MD:
    case MG_CMD_MA:
    case MG_CMD_ME:
        return parse_meta_key(req, rest, end);
    case MG_CMD_MN:
        req->args = trim(rest, end);
        return MG_OK;
    case MG_CMD_DELETE:
        return parse_delete(req, a, split_args(rest, end, a));
    case MG_CMD_INCR:
    case MG_CMD_DECR:
    case MG_CMD_TOUCH:
        return parse_key_num(req, a, split_args(rest, end, a));
    case MG_CMD_FLUSH_ALL:
        return parse_flush_all(req, a, split_args(rest, end, a));
    case MG_CMD_VERBOSITY:
        return parse_verbosity(req, a, split_args(rest, end, a));
    case MG_CMD_STATS:
        req->args = trim(rest, end);
        return MG_OK;
    case MG_CMD_VERSION: /* memcached ignores any words after these two */
    case MG_CMD_QUIT:
        return MG_OK;
    default:
        /* Unknown words, empty lines and binary junk: "ERROR", line consumed, so the
         * connection survives; the admin layer may still recognise the word. */
        req->cmd = MG_CMD_UNKNOWN;
        req->args = req->line;
        return fail(req, MG_ECLIENT, ERR_ERROR);
    }
}

const char *mg_cmd_name(enum mg_cmd cmd)
{
    static const char *const names[] = {
        [MG_CMD_NONE] = "none",       [MG_CMD_GET] = "get",
        [MG_CMD_GETS] = "gets",       [MG_CMD_GAT] = "gat",
        [MG_CMD_GATS] = "gats",       [MG_CMD_SET] = "set",
        [MG_CMD_ADD] = "add",         [MG_CMD_REPLACE] = "replace",
        [MG_CMD_APPEND] = "append",   [MG_CMD_PREPEND] = "prepend",
        [MG_CMD_CAS] = "cas",         [MG_CMD_DELETE] = "delete",
        [MG_CMD_INCR] = "incr",       [MG_CMD_DECR] = "decr",
        [MG_CMD_TOUCH] = "touch",     [MG_CMD_FLUSH_ALL] = "flush_all",
        [MG_CMD_VERSION] = "version", [MG_CMD_VERBOSITY] = "verbosity",
        [MG_CMD_STATS] = "stats",     [MG_CMD_QUIT] = "quit",
        [MG_CMD_MG] = "mg",           [MG_CMD_MS] = "ms",
        [MG_CMD_MD] = "md",           [MG_CMD_MA] = "ma",
        [MG_CMD_MN] = "mn",           [MG_CMD_ME] = "me",
        [MG_CMD_UNKNOWN] = "unknown",
    };
    return (size_t)cmd < sizeof(names) / sizeof(names[0]) && names[cmd] ? names[cmd] : "unknown";
}
