/*
 * heartbeat.c - the clock of a connection: handshake timeout, heartbeats in
 * both directions, and the wait for connection.close-ok.
 *
 * The host (amqp.c) keeps one timer per connection, armed at
 * wr__amqp_conn_deadline() and calling wr__amqp_conn_tick() when it fires;
 * the fuzzer calls tick with made-up times.
 *
 * Heartbeats (negotiated interval h seconds, the client's tune-ok value):
 * we send a heartbeat frame when we have sent nothing for h/2, and drop the
 * connection when nothing at all arrived for 2h (two missed heartbeats), as
 * RabbitMQ does.
 */
#include <stdint.h>

#include "../../core/log.h"
#include "amqp_int.h"

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int64_t wr__amqp_conn_deadline(const wr_amqp_conn_t *c)
{
    int64_t h;

    if (c->drop || !c->out)
        return INT64_MAX;
    switch (c->state) {
    case WR_AMQP_S_HEADER:
    case WR_AMQP_S_START:
    case WR_AMQP_S_TUNE:
    case WR_AMQP_S_OPENING:
        return c->started_ms + WR_AMQP_HANDSHAKE_MS;
    case WR_AMQP_S_OPEN: {
        int64_t poll = c->blocked || c->mem_blocked ? c->blocked_check_ms + WR_AMQP_BLOCKED_POLL_MS
                                                    : INT64_MAX;
        if (c->heartbeat_s == 0)
            return poll;
        h = (int64_t)c->heartbeat_s * 1000;
        return min64(poll, min64(c->last_sent_ms + h / 2,
                                 c->mem_blocked ? INT64_MAX : c->last_recv_ms + 2 * h));
    }
    case WR_AMQP_S_CLOSING:
        return c->closing_ms + WR_AMQP_CLOSE_MS;
    case WR_AMQP_S_CLOSED:
        /* Flushing: give the peer as long to read as to send close-ok. */
        return INT64_MAX;
    }
    return INT64_MAX;
}

void wr__amqp_conn_tick(wr_amqp_conn_t *c, int64_t now_ms)
{
    int64_t h;

    if (c->drop || !c->out)
        return;
    c->now_ms = now_ms;
    switch (c->state) {
    case WR_AMQP_S_HEADER:
    case WR_AMQP_S_START:
    case WR_AMQP_S_TUNE:
    case WR_AMQP_S_OPENING:
        if (now_ms - c->started_ms >= WR_AMQP_HANDSHAKE_MS) {
            wr_log(WR_LOG_INFO, WR_LOGC_AMQP, "conn=%llu peer=%s handshake timeout",
                   (unsigned long long)c->id, c->peer);
            c->drop = true;
        }
        return;
    case WR_AMQP_S_OPEN:
        if ((c->blocked || c->mem_blocked) &&
            now_ms - c->blocked_check_ms >= WR_AMQP_BLOCKED_POLL_MS) {
            if (c->blocked)
                wr__amqp_blocked_check(c, now_ms);
            if (c->mem_blocked)
                wr__amqp_mem_check(c, now_ms);
        }
        if (c->heartbeat_s == 0)
            return;
        h = (int64_t)c->heartbeat_s * 1000;
        /* While blocked for memory nothing is read: the client's heartbeats
         * wait in the socket (RabbitMQ does not time out blocked ones either). */
        if (now_ms - c->last_recv_ms >= 2 * h && !c->mem_blocked) {
            wr_log(WR_LOG_WARN, WR_LOGC_AMQP,
                   "conn=%llu peer=%s missed heartbeats from client, timeout: %us",
                   (unsigned long long)c->id, c->peer, c->heartbeat_s);
            c->drop = true;
            return;
        }
        if (now_ms - c->last_sent_ms >= h / 2) {
            wr__amqp_write_heartbeat(c->out);
            c->last_sent_ms = now_ms;
        }
        return;
    case WR_AMQP_S_CLOSING:
        if (now_ms - c->closing_ms >= WR_AMQP_CLOSE_MS)
            c->drop = true;
        return;
    case WR_AMQP_S_CLOSED:
        return;
    }
}
