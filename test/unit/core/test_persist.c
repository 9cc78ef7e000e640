/*
 * test_persist.c - the store hook: durable queues write their record and
 * persistent messages through to the store, publishes complete only once
 * stored, deletes follow, and a failing store fails the publish cleanly.
 */
#include <msgpack.h>

#include "backends/backend.h"
#include "helpers.h"

static wr_store_t *store;

static void setup_mem(void)
{
    const wr_store_ops_t *ops = wr_store_find("memory");
    cr_assert_not_null(ops);
    cr_assert_eq(ops->abi, WR_STORE_ABI);
    cr_assert_eq(ops->open(&(wr_store_cfg_t){0}, &store), WR_OK);
    wr_core_cfg_t cfg = {.shards = 2, .store = store};
    t_setup_cfg(&cfg);
}

static void teardown_mem(void)
{
    t_teardown();
    wr_store_close(store);
}

TestSuite(persist, .init = setup_mem, .fini = teardown_mem, .timeout = 20);

typedef struct found {
    int n;
    wr_qid_t qid;
} found_t;

static int on_meta(void *arg, wr_bytes_t key, wr_bytes_t val)
{
    found_t *f = arg;
    msgpack_unpacked u;
    size_t off = 0;
    (void)key;
    f->n++;
    /* A msgpack array: version 1, then the queue's store id. */
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, val.ptr, val.len, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_geq(u.data.via.array.size, 2);
    cr_assert_eq(u.data.via.array.ptr[0].via.u64, 1);
    f->qid = u.data.via.array.ptr[1].via.u64;
    msgpack_unpacked_destroy(&u);
    return 0;
}

static int on_msg(void *arg, uint64_t seq, wr_bytes_t val)
{
    (void)seq;
    (void)val;
    (*(int *)arg)++;
    return 0;
}

static found_t queue_record(const char *tenant, const char *q)
{
    char key[64];
    size_t n = (size_t)snprintf(key, sizeof(key), "q%s", tenant) + 1;
    n += (size_t)snprintf(key + n, sizeof(key) - n, "%s", q);
    found_t f = {0};
    cr_assert_eq(wr_store_meta_scan(store, (wr_bytes_t){key, n}, on_meta, &f), WR_OK);
    return f;
}

static int stored_msgs(wr_qid_t qid)
{
    int n = 0;
    cr_assert_eq(wr_store_iterate(store, qid, 0, 0, on_msg, &n), WR_OK);
    return n;
}

Test(persist, durable_write_through)
{
    wr_queue_attrs_t a = {.durable = true};
    cr_assert_eq(t_declare("t", "dur", &a), WR_OK);
    found_t f = queue_record("t", "dur");
    cr_assert_eq(f.n, 1);

    wr_msg_in_t m[3] = {t_msg("p1", 0, -1, 0), t_msg("t1", 0, -1, 0), t_msg("p2", 0, -1, 0)};
    m[0].persistent = m[2].persistent = true;
    t_call_t *p = t_publish_msgs("t", "dur", m, 3, 0);
    cr_assert_eq(p->err, WR_OK);
    cr_assert_eq(stored_msgs(f.qid), 2);

    t_call_t *c = t_list("t", "dur", 0, 10, 0, 0);
    cr_assert(c->msgs[0].persistent);
    cr_assert_not(c->msgs[1].persistent);
    t_call_free(c);

    /* Acks delete from the store. */
    t_call_t *pop = t_pop("t", "dur", 1);
    cr_assert_eq(pop->n, 1);
    t_call_free(pop);
    t_call_free(t_metrics()); /* a round trip over every shard: deletes flushed */
    cr_assert_eq(stored_msgs(f.qid), 1);

    /* Queue delete drops the record and the messages. */
    t_call_free(t_qdelete("t", "dur", 0));
    cr_assert_eq(queue_record("t", "dur").n, 0);
    cr_assert_eq(stored_msgs(f.qid), 0);
    t_call_free(p);

    wr_store_stats_t st;
    store->ops->stats(store, &st);
    cr_assert_geq(st.syncs, 2);
    cr_assert_eq(st.keys, 0);
}

Test(persist, transient_queue_not_stored)
{
    cr_assert_eq(t_declare("t", "tr", NULL), WR_OK);
    wr_msg_in_t m = t_msg("x", 0, -1, 0);
    m.persistent = true;
    t_call_free(t_publish_msgs("t", "tr", &m, 1, 0));
    wr_store_stats_t st;
    store->ops->stats(store, &st);
    cr_assert_eq(st.keys, 0);
    cr_assert_eq(st.writes, 0);
}

/* A store that answers from another thread, after a while, with `fail`. */
typedef struct slow_store {
    wr_store_t base;
    wr_err_t fail;
} slow_store_t;

typedef struct pending {
    wr_store_done_cb done;
    void *arg;
    wr_err_t err;
} pending_t;

static void *later(void *arg)
{
    pending_t *p = arg;
    t_sleep_ms(20);
    p->done(p->arg, p->err);
    free(p);
    return NULL;
}

static wr_err_t slow_write(wr_store_t *st, const wr_store_op_t *ops, size_t n, wr_durability_t dur,
                           wr_store_done_cb done, void *arg)
{
    pending_t *p = malloc(sizeof(*p));
    pthread_t th;
    (void)ops;
    (void)n;
    (void)dur;
    *p = (pending_t){done, arg, ((slow_store_t *)st)->fail};
    pthread_create(&th, NULL, later, p);
    pthread_detach(th);
    return WR_OK;
}

/* Empty at start-up: nothing to recover. */
static wr_err_t slow_iterate(wr_store_t *st, wr_qid_t q, uint64_t from, size_t max,
                             wr_store_visit_cb visit, void *arg)
{
    (void)st, (void)q, (void)from, (void)max, (void)visit, (void)arg;
    return WR_OK;
}

static wr_err_t slow_meta_scan(wr_store_t *st, wr_bytes_t prefix, wr_store_meta_visit_cb visit,
                               void *arg)
{
    (void)st, (void)prefix, (void)visit, (void)arg;
    return WR_OK;
}

static const wr_store_ops_t slow_ops = {.abi = WR_STORE_ABI,
                                        .name = "slow",
                                        .write_batch = slow_write,
                                        .iterate = slow_iterate,
                                        .meta_scan = slow_meta_scan};

Test(persist, store_failure_rolls_back, .init = NULL, .fini = NULL)
{
    slow_store_t ss = {{&slow_ops}, WR_OK};
    wr_core_cfg_t cfg = {.shards = 2, .store = &ss.base};
    t_setup_cfg(&cfg);

    wr_queue_attrs_t a = {.durable = true};
    cr_assert_eq(t_declare("t", "f", &a), WR_OK);
    wr_msg_in_t m = t_msg("ok", 0, -1, 0);
    m.persistent = true;
    t_call_t *p = t_publish_msgs("t", "f", &m, 1, 0);
    cr_assert_eq(p->err, WR_OK);
    t_call_free(p);

    ss.fail = WR_EIO; /* the shards read it only after the next post */
    m = t_msg("lost", 0, -1, 0);
    m.persistent = true;
    p = t_publish_msgs("t", "f", &m, 1, 0);
    cr_assert_eq(p->err, WR_EIO);
    cr_assert_eq(p->n, 0);
    t_call_free(p);
    t_call_t *s = t_stat("t", "f");
    cr_assert_eq(s->stat.total, 1);
    t_call_free(s);

    /* Stop waits for a publish whose store write is still out. */
    ss.fail = WR_OK;
    t_call_t *w = t_call_new();
    m = t_msg("late", 0, -1, 0);
    m.persistent = true;
    cr_assert_eq(wr_publish(T.core, S("t"), S("f"), &m, 1, 0, T.loop, t_on_publish, w), WR_OK);
    wr_core_stop(T.core);
    cr_assert(t_is_done(w));
    cr_assert_eq(w->err, WR_OK);
    t_call_free(w);
    t_teardown();
}

/* A memory store that counts the kinds of ops it is given. */
typedef struct rec_store {
    wr_store_t base;
    wr_store_t *mem;
    _Atomic size_t del_msg, del_range;
} rec_store_t;

static wr_err_t rec_write(wr_store_t *st, const wr_store_op_t *ops, size_t n, wr_durability_t dur,
                          wr_store_done_cb done, void *arg)
{
    rec_store_t *r = (rec_store_t *)st;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == WR_STORE_DEL_MSG)
            r->del_msg++;
        if (ops[i].kind == WR_STORE_DEL_RANGE)
            r->del_range++;
    }
    return wr_store_write_batch(r->mem, ops, n, dur, done, arg);
}

static wr_err_t rec_iterate(wr_store_t *st, wr_qid_t q, uint64_t from, size_t max,
                            wr_store_visit_cb visit, void *arg)
{
    return wr_store_iterate(((rec_store_t *)st)->mem, q, from, max, visit, arg);
}

static wr_err_t rec_meta_scan(wr_store_t *st, wr_bytes_t prefix, wr_store_meta_visit_cb visit,
                              void *arg)
{
    return wr_store_meta_scan(((rec_store_t *)st)->mem, prefix, visit, arg);
}

static const wr_store_ops_t rec_ops = {.abi = WR_STORE_ABI,
                                       .name = "rec",
                                       .write_batch = rec_write,
                                       .iterate = rec_iterate,
                                       .meta_scan = rec_meta_scan};

Test(persist, consumed_head_is_one_range_delete, .init = NULL, .fini = NULL)
{
    rec_store_t rs = {.base = {&rec_ops}};
    cr_assert_eq(wr_store_find("memory")->open(&(wr_store_cfg_t){0}, &rs.mem), WR_OK);
    store = &rs.base;
    wr_core_cfg_t cfg = {.shards = 2, .store = &rs.base};
    t_setup_cfg(&cfg);

    wr_queue_attrs_t a = {.durable = true};
    cr_assert_eq(t_declare("t", "head", &a), WR_OK);
    wr_msg_in_t m[100];
    for (int i = 0; i < 100; i++) {
        m[i] = t_msg("x", 0, -1, 0);
        m[i].persistent = true;
    }
    t_call_free(t_publish_msgs("t", "head", m, 100, 0));
    found_t f = queue_record("t", "head");

    /* 40 popped in one call: one range delete, no single ones. */
    t_call_free(t_pop("t", "head", 40));
    t_call_free(t_metrics());
    cr_assert_eq(rs.del_range, 1);
    cr_assert_eq(rs.del_msg, 0);
    cr_assert_eq(stored_msgs(f.qid), 60);

    /* A short run stays single deletes. */
    t_call_free(t_pop("t", "head", 3));
    t_call_free(t_metrics());
    cr_assert_eq(rs.del_range, 1);
    cr_assert_eq(rs.del_msg, 3);
    cr_assert_eq(stored_msgs(f.qid), 57);
    t_teardown();
    wr_store_close(rs.mem);
    store = NULL; /* the suite's fini closes `store` */
}
