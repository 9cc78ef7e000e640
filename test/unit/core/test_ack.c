/*
 * test_ack.c - wr_ack and wr_release (requeue order and redelivered flag,
 * reject without a dead-letter exchange), and basic.get's held claims
 * (owner_hold): no expiry, ready count, freed when acked, released by the
 * owner going.
 */
#include "helpers.h"

TestSuite(ack, .init = t_setup, .fini = t_teardown, .timeout = 30);

static t_call_t *ack(const char *q, uint64_t claim, const uint64_t *ids, size_t n)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_ack(T.core, S("t"), S(q), claim, ids, n, T.loop, t_on_count, c), WR_OK);
    return t_wait(c);
}

static t_call_t *release(const char *q, uint64_t claim, const uint64_t *ids, size_t n,
                         unsigned flags)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_release(T.core, S("t"), S(q), claim, ids, n, flags, T.loop, t_on_count, c),
                 WR_OK);
    return t_wait(c);
}

static t_call_t *get(const char *q, uint64_t owner)
{
    t_call_t *c = t_call_new();
    wr_claim_opts_t o = {.limit = 1, .owner_hold = true, .owner = owner};
    cr_assert_eq(wr_claim(T.core, S("t"), S(q), &o, T.loop, t_on_msgs, c), WR_OK);
    return t_wait(c);
}

static void pub_n(const char *q, int n)
{
    for (int i = 0; i < n; i++) {
        char b[16];
        snprintf(b, sizeof(b), "%d", i);
        t_pub1("t", q, b);
    }
}

Test(ack, ack_subscription_deliveries)
{
    t_cons_t *c = t_cons_new();
    t_call_t *r;
    uint64_t bogus[2];

    cr_assert_eq(t_declare("t", "a", NULL), WR_OK);
    pub_n("a", 6);
    cr_assert_eq(t_subscribe(c, "t", "a", &(wr_sub_opts_t){0}), WR_OK);
    t_cons_settle(c, 6);
    r = ack("a", c->sub_id, c->ids, 2);
    cr_assert_eq(r->err, WR_OK);
    cr_assert_eq(r->count, 2);
    t_call_free(r);
    /* Acked twice, wrong claim, unknown ids: ignored. */
    r = ack("a", c->sub_id, c->ids, 2);
    cr_assert_eq(r->count, 0);
    t_call_free(r);
    r = ack("a", 12345, &c->ids[2], 1);
    cr_assert_eq(r->count, 0);
    t_call_free(r);
    bogus[0] = 1;
    bogus[1] = c->ids[2];
    r = ack("a", c->sub_id, bogus, 2);
    cr_assert_eq(r->count, 1);
    t_call_free(r);
    /* Fire and forget. */
    cr_assert_eq(wr_ack(T.core, S("t"), S("a"), c->sub_id, &c->ids[3], 3, NULL, NULL, NULL),
                 WR_OK);
    for (int i = 0; i < 200 && t_depth("t", "a"); i++)
        t_sleep_ms(5);
    cr_assert_eq(t_depth("t", "a"), 0);
    r = ack("nosuch", 1, c->ids, 1);
    cr_assert_eq(r->err, WR_ENOTFOUND);
    t_call_free(r);
    t_cons_free(c);
}

Test(ack, requeue_order_and_redelivered)
{
    t_cons_t *c = t_cons_new();
    t_call_t *r;

    cr_assert_eq(t_declare("t", "rq", NULL), WR_OK);
    pub_n("rq", 5);
    cr_assert_eq(t_subscribe(c, "t", "rq", &(wr_sub_opts_t){.prefetch = 5}), WR_OK);
    t_cons_settle(c, 5);
    /* Release 3 then 1: they come back by id order, ahead of "5". */
    uint64_t ids[2] = {c->ids[3], c->ids[1]};
    r = release("rq", c->sub_id, ids, 2, WR_REL_REQUEUE);
    cr_assert_eq(r->count, 2);
    t_call_free(r);
    t_pub1("t", "rq", "5");
    t_cons_settle(c, 5); /* no credit yet */
    t_call_free(t_credit("t", "rq", c->sub_id, 3));
    t_cons_settle(c, 8);
    cr_assert_str_eq(c->bodies[5], "1");
    cr_assert_str_eq(c->bodies[6], "3");
    cr_assert_str_eq(c->bodies[7], "5");
    cr_assert(c->redelivered[5] && c->redelivered[6]);
    cr_assert_not(c->redelivered[7]);
    cr_assert_eq(c->dcount[5], 2);
    cr_assert_eq(c->ids[5], ids[1]);
    t_cons_free(c);
}

Test(ack, reject_without_dlx_drops)
{
    t_cons_t *c = t_cons_new();
    t_call_t *r;

    cr_assert_eq(t_declare("t", "rj", NULL), WR_OK);
    pub_n("rj", 3);
    cr_assert_eq(t_subscribe(c, "t", "rj", &(wr_sub_opts_t){0}), WR_OK);
    t_cons_settle(c, 3);
    r = release("rj", c->sub_id, c->ids, 2, 0);
    cr_assert_eq(r->count, 2);
    t_call_free(r);
    r = release("rj", c->sub_id, &c->ids[2], 1, WR_REL_DEADLETTER);
    cr_assert_eq(r->count, 1);
    t_call_free(r);
    cr_assert_eq(t_depth("t", "rj"), 0);
    t_cons_settle(c, 3);
    t_cons_free(c);
}

Test(ack, basic_get_held_claims)
{
    t_call_t *g, *r;

    cr_assert_eq(t_declare("t", "g", NULL), WR_OK);
    pub_n("g", 3);
    g = get("g", 9);
    cr_assert_eq(g->err, WR_OK);
    cr_assert_eq(g->n, 1);
    cr_assert_str_eq(t_body(&g->msgs[0]), "0");
    cr_assert_neq(g->claim_id, 0);
    cr_assert_eq(g->msgs[0].claim_id, g->claim_id);
    cr_assert_eq(g->msgs[0].expires_ms, INT64_MAX);

    /* Held claims cannot be renewed, and do not lapse. */
    r = t_claim_renew("t", "g", g->claim_id, 1000, 0);
    cr_assert_eq(r->err, WR_EINVAL);
    t_call_free(r);

    t_call_t *g2 = get("g", 9);
    cr_assert_str_eq(t_body(&g2->msgs[0]), "1");
    t_call_t *g3 = get("g", 10);
    cr_assert_str_eq(t_body(&g3->msgs[0]), "2");
    t_call_t *e = get("g", 9);
    cr_assert_eq(e->n, 0);
    t_call_free(e);

    /* Ack: the claim goes with its last message. */
    r = ack("g", g->claim_id, g->ids, 1);
    cr_assert_eq(r->count, 1);
    t_call_free(r);
    r = t_claim_release("t", "g", g->claim_id);
    cr_assert_eq(r->count, 0);
    t_call_free(r);

    /* Owner 9 goes: its held message comes back; owner 10's stays. */
    r = t_call_new();
    cr_assert_eq(wr_owner_gone(T.core, 9, T.loop, t_on_count, r), WR_OK);
    t_wait(r);
    t_call_free(r);
    t_call_t *s = t_stat("t", "g");
    cr_assert_eq(s->stat.total, 2);
    cr_assert_eq(s->stat.claimed, 1);
    t_call_free(s);
    /* Channel close: release by claim id. */
    r = t_claim_release("t", "g", g3->claim_id);
    cr_assert_eq(r->count, 1);
    t_call_free(r);
    t_call_t *again = get("g", 11);
    cr_assert_eq(again->n, 1);
    cr_assert_str_eq(t_body(&again->msgs[0]), "1");
    cr_assert(again->msgs[0].redelivered);
    cr_assert_eq(again->ready, 1);
    t_call_free(again);
    t_call_free(g);
    t_call_free(g2);
    t_call_free(g3);
}

Test(ack, release_timed_claim_messages)
{
    t_call_t *c, *r;

    cr_assert_eq(t_declare("t", "tc", NULL), WR_OK);
    pub_n("tc", 3);
    c = t_claim("t", "tc", 3, 60000, 0);
    cr_assert_eq(c->n, 3);
    r = release("tc", c->claim_id, &c->ids[1], 1, WR_REL_REQUEUE);
    cr_assert_eq(r->count, 1);
    t_call_free(r);
    r = ack("tc", c->claim_id, c->ids, 1);
    cr_assert_eq(r->count, 1);
    t_call_free(r);
    t_call_t *p = t_pop("t", "tc", 10);
    cr_assert_eq(p->n, 1);
    cr_assert_str_eq(t_body(&p->msgs[0]), "1");
    t_call_free(p);
    t_call_free(c);
}
