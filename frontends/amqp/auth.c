/*
 * auth.c - SASL responses of connection.start-ok, and the credential check.
 *
 * Mechanisms (both offered in connection.start, WR_AMQP_MECHANISMS):
 *   PLAIN     RFC 4616: [authzid] NUL authcid NUL passwd. An authzid is
 *             accepted only if empty or equal to the user (we never act on
 *             behalf of another identity).
 *   AMQPLAIN  RabbitMQ's: the entries of a field table, without the table's
 *             4-byte length, with LOGIN and PASSWORD as strings. py-amqp
 *             (kombu, Celery, oslo.messaging) prefers it over PLAIN.
 *
 * Users: until tenants carry their own users, the only user is guest/guest,
 * accepted from loopback peers only (as RabbitMQ's loopback_users default).
 */
#include <string.h>

#include "amqp_int.h"

static bool bytes_is(amqp_bytes_t b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && (n == 0 || memcmp(b.bytes, s, n) == 0);
}

/* Compares in time independent of where the bytes differ. */
static bool secret_eq(amqp_bytes_t b, const char *s)
{
    size_t n = strlen(s);
    const uint8_t *p = b.bytes;
    unsigned diff = b.len != n;

    for (size_t i = 0; i < b.len; i++)
        diff |= (unsigned)(p[i] ^ (uint8_t)s[i % (n ? n : 1)]);
    return diff == 0;
}

static wr_err_t parse_plain(amqp_bytes_t r, wr_amqp_creds_t *out)
{
    const uint8_t *p = r.bytes;
    const uint8_t *nul1, *nul2;
    amqp_bytes_t authz;

    if (r.len == 0)
        return WR_EPROTO;
    nul1 = memchr(p, 0, r.len);
    if (!nul1)
        return WR_EPROTO;
    nul2 = memchr(nul1 + 1, 0, r.len - (size_t)(nul1 + 1 - p));
    if (!nul2)
        return WR_EPROTO;
    /* The password is the rest; it may not hold another NUL. */
    if (memchr(nul2 + 1, 0, r.len - (size_t)(nul2 + 1 - p)))
        return WR_EPROTO;
    authz.bytes = (void *)p;
    authz.len = (size_t)(nul1 - p);
    out->user.bytes = (void *)(nul1 + 1);
    out->user.len = (size_t)(nul2 - nul1 - 1);
    out->pass.bytes = (void *)(nul2 + 1);
    out->pass.len = r.len - (size_t)(nul2 + 1 - p);
    if (out->user.len == 0)
        return WR_EPROTO;
    if (authz.len != 0 &&
        (authz.len != out->user.len || memcmp(authz.bytes, out->user.bytes, authz.len) != 0))
        return WR_EPROTO;
    return WR_OK;
}

static bool table_string(const amqp_table_t *t, const char *key, amqp_bytes_t *out)
{
    for (int i = 0; i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (!bytes_is(e->key, key))
            continue;
        if (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES)
            return false;
        *out = e->value.value.bytes;
        return true;
    }
    return false;
}

static wr_err_t parse_amqplain(amqp_bytes_t r, amqp_pool_t *pool, wr_amqp_creds_t *out)
{
    amqp_table_t t;
    amqp_bytes_t enc;
    uint8_t *buf;
    size_t off = 0;

    if (r.len > UINT32_MAX - 4)
        return WR_EPROTO;
    /* amqp_decode_table wants the length prefix AMQPLAIN leaves out. The
     * decoded strings point into this buffer, so it lives in the pool. */
    buf = amqp_pool_alloc(pool, r.len + 4);
    if (!buf)
        return WR_ENOMEM;
    buf[0] = (uint8_t)(r.len >> 24);
    buf[1] = (uint8_t)(r.len >> 16);
    buf[2] = (uint8_t)(r.len >> 8);
    buf[3] = (uint8_t)r.len;
    if (r.len)
        memcpy(buf + 4, r.bytes, r.len);
    enc.bytes = buf;
    enc.len = r.len + 4;
    if (!wr__amqp_table_ok(buf, enc.len))
        return WR_EPROTO;
    if (amqp_decode_table(enc, pool, &t, &off) != AMQP_STATUS_OK || off != enc.len)
        return WR_EPROTO;
    if (!table_string(&t, "LOGIN", &out->user) || !table_string(&t, "PASSWORD", &out->pass))
        return WR_EPROTO;
    if (out->user.len == 0)
        return WR_EPROTO;
    return WR_OK;
}

wr_err_t wr__amqp_auth_parse(amqp_bytes_t mechanism, amqp_bytes_t response, amqp_pool_t *pool,
                             wr_amqp_creds_t *out)
{
    if (bytes_is(mechanism, "PLAIN"))
        return parse_plain(response, out);
    if (bytes_is(mechanism, "AMQPLAIN"))
        return parse_amqplain(response, pool, out);
    return WR_EINVAL;
}

wr_err_t wr__amqp_auth_check(const wr_amqp_creds_t *creds, bool loopback, const char **why)
{
    bool user_ok = bytes_is(creds->user, "guest");
    bool pass_ok = secret_eq(creds->pass, "guest");

    if (!user_ok || !pass_ok) {
        *why = "invalid credentials";
        return WR_EDENIED;
    }
    if (!loopback) {
        *why = "user 'guest' can only connect from a loopback address";
        return WR_EDENIED;
    }
    *why = NULL;
    return WR_OK;
}
