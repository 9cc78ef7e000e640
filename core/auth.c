/*
 * auth.c - the registry of tenants, users, grants, tokens and quotas (see
 * auth.h for what it promises).
 *
 * Layout: records in memory (sorted vectors); stored records (msgpack);
 * the store (synchronous write on the admin thread); the job queues and
 * their threads; reads; login; mutations; load and bootstrap; lifecycle.
 *
 * Memory: four sorted vectors of pointers (tenants, users, tokens by hash;
 * grants live in their user), read under a rwlock by any thread. Only the
 * admin thread (and the main thread before serving) changes them: it
 * prepares the new objects (compiled regexes, password hashes) and writes
 * the store without the lock, then swaps the pointers under the write
 * lock, so readers wait only for a pointer swap.
 *
 * Stored records: metadata keys "A" + kind, values msgpack arrays whose
 * first element is the record version (1):
 *   "AT" tenant            -> [1, created_ms, {quota key: value}]
 *   "AU" user              -> [1, pwhash string | nil, flags]
 *   "AG" user \0 tenant    -> [1, configure, write, read]
 *   "AK" blake2b(token)    -> [1, user, created_ms]
 *   "AV"                   -> [1]   (bootstrap done: never bootstrap again)
 * The core's own keys start with lower-case letters ("q", "x", "b").
 *
 * Cost: Argon2id with opslimit 2 (crypto_pwhash_OPSLIMIT_INTERACTIVE) and
 * 16 MiB instead of INTERACTIVE's 64 MiB: ~30 ms per verification on the
 * project's 2-core machine (64 MiB took ~160 ms there, which would let 10
 * logins a second saturate the verifier). Each hash keeps its own
 * parameters, so raising them later keeps old hashes valid.
 */
#include "auth.h"

#include <msgpack.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../backends/backend.h"
#include "core_int.h"
#include "log.h"

#define OPSLIMIT 2ULL          /* crypto_pwhash_OPSLIMIT_INTERACTIVE */
#define MEMLIMIT (16u << 20)   /* see the head of the file */
#define REC_V1 1u
#define HASH_BYTES 32          /* token hashes and cache digests */

const char *const wr_quota_keys[WR_QUOTA_NKEYS] = {
    "max-queues",         "max-exchanges",       "max-connections",  "max-channels",
    "max-queue-messages", "max-queue-bytes",     "max-tenant-messages", "max-tenant-bytes",
    "max-message-bytes",  "publish-rate",        "publish-burst",
};

/* ------------------------------------------------------------------------ */
/* Records in memory                                                        */

/* The first member of every record kept in a vector: its key bytes. */
typedef struct rec {
    char *key; /* NUL-terminated for names; 32 hash bytes for tokens */
    size_t klen;
} rec_t;

typedef struct vec {
    rec_t **v;
    size_t n, cap;
} vec_t;

typedef struct grant {
    char *tenant;
    size_t tlen;
    char *src[3];
    regex_t re[3];
} grant_t;

typedef struct user {
    rec_t r; /* name */
    char *pwhash; /* NULL: no password (tokens only) */
    unsigned flags;
    grant_t *g;
    size_t ng;
    /* Login cache (HTTP Basic, AMQP PLAIN/AMQPLAIN): keyed BLAKE2b of the
     * last verified password. */
    uint8_t cache[HASH_BYTES];
    int64_t cache_until; /* monotonic ms; 0 = empty */
} user_t;

typedef struct tenant {
    rec_t r; /* name */
    int64_t created_ms;
    uint64_t q[WR_QUOTA_NKEYS];
    uint32_t qset; /* bit i: q[i] is set */
} tenant_t;

typedef struct token {
    rec_t r; /* the 32-byte hash */
    char *user;
    int64_t created_ms;
} token_t;

static int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al < bl ? -1 : al > bl);
}

/* Index of key in v, or of where it would go (*found false). */
static size_t vec_find(const vec_t *v, const void *k, size_t kl, bool *found)
{
    size_t lo = 0, hi = v->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = key_cmp(v->v[mid]->key, v->v[mid]->klen, k, kl);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void *vec_get(const vec_t *v, const void *k, size_t kl)
{
    bool found;
    size_t i = vec_find(v, k, kl, &found);
    return found ? v->v[i] : NULL;
}

/* Puts r in place of an equal key (returning the old record) or inserts. */
static rec_t *vec_put(vec_t *v, rec_t *r)
{
    bool found;
    size_t i = vec_find(v, r->key, r->klen, &found);
    rec_t *old;

    if (found) {
        old = v->v[i];
        v->v[i] = r;
        return old;
    }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        rec_t **nv = realloc(v->v, cap * sizeof(*nv));
        if (!nv)
            wr_panic(__FILE__, __LINE__, "out of memory");
        v->v = nv;
        v->cap = cap;
    }
    memmove(&v->v[i + 1], &v->v[i], (v->n - i) * sizeof(*v->v));
    v->v[i] = r;
    v->n++;
    return NULL;
}

static rec_t *vec_del(vec_t *v, const void *k, size_t kl)
{
    bool found;
    size_t i = vec_find(v, k, kl, &found);
    rec_t *old;

    if (!found)
        return NULL;
    old = v->v[i];
    memmove(&v->v[i], &v->v[i + 1], (v->n - i - 1) * sizeof(*v->v));
    v->n--;
    return old;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        wr_panic(__FILE__, __LINE__, "out of memory");
    return p;
}

static char *xstrndup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        wr_panic(__FILE__, __LINE__, "out of memory");
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void grant_fini(grant_t *g)
{
    free(g->tenant);
    for (int i = 0; i < 3; i++) {
        if (g->src[i])
            regfree(&g->re[i]);
        free(g->src[i]);
    }
}

/* Compiles the three regexes into g (RabbitMQ: "" means "^$"). False with
 * a reason in why if one does not compile. */
static bool grant_compile(grant_t *g, const wr_slice_t re[3], char *why, size_t wlen)
{
    static const char *const what[3] = {"configure", "write", "read"};

    for (int i = 0; i < 3; i++) {
        char *src = xstrndup(re[i].ptr, re[i].len);
        int rc = regcomp(&g->re[i], re[i].len ? src : "^$", REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char err[96];
            regerror(rc, &g->re[i], err, sizeof(err));
            snprintf(why, wlen, "%s regex '%.64s': %s", what[i], src, err);
            free(src);
            for (int j = 0; j < i; j++) {
                regfree(&g->re[j]);
                free(g->src[j]);
                g->src[j] = NULL;
            }
            return false;
        }
        g->src[i] = src;
    }
    return true;
}

static void user_free(user_t *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->ng; i++)
        grant_fini(&u->g[i]);
    free(u->g);
    if (u->pwhash) {
        sodium_memzero(u->pwhash, strlen(u->pwhash));
        free(u->pwhash);
    }
    free(u->r.key);
    free(u);
}

static void tenant_free(tenant_t *t)
{
    if (!t)
        return;
    free(t->r.key);
    free(t);
}

static void token_free(token_t *t)
{
    if (!t)
        return;
    free(t->user);
    free(t->r.key);
    free(t);
}

static grant_t *user_grant(const user_t *u, const void *tenant, size_t tlen)
{
    for (size_t i = 0; i < u->ng; i++)
        if (key_cmp(u->g[i].tenant, u->g[i].tlen, tenant, tlen) == 0)
            return &u->g[i];
    return NULL;
}

/* A deep copy of u (the admin thread edits copies, then swaps). The copy's
 * Basic cache is empty: any change to a user ends its cached logins. */
static user_t *user_copy(const user_t *u)
{
    user_t *c = xcalloc(1, sizeof(*c));
    char why[8];

    c->r.key = xstrndup(u->r.key, u->r.klen);
    c->r.klen = u->r.klen;
    c->pwhash = u->pwhash ? xstrndup(u->pwhash, strlen(u->pwhash)) : NULL;
    c->flags = u->flags;
    c->g = xcalloc(u->ng + 1, sizeof(*c->g));
    for (size_t i = 0; i < u->ng; i++) {
        wr_slice_t re[3];
        for (int k = 0; k < 3; k++)
            re[k] = (wr_slice_t){u->g[i].src[k], strlen(u->g[i].src[k])};
        c->g[i].tenant = xstrndup(u->g[i].tenant, u->g[i].tlen);
        c->g[i].tlen = u->g[i].tlen;
        WR_ASSERT(grant_compile(&c->g[i], re, why, sizeof(why)));
        c->ng++;
    }
    return c;
}

/* ------------------------------------------------------------------------ */
/* Stored records                                                           */

typedef struct kbuf {
    char p[2 + WR_AUTH_NAME_MAX + 1 + WR_NAME_MAX + 1];
    size_t n;
} kbuf_t;

static void key_make(kbuf_t *k, char kind, const void *a, size_t al, const void *b, size_t bl)
{
    k->p[0] = 'A';
    k->p[1] = kind;
    memcpy(k->p + 2, a, al);
    k->n = 2 + al;
    if (b) {
        k->p[k->n++] = '\0';
        memcpy(k->p + k->n, b, bl);
        k->n += bl;
    }
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void enc_tenant(msgpack_sbuffer *sb, const tenant_t *t)
{
    msgpack_packer pk;
    unsigned n = 0;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, REC_V1);
    msgpack_pack_int64(&pk, t->created_ms);
    for (int i = 0; i < WR_QUOTA_NKEYS; i++)
        n += (t->qset >> i) & 1u;
    msgpack_pack_map(&pk, n);
    for (int i = 0; i < WR_QUOTA_NKEYS; i++) {
        if (!((t->qset >> i) & 1u))
            continue;
        pack_str(&pk, wr_quota_keys[i], strlen(wr_quota_keys[i]));
        msgpack_pack_uint64(&pk, t->q[i]);
    }
}

static void enc_user(msgpack_sbuffer *sb, const user_t *u)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, REC_V1);
    if (u->pwhash)
        pack_str(&pk, u->pwhash, strlen(u->pwhash));
    else
        msgpack_pack_nil(&pk);
    msgpack_pack_uint32(&pk, u->flags);
}

static void enc_grant(msgpack_sbuffer *sb, const grant_t *g)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, REC_V1);
    for (int i = 0; i < 3; i++)
        pack_str(&pk, g->src[i], strlen(g->src[i]));
}

static void enc_token(msgpack_sbuffer *sb, const token_t *t)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, REC_V1);
    pack_str(&pk, t->user, strlen(t->user));
    msgpack_pack_int64(&pk, t->created_ms);
}

/* Decodes a stored value: a version-1 array of at least `min` elements.
 * The caller destroys *u. */
static const msgpack_object *dec_array(msgpack_unpacked *u, wr_bytes_t val, uint32_t min)
{
    size_t off = 0;
    const msgpack_object *o;

    msgpack_unpacked_init(u);
    if (msgpack_unpack_next(u, val.ptr, val.len, &off) != MSGPACK_UNPACK_SUCCESS)
        return NULL;
    o = &u->data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < min ||
        o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        o->via.array.ptr[0].via.u64 != REC_V1)
        return NULL;
    return o->via.array.ptr;
}

static bool obj_str(const msgpack_object *o, const char **p, size_t *n)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return false;
    *p = o->via.str.ptr;
    *n = o->via.str.size;
    return true;
}

static bool obj_int(const msgpack_object *o, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
        *v = (int64_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *v = o->via.i64;
    else
        return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* The registry                                                             */

typedef struct job job_t;
typedef void (*job_fn)(wr_auth_t *a, job_t *j);

struct job {
    job_t *next;
    job_fn run;
    wr_loop_t *reply;
    wr_auth_cb cb;
    void *arg;
    wr_auth_res_t res;
    char why[192];
    char token[WR_AUTH_TOKEN_HEX + 1];
    bool loopback;
    unsigned flags;
    int key;
    uint64_t value;
    wr_slice_t s[5]; /* copies of the inputs, NUL-terminated */
};

typedef struct jobq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *head, *tail;
    size_t n;
    bool stop, started;
    pthread_t thr;
    wr_auth_t *a;
    const char *name;
} jobq_t;

struct wr_auth {
    pthread_rwlock_t lk;
    /* Bumped by every change (wrlock); read by every publish (quota.c), so
     * it has a line of its own, away from the lock readers write. */
    char pad0[64];
    _Atomic uint64_t gen;
    char pad1[64];
    wr_store_t *store;
    vec_t tenants, users, tokens;
    unsigned long long opslimit;
    size_t memlimit;
    char dummy[crypto_pwhash_STRBYTES]; /* unknown users are checked against it */
    uint8_t cache_key[crypto_generichash_KEYBYTES];
    jobq_t verify, admin;
    _Atomic uint64_t verifications, cache_hits; /* wr_auth_counters */
};

/* Every change happens under this: readers that cache a decision compare
 * wr_auth_generation before and after. */
static void wrlock(wr_auth_t *a)
{
    pthread_rwlock_wrlock(&a->lk);
    atomic_fetch_add(&a->gen, 1);
}

uint64_t wr_auth_generation(wr_auth_t *a)
{
    return atomic_load(&a->gen);
}

static int64_t mono_ms(void)
{
    return wr_now_mono_ms();
}

/* ------------------------------------------------------------------------ */
/* The store                                                                */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    wr_err_t err;
} waiter_t;

/* May run on any thread. */
static void on_stored(void *arg, wr_err_t err)
{
    waiter_t *w = arg;

    pthread_mutex_lock(&w->mu);
    w->err = err;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Writes ops and waits until they are synced. Never on an event loop. */
static wr_err_t store_sync(wr_auth_t *a, const wr_store_op_t *ops, size_t n)
{
    waiter_t w = {.done = false};
    wr_err_t err;

    if (!a->store || n == 0)
        return WR_OK;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    err = wr_store_write_batch(a->store, ops, n, WR_DUR_SYNC, on_stored, &w);
    if (err == WR_OK) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        err = w.err;
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    if (err != WR_OK)
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "auth registry write failed: %s", wr_strerror(err));
    return err == WR_OK ? WR_OK : WR_EIO;
}

/* A batch being built: keys and values owned until it is written. */
typedef struct batch {
    wr_store_op_t ops[64];
    kbuf_t keys[64];
    msgpack_sbuffer vals[64];
    size_t n;
    bool overflow;
} batch_t;

static msgpack_sbuffer *batch_put(batch_t *b, const kbuf_t *k)
{
    if (b->n == 64) {
        b->overflow = true;
        return NULL;
    }
    b->keys[b->n] = *k;
    msgpack_sbuffer_init(&b->vals[b->n]);
    b->ops[b->n].kind = WR_STORE_PUT_META;
    return &b->vals[b->n++];
}

static void batch_del(batch_t *b, const kbuf_t *k)
{
    if (b->n == 64) {
        b->overflow = true;
        return;
    }
    b->keys[b->n] = *k;
    msgpack_sbuffer_init(&b->vals[b->n]);
    b->ops[b->n].kind = WR_STORE_DEL_META;
    b->n++;
}

static batch_t *batch_new(void)
{
    return xcalloc(1, sizeof(batch_t));
}

/* Writes the batch in chunks of what fits, then frees its values. */
static wr_err_t batch_write(wr_auth_t *a, batch_t *b)
{
    wr_err_t err;

    for (size_t i = 0; i < b->n; i++) {
        b->ops[i].key = (wr_bytes_t){b->keys[i].p, b->keys[i].n};
        b->ops[i].val = (wr_bytes_t){b->vals[i].data, b->vals[i].size};
    }
    err = b->overflow ? WR_EIO : store_sync(a, b->ops, b->n);
    for (size_t i = 0; i < b->n; i++)
        msgpack_sbuffer_destroy(&b->vals[i]);
    b->n = 0;
    return err;
}

/* batch_write, then frees the batch. */
static wr_err_t batch_done(wr_auth_t *a, batch_t *b)
{
    wr_err_t err = batch_write(a, b);

    free(b);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Jobs                                                                     */

static void job_free(job_t *j)
{
    for (int i = 0; i < 5; i++) {
        if (j->s[i].ptr) {
            sodium_memzero((void *)j->s[i].ptr, j->s[i].len);
            free((void *)j->s[i].ptr);
        }
    }
    sodium_memzero(j->token, sizeof(j->token));
    free(j);
}

static void job_deliver(void *arg)
{
    job_t *j = arg;

    if (j->why[0] && !j->res.why)
        j->res.why = j->why;
    j->cb(j->arg, &j->res);
    job_free(j);
}

static job_t *job_new(job_fn run, wr_loop_t *reply, wr_auth_cb cb, void *arg)
{
    job_t *j = xcalloc(1, sizeof(*j));

    j->run = run;
    j->reply = reply;
    j->cb = cb;
    j->arg = arg;
    return j;
}

static void job_str(job_t *j, int i, wr_slice_t s)
{
    j->s[i] = (wr_slice_t){xstrndup(s.ptr, s.len), s.len};
}

static void *worker(void *arg)
{
    jobq_t *q = arg;

    pthread_setname_np(pthread_self(), q->name);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        job_t *j;

        while (!q->head && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        j = q->head;
        if (!j)
            break; /* stopping and drained */
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
        pthread_mutex_unlock(&q->mu);
        if (q->stop)
            j->res.err = WR_ESHUTDOWN;
        else
            j->run(q->a, j);
        wr_loop_post(j->reply, job_deliver, j);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static wr_err_t jobq_start(jobq_t *q, wr_auth_t *a, const char *name)
{
    q->a = a;
    q->name = name;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (pthread_create(&q->thr, NULL, worker, q) != 0)
        return WR_ENOMEM;
    q->started = true;
    return WR_OK;
}

static void jobq_stop(jobq_t *q)
{
    if (!q->started)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thr, NULL);
    q->started = false;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

/* Queues j (taking it); WR_EBUSY if more than max wait, WR_ESHUTDOWN if
 * stopping (j is freed then). */
static wr_err_t jobq_push(jobq_t *q, job_t *j, size_t max)
{
    wr_err_t err = WR_OK;

    pthread_mutex_lock(&q->mu);
    if (q->stop || !q->started)
        err = WR_ESHUTDOWN;
    else if (max && q->n >= max)
        err = WR_EBUSY;
    if (err == WR_OK) {
        if (q->tail)
            q->tail->next = j;
        else
            q->head = j;
        q->tail = j;
        q->n++;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (err != WR_OK)
        job_free(j);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Reads                                                                    */

int wr_auth_quota_key(const char *key, size_t len)
{
    for (int i = 0; i < WR_QUOTA_NKEYS; i++)
        if (strlen(wr_quota_keys[i]) == len && memcmp(wr_quota_keys[i], key, len) == 0)
            return i;
    return -1;
}

bool wr_auth_name_ok(wr_slice_t name, size_t max)
{
    const char *p = name.ptr;

    if (name.len == 0 || name.len > max)
        return false;
    for (size_t i = 0; i < name.len; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '~' || c == '@'))
            return false;
    }
    return true;
}

bool wr_auth_tenant_exists(wr_auth_t *a, wr_slice_t tenant)
{
    bool r;

    pthread_rwlock_rdlock(&a->lk);
    r = vec_get(&a->tenants, tenant.ptr, tenant.len) != NULL;
    pthread_rwlock_unlock(&a->lk);
    return r;
}

static bool hex_decode(const char *s, size_t n, uint8_t *out, size_t outlen)
{
    if (n != outlen * 2)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int v = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (v < 0)
            return false;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return true;
}

/* BLAKE2b-256 of a token given as hex; false if it is not 64 hex digits. */
static bool token_hash(const char *hex, size_t n, uint8_t h[HASH_BYTES])
{
    uint8_t raw[WR_AUTH_TOKEN_BYTES];

    if (!hex_decode(hex, n, raw, sizeof(raw)))
        return false;
    crypto_generichash(h, HASH_BYTES, raw, sizeof(raw), NULL, 0);
    sodium_memzero(raw, sizeof(raw));
    return true;
}

wr_err_t wr_auth_token_user(wr_auth_t *a, const char *token, size_t len, char *user,
                            size_t user_cap, unsigned *flags)
{
    uint8_t h[HASH_BYTES];
    const token_t *t;
    const user_t *u = NULL;

    if (!token_hash(token, len, h))
        return WR_ENOTFOUND;
    pthread_rwlock_rdlock(&a->lk);
    t = vec_get(&a->tokens, h, sizeof(h));
    if (t)
        u = vec_get(&a->users, t->user, strlen(t->user));
    if (u && u->r.klen < user_cap) {
        memcpy(user, u->r.key, u->r.klen + 1);
        *flags = u->flags;
    } else {
        u = NULL;
    }
    pthread_rwlock_unlock(&a->lk);
    return u ? WR_OK : WR_ENOTFOUND;
}

wr_err_t wr_auth_user_flags(wr_auth_t *a, wr_slice_t user, unsigned *flags)
{
    const user_t *u;

    pthread_rwlock_rdlock(&a->lk);
    u = vec_get(&a->users, user.ptr, user.len);
    if (u)
        *flags = u->flags;
    pthread_rwlock_unlock(&a->lk);
    return u ? WR_OK : WR_ENOTFOUND;
}

wr_err_t wr_auth_tenant_access(wr_auth_t *a, wr_slice_t user, wr_slice_t tenant)
{
    const user_t *u;
    wr_err_t err;

    pthread_rwlock_rdlock(&a->lk);
    u = vec_get(&a->users, user.ptr, user.len);
    if (!vec_get(&a->tenants, tenant.ptr, tenant.len) || !u)
        err = WR_ENOTFOUND;
    else if ((u->flags & WR_USER_ADMIN) || user_grant(u, tenant.ptr, tenant.len))
        err = WR_OK;
    else
        err = WR_EDENIED;
    pthread_rwlock_unlock(&a->lk);
    return err;
}

/* perm < 0: any of the three. */
static bool check(wr_auth_t *a, wr_slice_t user, wr_slice_t tenant, int perm, wr_slice_t name)
{
    char buf[WR_NAME_MAX + 1];
    const user_t *u;
    const grant_t *g;
    bool ok = false;

    if (name.len > WR_NAME_MAX)
        return false;
    memcpy(buf, name.ptr, name.len);
    buf[name.len] = '\0';
    pthread_rwlock_rdlock(&a->lk);
    u = vec_get(&a->users, user.ptr, user.len);
    if (u && (u->flags & WR_USER_ADMIN)) {
        ok = true;
    } else if (u && (g = user_grant(u, tenant.ptr, tenant.len)) != NULL) {
        for (int i = 0; i < 3 && !ok; i++)
            if (perm < 0 || perm == i)
                ok = regexec(&g->re[i], buf, 0, NULL, 0) == 0;
    }
    pthread_rwlock_unlock(&a->lk);
    return ok;
}

bool wr_auth_allowed(wr_auth_t *a, wr_slice_t user, wr_slice_t tenant, wr_perm_t perm,
                     wr_slice_t name)
{
    return check(a, user, tenant, (int)perm, name);
}

bool wr_auth_visible(wr_auth_t *a, wr_slice_t user, wr_slice_t tenant, wr_slice_t name)
{
    return check(a, user, tenant, -1, name);
}

static void cache_digest(const wr_auth_t *a, wr_slice_t pass, uint8_t out[HASH_BYTES])
{
    crypto_generichash(out, HASH_BYTES, pass.ptr, pass.len, a->cache_key, sizeof(a->cache_key));
}

bool wr_auth_basic_cached(wr_auth_t *a, wr_slice_t user, wr_slice_t pass, unsigned *flags)
{
    uint8_t d[HASH_BYTES];
    const user_t *u;
    bool ok = false;

    cache_digest(a, pass, d);
    pthread_rwlock_rdlock(&a->lk);
    u = vec_get(&a->users, user.ptr, user.len);
    if (u && u->cache_until > mono_ms() && sodium_memcmp(u->cache, d, sizeof(d)) == 0) {
        ok = true;
        *flags = u->flags;
    }
    pthread_rwlock_unlock(&a->lk);
    sodium_memzero(d, sizeof(d));
    if (ok)
        atomic_fetch_add_explicit(&a->cache_hits, 1, memory_order_relaxed);
    return ok;
}

void wr_auth_counters(wr_auth_t *a, uint64_t *verifications, uint64_t *cache_hits)
{
    *verifications = atomic_load_explicit(&a->verifications, memory_order_relaxed);
    *cache_hits = atomic_load_explicit(&a->cache_hits, memory_order_relaxed);
}

bool wr_auth_quota_get(wr_auth_t *a, wr_slice_t tenant, int key, uint64_t *value)
{
    const tenant_t *t;
    bool ok = false;

    if (key < 0 || key >= WR_QUOTA_NKEYS)
        return false;
    pthread_rwlock_rdlock(&a->lk);
    t = vec_get(&a->tenants, tenant.ptr, tenant.len);
    if (t && ((t->qset >> key) & 1u)) {
        *value = t->q[key];
        ok = true;
    }
    pthread_rwlock_unlock(&a->lk);
    return ok;
}

void wr_auth_tenant_list(wr_auth_t *a, void (*fn)(void *arg, const char *name), void *arg)
{
    pthread_rwlock_rdlock(&a->lk);
    for (size_t i = 0; i < a->tenants.n; i++)
        fn(arg, a->tenants.v[i]->key);
    pthread_rwlock_unlock(&a->lk);
}

static void grant_info(const user_t *u, const grant_t *g, wr_auth_grant_info_t *gi)
{
    gi->user = u->r.key;
    gi->tenant = g->tenant;
    for (int k = 0; k < 3; k++)
        gi->re[k] = g->src[k];
}

void wr_auth_user_list(wr_auth_t *a, void (*fn)(void *arg, const wr_auth_user_info_t *u),
                       void *arg)
{
    pthread_rwlock_rdlock(&a->lk);
    for (size_t i = 0; i < a->users.n; i++) {
        const user_t *u = (const user_t *)a->users.v[i];
        wr_auth_grant_info_t gi[64];
        wr_auth_user_info_t ui = {u->r.key, u->flags, u->pwhash != NULL, 0, gi};

        for (size_t k = 0; k < u->ng && k < 64; k++)
            grant_info(u, &u->g[k], &gi[ui.ngrants++]);
        fn(arg, &ui);
    }
    pthread_rwlock_unlock(&a->lk);
}

bool wr_auth_tenant_grants(wr_auth_t *a, wr_slice_t tenant,
                           void (*fn)(void *arg, const wr_auth_grant_info_t *g), void *arg)
{
    bool found;

    pthread_rwlock_rdlock(&a->lk);
    found = vec_get(&a->tenants, tenant.ptr, tenant.len) != NULL;
    for (size_t i = 0; found && i < a->users.n; i++) {
        const user_t *u = (const user_t *)a->users.v[i];
        const grant_t *g = user_grant(u, tenant.ptr, tenant.len);
        wr_auth_grant_info_t gi;

        if (g) {
            grant_info(u, g, &gi);
            fn(arg, &gi);
        }
    }
    pthread_rwlock_unlock(&a->lk);
    return found;
}

bool wr_auth_quota_list(wr_auth_t *a, wr_slice_t tenant,
                        void (*fn)(void *arg, const char *key, uint64_t value), void *arg)
{
    const tenant_t *t;

    pthread_rwlock_rdlock(&a->lk);
    t = vec_get(&a->tenants, tenant.ptr, tenant.len);
    for (int i = 0; t && i < WR_QUOTA_NKEYS; i++)
        if ((t->qset >> i) & 1u)
            fn(arg, wr_quota_keys[i], t->q[i]);
    pthread_rwlock_unlock(&a->lk);
    return t != NULL;
}

/* ------------------------------------------------------------------------ */
/* Login                                                                    */

static void run_login(wr_auth_t *a, job_t *j)
{
    char hash[crypto_pwhash_STRBYTES];
    const user_t *u;
    bool known, loopback_only = false, ok;
    unsigned flags = 0;

    /* Copy the hash out: the lock is not held for the slow part. Unknown
     * users and users without a password verify against the dummy, so
     * every refusal costs the same. */
    pthread_rwlock_rdlock(&a->lk);
    u = vec_get(&a->users, j->s[0].ptr, j->s[0].len);
    known = u && u->pwhash;
    snprintf(hash, sizeof(hash), "%s", known ? u->pwhash : a->dummy);
    if (u) {
        flags = u->flags;
        loopback_only = (u->flags & WR_USER_LOOPBACK) != 0;
    }
    pthread_rwlock_unlock(&a->lk);

    ok = crypto_pwhash_str_verify(hash, j->s[1].ptr, j->s[1].len) == 0 && known;
    atomic_fetch_add_explicit(&a->verifications, 1, memory_order_relaxed);
    if (!ok || (loopback_only && !j->loopback)) {
        sodium_memzero(hash, sizeof(hash));
        j->res.err = WR_EDENIED;
        if (!ok)
            j->res.why = "invalid credentials";
        else
            snprintf(j->why, sizeof(j->why),
                     "user '%.64s' can only connect from a loopback address",
                     (const char *)j->s[0].ptr);
        return;
    }
    /* Remember the success for later logins (wr_auth_basic_cached), unless
     * the user changed during the slow part: deleted, or deleted and added
     * again with another password and the same flags, whose cache must not
     * learn the old password. A new password has a new salt: compare the
     * stored hash with the one just verified. */
    wrlock(a);
    u = vec_get(&a->users, j->s[0].ptr, j->s[0].len);
    if (u && u->flags == flags && u->pwhash && strcmp(u->pwhash, hash) == 0) {
        user_t *w = (user_t *)u;
        cache_digest(a, j->s[1], w->cache);
        w->cache_until = mono_ms() + WR_AUTH_CACHE_MS;
    }
    pthread_rwlock_unlock(&a->lk);
    sodium_memzero(hash, sizeof(hash));
    j->res.err = WR_OK;
    j->res.flags = flags;
}

wr_err_t wr_auth_login(wr_auth_t *a, wr_slice_t user, wr_slice_t pass, bool loopback,
                       wr_loop_t *reply, wr_auth_cb cb, void *arg)
{
    job_t *j;

    if (!reply || !cb || user.len > WR_AUTH_NAME_MAX || pass.len > WR_AUTH_PASS_MAX)
        return WR_EINVAL;
    j = job_new(run_login, reply, cb, arg);
    job_str(j, 0, user);
    job_str(j, 1, pass);
    j->loopback = loopback;
    return jobq_push(&a->verify, j, WR_AUTH_QUEUE_MAX);
}

/* ------------------------------------------------------------------------ */
/* Mutations (admin thread)                                                 */

static void put_tenant(batch_t *b, const tenant_t *t)
{
    kbuf_t k;
    msgpack_sbuffer *sb;

    key_make(&k, 'T', t->r.key, t->r.klen, NULL, 0);
    if ((sb = batch_put(b, &k)))
        enc_tenant(sb, t);
}

static void put_user(batch_t *b, const user_t *u)
{
    kbuf_t k;
    msgpack_sbuffer *sb;

    key_make(&k, 'U', u->r.key, u->r.klen, NULL, 0);
    if ((sb = batch_put(b, &k)))
        enc_user(sb, u);
}

static void put_grant(batch_t *b, const user_t *u, const grant_t *g)
{
    kbuf_t k;
    msgpack_sbuffer *sb;

    key_make(&k, 'G', u->r.key, u->r.klen, g->tenant, g->tlen);
    if ((sb = batch_put(b, &k)))
        enc_grant(sb, g);
}

static void del_grant(batch_t *b, const user_t *u, const grant_t *g)
{
    kbuf_t k;

    key_make(&k, 'G', u->r.key, u->r.klen, g->tenant, g->tlen);
    batch_del(b, &k);
}

static void put_token(batch_t *b, const token_t *t)
{
    kbuf_t k;
    msgpack_sbuffer *sb;

    key_make(&k, 'K', t->r.key, t->r.klen, NULL, 0);
    if ((sb = batch_put(b, &k)))
        enc_token(sb, t);
}

/* Swaps a changed user in under the write lock; frees the old one. */
static void swap_user(wr_auth_t *a, user_t *nu)
{
    rec_t *old;

    wrlock(a);
    old = vec_put(&a->users, &nu->r);
    pthread_rwlock_unlock(&a->lk);
    user_free((user_t *)old);
}

static void run_tenant_add(wr_auth_t *a, job_t *j)
{
    tenant_t *t;
    batch_t *b;

    if (vec_get(&a->tenants, j->s[0].ptr, j->s[0].len)) {
        j->res.err = WR_EEXISTS;
        return;
    }
    t = xcalloc(1, sizeof(*t));
    t->r.key = xstrndup(j->s[0].ptr, j->s[0].len);
    t->r.klen = j->s[0].len;
    t->created_ms = wr_now_wall_ms();
    b = batch_new();
    put_tenant(b, t);
    j->res.err = batch_done(a, b);
    if (j->res.err != WR_OK) {
        tenant_free(t);
        return;
    }
    wrlock(a);
    vec_put(&a->tenants, &t->r);
    pthread_rwlock_unlock(&a->lk);
}

/* A copy of u without its grant on tenant (NULL if it had none). */
static user_t *user_without_grant(const user_t *u, const void *tenant, size_t tlen)
{
    user_t *c;
    const grant_t *g = user_grant(u, tenant, tlen);
    size_t gi;

    if (!g)
        return NULL;
    c = user_copy(u);
    gi = (size_t)(g - u->g);
    grant_fini(&c->g[gi]);
    memmove(&c->g[gi], &c->g[gi + 1], (c->ng - gi - 1) * sizeof(*c->g));
    c->ng--;
    return c;
}

static void run_tenant_del(wr_auth_t *a, job_t *j)
{
    batch_t *b;
    kbuf_t k;
    rec_t *old;

    if (!vec_get(&a->tenants, j->s[0].ptr, j->s[0].len)) {
        j->res.err = WR_ENOTFOUND;
        return;
    }
    b = batch_new();
    for (size_t i = 0; i < a->users.n; i++) {
        const user_t *u = (const user_t *)a->users.v[i];
        const grant_t *g = user_grant(u, j->s[0].ptr, j->s[0].len);
        if (g)
            del_grant(b, u, g);
    }
    key_make(&k, 'T', j->s[0].ptr, j->s[0].len, NULL, 0);
    batch_del(b, &k);
    j->res.err = batch_done(a, b);
    if (j->res.err != WR_OK)
        return;
    for (size_t i = 0; i < a->users.n; i++) {
        user_t *nu = user_without_grant((const user_t *)a->users.v[i], j->s[0].ptr, j->s[0].len);
        if (nu)
            swap_user(a, nu);
    }
    wrlock(a);
    old = vec_del(&a->tenants, j->s[0].ptr, j->s[0].len);
    pthread_rwlock_unlock(&a->lk);
    tenant_free((tenant_t *)old);
}

/* Hashes a password with the registry's cost; NULL on failure (memory). */
static char *pw_hash(const wr_auth_t *a, wr_slice_t pass)
{
    char h[crypto_pwhash_STRBYTES];

    if (crypto_pwhash_str(h, pass.ptr, pass.len, a->opslimit, a->memlimit) != 0)
        return NULL;
    return xstrndup(h, strlen(h));
}

static void run_user_put(wr_auth_t *a, job_t *j)
{
    const user_t *old = vec_get(&a->users, j->s[0].ptr, j->s[0].len);
    user_t *u;
    batch_t *b;

    if (old) {
        u = user_copy(old);
        if (u->pwhash)
            sodium_memzero(u->pwhash, strlen(u->pwhash));
        free(u->pwhash);
        u->pwhash = NULL;
    } else {
        u = xcalloc(1, sizeof(*u));
        u->r.key = xstrndup(j->s[0].ptr, j->s[0].len);
        u->r.klen = j->s[0].len;
    }
    u->flags = j->flags;
    if (j->s[1].len > 0 && !(u->pwhash = pw_hash(a, j->s[1]))) {
        user_free(u);
        j->res.err = WR_ENOMEM;
        return;
    }
    b = batch_new();
    put_user(b, u);
    j->res.err = batch_done(a, b);
    if (j->res.err != WR_OK) {
        user_free(u);
        return;
    }
    swap_user(a, u);
}

static void run_user_del(wr_auth_t *a, job_t *j)
{
    const user_t *u = vec_get(&a->users, j->s[0].ptr, j->s[0].len);
    batch_t *b;
    kbuf_t k;
    rec_t *old;

    if (!u) {
        j->res.err = WR_ENOTFOUND;
        return;
    }
    b = batch_new();
    for (size_t i = 0; i < u->ng; i++)
        del_grant(b, u, &u->g[i]);
    for (size_t i = 0; i < a->tokens.n; i++) {
        const token_t *t = (const token_t *)a->tokens.v[i];
        if (strcmp(t->user, u->r.key) == 0) {
            key_make(&k, 'K', t->r.key, t->r.klen, NULL, 0);
            batch_del(b, &k);
        }
    }
    key_make(&k, 'U', u->r.key, u->r.klen, NULL, 0);
    batch_del(b, &k);
    j->res.err = batch_done(a, b);
    if (j->res.err != WR_OK)
        return;
    wrlock(a);
    for (size_t i = a->tokens.n; i-- > 0;) {
        token_t *t = (token_t *)a->tokens.v[i];
        if (strcmp(t->user, u->r.key) == 0) {
            vec_del(&a->tokens, t->r.key, t->r.klen);
            token_free(t);
        }
    }
    old = vec_del(&a->users, j->s[0].ptr, j->s[0].len);
    pthread_rwlock_unlock(&a->lk);
    user_free((user_t *)old);
}

static void run_grant(wr_auth_t *a, job_t *j)
{
    const user_t *u = vec_get(&a->users, j->s[0].ptr, j->s[0].len);
    user_t *nu;
    grant_t g = {0}, *slot;
    batch_t *b;

    if (!u || !vec_get(&a->tenants, j->s[1].ptr, j->s[1].len)) {
        j->res.err = WR_ENOTFOUND;
        snprintf(j->why, sizeof(j->why), "no %s '%.128s'", u ? "tenant" : "user",
                 (const char *)(u ? j->s[1].ptr : j->s[0].ptr));
        return;
    }
    if (!grant_compile(&g, &j->s[2], j->why, sizeof(j->why))) {
        j->res.err = WR_EINVAL;
        return;
    }
    g.tenant = xstrndup(j->s[1].ptr, j->s[1].len);
    g.tlen = j->s[1].len;
    nu = user_copy(u);
    slot = user_grant(nu, g.tenant, g.tlen);
    if (slot)
        grant_fini(slot);
    else
        slot = &nu->g[nu->ng++]; /* user_copy leaves room for one more */
    *slot = g;
    b = batch_new();
    put_grant(b, nu, slot);
    j->res.err = batch_done(a, b);
    if (j->res.err != WR_OK) {
        user_free(nu);
        return;
    }
    swap_user(a, nu);
}

static void run_revoke(wr_auth_t *a, job_t *j)
{
    const user_t *u = vec_get(&a->users, j->s[0].ptr, j->s[0].len);
    const grant_t *g = u ? user_grant(u, j->s[1].ptr, j->s[1].len) : NULL;
    batch_t *b;

    if (!g) {
        j->res.err = WR_ENOTFOUND;
        return;
    }
    b = batch_new();
    del_grant(b, u, g);
    j->res.err = batch_done(a, b);
    if (j->res.err == WR_OK)
        swap_user(a, user_without_grant(u, j->s[1].ptr, j->s[1].len));
}

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void wr_auth_token_new(char out[WR_AUTH_TOKEN_HEX + 1])
{
    uint8_t raw[WR_AUTH_TOKEN_BYTES];

    randombytes_buf(raw, sizeof(raw));
    hex_encode(raw, sizeof(raw), out);
    sodium_memzero(raw, sizeof(raw));
}

/* Stores and registers a token (hex) for an existing user. */
static wr_err_t token_put(wr_auth_t *a, const char *user, const char *hex)
{
    uint8_t h[HASH_BYTES];
    token_t *t;
    batch_t *b;
    wr_err_t err;

    if (!token_hash(hex, strlen(hex), h))
        return WR_EINVAL;
    t = xcalloc(1, sizeof(*t));
    t->r.key = xstrndup(h, sizeof(h));
    t->r.klen = sizeof(h);
    t->user = xstrndup(user, strlen(user));
    t->created_ms = wr_now_wall_ms();
    b = batch_new();
    put_token(b, t);
    err = batch_done(a, b);
    if (err != WR_OK) {
        token_free(t);
        return err;
    }
    wrlock(a);
    token_free((token_t *)vec_put(&a->tokens, &t->r));
    pthread_rwlock_unlock(&a->lk);
    return WR_OK;
}

static void run_token_add(wr_auth_t *a, job_t *j)
{
    if (!vec_get(&a->users, j->s[0].ptr, j->s[0].len)) {
        j->res.err = WR_ENOTFOUND;
        return;
    }
    wr_auth_token_new(j->token);
    j->res.err = token_put(a, j->s[0].ptr, j->token);
    if (j->res.err == WR_OK)
        j->res.token = j->token;
}

static void run_token_del(wr_auth_t *a, job_t *j)
{
    uint8_t h[HASH_BYTES];
    batch_t *b;
    kbuf_t k;
    rec_t *old;

    if (!token_hash(j->s[0].ptr, j->s[0].len, h) || !vec_get(&a->tokens, h, sizeof(h))) {
        j->res.err = WR_ENOTFOUND;
        return;
    }
    b = batch_new();
    key_make(&k, 'K', h, sizeof(h), NULL, 0);
    batch_del(b, &k);
    j->res.err = batch_done(a, b);
    if (j->res.err != WR_OK)
        return;
    wrlock(a);
    old = vec_del(&a->tokens, h, sizeof(h));
    pthread_rwlock_unlock(&a->lk);
    token_free((token_t *)old);
}

static void run_quota_set(wr_auth_t *a, job_t *j)
{
    const tenant_t *t = vec_get(&a->tenants, j->s[0].ptr, j->s[0].len);
    tenant_t *nt;
    batch_t *b;

    if (!t) {
        j->res.err = WR_ENOTFOUND;
        return;
    }
    nt = xcalloc(1, sizeof(*nt));
    *nt = *t;
    nt->r.key = xstrndup(t->r.key, t->r.klen);
    nt->q[j->key] = j->value;
    nt->qset |= 1u << j->key;
    b = batch_new();
    put_tenant(b, nt);
    j->res.err = batch_done(a, b);
    if (j->res.err != WR_OK) {
        tenant_free(nt);
        return;
    }
    wrlock(a);
    tenant_free((tenant_t *)vec_put(&a->tenants, &nt->r));
    pthread_rwlock_unlock(&a->lk);
}

/* Queues a mutation with up to five string inputs (NULL ends the list). */
static wr_err_t admin_job(wr_auth_t *a, job_fn run, wr_loop_t *reply, wr_auth_cb cb, void *arg,
                          const wr_slice_t *in, size_t nin, job_t **jout)
{
    job_t *j;

    if (!reply || !cb)
        return WR_EINVAL;
    j = job_new(run, reply, cb, arg);
    for (size_t i = 0; i < nin; i++)
        job_str(j, (int)i, in[i]);
    if (jout) {
        *jout = j;
        return WR_OK;
    }
    return jobq_push(&a->admin, j, 0);
}

#define TENANT_OK(s) wr_auth_name_ok((s), WR_NAME_MAX)
#define USER_OK(s) wr_auth_name_ok((s), WR_AUTH_NAME_MAX)

wr_err_t wr_auth_tenant_add(wr_auth_t *a, wr_slice_t name, wr_loop_t *reply, wr_auth_cb cb,
                            void *arg)
{
    if (!TENANT_OK(name))
        return WR_EINVAL;
    return admin_job(a, run_tenant_add, reply, cb, arg, &name, 1, NULL);
}

wr_err_t wr_auth_tenant_del(wr_auth_t *a, wr_slice_t name, wr_loop_t *reply, wr_auth_cb cb,
                            void *arg)
{
    if (!TENANT_OK(name))
        return WR_EINVAL;
    return admin_job(a, run_tenant_del, reply, cb, arg, &name, 1, NULL);
}

wr_err_t wr_auth_user_put(wr_auth_t *a, wr_slice_t name, wr_slice_t pass, unsigned flags,
                          wr_loop_t *reply, wr_auth_cb cb, void *arg)
{
    wr_slice_t in[2] = {name, pass};
    job_t *j;
    wr_err_t err;

    if (!USER_OK(name) || pass.len > WR_AUTH_PASS_MAX)
        return WR_EINVAL;
    err = admin_job(a, run_user_put, reply, cb, arg, in, 2, &j);
    if (err != WR_OK)
        return err;
    j->flags = flags & (WR_USER_ADMIN | WR_USER_LOOPBACK);
    return jobq_push(&a->admin, j, 0);
}

wr_err_t wr_auth_user_del(wr_auth_t *a, wr_slice_t name, wr_loop_t *reply, wr_auth_cb cb,
                          void *arg)
{
    if (!USER_OK(name))
        return WR_EINVAL;
    return admin_job(a, run_user_del, reply, cb, arg, &name, 1, NULL);
}

wr_err_t wr_auth_grant(wr_auth_t *a, wr_slice_t user, wr_slice_t tenant, wr_slice_t configure,
                       wr_slice_t write, wr_slice_t read, wr_loop_t *reply, wr_auth_cb cb,
                       void *arg)
{
    wr_slice_t in[5] = {user, tenant, configure, write, read};

    if (!USER_OK(user) || !TENANT_OK(tenant))
        return WR_EINVAL;
    for (int i = 2; i < 5; i++)
        if (in[i].len > WR_AUTH_REGEX_MAX || memchr(in[i].ptr, 0, in[i].len))
            return WR_EINVAL;
    return admin_job(a, run_grant, reply, cb, arg, in, 5, NULL);
}

wr_err_t wr_auth_revoke(wr_auth_t *a, wr_slice_t user, wr_slice_t tenant, wr_loop_t *reply,
                        wr_auth_cb cb, void *arg)
{
    wr_slice_t in[2] = {user, tenant};

    if (!USER_OK(user) || !TENANT_OK(tenant))
        return WR_EINVAL;
    return admin_job(a, run_revoke, reply, cb, arg, in, 2, NULL);
}

wr_err_t wr_auth_token_add(wr_auth_t *a, wr_slice_t user, wr_loop_t *reply, wr_auth_cb cb,
                           void *arg)
{
    if (!USER_OK(user))
        return WR_EINVAL;
    return admin_job(a, run_token_add, reply, cb, arg, &user, 1, NULL);
}

wr_err_t wr_auth_token_del(wr_auth_t *a, wr_slice_t token, wr_loop_t *reply, wr_auth_cb cb,
                           void *arg)
{
    if (token.len != WR_AUTH_TOKEN_HEX)
        return WR_EINVAL;
    return admin_job(a, run_token_del, reply, cb, arg, &token, 1, NULL);
}

wr_err_t wr_auth_quota_set(wr_auth_t *a, wr_slice_t tenant, int key, uint64_t value,
                           wr_loop_t *reply, wr_auth_cb cb, void *arg)
{
    job_t *j;
    wr_err_t err;

    if (!TENANT_OK(tenant) || key < 0 || key >= WR_QUOTA_NKEYS)
        return WR_EINVAL;
    err = admin_job(a, run_quota_set, reply, cb, arg, &tenant, 1, &j);
    if (err != WR_OK)
        return err;
    j->key = key;
    j->value = value;
    return jobq_push(&a->admin, j, 0);
}

wr_err_t wr_auth_token_register(wr_auth_t *a, wr_slice_t user, const char *token_hex)
{
    char name[WR_AUTH_NAME_MAX + 1];
    uint8_t h[HASH_BYTES];
    const token_t *t;
    bool same;

    if (!USER_OK(user) || !token_hash(token_hex, strlen(token_hex), h))
        return WR_EINVAL;
    memcpy(name, user.ptr, user.len);
    name[user.len] = '\0';
    pthread_rwlock_rdlock(&a->lk);
    t = vec_get(&a->tokens, h, sizeof(h));
    same = t && strcmp(t->user, name) == 0;
    pthread_rwlock_unlock(&a->lk);
    if (same)
        return WR_OK;
    if (!vec_get(&a->users, user.ptr, user.len))
        return WR_ENOTFOUND;
    return token_put(a, name, token_hex);
}

/* ------------------------------------------------------------------------ */
/* Load and bootstrap                                                       */

typedef struct load {
    wr_auth_t *a;
    unsigned bad;
    bool bootstrapped;
} load_t;

static int load_tenant(void *arg, wr_bytes_t key, wr_bytes_t val)
{
    load_t *l = arg;
    msgpack_unpacked u;
    const msgpack_object *f = dec_array(&u, val, 3);
    tenant_t *t;
    int64_t v;

    if (!f || !obj_int(&f[1], &v) || f[2].type != MSGPACK_OBJECT_MAP) {
        l->bad++;
        msgpack_unpacked_destroy(&u);
        return 0;
    }
    t = xcalloc(1, sizeof(*t));
    t->r.key = xstrndup((const char *)key.ptr + 2, key.len - 2);
    t->r.klen = key.len - 2;
    t->created_ms = v;
    for (uint32_t i = 0; i < f[2].via.map.size; i++) {
        const msgpack_object_kv *kv = &f[2].via.map.ptr[i];
        const char *k;
        size_t kn;
        int qi;
        if (obj_str(&kv->key, &k, &kn) && (qi = wr_auth_quota_key(k, kn)) >= 0 &&
            kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            t->q[qi] = kv->val.via.u64;
            t->qset |= 1u << qi;
        }
    }
    tenant_free((tenant_t *)vec_put(&l->a->tenants, &t->r));
    msgpack_unpacked_destroy(&u);
    return 0;
}

static int load_user(void *arg, wr_bytes_t key, wr_bytes_t val)
{
    load_t *l = arg;
    msgpack_unpacked mu;
    const msgpack_object *f = dec_array(&mu, val, 3);
    const char *h = NULL;
    size_t hn = 0;
    int64_t flags;
    user_t *u;

    if (!f || (f[1].type != MSGPACK_OBJECT_NIL && !obj_str(&f[1], &h, &hn)) ||
        !obj_int(&f[2], &flags) || hn >= crypto_pwhash_STRBYTES) {
        l->bad++;
        msgpack_unpacked_destroy(&mu);
        return 0;
    }
    u = xcalloc(1, sizeof(*u));
    u->r.key = xstrndup((const char *)key.ptr + 2, key.len - 2);
    u->r.klen = key.len - 2;
    u->pwhash = h ? xstrndup(h, hn) : NULL;
    u->flags = (unsigned)flags & (WR_USER_ADMIN | WR_USER_LOOPBACK);
    user_free((user_t *)vec_put(&l->a->users, &u->r));
    msgpack_unpacked_destroy(&mu);
    return 0;
}

static int load_grant(void *arg, wr_bytes_t key, wr_bytes_t val)
{
    load_t *l = arg;
    msgpack_unpacked mu;
    const msgpack_object *f = dec_array(&mu, val, 4);
    const char *k = (const char *)key.ptr + 2;
    const char *nul = memchr(k, 0, key.len - 2);
    wr_slice_t re[3];
    char why[160];
    user_t *u = NULL, *nu;
    grant_t g = {0};

    for (int i = 0; f && i < 3; i++)
        if (!obj_str(&f[1 + i], (const char **)&re[i].ptr, &re[i].len))
            f = NULL;
    if (f && nul)
        u = vec_get(&l->a->users, k, (size_t)(nul - k));
    if (!u || !grant_compile(&g, re, why, sizeof(why))) {
        l->bad++;
        msgpack_unpacked_destroy(&mu);
        return 0;
    }
    g.tenant = xstrndup(nul + 1, key.len - 2 - (size_t)(nul - k) - 1);
    g.tlen = strlen(g.tenant);
    nu = user_copy(u);
    nu->g[nu->ng++] = g;
    user_free((user_t *)vec_put(&l->a->users, &nu->r));
    msgpack_unpacked_destroy(&mu);
    return 0;
}

static int load_token(void *arg, wr_bytes_t key, wr_bytes_t val)
{
    load_t *l = arg;
    msgpack_unpacked mu;
    const msgpack_object *f = dec_array(&mu, val, 3);
    const char *us;
    size_t un;
    int64_t created;
    token_t *t;

    if (!f || key.len != 2 + HASH_BYTES || !obj_str(&f[1], &us, &un) ||
        !obj_int(&f[2], &created)) {
        l->bad++;
        msgpack_unpacked_destroy(&mu);
        return 0;
    }
    t = xcalloc(1, sizeof(*t));
    t->r.key = xstrndup((const char *)key.ptr + 2, HASH_BYTES);
    t->r.klen = HASH_BYTES;
    t->user = xstrndup(us, un);
    t->created_ms = created;
    token_free((token_t *)vec_put(&l->a->tokens, &t->r));
    msgpack_unpacked_destroy(&mu);
    return 0;
}

static int load_marker(void *arg, wr_bytes_t key, wr_bytes_t val)
{
    ((load_t *)arg)->bootstrapped = true;
    return 0;
}

static wr_err_t load(wr_auth_t *a, load_t *l)
{
    static const struct {
        const char *prefix;
        wr_store_meta_visit_cb fn;
    } kinds[] = {{"AT", load_tenant}, {"AU", load_user}, {"AG", load_grant},
                 {"AK", load_token},  {"AV", load_marker}};

    if (!a->store)
        return WR_OK;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        wr_err_t err = wr_store_meta_scan(a->store, (wr_bytes_t){kinds[i].prefix, 2}, kinds[i].fn, l);
        if (err != WR_OK)
            return err;
    }
    if (l->bad)
        wr_log(WR_LOG_WARN, WR_LOGC_CORE, "auth registry: %u unreadable records skipped", l->bad);
    return WR_OK;
}

/* The first start: tenant default, guest/guest on it (loopback only), and
 * the admin user. */
static wr_err_t bootstrap(wr_auth_t *a)
{
    static const wr_slice_t all[3] = {{".*", 2}, {".*", 2}, {".*", 2}};
    tenant_t *t = xcalloc(1, sizeof(*t));
    user_t *guest = xcalloc(1, sizeof(*guest)), *admin = xcalloc(1, sizeof(*admin));
    batch_t *b = batch_new();
    char why[8];
    kbuf_t k;
    msgpack_sbuffer *sb;
    wr_err_t err;

    t->r.key = xstrndup(WR_AUTH_DEFAULT_TENANT, strlen(WR_AUTH_DEFAULT_TENANT));
    t->r.klen = strlen(WR_AUTH_DEFAULT_TENANT);
    t->created_ms = wr_now_wall_ms();
    guest->r.key = xstrndup(WR_AUTH_GUEST, strlen(WR_AUTH_GUEST));
    guest->r.klen = strlen(WR_AUTH_GUEST);
    guest->flags = WR_USER_LOOPBACK;
    guest->pwhash = pw_hash(a, (wr_slice_t){"guest", 5});
    guest->g = xcalloc(1, sizeof(*guest->g));
    WR_ASSERT(guest->pwhash && grant_compile(&guest->g[0], all, why, sizeof(why)));
    guest->g[0].tenant = xstrndup(t->r.key, t->r.klen);
    guest->g[0].tlen = t->r.klen;
    guest->ng = 1;
    admin->r.key = xstrndup(WR_AUTH_ADMIN, strlen(WR_AUTH_ADMIN));
    admin->r.klen = strlen(WR_AUTH_ADMIN);
    admin->flags = WR_USER_ADMIN;

    put_tenant(b, t);
    put_user(b, guest);
    put_grant(b, guest, &guest->g[0]);
    put_user(b, admin);
    key_make(&k, 'V', "", 0, NULL, 0);
    if ((sb = batch_put(b, &k))) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_uint8(&pk, REC_V1);
    }
    err = batch_done(a, b);
    tenant_free((tenant_t *)vec_put(&a->tenants, &t->r));
    user_free((user_t *)vec_put(&a->users, &guest->r));
    user_free((user_t *)vec_put(&a->users, &admin->r));
    return err;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

wr_err_t wr_auth_new(wr_store_t *store, const wr_auth_cost_t *cost, wr_auth_t **out)
{
    wr_auth_t *a;
    uint8_t pw[32];
    load_t l = {0};
    wr_err_t err;

    if (sodium_init() < 0)
        return WR_EIO;
    a = xcalloc(1, sizeof(*a));
    pthread_rwlock_init(&a->lk, NULL);
    a->store = store;
    a->opslimit = cost && cost->opslimit ? cost->opslimit : OPSLIMIT;
    a->memlimit = cost && cost->memlimit ? cost->memlimit : MEMLIMIT;
    randombytes_buf(a->cache_key, sizeof(a->cache_key));
    /* The dummy: a hash of a random password nobody knows, same cost. */
    randombytes_buf(pw, sizeof(pw));
    if (crypto_pwhash_str(a->dummy, (const char *)pw, sizeof(pw), a->opslimit, a->memlimit) != 0) {
        wr_auth_free(a);
        return WR_ENOMEM;
    }
    l.a = a;
    err = load(a, &l);
    if (err == WR_OK && !l.bootstrapped)
        err = bootstrap(a);
    if (err == WR_OK)
        err = jobq_start(&a->verify, a, "wr-auth-verify");
    if (err == WR_OK)
        err = jobq_start(&a->admin, a, "wr-auth-admin");
    if (err != WR_OK) {
        wr_auth_free(a);
        return err;
    }
    wr_log(WR_LOG_INFO, WR_LOGC_CORE, "auth registry tenants=%zu users=%zu tokens=%zu%s",
           a->tenants.n, a->users.n, a->tokens.n, l.bootstrapped ? "" : " (bootstrapped)");
    *out = a;
    return WR_OK;
}

void wr_auth_stop(wr_auth_t *a)
{
    if (!a)
        return;
    jobq_stop(&a->verify);
    jobq_stop(&a->admin);
}

static void vec_free(vec_t *v, void (*fn)(void *))
{
    for (size_t i = 0; i < v->n; i++)
        fn(v->v[i]);
    free(v->v);
}

static void free_user(void *p)
{
    user_free(p);
}
static void free_tenant(void *p)
{
    tenant_free(p);
}
static void free_token(void *p)
{
    token_free(p);
}

void wr_auth_free(wr_auth_t *a)
{
    if (!a)
        return;
    wr_auth_stop(a);
    vec_free(&a->users, free_user);
    vec_free(&a->tenants, free_tenant);
    vec_free(&a->tokens, free_token);
    pthread_rwlock_destroy(&a->lk);
    sodium_memzero(a->cache_key, sizeof(a->cache_key));
    free(a);
}

/* Cores with a registry: a few (warrend has one; tests may make several). */
#define ATTACH_MAX 16
static pthread_mutex_t attach_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    wr_core_t *core;
    wr_auth_t *auth;
} attached[ATTACH_MAX];

void wr_core_set_auth(wr_core_t *core, wr_auth_t *a)
{
    int free_slot = -1;

    pthread_mutex_lock(&attach_mu);
    for (int i = 0; i < ATTACH_MAX; i++) {
        if (attached[i].core == core) {
            attached[i].auth = a;
            atomic_store_explicit(&core->auth, a, memory_order_release);
            if (!a)
                attached[i].core = NULL;
            pthread_mutex_unlock(&attach_mu);
            return;
        }
        if (!attached[i].core && free_slot < 0)
            free_slot = i;
    }
    WR_ASSERT(!a || free_slot >= 0);
    atomic_store_explicit(&core->auth, a, memory_order_release);
    if (a) {
        attached[free_slot].core = core;
        attached[free_slot].auth = a;
    }
    pthread_mutex_unlock(&attach_mu);
}

wr_auth_t *wr_core_auth(wr_core_t *core)
{
    wr_auth_t *a = NULL;

    pthread_mutex_lock(&attach_mu);
    for (int i = 0; i < ATTACH_MAX && !a; i++)
        if (attached[i].core == core)
            a = attached[i].auth;
    pthread_mutex_unlock(&attach_mu);
    return a;
}
