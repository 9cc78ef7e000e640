/*
 * validate.c - checks and small parsers for what arrives in a request line
 * and its headers: queue names, Client-ID, query strings, integers and
 * booleans the way falcon reads them, the Accept and Content-Type headers.
 *
 * No regex anywhere: each rule is a loop over the bytes, so nothing is
 * compiled per request and nothing allocates.
 */
#include <string.h>
#include <strings.h>

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
    size_t m = 0, lo, hi, k = 0;

    if (n >= sizeof(tmp))
        return false;
    /* hex.replace('urn:', '').replace('uuid:', '') */
    for (size_t i = 0; i < n;) {
        if (n - i >= 4 && memcmp(s + i, "urn:", 4) == 0) {
            i += 4;
            continue;
        }
        tmp[m++] = s[i++];
    }
    {
        size_t w = 0;
        for (size_t i = 0; i < m;) {
            if (m - i >= 5 && memcmp(tmp + i, "uuid:", 5) == 0) {
                i += 5;
                continue;
            }
            tmp[w++] = tmp[i++];
        }
        m = w;
    }
    /* .strip('{}') */
    lo = 0;
    hi = m;
    while (lo < hi && (tmp[lo] == '{' || tmp[lo] == '}'))
        lo++;
    while (hi > lo && (tmp[hi - 1] == '{' || tmp[hi - 1] == '}'))
        hi--;
    /* .replace('-', '') and exactly 32 hex digits */
    for (size_t i = lo; i < hi; i++) {
        int v;

        if (tmp[i] == '-')
            continue;
        v = hexval(tmp[i]);
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
/* Query strings                                                            */

long wr_rest_pct_decode(const char *s, size_t n, char *out, size_t cap, bool plus_is_space)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (o == cap)
            return -1;
        if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    return (long)o;
}

void wr_rest_qiter_init(wr_rest_qiter_t *it, const char *q, size_t n)
{
    it->p = q;
    it->end = q ? q + n : q;
}

bool wr_rest_qiter_next(wr_rest_qiter_t *it, const char **k, size_t *kn, const char **v, size_t *vn)
{
    while (it->p && it->p < it->end) {
        const char *amp = memchr(it->p, '&', (size_t)(it->end - it->p));
        const char *stop = amp ? amp : it->end;
        const char *eq = memchr(it->p, '=', (size_t)(stop - it->p));

        *k = it->p;
        if (eq) {
            *kn = (size_t)(eq - it->p);
            *v = eq + 1;
            *vn = (size_t)(stop - eq - 1);
        } else {
            *kn = (size_t)(stop - it->p);
            *v = stop;
            *vn = 0;
        }
        it->p = amp ? amp + 1 : it->end;
        if (*kn > 0)
            return true;
    }
    return false;
}

long wr_rest_query_get(const char *q, size_t qn, const char *key, char *out, size_t cap)
{
    size_t keylen = strlen(key);
    wr_rest_qiter_t it;
    const char *k, *v;
    size_t kn, vn;
    long found = -1;

    wr_rest_qiter_init(&it, q, qn);
    while (wr_rest_qiter_next(&it, &k, &kn, &v, &vn)) {
        char kb[64];
        long kl = wr_rest_pct_decode(k, kn, kb, sizeof(kb), true);

        if (kl != (long)keylen || memcmp(kb, key, keylen) != 0 || vn == 0)
            continue;
        found = wr_rest_pct_decode(v, vn, out, cap, true);
        if (found < 0)
            found = -2;
    }
    return found;
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
