/* util.c — containers of the Pub/Sub emulator: seq → entry map, the timer
 * min-heap, ordering-key queues, intrusive lists. mu held for all. */
#include <errno.h>
#include <string.h>

#include "src/common/alloc.h"
#include "src/emulator/pubsub/ps_internal.h"

/* ---- map ---------------------------------------------------------------- */

static size_t slot_of(int64_t key, size_t cap) {
  uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 17) & (cap - 1);
}

static int map_grow(ps_map_t *m) {
  size_t cap = m->cap ? m->cap : 16;
  while ((m->n + 1) * 2 > cap) cap *= 2; /* same size: drops tombstones */
  int64_t *keys = trb_calloc(cap, sizeof(*keys));
  void **vals = trb_calloc(cap, sizeof(*vals));
  if (keys == NULL || vals == NULL) {
    trb_free(keys);
    trb_free(vals);
    return -ENOMEM;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (m->keys[i] > 0) {
      size_t j = slot_of(m->keys[i], cap);
      while (keys[j] != 0) j = (j + 1) & (cap - 1);
      keys[j] = m->keys[i];
      vals[j] = m->vals[i];
    }
  }
  trb_free(m->keys);
  trb_free(m->vals);
  m->keys = keys;
  m->vals = vals;
  m->cap = cap;
  m->used = m->n;
  return 0;
}

int ps_map_put(ps_map_t *m, int64_t key, void *val) {
  if (m->cap == 0 || (m->used + 1) * 4 >= m->cap * 3) {
    if (map_grow(m) != 0) return -ENOMEM;
  }
  size_t j = slot_of(key, m->cap);
  size_t tomb = SIZE_MAX;
  while (m->keys[j] != 0) {
    if (m->keys[j] == key) {
      m->vals[j] = val;
      return 0;
    }
    if (m->keys[j] == -1 && tomb == SIZE_MAX) tomb = j;
    j = (j + 1) & (m->cap - 1);
  }
  if (tomb != SIZE_MAX) {
    j = tomb;
  } else {
    m->used++;
  }
  m->keys[j] = key;
  m->vals[j] = val;
  m->n++;
  return 0;
}

static size_t map_find(const ps_map_t *m, int64_t key) {
  if (m->cap == 0 || key <= 0) return SIZE_MAX;
  size_t j = slot_of(key, m->cap);
  while (m->keys[j] != 0) {
    if (m->keys[j] == key) return j;
    j = (j + 1) & (m->cap - 1);
  }
  return SIZE_MAX;
}

void *ps_map_get(const ps_map_t *m, int64_t key) {
  size_t j = map_find(m, key);
  return j == SIZE_MAX ? NULL : m->vals[j];
}

void *ps_map_del(ps_map_t *m, int64_t key) {
  size_t j = map_find(m, key);
  if (j == SIZE_MAX) return NULL;
  void *v = m->vals[j];
  m->keys[j] = -1;
  m->vals[j] = NULL;
  m->n--;
  if (m->n == 0) {
    memset(m->keys, 0, m->cap * sizeof(*m->keys));
    m->used = 0;
  }
  return v;
}

void ps_map_free(ps_map_t *m) {
  trb_free(m->keys);
  trb_free(m->vals);
  memset(m, 0, sizeof(*m));
}

/* ---- heap --------------------------------------------------------------- */

static void heap_set(trb_psemu_t *ps, size_t i, ps_entry_t *e) {
  ps->heap[i] = e;
  e->heap_idx = (int)i;
}

static void sift_up(trb_psemu_t *ps, size_t i) {
  ps_entry_t *e = ps->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (ps->heap[p]->due_ms <= e->due_ms) break;
    heap_set(ps, i, ps->heap[p]);
    i = p;
  }
  heap_set(ps, i, e);
}

static void sift_down(trb_psemu_t *ps, size_t i) {
  ps_entry_t *e = ps->heap[i];
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= ps->heap_n) break;
    size_t c = l;
    if (l + 1 < ps->heap_n && ps->heap[l + 1]->due_ms < ps->heap[l]->due_ms) {
      c = l + 1;
    }
    if (ps->heap[c]->due_ms >= e->due_ms) break;
    heap_set(ps, i, ps->heap[c]);
    i = c;
  }
  heap_set(ps, i, e);
}

int ps_heap_push(trb_psemu_t *ps, ps_entry_t *e) {
  if (ps->heap_n == ps->heap_cap) {
    size_t cap = ps->heap_cap ? ps->heap_cap * 2 : 1024;
    ps_entry_t **h = trb_realloc(ps->heap, cap * sizeof(*h));
    if (h == NULL) return -ENOMEM;
    ps->heap = h;
    ps->heap_cap = cap;
  }
  heap_set(ps, ps->heap_n++, e);
  sift_up(ps, ps->heap_n - 1);
  return 0;
}

void ps_heap_remove(trb_psemu_t *ps, ps_entry_t *e) {
  if (e->heap_idx < 0) return;
  size_t i = (size_t)e->heap_idx;
  e->heap_idx = -1;
  ps->heap_n--;
  if (i == ps->heap_n) return;
  heap_set(ps, i, ps->heap[ps->heap_n]);
  sift_down(ps, i);
  sift_up(ps, (size_t)ps->heap[i]->heap_idx);
}

void ps_heap_fix(trb_psemu_t *ps, ps_entry_t *e) {
  if (e->heap_idx < 0) return;
  sift_down(ps, (size_t)e->heap_idx);
  sift_up(ps, (size_t)e->heap_idx);
}

/* ---- ordering keys ------------------------------------------------------ */

static size_t str_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return (size_t)h;
}

ps_keyq_t *ps_keyq_get(ps_sub_t *s, const char *key, bool create) {
  if (s->keys_cap == 0) {
    if (!create) return NULL;
    s->keys = trb_calloc(256, sizeof(*s->keys));
    if (s->keys == NULL) return NULL;
    s->keys_cap = 256;
  }
  size_t b = str_hash(key) & (s->keys_cap - 1);
  for (ps_keyq_t *k = s->keys[b]; k; k = k->hnext) {
    if (strcmp(k->key, key) == 0) return k;
  }
  if (!create) return NULL;
  ps_keyq_t *k = trb_calloc(1, sizeof(*k));
  if (k == NULL) return NULL;
  k->key = trb_strdup(key);
  if (k->key == NULL) {
    trb_free(k);
    return NULL;
  }
  k->hnext = s->keys[b];
  s->keys[b] = k;
  return k;
}

void ps_keyq_drop(ps_sub_t *s, ps_keyq_t *k) {
  size_t b = str_hash(k->key) & (s->keys_cap - 1);
  for (ps_keyq_t **pp = &s->keys[b]; *pp; pp = &(*pp)->hnext) {
    if (*pp == k) {
      *pp = k->hnext;
      break;
    }
  }
  trb_free(k->key);
  trb_free(k);
}

void ps_keys_free(ps_sub_t *s) {
  for (size_t b = 0; b < s->keys_cap; b++) {
    ps_keyq_t *k = s->keys[b];
    while (k) {
      ps_keyq_t *n = k->hnext;
      trb_free(k->key);
      trb_free(k);
      k = n;
    }
  }
  trb_free(s->keys);
  s->keys = NULL;
  s->keys_cap = 0;
}

/* ---- lists -------------------------------------------------------------- */

void ps_list_push_back(ps_entry_t **head, ps_entry_t **tail, ps_entry_t *e) {
  e->next = NULL;
  e->prev = *tail;
  if (*tail) {
    (*tail)->next = e;
  } else {
    *head = e;
  }
  *tail = e;
}

void ps_list_push_front(ps_entry_t **head, ps_entry_t **tail, ps_entry_t *e) {
  e->prev = NULL;
  e->next = *head;
  if (*head) {
    (*head)->prev = e;
  } else {
    *tail = e;
  }
  *head = e;
}

void ps_list_remove(ps_entry_t **head, ps_entry_t **tail, ps_entry_t *e) {
  if (e->prev) {
    e->prev->next = e->next;
  } else {
    *head = e->next;
  }
  if (e->next) {
    e->next->prev = e->prev;
  } else {
    *tail = e->prev;
  }
  e->prev = e->next = NULL;
}

void ps_list_insert_before(ps_entry_t **head, ps_entry_t **tail,
                           ps_entry_t *at, ps_entry_t *e) {
  if (at == NULL) {
    ps_list_push_back(head, tail, e);
    return;
  }
  e->next = at;
  e->prev = at->prev;
  if (at->prev) {
    at->prev->next = e;
  } else {
    *head = e;
  }
  at->prev = e;
}

void ps_klist_push_back(ps_keyq_t *k, ps_entry_t *e) {
  e->knext = NULL;
  e->kprev = k->tail;
  if (k->tail) {
    k->tail->knext = e;
  } else {
    k->head = e;
  }
  k->tail = e;
}

void ps_klist_remove(ps_keyq_t *k, ps_entry_t *e) {
  if (e->kprev) {
    e->kprev->knext = e->knext;
  } else {
    k->head = e->knext;
  }
  if (e->knext) {
    e->knext->kprev = e->kprev;
  } else {
    k->tail = e->kprev;
  }
  e->kprev = e->knext = NULL;
}
