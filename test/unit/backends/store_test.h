/*
 * store_test.h - helpers for the store tests: wait for a batch's done(),
 * collect what iterate/meta_scan visit, temporary directories.
 *
 * Stores may call done() on another thread and later than write_batch()
 * returns (rocksdb), or at once (memory): tests that read what they wrote
 * go through write_wait() or end a run of unwaited writes with barrier(),
 * which works for both because a store applies batches in order.
 */
#ifndef WR_TEST_STORE_TEST_H
#define WR_TEST_STORE_TEST_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    wr_err_t err;
} waiter_t;

static inline void waiter_done(void *arg, wr_err_t err)
{
    waiter_t *w = arg;

    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->err = err;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Writes and waits for done(); returns write_batch's error or done's. */
static inline wr_err_t write_wait(wr_store_t *st, const wr_store_op_t *ops, size_t n,
                                  wr_durability_t dur)
{
    waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, WR_OK};
    wr_err_t err = wr_store_write_batch(st, ops, n, dur, waiter_done, &w);

    if (err != WR_OK)
        return err;
    pthread_mutex_lock(&w.mu);
    while (!w.calls)
        pthread_cond_wait(&w.cv, &w.mu);
    err = w.err;
    pthread_mutex_unlock(&w.mu);
    cr_assert_eq(w.calls, 1, "done() fired %d times", w.calls);
    return err;
}

/* Returns once every batch written before it is applied. */
static inline void barrier(wr_store_t *st)
{
    cr_assert_eq(write_wait(st, NULL, 0, WR_DUR_SYNC), WR_OK);
}

static inline wr_store_op_t op_put(wr_qid_t q, uint64_t seq, const char *val)
{
    return (wr_store_op_t){.kind = WR_STORE_PUT_MSG, .q = q, .seq = seq, .val = {val, strlen(val)}};
}

static inline wr_store_op_t op_del(wr_qid_t q, uint64_t seq)
{
    return (wr_store_op_t){.kind = WR_STORE_DEL_MSG, .q = q, .seq = seq};
}

static inline wr_store_op_t op_range(wr_qid_t q, uint64_t lo, uint64_t hi)
{
    return (wr_store_op_t){.kind = WR_STORE_DEL_RANGE, .q = q, .seq = lo, .seq_hi = hi};
}

static inline wr_store_op_t op_meta(const char *k, const char *v)
{
    if (!v)
        return (wr_store_op_t){.kind = WR_STORE_DEL_META, .key = {k, strlen(k)}};
    return (wr_store_op_t){.kind = WR_STORE_PUT_META, .key = {k, strlen(k)}, .val = {v, strlen(v)}};
}

typedef struct collect {
    uint64_t seqs[4096];
    char vals[4096][16];
    size_t n;
    size_t stop_after;
} collect_t;

static inline int collect_visit(void *arg, uint64_t seq, wr_bytes_t val)
{
    collect_t *c = arg;

    cr_assert_lt(c->n, 4096);
    c->seqs[c->n] = seq;
    snprintf(c->vals[c->n], sizeof(c->vals[0]), "%.*s", (int)val.len, (const char *)val.ptr);
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

/* Number of messages of queue q (a fresh collect each time). */
static inline size_t count_msgs(wr_store_t *st, wr_qid_t q, collect_t *c)
{
    memset(c, 0, sizeof(*c));
    cr_assert_eq(wr_store_iterate(st, q, 0, 0, collect_visit, c), WR_OK);
    return c->n;
}

typedef struct kvs {
    char keys[256][32];
    char vals[256][32];
    int n;
} kvs_t;

static inline int kvs_visit(void *arg, wr_bytes_t key, wr_bytes_t val)
{
    kvs_t *k = arg;

    cr_assert_lt(k->n, 256);
    snprintf(k->keys[k->n], 32, "%.*s", (int)key.len, (const char *)key.ptr);
    snprintf(k->vals[k->n], 32, "%.*s", (int)val.len, (const char *)val.ptr);
    k->n++;
    return 0;
}

static inline int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* A fresh directory under /tmp; the caller frees it with tmpdir_free. */
static inline char *tmpdir_new(void)
{
    char tmpl[] = "/tmp/wr-store-test-XXXXXX";

    cr_assert_not_null(mkdtemp(tmpl));
    return strdup(tmpl);
}

static inline void tmpdir_free(char *dir)
{
    if (dir)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

#endif
