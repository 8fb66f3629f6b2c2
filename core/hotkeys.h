/* hotkeys.h: hot-key detection per worker: Space-Saving top-K over a sliding window of samples.
 *
 * The caller samples its requests (1 in N) and feeds only the sampled ones; counts are in
 * samples, so a key's request rate is about count * N / window (or / the time since the
 * first sample, while that is shorter than the window). */
#ifndef MG_HOTKEYS_H
#define MG_HOTKEYS_H

#include <stddef.h>
#include <stdint.h>

#define HOTKEY_KEY_MAX 250
/* Most counters one struct hotkeys keeps (it takes about 740 bytes per counter: 190 KB at 256). */
#define HOTKEYS_CAPACITY_MAX (1u << 20)

enum hk_kind { HK_GET = 0, HK_SET, HK_DELETE, HK_OTHER, HK_KINDS };

/* One per worker, owned by it (hotkeys_new/hotkeys_free). The owner adds; any thread may
 * read through hotkeys_top (a mutex inside, taken by the owner on the sampled path only). */
struct hotkeys;

/* capacity: counters kept (Space-Saving's m; e.g. 256), 1..HOTKEYS_CAPACITY_MAX; window:
 * seconds of the sliding window (e.g. 10), > 0. All memory is allocated here. Returns NULL
 * when out of memory or an argument is out of range. */
struct hotkeys *hotkeys_new(uint32_t capacity, double window);
/* Frees h (NULL is fine); no other thread may be using it. */
void hotkeys_free(struct hotkeys *h);

/* One sampled request for key (len bytes, any bytes; longer than HOTKEY_KEY_MAX: the first
 * HOTKEY_KEY_MAX are tracked), its command kind, the pool index it went to (-1 unknown), at
 * time now (seconds, monotonic, e.g. ev_now; a non-finite now is ignored). Called by the
 * owning worker only. Allocates nothing. Returns the key's guaranteed count in the current
 * window after this sample (its count less what it inherited when it came in: 1 for a key
 * that just came in, whatever it inherited; one more with each sample), 0 when ignored. It
 * grows by exactly 1 per sample of the key: a caller sees each value once while the key
 * stays in the table. */
uint64_t hotkeys_add(struct hotkeys *h, const char *key, size_t len, enum hk_kind kind, int pool,
                     double now);

/* A key's estimate. A plain value: copy it freely. */
struct hotkey_entry {
    char key[HOTKEY_KEY_MAX]; /* klen bytes, not NUL-terminated (keys may hold any byte) */
    uint32_t klen;
    double count; /* estimated sampled hits in the window (Space-Saving count, windowed) */
    double err;   /* Space-Saving's over-estimation bound for it: count - err <= true */
    double kinds[HK_KINDS]; /* the same estimate split by command kind (they sum to count) */
    int pool;               /* the pool of its latest sample */
};

/* The top n entries by count at time now (any thread; now may lag or lead the owner's clock a
 * little). Returns how many were written to out, highest count first (equal counts: shorter,
 * then lower key first). Allocates nothing. */
uint32_t hotkeys_top(struct hotkeys *h, double now, struct hotkey_entry *out, uint32_t n);

/* Merge the per-worker lists (in[0..nin), any order, the same key may appear in several) into
 * out (at most max, highest count first; out must not overlap in), summing counts, errs and
 * kinds of equal keys (same length and bytes); pool is that of the entry with the highest
 * count. Returns how many were written (0 when out of memory). */
uint32_t hotkeys_merge(const struct hotkey_entry *in, uint32_t nin, struct hotkey_entry *out,
                       uint32_t max);

#endif
