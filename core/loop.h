/*
 * loop.h - an event loop (libevent) with a thread-safe mailbox.
 *
 * Every thread of warren that does work runs one wr_loop_t: shard threads,
 * and the front ends attach their listeners to those same loops. Other
 * threads never touch a loop's state; they post a task to its mailbox and the
 * task runs on the loop's own thread.
 *
 * The mailbox is a mutex-guarded array swapped whole by the consumer, plus an
 * eventfd. A post writes the eventfd only when the mailbox goes from empty to
 * non-empty, so a burst of posts costs one wake-up (coalesced wake-ups).
 */
#ifndef WR_LOOP_H
#define WR_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct event_base;
typedef struct wr_loop wr_loop_t;
typedef void (*wr_task_fn)(void *arg);

/* Creates a loop with its own event_base (not yet running). */
wr_err_t wr_loop_new(unsigned id, wr_loop_t **out /* OUT */);

/* Stops the thread if running (see wr_loop_stop), then frees. NULL-safe. */
void wr_loop_free(wr_loop_t *loop);

/* Runs the loop on a new thread named `name` until wr_loop_stop(). */
wr_err_t wr_loop_start(wr_loop_t *loop, const char *name);

/* Asks the loop to exit after the tasks already posted have run, and joins
 * its thread. Must not be called from the loop's own thread. */
void wr_loop_stop(wr_loop_t *loop);

/* Runs fn(arg) on the loop's thread, later, in posting order. Safe from any
 * thread, including the loop's own (then fn runs on a later turn, never
 * inside this call). Never fails: out of memory aborts. */
void wr_loop_post(wr_loop_t *loop, wr_task_fn fn, void *arg);

/* The libevent base, for timers and sockets owned by this loop's thread. */
struct event_base *wr_loop_base(wr_loop_t *loop);

/* The id given at creation (the shard index for shard loops). */
unsigned wr_loop_id(const wr_loop_t *loop);

/* True when called on this loop's own thread. */
bool wr_loop_is_current(const wr_loop_t *loop);

/* The loop running on the calling thread, or NULL. */
wr_loop_t *wr_loop_current(void);

/* Worst and last observed lateness of the loop's 100 ms tick, in
 * microseconds: how long work on this loop kept it from turning. */
void wr_loop_lag(const wr_loop_t *loop, uint64_t *last_us /* OUT */, uint64_t *max_us /* OUT */);

/* Monotonic clock in milliseconds and wall clock in milliseconds. */
int64_t wr_now_mono_ms(void);
int64_t wr_now_wall_ms(void);

#endif
