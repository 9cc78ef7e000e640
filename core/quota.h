/*
 * quota.h - per-tenant quotas and limits (issue 5, point 3), enforced by the
 * core for every front end.
 *
 * The values live in the registry (auth.h, `warrenctl quota set`); the core
 * keeps, per tenant, a read-mostly copy of them and the counters they limit.
 * A value of 0, or no value, means unlimited. A change applies at once: the
 * core compares the registry's generation (wr_auth_generation) on every
 * publish and declare and re-reads the values when it moved.
 *
 * Where each quota is enforced, and the error the core gives:
 *   max-queues           queue creation (declare, REST post auto-create)  WR_ELIMIT
 *   max-exchanges        exchange declare (home shard; built-ins free)    WR_ELIMIT
 *   max-connections      front ends: wr_tenant_conn_open                  WR_ELIMIT
 *   max-channels         front ends: wr_tenant_chan_open                  WR_ELIMIT
 *   max-queue-messages   append to any queue of the tenant (refused, as   WR_ELIMIT
 *   max-queue-bytes        x-overflow reject-publish; the queue's own
 *                          max_length / max_bytes apply too: smaller wins)
 *   max-tenant-messages  publish call: sum over the tenant's queues       WR_ELIMIT
 *   max-tenant-bytes       (body bytes)
 *   max-message-bytes    publish call: lowers the core's max for the tenant WR_ETOOBIG
 *   publish-rate         publish call: token bucket, messages per second  WR_ERATE
 *   publish-burst          bucket size (0: = publish-rate)
 *
 * Costs. A tenant without quotas pays, per publish call, a thread-local
 * lookup of its tenant and one predictable branch; per message, the
 * counters of its queue's shard (plain loads and stores on a line only
 * that shard writes). Message and byte counts are always kept, per
 * (tenant, shard), so a quota set later starts from the right count; the
 * tenant-wide check sums the shards' counters (so concurrent publishes on
 * other shards may overshoot it by one batch each). Dead-lettered messages
 * are not refused by tenant quotas (that would drop them silently).
 */
#ifndef WR_QUOTA_H
#define WR_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "wr.h"

/* Quota keys, indexes of wr_quota_keys (auth.h). */
typedef enum {
    WR_Q_MAX_QUEUES = 0,
    WR_Q_MAX_EXCHANGES,
    WR_Q_MAX_CONNECTIONS,
    WR_Q_MAX_CHANNELS,
    WR_Q_MAX_QUEUE_MESSAGES,
    WR_Q_MAX_QUEUE_BYTES,
    WR_Q_MAX_TENANT_MESSAGES,
    WR_Q_MAX_TENANT_BYTES,
    WR_Q_MAX_MESSAGE_BYTES,
    WR_Q_PUBLISH_RATE,
    WR_Q_PUBLISH_BURST,
} wr_quota_key_t;
_Static_assert(WR_Q_PUBLISH_BURST + 1 == WR_QUOTA_NKEYS, "one enum value per quota key");

/* A tenant's quota state. It lives as long as the core: a front end may
 * keep the pointer (an AMQP connection does). */
typedef struct wr_tenant wr_tenant_t;

/* The tenant's state, made on first use (any name the core accepts). Any
 * thread; a thread-local cache makes repeated calls for one tenant cheap. */
wr_tenant_t *wr_tenant_get(wr_core_t *core, wr_slice_t tenant);

/* The tenant's name (as given to wr_tenant_get). */
wr_slice_t wr_tenant_name(const wr_tenant_t *t);

/* True if any quota of the tenant is set (re-read if it changed). */
bool wr_tenant_limited(wr_tenant_t *t);

/* The current value of a quota (re-read from the registry if it changed);
 * 0 = unlimited. */
uint64_t wr_tenant_limit(wr_tenant_t *t, wr_quota_key_t key);

/* Connections and channels: front ends count their own objects here, so
 * every protocol shares one view. open: WR_OK (counted; call close later)
 * or WR_ELIMIT (not counted). */
wr_err_t wr_tenant_conn_open(wr_tenant_t *t);
void wr_tenant_conn_close(wr_tenant_t *t);
wr_err_t wr_tenant_chan_open(wr_tenant_t *t);
void wr_tenant_chan_close(wr_tenant_t *t);

/* The quota behind the tenant's latest refusal (WR_ELIMIT, WR_ERATE,
 * WR_ETOOBIG from a tenant quota), for error texts; -1 if none. With
 * concurrent refusals it names one of them. */
int wr_tenant_last_refusal(const wr_tenant_t *t);

/* Milliseconds until n messages may be published under the tenant's
 * publish rate (0: now, or no rate set). For REST's Retry-After. */
uint64_t wr_tenant_retry_ms(wr_tenant_t *t, uint32_t n);

/* What the tenant uses now (metrics, tests). */
typedef struct wr_tenant_usage {
    uint64_t queues, exchanges, connections, channels;
    uint64_t messages, bytes; /* summed over shards */
} wr_tenant_usage_t;
void wr_tenant_usage(wr_tenant_t *t, wr_tenant_usage_t *out /* OUT */);

/* Runs fn for every tenant the core has counted anything for (those named
 * by a call since start), in no order, under the table's read lock: fn
 * must not call wr_tenant_get. For metrics. */
void wr_tenant_each(wr_core_t *core, void (*fn)(void *arg, wr_tenant_t *t), void *arg);

/* ------------------------------------------------------------------------ */
/* The token bucket (exposed for unit tests with a fake clock)              */

typedef struct wr_tbucket {
    double tokens;
    int64_t last_us; /* 0: never used (starts full) */
} wr_tbucket_t;

/*
 * Takes n tokens at time now_us from a bucket refilled at rate tokens per
 * second up to burst (0: burst = rate). A batch larger than the burst
 * passes when the bucket is full and leaves it in debt, so the long-run
 * rate holds. True if taken; else *wait_us (if not NULL) is how long until
 * it would pass.
 */
bool wr_tbucket_take(wr_tbucket_t *b, uint64_t rate, uint64_t burst, uint32_t n, int64_t now_us,
                     int64_t *wait_us /* OUT */);

#endif
