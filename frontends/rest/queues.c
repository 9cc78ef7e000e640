/*
 * queues.c - the queue resources: PUT/GET/PATCH/DELETE /v2/queues/{q},
 * GET /v2/queues (paged list), GET .../stats and POST .../purge.
 *
 * Behaviour follows zaqar/transport/wsgi/v2_0/queues.py, stats.py and
 * purge.py: the order of checks, the statuses and the JSON shapes. A
 * queue's metadata object lives in the core as an opaque blob; meta.c maps
 * its reserved keys onto the core's attributes.
 *
 * Listing: without filters one core call gives the page. With a `name`
 * substring or metadata filters (any other query key; numeric strings
 * compare as integers), pages of 100 queues are scanned with their
 * metadata until `limit` match or the tenant's queues run out. `with_count`
 * counts all the tenant's queues the caller may see (a user: those it has
 * a permission on, as the list shows) with more paged calls. Unlike Zaqar, the
 * next link keeps the filters.
 *
 * Layout: PUT, GET, PATCH (validation, then stat -> apply -> update),
 * DELETE, stats, purge, list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../../core/log.h"
#include "rest_int.h"

static void put_location(wr_rest_call_t *c)
{
    c->resp.location.len = 0;
    wr_rest_put_queue_path(&c->resp.location, c);
}

/* Serializes a metadata object for the core (nothing for {}). */
static void meta_blob(const json_t *meta, wr_rest_buf_t *b)
{
    if (meta && json_object_size(meta) > 0)
        wr_rest_buf_json(b, meta);
}

/* ------------------------------------------------------------------------ */
/* PUT                                                                      */

static void on_put(void *arg, const wr_queue_declare_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Queue could not be created");
        return;
    }
    wr_rest_reply(c, res->created ? 201 : 204);
    put_location(c);
    wr_rest_finish(c);
}

void wr_rest_queue_put(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_queue_attrs_t attrs = {0};
    wr_rest_buf_t blob = {0};
    json_t *meta = NULL;
    const char *why;
    wr_err_t err;

    if (req->body_len > WR_REST_META_MAX) {
        wr_rest_fail_400(c, "Queue metadata is too large. Max size: %d", WR_REST_META_MAX);
        return;
    }
    if (req->body_len > 0) {
        meta = wr_rest_body_json(c, req);
        if (!meta)
            return;
        if (!json_is_object(meta)) {
            json_decref(meta);
            wr_rest_fail_body(c, "Document type not supported.");
            return;
        }
    }
    why = wr_rest_meta_check(meta, c->srv->limits.max_body_bytes);
    if (why) {
        json_decref(meta);
        wr_rest_fail(c, 400, NULL, why);
        return;
    }
    wr_rest_meta_attrs(meta, c->srv->limits.durable_default, &attrs);
    meta_blob(meta, &blob);
    json_decref(meta);
    /* flags 0: an existing queue keeps its metadata (Zaqar's create). */
    err = wr_queue_declare(c->srv->core, c->tenant, c->queue, &attrs,
                           (wr_slice_t){blob.p, blob.len}, 0, c->loop, on_put, c);
    wr_rest_buf_free(&blob);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Queue could not be created");
}

/* ------------------------------------------------------------------------ */
/* GET                                                                      */

static void reply_meta(wr_rest_call_t *c, json_t *meta)
{
    wr_rest_meta_fill_defaults(meta, c->srv->limits.max_body_bytes);
    wr_rest_buf_json(wr_rest_reply_json(c, 200), meta);
    wr_rest_finish(c);
}

static void fail_no_queue(wr_rest_call_t *c)
{
    char desc[128];

    snprintf(desc, sizeof(desc), "Queue %.*s does not exist.", (int)c->queue.len,
             (const char *)c->queue.ptr);
    wr_rest_fail(c, 404, NULL, desc);
}

static void on_get(void *arg, const wr_queue_stat_res_t *res)
{
    wr_rest_call_t *c = arg;
    json_t *meta;

    if (res->err == WR_ENOTFOUND) {
        fail_no_queue(c);
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Queue metadata could not be retrieved");
        return;
    }
    meta = wr_rest_meta_load(res->meta);
    reply_meta(c, meta);
    json_decref(meta);
}

void wr_rest_queue_get(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_err_t err = wr_queue_stat(c->srv->core, c->tenant, c->queue, c->loop, on_get, c);

    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Queue metadata could not be retrieved");
}

/* ------------------------------------------------------------------------ */
/* PATCH                                                                    */

static const char patch_type[] = "application/openstack-messaging-v2.0-json-patch";

static const char *const reserved_keys[] = {
    "_max_messages_post_size",         "_default_message_ttl",
    "_default_message_delay",          "_dead_letter_queue",
    "_dead_letter_queue_messages_ttl", "_max_claim_count",
    "_enable_encrypt_messages",
};

static bool is_reserved(const char *k)
{
    for (size_t i = 0; i < sizeof(reserved_keys) / sizeof(reserved_keys[0]); i++)
        if (strcmp(k, reserved_keys[i]) == 0)
            return true;
    return false;
}

static bool has_ws_slash(const char *p)
{
    /* re.search(r'/\s*?/', ...): two slashes with only whitespace between. */
    for (; *p; p++) {
        if (*p != '/')
            continue;
        for (const char *q = p + 1; *q; q++) {
            if (*q == '/')
                return true;
            if (!(*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' || *q == '\f' || *q == '\v'))
                break;
        }
    }
    return false;
}

/* Zaqar's _validate_json_pointer + _decode_json_pointer, for the two-part
 * pointers /metadata/<key> a queue PATCH takes. Writes the root and the key
 * (unescaped, whitespace-stripped) and returns NULL, or a description. */
static const char *decode_pointer(const char *ptr, char *root, size_t rcap, char *key, size_t kcap,
                                  size_t *parts)
{
    const char *p, *e;
    size_t n = strlen(ptr), np = 0;

    if (n == 0 || ptr[0] != '/')
        return "Pointer does not start with \"/\".";
    if (has_ws_slash(ptr + 1))
        return "Pointer contains adjacent \"/\".";
    if (n > 1 && ptr[n - 1] == '/')
        return "Pointer end with \"/\".";
    for (p = ptr; *p; p++)
        if (*p == '~' && p[1] != '0' && p[1] != '1')
            return "Pointer contains \"~\" not part of a recognized escape sequence.";
    /* pointer.lstrip('/').split('/') */
    p = ptr;
    while (*p == '/')
        p++;
    root[0] = key[0] = '\0';
    for (;;) {
        char part[256];
        size_t o = 0;

        e = strchr(p, '/');
        if (!e)
            e = p + strlen(p);
        for (const char *q = p; q < e && o + 1 < sizeof(part); q++) {
            if (*q == '~' && q[1] == '1') {
                part[o++] = '/';
                q++;
            } else if (*q == '~' && q[1] == '0') {
                part[o++] = '~';
                q++;
            } else {
                part[o++] = *q;
            }
        }
        part[o] = '\0';
        /* .strip() */
        {
            char *s = part, *t = part + o;
            while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
                s++;
            while (t > s && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\n' || t[-1] == '\r'))
                t--;
            *t = '\0';
            if (np == 0)
                snprintf(root, rcap, "%s", s);
            else if (np == 1)
                snprintf(key, kcap, "%s", s);
        }
        np++;
        if (!*e)
            break;
        p = e + 1;
    }
    *parts = np;
    return NULL;
}

/* One validated change. */
typedef struct change {
    enum { OP_ADD, OP_REMOVE, OP_REPLACE } op;
    char key[256];
    json_t *value; /* borrowed from the document */
} change_t;

typedef struct patch_st {
    json_t *doc; /* the request document (owns the values) */
    size_t n;
    change_t ch[];
} patch_st_t;

static void patch_st_free(void *p)
{
    patch_st_t *st = p;

    json_decref(st->doc);
    free(st);
}

/* Zaqar's queue_patching. Returns NULL or the description of a 400. */
static const char *wash_changes(json_t *doc, patch_st_t *st, char *why, size_t wcap)
{
    size_t i;
    json_t *raw;

    json_array_foreach(doc, i, raw)
    {
        change_t *ch = &st->ch[st->n];
        const json_t *op, *path;
        const char *ops, *err;
        char root[256];
        size_t parts;

        if (!json_is_object(raw))
            return "Operations must be JSON objects.";
        op = json_object_get(raw, "op");
        if (!op)
            return "Unable to find `op` in JSON Schema change. It must be one of the "
                   "following: add, remove, replace.";
        ops = json_is_string(op) ? json_string_value(op) : "";
        if (strcmp(ops, "add") == 0) {
            ch->op = OP_ADD;
        } else if (strcmp(ops, "remove") == 0) {
            ch->op = OP_REMOVE;
        } else if (strcmp(ops, "replace") == 0) {
            ch->op = OP_REPLACE;
        } else {
            snprintf(why, wcap,
                     "Invalid operation: `%.64s`. It must be one of the following: add, "
                     "remove, replace.",
                     ops);
            return why;
        }
        path = json_object_get(raw, "path");
        if (!path)
            return "Unable to find 'path' in JSON Schema change";
        if (!json_is_string(path))
            return "Pointer must be a string.";
        err = decode_pointer(json_string_value(path), root, sizeof(root), ch->key, sizeof(ch->key),
                             &parts);
        if (err)
            return err;
        if (parts != 2) {
            snprintf(why, wcap,
                     "Invalid JSON pointer for this resource: '/%.64s, e.g /metadata/key'",
                     json_string_value(path));
            return why;
        }
        if (ch->op != OP_REMOVE) {
            ch->value = json_object_get(raw, "value");
            if (!ch->value) {
                snprintf(why, wcap, "Operation \"%s\" requires a member named \"value\".", ops);
                return why;
            }
            if (strcasecmp(root, "metadata") != 0)
                return "The root of path must be metadata, e.g /metadata/key.";
        }
        st->n++;
    }
    return NULL;
}

static void on_patch_set(void *arg, const wr_queue_declare_res_t *res)
{
    wr_rest_call_t *c = arg;
    patch_st_t *st = c->st;

    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Queue could not be updated");
        return;
    }
    /* st->doc now holds the new metadata (see on_patch_stat). */
    reply_meta(c, st->doc);
}

static void on_patch_stat(void *arg, const wr_queue_stat_res_t *res)
{
    wr_rest_call_t *c = arg;
    patch_st_t *st = c->st;
    wr_queue_attrs_t attrs;
    wr_rest_buf_t blob = {0};
    json_t *meta;
    const char *why;
    char desc[320];
    wr_err_t err;

    if (res->err == WR_ENOTFOUND) {
        fail_no_queue(c);
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Queue could not be updated");
        return;
    }
    meta = wr_rest_meta_load(res->meta);
    for (size_t i = 0; i < st->n; i++) {
        const change_t *ch = &st->ch[i];
        bool present = json_object_get(meta, ch->key) != NULL;

        if (ch->op == OP_REPLACE && !present && !is_reserved(ch->key)) {
            snprintf(desc, sizeof(desc), "Can't replace non-existent object %s.", ch->key);
            json_decref(meta);
            wr_rest_fail(c, 409, NULL, desc);
            return;
        }
        if (ch->op == OP_REMOVE && !present && !is_reserved(ch->key)) {
            snprintf(desc, sizeof(desc), "Can't remove non-existent object %s.", ch->key);
            json_decref(meta);
            wr_rest_fail(c, 409, NULL, desc);
            return;
        }
        if (ch->op == OP_REMOVE)
            json_object_del(meta, ch->key);
        else
            json_object_set(meta, ch->key, ch->value);
    }
    why = wr_rest_meta_check(meta, c->srv->limits.max_body_bytes);
    if (why) {
        json_decref(meta);
        wr_rest_fail_body(c, why);
        return;
    }
    /* Keep what other front ends set (max length, overflow...); replace
     * only what the metadata maps. */
    attrs = res->attrs;
    {
        wr_queue_attrs_t m;
        wr_rest_meta_attrs(meta, false, &m);
        attrs.default_ttl_ms = m.default_ttl_ms;
        attrs.default_delay_ms = m.default_delay_ms;
        attrs.max_post_bytes = m.max_post_bytes;
        if (json_object_get(meta, "_durable"))
            attrs.durable = m.durable;
    }
    meta_blob(meta, &blob);
    if (blob.len > WR_META_MAX) {
        wr_rest_buf_free(&blob);
        json_decref(meta);
        wr_rest_fail_400(c, "Queue metadata is too large. Max size: %d", WR_REST_META_MAX);
        return;
    }
    /* The request document is no longer needed; keep the new metadata for
     * the reply instead. */
    json_decref(st->doc);
    st->doc = meta;
    st->n = 0;
    err =
        wr_queue_declare(c->srv->core, c->tenant, c->queue, &attrs, (wr_slice_t){blob.p, blob.len},
                         WR_DECL_UPDATE, c->loop, on_patch_set, c);
    wr_rest_buf_free(&blob);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Queue could not be updated");
}

static bool is_patch_type(const char *ct)
{
    size_t n;

    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    n = strlen(ct);
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n == sizeof(patch_type) - 1 && strncasecmp(ct, patch_type, n) == 0;
}

void wr_rest_queue_patch(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    char why[256];
    const char *err_desc;
    patch_st_t *st;
    json_t *doc;
    wr_err_t err;

    if (req->body_len > WR_REST_META_MAX) {
        char d[80];
        snprintf(d, sizeof(d), "Queue metadata is too large. Max size: %d", WR_REST_META_MAX);
        wr_rest_fail_body(c, d);
        return;
    }
    if (!is_patch_type(req->header ? req->header(req->hctx, "Content-Type") : NULL)) {
        wr_rest_error(c, 415, NULL,
                      "Accepted media type for PATCH: "
                      "application/openstack-messaging-v2.0-json-patch.");
        c->resp.accept_patch = patch_type;
        wr_rest_finish(c);
        return;
    }
    if (req->body_len == 0) {
        wr_rest_fail_body(c, "PATCH body could not be empty for update.");
        return;
    }
    doc = wr_rest_body_json(c, req);
    if (!doc)
        return;
    if (!json_is_array(doc)) {
        json_decref(doc);
        wr_rest_fail_body(c, "Document type not supported.");
        return;
    }
    st = calloc(1, sizeof(*st) + json_array_size(doc) * sizeof(change_t));
    if (!st)
        wr_panic(__FILE__, __LINE__, "out of memory");
    st->doc = doc;
    c->st = st;
    c->st_free = patch_st_free;
    err_desc = wash_changes(doc, st, why, sizeof(why));
    if (err_desc) {
        wr_rest_fail_body(c, err_desc);
        return;
    }
    err = wr_queue_stat(c->srv->core, c->tenant, c->queue, c->loop, on_patch_stat, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Queue could not be updated");
}

/* ------------------------------------------------------------------------ */
/* DELETE                                                                   */

static void on_count_204(void *arg, const wr_count_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err != WR_OK && res->err != WR_ENOTFOUND) {
        wr_rest_fail_err(c, res->err, "Queue could not be changed");
        return;
    }
    wr_rest_reply(c, 204);
    wr_rest_finish(c);
}

void wr_rest_queue_delete(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_err_t err = wr_queue_delete(c->srv->core, c->tenant, c->queue, 0, c->loop, on_count_204, c);

    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Queue could not be deleted");
}

/* ------------------------------------------------------------------------ */
/* Stats                                                                    */

static void put_stat_msg(wr_rest_buf_t *b, const wr_rest_call_t *c, const wr_msg_ref_t *m,
                         int64_t now)
{
    char id[WR_REST_ID_LEN + 1], created[32];
    time_t t = (time_t)(m->enqueued_ms / 1000);
    struct tm tm;
    int64_t age = (now - m->enqueued_ms) / 1000;

    wr_rest_id_format(m->id, id);
    gmtime_r(&t, &tm);
    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
    wr_rest_buf_puts(b, "{\"href\": \"");
    wr_rest_put_queue_path(b, c);
    wr_rest_buf_puts(b, "/messages/");
    wr_rest_buf_puts(b, id);
    wr_rest_buf_puts(b, "\", \"age\": ");
    wr_rest_buf_i64(b, age > 0 ? age : 0);
    wr_rest_buf_puts(b, ", \"created\": \"");
    wr_rest_buf_puts(b, created);
    wr_rest_buf_puts(b, "\"}");
}

static void on_stats(void *arg, const wr_queue_stat_res_t *res)
{
    wr_rest_call_t *c = arg;
    wr_rest_buf_t *b;
    uint64_t total = 0, claimed = 0;

    if (res->err != WR_OK && res->err != WR_ENOTFOUND) {
        wr_rest_fail_err(c, res->err, "Queue stats could not be read");
        return;
    }
    if (res->err == WR_OK) {
        total = res->total;
        claimed = res->claimed <= total ? res->claimed : total;
    }
    b = wr_rest_reply_json(c, 200);
    wr_rest_buf_fmt(b, "{\"messages\": {\"claimed\": %llu, \"free\": %llu, \"total\": %llu",
                    (unsigned long long)claimed, (unsigned long long)(total - claimed),
                    (unsigned long long)total);
    if (total > 0 && res->has_oldest) {
        int64_t now = wr_now_wall_ms();

        wr_rest_buf_puts(b, ", \"oldest\": ");
        put_stat_msg(b, c, &res->oldest, now);
        wr_rest_buf_puts(b, ", \"newest\": ");
        put_stat_msg(b, c, &res->newest, now);
    }
    wr_rest_buf_puts(b, "}}");
    wr_rest_finish(c);
}

void wr_rest_queue_stats(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_err_t err = wr_queue_stat(c->srv->core, c->tenant, c->queue, c->loop, on_stats, c);

    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Queue stats could not be read");
}

/* ------------------------------------------------------------------------ */
/* Purge                                                                    */

/*
 * wr_queue_purge() removes what is not claimed (AMQP's purge). A Zaqar
 * client expects an empty queue, so what remains (claimed messages) is then
 * listed and force-deleted, 1000 at a time. Purges are rare; the loop is
 * bounded by the queue's size.
 */
#define PURGE_PAGE 1000

static void purge_next(wr_rest_call_t *c, uint64_t marker);

static void on_purge_del(void *arg, const wr_count_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err == WR_ENOTFOUND) {
        wr_rest_reply(c, 204);
        wr_rest_finish(c);
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Queue could not be purged");
        return;
    }
    purge_next(c, c->id);
}

static void on_purge_list(void *arg, const wr_msgs_res_t *res)
{
    wr_rest_call_t *c = arg;
    uint64_t *ids;
    wr_err_t err;

    if (res->err == WR_ENOTFOUND || (res->err == WR_OK && res->n == 0)) {
        wr_rest_reply(c, 204);
        wr_rest_finish(c);
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Queue could not be purged");
        return;
    }
    ids = malloc(res->n * sizeof(*ids));
    if (!ids)
        wr_panic(__FILE__, __LINE__, "out of memory");
    for (size_t i = 0; i < res->n; i++)
        ids[i] = res->msgs[i].id;
    c->id = res->next_marker;
    err = wr_msg_delete(c->srv->core, c->tenant, c->queue, ids, res->n, 0, true, c->loop,
                        on_purge_del, c);
    free(ids);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Queue could not be purged");
}

static void purge_next(wr_rest_call_t *c, uint64_t marker)
{
    wr_err_t err = wr_msg_list(c->srv->core, c->tenant, c->queue, marker, PURGE_PAGE,
                               WR_LIST_CLAIMED | WR_LIST_DELAYED, 0, c->loop, on_purge_list, c);

    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Queue could not be purged");
}

static void on_purged(void *arg, const wr_count_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err == WR_ENOTFOUND) {
        wr_rest_reply(c, 204);
        wr_rest_finish(c);
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Queue could not be purged");
        return;
    }
    purge_next(c, 0);
}

void wr_rest_queue_purge(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    bool messages = true;
    wr_err_t err;

    if (req->body_len > 0) {
        json_t *doc = wr_rest_body_json(c, req);
        const json_t *types, *t;
        size_t i;

        if (!doc)
            return;
        types = json_is_object(doc) ? json_object_get(doc, "resource_types") : NULL;
        if (!types) {
            json_decref(doc);
            wr_rest_fail(c, 400, NULL, "Post body must contain key \"resource_types\".");
            return;
        }
        messages = false;
        if (!json_is_array(types))
            goto bad_types;
        json_array_foreach(types, i, t)
        {
            if (!json_is_string(t))
                goto bad_types;
            if (strcmp(json_string_value(t), "messages") == 0)
                messages = true;
            else if (strcmp(json_string_value(t), "subscriptions") != 0)
                goto bad_types;
        }
        json_decref(doc);
        goto go;
    bad_types:
        json_decref(doc);
        wr_rest_fail(c, 400, NULL,
                     "Resource types must be a sub set of {'messages', 'subscriptions'}.");
        return;
    }
go:
    if (!messages) {
        /* Subscriptions are not implemented: there is nothing to purge. */
        wr_rest_reply(c, 204);
        wr_rest_finish(c);
        return;
    }
    err = wr_queue_purge(c->srv->core, c->tenant, c->queue, c->loop, on_purged, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Queue could not be purged");
}

/* ------------------------------------------------------------------------ */
/* List                                                                     */

#define LIST_FILTERS_MAX 16
#define LIST_SCAN_PAGE 100   /* queues per core call while filtering */
#define LIST_COUNT_PAGE 1000 /* queues per core call while counting */

typedef struct qfilter {
    char key[128];
    char sval[256];
    size_t slen;
    bool is_int;
    int64_t ival;
} qfilter_t;

typedef struct qlist {
    uint32_t limit;
    bool limit_given, detailed, detailed_given, with_count, with_count_given;
    char name[256];
    size_t name_len;
    size_t nfilters;
    qfilter_t f[LIST_FILTERS_MAX];
    char scan[WR_NAME_MAX + 1]; /* the core's marker: names after this one */
    size_t scan_len;
    char last[WR_NAME_MAX + 1]; /* the last listed name: the next link's marker */
    size_t last_len;
    wr_rest_buf_t items;
    size_t nitems;
    uint64_t count;
} qlist_t;

static void qlist_free(void *p)
{
    qlist_t *l = p;

    wr_rest_buf_free(&l->items);
    free(l);
}

static bool filters_match(const qlist_t *l, const json_t *meta)
{
    for (size_t i = 0; i < l->nfilters; i++) {
        const qfilter_t *f = &l->f[i];
        const json_t *v = json_object_get(meta, f->key);

        if (!v)
            return false;
        if (f->is_int) {
            if (!(json_is_integer(v) && json_integer_value(v) == f->ival) &&
                !(json_is_real(v) && json_real_value(v) == (double)f->ival))
                return false;
        } else if (!json_is_string(v) || json_string_length(v) != f->slen ||
                   memcmp(json_string_value(v), f->sval, f->slen) != 0) {
            return false;
        }
    }
    return true;
}

static bool name_match(const qlist_t *l, wr_slice_t name)
{
    if (l->name_len == 0)
        return true;
    return memmem(name.ptr, name.len, l->name, l->name_len) != NULL;
}

/* Renders one item; meta is the parsed metadata when detailed. */
static void put_item(wr_rest_call_t *c, qlist_t *l, const wr_queue_item_t *it, json_t *meta)
{
    wr_rest_buf_t *b = &l->items;

    if (l->nitems++)
        wr_rest_buf_puts(b, ", ");
    wr_rest_buf_puts(b, "{\"name\": ");
    wr_rest_buf_jstr(b, it->name.ptr, it->name.len);
    wr_rest_buf_puts(b, ", \"href\": \"/v2/queues/");
    wr_rest_buf_urlenc(b, it->name.ptr, it->name.len);
    wr_rest_buf_putc(b, '"');
    if (l->detailed) {
        wr_rest_meta_fill_defaults(meta, c->srv->limits.max_body_bytes);
        wr_rest_buf_puts(b, ", \"metadata\": ");
        wr_rest_buf_json(b, meta);
    }
    wr_rest_buf_putc(b, '}');
    l->last_len = it->name.len <= WR_NAME_MAX ? it->name.len : WR_NAME_MAX;
    memcpy(l->last, it->name.ptr, l->last_len);
}

static void list_reply(wr_rest_call_t *c)
{
    qlist_t *l = c->st;
    wr_rest_buf_t *b = wr_rest_reply_json(c, 200);

    wr_rest_buf_puts(b, "{\"queues\": [");
    wr_rest_buf_put(b, l->items.p, l->items.len);
    wr_rest_buf_puts(b, "], \"links\": [");
    if (l->nitems > 0) {
        wr_rest_buf_puts(b, "{\"rel\": \"next\", \"href\": \"/v2/queues?marker=");
        wr_rest_buf_urlenc(b, l->last, l->last_len);
        if (l->limit_given)
            wr_rest_buf_fmt(b, "&limit=%u", l->limit);
        if (l->detailed_given)
            wr_rest_buf_puts(b, l->detailed ? "&detailed=true" : "&detailed=false");
        if (l->name_len > 0) {
            wr_rest_buf_puts(b, "&name=");
            wr_rest_buf_urlenc(b, l->name, l->name_len);
        }
        if (l->with_count_given)
            wr_rest_buf_puts(b, l->with_count ? "&with_count=true" : "&with_count=false");
        for (size_t i = 0; i < l->nfilters; i++) {
            wr_rest_buf_putc(b, '&');
            wr_rest_buf_urlenc(b, l->f[i].key, strlen(l->f[i].key));
            wr_rest_buf_putc(b, '=');
            wr_rest_buf_urlenc(b, l->f[i].sval, l->f[i].slen);
        }
        wr_rest_buf_puts(b, "\"}");
    }
    wr_rest_buf_putc(b, ']');
    if (l->with_count && l->count > 0)
        wr_rest_buf_fmt(b, ", \"count\": %llu", (unsigned long long)l->count);
    wr_rest_buf_putc(b, '}');
    wr_rest_finish(c);
}

static void on_count(void *arg, const wr_queue_list_res_t *res);

static void count_next(wr_rest_call_t *c)
{
    qlist_t *l = c->st;
    wr_err_t err = wr_queue_list(c->srv->core, c->tenant, (wr_slice_t){l->scan, l->scan_len},
                                 LIST_COUNT_PAGE, false, c->loop, on_count, c);

    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Queues could not be counted");
}

static void on_count(void *arg, const wr_queue_list_res_t *res)
{
    wr_rest_call_t *c = arg;
    qlist_t *l = c->st;

    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Queues could not be counted");
        return;
    }
    /* The count is of what the user may see, as the list is (issue 5). */
    for (size_t i = 0; i < res->n; i++)
        l->count += wr_rest_may_see(c, res->items[i].name);
    if (res->more && res->n > 0) {
        const wr_queue_item_t *it = &res->items[res->n - 1];

        l->scan_len = it->name.len <= WR_NAME_MAX ? it->name.len : WR_NAME_MAX;
        memcpy(l->scan, it->name.ptr, l->scan_len);
        count_next(c);
        return;
    }
    list_reply(c);
}

static void list_done(wr_rest_call_t *c)
{
    qlist_t *l = c->st;

    if (!l->with_count) {
        list_reply(c);
        return;
    }
    l->scan_len = 0;
    count_next(c);
}

static void on_scan(void *arg, const wr_queue_list_res_t *res);

static void scan_next(wr_rest_call_t *c)
{
    qlist_t *l = c->st;
    bool filtering = l->nfilters > 0 || l->name_len > 0 || c->who == WR_REST_WHO_USER;
    uint32_t n = filtering ? LIST_SCAN_PAGE : l->limit;
    wr_err_t err = wr_queue_list(c->srv->core, c->tenant, (wr_slice_t){l->scan, l->scan_len}, n,
                                 l->detailed || l->nfilters > 0, c->loop, on_scan, c);

    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Queues could not be listed");
}

static void on_scan(void *arg, const wr_queue_list_res_t *res)
{
    wr_rest_call_t *c = arg;
    qlist_t *l = c->st;
    bool filtering = l->nfilters > 0 || l->name_len > 0 || c->who == WR_REST_WHO_USER;

    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Queues could not be listed");
        return;
    }
    for (size_t i = 0; i < res->n && l->nitems < l->limit; i++) {
        const wr_queue_item_t *it = &res->items[i];
        json_t *meta = NULL;

        l->scan_len = it->name.len <= WR_NAME_MAX ? it->name.len : WR_NAME_MAX;
        memcpy(l->scan, it->name.ptr, l->scan_len);
        /* A user sees the queues it has a permission on (issue 5). */
        if (!name_match(l, it->name) || !wr_rest_may_see(c, it->name))
            continue;
        if (l->detailed || l->nfilters > 0)
            meta = wr_rest_meta_load(it->meta);
        if (filters_match(l, meta))
            put_item(c, l, it, meta);
        json_decref(meta);
    }
    if (filtering && l->nitems < l->limit && res->more && res->n > 0) {
        scan_next(c);
        return;
    }
    list_done(c);
}

/* Reads the list parameters; false after failing the call. */
static bool list_params(wr_rest_call_t *c, const wr_rest_req_t *req, qlist_t *l)
{
    static const char *const fields[] = {"marker", "limit", "detailed", "name", "with_count"};
    int64_t limit = WR_REST_PAGE_DEFAULT;
    const char *v;
    size_t n;
    int r;

    r = wr_rest_qparam_int(c, req, "limit", 1, WR_REST_PAGE_MAX,
                           "Limit must be at least 1 and no greater than 20.", &limit);
    if (r < 0)
        return false;
    l->limit = (uint32_t)limit;
    l->limit_given = r > 0;
    r = wr_rest_qparam_bool(c, req, "detailed", &l->detailed);
    if (r < 0)
        return false;
    l->detailed_given = r > 0;
    r = wr_rest_qparam_bool(c, req, "with_count", &l->with_count);
    if (r < 0)
        return false;
    l->with_count_given = r > 0;
    if ((v = wr_rest_arg(req, "marker", &n)) != NULL) {
        if (n > sizeof(l->scan) - 1) {
            wr_rest_fail(c, 400, NULL, "The marker is too long.");
            return false;
        }
        memcpy(l->scan, v, n);
        l->scan_len = n;
    }
    if ((v = wr_rest_arg(req, "name", &n)) != NULL) {
        if (n > sizeof(l->name)) {
            wr_rest_fail(c, 400, NULL, "The name filter is too long.");
            return false;
        }
        memcpy(l->name, v, n);
        l->name_len = n;
    }

    /* Every other key filters on metadata. */
    for (size_t i = 0; req->args && i < req->args->n; i++) {
        const wr_rest_arg_t *a = &req->args->a[i];
        qfilter_t *f;
        bool known = false;

        if (a->vlen == 0 || a->klen == 0)
            continue; /* falcon drops blank values; no metadata key is "" */
        if (a->klen > sizeof(f->key) - 1) {
            wr_rest_fail(c, 400, NULL, "A filter name is too long.");
            return false;
        }
        for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++)
            known |= strcmp(a->key, fields[k]) == 0;
        if (known)
            continue;
        f = NULL;
        for (size_t k = 0; k < l->nfilters; k++)
            if (strcmp(l->f[k].key, a->key) == 0)
                f = &l->f[k]; /* a repeated key: the last value wins */
        if (!f) {
            if (l->nfilters == LIST_FILTERS_MAX) {
                wr_rest_fail(c, 400, NULL, "Too many metadata filters.");
                return false;
            }
            f = &l->f[l->nfilters++];
            memcpy(f->key, a->key, a->klen + 1);
        }
        if (a->vlen > sizeof(f->sval)) {
            wr_rest_fail(c, 400, NULL, "A filter value is too long.");
            return false;
        }
        memcpy(f->sval, a->val, a->vlen);
        f->slen = a->vlen;
        f->is_int = wr_rest_parse_int(f->sval, f->slen, &f->ival);
    }
    return true;
}

void wr_rest_queues_list(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    qlist_t *l = calloc(1, sizeof(*l));

    if (!l)
        wr_panic(__FILE__, __LINE__, "out of memory");
    c->st = l;
    c->st_free = qlist_free;
    if (!list_params(c, req, l))
        return;
    scan_next(c);
}
