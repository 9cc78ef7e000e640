/*
 * mem.c - the memory high watermark: RSS from /proc/self/statm, read at
 * most every WR_MEM_POLL_MS by whichever thread asks first (a CAS on the
 * reading's time elects it), cached in atomics for everyone else.
 *
 * Freed memory is not always given back to the kernel at once (glibc keeps
 * it in its arenas, jemalloc purges dirty pages after a delay), so RSS could
 * stay above the mark after consumers drained the queues and publishers
 * would stay blocked for nothing. While above the mark, the reader asks the
 * allocator to return what it can first (at most once a second): glibc's
 * malloc_trim, and jemalloc's purge when jemalloc is the allocator.
 */
#include "mem.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

#define PURGE_EVERY_MS 1000

static _Atomic uint64_t limit_g;
static _Atomic uint64_t rss_g;
static _Atomic int64_t read_ms_g = INT64_MIN / 2;
static _Atomic int64_t purge_ms_g = INT64_MIN / 2;
static _Atomic bool high_g;

/* jemalloc's control call, when jemalloc is linked (Debian's exports it
 * unprefixed); NULL otherwise. */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    __attribute__((weak));

static uint64_t read_rss(void)
{
    char buf[128];
    unsigned long long size = 0, resident = 0;
    ssize_t n;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void give_back(int64_t now)
{
    int64_t last = atomic_load(&purge_ms_g);

    if (now - last < PURGE_EVERY_MS || !atomic_compare_exchange_strong(&purge_ms_g, &last, now))
        return;
    if (mallctl)
        mallctl("arena.4096.purge", NULL, NULL, NULL, 0); /* 4096: MALLCTL_ARENAS_ALL */
    malloc_trim(0);
}

static void refresh(void)
{
    int64_t now = wr_now_mono_ms();
    int64_t last = atomic_load_explicit(&read_ms_g, memory_order_relaxed);
    uint64_t lim = atomic_load_explicit(&limit_g, memory_order_relaxed);
    uint64_t rss;
    bool high, was;

    if (now - last < WR_MEM_POLL_MS || !atomic_compare_exchange_strong(&read_ms_g, &last, now))
        return;
    rss = read_rss();
    if (lim && rss > lim) {
        give_back(now);
        rss = read_rss();
    }
    high = lim && rss > lim;
    atomic_store(&rss_g, rss);
    was = atomic_exchange(&high_g, high);
    if (was != high)
        wr_log(high ? WR_LOG_WARN : WR_LOG_INFO, WR_LOGC_CORE,
               "memory rss=%llu high_watermark=%llu: %s", (unsigned long long)rss,
               (unsigned long long)lim, high ? "publishers blocked" : "publishers unblocked");
}

uint64_t wr_mem_set_limit(uint64_t bytes)
{
    if (bytes == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        if (pages > 0 && psz > 0)
            bytes = (uint64_t)((double)pages * (double)psz * WR_MEM_DEFAULT_FRACTION);
    }
    atomic_store(&limit_g, bytes);
    atomic_store(&read_ms_g, INT64_MIN / 2);
    return bytes;
}

uint64_t wr_mem_limit(void)
{
    return atomic_load_explicit(&limit_g, memory_order_relaxed);
}

bool wr_mem_high(void)
{
    refresh();
    return atomic_load_explicit(&high_g, memory_order_relaxed);
}

uint64_t wr_mem_rss(void)
{
    refresh();
    return atomic_load_explicit(&rss_g, memory_order_relaxed);
}
