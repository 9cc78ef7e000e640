/*
 * test_consumer.c - push consumers: deliveries and their order, credit
 * (prefetch never exceeded), round robin and consumer priorities, exclusive
 * consumers, no_ack, pause, unsubscribe with and without requeue, queue
 * deletion ending subscriptions, auto_delete and x-expires with consumers,
 * owners going, and held messages not expiring.
 */
#include "helpers.h"

TestSuite(consumer, .init = t_setup, .fini = t_teardown, .timeout = 30);

static void pub_n(const char *q, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char b[16];
        snprintf(b, sizeof(b), "%d", i);
        t_pub1("t", q, b);
    }
}

/* Acks deliveries [from, to) of c (delete with the subscription's claim). */
static void ack_range(t_cons_t *c, const char *q, size_t from, size_t to)
{
    t_call_t *d = t_delete("t", q, &c->ids[from], to - from, c->sub_id, false);
    cr_assert_eq(d->err, WR_OK);
    cr_assert_eq(d->count, to - from);
    t_call_free(d);
}

static t_call_t *stat(const char *q)
{
    t_call_t *s = t_stat("t", q);
    cr_assert_eq(s->err, WR_OK);
    return s;
}

Test(consumer, push_fifo_and_ack)
{
    t_cons_t *c = t_cons_new();
    wr_sub_opts_t o = {0};

    cr_assert_eq(t_declare("t", "q", NULL), WR_OK);
    pub_n("q", 0, 5);
    cr_assert_eq(t_subscribe(c, "t", "q", &o), WR_OK);
    cr_assert_eq(c->consumers, 1);
    t_cons_expect(c, 5);
    pub_n("q", 5, 5);
    t_cons_settle(c, 10);
    cr_assert_not(c->delivered_before_subscribed);
    cr_assert_not(c->off_loop);
    for (int i = 0; i < 10; i++) {
        char b[16];
        snprintf(b, sizeof(b), "%d", i);
        cr_assert_str_eq(c->bodies[i], b);
        cr_assert_not(c->redelivered[i]);
        cr_assert_eq(c->dcount[i], 1);
        /* Published with wr_publish: the key is the queue's name. */
        cr_assert_str_eq(c->rkey[i], "q");
    }
    cr_assert_eq(c->claim_id, c->sub_id);
    t_call_t *s = stat("q");
    cr_assert_eq(s->stat.total, 10);
    cr_assert_eq(s->stat.claimed, 10);
    t_call_free(s);
    ack_range(c, "q", 0, 10);
    s = stat("q");
    cr_assert_eq(s->stat.total, 0);
    cr_assert_eq(s->stat.acked, 10);
    t_call_free(s);
    /* A declare reports the consumer. */
    t_call_t *d = t_declare_full("t", "q", NULL, NULL, WR_DECL_PASSIVE);
    cr_assert_eq(d->consumers, 1);
    t_call_free(d);
    t_cons_free(c);
}

Test(consumer, prefetch_never_exceeded)
{
    t_cons_t *c = t_cons_new();
    wr_sub_opts_t o = {.prefetch = 10};
    size_t acked = 0;

    cr_assert_eq(t_declare("t", "pf", NULL), WR_OK);
    pub_n("pf", 0, 100);
    cr_assert_eq(t_subscribe(c, "t", "pf", &o), WR_OK);
    while (acked < 100) {
        size_t n;
        t_cons_expect(c, acked + 1);
        t_sleep_ms(20);
        pthread_mutex_lock(&c->mu);
        n = c->n;
        pthread_mutex_unlock(&c->mu);
        cr_assert_leq(n - acked, 10, "unacked %zu > prefetch", n - acked);
        t_call_t *s = stat("pf");
        cr_assert_leq(s->stat.claimed, 10);
        t_call_free(s);
        /* Ack half of what is outstanding, give the credit back. */
        size_t k = (n - acked + 1) / 2;
        ack_range(c, "pf", acked, acked + k);
        acked += k;
        t_call_free(t_credit("t", "pf", c->sub_id, (uint32_t)k));
    }
    cr_assert_eq(c->n, 100);
    for (int i = 0; i < 100; i++) {
        char b[16];
        snprintf(b, sizeof(b), "%d", i);
        cr_assert_str_eq(c->bodies[i], b);
    }
    t_cons_free(c);
}

Test(consumer, credit_fire_and_forget_and_errors)
{
    t_cons_t *c = t_cons_new();
    wr_sub_opts_t o = {.prefetch = 1};

    cr_assert_eq(t_declare("t", "cf", NULL), WR_OK);
    pub_n("cf", 0, 5);
    cr_assert_eq(t_subscribe(c, "t", "cf", &o), WR_OK);
    t_cons_settle(c, 1);
    cr_assert_eq(wr_sub_credit(T.core, S("t"), S("cf"), c->sub_id, 3, NULL, NULL, NULL), WR_OK);
    t_cons_settle(c, 4);
    t_call_t *r = t_credit("t", "cf", 999, 1);
    cr_assert_eq(r->err, WR_ENOTFOUND);
    t_call_free(r);
    r = t_credit("t", "nosuchq", c->sub_id, 1);
    cr_assert_eq(r->err, WR_ENOTFOUND);
    t_call_free(r);
    t_cons_t *m = t_cons_new();
    cr_assert_eq(t_subscribe(m, "t", "missing", &o), WR_ENOTFOUND);
    t_cons_free(m);
    t_cons_free(c);
}

Test(consumer, round_robin)
{
    t_cons_t *a = t_cons_new(), *b = t_cons_new();
    wr_sub_opts_t o = {0};

    cr_assert_eq(t_declare("t", "rr", NULL), WR_OK);
    cr_assert_eq(t_subscribe(a, "t", "rr", &o), WR_OK);
    cr_assert_eq(t_subscribe(b, "t", "rr", &o), WR_OK);
    cr_assert_eq(b->consumers, 2);
    t_call_free(t_publish_n("t", "rr", 10, 0, -1, 0, 0));
    t_cons_settle(a, 5);
    t_cons_settle(b, 5);
    for (int i = 0; i < 5; i++) {
        char x[16], y[16];
        snprintf(x, sizeof(x), "m%d", 2 * i);
        snprintf(y, sizeof(y), "m%d", 2 * i + 1);
        cr_assert_str_eq(a->bodies[i], x);
        cr_assert_str_eq(b->bodies[i], y);
    }
    /* One at a time, too. */
    pub_n("rr", 0, 4);
    t_cons_settle(a, 7);
    t_cons_settle(b, 7);
    t_cons_free(a);
    t_cons_free(b);
}

Test(consumer, priorities_and_credit)
{
    t_cons_t *hi = t_cons_new(), *lo = t_cons_new();
    wr_sub_opts_t oh = {.prefetch = 2, .priority = 10}, ol = {0};

    cr_assert_eq(t_declare("t", "cp", NULL), WR_OK);
    cr_assert_eq(t_subscribe(lo, "t", "cp", &ol), WR_OK);
    cr_assert_eq(t_subscribe(hi, "t", "cp", &oh), WR_OK);
    t_call_free(t_publish_n("t", "cp", 5, 0, -1, 0, 0));
    t_cons_settle(hi, 2);
    t_cons_settle(lo, 3);
    cr_assert_str_eq(hi->bodies[0], "m0");
    cr_assert_str_eq(hi->bodies[1], "m1");
    cr_assert_str_eq(lo->bodies[0], "m2");
    /* Credit back: the high priority consumer is served first again. */
    t_call_free(t_credit("t", "cp", hi->sub_id, 1));
    t_call_free(t_publish_n("t", "cp", 2, 0, -1, 0, 0));
    t_cons_settle(hi, 3);
    t_cons_settle(lo, 4);
    t_cons_free(hi);
    t_cons_free(lo);
}

Test(consumer, exclusive_consumer)
{
    t_cons_t *a = t_cons_new(), *b = t_cons_new(), *c = t_cons_new();
    wr_sub_opts_t ex = {.exclusive = true}, plain = {0};

    cr_assert_eq(t_declare("t", "xc", NULL), WR_OK);
    cr_assert_eq(t_subscribe(a, "t", "xc", &ex), WR_OK);
    cr_assert_eq(t_subscribe(b, "t", "xc", &plain), WR_ELOCKED);
    t_call_free(t_unsubscribe("t", "xc", a->sub_id, true));
    cr_assert_eq(t_subscribe(c, "t", "xc", &plain), WR_OK);
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    cr_assert_eq(t_subscribe(b, "t", "xc", &ex), WR_ELOCKED);

    /* An exclusive queue of another owner. */
    wr_queue_attrs_t own = {.exclusive = true, .owner = 3};
    t_cons_t *d = t_cons_new(), *e = t_cons_new();
    wr_sub_opts_t as4 = {.owner = 4}, as3 = {.owner = 3};
    cr_assert_eq(t_declare("t", "owned", &own), WR_OK);
    cr_assert_eq(t_subscribe(d, "t", "owned", &as4), WR_ELOCKED);
    cr_assert_eq(t_subscribe(e, "t", "owned", &as3), WR_OK);
    t_cons_free(a);
    t_cons_free(b);
    t_cons_free(c);
    t_cons_free(d);
    t_cons_free(e);
}

Test(consumer, no_ack_deletes)
{
    t_cons_t *c = t_cons_new();
    wr_sub_opts_t o = {.no_ack = true};

    cr_assert_eq(t_declare("t", "na", NULL), WR_OK);
    pub_n("na", 0, 20);
    cr_assert_eq(t_subscribe(c, "t", "na", &o), WR_OK);
    t_cons_settle(c, 20);
    cr_assert_eq(c->claim_id, 0);
    t_call_t *s = stat("na");
    cr_assert_eq(s->stat.total, 0);
    cr_assert_eq(s->stat.delivered, 20);
    t_call_free(s);
    t_cons_free(c);
}

Test(consumer, pause_resume)
{
    t_cons_t *c = t_cons_new();
    wr_sub_opts_t o = {0};
    t_call_t *r;

    cr_assert_eq(t_declare("t", "pr", NULL), WR_OK);
    cr_assert_eq(t_subscribe(c, "t", "pr", &o), WR_OK);
    r = t_call_new();
    cr_assert_eq(wr_sub_pause(T.core, S("t"), S("pr"), c->sub_id, true, T.loop, t_on_count, r),
                 WR_OK);
    cr_assert_eq(t_wait(r)->err, WR_OK);
    t_call_free(r);
    pub_n("pr", 0, 3);
    t_cons_settle(c, 0);
    cr_assert_eq(wr_sub_pause(T.core, S("t"), S("pr"), c->sub_id, false, NULL, NULL, NULL),
                 WR_OK);
    t_cons_settle(c, 3);
    t_cons_free(c);
}

Test(consumer, unsubscribe_requeue_order)
{
    t_cons_t *a = t_cons_new(), *b = t_cons_new();
    wr_sub_opts_t o = {0};

    cr_assert_eq(t_declare("t", "uq", NULL), WR_OK);
    pub_n("uq", 0, 6);
    cr_assert_eq(t_subscribe(a, "t", "uq", &o), WR_OK);
    t_cons_settle(a, 6);
    /* Ack two in the middle; the other four go back in order. */
    ack_range(a, "uq", 2, 4);
    t_call_t *u = t_unsubscribe("t", "uq", a->sub_id, true);
    cr_assert_eq(u->err, WR_OK);
    cr_assert_eq(u->count, 4);
    t_call_free(u);
    u = t_unsubscribe("t", "uq", a->sub_id, true);
    cr_assert_eq(u->err, WR_ENOTFOUND);
    t_call_free(u);
    pub_n("uq", 6, 1);
    cr_assert_eq(t_subscribe(b, "t", "uq", &o), WR_OK);
    t_cons_settle(b, 5);
    static const char *const want[] = {"0", "1", "4", "5", "6"};
    for (int i = 0; i < 5; i++) {
        cr_assert_str_eq(b->bodies[i], want[i]);
        cr_assert_eq(b->redelivered[i], i < 4);
        cr_assert_eq(b->dcount[i], i < 4 ? 2u : 1u);
    }
    t_cons_free(a);
    t_cons_free(b);
}

Test(consumer, unsubscribe_keeps_unacked)
{
    t_cons_t *a = t_cons_new();
    wr_sub_opts_t o = {0};

    cr_assert_eq(t_declare("t", "uk", NULL), WR_OK);
    pub_n("uk", 0, 4);
    cr_assert_eq(t_subscribe(a, "t", "uk", &o), WR_OK);
    t_cons_settle(a, 4);
    t_call_t *u = t_unsubscribe("t", "uk", a->sub_id, false);
    cr_assert_eq(u->count, 0);
    t_call_free(u);
    /* Still held: ack two with the old claim id, release the rest. */
    ack_range(a, "uk", 0, 2);
    t_call_t *s = stat("uk");
    cr_assert_eq(s->stat.claimed, 2);
    t_call_free(s);
    t_call_t *r = t_claim_release("t", "uk", a->sub_id);
    cr_assert_eq(r->count, 2);
    t_call_free(r);
    s = stat("uk");
    cr_assert_eq(s->stat.claimed, 0);
    cr_assert_eq(s->stat.total, 2);
    t_call_free(s);
    t_cons_free(a);
}

Test(consumer, queue_delete_ends_subscription)
{
    t_cons_t *a = t_cons_new(), *b = t_cons_new();
    wr_sub_opts_t o = {0};

    cr_assert_eq(t_declare("t", "qd", NULL), WR_OK);
    pub_n("qd", 0, 3);
    cr_assert_eq(t_subscribe(a, "t", "qd", &o), WR_OK);
    cr_assert_eq(t_subscribe(b, "t", "qd", &(wr_sub_opts_t){.no_ack = true}), WR_OK);
    t_cons_expect(a, 2);
    t_call_free(t_qdelete("t", "qd", 0));
    cr_assert(t_cons_wait(a, t_pred_ended, 0, 5000));
    cr_assert(t_cons_wait(b, t_pred_ended, 0, 5000));
    cr_assert_eq(a->end_err, WR_ENOTFOUND);
    cr_assert_eq(a->delivered_after_end, 0);
    cr_assert_eq(b->delivered_after_end, 0);
    t_call_t *u = t_unsubscribe("t", "qd", a->sub_id, true);
    cr_assert_eq(u->err, WR_ENOTFOUND);
    t_call_free(u);
    t_cons_free(a);
    t_cons_free(b);
}

Test(consumer, delete_if_no_consumers)
{
    t_cons_t *a = t_cons_new();
    cr_assert_eq(t_declare("t", "dn", NULL), WR_OK);
    cr_assert_eq(t_subscribe(a, "t", "dn", &(wr_sub_opts_t){0}), WR_OK);
    t_call_t *d = t_qdelete("t", "dn", WR_DEL_IF_NO_CONSUMERS);
    cr_assert_eq(d->err, WR_EBUSY);
    t_call_free(d);
    t_call_free(t_unsubscribe("t", "dn", a->sub_id, true));
    d = t_qdelete("t", "dn", WR_DEL_IF_NO_CONSUMERS);
    cr_assert_eq(d->err, WR_OK);
    t_call_free(d);
    cr_assert_not(a->ended);
    t_cons_free(a);
}

Test(consumer, auto_delete_after_last_consumer)
{
    wr_queue_attrs_t ad = {.auto_delete = true};
    t_cons_t *a = t_cons_new(), *b = t_cons_new();
    wr_sub_opts_t o = {0};
    t_call_t *d;

    cr_assert_eq(t_declare("t", "ad", &ad), WR_OK);
    /* Never had a consumer: stays. */
    t_sleep_ms(20);
    cr_assert_eq(t_declare("t", "ad", NULL), WR_OK);
    cr_assert_eq(t_subscribe(a, "t", "ad", &o), WR_OK);
    cr_assert_eq(t_subscribe(b, "t", "ad", &o), WR_OK);
    t_call_free(t_unsubscribe("t", "ad", a->sub_id, true));
    d = t_declare_full("t", "ad", NULL, NULL, WR_DECL_PASSIVE);
    cr_assert_eq(d->err, WR_OK);
    cr_assert_eq(d->consumers, 1);
    t_call_free(d);
    t_call_free(t_unsubscribe("t", "ad", b->sub_id, true));
    d = t_declare_full("t", "ad", NULL, NULL, WR_DECL_PASSIVE);
    cr_assert_eq(d->err, WR_ENOTFOUND);
    t_call_free(d);
    t_cons_free(a);
    t_cons_free(b);
}

Test(consumer, expires_counts_consumers)
{
    wr_queue_attrs_t ex = {.expires_ms = 200};
    t_cons_t *a = t_cons_new();

    cr_assert_eq(t_declare("t", "xq", &ex), WR_OK);
    cr_assert_eq(t_subscribe(a, "t", "xq", &(wr_sub_opts_t){0}), WR_OK);
    t_sleep_ms(600);
    /* Checked with stat: a declare would count as use. */
    t_call_t *s = t_stat("t", "xq");
    cr_assert_eq(s->err, WR_OK);
    t_call_free(s);
    t_call_free(t_unsubscribe("t", "xq", a->sub_id, true));
    t_sleep_ms(700);
    s = t_stat("t", "xq");
    cr_assert_eq(s->err, WR_ENOTFOUND);
    t_call_free(s);
    /* The consumer of an expired queue hears of it. */
    t_cons_free(a);
}

Test(consumer, owner_gone_requeues)
{
    t_cons_t *a = t_cons_new(), *b = t_cons_new();
    wr_sub_opts_t o = {.owner = 42};

    cr_assert_eq(t_declare("t", "og", NULL), WR_OK);
    pub_n("og", 0, 3);
    cr_assert_eq(t_subscribe(a, "t", "og", &o), WR_OK);
    t_cons_settle(a, 3);
    t_call_t *g = t_call_new();
    cr_assert_eq(wr_owner_gone(T.core, 42, T.loop, t_on_count, g), WR_OK);
    t_wait(g);
    cr_assert_eq(g->count, 0);
    t_call_free(g);
    t_call_t *s = stat("og");
    cr_assert_eq(s->stat.claimed, 0);
    cr_assert_eq(s->stat.total, 3);
    t_call_free(s);
    /* The owner's subscription is gone (no end notice: its owner is). */
    cr_assert_not(a->ended);
    cr_assert_eq(t_subscribe(b, "t", "og", &(wr_sub_opts_t){0}), WR_OK);
    cr_assert_eq(b->consumers, 1);
    t_cons_settle(b, 3);
    cr_assert(b->redelivered[0]);
    t_cons_free(a);
    t_cons_free(b);
}

Test(consumer, held_messages_do_not_expire)
{
    t_cons_t *a = t_cons_new();

    cr_assert_eq(t_declare("t", "he", NULL), WR_OK);
    wr_msg_in_t m[2] = {t_msg("short", 100, -1, 0), t_msg("short2", 100, -1, 0)};
    t_call_free(t_publish_msgs("t", "he", m, 2, 0));
    cr_assert_eq(t_subscribe(a, "t", "he", &(wr_sub_opts_t){0}), WR_OK);
    t_cons_settle(a, 2);
    t_sleep_ms(400);
    t_call_t *s = stat("he");
    cr_assert_eq(s->stat.total, 2);
    t_call_free(s);
    ack_range(a, "he", 0, 1);
    /* Released, the other is past its TTL: it goes, never redelivered. */
    t_call_free(t_unsubscribe("t", "he", a->sub_id, true));
    s = stat("he");
    cr_assert_eq(s->stat.total, 0);
    cr_assert_eq(s->stat.expired, 1);
    t_call_free(s);
    t_cons_free(a);
}

/* Many messages, one consumer with a big prefetch: batches, not one post
 * per message. */
Test(consumer, batches)
{
    t_cons_t *a = t_cons_new();

    cr_assert_eq(t_declare("t", "bt", NULL), WR_OK);
    cr_assert_eq(t_subscribe(a, "t", "bt", &(wr_sub_opts_t){.no_ack = true}), WR_OK);
    for (int i = 0; i < 4; i++)
        t_call_free(t_publish_n("t", "bt", 500, 0, -1, 0, 0));
    t_cons_settle(a, 2000);
    cr_assert_leq(a->batches, 40, "batches %zu", a->batches);
    t_cons_free(a);
}

Test(consumer, counts_ready_unacked_consumers)
{
    t_cons_t *a = t_cons_new(), *b = t_cons_new();

    cr_assert_eq(t_declare("t", "cnt", NULL), WR_OK);
    pub_n("cnt", 0, 10);
    cr_assert_eq(t_subscribe(a, "t", "cnt", &(wr_sub_opts_t){.prefetch = 3}), WR_OK);
    cr_assert_eq(t_subscribe(b, "t", "cnt", &(wr_sub_opts_t){.prefetch = 2}), WR_OK);
    t_cons_settle(a, 3);
    t_cons_settle(b, 2);
    t_call_t *s = stat("cnt");
    cr_assert_eq(s->stat.ready, 5);
    cr_assert_eq(s->stat.unacked, 5);
    cr_assert_eq(s->stat.consumers, 2);
    cr_assert_eq(s->stat.total, 10);
    t_call_free(s);
    t_call_t *d = t_declare_full("t", "cnt", NULL, NULL, WR_DECL_PASSIVE);
    cr_assert_eq(d->messages, 5);
    cr_assert_eq(d->consumers, 2);
    t_call_free(d);
    ack_range(a, "cnt", 0, 3);
    s = stat("cnt");
    cr_assert_eq(s->stat.ready, 5);
    cr_assert_eq(s->stat.unacked, 2);
    t_call_free(s);
    t_call_t *m = t_metrics();
    bool found = false;
    for (size_t i = 0; i < m->nqueues; i++)
        if (strcmp(m->qm_names[i], "t/cnt") == 0) {
            found = true;
            cr_assert_eq(m->qm[i].consumers, 2);
            cr_assert_eq(m->qm[i].ready, 5);
            cr_assert_eq(m->qm[i].claimed, 2);
        }
    cr_assert(found);
    t_call_free(m);
}

Test(consumer, owner_gone_exclusive_queue_is_quiet)
{
    wr_queue_attrs_t own = {.exclusive = true, .owner = 77};
    t_cons_t *a = t_cons_new();

    cr_assert_eq(t_declare("t", "mine", &own), WR_OK);
    cr_assert_eq(t_subscribe(a, "t", "mine", &(wr_sub_opts_t){.owner = 77}), WR_OK);
    t_call_t *g = t_call_new();
    cr_assert_eq(wr_owner_gone(T.core, 77, T.loop, t_on_count, g), WR_OK);
    t_wait(g);
    cr_assert_eq(g->count, 1);
    t_call_free(g);
    t_sleep_ms(50);
    cr_assert_not(a->ended);
    t_call_t *s = t_stat("t", "mine");
    cr_assert_eq(s->err, WR_ENOTFOUND);
    t_call_free(s);
}
