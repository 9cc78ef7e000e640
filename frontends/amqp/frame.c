/*
 * frame.c - AMQP 0-9-1 frames: the reader (protocol header, 7-byte frame
 * header, size limit, frame-end octet, content header fixed part) and the
 * writer (method, heartbeat and content frames).
 *
 * rabbitmq-c is only a codec here: it has no server-side reader, so the frame
 * boundaries are ours; method fields and properties go through its
 * amqp_decode_* / amqp_encode_* functions.
 *
 * Wire layout: type:8 channel:16 size:32 payload[size] 0xCE.
 */
#include <string.h>

#include <event2/buffer.h>

#include "amqp_int.h"

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                   */

wr_err_t wr__amqp_header_check(const uint8_t *buf, size_t len)
{
    size_t n = len < WR_AMQP_HEADER_LEN ? len : WR_AMQP_HEADER_LEN;

    /* Judge the bytes we have: a client sending "GET / HTTP/1.1" gets its
     * answer at once instead of waiting for eight bytes. */
    if (memcmp(buf, WR_AMQP_HEADER, n) != 0)
        return WR_EPROTO;
    return n == WR_AMQP_HEADER_LEN ? WR_OK : WR_EAGAIN;
}

wr_err_t wr__amqp_frame_parse(const uint8_t *buf, size_t len, uint32_t frame_max,
                              wr_amqp_frame_t *out, size_t *used)
{
    uint32_t size;

    if (frame_max == 0 || frame_max > WR_AMQP_FRAME_MAX)
        frame_max = WR_AMQP_FRAME_MAX;
    if (len < 7)
        return WR_EAGAIN;
    size = get32(buf + 3);
    /* Judged from the header alone, before any byte of it is buffered: the
     * input never holds more than one frame_max per frame. */
    if (size > frame_max - WR_AMQP_FRAME_OVERHEAD)
        return WR_ETOOBIG;
    if (len < (size_t)size + WR_AMQP_FRAME_OVERHEAD)
        return WR_EAGAIN;
    if (buf[7 + size] != AMQP_FRAME_END)
        return WR_EPROTO;
    out->type = buf[0];
    out->channel = get16(buf + 1);
    out->size = size;
    out->payload = buf + 7;
    *used = (size_t)size + WR_AMQP_FRAME_OVERHEAD;
    return WR_OK;
}

wr_err_t wr__amqp_frame_read(struct evbuffer *in, uint32_t frame_max, wr_amqp_frame_t *out,
                             size_t *used)
{
    size_t have = evbuffer_get_length(in);
    uint8_t hdr[7];
    uint32_t size;
    const uint8_t *p;

    if (have < 7)
        return WR_EAGAIN;
    if (evbuffer_copyout(in, hdr, 7) != 7)
        return WR_EAGAIN;
    size = get32(hdr + 3);
    if (frame_max == 0 || frame_max > WR_AMQP_FRAME_MAX)
        frame_max = WR_AMQP_FRAME_MAX;
    if (size > frame_max - WR_AMQP_FRAME_OVERHEAD)
        return WR_ETOOBIG;
    if (have < (size_t)size + WR_AMQP_FRAME_OVERHEAD)
        return WR_EAGAIN;
    /* Contiguous bytes for the decoder; a copy only if the frame straddles
     * evbuffer chains. */
    p = evbuffer_pullup(in, (ev_ssize_t)size + WR_AMQP_FRAME_OVERHEAD);
    if (!p)
        return WR_ENOMEM;
    return wr__amqp_frame_parse(p, (size_t)size + WR_AMQP_FRAME_OVERHEAD, frame_max, out, used);
}

wr_err_t wr__amqp_content_hdr_parse(const uint8_t *payload, size_t len, wr_amqp_content_hdr_t *out)
{
    uint16_t flags;

    /* class-id:16 weight:16 body-size:64 property-flags:16 ... */
    if (len < 14)
        return WR_EPROTO;
    if (get16(payload + 2) != 0)
        return WR_EPROTO;
    flags = get16(payload + 12);
    if (flags & 1u)
        return WR_EPROTO;
    out->class_id = get16(payload);
    out->body_size = get64(payload + 4);
    out->props = payload + 12;
    out->props_len = len - 12;
    return WR_OK;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */

static void frame_head(uint8_t *p, uint8_t type, uint16_t channel, uint32_t size)
{
    p[0] = type;
    put16(p + 1, channel);
    put32(p + 3, size);
}

/* Encodes a frame in place at the end of `out`: reserve, let fill() write the
 * payload, close the frame, commit. Tries a small reservation first so a
 * short method does not pin a frame_max-sized chunk. */
typedef int (*fill_fn)(void *arg, uint8_t *payload, size_t room);

static wr_err_t write_frame(struct evbuffer *out, uint8_t type, uint16_t channel,
                            uint32_t frame_max, fill_fn fill, void *arg)
{
    size_t tries[2] = {4096, frame_max};
    struct evbuffer_iovec v;
    int n = -1;

    for (int i = 0; i < 2; i++) {
        size_t cap = tries[i];
        if (i == 1 && cap <= tries[0])
            break;
        if (evbuffer_reserve_space(out, (ev_ssize_t)cap, &v, 1) < 1 || v.iov_len < cap)
            return WR_ENOMEM;
        n = fill(arg, (uint8_t *)v.iov_base + 7, cap - WR_AMQP_FRAME_OVERHEAD);
        if (n >= 0)
            break;
    }
    if (n < 0)
        return WR_EINVAL; /* does not encode, or not within frame_max */
    frame_head(v.iov_base, type, channel, (uint32_t)n);
    ((uint8_t *)v.iov_base)[7 + n] = AMQP_FRAME_END;
    v.iov_len = (size_t)n + WR_AMQP_FRAME_OVERHEAD;
    if (evbuffer_commit_space(out, &v, 1) != 0)
        return WR_ENOMEM;
    return WR_OK;
}

typedef struct method_arg {
    amqp_method_number_t id;
    void *decoded;
} method_arg_t;

static int fill_method(void *arg, uint8_t *p, size_t room)
{
    method_arg_t *m = arg;
    amqp_bytes_t enc = {room - 4, p + 4};
    int n;

    if (room < 4)
        return -1;
    put32(p, m->id);
    n = amqp_encode_method(m->id, m->decoded, enc);
    return n < 0 ? -1 : n + 4;
}

wr_err_t wr__amqp_write_method(struct evbuffer *out, uint16_t channel, amqp_method_number_t id,
                               void *decoded, uint32_t frame_max)
{
    method_arg_t m = {id, decoded};

    if (frame_max == 0 || frame_max > WR_AMQP_FRAME_MAX)
        frame_max = WR_AMQP_FRAME_MAX;
    return write_frame(out, AMQP_FRAME_METHOD, channel, frame_max, fill_method, &m);
}

void wr__amqp_write_heartbeat(struct evbuffer *out)
{
    static const uint8_t hb[8] = {AMQP_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, AMQP_FRAME_END};

    evbuffer_add(out, hb, sizeof(hb));
}

typedef struct header_arg {
    uint16_t class_id;
    uint64_t body_size;
    void *props;
} header_arg_t;

static int fill_header(void *arg, uint8_t *p, size_t room)
{
    header_arg_t *h = arg;
    amqp_basic_properties_t none = {0};
    amqp_bytes_t enc = {room - 12, p + 12};
    int n;

    if (room < 14)
        return -1;
    put16(p, h->class_id);
    put16(p + 2, 0);
    put64(p + 4, h->body_size);
    n = amqp_encode_properties(h->class_id, h->props ? h->props : &none, enc);
    return n < 0 ? -1 : n + 12;
}

wr_err_t wr__amqp_write_content(struct evbuffer *out, uint16_t channel, uint16_t class_id,
                                void *props, const void *body, size_t body_len, uint32_t frame_max)
{
    header_arg_t h = {class_id, body_len, props};
    const uint8_t *b = body;
    size_t chunk;
    wr_err_t err;

    if (frame_max == 0 || frame_max > WR_AMQP_FRAME_MAX)
        frame_max = WR_AMQP_FRAME_MAX;
    err = write_frame(out, AMQP_FRAME_HEADER, channel, frame_max, fill_header, &h);
    if (err != WR_OK)
        return err;
    chunk = frame_max - WR_AMQP_FRAME_OVERHEAD;
    while (body_len > 0) {
        size_t n = body_len < chunk ? body_len : chunk;
        uint8_t head[7];
        frame_head(head, AMQP_FRAME_BODY, channel, (uint32_t)n);
        if (evbuffer_add(out, head, 7) != 0 || evbuffer_add(out, b, n) != 0 ||
            evbuffer_add(out, "\xCE", 1) != 0)
            return WR_ENOMEM;
        b += n;
        body_len -= n;
    }
    return WR_OK;
}
