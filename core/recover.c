/*
 * recover.c - rebuilding the core from the store at start-up.
 *
 * Runs in wr_core_new before the shard threads start, so it may touch
 * every shard's tables from the calling thread. Order: queues with their
 * messages, then the topology (whose bindings name queues).
 *
 * What comes back, and how (DESIGN.md: claims are soft state):
 *   - every durable queue but exclusive ones, which belonged to a
 *     connection that is gone (RabbitMQ deletes them at start too); their
 *     records are deleted;
 *   - every persistent message, ready: claims and deliveries did not
 *     survive. One that had been delivered (a mark exists) keeps a
 *     delivery count, so it goes out again with the redelivered flag;
 *   - messages whose TTL passed while the broker was down are restored
 *     and then expire on the shard's first sweep, which dead-letters them
 *     as if the broker had never stopped.
 * A record that cannot be read stops the start: starting without what the
 * store holds would silently lose messages.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_int.h"

typedef struct marks {
    uint64_t *ids;
    size_t n, cap, next;
} marks_t;

typedef struct rctx {
    wr_core_t *core;
    msgpack_unpacked u;
    wr__queue_t *q;
    marks_t marks;
    size_t queues, messages, dropped_queues;
    uint64_t max_qid;
    wr_store_op_t *drops; /* exclusive queues' records, deleted after the scan */
    size_t ndrops;
    wr_err_t err;
} rctx_t;

static int visit_mark(void *arg, uint64_t seq, wr_bytes_t val)
{
    marks_t *mk = arg;

    (void)val;
    if (mk->n == mk->cap) {
        mk->cap = mk->cap ? mk->cap * 2 : 64;
        mk->ids = wr__xrealloc(mk->ids, mk->cap * sizeof(*mk->ids));
    }
    mk->ids[mk->n++] = seq;
    return 0;
}

/* Marks and messages both come in id order: one merge pass. */
static bool marked(marks_t *mk, uint64_t id)
{
    while (mk->next < mk->n && mk->ids[mk->next] < id)
        mk->next++;
    return mk->next < mk->n && mk->ids[mk->next] == id;
}

static int visit_msg(void *arg, uint64_t seq, wr_bytes_t val)
{
    rctx_t *c = arg;
    wr__queue_t *q = c->q;
    wr__mrec_t rec;
    wr_body_t *route = NULL;

    if (wr__rec_msg_parse(&c->u, val, &rec) != WR_OK || seq < q->next_id) {
        wr_log(WR_LOG_ERROR, WR_LOGC_STORE, "unreadable message record %llu of queue '%.*s'",
               (unsigned long long)seq, (int)wr__queue_name(q).len, (const char *)wr__queue_name(q).ptr);
        c->err = WR_EPROTO;
        return 1;
    }
    if ((rec.flags & WR__MSG_ROUTE) && rec.exchange.ptr)
        route = wr_body_new(rec.exchange, rec.key);
    if (marked(&c->marks, seq)) {
        rec.flags |= WR__MSG_MARKED;
        if (rec.claim_count == 0)
            rec.claim_count = 1;
    }
    wr__msg_restore(q, seq, &rec, wr_body_new(rec.props, rec.body), route);
    c->messages++;
    return 0;
}

static wr_err_t restore_queue(rctx_t *c, wr_slice_t key, const wr__qrec_t *rec)
{
    wr_core_t *core = c->core;
    const char *k = key.ptr;
    const char *nul = memchr(k, '\0', key.len);
    size_t tlen = nul ? (size_t)(nul - k) : 0;
    uint64_t hash = wr__hash_key(k, key.len);
    wr__shard_t *sh = &core->shards[wr__shard_of_hash(core, hash)];
    wr__queue_t *q;
    wr_err_t err;

    if (!nul || tlen == 0 || tlen > WR_NAME_MAX || key.len - tlen - 1 == 0 ||
        key.len - tlen - 1 > WR_NAME_MAX || wr__queue_find(sh, hash, k, key.len))
        return WR_EPROTO;
    q = wr__queue_new(sh, k, key.len, tlen, hash, &rec->attrs,
                      rec->meta.ptr ? wr_body_new((wr_slice_t){NULL, 0}, rec->meta) : NULL);
    q->qid = rec->qid;
    q->created_ms = rec->created_ms;
    q->next_id = 0;
    c->q = q;
    c->marks.n = c->marks.next = 0;
    err = wr_store_iterate(core->store, q->qid | WR__QID_MARK, 0, 0, visit_mark, &c->marks);
    if (err == WR_OK)
        err = wr_store_iterate(core->store, q->qid, 0, 0, visit_msg, c);
    if (err == WR_OK)
        err = c->err;
    if (err != WR_OK)
        return err;
    /* Ids also come from the clock: keep them above both. */
    q->next_id = WR__MAX(q->next_id, wr__clock_id());
    wr__queue_note_due(sh, q);
    c->max_qid = WR__MAX(c->max_qid, q->qid);
    c->queues++;
    return WR_OK;
}

static void drop_queue(rctx_t *c, wr_bytes_t key, wr_qid_t qid)
{
    char *k = wr__xmalloc(key.len);

    memcpy(k, key.ptr, key.len);
    c->drops = wr__xrealloc(c->drops, (c->ndrops + 3) * sizeof(*c->drops));
    c->drops[c->ndrops++] =
        (wr_store_op_t){.kind = WR_STORE_DEL_RANGE, .q = qid, .seq = 0, .seq_hi = UINT64_MAX};
    c->drops[c->ndrops++] = (wr_store_op_t){
        .kind = WR_STORE_DEL_RANGE, .q = qid | WR__QID_MARK, .seq = 0, .seq_hi = UINT64_MAX};
    c->drops[c->ndrops++] = (wr_store_op_t){.kind = WR_STORE_DEL_META, .key = {k, key.len}};
    c->dropped_queues++;
}

static int visit_queue(void *arg, wr_bytes_t key, wr_bytes_t val)
{
    rctx_t *c = arg;
    wr__qrec_t rec;
    wr_err_t err = wr__rec_queue_parse(&c->u, val, &rec);
    wr_slice_t k = {(const char *)key.ptr + 1, key.len - 1};

    if (err == WR_OK && rec.attrs.exclusive) {
        drop_queue(c, key, rec.qid);
        return 0;
    }
    /* restore_queue reuses the unpacker for messages: rec.meta is copied
     * into the queue's body before that. */
    if (err == WR_OK)
        err = restore_queue(c, k, &rec);
    if (err != WR_OK) {
        const char *nul = memchr(k.ptr, '\0', k.len);
        size_t tl = nul ? (size_t)(nul - (const char *)k.ptr) : k.len;
        wr_log(WR_LOG_ERROR, WR_LOGC_STORE, "unreadable record of queue '%.*s' in tenant '%.*s': %s",
               (int)WR__MIN(k.len - tl - (nul != NULL), (size_t)WR_NAME_MAX),
               (const char *)k.ptr + tl + (nul != NULL), (int)WR__MIN(tl, (size_t)WR_NAME_MAX),
               (const char *)k.ptr, wr_strerror(err));
        c->err = err;
        return 1;
    }
    return 0;
}

static void on_drops_done(void *arg, wr_err_t err)
{
    (void)arg;
    if (err != WR_OK)
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "deleting exclusive queues' records failed: %s",
               wr_strerror(err));
}

wr_err_t wr__recover(wr_core_t *core)
{
    rctx_t c = {.core = core, .err = WR_OK};
    int64_t t0 = wr_now_mono_ms();
    wr_err_t err;

    if (!core->store)
        return WR_OK;
    msgpack_unpacked_init(&c.u);
    err = wr_store_meta_scan(core->store, (wr_bytes_t){"q", 1}, visit_queue, &c);
    msgpack_unpacked_destroy(&c.u);
    free(c.marks.ids);
    if (err == WR_OK)
        err = c.err;
    if (err == WR_OK && c.ndrops)
        err = wr_store_write_batch(core->store, c.drops, c.ndrops, WR_DUR_WAL, on_drops_done,
                                   NULL);
    for (size_t i = 0; i < c.ndrops; i++)
        if (c.drops[i].kind == WR_STORE_DEL_META)
            free((void *)c.drops[i].key.ptr);
    free(c.drops);
    if (err != WR_OK)
        return err;
    if (c.max_qid >= atomic_load(&core->next_qid))
        atomic_store(&core->next_qid, c.max_qid + 1);
    err = wr__topo_recover(core);
    if (err != WR_OK)
        return err;
    wr_log(WR_LOG_INFO, WR_LOGC_STORE,
           "recovered %zu queues and %zu messages in %lld ms (%zu exclusive queues dropped)",
           c.queues, c.messages, (long long)(wr_now_mono_ms() - t0), c.dropped_queues);
    return WR_OK;
}
