/*
 * client.c — client calls over gRPC core: unary (one batch) and
 * bidirectional streams (see rpc.h for the contract).
 *
 * A stream keeps one batch per kind outstanding: the start batch (send +
 * receive initial metadata), RECV_STATUS_ON_CLIENT, at most one
 * RECV_MESSAGE and at most one SEND_MESSAGE (or SEND_CLOSE_FROM_CLIENT).
 * `ops` counts them; `on_close` is delivered when the status has arrived,
 * the read side reached its end and no batch is outstanding, so it is the
 * last callback. The stream is freed when both the caller (release) and the
 * loop (after on_close) have dropped their reference.
 */
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>

#include "src/common/alloc.h"
#include "src/rpc/rpc_internal.h"

static grpc_status_code check_method(const char *method, trb_status_t *st) {
  if (method == NULL || method[0] != '/' || strchr(method + 1, '/') == NULL) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "method \"%s\" is not of the form "
                          "/package.Service/Method",
                          method ? method : "(null)");
  }
  return GRPC_STATUS_OK;
}

static grpc_call *create_call(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                              const char *method, int64_t timeout_ms) {
  grpc_slice m = grpc_slice_from_copied_string(method);
  grpc_call *call = grpc_channel_create_call(
      ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, loop->cq, m, NULL,
      trb_rpc_deadline_from_timeout(timeout_ms), NULL);
  grpc_slice_unref(m);
  return call;
}

/* Copy a slice into a NUL-terminated heap string ("" on failure). */
static char *slice_to_cstr(grpc_slice s) {
  char *p = trb_strndup((const char *)GRPC_SLICE_START_PTR(s),
                        GRPC_SLICE_LENGTH(s));
  return p ? p : trb_strdup("");
}

/* ======================================================================== */
/* Unary                                                                     */
/* ======================================================================== */

typedef struct unary_s {
  trb_rpc_tag_t tag;
  trb_rpc_loop_t *loop;
  grpc_call *call;
  trb_rpc_unary_cb cb;
  void *user;
  grpc_metadata *md;
  size_t n_md;
  grpc_byte_buffer *send_bb;
  grpc_byte_buffer *recv_bb;
  grpc_metadata_array initial_md;
  grpc_metadata_array trailing_md;
  grpc_status_code status;
  grpc_slice status_message;
} unary_t;

static void unary_free(unary_t *u) {
  if (u->call) grpc_call_unref(u->call);
  trb_rpc_md_free(u->md, u->n_md);
  if (u->send_bb) grpc_byte_buffer_destroy(u->send_bb);
  if (u->recv_bb) grpc_byte_buffer_destroy(u->recv_bb);
  grpc_metadata_array_destroy(&u->initial_md);
  grpc_metadata_array_destroy(&u->trailing_md);
  grpc_slice_unref(u->status_message);
  trb_free(u);
}

static void unary_done(trb_rpc_tag_t *tag, bool ok) {
  unary_t *u = (unary_t *)tag;
  trb_rpc_result_t res;
  grpc_slice resp = grpc_empty_slice();
  const grpc_slice *details;
  char *message;

  /* RECV_STATUS_ON_CLIENT always completes; ok=false only on a broken
   * batch, which gRPC reports through the status as well. */
  (void)ok;
  memset(&res, 0, sizeof(res));
  res.code = u->status;
  message = slice_to_cstr(u->status_message);
  res.message = message;
  details = trb_rpc_md_find(&u->trailing_md, TRB_RPC_STATUS_DETAILS_KEY);
  if (details != NULL) {
    res.details = GRPC_SLICE_START_PTR(*details);
    res.details_len = GRPC_SLICE_LENGTH(*details);
  }
  if (u->status == GRPC_STATUS_OK && u->recv_bb != NULL) {
    resp = trb_rpc_bb_flatten(u->recv_bb);
    res.response = GRPC_SLICE_START_PTR(resp);
    res.response_len = GRPC_SLICE_LENGTH(resp);
  }
  /* The call counts as live until its final callback is due. */
  atomic_fetch_sub(&u->loop->live_calls, 1);
  u->cb(u->user, &res);
  grpc_slice_unref(resp);
  trb_free(message);
  unary_free(u);
}

grpc_status_code trb_rpc_unary_start(trb_rpc_loop_t *loop,
                                     trb_rpc_channel_t *ch, const char *method,
                                     const void *req, size_t req_len,
                                     const trb_rpc_call_opts_t *opts,
                                     trb_rpc_unary_cb cb, void *user,
                                     trb_status_t *st) {
  static const trb_rpc_call_opts_t no_opts;
  unary_t *u;
  grpc_op ops[6];
  grpc_call_error err;
  grpc_status_code code;

  if ((code = check_method(method, st)) != GRPC_STATUS_OK) return code;
  if (cb == NULL) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: completion callback is required", method);
  }
  if (opts == NULL) opts = &no_opts;
  u = trb_calloc(1, sizeof(*u));
  if (u == NULL) goto oom;
  u->tag.done = unary_done;
  u->loop = loop;
  u->cb = cb;
  u->user = user;
  u->status_message = grpc_empty_slice();
  grpc_metadata_array_init(&u->initial_md);
  grpc_metadata_array_init(&u->trailing_md);
  atomic_fetch_add(&loop->live_calls, 1);
  if (opts->n_md > 0) {
    u->md = trb_rpc_md_build(opts->md, opts->n_md);
    if (u->md == NULL) {
      atomic_fetch_sub(&loop->live_calls, 1);
      unary_free(u);
      goto oom;
    }
    u->n_md = opts->n_md;
  }
  u->send_bb = trb_rpc_bb_copy(req, req_len);
  u->call = create_call(loop, ch, method, opts->timeout_ms);

  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = u->n_md;
  ops[0].data.send_initial_metadata.metadata = u->md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = u->send_bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &u->recv_bb;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &u->trailing_md;
  ops[5].data.recv_status_on_client.status = &u->status;
  ops[5].data.recv_status_on_client.status_details = &u->status_message;
  err = grpc_call_start_batch(u->call, ops, 6, &u->tag, NULL);
  if (err != GRPC_CALL_OK) {
    atomic_fetch_sub(&loop->live_calls, 1);
    unary_free(u);
    return trb_status_set(st, GRPC_STATUS_INTERNAL,
                          "%s: grpc_call_start_batch failed (%d)", method,
                          (int)err);
  }
  return GRPC_STATUS_OK;

oom:
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "%s: out of memory", method);
}

/* ---- blocking wrapper ---- */

typedef struct sync_wait_s {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  trb_rpc_response_t *out;
} sync_wait_t;

static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
  uint8_t *d;
  if (p == NULL || n == 0) return NULL;
  d = trb_malloc(n);
  if (d) memcpy(d, p, n);
  return d;
}

static void sync_done(void *user, const trb_rpc_result_t *res) {
  sync_wait_t *w = user;
  trb_rpc_response_t *out = w->out;

  out->code = res->code;
  out->message = trb_strdup(res->message);
  out->details = dup_bytes(res->details, res->details_len);
  out->details_len = out->details ? res->details_len : 0;
  out->response = dup_bytes(res->response, res->response_len);
  out->response_len = out->response ? res->response_len : 0;
  if (res->response_len > 0 && out->response == NULL) {
    out->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  pthread_mutex_lock(&w->mu);
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

grpc_status_code trb_rpc_unary_call(trb_rpc_loop_t *loop,
                                    trb_rpc_channel_t *ch, const char *method,
                                    const void *req, size_t req_len,
                                    const trb_rpc_call_opts_t *opts,
                                    trb_rpc_response_t *out) {
  sync_wait_t w;
  trb_status_t st;
  grpc_status_code code;

  memset(out, 0, sizeof(*out));
  memset(&w, 0, sizeof(w));
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  w.out = out;
  code = trb_rpc_unary_start(loop, ch, method, req, req_len, opts, sync_done,
                             &w, &st);
  if (code != GRPC_STATUS_OK) {
    out->code = code;
    out->message = trb_strdup(st.msg);
  } else {
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
  }
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.mu);
  return out->code;
}

void trb_rpc_response_deinit(trb_rpc_response_t *r) {
  if (r == NULL) return;
  trb_free(r->message);
  trb_free(r->details);
  trb_free(r->response);
  memset(r, 0, sizeof(*r));
}

/* ======================================================================== */
/* Bidirectional streams                                                     */
/* ======================================================================== */

struct trb_rpc_stream_s {
  trb_rpc_loop_t *loop;
  grpc_call *call;
  trb_rpc_stream_cbs_t cbs;
  void *user;
  atomic_int refs; /* caller + loop */

  trb_rpc_tag_t start_tag;
  trb_rpc_tag_t status_tag;
  trb_rpc_tag_t recv_tag;
  trb_rpc_tag_t send_tag;

  grpc_metadata *md;
  size_t n_md;
  grpc_metadata_array initial_md;
  grpc_metadata_array trailing_md;
  grpc_status_code status;
  grpc_slice status_message;
  grpc_byte_buffer *recv_bb;

  pthread_mutex_t mu; /* guards everything below */
  trb_rpc_wq_t wq;
  trb_rpc_wq_node_t *in_flight; /* SEND_MESSAGE outstanding */
  int ops;                      /* batches outstanding */
  bool send_busy;               /* SEND_MESSAGE or close outstanding */
  bool writes_done;             /* half-close requested */
  bool close_sent;
  bool write_failed;
  bool read_paused;
  bool read_busy;
  bool read_eof;
  bool status_done;
  bool cancelled;
  bool close_delivered;
};

static void stream_unref(trb_rpc_stream_t *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  TRB_RPC_CHECK(s->ops == 0 && s->in_flight == NULL);
  grpc_call_unref(s->call);
  trb_rpc_md_free(s->md, s->n_md);
  grpc_metadata_array_destroy(&s->initial_md);
  grpc_metadata_array_destroy(&s->trailing_md);
  grpc_slice_unref(s->status_message);
  while (s->wq.head) trb_rpc_wq_node_destroy(trb_rpc_wq_pop(&s->wq));
  pthread_mutex_destroy(&s->mu);
  trb_free(s);
}

static void start_batch(trb_rpc_stream_t *s, grpc_op *ops, size_t n,
                        trb_rpc_tag_t *tag) {
  grpc_call_error err = grpc_call_start_batch(s->call, ops, n, tag, NULL);
  TRB_RPC_CHECK(err == GRPC_CALL_OK);
  s->ops++;
}

/* Locked. Ask for the next message when allowed. */
static void pump_read(trb_rpc_stream_t *s) {
  grpc_op op;
  if (s->read_busy || s->read_eof || (s->read_paused && !s->cancelled)) return;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &s->recv_bb;
  s->read_busy = true;
  start_batch(s, &op, 1, &s->recv_tag);
}

/* Locked. Start the next write or the half-close. When the stream can no
 * longer send, returns the queued writes so the caller reports them (after
 * unlocking) as failed. */
static trb_rpc_wq_node_t *pump_write(trb_rpc_stream_t *s) {
  grpc_op op;
  if (s->send_busy) return NULL;
  if (s->write_failed || s->status_done) return trb_rpc_wq_take_all(&s->wq);
  memset(&op, 0, sizeof(op));
  if (s->wq.head != NULL) {
    s->in_flight = trb_rpc_wq_pop(&s->wq);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->in_flight->bb;
    /* More writes queued behind this one: let gRPC coalesce them into one
     * socket write. The last queued write goes without the hint and
     * flushes everything. */
    if (s->wq.head != NULL) op.flags = GRPC_WRITE_BUFFER_HINT;
    s->send_busy = true;
    start_batch(s, &op, 1, &s->send_tag);
  } else if (s->writes_done && !s->close_sent) {
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    s->close_sent = true;
    s->send_busy = true;
    start_batch(s, &op, 1, &s->send_tag);
  }
  return NULL;
}

/* Locked. True when on_close is due now (it is then marked delivered). */
static bool close_due(trb_rpc_stream_t *s) {
  if (s->close_delivered || !s->status_done || !s->read_eof || s->ops != 0) {
    return false;
  }
  s->close_delivered = true;
  return true;
}

static void report_failed_writes(trb_rpc_stream_t *s, trb_rpc_wq_node_t *n) {
  while (n != NULL) {
    trb_rpc_wq_node_t *next = n->next;
    if (s->cbs.on_write_done) s->cbs.on_write_done(s->user, s, n->tag, false);
    trb_rpc_wq_node_destroy(n);
    n = next;
  }
}

static void deliver_close(trb_rpc_stream_t *s) {
  trb_rpc_result_t res;
  const grpc_slice *details;
  char *message = slice_to_cstr(s->status_message);

  memset(&res, 0, sizeof(res));
  res.code = s->status;
  res.message = message;
  details = trb_rpc_md_find(&s->trailing_md, TRB_RPC_STATUS_DETAILS_KEY);
  if (details != NULL) {
    res.details = GRPC_SLICE_START_PTR(*details);
    res.details_len = GRPC_SLICE_LENGTH(*details);
  }
  /* The call counts as live until its final callback is due. */
  atomic_fetch_sub(&s->loop->live_calls, 1);
  s->cbs.on_close(s->user, s, &res);
  trb_free(message);
  stream_unref(s);
}

/* Common tail of every completion: flush failed writes, maybe close. */
static void settle(trb_rpc_stream_t *s) {
  trb_rpc_wq_node_t *failed;
  bool close;

  pthread_mutex_lock(&s->mu);
  failed = pump_write(s);
  pthread_mutex_unlock(&s->mu);
  report_failed_writes(s, failed);

  pthread_mutex_lock(&s->mu);
  pump_read(s);
  close = close_due(s);
  pthread_mutex_unlock(&s->mu);
  if (close) deliver_close(s);
}

static void on_start_done(trb_rpc_tag_t *tag, bool ok) {
  trb_rpc_stream_t *s = (trb_rpc_stream_t *)((char *)tag -
                                             offsetof(trb_rpc_stream_t, start_tag));
  (void)ok;
  pthread_mutex_lock(&s->mu);
  s->ops--;
  pthread_mutex_unlock(&s->mu);
  settle(s);
}

static void on_status_done(trb_rpc_tag_t *tag, bool ok) {
  trb_rpc_stream_t *s = (trb_rpc_stream_t *)((char *)tag -
                                             offsetof(trb_rpc_stream_t, status_tag));
  (void)ok;
  pthread_mutex_lock(&s->mu);
  s->ops--;
  s->status_done = true;
  pthread_mutex_unlock(&s->mu);
  settle(s);
}

static void on_recv_done(trb_rpc_tag_t *tag, bool ok) {
  trb_rpc_stream_t *s = (trb_rpc_stream_t *)((char *)tag -
                                             offsetof(trb_rpc_stream_t, recv_tag));
  grpc_byte_buffer *bb = s->recv_bb;

  s->recv_bb = NULL;
  if (ok && bb != NULL) {
    /* The read stays counted while on_message runs, so on_close cannot
     * overtake it. */
    grpc_slice msg = trb_rpc_bb_flatten(bb);
    grpc_byte_buffer_destroy(bb);
    s->cbs.on_message(s->user, s, GRPC_SLICE_START_PTR(msg),
                      GRPC_SLICE_LENGTH(msg));
    grpc_slice_unref(msg);
  } else if (bb != NULL) {
    grpc_byte_buffer_destroy(bb);
  }
  pthread_mutex_lock(&s->mu);
  s->ops--;
  s->read_busy = false;
  if (!ok || bb == NULL) s->read_eof = true;
  pthread_mutex_unlock(&s->mu);
  settle(s);
}

static void on_send_done(trb_rpc_tag_t *tag, bool ok) {
  trb_rpc_stream_t *s = (trb_rpc_stream_t *)((char *)tag -
                                             offsetof(trb_rpc_stream_t, send_tag));
  trb_rpc_wq_node_t *n;

  pthread_mutex_lock(&s->mu);
  n = s->in_flight;
  s->in_flight = NULL;
  if (!ok) s->write_failed = true;
  pthread_mutex_unlock(&s->mu);
  if (n != NULL) {
    if (s->cbs.on_write_done) s->cbs.on_write_done(s->user, s, n->tag, ok);
    trb_rpc_wq_node_destroy(n);
  }
  pthread_mutex_lock(&s->mu);
  s->ops--;
  s->send_busy = false;
  pthread_mutex_unlock(&s->mu);
  settle(s);
}

grpc_status_code trb_rpc_stream_start(trb_rpc_loop_t *loop,
                                      trb_rpc_channel_t *ch, const char *method,
                                      const trb_rpc_call_opts_t *opts,
                                      const trb_rpc_stream_cbs_t *cbs,
                                      void *user, trb_rpc_stream_t **out,
                                      trb_status_t *st) {
  static const trb_rpc_call_opts_t no_opts;
  trb_rpc_stream_t *s;
  grpc_op ops[2];
  grpc_status_code code;

  *out = NULL;
  if ((code = check_method(method, st)) != GRPC_STATUS_OK) return code;
  if (cbs == NULL || cbs->on_message == NULL || cbs->on_close == NULL) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: on_message and on_close are required", method);
  }
  if (opts == NULL) opts = &no_opts;
  s = trb_calloc(1, sizeof(*s));
  if (s == NULL) goto oom;
  if (opts->n_md > 0) {
    s->md = trb_rpc_md_build(opts->md, opts->n_md);
    if (s->md == NULL) {
      trb_free(s);
      goto oom;
    }
    s->n_md = opts->n_md;
  }
  s->loop = loop;
  s->cbs = *cbs;
  s->user = user;
  atomic_init(&s->refs, 2);
  s->start_tag.done = on_start_done;
  s->status_tag.done = on_status_done;
  s->recv_tag.done = on_recv_done;
  s->send_tag.done = on_send_done;
  s->status_message = grpc_empty_slice();
  grpc_metadata_array_init(&s->initial_md);
  grpc_metadata_array_init(&s->trailing_md);
  pthread_mutex_init(&s->mu, NULL);
  atomic_fetch_add(&loop->live_calls, 1);
  s->call = create_call(loop, ch, method, opts->timeout_ms);

  pthread_mutex_lock(&s->mu);
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = s->n_md;
  ops[0].data.send_initial_metadata.metadata = s->md;
  ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[1].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
  {
    /* The first batch is where gRPC validates the metadata: refuse, don't
     * abort (nothing is outstanding yet). */
    grpc_call_error err = grpc_call_start_batch(s->call, ops, 2, &s->start_tag,
                                                NULL);
    if (err != GRPC_CALL_OK) {
      pthread_mutex_unlock(&s->mu);
      atomic_fetch_sub(&loop->live_calls, 1);
      atomic_store(&s->refs, 1);
      stream_unref(s);
      return trb_status_set(st, GRPC_STATUS_INTERNAL,
                            "%s: grpc_call_start_batch failed (%d)", method,
                            (int)err);
    }
    s->ops++;
  }
  *out = s; /* before any callback can run */
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[0].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
  ops[0].data.recv_status_on_client.status = &s->status;
  ops[0].data.recv_status_on_client.status_details = &s->status_message;
  start_batch(s, ops, 1, &s->status_tag);
  pump_read(s);
  pthread_mutex_unlock(&s->mu);
  return GRPC_STATUS_OK;

oom:
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "%s: out of memory", method);
}

grpc_status_code trb_rpc_stream_write(trb_rpc_stream_t *s, const void *data,
                                      size_t len, void *tag) {
  trb_rpc_wq_node_t *n;
  grpc_status_code code = GRPC_STATUS_OK;

  n = trb_rpc_wq_node_create(data, len, tag);
  if (n == NULL) return GRPC_STATUS_RESOURCE_EXHAUSTED;
  pthread_mutex_lock(&s->mu);
  if (s->writes_done || s->write_failed || s->status_done || s->cancelled) {
    code = GRPC_STATUS_FAILED_PRECONDITION;
  } else {
    trb_rpc_wq_push(&s->wq, n);
    n = NULL;
    (void)pump_write(s); /* cannot fail here: checked above */
  }
  pthread_mutex_unlock(&s->mu);
  trb_rpc_wq_node_destroy(n);
  return code;
}

void trb_rpc_stream_writes_done(trb_rpc_stream_t *s) {
  pthread_mutex_lock(&s->mu);
  if (!s->writes_done) {
    s->writes_done = true;
    if (!s->write_failed && !s->status_done) (void)pump_write(s);
  }
  pthread_mutex_unlock(&s->mu);
}

size_t trb_rpc_stream_queued_bytes(trb_rpc_stream_t *s) {
  size_t n;
  pthread_mutex_lock(&s->mu);
  n = s->wq.bytes + (s->in_flight ? s->in_flight->len : 0);
  pthread_mutex_unlock(&s->mu);
  return n;
}

size_t trb_rpc_stream_queued_messages(trb_rpc_stream_t *s) {
  size_t n;
  pthread_mutex_lock(&s->mu);
  n = s->wq.count + (s->in_flight ? 1 : 0);
  pthread_mutex_unlock(&s->mu);
  return n;
}

void trb_rpc_stream_read_pause(trb_rpc_stream_t *s) {
  pthread_mutex_lock(&s->mu);
  s->read_paused = true;
  pthread_mutex_unlock(&s->mu);
}

void trb_rpc_stream_read_resume(trb_rpc_stream_t *s) {
  pthread_mutex_lock(&s->mu);
  s->read_paused = false;
  pump_read(s);
  pthread_mutex_unlock(&s->mu);
}

void trb_rpc_stream_cancel(trb_rpc_stream_t *s) {
  grpc_call_cancel(s->call, NULL);
  pthread_mutex_lock(&s->mu);
  s->cancelled = true;
  pump_read(s); /* drain the read side so on_close can follow */
  pthread_mutex_unlock(&s->mu);
}

void trb_rpc_stream_release(trb_rpc_stream_t *s) {
  if (s == NULL) return;
  stream_unref(s);
}
