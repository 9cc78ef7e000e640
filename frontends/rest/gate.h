/*
 * gate.h - how much of a connection's input libevhtp's parser may see.
 *
 * libevhtp 1.2.18's parser overruns the data it is given by one byte when
 * that data ends inside a request line or a header line: the fast loops of
 * the method, URI and header states step to the next byte before checking
 * the end, then act on whatever lies past it. A request split by a read
 * boundary then comes out with a truncated or garbled path, or a 400, at
 * random: pipelined requests after 16 KiB (libevent's read size), slow
 * clients, headers over a TCP segment. (Upstream's #128; not fixed in any
 * release.)
 *
 * The gate stands between the socket's input buffer and evhtp's read
 * callback: evhtp's buffer holds only what passed, the rest waits in the
 * gate. While a request head arrives it passes whole lines only, and one
 * head at a time:
 * after a head's blank line it waits until evhtp has parsed that head
 * (wr_rest_gate_headers), then passes exactly Content-Length body bytes,
 * then the next head. So the data evhtp parses never ends inside a line.
 * A chunked body passes as it comes until the request completes.
 *
 * Bytes that no whole line follows within GATE_LINE_MAX pass anyway
 * (evhtp refuses a line over 8 KiB before its end), so holding is bounded.
 */
#ifndef WR_REST_GATE_H
#define WR_REST_GATE_H

#include <evhtp/evhtp.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wr_rest_gate wr_rest_gate_t;
typedef void (*wr_rest_gate_kick_fn)(void *arg);

/* Puts a gate in front of evhtp's read callback of conn. 0 or -1. */
int wr_rest_gate_new(evhtp_connection_t *conn, wr_rest_gate_t **out);

/* Before evhtp frees conn, or takes its bufferevent away (held bytes go). */
void wr_rest_gate_free(wr_rest_gate_t *g);

/* evhtp has parsed req's head: let its body through, then the next head. */
void wr_rest_gate_headers(wr_rest_gate_t *g, evhtp_request_t *req);

/* evhtp has a whole request: a chunked body is over. */
void wr_rest_gate_complete(wr_rest_gate_t *g);

/*
 * On a later turn of the loop: pass what may pass, run fn(arg) (set with
 * wr_rest_gate_on_kick; NULL: nothing), and have evhtp read what passed.
 * For what must not run inside evhtp's parser.
 */
void wr_rest_gate_kick(wr_rest_gate_t *g);
void wr_rest_gate_on_kick(wr_rest_gate_t *g, wr_rest_gate_kick_fn fn, void *arg);

/* Since when bytes wait at the gate with no line passing (0: none). */
int64_t wr_rest_gate_held_since_ms(const wr_rest_gate_t *g);

#endif
