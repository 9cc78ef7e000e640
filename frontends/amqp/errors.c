/*
 * errors.c - what a core error means in AMQP: a reply code, and whether it
 * closes the channel (soft) or the whole connection (hard), following the
 * choices RabbitMQ makes for the same situations.
 *
 * The switch has no default: a new wr_err_t fails to compile
 * (-Wswitch-enum) until it is mapped here.
 */
#include "amqp_int.h"

wr_amqp_reply_t wr__amqp_reply_of(wr_err_t err)
{
    switch (err) {
    case WR_OK:
        return (wr_amqp_reply_t){AMQP_REPLY_SUCCESS, false};
    case WR_ENOTFOUND: /* queue.declare passive, unknown exchange, ... */
        return (wr_amqp_reply_t){AMQP_NOT_FOUND, false};
    case WR_EEXISTS: /* redeclared with other attributes: "inequivalent arg" */
        return (wr_amqp_reply_t){AMQP_PRECONDITION_FAILED, false};
    case WR_ELOCKED: /* exclusive queue of another connection */
        return (wr_amqp_reply_t){AMQP_RESOURCE_LOCKED, false};
    case WR_EDENIED:
        return (wr_amqp_reply_t){AMQP_ACCESS_REFUSED, false};
    case WR_ETOOBIG: /* message larger than the limit (RabbitMQ: 406) */
        return (wr_amqp_reply_t){AMQP_PRECONDITION_FAILED, false};
    case WR_EINVAL: /* bad x-argument and the like (RabbitMQ: 406) */
        return (wr_amqp_reply_t){AMQP_PRECONDITION_FAILED, false};
    case WR_EQUOTA:
    case WR_ELIMIT: /* a tenant quota (RabbitMQ's vhost limits: 406) */
    case WR_ERATE:  /* the tenant's publish rate */
        return (wr_amqp_reply_t){AMQP_PRECONDITION_FAILED, false};
    case WR_EBUSY: /* delete if-unused / if-empty */
        return (wr_amqp_reply_t){AMQP_PRECONDITION_FAILED, false};
    case WR_EPROTO:
        return (wr_amqp_reply_t){AMQP_SYNTAX_ERROR, true};
    case WR_ENOMEM:
        return (wr_amqp_reply_t){AMQP_RESOURCE_ERROR, true};
    case WR_ESHUTDOWN:
        return (wr_amqp_reply_t){AMQP_CONNECTION_FORCED, true};
    case WR_EIO:
        return (wr_amqp_reply_t){AMQP_INTERNAL_ERROR, true};
    case WR_ENOSPACE: /* a publish is nacked instead; this is for declares */
        return (wr_amqp_reply_t){AMQP_RESOURCE_ERROR, true};
    case WR_EAGAIN: /* never leaves the core: a bug if it does */
        return (wr_amqp_reply_t){AMQP_INTERNAL_ERROR, true};
    case WR_ERR_COUNT:
        break;
    }
    return (wr_amqp_reply_t){AMQP_INTERNAL_ERROR, true};
}

const char *wr__amqp_reply_name(uint16_t code)
{
    switch (code) {
    case AMQP_REPLY_SUCCESS:
        return "OK";
    case AMQP_CONTENT_TOO_LARGE:
        return "CONTENT_TOO_LARGE";
    case AMQP_NO_ROUTE:
        return "NO_ROUTE";
    case AMQP_NO_CONSUMERS:
        return "NO_CONSUMERS";
    case AMQP_CONNECTION_FORCED:
        return "CONNECTION_FORCED";
    case AMQP_INVALID_PATH:
        return "INVALID_PATH";
    case AMQP_ACCESS_REFUSED:
        return "ACCESS_REFUSED";
    case AMQP_NOT_FOUND:
        return "NOT_FOUND";
    case AMQP_RESOURCE_LOCKED:
        return "RESOURCE_LOCKED";
    case AMQP_PRECONDITION_FAILED:
        return "PRECONDITION_FAILED";
    case AMQP_FRAME_ERROR:
        return "FRAME_ERROR";
    case AMQP_SYNTAX_ERROR:
        return "SYNTAX_ERROR";
    case AMQP_COMMAND_INVALID:
        return "COMMAND_INVALID";
    case AMQP_CHANNEL_ERROR:
        return "CHANNEL_ERROR";
    case AMQP_UNEXPECTED_FRAME:
        return "UNEXPECTED_FRAME";
    case AMQP_RESOURCE_ERROR:
        return "RESOURCE_ERROR";
    case AMQP_NOT_ALLOWED:
        return "NOT_ALLOWED";
    case AMQP_NOT_IMPLEMENTED:
        return "NOT_IMPLEMENTED";
    case AMQP_INTERNAL_ERROR:
        return "INTERNAL_ERROR";
    default:
        return "ERROR";
    }
}
