/*
 * test_recover.c - a core started over a store that an earlier core wrote
 * gets back its durable queues, persistent messages (delivered ones
 * flagged redelivered, acked ones gone, transient ones gone), routes,
 * durable exchanges and bindings; exclusive queues and non-durable things
 * do not come back; an unreadable record stops the start.
 *
 * The memory store outlives the cores here, which is what a restart over
 * the same data dir looks like to the core.
 */
#include "backends/backend.h"
#include "helpers.h"

static wr_store_t *store;

static void start(void)
{
    wr_core_cfg_t cfg = {.shards = 3, .store = store};
    t_setup_cfg(&cfg);
}

/* Stops the core and starts a new one over the same store. */
static void restart(void)
{
    t_teardown();
    start();
}

static void setup(void)
{
    cr_assert_eq(wr_store_find("memory")->open(&(wr_store_cfg_t){0}, &store), WR_OK);
    start();
}

static void teardown(void)
{
    t_teardown();
    wr_store_close(store);
}

TestSuite(recover, .init = setup, .fini = teardown, .timeout = 30);

static wr_msg_in_t pmsg(const char *body)
{
    wr_msg_in_t m = t_msg(body, 0, -1, 0);
    m.persistent = true;
    return m;
}

Test(recover, queues_and_messages)
{
    wr_queue_attrs_t dur = {.durable = true, .max_length = 100};
    cr_assert_eq(t_declare("t", "dq", &dur), WR_OK);
    cr_assert_eq(t_declare("t", "tq", NULL), WR_OK);
    wr_msg_in_t m[4] = {pmsg("p1"), pmsg("p2"), pmsg("p3"), t_msg("transient", 0, -1, 0)};
    t_call_free(t_publish_msgs("t", "dq", m, 4, 0));
    wr_msg_in_t m2 = pmsg("in transient queue");
    t_call_free(t_publish_msgs("t", "tq", &m2, 1, 0));

    /* p1 is acked (popped); p2 is claimed, not acked: it comes back with
     * the redelivered flag; p3 was never delivered. */
    t_call_free(t_pop("t", "dq", 1));
    t_call_t *c = t_claim("t", "dq", 1, 60000, 60000);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(t_body(&c->msgs[0]), "p2");
    uint64_t p2 = c->msgs[0].id;
    t_call_free(c);
    t_call_free(t_metrics()); /* every shard's pending writes flushed */

    restart();

    t_call_t *s = t_stat("t", "dq");
    cr_assert_eq(s->err, WR_OK);
    cr_assert(s->stat.attrs.durable);
    cr_assert_eq(s->stat.attrs.max_length, 100);
    cr_assert_eq(s->stat.total, 2);
    t_call_free(s);
    s = t_stat("t", "tq");
    cr_assert_eq(s->err, WR_ENOTFOUND);
    t_call_free(s);

    c = t_claim("t", "dq", 10, 60000, 60000);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(t_body(&c->msgs[0]), "p2");
    cr_assert_eq(c->msgs[0].id, p2);
    cr_assert(c->msgs[0].redelivered);
    cr_assert(c->msgs[0].persistent);
    cr_assert_str_eq(t_body(&c->msgs[1]), "p3");
    cr_assert_not(c->msgs[1].redelivered);
    t_call_free(c);

    /* New messages get ids above the recovered ones. */
    uint64_t id = t_pub1("t", "dq", "new");
    cr_assert_gt(id, p2);
}

Test(recover, ttl_counts_across_restart)
{
    wr_queue_attrs_t dur = {.durable = true};
    cr_assert_eq(t_declare("t", "ttl", &dur), WR_OK);
    wr_msg_in_t m[2] = {pmsg("short"), pmsg("long")};
    m[0].ttl_ms = 300;
    m[1].ttl_ms = 600000;
    t_call_free(t_publish_msgs("t", "ttl", m, 2, 0));
    restart();
    t_sleep_ms(400);
    t_call_t *c = t_pop("t", "ttl", 10);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(t_body(&c->msgs[0]), "long");
    t_call_free(c);
}

Test(recover, exclusive_queue_dropped)
{
    wr_queue_attrs_t ex = {.durable = true, .exclusive = true, .owner = 7};
    cr_assert_eq(t_declare("t", "ex", &ex), WR_OK);
    restart();
    t_call_t *s = t_stat("t", "ex");
    cr_assert_eq(s->err, WR_ENOTFOUND);
    t_call_free(s);
    restart(); /* its record is gone too */
    s = t_stat("t", "ex");
    cr_assert_eq(s->err, WR_ENOTFOUND);
    t_call_free(s);
}

Test(recover, topology_and_routes)
{
    wr_queue_attrs_t dur = {.durable = true};
    wr_header_t h = {.key = S("kind"), .kind = WR_HDR_STR, .v.s = S("x")};
    cr_assert_eq(t_exdecl("t", "dx", "topic", WR_EXCH_DURABLE), WR_OK);
    cr_assert_eq(t_exdecl("t", "hx", "headers", WR_EXCH_DURABLE), WR_OK);
    cr_assert_eq(t_exdecl("t", "tx", "fanout", 0), WR_OK);
    cr_assert_eq(t_declare("t", "dq", &dur), WR_OK);
    cr_assert_eq(t_declare("t", "tq", NULL), WR_OK);
    cr_assert_eq(t_qbind("t", "dq", "dx", "a.*"), WR_OK);
    cr_assert_eq(t_qbind("t", "tq", "dx", "a.*"), WR_OK);
    cr_assert_eq(t_qbind("t", "dq", "amq.fanout", ""), WR_OK);
    cr_assert_eq(t_qbind_h(true, "t", "dq", "hx", "", &h, 1, NULL), WR_OK);
    cr_assert_eq(t_exbind(true, "t", "hx", "dx", "h.#"), WR_OK);
    cr_assert_eq(t_qbind("t", "dq", "tx", ""), WR_OK);

    /* A routed persistent message keeps its exchange and key. */
    wr_msg_in_t m = pmsg("routed");
    cr_assert_eq(t_route_msgs("t", "dx", "a.b", NULL, 0, &m, 1, NULL), WR_OK);

    restart();

    t_call_t *c = t_pop("t", "dq", 10);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(t_body(&c->msgs[0]), "routed");
    cr_assert_eq(c->msgs[0].exchange.len, 2);
    cr_assert_eq(memcmp(c->msgs[0].exchange.ptr, "dx", 2), 0);
    cr_assert_eq(c->msgs[0].routing_key.len, 3);
    t_call_free(c);

    cr_assert_eq(t_declare("t", "tq", NULL), WR_OK);
    /* dq's bindings are back; the transient exchange and tq's are not. */
    cr_assert_eq(t_route1("t", "dx", "a.z", NULL, 0, "1"), 1);
    cr_assert_eq(t_route1("t", "amq.fanout", "", NULL, 0, "2"), 1);
    cr_assert_eq(t_route1("t", "dx", "h.q", &h, 1, "3"), 1);
    cr_assert_eq(t_exdecl("t", "tx", "fanout", WR_EXCH_PASSIVE), WR_ENOTFOUND);
    cr_assert_eq(t_exdecl("t", "dx", "topic", WR_EXCH_PASSIVE), WR_OK);
    /* Redeclaring with other flags is still refused: the flags came back. */
    cr_assert_eq(t_exdecl("t", "dx", "topic", 0), WR_EEXISTS);

    /* Deleting is durable too. */
    cr_assert_eq(t_exdel("t", "hx", 0), WR_OK);
    restart();
    cr_assert_eq(t_exdecl("t", "hx", "headers", WR_EXCH_PASSIVE), WR_ENOTFOUND);
    cr_assert_eq(t_route1("t", "dx", "a.z", NULL, 0, "4"), 1);
    /* A deleted queue's bindings do not come back with a new queue. */
    t_call_free(t_qdelete("t", "dq", 0));
    restart();
    cr_assert_eq(t_declare("t", "dq", &dur), WR_OK);
    cr_assert_eq(t_route1("t", "dx", "a.z", NULL, 0, "5"), 0);
}

static void on_done(void *arg, wr_err_t err)
{
    (void)arg;
    cr_assert_eq(err, WR_OK);
}

Test(recover, unreadable_record_refuses_start)
{
    t_teardown();
    wr_store_op_t op = {.kind = WR_STORE_PUT_META,
                        .key = {"qt\0bad", 6},
                        .val = {"\x01garbage", 8}};
    cr_assert_eq(wr_store_write_batch(store, &op, 1, WR_DUR_SYNC, on_done, NULL), WR_OK);
    wr_core_t *core = NULL;
    wr_core_cfg_t cfg = {.shards = 2, .store = store};
    cr_assert_eq(wr_core_new(&cfg, &core), WR_EPROTO);
    cr_assert_null(core);
    op.kind = WR_STORE_DEL_META;
    cr_assert_eq(wr_store_write_batch(store, &op, 1, WR_DUR_SYNC, on_done, NULL), WR_OK);
    start();
}

Test(recover, durability_changes_follow_updates)
{
    wr_queue_attrs_t dur = {.durable = true}, tr = {0};
    cr_assert_eq(t_declare("t", "flip", &dur), WR_OK);
    wr_msg_in_t m = pmsg("x");
    t_call_free(t_publish_msgs("t", "flip", &m, 1, 0));
    t_call_free(t_declare_full("t", "flip", &tr, NULL, WR_DECL_UPDATE));
    t_call_free(t_metrics()); /* the delete is flushed */
    restart();
    t_call_t *s = t_stat("t", "flip");
    cr_assert_eq(s->err, WR_ENOTFOUND, "a queue made transient does not come back");
    t_call_free(s);
}
