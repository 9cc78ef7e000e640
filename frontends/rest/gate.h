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
 *
 * It also keeps a connection to one request at a time: the next head
 * waits at the gate until evhtp has finished the current request (its
 * answer written, wr_rest_gate_done). So evhtp need not pause the
 * connection while the core answers, and reading stays on: pausing and
 * resuming cost two epoll_ctl calls per request. What waits is bounded
 * (reading stops while too much does); an end of input or a read timeout
 * while a request is answered reaches evhtp only once it is finished.
 * On a plain socket the gate writes an answer out on its kick, in the
 * turn it was made, instead of arming write interest for the next turn
 * (two more epoll_ctl calls and a wake-up per request), and reads the
 * socket itself, without the FIONREAD ioctl before each libevent read.
 */
#ifndef WR_REST_GATE_H
#define WR_REST_GATE_H

#include <evhtp/evhtp.h>
#include <stdbool.h>
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
 * evhtp has a whole request to answer. Returns whether it came whole
 * through the gate: then the next one waits here until wr_rest_gate_done,
 * and so does the end of input. Otherwise (a chunked body, which passes as
 * it comes) evhtp may hold the next one already and must be paused until
 * the answer.
 */
bool wr_rest_gate_hold(wr_rest_gate_t *g, evhtp_request_t *req);

/* evhtp has finished req (answered and written, or dropped): if the gate
 * held to it, the next request may pass. */
void wr_rest_gate_done(wr_rest_gate_t *g, evhtp_request_t *req);

/*
 * Later in this turn of the loop, outside evhtp: run fn(arg) (set with
 * wr_rest_gate_on_kick; NULL: nothing), write out an answer evhtp has
 * queued, pass what may pass and have evhtp read it. Kick after every
 * answer, and for whatever must not run inside evhtp's parser.
 */
void wr_rest_gate_kick(wr_rest_gate_t *g);
void wr_rest_gate_on_kick(wr_rest_gate_t *g, wr_rest_gate_kick_fn fn, void *arg);

/* Since when bytes wait at the gate with no line passing (0: none). */
int64_t wr_rest_gate_held_since_ms(const wr_rest_gate_t *g);

#endif
