/*
 * index.c - a queue's messages ordered by id: a growable ring of
 * {id, msg*} slots.
 *
 * Publishing appends at the tail; consuming mostly removes at the head, so
 * head tombstones are trimmed at once and the common FIFO case never
 * leaves holes. A removal in the middle leaves a tombstone that keeps its
 * id so binary search stays valid; wr__ix_tidy compacts when tombstones
 * outnumber messages and shrinks an emptied ring, and is only called
 * between scans because it renumbers positions.
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

#define MIN_CAP 16u

uint64_t wr__ix_lower_bound(const wr__index_t *ix, uint64_t id)
{
    uint64_t lo = ix->base, hi = wr__ix_end(ix);

    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (wr__ix_slot(ix, mid)->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint64_t wr__ix_next(const wr__index_t *ix, uint64_t pos)
{
    uint64_t end = wr__ix_end(ix);

    if (pos < ix->base)
        pos = ix->base;
    while (pos < end && !wr__ix_slot(ix, pos)->m)
        pos++;
    return pos;
}

wr__msg_t *wr__ix_find(const wr__index_t *ix, uint64_t id, uint64_t *pos_out)
{
    uint64_t pos = wr__ix_lower_bound(ix, id);
    wr__slot_t *s;

    if (pos == wr__ix_end(ix))
        return NULL;
    s = wr__ix_slot(ix, pos);
    if (s->id != id || !s->m)
        return NULL;
    if (pos_out)
        *pos_out = pos;
    return s->m;
}

/* Moves the slots to a new ring of ncap, keeping their absolute positions
 * (compact == false) or packing live ones from position 0 (compact). */
static void rebuild(wr__index_t *ix, size_t ncap, bool compact)
{
    wr__slot_t *ns = wr__xmalloc(ncap * sizeof(*ns));
    uint64_t end = wr__ix_end(ix), nbase = compact ? 0 : ix->base, out = nbase;

    for (uint64_t p = ix->base; p < end; p++) {
        wr__slot_t *s = wr__ix_slot(ix, p);
        if (compact && !s->m)
            continue;
        ns[out & (ncap - 1)] = *s;
        out++;
    }
    free(ix->s);
    ix->s = ns;
    ix->cap = ncap;
    ix->base = nbase;
    ix->len = (size_t)(out - nbase);
}

void wr__ix_append(wr__index_t *ix, wr__msg_t *m)
{
    if (ix->len == ix->cap)
        rebuild(ix, ix->cap ? ix->cap * 2 : MIN_CAP, false);
    WR_ASSERT(ix->len == 0 || wr__ix_slot(ix, wr__ix_end(ix) - 1)->id < m->id);
    *wr__ix_slot(ix, wr__ix_end(ix)) = (wr__slot_t){m->id, m};
    ix->len++;
    ix->live++;
}

void wr__ix_clear(wr__index_t *ix, uint64_t pos)
{
    wr__slot_t *s = wr__ix_slot(ix, pos);

    WR_ASSERT(pos >= ix->base && pos < wr__ix_end(ix) && s->m);
    s->m = NULL;
    ix->live--;
    while (ix->len && !wr__ix_slot(ix, ix->base)->m) {
        ix->base++;
        ix->len--;
    }
    while (ix->len && !wr__ix_slot(ix, wr__ix_end(ix) - 1)->m)
        ix->len--;
}

void wr__ix_tidy(wr__index_t *ix)
{
    size_t want;

    if (ix->live == 0 && ix->cap > MIN_CAP * 4) {
        wr__ix_fini(ix);
        return;
    }
    /* More tombstones than messages: a scan would mostly skip holes. */
    if (ix->len - ix->live > ix->live && ix->len >= 64) {
        want = MIN_CAP;
        while (want < ix->live * 2)
            want *= 2;
        rebuild(ix, want, true);
        return;
    }
    /* A drained ring keeps at most 4x what it holds. */
    if (ix->cap > MIN_CAP * 4 && ix->len * 8 < ix->cap) {
        want = MIN_CAP;
        while (want < ix->len * 2)
            want *= 2;
        rebuild(ix, want, false);
    }
}

void wr__ix_fini(wr__index_t *ix)
{
    free(ix->s);
    ix->s = NULL;
    ix->cap = ix->len = ix->live = 0;
    ix->base = 0;
}
