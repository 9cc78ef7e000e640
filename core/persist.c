/*
 * persist.c - the hook between the queues and the durable store.
 *
 * Only durable queues with a store touch it, and of their messages only
 * persistent ones. Writes that a caller waits on (a publish, a durable
 * declare) go out with WR_DUR_SYNC, and the request completes in the
 * store's done callback, posted back to the shard because the store may
 * call it on any thread. Deletes (acks, expiry, purge, queue delete) are
 * gathered during a shard task and written as one batch at its end,
 * without waiting: a crash before they land redelivers (at-least-once).
 *
 * Records (host byte order, version byte first, so recovery can evolve):
 *   queue: key "q" tenant '\0' name  ->  v1 qid created_ms attrs meta
 *   message: (qid, id)  ->  v1 flags claim_count props_len body_len
 *                            enqueued_ms ttl_ms visible_ms producer props body
 * Reading them back at start-up is not built yet.
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

#define REC_V1 1u

typedef struct aux {
    wr_store_op_t *ops;
    unsigned char *buf;
} aux_t;

void wr__persist_free_aux(wr__req_t *r)
{
    aux_t *a = r->store_aux;

    if (!a)
        return;
    free(a->ops);
    free(a->buf);
    free(a);
    r->store_aux = NULL;
}

static void on_done_task(void *arg)
{
    wr__req_t *r = arg;
    wr__shard_t *sh = &r->core->shards[r->shard];

    wr__exec_stored(sh, r);
    wr__persist_flush(sh);
}

/* May run on any thread: only post. */
static void on_done(void *arg, wr_err_t err)
{
    wr__req_t *r = arg;

    r->store_err = err;
    wr_loop_post(r->core->shards[r->shard].loop, on_done_task, r);
}

static void on_del_done(void *arg, wr_err_t err)
{
    (void)arg;
    if (err != WR_OK)
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "store delete failed: %s", wr_strerror(err));
}

static wr_err_t write_waited(wr__shard_t *sh, wr__req_t *r, aux_t *a, size_t n)
{
    wr_err_t err;

    r->store_aux = a;
    err = wr_store_write_batch(sh->core->store, a->ops, n, WR_DUR_SYNC, on_done, r);
    if (err != WR_OK) {
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "store write failed: %s", wr_strerror(err));
        return err == WR_EAGAIN ? WR_EIO : err;
    }
    return WR_OK;
}

static unsigned char *put(unsigned char *p, const void *v, size_t n)
{
    memcpy(p, v, n);
    return p + n;
}

wr_err_t wr__persist_queue(wr__shard_t *sh, wr__queue_t *q, wr__req_t *r)
{
    size_t meta_len = q->meta ? q->meta->body_len : 0;
    size_t klen = 1 + q->klen, vlen = 1 + 8 + 8 + sizeof(q->attrs) + meta_len;
    aux_t *a = wr__xcalloc(1, sizeof(*a));
    unsigned char *p, v = REC_V1;

    a->buf = wr__xmalloc(klen + vlen);
    a->ops = wr__xcalloc(1, sizeof(*a->ops));
    p = put(a->buf, "q", 1);
    p = put(p, q->key, q->klen);
    p = put(p, &v, 1);
    p = put(p, &q->qid, 8);
    p = put(p, &q->created_ms, 8);
    p = put(p, &q->attrs, sizeof(q->attrs));
    if (meta_len)
        put(p, wr_body_bytes(q->meta), meta_len);
    a->ops[0] = (wr_store_op_t){.kind = WR_STORE_PUT_META,
                                .key = {a->buf, klen},
                                .val = {a->buf + klen, vlen}};
    return write_waited(sh, r, a, 1);
}

#define MSG_HDR (1 + 1 + 4 + 4 + 4 + 8 + 8 + 8 + 8)

wr_err_t wr__persist_msgs(wr__shard_t *sh, wr__queue_t *q, wr__req_t *r, uint64_t first, size_t n)
{
    return wr__persist_msgs_multi(sh, r, &q, &first, 1, n);
}

wr_err_t wr__persist_msgs_multi(wr__shard_t *sh, wr__req_t *r, wr__queue_t *const *qs,
                                const uint64_t *firsts, size_t nq, size_t n)
{
    size_t k = 0, bytes = 0, off = 0;
    aux_t *a;

    for (size_t i = 0; i < nq; i++) {
        for (uint64_t p = firsts[i]; p < firsts[i] + n; p++) {
            const wr__msg_t *m = wr__ix_slot(&qs[i]->ix, p)->m;
            if (m->flags & WR__MSG_PERSISTENT) {
                k++;
                bytes += MSG_HDR + m->body->props_len + m->body->body_len;
            }
        }
    }
    if (!k)
        return WR_EAGAIN;
    a = wr__xcalloc(1, sizeof(*a));
    a->ops = wr__xcalloc(k, sizeof(*a->ops));
    a->buf = wr__xmalloc(bytes);
    k = 0;
    for (size_t i = 0; i < nq; i++) {
    wr__queue_t *q = qs[i];
    for (uint64_t p = firsts[i]; p < firsts[i] + n; p++) {
        const wr__msg_t *m = wr__ix_slot(&q->ix, p)->m;
        unsigned char *start = a->buf + off, *w = start, v = REC_V1, fl = (unsigned char)m->flags;
        uint32_t plen = m->body->props_len, blen = m->body->body_len;
        /* The route is not recorded yet (nor read back): v1 has no field. */
        uint64_t producer = (m->flags & WR__MSG_ROUTE) ? 0 : m->producer;
        if (!(m->flags & WR__MSG_PERSISTENT))
            continue;
        w = put(w, &v, 1);
        w = put(w, &fl, 1);
        w = put(w, &m->claim_count, 4);
        w = put(w, &plen, 4);
        w = put(w, &blen, 4);
        w = put(w, &m->enqueued_ms, 8);
        w = put(w, &m->ttl_ms, 8);
        w = put(w, &m->visible_ms, 8);
        w = put(w, &producer, 8);
        w = put(w, m->body->data, (size_t)plen + blen);
        a->ops[k++] = (wr_store_op_t){.kind = WR_STORE_PUT_MSG,
                                      .q = q->qid,
                                      .seq = m->id,
                                      .val = {start, (size_t)(w - start)}};
        off += (size_t)(w - start);
    }
    }
    return write_waited(sh, r, a, k);
}

static wr_store_op_t *del_slot(wr__shard_t *sh)
{
    if (sh->ndels == sh->dels_cap) {
        sh->dels_cap = sh->dels_cap ? sh->dels_cap * 2 : 64;
        sh->dels = wr__xrealloc(sh->dels, sh->dels_cap * sizeof(*sh->dels));
    }
    return &sh->dels[sh->ndels++];
}

void wr__persist_del_msg(wr__shard_t *sh, const wr__queue_t *q, uint64_t id)
{
    *del_slot(sh) = (wr_store_op_t){.kind = WR_STORE_DEL_MSG, .q = q->qid, .seq = id};
}

void wr__persist_del_queue(wr__shard_t *sh, const wr__queue_t *q)
{
    /* The key bytes must outlive the queue: the flush copies them. */
    char *key = wr__xmalloc(1 + q->klen);

    key[0] = 'q';
    memcpy(key + 1, q->key, q->klen);
    *del_slot(sh) = (wr_store_op_t){.kind = WR_STORE_DEL_RANGE,
                                    .q = q->qid,
                                    .seq = 0,
                                    .seq_hi = UINT64_MAX};
    *del_slot(sh) = (wr_store_op_t){.kind = WR_STORE_DEL_META, .key = {key, 1 + q->klen}};
}

void wr__persist_flush(wr__shard_t *sh)
{
    wr_err_t err;

    /* Dead-letters of this task go out with its deletes. */
    if (sh->ndle)
        wr__dl_flush(sh);
    if (!sh->ndels)
        return;
    err = wr_store_write_batch(sh->core->store, sh->dels, sh->ndels, WR_DUR_WAL, on_del_done,
                               NULL);
    if (err != WR_OK)
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "store delete failed: %s", wr_strerror(err));
    for (size_t i = 0; i < sh->ndels; i++)
        if (sh->dels[i].kind == WR_STORE_DEL_META)
            free((void *)sh->dels[i].key.ptr);
    sh->ndels = 0;
}

void wr__exec_stored(wr__shard_t *sh, wr__req_t *r)
{
    if (r->store_err != WR_OK) {
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "store write failed: %s", wr_strerror(r->store_err));
        if (r->op == WR__OP_PUBLISH) {
            wr__publish_rollback(sh, r);
            r->out.publish.err = WR_EIO;
        } else if (r->op == WR__OP_DECLARE) {
            r->out.declare.err = WR_EIO;
        } else if (r->op == WR__OP_ROUTE_PART) {
            wr__route_part_rollback(sh, r);
        }
    }
    if (r->op == WR__OP_ROUTE_PART)
        wr__route_part_done(sh, r);
    else
        wr__complete(r);
}

