/*
 * amqp.h - the AMQP 0-9-1 front end: its plugin ops and what it exports to
 * the rest of warrend (metrics, the bound port).
 *
 * The front end listens on amqp_addr:amqp_port on every shard loop
 * (SO_REUSEPORT); a connection lives on the loop that accepted it. Frames are
 * encoded and decoded with rabbitmq-c's codecs; the connection and channel
 * state machines are ours (conn.c, channel.c). See README.md in this folder
 * for the compatibility decisions.
 */
#ifndef WR_AMQP_H
#define WR_AMQP_H

#include <stdint.h>

#include "../frontend.h"

extern const wr_frontend_ops_t wr_amqp_ops;

typedef struct wr_amqp_metrics {
    uint64_t connections;       /* open now (accepted, not yet closed) */
    uint64_t connections_total; /* accepted since start */
    uint64_t channels;          /* open now */
    uint64_t auth_failures;     /* refused logins since start */
    uint64_t protocol_errors;   /* connections closed for a protocol error */
} wr_amqp_metrics_t;

/* A snapshot of the counters; safe from any thread. fe must be the object
 * wr_amqp_ops.start returned. */
void wr_amqp_metrics(wr_frontend_t *fe, wr_amqp_metrics_t *out /* OUT */);

/*
 * The core's dead-letter properties hook for AMQP messages: adds RabbitMQ's
 * x-death and x-first-death-* headers and drops the expiration (moved into
 * x-death as original-expiration). Set it as wr_core_cfg_t.deadletter_props
 * (ctx unused). Thread-safe; returns NULL for messages without AMQP
 * properties (they are dead-lettered unchanged).
 */
wr_body_t *wr_amqp_deadletter_props(void *ctx, const wr_body_t *msg,
                                    const wr_deadletter_info_t *info);

/* The TCP port the listeners are bound to (useful when amqp_port was 0). */
uint16_t wr_amqp_port(wr_frontend_t *fe);

#endif
