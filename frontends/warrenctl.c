/*
 * warrenctl.c - the admin CLI: talks to a running warrend over its REST port.
 *
 *   warrenctl [--url URL] [--project P] [--token T] COMMAND [ARGS]
 *
 * HTTP goes through libevent's evhttp client and JSON through jansson; there
 * is no hand-written protocol code here. Each command is one row of `cmds[]`
 * (name, arguments, help, function). The admin commands (tenant, user,
 * grant, revoke, token, quota) use the admin API under /admin/v1 and need
 * an admin's token: --token, else $WARREN_TOKEN (warrend writes one to
 * DATA/admin.token on its first start).
 *
 * Exit status: 0 success, 1 the request failed (unreachable, HTTP error,
 * bad reply), 2 bad usage. Every failure prints one line to stderr.
 *
 * Layout: HTTP (one blocking request on a private event_base), output
 * helpers, commands, the command table, main.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define DEFAULT_URL "http://127.0.0.1:8888"
#define DEFAULT_PROJECT "default"
#define TIMEOUT_S 10
#define QUEUES_PAGE 20 /* Zaqar's max_queues_per_page */

typedef struct ctl {
    const char *url;     /* base URL as given */
    const char *project; /* X-Project-Id */
    const char *token;   /* X-Auth-Token, or NULL */
    char host[256];
    int port;
    char prefix[256]; /* path part of the base URL, without a trailing '/' */
    char client_id[37];
} ctl_t;

typedef struct resp {
    int status; /* 0: no HTTP answer at all (see err) */
    char reason[64];
    char *body; /* NUL-terminated, malloc'd */
    size_t len;
    char err[128];
    struct event_base *base;
} resp_t;

/* ------------------------------------------------------------------------ */
/* HTTP                                                                     */

static void on_response(struct evhttp_request *req, void *arg)
{
    resp_t *r = arg;
    struct evbuffer *in;
    const char *reason;

    if (req && evhttp_request_get_response_code(req) > 0) {
        r->status = evhttp_request_get_response_code(req);
        reason = evhttp_request_get_response_code_line(req);
        snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
        in = evhttp_request_get_input_buffer(req);
        r->len = evbuffer_get_length(in);
        r->body = malloc(r->len + 1);
        if (!r->body) {
            fprintf(stderr, "warrenctl: out of memory\n");
            exit(1);
        }
        evbuffer_remove(in, r->body, r->len);
        r->body[r->len] = '\0';
    } else if (!r->err[0]) {
        /* A failed connect reaches here with no error callback. */
        snprintf(r->err, sizeof(r->err), "could not connect");
    }
    event_base_loopexit(r->base, NULL);
}

static void on_error(enum evhttp_request_error e, void *arg)
{
    resp_t *r = arg;
    const char *what = "connection failed";

    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        what = "timed out";
        break;
    case EVREQ_HTTP_EOF:
        what = "connection closed before an answer";
        break;
    case EVREQ_HTTP_INVALID_HEADER:
        what = "malformed HTTP answer";
        break;
    case EVREQ_HTTP_BUFFER_ERROR:
        what = "connection refused or reset";
        break;
    case EVREQ_HTTP_REQUEST_CANCEL:
        what = "request cancelled";
        break;
    case EVREQ_HTTP_DATA_TOO_LONG:
        what = "answer too long";
        break;
    }
    snprintf(r->err, sizeof(r->err), "%s", what);
}

/* Sends one request and waits for its answer. Returns 0 when an HTTP
 * answer came (any status), -1 with r->err set otherwise. */
static int http_do_body(const ctl_t *c, enum evhttp_cmd_type method, const char *path,
                        const char *accept, const char *body, resp_t *r)
{
    struct evhttp_connection *conn;
    struct evhttp_request *req;
    struct evkeyvalq *h;
    char full[1024];

    memset(r, 0, sizeof(*r));
    r->base = event_base_new();
    if (!r->base) {
        snprintf(r->err, sizeof(r->err), "cannot create an event base");
        return -1;
    }
    conn = evhttp_connection_base_new(r->base, NULL, c->host, (unsigned short)c->port);
    if (!conn) {
        snprintf(r->err, sizeof(r->err), "cannot create a connection");
        event_base_free(r->base);
        return -1;
    }
    evhttp_connection_set_timeout(conn, TIMEOUT_S);
    req = evhttp_request_new(on_response, r);
    evhttp_request_set_error_cb(req, on_error);
    h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", c->host);
    evhttp_add_header(h, "Accept", accept);
    evhttp_add_header(h, "Client-ID", c->client_id);
    evhttp_add_header(h, "X-Project-Id", c->project);
    evhttp_add_header(h, "User-Agent", "warrenctl");
    if (c->token)
        evhttp_add_header(h, "X-Auth-Token", c->token);
    if (body) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    }
    snprintf(full, sizeof(full), "%s%s", c->prefix, path);
    /* On failure evhttp_make_request frees req itself. */
    if (evhttp_make_request(conn, req, method, full) != 0)
        snprintf(r->err, sizeof(r->err), "cannot send the request");
    else
        event_base_dispatch(r->base);
    evhttp_connection_free(conn);
    event_base_free(r->base);
    r->base = NULL;
    return r->status > 0 ? 0 : -1;
}

static void resp_free(resp_t *r)
{
    free(r->body);
    r->body = NULL;
}

/*
 * GET path; on anything but a 2xx prints one line naming `what` and the
 * reason (the Zaqar error body's description when there is one) and
 * returns -1.
 */
static int request_ok(const ctl_t *c, const char *what, enum evhttp_cmd_type method,
                      const char *path, const char *accept, const char *body, resp_t *r)
{
    json_t *j, *d;

    if (http_do_body(c, method, path, accept, body, r) != 0) {
        fprintf(stderr, "warrenctl: %s: cannot reach %s (is warrend running?): %s\n", what, c->url,
                r->err);
        resp_free(r);
        return -1;
    }
    if (r->status >= 200 && r->status < 300)
        return 0;
    j = json_loadb(r->body, r->len, 0, NULL);
    d = j ? json_object_get(j, "description") : NULL;
    if (!json_is_string(d) || !json_string_value(d)[0])
        d = j ? json_object_get(j, "title") : NULL;
    fprintf(stderr, "warrenctl: %s: HTTP %d %s%s%s\n", what, r->status, r->reason,
            json_is_string(d) ? ": " : "", json_is_string(d) ? json_string_value(d) : "");
    json_decref(j);
    resp_free(r);
    return -1;
}

static int get_ok(const ctl_t *c, const char *what, const char *path, const char *accept, resp_t *r)
{
    return request_ok(c, what, EVHTTP_REQ_GET, path, accept, NULL, r);
}

/* Parses the body as JSON; prints one line and returns NULL if it is not. */
static json_t *body_json(const char *what, const resp_t *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->len, 0, &e);

    if (!j)
        fprintf(stderr, "warrenctl: %s: the answer is not JSON: %s\n", what, e.text);
    return j;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */

static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (s)
        printf("%s\n", s);
    free(s);
}

/* Zaqar queue names: [A-Za-z0-9_.-]{1,64}. Checked here so a typo gets a
 * clear line instead of a 400 (or a path with a '/' in it). */
static bool queue_name_ok(const char *q)
{
    size_t n = strlen(q);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = q; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                 */

static int cmd_health(const ctl_t *c, char **args)
{
    resp_t r;
    json_t *j;

    if (get_ok(c, "health", "/v2/health", "application/json", &r) != 0)
        return 1;
    if (r.len == 0) {
        printf("ok\n");
    } else {
        if (!(j = body_json("health", &r))) {
            resp_free(&r);
            return 1;
        }
        print_json(j);
        json_decref(j);
    }
    resp_free(&r);
    return 0;
}

static int cmd_queues(const ctl_t *c, char **args)
{
    char marker[80] = "", path[256];
    size_t got;

    /* Page by marker = last name seen, until a short page. */
    do {
        resp_t r;
        json_t *j, *qs, *q;
        size_t i;

        snprintf(path, sizeof(path), "/v2/queues?limit=%d%s%s", QUEUES_PAGE,
                 marker[0] ? "&marker=" : "", marker);
        if (get_ok(c, "queues", path, "application/json", &r) != 0)
            return 1;
        got = 0;
        if (r.status == 204 || r.len == 0) { /* old Zaqar: empty list is 204 */
            resp_free(&r);
            break;
        }
        if (!(j = body_json("queues", &r))) {
            resp_free(&r);
            return 1;
        }
        resp_free(&r);
        qs = json_object_get(j, "queues");
        if (!json_is_array(qs)) {
            fprintf(stderr, "warrenctl: queues: the answer has no \"queues\" list\n");
            json_decref(j);
            return 1;
        }
        json_array_foreach(qs, i, q)
        {
            const char *name = json_string_value(json_object_get(q, "name"));
            if (!name || !queue_name_ok(name))
                continue;
            printf("%s\n", name);
            snprintf(marker, sizeof(marker), "%s", name);
            got++;
        }
        json_decref(j);
    } while (got == QUEUES_PAGE);
    return 0;
}

static int cmd_stats(const ctl_t *c, char **args)
{
    char path[256], what[96];
    resp_t r;
    json_t *j;

    if (!queue_name_ok(args[0])) {
        fprintf(stderr, "warrenctl: stats: '%s' is not a queue name ([A-Za-z0-9_.-], 1-64)\n",
                args[0]);
        return 2;
    }
    snprintf(path, sizeof(path), "/v2/queues/%s/stats", args[0]);
    snprintf(what, sizeof(what), "stats %s", args[0]);
    if (get_ok(c, what, path, "application/json", &r) != 0)
        return 1;
    j = body_json(what, &r);
    resp_free(&r);
    if (!j)
        return 1;
    print_json(j);
    json_decref(j);
    return 0;
}

static int cmd_metrics(const ctl_t *c, char **args)
{
    resp_t r;

    if (get_ok(c, "metrics", "/metrics", "text/plain", &r) != 0)
        return 1;
    fwrite(r.body, 1, r.len, stdout);
    resp_free(&r);
    return 0;
}


/* ------------------------------------------------------------------------ */
/* Admin commands (the admin API under /admin/v1, docs/rest-api.md)         */

/* "/admin/v1/" + the parts, each percent-encoded, joined by '/'. */
static void admin_path(char *out, size_t cap, const char *a, const char *b, const char *c_,
                       const char *d)
{
    const char *parts[4] = {a, b, c_, d};
    size_t n = (size_t)snprintf(out, cap, "/admin/v1");

    for (int i = 0; i < 4 && parts[i] && n < cap; i++) {
        char *enc = evhttp_uriencode(parts[i], -1, 0);
        n += (size_t)snprintf(out + n, cap - n, "/%s", enc ? enc : "");
        free(enc);
    }
}

/* One admin request whose answer has no body worth printing. */
static int admin_do(const ctl_t *c, const char *what, enum evhttp_cmd_type method,
                    const char *path, json_t *body)
{
    char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
    resp_t r;
    int rc;

    json_decref(body);
    rc = request_ok(c, what, method, path, "application/json", b, &r);
    free(b);
    if (rc != 0)
        return 1;
    resp_free(&r);
    return 0;
}

/* GET an admin path; returns the JSON answer or NULL after one line. */
static json_t *admin_get(const ctl_t *c, const char *what, const char *path)
{
    resp_t r;
    json_t *j;

    if (request_ok(c, what, EVHTTP_REQ_GET, path, "application/json", NULL, &r) != 0)
        return NULL;
    j = body_json(what, &r);
    resp_free(&r);
    return j;
}

static int cmd_tenant_add(const ctl_t *c, char **args)
{
    char path[1024];

    admin_path(path, sizeof(path), "tenants", args[0], NULL, NULL);
    return admin_do(c, "tenant add", EVHTTP_REQ_PUT, path, NULL);
}

static int cmd_tenant_del(const ctl_t *c, char **args)
{
    char path[1024];

    admin_path(path, sizeof(path), "tenants", args[0], NULL, NULL);
    return admin_do(c, "tenant del", EVHTTP_REQ_DELETE, path, NULL);
}

/* Prints member `key` of every object of list `list` (or every string). */
static int print_names(const ctl_t *c, const char *what, const char *path, const char *list,
                       const char *key)
{
    json_t *j = admin_get(c, what, path), *l, *it;
    size_t i;

    if (!j)
        return 1;
    l = json_object_get(j, list);
    if (!json_is_array(l)) {
        fprintf(stderr, "warrenctl: %s: the answer has no \"%s\" list\n", what, list);
        json_decref(j);
        return 1;
    }
    json_array_foreach(l, i, it)
    {
        const char *s = json_string_value(key ? json_object_get(it, key) : it);
        if (s)
            printf("%s\n", s);
    }
    json_decref(j);
    return 0;
}

static int cmd_tenant_list(const ctl_t *c, char **args)
{
    return print_names(c, "tenant list", "/admin/v1/tenants", "tenants", NULL);
}

static int cmd_user_add(const ctl_t *c, char **args)
{
    char path[1024];

    admin_path(path, sizeof(path), "users", args[0], NULL, NULL);
    return admin_do(c, "user add", EVHTTP_REQ_PUT, path, json_pack("{s:s}", "password", args[1]));
}

static int cmd_user_del(const ctl_t *c, char **args)
{
    char path[1024];

    admin_path(path, sizeof(path), "users", args[0], NULL, NULL);
    return admin_do(c, "user del", EVHTTP_REQ_DELETE, path, NULL);
}

static int cmd_user_list(const ctl_t *c, char **args)
{
    return print_names(c, "user list", "/admin/v1/users", "users", "name");
}

static int cmd_grant(const ctl_t *c, char **args)
{
    char path[1024];
    json_t *body = json_object();

    admin_path(path, sizeof(path), "grants", args[0], args[1], NULL);
    /* CONFIGURE WRITE READ are all given or none (then ".*" each). */
    if (args[2]) {
        json_object_set_new(body, "configure", json_string(args[2]));
        json_object_set_new(body, "write", json_string(args[3]));
        json_object_set_new(body, "read", json_string(args[4]));
    }
    return admin_do(c, "grant", EVHTTP_REQ_PUT, path, body);
}

static int cmd_revoke(const ctl_t *c, char **args)
{
    char path[1024];

    admin_path(path, sizeof(path), "grants", args[0], args[1], NULL);
    return admin_do(c, "revoke", EVHTTP_REQ_DELETE, path, NULL);
}

static int cmd_token_add(const ctl_t *c, char **args)
{
    char *b = NULL;
    json_t *body = json_pack("{s:s}", "user", args[0]), *j, *t;
    resp_t r;
    int rc;

    b = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    rc = request_ok(c, "token add", EVHTTP_REQ_POST, "/admin/v1/tokens", "application/json", b,
                    &r);
    free(b);
    if (rc != 0)
        return 1;
    j = body_json("token add", &r);
    resp_free(&r);
    t = j ? json_object_get(j, "token") : NULL;
    if (!json_is_string(t)) {
        if (j)
            fprintf(stderr, "warrenctl: token add: the answer has no \"token\"\n");
        json_decref(j);
        return 1;
    }
    printf("%s\n", json_string_value(t)); /* the token and nothing else */
    json_decref(j);
    return 0;
}

static int cmd_token_del(const ctl_t *c, char **args)
{
    char path[1024];

    admin_path(path, sizeof(path), "tokens", args[0], NULL, NULL);
    return admin_do(c, "token del", EVHTTP_REQ_DELETE, path, NULL);
}

static int cmd_quota_set(const ctl_t *c, char **args)
{
    char path[1024], *end;
    unsigned long long v;

    if (args[2][0] < '0' || args[2][0] > '9' || (v = strtoull(args[2], &end, 10), *end) ||
        v > INT64_MAX) {
        fprintf(stderr, "warrenctl: quota set: VALUE '%s' is not a non-negative integer\n",
                args[2]);
        return 2;
    }
    admin_path(path, sizeof(path), "tenants", args[0], "quotas", args[1]);
    return admin_do(c, "quota set", EVHTTP_REQ_PUT, path,
                    json_pack("{s:I}", "value", (json_int_t)v));
}

static int cmd_quota_list(const ctl_t *c, char **args)
{
    char path[1024];
    json_t *j, *q, *v;
    const char *k;

    admin_path(path, sizeof(path), "tenants", args[0], "quotas", NULL);
    if (!(j = admin_get(c, "quota list", path)))
        return 1;
    q = json_object_get(j, "quotas");
    json_object_foreach(q, k, v)
    {
        printf("%s %lld\n", k, (long long)json_integer_value(v));
    }
    json_decref(j);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The command table                                                        */

typedef struct cmd {
    const char *name;
    const char *sub;  /* second word ("tenant add"), or NULL */
    int nargs;        /* arguments after the name */
    int nargs_alt;    /* another accepted count (grant: 2 or 5), or -1 */
    const char *args; /* for usage */
    const char *help;
    int (*run)(const ctl_t *c, char **args); /* args: NULL-terminated */
} cmd_t;

static const cmd_t cmds[] = {
    {"health", NULL, 0, -1, "", "check that warrend answers (GET /v2/health)", cmd_health},
    {"queues", NULL, 0, -1, "", "list the project's queues, one per line", cmd_queues},
    {"stats", NULL, 1, -1, "QUEUE", "a queue's message counts, as JSON", cmd_stats},
    {"metrics", NULL, 0, -1, "", "the Prometheus metrics text (GET /metrics)", cmd_metrics},
    {"tenant", "add", 1, -1, "NAME", "create a tenant (AMQP vhost, Zaqar project)",
     cmd_tenant_add},
    {"tenant", "del", 1, -1, "NAME", "delete a tenant (refused while it has queues)",
     cmd_tenant_del},
    {"tenant", "list", 0, -1, "", "the tenants, one per line", cmd_tenant_list},
    {"user", "add", 2, -1, "NAME PASSWORD", "create a user or set its password", cmd_user_add},
    {"user", "del", 1, -1, "NAME", "delete a user with its grants and tokens", cmd_user_del},
    {"user", "list", 0, -1, "", "the users, one per line", cmd_user_list},
    {"grant", NULL, 2, 5, "USER TENANT [CONFIGURE WRITE READ]",
     "set a user's permissions (regexes, default .*)", cmd_grant},
    {"revoke", NULL, 2, -1, "USER TENANT", "remove a user's permissions on a tenant", cmd_revoke},
    {"token", "add", 1, -1, "USER", "a new token for the user (printed alone)", cmd_token_add},
    {"token", "del", 1, -1, "TOKEN", "revoke a token", cmd_token_del},
    {"quota", "set", 3, -1, "TENANT KEY VALUE",
     "set a quota, applied at once; 0 = unlimited. KEY: max-queues max-exchanges "
     "max-connections max-channels max-queue-messages max-queue-bytes max-tenant-messages "
     "max-tenant-bytes max-message-bytes publish-rate publish-burst (docs/security.md)",
     cmd_quota_set},
    {"quota", "list", 1, -1, "TENANT", "a tenant's quota settings, \"KEY VALUE\" lines",
     cmd_quota_list},
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: warrenctl [--url URL] [--project P] [--token T] COMMAND [ARGS]\n"
                 "\n"
                 "Admin CLI for a running warrend, over its REST port.\n"
                 "\n"
                 "options (each also read from the environment):\n"
                 "  --url URL       warrend's REST address, $WARREN_URL (default " DEFAULT_URL ")\n"
                 "  --project P     X-Project-Id, $WARREN_PROJECT (default " DEFAULT_PROJECT ")\n"
                 "  --token T       X-Auth-Token, $WARREN_TOKEN (default none)\n"
                 "  --help          print this help\n"
                 "\n"
                 "commands:\n");
    for (size_t i = 0; i < NCMDS; i++) {
        char lhs[80];
        snprintf(lhs, sizeof(lhs), "%s%s%s%s%s", cmds[i].name, cmds[i].sub ? " " : "",
                 cmds[i].sub ? cmds[i].sub : "", cmds[i].args[0] ? " " : "", cmds[i].args);
        if (strlen(lhs) > 24)
            fprintf(out, "  %s\n  %-24s %s\n", lhs, "", cmds[i].help);
        else
            fprintf(out, "  %-24s %s\n", lhs, cmds[i].help);
    }
    fprintf(out, "\nThe admin commands need an admin's token (--token or $WARREN_TOKEN; warrend\n"
                 "writes one to DATA/admin.token on its first start).\n"
                 "\nexit status: 0 success, 1 request failed, 2 bad usage\n");
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */

/* http://HOST[:PORT][/PREFIX] into c->host, c->port, c->prefix. */
static int parse_url(ctl_t *c)
{
    struct evhttp_uri *u = evhttp_uri_parse(c->url);
    const char *scheme, *host, *path;
    size_t n;

    if (!u) {
        fprintf(stderr, "warrenctl: --url '%s' is not a URL\n", c->url);
        return -1;
    }
    scheme = evhttp_uri_get_scheme(u);
    host = evhttp_uri_get_host(u);
    path = evhttp_uri_get_path(u);
    if (!scheme || strcmp(scheme, "http") != 0 || !host || !host[0] ||
        strlen(host) >= sizeof(c->host)) {
        fprintf(stderr, "warrenctl: --url '%s': expected http://HOST[:PORT]\n", c->url);
        evhttp_uri_free(u);
        return -1;
    }
    snprintf(c->host, sizeof(c->host), "%s", host);
    c->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    snprintf(c->prefix, sizeof(c->prefix), "%s", path ? path : "");
    n = strlen(c->prefix);
    while (n > 0 && c->prefix[n - 1] == '/')
        c->prefix[--n] = '\0';
    evhttp_uri_free(u);
    return 0;
}

/* A random (v4) UUID: Zaqar wants a canonical UUID as Client-ID. */
static void make_client_id(char out[37])
{
    unsigned char b[16];

    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (unsigned char)rand();
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* Matches --name VALUE or --name=VALUE at argv[*i]; advances *i. Returns 1
 * if matched, 0 if not this option, -1 if the value is missing. */
static int take_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "warrenctl: %s needs a value\n", name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

int main(int argc, char **argv)
{
    ctl_t c = {0};
    const cmd_t *cmd = NULL;
    int i, rc;

    c.url = getenv("WARREN_URL") ? getenv("WARREN_URL") : DEFAULT_URL;
    c.project = getenv("WARREN_PROJECT") ? getenv("WARREN_PROJECT") : DEFAULT_PROJECT;
    c.token = getenv("WARREN_TOKEN");
    if (c.token && !c.token[0])
        c.token = NULL; /* an empty $WARREN_TOKEN is no token */

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if ((rc = take_opt(argc, argv, &i, "--url", &c.url)) ||
            (rc = take_opt(argc, argv, &i, "--project", &c.project)) ||
            (rc = take_opt(argc, argv, &i, "--token", &c.token))) {
            if (rc < 0)
                return 2;
            continue;
        }
        fprintf(stderr, "warrenctl: unknown option %s (see --help)\n", argv[i]);
        return 2;
    }
    if (i == argc) {
        fprintf(stderr, "warrenctl: no command given (see --help)\n");
        return 2;
    }
    for (size_t k = 0; k < NCMDS && !cmd; k++)
        if (strcmp(argv[i], cmds[k].name) == 0 &&
            (!cmds[k].sub || (i + 1 < argc && strcmp(argv[i + 1], cmds[k].sub) == 0)))
            cmd = &cmds[k];
    if (!cmd) {
        fprintf(stderr, "warrenctl: unknown command '%s%s%s' (see --help)\n", argv[i],
                i + 1 < argc ? " " : "", i + 1 < argc ? argv[i + 1] : "");
        return 2;
    }
    if (cmd->sub)
        i++;
    if (argc - i - 1 != cmd->nargs && argc - i - 1 != cmd->nargs_alt) {
        fprintf(stderr, "warrenctl: usage: warrenctl %s%s%s%s%s\n", cmd->name,
                cmd->sub ? " " : "", cmd->sub ? cmd->sub : "", cmd->args[0] ? " " : "",
                cmd->args);
        return 2;
    }
    if (!c.project[0]) {
        fprintf(stderr, "warrenctl: --project must not be empty\n");
        return 2;
    }
    if (parse_url(&c) != 0)
        return 2;
    make_client_id(c.client_id);
    rc = cmd->run(&c, argv + i + 1);
    fflush(stdout);
    return rc;
}
