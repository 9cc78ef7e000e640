/*
 * persist.c - the hook between the queues and the durable store.
 *
 * Only durable queues with a store touch it, and of their messages only
 * persistent ones. Writes that a caller waits on (a publish, a durable
 * declare) go out with WR_DUR_SYNC, and the request completes in the
 * store's done callback, posted back to the shard because the store may
 * call it on any thread. Deletes (acks, expiry, purge, queue delete) are
 * gathered during a shard task and written as one batch at its end. The
 * task does not wait for it, but every answer the shard sends after it
 * does (core.c, wr__complete): so once a client hears back from the shard
 * after an ack (a REST 204, a later reply on the same queue), the ack is
 * in the log and survives a crash of the process (with --fsync always,
 * of the machine too).
 *
 * Records are msgpack (record.c). A message's first delivery writes a
 * mark beside it (without waiting), so that a message delivered but not
 * acked before a crash comes back with the redelivered flag.
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

typedef struct aux {
    wr_store_op_t *ops;
    msgpack_sbuffer sb; /* the values */
    char *key;
} aux_t;

void wr__persist_free_aux(wr__req_t *r)
{
    aux_t *a = r->store_aux;

    if (!a)
        return;
    free(a->ops);
    msgpack_sbuffer_destroy(&a->sb);
    free(a->key);
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

static void on_wal_done(void *arg)
{
    wr__shard_t *sh = arg;

    sh->wal_done++;
    wr__release_deferred(sh);
}

/* May run on any thread: only post. The store completes batches in the
 * order they were sent, and the mailbox keeps that order. */
static void on_del_done(void *arg, wr_err_t err)
{
    wr__shard_t *sh = arg;

    if (err != WR_OK)
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "store delete failed: %s", wr_strerror(err));
    wr_loop_post(sh->loop, on_wal_done, sh);
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

static aux_t *aux_new(size_t nops)
{
    aux_t *a = wr__xcalloc(1, sizeof(*a));

    a->ops = wr__xcalloc(nops ? nops : 1, sizeof(*a->ops));
    msgpack_sbuffer_init(&a->sb);
    return a;
}

/* "q" tenant '\0' name: the queue's metadata key (caller frees). */
static char *queue_key(const wr__queue_t *q, size_t *len)
{
    char *key = wr__xmalloc(1 + q->klen);

    key[0] = 'q';
    memcpy(key + 1, q->key, q->klen);
    *len = 1 + q->klen;
    return key;
}

wr_err_t wr__persist_queue(wr__shard_t *sh, wr__queue_t *q, wr__req_t *r)
{
    aux_t *a = aux_new(1);
    size_t klen;

    a->key = queue_key(q, &klen);
    wr__rec_queue(&a->sb, q);
    a->ops[0] = (wr_store_op_t){.kind = WR_STORE_PUT_META,
                                .key = {a->key, klen},
                                .val = {a->sb.data, a->sb.size}};
    return write_waited(sh, r, a, 1);
}

wr_err_t wr__persist_msgs(wr__shard_t *sh, wr__queue_t *q, wr__req_t *r, uint64_t first, size_t n)
{
    return wr__persist_msgs_multi(sh, r, &q, &first, 1, n);
}

wr_err_t wr__persist_msgs_multi(wr__shard_t *sh, wr__req_t *r, wr__queue_t *const *qs,
                                const uint64_t *firsts, size_t nq, size_t n)
{
    size_t k = 0;
    size_t *ends;
    aux_t *a;

    for (size_t i = 0; i < nq; i++)
        for (uint64_t p = firsts[i]; p < firsts[i] + n; p++)
            if (wr__ix_slot(&qs[i]->ix, p)->m->flags & WR__MSG_PERSISTENT)
                k++;
    if (!k)
        return WR_EAGAIN;
    a = aux_new(k);
    /* Offsets first: the buffer moves as it grows. */
    ends = wr__xmalloc(k * sizeof(*ends));
    k = 0;
    for (size_t i = 0; i < nq; i++) {
        for (uint64_t p = firsts[i]; p < firsts[i] + n; p++) {
            const wr__msg_t *m = wr__ix_slot(&qs[i]->ix, p)->m;
            if (!(m->flags & WR__MSG_PERSISTENT))
                continue;
            wr__rec_msg(&a->sb, m);
            ends[k] = a->sb.size;
            a->ops[k++] = (wr_store_op_t){.kind = WR_STORE_PUT_MSG, .q = qs[i]->qid, .seq = m->id};
        }
    }
    for (size_t j = 0, off = 0; j < k; off = ends[j], j++)
        a->ops[j].val = (wr_bytes_t){a->sb.data + off, ends[j] - off};
    free(ends);
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

void wr__persist_del_msg(wr__shard_t *sh, const wr__queue_t *q, const wr__msg_t *m)
{
    *del_slot(sh) = (wr_store_op_t){.kind = WR_STORE_DEL_MSG, .q = q->qid, .seq = m->id};
    if (m->flags & WR__MSG_MARKED)
        *del_slot(sh) =
            (wr_store_op_t){.kind = WR_STORE_DEL_MSG, .q = q->qid | WR__QID_MARK, .seq = m->id};
}

void wr__persist_mark(wr__shard_t *sh, const wr__queue_t *q, const wr__msg_t *m)
{
    *del_slot(sh) = (wr_store_op_t){.kind = WR_STORE_PUT_MSG,
                                    .q = q->qid | WR__QID_MARK,
                                    .seq = m->id,
                                    .val = {"", 0}};
}

void wr__msg_delivered(wr__shard_t *sh, const wr__queue_t *q, wr__msg_t *m, bool mark)
{
    if (m->claim_count++) {
        m->flags |= WR__MSG_REDELIVERED;
    } else if (mark && (m->flags & WR__MSG_PERSISTENT) && wr__durable(sh->core, q)) {
        wr__persist_mark(sh, q, m);
        m->flags |= WR__MSG_MARKED;
    }
}

void wr__persist_del_queue(wr__shard_t *sh, const wr__queue_t *q)
{
    /* The key bytes must outlive the queue: the flush frees them. */
    size_t klen;
    char *key = queue_key(q, &klen);

    *del_slot(sh) = (wr_store_op_t){.kind = WR_STORE_DEL_RANGE,
                                    .q = q->qid,
                                    .seq = 0,
                                    .seq_hi = UINT64_MAX};
    *del_slot(sh) = (wr_store_op_t){.kind = WR_STORE_DEL_RANGE,
                                    .q = q->qid | WR__QID_MARK,
                                    .seq = 0,
                                    .seq_hi = UINT64_MAX};
    *del_slot(sh) = (wr_store_op_t){.kind = WR_STORE_DEL_META, .key = {key, klen}};
}

/* A consumed head (a run of acks of consecutive ids, with their marks) is
 * one range delete instead of one tombstone per message: fewer keys for
 * compaction and for the next start's scan. Only for batches of deletes
 * alone, where order does not matter, and long runs (RocksDB pays for
 * every range tombstone on reads). */
#define RANGE_MIN 16
#define RANGE_QUEUES 8

static void coalesce(wr__shard_t *sh)
{
    struct run {
        wr_qid_t q;
        uint64_t lo, hi;
        size_t n;
    } runs[RANGE_QUEUES];
    size_t nr = 0, k = 0;

    if (sh->ndels < RANGE_MIN)
        return;
    for (size_t i = 0; i < sh->ndels; i++) {
        const wr_store_op_t *o = &sh->dels[i];
        size_t j;
        if (o->kind == WR_STORE_PUT_MSG || o->kind == WR_STORE_PUT_META)
            return;
        if (o->kind != WR_STORE_DEL_MSG)
            continue;
        for (j = 0; j < nr && runs[j].q != o->q; j++)
            ;
        if (j == nr) {
            if (nr == RANGE_QUEUES)
                return;
            runs[nr++] = (struct run){o->q, o->seq, o->seq, 0};
        }
        runs[j].lo = WR__MIN(runs[j].lo, o->seq);
        runs[j].hi = WR__MAX(runs[j].hi, o->seq);
        runs[j].n++;
    }
    for (size_t j = 0; j < nr; j++)
        if (runs[j].n < RANGE_MIN || runs[j].hi - runs[j].lo + 1 != runs[j].n)
            runs[j].n = 0; /* short, or with holes (or twice an id): keep */
    for (size_t i = 0; i < sh->ndels; i++) {
        const wr_store_op_t *o = &sh->dels[i];
        size_t j = 0;
        if (o->kind == WR_STORE_DEL_MSG) {
            while (runs[j].q != o->q)
                j++;
            if (runs[j].n == 0) {
                sh->dels[k++] = *o;
            } else if (o->seq == runs[j].lo) {
                sh->dels[k++] = (wr_store_op_t){.kind = WR_STORE_DEL_RANGE,
                                                .q = o->q,
                                                .seq = runs[j].lo,
                                                .seq_hi = runs[j].hi};
            }
            continue;
        }
        sh->dels[k++] = *o;
    }
    sh->ndels = k;
}

void wr__persist_flush(wr__shard_t *sh)
{
    wr_err_t err;

    /* Dead-letters of this task go out with its deletes. */
    if (sh->ndle)
        wr__dl_flush(sh);
    if (!sh->ndels)
        return;
    coalesce(sh);
    sh->wal_sent++;
    err = wr_store_write_batch(sh->core->store, sh->dels, sh->ndels, WR_DUR_WAL, on_del_done, sh);
    if (err != WR_OK)
        on_del_done(sh, err); /* nothing to wait for */
    for (size_t i = 0; i < sh->ndels; i++)
        if (sh->dels[i].kind == WR_STORE_DEL_META)
            free((void *)sh->dels[i].key.ptr);
    sh->ndels = 0;
}

void wr__exec_stored(wr__shard_t *sh, wr__req_t *r)
{
    if (r->store_err != WR_OK) {
        /* A full disk is the client's to know (it may retry later); any
         * other failure is the store's. */
        wr_err_t err = r->store_err == WR_ENOSPACE ? WR_ENOSPACE : WR_EIO;
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "store write failed: %s", wr_strerror(r->store_err));
        if (r->op == WR__OP_PUBLISH) {
            wr__publish_rollback(sh, r);
            r->out.publish.err = err;
        } else if (r->op == WR__OP_DECLARE) {
            r->out.declare.err = err;
        } else if (r->op == WR__OP_ROUTE_PART) {
            wr__route_part_rollback(sh, r);
        }
    }
    if (r->op == WR__OP_ROUTE_PART)
        wr__route_part_done(sh, r);
    else
        wr__complete(r);
}

