/*
 * topostore.c - durable exchanges and bindings in the store.
 *
 * A tenant's durable topology is one record, key "T" tenant, rewritten
 * whole by the tenant's home shard after every change that touches it:
 *
 *   [1, [[name, type, flags(, alternate exchange)] ...],
 *       [[source, to_exchange, destination, key, hmode,
 *         [[arg key, kind, value] ...]] ...]]
 *
 * Why one record and not one per binding: a change cascades (deleting an
 * exchange or a queue removes bindings, an auto-delete exchange may go
 * with its last binding), and the home shard already holds the result in
 * its replica, so writing the result is simpler than logging each cascade
 * step and cannot drift. Topology changes are rare next to messages; a
 * tenant with thousands of durable bindings pays a few hundred KiB per
 * change, which is the trade we accept. The home shard orders the writes
 * and the store keeps their order, so the last record is the latest state.
 *
 * What is durable, as in RabbitMQ: exchanges declared durable (the
 * built-ins always exist and are not written), and bindings whose source
 * and destination are both durable (an exclusive queue is never durable).
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

#define REC_V1 1u

typedef struct tstore {
    wr__req_t *r;
    wr_err_t err;
    msgpack_sbuffer sb;
    char *key;
} tstore_t;

/* ------------------------------------------------------------------------ */
/* Writing (home shard)                                                     */

static void pack_slice(msgpack_packer *pk, wr_slice_t s)
{
    msgpack_pack_bin(pk, s.len);
    msgpack_pack_bin_body(pk, s.ptr, s.len);
}

static void pack_args(msgpack_packer *pk, const wr_header_t *h, size_t n)
{
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_array(pk, 3);
        pack_slice(pk, h[i].key);
        msgpack_pack_int(pk, (int)h[i].kind);
        switch (h[i].kind) {
        case WR_HDR_STR:
        case WR_HDR_OTHER:
            pack_slice(pk, h[i].v.s);
            break;
        case WR_HDR_INT:
            msgpack_pack_int64(pk, h[i].v.i);
            break;
        case WR_HDR_FLOAT:
            msgpack_pack_double(pk, h[i].v.f);
            break;
        case WR_HDR_BOOL:
            if (h[i].v.b)
                msgpack_pack_true(pk);
            else
                msgpack_pack_false(pk);
            break;
        case WR_HDR_VOID:
            msgpack_pack_nil(pk);
            break;
        }
    }
}

static bool exch_durable(const wr__exch_t *e)
{
    return (e->flags & WR__EXF_DURABLE) && !(e->flags & WR__EXF_BUILTIN);
}

static bool bind_durable(const wr__topo_t *t, const wr__bind_t *b)
{
    const wr__exch_t *d;

    if (!(b->src->flags & WR__EXF_DURABLE))
        return false;
    if (!b->to_exch)
        return b->durable;
    d = wr__exch_find(t, b->dest);
    return d && (d->flags & WR__EXF_DURABLE);
}

typedef void (*bind_visit_t)(const wr__topo_t *t, const wr__bind_t *b, void *arg);

static void each_bind(const wr__topo_t *t, bind_visit_t visit, void *arg)
{
    for (size_t i = 0; i < t->exchs.cap; i++) {
        const wr__exch_t *e = t->exchs.e[i].val;
        if (!e || !e->nbind)
            continue;
        for (size_t j = 0; j < e->bykey.cap; j++) {
            const wr__keychain_t *c = e->bykey.e[j].val;
            for (const wr__bind_t *b = c ? c->head : NULL; b; b = b->next)
                visit(t, b, arg);
        }
        for (const wr__bind_t *b = e->list; b; b = b->next)
            visit(t, b, arg);
    }
}

static void count_bind(const wr__topo_t *t, const wr__bind_t *b, void *arg)
{
    if (bind_durable(t, b))
        (*(size_t *)arg)++;
}

static void pack_bind(const wr__topo_t *t, const wr__bind_t *b, void *arg)
{
    msgpack_packer *pk = arg;

    if (!bind_durable(t, b))
        return;
    msgpack_pack_array(pk, 6);
    pack_slice(pk, (wr_slice_t){b->src->name, b->src->nlen});
    msgpack_pack_int(pk, b->to_exch);
    pack_slice(pk, b->dest);
    pack_slice(pk, b->key);
    msgpack_pack_uint8(pk, b->hmode);
    pack_args(pk, b->args, b->nargs);
}

/* Packs t's durable part; returns false if there is none. */
static bool pack_topo(msgpack_sbuffer *sb, const wr__topo_t *t)
{
    msgpack_packer pk;
    size_t nex = 0, nb = 0;

    for (size_t i = 0; i < t->exchs.cap; i++)
        if (t->exchs.e[i].val && exch_durable(t->exchs.e[i].val))
            nex++;
    each_bind(t, count_bind, &nb);
    if (!nex && !nb)
        return false;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint32(&pk, REC_V1);
    msgpack_pack_array(&pk, nex);
    for (size_t i = 0; i < t->exchs.cap; i++) {
        const wr__exch_t *e = t->exchs.e[i].val;
        if (!e || !exch_durable(e))
            continue;
        msgpack_pack_array(&pk, (e->flags & WR__EXF_ALT) ? 4 : 3);
        pack_slice(&pk, (wr_slice_t){e->name, e->nlen});
        msgpack_pack_uint8(&pk, e->type);
        msgpack_pack_uint8(&pk, e->flags & (WR__EXF_DURABLE | WR__EXF_AUTO_DELETE |
                                            WR__EXF_INTERNAL));
        if (e->flags & WR__EXF_ALT)
            pack_slice(&pk, e->alt);
    }
    msgpack_pack_array(&pk, nb);
    each_bind(t, pack_bind, &pk);
    return true;
}

static void tstore_free(tstore_t *ts)
{
    msgpack_sbuffer_destroy(&ts->sb);
    free(ts->key);
    free(ts);
}

static void on_stored_task(void *arg)
{
    tstore_t *ts = arg;
    wr__req_t *r = ts->r;

    if (ts->err != WR_OK) {
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "topology write failed: %s", wr_strerror(ts->err));
        if (r->out.count.err == WR_OK)
            r->out.count.err = ts->err == WR_ENOSPACE ? WR_ENOSPACE : WR_EIO;
    }
    tstore_free(ts);
    wr__topo_replica_done(r);
}

/* May run on any thread: only post (to the home shard). */
static void on_stored(void *arg, wr_err_t err)
{
    tstore_t *ts = arg;

    ts->err = err;
    wr_loop_post(ts->r->core->shards[ts->r->shard].loop, on_stored_task, ts);
}

bool wr__topo_store(wr__shard_t *sh, wr__topo_t *t, wr__req_t *r)
{
    wr_store_t *st = sh->core->store;
    tstore_t *ts;
    wr_store_op_t op;
    bool some;
    wr_err_t err;

    if (!st)
        return false;
    ts = wr__xcalloc(1, sizeof(*ts));
    msgpack_sbuffer_init(&ts->sb);
    some = pack_topo(&ts->sb, t);
    if (!some && !t->stored) {
        tstore_free(ts);
        return false;
    }
    ts->r = r;
    ts->key = wr__xmalloc(1 + t->tlen);
    ts->key[0] = 'T';
    memcpy(ts->key + 1, t->tenant, t->tlen);
    op = (wr_store_op_t){.kind = some ? WR_STORE_PUT_META : WR_STORE_DEL_META,
                         .key = {ts->key, 1 + t->tlen},
                         .val = {ts->sb.data, ts->sb.size}};
    err = wr_store_write_batch(st, &op, 1, WR_DUR_SYNC, on_stored, ts);
    if (err != WR_OK) {
        wr_log(WR_LOG_WARN, WR_LOGC_STORE, "topology write failed: %s", wr_strerror(err));
        if (r->out.count.err == WR_OK)
            r->out.count.err = err == WR_ENOSPACE ? WR_ENOSPACE : WR_EIO;
        tstore_free(ts);
        return false;
    }
    t->stored = some;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Reading back (before the shards start)                                   */

static bool bin_of(const msgpack_object *o, wr_slice_t *out)
{
    return wr__rec_bin(o, false, out, NULL);
}

static bool parse_args(const msgpack_object *o, wr_header_t *h, size_t *n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > WR_HEADERS_MAX)
        return false;
    *n = o->via.array.size;
    for (size_t i = 0; i < *n; i++) {
        const msgpack_object *a = &o->via.array.ptr[i], *v;
        uint64_t kind;
        if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size < 3 ||
            !bin_of(&a->via.array.ptr[0], &h[i].key) || !wr__rec_u64(&a->via.array.ptr[1], &kind))
            return false;
        v = &a->via.array.ptr[2];
        h[i].kind = (wr_hdr_kind_t)kind;
        switch (kind) {
        case WR_HDR_STR:
        case WR_HDR_OTHER:
            if (!bin_of(v, &h[i].v.s))
                return false;
            break;
        case WR_HDR_INT:
            if (!wr__rec_i64(v, &h[i].v.i))
                return false;
            break;
        case WR_HDR_FLOAT:
            if (v->type != MSGPACK_OBJECT_FLOAT64 && v->type != MSGPACK_OBJECT_FLOAT32)
                return false;
            h[i].v.f = v->via.f64;
            break;
        case WR_HDR_BOOL:
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                return false;
            h[i].v.b = v->via.boolean;
            break;
        case WR_HDR_VOID:
            if (v->type != MSGPACK_OBJECT_NIL)
                return false;
            break;
        default:
            return false;
        }
    }
    return true;
}

typedef struct rctx {
    wr_core_t *core;
    msgpack_unpacked u;
    wr__req_t *r; /* scratch change request for wr__topo_add_bind */
    size_t exchanges, bindings, dropped;
    wr_err_t err;
} rctx_t;

static bool queue_exists(wr_core_t *core, wr_slice_t tenant, wr_slice_t name)
{
    uint64_t hash = wr__hash_name(tenant, name);
    char key[2 * WR_NAME_MAX + 2];
    wr__shard_t *sh = &core->shards[wr__shard_of_hash(core, hash)];

    if (tenant.len > WR_NAME_MAX || name.len > WR_NAME_MAX)
        return false;
    memcpy(key, tenant.ptr, tenant.len);
    key[tenant.len] = '\0';
    memcpy(key + tenant.len + 1, name.ptr, name.len);
    return wr__queue_find(sh, hash, key, tenant.len + 1 + name.len) != NULL;
}

static bool restore_exch(rctx_t *c, wr_slice_t tenant, const msgpack_object *o)
{
    wr_slice_t name, alt;
    uint64_t type, flags;
    bool has_alt = o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size >= 4;

    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3 ||
        !bin_of(&o->via.array.ptr[0], &name) || name.len > WR_NAME_MAX ||
        !wr__rec_u64(&o->via.array.ptr[1], &type) || type > WR__EX_HEADERS ||
        !wr__rec_u64(&o->via.array.ptr[2], &flags) || flags > 0xff ||
        (has_alt && (!bin_of(&o->via.array.ptr[3], &alt) || alt.len > WR_NAME_MAX)))
        return false;
    for (unsigned i = 0; i < c->core->nshards; i++) {
        wr__topo_t *t = wr__topo_get(&c->core->shards[i], tenant.ptr, tenant.len);
        if (!wr__exch_find(t, name))
            wr__exch_new(t, name, (uint8_t)type, (uint8_t)flags, has_alt ? &alt : NULL);
        t->stored = true;
    }
    c->exchanges++;
    return true;
}

static bool restore_bind(rctx_t *c, wr_slice_t tenant, const msgpack_object *o)
{
    wr_header_t args[WR_HEADERS_MAX];
    wr__req_t *r = c->r;
    const msgpack_object *f = o->via.array.ptr;
    wr_slice_t src, dest, key;
    uint64_t to_exch, hmode;
    size_t nargs = 0;

    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 6 || !bin_of(&f[0], &src) ||
        !wr__rec_u64(&f[1], &to_exch) || to_exch > 1 || !bin_of(&f[2], &dest) ||
        !bin_of(&f[3], &key) || !wr__rec_u64(&f[4], &hmode) || hmode > 0xff ||
        !parse_args(&f[5], args, &nargs) || src.len > WR_NAME_MAX || dest.len > WR_NAME_MAX ||
        key.len > WR_NAME_MAX)
        return false;
    /* A queue deleted after the record was written, before its rewrite. */
    if (!to_exch && !queue_exists(c->core, tenant, dest)) {
        c->dropped++;
        return true;
    }
    r->in.topo.to_exch = to_exch;
    r->in.topo.dest = dest;
    r->in.topo.key = key;
    r->in.topo.hmode = (uint8_t)hmode;
    r->in.topo.args = nargs ? args : NULL;
    r->in.topo.nargs = nargs;
    r->in.topo.dest_durable = true;
    r->in.topo.dhash = to_exch ? wr__hash_key(dest.ptr, dest.len) : wr__hash_name(tenant, dest);
    if (wr__split_words(key, (wr_slice_t[WR__WORDS_MAX]){{0}}) < 0)
        return false;
    for (unsigned i = 0; i < c->core->nshards; i++) {
        wr__topo_t *t = wr__topo_get(&c->core->shards[i], tenant.ptr, tenant.len);
        wr__exch_t *e = wr__exch_find(t, src);
        if (!e || (to_exch && !wr__exch_find(t, dest))) {
            c->dropped++;
            return true;
        }
        wr__topo_add_bind(e, r);
    }
    c->bindings++;
    return true;
}

static int visit_topo(void *arg, wr_bytes_t key, wr_bytes_t val)
{
    rctx_t *c = arg;
    wr_slice_t tenant = {(const char *)key.ptr + 1, key.len - 1};
    const msgpack_object *f = wr__rec_open(&c->u, val, 3);

    if (!f || tenant.len == 0 || tenant.len > WR_NAME_MAX ||
        f[1].type != MSGPACK_OBJECT_ARRAY || f[2].type != MSGPACK_OBJECT_ARRAY)
        goto bad;
    for (uint32_t i = 0; i < f[1].via.array.size; i++)
        if (!restore_exch(c, tenant, &f[1].via.array.ptr[i]))
            goto bad;
    for (uint32_t i = 0; i < f[2].via.array.size; i++)
        if (!restore_bind(c, tenant, &f[2].via.array.ptr[i]))
            goto bad;
    /* The tenant's exchange count for metrics (topology.c keeps it after). */
    atomic_store_explicit(&wr__tenant_of(c->core, tenant)->exchs, (int64_t)f[1].via.array.size,
                          memory_order_relaxed);
    return 0;
bad:
    wr_log(WR_LOG_ERROR, WR_LOGC_STORE, "unreadable topology record of tenant '%.*s'",
           (int)WR__MIN(tenant.len, (size_t)WR_NAME_MAX), (const char *)tenant.ptr);
    c->err = WR_EPROTO;
    return 1;
}

wr_err_t wr__topo_recover(wr_core_t *core)
{
    rctx_t c = {.core = core, .err = WR_OK};
    wr_err_t err;

    msgpack_unpacked_init(&c.u);
    c.r = wr__xcalloc(1, sizeof(*c.r));
    err = wr_store_meta_scan(core->store, (wr_bytes_t){"T", 1}, visit_topo, &c);
    msgpack_unpacked_destroy(&c.u);
    free(c.r);
    if (err == WR_OK)
        err = c.err;
    if (err == WR_OK && (c.exchanges || c.bindings))
        wr_log(WR_LOG_INFO, WR_LOGC_STORE,
               "recovered %zu exchanges and %zu bindings (%zu dropped: their queue is gone)",
               c.exchanges, c.bindings, c.dropped);
    return err;
}
