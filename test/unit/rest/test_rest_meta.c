/*
 * test_rest_meta.c - queue metadata (frontends/rest/meta.c): Zaqar's
 * reserved-key checks, their mapping onto core attributes, GET defaults.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "frontends/rest/rest_int.h"

static const char *check(const char *doc)
{
    json_t *m = json_loads(doc, 0, NULL);
    const char *why;

    cr_assert_not_null(m, "%s", doc);
    why = wr_rest_meta_check(m, 262144);
    json_decref(m);
    return why;
}

Test(rest_meta, accepted)
{
    const char *ok[] = {
        "{}",
        "{\"color\": \"red\", \"n\": [1, 2]}",
        "{\"_default_message_ttl\": 60}",
        "{\"_default_message_ttl\": 1209600}",
        "{\"_default_message_ttl\": null}",
        "{\"_max_messages_post_size\": 1}",
        "{\"_max_messages_post_size\": 262144}",
        "{\"_default_message_delay\": 0}",
        "{\"_default_message_delay\": 900}",
        "{\"_max_claim_count\": 5}",
        "{\"_dead_letter_queue\": \"dlq\", \"_dead_letter_queue_messages_ttl\": 60}",
        "{\"_enable_encrypt_messages\": false}",
        "{\"_durable\": true}",
        "{\"_retry_policy\": {\"minimum_delay\": 5, \"maximum_delay\": 30, "
        "\"retry_backoff_function\": \"linear\"}}",
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        cr_assert_null(check(ok[i]), "%s: %s", ok[i], check(ok[i]));
}

Test(rest_meta, refused)
{
    const char *bad[] = {
        "{\"_default_message_ttl\": 59}",
        "{\"_default_message_ttl\": 1209601}",
        "{\"_default_message_ttl\": \"3600\"}",
        "{\"_default_message_ttl\": 3600.5}",
        "{\"_default_message_ttl\": -5}",
        "{\"_max_messages_post_size\": 0}",
        "{\"_max_messages_post_size\": 262145}",
        "{\"_max_messages_post_size\": \"big\"}",
        "{\"_default_message_delay\": 901}",
        "{\"_default_message_delay\": -1}",
        "{\"_max_claim_count\": \"x\"}",
        "{\"_dead_letter_queue_messages_ttl\": 10}",
        "{\"_enable_encrypt_messages\": \"yes\"}",
        "{\"_durable\": 1}",
        "{\"_retry_policy\": 5}",
        "{\"_retry_policy\": {\"retry_backoff_function\": \"cubic\"}}",
        "{\"_retry_policy\": {\"minimum_delay\": 30, \"maximum_delay\": 5}}",
        "{\"_retry_policy\": {\"minimum_delay\": 20, \"maximum_delay\": 25}}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not_null(check(bad[i]), "%s", bad[i]);
}

Test(rest_meta, attrs_mapping)
{
    json_t *m = json_loads("{\"_default_message_ttl\": 999, \"_default_message_delay\": 30, "
                           "\"_max_messages_post_size\": 1023, \"_durable\": true}",
                           0, NULL);
    wr_queue_attrs_t a;

    memset(&a, 0xff, sizeof(a));
    wr_rest_meta_attrs(m, false, &a);
    cr_assert_eq(a.default_ttl_ms, 999000);
    cr_assert_eq(a.default_delay_ms, 30000);
    cr_assert_eq(a.max_post_bytes, 1023);
    cr_assert(a.durable);
    cr_assert_eq(a.max_length, 0, "unmapped attributes are zero");
    cr_assert_eq(a.overflow, WR_OVERFLOW_DROP_HEAD);
    json_decref(m);

    wr_rest_meta_attrs(NULL, false, &a);
    cr_assert_eq(a.default_ttl_ms, 3600000, "Zaqar's default TTL");
    cr_assert_eq(a.default_delay_ms, 0);
    cr_assert_eq(a.max_post_bytes, 0);
    cr_assert_not(a.durable);
    /* The server default (--rest-durable) applies when the key is absent. */
    wr_rest_meta_attrs(NULL, true, &a);
    cr_assert(a.durable);
}

Test(rest_meta, get_fills_reserved_defaults)
{
    json_t *m = json_loads("{\"a\": 1, \"_default_message_ttl\": 999, "
                           "\"_default_message_delay\": 0}",
                           0, NULL);

    wr_rest_meta_fill_defaults(m, 262144);
    cr_assert_eq(json_integer_value(json_object_get(m, "a")), 1);
    cr_assert_eq(json_integer_value(json_object_get(m, "_default_message_ttl")), 999);
    cr_assert_eq(json_integer_value(json_object_get(m, "_default_message_delay")), 0);
    cr_assert_eq(json_integer_value(json_object_get(m, "_max_messages_post_size")), 262144);
    cr_assert(json_is_null(json_object_get(m, "_max_claim_count")));
    cr_assert(json_is_null(json_object_get(m, "_dead_letter_queue")));
    cr_assert(json_is_null(json_object_get(m, "_dead_letter_queue_messages_ttl")));
    cr_assert(json_is_false(json_object_get(m, "_enable_encrypt_messages")));
    json_decref(m);
}

Test(rest_meta, load_blob)
{
    json_t *m;

    m = wr_rest_meta_load((wr_slice_t){"", 0});
    cr_assert(json_is_object(m) && json_object_size(m) == 0);
    json_decref(m);
    m = wr_rest_meta_load((wr_slice_t){"{\"k\":\"v\"}", 9});
    cr_assert_str_eq(json_string_value(json_object_get(m, "k")), "v");
    json_decref(m);
    /* Metadata another front end wrote (not a JSON object) reads as {}. */
    m = wr_rest_meta_load((wr_slice_t){"\x81\xa1k", 4});
    cr_assert(json_is_object(m) && json_object_size(m) == 0);
    json_decref(m);
}
