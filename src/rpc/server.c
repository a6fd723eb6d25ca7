/*
 * server.c — gRPC server over gRPC core (see server.h for the contract).
 *
 * Each registered method keeps one grpc_server_request_registered_call
 * outstanding; when it completes, a call object is created and a new request
 * is posted. Unregistered methods arrive through grpc_server_request_call and
 * are answered UNIMPLEMENTED.
 *
 * A call keeps RECV_CLOSE_ON_SERVER outstanding from the start (it completes
 * when the call is over, with the `cancelled` flag), at most one
 * RECV_MESSAGE and at most one send batch (a message, or the final
 * response + status). `on_done` is delivered when the close has completed,
 * no other batch is outstanding and call_begin has handed the call over
 * (on_start returned): call_begin holds an op from before it starts the
 * close batch, which may complete at once on another thread. Memory is
 * freed when both the handler (finish) and the library (after on_done) have
 * let go.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "src/common/alloc.h"
#include "src/rpc/pb.h"
#include "src/rpc/rpc_internal.h"
#include "src/rpc/server.h"

#define DEFAULT_MAX_MESSAGE_BYTES (64 * 1024 * 1024)

typedef struct method_s {
  char *name;
  bool streaming;
  trb_rpc_unary_handler_cb unary;
  trb_rpc_stream_handler_t stream;
  void *user;
  void *registered; /* grpc_server_register_method handle */
  struct method_s *next;
} method_t;

/* One outstanding request for a new call. */
typedef struct request_s {
  trb_rpc_tag_t tag;
  trb_rpc_server_t *srv;
  method_t *method; /* NULL: unregistered-method catcher */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_call_details details;
} request_t;

struct trb_rpc_server_s {
  char *host;
  int port;
  int n_threads;
  char *cert_pem;
  char *key_pem;
  int max_recv;
  int max_send;
  int write_buffer;
  grpc_status_code (*authorize)(void *, trb_rpc_server_call_t *, char *,
                                size_t);
  void *authorize_user;

  grpc_server *server;
  trb_rpc_loop_t *loop;
  method_t *methods;
  trb_rpc_tag_t shutdown_tag;

  pthread_mutex_t mu; /* guards the fields below */
  pthread_cond_t cv;  /* signalled when a counter below drops */
  int live_calls;
  int pending_requests;
  bool started;
  bool shutting_down;
  bool shutdown_notified;
  bool destroyed_server;
};

struct trb_rpc_server_call_s {
  trb_rpc_server_t *srv;
  method_t *method;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array req_md;
  char **req_md_text; /* lazily made NUL-terminated copies, by index */
  char *method_name;
  char *peer;
  void *handler_state;
  atomic_int refs; /* handler (until finish) + library (until on_done) */

  trb_rpc_tag_t close_tag;
  trb_rpc_tag_t recv_tag;
  trb_rpc_tag_t send_tag;
  int cancelled_flag; /* written by RECV_CLOSE_ON_SERVER */
  grpc_byte_buffer *recv_bb;

  pthread_mutex_t mu; /* guards everything below */
  trb_rpc_wq_t wq;
  trb_rpc_wq_node_t *in_flight;
  int ops;
  bool initial_md_sent;
  bool send_busy;
  bool read_paused;
  bool read_busy;
  bool read_eof;
  bool closed;
  bool cancelled;
  bool finish_requested;
  bool status_started;
  bool done_delivered;
  bool started; /* on_start has returned (or the call has no on_start) */
  /* the final status, kept until sent */
  grpc_status_code fin_code;
  grpc_slice fin_message;
  grpc_metadata fin_trailer;
  bool fin_has_details;
  grpc_byte_buffer *fin_resp;
};

static bool request_post(trb_rpc_server_t *srv, method_t *m);
static bool request_post_counted(trb_rpc_server_t *srv, method_t *m);

/* ======================================================================== */
/* Calls                                                                     */
/* ======================================================================== */

static void call_free(trb_rpc_server_call_t *c) {
  trb_rpc_server_t *srv = c->srv;
  TRB_RPC_CHECK(c->ops == 0);
  grpc_call_unref(c->call);
  if (c->req_md_text) {
    for (size_t i = 0; i < c->req_md.count; i++) trb_free(c->req_md_text[i]);
    trb_free(c->req_md_text);
  }
  grpc_metadata_array_destroy(&c->req_md);
  trb_free(c->method_name);
  if (c->peer) gpr_free(c->peer);
  trb_rpc_wq_node_destroy(c->in_flight);
  while (c->wq.head) trb_rpc_wq_node_destroy(trb_rpc_wq_pop(&c->wq));
  grpc_slice_unref(c->fin_message);
  if (c->fin_has_details) {
    grpc_slice_unref(c->fin_trailer.key);
    grpc_slice_unref(c->fin_trailer.value);
  }
  if (c->fin_resp) grpc_byte_buffer_destroy(c->fin_resp);
  pthread_mutex_destroy(&c->mu);
  trb_free(c);

  pthread_mutex_lock(&srv->mu);
  srv->live_calls--;
  pthread_cond_broadcast(&srv->cv);
  pthread_mutex_unlock(&srv->mu);
}

static void call_unref(trb_rpc_server_call_t *c) {
  if (atomic_fetch_sub(&c->refs, 1) == 1) call_free(c);
}

/* Completions hold this while they run: their own op is still counted, so
 * on_done has not run and the library reference is still held. */
static void call_ref(trb_rpc_server_call_t *c) {
  atomic_fetch_add(&c->refs, 1);
}

static void call_start_batch(trb_rpc_server_call_t *c, grpc_op *ops, size_t n,
                             trb_rpc_tag_t *tag) {
  grpc_call_error err = grpc_call_start_batch(c->call, ops, n, tag, NULL);
  TRB_RPC_CHECK(err == GRPC_CALL_OK);
  c->ops++;
}

/* Locked. */
static void call_pump_read(trb_rpc_server_call_t *c) {
  grpc_op op;
  if (!c->started || c->read_busy || c->read_eof || c->read_paused ||
      c->closed || c->finish_requested) {
    return;
  }
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->recv_bb;
  c->read_busy = true;
  call_start_batch(c, &op, 1, &c->recv_tag);
}

/* Locked. Next message, or the final status once the queue is empty. */
static void call_pump_send(trb_rpc_server_call_t *c) {
  grpc_op ops[3];
  size_t n = 0;

  if (c->send_busy || c->status_started) return;
  if (c->closed) {
    while (c->wq.head) trb_rpc_wq_node_destroy(trb_rpc_wq_pop(&c->wq));
    return;
  }
  memset(ops, 0, sizeof(ops));
  if (!c->initial_md_sent && (c->wq.head || c->finish_requested)) {
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    c->initial_md_sent = true;
  }
  if (c->wq.head) {
    c->in_flight = trb_rpc_wq_pop(&c->wq);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    /* Coalesce while more writes wait; the last one flushes (see client.c). */
    if (c->wq.head != NULL) ops[n].flags = GRPC_WRITE_BUFFER_HINT;
    ops[n++].data.send_message.send_message = c->in_flight->bb;
  } else if (c->finish_requested) {
    if (c->fin_resp) {
      ops[n].op = GRPC_OP_SEND_MESSAGE;
      ops[n++].data.send_message.send_message = c->fin_resp;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = c->fin_code;
    ops[n].data.send_status_from_server.status_details = &c->fin_message;
    ops[n].data.send_status_from_server.trailing_metadata_count =
        c->fin_has_details ? 1 : 0;
    ops[n++].data.send_status_from_server.trailing_metadata =
        c->fin_has_details ? &c->fin_trailer : NULL;
    c->status_started = true;
  } else {
    return;
  }
  c->send_busy = true;
  call_start_batch(c, ops, n, &c->send_tag);
}

/* Locked. True when on_done is due (then marked delivered). */
static bool call_done_due(trb_rpc_server_call_t *c) {
  if (c->done_delivered || !c->closed || c->ops != 0) return false;
  c->done_delivered = true;
  return true;
}

static void call_settle(trb_rpc_server_call_t *c) {
  bool done;
  pthread_mutex_lock(&c->mu);
  call_pump_send(c);
  call_pump_read(c);
  done = call_done_due(c);
  pthread_mutex_unlock(&c->mu);
  if (!done) return;
  if (c->method && c->method->streaming && c->method->stream.on_done) {
    c->method->stream.on_done(c->method->user, c, c->cancelled);
  }
  call_unref(c);
}

static void call_on_close(trb_rpc_tag_t *tag, bool ok) {
  trb_rpc_server_call_t *c =
      (trb_rpc_server_call_t *)((char *)tag -
                                offsetof(trb_rpc_server_call_t, close_tag));
  bool pending;
  (void)ok;
  call_ref(c);
  pthread_mutex_lock(&c->mu);
  c->ops--;
  c->closed = true;
  c->cancelled = c->cancelled_flag != 0 || !c->status_started;
  pending = c->ops > 0;
  pthread_mutex_unlock(&c->mu);
  /* The call is over; a RECV_MESSAGE still outstanding (the client never
   * half-closed) would otherwise wait forever. Cancelling a finished call
   * only completes its pending batches. */
  if (pending) grpc_call_cancel(c->call, NULL);
  call_settle(c);
  call_unref(c);
}

static void call_on_send(trb_rpc_tag_t *tag, bool ok) {
  trb_rpc_server_call_t *c =
      (trb_rpc_server_call_t *)((char *)tag -
                                offsetof(trb_rpc_server_call_t, send_tag));
  (void)ok; /* a failed send shows up as a cancelled close */
  call_ref(c);
  pthread_mutex_lock(&c->mu);
  trb_rpc_wq_node_destroy(c->in_flight);
  c->in_flight = NULL;
  c->send_busy = false;
  c->ops--;
  pthread_mutex_unlock(&c->mu);
  call_settle(c);
  call_unref(c);
}

static void finish_internal(trb_rpc_server_call_t *c, grpc_status_code code,
                            const char *message) {
  trb_rpc_server_call_finish(c, code, message, NULL, 0, NULL, 0);
}

static void call_on_recv(trb_rpc_tag_t *tag, bool ok) {
  trb_rpc_server_call_t *c =
      (trb_rpc_server_call_t *)((char *)tag -
                                offsetof(trb_rpc_server_call_t, recv_tag));
  grpc_byte_buffer *bb = c->recv_bb;
  method_t *m = c->method;
  bool eof = !ok || bb == NULL;

  call_ref(c);
  c->recv_bb = NULL;
  if (!eof) {
    grpc_slice msg = trb_rpc_bb_flatten(bb);
    if (m->streaming) {
      m->stream.on_message(m->user, c, GRPC_SLICE_START_PTR(msg),
                           GRPC_SLICE_LENGTH(msg));
    } else {
      /* The single request: unary calls read nothing more. */
      pthread_mutex_lock(&c->mu);
      c->read_eof = true;
      pthread_mutex_unlock(&c->mu);
      m->unary(m->user, c, GRPC_SLICE_START_PTR(msg), GRPC_SLICE_LENGTH(msg));
    }
    grpc_slice_unref(msg);
  }
  if (bb) grpc_byte_buffer_destroy(bb);
  if (eof && m->streaming && ok && m->stream.on_half_close) {
    m->stream.on_half_close(m->user, c);
  }
  pthread_mutex_lock(&c->mu);
  c->ops--;
  c->read_busy = false;
  if (eof) c->read_eof = true;
  pthread_mutex_unlock(&c->mu);
  if (eof && !m->streaming) {
    /* Never handed to the handler: no request message arrived. */
    finish_internal(c, GRPC_STATUS_INTERNAL, "no request message received");
  }
  call_settle(c);
  call_unref(c);
}

/* End of call_begin: drop the op held since before the close batch (the
 * call has been handed over, or refused), mark the call started, then
 * settle (start reading, or deliver on_done if the call is already over)
 * and drop call_begin's reference. */
static void call_begin_release(trb_rpc_server_call_t *c) {
  pthread_mutex_lock(&c->mu);
  c->ops--;
  c->started = true;
  pthread_mutex_unlock(&c->mu);
  call_settle(c);
  call_unref(c);
}

/* Create the call object for a completed request and hand it over. */
static void call_begin(request_t *r) {
  trb_rpc_server_t *srv = r->srv;
  trb_rpc_server_call_t *c;
  grpc_op op;
  bool refuse;

  c = trb_calloc(1, sizeof(*c));
  TRB_RPC_CHECK(c != NULL); /* gRPC itself aborts on OOM; so do we here */
  c->srv = srv;
  c->method = r->method;
  c->call = r->call;
  c->deadline = r->deadline;
  c->req_md = r->md; /* moved */
  grpc_metadata_array_init(&r->md);
  if (r->method) {
    c->method_name = trb_strdup(r->method->name);
  } else {
    c->method_name =
        trb_strndup((const char *)GRPC_SLICE_START_PTR(r->details.method),
                    GRPC_SLICE_LENGTH(r->details.method));
  }
  c->peer = grpc_call_get_peer(c->call);
  c->fin_message = grpc_empty_slice();
  atomic_init(&c->refs, 3); /* handler + library + this function */
  c->started = r->method == NULL || !r->method->streaming;
  c->close_tag.done = call_on_close;
  c->recv_tag.done = call_on_recv;
  c->send_tag.done = call_on_send;
  pthread_mutex_init(&c->mu, NULL);

  pthread_mutex_lock(&srv->mu);
  srv->live_calls++;
  refuse = srv->shutting_down;
  pthread_mutex_unlock(&srv->mu);

  pthread_mutex_lock(&c->mu);
  /* Hold an op from before the close batch until the call has been handed
   * over (call_begin_release): the close can complete on another server
   * thread at once (client cancel, server shutdown), and on_done must not
   * run before on_start has returned — it would find no handler state, and
   * the state on_start then attaches would never be freed. */
  c->ops++;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->cancelled_flag;
  call_start_batch(c, &op, 1, &c->close_tag);
  pthread_mutex_unlock(&c->mu);

  if (c->method == NULL || refuse) {
    char msg[300];
    if (refuse) {
      snprintf(msg, sizeof(msg), "server is shutting down");
    } else {
      snprintf(msg, sizeof(msg), "Method not found: %s", c->method_name);
    }
    pthread_mutex_lock(&c->mu);
    c->read_eof = true; /* nothing will be read */
    pthread_mutex_unlock(&c->mu);
    finish_internal(c, refuse ? GRPC_STATUS_UNAVAILABLE
                              : GRPC_STATUS_UNIMPLEMENTED,
                    msg);
    call_begin_release(c);
    return;
  }
  if (srv->authorize != NULL) {
    char msg[512];
    grpc_status_code code;
    msg[0] = '\0';
    code = srv->authorize(srv->authorize_user, c, msg, sizeof(msg));
    if (code != GRPC_STATUS_OK) {
      msg[sizeof(msg) - 1] = '\0';
      pthread_mutex_lock(&c->mu);
      /* Refused: from here on like an unregistered method (no handler
       * callback of any kind, on_done included). */
      c->method = NULL;
      c->started = true;
      c->read_eof = true; /* nothing will be read */
      pthread_mutex_unlock(&c->mu);
      finish_internal(c, code, msg);
      call_begin_release(c);
      return;
    }
  }
  if (c->method->streaming) {
    /* Still under the begin hold: on_done cannot overtake on_start. */
    c->method->stream.on_start(c->method->user, c);
  }
  call_begin_release(c); /* starts reading */
}

/* ======================================================================== */
/* Requests for new calls                                                    */
/* ======================================================================== */

static void request_done(trb_rpc_tag_t *tag, bool ok) {
  request_t *r = (request_t *)tag;
  trb_rpc_server_t *srv = r->srv;
  bool again;

  if (ok) call_begin(r);
  pthread_mutex_lock(&srv->mu);
  again = ok && !srv->shutting_down;
  if (again) srv->pending_requests++; /* the repost, counted before ours drops */
  srv->pending_requests--;
  pthread_cond_broadcast(&srv->cv);
  pthread_mutex_unlock(&srv->mu);
  /* Out of memory here would leave the method unserved; abort as gRPC core
   * itself does when an allocation fails. */
  if (again) TRB_RPC_CHECK(request_post_counted(srv, r->method));
  grpc_metadata_array_destroy(&r->md);
  grpc_call_details_destroy(&r->details);
  trb_free(r);
}

static bool request_post(trb_rpc_server_t *srv, method_t *m) {
  pthread_mutex_lock(&srv->mu);
  srv->pending_requests++;
  pthread_mutex_unlock(&srv->mu);
  return request_post_counted(srv, m);
}

/* Post a request already counted in pending_requests. False (and the count
 * dropped) when memory runs out. */
static bool request_post_counted(trb_rpc_server_t *srv, method_t *m) {
  request_t *r = trb_calloc(1, sizeof(*r));
  grpc_call_error err;

  if (r == NULL) {
    pthread_mutex_lock(&srv->mu);
    srv->pending_requests--;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return false;
  }
  r->tag.done = request_done;
  r->srv = srv;
  r->method = m;
  grpc_metadata_array_init(&r->md);
  grpc_call_details_init(&r->details);
  if (m != NULL) {
    err = grpc_server_request_registered_call(
        srv->server, m->registered, &r->call, &r->deadline, &r->md, NULL,
        srv->loop->cq, srv->loop->cq, &r->tag);
  } else {
    err = grpc_server_request_call(srv->server, &r->call, &r->details, &r->md,
                                   srv->loop->cq, srv->loop->cq, &r->tag);
  }
  TRB_RPC_CHECK(err == GRPC_CALL_OK);
  return true;
}

/* ======================================================================== */
/* Server                                                                    */
/* ======================================================================== */

grpc_status_code trb_rpc_server_create(const trb_rpc_server_config_t *cfg,
                                       trb_rpc_server_t **out,
                                       trb_status_t *st) {
  trb_rpc_server_t *srv;

  *out = NULL;
  if ((cfg->tls_cert_chain_pem == NULL) != (cfg->tls_private_key_pem == NULL)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "server: TLS needs both a certificate chain and a "
                          "private key");
  }
  if (cfg->port < 0 || cfg->port > 65535) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "server: port %d is outside 0..65535", cfg->port);
  }
  srv = trb_calloc(1, sizeof(*srv));
  if (srv == NULL) goto oom;
  srv->host = trb_strdup(cfg->host ? cfg->host : "127.0.0.1");
  srv->cert_pem = trb_strdup(cfg->tls_cert_chain_pem);
  srv->key_pem = trb_strdup(cfg->tls_private_key_pem);
  if (srv->host == NULL || (cfg->tls_cert_chain_pem && !srv->cert_pem) ||
      (cfg->tls_private_key_pem && !srv->key_pem)) {
    trb_rpc_server_destroy(srv);
    goto oom;
  }
  srv->port = cfg->port;
  srv->n_threads = cfg->n_threads > 0 ? cfg->n_threads : 1;
  srv->max_recv = cfg->max_receive_message_bytes
                      ? cfg->max_receive_message_bytes
                      : DEFAULT_MAX_MESSAGE_BYTES;
  srv->max_send = cfg->max_send_message_bytes ? cfg->max_send_message_bytes
                                              : DEFAULT_MAX_MESSAGE_BYTES;
  srv->write_buffer = cfg->write_buffer_bytes
                          ? cfg->write_buffer_bytes
                          : TRB_RPC_DEFAULT_WRITE_BUFFER_BYTES;
  srv->authorize = cfg->authorize;
  srv->authorize_user = cfg->authorize_user;
  pthread_mutex_init(&srv->mu, NULL);
  pthread_cond_init(&srv->cv, NULL);
  *out = srv;
  return GRPC_STATUS_OK;
oom:
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "server: out of memory");
}

static grpc_status_code add_method(trb_rpc_server_t *srv, method_t *proto,
                                   trb_status_t *st) {
  method_t *m;
  if (srv->started) {
    return trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "server: %s registered after start", proto->name);
  }
  if (proto->name == NULL || proto->name[0] != '/') {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "server: method name must start with '/'");
  }
  for (m = srv->methods; m; m = m->next) {
    if (strcmp(m->name, proto->name) == 0) {
      return trb_status_set(st, GRPC_STATUS_ALREADY_EXISTS,
                            "server: %s registered twice", proto->name);
    }
  }
  m = trb_malloc(sizeof(*m));
  if (m == NULL) goto oom;
  *m = *proto;
  m->name = trb_strdup(proto->name);
  if (m->name == NULL) {
    trb_free(m);
    goto oom;
  }
  m->next = srv->methods;
  srv->methods = m;
  return GRPC_STATUS_OK;
oom:
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "server: out of memory");
}

grpc_status_code trb_rpc_server_add_unary(trb_rpc_server_t *srv,
                                          const char *method,
                                          trb_rpc_unary_handler_cb handler,
                                          void *user, trb_status_t *st) {
  method_t m;
  if (handler == NULL) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "server: %s needs a handler", method);
  }
  memset(&m, 0, sizeof(m));
  m.name = (char *)method;
  m.unary = handler;
  m.user = user;
  return add_method(srv, &m, st);
}

grpc_status_code trb_rpc_server_add_stream(
    trb_rpc_server_t *srv, const char *method,
    const trb_rpc_stream_handler_t *handler, void *user, trb_status_t *st) {
  method_t m;
  if (handler == NULL || handler->on_start == NULL ||
      handler->on_message == NULL) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "server: %s needs on_start and on_message", method);
  }
  memset(&m, 0, sizeof(m));
  m.name = (char *)method;
  m.streaming = true;
  m.stream = *handler;
  m.user = user;
  return add_method(srv, &m, st);
}

grpc_status_code trb_rpc_server_start(trb_rpc_server_t *srv, int *bound_port,
                                      trb_status_t *st) {
  grpc_arg args[3];
  grpc_channel_args chargs;
  grpc_server_credentials *creds;
  char addr[300];
  int port;
  grpc_status_code code;

  if (srv->started) {
    return trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "server: already started");
  }
  args[0] = trb_rpc_arg_int(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, srv->max_recv);
  args[1] = trb_rpc_arg_int(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, srv->max_send);
  args[2] = trb_rpc_arg_int(GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE,
                            srv->write_buffer);
  chargs.num_args = 3;
  chargs.args = args;
  srv->server = grpc_server_create(&chargs, NULL);
  code = trb_rpc_loop_create_n("trb-rpc-srv", srv->n_threads, &srv->loop, st);
  if (code != GRPC_STATUS_OK) {
    grpc_server_destroy(srv->server);
    srv->server = NULL;
    return code;
  }
  grpc_server_register_completion_queue(srv->server, srv->loop->cq, NULL);
  for (method_t *m = srv->methods; m; m = m->next) {
    m->registered = grpc_server_register_method(
        srv->server, m->name, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
  }
  if (srv->cert_pem) {
    grpc_ssl_pem_key_cert_pair pair = {srv->key_pem, srv->cert_pem};
    creds = grpc_ssl_server_credentials_create_ex(
        NULL, &pair, 1, GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
  } else {
    creds = grpc_insecure_server_credentials_create();
  }
  if (strchr(srv->host, ':') != NULL) {
    snprintf(addr, sizeof(addr), "[%s]:%d", srv->host, srv->port);
  } else {
    snprintf(addr, sizeof(addr), "%s:%d", srv->host, srv->port);
  }
  port = grpc_server_add_http2_port(srv->server, addr, creds);
  grpc_server_credentials_release(creds);
  if (port <= 0) {
    grpc_server_destroy(srv->server);
    srv->server = NULL;
    trb_rpc_loop_destroy(srv->loop);
    srv->loop = NULL;
    return trb_status_set(st, GRPC_STATUS_UNAVAILABLE,
                          "server: cannot listen on %s", addr);
  }
  grpc_server_start(srv->server);
  srv->started = true;
  srv->port = port;
  for (method_t *m = srv->methods; m; m = m->next) {
    if (!request_post(srv, m)) goto oom;
  }
  if (!request_post(srv, NULL)) goto oom;
  if (bound_port) *bound_port = port;
  return GRPC_STATUS_OK;
oom:
  trb_rpc_server_shutdown(srv);
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "server: out of memory while starting");
}

static void on_shutdown_done(trb_rpc_tag_t *tag, bool ok) {
  trb_rpc_server_t *srv =
      (trb_rpc_server_t *)((char *)tag - offsetof(trb_rpc_server_t,
                                                  shutdown_tag));
  (void)ok;
  pthread_mutex_lock(&srv->mu);
  srv->shutdown_notified = true;
  pthread_cond_broadcast(&srv->cv);
  pthread_mutex_unlock(&srv->mu);
}

void trb_rpc_server_shutdown(trb_rpc_server_t *srv) {
  if (srv == NULL || !srv->started || srv->destroyed_server) return;
  pthread_mutex_lock(&srv->mu);
  srv->shutting_down = true;
  pthread_mutex_unlock(&srv->mu);
  srv->shutdown_tag.done = on_shutdown_done;
  grpc_server_shutdown_and_notify(srv->server, srv->loop->cq,
                                  &srv->shutdown_tag);
  grpc_server_cancel_all_calls(srv->server);
  pthread_mutex_lock(&srv->mu);
  while (!srv->shutdown_notified || srv->live_calls > 0 ||
         srv->pending_requests > 0) {
    pthread_cond_wait(&srv->cv, &srv->mu);
  }
  pthread_mutex_unlock(&srv->mu);
  grpc_server_destroy(srv->server);
  srv->server = NULL;
  srv->destroyed_server = true;
  trb_rpc_loop_destroy(srv->loop);
  srv->loop = NULL;
}

void trb_rpc_server_destroy(trb_rpc_server_t *srv) {
  method_t *m, *next;
  if (srv == NULL) return;
  trb_rpc_server_shutdown(srv);
  if (srv->server) grpc_server_destroy(srv->server);
  for (m = srv->methods; m; m = next) {
    next = m->next;
    trb_free(m->name);
    trb_free(m);
  }
  pthread_mutex_destroy(&srv->mu);
  pthread_cond_destroy(&srv->cv);
  trb_free(srv->host);
  trb_free(srv->cert_pem);
  trb_free(srv->key_pem);
  trb_free(srv);
}

int trb_rpc_server_live_calls(trb_rpc_server_t *srv) {
  int n;
  pthread_mutex_lock(&srv->mu);
  n = srv->live_calls;
  pthread_mutex_unlock(&srv->mu);
  return n;
}

/* ======================================================================== */
/* Per-call API                                                              */
/* ======================================================================== */

const char *trb_rpc_server_call_metadata(trb_rpc_server_call_t *c,
                                         const char *key, size_t *len) {
  size_t klen = strlen(key);
  long i = trb_rpc_md_index(&c->req_md, key);
  const grpc_slice *v;

  if (i < 0) return NULL;
  v = &c->req_md.metadata[i].value;
  if (len) *len = GRPC_SLICE_LENGTH(*v);
  if (klen >= 4 && strcmp(key + klen - 4, "-bin") == 0) {
    return (const char *)GRPC_SLICE_START_PTR(*v);
  }
  /* Text values: a NUL-terminated copy, made once, freed with the call. */
  if (c->req_md_text == NULL) {
    c->req_md_text = trb_calloc(c->req_md.count, sizeof(char *));
    if (c->req_md_text == NULL) return NULL;
  }
  if (c->req_md_text[i] == NULL) {
    c->req_md_text[i] = trb_strndup((const char *)GRPC_SLICE_START_PTR(*v),
                                    GRPC_SLICE_LENGTH(*v));
  }
  return c->req_md_text[i];
}

void trb_rpc_server_call_set_user(trb_rpc_server_call_t *c, void *state) {
  c->handler_state = state;
}

void *trb_rpc_server_call_user(trb_rpc_server_call_t *c) {
  return c->handler_state;
}

const char *trb_rpc_server_call_method(trb_rpc_server_call_t *c) {
  return c->method_name ? c->method_name : "";
}

const char *trb_rpc_server_call_peer(trb_rpc_server_call_t *c) {
  return c->peer ? c->peer : "";
}

int64_t trb_rpc_server_call_remaining_ms(trb_rpc_server_call_t *c) {
  gpr_timespec now, left;
  if (gpr_time_cmp(c->deadline, gpr_inf_future(c->deadline.clock_type)) == 0) {
    return INT64_MAX;
  }
  now = gpr_now(c->deadline.clock_type);
  left = gpr_time_sub(c->deadline, now);
  return gpr_time_to_millis(left);
}

bool trb_rpc_server_call_cancelled(trb_rpc_server_call_t *c) {
  bool v;
  pthread_mutex_lock(&c->mu);
  v = c->closed && c->cancelled;
  pthread_mutex_unlock(&c->mu);
  return v;
}

grpc_status_code trb_rpc_server_call_write(trb_rpc_server_call_t *c,
                                           const void *data, size_t len) {
  trb_rpc_wq_node_t *n = trb_rpc_wq_node_create(data, len, NULL);
  grpc_status_code code = GRPC_STATUS_OK;

  if (n == NULL) return GRPC_STATUS_RESOURCE_EXHAUSTED;
  pthread_mutex_lock(&c->mu);
  if (c->finish_requested || c->closed) {
    code = GRPC_STATUS_FAILED_PRECONDITION;
  } else {
    trb_rpc_wq_push(&c->wq, n);
    n = NULL;
    call_pump_send(c);
  }
  pthread_mutex_unlock(&c->mu);
  trb_rpc_wq_node_destroy(n);
  return code;
}

size_t trb_rpc_server_call_queued_bytes(trb_rpc_server_call_t *c) {
  size_t n;
  pthread_mutex_lock(&c->mu);
  n = c->wq.bytes + (c->in_flight ? c->in_flight->len : 0);
  pthread_mutex_unlock(&c->mu);
  return n;
}

void trb_rpc_server_call_read_pause(trb_rpc_server_call_t *c) {
  pthread_mutex_lock(&c->mu);
  c->read_paused = true;
  pthread_mutex_unlock(&c->mu);
}

void trb_rpc_server_call_read_resume(trb_rpc_server_call_t *c) {
  pthread_mutex_lock(&c->mu);
  c->read_paused = false;
  call_pump_read(c);
  pthread_mutex_unlock(&c->mu);
}

void trb_rpc_server_call_finish(trb_rpc_server_call_t *c,
                                grpc_status_code code, const char *message,
                                const uint8_t *details, size_t details_len,
                                const void *resp, size_t resp_len) {
  pthread_mutex_lock(&c->mu);
  TRB_RPC_CHECK(!c->finish_requested);
  c->finish_requested = true;
  if (!c->closed) {
    c->fin_code = code;
    grpc_slice_unref(c->fin_message);
    c->fin_message = grpc_slice_from_copied_string(message ? message : "");
    if (details != NULL && details_len > 0) {
      c->fin_trailer.key = grpc_slice_from_static_string(
          TRB_RPC_STATUS_DETAILS_KEY);
      c->fin_trailer.value =
          grpc_slice_from_copied_buffer((const char *)details, details_len);
      c->fin_has_details = true;
    }
    if (code == GRPC_STATUS_OK && c->method && !c->method->streaming) {
      c->fin_resp = trb_rpc_bb_copy(resp, resp_len);
    }
    call_pump_send(c);
  }
  pthread_mutex_unlock(&c->mu);
  call_unref(c);
}

void trb_rpc_server_call_reply(trb_rpc_server_call_t *call,
                               const struct pb_msgdesc_s *fields,
                               const void *msg) {
  uint8_t *buf = NULL;
  size_t len = 0;
  trb_status_t st = {0};
  if (trb_pb_encode(fields, msg, &buf, &len, &st) != GRPC_STATUS_OK) {
    trb_rpc_server_call_finish(call, st.code, st.msg, NULL, 0, NULL, 0);
    return;
  }
  /* An empty message encodes to zero bytes: still a response. */
  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0,
                             buf ? (const void *)buf : "", len);
  trb_pb_free(buf);
}
