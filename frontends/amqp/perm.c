/*
 * perm.c - RabbitMQ's permission checks on AMQP methods (issue 5).
 *
 * Every method with a channel passes here before its handler (methods.c),
 * basic.publish once its content is complete. The rules are RabbitMQ's
 * (rabbit_channel):
 *
 *   exchange.declare (not passive), exchange.delete   configure on the exchange
 *   queue.declare (not passive), queue.delete         configure on the queue
 *   queue.declare creating a queue with a DLX          also read on the queue and
 *                                                      write on the DLX (topology.c)
 *   exchange.declare creating an exchange with an      also read on the exchange and
 *   alternate-exchange                                 write on the alternate (topology.c)
 *   queue.bind, queue.unbind                           write on the queue, read on the exchange
 *   exchange.bind, exchange.unbind                     write on the destination, read on the source
 *   queue.purge, basic.get, basic.consume              read on the queue (nothing for
 *                                                      amq.rabbitmq.reply-to: replyto.c)
 *   basic.publish                                      write on the exchange
 *
 * Passive declares are not checked (RabbitMQ does not either). The default
 * exchange is "amq.default"; "" as a queue name is the channel's last
 * declared queue, and a server-named queue is checked as "amq.gen-" (the
 * prefix its name will have). A refusal is a channel exception 403
 * ACCESS_REFUSED "access to queue 'q' in vhost 'v' refused for user 'u'".
 *
 * Publishes are the hot path: the last exchange allowed for write is kept
 * on the connection with the registry's generation, so a stream of
 * publishes to one exchange costs one regexec until the registry changes.
 */
#include <stdio.h>
#include <string.h>

#include "../../core/auth.h"
#include "amqp_int.h"

static wr_slice_t exchange_name(amqp_bytes_t b)
{
    if (b.len == 0)
        return (wr_slice_t){"amq.default", strlen("amq.default")};
    return wr__amqp_slice(b);
}

static wr_slice_t queue_name(const wr_amqp_chan_t *ch, amqp_bytes_t b)
{
    if (b.len == 0)
        return (wr_slice_t){ch->last_queue, ch->last_queue_len};
    return wr__amqp_slice(b);
}

void wr__amqp_refused(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id,
                      const char *kind, wr_slice_t name)
{
    wr__amqp_chan_error(c, ch, AMQP_ACCESS_REFUSED, id,
                        "access to %s '%.*s' in vhost '%s' refused for user '%s'", kind,
                        (int)(name.len > 200 ? 200 : name.len), (const char *)name.ptr,
                        wr__amqp_vhost(c), c->user);
}

bool wr__amqp_may(wr_amqp_conn_t *c, wr_perm_t perm, wr_slice_t name)
{
    wr_slice_t user = {c->user, strlen(c->user)};
    wr_slice_t tenant = {c->tenant, c->tenant_len};

    return !c->env->auth || c->who != WR_AMQP_WHO_USER ||
           wr_auth_allowed(c->env->auth, user, tenant, perm, name);
}

/* One check; raises the 403 and returns false when refused. */
static bool need(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id, wr_perm_t perm,
                 const char *kind, wr_slice_t name)
{
    if (wr__amqp_may(c, perm, name))
        return true;
    wr__amqp_refused(c, ch, id, kind, name);
    return false;
}

static bool publish_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id,
                       amqp_bytes_t exchange)
{
    wr_slice_t x = exchange_name(exchange);
    uint64_t gen = wr_auth_generation(c->env->auth);

    if (c->perm_gen == gen && c->perm_exchange_len == (int)x.len &&
        memcmp(c->perm_exchange, x.ptr, x.len) == 0)
        return true;
    if (!need(c, ch, id, WR_PERM_WRITE, "exchange", x))
        return false;
    c->perm_gen = gen;
    memcpy(c->perm_exchange, x.ptr, x.len);
    c->perm_exchange_len = (int)x.len;
    return true;
}

bool wr__amqp_permitted(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    amqp_method_number_t id = call->id;

    if (!c->env->auth || c->who != WR_AMQP_WHO_USER)
        return true;
    switch (id) {
    case AMQP_EXCHANGE_DECLARE_METHOD: {
        const amqp_exchange_declare_t *m = call->args;
        return m->passive ||
               need(c, ch, id, WR_PERM_CONFIGURE, "exchange", exchange_name(m->exchange));
    }
    case AMQP_EXCHANGE_DELETE_METHOD: {
        const amqp_exchange_delete_t *m = call->args;
        return need(c, ch, id, WR_PERM_CONFIGURE, "exchange", exchange_name(m->exchange));
    }
    case AMQP_QUEUE_DECLARE_METHOD: {
        const amqp_queue_declare_t *m = call->args;
        wr_slice_t q = m->queue.len ? wr__amqp_slice(m->queue)
                                    : (wr_slice_t){"amq.gen-", strlen("amq.gen-")};
        return m->passive || need(c, ch, id, WR_PERM_CONFIGURE, "queue", q);
    }
    case AMQP_QUEUE_DELETE_METHOD: {
        const amqp_queue_delete_t *m = call->args;
        return need(c, ch, id, WR_PERM_CONFIGURE, "queue", queue_name(ch, m->queue));
    }
    case AMQP_QUEUE_BIND_METHOD: {
        const amqp_queue_bind_t *m = call->args;
        return need(c, ch, id, WR_PERM_WRITE, "queue", queue_name(ch, m->queue)) &&
               need(c, ch, id, WR_PERM_READ, "exchange", exchange_name(m->exchange));
    }
    case AMQP_QUEUE_UNBIND_METHOD: {
        const amqp_queue_unbind_t *m = call->args;
        return need(c, ch, id, WR_PERM_WRITE, "queue", queue_name(ch, m->queue)) &&
               need(c, ch, id, WR_PERM_READ, "exchange", exchange_name(m->exchange));
    }
    case AMQP_EXCHANGE_BIND_METHOD: {
        const amqp_exchange_bind_t *m = call->args;
        return need(c, ch, id, WR_PERM_WRITE, "exchange", exchange_name(m->destination)) &&
               need(c, ch, id, WR_PERM_READ, "exchange", exchange_name(m->source));
    }
    case AMQP_EXCHANGE_UNBIND_METHOD: {
        const amqp_exchange_unbind_t *m = call->args;
        return need(c, ch, id, WR_PERM_WRITE, "exchange", exchange_name(m->destination)) &&
               need(c, ch, id, WR_PERM_READ, "exchange", exchange_name(m->source));
    }
    case AMQP_QUEUE_PURGE_METHOD: {
        const amqp_queue_purge_t *m = call->args;
        return need(c, ch, id, WR_PERM_READ, "queue", queue_name(ch, m->queue));
    }
    case AMQP_BASIC_GET_METHOD: {
        const amqp_basic_get_t *m = call->args;
        return need(c, ch, id, WR_PERM_READ, "queue", queue_name(ch, m->queue));
    }
    case AMQP_BASIC_CONSUME_METHOD: {
        /* Direct reply-to's pseudo-queue needs no permission (RabbitMQ). */
        const amqp_basic_consume_t *m = call->args;
        return wr__amqp_is_reply_to(m->queue) ||
               need(c, ch, id, WR_PERM_READ, "queue", queue_name(ch, m->queue));
    }
    case AMQP_BASIC_PUBLISH_METHOD: {
        const amqp_basic_publish_t *m = call->args;
        return publish_ok(c, ch, id, m->exchange);
    }
    default:
        return true;
    }
}
