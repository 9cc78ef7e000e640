/*
 * api.c - the entry points of wr.h for single-queue operations.
 *
 * Each checks its arguments on the caller's thread (an error returns at
 * once and the callback never runs), copies the inputs into one request
 * block and posts it to the shard that owns the queue. The handlers are in
 * queue.c, message.c and claim.c; the gathers (queue list, metrics) are in
 * gather.c.
 */
#include <string.h>

#include "core_int.h"

static bool name_ok(wr_slice_t s)
{
    return s.len >= 1 && s.len <= WR_NAME_MAX && s.ptr;
}

static bool dur_ok(int64_t ms)
{
    return ms >= 0 && ms <= WR__MAX_DURATION_MS;
}

/* Common start of a call: names, shutdown, allocation. */
static wr_err_t start(wr_core_t *core, wr__op_t op, size_t extra, wr_slice_t tenant,
                      wr_slice_t queue, wr_loop_t *reply, bool has_cb, void *arg,
                      wr__req_t **out)
{
    wr_err_t err;

    if (!core || !reply || !has_cb || !name_ok(tenant) || !name_ok(queue))
        return WR_EINVAL;
    err = wr__enter(core);
    if (err != WR_OK)
        return err;
    *out = wr__req_new(core, op, extra, tenant, queue, reply, arg);
    return WR_OK;
}

wr_err_t wr_queue_declare(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue,
                          const wr_queue_attrs_t *attrs, wr_slice_t meta, unsigned flags,
                          wr_loop_t *reply, wr_queue_declare_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err;

    if (meta.len > WR_META_MAX || (meta.len && !meta.ptr))
        return WR_EINVAL;
    if (attrs && (!dur_ok(attrs->default_ttl_ms) || !dur_ok(attrs->default_delay_ms) ||
                  !dur_ok(attrs->expires_ms) ||
                  (attrs->overflow != WR_OVERFLOW_DROP_HEAD &&
                   attrs->overflow != WR_OVERFLOW_REJECT &&
                   attrs->overflow != WR_OVERFLOW_REJECT_DLX) ||
                  (attrs->exclusive && !attrs->owner)))
        return WR_EINVAL;
    err = start(core, WR__OP_DECLARE, 0, tenant, queue, reply, cb != NULL, arg, &r);
    if (err != WR_OK)
        return err;
    r->cb.declare = cb;
    if (attrs) {
        r->in.declare.attrs = *attrs;
        r->in.declare.has_attrs = true;
    }
    /* The metadata becomes its own immutable blob now: the queue keeps it
     * and stat/list results share it without another copy. */
    if (meta.len)
        r->in.declare.meta = wr_body_new((wr_slice_t){NULL, 0}, meta);
    r->in.declare.flags = flags;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_queue_stat(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, wr_loop_t *reply,
                       wr_queue_stat_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err = start(core, WR__OP_STAT, 0, tenant, queue, reply, cb != NULL, arg, &r);

    if (err != WR_OK)
        return err;
    r->cb.stat = cb;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_queue_delete_as(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, unsigned flags,
                            uint64_t owner, wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err = start(core, WR__OP_QDELETE, 0, tenant, queue, reply, cb != NULL, arg, &r);

    if (err != WR_OK)
        return err;
    r->cb.count = cb;
    r->in.qdelete.flags = flags;
    r->in.qdelete.owner = owner;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_queue_delete(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, unsigned flags,
                         wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    return wr_queue_delete_as(core, tenant, queue, flags, 0, reply, cb, arg);
}

wr_err_t wr_queue_purge_as(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t owner,
                           wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err = start(core, WR__OP_PURGE, 0, tenant, queue, reply, cb != NULL, arg, &r);

    if (err != WR_OK)
        return err;
    r->cb.count = cb;
    r->in.qdelete.owner = owner;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_queue_purge(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, wr_loop_t *reply,
                        wr_count_cb cb, void *arg)
{
    return wr_queue_purge_as(core, tenant, queue, 0, reply, cb, arg);
}

static void unref_msgs(wr_msg_in_t *msgs, size_t n)
{
    for (size_t i = 0; msgs && i < n; i++)
        wr_body_unref(msgs[i].body);
}

wr_err_t wr_publish(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, wr_msg_in_t *msgs,
                    size_t n, unsigned flags, wr_loop_t *reply, wr_publish_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err = WR_OK;
    size_t ids_bytes = n * sizeof(uint64_t);

    /* The bodies' references are ours from here on, even on failure. */
    if (!core || !msgs || n == 0 || n > WR_BATCH_MAX)
        err = WR_EINVAL;
    for (size_t i = 0; err == WR_OK && i < n; i++) {
        if (!msgs[i].body || !dur_ok(msgs[i].ttl_ms) || msgs[i].delay_ms < -1 ||
            msgs[i].delay_ms > WR__MAX_DURATION_MS)
            err = WR_EINVAL;
        else if (msgs[i].body->body_len > core->max_message_bytes)
            err = WR_ETOOBIG;
    }
    if (err == WR_OK && tenant.len >= 1 && tenant.len <= WR_NAME_MAX && tenant.ptr) {
        wr__tenant_t *tn = wr__tenant_of(core, tenant);
        if (atomic_load_explicit(&tn->limited, memory_order_relaxed))
            err = wr__quota_publish(tn, msgs, n);
    }
    if (err == WR_OK)
        err = start(core, WR__OP_PUBLISH, ids_bytes + n * sizeof(*msgs), tenant, queue, reply,
                    cb != NULL, arg, &r);
    if (err != WR_OK) {
        unref_msgs(msgs, n);
        return err;
    }
    r->cb.publish = cb;
    /* ids first: data[] is max-aligned and both arrays are 8-aligned. */
    r->out.publish.ids = (const uint64_t *)r->data;
    r->in.publish.msgs = (wr_msg_in_t *)(r->data + ids_bytes);
    memcpy(r->in.publish.msgs, msgs, n * sizeof(*msgs));
    r->in.publish.n = n;
    r->in.publish.flags = flags;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_msg_list(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t marker,
                     uint32_t limit, unsigned flags, uint64_t producer, wr_loop_t *reply,
                     wr_msgs_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err;

    if (limit < 1 || limit > WR__LIST_MAX)
        return WR_EINVAL;
    err = start(core, WR__OP_MLIST, 0, tenant, queue, reply, cb != NULL, arg, &r);
    if (err != WR_OK)
        return err;
    r->cb.msgs = cb;
    r->in.mlist.marker = marker;
    r->in.mlist.limit = limit;
    r->in.mlist.flags = flags;
    r->in.mlist.producer = producer;
    wr__req_submit(r);
    return WR_OK;
}

static wr_err_t ids_call(wr_core_t *core, wr__op_t op, wr_slice_t tenant, wr_slice_t queue,
                         const uint64_t *ids, size_t n, wr_loop_t *reply, bool has_cb,
                         void *arg, wr__req_t **out)
{
    wr_err_t err;

    if (n > WR_BATCH_MAX || (n && !ids))
        return WR_EINVAL;
    err = start(core, op, n * sizeof(*ids), tenant, queue, reply, has_cb, arg, out);
    if (err != WR_OK)
        return err;
    if (n)
        memcpy((*out)->data, ids, n * sizeof(*ids));
    (*out)->in.ids.ids = (const uint64_t *)(*out)->data;
    (*out)->in.ids.n = n;
    return WR_OK;
}

wr_err_t wr_msg_get(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, const uint64_t *ids,
                    size_t n, wr_loop_t *reply, wr_msgs_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err = ids_call(core, WR__OP_MGET, tenant, queue, ids, n, reply, cb != NULL, arg, &r);

    if (err != WR_OK)
        return err;
    r->cb.msgs = cb;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_msg_delete(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, const uint64_t *ids,
                       size_t n, uint64_t claim_id, bool force, wr_loop_t *reply, wr_count_cb cb,
                       void *arg)
{
    wr__req_t *r;
    wr_err_t err =
        ids_call(core, WR__OP_MDELETE, tenant, queue, ids, n, reply, cb != NULL, arg, &r);

    if (err != WR_OK)
        return err;
    r->cb.count = cb;
    r->in.ids.claim_id = claim_id;
    r->in.ids.force = force;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_claim(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue,
                  const wr_claim_opts_t *opts, wr_loop_t *reply, wr_msgs_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err;

    if (!core || !opts || opts->limit < 1 || opts->limit > core->max_claim_messages ||
        (!opts->owner_hold && opts->ttl_ms <= 0) || !dur_ok(opts->ttl_ms) ||
        !dur_ok(opts->grace_ms) || opts->wait_ms < 0)
        return WR_EINVAL;
    err = start(core, WR__OP_CLAIM, 0, tenant, queue, reply, cb != NULL, arg, &r);
    if (err != WR_OK)
        return err;
    r->cb.msgs = cb;
    r->in.claim = *opts;
    if (opts->owner_hold)
        r->in.claim.ttl_ms = r->in.claim.grace_ms = 0;
    /* The longest long-poll is a server limit, not a client error. */
    if ((uint64_t)r->in.claim.wait_ms > core->max_claim_wait_ms)
        r->in.claim.wait_ms = (int64_t)core->max_claim_wait_ms;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_claim_get(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t claim_id,
                      wr_loop_t *reply, wr_msgs_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err = start(core, WR__OP_CLAIM_GET, 0, tenant, queue, reply, cb != NULL, arg, &r);

    if (err != WR_OK)
        return err;
    r->cb.msgs = cb;
    r->in.cl.claim_id = claim_id;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_claim_renew(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t claim_id,
                        int64_t ttl_ms, int64_t grace_ms, wr_loop_t *reply, wr_count_cb cb,
                        void *arg)
{
    wr__req_t *r;
    wr_err_t err;

    if (ttl_ms <= 0 || !dur_ok(ttl_ms) || !dur_ok(grace_ms))
        return WR_EINVAL;
    err = start(core, WR__OP_CLAIM_RENEW, 0, tenant, queue, reply, cb != NULL, arg, &r);
    if (err != WR_OK)
        return err;
    r->cb.count = cb;
    r->in.cl.claim_id = claim_id;
    r->in.cl.ttl_ms = ttl_ms;
    r->in.cl.grace_ms = grace_ms;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_claim_release(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t claim_id,
                          wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err = start(core, WR__OP_CLAIM_RELEASE, 0, tenant, queue, reply, cb != NULL, arg, &r);

    if (err != WR_OK)
        return err;
    r->cb.count = cb;
    r->in.cl.claim_id = claim_id;
    wr__req_submit(r);
    return WR_OK;
}
