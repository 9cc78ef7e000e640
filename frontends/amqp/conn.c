/*
 * conn.c - the AMQP 0-9-1 connection state machine, server side.
 *
 *   HEADER --"AMQP\0\0\x09\x01"--> START --start-ok--> TUNE --tune-ok-->
 *   OPENING --open--> OPEN --(exception)--> CLOSING --close-ok--> CLOSED
 *   any state --connection.close--> close-ok, CLOSED
 *
 * The machine is driven from a byte buffer (wr__amqp_conn_feed) and writes
 * into an output evbuffer: amqp.c plugs a socket on both ends, the fuzzer and
 * the unit tests plug plain buffers. It never frees itself: the host holds a
 * reference and asks wr__amqp_conn_want() what to do with the socket.
 *
 * Errors before the connection is open close the socket without a word, as
 * RabbitMQ does (a client that has not finished the handshake is not
 * trusted), except a refused login to a client that announced
 * authentication_failure_close (403) and a refused vhost (530).
 *
 * Compatibility choices (see README.md): server-properties say product
 * "RabbitMQ", version 3.10.0, so that kombu and Celery pick RabbitMQ's qos
 * semantics (global=True per channel); platform says "warren". capabilities
 * list only what works.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "../../core/auth.h"
#include "../../core/log.h"
#include "amqp_int.h"

#define WR_AMQP_PRODUCT "RabbitMQ"
#define WR_AMQP_VERSION "3.10.0"
#define WR_AMQP_PLATFORM "warren"

static _Atomic uint64_t next_conn_id = 1;

static const char *state_name(wr_amqp_state_t s)
{
    switch (s) {
    case WR_AMQP_S_HEADER:
        return "header";
    case WR_AMQP_S_START:
        return "starting";
    case WR_AMQP_S_TUNE:
        return "tuning";
    case WR_AMQP_S_OPENING:
        return "opening";
    case WR_AMQP_S_OPEN:
        return "running";
    case WR_AMQP_S_CLOSING:
        return "closing";
    case WR_AMQP_S_CLOSED:
        return "closed";
    }
    return "?";
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

wr_amqp_conn_t *wr__amqp_conn_new(wr_amqp_env_t *env, struct evbuffer *out, const char *peer,
                                  bool loopback, int64_t now_ms)
{
    wr_amqp_conn_t *c = calloc(1, sizeof(*c));

    if (!c)
        wr_panic(__FILE__, __LINE__, "out of memory");
    c->id = atomic_fetch_add_explicit(&next_conn_id, 1, memory_order_relaxed);
    c->refs = 1;
    c->state = WR_AMQP_S_HEADER;
    c->env = env;
    c->out = out;
    snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "-");
    c->loopback = loopback;
    c->frame_max = WR_AMQP_FRAME_MAX;
    c->channel_max = WR_AMQP_CHANNEL_MAX;
    c->heartbeat_s = 0;
    c->perm_exchange_len = -1;
    c->now_ms = c->started_ms = c->last_recv_ms = c->last_sent_ms = now_ms;
    init_amqp_pool(&c->frame_pool, 4096);
    c->counted = true;
    atomic_fetch_add_explicit(&env->connections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&env->connections_total, 1, memory_order_relaxed);
    return c;
}

wr_amqp_conn_t *wr__amqp_conn_ref(wr_amqp_conn_t *c)
{
    c->refs++;
    return c;
}

static void uncount(wr_amqp_conn_t *c)
{
    if (c->tn_counted) {
        c->tn_counted = false;
        wr_tenant_conn_close(c->tn);
    }
    if (c->counted) {
        c->counted = false;
        atomic_fetch_sub_explicit(&c->env->connections, 1, memory_order_relaxed);
    }
}

void wr__amqp_conn_unref(wr_amqp_conn_t *c)
{
    if (!c || --c->refs > 0)
        return;
    /* Normally detach freed the channels already. Publishes still gathered
     * are dropped (a batch would reference the connection); releases are
     * sent (they reference only env). */
    c->dying = true;
    wr__amqp_chan_free_all(c);
    wr__amqp_settle_flush(c);
    wr__amqp_pub_conn_free(c);
    wr__amqp_deliver_conn_free(c);
    uncount(c);
    empty_amqp_pool(&c->frame_pool);
    free(c);
}

void wr__amqp_conn_detach(wr_amqp_conn_t *c)
{
    wr_log(WR_LOG_DEBUG, WR_LOGC_AMQP, "conn=%llu peer=%s closed state=%s",
           (unsigned long long)c->id, c->peer, state_name(c->state));
    c->out = NULL;
    c->kick = NULL;
    c->host = NULL;
    c->state = WR_AMQP_S_CLOSED;
    wr__amqp_chan_free_all(c);
    wr__amqp_flush(c);
    /* Its exclusive queues go, its held claims are released. */
    if (c->env->core && c->tenant_len)
        wr_owner_gone(c->env->core, c->id, NULL, NULL, NULL);
    uncount(c);
    wr__amqp_conn_unref(c);
}

void wr__amqp_conn_kick(wr_amqp_conn_t *c)
{
    if (c->kick && c->out && !c->feeding)
        c->kick(c->host);
}

void wr__amqp_flush(wr_amqp_conn_t *c)
{
    wr__amqp_pub_flush(c);
    wr__amqp_settle_flush(c);
}

wr_amqp_want_t wr__amqp_conn_want(const wr_amqp_conn_t *c)
{
    if (c->drop || !c->out)
        return WR_AMQP_WANT_DROP;
    if (c->state == WR_AMQP_S_CLOSED)
        return WR_AMQP_WANT_FLUSH;
    if (evbuffer_get_length(c->out) > WR_AMQP_OUT_HIGH || c->backlog_bytes > WR_AMQP_OUT_HIGH ||
        c->mem_blocked)
        return WR_AMQP_WANT_PAUSE;
    return WR_AMQP_WANT_READ;
}

/* ------------------------------------------------------------------------ */
/* Output and exceptions                                                    */

void wr__amqp_send(wr_amqp_conn_t *c, uint16_t ch, amqp_method_number_t id, void *decoded)
{
    wr_err_t err;

    if (!c->out)
        return;
    err = wr__amqp_write_method(c->out, ch, id, decoded, c->frame_max);
    if (err != WR_OK) {
        wr_log(WR_LOG_ERROR, WR_LOGC_AMQP, "conn=%llu cannot encode %s: %s",
               (unsigned long long)c->id, wr__amqp_method_name(id), wr_strerror(err));
        if (id == AMQP_CONNECTION_CLOSE_METHOD)
            c->state = WR_AMQP_S_CLOSED;
        else
            wr__amqp_conn_error(c, AMQP_INTERNAL_ERROR, id, "cannot encode %s",
                                wr__amqp_method_name(id));
        return;
    }
    c->last_sent_ms = c->now_ms;
}

static void vconn_error(wr_amqp_conn_t *c, uint16_t code, amqp_method_number_t cause,
                        const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void vconn_error(wr_amqp_conn_t *c, uint16_t code, amqp_method_number_t cause,
                        const char *fmt, va_list ap)
{
    char msg[200], text[256];
    amqp_connection_close_t cl;
    bool speak;

    if (c->state >= WR_AMQP_S_CLOSING)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    snprintf(text, sizeof(text), "%s - %s", wr__amqp_reply_name(code), msg);
    if (code != AMQP_ACCESS_REFUSED && code != AMQP_CONNECTION_FORCED)
        atomic_fetch_add_explicit(&c->env->protocol_errors, 1, memory_order_relaxed);
    speak =
        c->state == WR_AMQP_S_OPEN ||
        (code == AMQP_ACCESS_REFUSED && c->state == WR_AMQP_S_START && c->cap_auth_failure_close) ||
        (code == AMQP_NOT_ALLOWED && c->state == WR_AMQP_S_OPENING);
    wr_log(WR_LOG_WARN, WR_LOGC_AMQP, "conn=%llu peer=%s state=%s %s code=%u text=\"%s\"",
           (unsigned long long)c->id, c->peer, state_name(c->state), speak ? "close" : "drop", code,
           text);
    wr__amqp_chan_free_all(c);
    if (!speak) {
        c->state = WR_AMQP_S_CLOSED;
        return;
    }
    cl.reply_code = code;
    cl.reply_text = amqp_cstring_bytes(text);
    cl.class_id = WR_AMQP_CLASS(cause);
    cl.method_id = WR_AMQP_METHOD(cause);
    c->state = WR_AMQP_S_CLOSING;
    c->closing_ms = c->now_ms;
    wr__amqp_send(c, 0, AMQP_CONNECTION_CLOSE_METHOD, &cl);
}

void wr__amqp_conn_error(wr_amqp_conn_t *c, uint16_t code, amqp_method_number_t cause,
                         const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vconn_error(c, code, cause, fmt, ap);
    va_end(ap);
}

void wr__amqp_conn_shutdown(wr_amqp_conn_t *c)
{
    if (c->state == WR_AMQP_S_OPEN)
        wr__amqp_conn_error(c, AMQP_CONNECTION_FORCED, 0,
                            "broker forced connection closure with reason 'shutdown'");
    else if (c->state < WR_AMQP_S_CLOSING)
        c->state = WR_AMQP_S_CLOSED;
}

bool wr__amqp_conn_recheck(wr_amqp_conn_t *c)
{
    wr_slice_t user = {c->user, strlen(c->user)}, tenant = {c->tenant, c->tenant_len};
    unsigned flags;

    if (!c->env->auth || c->state != WR_AMQP_S_OPEN)
        return false;
    if (wr_auth_user_flags(c->env->auth, user, &flags) == WR_ENOTFOUND) {
        wr__amqp_conn_error(c, AMQP_CONNECTION_FORCED, 0, "user '%s' is deleted", c->user);
        return true;
    }
    if (c->tn_registered && !wr_auth_tenant_exists(c->env->auth, tenant)) {
        wr__amqp_conn_error(c, AMQP_CONNECTION_FORCED, 0, "vhost '%s' is deleted",
                            wr__amqp_vhost(c));
        return true;
    }
    return false;
}

static void unexpected(wr_amqp_conn_t *c, const wr_amqp_call_t *call)
{
    wr__amqp_conn_error(c, AMQP_CHANNEL_ERROR, call->id, "unexpected %s in connection state %s",
                        wr__amqp_method_name(call->id), state_name(c->state));
}

/* ------------------------------------------------------------------------ */
/* Handshake                                                                */

static amqp_table_entry_t entry_str(const char *key, const char *val)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(val);
    return e;
}

static amqp_table_entry_t entry_bool(const char *key, bool val)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    e.value.value.boolean = val;
    return e;
}

static void send_start(wr_amqp_conn_t *c)
{
    /* Only what really works. */
    amqp_table_entry_t caps[] = {
        entry_bool("publisher_confirms", true), entry_bool("exchange_exchange_bindings", true),
        entry_bool("basic.nack", true),         entry_bool("consumer_cancel_notify", true),
        entry_bool("per_consumer_qos", true),   entry_bool("authentication_failure_close", true),
        entry_bool("connection.blocked", true), entry_bool("consumer_priorities", true),
        entry_bool("direct_reply_to", true),
    };
    amqp_table_entry_t props[] = {
        entry_str("product", WR_AMQP_PRODUCT),
        entry_str("version", WR_AMQP_VERSION),
        entry_str("platform", WR_AMQP_PLATFORM),
        entry_str("cluster_name", "warren"),
        entry_str("copyright", "the warren authors"),
        entry_str("information", "warren message broker, AMQP 0-9-1 front end"),
        {amqp_cstring_bytes("capabilities"),
         {AMQP_FIELD_KIND_TABLE, {.table = {(int)(sizeof(caps) / sizeof(caps[0])), caps}}}},
    };
    amqp_connection_start_t s;

    s.version_major = 0;
    s.version_minor = 9;
    s.server_properties.num_entries = (int)(sizeof(props) / sizeof(props[0]));
    s.server_properties.entries = props;
    s.mechanisms = amqp_cstring_bytes(WR_AMQP_MECHANISMS);
    s.locales = amqp_cstring_bytes("en_US");
    wr__amqp_send(c, 0, AMQP_CONNECTION_START_METHOD, &s);
}

static bool bytes_is(amqp_bytes_t b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && (n == 0 || memcmp(b.bytes, s, n) == 0);
}

static const amqp_field_value_t *table_get(const amqp_table_t *t, const char *key)
{
    for (int i = 0; i < t->num_entries; i++) {
        if (bytes_is(t->entries[i].key, key))
            return &t->entries[i].value;
    }
    return NULL;
}

/* Copies a byte string into a C buffer for logs, replacing what is not
 * printable (it comes from the network). */
static void printable(char *dst, size_t cap, amqp_bytes_t b)
{
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    const uint8_t *p = b.bytes;

    for (size_t i = 0; i < n; i++)
        dst[i] = (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"') ? (char)p[i] : '?';
    dst[n] = '\0';
}

/* A refused login: 403 to clients that announced authentication_failure_close,
 * a plain close to the others (RabbitMQ). */
static void refuse_login(wr_amqp_conn_t *c, amqp_method_number_t cause, const char *mech,
                         const char *user, const char *why)
{
    atomic_fetch_add_explicit(&c->env->auth_failures, 1, memory_order_relaxed);
    wr_log(WR_LOG_WARN, WR_LOGC_AMQP, "conn=%llu peer=%s login refused user=\"%s\": %s",
           (unsigned long long)c->id, c->peer, user, why);
    wr__amqp_conn_error(c, AMQP_ACCESS_REFUSED, cause,
                        "Login was refused using authentication mechanism %s. "
                        "For details see the broker logfile.",
                        mech);
}

static void send_tune(wr_amqp_conn_t *c)
{
    amqp_connection_tune_t tune;

    tune.channel_max = WR_AMQP_CHANNEL_MAX;
    tune.frame_max = WR_AMQP_FRAME_MAX;
    tune.heartbeat = WR_AMQP_HEARTBEAT_S;
    c->state = WR_AMQP_S_TUNE;
    wr__amqp_send(c, 0, AMQP_CONNECTION_TUNE_METHOD, &tune);
}

/* The verifier's answer (core/auth.c), on the connection's loop. The
 * connection kept reading nothing meanwhile (c->authenticating). */
static void on_login(void *arg, const wr_auth_res_t *res)
{
    wr_amqp_conn_t *c = arg;

    c->authenticating = false;
    if (c->out && c->state == WR_AMQP_S_START) {
        if (res->err == WR_OK) {
            c->uflags = res->flags;
            send_tune(c);
        } else {
            refuse_login(c, AMQP_CONNECTION_START_OK_METHOD,
                         c->cap_amqplain ? "AMQPLAIN" : "PLAIN", c->user,
                         res->err == WR_ESHUTDOWN ? "shutting down"
                                                  : res->why ? res->why : "invalid credentials");
        }
        wr__amqp_conn_kick(c);
    }
    wr__amqp_conn_unref(c);
}

void wr__amqp_on_start_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_connection_start_ok_t *m = call->args;
    const amqp_field_value_t *caps, *afc;
    wr_amqp_creds_t creds;
    const char *why = NULL;
    char mech[32];
    wr_err_t err;

    (void)ch;
    if (c->state != WR_AMQP_S_START) {
        unexpected(c, call);
        return;
    }
    caps = table_get(&m->client_properties, "capabilities");
    if (caps && caps->kind == AMQP_FIELD_KIND_TABLE) {
        afc = table_get(&caps->value.table, "authentication_failure_close");
        c->cap_auth_failure_close =
            afc && afc->kind == AMQP_FIELD_KIND_BOOLEAN && afc->value.boolean;
        afc = table_get(&caps->value.table, "consumer_cancel_notify");
        c->cap_cancel_notify = afc && afc->kind == AMQP_FIELD_KIND_BOOLEAN && afc->value.boolean;
        afc = table_get(&caps->value.table, "connection.blocked");
        c->cap_blocked = afc && afc->kind == AMQP_FIELD_KIND_BOOLEAN && afc->value.boolean;
    }
    printable(mech, sizeof(mech), m->mechanism);
    err = wr__amqp_auth_parse(m->mechanism, m->response, &c->frame_pool, &creds);
    if (err == WR_EINVAL) {
        wr__amqp_conn_error(c, AMQP_COMMAND_INVALID, call->id,
                            "unknown authentication mechanism '%s'", mech);
        return;
    }
    if (err == WR_OK && c->env->auth) {
        /* Users of the registry: the password goes to the verifier thread
         * (tens of ms); nothing more is read until it answers. */
        printable(c->user, sizeof(c->user), creds.user);
        c->cap_amqplain = bytes_is(m->mechanism, "AMQPLAIN");
        if (creds.user.len > WR_AUTH_NAME_MAX || memchr(creds.user.bytes, 0, creds.user.len)) {
            refuse_login(c, call->id, mech, c->user, "invalid credentials");
            return;
        }
        /* A password verified within the cache's lifetime (by either
         * front end) skips the verifier: a reconnecting client costs a
         * keyed hash, not an Argon2id verification. A miss (wrong
         * password too) takes the slow path below. */
        if (wr_auth_basic_cached(c->env->auth, wr__amqp_slice(creds.user),
                                 wr__amqp_slice(creds.pass), &c->uflags) &&
            (c->loopback || !(c->uflags & WR_USER_LOOPBACK))) {
            send_tune(c);
            return;
        }
        c->authenticating = true;
        wr__amqp_conn_ref(c);
        err = wr_auth_login(c->env->auth, wr__amqp_slice(creds.user), wr__amqp_slice(creds.pass),
                            c->loopback, c->loop, on_login, c);
        if (err != WR_OK) {
            c->authenticating = false;
            wr__amqp_conn_unref(c);
            refuse_login(c, call->id, mech, c->user,
                         err == WR_EBUSY ? "too many logins in progress" : wr_strerror(err));
        }
        return;
    }
    if (err == WR_OK)
        err = wr__amqp_auth_check(&creds, c->loopback, &why);
    else
        why = "malformed response";
    if (err != WR_OK) {
        char user[64] = "";
        if (why && strcmp(why, "malformed response") != 0)
            printable(user, sizeof(user), creds.user);
        refuse_login(c, call->id, mech, user, why);
        return;
    }
    printable(c->user, sizeof(c->user), creds.user);
    send_tune(c);
}

void wr__amqp_on_secure_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    /* We never send connection.secure: PLAIN and AMQPLAIN are one step. */
    (void)ch;
    unexpected(c, call);
}

void wr__amqp_on_tune_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_connection_tune_ok_t *t = call->args;
    uint32_t fm = t->frame_max ? t->frame_max : WR_AMQP_FRAME_MAX;

    (void)ch;
    if (c->state != WR_AMQP_S_TUNE) {
        unexpected(c, call);
        return;
    }
    /* py-amqp echoes our proposal, pika and rabbitmq-c negotiate down; more
     * than we proposed, or less than the protocol minimum, is refused. */
    if (fm < WR_AMQP_FRAME_MIN || fm > WR_AMQP_FRAME_MAX) {
        wr__amqp_conn_error(c, AMQP_NOT_ALLOWED, call->id, "frame_max=%u outside [%u, %u]", fm,
                            WR_AMQP_FRAME_MIN, WR_AMQP_FRAME_MAX);
        return;
    }
    c->frame_max = fm;
    c->channel_max = (t->channel_max == 0 || t->channel_max > WR_AMQP_CHANNEL_MAX)
                         ? WR_AMQP_CHANNEL_MAX
                         : t->channel_max;
    /* The client's value is final (0: no heartbeats). */
    c->heartbeat_s = t->heartbeat;
    c->state = WR_AMQP_S_OPENING;
}

/*
 * May the logged-in user open c->tenant? Sets c->who. Admins: any vhost.
 * Others: a registered tenant they are granted. In --auth loopback mode a
 * vhost that is no registered tenant stays open to loopback peers, as
 * every vhost was before the registry (and as X-Project-Id on REST).
 */
static bool vhost_allowed(wr_amqp_conn_t *c)
{
    wr_slice_t user = {c->user, strlen(c->user)}, tenant = {c->tenant, c->tenant_len};
    wr_err_t err;

    if (!c->env->auth) {
        c->who = WR_AMQP_WHO_OPEN;
        return true;
    }
    if (c->uflags & WR_USER_ADMIN) {
        c->who = WR_AMQP_WHO_ADMIN;
        return true;
    }
    err = wr_auth_tenant_access(c->env->auth, user, tenant);
    if (err == WR_ENOTFOUND && !c->env->auth_required && c->loopback &&
        !wr_auth_tenant_exists(c->env->auth, tenant)) {
        c->who = WR_AMQP_WHO_OPEN;
        return true;
    }
    c->who = WR_AMQP_WHO_USER;
    return err == WR_OK;
}

void wr__amqp_on_open(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_connection_open_t *o = call->args;
    amqp_connection_open_ok_t ok = {{0, NULL}};
    char vhost[WR_NAME_MAX + 1];

    (void)ch;
    if (c->state != WR_AMQP_S_OPENING) {
        unexpected(c, call);
        return;
    }
    printable(vhost, sizeof(vhost), o->virtual_host);
    /* vhost "/" is tenant "default"; any other vhost is the tenant of that
     * name. Whether the user may use it is checked once tenants have users. */
    if (o->virtual_host.len == 0 || memchr(o->virtual_host.bytes, 0, o->virtual_host.len)) {
        wr__amqp_conn_error(c, AMQP_NOT_ALLOWED, call->id, "vhost '%s' not found", vhost);
        return;
    }
    if (bytes_is(o->virtual_host, "/")) {
        strcpy(c->tenant, "default");
        c->tenant_len = strlen("default");
    } else {
        memcpy(c->tenant, o->virtual_host.bytes, o->virtual_host.len);
        c->tenant[o->virtual_host.len] = '\0';
        c->tenant_len = o->virtual_host.len;
    }
    if (!vhost_allowed(c)) {
        wr__amqp_conn_error(c, AMQP_NOT_ALLOWED, call->id,
                            "access to vhost '%s' refused for user '%s'", vhost, c->user);
        c->tenant_len = 0; /* owns nothing there: no wr_owner_gone */
        return;
    }
    if (c->env->core) {
        /* max-connections (RabbitMQ's vhost limit, and its text). */
        c->tn = wr_tenant_get(c->env->core, (wr_slice_t){c->tenant, c->tenant_len});
        if (wr_tenant_conn_open(c->tn) != WR_OK) {
            wr__amqp_conn_error(c, AMQP_NOT_ALLOWED, call->id,
                                "connection limit (%llu) of vhost '%s' reached",
                                (unsigned long long)wr_tenant_limit(c->tn, WR_Q_MAX_CONNECTIONS),
                                vhost);
            c->tenant_len = 0;
            return;
        }
        c->tn_counted = true;
    }
    c->tn_registered =
        c->env->auth && wr_auth_tenant_exists(c->env->auth, (wr_slice_t){c->tenant, c->tenant_len});
    c->state = WR_AMQP_S_OPEN;
    wr__amqp_send(c, 0, AMQP_CONNECTION_OPEN_OK_METHOD, &ok);
    wr_log(WR_LOG_INFO, WR_LOGC_AMQP,
           "conn=%llu peer=%s open user=%s vhost=\"%s\" frame_max=%u channel_max=%u heartbeat=%u",
           (unsigned long long)c->id, c->peer, c->user, vhost, c->frame_max, c->channel_max,
           c->heartbeat_s);
}

void wr__amqp_on_close(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    const amqp_connection_close_t *m = call->args;
    amqp_connection_close_ok_t ok = {0};
    char text[128];

    (void)ch;
    printable(text, sizeof(text), m->reply_text);
    wr_log(WR_LOG_DEBUG, WR_LOGC_AMQP, "conn=%llu client close code=%u text=\"%s\"",
           (unsigned long long)c->id, m->reply_code, text);
    wr__amqp_chan_free_all(c);
    wr__amqp_send(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    c->state = WR_AMQP_S_CLOSED;
}

void wr__amqp_on_close_ok(wr_amqp_conn_t *c, wr_amqp_chan_t *ch, const wr_amqp_call_t *call)
{
    /* Only meaningful while CLOSING, which on_frame handles itself. */
    (void)ch;
    unexpected(c, call);
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                   */

static uint32_t method_id_of(const wr_amqp_frame_t *f)
{
    const uint8_t *p = f->payload;

    if (f->type != AMQP_FRAME_METHOD || f->size < 4)
        return 0;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void on_heartbeat(wr_amqp_conn_t *c, const wr_amqp_frame_t *f)
{
    if (f->channel != 0 || f->size != 0)
        wr__amqp_conn_error(c, AMQP_FRAME_ERROR, 0, "heartbeat frame on channel %u of %u bytes",
                            f->channel, f->size);
}

/* Keeps a frame for a busy channel (ops.c) in its backlog, in order. */
static bool to_backlog(wr_amqp_conn_t *c, const wr_amqp_frame_t *f)
{
    wr_amqp_chan_t *ch = wr__amqp_chan_get(c, f->channel);
    uint8_t h[7];

    if (!ch || (!ch->busy && (!ch->backlog || evbuffer_get_length(ch->backlog) == 0)))
        return false;
    if (!ch->backlog) {
        ch->backlog = evbuffer_new();
        if (!ch->backlog)
            wr_panic(__FILE__, __LINE__, "out of memory");
    }
    h[0] = f->type;
    h[1] = (uint8_t)(f->channel >> 8);
    h[2] = (uint8_t)f->channel;
    h[3] = (uint8_t)(f->size >> 24);
    h[4] = (uint8_t)(f->size >> 16);
    h[5] = (uint8_t)(f->size >> 8);
    h[6] = (uint8_t)f->size;
    evbuffer_add(ch->backlog, h, 7);
    evbuffer_add(ch->backlog, f->payload, f->size);
    evbuffer_add(ch->backlog, "\xCE", 1);
    c->backlog_bytes += (size_t)f->size + WR_AMQP_FRAME_OVERHEAD;
    return true;
}

void wr__amqp_conn_frame(wr_amqp_conn_t *c, const wr_amqp_frame_t *f, bool from_backlog)
{
    switch (c->state) {
    case WR_AMQP_S_CLOSING: {
        /* Everything but close-ok (or a crossing close) is dropped. */
        uint32_t id = f->channel == 0 ? method_id_of(f) : 0;
        if (id == AMQP_CONNECTION_CLOSE_OK_METHOD) {
            c->state = WR_AMQP_S_CLOSED;
        } else if (id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_ok_t ok = {0};
            wr__amqp_send(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            c->state = WR_AMQP_S_CLOSED;
        }
        return;
    }
    case WR_AMQP_S_START:
    case WR_AMQP_S_TUNE:
    case WR_AMQP_S_OPENING:
        if (f->type == AMQP_FRAME_HEARTBEAT) {
            on_heartbeat(c, f);
            return;
        }
        if (f->type != AMQP_FRAME_METHOD || f->channel != 0) {
            wr__amqp_conn_error(c, AMQP_UNEXPECTED_FRAME, 0,
                                "frame type %u on channel %u during the handshake", f->type,
                                f->channel);
            return;
        }
        wr__amqp_dispatch(c, f);
        return;
    case WR_AMQP_S_OPEN:
        if (!from_backlog && f->channel != 0 &&
            (f->type == AMQP_FRAME_METHOD || f->type == AMQP_FRAME_HEADER ||
             f->type == AMQP_FRAME_BODY) &&
            to_backlog(c, f))
            return;
        switch (f->type) {
        case AMQP_FRAME_METHOD:
            wr__amqp_dispatch(c, f);
            return;
        case AMQP_FRAME_HEADER:
        case AMQP_FRAME_BODY:
            if (f->channel == 0)
                wr__amqp_conn_error(c, AMQP_UNEXPECTED_FRAME, 0, "content frame on channel 0");
            else
                wr__amqp_chan_content_frame(c, f);
            return;
        case AMQP_FRAME_HEARTBEAT:
            on_heartbeat(c, f);
            return;
        default:
            wr__amqp_conn_error(c, AMQP_FRAME_ERROR, 0, "unknown frame type %u", f->type);
            return;
        }
    case WR_AMQP_S_HEADER:
    case WR_AMQP_S_CLOSED:
        return;
    }
}

/* A frame that cannot be taken: too large, or without its frame-end octet.
 * Say why (if the state allows speaking), then skip the frame's bytes, which
 * its header counts, and read on for close-ok. A second bad frame while
 * closing means the stream is lost: drop everything until the close timeout. */
static void bad_frame(wr_amqp_conn_t *c, struct evbuffer *in, wr_err_t err)
{
    uint8_t hdr[7];
    uint32_t size;

    if (c->state == WR_AMQP_S_CLOSING) {
        c->discard = UINT64_MAX;
        return;
    }
    if (err == WR_ETOOBIG)
        wr__amqp_conn_error(c, AMQP_FRAME_ERROR, 0,
                            "frame too large: the negotiated frame_max is %u bytes", c->frame_max);
    else if (err == WR_EPROTO)
        wr__amqp_conn_error(c, AMQP_FRAME_ERROR, 0, "frame end octet missing");
    else
        wr__amqp_conn_error(c, AMQP_INTERNAL_ERROR, 0, "%s", wr_strerror(err));
    if (c->state != WR_AMQP_S_CLOSING || evbuffer_copyout(in, hdr, 7) != 7) {
        c->state = WR_AMQP_S_CLOSED;
        return;
    }
    size = (uint32_t)hdr[3] << 24 | (uint32_t)hdr[4] << 16 | (uint32_t)hdr[5] << 8 | hdr[6];
    c->discard = (uint64_t)size + WR_AMQP_FRAME_OVERHEAD;
}

void wr__amqp_conn_feed(wr_amqp_conn_t *c, struct evbuffer *in, int64_t now_ms)
{
    size_t have = evbuffer_get_length(in);

    c->now_ms = now_ms;
    if (have > c->in_seen)
        c->last_recv_ms = now_ms;
    c->feeding = true;

    while (c->out && !c->drop) {
        wr_amqp_frame_t f;
        size_t used = 0;
        wr_err_t err;

        if (c->state == WR_AMQP_S_CLOSED)
            c->discard = UINT64_MAX; /* flushing: what comes in is dropped */
        if (c->discard) {
            size_t n = evbuffer_get_length(in);
            if (n > c->discard)
                n = (size_t)c->discard;
            evbuffer_drain(in, n);
            if (c->discard != UINT64_MAX)
                c->discard -= n;
            if (c->discard)
                break;
        }
        if (evbuffer_get_length(c->out) > WR_AMQP_OUT_HIGH)
            break; /* back-pressure: the host stops reading until it drains */
        if (c->authenticating)
            break; /* frames after start-ok wait for the verifier (on_login) */
        if (c->mem_blocked)
            break; /* memory high watermark: a publisher waits (blocked.c) */

        if (c->state == WR_AMQP_S_HEADER) {
            size_t n = evbuffer_get_length(in);
            const uint8_t *p;
            if (n == 0)
                break;
            n = n < WR_AMQP_HEADER_LEN ? n : WR_AMQP_HEADER_LEN;
            p = evbuffer_pullup(in, (ev_ssize_t)n);
            err = p ? wr__amqp_header_check(p, n) : WR_ENOMEM;
            if (err == WR_EAGAIN)
                break;
            if (err != WR_OK) {
                /* Tell the client which protocol we speak, then close. */
                wr_log(WR_LOG_INFO, WR_LOGC_AMQP, "conn=%llu peer=%s bad protocol header",
                       (unsigned long long)c->id, c->peer);
                evbuffer_add(c->out, WR_AMQP_HEADER, WR_AMQP_HEADER_LEN);
                c->state = WR_AMQP_S_CLOSED;
                break;
            }
            evbuffer_drain(in, WR_AMQP_HEADER_LEN);
            c->state = WR_AMQP_S_START;
            send_start(c);
            continue;
        }

        err = wr__amqp_frame_read(in, c->frame_max, &f, &used);
        if (err == WR_EAGAIN)
            break;
        if (err != WR_OK) {
            bad_frame(c, in, err);
            continue;
        }
        wr__amqp_conn_frame(c, &f, false);
        evbuffer_drain(in, used);
        if (c->backlog_bytes > WR_AMQP_OUT_HIGH)
            break; /* busy channels hold enough: read on when they run */
    }
    c->in_seen = evbuffer_get_length(in);
    /* One read, one core call per run of publishes (publish.c). */
    wr__amqp_flush(c);
    c->feeding = false;
}
