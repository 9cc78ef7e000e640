/*
 * test_rocksdb_store.c - the backend.h contract (store_contract.h), run
 * against the rocksdb store in a fresh data dir under /tmp per test. Its
 * own behaviour (restart, refusal, group commit, full disk) is in
 * test_rocksdb_durable.c.
 */
#define CONTRACT_STORE "rocksdb"
#define CONTRACT_EXACT_KEYS 0 /* stats().keys is RocksDB's estimate */
#include "store_contract.h"

static char *dir;

static void contract_cfg(wr_store_cfg_t *cfg)
{
    dir = tmpdir_new();
    cfg->dir = dir;
}

static void contract_cleanup(void)
{
    tmpdir_free(dir);
    dir = NULL;
}
