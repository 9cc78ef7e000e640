/*
 * test_concurrency.c - many threads at once: publishers then consumers on
 * the same queues; every message must be delivered exactly once.
 */
#include "helpers.h"

TestSuite(concurrency, .init = t_setup, .fini = t_teardown, .timeout = 60);

#define THREADS 4
#define PER_THREAD 2000
#define BATCH 20
#define QUEUES 3

static const char *qname(int i)
{
    static const char *names[QUEUES] = {"c0", "c1", "c2"};
    return names[i % QUEUES];
}

typedef struct counter {
    atomic_int pending;
    atomic_int errors;
} counter_t;

static void on_pub(void *arg, const wr_publish_res_t *res)
{
    counter_t *c = arg;
    if (res->err != WR_OK || res->n != BATCH)
        atomic_fetch_add(&c->errors, 1);
    atomic_fetch_sub(&c->pending, 1);
}

static void *publisher(void *arg)
{
    counter_t *c = arg;
    for (int i = 0; i < PER_THREAD / BATCH; i++) {
        wr_msg_in_t m[BATCH];
        for (int j = 0; j < BATCH; j++)
            m[j] = t_msg("payload", 0, -1, 0);
        atomic_fetch_add(&c->pending, 1);
        cr_assert_eq(wr_publish(T.core, S("t"), S(qname(i)), m, BATCH, WR_PUB_CREATE, T.loop,
                                on_pub, c),
                     WR_OK);
    }
    return NULL;
}

typedef struct seen {
    pthread_mutex_t mu;
    uint64_t *ids;
    size_t n, cap;
} seen_t;

static seen_t seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *consumer(void *arg)
{
    int idx = (int)(intptr_t)arg, empty = 0;
    while (empty < QUEUES * 2) {
        const char *q = qname(idx++);
        t_call_t *c = t_claim("t", q, 37, 30000, 0);
        if (c->n == 0) {
            empty++;
            t_call_free(c);
            continue;
        }
        empty = 0;
        pthread_mutex_lock(&seen.mu);
        for (size_t i = 0; i < c->n; i++) {
            if (seen.n == seen.cap) {
                seen.cap = seen.cap ? seen.cap * 2 : 1024;
                seen.ids = realloc(seen.ids, seen.cap * sizeof(uint64_t));
            }
            /* Ids are per queue: tag with the queue for uniqueness. */
            seen.ids[seen.n++] = c->msgs[i].id * QUEUES + (uint64_t)(q[1] - '0');
        }
        pthread_mutex_unlock(&seen.mu);
        t_call_t *d = t_delete("t", q, c->ids, c->n, c->claim_id, false);
        cr_assert_eq(d->err, WR_OK);
        cr_assert_eq(d->count, c->n);
        t_call_free(d);
        t_call_free(c);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(concurrency, publish_then_claim_exactly_once)
{
    pthread_t th[THREADS];
    counter_t ctr = {0};

    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, publisher, &ctr);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    while (atomic_load(&ctr.pending) > 0)
        t_sleep_ms(5);
    cr_assert_eq(atomic_load(&ctr.errors), 0);

    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, consumer, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    cr_assert_eq(seen.n, THREADS * PER_THREAD);
    qsort(seen.ids, seen.n, sizeof(uint64_t), cmp_u64);
    for (size_t i = 1; i < seen.n; i++)
        cr_assert_neq(seen.ids[i], seen.ids[i - 1], "message delivered twice");
    free(seen.ids);

    for (int i = 0; i < QUEUES; i++) {
        t_call_t *s = t_stat("t", qname(i));
        cr_assert_eq(s->stat.total, 0);
        cr_assert_eq(s->stat.acked, s->stat.published);
        t_call_free(s);
    }
}

/* Consumers long-polling while producers publish: nothing lost, nothing
 * twice, every waiter eventually served or timed out. */
static atomic_int lp_got;

static void *lp_consumer(void *arg)
{
    (void)arg;
    for (;;) {
        t_call_t *c = t_wait(t_claim_start("t", "lp", 10, 30000, 0, 300, true));
        int n = (int)c->n;
        t_call_free(c);
        if (n == 0)
            return NULL;
        atomic_fetch_add(&lp_got, n);
    }
}

Test(concurrency, long_poll_pop_under_load)
{
    pthread_t cons[THREADS], prod;
    counter_t ctr = {0};

    for (int i = 0; i < THREADS; i++)
        pthread_create(&cons[i], NULL, lp_consumer, NULL);
    t_sleep_ms(50);
    pthread_create(&prod, NULL, publisher, &ctr); /* goes to c0..c2 */
    pthread_join(prod, NULL);
    for (int i = 0; i < 50; i++) {
        wr_msg_in_t m[BATCH];
        for (int j = 0; j < BATCH; j++)
            m[j] = t_msg("x", 0, -1, 0);
        atomic_fetch_add(&ctr.pending, 1);
        cr_assert_eq(wr_publish(T.core, S("t"), S("lp"), m, BATCH, WR_PUB_CREATE, T.loop, on_pub,
                                &ctr),
                     WR_OK);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(cons[i], NULL);
    cr_assert_eq(atomic_load(&lp_got), 50 * BATCH);
}
