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

Test(index, model_check)
{
    wr__index_t ix = {0};
    enum { N = 20000 };
    static bool live[N];
    uint64_t next = 0, nlive = 0;
    unsigned seed = 1;

    for (int step = 0; step < 200000; step++) {
        int op = rand_r(&seed) % 10;
        if (op < 4 && next < N) {
            wr__ix_append(&ix, mk(next * 3 + 7));
            live[next++] = true;
            nlive++;
        } else if (op < 8 && next) {
            /* Remove: mostly near the head (FIFO), sometimes anywhere. */
            uint64_t k = op < 6 ? (uint64_t)rand_r(&seed) % (next < 50 ? next : 50)
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
    }
    /* Walk all: exactly the live ones, in order. */
    uint64_t k = 0, n = 0;
    for (uint64_t p = wr__ix_next(&ix, ix.base); p < wr__ix_end(&ix); p = wr__ix_next(&ix, p + 1)) {
        while (!live[k])
            k++;
        cr_assert_eq(wr__ix_slot(&ix, p)->m->id, k * 3 + 7);
        free(wr__ix_slot(&ix, p)->m);
        k++;
        n++;
    }
    cr_assert_eq(n, nlive);
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
