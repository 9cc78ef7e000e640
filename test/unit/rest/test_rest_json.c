/*
 * test_rest_json.c - output buffers and JSON helpers (frontends/rest/json.c):
 * string escaping, message bodies, request parsing (all jansson's work).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/rest/rest_int.h"

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
    cr_assert_str_eq(s, "\"a\xef\xbf\xbd\"", "not UTF-8: U+FFFD");
    free(s);
    s = jstr("\xed\xa0\x80x\xc0\xaf", 6);
    cr_assert_str_eq(s, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx\xef\xbf\xbd\xef\xbf\xbd\"",
                     "a surrogate and an overlong form, byte by byte");
    free(s);
    s = jstr("\x1f/", 2);
    cr_assert_str_eq(s, "\"\\u001F/\"");
    free(s);
    s = jstr("a\0b", 3);
    cr_assert_str_eq(s, "\"a\\u0000b\"");
    free(s);
}

/* Renders the bytes as a body read for the first time, and checks that
 * the verdict stays on the body and a second read agrees with it. */
static char *body(const char *p, size_t n)
{
    wr_body_t *m = wr_body_new((wr_slice_t){"props", 5}, (wr_slice_t){p, n});
    wr_rest_buf_t b = {0}, again = {0};

    cr_assert_eq(wr_body_json(m), WR_BODY_JSON_UNKNOWN);
    wr_rest_buf_body(&b, m);
    wr_rest_buf_putc(&b, '\0');
    cr_assert_neq(wr_body_json(m), WR_BODY_JSON_UNKNOWN, "the verdict is kept");
    cr_assert_eq(wr_body_json(m) == WR_BODY_JSON_YES, b.len == n + 1 && memcmp(b.p, p, n) == 0);
    wr_rest_buf_body(&again, m);
    wr_rest_buf_putc(&again, '\0');
    cr_assert_str_eq(again.p, b.p);
    wr_rest_buf_free(&again);
    wr_body_unref(m);
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

Test(rest_json, bodies_are_json_as_jansson_reads_it)
{
    const char *json[] = {
        "0", "-1.5e3", "true", "null", "\"a\\u0000b\"", " [1, {\"a\": {}}] \n", "\"caf\xc3\xa9\""};
    const char *text[] = {"tru",
                          "01",
                          "[1,]",
                          "{\"a\":1} x",
                          "nothing",
                          "\"\\ud800\"",
                          "123456789012345678901234567890",
                          "'single'"};
    char *s, want[128];

    for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
        s = body(json[i], strlen(json[i]));
        cr_assert_str_eq(s, json[i], "kept as it is");
        free(s);
    }
    for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
        json_t *str = json_string(text[i]);
        char *enc = json_dumps(str, JSON_ENCODE_ANY);

        snprintf(want, sizeof(want), "%s", enc);
        s = body(text[i], strlen(text[i]));
        cr_assert_str_eq(s, want, "%s becomes a string", text[i]);
        free(s);
        free(enc);
        json_decref(str);
    }
}

static char *nested(size_t depth, const char *open, const char *inner, const char *close)
{
    size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
    char *p = malloc(depth * (lo + lc) + li + 1), *q = p;

    for (size_t i = 0; i < depth; i++, q += lo)
        memcpy(q, open, lo);
    memcpy(q, inner, li);
    q += li;
    for (size_t i = 0; i < depth; i++, q += lc)
        memcpy(q, close, lc);
    *q = '\0';
    return p;
}

Test(rest_json, parse_request_documents)
{
    const char *why = NULL;
    json_t *v;

    v = wr_rest_json_parse("{\"a\": 1}", 8, &why);
    cr_assert(json_is_object(v));
    json_decref(v);
    v = wr_rest_json_parse("[\"\\u0000\"]", 10, &why);
    cr_assert(json_is_array(v), "NUL in strings is allowed");
    json_decref(v);

    cr_assert_null(wr_rest_json_parse("5", 1, &why), "scalars are not documents");
    cr_assert_null(wr_rest_json_parse("{", 1, &why));
    cr_assert_str_eq(why, "Request body could not be parsed.");
    cr_assert_null(wr_rest_json_parse("[1] x", 5, &why));
    cr_assert_str_eq(why, "Request body could not be parsed.");
    cr_assert_null(wr_rest_json_parse("[\"\\udc00\"]", 10, &why), "a lone surrogate");
    cr_assert_null(wr_rest_json_parse("[\"\xff\"]", 5, &why), "not UTF-8");
    cr_assert_null(wr_rest_json_parse("[9223372036854775808]", 21, &why));
    cr_assert_str_eq(why, "JSON contains integer that is too large.");
}

Test(rest_json, parse_depth_limit)
{
    const char *why = NULL;
    json_t *v;
    char *d;

    /* WR_REST_JSON_DEPTH levels of containers are fine, one more is not,
     * whatever they are and wherever they are. */
    d = nested(WR_REST_JSON_DEPTH, "[", "1", "]");
    v = wr_rest_json_parse(d, strlen(d), &why);
    cr_assert(json_is_array(v));
    json_decref(v);
    free(d);
    d = nested(WR_REST_JSON_DEPTH + 1, "[", "1", "]");
    cr_assert_null(wr_rest_json_parse(d, strlen(d), &why));
    cr_assert_str_eq(why, "Request body is nested too deeply.");
    free(d);
    d = nested(WR_REST_JSON_DEPTH / 2, "{\"a\": [", "{}", "]}");
    cr_assert_null(wr_rest_json_parse(d, strlen(d), &why), "objects and arrays");
    cr_assert_str_eq(why, "Request body is nested too deeply.");
    free(d);
    d = nested(WR_REST_JSON_DEPTH / 2, "{\"a\": [", "1", "]}");
    v = wr_rest_json_parse(d, strlen(d), &why);
    cr_assert_not_null(v, "exactly at the limit");
    json_decref(v);
    free(d);
    /* Far deeper than jansson's own parser goes. */
    d = nested(100000, "[", "", "]");
    cr_assert_null(wr_rest_json_parse(d, strlen(d), &why));
    cr_assert_str_eq(why, "Request body is nested too deeply.");
    free(d);
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
    wr_rest_buf_urlenc(&b, "\0+\xc3\xa9-_.", 7);
    wr_rest_buf_putc(&b, '\0');
    cr_assert_str_eq(b.p, "%00%2B%C3%A9-_.");
    wr_rest_buf_free(&b);
}
