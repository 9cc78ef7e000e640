/*
 * claims.c - the claim resources: POST /v2/queues/{q}/claims and
 * GET/PATCH/DELETE /v2/queues/{q}/claims/{id}.
 *
 * Behaviour follows zaqar/transport/wsgi/v2_0/claims.py: the claim body
 * {"ttl", "grace"} takes defaults for missing fields (300 s, 60 s), a claim
 * that takes nothing is a 204 without a body, a claim id that cannot exist
 * is a 404 on GET and PATCH and a 204 on DELETE.
 *
 * warren adds wait=SECONDS (0..20) to POST: when the queue has nothing to
 * claim, the request parks in the core until a message arrives or the wait
 * passes (wr_claim_opts_t.wait_ms), so consumers need not poll.
 */
#include <stdio.h>

#include "rest_int.h"

static const char ttl_msg[] =
    "The TTL for a claim may not exceed 43200 seconds, and must be at least 60 seconds long.";
static const char grace_msg[] =
    "The grace for a claim may not exceed 43200 seconds, and must be at least 60 seconds long.";

/* Reads {"ttl", "grace"} with Zaqar's sanitize(): an object, integer
 * fields, defaults for missing ones (*ttl and *grace keep theirs). NULL if
 * fine, else the description of the 400 (in desc when it names a field). */
const char *wr_rest_claim_doc(const json_t *doc, int64_t *ttl, int64_t *grace, char *desc,
                              size_t cap)
{
    static const char *const names[] = {"ttl", "grace"};
    int64_t *out[] = {ttl, grace};

    if (!json_is_object(doc))
        return "Document type not supported.";
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(doc, names[i]);

        if (!v)
            continue;
        if (!json_is_integer(v) && !json_is_boolean(v)) {
            snprintf(desc, cap, "The value of the \"%s\" field must be a int.", names[i]);
            return desc;
        }
        *out[i] = json_is_integer(v) ? (int64_t)json_integer_value(v) : json_is_true(v);
    }
    return NULL;
}

/* wr_rest_claim_doc(), failing the call when the body is wrong. */
static bool claim_body(wr_rest_call_t *c, const json_t *doc, int64_t *ttl, int64_t *grace)
{
    char desc[80];
    const char *why = wr_rest_claim_doc(doc, ttl, grace, desc, sizeof(desc));

    if (why)
        wr_rest_fail_body(c, why);
    return !why;
}

static void put_claim_location(wr_rest_call_t *c, wr_rest_buf_t *b, uint64_t cid)
{
    char hex[WR_REST_ID_LEN + 1];

    wr_rest_id_format(cid, hex);
    wr_rest_put_queue_path(b, c);
    wr_rest_buf_puts(b, "/claims/");
    wr_rest_buf_put(b, hex, WR_REST_ID_LEN);
}

/* {"messages": [...]} with each href carrying the claim. */
static void put_claimed(wr_rest_buf_t *b, const wr_rest_call_t *c, const wr_msgs_res_t *res,
                        uint64_t cid)
{
    int64_t now = wr_now_wall_ms();

    wr_rest_buf_puts(b, "\"messages\": [");
    for (size_t i = 0; i < res->n; i++) {
        if (i)
            wr_rest_buf_puts(b, ", ");
        wr_rest_put_msg(b, c, &res->msgs[i], cid, now, false);
    }
    wr_rest_buf_putc(b, ']');
}

/* ------------------------------------------------------------------------ */
/* POST                                                                     */

static void on_claim(void *arg, const wr_msgs_res_t *res)
{
    wr_rest_call_t *c = arg;
    wr_rest_buf_t *b;

    if (res->err != WR_OK && res->err != WR_ENOTFOUND) {
        wr_rest_fail_err(c, res->err, "Claim could not be created");
        return;
    }
    if (res->err == WR_ENOTFOUND || res->n == 0 || res->claim_id == 0) {
        wr_rest_reply(c, 204);
        wr_rest_finish(c);
        return;
    }
    b = wr_rest_reply_json(c, 201);
    wr_rest_buf_putc(b, '{');
    put_claimed(b, c, res, res->claim_id);
    wr_rest_buf_putc(b, '}');
    c->resp.location.len = 0;
    put_claim_location(c, &c->resp.location, res->claim_id);
    wr_rest_finish(c);
}

void wr_rest_claims_post(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    int64_t limit = WR_REST_PAGE_DEFAULT, ttl = WR_REST_CLAIM_TTL_DEFAULT;
    int64_t grace = WR_REST_GRACE_DEFAULT, wait_ms = 0;
    wr_claim_opts_t o = {0};
    wr_err_t err;
    int r;

    /* falcon reads limit as an int first; its range is checked after ttl. */
    r = wr_rest_qparam_int(c, req, "limit", INT64_MIN, INT64_MAX, "", &limit);
    if (r < 0)
        return;
    if (req->body_len > 0) {
        json_t *doc = wr_rest_body_json(c, req);
        bool ok;

        if (!doc)
            return;
        ok = claim_body(c, doc, &ttl, &grace);
        json_decref(doc);
        if (!ok)
            return;
    }
    if (ttl < WR_REST_CLAIM_TTL_MIN || ttl > WR_REST_CLAIM_TTL_MAX) {
        wr_rest_fail(c, 400, NULL, ttl_msg);
        return;
    }
    if (limit < 1 || limit > WR_REST_CLAIM_MAX) {
        wr_rest_fail(c, 400, NULL, "Limit must be at least 1 and may not be greater than 20.");
        return;
    }
    if (grace < WR_REST_GRACE_MIN || grace > WR_REST_GRACE_MAX) {
        wr_rest_fail(c, 400, NULL, grace_msg);
        return;
    }
    if (!wr_rest_qparam_wait(c, req, &wait_ms))
        return;
    o.limit = (uint32_t)limit;
    o.ttl_ms = ttl * 1000;
    o.grace_ms = grace * 1000;
    o.wait_ms = wait_ms;
    err = wr_claim(c->srv->core, c->tenant, c->queue, &o, c->loop, on_claim, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Claim could not be created");
}

/* ------------------------------------------------------------------------ */
/* GET                                                                      */

static void fail_no_claim(wr_rest_call_t *c)
{
    char desc[160];

    snprintf(desc, sizeof(desc), "Claim %.*s does not exist.",
             (int)(c->param_len > 64 ? 64 : c->param_len), c->param);
    wr_rest_fail(c, 404, NULL, desc);
}

static void on_claim_get(void *arg, const wr_msgs_res_t *res)
{
    wr_rest_call_t *c = arg;
    wr_rest_buf_t *b;

    if (res->err == WR_ENOTFOUND) {
        fail_no_claim(c);
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Claim could not be queried");
        return;
    }
    b = wr_rest_reply_json(c, 200);
    wr_rest_buf_puts(b, "{\"age\": ");
    wr_rest_buf_i64(b, res->claim_age_ms > 0 ? res->claim_age_ms / 1000 : 0);
    wr_rest_buf_puts(b, ", \"ttl\": ");
    wr_rest_buf_i64(b, res->claim_ttl_ms / 1000);
    wr_rest_buf_puts(b, ", ");
    put_claimed(b, c, res, c->id);
    wr_rest_buf_puts(b, ", \"href\": \"");
    put_claim_location(c, b, c->id);
    wr_rest_buf_puts(b, "\"}");
    wr_rest_finish(c);
}

void wr_rest_claim_get(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_err_t err;

    if (!wr_rest_id_parse(c->param, c->param_len, &c->id)) {
        fail_no_claim(c);
        return;
    }
    err = wr_claim_get(c->srv->core, c->tenant, c->queue, c->id, c->loop, on_claim_get, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Claim could not be queried");
}

/* ------------------------------------------------------------------------ */
/* PATCH                                                                    */

static void on_renew(void *arg, const wr_count_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err == WR_ENOTFOUND) {
        fail_no_claim(c);
        return;
    }
    if (res->err != WR_OK) {
        wr_rest_fail_err(c, res->err, "Claim could not be updated");
        return;
    }
    wr_rest_reply(c, 204);
    wr_rest_finish(c);
}

void wr_rest_claim_patch(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    int64_t ttl = WR_REST_CLAIM_TTL_DEFAULT, grace = WR_REST_GRACE_DEFAULT;
    json_t *doc;
    bool ok;
    wr_err_t err;

    doc = wr_rest_body_json(c, req);
    if (!doc)
        return;
    ok = claim_body(c, doc, &ttl, &grace);
    json_decref(doc);
    if (!ok)
        return;
    /* Zaqar's claim_updating checks only the TTL. A grace the core cannot
     * take (negative) is clamped rather than refused. */
    if (ttl < WR_REST_CLAIM_TTL_MIN || ttl > WR_REST_CLAIM_TTL_MAX) {
        wr_rest_fail(c, 400, NULL, ttl_msg);
        return;
    }
    if (grace < 0)
        grace = 0;
    if (grace > WR_REST_GRACE_MAX)
        grace = WR_REST_GRACE_MAX;
    if (!wr_rest_id_parse(c->param, c->param_len, &c->id)) {
        fail_no_claim(c);
        return;
    }
    err = wr_claim_renew(c->srv->core, c->tenant, c->queue, c->id, ttl * 1000, grace * 1000,
                         c->loop, on_renew, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Claim could not be updated");
}

/* ------------------------------------------------------------------------ */
/* DELETE                                                                   */

static void on_release(void *arg, const wr_count_res_t *res)
{
    wr_rest_call_t *c = arg;

    if (res->err != WR_OK && res->err != WR_ENOTFOUND) {
        wr_rest_fail_err(c, res->err, "Claim could not be deleted");
        return;
    }
    wr_rest_reply(c, 204);
    wr_rest_finish(c);
}

void wr_rest_claim_delete(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    wr_err_t err;

    if (!wr_rest_id_parse(c->param, c->param_len, &c->id)) {
        wr_rest_reply(c, 204);
        wr_rest_finish(c);
        return;
    }
    err = wr_claim_release(c->srv->core, c->tenant, c->queue, c->id, c->loop, on_release, c);
    if (err != WR_OK)
        wr_rest_fail_err(c, err, "Claim could not be deleted");
}
