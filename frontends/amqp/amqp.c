/*
 * amqp.c - the AMQP front end's plugin ops: listeners on every shard loop,
 * sockets, and the bridge between a socket and the connection machine.
 *
 * Layout: front-end object, running a task on a loop and waiting, sockets
 * (accept, read/write/event callbacks, timer, close), listeners, ops.
 *
 * One listener per shard loop, all bound to amqp_addr:amqp_port with
 * SO_REUSEPORT, so the kernel spreads connections over the shards and a
 * connection lives on the loop that accepted it. When amqp_port is 0 the
 * first listener picks a port and the others join it.
 *
 * Back-pressure: input is capped (read high-watermark WR_AMQP_IN_MAX, and a
 * frame larger than frame_max is refused from its header); when the output
 * holds more than WR_AMQP_OUT_HIGH bytes the connection stops consuming
 * frames and the socket stops reading until the output drains below
 * WR_AMQP_OUT_LOW.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "../../core/log.h"
#include "amqp.h"
#include "../../core/auth.h"
#include "amqp_int.h"

typedef struct sock sock_t;
typedef struct shard shard_t;
typedef struct amqp_fe amqp_fe_t;

struct sock {
    shard_t *shard;
    struct bufferevent *bev;
    struct event *timer;
    int64_t armed; /* deadline the timer is armed for, INT64_MAX if not */
    wr_amqp_conn_t *conn;
    sock_t *prev, *next;
    bool paused;
    bool eof;            /* the peer will send no more: flush and close */
    bool kicking;        /* inside sock_kick */
    int64_t flush_until; /* flushing before close: drop after this; 0 if not */
};

struct shard {
    amqp_fe_t *fe;
    wr_loop_t *loop;
    struct evconnlistener *lev;
    struct event *retry; /* re-enables accepting after EMFILE and the like */
    sock_t *socks;
};

struct amqp_fe {
    wr_frontend_t base;
    wr_amqp_env_t env;
    unsigned nshards;
    shard_t *shards;
    struct sockaddr_storage addr; /* port filled in once the first listener bound */
    socklen_t addr_len;
    uint16_t port;
    wr_err_t listen_err;
};

/* ------------------------------------------------------------------------ */
/* Running a task on a loop and waiting for it                              */

typedef struct sync_task {
    void (*fn)(shard_t *sh);
    shard_t *sh;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} sync_task_t;

static void sync_run(void *arg)
{
    sync_task_t *t = arg;

    t->fn(t->sh);
    pthread_mutex_lock(&t->mu);
    t->done = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* Runs fn(sh) on sh's loop thread and returns once it has run. */
static void run_on(shard_t *sh, void (*fn)(shard_t *sh))
{
    sync_task_t t = {fn, sh, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};

    if (wr_loop_is_current(sh->loop)) {
        fn(sh);
        return;
    }
    wr_loop_post(sh->loop, sync_run, &t);
    pthread_mutex_lock(&t.mu);
    while (!t.done)
        pthread_cond_wait(&t.cv, &t.mu);
    pthread_mutex_unlock(&t.mu);
    pthread_mutex_destroy(&t.mu);
    pthread_cond_destroy(&t.cv);
}

/* ------------------------------------------------------------------------ */
/* Sockets                                                                  */

static void sock_close(sock_t *s)
{
    shard_t *sh = s->shard;

    if (s->prev)
        s->prev->next = s->next;
    else
        sh->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    bufferevent_free(s->bev); /* closes the fd; safe inside its callbacks */
    event_free(s->timer);
    wr__amqp_conn_detach(s->conn);
    free(s);
}

static void arm(sock_t *s, int64_t now)
{
    int64_t d = s->flush_until ? s->flush_until : wr__amqp_conn_deadline(s->conn);
    struct timeval tv;

    /* An earlier deadline re-arms; a later one waits for the pending firing,
     * which re-arms: most reads then cost no timer operation. */
    if (d == INT64_MAX || (evtimer_pending(s->timer, NULL) && s->armed <= d))
        return;
    d = d > now ? d - now : 0;
    tv.tv_sec = (time_t)(d / 1000);
    tv.tv_usec = (suseconds_t)(d % 1000) * 1000;
    evtimer_add(s->timer, &tv);
    s->armed = now + d;
}

/* Does what the connection wants with the socket. Returns false if the
 * socket was closed (s is gone). */
static bool apply(sock_t *s, int64_t now)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    wr_amqp_want_t want = wr__amqp_conn_want(s->conn);

    if (s->eof && want != WR_AMQP_WANT_DROP) {
        /* Half-closed by the peer: it may still read what we queued. */
        if (evbuffer_get_length(out) == 0) {
            sock_close(s);
            return false;
        }
        if (!s->flush_until)
            s->flush_until = now + WR_AMQP_CLOSE_MS;
        arm(s, now);
        return true;
    }
    switch (want) {
    case WR_AMQP_WANT_READ:
        if (s->paused) {
            s->paused = false;
            bufferevent_enable(s->bev, EV_READ);
        }
        break;
    case WR_AMQP_WANT_PAUSE:
        if (!s->paused) {
            s->paused = true;
            bufferevent_disable(s->bev, EV_READ);
        }
        break;
    case WR_AMQP_WANT_FLUSH:
        if (evbuffer_get_length(out) == 0) {
            sock_close(s);
            return false;
        }
        /* Reading goes on (and drops what comes): closing a socket with
         * unread input resets it, and the peer could lose our last frame. */
        if (!s->flush_until)
            s->flush_until = now + WR_AMQP_CLOSE_MS;
        if (s->paused) {
            s->paused = false;
            bufferevent_enable(s->bev, EV_READ);
        }
        break;
    case WR_AMQP_WANT_DROP:
        sock_close(s);
        return false;
    }
    arm(s, now);
    return true;
}

/* libevent 2.1 reads at most 4 KiB per readiness event (EVBUFFER_MAX_READ):
 * some 20 small publishes, each read then costing a loop turn, an ioctl and
 * a core call. Take what else the socket holds, in large reads, up to the
 * input cap, so one feed sees (and one core call carries) all of it. */
static void read_into(struct evbuffer *in, evutil_socket_t fd);

static void read_more(struct bufferevent *bev)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);

    /* A socket bufferevent keeps the end of its input frozen except while
     * it reads itself. */
    evbuffer_unfreeze(in, 0);
    read_into(in, fd);
    evbuffer_freeze(in, 0);
}

static void read_into(struct evbuffer *in, evutil_socket_t fd)
{
    while (evbuffer_get_length(in) < WR_AMQP_IN_MAX) {
        struct evbuffer_iovec v;
        size_t want = WR_AMQP_IN_MAX - evbuffer_get_length(in);
        ssize_t n;

        if (want > 65536)
            want = 65536;
        if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1)
            return;
        if (v.iov_len > want)
            v.iov_len = want;
        n = recv(fd, v.iov_base, v.iov_len, 0);
        if (n <= 0) {
            /* EAGAIN: all read; EOF and errors: libevent sees them on its
             * next read and reports them through on_event. */
            return;
        }
        v.iov_len = (size_t)n;
        evbuffer_commit_space(in, &v, 1);
        if ((size_t)n < want)
            return;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    sock_t *s = arg;
    int64_t now = wr_now_mono_ms();

    read_more(bev);
    wr__amqp_conn_feed(s->conn, bufferevent_get_input(bev), now);
    apply(s, now);
}

/* Something happened outside a read (a core answer): re-read want(), feed
 * what was held back while paused. */
static void sock_kick(void *host)
{
    sock_t *s = host;
    int64_t now = wr_now_mono_ms();

    if (s->kicking)
        return;
    s->kicking = true;
    if (!s->paused || wr__amqp_conn_want(s->conn) == WR_AMQP_WANT_READ)
        wr__amqp_conn_feed(s->conn, bufferevent_get_input(s->bev), now);
    s->kicking = false;
    apply(s, now);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    sock_t *s = arg;
    int64_t now = wr_now_mono_ms();

    /* Consumers held back by a full output go on. */
    wr__amqp_consumers_pump(s->conn);

    /* The output drained to the low watermark: consume the frames held back
     * while it was over the high one. */
    if (s->paused)
        wr__amqp_conn_feed(s->conn, bufferevent_get_input(bev), now);
    apply(s, now);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    sock_t *s = arg;

    if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        sock_close(s);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        int64_t now = wr_now_mono_ms();
        /* Frames that arrived with the FIN are still served. */
        wr__amqp_conn_feed(s->conn, bufferevent_get_input(bev), now);
        s->eof = true;
        bufferevent_disable(bev, EV_READ);
        apply(s, now);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    sock_t *s = arg;
    int64_t now = wr_now_mono_ms();

    (void)fd;
    (void)what;
    s->armed = INT64_MAX;
    if (s->flush_until && now >= s->flush_until) {
        sock_close(s);
        return;
    }
    wr__amqp_conn_tick(s->conn, now);
    apply(s, now);
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *a = in6->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && a[12] == 127;
    }
    return false;
}

static void peer_name(const struct sockaddr *sa, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, cap, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, cap, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, cap, "-");
    }
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    shard_t *sh = arg;
    struct event_base *base = evconnlistener_get_base(lev);
    int one = 1;
    char peer[64];
    sock_t *s;

    (void)salen;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s = calloc(1, sizeof(*s));
    if (!s)
        wr_panic(__FILE__, __LINE__, "out of memory");
    s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    s->timer = evtimer_new(base, on_timer, s);
    if (!s->bev || !s->timer)
        wr_panic(__FILE__, __LINE__, "out of memory");
    s->shard = sh;
    s->armed = INT64_MAX;
    peer_name(sa, peer, sizeof(peer));
    s->conn = wr__amqp_conn_new(&sh->fe->env, bufferevent_get_output(s->bev), peer, is_loopback(sa),
                                wr_now_mono_ms());
    s->conn->loop = sh->loop;
    s->conn->kick = sock_kick;
    s->conn->host = s;
    s->next = sh->socks;
    if (sh->socks)
        sh->socks->prev = s;
    sh->socks = s;
    wr_log(WR_LOG_DEBUG, WR_LOGC_AMQP, "conn=%llu peer=%s accepted shard=%u",
           (unsigned long long)s->conn->id, peer, wr_loop_id(sh->loop));

    bufferevent_setwatermark(s->bev, EV_READ, 0, WR_AMQP_IN_MAX);
    /* libevent reads and writes 16 KiB at a time by default: a pipelining
     * producer or a busy consumer would pay a system call per ~100 small
     * messages. */
    bufferevent_set_max_single_read(s->bev, WR_AMQP_IN_MAX);
    bufferevent_set_max_single_write(s->bev, WR_AMQP_OUT_HIGH);
    bufferevent_setwatermark(s->bev, EV_WRITE, WR_AMQP_OUT_LOW, 0);
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    arm(s, wr_now_mono_ms());
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    shard_t *sh = arg;

    (void)fd;
    (void)what;
    if (sh->lev)
        evconnlistener_enable(sh->lev);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    shard_t *sh = arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, 100 * 1000};

    /* Out of descriptors or memory: accepting again at once would spin.
     * Pause 100 ms; open connections go on. */
    wr_log(WR_LOG_WARN, WR_LOGC_AMQP, "shard=%u accept: %s; pausing 100 ms", wr_loop_id(sh->loop),
           evutil_socket_error_to_string(err));
    evconnlistener_disable(lev);
    evtimer_add(sh->retry, &tv);
}

/* ------------------------------------------------------------------------ */
/* Listeners (run on the shard's loop)                                      */

static void do_listen(shard_t *sh)
{
    amqp_fe_t *fe = sh->fe;
    struct event_base *base = wr_loop_base(sh->loop);
    unsigned flags =
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT;

    sh->retry = evtimer_new(base, on_retry, sh);
    sh->lev = evconnlistener_new_bind(base, on_accept, sh, flags, 1024,
                                      (struct sockaddr *)&fe->addr, (int)fe->addr_len);
    if (!sh->retry || !sh->lev) {
        wr_log(WR_LOG_ERROR, WR_LOGC_AMQP, "listen on port %u: %s", fe->port, strerror(errno));
        fe->listen_err = WR_EIO;
        return;
    }
    evconnlistener_set_error_cb(sh->lev, on_accept_error);
    if (fe->port == 0) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        evutil_socket_t fd = evconnlistener_get_fd(sh->lev);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
            uint16_t port = ss.ss_family == AF_INET6
                                ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                : ntohs(((struct sockaddr_in *)&ss)->sin_port);
            fe->port = port;
            if (fe->addr.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&fe->addr)->sin6_port = htons(port);
            else
                ((struct sockaddr_in *)&fe->addr)->sin_port = htons(port);
        }
    }
}

static void do_unlisten(shard_t *sh)
{
    if (sh->lev) {
        evconnlistener_free(sh->lev);
        sh->lev = NULL;
    }
    if (sh->retry) {
        event_free(sh->retry);
        sh->retry = NULL;
    }
}

/* Closes the shard's connections: connection.close 320 to the open ones, one
 * non-blocking attempt to write what is queued, then the socket goes. */
static void do_close_all(shard_t *sh)
{
    while (sh->socks) {
        sock_t *s = sh->socks;
        struct evbuffer *out = bufferevent_get_output(s->bev);
        wr__amqp_conn_shutdown(s->conn);
        if (evbuffer_get_length(out) > 0) {
            /* The bufferevent keeps its output's front frozen for itself;
             * it is about to go, so write directly. */
            evbuffer_unfreeze(out, 1);
            evbuffer_write(out, bufferevent_getfd(s->bev));
        }
        sock_close(s);
    }
}

static wr_err_t resolve(const wr_config_t *cfg, amqp_fe_t *fe)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", cfg->amqp_port);
    rc = getaddrinfo(cfg->amqp_addr[0] ? cfg->amqp_addr : NULL, port, &hints, &res);
    if (rc != 0 || !res) {
        wr_log(WR_LOG_ERROR, WR_LOGC_AMQP, "amqp address '%s': %s", cfg->amqp_addr,
               gai_strerror(rc));
        return WR_EINVAL;
    }
    memcpy(&fe->addr, res->ai_addr, res->ai_addrlen);
    fe->addr_len = res->ai_addrlen;
    fe->port = cfg->amqp_port;
    freeaddrinfo(res);
    return WR_OK;
}

/* ------------------------------------------------------------------------ */
/* Ops                                                                      */

static void amqp_stop_accepting(wr_frontend_t *base)
{
    amqp_fe_t *fe = (amqp_fe_t *)base;

    for (unsigned i = 0; i < fe->nshards; i++)
        run_on(&fe->shards[i], do_unlisten);
}

static void amqp_free(wr_frontend_t *base)
{
    amqp_fe_t *fe = (amqp_fe_t *)base;

    if (!fe)
        return;
    /* After wr_core_stop(): the loops no longer run, so their libevent state
     * is ours to touch from this thread. */
    for (unsigned i = 0; i < fe->nshards; i++) {
        do_unlisten(&fe->shards[i]);
        do_close_all(&fe->shards[i]);
    }
    free(fe->shards);
    free(fe);
}

static wr_err_t amqp_start(wr_core_t *core, const wr_config_t *cfg, wr_frontend_t **out)
{
    amqp_fe_t *fe = calloc(1, sizeof(*fe));
    wr_err_t err;

    if (!fe)
        return WR_ENOMEM;
    fe->base.ops = &wr_amqp_ops;
    fe->env.core = core;
    fe->env.auth = wr_core_auth(core);
    fe->env.auth_required = cfg->auth_required;
    fe->env.max_message_bytes = cfg->max_message_bytes;
    fe->nshards = wr_core_shards(core);
    fe->shards = calloc(fe->nshards ? fe->nshards : 1, sizeof(*fe->shards));
    if (!fe->shards) {
        free(fe);
        return WR_ENOMEM;
    }
    err = resolve(cfg, fe);
    for (unsigned i = 0; i < fe->nshards; i++) {
        fe->shards[i].fe = fe;
        fe->shards[i].loop = wr_core_loop(core, i);
    }
    /* One at a time: with port 0 the first listener picks the port. */
    for (unsigned i = 0; err == WR_OK && i < fe->nshards; i++) {
        run_on(&fe->shards[i], do_listen);
        err = fe->listen_err;
    }
    if (err != WR_OK) {
        for (unsigned i = 0; i < fe->nshards; i++)
            run_on(&fe->shards[i], do_unlisten);
        free(fe->shards);
        free(fe);
        return err;
    }
    wr_log(WR_LOG_INFO, WR_LOGC_AMQP, "listening on %s:%u (%u shards)", cfg->amqp_addr, fe->port,
           fe->nshards);
    *out = &fe->base;
    return WR_OK;
}

static uint64_t amqp_inflight(wr_frontend_t *base)
{
    amqp_fe_t *fe = (amqp_fe_t *)base;
    uint64_t waiting = atomic_load_explicit(&fe->env.longpolls, memory_order_relaxed);
    uint64_t n = atomic_load_explicit(&fe->env.inflight, memory_order_relaxed);

    /* a parked claim that ends between the two loads: not below 0 */
    return n > waiting ? n - waiting : 0;
}

void wr_amqp_metrics(wr_frontend_t *base, wr_amqp_metrics_t *out)
{
    amqp_fe_t *fe = (amqp_fe_t *)base;

    out->connections = atomic_load_explicit(&fe->env.connections, memory_order_relaxed);
    out->connections_total = atomic_load_explicit(&fe->env.connections_total, memory_order_relaxed);
    out->channels = atomic_load_explicit(&fe->env.channels, memory_order_relaxed);
    out->auth_failures = atomic_load_explicit(&fe->env.auth_failures, memory_order_relaxed);
    out->protocol_errors = atomic_load_explicit(&fe->env.protocol_errors, memory_order_relaxed);
}

uint16_t wr_amqp_port(wr_frontend_t *base)
{
    return ((amqp_fe_t *)base)->port;
}

const wr_frontend_ops_t wr_amqp_ops = {
    .abi = WR_FRONTEND_ABI,
    .name = "amqp",
    .start = amqp_start,
    .stop_accepting = amqp_stop_accepting,
    .inflight = amqp_inflight,
    .free = amqp_free,
    .deadletter_props = wr_amqp_deadletter_props,
};
