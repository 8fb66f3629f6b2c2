/* fuzz_smoke.c: a bounded, deterministic run of the parser fuzz targets (fuzz_text.c,
 * fuzz_meta.c) that needs no libFuzzer, built with ASan+UBSan and run by `make test`.
 *
 * Inputs are built from a corpus of valid client requests and backend replies: one to
 * three of them joined, then up to eight mutations (byte changes biased towards the
 * protocol's own characters, insertions, deletions, duplicated runs, truncation, huge and
 * negative numbers), behind random control bytes (value limit, options, split point; see
 * fuzz.h). Every input goes through both targets, which abort when a parser breaks a
 * property its callers rely on; ASan/UBSan abort on memory or undefined-behaviour errors.
 * A clean run prints "N passed, 0 failed", one test per corpus entry it started from.
 *
 *   build/fuzz_smoke [iterations per entry (default 20000)] [seed (default 1)]
 *
 * The coverage-guided fuzzers are `make fuzz` (clang + libFuzzer); fuzz_replay runs
 * their committed corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static const char *const corpus[] = {
    "get foo\r\n",
    "get a b c d e f g h\r\n",
    "gets k1 k2\r\n",
    "gat 100 k1 k2\r\n",
    "set k 0 0 5\r\nhello\r\n",
    "set k 4294967295 2592000 3 noreply\r\nabc\r\n",
    "cas k 1 2 3 12345678901234567890\r\nxyz\r\n",
    "append k 0 0 1\r\nx\r\nprepend k 0 0 1\r\ny\r\n",
    "incr n 18446744073709551615\r\ndecr n 1 noreply\r\n",
    "delete k\r\ndelete k 0\r\ntouch k 10\r\n",
    "flush_all 10\r\nversion\r\nverbosity 1\r\nstats\r\nstats backends\r\nquit\r\n",
    "mg foo v f t c k O123 q\r\n",
    "ms foo 5 T10 F3 I\r\nhello\r\n",
    "md foo q I T30\r\nma n N0 J13 D5 MI\r\nmn\r\nme foo\r\n",
    "mg Zm9v b v\r\n",
    "VA 5 f0 c123 t-1\r\nhello\r\n",
    "HD c99 W\r\nEN\r\nNF\r\nNS\r\nEX\r\nMN\r\n",
    "VA 0 Z X W\r\n\r\nHD\r\n",
    "VA 3 k foo O42 s3\r\nabc\r\n",
    "SERVER_ERROR out of memory\r\nCLIENT_ERROR bad command line format\r\nERROR\r\n",
};
#define NCORPUS (sizeof(corpus) / sizeof(corpus[0]))

static const char alphabet[] = " \r\n\t0123456789-+kvfcqtTOIbBNMDSVAHENFXZW\x00\x7f\xff";
static const char *const numbers[] = {
    "0", "-1", "4294967296", "18446744073709551616", "99999999999999999999999", "2147483648", "-0"
};

static uint64_t rng = 1;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t pick(size_t n)
{
    return n ? (size_t)(next() % n) : 0;
}

#define MAXLEN 4096

/* Overwrite, insert or delete at random places of buf (len bytes); returns the new length. */
static size_t mutate(uint8_t *buf, size_t len)
{
    int rounds = 1 + (int)pick(8);
    for (int i = 0; i < rounds; i++) {
        size_t at = pick(len + 1);
        switch (pick(7)) {
        case 0: /* one byte from the protocol's alphabet */
            if (at < len)
                buf[at] = (uint8_t)alphabet[pick(sizeof(alphabet) - 1)];
            break;
        case 1: /* any byte */
            if (at < len)
                buf[at] = (uint8_t)next();
            break;
        case 2: /* insert a byte */
            if (len < MAXLEN) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = (uint8_t)alphabet[pick(sizeof(alphabet) - 1)];
                len++;
            }
            break;
        case 3: { /* delete a run */
            size_t n = pick(len - at + 1);
            memmove(buf + at, buf + at + n, len - at - n);
            len -= n;
            break;
        }
        case 4: { /* duplicate a run */
            size_t n = pick(len - at + 1);
            if (len + n <= MAXLEN) {
                memmove(buf + at + n, buf + at, len - at);
                len += n;
            }
            break;
        }
        case 5: /* truncate */
            len = at;
            break;
        default: { /* insert a number that does not fit */
            const char *num = numbers[pick(sizeof(numbers) / sizeof(numbers[0]))];
            size_t n = strlen(num);
            if (len + n <= MAXLEN) {
                memmove(buf + at + n, buf + at, len - at);
                memcpy(buf + at, num, n);
                len += n;
            }
            break;
        }
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 20000;
    rng = argc > 2 ? (uint64_t)atoll(argv[2]) : 1;
    if (iters < 1 || rng == 0) {
        fprintf(stderr, "usage: fuzz_smoke [iterations > 0] [seed != 0]\n");
        return 2;
    }
    static uint8_t buf[MAXLEN * 2 + 1];
    long inputs = 0;
    for (size_t e = 0; e < NCORPUS; e++) {
        for (long i = 0; i < iters; i++) {
            size_t len = 0;
            for (; len < FUZZ_HDR; len++) /* value limit, options, split point */
                buf[len] = (uint8_t)next();
            size_t parts = 1 + pick(3);
            for (size_t p = 0; p < parts; p++) {
                const char *s = p == 0 ? corpus[e] : corpus[pick(NCORPUS)];
                size_t n = strlen(s);
                if (len + n > MAXLEN)
                    break;
                memcpy(buf + len, s, n);
                len += n;
            }
            if (i > 0) /* the first input of each entry is the entry unchanged */
                len = FUZZ_HDR + mutate(buf + FUZZ_HDR, len - FUZZ_HDR);
            fuzz_text_input(buf, len);
            fuzz_meta_input(buf, len);
            fuzz_bin_input(buf, len);
            inputs++;
        }
    }
    printf("fuzz_smoke: %ld inputs from %zu corpus entries, every property held\n", inputs,
           (size_t)NCORPUS);
    printf("%zu passed, 0 failed\n", (size_t)NCORPUS);
    return 0;
}
