/*
 * core.c - the core's lifecycle and the request round trip.
 *
 * Layout: lifecycle (new, stop, free, accessors, shard_of); requests
 * (enter/leave accounting, allocation, submit, completion on the reply loop
 * and the cleanup of each result kind).
 *
 * A request is one heap block (wr__req_new): the caller's thread fills it
 * and posts it to the owning shard; the shard fills r->out and posts it to
 * the reply loop, which runs the callback and frees the block. Results hold
 * references (bodies, metadata) taken on the shard, so a queue may change
 * or vanish while the callback reads them.
 *
 * Shutdown counts requests instead of guessing: `inflight` goes up before
 * a call is accepted and down after its callback, so wr_core_stop can wait
 * until every accepted request has answered before joining the threads.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core_int.h"

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

wr_err_t wr_core_new(const wr_core_cfg_t *cfg, wr_core_t **out)
{
    wr_core_t *core;
    wr_core_cfg_t def = {0};
    unsigned n;
    wr_err_t err;

    if (!cfg)
        cfg = &def;
    n = cfg->shards;
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)c : 1;
    }
    if (n > 1024)
        return WR_EINVAL;

    core = wr__xcalloc(1, sizeof(*core));
    core->nshards = n;
    core->store = cfg->store;
    core->dl_props = cfg->deadletter_props;
    core->dl_ctx = cfg->deadletter_ctx;
    core->max_message_bytes =
        cfg->max_message_bytes ? cfg->max_message_bytes : WR__DEF_MAX_MESSAGE_BYTES;
    core->max_claim_messages =
        cfg->max_claim_messages ? cfg->max_claim_messages : WR__DEF_MAX_CLAIM_MESSAGES;
    core->max_claim_wait_ms =
        cfg->max_claim_wait_ms ? cfg->max_claim_wait_ms : WR__DEF_MAX_CLAIM_WAIT_MS;
    atomic_init(&core->stopping, false);
    atomic_init(&core->inflight, 0);
    /* Store queue ids from the clock: a restarted process never reuses one. */
    atomic_init(&core->next_qid, (uint64_t)wall_us());
    pthread_mutex_init(&core->mu, NULL);
    pthread_cond_init(&core->cv, NULL);
    core->shards = wr__xcalloc(n, sizeof(*core->shards));
    wr__tenants_init(core); /* before recovery: restored queues count there */

    for (unsigned i = 0; i < n; i++) {
        err = wr__shard_init(&core->shards[i], core, i);
        if (err != WR_OK)
            goto fail;
    }
    /* Before the threads start: recovery fills every shard's tables. */
    err = wr__recover(core);
    if (err != WR_OK)
        goto fail;
    for (unsigned i = 0; i < n; i++) {
        err = wr__shard_start(&core->shards[i]);
        if (err != WR_OK)
            goto fail;
    }
    wr_log(WR_LOG_INFO, WR_LOGC_CORE, "core started shards=%u store=%s", n,
           core->store ? core->store->ops->name : "none");
    *out = core;
    return WR_OK;

fail:
    wr_core_free(core);
    return err;
}

/* Waits until every accepted request has been answered and freed. The
 * shard loops keep running meanwhile: they execute the requests and are
 * usually the reply loops too. */
static void wait_idle(wr_core_t *core)
{
    int64_t deadline = wr_now_mono_ms() + 30000;

    pthread_mutex_lock(&core->mu);
    while (atomic_load(&core->inflight) != 0) {
        struct timespec ts;
        if (wr_now_mono_ms() > deadline) {
            wr_log(WR_LOG_WARN, WR_LOGC_CORE,
                   "core stop: %llu requests still unanswered after 30 s (reply loop stopped?)",
                   (unsigned long long)atomic_load(&core->inflight));
            break;
        }
        /* Timed: a decrement racing with our check cannot be missed long. */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&core->cv, &core->mu, &ts);
    }
    pthread_mutex_unlock(&core->mu);
}

void wr_core_stop(wr_core_t *core)
{
    if (!core || core->stopped)
        return;
    atomic_store(&core->stopping, true);
    /* Parked long-polls would otherwise hold shutdown for their whole wait.
     * Requests that park after this see `stopping` and complete at once. */
    for (unsigned i = 0; i < core->nshards; i++)
        if (core->shards[i].loop)
            wr_loop_post(core->shards[i].loop, wr__shard_flush_waiters, &core->shards[i]);
    wait_idle(core);
    for (unsigned i = 0; i < core->nshards; i++)
        wr_loop_stop(core->shards[i].loop);
    core->stopped = true;
    wr_log(WR_LOG_INFO, WR_LOGC_CORE, "core stopped");
}

void wr_core_free(wr_core_t *core)
{
    if (!core)
        return;
    wr_core_stop(core);
    for (unsigned i = 0; i < core->nshards; i++)
        wr__shard_fini(&core->shards[i]);
    free(core->shards);
    wr__tenants_fini(core);
    pthread_mutex_destroy(&core->mu);
    pthread_cond_destroy(&core->cv);
    free(core);
}

unsigned wr_core_shards(const wr_core_t *core)
{
    return core->nshards;
}

wr_loop_t *wr_core_loop(wr_core_t *core, unsigned i)
{
    WR_ASSERT(i < core->nshards);
    return core->shards[i].loop;
}

static unsigned shard_of_hash(const wr_core_t *core, uint64_t hash)
{
    /* High 32 bits scaled onto [0, n): the maps use the low bits. */
    return (unsigned)(((hash >> 32) * core->nshards) >> 32);
}

/* Builds tenant '\0' queue into buf (at least tlen + qlen + 2 bytes). */
static size_t make_key(char *buf, wr_slice_t tenant, wr_slice_t queue)
{
    memcpy(buf, tenant.ptr, tenant.len);
    buf[tenant.len] = '\0';
    if (queue.len)
        memcpy(buf + tenant.len + 1, queue.ptr, queue.len);
    buf[tenant.len + 1 + queue.len] = '\0';
    return tenant.len + 1 + queue.len;
}

unsigned wr__shard_of_hash(const wr_core_t *core, uint64_t hash)
{
    return shard_of_hash(core, hash);
}

wr__shard_t *wr__shard_here(wr_core_t *core)
{
    wr_loop_t *loop = wr_loop_current();
    unsigned id;

    if (!loop)
        return NULL;
    id = wr_loop_id(loop);
    return id < core->nshards && core->shards[id].loop == loop ? &core->shards[id] : NULL;
}

unsigned wr_core_shard_of(const wr_core_t *core, wr_slice_t tenant, wr_slice_t queue)
{
    return shard_of_hash(core, wr__hash_name(tenant, queue));
}

bool wr_core_store_full(const wr_core_t *core)
{
    return wr_store_full(core->store) != 0;
}

void wr_core_store_counters(const wr_core_t *core, wr_store_counters_t *out)
{
    wr_store_stats_t st = {0};

    if (core->store && core->store->ops->stats)
        core->store->ops->stats(core->store, &st);
    *out = (wr_store_counters_t){st.writes,     st.syncs,      st.bytes_written, st.keys,
                                 st.engine_wal, st.wal_writes, st.wal_syncs};
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */

wr_err_t wr__enter(wr_core_t *core)
{
    /* Count first, then look: wr_core_stop sets the flag, then waits for
     * the count, so either we see the flag or it sees our count. */
    atomic_fetch_add(&core->inflight, 1);
    if (atomic_load(&core->stopping)) {
        wr__leave(core);
        return WR_ESHUTDOWN;
    }
    return WR_OK;
}

void wr__enter_child(wr_core_t *core)
{
    atomic_fetch_add(&core->inflight, 1);
}

void wr__leave(wr_core_t *core)
{
    if (atomic_fetch_sub(&core->inflight, 1) == 1 && atomic_load(&core->stopping)) {
        pthread_mutex_lock(&core->mu);
        pthread_cond_broadcast(&core->cv);
        pthread_mutex_unlock(&core->mu);
    }
}

wr__req_t *wr__req_new(wr_core_t *core, wr__op_t op, size_t extra, wr_slice_t tenant,
                       wr_slice_t queue, wr_loop_t *reply, void *arg)
{
    size_t off = (extra + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
    wr__req_t *r = wr__xmalloc(sizeof(*r) + off + tenant.len + queue.len + 2);
    char *key = (char *)r->data + off;

    memset(r, 0, sizeof(*r));
    r->core = core;
    r->reply = reply;
    r->arg = arg;
    r->op = op;
    r->klen = make_key(key, tenant, queue);
    r->tlen = tenant.len;
    r->key = key;
    r->hash = wr__hash_key(key, r->klen);
    r->shard = shard_of_hash(core, r->hash);
    return r;
}

void wr__req_submit(wr__req_t *r)
{
    wr_loop_post(r->core->shards[r->shard].loop, wr__exec, r);
}

static void free_views(wr_msgs_res_t *res)
{
    for (size_t i = 0; i < res->n; i++) {
        wr_body_unref(res->msgs[i].body);
        wr_body_unref(res->msgs[i].route);
    }
    free((void *)res->msgs);
}

static void req_free(wr__req_t *r)
{
    wr_core_t *core = r->core;

    switch (r->op) {
    case WR__OP_DECLARE:
        wr_body_unref(r->in.declare.meta);
        break;
    case WR__OP_STAT:
        wr_body_unref(r->out_meta);
        break;
    case WR__OP_PUBLISH:
        for (size_t i = 0; i < r->in.publish.n; i++)
            wr_body_unref(r->in.publish.msgs[i].body);
        break;
    case WR__OP_MLIST:
    case WR__OP_MGET:
    case WR__OP_CLAIM:
    case WR__OP_CLAIM_GET:
        free_views(&r->out.msgs);
        break;
    case WR__OP_QLIST:
    case WR__OP_METRICS:
        wr__gather_cleanup(r);
        break;
    case WR__OP_QDELETE:
    case WR__OP_PURGE:
    case WR__OP_MDELETE:
    case WR__OP_CLAIM_RENEW:
    case WR__OP_CLAIM_RELEASE:
    case WR__OP_TOPO:
    case WR__OP_ROUTE_PART:
    case WR__OP_OWNER_GONE:
    case WR__OP_SUB:
    case WR__OP_ACK:
        break;
    case WR__OP_ROUTE:
        for (size_t i = 0; i < r->in.route.n; i++)
            wr_body_unref(r->in.route.msgs[i].body);
        wr_body_unref(r->in.route.route);
        break;
    }
    wr__persist_free_aux(r);
    free(r);
    wr__leave(core);
}

static void on_reply(void *arg)
{
    wr__req_t *r = arg;

    switch (r->op) {
    case WR__OP_DECLARE:
        r->cb.declare(r->arg, &r->out.declare);
        break;
    case WR__OP_STAT:
        r->cb.stat(r->arg, &r->out.stat);
        break;
    case WR__OP_QDELETE:
    case WR__OP_PURGE:
    case WR__OP_MDELETE:
    case WR__OP_CLAIM_RENEW:
    case WR__OP_CLAIM_RELEASE:
    case WR__OP_TOPO:
    case WR__OP_OWNER_GONE:
    case WR__OP_ACK:
        r->cb.count(r->arg, &r->out.count);
        break;
    case WR__OP_PUBLISH:
        r->cb.publish(r->arg, &r->out.publish);
        break;
    case WR__OP_MLIST:
    case WR__OP_MGET:
    case WR__OP_CLAIM:
    case WR__OP_CLAIM_GET:
        r->cb.msgs(r->arg, &r->out.msgs);
        break;
    case WR__OP_QLIST:
        wr__gather_merge(r);
        r->cb.qlist(r->arg, &r->out.qlist);
        break;
    case WR__OP_METRICS:
        wr__gather_merge(r);
        r->cb.metrics(r->arg, &r->out.metrics);
        break;
    case WR__OP_ROUTE:
        r->cb.route(r->arg, &r->out.route);
        break;
    case WR__OP_ROUTE_PART:
        break;
    case WR__OP_SUB:
        if (r->in.sub.kind == WR__SUB_SUBSCRIBE)
            r->cb.sub(r->arg, &r->out.sub);
        else
            r->cb.count(r->arg, &r->out.count);
        break;
    }
    req_free(r);
}

void wr__complete(wr__req_t *r)
{
    wr__shard_t *sh = wr__shard_current(r->core);

    /* Store deletes this task queued (acks, expiry) go out before anyone
     * hears the answer: an acked message must not come back after a crash
     * that follows the reply. */
    wr__persist_flush(sh);
    /* Internal and fire-and-forget requests have no one to tell. */
    if (!r->reply || r->nocb) {
        req_free(r);
        return;
    }
    /* Nor may any answer from this shard overtake a delete still on its
     * way to the log: a client that acked, then heard back from the same
     * queue, must be able to count on the ack (persist.c). Subscription
     * changes are the exception: their answers must stay ahead of the
     * deliveries the shard pushes right after them (consumer.c), and they
     * tell nothing about acks. */
    if (sh->wal_done < sh->wal_sent && r->op != WR__OP_SUB) {
        r->defer_tag = sh->wal_sent;
        r->defer_next = NULL;
        if (sh->defer_tail)
            sh->defer_tail->defer_next = r;
        else
            sh->defer_head = r;
        sh->defer_tail = r;
        return;
    }
    wr_loop_post(r->reply, on_reply, r);
}

void wr__release_deferred(wr__shard_t *sh)
{
    wr__req_t *r;

    while ((r = sh->defer_head) && r->defer_tag <= sh->wal_done) {
        sh->defer_head = r->defer_next;
        if (!sh->defer_head)
            sh->defer_tail = NULL;
        wr_loop_post(r->reply, on_reply, r);
    }
}

void wr__gather_done(wr__req_t *r)
{
    /* acq_rel: the last shard must see every other shard's part. */
    if (atomic_fetch_sub_explicit(&r->pending, 1, memory_order_acq_rel) == 1)
        wr__complete(r);
}
