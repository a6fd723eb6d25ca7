/*
 * server.h — gRPC server over gRPC C core: listen on host:port, handlers
 * registered by full method name (unary and bidirectional streaming), final
 * status with google.rpc.Status details in `grpc-status-details-bin`, and a
 * clean shutdown that cancels open streams.
 *
 * Model
 * -----
 * The server owns one completion queue drained by `n_threads` threads; all
 * handler callbacks run on those threads. Callbacks of one call never run
 * concurrently with each other, and `on_done` comes after every other
 * callback of that call. With n_threads > 1, different calls run in
 * parallel.
 *
 * Call ownership
 * --------------
 * A call is handed to its handler by `unary` / `stream.on_start`. From then
 * on the handler owns it and must call trb_rpc_server_call_finish() exactly
 * once — synchronously in a callback or later from any thread — also for a
 * call the client cancelled (the status is then discarded). The call's
 * memory is freed after both finish and `on_done`; treat finish as the
 * release: after it, the only use allowed is trb_rpc_server_call_user()
 * inside `on_done` (to free the handler's per-call state). No read is
 * requested after finish, but a message whose read was already outstanding
 * may still be delivered to `on_message` (or the end of input to
 * `on_half_close`); handlers ignore input for a call they have finished.
 *
 * Source: gRPC C core 1.51 server API (grpc_server_request_registered_call,
 * GRPC_OP_RECV_CLOSE_ON_SERVER, GRPC_OP_SEND_STATUS_FROM_SERVER); the
 * `grpc-status-details-bin` convention of google.rpc.Status (google/rpc/
 * status.proto; gRPC's "richer error model").
 */
#ifndef TRB_SRC_RPC_SERVER_H
#define TRB_SRC_RPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trb_rpc_server_s trb_rpc_server_t;
struct pb_msgdesc_s; /* nanopb message descriptor (<pb.h>) */
typedef struct trb_rpc_server_call_s trb_rpc_server_call_t;

/** Server settings. Zero-initialize, then set what you need. */
typedef struct trb_rpc_server_config_s {
  /** Address to bind; NULL = "127.0.0.1". Borrowed. */
  const char *host;
  /** TCP port; 0 = pick a free one (see trb_rpc_server_start). */
  int port;
  /** Completion-queue threads; 0 = 1. */
  int n_threads;
  /** TLS: PEM certificate chain and private key; both NULL = plaintext. */
  const char *tls_cert_chain_pem;
  const char *tls_private_key_pem;
  /** Largest request message accepted, bytes; 0 = 64 MiB. */
  int max_receive_message_bytes;
  /** Largest response message, bytes; 0 = 64 MiB. */
  int max_send_message_bytes;
  /** Coalesced writes gRPC may hold per stream, bytes (see
   *  trb_rpc_channel_config_t.write_buffer_bytes); 0 = 1 MiB. */
  int write_buffer_bytes;
  /**
   * Optional admission check of every call to a registered method, run on
   * a server thread before the handler sees it — e.g. a required
   * `authorization: Bearer <token>` (read it with
   * trb_rpc_server_call_metadata). Return OK to admit the call; any other
   * code finishes it at once with that code and the NUL-terminated text the
   * check wrote into `msg` (capacity `msg_cap` bytes, > 0), and no handler
   * is called. Must not block; must be thread-safe (calls arrive on every
   * server thread). NULL = admit everything.
   */
  grpc_status_code (*authorize)(void *user, trb_rpc_server_call_t *call,
                                char *msg, size_t msg_cap);
  /** Passed to `authorize`; borrowed, must outlive the server. */
  void *authorize_user;
} trb_rpc_server_config_t;

/**
 * Unary handler: the request arrived. The handler owns `call` and must
 * finish it. `req` is borrowed for the duration of the callback.
 * Callback: once per call, on a server thread.
 */
typedef void (*trb_rpc_unary_handler_cb)(void *user,
                                         trb_rpc_server_call_t *call,
                                         const uint8_t *req, size_t len);

/** Streaming handler callbacks; see the file comment for ordering. */
typedef struct trb_rpc_stream_handler_s {
  /** A new stream; the handler now owns `call`. Required. */
  void (*on_start)(void *user, trb_rpc_server_call_t *call);
  /** One client message, in order; `data` borrowed. Required. */
  void (*on_message)(void *user, trb_rpc_server_call_t *call,
                     const uint8_t *data, size_t len);
  /** Optional. The client half-closed (no more messages). */
  void (*on_half_close)(void *user, trb_rpc_server_call_t *call);
  /** Optional. The call is over: `cancelled` true when the client cancelled,
   *  the deadline passed, the connection broke or the server shut down;
   *  false when the status set by finish was sent. Exactly once, last:
   *  never before `on_start` has returned, even for a call cancelled while
   *  it was being admitted. Also delivered, with no per-call state set,
   *  for a call refused before `on_start` (server shutting down). A
   *  handler that has not finished the call must do so now (or soon). */
  void (*on_done)(void *user, trb_rpc_server_call_t *call, bool cancelled);
} trb_rpc_stream_handler_t;

/**
 * Create a server (not yet listening).
 * Returns: OK; INVALID_ARGUMENT (half a TLS pair, bad port);
 *          RESOURCE_EXHAUSTED. Threading: thread-safe.
 */
grpc_status_code trb_rpc_server_create(const trb_rpc_server_config_t *cfg,
                                       trb_rpc_server_t **out,
                                       trb_status_t *st);

/**
 * Register a unary method by full name ("/google.pubsub.v1.Publisher/
 * Publish"). `method` is copied. REQUIRES: before trb_rpc_server_start.
 * Returns: OK; ALREADY_EXISTS for a duplicate name; FAILED_PRECONDITION
 * once started. Threading: owner only.
 */
grpc_status_code trb_rpc_server_add_unary(trb_rpc_server_t *srv,
                                          const char *method,
                                          trb_rpc_unary_handler_cb handler,
                                          void *user, trb_status_t *st);

/** As trb_rpc_server_add_unary, for a bidirectional (or client/server
 *  streaming) method; `handler` is copied. */
grpc_status_code trb_rpc_server_add_stream(
    trb_rpc_server_t *srv, const char *method,
    const trb_rpc_stream_handler_t *handler, void *user, trb_status_t *st);

/**
 * Bind and start serving. Calls to unregistered methods are answered with
 * UNIMPLEMENTED.
 * Params:  bound_port — may be NULL; receives the listening port (the
 *          chosen one when the config said 0).
 * Returns: OK; UNAVAILABLE when the address cannot be bound;
 *          RESOURCE_EXHAUSTED (threads). Threading: owner only.
 */
grpc_status_code trb_rpc_server_start(trb_rpc_server_t *srv, int *bound_port,
                                      trb_status_t *st);

/**
 * Stop: refuse new calls, cancel every open call (their `on_done` runs with
 * cancelled = true), wait until every handler has finished its calls, then
 * join the threads. Idempotent; safe on a server never started. Must not
 * be called from a server thread. Threading: owner only.
 */
void trb_rpc_server_shutdown(trb_rpc_server_t *srv);

/** Shut down (if needed) and free. NULL-safe. Threading: owner only. */
void trb_rpc_server_destroy(trb_rpc_server_t *srv);

/** Number of calls not yet freed. Thread-safe. */
int trb_rpc_server_live_calls(trb_rpc_server_t *srv);

/* ---- per call ---------------------------------------------------------- */

/**
 * Value of request metadata `key` (lower-case), or NULL. When `len` is not
 * NULL it receives the value's length (binary "-bin" values are not NUL
 * terminated; text values are returned NUL-terminated). Borrowed until the
 * call is finished. Threading: handler's own use; thread-compatible.
 */
const char *trb_rpc_server_call_metadata(trb_rpc_server_call_t *call,
                                         const char *key, size_t *len);

/**
 * Attach the handler's per-call state (borrowed; the handler frees it,
 * typically in on_done). Thread-compatible: set it in on_start.
 */
void trb_rpc_server_call_set_user(trb_rpc_server_call_t *call, void *state);

/** The pointer given to trb_rpc_server_call_set_user, or NULL. */
void *trb_rpc_server_call_user(trb_rpc_server_call_t *call);

/** Full method name of the call (borrowed until finish). */
const char *trb_rpc_server_call_method(trb_rpc_server_call_t *call);

/** The client's address ("ipv4:127.0.0.1:54321"), or "" (borrowed until
 *  finish). */
const char *trb_rpc_server_call_peer(trb_rpc_server_call_t *call);

/** Milliseconds left until the client's deadline; INT64_MAX when none. */
int64_t trb_rpc_server_call_remaining_ms(trb_rpc_server_call_t *call);

/** Whether the call was cancelled (client gone, deadline, shutdown).
 *  Thread-safe. */
bool trb_rpc_server_call_cancelled(trb_rpc_server_call_t *call);

/**
 * Streaming calls: queue a message to the client (one write in flight,
 * the rest queued in order). `data` borrowed (copied).
 * Returns: OK; FAILED_PRECONDITION after finish or once the call is over;
 *          RESOURCE_EXHAUSTED. Threading: thread-safe (before finish).
 */
grpc_status_code trb_rpc_server_call_write(trb_rpc_server_call_t *call,
                                           const void *data, size_t len);

/** Bytes queued and not yet sent (including the write in flight).
 *  Thread-safe. */
size_t trb_rpc_server_call_queued_bytes(trb_rpc_server_call_t *call);

/**
 * Pause / resume reading client messages (receive flow control).
 * Threading: thread-safe (before finish).
 */
void trb_rpc_server_call_read_pause(trb_rpc_server_call_t *call);
void trb_rpc_server_call_read_resume(trb_rpc_server_call_t *call);

/**
 * End the call: after the queued writes, send `resp` (unary calls with an
 * OK code only) and the status. The handler gives up `call`.
 *
 * Params:  code, message — final status; message borrowed (copied), NULL
 *          = "".
 *          details, details_len — serialized google.rpc.Status to send in
 *          `grpc-status-details-bin` (see details.h), or NULL/0.
 *          resp, resp_len — unary response (ignored for streams and for a
 *          non-OK code); borrowed (copied).
 * Threading: thread-safe; exactly once per call handed to a handler.
 */
void trb_rpc_server_call_finish(trb_rpc_server_call_t *call,
                                grpc_status_code code, const char *message,
                                const uint8_t *details, size_t details_len,
                                const void *resp, size_t resp_len);

/**
 * Unary calls: encode `msg` (a nanopb message described by `fields`,
 * borrowed) and finish the call with OK and it; when encoding fails, finish
 * with the encoder's status instead (RESOURCE_EXHAUSTED / INTERNAL).
 * Threading: as trb_rpc_server_call_finish.
 */
void trb_rpc_server_call_reply(trb_rpc_server_call_t *call,
                               const struct pb_msgdesc_s *fields,
                               const void *msg);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_RPC_SERVER_H */
