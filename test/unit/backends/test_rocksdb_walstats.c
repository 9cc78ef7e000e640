/*
 * test_rocksdb_walstats.c - reading RocksDB's "Interval WAL:" line out of
 * its dbstats text: the 7.8 form, rounded counts, and text that is not in
 * that form (no line, another wording, garbage) refused, never misread.
 */
#include <criterion/criterion.h>

#include "backends/rocksdb/walstats.h"

/* As librocksdb 7.8 printed it (a real property value, trimmed). */
static const char dbstats[] =
    "\n** DB Stats **\n"
    "Uptime(secs): 7.7 total, 7.7 interval\n"
    "Cumulative writes: 12K writes, 12K keys, 12K commit groups, 1.0 writes per commit group, "
    "ingest: 0.00 GB, 0.03 MB/s\n"
    "Cumulative WAL: 12K writes, 4115 syncs, 3.00 writes per sync, written: 0.00 GB, 0.03 MB/s\n"
    "Cumulative stall: 00:00:0.000 H:M:S, 0.0 percent\n"
    "Interval writes: 12K writes, 12K keys, 12K commit groups, 1.0 writes per commit group, "
    "ingest: 0.25 MB, 0.03 MB/s\n"
    "Interval WAL: 9876 writes, 4111 syncs, 2.40 writes per sync, written: 0.00 GB, 0.03 MB/s\n"
    "Interval stall: 00:00:0.000 H:M:S, 0.0 percent\n";

Test(walstats, interval_line_of_7_8)
{
    uint64_t w = 0, y = 0;

    cr_assert_eq(wr_store_rdb_wal_parse(dbstats, &w, &y), WR_OK);
    cr_assert_eq(w, 9876); /* the interval, not the cumulative line */
    cr_assert_eq(y, 4111);
}

Test(walstats, rounded_counts_are_a_lower_bound)
{
    uint64_t w = 0, y = 0;

    cr_assert_eq(wr_store_rdb_wal_parse("Interval WAL: 12K writes, 3M syncs, 0.00", &w, &y),
                 WR_OK);
    cr_assert_eq(w, 12000);
    cr_assert_eq(y, 3000000);
    cr_assert_eq(wr_store_rdb_wal_parse("x\nInterval WAL: 0 writes, 0 syncs", &w, &y), WR_OK);
    cr_assert_eq(w, 0);
    cr_assert_eq(y, 0);
}

Test(walstats, other_text_is_refused)
{
    static const char *const bad[] = {
        "",
        "** DB Stats **\nUptime(secs): 0.0 total\n",
        /* only the cumulative line: never taken for the interval */
        "Cumulative WAL: 11 writes, 4 syncs, 2.75 writes per sync\n",
        /* not at a line start */
        "x Interval WAL: 11 writes, 4 syncs\n",
        /* another wording or order */
        "Interval WAL: 4 syncs, 11 writes\n",
        "Interval WAL: 11 writes; 4 syncs\n",
        "Interval WAL: -1 writes, 4 syncs\n",
        "Interval WAL: 11 writes, 4",
        "Interval WAL: ",
        /* too large for 64 bits */
        "Interval WAL: 99999999999999999999 writes, 1 syncs\n",
        "Interval WAL: 99999999999G writes, 1 syncs\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t w = 7, y = 7;
        cr_assert_eq(wr_store_rdb_wal_parse(bad[i], &w, &y), WR_EPROTO, "accepted: %s", bad[i]);
        cr_assert_eq(w, 7);
        cr_assert_eq(y, 7);
    }
    cr_assert_eq(wr_store_rdb_wal_parse(NULL, &(uint64_t){0}, &(uint64_t){0}), WR_EPROTO);
}
