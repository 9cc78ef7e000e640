/*
 * deadletter.c - the x-death headers of a dead-lettered message (RabbitMQ's
 * format), for the core's dead-letter properties hook
 * (wr_core_cfg_t.deadletter_props = wr_amqp_deadletter_props).
 *
 * headers["x-death"] is an array of tables, most recent first, one per
 * (queue, reason): count, reason, queue, time, exchange, routing-keys, and
 * original-expiration when the message had an expiration (which is then
 * removed, so the message does not expire again at once). The first death
 * also sets x-first-death-reason, -queue and -exchange. The properties are
 * decoded and encoded again here (the only place that changes a publisher's
 * property bytes, as RabbitMQ does on dead-lettering). A message without
 * AMQP properties (published over REST) is left as it is.
 *
 * Runs on shard threads, several at once: everything is local (one pool).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../core/log.h"
#include "amqp.h"
#include "amqp_int.h"

static bool key_is(amqp_bytes_t k, const char *s)
{
    size_t n = strlen(s);
    return k.len == n && memcmp(k.bytes, s, n) == 0;
}

static amqp_bytes_t bytes_of(wr_slice_t s)
{
    amqp_bytes_t b = {s.len, (void *)s.ptr};
    return b;
}

static amqp_table_entry_t entry(const char *key, uint8_t kind)
{
    amqp_table_entry_t e;
    memset(&e, 0, sizeof(e));
    e.key = amqp_cstring_bytes(key);
    e.value.kind = kind;
    return e;
}

static amqp_table_entry_t entry_str(const char *key, amqp_bytes_t v)
{
    amqp_table_entry_t e = entry(key, AMQP_FIELD_KIND_UTF8);
    e.value.value.bytes = v;
    return e;
}

static const amqp_field_value_t *table_get(const amqp_table_t *t, const char *key)
{
    for (int i = 0; i < t->num_entries; i++) {
        if (key_is(t->entries[i].key, key))
            return &t->entries[i].value;
    }
    return NULL;
}

static bool same_str(const amqp_field_value_t *v, amqp_bytes_t want)
{
    return v && (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES) &&
           v->value.bytes.len == want.len &&
           (want.len == 0 || memcmp(v->value.bytes.bytes, want.bytes, want.len) == 0);
}

static void *palloc(amqp_pool_t *pool, size_t n)
{
    void *p = amqp_pool_alloc(pool, n ? n : 1);
    if (!p)
        wr_panic(__FILE__, __LINE__, "out of memory");
    return p;
}

wr_body_t *wr_amqp_deadletter_props(void *ctx, const wr_body_t *msg,
                                    const wr_deadletter_info_t *info)
{
    amqp_pool_t pool;
    amqp_basic_properties_t *p;
    amqp_bytes_t raw, enc;
    amqp_table_t *h;
    const amqp_field_value_t *old;
    amqp_array_t deaths = {0, NULL};
    amqp_table_entry_t *ents, *death;
    amqp_bytes_t reason = bytes_of((wr_slice_t){info->reason, strlen(info->reason)});
    amqp_bytes_t queue = bytes_of(info->queue), exch = bytes_of(info->exchange);
    amqp_bytes_t expiration = {0, NULL};
    int64_t count = 1;
    int n = 0, max, found = -1;
    void *decoded;
    uint8_t *buf;
    size_t cap;
    wr_body_t *out = NULL;

    (void)ctx;
    if (msg->props_len < 3 || msg->data[0] != WR_AMQP_PROPS_091 ||
        !wr__amqp_props_ok(msg->data + 1, msg->props_len - 1))
        return NULL;
    init_amqp_pool(&pool, 4096);
    raw.bytes = palloc(&pool, msg->props_len - 1);
    raw.len = msg->props_len - 1;
    memcpy(raw.bytes, msg->data + 1, raw.len);
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, raw, &decoded) < 0)
        goto done;
    p = decoded;
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG)) {
        p->_flags |= AMQP_BASIC_HEADERS_FLAG;
        p->headers.num_entries = 0;
        p->headers.entries = NULL;
    }
    h = &p->headers;
    if (p->_flags & AMQP_BASIC_EXPIRATION_FLAG) {
        expiration = p->expiration;
        p->_flags &= (amqp_flags_t)~AMQP_BASIC_EXPIRATION_FLAG;
    }

    /* x-death: find the entry for this (queue, reason), most recent first. */
    old = table_get(h, "x-death");
    if (old && old->kind == AMQP_FIELD_KIND_ARRAY)
        deaths = old->value.array;
    for (int i = 0; i < deaths.num_entries; i++) {
        const amqp_field_value_t *d = &deaths.entries[i], *c;
        if (d->kind != AMQP_FIELD_KIND_TABLE)
            continue;
        if (same_str(table_get(&d->value.table, "queue"), queue) &&
            same_str(table_get(&d->value.table, "reason"), reason)) {
            found = i;
            c = table_get(&d->value.table, "count");
            if (c && c->kind == AMQP_FIELD_KIND_I64)
                count = c->value.i64 + 1;
            break;
        }
    }
    {
        amqp_field_value_t *nd = palloc(&pool, sizeof(*nd) * (size_t)(deaths.num_entries + 1));
        amqp_field_value_t *rkv = palloc(&pool, sizeof(*rkv));
        int k = 0;
        death = palloc(&pool, sizeof(*death) * 7);
        death[k] = entry("count", AMQP_FIELD_KIND_I64);
        death[k++].value.value.i64 = count;
        death[k++] = entry_str("reason", reason);
        death[k++] = entry_str("queue", queue);
        death[k] = entry("time", AMQP_FIELD_KIND_TIMESTAMP);
        death[k++].value.value.u64 = (uint64_t)time(NULL);
        death[k++] = entry_str("exchange", exch);
        rkv->kind = AMQP_FIELD_KIND_UTF8;
        rkv->value.bytes = bytes_of(info->routing_key);
        death[k] = entry("routing-keys", AMQP_FIELD_KIND_ARRAY);
        death[k].value.value.array.num_entries = 1;
        death[k++].value.value.array.entries = rkv;
        if (expiration.len)
            death[k++] = entry_str("original-expiration", expiration);
        nd[0].kind = AMQP_FIELD_KIND_TABLE;
        nd[0].value.table.num_entries = k;
        nd[0].value.table.entries = death;
        for (int i = 0, j = 1; i < deaths.num_entries; i++) {
            if (i != found)
                nd[j++] = deaths.entries[i];
        }
        deaths.num_entries = deaths.num_entries + (found < 0 ? 1 : 0);
        deaths.entries = nd;
    }

    /* The headers again: x-death replaced, x-first-death-* added once. */
    max = h->num_entries + 4;
    ents = palloc(&pool, sizeof(*ents) * (size_t)max);
    for (int i = 0; i < h->num_entries; i++) {
        if (!key_is(h->entries[i].key, "x-death"))
            ents[n++] = h->entries[i];
    }
    ents[n] = entry("x-death", AMQP_FIELD_KIND_ARRAY);
    ents[n++].value.value.array = deaths;
    if (!table_get(h, "x-first-death-reason")) {
        ents[n++] = entry_str("x-first-death-reason", reason);
        ents[n++] = entry_str("x-first-death-queue", queue);
        ents[n++] = entry_str("x-first-death-exchange", exch);
    }
    h->num_entries = n;
    h->entries = ents;

    for (cap = msg->props_len + 1024;; cap *= 2) {
        int r;
        buf = palloc(&pool, cap);
        buf[0] = WR_AMQP_PROPS_091;
        enc.bytes = buf + 1;
        enc.len = cap - 1;
        r = amqp_encode_properties(AMQP_BASIC_CLASS, p, enc);
        if (r >= 0) {
            wr_slice_t props = {buf, (size_t)r + 1};
            wr_slice_t body = {wr_body_bytes(msg), msg->body_len};
            out = wr_body_new(props, body);
            break;
        }
        if (cap > (16u << 20))
            break;
    }
done:
    empty_amqp_pool(&pool);
    return out;
}
