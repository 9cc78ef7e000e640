/*
 * test_exchange.c - exchanges and bindings: topic and headers matching
 * tables, exchange declare equivalence, built-ins, delete rules, binding
 * errors, auto-delete, and bindings removed with their queue.
 */
#include "helpers.h"

#include "core/core_int.h"

TestSuite(exchange, .init = t_setup, .fini = t_teardown, .timeout = 20);

/* ------------------------------------------------------------------------ */
/* Topic matching                                                           */

static bool topic(const char *pattern, const char *key)
{
    wr_slice_t pw[WR__WORDS_MAX], kw[WR__WORDS_MAX];
    int np = wr__split_words(S(pattern), pw), nk = wr__split_words(S(key), kw);
    cr_assert(np >= 0 && nk >= 0);
    return wr__topic_match(pw, (size_t)np, kw, (size_t)nk);
}

Test(exchange, topic_table)
{
    static const struct {
        const char *pat, *key;
        bool match;
    } cases[] = {
        {"a.b.c", "a.b.c", true},
        {"a.b.c", "a.b", false},
        {"a.b", "a.b.c", false},
        {"a.*.c", "a.b.c", true},
        {"a.*.c", "a.c", false},
        {"a.*.c", "a.b.b.c", false},
        {"*", "a", true},
        {"*", "", false},
        {"*", "a.b", false},
        {"#", "", true},
        {"#", "a", true},
        {"#", "a.b.c", true},
        {"a.#", "a", true},
        {"a.#", "a.b.c", true},
        {"a.#", "b.a", false},
        {"#.c", "c", true},
        {"#.c", "a.b.c", true},
        {"#.c", "a.b.c.d", false},
        {"a.#.c", "a.c", true},
        {"a.#.c", "a.x.y.c", true},
        {"a.#.c", "a.x.y.d", false},
        {"#.a.#", "a", true},
        {"#.a.#", "x.a.y", true},
        {"#.a.#", "x.b.y", false},
        {"*.#", "", false},
        {"*.#", "a", true},
        {"#.*", "a.b", true},
        {"#.#", "", true},
        {"a.*.#", "a.b", true},
        {"a.*.#", "a", false},
        {"*.*.*", "a.b.c", true},
        {"*.*.*", "a.b", false},
        {"", "", true},
        {"", "a", false},
        {"a", "", false},
        {"a.", "a.", true},   /* trailing empty word */
        {"a.*", "a.", true},  /* '*' matches the empty word */
        {"a", "a.", false},
        {"#.b.#.d", "a.b.c.b.d", true},
        {"#.b.#.d", "a.b.c.b.e", false},
        {"stock.#.nyse", "stock.usd.nyse", true},
        {"stock.#.nyse", "stock.nyse", true},
        {"a.b*", "a.b", false}, /* wildcards are whole words only */
        {"a.b*", "a.b*", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(topic(cases[i].pat, cases[i].key), cases[i].match, "'%s' ~ '%s'",
                     cases[i].pat, cases[i].key);
}

Test(exchange, split_words)
{
    wr_slice_t w[WR__WORDS_MAX];
    char big[600];

    cr_assert_eq(wr__split_words(S(""), w), 0);
    cr_assert_eq(wr__split_words(S("."), w), 2);
    cr_assert_eq(w[0].len, 0);
    cr_assert_eq(wr__split_words(S("ab.c"), w), 2);
    cr_assert_eq(w[0].len, 2);
    cr_assert_eq(w[1].len, 1);
    memset(big, '.', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(wr__split_words(S(big), w), -1);
}

/* ------------------------------------------------------------------------ */
/* Headers matching                                                         */

static wr_header_t hs(const char *k, const char *v)
{
    return (wr_header_t){.key = S(k), .kind = WR_HDR_STR, .v.s = S(v)};
}
static wr_header_t hi(const char *k, int64_t v)
{
    return (wr_header_t){.key = S(k), .kind = WR_HDR_INT, .v.i = v};
}
static wr_header_t hf(const char *k, double v)
{
    return (wr_header_t){.key = S(k), .kind = WR_HDR_FLOAT, .v.f = v};
}
static wr_header_t hb(const char *k, bool v)
{
    return (wr_header_t){.key = S(k), .kind = WR_HDR_BOOL, .v.b = v};
}
static wr_header_t hv(const char *k)
{
    return (wr_header_t){.key = S(k), .kind = WR_HDR_VOID};
}

static bool hmatch(const wr_header_t *args, size_t na, const wr_header_t *h, size_t nh)
{
    uint8_t mode;
    cr_assert(wr__headers_mode(args, na, &mode));
    return wr__headers_match(args, na, mode, h, nh);
}

Test(exchange, headers_table)
{
    wr_header_t msg[] = {hs("format", "pdf"), hi("size", 10), hf("ratio", 0.5), hb("ok", true),
                         hs("x-trace", "1")};
    size_t nm = sizeof(msg) / sizeof(msg[0]);

    /* all (default) */
    wr_header_t a1[] = {hs("format", "pdf"), hi("size", 10)};
    cr_expect(hmatch(a1, 2, msg, nm));
    wr_header_t a2[] = {hs("format", "pdf"), hi("size", 11)};
    cr_expect_not(hmatch(a2, 2, msg, nm));
    wr_header_t a3[] = {hs("x-match", "all"), hs("format", "pdf"), hs("missing", "x")};
    cr_expect_not(hmatch(a3, 3, msg, nm));
    /* any */
    wr_header_t a4[] = {hs("x-match", "any"), hs("format", "doc"), hi("size", 10)};
    cr_expect(hmatch(a4, 3, msg, nm));
    wr_header_t a5[] = {hs("x-match", "any"), hs("format", "doc"), hi("size", 9)};
    cr_expect_not(hmatch(a5, 3, msg, nm));
    /* Kinds must agree: INT 10 is not STR "10", FLOAT 10.0 is not INT 10. */
    wr_header_t a6[] = {hs("size", "10")};
    cr_expect_not(hmatch(a6, 1, msg, nm));
    wr_header_t a7[] = {hf("size", 10.0)};
    cr_expect_not(hmatch(a7, 1, msg, nm));
    wr_header_t a8[] = {hf("ratio", 0.5), hb("ok", true)};
    cr_expect(hmatch(a8, 2, msg, nm));
    wr_header_t a9[] = {hb("ok", false)};
    cr_expect_not(hmatch(a9, 1, msg, nm));
    /* VOID: presence only. */
    wr_header_t a10[] = {hv("format")};
    cr_expect(hmatch(a10, 1, msg, nm));
    wr_header_t a11[] = {hv("nothere")};
    cr_expect_not(hmatch(a11, 1, msg, nm));
    /* x- keys are ignored... */
    wr_header_t a12[] = {hs("format", "pdf"), hs("x-trace", "other")};
    cr_expect(hmatch(a12, 2, msg, nm));
    /* ...unless -with-x. */
    wr_header_t a13[] = {hs("x-match", "all-with-x"), hs("format", "pdf"), hs("x-trace", "other")};
    cr_expect_not(hmatch(a13, 3, msg, nm));
    wr_header_t a14[] = {hs("x-match", "any-with-x"), hs("x-trace", "1")};
    cr_expect(hmatch(a14, 2, msg, nm));
    /* No arguments: all matches everything, any nothing. */
    cr_expect(hmatch(NULL, 0, msg, nm));
    wr_header_t a15[] = {hs("x-match", "any")};
    cr_expect_not(hmatch(a15, 1, msg, nm));
    /* No message headers. */
    cr_expect_not(hmatch(a1, 2, NULL, 0));
    cr_expect(hmatch(NULL, 0, NULL, 0));

    uint8_t mode;
    wr_header_t bad[] = {hs("x-match", "some")};
    cr_expect_not(wr__headers_mode(bad, 1, &mode));
    wr_header_t bad2[] = {hi("x-match", 1)};
    cr_expect_not(wr__headers_mode(bad2, 1, &mode));
}

/* ------------------------------------------------------------------------ */
/* Declare and delete                                                       */

Test(exchange, declare_equivalence)
{
    bool created;

    cr_assert_eq(t_exdecl_f("t", "ex1", "topic", WR_EXCH_DURABLE, &created), WR_OK);
    cr_assert(created);
    cr_assert_eq(t_exdecl_f("t", "ex1", "topic", WR_EXCH_DURABLE, &created), WR_OK);
    cr_assert_not(created);
    cr_assert_eq(t_exdecl("t", "ex1", "direct", WR_EXCH_DURABLE), WR_EEXISTS);
    cr_assert_eq(t_exdecl("t", "ex1", "topic", 0), WR_EEXISTS);
    cr_assert_eq(t_exdecl("t", "ex1", "topic", WR_EXCH_DURABLE | WR_EXCH_AUTO_DELETE),
                 WR_EEXISTS);
    cr_assert_eq(t_exdecl("t", "ex1", "topic", WR_EXCH_DURABLE | WR_EXCH_INTERNAL), WR_EEXISTS);
    /* Passive ignores type and flags. */
    cr_assert_eq(t_exdecl("t", "ex1", "", WR_EXCH_PASSIVE), WR_OK);
    cr_assert_eq(t_exdecl("t", "nope", "", WR_EXCH_PASSIVE), WR_ENOTFOUND);
    /* Tenants are separate. */
    cr_assert_eq(t_exdecl("u", "ex1", "", WR_EXCH_PASSIVE), WR_ENOTFOUND);
    cr_assert_eq(t_exdecl("u", "ex1", "fanout", 0), WR_OK);

    /* Unknown type: refused by the call. */
    t_call_t *c = t_call_new();
    cr_assert_eq(wr_exchange_declare(T.core, S("t"), S("x"), S("bogus"), 0, NULL, T.loop,
                                     t_on_count, c),
                 WR_EINVAL);
    cr_assert_eq(wr_exchange_declare(T.core, S("t"), S("x"), S("x-delayed"), 0, NULL, T.loop,
                                     t_on_count, c),
                 WR_EINVAL);
    t_call_free(c);
}

Test(exchange, builtins)
{
    static const char *const names[] = {"amq.direct", "amq.fanout", "amq.topic", "amq.headers",
                                        "amq.match"};
    static const char *const types[] = {"direct", "fanout", "topic", "headers", "headers"};

    for (int i = 0; i < 5; i++) {
        cr_assert_eq(t_exdecl("fresh", names[i], "", WR_EXCH_PASSIVE), WR_OK, "%s", names[i]);
        cr_assert_eq(t_exdecl("fresh", names[i], types[i], WR_EXCH_DURABLE), WR_OK);
        cr_assert_eq(t_exdecl("fresh", names[i], types[i], 0), WR_EEXISTS);
        cr_assert_eq(t_exdel("fresh", names[i], 0), WR_EDENIED);
    }
    cr_assert_eq(t_exdecl("fresh", "", "", WR_EXCH_PASSIVE), WR_OK);
    cr_assert_eq(t_exdecl("fresh", "", "direct", WR_EXCH_DURABLE), WR_EDENIED);
    cr_assert_eq(t_exdel("fresh", "", 0), WR_EDENIED);
    cr_assert_eq(t_exdecl("fresh", "amq.mine", "direct", 0), WR_EDENIED);
    cr_assert_eq(t_exdecl("fresh", "amq.mine", "direct", WR_EXCH_PASSIVE), WR_ENOTFOUND);

    /* The default exchange cannot be bound to or from. */
    cr_assert_eq(t_declare("fresh", "q", NULL), WR_OK);
    cr_assert_eq(t_qbind("fresh", "q", "", "q"), WR_EDENIED);
    cr_assert_eq(t_exdecl("fresh", "e", "direct", 0), WR_OK);
    cr_assert_eq(t_exbind(true, "fresh", "", "e", "k"), WR_EDENIED);
    cr_assert_eq(t_exbind(true, "fresh", "e", "", "k"), WR_EDENIED);
}

Test(exchange, delete_rules)
{
    cr_assert_eq(t_exdel("t", "missing", 0), WR_ENOTFOUND);
    cr_assert_eq(t_exdecl("t", "d1", "direct", 0), WR_OK);
    cr_assert_eq(t_declare("t", "q1", NULL), WR_OK);
    cr_assert_eq(t_qbind("t", "q1", "d1", "k"), WR_OK);
    cr_assert_eq(t_exdel("t", "d1", WR_EXCH_IF_UNUSED), WR_EBUSY);
    cr_assert_eq(t_qunbind("t", "q1", "d1", "k"), WR_OK);
    cr_assert_eq(t_exdel("t", "d1", WR_EXCH_IF_UNUSED), WR_OK);
    cr_assert_eq(t_exdecl("t", "d1", "", WR_EXCH_PASSIVE), WR_ENOTFOUND);

    /* Plain delete takes the bindings with it. */
    cr_assert_eq(t_exdecl("t", "d2", "fanout", 0), WR_OK);
    cr_assert_eq(t_qbind("t", "q1", "d2", ""), WR_OK);
    cr_assert_eq(t_exdel("t", "d2", 0), WR_OK);
    cr_assert_eq(t_exdel("t", "d2", 0), WR_ENOTFOUND);
    /* Redeclared, it starts with no bindings: if_unused passes. */
    cr_assert_eq(t_exdecl("t", "d2", "fanout", 0), WR_OK);
    cr_assert_eq(t_exdel("t", "d2", WR_EXCH_IF_UNUSED), WR_OK);
}

/* ------------------------------------------------------------------------ */
/* Bindings                                                                 */

Test(exchange, bind_errors_and_idempotence)
{
    uint64_t n;

    cr_assert_eq(t_exdecl("t", "e", "direct", 0), WR_OK);
    cr_assert_eq(t_qbind("t", "noq", "e", "k"), WR_ENOTFOUND);
    cr_assert_eq(t_declare("t", "q", NULL), WR_OK);
    cr_assert_eq(t_qbind("t", "q", "noex", "k"), WR_ENOTFOUND);
    cr_assert_eq(t_qunbind("t", "q", "noex", "k"), WR_ENOTFOUND);
    cr_assert_eq(t_qunbind("t", "noq", "e", "k"), WR_ENOTFOUND);
    cr_assert_eq(t_exbind(true, "t", "noex", "e", "k"), WR_ENOTFOUND);
    cr_assert_eq(t_exbind(true, "t", "e", "noex", "k"), WR_ENOTFOUND);

    cr_assert_eq(t_qbind_h(true, "t", "q", "e", "k", NULL, 0, &n), WR_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(t_qbind_h(true, "t", "q", "e", "k", NULL, 0, &n), WR_OK);
    cr_assert_eq(n, 0);
    /* Different args make a different binding. */
    wr_header_t a[] = {hs("x-match", "any"), hi("n", 1)};
    cr_assert_eq(t_qbind_h(true, "t", "q", "e", "k", a, 2, &n), WR_OK);
    cr_assert_eq(n, 1);
    /* Same args in another order: the same binding. */
    wr_header_t b[] = {hi("n", 1), hs("x-match", "any")};
    cr_assert_eq(t_qbind_h(true, "t", "q", "e", "k", b, 2, &n), WR_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(t_qbind_h(false, "t", "q", "e", "k", b, 2, &n), WR_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(t_qbind_h(false, "t", "q", "e", "k", NULL, 0, &n), WR_OK);
    cr_assert_eq(n, 1);
    /* Unbinding a missing binding is fine. */
    cr_assert_eq(t_qbind_h(false, "t", "q", "e", "k", NULL, 0, &n), WR_OK);
    cr_assert_eq(n, 0);

    /* Bad x-match: the call refuses it. */
    t_call_t *c = t_call_new();
    wr_header_t bad[] = {hs("x-match", "most")};
    cr_assert_eq(wr_queue_bind(T.core, S("t"), S("q"), S("e"), S("k"), bad, 1, 0, T.loop,
                               t_on_count, c),
                 WR_EINVAL);
    t_call_free(c);
}

Test(exchange, auto_delete_on_last_unbind)
{
    cr_assert_eq(t_exdecl("t", "ad", "direct", WR_EXCH_AUTO_DELETE), WR_OK);
    cr_assert_eq(t_declare("t", "q1", NULL), WR_OK);
    cr_assert_eq(t_declare("t", "q2", NULL), WR_OK);
    /* Never bound: stays. */
    cr_assert_eq(t_exdecl("t", "ad", "", WR_EXCH_PASSIVE), WR_OK);
    cr_assert_eq(t_qbind("t", "q1", "ad", "a"), WR_OK);
    cr_assert_eq(t_qbind("t", "q2", "ad", "b"), WR_OK);
    cr_assert_eq(t_qunbind("t", "q1", "ad", "a"), WR_OK);
    cr_assert_eq(t_exdecl("t", "ad", "", WR_EXCH_PASSIVE), WR_OK);
    cr_assert_eq(t_qunbind("t", "q2", "ad", "b"), WR_OK);
    cr_assert_eq(t_exdecl("t", "ad", "", WR_EXCH_PASSIVE), WR_ENOTFOUND);
}

Test(exchange, queue_delete_removes_bindings)
{
    t_call_t *c;

    /* Many queues so both shards own some. */
    cr_assert_eq(t_exdecl("t", "ad", "topic", WR_EXCH_AUTO_DELETE), WR_OK);
    cr_assert_eq(t_exdecl("t", "keep", "fanout", 0), WR_OK);
    for (int i = 0; i < 6; i++) {
        char q[16];
        snprintf(q, sizeof(q), "q%d", i);
        cr_assert_eq(t_declare("t", q, NULL), WR_OK);
        cr_assert_eq(t_qbind("t", q, "ad", "a.#"), WR_OK);
        cr_assert_eq(t_qbind("t", q, "keep", ""), WR_OK);
    }
    for (int i = 0; i < 6; i++) {
        char q[16];
        snprintf(q, sizeof(q), "q%d", i);
        cr_assert_eq(t_exdecl("t", "ad", "", WR_EXCH_PASSIVE), WR_OK);
        c = t_qdelete("t", q, 0);
        cr_assert_eq(c->err, WR_OK);
        t_call_free(c);
    }
    /* The last queue's deletion took the last binding: gone already when
     * the delete answered. */
    cr_assert_eq(t_exdecl("t", "ad", "", WR_EXCH_PASSIVE), WR_ENOTFOUND);
    cr_assert_eq(t_exdel("t", "keep", WR_EXCH_IF_UNUSED), WR_OK);
}

Test(exchange, exchange_to_exchange_and_cascade)
{
    /* src -> mid (auto_delete) -> q. Deleting q removes mid's only
     * binding: mid goes, and with it the binding src -> mid. */
    cr_assert_eq(t_exdecl("t", "src", "fanout", 0), WR_OK);
    cr_assert_eq(t_exdecl("t", "mid", "fanout", WR_EXCH_AUTO_DELETE), WR_OK);
    cr_assert_eq(t_declare("t", "q", NULL), WR_OK);
    cr_assert_eq(t_exbind(true, "t", "mid", "src", ""), WR_OK);
    cr_assert_eq(t_qbind("t", "q", "mid", ""), WR_OK);
    cr_assert_eq(t_exdel("t", "src", WR_EXCH_IF_UNUSED), WR_EBUSY);
    t_call_free(t_qdelete("t", "q", 0));
    cr_assert_eq(t_exdecl("t", "mid", "", WR_EXCH_PASSIVE), WR_ENOTFOUND);
    cr_assert_eq(t_exdel("t", "src", WR_EXCH_IF_UNUSED), WR_OK);

    /* Deleting a destination exchange removes the bindings to it. */
    cr_assert_eq(t_exdecl("t", "a", "direct", 0), WR_OK);
    cr_assert_eq(t_exdecl("t", "b", "direct", 0), WR_OK);
    cr_assert_eq(t_exbind(true, "t", "b", "a", "k"), WR_OK);
    cr_assert_eq(t_exdel("t", "a", WR_EXCH_IF_UNUSED), WR_EBUSY);
    cr_assert_eq(t_exdel("t", "b", 0), WR_OK);
    cr_assert_eq(t_exdel("t", "a", WR_EXCH_IF_UNUSED), WR_OK);

    /* Self-binding and a cycle can be made and deleted. */
    cr_assert_eq(t_exdecl("t", "c1", "topic", 0), WR_OK);
    cr_assert_eq(t_exdecl("t", "c2", "topic", 0), WR_OK);
    cr_assert_eq(t_exbind(true, "t", "c1", "c1", "#"), WR_OK);
    cr_assert_eq(t_exbind(true, "t", "c2", "c1", "#"), WR_OK);
    cr_assert_eq(t_exbind(true, "t", "c1", "c2", "#"), WR_OK);
    cr_assert_eq(t_exbind(false, "t", "c1", "c1", "#"), WR_OK);
    cr_assert_eq(t_exdel("t", "c1", 0), WR_OK);
    cr_assert_eq(t_exdel("t", "c2", WR_EXCH_IF_UNUSED), WR_OK);
}

Test(exchange, single_shard_core)
{
    wr_core_cfg_t cfg = {.shards = 1};
    t_teardown();
    t_setup_cfg(&cfg);
    cr_assert_eq(t_exdecl("t", "e", "direct", 0), WR_OK);
    cr_assert_eq(t_declare("t", "q", NULL), WR_OK);
    cr_assert_eq(t_qbind("t", "q", "e", "k"), WR_OK);
    cr_assert_eq(t_exdel("t", "e", WR_EXCH_IF_UNUSED), WR_EBUSY);
    t_call_free(t_qdelete("t", "q", 0));
    cr_assert_eq(t_exdel("t", "e", WR_EXCH_IF_UNUSED), WR_OK);
}
