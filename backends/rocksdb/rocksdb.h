/*
 * rocksdb.h - the "rocksdb" store: durable queues and their metadata in a
 * RocksDB under <data dir>/store, written by one group-commit thread.
 *
 * open() creates the store when <data dir>/store is missing (or an empty
 * directory) and refuses anything else it does not recognise: a directory
 * that is not a RocksDB, a corrupted one, or a RocksDB without warren's
 * format marker (WR_EPROTO for "not ours", WR_EIO for "cannot read it",
 * with a one-line reason in the log). It never repairs and never starts
 * empty on top of existing data.
 *
 * write_batch() copies the ops and returns at once; done() fires on the
 * store's writer thread once the batch is applied (and synced, as the fsync
 * policy asks). iterate() and meta_scan() run on the caller's thread and see
 * every write whose done() has fired.
 */
#ifndef WR_STORE_ROCKSDB_H
#define WR_STORE_ROCKSDB_H

#include "../backend.h"

extern const wr_store_ops_t wr_store_rocksdb_ops;

#endif
