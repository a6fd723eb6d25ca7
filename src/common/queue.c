/*
 * queue.c — bounded MPSC queue: a ring buffer under one mutex, two condition
 * variables on CLOCK_MONOTONIC, and an eventfd for event loops (see queue.h).
 *
 * Wakeup fd protocol: `wake_armed` mirrors "the eventfd counter is nonzero".
 * A push or close writes the eventfd only when it is not armed, so a burst
 * of pushes costs one write(2); trb_queue_wakeup_clear reads it back only
 * when nothing is left to notice (empty and open).
 */
#include "src/common/queue.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "src/common/alloc.h"

struct trb_queue_s {
  pthread_mutex_t mu;         /* guards everything below except cap and efd */
  pthread_cond_t not_empty;   /* the consumer waits here; push/close signal */
  pthread_cond_t not_full;    /* producers wait here; pop/close signal */
  void **items;               /* ring of `cap` slots */
  size_t cap;                 /* immutable */
  size_t head;                /* index of the oldest item */
  size_t count;               /* items queued */
  unsigned waiting_producers; /* threads blocked in push */
  unsigned waiting_consumers; /* threads blocked in pop (0 or 1) */
  bool closed;
  bool wake_armed;            /* eventfd counter is nonzero */
  bool sync_ready;            /* mutex and condvars initialized */
  int efd;                    /* immutable; -1 until created */
};

static int init_cond(pthread_cond_t *c) {
  pthread_condattr_t attr;
  int rc = pthread_condattr_init(&attr);
  if (rc != 0) return rc;
  rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(c, &attr);
  pthread_condattr_destroy(&attr);
  return rc;
}

int trb_queue_create(size_t capacity, trb_queue_t **out) {
  trb_queue_t *q;
  int rc;

  *out = NULL;
  if (capacity == 0 || capacity > SIZE_MAX / sizeof(void *)) return -EINVAL;
  q = trb_calloc(1, sizeof(*q));
  if (q == NULL) return -ENOMEM;
  q->efd = -1;
  q->cap = capacity;
  q->items = trb_calloc(capacity, sizeof(void *));
  if (q->items == NULL) {
    rc = -ENOMEM;
    goto fail;
  }
  q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (q->efd < 0) {
    rc = -errno;
    goto fail;
  }
  rc = pthread_mutex_init(&q->mu, NULL);
  if (rc != 0) {
    rc = -rc;
    goto fail;
  }
  rc = init_cond(&q->not_empty);
  if (rc != 0) {
    pthread_mutex_destroy(&q->mu);
    rc = -rc;
    goto fail;
  }
  rc = init_cond(&q->not_full);
  if (rc != 0) {
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->mu);
    rc = -rc;
    goto fail;
  }
  q->sync_ready = true;
  *out = q;
  return 0;

fail:
  trb_queue_destroy(q);
  return rc;
}

void trb_queue_destroy(trb_queue_t *q) {
  if (q == NULL) return;
  if (q->sync_ready) {
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->mu);
  }
  if (q->efd >= 0) close(q->efd);
  trb_free(q->items);
  trb_free(q);
}

/* Make the wakeup fd readable if it is not already. Called under mu. */
static void wake_locked(trb_queue_t *q) {
  uint64_t one = 1;
  if (q->wake_armed) return;
  /* Cannot fail with EAGAIN: the counter is at most 1. */
  if (write(q->efd, &one, sizeof(one)) == (ssize_t)sizeof(one)) q->wake_armed = true;
}

/*
 * Wait on `cv` until woken or the deadline. Returns false once the deadline
 * has passed (the caller re-checks its condition first either way).
 */
static bool wait_until(trb_queue_t *q, pthread_cond_t *cv, int64_t deadline_ms) {
  struct timespec now, ts;

  if (deadline_ms < 0) {
    pthread_cond_wait(cv, &q->mu);
    return true;
  }
  clock_gettime(CLOCK_MONOTONIC, &now);
  if ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 >= deadline_ms) return false;
  ts.tv_sec = (time_t)(deadline_ms / 1000);
  ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
  return pthread_cond_timedwait(cv, &q->mu, &ts) != ETIMEDOUT;
}

static void put_locked(trb_queue_t *q, void *item) {
  q->items[(q->head + q->count) % q->cap] = item;
  q->count++;
  if (q->waiting_consumers > 0) pthread_cond_signal(&q->not_empty);
  wake_locked(q);
}

/* Take up to `max` items; returns how many. Called under mu. */
static size_t take_locked(trb_queue_t *q, void **items, size_t max) {
  size_t n = q->count < max ? q->count : max;
  for (size_t i = 0; i < n; i++) {
    items[i] = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
  }
  q->count -= n;
  if (n > 0 && q->waiting_producers > 0) {
    if (n == 1) {
      pthread_cond_signal(&q->not_full);
    } else {
      pthread_cond_broadcast(&q->not_full);
    }
  }
  return n;
}

int trb_queue_push(trb_queue_t *q, void *item, int64_t deadline_ms) {
  int rc = 0;

  pthread_mutex_lock(&q->mu);
  while (!q->closed && q->count == q->cap) {
    bool in_time;
    q->waiting_producers++;
    in_time = wait_until(q, &q->not_full, deadline_ms);
    q->waiting_producers--;
    if (!in_time && !q->closed && q->count == q->cap) {
      rc = -ETIMEDOUT;
      break;
    }
  }
  if (rc == 0 && q->closed) rc = -EPIPE;
  if (rc == 0) put_locked(q, item);
  pthread_mutex_unlock(&q->mu);
  return rc;
}

int trb_queue_try_push(trb_queue_t *q, void *item) {
  int rc = 0;

  pthread_mutex_lock(&q->mu);
  if (q->closed) {
    rc = -EPIPE;
  } else if (q->count == q->cap) {
    rc = -EAGAIN;
  } else {
    put_locked(q, item);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

int trb_queue_pop_many(trb_queue_t *q, void **items, size_t max_items,
                       int64_t deadline_ms) {
  int rc = 0;

  if (max_items == 0) return -EINVAL;
  if (max_items > INT_MAX) max_items = INT_MAX;
  pthread_mutex_lock(&q->mu);
  while (q->count == 0 && !q->closed) {
    bool in_time;
    q->waiting_consumers++;
    in_time = wait_until(q, &q->not_empty, deadline_ms);
    q->waiting_consumers--;
    if (!in_time && q->count == 0 && !q->closed) {
      rc = -ETIMEDOUT;
      break;
    }
  }
  if (rc == 0) rc = q->count > 0 ? (int)take_locked(q, items, max_items) : -EPIPE;
  pthread_mutex_unlock(&q->mu);
  return rc;
}

int trb_queue_pop(trb_queue_t *q, void **item_out, int64_t deadline_ms) {
  int rc = trb_queue_pop_many(q, item_out, 1, deadline_ms);
  return rc > 0 ? 0 : rc;
}

int trb_queue_try_pop(trb_queue_t *q, void **item_out) {
  int rc;

  pthread_mutex_lock(&q->mu);
  if (q->count > 0) {
    take_locked(q, item_out, 1);
    rc = 0;
  } else {
    rc = q->closed ? -EPIPE : -EAGAIN;
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

void trb_queue_close(trb_queue_t *q) {
  pthread_mutex_lock(&q->mu);
  if (!q->closed) {
    q->closed = true;
    pthread_cond_broadcast(&q->not_full);
    pthread_cond_broadcast(&q->not_empty);
    wake_locked(q);
  }
  pthread_mutex_unlock(&q->mu);
}

bool trb_queue_is_closed(trb_queue_t *q) {
  bool closed;
  pthread_mutex_lock(&q->mu);
  closed = q->closed;
  pthread_mutex_unlock(&q->mu);
  return closed;
}

size_t trb_queue_size(trb_queue_t *q) {
  size_t n;
  pthread_mutex_lock(&q->mu);
  n = q->count;
  pthread_mutex_unlock(&q->mu);
  return n;
}

size_t trb_queue_capacity(const trb_queue_t *q) { return q->cap; }

int trb_queue_wakeup_fd(const trb_queue_t *q) { return q->efd; }

void trb_queue_wakeup_clear(trb_queue_t *q) {
  uint64_t v;
  pthread_mutex_lock(&q->mu);
  if (q->wake_armed && q->count == 0 && !q->closed) {
    if (read(q->efd, &v, sizeof(v)) == (ssize_t)sizeof(v) || errno == EAGAIN) {
      q->wake_armed = false;
    }
  }
  pthread_mutex_unlock(&q->mu);
}
