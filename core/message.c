/*
 * message.c - message operations: publish, list, get by ids, delete by ids.
 *
 * Layout: publish (checks, append, limits, store hook, waking long-polls);
 * the read paths; delete. Every handler starts with wr__queue_tick so no
 * expired message or ended claim is ever seen, even between sweeps.
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

/* ------------------------------------------------------------------------ */
/* Publish                                                                  */

/* Keeps the orderings the expiry pass and claim scan rely on. */
static void account(wr__queue_t *q, const wr__msg_t *m)
{
    int64_t exp = wr__msg_expires(m), vis = wr__msg_visible(m);

    if (exp < q->last_orig_exp)
        q->exp_sorted = false;
    else
        q->last_orig_exp = exp;
    q->min_exp = WR__MIN(q->min_exp, exp);
    if (vis < q->max_visible_ms)
        q->vis_sorted = false;
    else
        q->max_visible_ms = vis;
    q->bytes += wr__msg_body(m)->body_len;
}

/*
 * One block for a message (core_int.h): the header, the body copied in
 * when small and `may_inline`, else a pointer to it, then the words the
 * values need. `owned`: the caller's reference on body passes to the
 * message (dropped when the body is copied); else the message takes one.
 */
static wr__msg_t *msg_make(wr_body_t *body, bool owned, bool may_inline, uint32_t flags,
                           int64_t enqueued_ms, int64_t ttl_ms, int64_t visible_ms,
                           uint64_t origin)
{
    size_t blen = sizeof(*body) + body->props_len + body->body_len;
    size_t head, nw = 0;
    wr__msg_t *m;
    int64_t *w;

    flags &= ~WR__MSG_LAYOUT;
    if (may_inline && blen <= WR__MSG_INLINE_MAX)
        flags |= WR__MSG_INLINE;
    if (ttl_ms > 0) {
        flags |= WR__MSG_TTL;
        nw += 2;
    }
    if (visible_ms != enqueued_ms) {
        flags |= WR__MSG_DELAY;
        nw++;
    }
    if (origin) {
        flags |= WR__MSG_ORIGIN;
        nw++;
    }
    head = (flags & WR__MSG_INLINE) ? (blen + 7) & ~(size_t)7 : sizeof(wr_body_t *);
    m = wr__xmalloc(sizeof(*m) + head + nw * sizeof(int64_t));
    m->enqueued_ms = enqueued_ms;
    m->claim = NULL;
    m->claim_count = 0;
    m->flags = flags;
    if (flags & WR__MSG_INLINE) {
        wr_body_t *in = (wr_body_t *)(void *)(m + 1);
        memcpy(in, body, blen);
        atomic_init(&in->refs, 1u | WR__BODY_IN_MSG |
                                   (atomic_load_explicit(&body->refs, memory_order_relaxed) &
                                    (WR__BODY_JSON_YES | WR__BODY_JSON_NO)));
        if (owned)
            wr_body_unref(body);
    } else {
        *(wr_body_t **)(void *)(m + 1) = owned ? body : wr_body_ref(body);
    }
    w = wr__msg_words(m);
    if (flags & WR__MSG_TTL) {
        *w++ = ttl_ms;
        *w++ = enqueued_ms + ttl_ms;
    }
    if (flags & WR__MSG_DELAY)
        *w++ = visible_ms;
    if (flags & WR__MSG_ORIGIN)
        *w = (int64_t)origin;
    return m;
}

void wr__msg_free(wr__msg_t *m)
{
    wr_body_t *b = wr__msg_body(m);

    wr_body_unref(wr__msg_route(m));
    if (!(m->flags & WR__MSG_INLINE))
        free(m);
    /* Inline: the block goes with the body's last reference. */
    wr_body_unref(b);
}

wr__msg_t *wr__msg_new(wr__queue_t *q, wr_msg_in_t *in, bool take, wr_body_t *route,
                       bool shared, int64_t now)
{
    int64_t ttl = in->ttl_ms ? in->ttl_ms : q->attrs.default_ttl_ms;
    int64_t delay = in->delay_ms >= 0 ? in->delay_ms : q->attrs.default_delay_ms;
    uint32_t flags = in->persistent ? WR__MSG_PERSISTENT : 0;
    uint64_t origin;
    uint8_t prio = 0;
    wr__msg_t *m;

    if (q->attrs.max_priority)
        prio = WR__MIN(in->priority, q->attrs.max_priority);
    flags |= (uint32_t)prio << WR__MSG_PRIO_SHIFT;
    if (route || !take) {
        /* Routed: the route replaces the producer (see wr__msg_t). */
        flags |= WR__MSG_ROUTE;
        origin = (uint64_t)(uintptr_t)(route ? wr_body_ref(route) : NULL);
    } else {
        origin = in->producer;
    }
    m = msg_make(in->body, take, !shared, flags, now, ttl > 0 ? ttl : 0,
                 now + (delay > 0 ? delay : 0), origin);
    if (take)
        in->body = NULL; /* the queue owns the reference now */
    m->id = q->next_id++;
    account(q, m);
    return m;
}

void wr__msg_restore(wr__queue_t *q, uint64_t id, const wr__mrec_t *rec, wr_body_t *body,
                     wr_body_t *route)
{
    uint32_t flags = rec->flags;
    wr__msg_t *m;

    if ((uint8_t)(flags >> WR__MSG_PRIO_SHIFT) > q->attrs.max_priority)
        flags &= ~(0xffu << WR__MSG_PRIO_SHIFT);
    m = msg_make(body, true, true, flags, rec->enqueued_ms, rec->ttl_ms, rec->visible_ms,
                 (flags & WR__MSG_ROUTE) ? (uint64_t)(uintptr_t)route : rec->producer);
    m->id = id;
    m->claim_count = rec->claim_count;
    account(q, m);
    q->next_id = id + 1;
    wr__queue_append(q, m);
}

/* A limit as a bound: 0 (none) is no bound, WR_LIMIT_ZERO is 0. */
static uint64_t bound(uint64_t limit)
{
    return limit == WR_LIMIT_ZERO ? 0 : limit ? limit : UINT64_MAX;
}

bool wr__queue_fits(const wr__queue_t *q, size_t n, uint64_t bytes)
{
    return q->ix.live + n <= bound(q->attrs.max_length) &&
           q->bytes + bytes <= bound(q->attrs.max_bytes);
}

bool wr__queue_keeps_nothing(const wr__queue_t *q)
{
    return q->attrs.max_length == WR_LIMIT_ZERO || q->attrs.max_bytes == WR_LIMIT_ZERO;
}

static void drop_one(wr__shard_t *sh, wr__queue_t *q, uint64_t pos)
{
    if (q->attrs.dlx_set)
        wr__dl_msg(sh, q, wr__ix_slot(&q->ix, pos)->m, WR__DL_MAXLEN);
    wr__queue_remove(sh, q, pos);
}

void wr__queue_drop_ready(wr__shard_t *sh, wr__queue_t *q, int64_t now)
{
    for (uint64_t pos = wr__ix_next(&q->ix, q->ix.base); pos < wr__ix_end(&q->ix);
         pos = wr__ix_next(&q->ix, pos + 1))
        if (!wr__msg_claim(wr__ix_slot(&q->ix, pos)->m, now))
            drop_one(sh, q, pos);
}

/* Enforces max_length / max_bytes under drop-head: the oldest go first,
 * claimed or not, since the limit counts both. A queue that keeps nothing
 * first offers new messages to its consumers (RabbitMQ delivers to a
 * waiting consumer before it applies the limit), then drops what none
 * took; delivered messages stay, as RabbitMQ counts only ready ones. */
void wr__queue_drop_head(wr__shard_t *sh, wr__queue_t *q)
{
    uint64_t max_len = bound(q->attrs.max_length), max_bytes = bound(q->attrs.max_bytes);

    if (wr__queue_keeps_nothing(q)) {
        int64_t now = wr_now_wall_ms();
        if (q->waiters.n)
            wr__serve_waiters(sh, q, now);
        wr__dispatch(sh, q, now); /* not wr__queue_wake: it would drop first */
        wr__queue_drop_ready(sh, q, now);
        return;
    }
    while (q->ix.live && (q->ix.live > max_len || q->bytes > max_bytes))
        drop_one(sh, q, wr__ix_next(&q->ix, q->ix.base));
}

void wr__publish_rollback(wr__shard_t *sh, wr__req_t *r)
{
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    uint64_t pos;

    r->out.publish.n = 0;
    if (!q)
        return;
    for (size_t i = 0; i < r->in.publish.n; i++) {
        if (wr__ix_find(&q->ix, r->out.publish.ids[i], &pos)) {
            wr__queue_remove(sh, q, pos);
            q->published--;
        }
    }
    wr__queue_tidy(q);
}

void wr__exec_publish(wr__shard_t *sh, wr__req_t *r)
{
    wr_publish_res_t *res = &r->out.publish;
    wr_msg_in_t *in = r->in.publish.msgs;
    size_t n = r->in.publish.n;
    uint64_t *ids = (uint64_t *)res->ids, total = 0, first;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();
    wr_err_t err;

    if (!q && !(r->in.publish.flags & WR_PUB_CREATE)) {
        res->err = WR_ENOTFOUND;
        goto done;
    }
    if (!q) {
        wr__tenant_t *tn = wr__tenant_of(sh->core, (wr_slice_t){r->key, r->tlen});
        res->err = wr__quota_queue_take(tn);
        if (res->err != WR_OK)
            goto done;
        q = wr__queue_new(sh, r->key, r->klen, r->tlen, r->hash, NULL, NULL);
        wr__quota_queue_give(tn);
    }
    wr__queue_tick(sh, q, now);

    for (size_t i = 0; i < n; i++)
        total += in[i].body->body_len;
    if (q->attrs.max_post_bytes && total > q->attrs.max_post_bytes) {
        res->err = WR_ETOOBIG;
        goto done;
    }
    if (q->attrs.overflow != WR_OVERFLOW_DROP_HEAD && !wr__queue_fits(q, n, total)) {
        if (q->attrs.overflow == WR_OVERFLOW_REJECT_DLX)
            for (size_t i = 0; i < n; i++)
                wr__dl_add(sh, q, in[i].body, NULL, in[i].persistent, in[i].priority, 0,
                           WR__DL_MAXLEN);
        res->err = WR_EQUOTA;
        goto done;
    }
    if (!wr__quota_queue_fits(q, n, total)) {
        res->err = WR_ELIMIT;
        goto done;
    }

    first = wr__ix_end(&q->ix);
    for (size_t i = 0; i < n; i++) {
        wr__msg_t *m = wr__msg_new(q, &in[i], true, NULL, false, now);
        wr__queue_append(q, m);
        ids[i] = m->id;
    }
    res->n = n;
    q->published += n;
    wr__queue_note_due(sh, q);

    /* The store sees the puts before any delete drop_head queues. */
    err = wr__durable(sh->core, q) ? wr__persist_msgs(sh, q, r, first, n) : WR_EAGAIN;
    if (err != WR_OK && err != WR_EAGAIN) {
        wr__publish_rollback(sh, r);
        res->err = err;
        goto done;
    }
    wr__queue_drop_head(sh, q);
    wr__queue_wake(sh, q, now);
    wr__queue_note_waiters(sh, q, now);
    wr__queue_tidy(q);
    if (err == WR_OK)
        return; /* completes in wr__exec_stored once durable */
done:
    wr__complete(r);
}

/* ------------------------------------------------------------------------ */
/* Reads                                                                    */

void wr__exec_mlist(wr__shard_t *sh, wr__req_t *r)
{
    wr_msgs_res_t *res = &r->out.msgs;
    uint64_t marker = r->in.mlist.marker, producer = r->in.mlist.producer;
    unsigned flags = r->in.mlist.flags;
    uint32_t limit = r->in.mlist.limit;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();
    wr_msg_view_t *views = NULL;
    size_t n = 0;

    res->next_marker = marker;
    if (!q || marker == UINT64_MAX) {
        wr__complete(r);
        return;
    }
    wr__queue_tick(sh, q, now);
    for (uint64_t p = wr__ix_next(&q->ix, wr__ix_lower_bound(&q->ix, marker + 1));
         p < wr__ix_end(&q->ix) && n < limit; p = wr__ix_next(&q->ix, p + 1)) {
        const wr__msg_t *m = wr__ix_slot(&q->ix, p)->m;
        if (wr__msg_expires(m) <= now)
            continue;
        if (!(flags & WR_LIST_CLAIMED) && wr__msg_claim(m, now))
            continue;
        if (!(flags & WR_LIST_DELAYED) && wr__msg_visible(m) > now)
            continue;
        if ((flags & WR_LIST_HIDE_OWN) && !(m->flags & WR__MSG_ROUTE) && wr__msg_producer(m) == producer)
            continue;
        if (!views)
            views = wr__xmalloc(WR__MIN((size_t)limit, q->ix.live) * sizeof(*views));
        wr__view_fill(&views[n++], m, now);
    }
    res->msgs = views;
    res->n = n;
    if (n)
        res->next_marker = views[n - 1].id;
    wr__complete(r);
}

void wr__exec_mget(wr__shard_t *sh, wr__req_t *r)
{
    wr_msgs_res_t *res = &r->out.msgs;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();
    wr_msg_view_t *views = NULL;
    size_t n = 0;

    if (!q) {
        res->err = WR_ENOTFOUND;
        wr__complete(r);
        return;
    }
    wr__queue_tick(sh, q, now);
    for (size_t i = 0; i < r->in.ids.n; i++) {
        const wr__msg_t *m = wr__ix_find(&q->ix, r->in.ids.ids[i], NULL);
        if (!m || wr__msg_expires(m) <= now)
            continue;
        if (!views)
            views = wr__xmalloc((r->in.ids.n - i) * sizeof(*views));
        wr__view_fill(&views[n++], m, now);
    }
    res->msgs = views;
    res->n = n;
    wr__complete(r);
}

/* ------------------------------------------------------------------------ */
/* Delete                                                                   */

/* The rules of wr.h, checked over every id before anything is deleted. */
static wr_err_t check_delete(const wr__queue_t *q, const wr__req_t *r, int64_t now)
{
    uint64_t claim_id = r->in.ids.claim_id;
    const wr__claim_t *c = NULL;

    if (r->in.ids.force)
        return WR_OK;
    if (claim_id) {
        c = wr__map_get(&q->claims, wr__hash_u64(claim_id), &claim_id, sizeof(claim_id));
        if (c && c->expires_ms <= now)
            c = NULL;
    }
    for (size_t i = 0; i < r->in.ids.n; i++) {
        const wr__msg_t *m = wr__ix_find(&q->ix, r->in.ids.ids[i], NULL);
        const wr__claim_t *mc;
        if (!m || wr__msg_expires(m) <= now)
            continue;
        mc = wr__msg_claim(m, now);
        if (!claim_id && mc)
            return WR_EDENIED;
        if (claim_id && (!c || mc != c))
            return WR_EINVAL;
    }
    return WR_OK;
}

void wr__exec_mdelete(wr__shard_t *sh, wr__req_t *r)
{
    wr_count_res_t *res = &r->out.count;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();
    uint64_t pos;

    /* A missing queue holds none of the ids: nothing to delete. */
    if (!q) {
        wr__complete(r);
        return;
    }
    wr__queue_tick(sh, q, now);
    res->err = check_delete(q, r, now);
    if (res->err == WR_OK) {
        for (size_t i = 0; i < r->in.ids.n; i++) {
            wr__msg_t *m = wr__ix_find(&q->ix, r->in.ids.ids[i], &pos);
            if (!m || wr__msg_expires(m) <= now)
                continue;
            if (wr__msg_claim(m, now))
                q->acked++;
            wr__queue_remove(sh, q, pos);
            res->count++;
        }
        if (r->in.ids.claim_id) {
            wr__claim_t *c = wr__claim_find(q, r->in.ids.claim_id);
            if (c)
                wr__claim_drop_if_empty(q, c);
        }
        wr__queue_tidy(q);
    }
    wr__complete(r);
}
