/*
 * fuzz_rest_request.c - raw bytes into the REST front end over a real
 * socket: evhtp's parser, the adapter (hooks, 413/431 takeover, pause and
 * resume), routing, validation, the handlers and a real in-process core.
 *
 * Once: a core with one shard and the REST front end on 127.0.0.1, an
 * ephemeral port, a 1 KiB body limit (so the 413 path is in reach of small
 * inputs) and long-polls capped at 0 ms. Per input: connect, send the bytes
 * as they are (pipelined requests included), half-close, read until the
 * server closes, close with a reset (no TIME_WAIT pile-up at thousands of
 * runs a second).
 *
 * After each input every queue the core holds is deleted (whatever tenant
 * the input named), so a run leaves the core as it found it and libFuzzer's
 * leak and RSS checks see the front end, not a growing store. (The RSS
 * still climbs to ~400 MB in the first ~20k runs: ASan's quarantine of
 * freed memory, 256 MB by default. With ASAN_OPTIONS=quarantine_size_mb=0
 * it stays near 60 MB.)
 *
 * Checks beyond the sanitizers: the server must close within 10 s (a hang
 * traps), and what it answers must start with an HTTP/1.x status line that
 * is not a 500.
 *
 * Seed corpus: test/fuzz/corpus/fuzz_rest_request/ (a request of every
 * route, the admin API, X-Auth-Token and Basic credentials, and broken
 * ones); dictionary: test/fuzz/rest.dict.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/auth.h"
#include "core/config.h"
#include "core/log.h"
#include "core/wr.h"
#include "frontends/rest/rest.h"

#define READ_TIMEOUT_MS 10000

#define FUZZ_ADMIN_TOKEN "00000000000000000000000000000000000000000000000000000000000000ad"

static wr_core_t *core;
static wr_auth_t *auth;
static wr_frontend_t *fe;
static uint16_t port;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    wr_core_cfg_t ccfg = {.shards = 1};
    wr_config_t cfg;

    wr_log_level_g = WR_LOG_ERROR;
    if (wr_core_new(&ccfg, &core) != WR_OK)
        abort();
    wr_config_defaults(&cfg);
    snprintf(cfg.http_addr, sizeof(cfg.http_addr), "127.0.0.1");
    cfg.http_port = 0;
    cfg.max_message_bytes = 1024;
    cfg.trust_project_header = true;
    /* The auth registry, so X-Auth-Token, Basic and the admin API are in
     * reach: the seeds use the admin token FUZZ_ADMIN_TOKEN and guest/guest.
     * The cheapest Argon2id cost keeps a Basic login fast. What inputs add
     * (tenants, users) stays for the run: small, bounded by the inputs. */
    if (wr_auth_new(NULL, &(wr_auth_cost_t){1, 8192}, &auth) != WR_OK ||
        wr_auth_token_register(auth, (wr_slice_t){"admin", 5}, FUZZ_ADMIN_TOKEN) != WR_OK)
        abort();
    wr_core_set_auth(core, auth);
    if (wr_rest_ops.start(core, &cfg, &fe) != WR_OK)
        abort();
    wr_rest_server_of(fe)->limits.max_wait_ms = 0;
    port = wr_rest_port(fe);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Emptying the core between inputs                                         */

/* Runs on shard 0's loop: the metrics snapshot names every queue, and each
 * is deleted with shard 0 as the reply loop. The fuzzing thread waits until
 * the last delete has answered. */
typedef struct sweep {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending;
    bool listed;
} sweep_t;

/* Under sw->mu: wakes the fuzzing thread once everything is done. */
static void sweep_check_locked(sweep_t *sw)
{
    if (sw->listed && sw->pending == 0)
        pthread_cond_signal(&sw->cv);
}

static void on_deleted(void *arg, const wr_count_res_t *res)
{
    sweep_t *sw = arg;

    (void)res; /* WR_ENOTFOUND: gone already (an auto-delete) */
    pthread_mutex_lock(&sw->mu);
    sw->pending--;
    sweep_check_locked(sw);
    pthread_mutex_unlock(&sw->mu);
}

static void on_metrics(void *arg, const wr_metrics_res_t *res)
{
    sweep_t *sw = arg;
    wr_loop_t *reply = wr_core_loop(core, 0);

    pthread_mutex_lock(&sw->mu);
    sw->pending = res->nqueues;
    pthread_mutex_unlock(&sw->mu);
    for (size_t i = 0; i < res->nqueues; i++) {
        const wr_queue_metrics_t *q = &res->queues[i];

        if (wr_queue_delete(core, q->tenant, q->name, 0, reply, on_deleted, sw) != WR_OK)
            abort();
    }
    pthread_mutex_lock(&sw->mu);
    sw->listed = true;
    sweep_check_locked(sw);
    pthread_mutex_unlock(&sw->mu);
}

static void empty_core(void)
{
    wr_rest_server_t *srv = wr_rest_server_of(fe);
    sweep_t sw = {.pending = 0, .listed = false};

    /* The server may have closed on the client while a request still
     * waited for the core (it then finishes unseen): wait for those. */
    for (int ms = 0; atomic_load(&srv->inflight) > 0; ms++) {
        if (ms == READ_TIMEOUT_MS) {
            fprintf(stderr, "requests still in flight after %d ms\n", READ_TIMEOUT_MS);
            __builtin_trap();
        }
        usleep(1000);
    }

    pthread_mutex_init(&sw.mu, NULL);
    pthread_cond_init(&sw.cv, NULL);
    if (wr_core_metrics(core, wr_core_loop(core, 0), on_metrics, &sw) != WR_OK)
        abort();
    pthread_mutex_lock(&sw.mu);
    while (!sw.listed || sw.pending > 0)
        pthread_cond_wait(&sw.cv, &sw.mu);
    pthread_mutex_unlock(&sw.mu);
    pthread_mutex_destroy(&sw.mu);
    pthread_cond_destroy(&sw.cv);
}

/* ------------------------------------------------------------------------ */
/* One input                                                                */

static void check_reply(const char *buf, size_t n)
{
    if (n == 0)
        return; /* closing without a word is allowed (e.g. a timeout) */
    if (n < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ') {
        fprintf(stderr, "reply is not an HTTP/1.x status line: %.*s\n", (int)(n < 64 ? n : 64),
                buf);
        abort();
    }
    if (memcmp(buf + 9, "500", 3) == 0) {
        fprintf(stderr, "500 from the server: %.*s\n", (int)(n < 512 ? n : 512), buf);
        abort();
    }
}

/* connect(), finished when libFuzzer's timeout alarm interrupts it (the
 * connection goes on: wait for it, then read its outcome). */
static int connect_once(int fd, const struct sockaddr_in *sa)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    socklen_t len = sizeof(int);
    int err = 0;

    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
        return 0;
    if (errno != EINTR)
        return -1;
    while (poll(&p, 1, -1) < 0 && errno == EINTR)
        ;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return -1;
    errno = err;
    return err ? -1 : 0;
}

/* A connection to the server. At thousands of inputs a second the local
 * ports can run out for a moment (EADDRNOTAVAIL): a limit of the harness
 * on loopback, not the server's, so it waits for one. Anything else (a
 * refused connection: the server stopped listening) is a finding. */
static int connect_server(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int tries = 0;; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            fprintf(stderr, "socket: %s\n", strerror(errno));
            abort();
        }
        if (connect_once(fd, &sa) == 0)
            return fd;
        if ((errno != EADDRNOTAVAIL && errno != EAGAIN) || tries == 500) {
            fprintf(stderr, "connect to the server: %s\n", strerror(errno));
            abort();
        }
        close(fd);
        usleep(10000);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct linger lg = {1, 0};
    char head[16];
    size_t off = 0, got = 0;
    int fd = connect_server();

    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server closed early (413, 431, garbage): fine */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char buf[65536];
        ssize_t r;

        if (poll(&p, 1, READ_TIMEOUT_MS) == 0) {
            fprintf(stderr, "server did not close within %d ms\n", READ_TIMEOUT_MS);
            __builtin_trap();
        }
        r = recv(fd, buf, sizeof(buf), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (got < sizeof(head))
            memcpy(head + got, buf,
                   (size_t)r < sizeof(head) - got ? (size_t)r : sizeof(head) - got);
        got += (size_t)r;
    }
    check_reply(head, got < sizeof(head) ? got : sizeof(head));
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    empty_core();
    return 0;
}
