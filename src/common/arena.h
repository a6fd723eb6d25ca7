/*
 * arena.h — a bump arena for per-request / per-batch memory, and a growable
 * byte buffer (STYLE.md 3.4; models: nginx pools, upb_Arena, gRPC Arena,
 * Fluent Bit flb_sds).
 *
 * Arena: memory comes from a list of chunks obtained with trb_malloc; every
 * allocation is 16-byte aligned and lives until trb_arena_reset or
 * trb_arena_destroy. There is no per-allocation free. Allocation failure
 * (including one injected with trb_alloc_set_fail_hook) returns NULL and
 * leaves the arena usable.
 *
 * Buffer: trb_buf_t owns a heap block that grows by doubling; the content is
 * always NUL-terminated once anything was allocated. Appends are all or
 * nothing: on failure the content is unchanged.
 *
 * Threading: an arena or a buffer belongs to one thread at a time
 * (thread-compatible); different arenas/buffers may be used concurrently.
 */
#ifndef TRB_SRC_COMMON_ARENA_H
#define TRB_SRC_COMMON_ARENA_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Alignment of every arena allocation, in bytes. */
#define TRB_ARENA_ALIGN 16

/** Chunk size used when trb_arena_create is given 0, in bytes. */
#define TRB_ARENA_DEFAULT_CHUNK_BYTES 4096

/** Growth stops doubling chunk sizes at this many bytes. */
#define TRB_ARENA_MAX_CHUNK_BYTES (1024 * 1024)

/** An arena (opaque). */
typedef struct trb_arena_s trb_arena_t;

/**
 * Create an arena whose first chunk holds `initial_bytes` (0: 4 KiB).
 *
 * Params:  initial_bytes — capacity of the first chunk in bytes; the first
 *          chunk is allocated now and kept by trb_arena_reset.
 * Returns: an owned arena (free with trb_arena_destroy), or NULL if the
 *          allocation failed.
 * Threading: thread-safe.
 */
trb_arena_t *trb_arena_create(size_t initial_bytes);

/**
 * Free the arena and everything allocated from it. NULL-safe.
 * Threading: owner thread only.
 */
void trb_arena_destroy(trb_arena_t *a);

/**
 * Allocate `size` bytes (uninitialized), 16-byte aligned. A request that
 * does not fit the current chunk starts a new chunk (doubling, up to
 * 1 MiB per chunk, or exactly large enough for a bigger request).
 *
 * Params:  a — arena; size — bytes (0 is treated as 1).
 * Returns: a pointer owned by the arena, valid until reset/destroy; NULL if
 *          a new chunk could not be allocated or `size` overflows.
 * Threading: owner thread only.
 */
void *trb_arena_alloc(trb_arena_t *a, size_t size);

/**
 * As trb_arena_alloc for `n * size` bytes, zero-filled.
 * Returns: NULL on overflow of `n * size` or allocation failure.
 * Threading: owner thread only.
 */
void *trb_arena_calloc(trb_arena_t *a, size_t n, size_t size);

/**
 * Copy the NUL-terminated `s` into the arena.
 * Params:  s — borrowed; NULL gives NULL.
 * Returns: the arena-owned copy, or NULL (s NULL or allocation failure).
 * Threading: owner thread only.
 */
char *trb_arena_strdup(trb_arena_t *a, const char *s);

/**
 * Copy `n` bytes of `s` into the arena and add a NUL (n + 1 bytes).
 * Params:  s — borrowed; may contain NULs; NULL gives NULL.
 * Returns: the arena-owned copy, or NULL (s NULL or allocation failure).
 * Threading: owner thread only.
 */
char *trb_arena_strndup(trb_arena_t *a, const char *s, size_t n);

/**
 * Copy `n` bytes from `p` into the arena (16-byte aligned).
 * Params:  p — borrowed; may be NULL only when n == 0.
 * Returns: the arena-owned copy, or NULL on allocation failure.
 * Threading: owner thread only.
 */
void *trb_arena_memdup(trb_arena_t *a, const void *p, size_t n);

/**
 * Release everything allocated so far: all chunks but the first are freed
 * and the first chunk is reused from its start. Every pointer previously
 * returned by the arena becomes invalid.
 * Threading: owner thread only.
 */
void trb_arena_reset(trb_arena_t *a);

/**
 * Bytes handed out since create/reset, including alignment padding.
 * Threading: owner thread only.
 */
size_t trb_arena_bytes_used(const trb_arena_t *a);

/**
 * Bytes currently obtained from trb_malloc for chunks (headers included).
 * Always >= trb_arena_bytes_used.
 * Threading: owner thread only.
 */
size_t trb_arena_bytes_reserved(const trb_arena_t *a);

/**
 * A growable byte buffer. Caller-allocated; fields may be read directly:
 * `data` (owned by the buffer, NULL until the first allocation; NUL-
 * terminated at `data[len]` whenever non-NULL), `len` bytes of content,
 * `cap` bytes allocated (room for len + 1).
 */
typedef struct trb_buf_s {
  char *data;
  size_t len;
  size_t cap;
} trb_buf_t;

/** Static initializer for an empty buffer (same as trb_buf_init). */
#define TRB_BUF_INIT {NULL, 0, 0}

/**
 * Initialize an empty buffer; allocates nothing, cannot fail.
 * Threading: thread-compatible.
 */
void trb_buf_init(trb_buf_t *b);

/**
 * Free the buffer's memory and leave it empty (reusable). NULL-safe.
 * Threading: owner thread only.
 */
void trb_buf_deinit(trb_buf_t *b);

/**
 * Ensure room for `extra_bytes` more bytes of content (plus the NUL)
 * without reallocating.
 * Returns: 0; -ENOMEM on allocation failure; -EOVERFLOW if len + extra
 *          overflows size_t. The content is unchanged in every case.
 * Threading: owner thread only.
 */
int trb_buf_reserve(trb_buf_t *b, size_t extra_bytes);

/**
 * Append `n` bytes from `p` (borrowed; may be NULL when n == 0).
 * Returns: 0; -ENOMEM or -EOVERFLOW as trb_buf_reserve (content unchanged).
 * Threading: owner thread only.
 */
int trb_buf_append(trb_buf_t *b, const void *p, size_t n);

/**
 * Append the NUL-terminated `s` (borrowed, not NULL).
 * Returns: as trb_buf_append. Threading: owner thread only.
 */
int trb_buf_append_str(trb_buf_t *b, const char *s);

/**
 * Append printf-style formatted text.
 * Returns: 0; -ENOMEM on allocation failure; -EINVAL on a format error.
 *          The content is unchanged on failure.
 * Threading: owner thread only.
 */
int trb_buf_appendf(trb_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * As trb_buf_appendf with a va_list (`ap` is consumed).
 * Returns: as trb_buf_appendf. Threading: owner thread only.
 */
int trb_buf_appendv(trb_buf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/**
 * Drop the content (len = 0) but keep the allocation for reuse.
 * Threading: owner thread only.
 */
void trb_buf_reset(trb_buf_t *b);

/**
 * Take ownership of the content: returns `data` (NUL-terminated, free with
 * trb_free) and leaves the buffer empty with no allocation.
 *
 * Params:  len_out — may be NULL; receives the content length in bytes.
 * Returns: the owned block; for a buffer that never allocated, a new
 *          1-byte "" block, or NULL (and *len_out = 0) if that fails.
 * Threading: owner thread only.
 */
char *trb_buf_take(trb_buf_t *b, size_t *len_out);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_COMMON_ARENA_H */
