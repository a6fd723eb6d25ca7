/*
 * rpc.h — Tributary's C layer over gRPC C core (<grpc/grpc.h>): event loops
 * on completion queues, channels with credentials, and client calls (unary
 * and bidirectional streaming). The server side is in server.h; status
 * details in details.h; retry classification and backoff in retry.h.
 *
 * Model
 * -----
 * A trb_rpc_loop_t owns one completion queue and the thread(s) that drain
 * it. Every call is bound to a loop, and every callback of that call runs on
 * one of the loop's threads — no thread per call. A client loop has one
 * thread, so its callbacks are serialized. Callbacks must not block: they
 * may call any function here (write, pause, cancel, start another call), but
 * must not wait for another callback of the same loop.
 *
 * Messages are opaque serialized protobuf bytes (see pb.h for nanopb helpers).
 *
 * Memory: set-up and start functions report allocation failure as
 * RESOURCE_EXHAUSTED; an allocation that fails inside a running call's
 * completion (where no caller could be told) aborts the process, as gRPC
 * core itself does.
 *
 * Ownership
 * ---------
 * - `_create`/`_start` return owned objects; the matching `_destroy`/
 *   `_release` is mandatory; all of them are NULL-safe.
 * - Buffers passed in are borrowed for the duration of the call that takes
 *   them (the library copies what it keeps).
 * - Buffers passed to callbacks are borrowed for the duration of the
 *   callback only.
 *
 * Lifetime order: every call delivers its final callback → destroy loops →
 * destroy channels → trb_rpc_shutdown(). Streams may be released before or
 * after their loop is destroyed, but before trb_rpc_shutdown().
 *
 * Source: gRPC C core 1.51 (grpc.h, grpc_security.h, doc/core/grpc-cq.md);
 * metadata conventions of Google APIs (x-goog-request-params).
 */
#ifndef TRB_SRC_RPC_RPC_H
#define TRB_SRC_RPC_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Library lifetime                                                          */
/* ------------------------------------------------------------------------ */

/**
 * Initialize gRPC (reference-counted; pair every call with
 * trb_rpc_shutdown()). Threading: thread-safe.
 */
void trb_rpc_init(void);

/** Drop one trb_rpc_init() reference. Threading: thread-safe. */
void trb_rpc_shutdown(void);

/* ------------------------------------------------------------------------ */
/* Loops                                                                     */
/* ------------------------------------------------------------------------ */

/** A completion queue plus the thread that drains it. Opaque. */
typedef struct trb_rpc_loop_s trb_rpc_loop_t;

/**
 * Create a loop and start its thread.
 *
 * Params:  name — thread name for debugging (first 15 bytes used); borrowed.
 *          out  — receives the loop (owned; trb_rpc_loop_destroy).
 * Returns: GRPC_STATUS_OK; RESOURCE_EXHAUSTED if memory or the thread could
 *          not be had (`st` says which).
 * Threading: thread-safe.
 */
grpc_status_code trb_rpc_loop_create(const char *name, trb_rpc_loop_t **out,
                                     trb_status_t *st);

/**
 * Shut the completion queue down, drain it and join the thread.
 *
 * REQUIRES: every call started on this loop has delivered its final
 * callback (streams may be released before or after). Must not be called
 * from the loop's thread.
 * NULL-safe. Threading: owner only.
 */
void trb_rpc_loop_destroy(trb_rpc_loop_t *loop);

/** Number of calls on `loop` whose final callback (unary completion or
 *  on_close) is not yet due. Thread-safe. */
int trb_rpc_loop_live_calls(const trb_rpc_loop_t *loop);

/* ------------------------------------------------------------------------ */
/* Channels and credentials                                                  */
/* ------------------------------------------------------------------------ */

/** How a channel authenticates. */
typedef enum trb_rpc_creds_kind_e {
  /** Plaintext HTTP/2, no credentials: emulators on loopback. */
  TRB_RPC_CREDS_INSECURE = 0,
  /** TLS with system roots + Google Application Default Credentials
   *  (GOOGLE_APPLICATION_CREDENTIALS, gcloud, or the metadata server). */
  TRB_RPC_CREDS_GOOGLE_DEFAULT = 1,
  /** TLS with `root_certs_pem` (NULL: gRPC's default roots) and, when
   *  `bearer_token` is set, `authorization: Bearer <token>` on every call. */
  TRB_RPC_CREDS_TLS = 2,
} trb_rpc_creds_kind_t;

/** Channel settings. Zero-initialize, then set what you need. */
typedef struct trb_rpc_channel_config_s {
  /** gRPC target, e.g. "127.0.0.1:8085" or "pubsub.googleapis.com:443".
   *  Required; borrowed. */
  const char *target;
  trb_rpc_creds_kind_t creds;
  /** TRB_RPC_CREDS_TLS: PEM root certificates; NULL = default roots. */
  const char *root_certs_pem;
  /** TRB_RPC_CREDS_TLS: OAuth2 access token (without "Bearer "); NULL =
   *  no call credentials. */
  const char *bearer_token;
  /** TLS only: host name expected in the server certificate when it differs
   *  from the target's host (tests); NULL = the target's host. */
  const char *tls_server_name;
  /** Largest message accepted from the server, bytes; 0 = 64 MiB. */
  int max_receive_message_bytes;
  /** Largest message this channel may send, bytes; 0 = 64 MiB. */
  int max_send_message_bytes;
  /** How many bytes of coalesced writes gRPC may hold per stream before it
   *  must send (GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE; applies while more writes
   *  are queued behind the one in flight); 0 = 1 MiB. */
  int write_buffer_bytes;
  /** HTTP/2 keepalive ping interval, milliseconds; 0 = gRPC default (off). */
  int keepalive_time_ms;
  /** Prefix for the user-agent header; NULL = "tributary". */
  const char *user_agent;
  /** TRB_RPC_CREDS_TLS: path of a file holding an OAuth2 access token
   *  (without "Bearer "; surrounding white space ignored), sent as
   *  `authorization: Bearer <token>` on every call. The file is stat()ed at
   *  every call and read again when its inode, size or modification time
   *  changed, so a token refreshed by another process (e.g. a sidecar
   *  running `gcloud auth print-access-token`, or a mounted secret) is
   *  picked up without a restart; replace it atomically (write + rename).
   *  A file unreadable at call time keeps the last good token. Exclusive
   *  with `bearer_token`; NULL = none. Borrowed (copied). */
  const char *bearer_token_file;
} trb_rpc_channel_config_t;

/** A gRPC channel (HTTP/2 connection pool to one target). Opaque. */
typedef struct trb_rpc_channel_s trb_rpc_channel_t;

/**
 * Create a channel. Connection happens lazily on the first call.
 *
 * Params:  cfg — borrowed; strings are copied.
 *          out — receives the channel (owned; trb_rpc_channel_destroy).
 * Returns: GRPC_STATUS_OK; INVALID_ARGUMENT when `target` is missing, a
 *          TLS-only field is set for an insecure channel, or both
 *          `bearer_token` and `bearer_token_file` are set;
 *          UNAUTHENTICATED when Application Default Credentials cannot be
 *          found, or `bearer_token_file` cannot be read or holds no token
 *          (the message names the file and why);
 *          RESOURCE_EXHAUSTED on allocation failure.
 * Threading: thread-safe. The channel itself is thread-safe: any number of
 *          loops and threads may start calls on it.
 */
grpc_status_code trb_rpc_channel_create(const trb_rpc_channel_config_t *cfg,
                                        trb_rpc_channel_t **out,
                                        trb_status_t *st);

/**
 * Destroy a channel. REQUIRES: no call on it is live. NULL-safe.
 */
void trb_rpc_channel_destroy(trb_rpc_channel_t *ch);

/**
 * Fill `cfg` for a Google API, from the environment, in this order:
 * 1. `emulator_env` (e.g. "PUBSUB_EMULATOR_HOST") set and non-empty: an
 *    insecure channel to its value (returns true).
 * 2. Otherwise TLS to `TRIBUTARY_<X>_ENDPOINT` when set, else to
 *    `default_target` (e.g. "pubsub.googleapis.com:443"), where <X> is
 *    `emulator_env` without its "_EMULATOR_HOST" suffix
 *    (TRIBUTARY_PUBSUB_ENDPOINT, TRIBUTARY_BIGQUERY_STORAGE_ENDPOINT), with
 *    - `TRIBUTARY_ACCESS_TOKEN_FILE` set: TRB_RPC_CREDS_TLS with that
 *      `bearer_token_file` (re-read when it changes) and gRPC's default
 *      roots (which GRPC_DEFAULT_SSL_ROOTS_FILE_PATH replaces);
 *    - else TRB_RPC_CREDS_GOOGLE_DEFAULT (Application Default Credentials).
 *
 * Params:  both strings are borrowed; cfg->target and
 *          cfg->bearer_token_file point into `default_target` or the
 *          process environment.
 * Returns: true when the emulator variable was used.
 * Threading: thread-compatible (reads the environment).
 */
bool trb_rpc_channel_config_from_env(trb_rpc_channel_config_t *cfg,
                                     const char *default_target,
                                     const char *emulator_env);

/* ------------------------------------------------------------------------ */
/* Client calls                                                              */
/* ------------------------------------------------------------------------ */

/** One request metadata entry. `key` is lower-case ASCII; keys ending in
 *  "-bin" carry binary values. Both borrowed. */
typedef struct trb_rpc_md_s {
  const char *key;
  const char *value;
  /** Length of `value` in bytes; 0 = strlen(value). */
  size_t value_len;
} trb_rpc_md_t;

/** Per-call options. Zero-initialize; all fields optional. */
typedef struct trb_rpc_call_opts_s {
  /** Relative deadline in milliseconds; 0 = none (infinite). */
  int64_t timeout_ms;
  /** Request metadata, e.g. {"x-goog-request-params",
   *  "subscription=projects/p/subscriptions/s"}; array of `n_md`,
   *  borrowed (copied at start). */
  const trb_rpc_md_t *md;
  size_t n_md;
} trb_rpc_call_opts_t;

/**
 * A call's outcome as passed to completion callbacks. Every pointer is
 * borrowed for the duration of the callback.
 */
typedef struct trb_rpc_result_s {
  /** Final gRPC status. */
  grpc_status_code code;
  /** Status message (NUL-terminated, possibly empty). */
  const char *message;
  /** Serialized google.rpc.Status from the `grpc-status-details-bin`
   *  trailer, or NULL/0 when absent (decode with details.h). */
  const uint8_t *details;
  size_t details_len;
  /** Unary calls: the response message when `code` is OK, else NULL/0. */
  const uint8_t *response;
  size_t response_len;
} trb_rpc_result_t;

/**
 * Unary completion callback.
 * Callback: runs exactly once, on the loop's thread, unless the start
 *           function returned an error.
 */
typedef void (*trb_rpc_unary_cb)(void *user, const trb_rpc_result_t *result);

/**
 * Start a unary call.
 *
 * Params:  loop, ch — borrowed, must outlive the call.
 *          method — full method name "/package.Service/Method"; borrowed.
 *          req, req_len — serialized request; borrowed (copied).
 *          opts — may be NULL.
 *          cb, user — completion callback and its argument.
 * Returns: GRPC_STATUS_OK when started; INVALID_ARGUMENT for a malformed
 *          method; RESOURCE_EXHAUSTED on allocation failure; INTERNAL when
 *          gRPC refuses the batch. On error `cb` is never called.
 * Callback: `cb` exactly once on the loop thread with the final status.
 * Threading: thread-safe.
 * Source:  a gRPC unary call (one request, one response, status).
 */
grpc_status_code trb_rpc_unary_start(trb_rpc_loop_t *loop,
                                     trb_rpc_channel_t *ch, const char *method,
                                     const void *req, size_t req_len,
                                     const trb_rpc_call_opts_t *opts,
                                     trb_rpc_unary_cb cb, void *user,
                                     trb_status_t *st);

/** Owned result of a blocking unary call (trb_rpc_unary_call). */
typedef struct trb_rpc_response_s {
  grpc_status_code code;
  /** Status message; owned; NUL-terminated. */
  char *message;
  /** Serialized google.rpc.Status from the trailer; owned; may be NULL. */
  uint8_t *details;
  size_t details_len;
  /** Response bytes when OK; owned; may be NULL for an empty message. */
  uint8_t *response;
  size_t response_len;
} trb_rpc_response_t;

/**
 * Run a unary call and wait for it.
 *
 * Params:  as trb_rpc_unary_start; `out` receives the owned result; free it
 *          with trb_rpc_response_deinit (also when an error is returned).
 * Returns: the call's final status code (also in out->code); errors of
 *          trb_rpc_unary_start are returned likewise.
 * Threading: thread-safe; must not be called on `loop`'s own thread.
 */
grpc_status_code trb_rpc_unary_call(trb_rpc_loop_t *loop,
                                    trb_rpc_channel_t *ch, const char *method,
                                    const void *req, size_t req_len,
                                    const trb_rpc_call_opts_t *opts,
                                    trb_rpc_response_t *out);

/** Free what `r` owns and zero it. NULL-safe. */
void trb_rpc_response_deinit(trb_rpc_response_t *r);

/** A client-side bidirectional stream. Opaque. */
typedef struct trb_rpc_stream_s trb_rpc_stream_t;

/** Stream callbacks. All run on the loop's thread, never concurrently for
 *  one stream; `on_close` comes after every other callback of the stream. */
typedef struct trb_rpc_stream_cbs_s {
  /** A message from the server; `data` borrowed for the call. Called in
   *  arrival order, at most one read outstanding (see read_pause). */
  void (*on_message)(void *user, trb_rpc_stream_t *s, const uint8_t *data,
                     size_t len);
  /** Optional. A write left the queue: `ok` true when gRPC accepted it for
   *  sending, false when the stream failed first (the write was not sent).
   *  `tag` is the value given to trb_rpc_stream_write. Once per write. */
  void (*on_write_done)(void *user, trb_rpc_stream_t *s, void *tag, bool ok);
  /** The stream is over: exactly once, last. */
  void (*on_close)(void *user, trb_rpc_stream_t *s,
                   const trb_rpc_result_t *result);
} trb_rpc_stream_cbs_t;

/**
 * Start a bidirectional streaming call. Reading starts at once.
 *
 * Params:  cbs — copied; `on_message` and `on_close` are required.
 *          out — receives the stream; release it with
 *                trb_rpc_stream_release after `on_close` has run.
 * Returns: GRPC_STATUS_OK; INVALID_ARGUMENT (method, callbacks);
 *          RESOURCE_EXHAUSTED; INTERNAL. On error no callback is called and
 *          `*out` is NULL.
 * Callback: see trb_rpc_stream_cbs_t; `on_close` exactly once.
 * Threading: thread-safe.
 */
grpc_status_code trb_rpc_stream_start(trb_rpc_loop_t *loop,
                                      trb_rpc_channel_t *ch, const char *method,
                                      const trb_rpc_call_opts_t *opts,
                                      const trb_rpc_stream_cbs_t *cbs,
                                      void *user, trb_rpc_stream_t **out,
                                      trb_status_t *st);

/**
 * Queue one message. Flow control: gRPC allows one write in flight per
 * stream; further writes wait in an unbounded FIFO owned by the stream.
 * Callers bound it with trb_rpc_stream_queued_bytes() or `on_write_done`.
 *
 * Params:  data, len — serialized message; borrowed (copied).
 *          tag — passed back to `on_write_done`.
 * Returns: GRPC_STATUS_OK when queued; FAILED_PRECONDITION after
 *          writes_done or once the stream has failed/closed (then
 *          `on_write_done` is not called for it); RESOURCE_EXHAUSTED.
 * Threading: thread-safe.
 */
grpc_status_code trb_rpc_stream_write(trb_rpc_stream_t *s, const void *data,
                                      size_t len, void *tag);

/**
 * Half-close: after the queued writes are sent, tell the server no more
 * messages follow. Idempotent. Threading: thread-safe.
 */
void trb_rpc_stream_writes_done(trb_rpc_stream_t *s);

/** Bytes / messages written and not yet completed: the queued ones plus the
 *  one in flight. Thread-safe. */
size_t trb_rpc_stream_queued_bytes(trb_rpc_stream_t *s);
size_t trb_rpc_stream_queued_messages(trb_rpc_stream_t *s);

/**
 * Stop asking for messages (receive-side flow control: HTTP/2 windows fill
 * and the server is pushed back). A message already requested may still
 * arrive. `on_close` waits until every message has been delivered, so a
 * paused stream closes only after read_resume (or cancel).
 * Threading: thread-safe.
 */
void trb_rpc_stream_read_pause(trb_rpc_stream_t *s);

/** Resume reading after trb_rpc_stream_read_pause. Thread-safe. */
void trb_rpc_stream_read_resume(trb_rpc_stream_t *s);

/**
 * Cancel the stream: `on_close` follows with CANCELLED (unless the status
 * had already arrived). Idempotent. Threading: thread-safe.
 */
void trb_rpc_stream_cancel(trb_rpc_stream_t *s);

/**
 * Give up the caller's handle. REQUIRES: `on_close` has run (it may be
 * called from inside `on_close`). NULL-safe.
 */
void trb_rpc_stream_release(trb_rpc_stream_t *s);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_RPC_RPC_H */
