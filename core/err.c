/* err.c - names and sentences for wr_err_t, generated from WR_ERRORS. */
#include "err.h"

const char *wr_strerror(wr_err_t err)
{
    switch (err) {
    case WR_OK:
        return "success";
#define WR_X(n, s)                                                                                 \
    case WR_E##n:                                                                                  \
        return s;
        WR_ERRORS(WR_X)
#undef WR_X
    case WR_ERR_COUNT:
        break;
    }
    return "unknown error";
}

const char *wr_errname(wr_err_t err)
{
    switch (err) {
    case WR_OK:
        return "OK";
#define WR_X(n, s)                                                                                 \
    case WR_E##n:                                                                                  \
        return #n;
        WR_ERRORS(WR_X)
#undef WR_X
    case WR_ERR_COUNT:
        break;
    }
    return "UNKNOWN";
}
