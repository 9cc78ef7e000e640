/*
 * evhtp_canned.c - the floor of warren's HTTP stack: libevhtp, set up as
 * warrend sets it up (one event base and one evhtp per thread, all bound to
 * the port with SO_REUSEPORT, TCP_NODELAY), answering every request with
 * canned bytes and doing nothing else. bench/ceiling.sh runs it beside nginx
 * and warren: what warren loses to it is warren's own work, what it loses to
 * nginx is the library's.
 *
 *   evhtp_canned PORT THREADS POST_HEAD POST_BODY OTHER_HEAD OTHER_BODY [json]
 *
 * A HEAD file is an answer's status line and header lines as curl -D saves
 * them; Content-Length is left to evhtp. POST gets the POST answer, any
 * other method the other one. Runs until killed.
 *
 * With "json" a POST also costs what jansson costs warren for it, the other
 * library the project must use: the request document is parsed with the
 * flags warren parses it with, and each message's body is written back out
 * compact, as warren stores it. Then the floor includes both libraries.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <evhtp/evhtp.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_THREADS 64
#define MAX_HEADERS 16
#define MAX_FILE (1u << 20)

typedef struct {
    int status;
    int nheaders;
    char *name[MAX_HEADERS], *value[MAX_HEADERS];
    char *body;
    size_t body_len;
} answer_t;

static answer_t post_answer, other_answer;
static uint16_t port;
static int with_json;

/* Parse the document and write each message's body out compact (the flags
 * of warren's frontends/rest/json.c). The answer stays canned. */
static void json_work(evhtp_request_t *req)
{
    static _Thread_local char out[1u << 18];
    size_t n = evbuffer_get_length(req->buffer_in);
    const char *p = n ? (const char *)evbuffer_pullup(req->buffer_in, -1) : NULL;
    json_error_t e;
    json_t *doc, *msgs, *m;
    size_t i;

    if (!p)
        return;
    doc = json_loadb(p, n, JSON_ALLOW_NUL, &e);
    msgs = json_object_get(doc, "messages");
    json_array_foreach(msgs, i, m)
        json_dumpb(json_object_get(m, "body"), out, sizeof(out),
                   JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    json_decref(doc);
}

static int slurp(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f)
        return -1;
    buf = malloc(MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        return -1;
    }
    n = fread(buf, 1, MAX_FILE, f);
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* The status line, then "Name: value" lines up to the blank one. */
static int load_answer(const char *head_path, const char *body_path, answer_t *a)
{
    char *head, *line, *save = NULL;
    size_t len;

    if (slurp(head_path, &head, &len) != 0 || slurp(body_path, &a->body, &a->body_len) != 0)
        return -1;
    line = strtok_r(head, "\r\n", &save);
    if (!line || sscanf(line, "HTTP/%*s %d", &a->status) != 1)
        return -1;
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        char *colon = strchr(line, ':');

        if (!colon || a->nheaders == MAX_HEADERS)
            return -1;
        *colon = '\0';
        if (strcasecmp(line, "Content-Length") == 0)
            continue;
        a->name[a->nheaders] = line;
        a->value[a->nheaders] = colon + 1 + strspn(colon + 1, " ");
        a->nheaders++;
    }
    return 0; /* head stays allocated: the headers point into it */
}

static void on_request(evhtp_request_t *req, void *arg)
{
    const answer_t *a = req->method == htp_method_POST ? &post_answer : &other_answer;

    (void)arg;
    if (with_json && req->method == htp_method_POST)
        json_work(req);
    for (int i = 0; i < a->nheaders; i++)
        evhtp_headers_add_header(req->headers_out, evhtp_header_new(a->name[i], a->value[i], 0, 0));
    evbuffer_add_reference(req->buffer_out, a->body, a->body_len, NULL, NULL);
    evhtp_send_reply(req, (evhtp_res)a->status);
}

static void *serve(void *arg)
{
    struct event_base *base = event_base_new();
    evhtp_t *htp = base ? evhtp_new(base, NULL) : NULL;

    (void)arg;
    if (!htp) {
        fprintf(stderr, "evhtp_canned: out of memory\n");
        exit(1);
    }
    evhtp_enable_flag(htp, EVHTP_FLAG_ENABLE_REUSEPORT | EVHTP_FLAG_ENABLE_NODELAY);
    evhtp_set_gencb(htp, on_request, NULL);
    if (evhtp_bind_socket(htp, "127.0.0.1", port, 1024) != 0) {
        fprintf(stderr, "evhtp_canned: bind 127.0.0.1:%u: %s\n", port, strerror(errno));
        exit(1);
    }
    event_base_dispatch(base);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t threads[MAX_THREADS];
    int n;

    if (argc != 7 && !(argc == 8 && strcmp(argv[7], "json") == 0)) {
        fprintf(stderr, "usage: evhtp_canned PORT THREADS POST_HEAD POST_BODY OTHER_HEAD OTHER_BODY [json]\n");
        return 2;
    }
    with_json = argc == 8;
    port = (uint16_t)atoi(argv[1]);
    n = atoi(argv[2]);
    if (port == 0 || n < 1 || n > MAX_THREADS) {
        fprintf(stderr, "evhtp_canned: bad port or thread count\n");
        return 2;
    }
    if (load_answer(argv[3], argv[4], &post_answer) != 0 || load_answer(argv[5], argv[6], &other_answer) != 0) {
        fprintf(stderr, "evhtp_canned: cannot read the canned answers\n");
        return 2;
    }
    for (int i = 0; i < n; i++)
        if (pthread_create(&threads[i], NULL, serve, NULL) != 0) {
            fprintf(stderr, "evhtp_canned: pthread_create failed\n");
            return 1;
        }
    pthread_join(threads[0], NULL);
    return 0;
}
