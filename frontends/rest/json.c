/*
 * json.c - output buffers and the JSON helpers of the REST front end.
 *
 * Responses are written straight into a growable byte buffer rather than
 * built as jansson trees: a list of messages is mostly message bodies that
 * are already JSON text, so copying them in costs one memcpy each.
 *
 * Everything JSON is jansson's: parsing (request documents, and deciding
 * whether a stored body is JSON text), and the encoding of strings.
 *
 * Layout: buffers, JSON strings, message bodies, parsing request documents.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

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

/* Appends a jansson string value and drops the reference. */
static void put_jstring(wr_rest_buf_t *b, json_t *str)
{
    wr_rest_buf_json(b, str);
    json_decref(str);
}

void wr_rest_buf_jstr(wr_rest_buf_t *b, const char *s, size_t n)
{
    /* jansson refuses a string that is not UTF-8. */
    json_t *str = json_stringn(s, n);
    wr_rest_buf_t fixed = {0};

    if (str) {
        put_jstring(b, str);
        return;
    }
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        k = wr_rest_utf8_seq((const uint8_t *)s + i, n - i);
        if (k)
            wr_rest_buf_put(&fixed, s + i, k);
        else
            wr_rest_buf_put(&fixed, "\xef\xbf\xbd", 3); /* U+FFFD */
    }
    put_jstring(b, json_stringn_nocheck(fixed.p ? fixed.p : "", fixed.len));
    wr_rest_buf_free(&fixed);
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

/* Whether the bytes are one JSON text, as jansson reads it. Only a text
 * starting like one (after blanks) is parsed at all: AMQP bodies are mostly
 * not JSON, and most of those say so in their first byte. */
static bool is_json_text(const uint8_t *p, size_t n)
{
    static const char starts[] = "{[\"-0123456789tfn";
    json_error_t e;
    json_t *v;
    size_t i = 0;

    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    if (i == n || !memchr(starts, p[i], sizeof(starts) - 1))
        return false;
    v = json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    json_decref(v);
    return v != NULL;
}

void wr_rest_buf_body(wr_rest_buf_t *b, wr_body_t *body)
{
    const uint8_t *p = wr_body_bytes(body);
    size_t n = body->body_len;
    wr_body_json_t known = wr_body_json(body);
    json_t *str;

    if (known == WR_BODY_JSON_UNKNOWN) {
        known = is_json_text(p, n) ? WR_BODY_JSON_YES : WR_BODY_JSON_NO;
        wr_body_set_json(body, known == WR_BODY_JSON_YES);
    }
    if (known == WR_BODY_JSON_YES)
        wr_rest_buf_put(b, p, n); /* kept as the bytes it is */
    else if ((str = json_stringn((const char *)p, n)) != NULL)
        put_jstring(b, str); /* UTF-8 text */
    else
        put_base64(b, p, n);
}

void wr_rest_buf_urlenc(wr_rest_buf_t *b, const char *s, size_t n)
{
    /* libevent keeps RFC 3986's unreserved characters, escapes the rest */
    char *enc = evhttp_uriencode(s, (ev_ssize_t)n, 0);

    if (!enc)
        wr_panic(__FILE__, __LINE__, "out of memory");
    wr_rest_buf_puts(b, enc);
    free(enc);
}

static int buf_append(const char *p, size_t n, void *arg)
{
    wr_rest_buf_put(arg, p, n);
    return 0;
}

void wr_rest_buf_json(wr_rest_buf_t *b, const json_t *v)
{
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17);
    size_t len = b->len;

    /* Straight into the buffer, growing it as needed: json_dumpb into too
     * small a buffer would walk the value once to measure it, then again. */
    if (json_dump_callback(v, buf_append, b, flags) != 0)
        b->len = len; /* as json_dumpb: nothing of a value it cannot encode */
}

/* ------------------------------------------------------------------------ */
/* Request documents                                                        */

/* Whether containers nest deeper than `max` levels below v ("[[1]]" has 2).
 * The recursion stops at max + 1 levels. */
static bool nests_deeper(const json_t *v, unsigned max)
{
    const char *key;
    json_t *child;
    size_t i;

    if (!json_is_object(v) && !json_is_array(v))
        return false;
    if (max == 0)
        return true;
    if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            if (nests_deeper(child, max - 1))
                return true;
        }
    } else {
        json_object_foreach((json_t *)v, key, child)
        {
            if (nests_deeper(child, max - 1))
                return true;
        }
    }
    return false;
}

json_t *wr_rest_json_parse(const char *p, size_t n, const char **why)
{
    json_error_t e;
    json_t *v;

    /* Without JSON_DECODE_ANY jansson wants an object or array at the top,
     * which is Zaqar's read_json rule too. jansson's parser bounds its own
     * recursion (JSON_PARSER_MAX_DEPTH); ours is the tighter limit. */
    v = json_loadb(p, n, JSON_ALLOW_NUL, &e);
    if (!v) {
        enum json_error_code code = json_error_code(&e);

        if (code == json_error_stack_overflow)
            *why = "Request body is nested too deeply.";
        else if (code == json_error_numeric_overflow)
            *why = "JSON contains integer that is too large.";
        else
            *why = "Request body could not be parsed.";
        return NULL;
    }
    if (nests_deeper(v, WR_REST_JSON_DEPTH)) {
        json_decref(v);
        *why = "Request body is nested too deeply.";
        return NULL;
    }
    return v;
}
