/*
 * idset.c — sharded open-addressing hash map of message ids (see idset.h).
 */
#include "src/streamer/idset.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "src/common/alloc.h"

#define SHARDS 64

typedef struct waiter_s {
  void *w;
  struct waiter_s *next;
} waiter_t;

typedef struct trb_idset_entry_s {
  uint64_t hash;
  /* Parked waiters; on a shard's free list, the next free entry. */
  union {
    waiter_t *waiters;
    struct trb_idset_entry_s *next_free;
  };
  uint64_t tag;
  uint8_t state;
  uint8_t slab; /* from the shard's slab (else its own allocation) */
  uint16_t len;
  char id[];
} entry_t;

/* Entries are carved from per-shard slabs of SLAB_ENTRIES fixed-size
 * cells (ENTRY_SIZE bytes, ids up to ENTRY_ID_MAX bytes inline: Pub/Sub
 * message ids are decimal numbers of ~16-20 digits); a longer id gets an
 * allocation of its own. A freed cell goes to its shard's free list and
 * is reused by the next insert: entries never move while referenced, and
 * the receive path makes no allocation per id. Memory: the cells of a
 * shard are never given back before trb_idset_destroy, so the set holds
 * its peak number of ids (ENTRY_SIZE bytes each, plus the slot arrays,
 * which never shrink either) — the peak is bounded by the retention
 * (TRB_STREAMER_ACKED_RETENTION_S of written ids plus what flow control
 * lets in). Under AddressSanitizer a free cell is poisoned past its
 * free-list link, so a use after forget still reports. */
#define ENTRY_SIZE 64
#define ENTRY_ID_MAX (ENTRY_SIZE - offsetof(entry_t, id))
#define SLAB_ENTRIES 128

typedef struct slab_s {
  struct slab_s *next;
  _Alignas(entry_t) unsigned char cells[SLAB_ENTRIES][ENTRY_SIZE];
} slab_t;

/* Open addressing with linear probing: a slot holds the id's hash next to
 * its entry, so a probe compares hashes in one contiguous array and reads
 * an entry only on a full 64-bit hash match (a new id — every claim —
 * usually costs one cache line, not a walk over cache-cold entries).
 * Entries never move (references stay valid); slots do (grow, and the
 * backward shift on removal). */
typedef struct slot_s {
  uint64_t hash;
  entry_t *e; /* NULL = empty */
} slot_t;

typedef struct shard_s {
  pthread_mutex_t mu;
  slot_t *b;
  size_t nb, n; /* nb: 0 or a power of two; load at most 1/2 */
  slab_t *slabs;       /* every slab of the shard (freed by destroy) */
  entry_t *free_cells; /* free list of slab cells */
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

static size_t home(const shard_t *sh, uint64_t h) {
  return (size_t)(h / SHARDS) & (sh->nb - 1);
}

/* The slot holding `id`, or NULL. */
static slot_t *find(shard_t *sh, uint64_t h, const char *id, size_t len) {
  if (!sh->nb) return NULL;
  size_t mask = sh->nb - 1;
  for (size_t k = home(sh, h);; k = (k + 1) & mask) {
    slot_t *sl = &sh->b[k];
    if (!sl->e) return NULL;
    if (sl->hash == h && sl->e->len == len && memcmp(sl->e->id, id, len) == 0)
      return sl;
  }
}

static void place(slot_t *b, size_t nb, uint64_t h, entry_t *e) {
  size_t k = (size_t)(h / SHARDS) & (nb - 1);
  while (b[k].e) k = (k + 1) & (nb - 1);
  b[k].hash = h;
  b[k].e = e;
}

static bool grow(shard_t *sh) {
  size_t nb = sh->nb ? sh->nb * 2 : 64;
  slot_t *b = trb_calloc(nb, sizeof *b);
  if (!b) return false;
  for (size_t i = 0; i < sh->nb; i++)
    if (sh->b[i].e) place(b, nb, sh->b[i].hash, sh->b[i].e);
  trb_free(sh->b);
  sh->b = b;
  sh->nb = nb;
  return true;
}

/* Empty slot `sl` (its entry is the caller's), shifting back the entries
 * of the probe run after it that may move (no tombstones). */
static void remove_slot(shard_t *sh, slot_t *sl) {
  size_t mask = sh->nb - 1;
  size_t i = (size_t)(sl - sh->b);
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (!sh->b[j].e) break;
    size_t k = home(sh, sh->b[j].hash);
    /* The entry at j may fill the hole at i when its home k is not
     * cyclically in (i, j]. */
    bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (stays) continue;
    sh->b[i] = sh->b[j];
    i = j;
  }
  sh->b[i].e = NULL;
  sh->b[i].hash = 0;
  sh->n--;
}

/* An entry for an id of `len` bytes: a slab cell when it fits, else an
 * allocation of its own. Shard lock held. NULL when out of memory. */
static entry_t *entry_alloc(shard_t *sh, size_t len) {
  if (len > ENTRY_ID_MAX) {
    entry_t *e = trb_malloc(sizeof *e + len);
    if (e) e->slab = 0;
    return e;
  }
  if (!sh->free_cells) {
    slab_t *sl = trb_malloc(sizeof *sl);
    if (!sl) return NULL;
    sl->next = sh->slabs;
    sh->slabs = sl;
    /* Thread the cells onto the free list, first cell first out. */
    for (size_t i = SLAB_ENTRIES; i-- > 0;) {
      entry_t *c = (entry_t *)(void *)sl->cells[i];
      c->next_free = sh->free_cells;
      sh->free_cells = c;
      TRB_POISON((char *)c + offsetof(entry_t, tag),
             ENTRY_SIZE - offsetof(entry_t, tag));
    }
  }
  entry_t *e = sh->free_cells;
  TRB_UNPOISON((char *)e + offsetof(entry_t, tag), ENTRY_SIZE - offsetof(entry_t, tag));
  sh->free_cells = e->next_free;
  e->slab = 1;
  return e;
}

/* Give back `e` (removed from the slots). Shard lock held. */
static void entry_free(shard_t *sh, entry_t *e) {
  if (!e->slab) {
    trb_free(e);
    return;
  }
  e->hash = 0;
  e->next_free = sh->free_cells;
  sh->free_cells = e;
  TRB_POISON((char *)e + offsetof(entry_t, tag), ENTRY_SIZE - offsetof(entry_t, tag));
}

static entry_t *insert(shard_t *sh, uint64_t h, const char *id, size_t len,
                       trb_id_state_t state, uint64_t tag) {
  if (len > UINT16_MAX) return NULL;
  /* Load at most 1/2; when growing fails, any room left (an empty slot
   * must remain: probes end there). */
  if (2 * (sh->n + 1) > sh->nb && !grow(sh) && sh->n + 2 > sh->nb)
    return NULL;
  entry_t *e = entry_alloc(sh, len);
  if (!e) return NULL;
  e->hash = h;
  e->waiters = NULL;
  e->tag = tag;
  e->state = (uint8_t)state;
  e->len = (uint16_t)len;
  memcpy(e->id, id, len);
  place(sh->b, sh->nb, h, e);
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
  slot_t *sl = find(sh, h, id, len);
  trb_id_state_t r = TRB_ID_NONE;
  if (!sl) {
    *ref = insert(sh, h, id, len, TRB_ID_PENDING, 0);
  } else {
    entry_t *e = sl->e;
    r = (trb_id_state_t)e->state;
    if (tag) *tag = e->tag;
    if (r == TRB_ID_PENDING) {
      waiter_t *w = trb_malloc(sizeof *w);
      if (w) {
        w->w = waiter;
        w->next = e->waiters;
        e->waiters = w;
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
  slot_t *sl = find(sh, h, id, len);
  if (sl) {
    entry_t *e = sl->e;
    e->state = (uint8_t)state;
    e->tag = tag;
    if (state != TRB_ID_PENDING) {
      ws = e->waiters;
      e->waiters = NULL;
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
  /* The entry stays where it is (grow() and removals move slots, never
   * entries)
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
  slot_t *sl = find(sh, h, id, len);
  if (sl) {
    entry_t *e = sl->e;
    remove_slot(sh, sl);
    ws = e->waiters;
    entry_free(sh, e);
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
  slot_t *sl = find(sh, h, id, len);
  if (sl && sl->e->tag == tag && sl->e->state != TRB_ID_PENDING) {
    entry_t *e = sl->e;
    remove_slot(sh, sl);
    ws = e->waiters;
    entry_free(sh, e);
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
  slot_t *sl = find(sh, h, id, len);
  trb_id_state_t r = sl ? (trb_id_state_t)sl->e->state : TRB_ID_NONE;
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
      entry_t *e = sh->b[k].e;
      if (!e) continue;
      hand_back(e->waiters, cb, ctx, TRB_ID_NONE);
      if (!e->slab) trb_free(e);
    }
    trb_free(sh->b);
    while (sh->slabs) {
      slab_t *sl = sh->slabs;
      sh->slabs = sl->next;
      TRB_UNPOISON(sl, sizeof *sl);
      trb_free(sl);
    }
    pthread_mutex_destroy(&sh->mu);
  }
  trb_free(s);
}
