/*
 * map.c - allocation helpers, hashing, and the one hash table of the core.
 *
 * Layout: x-alloc helpers; FNV-1a + a 64-bit finalizer; the map (open
 * addressing, linear probing, backward-shift deletion so there are no
 * tombstones to rehash away). Shards keep queues and parked long-polls in
 * it keyed by "tenant\0queue"; queues keep claims keyed by the 8 id bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

void *wr__xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        wr_log(WR_LOG_ERROR, WR_LOGC_CORE, "out of memory: malloc(%zu)", n);
        wr_panic(__FILE__, __LINE__, "out of memory");
    }
    return p;
}

void *wr__xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        wr_log(WR_LOG_ERROR, WR_LOGC_CORE, "out of memory: calloc(%zu, %zu)", n, size);
        wr_panic(__FILE__, __LINE__, "out of memory");
    }
    return p;
}

void *wr__xrealloc(void *p, size_t n)
{
    void *np = realloc(p, n ? n : 1);
    if (!np) {
        wr_log(WR_LOG_ERROR, WR_LOGC_CORE, "out of memory: realloc(%zu)", n);
        wr_panic(__FILE__, __LINE__, "out of memory");
    }
    return np;
}

/* murmur3's fmix64: FNV-1a alone mixes the high bits poorly for short keys,
 * and the shard is chosen from the high bits. */
static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t wr__hash_key(const void *key, size_t klen)
{
    return fmix64(fnv1a(FNV_OFFSET, key, klen));
}

uint64_t wr__hash_name(wr_slice_t tenant, wr_slice_t queue)
{
    static const unsigned char zero = 0;
    uint64_t h = fnv1a(FNV_OFFSET, tenant.ptr, tenant.len);

    h = fnv1a(h, &zero, 1);
    return fmix64(fnv1a(h, queue.ptr, queue.len));
}

uint64_t wr__hash_u64(uint64_t x)
{
    return fmix64(x);
}

void wr__map_fini(wr__map_t *m)
{
    free(m->e);
    m->e = NULL;
    m->cap = m->len = 0;
}

static bool ent_eq(const wr__map_ent_t *e, uint64_t hash, const void *key, size_t klen)
{
    return e->val && e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0;
}

void *wr__map_get(const wr__map_t *m, uint64_t hash, const void *key, size_t klen)
{
    if (!m->cap)
        return NULL;
    for (size_t i = hash & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const wr__map_ent_t *e = &m->e[i];
        if (!e->val)
            return NULL;
        if (ent_eq(e, hash, key, klen))
            return e->val;
    }
}

static void put_raw(wr__map_ent_t *tab, size_t cap, const wr__map_ent_t *ent)
{
    size_t i = ent->hash & (cap - 1);
    while (tab[i].val)
        i = (i + 1) & (cap - 1);
    tab[i] = *ent;
}

void wr__map_put(wr__map_t *m, uint64_t hash, const void *key, size_t klen, void *val)
{
    wr__map_ent_t ent = {hash, key, klen, val};

    /* Keep the load under 3/4 so probe runs stay short. */
    if ((m->len + 1) * 4 > m->cap * 3) {
        size_t ncap = m->cap ? m->cap * 2 : 16;
        wr__map_ent_t *ne = wr__xcalloc(ncap, sizeof(*ne));
        for (size_t i = 0; i < m->cap; i++)
            if (m->e[i].val)
                put_raw(ne, ncap, &m->e[i]);
        free(m->e);
        m->e = ne;
        m->cap = ncap;
    }
    put_raw(m->e, m->cap, &ent);
    m->len++;
}

void *wr__map_del(wr__map_t *m, uint64_t hash, const void *key, size_t klen)
{
    size_t mask = m->cap - 1, i, j;
    void *val;

    if (!m->cap)
        return NULL;
    for (i = hash & mask;; i = (i + 1) & mask) {
        if (!m->e[i].val)
            return NULL;
        if (ent_eq(&m->e[i], hash, key, klen))
            break;
    }
    val = m->e[i].val;
    /* Backward shift: pull later entries of the run into the hole when
     * their home bucket is not in (hole, j]. */
    for (j = (i + 1) & mask; m->e[j].val; j = (j + 1) & mask) {
        size_t home = m->e[j].hash & mask;
        bool between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!between) {
            m->e[i] = m->e[j];
            i = j;
        }
    }
    m->e[i] = (wr__map_ent_t){0};
    m->len--;
    return val;
}
