/*
 * rest.h - the REST front end of warren: OpenStack Zaqar v2 on libevhtp.
 *
 * Two layers, so the protocol can be tested and fuzzed without sockets:
 *
 *   wr_rest_handle()  transport-neutral: takes one parsed HTTP request
 *                     (method, raw path, raw query, header lookup, body) and
 *                     produces one response (status, a few headers, body)
 *                     through a completion callback. It validates, routes,
 *                     calls the core (core/wr.h) and renders Zaqar JSON.
 *   wr_rest_ops       the front-end plugin (frontends/frontend.h): one evhtp
 *                     instance per shard loop, all bound to the same port with
 *                     SO_REUSEPORT; a thin adapter around wr_rest_handle().
 *
 * Threads: wr_rest_handle() runs on a shard loop's thread and its completion
 * runs on that same loop (the core answers on the reply loop it is given).
 */
#ifndef WR_REST_H
#define WR_REST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../core/config.h"
#include "../../core/wr.h"
#include "../frontend.h"

/* The front-end plugin; listed in frontends/registry.c. */
extern const wr_frontend_ops_t wr_rest_ops;

/* The port the REST listeners are bound to (useful with --http ADDR:0). */
uint16_t wr_rest_port(const wr_frontend_t *fe);

/* ------------------------------------------------------------------------ */
/* Transport-neutral request handling                                       */

typedef enum {
    WR_REST_GET = 0,
    WR_REST_HEAD,
    WR_REST_POST,
    WR_REST_PUT,
    WR_REST_DELETE,
    WR_REST_PATCH,
    WR_REST_OTHER, /* any other method: 405 on a known path */
    WR_REST_METHOD_COUNT
} wr_rest_method_t;

/* Looks a request header up by name, case-insensitively; NULL if absent.
 * The returned string must stay valid until wr_rest_handle() returns. */
typedef const char *(*wr_rest_header_fn)(void *hctx, const char *name);

/* One request. Everything it points to needs to live only until
 * wr_rest_handle() returns: what an asynchronous handler needs later is
 * copied into its own context. Nothing here is NUL-terminated. */
typedef struct wr_rest_req {
    wr_rest_method_t method;
    const char *path; /* raw (percent-encoded) path, without the query */
    size_t path_len;
    const char *query; /* raw query string after '?', or NULL */
    size_t query_len;
    wr_rest_header_fn header;
    void *hctx;
    const char *body;
    size_t body_len;
    bool has_body; /* Content-Length or Transfer-Encoding was given */
    bool peer_loopback; /* the client connected from a loopback address */
    /* Not the transport's (leave NULL): wr_rest_handle() sets it to the
     * parsed query for the handlers. */
    const struct wr_rest_args *args;
} wr_rest_req_t;

/* A growable byte buffer (malloc'd; aborts on out of memory). */
typedef struct wr_rest_buf {
    char *p;
    size_t len, cap;
} wr_rest_buf_t;

/* One response. Header values are NULL when absent. `body` may be taken by
 * the transport (set body.p to NULL and free it later with free()). */
typedef struct wr_rest_resp {
    uint16_t status;
    const char *content_type; /* static string; NULL when there is no body */
    const char *allow;        /* static: the Allow header of a 405 */
    const char *accept_patch; /* static: the Accept-Patch header of a 415 */
    const char *www_authenticate; /* static: the WWW-Authenticate header of a 401 */
    const char *retry_after;      /* static: the Retry-After header of a 503 */
    wr_rest_buf_t location;   /* Location header, when len > 0 */
    wr_rest_buf_t body;
} wr_rest_resp_t;

/* Called exactly once per wr_rest_handle(), either inside it or later on
 * the same loop. `resp` is valid only during the call. */
typedef void (*wr_rest_done_cb)(void *arg, wr_rest_resp_t *resp);

/* Limits and switches of the REST layer. */
typedef struct wr_rest_limits {
    uint32_t max_body_bytes;   /* whole request body; default 262144 */
    uint32_t max_wait_ms;      /* ceiling of the wait= long-poll; default 20000 */
    bool trust_project_header; /* accept X-Project-Id without a token */
    bool durable_default;      /* queues without "_durable" are durable */
} wr_rest_limits_t;

struct wr_auth;

/* Process-wide state of the REST layer: the core, limits and counters. */
typedef struct wr_rest_server {
    wr_core_t *core;
    wr_rest_limits_t limits;
    /* Credentials and permissions (core/auth.h); NULL: none are checked and
     * requests without credentials act as before (unit tests, fuzzing). */
    struct wr_auth *auth;
    _Atomic uint64_t requests_total; /* requests dispatched */
    _Atomic int64_t connections;     /* open HTTP connections (adapter) */
    _Atomic int64_t inflight;        /* requests waiting for the core */
    _Atomic int64_t longpolls;       /* of those, parked long-polls (wait=) */
    atomic_bool draining;            /* stop_accepting ran: refuse new requests */
} wr_rest_server_t;

/* Fills defaults (262144, 20000 ms, trust = true) and zero counters. */
void wr_rest_server_init(wr_rest_server_t *srv, wr_core_t *core);

/*
 * Handles one request on `loop` (the current shard loop, the reply loop for
 * core calls). Returns true if the response is still pending (done runs
 * later on `loop`), false if done has already run.
 */
bool wr_rest_handle(wr_rest_server_t *srv, wr_loop_t *loop, const wr_rest_req_t *req,
                    wr_rest_done_cb done, void *arg);

/* Access to a running front end's server state (tests, the fuzzer). */
wr_rest_server_t *wr_rest_server_of(wr_frontend_t *fe);

#endif
