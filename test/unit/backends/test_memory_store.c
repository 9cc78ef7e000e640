/*
 * test_memory_store.c - the backend.h contract, run against the memory
 * store: batches, iterate order/from/max, single and range deletes, meta
 * put/replace/delete and prefix scan, stats, and concurrent writers.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "backends/backend.h"

static const wr_store_ops_t *ops;
static wr_store_t *st;

static void setup(void)
{
    ops = wr_store_find("memory");
    cr_assert_not_null(ops);
    cr_assert_null(wr_store_find("nope"));
    cr_assert_eq(ops->abi, WR_STORE_ABI);
    cr_assert_str_eq(ops->name, "memory");
    cr_assert_eq(ops->open(&(wr_store_cfg_t){.dir = NULL}, &st), WR_OK);
}

static void teardown(void)
{
    wr_store_close(st);
}

TestSuite(memstore, .init = setup, .fini = teardown, .timeout = 30);

static int done_calls;
static wr_err_t done_err = WR_ERR_COUNT;

static void on_done(void *arg, wr_err_t err)
{
    (void)arg;
    done_calls++;
    done_err = err;
}

static void put_msg(wr_qid_t q, uint64_t seq, const char *val)
{
    wr_store_op_t op = {
        .kind = WR_STORE_PUT_MSG, .q = q, .seq = seq, .val = {val, strlen(val)}};
    cr_assert_eq(wr_store_write_batch(st, &op, 1, WR_DUR_SYNC, on_done, NULL), WR_OK);
}

typedef struct collect {
    uint64_t seqs[4096];
    char vals[4096][16];
    size_t n;
    size_t stop_after;
} collect_t;

static int visit(void *arg, uint64_t seq, wr_bytes_t val)
{
    collect_t *c = arg;
    c->seqs[c->n] = seq;
    snprintf(c->vals[c->n], sizeof(c->vals[0]), "%.*s", (int)val.len, (const char *)val.ptr);
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

Test(memstore, write_and_iterate)
{
    /* Out of order and two queues in one batch. */
    wr_store_op_t b[4] = {
        {.kind = WR_STORE_PUT_MSG, .q = 1, .seq = 30, .val = {"c", 1}},
        {.kind = WR_STORE_PUT_MSG, .q = 1, .seq = 10, .val = {"a", 1}},
        {.kind = WR_STORE_PUT_MSG, .q = 2, .seq = 5, .val = {"z", 1}},
        {.kind = WR_STORE_PUT_MSG, .q = 1, .seq = 20, .val = {"b", 1}},
    };
    done_calls = 0;
    cr_assert_eq(wr_store_write_batch(st, b, 4, WR_DUR_SYNC, on_done, NULL), WR_OK);
    cr_assert_eq(done_calls, 1);
    cr_assert_eq(done_err, WR_OK);

    collect_t *c = calloc(1, sizeof(*c));
    cr_assert_eq(wr_store_iterate(st, 1, 0, 0, visit, c), WR_OK);
    cr_assert_eq(c->n, 3);
    cr_assert_eq(c->seqs[0], 10);
    cr_assert_str_eq(c->vals[1], "b");
    cr_assert_eq(c->seqs[2], 30);

    memset(c, 0, sizeof(*c));
    cr_assert_eq(wr_store_iterate(st, 1, 15, 1, visit, c), WR_OK);
    cr_assert_eq(c->n, 1);
    cr_assert_eq(c->seqs[0], 20);

    /* Overwrite keeps one key. */
    put_msg(1, 20, "B");
    memset(c, 0, sizeof(*c));
    wr_store_iterate(st, 1, 0, 0, visit, c);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->vals[1], "B");

    memset(c, 0, sizeof(*c));
    wr_store_iterate(st, 3, 0, 0, visit, c);
    cr_assert_eq(c->n, 0);
    free(c);
}

Test(memstore, many_and_visitor_stop)
{
    char v[16];
    collect_t *c = calloc(1, sizeof(*c));
    for (uint64_t i = 1; i <= 1000; i++) {
        snprintf(v, sizeof(v), "v%llu", (unsigned long long)i);
        put_msg(7, i, v);
    }
    cr_assert_eq(wr_store_iterate(st, 7, 0, 0, visit, c), WR_OK);
    cr_assert_eq(c->n, 1000);
    for (size_t i = 0; i < 1000; i++)
        cr_assert_eq(c->seqs[i], i + 1);
    memset(c, 0, sizeof(*c));
    c->stop_after = 100; /* crosses a chunk boundary */
    wr_store_iterate(st, 7, 0, 0, visit, c);
    cr_assert_eq(c->n, 100);
    memset(c, 0, sizeof(*c));
    wr_store_iterate(st, 7, 0, 130, visit, c);
    cr_assert_eq(c->n, 130);
    free(c);
}

Test(memstore, deletes)
{
    collect_t *c = calloc(1, sizeof(*c));
    for (uint64_t i = 1; i <= 100; i++)
        put_msg(1, i, "x");
    put_msg(2, 50, "other");
    wr_store_op_t d[3] = {
        {.kind = WR_STORE_DEL_MSG, .q = 1, .seq = 1},            /* head */
        {.kind = WR_STORE_DEL_MSG, .q = 1, .seq = 77},           /* middle */
        {.kind = WR_STORE_DEL_RANGE, .q = 1, .seq = 10, .seq_hi = 19},
    };
    cr_assert_eq(wr_store_write_batch(st, d, 3, WR_DUR_WAL, NULL, NULL), WR_OK);
    wr_store_iterate(st, 1, 0, 0, visit, c);
    cr_assert_eq(c->n, 100 - 1 - 1 - 10);
    cr_assert_eq(c->seqs[0], 2);
    cr_assert_eq(c->seqs[8], 20);
    for (size_t i = 0; i < c->n; i++)
        cr_assert_neq(c->seqs[i], 77);

    wr_store_op_t all = {.kind = WR_STORE_DEL_RANGE, .q = 1, .seq = 0, .seq_hi = UINT64_MAX};
    cr_assert_eq(wr_store_write_batch(st, &all, 1, WR_DUR_WAL, NULL, NULL), WR_OK);
    memset(c, 0, sizeof(*c));
    wr_store_iterate(st, 1, 0, 0, visit, c);
    cr_assert_eq(c->n, 0);
    memset(c, 0, sizeof(*c));
    wr_store_iterate(st, 2, 0, 0, visit, c);
    cr_assert_eq(c->n, 1); /* other queue untouched */
    free(c);

    wr_store_stats_t s;
    st->ops->stats(st, &s);
    cr_assert_eq(s.keys, 1);
    cr_assert_geq(s.writes, 103);
    cr_assert_geq(s.syncs, 101);
    cr_assert_gt(s.bytes_written, 0);
}

typedef struct kvs {
    char keys[64][32];
    char vals[64][32];
    int n;
} kvs_t;

static int meta_visit(void *arg, wr_bytes_t key, wr_bytes_t val)
{
    kvs_t *k = arg;
    snprintf(k->keys[k->n], 32, "%.*s", (int)key.len, (const char *)key.ptr);
    snprintf(k->vals[k->n], 32, "%.*s", (int)val.len, (const char *)val.ptr);
    k->n++;
    return 0;
}

static void meta_put(const char *k, const char *v)
{
    wr_store_op_t op = {.kind = WR_STORE_PUT_META, .key = {k, strlen(k)}, .val = {v, strlen(v)}};
    cr_assert_eq(wr_store_write_batch(st, &op, 1, WR_DUR_SYNC, NULL, NULL), WR_OK);
}

Test(memstore, meta_scan)
{
    kvs_t k = {0};
    meta_put("q/b", "2");
    meta_put("q/a", "1");
    meta_put("r/a", "9");
    meta_put("q/c", "3");
    meta_put("q/a", "1b");
    cr_assert_eq(wr_store_meta_scan(st, (wr_bytes_t){"q/", 2}, meta_visit, &k), WR_OK);
    cr_assert_eq(k.n, 3);
    cr_assert_str_eq(k.keys[0], "q/a");
    cr_assert_str_eq(k.vals[0], "1b");
    cr_assert_str_eq(k.keys[2], "q/c");

    wr_store_op_t del = {.kind = WR_STORE_DEL_META, .key = {"q/b", 3}};
    wr_store_write_batch(st, &del, 1, WR_DUR_SYNC, NULL, NULL);
    memset(&k, 0, sizeof(k));
    wr_store_meta_scan(st, (wr_bytes_t){"", 0}, meta_visit, &k);
    cr_assert_eq(k.n, 3);
    cr_assert_str_eq(k.keys[1], "q/c");
    cr_assert_str_eq(k.keys[2], "r/a");
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

Test(memstore, meta_scan_many)
{
    char key[32];
    for (int i = 149; i >= 0; i--) {
        snprintf(key, sizeof(key), "m/%03d", i);
        meta_put(key, "v");
    }
    meta_put("n/0", "v");
    order_acc_t a = {0, "", true};
    cr_assert_eq(wr_store_meta_scan(st, (wr_bytes_t){"m/", 2}, order_visit, &a),
                 WR_OK);
    cr_assert_eq(a.n, 150);
    cr_assert(a.ordered);
}

static void *writer(void *arg)
{
    wr_qid_t q = (wr_qid_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < 2000; i++) {
        wr_store_op_t op = {.kind = WR_STORE_PUT_MSG, .q = q, .seq = i, .val = {"v", 1}};
        wr_store_write_batch(st, &op, 1, WR_DUR_NONE, NULL, NULL);
        if (i % 2) {
            wr_store_op_t d = {.kind = WR_STORE_DEL_MSG, .q = q, .seq = i - 1};
            wr_store_write_batch(st, &d, 1, WR_DUR_NONE, NULL, NULL);
        }
    }
    return NULL;
}

Test(memstore, concurrent_writers)
{
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, writer, (void *)(i + 1));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    wr_store_stats_t s;
    st->ops->stats(st, &s);
    cr_assert_eq(s.keys, 4 * 1000);
}
