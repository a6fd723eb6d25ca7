/*
 * idset.c — sharded chained hash map of message ids (see idset.h).
 */
#include "src/streamer/idset.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "src/common/alloc.h"

#define SHARDS 64

typedef struct waiter_s {
  void *w;
  struct waiter_s *next;
} waiter_t;

typedef struct trb_idset_entry_s {
  struct trb_idset_entry_s *next;
  uint64_t hash;
  waiter_t *waiters;
  uint64_t tag;
  uint8_t state;
  uint16_t len;
  char id[];
} entry_t;

typedef struct shard_s {
  pthread_mutex_t mu;
  entry_t **b;
  size_t nb, n;
} shard_t;

struct trb_idset_s {
  shard_t sh[SHARDS];
};

static uint64_t hash(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)p[i];
    h *= 1099511628211ull;
  }
  return h ^ (h >> 29);
}

trb_idset_t *trb_idset_create(void) {
  trb_idset_t *s = trb_calloc(1, sizeof *s);
  if (!s) return NULL;
  for (int i = 0; i < SHARDS; i++) pthread_mutex_init(&s->sh[i].mu, NULL);
  return s;
}

static shard_t *shard_of(trb_idset_t *s, uint64_t h) {
  return &s->sh[h % SHARDS];
}

static entry_t **find(shard_t *sh, uint64_t h, const char *id, size_t len) {
  if (!sh->nb) return NULL;
  entry_t **pp = &sh->b[(h / SHARDS) & (sh->nb - 1)];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->id, id, len) == 0)
      return pp;
  return NULL;
}

static bool grow(shard_t *sh) {
  size_t nb = sh->nb ? sh->nb * 2 : 64;
  entry_t **b = trb_calloc(nb, sizeof *b);
  if (!b) return false;
  for (size_t i = 0; i < sh->nb; i++) {
    entry_t *e = sh->b[i];
    while (e) {
      entry_t *nx = e->next;
      size_t k = (e->hash / SHARDS) & (nb - 1);
      e->next = b[k];
      b[k] = e;
      e = nx;
    }
  }
  trb_free(sh->b);
  sh->b = b;
  sh->nb = nb;
  return true;
}

static entry_t *insert(shard_t *sh, uint64_t h, const char *id, size_t len,
                       trb_id_state_t state, uint64_t tag) {
  if (len > UINT16_MAX) return NULL;
  /* Load factor at most 1/2: a new id (every claim) walks a chain of
   * cache-cold entries to the end. */
  if (2 * (sh->n + 1) > sh->nb && !grow(sh) && !sh->nb) return NULL;
  entry_t *e = trb_malloc(sizeof *e + len);
  if (!e) return NULL;
  e->hash = h;
  e->waiters = NULL;
  e->tag = tag;
  e->state = (uint8_t)state;
  e->len = (uint16_t)len;
  memcpy(e->id, id, len);
  size_t k = (h / SHARDS) & (sh->nb - 1);
  e->next = sh->b[k];
  sh->b[k] = e;
  sh->n++;
  return e;
}

trb_id_state_t trb_idset_claim(trb_idset_t *s, const char *id, size_t len,
                               void *waiter, uint64_t *tag) {
  trb_idset_ref_t ref;
  return trb_idset_claim_ref(s, id, len, waiter, tag, &ref);
}

trb_id_state_t trb_idset_claim_ref(trb_idset_t *s, const char *id, size_t len,
                                   void *waiter, uint64_t *tag,
                                   trb_idset_ref_t *ref) {
  uint64_t h = hash(id, len);
  shard_t *sh = shard_of(s, h);
  *ref = NULL;
  pthread_mutex_lock(&sh->mu);
  entry_t **pp = find(sh, h, id, len);
  trb_id_state_t r = TRB_ID_NONE;
  if (!pp) {
    *ref = insert(sh, h, id, len, TRB_ID_PENDING, 0);
  } else {
    r = (trb_id_state_t)(*pp)->state;
    if (tag) *tag = (*pp)->tag;
    if (r == TRB_ID_PENDING) {
      waiter_t *w = trb_malloc(sizeof *w);
      if (w) {
        w->w = waiter;
        w->next = (*pp)->waiters;
        (*pp)->waiters = w;
      } else {
        r = TRB_ID_NONE; /* handle it as new: safe, see the header */
      }
    }
  }
  pthread_mutex_unlock(&sh->mu);
  return r;
}

static void hand_back(waiter_t *w, trb_idset_waiter_cb cb, void *ctx,
                      trb_id_state_t st) {
  while (w) {
    waiter_t *nx = w->next;
    if (cb) cb(ctx, w->w, st);
    trb_free(w);
    w = nx;
  }
}

void trb_idset_mark(trb_idset_t *s, const char *id, size_t len,
                    trb_id_state_t state, uint64_t tag, trb_idset_waiter_cb cb,
                    void *ctx) {
  uint64_t h = hash(id, len);
  shard_t *sh = shard_of(s, h);
  waiter_t *ws = NULL;
  pthread_mutex_lock(&sh->mu);
  entry_t **pp = find(sh, h, id, len);
  if (pp) {
    (*pp)->state = (uint8_t)state;
    (*pp)->tag = tag;
    if (state != TRB_ID_PENDING) {
      ws = (*pp)->waiters;
      (*pp)->waiters = NULL;
    }
  } else {
    insert(sh, h, id, len, state, tag);
  }
  pthread_mutex_unlock(&sh->mu);
  hand_back(ws, cb, ctx, state);
}

void trb_idset_mark_ref(trb_idset_t *s, trb_idset_ref_t e,
                        trb_id_state_t state, uint64_t tag,
                        trb_idset_waiter_cb cb, void *ctx) {
  /* The entry stays where it is (grow() relinks, never moves, entries)
   * and nobody but the claimer removes a PENDING entry. */
  shard_t *sh = shard_of(s, e->hash);
  waiter_t *ws = NULL;
  pthread_mutex_lock(&sh->mu);
  e->state = (uint8_t)state;
  e->tag = tag;
  if (state != TRB_ID_PENDING) {
    ws = e->waiters;
    e->waiters = NULL;
  }
  pthread_mutex_unlock(&sh->mu);
  hand_back(ws, cb, ctx, state);
}

void trb_idset_forget(trb_idset_t *s, const char *id, size_t len,
                      trb_idset_waiter_cb cb, void *ctx) {
  uint64_t h = hash(id, len);
  shard_t *sh = shard_of(s, h);
  waiter_t *ws = NULL;
  pthread_mutex_lock(&sh->mu);
  entry_t **pp = find(sh, h, id, len);
  if (pp) {
    entry_t *e = *pp;
    *pp = e->next;
    sh->n--;
    ws = e->waiters;
    trb_free(e);
  }
  pthread_mutex_unlock(&sh->mu);
  hand_back(ws, cb, ctx, TRB_ID_NONE);
}

bool trb_idset_forget_tagged(trb_idset_t *s, const char *id, size_t len,
                             uint64_t tag) {
  uint64_t h = hash(id, len);
  shard_t *sh = shard_of(s, h);
  bool done = false;
  waiter_t *ws = NULL;
  pthread_mutex_lock(&sh->mu);
  entry_t **pp = find(sh, h, id, len);
  if (pp && (*pp)->tag == tag && (*pp)->state != TRB_ID_PENDING) {
    entry_t *e = *pp;
    *pp = e->next;
    sh->n--;
    ws = e->waiters;
    trb_free(e);
    done = true;
  }
  pthread_mutex_unlock(&sh->mu);
  hand_back(ws, NULL, NULL, TRB_ID_NONE);
  return done;
}

trb_id_state_t trb_idset_get(trb_idset_t *s, const char *id, size_t len) {
  uint64_t h = hash(id, len);
  shard_t *sh = shard_of(s, h);
  pthread_mutex_lock(&sh->mu);
  entry_t **pp = find(sh, h, id, len);
  trb_id_state_t r = pp ? (trb_id_state_t)(*pp)->state : TRB_ID_NONE;
  pthread_mutex_unlock(&sh->mu);
  return r;
}

size_t trb_idset_size(trb_idset_t *s) {
  size_t n = 0;
  for (int i = 0; i < SHARDS; i++) {
    pthread_mutex_lock(&s->sh[i].mu);
    n += s->sh[i].n;
    pthread_mutex_unlock(&s->sh[i].mu);
  }
  return n;
}

void trb_idset_destroy(trb_idset_t *s, trb_idset_waiter_cb cb, void *ctx) {
  if (!s) return;
  for (int i = 0; i < SHARDS; i++) {
    shard_t *sh = &s->sh[i];
    for (size_t k = 0; k < sh->nb; k++) {
      entry_t *e = sh->b[k];
      while (e) {
        entry_t *nx = e->next;
        hand_back(e->waiters, cb, ctx, TRB_ID_NONE);
        trb_free(e);
        e = nx;
      }
    }
    trb_free(sh->b);
    pthread_mutex_destroy(&sh->mu);
  }
  trb_free(s);
}
