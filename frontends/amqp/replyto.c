/*
 * replyto.c - direct reply-to, RabbitMQ's amq.rabbitmq.reply-to.
 *
 * An RPC client consumes (no_ack) from the pseudo-queue
 * "amq.rabbitmq.reply-to" and publishes its requests with that name as
 * reply_to; the broker rewrites the property to
 * "amq.rabbitmq.reply-to.<token>", and a server publishing its answer to
 * the default exchange with that routing key (from any connection of the
 * tenant) reaches the client's consumer. RabbitMQ's rules
 * (rabbit_channel): one reply consumer per channel, no_ack only (406
 * "reply consumer cannot acknowledge", "reply consumer already set"); a
 * publish with that reply_to on a channel without one is 406 "fast reply
 * consumer does not exist"; basic.consume on the pseudo-queue needs no
 * permission; replies need write on the default exchange like any publish.
 *
 * How: the reply consumer is an ordinary consumer of a queue named
 * "amq.rabbitmq.reply-to.<token>" that this file declares exclusive (no
 * other connection may consume, purge or delete it) and auto-delete, owned
 * by the connection, so it goes with its consumer: basic.cancel, the
 * channel's or the connection's end. The token is 22 random characters
 * (132 bits) from getrandom: knowing it is what lets a server answer, as in
 * RabbitMQ. A reply to a consumer that is gone finds no queue: dropped, or
 * returned when mandatory (RabbitMQ returns every mandatory reply, as its
 * pseudo-queue never counts as a route; here a delivered reply is not).
 */
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"
#include "amqp_int.h"

bool wr__amqp_is_reply_to(amqp_bytes_t name)
{
    return name.len == strlen(WR_AMQP_REPLY_TO) &&
           memcmp(name.bytes, WR_AMQP_REPLY_TO, name.len) == 0;
}

/* The reply queue is there: the consumer starts under the same op, so the
 * channel stays busy until basic.consume-ok. */
static void on_reply_queue(void *arg, const wr_queue_declare_res_t *res)
{
    wr_amqp_op_t *op = arg;
    wr_amqp_chan_t *ch = wr__amqp_op_chan(op);

    if (!ch) {
        wr__amqp_op_done(op);
        return;
    }
    if (res->err != WR_OK) {
        ch->reply_len = 0;
        wr__amqp_fail(op->c, ch, res->err, op->id, "direct reply-to: %s", wr_strerror(res->err));
        wr__amqp_op_done(op);
        return;
    }
    wr__amqp_consume_start(op->c, ch, op, (amqp_bytes_t){ch->reply_len, ch->reply_q},
                           (amqp_bytes_t){op->blen, op->b}, true, false, 0, true);
}

void wr__amqp_reply_consume(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_basic_consume_t *m = call->args;
    wr_queue_attrs_t attrs = {0};
    wr_amqp_op_t *op;
    wr_err_t err;

    if (!m->no_ack) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                            "reply consumer cannot acknowledge");
        return;
    }
    if (ch->reply_len) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                            "reply consumer already set");
        return;
    }
    if (!c->env->core) {
        wr__amqp_chan_error(c, ch, AMQP_INTERNAL_ERROR, call->id, "no core");
        return;
    }
    ch->reply_len = (uint8_t)wr__amqp_random_name(ch->reply_q, WR_AMQP_REPLY_TO ".");
    attrs.exclusive = true;
    attrs.auto_delete = true;
    attrs.owner = c->id;
    op = wr__amqp_op_new(c, ch, call->id, m->nowait);
    wr__amqp_op_name(op->b, &op->blen, m->consumer_tag);
    err = wr_queue_declare(c->env->core, (wr_slice_t){c->tenant, c->tenant_len},
                           (wr_slice_t){ch->reply_q, ch->reply_len}, &attrs, (wr_slice_t){NULL, 0},
                           0, c->loop, on_reply_queue, op);
    if (err != WR_OK) {
        ch->reply_len = 0;
        wr__amqp_fail(c, ch, err, call->id, "direct reply-to: %s", wr_strerror(err));
        wr__amqp_op_done(op);
    }
}

bool wr__amqp_reply_rewrite(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id,
                            const wr_amqp_props_t *pr)
{
    wr_body_t *old = ch->msg, *msg;
    size_t at, tail;
    uint8_t *props;

    if (!ch->reply_len) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, id,
                            "fast reply consumer does not exist");
        return false;
    }
    if (!old)
        return true;
    /* The stored properties are the received ones behind a format tag
     * (props.c): splice the new name over the old short string. */
    at = 1 + (size_t)((const uint8_t *)pr->reply_to.ptr - pr->raw);
    tail = old->props_len - at - pr->reply_to.len;
    props = malloc(old->props_len + ch->reply_len);
    if (!props)
        wr_panic(__FILE__, __LINE__, "out of memory");
    memcpy(props, old->data, at - 1);
    props[at - 1] = ch->reply_len;
    memcpy(props + at, ch->reply_q, ch->reply_len);
    memcpy(props + at + ch->reply_len, old->data + at + pr->reply_to.len, tail);
    msg = wr_body_new((wr_slice_t){props, at + ch->reply_len + tail},
                      (wr_slice_t){wr_body_bytes(old), old->body_len});
    free(props);
    wr_body_unref(old);
    ch->msg = msg;
    return true;
}
