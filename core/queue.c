/*
 * queue.c - queues: lifecycle, expiry, and the queue-level operations
 * (declare, stat, delete, purge).
 *
 * Layout: lifecycle (new, find, destroy, free); message removal and views;
 * expiry (tick); request handlers.
 *
 * Expiry is kept cheap for the common case. q->min_exp is a lower bound on
 * every message's expiry, so a tick does nothing until something can have
 * expired. When TTLs are uniform (exp_sorted: publish-time expiry never
 * decreases with id) the pass walks from the head and stops at the first
 * message not yet due; otherwise it scans the queue, which happens at most
 * once per expiry instant because the pass recomputes the bound exactly.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_int.h"

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

uint64_t wr__clock_id(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void reset_order(wr__queue_t *q)
{
    q->exp_sorted = true;
    q->vis_sorted = true;
    q->last_orig_exp = INT64_MIN;
    q->max_visible_ms = INT64_MIN;
    q->min_exp = INT64_MAX;
}

wr__queue_t *wr__queue_new(wr__shard_t *sh, const char *key, size_t klen, size_t tlen,
                           uint64_t hash, const wr_queue_attrs_t *attrs, wr_body_t *meta)
{
    wr__queue_t *q = wr__xcalloc(1, sizeof(*q) + klen + 1);
    int64_t now_ms = wr_now_wall_ms();

    memcpy(q->key, key, klen);
    q->key[klen] = '\0';
    q->klen = klen;
    q->tlen = tlen;
    q->hash = hash;
    q->qid = atomic_fetch_add(&sh->core->next_qid, 1);
    if (attrs)
        q->attrs = *attrs;
    q->meta = meta;
    q->created_ms = now_ms;
    /* Ids start at the clock in us, so a queue deleted and declared again
     * never hands out an id its earlier self used. */
    q->next_id = wr__clock_id();
    q->free_id = 0;
    q->next_claim_exp = INT64_MAX;
    reset_order(q);
    if (!q->attrs.exclusive)
        q->attrs.owner = 0;
    if (q->attrs.max_priority)
        q->plv = wr__xcalloc((size_t)q->attrs.max_priority + 1, sizeof(*q->plv));
    q->expire_at = INT64_MAX;
    q->tn = wr__tenant_of(sh->core, (wr_slice_t){key, tlen});
    q->tc = &q->tn->cnt[sh->idx];
    atomic_fetch_add_explicit(&q->tn->queues, 1, memory_order_relaxed);
    wr__queue_used(sh, q, now_ms);
    wr__map_put(&sh->queues, hash, q->key, klen, q);
    wr__waitlist_adopt(sh, q);
    return q;
}

wr__queue_t *wr__queue_find(wr__shard_t *sh, uint64_t hash, const char *key, size_t klen)
{
    return wr__map_get(&sh->queues, hash, key, klen);
}

void wr__queue_free(wr__queue_t *q)
{
    if (!q)
        return;
    for (uint64_t p = wr__ix_next(&q->ix, q->ix.base); p < wr__ix_end(&q->ix);
         p = wr__ix_next(&q->ix, p + 1)) {
        wr__msg_t *m = wr__ix_slot(&q->ix, p)->m;
        wr__msg_free(m);
    }
    wr__ix_fini(&q->ix);
    for (int l = 0; q->plv && l <= q->attrs.max_priority; l++)
        wr__ix_fini(&q->plv[l].ix);
    free(q->plv);
    wr__subs_end(NULL, q, false);
    wr__claims_free(q);
    wr_body_unref(q->meta);
    free(q);
}

/* This shard's count of the tenant's messages and bytes changes by dm, db:
 * only this thread writes it, so a load and a store suffice. */
static void tcount(wr__queue_t *q, int64_t dm, int64_t db)
{
    wr__tcount_t *c = q->tc;
    atomic_store_explicit(&c->msgs, atomic_load_explicit(&c->msgs, memory_order_relaxed) + dm,
                          memory_order_relaxed);
    atomic_store_explicit(&c->bytes, atomic_load_explicit(&c->bytes, memory_order_relaxed) + db,
                          memory_order_relaxed);
}

void wr__queue_destroy(wr__shard_t *sh, wr__queue_t *q)
{
    wr__map_del(&sh->queues, q->hash, q->key, q->klen);
    /* The waiters were parked on this queue: they end with nothing rather
     * than wait on for a queue of the same name declared later. */
    wr__waitlist_flush(sh, &q->waiters, NULL, wr_now_wall_ms());
    wr__subs_end(sh, q, true);
    wr__queue_free(q);
}

void wr__queue_gone(wr__shard_t *sh, wr__queue_t *q, wr__req_t *parent)
{
    /* The parent completes on whichever shard ends the topology round trip,
     * maybe before this task ends: the store deletes go out first, so a
     * deleted queue is gone from the store before anyone is told. */
    if (wr__durable(sh->core, q)) {
        wr__persist_del_queue(sh, q);
        wr__persist_flush(sh);
    }
    /* The tenant's counts drop before anyone can hear of the delete, so a
     * publish or declare right after it sees the room it made. */
    tcount(q, -(int64_t)q->ix.live, -(int64_t)q->bytes);
    atomic_fetch_sub_explicit(&q->tn->queues, 1, memory_order_relaxed);
    wr__topo_queue_gone(sh, q, parent);
    wr__queue_destroy(sh, q);
}

bool wr__queue_owner_ok(const wr__queue_t *q, uint64_t owner)
{
    return !q->attrs.exclusive || q->attrs.owner == owner;
}

static void set_expire(wr__queue_t *q)
{
    q->expire_at = q->attrs.expires_ms > 0 && q->nconsumers == 0
                       ? q->last_used_ms + q->attrs.expires_ms
                       : INT64_MAX;
}

void wr__queue_used(wr__shard_t *sh, wr__queue_t *q, int64_t now)
{
    q->last_used_ms = now;
    set_expire(q);
    wr__queue_note_due(sh, q);
}

bool wr__queue_check_unused(wr__shard_t *sh, wr__queue_t *q)
{
    set_expire(q);
    wr__queue_note_due(sh, q);
    if (q->attrs.auto_delete && q->had_consumer && q->nconsumers == 0) {
        wr__queue_gone(sh, q, NULL);
        return true;
    }
    return false;
}

void wr__queues_expire(wr__shard_t *sh, int64_t now)
{
    wr__queue_t *stack[16], **gone = stack;
    size_t n = 0, cap = 16;

    /* Collect first: deleting changes the map being walked. */
    for (size_t i = 0; i < sh->queues.cap; i++) {
        wr__queue_t *q = sh->queues.e[i].val;
        if (!q || q->expire_at > now)
            continue;
        if (n == cap) {
            cap *= 2;
            if (gone == stack) {
                gone = wr__xmalloc(cap * sizeof(*gone));
                memcpy(gone, stack, sizeof(stack));
            } else {
                gone = wr__xrealloc(gone, cap * sizeof(*gone));
            }
        }
        gone[n++] = q;
    }
    for (size_t i = 0; i < n; i++)
        wr__queue_gone(sh, gone[i], NULL);
    if (gone != stack)
        free(gone);
}

void wr__queue_append(wr__queue_t *q, wr__msg_t *m)
{
    wr__ix_append(&q->ix, m);
    if (q->plv)
        wr__ix_append(&q->plv[WR__MSG_PRIO(m)].ix, m);
    tcount(q, 1, wr__msg_body(m)->body_len);
}

void wr__queue_freed(wr__queue_t *q, const wr__msg_t *m)
{
    q->free_id = WR__MIN(q->free_id, m->id);
    if (q->plv) {
        wr__plevel_t *l = &q->plv[WR__MSG_PRIO(m)];
        l->free_id = WR__MIN(l->free_id, m->id);
    }
}

void wr__queue_tidy(wr__queue_t *q)
{
    wr__ix_tidy(&q->ix);
    for (int l = 0; q->plv && l <= q->attrs.max_priority; l++)
        wr__ix_tidy(&q->plv[l].ix);
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

void wr__queue_remove(wr__shard_t *sh, wr__queue_t *q, uint64_t pos)
{
    wr__msg_t *m = wr__ix_slot(&q->ix, pos)->m;

    wr__ix_clear(&q->ix, pos);
    if (q->plv) {
        wr__index_t *lix = &q->plv[WR__MSG_PRIO(m)].ix;
        uint64_t lpos;
        WR_ASSERT(wr__ix_find(lix, m->id, &lpos) == m);
        wr__ix_clear(lix, lpos);
    }
    q->bytes -= wr__msg_body(m)->body_len;
    tcount(q, -1, -(int64_t)wr__msg_body(m)->body_len);
    if (m->claim) {
        q->nclaimed--;
        if (m->claim->kind != WR__CLAIM_TIMED)
            m->claim->held--;
    }
    if ((m->flags & WR__MSG_PERSISTENT) && wr__durable(sh->core, q))
        wr__persist_del_msg(sh, q, m);
    wr__msg_free(m);
    if (q->ix.live == 0) {
        reset_order(q);
        q->free_id = 0;
        for (int l = 0; q->plv && l <= q->attrs.max_priority; l++)
            q->plv[l].free_id = 0;
    }
}

void wr__queue_expire_msg(wr__shard_t *sh, wr__queue_t *q, uint64_t pos)
{
    q->expired++;
    if (q->attrs.dlx_set)
        wr__dl_msg(sh, q, wr__ix_slot(&q->ix, pos)->m, WR__DL_EXPIRED);
    wr__queue_remove(sh, q, pos);
}

void wr__queue_reject_msg(wr__shard_t *sh, wr__queue_t *q, uint64_t pos)
{
    if (q->attrs.dlx_set)
        wr__dl_msg(sh, q, wr__ix_slot(&q->ix, pos)->m, WR__DL_REJECTED);
    wr__queue_remove(sh, q, pos);
}

void wr__view_fill(wr_msg_view_t *v, const wr__msg_t *m, int64_t now)
{
    const wr__claim_t *c = wr__msg_claim(m, now);

    v->id = m->id;
    v->body = wr_body_ref(wr__msg_body(m));
    v->enqueued_ms = m->enqueued_ms;
    v->ttl_ms = wr__msg_ttl(m);
    v->expires_ms = wr__msg_expires(m);
    v->producer = wr__msg_producer(m);
    v->claim_id = c ? c->id : 0;
    v->claim_count = m->claim_count;
    v->redelivered = (m->flags & WR__MSG_REDELIVERED) != 0;
    v->persistent = (m->flags & WR__MSG_PERSISTENT) != 0;
    v->priority = WR__MSG_PRIO(m);
    v->route = wr__msg_route(m);
    if (v->route) {
        wr_body_ref(v->route);
        v->exchange = (wr_slice_t){v->route->data, v->route->props_len};
        v->routing_key = (wr_slice_t){wr_body_bytes(v->route), v->route->body_len};
    } else {
        v->exchange = v->routing_key = (wr_slice_t){"", 0};
    }
}

uint64_t wr__queue_delayed(const wr__queue_t *q, int64_t now)
{
    uint64_t n = 0;

    if (now >= q->max_visible_ms)
        return 0;
    for (uint64_t p = wr__ix_next(&q->ix, q->ix.base); p < wr__ix_end(&q->ix);
         p = wr__ix_next(&q->ix, p + 1))
        if (wr__msg_visible(wr__ix_slot(&q->ix, p)->m) > now)
            n++;
    return n;
}

void wr__queue_note_due(wr__shard_t *sh, const wr__queue_t *q)
{
    sh->next_due = WR__MIN(sh->next_due, WR__MIN(WR__MIN(q->min_exp, q->next_claim_exp),
                                                 q->expire_at));
}

void wr__queue_note_waiters(wr__shard_t *sh, const wr__queue_t *q, int64_t now)
{
    /* Nothing announces that a delay has passed: keep sweeping while
     * parked claims wait on a queue holding delayed messages. */
    if ((q->waiters.n || q->subs) && q->max_visible_ms > now)
        sh->next_due = WR__MIN(sh->next_due, now);
}

/* ------------------------------------------------------------------------ */
/* Expiry                                                                   */

static void expire_msgs(wr__shard_t *sh, wr__queue_t *q, int64_t now)
{
    int64_t bound = INT64_MAX;
    bool sorted = q->exp_sorted;

    for (uint64_t p = wr__ix_next(&q->ix, q->ix.base); p < wr__ix_end(&q->ix);
         p = wr__ix_next(&q->ix, p + 1)) {
        wr__msg_t *m = wr__ix_slot(&q->ix, p)->m;
        /* Sorted: every later message was published to expire later still
         * (claims only push expiry up), so nothing beyond is due. */
        if (sorted && wr__msg_orig_expires(m) > now) {
            bound = WR__MIN(bound, wr__msg_orig_expires(m));
            break;
        }
        if (wr__msg_expires(m) <= now) {
            wr__queue_expire_msg(sh, q, p);
        } else {
            bound = WR__MIN(bound, wr__msg_expires(m));
        }
    }
    /* wr__queue_remove may have reset the bound (queue emptied). */
    if (q->ix.live)
        q->min_exp = bound;
}

void wr__queue_tick(wr__shard_t *sh, wr__queue_t *q, int64_t now)
{
    if (now >= q->next_claim_exp)
        wr__claims_expire(sh, q, now);
    if (now >= q->min_exp)
        expire_msgs(sh, q, now);
}

/* ------------------------------------------------------------------------ */
/* Handlers                                                                 */

uint64_t wr__queue_ready(const wr__queue_t *q, int64_t now)
{
    uint64_t busy = q->nclaimed + wr__queue_delayed(q, now);
    return q->ix.live > busy ? q->ix.live - busy : 0;
}

static bool same_name(bool set_a, const char *a, uint8_t alen, bool set_b, const char *b,
                      uint8_t blen)
{
    return set_a == set_b && (!set_a || (alen == blen && memcmp(a, b, alen) == 0));
}

/* WR_DECL_CHECK: what AMQP calls equivalent (RabbitMQ's assert_equivalence). */
static bool equivalent(const wr_queue_attrs_t *a, const wr_queue_attrs_t *b)
{
    return a->durable == b->durable && a->exclusive == b->exclusive &&
           a->auto_delete == b->auto_delete && a->default_ttl_ms == b->default_ttl_ms &&
           a->expires_ms == b->expires_ms && a->max_length == b->max_length &&
           a->max_bytes == b->max_bytes && a->overflow == b->overflow &&
           a->max_priority == b->max_priority &&
           same_name(a->dlx_set, a->dlx, a->dlx_len, b->dlx_set, b->dlx, b->dlx_len) &&
           same_name(a->dlrk_set, a->dlrk, a->dlrk_len, b->dlrk_set, b->dlrk, b->dlrk_len);
}

void wr__exec_declare(wr__shard_t *sh, wr__req_t *r)
{
    wr_queue_declare_res_t *res = &r->out.declare;
    unsigned flags = r->in.declare.flags;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();
    wr_queue_attrs_t zero = {0};
    const wr_queue_attrs_t *in = r->in.declare.has_attrs ? &r->in.declare.attrs : &zero;
    bool write = false;

    if (!q && (flags & WR_DECL_PASSIVE))
        res->err = WR_ENOTFOUND;
    else if (!q && (flags & WR_DECL_NO_CREATE))
        res->err = WR_EDENIED;
    else if (q && !wr__queue_owner_ok(q, in->owner))
        res->err = WR_ELOCKED;
    else if (q && (flags & WR_DECL_CHECK) && !(flags & WR_DECL_PASSIVE) &&
             !equivalent(&q->attrs, in))
        res->err = WR_EEXISTS;
    if (res->err != WR_OK) {
        wr__complete(r);
        return;
    }
    if (!q) {
        wr__tenant_t *tn = wr__tenant_of(sh->core, (wr_slice_t){r->key, r->tlen});
        res->err = wr__quota_queue_take(tn);
        if (res->err != WR_OK) {
            wr__complete(r);
            return;
        }
        q = wr__queue_new(sh, r->key, r->klen, r->tlen, r->hash,
                          r->in.declare.has_attrs ? &r->in.declare.attrs : NULL,
                          r->in.declare.meta);
        wr__quota_queue_give(tn);
        r->in.declare.meta = NULL;
        res->created = true;
        write = true;
    } else if (flags & WR_DECL_UPDATE && !(flags & WR_DECL_PASSIVE)) {
        wr_queue_attrs_t old = q->attrs;
        q->attrs = *in;
        /* The priority levels and the ownership are the queue's shape. */
        q->attrs.max_priority = old.max_priority;
        q->attrs.exclusive = old.exclusive;
        q->attrs.owner = old.owner;
        wr_body_unref(q->meta);
        q->meta = r->in.declare.meta;
        r->in.declare.meta = NULL;
        write = true;
        /* No longer durable: out of the store, messages and all. Made
         * durable: the record is written below; messages already queued
         * stay in memory only (docs/operations.md). */
        if (old.durable && !q->attrs.durable && sh->core->store)
            wr__persist_del_queue(sh, q);
    }
    wr__queue_tick(sh, q, now);
    wr__queue_used(sh, q, now);
    res->messages = wr__queue_ready(q, now);
    res->consumers = q->nconsumers;
    if (write && wr__durable(sh->core, q)) {
        wr_err_t err = wr__persist_queue(sh, q, r);
        if (err == WR_OK)
            return; /* wr__exec_stored completes it */
        res->err = err == WR_ENOSPACE ? WR_ENOSPACE : WR_EIO;
    }
    wr__complete(r);
}

void wr__exec_stat(wr__shard_t *sh, wr__req_t *r)
{
    wr_queue_stat_res_t *res = &r->out.stat;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();

    if (!q) {
        res->err = WR_ENOTFOUND;
        wr__complete(r);
        return;
    }
    wr__queue_tick(sh, q, now);
    res->attrs = q->attrs;
    if (q->meta) {
        r->out_meta = wr_body_ref(q->meta);
        res->meta = (wr_slice_t){wr_body_bytes(q->meta), q->meta->body_len};
    }
    res->created_ms = q->created_ms;
    /* The tick removed expired messages and ended expired claims, so the
     * counters are exact. */
    res->total = q->ix.live;
    res->claimed = q->nclaimed;
    res->delayed = wr__queue_delayed(q, now);
    res->bytes = q->bytes;
    res->has_oldest = q->ix.live > 0;
    if (res->has_oldest) {
        const wr__msg_t *first = wr__ix_slot(&q->ix, wr__ix_next(&q->ix, q->ix.base))->m;
        const wr__msg_t *last = wr__ix_slot(&q->ix, wr__ix_end(&q->ix) - 1)->m;
        res->oldest = (wr_msg_ref_t){first->id, first->enqueued_ms};
        res->newest = (wr_msg_ref_t){last->id, last->enqueued_ms};
    }
    res->published = q->published;
    res->delivered = q->delivered;
    res->acked = q->acked;
    res->expired = q->expired;
    res->waiters = q->waiters.n;
    res->unacked = q->nclaimed;
    res->ready = q->ix.live - q->nclaimed > res->delayed ? q->ix.live - q->nclaimed - res->delayed
                                                          : 0;
    res->consumers = q->nconsumers;
    wr__complete(r);
}

void wr__exec_qdelete(wr__shard_t *sh, wr__req_t *r)
{
    wr_count_res_t *res = &r->out.count;
    unsigned flags = r->in.qdelete.flags;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();

    if (!q) {
        res->err = WR_ENOTFOUND;
    } else if (!wr__queue_owner_ok(q, r->in.qdelete.owner)) {
        res->err = WR_ELOCKED;
    } else {
        wr__queue_tick(sh, q, now);
        if ((flags & WR_DEL_IF_UNUSED) && (q->nclaimed || q->waiters.n))
            res->err = WR_EBUSY;
        else if ((flags & WR_DEL_IF_NO_CONSUMERS) && q->nconsumers)
            res->err = WR_EBUSY;
        else if ((flags & WR_DEL_IF_EMPTY) && q->ix.live)
            res->err = WR_EBUSY;
        else {
            res->count = q->ix.live;
            /* Completes r once the queue's bindings are gone everywhere. */
            wr__queue_gone(sh, q, r);
            return;
        }
    }
    wr__complete(r);
}

void wr__exec_purge(wr__shard_t *sh, wr__req_t *r)
{
    wr_count_res_t *res = &r->out.count;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();

    if (!q || !wr__queue_owner_ok(q, r->in.qdelete.owner)) {
        res->err = q ? WR_ELOCKED : WR_ENOTFOUND;
        wr__complete(r);
        return;
    }
    wr__queue_tick(sh, q, now);
    for (uint64_t p = wr__ix_next(&q->ix, q->ix.base); p < wr__ix_end(&q->ix);
         p = wr__ix_next(&q->ix, p + 1)) {
        wr__msg_t *m = wr__ix_slot(&q->ix, p)->m;
        if (wr__msg_claim(m, now)) {
            /* wr.h: claimed messages go when their claim ends. */
            m->flags |= WR__MSG_PURGED;
            continue;
        }
        wr__queue_remove(sh, q, p);
        res->count++;
    }
    wr__queue_tidy(q);
    wr__complete(r);
}
