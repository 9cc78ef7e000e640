/*
 * test_amqp_auth.c - SASL PLAIN and AMQPLAIN parsing and the credential
 * check of frontends/amqp/auth.c; the reply codes of errors.c.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "frontends/amqp/amqp_int.h"

static amqp_pool_t pool;

static void setup(void)
{
    init_amqp_pool(&pool, 4096);
}

static void teardown(void)
{
    empty_amqp_pool(&pool);
}

static wr_err_t plain(const char *resp, size_t len, wr_amqp_creds_t *c)
{
    amqp_bytes_t r = {len, (void *)resp};
    return wr__amqp_auth_parse(amqp_cstring_bytes("PLAIN"), r, &pool, c);
}

static bool is(amqp_bytes_t b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

TestSuite(plain, .init = setup, .fini = teardown);
TestSuite(amqplain, .init = setup, .fini = teardown);
TestSuite(check, .init = setup, .fini = teardown);

Test(plain, ok)
{
    wr_amqp_creds_t c;

    cr_assert_eq(plain("\0guest\0guest", 12, &c), WR_OK);
    cr_assert(is(c.user, "guest"));
    cr_assert(is(c.pass, "guest"));
}

Test(plain, authzid_equal_to_user)
{
    wr_amqp_creds_t c;

    cr_assert_eq(plain("guest\0guest\0pw", 14, &c), WR_OK);
    cr_assert(is(c.user, "guest"));
    cr_assert(is(c.pass, "pw"));
}

Test(plain, authzid_of_someone_else)
{
    wr_amqp_creds_t c;

    cr_assert_eq(plain("admin\0guest\0guest", 17, &c), WR_EPROTO);
}

Test(plain, empty_password_parses)
{
    wr_amqp_creds_t c;

    cr_assert_eq(plain("\0bob\0", 5, &c), WR_OK);
    cr_assert(is(c.user, "bob"));
    cr_assert_eq(c.pass.len, 0);
}

Test(plain, malformed)
{
    wr_amqp_creds_t c;

    cr_assert_eq(plain("", 0, &c), WR_EPROTO);
    cr_assert_eq(plain("guestguest", 10, &c), WR_EPROTO);      /* no NUL */
    cr_assert_eq(plain("\0guestguest", 11, &c), WR_EPROTO);    /* one NUL */
    cr_assert_eq(plain("\0\0guest", 7, &c), WR_EPROTO);        /* empty user */
    cr_assert_eq(plain("\0guest\0gu\0est", 13, &c), WR_EPROTO); /* NUL in password */
}

/* The AMQPLAIN response as py-amqp sends it: table entries, no length. */
static amqp_bytes_t amqplain_resp(uint8_t *buf, size_t cap, amqp_table_entry_t *e, int n)
{
    amqp_table_t t = {n, e};
    amqp_bytes_t enc = {cap, buf};
    size_t off = 0;
    amqp_bytes_t r;

    cr_assert_eq(amqp_encode_table(enc, &t, &off), 0);
    r.bytes = buf + 4;
    r.len = off - 4;
    return r;
}

static amqp_table_entry_t str_entry(const char *k, const char *v)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(k);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(v);
    return e;
}

Test(amqplain, ok)
{
    uint8_t buf[256];
    amqp_table_entry_t e[] = {str_entry("LOGIN", "guest"), str_entry("PASSWORD", "secret")};
    amqp_bytes_t r = amqplain_resp(buf, sizeof(buf), e, 2);
    wr_amqp_creds_t c;

    cr_assert_eq(wr__amqp_auth_parse(amqp_cstring_bytes("AMQPLAIN"), r, &pool, &c), WR_OK);
    cr_assert(is(c.user, "guest"));
    cr_assert(is(c.pass, "secret"));
}

Test(amqplain, extra_keys_and_order)
{
    uint8_t buf[256];
    amqp_table_entry_t e[] = {str_entry("PASSWORD", "pw"), str_entry("X", "y"),
                              str_entry("LOGIN", "u")};
    amqp_bytes_t r = amqplain_resp(buf, sizeof(buf), e, 3);
    wr_amqp_creds_t c;

    cr_assert_eq(wr__amqp_auth_parse(amqp_cstring_bytes("AMQPLAIN"), r, &pool, &c), WR_OK);
    cr_assert(is(c.user, "u"));
    cr_assert(is(c.pass, "pw"));
}

Test(amqplain, missing_password)
{
    uint8_t buf[256];
    amqp_table_entry_t e[] = {str_entry("LOGIN", "guest")};
    amqp_bytes_t r = amqplain_resp(buf, sizeof(buf), e, 1);
    wr_amqp_creds_t c;

    cr_assert_eq(wr__amqp_auth_parse(amqp_cstring_bytes("AMQPLAIN"), r, &pool, &c), WR_EPROTO);
}

Test(amqplain, login_not_a_string)
{
    uint8_t buf[256];
    amqp_table_entry_t e[] = {str_entry("LOGIN", "guest"), str_entry("PASSWORD", "guest")};
    amqp_bytes_t r;
    wr_amqp_creds_t c;

    e[0].value.kind = AMQP_FIELD_KIND_I32;
    e[0].value.value.i32 = 7;
    r = amqplain_resp(buf, sizeof(buf), e, 2);
    cr_assert_eq(wr__amqp_auth_parse(amqp_cstring_bytes("AMQPLAIN"), r, &pool, &c), WR_EPROTO);
}

Test(amqplain, garbage)
{
    wr_amqp_creds_t c;
    amqp_bytes_t r = {7, (void *)"\x05LOGINS"}; /* truncated string value */
    amqp_bytes_t empty = {0, NULL};

    cr_assert_eq(wr__amqp_auth_parse(amqp_cstring_bytes("AMQPLAIN"), r, &pool, &c), WR_EPROTO);
    cr_assert_eq(wr__amqp_auth_parse(amqp_cstring_bytes("AMQPLAIN"), empty, &pool, &c),
                 WR_EPROTO);
}

Test(amqplain, with_length_prefix_is_not_amqplain)
{
    uint8_t buf[256];
    amqp_table_entry_t e[] = {str_entry("LOGIN", "guest"), str_entry("PASSWORD", "guest")};
    amqp_bytes_t r = amqplain_resp(buf, sizeof(buf), e, 2);
    wr_amqp_creds_t c;

    r.bytes = buf; /* with the 4-byte prefix: not what AMQPLAIN sends */
    r.len += 4;
    cr_assert_eq(wr__amqp_auth_parse(amqp_cstring_bytes("AMQPLAIN"), r, &pool, &c), WR_EPROTO);
}

Test(check, unknown_mechanism)
{
    wr_amqp_creds_t c;
    amqp_bytes_t r = {12, (void *)"\0guest\0guest"};

    cr_assert_eq(wr__amqp_auth_parse(amqp_cstring_bytes("EXTERNAL"), r, &pool, &c), WR_EINVAL);
    cr_assert_eq(wr__amqp_auth_parse(amqp_cstring_bytes("plain"), r, &pool, &c), WR_EINVAL);
    cr_assert_eq(wr__amqp_auth_parse(amqp_cstring_bytes(""), r, &pool, &c), WR_EINVAL);
}

Test(check, guest_from_loopback_only)
{
    wr_amqp_creds_t c = {amqp_cstring_bytes("guest"), amqp_cstring_bytes("guest")};
    const char *why = NULL;

    cr_assert_eq(wr__amqp_auth_check(&c, true, &why), WR_OK);
    cr_assert_eq(wr__amqp_auth_check(&c, false, &why), WR_EDENIED);
    cr_assert_not_null(why);
}

Test(check, wrong_credentials)
{
    const char *why;
    wr_amqp_creds_t bad[] = {
        {amqp_cstring_bytes("guest"), amqp_cstring_bytes("wrong")},
        {amqp_cstring_bytes("guest"), amqp_cstring_bytes("guestx")},
        {amqp_cstring_bytes("guest"), amqp_cstring_bytes("gues")},
        {amqp_cstring_bytes("guest"), amqp_cstring_bytes("")},
        {amqp_cstring_bytes("admin"), amqp_cstring_bytes("guest")},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(wr__amqp_auth_check(&bad[i], true, &why), WR_EDENIED, "case %zu", i);
}

Test(errors, reply_codes_like_rabbitmq)
{
    struct {
        wr_err_t err;
        uint16_t code;
        bool hard;
    } want[] = {
        {WR_OK, 200, false},           {WR_ENOTFOUND, 404, false}, {WR_EEXISTS, 406, false},
        {WR_ELOCKED, 405, false},      {WR_EDENIED, 403, false},   {WR_ETOOBIG, 406, false},
        {WR_EINVAL, 406, false},       {WR_EQUOTA, 406, false},    {WR_EBUSY, 406, false},
        {WR_EPROTO, 502, true},        {WR_ENOMEM, 506, true},     {WR_ESHUTDOWN, 320, true},
        {WR_EIO, 541, true},           {WR_EAGAIN, 541, true}, {WR_ENOSPACE, 506, true},
    };

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        wr_amqp_reply_t r = wr__amqp_reply_of(want[i].err);
        cr_assert_eq(r.code, want[i].code, "%s", wr_errname(want[i].err));
        cr_assert_eq(r.hard, want[i].hard, "%s", wr_errname(want[i].err));
        /* Our notion of hard agrees with the protocol's. */
        cr_assert_eq(r.hard, amqp_constant_is_hard_error(r.code) != 0, "%u", r.code);
    }
    cr_assert_str_eq(wr__amqp_reply_name(504), "CHANNEL_ERROR");
    cr_assert_str_eq(wr__amqp_reply_name(540), "NOT_IMPLEMENTED");
}
