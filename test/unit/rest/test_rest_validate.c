/*
 * test_rest_validate.c - request-line and header checks
 * (frontends/rest/validate.c): queue names, Client-ID, falcon's int and bool
 * parameters, query strings, Accept and Content-Type.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/rest/rest_int.h"

static bool qn(const char *s)
{
    return wr_rest_valid_queue_name(s, strlen(s));
}

Test(rest_validate, queue_names)
{
    char name[80];

    cr_assert(qn("a"));
    cr_assert(qn("Nice-Boat_2.x"));
    cr_assert(qn("-"));
    cr_assert(qn("."));
    memset(name, 'v', 64);
    name[64] = '\0';
    cr_assert(qn(name));
    name[64] = 'v';
    name[65] = '\0';
    cr_assert_not(qn(name), "65 characters");
    cr_assert_not(qn(""));
    cr_assert_not(qn("a b"));
    cr_assert_not(qn("a/b"));
    cr_assert_not(qn("Nice-Bo@t"));
    cr_assert_not(qn("caf\xc3\xa9"));
    cr_assert_not(wr_rest_valid_queue_name("a\0b", 3));
    cr_assert_not(qn("a\n"));
}

static bool cid(const char *s, char out[33])
{
    return wr_rest_client_id_norm(s, strlen(s), out);
}

Test(rest_validate, client_id_python_uuid_forms)
{
    char out[33];

    cr_assert(cid("3fa85f64-5717-4562-b3fc-2c963f66afa6", out));
    cr_assert_str_eq(out, "3fa85f6457174562b3fc2c963f66afa6");
    cr_assert(cid("3FA85F64-5717-4562-B3FC-2C963F66AFA6", out));
    cr_assert_str_eq(out, "3fa85f6457174562b3fc2c963f66afa6", "case does not matter");
    cr_assert(cid("3fa85f6457174562b3fc2c963f66afa6", out));
    cr_assert(cid("{3fa85f64-5717-4562-b3fc-2c963f66afa6}", out));
    cr_assert(cid("urn:uuid:3fa85f64-5717-4562-b3fc-2c963f66afa6", out));
    cr_assert(cid("3fa85f645717-4562-b3fc-2c963f66-afa6", out), "36 long, dashes elsewhere");
    cr_assert_str_eq(out, "3fa85f6457174562b3fc2c963f66afa6");
    cr_assert_not(cid("3fa85f64-5717-4562-b3fc--2c963f66afa", out), "36 long, 31 digits");
    cr_assert_not(cid("", out));
    cr_assert_not(cid("not-a-uuid", out));
    cr_assert_not(cid("3fa85f64-5717-4562-b3fc-2c963f66afa", out), "31 digits");
    cr_assert_not(cid("3fa85f64-5717-4562-b3fc-2c963f66afa6a", out), "33 digits");
    cr_assert_not(cid("3fa85f64-5717-4562-b3fc-2c963f66afg6", out));
    cr_assert_not(cid("3fa85f64 5717 4562 b3fc 2c963f66afa6", out));
}

Test(rest_validate, producer_hash_is_stable_and_distinct)
{
    cr_assert_eq(wr_rest_hash64("abc", 3), wr_rest_hash64("abc", 3));
    cr_assert_neq(wr_rest_hash64("abc", 3), wr_rest_hash64("abd", 3));
}

static bool pint(const char *s, int64_t *v)
{
    return wr_rest_parse_int(s, strlen(s), v);
}

Test(rest_validate, ints_like_python_int)
{
    int64_t v;

    cr_assert(pint("10", &v) && v == 10);
    cr_assert(pint("-3", &v) && v == -3);
    cr_assert(pint("+7", &v) && v == 7);
    cr_assert(pint(" 5 ", &v) && v == 5);
    cr_assert(pint("9223372036854775807", &v) && v == INT64_MAX);
    cr_assert_not(pint("9223372036854775808", &v));
    cr_assert_not(pint("100000000000000000000", &v));
    cr_assert_not(pint("", &v));
    cr_assert_not(pint("-", &v));
    cr_assert_not(pint("1e3", &v));
    cr_assert_not(pint("1.5", &v));
    cr_assert_not(pint("0x10", &v));
    cr_assert_not(pint("ten", &v));
}

static bool pbool(const char *s, bool *v)
{
    return wr_rest_parse_bool(s, strlen(s), v);
}

Test(rest_validate, bools_like_falcon)
{
    const char *yes[] = {"true", "True", "TRUE", "t", "yes", "y", "1", "on"};
    const char *no[] = {"false", "False", "f", "no", "n", "0", "off"};
    bool v;

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        cr_assert(pbool(yes[i], &v) && v, "%s", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        cr_assert(pbool(no[i], &v) && !v, "%s", no[i]);
    cr_assert_not(pbool("maybe", &v));
    cr_assert_not(pbool("2", &v));
    cr_assert_not(pbool("", &v));
}

static char *dec(const char *s, bool plus, size_t *n)
{
    return wr_rest_uri_decode(s, strlen(s), plus, n);
}

Test(rest_validate, percent_decoding)
{
    size_t n;
    char *out;

    out = dec("a%20b", false, &n);
    cr_assert(n == 3 && memcmp(out, "a b", 4) == 0);
    free(out);
    out = dec("a+b", true, &n);
    cr_assert(n == 3 && memcmp(out, "a b", 4) == 0);
    free(out);
    out = dec("a+b", false, &n);
    cr_assert(n == 3 && memcmp(out, "a+b", 4) == 0);
    free(out);
    /* Bad escapes stay as they are, like Python's unquote. */
    out = dec("%zz%4", false, &n);
    cr_assert(n == 5 && memcmp(out, "%zz%4", 6) == 0);
    free(out);
    out = dec("%2F%00x", false, &n);
    cr_assert(n == 3 && memcmp(out, "/\0x", 3) == 0, "decoded NUL bytes count");
    free(out);
    cr_assert_null(wr_rest_uri_decode("a\0b", 3, false, &n), "a raw NUL is refused");
    out = wr_rest_uri_decode("abc", 2, false, &n);
    cr_assert(n == 2 && strcmp(out, "ab") == 0, "only n bytes are read");
    free(out);
}

/* A request carrying only the parsed query of q. */
static void with_args(const char *q, wr_rest_args_t *args, wr_rest_req_t *req)
{
    memset(req, 0, sizeof(*req));
    cr_assert(wr_rest_args_parse(q, q ? strlen(q) : 0, args));
    req->args = args;
}

static bool arg_is(const wr_rest_req_t *req, const char *key, const char *want)
{
    size_t n;
    const char *v = wr_rest_arg(req, key, &n);

    if (!want)
        return v == NULL;
    return v && n == strlen(want) && memcmp(v, want, n) == 0;
}

Test(rest_validate, query_lookup)
{
    wr_rest_args_t args;
    wr_rest_req_t req;

    with_args("limit=5&echo=true&marker=&limit=7&x%20y=1&name=a%2Cb&flag&p+q=r+s%2B", &args, &req);
    cr_assert(arg_is(&req, "limit", "7"), "the last one wins");
    cr_assert(arg_is(&req, "echo", "true"));
    cr_assert(arg_is(&req, "marker", NULL), "blank");
    cr_assert(arg_is(&req, "flag", NULL));
    cr_assert(arg_is(&req, "x y", "1"));
    cr_assert(arg_is(&req, "name", "a,b"));
    cr_assert(arg_is(&req, "p q", "r s+"), "'+' is a space in keys and values");
    cr_assert(arg_is(&req, "nope", NULL));
    wr_rest_args_free(&args);

    with_args("limit=5&limit=", &args, &req);
    cr_assert(arg_is(&req, "limit", "5"), "a blank value does not hide an earlier one");
    wr_rest_args_free(&args);

    with_args("a=1;b=2&c=%zz&d=%4", &args, &req);
    cr_assert(arg_is(&req, "a", "1;b=2"), "';' separates nothing (falcon)");
    cr_assert(arg_is(&req, "b", NULL));
    cr_assert(arg_is(&req, "c", "%zz"));
    cr_assert(arg_is(&req, "d", "%4"));
    wr_rest_args_free(&args);

    with_args(NULL, &args, &req);
    cr_assert_eq(args.n, 0);
    cr_assert(arg_is(&req, "limit", NULL));
    wr_rest_args_free(&args);
    req.args = NULL;
    cr_assert(arg_is(&req, "limit", NULL), "no parsed query at all");
}

Test(rest_validate, query_arguments_in_order)
{
    wr_rest_args_t args;
    wr_rest_req_t req;

    with_args("&&=v&a=1&&b&ids=x,y", &args, &req);
    for (size_t i = 0; i < args.n; i++)
        cr_assert_eq(args.a[i].key[args.a[i].klen], '\0');
    cr_assert(args.n >= 3);
    cr_assert_str_eq(args.a[args.n - 1].key, "ids");
    cr_assert_str_eq(args.a[args.n - 1].val, "x,y");
    cr_assert(arg_is(&req, "a", "1"));
    cr_assert(arg_is(&req, "b", NULL));
    wr_rest_args_free(&args);
}

Test(rest_validate, accept_header)
{
    cr_assert(wr_rest_accepts_json(NULL));
    cr_assert(wr_rest_accepts_json(""));
    cr_assert(wr_rest_accepts_json("application/json"));
    cr_assert(wr_rest_accepts_json("Application/JSON; charset=utf-8"));
    cr_assert(wr_rest_accepts_json("*/*"));
    cr_assert(wr_rest_accepts_json("text/html, application/*;q=0.5"));
    cr_assert_not(wr_rest_accepts_json("text/html"));
    cr_assert_not(wr_rest_accepts_json("application/xml"));
    cr_assert_not(wr_rest_accepts_json("application/json;q=0"));
    cr_assert_not(wr_rest_accepts_json("application/json; q=0.0, text/plain"));
}

Test(rest_validate, form_urlencoded)
{
    cr_assert(wr_rest_is_form_urlencoded("application/x-www-form-urlencoded"));
    cr_assert(wr_rest_is_form_urlencoded(" Application/X-WWW-Form-Urlencoded "));
    cr_assert_not(wr_rest_is_form_urlencoded("application/json"));
    cr_assert_not(wr_rest_is_form_urlencoded(NULL));
}
