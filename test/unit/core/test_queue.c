/*
 * test_queue.c - queues and publishing through the public API: declare,
 * stat, FIFO and ids, TTL, delay, limits, purge, delete, argument checks,
 * and the "callbacks never run inside the call" rule.
 */
#include "helpers.h"

TestSuite(queue, .init = t_setup, .fini = t_teardown, .timeout = 20);

Test(queue, declare_stat_update)
{
    wr_queue_attrs_t a = {.default_ttl_ms = 60000, .max_length = 10};
    t_call_t *c = t_declare_full("t", "q1", &a, "{\"x\":1}", 0);
    cr_assert_eq(c->err, WR_OK);
    cr_assert(c->created);
    t_call_free(c);

    /* Existing: keeps attributes and metadata without UPDATE. */
    wr_queue_attrs_t b = {.default_ttl_ms = 5};
    c = t_declare_full("t", "q1", &b, "other", 0);
    cr_assert_eq(c->err, WR_OK);
    cr_assert_not(c->created);
    t_call_free(c);
    c = t_stat("t", "q1");
    cr_assert_eq(c->err, WR_OK);
    cr_assert_eq(c->stat.attrs.default_ttl_ms, 60000);
    cr_assert_eq(c->stat.attrs.max_length, 10);
    cr_assert_str_eq(c->meta, "{\"x\":1}");
    cr_assert(c->stat.created_ms > 0);
    cr_assert_eq(c->stat.total, 0);
    cr_assert_not(c->stat.has_oldest);
    t_call_free(c);

    c = t_declare_full("t", "q1", &b, "other", WR_DECL_UPDATE);
    cr_assert_eq(c->err, WR_OK);
    t_call_free(c);
    c = t_stat("t", "q1");
    cr_assert_eq(c->stat.attrs.default_ttl_ms, 5);
    cr_assert_eq(c->stat.meta.len, 5);
    cr_assert_eq(memcmp(c->meta, "other", 5), 0);
    t_call_free(c);

    c = t_declare_full("t", "nope", NULL, NULL, WR_DECL_PASSIVE);
    cr_assert_eq(c->err, WR_ENOTFOUND);
    t_call_free(c);
    c = t_stat("t", "nope");
    cr_assert_eq(c->err, WR_ENOTFOUND);
    t_call_free(c);
}

Test(queue, publish_missing_queue_notfound)
{
    wr_msg_in_t m = t_msg("x", 0, -1, 0);
    t_call_t *c = t_publish_msgs("t", "missing", &m, 1, 0);
    cr_assert_eq(c->err, WR_ENOTFOUND);
    cr_assert_eq(c->n, 0);
    t_call_free(c);
    c = t_stat("t", "missing");
    cr_assert_eq(c->err, WR_ENOTFOUND);
    t_call_free(c);
}

Test(queue, fifo_and_increasing_ids)
{
    uint64_t prev = 0;
    t_call_t *p = t_publish_n("t", "fifo", 50, 0, -1, 0, WR_PUB_CREATE);
    cr_assert_eq(p->err, WR_OK);
    cr_assert_eq(p->n, 50);
    for (size_t i = 0; i < 50; i++) {
        cr_assert_gt(p->ids[i], prev);
        prev = p->ids[i];
    }
    /* A second batch continues the sequence. */
    t_call_t *p2 = t_publish_n("t", "fifo", 5, 0, -1, 0, 0);
    cr_assert_gt(p2->ids[0], prev);

    for (size_t i = 0; i < 50; i += 10) {
        t_call_t *c = t_claim("t", "fifo", 10, 5000, 0);
        cr_assert_eq(c->n, 10);
        for (size_t j = 0; j < 10; j++) {
            char want[16];
            snprintf(want, sizeof(want), "m%zu", i + j);
            cr_assert_eq(c->msgs[j].id, p->ids[i + j]);
            cr_assert_str_eq(t_body(&c->msgs[j]), want);
        }
        t_call_free(c);
    }
    t_call_free(p);
    t_call_free(p2);
}

Test(queue, recreated_queue_never_reuses_ids)
{
    uint64_t id1 = t_pub1("t", "re", "a");
    t_call_free(t_qdelete("t", "re", 0));
    uint64_t id2 = t_pub1("t", "re", "b");
    cr_assert_gt(id2, id1);
}

Test(queue, ttl_expiry)
{
    t_call_t *p = t_publish_n("t", "ttl", 3, 200, -1, 0, WR_PUB_CREATE);
    uint64_t keep = t_pub1("t", "ttl", "forever");
    t_call_t *c = t_stat("t", "ttl");
    cr_assert_eq(c->stat.total, 4);
    t_call_free(c);

    /* Listed with its TTL and expiry before it passes. */
    c = t_list("t", "ttl", 0, 10, 0, 0);
    cr_assert_eq(c->n, 4);
    cr_assert_eq(c->msgs[0].ttl_ms, 200);
    cr_assert_eq(c->msgs[0].expires_ms, c->msgs[0].enqueued_ms + 200);
    cr_assert_eq(c->msgs[3].ttl_ms, 0);
    cr_assert_eq(c->msgs[3].expires_ms, INT64_MAX);
    t_call_free(c);

    t_sleep_ms(300);
    c = t_list("t", "ttl", 0, 10, WR_LIST_CLAIMED | WR_LIST_DELAYED, 0);
    cr_assert_eq(c->n, 1);
    cr_assert_eq(c->msgs[0].id, keep);
    t_call_free(c);
    c = t_get("t", "ttl", p->ids, 3);
    cr_assert_eq(c->n, 0);
    t_call_free(c);
    c = t_stat("t", "ttl");
    cr_assert_eq(c->stat.total, 1);
    cr_assert_eq(c->stat.bytes, strlen("forever"));
    cr_assert_eq(c->stat.expired, 3);
    cr_assert_eq(c->stat.oldest.id, keep);
    t_call_free(c);
    c = t_claim("t", "ttl", 10, 1000, 0);
    cr_assert_eq(c->n, 1);
    t_call_free(c);
    t_call_free(p);
}

Test(queue, default_ttl_from_queue)
{
    wr_queue_attrs_t a = {.default_ttl_ms = 150};
    cr_assert_eq(t_declare("t", "dttl", &a), WR_OK);
    t_pub1("t", "dttl", "x");
    t_call_t *c = t_list("t", "dttl", 0, 10, 0, 0);
    cr_assert_eq(c->n, 1);
    cr_assert_eq(c->msgs[0].ttl_ms, 150);
    t_call_free(c);
    t_sleep_ms(250);
    c = t_stat("t", "dttl");
    cr_assert_eq(c->stat.total, 0);
    t_call_free(c);
}

Test(queue, delay)
{
    wr_msg_in_t m = t_msg("later", 0, 200, 0);
    t_call_free(t_publish_msgs("t", "dl", &m, 1, WR_PUB_CREATE));
    uint64_t now_id = t_pub1("t", "dl", "now");

    t_call_t *c = t_stat("t", "dl");
    cr_assert_eq(c->stat.total, 2);
    cr_assert_eq(c->stat.delayed, 1);
    t_call_free(c);
    c = t_list("t", "dl", 0, 10, 0, 0);
    cr_assert_eq(c->n, 1);
    cr_assert_eq(c->msgs[0].id, now_id);
    t_call_free(c);
    c = t_list("t", "dl", 0, 10, WR_LIST_DELAYED, 0);
    cr_assert_eq(c->n, 2);
    t_call_free(c);
    c = t_claim("t", "dl", 10, 5000, 0);
    cr_assert_eq(c->n, 1);
    cr_assert_eq(c->msgs[0].id, now_id);
    t_call_free(c);

    t_sleep_ms(300);
    c = t_claim("t", "dl", 10, 5000, 0);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(t_body(&c->msgs[0]), "later");
    t_call_free(c);
}

Test(queue, default_delay_from_queue)
{
    wr_queue_attrs_t a = {.default_delay_ms = 200};
    cr_assert_eq(t_declare("t", "dd", &a), WR_OK);
    t_pub1("t", "dd", "x"); /* delay -1: the queue's */
    wr_msg_in_t m = t_msg("y", 0, 0, 0);
    t_call_free(t_publish_msgs("t", "dd", &m, 1, 0));
    t_call_t *c = t_claim("t", "dd", 10, 5000, 0);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(t_body(&c->msgs[0]), "y");
    t_call_free(c);
}

Test(queue, purge_leaves_claimed)
{
    t_call_free(t_publish_n("t", "pg", 5, 0, -1, 0, WR_PUB_CREATE));
    t_call_t *cl = t_claim("t", "pg", 2, 5000, 0);
    cr_assert_eq(cl->n, 2);
    t_call_t *c = t_purge("t", "pg");
    cr_assert_eq(c->err, WR_OK);
    cr_assert_eq(c->count, 3);
    t_call_free(c);
    c = t_stat("t", "pg");
    cr_assert_eq(c->stat.total, 2);
    cr_assert_eq(c->stat.claimed, 2);
    t_call_free(c);
    /* The claimed ones stay readable under their claim... */
    c = t_claim_get("t", "pg", cl->claim_id);
    cr_assert_eq(c->n, 2);
    t_call_free(c);
    /* ...and go when the claim ends (wr.h). */
    c = t_claim_release("t", "pg", cl->claim_id);
    t_call_free(c);
    c = t_stat("t", "pg");
    cr_assert_eq(c->stat.total, 0);
    t_call_free(c);
    t_call_free(cl);

    c = t_purge("t", "nope");
    cr_assert_eq(c->err, WR_ENOTFOUND);
    t_call_free(c);
}

Test(queue, max_length_drop_head)
{
    wr_queue_attrs_t a = {.max_length = 3};
    cr_assert_eq(t_declare("t", "ml", &a), WR_OK);
    t_call_t *p = t_publish_n("t", "ml", 5, 0, -1, 0, 0);
    cr_assert_eq(p->err, WR_OK);
    cr_assert_eq(p->n, 5);
    t_call_t *c = t_list("t", "ml", 0, 10, 0, 0);
    cr_assert_eq(c->n, 3);
    cr_assert_eq(c->msgs[0].id, p->ids[2]);
    cr_assert_eq(c->msgs[2].id, p->ids[4]);
    t_call_free(c);
    t_call_free(p);
}

Test(queue, max_length_reject)
{
    wr_queue_attrs_t a = {.max_length = 3, .overflow = WR_OVERFLOW_REJECT};
    cr_assert_eq(t_declare("t", "mr", &a), WR_OK);
    t_call_t *p = t_publish_n("t", "mr", 2, 0, -1, 0, 0);
    cr_assert_eq(p->err, WR_OK);
    t_call_free(p);
    /* All or none: two more would make 4. */
    p = t_publish_n("t", "mr", 2, 0, -1, 0, 0);
    cr_assert_eq(p->err, WR_EQUOTA);
    cr_assert_eq(p->n, 0);
    t_call_free(p);
    t_call_t *c = t_stat("t", "mr");
    cr_assert_eq(c->stat.total, 2);
    t_call_free(c);
    p = t_publish_n("t", "mr", 1, 0, -1, 0, 0);
    cr_assert_eq(p->err, WR_OK);
    t_call_free(p);
}

Test(queue, max_bytes)
{
    wr_queue_attrs_t a = {.max_bytes = 10, .overflow = WR_OVERFLOW_REJECT};
    cr_assert_eq(t_declare("t", "mb", &a), WR_OK);
    wr_msg_in_t m = t_msg("12345678", 0, -1, 0);
    t_call_t *p = t_publish_msgs("t", "mb", &m, 1, 0);
    cr_assert_eq(p->err, WR_OK);
    t_call_free(p);
    m = t_msg("123", 0, -1, 0);
    p = t_publish_msgs("t", "mb", &m, 1, 0);
    cr_assert_eq(p->err, WR_EQUOTA);
    t_call_free(p);

    wr_queue_attrs_t d = {.max_bytes = 10};
    cr_assert_eq(t_declare("t", "mbd", &d), WR_OK);
    m = t_msg("12345678", 0, -1, 0);
    t_call_free(t_publish_msgs("t", "mbd", &m, 1, 0));
    m = t_msg("123", 0, -1, 0);
    t_call_free(t_publish_msgs("t", "mbd", &m, 1, 0));
    t_call_t *c = t_stat("t", "mbd");
    cr_assert_eq(c->stat.total, 1);
    cr_assert_eq(c->stat.bytes, 3);
    t_call_free(c);
}

Test(queue, too_big)
{
    wr_core_free(T.core);
    wr_core_cfg_t cfg = {.shards = 2, .max_message_bytes = 16};
    cr_assert_eq(wr_core_new(&cfg, &T.core), WR_OK);
    cr_assert_eq(t_declare("t", "big", NULL), WR_OK);

    wr_msg_in_t m[2] = {t_msg("small", 0, -1, 0), t_msg("this body is too large", 0, -1, 0)};
    cr_assert_eq(wr_publish(T.core, S("t"), S("big"), m, 2, 0, T.loop, t_on_publish, NULL),
                 WR_ETOOBIG);

    /* The queue's batch limit is checked on the shard. */
    wr_queue_attrs_t a = {.max_post_bytes = 8};
    cr_assert_eq(t_declare("t", "post", &a), WR_OK);
    wr_msg_in_t m2[2] = {t_msg("12345", 0, -1, 0), t_msg("12345", 0, -1, 0)};
    t_call_t *p = t_publish_msgs("t", "post", m2, 2, 0);
    cr_assert_eq(p->err, WR_ETOOBIG);
    t_call_free(p);
    t_call_t *c = t_stat("t", "post");
    cr_assert_eq(c->stat.total, 0);
    t_call_free(c);
}

Test(queue, delete_queue_flags)
{
    t_call_free(t_publish_n("t", "dq", 3, 0, -1, 0, WR_PUB_CREATE));
    t_call_t *c = t_qdelete("t", "dq", WR_DEL_IF_EMPTY);
    cr_assert_eq(c->err, WR_EBUSY);
    t_call_free(c);
    t_call_t *cl = t_claim("t", "dq", 1, 5000, 0);
    c = t_qdelete("t", "dq", WR_DEL_IF_UNUSED);
    cr_assert_eq(c->err, WR_EBUSY);
    t_call_free(c);
    t_call_free(cl);
    c = t_qdelete("t", "dq", 0);
    cr_assert_eq(c->err, WR_OK);
    cr_assert_eq(c->count, 3);
    t_call_free(c);
    c = t_qdelete("t", "dq", 0);
    cr_assert_eq(c->err, WR_ENOTFOUND);
    t_call_free(c);
}

Test(queue, invalid_arguments)
{
    char longname[WR_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    wr_claim_opts_t o = {.limit = 1, .ttl_ms = 1000};

    cr_assert_eq(wr_queue_stat(T.core, S(""), S("q"), T.loop, t_on_stat, NULL), WR_EINVAL);
    cr_assert_eq(wr_queue_stat(T.core, S("t"), S(""), T.loop, t_on_stat, NULL), WR_EINVAL);
    cr_assert_eq(wr_queue_stat(T.core, S("t"), S(longname), T.loop, t_on_stat, NULL), WR_EINVAL);
    longname[WR_NAME_MAX] = '\0';
    cr_assert_eq(t_declare("t", longname, NULL), WR_OK);
    cr_assert_eq(wr_msg_list(T.core, S("t"), S("q"), 0, 0, 0, 0, T.loop, t_on_msgs, NULL),
                 WR_EINVAL);
    cr_assert_eq(wr_msg_list(T.core, S("t"), S("q"), 0, 1001, 0, 0, T.loop, t_on_msgs, NULL),
                 WR_EINVAL);
    o.limit = 0;
    cr_assert_eq(wr_claim(T.core, S("t"), S("q"), &o, T.loop, t_on_msgs, NULL), WR_EINVAL);
    o.limit = 1001;
    cr_assert_eq(wr_claim(T.core, S("t"), S("q"), &o, T.loop, t_on_msgs, NULL), WR_EINVAL);
    o.limit = 1;
    o.ttl_ms = 0;
    cr_assert_eq(wr_claim(T.core, S("t"), S("q"), &o, T.loop, t_on_msgs, NULL), WR_EINVAL);
    cr_assert_eq(wr_publish(T.core, S("t"), S("q"), NULL, 0, 0, T.loop, t_on_publish, NULL),
                 WR_EINVAL);
    wr_msg_in_t m = t_msg("x", -5, -1, 0); /* body reference passes to the core */
    cr_assert_eq(wr_publish(T.core, S("t"), S("q"), &m, 1, 0, T.loop, t_on_publish, NULL),
                 WR_EINVAL);
    char *meta = calloc(1, WR_META_MAX + 2);
    memset(meta, 'm', WR_META_MAX + 1);
    cr_assert_eq(wr_queue_declare(T.core, S("t"), S("q"), NULL, S(meta), 0, T.loop,
                                  t_on_declare, NULL),
                 WR_EINVAL);
    free(meta);
    cr_assert_eq(wr_queue_list(T.core, S("t"), S(""), 0, false, T.loop, t_on_qlist, NULL),
                 WR_EINVAL);
}

/* Runs on the test loop itself: the reply loop is the calling loop, so a
 * callback that ran inside the call would be seen here. */
typedef struct reentry {
    t_call_t *c;
    bool ran_inside;
} reentry_t;

static void reentry_task(void *arg)
{
    reentry_t *re = arg;
    cr_assert_eq(wr_queue_stat(T.core, S("t"), S("nope"), T.loop, t_on_stat, re->c), WR_OK);
    re->ran_inside = re->c->done;
}

Test(queue, callback_never_inside_call)
{
    reentry_t re = {.c = t_call_new()};
    wr_loop_post(T.loop, reentry_task, &re);
    t_wait(re.c);
    cr_assert_not(re.ran_inside);
    cr_assert_eq(re.c->calls, 1);
    t_call_free(re.c);
}

Test(queue, shutdown_refuses_calls)
{
    wr_core_stop(T.core);
    cr_assert_eq(wr_queue_stat(T.core, S("t"), S("q"), T.loop, t_on_stat, NULL), WR_ESHUTDOWN);
    wr_msg_in_t m = t_msg("x", 0, -1, 0);
    cr_assert_eq(wr_publish(T.core, S("t"), S("q"), &m, 1, WR_PUB_CREATE, T.loop, t_on_publish,
                            NULL),
                 WR_ESHUTDOWN);
}

Test(queue, shard_of_is_stable_and_spread)
{
    unsigned hits[2] = {0};
    char name[32];
    cr_assert_eq(wr_core_shards(T.core), 2);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "queue-%d", i);
        unsigned s = wr_core_shard_of(T.core, S("t"), S(name));
        cr_assert_lt(s, 2);
        cr_assert_eq(s, wr_core_shard_of(T.core, S("t"), S(name)));
        hits[s]++;
    }
    cr_assert_gt(hits[0], 400);
    cr_assert_gt(hits[1], 400);
    cr_assert_not_null(wr_core_loop(T.core, 1));
}

Test(queue, shard_of_matches_owner)
{
    char name[32];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "own-%d", i);
        cr_assert_eq(t_declare("tenant", name, NULL), WR_OK);
        unsigned s = wr_core_shard_of(T.core, S("tenant"), S(name));
        t_call_t *m = t_metrics();
        cr_assert_eq(m->sm[s].queues, 1);
        cr_assert_eq(m->sm[1 - s].queues, 0);
        t_call_free(m);
        t_call_free(t_qdelete("tenant", name, 0));
    }
}

/* A front end's JSON verdict stays with the body through the queue: on a
 * small body copied into its message and on a large one kept by
 * reference, while references come and go. */
Test(queue, body_json_mark_travels_with_the_body)
{
    char big[2048];
    wr_msg_in_t m[3];
    t_call_t *c;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    m[0] = t_msg("{\"a\":1}", 0, -1, 0);
    m[1] = t_msg("plain", 0, -1, 0);
    m[2] = t_msg(big, 0, -1, 0);
    wr_body_set_json(m[0].body, true);
    wr_body_set_json(m[2].body, false);
    cr_assert_eq(t_declare("t", "marks", NULL), WR_OK);
    t_call_free(t_publish_msgs("t", "marks", m, 3, 0));

    c = t_list("t", "marks", 0, 10, 0, 0);
    cr_assert_eq(c->n, 3);
    cr_assert_eq(wr_body_json(c->msgs[0].body), WR_BODY_JSON_YES);
    cr_assert_eq(wr_body_json(c->msgs[1].body), WR_BODY_JSON_UNKNOWN);
    cr_assert_eq(wr_body_json(c->msgs[2].body), WR_BODY_JSON_NO);
    /* Marked while the queue and this call both hold it: both see it. */
    wr_body_set_json(c->msgs[1].body, false);
    t_call_free(c);

    c = t_pop("t", "marks", 10);
    cr_assert_eq(c->n, 3);
    cr_assert_eq(wr_body_json(c->msgs[0].body), WR_BODY_JSON_YES);
    cr_assert_eq(wr_body_json(c->msgs[1].body), WR_BODY_JSON_NO);
    cr_assert_eq(wr_body_json(c->msgs[2].body), WR_BODY_JSON_NO);
    cr_assert_str_eq(t_body(&c->msgs[0]), "{\"a\":1}");
    cr_assert_eq(c->msgs[2].body->body_len, sizeof(big) - 1);
    t_call_free(c); /* the last references: ASan sees each block freed once */
    cr_assert_eq(t_depth("t", "marks"), 0);
}
