/*
 * index.c - a queue's messages ordered by id: {id, msg*} slots in a ring
 * that doubles up to WR__IX_BLOCK slots, then in fixed blocks behind a
 * directory (core_int.h has the layout and why).
 *
 * Publishing appends at the tail; consuming mostly removes at the head, so
 * head tombstones are trimmed at once and the common FIFO case never
 * leaves holes; a block the trim leaves behind is freed then. A removal
 * in the middle leaves a tombstone that keeps its id so binary search
 * stays valid; wr__ix_tidy compacts when tombstones outnumber messages and
 * shrinks an emptied index, and is only called between scans because it
 * renumbers positions.
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

#define MIN_CAP 16u

uint64_t wr__ix_lower_bound(const wr__index_t *ix, uint64_t id)
{
    uint64_t lo = ix->base, hi = wr__ix_end(ix);

    /* Consumers start at the head: no search through millions for it. */
    if (lo == hi || wr__ix_slot(ix, lo)->id >= id)
        return lo;
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

static uint64_t block_of(uint64_t pos)
{
    return pos >> WR__IX_SHIFT;
}

static void free_blocks(wr__index_t *ix, uint64_t from, uint64_t to) /* [from, to] */
{
    for (uint64_t k = from; k <= to; k++) {
        free(ix->dir[k & ix->dmask]);
        ix->dir[k & ix->dmask] = NULL;
    }
}

/* Makes room in the directory for block k (past the last in use). Only
 * pointers move. */
static void grow_dir(wr__index_t *ix, uint64_t k)
{
    uint64_t first = block_of(ix->base), last = block_of(wr__ix_end(ix) - 1), n = ix->dmask + 1;
    wr__slot_t **nd;

    while (k - first >= n)
        n *= 2;
    nd = wr__xcalloc(n, sizeof(*nd));
    for (uint64_t b = first; b <= last; b++)
        nd[b & (n - 1)] = ix->dir[b & ix->dmask];
    free(ix->dir);
    ix->dir = nd;
    ix->dmask = n - 1;
}

/* Block mode: the slot at the end, its block allocated. */
static wr__slot_t *block_end(wr__index_t *ix)
{
    uint64_t pos = wr__ix_end(ix), k = block_of(pos);
    wr__slot_t **b;

    if (ix->len && k - block_of(ix->base) > ix->dmask)
        grow_dir(ix, k);
    b = &ix->dir[k & ix->dmask];
    if (!*b)
        *b = wr__xmalloc(WR__IX_BLOCK * sizeof(**b));
    return &(*b)[pos & (WR__IX_BLOCK - 1)];
}

static void put(wr__index_t *ix, wr__slot_t s);

/* Moves the slots to a fresh index starting at nbase, without tombstones
 * (compact) or as they are; it takes the shape their number needs. */
static void rebuild(wr__index_t *ix, uint64_t nbase, bool compact)
{
    wr__index_t n = {.base = nbase};
    uint64_t end = wr__ix_end(ix);

    for (uint64_t p = ix->base; p < end; p++) {
        wr__slot_t *s = wr__ix_slot(ix, p);
        if (!compact || s->m)
            put(&n, *s);
    }
    n.live = ix->live;
    wr__ix_fini(ix);
    *ix = n;
}

/* Ring mode: the same slots at the same positions in a ring of ncap. */
static void resize_ring(wr__index_t *ix, size_t ncap)
{
    wr__slot_t *ns = wr__xmalloc(ncap * sizeof(*ns));
    uint64_t end = wr__ix_end(ix);

    for (uint64_t p = ix->base; p < end; p++)
        ns[p & (ncap - 1)] = *wr__ix_slot(ix, p);
    free(ix->ring);
    ix->ring = ns;
    ix->cap = ncap;
}

/* Appends a slot (a tombstone too, when rebuilding). */
static void put(wr__index_t *ix, wr__slot_t s)
{
    wr__slot_t *at;

    if (!ix->dir && ix->len == ix->cap) {
        if (ix->cap < WR__IX_BLOCK) {
            resize_ring(ix, ix->cap ? ix->cap * 2 : MIN_CAP);
        } else { /* full ring of a block: on to blocks, its last copy */
            wr__index_t b = {.base = ix->base, .dir = wr__xcalloc(4, sizeof(wr__slot_t *)), .dmask = 3};
            for (uint64_t p = ix->base; p < wr__ix_end(ix); p++) {
                *block_end(&b) = *wr__ix_slot(ix, p);
                b.len++;
            }
            b.live = ix->live;
            free(ix->ring);
            *ix = b;
        }
    }
    at = ix->dir ? block_end(ix) : wr__ix_slot(ix, wr__ix_end(ix));
    *at = s;
    ix->len++;
}

void wr__ix_append(wr__index_t *ix, wr__msg_t *m)
{
    WR_ASSERT(ix->len == 0 || wr__ix_slot(ix, wr__ix_end(ix) - 1)->id < m->id);
    put(ix, (wr__slot_t){m->id, m});
    ix->live++;
}

void wr__ix_clear(wr__index_t *ix, uint64_t pos)
{
    wr__slot_t *s = wr__ix_slot(ix, pos);
    uint64_t first = 0, last = 0; /* blocks in use before the trims */

    WR_ASSERT(pos >= ix->base && pos < wr__ix_end(ix) && s->m);
    if (ix->dir) {
        first = block_of(ix->base);
        last = block_of(wr__ix_end(ix) - 1);
    }
    s->m = NULL;
    ix->live--;
    while (ix->len && !wr__ix_slot(ix, ix->base)->m) {
        ix->base++;
        ix->len--;
    }
    while (ix->len && !wr__ix_slot(ix, wr__ix_end(ix) - 1)->m)
        ix->len--;
    if (!ix->dir)
        return;
    /* Blocks the trims left behind; the directory stays. */
    if (ix->len == 0) {
        free_blocks(ix, first, last);
        return;
    }
    if (block_of(ix->base) > first)
        free_blocks(ix, first, block_of(ix->base) - 1);
    if (block_of(wr__ix_end(ix) - 1) < last)
        free_blocks(ix, block_of(wr__ix_end(ix) - 1) + 1, last);
}

void wr__ix_tidy(wr__index_t *ix)
{
    if (ix->live == 0 && (ix->dir || ix->cap > MIN_CAP * 4)) {
        wr__ix_fini(ix);
        return;
    }
    /* More tombstones than messages: a scan would mostly skip holes. */
    if (ix->len - ix->live > ix->live && ix->len >= 64) {
        rebuild(ix, 0, true);
        return;
    }
    /* An emptied ring keeps at most 4x what it holds; a few blocks' worth
     * go back to a ring, which a queue that small should cost. */
    if (!ix->dir && ix->cap > MIN_CAP * 4 && ix->len * 8 < ix->cap) {
        size_t want = MIN_CAP;
        while (want < ix->len * 2)
            want *= 2;
        resize_ring(ix, want);
    } else if (ix->dir && ix->len * 8 < WR__IX_BLOCK) {
        rebuild(ix, ix->base, false);
    }
}

void wr__ix_fini(wr__index_t *ix)
{
    if (ix->dir && ix->len)
        free_blocks(ix, block_of(ix->base), block_of(wr__ix_end(ix) - 1));
    free(ix->dir);
    free(ix->ring);
    *ix = (wr__index_t){0};
}
