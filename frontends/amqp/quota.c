/*
 * quota.c - the AMQP texts of tenant quota refusals (core/quota.h), worded
 * like RabbitMQ's vhost limits where RabbitMQ has one:
 *   queue.declare       406 "cannot declare queue 'q': queue limit in vhost 'v' (N) is reached"
 *   exchange.declare    406 "cannot declare exchange 'e': exchange limit in vhost 'v' (N) is reached"
 *   connection.open     530 "connection limit (N) of vhost 'v' reached"
 *   channel.open        530 (connection) "number of channels opened in vhost 'v' has
 *                       reached the maximum allowed limit of (N)"
 *   basic.publish       nack in confirm mode, else 406 closing the channel, naming the
 *                       quota: max-queue-messages, max-queue-bytes, max-tenant-messages,
 *                       max-tenant-bytes, max-message-bytes, publish-rate
 */
#include <stdio.h>
#include <string.h>

#include "amqp_int.h"

bool wr__amqp_quota_text(wr_amqp_conn_t *c, wr_err_t err, const char *what, char *buf, size_t cap)
{
    const char *v = wr__amqp_vhost(c);
    unsigned long long n;
    int key;
    size_t wl;

    if (!c->tn || (err != WR_ELIMIT && err != WR_ERATE && err != WR_ETOOBIG))
        return false;
    key = wr_tenant_last_refusal(c->tn);
    if (key < 0 || (err == WR_ETOOBIG) != (key == WR_Q_MAX_MESSAGE_BYTES) ||
        (err == WR_ERATE) != (key == WR_Q_PUBLISH_RATE))
        return false;
    n = (unsigned long long)wr_tenant_limit(c->tn, (wr_quota_key_t)key);
    /* what: "queue 'q': ..." from the caller; the subject is before ": ". */
    wl = what ? strcspn(what, ":") : 0;
    switch ((wr_quota_key_t)key) {
    case WR_Q_MAX_QUEUES:
        snprintf(buf, cap, "cannot declare %.*s: queue limit in vhost '%s' (%llu) is reached",
                 (int)wl, what ? what : "", v, n);
        break;
    case WR_Q_MAX_EXCHANGES:
        snprintf(buf, cap, "cannot declare %.*s: exchange limit in vhost '%s' (%llu) is reached",
                 (int)wl, what ? what : "", v, n);
        break;
    case WR_Q_MAX_QUEUE_MESSAGES:
    case WR_Q_MAX_QUEUE_BYTES:
        snprintf(buf, cap, "%s limit of a queue in vhost '%s' (%s %llu) is reached",
                 key == WR_Q_MAX_QUEUE_BYTES ? "byte" : "message", v, wr_quota_keys[key], n);
        break;
    case WR_Q_MAX_TENANT_MESSAGES:
    case WR_Q_MAX_TENANT_BYTES:
        snprintf(buf, cap, "%s limit in vhost '%s' (%s %llu) is reached",
                 key == WR_Q_MAX_TENANT_BYTES ? "byte" : "message", v, wr_quota_keys[key], n);
        break;
    case WR_Q_MAX_MESSAGE_BYTES:
        snprintf(buf, cap, "message size is larger than the max size of vhost '%s' (%s %llu)", v,
                 wr_quota_keys[key], n);
        break;
    case WR_Q_PUBLISH_RATE:
        snprintf(buf, cap, "publish rate limit of vhost '%s' (%s %llu/s) is reached", v,
                 wr_quota_keys[key], n);
        break;
    case WR_Q_MAX_CONNECTIONS:
    case WR_Q_MAX_CHANNELS:
    case WR_Q_PUBLISH_BURST:
        return false;
    }
    return true;
}
