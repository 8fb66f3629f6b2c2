/* auth.c: the users table and its checks (see auth.h). */
#include "auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define AUTH_USERS_MAX 4096
#define AUTH_FIELD_MAX 255

struct auth_user {
    char *user, *pass;
    size_t ulen, plen;
};

/* One loaded users file. Owned by auth.c: replaced whole by auth_load (under the write
 * lock), read by auth_check under the read lock; nothing else points into it. */
struct auth_table {
    struct auth_user *users;
    size_t n;
};

static struct auth_table *table;
static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;
/* Set once a file loaded (main thread, before the workers start or at a reload); read on
 * every binary request, hence an atomic and not the lock. */
static atomic_bool required;

static bool slice_equal_ct(const char *a, size_t alen, struct mg_slice b)
{
    volatile unsigned char diff = alen != b.len;
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)(i < b.len ? b.p[i] : ~a[i]);
    return diff == 0;
}

bool auth_check(struct mg_slice user, struct mg_slice password)
{
    bool ok = false;
    pthread_rwlock_rdlock(&table_lock);
    const struct auth_user *users = table ? table->users : NULL;
    size_t n = table ? table->n : 0;
    for (size_t i = 0; i < n; i++) { /* every entry, whoever matches */
        bool u = slice_equal_ct(users[i].user, users[i].ulen, user);
        bool p = slice_equal_ct(users[i].pass, users[i].plen, password);
        ok |= u & p;
    }
    pthread_rwlock_unlock(&table_lock);
    return ok;
}

bool auth_required(void)
{
    return atomic_load_explicit(&required, memory_order_relaxed);
}

static void table_free(struct auth_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        if (t->users[i].pass)
            memset(t->users[i].pass, 0, t->users[i].plen);
        free(t->users[i].user);
        free(t->users[i].pass);
    }
    free(t->users);
    free(t);
}

void auth_free(void)
{
    pthread_rwlock_wrlock(&table_lock);
    struct auth_table *old = table;
    table = NULL;
    atomic_store(&required, false);
    pthread_rwlock_unlock(&table_lock);
    table_free(old);
}

/* Parse the users file f into t. Returns MG_OK, or MG_ERR with err. */
static int table_read(FILE *f, const char *path, struct auth_table *t, char *err, size_t errlen)
{
    char line[2 * AUTH_FIELD_MAX + 4];
    int rc = MG_ERR, lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line || t->n >= AUTH_USERS_MAX) {
            snprintf(err, errlen, "auth file %s:%d: want user:password", path, lineno);
            goto done;
        }
        struct auth_user *nu = realloc(t->users, (t->n + 1) * sizeof(*t->users));
        if (nu == NULL)
            goto oom;
        t->users = nu;
        struct auth_user *u = &t->users[t->n];
        u->ulen = (size_t)(colon - line);
        u->plen = n - u->ulen - 1;
        u->user = strndup(line, u->ulen);
        u->pass = strndup(colon + 1, u->plen);
        t->n++;
        if (u->user == NULL || u->pass == NULL)
            goto oom;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "auth file %s: read error", path);
        goto done;
    }
    rc = MG_OK;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
done:
    memset(line, 0, sizeof(line));
    return rc;
}

int auth_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "auth file %s: %s", path, strerror(errno));
        return MG_ERR;
    }
    struct auth_table *t = calloc(1, sizeof(*t)); /* an empty table: nobody gets in */
    int rc = t ? table_read(f, path, t, err, errlen) : MG_ERR;
    fclose(f);
    if (t == NULL)
        snprintf(err, errlen, "out of memory");
    if (rc != MG_OK) {
        table_free(t);
        return MG_ERR;
    }
    size_t n = t->n;
    pthread_rwlock_wrlock(&table_lock);
    struct auth_table *old = table;
    table = t;
    atomic_store(&required, true);
    pthread_rwlock_unlock(&table_lock);
    table_free(old); /* no reader holds it: they hold the lock while they look */
    log_info("auth: %zu users from %s", n, path);
    return MG_OK;
}

bool auth_plain_split(struct mg_slice msg, struct mg_slice *user, struct mg_slice *password)
{
    const char *end = msg.p + msg.len;
    const char *z1 = msg.len ? memchr(msg.p, '\0', msg.len) : NULL;
    if (z1 == NULL)
        return false;
    const char *z2 = memchr(z1 + 1, '\0', (size_t)(end - z1 - 1));
    if (z2 == NULL)
        return false;
    *user = (struct mg_slice){ z1 + 1, (uint32_t)(z2 - z1 - 1) };
    *password = (struct mg_slice){ z2 + 1, (uint32_t)(end - z2 - 1) };
    return true;
}
