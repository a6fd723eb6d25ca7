/*
 * queue.h — a bounded multi-producer / single-consumer queue of `void *`
 * items with a coalescing wakeup fd (STYLE.md 3.5; models: uv_async_send,
 * Fluent Bit ch_parent_events, gRPC combiner).
 *
 * Threads hand ownership of items to one consumer (usually an event loop)
 * through the queue. The queue never looks at or frees items: an item is
 * owned by the pusher until a push returns 0, then by the queue, then by
 * the consumer that pops it.
 *
 * Blocking calls wait on condition variables (no spinning); deadlines are
 * absolute CLOCK_MONOTONIC milliseconds (trb_clock_mono_ms()), -1 means no
 * deadline, and a deadline already passed makes a call a non-blocking poll.
 * Errors are tier-1 codes (STYLE.md 3.3): 0 or a negative errno.
 *
 * Shutdown: trb_queue_close → consumer drains until -EPIPE → join the
 * producers → trb_queue_destroy.
 */
#ifndef TRB_SRC_COMMON_QUEUE_H
#define TRB_SRC_COMMON_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A bounded MPSC queue (opaque). */
typedef struct trb_queue_s trb_queue_t;

/**
 * Create a queue holding at most `capacity` items.
 *
 * Params:  capacity — number of items, >= 1; fixed for the queue's life.
 *          out — receives the owned queue (trb_queue_destroy); set to NULL
 *                on failure.
 * Returns: 0; -EINVAL if capacity is 0 or too large; -ENOMEM on allocation
 *          failure; -EMFILE/-ENFILE (or another -errno) if eventfd(2) fails.
 * Threading: thread-safe.
 */
int trb_queue_create(size_t capacity, trb_queue_t **out);

/**
 * Destroy the queue and close its wakeup fd. NULL-safe. Items still queued
 * are not freed (drain first). No thread may be using the queue.
 * Threading: owner only, after every producer and the consumer are done.
 */
void trb_queue_destroy(trb_queue_t *q);

/**
 * Push `item`, waiting while the queue is full.
 *
 * Params:  item — any pointer (NULL allowed); ownership passes to the queue
 *                 only when this returns 0.
 *          deadline_ms — absolute CLOCK_MONOTONIC ms, or -1 to wait forever.
 * Returns: 0 when queued; -ETIMEDOUT if still full at the deadline; -EPIPE
 *          if the queue is closed (before or while waiting).
 * Threading: thread-safe; any number of producers. Items from one producer
 *          are popped in the order that producer pushed them.
 */
int trb_queue_push(trb_queue_t *q, void *item, int64_t deadline_ms);

/**
 * Push without waiting.
 * Returns: 0 when queued; -EAGAIN if full; -EPIPE if closed.
 * Threading: thread-safe.
 */
int trb_queue_try_push(trb_queue_t *q, void *item);

/**
 * Pop the oldest item, waiting while the queue is empty.
 *
 * Params:  item_out — receives the item (ownership passes to the caller).
 *          deadline_ms — absolute CLOCK_MONOTONIC ms, or -1 to wait forever.
 * Returns: 0 with `*item_out` set; -ETIMEDOUT if still empty at the
 *          deadline; -EPIPE if the queue is closed and empty (items pushed
 *          before close are still returned first).
 * Threading: single consumer: one thread at a time may pop.
 */
int trb_queue_pop(trb_queue_t *q, void **item_out, int64_t deadline_ms);

/**
 * Pop without waiting.
 * Returns: 0 with `*item_out` set; -EAGAIN if empty and open; -EPIPE if
 *          closed and empty.
 * Threading: single consumer.
 */
int trb_queue_try_pop(trb_queue_t *q, void **item_out);

/**
 * Batch drain: pop up to `max_items` items into `items[0..n)`, waiting
 * until at least one is available.
 *
 * Params:  items — caller array of `max_items` slots; filled oldest first.
 *          max_items — >= 1 (values above INT_MAX are clamped).
 *          deadline_ms — as trb_queue_pop; pass 0 to poll without waiting.
 * Returns: n >= 1, the number of items popped; -ETIMEDOUT if empty at the
 *          deadline; -EPIPE if closed and empty; -EINVAL if max_items is 0.
 * Threading: single consumer.
 */
int trb_queue_pop_many(trb_queue_t *q, void **items, size_t max_items,
                       int64_t deadline_ms);

/**
 * Close the queue: wakes every waiting producer and the consumer; later
 * pushes fail with -EPIPE; pops return the remaining items, then -EPIPE.
 * The wakeup fd becomes (and stays) readable. Idempotent.
 * Threading: thread-safe.
 */
void trb_queue_close(trb_queue_t *q);

/** True once trb_queue_close was called. Threading: thread-safe. */
bool trb_queue_is_closed(trb_queue_t *q);

/**
 * Number of items queued now; a snapshot that may be stale on return.
 * Threading: thread-safe.
 */
size_t trb_queue_size(trb_queue_t *q);

/** The capacity given to trb_queue_create. Threading: thread-safe. */
size_t trb_queue_capacity(const trb_queue_t *q);

/**
 * The wakeup fd (an eventfd) for a consumer event loop to poll for POLLIN.
 * It becomes readable when an item is pushed or the queue is closed, and
 * stays readable until trb_queue_wakeup_clear. Pushes into a queue whose fd
 * is already readable do not touch it (wakeups coalesce).
 *
 * Returns: the fd, owned by the queue: do not read, write or close it.
 * Threading: thread-safe.
 */
int trb_queue_wakeup_fd(const trb_queue_t *q);

/**
 * Make the wakeup fd non-readable, but only if the queue is empty and
 * open; otherwise it stays readable so no item is left unnoticed. Typical
 * loop: poll → drain with pop_many/try_pop → trb_queue_wakeup_clear → poll.
 * Threading: single consumer.
 */
void trb_queue_wakeup_clear(trb_queue_t *q);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_COMMON_QUEUE_H */
