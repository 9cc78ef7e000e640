/*
 * walstats.h - RocksDB's own count of WAL writes and syncs, read from its
 * "rocksdb.dbstats" property: a check on the store's own counters that
 * comes from the engine that did the syncing.
 *
 * Debian's librocksdb 7.8 has no C API for statistics tickers, and the
 * property prints its numbers rounded once they pass 10000 ("12K"). Its
 * "Interval WAL:" line counts from the previous read of the property,
 * though, so small intervals summed up give an exact total: the store
 * reads it every WR_STORE_RDB_WAL_EVERY groups on its writer thread and on
 * each stats() call, and RocksDB's own periodic stats dump (the only other
 * reader) is turned off. The sum also survives a reopen of the DB, whose
 * counters start again from zero.
 */
#ifndef WR_STORE_RDB_WALSTATS_H
#define WR_STORE_RDB_WALSTATS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <rocksdb/c.h>

#include "../../core/err.h"

/* Write groups between two reads on the writer thread: one WAL write per
 * group, so an interval stays below the 10000 where rounding starts. */
#define WR_STORE_RDB_WAL_EVERY 4096u

typedef struct wr_store_rdb_wal {
    pthread_mutex_t mu; /* orders the reads with the sums */
    uint64_t writes, syncs;
    bool known;  /* a read parsed: the sums mean something */
    bool warned; /* a read did not parse: said once */
} wr_store_rdb_wal_t;

void wr_store_rdb_wal_init(wr_store_rdb_wal_t *w);
void wr_store_rdb_wal_fini(wr_store_rdb_wal_t *w);

/* Reads db's interval counters into the sums. db must stay open during
 * the call (the caller holds what keeps it open). Never fails: a property
 * that is missing or does not parse leaves the sums as they were and is
 * logged once. */
void wr_store_rdb_wal_read(wr_store_rdb_wal_t *w, rocksdb_t *db);

/* The sums; false (outputs untouched) while no read has parsed. */
bool wr_store_rdb_wal_get(wr_store_rdb_wal_t *w, uint64_t *writes /* OUT */,
                          uint64_t *syncs /* OUT */);

/* Parses "Interval WAL: <n> writes, <m> syncs" out of a dbstats text,
 * accepting RocksDB's K/M/G rounding (a lower bound). WR_EPROTO if the
 * line is missing or not in that form. */
wr_err_t wr_store_rdb_wal_parse(const char *text, uint64_t *writes /* OUT */,
                                uint64_t *syncs /* OUT */);

#endif
