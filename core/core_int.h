/*
 * core_int.h - private types of the queue core, shared by the core sources only.
 *
 * Front ends never include this: their door is wr.h. Layout:
 *   allocation helpers, hashing and the byte-keyed map (map.c)
 *   messages and the ordered message index (index.c)
 *   claims and long-poll wait lists (claim.c)
 *   queues (queue.c, message.c), shards (shard.c), the core (core.c)
 *   requests: one heap block per API call (api.c, core.c, gather.c)
 *   the store hook (persist.c), stored records (record.c), start-up
 *   recovery (recover.c)
 *
 * Threading rule: a wr__queue_t, its messages and claims, and everything in
 * a wr__shard_t except the loop pointer belong to that shard's thread. A
 * wr__req_t is handed over whole: the caller's thread fills it, the shard
 * executes it, the reply loop runs the callback and frees it.
 */
#ifndef WR_CORE_INT_H
#define WR_CORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "../backends/backend.h"
#include "log.h"
#include "quota.h"
#include "wr.h"

struct event;

typedef struct wr__shard wr__shard_t;
typedef struct wr__queue wr__queue_t;
typedef struct wr__mrec wr__mrec_t;

/* ------------------------------------------------------------------------ */
/* Allocation: running out of memory aborts with a log line (map.c).        */

void *wr__xmalloc(size_t n);
void *wr__xcalloc(size_t n, size_t size);
void *wr__xrealloc(void *p, size_t n);

#define WR__MIN(a, b) ((a) < (b) ? (a) : (b))
#define WR__MAX(a, b) ((a) > (b) ? (a) : (b))

/* Longest duration the core accepts (TTL, delay, grace): ~139 years, small
 * enough that now + ttl + grace can never overflow an int64_t. */
#define WR__MAX_DURATION_MS ((int64_t)1 << 42)

/* Built-in limits (wr_core_cfg_t fields left 0). */
#define WR__DEF_MAX_MESSAGE_BYTES (256u * 1024u)
#define WR__DEF_MAX_CLAIM_MESSAGES 1000u
#define WR__DEF_MAX_CLAIM_WAIT_MS 20000u
#define WR__LIST_MAX 1000u

/* ------------------------------------------------------------------------ */
/* Hashing and the map (map.c)                                              */

/* Hash of tenant '\0' queue. The shard is taken from the high bits and map
 * buckets from the low bits, so one shard's tables are not half empty. */
uint64_t wr__hash_key(const void *key, size_t klen);
/* The same hash as wr__hash_key over tenant '\0' queue, without the copy. */
uint64_t wr__hash_name(wr_slice_t tenant, wr_slice_t queue);
uint64_t wr__hash_u64(uint64_t x);

/*
 * Open addressing with linear probing and backward-shift deletion. The map
 * does not own keys: each key points into its value, which outlives the
 * entry. Iterate with `for (i = 0; i < m->cap; i++) if (m->e[i].val)`, but
 * never delete while iterating.
 */
typedef struct wr__map_ent {
    uint64_t hash;
    const void *key;
    size_t klen;
    void *val;
} wr__map_ent_t;

typedef struct wr__map {
    wr__map_ent_t *e;
    size_t cap, len; /* cap: 0 or a power of two */
} wr__map_t;

void wr__map_fini(wr__map_t *m);
void *wr__map_get(const wr__map_t *m, uint64_t hash, const void *key, size_t klen);
/* The key must not be present. */
void wr__map_put(wr__map_t *m, uint64_t hash, const void *key, size_t klen, void *val);
/* Returns the removed value or NULL. */
void *wr__map_del(wr__map_t *m, uint64_t hash, const void *key, size_t klen);

/* ------------------------------------------------------------------------ */
/* Tenants: quota values and counters (quota.c)                             */

/* A tenant's messages and body bytes on one shard: written only by that
 * shard's thread (relaxed load + store, no locked instruction), read by
 * the tenant-wide quota check from any thread. One cache line each. */
typedef struct wr__tcount {
    _Alignas(64) _Atomic int64_t msgs;
    _Atomic int64_t bytes;
} wr__tcount_t;

struct wr_tenant {
    /* Read-mostly: the quota values and the registry generation they were
     * read at (0: never read). */
    _Atomic uint64_t gen;
    _Atomic bool limited; /* some value is set */
    _Atomic uint64_t lim[WR_QUOTA_NKEYS];
    _Atomic int last;     /* wr_tenant_last_refusal */
    wr_core_t *core;
    uint64_t hash;
    pthread_mutex_t refresh_mu;
    wr__tcount_t *cnt; /* one per shard */
    /* Counted by many threads (rare events). */
    _Alignas(64) _Atomic int64_t queues, conns, chans;
    /* Declared exchanges: set by the tenant's home shard after each
     * topology change (it alone changes them), for metrics. */
    _Atomic int64_t exchs;
    /* The publish-rate bucket, under a spinlock. */
    _Alignas(64) atomic_flag tb_lock;
    wr_tbucket_t tb;
    size_t nlen;
    char name[];
};
typedef struct wr_tenant wr__tenant_t;

/* The tenant table of a core. */
typedef struct wr__tenants {
    pthread_rwlock_t lk;
    wr__map_t map; /* name -> wr__tenant_t, never removed before the core goes */
} wr__tenants_t;

void wr__tenants_init(wr_core_t *core);
void wr__tenants_fini(wr_core_t *core);
/* The tenant (made if new) with fresh quota values. */
wr__tenant_t *wr__tenant_of(wr_core_t *core, wr_slice_t tenant);
/* Re-reads the quota values if the registry changed; cheap when not. */
void wr__tenant_refresh(wr__tenant_t *t);
/* Records the quota behind a refusal; returns err. */
wr_err_t wr__quota_refuse(wr__tenant_t *t, int key, wr_err_t err);
/* The checks of a publish call, before anything is posted: message size,
 * tenant-wide messages and bytes, then the rate (tokens are taken only
 * when everything else passed). */
wr_err_t wr__quota_publish(wr__tenant_t *t, const wr_msg_in_t *msgs, size_t n);
/* Queue creation: takes a place under max-queues (WR_ELIMIT if none);
 * wr__queue_new counts the queue itself, so give the place back after. */
wr_err_t wr__quota_queue_take(wr__tenant_t *t);
void wr__quota_queue_give(wr__tenant_t *t);
/* max-queue-messages / max-queue-bytes for n more messages of `bytes` on q
 * (true: they fit, or no such quota). */
bool wr__quota_queue_fits(const wr__queue_t *q, size_t n, uint64_t bytes);
/* max-exchanges: may a tenant with `have` declared exchanges add one? */
wr_err_t wr__quota_exchange(wr_core_t *core, wr_slice_t tenant, size_t have);

/* ------------------------------------------------------------------------ */
/* Messages and the message index (index.c)                                 */

typedef struct wr__claim wr__claim_t;

#define WR__MSG_PERSISTENT 0x01u
#define WR__MSG_REDELIVERED 0x02u
#define WR__MSG_PURGED 0x04u /* purged while claimed: remove when the claim ends */
#define WR__MSG_ROUTE 0x08u  /* `route` is set (not `producer`) */
#define WR__MSG_MARKED 0x10u /* its delivery mark is in the store (persist.c) */
/* Bits 8..15 of flags: the priority (as capped by the queue). */
#define WR__MSG_PRIO_SHIFT 8
#define WR__MSG_PRIO(m) ((uint8_t)((m)->flags >> WR__MSG_PRIO_SHIFT))

/* Layout bits (16..19 of flags): which parts follow the fixed header. Set
 * when the message is made and never changed (body.c frees an inline
 * message from its body). */
#define WR__MSG_INLINE 0x10000u /* the wr_body_t follows the header */
#define WR__MSG_TTL 0x20000u    /* words: ttl_ms, expires_ms */
#define WR__MSG_DELAY 0x40000u  /* word: visible_ms (else = enqueued_ms) */
#define WR__MSG_ORIGIN 0x80000u /* word: producer, or route (WR__MSG_ROUTE) */
#define WR__MSG_LAYOUT (WR__MSG_INLINE | WR__MSG_TTL | WR__MSG_DELAY | WR__MSG_ORIGIN)

/*
 * A message is one block: this 32-byte header, then (WR__MSG_INLINE) its
 * wr_body_t with properties and body, padded to 8, then only the words its
 * layout bits ask for, in this order:
 *   body pointer    when not inline: a large body, or one shared by several
 *                   queues (a fanout keeps one copy)
 *   ttl_ms, expires_ms   WR__MSG_TTL; else ttl 0 and expires INT64_MAX
 *                   (never; claims only ever raise an expiry, so it stays)
 *   visible_ms      WR__MSG_DELAY; else enqueued_ms
 *   producer/route  WR__MSG_ORIGIN; else 0/NULL (NULL route = the default
 *                   exchange with the queue's name)
 * A 100-byte AMQP message with no TTL, delay or exchange is 32 + 12 + 4 +
 * 100 = 148 bytes (jemalloc class 160), with its 16-byte index slot 176
 * bytes; it was 224 as a 72-byte header plus a separate body.
 *
 * An inline body's reference count has WR__BODY_IN_MSG set: the last
 * wr_body_unref frees the whole block, so a delivery holding the body
 * keeps the block (not the queue's message, which is gone) alive. Read the
 * parts with the accessors below; free with wr__msg_free.
 */
typedef struct wr__msg {
    uint64_t id;
    int64_t enqueued_ms;
    wr__claim_t *claim; /* last claim taken; live only while claim->expires_ms > now */
    uint32_t claim_count;
    uint32_t flags;
} wr__msg_t;
_Static_assert(sizeof(wr__msg_t) == 32, "keep messages small: see the size budget above");

/* In a body's refs: the body lives inside a message block (see above). */
#define WR__BODY_IN_MSG 0x80000000u
/* ... and wr_body_json's verdict. The count below them has 29 bits. */
#define WR__BODY_JSON_YES 0x40000000u
#define WR__BODY_JSON_NO 0x20000000u
#define WR__BODY_MARKS (WR__BODY_IN_MSG | WR__BODY_JSON_YES | WR__BODY_JSON_NO)
/* Bodies this size or smaller (with properties) are copied into the
 * message of a queue that is their only holder: one allocation instead of
 * two, no separate header and pointer. */
#define WR__MSG_INLINE_MAX 384u

static inline wr_body_t *wr__msg_body(const wr__msg_t *m)
{
    return (m->flags & WR__MSG_INLINE) ? (wr_body_t *)(void *)(m + 1)
                                       : *(wr_body_t *const *)(const void *)(m + 1);
}

/* The first word after the body pointer or the inline body. */
static inline int64_t *wr__msg_words(const wr__msg_t *m)
{
    const char *p = (const char *)(m + 1);

    if (m->flags & WR__MSG_INLINE) {
        const wr_body_t *b = (const wr_body_t *)(const void *)p;
        p += (sizeof(*b) + b->props_len + b->body_len + 7) & ~(size_t)7;
    } else {
        p += sizeof(wr_body_t *);
    }
    return (int64_t *)(uintptr_t)p;
}

static inline int64_t wr__msg_ttl(const wr__msg_t *m)
{
    return (m->flags & WR__MSG_TTL) ? wr__msg_words(m)[0] : 0;
}

static inline int64_t wr__msg_expires(const wr__msg_t *m)
{
    return (m->flags & WR__MSG_TTL) ? wr__msg_words(m)[1] : INT64_MAX;
}

/* Without a TTL the expiry is INT64_MAX and stays so: claims only raise
 * it, and a held claim sets it to INT64_MAX. */
static inline void wr__msg_set_expires(wr__msg_t *m, int64_t expires_ms)
{
    if (m->flags & WR__MSG_TTL)
        wr__msg_words(m)[1] = expires_ms;
}

/* The expiry it was published with. */
static inline int64_t wr__msg_orig_expires(const wr__msg_t *m)
{
    return (m->flags & WR__MSG_TTL) ? m->enqueued_ms + wr__msg_words(m)[0] : INT64_MAX;
}

static inline int64_t wr__msg_visible(const wr__msg_t *m)
{
    return (m->flags & WR__MSG_DELAY) ? wr__msg_words(m)[(m->flags & WR__MSG_TTL) ? 2 : 0]
                                      : m->enqueued_ms;
}

static inline uint64_t wr__msg_origin(const wr__msg_t *m)
{
    if (!(m->flags & WR__MSG_ORIGIN))
        return 0;
    return (uint64_t)wr__msg_words(
        m)[((m->flags & WR__MSG_TTL) ? 2 : 0) + ((m->flags & WR__MSG_DELAY) ? 1 : 0)];
}

/* The producer of a message published with wr_publish (0 for routed ones). */
static inline uint64_t wr__msg_producer(const wr__msg_t *m)
{
    return (m->flags & WR__MSG_ROUTE) ? 0 : wr__msg_origin(m);
}

/* Frees a message the queue no longer holds: its references, its block. */
void wr__msg_free(wr__msg_t *m);

typedef struct wr__slot {
    uint64_t id; /* kept in tombstones too, so binary search still works */
    wr__msg_t *m; /* NULL: tombstone */
} wr__slot_t;

/*
 * Slots ordered by id. Positions are absolute (uint64_t, never wrapping in
 * practice): removing a head slot moves `base` but leaves the position of
 * every other slot unchanged, so a scan may remove what it visits. Only
 * wr__ix_tidy (compaction) renumbers; call it between scans.
 *
 * Up to WR__IX_BLOCK slots live in one ring that doubles as it fills (a
 * queue of a few messages costs a few slots). Past that, in fixed blocks
 * found through a directory (`dir`, itself a ring by block number), so a
 * queue growing to millions never copies its slots: a whole copy of a
 * ring of 2M slots held its shard for 100 ms.
 */
#define WR__IX_SHIFT 12
#define WR__IX_BLOCK (1u << WR__IX_SHIFT) /* slots: 64 KiB */

typedef struct wr__index {
    wr__slot_t *ring;  /* ring mode: cap slots (NULL when empty) */
    wr__slot_t **dir;  /* block mode (ring NULL): dmask + 1 entries */
    uint64_t base;     /* position of the first slot */
    size_t cap;        /* ring mode: 0 or a power of two */
    uint64_t dmask;    /* block mode: directory size - 1 */
    size_t len;        /* slots in use, tombstones included */
    size_t live;       /* messages */
} wr__index_t;

static inline wr__slot_t *wr__ix_slot(const wr__index_t *ix, uint64_t pos)
{
    if (!ix->dir)
        return &ix->ring[pos & (ix->cap - 1)];
    return &ix->dir[(pos >> WR__IX_SHIFT) & ix->dmask][pos & (WR__IX_BLOCK - 1)];
}
static inline uint64_t wr__ix_end(const wr__index_t *ix)
{
    return ix->base + ix->len;
}
/* First position whose id >= id (may be wr__ix_end). */
uint64_t wr__ix_lower_bound(const wr__index_t *ix, uint64_t id);
/* The first live position >= pos, or wr__ix_end. */
uint64_t wr__ix_next(const wr__index_t *ix, uint64_t pos);
/* The live message with this id, or NULL; *pos_out set when found. */
wr__msg_t *wr__ix_find(const wr__index_t *ix, uint64_t id, uint64_t *pos_out /* OUT */);
/* m->id must be greater than every id in the index. */
void wr__ix_append(wr__index_t *ix, wr__msg_t *m);
/* Turns the slot into a tombstone; trims tombstones at both ends. */
void wr__ix_clear(wr__index_t *ix, uint64_t pos);
/* Compacts when tombstones outnumber messages, shrinks when mostly empty. */
void wr__ix_tidy(wr__index_t *ix);
void wr__ix_fini(wr__index_t *ix);

/* ------------------------------------------------------------------------ */
/* Claims and wait lists (claim.c)                                          */

/* Claim kinds. A timed claim ends when its TTL passes; a held one lasts
 * until its messages are acked or released (expires_ms = INT64_MAX, and its
 * messages do not expire while held). */
#define WR__CLAIM_TIMED 0
#define WR__CLAIM_HOLD 1 /* owner_hold claims, and a subscription's once it ended */
#define WR__CLAIM_SUB 2  /* a subscription's deliveries */

typedef struct wr__sub wr__sub_t;

struct wr__claim {
    uint64_t id;
    int64_t created_ms; /* age restarts on renew */
    int64_t ttl_ms;
    int64_t expires_ms;
    uint32_t n;     /* ids taken; some may since be deleted or re-claimed */
    uint32_t cap;   /* held claims grow (and compact) their ids */
    uint32_t held;  /* held claims: messages under it now */
    uint8_t kind;
    uint64_t owner; /* held claims: released by wr_owner_gone(owner) */
    wr__sub_t *sub; /* WR__CLAIM_SUB */
    uint64_t *ids;  /* in the order taken: inline_ids, or heap for held claims */
    uint64_t inline_ids[];
};

typedef struct wr__req wr__req_t;
typedef struct wr__parked wr__parked_t;

/* FIFO of parked long-poll claims, on a queue or on a not-yet-existing
 * queue's name (then `parked` is the map entry that holds it). */
typedef struct wr__waitlist {
    wr__req_t *head, *tail;
    uint32_t n;
    wr__parked_t *parked;
} wr__waitlist_t;

struct wr__parked {
    wr__waitlist_t wl;
    uint64_t hash;
    size_t klen;
    char key[]; /* tenant '\0' queue */
};

/* ------------------------------------------------------------------------ */
/* Queues (queue.c, message.c)                                              */

/* A priority queue's per-priority view: the same messages, one index per
 * level (the main index stays the one ordered by id). */
typedef struct wr__plevel {
    wr__index_t ix;
    uint64_t free_id; /* as wr__queue_t.free_id, for this level */
} wr__plevel_t;

typedef struct wr__queue {
    uint64_t hash;
    size_t klen, tlen; /* key = tenant '\0' name */
    wr_qid_t qid;      /* store key space */
    wr_queue_attrs_t attrs;
    wr_body_t *meta; /* immutable, shared with stat/list results; NULL = empty */
    int64_t created_ms;
    uint64_t next_id;
    uint64_t free_id; /* no claimable message has a smaller id */
    wr__index_t ix;
    wr__map_t claims; /* id -> wr__claim_t */
    wr__waitlist_t waiters;
    uint64_t bytes;    /* body bytes of live messages */
    uint64_t nclaimed; /* live messages with m->claim != NULL */
    /* Expiry bounds: nothing can expire / no claim can end before these. */
    int64_t min_exp, next_claim_exp;
    /* While exp_sorted, publish-time expiry (enqueued + ttl) never decreases
     * with id, so an expiry pass can stop at the first unexpired one. */
    int64_t last_orig_exp;
    bool exp_sorted;
    /* While vis_sorted, visible_ms never decreases with id: a claim scan may
     * stop at the first delayed message. max_visible_ms bounds them all. */
    bool vis_sorted;
    int64_t max_visible_ms;
    uint64_t published, delivered, acked, expired;
    wr__plevel_t *plv;      /* attrs.max_priority + 1 levels, or NULL */
    uint32_t nconsumers;
    bool had_consumer;      /* auto_delete: only after a first consumer */
    int64_t last_used_ms;   /* declare, claim, consumer leaving (expires_ms) */
    int64_t expire_at;      /* when it expires unused; INT64_MAX = not due */
    /* Subscriptions, highest priority first, then in order of arrival. */
    wr__sub_t *subs, *subs_tail;
    wr__sub_t *rr;          /* round robin: next to try in its priority */
    wr__map_t submap;       /* id -> wr__sub_t */
    bool excl_sub;          /* an exclusive consumer holds the queue */
    uint32_t nowned;        /* subscriptions and HOLD claims with an owner */
    wr__tenant_t *tn;       /* its tenant's quotas and counters */
    wr__tcount_t *tc;       /* ... this shard's counters of it */
    char key[];
} wr__queue_t;

static inline wr_slice_t wr__queue_name(const wr__queue_t *q)
{
    return (wr_slice_t){q->key + q->tlen + 1, q->klen - q->tlen - 1};
}

/* The message's claim if it is still live, else NULL. */
static inline wr__claim_t *wr__msg_claim(const wr__msg_t *m, int64_t now)
{
    return m->claim && m->claim->expires_ms > now ? m->claim : NULL;
}

/* Creates a queue (attrs NULL: defaults), takes the meta reference, inserts
 * it in the shard and adopts long-polls parked on its name. */
wr__queue_t *wr__queue_new(wr__shard_t *sh, const char *key, size_t klen, size_t tlen,
                           uint64_t hash, const wr_queue_attrs_t *attrs, wr_body_t *meta);
/* Removes it from the shard, completes its waiters with nothing, frees it. */
void wr__queue_destroy(wr__shard_t *sh, wr__queue_t *q);
/* A queue's end: its bindings go everywhere (then parent, if any, is
 * completed), and it is destroyed. */
void wr__queue_gone(wr__shard_t *sh, wr__queue_t *q, wr__req_t *parent);
/* May `owner` use q? (false: q is exclusive to another owner) */
bool wr__queue_owner_ok(const wr__queue_t *q, uint64_t owner);
/* Frees without completing anything (final teardown after the loops stop). */
void wr__queue_free(wr__queue_t *q);
wr__queue_t *wr__queue_find(wr__shard_t *sh, uint64_t hash, const char *key, size_t klen);
/* Wall clock in us: where message ids of a new or recovered queue start, so
 * an id is never handed out twice across deletes and restarts. */
uint64_t wr__clock_id(void);
/* Ends expired claims and removes expired messages; cheap when nothing is
 * due. Every operation on a queue starts with it. */
void wr__queue_tick(wr__shard_t *sh, wr__queue_t *q, int64_t now);
/* Unlinks and frees the message at pos (store delete queued if persistent). */
void wr__queue_remove(wr__shard_t *sh, wr__queue_t *q, uint64_t pos);
/* Removes an expired message (counted; dead-lettered if the queue says so). */
void wr__queue_expire_msg(wr__shard_t *sh, wr__queue_t *q, uint64_t pos);
/* Removes a rejected message (dead-lettered if the queue says so). */
void wr__queue_reject_msg(wr__shard_t *sh, wr__queue_t *q, uint64_t pos);
/* Appends a new message (m->id above every id of q). */
void wr__queue_append(wr__queue_t *q, wr__msg_t *m);
/* A message became claimable again: the scans must look from it. */
void wr__queue_freed(wr__queue_t *q, const wr__msg_t *m);
/* wr__ix_tidy for the main index and the priority levels. */
void wr__queue_tidy(wr__queue_t *q);
/* Counts a use (declare, claim, consumer leaving) for expires_ms. */
void wr__queue_used(wr__shard_t *sh, wr__queue_t *q, int64_t now);
/* Deletes q now if auto_delete and its last consumer left. True if gone. */
bool wr__queue_check_unused(wr__shard_t *sh, wr__queue_t *q);
/* Ready messages: live, not claimed, visible. */
uint64_t wr__queue_ready(const wr__queue_t *q, int64_t now);
/* Messages not yet visible (a scan only while some may be delayed). */
uint64_t wr__queue_delayed(const wr__queue_t *q, int64_t now);
/* Lowers the shard's next sweep deadline to cover this queue's bounds. */
void wr__queue_note_due(wr__shard_t *sh, const wr__queue_t *q);
/* Keeps the sweep running while waiters may be served by a delay passing. */
void wr__queue_note_waiters(wr__shard_t *sh, const wr__queue_t *q, int64_t now);
/* Fills a view; takes a body reference the request drops after the cb. */
void wr__view_fill(wr_msg_view_t *v, const wr__msg_t *m, int64_t now);

/* claim.c */
/*
 * The claim scan: visits the claimable messages of q (visible, unclaimed,
 * unexpired), highest priority first, then oldest first, removing expired
 * ones on the way. The caller must take every message it is given (claim
 * it, or remove it with wr__scan_remove) before asking for the next: the
 * scan moves the free_id hints past it.
 */
typedef struct wr__scan {
    wr__index_t *ix;   /* NULL: done */
    uint64_t *free_id;
    int level;         /* priority level, or -1 for the main index */
    uint64_t pos;
    bool started, contiguous;
} wr__scan_t;
void wr__scan_start(wr__queue_t *q, wr__scan_t *s);
wr__msg_t *wr__scan_next(wr__shard_t *sh, wr__queue_t *q, wr__scan_t *s, int64_t now);
void wr__scan_remove(wr__shard_t *sh, wr__queue_t *q, wr__scan_t *s);

void wr__claims_expire(wr__shard_t *sh, wr__queue_t *q, int64_t now);
wr__claim_t *wr__claim_find(const wr__queue_t *q, uint64_t id);
/* A new held claim (kind HOLD or SUB) with this id, in q's claims. */
wr__claim_t *wr__claim_new_held(wr__queue_t *q, uint8_t kind, uint64_t id, uint64_t owner,
                                int64_t now);
/* Puts m (claimable) under the held claim c. */
void wr__claim_hold(wr__queue_t *q, wr__claim_t *c, wr__msg_t *m);
/* Gives m back to the queue (requeued, redelivered next time). m->claim
 * must be live. */
void wr__msg_unclaim(wr__queue_t *q, wr__msg_t *m);
/* Ends a claim: its messages become claimable again; frees it. Returns
 * the messages released. */
uint64_t wr__claim_end(wr__shard_t *sh, wr__queue_t *q, wr__claim_t *c);
/* Frees an empty HOLD claim (nothing left to ack or release). HOLD claims
 * with an owner count in q->nowned. */
void wr__claim_drop_if_empty(wr__queue_t *q, wr__claim_t *c);
void wr__claims_free(wr__queue_t *q);
/* Hands newly available messages to parked long-polls, oldest waiter first. */
void wr__serve_waiters(wr__shard_t *sh, wr__queue_t *q, int64_t now);
/* Completes every parked request of the list with what it can take now. */
void wr__waitlist_flush(wr__shard_t *sh, wr__waitlist_t *wl, wr__queue_t *q, int64_t now);
/* Moves the requests parked on q's name to q. */
void wr__waitlist_adopt(wr__shard_t *sh, wr__queue_t *q);

/* ------------------------------------------------------------------------ */
/* Exchanges, bindings and matching (exchange.c, topology.c)                */

typedef enum {
    WR__EX_DIRECT = 0,
    WR__EX_FANOUT,
    WR__EX_TOPIC,
    WR__EX_HEADERS,
} wr__ex_type_t;

#define WR__EXF_DURABLE 0x01u
#define WR__EXF_AUTO_DELETE 0x02u
#define WR__EXF_INTERNAL 0x04u
#define WR__EXF_BUILTIN 0x08u /* "" and amq.*: cannot be deleted */
#define WR__EXF_ALT 0x10u     /* has an alternate exchange (wr__exch_t.alt) */

/* Headers exchange match modes (from the binding's "x-match"). */
#define WR__HM_ANY 0x01u
#define WR__HM_WITH_X 0x02u

#define WR__WORDS_MAX 256 /* a 255-byte key has at most 128 words; patterns likewise */

typedef struct wr__exch wr__exch_t;

/* One binding, one allocation: the struct, then dest, key, the args array
 * and their bytes, and the topic words. */
typedef struct wr__bind {
    struct wr__bind *next; /* in the source's list (or the direct key chain) */
    wr__exch_t *src;
    bool to_exch;
    bool durable;    /* to a durable queue (exchanges: see the destination) */
    uint8_t hmode;   /* headers: WR__HM_* */
    uint16_t nwords; /* topic pattern words */
    uint32_t nargs;
    uint64_t dhash; /* queue: wr__hash_name(tenant, dest); exchange: its map hash */
    wr_slice_t dest, key;
    wr_header_t *args;
    wr_slice_t *words;
    _Alignas(max_align_t) unsigned char data[];
} wr__bind_t;

/* Direct exchanges index their bindings by routing key. */
typedef struct wr__keychain {
    wr__bind_t *head;
    size_t klen;
    char key[];
} wr__keychain_t;

struct wr__exch {
    uint64_t hash;
    uint8_t type, flags;
    uint32_t nbind;     /* bindings with this exchange as source */
    wr__bind_t *list;   /* fanout, topic, headers: every binding */
    wr__map_t bykey;    /* direct: key -> wr__keychain_t */
    wr_slice_t alt;     /* WR__EXF_ALT: its alternate exchange, after name[] */
    size_t nlen;
    char name[];
};

/* One tenant's exchanges, as replicated on one shard. */
typedef struct wr__topo {
    uint64_t hash;
    bool stored; /* the last record written holds something */
    size_t tlen;
    wr__map_t exchs; /* name -> wr__exch_t */
    char tenant[];
} wr__topo_t;

/* Topology changes (the replicated log entries). */
typedef enum {
    WR__TM_EX_DECLARE = 0,
    WR__TM_EX_DELETE,
    WR__TM_BIND,
    WR__TM_UNBIND,
    WR__TM_QUEUE_GONE,
    WR__TM_TENANT_DROP, /* every exchange and binding of the tenant, and its record */
} wr__tm_kind_t;

/* exchange.c */
/* Parses "direct" .. "headers"; false if unknown. */
bool wr__ex_type_parse(wr_slice_t s, wr__ex_type_t *out /* OUT */);
/* Splits a key on '.' into at most WR__WORDS_MAX words (RabbitMQ: "" is
 * zero words, "a." is "a" and ""). Returns the count, or -1 if too many. */
int wr__split_words(wr_slice_t key, wr_slice_t *words /* OUT */);
/* Topic match: '*' one word, '#' zero or more. */
bool wr__topic_match(const wr_slice_t *pat, size_t np, const wr_slice_t *key, size_t nk);
/* Parses the x-match mode of binding args into *mode; false if invalid. */
bool wr__headers_mode(const wr_header_t *args, size_t nargs, uint8_t *mode /* OUT */);
/* Headers match of binding args (mode) against message headers. */
bool wr__headers_match(const wr_header_t *args, size_t nargs, uint8_t mode,
                       const wr_header_t *hdrs, size_t nh);
bool wr__header_eq(const wr_header_t *a, const wr_header_t *b);
/* Bytes a deep copy of the headers needs (array + keys + values). */
size_t wr__headers_size(const wr_header_t *h, size_t n);
/* Deep-copies into buf (aligned for wr_header_t); returns the copy. */
wr_header_t *wr__headers_copy(void *buf, const wr_header_t *h, size_t n);

/* topology.c */
/* The tenant's replica on this shard, made (with the built-ins) if new. */
wr__topo_t *wr__topo_get(wr__shard_t *sh, const char *tenant, size_t tlen);
/* Adds an exchange to one replica (the name is copied). */
/* alt: the alternate exchange (RabbitMQ's "alternate-exchange"), or NULL;
 * it sets WR__EXF_ALT. */
wr__exch_t *wr__exch_new(wr__topo_t *t, wr_slice_t name, uint8_t type, uint8_t flags,
                         const wr_slice_t *alt);
/* Adds a binding built from a change request's fields to e (restore). */
void wr__topo_add_bind(wr__exch_t *e, const wr__req_t *r);
/* One replica (or the store write) of a change is done. */
void wr__topo_replica_done(wr__req_t *r);
wr__topo_t *wr__topo_find(const wr__shard_t *sh, const char *tenant, size_t tlen);
wr__exch_t *wr__exch_find(const wr__topo_t *t, wr_slice_t name);
/* True if name is "" or one of the amq.* exchanges every tenant has. */
bool wr__builtin_exchange(wr_slice_t name, wr__ex_type_t *type /* OUT, may be NULL */);
/* Frees the shard's replica (after its loop stopped). */
void wr__topo_fini(wr__shard_t *sh);
/* On q's shard, before q goes: removes its bindings everywhere, then
 * completes parent (if not NULL). */
void wr__topo_queue_gone(wr__shard_t *sh, const wr__queue_t *q, wr__req_t *parent);

/* topostore.c: a tenant's durable exchanges and bindings are one store
 * record ("T" tenant), rewritten by the home shard after each change that
 * touches them. True if a write started: wr__topo_replica_done follows. */
bool wr__topo_store(wr__shard_t *sh, wr__topo_t *t, wr__req_t *r);
/* Start-up: rebuilds every replica from the records (queues exist by then:
 * bindings to queues that do not are dropped). */
wr_err_t wr__topo_recover(wr_core_t *core);

/* ------------------------------------------------------------------------ */
/* Consumers (consumer.c)                                                   */

typedef struct wr__dbatch wr__dbatch_t;

struct wr__sub {
    uint64_t id;       /* also its claim's id */
    wr__claim_t *claim; /* NULL for no_ack */
    wr__sub_t *prev, *next;
    wr_loop_t *loop;
    wr_deliver_cb deliver;
    wr_sub_end_cb ended;
    void *arg;
    uint64_t owner;
    int32_t priority;
    uint32_t credit;
    bool unlimited, paused, no_ack, exclusive;
    wr__dbatch_t *batch; /* filled by the dispatch pass under way */
};

/* Hands claimable messages to parked long-polls, then to consumers with
 * credit (a queue that keeps nothing drops its ready ones first). Call
 * whenever messages may have become available. */
void wr__queue_wake(wr__shard_t *sh, wr__queue_t *q, int64_t now);
/* message.c: max_length or max_bytes is WR_LIMIT_ZERO; and dropping (as
 * drop-head, dead-lettering "maxlen") every message no live claim holds. */
bool wr__queue_keeps_nothing(const wr__queue_t *q);
void wr__queue_drop_ready(wr__shard_t *sh, wr__queue_t *q, int64_t now);
/* Pushes claimable messages to consumers with credit, round robin within
 * the highest priority that has credit. */
void wr__dispatch(wr__shard_t *sh, wr__queue_t *q, int64_t now);
/* The queue is going: tells each consumer (ended(WR_ENOTFOUND)) and frees
 * them. notify false: frees only (final teardown). */
void wr__subs_end(wr__shard_t *sh, wr__queue_t *q, bool notify);
/* wr_owner_gone's part for a queue with owned consumers or held claims:
 * ends them (requeue). True if that deleted the queue (auto_delete). */
bool wr__queue_owner_cleanup(wr__shard_t *sh, wr__queue_t *q, uint64_t owner);
void wr__exec_sub(wr__shard_t *sh, wr__req_t *r);

/* ------------------------------------------------------------------------ */
/* Dead-lettering (deadletter.c)                                            */

#define WR__DL_REJECTED "rejected"
#define WR__DL_EXPIRED "expired"
#define WR__DL_MAXLEN "maxlen"

/* If q has a dead-letter exchange, gathers a message leaving it (body and
 * route borrowed) for publishing at the task's end. */
void wr__dl_add(wr__shard_t *sh, wr__queue_t *q, wr_body_t *body, wr_body_t *route,
                bool persistent, uint8_t prio, uint32_t delivery_count, const char *reason);
/* The same for a stored message about to be removed. */
void wr__dl_msg(wr__shard_t *sh, wr__queue_t *q, const wr__msg_t *m, const char *reason);
/* Publishes what was gathered (called with wr__persist_flush). */
void wr__dl_flush(wr__shard_t *sh);
void wr__dl_fini(wr__shard_t *sh);
/* route.c: publishes on this shard with no caller (dead-letters). Takes
 * the route reference and the bodies'. skip: a queue key not to route to. */
void wr__publish_internal(wr__shard_t *sh, wr_slice_t tenant, wr_body_t *route, wr_msg_in_t *msgs,
                          size_t n, const char *skip_key, size_t skip_klen, uint64_t skip_hash);

/* ------------------------------------------------------------------------ */
/* Routed publish (route.c)                                                 */

/* A target queue of a routed publish, in its part request. */
typedef struct wr__rtarget {
    uint64_t hash;
    const char *key; /* tenant '\0' queue */
    size_t klen;
    /* On the target shard: */
    wr__queue_t *q;    /* during the part's first task only */
    uint64_t first_id; /* ids first_id .. first_id + n - 1 were appended */
    uint64_t first_pos;
    bool stored;
} wr__rtarget_t;

void wr__exec_route_part(wr__shard_t *sh, wr__req_t *r);
/* After the part's store write (or at once): counts, then the parent. */
void wr__route_part_done(wr__shard_t *sh, wr__req_t *r);
void wr__route_part_rollback(wr__shard_t *sh, wr__req_t *r);
/* Frees the shard's routing scratch. */
void wr__route_fini(wr__shard_t *sh);

/* message.c, for routed appends */
/* A new message for q from in; the body reference is taken over when
 * `take`, else a new one is made; route (may be NULL) gets a reference.
 * `shared`: other queues get the same body, so it is never copied inline
 * (a fanout keeps one copy). */
wr__msg_t *wr__msg_new(wr__queue_t *q, wr_msg_in_t *in, bool take, wr_body_t *route,
                       bool shared, int64_t now);
/* Start-up: appends a stored message (id above every id of q), taking the
 * body and route references. */
void wr__msg_restore(wr__queue_t *q, uint64_t id, const wr__mrec_t *rec, wr_body_t *body,
                     wr_body_t *route);
/* Would n more messages of `bytes` body bytes pass max_length/max_bytes? */
bool wr__queue_fits(const wr__queue_t *q, size_t n, uint64_t bytes);
/* Drops the oldest messages beyond max_length/max_bytes (drop-head). */
void wr__queue_drop_head(wr__shard_t *sh, wr__queue_t *q);
/* The message's route body (NULL if none). */
static inline wr_body_t *wr__msg_route(const wr__msg_t *m)
{
    return (m->flags & WR__MSG_ROUTE) ? (wr_body_t *)(uintptr_t)wr__msg_origin(m) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Shards (shard.c) and the core (core.c)                                   */

struct wr__shard {
    wr_core_t *core;
    unsigned idx;
    wr_loop_t *loop;
    wr__map_t queues; /* tenant '\0' name -> wr__queue_t */
    wr__map_t parked; /* tenant '\0' name -> wr__parked_t (no queue yet) */
    struct event *sweep_ev;
    uint64_t next_claim_id;
    int64_t next_due;  /* wall ms before which no queue needs a sweep */
    uint64_t nwaiting; /* parked requests on this shard */
    uint64_t requests; /* mailbox requests served */
    /* Store writes nobody waits on (deletes, delivery marks), gathered
     * during a task and written once at its end. */
    wr_store_op_t *dels;
    size_t ndels, dels_cap;
    /* Those batches sent to the store and done (in the log); answers wait
     * in defer_* until every batch sent before them is done. */
    uint64_t wal_sent, wal_done;
    wr__req_t *defer_head, *defer_tail;
    wr__map_t topos; /* tenant -> wr__topo_t: this shard's topology replica */
    /* Routing scratch, reused by every publish routed on this shard. */
    struct wr__rscratch *rt;
    size_t nrt, rt_cap;
    const wr__exch_t **rvisit;
    size_t rvisit_cap;
    /* Dead-letters gathered during a task, published at its end. */
    struct wr__dlgroup *dlg;
    size_t ndlg, dlg_cap;
    struct wr__dlent *dle;
    size_t ndle, dle_cap;
    bool dl_flushing;
};

struct wr_core {
    wr_props_rewrite_fn dl_props;
    void *dl_ctx;
    unsigned nshards;
    wr__shard_t *shards;
    wr_store_t *store;
    uint32_t max_message_bytes;
    uint32_t max_claim_messages;
    uint64_t max_claim_wait_ms;
    atomic_bool stopping;
    bool stopped;
    _Atomic uint64_t inflight; /* requests accepted and not yet freed */
    _Atomic uint64_t next_qid;
    pthread_mutex_t mu; /* with cv: wr_core_stop waits for inflight == 0 */
    pthread_cond_t cv;
    uint64_t serial;            /* unique per process: thread-local caches */
    _Atomic(wr_auth_t *) auth;  /* wr_core_set_auth: quota values */
    wr__tenants_t tenants;
};

wr_err_t wr__shard_init(wr__shard_t *sh, wr_core_t *core, unsigned idx);
wr_err_t wr__shard_start(wr__shard_t *sh);
void wr__shard_fini(wr__shard_t *sh);
/* On the shard thread: the shard that owns the current loop. */
wr__shard_t *wr__shard_current(wr_core_t *core);
/* Shard task: complete every parked long-poll (wr_core_stop). */
void wr__shard_flush_waiters(void *arg);
uint64_t wr__next_claim_id(wr__shard_t *sh);

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */

typedef enum {
    WR__OP_DECLARE,
    WR__OP_STAT,
    WR__OP_QDELETE,
    WR__OP_PURGE,
    WR__OP_PUBLISH,
    WR__OP_MLIST,
    WR__OP_MGET,
    WR__OP_MDELETE,
    WR__OP_CLAIM,
    WR__OP_CLAIM_GET,
    WR__OP_CLAIM_RENEW,
    WR__OP_CLAIM_RELEASE,
    WR__OP_QLIST,
    WR__OP_METRICS,
    WR__OP_TOPO, /* exchange/binding change (topology.c); own tasks, not wr__exec */
    WR__OP_ROUTE,      /* routed publish (route.c): routes, then waits for its parts */
    WR__OP_ROUTE_PART, /* the messages for the target queues of one shard */
    WR__OP_OWNER_GONE, /* broadcast (lifecycle.c) */
    WR__OP_SUB,        /* subscribe, credit, pause, unsubscribe (consumer.c) */
    WR__OP_ACK,        /* ack and release (ack.c) */
} wr__op_t;

/* One shard's answer to a gather. */
typedef struct wr__part {
    void *items; /* wr_queue_item_t[] or wr_queue_metrics_t[] */
    size_t n;
    wr_body_t **metas; /* queue list: meta references, n of them (or NULL) */
    char *names;       /* one buffer for every name */
    wr_shard_metrics_t shard;
} wr__part_t;

struct wr__req {
    wr_core_t *core;
    wr_loop_t *reply; /* NULL: internal request, freed on completion */
    bool nocb;        /* no callback: freed on completion (fire and forget) */
    union {
        wr_queue_declare_cb declare;
        wr_queue_stat_cb stat;
        wr_count_cb count;
        wr_queue_list_cb qlist;
        wr_publish_cb publish;
        wr_msgs_cb msgs;
        wr_metrics_cb metrics;
        wr_route_cb route;
        wr_sub_cb sub;
    } cb;
    void *arg;
    wr__op_t op;
    unsigned shard;
    uint64_t hash;
    const char *key; /* tenant '\0' queue '\0' (queue empty for gathers) */
    size_t klen, tlen;

    /* Long-poll parking (claims only). */
    wr__req_t *wprev, *wnext;
    wr__waitlist_t *wl;
    struct event *wev;

    /* A store write this request waits on. */
    wr_err_t store_err;
    void *store_aux;
    /* Answered, waiting for the shard's delete batch defer_tag (core.c). */
    uint64_t defer_tag;
    wr__req_t *defer_next;

    /* Gathers: shards that have not answered yet, and a sum they make. */
    atomic_uint pending;
    _Atomic uint64_t gcount;

    union {
        struct {
            wr_queue_attrs_t attrs;
            bool has_attrs;
            wr_body_t *meta; /* owned until a queue takes it */
            unsigned flags;
        } declare;
        struct {
            unsigned flags;
            uint64_t owner; /* also purge's */
        } qdelete;
        struct {
            wr_msg_in_t *msgs; /* bodies owned until queued (then NULL) */
            size_t n;
            unsigned flags;
        } publish;
        struct {
            uint64_t marker;
            uint32_t limit;
            unsigned flags;
            uint64_t producer;
        } mlist;
        struct {
            const uint64_t *ids;
            size_t n;
            uint64_t claim_id;
            bool force;
            bool release;   /* ack.c: release instead of ack */
            unsigned flags; /* WR_REL_* */
        } ids;
        wr_claim_opts_t claim;
        struct {
            uint64_t claim_id;
            int64_t ttl_ms, grace_ms;
        } cl;
        struct {
            const char *marker;
            size_t mlen;
            uint32_t limit;
            bool with_meta;
            wr__part_t *parts;
        } gather;
        struct {
            wr__tm_kind_t kind;
            uint8_t type;   /* declare: wr__ex_type_t */
            unsigned flags; /* WR_EXCH_* */
            bool to_exch;   /* bind/unbind: destination is an exchange */
            bool noop;      /* set by the home shard: nothing to replicate */
            bool dest_durable; /* bind: the queue is durable (set on its shard) */
            uint8_t hmode;
            uint64_t owner;
            wr_slice_t name; /* the exchange (declare/delete) or the source */
            wr_slice_t dest; /* bind/unbind destination; queue gone: the queue */
            wr_slice_t key;
            wr_header_t *args;
            size_t nargs;
            uint64_t dhash;   /* queue destination: its hash (shard) */
            const char *qkey; /* tenant '\0' queue of a queue destination */
            size_t qklen;
            wr__req_t *parent; /* internal: complete this when done */
        } topo;
        struct {
            wr_msg_in_t *msgs; /* bodies owned (released with the request) */
            size_t n;
            unsigned flags;
            wr_body_t *route;  /* exchange + routing key kept by the messages */
            wr_slice_t exchange, key;
            const wr_header_t *hdrs;
            size_t nhdrs;
            uint32_t *reached;
            _Atomic uint32_t nreached; /* every message goes to the same queues */
            uint32_t ntargets;         /* queues routed to, set before the parts go */
            _Atomic int err;           /* first error of a part */
            uint64_t skip_hash;        /* dead-lettering: not back to this queue */
            bool internal;             /* dead-letters: no tenant quota refuses them */
            const char *skip_key;
            size_t skip_klen;
        } route;
        struct {
            wr__req_t *parent;
            struct wr__rtarget *t;
            size_t nt;
        } part;
        struct {
            int kind; /* WR__SUB_* */
            wr_sub_opts_t opts;
            wr_loop_t *loop;
            wr_deliver_cb deliver;
            wr_sub_end_cb ended;
            uint64_t sub_id;
            uint32_t n;
            bool flag; /* pause: paused; unsubscribe: requeue */
        } sub;
    } in;

    union {
        wr_queue_declare_res_t declare;
        wr_queue_stat_res_t stat;
        wr_count_res_t count;
        wr_publish_res_t publish;
        wr_msgs_res_t msgs;
        wr_queue_list_res_t qlist;
        wr_metrics_res_t metrics;
        wr_route_res_t route;
        wr_sub_res_t sub;
    } out;
    wr_body_t *out_meta; /* stat: reference held on the metadata */

    _Alignas(max_align_t) unsigned char data[];
};

#define WR__SUB_SUBSCRIBE 0
#define WR__SUB_CREDIT 1
#define WR__SUB_PAUSE 2
#define WR__SUB_CANCEL 3

/* Counts a request in flight, or WR_ESHUTDOWN once wr_core_stop began. */
wr_err_t wr__enter(wr_core_t *core);
/* Counts a request made on behalf of one already in flight (never fails:
 * its parent keeps shutdown waiting). */
void wr__enter_child(wr_core_t *core);
/* Undoes wr__enter for a call that failed before posting. */
void wr__leave(wr_core_t *core);
/*
 * One allocation: the request, `extra` bytes of inputs at r->data (aligned),
 * and the key. Call after wr__enter. For gathers pass queue = {NULL, 0}.
 */
wr__req_t *wr__req_new(wr_core_t *core, wr__op_t op, size_t extra, wr_slice_t tenant,
                       wr_slice_t queue, wr_loop_t *reply, void *arg);
/* Posts to the owning shard. */
void wr__req_submit(wr__req_t *r);
/* The shard owning a key hash (wr__hash_key of tenant '\0' queue). */
unsigned wr__shard_of_hash(const wr_core_t *core, uint64_t hash);
/* The shard of the calling thread's loop, or NULL if it is not a shard. */
wr__shard_t *wr__shard_here(wr_core_t *core);
/* On the shard: flushes queued store deletes, posts the completion to the
 * reply loop; the cb runs there, then the request and its result
 * references are freed. */
void wr__complete(wr__req_t *r);
/* After a delete batch of sh reached the log: sends the answers that
 * waited for it. */
void wr__release_deferred(wr__shard_t *sh);
/* Completes a gather part; the last shard posts the completion. */
void wr__gather_done(wr__req_t *r);

/* The shard-side handlers (mailbox tasks are dispatched by wr__exec). */
void wr__exec(void *arg);
void wr__exec_declare(wr__shard_t *sh, wr__req_t *r);
void wr__exec_stat(wr__shard_t *sh, wr__req_t *r);
void wr__exec_qdelete(wr__shard_t *sh, wr__req_t *r);
void wr__exec_purge(wr__shard_t *sh, wr__req_t *r);
void wr__exec_publish(wr__shard_t *sh, wr__req_t *r);
void wr__exec_mlist(wr__shard_t *sh, wr__req_t *r);
void wr__exec_mget(wr__shard_t *sh, wr__req_t *r);
void wr__exec_mdelete(wr__shard_t *sh, wr__req_t *r);
void wr__exec_claim(wr__shard_t *sh, wr__req_t *r);
void wr__exec_claim_get(wr__shard_t *sh, wr__req_t *r);
void wr__exec_claim_renew(wr__shard_t *sh, wr__req_t *r);
void wr__exec_claim_release(wr__shard_t *sh, wr__req_t *r);
void wr__exec_ack(wr__shard_t *sh, wr__req_t *r);
void wr__exec_owner_gone(void *arg); /* a shard task (lifecycle.c) */
/* Sweep part: deletes q's shard's queues whose x-expires passed. */
void wr__queues_expire(wr__shard_t *sh, int64_t now);
/* After a store write: finish the request on its shard (persist.c). */
void wr__exec_stored(wr__shard_t *sh, wr__req_t *r);
/* Removes a failed publish's messages again (message.c). */
void wr__publish_rollback(wr__shard_t *sh, wr__req_t *r);
/* Gather halves (gather.c): shard part and reply-side merge/cleanup. */
void wr__gather_merge(wr__req_t *r);
void wr__gather_cleanup(wr__req_t *r);

/* ------------------------------------------------------------------------ */
/* The store hook (persist.c)                                               */

/* True when the queue's persistent messages go to the store. */
static inline bool wr__durable(const wr_core_t *core, const wr__queue_t *q)
{
    return core->store && q->attrs.durable;
}
/* Writes the queue record (WR_DUR_SYNC). WR_OK: wr__exec_stored follows. */
wr_err_t wr__persist_queue(wr__shard_t *sh, wr__queue_t *q, wr__req_t *r);
/* Writes the persistent ones of the n messages at positions first.. (all
 * live). WR_OK: wr__exec_stored follows; WR_EAGAIN: nothing to write. */
wr_err_t wr__persist_msgs(wr__shard_t *sh, wr__queue_t *q, wr__req_t *r, uint64_t first,
                          size_t n);
/* The same over nq queues, n messages from positions firsts[i] in qs[i]
 * (durable queues only), as one store write. */
wr_err_t wr__persist_msgs_multi(wr__shard_t *sh, wr__req_t *r, wr__queue_t *const *qs,
                                const uint64_t *firsts, size_t nq, size_t n);
/* Queues a store delete; written by wr__persist_flush at the task's end. */
void wr__persist_del_msg(wr__shard_t *sh, const wr__queue_t *q, const wr__msg_t *m);
void wr__persist_del_queue(wr__shard_t *sh, const wr__queue_t *q);
void wr__persist_flush(wr__shard_t *sh);
void wr__persist_free_aux(wr__req_t *r);
/* A persistent message of a durable queue was delivered for the first
 * time: record it, so that after a crash it comes back redelivered. */
void wr__persist_mark(wr__shard_t *sh, const wr__queue_t *q, const wr__msg_t *m);
/* m->claim_count++, with the redelivered flag from the second delivery on
 * and the store mark on the first (mark false: the message is leaving). */
void wr__msg_delivered(wr__shard_t *sh, const wr__queue_t *q, wr__msg_t *m, bool mark);

/* ------------------------------------------------------------------------ */
/* Stored records (record.c)                                                */

/* Delivery marks live in the message key space under qid | WR__QID_MARK
 * (queue ids come from the clock in us and stay far below it). */
#define WR__QID_MARK ((wr_qid_t)1 << 63)
/* The message flags a record keeps. */
#define WR__REC_MSG_FLAGS                                                                        \
    (WR__MSG_PERSISTENT | WR__MSG_REDELIVERED | WR__MSG_ROUTE | 0xff00u)

/* A queue record as read back; meta borrows from the unpacked record. */
typedef struct wr__qrec {
    wr_qid_t qid;
    int64_t created_ms;
    wr_queue_attrs_t attrs;
    wr_slice_t meta;
} wr__qrec_t;

/* A message record as read back; slices borrow from the unpacked record. */
struct wr__mrec {
    uint32_t flags, claim_count;
    int64_t enqueued_ms, ttl_ms, visible_ms;
    uint64_t producer;
    wr_slice_t exchange, key, props, body;
};

void wr__rec_queue(msgpack_sbuffer *sb, const wr__queue_t *q);
void wr__rec_msg(msgpack_sbuffer *sb, const wr__msg_t *m);
/* WR_EPROTO if val is not a record of this kind and version. */
wr_err_t wr__rec_queue_parse(msgpack_unpacked *u, wr_bytes_t val, wr__qrec_t *out /* OUT */);
wr_err_t wr__rec_msg_parse(msgpack_unpacked *u, wr_bytes_t val, wr__mrec_t *out /* OUT */);
/* Unpacks val: its fields if it is a v1 array of at least min_fields. */
const msgpack_object *wr__rec_open(msgpack_unpacked *u, wr_bytes_t val, uint32_t min_fields);
bool wr__rec_u64(const msgpack_object *o, uint64_t *out /* OUT */);
bool wr__rec_i64(const msgpack_object *o, int64_t *out /* OUT */);
/* A bin, or nil when nil_ok (then *set is false; set may be NULL). */
bool wr__rec_bin(const msgpack_object *o, bool nil_ok, wr_slice_t *out /* OUT */,
                 bool *set /* OUT */);

/* ------------------------------------------------------------------------ */
/* Start-up recovery (recover.c)                                            */

/* Before the shard threads start: rebuilds queues, messages and topology
 * from the store. WR_EPROTO/WR_EIO: the store holds what we cannot read. */
wr_err_t wr__recover(wr_core_t *core);

#endif
