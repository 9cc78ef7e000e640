/*
 * fuzz_json.c - the REST front end's request documents, without a server:
 * the same calls the handlers make after reading a body.
 *
 * Input: one selector byte, then the body.
 *   'm'  POST /v2/queues/{q}/messages: wr_rest_json_parse, then
 *        wr_rest_msgs_doc_check (sanitize, count, TTL ranges) and, when it
 *        passes, each body serialized as messages.c stores it, and
 *        rendered back as a read would
 *   'q'  PUT /v2/queues/{q} metadata: wr_rest_meta_check, then
 *        wr_rest_meta_attrs, the stored blob (compact JSON),
 *        wr_rest_meta_load of that blob and wr_rest_meta_fill_defaults
 *   'c'  POST .../claims body: wr_rest_claim_doc
 *   any other byte: all three on the same body.
 *
 * Checks beyond the sanitizers: a document the checks accept round-trips
 * (the stored metadata blob loads back as an object; every message body
 * serializes to non-empty JSON text that jansson takes for one JSON text
 * and a read renders unchanged: what lets REST mark its bodies JSON).
 *
 * Seed corpus: test/fuzz/corpus/fuzz_json/ (valid and invalid documents of
 * each kind).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "frontends/rest/rest_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_POST 262144u

static void messages(const json_t *doc)
{
    const char *title, *why = wr_rest_msgs_doc_check(doc, &title);
    const json_t *m;
    wr_rest_buf_t text = {0};
    size_t i;

    if (why)
        return;
    json_array_foreach(json_object_get(doc, "messages"), i, m)
    {
        wr_body_t *body;
        wr_rest_buf_t out = {0};

        text.len = 0;
        wr_rest_buf_json(&text, json_object_get(m, "body"));
        if (text.len == 0)
            abort();
        /* REST marks what it posts as JSON without asking jansson: asked,
         * jansson must agree, and the body must go out as it came in. */
        body = wr_body_new((wr_slice_t){NULL, 0}, (wr_slice_t){text.p, text.len});
        wr_rest_buf_body(&out, body);
        if (wr_body_json(body) != WR_BODY_JSON_YES || out.len != text.len ||
            memcmp(out.p, text.p, text.len) != 0)
            abort();
        wr_body_unref(body);
        wr_rest_buf_free(&out);
    }
    wr_rest_buf_free(&text);
}

static void metadata(json_t *doc)
{
    wr_queue_attrs_t attrs;
    wr_rest_buf_t blob = {0};
    json_t *back;

    if (wr_rest_meta_check(doc, MAX_POST))
        return;
    wr_rest_meta_attrs(doc, true, &attrs);
    wr_rest_buf_json(&blob, doc);
    back = wr_rest_meta_load((wr_slice_t){blob.p, blob.len});
    if (!back || !json_is_object(back))
        abort();
    wr_rest_meta_fill_defaults(back, MAX_POST);
    json_decref(back);
    wr_rest_buf_free(&blob);
}

static void claim(const json_t *doc)
{
    int64_t ttl = 300, grace = 60;
    char desc[80];

    (void)wr_rest_claim_doc(doc, &ttl, &grace, desc, sizeof(desc));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    json_t *doc;
    uint8_t kind;

    if (size < 1)
        return 0;
    wr_log_level_g = WR_LOG_ERROR;
    kind = data[0];
    doc = wr_rest_json_parse((const char *)data + 1, size - 1, &why);
    if (!doc) {
        if (!why)
            abort();
        return 0;
    }
    if (kind == 'm' || (kind != 'q' && kind != 'c'))
        messages(doc);
    if (kind == 'q' || (kind != 'm' && kind != 'c'))
        metadata(doc);
    if (kind == 'c' || (kind != 'm' && kind != 'q'))
        claim(doc);
    json_decref(doc);
    return 0;
}
