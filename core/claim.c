/*
 * claim.c - claims, the one consumption primitive, and long-polls.
 *
 * Layout: claim lifecycle (end, expire, free); the claim scan (take);
 * parking and waking long-polls; request handlers.
 *
 * A message points at the last claim that took it; the claim lists the ids
 * it took. The claim is live while claim->expires_ms > now, so an expired
 * claim needs no timer to stop counting: wr__queue_tick ends it (clearing
 * its messages) the first time anyone looks after q->next_claim_exp.
 *
 * The scan starts at q->free_id, below which every message is known to be
 * claimed, so a queue with a long claimed head does not rescan it on every
 * claim. Anything that frees a message (claim end) moves free_id back.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

/* ------------------------------------------------------------------------ */
/* Claim lifecycle                                                          */

wr__claim_t *wr__claim_find(const wr__queue_t *q, uint64_t id)
{
    return wr__map_get(&q->claims, wr__hash_u64(id), &id, sizeof(id));
}

static void claim_free(wr__claim_t *c)
{
    if (c->ids != c->inline_ids)
        free(c->ids);
    free(c);
}

static void claim_unmap(wr__queue_t *q, wr__claim_t *c)
{
    wr__map_del(&q->claims, wr__hash_u64(c->id), &c->id, sizeof(c->id));
}

wr__claim_t *wr__claim_new_held(wr__queue_t *q, uint8_t kind, uint64_t id, uint64_t owner,
                                int64_t now)
{
    wr__claim_t *c = wr__xcalloc(1, sizeof(*c));

    c->id = id;
    c->created_ms = now;
    c->expires_ms = INT64_MAX;
    c->kind = kind;
    c->owner = owner;
    if (kind == WR__CLAIM_HOLD && owner)
        q->nowned++;
    wr__map_put(&q->claims, wr__hash_u64(c->id), &c->id, sizeof(c->id), c);
    return c;
}

void wr__claim_hold(wr__queue_t *q, wr__claim_t *c, wr__msg_t *m)
{
    if (c->n == c->cap) {
        /* Acks leave dead ids behind: compact when most are dead, so the
         * array stays proportional to what is held. */
        if (c->n >= 32 && (uint64_t)c->held * 2 < c->n) {
            uint32_t k = 0;
            for (uint32_t i = 0; i < c->n; i++) {
                const wr__msg_t *x = wr__ix_find(&q->ix, c->ids[i], NULL);
                if (x && x->claim == c)
                    c->ids[k++] = c->ids[i];
            }
            c->n = k;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 16;
            c->ids = wr__xrealloc(c->ids, c->cap * sizeof(*c->ids));
        }
    }
    c->ids[c->n++] = m->id;
    /* A lazily expired claim still counts in nclaimed. */
    if (!m->claim)
        q->nclaimed++;
    m->claim = c;
    c->held++;
    /* Held messages do not expire (RabbitMQ: unacked ones never do). */
    wr__msg_set_expires(m, INT64_MAX);
}

void wr__msg_unclaim(wr__queue_t *q, wr__msg_t *m)
{
    wr__claim_t *c = m->claim;

    m->claim = NULL;
    q->nclaimed--;
    if (c->kind != WR__CLAIM_TIMED) {
        c->held--;
        /* Back to the expiry it was published with. */
        wr__msg_set_expires(m, wr__msg_orig_expires(m));
        q->min_exp = WR__MIN(q->min_exp, wr__msg_expires(m));
    }
    wr__queue_freed(q, m);
}

void wr__claim_drop_if_empty(wr__queue_t *q, wr__claim_t *c)
{
    if (c->kind == WR__CLAIM_HOLD && c->held == 0) {
        if (c->owner)
            q->nowned--;
        claim_unmap(q, c);
        claim_free(c);
    }
}

/* Releases the claim's messages (redelivered on their next claim), removes
 * those purged meanwhile, and frees the claim. Returns messages released. */
uint64_t wr__claim_end(wr__shard_t *sh, wr__queue_t *q, wr__claim_t *c)
{
    uint64_t released = 0, pos;

    for (uint32_t i = 0; i < c->n; i++) {
        wr__msg_t *m = wr__ix_find(&q->ix, c->ids[i], &pos);
        if (!m || m->claim != c)
            continue;
        if (m->flags & WR__MSG_PURGED) {
            wr__queue_remove(sh, q, pos);
            continue;
        }
        wr__msg_unclaim(q, m);
        released++;
    }
    if (c->kind == WR__CLAIM_HOLD && c->owner)
        q->nowned--;
    claim_unmap(q, c);
    claim_free(c);
    return released;
}

void wr__claims_expire(wr__shard_t *sh, wr__queue_t *q, int64_t now)
{
    wr__claim_t *stack[64], **ended = stack;
    size_t n = 0, cap = 64;
    int64_t next = INT64_MAX;

    /* Collect first: ending a claim deletes from the map being walked. */
    for (size_t i = 0; i < q->claims.cap; i++) {
        wr__claim_t *c = q->claims.e[i].val;
        if (!c)
            continue;
        if (c->expires_ms > now) {
            next = WR__MIN(next, c->expires_ms);
            continue;
        }
        if (n == cap) {
            cap *= 2;
            if (ended == stack) {
                ended = wr__xmalloc(cap * sizeof(*ended));
                memcpy(ended, stack, sizeof(stack));
            } else {
                ended = wr__xrealloc(ended, cap * sizeof(*ended));
            }
        }
        ended[n++] = c;
    }
    for (size_t i = 0; i < n; i++)
        wr__claim_end(sh, q, ended[i]);
    if (ended != stack)
        free(ended);
    q->next_claim_exp = next;
    if (n)
        wr__queue_wake(sh, q, now);
}

void wr__claims_free(wr__queue_t *q)
{
    for (size_t i = 0; i < q->claims.cap; i++)
        if (q->claims.e[i].val)
            claim_free(q->claims.e[i].val);
    wr__map_fini(&q->claims);
}

/* ------------------------------------------------------------------------ */
/* The scan                                                                 */

static void scan_level(wr__queue_t *q, wr__scan_t *s, int level)
{
    s->level = level;
    if (level < 0) {
        s->ix = &q->ix;
        s->free_id = &q->free_id;
    } else {
        s->ix = &q->plv[level].ix;
        s->free_id = &q->plv[level].free_id;
    }
    s->started = false;
    s->contiguous = true; /* everything from *free_id to pos is claimed */
}

void wr__scan_start(wr__queue_t *q, wr__scan_t *s)
{
    scan_level(q, s, q->plv ? q->attrs.max_priority : -1);
}

/* The main index position of the message at the scan's position. */
static uint64_t main_pos(const wr__queue_t *q, const wr__scan_t *s)
{
    uint64_t pos = s->pos;

    if (s->level >= 0)
        WR_ASSERT(wr__ix_find(&q->ix, wr__ix_slot(s->ix, s->pos)->id, &pos));
    return pos;
}

wr__msg_t *wr__scan_next(wr__shard_t *sh, wr__queue_t *q, wr__scan_t *s, int64_t now)
{
    while (s->ix) {
        wr__index_t *ix = s->ix;
        uint64_t p = s->started ? wr__ix_next(ix, s->pos + 1)
                                : wr__ix_next(ix, wr__ix_lower_bound(ix, *s->free_id));

        s->started = true;
        for (; p < wr__ix_end(ix); p = wr__ix_next(ix, p + 1)) {
            wr__msg_t *m = wr__ix_slot(ix, p)->m;

            if (wr__msg_expires(m) <= now) {
                s->pos = p;
                wr__queue_expire_msg(sh, q, main_pos(q, s));
                continue;
            }
            if (wr__msg_claim(m, now)) {
                if (s->contiguous)
                    *s->free_id = m->id + 1;
                continue;
            }
            if (wr__msg_visible(m) > now) {
                s->contiguous = false;
                if (q->vis_sorted)
                    break; /* everything after is delayed longer */
                continue;
            }
            /* The caller takes it: the hint may move past it. */
            if (s->contiguous)
                *s->free_id = m->id + 1;
            s->pos = p;
            return m;
        }
        if (s->level > 0)
            scan_level(q, s, s->level - 1);
        else
            s->ix = NULL;
    }
    return NULL;
}

void wr__scan_remove(wr__shard_t *sh, wr__queue_t *q, wr__scan_t *s)
{
    wr__queue_remove(sh, q, main_pos(q, s));
}

/* Takes up to opts.limit messages for request r into r->out.msgs under a
 * new claim (or pops them). Returns the number taken. */
static size_t take(wr__shard_t *sh, wr__queue_t *q, wr__req_t *r, int64_t now)
{
    const wr_claim_opts_t *o = &r->in.claim;
    wr_msgs_res_t *res = &r->out.msgs;
    wr_msg_view_t *views = NULL;
    wr__claim_t *c = NULL;
    size_t n = 0, cap = 0;
    int64_t claim_exp = now + o->ttl_ms;
    wr__scan_t scan;
    wr__msg_t *m;

    wr__scan_start(q, &scan);
    while (n < o->limit && (m = wr__scan_next(sh, q, &scan, now))) {
        if (!views) {
            cap = WR__MIN((size_t)o->limit, q->ix.live);
            views = wr__xmalloc(cap * sizeof(*views));
            if (!o->pop && o->owner_hold) {
                c = wr__claim_new_held(q, WR__CLAIM_HOLD, wr__next_claim_id(sh), o->owner, now);
            } else if (!o->pop) {
                c = wr__xcalloc(1, sizeof(*c) + cap * sizeof(c->ids[0]));
                c->id = wr__next_claim_id(sh);
                c->created_ms = now;
                c->ttl_ms = o->ttl_ms;
                c->expires_ms = claim_exp;
                c->cap = (uint32_t)cap;
                c->ids = c->inline_ids;
            }
        }
        wr__msg_delivered(sh, q, m, !o->pop);
        if (o->pop) {
            wr__view_fill(&views[n++], m, now);
            q->acked++;
            wr__scan_remove(sh, q, &scan);
            continue;
        }
        if (c->kind == WR__CLAIM_HOLD) {
            wr__claim_hold(q, c, m);
            wr__view_fill(&views[n++], m, now);
            continue;
        }
        /* A lazily expired claim still counts in nclaimed. */
        if (!m->claim)
            q->nclaimed++;
        m->claim = c;
        c->ids[c->n++] = m->id;
        wr__msg_set_expires(m, WR__MAX(wr__msg_expires(m), claim_exp + o->grace_ms));
        wr__view_fill(&views[n++], m, now);
    }
    q->delivered += n;
    res->msgs = views;
    res->n = n;
    if (c && c->kind == WR__CLAIM_TIMED) {
        wr__map_put(&q->claims, wr__hash_u64(c->id), &c->id, sizeof(c->id), c);
        q->next_claim_exp = WR__MIN(q->next_claim_exp, c->expires_ms);
        wr__queue_note_due(sh, q);
    }
    if (c) {
        res->claim_id = c->id;
        res->claim_ttl_ms = c->ttl_ms;
    }
    res->ready = wr__queue_ready(q, now);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Long-polls                                                               */

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg);

static void park(wr__shard_t *sh, wr__queue_t *q, wr__req_t *r)
{
    wr__waitlist_t *wl;
    struct timeval tv;

    if (q) {
        wl = &q->waiters;
    } else {
        wr__parked_t *p = wr__map_get(&sh->parked, r->hash, r->key, r->klen);
        if (!p) {
            p = wr__xcalloc(1, sizeof(*p) + r->klen);
            memcpy(p->key, r->key, r->klen);
            p->klen = r->klen;
            p->hash = r->hash;
            p->wl.parked = p;
            wr__map_put(&sh->parked, p->hash, p->key, p->klen, p);
        }
        wl = &p->wl;
    }
    r->wl = wl;
    r->wnext = NULL;
    r->wprev = wl->tail;
    if (wl->tail)
        wl->tail->wnext = r;
    else
        wl->head = r;
    wl->tail = r;
    wl->n++;
    sh->nwaiting++;

    r->wev = event_new(wr_loop_base(sh->loop), -1, 0, on_wait_timeout, r);
    if (!r->wev)
        wr_panic(__FILE__, __LINE__, "out of memory");
    tv.tv_sec = r->in.claim.wait_ms / 1000;
    tv.tv_usec = (r->in.claim.wait_ms % 1000) * 1000;
    event_add(r->wev, &tv);
}

static void unpark(wr__shard_t *sh, wr__req_t *r)
{
    wr__waitlist_t *wl = r->wl;

    if (r->wprev)
        r->wprev->wnext = r->wnext;
    else
        wl->head = r->wnext;
    if (r->wnext)
        r->wnext->wprev = r->wprev;
    else
        wl->tail = r->wprev;
    wl->n--;
    sh->nwaiting--;
    r->wl = NULL;
    r->wprev = r->wnext = NULL;
    event_free(r->wev);
    r->wev = NULL;
    if (wl->parked && wl->n == 0) {
        wr__parked_t *p = wl->parked;
        wr__map_del(&sh->parked, p->hash, p->key, p->klen);
        free(p);
    }
}

void wr__serve_waiters(wr__shard_t *sh, wr__queue_t *q, int64_t now)
{
    while (q->waiters.head) {
        wr__req_t *r = q->waiters.head;
        if (take(sh, q, r, now) == 0)
            break;
        unpark(sh, r);
        wr__complete(r);
    }
}

void wr__waitlist_flush(wr__shard_t *sh, wr__waitlist_t *wl, wr__queue_t *q, int64_t now)
{
    /* unpark frees a parked entry once empty: count down instead of
     * looking at wl after the last one. Nothing parks meanwhile. */
    for (uint32_t n = wl->n; n; n--) {
        wr__req_t *r = wl->head;
        unpark(sh, r);
        if (q)
            take(sh, q, r, now);
        wr__complete(r);
    }
}

void wr__waitlist_adopt(wr__shard_t *sh, wr__queue_t *q)
{
    wr__parked_t *p = wr__map_del(&sh->parked, q->hash, q->key, q->klen);

    if (!p)
        return;
    q->waiters = p->wl;
    q->waiters.parked = NULL;
    for (wr__req_t *r = q->waiters.head; r; r = r->wnext)
        r->wl = &q->waiters;
    free(p);
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    wr__req_t *r = arg;
    wr__shard_t *sh = &r->core->shards[r->shard];
    wr__queue_t *q;
    int64_t now = wr_now_wall_ms();

    (void)fd;
    (void)what;
    /* Off the list first: the tick below may serve waiters. */
    unpark(sh, r);
    q = wr__queue_find(sh, r->hash, r->key, r->klen);
    if (q) {
        wr__queue_tick(sh, q, now);
        take(sh, q, r, now);
        wr__queue_tidy(q);
    }
    wr__complete(r);
    wr__persist_flush(sh);
}

/* ------------------------------------------------------------------------ */
/* Handlers                                                                 */

void wr__exec_claim(wr__shard_t *sh, wr__req_t *r)
{
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();
    size_t n = 0;

    if (q && !wr__queue_owner_ok(q, r->in.claim.owner)) {
        r->out.msgs.err = WR_ELOCKED;
        wr__complete(r);
        return;
    }
    if (q) {
        wr__queue_tick(sh, q, now);
        wr__queue_used(sh, q, now);
        /* Waiters already parked come first (a delay may have passed since
         * anyone looked); r takes only what they leave. */
        if (q->waiters.n)
            wr__serve_waiters(sh, q, now);
        if (!q->waiters.n)
            n = take(sh, q, r, now);
        wr__queue_tidy(q);
    }
    if (n == 0 && r->in.claim.wait_ms > 0 && !atomic_load(&sh->core->stopping)) {
        park(sh, q, r);
        if (q)
            wr__queue_note_waiters(sh, q, now);
        return;
    }
    wr__complete(r);
}

/* The claim if it is live; an expired one is ended on the spot. */
static wr__claim_t *live_claim(wr__shard_t *sh, wr__queue_t *q, uint64_t id, int64_t now)
{
    wr__claim_t *c;

    if (!q)
        return NULL;
    wr__queue_tick(sh, q, now);
    c = wr__claim_find(q, id);
    return c && c->expires_ms > now ? c : NULL;
}

void wr__exec_claim_get(wr__shard_t *sh, wr__req_t *r)
{
    wr_msgs_res_t *res = &r->out.msgs;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();
    wr__claim_t *c = live_claim(sh, q, r->in.cl.claim_id, now);
    wr_msg_view_t *views;
    size_t n = 0;

    if (!c) {
        res->err = WR_ENOTFOUND;
        wr__complete(r);
        return;
    }
    views = wr__xmalloc(c->n * sizeof(*views));
    for (uint32_t i = 0; i < c->n; i++) {
        const wr__msg_t *m = wr__ix_find(&q->ix, c->ids[i], NULL);
        if (m && m->claim == c && wr__msg_expires(m) > now)
            wr__view_fill(&views[n++], m, now);
    }
    res->msgs = views;
    res->n = n;
    res->claim_id = c->id;
    res->claim_ttl_ms = c->ttl_ms;
    res->claim_age_ms = now - c->created_ms;
    wr__complete(r);
}

void wr__exec_claim_renew(wr__shard_t *sh, wr__req_t *r)
{
    wr_count_res_t *res = &r->out.count;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();
    wr__claim_t *c = live_claim(sh, q, r->in.cl.claim_id, now);
    int64_t live_until;

    if (!c || c->kind != WR__CLAIM_TIMED) {
        res->err = c ? WR_EINVAL : WR_ENOTFOUND; /* held claims have no TTL */
        wr__complete(r);
        return;
    }
    c->created_ms = now;
    c->ttl_ms = r->in.cl.ttl_ms;
    c->expires_ms = now + c->ttl_ms;
    live_until = c->expires_ms + r->in.cl.grace_ms;
    for (uint32_t i = 0; i < c->n; i++) {
        wr__msg_t *m = wr__ix_find(&q->ix, c->ids[i], NULL);
        if (!m || m->claim != c)
            continue;
        wr__msg_set_expires(m, WR__MAX(wr__msg_expires(m), live_until));
        res->count++;
    }
    /* A shorter TTL moves the claim's end earlier than the bound. */
    q->next_claim_exp = WR__MIN(q->next_claim_exp, c->expires_ms);
    wr__queue_note_due(sh, q);
    wr__complete(r);
}

void wr__exec_claim_release(wr__shard_t *sh, wr__req_t *r)
{
    wr_count_res_t *res = &r->out.count;
    wr__queue_t *q = wr__queue_find(sh, r->hash, r->key, r->klen);
    int64_t now = wr_now_wall_ms();
    wr__claim_t *c = live_claim(sh, q, r->in.cl.claim_id, now);

    if (c && c->kind == WR__CLAIM_SUB) {
        /* A live subscription's claim: release its messages, keep it. */
        for (uint32_t i = 0; i < c->n; i++) {
            wr__msg_t *m = wr__ix_find(&q->ix, c->ids[i], NULL);
            if (m && m->claim == c) {
                wr__msg_unclaim(q, m);
                res->count++;
            }
        }
        c->n = 0;
    } else if (c) {
        res->count = wr__claim_end(sh, q, c);
    }
    if (c) {
        wr__queue_wake(sh, q, now);
        wr__queue_tidy(q);
    }
    wr__complete(r);
}
