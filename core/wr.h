/*
 * wr.h - the reduced internal API of warren: everything a front end may ask
 * of the queue core, and nothing protocol-specific.
 *
 * Threads. The core runs N shard loops (core/loop.h). A queue belongs to the
 * shard hash(tenant, queue) % N, and only that shard's thread touches the
 * queue and its messages. Front ends attach their sockets to the same loops
 * (wr_core_loop), so a request for a queue of the local shard costs no
 * thread hop; any other goes through the owning shard's mailbox.
 *
 * Calls. Every operation is asynchronous: it is handed a reply loop (the
 * caller's, normally wr_loop_current()) and a callback, and the callback
 * runs exactly once on that loop with the outcome, never inside the call
 * itself. If a call returns an error, its callback never runs (libuv's rule).
 * The result structs given to callbacks, and everything they point to, are
 * valid only during the callback; take a reference (wr_body_ref) or copy to
 * keep anything.
 *
 * Inputs. Strings and bytes passed in are copied before the call returns;
 * the caller may free them at once.
 *
 * Names. Tenants and queues are names of 1..WR_NAME_MAX bytes. The core does
 * not judge characters (front ends validate their own rules); it only
 * refuses empty and over-long names with WR_EINVAL.
 *
 * Times. Durations are in milliseconds. Absolute times given out are wall
 * clock milliseconds since the epoch (wr_now_wall_ms).
 */
#ifndef WR_H
#define WR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "loop.h"

#define WR_NAME_MAX 256

typedef struct wr_core wr_core_t;
typedef struct wr_store wr_store_t; /* backends/backend.h */

typedef struct wr_slice {
    const void *ptr;
    size_t len;
} wr_slice_t;

/* ------------------------------------------------------------------------ */
/* Message bytes                                                            */

/*
 * A message's immutable bytes: encoded properties (opaque to the core; the
 * AMQP front end keeps its basic-properties there) followed by the body. It
 * is reference counted with atomic counts, so one copy can be shared by
 * every queue a message is routed to and read from any thread.
 */
typedef struct wr_body {
    _Atomic uint32_t refs;
    uint32_t props_len;
    uint32_t body_len;
    uint8_t data[]; /* props_len bytes of properties, then body_len of body */
} wr_body_t;

/* A new body with one reference, copying props and body. Aborts on OOM. */
wr_body_t *wr_body_new(wr_slice_t props, wr_slice_t body);
wr_body_t *wr_body_ref(wr_body_t *b);
void wr_body_unref(wr_body_t *b); /* NULL-safe */
static inline const uint8_t *wr_body_bytes(const wr_body_t *b)
{
    return b->data + b->props_len;
}

/*
 * Whether the body is one JSON text, once someone has found out: a front
 * end that embeds bodies in JSON answers (REST) would otherwise parse each
 * body on every read. The front end that wrote the bytes as JSON marks
 * them at once; any other body is judged on its first read and marked
 * then. The mark is atomic, as a body is read from any thread; two threads
 * judging the same bytes at once reach the same verdict.
 */
typedef enum { WR_BODY_JSON_UNKNOWN, WR_BODY_JSON_YES, WR_BODY_JSON_NO } wr_body_json_t;
wr_body_json_t wr_body_json(const wr_body_t *b);
void wr_body_set_json(wr_body_t *b, bool is_json);

/* ------------------------------------------------------------------------ */
/* Core lifecycle                                                           */

/* What a dead-lettered message went through, for the props hook below. */
typedef struct wr_deadletter_info {
    const char *reason;     /* "rejected", "expired" or "maxlen" */
    wr_slice_t tenant;
    wr_slice_t queue;       /* the queue it leaves */
    wr_slice_t exchange;    /* where it was published ("" = default exchange) */
    wr_slice_t routing_key; /* ... and with which key */
    wr_slice_t dl_exchange, dl_routing_key; /* where it goes now */
    uint32_t delivery_count;
} wr_deadletter_info_t;

/*
 * Rewrites a dead-lettered message's properties (AMQP: x-death, first-death
 * headers, dropping the expiration). Returns a new body (the core takes its
 * one reference) holding the new properties and the same body bytes, or
 * NULL to keep the message as it is. Called on shard threads, several at
 * once: it must be thread-safe and must not block. `msg` is borrowed.
 */
typedef wr_body_t *(*wr_props_rewrite_fn)(void *ctx, const wr_body_t *msg,
                                          const wr_deadletter_info_t *info);

typedef struct wr_core_cfg {
    unsigned shards;   /* number of shard threads; 0 = one per online CPU */
    wr_store_t *store; /* durable store, or NULL: everything transient */
    /* Limits the core enforces for every front end (0 = built-in default). */
    uint32_t max_message_bytes;   /* one message body; default 256 KiB */
    uint32_t max_claim_messages;  /* messages per claim; default 1000 */
    uint64_t max_claim_wait_ms;   /* longest long-poll; default 20 s */
    /* Dead-lettering: NULL keeps the properties of dead-lettered messages. */
    wr_props_rewrite_fn deadletter_props;
    void *deadletter_ctx;
} wr_core_cfg_t;

/* Creates the core and starts its shard threads. */
wr_err_t wr_core_new(const wr_core_cfg_t *cfg, wr_core_t **out /* OUT */);

/* Stops accepting new requests (they fail with WR_ESHUTDOWN), completes
 * pending long-polls with what they have, lets the shards finish the work in
 * their mailboxes, then joins the shard threads. Call from the main thread,
 * after the front ends have stopped using the loops. */
void wr_core_stop(wr_core_t *core);

/* Stops if needed, frees every queue and message. NULL-safe. */
void wr_core_free(wr_core_t *core);

unsigned wr_core_shards(const wr_core_t *core);

/* The loop of shard i (0 <= i < wr_core_shards). Front ends attach their
 * listeners to these loops; it is the reply loop for requests they make. */
wr_loop_t *wr_core_loop(wr_core_t *core, unsigned i);

/* The shard owning (tenant, queue); stable for the life of the process. */
unsigned wr_core_shard_of(const wr_core_t *core, wr_slice_t tenant, wr_slice_t queue);

/* True while the store refuses new data (disk below its free-space limit):
 * persistent publishes to durable queues fail with WR_ENOSPACE meanwhile.
 * Cheap and thread-safe; false without a store. */
bool wr_core_store_full(const wr_core_t *core);

/* The store's counters, for metrics (all zero without a store). */
typedef struct wr_store_counters {
    uint64_t writes;        /* write batches applied */
    uint64_t syncs;         /* fsyncs done: well below writes with group commit */
    uint64_t bytes_written;
    uint64_t keys;          /* estimate */
    /* The engine's own log counters (RocksDB's DB stats); only when
     * engine_wal is true. */
    bool engine_wal;
    uint64_t wal_writes, wal_syncs;
} wr_store_counters_t;
void wr_core_store_counters(const wr_core_t *core, wr_store_counters_t *out /* OUT */);

/* ------------------------------------------------------------------------ */
/* Queues                                                                   */

/*
 * max_length / max_bytes of a queue that keeps no message (AMQP
 * x-max-length 0; 0 itself means unlimited). As in RabbitMQ: under
 * drop-head a published message goes to a consumer that can take it at
 * once, else it is dropped (dead-lettered "maxlen" when the queue has a
 * dead-letter exchange); under reject-publish every publish is refused.
 * Messages already delivered and not acked stay.
 */
#define WR_LIMIT_ZERO UINT64_MAX

typedef enum {
    WR_OVERFLOW_DROP_HEAD = 0, /* drop the oldest to make room (default); they
                                  are dead-lettered ("maxlen") if the queue has
                                  a dead-letter exchange */
    WR_OVERFLOW_REJECT,        /* refuse the publish with WR_EQUOTA */
    WR_OVERFLOW_REJECT_DLX,    /* refuse, and dead-letter the refused messages */
} wr_overflow_t;

/* Attributes the core acts on. The front ends map their own knobs (Zaqar's
 * reserved metadata keys, AMQP x-arguments) onto these. 0 means "none". */
typedef struct wr_queue_attrs {
    bool durable;
    int64_t default_ttl_ms;    /* message TTL when the publisher gives none */
    int64_t default_delay_ms;  /* delay applied when the publisher gives none */
    uint64_t max_length;       /* ready+claimed messages; 0 = unlimited,
                                  WR_LIMIT_ZERO = keep none (below) */
    uint64_t max_bytes;        /* sum of body bytes; 0 = unlimited, WR_LIMIT_ZERO */
    wr_overflow_t overflow;
    uint32_t max_post_bytes;   /* one publish batch's body bytes; 0 = core max */
    uint8_t max_priority;      /* x-max-priority: claims and deliveries take higher
                                  priorities first, FIFO within one; 0 = none.
                                  Fixed when the queue is created. */
    /* AMQP. REST leaves all of these zero. */
    bool exclusive;            /* only `owner` may use it; it goes with its owner
                                  (wr_owner_gone). Fixed at creation. */
    uint64_t owner;            /* the caller's connection (0 = none): the owner of
                                  an exclusive queue, and who declares (an
                                  exclusive queue of another owner: WR_ELOCKED) */
    bool auto_delete;          /* deleted when its last consumer unsubscribes,
                                  after it has had one */
    int64_t expires_ms;        /* x-expires: deleted after this long with no
                                  consumer and no declare or claim; 0 = never */
    /* Dead-lettering: messages rejected without requeue (wr_release),
     * expired, or dropped/refused by max_length/max_bytes are published
     * through exchange dlx ("" = default) with routing key dlrk, else with
     * their own, once the props hook (wr_core_cfg_t) rewrote them. Never
     * back into the same queue for "expired" or "maxlen" (a cycle). A
     * missing dlx drops them. Their TTL is not kept. */
    bool dlx_set;              /* dead-letter through exchange dlx */
    bool dlrk_set;             /* ... with routing key dlrk, else the message's own */
    uint8_t dlx_len, dlrk_len;
    char dlx[WR_NAME_MAX];
    char dlrk[WR_NAME_MAX];
} wr_queue_attrs_t;

/*
 * Queue metadata: an opaque blob the core stores and returns untouched (the
 * REST front end keeps the queue's JSON metadata there). At most
 * WR_META_MAX bytes.
 */
#define WR_META_MAX (64 * 1024)

#define WR_DECL_PASSIVE 0x01u /* only check it exists: WR_ENOTFOUND if not */
#define WR_DECL_UPDATE 0x02u  /* existing queue: replace attrs and metadata
                                 (max_priority, exclusive and owner stay) */
#define WR_DECL_CHECK 0x04u   /* existing queue: WR_EEXISTS unless durable,
                                 exclusive, auto_delete and the AMQP arguments
                                 (default_ttl_ms, expires_ms, max_length,
                                 max_bytes, overflow, dead-letter exchange and
                                 key, max_priority) are equal (AMQP 406) */
#define WR_DECL_NO_CREATE 0x08u /* a missing queue is WR_EDENIED, not created
                                   (AMQP: a DLX the user may not use is
                                   checked only when the queue is new) */

typedef struct wr_queue_declare_res {
    wr_err_t err;
    bool created;       /* false: the queue already existed */
    uint64_t messages;  /* ready messages */
    uint32_t consumers; /* subscriptions */
} wr_queue_declare_res_t;
typedef void (*wr_queue_declare_cb)(void *arg, const wr_queue_declare_res_t *res);

/* Creates the queue if missing. An existing queue keeps its attributes and
 * metadata unless WR_DECL_UPDATE is given. Any declare (passive too) counts
 * as use for expires_ms. An exclusive queue of another owner (attrs->owner,
 * 0 when attrs is NULL) is WR_ELOCKED, passive or not. */
wr_err_t wr_queue_declare(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue,
                          const wr_queue_attrs_t *attrs, wr_slice_t meta, unsigned flags,
                          wr_loop_t *reply, wr_queue_declare_cb cb, void *arg);

typedef struct wr_msg_ref {
    uint64_t id;          /* message id */
    int64_t enqueued_ms;  /* wall clock */
} wr_msg_ref_t;

typedef struct wr_queue_stat_res {
    wr_err_t err; /* WR_ENOTFOUND if the queue does not exist */
    wr_queue_attrs_t attrs;
    wr_slice_t meta;
    int64_t created_ms;
    uint64_t total;   /* messages not expired, claimed or not (delayed too) */
    uint64_t claimed; /* under an unexpired claim */
    uint64_t delayed; /* not yet visible */
    uint64_t bytes;   /* body bytes of `total` */
    bool has_oldest;  /* total > 0 */
    wr_msg_ref_t oldest, newest;
    /* Lifetime counters. */
    uint64_t published, delivered, acked, expired;
    uint32_t waiters; /* parked long-poll claims */
    /* AMQP's view (queue.declare-ok, management): */
    uint64_t ready;     /* visible and unclaimed: what a consumer could get now */
    uint64_t unacked;   /* delivered and not yet acked or released (= claimed) */
    uint32_t consumers; /* subscriptions */
} wr_queue_stat_res_t;
typedef void (*wr_queue_stat_cb)(void *arg, const wr_queue_stat_res_t *res);

wr_err_t wr_queue_stat(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, wr_loop_t *reply,
                       wr_queue_stat_cb cb, void *arg);

#define WR_DEL_IF_UNUSED 0x01u /* WR_EBUSY if it has claimed messages or waiters */
#define WR_DEL_IF_EMPTY 0x02u  /* WR_EBUSY if it holds messages */
#define WR_DEL_IF_NO_CONSUMERS 0x04u /* WR_EBUSY if it has subscriptions (AMQP if-unused) */

typedef struct wr_count_res {
    wr_err_t err;
    uint64_t count; /* messages removed */
} wr_count_res_t;
typedef void (*wr_count_cb)(void *arg, const wr_count_res_t *res);

/* Deletes the queue and its messages. A missing queue is WR_ENOTFOUND.
 * Parked long-poll claims complete with no messages. */
wr_err_t wr_queue_delete(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, unsigned flags,
                         wr_loop_t *reply, wr_count_cb cb, void *arg);

/* Removes every message that is not claimed; claimed messages go when their
 * claim ends (as AMQP purge leaves unacked messages alone). */
wr_err_t wr_queue_purge(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, wr_loop_t *reply,
                        wr_count_cb cb, void *arg);

/* wr_queue_delete and wr_queue_purge on behalf of `owner` (a connection):
 * an exclusive queue of another owner is WR_ELOCKED. The plain calls act
 * as owner 0. */
wr_err_t wr_queue_delete_as(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, unsigned flags,
                            uint64_t owner, wr_loop_t *reply, wr_count_cb cb, void *arg);
wr_err_t wr_queue_purge_as(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t owner,
                           wr_loop_t *reply, wr_count_cb cb, void *arg);

/* An owner (connection) is gone: ends its subscriptions everywhere (their
 * unacked messages requeued; no ended() call), releases its held claims,
 * and deletes every exclusive queue it owned, on every shard. count:
 * queues deleted. cb may be NULL (reply may then be NULL too). */
wr_err_t wr_owner_gone(wr_core_t *core, uint64_t owner, wr_loop_t *reply, wr_count_cb cb,
                       void *arg);

typedef struct wr_queue_item {
    wr_slice_t name;
    wr_slice_t meta;
} wr_queue_item_t;

typedef struct wr_queue_list_res {
    wr_err_t err;
    const wr_queue_item_t *items; /* sorted by name (bytewise) */
    size_t n;
    bool more; /* queues beyond the last item exist */
} wr_queue_list_res_t;
typedef void (*wr_queue_list_cb)(void *arg, const wr_queue_list_res_t *res);

/* Lists a tenant's queues with names strictly greater than `marker` (empty
 * slice: from the start), at most `limit` (1..1000). Metadata is filled only
 * when with_meta. Gathers from every shard. */
wr_err_t wr_queue_list(wr_core_t *core, wr_slice_t tenant, wr_slice_t marker, uint32_t limit,
                       bool with_meta, wr_loop_t *reply, wr_queue_list_cb cb, void *arg);

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

typedef struct wr_msg_in {
    wr_body_t *body;    /* the call takes this reference */
    int64_t ttl_ms;     /* > 0; or 0: the queue's default TTL, else never */
    int64_t delay_ms;   /* >= 0; or -1: the queue's default delay */
    uint64_t producer;  /* opaque publisher identity (hash of Client-ID);
                           not kept by wr_publish_routed */
    bool persistent;
    uint8_t priority;   /* used by queues with max_priority (capped to it) */
} wr_msg_in_t;

#define WR_PUB_CREATE 0x01u /* create the queue (default attrs) if missing */

typedef struct wr_publish_res {
    wr_err_t err;       /* WR_ENOTFOUND, WR_ETOOBIG, WR_EQUOTA, ... : none stored */
    const uint64_t *ids; /* n ids in input order */
    size_t n;
} wr_publish_res_t;
typedef void (*wr_publish_cb)(void *arg, const wr_publish_res_t *res);

/* Appends n messages (1..WR_BATCH_MAX) to the queue, all or none. The
 * callback fires once they are as durable as the queue asks. The bodies'
 * references pass to the core even when the call fails. */
#define WR_BATCH_MAX 1000
wr_err_t wr_publish(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, wr_msg_in_t *msgs,
                    size_t n, unsigned flags, wr_loop_t *reply, wr_publish_cb cb, void *arg);

/* A message as handed to a front end: a snapshot made on the shard. */
typedef struct wr_msg_view {
    uint64_t id;
    wr_body_t *body;      /* borrowed: wr_body_ref() to keep */
    int64_t enqueued_ms;  /* wall clock */
    int64_t ttl_ms;       /* the TTL it was published with (0: never expires) */
    int64_t expires_ms;   /* wall clock; INT64_MAX if never */
    uint64_t producer;
    uint64_t claim_id;    /* 0 if not under an unexpired claim */
    uint32_t claim_count; /* times it has been claimed */
    bool redelivered;     /* claimed before and released or expired */
    bool persistent;
    uint8_t priority;
    /* Where it was published (wr_publish_routed): exchange and routing key.
     * Both empty for a message published with wr_publish, or routed through
     * the default exchange: its routing key is then the queue's name. */
    wr_slice_t exchange, routing_key;
    wr_body_t *route; /* borrowed: holds exchange and routing key bytes (or NULL) */
} wr_msg_view_t;

typedef struct wr_msgs_res {
    wr_err_t err;
    const wr_msg_view_t *msgs;
    size_t n;
    uint64_t claim_id; /* for claims: the new claim (0 if no messages) */
    uint64_t ready;    /* for claims: messages still ready after this one (AMQP
                          basic.get-ok message-count) */
    int64_t claim_ttl_ms, claim_age_ms; /* for wr_claim_get */
    uint64_t next_marker; /* for lists: pass as marker for the next page */
} wr_msgs_res_t;
typedef void (*wr_msgs_cb)(void *arg, const wr_msgs_res_t *res);

#define WR_LIST_CLAIMED 0x01u    /* include messages under a claim */
#define WR_LIST_DELAYED 0x02u    /* include messages whose delay has not passed */
#define WR_LIST_HIDE_OWN 0x04u   /* hide messages whose producer == `producer` */

/* Non-destructive read, oldest first, of messages with id > marker (0: from
 * the start), at most limit (1..1000). A missing queue gives an empty list
 * (err WR_OK). */
wr_err_t wr_msg_list(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t marker,
                     uint32_t limit, unsigned flags, uint64_t producer, wr_loop_t *reply,
                     wr_msgs_cb cb, void *arg);

/* Reads the given messages (claimed or not; not expired), in the order
 * given, skipping unknown ids. n <= WR_BATCH_MAX. Missing queue: WR_ENOTFOUND. */
wr_err_t wr_msg_get(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, const uint64_t *ids,
                    size_t n, wr_loop_t *reply, wr_msgs_cb cb, void *arg);

/*
 * Deletes messages by id, n <= WR_BATCH_MAX; unknown ids are ignored.
 *  claim_id == 0 and !force: a message under an unexpired claim is not
 *    deleted and the call fails with WR_EDENIED (nothing deleted).
 *  claim_id != 0: each message must be under that unexpired claim, else the
 *    call fails with WR_EINVAL (nothing deleted).
 *  force: delete whatever the claims.
 * count = messages deleted.
 */
wr_err_t wr_msg_delete(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, const uint64_t *ids,
                       size_t n, uint64_t claim_id, bool force, wr_loop_t *reply, wr_count_cb cb,
                       void *arg);

/* ------------------------------------------------------------------------ */
/* Claims: the one consumption primitive                                    */

typedef struct wr_claim_opts {
    uint32_t limit;    /* 1..max_claim_messages */
    int64_t ttl_ms;    /* claim lifetime, > 0 (ignored with owner_hold) */
    int64_t grace_ms;  /* claimed messages live at least ttl + grace, >= 0 */
    int64_t wait_ms;   /* long-poll: wait up to this for a first message; 0 = no wait */
    bool pop;          /* delete the messages as they are taken (no claim kept) */
    uint64_t owner;    /* the caller's connection: an exclusive queue of another
                          owner is WR_ELOCKED; a claim counts as use (expires_ms) */
    bool owner_hold;   /* AMQP basic.get: the claim never expires; it lasts until
                          its messages are acked or released (wr_ack, wr_release,
                          wr_claim_release) or the owner goes */
} wr_claim_opts_t;

/*
 * Takes up to limit visible, unclaimed (or expired-claim), unexpired messages,
 * oldest first, under a new claim. Best effort: fewer may come back. With
 * wait_ms > 0 and none available, the request parks on the queue (even one
 * that does not exist yet) until a message arrives, the wait passes, or the
 * queue is deleted; it then completes with what it could take (maybe none).
 * n == 0 means nothing claimed (claim_id 0). Missing queue without wait:
 * empty result, err WR_OK.
 */
wr_err_t wr_claim(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue,
                  const wr_claim_opts_t *opts, wr_loop_t *reply, wr_msgs_cb cb, void *arg);

/* The claim's unexpired messages, claim_ttl_ms and claim_age_ms.
 * WR_ENOTFOUND if the claim is unknown or expired. */
wr_err_t wr_claim_get(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t claim_id,
                      wr_loop_t *reply, wr_msgs_cb cb, void *arg);

/* Renews: age restarts, new TTL; messages live at least ttl + grace from now.
 * WR_ENOTFOUND if unknown or expired. */
wr_err_t wr_claim_renew(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t claim_id,
                        int64_t ttl_ms, int64_t grace_ms, wr_loop_t *reply, wr_count_cb cb,
                        void *arg);

/* Ends the claim; its messages become available again (redelivered). An
 * unknown claim is not an error (count 0). */
wr_err_t wr_claim_release(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t claim_id,
                          wr_loop_t *reply, wr_count_cb cb, void *arg);

/* ------------------------------------------------------------------------ */
/* Consumers: push deliveries (AMQP basic.consume)                          */

/* One delivered message, as handed to a consumer. */
typedef struct wr_delivery {
    uint64_t id;              /* message id: ack/release it with the batch's claim_id */
    wr_body_t *body;          /* borrowed: wr_body_ref() to keep */
    wr_body_t *route;         /* borrowed (may be NULL): holds exchange/routing_key */
    wr_slice_t exchange;      /* "" for the default exchange / wr_publish */
    wr_slice_t routing_key;   /* the queue's name for the default exchange / wr_publish */
    uint32_t delivery_count;  /* times delivered, this one included */
    uint8_t priority;
    bool redelivered;         /* delivered before (released, requeued, or lost claim) */
    bool persistent;
} wr_delivery_t;

typedef struct wr_deliveries {
    uint64_t sub_id;
    uint64_t claim_id;        /* the subscription's claim (0 for no_ack) */
    wr_slice_t queue;
    const wr_delivery_t *d;   /* in queue order (priority first, then FIFO) */
    size_t n;
} wr_deliveries_t;

/* Runs on the consumer's loop with a batch; everything is borrowed for the
 * callback only. */
typedef void (*wr_deliver_cb)(void *arg, const wr_deliveries_t *batch);
/* The core ended the subscription (its queue was deleted: WR_ENOTFOUND).
 * Runs once, on the consumer's loop, after its last delivery; never after
 * a successful wr_unsubscribe or for wr_owner_gone. */
typedef void (*wr_sub_end_cb)(void *arg, uint64_t sub_id, wr_err_t why);

typedef struct wr_sub_opts {
    uint32_t prefetch; /* initial credit: deliveries before wr_sub_credit; 0 = unlimited */
    bool no_ack;       /* deliveries are deleted as they are pushed (no claim) */
    bool exclusive;    /* the only consumer: WR_ELOCKED if the queue has one */
    int32_t priority;  /* x-priority: higher priorities get messages first */
    uint64_t owner;    /* the caller's connection: exclusive queues, wr_owner_gone */
} wr_sub_opts_t;

typedef struct wr_sub_res {
    wr_err_t err;       /* WR_ENOTFOUND (no queue), WR_ELOCKED (exclusive queue of
                           another owner, or an exclusive consumer conflict) */
    uint64_t sub_id;    /* also the claim id of its deliveries */
    uint32_t consumers; /* the queue's subscriptions after this one */
} wr_sub_res_t;
typedef void (*wr_sub_cb)(void *arg, const wr_sub_res_t *res);

/*
 * Subscribes to a queue. The shard pushes batches of deliveries to
 * deliver(arg, batch) on `loop` while the subscription has credit: each
 * delivered message uses one credit; wr_sub_credit adds more (an AMQP front
 * end adds one per ack that frees a prefetch slot; prefetch 0 never runs
 * out). Delivered messages are held under the subscription's claim (id
 * sub_id) until acked (wr_ack, or wr_msg_delete with that claim id) or
 * released (wr_release, wr_unsubscribe); they never expire while held.
 * no_ack deliveries are deleted as they go. Messages are shared round robin
 * between the consumers of the highest priority that have credit.
 *
 * cb(arg, res) runs on `loop` too, before the first delivery. deliver,
 * ended and cb all get `arg`. Copied: opts.
 */
wr_err_t wr_subscribe(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue,
                      const wr_sub_opts_t *opts, wr_loop_t *loop, wr_deliver_cb deliver,
                      wr_sub_end_cb ended, wr_sub_cb cb, void *arg);

/* Adds n credits (fire and forget: cb may be NULL, reply then too).
 * count: the credit now. err WR_ENOTFOUND if no such subscription. */
wr_err_t wr_sub_credit(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t sub_id,
                       uint32_t n, wr_loop_t *reply, wr_count_cb cb, void *arg);

/* Stops (paused) or restarts deliveries without touching credit (flow
 * control: a front end whose socket is full). cb may be NULL. */
wr_err_t wr_sub_pause(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t sub_id,
                      bool paused, wr_loop_t *reply, wr_count_cb cb, void *arg);

/*
 * Ends a subscription. Its unacked messages are requeued (requeue_unacked:
 * back in their places, redelivered) or stay held under its claim id, to be
 * acked or released later (AMQP basic.cancel leaves them with the channel;
 * wr_claim_release(sub_id) releases them). An auto_delete queue losing its
 * last consumer is deleted. count: messages requeued. err WR_ENOTFOUND if
 * no such subscription. Deliveries posted before the answer run before it
 * when reply is the consumer's loop. cb may be NULL.
 */
wr_err_t wr_unsubscribe(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t sub_id,
                        bool requeue_unacked, wr_loop_t *reply, wr_count_cb cb, void *arg);

/* ------------------------------------------------------------------------ */
/* Exchanges and bindings (AMQP 0-9-1 model, per tenant)                    */

/*
 * Every tenant has these exchanges from its first use: "" (the default
 * exchange: a direct exchange that routes to the queue named by the routing
 * key; it cannot be declared, bound or deleted: WR_EDENIED), amq.direct,
 * amq.fanout, amq.topic, amq.headers and amq.match (headers). Names starting
 * with "amq." are reserved: declaring a new one or deleting one is
 * WR_EDENIED. Exchange names are 0..WR_NAME_MAX bytes ("" only names the
 * default exchange).
 *
 * Topology is replicated: every shard keeps a copy of every tenant's
 * exchanges and bindings, so routing reads local memory. A change is checked
 * and ordered by the tenant's home shard and applied on every shard before
 * its callback runs: once a declare/bind/unbind/delete has answered, every
 * later publish from anywhere sees it.
 */

/* A header in a neutral form (AMQP field tables map onto it): the headers
 * exchange matches on these. Values compare as RabbitMQ does: equal kind
 * and equal value (all integer widths are INT, float and double are FLOAT,
 * short and long strings are STR); a VOID value in a binding argument
 * matches on the key's presence alone. OTHER (tables, arrays, decimals,
 * timestamps, byte arrays) compares its encoded bytes `s`, which should
 * begin with the field's type tag. */
typedef enum {
    WR_HDR_STR = 0,
    WR_HDR_INT,
    WR_HDR_FLOAT,
    WR_HDR_BOOL,
    WR_HDR_VOID,
    WR_HDR_OTHER,
} wr_hdr_kind_t;

typedef struct wr_header {
    wr_slice_t key;
    wr_hdr_kind_t kind;
    union {
        wr_slice_t s; /* STR, OTHER */
        int64_t i;    /* INT */
        double f;     /* FLOAT */
        bool b;       /* BOOL */
    } v;
} wr_header_t;

/* At most this many argument headers on one binding, and headers given to
 * one routed publish (more: WR_EINVAL). */
#define WR_HEADERS_MAX 256

#define WR_EXCH_PASSIVE 0x01u     /* only check it exists: WR_ENOTFOUND if not */
#define WR_EXCH_DURABLE 0x02u
#define WR_EXCH_AUTO_DELETE 0x04u /* deleted when its last binding (as source) goes */
#define WR_EXCH_INTERNAL 0x08u    /* publishing to it is WR_EDENIED; e2e bindings only */
#define WR_EXCH_NO_CREATE 0x20u   /* a missing exchange is WR_EDENIED, not created (AMQP:
                                     the caller may not set up its alternate exchange) */
#define WR_EXCH_ALTERNATE 0x40u   /* internal: the core sets it from `alternate` */

/*
 * Declares an exchange of type "direct", "fanout", "topic" or "headers"
 * (an unknown type is WR_EINVAL from the call, unless PASSIVE, which
 * ignores the type). alternate (NULL: none; "" is the default exchange):
 * RabbitMQ's alternate exchange. A message that the exchange's own
 * bindings send nowhere goes through its alternate exchange instead, which
 * follows the same rule (chains end at an exchange already visited; a
 * missing alternate routes nowhere; internal ones work). Result
 * (wr_count_res_t): count 1 if created, 0 if it existed; err WR_ENOTFOUND
 * (passive, missing), WR_EEXISTS (exists with another type,
 * durable/auto_delete/internal flag or alternate exchange: AMQP 406),
 * WR_EDENIED (a new "amq." name, "" without PASSIVE, or a missing exchange
 * with WR_EXCH_NO_CREATE).
 */
wr_err_t wr_exchange_declare(wr_core_t *core, wr_slice_t tenant, wr_slice_t name,
                             wr_slice_t type, unsigned flags, const wr_slice_t *alternate,
                             wr_loop_t *reply, wr_count_cb cb, void *arg);

#define WR_EXCH_IF_UNUSED 0x10u /* WR_EBUSY if it is the source of a binding */

/*
 * Deletes an exchange with every binding it is the source or destination
 * of (an auto_delete exchange left without bindings by this goes too).
 * flags: WR_EXCH_IF_UNUSED. err: WR_ENOTFOUND, WR_EBUSY, WR_EDENIED ("" and
 * amq.*). count: bindings removed.
 */
wr_err_t wr_exchange_delete(wr_core_t *core, wr_slice_t tenant, wr_slice_t name, unsigned flags,
                            wr_loop_t *reply, wr_count_cb cb, void *arg);

/*
 * Removes every exchange the tenant declared and every binding of the
 * tenant, on every shard, and deletes its durable topology record, so a
 * tenant re-created under the same name starts with the built-ins only,
 * also after a restart. Its queues are the caller's business (the admin
 * API refuses to delete a tenant that has some). count: exchanges removed.
 */
wr_err_t wr_tenant_drop(wr_core_t *core, wr_slice_t tenant, wr_loop_t *reply, wr_count_cb cb,
                        void *arg);

/*
 * Binds queue <- exchange with a routing key (direct: equal key; topic: a
 * pattern, words split on '.', "*" one word, "#" zero or more; fanout:
 * ignored) and argument headers (headers exchange: "x-match" = "all"
 * (default), "any", "all-with-x" or "any-with-x"; other keys starting with
 * "x-" are not matched unless "-with-x"). The call copies key and args.
 * Binding twice with equal key and args is a no-op (count 0; else 1).
 * owner: the caller's connection (0: none), checked against an exclusive
 * queue's owner. err: WR_ENOTFOUND (queue or exchange missing), WR_ELOCKED
 * (exclusive queue of another owner), WR_EDENIED (the default exchange),
 * WR_EINVAL (bad x-match, too many args; from the call).
 */
wr_err_t wr_queue_bind(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, wr_slice_t exchange,
                       wr_slice_t key, const wr_header_t *args, size_t nargs, uint64_t owner,
                       wr_loop_t *reply, wr_count_cb cb, void *arg);

/* Removes the binding equal in key and args; a missing binding is not an
 * error (count 0). An auto_delete exchange left without bindings goes.
 * err: WR_ENOTFOUND (queue or exchange missing), WR_ELOCKED, WR_EDENIED. */
wr_err_t wr_queue_unbind(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue,
                         wr_slice_t exchange, wr_slice_t key, const wr_header_t *args,
                         size_t nargs, uint64_t owner, wr_loop_t *reply, wr_count_cb cb,
                         void *arg);

/* Exchange-to-exchange: messages routed by `source` also go through
 * `destination` (RabbitMQ's extension). Same rules as wr_queue_bind; cycles
 * are allowed and routing visits each exchange once per publish. */
wr_err_t wr_exchange_bind(wr_core_t *core, wr_slice_t tenant, wr_slice_t destination,
                          wr_slice_t source, wr_slice_t key, const wr_header_t *args,
                          size_t nargs, wr_loop_t *reply, wr_count_cb cb, void *arg);
wr_err_t wr_exchange_unbind(wr_core_t *core, wr_slice_t tenant, wr_slice_t destination,
                            wr_slice_t source, wr_slice_t key, const wr_header_t *args,
                            size_t nargs, wr_loop_t *reply, wr_count_cb cb, void *arg);

/* ------------------------------------------------------------------------ */
/* Routed publish                                                           */

#define WR_PUB_MANDATORY 0x02u /* the caller will return unroutable messages
                                  (reached[i] == 0); the core reports reached
                                  counts either way */

typedef struct wr_route_res {
    /* WR_ENOTFOUND (no such exchange), WR_EDENIED (internal exchange),
     * WR_ESHUTDOWN: nothing was published. WR_EQUOTA (a queue with overflow
     * reject refused them), WR_EIO (a durable queue could not store them):
     * published to the other queues (see reached); an AMQP front end nacks. */
    wr_err_t err;
    const uint32_t *reached; /* n counts: queues that stored message i */
    size_t n;
} wr_route_res_t;
typedef void (*wr_route_cb)(void *arg, const wr_route_res_t *res);

/*
 * Publishes n messages (1..WR_BATCH_MAX) through an exchange of the tenant
 * with one routing key and one header list (the headers exchange matches
 * them; the core keeps no copy after routing). Every message goes to the
 * same set of queues, each queue at most once however many bindings or
 * exchange-to-exchange paths lead to it (cycles end). "" is the default
 * exchange: the queue named by the routing key.
 *
 * Routing reads the topology replica of the calling thread's shard when the
 * caller runs on a shard loop (wr_core_loop), else of shard 0 (one hop). The
 * messages then go to each target queue's shard as one request per shard,
 * sharing the bodies. The callback fires once every target has stored them
 * as durably as it asks (durable queue + persistent message: synced).
 *
 * Order: the messages of one caller thread reach each queue in call order.
 * Each message keeps the exchange and routing key (for deliveries and
 * dead-lettering); the producer field is not kept.
 *
 * The bodies' references pass to the core even when the call fails. The
 * call returns WR_EINVAL for bad arguments and WR_ETOOBIG for an oversized
 * body. cb may be NULL (fire and forget; reply may then be NULL too).
 */
wr_err_t wr_publish_routed(wr_core_t *core, wr_slice_t tenant, wr_slice_t exchange,
                           wr_slice_t routing_key, const wr_header_t *headers, size_t nheaders,
                           wr_msg_in_t *msgs, size_t n, unsigned flags, wr_loop_t *reply,
                           wr_route_cb cb, void *arg);

/* ------------------------------------------------------------------------ */
/* Acknowledgements (AMQP basic.ack / nack / reject)                        */

/*
 * Deletes the messages `ids` that are under claim `claim_id` (a
 * subscription's, an owner_hold claim's, or a timed claim's); ids not under
 * it are ignored (an AMQP front end checks delivery tags itself). A held
 * claim left with nothing goes. count: messages deleted. n <= WR_BATCH_MAX.
 * cb may be NULL (fire and forget; reply may then be NULL too). err:
 * WR_ENOTFOUND if the queue is gone.
 */
wr_err_t wr_ack(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t claim_id,
                const uint64_t *ids, size_t n, wr_loop_t *reply, wr_count_cb cb, void *arg);

#define WR_REL_REQUEUE 0x01u    /* back to the queue in their places, redelivered */
#define WR_REL_DEADLETTER 0x02u /* not requeued: dead-letter them ("rejected") if the
                                   queue has a dead-letter exchange (the default
                                   when WR_REL_REQUEUE is not given), else drop */

/*
 * Ends the claim on the messages `ids` under claim `claim_id` (ignoring
 * others): WR_REL_REQUEUE puts them back where they were (by id, ahead of
 * later messages) to be delivered again with redelivered set; otherwise they
 * are dead-lettered with reason "rejected" when the queue has a dead-letter
 * exchange, else dropped. count: messages released. cb may be NULL.
 */
wr_err_t wr_release(wr_core_t *core, wr_slice_t tenant, wr_slice_t queue, uint64_t claim_id,
                    const uint64_t *ids, size_t n, unsigned flags, wr_loop_t *reply,
                    wr_count_cb cb, void *arg);

/* ------------------------------------------------------------------------ */
/* Observation                                                              */

typedef struct wr_queue_metrics {
    wr_slice_t tenant, name;
    uint64_t ready, claimed, bytes;
    uint64_t published, delivered, acked, expired;
    uint32_t consumers;
} wr_queue_metrics_t;

typedef struct wr_shard_metrics {
    unsigned shard;
    uint64_t queues;
    uint64_t lag_last_us, lag_max_us;
    uint64_t requests; /* mailbox requests served */
} wr_shard_metrics_t;

typedef struct wr_metrics_res {
    const wr_queue_metrics_t *queues;
    size_t nqueues;
    const wr_shard_metrics_t *shards;
    size_t nshards;
} wr_metrics_res_t;
typedef void (*wr_metrics_cb)(void *arg, const wr_metrics_res_t *res);

/* Gathers a snapshot from every shard. */
wr_err_t wr_core_metrics(wr_core_t *core, wr_loop_t *reply, wr_metrics_cb cb, void *arg);

#endif
