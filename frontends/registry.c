/*
 * registry.c - the front ends compiled into warrend, in start order.
 * Adding a protocol: one folder under frontends/ and one row here.
 */
#include "frontend.h"
#include "amqp/amqp.h"
#include "rest/rest.h"

const wr_frontend_ops_t *const wr_frontends[] = {
    &wr_rest_ops,
    &wr_amqp_ops,
    NULL,
};
