/*
 * ids.c - message and claim ids on the wire.
 *
 * The core hands out 64-bit ids. Zaqar clients are used to MongoDB
 * ObjectIds (24 lowercase hex digits), and some check the length, so an id
 * is written as 24 hex digits, zero padded. Parsing is strict: anything that
 * is not exactly this shape is an unknown id (404 on GET, ignored in bulk),
 * never a 400 or a crash.
 */
#include <string.h>

#include "rest_int.h"

/* A byte at a time: a 10-message answer formats 10 ids. */
void wr_rest_id_format(uint64_t id, char out[WR_REST_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out + WR_REST_ID_LEN;

    *p = '\0';
    for (int i = 0; i < 8; i++, id >>= 8) {
        *--p = hex[id & 15];
        *--p = hex[(id >> 4) & 15];
    }
    memset(out, '0', WR_REST_ID_LEN - 16); /* the padding */
}

bool wr_rest_id_parse(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n != WR_REST_ID_LEN)
        return false;
    /* The first 8 digits are the padding: a uint64 has only 16. */
    for (size_t i = 0; i < WR_REST_ID_LEN - 16; i++)
        if (s[i] != '0')
            return false;
    for (size_t i = WR_REST_ID_LEN - 16; i < WR_REST_ID_LEN; i++) {
        char c = s[i];
        unsigned d;

        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return false;
        v = v << 4 | d;
    }
    if (v == 0)
        return false;
    *out = v;
    return true;
}
