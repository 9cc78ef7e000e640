/*
 * mem.h - the process's memory high watermark (--memory-high-watermark).
 *
 * While the resident set size is above the mark, front ends stop taking new
 * messages from publishers (AMQP: connection.blocked and no more reading
 * from connections that published; REST: 503 on POST .../messages) until it
 * falls below again, as RabbitMQ's vm_memory_high_watermark does.
 *
 * RSS is read from /proc/self/statm at most every WR_MEM_POLL_MS, lazily by
 * whichever thread asks first after that (no timer, no thread); every other
 * call reads one atomic. Any thread may call these.
 */
#ifndef WR_MEM_H
#define WR_MEM_H

#include <stdbool.h>
#include <stdint.h>

#define WR_MEM_POLL_MS 200
#define WR_MEM_DEFAULT_FRACTION 0.4 /* of physical memory, when the limit is 0 */

/* Sets the mark in bytes; 0 means WR_MEM_DEFAULT_FRACTION of the machine's
 * physical memory. Returns the mark in effect. Call once at start. */
uint64_t wr_mem_set_limit(uint64_t bytes);

/* The mark in effect (0 before wr_mem_set_limit: never high). */
uint64_t wr_mem_limit(void);

/* True while RSS is above the mark (re-read if the last reading is older
 * than WR_MEM_POLL_MS). */
bool wr_mem_high(void);

/* The last RSS reading in bytes (refreshed as wr_mem_high does). */
uint64_t wr_mem_rss(void);

#endif
