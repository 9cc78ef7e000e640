/*
 * amqp_test.h - helpers for the AMQP unit tests: a connection driven from
 * byte buffers (no socket), client frames built with rabbitmq-c's encoder,
 * and server frames read back and decoded.
 */
#ifndef WR_AMQP_TEST_H
#define WR_AMQP_TEST_H

#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <string.h>

#include "frontends/amqp/amqp_int.h"

typedef struct tconn {
    wr_amqp_env_t env;
    struct evbuffer *in, *out;
    wr_amqp_conn_t *c;
    amqp_pool_t pool; /* decoded server frames */
    int64_t now;
} tconn_t;

static inline void tconn_init(tconn_t *t, bool loopback)
{
    memset(t, 0, sizeof(*t));
    t->in = evbuffer_new();
    t->out = evbuffer_new();
    t->now = 1000000;
    t->c = wr__amqp_conn_new(&t->env, t->out, "test", loopback, t->now);
    init_amqp_pool(&t->pool, 4096);
}

static inline void tconn_fini(tconn_t *t)
{
    wr__amqp_conn_detach(t->c);
    cr_assert_eq(atomic_load(&t->env.connections), 0);
    cr_assert_eq(atomic_load(&t->env.channels), 0);
    evbuffer_free(t->in);
    evbuffer_free(t->out);
    empty_amqp_pool(&t->pool);
}

static inline void tconn_feed(tconn_t *t, const void *p, size_t n)
{
    evbuffer_add(t->in, p, n);
    wr__amqp_conn_feed(t->c, t->in, t->now);
}

/* Sends a client method frame (encoded with the writer under test, which
 * the frame tests check separately). */
static inline void tconn_send(tconn_t *t, uint16_t ch, amqp_method_number_t id, void *m)
{
    cr_assert_eq(wr__amqp_write_method(t->in, ch, id, m, WR_AMQP_FRAME_MAX), WR_OK);
    wr__amqp_conn_feed(t->c, t->in, t->now);
}

static inline void tconn_raw_frame(tconn_t *t, uint8_t type, uint16_t ch, const void *payload,
                                   uint32_t n)
{
    uint8_t h[7] = {type, (uint8_t)(ch >> 8), (uint8_t)ch, (uint8_t)(n >> 24),
                    (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    evbuffer_add(t->in, h, 7);
    if (n)
        evbuffer_add(t->in, payload, n);
    evbuffer_add(t->in, "\xCE", 1);
    wr__amqp_conn_feed(t->c, t->in, t->now);
}

/* Reads the next server frame; for methods, *id and *decoded are set.
 * Returns false if the output holds no complete frame. */
static inline bool tconn_next(tconn_t *t, wr_amqp_frame_t *f, uint16_t *ch,
                              amqp_method_number_t *id, void **decoded)
{
    size_t used;
    wr_err_t err = wr__amqp_frame_read(t->out, 0, f, &used);

    if (err == WR_EAGAIN)
        return false;
    cr_assert_eq(err, WR_OK, "server wrote a malformed frame");
    *ch = f->channel;
    *id = 0;
    if (f->type == AMQP_FRAME_METHOD) {
        amqp_bytes_t b;
        void *copy = amqp_pool_alloc(&t->pool, f->size);
        memcpy(copy, f->payload, f->size);
        *id = (uint32_t)((uint8_t *)copy)[0] << 24 | (uint32_t)((uint8_t *)copy)[1] << 16 |
              (uint32_t)((uint8_t *)copy)[2] << 8 | ((uint8_t *)copy)[3];
        b.bytes = (uint8_t *)copy + 4;
        b.len = f->size - 4;
        cr_assert_geq(amqp_decode_method(*id, &t->pool, b, decoded), 0,
                      "server method does not decode");
    }
    evbuffer_drain(t->out, used);
    return true;
}

/* Expects the next server frame to be method `want` on channel `ch`. */
static inline void *tconn_expect(tconn_t *t, uint16_t ch, amqp_method_number_t want)
{
    wr_amqp_frame_t f;
    uint16_t got_ch;
    amqp_method_number_t id;
    void *m = NULL;

    cr_assert(tconn_next(t, &f, &got_ch, &id, &m), "no frame from the server, wanted %s",
              wr__amqp_method_name(want));
    cr_assert_eq(f.type, AMQP_FRAME_METHOD, "frame type %u, wanted a method", f.type);
    cr_assert_eq(id, want, "got %s, wanted %s", wr__amqp_method_name(id),
                 wr__amqp_method_name(want));
    cr_assert_eq(got_ch, ch, "channel %u, wanted %u", got_ch, ch);
    return m;
}

static inline void tconn_expect_nothing(tconn_t *t)
{
    cr_assert_eq(evbuffer_get_length(t->out), 0, "unexpected %zu output bytes",
                 evbuffer_get_length(t->out));
}

static inline void tconn_expect_conn_close(tconn_t *t, uint16_t code)
{
    amqp_connection_close_t *cl = tconn_expect(t, 0, AMQP_CONNECTION_CLOSE_METHOD);
    cr_assert_eq(cl->reply_code, code, "close code %u, wanted %u: %.*s", cl->reply_code, code,
                 (int)cl->reply_text.len, (char *)cl->reply_text.bytes);
    cr_assert_eq(t->c->state, WR_AMQP_S_CLOSING);
}

static inline void tconn_expect_chan_close(tconn_t *t, uint16_t ch, uint16_t code)
{
    amqp_channel_close_t *cl = tconn_expect(t, ch, AMQP_CHANNEL_CLOSE_METHOD);
    cr_assert_eq(cl->reply_code, code, "close code %u, wanted %u: %.*s", cl->reply_code, code,
                 (int)cl->reply_text.len, (char *)cl->reply_text.bytes);
}

/* Client side of a PLAIN login. */
static inline void tconn_start_ok(tconn_t *t, const char *user, const char *pass, bool afc)
{
    char resp[128];
    size_t ul = strlen(user), pl = strlen(pass);
    amqp_table_entry_t cap = {amqp_cstring_bytes("authentication_failure_close"),
                              {AMQP_FIELD_KIND_BOOLEAN, {.boolean = afc}}};
    amqp_table_entry_t props = {amqp_cstring_bytes("capabilities"),
                                {AMQP_FIELD_KIND_TABLE, {.table = {1, &cap}}}};
    amqp_connection_start_ok_t so;

    resp[0] = 0;
    memcpy(resp + 1, user, ul);
    resp[1 + ul] = 0;
    memcpy(resp + 2 + ul, pass, pl);
    so.client_properties.num_entries = 1;
    so.client_properties.entries = &props;
    so.mechanism = amqp_cstring_bytes("PLAIN");
    so.response.bytes = resp;
    so.response.len = 2 + ul + pl;
    so.locale = amqp_cstring_bytes("en_US");
    tconn_send(t, 0, AMQP_CONNECTION_START_OK_METHOD, &so);
}

/* Runs the whole handshake as guest with the given heartbeat. */
static inline void tconn_open(tconn_t *t, uint16_t heartbeat)
{
    amqp_connection_tune_ok_t tok = {2047, 131072, heartbeat};
    amqp_connection_open_t op = {amqp_cstring_bytes("/"), {0, NULL}, 0};

    tconn_feed(t, WR_AMQP_HEADER, 8);
    tconn_expect(t, 0, AMQP_CONNECTION_START_METHOD);
    tconn_start_ok(t, "guest", "guest", true);
    tconn_expect(t, 0, AMQP_CONNECTION_TUNE_METHOD);
    tconn_send(t, 0, AMQP_CONNECTION_TUNE_OK_METHOD, &tok);
    tconn_send(t, 0, AMQP_CONNECTION_OPEN_METHOD, &op);
    tconn_expect(t, 0, AMQP_CONNECTION_OPEN_OK_METHOD);
    cr_assert_eq(t->c->state, WR_AMQP_S_OPEN);
}

static inline void tconn_channel_open(tconn_t *t, uint16_t ch)
{
    amqp_channel_open_t o = {{0, NULL}};
    tconn_send(t, ch, AMQP_CHANNEL_OPEN_METHOD, &o);
    tconn_expect(t, ch, AMQP_CHANNEL_OPEN_OK_METHOD);
}

#endif
