/*
 * validate.c - checks of what arrives in a request line and its headers:
 * queue names, Client-ID, integers and booleans the way falcon reads them,
 * the Accept and Content-Type headers; and the decoding of the path and the
 * query string, which evhtp (splitting) and libevent (percent-decoding) do.
 *
 * No regex anywhere: each rule is a loop over the bytes, so nothing is
 * compiled per request.
 */
#include <event2/http.h>
#include <evhtp/evhtp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../core/log.h"
#include "rest_int.h"

/* ------------------------------------------------------------------------ */
/* Names and ids                                                            */

bool wr_rest_valid_queue_name(const char *s, size_t n)
{
    if (n == 0 || n > WR_REST_QUEUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool wr_rest_client_id_norm(const char *s, size_t n, char out[33])
{
    char tmp[128];
    const char *t = s;
    size_t m = n, lo, hi, k = 0;

    if (n >= sizeof(tmp))
        return false;
    /* hex.replace('urn:', '').replace('uuid:', ''): only with a ':' in it,
     * which the form nearly every client sends (8-4-4-4-12) has not. */
    if (memchr(s, ':', n)) {
        size_t w = 0;

        m = 0;
        for (size_t i = 0; i < n;) {
            if (n - i >= 4 && memcmp(s + i, "urn:", 4) == 0) {
                i += 4;
                continue;
            }
            tmp[m++] = s[i++];
        }
        for (size_t i = 0; i < m;) {
            if (m - i >= 5 && memcmp(tmp + i, "uuid:", 5) == 0) {
                i += 5;
                continue;
            }
            tmp[w++] = tmp[i++];
        }
        m = w;
        t = tmp;
    }
    /* .strip('{}') */
    lo = 0;
    hi = m;
    while (lo < hi && (t[lo] == '{' || t[lo] == '}'))
        lo++;
    while (hi > lo && (t[hi - 1] == '{' || t[hi - 1] == '}'))
        hi--;
    /* .replace('-', '') and exactly 32 hex digits */
    for (size_t i = lo; i < hi; i++) {
        int v;

        if (t[i] == '-')
            continue;
        v = hexval(t[i]);
        if (v < 0 || k == 32)
            return false;
        out[k++] = "0123456789abcdef"[v];
    }
    if (k != 32)
        return false;
    out[32] = '\0';
    return true;
}

uint64_t wr_rest_hash64(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ------------------------------------------------------------------------ */
/* Numbers and booleans                                                     */

bool wr_rest_parse_int(const char *s, size_t n, int64_t *out)
{
    bool neg = false;
    uint64_t v = 0;
    size_t i = 0;

    /* Python's int() ignores surrounding whitespace. */
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return false;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (uint64_t)INT64_MAX / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > (uint64_t)INT64_MAX)
            return false;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

bool wr_rest_parse_bool(const char *s, size_t n, bool *out)
{
    static const char *const yes[] = {"true", "t", "yes", "y", "1", "on"};
    static const char *const no[] = {"false", "f", "no", "n", "0", "off"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strlen(yes[i]) == n && strncasecmp(s, yes[i], n) == 0) {
            *out = true;
            return true;
        }
        if (strlen(no[i]) == n && strncasecmp(s, no[i], n) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Paths and query strings                                                  */

char *wr_rest_uri_decode(const char *s, size_t n, bool plus_is_space, size_t *out_len)
{
    char small[512], *z = n < sizeof(small) ? small : malloc(n + 1), *dec;

    if (!z)
        wr_panic(__FILE__, __LINE__, "out of memory");
    if (memchr(s, '\0', n)) {
        dec = NULL; /* libevent reads a C string */
    } else {
        memcpy(z, s, n);
        z[n] = '\0';
        dec = evhttp_uridecode(z, plus_is_space, out_len);
        if (!dec)
            wr_panic(__FILE__, __LINE__, "out of memory");
    }
    if (z != small)
        free(z);
    return dec;
}

typedef struct args_fill {
    wr_rest_args_t *args;
    bool ok;
} args_fill_t;

static int args_add(evhtp_kv_t *kv, void *arg)
{
    args_fill_t *f = arg;
    wr_rest_arg_t *a = &f->args->a[f->args->n];

    a->key = wr_rest_uri_decode(kv->key, kv->klen, true, &a->klen);
    a->val = wr_rest_uri_decode(kv->val ? kv->val : "", kv->val ? kv->vlen : 0, true, &a->vlen);
    if (!a->key || !a->val) {
        free(a->key);
        free(a->val);
        f->ok = false;
        return -1;
    }
    f->args->n++;
    return 0;
}

static int args_count(evhtp_kv_t *kv, void *arg)
{
    (*(size_t *)arg)++;
    return 0;
}

bool wr_rest_args_parse(const char *q, size_t n, wr_rest_args_t *out)
{
    /* falcon splits on '&' only and keeps "%zz" as it is: no ';' as a
     * separator, no hex checks; blank and missing values are kept here and
     * skipped by the lookups. */
    const int flags = EVHTP_PARSE_QUERY_FLAG_IGNORE_HEX | EVHTP_PARSE_QUERY_FLAG_ALLOW_EMPTY_VALS |
                      EVHTP_PARSE_QUERY_FLAG_ALLOW_NULL_VALS;
    evhtp_query_t *kvs;
    args_fill_t f = {out, true};
    size_t cnt = 0;

    out->n = 0;
    out->a = NULL;
    if (!q || n == 0)
        return true;
    kvs = evhtp_parse_query_wflags(q, n, flags);
    if (!kvs)
        return false;
    evhtp_kvs_for_each(kvs, args_count, &cnt);
    out->a = calloc(cnt ? cnt : 1, sizeof(*out->a));
    if (!out->a)
        wr_panic(__FILE__, __LINE__, "out of memory");
    evhtp_kvs_for_each(kvs, args_add, &f);
    evhtp_kvs_free(kvs);
    if (!f.ok)
        wr_rest_args_free(out);
    return f.ok;
}

void wr_rest_args_free(wr_rest_args_t *args)
{
    for (size_t i = 0; i < args->n; i++) {
        free(args->a[i].key);
        free(args->a[i].val);
    }
    free(args->a);
    args->a = NULL;
    args->n = 0;
}

const char *wr_rest_arg(const wr_rest_req_t *req, const char *key, size_t *len)
{
    const wr_rest_args_t *args = req->args;
    size_t kn = strlen(key);

    for (size_t i = args ? args->n : 0; i-- > 0;) {
        const wr_rest_arg_t *a = &args->a[i];

        if (a->vlen > 0 && a->klen == kn && memcmp(a->key, key, kn) == 0) {
            *len = a->vlen;
            return a->val;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Headers                                                                  */

static const char *trim(const char *s, const char *end, const char **tail)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *tail = end;
    return s;
}

static bool range_is(const char *s, size_t n, const char *what)
{
    return strlen(what) == n && strncasecmp(s, what, n) == 0;
}

bool wr_rest_accepts_json(const char *accept)
{
    const char *p, *end;

    if (!accept || !*accept)
        return true;
    p = accept;
    end = accept + strlen(accept);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *semi = memchr(p, ';', (size_t)(stop - p));
        const char *mt_end, *mt = trim(p, semi ? semi : stop, &mt_end);
        size_t mn = (size_t)(mt_end - mt);
        bool q_zero = false;

        /* Parameters: only q matters; q=0 (0, 0.0, 0.000) refuses. */
        for (const char *a = semi; a && a < stop;) {
            const char *next = memchr(a + 1, ';', (size_t)(stop - a - 1));
            const char *pe, *ps = trim(a + 1, next ? next : stop, &pe);

            if (pe - ps >= 2 && (ps[0] == 'q' || ps[0] == 'Q') && ps[1] == '=') {
                q_zero = true;
                for (const char *d = ps + 2; d < pe; d++)
                    if (*d != '0' && *d != '.')
                        q_zero = false;
            }
            a = next;
        }
        if (!q_zero && (range_is(mt, mn, "application/json") || range_is(mt, mn, "application/*") ||
                        range_is(mt, mn, "*/*") || range_is(mt, mn, "*")))
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

bool wr_rest_is_form_urlencoded(const char *ctype)
{
    const char *e, *s;

    if (!ctype)
        return false;
    s = trim(ctype, ctype + strlen(ctype), &e);
    return range_is(s, (size_t)(e - s), "application/x-www-form-urlencoded");
}
