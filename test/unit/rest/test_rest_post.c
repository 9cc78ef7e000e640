/*
 * test_rest_post.c - the fast path of message POSTs (frontends/rest/post.c):
 * what it takes, and that it hands everything unusual to the general path.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/rest/rest_int.h"

static size_t parse(const char *doc, wr_rest_post_msg_t **m)
{
    cr_assert_eq(wr_rest_json_check(doc, strlen(doc), WR_REST_JSON_DEPTH), WR_REST_JSON_OK, "%s",
                 doc);
    return wr_rest_post_parse(doc, strlen(doc), m);
}

Test(rest_post, common_documents)
{
    const char *doc =
        " { \"x\": [1, {\"messages\": 2}], \"messages\" : [ {\"body\" : {\"a\": [1, \"]}\"]},"
        " \"ttl\": 300}, {\"ttl\":60,\"body\":\"s\",\"delay\":5,\"other\":null},"
        "{\"body\": -1.5e3, \"delay\": \"x\"} ] } ";
    wr_rest_post_msg_t *m;
    size_t n = parse(doc, &m);

    cr_assert_eq(n, 3);
    cr_assert_eq(m[0].body_len, strlen("{\"a\": [1, \"]}\"]}"));
    cr_assert(memcmp(m[0].body, "{\"a\": [1, \"]}\"]}", m[0].body_len) == 0);
    cr_assert(m[0].has_ttl && m[0].ttl == 300);
    cr_assert_eq(m[0].delay, WR_REST_DELAY_NONE);
    cr_assert(memcmp(m[1].body, "\"s\"", 3) == 0 && m[1].body_len == 3);
    cr_assert(m[1].has_ttl && m[1].ttl == 60);
    cr_assert_eq(m[1].delay, WR_REST_DELAY_INT);
    cr_assert_eq(m[1].delay_s, 5);
    cr_assert(memcmp(m[2].body, "-1.5e3", 6) == 0 && m[2].body_len == 6);
    cr_assert_not(m[2].has_ttl);
    cr_assert_eq(m[2].delay, WR_REST_DELAY_BAD);
    free(m);

    n = parse("{\"messages\": [{\"body\": null, \"ttl\": -5}]}", &m);
    cr_assert_eq(n, 1, "a bad range is found later, by the caller");
    cr_assert_eq(m[0].ttl, -5);
    free(m);
}

Test(rest_post, unusual_documents_take_the_general_path)
{
    const char *docs[] = {
        "[{\"body\": 1}]",
        "{}",
        "{\"other\": 1}",
        "{\"messages\": []}",
        "{\"messages\": {\"body\": 1}}",
        "{\"messages\": [1]}",
        "{\"messages\": [{}]}",
        "{\"messages\": [{\"ttl\": 60}]}",
        "{\"messages\": [{\"body\": 1, \"ttl\": \"60\"}]}",
        "{\"messages\": [{\"body\": 1, \"ttl\": 60.0}]}",
        "{\"messages\": [{\"body\": 1, \"ttl\": true}]}",
        "{\"messages\": [{\"body\": 1, \"ttl\": 9223372036854775808}]}",
        "{\"messages\": [{\"body\": 1, \"body\": 2}]}",
        "{\"messages\": [{\"body\": 1}], \"messages\": [{\"body\": 2}]}",
        "{\"messag\\u0065s\": [{\"body\": 1}]}",
        "{\"messages\": [{\"b\\u006fdy\": 1}]}",
        "{\"messages\": [{\"body\": \"\\ud800\"}]}",
        "{\"messages\": [{\"body\": 12345678901234567890}]}",
        "{\"messages\": [{\"body\": 1e999999999999999999999999}]}",
    };
    wr_rest_post_msg_t *m;

    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        cr_assert_eq(parse(docs[i], &m), 0, "%s", docs[i]);
        cr_assert_null(m);
    }
}

Test(rest_post, nul_and_unicode_bodies_stay_as_sent)
{
    const char *doc = "{\"messages\": [{\"body\": \"a\\u0000b\\u00e9\\ud83d\\udca9\"}]}";
    wr_rest_post_msg_t *m;

    /* A surrogate pair is also left to jansson: it is rare enough. */
    cr_assert_eq(parse(doc, &m), 0);
    doc = "{\"messages\": [{\"body\": \"a\\u0000b\\u00e9 caf\xc3\xa9\"}]}";
    cr_assert_eq(parse(doc, &m), 1);
    cr_assert(memcmp(m[0].body, "\"a\\u0000b\\u00e9 caf\xc3\xa9\"", m[0].body_len) == 0);
    free(m);
}
