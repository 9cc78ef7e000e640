/*
 * rocksdb.c - the "rocksdb" store: durable queues in RocksDB (C API), with
 * group commit on one writer thread.
 *
 * Layout: the key layout and helpers; the data directory (create, refuse);
 * RocksDB options and open/close; the writer thread (pending list, disk
 * space, failure and reopen, applying a group); the ops; the ops table.
 *
 * Key layout. The DB lives in <data dir>/store (the data dir also holds
 * warrend's lock file and other files) and has three column families:
 *   "default"  only the format marker, FORMAT_KEY -> FORMAT_VERSION
 *   "meta"     the metadata key space, raw keys as given
 *   "msgs"     messages: qid (8 bytes big-endian) | seq (8 bytes big-endian)
 * so one queue is one contiguous, seq-ordered range. A range delete
 * (q, lo) .. (q, hi) inclusive becomes RocksDB's DeleteRange with the
 * exclusive end key(q, hi) + one 0x00 byte: every message key is 16 bytes,
 * so that 17-byte key is the immediate successor of key(q, hi) and nothing
 * else lies between them. This needs no special case for hi == UINT64_MAX
 * or q == UINT64_MAX (where (q + 1, 0) would wrap round).
 *
 * Creation and refusal. A fresh store is built in <data dir>/store.tmp,
 * given its marker with a synced write, closed and renamed to store: a crash
 * half-way leaves either no store (store.tmp is ours and is removed on the
 * next start) or a complete one, never a marker-less RocksDB that the next
 * start would have to refuse. An existing store must be a RocksDB with
 * exactly our column families and our marker and version, and be readable
 * to the end of its WAL; this is checked with a read-only open, which writes
 * nothing, before the real one. Anything else is refused with one log line
 * saying why, and its files are left as they were: never repaired,
 * overwritten or started on empty.
 *
 * Group commit. write_batch() runs on the shard threads and must never wait
 * for I/O: it validates, copies the ops (the caller's buffers are only
 * borrowed) into one allocation, appends it to a mutex-protected FIFO and
 * signals. The writer thread takes everything pending (up to GROUP_MAX bytes),
 * applies it in arrival order as ONE RocksDB WriteBatch - so a delete queued
 * after a put of the same key lands after it, WAL-only deletes included -
 * with one WAL write and at most one fsync, then calls every done() in
 * order. While it syncs, the next group piles up: the busier the store, the
 * more batches share one fsync.
 *
 * The fsync policy (cfg->fsync) and what each risks:
 *   batch   (default) a group is synced when any batch in it asked for
 *           WR_DUR_SYNC: a confirmed write (publish confirm, REST 201, a
 *           durable declare) survives a machine crash. WAL-only writes - the
 *           deletes behind acks - are synced by the next synced group, so a
 *           machine crash can bring back a few acked messages (redelivered:
 *           at-least-once), never lose a confirmed one.
 *   always  every group is synced, deletes too: in addition an acked
 *           message never comes back after a machine crash. Costs an fsync
 *           per group even when nobody waits for one.
 *   never   nothing is synced, WR_DUR_SYNC acts as WR_DUR_WAL: every write
 *           is in the WAL (the OS page cache) before done(), so it survives
 *           a process crash (SIGKILL) but not a machine or power failure.
 * WR_DUR_NONE is written to the WAL like WR_DUR_WAL: disabling the WAL for
 * one batch of a group is not possible, and for a group alone it would save
 * little.
 *
 * Disk space. With cfg->disk_free_limit set, the writer checks free space
 * (statvfs on the store dir) at most every SPACE_CHECK_NS, before a group
 * that adds data and, while full, on a timer even when idle, so full()
 * drops back to 0 by itself once space returns. While free < limit, batches
 * with a put fail with WR_ENOSPACE and batches of deletes still go through:
 * they are what frees space.
 *
 * Write failures and recovery. If RocksDB itself fails a write (ENOSPC with
 * no or a too small limit, or an I/O error), it enters a background-error
 * state and refuses every later write until it is resumed. 7.8's C API has
 * no rocksdb_resume(), and while RocksDB may recover from a no-space error
 * on its own (its default SstFileManager polls for space), nothing in the C
 * API says when. So the writer marks the store broken: that group and every
 * later one fail with the same error (WR_ENOSPACE for no space, else WR_EIO)
 * and full() is 1. At most every REOPEN_NS, once free space is back above
 * the limit and MIN_OPEN_FREE, the writer closes and reopens the DB under
 * the write side of dblock; reads hold its read side, so none runs on a
 * closed handle (they fail with WR_EIO while no DB is open). The reopen
 * replays the WAL (a torn last record is dropped, see the options) and
 * checks the marker again. A failed write is not guaranteed to be absent:
 * if its WAL record got out whole before the error (a failed fsync), it
 * comes back on reopen - the "may or may not have happened" of any failed
 * write.
 */
#include "rocksdb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "../../core/log.h"
#include "walstats.h"

#define FORMAT_KEY "warren-format"
#define FORMAT_VERSION "1"

#define MSG_KEY 16                  /* qid | seq */
#define GROUP_MAX (16u << 20)       /* bytes of ops in one WriteBatch */
#define SPACE_CHECK_NS 100000000ull /* statvfs at most every 100 ms */
#define REOPEN_NS 1000000000ull     /* a broken DB is reopened at most every 1 s */
#define MIN_OPEN_FREE (4ull << 20)  /* to open: a MANIFEST, OPTIONS, a WAL */
#define NS_PER_S 1000000000ull

enum { CF_DEFAULT, CF_META, CF_MSGS, NCF };
static const char *const cf_names[NCF] = {"default", "meta", "msgs"};

/* One op, copied: RocksDB primitive + column family + key/value in the
 * pend's own bytes. For R_DEL_RANGE, v is the exclusive end key. */
typedef enum { R_PUT, R_DEL, R_DEL_RANGE } rec_kind_t;

typedef struct rec {
    rec_kind_t kind;
    int cf;
    const char *k, *v;
    size_t klen, vlen;
} rec_t;

/* One write_batch() call waiting for the writer, in one allocation: this
 * header, n recs, then their bytes. */
typedef struct pend {
    struct pend *next;
    wr_store_done_cb done;
    void *arg;
    bool sync;      /* asked for WR_DUR_SYNC */
    bool adds;      /* has a put: refused while the disk is full */
    wr_err_t err;   /* the outcome, set by the writer */
    size_t size;    /* bytes of keys and values, for GROUP_MAX */
    uint64_t bytes; /* what stats count as written (as the memory store) */
    size_t n;
    rec_t recs[];
} pend_t;

typedef struct rdb_store {
    wr_store_t base;
    char *dir, *path, *tmp; /* data dir, <dir>/store, <dir>/store.tmp */
    wr_fsync_t fsync;
    uint64_t limit; /* disk_free_limit, 0 = no check */

    /* RocksDB. db and cf[] change only on the writer thread (reopen) and
     * only under the write side of dblock; readers hold the read side. */
    pthread_rwlock_t dblock;
    rocksdb_t *db;
    rocksdb_column_family_handle_t *cf[NCF];
    rocksdb_options_t *dbo, *cfo_meta, *cfo_msgs;
    rocksdb_block_based_table_options_t *bbto;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wo_sync, *wo_nosync;
    rocksdb_writebatch_t *wb; /* the writer's, reused from group to group */

    /* The pending FIFO, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pend_t *head, **tailp;
    bool stopping;
    bool started;
    pthread_t writer;

    /* Writer-thread state; full mirrors (space_full || broken) for full(). */
    bool space_full, broken;
    wr_err_t broken_err;
    uint64_t last_check, next_reopen;
    unsigned reopen_fails;
    atomic_int full;

    atomic_uint_fast64_t writes, syncs, bytes_written;
    wr_store_rdb_wal_t wal; /* RocksDB's own WAL counters (walstats.h) */
    unsigned wal_groups;    /* writer: groups since wal was last read */
} rdb_store_t;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        wr_panic(__FILE__, __LINE__, "out of memory");
    return p;
}

static char *xstrdup(const char *str)
{
    size_t n = strlen(str) + 1;
    return memcpy(xmalloc(n), str, n);
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + 1 + b + 1);

    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static void be64_put(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t be64_get(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

static void msg_key(char *out, wr_qid_t q, uint64_t seq)
{
    be64_put(out, q);
    be64_put(out + 8, seq);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* RocksDB reports ENOSPC as "IO error: No space left on device: ...". */
static wr_err_t classify(const char *rocks_err)
{
    return strstr(rocks_err, "No space left") || strstr(rocks_err, "NoSpace") ? WR_ENOSPACE
                                                                              : WR_EIO;
}

/* ------------------------------------------------------------------------ */
/* The data directory                                                       */

/* Removes a directory of plain files (a RocksDB has no subdirectories).
 * Only used on store.tmp, which nobody but this store creates. */
static int rm_flat_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int rc = 0;

    if (!d)
        return errno == ENOENT ? 0 : -1;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0)
            rc = -1;
    }
    closedir(d);
    return rc == 0 ? rmdir(path) : rc;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

typedef enum { DIR_MISSING, DIR_EMPTY, DIR_USED, DIR_BAD } dir_state_t;

static dir_state_t dir_state(const char *path)
{
    struct stat sb;
    DIR *d;
    struct dirent *de;
    dir_state_t st = DIR_EMPTY;

    if (stat(path, &sb) != 0)
        return errno == ENOENT ? DIR_MISSING : DIR_BAD;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return DIR_BAD;
    }
    if (!(d = opendir(path)))
        return DIR_BAD;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            st = DIR_USED;
            break;
        }
    closedir(d);
    return st;
}

/* ------------------------------------------------------------------------ */
/* RocksDB options, open, close                                             */

/* Options for a message store, kept few on purpose:
 * - WAL always on (manual_wal_flush off): done() means "in the WAL", and a
 *   WR_DUR_SYNC group's fsync covers every earlier WAL write too.
 * - max_total_wal_size: "meta" is written rarely; without a cap its
 *   unflushed memtable would pin every old WAL file. 64 MB forces a flush
 *   of whichever family holds the oldest WAL, so the WAL stays small and a
 *   restart replays little.
 * - msgs: 32 MB memtables. Most messages are acked soon after they are
 *   written, so their put and delete usually meet in the memtable and never
 *   reach a table file. A memtable stays resident until it is flushed:
 *   after the AMQP bench's S3 (200k durable 100 B messages, all acked)
 *   ~15-23 MiB stayed. 8 MB gave that back but filled a durable backlog
 *   (1 KiB, confirms, no consumer) 3-12% slower in an A/B on a loaded
 *   machine, so 32 MB stays. LZ4 for what does: cheap, and bodies are often
 *   text. Dynamic level sizes keep space amplification low.
 * - a 32 MB LRU block cache shared by all families: the shards keep the
 *   working set in memory, the store is read mostly at start-up.
 * - the info LOG stays empty (level HEADER; the file must exist, 7.8 will
 *   not open without a logger): Debian's librocksdb 7.8 is built with
 *   assertions, and its WritableFileWriter asserts - aborting the broker -
 *   when a file that has failed a write is written again. On a full disk
 *   the LOG is the file that does that first: one line fails to flush with
 *   ENOSPC, the next line aborts (seen: the no-space recovery thread
 *   logging just after a WAL write failed). What matters - RocksDB's error
 *   text on a failed open, write or read - this file logs itself. Opens
 *   also need MIN_OPEN_FREE bytes free, for the MANIFEST, OPTIONS and WAL.
 * - avoid_flush_during_recovery: a reopen replays the WAL into memtables
 *   instead of writing table files first, so it needs little free space.
 * - WAL recovery tolerates only a torn tail: an incomplete last record of a
 *   log (a crash while writing it) is dropped, any other damage refuses the
 *   store. Not RocksDB's default, point-in-time recovery, which stops the
 *   replay at the first bad record anywhere and opens without everything
 *   after it: a scribble in the middle of a WAL started warrend silently
 *   short of the messages written after it. No repair, ever.
 * - no periodic stats dump: it would only print to the silent LOG, and it
 *   reads "rocksdb.dbstats", whose interval counters walstats.c sums. */
static void opts_init(rdb_store_t *s)
{
    rocksdb_options_t *base = rocksdb_options_create();
    char *e = NULL;

    /* Not in 7.8's C API but in its options-string parser. */
    s->dbo = rocksdb_options_create();
    rocksdb_get_options_from_string(base, "avoid_flush_during_recovery=true", s->dbo, &e);
    rocksdb_options_destroy(base);
    if (e) /* only if RocksDB changed the option's name */
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "store=rocksdb: %s", e);
    rocksdb_free(e);
    rocksdb_options_set_create_if_missing(s->dbo, 0); /* only db_create makes one */
    rocksdb_options_set_create_missing_column_families(s->dbo, 0);
    rocksdb_options_set_manual_wal_flush(s->dbo, 0);
    rocksdb_options_set_max_total_wal_size(s->dbo, 64ull << 20);
    rocksdb_options_set_max_background_jobs(s->dbo, 2);
    rocksdb_options_set_info_log_level(s->dbo, 5 /* HEADER_LEVEL */);
    rocksdb_options_set_keep_log_file_num(s->dbo, 2);
    rocksdb_options_set_wal_recovery_mode(s->dbo, rocksdb_tolerate_corrupted_tail_records_recovery);
    rocksdb_options_set_stats_dump_period_sec(s->dbo, 0);

    s->cache = rocksdb_cache_create_lru(32u << 20);
    s->bbto = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->bbto, s->cache);

    s->cfo_meta = rocksdb_options_create();
    rocksdb_options_set_block_based_table_factory(s->cfo_meta, s->bbto);
    rocksdb_options_set_compression(s->cfo_meta, rocksdb_no_compression);

    s->cfo_msgs = rocksdb_options_create();
    rocksdb_options_set_block_based_table_factory(s->cfo_msgs, s->bbto);
    rocksdb_options_set_compression(s->cfo_msgs, rocksdb_lz4_compression);
    rocksdb_options_set_write_buffer_size(s->cfo_msgs, 32u << 20);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(s->cfo_msgs, 1);

    s->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wo_sync, 1);
    s->wo_nosync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wo_nosync, 0);
}

/* opts_init always made all of them (its calls cannot fail). */
static void opts_fini(rdb_store_t *s)
{
    rocksdb_writeoptions_destroy(s->wo_sync);
    rocksdb_writeoptions_destroy(s->wo_nosync);
    rocksdb_options_destroy(s->cfo_msgs);
    rocksdb_options_destroy(s->cfo_meta);
    rocksdb_options_destroy(s->dbo);
    rocksdb_block_based_options_destroy(s->bbto);
    rocksdb_cache_destroy(s->cache);
}

static void db_close(rdb_store_t *s)
{
    for (int i = 0; i < NCF; i++) {
        if (s->cf[i])
            rocksdb_column_family_handle_destroy(s->cf[i]);
        s->cf[i] = NULL;
    }
    if (s->db)
        rocksdb_close(s->db);
    s->db = NULL;
}

static wr_err_t db_open_cfs(rdb_store_t *s, const char *path, char **err)
{
    const rocksdb_options_t *cfo[NCF] = {s->cfo_meta, s->cfo_meta, s->cfo_msgs};

    s->db = rocksdb_open_column_families(s->dbo, path, NCF, cf_names, cfo, s->cf, err);
    if (*err) {
        s->db = NULL;
        memset(s->cf, 0, sizeof(s->cf));
        return WR_EIO;
    }
    return WR_OK;
}

/* Builds a fresh store in store.tmp, marks it, renames it to store. */
static wr_err_t db_create(rdb_store_t *s)
{
    char *e = NULL;
    wr_err_t err;

    if (rm_flat_dir(s->tmp) != 0) {
        wr_log(WR_LOG_ERROR, WR_LOGC_STORE,
               "store=rocksdb path=%s: cannot remove a leftover unfinished store: %s", s->tmp,
               strerror(errno));
        return WR_EIO;
    }
    rocksdb_options_set_create_if_missing(s->dbo, 1);
    rocksdb_options_set_create_missing_column_families(s->dbo, 1);
    err = db_open_cfs(s, s->tmp, &e);
    rocksdb_options_set_create_if_missing(s->dbo, 0);
    rocksdb_options_set_create_missing_column_families(s->dbo, 0);
    if (err == WR_OK)
        rocksdb_put_cf(s->db, s->wo_sync, s->cf[CF_DEFAULT], FORMAT_KEY, strlen(FORMAT_KEY),
                       FORMAT_VERSION, strlen(FORMAT_VERSION), &e);
    db_close(s);
    if (e) {
        wr_log(WR_LOG_ERROR, WR_LOGC_STORE, "store=rocksdb path=%s: cannot create a store: %s",
               s->tmp, e);
        rocksdb_free(e);
        return WR_EIO;
    }
    if (rename(s->tmp, s->path) != 0 || fsync_dir(s->dir) != 0) {
        wr_log(WR_LOG_ERROR, WR_LOGC_STORE, "store=rocksdb path=%s: cannot move a new store in: %s",
               s->path, strerror(errno));
        return WR_EIO;
    }
    wr_log(WR_LOG_INFO, WR_LOGC_STORE, "store=rocksdb path=%s: created a new store", s->path);
    return WR_OK;
}

/* True if the families found are exactly ours; lists them into buf. */
static bool cfs_are_ours(char **have, size_t n, char *buf, size_t cap)
{
    bool seen[NCF] = {false};
    size_t off = 0, matched = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(buf + off, cap - off, "%s%s", i ? "," : "", have[i]);
        if (w > 0 && off + (size_t)w < cap)
            off += (size_t)w;
        for (int j = 0; j < NCF; j++)
            if (!seen[j] && strcmp(have[i], cf_names[j]) == 0) {
                seen[j] = true;
                matched++;
            }
    }
    return n == NCF && matched == NCF;
}

static void log_cannot_open(rdb_store_t *s, wr_log_level_t lvl, const char *rocks_err)
{
    wr_log(lvl, WR_LOGC_STORE, "store=rocksdb path=%s cannot be opened (%s); refusing to use it",
           s->path, rocks_err);
}

/* The format marker, read from the default family of db. */
static wr_err_t check_marker(rdb_store_t *s, rocksdb_t *db, rocksdb_column_family_handle_t *cf,
                             wr_log_level_t lvl)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *e = NULL, *v;
    size_t vlen = 0;
    wr_err_t err = WR_OK;

    v = rocksdb_get_cf(db, ro, cf, FORMAT_KEY, strlen(FORMAT_KEY), &vlen, &e);
    rocksdb_readoptions_destroy(ro);
    if (e) {
        log_cannot_open(s, lvl, e);
        err = WR_EIO;
    } else if (!v) {
        wr_log(lvl, WR_LOGC_STORE,
               "store=rocksdb path=%s is not a warren store (no format marker); refusing to use it",
               s->path);
        err = WR_EPROTO;
    } else if (vlen != strlen(FORMAT_VERSION) || memcmp(v, FORMAT_VERSION, vlen) != 0) {
        wr_log(lvl, WR_LOGC_STORE,
               "store=rocksdb path=%s has format version '%.*s', this warrend reads "
               "version " FORMAT_VERSION "; refusing to use it",
               s->path, (int)(vlen > 32 ? 32 : vlen), v);
        err = WR_EPROTO;
    }
    rocksdb_free(e);
    rocksdb_free(v);
    return err;
}

/* Opens s->path read-only with the families names[0..n) - which writes
 * nothing, and replays the WAL, so damage anywhere shows up here - and, if
 * names[0] is "default", checks the format marker. */
static wr_err_t probe(rdb_store_t *s, const char *const *names, size_t n, wr_log_level_t lvl)
{
    rocksdb_column_family_handle_t **h = xmalloc(n * sizeof(*h));
    const rocksdb_options_t **cfo = xmalloc(n * sizeof(*cfo));
    char *e = NULL;
    rocksdb_t *db;
    wr_err_t err = WR_OK;

    for (size_t i = 0; i < n; i++)
        cfo[i] = s->cfo_meta;
    db = rocksdb_open_for_read_only_column_families(s->dbo, s->path, (int)n, names, cfo, h, 0, &e);
    if (e) {
        log_cannot_open(s, lvl, e);
        rocksdb_free(e);
        err = WR_EIO;
    } else {
        if (strcmp(names[0], cf_names[CF_DEFAULT]) == 0)
            err = check_marker(s, db, h[0], lvl);
        for (size_t i = 0; i < n; i++)
            rocksdb_column_family_handle_destroy(h[i]);
        rocksdb_close(db);
    }
    free(h);
    free(cfo);
    return err;
}

/* Opens the existing store at s->path, checking first, without writing
 * anything, that it is ours and readable; anything else is refused with
 * its files as they were. Logs the reason for a refusal at lvl. */
static wr_err_t db_open(rdb_store_t *s, wr_log_level_t lvl)
{
    char *e = NULL, **have, found[256];
    size_t nhave = 0;
    wr_err_t err;

    /* Listing the families reads CURRENT and the MANIFEST. */
    have = rocksdb_list_column_families(s->dbo, s->path, &nhave, &e);
    if (e) {
        rocksdb_list_column_families_destroy(have, nhave); /* allocated even then */
        wr_log(lvl, WR_LOGC_STORE,
               "store=rocksdb path=%s cannot be read as a RocksDB (%s); refusing to use it",
               s->path, e);
        rocksdb_free(e);
        return WR_EIO;
    }
    if (cfs_are_ours(have, nhave, found, sizeof(found))) {
        err = probe(s, cf_names, 1, lvl);
    } else {
        /* A foreign DB, or a damaged MANIFEST that RocksDB lists as
         * "default" alone: the probe tells which, for the log line. */
        err = probe(s, (const char *const *)have, nhave, lvl);
        if (err == WR_OK) {
            wr_log(lvl, WR_LOGC_STORE,
                   "store=rocksdb path=%s is not a warren store (column families: %s; no format "
                   "marker); refusing to use it",
                   s->path, found);
            err = WR_EPROTO;
        }
    }
    rocksdb_list_column_families_destroy(have, nhave);
    if (err != WR_OK)
        return err;
    err = db_open_cfs(s, s->path, &e);
    if (err != WR_OK) {
        log_cannot_open(s, lvl, e);
        rocksdb_free(e);
    }
    return err;
}

/* ------------------------------------------------------------------------ */
/* The writer thread                                                        */

static void publish_full(rdb_store_t *s)
{
    atomic_store_explicit(&s->full, s->space_full || s->broken, memory_order_relaxed);
}

/* Free bytes for an unprivileged writer on path's file system. */
static bool free_bytes(const char *path, uint64_t *out)
{
    struct statvfs v;

    if (statvfs(path, &v) != 0) {
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "store=rocksdb path=%s: statvfs: %s", path,
               strerror(errno));
        return false;
    }
    *out = (uint64_t)v.f_bavail * v.f_frsize;
    return true;
}

/* Opening writes a little (see the options); on a file system with less
 * than MIN_OPEN_FREE bytes free it is not even tried. An unknown amount
 * (statvfs failed) does not block. */
static bool room_to_open(const char *path, wr_log_level_t lvl)
{
    uint64_t avail;

    if (!free_bytes(path, &avail) || avail >= MIN_OPEN_FREE)
        return true;
    wr_log(lvl, WR_LOGC_STORE,
           "store=rocksdb path=%s: %llu bytes free, opening the store needs %llu", path,
           (unsigned long long)avail, (unsigned long long)MIN_OPEN_FREE);
    return false;
}

static void check_space(rdb_store_t *s, uint64_t now)
{
    uint64_t avail;
    bool full;

    s->last_check = now;
    if (!s->limit || !free_bytes(s->path, &avail))
        return;
    full = avail < s->limit;
    if (full && !s->space_full)
        wr_log(WR_LOG_WARN, WR_LOGC_STORE,
               "store=rocksdb path=%s: %llu bytes free, below disk_free_limit %llu: refusing "
               "writes that add data",
               s->path, (unsigned long long)avail, (unsigned long long)s->limit);
    else if (!full && s->space_full)
        wr_log(WR_LOG_INFO, WR_LOGC_STORE,
               "store=rocksdb path=%s: %llu bytes free again: accepting writes", s->path,
               (unsigned long long)avail);
    s->space_full = full;
    publish_full(s);
}

/* A write failed inside RocksDB: it refuses writes until reopened. */
static wr_err_t write_failed(rdb_store_t *s, const char *rocks_err, uint64_t now)
{
    wr_err_t err = classify(rocks_err);

    wr_log(WR_LOG_ERROR, WR_LOGC_STORE,
           "store=rocksdb path=%s: write failed (%s); refusing writes until the store is reopened",
           s->path, rocks_err);
    s->broken = true;
    s->broken_err = err;
    s->reopen_fails = 0;
    s->next_reopen = now + REOPEN_NS;
    publish_full(s);
    return err;
}

static void try_reopen(rdb_store_t *s, uint64_t now)
{
    wr_err_t err;

    s->next_reopen = now + REOPEN_NS;
    if (s->limit)
        check_space(s, now);
    if (s->space_full || !room_to_open(s->path, WR_LOG_DEBUG))
        return;
    pthread_rwlock_wrlock(&s->dblock);
    if (s->db) /* its counts so far; the reopened DB starts from zero */
        wr_store_rdb_wal_read(&s->wal, s->db);
    db_close(s);
    /* Only the first failure of a streak is worth a line at WARN. */
    err = db_open(s, s->reopen_fails ? WR_LOG_DEBUG : WR_LOG_WARN);
    pthread_rwlock_unlock(&s->dblock);
    if (err != WR_OK) {
        s->reopen_fails++;
        return;
    }
    wr_log(WR_LOG_INFO, WR_LOGC_STORE, "store=rocksdb path=%s: reopened, accepting writes",
           s->path);
    s->broken = false;
    publish_full(s);
}

/* Before a group (adds: it has puts) or on an idle tick: reopen a broken
 * DB, or refresh the free-space verdict, each no more often than its
 * interval. */
static void refresh(rdb_store_t *s, bool adds)
{
    uint64_t now = now_ns();

    if (s->broken) {
        if (now >= s->next_reopen)
            try_reopen(s, now);
    } else if (s->limit && (adds || s->space_full) && now - s->last_check >= SPACE_CHECK_NS) {
        check_space(s, now);
    }
}

static void add_recs(rdb_store_t *s, const pend_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        const rec_t *r = &p->recs[i];
        rocksdb_column_family_handle_t *cf = s->cf[r->cf];

        switch (r->kind) {
        case R_PUT:
            rocksdb_writebatch_put_cf(s->wb, cf, r->k, r->klen, r->v, r->vlen);
            break;
        case R_DEL:
            rocksdb_writebatch_delete_cf(s->wb, cf, r->k, r->klen);
            break;
        case R_DEL_RANGE:
            rocksdb_writebatch_delete_range_cf(s->wb, cf, r->k, r->klen, r->v, r->vlen);
            break;
        }
    }
}

/* Applies a group as one WriteBatch, then calls every done() in order. */
static void run_group(rdb_store_t *s, pend_t *g)
{
    bool adds = false, sync = false;
    size_t applied = 0, wbsize = 0;
    uint64_t bytes = 0;
    char *e = NULL;

    for (pend_t *p = g; p; p = p->next)
        adds |= p->adds;
    refresh(s, adds);

    for (pend_t *p = g; p; p = p->next) {
        if (s->broken) {
            p->err = s->broken_err;
            continue;
        }
        if (p->adds && s->space_full) {
            p->err = WR_ENOSPACE;
            continue;
        }
        p->err = WR_OK;
        add_recs(s, p);
        sync |= s->fsync == WR_FSYNC_ALWAYS || (s->fsync == WR_FSYNC_BATCH && p->sync);
        applied++;
        bytes += p->bytes;
    }
    if (rocksdb_writebatch_count(s->wb) > 0) {
        rocksdb_write(s->db, sync ? s->wo_sync : s->wo_nosync, s->wb, &e);
        if (e) {
            wr_err_t err = write_failed(s, e, now_ns());
            rocksdb_free(e);
            for (pend_t *p = g; p; p = p->next)
                if (p->err == WR_OK)
                    p->err = err;
            applied = 0;
        } else if (sync) {
            atomic_fetch_add_explicit(&s->syncs, 1, memory_order_relaxed);
        }
        if (++s->wal_groups >= WR_STORE_RDB_WAL_EVERY) {
            s->wal_groups = 0;
            wr_store_rdb_wal_read(&s->wal, s->db);
        }
        rocksdb_writebatch_data(s->wb, &wbsize);
        /* clear() keeps the buffer; don't keep a huge one around. */
        if (wbsize > (4u << 20)) {
            rocksdb_writebatch_destroy(s->wb);
            s->wb = rocksdb_writebatch_create();
        } else {
            rocksdb_writebatch_clear(s->wb);
        }
    }
    atomic_fetch_add_explicit(&s->writes, applied, memory_order_relaxed);
    if (applied)
        atomic_fetch_add_explicit(&s->bytes_written, bytes, memory_order_relaxed);

    while (g) {
        pend_t *next = g->next;
        if (g->done)
            g->done(g->arg, g->err);
        free(g);
        g = next;
    }
}

/* Detaches the oldest pending batches, up to GROUP_MAX bytes (at least
 * one). Called under mu. */
static pend_t *take_group(rdb_store_t *s)
{
    pend_t *g = s->head, *last = g;
    size_t size;

    if (!g)
        return NULL;
    size = g->size;
    while (last->next && size + last->next->size <= GROUP_MAX) {
        last = last->next;
        size += last->size;
    }
    s->head = last->next;
    if (!s->head)
        s->tailp = &s->head;
    last->next = NULL;
    return g;
}

static void timed_wait(rdb_store_t *s, uint64_t ns)
{
    struct timespec ts;
    uint64_t t;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    t = (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec + ns;
    ts.tv_sec = (time_t)(t / NS_PER_S);
    ts.tv_nsec = (long)(t % NS_PER_S);
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

static void *writer_main(void *arg)
{
    rdb_store_t *s = arg;

    for (;;) {
        pend_t *g;

        pthread_mutex_lock(&s->mu);
        if (!s->head && !s->stopping) {
            /* While full or broken, wake up on a timer to notice recovery
             * even when nobody writes: the core polls full() for that. */
            if (s->space_full || s->broken)
                timed_wait(s, SPACE_CHECK_NS);
            else
                pthread_cond_wait(&s->cv, &s->mu);
        }
        if (!s->head && s->stopping) {
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        g = take_group(s);
        pthread_mutex_unlock(&s->mu);
        if (g)
            run_group(s, g);
        else
            refresh(s, false);
    }
}

/* ------------------------------------------------------------------------ */
/* Ops                                                                      */

static void store_free(rdb_store_t *s)
{
    db_close(s);
    if (s->wb)
        rocksdb_writebatch_destroy(s->wb);
    opts_fini(s);
    pthread_rwlock_destroy(&s->dblock);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    wr_store_rdb_wal_fini(&s->wal);
    free(s->dir);
    free(s->path);
    free(s->tmp);
    free(s);
}

static wr_err_t rdb_open(const wr_store_cfg_t *cfg, wr_store_t **out)
{
    rdb_store_t *s;
    pthread_condattr_t ca;
    pthread_rwlockattr_t ra;
    wr_err_t err = WR_OK;

    if (!cfg || !cfg->dir || !*cfg->dir)
        return WR_EINVAL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return WR_ENOMEM;
    s->base.ops = &wr_store_rocksdb_ops;
    s->dir = xstrdup(cfg->dir);
    s->path = path_join(cfg->dir, "store");
    s->tmp = path_join(cfg->dir, "store.tmp");
    s->fsync = cfg->fsync;
    s->limit = cfg->disk_free_limit;
    s->tailp = &s->head;
    /* Readers first (glibc's default, made explicit): a visitor may call
     * back into iterate/meta_scan, and a nested read lock must not wait
     * behind a reopen waiting for the outer one. */
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_READER_NP);
    pthread_rwlock_init(&s->dblock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    wr_store_rdb_wal_init(&s->wal);
    opts_init(s);
    s->wb = rocksdb_writebatch_create();

    if (mkdir(s->dir, 0755) != 0 && errno != EEXIST) {
        wr_log(WR_LOG_ERROR, WR_LOGC_STORE, "store=rocksdb dir=%s: cannot create: %s", s->dir,
               strerror(errno));
        err = WR_EIO;
    }
    if (err == WR_OK && !room_to_open(s->dir, WR_LOG_ERROR))
        err = WR_ENOSPACE;
    if (err == WR_OK) {
        switch (dir_state(s->path)) {
        case DIR_MISSING:
            err = db_create(s);
            break;
        case DIR_USED:
            break;
        case DIR_EMPTY: /* made by hand, say: nothing to lose */
            if (rmdir(s->path) == 0) {
                err = db_create(s);
                break;
            }
            /* fall through */
        case DIR_BAD:
            wr_log(WR_LOG_ERROR, WR_LOGC_STORE,
                   "store=rocksdb path=%s is not a usable directory (%s); refusing to use it",
                   s->path, strerror(errno));
            err = WR_EIO;
            break;
        }
    }
    if (err == WR_OK)
        err = db_open(s, WR_LOG_ERROR);
    if (err == WR_OK) {
        check_space(s, now_ns());
        if (pthread_create(&s->writer, NULL, writer_main, s) != 0)
            err = WR_ENOMEM;
    }
    if (err != WR_OK) {
        store_free(s);
        return err;
    }
    s->started = true;
    pthread_setname_np(s->writer, "wr-store");
    *out = &s->base;
    return WR_OK;
}

static void rdb_close(wr_store_t *st)
{
    rdb_store_t *s = (rdb_store_t *)st;

    if (!s)
        return;
    /* The writer drains everything pending (every done() fires) before it
     * sees stopping with an empty list and exits. */
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started)
        pthread_join(s->writer, NULL);
    store_free(s);
}

static bool len_ok(wr_bytes_t b)
{
    return (b.len == 0 || b.ptr) && b.len < UINT32_MAX; /* RocksDB slices: 32-bit sizes */
}

/* Size of an op's copied keys and values; false if the op is invalid. */
static bool op_size(const wr_store_op_t *op, size_t *out)
{
    switch (op->kind) {
    case WR_STORE_PUT_MSG:
        *out = MSG_KEY + op->val.len;
        return len_ok(op->val);
    case WR_STORE_DEL_MSG:
        *out = MSG_KEY;
        return true;
    case WR_STORE_DEL_RANGE:
        *out = op->seq <= op->seq_hi ? 2 * MSG_KEY + 1 : 0;
        return true;
    case WR_STORE_PUT_META:
        *out = op->key.len + op->val.len;
        return len_ok(op->key) && len_ok(op->val);
    case WR_STORE_DEL_META:
        *out = op->key.len;
        return len_ok(op->key);
    }
    return false;
}

static char *put_bytes(char *d, const void *p, size_t n)
{
    if (n)
        memcpy(d, p, n);
    return d + n;
}

static void copy_op(pend_t *p, const wr_store_op_t *op, char **dp)
{
    rec_t *r = &p->recs[p->n];
    char *d = *dp;

    *r = (rec_t){.cf = CF_MSGS, .k = d, .klen = MSG_KEY};
    switch (op->kind) {
    case WR_STORE_PUT_MSG:
        r->kind = R_PUT;
        msg_key(d, op->q, op->seq);
        r->v = d + MSG_KEY;
        r->vlen = op->val.len;
        d = put_bytes(d + MSG_KEY, op->val.ptr, op->val.len);
        p->adds = true;
        p->bytes += MSG_KEY + op->val.len;
        break;
    case WR_STORE_DEL_MSG:
        r->kind = R_DEL;
        msg_key(d, op->q, op->seq);
        d += MSG_KEY;
        break;
    case WR_STORE_DEL_RANGE:
        if (op->seq > op->seq_hi)
            return; /* empty range: nothing to record */
        r->kind = R_DEL_RANGE;
        msg_key(d, op->q, op->seq);
        msg_key(d + MSG_KEY, op->q, op->seq_hi);
        d[2 * MSG_KEY] = '\0'; /* successor of key(q, seq_hi): the exclusive end */
        r->v = d + MSG_KEY;
        r->vlen = MSG_KEY + 1;
        d += 2 * MSG_KEY + 1;
        break;
    case WR_STORE_PUT_META:
        *r = (rec_t){.kind = R_PUT, .cf = CF_META, .k = d, .klen = op->key.len};
        d = put_bytes(d, op->key.ptr, op->key.len);
        r->v = d;
        r->vlen = op->val.len;
        d = put_bytes(d, op->val.ptr, op->val.len);
        p->adds = true;
        p->bytes += op->key.len + op->val.len;
        break;
    case WR_STORE_DEL_META:
        *r = (rec_t){.kind = R_DEL, .cf = CF_META, .k = d, .klen = op->key.len};
        d = put_bytes(d, op->key.ptr, op->key.len);
        break;
    }
    p->n++;
    *dp = d;
}

static wr_err_t rdb_write_batch(wr_store_t *st, const wr_store_op_t *ops, size_t n,
                                wr_durability_t dur, wr_store_done_cb done, void *arg)
{
    rdb_store_t *s = (rdb_store_t *)st;
    size_t size = 0, hdr;
    pend_t *p;
    char *d;

    /* All or nothing: refuse the batch before queuing any of it. */
    if (n && !ops)
        return WR_EINVAL;
    for (size_t i = 0; i < n; i++) {
        size_t sz;
        if (!op_size(&ops[i], &sz))
            return WR_EINVAL;
        if (__builtin_add_overflow(size, sz, &size))
            return WR_ETOOBIG;
    }
    if (n > (SIZE_MAX / 2 - sizeof(pend_t)) / sizeof(rec_t) || size > SIZE_MAX / 2)
        return WR_ETOOBIG;
    hdr = sizeof(pend_t) + n * sizeof(rec_t);
    p = xmalloc(hdr + size);
    *p = (pend_t){.done = done, .arg = arg, .sync = dur == WR_DUR_SYNC, .size = size};
    d = (char *)p + hdr;
    for (size_t i = 0; i < n; i++)
        copy_op(p, &ops[i], &d);

    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        free(p);
        return WR_ESHUTDOWN;
    }
    *s->tailp = p;
    s->tailp = &p->next;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return WR_OK;
}

/* Key and value under a scan; returns non-zero to stop. */
typedef int (*scan_fn)(void *ctx, const char *k, size_t klen, const char *v, size_t vlen);

/* Walks column family cf from seek, within ro's bounds, on the caller's
 * thread. The read lock keeps the handle open across a reopen; a visitor
 * may call back into the store (the lock prefers readers). */
static wr_err_t scan(rdb_store_t *s, int cf, rocksdb_readoptions_t *ro, const char *seek,
                     size_t seeklen, scan_fn fn, void *ctx)
{
    rocksdb_iterator_t *it;
    char *e = NULL;
    wr_err_t err = WR_OK;

    pthread_rwlock_rdlock(&s->dblock);
    if (!s->db) {
        pthread_rwlock_unlock(&s->dblock);
        return WR_EIO;
    }
    it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
    for (rocksdb_iter_seek(it, seek, seeklen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (fn(ctx, k, klen, v, vlen))
            break;
    }
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    pthread_rwlock_unlock(&s->dblock);
    if (e) {
        wr_log(WR_LOG_ERROR, WR_LOGC_STORE, "store=rocksdb path=%s: read failed: %s", s->path, e);
        rocksdb_free(e);
        err = WR_EIO;
    }
    return err;
}

typedef struct iter_ctx {
    wr_qid_t q;
    size_t max, seen;
    wr_store_visit_cb visit;
    void *arg;
} iter_ctx_t;

static int iter_step(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    iter_ctx_t *c = ctx;

    if (klen != MSG_KEY || be64_get(k) != c->q || (c->max && c->seen == c->max))
        return 1;
    c->seen++;
    return c->visit(c->arg, be64_get(k + 8), (wr_bytes_t){v, vlen});
}

static wr_err_t rdb_iterate(wr_store_t *st, wr_qid_t q, uint64_t from, size_t max,
                            wr_store_visit_cb visit, void *arg)
{
    rdb_store_t *s = (rdb_store_t *)st;
    iter_ctx_t c = {q, max, 0, visit, arg};
    char lo[MSG_KEY], hi[MSG_KEY];
    rocksdb_readoptions_t *ro;
    wr_err_t err;

    if (!visit)
        return WR_EINVAL;
    ro = rocksdb_readoptions_create();
    msg_key(lo, q, from);
    /* The bound lets RocksDB stop at the queue's end instead of stepping
     * over the next queue's deleted keys. */
    if (q != UINT64_MAX) {
        msg_key(hi, q + 1, 0);
        rocksdb_readoptions_set_iterate_upper_bound(ro, hi, sizeof(hi));
    }
    err = scan(s, CF_MSGS, ro, lo, sizeof(lo), iter_step, &c);
    rocksdb_readoptions_destroy(ro);
    return err;
}

typedef struct meta_ctx {
    wr_bytes_t prefix;
    wr_store_meta_visit_cb visit;
    void *arg;
} meta_ctx_t;

static int meta_step(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    meta_ctx_t *c = ctx;

    if (klen < c->prefix.len || memcmp(k, c->prefix.ptr, c->prefix.len) != 0)
        return 1;
    return c->visit(c->arg, (wr_bytes_t){k, klen}, (wr_bytes_t){v, vlen});
}

static wr_err_t rdb_meta_scan(wr_store_t *st, wr_bytes_t prefix, wr_store_meta_visit_cb visit,
                              void *arg)
{
    rdb_store_t *s = (rdb_store_t *)st;
    meta_ctx_t c = {prefix, visit, arg};
    rocksdb_readoptions_t *ro;
    wr_err_t err;

    if (!visit || (prefix.len && !prefix.ptr))
        return WR_EINVAL;
    ro = rocksdb_readoptions_create();
    err = scan(s, CF_META, ro, prefix.len ? prefix.ptr : "", prefix.len, meta_step, &c);
    rocksdb_readoptions_destroy(ro);
    return err;
}

static void rdb_stats(wr_store_t *st, wr_store_stats_t *out)
{
    rdb_store_t *s = (rdb_store_t *)st;

    *out = (wr_store_stats_t){
        .writes = atomic_load_explicit(&s->writes, memory_order_relaxed),
        .syncs = atomic_load_explicit(&s->syncs, memory_order_relaxed),
        .bytes_written = atomic_load_explicit(&s->bytes_written, memory_order_relaxed),
    };
    /* An estimate: RocksDB counts entries, minus deletes, per family. */
    pthread_rwlock_rdlock(&s->dblock);
    for (int i = CF_META; s->db && i <= CF_MSGS; i++) {
        uint64_t v = 0;
        if (rocksdb_property_int_cf(s->db, s->cf[i], "rocksdb.estimate-num-keys", &v) == 0)
            out->keys += v;
    }
    /* RocksDB's own WAL counts. The read holds RocksDB's DB mutex, which
     * its write path takes only briefly, for about 5 us (measured on 7.8),
     * once per call: a scrape barely touches the writer. */
    if (s->db)
        wr_store_rdb_wal_read(&s->wal, s->db);
    pthread_rwlock_unlock(&s->dblock);
    out->engine_wal = wr_store_rdb_wal_get(&s->wal, &out->wal_writes, &out->wal_syncs);
}

static int rdb_full(wr_store_t *st)
{
    rdb_store_t *s = (rdb_store_t *)st;

    return atomic_load_explicit(&s->full, memory_order_relaxed);
}

const wr_store_ops_t wr_store_rocksdb_ops = {
    .abi = WR_STORE_ABI,
    .name = "rocksdb",
    .open = rdb_open,
    .close = rdb_close,
    .write_batch = rdb_write_batch,
    .iterate = rdb_iterate,
    .meta_scan = rdb_meta_scan,
    .stats = rdb_stats,
    .full = rdb_full,
};
