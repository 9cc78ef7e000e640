/*
 * auth.c - who sends a REST request, and what it may do (issue 5).
 *
 * Authentication, in this order:
 *   X-Auth-Token  looked up by its hash in the registry: no slow hash, no
 *                 allocation. An unknown token is 401, whatever the mode.
 *   Basic         "Authorization: Basic base64(user:password)". A password
 *                 verified in the last minute is recognised by its keyed
 *                 hash (wr_auth_basic_cached); otherwise the request is
 *                 copied aside, the verifier thread checks the password
 *                 (~30 ms) and the request is dispatched again on its loop.
 *   nothing       only on a trusting listener (--auth loopback on a
 *                 loopback address): the request acts as user guest, as an
 *                 AMQP guest login from loopback does. Elsewhere 401.
 *
 * Authorization (after the Zaqar hooks named the project): admins may do
 * everything. Others need a grant on the project (403 otherwise), then
 * RabbitMQ's permission on the queue: create, update, delete = configure;
 * post = write; claims, pops, message gets, lists and deletes, purge =
 * read (deleting a message consumes it; purge is read as in RabbitMQ);
 * queue metadata and stats = any permission. In --auth loopback mode a
 * project that is not a registered tenant is open to every local caller,
 * as every project was before the registry existed.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../core/auth.h"
#include "../../core/log.h"
#include "rest_int.h"

_Static_assert(WR_REST_USER_MAX == WR_AUTH_NAME_MAX, "user buffer");
_Static_assert(WR_REST_UFLAG_ADMIN == WR_USER_ADMIN, "admin flag");

static const char *hdr(const wr_rest_req_t *req, const char *name)
{
    return req->header ? req->header(req->hctx, name) : NULL;
}

static void fail_401(wr_rest_call_t *c, const char *desc)
{
    c->resp.www_authenticate = "Basic realm=\"warren\"";
    wr_rest_fail(c, 401, NULL, desc);
}

/* ------------------------------------------------------------------------ */
/* A request waiting for the verifier                                       */

/* The headers the REST layer reads after authentication (routes.c). */
static const char *const kept_headers[] = {"Accept", "Content-Type", "Client-ID",
                                           "X-Project-ID", "URL-Signature"};
#define NKEPT (sizeof(kept_headers) / sizeof(kept_headers[0]))

typedef struct saved {
    wr_rest_call_t *c;
    void (*redo)(wr_rest_call_t *c, const wr_rest_req_t *req);
    wr_rest_req_t req;
    char *h[NKEPT];
    char user[WR_REST_USER_MAX + 1];
    char *buf; /* path, query and body, one after the other */
} saved_t;

static const char *saved_header(void *hctx, const char *name)
{
    saved_t *sv = hctx;

    for (size_t i = 0; i < NKEPT; i++)
        if (strcasecmp(name, kept_headers[i]) == 0)
            return sv->h[i];
    return NULL;
}

static saved_t *save(wr_rest_call_t *c, const wr_rest_req_t *req, const char *user, size_t ulen,
                     void (*redo)(wr_rest_call_t *c, const wr_rest_req_t *req))
{
    saved_t *sv = calloc(1, sizeof(*sv));
    size_t n = req->path_len + req->query_len + req->body_len;
    char *p;

    if (!sv || !(sv->buf = malloc(n ? n : 1)))
        wr_panic(__FILE__, __LINE__, "out of memory");
    sv->c = c;
    sv->redo = redo;
    sv->req = *req;
    p = sv->buf;
    memcpy(p, req->path, req->path_len);
    sv->req.path = p;
    p += req->path_len;
    if (req->query) {
        memcpy(p, req->query, req->query_len);
        sv->req.query = p;
        p += req->query_len;
    }
    if (req->body) {
        memcpy(p, req->body, req->body_len);
        sv->req.body = p;
    }
    sv->req.header = saved_header;
    sv->req.hctx = sv;
    sv->req.args = NULL;
    for (size_t i = 0; i < NKEPT; i++) {
        const char *v = hdr(req, kept_headers[i]);
        if (v && !(sv->h[i] = strdup(v)))
            wr_panic(__FILE__, __LINE__, "out of memory");
    }
    memcpy(sv->user, user, ulen);
    sv->user[ulen] = '\0';
    return sv;
}

static void saved_free(saved_t *sv)
{
    for (size_t i = 0; i < NKEPT; i++)
        free(sv->h[i]);
    free(sv->buf);
    free(sv);
}

static void on_verified(void *arg, const wr_auth_res_t *res)
{
    saved_t *sv = arg;
    wr_rest_call_t *c = sv->c;

    if (res->err == WR_OK) {
        snprintf(c->user, sizeof(c->user), "%s", sv->user);
        c->uflags = res->flags;
        c->authn = true;
        sv->redo(c, &sv->req);
    } else if (res->err == WR_ESHUTDOWN) {
        wr_rest_fail(c, 503, NULL, "The server is shutting down.");
    } else {
        fail_401(c, "Invalid credentials.");
    }
    saved_free(sv);
}

/* ------------------------------------------------------------------------ */
/* Authentication                                                           */

static int basic(wr_rest_call_t *c, const wr_rest_req_t *req, const char *h, size_t n,
                 void (*redo)(wr_rest_call_t *c, const wr_rest_req_t *req))
{
    wr_auth_t *a = c->srv->auth;
    unsigned char dec[WR_AUTH_NAME_MAX + WR_AUTH_PASS_MAX + 2];
    size_t dlen = 0;
    const unsigned char *colon;
    wr_slice_t user, pass;
    saved_t *sv;
    wr_err_t err;
    int rc = 0;

    if (n < 6 || strncasecmp(h, "Basic ", 6) != 0) {
        fail_401(c, "Only X-Auth-Token and HTTP Basic credentials are accepted.");
        return 0;
    }
    h += 6;
    n -= 6;
    while (n > 0 && *h == ' ') {
        h++;
        n--;
    }
    if (sodium_base642bin(dec, sizeof(dec), h, n, NULL, &dlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        !(colon = memchr(dec, ':', dlen))) {
        fail_401(c, "The Basic credentials are not base64 of user:password.");
        return 0;
    }
    user = (wr_slice_t){dec, (size_t)(colon - dec)};
    pass = (wr_slice_t){colon + 1, dlen - (size_t)(colon + 1 - dec)};
    if (user.len == 0 || user.len > WR_AUTH_NAME_MAX || pass.len > WR_AUTH_PASS_MAX) {
        fail_401(c, "Invalid credentials.");
        goto out;
    }
    if (wr_auth_basic_cached(a, user, pass, &c->uflags) &&
        (req->peer_loopback || !(c->uflags & WR_USER_LOOPBACK))) {
        memcpy(c->user, user.ptr, user.len);
        c->user[user.len] = '\0';
        c->authn = true;
        rc = 1;
        goto out;
    }
    sv = save(c, req, user.ptr, user.len, redo);
    err = wr_auth_login(a, user, pass, req->peer_loopback, c->loop, on_verified, sv);
    if (err != WR_OK) {
        saved_free(sv);
        if (err == WR_EBUSY)
            wr_rest_fail(c, 503, NULL, "Too many logins are being checked; retry later.");
        else
            wr_rest_fail_err(c, err, "login");
        goto out;
    }
    rc = -1;
out:
    sodium_memzero(dec, sizeof(dec));
    return rc;
}

int wr_rest_authenticate(wr_rest_call_t *c, const wr_rest_req_t *req,
                         void (*redo)(wr_rest_call_t *c, const wr_rest_req_t *req))
{
    wr_rest_server_t *srv = c->srv;
    const char *h;
    size_t n;

    if (!srv->auth) {
        /* No registry (unit tests, fuzzing): the listener's trust decides. */
        if (!srv->limits.trust_project_header) {
            fail_401(c, "This listener does not accept X-Project-Id without a token.");
            return 0;
        }
        c->who = WR_REST_WHO_OPEN;
        c->authn = true;
        return 1;
    }
    if ((h = hdr(req, "X-Auth-Token")) != NULL) {
        h = wr_rest_trim(h, &n);
        if (wr_auth_token_user(srv->auth, h, n, c->user, sizeof(c->user), &c->uflags) != WR_OK) {
            fail_401(c, "The X-Auth-Token is not valid.");
            return 0;
        }
        c->authn = true;
        return 1;
    }
    if ((h = hdr(req, "Authorization")) != NULL) {
        h = wr_rest_trim(h, &n);
        return basic(c, req, h, n, redo);
    }
    if (!srv->limits.trust_project_header) {
        fail_401(c, "Authentication required: send X-Auth-Token or HTTP Basic credentials.");
        return 0;
    }
    snprintf(c->user, sizeof(c->user), "%s", WR_AUTH_GUEST);
    c->uflags = 0;
    c->authn = true;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Authorization                                                            */

int wr_rest_route_perm(wr_rest_route_id_t r, wr_rest_method_t m)
{
    switch (r) {
    case WR_RT_QUEUE:
        return m == WR_REST_GET || m == WR_REST_HEAD ? WR_REST_PERM_ANY : WR_PERM_CONFIGURE;
    case WR_RT_STATS:
        return WR_REST_PERM_ANY;
    case WR_RT_MESSAGES:
        return m == WR_REST_POST ? WR_PERM_WRITE : WR_PERM_READ;
    case WR_RT_PURGE:
    case WR_RT_MESSAGE:
    case WR_RT_CLAIMS:
    case WR_RT_CLAIM:
        return WR_PERM_READ;
    case WR_RT_SHARE:
    case WR_RT_SUBS:
    case WR_RT_SUB:
    case WR_RT_SUB_CONFIRM:
        return WR_PERM_CONFIGURE;
    case WR_RT_VERSIONS:
    case WR_RT_METRICS:
    case WR_RT_HOME:
    case WR_RT_PING:
    case WR_RT_HEALTH:
    case WR_RT_QUEUES: /* the list shows what the caller may see */
    case WR_RT_ADMIN_TENANTS:
    case WR_RT_ADMIN_TENANT:
    case WR_RT_ADMIN_QUOTAS:
    case WR_RT_ADMIN_QUOTA:
    case WR_RT_ADMIN_USERS:
    case WR_RT_ADMIN_USER:
    case WR_RT_ADMIN_GRANTS:
    case WR_RT_ADMIN_GRANT:
    case WR_RT_ADMIN_TOKENS:
    case WR_RT_ADMIN_TOKEN:
    case WR_RT_COUNT:
        break;
    }
    return WR_REST_PERM_NONE;
}

static const char *perm_name(int perm)
{
    switch (perm) {
    case WR_PERM_CONFIGURE:
        return "configure";
    case WR_PERM_WRITE:
        return "write";
    case WR_PERM_READ:
        return "read";
    default:
        return "any";
    }
}

bool wr_rest_authorize(wr_rest_call_t *c, int perm)
{
    wr_auth_t *a = c->srv->auth;
    wr_slice_t user = {c->user, strlen(c->user)};
    char desc[WR_NAME_MAX + WR_REST_QUEUE_MAX + WR_REST_USER_MAX + 96];
    wr_err_t err;
    bool ok;

    if (!a || c->who == WR_REST_WHO_OPEN) {
        c->who = WR_REST_WHO_OPEN;
        return true;
    }
    if (c->uflags & WR_USER_ADMIN) {
        c->who = WR_REST_WHO_ADMIN;
        return true;
    }
    err = wr_auth_tenant_access(a, user, c->tenant);
    if (err == WR_ENOTFOUND && c->srv->limits.trust_project_header &&
        !wr_auth_tenant_exists(a, c->tenant)) {
        c->who = WR_REST_WHO_OPEN; /* an unregistered project, loopback mode */
        return true;
    }
    if (err != WR_OK) {
        snprintf(desc, sizeof(desc), "access to project '%.*s' refused for user '%s'",
                 (int)c->tenant.len, (const char *)c->tenant.ptr, c->user);
        wr_rest_fail(c, 403, NULL, desc);
        return false;
    }
    c->who = WR_REST_WHO_USER;
    if (perm == WR_REST_PERM_NONE)
        return true;
    ok = perm == WR_REST_PERM_ANY ? wr_auth_visible(a, user, c->tenant, c->queue)
                                  : wr_auth_allowed(a, user, c->tenant, (wr_perm_t)perm, c->queue);
    if (!ok) {
        snprintf(desc, sizeof(desc),
                 "access to queue '%.*s' in project '%.*s' refused for user '%s' (needs %s)",
                 (int)c->queue.len, (const char *)c->queue.ptr, (int)c->tenant.len,
                 (const char *)c->tenant.ptr, c->user, perm_name(perm));
        wr_rest_fail(c, 403, NULL, desc);
    }
    return ok;
}

bool wr_rest_may_see(const wr_rest_call_t *c, wr_slice_t name)
{
    if (c->who != WR_REST_WHO_USER)
        return true;
    return wr_auth_visible(c->srv->auth, (wr_slice_t){c->user, strlen(c->user)}, c->tenant, name);
}
