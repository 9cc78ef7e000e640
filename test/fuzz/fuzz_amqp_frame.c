/*
 * fuzz_amqp_frame.c - arbitrary bytes through the AMQP frame reader and the
 * connection/channel state machines (frontends/amqp), without sockets.
 *
 * Input: one control byte, then the client's byte stream.
 *   control bit 0   peer is loopback (guest may log in)
 *   control bit 1   prefix a canned, valid handshake (header, start-ok,
 *                   tune-ok with frame_max 4096 and heartbeat 1, open "/",
 *                   channel.open 1) so the stream starts in a running
 *                   connection with a channel
 *   control bits 2-7  seed for how the stream is cut into reads and when
 *                   the clock moves (timers: heartbeats, timeouts)
 *
 * Checks beyond the sanitizers: everything the server writes is whole,
 * well-formed frames (after an optional protocol header), every method it
 * writes decodes, and no connection or channel is left counted at the end.
 *
 * Seed corpus: test/fuzz/corpus/fuzz_amqp_frame/ (client streams captured
 * from pika, py-amqp and amqp-tools, plus broken frames); dictionary:
 * test/fuzz/amqp.dict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/log.h"
#include "frontends/amqp/amqp_int.h"

static uint8_t canned[1024];
static size_t canned_len;

static void build_canned(void)
{
    struct evbuffer *b = evbuffer_new();
    char resp[] = "\0guest\0guest";
    amqp_connection_start_ok_t so = {{0, NULL}, amqp_cstring_bytes("PLAIN"),
                                     {sizeof(resp) - 1, resp}, amqp_cstring_bytes("en_US")};
    amqp_connection_tune_ok_t tok = {16, 4096, 1};
    amqp_connection_open_t op = {amqp_cstring_bytes("/"), {0, NULL}, 0};
    amqp_channel_open_t co = {{0, NULL}};

    evbuffer_add(b, WR_AMQP_HEADER, WR_AMQP_HEADER_LEN);
    wr__amqp_write_method(b, 0, AMQP_CONNECTION_START_OK_METHOD, &so, 0);
    wr__amqp_write_method(b, 0, AMQP_CONNECTION_TUNE_OK_METHOD, &tok, 0);
    wr__amqp_write_method(b, 0, AMQP_CONNECTION_OPEN_METHOD, &op, 0);
    wr__amqp_write_method(b, 1, AMQP_CHANNEL_OPEN_METHOD, &co, 0);
    canned_len = evbuffer_get_length(b);
    if (canned_len > sizeof(canned))
        abort();
    evbuffer_remove(b, canned, canned_len);
    evbuffer_free(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    wr_log_level_g = -1; /* silence: the fuzzer wants speed */
    build_canned();
    return 0;
}

/* Drains `out`, checking it holds whole frames whose methods decode. */
static void check_output(struct evbuffer *out, bool *header_seen, amqp_pool_t *pool)
{
    size_t len = evbuffer_get_length(out);
    const uint8_t *p = evbuffer_pullup(out, -1);
    size_t off = 0;

    if (len >= WR_AMQP_HEADER_LEN && !*header_seen &&
        memcmp(p, WR_AMQP_HEADER, WR_AMQP_HEADER_LEN) == 0) {
        /* The answer to a bad protocol header: nothing may follow it. */
        if (len != WR_AMQP_HEADER_LEN)
            abort();
        *header_seen = true;
        evbuffer_drain(out, len);
        return;
    }
    while (off < len) {
        wr_amqp_frame_t f;
        size_t used;
        if (wr__amqp_frame_parse(p + off, len - off, WR_AMQP_FRAME_MAX, &f, &used) != WR_OK)
            abort(); /* a partial or malformed frame from the server */
        if (f.type == AMQP_FRAME_METHOD) {
            amqp_bytes_t fields;
            uint32_t id;
            void *m;
            if (f.size < 4)
                abort();
            id = (uint32_t)f.payload[0] << 24 | (uint32_t)f.payload[1] << 16 |
                 (uint32_t)f.payload[2] << 8 | f.payload[3];
            fields.bytes = (void *)(f.payload + 4);
            fields.len = f.size - 4;
            if (amqp_decode_method(id, pool, fields, &m) < 0)
                abort();
            recycle_amqp_pool(pool);
        } else if (f.type != AMQP_FRAME_HEARTBEAT) {
            abort(); /* phase 1 sends no content */
        }
        off += used;
    }
    evbuffer_drain(out, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static wr_amqp_env_t env;
    struct evbuffer *in, *out;
    wr_amqp_conn_t *c;
    amqp_pool_t pool;
    uint32_t seed;
    int64_t now = 1000000;
    bool header_seen = false;
    size_t off = 0;

    if (size < 1)
        return 0;
    seed = 0x9e3779b9u * (uint32_t)(data[0] >> 2 | 1);
    in = evbuffer_new();
    out = evbuffer_new();
    init_amqp_pool(&pool, 4096);
    c = wr__amqp_conn_new(&env, out, "fuzz", data[0] & 1, now);
    if (data[0] & 2) {
        evbuffer_add(in, canned, canned_len);
        wr__amqp_conn_feed(c, in, now);
        check_output(out, &header_seen, &pool);
    }
    data++;
    size--;

    while (off < size) {
        size_t n;
        seed = seed * 1103515245u + 12345u;
        n = 1 + (seed >> 16) % 64;
        if ((seed >> 8) % 4 == 0)
            n = size - off; /* often, everything that is left */
        if (n > size - off)
            n = size - off;
        evbuffer_add(in, data + off, n);
        off += n;
        wr__amqp_conn_feed(c, in, now);
        check_output(out, &header_seen, &pool);
        if ((seed >> 12) % 8 == 0) {
            now += (seed >> 4) % 1500;
            wr__amqp_conn_tick(c, now);
            check_output(out, &header_seen, &pool);
        }
        if (wr__amqp_conn_want(c) == WR_AMQP_WANT_DROP ||
            wr__amqp_conn_want(c) == WR_AMQP_WANT_FLUSH)
            break;
    }
    /* Time passes: every timer fires at least once. */
    if (wr__amqp_conn_deadline(c) != INT64_MAX) {
        wr__amqp_conn_tick(c, wr__amqp_conn_deadline(c));
        check_output(out, &header_seen, &pool);
    }
    wr__amqp_conn_shutdown(c);
    check_output(out, &header_seen, &pool);
    wr__amqp_conn_detach(c);
    if (atomic_load(&env.connections) != 0 || atomic_load(&env.channels) != 0)
        abort();
    evbuffer_free(in);
    evbuffer_free(out);
    empty_amqp_pool(&pool);
    return 0;
}
