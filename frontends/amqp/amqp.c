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
 * Back-pressure: input is capped (reading stops at WR_AMQP_IN_MAX bytes,
 * and a frame larger than frame_max is refused from its header); when the
 * output holds more than WR_AMQP_OUT_HIGH bytes the connection stops
 * consuming frames and the socket stops reading until the output drains
 * below WR_AMQP_OUT_LOW.
 *
 * TLS (--amqps): a second listener per shard loop; its sockets are the
 * same sockets with SSL_read/SSL_write (tls.c) in place of recv/send.
 *
 * Abuse limits: at most --max-handshakes connections (both ports) may be
 * in their handshake (accepted, connection.open-ok not sent yet); more are
 * closed as they come, with one log line a second. While the memory high
 * watermark is passed (core/mem.h), a connection that has published reads
 * nothing more (blocked.c) until memory is back under it.
 *
 * Socket I/O is plain events and two evbuffers, not a bufferevent, for the
 * system calls: a bufferevent asks FIONREAD before every read, and arms then
 * disarms EV_WRITE (two epoll_ctl) around every write. Here a read is one
 * recv into the input (more while the kernel fills the buffer); output
 * is written on the loop turn after it was added (a zero timeout: what the
 * next poll brings is handled first and joins the same write, as with a
 * bufferevent, whose batching the clients' own batches depend on) and
 * EV_WRITE is armed only when the kernel took less than we had.
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
#include <event2/event.h>
#include <event2/listener.h>

#include "../../core/log.h"
#include "../../core/mem.h"
#include "amqp.h"
#include "../../core/auth.h"
#include "amqp_int.h"
#include "tls.h"

typedef struct sock sock_t;
typedef struct shard shard_t;
typedef struct amqp_fe amqp_fe_t;

struct sock {
    shard_t *shard;
    evutil_socket_t fd;
    struct evbuffer *in, *out;
    struct event *rd;    /* EV_READ, added while reading */
    struct event *wr;    /* EV_WRITE, added while the kernel's buffer is full */
    struct event *flush; /* zero timeout when output is added: writes next turn */
    struct event *timer;
    struct event *tail;  /* reads what waits under the low watermark */
    int64_t armed; /* deadline the timer is armed for, INT64_MAX if not */
    int64_t win_ms;      /* start of the window the input rate is measured over */
    size_t win_bytes;    /* bytes read in it */
    int lowat;           /* the socket's SO_RCVLOWAT */
    wr_amqp_conn_t *conn;
    SSL *ssl;            /* --amqps sockets */
    bool handshaking;    /* counted in amqp_fe.handshaking */
    sock_t *prev, *next;
    bool paused;         /* the connection's output is backed up: no reading */
    bool reading;        /* rd is added */
    bool writing;        /* wr is added */
    bool flushing;       /* flush is pending */
    bool eof;            /* the peer will send no more: flush and close */
    bool kicking;        /* inside sock_kick */
    int64_t flush_until; /* flushing before close: drop after this; 0 if not */
};

struct shard {
    amqp_fe_t *fe;
    wr_loop_t *loop;
    struct evconnlistener *lev;
    struct evconnlistener *lev_tls; /* --amqps, or NULL */
    struct event *retry; /* re-enables accepting after EMFILE and the like */
    struct event *sweep; /* registry changes: deleted users and tenants */
    uint64_t auth_gen;   /* the registry generation the last sweep saw */
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
    /* --amqps */
    SSL_CTX *tls;
    struct sockaddr_storage taddr;
    socklen_t taddr_len;
    uint16_t tport;
    /* --max-handshakes */
    uint32_t max_handshakes;
    _Atomic uint32_t handshaking;
    _Atomic int64_t refused_log_ms;
    _Atomic uint64_t refused;
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
    if (s->handshaking)
        atomic_fetch_sub(&sh->fe->handshaking, 1);
    if (s->ssl) {
        SSL_shutdown(s->ssl); /* one try at close_notify; no waiting for the peer's */
        SSL_free(s->ssl);
    }
    /* event_free is safe inside the event's own callback */
    event_free(s->rd);
    event_free(s->wr);
    event_free(s->flush);
    event_free(s->timer);
    event_free(s->tail);
    evutil_closesocket(s->fd);
    wr__amqp_conn_detach(s->conn); /* the connection forgets s->out first */
    evbuffer_free(s->in);
    evbuffer_free(s->out);
    free(s);
}

static void set_reading(sock_t *s, bool on)
{
    if (on == s->reading)
        return;
    s->reading = on;
    if (on)
        event_add(s->rd, NULL);
    else
        event_del(s->rd);
    /* Under SO_RCVLOWAT, what waited meanwhile may never signal. */
    if (on && s->lowat > 1)
        event_active(s->tail, EV_TIMEOUT, 1);
}

static void set_writing(sock_t *s, bool on)
{
    if (on == s->writing)
        return;
    s->writing = on;
    if (on)
        event_add(s->wr, NULL);
    else
        event_del(s->wr);
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
    struct evbuffer *out = s->out;
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
        s->paused = false;
        break;
    case WR_AMQP_WANT_PAUSE:
        s->paused = true;
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
        s->paused = false;
        break;
    case WR_AMQP_WANT_DROP:
        sock_close(s);
        return false;
    }
    /* The input cap: a full input waits for the connection to consume it
     * (a kick after a core answer feeds it again). */
    set_reading(s, !s->paused && evbuffer_get_length(s->in) < WR_AMQP_IN_MAX);
    /* TLS may hold decrypted bytes the socket no longer signals. */
    if (s->reading && s->ssl && SSL_pending(s->ssl) > 0)
        event_active(s->rd, EV_READ, 1);
    if (s->handshaking && s->conn->state >= WR_AMQP_S_OPEN) {
        s->handshaking = false;
        atomic_fetch_sub(&s->shard->fe->handshaking, 1);
    }
    arm(s, now);
    return true;
}

enum { RD_OK, RD_EOF, RD_ERROR };

/* The socket is merely not ready (or a signal came): try again later. */
static bool retriable(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Reads what the socket holds, in large reads, up to the input cap, so one
 * feed sees (and one core call carries) all of it. One recv when the kernel
 * had less than we asked for. */
static int read_into(struct evbuffer *in, evutil_socket_t fd)
{
    while (evbuffer_get_length(in) < WR_AMQP_IN_MAX) {
        struct evbuffer_iovec v;
        size_t want = WR_AMQP_IN_MAX - evbuffer_get_length(in);
        ssize_t n;

        if (want > 65536)
            want = 65536;
        if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1)
            return RD_ERROR;
        if (v.iov_len > want)
            v.iov_len = want;
        n = recv(fd, v.iov_base, v.iov_len, 0);
        if (n == 0)
            return RD_EOF;
        if (n < 0)
            return retriable() ? RD_OK : RD_ERROR;
        v.iov_len = (size_t)n;
        evbuffer_commit_space(in, &v, 1);
        if ((size_t)n < want)
            return RD_OK;
    }
    return RD_OK;
}

/*
 * A publisher that streams faster than STREAM_BPMS wakes us only once
 * LOWAT bytes wait (SO_RCVLOWAT), and what waits under that is read
 * TAIL_MS after the last read. Waking the loop for every few frames cost
 * both sides more than the work: the sender pays the wake-up in its send
 * (S1, 1 producer at ~100k msg/s: 92k -> 132k msg/s, our CPU per message
 * halved). Slower connections (RPC, S5's 10k msg/s) are read as they come.
 */
#define STREAM_BPMS 4096        /* bytes per ms: ~25k msg/s of 100 bytes */
#define STREAM_WINDOW_MS 2      /* the rate is measured over this at least */
#define STREAM_LOWAT (8u << 10) /* well under the input cap */
#define STREAM_TAIL_MS 1

static void pace(sock_t *s, evutil_socket_t fd, size_t n, int64_t now)
{
    static const struct timeval tail = {0, STREAM_TAIL_MS * 1000};

    s->win_bytes += n;
    if (now - s->win_ms >= STREAM_WINDOW_MS) {
        int want = s->win_bytes / (size_t)(now - s->win_ms) >= STREAM_BPMS ? (int)STREAM_LOWAT : 1;

        if (want != s->lowat && setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want)) == 0)
            s->lowat = want;
        s->win_ms = now;
        s->win_bytes = 0;
    }
    if (s->lowat > 1)
        evtimer_add(s->tail, &tail);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    sock_t *s = arg;
    int64_t now = wr_now_mono_ms();
    size_t had = evbuffer_get_length(s->in);
    int r;

    (void)what;
    r = s->ssl ? wr__amqp_tls_read(s->ssl, s->in, WR_AMQP_IN_MAX) : read_into(s->in, fd);
    if (r == RD_OK && !s->ssl)
        pace(s, fd, evbuffer_get_length(s->in) - had, now);
    _Static_assert((int)WR_TLS_OK == RD_OK && (int)WR_TLS_EOF == RD_EOF &&
                       (int)WR_TLS_ERROR == RD_ERROR,
                   "tls.c and read_into answer alike");
    /* Above the memory high watermark a publisher is read no more. */
    wr__amqp_mem_check(s->conn, now);
    if (r == RD_ERROR) {
        sock_close(s);
        return;
    }
    /* Frames that arrived with the FIN are still served. */
    wr__amqp_conn_feed(s->conn, s->in, now);
    if (r == RD_EOF) {
        s->eof = true;
        set_reading(s, false);
    }
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
        wr__amqp_conn_feed(s->conn, s->in, now);
    s->kicking = false;
    apply(s, now);
}

/* One attempt to write the output: -1 if the socket is broken. */
static int sock_send(sock_t *s)
{
    if (s->ssl)
        return wr__amqp_tls_write(s->ssl, s->out);
    return evbuffer_write(s->out, s->fd) < 0 && !retriable() ? -1 : 0;
}

/* Writes what the output holds; what the kernel does not take waits for
 * EV_WRITE. Once the output is below the low watermark, what waited for it
 * goes on. */
static void sock_write(sock_t *s)
{
    int64_t now;

    if (evbuffer_get_length(s->out) == 0) {
        set_writing(s, false);
        return;
    }
    if (sock_send(s) < 0) {
        sock_close(s);
        return;
    }
    set_writing(s, evbuffer_get_length(s->out) > 0);
    if (evbuffer_get_length(s->out) > WR_AMQP_OUT_LOW)
        return;
    now = wr_now_mono_ms();
    /* Consumers held back by a full output go on. */
    wr__amqp_consumers_pump(s->conn);
    /* Frames held back while the output was over the high watermark. */
    if (s->paused)
        wr__amqp_conn_feed(s->conn, s->in, now);
    apply(s, now);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sock_write(arg);
}

static void on_tail(evutil_socket_t fd, short what, void *arg)
{
    sock_t *s = arg;

    (void)fd;
    (void)what;
    if (s->reading)
        on_readable(s->fd, EV_READ, s);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    sock_t *s = arg;

    (void)fd;
    (void)what;
    s->flushing = false;
    sock_write(s);
}

/* Output was added: write it on the next loop turn, after the events of
 * the next poll (unless EV_WRITE is armed: the socket is full, it writes
 * when it can). Writing at once, at the end of this turn, made smaller
 * writes and so smaller batches on both sides: more work per message. */
static void on_out(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    static const struct timeval next_turn = {0, 0};
    sock_t *s = arg;

    (void)buf;
    if (info->n_added && !s->flushing && !s->writing) {
        s->flushing = true;
        evtimer_add(s->flush, &next_turn);
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
    /* Unblocked (memory is back under the mark): what waited in the input. */
    if (evbuffer_get_length(s->in) && wr__amqp_conn_want(s->conn) == WR_AMQP_WANT_READ)
        wr__amqp_conn_feed(s->conn, s->in, now);
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

/* Over --max-handshakes: refuse, logging at most once a second. */
static bool handshake_slot(amqp_fe_t *fe)
{
    int64_t now, last;

    if (atomic_fetch_add(&fe->handshaking, 1) < fe->max_handshakes)
        return true;
    atomic_fetch_sub(&fe->handshaking, 1);
    atomic_fetch_add(&fe->refused, 1);
    now = wr_now_mono_ms();
    last = atomic_load(&fe->refused_log_ms);
    if (now - last >= 1000 && atomic_compare_exchange_strong(&fe->refused_log_ms, &last, now))
        wr_log(WR_LOG_WARN, WR_LOGC_AMQP,
               "max-handshakes %u reached: closing new connections (%llu so far)",
               fe->max_handshakes, (unsigned long long)atomic_load(&fe->refused));
    return false;
}

static void accept_sock(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                        shard_t *sh, SSL_CTX *tls)
{
    struct event_base *base = evconnlistener_get_base(lev);
    int one = 1;
    char peer[64];
    sock_t *s;

    if (!handshake_slot(sh->fe)) {
        evutil_closesocket(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s = calloc(1, sizeof(*s));
    if (!s)
        wr_panic(__FILE__, __LINE__, "out of memory");
    s->fd = fd;
    s->in = evbuffer_new();
    s->out = evbuffer_new();
    s->rd = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, s);
    s->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, s);
    s->flush = evtimer_new(base, on_flush, s);
    s->timer = evtimer_new(base, on_timer, s);
    s->tail = evtimer_new(base, on_tail, s);
    s->lowat = 1;
    if (!s->in || !s->out || !s->rd || !s->wr || !s->flush || !s->timer || !s->tail ||
        !evbuffer_add_cb(s->out, on_out, s))
        wr_panic(__FILE__, __LINE__, "out of memory");
    s->shard = sh;
    s->armed = INT64_MAX;
    s->handshaking = true;
    if (tls) {
        s->ssl = SSL_new(tls);
        if (!s->ssl || SSL_set_fd(s->ssl, fd) != 1)
            wr_panic(__FILE__, __LINE__, "out of memory");
        SSL_set_accept_state(s->ssl);
    }
    peer_name(sa, peer, sizeof(peer));
    s->conn = wr__amqp_conn_new(&sh->fe->env, s->out, peer, is_loopback(sa), wr_now_mono_ms());
    s->conn->loop = sh->loop;
    s->conn->kick = sock_kick;
    s->conn->host = s;
    s->next = sh->socks;
    if (sh->socks)
        sh->socks->prev = s;
    sh->socks = s;
    wr_log(WR_LOG_DEBUG, WR_LOGC_AMQP, "conn=%llu peer=%s accepted shard=%u",
           (unsigned long long)s->conn->id, peer, wr_loop_id(sh->loop));

    set_reading(s, true);
    arm(s, wr_now_mono_ms());
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)salen;
    accept_sock(lev, fd, sa, arg, NULL);
}

static void on_accept_tls(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    shard_t *sh = arg;

    (void)salen;
    accept_sock(lev, fd, sa, sh, sh->fe->tls);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    shard_t *sh = arg;

    (void)fd;
    (void)what;
    if (sh->lev)
        evconnlistener_enable(sh->lev);
    if (sh->lev_tls)
        evconnlistener_enable(sh->lev_tls);
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
    if (sh->lev)
        evconnlistener_disable(sh->lev);
    if (sh->lev_tls)
        evconnlistener_disable(sh->lev_tls);
    evtimer_add(sh->retry, &tv);
}

/* ------------------------------------------------------------------------ */
/* Listeners (run on the shard's loop)                                      */

/* Binds one listener; with port 0 the first one picks it and the others
 * (addr gets it) join it. NULL after logging. */
static struct evconnlistener *listen_on(shard_t *sh, evconnlistener_cb cb,
                                        struct sockaddr_storage *addr, socklen_t len,
                                        uint16_t *port)
{
    struct event_base *base = wr_loop_base(sh->loop);
    unsigned flags =
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT;
    struct evconnlistener *lev =
        evconnlistener_new_bind(base, cb, sh, flags, 1024, (struct sockaddr *)addr, (int)len);

    if (!lev) {
        wr_log(WR_LOG_ERROR, WR_LOGC_AMQP, "listen on port %u: %s", *port, strerror(errno));
        return NULL;
    }
    evconnlistener_set_error_cb(lev, on_accept_error);
    if (*port == 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        evutil_socket_t fd = evconnlistener_get_fd(lev);
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
            uint16_t p = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
            *port = p;
            if (addr->ss_family == AF_INET6)
                ((struct sockaddr_in6 *)addr)->sin6_port = htons(p);
            else
                ((struct sockaddr_in *)addr)->sin_port = htons(p);
        }
    }
    return lev;
}

/*
 * Every SWEEP_MS, if the registry changed since the last look, every
 * connection of the shard checks that its user and vhost still exist
 * (wr__amqp_conn_recheck). Polling one atomic keeps the registry free of
 * any knowledge of front ends and their loops' lifetimes; a deleted user's
 * connections are closed within SWEEP_MS.
 */
#define SWEEP_MS 200

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    shard_t *sh = arg;
    uint64_t gen = wr_auth_generation(sh->fe->env.auth);
    int64_t now;
    sock_t *next;

    (void)fd;
    (void)what;
    if (gen == sh->auth_gen)
        return;
    sh->auth_gen = gen;
    now = wr_now_mono_ms();
    for (sock_t *s = sh->socks; s; s = next) {
        next = s->next; /* apply() may free s */
        if (wr__amqp_conn_recheck(s->conn))
            apply(s, now);
    }
}

static void do_listen(shard_t *sh)
{
    amqp_fe_t *fe = sh->fe;
    static const struct timeval sweep_tv = {0, SWEEP_MS * 1000};

    sh->retry = evtimer_new(wr_loop_base(sh->loop), on_retry, sh);
    if (!sh->retry)
        wr_panic(__FILE__, __LINE__, "out of memory");
    if (fe->env.auth) {
        sh->sweep = event_new(wr_loop_base(sh->loop), -1, EV_PERSIST, on_sweep, sh);
        if (!sh->sweep)
            wr_panic(__FILE__, __LINE__, "out of memory");
        sh->auth_gen = wr_auth_generation(fe->env.auth);
        event_add(sh->sweep, &sweep_tv);
    }
    sh->lev = listen_on(sh, on_accept, &fe->addr, fe->addr_len, &fe->port);
    if (sh->lev && fe->tls)
        sh->lev_tls = listen_on(sh, on_accept_tls, &fe->taddr, fe->taddr_len, &fe->tport);
    if (!sh->lev || (fe->tls && !sh->lev_tls))
        fe->listen_err = WR_EIO;
}

static void do_unlisten(shard_t *sh)
{
    if (sh->lev) {
        evconnlistener_free(sh->lev);
        sh->lev = NULL;
    }
    if (sh->lev_tls) {
        evconnlistener_free(sh->lev_tls);
        sh->lev_tls = NULL;
    }
    if (sh->retry) {
        event_free(sh->retry);
        sh->retry = NULL;
    }
    if (sh->sweep) {
        event_free(sh->sweep);
        sh->sweep = NULL;
    }
}

/* Closes the shard's connections: connection.close 320 to the open ones, one
 * non-blocking attempt to write what is queued, then the socket goes. */
static void do_close_all(shard_t *sh)
{
    while (sh->socks) {
        sock_t *s = sh->socks;
        wr__amqp_conn_shutdown(s->conn);
        if (evbuffer_get_length(s->out) > 0)
            sock_send(s);
        sock_close(s);
    }
}

static wr_err_t resolve(const char *host, uint16_t portn, struct sockaddr_storage *addr,
                        socklen_t *addr_len)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", portn);
    rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0 || !res) {
        wr_log(WR_LOG_ERROR, WR_LOGC_AMQP, "amqp address '%s': %s", host, gai_strerror(rc));
        return WR_EINVAL;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addr_len = res->ai_addrlen;
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
    SSL_CTX_free(fe->tls);
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
    fe->port = cfg->amqp_port;
    fe->tport = cfg->amqps_port;
    fe->max_handshakes = cfg->max_handshakes ? cfg->max_handshakes : 1000;
    err = resolve(cfg->amqp_addr, cfg->amqp_port, &fe->addr, &fe->addr_len);
    if (err == WR_OK && cfg->amqps_addr[0]) {
        err = resolve(cfg->amqps_addr, cfg->amqps_port, &fe->taddr, &fe->taddr_len);
        fe->tls = err == WR_OK ? wr__amqp_tls_ctx(cfg) : NULL;
        if (err == WR_OK && !fe->tls)
            err = WR_EINVAL;
    }
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
        SSL_CTX_free(fe->tls);
        free(fe);
        return err;
    }
    wr_log(WR_LOG_INFO, WR_LOGC_AMQP, "listening on %s:%u (%u shards) amqps=%u max_handshakes=%u",
           cfg->amqp_addr, fe->port, fe->nshards, fe->tls ? fe->tport : 0, fe->max_handshakes);
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
