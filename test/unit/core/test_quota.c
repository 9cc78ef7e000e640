/*
 * test_quota.c - per-tenant quotas (core/quota.c): the token bucket on a
 * fake clock, the counters (publish, removal, purge, delete) and every
 * quota the core enforces, each leaving another tenant alone, and a raised
 * quota letting the tenant go on.
 */
#include "core/quota.h"
#include "helpers.h"

static wr_auth_t *A;

static void q_setup(void)
{
    t_setup();
    cr_assert_eq(wr_auth_new(NULL, &(wr_auth_cost_t){1, 8192}, &A), WR_OK);
    wr_core_set_auth(T.core, A);
}

static void q_teardown(void)
{
    wr_core_set_auth(T.core, NULL);
    wr_auth_stop(A);
    t_teardown();
    wr_auth_free(A);
}

TestSuite(quota, .init = q_setup, .fini = q_teardown, .timeout = 30);

static void on_auth(void *arg, const wr_auth_res_t *res)
{
    t_call_t *c = arg;
    c->err = res->err;
    t_signal(c);
}

static void auth_do(wr_err_t (*fn)(wr_auth_t *, wr_slice_t, wr_loop_t *, wr_auth_cb, void *),
                    const char *name)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(fn(A, S(name), T.loop, on_auth, c), WR_OK);
    cr_assert_eq(t_wait(c)->err, WR_OK);
    t_call_free(c);
}

static void set_quota(const char *tenant, const char *key, uint64_t v)
{
    t_call_t *c = t_call_new();
    int k = wr_auth_quota_key(key, strlen(key));

    cr_assert(k >= 0);
    if (!wr_auth_tenant_exists(A, S(tenant)))
        auth_do(wr_auth_tenant_add, tenant);
    cr_assert_eq(wr_auth_quota_set(A, S(tenant), k, v, T.loop, on_auth, c), WR_OK);
    cr_assert_eq(t_wait(c)->err, WR_OK);
    t_call_free(c);
}

/* wr_publish with n messages of `size` bytes: the call's own error, or the
 * answer's. */
static wr_err_t pub(const char *tenant, const char *q, size_t n, size_t size)
{
    wr_msg_in_t msgs[16];
    char body[4096];
    t_call_t *c = t_call_new();
    wr_err_t err;

    cr_assert(n <= 16 && size <= sizeof(body));
    memset(body, 'x', size);
    for (size_t i = 0; i < n; i++)
        msgs[i] = (wr_msg_in_t){.body = wr_body_new(S(""), (wr_slice_t){body, size}),
                                .delay_ms = -1};
    err = wr_publish(T.core, S(tenant), S(q), msgs, n, WR_PUB_CREATE, T.loop, t_on_publish, c);
    if (err == WR_OK)
        err = t_wait(c)->err;
    t_call_free(c);
    return err;
}

static wr_tenant_usage_t usage(const char *tenant)
{
    wr_tenant_usage_t u;
    wr_tenant_usage(wr_tenant_get(T.core, S(tenant)), &u);
    return u;
}

Test(quota, token_bucket_fake_clock)
{
    wr_tbucket_t b = {0};
    int64_t wait = 0, t0 = 1000000;

    /* rate 10/s, burst 5: a full bucket gives 5, then one per 100 ms. */
    for (int i = 0; i < 5; i++)
        cr_assert(wr_tbucket_take(&b, 10, 5, 1, t0, NULL));
    cr_assert_not(wr_tbucket_take(&b, 10, 5, 1, t0, &wait));
    cr_assert(wait > 99000 && wait <= 100001, "wait %lld", (long long)wait);
    cr_assert_not(wr_tbucket_take(&b, 10, 5, 1, t0 + 50000, NULL));
    cr_assert(wr_tbucket_take(&b, 10, 5, 1, t0 + 100000, NULL));
    /* Refills up to the burst only. */
    cr_assert(wr_tbucket_take(&b, 10, 5, 5, t0 + 10000000, NULL));
    cr_assert_not(wr_tbucket_take(&b, 10, 5, 1, t0 + 10000000, NULL));
    /* A batch above the burst needs a full bucket and leaves debt. */
    cr_assert(wr_tbucket_take(&b, 10, 5, 20, t0 + 20000000, NULL));
    cr_assert_not(wr_tbucket_take(&b, 10, 5, 1, t0 + 21000000, &wait));
    cr_assert(wait > 500000, "debt: wait %lld", (long long)wait);
    /* burst 0 means the rate; rate 0 means unlimited. */
    wr_tbucket_t c = {0};
    for (int i = 0; i < 3; i++)
        cr_assert(wr_tbucket_take(&c, 3, 0, 1, t0, NULL));
    cr_assert_not(wr_tbucket_take(&c, 3, 0, 1, t0, NULL));
    cr_assert(wr_tbucket_take(&c, 0, 0, 1000, t0, NULL));
}

Test(quota, counters_follow_publish_and_removals)
{
    t_call_t *c;

    cr_assert_eq(pub("cnt", "a", 3, 10), WR_OK);
    cr_assert_eq(pub("cnt", "b", 2, 100), WR_OK);
    cr_assert_eq(usage("cnt").messages, 5);
    cr_assert_eq(usage("cnt").bytes, 230);
    cr_assert_eq(usage("cnt").queues, 2);
    t_call_free(t_pop("cnt", "a", 1));
    cr_assert_eq(usage("cnt").messages, 4);
    cr_assert_eq(usage("cnt").bytes, 220);
    t_call_free(t_purge("cnt", "a"));
    cr_assert_eq(usage("cnt").messages, 2);
    c = t_qdelete("cnt", "b", 0);
    cr_assert_eq(c->err, WR_OK);
    t_call_free(c);
    cr_assert_eq(usage("cnt").messages, 0);
    cr_assert_eq(usage("cnt").bytes, 0);
    cr_assert_eq(usage("cnt").queues, 1);
    /* Expiry counts too. */
    wr_msg_in_t m = t_msg("e", 50, -1, 0);
    t_call_free(t_publish_msgs("cnt", "a", &m, 1, 0));
    cr_assert_eq(usage("cnt").messages, 1);
    t_sleep_ms(120);
    t_call_free(t_stat("cnt", "a"));
    cr_assert_eq(usage("cnt").messages, 0);
}

Test(quota, max_queues_and_raising_it)
{
    set_quota("qq", "max-queues", 2);
    cr_assert_eq(t_declare("qq", "a", NULL), WR_OK);
    cr_assert_eq(t_declare("qq", "b", NULL), WR_OK);
    cr_assert_eq(t_declare("qq", "c", NULL), WR_ELIMIT);
    cr_assert_eq(wr_tenant_last_refusal(wr_tenant_get(T.core, S("qq"))), WR_Q_MAX_QUEUES);
    /* A publish that would create one is refused the same way. */
    cr_assert_eq(pub("qq", "d", 1, 1), WR_ELIMIT);
    cr_assert_eq(t_declare("qq", "a", NULL), WR_OK); /* redeclare */
    cr_assert_eq(t_declare("other", "c", NULL), WR_OK);
    cr_assert_eq(t_declare("other", "d", NULL), WR_OK);
    cr_assert_eq(t_declare("other", "e", NULL), WR_OK);
    set_quota("qq", "max-queues", 3);
    cr_assert_eq(t_declare("qq", "c", NULL), WR_OK);
    t_call_free(t_qdelete("qq", "a", 0));
    cr_assert_eq(pub("qq", "d", 1, 1), WR_OK);
    set_quota("qq", "max-queues", 0); /* 0: unlimited */
    cr_assert_eq(t_declare("qq", "e", NULL), WR_OK);
}

Test(quota, max_queue_messages_and_bytes)
{
    wr_queue_attrs_t own = {.max_length = 1, .overflow = WR_OVERFLOW_REJECT};

    set_quota("pq", "max-queue-messages", 2);
    cr_assert_eq(pub("pq", "a", 2, 1), WR_OK);
    cr_assert_eq(pub("pq", "a", 1, 1), WR_ELIMIT);
    cr_assert_eq(pub("pq", "b", 2, 1), WR_OK); /* per queue */
    cr_assert_eq(pub("free", "a", 5, 1), WR_OK);
    /* The queue's own smaller limit still applies (its own error). */
    cr_assert_eq(t_declare("pq", "own", &own), WR_OK);
    cr_assert_eq(pub("pq", "own", 1, 1), WR_OK);
    cr_assert_eq(pub("pq", "own", 1, 1), WR_EQUOTA);
    t_call_free(t_pop("pq", "a", 1));
    cr_assert_eq(pub("pq", "a", 1, 1), WR_OK);
    set_quota("pq", "max-queue-messages", 0);
    set_quota("pq", "max-queue-bytes", 100);
    cr_assert_eq(pub("pq", "c", 1, 60), WR_OK);
    cr_assert_eq(pub("pq", "c", 1, 60), WR_ELIMIT);
    cr_assert_eq(wr_tenant_last_refusal(wr_tenant_get(T.core, S("pq"))), WR_Q_MAX_QUEUE_BYTES);
    cr_assert_eq(pub("pq", "c", 1, 40), WR_OK);
}

Test(quota, max_tenant_messages_and_bytes)
{
    set_quota("tq", "max-tenant-messages", 3);
    cr_assert_eq(pub("tq", "a", 2, 1), WR_OK);
    cr_assert_eq(pub("tq", "b", 1, 1), WR_OK);
    cr_assert_eq(pub("tq", "c", 1, 1), WR_ELIMIT);
    cr_assert_eq(pub("other", "c", 10, 1), WR_OK);
    t_call_free(t_pop("tq", "a", 2));
    cr_assert_eq(pub("tq", "c", 2, 1), WR_OK);
    set_quota("tq", "max-tenant-messages", 0);
    set_quota("tq", "max-tenant-bytes", 1000);
    cr_assert_eq(pub("tq", "d", 1, 900), WR_OK);
    cr_assert_eq(pub("tq", "e", 1, 200), WR_ELIMIT);
    cr_assert_eq(wr_tenant_last_refusal(wr_tenant_get(T.core, S("tq"))), WR_Q_MAX_TENANT_BYTES);
}

Test(quota, max_message_bytes_and_rate)
{
    uint64_t ms;

    set_quota("mq", "max-message-bytes", 100);
    cr_assert_eq(pub("mq", "a", 1, 100), WR_OK);
    cr_assert_eq(pub("mq", "a", 1, 101), WR_ETOOBIG);
    cr_assert_eq(pub("other", "a", 1, 1000), WR_OK);
    set_quota("rq", "publish-rate", 1);
    set_quota("rq", "publish-burst", 2);
    cr_assert_eq(pub("rq", "a", 2, 1), WR_OK);
    cr_assert_eq(pub("rq", "a", 1, 1), WR_ERATE);
    ms = wr_tenant_retry_ms(wr_tenant_get(T.core, S("rq")), 1);
    cr_assert(ms > 0 && ms <= 1000, "retry %llu ms", (unsigned long long)ms);
    cr_assert_eq(pub("other", "a", 10, 1), WR_OK);
    set_quota("rq", "publish-rate", 0);
    cr_assert_eq(pub("rq", "a", 10, 1), WR_OK);
}

Test(quota, max_exchanges)
{
    set_quota("xq", "max-exchanges", 1);
    cr_assert_eq(t_exdecl("xq", "e1", "direct", 0), WR_OK);
    cr_assert_eq(t_exdecl("xq", "e2", "fanout", 0), WR_ELIMIT);
    cr_assert_eq(t_exdecl("xq", "e1", "direct", 0), WR_OK); /* redeclare */
    cr_assert_eq(t_exdecl("other", "e2", "fanout", 0), WR_OK);
    cr_assert_eq(t_exdel("xq", "e1", 0), WR_OK);
    cr_assert_eq(t_exdecl("xq", "e2", "fanout", 0), WR_OK);
}

Test(quota, connections_and_channels)
{
    wr_tenant_t *t = wr_tenant_get(T.core, S("cq"));

    set_quota("cq", "max-connections", 1);
    set_quota("cq", "max-channels", 2);
    cr_assert_eq(wr_tenant_conn_open(t), WR_OK);
    cr_assert_eq(wr_tenant_conn_open(t), WR_ELIMIT);
    cr_assert_eq(wr_tenant_chan_open(t), WR_OK);
    cr_assert_eq(wr_tenant_chan_open(t), WR_OK);
    cr_assert_eq(wr_tenant_chan_open(t), WR_ELIMIT);
    cr_assert_eq(wr_tenant_conn_open(wr_tenant_get(T.core, S("other"))), WR_OK);
    wr_tenant_conn_close(t);
    wr_tenant_chan_close(t);
    cr_assert_eq(wr_tenant_conn_open(t), WR_OK);
    cr_assert_eq(wr_tenant_chan_open(t), WR_OK);
    cr_assert_eq(usage("cq").connections, 1);
    cr_assert_eq(usage("cq").channels, 2);
}
