/*
 * frontend.h - the plugin interface of a protocol front end.
 *
 * A front end translates its protocol into the reduced API of core/wr.h. It
 * attaches its listeners to the core's shard loops (wr_core_loop), so a
 * connection is served on one shard thread for its whole life.
 * Adding a protocol = one folder under frontends/ + one row in registry.c.
 */
#ifndef WR_FRONTEND_H
#define WR_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/config.h"
#include "../core/wr.h"

#define WR_FRONTEND_ABI 1u

typedef struct wr_frontend wr_frontend_t;

typedef struct wr_frontend_ops {
    uint32_t abi; /* WR_FRONTEND_ABI */
    const char *name;
    /* Binds and starts serving on every shard loop. Returns once listening
     * (or failed: nothing left bound). */
    wr_err_t (*start)(wr_core_t *core, const wr_config_t *cfg, wr_frontend_t **out);
    /* SIGTERM step 1: close the listeners; open connections go on. */
    void (*stop_accepting)(wr_frontend_t *fe);
    /* Requests accepted but not yet answered (SIGTERM step 2 waits for 0). */
    uint64_t (*inflight)(wr_frontend_t *fe);
    /* Closes every connection and frees. Call after wr_core_stop(). NULL-safe. */
    void (*free)(wr_frontend_t *fe);
    /* Optional: how this protocol rewrites a message's properties when the
     * core dead-letters it (AMQP adds x-death). The core takes the first
     * front end's hook that is set; NULL keeps properties as they are. */
    wr_props_rewrite_fn deadletter_props;
} wr_frontend_ops_t;

/* Every front end object embeds this first. */
struct wr_frontend {
    const wr_frontend_ops_t *ops;
};

/* The compiled-in front ends, NULL-terminated. */
extern const wr_frontend_ops_t *const wr_frontends[];

#endif
