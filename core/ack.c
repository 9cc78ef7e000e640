/*
 * ack.c - acknowledgements: ack (delete under a claim) and release
 * (requeue, or reject: dead-letter or drop), for AMQP basic.ack, nack,
 * reject and recover.
 *
 * Both take the claim id the messages were delivered under (a
 * subscription's, a basic.get's held claim, or a timed claim) and ignore
 * ids that are not under it: the AMQP front end tracks delivery tags and
 * decides what is an error, so the core never refuses a batch because one
 * message has meanwhile gone (expired, purged, queue limit). A held claim
 * left empty is freed here, so basic.get claims do not pile up.
 *
 * Requeued messages keep their id, so they go back exactly where they
 * were: ahead of everything published after them.
 */
#include <string.h>

#include "core_int.h"

void wr__exec_ack(wr__shard_t *sh, wr__req_t *r)
{
    wr_count_res_t *res = &r->out.count;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();
    bool requeue = (r->in.ids.flags & WR_REL_REQUEUE) != 0, requeued = false;
    wr__claim_t *c;
    uint64_t pos;

    if (!q) {
        res->err = WR_ENOTFOUND;
        wr__complete(r);
        return;
    }
    wr__queue_tick(sh, q, now);
    c = wr__claim_find(q, r->in.ids.claim_id);
    if (!c || c->expires_ms <= now) {
        wr__complete(r);
        return;
    }
    for (size_t i = 0; i < r->in.ids.n; i++) {
        wr__msg_t *m = wr__ix_find(&q->ix, r->in.ids.ids[i], &pos);
        if (!m || m->claim != c)
            continue;
        res->count++;
        if (!r->in.ids.release) {
            q->acked++;
            wr__queue_remove(sh, q, pos);
        } else if (requeue) {
            wr__msg_unclaim(q, m);
            requeued = true;
        } else {
            wr__queue_reject_msg(sh, q, pos);
        }
    }
    wr__claim_drop_if_empty(q, c);
    /* Answer first: a requeued message may go straight out again. */
    wr__complete(r);
    if (requeued)
        wr__queue_wake(sh, q, now);
    wr__queue_tidy(q);
}

static wr_err_t call(wr_core_t *core, bool release, wr_slice_t tenant, wr_slice_t queue,
                     uint64_t claim_id, const uint64_t *ids, size_t n, unsigned flags,
                     wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err;

    if (!core || tenant.len < 1 || tenant.len > WR_NAME_MAX || !tenant.ptr || queue.len < 1 ||
        queue.len > WR_NAME_MAX || !queue.ptr || n > WR_BATCH_MAX || (n && !ids) ||
        (cb && !reply))
        return WR_EINVAL;
    err = wr__enter(core);
    if (err != WR_OK)
        return err;
    r = wr__req_new(core, WR__OP_ACK, n * sizeof(*ids), tenant, queue, reply, arg);
    r->cb.count = cb;
    r->nocb = cb == NULL;
    if (n)
        memcpy(r->data, ids, n * sizeof(*ids));
    r->in.ids.ids = (const uint64_t *)r->data;
    r->in.ids.n = n;
    r->in.ids.claim_id = claim_id;
    r->in.ids.release = release;
    r->in.ids.flags = flags;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_ack(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t claim_id,
                const uint64_t *ids, size_t n, wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    return call(core, false, tenant, queue, claim_id, ids, n, 0, reply, cb, arg);
}

wr_err_t wr_release(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t claim_id,
                    const uint64_t *ids, size_t n, unsigned flags, wr_loop_t *reply,
                    wr_count_cb cb, void *arg)
{
    return call(core, true, tenant, queue, claim_id, ids, n, flags, reply, cb, arg);
}
