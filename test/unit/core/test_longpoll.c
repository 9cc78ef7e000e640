/*
 * test_longpoll.c - claims that wait: woken by a publish, timing out with
 * nothing, parked on a queue that does not exist yet, ended by a queue
 * delete, and completed by wr_core_stop.
 */
#include "helpers.h"

TestSuite(longpoll, .init = t_setup, .fini = t_teardown, .timeout = 20);

Test(longpoll, woken_by_publish)
{
    cr_assert_eq(t_declare("t", "lp", NULL), WR_OK);
    t_call_t *w = t_claim_start("t", "lp", 5, 5000, 0, 5000, false);
    t_sleep_ms(100);
    cr_assert_not(t_is_done(w));
    t_call_t *s = t_stat("t", "lp");
    cr_assert_eq(s->stat.waiters, 1);
    t_call_free(s);

    int64_t t0 = wr_now_mono_ms();
    uint64_t id = t_pub1("t", "lp", "hello");
    t_wait(w);
    cr_assert_lt(wr_now_mono_ms() - t0, 1000);
    cr_assert_eq(w->err, WR_OK);
    cr_assert_eq(w->n, 1);
    cr_assert_eq(w->msgs[0].id, id);
    cr_assert_neq(w->claim_id, 0);
    cr_assert_str_eq(t_body(&w->msgs[0]), "hello");
    t_call_free(w);
}

Test(longpoll, waiters_served_fifo)
{
    cr_assert_eq(t_declare("t", "ff", NULL), WR_OK);
    t_call_t *w1 = t_claim_start("t", "ff", 1, 5000, 0, 5000, false);
    t_sleep_ms(50);
    t_call_t *w2 = t_claim_start("t", "ff", 1, 5000, 0, 5000, true);
    t_sleep_ms(50);
    t_call_t *p = t_publish_n("t", "ff", 2, 0, -1, 0, 0);
    t_wait(w1);
    t_wait(w2);
    cr_assert_eq(w1->n, 1);
    cr_assert_eq(w1->msgs[0].id, p->ids[0]);
    cr_assert_eq(w2->n, 1);
    cr_assert_eq(w2->msgs[0].id, p->ids[1]);
    cr_assert_eq(w2->claim_id, 0); /* a pop */
    t_call_free(w1);
    t_call_free(w2);
    t_call_free(p);
}

Test(longpoll, times_out_with_nothing)
{
    cr_assert_eq(t_declare("t", "to", NULL), WR_OK);
    int64_t t0 = wr_now_mono_ms();
    t_call_t *w = t_wait(t_claim_start("t", "to", 5, 5000, 0, 200, false));
    int64_t took = wr_now_mono_ms() - t0;
    cr_assert_eq(w->err, WR_OK);
    cr_assert_eq(w->n, 0);
    cr_assert_eq(w->claim_id, 0);
    cr_assert_geq(took, 190);
    cr_assert_lt(took, 2000);
    t_call_free(w);
    t_call_t *s = t_stat("t", "to");
    cr_assert_eq(s->stat.waiters, 0);
    t_call_free(s);
}

Test(longpoll, queue_created_later)
{
    t_call_t *w = t_claim_start("t", "later", 5, 5000, 0, 5000, false);
    t_sleep_ms(100);
    cr_assert_not(t_is_done(w));
    uint64_t id = t_pub1("t", "later", "first"); /* WR_PUB_CREATE */
    t_wait(w);
    cr_assert_eq(w->n, 1);
    cr_assert_eq(w->msgs[0].id, id);
    t_call_free(w);

    /* Parked on a name that never appears: times out cleanly. */
    w = t_wait(t_claim_start("t", "never", 5, 5000, 0, 150, false));
    cr_assert_eq(w->n, 0);
    t_call_free(w);
}

Test(longpoll, queue_declared_then_published)
{
    t_call_t *w = t_claim_start("t", "decl", 5, 5000, 0, 5000, false);
    t_sleep_ms(50);
    cr_assert_eq(t_declare("t", "decl", NULL), WR_OK);
    t_sleep_ms(50);
    cr_assert_not(t_is_done(w));
    t_call_t *s = t_stat("t", "decl");
    cr_assert_eq(s->stat.waiters, 1);
    t_call_free(s);
    t_pub1("t", "decl", "x");
    t_wait(w);
    cr_assert_eq(w->n, 1);
    t_call_free(w);
}

Test(longpoll, queue_delete_completes_waiters)
{
    cr_assert_eq(t_declare("t", "del", NULL), WR_OK);
    t_call_t *w1 = t_claim_start("t", "del", 5, 5000, 0, 10000, false);
    t_call_t *w2 = t_claim_start("t", "del", 5, 5000, 0, 10000, false);
    t_sleep_ms(100);
    t_call_t *d = t_qdelete("t", "del", WR_DEL_IF_EMPTY);
    cr_assert_eq(d->err, WR_OK);
    t_call_free(d);
    t_wait(w1);
    t_wait(w2);
    cr_assert_eq(w1->n, 0);
    cr_assert_eq(w2->n, 0);
    t_call_free(w1);
    t_call_free(w2);
}

Test(longpoll, woken_by_release_and_delay)
{
    t_call_free(t_publish_n("t", "rel", 1, 0, -1, 0, WR_PUB_CREATE));
    t_call_t *a = t_claim("t", "rel", 1, 5000, 0);
    t_call_t *w = t_claim_start("t", "rel", 1, 5000, 0, 5000, false);
    t_sleep_ms(50);
    cr_assert_not(t_is_done(w));
    t_call_free(t_claim_release("t", "rel", a->claim_id));
    t_wait(w);
    cr_assert_eq(w->n, 1);
    cr_assert(w->msgs[0].redelivered);
    t_call_free(w);
    t_call_free(a);

    /* A delayed message wakes a waiter once visible (the sweep). */
    wr_msg_in_t m = t_msg("late", 0, 300, 0);
    t_call_free(t_publish_msgs("t", "rel", &m, 1, 0));
    w = t_claim_start("t", "rel", 1, 5000, 0, 5000, false);
    t_sleep_ms(100);
    cr_assert_not(t_is_done(w));
    t_wait(w);
    cr_assert_eq(w->n, 1);
    cr_assert_str_eq(t_body(&w->msgs[0]), "late");
    t_call_free(w);
}

Test(longpoll, stop_completes_waiters)
{
    cr_assert_eq(t_declare("t", "st", NULL), WR_OK);
    t_call_t *w1 = t_claim_start("t", "st", 5, 5000, 0, 15000, false);
    t_call_t *w2 = t_claim_start("t", "not-yet", 5, 5000, 0, 15000, false);
    t_sleep_ms(100);
    int64_t t0 = wr_now_mono_ms();
    wr_core_stop(T.core);
    cr_assert_lt(wr_now_mono_ms() - t0, 2000);
    /* Callbacks ran before wr_core_stop returned. */
    cr_assert(t_is_done(w1));
    cr_assert(t_is_done(w2));
    cr_assert_eq(w1->n, 0);
    cr_assert_eq(w2->n, 0);
    cr_assert_eq(w1->calls, 1);
    t_call_free(w1);
    t_call_free(w2);
}
