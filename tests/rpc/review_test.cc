// review_test.cc — regression tests from a line-by-line review of src/rpc:
// contract details of server.h / rpc.h that the other tests do not pin down.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "src/rpc/rpc.h"
#include "src/rpc/server.h"
#include "tests/rpc/fixture.h"

namespace {

using trb_test::Cond;
using trb_test::RpcTest;

constexpr char kEcho[] = "/tributary.test.Echo/Unary";
constexpr char kStreamMethod[] = "/tributary.test.Echo/Stream";

// ---------------------------------------------------------------------------
// server.h: "text values are returned NUL-terminated".
// ---------------------------------------------------------------------------

struct MdSeen {
  Cond cond;
  bool done = false;
  size_t len = 0;
  size_t strlen_value = 0;
  std::string value;
};

TEST_F(RpcTest, ServerMetadataTextValueIsNulTerminated) {
  MdSeen seen;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_rpc_server_add_unary(
                srv_, kEcho,
                [](void* user, trb_rpc_server_call_t* call, const uint8_t*, size_t) {
                  auto* s = static_cast<MdSeen*>(user);
                  size_t len = 0;
                  const char* v = trb_rpc_server_call_metadata(call, "x-review-long", &len);
                  size_t sl = v ? strlen(v) : 0;  // the documented use of a text value
                  s->cond.Update([&] {
                    s->done = true;
                    s->len = len;
                    s->strlen_value = sl;
                    s->value = v ? std::string(v, len) : "";
                  });
                  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, nullptr, nullptr, 0, "", 0);
                },
                &seen, &st_));
  Start();
  // Longer than a grpc_slice's inline storage, so the value lives in its own
  // heap block; a second header follows it on the wire.
  std::string value(100, 'v');
  trb_rpc_md_t md[] = {{"x-review-long", value.c_str(), 0}, {"x-review-next", "zzzz", 0}};
  trb_rpc_call_opts_t opts = {};
  opts.md = md;
  opts.n_md = 2;
  trb_rpc_response_t resp;
  EXPECT_EQ(GRPC_STATUS_OK, trb_rpc_unary_call(loop_, ch_, kEcho, "", 0, &opts, &resp))
      << resp.message;
  trb_rpc_response_deinit(&resp);
  ASSERT_TRUE(seen.cond.WaitFor([&] { return seen.done; }));
  EXPECT_EQ(value.size(), seen.len);
  EXPECT_EQ(value, seen.value);
  EXPECT_EQ(seen.len, seen.strlen_value) << "value is not NUL-terminated";
}

// ---------------------------------------------------------------------------
// server.h: "Callbacks of one call never run concurrently with each other"
// with n_threads > 1.
// ---------------------------------------------------------------------------

class ReviewMtTest : public RpcTest {
 protected:
  ReviewMtTest() { server_threads_ = 2; }
};

struct StartOverlap {
  Cond cond;
  bool in_start = false;       // guarded by cond
  int messages = 0;            // guarded by cond
  int during_start = 0;        // guarded by cond
  int done = 0;                // guarded by cond
};

TEST_F(ReviewMtTest, OnMessageDoesNotRunWhileOnStartRuns) {
  StartOverlap so;
  trb_rpc_stream_handler_t h = {};
  h.on_start = [](void* user, trb_rpc_server_call_t* call) {
    auto* s = static_cast<StartOverlap*>(user);
    s->cond.Update([&] { s->in_start = true; });
    // A greeting written from on_start; its completion must not start reading
    // while this callback is still running.
    EXPECT_EQ(GRPC_STATUS_OK, trb_rpc_server_call_write(call, "hello", 5));
    // Give a concurrent on_message (the bug) time to show up; with the
    // guarantee kept this simply times out.
    s->cond.WaitFor([&] { return s->messages > 0; }, 300);
    s->cond.Update([&] { s->in_start = false; });
  };
  h.on_message = [](void* user, trb_rpc_server_call_t*, const uint8_t*, size_t) {
    auto* s = static_cast<StartOverlap*>(user);
    s->cond.Update([&] {
      s->messages++;
      if (s->in_start) s->during_start++;
    });
  };
  h.on_half_close = [](void*, trb_rpc_server_call_t* call) {
    trb_rpc_server_call_finish(call, GRPC_STATUS_OK, nullptr, nullptr, 0, nullptr, 0);
  };
  h.on_done = [](void* user, trb_rpc_server_call_t*, bool) {
    auto* s = static_cast<StartOverlap*>(user);
    s->cond.Update([&] { s->done++; });
  };
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_add_stream(srv_, kStreamMethod, &h, &so, &st_));
  Start();

  struct Client {
    Cond cond;
    bool closed = false;
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
  } c;
  trb_rpc_stream_cbs_t cbs = {};
  cbs.on_message = [](void*, trb_rpc_stream_t*, const uint8_t*, size_t) {};
  cbs.on_close = [](void* user, trb_rpc_stream_t*, const trb_rpc_result_t* r) {
    auto* cl = static_cast<Client*>(user);
    cl->cond.Update([&] {
      cl->closed = true;
      cl->code = r->code;
    });
  };
  trb_rpc_stream_t* s = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_start(loop_, ch_, kStreamMethod, nullptr, &cbs, &c, &s, &st_))
      << st_.msg;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_write(s, "m", 1, nullptr));
  trb_rpc_stream_writes_done(s);
  ASSERT_TRUE(c.cond.WaitFor([&] { return c.closed; }));
  EXPECT_EQ(GRPC_STATUS_OK, c.code);
  trb_rpc_stream_release(s);
  ASSERT_TRUE(so.cond.WaitFor([&] { return so.done == 1; }));
  EXPECT_EQ(1, so.messages);
  EXPECT_EQ(0, so.during_start) << "on_message ran concurrently with on_start";
}

// ---------------------------------------------------------------------------
// Multi-threaded server: completions of one call on different threads.
// ---------------------------------------------------------------------------

class ReviewMt4Test : public RpcTest {
 protected:
  ReviewMt4Test() { server_threads_ = 4; }
};

TEST_F(ReviewMt4Test, ManyUnaryCallsOnMultiThreadedServer) {
  std::atomic<int> handled{0};
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_rpc_server_add_unary(
                srv_, kEcho,
                [](void* user, trb_rpc_server_call_t* call, const uint8_t* req, size_t len) {
                  static_cast<std::atomic<int>*>(user)->fetch_add(1);
                  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, nullptr, nullptr, 0, req, len);
                },
                &handled, &st_));
  Start();
  struct Ctx {
    Cond cond;
    int done = 0;
    int ok = 0;
  } ctx;
  const int kCalls = 3000;
  const int kWindow = 64;
  for (int i = 0; i < kCalls; i++) {
    ASSERT_TRUE(ctx.cond.WaitFor([&] { return i - ctx.done < kWindow; }));
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_rpc_unary_start(
                  loop_, ch_, kEcho, "x", 1, nullptr,
                  [](void* user, const trb_rpc_result_t* r) {
                    auto* c = static_cast<Ctx*>(user);
                    c->cond.Update([&] {
                      c->done++;
                      if (r->code == GRPC_STATUS_OK) c->ok++;
                    });
                  },
                  &ctx, &st_))
        << st_.msg;
  }
  ASSERT_TRUE(ctx.cond.WaitFor([&] { return ctx.done == kCalls; }, 120000));
  EXPECT_EQ(kCalls, ctx.ok);
  EXPECT_EQ(kCalls, handled.load());
}

// ---------------------------------------------------------------------------
// rpc.h: trb_rpc_stream_start returns INTERNAL "when gRPC refuses the batch"
// (as trb_rpc_unary_start does) — not abort the process.
// ---------------------------------------------------------------------------

TEST_F(RpcTest, UnaryStartWithIllegalMetadataKeyFailsCleanly) {
  Start();
  trb_rpc_md_t md[] = {{"X-Upper Case", "v", 0}};
  trb_rpc_call_opts_t opts = {};
  opts.md = md;
  opts.n_md = 1;
  int called = 0;
  EXPECT_NE(GRPC_STATUS_OK,
            trb_rpc_unary_start(loop_, ch_, kEcho, "", 0, &opts,
                                [](void* u, const trb_rpc_result_t*) { ++*static_cast<int*>(u); },
                                &called, &st_));
  EXPECT_EQ(0, called);
}

TEST_F(RpcTest, StreamStartWithIllegalMetadataKeyFailsCleanly) {
  Start();
  trb_rpc_md_t md[] = {{"X-Upper Case", "v", 0}};
  trb_rpc_call_opts_t opts = {};
  opts.md = md;
  opts.n_md = 1;
  trb_rpc_stream_cbs_t cbs = {};
  cbs.on_message = [](void*, trb_rpc_stream_t*, const uint8_t*, size_t) {};
  cbs.on_close = [](void*, trb_rpc_stream_t*, const trb_rpc_result_t*) {};
  trb_rpc_stream_t* s = nullptr;
  EXPECT_NE(GRPC_STATUS_OK,
            trb_rpc_stream_start(loop_, ch_, kStreamMethod, &opts, &cbs, nullptr, &s, &st_));
  EXPECT_EQ(nullptr, s);
}

}  // namespace
