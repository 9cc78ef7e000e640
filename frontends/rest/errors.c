/*
 * errors.c - what the REST front end answers when something fails.
 *
 * Every error body is falcon's JSON, {"title": ..., "description": ...},
 * which is what Zaqar clients parse. Core errors map onto HTTP statuses in
 * one switch without a default: a new wr_err_t fails to compile
 * (-Wswitch-enum) until this protocol has decided what it means.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rest_int.h"

uint16_t wr_rest_status_of(wr_err_t err)
{
    switch (err) {
    case WR_OK:
        return 200;
    case WR_ENOTFOUND:
        return 404;
    case WR_EINVAL:
    case WR_EPROTO:
        return 400;
    case WR_EDENIED:
    case WR_ELIMIT: /* a tenant quota (docs/security.md): retrying will not help */
        return 403;
    case WR_EEXISTS:
    case WR_ELOCKED:
    case WR_EBUSY:
        return 409;
    case WR_ETOOBIG:
        return 413;
    case WR_EQUOTA:
        /* A full queue (overflow = reject) or a tenant quota: the client
         * should back off and retry, which is what 429 tells it. */
        return 429;
    case WR_ERATE: /* the tenant's publish rate: 429 with Retry-After */
        return 429;
    case WR_ENOSPACE:
        /* The disk is (nearly) full: WebDAV's status, which says the
         * request may succeed later without any change to it. */
        return 507;
    case WR_EAGAIN:
    case WR_ENOMEM:
    case WR_EIO:
    case WR_ESHUTDOWN:
        /* Zaqar answers 503 to any storage trouble. */
        return 503;
    case WR_ERR_COUNT:
        break;
    }
    return 500;
}

const char *wr_rest_title_of(uint16_t status)
{
    switch (status) {
    case 400:
        return "Invalid API request";
    case 401:
        return "Authentication required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not found";
    case 405:
        return "Method not allowed";
    case 406:
        return "Media type not acceptable";
    case 409:
        return "Resource conflict";
    case 413:
        return "Request body too large";
    case 415:
        return "Unsupported media type";
    case 429:
        return "Limit reached";
    case 431:
        return "Request header fields too large";
    case 501:
        return "Not implemented";
    case 503:
        return "Service temporarily unavailable";
    case 507:
        return "Insufficient storage";
    case 505:
        return "HTTP version not supported";
    default:
        return "Internal server error";
    }
}

void wr_rest_error(wr_rest_call_t *c, uint16_t status, const char *title, const char *desc)
{
    wr_rest_buf_t *b = wr_rest_reply_json(c, status);

    wr_rest_buf_puts(b, "{\"title\": ");
    title = title ? title : wr_rest_title_of(status);
    wr_rest_buf_jstr(b, title, strlen(title));
    if (desc) {
        wr_rest_buf_puts(b, ", \"description\": ");
        wr_rest_buf_jstr(b, desc, strlen(desc));
    }
    wr_rest_buf_putc(b, '}');
}

void wr_rest_fail(wr_rest_call_t *c, uint16_t status, const char *title, const char *desc)
{
    wr_rest_error(c, status, title, desc);
    wr_rest_finish(c);
}

void wr_rest_fail_err(wr_rest_call_t *c, wr_err_t err, const char *what)
{
    uint16_t status = wr_rest_status_of(err);
    char desc[256];

    if (wr_rest_fail_quota(c, err))
        return;
    if (status == 503)
        snprintf(desc, sizeof(desc), "%s (%s). Please try again in a few seconds.", what,
                 wr_strerror(err));
    else
        snprintf(desc, sizeof(desc), "%s: %s.", what, wr_strerror(err));
    wr_rest_fail(c, status, NULL, desc);
}

void wr_rest_fail_body(wr_rest_call_t *c, const char *desc)
{
    wr_rest_fail(c, 400, "Invalid request body", desc);
}

json_t *wr_rest_body_json(wr_rest_call_t *c, const wr_rest_req_t *req)
{
    const char *why = "Request body can not be empty";
    json_t *doc = NULL;

    if (req->body_len > 0)
        doc = wr_rest_json_parse(req->body, req->body_len, &why);
    if (!doc)
        wr_rest_fail_body(c, why);
    return doc;
}

void wr_rest_fail_400(wr_rest_call_t *c, const char *fmt, ...)
{
    char desc[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    wr_rest_fail(c, 400, NULL, desc);
}
