/*
 * test_amqp_frame.c - the frame reader and writer of frontends/amqp/frame.c:
 * whole, split, partial, oversized and unterminated frames, the protocol
 * header, content headers, and writer round trips.
 */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/amqp/amqp_int.h"

/* A heartbeat-like frame of type t on channel ch with n payload bytes. */
static size_t mk_frame(uint8_t *buf, uint8_t t, uint16_t ch, const void *payload, uint32_t n)
{
    buf[0] = t;
    buf[1] = (uint8_t)(ch >> 8);
    buf[2] = (uint8_t)ch;
    buf[3] = (uint8_t)(n >> 24);
    buf[4] = (uint8_t)(n >> 16);
    buf[5] = (uint8_t)(n >> 8);
    buf[6] = (uint8_t)n;
    memcpy(buf + 7, payload, n);
    buf[7 + n] = 0xCE;
    return 8 + n;
}

Test(frame, whole)
{
    uint8_t buf[64];
    size_t n = mk_frame(buf, AMQP_FRAME_METHOD, 5, "\x00\x14\x00\x0a\x00", 5);
    wr_amqp_frame_t f;
    size_t used = 0;

    cr_assert_eq(wr__amqp_frame_parse(buf, n, 0, &f, &used), WR_OK);
    cr_assert_eq(used, n);
    cr_assert_eq(f.type, AMQP_FRAME_METHOD);
    cr_assert_eq(f.channel, 5);
    cr_assert_eq(f.size, 5);
    cr_assert_eq(f.payload, buf + 7);
}

Test(frame, every_prefix_is_incomplete)
{
    uint8_t buf[64];
    size_t n = mk_frame(buf, AMQP_FRAME_BODY, 1, "hello world", 11);
    wr_amqp_frame_t f;
    size_t used;

    for (size_t i = 0; i < n; i++)
        cr_assert_eq(wr__amqp_frame_parse(buf, i, 0, &f, &used), WR_EAGAIN, "prefix %zu", i);
    cr_assert_eq(wr__amqp_frame_parse(buf, n, 0, &f, &used), WR_OK);
}

Test(frame, two_frames_back_to_back)
{
    uint8_t buf[64];
    size_t a = mk_frame(buf, AMQP_FRAME_HEARTBEAT, 0, "", 0);
    size_t b = mk_frame(buf + a, AMQP_FRAME_BODY, 3, "xyz", 3);
    wr_amqp_frame_t f;
    size_t used;

    cr_assert_eq(wr__amqp_frame_parse(buf, a + b, 0, &f, &used), WR_OK);
    cr_assert_eq(used, a);
    cr_assert_eq(f.type, AMQP_FRAME_HEARTBEAT);
    cr_assert_eq(wr__amqp_frame_parse(buf + used, a + b - used, 0, &f, &used), WR_OK);
    cr_assert_eq(f.type, AMQP_FRAME_BODY);
    cr_assert_eq(f.channel, 3);
    cr_assert_eq(memcmp(f.payload, "xyz", 3), 0);
}

Test(frame, oversized_is_refused_from_the_header_alone)
{
    /* 7 bytes announcing frame_max - 7 payload bytes: one too many. */
    uint8_t hdr[7] = {AMQP_FRAME_BODY, 0, 1, 0, 0, 0x0f, 0xf9}; /* 4089 */
    wr_amqp_frame_t f;
    size_t used;

    cr_assert_eq(wr__amqp_frame_parse(hdr, 7, 4096, &f, &used), WR_ETOOBIG);
    hdr[6] = 0xf8; /* 4088 = 4096 - 8: the largest allowed */
    cr_assert_eq(wr__amqp_frame_parse(hdr, 7, 4096, &f, &used), WR_EAGAIN);
    /* A 4 GiB announcement never waits for its bytes. */
    memset(hdr + 3, 0xff, 4);
    cr_assert_eq(wr__amqp_frame_parse(hdr, 7, 0, &f, &used), WR_ETOOBIG);
}

Test(frame, largest_allowed_frame)
{
    uint32_t fm = 4096, n = fm - WR_AMQP_FRAME_OVERHEAD;
    uint8_t *buf = calloc(1, fm);
    uint8_t *payload = calloc(1, n);
    wr_amqp_frame_t f;
    size_t used;

    cr_assert_eq(mk_frame(buf, AMQP_FRAME_BODY, 1, payload, n), fm);
    cr_assert_eq(wr__amqp_frame_parse(buf, fm, fm, &f, &used), WR_OK);
    cr_assert_eq(used, fm);
    free(buf);
    free(payload);
}

Test(frame, frame_max_above_ours_is_capped)
{
    uint8_t hdr[7] = {AMQP_FRAME_BODY, 0, 1, 0, 0x02, 0, 0}; /* 131072 payload bytes */
    wr_amqp_frame_t f;
    size_t used;

    cr_assert_eq(wr__amqp_frame_parse(hdr, 7, 1u << 30, &f, &used), WR_ETOOBIG);
}

Test(frame, bad_frame_end)
{
    uint8_t buf[64];
    size_t n = mk_frame(buf, AMQP_FRAME_METHOD, 0, "abcd", 4);
    wr_amqp_frame_t f;
    size_t used;

    buf[n - 1] = 0xCD;
    cr_assert_eq(wr__amqp_frame_parse(buf, n, 0, &f, &used), WR_EPROTO);
    buf[n - 1] = 0x00;
    cr_assert_eq(wr__amqp_frame_parse(buf, n, 0, &f, &used), WR_EPROTO);
}

Test(frame, evbuffer_split_across_chains)
{
    uint8_t buf[300];
    uint8_t payload[280];
    struct evbuffer *in = evbuffer_new();
    wr_amqp_frame_t f;
    size_t n, used;

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)i;
    n = mk_frame(buf, AMQP_FRAME_BODY, 7, payload, sizeof(payload));
    /* One byte per chain piece: the reader must gather them. */
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(wr__amqp_frame_read(in, 0, &f, &used), WR_EAGAIN, "after %zu bytes", i);
        evbuffer_add_reference(in, buf + i, 1, NULL, NULL);
    }
    cr_assert_eq(wr__amqp_frame_read(in, 0, &f, &used), WR_OK);
    cr_assert_eq(used, n);
    cr_assert_eq(f.channel, 7);
    cr_assert_eq(memcmp(f.payload, payload, sizeof(payload)), 0);
    /* Nothing was drained: that is the caller's job. */
    cr_assert_eq(evbuffer_get_length(in), n);
    evbuffer_free(in);
}

Test(frame, evbuffer_oversized)
{
    struct evbuffer *in = evbuffer_new();
    uint8_t hdr[7] = {AMQP_FRAME_METHOD, 0, 0, 0x7f, 0xff, 0xff, 0xff};
    wr_amqp_frame_t f;
    size_t used;

    evbuffer_add(in, hdr, 3);
    cr_assert_eq(wr__amqp_frame_read(in, 0, &f, &used), WR_EAGAIN);
    evbuffer_add(in, hdr + 3, 4);
    cr_assert_eq(wr__amqp_frame_read(in, 0, &f, &used), WR_ETOOBIG);
    evbuffer_free(in);
}

Test(header, protocol_header)
{
    cr_assert_eq(wr__amqp_header_check((const uint8_t *)"AMQP\0\0\x09\x01", 8), WR_OK);
    cr_assert_eq(wr__amqp_header_check((const uint8_t *)"AMQP\0\0\x09", 7), WR_EAGAIN);
    cr_assert_eq(wr__amqp_header_check((const uint8_t *)"AM", 2), WR_EAGAIN);
    cr_assert_eq(wr__amqp_header_check((const uint8_t *)"", 0), WR_EAGAIN);
    /* 0-9 / 0-8 style headers, other versions, and HTTP are refused. */
    cr_assert_eq(wr__amqp_header_check((const uint8_t *)"AMQP\x01\x01\x00\x09", 8), WR_EPROTO);
    cr_assert_eq(wr__amqp_header_check((const uint8_t *)"AMQP\0\0\x09\x00", 8), WR_EPROTO);
    cr_assert_eq(wr__amqp_header_check((const uint8_t *)"GET", 3), WR_EPROTO);
    cr_assert_eq(wr__amqp_header_check((const uint8_t *)"G", 1), WR_EPROTO);
}

Test(content, header_fixed_part)
{
    /* class 60, weight 0, size 5, flags 0x8000 (content-type), "\x04text" */
    const uint8_t p[] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0x80, 0, 4, 't', 'e', 'x', 't'};
    wr_amqp_content_hdr_t h;
    uint8_t bad[sizeof(p)];

    cr_assert_eq(wr__amqp_content_hdr_parse(p, sizeof(p), &h), WR_OK);
    cr_assert_eq(h.class_id, 60);
    cr_assert_eq(h.body_size, 5);
    cr_assert_eq(h.props, p + 12);
    cr_assert_eq(h.props_len, sizeof(p) - 12);

    cr_assert_eq(wr__amqp_content_hdr_parse(p, 13, &h), WR_EPROTO);
    memcpy(bad, p, sizeof(p));
    bad[3] = 1; /* weight must be 0 */
    cr_assert_eq(wr__amqp_content_hdr_parse(bad, sizeof(bad), &h), WR_EPROTO);
    memcpy(bad, p, sizeof(p));
    bad[13] = 1; /* continuation flag word: refused before rabbitmq-c sees it */
    cr_assert_eq(wr__amqp_content_hdr_parse(bad, sizeof(bad), &h), WR_EPROTO);
}

Test(writer, method_round_trip)
{
    struct evbuffer *out = evbuffer_new();
    amqp_channel_close_t cl = {404, amqp_cstring_bytes("NOT_FOUND - no queue 'q'"), 50, 10};
    amqp_channel_close_t *back;
    amqp_pool_t pool;
    wr_amqp_frame_t f;
    size_t used;
    amqp_bytes_t fields;

    cr_assert_eq(wr__amqp_write_method(out, 3, AMQP_CHANNEL_CLOSE_METHOD, &cl, 0), WR_OK);
    cr_assert_eq(wr__amqp_frame_read(out, 0, &f, &used), WR_OK);
    cr_assert_eq(f.type, AMQP_FRAME_METHOD);
    cr_assert_eq(f.channel, 3);
    cr_assert_eq(used, evbuffer_get_length(out));
    init_amqp_pool(&pool, 4096);
    fields.bytes = (void *)(f.payload + 4);
    fields.len = f.size - 4;
    cr_assert_eq(amqp_decode_method(AMQP_CHANNEL_CLOSE_METHOD, &pool, fields, (void **)&back), 0);
    cr_assert_eq(back->reply_code, 404);
    cr_assert_eq(back->class_id, 50);
    cr_assert_eq(back->reply_text.len, cl.reply_text.len);
    empty_amqp_pool(&pool);
    evbuffer_free(out);
}

Test(writer, content_split_by_frame_max)
{
    struct evbuffer *out = evbuffer_new();
    size_t len = 10000;
    uint8_t *body = malloc(len);
    amqp_basic_properties_t props = {0};
    wr_amqp_frame_t f;
    wr_amqp_content_hdr_t h;
    size_t used, got = 0;
    int bodies = 0;

    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)(i * 7);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.content_type = amqp_cstring_bytes("text/plain");
    cr_assert_eq(wr__amqp_write_content(out, 9, AMQP_BASIC_CLASS, &props, body, len, 4096), WR_OK);

    cr_assert_eq(wr__amqp_frame_read(out, 4096, &f, &used), WR_OK);
    cr_assert_eq(f.type, AMQP_FRAME_HEADER);
    cr_assert_eq(wr__amqp_content_hdr_parse(f.payload, f.size, &h), WR_OK);
    cr_assert_eq(h.body_size, len);
    evbuffer_drain(out, used);
    while (wr__amqp_frame_read(out, 4096, &f, &used) == WR_OK) {
        cr_assert_eq(f.type, AMQP_FRAME_BODY);
        cr_assert_eq(f.channel, 9);
        cr_assert_leq(f.size, 4096 - 8);
        cr_assert_eq(memcmp(f.payload, body + got, f.size), 0);
        got += f.size;
        bodies++;
        evbuffer_drain(out, used);
    }
    cr_assert_eq(got, len);
    cr_assert_eq(bodies, 3); /* 4088 + 4088 + 1824 */
    cr_assert_eq(evbuffer_get_length(out), 0);
    free(body);
    evbuffer_free(out);
}

Test(writer, method_larger_than_frame_max)
{
    struct evbuffer *out = evbuffer_new();
    amqp_table_entry_t e[200];
    char keys[200][16];
    static char big[4000];
    amqp_connection_start_t s = {0};

    memset(big, 'x', sizeof(big) - 1);
    for (int i = 0; i < 200; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%u", (unsigned)i);
        e[i].key = amqp_cstring_bytes(keys[i]);
        e[i].value.kind = AMQP_FIELD_KIND_UTF8;
        e[i].value.value.bytes = amqp_cstring_bytes(big);
    }
    s.version_minor = 9;
    s.server_properties.num_entries = 200;
    s.server_properties.entries = e;
    s.mechanisms = amqp_cstring_bytes("PLAIN");
    s.locales = amqp_cstring_bytes("en_US");
    /* ~800 KB does not fit in 131072: refused, nothing half-written. */
    cr_assert_eq(wr__amqp_write_method(out, 0, AMQP_CONNECTION_START_METHOD, &s, 0), WR_EINVAL);
    cr_assert_eq(evbuffer_get_length(out), 0);
    evbuffer_free(out);
}

Test(writer, heartbeat)
{
    struct evbuffer *out = evbuffer_new();
    wr_amqp_frame_t f;
    size_t used;

    wr__amqp_write_heartbeat(out);
    cr_assert_eq(wr__amqp_frame_read(out, 0, &f, &used), WR_OK);
    cr_assert_eq(f.type, AMQP_FRAME_HEARTBEAT);
    cr_assert_eq(f.channel, 0);
    cr_assert_eq(f.size, 0);
    cr_assert_eq(used, 8);
    evbuffer_free(out);
}

/* A table nesting `depth` tables ({"k": {"k": ...}}), or arrays if arr. */
static size_t nested(uint8_t *buf, size_t depth, bool arr)
{
    size_t n = arr ? 4 + 2 + depth * 5 + 1 : depth * 7 + 4;
    size_t o = 0;

    if (arr) {
        size_t rem = n - 4;
        buf[0] = (uint8_t)(rem >> 24);
        buf[1] = (uint8_t)(rem >> 16);
        buf[2] = (uint8_t)(rem >> 8);
        buf[3] = (uint8_t)rem;
        o = 4;
        buf[o++] = 1;
        buf[o++] = 'k';
        for (size_t i = 0; i < depth; i++) {
            buf[o++] = 'A';
            rem = n - o - 4;
            buf[o] = (uint8_t)(rem >> 24);
            buf[o + 1] = (uint8_t)(rem >> 16);
            buf[o + 2] = (uint8_t)(rem >> 8);
            buf[o + 3] = (uint8_t)rem;
            o += 4;
        }
        buf[o++] = 'V';
        return o;
    }
    for (size_t i = 0; i < depth; i++) {
        size_t rem = n - o - 4;
        buf[o] = (uint8_t)(rem >> 24);
        buf[o + 1] = (uint8_t)(rem >> 16);
        buf[o + 2] = (uint8_t)(rem >> 8);
        buf[o + 3] = (uint8_t)rem;
        o += 4;
        buf[o++] = 1;
        buf[o++] = 'k';
        buf[o++] = 'F';
    }
    memset(buf + o, 0, 4);
    return o + 4;
}

Test(guard, nesting_depth)
{
    static uint8_t buf[200000];
    size_t n;

    n = nested(buf, WR_AMQP_TABLE_DEPTH, false);
    cr_assert(wr__amqp_table_ok(buf, n));
    n = nested(buf, WR_AMQP_TABLE_DEPTH + 1, false);
    cr_assert_not(wr__amqp_table_ok(buf, n));
    n = nested(buf, WR_AMQP_TABLE_DEPTH - 1, true); /* outer table + arrays */
    cr_assert(wr__amqp_table_ok(buf, n));
    n = nested(buf, WR_AMQP_TABLE_DEPTH + 1, true);
    cr_assert_not(wr__amqp_table_ok(buf, n));
    /* As deep as a 128 KiB frame allows: refused, no stack overflow. */
    n = nested(buf, 26000, true);
    cr_assert_not(wr__amqp_table_ok(buf, n));
}

Test(guard, malformed_tables)
{
    const uint8_t trunc[] = {0, 0, 0, 9, 1, 'k', 'S', 0, 0, 0, 9, 'x'};
    const uint8_t badkind[] = {0, 0, 0, 3, 1, 'k', '?'};
    const uint8_t overlen[] = {0, 0, 0, 50, 1, 'k', 'V'};
    const uint8_t ok[] = {0, 0, 0, 11, 1, 'k', 'I', 0, 0, 0, 5, 1, 'b', 't', 1};

    cr_assert_not(wr__amqp_table_ok(trunc, sizeof(trunc)));
    cr_assert_not(wr__amqp_table_ok(badkind, sizeof(badkind)));
    cr_assert_not(wr__amqp_table_ok(overlen, sizeof(overlen)));
    cr_assert(wr__amqp_table_ok(ok, sizeof(ok)));
    cr_assert_not(wr__amqp_table_ok(ok, 3));
}

Test(guard, method_layouts)
{
    static uint8_t buf[4096];
    uint8_t *p = buf;
    size_t t;

    /* queue.declare: ticket, "q", bits, arguments */
    *p++ = 0;
    *p++ = 0;
    *p++ = 1;
    *p++ = 'q';
    *p++ = 0;
    t = nested(p, 3, false);
    cr_assert(wr__amqp_method_ok(AMQP_QUEUE_DECLARE_METHOD, buf, (size_t)(p - buf) + t));
    t = nested(p, WR_AMQP_TABLE_DEPTH + 5, false);
    cr_assert_not(wr__amqp_method_ok(AMQP_QUEUE_DECLARE_METHOD, buf, (size_t)(p - buf) + t));
    cr_assert_not(wr__amqp_method_ok(AMQP_QUEUE_DECLARE_METHOD, buf, 3));
    /* Methods without tables pass untouched. */
    cr_assert(wr__amqp_method_ok(AMQP_BASIC_QOS_METHOD, buf, 0));
}

Test(guard, properties_headers)
{
    static uint8_t buf[4096];
    size_t t;

    buf[0] = 0xa0; /* content-type, headers */
    buf[1] = 0;
    buf[2] = 4;
    memcpy(buf + 3, "text", 4);
    t = nested(buf + 7, 2, false);
    cr_assert(wr__amqp_props_ok(buf, 7 + t));
    t = nested(buf + 7, WR_AMQP_TABLE_DEPTH + 1, false);
    cr_assert_not(wr__amqp_props_ok(buf, 7 + t));
}
