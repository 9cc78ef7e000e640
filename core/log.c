/* log.c - timestamped single-line logging to stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int wr_log_level_g = WR_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int wr_log_level_parse(const char *s, wr_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (wr_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

static const char *cat_name(unsigned cat)
{
    switch (cat) {
    case WR_LOGC_CORE:
        return "core";
    case WR_LOGC_REST:
        return "rest";
    case WR_LOGC_AMQP:
        return "amqp";
    case WR_LOGC_STORE:
        return "store";
    case WR_LOGC_ZONE:
        return "zone";
    case WR_LOGC_SHARD:
        return "shard";
    default:
        return "-";
    }
}

void wr_log_write(wr_log_level_t lvl, unsigned cat, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    int n;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, level_names[lvl], cat_name(cat));
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One fprintf per line keeps lines from different threads whole. */
    fprintf(stderr, "%s\n", line);
}

void wr_panic(const char *file, int line, const char *what)
{
    fprintf(stderr, "warren: assertion failed at %s:%d: %s\n", file, line, what);
    abort();
}
