/*
 * pool.c — single-taker, many-giver free list (see pool.h).
 */
#include "src/streamer/pool.h"

#include "src/common/alloc.h"

/* A free object is poisoned past its link (the first pointer). */
#define POISON_FREE(p, o) \
  TRB_POISON((char *)(o) + sizeof(void *), (p)->obj_size - sizeof(void *))
#define UNPOISON_FREE(p, o) \
  TRB_UNPOISON((char *)(o) + sizeof(void *), (p)->obj_size - sizeof(void *))

/* The free-list link, in the first bytes of a free object. */
static void *next_of(void *o) { return *(void **)o; }
static void set_next(void *o, void *n) { *(void **)o = n; }

void trb_pool_init(trb_pool_t *p, size_t obj_size, size_t cap) {
  p->shared = NULL;
  p->local = NULL;
  p->n_free = 0;
  p->obj_size = obj_size < sizeof(void *) ? sizeof(void *) : obj_size;
  p->cap = cap;
}

void *trb_pool_take(trb_pool_t *p) {
  if (!p->local)
    p->local = __atomic_exchange_n(&p->shared, NULL, __ATOMIC_ACQUIRE);
  void *o = p->local;
  if (!o) return trb_malloc(p->obj_size);
  p->local = next_of(o);
  __atomic_fetch_sub(&p->n_free, 1, __ATOMIC_RELAXED);
  UNPOISON_FREE(p, o);
  return o;
}

void trb_pool_give(trb_pool_t *p, void *o) {
  if (!o) return;
  if (__atomic_fetch_add(&p->n_free, 1, __ATOMIC_RELAXED) >=
      p->cap) {
    __atomic_fetch_sub(&p->n_free, 1, __ATOMIC_RELAXED);
    trb_free(o);
    return;
  }
  /* Poisoned before it is published: once pushed, the owner may take it
   * (and unpoison it) at once. The link itself stays addressable. */
  POISON_FREE(p, o);
  void *head = __atomic_load_n(&p->shared, __ATOMIC_RELAXED);
  do {
    set_next(o, head);
  } while (!__atomic_compare_exchange_n(&p->shared, &head, o, 1,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

size_t trb_pool_free_count(trb_pool_t *p) {
  return __atomic_load_n(&p->n_free, __ATOMIC_RELAXED);
}

static void free_list(trb_pool_t *p, void *o) {
  while (o) {
    void *n = next_of(o);
    UNPOISON_FREE(p, o);
    trb_free(o);
    o = n;
  }
}

void trb_pool_deinit(trb_pool_t *p) {
  free_list(p, p->local);
  free_list(p, __atomic_exchange_n(&p->shared, NULL, __ATOMIC_ACQUIRE));
  p->local = NULL;
  __atomic_store_n(&p->n_free, 0, __ATOMIC_RELAXED);
}
