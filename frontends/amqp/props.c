/*
 * props.c - basic properties kept as the client encoded them, and the few
 * things the broker reads from them; headers as the core's wr_header_t;
 * random names.
 *
 * A message's props in the core are one format byte (WR_AMQP_PROPS_091)
 * followed by the content header's property flags and fields exactly as
 * received, so a delivery sends the client's bytes back untouched (nothing
 * is decoded and re-encoded: nested tables, decimals and timestamps survive
 * byte for byte). The scanner below only locates expiration, delivery_mode,
 * priority, user_id and the headers table, checking every field's length.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../../core/log.h"
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

/* ------------------------------------------------------------------------ */
/* Scanner                                                                  */

static bool shortstr(const uint8_t *p, size_t len, size_t *off, wr_slice_t *out)
{
    size_t n;

    if (*off >= len)
        return false;
    n = p[*off];
    if (n > len - *off - 1)
        return false;
    if (out) {
        out->ptr = p + *off + 1;
        out->len = n;
    }
    *off += 1 + n;
    return true;
}

wr_err_t wr__amqp_props_scan(const uint8_t *p, size_t len, wr_amqp_props_t *out)
{
    size_t off = 2;
    uint16_t f;

    memset(out, 0, sizeof(*out));
    if (len < 2)
        return WR_EPROTO;
    f = get16(p);
    if (f & 0x0003u) /* continuation, or the unused bit */
        return WR_EPROTO;
    out->raw = p;
    out->raw_len = len;
    out->flags = f;
    if ((f & AMQP_BASIC_CONTENT_TYPE_FLAG) && !shortstr(p, len, &off, NULL))
        return WR_EPROTO;
    if ((f & AMQP_BASIC_CONTENT_ENCODING_FLAG) && !shortstr(p, len, &off, NULL))
        return WR_EPROTO;
    if (f & AMQP_BASIC_HEADERS_FLAG) {
        uint32_t n;
        if (len - off < 4)
            return WR_EPROTO;
        n = get32(p + off);
        if (n > len - off - 4 || !wr__amqp_table_ok(p + off, 4 + (size_t)n))
            return WR_EPROTO;
        out->headers.ptr = p + off;
        out->headers.len = 4 + (size_t)n;
        off += 4 + (size_t)n;
    }
    if (f & AMQP_BASIC_DELIVERY_MODE_FLAG) {
        if (off >= len)
            return WR_EPROTO;
        out->delivery_mode = p[off++];
    }
    if (f & AMQP_BASIC_PRIORITY_FLAG) {
        if (off >= len)
            return WR_EPROTO;
        out->priority = p[off++];
    }
    if ((f & AMQP_BASIC_CORRELATION_ID_FLAG) && !shortstr(p, len, &off, NULL))
        return WR_EPROTO;
    if ((f & AMQP_BASIC_REPLY_TO_FLAG) && !shortstr(p, len, &off, &out->reply_to))
        return WR_EPROTO;
    if ((f & AMQP_BASIC_EXPIRATION_FLAG) && !shortstr(p, len, &off, &out->expiration))
        return WR_EPROTO;
    if ((f & AMQP_BASIC_MESSAGE_ID_FLAG) && !shortstr(p, len, &off, NULL))
        return WR_EPROTO;
    if (f & AMQP_BASIC_TIMESTAMP_FLAG) {
        if (len - off < 8)
            return WR_EPROTO;
        off += 8;
    }
    if ((f & AMQP_BASIC_TYPE_FLAG) && !shortstr(p, len, &off, NULL))
        return WR_EPROTO;
    if ((f & AMQP_BASIC_USER_ID_FLAG) && !shortstr(p, len, &off, &out->user_id))
        return WR_EPROTO;
    if ((f & AMQP_BASIC_APP_ID_FLAG) && !shortstr(p, len, &off, NULL))
        return WR_EPROTO;
    if ((f & AMQP_BASIC_CLUSTER_ID_FLAG) && !shortstr(p, len, &off, NULL))
        return WR_EPROTO;
    /* Trailing bytes after the last field: RabbitMQ ignores them, but we
     * would hand them back to consumers; refuse. */
    return off == len ? WR_OK : WR_EPROTO;
}

wr_slice_t wr__amqp_props_default(bool persistent)
{
    /* flags: content_type | delivery_mode */
    static const uint8_t p2[] = "\x90\x00\x10"
                                "application/json"
                                "\x02";
    static const uint8_t p1[] = "\x90\x00\x10"
                                "application/json"
                                "\x01";
    wr_slice_t s = {persistent ? p2 : p1, sizeof(p2) - 1};
    return s;
}

bool wr__amqp_expiration(wr_slice_t s, int64_t *ms)
{
    const char *p = s.ptr;
    int64_t v = 0;

    /* RabbitMQ: a non-negative integer in decimal, no sign, no blanks. */
    if (s.len == 0 || s.len > 18)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *ms = v;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Headers                                                                  */

/* One encoded value at p[*off] (its kind octet first) as a header value. */
static bool raw_value(const uint8_t *p, size_t len, size_t *off, wr_header_t *h)
{
    size_t start = *off, n;
    uint8_t kind;

    if (*off >= len)
        return false;
    kind = p[(*off)++];
    switch (kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
        if (len - *off < 1)
            return false;
        h->kind = WR_HDR_BOOL;
        h->v.b = p[*off] != 0;
        *off += 1;
        return true;
    case AMQP_FIELD_KIND_I8:
        if (len - *off < 1)
            return false;
        h->kind = WR_HDR_INT;
        h->v.i = (int8_t)p[*off];
        *off += 1;
        return true;
    case AMQP_FIELD_KIND_U8:
        if (len - *off < 1)
            return false;
        h->kind = WR_HDR_INT;
        h->v.i = p[*off];
        *off += 1;
        return true;
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
        if (len - *off < 2)
            return false;
        h->kind = WR_HDR_INT;
        h->v.i = kind == AMQP_FIELD_KIND_I16 ? (int64_t)(int16_t)get16(p + *off)
                                             : (int64_t)get16(p + *off);
        *off += 2;
        return true;
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
        if (len - *off < 4)
            return false;
        h->kind = WR_HDR_INT;
        h->v.i = kind == AMQP_FIELD_KIND_I32 ? (int64_t)(int32_t)get32(p + *off)
                                             : (int64_t)get32(p + *off);
        *off += 4;
        return true;
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_U64:
        if (len - *off < 8)
            return false;
        h->kind = WR_HDR_INT;
        h->v.i = (int64_t)get64(p + *off);
        *off += 8;
        return true;
    case AMQP_FIELD_KIND_F32: {
        uint32_t u;
        float f;
        if (len - *off < 4)
            return false;
        u = get32(p + *off);
        memcpy(&f, &u, 4);
        h->kind = WR_HDR_FLOAT;
        h->v.f = f;
        *off += 4;
        return true;
    }
    case AMQP_FIELD_KIND_F64: {
        uint64_t u;
        double d;
        if (len - *off < 8)
            return false;
        u = get64(p + *off);
        memcpy(&d, &u, 8);
        h->kind = WR_HDR_FLOAT;
        h->v.f = d;
        *off += 8;
        return true;
    }
    case AMQP_FIELD_KIND_VOID:
        h->kind = WR_HDR_VOID;
        return true;
    case AMQP_FIELD_KIND_UTF8:
        if (len - *off < 4)
            return false;
        n = get32(p + *off);
        if (n > len - *off - 4)
            return false;
        h->kind = WR_HDR_STR;
        h->v.s.ptr = p + *off + 4;
        h->v.s.len = n;
        *off += 4 + n;
        return true;
    case AMQP_FIELD_KIND_DECIMAL:
        n = 5;
        break;
    case AMQP_FIELD_KIND_TIMESTAMP:
        n = 8;
        break;
    case AMQP_FIELD_KIND_BYTES:
    case AMQP_FIELD_KIND_TABLE:
    case AMQP_FIELD_KIND_ARRAY:
        if (len - *off < 4)
            return false;
        n = 4 + (size_t)get32(p + *off);
        break;
    default:
        return false;
    }
    if (n > len - *off)
        return false;
    *off += n;
    h->kind = WR_HDR_OTHER;
    h->v.s.ptr = p + start;
    h->v.s.len = *off - start;
    return true;
}

wr_err_t wr__amqp_headers_raw(wr_slice_t table, wr_header_t *out, size_t max, size_t *n)
{
    const uint8_t *p = table.ptr;
    size_t len, off = 4;

    *n = 0;
    if (table.len == 0)
        return WR_OK;
    if (table.len < 4)
        return WR_EPROTO;
    len = 4 + (size_t)get32(p);
    if (len > table.len)
        return WR_EPROTO;
    while (off < len) {
        wr_header_t h;
        size_t klen = p[off];
        if (klen > len - off - 1)
            return WR_EPROTO;
        h.key.ptr = p + off + 1;
        h.key.len = klen;
        off += 1 + klen;
        if (!raw_value(p, len, &off, &h))
            return WR_EPROTO;
        if (*n >= max)
            return WR_EINVAL;
        out[(*n)++] = h;
    }
    return WR_OK;
}

wr_err_t wr__amqp_headers_table(const amqp_table_t *t, amqp_pool_t *pool, wr_header_t *out,
                                size_t max, size_t *n)
{
    size_t cap = 4096;
    uint8_t *buf;
    amqp_bytes_t enc;
    size_t off = 0;

    /* Re-encode the decoded table (rabbitmq-c keeps every kind as sent),
     * then read it like a message's headers. */
    *n = 0;
    if (t->num_entries == 0)
        return WR_OK;
    for (;;) {
        buf = amqp_pool_alloc(pool, cap);
        if (!buf)
            wr_panic(__FILE__, __LINE__, "out of memory");
        enc.bytes = buf + 4;
        enc.len = cap - 4;
        off = 0;
        if (amqp_encode_table(enc, (amqp_table_t *)t, &off) == AMQP_STATUS_OK)
            break;
        if (cap >= (1u << 20))
            return WR_EINVAL;
        cap *= 4;
    }
    /* amqp_encode_table writes its own 4-byte length at enc.bytes. */
    return wr__amqp_headers_raw((wr_slice_t){buf + 4, off}, out, max, n);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */

size_t wr__amqp_random_name(char *buf, const char *prefix)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t rnd[22];
    size_t n = strlen(prefix);

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        /* getrandom does not fail for 22 bytes once the pool is ready;
         * fall back to something unique anyway. */
        static _Atomic uint64_t ctr;
        uint64_t v = atomic_fetch_add(&ctr, 1) ^ (uint64_t)(uintptr_t)buf;
        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = (uint8_t)(v >> ((i % 8) * 8)) ^ (uint8_t)i;
    }
    memcpy(buf, prefix, n);
    for (size_t i = 0; i < sizeof(rnd); i++)
        buf[n + i] = alphabet[rnd[i] & 63];
    buf[n + sizeof(rnd)] = '\0';
    return n + sizeof(rnd);
}
