/*
 * publish.c - basic.publish, publisher confirms, mandatory returns and
 * transactions.
 *
 * Gathering. A publish whose content is complete is not sent to the core at
 * once: consecutive publishes of one channel to the same exchange with the
 * same routing key, mandatory flag and headers join one wr_publish_routed
 * call (up to WR_BATCH_MAX messages). The gathered batch goes when the next
 * publish does not fit, when another method arrives (ops.c flushes first,
 * so order is kept), and at the end of every read (conn.c). A producer
 * pipelining publishes thus costs one core call per read, not per message.
 *
 * Confirms and commits answer in order: every batch of a channel in
 * confirm or tx mode takes a slot in the channel's ring; a slot answers
 * when it and every earlier one are done. A run of acknowledged batches
 * becomes one basic.ack (multiple when it covers more than one tag); a
 * failed batch (a queue refused or could not store it) is a basic.nack.
 * basic.return for mandatory messages that reached no queue goes before
 * their confirm, with the publisher's properties and body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "../../core/log.h"
#include "amqp_int.h"

#define PUB_BYTES_MAX (4u << 20) /* body bytes gathered into one call */

enum { SLOT_PUB = 1, SLOT_COMMIT };

struct wr_amqp_slot {
    uint8_t kind;
    bool done, ok;
    uint64_t first, last; /* SLOT_PUB: publish sequence numbers */
};

struct wr_amqp_pub {
    bool active;
    uint16_t ch_id;
    uint64_t serial;
    bool mandatory, slotted;
    uint8_t exch_len, rk_len;
    char exch[WR_NAME_MAX + 1], rk[WR_NAME_MAX + 1];
    wr_slice_t headers; /* points into msgs[0].body */
    uint64_t first_seq;
    size_t n, bytes;
    wr_msg_in_t msgs[WR_BATCH_MAX];
};

/* A batch the core has. */
typedef struct pub_batch {
    wr_amqp_conn_t *c;
    uint16_t ch_id;
    uint64_t serial;
    uint64_t slot; /* UINT64_MAX: none */
    bool mandatory;
    uint8_t exch_len, rk_len;
    char exch[WR_NAME_MAX + 1], rk[WR_NAME_MAX + 1];
    size_t n;
    wr_body_t *keep[]; /* mandatory: the bodies, for basic.return */
} pub_batch_t;

/* A publish or an acknowledgement buffered by a transaction. */
struct wr_amqp_txop {
    bool is_pub;
    /* publish */
    wr_body_t *body;
    bool mandatory;
    uint8_t exch_len, rk_len;
    char *names; /* exchange then routing key (malloc) */
    /* acknowledgement */
    amqp_method_number_t id;
    uint64_t tag;
    bool multiple;
    int kind;
};

static wr_slice_t tenant_of(const wr_amqp_conn_t *c)
{
    wr_slice_t s = {c->tenant, c->tenant_len};
    return s;
}

/* ------------------------------------------------------------------------ */
/* Ordered answers                                                          */

uint64_t wr__amqp_slot_take(wr_amqp_chan_t *ch, uint8_t kind, uint64_t first, uint64_t last)
{
    wr_amqp_slot_t *s;

    if (ch->slot_tail - ch->slot_head == ch->slot_cap) {
        uint32_t cap = ch->slot_cap ? ch->slot_cap * 2 : 16;
        wr_amqp_slot_t *ns = malloc(cap * sizeof(*ns));
        if (!ns)
            wr_panic(__FILE__, __LINE__, "out of memory");
        for (uint64_t i = ch->slot_head; i < ch->slot_tail; i++)
            ns[i % cap] = ch->slots[i % ch->slot_cap];
        free(ch->slots);
        ch->slots = ns;
        ch->slot_cap = cap;
    }
    s = &ch->slots[ch->slot_tail % ch->slot_cap];
    s->kind = kind;
    s->done = false;
    s->ok = true;
    s->first = first;
    s->last = last;
    return ch->slot_tail++;
}

static void send_ack(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, uint64_t last)
{
    amqp_basic_ack_t a = {last, last > ch->confirmed + 1};

    wr__amqp_send(c, ch->id, AMQP_BASIC_ACK_METHOD, &a);
    ch->confirmed = last;
}

void wr__amqp_slot_done(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, uint64_t slot, bool ok)
{
    uint64_t ack_to = 0;

    if (slot < ch->slot_head || slot >= ch->slot_tail)
        return;
    ch->slots[slot % ch->slot_cap].done = true;
    ch->slots[slot % ch->slot_cap].ok = ok;
    while (ch->slot_head < ch->slot_tail && ch->state == WR_AMQP_CH_OPEN) {
        wr_amqp_slot_t *s = &ch->slots[ch->slot_head % ch->slot_cap];
        if (!s->done)
            break;
        ch->slot_head++;
        if (s->kind == SLOT_COMMIT) {
            amqp_tx_commit_ok_t cok = {0};
            if (ack_to)
                send_ack(c, ch, ack_to);
            ack_to = 0;
            wr__amqp_send(c, ch->id, AMQP_TX_COMMIT_OK_METHOD, &cok);
            continue;
        }
        if (!ch->confirm)
            continue;
        if (s->ok) {
            ack_to = s->last; /* joins the run */
        } else {
            amqp_basic_nack_t n;
            if (ack_to)
                send_ack(c, ch, ack_to);
            ack_to = 0;
            n.delivery_tag = s->last;
            n.multiple = s->last > ch->confirmed + 1;
            n.requeue = 0;
            wr__amqp_send(c, ch->id, AMQP_BASIC_NACK_METHOD, &n);
            ch->confirmed = s->last;
        }
    }
    if (ack_to)
        send_ack(c, ch, ack_to);
}

/* ------------------------------------------------------------------------ */
/* Sending a batch to the core                                              */

static void send_returns(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, pub_batch_t *b,
                         const uint32_t *reached)
{
    for (size_t i = 0; i < b->n; i++) {
        amqp_basic_return_t r;
        size_t used;
        if (reached && reached[i] > 0)
            continue;
        r.reply_code = AMQP_NO_ROUTE;
        r.reply_text = amqp_cstring_bytes("NO_ROUTE");
        r.exchange.bytes = b->exch;
        r.exchange.len = b->exch_len;
        r.routing_key.bytes = b->rk;
        r.routing_key.len = b->rk_len;
        wr__amqp_send(c, ch->id, AMQP_BASIC_RETURN_METHOD, &r);
        used = wr__amqp_put_content(c, 0, ch->id, b->keep[i], false);
        if (c->out)
            evbuffer_add(c->out, c->scratch, used);
    }
}

static void batch_done(pub_batch_t *b, wr_err_t err, const uint32_t *reached)
{
    wr_amqp_conn_t *c = b->c;
    wr_amqp_chan_t *ch = c->out ? wr__amqp_chan_get(c, b->ch_id) : NULL;

    if (ch &&
        (ch->serial != b->serial || ch->state != WR_AMQP_CH_OPEN || c->state != WR_AMQP_S_OPEN))
        ch = NULL;
    if (ch) {
        switch ((int)err) {
        case WR_OK:
        case WR_EQUOTA: /* some queue refused (overflow reject): nack */
        case WR_EIO:
        case WR_ENOSPACE: /* the store is full: nack, the publisher may retry */
            if (err == WR_ENOSPACE)
                wr__amqp_blocked_check(c, wr_now_mono_ms());
            if (b->mandatory)
                send_returns(c, ch, b, reached);
            if (b->slot != UINT64_MAX)
                wr__amqp_slot_done(c, ch, b->slot, err == WR_OK);
            break;
        case WR_ENOTFOUND:
            wr__amqp_chan_error(c, ch, AMQP_NOT_FOUND, AMQP_BASIC_PUBLISH_METHOD,
                                "no exchange '%s' in vhost '%s'", b->exch, wr__amqp_vhost(c));
            break;
        case WR_EDENIED:
            wr__amqp_chan_error(c, ch, AMQP_ACCESS_REFUSED, AMQP_BASIC_PUBLISH_METHOD,
                                "cannot publish to internal exchange '%s' in vhost '%s'", b->exch,
                                wr__amqp_vhost(c));
            break;
        case WR_ELIMIT: /* a tenant quota: nack in confirm mode, else 406 */
        case WR_ERATE:
            if (b->slot != UINT64_MAX && ch->confirm) {
                wr__amqp_slot_done(c, ch, b->slot, false);
                break;
            }
            wr__amqp_fail(c, ch, err, AMQP_BASIC_PUBLISH_METHOD, "publish to exchange '%s': %s",
                          b->exch, wr_strerror(err));
            break;
        case WR_ESHUTDOWN:
            break; /* the connection is about to be closed with 320 */
        default:
            wr__amqp_fail(c, ch, err, AMQP_BASIC_PUBLISH_METHOD, "publish to exchange '%s': %s",
                          b->exch, wr_strerror(err));
            break;
        }
    }
    if (b->mandatory) {
        for (size_t i = 0; i < b->n; i++)
            wr_body_unref(b->keep[i]);
    }
    atomic_fetch_sub_explicit(&c->env->inflight, 1, memory_order_relaxed);
    free(b);
    wr__amqp_conn_kick(c);
    wr__amqp_conn_unref(c);
}

static void on_routed(void *arg, const wr_route_res_t *res)
{
    batch_done(arg, res->err, res->reached);
}

void wr__amqp_pub_flush(wr_amqp_conn_t *c)
{
    wr_amqp_pub_t *p = c->pub;
    wr_header_t hdrs[WR_HEADERS_MAX];
    size_t nh = 0;
    wr_amqp_chan_t *ch;
    pub_batch_t *b;
    wr_err_t err;

    if (!p || !p->active)
        return;
    p->active = false;
    ch = c->dying ? NULL : wr__amqp_chan_get(c, p->ch_id);
    if (!ch || ch->serial != p->serial || !c->env->core) {
        for (size_t i = 0; i < p->n; i++)
            wr_body_unref(p->msgs[i].body);
        return;
    }
    if (!p->slotted && !p->mandatory && p->exch_len == 0 &&
        !(c->tn && wr_tenant_limited(c->tn))) {
        /* The default exchange always exists and nobody waits for an
         * answer: fire and forget (saves the reply's trip through the
         * loop; an unroutable message is simply dropped, as in RabbitMQ).
         * Not for a tenant with quotas: a refusal must reach the client. */
        err = wr_publish_routed(c->env->core, tenant_of(c), (wr_slice_t){NULL, 0},
                                (wr_slice_t){p->rk, p->rk_len}, NULL, 0, p->msgs, p->n, 0, NULL,
                                NULL, NULL);
        if (err != WR_OK)
            wr_log(WR_LOG_WARN, WR_LOGC_AMQP, "conn=%llu publish to '%s': %s",
                   (unsigned long long)c->id, p->rk, wr_strerror(err));
        return;
    }
    b = malloc(sizeof(*b) + (p->mandatory ? p->n * sizeof(wr_body_t *) : 0));
    if (!b)
        wr_panic(__FILE__, __LINE__, "out of memory");
    b->c = wr__amqp_conn_ref(c);
    b->ch_id = p->ch_id;
    b->serial = p->serial;
    b->mandatory = p->mandatory;
    b->exch_len = p->exch_len;
    b->rk_len = p->rk_len;
    memcpy(b->exch, p->exch, (size_t)p->exch_len + 1);
    memcpy(b->rk, p->rk, (size_t)p->rk_len + 1);
    b->n = p->n;
    b->slot = p->slotted ? wr__amqp_slot_take(ch, SLOT_PUB, p->first_seq, p->first_seq + p->n - 1)
                         : UINT64_MAX;
    if (p->mandatory) {
        for (size_t i = 0; i < p->n; i++)
            b->keep[i] = wr_body_ref(p->msgs[i].body);
    }
    /* More headers than the core matches on: the first WR_HEADERS_MAX. */
    if (p->headers.len && wr__amqp_headers_raw(p->headers, hdrs, WR_HEADERS_MAX, &nh) == WR_EPROTO)
        nh = 0;
    atomic_fetch_add_explicit(&c->env->inflight, 1, memory_order_relaxed);
    err = wr_publish_routed(c->env->core, tenant_of(c), (wr_slice_t){p->exch, p->exch_len},
                            (wr_slice_t){p->rk, p->rk_len}, hdrs, nh, p->msgs, p->n,
                            p->mandatory ? WR_PUB_MANDATORY : 0, c->loop, on_routed, b);
    if (err != WR_OK)
        batch_done(b, err, NULL);
}

static bool same_key(const wr_amqp_pub_t *p, const wr_amqp_chan_t *ch,
                     const amqp_basic_publish_t *m, wr_slice_t headers)
{
    return p->ch_id == ch->id && p->serial == ch->serial && p->mandatory == (m->mandatory != 0) &&
           p->exch_len == m->exchange.len && p->rk_len == m->routing_key.len &&
           memcmp(p->exch, m->exchange.bytes, p->exch_len) == 0 &&
           memcmp(p->rk, m->routing_key.bytes, p->rk_len) == 0 && p->headers.len == headers.len &&
           (headers.len == 0 || memcmp(p->headers.ptr, headers.ptr, headers.len) == 0);
}

/* Adds one message to the gathered batch (which it may flush first). */
static void gather(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_bytes_t exch, amqp_bytes_t rk,
                   bool mandatory, const wr_msg_in_t *msg, wr_slice_t headers)
{
    wr_amqp_pub_t *p = c->pub;
    amqp_basic_publish_t m = {0, exch, rk, mandatory, 0};

    if (!p) {
        p = c->pub = calloc(1, sizeof(*p));
        if (!p)
            wr_panic(__FILE__, __LINE__, "out of memory");
    }
    if (p->active &&
        (p->n == WR_BATCH_MAX || p->bytes >= PUB_BYTES_MAX || !same_key(p, ch, &m, headers)))
        wr__amqp_pub_flush(c);
    if (!p->active) {
        p->active = true;
        p->ch_id = ch->id;
        p->serial = ch->serial;
        p->mandatory = mandatory;
        p->slotted = ch->confirm || ch->tx;
        p->exch_len = (uint8_t)exch.len;
        p->rk_len = (uint8_t)rk.len;
        if (exch.len)
            memcpy(p->exch, exch.bytes, exch.len);
        p->exch[exch.len] = '\0';
        if (rk.len)
            memcpy(p->rk, rk.bytes, rk.len);
        p->rk[rk.len] = '\0';
        p->n = 0;
        p->bytes = 0;
        p->first_seq = ch->pub_seq + 1;
        /* headers point into the first body, which the batch holds */
        p->headers = headers;
    }
    p->msgs[p->n++] = *msg;
    p->bytes += msg->body->body_len;
    if (ch->confirm || ch->tx)
        ch->pub_seq++;
}

/* The headers table of a stored message's properties (tag byte first). */
static wr_slice_t body_headers(const wr_body_t *b)
{
    wr_amqp_props_t pr;
    wr_slice_t none = {NULL, 0};

    if (b->props_len < 1 || b->data[0] != WR_AMQP_PROPS_091 ||
        wr__amqp_props_scan(b->data + 1, b->props_len - 1, &pr) != WR_OK)
        return none;
    return pr.headers;
}

/* ------------------------------------------------------------------------ */
/* Handlers                                                                 */

void wr__amqp_on_basic_publish(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_basic_publish_t *m = call->args;
    const wr_amqp_props_t *pr = call->props;
    wr_msg_in_t msg = {0};
    int64_t ttl = 0;

    if (m->immediate) {
        wr__amqp_conn_error(c, AMQP_NOT_IMPLEMENTED, call->id, "immediate=true");
        return;
    }
    if (pr->flags & AMQP_BASIC_EXPIRATION_FLAG) {
        if (!wr__amqp_expiration(pr->expiration, &ttl)) {
            wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                                "invalid expiration '%.*s': no_integer",
                                (int)(pr->expiration.len > 64 ? 64 : pr->expiration.len),
                                (const char *)pr->expiration.ptr);
            return;
        }
    }
    if ((pr->flags & AMQP_BASIC_USER_ID_FLAG) &&
        (pr->user_id.len != strlen(c->user) ||
         memcmp(pr->user_id.ptr, c->user, pr->user_id.len) != 0)) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                            "user_id property set to '%.*s' but authenticated user was '%s'",
                            (int)(pr->user_id.len > 64 ? 64 : pr->user_id.len),
                            (const char *)pr->user_id.ptr, c->user);
        return;
    }
    if ((pr->flags & AMQP_BASIC_REPLY_TO_FLAG) &&
        wr__amqp_is_reply_to((amqp_bytes_t){pr->reply_to.len, (void *)pr->reply_to.ptr}) &&
        !wr__amqp_reply_rewrite(c, ch, call->id, pr))
        return;
    if (!ch->msg)
        return;
    msg.body = ch->msg;
    ch->msg = NULL; /* ours now */
    /* "0": expire unless delivered at once; the core's shortest is 1 ms. */
    msg.ttl_ms = (pr->flags & AMQP_BASIC_EXPIRATION_FLAG) ? (ttl ? ttl : 1) : 0;
    msg.delay_ms = -1;
    msg.persistent = pr->delivery_mode == 2;
    msg.priority = pr->priority;

    if (ch->tx) {
        wr_amqp_txop_t *t;
        if (ch->ntx == ch->tx_cap) {
            size_t cap = ch->tx_cap ? ch->tx_cap * 2 : 16;
            wr_amqp_txop_t *nt = realloc(ch->txops, cap * sizeof(*nt));
            if (!nt)
                wr_panic(__FILE__, __LINE__, "out of memory");
            ch->txops = nt;
            ch->tx_cap = cap;
        }
        t = &ch->txops[ch->ntx++];
        memset(t, 0, sizeof(*t));
        t->is_pub = true;
        t->body = msg.body;
        t->mandatory = m->mandatory;
        t->exch_len = (uint8_t)m->exchange.len;
        t->rk_len = (uint8_t)m->routing_key.len;
        t->names = malloc((size_t)t->exch_len + t->rk_len + 1);
        if (!t->names)
            wr_panic(__FILE__, __LINE__, "out of memory");
        if (t->exch_len)
            memcpy(t->names, m->exchange.bytes, t->exch_len);
        if (t->rk_len)
            memcpy(t->names + t->exch_len, m->routing_key.bytes, t->rk_len);
        /* ttl etc. are read again from the properties at commit */
        return;
    }
    gather(c, ch, m->exchange, m->routing_key, m->mandatory, &msg,
           pr->headers.len ? body_headers(msg.body) : (wr_slice_t){NULL, 0});
}

void wr__amqp_on_confirm_select(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_confirm_select_t *m = call->args;
    amqp_confirm_select_ok_t ok = {0};

    if (ch->tx) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                            "cannot switch from tx to confirm mode");
        return;
    }
    wr__amqp_flush(c);
    if (!ch->confirm) {
        ch->confirm = true;
        ch->pub_seq = 0;
        ch->confirmed = 0;
    }
    if (!m->nowait)
        wr__amqp_send(c, ch->id, AMQP_CONFIRM_SELECT_OK_METHOD, &ok);
}

void wr__amqp_on_tx_select(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    amqp_tx_select_ok_t ok = {0};

    if (ch->confirm) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                            "cannot switch from confirm to tx mode");
        return;
    }
    wr__amqp_flush(c);
    ch->tx = true;
    wr__amqp_send(c, ch->id, AMQP_TX_SELECT_OK_METHOD, &ok);
}

static void tx_clear(wr_amqp_chan_t *ch)
{
    for (size_t i = 0; i < ch->ntx; i++) {
        wr_body_unref(ch->txops[i].body);
        free(ch->txops[i].names);
    }
    ch->ntx = 0;
}

void wr__amqp_on_tx_commit(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    size_t n;
    uint64_t serial = ch->serial;
    uint16_t id = ch->id;

    if (!ch->tx) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                            "channel is not transactional");
        return;
    }
    wr__amqp_flush(c);
    n = ch->ntx;
    ch->ntx = 0;
    for (size_t i = 0; i < n; i++) {
        wr_amqp_txop_t *t = &ch->txops[i];
        ch = wr__amqp_chan_get(c, id);
        if (!ch || ch->serial != serial || ch->state != WR_AMQP_CH_OPEN) {
            /* A settle failed (unknown tag: channel closed): drop the rest. */
            for (size_t j = i; j < n; j++) {
                wr_body_unref(t[j - i].body);
                free(t[j - i].names);
            }
            return;
        }
        if (t->is_pub) {
            wr_amqp_props_t pr;
            wr_msg_in_t msg = {0};
            int64_t ttl = 0;
            wr_slice_t hdr = {NULL, 0};
            msg.body = t->body;
            msg.delay_ms = -1;
            if (t->body->props_len > 1 &&
                wr__amqp_props_scan(t->body->data + 1, t->body->props_len - 1, &pr) == WR_OK) {
                if ((pr.flags & AMQP_BASIC_EXPIRATION_FLAG) &&
                    wr__amqp_expiration(pr.expiration, &ttl))
                    msg.ttl_ms = ttl ? ttl : 1;
                msg.persistent = pr.delivery_mode == 2;
                msg.priority = pr.priority;
                hdr = pr.headers;
            }
            gather(c, ch, (amqp_bytes_t){t->exch_len, t->names},
                   (amqp_bytes_t){t->rk_len, t->names + t->exch_len}, t->mandatory, &msg, hdr);
            free(t->names);
        } else {
            wr__amqp_settle(c, ch, t->id, t->tag, t->multiple, t->kind);
        }
    }
    ch = wr__amqp_chan_get(c, id);
    if (!ch || ch->serial != serial || ch->state != WR_AMQP_CH_OPEN)
        return;
    wr__amqp_flush(c);
    wr__amqp_slot_done(c, ch, wr__amqp_slot_take(ch, SLOT_COMMIT, 0, 0), true);
}

void wr__amqp_on_tx_rollback(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    amqp_tx_rollback_ok_t ok = {0};

    if (!ch->tx) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, call->id,
                            "channel is not transactional");
        return;
    }
    tx_clear(ch);
    wr__amqp_send(c, ch->id, AMQP_TX_ROLLBACK_OK_METHOD, &ok);
}

/* Buffers an acknowledgement in a transaction (deliver.c asks). */
bool wr__amqp_tx_settle(wr_amqp_chan_t *ch, amqp_method_number_t id, uint64_t tag, bool multiple,
                        int kind);
bool wr__amqp_tx_settle(wr_amqp_chan_t *ch, amqp_method_number_t id, uint64_t tag, bool multiple,
                        int kind)
{
    wr_amqp_txop_t *t;

    if (!ch->tx)
        return false;
    if (ch->ntx == ch->tx_cap) {
        size_t cap = ch->tx_cap ? ch->tx_cap * 2 : 16;
        wr_amqp_txop_t *nt = realloc(ch->txops, cap * sizeof(*nt));
        if (!nt)
            wr_panic(__FILE__, __LINE__, "out of memory");
        ch->txops = nt;
        ch->tx_cap = cap;
    }
    t = &ch->txops[ch->ntx++];
    memset(t, 0, sizeof(*t));
    t->id = id;
    t->tag = tag;
    t->multiple = multiple;
    t->kind = kind;
    return true;
}

void wr__amqp_pub_chan_free(wr_amqp_conn_t *c, wr_amqp_chan_t *ch)
{
    wr_amqp_pub_t *p = c->pub;

    if (p && p->active && p->ch_id == ch->id && p->serial == ch->serial) {
        /* Content complete before the close: RabbitMQ would have routed
         * it, and so do we. */
        wr__amqp_pub_flush(c);
    }
    tx_clear(ch);
    free(ch->txops);
    ch->txops = NULL;
    ch->tx_cap = 0;
    free(ch->slots);
    ch->slots = NULL;
    ch->slot_cap = 0;
    ch->slot_head = ch->slot_tail = 0;
}

void wr__amqp_pub_conn_free(wr_amqp_conn_t *c)
{
    if (c->pub) {
        if (c->pub->active) {
            for (size_t i = 0; i < c->pub->n; i++)
                wr_body_unref(c->pub->msgs[i].body);
        }
        free(c->pub);
        c->pub = NULL;
    }
}
