/*
 * test_rest_routes.c - path matching and the method table
 * (frontends/rest/routes.c).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "frontends/rest/rest_int.h"

static wr_rest_route_id_t route(const char *p, wr_rest_match_t *m)
{
    wr_rest_route_match(p, strlen(p), m);
    return m->route;
}

Test(rest_routes, every_route)
{
    static const struct {
        const char *path;
        wr_rest_route_id_t r;
    } t[] = {
        {"/", WR_RT_VERSIONS},
        {"/metrics", WR_RT_METRICS},
        {"/v2", WR_RT_HOME},
        {"/v2/", WR_RT_HOME},
        {"/v2/ping", WR_RT_PING},
        {"/v2/health", WR_RT_HEALTH},
        {"/v2/queues", WR_RT_QUEUES},
        {"/v2/queues/", WR_RT_QUEUES},
        {"/v2/queues/q", WR_RT_QUEUE},
        {"/v2/queues/q/stats", WR_RT_STATS},
        {"/v2/queues/q/purge", WR_RT_PURGE},
        {"/v2/queues/q/share", WR_RT_SHARE},
        {"/v2/queues/q/messages", WR_RT_MESSAGES},
        {"/v2/queues/q/messages/", WR_RT_MESSAGES},
        {"/v2/queues/q/messages/abc", WR_RT_MESSAGE},
        {"/v2/queues/q/claims", WR_RT_CLAIMS},
        {"/v2/queues/q/claims/abc", WR_RT_CLAIM},
        {"/v2/queues/q/subscriptions", WR_RT_SUBS},
        {"/v2/queues/q/subscriptions/s", WR_RT_SUB},
        {"/v2/queues/q/subscriptions/s/confirm", WR_RT_SUB_CONFIRM},
    };
    wr_rest_match_t m;

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        cr_assert_eq(route(t[i].path, &m), t[i].r, "%s", t[i].path);
}

Test(rest_routes, unknown_paths)
{
    const char *bad[] = {"",
                         "v2",
                         "/v1/queues",
                         "/v2/nope",
                         "/v2//queues",
                         "/v2/queues//messages",
                         "/v2/queues/q/nope",
                         "/v2/queues/q/messages/a/b",
                         "/v2/queues/q/stats/x",
                         "/v2/queues/q/claims/a/b",
                         "/v2/queues/q/subscriptions/s/nope",
                         "/metrics/x",
                         "/v2/queues/q/messages/a/b/c/d/e/f"};
    wr_rest_match_t m;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_not(wr_rest_route_match(bad[i], strlen(bad[i]), &m), "%s", bad[i]);
        cr_assert_eq(m.route, WR_RT_NONE);
    }
}

Test(rest_routes, parameters)
{
    wr_rest_match_t m;

    cr_assert_eq(route("/v2/queues/fizbit/messages/0123/", &m), WR_RT_MESSAGE);
    cr_assert_eq(m.queue_len, 6);
    cr_assert(memcmp(m.queue, "fizbit", 6) == 0);
    cr_assert_eq(m.id_len, 4);
    cr_assert(memcmp(m.id, "0123", 4) == 0);
    cr_assert_eq(route("/v2/queues/q", &m), WR_RT_QUEUE);
    cr_assert_null(m.id);
}

Test(rest_routes, methods_and_allow)
{
    cr_assert_not_null(wr_rest_route_handler(WR_RT_QUEUE, WR_REST_PUT));
    cr_assert_not_null(wr_rest_route_handler(WR_RT_QUEUE, WR_REST_PATCH));
    cr_assert_null(wr_rest_route_handler(WR_RT_QUEUE, WR_REST_POST));
    cr_assert_null(wr_rest_route_handler(WR_RT_QUEUE, WR_REST_OTHER));
    cr_assert_not_null(wr_rest_route_handler(WR_RT_PING, WR_REST_HEAD));
    cr_assert_null(wr_rest_route_handler(WR_RT_QUEUES, WR_REST_HEAD));
    cr_assert_null(wr_rest_route_handler(WR_RT_CLAIMS, WR_REST_GET));
    cr_assert_null(wr_rest_route_handler(WR_RT_NONE, WR_REST_GET));
    cr_assert_str_eq(wr_rest_route_allow(WR_RT_MESSAGES), "GET, POST, DELETE");
    /* Every route serves at least one method, and Allow lists exactly those. */
    for (int r = 0; r < WR_RT_COUNT; r++) {
        const char *allow = wr_rest_route_allow((wr_rest_route_id_t)r);
        static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"};
        int served = 0;

        for (int mth = 0; mth < WR_REST_OTHER; mth++) {
            bool has = wr_rest_route_handler((wr_rest_route_id_t)r, (wr_rest_method_t)mth) != NULL;
            char word[16];
            const char *p;
            bool listed = false;

            snprintf(word, sizeof(word), "%s", names[mth]);
            for (p = strstr(allow, word); p; p = strstr(p + 1, word))
                if ((p == allow || p[-1] == ' ') && (p[strlen(word)] == ',' || !p[strlen(word)]))
                    listed = true;
            cr_assert_eq(has, listed, "route %d method %s", r, word);
            served += has;
        }
        cr_assert(served > 0, "route %d", r);
    }
}
