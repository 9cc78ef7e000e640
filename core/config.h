/*
 * config.h - warrend's settings: one table drives the --flags, the config
 * file (INI, read with inih), --help, defaults and bounds.
 *
 * Precedence: built-in defaults < config file < command-line flags.
 */
#ifndef WR_CONFIG_H
#define WR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

typedef struct wr_config {
    char amqp_addr[64];    /* --amqp ADDR:PORT (default 127.0.0.1:5672) */
    uint16_t amqp_port;
    char http_addr[64];    /* --http ADDR:PORT (default 127.0.0.1:8888) */
    uint16_t http_port;
    char data_dir[1024];   /* --data DIR (default ./warren-data) */
    unsigned shards;       /* --shards N (default 0 = one per CPU) */
    char zone[64];         /* --zone NAME (default "default") */
    char etcd[256];        /* --etcd URL (default empty: single node) */
    char log_level[16];    /* --log-level error|warn|info|debug (default info) */
    char store[32];        /* --store rocksdb|memory (default rocksdb) */
    uint32_t max_message_bytes; /* --max-message-bytes (default 262144) */
    char fsync[8];              /* --fsync always|batch|never (default batch) */
    uint64_t disk_free_limit;   /* --disk-free-limit BYTES (default 50000000) */
    char rest_durable[8];       /* --rest-durable true|false (default true) */
    char auth[16];         /* --auth loopback|required (default loopback) */
    /* TLS and abuse limits (docs/security.md, "Limits" and "TLS"). */
    char amqps_addr[64];   /* --amqps ADDR:PORT (default empty: no AMQP over TLS) */
    uint16_t amqps_port;
    char https_addr[64];   /* --https ADDR:PORT (default empty: no HTTPS) */
    uint16_t https_port;
    char tls_cert[1024];   /* --tls-cert FILE: PEM certificate chain */
    char tls_key[1024];    /* --tls-key FILE: PEM private key */
    char tls_ca[1024];     /* --tls-ca FILE: PEM CAs to verify client certificates by */
    uint32_t max_handshakes;       /* --max-handshakes N (default 1000) */
    uint32_t http_idle_timeout;    /* --http-idle-timeout SECONDS (default 60) */
    uint32_t http_request_timeout; /* --http-request-timeout SECONDS (default 30) */
    uint64_t memory_high_watermark; /* --memory-high-watermark BYTES (0: 40% of RAM) */
    /* Derived: credentials are required on both protocols (--auth required,
     * or the REST listener is not on loopback). */
    bool auth_required;
    /* REST: trust X-Project-Id without a token (= !auth_required). On by
     * default while the REST listener is on loopback (the `make run` mode). */
    bool trust_project_header;
} wr_config_t;

/* Fills defaults. */
void wr_config_defaults(wr_config_t *cfg /* OUT */);

/*
 * Parses argv: --config FILE is read first (if given), then every other
 * flag overrides it. On --help writes the usage to `out` and sets *exit_now.
 * On error writes a one-line message to `err` and returns WR_EINVAL.
 */
wr_err_t wr_config_from_args(wr_config_t *cfg, int argc, char **argv, FILE *out, FILE *err,
                             bool *exit_now /* OUT */);

/* Reads an INI file ([warren] section or no section; keys = flag names
 * without dashes, e.g. `http = 127.0.0.1:8888`). */
wr_err_t wr_config_load_file(wr_config_t *cfg, const char *path, FILE *err);

/* Writes the --help text. */
void wr_config_usage(FILE *out);

#endif
