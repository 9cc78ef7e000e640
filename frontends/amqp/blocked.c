/*
 * blocked.c - RabbitMQ's connection.blocked extension, for a full store.
 *
 * While the store refuses new data (the data dir's free space is below
 * --disk-free-limit, or the disk is full), persistent publishes to durable
 * queues are nacked. A client that announced the connection.blocked
 * capability is also told, with connection.blocked, so that it can stop
 * publishing instead of collecting nacks; it hears connection.unblocked
 * once the store has room again. The store is asked when a publish fails
 * for lack of space, then every WR_AMQP_BLOCKED_POLL_MS from the
 * connection's tick while blocked: no timer runs while all is well.
 *
 * Unlike RabbitMQ we do not stop reading the socket: transient messages
 * and every other method still work, and refusing persistent ones is
 * enough to protect the disk.
 */
#include "amqp_int.h"

void wr__amqp_blocked_check(wr_amqp_conn_t *c, int64_t now_ms)
{
    bool full;

    if (!c->cap_blocked || !c->out || c->state != WR_AMQP_S_OPEN || !c->env->core)
        return;
    full = wr_core_store_full(c->env->core);
    c->blocked_check_ms = now_ms;
    if (full == c->blocked)
        return;
    c->blocked = full;
    if (full) {
        amqp_connection_blocked_t b = {.reason = amqp_cstring_bytes("low on disk space")};
        wr__amqp_send(c, 0, AMQP_CONNECTION_BLOCKED_METHOD, &b);
    } else {
        amqp_connection_unblocked_t u = {.dummy = '\0'};
        wr__amqp_send(c, 0, AMQP_CONNECTION_UNBLOCKED_METHOD, &u);
    }
}
