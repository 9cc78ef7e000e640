/*
 * topology.c - exchange.* and queue.* methods on the core.
 *
 * Layout: helpers (errors with RabbitMQ's texts, the last-declared-queue
 * shortcut), exchange methods, queue arguments, queue methods.
 *
 * Each method begins an op (ops.c: its channel waits for the answer), calls
 * the core, and answers from the callback; nowait methods answer nothing
 * but still raise exceptions. RabbitMQ's rules kept here: an unknown
 * exchange type is a connection error 503 COMMAND_INVALID; names starting
 * with "amq." cannot be declared (403); exchange.delete and queue.delete of
 * something missing answer delete-ok; "" as a queue name means the queue
 * last declared on the channel (and "" as queue.bind's routing key then
 * means its name).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"
#include "amqp_int.h"

static bool bytes_is(amqp_bytes_t b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && (n == 0 || memcmp(b.bytes, s, n) == 0);
}

static bool has_amq_prefix(amqp_bytes_t b)
{
    return b.len >= 4 && memcmp(b.bytes, "amq.", 4) == 0;
}

static wr_slice_t tenant_of(const wr_amqp_conn_t *c)
{
    wr_slice_t s = {c->tenant, c->tenant_len};
    return s;
}

static wr_slice_t sl(const char *p, size_t n)
{
    wr_slice_t s = {p, n};
    return s;
}

/* A core call failed at once (its callback will not run): raise and end. */
static void op_failed_now(wr_amqp_op_t *op, wr_amqp_chan_t *ch, wr_err_t err)
{
    wr__amqp_fail(op->c, ch, err, op->id, "%s: %s", wr__amqp_method_name(op->id), wr_strerror(err));
    wr__amqp_op_done(op);
}

/* Names longer than a short string cannot arrive; names the core refuses
 * (empty where one is required) are answered here. */
bool wr__amqp_queue_name(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id,
                         amqp_bytes_t *name)
{
    if (name->len > 0)
        return true;
    if (ch->last_queue_len == 0) {
        wr__amqp_chan_error(c, ch, AMQP_NOT_FOUND, id, "no previously declared queue");
        return false;
    }
    name->bytes = ch->last_queue;
    name->len = ch->last_queue_len;
    return true;
}

static const char *kind_name(uint8_t kind)
{
    switch (kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
        return "bool";
    case AMQP_FIELD_KIND_I8:
        return "byte";
    case AMQP_FIELD_KIND_U8:
        return "unsignedbyte";
    case AMQP_FIELD_KIND_I16:
        return "short";
    case AMQP_FIELD_KIND_U16:
        return "unsignedshort";
    case AMQP_FIELD_KIND_I32:
        return "signedint";
    case AMQP_FIELD_KIND_U32:
        return "unsignedint";
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_U64:
        return "long";
    case AMQP_FIELD_KIND_F32:
        return "float";
    case AMQP_FIELD_KIND_F64:
        return "double";
    case AMQP_FIELD_KIND_DECIMAL:
        return "decimal";
    case AMQP_FIELD_KIND_UTF8:
        return "longstr";
    case AMQP_FIELD_KIND_ARRAY:
        return "array";
    case AMQP_FIELD_KIND_TIMESTAMP:
        return "timestamp";
    case AMQP_FIELD_KIND_TABLE:
        return "table";
    case AMQP_FIELD_KIND_VOID:
        return "void";
    case AMQP_FIELD_KIND_BYTES:
        return "binary";
    default:
        return "unknown";
    }
}

/* ------------------------------------------------------------------------ */
/* Exchanges                                                                */

static bool known_type(amqp_bytes_t t)
{
    return bytes_is(t, "direct") || bytes_is(t, "fanout") || bytes_is(t, "topic") ||
           bytes_is(t, "headers");
}

static void on_exchange_declared(void *arg, const wr_count_res_t *res)
{
    wr_amqp_op_t *op = arg;
    wr_amqp_chan_t *ch = wr__amqp_op_chan(op);
    amqp_exchange_declare_ok_t ok = {0};

    if (ch) {
        switch ((int)res->err) {
        case WR_OK:
            wr__amqp_op_reply(op, ch, AMQP_EXCHANGE_DECLARE_OK_METHOD, &ok);
            break;
        case WR_ENOTFOUND:
            wr__amqp_chan_error(op->c, ch, AMQP_NOT_FOUND, op->id, "no exchange '%s' in vhost '%s'",
                                op->a, wr__amqp_vhost(op->c));
            break;
        case WR_EEXISTS:
            wr__amqp_chan_error(op->c, ch, AMQP_PRECONDITION_FAILED, op->id,
                                "inequivalent arg 'type', flags or 'alternate-exchange' for "
                                "exchange '%s' in vhost '%s'",
                                op->a, wr__amqp_vhost(op->c));
            break;
        case WR_EDENIED:
            if (op->u64 && !(op->alen >= 4 && memcmp(op->a, "amq.", 4) == 0))
                /* WR_EXCH_NO_CREATE: the permission the new exchange lacked */
                wr__amqp_refused(op->c, ch, op->id, "exchange",
                                 op->u64 == 1 ? sl(op->a, op->alen) : sl(op->b, op->blen));
            else if (op->alen == 0)
                wr__amqp_chan_error(op->c, ch, AMQP_ACCESS_REFUSED, op->id,
                                    "operation not permitted on the default exchange");
            else
                wr__amqp_chan_error(op->c, ch, AMQP_ACCESS_REFUSED, op->id,
                                    "exchange name '%s' contains reserved prefix 'amq.*'", op->a);
            break;
        default:
            wr__amqp_fail(op->c, ch, res->err, op->id, "exchange '%s': %s", op->a,
                          wr_strerror(res->err));
            break;
        }
    }
    wr__amqp_op_done(op);
}

/* The "alternate-exchange" argument of a declare, or NULL. */
static const amqp_field_value_t *alternate_arg(const amqp_table_t *args)
{
    for (int i = 0; i < args->num_entries; i++)
        if (bytes_is(args->entries[i].key, "alternate-exchange"))
            return &args->entries[i].value;
    return NULL;
}

/* The default exchange is "amq.default" to permissions (perm.c). */
static wr_slice_t perm_name(amqp_bytes_t b)
{
    return b.len ? wr__amqp_slice(b) : sl("amq.default", strlen("amq.default"));
}

void wr__amqp_on_exchange_declare(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_exchange_declare_t *m = call->args;
    const amqp_field_value_t *ae = m->passive ? NULL : alternate_arg(&m->arguments);
    wr_slice_t alt;
    unsigned flags = 0, refused = 0;
    wr_amqp_op_t *op;
    wr_err_t err;

    if (!m->passive && !known_type(m->type)) {
        wr__amqp_conn_error(c, AMQP_COMMAND_INVALID, call->id, "unknown exchange type '%.*s'",
                            (int)(m->type.len > 64 ? 64 : m->type.len), (char *)m->type.bytes);
        return;
    }
    if (ae && ae->kind != AMQP_FIELD_KIND_UTF8) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                            "invalid type '%s' for arg 'alternate-exchange' in exchange '%.*s' in "
                            "vhost '%s'",
                            kind_name(ae->kind), (int)m->exchange.len, (char *)m->exchange.bytes,
                            wr__amqp_vhost(c));
        return;
    }
    if (ae) {
        /* RabbitMQ (rabbit_channel, exchange.declare) asks, only when it
         * creates the exchange, read on it and write on its alternate: the
         * alternate gets what the exchange cannot route. Whether it exists
         * is the core's to say: without them a missing one is not created. */
        alt = wr__amqp_slice(ae->value.bytes);
        if (!wr__amqp_may(c, WR_PERM_READ, perm_name(m->exchange)))
            refused = 1;
        else if (!wr__amqp_may(c, WR_PERM_WRITE, perm_name(ae->value.bytes)))
            refused = 2;
        if (refused)
            flags |= WR_EXCH_NO_CREATE;
    }
    if (!c->env->core) {
        wr__amqp_chan_error(c, ch, AMQP_INTERNAL_ERROR, call->id, "no core");
        return;
    }
    if (m->passive)
        flags |= WR_EXCH_PASSIVE;
    if (m->durable)
        flags |= WR_EXCH_DURABLE;
    if (m->auto_delete)
        flags |= WR_EXCH_AUTO_DELETE;
    if (m->internal)
        flags |= WR_EXCH_INTERNAL;
    op = wr__amqp_op_new(c, ch, call->id, m->nowait);
    wr__amqp_op_name(op->a, &op->alen, m->exchange);
    op->u64 = refused;
    if (refused == 2) {
        wr_slice_t pn = perm_name(ae->value.bytes);
        wr__amqp_op_name(op->b, &op->blen, (amqp_bytes_t){pn.len, (void *)pn.ptr});
    }
    err = wr_exchange_declare(c->env->core, tenant_of(c), wr__amqp_slice(m->exchange),
                              wr__amqp_slice(m->type), flags, ae ? &alt : NULL, c->loop,
                              on_exchange_declared, op);
    if (err != WR_OK)
        op_failed_now(op, ch, err);
}

static void on_exchange_deleted(void *arg, const wr_count_res_t *res)
{
    wr_amqp_op_t *op = arg;
    wr_amqp_chan_t *ch = wr__amqp_op_chan(op);
    amqp_exchange_delete_ok_t ok = {0};

    if (ch) {
        switch ((int)res->err) {
        case WR_OK:
        case WR_ENOTFOUND: /* RabbitMQ: deleting what is not there is fine */
            wr__amqp_op_reply(op, ch, AMQP_EXCHANGE_DELETE_OK_METHOD, &ok);
            break;
        case WR_EBUSY:
            wr__amqp_chan_error(op->c, ch, AMQP_PRECONDITION_FAILED, op->id,
                                "exchange '%s' in vhost '%s' in use", op->a, wr__amqp_vhost(op->c));
            break;
        case WR_EDENIED:
            wr__amqp_chan_error(op->c, ch, AMQP_ACCESS_REFUSED, op->id,
                                op->alen ? "operation not permitted on exchange '%s'"
                                         : "operation not permitted on the default exchange%s",
                                op->a);
            break;
        default:
            wr__amqp_fail(op->c, ch, res->err, op->id, "exchange '%s': %s", op->a,
                          wr_strerror(res->err));
            break;
        }
    }
    wr__amqp_op_done(op);
}

void wr__amqp_on_exchange_delete(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_exchange_delete_t *m = call->args;
    wr_amqp_op_t *op;
    wr_err_t err;

    if (!c->env->core) {
        wr__amqp_chan_error(c, ch, AMQP_INTERNAL_ERROR, call->id, "no core");
        return;
    }
    op = wr__amqp_op_new(c, ch, call->id, m->nowait);
    wr__amqp_op_name(op->a, &op->alen, m->exchange);
    err =
        wr_exchange_delete(c->env->core, tenant_of(c), wr__amqp_slice(m->exchange),
                           m->if_unused ? WR_EXCH_IF_UNUSED : 0, c->loop, on_exchange_deleted, op);
    if (err != WR_OK)
        op_failed_now(op, ch, err);
}

/* Bind and unbind answers, for queues and exchanges alike. */
static void on_bound(void *arg, const wr_count_res_t *res)
{
    wr_amqp_op_t *op = arg;
    wr_amqp_chan_t *ch = wr__amqp_op_chan(op);
    amqp_method_number_t ok_id = 0;
    amqp_queue_bind_ok_t ok = {0}; /* every *-ok of these has one dummy field */

    switch (op->id) {
    case AMQP_QUEUE_BIND_METHOD:
        ok_id = AMQP_QUEUE_BIND_OK_METHOD;
        break;
    case AMQP_QUEUE_UNBIND_METHOD:
        ok_id = AMQP_QUEUE_UNBIND_OK_METHOD;
        break;
    case AMQP_EXCHANGE_BIND_METHOD:
        ok_id = AMQP_EXCHANGE_BIND_OK_METHOD;
        break;
    default:
        ok_id = AMQP_EXCHANGE_UNBIND_OK_METHOD;
        break;
    }
    if (ch) {
        bool q = op->id == AMQP_QUEUE_BIND_METHOD || op->id == AMQP_QUEUE_UNBIND_METHOD;
        switch ((int)res->err) {
        case WR_OK:
            wr__amqp_op_reply(op, ch, ok_id, &ok);
            break;
        case WR_ENOTFOUND:
            /* The core does not say which one is missing. */
            wr__amqp_chan_error(op->c, ch, AMQP_NOT_FOUND, op->id,
                                "no %s '%s' or exchange '%s' in vhost '%s'",
                                q ? "queue" : "exchange", op->a, op->b, wr__amqp_vhost(op->c));
            break;
        case WR_ELOCKED:
            wr__amqp_chan_error(op->c, ch, AMQP_RESOURCE_LOCKED, op->id,
                                "cannot obtain exclusive access to locked queue '%s' in vhost "
                                "'%s'",
                                op->a, wr__amqp_vhost(op->c));
            break;
        case WR_EDENIED:
            wr__amqp_chan_error(op->c, ch, AMQP_ACCESS_REFUSED, op->id,
                                "operation not permitted on the default exchange");
            break;
        default:
            wr__amqp_fail(op->c, ch, res->err, op->id, "%s: %s", wr__amqp_method_name(op->id),
                          wr_strerror(res->err));
            break;
        }
    }
    wr__amqp_op_done(op);
}

static void bind_common(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id,
                        amqp_bytes_t dest, amqp_bytes_t source, amqp_bytes_t key,
                        const amqp_table_t *args, bool nowait)
{
    wr_header_t hdrs[WR_HEADERS_MAX];
    size_t n = 0;
    wr_amqp_op_t *op;
    wr_err_t err;
    bool q = id == AMQP_QUEUE_BIND_METHOD || id == AMQP_QUEUE_UNBIND_METHOD;
    amqp_pool_t pool;

    if (!c->env->core) {
        wr__amqp_chan_error(c, ch, AMQP_INTERNAL_ERROR, id, "no core");
        return;
    }
    if (q) {
        bool shortcut_key = dest.len == 0 && key.len == 0;
        if (!wr__amqp_queue_name(c, ch, id, &dest))
            return;
        if (shortcut_key)
            key = dest;
    }
    init_amqp_pool(&pool, 4096);
    err = wr__amqp_headers_table(args, &pool, hdrs, WR_HEADERS_MAX, &n);
    if (err != WR_OK) {
        empty_amqp_pool(&pool);
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, id, "invalid binding arguments");
        return;
    }
    op = wr__amqp_op_new(c, ch, id, nowait);
    wr__amqp_op_name(op->a, &op->alen, dest);
    wr__amqp_op_name(op->b, &op->blen, source);
    switch (id) {
    case AMQP_QUEUE_BIND_METHOD:
        err =
            wr_queue_bind(c->env->core, tenant_of(c), wr__amqp_slice(dest), wr__amqp_slice(source),
                          wr__amqp_slice(key), hdrs, n, c->id, c->loop, on_bound, op);
        break;
    case AMQP_QUEUE_UNBIND_METHOD:
        err = wr_queue_unbind(c->env->core, tenant_of(c), wr__amqp_slice(dest),
                              wr__amqp_slice(source), wr__amqp_slice(key), hdrs, n, c->id, c->loop,
                              on_bound, op);
        break;
    case AMQP_EXCHANGE_BIND_METHOD:
        err = wr_exchange_bind(c->env->core, tenant_of(c), wr__amqp_slice(dest),
                               wr__amqp_slice(source), wr__amqp_slice(key), hdrs, n, c->loop,
                               on_bound, op);
        break;
    default:
        err = wr_exchange_unbind(c->env->core, tenant_of(c), wr__amqp_slice(dest),
                                 wr__amqp_slice(source), wr__amqp_slice(key), hdrs, n, c->loop,
                                 on_bound, op);
        break;
    }
    empty_amqp_pool(&pool);
    if (err == WR_EINVAL) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, id,
                            "invalid arguments for %s (x-match, or too many)",
                            wr__amqp_method_name(id));
        wr__amqp_op_done(op);
    } else if (err != WR_OK) {
        op_failed_now(op, ch, err);
    }
}

void wr__amqp_on_exchange_bind(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_exchange_bind_t *m = call->args;
    bind_common(c, ch, call->id, m->destination, m->source, m->routing_key, &m->arguments,
                m->nowait);
}

void wr__amqp_on_exchange_unbind(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_exchange_unbind_t *m = call->args;
    bind_common(c, ch, call->id, m->destination, m->source, m->routing_key, &m->arguments,
                m->nowait);
}

void wr__amqp_on_queue_bind(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_queue_bind_t *m = call->args;
    bind_common(c, ch, call->id, m->queue, m->exchange, m->routing_key, &m->arguments, m->nowait);
}

void wr__amqp_on_queue_unbind(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_queue_unbind_t *m = call->args;
    bind_common(c, ch, call->id, m->queue, m->exchange, m->routing_key, &m->arguments, false);
}

/* ------------------------------------------------------------------------ */
/* Queue arguments                                                          */

static bool int_value(const amqp_field_value_t *v, int64_t *out)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        *out = v->value.i8;
        return true;
    case AMQP_FIELD_KIND_U8:
        *out = v->value.u8;
        return true;
    case AMQP_FIELD_KIND_I16:
        *out = v->value.i16;
        return true;
    case AMQP_FIELD_KIND_U16:
        *out = v->value.u16;
        return true;
    case AMQP_FIELD_KIND_I32:
        *out = v->value.i32;
        return true;
    case AMQP_FIELD_KIND_U32:
        *out = v->value.u32;
        return true;
    case AMQP_FIELD_KIND_I64:
        *out = v->value.i64;
        return true;
    case AMQP_FIELD_KIND_U64:
        *out = v->value.u64 > INT64_MAX ? INT64_MAX : (int64_t)v->value.u64;
        return true;
    default:
        return false;
    }
}

static bool str_value(const amqp_field_value_t *v, amqp_bytes_t *out)
{
    if (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES)
        return false;
    *out = v->value.bytes;
    return true;
}

/* RabbitMQ's "invalid arg" text. */
#define BAD_ARG(...) (snprintf(why, why_cap, __VA_ARGS__), false)

/* Limits RabbitMQ applies: TTLs and expiry up to 2^32-1 ms (about 49 days). */
#define TTL_MAX 4294967295LL

/* x-dead-letter-exchange and -routing-key: a string that fits a shortstr,
 * since both name AMQP things (and their stored lengths are one byte). */
static bool dl_name(const amqp_field_value_t *v, const char *arg, bool *set, uint8_t *len,
                    char *out, char *why, size_t why_cap)
{
    amqp_bytes_t s;

    if (!str_value(v, &s))
        return BAD_ARG("invalid arg '%s': {unacceptable_type,%s}", arg, kind_name(v->kind));
    if (s.len > UINT8_MAX)
        return BAD_ARG("invalid arg '%s': too long", arg);
    *set = true;
    *len = (uint8_t)s.len;
    if (s.len)
        memcpy(out, s.bytes, s.len);
    return true;
}

bool wr__amqp_consume_args(const amqp_table_t *args, int32_t *priority, char *why, size_t why_cap)
{
    *priority = 0;
    for (int i = 0; i < args->num_entries; i++) {
        const amqp_field_value_t *v = &args->entries[i].value;
        int64_t n;

        /* Other keys are ignored, as RabbitMQ does. */
        if (!bytes_is(args->entries[i].key, "x-priority"))
            continue;
        if (!int_value(v, &n))
            return BAD_ARG("invalid arg 'x-priority': {unacceptable_type,%s}", kind_name(v->kind));
        if (n < INT32_MIN || n > INT32_MAX)
            return BAD_ARG("invalid arg 'x-priority': {value_out_of_range,%lld}", (long long)n);
        *priority = (int32_t)n;
    }
    return true;
}

bool wr__amqp_queue_args(const amqp_table_t *args, wr_queue_attrs_t *a, char *why, size_t why_cap)
{
    for (int i = 0; i < args->num_entries; i++) {
        const amqp_table_entry_t *e = &args->entries[i];
        const amqp_field_value_t *v = &e->value;
        amqp_bytes_t k = e->key, s;
        int64_t n;

        if (bytes_is(k, "x-message-ttl")) {
            if (!int_value(v, &n))
                return BAD_ARG("invalid arg 'x-message-ttl': {unacceptable_type,%s}",
                               kind_name(v->kind));
            if (n < 0)
                return BAD_ARG("invalid arg 'x-message-ttl': {value_negative,%lld}", (long long)n);
            if (n > TTL_MAX)
                return BAD_ARG("invalid arg 'x-message-ttl': {value_too_large,%lld,%lld}",
                               (long long)n, TTL_MAX);
            /* 0 (expire unless delivered at once) is the shortest TTL the
             * core knows: 0 there means "none". */
            a->default_ttl_ms = n ? n : 1;
        } else if (bytes_is(k, "x-expires")) {
            if (!int_value(v, &n))
                return BAD_ARG("invalid arg 'x-expires': {unacceptable_type,%s}",
                               kind_name(v->kind));
            if (n == 0)
                return BAD_ARG("invalid arg 'x-expires': {value_zero,0}");
            if (n < 0)
                return BAD_ARG("invalid arg 'x-expires': {value_negative,%lld}", (long long)n);
            if (n > TTL_MAX)
                return BAD_ARG("invalid arg 'x-expires': {value_too_large,%lld,%lld}", (long long)n,
                               TTL_MAX);
            a->expires_ms = n;
        } else if (bytes_is(k, "x-max-length") || bytes_is(k, "x-max-length-bytes")) {
            const char *name =
                k.len == strlen("x-max-length") ? "x-max-length" : "x-max-length-bytes";
            if (!int_value(v, &n))
                return BAD_ARG("invalid arg '%s': {unacceptable_type,%s}", name,
                               kind_name(v->kind));
            if (n < 0)
                return BAD_ARG("invalid arg '%s': {value_negative,%lld}", name, (long long)n);
            /* 0 is a limit (keep nothing), not the core's "none". */
            if (name[12] == '\0')
                a->max_length = n ? (uint64_t)n : WR_LIMIT_ZERO;
            else
                a->max_bytes = n ? (uint64_t)n : WR_LIMIT_ZERO;
        } else if (bytes_is(k, "x-overflow")) {
            if (!str_value(v, &s))
                return BAD_ARG("invalid arg 'x-overflow': {unacceptable_type,%s}",
                               kind_name(v->kind));
            if (bytes_is(s, "drop-head"))
                a->overflow = WR_OVERFLOW_DROP_HEAD;
            else if (bytes_is(s, "reject-publish"))
                a->overflow = WR_OVERFLOW_REJECT;
            else if (bytes_is(s, "reject-publish-dlx"))
                a->overflow = WR_OVERFLOW_REJECT_DLX;
            else
                return BAD_ARG("invalid arg 'x-overflow': {unknown_overflow_type,<<\"%.*s\">>}",
                               (int)(s.len > 64 ? 64 : s.len), (char *)s.bytes);
        } else if (bytes_is(k, "x-dead-letter-exchange")) {
            if (!dl_name(v, "x-dead-letter-exchange", &a->dlx_set, &a->dlx_len, a->dlx, why,
                         why_cap))
                return false;
        } else if (bytes_is(k, "x-dead-letter-routing-key")) {
            if (!dl_name(v, "x-dead-letter-routing-key", &a->dlrk_set, &a->dlrk_len, a->dlrk, why,
                         why_cap))
                return false;
        } else if (bytes_is(k, "x-max-priority")) {
            if (!int_value(v, &n))
                return BAD_ARG("invalid arg 'x-max-priority': {unacceptable_type,%s}",
                               kind_name(v->kind));
            if (n < 0)
                return BAD_ARG("invalid arg 'x-max-priority': {value_negative,%lld}", (long long)n);
            if (n > 255)
                return BAD_ARG("invalid arg 'x-max-priority': {value_too_large,%lld,255}",
                               (long long)n);
            a->max_priority = (uint8_t)n;
        }
        /* Other arguments (x-queue-type, x-queue-mode, x-single-active-
         * consumer, ...) are accepted and ignored: docs/amqp-compatibility.md. */
    }
    if (a->dlrk_set && !a->dlx_set)
        return BAD_ARG("invalid arg 'x-dead-letter-routing-key': "
                       "{routing_key_but_no_dlx_defined}");
    return true;
}

/* ------------------------------------------------------------------------ */
/* Queues                                                                   */

/* Consumers of a queue known to this front end (deliver.c). */
uint32_t wr__amqp_reg_count(wr_amqp_env_t *env, wr_slice_t tenant, wr_slice_t queue);

static void on_inequivalent_stat(void *arg, const wr_queue_stat_res_t *res)
{
    wr_amqp_op_t *op = arg;
    wr_amqp_chan_t *ch = wr__amqp_op_chan(op);
    const wr_queue_attrs_t *want = op->ptr, *have = &res->attrs;
    const char *what = "arguments";
    char detail[96] = "";

    if (ch) {
        if (res->err == WR_OK) {
            if (want->durable != have->durable) {
                what = "durable";
                snprintf(detail, sizeof(detail), ": received '%s' but current is '%s'",
                         want->durable ? "true" : "false", have->durable ? "true" : "false");
            } else if (want->exclusive != have->exclusive) {
                what = "exclusive";
                snprintf(detail, sizeof(detail), ": received '%s' but current is '%s'",
                         want->exclusive ? "true" : "false", have->exclusive ? "true" : "false");
            } else if (want->auto_delete != have->auto_delete) {
                what = "auto_delete";
                snprintf(detail, sizeof(detail), ": received '%s' but current is '%s'",
                         want->auto_delete ? "true" : "false",
                         have->auto_delete ? "true" : "false");
            } else if (want->default_ttl_ms != have->default_ttl_ms) {
                what = "x-message-ttl";
            } else if (want->expires_ms != have->expires_ms) {
                what = "x-expires";
            } else if (want->max_length != have->max_length) {
                what = "x-max-length";
            } else if (want->max_bytes != have->max_bytes) {
                what = "x-max-length-bytes";
            } else if (want->overflow != have->overflow) {
                what = "x-overflow";
            } else if (want->max_priority != have->max_priority) {
                what = "x-max-priority";
            } else if (want->dlx_set != have->dlx_set || want->dlx_len != have->dlx_len ||
                       memcmp(want->dlx, have->dlx, want->dlx_len) != 0) {
                what = "x-dead-letter-exchange";
            } else {
                what = "x-dead-letter-routing-key";
            }
        }
        wr__amqp_chan_error(op->c, ch, AMQP_PRECONDITION_FAILED, op->id,
                            "inequivalent arg '%s' for queue '%s' in vhost '%s'%s", what, op->a,
                            wr__amqp_vhost(op->c), detail);
    }
    free(op->ptr);
    wr__amqp_op_done(op);
}

static void on_queue_declared(void *arg, const wr_queue_declare_res_t *res)
{
    wr_amqp_op_t *op = arg;
    wr_amqp_chan_t *ch = wr__amqp_op_chan(op);
    wr_amqp_conn_t *c = op->c;
    amqp_queue_declare_ok_t ok;

    if (ch) {
        switch ((int)res->err) {
        case WR_OK:
            memcpy(ch->last_queue, op->a, op->alen);
            ch->last_queue[op->alen] = '\0';
            ch->last_queue_len = op->alen;
            ok.queue.bytes = op->a;
            ok.queue.len = op->alen;
            ok.message_count = res->messages > UINT32_MAX ? UINT32_MAX : (uint32_t)res->messages;
            ok.consumer_count =
                res->consumers + wr__amqp_reg_count(c->env, (wr_slice_t){c->tenant, c->tenant_len},
                                                    sl(op->a, op->alen));
            wr__amqp_op_reply(op, ch, AMQP_QUEUE_DECLARE_OK_METHOD, &ok);
            break;
        case WR_ENOTFOUND:
            wr__amqp_chan_error(c, ch, AMQP_NOT_FOUND, op->id, "no queue '%s' in vhost '%s'", op->a,
                                wr__amqp_vhost(c));
            break;
        case WR_EDENIED:
            /* WR_DECL_NO_CREATE: the permission the new queue's DLX lacked */
            if (op->u64 == 1)
                wr__amqp_refused(c, ch, op->id, "queue", sl(op->a, op->alen));
            else if (op->u64 == 2)
                wr__amqp_refused(c, ch, op->id, "exchange",
                                 perm_name((amqp_bytes_t){op->blen, op->b}));
            else
                wr__amqp_fail(c, ch, res->err, op->id, "queue '%s': %s", op->a,
                              wr_strerror(res->err));
            break;
        case WR_ELOCKED:
            wr__amqp_chan_error(c, ch, AMQP_RESOURCE_LOCKED, op->id,
                                "cannot obtain exclusive access to locked queue '%s' in vhost "
                                "'%s'. It could be originally declared on another connection or "
                                "the exclusive property value does not match that of the "
                                "original declaration.",
                                op->a, wr__amqp_vhost(c));
            break;
        case WR_EEXISTS:
            /* Which argument differs: ask for the queue's attributes. */
            if (wr_queue_stat(c->env->core, (wr_slice_t){c->tenant, c->tenant_len},
                              sl(op->a, op->alen), c->loop, on_inequivalent_stat, op) == WR_OK)
                return;
            wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, op->id,
                                "inequivalent arg for queue '%s' in vhost '%s'", op->a,
                                wr__amqp_vhost(c));
            break;
        default:
            wr__amqp_fail(c, ch, res->err, op->id, "queue '%s': %s", op->a, wr_strerror(res->err));
            break;
        }
    }
    free(op->ptr);
    wr__amqp_op_done(op);
}

void wr__amqp_on_queue_declare(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_queue_declare_t *m = call->args;
    wr_queue_attrs_t *attrs;
    amqp_bytes_t name = m->queue;
    char gen[64], why[200];
    unsigned flags;
    wr_amqp_op_t *op;
    wr_err_t err;

    if (m->passive) {
        if (!wr__amqp_queue_name(c, ch, call->id, &name))
            return;
    } else if (name.len == 0) {
        name.len = wr__amqp_random_name(gen, "amq.gen-");
        name.bytes = gen;
    } else if (has_amq_prefix(name)) {
        wr__amqp_chan_error(c, ch, AMQP_ACCESS_REFUSED, call->id,
                            "queue name '%.*s' contains reserved prefix 'amq.*'", (int)name.len,
                            (char *)name.bytes);
        return;
    }
    attrs = calloc(1, sizeof(*attrs));
    if (!attrs)
        wr_panic(__FILE__, __LINE__, "out of memory");
    attrs->owner = c->id;
    if (!m->passive) {
        attrs->durable = m->durable;
        attrs->exclusive = m->exclusive;
        attrs->auto_delete = m->auto_delete;
        if (!wr__amqp_queue_args(&m->arguments, attrs, why, sizeof(why))) {
            /* RabbitMQ: "invalid arg 'x' for queue 'q' in vhost '/': ..." */
            const char *colon = strchr(why, ':');
            size_t head = colon ? (size_t)(colon - why) : strlen(why);
            wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                                "%.*s for queue '%.*s' in vhost '%s'%s", (int)head, why,
                                (int)name.len, (char *)name.bytes, wr__amqp_vhost(c),
                                colon ? colon : "");
            free(attrs);
            return;
        }
    }
    if (!c->env->core) {
        free(attrs);
        wr__amqp_chan_error(c, ch, AMQP_INTERNAL_ERROR, call->id, "no core");
        return;
    }
    flags = m->passive ? WR_DECL_PASSIVE : WR_DECL_CHECK;
    op = wr__amqp_op_new(c, ch, call->id, m->nowait);
    op->ptr = attrs;
    wr__amqp_op_name(op->a, &op->alen, name);
    if (!m->passive && attrs->dlx_set) {
        /* RabbitMQ (rabbit_channel, queue.declare) asks, only when it
         * creates the queue, read on it and write on its dead-letter
         * exchange: dead-lettering publishes the queue's messages there.
         * Without them a missing queue is not created (WR_DECL_NO_CREATE). */
        amqp_bytes_t dlx = {attrs->dlx_len, attrs->dlx};
        if (!wr__amqp_may(c, WR_PERM_READ, wr__amqp_slice(name)))
            op->u64 = 1;
        else if (!wr__amqp_may(c, WR_PERM_WRITE, perm_name(dlx)))
            op->u64 = 2;
        if (op->u64)
            flags |= WR_DECL_NO_CREATE;
        wr__amqp_op_name(op->b, &op->blen, dlx);
    }
    err = wr_queue_declare(c->env->core, tenant_of(c), wr__amqp_slice(name), attrs, sl(NULL, 0),
                           flags, c->loop, on_queue_declared, op);
    if (err != WR_OK) {
        free(attrs);
        op_failed_now(op, ch, err);
    }
}

static void on_purged(void *arg, const wr_count_res_t *res)
{
    wr_amqp_op_t *op = arg;
    wr_amqp_chan_t *ch = wr__amqp_op_chan(op);
    uint32_t n = res->count > UINT32_MAX ? UINT32_MAX : (uint32_t)res->count;

    if (ch) {
        switch ((int)res->err) {
        case WR_OK:
            if (op->id == AMQP_QUEUE_PURGE_METHOD) {
                amqp_queue_purge_ok_t ok = {n};
                wr__amqp_op_reply(op, ch, AMQP_QUEUE_PURGE_OK_METHOD, &ok);
            } else {
                amqp_queue_delete_ok_t ok = {n};
                wr__amqp_op_reply(op, ch, AMQP_QUEUE_DELETE_OK_METHOD, &ok);
            }
            break;
        case WR_ENOTFOUND:
            if (op->id == AMQP_QUEUE_DELETE_METHOD) {
                amqp_queue_delete_ok_t ok = {0}; /* RabbitMQ: idempotent */
                wr__amqp_op_reply(op, ch, AMQP_QUEUE_DELETE_OK_METHOD, &ok);
            } else {
                wr__amqp_chan_error(op->c, ch, AMQP_NOT_FOUND, op->id,
                                    "no queue '%s' in vhost '%s'", op->a, wr__amqp_vhost(op->c));
            }
            break;
        case WR_ELOCKED:
            wr__amqp_chan_error(op->c, ch, AMQP_RESOURCE_LOCKED, op->id,
                                "cannot obtain exclusive access to locked queue '%s' in vhost "
                                "'%s'",
                                op->a, wr__amqp_vhost(op->c));
            break;
        case WR_EBUSY:
            wr__amqp_chan_error(op->c, ch, AMQP_PRECONDITION_FAILED, op->id,
                                "queue '%s' in vhost '%s' %s", op->a, wr__amqp_vhost(op->c),
                                op->u64 == WR_DEL_IF_EMPTY ? "not empty" : "in use");
            break;
        default:
            wr__amqp_fail(op->c, ch, res->err, op->id, "queue '%s': %s", op->a,
                          wr_strerror(res->err));
            break;
        }
    }
    wr__amqp_op_done(op);
}

void wr__amqp_on_queue_purge(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_queue_purge_t *m = call->args;
    amqp_bytes_t name = m->queue;
    wr_amqp_op_t *op;
    wr_err_t err;

    if (!wr__amqp_queue_name(c, ch, call->id, &name))
        return;
    if (!c->env->core) {
        wr__amqp_chan_error(c, ch, AMQP_INTERNAL_ERROR, call->id, "no core");
        return;
    }
    op = wr__amqp_op_new(c, ch, call->id, m->nowait);
    wr__amqp_op_name(op->a, &op->alen, name);
    err = wr_queue_purge_as(c->env->core, tenant_of(c), wr__amqp_slice(name), c->id, c->loop,
                            on_purged, op);
    if (err != WR_OK)
        op_failed_now(op, ch, err);
}

void wr__amqp_on_queue_delete(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_queue_delete_t *m = call->args;
    amqp_bytes_t name = m->queue;
    unsigned flags = 0;
    wr_amqp_op_t *op;
    wr_err_t err;

    if (!wr__amqp_queue_name(c, ch, call->id, &name))
        return;
    if (!c->env->core) {
        wr__amqp_chan_error(c, ch, AMQP_INTERNAL_ERROR, call->id, "no core");
        return;
    }
    if (m->if_unused) {
        flags |= WR_DEL_IF_NO_CONSUMERS;
        /* Consumers the core does not see yet (deliver.c): ours. */
        if (wr__amqp_reg_count(c->env, tenant_of(c), wr__amqp_slice(name)) > 0) {
            wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                                "queue '%.*s' in vhost '%s' in use", (int)name.len,
                                (char *)name.bytes, wr__amqp_vhost(c));
            return;
        }
    }
    if (m->if_empty)
        flags |= WR_DEL_IF_EMPTY;
    op = wr__amqp_op_new(c, ch, call->id, m->nowait);
    op->u64 = flags == WR_DEL_IF_EMPTY ? WR_DEL_IF_EMPTY : 0;
    wr__amqp_op_name(op->a, &op->alen, name);
    err = wr_queue_delete_as(c->env->core, tenant_of(c), wr__amqp_slice(name), flags, c->id,
                             c->loop, on_purged, op);
    if (err != WR_OK)
        op_failed_now(op, ch, err);
}
