/*
 * tls.h - AMQP over TLS (--amqps): the server context and the two I/O calls
 * that replace recv() and evbuffer_write() on a TLS socket (amqp.c).
 */
#ifndef WR_AMQP_TLS_H
#define WR_AMQP_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "../../core/config.h"

struct evbuffer;

/* A server context from --tls-cert, --tls-key and (optional) --tls-ca:
 * TLS 1.2 or newer, OpenSSL's default ciphers, no renegotiation, no
 * compression; with a CA file, a client certificate is asked for and
 * verified when sent (not required). NULL after logging why. */
SSL_CTX *wr__amqp_tls_ctx(const wr_config_t *cfg);

enum { WR_TLS_OK, WR_TLS_EOF, WR_TLS_ERROR };

/* Reads decrypted bytes into `in` until it holds `cap` bytes or the socket
 * has no more (the handshake runs inside the first reads).
 * WR_TLS_OK, WR_TLS_EOF (close_notify or FIN) or WR_TLS_ERROR (a bad
 * handshake: plain AMQP on the TLS port, a refused certificate). */
int wr__amqp_tls_read(SSL *ssl, struct evbuffer *in, size_t cap);

/* Writes what `out` holds, draining what TLS took; 0, or -1 on a fatal
 * error. What the socket did not take stays in `out`. */
int wr__amqp_tls_write(SSL *ssl, struct evbuffer *out);

#endif
