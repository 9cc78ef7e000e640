/*
 * deliver.c - consumers, basic.get and acknowledgements.
 *
 * Layout: the consumer registry (every connection), queue names, frames
 * written into the connection's scratch buffer, unsettled deliveries (a
 * ring by delivery tag), settling (ack/nack/reject/recover, gathered for
 * the core), consumers (pump, deliver, cancel), basic.get, channel end.
 *
 * Consumers are core subscriptions (wr_subscribe): the shard pushes
 * batches while the consumer has credit (its prefetch; a settled delivery
 * gives its slot back with wr_sub_credit, gathered per read); a full output
 * or channel.flow pauses the subscription (wr_sub_pause). basic.cancel
 * unsubscribes and leaves the unacked messages with the channel; a channel
 * that ends unsubscribes with requeue. The core counts these consumers,
 * checks exclusivity, deletes auto_delete queues, and ends a subscription
 * whose queue is deleted (basic.cancel to the client).
 *
 * A channel with a channel-wide prefetch (basic.qos global=true, as kombu
 * and Celery send) keeps its consumers on claims, which honour a limit
 * shared by several consumers exactly. A claim consumer
 * keeps at most one claim request out, asking for as many messages as its
 * credit allows (prefetch minus unsettled; no limit with no_ack). An
 * acknowledging consumer holds its claims (owner_hold, no expiry); each
 * settled delivery is a wr_ack (ack) or wr_release (requeue in place with
 * redelivered set, or reject: dead-letter) of its message under its claim,
 * gathered into one call per run. A no_ack consumer pops messages (taken
 * and deleted in one step) while there are some, and parks a held claim
 * (long-poll) when the queue is empty; what that claim brings is delivered
 * and acked at once. A channel that ends releases its held claims whole.
 * A parked claim that comes back empty early makes the consumer look at the
 * queue: if it is gone, the consumer is cancelled (basic.cancel to clients
 * that announced consumer_cancel_notify).
 *
 * Deliveries of one claim answer are encoded into the connection's scratch
 * buffer and added to the output at once. When the output backs up
 * (WR_AMQP_OUT_HIGH) consumers stop asking until it drains.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "../../core/log.h"
#include "amqp_int.h"

#define CLAIM_MAX 1000      /* messages per claim (the core's default maximum) */
#define CLAIM_WAIT_MS 15000 /* a parked claim's wait (the core allows 20 s) */
#define CLAIM_TTL_MS 60000  /* required by the core, unused with owner_hold */

enum { SETTLE_ACK = 0, SETTLE_REQUEUE = 1, SETTLE_DROP = 2 };

typedef struct qname {
    unsigned refs;
    uint8_t len;
    char name[WR_NAME_MAX + 1];
} qname_t;

struct wr_amqp_consumer {
    wr_amqp_consumer_t *next;
    wr_amqp_conn_t *c;
    wr_amqp_chan_t *ch; /* NULL once cancelled or the channel is gone */
    qname_t *q;
    uint8_t tag_len;
    char tag[WR_NAME_MAX + 1];
    bool no_ack, exclusive, auto_delete;
    bool reply;   /* the channel's direct reply-to consumer (replyto.c) */
    bool pending; /* a claim request is out */
    bool idle;    /* no_ack: the queue was empty, park a claim */
    bool waited;  /* the request out is a parked claim */
    uint16_t prefetch;
    uint32_t unacked;
    /* A core subscription (wr_subscribe) instead of claims. */
    bool sub;
    bool sub_live; /* subscribed (or subscribing), until unsubscribed or ended;
                      holds a connection reference */
    bool paused;   /* wr_sub_pause(true) sent */
    uint64_t sub_id;
    uint32_t credit_due;       /* settled deliveries not yet given back as credit */
    wr_amqp_claim_t *subclaim; /* the subscription's claim (pinned) */
    wr_amqp_op_t *op;          /* basic.consume waiting for wr_subscribe */
};

struct wr_amqp_claim {
    wr_amqp_claim_t *next, *prev;
    uint64_t id;
    qname_t *q;
    uint32_t outstanding; /* deliveries of it not settled yet */
    bool pinned;          /* a live subscription's: kept at 0 outstanding */
};

struct wr_amqp_unacked {
    uint64_t msg_id;
    wr_amqp_claim_t *claim;   /* NULL: a placeholder (no_ack delivery) */
    wr_amqp_consumer_t *cons; /* NULL for basic.get */
    bool settled;
};

/* A gathered core call: ack, requeue or reject (dead-letter) a message
 * under a claim, or release a whole claim. */
enum { OP_ACK = 0, OP_REQUEUE, OP_REJECT, OP_RELEASE_CLAIM };

typedef struct settle_op {
    uint8_t kind;
    qname_t *q;
    uint64_t claim_id, msg_id;
} settle_op_t;

struct wr_amqp_settle {
    settle_op_t *ops;
    size_t n, cap;
};

static wr_slice_t tenant_of(const wr_amqp_conn_t *c)
{
    wr_slice_t s = {c->tenant, c->tenant_len};
    return s;
}

static uint16_t min16(uint32_t a, uint32_t b)
{
    return (uint16_t)(a < b ? a : b);
}

static bool bytes_eq(const char *a, size_t alen, amqp_bytes_t b)
{
    return alen == b.len && (alen == 0 || memcmp(a, b.bytes, alen) == 0);
}

/* ------------------------------------------------------------------------ */
/* Registry: consumers by queue over every connection                      */

typedef struct wr_amqp_reg {
    struct wr_amqp_reg *next;
    uint32_t count;   /* every consumer (exclusivity) */
    uint32_t claimed; /* consumers on claims: the core does not count them */
    bool exclusive;
    size_t tlen, qlen;
    char key[]; /* tenant then queue */
} reg_t;

static reg_t **reg_find(wr_amqp_env_t *env, wr_slice_t t, wr_slice_t q)
{
    reg_t **pp = &env->reg;

    for (; *pp; pp = &(*pp)->next) {
        reg_t *r = *pp;
        if (r->tlen == t.len && r->qlen == q.len && memcmp(r->key, t.ptr, t.len) == 0 &&
            memcmp(r->key + t.len, q.ptr, q.len) == 0)
            return pp;
    }
    return pp;
}

/* WR_EDENIED if exclusivity forbids another consumer. */
static wr_err_t reg_add(wr_amqp_env_t *env, wr_slice_t t, wr_slice_t q, bool exclusive,
                        bool claimed)
{
    reg_t **pp, *r;
    wr_err_t err = WR_OK;

    pthread_mutex_lock(&env->reg_mu);
    pp = reg_find(env, t, q);
    r = *pp;
    if (r && r->count > 0 && (r->exclusive || exclusive)) {
        err = WR_EDENIED;
    } else {
        if (!r) {
            r = calloc(1, sizeof(*r) + t.len + q.len);
            if (!r)
                wr_panic(__FILE__, __LINE__, "out of memory");
            r->tlen = t.len;
            r->qlen = q.len;
            memcpy(r->key, t.ptr, t.len);
            memcpy(r->key + t.len, q.ptr, q.len);
            *pp = r;
        }
        r->count++;
        r->claimed += claimed;
        r->exclusive = exclusive;
    }
    pthread_mutex_unlock(&env->reg_mu);
    return err;
}

/* Returns the consumers left. */
static uint32_t reg_del(wr_amqp_env_t *env, wr_slice_t t, wr_slice_t q, bool claimed)
{
    reg_t **pp, *r;
    uint32_t left = 0;

    pthread_mutex_lock(&env->reg_mu);
    pp = reg_find(env, t, q);
    r = *pp;
    if (r) {
        r->count--;
        r->claimed -= claimed;
        left = r->count;
        if (r->count == 0) {
            *pp = r->next;
            free(r);
        }
    }
    pthread_mutex_unlock(&env->reg_mu);
    return left;
}

uint32_t wr__amqp_reg_count(wr_amqp_env_t *env, wr_slice_t tenant, wr_slice_t queue);
uint32_t wr__amqp_reg_count(wr_amqp_env_t *env, wr_slice_t tenant, wr_slice_t queue)
{
    reg_t *r;
    uint32_t n;

    pthread_mutex_lock(&env->reg_mu);
    r = *reg_find(env, tenant, queue);
    n = r ? r->claimed : 0;
    pthread_mutex_unlock(&env->reg_mu);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Queue names                                                              */

static qname_t *qname_new(amqp_bytes_t b)
{
    qname_t *q = malloc(sizeof(*q));

    if (!q)
        wr_panic(__FILE__, __LINE__, "out of memory");
    q->refs = 1;
    q->len = (uint8_t)(b.len > WR_NAME_MAX ? WR_NAME_MAX : b.len);
    if (q->len)
        memcpy(q->name, b.bytes, q->len);
    q->name[q->len] = '\0';
    return q;
}

static qname_t *qname_ref(qname_t *q)
{
    q->refs++;
    return q;
}

static void qname_unref(qname_t *q)
{
    if (q && --q->refs == 0)
        free(q);
}

static wr_slice_t qslice(const qname_t *q)
{
    wr_slice_t s = {q->name, q->len};
    return s;
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                   */

uint8_t *wr__amqp_scratch(wr_amqp_conn_t *c, size_t used, size_t n)
{
    if (used + n > c->scratch_cap) {
        size_t cap = c->scratch_cap ? c->scratch_cap : 64 * 1024;
        uint8_t *ns;
        while (cap < used + n)
            cap *= 2;
        ns = realloc(c->scratch, cap);
        if (!ns)
            wr_panic(__FILE__, __LINE__, "out of memory");
        c->scratch = ns;
        c->scratch_cap = cap;
    }
    return c->scratch + used;
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    return put32(p + 4, (uint32_t)v);
}

static uint8_t *putstr(uint8_t *p, const void *s, size_t n)
{
    *p++ = (uint8_t)n;
    if (n)
        memcpy(p, s, n);
    return p + n;
}

static uint8_t *frame_open(uint8_t *p, uint8_t type, uint16_t ch)
{
    p[0] = type;
    put16(p + 1, ch);
    return p + 7; /* size filled by frame_close */
}

static uint8_t *frame_close(uint8_t *start, uint8_t *end)
{
    put32(start + 3, (uint32_t)(end - start - 7));
    *end = AMQP_FRAME_END;
    return end + 1;
}

size_t wr__amqp_put_content(wr_amqp_conn_t *c, size_t used, uint16_t ch, const wr_body_t *b,
                            bool persistent)
{
    wr_slice_t props;
    size_t chunk = c->frame_max - WR_AMQP_FRAME_OVERHEAD;
    const uint8_t *body = wr_body_bytes(b);
    size_t left = b->body_len, frames = left ? (left + chunk - 1) / chunk : 0;
    uint8_t *p, *start;

    if (b->props_len >= 3 && b->data[0] == WR_AMQP_PROPS_091) {
        props.ptr = b->data + 1;
        props.len = b->props_len - 1;
    } else {
        props = wr__amqp_props_default(persistent);
    }
    p = start = wr__amqp_scratch(c, used, 8 + 12 + props.len + frames * 8 + left);
    p = frame_open(p, AMQP_FRAME_HEADER, ch);
    p = put16(p, AMQP_BASIC_CLASS);
    p = put16(p, 0);
    p = put64(p, b->body_len);
    memcpy(p, props.ptr, props.len);
    p = frame_close(start, p + props.len);
    while (left > 0) {
        size_t n = left < chunk ? left : chunk;
        uint8_t *f = p;
        p = frame_open(p, AMQP_FRAME_BODY, ch);
        memcpy(p, body, n);
        p = frame_close(f, p + n);
        body += n;
        left -= n;
    }
    return used + (size_t)(p - start);
}

/* basic.deliver, then the content. */
static size_t put_deliver(wr_amqp_conn_t *c, size_t used, uint16_t ch,
                          const wr_amqp_consumer_t *cons, uint64_t tag, const wr_msg_view_t *m)
{
    wr_slice_t ex = m->exchange, rk = m->routing_key;
    uint8_t *p, *start;

    if (ex.len == 0 && rk.len == 0)
        rk = qslice(cons->q); /* the default exchange */
    p = start =
        wr__amqp_scratch(c, used, 8 + 4 + 1 + cons->tag_len + 8 + 1 + 1 + ex.len + 1 + rk.len);
    p = frame_open(p, AMQP_FRAME_METHOD, ch);
    p = put32(p, AMQP_BASIC_DELIVER_METHOD);
    p = putstr(p, cons->tag, cons->tag_len);
    p = put64(p, tag);
    *p++ = m->redelivered ? 1 : 0;
    p = putstr(p, ex.ptr, ex.len);
    p = putstr(p, rk.ptr, rk.len);
    p = frame_close(start, p);
    return wr__amqp_put_content(c, used + (size_t)(p - start), ch, m->body, m->persistent);
}

/* ------------------------------------------------------------------------ */
/* Unsettled deliveries                                                     */

static wr_amqp_unacked_t *un_at(wr_amqp_chan_t *ch, uint64_t tag)
{
    if (tag < ch->un_base || tag - ch->un_base >= ch->un_len)
        return NULL;
    return &ch->un[(ch->un_head + (tag - ch->un_base)) % ch->un_cap];
}

static void un_push(wr_amqp_chan_t *ch, uint64_t tag, const wr_amqp_unacked_t *u)
{
    if (ch->un_len == 0) {
        ch->un_base = tag;
        ch->un_head = 0;
    }
    if (ch->un_len == ch->un_cap) {
        uint32_t cap = ch->un_cap ? ch->un_cap * 2 : 64;
        wr_amqp_unacked_t *nu = malloc(cap * sizeof(*nu));
        if (!nu)
            wr_panic(__FILE__, __LINE__, "out of memory");
        for (uint32_t i = 0; i < ch->un_len; i++)
            nu[i] = ch->un[(ch->un_head + i) % ch->un_cap];
        free(ch->un);
        ch->un = nu;
        ch->un_cap = cap;
        ch->un_head = 0;
    }
    ch->un[(ch->un_head + ch->un_len) % ch->un_cap] = *u;
    ch->un_len++;
}

static void un_trim(wr_amqp_chan_t *ch)
{
    while (ch->un_len > 0 && ch->un[ch->un_head].settled) {
        ch->un_head = (ch->un_head + 1) % ch->un_cap;
        ch->un_len--;
        ch->un_base++;
    }
}

static void claim_unlink(wr_amqp_chan_t *ch, wr_amqp_claim_t *cl)
{
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        ch->claims = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
}

static wr_amqp_claim_t *claim_new(wr_amqp_chan_t *ch, uint64_t id, qname_t *q, uint32_t n)
{
    wr_amqp_claim_t *cl = calloc(1, sizeof(*cl));

    if (!cl)
        wr_panic(__FILE__, __LINE__, "out of memory");
    cl->id = id;
    cl->q = qname_ref(q);
    cl->outstanding = n;
    cl->next = ch->claims;
    if (ch->claims)
        ch->claims->prev = cl;
    ch->claims = cl;
    return cl;
}

static void settle_push(wr_amqp_conn_t *c, uint8_t kind, qname_t *q, uint64_t claim_id,
                        uint64_t msg_id)
{
    wr_amqp_settle_t *s = c->settle;

    if (!s) {
        s = c->settle = calloc(1, sizeof(*s));
        if (!s)
            wr_panic(__FILE__, __LINE__, "out of memory");
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        settle_op_t *no = realloc(s->ops, cap * sizeof(*no));
        if (!no)
            wr_panic(__FILE__, __LINE__, "out of memory");
        s->ops = no;
        s->cap = cap;
    }
    s->ops[s->n].kind = kind;
    s->ops[s->n].q = qname_ref(q);
    s->ops[s->n].claim_id = claim_id;
    s->ops[s->n].msg_id = msg_id;
    s->n++;
}

static void maybe_free_consumer(wr_amqp_consumer_t *cons);
static void pump(wr_amqp_consumer_t *cons);

/* One delivery settled. */
static void settle_one(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, wr_amqp_unacked_t *u, int kind)
{
    wr_amqp_claim_t *cl = u->claim;

    u->settled = true;
    ch->unacked_n--;
    settle_push(c,
                kind == SETTLE_ACK       ? OP_ACK
                : kind == SETTLE_REQUEUE ? OP_REQUEUE
                                         : OP_REJECT,
                cl->q, cl->id, u->msg_id);
    if (u->cons) {
        wr_amqp_consumer_t *cons = u->cons;
        cons->unacked--;
        if (cons->sub && cons->ch && cons->prefetch) {
            cons->credit_due++; /* a prefetch slot is free again */
            c->credit_pending = true;
        }
        if (!cons->ch)
            maybe_free_consumer(cons);
    }
    if (--cl->outstanding == 0 && !cl->pinned) {
        /* The core drops a held claim left with nothing. */
        claim_unlink(ch, cl);
        qname_unref(cl->q);
        free(cl);
    }
}

static void on_settled(void *arg, const wr_count_res_t *res)
{
    wr_amqp_env_t *env = arg;

    (void)res; /* a claim already released (owner gone): nothing to do */
    atomic_fetch_sub_explicit(&env->inflight, 1, memory_order_relaxed);
}

void wr__amqp_settle_flush(wr_amqp_conn_t *c)
{
    wr_amqp_settle_t *s = c->settle;
    wr_core_t *core = c->env->core;
    uint64_t ids[WR_BATCH_MAX];
    size_t i = 0;

    if (!s)
        return;
    while (i < s->n) {
        settle_op_t *op = &s->ops[i];
        size_t n = 0, j = i;
        wr_err_t err = WR_OK;

        /* A run of one kind under one claim: one call. */
        while (j < s->n && n < WR_BATCH_MAX && s->ops[j].kind == op->kind && s->ops[j].q == op->q &&
               s->ops[j].claim_id == op->claim_id)
            ids[n++] = s->ops[j++].msg_id;
        if (core) {
            atomic_fetch_add_explicit(&c->env->inflight, 1, memory_order_relaxed);
            switch (op->kind) {
            case OP_ACK:
                err = wr_ack(core, tenant_of(c), qslice(op->q), op->claim_id, ids, n, c->loop,
                             on_settled, c->env);
                break;
            case OP_REQUEUE:
            case OP_REJECT:
                err = wr_release(core, tenant_of(c), qslice(op->q), op->claim_id, ids, n,
                                 op->kind == OP_REQUEUE ? WR_REL_REQUEUE : WR_REL_DEADLETTER,
                                 c->loop, on_settled, c->env);
                break;
            default:
                j = i + 1; /* one claim per op */
                err = wr_claim_release(core, tenant_of(c), qslice(op->q), op->claim_id, c->loop,
                                       on_settled, c->env);
                break;
            }
            if (err != WR_OK)
                atomic_fetch_sub_explicit(&c->env->inflight, 1, memory_order_relaxed);
        }
        for (; i < j; i++)
            qname_unref(s->ops[i].q);
    }
    s->n = 0;
    if (c->credit_pending && core) {
        /* After the acks: subscriptions get their freed prefetch slots. */
        c->credit_pending = false;
        for (uint32_t k = 0; k < c->chans_cap; k++) {
            wr_amqp_chan_t *ch = c->chans[k];
            for (wr_amqp_consumer_t *cons = ch ? ch->consumers : NULL; cons; cons = cons->next) {
                if (!cons->sub || !cons->credit_due || !cons->sub_id)
                    continue;
                wr_sub_credit(core, tenant_of(c), qslice(cons->q), cons->sub_id, cons->credit_due,
                              NULL, NULL, NULL);
                cons->credit_due = 0;
            }
        }
    }
}

/* Returns false (406 raised) for an unknown tag. */
bool wr__amqp_tx_settle(wr_amqp_chan_t *ch, amqp_method_number_t id, uint64_t tag, bool multiple,
                        int kind);

bool wr__amqp_settle(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id, uint64_t tag,
                     bool multiple, int kind)
{
    wr_amqp_unacked_t *u;
    uint64_t from, to;

    if (multiple && tag == 0) {
        from = ch->un_base;
        to = ch->un_base + ch->un_len; /* everything */
    } else {
        u = un_at(ch, tag);
        if (!u || u->settled || !u->claim) {
            wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, id, "unknown delivery tag %llu",
                                (unsigned long long)tag);
            return false;
        }
        from = multiple ? ch->un_base : tag;
        to = tag + 1;
    }
    for (uint64_t t = from; t < to; t++) {
        u = un_at(ch, t);
        if (u && !u->settled && u->claim)
            settle_one(c, ch, u, kind);
    }
    un_trim(ch);
    /* Credit came back. */
    for (wr_amqp_consumer_t *cons = ch->consumers; cons; cons = cons->next)
        pump(cons);
    return true;
}

static void settle_method(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id,
                          uint64_t tag, bool multiple, int kind)
{
    if (ch->tx && wr__amqp_tx_settle(ch, id, tag, multiple, kind))
        return;
    wr__amqp_settle(c, ch, id, tag, multiple, kind);
}

void wr__amqp_on_basic_ack(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_basic_ack_t *m = call->args;
    settle_method(c, ch, call->id, m->delivery_tag, m->multiple, SETTLE_ACK);
}

void wr__amqp_on_basic_nack(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_basic_nack_t *m = call->args;
    settle_method(c, ch, call->id, m->delivery_tag, m->multiple,
                  m->requeue ? SETTLE_REQUEUE : SETTLE_DROP);
}

void wr__amqp_on_basic_reject(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_basic_reject_t *m = call->args;
    settle_method(c, ch, call->id, m->delivery_tag, false,
                  m->requeue ? SETTLE_REQUEUE : SETTLE_DROP);
}

static void recover(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call, bool requeue,
                    bool answer)
{
    amqp_basic_recover_ok_t ok = {0};

    if (!requeue) {
        wr__amqp_conn_error(c, AMQP_NOT_IMPLEMENTED, call->id, "requeue=false");
        return;
    }
    if (ch->un_len > 0)
        wr__amqp_settle(c, ch, call->id, 0, true, SETTLE_REQUEUE);
    wr__amqp_settle_flush(c);
    if (answer)
        wr__amqp_send(c, ch->id, AMQP_BASIC_RECOVER_OK_METHOD, &ok);
}

void wr__amqp_on_basic_recover(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_basic_recover_t *m = call->args;
    recover(c, ch, call, m->requeue, true);
}

void wr__amqp_on_basic_recover_async(wr_amqp_conn_t *c, wr_amqp_chan_t *ch,
                                     const wr_amqp_call_t *call)
{
    const amqp_basic_recover_async_t *m = call->args;
    recover(c, ch, call, m->requeue, false);
}

void wr__amqp_on_basic_qos(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_basic_qos_t *m = call->args;
    amqp_basic_qos_ok_t ok = {0};

    if (m->prefetch_size != 0) {
        wr__amqp_conn_error(c, AMQP_NOT_IMPLEMENTED, call->id, "prefetch_size!=0 (%u)",
                            m->prefetch_size);
        return;
    }
    if (m->global)
        ch->prefetch_global = m->prefetch_count;
    else
        ch->prefetch = m->prefetch_count;
    wr__amqp_send(c, ch->id, AMQP_BASIC_QOS_OK_METHOD, &ok);
    for (wr_amqp_consumer_t *cons = ch->consumers; cons; cons = cons->next)
        pump(cons);
}

/* ------------------------------------------------------------------------ */
/* Consumers                                                                */

static void maybe_free_consumer(wr_amqp_consumer_t *cons)
{
    if (cons->ch || cons->pending || cons->unacked > 0 || cons->sub_live)
        return;
    qname_unref(cons->q);
    free(cons);
}

static void on_unsubscribed(void *arg, const wr_count_res_t *res)
{
    wr_amqp_consumer_t *cons = arg;
    wr_amqp_conn_t *c = cons->c;

    (void)res;
    cons->sub_live = false;
    maybe_free_consumer(cons);
    atomic_fetch_sub_explicit(&c->env->inflight, 1, memory_order_relaxed);
    wr__amqp_conn_unref(c); /* the subscription's */
}

/* Ends a live subscription: requeue (channel gone) or leave its unacked
 * messages with the channel (basic.cancel). The consumer lives until the
 * core answers: deliveries posted before the answer still find it. Never
 * frees the consumer itself: the caller ends with maybe_free_consumer(),
 * which frees it at once only if the core could not be asked (shutdown). */
static void sub_stop(wr_amqp_conn_t *c, wr_amqp_consumer_t *cons, bool requeue)
{
    if (!cons->sub_live || !cons->sub_id)
        return;
    if (wr_unsubscribe(c->env->core, tenant_of(c), qslice(cons->q), cons->sub_id, requeue, c->loop,
                       on_unsubscribed, cons) == WR_OK) {
        atomic_fetch_add_explicit(&c->env->inflight, 1, memory_order_relaxed);
        return;
    }
    cons->sub_live = false;
    wr__amqp_conn_unref(c); /* the subscription's */
}

static void on_autodeleted(void *arg, const wr_count_res_t *res)
{
    on_settled(arg, res);
}

/* Takes the consumer off its channel (it lives on while claims are out or
 * deliveries unsettled). */
static void consumer_end(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, wr_amqp_consumer_t *cons,
                         bool requeue)
{
    wr_amqp_consumer_t **pp = &ch->consumers;

    while (*pp && *pp != cons)
        pp = &(*pp)->next;
    if (*pp)
        *pp = cons->next;
    ch->nconsumers--;
    if (cons->reply)
        ch->reply_len = 0; /* its queue goes with it (auto_delete) */
    cons->ch = NULL;
    cons->next = NULL;
    if (cons->subclaim) {
        wr_amqp_claim_t *cl = cons->subclaim;
        cons->subclaim = NULL;
        cl->pinned = false;
        if (cl->outstanding == 0) {
            claim_unlink(ch, cl);
            qname_unref(cl->q);
            free(cl);
        }
    }
    if (cons->sub) {
        /* The core keeps its own consumer count and deletes auto_delete
         * queues itself. */
        reg_del(c->env, tenant_of(c), qslice(cons->q), false);
        sub_stop(c, cons, requeue);
    } else if (reg_del(c->env, tenant_of(c), qslice(cons->q), true) == 0 && cons->auto_delete &&
               c->env->core) {
        /* auto_delete: the queue goes with its last consumer (the core will
         * do this itself once consumers are its subscriptions). */
        atomic_fetch_add_explicit(&c->env->inflight, 1, memory_order_relaxed);
        if (wr_queue_delete_as(c->env->core, tenant_of(c), qslice(cons->q), WR_DEL_IF_NO_CONSUMERS,
                               c->id, c->loop, on_autodeleted, c->env) != WR_OK)
            atomic_fetch_sub_explicit(&c->env->inflight, 1, memory_order_relaxed);
    }
    maybe_free_consumer(cons);
}

static void on_claimed(void *arg, const wr_msgs_res_t *res);
static void on_gone_check(void *arg, const wr_queue_declare_res_t *res);
static void sub_flow(wr_amqp_consumer_t *cons);
static void on_sub_deliver(void *arg, const wr_deliveries_t *b);
static void on_sub_end(void *arg, uint64_t sub_id, wr_err_t why);
/* The consumer joins its channel, and the client hears consume-ok. */
static void consumer_attach(wr_amqp_consumer_t *cons, wr_amqp_chan_t *ch, const wr_amqp_op_t *op)
{
    cons->ch = ch;
    cons->next = ch->consumers;
    ch->consumers = cons;
    ch->nconsumers++;
    if (!op->nowait) {
        amqp_basic_consume_ok_t ok;
        ok.consumer_tag.bytes = cons->tag;
        ok.consumer_tag.len = cons->tag_len;
        wr__amqp_send(op->c, ch->id, AMQP_BASIC_CONSUME_OK_METHOD, &ok);
    }
}

static void on_subscribed(void *arg, const wr_sub_res_t *res);

/* A consumer's claim request came back (or could not be sent). A parked one
 * (waited) was also a long-poll: it may outlive its connection by its whole
 * wait, as the core ends parked claims only when they are served, time out
 * or at its stop; SIGTERM's drain does not count those (amqp_inflight). */
static void claim_answered(wr_amqp_env_t *env, bool waited)
{
    if (waited)
        atomic_fetch_sub_explicit(&env->longpolls, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&env->inflight, 1, memory_order_relaxed);
}

static void pump(wr_amqp_consumer_t *cons)
{
    wr_amqp_conn_t *c = cons->c;
    wr_amqp_chan_t *ch = cons->ch;
    wr_claim_opts_t o = {0};
    uint32_t limit = CLAIM_MAX;

    if (cons->sub) {
        sub_flow(cons); /* the core pushes; only flow control here */
        return;
    }
    if (cons->pending || !ch || !c->out || !c->env->core || c->state != WR_AMQP_S_OPEN ||
        ch->state != WR_AMQP_CH_OPEN || !ch->flow_active)
        return;
    if (evbuffer_get_length(c->out) > WR_AMQP_OUT_HIGH) {
        c->want_pump = true;
        return;
    }
    if (!cons->no_ack) {
        if (cons->prefetch)
            limit =
                cons->unacked >= cons->prefetch ? 0 : min16(limit, cons->prefetch - cons->unacked);
        if (ch->prefetch_global)
            limit = ch->unacked_n >= ch->prefetch_global
                        ? 0
                        : (limit < ch->prefetch_global - ch->unacked_n
                               ? limit
                               : ch->prefetch_global - ch->unacked_n);
        if (limit == 0)
            return;
    }
    o.limit = limit;
    o.ttl_ms = CLAIM_TTL_MS;
    o.owner = c->id;
    if (cons->no_ack && !cons->idle) {
        o.pop = true;
    } else {
        o.owner_hold = true;
        o.wait_ms = CLAIM_WAIT_MS;
    }
    cons->waited = o.wait_ms > 0;
    cons->pending = true;
    wr__amqp_conn_ref(c);
    atomic_fetch_add_explicit(&c->env->inflight, 1, memory_order_relaxed);
    if (cons->waited)
        atomic_fetch_add_explicit(&c->env->longpolls, 1, memory_order_relaxed);
    if (wr_claim(c->env->core, tenant_of(c), qslice(cons->q), &o, c->loop, on_claimed, cons) !=
        WR_OK) {
        cons->pending = false;
        claim_answered(c->env, cons->waited);
        wr__amqp_conn_unref(c);
    }
}

void wr__amqp_consumers_pump(wr_amqp_conn_t *c)
{
    if (!c->want_pump)
        return;
    c->want_pump = false;
    for (uint32_t i = 0; i < c->chans_cap; i++) {
        wr_amqp_chan_t *ch = c->chans[i];
        if (!ch)
            continue;
        for (wr_amqp_consumer_t *cons = ch->consumers; cons; cons = cons->next)
            pump(cons);
    }
}

/* The queue went: the consumer ends; the client hears of it if it asked. */
static void server_cancel(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, wr_amqp_consumer_t *cons)
{
    amqp_basic_cancel_t m;

    if (c->cap_cancel_notify) {
        m.consumer_tag.bytes = cons->tag;
        m.consumer_tag.len = cons->tag_len;
        m.nowait = 1;
        wr__amqp_send(c, ch->id, AMQP_BASIC_CANCEL_METHOD, &m);
    }
    consumer_end(c, ch, cons, false);
}

static void release_claim(wr_amqp_conn_t *c, qname_t *q, uint64_t claim_id)
{
    if (!claim_id || !c->env->core)
        return;
    atomic_fetch_add_explicit(&c->env->inflight, 1, memory_order_relaxed);
    if (wr_claim_release(c->env->core, tenant_of(c), qslice(q), claim_id, c->loop, on_settled,
                         c->env) != WR_OK)
        atomic_fetch_sub_explicit(&c->env->inflight, 1, memory_order_relaxed);
}

static void on_claimed(void *arg, const wr_msgs_res_t *res)
{
    wr_amqp_consumer_t *cons = arg;
    wr_amqp_conn_t *c = cons->c;
    wr_amqp_chan_t *ch = cons->ch;
    size_t used = 0;
    wr_amqp_claim_t *cl = NULL;
    uint64_t ids[CLAIM_MAX];
    bool waited = cons->waited;

    cons->pending = false;
    claim_answered(c->env, waited);
    if (!ch || !c->out || c->state != WR_AMQP_S_OPEN || ch->state != WR_AMQP_CH_OPEN) {
        /* Cancelled meanwhile: what a held claim brought goes back. */
        if (res->err == WR_OK && res->n > 0)
            release_claim(c, cons->q, res->claim_id);
        maybe_free_consumer(cons);
        wr__amqp_conn_unref(c);
        return;
    }
    if (res->err != WR_OK) {
        if (res->err == WR_ENOTFOUND || res->err == WR_ELOCKED)
            server_cancel(c, ch, cons);
        else
            wr_log(WR_LOG_WARN, WR_LOGC_AMQP, "conn=%llu consumer on '%s': %s",
                   (unsigned long long)c->id, cons->q->name, wr_strerror(res->err));
        wr__amqp_conn_unref(c);
        return;
    }
    if (res->n == 0) {
        if (!waited) {
            cons->idle = true; /* popping found nothing: park next time */
            pump(cons);
        } else {
            /* Back empty: the wait passed, or the queue was deleted. */
            wr_queue_attrs_t a = {0};
            a.owner = c->id;
            cons->pending = true;
            wr__amqp_conn_ref(c);
            atomic_fetch_add_explicit(&c->env->inflight, 1, memory_order_relaxed);
            if (wr_queue_declare(c->env->core, tenant_of(c), qslice(cons->q), &a,
                                 (wr_slice_t){NULL, 0}, WR_DECL_PASSIVE, c->loop, on_gone_check,
                                 cons) != WR_OK) {
                cons->pending = false;
                atomic_fetch_sub_explicit(&c->env->inflight, 1, memory_order_relaxed);
                wr__amqp_conn_unref(c);
            }
        }
        wr__amqp_conn_unref(c);
        return;
    }
    cons->idle = false;
    if (!cons->no_ack)
        cl = claim_new(ch, res->claim_id, cons->q, (uint32_t)res->n);
    for (size_t i = 0; i < res->n; i++) {
        const wr_msg_view_t *m = &res->msgs[i];
        uint64_t tag = ++ch->next_tag;
        used = put_deliver(c, used, ch->id, cons, tag, m);
        ids[i] = m->id;
        if (cl) {
            wr_amqp_unacked_t u = {m->id, cl, cons, false};
            un_push(ch, tag, &u);
            cons->unacked++;
            ch->unacked_n++;
        } else if (ch->un_len > 0) {
            wr_amqp_unacked_t u = {m->id, NULL, NULL, true};
            un_push(ch, tag, &u);
        }
    }
    evbuffer_add(c->out, c->scratch, used);
    c->last_sent_ms = wr_now_mono_ms();
    if (cons->no_ack && res->claim_id) {
        /* Delivered from a held claim (the parked case): done with them. */
        atomic_fetch_add_explicit(&c->env->inflight, 1, memory_order_relaxed);
        if (wr_ack(c->env->core, tenant_of(c), qslice(cons->q), res->claim_id, ids, res->n, c->loop,
                   on_settled, c->env) != WR_OK)
            atomic_fetch_sub_explicit(&c->env->inflight, 1, memory_order_relaxed);
    }
    pump(cons);
    wr__amqp_conn_unref(c);
}

static void on_gone_check(void *arg, const wr_queue_declare_res_t *res)
{
    wr_amqp_consumer_t *cons = arg;
    wr_amqp_conn_t *c = cons->c;
    wr_amqp_chan_t *ch = cons->ch;

    cons->pending = false;
    atomic_fetch_sub_explicit(&c->env->inflight, 1, memory_order_relaxed);
    if (!ch || !c->out || c->state != WR_AMQP_S_OPEN || ch->state != WR_AMQP_CH_OPEN) {
        maybe_free_consumer(cons);
    } else if (res->err == WR_ENOTFOUND || res->err == WR_ELOCKED) {
        server_cancel(c, ch, cons);
        wr__amqp_conn_kick(c);
    } else {
        pump(cons);
    }
    wr__amqp_conn_unref(c);
}

/* ------------------------------------------------------------------------ */
/* Consumers on subscriptions                                               */

/* basic.deliver, then the content, from a subscription's delivery. */
static size_t put_deliver_d(wr_amqp_conn_t *c, size_t used, uint16_t ch,
                            const wr_amqp_consumer_t *cons, uint64_t tag, const wr_delivery_t *d)
{
    wr_msg_view_t v;

    memset(&v, 0, sizeof(v));
    v.id = d->id;
    v.body = d->body;
    v.redelivered = d->redelivered;
    v.persistent = d->persistent;
    v.exchange = d->exchange;
    v.routing_key = d->routing_key;
    return put_deliver(c, used, ch, cons, tag, &v);
}

/* Output backed up or flow stopped: ask the core to hold deliveries. */
static void sub_flow(wr_amqp_consumer_t *cons)
{
    wr_amqp_conn_t *c = cons->c;
    wr_amqp_chan_t *ch = cons->ch;
    bool stop;

    if (!ch || !cons->sub_id || !c->out)
        return;
    stop = !ch->flow_active || evbuffer_get_length(c->out) > WR_AMQP_OUT_HIGH;
    if (stop)
        c->want_pump = true;
    if (stop == cons->paused)
        return;
    cons->paused = stop;
    wr_sub_pause(c->env->core, tenant_of(c), qslice(cons->q), cons->sub_id, stop, NULL, NULL, NULL);
}

static void on_sub_deliver(void *arg, const wr_deliveries_t *b)
{
    wr_amqp_consumer_t *cons = arg;
    wr_amqp_conn_t *c = cons->c;
    wr_amqp_chan_t *ch = cons->ch;
    uint64_t ids[WR_BATCH_MAX];
    size_t used = 0;

    if (!ch || !c->out || c->state != WR_AMQP_S_OPEN || ch->state != WR_AMQP_CH_OPEN) {
        /* Cancelled, unsubscribe on its way: what is held goes back. */
        if (!cons->no_ack && b->n > 0 && c->env->core) {
            for (size_t i = 0; i < b->n; i += WR_BATCH_MAX) {
                size_t n = b->n - i < WR_BATCH_MAX ? b->n - i : WR_BATCH_MAX;
                for (size_t k = 0; k < n; k++)
                    ids[k] = b->d[i + k].id;
                wr_release(c->env->core, tenant_of(c), qslice(cons->q), b->claim_id, ids, n,
                           WR_REL_REQUEUE, NULL, NULL, NULL);
            }
        }
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        const wr_delivery_t *d = &b->d[i];
        uint64_t tag = ++ch->next_tag;
        used = put_deliver_d(c, used, ch->id, cons, tag, d);
        if (!cons->no_ack && cons->subclaim) {
            wr_amqp_unacked_t u = {d->id, cons->subclaim, cons, false};
            un_push(ch, tag, &u);
            cons->subclaim->outstanding++;
            cons->unacked++;
            ch->unacked_n++;
        } else if (ch->un_len > 0) {
            wr_amqp_unacked_t u = {d->id, NULL, NULL, true};
            un_push(ch, tag, &u);
        }
    }
    evbuffer_add(c->out, c->scratch, used);
    c->last_sent_ms = wr_now_mono_ms();
    sub_flow(cons);
}

static void on_sub_end(void *arg, uint64_t sub_id, wr_err_t why)
{
    wr_amqp_consumer_t *cons = arg;
    wr_amqp_conn_t *c = cons->c;

    (void)sub_id;
    (void)why; /* WR_ENOTFOUND: the queue was deleted */
    cons->sub_live = false;
    if (cons->ch && c->out && c->state == WR_AMQP_S_OPEN && cons->ch->state == WR_AMQP_CH_OPEN) {
        server_cancel(c, cons->ch, cons); /* may free cons */
        wr__amqp_conn_kick(c);
    } else {
        maybe_free_consumer(cons);
    }
    wr__amqp_conn_unref(c); /* the subscription's */
}

static void on_subscribed(void *arg, const wr_sub_res_t *res)
{
    wr_amqp_consumer_t *cons = arg;
    wr_amqp_op_t *op = cons->op;
    wr_amqp_chan_t *ch = wr__amqp_op_chan(op);
    wr_amqp_conn_t *c = op->c;

    cons->op = NULL;
    if (res->err != WR_OK) {
        if (ch && cons->reply)
            ch->reply_len = 0;
        reg_del(c->env, tenant_of(c), qslice(cons->q), false);
        if (ch && res->err == WR_ENOTFOUND)
            wr__amqp_chan_error(c, ch, AMQP_NOT_FOUND, op->id, "no queue '%s' in vhost '%s'",
                                cons->q->name, wr__amqp_vhost(c));
        else if (ch && res->err == WR_ELOCKED)
            wr__amqp_chan_error(c, ch, AMQP_RESOURCE_LOCKED, op->id,
                                "cannot obtain exclusive access to locked queue '%s' in vhost "
                                "'%s'",
                                cons->q->name, wr__amqp_vhost(c));
        else if (ch)
            wr__amqp_fail(c, ch, res->err, op->id, "queue '%s': %s", cons->q->name,
                          wr_strerror(res->err));
        cons->sub_live = false;
        qname_unref(cons->q);
        free(cons);
        wr__amqp_op_done(op);
        wr__amqp_conn_unref(c); /* the subscription's */
        return;
    }
    cons->sub_id = res->sub_id;
    if (!ch) {
        /* The channel went while subscribing. */
        reg_del(c->env, tenant_of(c), qslice(cons->q), false);
        sub_stop(c, cons, true);
        maybe_free_consumer(cons);
        wr__amqp_op_done(op);
        return;
    }
    cons->subclaim = claim_new(ch, res->sub_id, cons->q, 0);
    cons->subclaim->pinned = true;
    consumer_attach(cons, ch, op);
    sub_flow(cons);
    wr__amqp_op_done(op);
}

static wr_amqp_consumer_t *find_consumer(wr_amqp_chan_t *ch, amqp_bytes_t tag)
{
    for (wr_amqp_consumer_t *cons = ch->consumers; cons; cons = cons->next) {
        if (bytes_eq(cons->tag, cons->tag_len, tag))
            return cons;
    }
    return NULL;
}

/* basic.consume waits for the queue's attributes (it must exist; it may be
 * exclusive to this connection; auto_delete matters when it ends). */
static void on_consume_stat(void *arg, const wr_queue_stat_res_t *res)
{
    wr_amqp_op_t *op = arg;
    wr_amqp_chan_t *ch = wr__amqp_op_chan(op);
    wr_amqp_consumer_t *cons = op->ptr;
    wr_amqp_conn_t *c = op->c;
    wr_err_t err = res->err;

    if (err == WR_OK && res->attrs.exclusive && res->attrs.owner != c->id)
        err = WR_ELOCKED;
    if (!ch || err != WR_OK) {
        reg_del(c->env, tenant_of(c), qslice(cons->q), true);
        if (ch && err == WR_ENOTFOUND)
            wr__amqp_chan_error(c, ch, AMQP_NOT_FOUND, op->id, "no queue '%s' in vhost '%s'",
                                cons->q->name, wr__amqp_vhost(c));
        else if (ch && err == WR_ELOCKED)
            wr__amqp_chan_error(c, ch, AMQP_RESOURCE_LOCKED, op->id,
                                "cannot obtain exclusive access to locked queue '%s' in vhost "
                                "'%s'",
                                cons->q->name, wr__amqp_vhost(c));
        else if (ch)
            wr__amqp_fail(c, ch, err, op->id, "queue '%s': %s", cons->q->name, wr_strerror(err));
        qname_unref(cons->q);
        free(cons);
        wr__amqp_op_done(op);
        return;
    }
    cons->auto_delete = res->attrs.auto_delete;
    consumer_attach(cons, ch, op);
    pump(cons);
    wr__amqp_op_done(op);
}

void wr__amqp_on_basic_consume(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_basic_consume_t *m = call->args;
    amqp_bytes_t qn = m->queue;
    int32_t priority;
    char why[160];

    if (!wr__amqp_queue_name(c, ch, call->id, &qn))
        return;
    if (m->consumer_tag.len > 0 && find_consumer(ch, m->consumer_tag)) {
        wr__amqp_conn_error(c, AMQP_NOT_ALLOWED, call->id, "attempt to reuse consumer tag '%.*s'",
                            (int)m->consumer_tag.len, (char *)m->consumer_tag.bytes);
        return;
    }
    if (wr__amqp_is_reply_to(qn)) {
        wr__amqp_reply_consume(c, ch, call);
        return;
    }
    if (!c->env->core) {
        wr__amqp_chan_error(c, ch, AMQP_INTERNAL_ERROR, call->id, "no core");
        return;
    }
    if (!wr__amqp_consume_args(&m->arguments, &priority, why, sizeof(why))) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                            "%s for queue '%.*s' in vhost '%s'", why, (int)qn.len,
                            (char *)qn.bytes, wr__amqp_vhost(c));
        return;
    }
    wr__amqp_consume_start(c, ch, wr__amqp_op_new(c, ch, call->id, m->nowait), qn,
                           m->consumer_tag, m->no_ack, m->exclusive, priority, false);
}

void wr__amqp_consume_start(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, wr_amqp_op_t *op,
                            amqp_bytes_t qn, amqp_bytes_t tag, bool no_ack, bool exclusive,
                            int32_t priority, bool reply)
{
    wr_amqp_consumer_t *cons;
    wr_err_t err;

    /* A channel-wide prefetch (basic.qos global) is kept exactly on claims;
     * otherwise the core pushes (subscription, per-consumer credit). A
     * reply consumer takes no acks, so the limit means nothing to it. */
    bool sub = ch->prefetch_global == 0 || reply;

    if (reg_add(c->env, tenant_of(c), wr__amqp_slice(qn), exclusive, !sub) != WR_OK) {
        wr__amqp_chan_error(c, ch, AMQP_ACCESS_REFUSED, op->id,
                            "queue '%.*s' in vhost '%s' in exclusive use", (int)qn.len,
                            (char *)qn.bytes, wr__amqp_vhost(c));
        wr__amqp_op_done(op);
        return;
    }
    cons = calloc(1, sizeof(*cons));
    if (!cons)
        wr_panic(__FILE__, __LINE__, "out of memory");
    cons->c = c;
    cons->q = qname_new(qn);
    if (tag.len) {
        cons->tag_len = (uint8_t)tag.len;
        memcpy(cons->tag, tag.bytes, cons->tag_len);
    } else {
        cons->tag_len = (uint8_t)wr__amqp_random_name(cons->tag, "amq.ctag-");
    }
    cons->no_ack = no_ack;
    cons->exclusive = exclusive;
    cons->reply = reply;
    cons->prefetch = ch->prefetch;
    cons->sub = sub;
    op->ptr = cons;
    if (cons->sub) {
        wr_sub_opts_t o = {0};
        o.prefetch = cons->no_ack ? 0 : cons->prefetch;
        o.no_ack = cons->no_ack;
        o.exclusive = cons->exclusive;
        o.priority = priority;
        o.owner = c->id;
        cons->op = op;
        cons->sub_live = true;
        wr__amqp_conn_ref(c); /* the subscription's */
        err = wr_subscribe(c->env->core, tenant_of(c), qslice(cons->q), &o, c->loop, on_sub_deliver,
                           on_sub_end, on_subscribed, cons);
        if (err != WR_OK)
            wr__amqp_conn_unref(c);
    } else {
        err = wr_queue_stat(c->env->core, tenant_of(c), qslice(cons->q), c->loop, on_consume_stat,
                            op);
    }
    if (err != WR_OK) {
        reg_del(c->env, tenant_of(c), qslice(cons->q), !cons->sub);
        qname_unref(cons->q);
        free(cons);
        wr__amqp_fail(c, ch, err, op->id, "basic.consume: %s", wr_strerror(err));
        wr__amqp_op_done(op);
    }
}

void wr__amqp_on_basic_cancel(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_basic_cancel_t *m = call->args;
    wr_amqp_consumer_t *cons = find_consumer(ch, m->consumer_tag);
    amqp_basic_cancel_ok_t ok;

    if (cons)
        consumer_end(c, ch, cons, false);
    /* An unknown tag is answered all the same (RabbitMQ). */
    if (!m->nowait) {
        ok.consumer_tag = m->consumer_tag;
        wr__amqp_send(c, ch->id, AMQP_BASIC_CANCEL_OK_METHOD, &ok);
    }
}

/* ------------------------------------------------------------------------ */
/* basic.get                                                                */

typedef struct get_ctx {
    qname_t *q;
    bool no_ack;
    bool got;
    wr_body_t *body; /* a reference */
    uint64_t msg_id, claim_id;
    bool redelivered, persistent;
    uint8_t ex_len, rk_len;
    char ex[WR_NAME_MAX + 1], rk[WR_NAME_MAX + 1];
} get_ctx_t;

static void get_ctx_free(get_ctx_t *g)
{
    wr_body_unref(g->body);
    qname_unref(g->q);
    free(g);
}

/* basic.get-ok and the content; the delivery is unsettled unless no_ack. */
static void send_get_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, get_ctx_t *g, uint64_t ready)
{
    uint64_t tag = ++ch->next_tag;
    uint32_t count = ready > UINT32_MAX ? UINT32_MAX : (uint32_t)ready;
    uint8_t *p, *start;
    size_t used;

    p = start = wr__amqp_scratch(c, 0, 8 + 4 + 8 + 1 + 1 + g->ex_len + 1 + g->rk_len + 4);
    p = frame_open(p, AMQP_FRAME_METHOD, ch->id);
    p = put32(p, AMQP_BASIC_GET_OK_METHOD);
    p = put64(p, tag);
    *p++ = g->redelivered ? 1 : 0;
    p = putstr(p, g->ex, g->ex_len);
    p = putstr(p, g->rk, g->rk_len);
    p = put32(p, count);
    p = frame_close(start, p);
    used = wr__amqp_put_content(c, (size_t)(p - start), ch->id, g->body, g->persistent);
    evbuffer_add(c->out, c->scratch, used);
    if (!g->no_ack) {
        wr_amqp_claim_t *cl = claim_new(ch, g->claim_id, g->q, 1);
        wr_amqp_unacked_t u = {g->msg_id, cl, NULL, false};
        un_push(ch, tag, &u);
        ch->unacked_n++;
    } else if (ch->un_len > 0) {
        wr_amqp_unacked_t u = {g->msg_id, NULL, NULL, true};
        un_push(ch, tag, &u);
    }
}

/* Nothing came: get-empty, or 404/405 if the queue is missing or locked. */
static void on_get_empty_check(void *arg, const wr_queue_declare_res_t *res)
{
    wr_amqp_op_t *op = arg;
    wr_amqp_chan_t *ch = wr__amqp_op_chan(op);
    get_ctx_t *g = op->ptr;
    wr_amqp_conn_t *c = op->c;

    if (ch) {
        if (res->err == WR_ENOTFOUND) {
            wr__amqp_chan_error(c, ch, AMQP_NOT_FOUND, op->id, "no queue '%s' in vhost '%s'",
                                g->q->name, wr__amqp_vhost(c));
        } else if (res->err == WR_ELOCKED) {
            wr__amqp_chan_error(c, ch, AMQP_RESOURCE_LOCKED, op->id,
                                "cannot obtain exclusive access to locked queue '%s' in vhost "
                                "'%s'",
                                g->q->name, wr__amqp_vhost(c));
        } else {
            amqp_basic_get_empty_t e = {{0, NULL}};
            wr__amqp_send(c, ch->id, AMQP_BASIC_GET_EMPTY_METHOD, &e);
        }
    }
    get_ctx_free(g);
    wr__amqp_op_done(op);
}

static void on_got(void *arg, const wr_msgs_res_t *res)
{
    wr_amqp_op_t *op = arg;
    wr_amqp_chan_t *ch = wr__amqp_op_chan(op);
    get_ctx_t *g = op->ptr;
    wr_amqp_conn_t *c = op->c;
    wr_queue_attrs_t a = {0};

    if (res->err == WR_OK && res->n > 0) {
        const wr_msg_view_t *m = &res->msgs[0];
        wr_slice_t ex = m->exchange, rk = m->routing_key;
        if (ex.len == 0 && rk.len == 0)
            rk = qslice(g->q);
        g->got = true;
        g->body = wr_body_ref(m->body);
        g->msg_id = m->id;
        g->claim_id = res->claim_id;
        g->redelivered = m->redelivered;
        g->persistent = m->persistent;
        g->ex_len = (uint8_t)ex.len;
        g->rk_len = (uint8_t)rk.len;
        if (ex.len)
            memcpy(g->ex, ex.ptr, ex.len);
        if (rk.len)
            memcpy(g->rk, rk.ptr, rk.len);
    }
    if (!ch || (res->err != WR_OK)) {
        if (ch)
            wr__amqp_fail(c, ch, res->err, op->id,
                          res->err == WR_ELOCKED
                              ? "cannot obtain exclusive access to locked queue '%s'"
                              : "basic.get on '%s' failed",
                          g->q->name);
        if (g->got && !g->no_ack)
            release_claim(c, g->q, g->claim_id);
        get_ctx_free(g);
        wr__amqp_op_done(op);
        return;
    }
    if (g->got) {
        send_get_ok(c, ch, g, res->ready);
        get_ctx_free(g);
        wr__amqp_op_done(op);
        return;
    }
    /* None came: basic.get on a missing queue is 404, not get-empty. */
    a.owner = c->id;
    if (wr_queue_declare(c->env->core, tenant_of(c), qslice(g->q), &a, (wr_slice_t){NULL, 0},
                         WR_DECL_PASSIVE, c->loop, on_get_empty_check, op) != WR_OK) {
        wr_queue_declare_res_t r = {WR_EIO, false, 0, 0};
        on_get_empty_check(op, &r);
    }
}

void wr__amqp_on_basic_get(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_basic_get_t *m = call->args;
    amqp_bytes_t qn = m->queue;
    wr_claim_opts_t o = {0};
    wr_amqp_op_t *op;
    get_ctx_t *g;
    wr_err_t err;

    if (!wr__amqp_queue_name(c, ch, call->id, &qn))
        return;
    if (!c->env->core) {
        wr__amqp_chan_error(c, ch, AMQP_INTERNAL_ERROR, call->id, "no core");
        return;
    }
    g = calloc(1, sizeof(*g));
    if (!g)
        wr_panic(__FILE__, __LINE__, "out of memory");
    g->q = qname_new(qn);
    g->no_ack = m->no_ack;
    o.limit = 1;
    o.ttl_ms = CLAIM_TTL_MS;
    o.owner = c->id;
    if (m->no_ack)
        o.pop = true;
    else
        o.owner_hold = true;
    op = wr__amqp_op_new(c, ch, call->id, false);
    op->ptr = g;
    err = wr_claim(c->env->core, tenant_of(c), qslice(g->q), &o, c->loop, on_got, op);
    if (err != WR_OK) {
        get_ctx_free(g);
        wr__amqp_fail(c, ch, err, call->id, "basic.get: %s", wr_strerror(err));
        wr__amqp_op_done(op);
    }
}

/* ------------------------------------------------------------------------ */
/* End of a channel or connection                                           */

void wr__amqp_deliver_chan_free(wr_amqp_conn_t *c, wr_amqp_chan_t *ch)
{
    /* Unsettled deliveries go back: every claim is released whole (what
     * was acked is deleted already, the deletes go first). */
    for (uint32_t i = 0; i < ch->un_len; i++) {
        wr_amqp_unacked_t *u = &ch->un[(ch->un_head + i) % ch->un_cap];
        if (!u->settled && u->cons) {
            u->cons->unacked--;
            if (!u->cons->ch)
                maybe_free_consumer(u->cons); /* cancelled before */
        }
    }
    for (wr_amqp_consumer_t *cons = ch->consumers; cons; cons = cons->next)
        cons->subclaim = NULL; /* freed with the claims below */
    while (ch->claims) {
        wr_amqp_claim_t *cl = ch->claims;
        ch->claims = cl->next;
        settle_push(c, OP_RELEASE_CLAIM, cl->q, cl->id, 0);
        qname_unref(cl->q);
        free(cl);
    }
    free(ch->un);
    ch->un = NULL;
    ch->un_len = ch->un_cap = 0;
    ch->unacked_n = 0;
    while (ch->consumers) {
        wr_amqp_consumer_t *cons = ch->consumers;
        consumer_end(c, ch, cons, true); /* frees it unless something is out */
    }
    wr__amqp_settle_flush(c);
}

void wr__amqp_deliver_conn_free(wr_amqp_conn_t *c)
{
    if (c->settle) {
        for (size_t i = 0; i < c->settle->n; i++)
            qname_unref(c->settle->ops[i].q);
        free(c->settle->ops);
        free(c->settle);
        c->settle = NULL;
    }
    free(c->scratch);
    c->scratch = NULL;
    c->scratch_cap = 0;
    free(c->replay_buf);
    c->replay_buf = NULL;
    c->replay_cap = 0;
}
