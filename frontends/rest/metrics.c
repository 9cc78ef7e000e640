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
#include <stdlib.h>
#include <string.h>

#include "../../core/auth.h"
#include "../../core/log.h"   /* wr_panic: tenant_metrics */
#include "../../core/quota.h" /* wr_tenant_each: tenant_metrics */
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

/* ------------------------------------------------------------------------ */
/* Per-tenant usage (secA: tenant_metrics)                                  */

typedef struct tenant_row {
    wr_tenant_t *t;
    wr_tenant_usage_t u;
} tenant_row_t;

typedef struct tenant_rows {
    tenant_row_t *v;
    size_t n, cap;
} tenant_rows_t;

/* Room for one more item in an array of n items of `size` bytes. */
static void tenant_metrics_grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return;
    *cap = *cap ? *cap * 2 : 64;
    if (!(*v = realloc(*v, *cap * size)))
        wr_panic(__FILE__, __LINE__, "out of memory");
}

typedef struct tenant_names {
    char **v;
    size_t n, cap;
} tenant_names_t;

static void tenant_metrics_name(void *arg, const char *name)
{
    tenant_names_t *names = arg;

    tenant_metrics_grow((void **)&names->v, &names->cap, names->n, sizeof(*names->v));
    if (!(names->v[names->n++] = strdup(name)))
        wr_panic(__FILE__, __LINE__, "out of memory");
}

static void tenant_metrics_add(void *arg, wr_tenant_t *t)
{
    tenant_rows_t *rows = arg;

    tenant_metrics_grow((void **)&rows->v, &rows->cap, rows->n, sizeof(*rows->v));
    rows->v[rows->n].t = t;
    wr_tenant_usage(t, &rows->v[rows->n].u);
    rows->n++;
}

/*
 * One series per tenant and family, from the counters the quotas use
 * (core/quota.c). Which tenants: the registered ones, and any other that
 * holds something now. A name that only ever appeared in a request's
 * X-Project-Id (open to local callers in --auth loopback) and holds
 * nothing is left out, so such requests cannot grow the page; a tenant
 * that holds messages is already on it through its queues' series.
 */
static void tenant_metrics(wr_rest_buf_t *b, wr_core_t *core)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } fam[] = {
        {"warren_tenant_queues", "Queues of the tenant.", offsetof(wr_tenant_usage_t, queues)},
        {"warren_tenant_exchanges", "Exchanges the tenant declared (the built-ins not counted).",
         offsetof(wr_tenant_usage_t, exchanges)},
        {"warren_tenant_messages", "Messages in the tenant's queues (ready and unacknowledged).",
         offsetof(wr_tenant_usage_t, messages)},
        {"warren_tenant_bytes", "Body bytes of the messages in the tenant's queues.",
         offsetof(wr_tenant_usage_t, bytes)},
        {"warren_tenant_connections", "Open AMQP connections to the tenant (vhost).",
         offsetof(wr_tenant_usage_t, connections)},
        {"warren_tenant_channels", "Open AMQP channels on the tenant's connections.",
         offsetof(wr_tenant_usage_t, channels)},
    };
    wr_auth_t *a = wr_core_auth(core);
    tenant_names_t names = {0};
    tenant_rows_t rows = {0};
    size_t keep = 0;

    /* A registered tenant nobody used yet has no counters: make them (the
     * names are copied first: wr_tenant_get reads the registry). */
    if (a)
        wr_auth_tenant_list(a, tenant_metrics_name, &names);
    for (size_t i = 0; i < names.n; i++) {
        wr_tenant_get(core, (wr_slice_t){names.v[i], strlen(names.v[i])});
        free(names.v[i]);
    }
    free(names.v);
    wr_tenant_each(core, tenant_metrics_add, &rows);
    for (size_t i = 0; i < rows.n; i++) {
        const wr_tenant_usage_t *u = &rows.v[i].u;
        bool busy = u->queues || u->exchanges || u->messages || u->bytes || u->connections ||
                    u->channels;
        if (busy || (a && wr_auth_tenant_exists(a, wr_tenant_name(rows.v[i].t))))
            rows.v[keep++] = rows.v[i];
    }
    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        head(b, fam[f].name, "gauge", fam[f].help);
        for (size_t i = 0; i < keep; i++) {
            wr_rest_buf_puts(b, fam[f].name);
            wr_rest_buf_puts(b, "{tenant=\"");
            put_label(b, wr_tenant_name(rows.v[i].t));
            wr_rest_buf_puts(b, "\"} ");
            wr_rest_buf_u64(b, *(const uint64_t *)((const char *)&rows.v[i].u + fam[f].off));
            wr_rest_buf_putc(b, '\n');
        }
    }
    free(rows.v);
}

/* The store's counters: syncs against writes shows group commit at work. */
static void store_metrics(wr_rest_buf_t *b, const wr_core_t *core)
{
    wr_store_counters_t st;

    wr_core_store_counters(core, &st);
    head(b, "warren_store_writes_total", "counter", "Write batches the store applied.");
    wr_rest_buf_fmt(b, "warren_store_writes_total %llu\n", (unsigned long long)st.writes);
    head(b, "warren_store_syncs_total", "counter",
         "Synced store writes, one covering every write pending at that moment (the memory "
         "store, which has no disk, counts the writes that asked for a sync).");
    wr_rest_buf_fmt(b, "warren_store_syncs_total %llu\n", (unsigned long long)st.syncs);
    head(b, "warren_store_written_bytes_total", "counter", "Bytes the store wrote.");
    wr_rest_buf_fmt(b, "warren_store_written_bytes_total %llu\n",
                    (unsigned long long)st.bytes_written);
    /* Only when the engine keeps its own count: never a made-up zero. */
    if (st.engine_wal) {
        head(b, "warren_store_rocksdb_wal_writes_total", "counter",
             "WAL writes as RocksDB counts them (its DB stats): one per write group.");
        wr_rest_buf_fmt(b, "warren_store_rocksdb_wal_writes_total %llu\n",
                        (unsigned long long)st.wal_writes);
        head(b, "warren_store_rocksdb_wal_syncs_total", "counter",
             "WAL syncs (fdatasync) as RocksDB counts them (its DB stats).");
        wr_rest_buf_fmt(b, "warren_store_rocksdb_wal_syncs_total %llu\n",
                        (unsigned long long)st.wal_syncs);
    }
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

    tenant_metrics(b, srv->core);

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
