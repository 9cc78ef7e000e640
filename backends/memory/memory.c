/*
 * memory.c - the "memory" store: an ordered map per queue plus an ordered
 * metadata map, behind one mutex.
 *
 * Layout: data structures (queue table sorted by qid; per queue a sorted
 * array of {seq, value} with a movable start, so deleting at the head - the
 * common FIFO ack - costs no memmove; the metadata array sorted by key);
 * the ops; the ops table.
 *
 * Visits never run under the mutex: iterate and meta_scan copy a chunk out,
 * unlock, visit it, and resume after the last key seen, so a visitor may
 * call back into the store. done() runs after the batch is applied, on the
 * caller's thread, outside the lock.
 */
#include "memory.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"

#define CHUNK 64

typedef struct ent {
    uint64_t seq;
    size_t len;
    unsigned char *val;
} ent_t;

typedef struct mq {
    wr_qid_t q;
    ent_t *e;
    size_t start, len, cap; /* entries are e[start .. start + len) */
} mq_t;

typedef struct kv {
    unsigned char *key;
    size_t klen;
    unsigned char *val;
    size_t vlen;
} kv_t;

typedef struct mem_store {
    wr_store_t base;
    pthread_mutex_t mu;
    mq_t *qs; /* sorted by q */
    size_t nq, qcap;
    kv_t *meta; /* sorted by key */
    size_t nmeta, metacap;
    uint64_t nmsgs;
    wr_store_stats_t st;
} mem_store_t;

static void *xrealloc(void *p, size_t n)
{
    void *np = realloc(p, n ? n : 1);
    if (!np)
        wr_panic(__FILE__, __LINE__, "out of memory");
    return np;
}

static unsigned char *dup_bytes(wr_bytes_t b)
{
    unsigned char *p = xrealloc(NULL, b.len);
    if (b.len)
        memcpy(p, b.ptr, b.len);
    return p;
}

/* ------------------------------------------------------------------------ */
/* Queues                                                                   */

/* Index of the first queue with q' >= q. */
static size_t q_lower(const mem_store_t *s, wr_qid_t q)
{
    size_t lo = 0, hi = s->nq;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->qs[mid].q < q)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static mq_t *q_get(mem_store_t *s, wr_qid_t q, bool create)
{
    size_t i = q_lower(s, q);

    if (i < s->nq && s->qs[i].q == q)
        return &s->qs[i];
    if (!create)
        return NULL;
    if (s->nq == s->qcap) {
        s->qcap = s->qcap ? s->qcap * 2 : 8;
        s->qs = xrealloc(s->qs, s->qcap * sizeof(*s->qs));
    }
    memmove(&s->qs[i + 1], &s->qs[i], (s->nq - i) * sizeof(*s->qs));
    s->qs[i] = (mq_t){.q = q};
    s->nq++;
    return &s->qs[i];
}

static void q_drop_if_empty(mem_store_t *s, mq_t *mq)
{
    size_t i = (size_t)(mq - s->qs);

    if (mq->len)
        return;
    free(mq->e);
    memmove(&s->qs[i], &s->qs[i + 1], (s->nq - i - 1) * sizeof(*s->qs));
    s->nq--;
}

/* Relative index of the first entry with seq' >= seq. */
static size_t e_lower(const mq_t *mq, uint64_t seq)
{
    size_t lo = 0, hi = mq->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mq->e[mq->start + mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void e_put(mem_store_t *s, mq_t *mq, uint64_t seq, wr_bytes_t val)
{
    size_t i = e_lower(mq, seq);
    ent_t *e;

    if (i < mq->len && mq->e[mq->start + i].seq == seq) {
        e = &mq->e[mq->start + i];
        free(e->val);
        e->val = dup_bytes(val);
        e->len = val.len;
        return;
    }
    if (mq->start + mq->len == mq->cap) {
        /* Reuse the room freed at the head before growing. */
        if (mq->start && mq->start >= mq->cap / 4) {
            memmove(mq->e, mq->e + mq->start, mq->len * sizeof(*mq->e));
            mq->start = 0;
        } else {
            mq->cap = mq->cap ? mq->cap * 2 : 16;
            mq->e = xrealloc(mq->e, mq->cap * sizeof(*mq->e));
        }
    }
    e = &mq->e[mq->start + i];
    memmove(e + 1, e, (mq->len - i) * sizeof(*e));
    *e = (ent_t){seq, val.len, dup_bytes(val)};
    mq->len++;
    s->nmsgs++;
}

/* Removes entries [i, j) (relative), moving the shorter side. */
static void e_erase(mem_store_t *s, mq_t *mq, size_t i, size_t j)
{
    size_t k = j - i;

    if (!k)
        return;
    for (size_t x = i; x < j; x++)
        free(mq->e[mq->start + x].val);
    if (i < mq->len - j) {
        memmove(&mq->e[mq->start + k], &mq->e[mq->start], i * sizeof(*mq->e));
        mq->start += k;
    } else {
        memmove(&mq->e[mq->start + i], &mq->e[mq->start + j], (mq->len - j) * sizeof(*mq->e));
    }
    mq->len -= k;
    s->nmsgs -= k;
    if (!mq->len)
        mq->start = 0;
}

static void e_del_range(mem_store_t *s, wr_qid_t q, uint64_t lo, uint64_t hi)
{
    mq_t *mq = q_get(s, q, false);
    size_t i, j;

    if (!mq || lo > hi)
        return;
    i = e_lower(mq, lo);
    j = hi == UINT64_MAX ? mq->len : e_lower(mq, hi + 1);
    e_erase(s, mq, i, j);
    q_drop_if_empty(s, mq);
}

/* ------------------------------------------------------------------------ */
/* Metadata                                                                 */

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static size_t m_lower(const mem_store_t *s, const void *key, size_t klen)
{
    size_t lo = 0, hi = s->nmeta;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(s->meta[mid].key, s->meta[mid].klen, key, klen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool m_is(const kv_t *kv, wr_bytes_t key)
{
    return kv->klen == key.len && memcmp(kv->key, key.ptr, key.len) == 0;
}

static void m_put(mem_store_t *s, wr_bytes_t key, wr_bytes_t val)
{
    size_t i = m_lower(s, key.ptr, key.len);

    if (i < s->nmeta && m_is(&s->meta[i], key)) {
        free(s->meta[i].val);
        s->meta[i].val = dup_bytes(val);
        s->meta[i].vlen = val.len;
        return;
    }
    if (s->nmeta == s->metacap) {
        s->metacap = s->metacap ? s->metacap * 2 : 16;
        s->meta = xrealloc(s->meta, s->metacap * sizeof(*s->meta));
    }
    memmove(&s->meta[i + 1], &s->meta[i], (s->nmeta - i) * sizeof(*s->meta));
    s->meta[i] = (kv_t){dup_bytes(key), key.len, dup_bytes(val), val.len};
    s->nmeta++;
}

static void m_del(mem_store_t *s, wr_bytes_t key)
{
    size_t i = m_lower(s, key.ptr, key.len);

    if (i >= s->nmeta || !m_is(&s->meta[i], key))
        return;
    free(s->meta[i].key);
    free(s->meta[i].val);
    memmove(&s->meta[i], &s->meta[i + 1], (s->nmeta - i - 1) * sizeof(*s->meta));
    s->nmeta--;
}

/* ------------------------------------------------------------------------ */
/* Ops                                                                      */

static wr_err_t mem_open(const wr_store_cfg_t *cfg, wr_store_t **out)
{
    mem_store_t *s = calloc(1, sizeof(*s));

    (void)cfg;
    if (!s)
        return WR_ENOMEM;
    s->base.ops = &wr_store_memory_ops;
    pthread_mutex_init(&s->mu, NULL);
    *out = &s->base;
    return WR_OK;
}

static void mem_close(wr_store_t *st)
{
    mem_store_t *s = (mem_store_t *)st;

    if (!s)
        return;
    for (size_t i = 0; i < s->nq; i++) {
        for (size_t j = 0; j < s->qs[i].len; j++)
            free(s->qs[i].e[s->qs[i].start + j].val);
        free(s->qs[i].e);
    }
    free(s->qs);
    for (size_t i = 0; i < s->nmeta; i++) {
        free(s->meta[i].key);
        free(s->meta[i].val);
    }
    free(s->meta);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static bool op_ok(const wr_store_op_t *op)
{
    switch (op->kind) {
    case WR_STORE_PUT_MSG:
    case WR_STORE_DEL_MSG:
    case WR_STORE_DEL_RANGE:
        return op->val.len == 0 || op->val.ptr;
    case WR_STORE_PUT_META:
    case WR_STORE_DEL_META:
        return (op->key.len == 0 || op->key.ptr) && (op->val.len == 0 || op->val.ptr);
    }
    return false;
}

static wr_err_t mem_write_batch(wr_store_t *st, const wr_store_op_t *ops, size_t n,
                                wr_durability_t dur, wr_store_done_cb done, void *arg)
{
    mem_store_t *s = (mem_store_t *)st;
    uint64_t bytes = 0;

    /* All or nothing: refuse the batch before applying any of it. */
    for (size_t i = 0; i < n; i++)
        if (!op_ok(&ops[i]))
            return WR_EINVAL;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        const wr_store_op_t *op = &ops[i];
        switch (op->kind) {
        case WR_STORE_PUT_MSG:
            e_put(s, q_get(s, op->q, true), op->seq, op->val);
            bytes += op->val.len + 16;
            break;
        case WR_STORE_DEL_MSG:
            e_del_range(s, op->q, op->seq, op->seq);
            break;
        case WR_STORE_DEL_RANGE:
            e_del_range(s, op->q, op->seq, op->seq_hi);
            break;
        case WR_STORE_PUT_META:
            m_put(s, op->key, op->val);
            bytes += op->key.len + op->val.len;
            break;
        case WR_STORE_DEL_META:
            m_del(s, op->key);
            break;
        }
    }
    s->st.writes++;
    if (dur == WR_DUR_SYNC)
        s->st.syncs++;
    s->st.bytes_written += bytes;
    pthread_mutex_unlock(&s->mu);
    if (done)
        done(arg, WR_OK);
    return WR_OK;
}

static wr_err_t mem_iterate(wr_store_t *st, wr_qid_t q, uint64_t from, size_t max,
                            wr_store_visit_cb visit, void *arg)
{
    mem_store_t *s = (mem_store_t *)st;
    size_t seen = 0;
    ent_t chunk[CHUNK];

    for (;;) {
        size_t n = 0;
        mq_t *mq;

        pthread_mutex_lock(&s->mu);
        mq = q_get(s, q, false);
        if (mq) {
            for (size_t i = e_lower(mq, from); i < mq->len && n < CHUNK; i++) {
                const ent_t *e = &mq->e[mq->start + i];
                chunk[n++] = (ent_t){e->seq, e->len, dup_bytes((wr_bytes_t){e->val, e->len})};
            }
        }
        pthread_mutex_unlock(&s->mu);

        bool last = n < CHUNK, stop = false;
        for (size_t i = 0; i < n; i++) {
            if (!stop && max && seen == max)
                stop = true;
            if (!stop && visit(arg, chunk[i].seq, (wr_bytes_t){chunk[i].val, chunk[i].len}))
                stop = true;
            if (!stop)
                seen++;
            free(chunk[i].val);
        }
        /* A short chunk was the end; otherwise resume after the last seq. */
        if (last || stop || (max && seen >= max) || chunk[n - 1].seq == UINT64_MAX)
            return WR_OK;
        from = chunk[n - 1].seq + 1;
    }
}

static wr_err_t mem_meta_scan(wr_store_t *st, wr_bytes_t prefix, wr_store_meta_visit_cb visit,
                              void *arg)
{
    mem_store_t *s = (mem_store_t *)st;
    kv_t chunk[CHUNK];
    unsigned char *after = NULL; /* resume strictly after this key */
    size_t after_len = 0;

    for (;;) {
        size_t n = 0, i;
        bool last, stop = false;

        pthread_mutex_lock(&s->mu);
        if (after) {
            i = m_lower(s, after, after_len);
            if (i < s->nmeta && key_cmp(s->meta[i].key, s->meta[i].klen, after, after_len) == 0)
                i++;
        } else {
            i = m_lower(s, prefix.ptr, prefix.len);
        }
        for (; i < s->nmeta && n < CHUNK; i++) {
            const kv_t *kv = &s->meta[i];
            if (kv->klen < prefix.len || memcmp(kv->key, prefix.ptr, prefix.len) != 0)
                break;
            chunk[n++] = (kv_t){dup_bytes((wr_bytes_t){kv->key, kv->klen}), kv->klen,
                                dup_bytes((wr_bytes_t){kv->val, kv->vlen}), kv->vlen};
        }
        pthread_mutex_unlock(&s->mu);

        last = n < CHUNK;
        for (i = 0; i < n; i++) {
            if (!stop && visit(arg, (wr_bytes_t){chunk[i].key, chunk[i].klen},
                               (wr_bytes_t){chunk[i].val, chunk[i].vlen}))
                stop = true;
            free(chunk[i].val);
            if (i + 1 < n)
                free(chunk[i].key);
        }
        free(after);
        after = n ? chunk[n - 1].key : NULL;
        after_len = n ? chunk[n - 1].klen : 0;
        if (last || stop) {
            free(after);
            return WR_OK;
        }
    }
}

static void mem_stats(wr_store_t *st, wr_store_stats_t *out)
{
    mem_store_t *s = (mem_store_t *)st;

    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->keys = s->nmsgs + s->nmeta;
    pthread_mutex_unlock(&s->mu);
}

const wr_store_ops_t wr_store_memory_ops = {
    .abi = WR_STORE_ABI,
    .name = "memory",
    .open = mem_open,
    .close = mem_close,
    .write_batch = mem_write_batch,
    .iterate = mem_iterate,
    .meta_scan = mem_meta_scan,
    .stats = mem_stats,
};
