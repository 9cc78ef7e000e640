/*
 * shard.c - a shard: one loop thread owning a set of queues.
 *
 * Layout: lifecycle (init/start/fini); request dispatch (wr__exec, the
 * mailbox task every single-queue request runs as); the sweep timer; the
 * shutdown flush of parked long-polls.
 *
 * The sweep ends expired claims and removes expired messages. Every queue
 * operation also does this lazily for its own queue (wr__queue_tick), so
 * the sweep is only about memory and parked waiters; it skips its pass
 * entirely while the shard's `next_due` bound says nothing can be due.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core_int.h"

#define SWEEP_MS 250

static void on_sweep(evutil_socket_t fd, short what, void *arg);

wr_err_t wr__shard_init(wr__shard_t *sh, wr_core_t *core, unsigned idx)
{
    struct timespec ts;
    struct timeval tv = {0, SWEEP_MS * 1000};
    wr_err_t err;

    sh->core = core;
    sh->idx = idx;
    sh->next_due = INT64_MAX;
    /* Claim ids from the wall clock (us): ids of a previous run or of a
     * deleted queue's claims are never handed out again. */
    clock_gettime(CLOCK_REALTIME, &ts);
    sh->next_claim_id = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    err = wr_loop_new(idx, &sh->loop);
    if (err != WR_OK)
        return err;
    sh->sweep_ev = event_new(wr_loop_base(sh->loop), -1, EV_PERSIST, on_sweep, sh);
    if (!sh->sweep_ev)
        return WR_ENOMEM;
    event_add(sh->sweep_ev, &tv);
    return WR_OK;
}

wr_err_t wr__shard_start(wr__shard_t *sh)
{
    char name[16];

    snprintf(name, sizeof(name), "wr-shard-%u", sh->idx);
    return wr_loop_start(sh->loop, name);
}

/* After the loop stopped: nothing else touches the shard any more. */
void wr__shard_fini(wr__shard_t *sh)
{
    for (size_t i = 0; i < sh->queues.cap; i++)
        if (sh->queues.e[i].val)
            wr__queue_free(sh->queues.e[i].val);
    wr__map_fini(&sh->queues);
    /* wr_core_stop completed every parked request; entries cannot remain. */
    for (size_t i = 0; i < sh->parked.cap; i++)
        if (sh->parked.e[i].val)
            free(sh->parked.e[i].val);
    wr__map_fini(&sh->parked);
    wr__topo_fini(sh);
    wr__route_fini(sh);
    wr__dl_fini(sh);
    if (sh->sweep_ev)
        event_free(sh->sweep_ev);
    wr_loop_free(sh->loop);
    free(sh->dels);
}

wr__shard_t *wr__shard_current(wr_core_t *core)
{
    wr_loop_t *loop = wr_loop_current();

    WR_ASSERT(loop);
    WR_ASSERT(wr_loop_id(loop) < core->nshards && core->shards[wr_loop_id(loop)].loop == loop);
    return &core->shards[wr_loop_id(loop)];
}

uint64_t wr__next_claim_id(wr__shard_t *sh)
{
    uint64_t id = sh->next_claim_id++;
    return id ? id : sh->next_claim_id++;
}

void wr__exec(void *arg)
{
    wr__req_t *r = arg;
    wr__shard_t *sh = &r->core->shards[r->shard];

    WR_ASSERT(wr_loop_is_current(sh->loop));
    sh->requests++;
    switch (r->op) {
    case WR__OP_DECLARE:
        wr__exec_declare(sh, r);
        break;
    case WR__OP_STAT:
        wr__exec_stat(sh, r);
        break;
    case WR__OP_QDELETE:
        wr__exec_qdelete(sh, r);
        break;
    case WR__OP_PURGE:
        wr__exec_purge(sh, r);
        break;
    case WR__OP_PUBLISH:
        wr__exec_publish(sh, r);
        break;
    case WR__OP_MLIST:
        wr__exec_mlist(sh, r);
        break;
    case WR__OP_MGET:
        wr__exec_mget(sh, r);
        break;
    case WR__OP_MDELETE:
        wr__exec_mdelete(sh, r);
        break;
    case WR__OP_CLAIM:
        wr__exec_claim(sh, r);
        break;
    case WR__OP_CLAIM_GET:
        wr__exec_claim_get(sh, r);
        break;
    case WR__OP_CLAIM_RENEW:
        wr__exec_claim_renew(sh, r);
        break;
    case WR__OP_CLAIM_RELEASE:
        wr__exec_claim_release(sh, r);
        break;
    case WR__OP_ROUTE_PART:
        wr__exec_route_part(sh, r);
        break;
    case WR__OP_SUB:
        wr__exec_sub(sh, r);
        break;
    case WR__OP_ACK:
        wr__exec_ack(sh, r);
        break;
    case WR__OP_QLIST:
    case WR__OP_METRICS:
    case WR__OP_TOPO:
    case WR__OP_ROUTE:
    case WR__OP_OWNER_GONE:
        /* Gathers, topology changes and routing run as their own tasks. */
        wr_panic(__FILE__, __LINE__, "gather request in wr__exec");
    }
    wr__persist_flush(sh);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    wr__shard_t *sh = arg;
    int64_t now = wr_now_wall_ms(), due = INT64_MAX;
    bool expired = false;

    (void)fd;
    (void)what;
    if (now < sh->next_due)
        return;
    /* Recomputed by this pass; anything it does may lower it again. */
    sh->next_due = INT64_MAX;
    for (size_t i = 0; i < sh->queues.cap; i++) {
        wr__queue_t *q = sh->queues.e[i].val;
        if (!q)
            continue;
        wr__queue_tick(sh, q, now);
        if (q->waiters.n || q->subs)
            wr__queue_wake(sh, q, now);
        wr__queue_tidy(q);
        due = WR__MIN(due, WR__MIN(q->min_exp, q->next_claim_exp));
        if (q->expire_at <= now)
            expired = true;
        else
            due = WR__MIN(due, q->expire_at);
        wr__queue_note_waiters(sh, q, now);
    }
    sh->next_due = WR__MIN(sh->next_due, due);
    if (expired)
        wr__queues_expire(sh, now);
    wr__persist_flush(sh);
}

void wr__shard_flush_waiters(void *arg)
{
    wr__shard_t *sh = arg;
    int64_t now = wr_now_wall_ms();

    for (size_t i = 0; i < sh->queues.cap; i++) {
        wr__queue_t *q = sh->queues.e[i].val;
        if (q && q->waiters.n)
            wr__waitlist_flush(sh, &q->waiters, q, now);
    }
    /* Flushing a parked list frees its entry, which changes the map: take
     * one at a time. */
    for (;;) {
        wr__parked_t *p = NULL;
        for (size_t i = 0; i < sh->parked.cap && !p; i++)
            p = sh->parked.e[i].val;
        if (!p)
            break;
        wr__waitlist_flush(sh, &p->wl, NULL, now);
    }
    wr__persist_flush(sh);
}
