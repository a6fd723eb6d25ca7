// retry_test.cc — retry classification and backoff.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "src/rpc/retry.h"

namespace {

std::set<grpc_status_code> Retryable(trb_rpc_op_t op) {
  std::set<grpc_status_code> out;
  for (int c = 0; c <= GRPC_STATUS_UNAUTHENTICATED; c++) {
    if (trb_rpc_is_retryable(op, static_cast<grpc_status_code>(c), nullptr)) {
      out.insert(static_cast<grpc_status_code>(c));
    }
  }
  return out;
}

TEST(RetryTest, PublishMatchesTheOfficialPublisherSettings) {
  EXPECT_EQ((std::set<grpc_status_code>{GRPC_STATUS_ABORTED, GRPC_STATUS_CANCELLED,
                                        GRPC_STATUS_DEADLINE_EXCEEDED, GRPC_STATUS_INTERNAL,
                                        GRPC_STATUS_RESOURCE_EXHAUSTED, GRPC_STATUS_UNAVAILABLE,
                                        GRPC_STATUS_UNKNOWN}),
            Retryable(TRB_RPC_OP_PUBLISH));
}

TEST(RetryTest, StreamingPullReconnectsButNotOnShutdownNow) {
  EXPECT_TRUE(trb_rpc_is_retryable(TRB_RPC_OP_STREAMING_PULL, GRPC_STATUS_UNAVAILABLE,
                                   "The service was unable to fulfill your request"));
  EXPECT_FALSE(trb_rpc_is_retryable(TRB_RPC_OP_STREAMING_PULL, GRPC_STATUS_UNAVAILABLE,
                                    "Server shutdownNow invoked"));
  EXPECT_FALSE(trb_rpc_is_retryable(TRB_RPC_OP_STREAMING_PULL, GRPC_STATUS_CANCELLED, nullptr));
  EXPECT_FALSE(trb_rpc_is_retryable(TRB_RPC_OP_STREAMING_PULL, GRPC_STATUS_NOT_FOUND, nullptr));
  EXPECT_FALSE(
      trb_rpc_is_retryable(TRB_RPC_OP_STREAMING_PULL, GRPC_STATUS_PERMISSION_DENIED, nullptr));
}

TEST(RetryTest, AppendRowsOutcomesAreNotRetries) {
  EXPECT_TRUE(trb_rpc_is_retryable(TRB_RPC_OP_APPEND_ROWS, GRPC_STATUS_UNAVAILABLE, nullptr));
  EXPECT_TRUE(
      trb_rpc_is_retryable(TRB_RPC_OP_APPEND_ROWS, GRPC_STATUS_RESOURCE_EXHAUSTED, nullptr));
  EXPECT_FALSE(trb_rpc_is_retryable(TRB_RPC_OP_APPEND_ROWS, GRPC_STATUS_ALREADY_EXISTS, nullptr));
  EXPECT_FALSE(trb_rpc_is_retryable(TRB_RPC_OP_APPEND_ROWS, GRPC_STATUS_OUT_OF_RANGE, nullptr));
  EXPECT_FALSE(
      trb_rpc_is_retryable(TRB_RPC_OP_APPEND_ROWS, GRPC_STATUS_INVALID_ARGUMENT, nullptr));
}

TEST(RetryTest, AckAndAdmin) {
  EXPECT_EQ((std::set<grpc_status_code>{GRPC_STATUS_DEADLINE_EXCEEDED,
                                        GRPC_STATUS_RESOURCE_EXHAUSTED, GRPC_STATUS_ABORTED,
                                        GRPC_STATUS_INTERNAL, GRPC_STATUS_UNAVAILABLE}),
            Retryable(TRB_RPC_OP_ACK));
  EXPECT_EQ((std::set<grpc_status_code>{GRPC_STATUS_DEADLINE_EXCEEDED, GRPC_STATUS_UNAVAILABLE,
                                        GRPC_STATUS_RESOURCE_EXHAUSTED}),
            Retryable(TRB_RPC_OP_UNARY_ADMIN));
  EXPECT_FALSE(trb_rpc_is_retryable(TRB_RPC_OP_UNARY_ADMIN, GRPC_STATUS_OK, nullptr));
  EXPECT_FALSE(trb_rpc_is_retryable(static_cast<trb_rpc_op_t>(99), GRPC_STATUS_UNAVAILABLE,
                                    nullptr));
}

TEST(BackoffTest, FullJitterUnderAGrowingCappedCeiling) {
  trb_backoff_t b;
  trb_backoff_init(&b, 100, 10000, 2.0, 42);
  int64_t ceiling = 100;
  for (int i = 0; i < 20; i++) {
    int64_t d = trb_backoff_next_ms(&b);
    EXPECT_GE(d, 0);
    EXPECT_LE(d, ceiling) << "attempt " << i;
    ceiling = std::min<int64_t>(ceiling * 2, 10000);
  }
  EXPECT_EQ(20u, b.attempts);
}

TEST(BackoffTest, JitterSpreadsAndResetStartsOver) {
  trb_backoff_t b;
  trb_backoff_init(&b, 1000, 1000, 2.0, 7);
  std::set<int64_t> seen;
  for (int i = 0; i < 200; i++) seen.insert(trb_backoff_next_ms(&b));
  EXPECT_GT(seen.size(), 100u);  // not a constant delay
  for (int i = 0; i < 10; i++) trb_backoff_next_ms(&b);
  trb_backoff_init(&b, 50, 10000, 2.0, 7);
  for (int i = 0; i < 10; i++) trb_backoff_next_ms(&b);
  trb_backoff_reset(&b);
  EXPECT_EQ(0u, b.attempts);
  for (int i = 0; i < 50; i++) {
    trb_backoff_reset(&b);
    EXPECT_LE(trb_backoff_next_ms(&b), 50);
  }
}

}  // namespace
