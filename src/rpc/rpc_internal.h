/*
 * rpc_internal.h — shared pieces of src/rpc: completion-queue tags, the
 * write queue, byte-buffer and metadata helpers. Not a public API.
 */
#ifndef TRB_SRC_RPC_RPC_INTERNAL_H
#define TRB_SRC_RPC_RPC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "src/rpc/rpc.h"

/* Every tag given to a completion queue points at one of these; the loop
 * thread calls done(tag, ok) for each completed batch. */
typedef struct trb_rpc_tag_s trb_rpc_tag_t;
struct trb_rpc_tag_s {
  void (*done)(trb_rpc_tag_t *tag, bool ok);
};

struct trb_rpc_loop_s {
  grpc_completion_queue *cq;
  int n_threads;
  pthread_t *threads;
  atomic_int live_calls;
  char name[16];
};

/* A loop drained by n_threads threads (servers use n > 1). */
grpc_status_code trb_rpc_loop_create_n(const char *name, int n_threads,
                                       trb_rpc_loop_t **out, trb_status_t *st);

struct trb_rpc_channel_s {
  grpc_channel *channel;
};

/* Call credentials sending `authorization: Bearer <token>` with the token
 * read from `path`, read again whenever the file changes (token_file.c).
 * Returns OK; UNAUTHENTICATED naming the file when it cannot be read now
 * or holds no token; RESOURCE_EXHAUSTED. */
grpc_status_code trb_rpc_token_file_creds(const char *path,
                                          grpc_call_credentials **out,
                                          trb_status_t *st);

/* Abort with file:line on a broken invariant (never for input errors). */
#define TRB_RPC_CHECK(cond)                                        \
  do {                                                             \
    if (!(cond)) trb_rpc_check_failed(__FILE__, __LINE__, #cond);  \
  } while (0)
_Noreturn void trb_rpc_check_failed(const char *file, int line,
                                    const char *what);

/* ---- write queue (guarded by the owning call's mutex) ---- */
typedef struct trb_rpc_wq_node_s {
  grpc_byte_buffer *bb;
  size_t len;
  void *tag;
  struct trb_rpc_wq_node_s *next;
} trb_rpc_wq_node_t;

typedef struct trb_rpc_wq_s {
  trb_rpc_wq_node_t *head;
  trb_rpc_wq_node_t *tail;
  size_t bytes;  /* queued, excluding the node in flight */
  size_t count;
} trb_rpc_wq_t;

/* A new node holding a copy of data, or NULL on allocation failure. */
trb_rpc_wq_node_t *trb_rpc_wq_node_create(const void *data, size_t len,
                                          void *tag);
void trb_rpc_wq_node_destroy(trb_rpc_wq_node_t *n);
void trb_rpc_wq_push(trb_rpc_wq_t *q, trb_rpc_wq_node_t *n);
trb_rpc_wq_node_t *trb_rpc_wq_pop(trb_rpc_wq_t *q);
/* Detach every node (in order) and return the list head. */
trb_rpc_wq_node_t *trb_rpc_wq_take_all(trb_rpc_wq_t *q);

/* ---- byte buffers ---- */
/* A byte buffer holding a copy of data (gRPC aborts on out-of-memory). */
grpc_byte_buffer *trb_rpc_bb_copy(const void *data, size_t len);
/* One contiguous slice with the buffer's bytes (a reference when the buffer
 * is one slice already, else a copy). The caller unrefs it. */
grpc_slice trb_rpc_bb_flatten(grpc_byte_buffer *bb);

/* ---- metadata ---- */
/* Build gRPC metadata from trb_rpc_md_t (slices are copies). */
grpc_metadata *trb_rpc_md_build(const trb_rpc_md_t *md, size_t n);
void trb_rpc_md_free(grpc_metadata *md, size_t n);
/* Index of `key` in a received metadata array; -1 when absent. */
long trb_rpc_md_index(const grpc_metadata_array *arr, const char *key);
/* Find `key` in a received metadata array; NULL when absent. */
const grpc_slice *trb_rpc_md_find(const grpc_metadata_array *arr,
                                  const char *key);

/* Channel arguments (gRPC 1.51 has no public constructors). `key` and
 * `value` are borrowed and must outlive the grpc_channel_args use. */
grpc_arg trb_rpc_arg_int(const char *key, int value);
grpc_arg trb_rpc_arg_str(const char *key, const char *value);

/* Default GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE: with GRPC_WRITE_BUFFER_HINT on
 * queued writes, 1 MiB lets several 64 KiB messages share a sendmsg
 * (perf/README.md: 64 KiB stream rpc/raw ratio ~0.45 → ~0.65). */
#define TRB_RPC_DEFAULT_WRITE_BUFFER_BYTES (1024 * 1024)

/* Deadline `timeout_ms` from now; 0 or less → infinite. */
gpr_timespec trb_rpc_deadline_from_timeout(int64_t timeout_ms);

/* Metadata key of the google.rpc.Status trailer. */
#define TRB_RPC_STATUS_DETAILS_KEY "grpc-status-details-bin"

#endif /* TRB_SRC_RPC_RPC_INTERNAL_H */
