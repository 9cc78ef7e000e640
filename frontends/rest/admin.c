/*
 * admin.c - the admin API under /admin/v1 (issue 5, point 2): tenants,
 * users, grants, tokens and quota settings, for users with the admin role
 * (routes.c's admin_hooks checked that). Bodies are JSON through jansson,
 * errors are the REST front end's {"title", "description"} bodies.
 *
 *   GET    /admin/v1/tenants                  {"tenants": [names]}
 *   GET    /admin/v1/tenants/T                {"name", "quotas", "grants"}
 *   PUT    /admin/v1/tenants/T                201 created, 204 existed
 *   DELETE /admin/v1/tenants/T                204 (its exchanges go too); 404;
 *                                             409 while it has queues
 *   GET    /admin/v1/tenants/T/quotas         {"quotas": {key: value}}
 *   PUT    /admin/v1/tenants/T/quotas/KEY     {"value": N} -> 204
 *   GET    /admin/v1/users                    {"users": [...]}
 *   PUT    /admin/v1/users/U                  {"password", "admin"?, "loopback_only"?}
 *                                             -> 201 created, 204 replaced
 *   DELETE /admin/v1/users/U                  204 (its grants and tokens go)
 *   GET    /admin/v1/grants                   {"grants": [...]}
 *   PUT    /admin/v1/grants/U/T               {"configure", "write", "read"}
 *                                             (each defaults to ".*") -> 204
 *   DELETE /admin/v1/grants/U/T               204; 404
 *   POST   /admin/v1/tokens                   {"user"} -> 201 {"user", "token"}
 *   DELETE /admin/v1/tokens/TOKEN             204; 404
 *
 * Deleting a tenant that still has queues is 409 (see docs/security.md:
 * RabbitMQ's vhost delete removes everything; warren asks for the queues
 * to be deleted first, their messages being the tenant's data). Once
 * allowed, the tenant's exchanges, bindings and durable topology record
 * go with it (tenant_del below).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/auth.h"
#include "rest_int.h"

static wr_slice_t param(const wr_rest_call_t *c)
{
    return (wr_slice_t){c->param, c->param_len};
}

static void reply_doc(wr_rest_call_t *c, uint16_t status, json_t *doc)
{
    wr_rest_buf_json(wr_rest_reply_json(c, status), doc);
    json_decref(doc);
    wr_rest_finish(c);
}

/* An answer of the registry: 2xx with `ok` (204 when 0), or the error. */
static void on_done(void *arg, const wr_auth_res_t *res)
{
    wr_rest_call_t *c = arg;
    char desc[256];

    switch ((int)res->err) {
    case WR_OK:
        if (res->token) {
            json_t *doc = json_pack("{s:s, s:s}", "user", c->param, "token", res->token);
            reply_doc(c, 201, doc);
            return;
        }
        wr_rest_reply(c, (uint16_t)(c->id ? c->id : 204));
        wr_rest_finish(c);
        return;
    case WR_EEXISTS:
        /* PUT of an existing tenant: nothing to do. */
        wr_rest_reply(c, 204);
        wr_rest_finish(c);
        return;
    case WR_ENOTFOUND:
        snprintf(desc, sizeof(desc), "%s", res->why ? res->why : "No such resource.");
        wr_rest_fail(c, 404, NULL, desc);
        return;
    case WR_EINVAL:
        snprintf(desc, sizeof(desc), "%s", res->why ? res->why : "Invalid request.");
        wr_rest_fail(c, 400, NULL, desc);
        return;
    default:
        wr_rest_fail_err(c, res->err, "The registry could not be changed");
        return;
    }
}

/* Ends the call if a registry call failed at once (its callback never runs). */
static void started(wr_rest_call_t *c, wr_err_t err, const char *what)
{
    char desc[128];

    if (err == WR_OK)
        return;
    if (err == WR_EINVAL) {
        snprintf(desc, sizeof(desc),
                 "Invalid %s: names are 1..256 bytes (users 1..128) of A-Z a-z 0-9 . _ ~ @ -",
                 what);
        wr_rest_fail(c, 400, NULL, desc);
        return;
    }
    wr_rest_fail_err(c, err, "The registry could not be changed");
}

/* Reads an optional string member; false after failing the call. */
static bool opt_str(wr_rest_call_t *c, json_t *doc, const char *key, const char *def,
                    wr_slice_t *out)
{
    json_t *v = json_object_get(doc, key);
    char desc[96];

    if (!v) {
        *out = (wr_slice_t){def, def ? strlen(def) : 0};
        return def != NULL || (wr_rest_fail_body(c, "A required member is missing."), false);
    }
    if (!json_is_string(v)) {
        snprintf(desc, sizeof(desc), "\"%s\" must be a string.", key);
        wr_rest_fail_body(c, desc);
        return false;
    }
    *out = (wr_slice_t){json_string_value(v), json_string_length(v)};
    return true;
}

static bool opt_bool(wr_rest_call_t *c, json_t *doc, const char *key, bool *out)
{
    json_t *v = json_object_get(doc, key);
    char desc[96];

    if (!v)
        return true;
    if (!json_is_boolean(v)) {
        snprintf(desc, sizeof(desc), "\"%s\" must be true or false.", key);
        wr_rest_fail_body(c, desc);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

/* The request body as a JSON object; NULL after failing the call. */
static json_t *body_object(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    json_t *doc = wr_rest_body_json(c, req);

    if (doc && !json_is_object(doc)) {
        json_decref(doc);
        wr_rest_fail_body(c, "The body must be a JSON object.");
        return NULL;
    }
    return doc;
}

/* ------------------------------------------------------------------------ */
/* Listings                                                                 */

static void add_name(void *arg, const char *name)
{
    json_array_append_new(arg, json_string(name));
}

static json_t *grant_json(const wr_auth_grant_info_t *g, bool with_user, bool with_tenant)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "configure", g->re[0], "write", g->re[1], "read",
                          g->re[2]);
    if (with_user)
        json_object_set_new(o, "user", json_string(g->user));
    if (with_tenant)
        json_object_set_new(o, "tenant", json_string(g->tenant));
    return o;
}

static void add_grant(void *arg, const wr_auth_grant_info_t *g)
{
    json_array_append_new(arg, grant_json(g, true, false));
}

static void add_quota(void *arg, const char *key, uint64_t value)
{
    json_object_set_new(arg, key, json_integer((json_int_t)value));
}

static void add_user(void *arg, const wr_auth_user_info_t *u)
{
    json_t *grants = json_array();

    for (size_t i = 0; i < u->ngrants; i++)
        json_array_append_new(grants, grant_json(&u->grants[i], false, true));
    json_array_append_new(arg, json_pack("{s:s, s:b, s:b, s:b, s:o}", "name", u->name, "admin",
                                         (u->flags & WR_USER_ADMIN) != 0, "loopback_only",
                                         (u->flags & WR_USER_LOOPBACK) != 0, "has_password",
                                         u->has_password, "grants", grants));
}

static void add_user_grants(void *arg, const wr_auth_user_info_t *u)
{
    for (size_t i = 0; i < u->ngrants; i++)
        json_array_append_new(arg, grant_json(&u->grants[i], true, true));
}

static void tenant_get(wr_rest_call_t *c, wr_auth_t *a)
{
    json_t *quotas = json_object(), *grants = json_array();

    if (!wr_auth_quota_list(a, c->tenant, add_quota, quotas) ||
        !wr_auth_tenant_grants(a, c->tenant, add_grant, grants)) {
        json_decref(quotas);
        json_decref(grants);
        wr_rest_fail(c, 404, NULL, "No such tenant.");
        return;
    }
    reply_doc(c, 200, json_pack("{s:s%, s:o, s:o}", "name", c->tenant.ptr, c->tenant.len,
                                "quotas", quotas, "grants", grants));
}

/* ------------------------------------------------------------------------ */
/* Tenant delete: 409 while it has queues                                   */

/*
 * The steps: the tenant must have no queues (409 naming one); then its
 * exchanges, bindings and durable topology record go (wr_tenant_drop);
 * then the registry entry with its grants and quotas; then a second drop
 * catches what a connection still open on the tenant declared between
 * the two (those connections close once the registry changed, see
 * frontends/amqp/amqp.c's sweep). Dropping first means a failure leaves
 * a registered, empty tenant that a retry deletes, never an unregistered
 * one whose exchanges a re-created tenant would inherit.
 */

static void on_dropped_again(void *arg, const wr_count_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "The tenant's exchanges could not be deleted");
        return;
    }
    wr_rest_reply(c, 204);
    wr_rest_finish(c);
}

static void on_tenant_gone(void *arg, const wr_auth_res_t *res)
{
    wr_rest_call_t *c = arg;
    wr_err_t err;

    if (res->err != WR_OK) {
        on_done(c, res);
        return;
    }
    err = wr_tenant_drop(c->srv->core, c->tenant, c->loop, on_dropped_again, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "The tenant's exchanges could not be deleted");
}

static void on_dropped(void *arg, const wr_count_res_t *res)
{
    wr_rest_call_t *c = arg;
    wr_err_t err;

    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "The tenant's exchanges could not be deleted");
        return;
    }
    err = wr_auth_tenant_del(c->srv->auth, c->tenant, c->loop, on_tenant_gone, c);
    started(c, err, "tenant");
}

static void on_tenant_queues(void *arg, const wr_queue_list_res_t *res)
{
    wr_rest_call_t *c = arg;
    char desc[WR_NAME_MAX + 160];
    wr_err_t err;

    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "The tenant's queues could not be listed");
        return;
    }
    if (res->n > 0) {
        snprintf(desc, sizeof(desc),
                 "The tenant still has queues (such as '%.*s'): delete them first. Its "
                 "exchanges and bindings are deleted with the tenant.",
                 (int)(res->items[0].name.len > 200 ? 200 : res->items[0].name.len),
                 (const char *)res->items[0].name.ptr);
        wr_rest_fail(c, 409, NULL, desc);
        return;
    }
    err = wr_tenant_drop(c->srv->core, c->tenant, c->loop, on_dropped, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "The tenant's exchanges could not be deleted");
}

static void tenant_del(wr_rest_call_t *c, wr_auth_t *a)
{
    wr_err_t err;

    if (!wr_auth_tenant_exists(a, c->tenant)) {
        wr_rest_fail(c, 404, NULL, "No such tenant.");
        return;
    }
    err = wr_queue_list(c->srv->core, c->tenant, (wr_slice_t){NULL, 0}, 1, false, c->loop,
                        on_tenant_queues, c);
    started(c, err, "tenant");
}

/* ------------------------------------------------------------------------ */
/* Changes                                                                  */

static void quota_put(wr_rest_call_t *c, const wr_rest_req_t *req, wr_auth_t *a)
{
    int key = wr_auth_quota_key(c->queue.ptr, c->queue.len);
    json_t *doc, *v;
    char desc[320];
    size_t n = 0;
    wr_err_t err;

    if (key < 0) {
        n = (size_t)snprintf(desc, sizeof(desc), "Unknown quota key; one of:");
        for (int i = 0; i < WR_QUOTA_NKEYS && n < sizeof(desc); i++)
            n += (size_t)snprintf(desc + n, sizeof(desc) - n, " %s", wr_quota_keys[i]);
        wr_rest_fail(c, 400, NULL, desc);
        return;
    }
    if (!(doc = body_object(c, req)))
        return;
    v = json_object_get(doc, "value");
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        json_decref(doc);
        wr_rest_fail_body(c, "\"value\" must be a non-negative integer.");
        return;
    }
    err = wr_auth_quota_set(a, c->tenant, key, (uint64_t)json_integer_value(v), c->loop, on_done,
                            c);
    json_decref(doc);
    started(c, err, "tenant");
}

static void user_put(wr_rest_call_t *c, const wr_rest_req_t *req, wr_auth_t *a)
{
    json_t *doc = body_object(c, req);
    bool admin = false, loopback = false;
    unsigned flags = 0, old;
    wr_slice_t pass;
    wr_err_t err;

    if (!doc)
        return;
    if (!opt_str(c, doc, "password", NULL, &pass) || !opt_bool(c, doc, "admin", &admin) ||
        !opt_bool(c, doc, "loopback_only", &loopback)) {
        json_decref(doc);
        return;
    }
    if (pass.len == 0) {
        json_decref(doc);
        wr_rest_fail_body(c, "\"password\" must not be empty.");
        return;
    }
    flags = (admin ? WR_USER_ADMIN : 0) | (loopback ? WR_USER_LOOPBACK : 0);
    c->id = wr_auth_user_flags(a, param(c), &old) == WR_OK ? 204 : 201;
    err = wr_auth_user_put(a, param(c), pass, flags, c->loop, on_done, c);
    json_decref(doc);
    started(c, err, "user name or password");
}

static void grant_put(wr_rest_call_t *c, const wr_rest_req_t *req, wr_auth_t *a)
{
    json_t *doc;
    wr_slice_t re[3];
    wr_err_t err;

    /* An empty body grants everything, like `warrenctl grant U T`. */
    doc = req->body_len ? body_object(c, req) : json_object();
    if (!doc)
        return;
    if (!opt_str(c, doc, "configure", ".*", &re[0]) || !opt_str(c, doc, "write", ".*", &re[1]) ||
        !opt_str(c, doc, "read", ".*", &re[2])) {
        json_decref(doc);
        return;
    }
    err = wr_auth_grant(a, param(c), c->tenant, re[0], re[1], re[2], c->loop, on_done, c);
    json_decref(doc);
    started(c, err, "user, tenant or regex (at most 1024 bytes)");
}

static void token_post(wr_rest_call_t *c, const wr_rest_req_t *req, wr_auth_t *a)
{
    json_t *doc = body_object(c, req);
    wr_slice_t user;
    wr_err_t err;

    if (!doc)
        return;
    if (!opt_str(c, doc, "user", NULL, &user)) {
        json_decref(doc);
        return;
    }
    if (user.len > WR_REST_PARAM_MAX) {
        json_decref(doc);
        wr_rest_fail_body(c, "\"user\" is too long.");
        return;
    }
    /* The user's name goes back in the answer (on_done). */
    memcpy(c->param_buf, user.ptr, user.len);
    c->param_buf[user.len] = '\0';
    c->param = c->param_buf;
    c->param_len = user.len;
    json_decref(doc);
    err = wr_auth_token_add(a, param(c), c->loop, on_done, c);
    started(c, err, "user name");
}

void wr_rest_admin(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_auth_t *a = c->srv->auth;
    json_t *list;
    wr_err_t err = WR_OK;

    switch ((int)c->route) {
    case WR_RT_ADMIN_TENANTS:
        list = json_array();
        wr_auth_tenant_list(a, add_name, list);
        reply_doc(c, 200, json_pack("{s:o}", "tenants", list));
        return;
    case WR_RT_ADMIN_TENANT:
        if (c->method == WR_REST_GET) {
            tenant_get(c, a);
        } else if (c->method == WR_REST_PUT) {
            c->id = 201;
            err = wr_auth_tenant_add(a, c->tenant, c->loop, on_done, c);
            started(c, err, "tenant name");
        } else {
            tenant_del(c, a);
        }
        return;
    case WR_RT_ADMIN_QUOTAS: {
        json_t *q = json_object();
        if (!wr_auth_quota_list(a, c->tenant, add_quota, q)) {
            json_decref(q);
            wr_rest_fail(c, 404, NULL, "No such tenant.");
            return;
        }
        reply_doc(c, 200, json_pack("{s:o}", "quotas", q));
        return;
    }
    case WR_RT_ADMIN_QUOTA:
        quota_put(c, req, a);
        return;
    case WR_RT_ADMIN_USERS:
        list = json_array();
        wr_auth_user_list(a, add_user, list);
        reply_doc(c, 200, json_pack("{s:o}", "users", list));
        return;
    case WR_RT_ADMIN_USER:
        if (c->method == WR_REST_PUT) {
            user_put(c, req, a);
        } else {
            err = wr_auth_user_del(a, param(c), c->loop, on_done, c);
            started(c, err, "user name");
        }
        return;
    case WR_RT_ADMIN_GRANTS:
        list = json_array();
        wr_auth_user_list(a, add_user_grants, list);
        reply_doc(c, 200, json_pack("{s:o}", "grants", list));
        return;
    case WR_RT_ADMIN_GRANT:
        if (c->method == WR_REST_PUT) {
            grant_put(c, req, a);
        } else {
            err = wr_auth_revoke(a, param(c), c->tenant, c->loop, on_done, c);
            started(c, err, "user or tenant name");
        }
        return;
    case WR_RT_ADMIN_TOKENS:
        token_post(c, req, a);
        return;
    case WR_RT_ADMIN_TOKEN:
        err = wr_auth_token_del(a, param(c), c->loop, on_done, c);
        if (err == WR_EINVAL)
            wr_rest_fail(c, 404, NULL, "No such token.");
        else
            started(c, err, "token");
        return;
    default:
        wr_rest_fail(c, 404, NULL, "The requested resource does not exist.");
        return;
    }
}
