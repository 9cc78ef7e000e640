/*
 * methods.c - the method table of AMQP 0-9-1 (class/method id -> handler)
 * and the dispatch of method frames.
 *
 * Every method of the protocol has a row, sorted by id (bsearch):
 *  - methods a client may send have a handler;
 *  - methods only servers send carry WR_AMQP_M_SERVER: a client sending one
 *    gets 503 COMMAND_INVALID, as from RabbitMQ;
 *  - an id with no row is 540 NOT_IMPLEMENTED (connection).
 *
 * connection.* are in conn.c, channel.* and access.request in channel.c,
 * exchange.* and queue.* in topology.c, basic.publish, confirm.* and tx.*
 * in publish.c, the other basic.* in deliver.c.
 *
 * Dispatch rules (as RabbitMQ): connection.* only on channel 0 and nothing
 * else there (504); a method on a channel that is not open, other than
 * channel.open, is 504 "expected 'channel.open'"; on a closing channel
 * everything but channel.close-ok and channel.close is ignored; a method while a channel waits
 * for content is 505 UNEXPECTED_FRAME; fields that do not decode are 501.
 */
#include <stdlib.h>

#include "../../core/log.h"
#include "amqp_int.h"

#define M(id, name, flags, fn)                                                                     \
    {                                                                                              \
        (id), (name), (flags), (fn)                                                                \
    }
#define S WR_AMQP_M_SERVER
#define C WR_AMQP_M_CONTENT

/* Sorted by id: class << 16 | method. */
static const wr_amqp_method_t methods[] = {
    M(AMQP_CONNECTION_START_METHOD, "connection.start", S, NULL),
    M(AMQP_CONNECTION_START_OK_METHOD, "connection.start-ok", 0, wr__amqp_on_start_ok),
    M(AMQP_CONNECTION_SECURE_METHOD, "connection.secure", S, NULL),
    M(AMQP_CONNECTION_SECURE_OK_METHOD, "connection.secure-ok", 0, wr__amqp_on_secure_ok),
    M(AMQP_CONNECTION_TUNE_METHOD, "connection.tune", S, NULL),
    M(AMQP_CONNECTION_TUNE_OK_METHOD, "connection.tune-ok", 0, wr__amqp_on_tune_ok),
    M(AMQP_CONNECTION_OPEN_METHOD, "connection.open", 0, wr__amqp_on_open),
    M(AMQP_CONNECTION_OPEN_OK_METHOD, "connection.open-ok", S, NULL),
    M(AMQP_CONNECTION_CLOSE_METHOD, "connection.close", 0, wr__amqp_on_close),
    M(AMQP_CONNECTION_CLOSE_OK_METHOD, "connection.close-ok", 0, wr__amqp_on_close_ok),
    M(AMQP_CONNECTION_BLOCKED_METHOD, "connection.blocked", S, NULL),
    M(AMQP_CONNECTION_UNBLOCKED_METHOD, "connection.unblocked", S, NULL),

    M(AMQP_CHANNEL_OPEN_METHOD, "channel.open", 0, wr__amqp_on_channel_open),
    M(AMQP_CHANNEL_OPEN_OK_METHOD, "channel.open-ok", S, NULL),
    M(AMQP_CHANNEL_FLOW_METHOD, "channel.flow", 0, wr__amqp_on_channel_flow),
    M(AMQP_CHANNEL_FLOW_OK_METHOD, "channel.flow-ok", 0, wr__amqp_on_channel_flow_ok),
    M(AMQP_CHANNEL_CLOSE_METHOD, "channel.close", 0, wr__amqp_on_channel_close),
    M(AMQP_CHANNEL_CLOSE_OK_METHOD, "channel.close-ok", 0, wr__amqp_on_channel_close_ok),

    M(AMQP_ACCESS_REQUEST_METHOD, "access.request", 0, wr__amqp_on_access_request),
    M(AMQP_ACCESS_REQUEST_OK_METHOD, "access.request-ok", S, NULL),

    M(AMQP_EXCHANGE_DECLARE_METHOD, "exchange.declare", 0, wr__amqp_on_exchange_declare),
    M(AMQP_EXCHANGE_DECLARE_OK_METHOD, "exchange.declare-ok", S, NULL),
    M(AMQP_EXCHANGE_DELETE_METHOD, "exchange.delete", 0, wr__amqp_on_exchange_delete),
    M(AMQP_EXCHANGE_DELETE_OK_METHOD, "exchange.delete-ok", S, NULL),
    M(AMQP_EXCHANGE_BIND_METHOD, "exchange.bind", 0, wr__amqp_on_exchange_bind),
    M(AMQP_EXCHANGE_BIND_OK_METHOD, "exchange.bind-ok", S, NULL),
    M(AMQP_EXCHANGE_UNBIND_METHOD, "exchange.unbind", 0, wr__amqp_on_exchange_unbind),
    M(AMQP_EXCHANGE_UNBIND_OK_METHOD, "exchange.unbind-ok", S, NULL),

    M(AMQP_QUEUE_DECLARE_METHOD, "queue.declare", 0, wr__amqp_on_queue_declare),
    M(AMQP_QUEUE_DECLARE_OK_METHOD, "queue.declare-ok", S, NULL),
    M(AMQP_QUEUE_BIND_METHOD, "queue.bind", 0, wr__amqp_on_queue_bind),
    M(AMQP_QUEUE_BIND_OK_METHOD, "queue.bind-ok", S, NULL),
    M(AMQP_QUEUE_PURGE_METHOD, "queue.purge", 0, wr__amqp_on_queue_purge),
    M(AMQP_QUEUE_PURGE_OK_METHOD, "queue.purge-ok", S, NULL),
    M(AMQP_QUEUE_DELETE_METHOD, "queue.delete", 0, wr__amqp_on_queue_delete),
    M(AMQP_QUEUE_DELETE_OK_METHOD, "queue.delete-ok", S, NULL),
    M(AMQP_QUEUE_UNBIND_METHOD, "queue.unbind", 0, wr__amqp_on_queue_unbind),
    M(AMQP_QUEUE_UNBIND_OK_METHOD, "queue.unbind-ok", S, NULL),

    M(AMQP_BASIC_QOS_METHOD, "basic.qos", 0, wr__amqp_on_basic_qos),
    M(AMQP_BASIC_QOS_OK_METHOD, "basic.qos-ok", S, NULL),
    M(AMQP_BASIC_CONSUME_METHOD, "basic.consume", 0, wr__amqp_on_basic_consume),
    M(AMQP_BASIC_CONSUME_OK_METHOD, "basic.consume-ok", S, NULL),
    M(AMQP_BASIC_CANCEL_METHOD, "basic.cancel", 0, wr__amqp_on_basic_cancel),
    M(AMQP_BASIC_CANCEL_OK_METHOD, "basic.cancel-ok", S, NULL),
    M(AMQP_BASIC_PUBLISH_METHOD, "basic.publish", C, wr__amqp_on_basic_publish),
    M(AMQP_BASIC_RETURN_METHOD, "basic.return", S | C, NULL),
    M(AMQP_BASIC_DELIVER_METHOD, "basic.deliver", S | C, NULL),
    M(AMQP_BASIC_GET_METHOD, "basic.get", 0, wr__amqp_on_basic_get),
    M(AMQP_BASIC_GET_OK_METHOD, "basic.get-ok", S | C, NULL),
    M(AMQP_BASIC_GET_EMPTY_METHOD, "basic.get-empty", S, NULL),
    M(AMQP_BASIC_ACK_METHOD, "basic.ack", 0, wr__amqp_on_basic_ack),
    M(AMQP_BASIC_REJECT_METHOD, "basic.reject", 0, wr__amqp_on_basic_reject),
    M(AMQP_BASIC_RECOVER_ASYNC_METHOD, "basic.recover-async", 0, wr__amqp_on_basic_recover_async),
    M(AMQP_BASIC_RECOVER_METHOD, "basic.recover", 0, wr__amqp_on_basic_recover),
    M(AMQP_BASIC_RECOVER_OK_METHOD, "basic.recover-ok", S, NULL),
    M(AMQP_BASIC_NACK_METHOD, "basic.nack", 0, wr__amqp_on_basic_nack),

    M(AMQP_CONFIRM_SELECT_METHOD, "confirm.select", 0, wr__amqp_on_confirm_select),
    M(AMQP_CONFIRM_SELECT_OK_METHOD, "confirm.select-ok", S, NULL),

    M(AMQP_TX_SELECT_METHOD, "tx.select", 0, wr__amqp_on_tx_select),
    M(AMQP_TX_SELECT_OK_METHOD, "tx.select-ok", S, NULL),
    M(AMQP_TX_COMMIT_METHOD, "tx.commit", 0, wr__amqp_on_tx_commit),
    M(AMQP_TX_COMMIT_OK_METHOD, "tx.commit-ok", S, NULL),
    M(AMQP_TX_ROLLBACK_METHOD, "tx.rollback", 0, wr__amqp_on_tx_rollback),
    M(AMQP_TX_ROLLBACK_OK_METHOD, "tx.rollback-ok", S, NULL),
};

#undef M
#undef S
#undef C

static int cmp_id(const void *key, const void *elem)
{
    amqp_method_number_t id = *(const amqp_method_number_t *)key;
    const wr_amqp_method_t *m = elem;
    return id < m->id ? -1 : id > m->id;
}

const wr_amqp_method_t *wr__amqp_method_find(amqp_method_number_t id)
{
    return bsearch(&id, methods, sizeof(methods) / sizeof(methods[0]), sizeof(methods[0]), cmp_id);
}

const char *wr__amqp_method_name(amqp_method_number_t id)
{
    const wr_amqp_method_t *m = wr__amqp_method_find(id);
    return m ? m->name : "unknown";
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void wr__amqp_call(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_method_t *m,
                   const wr_amqp_call_t *call)
{
    if (ch && !wr__amqp_permitted(c, ch, call)) /* raised 403 */
        return;
    m->fn(c, ch, call);
}

void wr__amqp_dispatch(wr_amqp_conn_t *c, const wr_amqp_frame_t *f)
{
    const wr_amqp_method_t *m;
    amqp_method_number_t id;
    wr_amqp_chan_t *ch = NULL;
    wr_amqp_call_t call = {0};
    amqp_bytes_t fields;
    int rc;

    if (f->size < 4) {
        wr__amqp_conn_error(c, AMQP_FRAME_ERROR, 0, "method frame of %u bytes on channel %u",
                            f->size, f->channel);
        return;
    }
    id = get32(f->payload);
    m = wr__amqp_method_find(id);
    if (!m) {
        wr__amqp_conn_error(c, AMQP_NOT_IMPLEMENTED, id, "unknown method class=%u method=%u",
                            WR_AMQP_CLASS(id), WR_AMQP_METHOD(id));
        return;
    }
    if (m->flags & WR_AMQP_M_SERVER) {
        wr__amqp_conn_error(c, AMQP_COMMAND_INVALID, id, "%s is sent by servers only", m->name);
        return;
    }
    if (f->channel == 0) {
        if (WR_AMQP_CLASS(id) != AMQP_CONNECTION_CLASS) {
            wr__amqp_conn_error(c, AMQP_CHANNEL_ERROR, id, "%s is not allowed on channel 0",
                                m->name);
            return;
        }
    } else {
        if (WR_AMQP_CLASS(id) == AMQP_CONNECTION_CLASS) {
            wr__amqp_conn_error(c, AMQP_CHANNEL_ERROR, id,
                                "%s on channel %u: connection methods go on channel 0", m->name,
                                f->channel);
            return;
        }
        if (c->state != WR_AMQP_S_OPEN) {
            wr__amqp_conn_error(c, AMQP_UNEXPECTED_FRAME, id, "%s before connection.open-ok",
                                m->name);
            return;
        }
        ch = wr__amqp_chan_get(c, f->channel);
        if (!ch) {
            /* A late close-ok for a channel closed by crossing closes. */
            if (id == AMQP_CHANNEL_CLOSE_OK_METHOD)
                return;
            if (id != AMQP_CHANNEL_OPEN_METHOD) {
                wr__amqp_conn_error(c, AMQP_CHANNEL_ERROR, id,
                                    "expected 'channel.open' on channel %u, got %s", f->channel,
                                    m->name);
                return;
            }
        } else if (ch->state == WR_AMQP_CH_CLOSING) {
            /* We sent channel.close: everything but close-ok, or a crossing
             * close (answered with close-ok), was in flight and is dropped. */
            if (id != AMQP_CHANNEL_CLOSE_OK_METHOD && id != AMQP_CHANNEL_CLOSE_METHOD)
                return;
        } else if (ch->content != WR_AMQP_CONTENT_NONE) {
            wr__amqp_conn_error(
                c, AMQP_UNEXPECTED_FRAME, id, "expected content %s frame on channel %u, got %s",
                ch->content == WR_AMQP_CONTENT_HEADER ? "header" : "body", f->channel, m->name);
            return;
        }
    }

    if (m->flags & WR_AMQP_M_CONTENT) {
        /* Only basic.publish among client methods: on an open channel. */
        c->published = true;
        wr__amqp_chan_expect_content(c, ch, m, f);
        return;
    }

    fields.bytes = (void *)(f->payload + 4);
    fields.len = f->size - 4;
    rc = wr__amqp_method_ok(id, fields.bytes, fields.len)
             ? amqp_decode_method(id, &c->frame_pool, fields, &call.args)
             : AMQP_STATUS_BAD_AMQP_DATA;
    if (rc == AMQP_STATUS_NO_MEMORY)
        wr_panic(__FILE__, __LINE__, "out of memory");
    if (rc < 0) {
        recycle_amqp_pool(&c->frame_pool);
        wr__amqp_conn_error(c, AMQP_FRAME_ERROR, id, "cannot decode %s", m->name);
        return;
    }
    call.id = id;
    call.channel = f->channel;
    /* ch may be freed by the handler (channel.close-ok): not used after. */
    if (!ch || wr__amqp_permitted(c, ch, &call)) /* else a 403 was raised */
        m->fn(c, ch, &call);
    recycle_amqp_pool(&c->frame_pool);
}
