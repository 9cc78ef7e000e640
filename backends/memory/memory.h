/*
 * memory.h - the "memory" store: everything in RAM, nothing survives the
 * process. It implements the whole contract of backend.h so the core and
 * its tests can run the persistent paths without a disk.
 */
#ifndef WR_STORE_MEMORY_H
#define WR_STORE_MEMORY_H

#include "../backend.h"

extern const wr_store_ops_t wr_store_memory_ops;

#endif
