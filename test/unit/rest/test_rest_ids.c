/*
 * test_rest_ids.c - message and claim ids on the wire (frontends/rest/ids.c):
 * 24 lowercase hex digits, strict parsing, round trips.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "frontends/rest/rest_int.h"

Test(rest_ids, format_is_24_lowercase_hex_zero_padded)
{
    char out[WR_REST_ID_LEN + 1];

    wr_rest_id_format(1, out);
    cr_assert_str_eq(out, "000000000000000000000001");
    wr_rest_id_format(0xabcdef, out);
    cr_assert_str_eq(out, "000000000000000000abcdef");
    wr_rest_id_format(UINT64_MAX, out);
    cr_assert_str_eq(out, "00000000ffffffffffffffff");
    cr_assert_eq(strlen(out), 24);
}

Test(rest_ids, round_trip)
{
    const uint64_t v[] = {1, 2, 255, 256, 0x123456789abcdefull, UINT64_MAX, 1ull << 63};
    char out[WR_REST_ID_LEN + 1];
    uint64_t back;

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        wr_rest_id_format(v[i], out);
        cr_assert(wr_rest_id_parse(out, strlen(out), &back), "%s", out);
        cr_assert_eq(back, v[i]);
    }
}

Test(rest_ids, parse_is_strict)
{
    const char *bad[] = {
        "",
        "1",
        "00000000000000000000001",   /* 23 */
        "0000000000000000000000001", /* 25 */
        "00000000000000000000000A",  /* upper case */
        "00000000000000000000000g",
        "10000000000000000000000f", /* padding must be zero */
        "000000000000000000000000", /* 0 is never handed out */
        "0000000000000000000000-1",
        "00000000 000000000000001",
        "a",
        "5f1a7c2e9b3d4e5f6a7b8c9d", /* a real ObjectId: not ours */
    };
    uint64_t v = 42;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(wr_rest_id_parse(bad[i], strlen(bad[i]), &v), "accepted %s", bad[i]);
    cr_assert_eq(v, 42, "a failed parse must not write");
}

Test(rest_ids, parse_uses_the_length_not_a_nul)
{
    uint64_t v;

    cr_assert(wr_rest_id_parse("000000000000000000000010trailing", 24, &v));
    cr_assert_eq(v, 16);
}
