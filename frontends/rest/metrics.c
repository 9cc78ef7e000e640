/*
 * metrics.c - GET /metrics: the Prometheus text exposition format (0.0.4).
 *
 * One wr_core_metrics() snapshot gives the per-queue and per-shard numbers;
 * the REST layer adds its own counters. Queue series are labelled with
 * tenant and queue. Tenant names come from a client's header and may hold
 * any byte, so label values are escaped (backslash, quote, newline) and
 * anything that is not UTF-8 becomes U+FFFD: one odd tenant must never
 * make the whole page unparseable for the scraper.
 */
#include <stdio.h>

#include "../../core/auth.h"
#include "rest_int.h"

static const char text_type[] = "text/plain; version=0.0.4; charset=utf-8";

static void put_label(wr_rest_buf_t *b, wr_slice_t v)
{
    const uint8_t *p = v.ptr;
    size_t i = 0, k;

    while (i < v.len) {
        uint8_t c = p[i];

        if (c == '\\' || c == '"') {
            wr_rest_buf_putc(b, '\\');
            wr_rest_buf_putc(b, (char)c);
            i++;
        } else if (c == '\n') {
            wr_rest_buf_put(b, "\\n", 2);
            i++;
        } else if (c < 0x80) {
            wr_rest_buf_putc(b, (char)c);
            i++;
        } else if ((k = wr_rest_utf8_seq(p + i, v.len - i)) > 0) {
            wr_rest_buf_put(b, p + i, k);
            i += k;
        } else {
            wr_rest_buf_put(b, "\xef\xbf\xbd", 3);
            i++;
        }
    }
}

static void head(wr_rest_buf_t *b, const char *name, const char *type, const char *help)
{
    wr_rest_buf_fmt(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One series per queue of the field at offset `off` of wr_queue_metrics_t. */
static void queue_family(wr_rest_buf_t *b, const wr_metrics_res_t *res, const char *name,
                         const char *type, const char *help, size_t off)
{
    head(b, name, type, help);
    for (size_t i = 0; i < res->nqueues; i++) {
        const wr_queue_metrics_t *q = &res->queues[i];

        wr_rest_buf_puts(b, name);
        wr_rest_buf_puts(b, "{tenant=\"");
        put_label(b, q->tenant);
        wr_rest_buf_puts(b, "\",queue=\"");
        put_label(b, q->name);
        wr_rest_buf_puts(b, "\"} ");
        wr_rest_buf_u64(b, *(const uint64_t *)((const char *)q + off));
        wr_rest_buf_putc(b, '\n');
    }
}

/* The store's counters: syncs against writes shows group commit at work. */
static void store_metrics(wr_rest_buf_t *b, const wr_core_t *core)
{
    wr_store_counters_t st;

    wr_core_store_counters(core, &st);
    head(b, "warren_store_writes_total", "counter", "Write batches the store applied.");
    wr_rest_buf_fmt(b, "warren_store_writes_total %llu\n", (unsigned long long)st.writes);
    head(b, "warren_store_syncs_total", "counter",
         "Syncs to disk (one covers every write pending at that moment).");
    wr_rest_buf_fmt(b, "warren_store_syncs_total %llu\n", (unsigned long long)st.syncs);
    head(b, "warren_store_written_bytes_total", "counter", "Bytes the store wrote.");
    wr_rest_buf_fmt(b, "warren_store_written_bytes_total %llu\n",
                    (unsigned long long)st.bytes_written);
    head(b, "warren_store_keys", "gauge", "Keys in the store (an estimate).");
    wr_rest_buf_fmt(b, "warren_store_keys %llu\n", (unsigned long long)st.keys);
    head(b, "warren_store_full", "gauge",
         "1 while the store refuses new data (free disk below --disk-free-limit).");
    wr_rest_buf_fmt(b, "warren_store_full %d\n", wr_core_store_full(core) ? 1 : 0);
}

static void auth_metrics(wr_rest_buf_t *b, wr_core_t *core)
{
    wr_auth_t *a = wr_core_auth(core);
    uint64_t verifications, hits;

    if (!a)
        return;
    wr_auth_counters(a, &verifications, &hits);
    head(b, "warren_auth_verifications_total", "counter",
         "Password verifications (Argon2id) done, refused logins included.");
    wr_rest_buf_fmt(b, "warren_auth_verifications_total %llu\n",
                    (unsigned long long)verifications);
    head(b, "warren_auth_cache_hits_total", "counter",
         "REST Basic and AMQP logins answered from the verified-password cache.");
    wr_rest_buf_fmt(b, "warren_auth_cache_hits_total %llu\n", (unsigned long long)hits);
}

static void on_metrics(void *arg, const wr_metrics_res_t *res)
{
    wr_rest_call_t *c = arg;
    wr_rest_buf_t *b = wr_rest_reply_json(c, 200);
    const wr_rest_server_t *srv = c->srv;

    c->resp.content_type = text_type;
    queue_family(b, res, "warren_queue_messages", "gauge", "Messages ready for delivery.",
                 offsetof(wr_queue_metrics_t, ready));
    queue_family(b, res, "warren_queue_inflight", "gauge",
                 "Messages delivered and not yet acknowledged (claimed).",
                 offsetof(wr_queue_metrics_t, claimed));
    queue_family(b, res, "warren_queue_bytes", "gauge", "Body bytes of the queue's messages.",
                 offsetof(wr_queue_metrics_t, bytes));
    queue_family(b, res, "warren_queue_published_total", "counter", "Messages published.",
                 offsetof(wr_queue_metrics_t, published));
    queue_family(b, res, "warren_queue_delivered_total", "counter",
                 "Messages delivered (claimed, popped or pushed).",
                 offsetof(wr_queue_metrics_t, delivered));
    queue_family(b, res, "warren_queue_acked_total", "counter",
                 "Messages acknowledged (deleted after delivery).",
                 offsetof(wr_queue_metrics_t, acked));
    queue_family(b, res, "warren_queue_expired_total", "counter",
                 "Messages dropped because their TTL passed.",
                 offsetof(wr_queue_metrics_t, expired));

    head(b, "warren_rest_connections", "gauge", "Open REST (HTTP) connections.");
    wr_rest_buf_fmt(b, "warren_rest_connections %lld\n", (long long)atomic_load(&srv->connections));
    head(b, "warren_rest_requests_total", "counter", "REST requests dispatched.");
    wr_rest_buf_fmt(b, "warren_rest_requests_total %llu\n",
                    (unsigned long long)atomic_load(&srv->requests_total));
    head(b, "warren_rest_inflight", "gauge", "REST requests waiting for the queue core.");
    wr_rest_buf_fmt(b, "warren_rest_inflight %lld\n", (long long)atomic_load(&srv->inflight));

    head(b, "warren_shard_loop_lag_seconds", "gauge",
         "Last observed lateness of the shard loop's 100 ms tick.");
    for (size_t i = 0; i < res->nshards; i++)
        wr_rest_buf_fmt(b, "warren_shard_loop_lag_seconds{shard=\"%u\"} %.6f\n",
                        res->shards[i].shard, (double)res->shards[i].lag_last_us / 1e6);
    head(b, "warren_shard_loop_lag_max_seconds", "gauge",
         "Worst observed lateness of the shard loop's 100 ms tick.");
    for (size_t i = 0; i < res->nshards; i++)
        wr_rest_buf_fmt(b, "warren_shard_loop_lag_max_seconds{shard=\"%u\"} %.6f\n",
                        res->shards[i].shard, (double)res->shards[i].lag_max_us / 1e6);
    head(b, "warren_shard_queues", "gauge", "Queues owned by the shard.");
    for (size_t i = 0; i < res->nshards; i++)
        wr_rest_buf_fmt(b, "warren_shard_queues{shard=\"%u\"} %llu\n", res->shards[i].shard,
                        (unsigned long long)res->shards[i].queues);
    head(b, "warren_shard_requests_total", "counter", "Mailbox requests served by the shard.");
    for (size_t i = 0; i < res->nshards; i++)
        wr_rest_buf_fmt(b, "warren_shard_requests_total{shard=\"%u\"} %llu\n", res->shards[i].shard,
                        (unsigned long long)res->shards[i].requests);
    store_metrics(b, srv->core);
    auth_metrics(b, srv->core);
    wr_rest_finish(c);
}

void wr_rest_metrics(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_err_t err = wr_core_metrics(c->srv->core, c->loop, on_metrics, c);

    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Metrics could not be gathered");
}
