/*
 * publisher.h — Cloud Pub/Sub Publisher client: batching, several Publish
 * RPCs in flight, flow control, retries with full-jitter backoff, ordering
 * keys, flush and shutdown. Mirrors the official clients' Publisher
 * (Java com.google.cloud.pubsub.v1.Publisher, Python publisher.Client).
 *
 * Model
 * -----
 * trb_ps_publish() validates and encodes a message, then queues it in the
 * queue of its ordering key ("" = unordered). A queue is sent as one
 * google.pubsub.v1.Publisher/Publish request when it reaches
 * `max_messages` or `max_bytes`, when its oldest message has waited
 * `max_delay_ms`, or on flush. Unordered requests may be `max_in_flight`
 * at once; an ordering key has at most one request in flight, and every
 * request carries one key only (PROTOCOL.md fact 47), so per-key order is
 * the publish order.
 *
 * A failed request is retried with full-jitter exponential backoff while
 * trb_rpc_is_retryable(TRB_RPC_OP_PUBLISH, ...) says so (ABORTED,
 * CANCELLED, DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED, UNAVAILABLE,
 * UNKNOWN — fact 57) and the retry deadline (from the first attempt) has not
 * passed; otherwise its messages complete with the error. When a request of
 * an ordering key fails, the key is paused: its queued messages fail with
 * FAILED_PRECONDITION, and trb_ps_publish() for that key returns
 * FAILED_PRECONDITION until trb_ps_publisher_resume() (as Java's
 * resumePublish, fact 47).
 *
 * Encoding and memory: trb_ps_publish encodes the message once, straight
 * into the PublishRequest buffer of its key's open batch (no per-message
 * allocation). Flow control counts encoded message bytes; buffers grow by
 * doubling, so the memory held stays below about twice `flow_max_bytes`
 * plus one request buffer per ordering key with queued messages. Keys with
 * nothing queued, in flight or paused are forgotten.
 *
 * Threads: the publisher owns one timer thread (batch delays and backoff);
 * RPCs run on the caller's trb_rpc_loop_t. A request is started by the
 * thread that made it due (a publishing thread whose message filled the
 * batch, the timer thread, or the loop thread completing an earlier
 * request), after releasing the publisher's lock; the timer thread is only
 * woken when a batch becomes due before it would wake anyway.
 *
 * Completion callback: for every message accepted (trb_ps_publish returned
 * OK) exactly once, with the server-assigned message_id or the final
 * status; on the loop's thread, without publisher locks held (it may call
 * trb_ps_publish with REJECT flow control, or trb_ps_publisher_resume; it
 * must not block). Exception: messages still queued when
 * trb_ps_publisher_shutdown's deadline passes complete with
 * DEADLINE_EXCEEDED on the thread calling shutdown.
 *
 * Thread safety: every function is thread-safe, except that
 * trb_ps_publisher_destroy needs exclusive access.
 *
 * Source: google/pubsub/v1/pubsub.proto (Publisher.Publish); defaults and
 * limits from PROTOCOL.md facts 44–47, 57.
 */
#ifndef TRB_SRC_PUBSUB_PUBLISHER_H
#define TRB_SRC_PUBSUB_PUBLISHER_H

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

/** Hard limits of one PublishRequest (fact 45). */
#define TRB_PS_MAX_REQUEST_MESSAGES 1000
#define TRB_PS_MAX_REQUEST_BYTES 10000000
/** Per-message limits (fact 46). */
#define TRB_PS_MAX_DATA_BYTES (10 * 1024 * 1024)
#define TRB_PS_MAX_ATTRIBUTES 100
#define TRB_PS_MAX_ATTR_KEY_BYTES 256
#define TRB_PS_MAX_ATTR_VALUE_BYTES 1024
#define TRB_PS_MAX_ORDERING_KEY_BYTES 1024

/** What trb_ps_publish does when the flow-control buffer is full. */
typedef enum trb_ps_flow_e {
  /** Wait for room until `block_timeout_ms`, then DEADLINE_EXCEEDED. */
  TRB_PS_FLOW_BLOCK = 0,
  /** Return RESOURCE_EXHAUSTED at once. */
  TRB_PS_FLOW_REJECT = 1,
} trb_ps_flow_t;

/** Publisher settings. Zero-initialize; 0 means the default shown. */
typedef struct trb_ps_publisher_config_s {
  /** Batch thresholds: send when a queue holds this many messages
   *  (default 100, at most 1000), this many request bytes (default
   *  1,000,000, at most 10,000,000), or its oldest message is this old
   *  (default 10 ms; negative = 0, send at once). */
  int max_messages;
  int64_t max_bytes;
  int64_t max_delay_ms;
  /** Unordered Publish RPCs in flight at once (default 8). */
  int max_in_flight;
  /** Flow control: messages and bytes (encoded size) accepted and not yet
   *  completed. Defaults 1000 messages, 100 MiB. A message larger than
   *  `flow_max_bytes` is refused with RESOURCE_EXHAUSTED. */
  int64_t flow_max_messages;
  int64_t flow_max_bytes;
  trb_ps_flow_t flow;
  /** BLOCK: how long trb_ps_publish may wait for room (default 60 s;
   *  negative = forever). */
  int64_t block_timeout_ms;
  /** Retry policy: total time from a request's first attempt (default
   *  60 s), backoff initial / max / multiplier (defaults 100 ms, 60 s, 4,
   *  fact 57), per-attempt RPC timeout (default 60 s, capped by what is
   *  left of the retry deadline). */
  int64_t retry_deadline_ms;
  int64_t backoff_initial_ms;
  int64_t backoff_max_ms;
  double backoff_multiplier;
  int64_t rpc_timeout_ms;
  /** Seed of the backoff jitter; 0 = from the clock. */
  uint64_t seed;
} trb_ps_publisher_config_t;

/** A message to publish. All pointers borrowed for the trb_ps_publish
 *  call (the publisher copies what it keeps). */
typedef struct trb_ps_message_s {
  const uint8_t *data;
  size_t data_len;
  const trb_ps_attr_t *attrs;
  size_t n_attrs;
  /** NULL or "" = no ordering key. */
  const char *ordering_key;
} trb_ps_message_t;

/**
 * Completion of one message.
 * Params: code — OK or the final status; message — status message
 *         (borrowed, never NULL); message_id — server id when OK, else NULL
 *         (borrowed for the call).
 */
typedef void (*trb_ps_publish_cb)(void *user, grpc_status_code code,
                                  const char *message, const char *message_id);

/** Counters (trb_ps_publisher_stats). */
typedef struct trb_ps_publisher_stats_s {
  uint64_t accepted;  /* trb_ps_publish returned OK */
  /** succeeded / failed count a message before its callback runs, so a
   *  caller that saw N callbacks reads at least N here. */
  uint64_t succeeded; /* completed with a message id */
  uint64_t failed;    /* completed with an error */
  uint64_t requests;  /* Publish attempts sent (retries included) */
  uint64_t retries;   /* attempts that were retries */
  /** Most requests in flight at once, all keys (a request waiting for
   *  its retry counts as in flight). */
  uint64_t peak_in_flight;
  /** Status of the first failed message (OK when none failed); set once
   *  the failed request is accounted, just after its callbacks. */
  trb_status_t first_error;
} trb_ps_publisher_stats_t;

typedef struct trb_ps_publisher_s trb_ps_publisher_t;

/**
 * Create a publisher for `topic` ("projects/{p}/topics/{t}").
 * Params:  loop, ch — borrowed; must outlive the publisher.
 *          topic — copied. cfg — may be NULL (defaults); copied.
 *          out — receives the publisher (trb_ps_publisher_destroy).
 * Returns: OK; INVALID_ARGUMENT (missing topic, limits out of range);
 *          RESOURCE_EXHAUSTED (memory, thread).
 */
grpc_status_code trb_ps_publisher_create(trb_rpc_loop_t *loop,
                                         trb_rpc_channel_t *ch,
                                         const char *topic,
                                         const trb_ps_publisher_config_t *cfg,
                                         trb_ps_publisher_t **out,
                                         trb_status_t *st);

/**
 * Publish one message.
 * Returns: OK — accepted; `cb` will be called exactly once (see the file
 *            comment). On any other return `cb` is never called:
 *          INVALID_ARGUMENT — empty message (no data and no attributes),
 *            data > 10 MiB, > 100 attributes, empty/oversized key or value,
 *            ordering key > 1024 bytes, or a message that cannot fit one
 *            request;
 *          FAILED_PRECONDITION — the ordering key is paused, or the
 *            publisher is shutting down;
 *          RESOURCE_EXHAUSTED — REJECT and the buffer is full, or the
 *            message is larger than the flow-control byte limit;
 *          DEADLINE_EXCEEDED — BLOCK and no room within block_timeout_ms.
 * Threading: thread-safe. With BLOCK, must not be called on the loop thread
 *          (it would wait for completions only that thread can deliver).
 */
grpc_status_code trb_ps_publish(trb_ps_publisher_t *p,
                                const trb_ps_message_t *msg,
                                trb_ps_publish_cb cb, void *user,
                                trb_status_t *st);

/**
 * Publish `n` messages in order under one acquisition of the publisher's
 * lock (per message, trb_ps_publish takes and releases it once): for
 * batches of events from one producer. Same checks and semantics per
 * message as trb_ps_publish.
 * Params:  msgs — `n` messages, borrowed for the call. users — `n` user
 *          pointers; message i completes with cb(users[i], ...).
 *          accepted — may be NULL; receives how many messages (a prefix of
 *          `msgs`) were accepted: each gets exactly one callback.
 * Returns: OK when all `n` were accepted (n = 0: OK, nothing done).
 *          Otherwise the status of message `*accepted` (codes as for
 *          trb_ps_publish; INVALID_ARGUMENT also for NULL msgs/users); no
 *          callback for it, and the messages after it were not tried.
 * Threading: thread-safe. With BLOCK, not on the loop thread; the lock is
 *          released while waiting for flow-control room, so other
 *          publishers' messages may interleave with the batch (per
 *          ordering key, the order of `msgs` is kept).
 */
grpc_status_code trb_ps_publish_many(trb_ps_publisher_t *p,
                                     const trb_ps_message_t *msgs, size_t n,
                                     trb_ps_publish_cb cb,
                                     void *const *users, size_t *accepted,
                                     trb_status_t *st);

/**
 * Let a paused ordering key publish again. No-op for a key that is not
 * paused. Thread-safe.
 */
void trb_ps_publisher_resume(trb_ps_publisher_t *p, const char *ordering_key);

/**
 * Send everything queued now and wait until no accepted message is
 * outstanding (every callback has returned; messages published while the
 * flush waits are waited for too).
 * Params:  timeout_ms — relative; negative = forever.
 * Returns: OK; DEADLINE_EXCEEDED when messages are still outstanding.
 * Threading: thread-safe; must not be called on the loop thread.
 */
grpc_status_code trb_ps_publisher_flush(trb_ps_publisher_t *p,
                                        int64_t timeout_ms, trb_status_t *st);

/**
 * Stop accepting messages (trb_ps_publish → FAILED_PRECONDITION), flush
 * within `timeout_ms`, then complete every message not yet sent (queued or
 * waiting for a retry) with DEADLINE_EXCEEDED, wait for the requests in
 * flight (bounded by rpc_timeout_ms) and stop the timer thread.
 * Idempotent.
 * Params:  stats — may be NULL; receives the final counters.
 * Returns: OK when every accepted message succeeded; otherwise the code
 *          of the first failure (st says how many failed and why).
 * Threading: thread-safe; must not be called on the loop thread.
 */
grpc_status_code trb_ps_publisher_shutdown(trb_ps_publisher_t *p,
                                           int64_t timeout_ms,
                                           trb_ps_publisher_stats_t *stats,
                                           trb_status_t *st);

/** Current counters. Thread-safe. */
void trb_ps_publisher_stats(trb_ps_publisher_t *p,
                            trb_ps_publisher_stats_t *out);

/**
 * Shut down (without deadline) if needed, then free. NULL-safe.
 * Threading: exclusive; not on the loop thread.
 */
void trb_ps_publisher_destroy(trb_ps_publisher_t *p);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_PUBSUB_PUBLISHER_H */
