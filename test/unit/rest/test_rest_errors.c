/*
 * test_rest_errors.c - core errors to HTTP statuses (frontends/rest/errors.c):
 * every wr_err_t has a decided, sensible status.
 */
#include <criterion/criterion.h>

#include "frontends/rest/rest_int.h"

Test(rest_errors, every_code_maps_to_a_status)
{
    for (int e = WR_OK; e < WR_ERR_COUNT; e++) {
        uint16_t s = wr_rest_status_of((wr_err_t)e);

        cr_assert(s >= 200 && s < 600, "%s -> %u", wr_errname((wr_err_t)e), s);
        if (e != WR_OK)
            cr_assert(s >= 400, "%s -> %u", wr_errname((wr_err_t)e), s);
        cr_assert_neq(s, 500, "%s falls through to 500", wr_errname((wr_err_t)e));
    }
}

Test(rest_errors, zaqar_statuses)
{
    cr_assert_eq(wr_rest_status_of(WR_OK), 200);
    cr_assert_eq(wr_rest_status_of(WR_ENOTFOUND), 404);
    cr_assert_eq(wr_rest_status_of(WR_EINVAL), 400);
    cr_assert_eq(wr_rest_status_of(WR_EPROTO), 400);
    cr_assert_eq(wr_rest_status_of(WR_EDENIED), 403);
    cr_assert_eq(wr_rest_status_of(WR_ETOOBIG), 413);
    cr_assert_eq(wr_rest_status_of(WR_EQUOTA), 429);
    cr_assert_eq(wr_rest_status_of(WR_EEXISTS), 409);
    cr_assert_eq(wr_rest_status_of(WR_EBUSY), 409);
    /* Zaqar answers any storage trouble with 503. */
    cr_assert_eq(wr_rest_status_of(WR_EIO), 503);
    cr_assert_eq(wr_rest_status_of(WR_ENOSPACE), 507);
    cr_assert_eq(wr_rest_status_of(WR_ENOMEM), 503);
    cr_assert_eq(wr_rest_status_of(WR_EAGAIN), 503);
    cr_assert_eq(wr_rest_status_of(WR_ESHUTDOWN), 503);
}

Test(rest_errors, titles)
{
    cr_assert_str_eq(wr_rest_title_of(400), "Invalid API request");
    cr_assert_str_eq(wr_rest_title_of(404), "Not found");
    cr_assert_str_eq(wr_rest_title_of(409), "Resource conflict");
    cr_assert_str_eq(wr_rest_title_of(503), "Service temporarily unavailable");
    cr_assert_str_eq(wr_rest_title_of(599), "Internal server error");
}
