/*
 * meta.c - a queue's metadata: the JSON object clients PUT and PATCH.
 *
 * The whole object is kept by the core as the queue's opaque metadata blob
 * (compact JSON text). The reserved keys that change how the queue behaves
 * are also mapped onto the core's wr_queue_attrs_t, so the core enforces
 * them without knowing JSON:
 *
 *   _default_message_ttl     -> default_ttl_ms (absent: Zaqar's 3600 s)
 *   _default_message_delay   -> default_delay_ms
 *   _max_messages_post_size  -> max_post_bytes
 *   _durable (warren's own)  -> durable
 *
 * The other reserved keys (_max_claim_count, _dead_letter_queue...,
 * _enable_encrypt_messages, _retry_policy, _flavor) are validated as Zaqar
 * does and stored, but have no effect yet.
 */
#include <string.h>

#include "rest_int.h"

/* Python's truthiness of a JSON value (Zaqar tests `if value and ...`). */
static bool truthy(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return false;
    case JSON_TRUE:
        return true;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    case JSON_STRING:
        return json_string_length(v) != 0;
    case JSON_ARRAY:
        return json_array_size(v) != 0;
    case JSON_OBJECT:
        return json_object_size(v) != 0;
    }
    return true;
}

/* Python's isinstance(v, int): bools are ints there. */
static bool is_int(const json_t *v)
{
    return json_is_integer(v) || json_is_boolean(v);
}

static json_int_t int_of(const json_t *v)
{
    return json_is_integer(v) ? json_integer_value(v) : json_is_true(v);
}

/* Checks an optional integer key: type (when truthy), then range (when not
 * null). Returns NULL or the description. */
static const char *check_int(const json_t *meta, const char *key, json_int_t lo, json_int_t hi,
                             const char *type_msg, const char *range_msg)
{
    const json_t *v = json_object_get(meta, key);

    if (!v || json_is_null(v))
        return NULL;
    if (!is_int(v))
        return type_msg;
    if (int_of(v) < lo || int_of(v) > hi)
        return range_msg;
    return NULL;
}

static const char *check_retry_policy(const json_t *meta)
{
    static const char *const funcs[] = {"linear", "arithmetic", "exponential", "geometric"};
    static const char *const ints[] = {"retries_with_no_delay", "minimum_delay_retries",
                                       "minimum_delay", "maximum_delay", "maximum_delay_retries"};
    const json_t *rp = json_object_get(meta, "_retry_policy");
    const json_t *v;
    json_int_t lo = 5, hi = 30; /* zaqar.common.consts MINIMUM_DELAY, MAXIMUM_DELAY */

    if (!rp || !truthy(rp))
        return NULL;
    if (!json_is_object(rp))
        return "retry_policy must be a dict.";
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        v = json_object_get(rp, ints[i]);
        if (v && truthy(v) && !is_int(v))
            return "Retry policy: values must be integers.";
    }
    v = json_object_get(rp, "retry_backoff_function");
    if (v && truthy(v)) {
        bool known = false;

        if (!json_is_string(v))
            return "retry_backoff_function must be a string.";
        for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
            known |= strcmp(json_string_value(v), funcs[i]) == 0;
        if (!known)
            return "invalid retry_backoff_function.";
    }
    v = json_object_get(rp, "ignore_subscription_override");
    if (v && truthy(v) && !json_is_boolean(v))
        return "ignore_subscription_override must be a boolean.";
    v = json_object_get(rp, "minimum_delay");
    if (v && is_int(v))
        lo = int_of(v);
    v = json_object_get(rp, "maximum_delay");
    if (v && is_int(v))
        hi = int_of(v);
    if (hi < lo)
        return "minimum_delay must less than maximum_delay.";
    if (hi - lo < 2 * 5) /* 2 * LINEAR_INTERVAL */
        return "invalid minimum_delay and maximum_delay.";
    return NULL;
}

const char *wr_rest_meta_check(const json_t *meta, uint32_t max_post)
{
    const json_t *v;
    const char *why;

    if (!meta || json_object_size(meta) == 0)
        return NULL;
    why = check_int(meta, "_default_message_ttl", WR_REST_MSG_TTL_MIN, WR_REST_MSG_TTL_MAX,
                    "_default_message_ttl must be integer.",
                    "_default_message_ttl can not exceed 1209600 seconds, and must be at least "
                    "60 seconds long.");
    if (!why)
        why = check_int(meta, "_max_messages_post_size", 1, (json_int_t)max_post,
                        "_max_messages_post_size must be integer.",
                        "_max_messages_post_size can not exceed the server's "
                        "max_messages_post_size, and must be at least greater than 0.");
    if (!why) {
        v = json_object_get(meta, "_max_claim_count");
        if (v && truthy(v) && !is_int(v))
            why = "_max_claim_count must be integer.";
    }
    if (!why)
        why = check_int(meta, "_dead_letter_queue_messages_ttl", WR_REST_MSG_TTL_MIN,
                        WR_REST_MSG_TTL_MAX, "_dead_letter_queue_messages_ttl must be integer.",
                        "The TTL for a message may not exceed 1209600 seconds, and must be at "
                        "least 60 seconds long.");
    if (!why)
        why = check_int(meta, "_default_message_delay", 0, WR_REST_DELAY_MAX,
                        "_default_message_delay must be integer.",
                        "The TTL can not exceed 900 seconds, and must be at least 0 seconds "
                        "long.");
    if (!why) {
        v = json_object_get(meta, "_enable_encrypt_messages");
        if (v && truthy(v) && !json_is_boolean(v))
            why = "_enable_encrypt_messages must be boolean.";
    }
    if (!why) {
        v = json_object_get(meta, "_durable");
        if (v && !json_is_boolean(v) && !json_is_null(v))
            why = "_durable must be boolean.";
    }
    if (!why)
        why = check_retry_policy(meta);
    return why;
}

void wr_rest_meta_attrs(const json_t *meta, bool durable_default, wr_queue_attrs_t *attrs)
{
    const json_t *v;

    *attrs = (wr_queue_attrs_t){0};
    attrs->default_ttl_ms = (int64_t)WR_REST_MSG_TTL_DEFAULT * 1000;
    attrs->durable = durable_default;
    if (!meta)
        return;
    v = json_object_get(meta, "_default_message_ttl");
    if (v && is_int(v) && int_of(v) > 0)
        attrs->default_ttl_ms = (int64_t)int_of(v) * 1000;
    v = json_object_get(meta, "_default_message_delay");
    if (v && is_int(v) && int_of(v) > 0)
        attrs->default_delay_ms = (int64_t)int_of(v) * 1000;
    v = json_object_get(meta, "_max_messages_post_size");
    if (v && is_int(v) && int_of(v) > 0 && int_of(v) <= UINT32_MAX)
        attrs->max_post_bytes = (uint32_t)int_of(v);
    v = json_object_get(meta, "_durable");
    attrs->durable = v ? json_is_true(v) : durable_default;
}

void wr_rest_meta_fill_defaults(json_t *meta, uint32_t max_post)
{
    struct {
        const char *key;
        json_t *value; /* new reference, or NULL for null */
    } d[] = {
        {"_max_messages_post_size", json_integer(max_post)},
        {"_default_message_ttl", json_integer(WR_REST_MSG_TTL_DEFAULT)},
        {"_default_message_delay", json_integer(0)},
        {"_dead_letter_queue", NULL},
        {"_dead_letter_queue_messages_ttl", NULL},
        {"_max_claim_count", NULL},
        {"_enable_encrypt_messages", json_false()},
    };

    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        const json_t *cur = json_object_get(meta, d[i].key);

        if (!cur || !truthy(cur))
            json_object_set_new(meta, d[i].key, d[i].value ? d[i].value : json_null());
        else
            json_decref(d[i].value);
    }
}

json_t *wr_rest_meta_load(wr_slice_t blob)
{
    json_t *v = NULL;

    if (blob.len > 0)
        v = json_loadb(blob.ptr, blob.len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(v)) {
        json_decref(v);
        v = json_object();
    }
    return v;
}
