// ps_bench.cc — throughput of the Pub/Sub emulator (not a test; run with
// `bazel run -c opt //tests/emulator/pubsub:ps_bench -- [N] [DIR]`):
// Publish (batches of 1000, 8 in flight) → StreamingPull → Acknowledge on
// the stream, 600-byte messages, durable SQLite file. Prints msg/s.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/emulator/db.h"
#include "src/emulator/pubsub/pubsub.h"
#include "src/rpc/pb.h"
#include "src/rpc/rpc.h"
#include "src/rpc/server.h"
#include "tests/testutil/wait.h"

namespace {

struct Sub {
  trb_test::Cond cond;
  int64_t received = 0;
  bool closed = false;
  trb_rpc_stream_t* s = nullptr;
};

void OnMessage(void* user, trb_rpc_stream_t* s, const uint8_t* data, size_t len) {
  auto* sub = static_cast<Sub*>(user);
  google_pubsub_v1_StreamingPullResponse r = google_pubsub_v1_StreamingPullResponse_init_zero;
  trb_status_t st;
  if (trb_pb_decode(google_pubsub_v1_StreamingPullResponse_fields, data, len, &r, &st) != GRPC_STATUS_OK) {
    abort();
  }
  std::vector<char*> ids;
  for (pb_size_t i = 0; i < r.received_messages_count; i++) ids.push_back(r.received_messages[i].ack_id);
  google_pubsub_v1_StreamingPullRequest ack = google_pubsub_v1_StreamingPullRequest_init_zero;
  ack.ack_ids_count = static_cast<pb_size_t>(ids.size());
  ack.ack_ids = ids.data();
  uint8_t* buf = nullptr;
  size_t n = 0;
  trb_pb_encode(google_pubsub_v1_StreamingPullRequest_fields, &ack, &buf, &n, &st);
  trb_rpc_stream_write(s, buf, n, nullptr);
  trb_free(buf);
  int64_t got = r.received_messages_count;
  trb_pb_release(google_pubsub_v1_StreamingPullResponse_fields, &r);
  sub->cond.Update([&] { sub->received += got; });
}

void OnClose(void* user, trb_rpc_stream_t*, const trb_rpc_result_t* r) {
  auto* sub = static_cast<Sub*>(user);
  fprintf(stderr, "stream closed: %d %s\n", r->code, r->message);
  sub->cond.Update([&] { sub->closed = true; });
}

struct Pub {
  trb_test::Cond cond;
  int inflight = 0;
  int failed = 0;
};

void OnPublished(void* user, const trb_rpc_result_t* r) {
  auto* p = static_cast<Pub*>(user);
  p->cond.Update([&] {
    p->inflight--;
    if (r->code != GRPC_STATUS_OK) p->failed++;
  });
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = argc > 1 ? atoll(argv[1]) : 300000;
  std::string dir = argc > 2 ? argv[2] : "/tmp/ps_bench";
  std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
  if (system(cmd.c_str()) != 0) return 1;
  trb_alloc_process_init();
  trb_rpc_init();
  trb_status_t st;
  trb_db_t* db = nullptr;
  trb_db_options_t o = {};
  o.name = "pubsub";
  std::string path = dir + "/pubsub.sqlite";
  if (trb_db_open(path.c_str(), &o, &db, &st) != GRPC_STATUS_OK) return 1;
  trb_psemu_config_t cfg = {};
  cfg.db = db;
  trb_psemu_t* ps = nullptr;
  if (trb_psemu_create(&cfg, &ps, &st) != GRPC_STATUS_OK) return 1;
  trb_rpc_server_config_t sc = {};
  sc.n_threads = 2;
  trb_rpc_server_t* srv = nullptr;
  trb_rpc_server_create(&sc, &srv, &st);
  trb_psemu_register(ps, srv, &st);
  int port = 0;
  trb_rpc_server_start(srv, &port, &st);
  google_pubsub_v1_Topic t = google_pubsub_v1_Topic_init_zero;
  t.name = const_cast<char*>("projects/demo/topics/bench");
  trb_psemu_create_topic(ps, &t, &st);
  google_pubsub_v1_Subscription s = google_pubsub_v1_Subscription_init_zero;
  s.name = const_cast<char*>("projects/demo/subscriptions/bench");
  s.topic = t.name;
  trb_psemu_create_subscription(ps, &s, &st);

  trb_rpc_loop_t *ploop = nullptr, *sloop = nullptr;
  trb_rpc_loop_create("pub", &ploop, &st);
  trb_rpc_loop_create("sub", &sloop, &st);
  std::string target = "127.0.0.1:" + std::to_string(port);
  trb_rpc_channel_config_t cc = {};
  cc.target = target.c_str();
  trb_rpc_channel_t *pch = nullptr, *sch = nullptr;
  trb_rpc_channel_create(&cc, &pch, &st);
  trb_rpc_channel_create(&cc, &sch, &st);

  Sub sub;
  trb_rpc_stream_cbs_t cbs = {};
  cbs.on_message = OnMessage;
  cbs.on_close = OnClose;
  trb_rpc_stream_start(sloop, sch, "/google.pubsub.v1.Subscriber/StreamingPull", nullptr, &cbs,
                       &sub, &sub.s, &st);
  google_pubsub_v1_StreamingPullRequest first = google_pubsub_v1_StreamingPullRequest_init_zero;
  first.subscription = s.name;
  first.stream_ack_deadline_seconds = 600;
  first.max_outstanding_messages = 10000;
  uint8_t* fb = nullptr;
  size_t fl = 0;
  trb_pb_encode(google_pubsub_v1_StreamingPullRequest_fields, &first, &fb, &fl, &st);
  trb_rpc_stream_write(sub.s, fb, fl, nullptr);
  trb_free(fb);

  // One encoded PublishRequest of 1000 x 600 bytes, reused.
  std::string payload(600, 'p');
  std::vector<google_pubsub_v1_PubsubMessage> msgs(1000);
  for (auto& m : msgs) {
    m = google_pubsub_v1_PubsubMessage_init_zero;
    m.data.data = reinterpret_cast<const uint8_t*>(payload.data());
    m.data.len = payload.size();
  }
  google_pubsub_v1_PublishRequest pr = google_pubsub_v1_PublishRequest_init_zero;
  pr.topic = t.name;
  pr.messages_count = 1000;
  pr.messages = msgs.data();
  uint8_t* req = nullptr;
  size_t req_len = 0;
  trb_pb_encode(google_pubsub_v1_PublishRequest_fields, &pr, &req, &req_len, &st);

  Pub pub;
  int64_t t0 = trb_clock_mono_ns(), c0 = trb_clock_cpu_ns();
  for (int64_t sent = 0; sent < n; sent += 1000) {
    pub.cond.WaitFor([&] { return pub.inflight < 8; }, 60000);
    pub.cond.Update([&] { pub.inflight++; });
    trb_rpc_unary_start(ploop, pch, "/google.pubsub.v1.Publisher/Publish", req, req_len, nullptr,
                        OnPublished, &pub, &st);
  }
  pub.cond.WaitFor([&] { return pub.inflight == 0; }, 60000);
  int64_t t1 = trb_clock_mono_ns();
  bool ok = sub.cond.WaitFor([&] { return sub.received >= n || sub.closed; }, 120000);
  int64_t t2 = trb_clock_mono_ns(), c2 = trb_clock_cpu_ns();
  long long ops = 0, commits = 0;
  trb_db_stats(db, &ops, &commits);
  printf("messages %lld, publish failures %d, received %lld (%s)\n", (long long)n, pub.failed,
         (long long)sub.received, ok ? "ok" : "TIMEOUT");
  printf("publish done after %.3f s; publish->pull->ack %.0f msg/s end to end (%.3f s); "
         "process CPU %.2f cores; db ops %lld in %lld commits\n",
         (t1 - t0) / 1e9, n / ((t2 - t0) / 1e9), (t2 - t0) / 1e9,
         (double)(c2 - c0) / (double)(t2 - t0), ops, commits);
  trb_free(req);
  trb_psemu_shutdown(ps);
  sub.cond.WaitFor([&] { return sub.closed; }, 10000);
  trb_rpc_stream_release(sub.s);
  trb_rpc_loop_destroy(ploop);
  trb_rpc_loop_destroy(sloop);
  trb_rpc_channel_destroy(pch);
  trb_rpc_channel_destroy(sch);
  trb_rpc_server_shutdown(srv);
  trb_rpc_server_destroy(srv);
  trb_psemu_destroy(ps);
  trb_db_close(db);
  trb_rpc_shutdown();
  return ok ? 0 : 1;
}
