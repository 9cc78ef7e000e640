/*
 * registry.c - the front ends compiled into warrend, in start order.
 * Adding a protocol: one folder under frontends/ and one row here.
 */
#include "frontend.h"
#include "amqp/amqp.h"
#include "rest/rest.h"

/* Started in this order. REST goes last: its GET /v2/ping is how scripts
 * and tests learn that warrend is ready, so it must not answer before the
 * other listeners are up. */
const wr_frontend_ops_t *const wr_frontends[] = {
    &wr_amqp_ops,
    &wr_rest_ops,
    NULL,
};
