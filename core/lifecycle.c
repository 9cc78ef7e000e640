/*
 * lifecycle.c - queues that end by themselves: exclusive queues when their
 * owner goes, auto-delete queues when their last consumer goes, and queues
 * unused for their x-expires time.
 *
 * Layout: the owner-gone broadcast. The other two are decided where the
 * state changes (wr__queue_check_unused when a consumer leaves, the sweep
 * for x-expires: queue.c and shard.c); all three end in wr__queue_gone,
 * which removes the queue's bindings on every shard and ends its
 * consumers.
 *
 * Owner gone is a gather: the request visits every shard (each deletes the
 * exclusive queues it owns for that owner) and the last one answers.
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

void wr__exec_owner_gone(void *arg)
{
    wr__req_t *r = arg;
    wr__shard_t *sh = wr__shard_current(r->core);
    uint64_t owner = r->in.qdelete.owner;
    wr__queue_t **gone = NULL;
    size_t ngone = 0;

    sh->requests++;
    uint64_t deleted = 0;

    /* Collect first: deleting changes the map being walked. */
    for (size_t i = 0; i < sh->queues.cap; i++) {
        wr__queue_t *q = sh->queues.e[i].val;
        bool mine = q && q->attrs.exclusive && q->attrs.owner == owner;
        if (!q || (!mine && !q->nowned))
            continue;
        if (ngone % 16 == 0)
            gone = wr__xrealloc(gone, (ngone + 16) * sizeof(*gone));
        gone[ngone++] = q;
    }
    for (size_t i = 0; i < ngone; i++) {
        wr__queue_t *q = gone[i];
        if (q->attrs.exclusive && q->attrs.owner == owner) {
            /* The owner's own consumers end quietly: nobody is left to
             * hear of it (ended() would reach a closed connection). */
            if (!wr__queue_owner_cleanup(sh, q, owner))
                wr__queue_gone(sh, q, NULL);
            deleted++;
        } else {
            /* Its consumers and held claims of this owner end first. */
            wr__queue_owner_cleanup(sh, q, owner);
        }
    }
    free(gone);
    ngone = deleted;
    wr__persist_flush(sh);
    atomic_fetch_add_explicit(&r->gcount, ngone, memory_order_relaxed);
    /* acq_rel: the last shard sees every other shard's count. */
    if (atomic_fetch_sub_explicit(&r->pending, 1, memory_order_acq_rel) == 1) {
        r->out.count.count = atomic_load_explicit(&r->gcount, memory_order_relaxed);
        wr__complete(r);
    }
}

wr_err_t wr_owner_gone(wr_core_t *core, uint64_t owner, wr_loop_t *reply, wr_count_cb cb,
                       void *arg)
{
    static const char none[] = "-";
    wr__req_t *r;
    wr_err_t err;

    if (!core || (cb && !reply))
        return WR_EINVAL;
    err = wr__enter(core);
    if (err != WR_OK)
        return err;
    r = wr__req_new(core, WR__OP_OWNER_GONE, 0, (wr_slice_t){none, 1}, (wr_slice_t){NULL, 0},
                    reply, arg);
    r->cb.count = cb;
    r->nocb = cb == NULL;
    r->in.qdelete.owner = owner;
    atomic_init(&r->pending, core->nshards);
    atomic_init(&r->gcount, 0);
    /* Once the last post is out, r may already be answered and freed. */
    for (unsigned i = 0, n = core->nshards; i < n; i++)
        wr_loop_post(core->shards[i].loop, wr__exec_owner_gone, r);
    return WR_OK;
}
