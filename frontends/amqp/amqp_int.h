/*
 * amqp_int.h - private declarations shared by the files of the AMQP front end.
 *
 * Who does what:
 *   amqp.c       listeners on every shard loop, sockets (bufferevents), the ops
 *   conn.c       the connection state machine: protocol header, handshake,
 *                connection.* methods, connection exceptions; driven from a
 *                byte buffer with an output sink, so tests and fuzzers need
 *                no socket
 *   frame.c      the frame reader (7-byte header + frame-end check) and writer
 *   channel.c    channels: open/close/flow, content assembly, channel exceptions
 *   methods.c    the method table: class/method id -> handler, and dispatch
 *   auth.c       SASL PLAIN and AMQPLAIN parsing, credential checks
 *   errors.c     wr_err_t -> AMQP reply code, reply names
 *   guard.c      field tables checked (nesting depth) before rabbitmq-c decodes
 *   heartbeat.c  timers: handshake timeout, heartbeats both ways, close timeout
 *   replyto.c    direct reply-to (amq.rabbitmq.reply-to)
 *
 * Threads: a connection and its channels belong to the loop that accepted the
 * socket; nothing here is touched from another thread except the counters in
 * wr_amqp_env_t (atomics).
 *
 * Memory: a decoded method lives in the connection's frame pool, recycled
 * after each frame. rabbitmq-c's decoded byte strings point into the frame's
 * bytes, so anything that must outlive the frame (a publish waiting for its
 * content) is copied into the channel's pool first.
 */
#ifndef WR_AMQP_INT_H
#define WR_AMQP_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "../../core/auth.h"
#include "../../core/quota.h"
#include "../../core/wr.h"

struct evbuffer;

/* ------------------------------------------------------------------------ */
/* Limits and what we propose in connection.tune                             */

#define WR_AMQP_FRAME_MAX 131072u    /* proposed and largest accepted frame_max */
#define WR_AMQP_FRAME_MIN 4096u      /* AMQP FRAME-MIN-SIZE */
#define WR_AMQP_FRAME_OVERHEAD 8u    /* 7-byte header + frame-end octet */
#define WR_AMQP_CHANNEL_MAX 2047u    /* proposed and largest channel_max */
#define WR_AMQP_HEARTBEAT_S 60u      /* proposed heartbeat */
#define WR_AMQP_HANDSHAKE_MS 10000   /* header to open-ok, or the socket goes */
#define WR_AMQP_CLOSE_MS 3000        /* wait for connection.close-ok, flush */
#define WR_AMQP_OUT_HIGH (1u << 20)  /* output bytes above which we stop reading */
#define WR_AMQP_OUT_LOW (256u << 10) /* ... and below which we read again */
#define WR_AMQP_IN_MAX (2 * (WR_AMQP_FRAME_MAX + WR_AMQP_FRAME_OVERHEAD)) /* read cap */
#define WR_AMQP_MSG_MAX_DEFAULT (256u << 10) /* body limit when the config has none */

/* The 8-byte protocol header of AMQP 0-9-1. */
#define WR_AMQP_HEADER "AMQP\x00\x00\x09\x01"
#define WR_AMQP_HEADER_LEN 8u

/* ------------------------------------------------------------------------ */
/* Shared by every connection of one front end                               */

typedef struct wr_amqp_env {
    wr_core_t *core;            /* NULL in unit tests and fuzzing */
    uint32_t max_message_bytes; /* content body limit (406 above it) */
    _Atomic uint64_t connections, connections_total, channels;
    _Atomic uint64_t auth_failures, protocol_errors;
    _Atomic uint64_t inflight; /* core requests not answered yet */
    /* Users and permissions (core/auth.h); NULL: guest/guest from loopback
     * only, everything allowed (unit tests, fuzzing). */
    struct wr_auth *auth;
    bool auth_required; /* --auth required: no open vhosts for local guests */
    /* Of those, a consumer's parked long-poll claims (deliver.c): waiting for
     * messages is not an in-flight write, so SIGTERM does not drain on them
     * (the core's stop ends them); as the REST front end's longpolls. */
    _Atomic uint64_t longpolls;
    /* Consumers by queue, every connection of this front end: exclusive
     * basic.consume and consumer counts (deliver.c). A zeroed mutex is a
     * valid one (glibc), so a memset env works. */
    pthread_mutex_t reg_mu;
    struct wr_amqp_reg *reg;
} wr_amqp_env_t;

/* ------------------------------------------------------------------------ */
/* frame.c                                                                   */

typedef struct wr_amqp_frame {
    uint8_t type; /* AMQP_FRAME_METHOD, _HEADER, _BODY, _HEARTBEAT, or other */
    uint16_t channel;
    uint32_t size; /* payload bytes */
    const uint8_t *payload;
} wr_amqp_frame_t;

/*
 * Checks the start of a stream against the 0-9-1 protocol header.
 * WR_OK: the 8 bytes are there and right; WR_EAGAIN: right so far, need more;
 * WR_EPROTO: anything else (answer with our header and close).
 */
wr_err_t wr__amqp_header_check(const uint8_t *buf, size_t len);

/*
 * Parses one frame from buf[0..len). frame_max is the negotiated maximum
 * frame size, header and frame-end included (0: WR_AMQP_FRAME_MAX).
 *  WR_OK       *out set (payload points into buf), *used = bytes of the frame
 *  WR_EAGAIN   the frame is not complete yet
 *  WR_ETOOBIG  the header announces a frame larger than frame_max
 *  WR_EPROTO   the frame-end octet is not 0xCE
 */
wr_err_t wr__amqp_frame_parse(const uint8_t *buf, size_t len, uint32_t frame_max,
                              wr_amqp_frame_t *out /* OUT */, size_t *used /* OUT */);

/* Same, reading from an evbuffer (made contiguous as needed); nothing is
 * drained: the caller drains *used bytes once done with the payload. */
wr_err_t wr__amqp_frame_read(struct evbuffer *in, uint32_t frame_max,
                             wr_amqp_frame_t *out /* OUT */, size_t *used /* OUT */);

/* A content header frame's fixed part. props/props_len: the property flags
 * and list, for amqp_decode_properties. */
typedef struct wr_amqp_content_hdr {
    uint16_t class_id;
    uint64_t body_size;
    const uint8_t *props;
    size_t props_len;
} wr_amqp_content_hdr_t;

/* WR_OK, or WR_EPROTO for a short header, a non-zero weight, or property
 * flags that announce a continuation word (no 0-9-1 class has one; the
 * decoder of rabbitmq-c 0.11 mishandles them). */
wr_err_t wr__amqp_content_hdr_parse(const uint8_t *payload, size_t len,
                                    wr_amqp_content_hdr_t *out /* OUT */);

/* Appends one method frame. WR_EINVAL if the method does not encode within
 * frame_max (a bug, or a field too long). */
wr_err_t wr__amqp_write_method(struct evbuffer *out, uint16_t channel, amqp_method_number_t id,
                               void *decoded, uint32_t frame_max);

/* Appends a heartbeat frame. */
void wr__amqp_write_heartbeat(struct evbuffer *out);

/* Appends a content header and as many body frames as frame_max requires.
 * props is an amqp_basic_properties_t (or NULL: no properties). */
wr_err_t wr__amqp_write_content(struct evbuffer *out, uint16_t channel, uint16_t class_id,
                                void *props, const void *body, size_t body_len, uint32_t frame_max);

/* ------------------------------------------------------------------------ */
/* guard.c                                                                   */

/* Deepest nesting of tables and arrays accepted from the network. */
#define WR_AMQP_TABLE_DEPTH 32

/* An encoded field table (with its 4-byte length) that is well formed and
 * nests at most WR_AMQP_TABLE_DEPTH deep: safe to give to amqp_decode_table. */
bool wr__amqp_table_ok(const uint8_t *p, size_t len);

/* The same check for the tables inside a method's encoded fields (p: after
 * the class and method ids); true for methods without tables. */
bool wr__amqp_method_ok(amqp_method_number_t id, const uint8_t *p, size_t len);

/* The same for encoded basic properties (flags first): the headers table. */
bool wr__amqp_props_ok(const uint8_t *p, size_t len);

/* ------------------------------------------------------------------------ */
/* auth.c                                                                    */

typedef struct wr_amqp_creds {
    amqp_bytes_t user; /* borrowed from the response (or its decode pool) */
    amqp_bytes_t pass;
} wr_amqp_creds_t;

/* Parses a SASL response. mechanism "PLAIN": [authzid] \0 user \0 pass;
 * "AMQPLAIN": a field table without its length prefix, keys LOGIN and
 * PASSWORD (long strings). WR_EINVAL: unknown mechanism; WR_EPROTO: the
 * response does not parse. The pool holds the AMQPLAIN decode. */
wr_err_t wr__amqp_auth_parse(amqp_bytes_t mechanism, amqp_bytes_t response, amqp_pool_t *pool,
                             wr_amqp_creds_t *out /* OUT */);

/* Checks credentials: WR_OK, or WR_EDENIED with a reason for the log and the
 * client. For now one built-in user, guest/guest, accepted only from a
 * loopback peer (real users come with tenants). */
wr_err_t wr__amqp_auth_check(const wr_amqp_creds_t *creds, bool loopback,
                             const char **why /* OUT */);

/* How a connection's operations are checked (c->who, set at connection.open). */
#define WR_AMQP_WHO_OPEN 0  /* no registry, or an unregistered vhost in loopback
                               mode from a loopback peer: everything allowed */
#define WR_AMQP_WHO_USER 1  /* the user's grants on the vhost */
#define WR_AMQP_WHO_ADMIN 2 /* an admin: everything */


/* The mechanisms we offer in connection.start, space-separated. */
#define WR_AMQP_MECHANISMS "PLAIN AMQPLAIN"

/* ------------------------------------------------------------------------ */
/* errors.c                                                                  */

typedef struct wr_amqp_reply {
    uint16_t code; /* AMQP reply code */
    bool hard;     /* true: connection exception; false: channel exception */
} wr_amqp_reply_t;

wr_amqp_reply_t wr__amqp_reply_of(wr_err_t err);

/* "NOT_FOUND" for 404 and so on: the prefix of RabbitMQ's reply texts. */
const char *wr__amqp_reply_name(uint16_t code);

/* ------------------------------------------------------------------------ */
/* conn.c                                                                    */

typedef enum {
    WR_AMQP_S_HEADER = 0, /* waiting for the protocol header */
    WR_AMQP_S_START,      /* connection.start sent, waiting for start-ok */
    WR_AMQP_S_TUNE,       /* connection.tune sent, waiting for tune-ok */
    WR_AMQP_S_OPENING,    /* tuned, waiting for connection.open */
    WR_AMQP_S_OPEN,       /* running */
    WR_AMQP_S_CLOSING,    /* we sent connection.close: only close-ok counts */
    WR_AMQP_S_CLOSED,     /* nothing more is read: flush the output, then close */
} wr_amqp_state_t;

/* What the connection wants from its socket. */
typedef enum {
    WR_AMQP_WANT_READ = 0, /* read and feed */
    WR_AMQP_WANT_PAUSE,    /* output is backed up: stop reading until it drains */
    WR_AMQP_WANT_FLUSH,    /* write what is queued, then close */
    WR_AMQP_WANT_DROP,     /* close now, without flushing */
} wr_amqp_want_t;

typedef struct wr_amqp_chan wr_amqp_chan_t;
typedef struct wr_amqp_conn wr_amqp_conn_t;
typedef struct wr_amqp_pub wr_amqp_pub_t;
typedef struct wr_amqp_settle wr_amqp_settle_t;
typedef struct wr_amqp_consumer wr_amqp_consumer_t;
typedef struct wr_amqp_claim wr_amqp_claim_t;
typedef struct wr_amqp_unacked wr_amqp_unacked_t;
typedef struct wr_amqp_slot wr_amqp_slot_t;
typedef struct wr_amqp_txop wr_amqp_txop_t;

struct wr_amqp_conn {
    uint64_t id;
    unsigned refs;
    wr_amqp_state_t state;
    bool drop;    /* close without flushing (timeouts, garbage) */
    bool counted; /* included in env->connections */
    wr_amqp_env_t *env;
    struct evbuffer *out;     /* borrowed: the socket's output; NULL once detached */
    void (*kick)(void *host); /* host: re-read want() (async events); may be NULL */
    void *host;

    char peer[64];
    bool loopback;

    /* Negotiated (connection.tune-ok). Before tune-ok: our maxima. */
    uint32_t frame_max;
    uint16_t channel_max;
    uint16_t heartbeat_s;

    /* From start-ok and open. */
    bool cap_auth_failure_close; /* the client announced authentication_failure_close */
    bool authenticating;         /* the verifier has the password: read nothing */
    bool cap_amqplain;           /* logged in with AMQPLAIN (for the refusal text) */
    uint8_t who;                 /* WR_AMQP_WHO_* */
    unsigned uflags;             /* the user's WR_USER_* flags */
    uint64_t perm_gen;           /* registry generation of the cached publish check */
    char perm_exchange[WR_NAME_MAX + 1]; /* the last exchange allowed for write */
    int perm_exchange_len;               /* -1: none */
    char user[256];
    char tenant[WR_NAME_MAX + 1];
    size_t tenant_len;
    wr_tenant_t *tn;  /* its quotas (set at connection.open; lives with the core) */
    bool tn_counted;  /* counted under max-connections */
    bool tn_registered; /* the vhost was a registered tenant at connection.open */

    /* Clock (monotonic ms), as last given to feed/tick. */
    int64_t now_ms, started_ms, last_recv_ms, last_sent_ms, closing_ms;

    amqp_pool_t frame_pool; /* decoded methods, recycled after each frame */

    /* Channels by id: a table grown on demand up to channel_max + 1. */
    wr_amqp_chan_t **chans;
    uint32_t chans_cap;
    uint32_t chans_open;
    uint64_t chans_freed; /* bumped by every channel free: "is ch still alive?" */

    /* Messaging: core calls, gathering, deliveries (ops.c, publish.c, deliver.c). */
    wr_loop_t *loop;          /* reply loop of core calls: the loop the socket is on */
    bool cap_cancel_notify;   /* the client announced consumer_cancel_notify */
    bool cap_blocked;         /* the client announced connection.blocked */
    bool blocked;             /* we sent connection.blocked (store full) */
    bool published;           /* sent a basic.publish: memory blocking applies */
    bool mem_blocked;         /* memory high watermark: nothing is read (blocked.c) */
    int64_t blocked_check_ms; /* when the store was last asked while blocked */
    uint64_t chan_serial;     /* last channel serial given out */
    size_t backlog_bytes;     /* bytes held in channel backlogs */
    bool want_pump;           /* consumers wait for the output to drain */
    bool credit_pending;      /* subscriptions have prefetch slots to get back */
    bool replaying;           /* inside wr__amqp_chan_replay */
    bool feeding;             /* inside wr__amqp_conn_feed: no kick */
    bool dying;               /* last reference gone: nothing new goes to the core */
    wr_amqp_pub_t *pub;       /* publishes being gathered into one core call */
    wr_amqp_settle_t *settle; /* acks and releases gathered for the core */
    uint8_t *scratch;         /* deliveries are encoded here, then added at once */
    size_t scratch_cap;
    uint8_t *replay_buf; /* the backlog frame being replayed */
    size_t replay_cap;

    size_t in_seen; /* input bytes left after the last feed: more means new data */
    /* Input bytes to throw away: the rest of a frame we could not accept
     * (then parsing resumes), or UINT64_MAX once the stream is lost. The
     * socket keeps reading so that closing it does not reset the peer
     * before it has read our connection.close. */
    uint64_t discard;
};

/*
 * A new connection in state HEADER, with one reference (the host's). out is
 * where every frame goes; the host writes it to the socket. loopback says
 * whether the peer address is a loopback one (guest is only accepted then).
 */
wr_amqp_conn_t *wr__amqp_conn_new(wr_amqp_env_t *env, struct evbuffer *out, const char *peer,
                                  bool loopback, int64_t now_ms);

/* Consumes as many complete frames as `in` holds (draining them), unless
 * the output backs up or the connection closes. Then ask want(). */
void wr__amqp_conn_feed(wr_amqp_conn_t *c, struct evbuffer *in, int64_t now_ms);

wr_amqp_want_t wr__amqp_conn_want(const wr_amqp_conn_t *c);

/* The broker is going down: connection.close 320 CONNECTION_FORCED. */
void wr__amqp_conn_shutdown(wr_amqp_conn_t *c);

/*
 * The registry changed (amqp.c's sweep): an open connection whose user was
 * deleted, or whose registered vhost was, hears connection.close 320
 * CONNECTION_FORCED "user 'u' is deleted" / "vhost 'v' is deleted", as
 * RabbitMQ's connection tracking does on user_deleted and vhost_deleted.
 * A revoked grant does not close it: RabbitMQ's clear_permissions only
 * emits an event; every later method is checked against the registry and
 * refused with 403 (perm.c). Returns true if it started closing c.
 */
bool wr__amqp_conn_recheck(wr_amqp_conn_t *c);

/* The socket is gone: drop the output sink, free channels, drop the host's
 * reference. */
void wr__amqp_conn_detach(wr_amqp_conn_t *c);

wr_amqp_conn_t *wr__amqp_conn_ref(wr_amqp_conn_t *c);
void wr__amqp_conn_unref(wr_amqp_conn_t *c); /* NULL-safe; frees at 0 */

/*
 * Connection exception: connection.close(code, text) and state CLOSING, in
 * which only close-ok (or close) is read. Before the connection is open the
 * socket is just closed, as RabbitMQ does, except for a refused login to a
 * client that announced authentication_failure_close (403) and a refused
 * vhost (530). cause: the method that failed, or 0.
 */
void wr__amqp_conn_error(wr_amqp_conn_t *c, uint16_t code, amqp_method_number_t cause,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Sends a method frame on channel ch (0: connection) with the connection's
 * frame_max. A failure to encode is a bug in the caller: connection 541. */
void wr__amqp_send(wr_amqp_conn_t *c, uint16_t ch, amqp_method_number_t id, void *decoded);

/* blocked.c: connection.blocked while the store is full (persistent
 * publishes are nacked then), connection.unblocked once it has room. Call
 * after a publish failed for lack of space, and from the connection's tick. */
void wr__amqp_blocked_check(wr_amqp_conn_t *c, int64_t now_ms);
/* blocked.c: the memory high watermark (core/mem.h). A connection that has
 * published stops being read while memory is above the mark (want() says
 * PAUSE), and hears connection.blocked "low on memory" if it announced the
 * capability; tick() asks again every WR_AMQP_BLOCKED_POLL_MS. Call before
 * feeding what a read brought. */
void wr__amqp_mem_check(wr_amqp_conn_t *c, int64_t now_ms);
/* How often a blocked connection asks whether the store has room again. */
#define WR_AMQP_BLOCKED_POLL_MS 250

/* Handlers of connection.* methods (channel 0). */
typedef struct wr_amqp_call wr_amqp_call_t;
void wr__amqp_on_start_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_secure_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_tune_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_open(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_close(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_close_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);

/* ------------------------------------------------------------------------ */
/* heartbeat.c                                                               */

/* When the host should call tick next (monotonic ms), or INT64_MAX. */
int64_t wr__amqp_conn_deadline(const wr_amqp_conn_t *c);

/* Enforces the handshake and close timeouts and heartbeats both ways:
 * sends a heartbeat when nothing was sent for half the interval, drops the
 * connection when nothing was received for two intervals. */
void wr__amqp_conn_tick(wr_amqp_conn_t *c, int64_t now_ms);

/* ------------------------------------------------------------------------ */
/* channel.c                                                                 */

typedef enum {
    WR_AMQP_CH_OPEN = 1,
    WR_AMQP_CH_CLOSING, /* we sent channel.close: only close-ok counts */
} wr_amqp_ch_state_t;

typedef enum {
    WR_AMQP_CONTENT_NONE = 0,
    WR_AMQP_CONTENT_HEADER, /* a content method arrived: a header must follow */
    WR_AMQP_CONTENT_BODY,   /* header arrived: body frames until body_size */
} wr_amqp_content_state_t;

typedef struct wr_amqp_method wr_amqp_method_t;

/* Basic properties as received (flags + fields), with what the broker reads
 * from them located. The pointers point into `raw`. */
typedef struct wr_amqp_props {
    const uint8_t *raw;
    size_t raw_len;
    uint16_t flags;
    wr_slice_t headers;    /* the encoded table (4-byte length first), or empty */
    wr_slice_t expiration; /* AMQP_BASIC_EXPIRATION_FLAG */
    wr_slice_t user_id;    /* AMQP_BASIC_USER_ID_FLAG */
    wr_slice_t reply_to;   /* AMQP_BASIC_REPLY_TO_FLAG */
    uint8_t delivery_mode; /* 0 if absent */
    uint8_t priority;      /* 0 if absent */
} wr_amqp_props_t;

struct wr_amqp_chan {
    uint16_t id;
    wr_amqp_ch_state_t state;
    bool flow_active; /* channel.flow from the client: may we send content? */
    uint64_t serial;  /* unique per connection: tells a reused id apart */
    bool tn_counted;  /* counted under the tenant's max-channels */

    /* Content assembly (basic.publish + header + body frames). */
    wr_amqp_content_state_t content;
    const wr_amqp_method_t *content_method;
    void *content_args;    /* decoded into pool, from a copy */
    wr_amqp_props_t props; /* points into props_tagged + 1 */
    uint8_t *props_tagged; /* format tag 1, then the raw properties (pool) */
    size_t props_tagged_len;
    uint64_t body_size, body_got;
    uint8_t *body;    /* malloc'd body_size bytes (multi-frame bodies) */
    wr_body_t *msg;   /* the assembled message (one reference) */
    amqp_pool_t pool; /* the pending content's decode */

    /* Ordering: while a core request of a method is out (busy), the frames
     * that follow on this channel wait in backlog, as RabbitMQ runs a
     * channel's methods one after the other. */
    bool busy;
    struct evbuffer *backlog;

    /* Publishing. */
    bool confirm;     /* confirm.select */
    bool tx;          /* tx.select */
    uint64_t pub_seq; /* publishes counted since confirm.select */
    /* In-order answers: confirms and tx.commit-ok, a ring by slot number. */
    wr_amqp_slot_t *slots;
    uint64_t slot_head, slot_tail; /* [head, tail) pending */
    uint32_t slot_cap;
    uint64_t confirmed;    /* highest seq acked or nacked to the client */
    wr_amqp_txop_t *txops; /* buffered in a transaction */
    size_t ntx, tx_cap;

    /* Consuming. */
    wr_amqp_consumer_t *consumers;
    uint32_t nconsumers;
    uint16_t prefetch;        /* basic.qos global=false: for new consumers */
    uint16_t prefetch_global; /* basic.qos global=true: the channel's limit */
    uint32_t unacked_n;       /* deliveries not settled yet */
    uint64_t next_tag;        /* last delivery tag given */
    wr_amqp_unacked_t *un;    /* ring: tags un_base .. next_tag */
    uint64_t un_base;         /* tag of un[un_head] */
    uint32_t un_head, un_len, un_cap;
    wr_amqp_claim_t *claims; /* claims with unsettled messages */

    char last_queue[WR_NAME_MAX + 1]; /* the last queue declared: "" means it */
    uint8_t last_queue_len;

    /* Direct reply-to (replyto.c): the queue of the channel's reply
     * consumer, "amq.rabbitmq.reply-to.<token>"; reply_len 0: none. */
    char reply_q[64];
    uint8_t reply_len;
};

wr_amqp_chan_t *wr__amqp_chan_get(wr_amqp_conn_t *c, uint16_t id);

/* Frees every channel (connection closing or gone). */
void wr__amqp_chan_free_all(wr_amqp_conn_t *c);

/*
 * Channel exception: channel.close(code, text) and state CLOSING, in which
 * only close-ok is read. The code is sent as given; wr__amqp_fail picks
 * channel or connection from the error.
 */
void wr__amqp_chan_error(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, uint16_t code,
                         amqp_method_number_t cause, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Maps err (errors.c) and raises a channel or connection exception. */
void wr__amqp_fail(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, wr_err_t err, amqp_method_number_t cause,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A content-bearing method decoded: keep it (copying its bytes into the
 * channel's pool) and wait for header and body. */
void wr__amqp_chan_expect_content(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_method_t *m,
                                  const wr_amqp_frame_t *f);

/* A content header or body frame for a channel != 0. */
void wr__amqp_chan_content_frame(wr_amqp_conn_t *c, const wr_amqp_frame_t *f);

/* Handlers of channel.* and access.* methods. */
void wr__amqp_on_channel_open(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_channel_flow(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_channel_flow_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_channel_close(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_channel_close_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch,
                                  const wr_amqp_call_t *call);
void wr__amqp_on_access_request(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);

/* ------------------------------------------------------------------------ */
/* methods.c                                                                 */

/* One call of a method handler: the decoded arguments and, for content
 * methods, the assembled content. Valid during the call only. */
struct wr_amqp_call {
    amqp_method_number_t id;
    uint16_t channel;             /* the frame's channel */
    void *args;                   /* e.g. amqp_basic_publish_t * */
    const wr_amqp_props_t *props; /* content methods, else NULL */
    wr_slice_t body;              /* content methods */
};

/*
 * A handler. ch is NULL for channel 0 and for channel.open (the channel does
 * not exist yet). It answers (wr__amqp_send), or raises an exception
 * (wr__amqp_chan_error, wr__amqp_conn_error, wr__amqp_fail); handlers that
 * call the core begin an op (ops.c) and answer from its callback.
 */
typedef void (*wr_amqp_handler_fn)(wr_amqp_conn_t *c, wr_amqp_chan_t *ch,
                                   const wr_amqp_call_t *call);

#define WR_AMQP_M_CONTENT 0x01u /* content (header + body frames) follows */
#define WR_AMQP_M_SERVER 0x02u  /* sent by servers only: a client sending it is 503 */

struct wr_amqp_method {
    amqp_method_number_t id;
    const char *name; /* "basic.publish" */
    unsigned flags;
    wr_amqp_handler_fn fn; /* NULL with WR_AMQP_M_SERVER */
};

/* The table entry for a method id, or NULL if 0-9-1 has no such method. */
const wr_amqp_method_t *wr__amqp_method_find(amqp_method_number_t id);

/* "basic.publish", or "unknown" */
const char *wr__amqp_method_name(amqp_method_number_t id);

/* A method frame (any channel, state OPEN, or channel 0 during the
 * handshake): checks channel rules, decodes, calls the handler. */
void wr__amqp_dispatch(wr_amqp_conn_t *c, const wr_amqp_frame_t *f);

/* Calls m's handler with the assembled content (from channel.c). */
void wr__amqp_call(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_method_t *m,
                   const wr_amqp_call_t *call);

/* perm.c: before a method with a channel runs, may the connection's user
 * do it (RabbitMQ's configure/write/read rules)? False after raising 403
 * ACCESS_REFUSED on the channel. */
bool wr__amqp_permitted(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);

/* perm.c, for checks a handler makes itself: may the connection's user do
 * perm on name (always, without a registry or for a guest of an open
 * vhost)? And the 403 channel exception with RabbitMQ's text. */
bool wr__amqp_may(wr_amqp_conn_t *c, wr_perm_t perm, wr_slice_t name);
void wr__amqp_refused(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id,
                      const char *kind, wr_slice_t name);

#define WR_AMQP_CLASS(id) ((uint16_t)((id) >> 16))
#define WR_AMQP_METHOD(id) ((uint16_t)((id)&0xFFFFu))

/* ------------------------------------------------------------------------ */
/* props.c                                                                   */

/* Basic properties as received: the first byte of a stored message's props
 * says their format. */
#define WR_AMQP_PROPS_091 1u

/* Locates the fields the broker reads in encoded basic properties (flags
 * first, no continuation word) and checks that every present field fits:
 * WR_OK, or WR_EPROTO. The headers table's nesting is checked too. */
wr_err_t wr__amqp_props_scan(const uint8_t *p, size_t len, wr_amqp_props_t *out /* OUT */);

/* Encoded properties for a message that has none of ours (published over
 * REST): content_type application/json, delivery_mode 2 or 1. */
wr_slice_t wr__amqp_props_default(bool persistent);

/* The top-level entries of an encoded field table (4-byte length first, as
 * checked by wr__amqp_table_ok) as headers for the core; slices point into
 * the table. WR_EINVAL if more than max. */
wr_err_t wr__amqp_headers_raw(wr_slice_t table, wr_header_t *out, size_t max, size_t *n /* OUT */);

/* The same from a decoded table (binding arguments); OTHER values are
 * encoded into pool. */
wr_err_t wr__amqp_headers_table(const amqp_table_t *t, amqp_pool_t *pool, wr_header_t *out,
                                size_t max, size_t *n /* OUT */);

/* The expiration property: a decimal number of milliseconds. */
bool wr__amqp_expiration(wr_slice_t s, int64_t *ms /* OUT */);

/* prefix + 22 random characters of [A-Za-z0-9_-] (RabbitMQ's amq.gen- and
 * amq.ctag- names); buf holds at least strlen(prefix) + 23 bytes. */
size_t wr__amqp_random_name(char *buf, const char *prefix);

/* Reads an amqp_bytes_t as a core slice. */
static inline wr_slice_t wr__amqp_slice(amqp_bytes_t b)
{
    wr_slice_t s = {b.bytes, b.len};
    return s;
}

/* ------------------------------------------------------------------------ */
/* ops.c: a method waiting for the core                                      */

typedef struct wr_amqp_op wr_amqp_op_t;

struct wr_amqp_op {
    wr_amqp_conn_t *c; /* a reference */
    uint16_t ch_id;
    uint64_t serial; /* the channel's serial when the op began */
    amqp_method_number_t id;
    bool nowait;
    uint64_t u64; /* op-specific */
    void *ptr;    /* op-specific */
    uint8_t alen, blen;
    char a[WR_NAME_MAX + 1]; /* op-specific names, for replies and texts */
    char b[WR_NAME_MAX + 1];
};

/*
 * Begins a method that calls the core: the channel becomes busy (the frames
 * after it wait), the connection is referenced and counted in flight.
 * Every op ends with wr__amqp_op_done, from its core callback, or at once
 * if the core call failed (then its callback never runs).
 */
wr_amqp_op_t *wr__amqp_op_new(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id,
                              bool nowait);

/* The op's channel if it is still the same one and open, else NULL. */
wr_amqp_chan_t *wr__amqp_op_chan(wr_amqp_op_t *op);

/* Ends the op: the channel is free again and its backlog runs; frees op. */
void wr__amqp_op_done(wr_amqp_op_t *op);

/* A copy of a name into op->a or op->b. */
void wr__amqp_op_name(char *dst, uint8_t *len, amqp_bytes_t b);

/* Answers the op's method (unless nowait) on its channel. */
void wr__amqp_op_reply(wr_amqp_op_t *op, wr_amqp_chan_t *ch, amqp_method_number_t id,
                       void *decoded);

/* The connection's vhost name, for error texts. */
const char *wr__amqp_vhost(const wr_amqp_conn_t *c);

/* quota.c: the text of a tenant quota refusal (WR_ELIMIT, WR_ERATE, or
 * WR_ETOOBIG from max-message-bytes) into buf; false if err is not one.
 * what: the caller's text ("queue 'q': ..."), its subject is used. */
bool wr__amqp_quota_text(wr_amqp_conn_t *c, wr_err_t err, const char *what, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* topology.c: exchange.* and queue.*                                        */

void wr__amqp_on_exchange_declare(wr_amqp_conn_t *c, wr_amqp_chan_t *ch,
                                  const wr_amqp_call_t *call);
void wr__amqp_on_exchange_delete(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_exchange_bind(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_exchange_unbind(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_queue_declare(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_queue_bind(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_queue_unbind(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_queue_purge(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_queue_delete(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);

/* Parses queue.declare arguments into attrs. On a bad argument returns
 * false with RabbitMQ's text in why. */
bool wr__amqp_queue_args(const amqp_table_t *args, wr_queue_attrs_t *attrs /* OUT */, char *why,
                         size_t why_cap);

/* Parses basic.consume arguments: x-priority (consumer priority, an
 * integer; default 0). False with the reason in why on a bad value. */
bool wr__amqp_consume_args(const amqp_table_t *args, int32_t *priority /* OUT */, char *why,
                           size_t why_cap);

/* The queue name a method means: "" is the channel's last declared queue.
 * False (and a 404 raised) when there is none. */
bool wr__amqp_queue_name(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id,
                         amqp_bytes_t *name /* IN/OUT */);

/* ------------------------------------------------------------------------ */
/* publish.c: basic.publish, confirms, transactions                          */

void wr__amqp_on_basic_publish(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_confirm_select(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_tx_select(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_tx_commit(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_tx_rollback(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);

/* Sends the publishes gathered so far to the core. */
void wr__amqp_pub_flush(wr_amqp_conn_t *c);

/* The channel goes: drop what it buffered (transaction, gathered publishes). */
void wr__amqp_pub_chan_free(wr_amqp_conn_t *c, wr_amqp_chan_t *ch);
void wr__amqp_pub_conn_free(wr_amqp_conn_t *c);

/* Ordered answers of a channel (confirms, tx.commit-ok): a slot is taken in
 * method order and answered when it and every slot before it are done. */
uint64_t wr__amqp_slot_take(wr_amqp_chan_t *ch, uint8_t kind, uint64_t first, uint64_t last);
void wr__amqp_slot_done(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, uint64_t slot, bool ok);

/* ------------------------------------------------------------------------ */
/* deliver.c: consumers, basic.get, acknowledgements                          */

void wr__amqp_on_basic_qos(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_basic_consume(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_basic_cancel(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_basic_get(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_basic_ack(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_basic_nack(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_basic_reject(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_basic_recover(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);
void wr__amqp_on_basic_recover_async(wr_amqp_conn_t *c, wr_amqp_chan_t *ch,
                                     const wr_amqp_call_t *call);

/* Settles deliveries (tx.commit replays buffered ones through this).
 * kind: 0 ack, 1 reject/nack with requeue, 2 without. False: unknown tag
 * (a 406 is raised). */
bool wr__amqp_settle(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id, uint64_t tag,
                     bool multiple, int kind);

/* Starts a consumer for basic.consume under op (made by the caller, ended
 * here or in the core's answer). reply: the channel's direct reply-to
 * consumer (replyto.c): always a core subscription, cleared from the
 * channel when it ends. */
void wr__amqp_consume_start(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, wr_amqp_op_t *op,
                            amqp_bytes_t queue, amqp_bytes_t tag, bool no_ack, bool exclusive,
                            int32_t priority, bool reply);

/* ------------------------------------------------------------------------ */
/* replyto.c: direct reply-to (RabbitMQ's amq.rabbitmq.reply-to)            */

#define WR_AMQP_REPLY_TO "amq.rabbitmq.reply-to"

/* name is exactly the pseudo-queue "amq.rabbitmq.reply-to". */
bool wr__amqp_is_reply_to(amqp_bytes_t name);

/* basic.consume on the pseudo-queue (from wr__amqp_on_basic_consume, once
 * the consumer tag was checked). */
void wr__amqp_reply_consume(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call);

/* basic.publish with reply_to "amq.rabbitmq.reply-to": ch->msg gets the
 * channel's reply queue name instead. False after raising 406 when the
 * channel has no reply consumer. */
bool wr__amqp_reply_rewrite(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, amqp_method_number_t id,
                            const wr_amqp_props_t *pr);

/* Appends a message's content header and body frames at scratch[used...]
 * for channel ch: the stored properties verbatim (or the REST defaults);
 * returns the new used. */
size_t wr__amqp_put_content(wr_amqp_conn_t *c, size_t used, uint16_t ch, const wr_body_t *b,
                            bool persistent);

/* Sends the gathered acks and releases to the core. */
void wr__amqp_settle_flush(wr_amqp_conn_t *c);

/* The output drained: consumers held back may go on. */
void wr__amqp_consumers_pump(wr_amqp_conn_t *c);

/* The channel goes: its consumers end, its unsettled messages go back. */
void wr__amqp_deliver_chan_free(wr_amqp_conn_t *c, wr_amqp_chan_t *ch);
void wr__amqp_deliver_conn_free(wr_amqp_conn_t *c);

/* ------------------------------------------------------------------------ */
/* conn.c, channel.c: backlog, kick, flush                                  */

/* One frame through the connection machine (from the socket, or replayed
 * from a channel's backlog when from_backlog). */
void wr__amqp_conn_frame(wr_amqp_conn_t *c, const wr_amqp_frame_t *f, bool from_backlog);

/* Runs the channel's backlog until it is empty or the channel busy again. */
void wr__amqp_chan_replay(wr_amqp_conn_t *c, wr_amqp_chan_t *ch);

/* Something happened outside a feed (a core answer): let the host re-read
 * want() and feed what it held back. */
void wr__amqp_conn_kick(wr_amqp_conn_t *c);

/* Sends whatever is gathered (publishes, acks) to the core. */
void wr__amqp_flush(wr_amqp_conn_t *c);

/* Room for n more bytes in c->scratch. */
uint8_t *wr__amqp_scratch(wr_amqp_conn_t *c, size_t used, size_t n);

#endif
