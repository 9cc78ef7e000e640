/*
 * test_claim.c - claims: limits, best effort, expiry and redelivery, pop,
 * get/renew/release, and the delete rules of wr.h.
 */
#include "helpers.h"

TestSuite(claim, .init = t_setup, .fini = t_teardown, .timeout = 20);

Test(claim, limit_and_best_effort)
{
    t_call_free(t_publish_n("t", "c", 5, 0, -1, 0, WR_PUB_CREATE));
    t_call_t *a = t_claim("t", "c", 3, 5000, 1000);
    cr_assert_eq(a->err, WR_OK);
    cr_assert_eq(a->n, 3);
    cr_assert_neq(a->claim_id, 0);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(a->msgs[i].claim_id, a->claim_id);
        cr_assert_eq(a->msgs[i].claim_count, 1);
        cr_assert_not(a->msgs[i].redelivered);
    }
    t_call_t *b = t_claim("t", "c", 10, 5000, 1000);
    cr_assert_eq(b->n, 2); /* best effort: only two left */
    cr_assert_neq(b->claim_id, a->claim_id);
    cr_assert_gt(b->msgs[0].id, a->msgs[2].id);
    t_call_t *c = t_claim("t", "c", 10, 5000, 1000);
    cr_assert_eq(c->n, 0);
    cr_assert_eq(c->claim_id, 0);
    t_call_free(a);
    t_call_free(b);
    t_call_free(c);

    /* Missing queue without wait: empty, no error. */
    c = t_claim("t", "none", 10, 5000, 0);
    cr_assert_eq(c->err, WR_OK);
    cr_assert_eq(c->n, 0);
    t_call_free(c);

    t_call_t *s = t_stat("t", "c");
    cr_assert_eq(s->stat.claimed, 5);
    cr_assert_eq(s->stat.delivered, 5);
    t_call_free(s);
}

Test(claim, grace_extends_message_life)
{
    t_call_free(t_publish_n("t", "g", 1, 100, -1, 0, WR_PUB_CREATE));
    t_call_t *a = t_claim("t", "g", 1, 300, 200);
    cr_assert_eq(a->n, 1);
    cr_assert_geq(a->msgs[0].expires_ms, a->msgs[0].enqueued_ms + 500);
    /* Past its own TTL, still alive under the claim. */
    t_sleep_ms(200);
    t_call_t *g = t_get("t", "g", a->ids, 1);
    cr_assert_eq(g->n, 1);
    t_call_free(g);
    t_call_free(a);
}

Test(claim, expiry_redelivers)
{
    t_call_free(t_publish_n("t", "x", 2, 0, -1, 0, WR_PUB_CREATE));
    t_call_t *a = t_claim("t", "x", 2, 200, 0);
    cr_assert_eq(a->n, 2);
    t_call_t *b = t_claim("t", "x", 2, 200, 0);
    cr_assert_eq(b->n, 0);
    t_call_free(b);

    t_sleep_ms(300);
    b = t_claim("t", "x", 2, 5000, 0);
    cr_assert_eq(b->n, 2);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(b->msgs[i].id, a->msgs[i].id);
        cr_assert(b->msgs[i].redelivered);
        cr_assert_eq(b->msgs[i].claim_count, 2);
    }
    /* The first claim is over: its id no longer deletes. */
    t_call_t *d = t_delete("t", "x", a->ids, 2, a->claim_id, false);
    cr_assert_eq(d->err, WR_EINVAL);
    t_call_free(d);
    t_call_t *g = t_claim_get("t", "x", a->claim_id);
    cr_assert_eq(g->err, WR_ENOTFOUND);
    t_call_free(g);
    d = t_delete("t", "x", b->ids, 2, b->claim_id, false);
    cr_assert_eq(d->err, WR_OK);
    cr_assert_eq(d->count, 2);
    t_call_free(d);
    t_call_t *s = t_stat("t", "x");
    cr_assert_eq(s->stat.total, 0);
    cr_assert_eq(s->stat.acked, 2);
    cr_assert_eq(s->stat.delivered, 4);
    t_call_free(s);
    t_call_free(a);
    t_call_free(b);
}

Test(claim, pop_deletes)
{
    t_call_t *p = t_publish_n("t", "p", 3, 0, -1, 0, WR_PUB_CREATE);
    t_call_t *a = t_pop("t", "p", 2);
    cr_assert_eq(a->n, 2);
    cr_assert_eq(a->claim_id, 0);
    cr_assert_eq(a->msgs[0].id, p->ids[0]);
    cr_assert_str_eq(t_body(&a->msgs[1]), "m1");
    t_call_t *s = t_stat("t", "p");
    cr_assert_eq(s->stat.total, 1);
    cr_assert_eq(s->stat.acked, 2);
    cr_assert_eq(s->stat.delivered, 2);
    t_call_free(s);
    t_call_t *g = t_get("t", "p", p->ids, 3);
    cr_assert_eq(g->n, 1);
    cr_assert_eq(g->msgs[0].id, p->ids[2]);
    t_call_free(g);
    t_call_free(a);
    t_call_free(p);
}

Test(claim, get_renew_release)
{
    t_call_free(t_publish_n("t", "r", 3, 0, -1, 0, WR_PUB_CREATE));
    t_call_t *a = t_claim("t", "r", 2, 300, 0);
    cr_assert_eq(a->n, 2);

    t_call_t *g = t_claim_get("t", "r", a->claim_id);
    cr_assert_eq(g->err, WR_OK);
    cr_assert_eq(g->n, 2);
    cr_assert_eq(g->claim_id, a->claim_id);
    cr_assert_eq(g->claim_ttl_ms, 300);
    cr_assert_geq(g->claim_age_ms, 0);
    t_call_free(g);

    t_sleep_ms(150);
    t_call_t *rn = t_claim_renew("t", "r", a->claim_id, 400, 100);
    cr_assert_eq(rn->err, WR_OK);
    cr_assert_eq(rn->count, 2);
    t_call_free(rn);
    t_sleep_ms(250); /* past the first TTL, inside the renewed one */
    g = t_claim_get("t", "r", a->claim_id);
    cr_assert_eq(g->err, WR_OK);
    cr_assert_eq(g->claim_ttl_ms, 400);
    cr_assert_lt(g->claim_age_ms, 350);
    cr_assert_geq(g->msgs[0].expires_ms, g->msgs[0].enqueued_ms + 500);
    t_call_free(g);

    t_call_t *rl = t_claim_release("t", "r", a->claim_id);
    cr_assert_eq(rl->err, WR_OK);
    cr_assert_eq(rl->count, 2);
    t_call_free(rl);
    g = t_claim_get("t", "r", a->claim_id);
    cr_assert_eq(g->err, WR_ENOTFOUND);
    t_call_free(g);
    rn = t_claim_renew("t", "r", a->claim_id, 400, 100);
    cr_assert_eq(rn->err, WR_ENOTFOUND);
    t_call_free(rn);
    rl = t_claim_release("t", "r", 12345);
    cr_assert_eq(rl->err, WR_OK);
    cr_assert_eq(rl->count, 0);
    t_call_free(rl);

    /* Released messages come back first, redelivered. */
    t_call_t *b = t_claim("t", "r", 3, 1000, 0);
    cr_assert_eq(b->n, 3);
    cr_assert_eq(b->msgs[0].id, a->msgs[0].id);
    cr_assert(b->msgs[0].redelivered);
    cr_assert_not(b->msgs[2].redelivered);
    t_call_free(b);
    t_call_free(a);
}

Test(claim, delete_rules)
{
    t_call_t *p = t_publish_n("t", "d", 4, 0, -1, 0, WR_PUB_CREATE);
    t_call_t *a = t_claim("t", "d", 2, 5000, 0); /* ids[0], ids[1] */
    t_call_t *d;

    /* Claimed, no claim id: denied, nothing deleted (ids[2] stays too). */
    uint64_t mix[2] = {p->ids[2], p->ids[0]};
    d = t_delete("t", "d", mix, 2, 0, false);
    cr_assert_eq(d->err, WR_EDENIED);
    t_call_free(d);
    /* Wrong claim, or a claim id on an unclaimed message: invalid. */
    d = t_delete("t", "d", &p->ids[0], 1, a->claim_id + 1, false);
    cr_assert_eq(d->err, WR_EINVAL);
    t_call_free(d);
    d = t_delete("t", "d", mix, 2, a->claim_id, false);
    cr_assert_eq(d->err, WR_EINVAL);
    t_call_free(d);
    t_call_t *s = t_stat("t", "d");
    cr_assert_eq(s->stat.total, 4);
    t_call_free(s);

    /* Right claim: deleted, counted as acked. Unknown ids are ignored. */
    uint64_t ok[2] = {p->ids[0], 999};
    d = t_delete("t", "d", ok, 2, a->claim_id, false);
    cr_assert_eq(d->err, WR_OK);
    cr_assert_eq(d->count, 1);
    t_call_free(d);
    /* Unclaimed without claim id: fine. */
    d = t_delete("t", "d", &p->ids[2], 1, 0, false);
    cr_assert_eq(d->err, WR_OK);
    cr_assert_eq(d->count, 1);
    t_call_free(d);
    /* Force: whatever the claim. */
    d = t_delete("t", "d", &p->ids[1], 1, 0, true);
    cr_assert_eq(d->err, WR_OK);
    cr_assert_eq(d->count, 1);
    t_call_free(d);
    s = t_stat("t", "d");
    cr_assert_eq(s->stat.total, 1);
    cr_assert_eq(s->stat.claimed, 0);
    cr_assert_eq(s->stat.acked, 2);
    t_call_free(s);
    /* Missing queue: nothing to delete. */
    d = t_delete("t", "nope", ok, 2, 0, false);
    cr_assert_eq(d->err, WR_OK);
    cr_assert_eq(d->count, 0);
    t_call_free(d);
    t_call_free(a);
    t_call_free(p);
}

Test(claim, many_claims_skip_claimed_head)
{
    /* Claims of one message each walk forward without rescanning. */
    t_call_t *p = t_publish_n("t", "h", 300, 0, -1, 0, WR_PUB_CREATE);
    for (size_t i = 0; i < 300; i++) {
        t_call_t *a = t_claim("t", "h", 1, 5000, 0);
        cr_assert_eq(a->n, 1);
        cr_assert_eq(a->msgs[0].id, p->ids[i]);
        t_call_free(a);
    }
    t_call_t *a = t_claim("t", "h", 1, 5000, 0);
    cr_assert_eq(a->n, 0);
    t_call_free(a);
    t_call_free(p);
}
