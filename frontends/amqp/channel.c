/*
 * channel.c - channels of a connection: the table by id, channel.open /
 * close / flow both ways, channel exceptions, and content assembly.
 *
 * Layout: table (get, new, free), exceptions, content assembly (a content
 * method, then one header frame, then body frames until body-size), then the
 * channel.* and access.* handlers.
 *
 * Content rules (RabbitMQ's): a header or body frame with no content method
 * before it is 505 UNEXPECTED_FRAME, as is a method frame where a header or
 * body frame was due, and a header of another class; body frames past the
 * announced size are 501 FRAME_ERROR; a body larger than the message limit is
 * a channel exception 406 PRECONDITION_FAILED. Content for a channel that is
 * closing is dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "../../core/log.h"
#include "amqp_int.h"

/* ------------------------------------------------------------------------ */
/* Table                                                                    */

wr_amqp_chan_t *wr__amqp_chan_get(wr_amqp_conn_t *c, uint16_t id)
{
    return id < c->chans_cap ? c->chans[id] : NULL;
}

static wr_amqp_chan_t *chan_new(wr_amqp_conn_t *c, uint16_t id)
{
    wr_amqp_chan_t *ch;

    if (id >= c->chans_cap) {
        uint32_t cap = c->chans_cap ? c->chans_cap : 8;
        wr_amqp_chan_t **nt;
        while (cap <= id)
            cap *= 2;
        nt = realloc(c->chans, cap * sizeof(*nt));
        if (!nt)
            wr_panic(__FILE__, __LINE__, "out of memory");
        memset(nt + c->chans_cap, 0, (cap - c->chans_cap) * sizeof(*nt));
        c->chans = nt;
        c->chans_cap = cap;
    }
    ch = calloc(1, sizeof(*ch));
    if (!ch)
        wr_panic(__FILE__, __LINE__, "out of memory");
    ch->id = id;
    ch->serial = ++c->chan_serial;
    ch->state = WR_AMQP_CH_OPEN;
    ch->flow_active = true;
    init_amqp_pool(&ch->pool, 4096);
    c->chans[id] = ch;
    c->chans_open++;
    atomic_fetch_add_explicit(&c->env->channels, 1, memory_order_relaxed);
    return ch;
}

static void content_reset(wr_amqp_chan_t *ch)
{
    free(ch->body);
    ch->body = NULL;
    wr_body_unref(ch->msg);
    ch->msg = NULL;
    ch->content = WR_AMQP_CONTENT_NONE;
    ch->content_method = NULL;
    ch->content_args = NULL;
    memset(&ch->props, 0, sizeof(ch->props));
    ch->props_tagged = NULL;
    ch->props_tagged_len = 0;
    ch->body_size = ch->body_got = 0;
    recycle_amqp_pool(&ch->pool);
}

static void backlog_clear(wr_amqp_conn_t *c, wr_amqp_chan_t *ch)
{
    if (ch->backlog) {
        c->backlog_bytes -= evbuffer_get_length(ch->backlog);
        evbuffer_free(ch->backlog);
        ch->backlog = NULL;
    }
}

static void chan_free(wr_amqp_conn_t *c, wr_amqp_chan_t *ch)
{
    /* Publishes complete before the close are routed; unsettled deliveries
     * go back to their queues; consumers end. */
    wr__amqp_pub_chan_free(c, ch);
    wr__amqp_deliver_chan_free(c, ch);
    c->chans[ch->id] = NULL;
    if (ch->tn_counted)
        wr_tenant_chan_close(c->tn);
    c->chans_open--;
    c->chans_freed++;
    atomic_fetch_sub_explicit(&c->env->channels, 1, memory_order_relaxed);
    content_reset(ch);
    backlog_clear(c, ch);
    empty_amqp_pool(&ch->pool);
    free(ch);
}

void wr__amqp_chan_free_all(wr_amqp_conn_t *c)
{
    for (uint32_t i = 0; i < c->chans_cap; i++) {
        if (c->chans[i])
            chan_free(c, c->chans[i]);
    }
    free(c->chans);
    c->chans = NULL;
    c->chans_cap = 0;
}

/* ------------------------------------------------------------------------ */
/* Exceptions                                                               */

static void vchan_error(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, uint16_t code,
                        amqp_method_number_t cause, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static void vchan_error(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, uint16_t code,
                        amqp_method_number_t cause, const char *fmt, va_list ap)
{
    char text[256], msg[200];
    amqp_channel_close_t cl;

    if (ch->state == WR_AMQP_CH_CLOSING)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    snprintf(text, sizeof(text), "%s - %s", wr__amqp_reply_name(code), msg);
    wr_log(WR_LOG_INFO, WR_LOGC_AMQP, "conn=%llu channel=%u close code=%u text=\"%s\"",
           (unsigned long long)c->id, ch->id, code, text);
    cl.reply_code = code;
    cl.reply_text = amqp_cstring_bytes(text);
    cl.class_id = WR_AMQP_CLASS(cause);
    cl.method_id = WR_AMQP_METHOD(cause);
    content_reset(ch);
    ch->state = WR_AMQP_CH_CLOSING;
    wr__amqp_send(c, ch->id, AMQP_CHANNEL_CLOSE_METHOD, &cl);
}

void wr__amqp_chan_error(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, uint16_t code,
                         amqp_method_number_t cause, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vchan_error(c, ch, code, cause, fmt, ap);
    va_end(ap);
}

void wr__amqp_fail(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, wr_err_t err, amqp_method_number_t cause,
                   const char *fmt, ...)
{
    wr_amqp_reply_t r = wr__amqp_reply_of(err);
    char msg[200], qmsg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (wr__amqp_quota_text(c, err, msg, qmsg, sizeof(qmsg)))
        memcpy(msg, qmsg, sizeof(msg)); /* the same size */
    if (r.hard || !ch)
        wr__amqp_conn_error(c, r.code, cause, "%s", msg);
    else
        wr__amqp_chan_error(c, ch, r.code, cause, "%s", msg);
}

/* ------------------------------------------------------------------------ */
/* Content assembly                                                         */

/* A copy of bytes in the channel's pool, so decoded fields outlive the frame. */
static amqp_bytes_t pool_copy(amqp_pool_t *pool, const void *p, size_t n)
{
    amqp_bytes_t b = {n, NULL};

    if (n == 0)
        return b;
    b.bytes = amqp_pool_alloc(pool, n);
    if (!b.bytes)
        wr_panic(__FILE__, __LINE__, "out of memory");
    memcpy(b.bytes, p, n);
    return b;
}

void wr__amqp_chan_expect_content(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_method_t *m,
                                  const wr_amqp_frame_t *f)
{
    amqp_bytes_t fields = pool_copy(&ch->pool, f->payload + 4, f->size - 4);
    int rc = wr__amqp_method_ok(m->id, fields.bytes, fields.len)
                 ? amqp_decode_method(m->id, &ch->pool, fields, &ch->content_args)
                 : AMQP_STATUS_BAD_AMQP_DATA;

    if (rc == AMQP_STATUS_NO_MEMORY)
        wr_panic(__FILE__, __LINE__, "out of memory");
    if (rc < 0) {
        content_reset(ch);
        wr__amqp_conn_error(c, AMQP_FRAME_ERROR, m->id, "cannot decode %s", m->name);
        return;
    }
    ch->content_method = m;
    ch->content = WR_AMQP_CONTENT_HEADER;
}

static void content_done(wr_amqp_conn_t *c, wr_amqp_chan_t *ch)
{
    const wr_amqp_method_t *m = ch->content_method;
    wr_amqp_call_t call = {m->id, ch->id, ch->content_args, &ch->props, {NULL, 0}};
    uint64_t freed = c->chans_freed;

    if (ch->msg) {
        call.body.ptr = wr_body_bytes(ch->msg);
        call.body.len = ch->msg->body_len;
    }
    /* The handler borrows args, props and body for the call and may take
     * ch->msg; the next content may start right after, so the channel is
     * reset afterwards, unless the handler freed it (a connection exception
     * frees them all). */
    ch->content = WR_AMQP_CONTENT_NONE;
    wr__amqp_call(c, ch, m, &call);
    if (c->chans_freed == freed)
        content_reset(ch);
}

/* The message: the tagged properties and the body in one allocation. */
static void make_msg(wr_amqp_chan_t *ch, const void *body, size_t len)
{
    wr_slice_t props = {ch->props_tagged, ch->props_tagged_len};
    wr_slice_t b = {body, len};

    ch->msg = wr_body_new(props, b);
}

static void on_header(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_frame_t *f)
{
    wr_amqp_content_hdr_t h;
    uint32_t max = c->env->max_message_bytes ? c->env->max_message_bytes : WR_AMQP_MSG_MAX_DEFAULT;
    uint8_t *tagged;

    if (ch->content != WR_AMQP_CONTENT_HEADER) {
        wr__amqp_conn_error(c, AMQP_UNEXPECTED_FRAME, 0,
                            "content header on channel %u without a content method", ch->id);
        return;
    }
    if (wr__amqp_content_hdr_parse(f->payload, f->size, &h) != WR_OK) {
        wr__amqp_conn_error(c, AMQP_FRAME_ERROR, ch->content_method->id,
                            "malformed content header on channel %u", ch->id);
        return;
    }
    if (h.class_id != WR_AMQP_CLASS(ch->content_method->id)) {
        wr__amqp_conn_error(c, AMQP_UNEXPECTED_FRAME, ch->content_method->id,
                            "expected content header for class %u, got one for class %u",
                            WR_AMQP_CLASS(ch->content_method->id), h.class_id);
        return;
    }
    /* Kept as received, behind the format tag (props.c); scanned, not
     * decoded: the fields the broker needs are located and checked. */
    tagged = amqp_pool_alloc(&ch->pool, h.props_len + 1);
    if (!tagged)
        wr_panic(__FILE__, __LINE__, "out of memory");
    tagged[0] = WR_AMQP_PROPS_091;
    memcpy(tagged + 1, h.props, h.props_len);
    if (wr__amqp_props_scan(tagged + 1, h.props_len, &ch->props) != WR_OK) {
        wr__amqp_conn_error(c, AMQP_FRAME_ERROR, ch->content_method->id,
                            "cannot decode content properties on channel %u", ch->id);
        return;
    }
    ch->props_tagged = tagged;
    ch->props_tagged_len = h.props_len + 1;
    if (h.body_size > max) {
        wr__amqp_chan_error(c, ch, AMQP_PRECONDITION_FAILED, ch->content_method->id,
                            "message size %llu is larger than configured max size %u",
                            (unsigned long long)h.body_size, max);
        return;
    }
    ch->body_size = h.body_size;
    ch->body_got = 0;
    ch->content = WR_AMQP_CONTENT_BODY;
    if (h.body_size == 0) {
        make_msg(ch, NULL, 0);
        content_done(c, ch);
    }
}

static void on_body(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_frame_t *f)
{
    if (ch->content != WR_AMQP_CONTENT_BODY) {
        wr__amqp_conn_error(c, AMQP_UNEXPECTED_FRAME, 0,
                            "content body on channel %u without a content header", ch->id);
        return;
    }
    if (f->size > ch->body_size - ch->body_got) {
        wr__amqp_conn_error(c, AMQP_FRAME_ERROR, ch->content_method->id,
                            "content body on channel %u exceeds the announced %llu bytes", ch->id,
                            (unsigned long long)ch->body_size);
        return;
    }
    if (ch->body_got == 0 && f->size == ch->body_size) {
        /* The whole body in one frame (the common case): one copy. */
        make_msg(ch, f->payload, f->size);
        ch->body_got = f->size;
        content_done(c, ch);
        return;
    }
    if (!ch->body) {
        ch->body = malloc(ch->body_size);
        if (!ch->body)
            wr_panic(__FILE__, __LINE__, "out of memory");
    }
    if (f->size)
        memcpy(ch->body + ch->body_got, f->payload, f->size);
    ch->body_got += f->size;
    if (ch->body_got == ch->body_size) {
        make_msg(ch, ch->body, ch->body_size);
        content_done(c, ch);
    }
}

void wr__amqp_chan_content_frame(wr_amqp_conn_t *c, const wr_amqp_frame_t *f)
{
    wr_amqp_chan_t *ch = wr__amqp_chan_get(c, f->channel);

    if (!ch) {
        wr__amqp_conn_error(c, AMQP_CHANNEL_ERROR, 0,
                            "expected 'channel.open' on channel %u, got a content frame",
                            f->channel);
        return;
    }
    if (ch->state == WR_AMQP_CH_CLOSING)
        return;
    if (f->type == AMQP_FRAME_HEADER)
        on_header(c, ch, f);
    else
        on_body(c, ch, f);
}

/* ------------------------------------------------------------------------ */
/* Handlers                                                                 */

void wr__amqp_on_channel_open(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    amqp_channel_open_ok_t ok = {{0, NULL}};

    if (ch) {
        wr__amqp_conn_error(c, AMQP_CHANNEL_ERROR, call->id, "second 'channel.open' seen");
        return;
    }
    if (call->channel > c->channel_max) {
        wr__amqp_conn_error(c, AMQP_NOT_ALLOWED, call->id,
                            "channel %u is above the negotiated channel_max (%u)", call->channel,
                            c->channel_max);
        return;
    }
    /* max-channels: RabbitMQ closes the connection (530) when a user's
     * channel limit is reached (rabbit_reader); ours is the tenant's. */
    if (c->tn && wr_tenant_chan_open(c->tn) != WR_OK) {
        wr__amqp_conn_error(c, AMQP_NOT_ALLOWED, call->id,
                            "number of channels opened in vhost '%s' has reached the maximum "
                            "allowed limit of (%llu)",
                            wr__amqp_vhost(c),
                            (unsigned long long)wr_tenant_limit(c->tn, WR_Q_MAX_CHANNELS));
        return;
    }
    ch = chan_new(c, call->channel);
    ch->tn_counted = c->tn != NULL;
    wr__amqp_send(c, ch->id, AMQP_CHANNEL_OPEN_OK_METHOD, &ok);
}

void wr__amqp_on_channel_flow(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_channel_flow_t *m = call->args;
    amqp_channel_flow_ok_t ok = {m->active};

    /* active=false: stop sending content (deliveries) until active=true. */
    ch->flow_active = m->active != 0;
    wr__amqp_send(c, ch->id, AMQP_CHANNEL_FLOW_OK_METHOD, &ok);
    c->want_pump = true; /* consumers stop or go on */
    wr__amqp_consumers_pump(c);
}

void wr__amqp_on_channel_flow_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    /* We never send channel.flow, so there is nothing to wait for. */
    (void)c;
    (void)ch;
    (void)call;
}

void wr__amqp_on_channel_close(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    amqp_channel_close_ok_t ok = {0};
    uint16_t id = ch->id;

    /* Also when we sent channel.close ourselves (closes crossing): both
     * sides said close, the channel is done; a close-ok that may still come
     * for ours is ignored by the dispatcher. */
    (void)call;
    chan_free(c, ch);
    wr__amqp_send(c, id, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
}

void wr__amqp_on_channel_close_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    (void)call;
    /* Unsolicited close-ok on an open channel: harmless, ignored. */
    if (ch->state == WR_AMQP_CH_CLOSING)
        chan_free(c, ch);
}

void wr__amqp_on_access_request(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    /* Deprecated in 0-9-1; RabbitMQ answers with ticket 1, and so do we. */
    amqp_access_request_ok_t ok = {1};

    (void)call;
    wr__amqp_send(c, ch->id, AMQP_ACCESS_REQUEST_OK_METHOD, &ok);
}

/* ------------------------------------------------------------------------ */
/* Backlog                                                                  */

void wr__amqp_chan_replay(wr_amqp_conn_t *c, wr_amqp_chan_t *ch)
{
    uint16_t id = ch->id;
    uint64_t serial = ch->serial;

    if (c->replaying)
        return; /* the outer replay goes on */
    c->replaying = true;
    for (;;) {
        wr_amqp_frame_t f;
        size_t used, n;
        ch = wr__amqp_chan_get(c, id);
        if (!ch || ch->serial != serial || ch->busy || !ch->backlog || !c->out ||
            c->state != WR_AMQP_S_OPEN)
            break;
        n = evbuffer_get_length(ch->backlog);
        if (n == 0)
            break;
        if (wr__amqp_frame_read(ch->backlog, 0, &f, &used) != WR_OK) {
            backlog_clear(c, ch); /* cannot happen: the frames were checked */
            break;
        }
        /* The frame leaves the backlog before it runs: running it may free
         * the channel (and the backlog with it). */
        if (used > c->replay_cap) {
            uint8_t *nb = realloc(c->replay_buf, used);
            if (!nb)
                wr_panic(__FILE__, __LINE__, "out of memory");
            c->replay_buf = nb;
            c->replay_cap = used;
        }
        memcpy(c->replay_buf, f.payload - 7, used);
        f.payload = c->replay_buf + 7;
        evbuffer_drain(ch->backlog, used);
        c->backlog_bytes -= used;
        wr__amqp_conn_frame(c, &f, true);
    }
    c->replaying = false;
    wr__amqp_flush(c);
}
