/*
 * json.c - output buffers and the JSON helpers of the REST front end.
 *
 * Responses are written straight into a growable byte buffer rather than
 * built as jansson trees: a list of messages is mostly message bodies that
 * are already JSON text, so copying them in costs one memcpy each.
 *
 * Layout: buffers, JSON strings, the allocation-free validator, message
 * bodies, parsing request documents with jansson.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"
#include "rest_int.h"

/* ------------------------------------------------------------------------ */
/* Buffers                                                                  */

void wr_rest_buf_reserve(wr_rest_buf_t *b, size_t extra)
{
    size_t need = b->len + extra, cap;
    char *np;

    if (need <= b->cap)
        return;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    np = realloc(b->p, cap);
    if (!np)
        wr_panic(__FILE__, __LINE__, "out of memory");
    b->p = np;
    b->cap = cap;
}

void wr_rest_buf_put(wr_rest_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    wr_rest_buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void wr_rest_buf_puts(wr_rest_buf_t *b, const char *s)
{
    wr_rest_buf_put(b, s, strlen(s));
}

void wr_rest_buf_putc(wr_rest_buf_t *b, char c)
{
    wr_rest_buf_reserve(b, 1);
    b->p[b->len++] = c;
}

void wr_rest_buf_u64(wr_rest_buf_t *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    wr_rest_buf_put(b, tmp + i, sizeof(tmp) - i);
}

void wr_rest_buf_i64(wr_rest_buf_t *b, int64_t v)
{
    if (v < 0) {
        wr_rest_buf_putc(b, '-');
        wr_rest_buf_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        wr_rest_buf_u64(b, (uint64_t)v);
    }
}

void wr_rest_buf_fmt(wr_rest_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    wr_rest_buf_reserve(b, 128);
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        wr_rest_buf_reserve(b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void wr_rest_buf_free(wr_rest_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* JSON strings                                                             */

size_t wr_rest_utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (n >= 2 && (p[1] & 0xc0) == 0x80) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && p[1] < 0xa0)
            return 0; /* overlong */
        if (c == 0xed && p[1] >= 0xa0)
            return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xf4 && p[1] >= 0x90)
            return 0; /* > U+10FFFF */
        return 4;
    }
    return 0;
}

static bool utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0, k;

    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        k = wr_rest_utf8_seq(p + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

void wr_rest_buf_jstr(wr_rest_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, run = 0, k;

    wr_rest_buf_reserve(b, n + 2);
    wr_rest_buf_putc(b, '"');
    while (i < n) {
        uint8_t c = p[i];

        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            run++;
            continue;
        }
        if (c >= 0x80 && (k = wr_rest_utf8_seq(p + i, n - i)) > 0) {
            i += k;
            run += k;
            continue;
        }
        /* Flush the plain run before an escape. */
        wr_rest_buf_put(b, s + i - run, run);
        run = 0;
        i++;
        switch (c) {
        case '"':
            wr_rest_buf_put(b, "\\\"", 2);
            break;
        case '\\':
            wr_rest_buf_put(b, "\\\\", 2);
            break;
        case '\n':
            wr_rest_buf_put(b, "\\n", 2);
            break;
        case '\r':
            wr_rest_buf_put(b, "\\r", 2);
            break;
        case '\t':
            wr_rest_buf_put(b, "\\t", 2);
            break;
        default:
            if (c >= 0x80) {
                wr_rest_buf_put(b, "\\ufffd", 6); /* not UTF-8 */
            } else {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                wr_rest_buf_put(b, e, 6);
            }
        }
    }
    wr_rest_buf_put(b, s + i - run, run);
    wr_rest_buf_putc(b, '"');
}

/* ------------------------------------------------------------------------ */
/* The validator                                                            */

#define CHECK_STACK_MAX 1024 /* deepest nesting the validator can track */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Scans the string starting at s[*i] == '"'; leaves *i after the closing
 * quote. */
static bool scan_string(const char *s, size_t n, size_t *i)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t j = *i + 1, k;

    while (j < n) {
        uint8_t c = p[j];

        if (c == '"') {
            *i = j + 1;
            return true;
        }
        if (c == '\\') {
            if (j + 1 >= n)
                return false;
            c = p[j + 1];
            if (c == 'u') {
                if (j + 5 >= n || !is_hex((char)p[j + 2]) || !is_hex((char)p[j + 3]) ||
                    !is_hex((char)p[j + 4]) || !is_hex((char)p[j + 5]))
                    return false;
                j += 6;
            } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                       c == 'r' || c == 't') {
                j += 2;
            } else {
                return false;
            }
            continue;
        }
        if (c < 0x20)
            return false;
        if (c < 0x80) {
            j++;
            continue;
        }
        k = wr_rest_utf8_seq(p + j, n - j);
        if (k == 0)
            return false;
        j += k;
    }
    return false;
}

static bool scan_number(const char *s, size_t n, size_t *i)
{
    size_t j = *i;

    if (j < n && s[j] == '-')
        j++;
    if (j >= n)
        return false;
    if (s[j] == '0') {
        j++;
    } else if (s[j] >= '1' && s[j] <= '9') {
        while (j < n && is_digit(s[j]))
            j++;
    } else {
        return false;
    }
    if (j < n && s[j] == '.') {
        j++;
        if (j >= n || !is_digit(s[j]))
            return false;
        while (j < n && is_digit(s[j]))
            j++;
    }
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        j++;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j >= n || !is_digit(s[j]))
            return false;
        while (j < n && is_digit(s[j]))
            j++;
    }
    *i = j;
    return true;
}

static bool scan_literal(const char *s, size_t n, size_t *i)
{
    static const char *const lits[] = {"true", "false", "null"};

    for (size_t k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if (n - *i >= l && memcmp(s + *i, lits[k], l) == 0) {
            *i += l;
            return true;
        }
    }
    return false;
}

int wr_rest_json_check(const char *s, size_t n, unsigned max_depth)
{
    /* What may come next. */
    enum { VALUE, VALUE_OR_CLOSE, KEY, KEY_OR_CLOSE, COLON, AFTER } st = VALUE;
    uint8_t objs[CHECK_STACK_MAX / 8] = {0}; /* bit d: level d+1 is an object */
    unsigned depth = 0;
    size_t i = 0;

    if (max_depth > CHECK_STACK_MAX)
        max_depth = CHECK_STACK_MAX;
    for (;;) {
        char c;

        while (i < n && is_ws(s[i]))
            i++;
        if (i == n)
            return (st == AFTER && depth == 0) ? WR_REST_JSON_OK : WR_REST_JSON_BAD;
        c = s[i];
        switch (st) {
        case VALUE_OR_CLOSE:
            if (c == ']') {
                depth--;
                i++;
                st = AFTER;
                break;
            }
            /* fall through */
        case VALUE:
            if (c == '{' || c == '[') {
                if (depth >= max_depth)
                    return WR_REST_JSON_DEEP;
                if (c == '{')
                    objs[depth / 8] |= (uint8_t)(1u << (depth % 8));
                else
                    objs[depth / 8] &= (uint8_t) ~(1u << (depth % 8));
                depth++;
                i++;
                st = c == '{' ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
            } else if (c == '"') {
                if (!scan_string(s, n, &i))
                    return WR_REST_JSON_BAD;
                st = AFTER;
            } else if (c == '-' || is_digit(c)) {
                if (!scan_number(s, n, &i))
                    return WR_REST_JSON_BAD;
                st = AFTER;
            } else {
                if (!scan_literal(s, n, &i))
                    return WR_REST_JSON_BAD;
                st = AFTER;
            }
            break;
        case KEY_OR_CLOSE:
            if (c == '}') {
                depth--;
                i++;
                st = AFTER;
                break;
            }
            /* fall through */
        case KEY:
            if (c != '"' || !scan_string(s, n, &i))
                return WR_REST_JSON_BAD;
            st = COLON;
            break;
        case COLON:
            if (c != ':')
                return WR_REST_JSON_BAD;
            i++;
            st = VALUE;
            break;
        case AFTER: {
            bool in_obj;

            if (depth == 0)
                return WR_REST_JSON_BAD; /* trailing bytes */
            in_obj = objs[(depth - 1) / 8] & (1u << ((depth - 1) % 8));
            if (c == ',') {
                st = in_obj ? KEY : VALUE;
            } else if ((c == '}' && in_obj) || (c == ']' && !in_obj)) {
                depth--;
                st = AFTER;
            } else {
                return WR_REST_JSON_BAD;
            }
            i++;
            break;
        }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Message bodies                                                           */

static void put_base64(wr_rest_buf_t *b, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;

    wr_rest_buf_reserve(b, (n + 2) / 3 * 4 + 2);
    wr_rest_buf_putc(b, '"');
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
        wr_rest_buf_put(b, q, 4);
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=', '='};
        wr_rest_buf_put(b, q, 4);
    }
    wr_rest_buf_putc(b, '"');
}

void wr_rest_buf_body(wr_rest_buf_t *b, const uint8_t *p, size_t n)
{
    if (n > 0 && wr_rest_json_check((const char *)p, n, CHECK_STACK_MAX) == WR_REST_JSON_OK)
        wr_rest_buf_put(b, p, n);
    else if (utf8_valid(p, n))
        wr_rest_buf_jstr(b, (const char *)p, n);
    else
        put_base64(b, p, n);
}

void wr_rest_buf_urlenc(wr_rest_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";

    wr_rest_buf_reserve(b, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            wr_rest_buf_putc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            wr_rest_buf_put(b, e, 3);
        }
    }
}

void wr_rest_buf_json(wr_rest_buf_t *b, const json_t *v)
{
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17);
    size_t n;

    wr_rest_buf_reserve(b, 64);
    n = json_dumpb(v, b->p + b->len, b->cap - b->len, flags);
    if (n > b->cap - b->len) {
        wr_rest_buf_reserve(b, n);
        n = json_dumpb(v, b->p + b->len, b->cap - b->len, flags);
    }
    b->len += n;
}

/* ------------------------------------------------------------------------ */
/* Request documents                                                        */

json_t *wr_rest_json_parse(const char *p, size_t n, const char **why)
{
    json_error_t e;
    json_t *v;

    switch (wr_rest_json_check(p, n, WR_REST_JSON_DEPTH)) {
    case WR_REST_JSON_OK:
        break;
    case WR_REST_JSON_DEEP:
        *why = "Request body is nested too deeply.";
        return NULL;
    default:
        *why = "Request body could not be parsed.";
        return NULL;
    }
    /* Without JSON_DECODE_ANY jansson wants an object or array at the top,
     * which is Zaqar's read_json rule too. */
    v = json_loadb(p, n, JSON_ALLOW_NUL, &e);
    if (!v) {
        *why = json_error_code(&e) == json_error_numeric_overflow
                   ? "JSON contains integer that is too large."
                   : "Request body could not be parsed.";
        return NULL;
    }
    return v;
}
