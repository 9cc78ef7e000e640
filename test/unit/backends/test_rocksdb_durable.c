/*
 * test_rocksdb_durable.c - what the rocksdb store adds to the contract:
 * everything is there after a close and reopen; put/delete order across
 * threads; group commit (many synced writers share fsyncs); the fsync
 * policies; refusing a foreign, marker-less, other-version or corrupted
 * store; the disk free limit; a real ENOSPC from RocksDB on a small tmpfs
 * and recovery once space is back.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <rocksdb/c.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>

#include "store_test.h"

static char *dir;
static wr_store_t *st;
static const wr_store_ops_t *ops;

static void setup(void)
{
    ops = wr_store_find("rocksdb");
    cr_assert_not_null(ops);
    dir = tmpdir_new();
}

static char *mnt; /* a tmpfs mounted under dir, or NULL */

static void teardown(void)
{
    wr_store_close(st);
    st = NULL;
    if (mnt) {
        umount2(mnt, MNT_DETACH);
        free(mnt);
        mnt = NULL;
    }
    tmpdir_free(dir);
    dir = NULL;
}

TestSuite(rocksdb, .init = setup, .fini = teardown, .timeout = 60);

static wr_err_t open_with(wr_fsync_t fsync, uint64_t limit)
{
    wr_store_cfg_t cfg = {.dir = dir, .fsync = fsync, .disk_free_limit = limit};
    return ops->open(&cfg, &st);
}

static void reopen(void)
{
    wr_store_close(st);
    st = NULL;
    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
}

static char *store_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return p;
}

Test(rocksdb, reopen_keeps_everything)
{
    collect_t *c = calloc(1, sizeof(*c));
    kvs_t k = {0};
    char v[16];

    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    for (uint64_t i = 1; i <= 50; i++) {
        wr_store_op_t b[2];
        snprintf(v, sizeof(v), "m%llu", (unsigned long long)i);
        b[0] = op_put(1, i, v);
        b[1] = op_put(2, i, v);
        cr_assert_eq(wr_store_write_batch(st, b, 2, WR_DUR_WAL, NULL, NULL), WR_OK);
    }
    wr_store_op_t m[4] = {op_meta("q/a", "A"), op_meta("q/b", "B"), op_meta("q/c", "C"),
                          op_meta("x", "X")};
    cr_assert_eq(write_wait(st, m, 4, WR_DUR_SYNC), WR_OK);
    wr_store_op_t d[4] = {op_range(1, 0, 10), op_del(1, 25), op_range(2, 0, UINT64_MAX),
                          op_meta("q/b", NULL)};
    cr_assert_eq(write_wait(st, d, 4, WR_DUR_WAL), WR_OK);

    reopen();
    cr_assert_eq(count_msgs(st, 1, c), 39);
    cr_assert_eq(c->seqs[0], 11);
    cr_assert_str_eq(c->vals[0], "m11");
    for (size_t i = 0; i < c->n; i++)
        cr_assert_neq(c->seqs[i], 25);
    cr_assert_eq(count_msgs(st, 2, c), 0);
    cr_assert_eq(wr_store_meta_scan(st, (wr_bytes_t){"q/", 2}, kvs_visit, &k), WR_OK);
    cr_assert_eq(k.n, 2);
    cr_assert_str_eq(k.keys[0], "q/a");
    cr_assert_str_eq(k.vals[1], "C");

    /* And once more, after writing on the reopened store. */
    wr_store_op_t more = op_put(1, 100, "later");
    cr_assert_eq(write_wait(st, &more, 1, WR_DUR_SYNC), WR_OK);
    reopen();
    cr_assert_eq(count_msgs(st, 1, c), 40);
    cr_assert_str_eq(c->vals[39], "later");
    free(c);
}

/* close() flushes what is pending: every done() fires with WR_OK, and the
 * writes are there after a reopen. */
static int closed_ok;

static void count_ok(void *arg, wr_err_t err)
{
    (void)arg;
    if (err == WR_OK)
        __atomic_fetch_add(&closed_ok, 1, __ATOMIC_RELAXED);
}

Test(rocksdb, close_flushes_pending)
{
    collect_t *c = calloc(1, sizeof(*c));

    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    for (uint64_t i = 0; i < 2000; i++) {
        wr_store_op_t p = op_put(3, i, "p");
        cr_assert_eq(
            wr_store_write_batch(st, &p, 1, i % 2 ? WR_DUR_SYNC : WR_DUR_WAL, count_ok, NULL),
            WR_OK);
    }
    wr_store_close(st);
    st = NULL;
    cr_assert_eq(closed_ok, 2000);
    reopen();
    cr_assert_eq(count_msgs(st, 3, c), 2000);
    free(c);
}

/* A put on one thread, the delete of the same key queued after it from
 * another thread: the delete always wins. */
typedef struct handoff {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t put_done; /* puts queued so far */
} handoff_t;

static handoff_t ho = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
#define HANDOFF_N 3000

static void *putter(void *arg)
{
    (void)arg;
    for (uint64_t i = 0; i < HANDOFF_N; i++) {
        wr_store_op_t p = op_put(9, i, "x");
        cr_assert_eq(wr_store_write_batch(st, &p, 1, WR_DUR_SYNC, NULL, NULL), WR_OK);
        pthread_mutex_lock(&ho.mu);
        ho.put_done = i + 1;
        pthread_cond_signal(&ho.cv);
        pthread_mutex_unlock(&ho.mu);
    }
    return NULL;
}

static void *deleter(void *arg)
{
    (void)arg;
    for (uint64_t i = 0; i < HANDOFF_N; i++) {
        pthread_mutex_lock(&ho.mu);
        while (ho.put_done <= i)
            pthread_cond_wait(&ho.cv, &ho.mu);
        pthread_mutex_unlock(&ho.mu);
        wr_store_op_t d = i % 2 ? op_del(9, i) : op_range(9, i, i);
        cr_assert_eq(wr_store_write_batch(st, &d, 1, WR_DUR_WAL, NULL, NULL), WR_OK);
    }
    return NULL;
}

Test(rocksdb, put_then_delete_across_threads)
{
    pthread_t a, b;
    collect_t *c = calloc(1, sizeof(*c));

    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    pthread_create(&b, NULL, deleter, NULL);
    pthread_create(&a, NULL, putter, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    barrier(st);
    cr_assert_eq(count_msgs(st, 9, c), 0);
    reopen();
    cr_assert_eq(count_msgs(st, 9, c), 0);
    free(c);
}

/* Many threads, each waiting for every synced write before the next: the
 * writer thread shares one fsync among all that are pending. */
#define GC_THREADS 8
#define GC_WRITES 150

static void *sync_writer(void *arg)
{
    wr_qid_t q = (wr_qid_t)(uintptr_t)arg;

    for (uint64_t i = 0; i < GC_WRITES; i++) {
        wr_store_op_t p = op_put(q, i, "s");
        cr_assert_eq(write_wait(st, &p, 1, WR_DUR_SYNC), WR_OK);
    }
    return NULL;
}

static void run_sync_writers(void)
{
    pthread_t th[GC_THREADS];

    for (uintptr_t i = 0; i < GC_THREADS; i++)
        pthread_create(&th[i], NULL, sync_writer, (void *)(i + 100));
    for (int i = 0; i < GC_THREADS; i++)
        pthread_join(th[i], NULL);
}

Test(rocksdb, group_commit_shares_fsyncs)
{
    wr_store_stats_t s;
    collect_t *c = calloc(1, sizeof(*c));

    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    run_sync_writers();
    st->ops->stats(st, &s);
    fprintf(stderr, "group commit: writes=%llu syncs=%llu\n", (unsigned long long)s.writes,
            (unsigned long long)s.syncs);
    cr_assert_eq(s.writes, GC_THREADS * GC_WRITES);
    cr_assert_gt(s.syncs, 0);
    cr_assert_lt(s.syncs * 2, s.writes, "syncs=%llu writes=%llu: no group commit",
                 (unsigned long long)s.syncs, (unsigned long long)s.writes);
    cr_assert_eq(s.bytes_written, GC_THREADS * GC_WRITES * 17);
    /* RocksDB's own count agrees: one WAL write per group, one sync each. */
    cr_assert(s.engine_wal);
    cr_assert_eq(s.wal_syncs, s.syncs, "rocksdb wal_syncs=%llu ours=%llu",
                 (unsigned long long)s.wal_syncs, (unsigned long long)s.syncs);
    cr_assert_eq(s.wal_writes, s.syncs);
    for (wr_qid_t q = 100; q < 100 + GC_THREADS; q++)
        cr_assert_eq(count_msgs(st, q, c), GC_WRITES);
    free(c);
}

Test(rocksdb, fsync_never_never_syncs)
{
    wr_store_stats_t s;

    cr_assert_eq(open_with(WR_FSYNC_NEVER, 0), WR_OK);
    run_sync_writers();
    st->ops->stats(st, &s);
    cr_assert_eq(s.writes, GC_THREADS * GC_WRITES);
    cr_assert_eq(s.syncs, 0);
    cr_assert(s.engine_wal);
    cr_assert_gt(s.wal_writes, 0);
    cr_assert_eq(s.wal_syncs, 0, "rocksdb synced %llu times", (unsigned long long)s.wal_syncs);
}

/* RocksDB prints its counts rounded from 10000 on ("12K"): the store reads
 * them often enough on its writer thread that the sum stays exact. */
Test(rocksdb, engine_wal_counts_stay_exact)
{
    wr_store_stats_t s;
    wr_store_op_t p = op_put(1, 1, "v");
    const unsigned n = 12345;

    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(write_wait(st, &p, 1, WR_DUR_WAL), WR_OK);
    cr_assert_eq(write_wait(st, &p, 1, WR_DUR_SYNC), WR_OK);
    st->ops->stats(st, &s);
    cr_assert(s.engine_wal);
    cr_assert_eq(s.wal_writes, n + 1, "wal_writes=%llu", (unsigned long long)s.wal_writes);
    cr_assert_eq(s.wal_syncs, 1);
    cr_assert_eq(s.syncs, 1);
}

Test(rocksdb, fsync_batch_and_always)
{
    wr_store_stats_t s;
    wr_store_op_t p = op_put(1, 1, "v"), d = op_del(1, 1);

    /* batch: a WAL-only write is not synced, a WR_DUR_SYNC one is. */
    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    cr_assert_eq(write_wait(st, &p, 1, WR_DUR_WAL), WR_OK);
    cr_assert_eq(write_wait(st, &d, 1, WR_DUR_NONE), WR_OK);
    st->ops->stats(st, &s);
    cr_assert_eq(s.syncs, 0);
    cr_assert_eq(write_wait(st, &p, 1, WR_DUR_SYNC), WR_OK);
    st->ops->stats(st, &s);
    cr_assert_eq(s.syncs, 1);
    wr_store_close(st);
    st = NULL;

    /* always: every group, deletes included. */
    cr_assert_eq(open_with(WR_FSYNC_ALWAYS, 0), WR_OK);
    cr_assert_eq(write_wait(st, &p, 1, WR_DUR_WAL), WR_OK);
    cr_assert_eq(write_wait(st, &d, 1, WR_DUR_WAL), WR_OK);
    st->ops->stats(st, &s);
    cr_assert_eq(s.writes, 2);
    cr_assert_eq(s.syncs, 2);
}

/* ------------------------------------------------------------------------ */
/* Refusals                                                                 */

/* Makes <dir>/store a RocksDB with the given column families, one key in
 * default (key = val; val NULL: none). */
static void make_foreign(const char *const *cfs, int ncf, const char *key, const char *val)
{
    rocksdb_options_t *o = rocksdb_options_create();
    const rocksdb_options_t *cfo[4] = {o, o, o, o};
    rocksdb_column_family_handle_t *h[4];
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *e = NULL;
    rocksdb_t *db;

    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    db = rocksdb_open_column_families(o, store_path("store"), ncf, cfs, cfo, h, &e);
    cr_assert_null(e, "%s", e);
    if (val)
        rocksdb_put_cf(db, wo, h[0], key, strlen(key), val, strlen(val), &e);
    cr_assert_null(e);
    for (int i = 0; i < ncf; i++)
        rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
}

/* Reads key from the default family of <dir>/store, untouched by us. */
static bool foreign_has(const char *const *cfs, int ncf, const char *key)
{
    rocksdb_options_t *o = rocksdb_options_create();
    const rocksdb_options_t *cfo[4] = {o, o, o, o};
    rocksdb_column_family_handle_t *h[4];
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *e = NULL, *v;
    size_t vlen;
    rocksdb_t *db;

    db =
        rocksdb_open_for_read_only_column_families(o, store_path("store"), ncf, cfs, cfo, h, 0, &e);
    cr_assert_null(e, "%s", e);
    v = rocksdb_get_cf(db, ro, h[0], key, strlen(key), &vlen, &e);
    for (int i = 0; i < ncf; i++)
        rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_readoptions_destroy(ro);
    rocksdb_options_destroy(o);
    free(v);
    return v != NULL;
}

/* Names and sizes of the files in <dir>/store, but RocksDB's info LOG. */
static void listing(char *out, size_t cap)
{
    char cmd[700];
    FILE *p;
    size_t n;

    snprintf(cmd, sizeof(cmd), "cd %s/store && ls -l --time-style=+ | grep -v ' LOG' | sort", dir);
    p = popen(cmd, "r");
    cr_assert_not_null(p);
    n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    pclose(p);
}

/* Refused, and every file left as it was. */
static void assert_refused_untouched(wr_err_t want)
{
    char before[4096], after[4096];

    listing(before, sizeof(before));
    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), want);
    cr_assert_null(st);
    listing(after, sizeof(after));
    cr_assert_str_eq(before, after);
}

Test(rocksdb, foreign_rocksdb_refused)
{
    static const char *const plain[] = {"default"};

    make_foreign(plain, 1, "theirs", "data");
    assert_refused_untouched(WR_EPROTO);
    cr_assert(foreign_has(plain, 1, "theirs"));
}

Test(rocksdb, markerless_store_refused)
{
    static const char *const ours[] = {"default", "meta", "msgs"};

    make_foreign(ours, 3, "theirs", "data");
    assert_refused_untouched(WR_EPROTO);
    cr_assert(foreign_has(ours, 3, "theirs"));
}

/* The messages of a small store live in its WAL. */
static char *wal_path(void)
{
    static char p[700];
    char cmd[600];
    FILE *f;

    snprintf(cmd, sizeof(cmd), "ls -S %s/store/*.log | head -1", dir);
    f = popen(cmd, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(p, sizeof(p), f));
    pclose(f);
    p[strcspn(p, "\n")] = '\0';
    return p;
}

static off_t fill_wal(void)
{
    char v[200];
    struct stat sb;

    memset(v, 'w', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    for (uint64_t i = 0; i < 999; i++) {
        wr_store_op_t p = op_put(1, i, v);
        cr_assert_eq(wr_store_write_batch(st, &p, 1, WR_DUR_WAL, NULL, NULL), WR_OK);
    }
    barrier(st);
    /* The last WAL record: this put alone (a group holds every batch that
     * was pending, so unwaited puts share records). */
    wr_store_op_t last = op_put(1, 999, v);
    cr_assert_eq(write_wait(st, &last, 1, WR_DUR_WAL), WR_OK);
    wr_store_close(st);
    st = NULL;
    cr_assert_eq(stat(wal_path(), &sb), 0);
    cr_assert_gt(sb.st_size, 150000);
    return sb.st_size;
}

/* Damage in the middle of the WAL: refused (not started short of the
 * records after it), files untouched. */
Test(rocksdb, scribbled_wal_refused)
{
    off_t size = fill_wal();
    char junk[512];
    int fd = open(wal_path(), O_WRONLY);

    cr_assert_geq(fd, 0);
    memset(junk, 0x5a, sizeof(junk));
    cr_assert_eq(pwrite(fd, junk, sizeof(junk), size / 3), (ssize_t)sizeof(junk));
    close(fd);
    assert_refused_untouched(WR_EIO);
}

/* A torn last record (a crash in the middle of writing it, so before its
 * done()) is dropped, and only it. */
Test(rocksdb, torn_wal_tail_tolerated)
{
    collect_t *c = calloc(1, sizeof(*c));
    off_t size = fill_wal();

    cr_assert_eq(truncate(wal_path(), size - 50), 0);
    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    size_t n = count_msgs(st, 1, c);
    cr_assert_eq(n, 999, "%zu messages", n);
    cr_assert_eq(c->seqs[998], 998);
    free(c);
}

Test(rocksdb, other_format_version_refused)
{
    static const char *const ours[] = {"default", "meta", "msgs"};

    make_foreign(ours, 3, "warren-format", "99");
    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_EPROTO);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static bool file_is(const char *path, const char *text)
{
    char buf[256] = {0};
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    return n == strlen(text) && memcmp(buf, text, n) == 0;
}

Test(rocksdb, garbage_refused)
{
    /* A CURRENT that points nowhere sensible. */
    cr_assert_eq(mkdir(store_path("store"), 0755), 0);
    write_file(store_path("store/CURRENT"), "junk junk junk");
    assert_refused_untouched(WR_EIO);
    cr_assert(file_is(store_path("store/CURRENT"), "junk junk junk"));

    /* Files, but no RocksDB at all. */
    cr_assert_eq(unlink(store_path("store/CURRENT")), 0);
    write_file(store_path("store/notes.txt"), "mine");
    assert_refused_untouched(WR_EIO);
    cr_assert(file_is(store_path("store/notes.txt"), "mine"));
}

Test(rocksdb, store_not_a_directory_refused)
{
    write_file(store_path("store"), "a file");
    cr_assert_neq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    cr_assert(file_is(store_path("store"), "a file"));
}

/* Corrupting a live store: its MANIFEST overwritten with junk. */
Test(rocksdb, corrupted_manifest_refused)
{
    char cur[128] = {0}, path[600];
    FILE *f;

    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    wr_store_close(st);
    st = NULL;
    f = fopen(store_path("store/CURRENT"), "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(cur, sizeof(cur), f));
    fclose(f);
    cur[strcspn(cur, "\n")] = '\0';
    snprintf(path, sizeof(path), "%s/store/%s", dir, cur);
    write_file(path, "this is not a manifest, this is not a manifest, this is not a manifest");
    assert_refused_untouched(WR_EIO);
}

/* What creation leaves or tolerates: a leftover store.tmp from a crashed
 * first start is replaced, an empty store dir is used. */
Test(rocksdb, creation_cases)
{
    cr_assert_eq(mkdir(store_path("store.tmp"), 0755), 0);
    write_file(store_path("store.tmp/CURRENT"), "half made");
    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    cr_assert_eq(access(store_path("store.tmp"), F_OK), -1);
    wr_store_close(st);
    st = NULL;

    tmpdir_free(dir);
    dir = tmpdir_new();
    cr_assert_eq(mkdir(store_path("store"), 0755), 0);
    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    wr_store_close(st);
    st = NULL;

    /* A data dir that does not exist yet (its parent does). */
    char *parent = dir;
    char sub[512];
    snprintf(sub, sizeof(sub), "%s/data", parent);
    wr_store_cfg_t cfg = {.dir = sub};
    cr_assert_eq(ops->open(&cfg, &st), WR_OK);
    cr_assert_eq(access(store_path("data/store/CURRENT"), F_OK), 0);
}

/* ------------------------------------------------------------------------ */
/* Disk space                                                               */

Test(rocksdb, disk_free_limit)
{
    wr_store_op_t p = op_put(1, 1, "v"), m = op_meta("k", "v"), d = op_del(1, 1),
                  dm = op_meta("k", NULL), r = op_range(1, 0, UINT64_MAX);
    wr_store_stats_t s;

    cr_assert_eq(open_with(WR_FSYNC_BATCH, 0), WR_OK);
    cr_assert_eq(write_wait(st, &p, 1, WR_DUR_SYNC), WR_OK);
    cr_assert_eq(wr_store_full(st), 0);
    wr_store_close(st);
    st = NULL;

    /* More free space than any disk has. */
    cr_assert_eq(open_with(WR_FSYNC_BATCH, UINT64_MAX / 2), WR_OK);
    cr_assert_eq(wr_store_full(st), 1);
    cr_assert_eq(write_wait(st, &p, 1, WR_DUR_SYNC), WR_ENOSPACE);
    cr_assert_eq(write_wait(st, &m, 1, WR_DUR_SYNC), WR_ENOSPACE);
    cr_assert_eq(write_wait(st, &d, 1, WR_DUR_WAL), WR_OK);
    cr_assert_eq(write_wait(st, &dm, 1, WR_DUR_WAL), WR_OK);
    cr_assert_eq(write_wait(st, &r, 1, WR_DUR_SYNC), WR_OK);
    wr_store_op_t mixed[2] = {d, p};
    cr_assert_eq(write_wait(st, mixed, 2, WR_DUR_SYNC), WR_ENOSPACE);
    cr_assert_eq(wr_store_full(st), 1);
    st->ops->stats(st, &s);
    cr_assert_eq(s.writes, 3);
}

/* A real ENOSPC from RocksDB: a small tmpfs (root only: skipped where
 * mount is not allowed), filled by the WAL until a write fails; then space
 * is freed and the store reopens itself. */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(rocksdb, enospc_then_recovers)
{
    char ballast[600], *val;
    const size_t vlen = 64 << 10;
    uint64_t ok = 0;
    wr_err_t err = WR_OK;
    collect_t *c = calloc(1, sizeof(*c));
    wr_store_cfg_t cfg = {.fsync = WR_FSYNC_BATCH};
    int fd;

    cr_assert_eq(mkdir(store_path("mnt"), 0755), 0);
    /* In a mount namespace of this test's own process, so the tmpfs goes
     * away with it even if the test crashes. */
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", store_path("mnt"), "tmpfs", 0, "size=24m") != 0) {
        free(c);
        cr_skip_test("cannot mount a tmpfs here: %s", strerror(errno));
    }
    mnt = strdup(store_path("mnt"));
    /* Ballast to free later: 6 MB. */
    snprintf(ballast, sizeof(ballast), "%s/ballast", mnt);
    fd = open(ballast, O_WRONLY | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    val = calloc(1, vlen);
    for (int i = 0; i < 96; i++)
        cr_assert_eq(write(fd, val, vlen), (ssize_t)vlen);
    close(fd);

    cfg.dir = mnt;
    cr_assert_eq(ops->open(&cfg, &st), WR_OK);
    for (uint64_t i = 0; i < 4096 && err == WR_OK; i++) {
        wr_store_op_t p = {.kind = WR_STORE_PUT_MSG, .q = 1, .seq = i, .val = {val, vlen}};
        memset(val, (int)(i & 0xff), 64);
        err = write_wait(st, &p, 1, WR_DUR_SYNC);
        if (err == WR_OK)
            ok++;
    }
    fprintf(stderr, "ENOSPC after %llu writes of 64 KiB\n", (unsigned long long)ok);
    cr_assert_eq(err, WR_ENOSPACE);
    cr_assert_gt(ok, 10);
    cr_assert_eq(wr_store_full(st), 1);
    /* Still failing while nothing changed; reads work. */
    wr_store_op_t small = op_put(2, 1, "s");
    cr_assert_neq(write_wait(st, &small, 1, WR_DUR_SYNC), WR_OK);
    cr_assert_eq(count_msgs(st, 1, c), ok);

    cr_assert_eq(unlink(ballast), 0);
    for (int i = 0; i < 100 && wr_store_full(st); i++)
        sleep_ms(50);
    cr_assert_eq(wr_store_full(st), 0, "the store did not recover within 5 s");
    cr_assert_eq(write_wait(st, &small, 1, WR_DUR_SYNC), WR_OK);
    cr_assert_eq(count_msgs(st, 1, c), ok);
    cr_assert_eq(count_msgs(st, 2, c), 1);
    /* RocksDB's WAL counts went on across the reopen (its own start from
     * zero): the syncs before the failure are still in the sum. */
    wr_store_stats_t s;
    st->ops->stats(st, &s);
    cr_assert(s.engine_wal);
    cr_assert_geq(s.wal_syncs, ok + 1, "wal_syncs=%llu after %llu synced writes",
                  (unsigned long long)s.wal_syncs, (unsigned long long)ok + 1);

    /* And all of it after a restart. */
    wr_store_close(st);
    st = NULL;
    cr_assert_eq(ops->open(&cfg, &st), WR_OK);
    cr_assert_eq(count_msgs(st, 1, c), ok);
    cr_assert_eq(count_msgs(st, 2, c), 1);
    free(val);
    free(c);
}
