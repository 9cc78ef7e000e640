/*
 * body.c - wr_body_t: a message's immutable bytes, shared by reference.
 *
 * One allocation holds the header, the properties and the body, so a
 * message costs one malloc for its bytes however many queues share it. The
 * count is atomic because the last reference may be dropped on any thread
 * (a front end keeping a body after its callback, a shard freeing a queue).
 * A small body may also live inside its message's block (core_int.h,
 * WR__BODY_IN_MSG): its last reference frees that block.
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

wr_body_t *wr_body_new(wr_slice_t props, wr_slice_t body)
{
    wr_body_t *b;

    if (props.len > UINT32_MAX || body.len > UINT32_MAX)
        wr_panic(__FILE__, __LINE__, "body larger than 4 GiB");
    b = wr__xmalloc(sizeof(*b) + props.len + body.len);
    atomic_init(&b->refs, 1);
    b->props_len = (uint32_t)props.len;
    b->body_len = (uint32_t)body.len;
    if (props.len)
        memcpy(b->data, props.ptr, props.len);
    if (body.len)
        memcpy(b->data + props.len, body.ptr, body.len);
    return b;
}

wr_body_t *wr_body_ref(wr_body_t *b)
{
    /* Relaxed is enough to take a reference: the caller already holds one. */
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void wr_body_unref(wr_body_t *b)
{
    uint32_t old;

    if (!b)
        return;
    /* Release so our reads of the bytes happen before the free; acquire on
     * the last drop so the free sees every other holder's reads done. */
    old = atomic_fetch_sub_explicit(&b->refs, 1, memory_order_release);
    if ((old & ~WR__BODY_MARKS) == 1) {
        atomic_thread_fence(memory_order_acquire);
        /* A body copied into its message (core_int.h) frees the block. */
        free(old & WR__BODY_IN_MSG ? (void *)((char *)b - sizeof(wr__msg_t)) : (void *)b);
    }
}

wr_body_json_t wr_body_json(const wr_body_t *b)
{
    uint32_t refs = atomic_load_explicit(&b->refs, memory_order_relaxed);

    if (refs & WR__BODY_JSON_YES)
        return WR_BODY_JSON_YES;
    return refs & WR__BODY_JSON_NO ? WR_BODY_JSON_NO : WR_BODY_JSON_UNKNOWN;
}

void wr_body_set_json(wr_body_t *b, bool is_json)
{
    /* Relaxed: the verdict is a fact about bytes that never change, so a
     * reader that misses it only judges them again. */
    atomic_fetch_or_explicit(&b->refs, is_json ? WR__BODY_JSON_YES : WR__BODY_JSON_NO,
                             memory_order_relaxed);
}
