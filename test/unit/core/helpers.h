/*
 * helpers.h - a synchronous face on the asynchronous core API, for tests.
 *
 * Each test gets a core with 2 shards and one "test" loop used as the reply
 * loop (suite init/fini). A t_call_t is one call: the callback copies the
 * result (taking body references) and signals; t_wait blocks the test
 * thread until it ran. The t_* wrappers issue a call and wait for it.
 *
 * Header-only on purpose: every .c under test/unit becomes its own test
 * executable, so shared code cannot live in a .c of its own.
 */
#ifndef WR_TEST_HELPERS_H
#define WR_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/wr.h"

#define T_UNUSED __attribute__((unused))

typedef struct t_env {
    wr_core_t *core;
    wr_loop_t *loop;
} t_env_t;

static t_env_t T;

static inline wr_slice_t S(const char *s)
{
    return (wr_slice_t){s, strlen(s)};
}

static T_UNUSED void t_setup_cfg(const wr_core_cfg_t *cfg)
{
    wr_log_level_g = WR_LOG_WARN;
    cr_assert_eq(wr_core_new(cfg, &T.core), WR_OK);
    cr_assert_eq(wr_loop_new(100, &T.loop), WR_OK);
    cr_assert_eq(wr_loop_start(T.loop, "test"), WR_OK);
}

static T_UNUSED void t_setup(void)
{
    wr_core_cfg_t cfg = {.shards = 2};
    t_setup_cfg(&cfg);
}

/* Objects callbacks may still reach until the loops stop (consumers):
 * freed at teardown, after the core and the test loop. */
static void *T_later[256];
static int T_nlater;

static T_UNUSED void t_teardown(void)
{
    wr_core_free(T.core);
    wr_loop_free(T.loop);
    T.core = NULL;
    T.loop = NULL;
    while (T_nlater)
        free(T_later[--T_nlater]);
}

#define T_MAXQ 1100

typedef struct t_call {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bool on_reply_loop;
    int calls;
    wr_err_t err;
    /* declare */
    bool created;
    uint64_t messages;
    uint32_t consumers;
    /* stat */
    wr_queue_stat_res_t stat;
    char meta[256];
    size_t meta_len;
    /* count */
    uint64_t count;
    /* publish and msgs */
    uint64_t ids[WR_BATCH_MAX];
    size_t n;
    wr_msg_view_t *msgs;
    uint64_t claim_id, next_marker, ready;
    int64_t claim_ttl_ms, claim_age_ms;
    /* queue list */
    char names[T_MAXQ][WR_NAME_MAX + 1];
    char qmeta[T_MAXQ][32];
    bool more;
    /* metrics */
    size_t nqueues, nshards;
    wr_queue_metrics_t qm[T_MAXQ];
    char qm_names[T_MAXQ][WR_NAME_MAX + 1];
    wr_shard_metrics_t sm[16];
} t_call_t;

static T_UNUSED t_call_t *t_call_new(void)
{
    t_call_t *c = calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return c;
}

static T_UNUSED void t_call_free(t_call_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->msgs && i < c->n; i++) {
        wr_body_unref(c->msgs[i].body);
        wr_body_unref(c->msgs[i].route);
    }
    free(c->msgs);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

static inline void t_signal(t_call_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->on_reply_loop = wr_loop_is_current(T.loop);
    c->calls++;
    c->done = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Waits up to ms for the callback; returns whether it ran. */
static T_UNUSED bool t_wait_ms(t_call_t *c, int ms)
{
    struct timespec ts;
    bool done;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0)
            break;
    done = c->done;
    pthread_mutex_unlock(&c->mu);
    return done;
}

static T_UNUSED t_call_t *t_wait(t_call_t *c)
{
    cr_assert(t_wait_ms(c, 10000), "callback did not run");
    cr_assert(c->on_reply_loop, "callback ran off the reply loop");
    return c;
}

static T_UNUSED bool t_is_done(t_call_t *c)
{
    bool d;
    pthread_mutex_lock(&c->mu);
    d = c->done;
    pthread_mutex_unlock(&c->mu);
    return d;
}

/* ------------------------------------------------------------------------ */
/* Callbacks: copy, then signal                                             */

static T_UNUSED void t_on_declare(void *arg, const wr_queue_declare_res_t *res)
{
    t_call_t *c = arg;
    c->err = res->err;
    c->created = res->created;
    c->messages = res->messages;
    c->consumers = res->consumers;
    t_signal(c);
}

static T_UNUSED void t_on_stat(void *arg, const wr_queue_stat_res_t *res)
{
    t_call_t *c = arg;
    c->err = res->err;
    c->stat = *res;
    c->meta_len = res->meta.len < sizeof(c->meta) ? res->meta.len : sizeof(c->meta);
    if (c->meta_len)
        memcpy(c->meta, res->meta.ptr, c->meta_len);
    c->stat.meta = (wr_slice_t){c->meta, c->meta_len};
    t_signal(c);
}

static T_UNUSED void t_on_count(void *arg, const wr_count_res_t *res)
{
    t_call_t *c = arg;
    c->err = res->err;
    c->count = res->count;
    t_signal(c);
}

static T_UNUSED void t_on_publish(void *arg, const wr_publish_res_t *res)
{
    t_call_t *c = arg;
    c->err = res->err;
    c->n = res->n;
    if (res->n)
        memcpy(c->ids, res->ids, res->n * sizeof(uint64_t));
    t_signal(c);
}

static T_UNUSED void t_on_msgs(void *arg, const wr_msgs_res_t *res)
{
    t_call_t *c = arg;
    c->err = res->err;
    c->n = res->n;
    c->claim_id = res->claim_id;
    c->ready = res->ready;
    c->claim_ttl_ms = res->claim_ttl_ms;
    c->claim_age_ms = res->claim_age_ms;
    c->next_marker = res->next_marker;
    if (res->n) {
        c->msgs = calloc(res->n, sizeof(*c->msgs));
        memcpy(c->msgs, res->msgs, res->n * sizeof(*c->msgs));
        for (size_t i = 0; i < res->n; i++) {
            wr_body_ref(c->msgs[i].body);
            if (c->msgs[i].route)
                wr_body_ref(c->msgs[i].route);
            if (i < WR_BATCH_MAX)
                c->ids[i] = res->msgs[i].id;
        }
    }
    t_signal(c);
}

static T_UNUSED void t_on_qlist(void *arg, const wr_queue_list_res_t *res)
{
    t_call_t *c = arg;
    c->err = res->err;
    c->n = res->n;
    c->more = res->more;
    for (size_t i = 0; i < res->n && i < T_MAXQ; i++) {
        memcpy(c->names[i], res->items[i].name.ptr, res->items[i].name.len);
        c->names[i][res->items[i].name.len] = '\0';
        if (res->items[i].meta.len && res->items[i].meta.len < sizeof(c->qmeta[i])) {
            memcpy(c->qmeta[i], res->items[i].meta.ptr, res->items[i].meta.len);
            c->qmeta[i][res->items[i].meta.len] = '\0';
        }
    }
    t_signal(c);
}

static T_UNUSED void t_on_metrics(void *arg, const wr_metrics_res_t *res)
{
    t_call_t *c = arg;
    c->nqueues = res->nqueues;
    c->nshards = res->nshards;
    for (size_t i = 0; i < res->nqueues && i < T_MAXQ; i++) {
        c->qm[i] = res->queues[i];
        snprintf(c->qm_names[i], sizeof(c->qm_names[i]), "%.*s/%.*s",
                 (int)res->queues[i].tenant.len, (const char *)res->queues[i].tenant.ptr,
                 (int)res->queues[i].name.len, (const char *)res->queues[i].name.ptr);
    }
    for (size_t i = 0; i < res->nshards && i < 16; i++)
        c->sm[i] = res->shards[i];
    t_signal(c);
}

/* ------------------------------------------------------------------------ */
/* Synchronous wrappers                                                     */

static T_UNUSED t_call_t *t_declare_full(const char *tenant, const char *q,
                                         const wr_queue_attrs_t *attrs, const char *meta,
                                         unsigned flags)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_queue_declare(T.core, S(tenant), S(q), attrs, meta ? S(meta) : S(""), flags,
                                  T.loop, t_on_declare, c),
                 WR_OK);
    return t_wait(c);
}

/* Declares; returns the result error. */
static T_UNUSED wr_err_t t_declare(const char *tenant, const char *q, const wr_queue_attrs_t *attrs)
{
    t_call_t *c = t_declare_full(tenant, q, attrs, NULL, 0);
    wr_err_t err = c->err;
    t_call_free(c);
    return err;
}

static T_UNUSED wr_msg_in_t t_msg(const char *body, int64_t ttl_ms, int64_t delay_ms,
                                  uint64_t producer)
{
    return (wr_msg_in_t){.body = wr_body_new(S(""), S(body)),
                         .ttl_ms = ttl_ms,
                         .delay_ms = delay_ms,
                         .producer = producer};
}

static T_UNUSED t_call_t *t_publish_msgs(const char *tenant, const char *q, wr_msg_in_t *msgs,
                                         size_t n, unsigned flags)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_publish(T.core, S(tenant), S(q), msgs, n, flags, T.loop, t_on_publish, c),
                 WR_OK);
    return t_wait(c);
}

/* Publishes n messages "prefix-i" with the given ttl/delay; returns the call. */
static T_UNUSED t_call_t *t_publish_n(const char *tenant, const char *q, size_t n, int64_t ttl,
                                      int64_t delay, uint64_t producer, unsigned flags)
{
    wr_msg_in_t *msgs = calloc(n, sizeof(*msgs));
    char buf[64];
    t_call_t *c;

    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof(buf), "m%zu", i);
        msgs[i] = t_msg(buf, ttl, delay, producer);
    }
    c = t_publish_msgs(tenant, q, msgs, n, flags);
    free(msgs);
    return c;
}

/* One message; returns its id (asserting success). */
static T_UNUSED uint64_t t_pub1(const char *tenant, const char *q, const char *body)
{
    wr_msg_in_t m = t_msg(body, 0, -1, 0);
    t_call_t *c = t_publish_msgs(tenant, q, &m, 1, WR_PUB_CREATE);
    uint64_t id;

    cr_assert_eq(c->err, WR_OK);
    cr_assert_eq(c->n, 1);
    id = c->ids[0];
    t_call_free(c);
    return id;
}

static T_UNUSED t_call_t *t_claim_start(const char *tenant, const char *q, uint32_t limit,
                                        int64_t ttl, int64_t grace, int64_t wait, bool pop)
{
    t_call_t *c = t_call_new();
    wr_claim_opts_t o = {
        .limit = limit, .ttl_ms = ttl, .grace_ms = grace, .wait_ms = wait, .pop = pop};
    cr_assert_eq(wr_claim(T.core, S(tenant), S(q), &o, T.loop, t_on_msgs, c), WR_OK);
    return c;
}

static T_UNUSED t_call_t *t_claim(const char *tenant, const char *q, uint32_t limit, int64_t ttl,
                                  int64_t grace)
{
    return t_wait(t_claim_start(tenant, q, limit, ttl, grace, 0, false));
}

static T_UNUSED t_call_t *t_pop(const char *tenant, const char *q, uint32_t limit)
{
    return t_wait(t_claim_start(tenant, q, limit, 1000, 0, 0, true));
}

static T_UNUSED t_call_t *t_list(const char *tenant, const char *q, uint64_t marker,
                                 uint32_t limit, unsigned flags, uint64_t producer)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(
        wr_msg_list(T.core, S(tenant), S(q), marker, limit, flags, producer, T.loop, t_on_msgs, c),
        WR_OK);
    return t_wait(c);
}

static T_UNUSED t_call_t *t_get(const char *tenant, const char *q, const uint64_t *ids, size_t n)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_msg_get(T.core, S(tenant), S(q), ids, n, T.loop, t_on_msgs, c), WR_OK);
    return t_wait(c);
}

static T_UNUSED t_call_t *t_delete(const char *tenant, const char *q, const uint64_t *ids,
                                   size_t n, uint64_t claim_id, bool force)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_msg_delete(T.core, S(tenant), S(q), ids, n, claim_id, force, T.loop,
                               t_on_count, c),
                 WR_OK);
    return t_wait(c);
}

static T_UNUSED t_call_t *t_stat(const char *tenant, const char *q)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_queue_stat(T.core, S(tenant), S(q), T.loop, t_on_stat, c), WR_OK);
    return t_wait(c);
}

static T_UNUSED t_call_t *t_qdelete(const char *tenant, const char *q, unsigned flags)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_queue_delete(T.core, S(tenant), S(q), flags, T.loop, t_on_count, c), WR_OK);
    return t_wait(c);
}

static T_UNUSED t_call_t *t_purge(const char *tenant, const char *q)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_queue_purge(T.core, S(tenant), S(q), T.loop, t_on_count, c), WR_OK);
    return t_wait(c);
}

static T_UNUSED t_call_t *t_qlist(const char *tenant, const char *marker, uint32_t limit,
                                  bool meta)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(
        wr_queue_list(T.core, S(tenant), S(marker), limit, meta, T.loop, t_on_qlist, c), WR_OK);
    return t_wait(c);
}

static T_UNUSED t_call_t *t_claim_get(const char *tenant, const char *q, uint64_t cid)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_claim_get(T.core, S(tenant), S(q), cid, T.loop, t_on_msgs, c), WR_OK);
    return t_wait(c);
}

static T_UNUSED t_call_t *t_claim_renew(const char *tenant, const char *q, uint64_t cid,
                                        int64_t ttl, int64_t grace)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(
        wr_claim_renew(T.core, S(tenant), S(q), cid, ttl, grace, T.loop, t_on_count, c), WR_OK);
    return t_wait(c);
}

static T_UNUSED t_call_t *t_claim_release(const char *tenant, const char *q, uint64_t cid)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_claim_release(T.core, S(tenant), S(q), cid, T.loop, t_on_count, c), WR_OK);
    return t_wait(c);
}

static T_UNUSED t_call_t *t_metrics(void)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_core_metrics(T.core, T.loop, t_on_metrics, c), WR_OK);
    return t_wait(c);
}

static T_UNUSED void t_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The body text of a view (NUL-terminated copy in a static buffer). */
static T_UNUSED const char *t_body(const wr_msg_view_t *v)
{
    static _Thread_local char buf[256];
    size_t n = v->body->body_len < sizeof(buf) - 1 ? v->body->body_len : sizeof(buf) - 1;
    memcpy(buf, wr_body_bytes(v->body), n);
    buf[n] = '\0';
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Exchanges and bindings                                                   */

/* Declares; returns err, *created (may be NULL) set from count. */
static T_UNUSED wr_err_t t_exdecl_f(const char *tenant, const char *name, const char *type,
                                    unsigned flags, bool *created)
{
    t_call_t *c = t_call_new();
    wr_err_t err;
    cr_assert_eq(wr_exchange_declare(T.core, S(tenant), S(name), S(type), flags, NULL, T.loop,
                                     t_on_count, c),
                 WR_OK);
    t_wait(c);
    err = c->err;
    if (created)
        *created = c->count == 1;
    t_call_free(c);
    return err;
}

static T_UNUSED wr_err_t t_exdecl(const char *tenant, const char *name, const char *type,
                                  unsigned flags)
{
    return t_exdecl_f(tenant, name, type, flags, NULL);
}

static T_UNUSED wr_err_t t_exdel(const char *tenant, const char *name, unsigned flags)
{
    t_call_t *c = t_call_new();
    wr_err_t err;
    cr_assert_eq(wr_exchange_delete(T.core, S(tenant), S(name), flags, T.loop, t_on_count, c),
                 WR_OK);
    err = t_wait(c)->err;
    t_call_free(c);
    return err;
}

/* Binds (unbind if !bind) queue <- exchange; returns err, count in *count. */
static T_UNUSED wr_err_t t_qbind_h(bool bind, const char *tenant, const char *q, const char *ex,
                                   const char *key, const wr_header_t *args, size_t nargs,
                                   uint64_t *count)
{
    t_call_t *c = t_call_new();
    wr_err_t err;
    if (bind)
        cr_assert_eq(wr_queue_bind(T.core, S(tenant), S(q), S(ex), S(key), args, nargs, 0, T.loop,
                                   t_on_count, c),
                     WR_OK);
    else
        cr_assert_eq(wr_queue_unbind(T.core, S(tenant), S(q), S(ex), S(key), args, nargs, 0,
                                     T.loop, t_on_count, c),
                     WR_OK);
    err = t_wait(c)->err;
    if (count)
        *count = c->count;
    t_call_free(c);
    return err;
}

static T_UNUSED wr_err_t t_qbind(const char *tenant, const char *q, const char *ex,
                                 const char *key)
{
    return t_qbind_h(true, tenant, q, ex, key, NULL, 0, NULL);
}

static T_UNUSED wr_err_t t_qunbind(const char *tenant, const char *q, const char *ex,
                                   const char *key)
{
    return t_qbind_h(false, tenant, q, ex, key, NULL, 0, NULL);
}

static T_UNUSED wr_err_t t_exbind(bool bind, const char *tenant, const char *dest,
                                  const char *src, const char *key)
{
    t_call_t *c = t_call_new();
    wr_err_t err;
    if (bind)
        cr_assert_eq(wr_exchange_bind(T.core, S(tenant), S(dest), S(src), S(key), NULL, 0, T.loop,
                                      t_on_count, c),
                     WR_OK);
    else
        cr_assert_eq(wr_exchange_unbind(T.core, S(tenant), S(dest), S(src), S(key), NULL, 0,
                                        T.loop, t_on_count, c),
                     WR_OK);
    err = t_wait(c)->err;
    t_call_free(c);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Routed publish                                                           */

typedef struct t_route {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, on_reply_loop;
    wr_err_t err;
    size_t n;
    uint32_t reached[WR_BATCH_MAX];
} t_route_t;

static T_UNUSED void t_on_route(void *arg, const wr_route_res_t *res)
{
    t_route_t *c = arg;
    pthread_mutex_lock(&c->mu);
    c->err = res->err;
    c->n = res->n;
    if (res->n)
        memcpy(c->reached, res->reached, res->n * sizeof(uint32_t));
    c->on_reply_loop = wr_loop_is_current(T.loop);
    c->done = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static T_UNUSED void t_route_wait(t_route_t *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&c->mu);
    cr_assert(c->done, "route callback did not run");
    cr_assert(c->on_reply_loop, "route callback ran off the reply loop");
}

/* Publishes msgs through ex/key with headers; returns err, reached of the
 * first message in *reached (may be NULL). */
static T_UNUSED wr_err_t t_route_msgs(const char *tenant, const char *ex, const char *key,
                                      const wr_header_t *h, size_t nh, wr_msg_in_t *msgs,
                                      size_t n, uint32_t *reached)
{
    t_route_t c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    cr_assert_eq(wr_publish_routed(T.core, S(tenant), S(ex), S(key), h, nh, msgs, n, 0, T.loop,
                                   t_on_route, &c),
                 WR_OK);
    t_route_wait(&c);
    cr_assert_eq(c.n, c.err == WR_OK || c.err == WR_EQUOTA || c.err == WR_EIO ? n : c.n);
    for (size_t i = 1; i < c.n; i++)
        cr_assert_eq(c.reached[i], c.reached[0]);
    if (reached)
        *reached = c.n ? c.reached[0] : 0;
    return c.err;
}

/* One message with body `body`; returns the number of queues reached
 * (asserting err == WR_OK). */
static T_UNUSED uint32_t t_route1(const char *tenant, const char *ex, const char *key,
                                  const wr_header_t *h, size_t nh, const char *body)
{
    wr_msg_in_t m = t_msg(body, 0, -1, 0);
    uint32_t reached = 0;
    wr_err_t err = t_route_msgs(tenant, ex, key, h, nh, &m, 1, &reached);
    cr_assert_eq(err, WR_OK, "route err %d", err);
    return reached;
}

/* Ready messages in a queue (stat total - claimed). */
static T_UNUSED uint64_t t_depth(const char *tenant, const char *q)
{
    t_call_t *c = t_stat(tenant, q);
    uint64_t n = c->err == WR_OK ? c->stat.total : 0;
    t_call_free(c);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Consumers                                                                */

#define T_CMAX 4096

typedef struct t_cons {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool subscribed;
    wr_err_t sub_err;
    uint64_t sub_id;
    uint32_t consumers;
    bool delivered_before_subscribed;
    size_t n; /* deliveries so far */
    size_t batches;
    uint64_t claim_id;
    uint64_t ids[T_CMAX];
    char bodies[T_CMAX][24];
    bool redelivered[T_CMAX];
    uint32_t dcount[T_CMAX];
    uint8_t prio[T_CMAX];
    char rkey[T_CMAX][16];
    bool ended;
    wr_err_t end_err;
    size_t delivered_after_end;
    bool off_loop;
} t_cons_t;

static T_UNUSED t_cons_t *t_cons_new(void)
{
    t_cons_t *c = calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    cr_assert_lt(T_nlater, 256);
    T_later[T_nlater++] = c;
    return c;
}

/* Deliveries may still be on their way: the consumer is freed at teardown. */
static T_UNUSED void t_cons_free(t_cons_t *c)
{
    (void)c;
}

static T_UNUSED void t_on_deliver(void *arg, const wr_deliveries_t *b)
{
    t_cons_t *c = arg;
    pthread_mutex_lock(&c->mu);
    if (!wr_loop_is_current(T.loop))
        c->off_loop = true;
    if (!c->subscribed)
        c->delivered_before_subscribed = true;
    if (c->ended)
        c->delivered_after_end += b->n;
    c->batches++;
    c->claim_id = b->claim_id;
    for (size_t i = 0; i < b->n && c->n < T_CMAX; i++) {
        const wr_delivery_t *d = &b->d[i];
        size_t k = c->n++, bl = d->body->body_len < 23 ? d->body->body_len : 23;
        size_t rl = d->routing_key.len < 15 ? d->routing_key.len : 15;
        c->ids[k] = d->id;
        memcpy(c->bodies[k], wr_body_bytes(d->body), bl);
        c->bodies[k][bl] = '\0';
        memcpy(c->rkey[k], d->routing_key.ptr, rl);
        c->rkey[k][rl] = '\0';
        c->redelivered[k] = d->redelivered;
        c->dcount[k] = d->delivery_count;
        c->prio[k] = d->priority;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static T_UNUSED void t_on_sub_end(void *arg, uint64_t sub_id, wr_err_t why)
{
    t_cons_t *c = arg;
    pthread_mutex_lock(&c->mu);
    cr_assert_eq(sub_id, c->sub_id);
    c->ended = true;
    c->end_err = why;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static T_UNUSED void t_on_sub(void *arg, const wr_sub_res_t *res)
{
    t_cons_t *c = arg;
    pthread_mutex_lock(&c->mu);
    c->sub_err = res->err;
    c->sub_id = res->sub_id;
    c->consumers = res->consumers;
    c->subscribed = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Waits until pred(c) holds (up to ms); returns whether it did. */
static T_UNUSED bool t_cons_wait(t_cons_t *c, bool (*pred)(const t_cons_t *, size_t), size_t v,
                                 int ms)
{
    struct timespec ts;
    bool ok;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&c->mu);
    while (!(ok = pred(c, v)))
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0)
            break;
    ok = pred(c, v);
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static T_UNUSED bool t_pred_n(const t_cons_t *c, size_t v)
{
    return c->n >= v;
}
static T_UNUSED bool t_pred_ended(const t_cons_t *c, size_t v)
{
    (void)v;
    return c->ended;
}
static T_UNUSED bool t_pred_subscribed(const t_cons_t *c, size_t v)
{
    (void)v;
    return c->subscribed;
}

/* Waits for at least n deliveries (asserting they came). */
static T_UNUSED void t_cons_expect(t_cons_t *c, size_t n)
{
    cr_assert(t_cons_wait(c, t_pred_n, n, 10000), "wanted %zu deliveries, have %zu", n, c->n);
}

/* Deliveries stay at exactly n for a while. */
static T_UNUSED void t_cons_settle(t_cons_t *c, size_t n)
{
    t_cons_expect(c, n);
    t_sleep_ms(50);
    pthread_mutex_lock(&c->mu);
    cr_assert_eq(c->n, n, "deliveries %zu, wanted %zu", c->n, n);
    pthread_mutex_unlock(&c->mu);
}

/* Subscribes; returns the result error (the subscription id in c). */
static T_UNUSED wr_err_t t_subscribe(t_cons_t *c, const char *tenant, const char *q,
                                     const wr_sub_opts_t *o)
{
    cr_assert_eq(wr_subscribe(T.core, S(tenant), S(q), o, T.loop, t_on_deliver, t_on_sub_end,
                              t_on_sub, c),
                 WR_OK);
    cr_assert(t_cons_wait(c, t_pred_subscribed, 0, 10000), "no subscribe answer");
    return c->sub_err;
}

static T_UNUSED t_call_t *t_unsubscribe(const char *tenant, const char *q, uint64_t sub,
                                        bool requeue)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_unsubscribe(T.core, S(tenant), S(q), sub, requeue, T.loop, t_on_count, c),
                 WR_OK);
    return t_wait(c);
}

static T_UNUSED t_call_t *t_credit(const char *tenant, const char *q, uint64_t sub, uint32_t n)
{
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_sub_credit(T.core, S(tenant), S(q), sub, n, T.loop, t_on_count, c), WR_OK);
    return t_wait(c);
}

#endif
