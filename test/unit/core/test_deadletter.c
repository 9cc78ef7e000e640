/*
 * test_deadletter.c - dead-lettering on reject, expiry, drop-head and
 * reject-publish-dlx overflow; the props hook and what it is told; the
 * dead-letter routing key or the message's own; expiry cycles dropped; no
 * hook keeps the properties.
 */
#include "helpers.h"

typedef struct hook_log {
    pthread_mutex_t mu;
    int calls;
    char reason[8][16], queue[8][32], exchange[8][32], key[8][32], dlkey[8][32];
} hook_log_t;

static hook_log_t hlog = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void copy(char *dst, wr_slice_t s)
{
    size_t n = s.len < 31 ? s.len : 31;
    memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static wr_body_t *hook(void *ctx, const wr_body_t *msg, const wr_deadletter_info_t *info)
{
    char props[64];
    int n;

    cr_assert_eq(ctx, &hlog);
    pthread_mutex_lock(&hlog.mu);
    if (hlog.calls < 8) {
        int i = hlog.calls;
        snprintf(hlog.reason[i], sizeof(hlog.reason[i]), "%s", info->reason);
        copy(hlog.queue[i], info->queue);
        copy(hlog.exchange[i], info->exchange);
        copy(hlog.key[i], info->routing_key);
        copy(hlog.dlkey[i], info->dl_routing_key);
    }
    hlog.calls++;
    pthread_mutex_unlock(&hlog.mu);
    n = snprintf(props, sizeof(props), "dl:%s", info->reason);
    return wr_body_new((wr_slice_t){props, (size_t)n},
                       (wr_slice_t){wr_body_bytes(msg), msg->body_len});
}

static void setup_hook(void)
{
    wr_core_cfg_t cfg = {.shards = 2, .deadletter_props = hook, .deadletter_ctx = &hlog};
    hlog.calls = 0;
    t_setup_cfg(&cfg);
}

TestSuite(deadletter, .init = setup_hook, .fini = t_teardown, .timeout = 30);

static wr_queue_attrs_t with_dlx(const char *dlx, const char *dlrk)
{
    wr_queue_attrs_t a = {0};
    a.dlx_set = true;
    a.dlx_len = (uint8_t)strlen(dlx);
    memcpy(a.dlx, dlx, a.dlx_len);
    if (dlrk) {
        a.dlrk_set = true;
        a.dlrk_len = (uint8_t)strlen(dlrk);
        memcpy(a.dlrk, dlrk, a.dlrk_len);
    }
    return a;
}

/* Waits until q holds n messages; pops and returns them. */
static t_call_t *wait_pop(const char *q, size_t n)
{
    for (int i = 0; i < 400 && t_depth("t", q) < n; i++)
        t_sleep_ms(5);
    t_call_t *c = t_pop("t", q, 100);
    cr_assert_eq(c->n, n, "%s holds %zu, wanted %zu", q, c->n, n);
    return c;
}

static const char *props_of(const wr_msg_view_t *v)
{
    static _Thread_local char buf[64];
    size_t n = v->body->props_len < 63 ? v->body->props_len : 63;
    memcpy(buf, v->body->data, n);
    buf[n] = '\0';
    return buf;
}

Test(deadletter, reject_goes_through_dlx)
{
    wr_queue_attrs_t a = with_dlx("dlx", NULL);
    t_cons_t *c = t_cons_new();

    cr_assert_eq(t_exdecl("t", "dlx", "fanout", 0), WR_OK);
    cr_assert_eq(t_declare("t", "dead", NULL), WR_OK);
    cr_assert_eq(t_qbind("t", "dead", "dlx", ""), WR_OK);
    cr_assert_eq(t_declare("t", "work", &a), WR_OK);
    t_pub1("t", "work", "m0");
    t_pub1("t", "work", "m1");
    cr_assert_eq(t_subscribe(c, "t", "work", &(wr_sub_opts_t){0}), WR_OK);
    t_cons_settle(c, 2);
    t_call_t *r = t_call_new();
    cr_assert_eq(wr_release(T.core, S("t"), S("work"), c->sub_id, c->ids, 1, 0, T.loop,
                            t_on_count, r),
                 WR_OK);
    cr_assert_eq(t_wait(r)->count, 1);
    t_call_free(r);
    /* Requeued ones stay. */
    r = t_call_new();
    cr_assert_eq(wr_release(T.core, S("t"), S("work"), c->sub_id, &c->ids[1], 1, WR_REL_REQUEUE,
                            T.loop, t_on_count, r),
                 WR_OK);
    t_wait(r);
    t_call_free(r);

    t_call_t *d = wait_pop("dead", 1);
    cr_assert_str_eq(t_body(&d->msgs[0]), "m0");
    cr_assert_str_eq(props_of(&d->msgs[0]), "dl:rejected");
    /* It now carries the dead-letter exchange and its key. */
    cr_assert_eq(d->msgs[0].exchange.len, 3);
    cr_assert_eq(memcmp(d->msgs[0].exchange.ptr, "dlx", 3), 0);
    cr_assert_eq(d->msgs[0].routing_key.len, 4);
    t_call_free(d);
    cr_assert_eq(hlog.calls, 1);
    cr_assert_str_eq(hlog.reason[0], "rejected");
    cr_assert_str_eq(hlog.queue[0], "work");
    cr_assert_str_eq(hlog.exchange[0], "");
    cr_assert_str_eq(hlog.key[0], "work");
    cr_assert_str_eq(hlog.dlkey[0], "work");
    t_cons_free(c);
}

Test(deadletter, routing_keys)
{
    /* Routed in through ex/k; dead-lettered through a direct DLX with the
     * message's own key, and through "" with a dead-letter key. */
    wr_queue_attrs_t own = with_dlx("dlxd", NULL), set = with_dlx("", "parking");
    t_call_t *g;

    cr_assert_eq(t_exdecl("t", "ex", "direct", 0), WR_OK);
    cr_assert_eq(t_exdecl("t", "dlxd", "direct", 0), WR_OK);
    cr_assert_eq(t_declare("t", "w1", &own), WR_OK);
    cr_assert_eq(t_declare("t", "w2", &set), WR_OK);
    cr_assert_eq(t_declare("t", "bykey", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "parking", NULL), WR_OK);
    cr_assert_eq(t_qbind("t", "w1", "ex", "k"), WR_OK);
    cr_assert_eq(t_qbind("t", "w2", "ex", "k"), WR_OK);
    cr_assert_eq(t_qbind("t", "bykey", "dlxd", "k"), WR_OK);
    cr_assert_eq(t_route1("t", "ex", "k", NULL, 0, "x"), 2);

    for (int i = 0; i < 2; i++) {
        const char *q = i ? "w2" : "w1";
        g = t_claim("t", q, 1, 60000, 0);
        cr_assert_eq(g->n, 1);
        t_call_t *r = t_call_new();
        cr_assert_eq(wr_release(T.core, S("t"), S(q), g->claim_id, g->ids, 1, WR_REL_DEADLETTER,
                                T.loop, t_on_count, r),
                     WR_OK);
        t_wait(r);
        t_call_free(r);
        t_call_free(g);
    }
    t_call_t *d = wait_pop("bykey", 1);
    cr_assert_str_eq(t_body(&d->msgs[0]), "x");
    t_call_free(d);
    d = wait_pop("parking", 1);
    cr_assert_str_eq(t_body(&d->msgs[0]), "x");
    t_call_free(d);
    cr_assert_eq(hlog.calls, 2);
    cr_assert_str_eq(hlog.exchange[0], "ex");
    cr_assert_str_eq(hlog.key[0], "k");
    cr_assert_str_eq(hlog.dlkey[1], "parking");
}

Test(deadletter, expired)
{
    wr_queue_attrs_t a = with_dlx("", "dead");
    wr_msg_in_t m[3] = {t_msg("e0", 0, -1, 0), t_msg("e1", 0, -1, 0), t_msg("keep", 0, -1, 0)};

    a.default_ttl_ms = 60;
    m[2].ttl_ms = 600000;
    m[1].priority = 3;
    cr_assert_eq(t_declare("t", "dead", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "short", &a), WR_OK);
    t_call_free(t_publish_msgs("t", "short", m, 3, 0));
    /* Nobody looks at the queue: the sweep expires them. */
    t_call_t *d = wait_pop("dead", 2);
    cr_assert_str_eq(t_body(&d->msgs[0]), "e0");
    cr_assert_str_eq(t_body(&d->msgs[1]), "e1");
    cr_assert_str_eq(props_of(&d->msgs[0]), "dl:expired");
    /* Not expiring again in the dead-letter queue. */
    cr_assert_eq(d->msgs[0].ttl_ms, 0);
    t_call_free(d);
    cr_assert_eq(t_depth("t", "short"), 1);
    t_call_t *s = t_stat("t", "short");
    cr_assert_eq(s->stat.expired, 2);
    t_call_free(s);
    cr_assert_str_eq(hlog.reason[0], "expired");
}

Test(deadletter, maxlen_drop_head)
{
    wr_queue_attrs_t a = with_dlx("", "dead");

    a.max_length = 2;
    cr_assert_eq(t_declare("t", "dead", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "capped", &a), WR_OK);
    t_call_free(t_publish_n("t", "capped", 5, 0, -1, 0, 0));
    t_call_t *d = wait_pop("dead", 3);
    cr_assert_str_eq(t_body(&d->msgs[0]), "m0");
    cr_assert_str_eq(t_body(&d->msgs[2]), "m2");
    cr_assert_str_eq(props_of(&d->msgs[0]), "dl:maxlen");
    t_call_free(d);
    cr_assert_eq(t_depth("t", "capped"), 2);
}

Test(deadletter, reject_publish_dlx)
{
    wr_queue_attrs_t a = with_dlx("", "dead");
    wr_msg_in_t m;
    uint32_t reached;

    a.max_length = 1;
    a.overflow = WR_OVERFLOW_REJECT_DLX;
    cr_assert_eq(t_declare("t", "dead", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "full", &a), WR_OK);
    t_pub1("t", "full", "first");
    m = t_msg("second", 0, -1, 0);
    t_call_t *p = t_publish_msgs("t", "full", &m, 1, 0);
    cr_assert_eq(p->err, WR_EQUOTA);
    t_call_free(p);
    m = t_msg("third", 0, -1, 0);
    cr_assert_eq(t_route_msgs("t", "", "full", NULL, 0, &m, 1, &reached), WR_EQUOTA);
    cr_assert_eq(reached, 0);
    t_call_t *d = wait_pop("dead", 2);
    cr_assert_str_eq(t_body(&d->msgs[0]), "second");
    cr_assert_str_eq(t_body(&d->msgs[1]), "third");
    cr_assert_str_eq(props_of(&d->msgs[1]), "dl:maxlen");
    t_call_free(d);
    cr_assert_eq(t_depth("t", "full"), 1);
}

Test(deadletter, expiry_cycle_dropped_rejection_loops)
{
    /* Expiring into itself: dropped, not an endless loop. */
    wr_queue_attrs_t self = with_dlx("", "loop");
    self.default_ttl_ms = 30;
    cr_assert_eq(t_declare("t", "loop", &self), WR_OK);
    t_pub1("t", "loop", "x");
    t_sleep_ms(700);
    cr_assert_eq(t_depth("t", "loop"), 0);
    cr_assert_eq(hlog.calls, 1);

    /* Rejected into itself: comes back (a retry loop). */
    wr_queue_attrs_t retry = with_dlx("", "retry");
    cr_assert_eq(t_declare("t", "retry", &retry), WR_OK);
    t_pub1("t", "retry", "again");
    t_call_t *g = t_claim("t", "retry", 1, 60000, 0);
    t_call_t *r = t_call_new();
    cr_assert_eq(wr_release(T.core, S("t"), S("retry"), g->claim_id, g->ids, 1, 0, T.loop,
                            t_on_count, r),
                 WR_OK);
    t_wait(r);
    t_call_free(r);
    t_call_free(g);
    t_call_t *d = wait_pop("retry", 1);
    cr_assert_str_eq(t_body(&d->msgs[0]), "again");
    t_call_free(d);
}

Test(deadletter, missing_dlx_drops)
{
    wr_queue_attrs_t a = with_dlx("nowhere", NULL);
    cr_assert_eq(t_declare("t", "lost", &a), WR_OK);
    t_pub1("t", "lost", "x");
    t_call_t *g = t_claim("t", "lost", 1, 60000, 0);
    t_call_t *r = t_call_new();
    cr_assert_eq(wr_release(T.core, S("t"), S("lost"), g->claim_id, g->ids, 1, 0, T.loop,
                            t_on_count, r),
                 WR_OK);
    cr_assert_eq(t_wait(r)->count, 1);
    t_call_free(r);
    t_call_free(g);
    cr_assert_eq(t_depth("t", "lost"), 0);
}

Test(deadletter, no_hook_keeps_props)
{
    wr_core_cfg_t cfg = {.shards = 2};
    wr_queue_attrs_t a = with_dlx("", "dead");

    t_teardown();
    t_setup_cfg(&cfg);
    a.max_length = 1;
    cr_assert_eq(t_declare("t", "dead", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "src", &a), WR_OK);
    wr_msg_in_t m[2] = {{.body = wr_body_new(S("P"), S("b0")), .delay_ms = -1},
                        {.body = wr_body_new(S("P"), S("b1")), .delay_ms = -1}};
    t_call_free(t_publish_msgs("t", "src", m, 2, 0));
    t_call_t *d = wait_pop("dead", 1);
    cr_assert_str_eq(props_of(&d->msgs[0]), "P");
    cr_assert_str_eq(t_body(&d->msgs[0]), "b0");
    t_call_free(d);
}
