/*
 * pool.h — a free list of fixed-size objects with one owner thread that
 * takes and any number of threads that give back: the streamer worker's
 * per-message records (msg_t), taken on the worker's loop thread for every
 * message received and given back wherever the message is settled (ack
 * results, dead-letter publish callbacks, the timer thread, teardown).
 *
 * Objects given back go onto a lock-free stack (compare-and-swap push);
 * the owner takes the whole stack at once (atomic exchange) into a list of
 * its own when that is empty, so there is no pop race (no ABA) and no lock.
 * At most `cap` objects are kept: one given back beyond that is freed, so
 * the pool holds at most `cap` * `obj_size` bytes besides the objects in
 * use. A pool is not needed for correctness: with AddressSanitizer, a
 * pooled object is poisoned (past its first pointer, the free-list link)
 * while it is free, so a use after give still reports.
 *
 * Threading: trb_pool_take on one thread at a time (the owner's);
 * trb_pool_give from any thread, concurrently with take and each other;
 * init/deinit with no concurrent call.
 */
#ifndef TRB_SRC_STREAMER_POOL_H
#define TRB_SRC_STREAMER_POOL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A pool; fields are private (embedded for layout only). `shared` and
 *  `n_free` are accessed with atomic builtins only. */
typedef struct trb_pool_s {
  void *shared;  /* given back, not yet taken by the owner */
  void *local;   /* the owner's: taken from `shared` */
  size_t n_free; /* objects in `shared` and `local` */
  size_t obj_size;
  size_t cap;
} trb_pool_t;

/** Set up an empty pool of objects of `obj_size` bytes (at least a
 *  pointer's size), keeping at most `cap` free ones. */
void trb_pool_init(trb_pool_t *p, size_t obj_size, size_t cap);

/** An object of obj_size bytes (contents undefined): a free one, else a
 *  new allocation (trb_malloc). Owner thread. Returns NULL when out of
 *  memory. */
void *trb_pool_take(trb_pool_t *p);

/** Give back `o` (from trb_pool_take of `p`; NULL is a no-op): kept for a
 *  later take, or freed when the pool holds `cap` already. Any thread;
 *  lock-free. */
void trb_pool_give(trb_pool_t *p, void *o);

/** Objects held free now (approximate while gives run). */
size_t trb_pool_free_count(trb_pool_t *p);

/** Free every object held. Objects still in use must not be given back
 *  afterwards (unless the pool is initialised again). */
void trb_pool_deinit(trb_pool_t *p);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_STREAMER_POOL_H */
