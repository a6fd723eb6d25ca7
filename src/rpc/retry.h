/*
 * retry.h — which failed calls to retry, and how long to wait.
 *
 * One function decides retryability for every Google API operation
 * Tributary performs (STYLE.md 3.3: "retry classification is a function,
 * not folklore"), from the official clients' published settings; one
 * backoff helper (exponential growth, full jitter, cap, reset) paces them.
 *
 * Threading: trb_rpc_is_retryable is thread-safe; a trb_backoff_t is
 * thread-compatible (one owner).
 * Source: ../shared/PROTOCOL.md A.5 (29, 31, 32) and B.3 (53, 54, 57):
 * java-pubsub Publisher/SubscriberStubSettings and StatusUtil,
 * python-pubsub streaming_pull_manager, java-bigquerystorage
 * ConnectionWorker and BigQueryWriteStubSettings.
 */
#ifndef TRB_SRC_RPC_RETRY_H
#define TRB_SRC_RPC_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The operation that failed. */
typedef enum trb_rpc_op_e {
  /** Publisher.Publish: ABORTED, CANCELLED, DEADLINE_EXCEEDED, INTERNAL,
   *  RESOURCE_EXHAUSTED, UNAVAILABLE, UNKNOWN. */
  TRB_RPC_OP_PUBLISH = 0,
  /** Subscriber.StreamingPull (reopen the stream): DEADLINE_EXCEEDED,
   *  RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNKNOWN, and UNAVAILABLE unless
   *  the server said "Server shutdownNow invoked". CANCELLED is not retried
   *  (it is how a stream the client cancelled ends). */
  TRB_RPC_OP_STREAMING_PULL,
  /** Subscriber.Acknowledge / ModifyAckDeadline, ack ids not reported in
   *  ErrorInfo: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL,
   *  UNAVAILABLE. */
  TRB_RPC_OP_ACK,
  /** Subscriber.Pull: UNKNOWN, ABORTED, UNAVAILABLE, INTERNAL. */
  TRB_RPC_OP_PULL,
  /** BigQueryWrite.AppendRows connection or request (resend at the same
   *  offset): ABORTED, UNAVAILABLE, CANCELLED, INTERNAL, DEADLINE_EXCEEDED,
   *  UNKNOWN, RESOURCE_EXHAUSTED (quota; back off). ALREADY_EXISTS and
   *  OUT_OF_RANGE are outcomes, not retries: the caller handles them. */
  TRB_RPC_OP_APPEND_ROWS,
  /** BigQueryWrite Create/Get/Finalize/BatchCommit/FlushRows, admin and
   *  lookup calls on either service: DEADLINE_EXCEEDED, UNAVAILABLE,
   *  RESOURCE_EXHAUSTED. */
  TRB_RPC_OP_UNARY_ADMIN,
} trb_rpc_op_t;

/**
 * Whether a call of kind `op` that ended with `code` should be retried.
 * Params:  message — the status message (may be NULL); used only where the
 *          official clients match on it.
 * Returns: true to retry (after a backoff); false for success and for
 *          errors the caller must handle.
 */
bool trb_rpc_is_retryable(trb_rpc_op_t op, grpc_status_code code,
                          const char *message);

/** Exponential backoff with full jitter. Plain value; init before use. */
typedef struct trb_backoff_s {
  int64_t initial_ms;
  int64_t max_ms;
  double multiplier;
  double ceiling_ms; /* current upper bound before the cap */
  uint64_t rng;      /* xorshift64* state */
  uint32_t attempts; /* delays handed out since the last reset */
} trb_backoff_t;

/**
 * Params:  initial_ms — first ceiling, > 0 (e.g. 100 for StreamingPull).
 *          max_ms — cap, >= initial_ms (e.g. 10000).
 *          multiplier — growth per attempt, >= 1 (e.g. 2.0).
 *          seed — RNG seed; 0 = derived from the clock and the address.
 */
void trb_backoff_init(trb_backoff_t *b, int64_t initial_ms, int64_t max_ms,
                      double multiplier, uint64_t seed);

/**
 * The next delay in milliseconds: uniform in [0, ceiling], where ceiling
 * is initial_ms × multiplier^attempts capped at max_ms ("full jitter").
 */
int64_t trb_backoff_next_ms(trb_backoff_t *b);

/** Forget the attempts (after a success or a clean close). */
void trb_backoff_reset(trb_backoff_t *b);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_RPC_RETRY_H */
