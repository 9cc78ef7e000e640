/*
 * warrend.c - the broker process: config, data directory and its lock, the
 * store, the core, the front ends, and the signal-driven shutdown.
 *
 * This is the top layer, so it may see every other one. Its whole job is
 * the process contract of DESIGN.md:
 *   start:   parse flags (core/config.c), create DATA and lock DATA/LOCK,
 *            open the store, start the core's shard threads, start every
 *            compiled-in front end (frontends/registry.c), log "warrend ready".
 *   SIGTERM: (or SIGINT) every front end stops accepting; wait until none has
 *            a request in flight (at most DRAIN_MS; a second signal cuts the
 *            wait short); stop the core; free front ends, core and store;
 *            exit 0.
 * Exit status: 0 clean stop, 1 could not start (port in use, data directory
 * locked, ...), 2 bad flags or config file.
 *
 * Signals are blocked before any thread starts, so every thread inherits the
 * mask and only main's sigtimedwait() ever sees SIGTERM/SIGINT.
 *
 * Layout: helpers (data dir, lock, port probe), startup, shutdown, main.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../backends/backend.h"
#include "../core/auth.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/mem.h"
#include "../core/wr.h"
#include "frontend.h"

#define DRAIN_MS 10000 /* longest wait for in-flight requests on SIGTERM */
#define MAX_FRONTENDS 16

#ifdef WR_WITH_JEMALLOC
/* jemalloc reads this before the first allocation (MALLOC_CONF in the
 * environment still overrides it). Without its background thread, pages
 * freed by an arena's threads are given back only when those threads
 * allocate again: a broker idle after a burst (a drained queue, a deleted
 * one) kept its peak RSS for good. With it, freed pages go back to the
 * kernel after the dirty decay time (10 s). */
extern const char *malloc_conf;
const char *malloc_conf = "background_thread:true";
#endif

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* mkdir -p: creates `path` and its missing parents (mode 0750). */
static int mkdir_p(const char *path)
{
    char buf[1024];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/*
 * Takes an exclusive flock on DIR/LOCK and writes our pid into it. Returns
 * the descriptor (kept open for the life of the process: the kernel drops
 * the lock when we exit, even on SIGKILL), or -1 after printing why.
 */
static int lock_data_dir(const char *dir)
{
    char path[1100], pid[32];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/LOCK", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "warrend: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            n = pread(fd, pid, sizeof(pid) - 1, 0);
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            fprintf(stderr,
                    "warrend: data directory %s is in use by another warrend%s%s%s; stop it "
                    "or give another --data\n",
                    dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        } else {
            fprintf(stderr, "warrend: cannot lock %s: %s\n", path, strerror(errno));
        }
        close(fd);
        return -1;
    }
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        wr_log(WR_LOG_WARN, WR_LOGC_CORE, "data=%s: cannot write pid to LOCK: %s", dir,
               strerror(errno));
    return fd;
}

/* "ADDR:PORT", with brackets around an IPv6 address. */
static void fmt_addr(char *out, size_t len, const char *addr, uint16_t port)
{
    if (strchr(addr, ':'))
        snprintf(out, len, "[%s]:%u", addr, (unsigned)port);
    else
        snprintf(out, len, "%s:%u", addr, (unsigned)port);
}

/*
 * Checks that addr:port can be bound by trying it (SO_REUSEADDR, so a
 * socket in TIME_WAIT does not count). A listener elsewhere, even one with
 * SO_REUSEPORT, makes bind fail: this keeps a second warrend from silently
 * sharing the port of a first. Returns 0 or errno.
 */
static int probe_port(const char *addr, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    int fd, one = 1, rc = 0;

    memset(&ss, 0, sizeof(ss));
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
            return EINVAL;
        slen = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
            return EINVAL;
        slen = sizeof(*s4);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, slen) != 0)
        rc = errno;
    close(fd);
    return rc;
}

/*
 * DATA/admin.token: the admin user's token, so `warrenctl` (and scripts) on
 * this machine can use the admin API. The first start creates it
 * (O_CREAT|O_EXCL, mode 0600: only warrend's user reads it) with a new
 * random token; later starts read it back and register it again. With a
 * durable store that is a no-op (its hash is stored); with the memory store
 * nothing survived, so the same token works again and scripts keep reading
 * one file. To retire the token, delete the file and restart (a new one is
 * written); `warrenctl token del` alone lasts until the next start.
 * Returns 0, or -1 after printing why.
 */
static int admin_token(wr_auth_t *a, const char *dir)
{
    char path[1100], tok[WR_AUTH_TOKEN_HEX + 2];
    wr_slice_t admin = {WR_AUTH_ADMIN, strlen(WR_AUTH_ADMIN)};
    ssize_t n;
    wr_err_t err;
    int fd;

    snprintf(path, sizeof(path), "%s/admin.token", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        wr_auth_token_new(tok);
        tok[WR_AUTH_TOKEN_HEX] = '\n';
        if (fchmod(fd, 0600) != 0 || write(fd, tok, WR_AUTH_TOKEN_HEX + 1) != WR_AUTH_TOKEN_HEX + 1 ||
            fsync(fd) != 0) {
            fprintf(stderr, "warrend: cannot write %s: %s\n", path, strerror(errno));
            close(fd);
            unlink(path);
            return -1;
        }
        close(fd);
    } else if (errno == EEXIST) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        n = fd >= 0 ? read(fd, tok, WR_AUTH_TOKEN_HEX + 1) : -1;
        if (fd >= 0)
            close(fd);
        if (n < WR_AUTH_TOKEN_HEX) {
            fprintf(stderr, "warrend: %s does not hold a token (64 hex digits); remove it to get "
                    "a new one\n", path);
            return -1;
        }
    } else {
        fprintf(stderr, "warrend: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    tok[WR_AUTH_TOKEN_HEX] = '\0';
    err = wr_auth_token_register(a, admin, tok);
    wr_auth_token_new(tok); /* overwrite the copy on the stack */
    if (err == WR_ENOTFOUND) {
        wr_log(WR_LOG_WARN, WR_LOGC_CORE, "user '%s' was deleted: %s is not registered",
               WR_AUTH_ADMIN, path);
        return 0;
    }
    if (err != WR_OK) {
        fprintf(stderr, "warrend: cannot register %s: %s\n", path, wr_strerror(err));
        return -1;
    }
    return 0;
}

/* The listener a front end owns, by its name, so errors can name the flag. */
typedef struct listener {
    const char *frontend; /* wr_frontend_ops_t.name */
    const char *flag;
    const char *addr;
    uint16_t port;
} listener_t;

static const wr_frontend_ops_t *frontend_named(const char *name)
{
    for (size_t i = 0; wr_frontends[i]; i++)
        if (strcmp(wr_frontends[i]->name, name) == 0)
            return wr_frontends[i];
    return NULL;
}

/* Prints a clear line if the listener's port cannot be bound; returns -1 then. */
static int check_listener(const listener_t *l)
{
    char a[96];
    int rc = probe_port(l->addr, l->port);

    if (rc == 0)
        return 0;
    fmt_addr(a, sizeof(a), l->addr, l->port);
    if (rc == EADDRINUSE)
        fprintf(stderr,
                "warrend: %s (--%s) is already in use; stop what listens there or give "
                "another --%s\n",
                a, l->flag, l->flag);
    else
        fprintf(stderr, "warrend: cannot listen on %s (--%s): %s\n", a, l->flag, strerror(rc));
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Process state                                                            */

typedef struct proc {
    wr_config_t cfg;
    int lock_fd;
    wr_store_t *store;
    wr_core_t *core;
    wr_auth_t *auth;
    wr_frontend_t *fe[MAX_FRONTENDS];
    size_t nfe;
    listener_t listeners[4];
} proc_t;

/* Frees in reverse order of startup; safe on a partly started proc. */
static void teardown(proc_t *p)
{
    /* The registry's threads answer on the shard loops: before they stop. */
    wr_auth_stop(p->auth);
    if (p->core)
        wr_core_stop(p->core);
    for (size_t i = p->nfe; i-- > 0;)
        p->fe[i]->ops->free(p->fe[i]);
    p->nfe = 0;
    if (p->core)
        wr_core_set_auth(p->core, NULL);
    wr_core_free(p->core);
    p->core = NULL;
    wr_auth_free(p->auth);
    p->auth = NULL;
    wr_store_close(p->store);
    p->store = NULL;
    if (p->lock_fd >= 0)
        close(p->lock_fd);
    p->lock_fd = -1;
}

/* ------------------------------------------------------------------------ */
/* Startup                                                                  */

static int start(proc_t *p)
{
    const wr_config_t *cfg = &p->cfg;
    const wr_store_ops_t *so;
    wr_store_cfg_t scfg = {
        .dir = cfg->data_dir,
        .fsync = strcmp(cfg->fsync, "always") == 0  ? WR_FSYNC_ALWAYS
                 : strcmp(cfg->fsync, "never") == 0 ? WR_FSYNC_NEVER
                                                    : WR_FSYNC_BATCH,
        .disk_free_limit = cfg->disk_free_limit,
    };
    wr_core_cfg_t ccfg = {0};
    wr_err_t err;
    size_t nl = 0;

    p->listeners[nl++] = (listener_t){"rest", "http", cfg->http_addr, cfg->http_port};
    p->listeners[nl++] = (listener_t){"amqp", "amqp", cfg->amqp_addr, cfg->amqp_port};
    if (cfg->amqps_addr[0])
        p->listeners[nl++] = (listener_t){"amqp", "amqps", cfg->amqps_addr, cfg->amqps_port};
    if (cfg->https_addr[0])
        p->listeners[nl++] = (listener_t){"rest", "https", cfg->https_addr, cfg->https_port};
    if ((cfg->amqps_addr[0] || cfg->https_addr[0]) && (!cfg->tls_cert[0] || !cfg->tls_key[0])) {
        fprintf(stderr, "warrend: --amqps and --https need --tls-cert and --tls-key\n");
        return -1;
    }
    wr_log(WR_LOG_INFO, WR_LOGC_CORE, "memory high watermark %llu bytes%s",
           (unsigned long long)wr_mem_set_limit(cfg->memory_high_watermark),
           cfg->memory_high_watermark ? "" : " (40% of RAM)");

    if (mkdir_p(cfg->data_dir) != 0) {
        fprintf(stderr, "warrend: cannot create data directory %s: %s\n", cfg->data_dir,
                strerror(errno));
        return -1;
    }
    p->lock_fd = lock_data_dir(cfg->data_dir);
    if (p->lock_fd < 0)
        return -1;

    /* Refuse early and clearly if a port is taken, before threads start. */
    for (size_t i = 0; i < nl; i++)
        if (frontend_named(p->listeners[i].frontend) && check_listener(&p->listeners[i]) != 0)
            return -1;

    so = wr_store_find(cfg->store);
    if (!so) {
        fprintf(stderr, "warrend: unknown store '%s' (--store)\n", cfg->store);
        return -1;
    }
    if (so->abi != WR_STORE_ABI) {
        fprintf(stderr, "warrend: store '%s' has ABI %u, warrend needs %u\n", cfg->store, so->abi,
                WR_STORE_ABI);
        return -1;
    }
    err = so->open(&scfg, &p->store);
    if (err != WR_OK) {
        fprintf(stderr, "warrend: cannot open store '%s' in %s: %s\n", cfg->store, cfg->data_dir,
                wr_strerror(err));
        p->store = NULL;
        return -1;
    }

    ccfg.shards = cfg->shards;
    ccfg.store = p->store;
    ccfg.max_message_bytes = cfg->max_message_bytes;
    for (const wr_frontend_ops_t *const *fe = wr_frontends; *fe && !ccfg.deadletter_props; fe++)
        ccfg.deadletter_props = (*fe)->deadletter_props;
    err = wr_core_new(&ccfg, &p->core);
    if (err != WR_OK) {
        fprintf(stderr, "warrend: cannot start the queue core: %s\n", wr_strerror(err));
        p->core = NULL;
        return -1;
    }

    /* Tenants, users, grants and tokens: from the store, before serving. */
    err = wr_auth_new(p->store, NULL, &p->auth);
    if (err != WR_OK) {
        fprintf(stderr, "warrend: cannot load the auth registry: %s\n", wr_strerror(err));
        p->auth = NULL;
        return -1;
    }
    wr_core_set_auth(p->core, p->auth);
    if (admin_token(p->auth, cfg->data_dir) != 0)
        return -1;

    for (size_t i = 0; wr_frontends[i]; i++) {
        const wr_frontend_ops_t *ops = wr_frontends[i];
        wr_frontend_t *fe = NULL;

        if (ops->abi != WR_FRONTEND_ABI) {
            fprintf(stderr, "warrend: front end '%s' has ABI %u, warrend needs %u\n", ops->name,
                    ops->abi, WR_FRONTEND_ABI);
            return -1;
        }
        if (p->nfe == MAX_FRONTENDS) {
            fprintf(stderr, "warrend: more than %d front ends\n", MAX_FRONTENDS);
            return -1;
        }
        err = ops->start(p->core, cfg, &fe);
        if (err != WR_OK) {
            /* Name the port if that is the reason (lost a race since the probe). */
            for (size_t j = 0; j < nl; j++)
                if (strcmp(p->listeners[j].frontend, ops->name) == 0 &&
                    check_listener(&p->listeners[j]) != 0)
                    return -1;
            fprintf(stderr, "warrend: cannot start the %s front end: %s\n", ops->name,
                    wr_strerror(err));
            return -1;
        }
        p->fe[p->nfe++] = fe;
    }
    if (!frontend_named("amqp"))
        wr_log(WR_LOG_WARN, WR_LOGC_AMQP,
               "AMQP is not available yet: this build has no amqp front end, --amqp %s:%u is "
               "not served",
               cfg->amqp_addr, (unsigned)cfg->amqp_port);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Shutdown                                                                 */

static uint64_t total_inflight(proc_t *p)
{
    uint64_t n = 0;
    for (size_t i = 0; i < p->nfe; i++)
        n += p->fe[i]->ops->inflight(p->fe[i]);
    return n;
}

/*
 * SIGTERM steps 1 and 2: stop accepting, then wait for in-flight requests.
 * Polls every 10 ms; a second SIGTERM/SIGINT stops the wait at once.
 */
static void drain(proc_t *p, const sigset_t *sigs)
{
    const struct timespec tick = {0, 10 * 1000 * 1000};
    int64_t deadline = wr_now_mono_ms() + DRAIN_MS;
    uint64_t n;

    for (size_t i = 0; i < p->nfe; i++)
        p->fe[i]->ops->stop_accepting(p->fe[i]);
    n = total_inflight(p);
    if (n > 0)
        wr_log(WR_LOG_INFO, WR_LOGC_CORE, "draining inflight=%llu", (unsigned long long)n);
    while (n > 0) {
        if (wr_now_mono_ms() >= deadline) {
            wr_log(WR_LOG_WARN, WR_LOGC_CORE, "drain timed out after %d ms, inflight=%llu",
                   DRAIN_MS, (unsigned long long)n);
            return;
        }
        if (sigtimedwait(sigs, NULL, &tick) > 0) {
            wr_log(WR_LOG_WARN, WR_LOGC_CORE, "second signal: not waiting, inflight=%llu",
                   (unsigned long long)n);
            return;
        }
        n = total_inflight(p);
    }
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */

int main(int argc, char **argv)
{
    proc_t p = {.lock_fd = -1};
    wr_log_level_t lvl;
    sigset_t sigs;
    bool exit_now;
    char http[96], amqp[96];
    int sig;

    if (wr_config_from_args(&p.cfg, argc, argv, stdout, stderr, &exit_now) != WR_OK)
        return 2;
    if (exit_now)
        return 0;
    if (wr_log_level_parse(p.cfg.log_level, &lvl) == 0)
        wr_log_level_g = (int)lvl;

    /* Before any thread exists, so all of them inherit the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an EPIPE, not a death */

    if (start(&p) != 0) {
        teardown(&p);
        return 1;
    }
    fmt_addr(http, sizeof(http), p.cfg.http_addr, p.cfg.http_port);
    if (frontend_named("amqp"))
        fmt_addr(amqp, sizeof(amqp), p.cfg.amqp_addr, p.cfg.amqp_port);
    else
        snprintf(amqp, sizeof(amqp), "off");
    wr_log(WR_LOG_INFO, WR_LOGC_CORE,
           "warrend ready http=%s shards=%u amqp=%s zone=%s store=%s data=%s auth=%s", http,
           wr_core_shards(p.core), amqp, p.cfg.zone, p.cfg.store, p.cfg.data_dir,
           p.cfg.auth_required ? "required" : "loopback");

    do {
        sig = sigwaitinfo(&sigs, NULL);
    } while (sig < 0 && errno == EINTR);
    wr_log(WR_LOG_INFO, WR_LOGC_CORE, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");

    drain(&p, &sigs);
    teardown(&p);
    wr_log(WR_LOG_INFO, WR_LOGC_CORE, "warrend stopped");
    return 0;
}
