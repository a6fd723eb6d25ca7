// stream_shutdown_test.cc — streams that start while the server shuts down.
//
// Regression for a LeakSanitizer failure of subscriber_test: a StreamingPull
// stream whose call arrived as the emulator was stopping leaked its
// ps_stream_t (allocated in on_start). Root cause in src/rpc/server.c: the
// call's RECV_CLOSE_ON_SERVER batch was started before the op that keeps
// `on_done` from overtaking `on_start` was taken, and the admission check
// (`authorize`, always installed by the emulator) runs in between. When the
// shutdown cancelled the call in that window, another server thread
// delivered `on_done` (with no handler state yet) before `on_start`, and the
// state `on_start` then attached was never freed.
//
// ServerOnDoneNeverOvertakesOnStart holds that window open deterministically
// (the admission check waits until the shutdown has cancelled the call);
// the emulator tests start StreamingPull / AppendRows streams while the
// emulator stops, looped (leaks show up under ASan/LSan).
#include <gtest/gtest.h>

#include <cstdio>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "src/emulator/emulator.h"
#include "src/rpc/rpc.h"
#include "src/rpc/server.h"
#include "tests/testutil/wait.h"

namespace {

using trb_test::Cond;

constexpr char kMethod[] = "/trb.test.Shutdown/Stream";

// ---- client side -----------------------------------------------------------

struct ClientStream {
  Cond cond;
  bool closed = false;  // guarded by cond
  grpc_status_code code = GRPC_STATUS_OK;  // guarded by cond
  std::string message;                     // guarded by cond
  trb_rpc_stream_t* stream = nullptr;

  static trb_rpc_stream_cbs_t Callbacks() {
    trb_rpc_stream_cbs_t cbs = {};
    cbs.on_message = [](void*, trb_rpc_stream_t*, const uint8_t*, size_t) {};
    cbs.on_close = [](void* user, trb_rpc_stream_t*, const trb_rpc_result_t* r) {
      auto* c = static_cast<ClientStream*>(user);
      c->cond.Update([&] {
        c->closed = true;
        c->code = r->code;
        c->message = r->message ? r->message : "";
      });
    };
    return cbs;
  }
};

// ---- server side: the rpc layer alone ---------------------------------------

struct Handler {
  Cond cond;
  // All guarded by cond.
  int authorize_calls = 0;
  bool in_authorize = false;
  bool shutdown_begun = false;
  bool saw_cancelled = false;  // the window was really exercised
  int started = 0;
  int done = 0;
  int done_before_start = 0;
  int live_states = 0;  // handler state attached in on_start, not yet freed
};

struct CallState {
  Handler* h;
};

grpc_status_code Authorize(void* user, trb_rpc_server_call_t* call, char*, size_t) {
  auto* h = static_cast<Handler*>(user);
  bool first = false;
  h->cond.Update([&] {
    first = h->authorize_calls++ == 0;
    if (first) h->in_authorize = true;
  });
  if (!first) return GRPC_STATUS_OK;
  // Keep the window between the close batch and on_start open until the
  // shutdown has cancelled this call and the close has been processed.
  EXPECT_TRUE(h->cond.WaitFor([&] { return h->shutdown_begun; }, 30000));
  bool cancelled = false;
  for (int i = 0; i < 3000 && !cancelled; i++) {
    // The cancelled flag is set by another server thread without notifying
    // us: re-check it at each 10 ms deadline (30 s in all).
    h->cond.WaitFor([&] { return h->done > 0; }, 10);
    cancelled = trb_rpc_server_call_cancelled(call);
  }
  h->cond.Update([&] { h->saw_cancelled = cancelled; });
  // Before the fix, on_done arrives now on the thread that saw the close;
  // give it the time to. After it, on_done waits for on_start.
  h->cond.WaitFor([&] { return h->done > 0; }, 300);
  return GRPC_STATUS_OK;
}

void OnStart(void* user, trb_rpc_server_call_t* call) {
  auto* h = static_cast<Handler*>(user);
  auto* s = new CallState{h};
  trb_rpc_server_call_set_user(call, s);
  h->cond.Update([&] {
    h->started++;
    if (h->done >= h->started) h->done_before_start++;
    h->live_states++;
  });
  // As the emulator does for a stream started while it shuts down.
  trb_rpc_server_call_finish(call, GRPC_STATUS_UNAVAILABLE, "shutting down", nullptr, 0,
                             nullptr, 0);
}

void OnMessage(void*, trb_rpc_server_call_t*, const uint8_t*, size_t) {}

void OnDone(void* user, trb_rpc_server_call_t* call, bool) {
  auto* h = static_cast<Handler*>(user);
  auto* s = static_cast<CallState*>(trb_rpc_server_call_user(call));
  h->cond.Update([&] {
    h->done++;
    if (s != nullptr) h->live_states--;
  });
  delete s;
}

TEST(StreamShutdownTest, ServerOnDoneNeverOvertakesOnStart) {
  trb_rpc_init();
  trb_status_t st = {};
  Handler h;
  trb_rpc_server_config_t cfg = {};
  cfg.host = "127.0.0.1";
  cfg.n_threads = 2;  // one blocked in the admission check, one closing
  cfg.authorize = Authorize;
  cfg.authorize_user = &h;
  trb_rpc_server_t* srv = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_create(&cfg, &srv, &st)) << st.msg;
  trb_rpc_stream_handler_t sh = {};
  sh.on_start = OnStart;
  sh.on_message = OnMessage;
  sh.on_done = OnDone;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_add_stream(srv, kMethod, &sh, &h, &st)) << st.msg;
  int port = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_start(srv, &port, &st)) << st.msg;

  trb_rpc_loop_t* loop = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("shutdown-client", &loop, &st)) << st.msg;
  std::string target = "127.0.0.1:" + std::to_string(port);
  trb_rpc_channel_config_t cc = {};
  cc.target = target.c_str();
  cc.creds = TRB_RPC_CREDS_INSECURE;
  trb_rpc_channel_t* ch = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch, &st)) << st.msg;

  ClientStream cs;
  trb_rpc_stream_cbs_t cbs = ClientStream::Callbacks();
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_rpc_stream_start(loop, ch, kMethod, nullptr, &cbs, &cs, &cs.stream, &st))
      << st.msg;
  ASSERT_TRUE(h.cond.WaitFor([&] { return h.in_authorize; }));

  // Shut down while the call sits between its close batch and on_start.
  std::thread stopper([&] { trb_rpc_server_shutdown(srv); });
  h.cond.Update([&] { h.shutdown_begun = true; });
  stopper.join();

  EXPECT_TRUE(cs.cond.WaitFor([&] { return cs.closed; }));
  {
    auto l = h.cond.Lock();
    EXPECT_TRUE(h.saw_cancelled) << "the shutdown did not cancel the call in the window";
    EXPECT_EQ(1, h.started);
    EXPECT_EQ(1, h.done);
    EXPECT_EQ(0, h.done_before_start) << "on_done overtook on_start";
    EXPECT_EQ(0, h.live_states) << "state attached in on_start was never freed";
  }
  EXPECT_EQ(0, trb_rpc_server_live_calls(srv));
  trb_rpc_stream_release(cs.stream);
  EXPECT_EQ(0, trb_rpc_loop_live_calls(loop));
  trb_rpc_loop_destroy(loop);
  trb_rpc_channel_destroy(ch);
  trb_rpc_server_destroy(srv);
  trb_rpc_shutdown();
}

// ---- the emulator: streams opened as it stops -------------------------------

// Open `n` streams of `method` on the emulator's `port`, stop the emulator
// while they arrive, then wait until every client stream has closed.
void StreamsDuringStop(const char* method, bool pubsub, int rounds, int n,
                       std::map<std::string, int>* outcomes) {
  trb_rpc_init();
  trb_status_t st = {};
  trb_rpc_loop_t* loop = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("shutdown-client", &loop, &st)) << st.msg;
  for (int r = 0; r < rounds; r++) {
    trb_emulator_config_t cfg = {};
    cfg.host = "127.0.0.1";
    cfg.server_threads = 2;
    trb_emulator_t* emu = nullptr;
    ASSERT_EQ(GRPC_STATUS_OK, trb_emulator_start(&cfg, &emu, &st)) << st.msg;
    int port = pubsub ? trb_emulator_pubsub_port(emu) : trb_emulator_bigquery_port(emu);
    std::string target = "127.0.0.1:" + std::to_string(port);
    trb_rpc_channel_config_t cc = {};
    cc.target = target.c_str();
    cc.creds = TRB_RPC_CREDS_INSECURE;
    trb_rpc_channel_t* ch = nullptr;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch, &st)) << st.msg;
    // Connect first (an unregistered method: UNIMPLEMENTED), so that the
    // streams reach the server instead of racing the TCP connect.
    trb_rpc_response_t warm = {};
    EXPECT_EQ(GRPC_STATUS_UNIMPLEMENTED,
              trb_rpc_unary_call(loop, ch, "/trb.test.Warmup/Ping", "", 0, nullptr, &warm))
        << (warm.message ? warm.message : "");
    trb_rpc_response_deinit(&warm);
    std::vector<ClientStream> cs(n);
    trb_rpc_stream_cbs_t cbs = ClientStream::Callbacks();
    // The first half is open before the stop begins; the rest races it.
    for (int i = 0; i < n / 2; i++) {
      ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_start(loop, ch, method, nullptr, &cbs, &cs[i],
                                                     &cs[i].stream, &st))
          << st.msg;
    }
    std::thread opener([&] {
      for (int i = n / 2; i < n; i++) {
        trb_status_t ost = {};
        EXPECT_EQ(GRPC_STATUS_OK, trb_rpc_stream_start(loop, ch, method, nullptr, &cbs, &cs[i],
                                                       &cs[i].stream, &ost))
            << ost.msg;
      }
    });
    trb_emulator_stop(emu);
    opener.join();
    for (int i = 0; i < n; i++) {
      if (cs[i].stream == nullptr) continue;
      EXPECT_TRUE(cs[i].cond.WaitFor([&] { return cs[i].closed; })) << "stream " << i;
      // Refused by the server or the service, ended by the stop, or the
      // connection refused: never a success or an internal error.
      auto l = cs[i].cond.Lock();
      EXPECT_TRUE(cs[i].code == GRPC_STATUS_UNAVAILABLE || cs[i].code == GRPC_STATUS_CANCELLED)
          << "stream " << i << ": " << cs[i].code << " " << cs[i].message;
      (*outcomes)[std::to_string(cs[i].code) + " " + cs[i].message.substr(0, 40)]++;
      l.unlock();
      trb_rpc_stream_release(cs[i].stream);
    }
    trb_rpc_channel_destroy(ch);
  }
  EXPECT_EQ(0, trb_rpc_loop_live_calls(loop));
  trb_rpc_loop_destroy(loop);
  trb_rpc_shutdown();
}

void PrintOutcomes(const std::map<std::string, int>& outcomes) {
  for (const auto& o : outcomes) printf("  %4d x %s\n", o.second, o.first.c_str());
}

TEST(StreamShutdownTest, StreamingPullDuringEmulatorStop) {
  std::map<std::string, int> outcomes;
  StreamsDuringStop("/google.pubsub.v1.Subscriber/StreamingPull", true, 20, 16, &outcomes);
  PrintOutcomes(outcomes);
}

TEST(StreamShutdownTest, AppendRowsDuringEmulatorStop) {
  std::map<std::string, int> outcomes;
  StreamsDuringStop("/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows", false, 20,
                    16, &outcomes);
  PrintOutcomes(outcomes);
}

}  // namespace
