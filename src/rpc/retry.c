/*
 * retry.c — retry classification and backoff (see retry.h).
 */
#include "src/rpc/retry.h"

#include <string.h>

#include "src/common/clock.h"

#define BIT(c) (1u << (unsigned)(c))

static const unsigned retryable[] = {
    [TRB_RPC_OP_PUBLISH] =
        BIT(GRPC_STATUS_ABORTED) | BIT(GRPC_STATUS_CANCELLED) |
        BIT(GRPC_STATUS_DEADLINE_EXCEEDED) | BIT(GRPC_STATUS_INTERNAL) |
        BIT(GRPC_STATUS_RESOURCE_EXHAUSTED) | BIT(GRPC_STATUS_UNAVAILABLE) |
        BIT(GRPC_STATUS_UNKNOWN),
    [TRB_RPC_OP_STREAMING_PULL] =
        BIT(GRPC_STATUS_DEADLINE_EXCEEDED) |
        BIT(GRPC_STATUS_RESOURCE_EXHAUSTED) | BIT(GRPC_STATUS_ABORTED) |
        BIT(GRPC_STATUS_INTERNAL) | BIT(GRPC_STATUS_UNKNOWN) |
        BIT(GRPC_STATUS_UNAVAILABLE),
    [TRB_RPC_OP_ACK] =
        BIT(GRPC_STATUS_DEADLINE_EXCEEDED) |
        BIT(GRPC_STATUS_RESOURCE_EXHAUSTED) | BIT(GRPC_STATUS_ABORTED) |
        BIT(GRPC_STATUS_INTERNAL) | BIT(GRPC_STATUS_UNAVAILABLE),
    [TRB_RPC_OP_PULL] = BIT(GRPC_STATUS_UNKNOWN) | BIT(GRPC_STATUS_ABORTED) |
                        BIT(GRPC_STATUS_UNAVAILABLE) |
                        BIT(GRPC_STATUS_INTERNAL),
    [TRB_RPC_OP_APPEND_ROWS] =
        BIT(GRPC_STATUS_ABORTED) | BIT(GRPC_STATUS_UNAVAILABLE) |
        BIT(GRPC_STATUS_CANCELLED) | BIT(GRPC_STATUS_INTERNAL) |
        BIT(GRPC_STATUS_DEADLINE_EXCEEDED) | BIT(GRPC_STATUS_UNKNOWN) |
        BIT(GRPC_STATUS_RESOURCE_EXHAUSTED),
    [TRB_RPC_OP_UNARY_ADMIN] = BIT(GRPC_STATUS_DEADLINE_EXCEEDED) |
                               BIT(GRPC_STATUS_UNAVAILABLE) |
                               BIT(GRPC_STATUS_RESOURCE_EXHAUSTED),
};

bool trb_rpc_is_retryable(trb_rpc_op_t op, grpc_status_code code,
                          const char *message) {
  if ((unsigned)op >= sizeof(retryable) / sizeof(retryable[0])) return false;
  if ((unsigned)code > GRPC_STATUS_UNAUTHENTICATED) return false;
  if (!(retryable[op] & BIT(code))) return false;
  /* java-pubsub StatusUtil: a server that is shutting down for good. */
  if (op == TRB_RPC_OP_STREAMING_PULL && code == GRPC_STATUS_UNAVAILABLE &&
      message != NULL && strstr(message, "Server shutdownNow invoked")) {
    return false;
  }
  return true;
}

static uint64_t next_rand(trb_backoff_t *b) {
  /* xorshift64* (Vigna); state never 0. */
  uint64_t x = b->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  b->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

void trb_backoff_init(trb_backoff_t *b, int64_t initial_ms, int64_t max_ms,
                      double multiplier, uint64_t seed) {
  if (initial_ms < 1) initial_ms = 1;
  if (max_ms < initial_ms) max_ms = initial_ms;
  if (multiplier < 1.0) multiplier = 1.0;
  b->initial_ms = initial_ms;
  b->max_ms = max_ms;
  b->multiplier = multiplier;
  if (seed == 0) {
    seed = (uint64_t)trb_clock_mono_ns() ^ (uint64_t)(uintptr_t)b;
  }
  b->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
  trb_backoff_reset(b);
}

int64_t trb_backoff_next_ms(trb_backoff_t *b) {
  int64_t ceiling = (int64_t)b->ceiling_ms;
  if (ceiling > b->max_ms) ceiling = b->max_ms;
  b->ceiling_ms *= b->multiplier;
  if (b->ceiling_ms > (double)b->max_ms) b->ceiling_ms = (double)b->max_ms;
  b->attempts++;
  return (int64_t)(next_rand(b) % (uint64_t)(ceiling + 1));
}

void trb_backoff_reset(trb_backoff_t *b) {
  b->ceiling_ms = (double)b->initial_ms;
  b->attempts = 0;
}
