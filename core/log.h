/*
 * log.h - one line per event, key=value style, to stderr.
 *
 * wr_log() checks the level before its arguments are evaluated, so a
 * disabled debug line costs one comparison.
 */
#ifndef WR_LOG_H
#define WR_LOG_H

typedef enum {
    WR_LOG_ERROR = 0,
    WR_LOG_WARN,
    WR_LOG_INFO,
    WR_LOG_DEBUG,
} wr_log_level_t;

/* Categories, a bitmask, so debug output can be narrowed to a layer. */
#define WR_LOGC_CORE 0x01u
#define WR_LOGC_REST 0x02u
#define WR_LOGC_AMQP 0x04u
#define WR_LOGC_STORE 0x08u
#define WR_LOGC_ZONE 0x10u
#define WR_LOGC_SHARD 0x20u

extern int wr_log_level_g;

/* Parses "error|warn|info|debug" into *out; returns 0, or -1 if unknown. */
int wr_log_level_parse(const char *s, wr_log_level_t *out);

void wr_log_write(wr_log_level_t lvl, unsigned cat, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define wr_log(lvl, cat, ...)                                                                      \
    do {                                                                                           \
        if ((int)(lvl) <= wr_log_level_g)                                                          \
            wr_log_write((lvl), (cat), __VA_ARGS__);                                               \
    } while (0)

/* Bugs, not bad input: stays on in release builds (HAProxy BUG_ON). */
#define WR_ASSERT(c)                                                                               \
    do {                                                                                           \
        if (!(c))                                                                                  \
            wr_panic(__FILE__, __LINE__, #c);                                                      \
    } while (0)

void wr_panic(const char *file, int line, const char *what) __attribute__((noreturn));

#endif
