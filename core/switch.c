/* switch.c: feature switch_table shared by every worker: a share of keys goes the other way. */
#include "switch.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mg.h"

struct mg_switch switch_table[MG_MAX_SWITCHES];
atomic_int switch_n;
atomic_uint_fast64_t switch_gen;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned to_share(double percent)
{
    return (unsigned)(percent * (SWITCH_SCALE / 100) + 0.5);
}

int switch_register(const char *name, double percent, const char *fleet_pool, const char *fleet_key)
{
    if (percent < 0 || percent > 100 || strlen(name) >= sizeof(switch_table[0].name))
        return -1;
    pthread_mutex_lock(&reg_lock);
    int n = atomic_load(&switch_n), id = -1;
    for (int i = 0; i < n; i++)
        if (strcmp(switch_table[i].name, name) == 0)
            id = i;
    if (id < 0 && n < MG_MAX_SWITCHES) {
        id = n;
        struct mg_switch *s = &switch_table[id];
        snprintf(s->name, sizeof(s->name), "%s", name);
        atomic_store(&s->share, to_share(percent));
        atomic_store(&switch_n, n + 1);
    }
    if (id >= 0) {
        struct mg_switch *s = &switch_table[id];
        snprintf(s->fleet_pool, sizeof(s->fleet_pool), "%s", fleet_pool ? fleet_pool : "");
        snprintf(s->fleet_key, sizeof(s->fleet_key), "%s", fleet_key ? fleet_key : "");
    }
    pthread_mutex_unlock(&reg_lock);
    return id;
}

bool switch_fleet(int id, char pool[64], char key[251])
{
    if (id < 0 || id >= atomic_load(&switch_n))
        return false;
    pthread_mutex_lock(&reg_lock);
    memcpy(pool, switch_table[id].fleet_pool, sizeof(switch_table[id].fleet_pool));
    memcpy(key, switch_table[id].fleet_key, sizeof(switch_table[id].fleet_key));
    pthread_mutex_unlock(&reg_lock);
    return pool[0] != '\0';
}

int mg_switch_on(int id, const char *key, size_t len)
{
    return switch_on(id, key, len);
}

int switch_set(const char *name, double percent)
{
    if (!(percent >= 0 && percent <= 100))
        return MG_ERR;
    int n = atomic_load(&switch_n);
    for (int i = 0; i < n; i++)
        if (strcmp(switch_table[i].name, name) == 0) {
            /* the fleet poll sets the same value every second: only a change counts */
            if (atomic_exchange(&switch_table[i].share, to_share(percent)) != to_share(percent))
                atomic_fetch_add(&switch_gen, 1);
            return MG_OK;
        }
    return MG_ERR;
}

int switch_parse_percent(const char *s, size_t len, double *out)
{
    size_t i = 0, int_digits = 0, frac_digits = 0;
    double v = 0, scale = 1;
    while (i < len && s[i] >= '0' && s[i] <= '9' && v <= 100) {
        v = v * 10 + (s[i++] - '0');
        int_digits++;
    }
    if (i < len && s[i] == '.')
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, frac_digits++)
            v += (s[i] - '0') * (scale /= 10);
    if (int_digits == 0 || i != len || (i > int_digits && frac_digits == 0) || v > 100)
        return MG_ERR;
    *out = v;
    return MG_OK;
}

int switch_count(void)
{
    return atomic_load(&switch_n);
}

struct mg_switch *switch_get(int id)
{
    return id >= 0 && id < atomic_load(&switch_n) ? &switch_table[id] : NULL;
}

void switch_render(struct buf *out)
{
    int n = atomic_load(&switch_n);
    for (int i = 0; i < n; i++) {
        struct mg_switch *s = &switch_table[i];
        unsigned share = atomic_load(&s->share);
        buf_printf(out, "STAT switch:%s:percent %u.%03u\r\n", s->name, share / 1000, share % 1000);
        buf_printf(out, "STAT switch:%s:on %llu\r\n", s->name,
                   (unsigned long long)atomic_load(&s->on));
        buf_printf(out, "STAT switch:%s:off %llu\r\n", s->name,
                   (unsigned long long)atomic_load(&s->off));
        char fpool[64], fkey[251];
        if (switch_fleet(i, fpool, fkey))
            buf_printf(out, "STAT switch:%s:fleet %s/%s\r\n", s->name, fpool, fkey);
    }
}
