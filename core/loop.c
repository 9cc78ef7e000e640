/*
 * loop.c - wr_loop_t: libevent base + mailbox + lag probe, one per thread.
 *
 * Layout: mailbox (post, drain), lag tick, lifecycle (new/start/stop/free).
 */
#include "loop.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

typedef struct task {
    wr_task_fn fn;
    void *arg;
} task_t;

struct wr_loop {
    unsigned id;
    struct event_base *base;
    struct event *mail_ev;
    struct event *self_ev; /* zero-timeout timer: wakes the loop for its own posts */
    struct event *tick_ev;
    int efd;

    pthread_mutex_t mu;
    task_t *box; /* guarded by mu */
    size_t box_len, box_cap;
    bool efd_written; /* guarded by mu: a poster wrote the eventfd (so drain reads it) */
    task_t *run; /* owned by the loop thread: the swapped-out batch */
    size_t run_cap;

    pthread_t thread;
    bool running;
    atomic_bool stopping;

    int64_t tick_due_us;
    _Atomic uint64_t lag_last_us, lag_max_us;
};

static _Thread_local wr_loop_t *current_loop;

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t wr_now_mono_ms(void)
{
    return mono_us() / 1000;
}

int64_t wr_now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A post from the loop's own thread (a shard answering a connection it
 * also serves, a task continuing itself) wakes the loop with a zero-timeout
 * timer instead of the eventfd: no write, no read, no extra epoll turn. A
 * timer rather than event_active because libevent runs an event activated
 * inside a callback in the same pass, so a loop whose tasks keep posting
 * to themselves would never poll its sockets; the timer waits for the next
 * epoll_wait, which then does not block.
 */
void wr_loop_post(wr_loop_t *loop, wr_task_fn fn, void *arg)
{
    bool self = current_loop == loop;
    bool wake;

    pthread_mutex_lock(&loop->mu);
    if (loop->box_len == loop->box_cap) {
        size_t cap = loop->box_cap ? loop->box_cap * 2 : 64;
        task_t *nb = realloc(loop->box, cap * sizeof(*nb));
        if (!nb)
            wr_panic(__FILE__, __LINE__, "out of memory");
        loop->box = nb;
        loop->box_cap = cap;
    }
    loop->box[loop->box_len++] = (task_t){fn, arg};
    wake = loop->box_len == 1;
    if (wake && !self)
        loop->efd_written = true;
    pthread_mutex_unlock(&loop->mu);

    if (wake && self) {
        static const struct timeval now = {0, 0};
        event_add(loop->self_ev, &now);
    } else if (wake) {
        uint64_t one = 1;
        ssize_t r;
        do {
            r = write(loop->efd, &one, sizeof(one));
        } while (r < 0 && errno == EINTR);
    }
}

static void read_efd(wr_loop_t *loop)
{
    uint64_t n;

    if (read(loop->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        wr_log(WR_LOG_WARN, WR_LOGC_CORE, "loop=%u eventfd read: %s", loop->id, strerror(errno));
}

/* efd_read: the caller has just read the eventfd (it woke on it). */
static void drain(wr_loop_t *loop, bool efd_read)
{
    task_t *batch;
    size_t len, cap;
    bool written;

    /* Swap the arrays so posters are never blocked while tasks run. */
    pthread_mutex_lock(&loop->mu);
    batch = loop->box;
    len = loop->box_len;
    cap = loop->box_cap;
    loop->box = loop->run;
    loop->box_cap = loop->run_cap;
    loop->box_len = 0;
    loop->run = batch;
    loop->run_cap = cap;
    written = loop->efd_written;
    loop->efd_written = false;
    pthread_mutex_unlock(&loop->mu);

    /* Woken by the timer with a cross-thread post in the box too: take its
     * eventfd count now. Should the poster's write come after this read,
     * the loop wakes once more and finds the box empty, which is harmless. */
    if (written && !efd_read)
        read_efd(loop);
    for (size_t i = 0; i < len; i++)
        batch[i].fn(batch[i].arg);
}

static void on_mail(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    read_efd(arg);
    drain(arg, true);
}

static void on_self(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain(arg, false);
}

#define TICK_US 100000

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    wr_loop_t *loop = arg;
    int64_t now = mono_us();
    uint64_t late = now > loop->tick_due_us ? (uint64_t)(now - loop->tick_due_us) : 0;

    (void)fd;
    (void)what;
    atomic_store_explicit(&loop->lag_last_us, late, memory_order_relaxed);
    if (late > atomic_load_explicit(&loop->lag_max_us, memory_order_relaxed))
        atomic_store_explicit(&loop->lag_max_us, late, memory_order_relaxed);
    loop->tick_due_us = now + TICK_US;
}

void wr_loop_lag(const wr_loop_t *loop, uint64_t *last_us, uint64_t *max_us)
{
    *last_us = atomic_load_explicit(&loop->lag_last_us, memory_order_relaxed);
    *max_us = atomic_load_explicit(&loop->lag_max_us, memory_order_relaxed);
}

/* epoll's change list: an event added and removed again within one pass
 * of the loop (a reply's write interest, when the write finishes at once)
 * costs no epoll_ctl at all, and the rest go out together before the wait.
 * The catch libevent documents, dup()ed descriptors, does not apply: no
 * front end dup()s a socket. */
static struct event_base *new_base(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (!cfg)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

wr_err_t wr_loop_new(unsigned id, wr_loop_t **out)
{
    wr_loop_t *loop = calloc(1, sizeof(*loop));
    struct timeval tv = {0, TICK_US};

    if (!loop)
        return WR_ENOMEM;
    loop->id = id;
    loop->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    loop->base = new_base();
    if (loop->efd < 0 || !loop->base) {
        wr_loop_free(loop);
        return WR_ENOMEM;
    }
    pthread_mutex_init(&loop->mu, NULL);
    loop->mail_ev = event_new(loop->base, loop->efd, EV_READ | EV_PERSIST, on_mail, loop);
    loop->self_ev = evtimer_new(loop->base, on_self, loop);
    loop->tick_ev = event_new(loop->base, -1, EV_PERSIST, on_tick, loop);
    if (!loop->mail_ev || !loop->self_ev || !loop->tick_ev) {
        wr_loop_free(loop);
        return WR_ENOMEM;
    }
    event_add(loop->mail_ev, NULL);
    loop->tick_due_us = mono_us() + TICK_US;
    event_add(loop->tick_ev, &tv);
    *out = loop;
    return WR_OK;
}

static void *loop_main(void *arg)
{
    wr_loop_t *loop = arg;

    current_loop = loop;
    while (!atomic_load(&loop->stopping))
        event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY);
    /* Run whatever was posted before the stop request, in order. */
    drain(loop, false);
    current_loop = NULL;
    return NULL;
}

wr_err_t wr_loop_start(wr_loop_t *loop, const char *name)
{
    if (pthread_create(&loop->thread, NULL, loop_main, loop) != 0)
        return WR_ENOMEM;
    if (name)
        pthread_setname_np(loop->thread, name);
    loop->running = true;
    return WR_OK;
}

static void do_stop(void *arg)
{
    wr_loop_t *loop = arg;
    atomic_store(&loop->stopping, true);
    event_base_loopbreak(loop->base);
}

void wr_loop_stop(wr_loop_t *loop)
{
    if (!loop || !loop->running)
        return;
    WR_ASSERT(!wr_loop_is_current(loop));
    wr_loop_post(loop, do_stop, loop);
    pthread_join(loop->thread, NULL);
    loop->running = false;
}

void wr_loop_free(wr_loop_t *loop)
{
    if (!loop)
        return;
    wr_loop_stop(loop);
    if (loop->mail_ev)
        event_free(loop->mail_ev);
    if (loop->self_ev)
        event_free(loop->self_ev);
    if (loop->tick_ev)
        event_free(loop->tick_ev);
    if (loop->base)
        event_base_free(loop->base);
    if (loop->efd >= 0)
        close(loop->efd);
    pthread_mutex_destroy(&loop->mu);
    free(loop->box);
    free(loop->run);
    free(loop);
}

struct event_base *wr_loop_base(wr_loop_t *loop)
{
    return loop->base;
}

unsigned wr_loop_id(const wr_loop_t *loop)
{
    return loop->id;
}

bool wr_loop_is_current(const wr_loop_t *loop)
{
    return current_loop == loop;
}

wr_loop_t *wr_loop_current(void)
{
    return current_loop;
}
