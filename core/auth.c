/* auth.c: the users table and its checks (see auth.h). */
#include "auth.h"

#include <errno.h>
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

/* Set before the workers start, read-only afterwards. */
static struct auth_user *users;
static size_t nusers;

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
    for (size_t i = 0; i < nusers; i++) { /* every entry, whoever matches */
        bool u = slice_equal_ct(users[i].user, users[i].ulen, user);
        bool p = slice_equal_ct(users[i].pass, users[i].plen, password);
        ok |= u & p;
    }
    return ok;
}

bool auth_required(void)
{
    return users != NULL;
}

void auth_free(void)
{
    for (size_t i = 0; i < nusers; i++) {
        memset(users[i].pass, 0, users[i].plen);
        free(users[i].user);
        free(users[i].pass);
    }
    free(users);
    users = NULL;
    nusers = 0;
}

int auth_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[2 * AUTH_FIELD_MAX + 4];
    int rc = MG_ERR, lineno = 0;
    if (f == NULL) {
        snprintf(err, errlen, "auth file %s: %s", path, strerror(errno));
        return MG_ERR;
    }
    auth_free();
    users = calloc(1, sizeof(*users)); /* non-NULL even when empty: nobody gets in */
    if (users == NULL)
        goto oom;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line || nusers >= AUTH_USERS_MAX) {
            snprintf(err, errlen, "auth file %s:%d: want user:password", path, lineno);
            goto fail;
        }
        struct auth_user *nu = realloc(users, (nusers + 1) * sizeof(*users));
        if (nu == NULL)
            goto oom;
        users = nu;
        struct auth_user *u = &users[nusers];
        u->ulen = (size_t)(colon - line);
        u->plen = n - u->ulen - 1;
        u->user = strndup(line, u->ulen);
        u->pass = strndup(colon + 1, u->plen);
        nusers++;
        if (u->user == NULL || u->pass == NULL)
            goto oom;
    }
    rc = MG_OK;
    log_info("auth: %zu users from %s", nusers, path);
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    auth_free();
done:
    memset(line, 0, sizeof(line));
    fclose(f);
    return rc;
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
