/*
 * exchange.c - what the exchange types mean: type names, topic patterns and
 * headers matching, and deep copies of header lists.
 *
 * Layout: types; topic (split, match); headers (mode, equality, match);
 * copies. Pure functions with no shard state: topology.c and route.c call
 * them on the shard that routes.
 *
 * Topic keys are split as RabbitMQ splits them: "" is zero words, "a." is
 * the two words "a" and "". A pattern matches with the usual glob
 * algorithm over words ('#' = any run of words, '*' = one word), which
 * needs only one backtrack point because '#' is the only variable-length
 * token.
 */
#include <string.h>

#include "core_int.h"

/* ------------------------------------------------------------------------ */
/* Types                                                                    */

static bool slice_is(wr_slice_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && (n == 0 || memcmp(s.ptr, lit, n) == 0);
}

bool wr__ex_type_parse(wr_slice_t s, wr__ex_type_t *out)
{
    if (slice_is(s, "direct"))
        *out = WR__EX_DIRECT;
    else if (slice_is(s, "fanout"))
        *out = WR__EX_FANOUT;
    else if (slice_is(s, "topic"))
        *out = WR__EX_TOPIC;
    else if (slice_is(s, "headers"))
        *out = WR__EX_HEADERS;
    else
        return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Topic                                                                    */

int wr__split_words(wr_slice_t key, wr_slice_t *words)
{
    const char *p = key.ptr, *end = p + key.len, *start = p;
    int n = 0;

    if (key.len == 0)
        return 0;
    for (;; p++) {
        if (p == end || *p == '.') {
            if (n == WR__WORDS_MAX)
                return -1;
            words[n++] = (wr_slice_t){start, (size_t)(p - start)};
            if (p == end)
                break;
            start = p + 1;
        }
    }
    return n;
}

static bool word_eq(wr_slice_t a, wr_slice_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool is_hash(wr_slice_t w)
{
    return w.len == 1 && *(const char *)w.ptr == '#';
}

static bool is_star(wr_slice_t w)
{
    return w.len == 1 && *(const char *)w.ptr == '*';
}

bool wr__topic_match(const wr_slice_t *pat, size_t np, const wr_slice_t *key, size_t nk)
{
    size_t p = 0, k = 0, star_p = SIZE_MAX, star_k = 0;

    while (k < nk) {
        if (p < np && is_hash(pat[p])) {
            /* Try zero words first; on a mismatch let the '#' eat one more. */
            star_p = p++;
            star_k = k;
        } else if (p < np && (is_star(pat[p]) || word_eq(pat[p], key[k]))) {
            p++;
            k++;
        } else if (star_p != SIZE_MAX) {
            p = star_p + 1;
            k = ++star_k;
        } else {
            return false;
        }
    }
    while (p < np && is_hash(pat[p]))
        p++;
    return p == np;
}

/* ------------------------------------------------------------------------ */
/* Headers                                                                  */

static bool key_is_x(wr_slice_t k)
{
    return k.len >= 2 && memcmp(k.ptr, "x-", 2) == 0;
}

bool wr__headers_mode(const wr_header_t *args, size_t nargs, uint8_t *mode)
{
    *mode = 0;
    for (size_t i = 0; i < nargs; i++) {
        if (!slice_is(args[i].key, "x-match"))
            continue;
        if (args[i].kind != WR_HDR_STR)
            return false;
        if (slice_is(args[i].v.s, "all"))
            *mode = 0;
        else if (slice_is(args[i].v.s, "any"))
            *mode = WR__HM_ANY;
        else if (slice_is(args[i].v.s, "all-with-x"))
            *mode = WR__HM_WITH_X;
        else if (slice_is(args[i].v.s, "any-with-x"))
            *mode = WR__HM_ANY | WR__HM_WITH_X;
        else
            return false;
    }
    return true;
}

static bool value_eq(const wr_header_t *a, const wr_header_t *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case WR_HDR_STR:
    case WR_HDR_OTHER:
        return word_eq(a->v.s, b->v.s);
    case WR_HDR_INT:
        return a->v.i == b->v.i;
    case WR_HDR_FLOAT:
        return a->v.f == b->v.f;
    case WR_HDR_BOOL:
        return a->v.b == b->v.b;
    case WR_HDR_VOID:
        return true;
    }
    return false;
}

bool wr__header_eq(const wr_header_t *a, const wr_header_t *b)
{
    return word_eq(a->key, b->key) && value_eq(a, b);
}

bool wr__headers_match(const wr_header_t *args, size_t nargs, uint8_t mode,
                       const wr_header_t *hdrs, size_t nh)
{
    bool any = (mode & WR__HM_ANY) != 0;

    for (size_t i = 0; i < nargs; i++) {
        const wr_header_t *a = &args[i], *h = NULL;
        bool ok;

        if (slice_is(a->key, "x-match"))
            continue;
        if (key_is_x(a->key) && !(mode & WR__HM_WITH_X))
            continue;
        for (size_t j = 0; j < nh && !h; j++)
            if (word_eq(hdrs[j].key, a->key))
                h = &hdrs[j];
        /* A VOID argument asks only that the key be present. */
        ok = h && (a->kind == WR_HDR_VOID || value_eq(a, h));
        if (any && ok)
            return true;
        if (!any && !ok)
            return false;
    }
    /* all: every argument matched (also when there were none); any: none did. */
    return !any;
}

/* ------------------------------------------------------------------------ */
/* Copies                                                                   */

static bool has_bytes(const wr_header_t *h)
{
    return h->kind == WR_HDR_STR || h->kind == WR_HDR_OTHER;
}

size_t wr__headers_size(const wr_header_t *h, size_t n)
{
    size_t bytes = n * sizeof(*h);

    for (size_t i = 0; i < n; i++)
        bytes += h[i].key.len + (has_bytes(&h[i]) ? h[i].v.s.len : 0);
    return bytes;
}

wr_header_t *wr__headers_copy(void *buf, const wr_header_t *h, size_t n)
{
    wr_header_t *out = buf;
    char *p = (char *)(out + n);

    for (size_t i = 0; i < n; i++) {
        out[i] = h[i];
        if (h[i].key.len)
            memcpy(p, h[i].key.ptr, h[i].key.len);
        out[i].key.ptr = p;
        p += h[i].key.len;
        if (has_bytes(&h[i])) {
            if (h[i].v.s.len)
                memcpy(p, h[i].v.s.ptr, h[i].v.s.len);
            out[i].v.s.ptr = p;
            p += h[i].v.s.len;
        }
    }
    return out;
}
