/*
 * messages.c - the message resources: POST/GET/DELETE
 * /v2/queues/{q}/messages (post, list, get by ids, bulk delete, pop) and
 * GET/DELETE /v2/queues/{q}/messages/{id}.
 *
 * Behaviour follows zaqar/transport/wsgi/v2_0/messages.py and the mongodb
 * driver. Choices worth knowing:
 *
 *  - POST creates the queue lazily with Zaqar's defaults (3600 s TTL): it
 *    publishes without WR_PUB_CREATE and, only when the queue is missing,
 *    declares it and publishes again. A message without "ttl" takes the
 *    queue's default TTL (ttl_ms 0 lets the core apply it).
 *  - A message's "delay" is kept only when the queue has a nonzero
 *    _default_message_delay (Zaqar's sanitiser drops it otherwise), so a
 *    POST carrying any "delay" first asks the core for the queue's
 *    attributes. Posts without "delay" cost one core call.
 *  - The document is parsed with jansson and each body stored as jansson's
 *    compact JSON text of it; reading one back embeds the bytes as they are
 *    (json.c).
 *  - DELETE .../messages/{id}?claim_id= that the core refuses (EINVAL)
 *    reads the message once more to tell Zaqar's 403 (claimed by another
 *    claim) from its 400 (not claimed, or the claim has expired).
 *
 * Layout: rendering, POST, GET list / by ids, GET one, DELETE one,
 * DELETE by ids / pop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"
#include "rest_int.h"

/* ------------------------------------------------------------------------ */
/* Rendering                                                                */

static void put_msg_href(wr_rest_buf_t *b, const wr_rest_call_t *c, uint64_t id, uint64_t cid)
{
    char hex[WR_REST_ID_LEN + 1];

    wr_rest_put_queue_path(b, c);
    wr_rest_buf_puts(b, "/messages/");
    wr_rest_id_format(id, hex);
    wr_rest_buf_put(b, hex, WR_REST_ID_LEN);
    if (cid) {
        wr_rest_id_format(cid, hex);
        wr_rest_buf_puts(b, "?claim_id=");
        wr_rest_buf_put(b, hex, WR_REST_ID_LEN);
    }
}

void wr_rest_put_msg(wr_rest_buf_t *b, const wr_rest_call_t *c, const wr_msg_view_t *m,
                     uint64_t claim_id, int64_t now_ms, bool pop)
{
    char hex[WR_REST_ID_LEN + 1];
    int64_t age = (now_ms - m->enqueued_ms) / 1000;
    int64_t ttl = m->ttl_ms;

    /* A claim keeps a message alive at least until the claim ends plus its
     * grace, and Zaqar then shows the longer TTL. */
    if (m->expires_ms != INT64_MAX && m->expires_ms - m->enqueued_ms > ttl)
        ttl = m->expires_ms - m->enqueued_ms;
    wr_rest_id_format(m->id, hex);
    wr_rest_buf_puts(b, "{\"id\": \"");
    wr_rest_buf_put(b, hex, WR_REST_ID_LEN);
    if (!pop) {
        wr_rest_buf_puts(b, "\", \"href\": \"");
        put_msg_href(b, c, m->id, claim_id);
    }
    wr_rest_buf_puts(b, "\", \"ttl\": ");
    wr_rest_buf_i64(b, ttl / 1000);
    wr_rest_buf_puts(b, ", \"age\": ");
    wr_rest_buf_i64(b, age > 0 ? age : 0);
    wr_rest_buf_puts(b, ", \"body\": ");
    wr_rest_buf_body(b, m->body);
    if (pop) {
        /* Zaqar shows the popped message's earlier claim, which for a
         * message that can be popped is none or an expired one. */
        wr_rest_buf_puts(b, ", \"claim_id\": null, \"claim_count\": ");
        wr_rest_buf_u64(b, m->claim_count);
    }
    wr_rest_buf_putc(b, '}');
}

/* {"messages": [...]} of a result; claim_id overrides each href's claim
 * (for claims), else each message's own claim is shown. */
static void put_msgs(wr_rest_buf_t *b, const wr_rest_call_t *c, const wr_msgs_res_t *res,
                     uint64_t claim_id, bool pop)
{
    int64_t now = wr_now_wall_ms();
    size_t need = 32;

    /* Room for the whole answer at once, not by doubling from 256 bytes
     * (about 200 bytes of fields and href per message, besides its body). */
    for (size_t i = 0; i < res->n; i++)
        need += 256 + res->msgs[i].body->body_len;
    wr_rest_buf_reserve(b, need);
    wr_rest_buf_puts(b, "{\"messages\": [");
    for (size_t i = 0; i < res->n; i++) {
        if (i)
            wr_rest_buf_puts(b, ", ");
        wr_rest_put_msg(b, c, &res->msgs[i], claim_id ? claim_id : res->msgs[i].claim_id, now, pop);
    }
    wr_rest_buf_putc(b, ']');
}

/* ------------------------------------------------------------------------ */
/* POST                                                                     */

#define WR_REST_DELAY_NONE 0 /* no "delay" */
#define WR_REST_DELAY_INT 1  /* an integer, in delay_s */
#define WR_REST_DELAY_BAD 2  /* present but not an integer */

typedef struct pmsg {
    wr_body_t *body; /* our reference; each publish takes another */
    int64_t ttl_ms;  /* 0: the queue's default */
    int delay;       /* WR_REST_DELAY_* */
    int64_t delay_s;
    int64_t delay_ms; /* what is published: -1 for the queue's default */
} pmsg_t;

typedef struct post_st {
    bool created; /* the queue was declared by this request */
    size_t n;
    pmsg_t m[];
} post_st_t;

static void post_st_free(void *p)
{
    post_st_t *st = p;

    for (size_t i = 0; i < st->n; i++)
        wr_body_unref(st->m[i].body);
    free(st);
}

static void on_publish(void *arg, const wr_publish_res_t *res);

static void publish(wr_rest_call_t *c, unsigned flags)
{
    post_st_t *st = c->st;
    wr_msg_in_t in[64], *inp = st->n <= 64 ? in : malloc(st->n * sizeof(*inp));
    wr_err_t err;

    if (!inp)
        wr_panic(__FILE__, __LINE__, "out of memory");
    for (size_t i = 0; i < st->n; i++)
        inp[i] = (wr_msg_in_t){
            .body = wr_body_ref(st->m[i].body), /* ours stays for a retry */
            .ttl_ms = st->m[i].ttl_ms,
            .delay_ms = st->m[i].delay_ms,
            .producer = c->producer,
            .persistent = true,
        };
    err = wr_publish(c->srv->core, c->tenant, c->queue, inp, st->n, flags, c->loop, on_publish, c);
    if (inp != in)
        free(inp);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Messages could not be enqueued");
}

static void on_post_declare(void *arg, const wr_queue_declare_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Messages could not be enqueued");
        return;
    }
    /* WR_PUB_CREATE: if the queue went away again, create it anyway. */
    publish(c, WR_PUB_CREATE);
}

static void on_publish(void *arg, const wr_publish_res_t *res)
{
    wr_rest_call_t *c = arg;
    post_st_t *st = c->st;
    wr_rest_buf_t *b, *loc;
    wr_err_t err;

    if (res->err == WR_ENOTFOUND && !st->created) {
        wr_queue_attrs_t attrs;

        st->created = true;
        wr_rest_meta_attrs(NULL, c->srv->limits.durable_default, &attrs);
        err = wr_queue_declare(c->srv->core, c->tenant, c->queue, &attrs, (wr_slice_t){NULL, 0}, 0,
                               c->loop, on_post_declare, c);
        if (err != WR_OK)
            wr_rest_fail_err(c, err, "Messages could not be enqueued");
        return;
    }
    if (res->err == WR_ETOOBIG) {
        wr_rest_fail(c, 413, NULL,
                     "Message collection size is too large for this queue "
                     "(_max_messages_post_size).");
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Messages could not be enqueued");
        return;
    }
    b = wr_rest_reply_json(c, 201);
    loc = &c->resp.location;
    loc->len = 0;
    wr_rest_put_queue_path(loc, c);
    wr_rest_buf_puts(loc, "/messages?ids=");
    wr_rest_buf_puts(b, "{\"resources\": [");
    for (size_t i = 0; i < res->n; i++) {
        char hex[WR_REST_ID_LEN + 1];

        wr_rest_id_format(res->ids[i], hex);
        if (i) {
            wr_rest_buf_puts(b, ", ");
            wr_rest_buf_putc(loc, ',');
        }
        wr_rest_buf_putc(b, '"');
        put_msg_href(b, c, res->ids[i], 0);
        wr_rest_buf_putc(b, '"');
        wr_rest_buf_put(loc, hex, WR_REST_ID_LEN);
    }
    wr_rest_buf_puts(b, "]}");
    wr_rest_finish(c);
}

/* With the queue's default delay known: keep or drop each "delay". */
static void post_apply_delay(wr_rest_call_t *c, int64_t queue_delay_ms)
{
    post_st_t *st = c->st;

    for (size_t i = 0; i < st->n; i++) {
        pmsg_t *pm = &st->m[i];

        pm->delay_ms = -1; /* the queue's default */
        if (pm->delay == WR_REST_DELAY_NONE || queue_delay_ms <= 0)
            continue;
        if (pm->delay == WR_REST_DELAY_BAD) {
            wr_rest_fail_body(c, "The value of the \"delay\" field must be a int.");
            return;
        }
        if (pm->delay_s < 0 || pm->delay_s > WR_REST_DELAY_MAX) {
            wr_rest_fail(c, 400, NULL,
                         "The Delay TTL for a message may not exceed 900 seconds,and must be at "
                         "least 0 seconds long.");
            return;
        }
        pm->delay_ms = pm->delay_s * 1000;
    }
    publish(c, 0);
}

static void on_post_stat(void *arg, const wr_queue_stat_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err != WR_OK && res->err != WR_ENOTFOUND) {
        wr_rest_fail_err(c, res->err, "Messages could not be enqueued");
        return;
    }
    post_apply_delay(c, res->err == WR_OK ? res->attrs.default_delay_ms : 0);
}

/* Zaqar's sanitize(): the types of one message. NULL if they are fine. */
static const char *msg_type_error(const json_t *m)
{
    const json_t *ttl;

    if (!json_is_object(m))
        return "Messages must be JSON objects.";
    ttl = json_object_get(m, "ttl");
    if (ttl && !json_is_integer(ttl) && !json_is_boolean(ttl))
        return "The value of the \"ttl\" field must be a int.";
    if (!json_object_get(m, "body"))
        return "Missing \"body\" field.";
    return NULL;
}

/* An integer field as Python sees it: a boolean is 0 or 1. */
static int64_t int_of(const json_t *v)
{
    return json_is_integer(v) ? json_integer_value(v) : json_is_true(v);
}

/* Fails the call with `doc` dropped. */
static void post_fail(wr_rest_call_t *c, json_t *doc, uint16_t status, const char *title,
                      const char *desc)
{
    json_decref(doc);
    wr_rest_fail(c, status, title, desc);
}

/*
 * The document is checked as Zaqar does: sanitize() for the shape and types
 * of every message, then the count, then message_posting() for the TTL
 * ranges. NULL when it may be posted, else the description of the 400 and
 * *title its title (NULL for the default one).
 */
const char *wr_rest_msgs_doc_check(const json_t *doc, const char **title)
{
    static const char bad_body[] = "Invalid request body";
    const json_t *msgs, *m;
    size_t i, n;

    *title = NULL;
    msgs = json_is_object(doc) ? json_object_get(doc, "messages") : NULL;
    if (!msgs)
        return "No messages were found in the request body.";
    if (!json_is_array(msgs)) {
        *title = bad_body;
        return "Document type not supported.";
    }
    n = json_array_size(msgs);
    if (n == 0)
        return "No messages to enqueu.";
    json_array_foreach(msgs, i, m)
    {
        const char *why = msg_type_error(m);

        if (why) {
            *title = bad_body;
            return why;
        }
    }
    if (n > WR_BATCH_MAX)
        return "Too many messages in one request (at most 1000).";
    json_array_foreach(msgs, i, m)
    {
        const json_t *ttl = json_object_get(m, "ttl");

        if (ttl && (int_of(ttl) < WR_REST_MSG_TTL_MIN || int_of(ttl) > WR_REST_MSG_TTL_MAX))
            return "The TTL for a message may not exceed 1209600 seconds, and must be at "
                   "least 60 seconds long.";
    }
    return NULL;
}

/* The document is read with jansson, checked (wr_rest_msgs_doc_check) and
 * each body stored as jansson's compact serialization of it. */
void wr_rest_msgs_post(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    const json_t *msgs, *m;
    const char *why, *title;
    wr_rest_buf_t text = {0};
    post_st_t *st;
    bool any_delay = false;
    size_t i, n;
    json_t *doc;

    doc = wr_rest_body_json(c, req);
    if (!doc)
        return;
    why = wr_rest_msgs_doc_check(doc, &title);
    if (why) {
        post_fail(c, doc, 400, title, why);
        return;
    }
    msgs = json_object_get(doc, "messages");
    n = json_array_size(msgs);
    st = malloc(sizeof(*st) + n * sizeof(pmsg_t));
    if (!st)
        wr_panic(__FILE__, __LINE__, "out of memory");
    st->created = false;
    st->n = n;
    /* A body rarely comes out longer than the whole document came in: room
     * for that at once, not by doubling from 256 bytes. */
    wr_rest_buf_reserve(&text, req->body_len);
    json_array_foreach(msgs, i, m)
    {
        const json_t *ttl = json_object_get(m, "ttl"), *delay = json_object_get(m, "delay");
        pmsg_t *pm = &st->m[i];

        text.len = 0;
        wr_rest_buf_json(&text, json_object_get(m, "body"));
        *pm = (pmsg_t){
            .body = wr_body_new((wr_slice_t){NULL, 0}, (wr_slice_t){text.p, text.len}),
            .ttl_ms = ttl ? int_of(ttl) * 1000 : 0,
            .delay = WR_REST_DELAY_NONE,
            .delay_ms = -1,
        };
        wr_body_set_json(pm->body, true); /* jansson's own encoding of a value */
        if (delay && (json_is_integer(delay) || json_is_boolean(delay))) {
            pm->delay = WR_REST_DELAY_INT;
            pm->delay_s = int_of(delay);
        } else if (delay) {
            pm->delay = WR_REST_DELAY_BAD;
        }
        any_delay |= pm->delay != WR_REST_DELAY_NONE;
    }
    wr_rest_buf_free(&text);
    json_decref(doc);
    c->st = st;
    c->st_free = post_st_free;
    if (any_delay) {
        wr_err_t err = wr_queue_stat(c->srv->core, c->tenant, c->queue, c->loop, on_post_stat, c);
        if (err != WR_OK)
            wr_rest_fail_err(c, err, "Messages could not be enqueued");
        return;
    }
    publish(c, 0);
}

/* ------------------------------------------------------------------------ */
/* ids= parameters                                                          */

#define IDS_MAX WR_REST_PAGE_MAX

typedef struct idlist {
    size_t given; /* elements in the parameter, valid or not */
    size_t n;     /* valid ids */
    uint64_t ids[IDS_MAX];
} idlist_t;

/* Collects the ids of every "ids" parameter (comma separated, like
 * falcon's get_param_as_list). Counts stop mattering past IDS_MAX + 1. */
static void collect_ids(const wr_rest_req_t *req, idlist_t *l)
{
    l->given = l->n = 0;
    for (size_t i = 0; req->args && i < req->args->n; i++) {
        const wr_rest_arg_t *a = &req->args->a[i];
        const char *p = a->val, *end = a->val + a->vlen;

        if (a->klen != 3 || memcmp(a->key, "ids", 3) != 0)
            continue;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma ? comma : end;
            uint64_t id;

            if (stop > p) {
                l->given++;
                if (l->n < IDS_MAX && wr_rest_id_parse(p, (size_t)(stop - p), &id))
                    l->ids[l->n++] = id;
            }
            p = comma ? comma + 1 : end;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* GET list / by ids                                                        */

typedef struct list_st {
    uint32_t limit;
    bool limit_given;
    int echo, include_claimed, include_delayed; /* -1 not given, else 0/1 */
} list_st_t;

static void put_bool_param(wr_rest_buf_t *b, const char *name, int v)
{
    if (v >= 0)
        wr_rest_buf_fmt(b, "&%s=%s", name, v ? "true" : "false");
}

static void on_list(void *arg, const wr_msgs_res_t *res)
{
    wr_rest_call_t *c = arg;
    list_st_t *st = c->st;
    wr_rest_buf_t *b;

    if (res->err == WR_ENOTFOUND) {
        wr_rest_buf_puts(wr_rest_reply_json(c, 200), "{\"messages\": [], \"links\": []}");
        wr_rest_finish(c);
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Messages could not be listed");
        return;
    }
    b = wr_rest_reply_json(c, 200);
    put_msgs(b, c, res, 0, false);
    wr_rest_buf_puts(b, ", \"links\": [");
    if (res->n > 0) {
        wr_rest_buf_puts(b, "{\"rel\": \"next\", \"href\": \"");
        wr_rest_put_queue_path(b, c);
        wr_rest_buf_fmt(b, "/messages?marker=%llu", (unsigned long long)res->next_marker);
        if (st->limit_given)
            wr_rest_buf_fmt(b, "&limit=%u", st->limit);
        put_bool_param(b, "echo", st->echo);
        put_bool_param(b, "include_claimed", st->include_claimed);
        put_bool_param(b, "include_delayed", st->include_delayed);
        wr_rest_buf_puts(b, "\"}");
    }
    wr_rest_buf_puts(b, "]}");
    wr_rest_finish(c);
}

static void fail_no_ids(wr_rest_call_t *c)
{
    char desc[200];

    snprintf(desc, sizeof(desc), "No messages with the given IDs found in the queue %.*s.",
             (int)c->queue.len, (const char *)c->queue.ptr);
    wr_rest_fail(c, 404, NULL, desc);
}

static void on_get_ids(void *arg, const wr_msgs_res_t *res)
{
    wr_rest_call_t *c = arg;
    wr_rest_buf_t *b;

    if (res->err == WR_ENOTFOUND || (res->err == WR_OK && res->n == 0)) {
        fail_no_ids(c);
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Message could not be retrieved");
        return;
    }
    b = wr_rest_reply_json(c, 200);
    put_msgs(b, c, res, 0, false);
    wr_rest_buf_putc(b, '}');
    wr_rest_finish(c);
}

static const char limit_msg[] = "Limit must be at least 1 and may not be greater than 20.";

static int qbool(wr_rest_call_t *c, const wr_rest_req_t *req, const char *key, int *out)
{
    bool v = false;
    int r = wr_rest_qparam_bool(c, req, key, &v);

    if (r >= 0) /* after a failure the call (and *out) is gone */
        *out = r > 0 ? v : -1;
    return r;
}

void wr_rest_msgs_get(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    idlist_t ids;
    list_st_t *st;
    int64_t limit = WR_REST_PAGE_DEFAULT;
    uint64_t marker = 0;
    unsigned flags = 0;
    const char *mv;
    size_t mn;
    int r;
    wr_err_t err;

    collect_ids(req, &ids);
    if (ids.given > 0) {
        if (ids.given > IDS_MAX) {
            wr_rest_fail(c, 400, NULL, limit_msg);
            return;
        }
        if (ids.n == 0) {
            fail_no_ids(c);
            return;
        }
        err = wr_msg_get(c->srv->core, c->tenant, c->queue, ids.ids, ids.n, c->loop, on_get_ids, c);
        if (err != WR_OK)
            wr_rest_fail_err(c, err, "Message could not be retrieved");
        return;
    }

    st = calloc(1, sizeof(*st));
    if (!st)
        wr_panic(__FILE__, __LINE__, "out of memory");
    c->st = st;
    c->st_free = free;
    r = wr_rest_qparam_int(c, req, "limit", 1, WR_REST_PAGE_MAX, limit_msg, &limit);
    if (r < 0)
        return;
    st->limit = (uint32_t)limit;
    st->limit_given = r > 0;
    if (qbool(c, req, "echo", &st->echo) < 0 ||
        qbool(c, req, "include_claimed", &st->include_claimed) < 0 ||
        qbool(c, req, "include_delayed", &st->include_delayed) < 0)
        return;
    /* The marker is ours (a decimal sequence); like Zaqar's, a marker that
     * does not decode lists from the start. */
    mv = wr_rest_arg(req, "marker", &mn);
    if (mv) {
        int64_t m;
        if (wr_rest_parse_int(mv, mn, &m) && m > 0)
            marker = (uint64_t)m;
    }
    if (st->echo != 1)
        flags |= WR_LIST_HIDE_OWN;
    if (st->include_claimed == 1)
        flags |= WR_LIST_CLAIMED;
    if (st->include_delayed == 1)
        flags |= WR_LIST_DELAYED;
    err = wr_msg_list(c->srv->core, c->tenant, c->queue, marker, st->limit, flags, c->producer,
                      c->loop, on_list, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Messages could not be listed");
}

/* ------------------------------------------------------------------------ */
/* GET one                                                                  */

static void fail_no_msg(wr_rest_call_t *c)
{
    char desc[200];

    snprintf(desc, sizeof(desc), "Message %.*s does not exist.",
             (int)(c->param_len > 64 ? 64 : c->param_len), c->param);
    wr_rest_fail(c, 404, NULL, desc);
}

static void on_get_one(void *arg, const wr_msgs_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err == WR_ENOTFOUND || (res->err == WR_OK && res->n == 0)) {
        fail_no_msg(c);
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Message could not be retrieved");
        return;
    }
    wr_rest_put_msg(wr_rest_reply_json(c, 200), c, &res->msgs[0], res->msgs[0].claim_id,
                    wr_now_wall_ms(), false);
    wr_rest_finish(c);
}

void wr_rest_msg_get(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_err_t err;

    if (!wr_rest_id_parse(c->param, c->param_len, &c->id)) {
        fail_no_msg(c);
        return;
    }
    err = wr_msg_get(c->srv->core, c->tenant, c->queue, &c->id, 1, c->loop, on_get_one, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Message could not be retrieved");
}

/* ------------------------------------------------------------------------ */
/* DELETE one                                                               */

static const char del_title[] = "Unable to delete";
static const char del_claimed[] =
    "This message is claimed; it cannot be deleted without a valid claim ID.";
static const char del_not_claimed[] =
    "A claim was specified, but the message is not currently claimed.";
static const char del_no_claim[] = "The specified claim does not exist or has expired.";

static void on_delete_check(void *arg, const wr_msgs_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err == WR_ENOTFOUND || (res->err == WR_OK && res->n == 0)) {
        wr_rest_reply(c, 204); /* gone meanwhile */
        wr_rest_finish(c);
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Message could not be deleted");
        return;
    }
    if (res->msgs[0].claim_id != 0 && res->msgs[0].claim_id != c->claim)
        wr_rest_fail(c, 403, del_title, del_claimed);
    else
        wr_rest_fail(c, 400, del_title, del_not_claimed);
}

static void on_delete_one(void *arg, const wr_count_res_t *res)
{
    wr_rest_call_t *c = arg;
    wr_err_t err;

    if (res->err == WR_OK || res->err == WR_ENOTFOUND) {
        wr_rest_reply(c, 204);
        wr_rest_finish(c);
        return;
    }
    if (res->err == WR_EDENIED) {
        wr_rest_fail(c, 403, del_title, del_claimed);
        return;
    }
    if (res->err == WR_EINVAL && c->claim != 0) {
        err = wr_msg_get(c->srv->core, c->tenant, c->queue, &c->id, 1, c->loop, on_delete_check, c);
        if (err != WR_OK)
            wr_rest_fail_err(c, err, "Message could not be deleted");
        return;
    }
    wr_rest_fail_err(c, res->err, "Message could not be deleted");
}

void wr_rest_msg_delete(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    uint64_t cid = 0;
    const char *cv;
    size_t cn;
    wr_err_t err;

    /* The mongodb driver's order: an id that cannot exist is a success,
     * then a claim id that cannot exist is a 400. */
    if (!wr_rest_id_parse(c->param, c->param_len, &c->id)) {
        wr_rest_reply(c, 204);
        wr_rest_finish(c);
        return;
    }
    cv = wr_rest_arg(req, "claim_id", &cn);
    if (cv && !wr_rest_id_parse(cv, cn, &cid)) {
        wr_rest_fail(c, 400, del_title, del_no_claim);
        return;
    }
    c->claim = cid; /* for on_delete_check */
    err = wr_msg_delete(c->srv->core, c->tenant, c->queue, &c->id, 1, cid, false, c->loop,
                        on_delete_one, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Message could not be deleted");
}

/* ------------------------------------------------------------------------ */
/* DELETE by ids / pop                                                      */

static void on_delete_ids(void *arg, const wr_count_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err != WR_OK && res->err != WR_ENOTFOUND) {
        wr_rest_fail_err(c, res->err, "Messages could not be deleted");
        return;
    }
    wr_rest_reply(c, 204);
    wr_rest_finish(c);
}

static void on_pop(void *arg, const wr_msgs_res_t *res)
{
    wr_rest_call_t *c = arg;
    wr_rest_buf_t *b;

    if (res->err != WR_OK && res->err != WR_ENOTFOUND) {
        wr_rest_fail_err(c, res->err, "Messages could not be popped");
        return;
    }
    b = wr_rest_reply_json(c, 200);
    if (res->err == WR_ENOTFOUND)
        wr_rest_buf_puts(b, "{\"messages\": []");
    else
        put_msgs(b, c, res, 0, true);
    wr_rest_buf_putc(b, '}');
    wr_rest_finish(c);
}

void wr_rest_msgs_delete(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    idlist_t ids;
    int64_t pop = 0, wait_ms = 0;
    int has_pop;
    wr_err_t err;

    /* falcon reads pop as an int before Zaqar validates the combination. */
    has_pop = wr_rest_qparam_int(c, req, "pop", INT64_MIN, INT64_MAX, "", &pop);
    if (has_pop < 0)
        return;
    collect_ids(req, &ids);
    if (has_pop && ids.given) {
        wr_rest_fail(c, 400, NULL,
                     "pop and id params cannot be present together in the delete request.");
        return;
    }
    if (!has_pop && !ids.given) {
        wr_rest_fail(c, 400, NULL,
                     "The request should have either \"ids\" or \"pop\" parameter in the "
                     "request, to be able to delete.");
        return;
    }
    if (has_pop) {
        wr_claim_opts_t o = {0};

        if (pop < 1 || pop > WR_REST_CLAIM_MAX) {
            wr_rest_fail(c, 400, NULL,
                         "Pop value must be at least 1 and may not be greater than 20.");
            return;
        }
        if (!wr_rest_qparam_wait(c, req, &wait_ms))
            return;
        o.limit = (uint32_t)pop;
        o.ttl_ms = 60 * 1000; /* unused by a pop, but the core wants > 0 */
        o.grace_ms = 0;
        o.wait_ms = wait_ms;
        o.pop = true;
        err = wr_claim(c->srv->core, c->tenant, c->queue, &o, c->loop, on_pop, c);
        if (err != WR_OK)
            wr_rest_fail_err(c, err, "Messages could not be popped");
        return;
    }
    if (ids.given > IDS_MAX) {
        wr_rest_fail(c, 400, NULL,
                     "ids parameter should have at least 1 and not greater than 20 values.");
        return;
    }
    if (ids.n == 0) {
        wr_rest_reply(c, 204);
        wr_rest_finish(c);
        return;
    }
    err = wr_msg_delete(c->srv->core, c->tenant, c->queue, ids.ids, ids.n, 0, true, c->loop,
                        on_delete_ids, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Messages could not be deleted");
}
