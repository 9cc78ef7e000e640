/*
 * store_contract.h - the backend.h contract as one criterion suite, run
 * against every store: batches, iterate order/from/max and key-space edges,
 * single and range deletes, meta put/replace/delete and prefix scan, order
 * of unwaited batches, invalid batches, stats, concurrent writers.
 *
 * A test file defines, then includes this:
 *   CONTRACT_STORE        the store's name ("memory")
 *   CONTRACT_EXACT_KEYS   1 if stats().keys is exact, 0 if an estimate
 *   contract_cfg(cfg)     fills the open config (a data dir, say)
 *   contract_cleanup()    removes what contract_cfg made
 * Each test runs in its own process (criterion), on a freshly opened store.
 */
#ifndef WR_TEST_STORE_CONTRACT_H
#define WR_TEST_STORE_CONTRACT_H

#include "store_test.h"

static void contract_cfg(wr_store_cfg_t *cfg);
static void contract_cleanup(void);

static const wr_store_ops_t *ops;
static wr_store_t *st;

static void setup(void)
{
    wr_store_cfg_t cfg = {0};

    ops = wr_store_find(CONTRACT_STORE);
    cr_assert_not_null(ops);
    cr_assert_null(wr_store_find("nope"));
    cr_assert_eq(ops->abi, WR_STORE_ABI);
    cr_assert_str_eq(ops->name, CONTRACT_STORE);
    contract_cfg(&cfg);
    cr_assert_eq(ops->open(&cfg, &st), WR_OK);
}

static void teardown(void)
{
    wr_store_close(st);
    contract_cleanup();
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 60);

/* Unwaited: the tests that read end with barrier(). */
static void put_msg(wr_qid_t q, uint64_t seq, const char *val)
{
    wr_store_op_t op = op_put(q, seq, val);
    cr_assert_eq(wr_store_write_batch(st, &op, 1, WR_DUR_WAL, NULL, NULL), WR_OK);
}

static void meta_put(const char *k, const char *v)
{
    wr_store_op_t op = op_meta(k, v);
    cr_assert_eq(wr_store_write_batch(st, &op, 1, WR_DUR_SYNC, NULL, NULL), WR_OK);
}

Test(store, write_and_iterate)
{
    /* Out of order and two queues in one batch. */
    wr_store_op_t b[4] = {op_put(1, 30, "c"), op_put(1, 10, "a"), op_put(2, 5, "z"),
                          op_put(1, 20, "b")};
    collect_t *c = calloc(1, sizeof(*c));

    cr_assert_eq(write_wait(st, b, 4, WR_DUR_SYNC), WR_OK);
    cr_assert_eq(count_msgs(st, 1, c), 3);
    cr_assert_eq(c->seqs[0], 10);
    cr_assert_str_eq(c->vals[1], "b");
    cr_assert_eq(c->seqs[2], 30);

    memset(c, 0, sizeof(*c));
    cr_assert_eq(wr_store_iterate(st, 1, 15, 1, collect_visit, c), WR_OK);
    cr_assert_eq(c->n, 1);
    cr_assert_eq(c->seqs[0], 20);

    /* Overwrite keeps one key. */
    put_msg(1, 20, "B");
    barrier(st);
    cr_assert_eq(count_msgs(st, 1, c), 3);
    cr_assert_str_eq(c->vals[1], "B");

    cr_assert_eq(count_msgs(st, 3, c), 0);
    cr_assert_eq(count_msgs(st, 0, c), 0);
    free(c);
}

Test(store, many_and_visitor_stop)
{
    char v[16];
    collect_t *c = calloc(1, sizeof(*c));

    for (uint64_t i = 1; i <= 1000; i++) {
        snprintf(v, sizeof(v), "v%llu", (unsigned long long)i);
        put_msg(7, i, v);
    }
    barrier(st);
    cr_assert_eq(count_msgs(st, 7, c), 1000);
    for (size_t i = 0; i < 1000; i++)
        cr_assert_eq(c->seqs[i], i + 1);
    cr_assert_str_eq(c->vals[999], "v1000");
    memset(c, 0, sizeof(*c));
    c->stop_after = 100; /* crosses a chunk boundary */
    wr_store_iterate(st, 7, 0, 0, collect_visit, c);
    cr_assert_eq(c->n, 100);
    memset(c, 0, sizeof(*c));
    wr_store_iterate(st, 7, 0, 130, collect_visit, c);
    cr_assert_eq(c->n, 130);
    memset(c, 0, sizeof(*c));
    wr_store_iterate(st, 7, 990, 0, collect_visit, c);
    cr_assert_eq(c->n, 11);
    cr_assert_eq(c->seqs[0], 990);
    free(c);
}

Test(store, deletes)
{
    collect_t *c = calloc(1, sizeof(*c));
    wr_store_stats_t s;

    for (uint64_t i = 1; i <= 100; i++)
        put_msg(1, i, "x");
    wr_store_op_t other[2] = {op_put(2, 50, "other"), op_put(0, 1, "before")};
    cr_assert_eq(write_wait(st, other, 2, WR_DUR_SYNC), WR_OK); /* one synced write */
    wr_store_op_t d[3] = {op_del(1, 1) /* head */, op_del(1, 77) /* middle */, op_range(1, 10, 19)};
    cr_assert_eq(write_wait(st, d, 3, WR_DUR_WAL), WR_OK);
    cr_assert_eq(count_msgs(st, 1, c), 100 - 1 - 1 - 10);
    cr_assert_eq(c->seqs[0], 2);
    cr_assert_eq(c->seqs[8], 20);
    for (size_t i = 0; i < c->n; i++)
        cr_assert_neq(c->seqs[i], 77);

    /* An empty range (lo > hi) deletes nothing. */
    wr_store_op_t none = op_range(1, 50, 40);
    cr_assert_eq(write_wait(st, &none, 1, WR_DUR_WAL), WR_OK);
    cr_assert_eq(count_msgs(st, 1, c), 88);

    wr_store_op_t all = op_range(1, 0, UINT64_MAX);
    cr_assert_eq(write_wait(st, &all, 1, WR_DUR_WAL), WR_OK);
    cr_assert_eq(count_msgs(st, 1, c), 0);
    cr_assert_eq(count_msgs(st, 2, c), 1); /* neighbours untouched */
    cr_assert_eq(count_msgs(st, 0, c), 1);
    free(c);

    st->ops->stats(st, &s);
    if (CONTRACT_EXACT_KEYS)
        cr_assert_eq(s.keys, 2);
    cr_assert_geq(s.writes, 104);
    cr_assert_geq(s.syncs, 1);
    cr_assert_gt(s.bytes_written, 0);
}

/* The extremes of the key space: qid and seq UINT64_MAX, whole-queue range
 * deletes there, and a range that ends at UINT64_MAX. */
Test(store, key_space_edges)
{
    const wr_qid_t top = UINT64_MAX;
    collect_t *c = calloc(1, sizeof(*c));
    wr_store_op_t b[6] = {op_put(top, 0, "a"),          op_put(top, UINT64_MAX, "z"),
                          op_put(top - 1, 5, "n"),      op_put(top - 1, UINT64_MAX, "m"),
                          op_put(top, 1ull << 63, "h"), op_put(0, 0, "zero")};

    cr_assert_eq(write_wait(st, b, 6, WR_DUR_SYNC), WR_OK);
    cr_assert_eq(count_msgs(st, top, c), 3);
    cr_assert_eq(c->seqs[0], 0);
    cr_assert_eq(c->seqs[1], 1ull << 63);
    cr_assert_eq(c->seqs[2], UINT64_MAX);
    memset(c, 0, sizeof(*c));
    wr_store_iterate(st, top, UINT64_MAX, 0, collect_visit, c);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->vals[0], "z");

    wr_store_op_t tail = op_range(top - 1, 6, UINT64_MAX);
    cr_assert_eq(write_wait(st, &tail, 1, WR_DUR_WAL), WR_OK);
    cr_assert_eq(count_msgs(st, top - 1, c), 1);
    cr_assert_eq(c->seqs[0], 5);
    cr_assert_eq(count_msgs(st, top, c), 3); /* the next queue is untouched */

    wr_store_op_t all = op_range(top, 0, UINT64_MAX);
    cr_assert_eq(write_wait(st, &all, 1, WR_DUR_WAL), WR_OK);
    cr_assert_eq(count_msgs(st, top, c), 0);
    cr_assert_eq(count_msgs(st, top - 1, c), 1);
    cr_assert_eq(count_msgs(st, 0, c), 1);
    free(c);
}

/* Batches not waited for apply in the order they were written: a delete
 * after a put of the same key wins, a put after a delete too. */
Test(store, unwaited_batches_keep_order)
{
    collect_t *c = calloc(1, sizeof(*c));

    for (uint64_t i = 0; i < 300; i++) {
        wr_store_op_t p = op_put(4, i, "v"), d = op_del(4, i);
        cr_assert_eq(wr_store_write_batch(st, &p, 1, WR_DUR_SYNC, NULL, NULL), WR_OK);
        cr_assert_eq(wr_store_write_batch(st, &d, 1, WR_DUR_WAL, NULL, NULL), WR_OK);
        if (i % 3 == 0)
            cr_assert_eq(wr_store_write_batch(st, &p, 1, WR_DUR_NONE, NULL, NULL), WR_OK);
    }
    meta_put("k", "1");
    meta_put("k", NULL);
    meta_put("k", "2");
    barrier(st);
    cr_assert_eq(count_msgs(st, 4, c), 100);
    for (size_t i = 0; i < c->n; i++)
        cr_assert_eq(c->seqs[i] % 3, 0);
    kvs_t k = {0};
    wr_store_meta_scan(st, (wr_bytes_t){"k", 1}, kvs_visit, &k);
    cr_assert_eq(k.n, 1);
    cr_assert_str_eq(k.vals[0], "2");
    free(c);
}

/* An invalid op refuses the whole batch, and done() never fires. */
Test(store, invalid_batch_refused)
{
    waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, WR_OK};
    collect_t *c = calloc(1, sizeof(*c));
    wr_store_op_t b[2] = {op_put(1, 1, "ok"),
                          {.kind = WR_STORE_PUT_MSG, .q = 1, .seq = 2, .val = {NULL, 3}}};

    cr_assert_eq(wr_store_write_batch(st, b, 2, WR_DUR_SYNC, waiter_done, &w), WR_EINVAL);
    b[1] = (wr_store_op_t){.kind = (wr_store_op_kind_t)99};
    cr_assert_eq(wr_store_write_batch(st, b, 2, WR_DUR_SYNC, waiter_done, &w), WR_EINVAL);
    barrier(st);
    cr_assert_eq(w.calls, 0);
    cr_assert_eq(count_msgs(st, 1, c), 0);
    free(c);
}

Test(store, meta_scan)
{
    kvs_t k = {0};

    meta_put("q/b", "2");
    meta_put("q/a", "1");
    meta_put("r/a", "9");
    meta_put("q/c", "3");
    meta_put("q/a", "1b");
    meta_put("q", "short");
    barrier(st);
    cr_assert_eq(wr_store_meta_scan(st, (wr_bytes_t){"q/", 2}, kvs_visit, &k), WR_OK);
    cr_assert_eq(k.n, 3);
    cr_assert_str_eq(k.keys[0], "q/a");
    cr_assert_str_eq(k.vals[0], "1b");
    cr_assert_str_eq(k.keys[2], "q/c");

    meta_put("q/b", NULL);
    barrier(st);
    memset(&k, 0, sizeof(k));
    wr_store_meta_scan(st, (wr_bytes_t){"", 0}, kvs_visit, &k);
    cr_assert_eq(k.n, 4);
    cr_assert_str_eq(k.keys[0], "q");
    cr_assert_str_eq(k.keys[2], "q/c");
    cr_assert_str_eq(k.keys[3], "r/a");

    memset(&k, 0, sizeof(k));
    wr_store_meta_scan(st, (wr_bytes_t){"s", 1}, kvs_visit, &k);
    cr_assert_eq(k.n, 0);
}

/* Binary keys: a prefix ending in 0xff, and keys past it. */
Test(store, meta_scan_binary)
{
    static const char k1[] = {'a', (char)0xff, 0}, k2[] = {'a', (char)0xff, (char)0xff},
                      k3[] = {'b', 0, 0}, pre[] = {'a', (char)0xff};
    wr_store_op_t b[3] = {
        {.kind = WR_STORE_PUT_META, .key = {k1, 3}, .val = {"1", 1}},
        {.kind = WR_STORE_PUT_META, .key = {k2, 3}, .val = {"2", 1}},
        {.kind = WR_STORE_PUT_META, .key = {k3, 3}, .val = {"3", 1}},
    };
    kvs_t k = {0};

    cr_assert_eq(write_wait(st, b, 3, WR_DUR_SYNC), WR_OK);
    cr_assert_eq(wr_store_meta_scan(st, (wr_bytes_t){pre, 2}, kvs_visit, &k), WR_OK);
    cr_assert_eq(k.n, 2);
    cr_assert_str_eq(k.vals[0], "1");
    cr_assert_str_eq(k.vals[1], "2");
}

typedef struct order_acc {
    int n;
    char last[32];
    bool ordered;
} order_acc_t;

static int order_visit(void *arg, wr_bytes_t key, wr_bytes_t val)
{
    order_acc_t *a = arg;
    char cur[32];

    (void)val;
    snprintf(cur, sizeof(cur), "%.*s", (int)key.len, (const char *)key.ptr);
    if (a->n && strcmp(a->last, cur) >= 0)
        a->ordered = false;
    strcpy(a->last, cur);
    a->n++;
    return 0;
}

Test(store, meta_scan_many)
{
    char key[32];

    for (int i = 149; i >= 0; i--) {
        snprintf(key, sizeof(key), "m/%03d", i);
        meta_put(key, "v");
    }
    meta_put("n/0", "v");
    barrier(st);
    order_acc_t a = {0, "", true};
    cr_assert_eq(wr_store_meta_scan(st, (wr_bytes_t){"m/", 2}, order_visit, &a), WR_OK);
    cr_assert_eq(a.n, 150);
    cr_assert(a.ordered);
}

/* A visitor may write to the store (it only must not wait for done()). */
static int rewrite_visit(void *arg, uint64_t seq, wr_bytes_t val)
{
    wr_store_op_t op = op_put(6, seq, "copy");
    (void)arg;
    (void)val;
    cr_assert_eq(wr_store_write_batch(st, &op, 1, WR_DUR_WAL, NULL, NULL), WR_OK);
    return 0;
}

Test(store, visitor_writes_back)
{
    collect_t *c = calloc(1, sizeof(*c));

    for (uint64_t i = 0; i < 200; i++)
        put_msg(5, i, "orig");
    barrier(st);
    cr_assert_eq(wr_store_iterate(st, 5, 0, 0, rewrite_visit, NULL), WR_OK);
    barrier(st);
    cr_assert_eq(count_msgs(st, 6, c), 200);
    cr_assert_str_eq(c->vals[199], "copy");
    free(c);
}

static void *writer(void *arg)
{
    wr_qid_t q = (wr_qid_t)(uintptr_t)arg;

    for (uint64_t i = 0; i < 2000; i++) {
        wr_store_op_t op = op_put(q, i, "v");
        wr_store_write_batch(st, &op, 1, WR_DUR_NONE, NULL, NULL);
        if (i % 2) {
            wr_store_op_t d = op_del(q, i - 1);
            wr_store_write_batch(st, &d, 1, WR_DUR_NONE, NULL, NULL);
        }
    }
    return NULL;
}

Test(store, concurrent_writers)
{
    pthread_t th[4];
    collect_t *c = calloc(1, sizeof(*c));
    wr_store_stats_t s;

    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, writer, (void *)(i + 1));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    barrier(st);
    for (wr_qid_t q = 1; q <= 4; q++) {
        cr_assert_eq(count_msgs(st, q, c), 1000);
        for (size_t i = 0; i < c->n; i++)
            cr_assert_eq(c->seqs[i] % 2, 1);
    }
    st->ops->stats(st, &s);
    if (CONTRACT_EXACT_KEYS)
        cr_assert_eq(s.keys, 4 * 1000);
    cr_assert_geq(s.writes, 4 * 3000);
    free(c);
}

#endif
