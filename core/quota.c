/*
 * quota.c - per-tenant quotas: the tenant table, the quota values read from
 * the registry, the counters they limit and the publish-rate token bucket
 * (see quota.h for what is enforced where).
 *
 * Layout: the token bucket; the tenant table (a map under a rwlock, with a
 * one-entry thread-local cache in front); reading the values; the checks;
 * the public calls.
 *
 * Counting, and why it is split. Queues, connections and channels change
 * rarely: one atomic per tenant, taken with a compare-and-swap against the
 * limit, so two shards cannot both take the last place. Messages and bytes
 * change with every publish and removal, on every shard: each (tenant,
 * shard) pair has its own cache line, written only by that shard, and the
 * tenant-wide check adds them up. Nothing is counted differently when a
 * quota is set, so setting one later needs no recount.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_int.h"

/* ------------------------------------------------------------------------ */
/* Token bucket                                                             */

bool wr_tbucket_take(wr_tbucket_t *b, uint64_t rate, uint64_t burst, uint32_t n, int64_t now_us,
                     int64_t *wait_us)
{
    double cap = (double)(burst ? burst : rate), need;

    if (rate == 0)
        return true;
    if (cap < 1)
        cap = 1;
    if (b->last_us == 0) {
        b->tokens = cap;
    } else if (now_us > b->last_us) {
        b->tokens += (double)(now_us - b->last_us) * (double)rate / 1e6;
        if (b->tokens > cap)
            b->tokens = cap;
    }
    if (now_us > b->last_us)
        b->last_us = now_us;
    /* A batch bigger than the bucket needs a full bucket and leaves debt. */
    need = (double)n < cap ? (double)n : cap;
    if (b->tokens >= need) {
        b->tokens -= (double)n;
        return true;
    }
    if (wait_us)
        *wait_us = (int64_t)((need - b->tokens) * 1e6 / (double)rate) + 1;
    return false;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + 1; /* never 0 */
}

static void tb_lock(wr__tenant_t *t)
{
    while (atomic_flag_test_and_set_explicit(&t->tb_lock, memory_order_acquire))
        ;
}

static void tb_unlock(wr__tenant_t *t)
{
    atomic_flag_clear_explicit(&t->tb_lock, memory_order_release);
}

/* ------------------------------------------------------------------------ */
/* The tenant table                                                         */

static _Atomic uint64_t core_serials = 1;

void wr__tenants_init(wr_core_t *core)
{
    core->serial = atomic_fetch_add(&core_serials, 1);
    pthread_rwlock_init(&core->tenants.lk, NULL);
}

void wr__tenants_fini(wr_core_t *core)
{
    wr__map_t *m = &core->tenants.map;

    for (size_t i = 0; i < m->cap; i++) {
        wr__tenant_t *t = m->e[i].val;
        if (!t)
            continue;
        pthread_mutex_destroy(&t->refresh_mu);
        free(t->cnt);
        free(t);
    }
    wr__map_fini(m);
    pthread_rwlock_destroy(&core->tenants.lk);
}

static wr__tenant_t *tenant_new(wr_core_t *core, wr_slice_t name, uint64_t hash)
{
    size_t size = (sizeof(wr__tenant_t) + name.len + 1 + 63) & ~(size_t)63;
    wr__tenant_t *t;

    /* 64-aligned: the counter groups have cache lines of their own. */
    if (posix_memalign((void **)&t, 64, size) != 0)
        wr_panic(__FILE__, __LINE__, "out of memory");
    memset(t, 0, size);

    t->core = core;
    t->hash = hash;
    pthread_mutex_init(&t->refresh_mu, NULL);
    atomic_init(&t->last, -1);
    atomic_flag_clear(&t->tb_lock);
    if (posix_memalign((void **)&t->cnt, 64, core->nshards * sizeof(*t->cnt)) != 0)
        wr_panic(__FILE__, __LINE__, "out of memory");
    memset(t->cnt, 0, core->nshards * sizeof(*t->cnt));
    memcpy(t->name, name.ptr, name.len);
    t->nlen = name.len;
    return t;
}

static wr__tenant_t *tenant_lookup(wr_core_t *core, wr_slice_t name)
{
    static _Thread_local struct {
        uint64_t serial;
        wr__tenant_t *t;
    } last;
    uint64_t hash;
    wr__tenant_t *t;

    if (last.serial == core->serial && last.t->nlen == name.len &&
        memcmp(last.t->name, name.ptr, name.len) == 0)
        return last.t;
    hash = wr__hash_key(name.ptr, name.len);
    pthread_rwlock_rdlock(&core->tenants.lk);
    t = wr__map_get(&core->tenants.map, hash, name.ptr, name.len);
    pthread_rwlock_unlock(&core->tenants.lk);
    if (!t) {
        pthread_rwlock_wrlock(&core->tenants.lk);
        t = wr__map_get(&core->tenants.map, hash, name.ptr, name.len);
        if (!t) {
            t = tenant_new(core, name, hash);
            wr__map_put(&core->tenants.map, hash, t->name, t->nlen, t);
        }
        pthread_rwlock_unlock(&core->tenants.lk);
    }
    last.serial = core->serial;
    last.t = t;
    return t;
}

/* ------------------------------------------------------------------------ */
/* Quota values                                                             */

void wr__tenant_refresh(wr__tenant_t *t)
{
    wr_auth_t *a = atomic_load_explicit(&t->core->auth, memory_order_acquire);
    /* +1: a core without a registry has generation 1, "read" never is 0. */
    uint64_t g = (a ? wr_auth_generation(a) : 0) + 1;
    bool limited = false;

    if (atomic_load_explicit(&t->gen, memory_order_acquire) == g)
        return;
    pthread_mutex_lock(&t->refresh_mu);
    if (a)
        g = wr_auth_generation(a) + 1;
    if (atomic_load_explicit(&t->gen, memory_order_relaxed) != g) {
        for (int k = 0; k < WR_QUOTA_NKEYS; k++) {
            uint64_t v = 0;
            if (a && !wr_auth_quota_get(a, (wr_slice_t){t->name, t->nlen}, k, &v))
                v = 0;
            atomic_store_explicit(&t->lim[k], v, memory_order_relaxed);
            limited |= v != 0;
        }
        atomic_store_explicit(&t->limited, limited, memory_order_relaxed);
        atomic_store_explicit(&t->gen, g, memory_order_release);
    }
    pthread_mutex_unlock(&t->refresh_mu);
}

wr__tenant_t *wr__tenant_of(wr_core_t *core, wr_slice_t tenant)
{
    wr__tenant_t *t = tenant_lookup(core, tenant);
    wr__tenant_refresh(t);
    return t;
}

static uint64_t lim(const wr__tenant_t *t, wr_quota_key_t k)
{
    return atomic_load_explicit(&t->lim[k], memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */

wr_err_t wr__quota_refuse(wr__tenant_t *t, int key, wr_err_t err)
{
    atomic_store_explicit(&t->last, key, memory_order_relaxed);
    return err;
}

static void sum(const wr__tenant_t *t, int64_t *msgs, int64_t *bytes)
{
    *msgs = *bytes = 0;
    for (unsigned i = 0; i < t->core->nshards; i++) {
        *msgs += atomic_load_explicit(&t->cnt[i].msgs, memory_order_relaxed);
        *bytes += atomic_load_explicit(&t->cnt[i].bytes, memory_order_relaxed);
    }
}

wr_err_t wr__quota_publish(wr__tenant_t *t, const wr_msg_in_t *msgs, size_t n)
{
    uint64_t maxb = lim(t, WR_Q_MAX_MESSAGE_BYTES), total = 0;
    uint64_t maxm = lim(t, WR_Q_MAX_TENANT_MESSAGES), maxt = lim(t, WR_Q_MAX_TENANT_BYTES);
    uint64_t rate = lim(t, WR_Q_PUBLISH_RATE);
    bool ok;

    for (size_t i = 0; i < n; i++) {
        if (maxb && msgs[i].body->body_len > maxb)
            return wr__quota_refuse(t, WR_Q_MAX_MESSAGE_BYTES, WR_ETOOBIG);
        total += msgs[i].body->body_len;
    }
    if (maxm || maxt) {
        int64_t m, b;
        sum(t, &m, &b);
        if (maxm && (uint64_t)(m < 0 ? 0 : m) + n > maxm)
            return wr__quota_refuse(t, WR_Q_MAX_TENANT_MESSAGES, WR_ELIMIT);
        if (maxt && (uint64_t)(b < 0 ? 0 : b) + total > maxt)
            return wr__quota_refuse(t, WR_Q_MAX_TENANT_BYTES, WR_ELIMIT);
    }
    if (!rate)
        return WR_OK;
    tb_lock(t);
    ok = wr_tbucket_take(&t->tb, rate, lim(t, WR_Q_PUBLISH_BURST), (uint32_t)n, mono_us(), NULL);
    tb_unlock(t);
    return ok ? WR_OK : wr__quota_refuse(t, WR_Q_PUBLISH_RATE, WR_ERATE);
}

/* Takes one place of a counter under a limit (0: unlimited). */
static bool take(_Atomic int64_t *c, uint64_t max)
{
    int64_t cur = atomic_load_explicit(c, memory_order_relaxed);

    do {
        if (max && cur >= 0 && (uint64_t)cur >= max)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(c, &cur, cur + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

wr_err_t wr__quota_queue_take(wr__tenant_t *t)
{
    if (!take(&t->queues, lim(t, WR_Q_MAX_QUEUES)))
        return wr__quota_refuse(t, WR_Q_MAX_QUEUES, WR_ELIMIT);
    return WR_OK;
}

void wr__quota_queue_give(wr__tenant_t *t)
{
    atomic_fetch_sub_explicit(&t->queues, 1, memory_order_relaxed);
}

bool wr__quota_queue_fits(const wr__queue_t *q, size_t n, uint64_t bytes)
{
    wr__tenant_t *t = q->tn;
    uint64_t maxm, maxb;

    if (!atomic_load_explicit(&t->limited, memory_order_relaxed))
        return true;
    maxm = lim(t, WR_Q_MAX_QUEUE_MESSAGES);
    maxb = lim(t, WR_Q_MAX_QUEUE_BYTES);
    if (maxm && q->ix.live + n > maxm) {
        wr__quota_refuse(t, WR_Q_MAX_QUEUE_MESSAGES, WR_ELIMIT);
        return false;
    }
    if (maxb && q->bytes + bytes > maxb) {
        wr__quota_refuse(t, WR_Q_MAX_QUEUE_BYTES, WR_ELIMIT);
        return false;
    }
    return true;
}

wr_err_t wr__quota_exchange(wr_core_t *core, wr_slice_t tenant, size_t have)
{
    wr__tenant_t *t = wr__tenant_of(core, tenant);
    uint64_t max = lim(t, WR_Q_MAX_EXCHANGES);

    if (max && have >= max)
        return wr__quota_refuse(t, WR_Q_MAX_EXCHANGES, WR_ELIMIT);
    return WR_OK;
}

/* ------------------------------------------------------------------------ */
/* Public calls                                                             */

wr_tenant_t *wr_tenant_get(wr_core_t *core, wr_slice_t tenant)
{
    return wr__tenant_of(core, tenant);
}

wr_slice_t wr_tenant_name(const wr_tenant_t *t)
{
    return (wr_slice_t){t->name, t->nlen};
}

bool wr_tenant_limited(wr_tenant_t *t)
{
    wr__tenant_refresh(t);
    return atomic_load_explicit(&t->limited, memory_order_relaxed);
}

uint64_t wr_tenant_limit(wr_tenant_t *t, wr_quota_key_t key)
{
    wr__tenant_refresh(t);
    return lim(t, key);
}

wr_err_t wr_tenant_conn_open(wr_tenant_t *t)
{
    wr__tenant_refresh(t);
    if (!take(&t->conns, lim(t, WR_Q_MAX_CONNECTIONS)))
        return wr__quota_refuse(t, WR_Q_MAX_CONNECTIONS, WR_ELIMIT);
    return WR_OK;
}

void wr_tenant_conn_close(wr_tenant_t *t)
{
    atomic_fetch_sub_explicit(&t->conns, 1, memory_order_relaxed);
}

wr_err_t wr_tenant_chan_open(wr_tenant_t *t)
{
    wr__tenant_refresh(t);
    if (!take(&t->chans, lim(t, WR_Q_MAX_CHANNELS)))
        return wr__quota_refuse(t, WR_Q_MAX_CHANNELS, WR_ELIMIT);
    return WR_OK;
}

void wr_tenant_chan_close(wr_tenant_t *t)
{
    atomic_fetch_sub_explicit(&t->chans, 1, memory_order_relaxed);
}

int wr_tenant_last_refusal(const wr_tenant_t *t)
{
    return atomic_load_explicit(&t->last, memory_order_relaxed);
}

uint64_t wr_tenant_retry_ms(wr_tenant_t *t, uint32_t n)
{
    uint64_t rate = wr_tenant_limit(t, WR_Q_PUBLISH_RATE);
    wr_tbucket_t copy;
    int64_t wait = 0;

    if (!rate)
        return 0;
    tb_lock(t);
    copy = t->tb;
    tb_unlock(t);
    if (wr_tbucket_take(&copy, rate, lim(t, WR_Q_PUBLISH_BURST), n, mono_us(), &wait))
        return 0;
    return (uint64_t)(wait + 999) / 1000;
}

void wr_tenant_usage(wr_tenant_t *t, wr_tenant_usage_t *out)
{
    int64_t m, b, q = atomic_load(&t->queues), c = atomic_load(&t->conns),
                  ch = atomic_load(&t->chans), x = atomic_load(&t->exchs);

    sum(t, &m, &b);
    out->queues = q > 0 ? (uint64_t)q : 0;
    out->exchanges = x > 0 ? (uint64_t)x : 0;
    out->connections = c > 0 ? (uint64_t)c : 0;
    out->channels = ch > 0 ? (uint64_t)ch : 0;
    out->messages = m > 0 ? (uint64_t)m : 0;
    out->bytes = b > 0 ? (uint64_t)b : 0;
}

void wr_tenant_each(wr_core_t *core, void (*fn)(void *arg, wr_tenant_t *t), void *arg)
{
    wr__map_t *m = &core->tenants.map;

    pthread_rwlock_rdlock(&core->tenants.lk);
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i].val)
            fn(arg, m->e[i].val);
    pthread_rwlock_unlock(&core->tenants.lk);
}
