/*
 * guard.c - checks field tables before rabbitmq-c decodes them.
 *
 * Why: rabbitmq-c 0.11 (Debian 12) decodes nested tables and arrays by
 * recursion with no depth limit (fixed upstream later). One frame of 128 KiB
 * can nest some 26,000 levels, enough to overflow a 2 MiB thread stack, and
 * connection.start-ok carries a table before the client has logged in. So
 * every table from the network is walked here first, without allocating,
 * with nesting bounded by WR_AMQP_TABLE_DEPTH; only then is it decoded.
 *
 * The walk follows the field kinds rabbitmq-c knows; anything it would
 * refuse is refused here too (the decoder stays the authority on the rest).
 * Methods carry tables at known places: a layout string per method says
 * which fields come before them.
 */
#include <string.h>

#include "amqp_int.h"

static bool need(size_t len, size_t off, size_t n)
{
    return off <= len && n <= len - off;
}

static bool get32(const uint8_t *p, size_t len, size_t *off, uint32_t *v)
{
    if (!need(len, *off, 4))
        return false;
    p += *off;
    *v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    *off += 4;
    return true;
}

static bool skip_table(const uint8_t *p, size_t len, size_t *off, int depth);
static bool skip_array(const uint8_t *p, size_t len, size_t *off, int depth);

static bool skip_value(const uint8_t *p, size_t len, size_t *off, int depth)
{
    uint32_t n;
    size_t fixed;

    if (!need(len, *off, 1))
        return false;
    switch (p[(*off)++]) {
    case AMQP_FIELD_KIND_BOOLEAN:
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8:
        fixed = 1;
        break;
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
        fixed = 2;
        break;
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
    case AMQP_FIELD_KIND_F32:
        fixed = 4;
        break;
    case AMQP_FIELD_KIND_DECIMAL:
        fixed = 5;
        break;
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_F64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        fixed = 8;
        break;
    case AMQP_FIELD_KIND_VOID:
        fixed = 0;
        break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        if (!get32(p, len, off, &n))
            return false;
        fixed = n;
        break;
    case AMQP_FIELD_KIND_TABLE:
        return skip_table(p, len, off, depth + 1);
    case AMQP_FIELD_KIND_ARRAY:
        return skip_array(p, len, off, depth + 1);
    default:
        return false;
    }
    if (!need(len, *off, fixed))
        return false;
    *off += fixed;
    return true;
}

static bool skip_table(const uint8_t *p, size_t len, size_t *off, int depth)
{
    uint32_t n;
    size_t end;

    if (depth > WR_AMQP_TABLE_DEPTH || !get32(p, len, off, &n) || !need(len, *off, n))
        return false;
    end = *off + n;
    while (*off < end) {
        size_t klen = p[*off];
        if (!need(end, *off, 1 + klen))
            return false;
        *off += 1 + klen;
        if (!skip_value(p, end, off, depth))
            return false;
    }
    return *off == end;
}

static bool skip_array(const uint8_t *p, size_t len, size_t *off, int depth)
{
    uint32_t n;
    size_t end;

    if (depth > WR_AMQP_TABLE_DEPTH || !get32(p, len, off, &n) || !need(len, *off, n))
        return false;
    end = *off + n;
    while (*off < end) {
        if (!skip_value(p, end, off, depth))
            return false;
    }
    return *off == end;
}

bool wr__amqp_table_ok(const uint8_t *p, size_t len)
{
    size_t off = 0;
    return skip_table(p, len, &off, 0);
}

/*
 * Field layouts of the client methods that carry a table, up to and
 * including their (last) table: 's' short string, 'S' long string,
 * 'o' octet (packed bits), 'h' short, 'T' table.
 */
static const char *layout_of(amqp_method_number_t id)
{
    switch (id) {
    case AMQP_CONNECTION_START_OK_METHOD:
        return "T"; /* then mechanism, response (AMQPLAIN: checked in auth.c) */
    case AMQP_EXCHANGE_DECLARE_METHOD:
        return "hssoT";
    case AMQP_EXCHANGE_BIND_METHOD:
    case AMQP_EXCHANGE_UNBIND_METHOD:
    case AMQP_QUEUE_BIND_METHOD:
        return "hsssoT";
    case AMQP_QUEUE_DECLARE_METHOD:
        return "hsoT";
    case AMQP_QUEUE_UNBIND_METHOD:
        return "hsssT";
    case AMQP_BASIC_CONSUME_METHOD:
        return "hssoT";
    default:
        return NULL;
    }
}

bool wr__amqp_method_ok(amqp_method_number_t id, const uint8_t *p, size_t len)
{
    const char *l = layout_of(id);
    size_t off = 0;
    uint32_t n;

    if (!l)
        return true;
    for (; *l; l++) {
        switch (*l) {
        case 'o':
            if (!need(len, off, 1))
                return false;
            off += 1;
            break;
        case 'h':
            if (!need(len, off, 2))
                return false;
            off += 2;
            break;
        case 's':
            if (!need(len, off, 1) || !need(len, off + 1, p[off]))
                return false;
            off += 1 + (size_t)p[off];
            break;
        case 'S':
            if (!get32(p, len, &off, &n) || !need(len, off, n))
                return false;
            off += n;
            break;
        case 'T':
            if (!skip_table(p, len, &off, 0))
                return false;
            break;
        default:
            return false;
        }
    }
    return true;
}

bool wr__amqp_props_ok(const uint8_t *p, size_t len)
{
    size_t off = 2;
    uint16_t flags;

    /* Basic properties: flags:16, then content-type (short string) and
     * content-encoding (short string) if present, then headers (table). */
    if (len < 2)
        return false;
    flags = (uint16_t)((uint16_t)p[0] << 8 | p[1]);
    if (flags & AMQP_BASIC_CONTENT_TYPE_FLAG) {
        if (!need(len, off, 1) || !need(len, off + 1, p[off]))
            return false;
        off += 1 + (size_t)p[off];
    }
    if (flags & AMQP_BASIC_CONTENT_ENCODING_FLAG) {
        if (!need(len, off, 1) || !need(len, off + 1, p[off]))
            return false;
        off += 1 + (size_t)p[off];
    }
    if (flags & AMQP_BASIC_HEADERS_FLAG)
        return skip_table(p, len, &off, 0);
    return true;
}
