/*
 * test_memory_store.c - the backend.h contract (store_contract.h), run
 * against the memory store.
 */
#define CONTRACT_STORE "memory"
#define CONTRACT_EXACT_KEYS 1
#include "store_contract.h"

static void contract_cfg(wr_store_cfg_t *cfg)
{
    cfg->dir = NULL;
}

static void contract_cleanup(void)
{
}
