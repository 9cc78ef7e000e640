/*
 * health.c - the documents that are not about one queue: the versions list
 * (GET /), the JSON-Home document (GET /v2/), ping, health, and the 501 of
 * the Zaqar features warren does not serve yet (subscriptions, shares).
 *
 * GET /v2/health answers at once, as Zaqar's does without pooling. With
 * ?detailed=true it also asks every shard for a snapshot (wr_core_metrics)
 * and lists per-shard queue counts, loop lag and requests served: that is
 * the "is every shard thread turning" check an operator wants.
 */
#include <stdio.h>
#include <string.h>

#include "rest_int.h"

static const char versions_doc[] =
    "{\"versions\": [{\"id\": \"2\", \"status\": \"CURRENT\", \"updated\": "
    "\"2014-9-24T04:06:47Z\", \"media-types\": [{\"base\": \"application/json\", \"type\": "
    "\"application/vnd.openstack.messaging-v2+json\"}], \"links\": [{\"href\": \"/v2/\", "
    "\"rel\": \"self\"}]}]}";

/* One JSON-Home resource: rel, href-template, methods. */
#define RES(rel, tmpl, allow)                                                                      \
    "\"rel/" rel "\": {\"href-template\": \"" tmpl "\", \"hints\": {\"allow\": [" allow            \
    "], \"formats\": {\"application/json\": {}}}}"

/* clang-format off */
static const char home_doc[] = "{\"resources\": {"
    RES("queues", "/v2/queues{?marker,limit,detailed}", "\"GET\"") ", "
    RES("queue", "/v2/queues/{queue_name}", "\"GET\", \"PUT\", \"DELETE\", \"PATCH\"") ", "
    RES("queue_stats", "/v2/queues/{queue_name}/stats", "\"GET\"") ", "
    RES("queue_purge", "/v2/queues/{queue_name}/purge", "\"POST\"") ", "
    RES("messages", "/v2/queues/{queue_name}/messages{?marker,limit,echo,include_claimed}",
        "\"GET\"") ", "
    RES("post_messages", "/v2/queues/{queue_name}/messages", "\"POST\"") ", "
    RES("messages_delete", "/v2/queues/{queue_name}/messages{?ids,pop}", "\"DELETE\"") ", "
    RES("message_delete", "/v2/queues/{queue_name}/messages/{message_id}{?claim}",
        "\"DELETE\"") ", "
    RES("message_get", "/v2/queues/{queue_name}/messages/{message_id}", "\"GET\"") ", "
    RES("claim", "/v2/queues/{queue_name}/claims/{claim_id}", "\"GET\"") ", "
    RES("post_claim", "/v2/queues/{queue_name}/claims{?limit}", "\"POST\"") ", "
    RES("patch_claim", "/v2/queues/{queue_name}/claims/{claim_id}", "\"PATCH\"") ", "
    RES("delete_claim", "/v2/queues/{queue_name}/claims/{claim_id}", "\"DELETE\"") ", "
    RES("ping", "/v2/ping", "\"GET\", \"HEAD\"") ", "
    RES("health", "/v2/health", "\"GET\"")
    "}}";
/* clang-format on */

static void put_static(wr_rest_call_t *c, uint16_t status, const char *doc, size_t len)
{
    wr_rest_buf_put(wr_rest_reply_json(c, status), doc, len);
    wr_rest_finish(c);
}

void wr_rest_versions(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    put_static(c, 300, versions_doc, sizeof(versions_doc) - 1);
}

void wr_rest_home(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    put_static(c, 200, home_doc, sizeof(home_doc) - 1);
}

void wr_rest_ping(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_rest_reply(c, 204);
    wr_rest_finish(c);
}

void wr_rest_not_implemented(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_rest_fail(c, 501, NULL,
                 "Subscriptions and pre-signed URLs are not implemented by this server yet.");
}

static const char health_head[] =
    "{\"catalog_reachable\": true, \"storage_reachable\": true, \"operation_status\": {}";

static void on_health_metrics(void *arg, const wr_metrics_res_t *res)
{
    wr_rest_call_t *c = arg;
    wr_rest_buf_t *b = wr_rest_reply_json(c, 200);

    wr_rest_buf_put(b, health_head, sizeof(health_head) - 1);
    wr_rest_buf_puts(b, ", \"shards\": [");
    for (size_t i = 0; i < res->nshards; i++) {
        const wr_shard_metrics_t *s = &res->shards[i];

        wr_rest_buf_fmt(b,
                        "%s{\"shard\": %u, \"queues\": %llu, \"loop_lag_ms\": %.3f, "
                        "\"loop_lag_max_ms\": %.3f, \"requests\": %llu}",
                        i ? ", " : "", s->shard, (unsigned long long)s->queues,
                        (double)s->lag_last_us / 1000.0, (double)s->lag_max_us / 1000.0,
                        (unsigned long long)s->requests);
    }
    wr_rest_buf_fmt(b, "], \"queues\": %zu, \"rest_connections\": %lld}", res->nqueues,
                    (long long)atomic_load(&c->srv->connections));
    wr_rest_finish(c);
}

void wr_rest_health(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    bool detailed = false;
    wr_err_t err;

    if (wr_rest_qparam_bool(c, req, "detailed", &detailed) < 0)
        return;
    if (!detailed) {
        wr_rest_buf_t *b = wr_rest_reply_json(c, 200);
        wr_rest_buf_put(b, health_head, sizeof(health_head) - 1);
        wr_rest_buf_putc(b, '}');
        wr_rest_finish(c);
        return;
    }
    err = wr_core_metrics(c->srv->core, c->loop, on_health_metrics, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Health status could not be read");
}
