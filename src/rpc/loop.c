/*
 * loop.c — completion-queue loops (see rpc.h) and shared helpers.
 *
 * A loop is a grpc_completion_queue created for `next` plus the thread(s)
 * blocked in grpc_completion_queue_next. Each event's tag is a trb_rpc_tag_t
 * whose done() runs on the loop thread. Shutdown follows grpc-cq.md:
 * shutdown → drain until GRPC_QUEUE_SHUTDOWN → destroy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#include "src/common/alloc.h"
#include "src/rpc/rpc_internal.h"

void trb_rpc_check_failed(const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: rpc invariant failed: %s\n", file, line, what);
  abort();
}

void trb_rpc_init(void) { grpc_init(); }

void trb_rpc_shutdown(void) { grpc_shutdown(); }

static void *loop_main(void *arg) {
  trb_rpc_loop_t *loop = arg;

  pthread_setname_np(pthread_self(), loop->name);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(
        loop->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type == GRPC_OP_COMPLETE) {
      trb_rpc_tag_t *tag = ev.tag;
      tag->done(tag, ev.success != 0);
    }
  }
  return NULL;
}

grpc_status_code trb_rpc_loop_create_n(const char *name, int n_threads,
                                       trb_rpc_loop_t **out, trb_status_t *st) {
  trb_rpc_loop_t *loop;
  int started = 0;

  *out = NULL;
  if (n_threads < 1) n_threads = 1;
  loop = trb_calloc(1, sizeof(*loop));
  if (loop == NULL) goto oom;
  loop->threads = trb_calloc((size_t)n_threads, sizeof(pthread_t));
  if (loop->threads == NULL) goto oom;
  snprintf(loop->name, sizeof(loop->name), "%s", name ? name : "trb-rpc");
  atomic_init(&loop->live_calls, 0);
  loop->cq = grpc_completion_queue_create_for_next(NULL);
  for (started = 0; started < n_threads; started++) {
    if (pthread_create(&loop->threads[started], NULL, loop_main, loop) != 0) {
      grpc_status_code code = trb_status_set(
          st, GRPC_STATUS_RESOURCE_EXHAUSTED,
          "loop %s: cannot start thread %d", loop->name, started);
      loop->n_threads = started;
      trb_rpc_loop_destroy(loop); /* frees loop: format the message first */
      return code;
    }
  }
  loop->n_threads = n_threads;
  *out = loop;
  return GRPC_STATUS_OK;

oom:
  if (loop) trb_free(loop->threads);
  trb_free(loop);
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "loop: out of memory");
}

grpc_status_code trb_rpc_loop_create(const char *name, trb_rpc_loop_t **out,
                                     trb_status_t *st) {
  return trb_rpc_loop_create_n(name, 1, out, st);
}

void trb_rpc_loop_destroy(trb_rpc_loop_t *loop) {
  if (loop == NULL) return;
  TRB_RPC_CHECK(atomic_load(&loop->live_calls) == 0);
  if (loop->cq) grpc_completion_queue_shutdown(loop->cq);
  for (int i = 0; i < loop->n_threads; i++) pthread_join(loop->threads[i], NULL);
  if (loop->cq) grpc_completion_queue_destroy(loop->cq);
  trb_free(loop->threads);
  trb_free(loop);
}

int trb_rpc_loop_live_calls(const trb_rpc_loop_t *loop) {
  return atomic_load(&((trb_rpc_loop_t *)loop)->live_calls);
}

/* ---- write queue ---- */

trb_rpc_wq_node_t *trb_rpc_wq_node_create(const void *data, size_t len,
                                          void *tag) {
  trb_rpc_wq_node_t *n = trb_malloc(sizeof(*n));
  if (n == NULL) return NULL;
  n->bb = trb_rpc_bb_copy(data, len);
  n->len = len;
  n->tag = tag;
  n->next = NULL;
  return n;
}

void trb_rpc_wq_node_destroy(trb_rpc_wq_node_t *n) {
  if (n == NULL) return;
  if (n->bb) grpc_byte_buffer_destroy(n->bb);
  trb_free(n);
}

void trb_rpc_wq_push(trb_rpc_wq_t *q, trb_rpc_wq_node_t *n) {
  n->next = NULL;
  if (q->tail) q->tail->next = n;
  else q->head = n;
  q->tail = n;
  q->bytes += n->len;
  q->count++;
}

trb_rpc_wq_node_t *trb_rpc_wq_pop(trb_rpc_wq_t *q) {
  trb_rpc_wq_node_t *n = q->head;
  if (n == NULL) return NULL;
  q->head = n->next;
  if (q->head == NULL) q->tail = NULL;
  q->bytes -= n->len;
  q->count--;
  n->next = NULL;
  return n;
}

trb_rpc_wq_node_t *trb_rpc_wq_take_all(trb_rpc_wq_t *q) {
  trb_rpc_wq_node_t *all = q->head;
  q->head = q->tail = NULL;
  q->bytes = 0;
  q->count = 0;
  return all;
}

/* ---- byte buffers ---- */

grpc_byte_buffer *trb_rpc_bb_copy(const void *data, size_t len) {
  grpc_slice s = grpc_slice_from_copied_buffer(data, len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

grpc_slice trb_rpc_bb_flatten(grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader r;
  grpc_slice s;

  if (bb->type == GRPC_BB_RAW &&
      bb->data.raw.compression == GRPC_COMPRESS_NONE &&
      bb->data.raw.slice_buffer.count == 1) {
    return grpc_slice_ref(bb->data.raw.slice_buffer.slices[0]);
  }
  TRB_RPC_CHECK(grpc_byte_buffer_reader_init(&r, bb));
  s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  return s;
}

/* ---- metadata ---- */

grpc_metadata *trb_rpc_md_build(const trb_rpc_md_t *md, size_t n) {
  grpc_metadata *out;
  if (n == 0) return NULL;
  out = trb_calloc(n, sizeof(*out));
  if (out == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    size_t vlen = md[i].value_len ? md[i].value_len : strlen(md[i].value);
    out[i].key = grpc_slice_from_copied_string(md[i].key);
    out[i].value = grpc_slice_from_copied_buffer(md[i].value, vlen);
  }
  return out;
}

void trb_rpc_md_free(grpc_metadata *md, size_t n) {
  if (md == NULL) return;
  for (size_t i = 0; i < n; i++) {
    grpc_slice_unref(md[i].key);
    grpc_slice_unref(md[i].value);
  }
  trb_free(md);
}

long trb_rpc_md_index(const grpc_metadata_array *arr, const char *key) {
  size_t klen = strlen(key);
  for (size_t i = 0; i < arr->count; i++) {
    const grpc_slice *k = &arr->metadata[i].key;
    if (GRPC_SLICE_LENGTH(*k) == klen &&
        memcmp(GRPC_SLICE_START_PTR(*k), key, klen) == 0) {
      return (long)i;
    }
  }
  return -1;
}

const grpc_slice *trb_rpc_md_find(const grpc_metadata_array *arr,
                                  const char *key) {
  long i = trb_rpc_md_index(arr, key);
  return i < 0 ? NULL : &arr->metadata[i].value;
}

gpr_timespec trb_rpc_deadline_from_timeout(int64_t timeout_ms) {
  if (timeout_ms <= 0) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

grpc_arg trb_rpc_arg_int(const char *key, int value) {
  grpc_arg a;
  memset(&a, 0, sizeof(a));
  a.type = GRPC_ARG_INTEGER;
  a.key = (char *)key;
  a.value.integer = value;
  return a;
}

grpc_arg trb_rpc_arg_str(const char *key, const char *value) {
  grpc_arg a;
  memset(&a, 0, sizeof(a));
  a.type = GRPC_ARG_STRING;
  a.key = (char *)key;
  a.value.string = (char *)value;
  return a;
}
