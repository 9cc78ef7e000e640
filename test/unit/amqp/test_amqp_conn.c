/*
 * test_amqp_conn.c - the connection and channel state machines, driven from
 * byte buffers (no socket): handshake, login refusals, channel rules, content
 * assembly, reply codes, heartbeats and timeouts.
 */
#include "amqp_test.h"

Test(handshake, full)
{
    tconn_t t;
    amqp_connection_start_t *s;
    amqp_connection_tune_t *tu;
    amqp_connection_tune_ok_t tok = {0, 0, 30};
    amqp_connection_open_t op = {amqp_cstring_bytes("/"), {0, NULL}, 0};
    const amqp_table_t *caps = NULL;

    tconn_init(&t, true);
    tconn_feed(&t, "AMQP", 4);
    tconn_expect_nothing(&t);
    tconn_feed(&t, "\0\0\x09\x01", 4);
    s = tconn_expect(&t, 0, AMQP_CONNECTION_START_METHOD);
    cr_assert_eq(s->version_major, 0);
    cr_assert_eq(s->version_minor, 9);
    cr_assert_eq(s->mechanisms.len, strlen("PLAIN AMQPLAIN"));
    cr_assert_eq(memcmp(s->mechanisms.bytes, "PLAIN AMQPLAIN", s->mechanisms.len), 0);
    for (int i = 0; i < s->server_properties.num_entries; i++) {
        amqp_table_entry_t *e = &s->server_properties.entries[i];
        if (e->key.len == 12 && memcmp(e->key.bytes, "capabilities", 12) == 0)
            caps = &e->value.value.table;
    }
    cr_assert_not_null(caps, "no capabilities table");
    cr_assert_eq(caps->num_entries, 9);
    bool blocked = false, reply_to = false;
    for (int i = 0; i < caps->num_entries; i++) {
        amqp_table_entry_t *e = &caps->entries[i];
        cr_assert_eq(e->value.kind, AMQP_FIELD_KIND_BOOLEAN);
        cr_assert(e->value.value.boolean);
        reply_to |= e->key.len == strlen("direct_reply_to") &&
                    memcmp(e->key.bytes, "direct_reply_to", e->key.len) == 0;
        blocked |= e->key.len == strlen("connection.blocked") &&
                   memcmp(e->key.bytes, "connection.blocked", e->key.len) == 0;
    }
    cr_assert(blocked, "connection.blocked (store full) is advertised");
    cr_assert(reply_to, "direct_reply_to (replyto.c) is advertised");

    tconn_start_ok(&t, "guest", "guest", false);
    tu = tconn_expect(&t, 0, AMQP_CONNECTION_TUNE_METHOD);
    cr_assert_eq(tu->channel_max, 2047);
    cr_assert_eq(tu->frame_max, 131072);
    cr_assert_eq(tu->heartbeat, 60);
    /* 0 = "no limit": ours apply. */
    tconn_send(&t, 0, AMQP_CONNECTION_TUNE_OK_METHOD, &tok);
    tconn_expect_nothing(&t);
    cr_assert_eq(t.c->frame_max, 131072);
    cr_assert_eq(t.c->channel_max, 2047);
    cr_assert_eq(t.c->heartbeat_s, 30);
    tconn_send(&t, 0, AMQP_CONNECTION_OPEN_METHOD, &op);
    tconn_expect(&t, 0, AMQP_CONNECTION_OPEN_OK_METHOD);
    cr_assert_str_eq(t.c->tenant, "default");
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_READ);
    tconn_fini(&t);
}

Test(handshake, pipelined_in_one_buffer)
{
    tconn_t t;
    amqp_connection_tune_ok_t tok = {100, 8192, 0};
    amqp_connection_open_t op = {amqp_cstring_bytes("tenant-a"), {0, NULL}, 0};
    amqp_channel_open_t co = {{0, NULL}};
    char resp[] = "\0guest\0guest";
    amqp_connection_start_ok_t so = {{0, NULL},
                                     amqp_cstring_bytes("PLAIN"),
                                     {sizeof(resp) - 1, resp},
                                     amqp_cstring_bytes("en_US")};

    tconn_init(&t, true);
    /* Everything a client could send before reading anything. */
    evbuffer_add(t.in, WR_AMQP_HEADER, 8);
    wr__amqp_write_method(t.in, 0, AMQP_CONNECTION_START_OK_METHOD, &so, 0);
    wr__amqp_write_method(t.in, 0, AMQP_CONNECTION_TUNE_OK_METHOD, &tok, 0);
    wr__amqp_write_method(t.in, 0, AMQP_CONNECTION_OPEN_METHOD, &op, 0);
    wr__amqp_write_method(t.in, 1, AMQP_CHANNEL_OPEN_METHOD, &co, 0);
    wr__amqp_conn_feed(t.c, t.in, t.now);
    tconn_expect(&t, 0, AMQP_CONNECTION_START_METHOD);
    tconn_expect(&t, 0, AMQP_CONNECTION_TUNE_METHOD);
    tconn_expect(&t, 0, AMQP_CONNECTION_OPEN_OK_METHOD);
    tconn_expect(&t, 1, AMQP_CHANNEL_OPEN_OK_METHOD);
    cr_assert_eq(evbuffer_get_length(t.in), 0);
    cr_assert_eq(t.c->frame_max, 8192);
    cr_assert_eq(t.c->channel_max, 100);
    cr_assert_str_eq(t.c->tenant, "tenant-a");
    tconn_fini(&t);
}

Test(handshake, bad_protocol_header)
{
    tconn_t t;
    uint8_t back[8];

    tconn_init(&t, true);
    tconn_feed(&t, "GET / HTTP/1.1\r\n", 16);
    cr_assert_eq(evbuffer_get_length(t.out), 8);
    evbuffer_remove(t.out, back, 8);
    cr_assert_eq(memcmp(back, "AMQP\0\0\x09\x01", 8), 0);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_FLUSH);
    tconn_fini(&t);
}

Test(handshake, old_protocol_version)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_feed(&t, "AMQP\x01\x01\x00\x09", 8);
    cr_assert_eq(evbuffer_get_length(t.out), 8);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_FLUSH);
    tconn_fini(&t);
}

Test(auth, wrong_password_with_auth_failure_close)
{
    tconn_t t;
    amqp_connection_close_t *cl;

    tconn_init(&t, true);
    tconn_feed(&t, WR_AMQP_HEADER, 8);
    tconn_expect(&t, 0, AMQP_CONNECTION_START_METHOD);
    tconn_start_ok(&t, "guest", "nope", true);
    cl = tconn_expect(&t, 0, AMQP_CONNECTION_CLOSE_METHOD);
    cr_assert_eq(cl->reply_code, 403);
    cr_assert_eq(atomic_load(&t.env.auth_failures), 1);
    /* Then only close-ok counts. */
    {
        amqp_connection_close_ok_t ok = {0};
        tconn_send(&t, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    }
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_FLUSH);
    tconn_fini(&t);
}

Test(auth, wrong_password_without_capability_just_closes)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_feed(&t, WR_AMQP_HEADER, 8);
    tconn_expect(&t, 0, AMQP_CONNECTION_START_METHOD);
    tconn_start_ok(&t, "guest", "nope", false);
    tconn_expect_nothing(&t);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_FLUSH);
    tconn_fini(&t);
}

Test(auth, guest_from_remote_refused)
{
    tconn_t t;
    amqp_connection_close_t *cl;

    tconn_init(&t, false);
    tconn_feed(&t, WR_AMQP_HEADER, 8);
    tconn_expect(&t, 0, AMQP_CONNECTION_START_METHOD);
    tconn_start_ok(&t, "guest", "guest", true);
    cl = tconn_expect(&t, 0, AMQP_CONNECTION_CLOSE_METHOD);
    cr_assert_eq(cl->reply_code, 403);
    tconn_fini(&t);
}

Test(auth, unknown_mechanism_just_closes)
{
    tconn_t t;
    amqp_connection_start_ok_t so = {{0, NULL},
                                     amqp_cstring_bytes("EXTERNAL"),
                                     amqp_cstring_bytes("x"),
                                     amqp_cstring_bytes("en_US")};

    tconn_init(&t, true);
    tconn_feed(&t, WR_AMQP_HEADER, 8);
    tconn_expect(&t, 0, AMQP_CONNECTION_START_METHOD);
    tconn_send(&t, 0, AMQP_CONNECTION_START_OK_METHOD, &so);
    tconn_expect_nothing(&t);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_FLUSH);
    tconn_fini(&t);
}

Test(handshake, frame_max_below_minimum_refused)
{
    tconn_t t;
    amqp_connection_tune_ok_t tok = {0, 1024, 0};

    tconn_init(&t, true);
    tconn_feed(&t, WR_AMQP_HEADER, 8);
    tconn_expect(&t, 0, AMQP_CONNECTION_START_METHOD);
    tconn_start_ok(&t, "guest", "guest", true);
    tconn_expect(&t, 0, AMQP_CONNECTION_TUNE_METHOD);
    tconn_send(&t, 0, AMQP_CONNECTION_TUNE_OK_METHOD, &tok);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_FLUSH);
    tconn_fini(&t);
}

Test(handshake, empty_vhost_refused_with_530)
{
    tconn_t t;
    amqp_connection_tune_ok_t tok = {0, 131072, 0};
    amqp_connection_open_t op = {{0, NULL}, {0, NULL}, 0};

    tconn_init(&t, true);
    tconn_feed(&t, WR_AMQP_HEADER, 8);
    tconn_expect(&t, 0, AMQP_CONNECTION_START_METHOD);
    tconn_start_ok(&t, "guest", "guest", true);
    tconn_expect(&t, 0, AMQP_CONNECTION_TUNE_METHOD);
    tconn_send(&t, 0, AMQP_CONNECTION_TUNE_OK_METHOD, &tok);
    tconn_send(&t, 0, AMQP_CONNECTION_OPEN_METHOD, &op);
    tconn_expect_conn_close(&t, 530);
    tconn_fini(&t);
}

Test(handshake, method_before_open_just_closes)
{
    tconn_t t;
    amqp_channel_open_t co = {{0, NULL}};

    tconn_init(&t, true);
    tconn_feed(&t, WR_AMQP_HEADER, 8);
    tconn_expect(&t, 0, AMQP_CONNECTION_START_METHOD);
    tconn_send(&t, 1, AMQP_CHANNEL_OPEN_METHOD, &co);
    tconn_expect_nothing(&t);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_FLUSH);
    tconn_fini(&t);
}

Test(channel, open_close)
{
    tconn_t t;
    amqp_channel_close_t cl = {200, amqp_cstring_bytes("bye"), 0, 0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_channel_open(&t, 2047);
    cr_assert_eq(atomic_load(&t.env.channels), 2);
    tconn_send(&t, 1, AMQP_CHANNEL_CLOSE_METHOD, &cl);
    tconn_expect(&t, 1, AMQP_CHANNEL_CLOSE_OK_METHOD);
    cr_assert_eq(atomic_load(&t.env.channels), 1);
    /* The id can be used again. */
    tconn_channel_open(&t, 1);
    tconn_fini(&t);
}

Test(channel, open_twice_is_504)
{
    tconn_t t;
    amqp_channel_open_t co = {{0, NULL}};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_send(&t, 1, AMQP_CHANNEL_OPEN_METHOD, &co);
    tconn_expect_conn_close(&t, 504);
    cr_assert_eq(atomic_load(&t.env.channels), 0);
    tconn_fini(&t);
}

Test(channel, unopened_is_504)
{
    tconn_t t;
    amqp_basic_qos_t q = {0, 10, 0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_send(&t, 3, AMQP_BASIC_QOS_METHOD, &q);
    tconn_expect_conn_close(&t, 504);
    tconn_fini(&t);
}

Test(channel, above_channel_max_is_530)
{
    tconn_t t;
    amqp_channel_open_t co = {{0, NULL}};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_send(&t, 2048, AMQP_CHANNEL_OPEN_METHOD, &co);
    tconn_expect_conn_close(&t, 530);
    tconn_fini(&t);
}

Test(channel, connection_method_on_channel_is_504)
{
    tconn_t t;
    amqp_connection_close_t cl = {200, amqp_cstring_bytes(""), 0, 0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_send(&t, 1, AMQP_CONNECTION_CLOSE_METHOD, &cl);
    tconn_expect_conn_close(&t, 504);
    tconn_fini(&t);
}

Test(channel, channel_method_on_channel_0_is_504)
{
    tconn_t t;
    amqp_channel_open_t co = {{0, NULL}};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_send(&t, 0, AMQP_CHANNEL_OPEN_METHOD, &co);
    tconn_expect_conn_close(&t, 504);
    tconn_fini(&t);
}

Test(channel, flow)
{
    tconn_t t;
    amqp_channel_flow_t fl = {0};
    amqp_channel_flow_ok_t *ok;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_send(&t, 1, AMQP_CHANNEL_FLOW_METHOD, &fl);
    ok = tconn_expect(&t, 1, AMQP_CHANNEL_FLOW_OK_METHOD);
    cr_assert_eq(ok->active, 0);
    cr_assert_eq(wr__amqp_chan_get(t.c, 1)->flow_active, false);
    fl.active = 1;
    tconn_send(&t, 1, AMQP_CHANNEL_FLOW_METHOD, &fl);
    ok = tconn_expect(&t, 1, AMQP_CHANNEL_FLOW_OK_METHOD);
    cr_assert_eq(ok->active, 1);
    tconn_fini(&t);
}

Test(channel, channel_exception_then_close_ok)
{
    tconn_t t;
    amqp_tx_commit_t tc = {0};
    amqp_basic_qos_t q = {0, 10, 0};
    amqp_channel_close_ok_t cok = {0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_channel_open(&t, 2);
    tconn_send(&t, 1, AMQP_TX_COMMIT_METHOD, &tc); /* not transactional: 406 */
    tconn_expect_chan_close(&t, 1, 406);
    /* Until close-ok, the channel ignores everything else... */
    tconn_send(&t, 1, AMQP_BASIC_QOS_METHOD, &q);
    tconn_expect_nothing(&t);
    /* ...the other channels go on... */
    tconn_send(&t, 2, AMQP_BASIC_QOS_METHOD, &q);
    tconn_expect(&t, 2, AMQP_BASIC_QOS_OK_METHOD);
    /* ...and close-ok frees it. */
    tconn_send(&t, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &cok);
    tconn_expect_nothing(&t);
    cr_assert_null(wr__amqp_chan_get(t.c, 1));
    tconn_channel_open(&t, 1);
    cr_assert_eq(t.c->state, WR_AMQP_S_OPEN);
    tconn_fini(&t);
}

Test(dispatch, unknown_method_is_540_connection)
{
    tconn_t t;
    const uint8_t p[] = {0, 99, 0, 1};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_raw_frame(&t, AMQP_FRAME_METHOD, 1, p, sizeof(p));
    tconn_expect_conn_close(&t, 540);
    tconn_fini(&t);
}

Test(dispatch, server_method_is_503)
{
    tconn_t t;
    amqp_basic_get_empty_t ge = {{0, NULL}};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_send(&t, 1, AMQP_BASIC_GET_EMPTY_METHOD, &ge);
    tconn_expect_conn_close(&t, 503);
    tconn_fini(&t);
}

Test(dispatch, undecodable_fields_are_501)
{
    tconn_t t;
    const uint8_t p[] = {0, 20, 0, 20}; /* channel.flow without its bit */

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_raw_frame(&t, AMQP_FRAME_METHOD, 1, p, sizeof(p));
    tconn_expect_conn_close(&t, 501);
    tconn_fini(&t);
}

Test(dispatch, frame_too_large_is_501)
{
    tconn_t t;
    uint8_t hdr[7] = {AMQP_FRAME_BODY, 0, 1, 0, 0, 0x20, 0}; /* 8192 > 4096 - 8 */
    amqp_connection_tune_ok_t tok = {0, 4096, 0};
    amqp_connection_open_t op = {amqp_cstring_bytes("/"), {0, NULL}, 0};

    tconn_init(&t, true);
    tconn_feed(&t, WR_AMQP_HEADER, 8);
    tconn_expect(&t, 0, AMQP_CONNECTION_START_METHOD);
    tconn_start_ok(&t, "guest", "guest", true);
    tconn_expect(&t, 0, AMQP_CONNECTION_TUNE_METHOD);
    tconn_send(&t, 0, AMQP_CONNECTION_TUNE_OK_METHOD, &tok);
    tconn_send(&t, 0, AMQP_CONNECTION_OPEN_METHOD, &op);
    tconn_expect(&t, 0, AMQP_CONNECTION_OPEN_OK_METHOD);
    tconn_feed(&t, hdr, sizeof(hdr));
    tconn_expect_conn_close(&t, 501);
    /* Its bytes are skipped, then the close-ok is read. */
    {
        static uint8_t rest[8192 + 1];
        amqp_connection_close_ok_t ok = {0};
        rest[8192] = 0xCE;
        tconn_feed(&t, rest, 100);
        cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_READ);
        tconn_feed(&t, rest + 100, sizeof(rest) - 100);
        tconn_send(&t, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    }
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_FLUSH);
    tconn_fini(&t);
}

Test(dispatch, bad_frame_end_is_501)
{
    tconn_t t;
    const uint8_t f[] = {AMQP_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, 0x00};
    amqp_connection_close_t *cl;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_feed(&t, f, sizeof(f));
    cl = tconn_expect(&t, 0, AMQP_CONNECTION_CLOSE_METHOD);
    cr_assert_eq(cl->reply_code, 501);
    /* A second bad frame while closing: the stream is lost, input dropped. */
    tconn_feed(&t, f, sizeof(f));
    tconn_feed(&t, "garbage garbage garbage", 23);
    cr_assert_eq(evbuffer_get_length(t.in), 0);
    tconn_expect_nothing(&t);
    wr__amqp_conn_tick(t.c, t.now + WR_AMQP_CLOSE_MS);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_DROP);
    tconn_fini(&t);
}

Test(dispatch, unknown_frame_type_is_501)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_raw_frame(&t, 7, 0, "", 0);
    tconn_expect_conn_close(&t, 501);
    tconn_fini(&t);
}

Test(dispatch, heartbeat_on_a_channel_is_501)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_raw_frame(&t, AMQP_FRAME_HEARTBEAT, 0, "", 0);
    tconn_expect_nothing(&t);
    tconn_raw_frame(&t, AMQP_FRAME_HEARTBEAT, 1, "", 0);
    tconn_expect_conn_close(&t, 501);
    tconn_fini(&t);
}

/* basic.publish: method, header, body frames; immediate set, or an
 * expiration property, to provoke the publish's own errors (the tests
 * have no core). */
static void publish_ex(tconn_t *t, uint16_t ch, const char *body, size_t len, size_t split,
                       bool immediate, const char *expiration)
{
    amqp_basic_publish_t p = {0, amqp_cstring_bytes(""), amqp_cstring_bytes("rk"), 0, immediate};
    uint8_t hdr[64];
    amqp_basic_properties_t props = {0};
    amqp_bytes_t enc = {sizeof(hdr) - 12, hdr + 12};
    int n;

    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = 2;
    if (expiration) {
        props._flags |= AMQP_BASIC_EXPIRATION_FLAG;
        props.expiration = amqp_cstring_bytes(expiration);
    }
    tconn_send(t, ch, AMQP_BASIC_PUBLISH_METHOD, &p);
    memset(hdr, 0, 12);
    hdr[1] = 60;
    for (int i = 0; i < 8; i++)
        hdr[4 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    n = amqp_encode_properties(AMQP_BASIC_CLASS, &props, enc);
    cr_assert_geq(n, 0);
    tconn_raw_frame(t, AMQP_FRAME_HEADER, ch, hdr, (uint32_t)(12 + n));
    for (size_t off = 0; off < len; off += split) {
        size_t k = len - off < split ? len - off : split;
        tconn_raw_frame(t, AMQP_FRAME_BODY, ch, body + off, (uint32_t)k);
    }
}

static void publish(tconn_t *t, uint16_t ch, const char *body, size_t len, size_t split)
{
    publish_ex(t, ch, body, len, split, true, NULL);
}

Test(content, publish_assembled_then_540)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    publish(&t, 1, "hello world", 11, 4);
    /* The whole message is read, then immediate=true is refused (540, a
     * connection exception, as RabbitMQ 3). */
    tconn_expect_conn_close(&t, 540);
    tconn_fini(&t);
}

Test(content, bad_expiration_is_406)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    publish_ex(&t, 1, "x", 1, 1, false, "soon");
    tconn_expect_chan_close(&t, 1, 406);
    cr_assert_eq(t.c->state, WR_AMQP_S_OPEN);
    tconn_fini(&t);
}

Test(content, publish_without_core_is_dropped)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    publish_ex(&t, 1, "hello", 5, 2, false, "1000");
    publish_ex(&t, 1, "", 0, 1, false, NULL);
    tconn_expect_nothing(&t); /* gathered, then dropped (no core): no leak */
    tconn_fini(&t);
}

Test(content, empty_body)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    publish(&t, 1, "", 0, 1);
    tconn_expect_conn_close(&t, 540);
    tconn_fini(&t);
}

Test(content, too_large_is_406)
{
    tconn_t t;
    amqp_basic_publish_t p = {0, amqp_cstring_bytes(""), amqp_cstring_bytes("rk"), 0, 0};
    uint8_t hdr[14] = {0, 60, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0}; /* 256 MiB */

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_send(&t, 1, AMQP_BASIC_PUBLISH_METHOD, &p);
    tconn_raw_frame(&t, AMQP_FRAME_HEADER, 1, hdr, sizeof(hdr));
    tconn_expect_chan_close(&t, 1, 406);
    /* The body frames that follow are dropped with the channel. */
    tconn_raw_frame(&t, AMQP_FRAME_BODY, 1, "xxxx", 4);
    tconn_expect_nothing(&t);
    cr_assert_eq(t.c->state, WR_AMQP_S_OPEN);
    tconn_fini(&t);
}

Test(content, body_without_header_is_505)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_raw_frame(&t, AMQP_FRAME_BODY, 1, "xxxx", 4);
    tconn_expect_conn_close(&t, 505);
    tconn_fini(&t);
}

Test(content, header_without_method_is_505)
{
    tconn_t t;
    uint8_t hdr[14] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_raw_frame(&t, AMQP_FRAME_HEADER, 1, hdr, sizeof(hdr));
    tconn_expect_conn_close(&t, 505);
    tconn_fini(&t);
}

Test(content, method_instead_of_header_is_505)
{
    tconn_t t;
    amqp_basic_publish_t p = {0, amqp_cstring_bytes(""), amqp_cstring_bytes("rk"), 0, 0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_send(&t, 1, AMQP_BASIC_PUBLISH_METHOD, &p);
    tconn_send(&t, 1, AMQP_BASIC_PUBLISH_METHOD, &p);
    tconn_expect_conn_close(&t, 505);
    tconn_fini(&t);
}

Test(content, body_longer_than_announced_is_501)
{
    tconn_t t;
    amqp_basic_publish_t p = {0, amqp_cstring_bytes(""), amqp_cstring_bytes("rk"), 0, 0};
    uint8_t hdr[14] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_send(&t, 1, AMQP_BASIC_PUBLISH_METHOD, &p);
    tconn_raw_frame(&t, AMQP_FRAME_HEADER, 1, hdr, sizeof(hdr));
    tconn_raw_frame(&t, AMQP_FRAME_BODY, 1, "xxxx", 4);
    tconn_expect_conn_close(&t, 501);
    tconn_fini(&t);
}

Test(content, header_of_another_class_is_505)
{
    tconn_t t;
    amqp_basic_publish_t p = {0, amqp_cstring_bytes(""), amqp_cstring_bytes("rk"), 0, 0};
    uint8_t hdr[14] = {0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_send(&t, 1, AMQP_BASIC_PUBLISH_METHOD, &p);
    tconn_raw_frame(&t, AMQP_FRAME_HEADER, 1, hdr, sizeof(hdr));
    tconn_expect_conn_close(&t, 505);
    tconn_fini(&t);
}

Test(close, client_close)
{
    tconn_t t;
    amqp_connection_close_t cl = {200, amqp_cstring_bytes("bye"), 0, 0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_send(&t, 0, AMQP_CONNECTION_CLOSE_METHOD, &cl);
    tconn_expect(&t, 0, AMQP_CONNECTION_CLOSE_OK_METHOD);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_FLUSH);
    cr_assert_eq(atomic_load(&t.env.channels), 0);
    tconn_fini(&t);
}

Test(close, crossing_close_while_closing)
{
    tconn_t t;
    amqp_basic_qos_t q = {0, 1, 0};
    amqp_connection_close_t cl = {200, amqp_cstring_bytes("bye"), 0, 0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_send(&t, 5, AMQP_BASIC_QOS_METHOD, &q); /* 504 */
    tconn_expect_conn_close(&t, 504);
    tconn_send(&t, 0, AMQP_CONNECTION_CLOSE_METHOD, &cl);
    tconn_expect(&t, 0, AMQP_CONNECTION_CLOSE_OK_METHOD);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_FLUSH);
    tconn_fini(&t);
}

Test(close, broker_shutdown_is_320)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    wr__amqp_conn_shutdown(t.c);
    tconn_expect_conn_close(&t, 320);
    tconn_fini(&t);
}

Test(timers, heartbeats_both_ways)
{
    tconn_t t;
    wr_amqp_frame_t f;
    uint16_t ch;
    amqp_method_number_t id;
    void *m;

    tconn_init(&t, true);
    tconn_open(&t, 2);
    cr_assert_eq(wr__amqp_conn_deadline(t.c), t.now + 1000);
    /* Nothing sent for h/2: a heartbeat goes out. */
    wr__amqp_conn_tick(t.c, t.now + 1000);
    cr_assert(tconn_next(&t, &f, &ch, &id, &m));
    cr_assert_eq(f.type, AMQP_FRAME_HEARTBEAT);
    /* The client's heartbeat keeps it alive... */
    t.now += 3000;
    tconn_raw_frame(&t, AMQP_FRAME_HEARTBEAT, 0, "", 0);
    wr__amqp_conn_tick(t.c, t.now + 1000);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_READ);
    /* ...and two silent intervals drop it. */
    wr__amqp_conn_tick(t.c, t.now + 4000);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_DROP);
    tconn_fini(&t);
}

Test(timers, no_heartbeat_when_disabled)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    cr_assert_eq(wr__amqp_conn_deadline(t.c), INT64_MAX);
    wr__amqp_conn_tick(t.c, t.now + 3600 * 1000);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_READ);
    tconn_fini(&t);
}

Test(timers, handshake_timeout)
{
    tconn_t t;

    tconn_init(&t, true);
    tconn_feed(&t, WR_AMQP_HEADER, 8);
    cr_assert_eq(wr__amqp_conn_deadline(t.c), t.now + WR_AMQP_HANDSHAKE_MS);
    wr__amqp_conn_tick(t.c, t.now + WR_AMQP_HANDSHAKE_MS - 1);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_READ);
    wr__amqp_conn_tick(t.c, t.now + WR_AMQP_HANDSHAKE_MS);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_DROP);
    tconn_fini(&t);
}

Test(timers, close_ok_timeout)
{
    tconn_t t;
    amqp_basic_qos_t q = {0, 1, 0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_send(&t, 9, AMQP_BASIC_QOS_METHOD, &q);
    tconn_expect_conn_close(&t, 504);
    wr__amqp_conn_tick(t.c, t.now + WR_AMQP_CLOSE_MS);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_DROP);
    tconn_fini(&t);
}

Test(backpressure, stops_consuming_when_output_backs_up)
{
    tconn_t t;
    amqp_channel_flow_t fl = {1};
    size_t left;

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    /* A client that sends without ever reading. */
    for (int i = 0; i < 200000; i++)
        wr__amqp_write_method(t.in, 1, AMQP_CHANNEL_FLOW_METHOD, &fl, 0);
    wr__amqp_conn_feed(t.c, t.in, t.now);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_PAUSE);
    left = evbuffer_get_length(t.in);
    cr_assert_gt(left, 0);
    cr_assert_leq(evbuffer_get_length(t.out), WR_AMQP_OUT_HIGH + 64);
    /* Draining the output lets it go on. */
    evbuffer_drain(t.out, evbuffer_get_length(t.out));
    wr__amqp_conn_feed(t.c, t.in, t.now);
    cr_assert_lt(evbuffer_get_length(t.in), left);
    evbuffer_drain(t.out, evbuffer_get_length(t.out));
    tconn_fini(&t);
}

Test(channel, crossing_closes)
{
    tconn_t t;
    amqp_tx_rollback_t tr = {0};
    amqp_channel_close_t cl = {200, amqp_cstring_bytes("bye"), 0, 0};
    amqp_channel_close_ok_t cok = {0};

    tconn_init(&t, true);
    tconn_open(&t, 0);
    tconn_channel_open(&t, 1);
    tconn_send(&t, 1, AMQP_TX_ROLLBACK_METHOD, &tr);
    tconn_expect_chan_close(&t, 1, 406);
    /* The client closes too (rabbitmq-c does): answered, channel done. */
    tconn_send(&t, 1, AMQP_CHANNEL_CLOSE_METHOD, &cl);
    tconn_expect(&t, 1, AMQP_CHANNEL_CLOSE_OK_METHOD);
    cr_assert_null(wr__amqp_chan_get(t.c, 1));
    /* Its close-ok for our close may still come: ignored. */
    tconn_send(&t, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &cok);
    tconn_expect_nothing(&t);
    tconn_channel_open(&t, 1);
    cr_assert_eq(t.c->state, WR_AMQP_S_OPEN);
    tconn_fini(&t);
}

Test(guard, deep_client_properties_before_login)
{
    static uint8_t buf[140000];
    tconn_t t;
    size_t n = 0, depth = 18000;
    uint8_t *p = buf + 4;

    /* connection.start-ok whose client-properties nest 18000 tables deep. */
    tconn_init(&t, true);
    tconn_feed(&t, WR_AMQP_HEADER, 8);
    tconn_expect(&t, 0, AMQP_CONNECTION_START_METHOD);
    buf[0] = 0;
    buf[1] = 10;
    buf[2] = 0;
    buf[3] = 11;
    for (size_t i = 0; i < depth; i++) {
        size_t rem = depth * 7 + 4 - n - 4;
        p[n] = (uint8_t)(rem >> 24);
        p[n + 1] = (uint8_t)(rem >> 16);
        p[n + 2] = (uint8_t)(rem >> 8);
        p[n + 3] = (uint8_t)rem;
        n += 4;
        p[n++] = 1;
        p[n++] = 'k';
        p[n++] = 'F';
    }
    memset(p + n, 0, 4);
    n += 4;
    memcpy(p + n, "\x05PLAIN\x00\x00\x00\x0c\x00guest\x00guest\x05en_US", 6 + 4 + 12 + 6);
    n += 28;
    tconn_raw_frame(&t, AMQP_FRAME_METHOD, 0, buf, (uint32_t)(n + 4));
    tconn_expect_nothing(&t);
    cr_assert_eq(wr__amqp_conn_want(t.c), WR_AMQP_WANT_FLUSH);
    tconn_fini(&t);
}
