/* ctest.h: a minimal unit-test harness; each binary ends with "N passed, N failed". */
#ifndef MG_CTEST_H
#define MG_CTEST_H

#include <stdio.h>
#include <string.h>

static int ctest_passed, ctest_failed, ctest_cur_failed;

/* CHECK records a failure with file:line and goes on; a test passes when no CHECK failed. */
#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            ctest_cur_failed++;                                                        \
        }                                                                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                  \
    do {                                                                                    \
        long long ctest_a_ = (long long)(a), ctest_b_ = (long long)(b);                     \
        if (ctest_a_ != ctest_b_) {                                                         \
            fprintf(stderr, "  %s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, \
                    ctest_a_, ctest_b_);                                                    \
            ctest_cur_failed++;                                                             \
        }                                                                                   \
    } while (0)

#define CHECK_SLICE(s, lit)                                                                   \
    do {                                                                                      \
        if ((s).len != strlen(lit) || memcmp((s).p, (lit), (s).len) != 0) {                   \
            fprintf(stderr, "  %s:%d: %s is '%.*s', expected '%s'\n", __FILE__, __LINE__, #s, \
                    (int)(s).len, (s).p ? (s).p : "", (lit));                                 \
            ctest_cur_failed++;                                                               \
        }                                                                                     \
    } while (0)

#define RUN(fn)                                \
    do {                                       \
        ctest_cur_failed = 0;                  \
        fn();                                  \
        if (ctest_cur_failed) {                \
            ctest_failed++;                    \
            fprintf(stderr, "FAIL %s\n", #fn); \
        } else {                               \
            ctest_passed++;                    \
        }                                      \
    } while (0)

#define CTEST_END()                                                   \
    do {                                                              \
        printf("%d passed, %d failed\n", ctest_passed, ctest_failed); \
        return ctest_failed ? 1 : 0;                                  \
    } while (0)

#endif
