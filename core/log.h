/* log.h: leveled logging to stderr. */
#ifndef MG_LOG_H
#define MG_LOG_H

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Messages at a level above log_level are dropped; -v raises it to INFO, -vv to DEBUG. */
extern int log_level;

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Bytes from the wire made safe for a log line: printable ASCII as is, the rest as \xNN,
 * cut with "..." to fit out (size >= 8). Returns out. */
#include <stddef.h>
const char *log_quote(char *out, size_t size, const char *p, size_t n);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)                       \
    do {                                    \
        if (log_level >= LOG_INFO)          \
            log_msg(LOG_INFO, __VA_ARGS__); \
    } while (0)
#define log_debug(...)                       \
    do {                                     \
        if (log_level >= LOG_DEBUG)          \
            log_msg(LOG_DEBUG, __VA_ARGS__); \
    } while (0)

#endif
