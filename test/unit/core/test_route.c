/*
 * test_route.c - routed publish end to end: the default exchange, direct,
 * fanout, topic and headers bindings, exchange-to-exchange paths and
 * cycles, one shared body across shards, unroutable counts, errors, per
 * publisher order (from a plain thread and from a shard loop), overflow
 * refusals, durable targets, and alternate exchanges.
 */
#include "backends/backend.h"
#include "helpers.h"

TestSuite(route, .init = t_setup, .fini = t_teardown, .timeout = 30);

static wr_header_t hs(const char *k, const char *v)
{
    return (wr_header_t){.key = S(k), .kind = WR_HDR_STR, .v.s = S(v)};
}
static wr_header_t hi(const char *k, int64_t v)
{
    return (wr_header_t){.key = S(k), .kind = WR_HDR_INT, .v.i = v};
}

/* Pops everything from q; returns how many; checks bodies when want. */
static size_t drain(const char *tenant, const char *q, const char *want)
{
    t_call_t *c = t_pop(tenant, q, 1000);
    size_t n = c->n;
    for (size_t i = 0; want && i < n; i++)
        cr_assert_str_eq(t_body(&c->msgs[i]), want);
    t_call_free(c);
    return n;
}

Test(route, default_exchange)
{
    cr_assert_eq(t_declare("t", "dq", NULL), WR_OK);
    cr_assert_eq(t_route1("t", "", "dq", NULL, 0, "hello"), 1);
    cr_assert_eq(t_route1("t", "", "missing", NULL, 0, "x"), 0);
    cr_assert_eq(t_route1("t", "", "", NULL, 0, "x"), 0);
    /* A tenant with no topology at all still has the default exchange. */
    cr_assert_eq(t_declare("fresh", "q", NULL), WR_OK);
    cr_assert_eq(t_route1("fresh", "", "q", NULL, 0, "y"), 1);
    cr_assert_eq(t_route1("fresh", "amq.topic", "q", NULL, 0, "y"), 0);

    t_call_t *c = t_pop("t", "dq", 10);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(t_body(&c->msgs[0]), "hello");
    /* Routed through "": no route kept, the key is the queue's name. */
    cr_assert_eq(c->msgs[0].exchange.len, 0);
    cr_assert_eq(c->msgs[0].routing_key.len, 0);
    t_call_free(c);
}

Test(route, direct_and_fanout)
{
    cr_assert_eq(t_exdecl("t", "d", "direct", 0), WR_OK);
    cr_assert_eq(t_exdecl("t", "f", "fanout", 0), WR_OK);
    for (int i = 1; i <= 3; i++) {
        char q[8];
        snprintf(q, sizeof(q), "q%d", i);
        cr_assert_eq(t_declare("t", q, NULL), WR_OK);
        cr_assert_eq(t_qbind("t", q, "f", "ignored"), WR_OK);
    }
    cr_assert_eq(t_qbind("t", "q1", "d", "a"), WR_OK);
    cr_assert_eq(t_qbind("t", "q2", "d", "a"), WR_OK);
    cr_assert_eq(t_qbind("t", "q3", "d", "b"), WR_OK);
    /* Two bindings from one exchange to one queue: stored once. */
    cr_assert_eq(t_qbind("t", "q3", "d", "a"), WR_OK);
    cr_assert_eq(t_qbind("t", "q3", "amq.direct", "a"), WR_OK);

    cr_assert_eq(t_route1("t", "d", "a", NULL, 0, "A"), 3);
    cr_assert_eq(t_route1("t", "d", "b", NULL, 0, "B"), 1);
    cr_assert_eq(t_route1("t", "d", "c", NULL, 0, "C"), 0);
    cr_assert_eq(t_route1("t", "f", "anything", NULL, 0, "F"), 3);
    cr_assert_eq(t_route1("t", "amq.direct", "a", NULL, 0, "D"), 1);
    cr_assert_eq(drain("t", "q1", NULL), 2);
    cr_assert_eq(drain("t", "q2", NULL), 2);
    cr_assert_eq(drain("t", "q3", NULL), 4);

    /* Views carry the exchange and key. */
    cr_assert_eq(t_route1("t", "d", "b", NULL, 0, "again"), 1);
    t_call_t *c = t_pop("t", "q3", 10);
    cr_assert_eq(c->n, 1);
    cr_assert_eq(c->msgs[0].exchange.len, 1);
    cr_assert_eq(memcmp(c->msgs[0].exchange.ptr, "d", 1), 0);
    cr_assert_eq(c->msgs[0].routing_key.len, 1);
    cr_assert_eq(memcmp(c->msgs[0].routing_key.ptr, "b", 1), 0);
    t_call_free(c);

    /* Unbinding stops the routing on every shard at once. */
    cr_assert_eq(t_qunbind("t", "q1", "d", "a"), WR_OK);
    cr_assert_eq(t_route1("t", "d", "a", NULL, 0, "A"), 2);
}

Test(route, topic_e2e)
{
    cr_assert_eq(t_exdecl("t", "tp", "topic", 0), WR_OK);
    cr_assert_eq(t_declare("t", "all", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "usd", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "nyse", NULL), WR_OK);
    cr_assert_eq(t_qbind("t", "all", "tp", "#"), WR_OK);
    cr_assert_eq(t_qbind("t", "usd", "tp", "stock.usd.*"), WR_OK);
    cr_assert_eq(t_qbind("t", "nyse", "tp", "*.*.nyse"), WR_OK);
    cr_assert_eq(t_qbind("t", "nyse", "tp", "stock.#"), WR_OK);

    cr_assert_eq(t_route1("t", "tp", "stock.usd.nyse", NULL, 0, "1"), 3);
    cr_assert_eq(t_route1("t", "tp", "stock.eur.lse", NULL, 0, "2"), 2);
    cr_assert_eq(t_route1("t", "tp", "bond.usd.nyse", NULL, 0, "3"), 2);
    cr_assert_eq(t_route1("t", "tp", "", NULL, 0, "4"), 1);
    cr_assert_eq(drain("t", "all", NULL), 4);
    cr_assert_eq(drain("t", "usd", NULL), 1);
    cr_assert_eq(drain("t", "nyse", NULL), 3);
}

Test(route, headers_e2e)
{
    cr_assert_eq(t_exdecl("t", "hx", "headers", 0), WR_OK);
    cr_assert_eq(t_declare("t", "pdf", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "anyq", NULL), WR_OK);
    wr_header_t all[] = {hs("format", "pdf"), hi("v", 2)};
    wr_header_t any[] = {hs("x-match", "any"), hs("format", "zip"), hi("v", 2)};
    cr_assert_eq(t_qbind_h(true, "t", "pdf", "hx", "", all, 2, NULL), WR_OK);
    cr_assert_eq(t_qbind_h(true, "t", "anyq", "hx", "", any, 3, NULL), WR_OK);

    wr_header_t m1[] = {hs("format", "pdf"), hi("v", 2), hs("extra", "y")};
    cr_assert_eq(t_route1("t", "hx", "k", m1, 3, "1"), 2);
    wr_header_t m2[] = {hs("format", "zip")};
    cr_assert_eq(t_route1("t", "hx", "k", m2, 1, "2"), 1);
    wr_header_t m3[] = {hs("format", "pdf"), hs("v", "2")};
    cr_assert_eq(t_route1("t", "hx", "k", m3, 2, "3"), 0);
    cr_assert_eq(t_route1("t", "hx", "k", NULL, 0, "4"), 0);
    cr_assert_eq(drain("t", "pdf", NULL), 1);
    cr_assert_eq(drain("t", "anyq", NULL), 2);
}

Test(route, exchange_to_exchange_and_cycles)
{
    /* top -> left -> q, top -> right -> q, top -> q, right -> top (cycle),
     * left -> left (self loop). */
    cr_assert_eq(t_exdecl("t", "top", "fanout", 0), WR_OK);
    cr_assert_eq(t_exdecl("t", "left", "direct", WR_EXCH_INTERNAL), WR_OK);
    cr_assert_eq(t_exdecl("t", "right", "topic", 0), WR_OK);
    cr_assert_eq(t_declare("t", "q", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "r", NULL), WR_OK);
    cr_assert_eq(t_exbind(true, "t", "left", "top", ""), WR_OK);
    cr_assert_eq(t_exbind(true, "t", "right", "top", ""), WR_OK);
    cr_assert_eq(t_exbind(true, "t", "top", "right", "#"), WR_OK);
    cr_assert_eq(t_exbind(true, "t", "left", "left", "k"), WR_OK);
    cr_assert_eq(t_qbind("t", "q", "top", ""), WR_OK);
    cr_assert_eq(t_qbind("t", "q", "left", "k"), WR_OK);
    cr_assert_eq(t_qbind("t", "q", "right", "#"), WR_OK);
    cr_assert_eq(t_qbind("t", "r", "right", "k"), WR_OK);

    cr_assert_eq(t_route1("t", "top", "k", NULL, 0, "a"), 2);
    cr_assert_eq(t_route1("t", "right", "k", NULL, 0, "b"), 2);
    cr_assert_eq(t_route1("t", "top", "z", NULL, 0, "c"), 1);
    cr_assert_eq(drain("t", "q", NULL), 3);
    cr_assert_eq(drain("t", "r", NULL), 2);

    /* An internal exchange refuses direct publishes. */
    wr_msg_in_t m = t_msg("x", 0, -1, 0);
    cr_assert_eq(t_route_msgs("t", "left", "k", NULL, 0, &m, 1, NULL), WR_EDENIED);
}

Test(route, errors)
{
    wr_msg_in_t m = t_msg("x", 0, -1, 0);
    cr_assert_eq(t_route_msgs("t", "nope", "k", NULL, 0, &m, 1, NULL), WR_ENOTFOUND);

    /* Bad arguments fail the call; the bodies are still taken. */
    t_route_t c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    wr_msg_in_t b = t_msg("x", -5, -1, 0);
    cr_assert_eq(wr_publish_routed(T.core, S("t"), S(""), S("q"), NULL, 0, &b, 1, 0, T.loop,
                                   t_on_route, &c),
                 WR_EINVAL);
    char big[300];
    memset(big, 'k', sizeof(big));
    wr_msg_in_t b2 = t_msg("x", 0, -1, 0);
    cr_assert_eq(wr_publish_routed(T.core, S("t"), S(""), (wr_slice_t){big, sizeof(big)}, NULL, 0,
                                   &b2, 1, 0, T.loop, t_on_route, &c),
                 WR_EINVAL);
    cr_assert_not(c.done);
}

Test(route, fanout_across_shards_one_body)
{
    const int nq = 8;
    wr_body_t *first = NULL;
    bool shard_seen[2] = {false, false};

    cr_assert_eq(t_exdecl("t", "fan", "fanout", 0), WR_OK);
    for (int i = 0; i < nq; i++) {
        char q[8];
        snprintf(q, sizeof(q), "f%d", i);
        cr_assert_eq(t_declare("t", q, NULL), WR_OK);
        cr_assert_eq(t_qbind("t", q, "fan", ""), WR_OK);
        shard_seen[wr_core_shard_of(T.core, S("t"), S(q))] = true;
    }
    cr_assert(shard_seen[0] && shard_seen[1], "queues on both shards");

    wr_msg_in_t m = t_msg("shared", 0, -1, 0);
    uint32_t reached;
    cr_assert_eq(t_route_msgs("t", "fan", "", NULL, 0, &m, 1, &reached), WR_OK);
    cr_assert_eq(reached, (uint32_t)nq);
    for (int i = 0; i < nq; i++) {
        char q[8];
        snprintf(q, sizeof(q), "f%d", i);
        t_call_t *c = t_claim("t", q, 10, 60000, 0);
        cr_assert_eq(c->n, 1);
        if (!first)
            first = wr_body_ref(c->msgs[0].body);
        cr_assert_eq(c->msgs[0].body, first, "every queue holds the same body");
        t_call_free(c);
    }
    wr_body_unref(first);
}

Test(route, mandatory_unroutable_count)
{
    t_route_t c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    wr_msg_in_t m[3] = {t_msg("a", 0, -1, 0), t_msg("b", 0, -1, 0), t_msg("c", 0, -1, 0)};

    cr_assert_eq(t_exdecl("t", "d", "direct", 0), WR_OK);
    cr_assert_eq(wr_publish_routed(T.core, S("t"), S("d"), S("nobody"), NULL, 0, m, 3,
                                   WR_PUB_MANDATORY, T.loop, t_on_route, &c),
                 WR_OK);
    t_route_wait(&c);
    cr_assert_eq(c.err, WR_OK);
    cr_assert_eq(c.n, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(c.reached[i], 0);
}

/* Many publishes without waiting: every queue sees them in call order. */
static void check_order(const char *q, int n)
{
    t_call_t *c = t_pop("t", q, 1000);
    cr_assert_eq(c->n, (size_t)n);
    for (int i = 0; i < n; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d", i);
        cr_assert_str_eq(t_body(&c->msgs[i]), want);
    }
    t_call_free(c);
}

typedef struct order_job {
    atomic_int left;
    int n;
    bool from_shard;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool posted;
} order_job_t;

static void on_order(void *arg, const wr_route_res_t *res)
{
    order_job_t *j = arg;
    cr_assert_eq(res->err, WR_OK);
    cr_assert_eq(res->reached[0], 2);
    atomic_fetch_sub(&j->left, 1);
}

static void publish_many(void *arg)
{
    order_job_t *j = arg;
    for (int i = 0; i < j->n; i++) {
        char b[16];
        snprintf(b, sizeof(b), "%d", i);
        wr_msg_in_t m = t_msg(b, 0, -1, 0);
        cr_assert_eq(wr_publish_routed(T.core, S("t"), S("ord"), S(""), NULL, 0, &m, 1, 0, T.loop,
                                       on_order, j),
                     WR_OK);
    }
    pthread_mutex_lock(&j->mu);
    j->posted = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void run_order(bool from_shard)
{
    order_job_t j = {.n = 300, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

    atomic_init(&j.left, j.n);
    if (from_shard) {
        /* On a shard loop: routed right there, no hop. */
        wr_loop_post(wr_core_loop(T.core, 1), publish_many, &j);
        pthread_mutex_lock(&j.mu);
        while (!j.posted)
            pthread_cond_wait(&j.cv, &j.mu);
        pthread_mutex_unlock(&j.mu);
    } else {
        publish_many(&j);
    }
    for (int i = 0; i < 1000 && atomic_load(&j.left); i++)
        t_sleep_ms(5);
    cr_assert_eq(atomic_load(&j.left), 0);
    check_order("o1", j.n);
    check_order("o2", j.n);
}

Test(route, order_per_publisher)
{
    cr_assert_eq(t_exdecl("t", "ord", "fanout", 0), WR_OK);
    cr_assert_eq(t_declare("t", "o1", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "o2", NULL), WR_OK);
    cr_assert_eq(t_qbind("t", "o1", "ord", ""), WR_OK);
    cr_assert_eq(t_qbind("t", "o2", "ord", ""), WR_OK);
    run_order(false);
    run_order(true);
}

Test(route, overflow_reject_counts)
{
    wr_queue_attrs_t small = {.max_length = 1, .overflow = WR_OVERFLOW_REJECT};
    wr_msg_in_t m;
    uint32_t reached;

    cr_assert_eq(t_exdecl("t", "f", "fanout", 0), WR_OK);
    cr_assert_eq(t_declare("t", "small", &small), WR_OK);
    cr_assert_eq(t_declare("t", "big", NULL), WR_OK);
    cr_assert_eq(t_qbind("t", "small", "f", ""), WR_OK);
    cr_assert_eq(t_qbind("t", "big", "f", ""), WR_OK);
    m = t_msg("1", 0, -1, 0);
    cr_assert_eq(t_route_msgs("t", "f", "", NULL, 0, &m, 1, &reached), WR_OK);
    cr_assert_eq(reached, 2);
    m = t_msg("2", 0, -1, 0);
    cr_assert_eq(t_route_msgs("t", "f", "", NULL, 0, &m, 1, &reached), WR_EQUOTA);
    cr_assert_eq(reached, 1);
    cr_assert_eq(t_depth("t", "small"), 1);
    cr_assert_eq(t_depth("t", "big"), 2);
}

Test(route, fire_and_forget)
{
    cr_assert_eq(t_declare("t", "ff", NULL), WR_OK);
    for (int i = 0; i < 50; i++) {
        wr_msg_in_t m = t_msg("x", 0, -1, 0);
        cr_assert_eq(
            wr_publish_routed(T.core, S("t"), S(""), S("ff"), NULL, 0, &m, 1, 0, NULL, NULL, NULL),
            WR_OK);
    }
    for (int i = 0; i < 200 && t_depth("t", "ff") < 50; i++)
        t_sleep_ms(5);
    cr_assert_eq(t_depth("t", "ff"), 50);
}

/* Durable targets: the publish completes once the store has them. */
Test(route, durable_targets)
{
    const wr_store_ops_t *ops = wr_store_find("memory");
    wr_queue_attrs_t dur = {.durable = true};
    wr_store_stats_t st0, st1;
    wr_store_t *store;
    uint32_t reached;

    /* Restart the core on a memory store. */
    t_teardown();
    cr_assert_eq(ops->open(&(wr_store_cfg_t){0}, &store), WR_OK);
    wr_core_cfg_t cfg = {.shards = 2, .store = store};
    t_setup_cfg(&cfg);

    wr_msg_in_t m[2] = {t_msg("p", 0, -1, 0), t_msg("t", 0, -1, 0)};
    m[0].persistent = true;
    cr_assert_eq(t_exdecl("t", "f", "fanout", WR_EXCH_DURABLE), WR_OK);
    for (int i = 0; i < 4; i++) {
        char q[8];
        snprintf(q, sizeof(q), "d%d", i);
        cr_assert_eq(t_declare("t", q, i < 3 ? &dur : NULL), WR_OK);
        cr_assert_eq(t_qbind("t", q, "f", ""), WR_OK);
    }
    store->ops->stats(store, &st0);
    cr_assert_eq(t_route_msgs("t", "f", "", NULL, 0, m, 2, &reached), WR_OK);
    cr_assert_eq(reached, 4);
    store->ops->stats(store, &st1);
    cr_assert_gt(st1.writes, st0.writes);
    /* Only the persistent message of the 3 durable queues was stored. */
    cr_assert_eq(st1.keys - st0.keys, 3);
    t_teardown();
    wr_store_close(store);
    t_setup();
}

/* An exchange with an alternate (RabbitMQ's alternate-exchange). */
static wr_err_t exdecl_alt(const char *name, const char *type, const char *alt)
{
    t_call_t *c = t_call_new();
    wr_slice_t a = S(alt);
    wr_err_t err;

    cr_assert_eq(wr_exchange_declare(T.core, S("t"), S(name), S(type), 0, &a, T.loop, t_on_count,
                                     c),
                 WR_OK);
    err = t_wait(c)->err;
    t_call_free(c);
    return err;
}

Test(route, alternate_exchanges)
{
    cr_assert_eq(t_declare("t", "qa", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "qx", NULL), WR_OK);
    cr_assert_eq(t_exdecl("t", "ae", "fanout", 0), WR_OK);
    cr_assert_eq(t_qbind("t", "qa", "ae", ""), WR_OK);
    cr_assert_eq(exdecl_alt("x", "direct", "ae"), WR_OK);
    cr_assert_eq(t_qbind("t", "qx", "x", "k"), WR_OK);
    /* Own bindings first; the alternate only for what they send nowhere. */
    cr_assert_eq(t_route1("t", "x", "k", NULL, 0, "bound"), 1);
    cr_assert_eq(t_route1("t", "x", "other", NULL, 0, "alt"), 1);
    cr_assert_eq(drain("t", "qx", "bound"), 1);
    cr_assert_eq(drain("t", "qa", "alt"), 1);
    /* Equivalence: another alternate, or none, is WR_EEXISTS. */
    cr_assert_eq(exdecl_alt("x", "direct", "ae"), WR_OK);
    cr_assert_eq(exdecl_alt("x", "direct", "other"), WR_EEXISTS);
    cr_assert_eq(t_exdecl("t", "x", "direct", 0), WR_EEXISTS);
    /* Chains, and cycles that end: a -> b -> a, nothing bound. */
    cr_assert_eq(exdecl_alt("c1", "topic", "x"), WR_OK);
    cr_assert_eq(t_route1("t", "c1", "other", NULL, 0, "chain"), 1);
    cr_assert_eq(drain("t", "qa", "chain"), 1);
    cr_assert_eq(exdecl_alt("a", "direct", "b"), WR_OK);
    cr_assert_eq(exdecl_alt("b", "direct", "a"), WR_OK);
    cr_assert_eq(t_route1("t", "a", "k", NULL, 0, "loop"), 0);
    /* A missing alternate routes nowhere; "" is the default exchange. */
    cr_assert_eq(exdecl_alt("m", "fanout", "missing"), WR_OK);
    cr_assert_eq(t_route1("t", "m", "k", NULL, 0, "lost"), 0);
    cr_assert_eq(exdecl_alt("d", "fanout", ""), WR_OK);
    cr_assert_eq(t_route1("t", "d", "qx", NULL, 0, "dflt"), 1);
    cr_assert_eq(drain("t", "qx", "dflt"), 1);
    /* An exchange that routed to an exchange has routed: e -> y (bound to
     * nothing) leaves e's alternate unused. */
    cr_assert_eq(exdecl_alt("e", "direct", "ae"), WR_OK);
    cr_assert_eq(t_exdecl("t", "y", "direct", 0), WR_OK);
    cr_assert_eq(t_exbind(true, "t", "y", "e", "k"), WR_OK);
    cr_assert_eq(t_route1("t", "e", "k", NULL, 0, "nowhere"), 0);
    cr_assert_eq(t_route1("t", "e", "k2", NULL, 0, "to-alt"), 1);
    cr_assert_eq(drain("t", "qa", "to-alt"), 1);
}
