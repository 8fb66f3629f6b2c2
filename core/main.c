/* main.c: command line, startup, listeners, worker threads and signals. */
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "config.h"
#include "conn.h"
#include "health.h"
#include "hotkeys.h"
#include "log.h"
#include "lua_vm.h"
#include "metrics.h"
#include "near.h"
#include "proto_text.h"
#include "slowlog.h"
#include "stats.h"
#include "stats_render.h"
#include "trace.h"
#include "worker.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: mintgate [options] [config.lua]\n"
        "  -l, --listen ADDR:PORT      listen here (repeatable; default 127.0.0.1:11211)\n"
        "  -A, --admin ADDR:PORT       admin listener: switch changes, reload (repeatable;\n"
        "                              loopback or unix:/path unless --admin-public)\n"
        "      --admin-public          allow admin commands on non-loopback addresses\n"
        "      --auth-file FILE        clients must authenticate (memcached's -Y: user:password\n"
        "                              per line; SASL PLAIN for binary clients, a set of\n"
        "                              \"user password\" first for text ones)\n"
        "      --admin-secret-file F   admin connections must send `auth SECRET` first;\n"
        "                              SECRET is F's content (one word)\n"
        "  -s, --servers H:P[,H:P...]  a default pool, when no config script is given\n"
        "  -t, --threads N             worker threads (default: number of cores)\n"
        "  -c, --max-conns N           max client connections (default 4096)\n"
        "  -I, --max-item-size BYTES   largest value accepted (default 1m; k/m suffixes)\n"
        "      --connect-timeout SEC   backend connect timeout (default 1)\n"
        "      --timeout SEC           backend reply timeout (default 1)\n"
        "      --failure-limit N       failures in a row before a backend is ejected (2)\n"
        "      --retry-timeout SEC     how long an ejected backend rests (default 2)\n"
        "      --connections N         connections per backend server per worker (1)\n"
        "      --max-inflight N        requests waiting on one backend connection before\n"
        "                              SERVER_ERROR backend busy (default: no limit)\n"
        "      --eject fail|remap      -s pool: an ejected server's keys fail (default)\n"
        "                              or go over the live servers (auto_eject_hosts)\n"
        "      --batch-loops N         loop iterations a backend write may wait while more\n"
        "                              requests keep arriving (default 3; 0: never wait)\n"
        "      --metrics ADDR:PORT     serve Prometheus metrics (GET /metrics) here\n"
        "      --slowlog-ms MS         requests this slow go into the slow log (100)\n"
        "      --observe on|off        per-request histograms, slow log, hot keys (on)\n"
        "  -v, -vv                     log more (info, debug)\n"
        "      --check config.lua      validate a config script and exit 0 or 1\n"
        "  -V, --version               print the version and exit\n"
        "  -h, --help                  this help\n");
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return MG_ERR;
    *out = v;
    return MG_OK;
}

static int parse_size(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return MG_ERR;
    if (*end == 'k' || *end == 'K')
        v *= 1024, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1024 * 1024, end++;
    if (*end != '\0' || v < 1 || v > 1024ull * 1024 * 1024)
        return MG_ERR;
    *out = (uint32_t)v;
    return MG_OK;
}

static void die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "mintgate: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(try mintgate --help)\n");
    exit(2);
}

enum {
    OPT_CONNECT_TIMEOUT = 256,
    OPT_TIMEOUT,
    OPT_FAILURE_LIMIT,
    OPT_RETRY_TIMEOUT,
    OPT_BATCH_LOOPS,
    OPT_CHECK,
    OPT_ADMIN_PUBLIC,
    OPT_ADMIN_SECRET_FILE,
    OPT_AUTH_FILE,
    OPT_EJECT,
    OPT_MAX_INFLIGHT,
    OPT_CONNECTIONS,
    OPT_METRICS,
    OPT_SLOWLOG_MS,
    OPT_OBSERVE
};

static bool is_unix(const char *addr);

/* Fills settings from argv. Exits 2 on bad usage. Returns the --check script or NULL. */
static const char *parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "admin", required_argument, NULL, 'A' },
        { "servers", required_argument, NULL, 's' },
        { "threads", required_argument, NULL, 't' },
        { "max-conns", required_argument, NULL, 'c' },
        { "max-item-size", required_argument, NULL, 'I' },
        { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "failure-limit", required_argument, NULL, OPT_FAILURE_LIMIT },
        { "retry-timeout", required_argument, NULL, OPT_RETRY_TIMEOUT },
        { "eject", required_argument, NULL, OPT_EJECT },
        { "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
        { "connections", required_argument, NULL, OPT_CONNECTIONS },
        { "batch-loops", required_argument, NULL, OPT_BATCH_LOOPS },
        { "metrics", required_argument, NULL, OPT_METRICS },
        { "slowlog-ms", required_argument, NULL, OPT_SLOWLOG_MS },
        { "observe", required_argument, NULL, OPT_OBSERVE },
        { "check", required_argument, NULL, OPT_CHECK },
        { "admin-public", no_argument, NULL, OPT_ADMIN_PUBLIC },
        { "admin-secret-file", required_argument, NULL, OPT_ADMIN_SECRET_FILE },
        { "auth-file", required_argument, NULL, OPT_AUTH_FILE },
        { "verbose", no_argument, NULL, 'v' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *check = NULL;
    double v;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":l:A:s:t:c:I:vVh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l':
            if (settings.nlisten >= MG_MAX_LISTENERS)
                die_usage("too many -l (at most %s)", "16");
            settings.listen[settings.nlisten++] = strdup(optarg);
            settings.listen_from_cli = true;
            break;
        case 'A':
            if (settings.nadmin >= MG_MAX_LISTENERS)
                die_usage("too many -A (at most %s)", "16");
            settings.admin[settings.nadmin++] = strdup(optarg);
            settings.admin_from_cli = true;
            break;
        case 's':
            settings.servers_arg = optarg;
            break;
        case 't':
            if (parse_num(optarg, 1, 256, &v) != MG_OK || v != (int)v)
                die_usage("-t wants a whole number from 1 to 256, not '%s'", optarg);
            settings.threads = (int)v;
            break;
        case 'c':
            if (parse_num(optarg, 1, 1000000, &v) != MG_OK || v != (int)v)
                die_usage("-c wants a whole number from 1 to 1000000, not '%s'", optarg);
            settings.max_conns = (int)v;
            break;
        case 'I':
            if (parse_size(optarg, &settings.value_max) != MG_OK)
                die_usage("-I wants a size in bytes (k/m suffixes allowed), not '%s'", optarg);
            break;
        case OPT_CONNECT_TIMEOUT:
        case OPT_TIMEOUT:
        case OPT_RETRY_TIMEOUT:
            if (parse_num(optarg, 0.001, 3600, &v) != MG_OK)
                die_usage("timeouts want seconds between 0.001 and 3600, not '%s'", optarg);
            if (ch == OPT_CONNECT_TIMEOUT)
                settings.opts.connect_timeout = v;
            else if (ch == OPT_TIMEOUT)
                settings.opts.timeout = v;
            else
                settings.opts.retry_timeout = v;
            break;
        case OPT_FAILURE_LIMIT:
            if (parse_num(optarg, 0, 1000, &v) != MG_OK || v != (int)v)
                die_usage("--failure-limit wants a whole number from 0 to 1000, not '%s'", optarg);
            settings.opts.failure_limit = (uint32_t)v;
            break;
        case OPT_CONNECTIONS:
            if (parse_num(optarg, 1, 64, &v) != MG_OK || v != (int)v)
                die_usage("--connections wants a whole number from 1 to 64, not '%s'", optarg);
            settings.opts.connections = (uint32_t)v;
            break;
        case OPT_MAX_INFLIGHT:
            if (parse_num(optarg, 1, 1e9, &v) != MG_OK || v != (int)v)
                die_usage("--max-inflight wants a whole number from 1 to 1000000000, not '%s'",
                          optarg);
            settings.opts.max_inflight = (uint32_t)v;
            break;
        case OPT_EJECT:
            if (strcmp(optarg, "remap") != 0 && strcmp(optarg, "fail") != 0)
                die_usage("--eject wants fail or remap, not '%s'", optarg);
            settings.eject_remap = strcmp(optarg, "remap") == 0;
            break;
        case OPT_BATCH_LOOPS:
            if (parse_num(optarg, 0, 16, &v) != MG_OK || v != (int)v)
                die_usage("--batch-loops wants a whole number from 0 to 16, not '%s'", optarg);
            settings.batch_loops = (int)v;
            break;
        case OPT_METRICS:
            if (settings.nmetrics >= MG_MAX_LISTENERS)
                die_usage("too many --metrics (at most %s)", "16");
            if (is_unix(optarg))
                die_usage("--metrics wants HOST:PORT, not '%s'", optarg);
            settings.metrics[settings.nmetrics++] = strdup(optarg);
            settings.metrics_from_cli = true;
            break;
        case OPT_SLOWLOG_MS:
            if (parse_num(optarg, 0, 1e9, &v) != MG_OK)
                die_usage("--slowlog-ms wants milliseconds from 0 to 1000000000, not '%s'", optarg);
            settings.slowlog_ms = v;
            settings.slowlog_from_cli = true;
            break;
        case OPT_OBSERVE:
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
                die_usage("--observe wants on or off, not '%s'", optarg);
            stats_observe = strcmp(optarg, "on") == 0;
            break;
        case OPT_CHECK:
            check = optarg;
            break;
        case OPT_ADMIN_PUBLIC:
            settings.admin_public = true;
            break;
        case OPT_ADMIN_SECRET_FILE:
            free(settings.admin_secret_file);
            settings.admin_secret_file = strdup(optarg);
            settings.admin_secret_from_cli = true;
            break;
        case OPT_AUTH_FILE:
            free(settings.auth_file);
            settings.auth_file = strdup(optarg);
            settings.auth_from_cli = true;
            break;
        case 'v':
            log_level = log_level < LOG_INFO ? LOG_INFO : LOG_DEBUG;
            break;
        case 'V':
            printf("mintgate %s\n", MG_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        case ':':
            die_usage("option %s needs an argument", argv[optind - 1]);
            break;
        default:
            die_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        settings.script = argv[optind++];
    if (optind < argc)
        die_usage("unexpected argument '%s'", argv[optind]);
    return check;
}

/* The default pool from -s "h:p,h:p". */
static struct config *config_from_servers(const char *arg, char *err, size_t errlen)
{
    char *copy = strdup(arg);
    const char *names[256];
    uint32_t n = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok && n < 256;
         tok = strtok_r(NULL, ",", &save))
        names[n++] = tok;
    struct config *c = config_new();
    int pi = config_add_pool(c, "default", names, n, &settings.opts, err, errlen);
    if (pi >= 0)
        c->pools[pi].remap = settings.eject_remap;
    if (pi < 0 || config_finish(c, err, errlen) != MG_OK) {
        config_unref(c);
        c = NULL;
    }
    free(copy);
    return c;
}

/* A listening socket for addr with SO_REUSEPORT, so each worker can have its own.
 * *port_io: 0 to use addr's port, else forced (for port 0 in the address). */
static bool is_unix(const char *addr)
{
    return strncmp(addr, "unix:", 5) == 0;
}

/* A listening unix socket at path (a stale socket file there is replaced). One is shared
 * by every worker: SO_REUSEPORT does not apply. Mode 0600: admin sockets are the owner's. */
static int listen_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sun.sun_path) || path[0] == '\0') {
        snprintf(err, errlen, "bad unix socket path '%s'", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    mode_t old = umask(0177);
    int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errlen, "cannot listen on unix:%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int listen_socket(const char *addr, uint16_t *port_io, char *err, size_t errlen)
{
    if (is_unix(addr))
        return listen_unix(addr + 5, err, errlen);
    char host[256];
    uint16_t port;
    if (config_split_hostport(addr, host, sizeof(host), &port) != MG_OK) {
        snprintf(err, errlen, "bad listen address '%s' (want host:port)", addr);
        return -1;
    }
    if (*port_io)
        port = *port_io;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve listen address '%s': %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    }
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_io = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* Is the listening socket fd bound to a loopback address (127.0.0.0/8, ::1, or
 * ::ffff:127.x.y.z)? 0.0.0.0, :: and every other address are public. */
static bool listen_is_loopback(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return false;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family != AF_INET6)
        return false;
    const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* Does listener addr (fd) take admin commands from a public address without the opt-in?
 * Then fill err, saying how to opt in, and return true. *public is set for the start-up
 * warning. Unix sockets are never public (they are the owner's, mode 0600). */
static bool admin_exposed(const char *addr, int fd, bool admin, bool *public, char *err,
                          size_t errlen)
{
    *public = (admin || settings.admin_on_data_port) && !is_unix(addr) && !listen_is_loopback(fd);
    if (!*public || settings.admin_public)
        return false;
    if (admin)
        snprintf(err, errlen,
                 "admin listener %s is not on a loopback address: anyone who can reach it "
                 "could change switches and reload. To allow it, give --admin-public (or "
                 "mg.admin { ..., public = true } in the script), and a secret with "
                 "--admin-secret-file (or secret_file = ...) so clients must send `auth`",
                 addr);
    else
        snprintf(err, errlen,
                 "admin commands are accepted on the data port %s (on_data_port = true), "
                 "which is not on a loopback address. To allow it, give --admin-public (or "
                 "mg.admin { ..., public = true }), and a secret with --admin-secret-file "
                 "(or secret_file = ...)",
                 addr);
    return true;
}

static void warn_public(const char *addr, bool admin)
{
    const char *what = admin ? "admin listener" : "data port taking admin commands";
    if (admin_has_secret())
        log_warn("%s %s is public (not loopback); it has a secret: clients must send "
                 "`auth SECRET` before admin commands",
                 what, addr);
    else
        log_warn("%s %s is public (not loopback) and has no secret: anyone who can reach it "
                 "may change switches and reload (see --admin-secret-file)",
                 what, addr);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    MG_UNUSED(revents);
    log_info("signal %d: stopping", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

/* The near cache's hot set from the hot-key detector (near.h): published every quarter
 * second (near_tick), and when a worker's detector sees a key reach the rate (near_wake),
 * at once unless the last publication is under NEAR_HOT_GAP old (then near_soon, when it
 * is). */
static ev_timer near_tick, near_soon;
static ev_async near_wake;
static struct ev_loop *main_loop;
static double near_published = -1;

static void near_hot_run(struct ev_loop *loop)
{
    near_hot_woken();
    near_published = ev_now(loop);
    bool on;
    double rps;
    uint32_t max;
    near_hot_params(&on, &rps, &max);
    if (!on) {
        if (!near_hot_empty())
            near_hot_publish(NULL, NULL, NULL, 0);
        return;
    }
    static struct hotkey_entry top[NEAR_HOT_MAX];
    const char *keys[NEAR_HOT_MAX];
    uint32_t lens[NEAR_HOT_MAX];
    int pools[NEAR_HOT_MAX];
    double scale;
    uint32_t n = metrics_hotkeys(top, max < NEAR_HOT_MAX ? max : NEAR_HOT_MAX, &scale), k = 0;
    near_hot_set_scale(scale);
    for (uint32_t i = 0; i < n; i++) {
        if (top[i].count * scale < rps)
            continue;
        keys[k] = top[i].key;
        lens[k] = top[i].klen;
        pools[k] = top[i].pool;
        k++;
    }
    near_hot_publish(keys, lens, pools, k);
}

/* near_tick and near_soon */
static void near_hot_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    MG_UNUSED(t);
    MG_UNUSED(revents);
    near_hot_run(loop);
}

static void near_hot_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    MG_UNUSED(a);
    MG_UNUSED(revents);
    ev_now_update(loop);
    double wait = near_published + NEAR_HOT_GAP - ev_now(loop);
    if (wait <= 0) {
        near_hot_run(loop);
    } else if (!ev_is_active(&near_soon)) {
        ev_timer_set(&near_soon, wait, 0);
        ev_timer_start(loop, &near_soon);
    }
}

/* near_hot_count's waker: any worker thread. */
static void near_hot_waker(void)
{
    ev_async_send(main_loop, &near_wake);
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    MG_UNUSED(loop);
    MG_UNUSED(w);
    MG_UNUSED(revents);
    char err[2048];
    log_info("SIGHUP: reloading %s", settings.script ? settings.script : "(no script)");
    worker_reload_all(err, sizeof(err), NULL); /* logs either way */
}

int main(int argc, char **argv)
{
    char err[4096] = "";
    /* Values above this come from mmap and go back to the system when freed. glibc would
     * otherwise raise the threshold after the first large free, and a burst of 1 MB
     * replies would stay in the heap after their connections are gone. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    settings.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (settings.threads < 1)
        settings.threads = 1;
    settings.max_conns = 4096;
    settings.value_max = MG_VALUE_MAX_DEFAULT;
    settings.batch_loops = 3;
    settings.slowlog_ms = -1;
    config_default_opts(&settings.opts);
    const char *check = parse_args(argc, argv);

    if (check) {
        struct config *c = lua_config_load(check, &settings, err, sizeof(err));
        if (c == NULL) {
            fprintf(stderr, "mintgate: %s\n", err);
            return 1;
        }
        if (settings.admin_secret_file &&
            admin_secret_load(settings.admin_secret_file, err, sizeof(err)) != MG_OK) {
            fprintf(stderr, "mintgate: %s\n", err);
            config_unref(c);
            return 1;
        }
        admin_secret_free();
        if (settings.auth_file && auth_load(settings.auth_file, err, sizeof(err)) != MG_OK) {
            fprintf(stderr, "mintgate: %s\n", err);
            config_unref(c);
            return 1;
        }
        auth_free();
        printf("%s: ok (%u pools, %u servers)\n", check, c->npools, c->nservers);
        config_unref(c);
        return 0;
    }

    struct config *cfg = NULL;
    if (settings.script)
        cfg = lua_config_load(settings.script, &settings, err, sizeof(err));
    else if (settings.servers_arg)
        cfg = config_from_servers(settings.servers_arg, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "no backends: give -s HOST:PORT[,...] or a config script");
    if (cfg != NULL && settings.admin_secret_file &&
        admin_secret_load(settings.admin_secret_file, err, sizeof(err)) != MG_OK) {
        config_unref(cfg);
        cfg = NULL;
    }
    if (cfg != NULL && settings.auth_file &&
        auth_load(settings.auth_file, err, sizeof(err)) != MG_OK) {
        config_unref(cfg);
        cfg = NULL;
    }
    if (cfg == NULL) {
        fprintf(stderr, "mintgate: %s\n", err);
        return 1;
    }
    if (settings.nlisten == 0)
        settings.listen[settings.nlisten++] = strdup("127.0.0.1:11211");

    signal(SIGPIPE, SIG_IGN);
    process_started = time(NULL);
    if (trace_init(settings.threads) != MG_OK) {
        fprintf(stderr, "mintgate: out of memory\n");
        config_unref(cfg);
        return 1;
    }
    if (observe_apply(&settings, err, sizeof(err)) != MG_OK) {
        fprintf(stderr, "mintgate: %s\n", err);
        trace_free();
        config_unref(cfg);
        return 1;
    }
    static const struct server_calls server_calls = { admin_command, stats_render };
    conn_server = &server_calls; /* before the workers start: read-only from then on */
    nworkers = settings.threads;
    workers = calloc((size_t)nworkers, sizeof(struct worker));
    struct listener ls[MG_MAX_LISTENERS * 2];
    int nl = settings.nlisten + settings.nadmin;
    int rc = 0;
    for (int l = 0; l < nl; l++) {
        bool admin = l >= settings.nlisten;
        const char *addr = admin ? settings.admin[l - settings.nlisten] : settings.listen[l];
        ls[l] =
            (struct listener){ .fd = -1, .addr = addr, .admin = admin, .shared = is_unix(addr) };
    }
    /* block signals in workers; the main thread's loop takes them */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < nworkers && rc == 0; i++) {
        for (int l = 0; l < nl; l++) {
            struct listener *li = &ls[l];
            if (li->shared && i > 0)
                continue; /* one unix socket for every worker: its fd stays */
            li->fd = listen_socket(li->addr, &li->port, err, sizeof(err));
            if (li->fd >= 0 && i == 0 &&
                admin_exposed(li->addr, li->fd, li->admin, &li->public, err, sizeof(err))) {
                close(li->fd);
                li->fd = -1;
            }
            if (li->fd < 0) {
                for (int k = 0; k < l; k++)
                    if (!ls[k].shared || i == 0)
                        close(ls[k].fd);
                rc = 1;
                break;
            }
        }
        if (rc == 0 && worker_init(&workers[i], i, ls, nl, cfg, err, sizeof(err)) != MG_OK)
            rc = 1;
    }
    if (rc == 0)
        for (int i = 0; i < nworkers; i++)
            if (worker_start(&workers[i]) != MG_OK) {
                snprintf(err, sizeof(err), "cannot start worker threads");
                nworkers = i;
                rc = 1;
                break;
            }
    /* the main thread keeps every signal blocked until its handlers are in place: the
     * workers serve from here on, and a SIGHUP or SIGTERM sent as soon as the port answers
     * must wait for its handler rather than take its default action and kill the process */
    if (rc == 0) {
        for (int l = 0; l < nl; l++)
            log_info("%s on %s (port %u), %d threads", ls[l].admin ? "admin" : "listening",
                     ls[l].addr, ls[l].port, nworkers);
        for (int l = 0; l < nl; l++)
            if (ls[l].public)
                warn_public(ls[l].addr, ls[l].admin);
        struct ev_loop *loop = EV_DEFAULT;
        for (int m = 0; m < settings.nmetrics && rc == 0; m++) {
            uint16_t port = 0;
            int fd = listen_socket(settings.metrics[m], &port, err, sizeof(err));
            if (fd < 0 || metrics_http_start(loop, fd, err, sizeof(err)) != MG_OK) {
                if (fd >= 0)
                    close(fd);
                fprintf(stderr, "mintgate: metrics: %s\n", err);
                rc = 1;
                break;
            }
            log_info("metrics on %s (port %u)", settings.metrics[m], port);
        }
        ev_signal sterm, sint, shup;
        ev_signal_init(&sterm, on_stop_signal, SIGTERM);
        ev_signal_init(&sint, on_stop_signal, SIGINT);
        ev_signal_init(&shup, on_hup, SIGHUP);
        ev_signal_start(loop, &sterm);
        ev_signal_start(loop, &sint);
        ev_signal_start(loop, &shup);
        pthread_sigmask(SIG_SETMASK, &old, NULL); /* a signal that came meanwhile runs now */
        ev_timer_init(&near_tick, near_hot_timer, 0.25, 0.25);
        ev_timer_start(loop, &near_tick);
        ev_timer_init(&near_soon, near_hot_timer, 0, 0);
        ev_async_init(&near_wake, near_hot_wake_cb);
        ev_async_start(loop, &near_wake);
        main_loop = loop;
        near_hot_set_waker(near_hot_waker);
        near_hot_run(loop); /* tells the workers what a sample stands for before any request */
        if (rc == 0)
            ev_run(loop, 0);
        metrics_http_stop(loop);
        worker_stop_all();
        near_hot_set_waker(NULL); /* the workers are gone: nobody wakes near_wake now */
        ev_async_stop(loop, &near_wake);
        ev_timer_stop(loop, &near_soon);
        ev_timer_stop(loop, &near_tick);
    } else {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        fprintf(stderr, "mintgate: %s\n", err);
    }
    for (int i = 0; i < settings.threads; i++)
        worker_destroy(&workers[i]);
    near_free();
    for (int l = 0; l < nl && rc == 0; l++) /* shared unix sockets: closed and removed here */
        if (ls[l].shared) {
            close(ls[l].fd);
            unlink(ls[l].addr + 5);
        }
    free(workers);
    config_unref(cfg);
    for (int i = 0; i < settings.nlisten; i++)
        free(settings.listen[i]);
    for (int i = 0; i < settings.nadmin; i++)
        free(settings.admin[i]);
    for (int i = 0; i < settings.nmetrics; i++)
        free(settings.metrics[i]);
    slowlog_free();
    trace_free();
    free(settings.admin_secret_file);
    free(settings.auth_file);
    admin_secret_free();
    auth_free();
    health_free_all();
    ev_loop_destroy(EV_DEFAULT);
    return rc;
}
