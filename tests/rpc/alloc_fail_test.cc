// alloc_fail_test.cc — every trb_malloc in the rpc layer's set-up paths
// failing in turn: each path reports RESOURCE_EXHAUSTED (or succeeds when the
// failed allocation was optional) and leaks nothing (LeakSanitizer at exit).
#include <gtest/gtest.h>

#include <cstring>

#include "src/common/alloc.h"
#include "src/rpc/details.h"
#include "src/rpc/rpc.h"
#include "src/rpc/server.h"
#include "tests/testutil/wait.h"

namespace {

struct FailNth {
  int countdown;  // allocations to let through; the next one fails
  int failures = 0;
};

int FailHook(size_t, void* user) {
  auto* f = static_cast<FailNth*>(user);
  if (f->countdown-- == 0) {
    f->failures++;
    return 1;
  }
  return 0;
}

// Runs `body` with the n-th allocation failing, for n = 0, 1, ... until a
// run sees no failure (the path made fewer allocations). Returns the count.
template <typename Body>
int Sweep(Body body) {
  for (int n = 0; n < 200; n++) {
    FailNth f{n};
    trb_alloc_set_fail_hook(FailHook, &f);
    body();
    trb_alloc_set_fail_hook(nullptr, nullptr);
    if (f.failures == 0) return n;
  }
  ADD_FAILURE() << "allocation sweep did not converge";
  return -1;
}

void ExpectOkOrExhausted(grpc_status_code code, const trb_status_t& st) {
  EXPECT_TRUE(code == GRPC_STATUS_OK || code == GRPC_STATUS_RESOURCE_EXHAUSTED)
      << trb_status_code_name(code) << ": " << st.msg;
}

class AllocFailTest : public ::testing::Test {
 protected:
  void SetUp() override { trb_rpc_init(); }
  void TearDown() override { trb_rpc_shutdown(); }
};

TEST_F(AllocFailTest, ServerCreateRegisterStartShutdown) {
  int n = Sweep([] {
    trb_status_t st = {};
    trb_rpc_server_config_t cfg = {};
    trb_rpc_server_t* srv = nullptr;
    grpc_status_code code = trb_rpc_server_create(&cfg, &srv, &st);
    ExpectOkOrExhausted(code, st);
    if (code != GRPC_STATUS_OK) {
      EXPECT_EQ(nullptr, srv);
      return;
    }
    trb_rpc_stream_handler_t h = {};
    h.on_start = [](void*, trb_rpc_server_call_t*) {};
    h.on_message = [](void*, trb_rpc_server_call_t*, const uint8_t*, size_t) {};
    code = trb_rpc_server_add_stream(srv, "/a.B/C", &h, nullptr, &st);
    ExpectOkOrExhausted(code, st);
    if (code == GRPC_STATUS_OK) {
      int port = 0;
      code = trb_rpc_server_start(srv, &port, &st);
      ExpectOkOrExhausted(code, st);
    }
    trb_rpc_server_destroy(srv);
  });
  EXPECT_GT(n, 3);
}

TEST_F(AllocFailTest, LoopAndChannelCreate) {
  int n = Sweep([] {
    trb_status_t st = {};
    trb_rpc_loop_t* loop = nullptr;
    grpc_status_code code = trb_rpc_loop_create("af", &loop, &st);
    ExpectOkOrExhausted(code, st);
    trb_rpc_channel_config_t cc = {};
    cc.target = "127.0.0.1:1";
    trb_rpc_channel_t* ch = nullptr;
    grpc_status_code ccode = trb_rpc_channel_create(&cc, &ch, &st);
    ExpectOkOrExhausted(ccode, st);
    if (code == GRPC_STATUS_OK && ccode == GRPC_STATUS_OK) {
      // A call that fails to start (allocation) never calls back; one that
      // starts calls back exactly once (here: UNAVAILABLE, nobody listens).
      struct Done {
        trb_test::Cond cond;
        int called = 0;
      } done;
      trb_rpc_call_opts_t o = {};
      o.timeout_ms = 5000;
      grpc_status_code u = trb_rpc_unary_start(
          loop, ch, "/a.B/C", "x", 1, &o,
          [](void* user, const trb_rpc_result_t*) {
            auto* d = static_cast<Done*>(user);
            d->cond.Update([&] { d->called++; });
          },
          &done, &st);
      ExpectOkOrExhausted(u, st);
      if (u == GRPC_STATUS_OK) {
        EXPECT_TRUE(done.cond.WaitFor([&] { return done.called == 1; }));
      } else {
        EXPECT_EQ(0, done.called);
      }
    }
    trb_rpc_loop_destroy(loop);
    trb_rpc_channel_destroy(ch);
  });
  EXPECT_GT(n, 1);
}

TEST_F(AllocFailTest, StatusDetailsCodec) {
  const uint8_t v[] = {1, 2, 3};
  trb_rpc_any_t any[2] = {{"type.googleapis.com/google.rpc.ErrorInfo", v, sizeof(v)},
                          {"type.googleapis.com/google.rpc.RetryInfo", v, 0}};
  int n = Sweep([&] {
    trb_status_t st = {};
    uint8_t* buf = nullptr;
    size_t len = 0;
    grpc_status_code code =
        trb_rpc_status_details_encode(GRPC_STATUS_ABORTED, "m", any, 2, &buf, &len, &st);
    ExpectOkOrExhausted(code, st);
    if (code != GRPC_STATUS_OK) return;
    trb_rpc_status_details_t d;
    code = trb_rpc_status_details_decode(buf, len, &d, &st);
    ExpectOkOrExhausted(code, st);
    if (code == GRPC_STATUS_OK) {
      EXPECT_EQ(2u, d.n_details);
      EXPECT_STREQ("m", d.message);
    }
    trb_rpc_status_details_deinit(&d);
    trb_free(buf);
  });
  EXPECT_GT(n, 4);
}

}  // namespace
