/*
 * test_qattrs.c - AMQP queue attributes: exclusive owners (and
 * wr_owner_gone), declare equivalence (WR_DECL_CHECK), x-expires, and
 * priority queues.
 */
#include "helpers.h"

TestSuite(qattrs, .init = t_setup, .fini = t_teardown, .timeout = 30);

static wr_err_t decl(const char *q, const wr_queue_attrs_t *a, unsigned flags)
{
    t_call_t *c = t_declare_full("t", q, a, NULL, flags);
    wr_err_t err = c->err;
    t_call_free(c);
    return err;
}

static wr_err_t claim_as(const char *q, uint64_t owner, size_t *n)
{
    t_call_t *c = t_call_new();
    wr_claim_opts_t o = {.limit = 10, .ttl_ms = 1000, .owner = owner};
    wr_err_t err;
    cr_assert_eq(wr_claim(T.core, S("t"), S(q), &o, T.loop, t_on_msgs, c), WR_OK);
    err = t_wait(c)->err;
    if (n)
        *n = c->n;
    t_call_free(c);
    return err;
}

static wr_err_t count_call_err(t_call_t *c)
{
    wr_err_t err = t_wait(c)->err;
    t_call_free(c);
    return err;
}

Test(qattrs, exclusive_owner)
{
    wr_queue_attrs_t ex = {.exclusive = true, .owner = 7};
    wr_queue_attrs_t other = {.owner = 8};
    t_call_t *c;

    cr_assert_eq(decl("ex", &ex, 0), WR_OK);
    cr_assert_eq(decl("ex", &ex, WR_DECL_PASSIVE), WR_OK);
    cr_assert_eq(decl("ex", &other, 0), WR_ELOCKED);
    cr_assert_eq(decl("ex", &other, WR_DECL_PASSIVE), WR_ELOCKED);
    cr_assert_eq(decl("ex", NULL, 0), WR_ELOCKED);
    cr_assert_eq(claim_as("ex", 8, NULL), WR_ELOCKED);
    cr_assert_eq(claim_as("ex", 7, NULL), WR_OK);

    c = t_call_new();
    cr_assert_eq(wr_queue_delete_as(T.core, S("t"), S("ex"), 0, 8, T.loop, t_on_count, c), WR_OK);
    cr_assert_eq(count_call_err(c), WR_ELOCKED);
    c = t_call_new();
    cr_assert_eq(wr_queue_purge_as(T.core, S("t"), S("ex"), 8, T.loop, t_on_count, c), WR_OK);
    cr_assert_eq(count_call_err(c), WR_ELOCKED);
    c = t_call_new();
    cr_assert_eq(wr_queue_purge_as(T.core, S("t"), S("ex"), 7, T.loop, t_on_count, c), WR_OK);
    cr_assert_eq(count_call_err(c), WR_OK);
    cr_assert_eq(t_exdecl("t", "fx", "fanout", WR_EXCH_AUTO_DELETE), WR_OK);
    c = t_call_new();
    cr_assert_eq(wr_queue_bind(T.core, S("t"), S("ex"), S("fx"), S(""), NULL, 0, 8, T.loop,
                               t_on_count, c),
                 WR_OK);
    cr_assert_eq(count_call_err(c), WR_ELOCKED);
    c = t_call_new();
    cr_assert_eq(wr_queue_bind(T.core, S("t"), S("ex"), S("fx"), S(""), NULL, 0, 7, T.loop,
                               t_on_count, c),
                 WR_OK);
    cr_assert_eq(count_call_err(c), WR_OK);

    /* Anyone may publish to it. */
    cr_assert_eq(t_route1("t", "fx", "", NULL, 0, "m"), 1);
    cr_assert_eq(t_depth("t", "ex"), 1);

    /* Another owner going changes nothing; the owner going deletes it, with
     * its bindings (fx was auto_delete: gone too). */
    c = t_call_new();
    cr_assert_eq(wr_owner_gone(T.core, 8, T.loop, t_on_count, c), WR_OK);
    t_wait(c);
    cr_assert_eq(c->count, 0);
    t_call_free(c);
    cr_assert_eq(decl("ex", &ex, WR_DECL_PASSIVE), WR_OK);
    cr_assert_eq(decl("ex2", &ex, 0), WR_OK);
    c = t_call_new();
    cr_assert_eq(wr_owner_gone(T.core, 7, T.loop, t_on_count, c), WR_OK);
    t_wait(c);
    cr_assert_eq(c->err, WR_OK);
    cr_assert_eq(c->count, 2);
    t_call_free(c);
    cr_assert_eq(decl("ex", NULL, WR_DECL_PASSIVE), WR_ENOTFOUND);
    cr_assert_eq(decl("ex2", NULL, WR_DECL_PASSIVE), WR_ENOTFOUND);
    for (int i = 0; i < 100 && t_exdecl("t", "fx", "", WR_EXCH_PASSIVE) == WR_OK; i++)
        t_sleep_ms(5);
    cr_assert_eq(t_exdecl("t", "fx", "", WR_EXCH_PASSIVE), WR_ENOTFOUND);

    /* Fire and forget works too. */
    cr_assert_eq(decl("ex3", &ex, 0), WR_OK);
    cr_assert_eq(wr_owner_gone(T.core, 7, NULL, NULL, NULL), WR_OK);
    for (int i = 0; i < 100 && decl("ex3", NULL, WR_DECL_PASSIVE) == WR_OK; i++)
        t_sleep_ms(5);
    cr_assert_eq(decl("ex3", NULL, WR_DECL_PASSIVE), WR_ENOTFOUND);

    /* exclusive needs an owner. */
    wr_queue_attrs_t bad = {.exclusive = true};
    c = t_call_new();
    cr_assert_eq(wr_queue_declare(T.core, S("t"), S("b"), &bad, S(""), 0, T.loop, t_on_declare, c),
                 WR_EINVAL);
    t_call_free(c);
}

Test(qattrs, declare_check_equivalence)
{
    wr_queue_attrs_t a = {.durable = true, .default_ttl_ms = 5000, .max_length = 10,
                          .dlx_set = true, .dlx_len = 3, .dlx = "dlx", .max_priority = 3,
                          .owner = 1};
    wr_queue_attrs_t b;

    cr_assert_eq(decl("eq", &a, WR_DECL_CHECK), WR_OK);
    /* Same arguments, another caller: fine (not exclusive). */
    b = a;
    b.owner = 2;
    cr_assert_eq(decl("eq", &b, WR_DECL_CHECK), WR_OK);
#define DIFFERS(stmt)                                                                             \
    do {                                                                                           \
        b = a;                                                                                     \
        stmt;                                                                                      \
        cr_assert_eq(decl("eq", &b, WR_DECL_CHECK), WR_EEXISTS, #stmt);                           \
        cr_assert_eq(decl("eq", &b, WR_DECL_CHECK | WR_DECL_PASSIVE), WR_OK, #stmt);              \
        cr_assert_eq(decl("eq", &b, 0), WR_OK, #stmt);                                            \
    } while (0)
    DIFFERS(b.durable = false);
    DIFFERS(b.auto_delete = true);
    DIFFERS(b.default_ttl_ms = 1);
    DIFFERS(b.expires_ms = 1000);
    DIFFERS(b.max_length = 0);
    DIFFERS(b.max_bytes = 5);
    DIFFERS(b.overflow = WR_OVERFLOW_REJECT);
    DIFFERS(b.max_priority = 0);
    DIFFERS(b.dlx_set = false);
    DIFFERS(memcpy(b.dlx, "dlz", 3));
    DIFFERS((b.dlrk_set = true, b.dlrk_len = 0));
    /* An exclusive redeclare of a shared queue differs too. */
    DIFFERS((b.exclusive = true, b.owner = 1));

    t_call_t *c = t_declare_full("t", "eq", &a, NULL, WR_DECL_CHECK);
    cr_assert_not(c->created);
    cr_assert_eq(c->consumers, 0);
    t_call_free(c);
}

Test(qattrs, expires_unused)
{
    wr_queue_attrs_t a = {.expires_ms = 300};
    size_t n;

    cr_assert_eq(t_exdecl("t", "xe", "direct", WR_EXCH_AUTO_DELETE), WR_OK);
    cr_assert_eq(decl("exp", &a, 0), WR_OK);
    cr_assert_eq(t_qbind("t", "exp", "xe", "k"), WR_OK);
    /* Uses keep it alive: a passive declare and a claim. Publishes do not
     * count (RabbitMQ). */
    t_sleep_ms(200);
    cr_assert_eq(decl("exp", NULL, WR_DECL_PASSIVE), WR_OK);
    t_sleep_ms(200);
    cr_assert_eq(claim_as("exp", 0, &n), WR_OK);
    t_sleep_ms(200);
    t_pub1("t", "exp", "x");
    cr_assert_eq(decl("exp", NULL, WR_DECL_PASSIVE), WR_OK);
    /* Then unused for longer than 300 ms (the sweep runs every 250 ms). */
    t_sleep_ms(800);
    cr_assert_eq(decl("exp", NULL, WR_DECL_PASSIVE), WR_ENOTFOUND);
    /* Its bindings went with it. */
    for (int i = 0; i < 100 && t_exdecl("t", "xe", "", WR_EXCH_PASSIVE) == WR_OK; i++)
        t_sleep_ms(5);
    cr_assert_eq(t_exdecl("t", "xe", "", WR_EXCH_PASSIVE), WR_ENOTFOUND);
}

static void pub_prio(const char *q, const char *body, uint8_t prio)
{
    wr_msg_in_t m = t_msg(body, 0, -1, 0);
    m.priority = prio;
    t_call_t *c = t_publish_msgs("t", q, &m, 1, 0);
    cr_assert_eq(c->err, WR_OK);
    t_call_free(c);
}

static void expect_order(t_call_t *c, const char *const *want, size_t n)
{
    cr_assert_eq(c->n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(t_body(&c->msgs[i]), want[i], "at %zu", i);
}

Test(qattrs, priorities)
{
    wr_queue_attrs_t a = {.max_priority = 5};
    static const char *const order[] = {"p5a", "p5b", "p9", "p3a", "p3b", "p0a", "p0b"};

    cr_assert_eq(decl("pq", &a, 0), WR_OK);
    pub_prio("pq", "p0a", 0);
    pub_prio("pq", "p3a", 3);
    pub_prio("pq", "p5a", 5);
    pub_prio("pq", "p0b", 0);
    pub_prio("pq", "p5b", 5);
    pub_prio("pq", "p9", 9); /* capped to 5: after the earlier 5s */
    pub_prio("pq", "p3b", 3);

    /* Listing is by id; claims take the highest priority first. */
    t_call_t *l = t_list("t", "pq", 0, 100, 0, 0);
    cr_assert_eq(l->n, 7);
    cr_assert_str_eq(t_body(&l->msgs[0]), "p0a");
    cr_assert_eq(l->msgs[5].priority, 5);
    t_call_free(l);

    t_call_t *c = t_claim("t", "pq", 3, 60000, 0);
    expect_order(c, order, 3);
    /* Released: back in their places, ahead of the lower levels. */
    t_call_free(t_claim_release("t", "pq", c->claim_id));
    t_call_free(c);
    c = t_claim("t", "pq", 100, 60000, 0);
    expect_order(c, order, 7);
    cr_assert(c->msgs[0].redelivered);
    cr_assert_not(c->msgs[3].redelivered);
    /* Delete by id from the middle of the levels. */
    t_call_t *d = t_delete("t", "pq", &c->ids[1], 3, c->claim_id, false);
    cr_assert_eq(d->count, 3);
    t_call_free(d);
    t_call_free(t_claim_release("t", "pq", c->claim_id));
    t_call_free(c);
    static const char *const rest[] = {"p5a", "p3b", "p0a", "p0b"};
    c = t_pop("t", "pq", 100);
    expect_order(c, rest, 4);
    t_call_free(c);
    cr_assert_eq(t_depth("t", "pq"), 0);

    /* A queue without max_priority ignores priorities. */
    cr_assert_eq(decl("fifo", NULL, 0), WR_OK);
    pub_prio("fifo", "a", 0);
    pub_prio("fifo", "b", 9);
    static const char *const fifo[] = {"a", "b"};
    c = t_pop("t", "fifo", 10);
    expect_order(c, fifo, 2);
    cr_assert_eq(c->msgs[1].priority, 0);
    t_call_free(c);

    /* UPDATE keeps the levels. */
    wr_queue_attrs_t none = {0};
    cr_assert_eq(decl("pq", &none, WR_DECL_UPDATE), WR_OK);
    c = t_stat("t", "pq");
    cr_assert_eq(c->stat.attrs.max_priority, 5);
    t_call_free(c);
}

Test(qattrs, priority_expiry_purge_many)
{
    wr_queue_attrs_t a = {.max_priority = 2};

    cr_assert_eq(decl("pe", &a, 0), WR_OK);
    for (int i = 0; i < 300; i++) {
        wr_msg_in_t m = t_msg(i % 2 ? "short" : "long", i % 2 ? 50 : 0, -1, 0);
        m.priority = (uint8_t)(i % 3);
        t_call_free(t_publish_msgs("t", "pe", &m, 1, 0));
    }
    t_sleep_ms(120);
    /* Expired ones vanish from every level. */
    t_call_t *c = t_claim("t", "pe", 1000, 60000, 0);
    cr_assert_eq(c->n, 150);
    for (size_t i = 0; i < c->n; i++) {
        cr_assert_str_eq(t_body(&c->msgs[i]), "long");
        if (i)
            cr_assert_geq(c->msgs[i - 1].priority, c->msgs[i].priority);
    }
    t_call_free(t_claim_release("t", "pe", c->claim_id));
    t_call_free(c);
    c = t_purge("t", "pe");
    cr_assert_eq(c->count, 150);
    t_call_free(c);
    cr_assert_eq(t_depth("t", "pe"), 0);
    pub_prio("pe", "after", 1);
    c = t_pop("t", "pe", 10);
    cr_assert_eq(c->n, 1);
    t_call_free(c);
}

Test(qattrs, delete_if_no_consumers)
{
    cr_assert_eq(decl("nc", NULL, 0), WR_OK);
    t_call_t *c = t_qdelete("t", "nc", WR_DEL_IF_NO_CONSUMERS);
    cr_assert_eq(c->err, WR_OK);
    t_call_free(c);
}
