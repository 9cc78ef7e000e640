/*
 * post.c - the fast path of POST .../messages: reads the common document
 * {"messages": [{"body": ..., "ttl": N, "delay": N}, ...]} straight from
 * the (already validated) JSON text, without building a jansson tree and
 * serializing every body again.
 *
 * It takes only what is certainly well formed and means the same to
 * jansson: keys without escapes and not repeated, messages that are
 * objects with a body, ttl and delay that are plain integers, numbers far
 * from overflow, strings without lone-surrogate escapes. Anything else
 * returns 0 and messages.c takes the general (jansson) path, which gives
 * Zaqar's exact error or result. A body is kept as the client's own text.
 *
 * Layout: scanning helpers, then wr_rest_post_parse().
 */
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"
#include "rest_int.h"

static const char *ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* At '"': moves past the closing quote. False (take the general path) on
 * a \u escape of a surrogate, which jansson judges more strictly. */
static bool str(const char **pp, const char *e, bool *esc)
{
    const char *p = *pp + 1;

    *esc = false;
    while (p < e && *p != '"') {
        if (*p == '\\') {
            *esc = true;
            if (p[1] == 'u') {
                int hi = hexv(p[2]) << 4 | hexv(p[3]);
                if (hi >= 0xd8 && hi <= 0xdf)
                    return false;
                p += 6;
                continue;
            }
            p += 2;
            continue;
        }
        p++;
    }
    *pp = p + 1;
    return true;
}

/* At a number: moves past it. False when jansson could find it too large
 * (an integer of more than 18 digits, a long real). */
static bool num(const char **pp, const char *e, bool *is_int)
{
    const char *p = *pp, *s = p;
    size_t digits = 0;

    *is_int = true;
    if (*p == '-')
        p++;
    while (p < e && *p >= '0' && *p <= '9') {
        p++;
        digits++;
    }
    while (p < e && (*p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-' ||
                     (*p >= '0' && *p <= '9'))) {
        *is_int = false;
        p++;
    }
    *pp = p;
    return *is_int ? digits <= 18 : p - s <= 24;
}

/* Skips any value; false to take the general path. */
static bool skip(const char **pp, const char *e)
{
    const char *p = *pp;
    unsigned depth = 0;
    bool esc, isint;

    do {
        p = ws(p, e);
        if (p >= e)
            return false;
        switch (*p) {
        case '"':
            if (!str(&p, e, &esc))
                return false;
            break;
        case '{':
        case '[':
            depth++;
            p++;
            break;
        case '}':
        case ']':
            depth--;
            p++;
            break;
        case ',':
        case ':':
            p++;
            break;
        case 't':
        case 'n':
            p += 4;
            break;
        case 'f':
            p += 5;
            break;
        default:
            if (!num(&p, e, &isint))
                return false;
        }
    } while (depth > 0);
    *pp = p;
    return true;
}

/* A plain integer value (no fraction, exponent or boolean). */
static bool int_val(const char **pp, const char *e, int64_t *v, bool *other)
{
    const char *p = *pp, *s = p;
    bool isint, neg = false;
    int64_t x = 0;

    *other = false;
    if (*p != '-' && (*p < '0' || *p > '9')) {
        /* a string, object... : not an integer; booleans count as ints in
         * Python, leave those to the general path */
        if (*p == 't' || *p == 'f')
            return false;
        *other = true;
        *pp = p;
        return skip(pp, e);
    }
    if (!num(&p, e, &isint) || !isint)
        return false;
    if (*s == '-') {
        neg = true;
        s++;
    }
    for (; s < p; s++)
        x = x * 10 + (*s - '0');
    *v = neg ? -x : x;
    *pp = p;
    return true;
}

static bool key_is(const char *k, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(k, lit, n) == 0;
}

/* One message object, at '{'. */
static bool message(const char **pp, const char *e, wr_rest_post_msg_t *m)
{
    const char *p = *pp + 1;
    bool seen_body = false, esc;

    memset(m, 0, sizeof(*m));
    p = ws(p, e);
    if (*p == '}')
        return false; /* no body: the general path says so */
    for (;;) {
        const char *k = ws(p, e), *v;
        size_t kn;

        p = k;
        if (!str(&p, e, &esc) || esc)
            return false;
        kn = (size_t)(p - k) - 2;
        k++;
        p = ws(p, e) + 1; /* ':' */
        v = ws(p, e);
        p = v;
        if (key_is(k, kn, "body")) {
            if (seen_body || !skip(&p, e))
                return false;
            seen_body = true;
            m->body = v;
            m->body_len = (size_t)(p - v);
        } else if (key_is(k, kn, "ttl")) {
            bool other;
            if (m->has_ttl || !int_val(&p, e, &m->ttl, &other) || other)
                return false;
            m->has_ttl = true;
        } else if (key_is(k, kn, "delay")) {
            bool other;
            if (m->delay != WR_REST_DELAY_NONE || !int_val(&p, e, &m->delay_s, &other))
                return false;
            m->delay = other ? WR_REST_DELAY_BAD : WR_REST_DELAY_INT;
        } else if (!skip(&p, e)) {
            return false;
        }
        p = ws(p, e);
        if (*p == '}') {
            *pp = p + 1;
            return seen_body;
        }
        p++; /* ',' */
    }
}

size_t wr_rest_post_parse(const char *p, size_t n, wr_rest_post_msg_t **out)
{
    const char *e = p + n;
    wr_rest_post_msg_t *m = NULL;
    size_t cnt = 0, cap = 0;
    bool seen = false, esc;

    *out = NULL;
    p = ws(p, e);
    if (p >= e || *p != '{')
        return 0;
    p = ws(p + 1, e);
    if (*p == '}')
        return 0;
    for (;;) {
        const char *k = p;
        size_t kn;

        if (!str(&p, e, &esc) || esc)
            goto general;
        kn = (size_t)(p - k) - 2;
        k++;
        p = ws(ws(p, e) + 1, e); /* past ':' */
        if (!key_is(k, kn, "messages")) {
            if (!skip(&p, e))
                goto general;
        } else {
            if (seen || *p != '[')
                goto general;
            seen = true;
            p = ws(p + 1, e);
            if (*p == ']')
                goto general; /* "No messages to enqueu." */
            for (;;) {
                if (*p != '{')
                    goto general;
                if (cnt == cap) {
                    cap = cap ? cap * 2 : 4;
                    m = realloc(m, cap * sizeof(*m));
                    if (!m)
                        wr_panic(__FILE__, __LINE__, "out of memory");
                }
                if (cnt == WR_BATCH_MAX || !message(&p, e, &m[cnt]))
                    goto general;
                cnt++;
                p = ws(p, e);
                if (*p == ']')
                    break;
                p = ws(p + 1, e); /* ',' */
            }
            p++;
        }
        p = ws(p, e);
        if (*p == '}')
            break;
        p = ws(p + 1, e); /* ',' */
    }
    if (!seen)
        goto general;
    *out = m;
    return cnt;
general:
    free(m);
    return 0;
}
