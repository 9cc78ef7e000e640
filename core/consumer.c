/*
 * consumer.c - subscriptions: messages pushed to consumers while they have
 * credit (AMQP basic.consume), and their credit, pause and cancel.
 *
 * Layout: delivery batches (fill, post, run on the consumer's loop); the
 * dispatch pass (pick a consumer, take a message); subscription lifecycle
 * (add, remove, end with the queue, owner gone); request handlers; API.
 *
 * A subscription lives on its queue's shard. Its deliveries are held under
 * its own claim (kind WR__CLAIM_SUB, id = subscription id), which never
 * expires: acking is deleting with that claim id and releasing is ending
 * the hold, both on the shard, so credit and claim bookkeeping never leave
 * it. no_ack subscriptions delete what they deliver.
 *
 * The dispatch pass runs whenever messages may have become available
 * (publish, release, requeue, claim expiry) or a consumer may take more
 * (subscribe, credit, resume). It walks the claim scan (priority, then
 * FIFO) and hands each message to the next consumer with credit in the
 * highest priority that has any, round robin within that priority. Each
 * consumer's messages of one pass go out as one batch (one allocation, one
 * mailbox post), so a fast publisher and a consumer with a large prefetch
 * cost a post per batch, not per message.
 *
 * Ordering: a consumer's batches, its subscribe answer and its end notice
 * are all posted from the shard thread to the consumer's loop, so they run
 * in the order they were made: the subscribe answer before the first
 * delivery, the end notice after the last.
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

#define BATCH_MAX 256u

struct wr__dbatch {
    wr_core_t *core;
    wr_deliver_cb deliver;
    void *arg;
    wr__sub_t *dnext; /* the pass's list of consumers with a batch */
    wr_deliveries_t out;
    uint32_t cap;
    wr_delivery_t d[]; /* then the queue's name */
};

/* ------------------------------------------------------------------------ */
/* Batches                                                                  */

static wr__dbatch_t *batch_new(const wr__queue_t *q, const wr__sub_t *s, uint32_t cap)
{
    wr_slice_t name = wr__queue_name(q);
    wr__dbatch_t *b = wr__xmalloc(sizeof(*b) + cap * sizeof(b->d[0]) + name.len);
    char *p = (char *)&b->d[cap];

    b->core = NULL;
    b->deliver = s->deliver;
    b->arg = s->arg;
    b->dnext = NULL;
    b->cap = cap;
    memcpy(p, name.ptr, name.len);
    b->out = (wr_deliveries_t){.sub_id = s->id,
                               .claim_id = s->claim ? s->claim->id : 0,
                               .queue = {p, name.len},
                               .d = b->d,
                               .n = 0};
    return b;
}

static void batch_free(wr__dbatch_t *b)
{
    for (size_t i = 0; i < b->out.n; i++) {
        wr_body_unref(b->d[i].body);
        wr_body_unref(b->d[i].route);
    }
    free(b);
}

static void on_deliver(void *arg)
{
    wr__dbatch_t *b = arg;
    wr_core_t *core = b->core;

    b->deliver(b->arg, &b->out);
    batch_free(b);
    wr__leave(core);
}

static void batch_post(wr__shard_t *sh, wr__sub_t *s)
{
    wr__dbatch_t *b = s->batch;

    s->batch = NULL;
    /* Counted in flight, so shutdown waits until the consumer had it. */
    if (wr__enter(sh->core) != WR_OK) {
        batch_free(b);
        return;
    }
    b->core = sh->core;
    wr_loop_post(s->loop, on_deliver, b);
}

static void fill(wr_delivery_t *d, const wr__msg_t *m, const wr__dbatch_t *b)
{
    wr_body_t *route = wr__msg_route(m);

    d->id = m->id;
    d->body = wr_body_ref(wr__msg_body(m));
    d->route = route ? wr_body_ref(route) : NULL;
    if (route) {
        d->exchange = (wr_slice_t){route->data, route->props_len};
        d->routing_key = (wr_slice_t){wr_body_bytes(route), route->body_len};
    } else {
        d->exchange = (wr_slice_t){"", 0};
        d->routing_key = b->out.queue;
    }
    d->delivery_count = m->claim_count;
    d->priority = WR__MSG_PRIO(m);
    d->redelivered = (m->flags & WR__MSG_REDELIVERED) != 0;
    d->persistent = (m->flags & WR__MSG_PERSISTENT) != 0;
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */

static bool active(const wr__sub_t *s)
{
    return !s->paused && (s->unlimited || s->credit > 0);
}

/* The next consumer: the highest priority with an active member, round
 * robin within it. NULL if none can take a message. The turn passes only
 * in pick_commit, once a message was found for it. */
static wr__sub_t *pick(wr__queue_t *q, wr__sub_t **first_out)
{
    wr__sub_t *s, *first, *start;
    int32_t prio;

    for (s = q->subs; s && !active(s); s = s->next)
        ;
    if (!s)
        return NULL;
    prio = s->priority;
    for (first = q->subs; first->priority != prio; first = first->next)
        ;
    start = q->rr && q->rr->priority == prio ? q->rr : first;
    s = start;
    while (!active(s)) {
        s = s->next && s->next->priority == prio ? s->next : first;
        WR_ASSERT(s != start); /* the group has an active member */
    }
    *first_out = first;
    return s;
}

static void pick_commit(wr__queue_t *q, wr__sub_t *s, wr__sub_t *first)
{
    q->rr = s->next && s->next->priority == s->priority ? s->next : first;
}

void wr__dispatch(wr__shard_t *sh, wr__queue_t *q, int64_t now)
{
    wr__sub_t *dirty = NULL, *s, *first;
    bool removed = false;
    wr__scan_t scan;

    /* Nothing claimable, or nobody to take it: the common cheap exits. */
    if (!q->subs || q->ix.live == q->nclaimed || atomic_load(&sh->core->stopping))
        return;
    wr__scan_start(q, &scan);
    while ((s = pick(q, &first))) {
        wr__msg_t *m = wr__scan_next(sh, q, &scan, now);
        wr__dbatch_t *b;

        if (!m)
            break;
        pick_commit(q, s, first);
        if (!s->batch) {
            /* Room for this consumer's share of what may be ready. */
            uint64_t avail = (q->ix.live - q->nclaimed) / (q->nconsumers ? q->nconsumers : 1) + 1;
            uint32_t cap = (uint32_t)WR__MIN((uint64_t)BATCH_MAX, avail);
            if (!s->unlimited)
                cap = WR__MIN(cap, s->credit);
            s->batch = batch_new(q, s, cap ? cap : 1);
            s->batch->dnext = dirty;
            dirty = s;
        }
        b = s->batch;
        wr__msg_delivered(sh, q, m, !s->no_ack);
        fill(&b->d[b->out.n++], m, b);
        q->delivered++;
        if (!s->unlimited)
            s->credit--;
        if (s->no_ack) {
            q->acked++;
            wr__scan_remove(sh, q, &scan);
            removed = true;
        } else {
            wr__claim_hold(q, s->claim, m);
        }
        if (b->out.n == b->cap) {
            /* Full: send it; the consumer may get another this pass. */
            wr__sub_t *next = b->dnext;
            if (dirty == s) {
                dirty = next;
            } else {
                for (wr__sub_t *x = dirty; x; x = x->batch->dnext)
                    if (x->batch->dnext == s) {
                        x->batch->dnext = next;
                        break;
                    }
            }
            batch_post(sh, s);
        }
    }
    while (dirty) {
        s = dirty;
        dirty = s->batch->dnext;
        batch_post(sh, s);
    }
    if (removed)
        wr__queue_tidy(q);
}

void wr__queue_wake(wr__shard_t *sh, wr__queue_t *q, int64_t now)
{
    /* Messages back in a queue that keeps nothing (requeued, a claim
     * ended) go before anyone gets them: RabbitMQ's requeue_and_run
     * applies the limit (maybe_drop_head), then delivers. */
    if (wr__queue_keeps_nothing(q))
        wr__queue_drop_ready(sh, q, now);
    if (q->waiters.n)
        wr__serve_waiters(sh, q, now);
    wr__dispatch(sh, q, now);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

static wr__sub_t *sub_find(const wr__queue_t *q, uint64_t id)
{
    return wr__map_get(&q->submap, wr__hash_u64(id), &id, sizeof(id));
}

static void sub_insert(wr__queue_t *q, wr__sub_t *s)
{
    wr__sub_t *after = q->subs_tail;

    /* Highest priority first; a newcomer goes last among its equals. */
    while (after && after->priority < s->priority)
        after = after->prev;
    s->prev = after;
    s->next = after ? after->next : q->subs;
    if (s->next)
        s->next->prev = s;
    else
        q->subs_tail = s;
    if (after)
        after->next = s;
    else
        q->subs = s;
    wr__map_put(&q->submap, wr__hash_u64(s->id), &s->id, sizeof(s->id), s);
    q->nconsumers++;
    q->had_consumer = true;
    q->excl_sub |= s->exclusive;
    if (s->owner)
        q->nowned++;
}

static void sub_unlink(wr__queue_t *q, wr__sub_t *s)
{
    if (q->rr == s)
        q->rr = s->next;
    if (s->prev)
        s->prev->next = s->next;
    else
        q->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        q->subs_tail = s->prev;
    wr__map_del(&q->submap, wr__hash_u64(s->id), &s->id, sizeof(s->id));
    q->nconsumers--;
    if (s->exclusive)
        q->excl_sub = false;
    if (s->owner)
        q->nowned--;
}

/* Removes s; its held messages are requeued, or stay held under its claim
 * id (then a HOLD claim). Returns messages requeued. */
static uint64_t sub_remove(wr__shard_t *sh, wr__queue_t *q, wr__sub_t *s, bool requeue,
                           int64_t now)
{
    wr__claim_t *c = s->claim;
    uint64_t n = 0;

    sub_unlink(q, s);
    if (c && requeue) {
        n = wr__claim_end(sh, q, c);
    } else if (c) {
        c->kind = WR__CLAIM_HOLD;
        c->sub = NULL;
        c->owner = s->owner;
        if (c->owner)
            q->nowned++;
        wr__claim_drop_if_empty(q, c);
    }
    free(s);
    if (q->nconsumers == 0)
        wr__queue_used(sh, q, now); /* x-expires counts from now */
    return n;
}

typedef struct ended {
    wr_core_t *core;
    wr_sub_end_cb ended;
    void *arg;
    uint64_t id;
} ended_t;

static void on_ended(void *arg)
{
    ended_t *e = arg;
    wr_core_t *core = e->core;

    e->ended(e->arg, e->id, WR_ENOTFOUND);
    free(e);
    wr__leave(core);
}

void wr__subs_end(wr__shard_t *sh, wr__queue_t *q, bool notify)
{
    wr__sub_t *s = q->subs, *next;

    for (; s; s = next) {
        next = s->next;
        if (notify && s->ended && wr__enter(sh->core) == WR_OK) {
            ended_t *e = wr__xmalloc(sizeof(*e));
            *e = (ended_t){sh->core, s->ended, s->arg, s->id};
            wr_loop_post(s->loop, on_ended, e);
        }
        /* Its claim goes with the queue's claims. */
        free(s);
    }
    q->subs = q->subs_tail = q->rr = NULL;
    q->nconsumers = 0;
    wr__map_fini(&q->submap);
}

bool wr__queue_owner_cleanup(wr__shard_t *sh, wr__queue_t *q, uint64_t owner)
{
    int64_t now = wr_now_wall_ms();
    wr__sub_t *s, *next;
    bool again = true;

    for (s = q->subs; s; s = next) {
        next = s->next;
        if (s->owner == owner)
            sub_remove(sh, q, s, true, now);
    }
    /* HOLD claims: one at a time, ending one changes the map. */
    while (again && q->nowned) {
        again = false;
        for (size_t i = 0; i < q->claims.cap; i++) {
            wr__claim_t *c = q->claims.e[i].val;
            if (c && c->kind == WR__CLAIM_HOLD && c->owner == owner) {
                wr__claim_end(sh, q, c);
                again = true;
                break;
            }
        }
    }
    if (wr__queue_check_unused(sh, q))
        return true;
    wr__queue_wake(sh, q, now);
    wr__queue_tidy(q);
    return false;
}

/* ------------------------------------------------------------------------ */
/* Handlers                                                                 */

static void exec_subscribe(wr__shard_t *sh, wr__req_t *r, wr__queue_t *q, int64_t now)
{
    const wr_sub_opts_t *o = &r->in.sub.opts;
    wr_sub_res_t *res = &r->out.sub;
    wr__sub_t *s;

    if (!wr__queue_owner_ok(q, o->owner))
        res->err = WR_ELOCKED;
    else if (q->excl_sub || (o->exclusive && q->nconsumers))
        res->err = WR_ELOCKED;
    if (res->err != WR_OK) {
        wr__complete(r);
        return;
    }
    s = wr__xcalloc(1, sizeof(*s));
    s->id = wr__next_claim_id(sh);
    s->loop = r->in.sub.loop;
    s->deliver = r->in.sub.deliver;
    s->ended = r->in.sub.ended;
    s->arg = r->arg;
    s->owner = o->owner;
    s->priority = o->priority;
    s->credit = o->prefetch;
    s->unlimited = o->prefetch == 0;
    s->no_ack = o->no_ack;
    s->exclusive = o->exclusive;
    if (!s->no_ack) {
        s->claim = wr__claim_new_held(q, WR__CLAIM_SUB, s->id, 0, now);
        s->claim->sub = s;
    }
    sub_insert(q, s);
    wr__queue_used(sh, q, now);
    res->sub_id = s->id;
    res->consumers = q->nconsumers;
    /* The answer is posted first: it runs before the first delivery. */
    wr__complete(r);
    wr__dispatch(sh, q, now);
}

void wr__exec_sub(wr__shard_t *sh, wr__req_t *r)
{
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();
    wr__sub_t *s = NULL;
    uint64_t requeued;

    if (q)
        wr__queue_tick(sh, q, now);
    if (r->in.sub.kind == WR__SUB_SUBSCRIBE) {
        if (!q) {
            r->out.sub.err = WR_ENOTFOUND;
            wr__complete(r);
        } else {
            exec_subscribe(sh, r, q, now);
            wr__queue_tidy(q);
        }
        return;
    }
    if (q)
        s = sub_find(q, r->in.sub.sub_id);
    if (!s) {
        r->out.count.err = WR_ENOTFOUND;
        wr__complete(r);
        return;
    }
    switch (r->in.sub.kind) {
    case WR__SUB_CREDIT:
        s->credit = (uint32_t)WR__MIN((uint64_t)s->credit + r->in.sub.n, UINT32_MAX);
        r->out.count.count = s->credit;
        wr__complete(r);
        wr__dispatch(sh, q, now);
        break;
    case WR__SUB_PAUSE:
        s->paused = r->in.sub.flag;
        r->out.count.count = s->credit;
        wr__complete(r);
        if (!s->paused)
            wr__dispatch(sh, q, now);
        break;
    case WR__SUB_CANCEL:
        requeued = sub_remove(sh, q, s, r->in.sub.flag, now);
        r->out.count.count = requeued;
        wr__complete(r);
        if (wr__queue_check_unused(sh, q))
            return;
        if (requeued)
            wr__queue_wake(sh, q, now);
        break;
    }
    wr__queue_tidy(q);
}

/* ------------------------------------------------------------------------ */
/* API                                                                      */

static bool name_ok(wr_slice_t s)
{
    return s.len >= 1 && s.len <= WR_NAME_MAX && s.ptr;
}

static wr_err_t ctl(wr_core_t *core, int kind, wr_slice_t tenant, wr_slice_t queue,
                    uint64_t sub_id, uint32_t n, bool flag, wr_loop_t *reply, wr_count_cb cb,
                    void *arg)
{
    wr__req_t *r;
    wr_err_t err;

    if (!core || !name_ok(tenant) || !name_ok(queue) || (cb && !reply))
        return WR_EINVAL;
    err = wr__enter(core);
    if (err != WR_OK)
        return err;
    r = wr__req_new(core, WR__OP_SUB, 0, tenant, queue, reply, arg);
    r->cb.count = cb;
    r->nocb = cb == NULL;
    r->in.sub.kind = kind;
    r->in.sub.sub_id = sub_id;
    r->in.sub.n = n;
    r->in.sub.flag = flag;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_subscribe(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue,
                      const wr_sub_opts_t *opts, wr_loop_t *loop, wr_deliver_cb deliver,
                      wr_sub_end_cb ended, wr_sub_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err;

    if (!core || !opts || !loop || !deliver || !cb || !name_ok(tenant) || !name_ok(queue))
        return WR_EINVAL;
    err = wr__enter(core);
    if (err != WR_OK)
        return err;
    r = wr__req_new(core, WR__OP_SUB, 0, tenant, queue, loop, arg);
    r->cb.sub = cb;
    r->in.sub.kind = WR__SUB_SUBSCRIBE;
    r->in.sub.opts = *opts;
    r->in.sub.loop = loop;
    r->in.sub.deliver = deliver;
    r->in.sub.ended = ended;
    wr__req_submit(r);
    return WR_OK;
}

wr_err_t wr_sub_credit(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t sub_id,
                       uint32_t n, wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    return ctl(core, WR__SUB_CREDIT, tenant, queue, sub_id, n, false, reply, cb, arg);
}

wr_err_t wr_sub_pause(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t sub_id,
                      bool paused, wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    return ctl(core, WR__SUB_PAUSE, tenant, queue, sub_id, 0, paused, reply, cb, arg);
}

wr_err_t wr_unsubscribe(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t sub_id,
                        bool requeue_unacked, wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    return ctl(core, WR__SUB_CANCEL, tenant, queue, sub_id, 0, requeue_unacked, reply, cb, arg);
}
