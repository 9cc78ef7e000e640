/*
 * test_list.c - reading without consuming: message list paging and flags,
 * get by ids, and the queue list gathered from every shard.
 */
#include "helpers.h"

TestSuite(list, .init = t_setup, .fini = t_teardown, .timeout = 20);

Test(list, paging_no_gaps_no_duplicates)
{
    t_call_t *p = t_publish_n("t", "pg", 47, 0, -1, 0, WR_PUB_CREATE);
    uint64_t marker = 0;
    size_t seen = 0, pages = 0;

    for (;;) {
        t_call_t *c = t_list("t", "pg", marker, 10, 0, 0);
        cr_assert_eq(c->err, WR_OK);
        for (size_t i = 0; i < c->n; i++)
            cr_assert_eq(c->msgs[i].id, p->ids[seen + i]);
        seen += c->n;
        if (c->n == 0) {
            cr_assert_eq(c->next_marker, marker);
            t_call_free(c);
            break;
        }
        cr_assert_eq(c->next_marker, c->msgs[c->n - 1].id);
        marker = c->next_marker;
        pages++;
        t_call_free(c);
    }
    cr_assert_eq(seen, 47);
    cr_assert_eq(pages, 5);
    t_call_free(p);

    /* A missing queue lists empty. */
    t_call_t *c = t_list("t", "missing", 0, 10, 0, 0);
    cr_assert_eq(c->err, WR_OK);
    cr_assert_eq(c->n, 0);
    t_call_free(c);
}

Test(list, paging_skips_deleted)
{
    t_call_t *p = t_publish_n("t", "pd", 10, 0, -1, 0, WR_PUB_CREATE);
    t_call_t *c = t_list("t", "pd", 0, 3, 0, 0);
    uint64_t marker = c->next_marker;
    t_call_free(c);
    t_call_free(t_delete("t", "pd", &p->ids[3], 2, 0, false));
    c = t_list("t", "pd", marker, 3, 0, 0);
    cr_assert_eq(c->n, 3);
    cr_assert_eq(c->msgs[0].id, p->ids[5]);
    t_call_free(c);
    t_call_free(p);
}

Test(list, flags_claimed_and_own)
{
    wr_msg_in_t m[4] = {t_msg("a", 0, -1, 1), t_msg("b", 0, -1, 2), t_msg("c", 0, -1, 1),
                        t_msg("d", 0, -1, 2)};
    t_call_t *p = t_publish_msgs("t", "f", m, 4, WR_PUB_CREATE);
    t_call_t *cl = t_claim("t", "f", 1, 5000, 0); /* claims "a" */

    t_call_t *c = t_list("t", "f", 0, 10, 0, 0);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(t_body(&c->msgs[0]), "b");
    cr_assert_eq(c->msgs[0].claim_id, 0);
    t_call_free(c);

    c = t_list("t", "f", 0, 10, WR_LIST_CLAIMED, 0);
    cr_assert_eq(c->n, 4);
    cr_assert_eq(c->msgs[0].claim_id, cl->claim_id);
    cr_assert_eq(c->msgs[0].producer, 1);
    t_call_free(c);

    c = t_list("t", "f", 0, 10, WR_LIST_CLAIMED | WR_LIST_HIDE_OWN, 2);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(t_body(&c->msgs[0]), "a");
    cr_assert_str_eq(t_body(&c->msgs[1]), "c");
    t_call_free(c);
    t_call_free(cl);
    t_call_free(p);
}

Test(list, get_by_ids_in_given_order)
{
    t_call_t *p = t_publish_n("t", "g", 5, 0, -1, 0, WR_PUB_CREATE);
    uint64_t ids[4] = {p->ids[3], 42, p->ids[0], p->ids[4]};
    t_call_t *cl = t_claim("t", "g", 1, 5000, 0);
    t_call_t *c = t_get("t", "g", ids, 4);
    cr_assert_eq(c->err, WR_OK);
    cr_assert_eq(c->n, 3);
    cr_assert_eq(c->msgs[0].id, p->ids[3]);
    cr_assert_eq(c->msgs[1].id, p->ids[0]);
    cr_assert_eq(c->msgs[1].claim_id, cl->claim_id); /* claimed ones too */
    cr_assert_eq(c->msgs[2].id, p->ids[4]);
    cr_assert_str_eq(t_body(&c->msgs[0]), "m3");
    t_call_free(c);
    c = t_get("t", "nope", ids, 4);
    cr_assert_eq(c->err, WR_ENOTFOUND);
    t_call_free(c);
    t_call_free(cl);
    t_call_free(p);
}

Test(list, queue_list_sorted_paged_tenants_isolated)
{
    char name[32];
    /* 37 queues for tenant a, spread over both shards; 5 for tenant b. */
    for (int i = 36; i >= 0; i--) {
        snprintf(name, sizeof(name), "q%03d", i);
        t_call_free(t_declare_full("a", name, NULL, i == 7 ? "meta7" : NULL, 0));
    }
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "q%03d", i);
        cr_assert_eq(t_declare("b", name, NULL), WR_OK);
    }
    t_call_free(t_declare_full("ab", "x", NULL, NULL, 0));

    char marker[32] = "";
    int seen = 0;
    for (;;) {
        t_call_t *c = t_qlist("a", marker, 10, true);
        cr_assert_eq(c->err, WR_OK);
        for (size_t i = 0; i < c->n; i++) {
            snprintf(name, sizeof(name), "q%03d", seen + (int)i);
            cr_assert_str_eq(c->names[i], name);
            if (seen + i == 7)
                cr_assert_str_eq(c->qmeta[i], "meta7");
        }
        seen += (int)c->n;
        if (!c->more) {
            t_call_free(c);
            break;
        }
        cr_assert_eq(c->n, 10);
        strcpy(marker, c->names[c->n - 1]);
        t_call_free(c);
    }
    cr_assert_eq(seen, 37);

    t_call_t *c = t_qlist("b", "", 100, false);
    cr_assert_eq(c->n, 5);
    cr_assert_not(c->more);
    cr_assert_str_eq(c->names[4], "q004");
    t_call_free(c);
    c = t_qlist("b", "q004", 100, false);
    cr_assert_eq(c->n, 0);
    t_call_free(c);
    c = t_qlist("nobody", "", 100, false);
    cr_assert_eq(c->n, 0);
    cr_assert_not(c->more);
    t_call_free(c);
    /* Exactly limit left: no "more". */
    c = t_qlist("b", "", 5, false);
    cr_assert_eq(c->n, 5);
    cr_assert_not(c->more);
    t_call_free(c);
}

Test(list, metrics_gather)
{
    t_call_free(t_publish_n("t", "m1", 4, 0, -1, 0, WR_PUB_CREATE));
    t_call_free(t_publish_n("u", "m2", 2, 0, -1, 0, WR_PUB_CREATE));
    t_call_t *cl = t_claim("t", "m1", 1, 5000, 0);
    t_call_t *c = t_metrics();
    cr_assert_eq(c->nshards, 2);
    cr_assert_eq(c->nqueues, 2);
    for (size_t i = 0; i < c->nqueues; i++) {
        if (strcmp(c->qm_names[i], "t/m1") == 0) {
            cr_assert_eq(c->qm[i].ready, 3);
            cr_assert_eq(c->qm[i].claimed, 1);
            cr_assert_eq(c->qm[i].published, 4);
            cr_assert_eq(c->qm[i].delivered, 1);
        } else {
            cr_assert_str_eq(c->qm_names[i], "u/m2");
            cr_assert_eq(c->qm[i].ready, 2);
            cr_assert_eq(c->qm[i].bytes, 4);
        }
    }
    cr_assert_eq(c->sm[0].queues + c->sm[1].queues, 2);
    cr_assert_gt(c->sm[0].requests + c->sm[1].requests, 3);
    t_call_free(c);
    t_call_free(cl);
}
