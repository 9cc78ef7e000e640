/*
 * test_config.c - core/config.c: defaults, flags, the INI file, precedence,
 * bounds and --help.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

/* Captures what a call writes to out/err. */
typedef struct cap {
    char *buf;
    size_t len;
    FILE *f;
} cap_t;

static void cap_open(cap_t *c)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    cr_assert_not_null(c->f);
}

static const char *cap_text(cap_t *c)
{
    fflush(c->f);
    return c->buf ? c->buf : "";
}

static void cap_close(cap_t *c)
{
    fclose(c->f);
    free(c->buf);
}

/* Parses argv (NULL-terminated, argv[0] included). */
static wr_err_t parse(wr_config_t *cfg, cap_t *out, cap_t *err, bool *exit_now, char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return wr_config_from_args(cfg, argc, argv, out->f, err->f, exit_now);
}

/* Writes `text` to a fresh temporary file; the caller unlinks it. */
static char *write_file(const char *text)
{
    char *path = strdup("/tmp/warren-test-config-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(config, defaults)
{
    wr_config_t c;
    wr_config_defaults(&c);
    cr_assert_str_eq(c.amqp_addr, "127.0.0.1");
    cr_assert_eq(c.amqp_port, 5672);
    cr_assert_str_eq(c.http_addr, "127.0.0.1");
    cr_assert_eq(c.http_port, 8888);
    cr_assert_str_eq(c.data_dir, "./warren-data");
    cr_assert_eq(c.shards, 0);
    cr_assert_str_eq(c.zone, "default");
    cr_assert_str_eq(c.etcd, "");
    cr_assert_str_eq(c.log_level, "info");
    cr_assert_str_eq(c.store, "rocksdb");
    cr_assert_eq(c.max_message_bytes, 262144);
    cr_assert_str_eq(c.fsync, "batch");
    cr_assert_eq(c.disk_free_limit, 50000000);
    cr_assert_str_eq(c.rest_durable, "true");
    cr_assert(c.trust_project_header);
}

Test(config, no_args_is_defaults)
{
    wr_config_t c, d;
    cap_t out, err;
    bool exit_now = true;
    char *argv[] = {"warrend", NULL};

    cap_open(&out);
    cap_open(&err);
    cr_assert_eq(parse(&c, &out, &err, &exit_now, argv), WR_OK);
    cr_assert_not(exit_now);
    wr_config_defaults(&d);
    cr_assert_eq(memcmp(&c, &d, sizeof(c)), 0);
    cr_assert_str_eq(cap_text(&err), "");
    cap_close(&out);
    cap_close(&err);
}

Test(config, both_flag_forms)
{
    wr_config_t c;
    cap_t out, err;
    bool exit_now;
    char *argv[] = {"warrend",
                    "--http",
                    "0.0.0.0:9000",
                    "--shards=3",
                    "--zone",
                    "eu-west-1",
                    "--log-level=debug",
                    "--amqp=[::1]:5673",
                    "--data",
                    "/tmp/x",
                    "--etcd=http://127.0.0.1:2379",
                    "--max-message-bytes",
                    "1024",
                    NULL};

    cap_open(&out);
    cap_open(&err);
    cr_assert_eq(parse(&c, &out, &err, &exit_now, argv), WR_OK, "%s", cap_text(&err));
    cr_assert_str_eq(c.http_addr, "0.0.0.0");
    cr_assert_eq(c.http_port, 9000);
    cr_assert_eq(c.shards, 3);
    cr_assert_str_eq(c.zone, "eu-west-1");
    cr_assert_str_eq(c.log_level, "debug");
    cr_assert_str_eq(c.amqp_addr, "::1");
    cr_assert_eq(c.amqp_port, 5673);
    cr_assert_str_eq(c.data_dir, "/tmp/x");
    cr_assert_str_eq(c.etcd, "http://127.0.0.1:2379");
    cr_assert_eq(c.max_message_bytes, 1024);
    /* Not loopback: a token is needed. */
    cr_assert_not(c.trust_project_header);
    cap_close(&out);
    cap_close(&err);
}

Test(config, trust_follows_loopback)
{
    wr_config_t c;
    cap_t out, err;
    bool exit_now;
    char *v6[] = {"warrend", "--http=[::1]:8888", NULL};
    char *lo[] = {"warrend", "--http=localhost:8888", NULL};
    char *lan[] = {"warrend", "--http=10.0.0.5:8888", NULL};

    cap_open(&out);
    cap_open(&err);
    cr_assert_eq(parse(&c, &out, &err, &exit_now, v6), WR_OK);
    cr_assert(c.trust_project_header);
    cr_assert_eq(parse(&c, &out, &err, &exit_now, lo), WR_OK);
    cr_assert_str_eq(c.http_addr, "127.0.0.1");
    cr_assert(c.trust_project_header);
    cr_assert_eq(parse(&c, &out, &err, &exit_now, lan), WR_OK);
    cr_assert_not(c.trust_project_header);
    cap_close(&out);
    cap_close(&err);
}

Test(config, file_then_flags_override)
{
    wr_config_t c;
    cap_t out, err;
    bool exit_now;
    char *path = write_file("# example\n"
                            "[warren]\n"
                            "http = 127.0.0.1:7000\n"
                            "shards = 2\n"
                            "zone = from-file\n"
                            "max_message_bytes = 4096 ; underscores work too\n");
    char *argv[] = {"warrend", "--shards", "5", "--config", path, NULL};

    cap_open(&out);
    cap_open(&err);
    cr_assert_eq(parse(&c, &out, &err, &exit_now, argv), WR_OK, "%s", cap_text(&err));
    cr_assert_eq(c.http_port, 7000); /* from the file */
    cr_assert_str_eq(c.zone, "from-file");
    cr_assert_eq(c.max_message_bytes, 4096);
    cr_assert_eq(c.shards, 5);           /* the flag wins, even given before --config */
    cr_assert_str_eq(c.store, "rocksdb"); /* untouched: default */
    unlink(path);
    free(path);
    cap_close(&out);
    cap_close(&err);
}

Test(config, file_without_section)
{
    wr_config_t c;
    char *path = write_file("data = /var/lib/warren\nlog-level = warn\n");
    cap_t err;

    cap_open(&err);
    wr_config_defaults(&c);
    cr_assert_eq(wr_config_load_file(&c, path, err.f), WR_OK, "%s", cap_text(&err));
    cr_assert_str_eq(c.data_dir, "/var/lib/warren");
    cr_assert_str_eq(c.log_level, "warn");
    unlink(path);
    free(path);
    cap_close(&err);
}

/* Runs `text` as a config file and expects a one-line error containing `want`. */
static void file_rejects(const char *text, const char *want)
{
    wr_config_t c;
    char *path = write_file(text);
    cap_t err;
    const char *msg;

    cap_open(&err);
    wr_config_defaults(&c);
    cr_assert_eq(wr_config_load_file(&c, path, err.f), WR_EINVAL, "accepted: %s", text);
    msg = cap_text(&err);
    cr_assert(strstr(msg, want), "error '%s' lacks '%s'", msg, want);
    cr_assert(strstr(msg, path), "error '%s' lacks the file name", msg);
    cr_assert_eq(strchr(msg, '\n'), msg + strlen(msg) - 1, "not one line: '%s'", msg);
    unlink(path);
    free(path);
    cap_close(&err);
}

Test(config, file_errors)
{
    file_rejects("bogus = 1\n", ":1: unknown key 'bogus'");
    file_rejects("[warren]\nshards = 2\nshards = lots\n", ":3: shards: 'lots' is not a number");
    file_rejects("[other]\nshards = 2\n", "unknown section [other]");
    file_rejects("config = /etc/x\n", "unknown key 'config'");
    file_rejects("just words\n", ":1: syntax error");
}

Test(config, missing_file)
{
    wr_config_t c;
    cap_t out, err;
    bool exit_now;
    char *argv[] = {"warrend", "--config", "/nonexistent/warren.conf", NULL};

    cap_open(&out);
    cap_open(&err);
    cr_assert_eq(parse(&c, &out, &err, &exit_now, argv), WR_EINVAL);
    cr_assert(strstr(cap_text(&err), "/nonexistent/warren.conf"));
    cap_close(&out);
    cap_close(&err);
}

/* Expects argv (after "warrend") to fail with a one-line error holding `want`. */
static void flags_reject(const char *a1, const char *a2, const char *want)
{
    wr_config_t c;
    cap_t out, err;
    bool exit_now;
    char *argv[] = {"warrend", (char *)a1, (char *)a2, NULL};
    const char *msg;

    cap_open(&out);
    cap_open(&err);
    cr_assert_eq(parse(&c, &out, &err, &exit_now, argv), WR_EINVAL, "accepted %s %s", a1,
                 a2 ? a2 : "");
    msg = cap_text(&err);
    cr_assert(strstr(msg, want), "error '%s' lacks '%s'", msg, want);
    cr_assert_eq(strchr(msg, '\n'), msg + strlen(msg) - 1, "not one line: '%s'", msg);
    cr_assert_not(exit_now);
    cap_close(&out);
    cap_close(&err);
}

Test(config, bad_values_rejected)
{
    flags_reject("--shards", "-1", "not a number");
    flags_reject("--shards", "4x", "not a number");
    flags_reject("--shards=5000", NULL, "out of range 0..1024");
    flags_reject("--max-message-bytes=0", NULL, "out of range");
    flags_reject("--max-message-bytes", "99999999999999999999", "out of range");
    flags_reject("--http", "8888", "not ADDR:PORT");
    flags_reject("--http", "127.0.0.1:0", "port");
    flags_reject("--http", "127.0.0.1:65536", "port");
    flags_reject("--http", "300.1.1.1:80", "not an IPv4 or IPv6");
    flags_reject("--amqp", "::1:5672", "[ADDR]:PORT");
    flags_reject("--log-level", "chatty", "'chatty' is not one of");
    flags_reject("--zone", "eu west", "may only hold");
    flags_reject("--zone", "", "must not be empty");
    flags_reject("--etcd", "ftp://x", "not an http");
    flags_reject("--data", "", "must not be empty");
    flags_reject("--shards", NULL, "needs a value");
    flags_reject("--nope", "1", "unknown flag --nope");
    flags_reject("--max_message_bytes", "1", "unknown flag");
    flags_reject("stray", NULL, "unexpected argument 'stray'");
    flags_reject("--help=yes", NULL, "takes no value");
}

Test(config, long_string_rejected)
{
    char zone[200];
    memset(zone, 'z', sizeof(zone) - 1);
    zone[sizeof(zone) - 1] = '\0';
    flags_reject("--zone", zone, "longer than 63 bytes");
}

Test(config, help_lists_every_flag)
{
    wr_config_t c;
    cap_t out, err;
    bool exit_now = false;
    char *argv[] = {"warrend", "--shards", "2", "--help", NULL};
    static const char *const flags[] = {
        "--config FILE", "--amqp ADDR:PORT",      "--http ADDR:PORT", "--data DIR",
        "--shards N",    "--zone NAME",           "--etcd URL",       "--log-level LEVEL",
        "--store rocksdb|memory", "--max-message-bytes N", "--help", "--version",
        "--fsync always|batch|never", "--disk-free-limit BYTES", "--rest-durable true|false"};

    cap_open(&out);
    cap_open(&err);
    cr_assert_eq(parse(&c, &out, &err, &exit_now, argv), WR_OK);
    cr_assert(exit_now);
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        cr_assert(strstr(cap_text(&out), flags[i]), "--help lacks %s", flags[i]);
    cr_assert(strstr(cap_text(&out), "default 127.0.0.1:8888"));
    cr_assert_str_eq(cap_text(&err), "");
    cap_close(&out);
    cap_close(&err);
}

Test(config, choices_are_checked)
{
    wr_config_t c;
    cap_t out, err;
    bool exit_now = false;
    char *ok[] = {"warrend", "--fsync", "never", "--store=memory", "--disk-free-limit", "0",
                  "--rest-durable", "false", NULL};
    char *bad[] = {"warrend", "--fsync", "sometimes", NULL};
    char *bad_store[] = {"warrend", "--store", "mongodb", NULL};

    cap_open(&out);
    cap_open(&err);
    cr_assert_eq(parse(&c, &out, &err, &exit_now, ok), WR_OK, "%s", cap_text(&err));
    cr_assert_str_eq(c.fsync, "never");
    cr_assert_str_eq(c.store, "memory");
    cr_assert_eq(c.disk_free_limit, 0);
    cr_assert_str_eq(c.rest_durable, "false");
    cr_assert_eq(parse(&c, &out, &err, &exit_now, bad), WR_EINVAL);
    cr_assert(strstr(cap_text(&err), "'sometimes' is not one of always|batch|never"), "%s",
              cap_text(&err));
    cr_assert_eq(parse(&c, &out, &err, &exit_now, bad_store), WR_EINVAL);
    cap_close(&out);
    cap_close(&err);
}

Test(config, version)
{
    wr_config_t c;
    cap_t out, err;
    bool exit_now = false;
    char *argv[] = {"warrend", "--version", NULL};

    cap_open(&out);
    cap_open(&err);
    cr_assert_eq(parse(&c, &out, &err, &exit_now, argv), WR_OK);
    cr_assert(exit_now);
    cr_assert(strncmp(cap_text(&out), "warrend ", 8) == 0);
    cap_close(&out);
    cap_close(&err);
}
