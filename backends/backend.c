/*
 * backend.c - the table of compiled-in stores. Adding a store = one row.
 */
#include <string.h>

#include "backend.h"
#include "memory/memory.h"
#include "rocksdb/rocksdb.h"

static const wr_store_ops_t *const stores[] = {
    &wr_store_memory_ops,
    &wr_store_rocksdb_ops,
};

const wr_store_ops_t *wr_store_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(stores) / sizeof(stores[0]); i++)
        if (strcmp(stores[i]->name, name) == 0)
            return stores[i];
    return NULL;
}
