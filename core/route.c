/*
 * route.c - the routed publish: exchange -> queues -> their shards.
 *
 * Layout: routing on the local replica (match, walk exchange-to-exchange
 * bindings, de-duplicate); splitting into one part request per target
 * shard; the part on its shard (append, store, wake consumers); counting
 * back into the parent; the entry point.
 *
 * Routing runs on the caller's own shard thread when it is one (no hop:
 * the replica is local memory), else on shard 0. It produces a list of
 * target queues in the shard's scratch array (no allocation in the steady
 * state), sorted by shard so each target shard gets one part request with
 * all its queues. The parts share the parent's messages: each appended
 * message takes its own reference on the shared body and on the shared
 * route (exchange + routing key, one small body per publish call).
 *
 * The parent request counts parts still to answer (the gather count); the
 * last part to finish completes it. Every message of one call goes to the
 * same queues, so one counter of queues reached serves all of them.
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

/* A target while routing: the name points into the replica, valid only
 * during the routing task. */
typedef struct wr__rscratch {
    uint64_t hash;
    const char *name;
    size_t nlen;
    unsigned shard;
} wr__rscratch_t;

void wr__route_fini(wr__shard_t *sh)
{
    free(sh->rt);
    free(sh->rvisit);
    sh->rt = NULL;
    sh->rvisit = NULL;
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                  */

static void add_target(wr__shard_t *sh, uint64_t hash, wr_slice_t name)
{
    if (sh->nrt == sh->rt_cap) {
        sh->rt_cap = sh->rt_cap ? sh->rt_cap * 2 : 16;
        sh->rt = wr__xrealloc(sh->rt, sh->rt_cap * sizeof(*sh->rt));
    }
    sh->rt[sh->nrt++] = (wr__rscratch_t){hash, name.ptr, name.len, 0};
}

static int target_cmp(const void *a, const void *b)
{
    const wr__rscratch_t *x = a, *y = b;
    int c;

    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    if (x->nlen != y->nlen)
        return x->nlen < y->nlen ? -1 : 1;
    c = memcmp(x->name, y->name, x->nlen);
    return c;
}

static bool visited(const wr__shard_t *sh, size_t n, const wr__exch_t *e)
{
    for (size_t i = 0; i < n; i++)
        if (sh->rvisit[i] == e)
            return true;
    return false;
}

/* Queues e for the breadth-first walk unless it is missing or was seen. */
static void visit(wr__shard_t *sh, size_t *n, const wr__exch_t *e)
{
    if (!e || visited(sh, *n, e))
        return;
    if (*n == sh->rvisit_cap) {
        sh->rvisit_cap *= 2;
        sh->rvisit = wr__xrealloc(sh->rvisit, sh->rvisit_cap * sizeof(*sh->rvisit));
    }
    sh->rvisit[(*n)++] = e;
}

/* The default exchange: the queue named by the key, if a name. */
static void to_default(wr__shard_t *sh, wr_slice_t tenant, wr_slice_t key)
{
    if (key.len >= 1 && key.len <= WR_NAME_MAX)
        add_target(sh, wr__hash_name(tenant, key), key);
}

typedef struct rctx {
    wr_slice_t key;
    const wr_header_t *hdrs;
    size_t nhdrs;
    wr_slice_t words[WR__WORDS_MAX];
    int nwords; /* -1: not split yet */
} rctx_t;

static bool matches(rctx_t *c, const wr__exch_t *e, const wr__bind_t *b)
{
    switch ((wr__ex_type_t)e->type) {
    case WR__EX_DIRECT: /* the key chain already matched */
    case WR__EX_FANOUT:
        return true;
    case WR__EX_TOPIC:
        if (c->nwords < 0) {
            c->nwords = wr__split_words(c->key, c->words);
            if (c->nwords < 0)
                return false;
        }
        return wr__topic_match(b->words, b->nwords, c->words, (size_t)c->nwords);
    case WR__EX_HEADERS:
        return wr__headers_match(b->args, b->nargs, b->hmode, c->hdrs, c->nhdrs);
    }
    return false;
}

/* Fills sh->rt with the target queues of (tenant = r->key, exchange, key,
 * headers), each once, sorted by shard. */
static wr_err_t route(wr__shard_t *sh, const wr__req_t *r)
{
    const wr__topo_t *t = wr__topo_find(sh, r->key, r->tlen);
    wr_slice_t tenant = {r->key, r->tlen}, ex = r->in.route.exchange;
    const wr__exch_t *e;
    size_t nvisit = 0, next = 0;
    rctx_t c = {.key = r->in.route.key, .hdrs = r->in.route.hdrs, .nhdrs = r->in.route.nhdrs,
                .nwords = -1};

    sh->nrt = 0;
    if (ex.len == 0) {
        to_default(sh, tenant, c.key);
        goto done;
    }
    e = t ? wr__exch_find(t, ex) : NULL;
    if (!e)
        return wr__builtin_exchange(ex, NULL) ? WR_OK : WR_ENOTFOUND;
    if (e->flags & WR__EXF_INTERNAL)
        return WR_EDENIED;

    /* Breadth-first over exchange-to-exchange bindings, each exchange once:
     * cycles end, and a queue reached twice is stored once (below). An
     * exchange whose bindings matched nothing hands the message to its
     * alternate exchange, walked the same way (RabbitMQ's route1 and
     * process_alternate): the visited list ends alternate chains too. */
    if (!sh->rvisit_cap) {
        sh->rvisit_cap = 16;
        sh->rvisit = wr__xmalloc(sh->rvisit_cap * sizeof(*sh->rvisit));
    }
    sh->rvisit[nvisit++] = e;
    while (next < nvisit) {
        const wr__exch_t *x = sh->rvisit[next++];
        const wr__bind_t *b;
        bool matched = false;
        if (x->type == WR__EX_DIRECT) {
            const wr__keychain_t *kc =
                wr__map_get(&x->bykey, wr__hash_key(c.key.ptr, c.key.len), c.key.ptr, c.key.len);
            b = kc ? kc->head : NULL;
        } else {
            b = x->list;
        }
        for (; b; b = b->next) {
            if (!matches(&c, x, b))
                continue;
            matched = true;
            if (b->to_exch)
                visit(sh, &nvisit, wr__exch_find(t, b->dest));
            else
                add_target(sh, b->dhash, b->dest);
        }
        if (matched || !(x->flags & WR__EXF_ALT))
            continue;
        if (x->alt.len == 0)
            to_default(sh, tenant, c.key);
        else
            visit(sh, &nvisit, wr__exch_find(t, x->alt));
    }
done:
    for (size_t i = 0; i < sh->nrt; i++)
        sh->rt[i].shard = wr__shard_of_hash(sh->core, sh->rt[i].hash);
    if (sh->nrt > 1) {
        size_t k = 1;
        qsort(sh->rt, sh->nrt, sizeof(*sh->rt), target_cmp);
        for (size_t i = 1; i < sh->nrt; i++)
            if (target_cmp(&sh->rt[i], &sh->rt[k - 1]) != 0)
                sh->rt[k++] = sh->rt[i];
        sh->nrt = k;
    }
    return WR_OK;
}

/* ------------------------------------------------------------------------ */
/* The parent                                                               */

static void parent_finish(wr__req_t *r)
{
    uint32_t reached = atomic_load_explicit(&r->in.route.nreached, memory_order_relaxed);

    for (size_t i = 0; i < r->in.route.n; i++)
        r->in.route.reached[i] = reached;
    r->out.route.reached = r->in.route.reached;
    r->out.route.n = r->in.route.n;
    r->out.route.err = (wr_err_t)atomic_load(&r->in.route.err);
    wr__complete(r);
}

static void set_err(wr__req_t *parent, wr_err_t err)
{
    int expect = WR_OK;
    atomic_compare_exchange_strong(&parent->in.route.err, &expect, (int)err);
}

/* On a shard: route, then send one part to each target shard. */
static void route_and_send(wr__shard_t *sh, wr__req_t *r)
{
    wr_core_t *core = r->core;
    wr_slice_t tenant = {r->key, r->tlen};
    wr_err_t err = route(sh, r);
    size_t i = 0, nparts = 0;
    wr__req_t **parts;

    /* The inputs may live in the caller's frame: not past routing. */
    r->in.route.hdrs = NULL;
    r->in.route.nhdrs = 0;
    if (err != WR_OK || sh->nrt == 0) {
        atomic_store(&r->in.route.err, (int)err);
        parent_finish(r);
        return;
    }
    if (r->in.route.skip_key) {
        /* Dead-lettering never routes back into the queue it came from. */
        size_t k = 0;
        for (size_t j = 0; j < sh->nrt; j++)
            if (!(sh->rt[j].hash == r->in.route.skip_hash &&
                  sh->rt[j].nlen == r->in.route.skip_klen - r->tlen - 1 &&
                  memcmp(sh->rt[j].name, r->in.route.skip_key + r->tlen + 1, sh->rt[j].nlen) ==
                      0))
                sh->rt[k++] = sh->rt[j];
        sh->nrt = k;
        if (!k) {
            parent_finish(r);
            return;
        }
    }
    r->in.route.ntargets = (uint32_t)WR__MIN(sh->nrt, UINT32_MAX);
    for (size_t j = 0; j < sh->nrt; j++)
        if (j == 0 || sh->rt[j].shard != sh->rt[j - 1].shard)
            nparts++;
    /* Built before any is posted: once the last post is out, r may be done. */
    parts = nparts <= 16 ? (wr__req_t *[16]){0} : wr__xmalloc(nparts * sizeof(*parts));
    for (size_t p = 0; p < nparts; p++) {
        size_t j = i, bytes = 0, nt;
        wr__rtarget_t *tg;
        char *kp;
        wr__req_t *part;
        while (j < sh->nrt && sh->rt[j].shard == sh->rt[i].shard)
            bytes += r->tlen + 1 + sh->rt[j++].nlen;
        nt = j - i;
        wr__enter_child(core);
        part = wr__req_new(core, WR__OP_ROUTE_PART, nt * sizeof(*tg) + bytes, tenant,
                           (wr_slice_t){NULL, 0}, NULL, NULL);
        part->nocb = true;
        part->shard = sh->rt[i].shard;
        part->in.part.parent = r;
        part->in.part.t = tg = (wr__rtarget_t *)part->data;
        part->in.part.nt = nt;
        kp = (char *)(tg + nt);
        for (size_t k = 0; k < nt; k++) {
            const wr__rscratch_t *s = &sh->rt[i + k];
            memset(&tg[k], 0, sizeof(tg[k]));
            tg[k].hash = s->hash;
            tg[k].key = kp;
            tg[k].klen = r->tlen + 1 + s->nlen;
            memcpy(kp, r->key, r->tlen);
            kp[r->tlen] = '\0';
            memcpy(kp + r->tlen + 1, s->name, s->nlen);
            kp += tg[k].klen;
        }
        parts[p] = part;
        i = j;
    }
    atomic_init(&r->pending, (unsigned)nparts);
    for (size_t p = 0; p < nparts; p++)
        wr_loop_post(core->shards[parts[p]->shard].loop, wr__exec, parts[p]);
    if (nparts > 16)
        free(parts);
}

static void on_route(void *arg)
{
    wr__req_t *r = arg;
    wr__shard_t *sh = wr__shard_current(r->core);

    sh->requests++;
    route_and_send(sh, r);
}

/* ------------------------------------------------------------------------ */
/* A part, on its target shard                                              */

void wr__exec_route_part(wr__shard_t *sh, wr__req_t *r)
{
    wr__req_t *parent = r->in.part.parent;
    wr_msg_in_t *msgs = parent->in.route.msgs;
    size_t n = parent->in.route.n, nd = 0;
    wr__queue_t *stack_qs[8], **dqs = stack_qs;
    uint64_t stack_firsts[8], *firsts = stack_firsts, total = 0;
    int64_t now = wr_now_wall_ms();
    wr_err_t err = WR_EAGAIN;

    if (r->in.part.nt > 8) {
        dqs = wr__xmalloc(r->in.part.nt * sizeof(*dqs));
        firsts = wr__xmalloc(r->in.part.nt * sizeof(*firsts));
    }
    for (size_t i = 0; i < n; i++)
        total += msgs[i].body->body_len;
    for (size_t k = 0; k < r->in.part.nt; k++) {
        wr__rtarget_t *t = &r->in.part.t[k];
        wr__queue_t *q = wr__queue_find(sh, t->hash, t->key, t->klen);
        if (!q)
            continue;
        wr__queue_tick(sh, q, now);
        if (q->attrs.overflow != WR_OVERFLOW_DROP_HEAD && !wr__queue_fits(q, n, total)) {
            if (q->attrs.overflow == WR_OVERFLOW_REJECT_DLX)
                for (size_t i = 0; i < n; i++)
                    wr__dl_add(sh, q, msgs[i].body, parent->in.route.route, msgs[i].persistent,
                               msgs[i].priority, 0, WR__DL_MAXLEN);
            set_err(parent, WR_EQUOTA);
            continue;
        }
        if (!parent->in.route.internal && !wr__quota_queue_fits(q, n, total)) {
            set_err(parent, WR_ELIMIT);
            continue;
        }
        t->q = q;
        t->first_pos = wr__ix_end(&q->ix);
        t->first_id = q->next_id;
        for (size_t i = 0; i < n; i++)
            wr__queue_append(q, wr__msg_new(q, &msgs[i], false, parent->in.route.route,
                                            parent->in.route.ntargets > 1, now));
        q->published += n;
        t->stored = true;
        wr__queue_note_due(sh, q);
        if (wr__durable(sh->core, q)) {
            dqs[nd] = q;
            firsts[nd++] = t->first_pos;
        }
    }
    /* The store sees the puts before any delete drop-head queues. */
    if (nd)
        err = wr__persist_msgs_multi(sh, r, dqs, firsts, nd, n);
    if (err != WR_OK && err != WR_EAGAIN) {
        r->store_err = err;
        wr__route_part_rollback(sh, r);
    }
    for (size_t k = 0; k < r->in.part.nt; k++) {
        wr__queue_t *q = r->in.part.t[k].q;
        if (!q || !r->in.part.t[k].stored)
            continue;
        wr__queue_drop_head(sh, q);
        wr__queue_wake(sh, q, now);
        wr__queue_note_waiters(sh, q, now);
        wr__queue_tidy(q);
    }
    for (size_t k = 0; k < r->in.part.nt; k++)
        r->in.part.t[k].q = NULL; /* may go before the store answers */
    if (dqs != stack_qs) {
        free(dqs);
        free(firsts);
    }
    if (err == WR_OK)
        return; /* wr__exec_stored -> wr__route_part_done */
    wr__route_part_done(sh, r);
}

void wr__route_part_rollback(wr__shard_t *sh, wr__req_t *r)
{
    size_t n = r->in.part.parent->in.route.n;
    uint64_t pos;

    set_err(r->in.part.parent, r->store_err == WR_ENOSPACE ? WR_ENOSPACE : WR_EIO);
    for (size_t k = 0; k < r->in.part.nt; k++) {
        wr__rtarget_t *t = &r->in.part.t[k];
        wr__queue_t *q;
        if (!t->stored)
            continue;
        q = wr__queue_find(sh, t->hash, t->key, t->klen);
        if (!q || !wr__durable(sh->core, q))
            continue;
        t->stored = false;
        for (uint64_t id = t->first_id; id < t->first_id + n; id++) {
            if (wr__ix_find(&q->ix, id, &pos)) {
                wr__queue_remove(sh, q, pos);
                q->published--;
            }
        }
        wr__queue_tidy(q);
    }
}

void wr__route_part_done(wr__shard_t *sh, wr__req_t *r)
{
    wr__req_t *parent = r->in.part.parent;
    uint32_t stored = 0;

    (void)sh;
    for (size_t k = 0; k < r->in.part.nt; k++)
        stored += r->in.part.t[k].stored;
    if (stored)
        atomic_fetch_add_explicit(&parent->in.route.nreached, stored, memory_order_relaxed);
    /* acq_rel: the last part sees every other part's counts. After this,
     * unless last, parent may be freed by another shard at any time. */
    if (atomic_fetch_sub_explicit(&parent->pending, 1, memory_order_acq_rel) == 1)
        parent_finish(parent);
    wr__complete(r);
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                             */

void wr__publish_internal(wr__shard_t *sh, wr_slice_t tenant, wr_body_t *route, wr_msg_in_t *msgs,
                          size_t n, const char *skip_key, size_t skip_klen, uint64_t skip_hash)
{
    size_t reached_bytes = (n * sizeof(uint32_t) + 15) & ~(size_t)15;
    size_t msgs_bytes = (n * sizeof(*msgs) + 15) & ~(size_t)15;
    wr_core_t *core = sh->core;
    wr__req_t *r;

    if (wr__enter(core) != WR_OK) {
        for (size_t i = 0; i < n; i++)
            wr_body_unref(msgs[i].body);
        wr_body_unref(route);
        return;
    }
    r = wr__req_new(core, WR__OP_ROUTE, reached_bytes + msgs_bytes + skip_klen, tenant,
                    (wr_slice_t){NULL, 0}, NULL, NULL);
    r->nocb = true;
    r->in.route.reached = (uint32_t *)r->data;
    r->in.route.msgs = (wr_msg_in_t *)(r->data + reached_bytes);
    memcpy(r->in.route.msgs, msgs, n * sizeof(*msgs));
    r->in.route.n = n;
    atomic_init(&r->in.route.nreached, 0);
    atomic_init(&r->in.route.err, WR_OK);
    r->in.route.route = route;
    r->in.route.internal = true;
    r->in.route.exchange = (wr_slice_t){route->data, route->props_len};
    r->in.route.key = (wr_slice_t){wr_body_bytes(route), route->body_len};
    if (skip_klen) {
        char *k = (char *)r->data + reached_bytes + msgs_bytes;
        memcpy(k, skip_key, skip_klen);
        r->in.route.skip_key = k;
        r->in.route.skip_klen = skip_klen;
        r->in.route.skip_hash = skip_hash;
    }
    sh->requests++;
    route_and_send(sh, r);
}

static bool dur_ok(int64_t ms)
{
    return ms >= 0 && ms <= WR__MAX_DURATION_MS;
}

wr_err_t wr_publish_routed(wr_core_t *core, wr_slice_t tenant, wr_slice_t exchange,
                           wr_slice_t routing_key, const wr_header_t *headers, size_t nheaders,
                           wr_msg_in_t *msgs, size_t n, unsigned flags, wr_loop_t *reply,
                           wr_route_cb cb, void *arg)
{
    size_t reached_bytes = (n * sizeof(uint32_t) + 15) & ~(size_t)15;
    size_t msgs_bytes = (n * sizeof(*msgs) + 15) & ~(size_t)15, hbytes = 0;
    wr__shard_t *here;
    wr__req_t *r;
    wr_err_t err = WR_OK;
    char *p;

    /* The bodies' references are ours from here on, even on failure. */
    if (!core || !msgs || n == 0 || n > WR_BATCH_MAX || (cb && !reply) || tenant.len < 1 ||
        tenant.len > WR_NAME_MAX || !tenant.ptr || exchange.len > WR_NAME_MAX ||
        (exchange.len && !exchange.ptr) || routing_key.len > WR_NAME_MAX ||
        (routing_key.len && !routing_key.ptr) || nheaders > WR_HEADERS_MAX ||
        (nheaders && !headers))
        err = WR_EINVAL;
    for (size_t i = 0; err == WR_OK && i < n; i++) {
        if (!msgs[i].body || !dur_ok(msgs[i].ttl_ms) || msgs[i].delay_ms < -1 ||
            msgs[i].delay_ms > WR__MAX_DURATION_MS)
            err = WR_EINVAL;
        else if (msgs[i].body->body_len > core->max_message_bytes)
            err = WR_ETOOBIG;
    }
    if (err == WR_OK) {
        wr__tenant_t *tn = wr__tenant_of(core, tenant);
        if (atomic_load_explicit(&tn->limited, memory_order_relaxed))
            err = wr__quota_publish(tn, msgs, n);
    }
    if (err == WR_OK)
        err = wr__enter(core);
    if (err != WR_OK) {
        for (size_t i = 0; msgs && i < n; i++)
            wr_body_unref(msgs[i].body);
        return err;
    }
    here = wr__shard_here(core);
    if (!here)
        hbytes = ((wr__headers_size(headers, nheaders) + 15) & ~(size_t)15) + exchange.len +
                 routing_key.len;
    r = wr__req_new(core, WR__OP_ROUTE, reached_bytes + msgs_bytes + hbytes, tenant,
                    (wr_slice_t){NULL, 0}, reply, arg);
    r->cb.route = cb;
    r->nocb = cb == NULL;
    r->in.route.reached = (uint32_t *)r->data;
    r->in.route.msgs = (wr_msg_in_t *)(r->data + reached_bytes);
    memcpy(r->in.route.msgs, msgs, n * sizeof(*msgs));
    r->in.route.n = n;
    r->in.route.flags = flags;
    atomic_init(&r->in.route.nreached, 0);
    atomic_init(&r->in.route.err, WR_OK);
    /* The default exchange needs no route: the key is the queue's name. */
    if (exchange.len)
        r->in.route.route = wr_body_new(exchange, routing_key);
    if (here) {
        r->in.route.exchange = exchange;
        r->in.route.key = routing_key;
        r->in.route.hdrs = headers;
        r->in.route.nhdrs = nheaders;
        here->requests++;
        route_and_send(here, r);
        return WR_OK;
    }
    /* Not on a shard: copy what routing reads and let shard 0 do it. */
    p = (char *)r->data + reached_bytes + msgs_bytes;
    if (nheaders) {
        r->in.route.hdrs = wr__headers_copy(p, headers, nheaders);
        p += (wr__headers_size(headers, nheaders) + 15) & ~(size_t)15;
    }
    r->in.route.nhdrs = nheaders;
    if (exchange.len)
        memcpy(p, exchange.ptr, exchange.len);
    r->in.route.exchange = (wr_slice_t){p, exchange.len};
    p += exchange.len;
    if (routing_key.len)
        memcpy(p, routing_key.ptr, routing_key.len);
    r->in.route.key = (wr_slice_t){p, routing_key.len};
    wr_loop_post(core->shards[0].loop, on_route, r);
    return WR_OK;
}
