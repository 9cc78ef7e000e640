/*
 * test_rest_handle.c - wr_rest_handle() end to end against a real core
 * (2 shards), without sockets: hooks, routing, statuses, JSON shapes.
 *
 * Each request runs on a test loop (the reply loop, as a shard loop is in
 * warrend); t_req() waits for the response and copies it.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "frontends/rest/rest_int.h"

#define CID "3fa85f64-5717-4562-b3fc-2c963f66afa6"

static wr_core_t *core;
static wr_loop_t *loop;
static wr_rest_server_t srv;

typedef struct t_resp {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status;
    char body[65536];
    char location[4096];
    char allow[64];
    char ctype[64];
} t_resp_t;

typedef struct t_job {
    wr_rest_req_t req;
    const char *const *hdrs; /* name, value, ..., NULL */
    t_resp_t *out;
} t_job_t;

static const char *t_header(void *hctx, const char *name)
{
    const char *const *h = hctx;

    for (; h && h[0]; h += 2)
        if (strcasecmp(h[0], name) == 0)
            return h[1];
    return NULL;
}

static void t_done(void *arg, wr_rest_resp_t *r)
{
    t_resp_t *o = arg;

    pthread_mutex_lock(&o->mu);
    o->status = r->status;
    snprintf(o->body, sizeof(o->body), "%.*s", (int)r->body.len, r->body.p ? r->body.p : "");
    snprintf(o->location, sizeof(o->location), "%.*s", (int)r->location.len,
             r->location.p ? r->location.p : "");
    snprintf(o->allow, sizeof(o->allow), "%s", r->allow ? r->allow : "");
    snprintf(o->ctype, sizeof(o->ctype), "%s", r->content_type ? r->content_type : "");
    o->done = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void t_run(void *arg)
{
    t_job_t *j = arg;

    wr_rest_handle(&srv, loop, &j->req, t_done, j->out);
}

/* Sends METHOD PATH?QUERY with the default Zaqar headers (or `hdrs`). */
static t_resp_t *t_req_h(wr_rest_method_t m, const char *url, const char *body,
                         const char *const *hdrs)
{
    static const char *const dflt[] = {"X-Project-Id", "proj", "Client-ID", CID, NULL};
    t_resp_t *o = calloc(1, sizeof(*o));
    t_job_t j = {0};
    const char *q = strchr(url, '?');

    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    j.req.method = m;
    j.req.path = url;
    j.req.path_len = q ? (size_t)(q - url) : strlen(url);
    j.req.query = q ? q + 1 : NULL;
    j.req.query_len = q ? strlen(q + 1) : 0;
    j.req.header = t_header;
    j.req.hctx = (void *)(hdrs ? hdrs : dflt);
    j.req.body = body;
    j.req.body_len = body ? strlen(body) : 0;
    j.req.has_body = body != NULL;
    j.out = o;
    wr_loop_post(loop, t_run, &j);
    pthread_mutex_lock(&o->mu);
    while (!o->done)
        pthread_cond_wait(&o->cv, &o->mu);
    pthread_mutex_unlock(&o->mu);
    return o;
}

static t_resp_t *t_req(wr_rest_method_t m, const char *url, const char *body)
{
    return t_req_h(m, url, body, NULL);
}

static int t_status(wr_rest_method_t m, const char *url, const char *body)
{
    t_resp_t *o = t_req(m, url, body);
    int s = o->status;

    free(o);
    return s;
}

static void setup(void)
{
    wr_core_cfg_t cfg = {.shards = 2};

    wr_log_level_g = WR_LOG_WARN;
    cr_assert_eq(wr_core_new(&cfg, &core), WR_OK);
    cr_assert_eq(wr_loop_new(100, &loop), WR_OK);
    cr_assert_eq(wr_loop_start(loop, "test"), WR_OK);
    wr_rest_server_init(&srv, core);
}

static void teardown(void)
{
    wr_core_stop(core);
    wr_loop_stop(loop);
    wr_core_free(core);
    wr_loop_free(loop);
}

TestSuite(rest_handle, .init = setup, .fini = teardown, .timeout = 20);

Test(rest_handle, versions_and_home)
{
    t_resp_t *o = t_req_h(WR_REST_GET, "/", NULL, (const char *const[]){NULL});

    cr_assert_eq(o->status, 300, "no Client-ID needed on /");
    cr_assert(strstr(o->body, "\"versions\""));
    cr_assert(strstr(o->ctype, "application/json"));
    free(o);
    cr_assert_eq(t_status(WR_REST_GET, "/v2/", NULL), 200);
    cr_assert_eq(t_status(WR_REST_GET, "/v2/ping", NULL), 204);
    cr_assert_eq(t_status(WR_REST_HEAD, "/v2/ping", NULL), 204);
    cr_assert_eq(t_status(WR_REST_GET, "/v2/health", NULL), 200);
    cr_assert_eq(t_status(WR_REST_GET, "/v2/health?detailed=true", NULL), 200);
}

Test(rest_handle, unknown_path_404_and_wrong_method_405)
{
    t_resp_t *o = t_req(WR_REST_GET, "/v2/nope", NULL);

    cr_assert_eq(o->status, 404);
    cr_assert(strstr(o->body, "\"title\""));
    free(o);
    o = t_req(WR_REST_POST, "/v2/queues/q", "{}");
    cr_assert_eq(o->status, 405);
    cr_assert_str_eq(o->allow, "GET, PUT, PATCH, DELETE");
    free(o);
    cr_assert_eq(t_status(WR_REST_OTHER, "/v2/queues", NULL), 405);
}

Test(rest_handle, hooks)
{
    static const char *const no_cid[] = {"X-Project-Id", "p", NULL};
    static const char *const bad_cid[] = {"X-Project-Id", "p", "Client-ID", "nope", NULL};
    static const char *const no_proj[] = {"Client-ID", CID, NULL};
    static const char *const blank_proj[] = {"X-Project-Id", "  ", "Client-ID", CID, NULL};
    static const char *const no_json[] = {"X-Project-Id", "p",         "Client-ID", CID,
                                          "Accept",       "text/html", NULL};
    static const char *const form[] = {"X-Project-Id",
                                       "p",
                                       "Client-ID",
                                       CID,
                                       "Content-Type",
                                       "application/x-www-form-urlencoded",
                                       NULL};
    t_resp_t *o;

    o = t_req_h(WR_REST_GET, "/v2/queues", NULL, no_cid);
    cr_assert_eq(o->status, 400);
    cr_assert(strstr(o->body, "Client-ID"));
    free(o);
    o = t_req_h(WR_REST_GET, "/v2/queues", NULL, bad_cid);
    cr_assert_eq(o->status, 400);
    free(o);
    o = t_req_h(WR_REST_GET, "/v2/queues", NULL, no_proj);
    cr_assert_eq(o->status, 400);
    free(o);
    o = t_req_h(WR_REST_GET, "/v2/queues", NULL, blank_proj);
    cr_assert_eq(o->status, 400);
    free(o);
    o = t_req_h(WR_REST_GET, "/v2/queues", NULL, no_json);
    cr_assert_eq(o->status, 406);
    free(o);
    o = t_req_h(WR_REST_POST, "/v2/queues/q/messages", "a=b", form);
    cr_assert_eq(o->status, 400);
    free(o);
    cr_assert_eq(t_status(WR_REST_PUT, "/v2/queues/bad%20name", NULL), 400);
    /* /metrics takes no Zaqar headers at all */
    o = t_req_h(WR_REST_GET, "/metrics", NULL, (const char *const[]){NULL});
    cr_assert_eq(o->status, 200);
    cr_assert(strstr(o->body, "# TYPE warren_rest_requests_total counter"));
    free(o);
}

Test(rest_handle, queue_lifecycle)
{
    t_resp_t *o;

    o = t_req(WR_REST_PUT, "/v2/queues/q1", "{\"color\": \"red\"}");
    cr_assert_eq(o->status, 201);
    cr_assert_str_eq(o->location, "/v2/queues/q1");
    free(o);
    cr_assert_eq(t_status(WR_REST_PUT, "/v2/queues/q1", NULL), 204);
    o = t_req(WR_REST_GET, "/v2/queues/q1", NULL);
    cr_assert_eq(o->status, 200);
    cr_assert(strstr(o->body, "\"color\":\"red\""), "%s", o->body);
    cr_assert(strstr(o->body, "\"_default_message_ttl\":3600"), "%s", o->body);
    free(o);
    o = t_req(WR_REST_GET, "/v2/queues", NULL);
    cr_assert_eq(o->status, 200);
    cr_assert(strstr(o->body, "\"name\": \"q1\""), "%s", o->body);
    cr_assert(strstr(o->body, "marker=q1"), "%s", o->body);
    free(o);
    cr_assert_eq(t_status(WR_REST_DELETE, "/v2/queues/q1", NULL), 204);
    cr_assert_eq(t_status(WR_REST_GET, "/v2/queues/q1", NULL), 404);
    cr_assert_eq(t_status(WR_REST_DELETE, "/v2/queues/q1", NULL), 204);
}

Test(rest_handle, post_list_claim_delete)
{
    char path[256], cid[32];
    const char *p;
    t_resp_t *o;

    o = t_req(WR_REST_POST, "/v2/queues/m/messages",
              "{\"messages\": [{\"body\": {\"k\": 1}}, {\"body\": \"two\", \"ttl\": 120}]}");
    cr_assert_eq(o->status, 201, "%s", o->body);
    cr_assert(strncmp(o->location, "/v2/queues/m/messages?ids=", 26) == 0, "%s", o->location);
    cr_assert_eq(strlen(o->location), 26 + 24 + 1 + 24);
    free(o);

    o = t_req(WR_REST_GET, "/v2/queues/m/messages?echo=true", NULL);
    cr_assert_eq(o->status, 200);
    cr_assert(strstr(o->body, "\"body\": {\"k\":1}"), "jansson's compact text: %s", o->body);
    cr_assert(strstr(o->body, "\"ttl\": 3600"), "%s", o->body);
    cr_assert(strstr(o->body, "\"ttl\": 120"), "%s", o->body);
    free(o);
    o = t_req(WR_REST_GET, "/v2/queues/m/messages", NULL);
    cr_assert(strstr(o->body, "\"messages\": []"), "echo defaults to false: %s", o->body);
    free(o);

    o = t_req(WR_REST_POST, "/v2/queues/m/claims?limit=1", "{\"ttl\": 60, \"grace\": 60}");
    cr_assert_eq(o->status, 201, "%s", o->body);
    p = strstr(o->location, "/claims/");
    cr_assert_not_null(p);
    snprintf(cid, sizeof(cid), "%s", p + 8);
    cr_assert_eq(strlen(cid), 24);
    p = strstr(o->body, "/messages/");
    cr_assert_not_null(p);
    snprintf(path, sizeof(path), "/v2/queues/m%.34s", p); /* /messages/<id> */
    free(o);

    cr_assert_eq(t_status(WR_REST_DELETE, path, NULL), 403, "claimed without claim_id");
    o = t_req(WR_REST_GET, strcat(strcpy((char[256]){0}, "/v2/queues/m/claims/"), cid), NULL);
    cr_assert_eq(o->status, 200);
    cr_assert(strstr(o->body, "\"ttl\": 60"), "%s", o->body);
    free(o);
    strcat(path, "?claim_id=");
    strcat(path, cid);
    cr_assert_eq(t_status(WR_REST_DELETE, path, NULL), 204);

    o = t_req(WR_REST_DELETE, "/v2/queues/m/messages?pop=5", NULL);
    cr_assert_eq(o->status, 200);
    cr_assert(strstr(o->body, "\"claim_count\""), "%s", o->body);
    cr_assert(strstr(o->body, "\"two\""), "%s", o->body);
    free(o);
    o = t_req(WR_REST_POST, "/v2/queues/m/claims", NULL);
    cr_assert_eq(o->status, 204, "nothing left to claim");
    cr_assert_str_eq(o->body, "");
    free(o);
}

Test(rest_handle, validation)
{
    cr_assert_eq(t_status(WR_REST_POST, "/v2/queues/v/messages", "{\"messages\": []}"), 400);
    cr_assert_eq(t_status(WR_REST_POST, "/v2/queues/v/messages", "{\"messages\": [{}]}"), 400);
    cr_assert_eq(t_status(WR_REST_POST, "/v2/queues/v/messages",
                          "{\"messages\": [{\"body\": 1, \"ttl\": 59}]}"),
                 400);
    cr_assert_eq(t_status(WR_REST_POST, "/v2/queues/v/messages", "not json"), 400);
    cr_assert_eq(t_status(WR_REST_GET, "/v2/queues/v/messages?limit=21", NULL), 400);
    cr_assert_eq(t_status(WR_REST_GET, "/v2/queues/v/messages?limit=x", NULL), 400);
    cr_assert_eq(t_status(WR_REST_DELETE, "/v2/queues/v/messages", NULL), 400);
    cr_assert_eq(t_status(WR_REST_DELETE, "/v2/queues/v/messages?pop=21", NULL), 400);
    cr_assert_eq(t_status(WR_REST_POST, "/v2/queues/v/claims", "{\"ttl\": 30}"), 400);
    cr_assert_eq(t_status(WR_REST_POST, "/v2/queues/v/claims?wait=21", NULL), 400);
    cr_assert_eq(t_status(WR_REST_PATCH, "/v2/queues/v/claims/000000000000000000000001", NULL), 400,
                 "PATCH needs a body");
    cr_assert_eq(t_status(WR_REST_GET, "/v2/queues/v/messages/zzz", NULL), 404);
    cr_assert_eq(t_status(WR_REST_DELETE, "/v2/queues/v/messages/zzz", NULL), 204);
    cr_assert_eq(t_status(WR_REST_PUT, "/v2/queues/v", "{\"_default_message_ttl\": 10}"), 400);
    cr_assert_eq(t_status(WR_REST_PATCH, "/v2/queues/v", "[]"), 415);
}

Test(rest_handle, stats)
{
    t_resp_t *o = t_req(WR_REST_GET, "/v2/queues/nothere/stats", NULL);

    cr_assert_eq(o->status, 200);
    cr_assert_str_eq(o->body, "{\"messages\": {\"claimed\": 0, \"free\": 0, \"total\": 0}}");
    free(o);
    free(t_req(WR_REST_POST, "/v2/queues/s/messages", "{\"messages\": [{\"body\": 1}]}"));
    o = t_req(WR_REST_GET, "/v2/queues/s/stats", NULL);
    cr_assert(strstr(o->body, "\"total\": 1"), "%s", o->body);
    cr_assert(strstr(o->body, "\"oldest\": {\"href\": \"/v2/queues/s/messages/"), "%s", o->body);
    cr_assert(strstr(o->body, "\"created\": \"20"), "%s", o->body);
    free(o);
}

/* POSTs doc to /v2/queues/<q>/messages; returns the status and, with a
 * description wanted, checks it. */
static void post_fails(const char *q, const char *doc, int status, const char *desc)
{
    char path[128];
    t_resp_t *o;

    snprintf(path, sizeof(path), "/v2/queues/%s/messages", q);
    o = t_req(WR_REST_POST, path, doc);
    cr_assert_eq(o->status, status, "%s -> %d %s", doc, o->status, o->body);
    if (desc)
        cr_assert(strstr(o->body, desc), "%s -> %s", doc, o->body);
    free(o);
}

/* The bodies of every message in queue q, as listed (echo=true). */
static t_resp_t *list_all(const char *q)
{
    char path[128];

    snprintf(path, sizeof(path), "/v2/queues/%s/messages?echo=true&limit=20", q);
    return t_req(WR_REST_GET, path, NULL);
}

Test(rest_handle, post_documents)
{
    const char *doc =
        " { \"x\": [1, {\"messages\": 2}], \"messages\" : [ {\"body\" : {\"a\": [1, \"]}\"]},"
        " \"ttl\": 300}, {\"ttl\":60,\"body\":\"s\",\"delay\":5,\"other\":null},"
        "{\"body\": -1.5e3, \"delay\": \"x\"}, {\"b\\u006fdy\": false} ] } ";
    t_resp_t *o;

    o = t_req(WR_REST_POST, "/v2/queues/pd/messages", doc);
    cr_assert_eq(o->status, 201, "%s", o->body);
    cr_assert_eq(strlen(o->location), strlen("/v2/queues/pd/messages?ids=") + 4 * 25 - 1);
    free(o);
    o = list_all("pd");
    cr_assert(strstr(o->body, "\"ttl\": 300, \"age\": 0, \"body\": {\"a\":[1,\"]}\"]}}"), "%s",
              o->body);
    cr_assert(strstr(o->body, "\"ttl\": 60, \"age\": 0, \"body\": \"s\"}"), "%s", o->body);
    cr_assert(strstr(o->body, "\"ttl\": 3600, \"age\": 0, \"body\": -1500.0}"), "%s", o->body);
    cr_assert(strstr(o->body, "\"body\": false}"), "an escaped key is a key: %s", o->body);
    free(o);

    /* Repeated keys: the last one counts, as in Python. */
    o = t_req(WR_REST_POST, "/v2/queues/pd2/messages",
              "{\"messages\": [{\"body\": 1}], \"messages\": [{\"body\": 2, \"body\": 3}]}");
    cr_assert_eq(o->status, 201, "%s", o->body);
    free(o);
    o = list_all("pd2");
    cr_assert(strstr(o->body, "\"body\": 3}]"), "%s", o->body);
    free(o);
}

Test(rest_handle, post_bodies_keep_nul_and_unicode)
{
    t_resp_t *o;

    o = t_req(WR_REST_POST, "/v2/queues/pu/messages",
              "{\"messages\": [{\"body\": \"a\\u0000b\\u00e9\\ud83d\\udca9 caf\xc3\xa9\"}]}");
    cr_assert_eq(o->status, 201, "%s", o->body);
    free(o);
    o = list_all("pu");
    cr_assert(strstr(o->body, "\"body\": \"a\\u0000b\xc3\xa9\xf0\x9f\x92\xa9 caf\xc3\xa9\"}"), "%s",
              o->body);
    free(o);
}

Test(rest_handle, post_errors_as_zaqar)
{
    static const char no_msgs[] = "No messages were found in the request body.";
    static const char not_int[] = "The value of the \\\"ttl\\\" field must be a int.";
    static const char ttl_range[] = "The TTL for a message may not exceed 1209600 seconds";
    static const char unparsable[] = "Request body could not be parsed.";

    post_fails("pe", "[{\"body\": 1}]", 400, no_msgs);
    post_fails("pe", "{}", 400, no_msgs);
    post_fails("pe", "{\"other\": 1}", 400, no_msgs);
    post_fails("pe", "{\"messages\": []}", 400, "No messages to enqueu.");
    post_fails("pe", "{\"messages\": {\"body\": 1}}", 400, "Document type not supported.");
    post_fails("pe", "{\"messages\": [1]}", 400, "Messages must be JSON objects.");
    post_fails("pe", "{\"messages\": [{}]}", 400, "Missing \\\"body\\\" field.");
    post_fails("pe", "{\"messages\": [{\"ttl\": 60}]}", 400, "Missing \\\"body\\\" field.");
    post_fails("pe", "{\"messages\": [{\"body\": 1, \"ttl\": \"60\"}]}", 400, not_int);
    post_fails("pe", "{\"messages\": [{\"body\": 1, \"ttl\": 60.0}]}", 400, not_int);
    post_fails("pe", "{\"messages\": [{\"body\": 1, \"ttl\": true}]}", 400, ttl_range);
    post_fails("pe", "{\"messages\": [{\"body\": 1, \"ttl\": 59}]}", 400, ttl_range);
    post_fails("pe", "{\"messages\": [{\"body\": 1, \"ttl\": 1209601}]}", 400, ttl_range);
    post_fails("pe", "{\"messages\": [{\"body\": 1, \"ttl\": -9223372036854775808}]}", 400,
               ttl_range);
    post_fails("pe", "{\"messages\": [{\"body\": 1, \"ttl\": 9223372036854775808}]}", 400,
               "JSON contains integer that is too large.");
    post_fails("pe", "{\"messages\": [{\"body\": 12345678901234567890}]}", 400,
               "JSON contains integer that is too large.");
    post_fails("pe", "{\"messages\": [{\"body\": \"\\ud800\"}]}", 400, unparsable);
    post_fails("pe", "{\"messages\": [{\"body\": 1}]} x", 400, unparsable);
    post_fails("pe", "{\"messages\": [{\"body\": 1},]}", 400, unparsable);
    post_fails("pe", "", 400, "Request body can not be empty");
    /* types of every message first, then the count, then the TTLs */
    post_fails("pe", "{\"messages\": [{\"body\": 1, \"ttl\": 1}, 2]}", 400,
               "Messages must be JSON objects.");
    /* nothing was stored by any of them */
    cr_assert_eq(t_status(WR_REST_GET, "/v2/queues/pe", NULL), 404);
}

/* {"messages": [first{"body":0},{"body":1},...]} with n bodies. */
static char *many(const char *first, size_t n)
{
    char *doc = malloc(32 + strlen(first) + n * 12), *p = doc;

    p += sprintf(p, "{\"messages\": [%s", first);
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s{\"body\":%zu}", i ? "," : "", i % 10);
    sprintf(p, "]}");
    return doc;
}

Test(rest_handle, post_too_many_messages)
{
    char *doc = many("", WR_BATCH_MAX + 1);

    post_fails("pm", doc, 400, "Too many messages in one request (at most 1000).");
    free(doc);
    doc = many("2,", WR_BATCH_MAX + 1);
    post_fails("pm", doc, 400, "Messages must be JSON objects."); /* types first */
    free(doc);
    doc = many("", WR_BATCH_MAX);
    post_fails("pm", doc, 201, NULL);
    free(doc);
}

Test(rest_handle, post_nesting)
{
    size_t max = WR_REST_JSON_DEPTH - 3; /* the document, its array and object */
    char *doc = malloc(64 + 2 * 100000), *p;

    for (size_t depth = max; depth <= max + 1; depth++) {
        p = doc + sprintf(doc, "{\"messages\": [{\"body\": ");
        memset(p, '[', depth);
        memset(p + depth, ']', depth);
        strcpy(p + 2 * depth, "}]}");
        if (depth == max)
            post_fails("pn", doc, 201, NULL);
        else
            post_fails("pn", doc, 400, "Request body is nested too deeply.");
    }
    p = doc + sprintf(doc, "{\"messages\": [{\"body\": ");
    memset(p, '[', 100000);
    memset(p + 100000, ']', 100000);
    strcpy(p + 200000, "}]}");
    post_fails("pn", doc, 400, "Request body is nested too deeply.");
    free(doc);
}

Test(rest_handle, query_strings_decoded)
{
    char path[256];
    const char *p;
    t_resp_t *o;

    o = t_req(WR_REST_POST, "/v2/queues/qd/messages",
              "{\"messages\": [{\"body\": 1}, {\"body\": 2}]}");
    cr_assert_eq(o->status, 201);
    p = strstr(o->location, "ids=");
    cr_assert_not_null(p);
    /* the comma percent-encoded, a blank and an unknown id among them */
    snprintf(path, sizeof(path), "/v2/queues/qd/messages?ids=%.24s%%2C%.24s&ids=&ids=ffff", p + 4,
             p + 4 + 25);
    free(o);
    o = t_req(WR_REST_GET, path, NULL);
    cr_assert_eq(o->status, 200, "%s", o->body);
    cr_assert(strstr(o->body, "\"body\": 1}") && strstr(o->body, "\"body\": 2}"), "%s", o->body);
    free(o);
    cr_assert_eq(t_status(WR_REST_GET, "/v2/queues/qd/messages?limit=1;echo=true", NULL), 400,
                 "';' does not separate");
    cr_assert_eq(t_status(WR_REST_GET, "/v2/queues/qd/messages?limit=%32", NULL), 200);
    cr_assert_eq(t_status(WR_REST_GET, "/v2/queues/qd/messages?limit=+2+", NULL), 200,
                 "'+' is a blank, which int() ignores");
    cr_assert_eq(t_status(WR_REST_GET, "/v2/queues/qd/messages?limit=2%zz", NULL), 400);
    cr_assert_eq(t_status(WR_REST_GET, "/v2/%71ueues/qd/messages", NULL), 200, "a decoded path");
    cr_assert_eq(t_status(WR_REST_GET, "/v2/queues/q%zzd/messages", NULL), 400,
                 "a bad escape stays in the name");
}

Test(rest_handle, queue_list_filters_decoded)
{
    t_resp_t *o;

    free(t_req(WR_REST_PUT, "/v2/queues/lf", "{\"color\": \"dark red\", \"n\": 5}"));
    o = t_req(WR_REST_GET, "/v2/queues?col%6Fr=dark+red&=x&n=5", NULL);
    cr_assert_eq(o->status, 200);
    cr_assert(strstr(o->body, "\"name\": \"lf\""), "%s", o->body);
    cr_assert(strstr(o->body, "color=dark%20red"), "the next link keeps the filter: %s", o->body);
    free(o);
    o = t_req(WR_REST_GET, "/v2/queues?color=dark%2Bred", NULL);
    cr_assert(strstr(o->body, "\"queues\": []"), "%s", o->body);
    free(o);
}
