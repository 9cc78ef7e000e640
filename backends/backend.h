/*
 * backend.h - the storage plugin interface.
 *
 * A store keeps what must survive a restart: queue metadata and persistent
 * messages. Transient messages never reach it. The shard threads hold the
 * working set in memory and write through to the store; on start the core
 * reads everything back (iterate) to rebuild its queues.
 *
 * Keys: the metadata key space holds small records keyed by opaque byte
 * strings; the message key space is (queue id, sequence), so that one queue
 * is one contiguous range (RocksDB: qid | big-endian seq).
 *
 * Threading: a store is shared by all shards, so every op must be safe to
 * call from several threads at once. done() callbacks may run on any thread;
 * they must only post to a loop.
 */
#ifndef WR_BACKEND_H
#define WR_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"

#define WR_STORE_ABI 2u

typedef struct wr_store wr_store_t;
typedef uint64_t wr_qid_t;

typedef enum {
    WR_DUR_NONE = 0, /* in the store's buffers: lost on a crash */
    WR_DUR_WAL,      /* written to the log, not synced: survives a process crash */
    WR_DUR_SYNC,     /* synced: survives a machine crash */
} wr_durability_t;

/* How hard a store tries, whatever durability a write asks for (--fsync). */
typedef enum {
    WR_FSYNC_BATCH = 0, /* WR_DUR_SYNC writes wait for a sync shared by every
                         * write pending at that moment (group commit) */
    WR_FSYNC_ALWAYS,    /* every write is synced before done(), deletes too */
    WR_FSYNC_NEVER,     /* nothing is synced: WR_DUR_SYNC acts as WR_DUR_WAL */
} wr_fsync_t;

typedef struct wr_store_cfg {
    const char *dir;          /* data directory (NULL for memory) */
    wr_fsync_t fsync;
    uint64_t disk_free_limit; /* bytes: below this much free space writes
                               * that add data fail with WR_ENOSPACE */
} wr_store_cfg_t;

typedef struct wr_bytes {
    const void *ptr;
    size_t len;
} wr_bytes_t;

typedef enum {
    WR_STORE_PUT_MSG = 1, /* (q, seq) = val */
    WR_STORE_DEL_MSG,     /* delete (q, seq) */
    WR_STORE_DEL_RANGE,   /* delete (q, seq) .. (q, seq_hi) inclusive */
    WR_STORE_PUT_META,    /* key = val */
    WR_STORE_DEL_META,    /* delete key */
} wr_store_op_kind_t;

typedef struct wr_store_op {
    wr_store_op_kind_t kind;
    wr_qid_t q;
    uint64_t seq, seq_hi;
    wr_bytes_t key, val;
} wr_store_op_t;

/* done(arg, err) fires exactly once, when the whole batch is as durable as
 * asked or has failed; it never fires if write_batch returned an error. */
typedef void (*wr_store_done_cb)(void *arg, wr_err_t err);
/* Returns 0 to continue, non-zero to stop. Bytes are borrowed. */
typedef int (*wr_store_visit_cb)(void *arg, uint64_t seq, wr_bytes_t val);
typedef int (*wr_store_meta_visit_cb)(void *arg, wr_bytes_t key, wr_bytes_t val);

typedef struct wr_store_stats {
    uint64_t writes, syncs, bytes_written, keys;
    /* The storage engine's own count of log writes and log syncs (RocksDB's
     * DB stats), a check on writes/syncs from below: engine_wal is false
     * when the store has no such engine or could not read it. */
    bool engine_wal;
    uint64_t wal_writes, wal_syncs;
} wr_store_stats_t;

typedef struct wr_store_ops {
    uint32_t abi; /* WR_STORE_ABI: first, so mismatched plugins are detectable */
    const char *name;
    wr_err_t (*open)(const wr_store_cfg_t *cfg, wr_store_t **out);
    void (*close)(wr_store_t *st); /* NULL-safe; flushes pending batches */
    wr_err_t (*write_batch)(wr_store_t *st, const wr_store_op_t *ops, size_t n,
                            wr_durability_t dur, wr_store_done_cb done, void *arg);
    /* Visits (q, seq >= from) in seq order, at most max (0 = all). */
    wr_err_t (*iterate)(wr_store_t *st, wr_qid_t q, uint64_t from, size_t max,
                        wr_store_visit_cb visit, void *arg);
    /* Visits metadata keys starting with prefix, in key order. */
    wr_err_t (*meta_scan)(wr_store_t *st, wr_bytes_t prefix, wr_store_meta_visit_cb visit,
                          void *arg);
    void (*stats)(wr_store_t *st, wr_store_stats_t *out);
    /* Optional (NULL = never): non-zero while writes that add data would
     * fail with WR_ENOSPACE. Polled by the core to block and unblock
     * publishers; must be cheap and thread-safe. */
    int (*full)(wr_store_t *st);
} wr_store_ops_t;

/* Every store embeds this first. */
struct wr_store {
    const wr_store_ops_t *ops;
};

/* The registered stores by name ("memory", ...); NULL if unknown. */
const wr_store_ops_t *wr_store_find(const char *name);

static inline void wr_store_close(wr_store_t *st)
{
    if (st)
        st->ops->close(st);
}
static inline int wr_store_full(wr_store_t *st)
{
    return st && st->ops->full ? st->ops->full(st) : 0;
}
static inline wr_err_t wr_store_write_batch(wr_store_t *st, const wr_store_op_t *ops, size_t n,
                                            wr_durability_t dur, wr_store_done_cb done, void *arg)
{
    return st->ops->write_batch(st, ops, n, dur, done, arg);
}
static inline wr_err_t wr_store_iterate(wr_store_t *st, wr_qid_t q, uint64_t from, size_t max,
                                        wr_store_visit_cb visit, void *arg)
{
    return st->ops->iterate(st, q, from, max, visit, arg);
}
static inline wr_err_t wr_store_meta_scan(wr_store_t *st, wr_bytes_t prefix,
                                          wr_store_meta_visit_cb visit, void *arg)
{
    return st->ops->meta_scan(st, prefix, visit, arg);
}

#endif
