/*
 * alloc.h — the one route for Tributary's heap allocations, with a test-only
 * failure hook (STYLE.md 3.4; models: flb_malloc, uv_replace_allocator).
 *
 * All functions behave like their libc namesakes. trb_free(NULL) is a no-op.
 * Threading: thread-safe. The failure hook is process-wide and meant to be
 * installed by a test before it starts threads.
 */
#ifndef TRB_SRC_COMMON_ALLOC_H
#define TRB_SRC_COMMON_ALLOC_H

#include <stddef.h>

/*
 * Memory that is recycled instead of freed (free lists, slabs) is poisoned
 * while it waits, so AddressSanitizer still reports a use after release;
 * outside ASan these do nothing. `p`: the region's start, `n`: its bytes.
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define TRB_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define TRB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define TRB_POISON(p, n) ((void)(p), (void)(n))
#define TRB_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** malloc(size); NULL on failure (or when the failure hook says so). */
void *trb_malloc(size_t size);
/** calloc(n, size) with overflow check; NULL on failure. */
void *trb_calloc(size_t n, size_t size);
/** realloc(p, size); NULL on failure, `p` then still valid and owned by the caller. */
void *trb_realloc(void *p, size_t size);
/** free(p); NULL-safe. */
void trb_free(void *p);
/** strdup(s) via trb_malloc; NULL if `s` is NULL or on failure. Caller frees. */
char *trb_strdup(const char *s);
/** Copy of `n` bytes of `s` plus a NUL, via trb_malloc; caller frees. */
char *trb_strndup(const char *s, size_t n);

/**
 * Process-wide allocator tuning for a streaming process; call once at start
 * from main(), before threads. glibc returns freed memory above the heap top
 * to the kernel, and serves every block of 128 KiB or more with its own
 * mmap/munmap; gRPC's 64 KiB transport buffers, a 500-row batch
 * (~150 KiB) and its AppendRows request would each cost fresh pages — a
 * page fault per 4 KiB — every time (perf/README.md). This serves blocks of
 * up to 32 MiB (mallopt M_MMAP_THRESHOLD; larger than any request the
 * pipelines send) from the heap, and keeps up to 32 MiB of freed memory at
 * a heap's top (M_TRIM_THRESHOLD): freed memory is reused rather than
 * returned, so the resident size stays near the process's peak use (which
 * flow control bounds, docs/streamer.md).
 * Threading: not thread-safe; main thread only.
 */
void trb_alloc_process_init(void);

/**
 * Test hook: called before each allocation with the requested size; when it
 * returns nonzero, the allocation fails (returns NULL). Pass NULL to remove.
 * `user` is borrowed and passed back to `hook`.
 */
typedef int (*trb_alloc_fail_cb)(size_t size, void *user);
void trb_alloc_set_fail_hook(trb_alloc_fail_cb hook, void *user);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_COMMON_ALLOC_H */
