/*
 * ops.c - a method waiting for the core, and the channel's order.
 *
 * RabbitMQ runs the methods of one channel one after the other: a
 * queue.bind sent right after a nowait queue.declare finds the queue, and
 * replies come in request order. Core calls are asynchronous, so a method
 * that calls the core makes its channel busy: the channel's later frames
 * wait in its backlog (channel.c) until the core has answered (op_done),
 * then run. Other channels go on meanwhile. basic.publish and the
 * acknowledgements do not make a channel busy: they are gathered and sent
 * to the core in batches, in order (publish.c, deliver.c).
 */
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"
#include "amqp_int.h"

wr_amqp_op_t *wr__amqp_op_new(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id,
                              bool nowait)
{
    wr_amqp_op_t *op = calloc(1, sizeof(*op));

    if (!op)
        wr_panic(__FILE__, __LINE__, "out of memory");
    /* What was gathered before this method reaches the core first. */
    wr__amqp_flush(c);
    op->c = wr__amqp_conn_ref(c);
    op->ch_id = ch->id;
    op->serial = ch->serial;
    op->id = id;
    op->nowait = nowait;
    ch->busy = true;
    atomic_fetch_add_explicit(&c->env->inflight, 1, memory_order_relaxed);
    return op;
}

wr_amqp_chan_t *wr__amqp_op_chan(wr_amqp_op_t *op)
{
    wr_amqp_chan_t *ch = op->c->out ? wr__amqp_chan_get(op->c, op->ch_id) : NULL;

    if (!ch || ch->serial != op->serial || ch->state != WR_AMQP_CH_OPEN ||
        op->c->state != WR_AMQP_S_OPEN)
        return NULL;
    return ch;
}

void wr__amqp_op_done(wr_amqp_op_t *op)
{
    wr_amqp_conn_t *c = op->c;
    wr_amqp_chan_t *ch = c->out ? wr__amqp_chan_get(c, op->ch_id) : NULL;

    if (ch && ch->serial == op->serial) {
        ch->busy = false;
        wr__amqp_chan_replay(c, ch);
    }
    atomic_fetch_sub_explicit(&c->env->inflight, 1, memory_order_relaxed);
    free(op);
    wr__amqp_conn_kick(c);
    wr__amqp_conn_unref(c);
}

void wr__amqp_op_name(char *dst, uint8_t *len, amqp_bytes_t b)
{
    size_t n = b.len > WR_NAME_MAX ? WR_NAME_MAX : b.len;

    if (n)
        memcpy(dst, b.bytes, n);
    dst[n] = '\0';
    *len = (uint8_t)n;
}

void wr__amqp_op_reply(wr_amqp_op_t *op, wr_amqp_chan_t *ch, amqp_method_number_t id, void *decoded)
{
    if (!op->nowait)
        wr__amqp_send(op->c, ch->id, id, decoded);
}

const char *wr__amqp_vhost(const wr_amqp_conn_t *c)
{
    return strcmp(c->tenant, "default") == 0 ? "/" : c->tenant;
}
