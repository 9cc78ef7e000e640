/*
 * blocked.c - RabbitMQ's connection.blocked extension, for a full store and
 * for the memory high watermark.
 *
 * Disk. While the store refuses new data (the data dir's free space is
 * below --disk-free-limit, or the disk is full), persistent publishes to
 * durable queues are nacked. A client that announced the connection.blocked
 * capability is also told, with connection.blocked, so that it can stop
 * publishing instead of collecting nacks; it hears connection.unblocked
 * once the store has room again. The store is asked when a publish fails
 * for lack of space, then every WR_AMQP_BLOCKED_POLL_MS from the
 * connection's tick while blocked: no timer runs while all is well. The
 * socket is still read: transient messages and every other method still
 * work, and refusing persistent ones is enough to protect the disk.
 *
 * Memory. While the process's RSS is above --memory-high-watermark
 * (core/mem.h), a connection that has published is read no more, as
 * RabbitMQ does: its publishes wait in the client and the kernel, and the
 * broker's memory stays bounded. Connections that never published (pure
 * consumers) go on, so consumers can drain the queues that made memory
 * grow. It is checked before each read is fed, then every
 * WR_AMQP_BLOCKED_POLL_MS from the tick while blocked.
 *
 * One connection.blocked goes out when the first reason starts ("low on
 * disk space" or "low on memory"), one connection.unblocked when the last
 * one ends.
 */
#include "../../core/mem.h"
#include "amqp_int.h"

/* Sends blocked/unblocked when "any reason" changed. */
static void notify(wr_amqp_conn_t *c, bool was, const char *reason)
{
    bool now = c->blocked || c->mem_blocked;

    if (!c->cap_blocked || now == was)
        return;
    if (now) {
        amqp_connection_blocked_t b = {.reason = amqp_cstring_bytes(reason)};
        wr__amqp_send(c, 0, AMQP_CONNECTION_BLOCKED_METHOD, &b);
    } else {
        amqp_connection_unblocked_t u = {.dummy = '\0'};
        wr__amqp_send(c, 0, AMQP_CONNECTION_UNBLOCKED_METHOD, &u);
    }
}

void wr__amqp_blocked_check(wr_amqp_conn_t *c, int64_t now_ms)
{
    bool was = c->blocked || c->mem_blocked;

    if (!c->cap_blocked || !c->out || c->state != WR_AMQP_S_OPEN || !c->env->core)
        return;
    c->blocked = wr_core_store_full(c->env->core);
    c->blocked_check_ms = now_ms;
    notify(c, was, "low on disk space");
}

void wr__amqp_mem_check(wr_amqp_conn_t *c, int64_t now_ms)
{
    bool was = c->blocked || c->mem_blocked;
    bool high;

    if (!c->published || !c->out || c->state != WR_AMQP_S_OPEN)
        return;
    high = wr_mem_high();
    if (c->mem_blocked)
        c->blocked_check_ms = now_ms; /* polled: the next poll is due in POLL_MS */
    if (high == c->mem_blocked)
        return;
    c->mem_blocked = high;
    c->blocked_check_ms = now_ms;
    if (!high)
        c->last_recv_ms = now_ms; /* heartbeats waited in the socket meanwhile */
    notify(c, was, "low on memory");
}
