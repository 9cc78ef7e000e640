/*
 * test_index.c - the message index on its own (core_int.h), against a
 * plain array model: random appends and removals anywhere, lookups,
 * lower bounds and compaction.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "core/core_int.h"

static wr__msg_t *mk(uint64_t id)
{
    wr__msg_t *m = calloc(1, sizeof(*m));
    m->id = id;
    return m;
}

/* Random appends (weight `grow` of 10), removals mostly near the head,
 * tidies and lower bounds, checked against an array of what is live. */
/* Returns whether the index went into blocks on the way. */
static bool model_run(uint64_t n, int steps, int grow, unsigned seed)
{
    wr__index_t ix = {0};
    bool *live = calloc(n, sizeof(*live));
    uint64_t next = 0, nlive = 0;
    bool blocks = false;

    for (int step = 0; step < steps; step++) {
        int op = rand_r(&seed) % 10;
        if (op < grow && next < n) {
            wr__ix_append(&ix, mk(next * 3 + 7));
            live[next++] = true;
            nlive++;
        } else if (op < 8 && next) {
            /* Remove: mostly near the head (FIFO), sometimes anywhere. */
            uint64_t k = rand_r(&seed) % 2 ? (uint64_t)rand_r(&seed) % (next < 50 ? next : 50)
                                : (uint64_t)rand_r(&seed) % next;
            uint64_t pos;
            wr__msg_t *m = wr__ix_find(&ix, k * 3 + 7, &pos);
            cr_assert_eq(m != NULL, live[k]);
            if (m) {
                wr__ix_clear(&ix, pos);
                free(m);
                live[k] = false;
                nlive--;
            }
        } else if (op == 8) {
            wr__ix_tidy(&ix);
        } else if (next) {
            uint64_t k = (uint64_t)rand_r(&seed) % next;
            uint64_t pos = wr__ix_next(&ix, wr__ix_lower_bound(&ix, k * 3 + 6));
            /* The first live id >= that is the first live k' >= k. */
            uint64_t want = k;
            while (want < next && !live[want])
                want++;
            if (want == next)
                cr_assert_eq(pos, wr__ix_end(&ix));
            else
                cr_assert_eq(wr__ix_slot(&ix, pos)->m->id, want * 3 + 7);
        }
        cr_assert_eq(ix.live, nlive);
        cr_assert_leq(ix.live, ix.len);
        blocks |= ix.dir != NULL;
    }
    /* Walk all: exactly the live ones, in order. */
    uint64_t k = 0, found = 0;
    for (uint64_t p = wr__ix_next(&ix, ix.base); p < wr__ix_end(&ix); p = wr__ix_next(&ix, p + 1)) {
        while (!live[k])
            k++;
        cr_assert_eq(wr__ix_slot(&ix, p)->m->id, k * 3 + 7);
        free(wr__ix_slot(&ix, p)->m);
        k++;
        found++;
    }
    cr_assert_eq(found, nlive);
    wr__ix_fini(&ix);
    free(live);
    return blocks;
}

Test(index, model_check)
{
    (void)model_run(20000, 200000, 4, 1);
}

/* Appends outweigh removals: the index grows well past one ring into
 * blocks, with holes, tidies and trims across block edges. */
Test(index, model_check_in_blocks)
{
    cr_assert(model_run(12 * WR__IX_BLOCK, 150000, 6, 7));
}

/* Growing to many blocks moves no slot: what a scan holds stays put (the
 * old ring copied every slot each time it doubled). Blocks behind the
 * head are freed as it passes them. */
Test(index, growth_never_moves_slots)
{
    wr__index_t ix = {0};
    uint64_t id = 1, pos, head;
    wr__slot_t *held;

    while (id <= 3 * WR__IX_BLOCK)
        wr__ix_append(&ix, mk(id++));
    cr_assert_not_null(ix.dir, "past one block: blocks");
    cr_assert_not_null(wr__ix_find(&ix, 2 * WR__IX_BLOCK + 5, &pos));
    held = wr__ix_slot(&ix, pos);
    while (id <= 64 * WR__IX_BLOCK)
        wr__ix_append(&ix, mk(id++));
    cr_assert_eq(wr__ix_slot(&ix, pos), held);
    cr_assert_eq(held->id, 2 * WR__IX_BLOCK + 5);

    /* Drain two blocks and a bit from the head. */
    for (uint64_t i = 1; i <= 2 * WR__IX_BLOCK + 3; i++) {
        wr__msg_t *m = wr__ix_find(&ix, i, &head);
        cr_assert_not_null(m);
        wr__ix_clear(&ix, head);
        free(m);
    }
    cr_assert_eq(wr__ix_slot(&ix, pos), held);
    for (uint64_t b = 0; b < ix.base >> WR__IX_SHIFT; b++)
        cr_assert_null(ix.dir[b & ix.dmask], "block %llu is behind the head", (unsigned long long)b);
    for (uint64_t p = wr__ix_next(&ix, ix.base); p < wr__ix_end(&ix); p = wr__ix_next(&ix, p + 1))
        free(wr__ix_slot(&ix, p)->m);
    wr__ix_fini(&ix);
}

Test(index, drained_ring_shrinks)
{
    wr__index_t ix = {0};
    for (uint64_t i = 1; i <= 10000; i++)
        wr__ix_append(&ix, mk(i));
    for (uint64_t i = 1; i <= 9990; i++) {
        uint64_t pos;
        wr__msg_t *m = wr__ix_find(&ix, i, &pos);
        cr_assert_not_null(m);
        wr__ix_clear(&ix, pos);
        free(m);
    }
    cr_assert_eq(ix.len, 10); /* head tombstones were trimmed at once */
    wr__ix_tidy(&ix);
    cr_assert_leq(ix.cap, 64);
    for (uint64_t i = 9991; i <= 10000; i++) {
        wr__msg_t *m = wr__ix_find(&ix, i, NULL);
        cr_assert_not_null(m);
        free(m);
    }
    wr__ix_fini(&ix);
}

Test(map, put_get_del)
{
    wr__map_t m = {0};
    static uint64_t keys[5000];
    for (uint64_t i = 0; i < 5000; i++) {
        keys[i] = i * 7919;
        wr__map_put(&m, wr__hash_u64(keys[i]), &keys[i], 8, &keys[i]);
    }
    for (uint64_t i = 0; i < 5000; i += 2)
        cr_assert_eq(wr__map_del(&m, wr__hash_u64(keys[i]), &keys[i], 8), &keys[i]);
    for (uint64_t i = 0; i < 5000; i++) {
        void *v = wr__map_get(&m, wr__hash_u64(keys[i]), &keys[i], 8);
        cr_assert_eq(v, i % 2 ? &keys[i] : NULL);
    }
    cr_assert_eq(m.len, 2500);
    wr__map_fini(&m);
}
