/* lmc_fill.c: stores or checks N keys through libmemcached's ketama, placed as pylibmc would. */

/*
 * Usage: lmc_fill --servers H:P[,H:P...] --count N [--prefix STR] [--value-size N]
 *                 [--mode set|check]
 *
 * Key i is "<prefix><i>" (prefix "key" by default), i = 0..N-1; its value is "v<i>", padded
 * (when shorter) to --value-size bytes with a pattern that depends on i, so a value returned
 * for the wrong key or cut short is caught.
 * set   prints "set N" (N keys stored);           exit 0 only if all N were stored.
 * check prints "ok N missing M" (N right, M not found; " bad B" added for wrong values);
 *       exit 0 only if every key came back with its value.
 * Exit 2 on bad arguments. Servers are "host:port" or "[v6addr]:port"; a single address
 * (a mintgate listener, say) is a ring of one and receives every key.
 *
 * Client set-up copies pylibmc's Client(servers, behaviors={"ketama": True}) with its
 * defaults: binary protocol off (text), MEMCACHED_BEHAVIOR_KETAMA set before the servers are
 * added, every server added with weight 1. Only libmemcached is linked, so this file does
 * not share ketama.c's parser.
 */

#include <ctype.h>
#include <getopt.h>
#include <libmemcached/memcached.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILL_KEY_MAX 250
#define FILL_COUNT_MAX 100000000UL
#define FILL_VALUE_MAX (128UL * 1024 * 1024)
#define FILL_HOST_MAX 255
#define FILL_ERRORS_SHOWN 5
#define FILL_TIMEOUT_MS 2000

struct fill_opts {
    const char *servers;
    const char *prefix;
    unsigned long count;
    unsigned long value_size; /* 0: no padding */
    bool check;
};

static void fill_usage(void)
{
    fprintf(stderr, "usage: lmc_fill --servers HOST:PORT[,HOST:PORT...] --count N "
                    "[--prefix STR] [--value-size N] [--mode set|check]\n");
}

/* Print a usage error and exit 2. */
static void fill_die(const char *fmt, ...)
{
    va_list ap;

    fputs("lmc_fill: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* Decimal number <= max, digits only. Exits on anything else. */
static unsigned long fill_number(const char *what, const char *s, unsigned long max)
{
    unsigned long v = 0;

    if (*s == '\0')
        fill_die("%s: empty", what);
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            fill_die("%s: \"%s\" is not a number", what, s);
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > max)
            fill_die("%s: %s is above %lu", what, s, max);
    }
    return v;
}

/* Add one "host:port" / "[v6addr]:port" server (brackets dropped, as pylibmc does), or a
 * unix socket "/path". */
static void fill_add_server(memcached_st *mc, const char *spec, size_t len)
{
    char buf[FILL_HOST_MAX + 16], *host = buf, *colon;
    unsigned long port;
    memcached_return_t rc;

    if (len == 0 || len >= sizeof(buf))
        fill_die("bad server \"%.*s\"", (int)len, spec);
    memcpy(buf, spec, len);
    buf[len] = '\0';
    if (buf[0] == '/') { /* a unix socket, as pylibmc takes it */
        rc = memcached_server_add_unix_socket_with_weight(mc, buf, 1);
        if (rc != MEMCACHED_SUCCESS)
            fill_die("server \"%s\": %s", buf, memcached_last_error_message(mc));
        return;
    }
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (close == NULL || close[1] != ':')
            fill_die("bad server \"%s\"", buf);
        *close = '\0';
        host = buf + 1;
        colon = close + 1;
    } else {
        colon = strchr(buf, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            fill_die("bad server \"%s\": expected host:port or [v6addr]:port", buf);
        *colon = '\0';
    }
    if (*host == '\0' || *host == '/')
        fill_die("bad server \"%.*s\": bad host", (int)len, spec);
    port = fill_number("port", colon + 1, 65535);
    if (port == 0)
        fill_die("bad server \"%.*s\": port 0", (int)len, spec);
    rc = memcached_server_add_with_weight(mc, host, (in_port_t)port, 1);
    if (rc != MEMCACHED_SUCCESS)
        fill_die("server \"%.*s\": %s", (int)len, spec, memcached_last_error_message(mc));
}

/* A client configured as pylibmc's Client(servers, behaviors={"ketama": True}). */
static memcached_st *fill_client(const char *servers)
{
    memcached_st *mc = memcached_create(NULL);
    const char *p = servers;

    if (mc == NULL)
        fill_die("out of memory");
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 0);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA, 1);
    /* not pylibmc's defaults, but a dead server should fail a spec, not stall it */
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, FILL_TIMEOUT_MS);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, FILL_TIMEOUT_MS);
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        fill_add_server(mc, p, len);
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return mc;
}

/* Write key i into key[] and its value into val[] (value_size bytes if set). Returns the
 * value length; *klen gets the key length. */
static size_t fill_item(const struct fill_opts *o, unsigned long i, char *key, size_t *klen,
                        char *val)
{
    size_t vlen;

    *klen = (size_t)snprintf(key, FILL_KEY_MAX + 1, "%s%lu", o->prefix, i);
    vlen = (size_t)sprintf(val, "v%lu", i);
    for (; vlen < o->value_size; vlen++)
        val[vlen] = (char)('a' + (i + vlen) % 26);
    return vlen;
}

static void fill_report(memcached_st *mc, const char *what, const char *key, memcached_return_t rc,
                        unsigned long *shown)
{
    if ((*shown)++ < FILL_ERRORS_SHOWN)
        fprintf(stderr, "lmc_fill: %s %s: %s\n", what, key, memcached_strerror(mc, rc));
}

/* Mode set. Returns the exit status. */
static int fill_set(memcached_st *mc, const struct fill_opts *o, char *val)
{
    char key[FILL_KEY_MAX + 1];
    unsigned long stored = 0, failed = 0;

    for (unsigned long i = 0; i < o->count; i++) {
        size_t klen, vlen = fill_item(o, i, key, &klen, val);
        memcached_return_t rc = memcached_set(mc, key, klen, val, vlen, 0, 0);
        if (rc == MEMCACHED_SUCCESS)
            stored++;
        else
            fill_report(mc, "set", key, rc, &failed);
    }
    if (failed) {
        printf("set %lu failed %lu\n", stored, failed);
        return 1;
    }
    printf("set %lu\n", stored);
    return 0;
}

/* Mode check. Returns the exit status. */
static int fill_check(memcached_st *mc, const struct fill_opts *o, char *want)
{
    char key[FILL_KEY_MAX + 1];
    unsigned long ok = 0, missing = 0, bad = 0, errors = 0;

    for (unsigned long i = 0; i < o->count; i++) {
        size_t klen, wlen = fill_item(o, i, key, &klen, want), glen = 0;
        uint32_t flags = 0;
        memcached_return_t rc;
        char *got = memcached_get(mc, key, klen, &glen, &flags, &rc);

        if (rc == MEMCACHED_SUCCESS && glen == wlen && memcmp(got, want, wlen) == 0) {
            ok++;
        } else if (rc == MEMCACHED_SUCCESS) {
            if (bad++ < FILL_ERRORS_SHOWN)
                fprintf(stderr, "lmc_fill: get %s: wrong value (%zu bytes, want %zu)\n", key, glen,
                        wlen);
        } else {
            missing++;
            if (rc != MEMCACHED_NOTFOUND)
                fill_report(mc, "get", key, rc, &errors);
        }
        free(got);
    }
    if (bad)
        printf("ok %lu missing %lu bad %lu\n", ok, missing, bad);
    else
        printf("ok %lu missing %lu\n", ok, missing);
    return ok == o->count ? 0 : 1;
}

static void fill_parse(int argc, char **argv, struct fill_opts *o)
{
    static const struct option longopts[] = {
        { "servers", required_argument, NULL, 's' },
        { "count", required_argument, NULL, 'n' },
        { "prefix", required_argument, NULL, 'p' },
        { "value-size", required_argument, NULL, 'v' },
        { "mode", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool have_count = false;
    int c;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o->servers = optarg;
            break;
        case 'n':
            o->count = fill_number("--count", optarg, FILL_COUNT_MAX);
            have_count = true;
            break;
        case 'p':
            o->prefix = optarg;
            break;
        case 'v':
            o->value_size = fill_number("--value-size", optarg, FILL_VALUE_MAX);
            break;
        case 'm':
            if (strcmp(optarg, "set") != 0 && strcmp(optarg, "check") != 0)
                fill_die("--mode must be set or check");
            o->check = strcmp(optarg, "check") == 0;
            break;
        case 'h':
            fill_usage();
            exit(0);
        default:
            fill_usage();
            exit(2);
        }
    }
    if (optind != argc)
        fill_die("unexpected argument \"%s\"", argv[optind]);
    if (o->servers == NULL || !have_count) {
        fill_usage();
        exit(2);
    }
    for (const char *p = o->prefix; *p; p++)
        if (!isgraph((unsigned char)*p))
            fill_die("--prefix: no spaces or control characters");
    /* FILL_COUNT_MAX keeps the index to 8 digits */
    if (strlen(o->prefix) + 8 > FILL_KEY_MAX)
        fill_die("--prefix: longer than %d", FILL_KEY_MAX - 8);
}

int main(int argc, char **argv)
{
    struct fill_opts o = { NULL, "key", 0, 0, false };
    memcached_st *mc;
    char *val;
    int status;

    fill_parse(argc, argv, &o);
    val = malloc(o.value_size + 16); /* "v" and 8 digits fit even without padding */
    if (val == NULL)
        fill_die("out of memory");
    mc = fill_client(o.servers);
    status = o.check ? fill_check(mc, &o, val) : fill_set(mc, &o, val);
    memcached_free(mc);
    free(val);
    return status;
}
