/*
 * alloc.c — heap allocation with a test-only failure hook (see alloc.h).
 */
#include "src/common/alloc.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static _Atomic(trb_alloc_fail_cb) fail_hook;
static void *_Atomic fail_user;

static int should_fail(size_t size) {
  trb_alloc_fail_cb hook = atomic_load_explicit(&fail_hook, memory_order_acquire);
  return hook != NULL && hook(size, atomic_load(&fail_user));
}

void trb_alloc_set_fail_hook(trb_alloc_fail_cb hook, void *user) {
  atomic_store(&fail_user, user);
  atomic_store_explicit(&fail_hook, hook, memory_order_release);
}

void *trb_malloc(size_t size) {
  if (should_fail(size)) return NULL;
  return malloc(size == 0 ? 1 : size);
}

void *trb_calloc(size_t n, size_t size) {
  if (size != 0 && n > SIZE_MAX / size) return NULL;
  if (should_fail(n * size)) return NULL;
  return calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
}

void *trb_realloc(void *p, size_t size) {
  if (should_fail(size)) return NULL;
  return realloc(p, size == 0 ? 1 : size);
}

void trb_free(void *p) { free(p); }

char *trb_strndup(const char *s, size_t n) {
  char *d;
  if (s == NULL) return NULL;
  d = trb_malloc(n + 1);
  if (d == NULL) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *trb_strdup(const char *s) {
  if (s == NULL) return NULL;
  return trb_strndup(s, strlen(s));
}

void trb_alloc_process_init(void) {
  /* Setting either knob turns off glibc's dynamic mmap threshold, which
   * would otherwise have risen past the sizes below after their first
   * free: set both. */
  mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
}
