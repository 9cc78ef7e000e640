/*
 * record.c - what the core writes to the store, and reading it back.
 *
 * Every value is one msgpack array whose first element is the record
 * version. Readers accept longer arrays than they know (a later version may
 * append fields) and refuse shorter ones or wrong types: a record we cannot
 * read means the data dir is not ours or is damaged, and start-up must stop
 * rather than drop what it cannot understand.
 *
 *   queue    key "q" tenant '\0' name
 *            [1, qid, created_ms, durable, default_ttl_ms, default_delay_ms,
 *             max_length, max_bytes, overflow, max_post_bytes, max_priority,
 *             exclusive, auto_delete, expires_ms, dlx|nil, dlrk|nil, meta|nil]
 *   message  (qid, id)
 *            [1, flags, claim_count, enqueued_ms, ttl_ms, visible_ms,
 *             producer, exchange|nil, routing_key|nil, props, body]
 *            flags keep WR__MSG_ROUTE: a routed message with exchange and
 *            key nil came through the default exchange with the queue's name
 *   mark     (qid | WR__QID_MARK, id) -> empty: the message was delivered
 *            at least once, so it comes back with the redelivered flag
 *
 * Byte strings are msgpack bin; numbers are msgpack ints (any width).
 */
#include <string.h>

#include "core_int.h"

#define REC_V1 1u

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */

static void pack_bytes(msgpack_packer *pk, const void *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

static void pack_opt(msgpack_packer *pk, bool set, const void *p, size_t n)
{
    if (set)
        pack_bytes(pk, p, n);
    else
        msgpack_pack_nil(pk);
}

void wr__rec_queue(msgpack_sbuffer *sb, const wr__queue_t *q)
{
    msgpack_packer pk;
    const wr_queue_attrs_t *a = &q->attrs;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 17);
    msgpack_pack_uint32(&pk, REC_V1);
    msgpack_pack_uint64(&pk, q->qid);
    msgpack_pack_int64(&pk, q->created_ms);
    msgpack_pack_int(&pk, a->durable);
    msgpack_pack_int64(&pk, a->default_ttl_ms);
    msgpack_pack_int64(&pk, a->default_delay_ms);
    msgpack_pack_uint64(&pk, a->max_length);
    msgpack_pack_uint64(&pk, a->max_bytes);
    msgpack_pack_int(&pk, (int)a->overflow);
    msgpack_pack_uint32(&pk, a->max_post_bytes);
    msgpack_pack_uint8(&pk, a->max_priority);
    msgpack_pack_int(&pk, a->exclusive);
    msgpack_pack_int(&pk, a->auto_delete);
    msgpack_pack_int64(&pk, a->expires_ms);
    pack_opt(&pk, a->dlx_set, a->dlx, a->dlx_len);
    pack_opt(&pk, a->dlrk_set, a->dlrk, a->dlrk_len);
    pack_opt(&pk, q->meta != NULL, q->meta ? wr_body_bytes(q->meta) : NULL,
             q->meta ? q->meta->body_len : 0);
}

void wr__rec_msg(msgpack_sbuffer *sb, const wr__msg_t *m)
{
    msgpack_packer pk;
    const wr_body_t *route = wr__msg_route(m), *b = wr__msg_body(m);
    uint32_t stored = m->flags & WR__REC_MSG_FLAGS;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 11);
    msgpack_pack_uint32(&pk, REC_V1);
    msgpack_pack_uint32(&pk, stored);
    msgpack_pack_uint32(&pk, m->claim_count);
    msgpack_pack_int64(&pk, m->enqueued_ms);
    msgpack_pack_int64(&pk, wr__msg_ttl(m));
    msgpack_pack_int64(&pk, wr__msg_visible(m));
    msgpack_pack_uint64(&pk, wr__msg_producer(m));
    pack_opt(&pk, route != NULL, route ? route->data : NULL, route ? route->props_len : 0);
    pack_opt(&pk, route != NULL, route ? wr_body_bytes(route) : NULL,
             route ? route->body_len : 0);
    pack_bytes(&pk, b->data, b->props_len);
    pack_bytes(&pk, wr_body_bytes(b), b->body_len);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */

bool wr__rec_u64(const msgpack_object *o, uint64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = o->via.u64;
        return true;
    }
    return false;
}

bool wr__rec_i64(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return true;
    }
    return false;
}

/* A bin (or nil when nil_ok: *set false). */
bool wr__rec_bin(const msgpack_object *o, bool nil_ok, wr_slice_t *out, bool *set)
{
    if (o->type == MSGPACK_OBJECT_NIL && nil_ok) {
        *out = (wr_slice_t){NULL, 0};
        if (set)
            *set = false;
        return true;
    }
    if (o->type != MSGPACK_OBJECT_BIN)
        return false;
    *out = (wr_slice_t){o->via.bin.ptr, o->via.bin.size};
    if (set)
        *set = true;
    return true;
}

static bool get_u64_max(const msgpack_object *o, uint64_t max, uint64_t *out)
{
    return wr__rec_u64(o, out) && *out <= max;
}

const msgpack_object *wr__rec_open(msgpack_unpacked *u, wr_bytes_t val, uint32_t min_fields)
{
    size_t off = 0;
    const msgpack_object *o;
    uint64_t v;

    if (msgpack_unpack_next(u, val.ptr, val.len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != val.len)
        return NULL;
    o = &u->data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < min_fields ||
        !wr__rec_u64(&o->via.array.ptr[0], &v) || v != REC_V1)
        return NULL;
    return o->via.array.ptr;
}

wr_err_t wr__rec_queue_parse(msgpack_unpacked *u, wr_bytes_t val, wr__qrec_t *out)
{
    const msgpack_object *f = wr__rec_open(u, val, 17);
    wr_queue_attrs_t *a = &out->attrs;
    uint64_t durable, overflow, post, prio, excl, autodel;
    wr_slice_t dlx, dlrk;

    memset(out, 0, sizeof(*out));
    if (!f || !wr__rec_u64(&f[1], &out->qid) || out->qid == 0 || out->qid >= WR__QID_MARK ||
        !wr__rec_i64(&f[2], &out->created_ms) || !get_u64_max(&f[3], 1, &durable) ||
        !wr__rec_i64(&f[4], &a->default_ttl_ms) || !wr__rec_i64(&f[5], &a->default_delay_ms) ||
        !wr__rec_u64(&f[6], &a->max_length) || !wr__rec_u64(&f[7], &a->max_bytes) ||
        !get_u64_max(&f[8], WR_OVERFLOW_REJECT_DLX, &overflow) ||
        !get_u64_max(&f[9], UINT32_MAX, &post) || !get_u64_max(&f[10], 255, &prio) ||
        !get_u64_max(&f[11], 1, &excl) || !get_u64_max(&f[12], 1, &autodel) ||
        !wr__rec_i64(&f[13], &a->expires_ms) || !wr__rec_bin(&f[14], true, &dlx, &a->dlx_set) ||
        !wr__rec_bin(&f[15], true, &dlrk, &a->dlrk_set) ||
        !wr__rec_bin(&f[16], true, &out->meta, NULL) || dlx.len > 255 || dlrk.len > 255 ||
        out->meta.len > WR_META_MAX)
        return WR_EPROTO;
    a->durable = durable;
    a->overflow = (wr_overflow_t)overflow;
    a->max_post_bytes = (uint32_t)post;
    a->max_priority = (uint8_t)prio;
    a->exclusive = excl;
    a->auto_delete = autodel;
    a->dlx_len = (uint8_t)dlx.len;
    a->dlrk_len = (uint8_t)dlrk.len;
    if (dlx.len)
        memcpy(a->dlx, dlx.ptr, dlx.len);
    if (dlrk.len)
        memcpy(a->dlrk, dlrk.ptr, dlrk.len);
    return WR_OK;
}

wr_err_t wr__rec_msg_parse(msgpack_unpacked *u, wr_bytes_t val, wr__mrec_t *out)
{
    const msgpack_object *f = wr__rec_open(u, val, 11);
    uint64_t flags, count;
    bool has_exch, has_key;

    memset(out, 0, sizeof(*out));
    if (!f || !get_u64_max(&f[1], UINT32_MAX, &flags) ||
        !get_u64_max(&f[2], UINT32_MAX, &count) || !wr__rec_i64(&f[3], &out->enqueued_ms) ||
        !wr__rec_i64(&f[4], &out->ttl_ms) || !wr__rec_i64(&f[5], &out->visible_ms) ||
        !wr__rec_u64(&f[6], &out->producer) ||
        !wr__rec_bin(&f[7], true, &out->exchange, &has_exch) ||
        !wr__rec_bin(&f[8], true, &out->key, &has_key) || has_exch != has_key ||
        (has_exch && !(flags & WR__MSG_ROUTE)) ||
        !wr__rec_bin(&f[9], false, &out->props, NULL) ||
        !wr__rec_bin(&f[10], false, &out->body, NULL) || out->ttl_ms < 0 ||
        out->ttl_ms > WR__MAX_DURATION_MS)
        return WR_EPROTO;
    out->flags = (uint32_t)flags & WR__REC_MSG_FLAGS;
    out->claim_count = (uint32_t)count;
    return WR_OK;
}
