/*
 * routes.c - the transport-neutral entry point: wr_rest_handle() takes one
 * request through Zaqar's before-hooks, the route table and a handler, and
 * hands the response to the transport exactly once.
 *
 * Order of checks, as falcon runs Zaqar's app (transport/wsgi/driver.py):
 *   unknown path                    404 (no hooks run: falcon has no resource)
 *   URL-Signature header            404 (pre-signed URLs are not supported)
 *   form-urlencoded body            400
 *   Accept without JSON             406
 *   Client-ID missing / not a UUID  400   (not on "/")
 *   X-Project-Id missing / empty    400   (not on "/")
 *   queue name or project invalid   400   (queue paths)
 *   method not served by the path   405 + Allow
 *   POST messages above the memory high watermark   503 + Retry-After
 * /metrics is warren's own and runs none of them: Prometheus scrapers send
 * neither a Client-ID nor a project.
 *
 * Layout: the route table and matching, calls (allocation, replies,
 * finishing), query parameters, the hooks and wr_rest_handle().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"
#include "../../core/mem.h"
#include "rest_int.h"

/* ------------------------------------------------------------------------ */
/* Route table                                                              */

typedef struct route {
    const char *allow;
    wr_rest_handler_fn h[WR_REST_METHOD_COUNT];
    bool zaqar;     /* runs Zaqar's hooks */
    bool scoped;    /* needs Client-ID and X-Project-Id */
    bool has_queue; /* has a {queue_name} */
} route_t;

/* The admin API's routes come last: an admin's credentials, always. */
static bool is_admin(wr_rest_route_id_t r)
{
    return r >= WR_RT_ADMIN_TENANTS && r < WR_RT_COUNT;
}

#define GET_ [WR_REST_GET]
#define HEAD_ [WR_REST_HEAD]
#define POST_ [WR_REST_POST]
#define PUT_ [WR_REST_PUT]
#define DELETE_ [WR_REST_DELETE]
#define PATCH_ [WR_REST_PATCH]

static const route_t routes[WR_RT_COUNT] = {
    [WR_RT_VERSIONS] = {"GET", {GET_ = wr_rest_versions}, true, false, false},
    [WR_RT_METRICS] = {"GET", {GET_ = wr_rest_metrics}, false, false, false},
    [WR_RT_HOME] = {"GET", {GET_ = wr_rest_home}, true, true, false},
    [WR_RT_PING] = {"GET, HEAD", {GET_ = wr_rest_ping, HEAD_ = wr_rest_ping}, true, true, false},
    [WR_RT_HEALTH] = {"GET", {GET_ = wr_rest_health}, true, true, false},
    [WR_RT_QUEUES] = {"GET", {GET_ = wr_rest_queues_list}, true, true, false},
    [WR_RT_QUEUE] = {"GET, PUT, PATCH, DELETE",
                     {GET_ = wr_rest_queue_get, PUT_ = wr_rest_queue_put,
                      PATCH_ = wr_rest_queue_patch, DELETE_ = wr_rest_queue_delete},
                     true,
                     true,
                     true},
    [WR_RT_STATS] = {"GET", {GET_ = wr_rest_queue_stats}, true, true, true},
    [WR_RT_PURGE] = {"POST", {POST_ = wr_rest_queue_purge}, true, true, true},
    [WR_RT_SHARE] = {"POST", {POST_ = wr_rest_not_implemented}, true, true, true},
    [WR_RT_MESSAGES] = {"GET, POST, DELETE",
                        {GET_ = wr_rest_msgs_get, POST_ = wr_rest_msgs_post,
                         DELETE_ = wr_rest_msgs_delete},
                        true,
                        true,
                        true},
    [WR_RT_MESSAGE] =
        {"GET, DELETE", {GET_ = wr_rest_msg_get, DELETE_ = wr_rest_msg_delete}, true, true, true},
    [WR_RT_CLAIMS] = {"POST", {POST_ = wr_rest_claims_post}, true, true, true},
    [WR_RT_CLAIM] = {"GET, PATCH, DELETE",
                     {GET_ = wr_rest_claim_get, PATCH_ = wr_rest_claim_patch,
                      DELETE_ = wr_rest_claim_delete},
                     true,
                     true,
                     true},
    [WR_RT_SUBS] = {"GET, POST",
                    {GET_ = wr_rest_not_implemented, POST_ = wr_rest_not_implemented},
                    true,
                    true,
                    true},
    [WR_RT_SUB] = {"GET, PATCH, DELETE",
                   {GET_ = wr_rest_not_implemented, PATCH_ = wr_rest_not_implemented,
                    DELETE_ = wr_rest_not_implemented},
                   true,
                   true,
                   true},
    [WR_RT_SUB_CONFIRM] = {"PUT", {PUT_ = wr_rest_not_implemented}, true, true, true},
#define ADMIN_ROUTE(allow, ...) {allow, {__VA_ARGS__}, false, false, false}
    [WR_RT_ADMIN_TENANTS] = ADMIN_ROUTE("GET", GET_ = wr_rest_admin),
    [WR_RT_ADMIN_TENANT] = ADMIN_ROUTE("GET, PUT, DELETE", GET_ = wr_rest_admin,
                                       PUT_ = wr_rest_admin, DELETE_ = wr_rest_admin),
    [WR_RT_ADMIN_QUOTAS] = ADMIN_ROUTE("GET", GET_ = wr_rest_admin),
    [WR_RT_ADMIN_QUOTA] = ADMIN_ROUTE("PUT", PUT_ = wr_rest_admin),
    [WR_RT_ADMIN_USERS] = ADMIN_ROUTE("GET", GET_ = wr_rest_admin),
    [WR_RT_ADMIN_USER] = ADMIN_ROUTE("PUT, DELETE", PUT_ = wr_rest_admin,
                                     DELETE_ = wr_rest_admin),
    [WR_RT_ADMIN_GRANTS] = ADMIN_ROUTE("GET", GET_ = wr_rest_admin),
    [WR_RT_ADMIN_GRANT] = ADMIN_ROUTE("PUT, DELETE", PUT_ = wr_rest_admin,
                                      DELETE_ = wr_rest_admin),
    [WR_RT_ADMIN_TOKENS] = ADMIN_ROUTE("POST", POST_ = wr_rest_admin),
    [WR_RT_ADMIN_TOKEN] = ADMIN_ROUTE("DELETE", DELETE_ = wr_rest_admin),
#undef ADMIN_ROUTE
};

const char *wr_rest_route_allow(wr_rest_route_id_t r)
{
    return r < WR_RT_COUNT ? routes[r].allow : "";
}

wr_rest_handler_fn wr_rest_route_handler(wr_rest_route_id_t r, wr_rest_method_t m)
{
    if (r >= WR_RT_COUNT || m >= WR_REST_METHOD_COUNT)
        return NULL;
    return routes[r].h[m];
}

static bool seg_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* /admin/v1/ + seg[0..ns): {a} goes to m->queue, {b} to m->id. */
static bool match_admin(const char *const *seg, const size_t *len, size_t ns,
                        wr_rest_match_t *m)
{
    if (ns >= 2) {
        m->queue = seg[1];
        m->queue_len = len[1];
    }
    if (ns >= 3) {
        m->id = seg[ns - 1];
        m->id_len = len[ns - 1];
    }
    if (seg_is(seg[0], len[0], "tenants")) {
        if (ns == 1)
            m->route = WR_RT_ADMIN_TENANTS;
        else if (ns == 2)
            m->route = WR_RT_ADMIN_TENANT;
        else if (seg_is(seg[2], len[2], "quotas"))
            m->route = ns == 3 ? WR_RT_ADMIN_QUOTAS : ns == 4 ? WR_RT_ADMIN_QUOTA : WR_RT_NONE;
    } else if (seg_is(seg[0], len[0], "users") && ns <= 2) {
        m->route = ns == 1 ? WR_RT_ADMIN_USERS : WR_RT_ADMIN_USER;
    } else if (seg_is(seg[0], len[0], "grants") && ns != 2 && ns <= 3) {
        m->route = ns == 1 ? WR_RT_ADMIN_GRANTS : WR_RT_ADMIN_GRANT;
    } else if (seg_is(seg[0], len[0], "tokens") && ns <= 2) {
        m->route = ns == 1 ? WR_RT_ADMIN_TOKENS : WR_RT_ADMIN_TOKEN;
    }
    if (m->route == WR_RT_ADMIN_QUOTAS)
        m->id = NULL;
    return m->route != WR_RT_NONE;
}

bool wr_rest_route_match(const char *path, size_t n, wr_rest_match_t *m)
{
    const char *seg[7];
    size_t len[7], ns = 0, i = 0;

    m->route = WR_RT_NONE;
    m->queue = m->id = NULL;
    m->queue_len = m->id_len = 0;
    if (n == 0 || path[0] != '/')
        return false;
    if (n > 1 && path[n - 1] == '/')
        n--; /* falcon strips one trailing slash */
    if (n == 1) {
        m->route = WR_RT_VERSIONS;
        return true;
    }
    /* Split "/a/b/c" into segments; an empty one ("//") never matches. */
    i = 1;
    while (i <= n) {
        const char *s = path + i;
        const char *slash = memchr(s, '/', n - i);
        size_t l = slash ? (size_t)(slash - s) : n - i;

        if (l == 0 || ns == 7)
            return false;
        seg[ns] = s;
        len[ns++] = l;
        i += l + 1;
    }
    if (ns == 1 && seg_is(seg[0], len[0], "metrics")) {
        m->route = WR_RT_METRICS;
        return true;
    }
    if (ns >= 3 && seg_is(seg[0], len[0], "admin") && seg_is(seg[1], len[1], "v1"))
        return match_admin(seg + 2, len + 2, ns - 2, m);
    if (!seg_is(seg[0], len[0], "v2"))
        return false;
    if (ns == 1) {
        m->route = WR_RT_HOME;
        return true;
    }
    if (ns == 2) {
        if (seg_is(seg[1], len[1], "ping"))
            m->route = WR_RT_PING;
        else if (seg_is(seg[1], len[1], "health"))
            m->route = WR_RT_HEALTH;
        else if (seg_is(seg[1], len[1], "queues"))
            m->route = WR_RT_QUEUES;
        return m->route != WR_RT_NONE;
    }
    if (!seg_is(seg[1], len[1], "queues"))
        return false;
    m->queue = seg[2];
    m->queue_len = len[2];
    if (ns == 3) {
        m->route = WR_RT_QUEUE;
        return true;
    }
    if (ns == 4) {
        static const struct {
            const char *name;
            wr_rest_route_id_t r;
        } sub[] = {{"stats", WR_RT_STATS},   {"purge", WR_RT_PURGE},
                   {"share", WR_RT_SHARE},   {"messages", WR_RT_MESSAGES},
                   {"claims", WR_RT_CLAIMS}, {"subscriptions", WR_RT_SUBS}};

        for (size_t k = 0; k < sizeof(sub) / sizeof(sub[0]); k++)
            if (seg_is(seg[3], len[3], sub[k].name))
                m->route = sub[k].r;
        return m->route != WR_RT_NONE;
    }
    m->id = seg[4];
    m->id_len = len[4];
    if (ns == 5) {
        if (seg_is(seg[3], len[3], "messages"))
            m->route = WR_RT_MESSAGE;
        else if (seg_is(seg[3], len[3], "claims"))
            m->route = WR_RT_CLAIM;
        else if (seg_is(seg[3], len[3], "subscriptions"))
            m->route = WR_RT_SUB;
        return m->route != WR_RT_NONE;
    }
    if (ns == 6 && seg_is(seg[3], len[3], "subscriptions") && seg_is(seg[5], len[5], "confirm")) {
        m->route = WR_RT_SUB_CONFIRM;
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Calls                                                                    */

static const char json_ctype[] = "application/json; charset=UTF-8";

void wr_rest_reply(wr_rest_call_t *c, uint16_t status)
{
    c->resp.status = status;
    c->resp.content_type = NULL;
    c->resp.body.len = 0;
}

wr_rest_buf_t *wr_rest_reply_json(wr_rest_call_t *c, uint16_t status)
{
    c->resp.status = status;
    c->resp.content_type = json_ctype;
    c->resp.body.len = 0;
    return &c->resp.body;
}

void wr_rest_put_queue_path(wr_rest_buf_t *b, const wr_rest_call_t *c)
{
    wr_rest_buf_put(b, "/v2/queues/", 11);
    wr_rest_buf_put(b, c->queue.ptr, c->queue.len);
}

void wr_rest_finish(wr_rest_call_t *c)
{
    if (c->finished)
        *c->finished = true;
    if (c->longpoll)
        atomic_fetch_sub(&c->srv->longpolls, 1);
    c->done(c->done_arg, &c->resp);
    wr_rest_buf_free(&c->resp.body);
    wr_rest_buf_free(&c->resp.location);
    if (c->st && c->st_free)
        c->st_free(c->st);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* Query parameters                                                         */

int wr_rest_qparam_int(wr_rest_call_t *c, const wr_rest_req_t *req, const char *key, int64_t lo,
                       int64_t hi, const char *range_msg, int64_t *v)
{
    char desc[128];
    size_t n;
    const char *s = wr_rest_arg(req, key, &n);

    if (!s)
        return 0;
    if (!wr_rest_parse_int(s, n, v)) {
        snprintf(desc, sizeof(desc),
                 "The \"%s\" parameter is invalid. The value must be an integer.", key);
        wr_rest_fail(c, 400, "Invalid parameter", desc);
        return -1;
    }
    if (*v < lo || *v > hi) {
        wr_rest_fail(c, 400, NULL, range_msg);
        return -1;
    }
    return 1;
}

int wr_rest_qparam_bool(wr_rest_call_t *c, const wr_rest_req_t *req, const char *key, bool *v)
{
    char desc[128];
    size_t n;
    const char *s = wr_rest_arg(req, key, &n);

    if (!s)
        return 0;
    if (!wr_rest_parse_bool(s, n, v)) {
        snprintf(desc, sizeof(desc),
                 "The \"%s\" parameter is invalid. The value of the parameter must be "
                 "\"true\" or \"false\".",
                 key);
        wr_rest_fail(c, 400, "Invalid parameter", desc);
        return -1;
    }
    return 1;
}

bool wr_rest_qparam_wait(wr_rest_call_t *c, const wr_rest_req_t *req, int64_t *wait_ms)
{
    int64_t s = 0;
    int r =
        wr_rest_qparam_int(c, req, "wait", 0, WR_REST_WAIT_MAX_S,
                           "Wait must be at least 0 and may not be greater than 20 seconds.", &s);

    if (r < 0)
        return false;
    *wait_ms = s * 1000;
    if (*wait_ms > (int64_t)c->srv->limits.max_wait_ms)
        *wait_ms = c->srv->limits.max_wait_ms;
    if (*wait_ms > 0 && !c->longpoll) {
        c->longpoll = true;
        atomic_fetch_add(&c->srv->longpolls, 1);
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Hooks and dispatch                                                       */

static const char *hdr(const wr_rest_req_t *req, const char *name)
{
    return req->header ? req->header(req->hctx, name) : NULL;
}

const char *wr_rest_trim(const char *h, size_t *len)
{
    size_t n;

    while (*h == ' ' || *h == '\t')
        h++;
    n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    *len = n;
    return h;
}

static void redo(wr_rest_call_t *c, const wr_rest_req_t *req);

/* Zaqar's before-hooks. Returns false after failing the call. */
static bool run_hooks(wr_rest_call_t *c, const wr_rest_req_t *req, const route_t *rt,
                      const wr_rest_match_t *m)
{
    const char *h;
    char cid[33];
    size_t plen, hlen;

    if (hdr(req, "URL-Signature")) {
        wr_rest_fail(c, 404, NULL, "Pre-signed URLs are not supported by this server.");
        return false;
    }
    if (req->has_body && wr_rest_is_form_urlencoded(hdr(req, "Content-Type"))) {
        wr_rest_fail(c, 400, "Invalid Content-Type",
                     "Endpoint does not accept `application/x-www-form-urlencoded` content; "
                     "currently supported media type is `application/json`; specify proper "
                     "client-side media type with the \"Content-Type\" header.");
        return false;
    }
    if (!wr_rest_accepts_json(hdr(req, "Accept"))) {
        wr_rest_fail(c, 406, NULL,
                     "Endpoint only serves `application/json`; specify client-side media type "
                     "support with the \"Accept\" header.");
        return false;
    }
    if (!rt->scoped)
        return true;
    /* Who asks (X-Auth-Token, Basic, or a trusting listener): 401 or,
     * for Basic, the request waits for the verifier and comes back. */
    if (!c->authn && wr_rest_authenticate(c, req, redo) <= 0)
        return false;
    h = hdr(req, "Client-ID");
    if (!h) {
        wr_rest_fail(c, 400, "Missing header value", "The Client-ID header is required.");
        return false;
    }
    h = wr_rest_trim(h, &hlen);
    if (!wr_rest_client_id_norm(h, hlen, cid)) {
        wr_rest_fail(c, 400, "Wrong UUID value", "Malformed hexadecimal UUID.");
        return false;
    }
    c->producer = wr_rest_hash64(cid, 32);
    h = hdr(req, "X-Project-ID");
    if (!h) {
        wr_rest_fail(c, 400, "Project-Id Missing", "The header X-PROJECT-ID was missing");
        return false;
    }
    h = wr_rest_trim(h, &plen);
    if (plen == 0) {
        wr_rest_fail(c, 400, "Empty project header not allowed",
                     "X-PROJECT-ID cannot be an empty string. Specify the right header "
                     "X-PROJECT-ID and retry.");
        return false;
    }
    /* Zaqar allows 256 bytes on queue paths; the core's names stop at
     * WR_NAME_MAX, which is then the limit on every path. */
    if (plen > WR_REST_PROJECT_MAX || plen > WR_NAME_MAX ||
        (rt->has_queue && !wr_rest_valid_queue_name(m->queue, m->queue_len))) {
        wr_rest_fail(c, 400, "Invalid queue identification",
                     "The format of the submitted queue name or project id is not valid.");
        return false;
    }
    memcpy(c->tenant_buf, h, plen);
    c->tenant = (wr_slice_t){c->tenant_buf, plen};
    if (rt->has_queue) {
        memcpy(c->queue_buf, m->queue, m->queue_len);
        c->queue = (wr_slice_t){c->queue_buf, m->queue_len};
    }
    return wr_rest_authorize(c, wr_rest_route_perm(m->route, req->method));
}

/* The admin API: an admin's credentials, whatever the listener. */
static bool admin_hooks(wr_rest_call_t *c, const wr_rest_req_t *req, const wr_rest_match_t *m)
{
    if (!c->srv->auth) {
        wr_rest_fail(c, 404, NULL, "This server has no admin API.");
        return false;
    }
    if (!c->authn) {
        if (!hdr(req, "X-Auth-Token") && !hdr(req, "Authorization")) {
            c->resp.www_authenticate = "Basic realm=\"warren\"";
            wr_rest_fail(c, 401, NULL,
                         "The admin API needs an admin's X-Auth-Token or HTTP Basic credentials.");
            return false;
        }
        if (wr_rest_authenticate(c, req, redo) <= 0)
            return false;
    }
    if (!(c->uflags & WR_REST_UFLAG_ADMIN)) {
        wr_rest_fail(c, 403, NULL, "The admin API is for users with the admin role.");
        return false;
    }
    c->who = WR_REST_WHO_ADMIN;
    /* {a}: a tenant (tenant_buf) or a user or token (param_buf); {b}: a
     * tenant (grants: tenant_buf), or a quota key (param_buf). Lengths are
     * checked by the handlers against the registry's rules. */
    if (m->route == WR_RT_ADMIN_GRANT) {
        if (m->queue_len > WR_REST_PARAM_MAX || m->id_len > WR_NAME_MAX) {
            wr_rest_fail(c, 400, NULL, "The user or tenant name is too long.");
            return false;
        }
        memcpy(c->param_buf, m->queue, m->queue_len);
        c->param_buf[m->queue_len] = '\0';
        c->param = c->param_buf;
        c->param_len = m->queue_len;
        memcpy(c->tenant_buf, m->id, m->id_len);
        c->tenant_buf[m->id_len] = '\0';
        c->tenant = (wr_slice_t){c->tenant_buf, m->id_len};
        return true;
    }
    if (m->queue) {
        bool tenant = m->route == WR_RT_ADMIN_TENANT || m->route == WR_RT_ADMIN_QUOTAS ||
                      m->route == WR_RT_ADMIN_QUOTA;
        size_t max = tenant ? WR_NAME_MAX : WR_REST_PARAM_MAX;
        char *dst = tenant ? c->tenant_buf : c->param_buf;

        if (m->queue_len > max) {
            wr_rest_fail(c, 400, NULL, "The name in the path is too long.");
            return false;
        }
        memcpy(dst, m->queue, m->queue_len);
        dst[m->queue_len] = '\0';
        if (tenant) {
            c->tenant = (wr_slice_t){c->tenant_buf, m->queue_len};
        } else {
            c->param = c->param_buf;
            c->param_len = m->queue_len;
        }
    }
    return true;
}

/* Routes and runs the handler. `path` is the decoded path (m points into
 * it); the caller frees it after. */
static void dispatch(wr_rest_call_t *c, const wr_rest_req_t *req, const char *path, size_t n)
{
    wr_rest_match_t m;
    const route_t *rt;
    wr_rest_handler_fn h;

    if (!path || n > WR_REST_PATH_MAX || !wr_rest_route_match(path, n, &m)) {
        wr_rest_fail(c, 404, NULL, "The requested resource does not exist.");
        return;
    }
    c->route = m.route;
    rt = &routes[m.route];
    if (rt->zaqar && !run_hooks(c, req, rt, &m))
        return;
    if (is_admin(m.route) && !admin_hooks(c, req, &m))
        return;
    h = wr_rest_route_handler(m.route, req->method);
    if (!h) {
        wr_rest_error(c, 405, NULL, "The method is not allowed on this resource.");
        c->resp.allow = rt->allow;
        wr_rest_finish(c);
        return;
    }
    if (m.route == WR_RT_MESSAGES && req->method == WR_REST_POST && wr_mem_high()) {
        /* The memory high watermark (core/mem.h): no new messages until
         * consumers have made room. */
        wr_rest_error(c, 503, "Service temporarily unavailable",
                      "The server is low on memory: publishing is paused. Retry later.");
        c->resp.retry_after = "1";
        wr_rest_finish(c);
        return;
    }
    if (m.route == WR_RT_ADMIN_QUOTA) {
        size_t kn = m.id_len < 63 ? m.id_len : 63;
        memcpy(c->queue_buf, m.id, kn); /* the quota key */
        c->queue_buf[kn] = '\0';
        c->queue = (wr_slice_t){c->queue_buf, m.id_len == kn ? kn : 0}; /* 0: no key */
    }
    if (m.id && !is_admin(m.route)) {
        /* An id longer than this cannot be one of ours: keep a prefix and a
         * length that no id parser accepts. */
        size_t idn = m.id_len <= WR_REST_PARAM_MAX ? m.id_len : WR_REST_PARAM_MAX;

        memcpy(c->param_buf, m.id, idn);
        c->param_buf[idn] = '\0';
        c->param = c->param_buf;
        c->param_len = idn;
    }
    h(c, req);
}

void wr_rest_server_init(wr_rest_server_t *srv, wr_core_t *core)
{
    srv->core = core;
    srv->limits.max_body_bytes = WR_REST_POST_MAX;
    srv->limits.max_wait_ms = WR_REST_WAIT_MAX_S * 1000;
    srv->limits.trust_project_header = true;
    atomic_store(&srv->requests_total, 0);
    atomic_store(&srv->connections, 0);
    atomic_store(&srv->inflight, 0);
    atomic_store(&srv->longpolls, 0);
    atomic_store(&srv->draining, false);
}

_Static_assert(sizeof(wr_rest_call_t) <= 1000, "keep a call in glibc's tcache");

/* Decodes path and query and dispatches: a new request, or one coming back
 * from the password verifier (redo). */
static void handle(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_rest_req_t r = *req;
    wr_rest_args_t args;
    size_t plen = 0;
    char *path;

    /* The handlers get the path and the query decoded, by libevent and
     * evhtp. Both live until the handler returns, as the request does. */
    path = wr_rest_uri_decode(req->path, req->path_len, false, &plen);
    if (!wr_rest_args_parse(req->query, req->query_len, &args)) {
        wr_rest_fail(c, 400, "Invalid parameter", "The query string could not be parsed.");
    } else {
        r.args = &args;
        dispatch(c, &r, path, plen);
        wr_rest_args_free(&args);
    }
    free(path);
}

static void redo(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    handle(c, req);
}

bool wr_rest_handle(wr_rest_server_t *srv, wr_loop_t *loop, const wr_rest_req_t *req,
                    wr_rest_done_cb done, void *arg)
{
    wr_rest_call_t *c = calloc(1, sizeof(*c));
    bool finished = false;

    if (!c)
        wr_panic(__FILE__, __LINE__, "out of memory");
    c->srv = srv;
    c->loop = loop;
    c->done = done;
    c->done_arg = arg;
    c->finished = &finished;
    c->method = req->method;
    c->route = WR_RT_NONE;
    atomic_fetch_add_explicit(&srv->requests_total, 1, memory_order_relaxed);
    handle(c, req);
    if (finished)
        return false;
    c->finished = NULL; /* the local dies with this frame */
    return true;
}
