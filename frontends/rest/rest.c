/*
 * rest.c - the REST front end's plugin: libevhtp listeners on the shard
 * loops, and the thin adapter between evhtp requests and wr_rest_handle().
 *
 * Listeners. One evhtp_t per shard loop, each with its own socket bound to
 * the same address with SO_REUSEPORT, so the kernel spreads connections
 * over the shard threads and a connection lives on one loop (no evhtp
 * thread pool, no locks). The loops are already running when start() is
 * called, so each evhtp_t is created and bound on its own loop's thread:
 * start() posts the work and waits on a condition variable.
 *
 * Requests. evhtp parses; on_request() builds a wr_rest_req_t and calls
 * wr_rest_handle(). An answer, inline or from the core later (on_done()),
 * is queued with evhtp and the gate is kicked: later in the same turn it
 * writes the answer out and evhtp finishes the request. A connection that
 * evhtp frees while its request waits for the core is marked dead;
 * on_done() then only frees the adapter's state.
 *
 * Pipelining. evhtp's parser misreads input that ends inside a line, so a
 * gate (gate.c) feeds it whole lines, one request at a time: the next
 * request waits at the gate until evhtp has finished the current one, so
 * the connection is not paused while the core answers (reading stays on;
 * pausing cost two epoll_ctl calls per request). A chunked body passes the
 * gate as it comes, so after one evhtp may already hold the next request:
 * then the request is paused for the core, and an inline answer pauses and
 * resumes on the next turn (evhtp parses a pipelined request only on a
 * resume, which it ignores unless the connection is paused).
 *
 * Limits. A body over max_body_bytes is refused with 413 and a JSON body
 * as soon as it is known: from Content-Length when the headers end, or
 * while a chunked body arrives. The connection is then taken from evhtp,
 * the reply written, the rest of what the client sends discarded (bounded
 * in bytes and time, so the client reads the 413 rather than a reset) and
 * the socket closed. More than MAX_HEADERS header lines get a 431 the same
 * way. Nothing is buffered past the limit.
 *
 * Abuse limits (docs/security.md). A connection idle, or not reading its
 * response, for --http-idle-timeout is closed (evhtp's read and write
 * timeouts). A request must arrive whole within --http-request-timeout of
 * its first byte: a sweep per loop, once a second, closes connections whose
 * request is older (a slow-loris trickling a header byte at a time resets
 * the read timeout forever, not this one). A client that pipelines requests
 * without reading the responses gets, once OUT_MAX bytes wait for it, a 503
 * and the connection closes: its unread output stays bounded.
 *
 * HTTPS (--https): a second evhtp_t per loop with evhtp's OpenSSL support,
 * TLS 1.2 or newer, --tls-cert/--tls-key, and --tls-ca to verify client
 * certificates when a client presents one.
 *
 * Layout: state, lingering close, hooks, request/response, listeners on
 * the loops, the plugin vtable.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <evhtp/evhtp.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../core/auth.h"
#include "../../core/log.h"
#include "gate.h"
#include "rest_int.h"

#define MAX_HEADERS 128 /* header lines per request */
#define LISTEN_BACKLOG 1024
#define OUT_MAX (4u << 20)    /* unread response bytes before a pipeliner is cut off */
#define SWEEP_MS 1000         /* request timeout sweep */
#define LINGER_TIMEOUT_S 5    /* after a 413: how long to keep discarding */
#define LINGER_MAX (8u << 20) /* after a 413: how much to discard at most */

/* ------------------------------------------------------------------------ */
/* State                                                                    */

typedef struct rest_fe rest_fe_t;
typedef struct rest_shard rest_shard_t;

/* The adapter's state of one connection (evhtp serves one request at a
 * time per connection). */
typedef struct rest_conn {
    rest_shard_t *sh;
    evhtp_connection_t *conn;
    evhtp_request_t *req; /* the request being answered */
    bool pending;         /* wr_rest_handle() has not answered yet */
    bool async;           /* answered by the core later: counted in srv.inflight */
    bool paused;          /* the evhtp request is paused for the core */
    bool dead;            /* evhtp freed the connection meanwhile */
    bool resume_due;      /* answered inline: resume evhtp on the gate's kick */
    wr_rest_gate_t *gate; /* NULL once evhtp let the connection go */
    uint32_t nheaders;
    evhtp_request_t *dispatched; /* handed to on_request, until its fini */
    evhtp_request_t *partial;    /* the request being read, as the sweep saw it */
    int64_t partial_ms;          /* when the sweep first saw it */
    struct rest_conn *prev, *next;
} rest_conn_t;

/* A connection taken from evhtp after a 413/431. */
typedef struct rest_linger {
    rest_shard_t *sh;
    struct bufferevent *bev;
    size_t discarded;
    bool shut;
    struct rest_linger *prev, *next;
} linger_t;

struct rest_shard {
    rest_fe_t *fe;
    unsigned idx;
    wr_loop_t *loop;
    evhtp_t *htp;
    evhtp_t *htps; /* --https, or NULL */
    bool bound;
    struct event *sweep; /* request timeouts */
    rest_conn_t *conns; /* every rest_conn_t of this loop, live or dead */
    linger_t *lingers;
};

struct rest_fe {
    wr_frontend_t base; /* first: the plugin interface */
    wr_rest_server_t srv;
    unsigned n;
    rest_shard_t *sh;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint16_t port;
    bool closing; /* rest_free() runs: no more replies */
    uint32_t idle_s, request_s;
    /* --https: its address and evhtp's TLS settings (which evhtp keeps a
     * pointer to); the strings are the config's, copied. */
    bool tls;
    struct sockaddr_storage saddr;
    socklen_t saddrlen;
    uint16_t sport;
    evhtp_ssl_cfg_t ssl;
    char cert[1024], key[1024], ca[1024];

    /* Running one task on a loop and waiting for it. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool task_done;
    int task_rc;
};

#define LIST_ADD(head, e)                                                                          \
    do {                                                                                           \
        (e)->prev = NULL;                                                                          \
        (e)->next = (head);                                                                        \
        if (head)                                                                                  \
            (head)->prev = (e);                                                                    \
        (head) = (e);                                                                              \
    } while (0)

#define LIST_DEL(head, e)                                                                          \
    do {                                                                                           \
        if ((e)->prev)                                                                             \
            (e)->prev->next = (e)->next;                                                           \
        else                                                                                       \
            (head) = (e)->next;                                                                    \
        if ((e)->next)                                                                             \
            (e)->next->prev = (e)->prev;                                                           \
        (e)->prev = (e)->next = NULL;                                                              \
    } while (0)

static void conn_free(rest_conn_t *rc)
{
    LIST_DEL(rc->sh->conns, rc);
    free(rc);
}

/* ------------------------------------------------------------------------ */
/* Lingering close                                                          */

static void linger_close(linger_t *lg)
{
    LIST_DEL(lg->sh->lingers, lg);
    bufferevent_free(lg->bev); /* BEV_OPT_CLOSE_ON_FREE closes the socket */
    free(lg);
}

static void linger_read(struct bufferevent *bev, void *arg)
{
    linger_t *lg = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    lg->discarded += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    if (lg->discarded > LINGER_MAX)
        linger_close(lg);
}

static void linger_write(struct bufferevent *bev, void *arg)
{
    linger_t *lg = arg;

    /* The reply is out: tell the client we are done talking, keep reading
     * (and dropping) until it closes, goes quiet, or sends too much. */
    if (!lg->shut && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        lg->shut = true;
        shutdown(bufferevent_getfd(bev), SHUT_WR);
    }
}

static void linger_event(struct bufferevent *bev, short what, void *arg)
{
    linger_close(arg);
}

/*
 * Answers `status` with a JSON error and closes, taking the connection
 * from evhtp. Called from an evhtp hook, which must then return an error
 * so evhtp stops parsing and frees its connection object (not the socket).
 */
static void reject(rest_conn_t *rc, uint16_t status, const char *reason, const char *desc)
{
    rest_shard_t *sh = rc->sh;
    struct bufferevent *bev;
    struct timeval tv = {LINGER_TIMEOUT_S, 0};
    char body[512], head[256];
    int bn, hn;
    linger_t *lg;

    bn = snprintf(body, sizeof(body), "{\"title\": \"%s\", \"description\": \"%s\"}",
                  wr_rest_title_of(status), desc);
    hn = snprintf(head, sizeof(head),
                  "HTTP/1.1 %u %s\r\nContent-Type: application/json; charset=UTF-8\r\n"
                  "Content-Length: %d\r\nConnection: close\r\n\r\n",
                  status, reason, bn);
    /* The linger drains whatever comes: no more gating. */
    wr_rest_gate_free(rc->gate);
    rc->gate = NULL;
    /* take_ownership clears our hooks: the fini hook will not run. */
    bev = evhtp_connection_take_ownership(rc->conn);
    atomic_fetch_sub(&sh->fe->srv.connections, 1);
    conn_free(rc);
    if (!bev)
        return;
    lg = calloc(1, sizeof(*lg));
    if (!lg)
        wr_panic(__FILE__, __LINE__, "out of memory");
    lg->sh = sh;
    lg->bev = bev;
    LIST_ADD(sh->lingers, lg);
    evbuffer_add(bufferevent_get_output(bev), head, (size_t)hn);
    evbuffer_add(bufferevent_get_output(bev), body, (size_t)bn);
    bufferevent_setcb(bev, linger_read, linger_write, linger_event, lg);
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* ------------------------------------------------------------------------ */
/* Hooks                                                                    */

static evhtp_res on_headers_start(evhtp_request_t *req, void *arg)
{
    rest_conn_t *rc = arg;

    rc->nheaders = 0;
    return EVHTP_RES_OK;
}

static evhtp_res on_header(evhtp_request_t *req, evhtp_header_t *h, void *arg)
{
    rest_conn_t *rc = arg;

    if (++rc->nheaders > MAX_HEADERS) {
        reject(rc, 431, "Request Header Fields Too Large", "Too many header lines.");
        return EVHTP_RES_ERROR;
    }
    return EVHTP_RES_OK;
}

static void reject_too_big(rest_conn_t *rc)
{
    char desc[128];

    snprintf(desc, sizeof(desc), "Request body is too large. Max size: %u bytes",
             rc->sh->fe->srv.limits.max_body_bytes);
    reject(rc, 413, "Payload Too Large", desc);
}

/* HTTP/1.0 and 1.1 only. */
static bool version_served(htparser *p)
{
    return htparser_get_major(p) == 1 && htparser_get_minor(p) <= 1;
}

static evhtp_res on_headers(evhtp_request_t *req, evhtp_headers_t *hdrs, void *arg)
{
    rest_conn_t *rc = arg;

    /* Before evhtp answers an Expect header with a "100 Continue" in the
     * request's own version (say HTTP/0.9). */
    if (!version_served(req->conn->parser)) {
        reject(rc, 505, "HTTP Version Not Supported", "Only HTTP/1.0 and HTTP/1.1 are served.");
        return EVHTP_RES_ERROR;
    }

    /* Content-Length as the parser read it (0 when absent or chunked). */
    if (evhtp_request_content_len(req) > rc->sh->fe->srv.limits.max_body_bytes) {
        reject_too_big(rc);
        return EVHTP_RES_ERROR;
    }
    if (rc->gate)
        wr_rest_gate_headers(rc->gate, req);
    return EVHTP_RES_OK;
}

static evhtp_res on_read(evhtp_request_t *req, struct evbuffer *buf, void *arg)
{
    rest_conn_t *rc = arg;
    size_t have = evbuffer_get_length(req->buffer_in) + evbuffer_get_length(buf);

    if (have > rc->sh->fe->srv.limits.max_body_bytes) {
        reject_too_big(rc);
        return EVHTP_RES_ERROR;
    }
    return EVHTP_RES_OK;
}

static evhtp_res on_conn_fini(evhtp_connection_t *conn, void *arg)
{
    rest_conn_t *rc = arg;
    htpparse_error perr = conn->parser ? htparser_get_error(conn->parser) : htparse_error_none;

    /* evhtp closes silently on bytes it cannot parse (garbage, a header
     * line over 8 KiB). Answer instead, while the socket is still there,
     * unless a response to this request has already gone out. */
    if (perr != htparse_error_none && perr != htparse_error_user && !rc->pending && conn->bev &&
        !rc->sh->fe->closing &&
        (!conn->request || !(conn->request->flags & EVHTP_REQ_FLAG_FINISHED))) {
        if (perr == htparse_error_too_big)
            reject(rc, 431, "Request Header Fields Too Large",
                   "The request line or a header line is too long.");
        else
            reject(rc, 400, "Bad Request", "The request could not be parsed as HTTP/1.1.");
        return EVHTP_RES_OK;
    }
    atomic_fetch_sub(&rc->sh->fe->srv.connections, 1);
    /* evhtp frees the connection before its request: the request's fini
     * hook must not find rc freed (fuzz_rest_request, an HTTP/1.0 GET). */
    if (rc->dispatched) {
        evhtp_request_unset_hook(rc->dispatched, evhtp_hook_on_request_fini);
        rc->dispatched = NULL;
    }
    wr_rest_gate_free(rc->gate);
    rc->gate = NULL;
    rc->conn = NULL;
    rc->req = NULL;
    if (rc->pending)
        rc->dead = true; /* on_done() frees it */
    else
        conn_free(rc);
    return EVHTP_RES_OK;
}

/* The gate's kick, after an inline answer: evhtp parses on. */
static void on_gate_kick(void *arg)
{
    rest_conn_t *rc = arg;

    if (rc->resume_due && rc->conn) {
        rc->resume_due = false;
        evhtp_connection_resume(rc->conn);
    }
}

static evhtp_res on_accept(evhtp_connection_t *conn, void *arg)
{
    rest_shard_t *sh = arg;
    rest_conn_t *rc = calloc(1, sizeof(*rc));

    if (!rc)
        wr_panic(__FILE__, __LINE__, "out of memory");
    if (wr_rest_gate_new(conn, &rc->gate) != 0) {
        free(rc);
        return EVHTP_RES_ERROR; /* evhtp frees the connection */
    }
    wr_rest_gate_on_kick(rc->gate, on_gate_kick, rc);
    rc->sh = sh;
    rc->conn = conn;
    LIST_ADD(sh->conns, rc);
    atomic_fetch_add(&sh->fe->srv.connections, 1);
    evhtp_connection_set_hook(conn, evhtp_hook_on_headers_start, (evhtp_hook)on_headers_start, rc);
    evhtp_connection_set_hook(conn, evhtp_hook_on_header, (evhtp_hook)on_header, rc);
    evhtp_connection_set_hook(conn, evhtp_hook_on_headers, (evhtp_hook)on_headers, rc);
    evhtp_connection_set_hook(conn, evhtp_hook_on_read, (evhtp_hook)on_read, rc);
    evhtp_connection_set_hook(conn, evhtp_hook_on_connection_fini, (evhtp_hook)on_conn_fini, rc);
    return EVHTP_RES_OK;
}

/* ------------------------------------------------------------------------ */
/* Request and response                                                     */

/* evhtp_kv_find, but lengths are compared before names: most headers a
 * request is asked for are absent, and evhtp's find compares every name. */
static const char *find_header(void *hctx, const char *name)
{
    evhtp_kvs_t *kvs = hctx;
    size_t n = strlen(name);
    evhtp_kv_t *kv;

    TAILQ_FOREACH(kv, kvs, next)
    {
        if (kv->klen == n && strncasecmp(kv->key, name, n) == 0)
            return kv->val;
    }
    return NULL;
}

static wr_rest_method_t method_of(htp_method m)
{
    switch (m) {
    case htp_method_GET:
        return WR_REST_GET;
    case htp_method_HEAD:
        return WR_REST_HEAD;
    case htp_method_POST:
        return WR_REST_POST;
    case htp_method_PUT:
        return WR_REST_PUT;
    case htp_method_DELETE:
        return WR_REST_DELETE;
    case htp_method_PATCH:
        return WR_REST_PATCH;
    case htp_method_MKCOL:
    case htp_method_COPY:
    case htp_method_MOVE:
    case htp_method_OPTIONS:
    case htp_method_PROPFIND:
    case htp_method_PROPPATCH:
    case htp_method_LOCK:
    case htp_method_UNLOCK:
    case htp_method_TRACE:
    case htp_method_CONNECT:
    case htp_method_UNKNOWN:
        break;
    }
    return WR_REST_OTHER;
}

static void free_body(const void *data, size_t len, void *arg)
{
    free(arg);
}

static void add_header(evhtp_request_t *req, const char *k, const char *v, bool copy)
{
    evhtp_headers_add_header(req->headers_out, evhtp_header_new(k, v, 0, copy ? 1 : 0));
}

static void on_done(void *arg, wr_rest_resp_t *resp)
{
    rest_conn_t *rc = arg;
    evhtp_request_t *req = rc->req;
    bool was_paused = rc->paused;

    rc->pending = false;
    rc->paused = false;
    if (rc->async)
        atomic_fetch_sub(&rc->sh->fe->srv.inflight, 1);
    rc->async = false;
    if (rc->dead) {
        conn_free(rc);
        return;
    }
    if (resp->content_type)
        add_header(req, "Content-Type", resp->content_type, false);
    if (resp->location.len > 0) {
        wr_rest_buf_putc(&resp->location, '\0');
        add_header(req, "Location", resp->location.p, true);
    }
    if (resp->allow)
        add_header(req, "Allow", resp->allow, false);
    if (resp->accept_patch)
        add_header(req, "Accept-Patch", resp->accept_patch, false);
    if (resp->www_authenticate)
        add_header(req, "WWW-Authenticate", resp->www_authenticate, false);
    if (resp->retry_after)
        add_header(req, "Retry-After", resp->retry_after, false);
    if (resp->body.len > 0 && req->method != htp_method_HEAD) {
        /* Hand the buffer over instead of copying it. */
        evbuffer_add_reference(req->buffer_out, resp->body.p, resp->body.len, free_body,
                               resp->body.p);
        resp->body.p = NULL;
        resp->body.len = resp->body.cap = 0;
    }
    evhtp_send_reply(req, resp->status);
    rc->req = NULL;
    if (was_paused)
        evhtp_request_resume(req); /* after the reply: evhtp's issue #86 */
    else if (rc->gate)
        wr_rest_gate_kick(rc->gate); /* write it out, then the next request */
}

/* A fixed JSON error, then the connection closes. */
static void reply_and_close(evhtp_request_t *req, uint16_t status, const char *title,
                            const char *desc)
{
    req->flags &= (uint16_t)~EVHTP_REQ_FLAG_KEEPALIVE; /* set_keepalive(0) is a no-op */
    add_header(req, "Content-Type", "application/json; charset=UTF-8", false);
    evbuffer_add_printf(req->buffer_out, "{\"title\": \"%s\", \"description\": \"%s\"}", title,
                        desc);
    evhtp_send_reply(req, status);
}

/* Loopback users (guest) may use HTTP Basic only from these. */
static bool peer_is_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a6) ||
               (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return false;
}

static evhtp_res on_req_fini(evhtp_request_t *req, void *arg)
{
    rest_conn_t *rc = arg;

    if (rc->dispatched == req)
        rc->dispatched = NULL;
    if (rc->gate)
        wr_rest_gate_done(rc->gate, req);
    return EVHTP_RES_OK;
}

static void on_request(evhtp_request_t *req, void *arg)
{
    rest_shard_t *sh = arg;
    rest_conn_t *rc = req->conn->hooks ? req->conn->hooks->on_connection_fini_arg : NULL;
    wr_rest_req_t r = {0};
    size_t blen = evbuffer_get_length(req->buffer_in);
    bool hold;

    if (!rc) { /* not accepted through on_accept: cannot happen */
        evhtp_send_reply(req, EVHTP_RES_SERVERR);
        return;
    }
    if (rc->gate)
        wr_rest_gate_complete(rc->gate);
    r.method = method_of(req->method);
    r.path = req->uri && req->uri->path && req->uri->path->full ? req->uri->path->full : "/";
    r.path_len = strlen(r.path);
    if (req->uri && req->uri->query_raw) {
        r.query = (const char *)req->uri->query_raw;
        r.query_len = strlen(r.query);
    }
    r.header = find_header;
    r.hctx = req->headers_in;
    r.body = blen ? (const char *)evbuffer_pullup(req->buffer_in, -1) : NULL;
    r.body_len = blen;
    r.has_body = find_header(req->headers_in, "Content-Length") ||
                 find_header(req->headers_in, "Transfer-Encoding");
    r.peer_loopback = peer_is_loopback(req->conn->saddr);
    if (!version_served(req->conn->parser)) { /* a request without headers */
        /* Answer in a version the client can read, then close. */
        htparser_set_major(req->conn->parser, 1);
        htparser_set_minor(req->conn->parser, 1);
        req->proto = EVHTP_PROTO_11;
        reply_and_close(req, 505, "HTTP version not supported",
                        "Only HTTP/1.0 and HTTP/1.1 are served.");
        return;
    }
    rc->dispatched = req;
    evhtp_request_set_hook(req, evhtp_hook_on_request_fini, (evhtp_hook)on_req_fini, rc);
    if (evbuffer_get_length(bufferevent_get_output(req->conn->bev)) > OUT_MAX) {
        wr_log(WR_LOG_INFO, WR_LOGC_REST, "shard=%u: a client does not read its responses; "
               "closing", sh->idx);
        reply_and_close(req, 503, "Service temporarily unavailable",
                        "Too many responses are waiting to be read.");
        return;
    }
    if (atomic_load(&sh->fe->srv.draining)) {
        /* SIGTERM: finish what was accepted, take nothing new. */
        reply_and_close(req, 503, "Service temporarily unavailable",
                        "The server is shutting down.");
        return;
    }
    rc->req = req;
    rc->pending = true;
    /* The next request waits at the gate: no pause, reading stays on. */
    hold = rc->gate && wr_rest_gate_hold(rc->gate, req);
    if (wr_rest_handle(&sh->fe->srv, sh->loop, &r, on_done, rc)) {
        rc->async = true;
        atomic_fetch_add(&sh->fe->srv.inflight, 1);
        if (!hold) {
            rc->paused = true;
            evhtp_request_pause(req);
        }
        return;
    }
    if (hold) /* answered inline: on_done kicked the gate */
        return;
    /*
     * Answered inline after a chunked body. evhtp's parser stops after each
     * request and only a resume makes it parse a pipelined next one, but
     * evhtp ignores a resume of a connection that is not paused: pause now,
     * resume on the next turn.
     */
    if (rc->gate && req->conn == rc->conn) {
        evhtp_request_pause(req);
        rc->resume_due = true;
        wr_rest_gate_kick(rc->gate);
    }
}

/* ------------------------------------------------------------------------ */
/* Listeners on the loops                                                   */

typedef struct task {
    rest_shard_t *sh;
    void (*fn)(rest_shard_t *sh, int *rc);
} task_t;

static void task_run(void *arg)
{
    task_t *t = arg;
    rest_fe_t *fe = t->sh->fe;
    int rc = 0;

    t->fn(t->sh, &rc);
    pthread_mutex_lock(&fe->mu);
    fe->task_rc = rc;
    fe->task_done = true;
    pthread_cond_signal(&fe->cv);
    pthread_mutex_unlock(&fe->mu);
}

/* Runs fn on sh's loop thread and waits for it; returns its result. */
static int run_on(rest_shard_t *sh, void (*fn)(rest_shard_t *sh, int *rc))
{
    rest_fe_t *fe = sh->fe;
    task_t t = {sh, fn};
    int rc;

    pthread_mutex_lock(&fe->mu);
    fe->task_done = false;
    pthread_mutex_unlock(&fe->mu);
    wr_loop_post(sh->loop, task_run, &t);
    pthread_mutex_lock(&fe->mu);
    while (!fe->task_done)
        pthread_cond_wait(&fe->cv, &fe->mu);
    rc = fe->task_rc;
    pthread_mutex_unlock(&fe->mu);
    return rc;
}

/* Closes connections whose request has been arriving for longer than
 * --http-request-timeout (the slow-loris), once a second. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    rest_shard_t *sh = arg;
    int64_t now = wr_now_mono_ms();
    int64_t limit = (int64_t)sh->fe->request_s * 1000;
    rest_conn_t *rc, *next;

    for (rc = sh->conns; rc; rc = next) {
        evhtp_request_t *r;

        next = rc->next;
        /* Bytes held at the gate (a line that never ends) count too. */
        if (rc->gate && !rc->pending && wr_rest_gate_held_since_ms(rc->gate) != 0 &&
            now - wr_rest_gate_held_since_ms(rc->gate) >= limit) {
            wr_log(WR_LOG_INFO, WR_LOGC_REST, "shard=%u: request line not complete after %us; "
                   "closing", sh->idx, sh->fe->request_s);
            evhtp_connection_free(rc->conn); /* on_conn_fini frees rc */
            continue;
        }
        r = rc->conn && !rc->dead ? rc->conn->request : NULL;
        if (!r || r == rc->dispatched || rc->pending) {
            rc->partial = NULL;
            continue;
        }
        if (r != rc->partial) {
            rc->partial = r;
            rc->partial_ms = now;
            continue;
        }
        if (now - rc->partial_ms >= limit) {
            wr_log(WR_LOG_INFO, WR_LOGC_REST, "shard=%u: request not complete after %us; closing",
                   sh->idx, sh->fe->request_s);
            evhtp_connection_free(rc->conn); /* on_conn_fini frees rc */
        }
    }
}

/* evhtp's TLS: TLS 1.2 or newer, and a key that fits the certificate
 * (evhtp_ssl_init does not check what it loads). */
static int tls_setup(rest_shard_t *sh, evhtp_t *htp)
{
    rest_fe_t *fe = sh->fe;
    unsigned long e;

    if (evhtp_ssl_init(htp, &fe->ssl) != 0 || !htp->ssl_ctx ||
        !SSL_CTX_set_min_proto_version(htp->ssl_ctx, TLS1_2_VERSION) ||
        SSL_CTX_check_private_key(htp->ssl_ctx) != 1) {
        e = ERR_get_error();
        wr_log(WR_LOG_ERROR, WR_LOGC_REST, "https: cannot use tls-cert %s / tls-key %s: %s",
               fe->cert, fe->key, e ? ERR_reason_error_string(e) : "no certificate");
        return -1;
    }
    return 0;
}

/* One evhtp_t on sh's loop, bound to addr (TLS if tls); *port learns the
 * port when it was 0 (and addr gets it, for the other loops). */
static evhtp_t *bind_one(rest_shard_t *sh, struct sockaddr_storage *addr, socklen_t addrlen,
                         uint16_t *port, bool tls)
{
    rest_fe_t *fe = sh->fe;
    struct timeval idle = {fe->idle_s, 0};
    evhtp_t *htp = evhtp_new(wr_loop_base(sh->loop), sh);

    if (!htp)
        return NULL;
    evhtp_enable_flag(htp, EVHTP_FLAG_ENABLE_REUSEPORT | EVHTP_FLAG_ENABLE_NODELAY);
    /* evhtp's default adds BEV_OPT_DEFER_CALLBACKS. A deferred callback
     * holds a reference on its bufferevent until the loop runs it; one still
     * queued when the loops stop is dropped by event_base_free() without
     * giving the reference back, and that connection's bufferevent and
     * buffers leak (rest_free() cannot finish them). Without deferral,
     * bufferevent_free() leaves only a finalizer, which event_base_free()
     * runs. */
    evhtp_set_bev_flags(htp, BEV_OPT_CLOSE_ON_FREE);
    evhtp_set_gencb(htp, on_request, sh);
    evhtp_set_post_accept_cb(htp, on_accept, sh);
    /* Read: a keep-alive connection with nothing to say. Write: a client
     * that does not read its response. */
    evhtp_set_timeouts(htp, &idle, &idle);
    if (tls && tls_setup(sh, htp) != 0) {
        evhtp_free(htp);
        return NULL;
    }
    if (evhtp_bind_sockaddr(htp, (struct sockaddr *)addr, addrlen, LISTEN_BACKLOG) != 0) {
        wr_log(WR_LOG_ERROR, WR_LOGC_REST, "shard=%u: cannot listen%s: %s", sh->idx,
               tls ? " (https)" : "", strerror(errno));
        evhtp_free(htp);
        return NULL;
    }
    /* With port 0 the first listener picks the port; the others join it. */
    if (*port == 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = evconnlistener_get_fd(htp->server);

        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET6)
                *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            else
                *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            if (addr->ss_family == AF_INET6)
                ((struct sockaddr_in6 *)addr)->sin6_port = htons(*port);
            else
                ((struct sockaddr_in *)addr)->sin_port = htons(*port);
        }
    }
    return htp;
}

static void bind_task(rest_shard_t *sh, int *rc)
{
    rest_fe_t *fe = sh->fe;
    struct timeval tick = {SWEEP_MS / 1000, (SWEEP_MS % 1000) * 1000};

    sh->htp = bind_one(sh, &fe->addr, fe->addrlen, &fe->port, false);
    if (sh->htp && fe->tls) {
        sh->htps = bind_one(sh, &fe->saddr, fe->saddrlen, &fe->sport, true);
        if (!sh->htps) {
            /* evhtp_free() leaves the listener to evhtp_unbind_socket(). */
            evhtp_unbind_socket(sh->htp);
            evhtp_free(sh->htp);
            sh->htp = NULL;
        }
    }
    if (!sh->htp) {
        *rc = -1;
        return;
    }
    sh->bound = true;
    sh->sweep = event_new(wr_loop_base(sh->loop), -1, EV_PERSIST, on_sweep, sh);
    if (!sh->sweep)
        wr_panic(__FILE__, __LINE__, "out of memory");
    event_add(sh->sweep, &tick);
}

static void unbind_task(rest_shard_t *sh, int *rc)
{
    if (sh->htp && sh->bound)
        evhtp_unbind_socket(sh->htp);
    if (sh->htps && sh->bound)
        evhtp_unbind_socket(sh->htps);
    sh->bound = false;
}

static void free_htps(rest_shard_t *sh)
{
    evhtp_free(sh->htp);
    sh->htp = NULL;
    evhtp_free(sh->htps);
    sh->htps = NULL;
    if (sh->sweep)
        event_free(sh->sweep);
    sh->sweep = NULL;
}

static void unbind_and_free_task(rest_shard_t *sh, int *rc)
{
    unbind_task(sh, rc);
    free_htps(sh);
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *addr,
                   socklen_t *addrlen)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char ps[8];
    int rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    rc = getaddrinfo(host[0] ? host : NULL, ps, &hints, &ai);
    if (rc != 0 || !ai) {
        wr_log(WR_LOG_ERROR, WR_LOGC_REST, "http=%s: cannot resolve: %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(addr, ai->ai_addr, ai->ai_addrlen);
    *addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The plugin                                                               */

static void rest_free(wr_frontend_t *base);

static wr_err_t rest_start(wr_core_t *core, const wr_config_t *cfg, wr_frontend_t **out)
{
    rest_fe_t *fe = calloc(1, sizeof(*fe));
    unsigned i;

    if (!fe)
        return WR_ENOMEM;
    fe->base.ops = &wr_rest_ops;
    wr_rest_server_init(&fe->srv, core);
    if (cfg->max_message_bytes > 0)
        fe->srv.limits.max_body_bytes = cfg->max_message_bytes;
    fe->srv.limits.trust_project_header = cfg->trust_project_header;
    fe->srv.limits.durable_default = strcmp(cfg->rest_durable, "true") == 0;
    fe->srv.auth = wr_core_auth(core);
    pthread_mutex_init(&fe->mu, NULL);
    pthread_cond_init(&fe->cv, NULL);
    fe->n = wr_core_shards(core);
    fe->sh = calloc(fe->n ? fe->n : 1, sizeof(*fe->sh));
    if (!fe->sh) {
        rest_free(&fe->base);
        return WR_ENOMEM;
    }
    for (i = 0; i < fe->n; i++) {
        fe->sh[i].fe = fe;
        fe->sh[i].idx = i;
        fe->sh[i].loop = wr_core_loop(core, i);
    }
    fe->idle_s = cfg->http_idle_timeout;
    fe->request_s = cfg->http_request_timeout;
    fe->port = cfg->http_port;
    fe->sport = cfg->https_port;
    fe->tls = cfg->https_addr[0] != '\0';
    if (fe->tls) {
        snprintf(fe->cert, sizeof(fe->cert), "%s", cfg->tls_cert);
        snprintf(fe->key, sizeof(fe->key), "%s", cfg->tls_key);
        snprintf(fe->ca, sizeof(fe->ca), "%s", cfg->tls_ca);
        fe->ssl.pemfile = fe->cert;
        fe->ssl.privfile = fe->key;
        fe->ssl.cafile = fe->ca[0] ? fe->ca : NULL;
        fe->ssl.verify_peer = fe->ca[0] ? SSL_VERIFY_PEER : SSL_VERIFY_NONE;
        fe->ssl.ssl_opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
        fe->ssl.ssl_ctx_timeout = 300;
        fe->ssl.scache_type = evhtp_ssl_scache_type_internal;
    }
    if (resolve(cfg->http_addr, cfg->http_port, &fe->addr, &fe->addrlen) != 0 ||
        (fe->tls && resolve(cfg->https_addr, cfg->https_port, &fe->saddr, &fe->saddrlen) != 0)) {
        rest_free(&fe->base);
        return WR_EINVAL;
    }
    for (i = 0; i < fe->n; i++) {
        if (run_on(&fe->sh[i], bind_task) != 0) {
            /* Nothing may stay bound. */
            for (unsigned j = 0; j < i; j++)
                run_on(&fe->sh[j], unbind_and_free_task);
            fe->n = 0;
            rest_free(&fe->base);
            return WR_EIO;
        }
    }
    wr_log(WR_LOG_INFO, WR_LOGC_REST, "rest listening port=%u https=%u listeners=%u max_body=%u",
           (unsigned)fe->port, (unsigned)(fe->tls ? fe->sport : 0), fe->n,
           fe->srv.limits.max_body_bytes);
    *out = &fe->base;
    return WR_OK;
}

static void rest_stop_accepting(wr_frontend_t *base)
{
    rest_fe_t *fe = (rest_fe_t *)base;

    atomic_store(&fe->srv.draining, true);
    for (unsigned i = 0; i < fe->n; i++)
        run_on(&fe->sh[i], unbind_task);
}

/* Requests waiting for the core, except parked long-polls: those are not
 * work to finish, and wr_core_stop() answers them at once. */
static uint64_t rest_inflight(wr_frontend_t *base)
{
    rest_fe_t *fe = (rest_fe_t *)base;
    int64_t n = atomic_load(&fe->srv.inflight) - atomic_load(&fe->srv.longpolls);

    return n > 0 ? (uint64_t)n : 0;
}

/* After wr_core_stop(): the loops no longer run, so this thread may touch
 * their evhtp state directly. */
static void rest_free(wr_frontend_t *base)
{
    rest_fe_t *fe = (rest_fe_t *)base;

    if (!fe)
        return;
    fe->closing = true;
    for (unsigned i = 0; fe->sh && i < fe->n; i++) {
        rest_shard_t *sh = &fe->sh[i];
        rest_conn_t *rc, *next;
        int unused;

        unbind_task(sh, &unused);
        for (rc = sh->conns; rc; rc = next) {
            next = rc->next;
            if (!rc->dead && rc->conn) {
                rc->pending = false;             /* nobody will answer now */
                evhtp_connection_free(rc->conn); /* on_conn_fini frees rc */
            }
        }
        while (sh->conns)
            conn_free(sh->conns); /* dead ones whose answer never came */
        while (sh->lingers)
            linger_close(sh->lingers);
        free_htps(sh);
    }
    free(fe->sh);
    pthread_mutex_destroy(&fe->mu);
    pthread_cond_destroy(&fe->cv);
    free(fe);
}

uint16_t wr_rest_port(const wr_frontend_t *base)
{
    return ((const rest_fe_t *)base)->port;
}

wr_rest_server_t *wr_rest_server_of(wr_frontend_t *base)
{
    return &((rest_fe_t *)base)->srv;
}

const wr_frontend_ops_t wr_rest_ops = {
    .abi = WR_FRONTEND_ABI,
    .name = "rest",
    .start = rest_start,
    .stop_accepting = rest_stop_accepting,
    .inflight = rest_inflight,
    .free = rest_free,
};
