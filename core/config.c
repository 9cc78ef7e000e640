/*
 * config.c - warrend's settings, driven by one table.
 *
 * Every setting is one row of `opts[]` (name, kind, where it lives in
 * wr_config_t, default, bounds, help). The same row serves:
 *   - the command line: `--name VALUE` and `--name=VALUE`
 *   - the INI file: `name = VALUE`, in section [warren] or before any section
 *   - the built-in default (the default string goes through the same setter)
 *   - --help, generated from the rows in table order
 * so adding a setting is one row (nginx's ngx_command_t, Redis createIntConfig).
 *
 * Layout: table kinds and rows; setters (one per kind); defaults; the INI
 * file; the command line; --help.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#ifndef WR_VERSION
#define WR_VERSION "0.1.0"
#endif

/* ------------------------------------------------------------------------ */
/* The table                                                                */

typedef enum {
    OPT_ADDR,   /* ADDR:PORT into a char[] (off) and a uint16_t (off2); empty
                   (off) only when the row's default is empty */
    OPT_UINT,   /* unsigned integer of 4 bytes, min..max */
    OPT_NAME,   /* [A-Za-z0-9._-]+ into a char[] of `size` bytes */
    OPT_PATH,   /* any non-empty string into a char[] */
    OPT_FILE,   /* empty, or a path into a char[] */
    OPT_URL,    /* empty, or http(s)://... */
    OPT_LEVEL,  /* error|warn|info|debug */
    OPT_CHOICE, /* one of the '|'-separated words of the row's metavar */
    OPT_AUTH,   /* loopback|required */
    OPT_CONFIG, /* --config FILE: command line only, read before the other flags */
    OPT_HELP,   /* --help: command line only, no value */
    OPT_VERSION /* --version: command line only, no value */
} opt_kind_t;

typedef struct opt {
    const char *name; /* flag without the dashes; also the INI key */
    opt_kind_t kind;
    size_t off, size; /* the field in wr_config_t */
    size_t off2;      /* OPT_ADDR: the port field */
    const char *def;  /* default, as it would be written on the command line */
    uint64_t min, max;
    const char *metavar;
    const char *help;
} opt_t;

#define FIELD(m) offsetof(wr_config_t, m), sizeof(((wr_config_t *)0)->m)
#define NOFIELD 0, 0

static const opt_t opts[] = {
    {"config", OPT_CONFIG, NOFIELD, 0, NULL, 0, 0, "FILE",
     "read settings from an INI file first; flags override it"},
    {"amqp", OPT_ADDR, FIELD(amqp_addr), offsetof(wr_config_t, amqp_port), "127.0.0.1:5672", 1,
     65535, "ADDR:PORT", "AMQP 0-9-1 listener"},
    {"http", OPT_ADDR, FIELD(http_addr), offsetof(wr_config_t, http_port), "127.0.0.1:8888", 1,
     65535, "ADDR:PORT", "REST listener (Zaqar v2)"},
    {"data", OPT_PATH, FIELD(data_dir), 0, "./warren-data", 0, 0, "DIR",
     "data directory, created if missing, locked while running"},
    {"shards", OPT_UINT, FIELD(shards), 0, "0", 0, 1024, "N",
     "shard threads, 0 = one per online CPU"},
    {"zone", OPT_NAME, FIELD(zone), 0, "default", 0, 0, "NAME", "this node's zone"},
    {"etcd", OPT_URL, FIELD(etcd), 0, "", 0, 0, "URL",
     "etcd v3 endpoint for membership (empty: single node)"},
    {"log-level", OPT_LEVEL, FIELD(log_level), 0, "info", 0, 0, "LEVEL",
     "error, warn, info or debug"},
    {"store", OPT_CHOICE, FIELD(store), 0, "rocksdb", 0, 0, "rocksdb|memory",
     "durable queues' store (memory: lost on restart)"},
    {"max-message-bytes", OPT_UINT, FIELD(max_message_bytes), 0, "262144", 1, 64u * 1024 * 1024,
     "N", "largest message body accepted, in bytes"},
    {"fsync", OPT_CHOICE, FIELD(fsync), 0, "batch", 0, 0, "always|batch|never",
     "store syncs: batch, always (acks too) or never"},
    {"disk-free-limit", OPT_UINT, FIELD(disk_free_limit), 0, "50000000", 0, UINT64_MAX / 2,
     "BYTES", "persistent writes stop below this much free disk"},
    {"rest-durable", OPT_CHOICE, FIELD(rest_durable), 0, "true", 0, 0, "true|false",
     "REST queues without \"_durable\" are durable"},
    {"auth", OPT_AUTH, FIELD(auth), 0, "loopback", 0, 0, "MODE",
     "loopback or required (see docs/security.md)"},
    {"amqps", OPT_ADDR, FIELD(amqps_addr), offsetof(wr_config_t, amqps_port), "", 1, 65535,
     "ADDR:PORT", "AMQP 0-9-1 over TLS listener (5671 is usual; needs tls-cert, tls-key)"},
    {"https", OPT_ADDR, FIELD(https_addr), offsetof(wr_config_t, https_port), "", 1, 65535,
     "ADDR:PORT", "REST over TLS listener (needs tls-cert, tls-key)"},
    {"tls-cert", OPT_FILE, FIELD(tls_cert), 0, "", 0, 0, "FILE",
     "PEM certificate (chain) for --amqps and --https"},
    {"tls-key", OPT_FILE, FIELD(tls_key), 0, "", 0, 0, "FILE", "PEM private key of tls-cert"},
    {"tls-ca", OPT_FILE, FIELD(tls_ca), 0, "", 0, 0, "FILE",
     "PEM CAs: verify client certificates (optional ones)"},
    {"max-handshakes", OPT_UINT, FIELD(max_handshakes), 0, "1000", 1, 1000000, "N",
     "AMQP connections still in their handshake; more are closed"},
    {"http-idle-timeout", OPT_UINT, FIELD(http_idle_timeout), 0, "60", 1, 86400, "SECONDS",
     "REST: close a connection idle (or not reading) this long"},
    {"http-request-timeout", OPT_UINT, FIELD(http_request_timeout), 0, "30", 1, 86400,
     "SECONDS", "REST: a request must arrive whole within this"},
    {"memory-high-watermark", OPT_UINT, FIELD(memory_high_watermark), 0, "0", 0, UINT64_MAX / 2,
     "BYTES", "RSS above which publishers are blocked (0: 40% of RAM)"},
    {"help", OPT_HELP, NOFIELD, 0, NULL, 0, 0, NULL, "print this help and exit"},
    {"version", OPT_VERSION, NOFIELD, 0, NULL, 0, 0, NULL, "print the version and exit"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* `name` is len bytes (not NUL-terminated: "--http=..." stops at '='). '_'
 * matches '-' so an INI file may say max_message_bytes. */
static const opt_t *opt_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const char *o = opts[i].name;
        size_t j;

        if (strlen(o) != len)
            continue;
        for (j = 0; j < len; j++) {
            char c = name[j] == '_' ? '-' : name[j];
            if (c != o[j])
                break;
        }
        if (j == len)
            return &opts[i];
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Setters: parse `val` into the row's field, or write a one-line reason    */
/* into `why` and return WR_EINVAL. The caller prefixes where it came from. */

static wr_err_t set_str(const opt_t *o, wr_config_t *cfg, const char *val, char *why, size_t wlen)
{
    size_t n = strlen(val);

    if (n >= o->size) {
        snprintf(why, wlen, "longer than %zu bytes", o->size - 1);
        return WR_EINVAL;
    }
    memcpy((char *)cfg + o->off, val, n + 1);
    return WR_OK;
}

static wr_err_t parse_u64(const char *val, uint64_t min, uint64_t max, uint64_t *out, char *why,
                          size_t wlen)
{
    char *end;
    unsigned long long v;

    /* strtoull accepts "-1" and leading spaces; a count is digits only. */
    if (val[0] < '0' || val[0] > '9') {
        snprintf(why, wlen, "'%s' is not a number", val);
        return WR_EINVAL;
    }
    errno = 0;
    v = strtoull(val, &end, 10);
    if (*end != '\0') {
        snprintf(why, wlen, "'%s' is not a number", val);
        return WR_EINVAL;
    }
    if (errno == ERANGE || v < min || v > max) {
        snprintf(why, wlen, "%s is out of range %llu..%llu", val, (unsigned long long)min,
                 (unsigned long long)max);
        return WR_EINVAL;
    }
    *out = v;
    return WR_OK;
}

/* ADDR:PORT or [IPv6]:PORT. The address is kept without brackets, and
 * "localhost" is kept as 127.0.0.1 so listeners need no resolver. */
static wr_err_t set_addr(const opt_t *o, wr_config_t *cfg, const char *val, char *why, size_t wlen)
{
    char host[64];
    const char *colon, *hs, *he;
    unsigned char buf[sizeof(struct in6_addr)];
    uint64_t port;
    size_t hl;

    if (val[0] == '\0' && o->def && o->def[0] == '\0') { /* an optional listener: off */
        ((char *)cfg + o->off)[0] = '\0';
        *(uint16_t *)(void *)((char *)cfg + o->off2) = 0;
        return WR_OK;
    }
    colon = strrchr(val, ':');
    if (!colon || colon == val) {
        snprintf(why, wlen, "'%s' is not ADDR:PORT (e.g. 127.0.0.1:%s)", val,
                 o->def[0] ? strchr(o->def, ':') + 1 : "PORT");
        return WR_EINVAL;
    }
    hs = val;
    he = colon;
    if (val[0] == '[') {
        if (colon[-1] != ']') {
            snprintf(why, wlen, "'%s' is not [IPv6]:PORT", val);
            return WR_EINVAL;
        }
        hs = val + 1;
        he = colon - 1;
    } else if (memchr(val, ':', (size_t)(colon - val))) {
        snprintf(why, wlen, "'%s': write an IPv6 address as [ADDR]:PORT", val);
        return WR_EINVAL;
    }
    hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof(host) || hl >= o->size) {
        snprintf(why, wlen, "'%s' has no valid address", val);
        return WR_EINVAL;
    }
    memcpy(host, hs, hl);
    host[hl] = '\0';
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1) {
        snprintf(why, wlen, "'%s' is not an IPv4 or IPv6 address", host);
        return WR_EINVAL;
    }
    if (parse_u64(colon + 1, o->min, o->max, &port, why, wlen) != WR_OK) {
        snprintf(why, wlen, "port '%.16s' is not a number in %llu..%llu", colon + 1,
                 (unsigned long long)o->min, (unsigned long long)o->max);
        return WR_EINVAL;
    }
    memcpy((char *)cfg + o->off, host, strlen(host) + 1);
    *(uint16_t *)(void *)((char *)cfg + o->off2) = (uint16_t)port;
    return WR_OK;
}

/* Is val one of the '|'-separated words of choices? */
static bool choice_ok(const char *choices, const char *val)
{
    size_t n = strlen(val);

    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && n && memcmp(p, val, n) == 0)
            return true;
        p += len + (bar != NULL);
    }
    return false;
}

static wr_err_t set_value(const opt_t *o, wr_config_t *cfg, const char *val, char *why, size_t wlen)
{
    switch (o->kind) {
    case OPT_ADDR:
        return set_addr(o, cfg, val, why, wlen);
    case OPT_UINT: {
        uint64_t v;
        if (parse_u64(val, o->min, o->max, &v, why, wlen) != WR_OK)
            return WR_EINVAL;
        if (o->size == sizeof(uint64_t)) {
            *(uint64_t *)(void *)((char *)cfg + o->off) = v;
            return WR_OK;
        }
        WR_ASSERT(o->size == sizeof(uint32_t));
        *(uint32_t *)(void *)((char *)cfg + o->off) = (uint32_t)v;
        return WR_OK;
    }
    case OPT_NAME:
        if (val[0] == '\0') {
            snprintf(why, wlen, "must not be empty");
            return WR_EINVAL;
        }
        for (const char *p = val; *p; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-')) {
                snprintf(why, wlen, "'%s' may only hold letters, digits, '.', '_' and '-'", val);
                return WR_EINVAL;
            }
        }
        return set_str(o, cfg, val, why, wlen);
    case OPT_PATH:
        if (val[0] == '\0') {
            snprintf(why, wlen, "must not be empty");
            return WR_EINVAL;
        }
        return set_str(o, cfg, val, why, wlen);
    case OPT_FILE:
        return set_str(o, cfg, val, why, wlen);
    case OPT_URL:
        if (val[0] != '\0' && strncmp(val, "http://", 7) != 0 && strncmp(val, "https://", 8) != 0) {
            snprintf(why, wlen, "'%s' is not an http:// or https:// URL", val);
            return WR_EINVAL;
        }
        return set_str(o, cfg, val, why, wlen);
    case OPT_LEVEL: {
        wr_log_level_t lvl;
        if (wr_log_level_parse(val, &lvl) != 0) {
            snprintf(why, wlen, "'%s' is not one of error, warn, info, debug", val);
            return WR_EINVAL;
        }
        return set_str(o, cfg, val, why, wlen);
    }
    case OPT_AUTH:
        if (strcmp(val, "loopback") != 0 && strcmp(val, "required") != 0) {
            snprintf(why, wlen, "'%s' is not loopback or required", val);
            return WR_EINVAL;
        }
        return set_str(o, cfg, val, why, wlen);
    case OPT_CHOICE:
        if (!choice_ok(o->metavar, val)) {
            snprintf(why, wlen, "'%s' is not one of %s", val, o->metavar);
            return WR_EINVAL;
        }
        return set_str(o, cfg, val, why, wlen);
    case OPT_CONFIG:
    case OPT_HELP:
    case OPT_VERSION:
        break;
    }
    snprintf(why, wlen, "only valid on the command line");
    return WR_EINVAL;
}

/* True when the address can only be reached from this machine. */
static bool is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, addr, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

/* Settings computed from others, refreshed after every change. */
static void derive(wr_config_t *cfg)
{
    cfg->auth_required = strcmp(cfg->auth, "required") == 0 || !is_loopback(cfg->http_addr);
    cfg->trust_project_header = !cfg->auth_required;
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                 */

void wr_config_defaults(wr_config_t *cfg)
{
    char why[256];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTS; i++) {
        if (!opts[i].def)
            continue;
        /* A default that fails its own bounds is a bug in the table. */
        WR_ASSERT(set_value(&opts[i], cfg, opts[i].def, why, sizeof(why)) == WR_OK);
    }
    derive(cfg);
}

/* ------------------------------------------------------------------------ */
/* INI file                                                                 */

typedef struct ini_ctx {
    wr_config_t *cfg;
    char msg[320]; /* the first error, without its file:line */
} ini_ctx_t;

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx_t *ctx = user;
    const opt_t *o;
    char why[256];
    size_t n;

    /* Only the first error is reported; inih goes on parsing after it. */
    if (ctx->msg[0] != '\0')
        return 0;
    if (section[0] != '\0' && strcmp(section, "warren") != 0) {
        snprintf(ctx->msg, sizeof(ctx->msg), "unknown section [%.64s] (use [warren] or none)",
                 section);
        return 0;
    }
    o = opt_find(name, strlen(name));
    if (!o || o->kind == OPT_CONFIG || o->kind == OPT_HELP || o->kind == OPT_VERSION) {
        snprintf(ctx->msg, sizeof(ctx->msg), "unknown key '%.64s'", name);
        return 0;
    }
    if (set_value(o, ctx->cfg, value, why, sizeof(why)) != WR_OK) {
        n = (size_t)snprintf(ctx->msg, sizeof(ctx->msg), "%.32s: ", o->name);
        memcpy(ctx->msg + n, why, strlen(why) + 1); /* 34 + 256 fit in msg */
        return 0;
    }
    return 1;
}

wr_err_t wr_config_load_file(wr_config_t *cfg, const char *path, FILE *err)
{
    ini_ctx_t ctx = {.cfg = cfg};
    FILE *f;
    int rc;

    f = fopen(path, "r");
    if (!f) {
        fprintf(err, "warrend: cannot read config file %s: %s\n", path, strerror(errno));
        return WR_EINVAL;
    }
    rc = ini_parse_file(f, on_ini, &ctx);
    fclose(f);
    if (rc != 0) {
        if (rc < 0)
            fprintf(err, "warrend: %s: out of memory while reading\n", path);
        else
            fprintf(err, "warrend: %s:%d: %s\n", path, rc,
                    ctx.msg[0] ? ctx.msg : "syntax error (expected key = value)");
        return WR_EINVAL;
    }
    derive(cfg);
    return WR_OK;
}

/* ------------------------------------------------------------------------ */
/* Command line                                                             */

/*
 * Splits argv[*i] into its row and value, advancing *i past a separate
 * value. *val is NULL for rows that take none.
 */
static wr_err_t next_flag(int argc, char **argv, int *i, const opt_t **o_out, const char **val,
                          FILE *err)
{
    const char *arg = argv[*i];
    const char *eq;
    const opt_t *o;
    size_t nlen;

    if (strcmp(arg, "-h") == 0)
        arg = "--help";
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
        fprintf(err, "warrend: unexpected argument '%s' (see --help)\n", arg);
        return WR_EINVAL;
    }
    eq = strchr(arg + 2, '=');
    nlen = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
    o = opt_find(arg + 2, nlen);
    if (!o || memchr(arg + 2, '_', nlen)) {
        fprintf(err, "warrend: unknown flag --%.*s (see --help)\n", (int)nlen, arg + 2);
        return WR_EINVAL;
    }
    if (o->kind == OPT_HELP || o->kind == OPT_VERSION) {
        if (eq) {
            fprintf(err, "warrend: --%s takes no value\n", o->name);
            return WR_EINVAL;
        }
        *val = NULL;
    } else if (eq) {
        *val = eq + 1;
    } else if (*i + 1 < argc) {
        *val = argv[++*i];
    } else {
        fprintf(err, "warrend: --%s needs a value: --%s %s\n", o->name, o->name, o->metavar);
        return WR_EINVAL;
    }
    *o_out = o;
    return WR_OK;
}

wr_err_t wr_config_from_args(wr_config_t *cfg, int argc, char **argv, FILE *out, FILE *err,
                             bool *exit_now)
{
    const char *config_file = NULL;
    const opt_t *o;
    const char *val;
    char why[256];

    *exit_now = false;
    wr_config_defaults(cfg);

    /* Pass 1: check the syntax, answer --help/--version, find --config. */
    for (int i = 1; i < argc; i++) {
        if (next_flag(argc, argv, &i, &o, &val, err) != WR_OK)
            return WR_EINVAL;
        if (o->kind == OPT_HELP) {
            wr_config_usage(out);
            *exit_now = true;
            return WR_OK;
        }
        if (o->kind == OPT_VERSION) {
            fprintf(out, "warrend %s\n", WR_VERSION);
            *exit_now = true;
            return WR_OK;
        }
        if (o->kind == OPT_CONFIG)
            config_file = val;
    }
    if (config_file && wr_config_load_file(cfg, config_file, err) != WR_OK)
        return WR_EINVAL;

    /* Pass 2: every other flag overrides the file. */
    for (int i = 1; i < argc; i++) {
        if (next_flag(argc, argv, &i, &o, &val, err) != WR_OK)
            return WR_EINVAL;
        if (o->kind == OPT_CONFIG)
            continue;
        if (set_value(o, cfg, val, why, sizeof(why)) != WR_OK) {
            fprintf(err, "warrend: --%s: %s\n", o->name, why);
            return WR_EINVAL;
        }
    }
    derive(cfg);
    return WR_OK;
}

/* ------------------------------------------------------------------------ */
/* --help                                                                   */

void wr_config_usage(FILE *out)
{
    fprintf(out, "usage: warrend [--flag VALUE | --flag=VALUE]...\n"
                 "\n"
                 "warren message broker: Zaqar v2 REST and AMQP 0-9-1 over one queue core.\n"
                 "Precedence: built-in defaults < --config file < flags. In the file, keys\n"
                 "are the flag names without dashes (e.g. `http = 127.0.0.1:8888`), in\n"
                 "section [warren] or before any section. While --http is a loopback\n"
                 "address and --auth is loopback, REST trusts X-Project-Id without a token.\n"
                 "\n"
                 "flags:\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_t *o = &opts[i];
        char lhs[64], tail[96] = "";
        size_t tl = 0;

        snprintf(lhs, sizeof(lhs), "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        if (o->def)
            tl = (size_t)snprintf(tail, sizeof(tail), "(default %s)", o->def[0] ? o->def : "empty");
        if (o->kind == OPT_UINT)
            snprintf(tail + tl, sizeof(tail) - tl, " [%llu..%llu]", (unsigned long long)o->min,
                     (unsigned long long)o->max);
        /* Keep lines within 80 columns: the default goes below a long help. */
        if (tail[0] && 2 + 26 + 1 + strlen(o->help) + 1 + strlen(tail) > 80)
            fprintf(out, "  %-26s %s\n  %-26s %s\n", lhs, o->help, "", tail);
        else
            fprintf(out, "  %-26s %s%s%s\n", lhs, o->help, tail[0] ? " " : "", tail);
    }
    fprintf(out, "\n"
                 "signals: SIGTERM or SIGINT stops accepting, finishes in-flight requests and\n"
                 "exits 0.\n");
}
