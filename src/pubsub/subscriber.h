/*
 * subscriber.h — Cloud Pub/Sub Subscriber client: StreamingPull streams,
 * client flow control, batched acks / nacks / modacks, lease management
 * and reconnection. Mirrors the official clients' Subscriber (Java
 * com.google.cloud.pubsub.v1.Subscriber, Python subscriber.Client
 * StreamingPullManager).
 *
 * Model
 * -----
 * trb_ps_subscriber_start() opens `streams` StreamingPull calls. The first
 * request of each carries the subscription, stream_ack_deadline_seconds,
 * the client_id (random, the same for every stream and reconnect of this
 * subscriber), max_outstanding_messages / max_outstanding_bytes and
 * protocol_version=1, with `x-goog-request-params: subscription=<name>`
 * (PROTOCOL.md facts 48, 52, 54). The stream then carries only deadline
 * updates and a 30 s heartbeat (empty request); acks, nacks and modacks go
 * as unary Acknowledge / ModifyAckDeadline RPCs of at most 1000 ack ids,
 * flushed `ack_flush_ms` after the first id queued (fact 55).
 *
 * Received messages enter a queue and are handed to the message callback
 * while the application holds fewer than `max_outstanding_messages` /
 * `max_outstanding_bytes` (client flow control; a single message larger
 * than the byte limit is delivered when nothing else is held). Streams stop
 * reading (HTTP/2 push-back) while held + queued reaches a limit.
 *
 * Leases: every held or queued message has its ack deadline extended by a
 * modack when 3/4 of its current deadline has passed, until it has been
 * held `max_extension_ms` (then it is left to expire). The deadline used
 * is the 99th percentile of the observed ack latencies (receipt to
 * trb_ps_ack), bounded to min_ack_deadline_s..600 s, 60 s before the first
 * sample (fact 56). When it changes, open streams are told with a
 * stream_ack_deadline_seconds update.
 *
 * Failures: a stream that ends with a code trb_rpc_is_retryable(
 * TRB_RPC_OP_STREAMING_PULL, ...) accepts (UNAVAILABLE from a server
 * closing streams, ABORTED, INTERNAL, ...) — or OK, or CANCELLED not
 * caused by trb_ps_subscriber_stop (a server shutting down cancels its
 * calls; Java retries CANCELLED) — is reopened after a
 * full-jitter backoff (100 ms doubling to 10 s, reset when the stream
 * delivers a response; fact 54). Any other code ends that stream for good
 * (stats.first_error). Ack / modack RPCs are retried with backoff while
 * trb_rpc_is_retryable(TRB_RPC_OP_ACK, ...) and `ack_retry_deadline_ms`
 * from the first attempt allow; then they are dropped (stats.ack_failures;
 * the messages will be redelivered — at-least-once). When the failed
 * RPC's status details carry a google.rpc.ErrorInfo (exactly-once
 * subscriptions, fact 60), only the ack ids it marks TRANSIENT_FAILURE_*
 * — and those it does not name, when the code is retryable — are retried;
 * PERMANENT_FAILURE_* ids are failures (stats.ack_invalid). With
 * exactly-once delivery (subscription_properties) the ack deadline is at
 * least 60 s.
 *
 * Per-ack results (Java ackWithResponse / Python ack_with_response →
 * AcknowledgeStatus): trb_ps_ack_with_result / trb_ps_nack_with_result
 * take a callback called exactly once with SUCCESS or the final failure,
 * after transient failures were retried. A failed request whose ErrorInfo
 * names some ids fails those (PERMANENT_*) or retries them (TRANSIENT_*);
 * the ids it does not name are retried when the code is retryable, else
 * they succeeded (the service answers "Some acknowledgement ids in the
 * request were invalid": the others took effect; Java's behaviour — Python
 * reports them OTHER). Without an ErrorInfo, a retryable code is retried
 * within ack_retry_deadline_ms, anything else is the result.
 *
 * Keepalive (fact 54): every `heartbeat_ms` each stream sends an empty
 * request (a ping; the server answers streams with protocol_version=1).
 * When no response of any kind arrives within `keepalive_timeout_ms` of
 * the oldest unanswered ping, the stream is cancelled and reopened
 * (stats.keepalive_timeouts). Not checked while the stream's reading is
 * paused by flow control (responses are not read then).
 *
 * Errors: a stream that ends for good is reported once to
 * cfg.on_stream_error with its status (and stats.first_error).
 *
 * Threads: one timer thread (ack flushing, leases, reconnects, retries,
 * keepalive); RPCs and the message callback run on the caller's
 * trb_rpc_loop_t.
 *
 * Not implemented: stream confirmations (acks are unary, fact 55),
 * receipt modacks.
 *
 * Ordering keys: callbacks run one at a time on the loop thread in arrival
 * order, and the server sends a key's messages on one stream in order, so
 * a key's callbacks come in publish order (settling may happen later, in
 * any order).
 *
 * Thread safety: every function is thread-safe, except that
 * trb_ps_subscriber_destroy needs exclusive access.
 *
 * Source: google/pubsub/v1/pubsub.proto (Subscriber.StreamingPull,
 * Acknowledge, ModifyAckDeadline); PROTOCOL.md facts 48–57.
 */
#ifndef TRB_SRC_PUBSUB_SUBSCRIBER_H
#define TRB_SRC_PUBSUB_SUBSCRIBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"
#include "src/pubsub/codec.h"
#include "src/rpc/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most ack ids in one Acknowledge / ModifyAckDeadline request (fact 55). */
#define TRB_PS_MAX_ACK_IDS_PER_REQUEST 1000

/** Subscriber settings. Zero-initialize; 0 means the default shown. */
typedef struct trb_ps_subscriber_config_s {
  /** StreamingPull streams opened in parallel (default 1). */
  int streams;
  /** Flow control (client side, and sent to the server on every stream):
   *  messages and bytes (PubsubMessage.data) held by the application.
   *  Defaults 1000 and 100 MiB (fact 56). */
  int64_t max_outstanding_messages;
  int64_t max_outstanding_bytes;
  /** How long a message's lease may be extended, from its receipt
   *  (default 60 min). */
  int64_t max_extension_ms;
  /** Lower bound of the ack deadline in seconds (default 10; 10..600).
   *  The deadline starts at max(60, this) until acks are measured. */
  int min_ack_deadline_s;
  /** Ack / modack batching delay (default 5 ms). */
  int64_t ack_flush_ms;
  /** Retry budget of one ack / modack request from its first attempt
   *  (default 60 s) and per-attempt timeout (default 60 s). */
  int64_t ack_retry_deadline_ms;
  int64_t rpc_timeout_ms;
  /** Backoff for reconnects and ack retries: initial / max / multiplier
   *  (defaults 100 ms, 10 s, 2). */
  int64_t backoff_initial_ms;
  int64_t backoff_max_ms;
  double backoff_multiplier;
  /** Heartbeat (empty request, a keepalive ping) interval on each stream
   *  (default 30 s, fact 54). */
  int64_t heartbeat_ms;
  /** A stream with a ping unanswered this long (no response of any kind)
   *  is cancelled and reopened (default 15 s, fact 54). */
  int64_t keepalive_timeout_ms;
  /** Optional: called once per stream that ends for good (a code that is
   *  not retried: NOT_FOUND for a deleted subscription, PERMISSION_DENIED,
   *  INVALID_ARGUMENT, FAILED_PRECONDITION for a detached one, ...), with
   *  the status ("StreamingPull: <server message>") and the number of
   *  streams still alive or reconnecting (0: no more messages will
   *  arrive; the application should stop the subscriber). On the loop
   *  thread, without subscriber locks held; must not block nor call
   *  trb_ps_subscriber_stop / destroy. Not called for streams ended by
   *  trb_ps_subscriber_stop. */
  void (*on_stream_error)(void *user, const trb_status_t *st,
                          int streams_left);
  void *on_stream_error_user;
  /** TEST ONLY: milliseconds in one "second" of ack deadline on the client
   *  clock (lease timing, ack latency); match the emulator's
   *  test_ms_per_second. 0 = 1000. */
  int ms_per_second;
  /** Seed of the jitter and the client id; 0 = from the clock. */
  uint64_t seed;
} trb_ps_subscriber_config_t;

/** A received message as passed to the callback. Every pointer is borrowed
 *  for the duration of the callback. */
typedef struct trb_ps_received_s {
  const char *message_id;
  const uint8_t *data;
  size_t data_len;
  const trb_ps_attr_t *attrs;
  size_t n_attrs;
  /** "" when the message has none. */
  const char *ordering_key;
  /** Server publish time (Unix epoch). */
  int64_t publish_time_s;
  int32_t publish_time_nanos;
  /** 1 + nacks + expiries; 0 without a dead-letter policy (fact 50). */
  int32_t delivery_attempt;
} trb_ps_received_t;

/** The right to settle one delivered message (opaque). */
typedef struct trb_ps_ack_handle_s trb_ps_ack_handle_t;

/**
 * Message callback: once per delivery, on the loop thread, without
 * subscriber locks held. The application must settle `h` exactly once with
 * trb_ps_ack or trb_ps_nack, from any thread, during or after the callback
 * (before trb_ps_subscriber_destroy). Must not block.
 */
typedef void (*trb_ps_message_cb)(void *user, const trb_ps_received_t *msg,
                                  trb_ps_ack_handle_t *h);

/** Counters (trb_ps_subscriber_stats). */
typedef struct trb_ps_subscriber_stats_s {
  uint64_t received;    /* messages that arrived on streams */
  uint64_t delivered;   /* callbacks made */
  uint64_t acked;       /* trb_ps_ack calls on held messages */
  uint64_t nacked;      /* trb_ps_nack calls + messages nacked by stop */
  uint64_t extensions;  /* lease extensions (ack ids modacked > 0) */
  uint64_t ack_rpcs;    /* Acknowledge attempts (retries included) */
  uint64_t modack_rpcs; /* ModifyAckDeadline attempts (retries included) */
  uint64_t ack_retries; /* attempts of either that were retries */
  uint64_t ack_failures; /* ack ids given up on (non-retryable / budget) */
  /** Of which the server named PERMANENT_FAILURE_* in an ErrorInfo
   *  (exactly-once: e.g. an expired ack id). */
  uint64_t ack_invalid;
  uint64_t streams_opened; /* StreamingPull calls started (reconnects too) */
  uint64_t reconnects;  /* stream ends scheduled for a reopen (backoff) */
  /** Streams cancelled because a ping went unanswered (then reopened). */
  uint64_t keepalive_timeouts;
  /** Streams ended for good (reported to on_stream_error). */
  uint64_t streams_failed;
  /** Most ack ids in one Acknowledge / ModifyAckDeadline request. */
  uint64_t peak_ids_per_request;
  /** Most messages held by the application at once. */
  uint64_t peak_held;
  /** Current ack deadline (seconds). */
  int ack_deadline_s;
  /** First permanent stream or ack error (OK when none). */
  trb_status_t first_error;
} trb_ps_subscriber_stats_t;

typedef struct trb_ps_subscriber_s trb_ps_subscriber_t;

/**
 * Create a subscriber of `subscription` ("projects/{p}/subscriptions/{s}").
 * Nothing is opened before trb_ps_subscriber_start.
 * Params:  loop, ch — borrowed; must outlive the subscriber.
 *          subscription — copied. cfg — may be NULL; copied.
 *          cb, user — the message callback and its argument.
 *          out — receives the subscriber (trb_ps_subscriber_destroy).
 * Returns: OK; INVALID_ARGUMENT (missing argument, setting out of range);
 *          RESOURCE_EXHAUSTED (memory, thread).
 */
grpc_status_code trb_ps_subscriber_create(
    trb_rpc_loop_t *loop, trb_rpc_channel_t *ch, const char *subscription,
    const trb_ps_subscriber_config_t *cfg, trb_ps_message_cb cb, void *user,
    trb_ps_subscriber_t **out, trb_status_t *st);

/**
 * Open the streams.
 * Returns: OK; FAILED_PRECONDITION when already started or stopped.
 *          A stream that cannot be started is retried by the timer.
 */
grpc_status_code trb_ps_subscriber_start(trb_ps_subscriber_t *s,
                                         trb_status_t *st);

/**
 * Acknowledge a held message (queued for the next Acknowledge request).
 * `h` is invalid afterwards. After stop has given up the message (see
 * trb_ps_subscriber_stop) it only frees `h`. Thread-safe.
 */
void trb_ps_ack(trb_ps_ack_handle_t *h);

/** Nack: ModifyAckDeadline 0, the message is redelivered. As trb_ps_ack. */
void trb_ps_nack(trb_ps_ack_handle_t *h);

/** Final outcome of one ack or nack (Java / Python AcknowledgeStatus). */
typedef enum trb_ps_ack_status_e {
  /** The Acknowledge / ModifyAckDeadline RPC carrying the id succeeded
   *  (with exactly-once delivery: the ack is durable, the message will not
   *  be redelivered, fact 59). */
  TRB_PS_ACK_SUCCESS = 0,
  /** PERMANENT_FAILURE_INVALID_ACK_ID (exactly-once: the lease expired or
   *  the message was redelivered; the message may come again). */
  TRB_PS_ACK_INVALID_ACK_ID,
  /** The RPC failed with PERMISSION_DENIED (not retried). */
  TRB_PS_ACK_PERMISSION_DENIED,
  /** The RPC failed with FAILED_PRECONDITION (not retried). */
  TRB_PS_ACK_FAILED_PRECONDITION,
  /** Any other final failure: PERMANENT_FAILURE_OTHER, a non-retryable
   *  code, or a retryable one when ack_retry_deadline_ms ran out (the
   *  status says which). */
  TRB_PS_ACK_OTHER,
  /** The subscriber stopped before the outcome was known: the handle had
   *  been given up by trb_ps_subscriber_stop (and nacked), or the request
   *  was still pending or being retried at trb_ps_subscriber_destroy. */
  TRB_PS_ACK_STOPPED,
} trb_ps_ack_status_t;

/**
 * Ack / nack result callback: called exactly once per
 * trb_ps_ack_with_result / trb_ps_nack_with_result call (only an
 * allocation failure while collecting results can lose one).
 * Params:  user — as passed. result — the outcome. st — borrowed for the
 *          call: OK for SUCCESS; else the RPC's code and a message naming
 *          the RPC and the server's message (or the ErrorInfo value), or
 *          CANCELLED "subscriber stopped" for TRB_PS_ACK_STOPPED.
 * Thread:  the loop thread (the RPC's completion), or, for
 *          TRB_PS_ACK_STOPPED, the thread calling trb_ps_*_with_result
 *          (handle already given up) or trb_ps_subscriber_destroy. Never
 *          with subscriber locks held; it may call trb_ps_ack / nack of
 *          other handles, but must not block nor stop / destroy the
 *          subscriber.
 */
typedef void (*trb_ps_ack_result_cb)(void *user, trb_ps_ack_status_t result,
                                     const trb_status_t *st);

/**
 * trb_ps_ack with a result: as trb_ps_ack, and `cb(user, ...)` is called
 * exactly once with the outcome (see trb_ps_ack_result_cb). `cb` may be
 * NULL (then it is trb_ps_ack). Thread-safe.
 */
void trb_ps_ack_with_result(trb_ps_ack_handle_t *h, trb_ps_ack_result_cb cb,
                            void *user);

/** trb_ps_nack with a result (the ModifyAckDeadline 0 outcome). As
 *  trb_ps_ack_with_result. */
void trb_ps_nack_with_result(trb_ps_ack_handle_t *h, trb_ps_ack_result_cb cb,
                             void *user);

/**
 * The message delivered with `h`, readable beyond the callback: the handle
 * holds the message (data, id, attributes, ordering key) in its own
 * allocation, so an application that keeps a message until it settles it
 * need not copy it.
 * Params:  h — a handle the application has not settled yet.
 * Returns: the same contents the callback received (not necessarily the
 *          same pointer), valid until `h` is settled (trb_ps_ack / nack /
 *          *_with_result: invalid once that call has started) or the
 *          subscriber is destroyed, whichever comes first. Never NULL.
 * Thread:  any; the message is immutable (no lock taken).
 */
const trb_ps_received_t *trb_ps_ack_handle_message(
    const trb_ps_ack_handle_t *h);

/**
 * Stop: cancel the streams, nack messages received but not delivered,
 * wait until `timeout_ms` (relative; negative = forever) for the
 * application to settle what it holds (leases still extended), nack the
 * rest (their handles still must be settled; that only frees them and
 * reports TRB_PS_ACK_STOPPED to a result callback), send
 * every pending ack / nack and wait for the ack RPCs in flight until the
 * same deadline. Idempotent.
 * Returns: OK; DEADLINE_EXCEEDED when messages were still held or ack
 *          RPCs still in flight at the deadline.
 * Threading: thread-safe; not on the loop thread.
 */
grpc_status_code trb_ps_subscriber_stop(trb_ps_subscriber_t *s,
                                        int64_t timeout_ms, trb_status_t *st);

/** Current counters. Thread-safe. */
void trb_ps_subscriber_stats(trb_ps_subscriber_t *s,
                             trb_ps_subscriber_stats_t *out);

/**
 * Stop (timeout 0) if needed, wait for the RPCs in flight to complete,
 * free unsettled handles, then free the subscriber. NULL-safe.
 * Threading: exclusive; not on the loop thread.
 */
void trb_ps_subscriber_destroy(trb_ps_subscriber_t *s);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_PUBSUB_SUBSCRIBER_H */
