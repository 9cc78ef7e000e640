/*
 * rest_int.h - what the files of the REST front end share with each other
 * (and with the unit tests); nothing outside frontends/rest/ includes it.
 *
 * Sections: limits, output buffers and JSON (json.c), ids (ids.c), input
 * validation (validate.c), queue metadata (meta.c), errors (errors.c), the
 * per-request call and routing (routes.c), the handlers (queues.c,
 * messages.c, claims.c, health.c, metrics.c).
 */
#ifndef WR_REST_INT_H
#define WR_REST_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rest.h"

/* ------------------------------------------------------------------------ */
/* Limits (Zaqar's defaults, zaqar/conf/transport.py and validation.py)     */

#define WR_REST_QUEUE_MAX 64    /* queue name length */
#define WR_REST_PROJECT_MAX 256 /* X-Project-Id length on queue paths */
#define WR_REST_META_MAX 65536  /* max_queue_metadata */
#define WR_REST_PAGE_MAX 20     /* max_messages_per_page, max_queues_per_page */
#define WR_REST_CLAIM_MAX 20    /* max_messages_per_claim_or_pop */
#define WR_REST_PAGE_DEFAULT 10 /* default limit of lists and claims */
#define WR_REST_MSG_TTL_MIN 60
#define WR_REST_MSG_TTL_MAX 1209600
#define WR_REST_MSG_TTL_DEFAULT 3600
#define WR_REST_DELAY_MAX 900
#define WR_REST_CLAIM_TTL_MIN 60
#define WR_REST_CLAIM_TTL_MAX 43200
#define WR_REST_CLAIM_TTL_DEFAULT 300
#define WR_REST_GRACE_MIN 60
#define WR_REST_GRACE_MAX 43200
#define WR_REST_GRACE_DEFAULT 60
#define WR_REST_POST_MAX 262144 /* max_messages_post_size */
#define WR_REST_WAIT_MAX_S 20   /* wait= (warren extension) */
#define WR_REST_JSON_DEPTH 128  /* deepest request document accepted */
#define WR_REST_PATH_MAX 1024   /* decoded path bytes */
#define WR_REST_ID_LEN 24       /* formatted message / claim id */
#define WR_REST_PARAM_MAX 128   /* {id} path parameter kept (longer is no id) */
#define WR_REST_USER_MAX 128    /* user names (= WR_AUTH_NAME_MAX) */

/* ------------------------------------------------------------------------ */
/* Output buffers and JSON (json.c)                                         */

void wr_rest_buf_reserve(wr_rest_buf_t *b, size_t extra);

/* Inline: answers are written in many small pieces (a 10-message pop makes
 * about 80 calls), most of them literals whose strlen the compiler knows. */
static inline void wr_rest_buf_put(wr_rest_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->cap - b->len < n)
        wr_rest_buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static inline void wr_rest_buf_puts(wr_rest_buf_t *b, const char *s)
{
    wr_rest_buf_put(b, s, strlen(s));
}

static inline void wr_rest_buf_putc(wr_rest_buf_t *b, char c)
{
    if (b->cap == b->len)
        wr_rest_buf_reserve(b, 1);
    b->p[b->len++] = c;
}
void wr_rest_buf_u64(wr_rest_buf_t *b, uint64_t v);
void wr_rest_buf_i64(wr_rest_buf_t *b, int64_t v);
void wr_rest_buf_fmt(wr_rest_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wr_rest_buf_free(wr_rest_buf_t *b); /* frees and zeroes */

/* Length of the valid UTF-8 sequence starting at p (1..4; n >= 1), or 0
 * if the bytes there are not one (overlong forms, surrogates, > U+10FFFF). */
size_t wr_rest_utf8_seq(const uint8_t *p, size_t n);

/* Appends s as a quoted JSON string (jansson's encoding). Invalid UTF-8
 * bytes become U+FFFD. */
void wr_rest_buf_jstr(wr_rest_buf_t *b, const char *s, size_t n);

/* Appends a message body as a JSON value: the bytes themselves when jansson
 * reads them as one JSON text (everything posted over REST), else a JSON
 * string of them when they are UTF-8, else a JSON string of their base64
 * (AMQP binaries). The verdict is kept on the body (wr_body_json): jansson
 * reads a body once, not at every read. */
void wr_rest_buf_body(wr_rest_buf_t *b, wr_body_t *body);

/* Appends s percent-encoded for a URL path or query value by libevent's
 * evhttp_uriencode (everything but A-Z a-z 0-9 - _ . ~ is escaped). */
void wr_rest_buf_urlenc(wr_rest_buf_t *b, const char *s, size_t n);

/* Appends a JSON value serialized compactly by jansson. */
void wr_rest_buf_json(wr_rest_buf_t *b, const json_t *v);

/* Parses a request document with jansson the way Zaqar's read_json does:
 * an object or an array, integers within int64, nesting at most
 * WR_REST_JSON_DEPTH. On failure returns NULL and sets *why to a
 * description for a 400. */
json_t *wr_rest_json_parse(const char *p, size_t n, const char **why);

/* ------------------------------------------------------------------------ */
/* Ids (ids.c)                                                              */

/* Formats an id as 24 lowercase hex digits, zero padded (like an ObjectId);
 * out gets a NUL too. */
void wr_rest_id_format(uint64_t id, char out[WR_REST_ID_LEN + 1]);

/* Parses exactly the format above; false for anything else (and for 0,
 * which the core never hands out). */
bool wr_rest_id_parse(const char *s, size_t n, uint64_t *out);

/* ------------------------------------------------------------------------ */
/* Input validation (validate.c)                                            */

/* ^[a-zA-Z0-9_\-.]+$ and at most 64 bytes. */
bool wr_rest_valid_queue_name(const char *s, size_t n);

/* Python uuid.UUID() acceptance (what Zaqar's strict mode runs): optional
 * "urn:" / "uuid:" prefixes and braces, hyphens anywhere, then exactly 32
 * hex digits. On success writes the 32 lowercase digits (and a NUL). */
bool wr_rest_client_id_norm(const char *s, size_t n, char out[33]);

/* 64-bit FNV-1a: the producer identity of a Client-ID, for echo=false. */
uint64_t wr_rest_hash64(const char *s, size_t n);

/* Falcon's int parameter: optional sign, decimal digits, fits int64.
 * Returns false when it is not an integer. */
bool wr_rest_parse_int(const char *s, size_t n, int64_t *out);

/* Falcon's bool parameter: true/t/yes/y/1/on or false/f/no/n/0/off. */
bool wr_rest_parse_bool(const char *s, size_t n, bool *out);

/* Percent-decodes s with libevent's evhttp_uridecode: '+' becomes a space
 * when plus_is_space, a bad escape stays as it is (as Python's unquote
 * leaves it). Returns a malloc'd, NUL-terminated copy (its length in
 * *out_len), or NULL when s holds a NUL byte. */
char *wr_rest_uri_decode(const char *s, size_t n, bool plus_is_space, size_t *out_len);

/* The arguments of a query string: split by evhtp (on '&' only, as falcon
 * does), keys and values decoded by wr_rest_uri_decode(). A key without '='
 * has an empty value. */
typedef struct wr_rest_arg {
    char *key, *val;
    size_t klen, vlen;
} wr_rest_arg_t;

struct wr_rest_args {
    size_t n;
    wr_rest_arg_t *a;
};
typedef struct wr_rest_args wr_rest_args_t;

/* Parses q (NULL or empty: no arguments). False if it cannot be parsed. */
bool wr_rest_args_parse(const char *q, size_t n, wr_rest_args_t *out);
void wr_rest_args_free(wr_rest_args_t *args);

/* The value of the last non-blank `key` in the request's query (falcon
 * drops blank values), with its length in *len; NULL if there is none. */
const char *wr_rest_arg(const wr_rest_req_t *req, const char *key, size_t *len);

/* Falcon's client_accepts('application/json'): no Accept header, or one
 * whose ranges include application/json, application/ or star/star with q > 0. */
bool wr_rest_accepts_json(const char *accept);

/* Content-Type is application/x-www-form-urlencoded (case-insensitive). */
bool wr_rest_is_form_urlencoded(const char *ctype);

/* ------------------------------------------------------------------------ */
/* Queue metadata (meta.c)                                                  */

/* Checks the reserved keys of a queue's metadata object like Zaqar's
 * queue_metadata_putting (max_post: the server's body limit). Returns NULL
 * if fine, else a description for a 400. */
const char *wr_rest_meta_check(const json_t *meta, uint32_t max_post);

/* Maps the reserved keys onto core attributes: _default_message_ttl (else
 * 3600 s), _default_message_delay, _max_messages_post_size, and warren's
 * own _durable (bool, else durable_default). Every other attribute is zero
 * (meta may be NULL). */
void wr_rest_meta_attrs(const json_t *meta, bool durable_default, wr_queue_attrs_t *attrs);

/* Fills the reserved keys a GET shows when missing or falsy. */
void wr_rest_meta_fill_defaults(json_t *meta, uint32_t max_post);

/* Loads a stored metadata blob (compact JSON object; empty means {}).
 * Never NULL: a blob that is not an object (written by another front end)
 * reads as {}. */
json_t *wr_rest_meta_load(wr_slice_t blob);

/* ------------------------------------------------------------------------ */
/* Calls and routing (routes.c)                                             */

typedef struct wr_rest_call wr_rest_call_t;
typedef void (*wr_rest_handler_fn)(wr_rest_call_t *c, const wr_rest_req_t *req);

typedef enum {
    WR_RT_VERSIONS = 0, /* / */
    WR_RT_METRICS,      /* /metrics */
    WR_RT_HOME,         /* /v2 */
    WR_RT_PING,         /* /v2/ping */
    WR_RT_HEALTH,       /* /v2/health */
    WR_RT_QUEUES,       /* /v2/queues */
    WR_RT_QUEUE,        /* /v2/queues/{q} */
    WR_RT_STATS,        /* /v2/queues/{q}/stats */
    WR_RT_PURGE,        /* /v2/queues/{q}/purge */
    WR_RT_SHARE,        /* /v2/queues/{q}/share */
    WR_RT_MESSAGES,     /* /v2/queues/{q}/messages */
    WR_RT_MESSAGE,      /* /v2/queues/{q}/messages/{id} */
    WR_RT_CLAIMS,       /* /v2/queues/{q}/claims */
    WR_RT_CLAIM,        /* /v2/queues/{q}/claims/{id} */
    WR_RT_SUBS,         /* /v2/queues/{q}/subscriptions */
    WR_RT_SUB,          /* /v2/queues/{q}/subscriptions/{id} */
    WR_RT_SUB_CONFIRM,  /* /v2/queues/{q}/subscriptions/{id}/confirm */
    /* The admin API (admin.c): {a} is m->queue, {b} is m->id. */
    WR_RT_ADMIN_TENANTS, /* /admin/v1/tenants */
    WR_RT_ADMIN_TENANT,  /* /admin/v1/tenants/{a} */
    WR_RT_ADMIN_QUOTAS,  /* /admin/v1/tenants/{a}/quotas */
    WR_RT_ADMIN_QUOTA,   /* /admin/v1/tenants/{a}/quotas/{b} */
    WR_RT_ADMIN_USERS,   /* /admin/v1/users */
    WR_RT_ADMIN_USER,    /* /admin/v1/users/{a} */
    WR_RT_ADMIN_GRANTS,  /* /admin/v1/grants */
    WR_RT_ADMIN_GRANT,   /* /admin/v1/grants/{a}/{b} (user, tenant) */
    WR_RT_ADMIN_TOKENS,  /* /admin/v1/tokens */
    WR_RT_ADMIN_TOKEN,   /* /admin/v1/tokens/{a} */
    WR_RT_COUNT,
    WR_RT_NONE = WR_RT_COUNT
} wr_rest_route_id_t;

/* A matched path: the route and its {q} and {id} parameters (pointing into
 * the decoded path given to wr_rest_route_match). */
typedef struct wr_rest_match {
    wr_rest_route_id_t route;
    const char *queue;
    size_t queue_len;
    const char *id;
    size_t id_len;
} wr_rest_match_t;

/* Matches a decoded path (a trailing slash is ignored). Returns false, with
 * m->route = WR_RT_NONE, when no route has this shape. */
bool wr_rest_route_match(const char *path, size_t n, wr_rest_match_t *m);

/* The Allow header value of a route ("GET, PUT, ..."). */
const char *wr_rest_route_allow(wr_rest_route_id_t r);

/* The handler of (route, method), or NULL if the method is not allowed. */
wr_rest_handler_fn wr_rest_route_handler(wr_rest_route_id_t r, wr_rest_method_t m);

/* One request in progress. Allocated by wr_rest_handle(), freed by
 * wr_rest_finish() after the response went to the transport. Kept under
 * 1 KiB: glibc serves that from its per-thread cache, while a larger block
 * costs a malloc_consolidate() on every request. */
struct wr_rest_call {
    wr_rest_server_t *srv;
    wr_loop_t *loop;
    wr_rest_done_cb done;
    void *done_arg;
    bool *finished; /* set while wr_rest_handle() runs: true once finished */
    wr_rest_resp_t resp;
    wr_rest_method_t method;
    wr_rest_route_id_t route;
    bool longpoll; /* counted in srv->longpolls until finished */

    wr_slice_t tenant; /* points into tenant_buf */
    wr_slice_t queue;  /* points into queue_buf */
    uint64_t producer; /* hash of the Client-ID */
    const char *param; /* the {id} path parameter (decoded), in param_buf */
    size_t param_len;

    /* Handler state: small common fields, and an optional owned struct. */
    uint64_t id;    /* the message or claim id of the path */
    uint64_t claim; /* a claim id from the query */
    int64_t ttl_ms, grace_ms;
    void *st;
    void (*st_free)(void *st);

    /* Who asks (auth.c of this folder): the user, and how to check it. */
    uint8_t who;     /* WR_REST_WHO_* */
    bool authn;      /* wr_rest_authenticate done */
    unsigned uflags; /* the user's WR_USER_* flags */
    char user[WR_REST_USER_MAX + 1];

    char tenant_buf[WR_NAME_MAX + 1];
    char queue_buf[WR_REST_QUEUE_MAX + 1];
    char param_buf[WR_REST_PARAM_MAX + 1];
};

/* How a call's permissions are checked (c->who). */
#define WR_REST_WHO_UNKNOWN 0 /* not authorized yet */
#define WR_REST_WHO_OPEN 1    /* no registry, or an unregistered tenant in loopback
                                 mode: everything is allowed (as before issue 5) */
#define WR_REST_WHO_USER 2    /* c->user's grants on c->tenant */
#define WR_REST_WHO_ADMIN 3   /* an admin: everything, the admin API too */
#define WR_REST_UFLAG_ADMIN 0x01u /* = WR_USER_ADMIN (c->uflags) */

/* Sends the response and frees the call. */
void wr_rest_finish(wr_rest_call_t *c);

/* Common response starts: set status and, for JSON bodies, the type. */
void wr_rest_reply(wr_rest_call_t *c, uint16_t status); /* no body */
wr_rest_buf_t *wr_rest_reply_json(wr_rest_call_t *c, uint16_t status);

/* Appends "/v2/queues/<queue>" to b. */
void wr_rest_put_queue_path(wr_rest_buf_t *b, const wr_rest_call_t *c);

/* ------------------------------------------------------------------------ */
/* Errors (errors.c)                                                        */

/* The HTTP status for a core error. */
uint16_t wr_rest_status_of(wr_err_t err);

/* A falcon-style title for a status ("Not found", ...). */
const char *wr_rest_title_of(uint16_t status);

/* Sets the response to a Zaqar error {"title", "description"}; title NULL
 * means the status's default title. */
void wr_rest_error(wr_rest_call_t *c, uint16_t status, const char *title, const char *desc);

/* wr_rest_error() + wr_rest_finish(). */
void wr_rest_fail(wr_rest_call_t *c, uint16_t status, const char *title, const char *desc);

/* Fails with the status of a core error; `what` starts the description. */
void wr_rest_fail_err(wr_rest_call_t *c, wr_err_t err, const char *what);
/* quota.c: answers a tenant quota refusal (403, 413, or 429 with
 * Retry-After) and finishes; false (nothing done) if err is not one. */
bool wr_rest_fail_quota(wr_rest_call_t *c, wr_err_t err);

/* Parses the request body as Zaqar's deserialize() does (an object or an
 * array). On error fails the call with 400 "Invalid request body" and
 * returns NULL. An empty body is an error too. */
json_t *wr_rest_body_json(wr_rest_call_t *c, const wr_rest_req_t *req);

/* Fails with 400 "Invalid request body" and the description. */
void wr_rest_fail_body(wr_rest_call_t *c, const char *desc);

/* "Invalid API request" 400 with a formatted description. */
void wr_rest_fail_400(wr_rest_call_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A header value without surrounding blanks (WSGI servers strip them);
 * its length in *len (routes.c). */
const char *wr_rest_trim(const char *h, size_t *len);

/* ------------------------------------------------------------------------ */
/* Authentication and permissions (auth.c)                                  */

/* What a route needs besides the tenant (wr_rest_route_perm). */
#define WR_REST_PERM_NONE (-1) /* nothing (ping, health, home) */
#define WR_REST_PERM_ANY (-2)  /* any of configure, write, read on the queue */

/*
 * Who sends the request: X-Auth-Token, else HTTP Basic, else nobody (only
 * on a trusting listener: the call then acts as guest). Fills c->user,
 * c->uflags. Returns 1 when known, 0 after failing the call (401), -1 when
 * Basic needs the slow hash: the request was saved and is dispatched again
 * (by `redo`) once the verifier answered.
 */
int wr_rest_authenticate(wr_rest_call_t *c, const wr_rest_req_t *req,
                         void (*redo)(wr_rest_call_t *c, const wr_rest_req_t *req));

/* After the Zaqar hooks set c->tenant: may the caller use it, and do `perm`
 * (a wr_perm_t or WR_REST_PERM_*) on c->queue? Sets c->who. False after
 * failing the call (403). */
bool wr_rest_authorize(wr_rest_call_t *c, int perm);

/* The permission a route and method need. */
int wr_rest_route_perm(wr_rest_route_id_t r, wr_rest_method_t m);

/* True if the caller may see queue `name` of c->tenant (queue lists). */
bool wr_rest_may_see(const wr_rest_call_t *c, wr_slice_t name);

/* ------------------------------------------------------------------------ */
/* Handlers                                                                 */

/* Reads the query parameter as falcon's get_param_as_int and checks
 * lo <= v <= hi. Returns 1 found (v set), 0 absent, -1 after failing the
 * call with a 400. `range_msg` is the description for an out-of-range v. */
int wr_rest_qparam_int(wr_rest_call_t *c, const wr_rest_req_t *req, const char *key, int64_t lo,
                       int64_t hi, const char *range_msg, int64_t *v);
/* Same for booleans: 1 found, 0 absent, -1 failed. */
int wr_rest_qparam_bool(wr_rest_call_t *c, const wr_rest_req_t *req, const char *key, bool *v);

/* The wait= long-poll parameter in ms (0..20 s, capped by the server);
 * returns false after failing the call. With a wait, the call counts as a
 * parked long-poll (not in-flight work for a SIGTERM drain) until it ends. */
bool wr_rest_qparam_wait(wr_rest_call_t *c, const wr_rest_req_t *req, int64_t *wait_ms);

/* Appends one message as Zaqar renders it: {"id","href","ttl","age","body"}
 * with ?claim_id= on the href when claim_id != 0; with_claim adds
 * "claim_id" and "claim_count" (pop). */
void wr_rest_put_msg(wr_rest_buf_t *b, const wr_rest_call_t *c, const wr_msg_view_t *m,
                     uint64_t claim_id, int64_t now_ms, bool with_claim);

void wr_rest_versions(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_home(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_ping(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_health(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_not_implemented(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_metrics(wr_rest_call_t *c, const wr_rest_req_t *req);

void wr_rest_queues_list(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_queue_put(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_queue_get(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_queue_patch(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_queue_delete(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_queue_stats(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_queue_purge(wr_rest_call_t *c, const wr_rest_req_t *req);

void wr_rest_msgs_post(wr_rest_call_t *c, const wr_rest_req_t *req);
/* The checks of a POST .../messages document: NULL if it may be posted,
 * else the 400's description and *title its title (NULL: the default). */
const char *wr_rest_msgs_doc_check(const json_t *doc, const char **title);
void wr_rest_msgs_get(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_msgs_delete(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_msg_get(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_msg_delete(wr_rest_call_t *c, const wr_rest_req_t *req);

void wr_rest_admin(wr_rest_call_t *c, const wr_rest_req_t *req); /* admin.c */

void wr_rest_claims_post(wr_rest_call_t *c, const wr_rest_req_t *req);
/* A claim body {"ttl", "grace"}: NULL if fine (fields found are stored),
 * else the 400's description (possibly written into desc). */
const char *wr_rest_claim_doc(const json_t *doc, int64_t *ttl, int64_t *grace, char *desc,
                              size_t cap);
void wr_rest_claim_get(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_claim_patch(wr_rest_call_t *c, const wr_rest_req_t *req);
void wr_rest_claim_delete(wr_rest_call_t *c, const wr_rest_req_t *req);

#endif
