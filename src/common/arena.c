/*
 * arena.c — bump arena and growable byte buffer (see arena.h).
 *
 * Arena layout: the first trb_malloc block holds the arena header, the
 * first chunk's header and its data, so creation is one allocation and the
 * first chunk can never be freed separately. Later chunks are single blocks
 * [chunk_t][data]. `head` is the chunk allocations come from; a request too
 * large for a regular chunk gets a dedicated chunk linked behind `head`, so
 * the free tail of `head` is not wasted.
 */
#include "src/common/arena.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "src/common/alloc.h"

typedef struct chunk_s {
  struct chunk_s *next;
  size_t block_bytes; /* size of the trb_malloc block holding this chunk */
  char *cur;          /* next free byte */
  char *end;          /* one past the last usable byte */
} chunk_t;

struct trb_arena_s {
  chunk_t *head;           /* current chunk */
  chunk_t *first;          /* lives in the arena's own block; kept by reset */
  size_t initial_bytes;    /* data capacity of the first chunk */
  size_t next_chunk_bytes; /* data capacity of the next regular chunk */
  size_t used_bytes;       /* handed out, padding included */
  size_t reserved_bytes;   /* sum of block_bytes over all chunks + header */
};

/* Largest request we accept; keeps every size computation below overflow. */
#define MAX_REQUEST_BYTES (SIZE_MAX / 4)

static char *align_up(char *p) {
  uintptr_t v = (uintptr_t)p;
  return p + ((TRB_ARENA_ALIGN - (v % TRB_ARENA_ALIGN)) % TRB_ARENA_ALIGN);
}

static void chunk_init(chunk_t *c, size_t block_bytes, size_t data_bytes) {
  c->next = NULL;
  c->block_bytes = block_bytes;
  c->cur = (char *)(c + 1);
  c->end = c->cur + data_bytes;
}

/* Take `size` bytes from `c` if they fit; NULL otherwise. */
static void *chunk_take(trb_arena_t *a, chunk_t *c, size_t size) {
  char *p = align_up(c->cur);
  if (p > c->end || size > (size_t)(c->end - p)) return NULL;
  a->used_bytes += (size_t)(p + size - c->cur);
  c->cur = p + size;
  return p;
}

static size_t next_size(size_t cur) {
  return cur >= TRB_ARENA_MAX_CHUNK_BYTES / 2 ? TRB_ARENA_MAX_CHUNK_BYTES : cur * 2;
}

trb_arena_t *trb_arena_create(size_t initial_bytes) {
  trb_arena_t *a;
  size_t block;

  if (initial_bytes == 0) initial_bytes = TRB_ARENA_DEFAULT_CHUNK_BYTES;
  if (initial_bytes > MAX_REQUEST_BYTES) return NULL;
  /* + ALIGN: room to align the first allocation whatever malloc returns. */
  block = sizeof(*a) + sizeof(chunk_t) + initial_bytes + TRB_ARENA_ALIGN;
  a = trb_malloc(block);
  if (a == NULL) return NULL;
  a->first = (chunk_t *)(a + 1);
  chunk_init(a->first, block - sizeof(*a), initial_bytes + TRB_ARENA_ALIGN);
  a->head = a->first;
  a->initial_bytes = initial_bytes;
  a->next_chunk_bytes = next_size(initial_bytes);
  a->used_bytes = 0;
  a->reserved_bytes = block;
  return a;
}

static void free_chunks_but_first(trb_arena_t *a) {
  chunk_t *c = a->head;
  while (c != NULL) {
    chunk_t *next = c->next;
    if (c != a->first) trb_free(c);
    c = next;
  }
}

void trb_arena_destroy(trb_arena_t *a) {
  if (a == NULL) return;
  free_chunks_but_first(a);
  trb_free(a); /* the first chunk lives in this block */
}

void trb_arena_reset(trb_arena_t *a) {
  free_chunks_but_first(a);
  chunk_init(a->first, a->first->block_bytes, a->initial_bytes + TRB_ARENA_ALIGN);
  a->head = a->first;
  a->next_chunk_bytes = next_size(a->initial_bytes);
  a->used_bytes = 0;
  a->reserved_bytes = sizeof(*a) + a->first->block_bytes;
}

static void *alloc_slow(trb_arena_t *a, size_t size) {
  size_t data_bytes = a->next_chunk_bytes;
  bool dedicated = size > data_bytes / 2;
  size_t block;
  chunk_t *c;

  if (dedicated) data_bytes = size;
  data_bytes += TRB_ARENA_ALIGN;
  block = sizeof(chunk_t) + data_bytes;
  c = trb_malloc(block);
  if (c == NULL) return NULL;
  chunk_init(c, block, data_bytes);
  a->reserved_bytes += block;
  if (dedicated) {
    c->next = a->head->next; /* keep allocating from head afterwards */
    a->head->next = c;
  } else {
    c->next = a->head;
    a->head = c;
    a->next_chunk_bytes = next_size(a->next_chunk_bytes);
  }
  return chunk_take(a, c, size); /* fits by construction */
}

void *trb_arena_alloc(trb_arena_t *a, size_t size) {
  void *p;
  if (size == 0) size = 1;
  if (size > MAX_REQUEST_BYTES) return NULL;
  p = chunk_take(a, a->head, size);
  return p != NULL ? p : alloc_slow(a, size);
}

void *trb_arena_calloc(trb_arena_t *a, size_t n, size_t size) {
  void *p;
  if (size != 0 && n > SIZE_MAX / size) return NULL;
  p = trb_arena_alloc(a, n * size);
  if (p != NULL) memset(p, 0, n * size);
  return p;
}

void *trb_arena_memdup(trb_arena_t *a, const void *p, size_t n) {
  void *d = trb_arena_alloc(a, n);
  if (d != NULL && n > 0) memcpy(d, p, n);
  return d;
}

char *trb_arena_strndup(trb_arena_t *a, const char *s, size_t n) {
  char *d;
  if (s == NULL || n >= MAX_REQUEST_BYTES) return NULL;
  d = trb_arena_alloc(a, n + 1);
  if (d == NULL) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *trb_arena_strdup(trb_arena_t *a, const char *s) {
  if (s == NULL) return NULL;
  return trb_arena_strndup(a, s, strlen(s));
}

size_t trb_arena_bytes_used(const trb_arena_t *a) { return a->used_bytes; }

size_t trb_arena_bytes_reserved(const trb_arena_t *a) { return a->reserved_bytes; }

/* ----------------------------------------------------------------- buffer */

#define BUF_MIN_CAP 64

void trb_buf_init(trb_buf_t *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void trb_buf_deinit(trb_buf_t *b) {
  if (b == NULL) return;
  trb_free(b->data);
  trb_buf_init(b);
}

int trb_buf_reserve(trb_buf_t *b, size_t extra_bytes) {
  size_t need, cap;
  char *d;

  if (extra_bytes > SIZE_MAX - 1 - b->len) return -EOVERFLOW;
  need = b->len + extra_bytes + 1;
  if (need <= b->cap) return 0;
  cap = b->cap != 0 ? b->cap : BUF_MIN_CAP;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  d = trb_realloc(b->data, cap);
  if (d == NULL) return -ENOMEM;
  if (b->data == NULL) d[0] = '\0';
  b->data = d;
  b->cap = cap;
  return 0;
}

int trb_buf_append(trb_buf_t *b, const void *p, size_t n) {
  int rc;
  if (n == 0) return 0;
  rc = trb_buf_reserve(b, n);
  if (rc != 0) return rc;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int trb_buf_append_str(trb_buf_t *b, const char *s) {
  return trb_buf_append(b, s, strlen(s));
}

int trb_buf_appendv(trb_buf_t *b, const char *fmt, va_list ap) {
  va_list ap2;
  size_t avail = b->data != NULL ? b->cap - b->len : 0;
  int n, rc;

  va_copy(ap2, ap);
  n = vsnprintf(b->data != NULL ? b->data + b->len : NULL, avail, fmt, ap);
  if (n < 0) {
    rc = -EINVAL;
    goto out;
  }
  if ((size_t)n < avail || n == 0) { /* it fitted, NUL included */
    b->len += (size_t)n;
    rc = 0;
    goto out;
  }
  rc = trb_buf_reserve(b, (size_t)n);
  if (rc != 0) goto out;
  vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
  b->len += (size_t)n;

out:
  /* A failed attempt may have written past len: restore the terminator. */
  if (rc != 0 && b->data != NULL) b->data[b->len] = '\0';
  va_end(ap2);
  return rc;
}

int trb_buf_appendf(trb_buf_t *b, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = trb_buf_appendv(b, fmt, ap);
  va_end(ap);
  return rc;
}

void trb_buf_reset(trb_buf_t *b) {
  b->len = 0;
  if (b->data != NULL) b->data[0] = '\0';
}

char *trb_buf_take(trb_buf_t *b, size_t *len_out) {
  char *d = b->data;
  size_t len = b->len;

  if (d == NULL) {
    d = trb_malloc(1);
    if (d != NULL) d[0] = '\0';
    len = 0;
  }
  trb_buf_init(b);
  if (len_out != NULL) *len_out = len;
  return d;
}
