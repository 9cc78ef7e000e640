/*
 * deadletter.c - messages leaving a queue through its dead-letter exchange
 * (rejected without requeue, expired, or pushed out by a length limit).
 *
 * Layout: gathering (the props hook, grouping); publishing at the end of
 * the shard task; teardown.
 *
 * A message is gathered where it leaves (before its queue frees it): the
 * props hook of wr_core_cfg_t runs then, on the shard, with everything it
 * needs to write AMQP's x-death headers. Messages of one queue going to the
 * same exchange with the same key form a group, and each group goes out as
 * one internal routed publish (route.c) when the task ends (with the store
 * deletes, wr__persist_flush): an expiry pass over a thousand messages is a
 * publish of a thousand messages, not a thousand publishes.
 *
 * Cycles: a message that expires or overflows is never routed back into
 * the queue it left (RabbitMQ drops such cycles; with a rejection in
 * between, as in retry loops, it may come back).
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

typedef struct wr__dlent {
    wr_body_t *body;
    bool persistent;
    uint8_t prio;
} wr__dlent_t;

typedef struct wr__dlgroup {
    wr_body_t *route; /* props = dead-letter exchange, body = routing key */
    uint64_t qhash;
    bool skip;        /* not back into the source queue */
    size_t first, n;  /* entries */
    size_t tlen, klen;
    char *key;        /* the source queue: tenant '\0' name */
} wr__dlgroup_t;

static bool slice_eq(wr_slice_t a, wr_slice_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

void wr__dl_add(wr__shard_t *sh, wr__queue_t *q, wr_body_t *body, wr_body_t *route,
                bool persistent, uint8_t prio, uint32_t delivery_count, const char *reason)
{
    const wr_queue_attrs_t *a = &q->attrs;
    wr_slice_t name = wr__queue_name(q), ex = {"", 0}, key = name;
    wr_slice_t dlx = {a->dlx, a->dlx_len}, dlkey;
    bool skip = strcmp(reason, WR__DL_REJECTED) != 0;
    wr__dlgroup_t *g = sh->ndlg ? &sh->dlg[sh->ndlg - 1] : NULL;
    wr_body_t *out = NULL;

    if (!a->dlx_set)
        return;
    if (route) {
        ex = (wr_slice_t){route->data, route->props_len};
        key = (wr_slice_t){wr_body_bytes(route), route->body_len};
    }
    dlkey = a->dlrk_set ? (wr_slice_t){a->dlrk, a->dlrk_len} : key;
    if (sh->core->dl_props) {
        wr_deadletter_info_t info = {.reason = reason,
                                     .tenant = {q->key, q->tlen},
                                     .queue = name,
                                     .exchange = ex,
                                     .routing_key = key,
                                     .dl_exchange = dlx,
                                     .dl_routing_key = dlkey,
                                     .delivery_count = delivery_count};
        out = sh->core->dl_props(sh->core->dl_ctx, body, &info);
    }
    if (!out)
        out = wr_body_ref(body);

    /* Same queue, same destination, same cycle rule: same group. */
    if (!g || g->qhash != q->hash || g->klen != q->klen || memcmp(g->key, q->key, q->klen) ||
        g->skip != skip ||
        !slice_eq(dlkey, (wr_slice_t){wr_body_bytes(g->route), g->route->body_len}) ||
        g->first + g->n != sh->ndle) {
        if (sh->ndlg == sh->dlg_cap) {
            sh->dlg_cap = sh->dlg_cap ? sh->dlg_cap * 2 : 8;
            sh->dlg = wr__xrealloc(sh->dlg, sh->dlg_cap * sizeof(*sh->dlg));
        }
        g = &sh->dlg[sh->ndlg++];
        g->route = wr_body_new(dlx, dlkey);
        g->qhash = q->hash;
        g->skip = skip;
        g->first = sh->ndle;
        g->n = 0;
        g->tlen = q->tlen;
        g->klen = q->klen;
        g->key = wr__xmalloc(q->klen);
        memcpy(g->key, q->key, q->klen);
    }
    if (sh->ndle == sh->dle_cap) {
        sh->dle_cap = sh->dle_cap ? sh->dle_cap * 2 : 64;
        sh->dle = wr__xrealloc(sh->dle, sh->dle_cap * sizeof(*sh->dle));
    }
    sh->dle[sh->ndle++] = (wr__dlent_t){out, persistent, prio};
    g->n++;
}

void wr__dl_msg(wr__shard_t *sh, wr__queue_t *q, const wr__msg_t *m, const char *reason)
{
    wr__dl_add(sh, q, wr__msg_body(m), wr__msg_route(m), (m->flags & WR__MSG_PERSISTENT) != 0,
               WR__MSG_PRIO(m), m->claim_count, reason);
}

void wr__dl_flush(wr__shard_t *sh)
{
    wr__dlgroup_t *groups = sh->dlg;
    wr__dlent_t *ents = sh->dle;
    size_t ng = sh->ndlg;

    /* Publishing may end in wr__complete and so here again: take the lists
     * out first, so a nested call starts from empty ones. */
    if (sh->dl_flushing || !sh->ndle)
        return;
    sh->dl_flushing = true;
    sh->dlg = NULL;
    sh->dle = NULL;
    sh->ndlg = sh->ndle = sh->dlg_cap = sh->dle_cap = 0;
    for (size_t i = 0; i < ng; i++) {
        wr__dlgroup_t *g = &groups[i];
        for (size_t off = 0; off < g->n; off += WR_BATCH_MAX) {
            size_t n = WR__MIN((size_t)WR_BATCH_MAX, g->n - off);
            wr_msg_in_t *msgs = wr__xmalloc(n * sizeof(*msgs));
            for (size_t k = 0; k < n; k++) {
                const wr__dlent_t *e = &ents[g->first + off + k];
                msgs[k] = (wr_msg_in_t){.body = e->body,
                                        .ttl_ms = 0,
                                        .delay_ms = -1,
                                        .persistent = e->persistent,
                                        .priority = e->prio};
            }
            wr__publish_internal(sh, (wr_slice_t){g->key, g->tlen}, wr_body_ref(g->route), msgs,
                                 n, g->skip ? g->key : NULL, g->skip ? g->klen : 0, g->qhash);
            free(msgs);
        }
        wr_body_unref(g->route);
        free(g->key);
    }
    free(groups);
    free(ents);
    sh->dl_flushing = false;
    /* Anything gathered meanwhile (nested) goes now. */
    if (sh->ndle)
        wr__dl_flush(sh);
}

void wr__dl_fini(wr__shard_t *sh)
{
    for (size_t i = 0; i < sh->ndle; i++)
        wr_body_unref(sh->dle[i].body);
    for (size_t i = 0; i < sh->ndlg; i++) {
        wr_body_unref(sh->dlg[i].route);
        free(sh->dlg[i].key);
    }
    free(sh->dle);
    free(sh->dlg);
    sh->dle = NULL;
    sh->dlg = NULL;
    sh->ndle = sh->ndlg = 0;
}
