/*
 * gate.c - hands evhtp whole lines of a request head, one head at a
 * time, and bodies by length (see gate.h for why).
 *
 * States: HEAD (lines pass; a blank line after at least one line ends the
 * head) -> WAIT (nothing passes until evhtp has parsed that head) -> BODY
 * (Content-Length bytes pass) or CHUNKED (all passes until the request
 * completes) -> HEAD. From a head's blank line until evhtp has finished
 * that request the gate is `busy`, and HEAD passes nothing.
 *
 * Mechanics. The gate takes the socket bufferevent's callbacks and calls
 * evhtp's. A bufferevent's input buffer is frozen at its end (only the
 * socket read appends), so the gate rebuilds it from the front: the bytes
 * evhtp has been given and not yet consumed (`given`, kept current by a
 * buffer callback that sees evhtp drain), then what passes now; new bytes
 * go to `held`. Not a libevent filter bufferevent: behind a filter evhtp
 * would see its output as written once it reached the filter, and free a
 * closing connection with its last answer still unsent.
 *
 * Writing an answer at once (`direct`, plain sockets only) does what
 * libevent's own write would do a turn later: write, and once the output
 * is empty drop the write event (with epoll's changelist that cancels the
 * add evhtp's reply queued in this turn: no system call) and call evhtp's
 * write callback, which finishes the request.
 */
#include "gate.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rest_int.h"

#define GATE_LINE_MAX (16u << 10) /* twice evhtp's own limit on a line */
#define GATE_HELD_MAX (64u << 10) /* waiting behind a busy request: reading stops */

typedef enum { G_HEAD, G_WAIT, G_BODY, G_CHUNKED } gstate_t;

struct wr_rest_gate {
    evhtp_connection_t *conn;
    struct bufferevent *bev;
    struct evbuffer *held, *tmp;
    struct evbuffer_cb_entry *watch;
    size_t given;   /* front bytes of bev's input that evhtp may parse */
    bool rebuilding; /* the watch ignores the gate's own moves */
    bufferevent_data_cb ev_read, ev_write; /* evhtp's */
    bufferevent_event_cb ev_event;
    void *ev_arg;
    struct event *kick_ev;
    wr_rest_gate_kick_fn kick_fn;
    void *kick_arg;
    gstate_t state;
    bool busy;      /* a request passed and evhtp has not finished it */
    bool chunked;   /* that request's body passed as it came */
    bool direct;    /* plain socket: the kick writes answers out */
    bool throttled; /* the gate turned reading off: too much is held */
    bool eof;       /* the client's end of input, told to evhtp once in_request() is over */
    evhtp_request_t *holding; /* wr_rest_gate_hold: being answered, the next waits */
    bool in_kick, in_read, freed; /* a free inside either waits for its end */
    event_callback_fn rd_cb; /* libevent's socket read, while ours stands in */
    void *rd_arg;
    short rd_events;
    uint32_t head_lines; /* lines of the current head passed so far */
    uint64_t body_left;
    int64_t held_since_ms;
};

/* Where a request may start: the first byte of a method, or the empty
 * lines the parser skips before one. */
static bool method_start(unsigned char c)
{
    return c == '\r' || c == '\n' || c == '_' || (c >= 'A' && c <= 'Z');
}

/*
 * How many bytes at the front of src may pass in state HEAD. Lines end as
 * libevent's EVBUFFER_EOL_CRLF ends them: at a LF, with the CR before it
 * if there is one. The scan walks the buffer's chains with memchr: line by
 * line through evbuffer calls it was a few percent of a request's CPU.
 */
static size_t head_bytes(wr_rest_gate_t *g, struct evbuffer *src)
{
    size_t n = evbuffer_get_length(src);
    size_t line_at = 0; /* where the current line starts */
    size_t chunk_at = 0; /* where the current chain's bytes start */
    bool cr = false;     /* the byte before the current chain is a CR */
    struct evbuffer_ptr at;

    if (evbuffer_ptr_set(src, &at, 0, EVBUFFER_PTR_SET) != 0)
        return 0;
    while (chunk_at < n) {
        struct evbuffer_iovec v;
        const unsigned char *p;
        size_t i = 0;

        if (evbuffer_peek(src, -1, &at, &v, 1) < 1 || v.iov_len == 0)
            break;
        p = v.iov_base;
        while (i < v.iov_len) {
            const unsigned char *lf;
            size_t lf_at, line;

            /* Not the start of a method: the parser refuses it on its
             * first byte, before any loop that could overrun. Let it see
             * that. */
            if (chunk_at + i == line_at && g->head_lines == 0 && !method_start(p[i]))
                return n;
            lf = memchr(p + i, '\n', v.iov_len - i);
            if (!lf)
                break;
            lf_at = chunk_at + (size_t)(lf - p);
            line = lf_at - line_at;
            if (line > 0 && (lf > p ? lf[-1] == '\r' : cr))
                line--;
            line_at = lf_at + 1;
            i = (size_t)(lf - p) + 1;
            if (line > 0) {
                g->head_lines++;
            } else if (g->head_lines > 0) { /* the blank line: the head is whole */
                g->head_lines = 0;
                g->state = G_WAIT;
                g->busy = true;
                return line_at;
            } /* else: an empty line before a request, which the parser skips */
        }
        cr = p[v.iov_len - 1] == '\r';
        chunk_at += v.iov_len;
        if (evbuffer_ptr_set(src, &at, v.iov_len, EVBUFFER_PTR_ADD) != 0)
            break;
    }
    /* A partial line waits, unless it is too long to be one. */
    return n - line_at > GATE_LINE_MAX ? n : line_at;
}

/* A client that sends far ahead of its answers waits in its socket. */
static void throttle(wr_rest_gate_t *g)
{
    size_t n = evbuffer_get_length(g->held);

    if (!g->throttled && n >= GATE_HELD_MAX) {
        g->throttled = true;
        bufferevent_disable(g->bev, EV_READ);
    } else if (g->throttled && n < GATE_HELD_MAX / 2) {
        g->throttled = false;
        bufferevent_enable(g->bev, EV_READ);
    }
}

/* Moves new input to `held`, then what may pass back behind `given`. */
static size_t pass(wr_rest_gate_t *g)
{
    struct evbuffer *in = bufferevent_get_input(g->bev);
    size_t moved = 0;

    g->rebuilding = true;
    if (evbuffer_get_length(in) > g->given) {
        evbuffer_remove_buffer(in, g->tmp, g->given);
        evbuffer_add_buffer(g->held, in);
    } else {
        evbuffer_add_buffer(g->tmp, in);
    }
    for (;;) {
        size_t n = evbuffer_get_length(g->held), take = 0;

        if (n == 0)
            break;
        switch (g->state) {
        case G_CHUNKED:
            take = n;
            break;
        case G_BODY:
            take = n < g->body_left ? n : (size_t)g->body_left;
            g->body_left -= take;
            if (g->body_left == 0)
                g->state = G_HEAD;
            break;
        case G_HEAD:
            take = g->busy ? 0 : head_bytes(g, g->held);
            break;
        case G_WAIT:
            break;
        }
        if (take == 0)
            break;
        evbuffer_remove_buffer(g->held, g->tmp, take);
        moved += take;
    }
    g->given = evbuffer_get_length(g->tmp);
    evbuffer_prepend_buffer(in, g->tmp);
    g->rebuilding = false;

    if (evbuffer_get_length(g->held) == 0)
        g->held_since_ms = 0;
    else if (moved > 0 || g->held_since_ms == 0)
        g->held_since_ms = wr_now_mono_ms();
    throttle(g);
    return moved;
}

/*
 * The input buffer changed. evhtp drained what it parsed: that much less
 * is given. The socket read appended: gate it now, inside the read, so
 * that evhtp never finds ungated bytes whichever way it comes to read
 * (its read callback, a resume, its output drained).
 */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    wr_rest_gate_t *g = arg;

    (void)buf;
    if (g->rebuilding)
        return;
    g->given -= info->n_deleted < g->given ? info->n_deleted : g->given;
    if (info->n_added > 0)
        pass(g);
}

static void gate_read(struct bufferevent *bev, void *arg)
{
    wr_rest_gate_t *g = arg;

    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        g->ev_read(bev, g->ev_arg);
}

static void gate_write(struct bufferevent *bev, void *arg)
{
    wr_rest_gate_t *g = arg;

    g->ev_write(bev, g->ev_arg);
}

/*
 * Whether the connection's end of input should wait: a request is being
 * answered, or the rest of a body waits for the next pass.
 */
static bool in_request(const wr_rest_gate_t *g)
{
    return g->holding != NULL || (g->state == G_BODY && evbuffer_get_length(g->held) > 0);
}

/*
 * While a request is answered, reading stays on, so its end and its idle
 * timeout come now: evhtp would free the connection and the answer with
 * it. The end waits until evhtp has finished what passed (on_kick tells
 * it then); a read timeout does not count while the client waits on us.
 * A request cut short (its body not all there) gets both at once.
 */
static void gate_event(struct bufferevent *bev, short what, void *arg)
{
    wr_rest_gate_t *g = arg;

    if (in_request(g) && (what & BEV_EVENT_READING) && (what & BEV_EVENT_EOF)) {
        g->eof = true;
        wr_rest_gate_kick(g); /* on_kick tells evhtp when the request is through */
        return;
    }
    if (in_request(g) && (what & BEV_EVENT_READING) && (what & BEV_EVENT_TIMEOUT)) {
        if (!g->throttled)
            bufferevent_enable(bev, EV_READ);
        return;
    }
    g->ev_event(bev, what, g->ev_arg);
}

/* Writes out what evhtp queued, as libevent's write event would. */
static void flush(wr_rest_gate_t *g)
{
    struct evbuffer *out = bufferevent_get_output(g->bev);
    int n;

    if (!g->direct || g->chunked || evbuffer_get_length(out) == 0 ||
        !(bufferevent_get_enabled(g->bev) & EV_WRITE) ||
        (g->conn->flags & (EVHTP_CONN_FLAG_PAUSED | EVHTP_CONN_FLAG_WAITING)))
        return;
    /* The socket bufferevent keeps its output's front frozen but for its
     * own writes. Short, EAGAIN or an error: the write event, still armed,
     * finishes the job or reports the error. */
    evbuffer_unfreeze(out, 1);
    n = evbuffer_write(out, bufferevent_getfd(g->bev));
    evbuffer_freeze(out, 1);
    if (n < 0 || evbuffer_get_length(out) > 0)
        return;
    event_del(&g->bev->ev_write);
    g->ev_write(g->bev, g->ev_arg); /* may free the connection, and the gate */
}

/*
 * The socket read, in place of libevent's (plain sockets): one read of up
 * to 16 KiB, as libevent reads, without the FIONREAD ioctl libevent makes
 * first to size it (about 6% of a post's CPU). Then as libevent: the read
 * callback, or the event callback with EOF, an error or a timeout, reading
 * turned off.
 *
 * The read lands in a scratch buffer and is copied into the input buffer at
 * its size. A request is a few hundred bytes; reserving room for a whole
 * read in the buffer itself allocated a 32 KiB chain per request, freed
 * again once evhtp had drained it.
 */
static _Thread_local char read_scratch[16384];

static void sock_read(evutil_socket_t fd, short what, void *arg)
{
    wr_rest_gate_t *g = arg;
    struct bufferevent *bev = g->bev;
    struct evbuffer *in = bufferevent_get_input(bev);
    short ev = BEV_EVENT_READING;
    ssize_t n;

    bufferevent_incref(bev);
    g->in_read = true;
    if (what & EV_TIMEOUT) {
        ev |= BEV_EVENT_TIMEOUT;
        goto failed;
    }
    n = read(fd, read_scratch, sizeof(read_scratch));
    if (n > 0) {
        evbuffer_unfreeze(in, 0);
        evbuffer_add(in, read_scratch, (size_t)n); /* on_input gates it */
        evbuffer_freeze(in, 0);
        if (!g->freed)
            gate_read(bev, g);
        goto out;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        goto out;
    ev |= n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR;
failed:
    bufferevent_disable(bev, EV_READ);
    if (!g->freed)
        gate_event(bev, ev, g);
out:
    g->in_read = false;
    if (g->freed && !g->in_kick)
        wr_rest_gate_free(g);
    bufferevent_decref(bev);
}

/* Puts sock_read in place of libevent's read callback, or back (cb NULL). */
static void swap_read(wr_rest_gate_t *g, event_callback_fn cb)
{
    struct bufferevent *bev = g->bev;
    bool on = event_pending(&bev->ev_read, EV_READ, NULL);

    event_del(&bev->ev_read);
    event_assign(&bev->ev_read, bufferevent_get_base(bev), bufferevent_getfd(bev), g->rd_events,
                 cb ? cb : g->rd_cb, cb ? (void *)g : g->rd_arg);
    if (on)
        event_add(&bev->ev_read, evutil_timerisset(&bev->timeout_read) ? &bev->timeout_read : NULL);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    wr_rest_gate_t *g = arg;
    size_t moved;

    (void)fd;
    (void)what;
    g->in_kick = true;
    if (g->kick_fn)
        g->kick_fn(g->kick_arg); /* may resume evhtp, which then reads its input itself */
    if (!g->freed)
        flush(g);
    if (!g->freed) {
        moved = pass(g);
        /* A paused evhtp reads its input when it resumes; one waiting for
         * its output to drain, when it has drained. */
        if (moved > 0 && !(g->conn->flags & (EVHTP_CONN_FLAG_PAUSED | EVHTP_CONN_FLAG_WAITING)))
            g->ev_read(g->bev, g->ev_arg);
    }
    if (!g->freed && g->eof && !in_request(g)) {
        g->eof = false;
        errno = 0; /* evhtp takes an EOF with errno EAGAIN for a spurious one */
        g->ev_event(g->bev, BEV_EVENT_EOF | BEV_EVENT_READING, g->ev_arg);
    }
    g->in_kick = false;
    if (g->freed && !g->in_read)
        wr_rest_gate_free(g);
}

int wr_rest_gate_new(evhtp_connection_t *conn, wr_rest_gate_t **out)
{
    wr_rest_gate_t *g = calloc(1, sizeof(*g));

    if (!g)
        return -1;
    g->conn = conn;
    g->bev = conn->bev;
    g->direct = conn->ssl == NULL;
    g->held = evbuffer_new();
    g->tmp = evbuffer_new();
    g->kick_ev = event_new(bufferevent_get_base(conn->bev), -1, 0, on_kick, g);
    g->watch = evbuffer_add_cb(bufferevent_get_input(conn->bev), on_input, g);
    if (!g->held || !g->tmp || !g->kick_ev || !g->watch) {
        wr_rest_gate_free(g);
        return -1;
    }
    bufferevent_getcb(conn->bev, &g->ev_read, &g->ev_write, &g->ev_event, &g->ev_arg);
    bufferevent_setcb(conn->bev, gate_read, gate_write, gate_event, g);
    if (g->direct) {
        g->rd_cb = event_get_callback(&conn->bev->ev_read);
        g->rd_arg = event_get_callback_arg(&conn->bev->ev_read);
        g->rd_events = event_get_events(&conn->bev->ev_read);
        swap_read(g, sock_read);
    }
    *out = g;
    return 0;
}

void wr_rest_gate_free(wr_rest_gate_t *g)
{
    if (!g)
        return;
    if (g->watch)
        evbuffer_remove_cb_entry(bufferevent_get_input(g->bev), g->watch);
    g->watch = NULL;
    if (g->ev_read) /* give evhtp its callbacks back */
        bufferevent_setcb(g->bev, g->ev_read, g->ev_write, g->ev_event, g->ev_arg);
    g->ev_read = NULL;
    if (g->rd_cb) /* and libevent its read */
        swap_read(g, NULL);
    g->rd_cb = NULL;
    if (g->in_kick || g->in_read) { /* on_kick or sock_read frees it when done with it */
        g->freed = true;
        return;
    }
    if (g->kick_ev)
        event_free(g->kick_ev);
    if (g->held)
        evbuffer_free(g->held);
    if (g->tmp)
        evbuffer_free(g->tmp);
    free(g);
}

void wr_rest_gate_headers(wr_rest_gate_t *g, evhtp_request_t *req)
{
    const char *te = evhtp_kv_find(req->headers_in, "Transfer-Encoding");
    uint64_t len = evhtp_request_content_len(req);

    g->head_lines = 0;
    g->chunked = false;
    if (te && strcasecmp(te, "identity") != 0) {
        /* Passes as it comes: evhtp may get the next request with it, so
         * this one is not held to (paused instead, by rest.c). */
        g->state = G_CHUNKED;
        g->chunked = true;
        g->busy = false;
    } else if (len > 0) {
        g->state = G_BODY;
        g->body_left = len;
    } else {
        g->state = G_HEAD;
    }
    wr_rest_gate_kick(g);
}

/* Not WAIT -> HEAD: by the time evhtp completes a request with a body,
 * the gate may already wait on the next request's head. */
void wr_rest_gate_complete(wr_rest_gate_t *g)
{
    if (g->state == G_CHUNKED) {
        g->state = G_HEAD;
        g->head_lines = 0;
        wr_rest_gate_kick(g);
    }
}

bool wr_rest_gate_hold(wr_rest_gate_t *g, evhtp_request_t *req)
{
    g->holding = g->chunked ? NULL : req;
    return g->holding != NULL;
}

void wr_rest_gate_done(wr_rest_gate_t *g, evhtp_request_t *req)
{
    if (req != g->holding)
        return;
    g->busy = false;
    g->holding = NULL;
    if (!g->in_kick) /* else on_kick passes the next one itself */
        wr_rest_gate_kick(g);
}

void wr_rest_gate_kick(wr_rest_gate_t *g)
{
    event_active(g->kick_ev, EV_TIMEOUT, 1);
}

void wr_rest_gate_on_kick(wr_rest_gate_t *g, wr_rest_gate_kick_fn fn, void *arg)
{
    g->kick_fn = fn;
    g->kick_arg = arg;
}

int64_t wr_rest_gate_held_since_ms(const wr_rest_gate_t *g)
{
    return g->held_since_ms;
}
