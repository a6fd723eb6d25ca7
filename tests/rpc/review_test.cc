// review_test.cc — regression tests from a line-by-line review of src/rpc:
// contract details of rpc.h that the other tests do not pin down.
#include <gtest/gtest.h>

#include "src/rpc/rpc.h"
#include "tests/rpc/fixture.h"

namespace {

using trb_test::RpcTest;

constexpr char kEcho[] = "/tributary.test.Echo/Unary";

// rpc.h: trb_rpc_unary_start returns INTERNAL "when gRPC refuses the batch"
// (here: an illegal metadata key), never calls `cb`, and leaves no live call
// behind (TearDown checks trb_rpc_loop_live_calls).
TEST_F(RpcTest, UnaryStartWithIllegalMetadataKeyFailsCleanly) {
  Start();
  trb_rpc_md_t md[] = {{"X-Upper Case", "v", 0}};
  trb_rpc_call_opts_t opts = {};
  opts.md = md;
  opts.n_md = 1;
  int called = 0;
  EXPECT_EQ(GRPC_STATUS_INTERNAL,
            trb_rpc_unary_start(loop_, ch_, kEcho, "", 0, &opts,
                                [](void* u, const trb_rpc_result_t*) { ++*static_cast<int*>(u); },
                                &called, &st_));
  EXPECT_EQ(0, called);
  EXPECT_EQ(0, trb_rpc_loop_live_calls(loop_));
}

}  // namespace
