/*
 * tls.c - AMQP over TLS with OpenSSL directly on the socket.
 *
 * amqp.c drives sockets with plain events and two evbuffers (no
 * bufferevent, for the system calls), so a TLS socket is the same socket
 * with SSL_read/SSL_write in place of recv/send: one connection code for
 * both ports. The server's side of the handshake happens inside the first
 * SSL_read calls (SSL_set_accept_state), before any AMQP byte; the
 * handshake timeout of heartbeat.c covers it.
 *
 * Renegotiation is off, so a read never needs to write and a write never
 * needs to read, except for the handshake's own flights, which are small
 * enough for an empty socket buffer.
 */
#include "tls.h"

#include <limits.h>

#include <event2/buffer.h>
#include <openssl/err.h>

#include "../../core/log.h"

static void log_ssl_error(const char *what, const char *file)
{
    unsigned long e = ERR_get_error();

    wr_log(WR_LOG_ERROR, WR_LOGC_AMQP, "amqps: %s %s: %s", what, file,
           e ? ERR_reason_error_string(e) : "failed");
    ERR_clear_error();
}

SSL_CTX *wr__amqp_tls_ctx(const wr_config_t *cfg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx) {
        log_ssl_error("cannot create a TLS context", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        log_ssl_error("cannot load tls-cert", cfg->tls_cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        log_ssl_error("cannot load tls-key", cfg->tls_key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        log_ssl_error("tls-key does not match tls-cert", cfg->tls_key);
        goto fail;
    }
    if (cfg->tls_ca[0]) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1) {
            log_ssl_error("cannot load tls-ca", cfg->tls_ca);
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int wr__amqp_tls_read(SSL *ssl, struct evbuffer *in, size_t cap)
{
    while (evbuffer_get_length(in) < cap) {
        struct evbuffer_iovec v;
        size_t want = cap - evbuffer_get_length(in);
        int n;

        if (want > 16384)
            want = 16384; /* one TLS record */
        if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1)
            return WR_TLS_ERROR;
        if (v.iov_len > want)
            v.iov_len = want;
        ERR_clear_error();
        n = SSL_read(ssl, v.iov_base, (int)v.iov_len);
        if (n <= 0) {
            switch (SSL_get_error(ssl, n)) {
            case SSL_ERROR_WANT_READ:
            case SSL_ERROR_WANT_WRITE:
                return WR_TLS_OK;
            case SSL_ERROR_ZERO_RETURN:
                return WR_TLS_EOF;
            case SSL_ERROR_SYSCALL:
                if (ERR_peek_error() == 0)
                    return WR_TLS_EOF; /* FIN without close_notify */
                return WR_TLS_ERROR;
            default:
                return WR_TLS_ERROR;
            }
        }
        v.iov_len = (size_t)n;
        evbuffer_commit_space(in, &v, 1);
    }
    return WR_TLS_OK;
}

int wr__amqp_tls_write(SSL *ssl, struct evbuffer *out)
{
    while (evbuffer_get_length(out) > 0) {
        struct evbuffer_iovec v;
        int n;

        if (evbuffer_peek(out, -1, NULL, &v, 1) < 1)
            return 0;
        if (v.iov_len > INT_MAX)
            v.iov_len = INT_MAX;
        ERR_clear_error();
        n = SSL_write(ssl, v.iov_base, (int)v.iov_len);
        if (n <= 0) {
            int e = SSL_get_error(ssl, n);
            return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
        }
        evbuffer_drain(out, (size_t)n);
    }
    return 0;
}
