/*
 * test_rest_json.c - output buffers and JSON helpers (frontends/rest/json.c):
 * the validator, string escaping, message bodies, request parsing.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/rest/rest_int.h"

static int chk(const char *s, unsigned depth)
{
    return wr_rest_json_check(s, strlen(s), depth);
}

Test(rest_json, validator_accepts_json)
{
    const char *ok[] = {"0",
                        "-0",
                        "1.5e10",
                        "-1E-2",
                        "\"\"",
                        "\"a\\u00e9\\n\\\"\"",
                        "true",
                        "false",
                        "null",
                        "[]",
                        "{}",
                        " [1, 2, {\"a\": [null]}] ",
                        "{\"a\": {\"b\": {\"c\": []}}}",
                        "\"caf\xc3\xa9 \xf0\x9f\x92\xa9\""};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        cr_assert_eq(chk(ok[i], 64), WR_REST_JSON_OK, "%s", ok[i]);
}

Test(rest_json, validator_refuses_non_json)
{
    const char *bad[] = {"",
                         " ",
                         "01",
                         "1.",
                         ".5",
                         "+1",
                         "1e",
                         "tru",
                         "nul",
                         "[1,]",
                         "{\"a\"}",
                         "{\"a\":}",
                         "{a: 1}",
                         "[1 2]",
                         "\"abc",
                         "\"\\x\"",
                         "\"\\u12\"",
                         "\"\t\"",
                         "1 2",
                         "{}}",
                         "]",
                         "[}",
                         "NaN",
                         "\"\xff\"",
                         "\"\xc0\xaf\"",
                         "\"\xed\xa0\x80\"",
                         "{\"a\":1,}"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(chk(bad[i], 64), WR_REST_JSON_BAD, "%s", bad[i]);
}

Test(rest_json, validator_depth)
{
    char deep[300];

    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    cr_assert_eq(chk(deep, 100), WR_REST_JSON_OK);
    cr_assert_eq(chk(deep, 99), WR_REST_JSON_DEEP);
    cr_assert_eq(chk("[[1]]", 2), WR_REST_JSON_OK);
    cr_assert_eq(chk("[[1]]", 1), WR_REST_JSON_DEEP);
}

static char *jstr(const char *s, size_t n)
{
    wr_rest_buf_t b = {0};

    wr_rest_buf_jstr(&b, s, n);
    wr_rest_buf_putc(&b, '\0');
    return b.p;
}

Test(rest_json, string_escaping)
{
    char *s;

    s = jstr("a\"b\\c\n\x01", 7);
    cr_assert_str_eq(s, "\"a\\\"b\\\\c\\n\\u0001\"");
    free(s);
    s = jstr("caf\xc3\xa9", 5);
    cr_assert_str_eq(s, "\"caf\xc3\xa9\"", "UTF-8 passes through");
    free(s);
    s = jstr("a\xff", 2);
    cr_assert_str_eq(s, "\"a\\ufffd\"", "not UTF-8");
    free(s);
    s = jstr("a\0b", 3);
    cr_assert_str_eq(s, "\"a\\u0000b\"");
    free(s);
}

static char *body(const char *p, size_t n)
{
    wr_rest_buf_t b = {0};

    wr_rest_buf_body(&b, (const uint8_t *)p, n);
    wr_rest_buf_putc(&b, '\0');
    return b.p;
}

Test(rest_json, message_bodies)
{
    char *s;

    s = body("{\"a\":[1,2]}", 11);
    cr_assert_str_eq(s, "{\"a\":[1,2]}", "JSON is embedded as it is");
    free(s);
    s = body("hello world", 11);
    cr_assert_str_eq(s, "\"hello world\"", "UTF-8 text becomes a string");
    free(s);
    s = body("", 0);
    cr_assert_str_eq(s, "\"\"");
    free(s);
    s = body("\x00\xff\x10", 3);
    cr_assert_str_eq(s, "\"AP8Q\"", "binary becomes base64");
    free(s);
    s = body("\xff", 1);
    cr_assert_str_eq(s, "\"/w==\"");
    free(s);
}

Test(rest_json, parse_request_documents)
{
    const char *why = NULL;
    json_t *v;
    char deep[600];

    v = wr_rest_json_parse("{\"a\": 1}", 8, &why);
    cr_assert(json_is_object(v));
    json_decref(v);
    v = wr_rest_json_parse("[\"\\u0000\"]", 10, &why);
    cr_assert(json_is_array(v), "NUL in strings is allowed");
    json_decref(v);

    cr_assert_null(wr_rest_json_parse("5", 1, &why), "scalars are not documents");
    cr_assert_null(wr_rest_json_parse("{", 1, &why));
    cr_assert_str_eq(why, "Request body could not be parsed.");
    cr_assert_null(wr_rest_json_parse("[9223372036854775808]", 21, &why));
    cr_assert_str_eq(why, "JSON contains integer that is too large.");
    memset(deep, '[', 300);
    memset(deep + 300, ']', 300);
    cr_assert_null(wr_rest_json_parse(deep, 600, &why));
    cr_assert_str_eq(why, "Request body is nested too deeply.");
}

Test(rest_json, buffers)
{
    wr_rest_buf_t b = {0};

    wr_rest_buf_u64(&b, 0);
    wr_rest_buf_putc(&b, ' ');
    wr_rest_buf_u64(&b, UINT64_MAX);
    wr_rest_buf_putc(&b, ' ');
    wr_rest_buf_i64(&b, INT64_MIN);
    wr_rest_buf_fmt(&b, " %s", "x");
    for (int i = 0; i < 1000; i++)
        wr_rest_buf_puts(&b, "abcdefgh");
    wr_rest_buf_putc(&b, '\0');
    cr_assert(strncmp(b.p, "0 18446744073709551615 -9223372036854775808 xabc", 48) == 0);
    cr_assert_eq(strlen(b.p), 45 + 8000);
    wr_rest_buf_free(&b);
    cr_assert_null(b.p);

    wr_rest_buf_urlenc(&b, "a b/c~", 6);
    wr_rest_buf_putc(&b, '\0');
    cr_assert_str_eq(b.p, "a%20b%2Fc~");
    wr_rest_buf_free(&b);
}
