/*
 * err.h - the one protocol-neutral error enum of warren.
 *
 * Every function that can fail returns a wr_err_t and writes its results
 * through out-parameters. Each front end maps these codes to its protocol in
 * its own errors.c with a switch that has no default: a new code then fails
 * to compile (-Wswitch-enum) until every protocol has decided what it means.
 */
#ifndef WR_ERR_H
#define WR_ERR_H

#define WR_ERRORS(X)                                                                               \
    X(AGAIN, "incomplete, call again")                                                             \
    X(NOMEM, "out of memory")                                                                      \
    X(NOTFOUND, "no such resource")                                                                \
    X(EXISTS, "exists with other attributes")                                                      \
    X(LOCKED, "owned by another")                                                                  \
    X(DENIED, "access refused")                                                                    \
    X(TOOBIG, "too large")                                                                         \
    X(INVAL, "invalid argument")                                                                   \
    X(QUOTA, "limit reached")                                                                      \
    X(LIMIT, "tenant quota reached")                                                               \
    X(RATE, "publish rate limit reached")                                                          \
    X(PROTO, "malformed input")                                                                    \
    X(IO, "storage error")                                                                         \
    X(NOSPACE, "storage full")                                                                     \
    X(BUSY, "not empty or in use")                                                                 \
    X(SHUTDOWN, "shutting down")

typedef enum {
    WR_OK = 0,
#define WR_X(n, s) WR_E##n,
    WR_ERRORS(WR_X)
#undef WR_X
        WR_ERR_COUNT
} wr_err_t;

/* A static, human-readable sentence for an error code; never NULL. */
const char *wr_strerror(wr_err_t err);

/* The symbolic name ("NOTFOUND") of an error code; never NULL. */
const char *wr_errname(wr_err_t err);

#endif
