/*
 * quota.c - REST answers to tenant quota refusals (core/quota.h):
 *   max-queues, max-queue-messages, max-queue-bytes, max-tenant-messages,
 *   max-tenant-bytes, max-exchanges   403 Forbidden (retrying as is will
 *                                     not help until something is consumed
 *                                     or deleted)
 *   max-message-bytes                 413 (like --max-message-bytes)
 *   publish-rate                      429 + Retry-After: seconds until a
 *                                     token is available (at least 1)
 * Each with falcon's JSON body naming the quota, its value and the project.
 */
#include <pthread.h>
#include <stdio.h>

#include "../../core/quota.h"
#include "rest_int.h"

/* Retry-After values must outlive the response: one static string per
 * second up to an hour. */
#define RETRY_MAX 3600
static char retry_str[RETRY_MAX + 1][8];
static pthread_once_t retry_once = PTHREAD_ONCE_INIT;

static void retry_init(void)
{
    for (int i = 0; i <= RETRY_MAX; i++)
        snprintf(retry_str[i], sizeof(retry_str[i]), "%d", i);
}

bool wr_rest_fail_quota(wr_rest_call_t *c, wr_err_t err)
{
    wr_tenant_t *t;
    char desc[320];
    unsigned long long n;
    uint64_t secs;
    int key;

    if ((err != WR_ELIMIT && err != WR_ERATE && err != WR_ETOOBIG) || !c->srv->core ||
        c->tenant.len == 0)
        return false;
    t = wr_tenant_get(c->srv->core, c->tenant);
    key = wr_tenant_last_refusal(t);
    if (key < 0 || (err == WR_ETOOBIG) != (key == WR_Q_MAX_MESSAGE_BYTES) ||
        (err == WR_ERATE) != (key == WR_Q_PUBLISH_RATE))
        return false;
    n = (unsigned long long)wr_tenant_limit(t, (wr_quota_key_t)key);
    if (err == WR_ERATE) {
        secs = (wr_tenant_retry_ms(t, 1) + 999) / 1000;
        secs = secs < 1 ? 1 : secs > RETRY_MAX ? RETRY_MAX : secs;
        snprintf(desc, sizeof(desc),
                 "Publish rate limit of project '%.*s' (publish-rate %llu/s) is reached. Retry "
                 "after %llu s.",
                 (int)c->tenant.len, (const char *)c->tenant.ptr, n, (unsigned long long)secs);
        wr_rest_error(c, 429, NULL, desc);
        pthread_once(&retry_once, retry_init);
        c->resp.retry_after = retry_str[secs];
        wr_rest_finish(c);
        return true;
    }
    snprintf(desc, sizeof(desc), "Quota %s (%llu) of project '%.*s' is reached.",
             wr_quota_keys[key], n, (int)c->tenant.len, (const char *)c->tenant.ptr);
    wr_rest_fail(c, err == WR_ETOOBIG ? 413 : 403, "Quota exceeded", desc);
    return true;
}
