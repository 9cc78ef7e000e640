/*
 * topology.c - exchanges and bindings, replicated on every shard.
 *
 * Layout: the replica (tenants, built-in exchanges, exchanges, bindings,
 * cascading removal); checking and applying a change; the change's trip
 * (queue shard -> home shard -> every other shard); the API entry points.
 *
 * Why replicate: every publish reads the topology and almost nothing
 * changes it, so every shard keeps its own copy of every tenant's
 * exchanges and bindings and routes from local memory with no lock and no
 * hop. A change is one request:
 *
 *   1. bind/unbind to a queue first visits the queue's shard, which checks
 *      that the queue exists (and its exclusive owner);
 *   2. the tenant's home shard (hash(tenant)) checks the change against its
 *      replica and applies it. Every change of a tenant passes through this
 *      one thread, which puts them in one order;
 *   3. the home shard posts the same request to every other shard, which
 *      applies it unchecked. Each mailbox is FIFO, so every replica sees the
 *      changes in the home shard's order, and applying is deterministic
 *      (cascading auto-deletes included), so replicas stay equal;
 *   4. the last shard to apply completes the request (the gather count),
 *      so when the caller hears back every shard routes with the change.
 *
 * A queue deletion removes the queue's bindings with an internal change
 * sent from the queue's shard to the home shard. Step 1 of a bind to that
 * queue also ran on the queue's shard, earlier or later in its order, so a
 * binding can never outlive the queue it names.
 *
 * A replica of a tenant is created on first change; until then the tenant
 * has only the built-in exchanges, which route nowhere but "" (the default
 * exchange, which route.c handles without a replica).
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

/* ------------------------------------------------------------------------ */
/* The replica                                                              */

static const struct {
    const char *name;
    wr__ex_type_t type;
} builtins[] = {
    {"", WR__EX_DIRECT},          {"amq.direct", WR__EX_DIRECT}, {"amq.fanout", WR__EX_FANOUT},
    {"amq.topic", WR__EX_TOPIC},  {"amq.headers", WR__EX_HEADERS},
    {"amq.match", WR__EX_HEADERS},
};
#define NBUILTINS (sizeof(builtins) / sizeof(builtins[0]))

static bool slice_eq(wr_slice_t a, wr_slice_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool is_amq(wr_slice_t name)
{
    return name.len >= 4 && memcmp(name.ptr, "amq.", 4) == 0;
}

wr__exch_t *wr__exch_new(wr__topo_t *t, wr_slice_t name, uint8_t type, uint8_t flags,
                         const wr_slice_t *alt)
{
    wr__exch_t *e = wr__xcalloc(1, sizeof(*e) + name.len + 1 + (alt ? alt->len : 0));

    if (name.len)
        memcpy(e->name, name.ptr, name.len);
    e->nlen = name.len;
    e->hash = wr__hash_key(e->name, e->nlen);
    e->type = type;
    e->flags = flags & ~WR__EXF_ALT;
    if (alt) {
        char *p = e->name + name.len + 1;
        if (alt->len)
            memcpy(p, alt->ptr, alt->len);
        e->alt = (wr_slice_t){p, alt->len};
        e->flags |= WR__EXF_ALT;
    }
    wr__map_put(&t->exchs, e->hash, e->name, e->nlen, e);
    return e;
}

wr__exch_t *wr__exch_find(const wr__topo_t *t, wr_slice_t name)
{
    return wr__map_get(&t->exchs, wr__hash_key(name.ptr, name.len), name.ptr, name.len);
}

wr__topo_t *wr__topo_find(const wr__shard_t *sh, const char *tenant, size_t tlen)
{
    return wr__map_get(&sh->topos, wr__hash_key(tenant, tlen), tenant, tlen);
}

wr__topo_t *wr__topo_get(wr__shard_t *sh, const char *tenant, size_t tlen)
{
    wr__topo_t *t = wr__topo_find(sh, tenant, tlen);

    if (t)
        return t;
    t = wr__xcalloc(1, sizeof(*t) + tlen + 1);
    memcpy(t->tenant, tenant, tlen);
    t->tlen = tlen;
    t->hash = wr__hash_key(t->tenant, tlen);
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        wr__exch_new(t, (wr_slice_t){builtins[i].name, strlen(builtins[i].name)},
                     (uint8_t)builtins[i].type, WR__EXF_DURABLE | WR__EXF_BUILTIN, NULL);
    wr__map_put(&sh->topos, t->hash, t->tenant, t->tlen, t);
    return t;
}

bool wr__builtin_exchange(wr_slice_t name, wr__ex_type_t *type)
{
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        if (slice_eq(name, (wr_slice_t){builtins[i].name, strlen(builtins[i].name)})) {
            if (type)
                *type = builtins[i].type;
            return true;
        }
    }
    return false;
}

/* --- bindings ------------------------------------------------------------ */

static wr__bind_t *bind_new(wr__exch_t *src, const wr__req_t *r)
{
    size_t hbytes = wr__headers_size(r->in.topo.args, r->in.topo.nargs);
    size_t wbytes = WR__WORDS_MAX * sizeof(wr_slice_t);
    size_t off_words = (hbytes + 7) & ~(size_t)7;
    wr_slice_t words[WR__WORDS_MAX];
    int nw = 0;
    wr__bind_t *b;
    char *p;

    if (src->type == WR__EX_TOPIC) {
        nw = wr__split_words(r->in.topo.key, words);
        WR_ASSERT(nw >= 0); /* the call checked the key's length */
        wbytes = (size_t)nw * sizeof(wr_slice_t);
    } else {
        wbytes = 0;
    }
    b = wr__xmalloc(sizeof(*b) + off_words + wbytes + r->in.topo.dest.len + r->in.topo.key.len);
    memset(b, 0, sizeof(*b));
    b->src = src;
    b->to_exch = r->in.topo.to_exch;
    b->hmode = r->in.topo.hmode;
    b->durable = r->in.topo.dest_durable;
    b->dhash = r->in.topo.dhash;
    b->nargs = (uint32_t)r->in.topo.nargs;
    if (b->nargs)
        b->args = wr__headers_copy(b->data, r->in.topo.args, b->nargs);
    b->words = (wr_slice_t *)(b->data + off_words);
    p = (char *)b->data + off_words + wbytes;
    if (r->in.topo.dest.len)
        memcpy(p, r->in.topo.dest.ptr, r->in.topo.dest.len);
    b->dest = (wr_slice_t){p, r->in.topo.dest.len};
    p += r->in.topo.dest.len;
    if (r->in.topo.key.len)
        memcpy(p, r->in.topo.key.ptr, r->in.topo.key.len);
    b->key = (wr_slice_t){p, r->in.topo.key.len};
    /* The words point into the binding's own copy of the key. */
    for (int i = 0; i < nw; i++)
        b->words[i] = (wr_slice_t){p + ((const char *)words[i].ptr - (const char *)r->in.topo.key.ptr),
                                   words[i].len};
    b->nwords = (uint16_t)nw;
    return b;
}

static bool args_eq(const wr_header_t *a, size_t na, const wr_header_t *b, size_t nb)
{
    /* As sets: RabbitMQ compares sorted tables. */
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        bool found = false;
        for (size_t j = 0; j < nb && !found; j++)
            found = wr__header_eq(&a[i], &b[j]);
        if (!found)
            return false;
    }
    return true;
}

static bool bind_is(const wr__bind_t *b, const wr__req_t *r)
{
    return b->to_exch == r->in.topo.to_exch && slice_eq(b->dest, r->in.topo.dest) &&
           slice_eq(b->key, r->in.topo.key) &&
           args_eq(b->args, b->nargs, r->in.topo.args, r->in.topo.nargs);
}

static wr__keychain_t *chain_of(const wr__exch_t *e, wr_slice_t key)
{
    return wr__map_get(&e->bykey, wr__hash_key(key.ptr, key.len), key.ptr, key.len);
}

static wr__bind_t *bind_find(const wr__exch_t *e, const wr__req_t *r)
{
    const wr__bind_t *b;

    if (e->type == WR__EX_DIRECT) {
        const wr__keychain_t *c = chain_of(e, r->in.topo.key);
        b = c ? c->head : NULL;
    } else {
        b = e->list;
    }
    for (; b; b = b->next)
        if (bind_is(b, r))
            return (wr__bind_t *)b;
    return NULL;
}

static void bind_add(wr__exch_t *e, wr__bind_t *b)
{
    wr__bind_t **head = &e->list;

    if (e->type == WR__EX_DIRECT) {
        wr__keychain_t *c = chain_of(e, b->key);
        if (!c) {
            c = wr__xcalloc(1, sizeof(*c) + b->key.len + 1);
            if (b->key.len)
                memcpy(c->key, b->key.ptr, b->key.len);
            c->klen = b->key.len;
            wr__map_put(&e->bykey, wr__hash_key(c->key, c->klen), c->key, c->klen, c);
        }
        head = &c->head;
    }
    /* Appended: routing then visits bindings in the order they were made. */
    while (*head)
        head = &(*head)->next;
    b->next = NULL;
    *head = b;
    e->nbind++;
}

void wr__topo_add_bind(wr__exch_t *e, const wr__req_t *r)
{
    bind_add(e, bind_new(e, r));
}

/* Unlinks b from its source; frees it. No cascade. */
static void bind_unlink(wr__bind_t *b)
{
    wr__exch_t *e = b->src;
    wr__keychain_t *c = NULL;
    wr__bind_t **pp = &e->list;

    if (e->type == WR__EX_DIRECT) {
        c = chain_of(e, b->key);
        WR_ASSERT(c);
        pp = &c->head;
    }
    while (*pp != b)
        pp = &(*pp)->next;
    *pp = b->next;
    if (c && !c->head) {
        wr__map_del(&e->bykey, wr__hash_key(c->key, c->klen), c->key, c->klen);
        free(c);
    }
    e->nbind--;
    free(b);
}

typedef bool (*bind_pred_t)(const wr__bind_t *b, const void *ctx);

/* The first binding of the tenant for which pred holds. */
static wr__bind_t *find_any(const wr__topo_t *t, bind_pred_t pred, const void *ctx)
{
    for (size_t i = 0; i < t->exchs.cap; i++) {
        const wr__exch_t *e = t->exchs.e[i].val;
        if (!e || !e->nbind)
            continue;
        if (e->type == WR__EX_DIRECT) {
            for (size_t j = 0; j < e->bykey.cap; j++) {
                const wr__keychain_t *c = e->bykey.e[j].val;
                for (wr__bind_t *b = c ? c->head : NULL; b; b = b->next)
                    if (pred(b, ctx))
                        return b;
            }
        } else {
            for (wr__bind_t *b = e->list; b; b = b->next)
                if (pred(b, ctx))
                    return b;
        }
    }
    return NULL;
}

static bool to_exchange(const wr__bind_t *b, const void *ctx)
{
    const wr__exch_t *e = ctx;
    return b->to_exch && slice_eq(b->dest, (wr_slice_t){e->name, e->nlen});
}

static bool to_queue(const wr__bind_t *b, const void *ctx)
{
    return !b->to_exch && slice_eq(b->dest, *(const wr_slice_t *)ctx);
}

static bool any_bind(const wr__bind_t *b, const void *ctx)
{
    (void)b;
    (void)ctx;
    return true;
}

static uint64_t exch_delete(wr__topo_t *t, wr__exch_t *e);

/* Removes a binding; its source goes too if it is auto_delete and now has
 * none. Returns bindings removed (cascades included). */
static uint64_t bind_remove(wr__topo_t *t, wr__bind_t *b)
{
    wr__exch_t *src = b->src;

    bind_unlink(b);
    if ((src->flags & WR__EXF_AUTO_DELETE) && src->nbind == 0)
        return 1 + exch_delete(t, src);
    return 1;
}

static void exch_free(wr__exch_t *e)
{
    wr__map_fini(&e->bykey);
    free(e);
}

/* Removes e, its bindings and the bindings to it. Returns bindings removed. */
static uint64_t exch_delete(wr__topo_t *t, wr__exch_t *e)
{
    uint64_t n = 0;
    wr__bind_t *b;

    /* Out of the map first: cascades below must not find it again. */
    wr__map_del(&t->exchs, e->hash, e->name, e->nlen);
    if (e->type == WR__EX_DIRECT) {
        for (size_t j = 0; j < e->bykey.cap; j++) {
            wr__keychain_t *c = e->bykey.e[j].val;
            if (!c)
                continue;
            while (c->head) {
                b = c->head;
                c->head = b->next;
                free(b);
                n++;
            }
            free(c);
        }
    } else {
        while ((b = e->list)) {
            e->list = b->next;
            free(b);
            n++;
        }
    }
    /* Each removal may cascade and change the tables: search afresh. */
    while ((b = find_any(t, to_exchange, e)))
        n += bind_remove(t, b);
    exch_free(e);
    return n;
}

/* Empties the replica down to the built-ins, without bindings. Returns the
 * exchanges removed (cascades change the map: search afresh each time). */
static uint64_t topo_drop(wr__topo_t *t)
{
    uint64_t n = 0;
    wr__bind_t *b;

    for (bool again = true; again;) {
        again = false;
        for (size_t i = 0; i < t->exchs.cap && !again; i++) {
            wr__exch_t *e = t->exchs.e[i].val;
            if (e && !(e->flags & WR__EXF_BUILTIN)) {
                exch_delete(t, e);
                n++;
                again = true;
            }
        }
    }
    /* What is left: built-ins bound to queues (none once the queues went,
     * but a drop must leave nothing behind whatever the order was). */
    while ((b = find_any(t, any_bind, NULL)))
        bind_remove(t, b);
    return n;
}

static void topo_free(wr__topo_t *t)
{
    for (size_t i = 0; i < t->exchs.cap; i++) {
        wr__exch_t *e = t->exchs.e[i].val;
        if (!e)
            continue;
        for (size_t j = 0; j < e->bykey.cap; j++) {
            wr__keychain_t *c = e->bykey.e[j].val;
            if (!c)
                continue;
            while (c->head) {
                wr__bind_t *b = c->head;
                c->head = b->next;
                free(b);
            }
            free(c);
        }
        while (e->list) {
            wr__bind_t *b = e->list;
            e->list = b->next;
            free(b);
        }
        exch_free(e);
    }
    wr__map_fini(&t->exchs);
    free(t);
}

void wr__topo_fini(wr__shard_t *sh)
{
    for (size_t i = 0; i < sh->topos.cap; i++)
        if (sh->topos.e[i].val)
            topo_free(sh->topos.e[i].val);
    wr__map_fini(&sh->topos);
}

/* ------------------------------------------------------------------------ */
/* Check (home shard only) and apply (every shard)                          */

static uint8_t decl_flags(unsigned f)
{
    return (uint8_t)(((f & WR_EXCH_DURABLE) ? WR__EXF_DURABLE : 0) |
                     ((f & WR_EXCH_AUTO_DELETE) ? WR__EXF_AUTO_DELETE : 0) |
                     ((f & WR_EXCH_INTERNAL) ? WR__EXF_INTERNAL : 0));
}

#define EXF_EQUIV (WR__EXF_DURABLE | WR__EXF_AUTO_DELETE | WR__EXF_INTERNAL)

/* A declare's alternate exchange travels as the request's key, with
 * WR_EXCH_ALTERNATE in its flags. */
static const wr_slice_t *decl_alt(const wr__req_t *r)
{
    return (r->in.topo.flags & WR_EXCH_ALTERNATE) ? &r->in.topo.key : NULL;
}

static bool alt_eq(const wr__exch_t *e, const wr__req_t *r)
{
    const wr_slice_t *alt = decl_alt(r);

    if (!(e->flags & WR__EXF_ALT) || !alt)
        return !(e->flags & WR__EXF_ALT) && !alt;
    return slice_eq(e->alt, *alt);
}

static wr_err_t check(const wr__topo_t *t, const wr__req_t *r, bool *noop)
{
    const wr__exch_t *e = wr__exch_find(t, r->in.topo.name), *d;
    unsigned flags = r->in.topo.flags;

    *noop = false;
    switch (r->in.topo.kind) {
    case WR__TM_EX_DECLARE:
        if (e && (flags & WR_EXCH_PASSIVE)) {
            *noop = true;
            return WR_OK;
        }
        if (r->in.topo.name.len == 0)
            return WR_EDENIED;
        if (!e && (flags & WR_EXCH_PASSIVE))
            return WR_ENOTFOUND;
        if (!e && is_amq(r->in.topo.name))
            return WR_EDENIED;
        if (!e && (flags & WR_EXCH_NO_CREATE))
            return WR_EDENIED;
        if (e && (e->type != r->in.topo.type ||
                  (e->flags & EXF_EQUIV) != decl_flags(flags) || !alt_eq(e, r)))
            return WR_EEXISTS;
        *noop = e != NULL;
        /* max-exchanges counts the declared ones: the map minus built-ins. */
        if (!e)
            return wr__quota_exchange(r->core, (wr_slice_t){t->tenant, t->tlen},
                                      t->exchs.len - NBUILTINS);
        return WR_OK;
    case WR__TM_EX_DELETE:
        if (!e)
            return WR_ENOTFOUND;
        if (e->flags & WR__EXF_BUILTIN)
            return WR_EDENIED;
        if ((flags & WR_EXCH_IF_UNUSED) && e->nbind)
            return WR_EBUSY;
        return WR_OK;
    case WR__TM_BIND:
    case WR__TM_UNBIND:
        if (!e)
            return WR_ENOTFOUND;
        if (r->in.topo.name.len == 0)
            return WR_EDENIED;
        if (r->in.topo.to_exch) {
            d = wr__exch_find(t, r->in.topo.dest);
            if (!d)
                return WR_ENOTFOUND;
            if (r->in.topo.dest.len == 0)
                return WR_EDENIED;
        }
        *noop = (bind_find(e, r) != NULL) == (r->in.topo.kind == WR__TM_BIND);
        return WR_OK;
    case WR__TM_QUEUE_GONE:
        *noop = find_any(t, to_queue, &r->in.topo.dest) == NULL;
        return WR_OK;
    case WR__TM_TENANT_DROP:
        return WR_OK;
    }
    return WR_EINVAL;
}

/* Deterministic: every replica that applies the same changes in the same
 * order ends up equal. Returns the count reported to the caller. */
static uint64_t apply(wr__topo_t *t, const wr__req_t *r)
{
    wr__exch_t *e = wr__exch_find(t, r->in.topo.name);
    wr__bind_t *b;
    uint64_t n = 0;

    switch (r->in.topo.kind) {
    case WR__TM_EX_DECLARE:
        if (e)
            return 0;
        wr__exch_new(t, r->in.topo.name, r->in.topo.type, decl_flags(r->in.topo.flags),
                     decl_alt(r));
        return 1;
    case WR__TM_EX_DELETE:
        return e ? exch_delete(t, e) : 0;
    case WR__TM_BIND:
        if (!e || bind_find(e, r))
            return 0;
        bind_add(e, bind_new(e, r));
        return 1;
    case WR__TM_UNBIND:
        b = e ? bind_find(e, r) : NULL;
        return b ? bind_remove(t, b) : 0;
    case WR__TM_QUEUE_GONE:
        while ((b = find_any(t, to_queue, &r->in.topo.dest)))
            n += bind_remove(t, b);
        return n;
    case WR__TM_TENANT_DROP:
        return topo_drop(t);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The trip of a change                                                     */

static void finish(wr__req_t *r)
{
    wr__req_t *parent = r->in.topo.parent;

    if (parent)
        wr__complete(parent);
    wr__complete(r);
}

void wr__topo_replica_done(wr__req_t *r)
{
    if (atomic_fetch_sub_explicit(&r->pending, 1, memory_order_acq_rel) == 1)
        finish(r);
}

static void on_apply(void *arg)
{
    wr__req_t *r = arg;
    wr__shard_t *sh = wr__shard_current(r->core);

    sh->requests++;
    apply(wr__topo_get(sh, r->key, r->tlen), r);
    wr__topo_replica_done(r);
}

static void on_home(void *arg)
{
    wr__req_t *r = arg;
    wr__shard_t *sh = wr__shard_current(r->core);
    wr_core_t *core = r->core;
    wr__topo_t *t = wr__topo_get(sh, r->key, r->tlen);
    bool noop, stored;

    sh->requests++;
    r->out.count.err = check(t, r, &noop);
    if (r->out.count.err != WR_OK || noop) {
        finish(r);
        return;
    }
    r->out.count.count = apply(t, r);
    /* The tenant's exchange count for metrics: this shard alone changes it. */
    atomic_store_explicit(&wr__tenant_of(core, (wr_slice_t){t->tenant, t->tlen})->exchs,
                          (int64_t)(t->exchs.len - NBUILTINS), memory_order_relaxed);
    /* A drop deletes the record whatever this replica believes is in it. */
    if (r->in.topo.kind == WR__TM_TENANT_DROP)
        t->stored = true;
    stored = wr__topo_store(sh, t, r);
    if (core->nshards == 1 && !stored) {
        finish(r);
        return;
    }
    /* The store write (if any) counts as one more replica to hear from. */
    atomic_init(&r->pending, core->nshards - 1 + (stored ? 1u : 0u));
    if (core->nshards == 1)
        return;
    /* Once the last post is out, r may already be answered and freed. */
    for (unsigned i = 0, home = sh->idx; i < core->nshards; i++)
        if (i != home)
            wr_loop_post(core->shards[i].loop, on_apply, r);
}

static void to_home(wr__req_t *r)
{
    wr_loop_post(r->core->shards[r->shard].loop, on_home, r);
}

/* Step 1 of a bind/unbind to a queue: on the queue's shard. */
static void on_queue_check(void *arg)
{
    wr__req_t *r = arg;
    wr__shard_t *sh = wr__shard_current(r->core);
    wr__queue_t *q = wr__queue_find(sh, r->in.topo.dhash, r->in.topo.qkey, r->in.topo.qklen);

    sh->requests++;
    if (!q)
        r->out.count.err = WR_ENOTFOUND;
    else if (!wr__queue_owner_ok(q, r->in.topo.owner))
        r->out.count.err = WR_ELOCKED;
    else
        r->in.topo.dest_durable = q->attrs.durable && !q->attrs.exclusive;
    if (r->out.count.err != WR_OK) {
        finish(r);
        return;
    }
    to_home(r);
}

/* The request of a change: tenant key (so r->shard is the home shard),
 * then the exchange name, destination, key and args copied into r->data. */
static wr__req_t *change_new(wr_core_t *core, wr__tm_kind_t kind, wr_slice_t tenant,
                             wr_slice_t name, wr_slice_t dest, wr_slice_t key,
                             const wr_header_t *args, size_t nargs, wr_loop_t *reply, void *arg)
{
    size_t hbytes = (wr__headers_size(args, nargs) + 7) & ~(size_t)7;
    size_t qklen = tenant.len + 1 + dest.len;
    wr__req_t *r = wr__req_new(core, WR__OP_TOPO, hbytes + name.len + dest.len + key.len + qklen,
                               tenant, (wr_slice_t){NULL, 0}, reply, arg);
    char *p = (char *)r->data + hbytes;

    r->in.topo.kind = kind;
    if (nargs)
        r->in.topo.args = wr__headers_copy(r->data, args, nargs);
    r->in.topo.nargs = nargs;
    if (name.len)
        memcpy(p, name.ptr, name.len);
    r->in.topo.name = (wr_slice_t){p, name.len};
    p += name.len;
    if (dest.len)
        memcpy(p, dest.ptr, dest.len);
    r->in.topo.dest = (wr_slice_t){p, dest.len};
    p += dest.len;
    if (key.len)
        memcpy(p, key.ptr, key.len);
    r->in.topo.key = (wr_slice_t){p, key.len};
    p += key.len;
    /* tenant '\0' dest: the queue's map key, for step 1. */
    memcpy(p, tenant.ptr, tenant.len);
    p[tenant.len] = '\0';
    if (dest.len)
        memcpy(p + tenant.len + 1, dest.ptr, dest.len);
    r->in.topo.qkey = p;
    r->in.topo.qklen = qklen;
    return r;
}

void wr__topo_queue_gone(wr__shard_t *sh, const wr__queue_t *q, wr__req_t *parent)
{
    wr_core_t *core = sh->core;
    wr_slice_t tenant = {q->key, q->tlen}, none = {NULL, 0};
    wr__req_t *r;

    /* Counted like a call, so shutdown waits for it; once stopping, the
     * bindings die with the process anyway. */
    if (wr__enter(core) != WR_OK) {
        if (parent)
            wr__complete(parent);
        return;
    }
    r = change_new(core, WR__TM_QUEUE_GONE, tenant, none, wr__queue_name(q), none, NULL, 0,
                   NULL, NULL);
    r->nocb = true;
    r->in.topo.parent = parent;
    to_home(r);
}

/* ------------------------------------------------------------------------ */
/* API                                                                      */

static bool tenant_ok(wr_slice_t s)
{
    return s.len >= 1 && s.len <= WR_NAME_MAX && s.ptr;
}

static bool opt_ok(wr_slice_t s)
{
    return s.len <= WR_NAME_MAX && (s.len == 0 || s.ptr);
}

static wr_err_t start(wr_core_t *core, wr_slice_t tenant, wr_loop_t *reply, bool has_cb)
{
    if (!core || !reply || !has_cb || !tenant_ok(tenant))
        return WR_EINVAL;
    return wr__enter(core);
}

wr_err_t wr_exchange_declare(wr_core_t *core, wr_slice_t tenant, wr_slice_t name,
                             wr_slice_t type, unsigned flags, const wr_slice_t *alternate,
                             wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    wr__ex_type_t ty = WR__EX_DIRECT;
    wr__req_t *r;
    wr_err_t err;

    if (!opt_ok(name) || (!(flags & WR_EXCH_PASSIVE) && !wr__ex_type_parse(type, &ty)) ||
        (alternate && !opt_ok(*alternate)))
        return WR_EINVAL;
    err = start(core, tenant, reply, cb != NULL);
    if (err != WR_OK)
        return err;
    r = change_new(core, WR__TM_EX_DECLARE, tenant, name, (wr_slice_t){NULL, 0},
                   alternate ? *alternate : (wr_slice_t){NULL, 0}, NULL, 0, reply, arg);
    r->cb.count = cb;
    r->in.topo.type = (uint8_t)ty;
    r->in.topo.flags = (flags & ~WR_EXCH_ALTERNATE) | (alternate ? WR_EXCH_ALTERNATE : 0);
    to_home(r);
    return WR_OK;
}

wr_err_t wr_exchange_delete(wr_core_t *core, wr_slice_t tenant, wr_slice_t name, unsigned flags,
                            wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    wr__req_t *r;
    wr_err_t err;

    if (!opt_ok(name))
        return WR_EINVAL;
    err = start(core, tenant, reply, cb != NULL);
    if (err != WR_OK)
        return err;
    r = change_new(core, WR__TM_EX_DELETE, tenant, name, (wr_slice_t){NULL, 0},
                   (wr_slice_t){NULL, 0}, NULL, 0, reply, arg);
    r->cb.count = cb;
    r->in.topo.flags = flags;
    to_home(r);
    return WR_OK;
}

wr_err_t wr_tenant_drop(wr_core_t *core, wr_slice_t tenant, wr_loop_t *reply, wr_count_cb cb,
                        void *arg)
{
    wr__req_t *r;
    wr_err_t err = start(core, tenant, reply, cb != NULL);

    if (err != WR_OK)
        return err;
    r = change_new(core, WR__TM_TENANT_DROP, tenant, (wr_slice_t){NULL, 0},
                   (wr_slice_t){NULL, 0}, (wr_slice_t){NULL, 0}, NULL, 0, reply, arg);
    r->cb.count = cb;
    to_home(r);
    return WR_OK;
}

static wr_err_t binding(wr_core_t *core, wr__tm_kind_t kind, bool to_exch, wr_slice_t tenant,
                        wr_slice_t dest, wr_slice_t src, wr_slice_t key, const wr_header_t *args,
                        size_t nargs, uint64_t owner, wr_loop_t *reply, wr_count_cb cb,
                        void *arg)
{
    wr_slice_t words[WR__WORDS_MAX];
    uint8_t hmode = 0;
    wr__req_t *r;
    wr_err_t err;

    if (!opt_ok(src) || !opt_ok(key) || (to_exch ? !opt_ok(dest) : !tenant_ok(dest)) ||
        nargs > WR_HEADERS_MAX || (nargs && !args) || wr__split_words(key, words) < 0 ||
        !wr__headers_mode(args, nargs, &hmode))
        return WR_EINVAL;
    err = start(core, tenant, reply, cb != NULL);
    if (err != WR_OK)
        return err;
    r = change_new(core, kind, tenant, src, dest, key, args, nargs, reply, arg);
    r->cb.count = cb;
    r->in.topo.to_exch = to_exch;
    r->in.topo.hmode = hmode;
    r->in.topo.owner = owner;
    if (to_exch) {
        r->in.topo.dhash = wr__hash_key(dest.ptr, dest.len);
        to_home(r);
    } else {
        r->in.topo.dhash = wr__hash_name(tenant, dest);
        wr_loop_post(core->shards[wr_core_shard_of(core, tenant, dest)].loop, on_queue_check, r);
    }
    return WR_OK;
}

wr_err_t wr_queue_bind(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, wr_slice_t exchange,
                       wr_slice_t key, const wr_header_t *args, size_t nargs, uint64_t owner,
                       wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    return binding(core, WR__TM_BIND, false, tenant, queue, exchange, key, args, nargs, owner,
                   reply, cb, arg);
}

wr_err_t wr_queue_unbind(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue,
                         wr_slice_t exchange, wr_slice_t key, const wr_header_t *args,
                         size_t nargs, uint64_t owner, wr_loop_t *reply, wr_count_cb cb,
                         void *arg)
{
    return binding(core, WR__TM_UNBIND, false, tenant, queue, exchange, key, args, nargs, owner,
                   reply, cb, arg);
}

wr_err_t wr_exchange_bind(wr_core_t *core, wr_slice_t tenant, wr_slice_t destination,
                          wr_slice_t source, wr_slice_t key, const wr_header_t *args,
                          size_t nargs, wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    return binding(core, WR__TM_BIND, true, tenant, destination, source, key, args, nargs, 0,
                   reply, cb, arg);
}

wr_err_t wr_exchange_unbind(wr_core_t *core, wr_slice_t tenant, wr_slice_t destination,
                            wr_slice_t source, wr_slice_t key, const wr_header_t *args,
                            size_t nargs, wr_loop_t *reply, wr_count_cb cb, void *arg)
{
    return binding(core, WR__TM_UNBIND, true, tenant, destination, source, key, args, nargs, 0,
                   reply, cb, arg);
}
