/*
 * gather.c - operations that ask every shard: queue list and metrics.
 *
 * Scatter: one request block carries a part slot per shard and an atomic
 * count of shards still to answer; it is posted to every shard loop. Each
 * shard fills its own slot (copies of names, references to metadata), and
 * the last one to finish posts the completion. Gather: the reply loop
 * merges the parts just before the callback (wr__gather_merge) and frees
 * everything after it (wr__gather_cleanup).
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

static int name_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, WR__MIN(alen, blen));
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int queue_ptr_cmp(const void *a, const void *b)
{
    wr_slice_t x = wr__queue_name(*(wr__queue_t *const *)a);
    wr_slice_t y = wr__queue_name(*(wr__queue_t *const *)b);
    return name_cmp(x.ptr, x.len, y.ptr, y.len);
}

static int item_cmp(const void *a, const void *b)
{
    const wr_queue_item_t *x = a, *y = b;
    return name_cmp(x->name.ptr, x->name.len, y->name.ptr, y->name.len);
}

static wr__req_t *scatter_new(wr_core_t *core, wr__op_t op, wr_slice_t tenant, wr_slice_t marker,
                              wr_loop_t *reply, void *arg)
{
    size_t parts = core->nshards * sizeof(wr__part_t);
    wr__req_t *r = wr__req_new(core, op, parts + marker.len, tenant, (wr_slice_t){NULL, 0},
                               reply, arg);

    r->in.gather.parts = (wr__part_t *)r->data;
    memset(r->in.gather.parts, 0, parts);
    if (marker.len)
        memcpy(r->data + parts, marker.ptr, marker.len);
    r->in.gather.marker = (const char *)r->data + parts;
    r->in.gather.mlen = marker.len;
    atomic_init(&r->pending, core->nshards);
    return r;
}

static void scatter(wr__req_t *r, wr_task_fn fn)
{
    /* Once the last post is out, r may already be answered and freed. */
    wr_core_t *core = r->core;

    for (unsigned i = 0; i < core->nshards; i++)
        wr_loop_post(core->shards[i].loop, fn, r);
}

/* ------------------------------------------------------------------------ */
/* Queue list                                                               */

static void qlist_part(void *arg)
{
    wr__req_t *r = arg;
    wr__shard_t *sh = wr__shard_current(r->core);
    wr__part_t *part = &r->in.gather.parts[sh->idx];
    size_t n = 0, want = (size_t)r->in.gather.limit + 1, bytes = 0;
    wr__queue_t **qs = NULL;
    wr_queue_item_t *items;
    char *names;

    sh->requests++;
    /* A tenant's queues are spread over the whole table: scan it all. */
    for (size_t i = 0; i < sh->queues.cap; i++) {
        wr__queue_t *q = sh->queues.e[i].val;
        wr_slice_t name;
        if (!q || q->tlen != r->tlen || memcmp(q->key, r->key, r->tlen) != 0)
            continue;
        name = wr__queue_name(q);
        if (name_cmp(name.ptr, name.len, r->in.gather.marker, r->in.gather.mlen) <= 0)
            continue;
        if (n % 64 == 0)
            qs = wr__xrealloc(qs, (n + 64) * sizeof(*qs));
        qs[n++] = q;
    }
    if (n) {
        qsort(qs, n, sizeof(*qs), queue_ptr_cmp);
        n = WR__MIN(n, want);
        for (size_t i = 0; i < n; i++)
            bytes += wr__queue_name(qs[i]).len;
        items = wr__xcalloc(n, sizeof(*items));
        names = wr__xmalloc(bytes);
        if (r->in.gather.with_meta)
            part->metas = wr__xcalloc(n, sizeof(*part->metas));
        bytes = 0;
        for (size_t i = 0; i < n; i++) {
            wr_slice_t name = wr__queue_name(qs[i]);
            memcpy(names + bytes, name.ptr, name.len);
            items[i].name = (wr_slice_t){names + bytes, name.len};
            bytes += name.len;
            if (r->in.gather.with_meta && qs[i]->meta) {
                part->metas[i] = wr_body_ref(qs[i]->meta);
                items[i].meta = (wr_slice_t){wr_body_bytes(qs[i]->meta), qs[i]->meta->body_len};
            }
        }
        part->items = items;
        part->names = names;
        part->n = n;
    }
    free(qs);
    wr__gather_done(r);
}

wr_err_t wr_queue_list(wr_core_t *core, wr_slice_t tenant, wr_slice_t marker, uint32_t limit,
                       bool with_meta, wr_loop_t *reply, wr_queue_list_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err;

    if (!core || !reply || !cb || tenant.len < 1 || tenant.len > WR_NAME_MAX || !tenant.ptr ||
        marker.len > WR_NAME_MAX || (marker.len && !marker.ptr) || limit < 1 ||
        limit > WR__LIST_MAX)
        return WR_EINVAL;
    err = wr__enter(core);
    if (err != WR_OK)
        return err;
    r = scatter_new(core, WR__OP_QLIST, tenant, marker, reply, arg);
    r->cb.qlist = cb;
    r->in.gather.limit = limit;
    r->in.gather.with_meta = with_meta;
    scatter(r, qlist_part);
    return WR_OK;
}

/* ------------------------------------------------------------------------ */
/* Metrics                                                                  */

static void metrics_part(void *arg)
{
    wr__req_t *r = arg;
    wr__shard_t *sh = wr__shard_current(r->core);
    wr__part_t *part = &r->in.gather.parts[sh->idx];
    int64_t now = wr_now_wall_ms();
    size_t n = sh->queues.len, bytes = 0, k = 0;
    wr_queue_metrics_t *qm = n ? wr__xcalloc(n, sizeof(*qm)) : NULL;
    char *names;

    sh->requests++;
    for (size_t i = 0; i < sh->queues.cap; i++)
        if (sh->queues.e[i].val)
            bytes += ((wr__queue_t *)sh->queues.e[i].val)->klen;
    names = n ? wr__xmalloc(bytes) : NULL;
    bytes = 0;
    for (size_t i = 0; i < sh->queues.cap; i++) {
        wr__queue_t *q = sh->queues.e[i].val;
        wr_queue_metrics_t *m;
        uint64_t busy;
        if (!q)
            continue;
        wr__queue_tick(sh, q, now);
        m = &qm[k++];
        memcpy(names + bytes, q->key, q->klen);
        m->tenant = (wr_slice_t){names + bytes, q->tlen};
        m->name = (wr_slice_t){names + bytes + q->tlen + 1, q->klen - q->tlen - 1};
        bytes += q->klen;
        busy = q->nclaimed + wr__queue_delayed(q, now);
        m->ready = q->ix.live > busy ? q->ix.live - busy : 0;
        m->claimed = q->nclaimed;
        m->bytes = q->bytes;
        m->published = q->published;
        m->delivered = q->delivered;
        m->acked = q->acked;
        m->expired = q->expired;
        m->consumers = q->nconsumers;
    }
    part->items = qm;
    part->n = k;
    part->names = names;
    part->shard.shard = sh->idx;
    part->shard.queues = k;
    part->shard.requests = sh->requests;
    wr_loop_lag(sh->loop, &part->shard.lag_last_us, &part->shard.lag_max_us);
    wr__persist_flush(sh);
    wr__gather_done(r);
}

wr_err_t wr_core_metrics(wr_core_t *core, wr_loop_t *reply, wr_metrics_cb cb, void *arg)
{
    static const char none[] = "-";
    wr__req_t *r;
    wr_err_t err;

    if (!core || !reply || !cb)
        return WR_EINVAL;
    err = wr__enter(core);
    if (err != WR_OK)
        return err;
    r = scatter_new(core, WR__OP_METRICS, (wr_slice_t){none, 1}, (wr_slice_t){NULL, 0}, reply,
                    arg);
    r->cb.metrics = cb;
    scatter(r, metrics_part);
    return WR_OK;
}

/* ------------------------------------------------------------------------ */
/* Gather (reply loop)                                                      */

void wr__gather_merge(wr__req_t *r)
{
    wr__part_t *parts = r->in.gather.parts;
    unsigned ns = r->core->nshards;
    size_t total = 0, k = 0;

    for (unsigned i = 0; i < ns; i++)
        total += parts[i].n;
    if (r->op == WR__OP_QLIST) {
        wr_queue_item_t *all = total ? wr__xmalloc(total * sizeof(*all)) : NULL;
        for (unsigned i = 0; i < ns; i++) {
            if (parts[i].n)
                memcpy(all + k, parts[i].items, parts[i].n * sizeof(*all));
            k += parts[i].n;
        }
        /* Each part is sorted and a shard sent at most limit + 1: whatever
         * lies beyond the limit after the merge means "more". */
        if (total)
            qsort(all, total, sizeof(*all), item_cmp);
        r->out.qlist.items = all;
        r->out.qlist.n = WR__MIN(total, (size_t)r->in.gather.limit);
        r->out.qlist.more = total > r->in.gather.limit;
    } else {
        wr_queue_metrics_t *all = total ? wr__xmalloc(total * sizeof(*all)) : NULL;
        wr_shard_metrics_t *shards = wr__xmalloc(ns * sizeof(*shards));
        for (unsigned i = 0; i < ns; i++) {
            if (parts[i].n)
                memcpy(all + k, parts[i].items, parts[i].n * sizeof(*all));
            k += parts[i].n;
            shards[i] = parts[i].shard;
        }
        r->out.metrics.queues = all;
        r->out.metrics.nqueues = total;
        r->out.metrics.shards = shards;
        r->out.metrics.nshards = ns;
    }
}

void wr__gather_cleanup(wr__req_t *r)
{
    wr__part_t *parts = r->in.gather.parts;

    for (unsigned i = 0; i < r->core->nshards; i++) {
        if (parts[i].metas)
            for (size_t j = 0; j < parts[i].n; j++)
                wr_body_unref(parts[i].metas[j]);
        free(parts[i].metas);
        free(parts[i].items);
        free(parts[i].names);
    }
    if (r->op == WR__OP_QLIST) {
        free((void *)r->out.qlist.items);
    } else {
        free((void *)r->out.metrics.queues);
        free((void *)r->out.metrics.shards);
    }
}
