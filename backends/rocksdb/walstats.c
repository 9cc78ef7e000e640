/*
 * walstats.c - RocksDB's WAL write and sync counts from "rocksdb.dbstats"
 * (see walstats.h for why the interval line, summed).
 *
 * The line, as 7.8 prints it (db/internal_stats.cc, DumpDBStats):
 *   Interval WAL: 11 writes, 4 syncs, 2.75 writes per sync, written: ...
 * Numbers of 10000 and more come as "12K", "3M", "1G" (NumberToHumanString).
 */
#include "walstats.h"

#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"

#define WAL_LINE "Interval WAL: "

void wr_store_rdb_wal_init(wr_store_rdb_wal_t *w)
{
    *w = (wr_store_rdb_wal_t){.known = false};
    pthread_mutex_init(&w->mu, NULL);
}

void wr_store_rdb_wal_fini(wr_store_rdb_wal_t *w)
{
    pthread_mutex_destroy(&w->mu);
}

/* A count at *p, with RocksDB's optional K/M/G; advances *p. */
static bool count_at(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0, mult = 1;

    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    switch (*s) {
    case 'K':
        mult = 1000u;
        break;
    case 'M':
        mult = 1000000u;
        break;
    case 'G':
        mult = 1000000000u;
        break;
    default:
        break;
    }
    if (mult > 1) {
        if (v > UINT64_MAX / mult)
            return false;
        v *= mult;
        s++;
    }
    *out = v;
    *p = s;
    return true;
}

static bool word_at(const char **p, const char *word)
{
    size_t n = strlen(word);

    if (strncmp(*p, word, n) != 0)
        return false;
    *p += n;
    return true;
}

wr_err_t wr_store_rdb_wal_parse(const char *text, uint64_t *writes, uint64_t *syncs)
{
    const char *p = text;
    uint64_t w, y;

    if (!text)
        return WR_EPROTO;
    /* The line must start a line: "Cumulative WAL: " must not match. */
    while (strncmp(p, WAL_LINE, sizeof(WAL_LINE) - 1) != 0) {
        p = strchr(p, '\n');
        if (!p)
            return WR_EPROTO;
        p++;
    }
    p += sizeof(WAL_LINE) - 1;
    if (!count_at(&p, &w) || !word_at(&p, " writes, ") || !count_at(&p, &y) ||
        !word_at(&p, " syncs"))
        return WR_EPROTO;
    *writes = w;
    *syncs = y;
    return WR_OK;
}

void wr_store_rdb_wal_read(wr_store_rdb_wal_t *w, rocksdb_t *db)
{
    uint64_t writes, syncs;
    char *text;

    /* Under mu: an interval read must be added before the next one is. */
    pthread_mutex_lock(&w->mu);
    text = rocksdb_property_value(db, "rocksdb.dbstats");
    if (wr_store_rdb_wal_parse(text, &writes, &syncs) == WR_OK) {
        w->writes += writes;
        w->syncs += syncs;
        w->known = true;
    } else if (!w->warned) {
        w->warned = true;
        wr_log(WR_LOG_WARN, WR_LOGC_STORE,
               "store=rocksdb: no \"" WAL_LINE "\" line in rocksdb.dbstats: the WAL counters "
               "are left out of /metrics");
    }
    pthread_mutex_unlock(&w->mu);
    free(text); /* malloc()ed by RocksDB, NULL-safe */
}

bool wr_store_rdb_wal_get(wr_store_rdb_wal_t *w, uint64_t *writes, uint64_t *syncs)
{
    bool known;

    pthread_mutex_lock(&w->mu);
    known = w->known;
    if (known) {
        *writes = w->writes;
        *syncs = w->syncs;
    }
    pthread_mutex_unlock(&w->mu);
    return known;
}
