/*
 * auth.h - the registry of tenants, users, permissions, tokens and quotas
 * (issue 5, points 1 and 2), owned by the core and asked by front ends.
 *
 * What it holds:
 *   tenants  a name (= AMQP vhost, = Zaqar project id; vhost "/" is tenant
 *            "default") and its quota settings (stored, not enforced here)
 *   users    a name, a password stored only as an Argon2id string
 *            (libsodium crypto_pwhash_str), flags (admin, loopback-only)
 *   grants   per (user, tenant): configure, write and read regexes with
 *            RabbitMQ's semantics (below)
 *   tokens   32 random bytes shown once as 64 hex digits; only their
 *            BLAKE2b hash (crypto_generichash) is kept, so a copy of the
 *            store yields no usable token
 *
 * Threads. Reads (token lookups, permission checks, tenant access) run on
 * any thread under a read lock: a binary search, no allocation, no slow
 * hash. Everything slow or durable runs off the event loops: password
 * verification on one verifier thread (so a guessing flood burns at most
 * one core), mutations on one admin thread that writes each change to the
 * store (WR_DUR_SYNC) before answering. Answers come back through
 * wr_loop_post on the caller's loop, like every core call: the callback
 * runs exactly once, never inside the call; a call that returns an error
 * never runs it.
 *
 * Permissions (RabbitMQ's rabbit_auth_backend_internal): a name is allowed
 * when the regex matches anywhere in it (not anchored: write "^foo$" to
 * anchor); an empty regex means "^$" (matches nothing but the empty name).
 * POSIX extended syntax, compiled once when granted. The default exchange
 * is checked under the name "amq.default", as RabbitMQ does.
 *
 * Bootstrap: a store without a registry gets tenant "default", user
 * "guest" (password "guest", loopback-only, granted ".*" ".*" ".*" on
 * "default") and user "admin" (admin role, no password: tokens only).
 */
#ifndef WR_AUTH_H
#define WR_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wr.h"

typedef struct wr_auth wr_auth_t;

#define WR_AUTH_NAME_MAX 128     /* user names */
#define WR_AUTH_PASS_MAX 1024    /* password bytes */
#define WR_AUTH_REGEX_MAX 1024   /* one permission regex */
#define WR_AUTH_TOKEN_BYTES 32   /* random bytes of a token */
#define WR_AUTH_TOKEN_HEX 64     /* ... as hex digits */
#define WR_AUTH_DEFAULT_TENANT "default"
#define WR_AUTH_GUEST "guest"
#define WR_AUTH_ADMIN "admin"

#define WR_USER_ADMIN 0x01u    /* may do everything, the admin API included */
#define WR_USER_LOOPBACK 0x02u /* may log in with a password only from loopback */

typedef enum {
    WR_PERM_CONFIGURE = 0,
    WR_PERM_WRITE = 1,
    WR_PERM_READ = 2,
} wr_perm_t;

/* Quota keys, in this order (wr_auth_quota_key). */
#define WR_QUOTA_NKEYS 11
extern const char *const wr_quota_keys[WR_QUOTA_NKEYS];

/* Index of a quota key, or -1 if it is not one. */
int wr_auth_quota_key(const char *key, size_t len);

/* Argon2id cost of stored passwords and of every verification. */
typedef struct wr_auth_cost {
    unsigned long long opslimit; /* 0 = built-in default */
    size_t memlimit;             /* 0 = built-in default */
} wr_auth_cost_t;

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

/*
 * Creates the registry: loads every record from the store's metadata key
 * space (prefix "A"), bootstraps an empty one (see above), starts the
 * verifier and admin threads. store may be NULL (nothing is kept; tests).
 * cost may be NULL. Call from the main thread, before serving.
 */
wr_err_t wr_auth_new(wr_store_t *store, const wr_auth_cost_t *cost, wr_auth_t **out /* OUT */);

/* Stops the threads (pending jobs are answered WR_ESHUTDOWN if their loops
 * still run) and frees. NULL-safe. */
void wr_auth_free(wr_auth_t *a);

/* Stops the verifier and admin threads only (queued jobs are answered
 * WR_ESHUTDOWN): call while the reply loops still run, i.e. before
 * wr_core_stop. Idempotent; wr_auth_free calls it too. */
void wr_auth_stop(wr_auth_t *a);

/*
 * The registry front ends use with a core: warrend attaches it once both
 * exist (before the front ends start) and detaches it (NULL) at shutdown.
 * The registry is not inside the core object so that a core without one
 * (unit tests, benchmarks) pays nothing. NULL if none is attached.
 */
void wr_core_set_auth(wr_core_t *core, wr_auth_t *a);
wr_auth_t *wr_core_auth(wr_core_t *core);

/* ------------------------------------------------------------------------ */
/* Reads: any thread, cheap                                                 */

/* A counter that changes with every change of the registry: a front end
 * may keep a permission decision while it stays the same. */
uint64_t wr_auth_generation(wr_auth_t *a);

/* True if the tenant is registered. */
bool wr_auth_tenant_exists(wr_auth_t *a, wr_slice_t tenant);

/* Looks a token up (64 hex digits; anything else is unknown): WR_OK with
 * the user's name (NUL-terminated, user_cap >= WR_AUTH_NAME_MAX + 1) and
 * flags, or WR_ENOTFOUND. No slow hash, no allocation. */
wr_err_t wr_auth_token_user(wr_auth_t *a, const char *token, size_t len, char *user,
                            size_t user_cap, unsigned *flags /* OUT */);

/* The flags of a user: WR_OK or WR_ENOTFOUND. */
wr_err_t wr_auth_user_flags(wr_auth_t *a, wr_slice_t user, unsigned *flags /* OUT */);

/*
 * May `user` use `tenant` at all (AMQP connection.open, a REST request's
 * X-Project-Id)? WR_OK: it has a grant there, or is an admin (admins may
 * use any registered tenant); WR_ENOTFOUND: no such tenant (or user);
 * WR_EDENIED: registered, not granted.
 */
wr_err_t wr_auth_tenant_access(wr_auth_t *a, wr_slice_t user, wr_slice_t tenant);

/* May `user` do `perm` on the resource `name` of `tenant`? Admins may do
 * everything; others need a grant whose regex for perm matches name. */
bool wr_auth_allowed(wr_auth_t *a, wr_slice_t user, wr_slice_t tenant, wr_perm_t perm,
                     wr_slice_t name);

/* True if any of the user's three regexes on tenant matches name (REST
 * queue lists show only what the user can see). */
bool wr_auth_visible(wr_auth_t *a, wr_slice_t user, wr_slice_t tenant, wr_slice_t name);

/*
 * Login fast path (HTTP Basic, AMQP PLAIN/AMQPLAIN): true if (user,
 * password) was verified by the slow hash (wr_auth_login) within the last
 * WR_AUTH_CACHE_MS and the user has not changed since (a password change,
 * new flags or grants, or a delete empty it). The cache keeps a keyed
 * BLAKE2b of the password (the key is random per process and never
 * stored), one entry per user: a wrong password misses and takes the slow
 * path. The caller still applies WR_USER_LOOPBACK to the flags.
 */
#define WR_AUTH_CACHE_MS 60000
bool wr_auth_basic_cached(wr_auth_t *a, wr_slice_t user, wr_slice_t pass, unsigned *flags /* OUT */);

/* Since start: Argon2id verifications done (every wr_auth_login, refused
 * ones too) and logins answered from the cache above. For /metrics. */
void wr_auth_counters(wr_auth_t *a, uint64_t *verifications /* OUT */,
                      uint64_t *cache_hits /* OUT */);

/* A quota setting of a tenant: true and *value if set. */
bool wr_auth_quota_get(wr_auth_t *a, wr_slice_t tenant, int key, uint64_t *value /* OUT */);

/* Listing, under the read lock: fn runs once per item, in name order; it
 * must not call back into the registry. */
typedef struct wr_auth_grant_info {
    const char *user, *tenant;
    const char *re[3]; /* configure, write, read */
} wr_auth_grant_info_t;

typedef struct wr_auth_user_info {
    const char *name;
    unsigned flags;
    bool has_password;
    size_t ngrants;
    const wr_auth_grant_info_t *grants;
} wr_auth_user_info_t;

void wr_auth_tenant_list(wr_auth_t *a, void (*fn)(void *arg, const char *name), void *arg);
void wr_auth_user_list(wr_auth_t *a, void (*fn)(void *arg, const wr_auth_user_info_t *u),
                       void *arg);
/* The grants on one tenant; false if no such tenant. */
bool wr_auth_tenant_grants(wr_auth_t *a, wr_slice_t tenant,
                           void (*fn)(void *arg, const wr_auth_grant_info_t *g), void *arg);
/* The quota settings of a tenant; false if no such tenant. */
bool wr_auth_quota_list(wr_auth_t *a, wr_slice_t tenant,
                        void (*fn)(void *arg, const char *key, uint64_t value), void *arg);

/* ------------------------------------------------------------------------ */
/* Slow and durable calls: answered on `reply`                              */

typedef struct wr_auth_res {
    wr_err_t err;      /* see each call */
    const char *why;   /* a reason for logs and error bodies, or NULL */
    unsigned flags;    /* login: the user's flags */
    const char *token; /* token add: the new token (64 hex digits) */
} wr_auth_res_t;
typedef void (*wr_auth_cb)(void *arg, const wr_auth_res_t *res);

/*
 * Checks a password on the verifier thread. Unknown users, users without a
 * password and wrong passwords all take one Argon2id verification (unknown
 * ones against a dummy hash of the same cost) and answer the same
 * WR_EDENIED "invalid credentials"; a loopback-only user from elsewhere
 * gets WR_EDENIED with its own reason, after the same work. A flood beyond
 * WR_AUTH_QUEUE_MAX waiting verifications is refused at once (WR_EBUSY
 * from the call).
 */
#define WR_AUTH_QUEUE_MAX 256
wr_err_t wr_auth_login(wr_auth_t *a, wr_slice_t user, wr_slice_t pass, bool loopback,
                       wr_loop_t *reply, wr_auth_cb cb, void *arg);

/* Mutations (the admin thread; durable before the answer). The calls check
 * names (WR_EINVAL); answers: WR_OK, WR_EEXISTS, WR_ENOTFOUND, WR_EINVAL
 * (a bad regex, why says which), WR_EIO (the store failed). */
wr_err_t wr_auth_tenant_add(wr_auth_t *a, wr_slice_t name, wr_loop_t *reply, wr_auth_cb cb,
                            void *arg);
/* Removes the tenant, its grants and quotas (queues are the caller's). */
wr_err_t wr_auth_tenant_del(wr_auth_t *a, wr_slice_t name, wr_loop_t *reply, wr_auth_cb cb,
                            void *arg);
/* Adds a user, or replaces the password and flags of an existing one
 * (WR_OK either way; its tokens and grants stay). */
wr_err_t wr_auth_user_put(wr_auth_t *a, wr_slice_t name, wr_slice_t pass, unsigned flags,
                          wr_loop_t *reply, wr_auth_cb cb, void *arg);
/* Removes a user with its grants and tokens. */
wr_err_t wr_auth_user_del(wr_auth_t *a, wr_slice_t name, wr_loop_t *reply, wr_auth_cb cb,
                          void *arg);
/* Sets (or replaces) the user's permissions on the tenant. */
wr_err_t wr_auth_grant(wr_auth_t *a, wr_slice_t user, wr_slice_t tenant, wr_slice_t configure,
                       wr_slice_t write, wr_slice_t read, wr_loop_t *reply, wr_auth_cb cb,
                       void *arg);
wr_err_t wr_auth_revoke(wr_auth_t *a, wr_slice_t user, wr_slice_t tenant, wr_loop_t *reply,
                        wr_auth_cb cb, void *arg);
/* A new token for the user: res->token. */
wr_err_t wr_auth_token_add(wr_auth_t *a, wr_slice_t user, wr_loop_t *reply, wr_auth_cb cb,
                           void *arg);
wr_err_t wr_auth_token_del(wr_auth_t *a, wr_slice_t token, wr_loop_t *reply, wr_auth_cb cb,
                           void *arg);
/* key: an index from wr_auth_quota_key. */
wr_err_t wr_auth_quota_set(wr_auth_t *a, wr_slice_t tenant, int key, uint64_t value,
                           wr_loop_t *reply, wr_auth_cb cb, void *arg);

/*
 * Registers a token whose value the caller knows (warrend's DATA/admin.token)
 * for `user`, synchronously (waits for the store). Idempotent. Not on an
 * event loop.
 */
wr_err_t wr_auth_token_register(wr_auth_t *a, wr_slice_t user, const char *token_hex);

/* 32 random bytes as 64 lowercase hex digits and a NUL. */
void wr_auth_token_new(char out[WR_AUTH_TOKEN_HEX + 1]);

/* Names of tenants and users: 1..WR_NAME_MAX (users: WR_AUTH_NAME_MAX)
 * bytes of [A-Za-z0-9._~@-] (safe in a URL path and an X-Project-Id). */
bool wr_auth_name_ok(wr_slice_t name, size_t max);

#endif
