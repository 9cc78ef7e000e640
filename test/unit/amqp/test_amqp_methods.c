/*
 * test_amqp_methods.c - the parts of the messaging methods that need no
 * core: the property scanner (props.c), headers for the core, queue
 * arguments and their RabbitMQ texts, names, and the replies a connection
 * gives before any core call (reply codes of refused methods, qos, tx and
 * confirm modes, unknown delivery tags). The core side is covered by
 * test/integration/amqp with real clients.
 */
#include "amqp_test.h"
#include "frontends/amqp/amqp.h"

/* ------------------------------------------------------------------------ */
/* Properties                                                               */

static size_t encode_props(amqp_basic_properties_t *p, uint8_t *buf, size_t cap)
{
    amqp_bytes_t enc = {cap, buf};
    int n = amqp_encode_properties(AMQP_BASIC_CLASS, p, enc);
    cr_assert_geq(n, 0);
    return (size_t)n;
}

Test(props, scan_every_field)
{
    amqp_basic_properties_t p = {0};
    amqp_table_entry_t h[2];
    uint8_t buf[1024];
    wr_amqp_props_t out;
    size_t n;

    h[0].key = amqp_cstring_bytes("a");
    h[0].value.kind = AMQP_FIELD_KIND_I32;
    h[0].value.value.i32 = 7;
    h[1].key = amqp_cstring_bytes("s");
    h[1].value.kind = AMQP_FIELD_KIND_UTF8;
    h[1].value.value.bytes = amqp_cstring_bytes("str");
    p._flags = 0xFFFC; /* every field */
    p.content_type = amqp_cstring_bytes("text/plain");
    p.content_encoding = amqp_cstring_bytes("gzip");
    p.headers.num_entries = 2;
    p.headers.entries = h;
    p.delivery_mode = 2;
    p.priority = 7;
    p.correlation_id = amqp_cstring_bytes("c");
    p.reply_to = amqp_cstring_bytes("r");
    p.expiration = amqp_cstring_bytes("1500");
    p.message_id = amqp_cstring_bytes("m");
    p.timestamp = 12345;
    p.type = amqp_cstring_bytes("t");
    p.user_id = amqp_cstring_bytes("guest");
    p.app_id = amqp_cstring_bytes("app");
    p.cluster_id = amqp_cstring_bytes("cl");
    n = encode_props(&p, buf, sizeof(buf));
    cr_assert_eq(wr__amqp_props_scan(buf, n, &out), WR_OK);
    cr_assert_eq(out.flags, 0xFFFC);
    cr_assert_eq(out.delivery_mode, 2);
    cr_assert_eq(out.priority, 7);
    cr_assert_eq(out.expiration.len, 4);
    cr_assert_eq(memcmp(out.expiration.ptr, "1500", 4), 0);
    cr_assert_eq(out.user_id.len, 5);
    cr_assert(out.headers.len > 4);

    /* every truncation is refused, as is a trailing byte */
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(wr__amqp_props_scan(buf, i, &out), WR_EPROTO, "length %zu", i);
    buf[n] = 0;
    cr_assert_eq(wr__amqp_props_scan(buf, n + 1, &out), WR_EPROTO);
}

Test(props, continuation_and_empty)
{
    uint8_t none[2] = {0, 0}, cont[2] = {0, 1};
    wr_amqp_props_t out;

    cr_assert_eq(wr__amqp_props_scan(none, 2, &out), WR_OK);
    cr_assert_eq(out.flags, 0);
    cr_assert_eq(out.headers.len, 0);
    cr_assert_eq(wr__amqp_props_scan(cont, 2, &out), WR_EPROTO);
    cr_assert_eq(wr__amqp_props_scan(none, 1, &out), WR_EPROTO);
}

Test(props, deep_headers_refused)
{
    /* headers: a table nested deeper than WR_AMQP_TABLE_DEPTH */
    static uint8_t tbl[4096], tmp[4096], buf[4096];
    size_t tl = 4;
    wr_amqp_props_t out;

    memset(tbl, 0, 4); /* innermost: an empty table */
    for (int i = 0; i < WR_AMQP_TABLE_DEPTH + 2; i++) {
        size_t body = 3 + tl; /* key "k", kind 'F', the inner table */
        tmp[0] = (uint8_t)(body >> 24);
        tmp[1] = (uint8_t)(body >> 16);
        tmp[2] = (uint8_t)(body >> 8);
        tmp[3] = (uint8_t)body;
        tmp[4] = 1;
        tmp[5] = 'k';
        tmp[6] = 'F';
        memcpy(tmp + 7, tbl, tl);
        tl += 7;
        memcpy(tbl, tmp, tl);
    }
    buf[0] = 0x20; /* headers flag */
    buf[1] = 0;
    memcpy(buf + 2, tbl, tl);
    cr_assert_eq(wr__amqp_props_scan(buf, 2 + tl, &out), WR_EPROTO);
    /* the same, shallow enough, is fine */
    memcpy(buf + 2, tbl + 7 * 3, tl - 7 * 3);
    cr_assert_eq(wr__amqp_props_scan(buf, 2 + tl - 7 * 3, &out), WR_OK);
}

Test(props, defaults_for_rest)
{
    wr_slice_t s = wr__amqp_props_default(true);
    wr_amqp_props_t out;

    cr_assert_eq(wr__amqp_props_scan(s.ptr, s.len, &out), WR_OK);
    cr_assert_eq(out.flags, AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG);
    cr_assert_eq(out.delivery_mode, 2);
    s = wr__amqp_props_default(false);
    cr_assert_eq(wr__amqp_props_scan(s.ptr, s.len, &out), WR_OK);
    cr_assert_eq(out.delivery_mode, 1);
}

Test(props, expiration)
{
    int64_t ms = -1;

    cr_assert(wr__amqp_expiration((wr_slice_t){"0", 1}, &ms));
    cr_assert_eq(ms, 0);
    cr_assert(wr__amqp_expiration((wr_slice_t){"60000", 5}, &ms));
    cr_assert_eq(ms, 60000);
    cr_assert_not(wr__amqp_expiration((wr_slice_t){"", 0}, &ms));
    cr_assert_not(wr__amqp_expiration((wr_slice_t){"-1", 2}, &ms));
    cr_assert_not(wr__amqp_expiration((wr_slice_t){"1.5", 3}, &ms));
    cr_assert_not(wr__amqp_expiration((wr_slice_t){" 1", 2}, &ms));
    cr_assert_not(wr__amqp_expiration((wr_slice_t){"1234567890123456789", 19}, &ms));
}

/* ------------------------------------------------------------------------ */
/* Headers                                                                  */

Test(headers, kinds)
{
    amqp_table_entry_t e[7], inner_e;
    amqp_table_t t = {7, e};
    amqp_pool_t pool;
    wr_header_t h[8];
    size_t n;

    inner_e.key = amqp_cstring_bytes("x");
    inner_e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    inner_e.value.value.boolean = 1;
    e[0].key = amqp_cstring_bytes("i8");
    e[0].value.kind = AMQP_FIELD_KIND_I8;
    e[0].value.value.i8 = -3;
    e[1].key = amqp_cstring_bytes("u32");
    e[1].value.kind = AMQP_FIELD_KIND_U32;
    e[1].value.value.u32 = 4000000000u;
    e[2].key = amqp_cstring_bytes("str");
    e[2].value.kind = AMQP_FIELD_KIND_UTF8;
    e[2].value.value.bytes = amqp_cstring_bytes("v");
    e[3].key = amqp_cstring_bytes("f64");
    e[3].value.kind = AMQP_FIELD_KIND_F64;
    e[3].value.value.f64 = 2.5;
    e[4].key = amqp_cstring_bytes("void");
    e[4].value.kind = AMQP_FIELD_KIND_VOID;
    e[5].key = amqp_cstring_bytes("tbl");
    e[5].value.kind = AMQP_FIELD_KIND_TABLE;
    e[5].value.value.table.num_entries = 1;
    e[5].value.value.table.entries = &inner_e;
    e[6].key = amqp_cstring_bytes("bool");
    e[6].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    e[6].value.value.boolean = 0;

    init_amqp_pool(&pool, 1024);
    cr_assert_eq(wr__amqp_headers_table(&t, &pool, h, 8, &n), WR_OK);
    cr_assert_eq(n, 7);
    cr_assert_eq(h[0].kind, WR_HDR_INT);
    cr_assert_eq(h[0].v.i, -3);
    cr_assert_eq(h[1].kind, WR_HDR_INT);
    cr_assert_eq(h[1].v.i, 4000000000LL);
    cr_assert_eq(h[2].kind, WR_HDR_STR);
    cr_assert_eq(h[2].v.s.len, 1);
    cr_assert_eq(h[3].kind, WR_HDR_FLOAT);
    cr_assert_float_eq(h[3].v.f, 2.5, 1e-9);
    cr_assert_eq(h[4].kind, WR_HDR_VOID);
    cr_assert_eq(h[5].kind, WR_HDR_OTHER);
    cr_assert_eq(((const uint8_t *)h[5].v.s.ptr)[0], 'F'); /* the kind tag first */
    cr_assert_eq(h[6].kind, WR_HDR_BOOL);
    cr_assert_not(h[6].v.b);
    /* more than max: refused */
    cr_assert_eq(wr__amqp_headers_table(&t, &pool, h, 3, &n), WR_EINVAL);
    empty_amqp_pool(&pool);
}

/* ------------------------------------------------------------------------ */
/* Queue arguments                                                          */

static bool qargs(amqp_table_entry_t *e, int n, wr_queue_attrs_t *a, char *why)
{
    amqp_table_t t = {n, e};
    memset(a, 0, sizeof(*a));
    return wr__amqp_queue_args(&t, a, why, 200);
}

static amqp_table_entry_t ent_int(const char *k, int64_t v)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(k);
    e.value.kind = AMQP_FIELD_KIND_I64;
    e.value.value.i64 = v;
    return e;
}

static amqp_table_entry_t ent_str(const char *k, const char *v)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(k);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(v);
    return e;
}

Test(qargs, good)
{
    amqp_table_entry_t e[] = {
        ent_int("x-message-ttl", 1000),
        ent_int("x-expires", 5000),
        ent_int("x-max-length", 10),
        ent_int("x-max-length-bytes", 100),
        ent_str("x-overflow", "reject-publish-dlx"),
        ent_str("x-dead-letter-exchange", "dlx"),
        ent_str("x-dead-letter-routing-key", "rk"),
        ent_int("x-max-priority", 9),
        ent_str("x-queue-type", "classic"),
    };
    wr_queue_attrs_t a;
    char why[200];

    cr_assert(qargs(e, 9, &a, why), "%s", why);
    cr_assert_eq(a.default_ttl_ms, 1000);
    cr_assert_eq(a.expires_ms, 5000);
    cr_assert_eq(a.max_length, 10);
    cr_assert_eq(a.max_bytes, 100);
    cr_assert_eq(a.overflow, WR_OVERFLOW_REJECT_DLX);
    cr_assert(a.dlx_set);
    cr_assert_eq(a.dlx_len, 3);
    cr_assert(a.dlrk_set);
    cr_assert_eq(a.max_priority, 9);

    e[0] = ent_int("x-message-ttl", 0); /* 0: the shortest TTL */
    cr_assert(qargs(e, 1, &a, why));
    cr_assert_eq(a.default_ttl_ms, 1);
}

Test(qargs, bad)
{
    struct {
        amqp_table_entry_t e;
        const char *text;
    } cases[] = {
        {ent_int("x-message-ttl", -1), "invalid arg 'x-message-ttl': {value_negative,-1}"},
        {ent_str("x-message-ttl", "1"), "invalid arg 'x-message-ttl': {unacceptable_type,longstr}"},
        {ent_int("x-expires", 0), "invalid arg 'x-expires': {value_zero,0}"},
        {ent_int("x-expires", -2), "invalid arg 'x-expires': {value_negative,-2}"},
        {ent_int("x-max-length", -1), "invalid arg 'x-max-length': {value_negative,-1}"},
        {ent_int("x-max-length-bytes", -1),
         "invalid arg 'x-max-length-bytes': {value_negative,-1}"},
        {ent_str("x-overflow", "nope"),
         "invalid arg 'x-overflow': {unknown_overflow_type,<<\"nope\">>}"},
        {ent_int("x-max-priority", 256), "invalid arg 'x-max-priority': {value_too_large,256,255}"},
        {ent_int("x-dead-letter-exchange", 1),
         "invalid arg 'x-dead-letter-exchange': {unacceptable_type,long}"},
        {ent_str("x-dead-letter-routing-key", "k"),
         "invalid arg 'x-dead-letter-routing-key': {routing_key_but_no_dlx_defined}"},
    };
    wr_queue_attrs_t a;
    char why[200];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_not(qargs(&cases[i].e, 1, &a, why), "case %zu", i);
        cr_assert_str_eq(why, cases[i].text);
    }
}

Test(names, random)
{
    char a[64], b[64];
    size_t n = wr__amqp_random_name(a, "amq.gen-");

    cr_assert_eq(n, strlen("amq.gen-") + 22);
    cr_assert_eq(strlen(a), n);
    cr_assert_eq(strncmp(a, "amq.gen-", 8), 0);
    for (size_t i = 8; i < n; i++)
        cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", a[i]));
    wr__amqp_random_name(b, "amq.gen-");
    cr_assert_str_neq(a, b);
}

/* ------------------------------------------------------------------------ */
/* Replies given before any core call                                       */

static void open1(tconn_t *t)
{
    tconn_init(t, true);
    tconn_open(t, 0);
    tconn_channel_open(t, 1);
}

Test(replies, unknown_exchange_type_is_503)
{
    tconn_t t;
    amqp_exchange_declare_t d = {0};

    d.exchange = amqp_cstring_bytes("x");
    d.type = amqp_cstring_bytes("x-consistent-hash");
    open1(&t);
    tconn_send(&t, 1, AMQP_EXCHANGE_DECLARE_METHOD, &d);
    tconn_expect_conn_close(&t, 503);
    tconn_fini(&t);
}

Test(replies, reserved_queue_name_is_403)
{
    tconn_t t;
    amqp_queue_declare_t d = {0};

    d.queue = amqp_cstring_bytes("amq.mine");
    open1(&t);
    tconn_send(&t, 1, AMQP_QUEUE_DECLARE_METHOD, &d);
    tconn_expect_chan_close(&t, 1, 403);
    tconn_fini(&t);
}

Test(replies, bad_queue_argument_text)
{
    tconn_t t;
    amqp_queue_declare_t d = {0};
    amqp_table_entry_t e = ent_int("x-expires", 0);
    amqp_channel_close_t *cl;
    const char *want = "PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'q1' in vhost '/': "
                       "{value_zero,0}";

    d.queue = amqp_cstring_bytes("q1");
    d.arguments.num_entries = 1;
    d.arguments.entries = &e;
    open1(&t);
    tconn_send(&t, 1, AMQP_QUEUE_DECLARE_METHOD, &d);
    cl = tconn_expect(&t, 1, AMQP_CHANNEL_CLOSE_METHOD);
    cr_assert_eq(cl->reply_code, 406);
    cr_assert_eq(cl->reply_text.len, strlen(want));
    cr_assert_eq(memcmp(cl->reply_text.bytes, want, strlen(want)), 0);
    tconn_fini(&t);
}

Test(replies, no_previous_queue_is_404)
{
    tconn_t t;
    amqp_queue_purge_t p = {0};

    p.queue = amqp_cstring_bytes("");
    open1(&t);
    tconn_send(&t, 1, AMQP_QUEUE_PURGE_METHOD, &p);
    tconn_expect_chan_close(&t, 1, 404);
    tconn_fini(&t);
}

Test(replies, qos)
{
    tconn_t t;
    amqp_basic_qos_t q = {0, 10, 0}, g = {0, 5, 1}, sz = {4096, 0, 0};

    open1(&t);
    tconn_send(&t, 1, AMQP_BASIC_QOS_METHOD, &q);
    tconn_expect(&t, 1, AMQP_BASIC_QOS_OK_METHOD);
    tconn_send(&t, 1, AMQP_BASIC_QOS_METHOD, &g);
    tconn_expect(&t, 1, AMQP_BASIC_QOS_OK_METHOD);
    cr_assert_eq(wr__amqp_chan_get(t.c, 1)->prefetch, 10);
    cr_assert_eq(wr__amqp_chan_get(t.c, 1)->prefetch_global, 5);
    tconn_send(&t, 1, AMQP_BASIC_QOS_METHOD, &sz);
    tconn_expect_conn_close(&t, 540);
    tconn_fini(&t);
}

Test(replies, unknown_delivery_tag)
{
    tconn_t t;
    amqp_basic_ack_t a = {5, 0};
    amqp_basic_nack_t n = {0, 1, 1};
    amqp_basic_reject_t r = {1, 0};
    amqp_channel_close_t *cl;

    open1(&t);
    /* multiple with tag 0 and nothing outstanding: fine */
    tconn_send(&t, 1, AMQP_BASIC_NACK_METHOD, &n);
    tconn_expect_nothing(&t);
    tconn_send(&t, 1, AMQP_BASIC_ACK_METHOD, &a);
    cl = tconn_expect(&t, 1, AMQP_CHANNEL_CLOSE_METHOD);
    cr_assert_eq(cl->reply_code, 406);
    cr_assert_eq(cl->reply_text.len, strlen("PRECONDITION_FAILED - unknown delivery tag 5"));
    tconn_channel_open(&t, 2);
    tconn_send(&t, 2, AMQP_BASIC_REJECT_METHOD, &r);
    tconn_expect_chan_close(&t, 2, 406);
    tconn_fini(&t);
}

Test(replies, tx_and_confirm_modes)
{
    tconn_t t;
    amqp_tx_select_t ts = {0};
    amqp_tx_commit_t tc = {0};
    amqp_tx_rollback_t tr = {0};
    amqp_confirm_select_t cs = {0};
    amqp_basic_ack_t a = {1, 0};

    open1(&t);
    tconn_send(&t, 1, AMQP_TX_SELECT_METHOD, &ts);
    tconn_expect(&t, 1, AMQP_TX_SELECT_OK_METHOD);
    /* an ack in a transaction is checked at commit */
    tconn_send(&t, 1, AMQP_BASIC_ACK_METHOD, &a);
    tconn_expect_nothing(&t);
    tconn_send(&t, 1, AMQP_TX_ROLLBACK_METHOD, &tr);
    tconn_expect(&t, 1, AMQP_TX_ROLLBACK_OK_METHOD);
    tconn_send(&t, 1, AMQP_TX_COMMIT_METHOD, &tc);
    tconn_expect(&t, 1, AMQP_TX_COMMIT_OK_METHOD);
    tconn_send(&t, 1, AMQP_CONFIRM_SELECT_METHOD, &cs);
    tconn_expect_chan_close(&t, 1, 406);

    tconn_channel_open(&t, 2);
    tconn_send(&t, 2, AMQP_CONFIRM_SELECT_METHOD, &cs);
    tconn_expect(&t, 2, AMQP_CONFIRM_SELECT_OK_METHOD);
    cs.nowait = 1;
    tconn_send(&t, 2, AMQP_CONFIRM_SELECT_METHOD, &cs);
    tconn_expect_nothing(&t);
    tconn_send(&t, 2, AMQP_TX_SELECT_METHOD, &ts);
    tconn_expect_chan_close(&t, 2, 406);
    tconn_fini(&t);
}

Test(replies, commit_checks_buffered_acks)
{
    tconn_t t;
    amqp_tx_select_t ts = {0};
    amqp_tx_commit_t tc = {0};
    amqp_basic_ack_t a = {3, 0};

    open1(&t);
    tconn_send(&t, 1, AMQP_TX_SELECT_METHOD, &ts);
    tconn_expect(&t, 1, AMQP_TX_SELECT_OK_METHOD);
    tconn_send(&t, 1, AMQP_BASIC_ACK_METHOD, &a);
    tconn_send(&t, 1, AMQP_TX_COMMIT_METHOD, &tc);
    tconn_expect_chan_close(&t, 1, 406);
    tconn_fini(&t);
}

Test(replies, cancel_unknown_and_recover)
{
    tconn_t t;
    amqp_basic_cancel_t c = {amqp_cstring_bytes("nobody"), 0};
    amqp_basic_cancel_ok_t *ok;
    amqp_basic_recover_t r = {1};

    open1(&t);
    tconn_send(&t, 1, AMQP_BASIC_CANCEL_METHOD, &c);
    ok = tconn_expect(&t, 1, AMQP_BASIC_CANCEL_OK_METHOD);
    cr_assert_eq(ok->consumer_tag.len, 6);
    tconn_send(&t, 1, AMQP_BASIC_RECOVER_METHOD, &r);
    tconn_expect(&t, 1, AMQP_BASIC_RECOVER_OK_METHOD);
    r.requeue = 0;
    tconn_send(&t, 1, AMQP_BASIC_RECOVER_METHOD, &r);
    tconn_expect_conn_close(&t, 540);
    tconn_fini(&t);
}

/* ------------------------------------------------------------------------ */
/* Dead-letter properties hook                                              */

static wr_body_t *body_with_props(amqp_basic_properties_t *p, const char *body)
{
    uint8_t buf[1024];
    size_t n;

    buf[0] = WR_AMQP_PROPS_091;
    n = encode_props(p, buf + 1, sizeof(buf) - 1);
    return wr_body_new((wr_slice_t){buf, n + 1}, (wr_slice_t){body, strlen(body)});
}

static const amqp_field_value_t *hget(const amqp_table_t *t, const char *k)
{
    for (int i = 0; i < t->num_entries; i++) {
        if (t->entries[i].key.len == strlen(k) &&
            memcmp(t->entries[i].key.bytes, k, strlen(k)) == 0)
            return &t->entries[i].value;
    }
    return NULL;
}

static amqp_basic_properties_t *decode_body_props(const wr_body_t *b, amqp_pool_t *pool)
{
    void *d;
    amqp_bytes_t raw = {b->props_len - 1, (void *)(b->data + 1)};

    cr_assert_eq(b->data[0], WR_AMQP_PROPS_091);
    cr_assert_geq(amqp_decode_properties(AMQP_BASIC_CLASS, pool, raw, &d), 0);
    return d;
}

Test(deadletter, x_death)
{
    amqp_basic_properties_t p = {0}, *q;
    amqp_table_entry_t h = {amqp_cstring_bytes("keep"),
                            {AMQP_FIELD_KIND_UTF8, {.bytes = {2, "me"}}}};
    wr_deadletter_info_t info = {0};
    wr_body_t *in, *out, *out2;
    const amqp_field_value_t *xd, *v;
    amqp_pool_t pool;

    p._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
    p.headers.num_entries = 1;
    p.headers.entries = &h;
    p.expiration = amqp_cstring_bytes("500");
    p.message_id = amqp_cstring_bytes("mid");
    in = body_with_props(&p, "payload");
    info.reason = "expired";
    info.queue = (wr_slice_t){"q1", 2};
    info.exchange = (wr_slice_t){"ex", 2};
    info.routing_key = (wr_slice_t){"rk", 2};

    out = wr_amqp_deadletter_props(NULL, in, &info);
    cr_assert_not_null(out);
    cr_assert_eq(out->body_len, 7);
    cr_assert_eq(memcmp(wr_body_bytes(out), "payload", 7), 0);
    init_amqp_pool(&pool, 4096);
    q = decode_body_props(out, &pool);
    cr_assert_not(q->_flags & AMQP_BASIC_EXPIRATION_FLAG);
    cr_assert(q->_flags & AMQP_BASIC_MESSAGE_ID_FLAG);
    cr_assert_not_null(hget(&q->headers, "keep"));
    xd = hget(&q->headers, "x-death");
    cr_assert_not_null(xd);
    cr_assert_eq(xd->kind, AMQP_FIELD_KIND_ARRAY);
    cr_assert_eq(xd->value.array.num_entries, 1);
    v = hget(&xd->value.array.entries[0].value.table, "count");
    cr_assert_eq(v->value.i64, 1);
    v = hget(&xd->value.array.entries[0].value.table, "original-expiration");
    cr_assert_eq(v->value.bytes.len, 3);
    v = hget(&q->headers, "x-first-death-reason");
    cr_assert_eq(v->value.bytes.len, strlen("expired"));

    /* the same queue and reason again: count 2, still one entry */
    out2 = wr_amqp_deadletter_props(NULL, out, &info);
    q = decode_body_props(out2, &pool);
    xd = hget(&q->headers, "x-death");
    cr_assert_eq(xd->value.array.num_entries, 1);
    cr_assert_eq(hget(&xd->value.array.entries[0].value.table, "count")->value.i64, 2);
    /* another reason: a new entry first */
    info.reason = "rejected";
    wr_body_unref(out);
    out = wr_amqp_deadletter_props(NULL, out2, &info);
    q = decode_body_props(out, &pool);
    xd = hget(&q->headers, "x-death");
    cr_assert_eq(xd->value.array.num_entries, 2);
    v = hget(&xd->value.array.entries[0].value.table, "reason");
    cr_assert_eq(v->value.bytes.len, strlen("rejected"));
    v = hget(&q->headers, "x-first-death-reason");
    cr_assert_eq(v->value.bytes.len, strlen("expired")); /* unchanged */
    empty_amqp_pool(&pool);
    wr_body_unref(in);
    wr_body_unref(out);
    wr_body_unref(out2);

    /* no AMQP properties (REST): unchanged */
    in = wr_body_new((wr_slice_t){NULL, 0}, (wr_slice_t){"{}", 2});
    cr_assert_null(wr_amqp_deadletter_props(NULL, in, &info));
    wr_body_unref(in);
}
