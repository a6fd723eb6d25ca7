// kill9_test — `kill -9` of the emulator while publishes, acks and appends
// are in flight loses nothing acknowledged: after each restart exactly the
// unacknowledged messages are delivered again, and every acknowledged row
// and stream offset is still there.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#include "google/pubsub/v1/pubsub.pb.h"
#include "tests/emulator/child.h"
#include "tests/testutil/wait.h"

namespace {

using trb_test::Client;
using trb_test::EmulatorChild;

const char* kTopic = "projects/k9/topics/topic-t";
const char* kSub = "projects/k9/subscriptions/sub-s";
const char* kTable = "projects/k9/datasets/ds/tables/rows";

class Kill9Test : public ::testing::Test {
 protected:
  void SetUp() override {
    trb_rpc_init();
    dir_ = trb_test::MakeTempDir();
    std::ofstream(dir_ + "/emu.json")
        << R"({"project": "k9", "topics": ["topic-t"], "subscriptions": [{"name": "sub-s", "topic": "topic-t", "ackDeadlineSeconds": 600}]})";
    mkdir((dir_ + "/tables").c_str(), 0755);
    std::ofstream(dir_ + "/tables/ds.rows.json")
        << R"([{"name": "n", "type": "INT64", "mode": "REQUIRED"}, {"name": "s", "type": "STRING"}])";
  }
  void TearDown() override {
    trb_test::RemoveDir(dir_);
    trb_rpc_shutdown();
  }
  void StartChild(EmulatorChild* c) {
    std::string err;
    ASSERT_TRUE(c->Start({"--data-dir", dir_ + "/data", "--config", dir_ + "/emu.json",
                          "--tables", dir_ + "/tables"},
                         &err))
        << err;
  }
  std::string dir_;
};

// Pull (return_immediately) up to 100 messages; payloads and ack ids out.
grpc_status_code PullSome(Client* c, std::vector<std::string>* payloads,
                          std::vector<std::string>* ack_ids) {
  google_pubsub_v1_PullRequest req = google_pubsub_v1_PullRequest_init_zero;
  req.subscription = const_cast<char*>(kSub);
  req.max_messages = 100;
  req.return_immediately = true;
  google_pubsub_v1_PullResponse resp = google_pubsub_v1_PullResponse_init_zero;
  grpc_status_code code = c->Call("/google.pubsub.v1.Subscriber/Pull", google_pubsub_v1_PullRequest_fields,
                                  &req, google_pubsub_v1_PullResponse_fields, &resp);
  if (code == GRPC_STATUS_OK) {
    for (pb_size_t i = 0; i < resp.received_messages_count; i++) {
      const auto& m = resp.received_messages[i];
      payloads->emplace_back(reinterpret_cast<const char*>(m.message.data.data), m.message.data.len);
      ack_ids->emplace_back(m.ack_id);
    }
  }
  trb_pb_release(google_pubsub_v1_PullResponse_fields, &resp);
  return code;
}

grpc_status_code Ack(Client* c, const std::vector<std::string>& ack_ids) {
  std::vector<char*> ids;
  for (auto& a : ack_ids) ids.push_back(const_cast<char*>(a.c_str()));
  google_pubsub_v1_AcknowledgeRequest req = google_pubsub_v1_AcknowledgeRequest_init_zero;
  req.subscription = const_cast<char*>(kSub);
  req.ack_ids_count = (pb_size_t)ids.size();
  req.ack_ids = ids.data();
  return c->Call("/google.pubsub.v1.Subscriber/Acknowledge", google_pubsub_v1_AcknowledgeRequest_fields,
                 &req, nullptr, nullptr);
}

TEST_F(Kill9Test, PubSubLosesNoAcknowledgedPublishAndRedeliversNoAcknowledgedMessage) {
  std::mutex mu;
  std::set<std::string> published, ack_attempted, acked;
  int next = 0;
  for (int round = 0; round < 3; round++) {
    EmulatorChild child;
    StartChild(&child);
    std::atomic<bool> stop{false};
    trb_test::Cond progress;
    int round_published = 0, round_acked = 0;

    std::thread publisher([&] {
      Client c(child.pubsub());
      while (!stop) {
        std::vector<std::string> payloads;
        {
          std::lock_guard<std::mutex> g(mu);
          for (int i = 0; i < 10; i++) payloads.push_back("m" + std::to_string(next++));
        }
        std::vector<google_pubsub_v1_PubsubMessage> msgs(10);
        for (int i = 0; i < 10; i++) {
          msgs[i] = google_pubsub_v1_PubsubMessage_init_zero;
          msgs[i].data.data = reinterpret_cast<const uint8_t*>(payloads[i].data());
          msgs[i].data.len = payloads[i].size();
        }
        google_pubsub_v1_PublishRequest req = google_pubsub_v1_PublishRequest_init_zero;
        req.topic = const_cast<char*>(kTopic);
        req.messages_count = 10;
        req.messages = msgs.data();
        if (c.Call("/google.pubsub.v1.Publisher/Publish", google_pubsub_v1_PublishRequest_fields, &req,
                   nullptr, nullptr) != GRPC_STATUS_OK)
          break;
        std::lock_guard<std::mutex> g(mu);
        published.insert(payloads.begin(), payloads.end());
        progress.Update([&] { round_published += 10; });
      }
    });
    std::thread acker([&] {
      Client c(child.pubsub());
      while (!stop) {
        std::vector<std::string> payloads, ids;
        if (PullSome(&c, &payloads, &ids) != GRPC_STATUS_OK) break;
        if (ids.empty()) continue;
        // Ack every other pulled message; the rest stay outstanding.
        std::vector<std::string> ack_ids, ack_payloads;
        for (size_t i = 0; i < ids.size(); i += 2) {
          ack_ids.push_back(ids[i]);
          ack_payloads.push_back(payloads[i]);
        }
        {
          std::lock_guard<std::mutex> g(mu);
          ack_attempted.insert(ack_payloads.begin(), ack_payloads.end());
        }
        if (Ack(&c, ack_ids) != GRPC_STATUS_OK) break;
        std::lock_guard<std::mutex> g(mu);
        acked.insert(ack_payloads.begin(), ack_payloads.end());
        progress.Update([&] { round_acked += (int)ack_ids.size(); });
      }
    });
    ASSERT_TRUE(progress.WaitFor([&] { return round_published >= 500 && round_acked >= 100; }))
        << child.Stderr();
    child.Stop(SIGKILL);  // mid-flight: both threads have calls outstanding
    stop = true;
    publisher.join();
    acker.join();
  }

  // Restart and drain: exactly the unacknowledged messages come back.
  EmulatorChild child;
  StartChild(&child);
  Client c(child.pubsub());
  std::multiset<std::string> delivered;
  for (;;) {
    std::vector<std::string> payloads, ids;
    ASSERT_EQ(GRPC_STATUS_OK, PullSome(&c, &payloads, &ids));
    if (ids.empty()) break;
    delivered.insert(payloads.begin(), payloads.end());
    ASSERT_EQ(GRPC_STATUS_OK, Ack(&c, ids));
  }
  for (const auto& p : published) {
    if (!ack_attempted.count(p)) {
      EXPECT_EQ(1u, delivered.count(p)) << "acknowledged publish " << p << " lost";
    }
  }
  for (const auto& p : acked) EXPECT_EQ(0u, delivered.count(p)) << "acknowledged ack of " << p << " lost";
  for (const auto& p : delivered) EXPECT_LE(delivered.count(p), 1u) << p << " delivered twice";
  EXPECT_GE(published.size(), 1500u);
  EXPECT_EQ(0, WEXITSTATUS(child.Stop(SIGTERM)));
}

// One AppendRows request of `n` rows starting at `offset` on its own stream
// call (one request per connection keeps the kill point simple).
grpc_status_code AppendOnce(Client* c, const std::string& stream, int64_t offset, int n,
                            std::string* message) {
  google_protobuf_FieldDescriptorProto f[2] = {google_protobuf_FieldDescriptorProto_init_zero,
                                               google_protobuf_FieldDescriptorProto_init_zero};
  f[0].name = const_cast<char*>("n");
  f[0].has_number = f[0].has_label = f[0].has_type = true;
  f[0].number = 1;
  f[0].label = google_protobuf_FieldDescriptorProto_Label_LABEL_REQUIRED;
  f[0].type = google_protobuf_FieldDescriptorProto_Type_TYPE_INT64;
  f[1].name = const_cast<char*>("s");
  f[1].has_number = f[1].has_label = f[1].has_type = true;
  f[1].number = 2;
  f[1].label = google_protobuf_FieldDescriptorProto_Label_LABEL_OPTIONAL;
  f[1].type = google_protobuf_FieldDescriptorProto_Type_TYPE_STRING;
  std::vector<std::string> rows;
  for (int i = 0; i < n; i++) {
    std::string r;
    uint64_t v = (uint64_t)(offset + i);
    r.push_back(0x08);
    while (v >= 0x80) {
      r.push_back((char)(v | 0x80));
      v >>= 7;
    }
    r.push_back((char)v);
    r += std::string("\x12\x03row", 5);
    rows.push_back(r);
  }
  std::vector<trb_pb_view_t> views;
  for (auto& r : rows) views.push_back({reinterpret_cast<const uint8_t*>(r.data()), r.size()});
  google_cloud_bigquery_storage_v1_AppendRowsRequest req = google_cloud_bigquery_storage_v1_AppendRowsRequest_init_zero;
  req.write_stream = const_cast<char*>(stream.c_str());
  req.has_offset = true;
  req.offset.value = offset;
  req.has_proto_rows = true;
  req.proto_rows.has_writer_schema = true;
  req.proto_rows.writer_schema.has_proto_descriptor = true;
  req.proto_rows.writer_schema.proto_descriptor.name = const_cast<char*>("root");
  req.proto_rows.writer_schema.proto_descriptor.field_count = 2;
  req.proto_rows.writer_schema.proto_descriptor.field = f;
  req.proto_rows.has_rows = true;
  req.proto_rows.rows.serialized_rows.items = views.data();
  req.proto_rows.rows.serialized_rows.count = views.size();
  uint8_t* buf = nullptr;
  size_t len = 0;
  trb_status_t st = {};
  if (trb_pb_encode(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, &req, &buf, &len, &st) != GRPC_STATUS_OK)
    return st.code;

  struct State {
    trb_test::Cond cond;
    bool closed = false, got = false;
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    std::string message;
  } s;
  trb_rpc_stream_cbs_t cbs = {};
  cbs.on_message = [](void* u, trb_rpc_stream_t* strm, const uint8_t* d, size_t l) {
    auto* s = static_cast<State*>(u);
    google_cloud_bigquery_storage_v1_AppendRowsResponse r = google_cloud_bigquery_storage_v1_AppendRowsResponse_init_zero;
    trb_status_t dst = {};
    grpc_status_code code = GRPC_STATUS_INTERNAL;
    std::string msg;
    if (trb_pb_decode(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields, d, l, &r, &dst) == GRPC_STATUS_OK) {
      if (r.which_response == google_cloud_bigquery_storage_v1_AppendRowsResponse_error_tag) {
        code = (grpc_status_code)r.response.error.code;
        msg = r.response.error.message ? r.response.error.message : "";
      } else {
        code = GRPC_STATUS_OK;
      }
    }
    trb_pb_release(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields, &r);
    s->cond.Update([&] {
      s->got = true;
      s->code = code;
      s->message = msg;
    });
    trb_rpc_stream_writes_done(strm);
  };
  cbs.on_close = [](void* u, trb_rpc_stream_t*, const trb_rpc_result_t* r) {
    auto* s = static_cast<State*>(u);
    s->cond.Update([&] {
      if (!s->got) {
        s->code = r->code == GRPC_STATUS_OK ? GRPC_STATUS_UNKNOWN : r->code;
        s->message = r->message;
      }
      s->closed = true;
    });
  };
  std::string params = "write_stream=" + stream;
  trb_rpc_md_t md = {"x-goog-request-params", params.c_str(), 0};
  trb_rpc_call_opts_t opts = {};
  opts.md = &md;
  opts.n_md = 1;
  opts.timeout_ms = 10000;
  trb_rpc_stream_t* strm = nullptr;
  grpc_status_code code = trb_rpc_stream_start(c->loop(), c->channel(),
                                               "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows",
                                               &opts, &cbs, &s, &strm, &st);
  if (code == GRPC_STATUS_OK) {
    trb_rpc_stream_write(strm, buf, len, nullptr);
    EXPECT_TRUE(s.cond.WaitFor([&] { return s.closed; }));
    trb_rpc_stream_release(strm);
    code = s.code;
    if (message) *message = s.message;
  }
  trb_pb_free(buf);
  return code;
}

TEST_F(Kill9Test, AcknowledgedAppendsAndOffsetsSurvive) {
  std::string stream;
  int64_t acked_end = 0;   // rows [0, acked_end) acknowledged
  int64_t sent_end = 0;    // rows [0, sent_end) sent at least once
  const int kRows = 50;
  for (int round = 0; round < 3; round++) {
    EmulatorChild child;
    StartChild(&child);
    {
      Client c(child.bigquery());
      if (stream.empty()) {
        google_cloud_bigquery_storage_v1_CreateWriteStreamRequest req =
            google_cloud_bigquery_storage_v1_CreateWriteStreamRequest_init_zero;
        req.parent = const_cast<char*>(kTable);
        req.has_write_stream = true;
        req.write_stream.type = google_cloud_bigquery_storage_v1_WriteStream_Type_COMMITTED;
        google_cloud_bigquery_storage_v1_WriteStream ws = google_cloud_bigquery_storage_v1_WriteStream_init_zero;
        ASSERT_EQ(GRPC_STATUS_OK,
                  c.Call("/google.cloud.bigquery.storage.v1.BigQueryWrite/CreateWriteStream",
                         google_cloud_bigquery_storage_v1_CreateWriteStreamRequest_fields, &req,
                         google_cloud_bigquery_storage_v1_WriteStream_fields, &ws));
        stream = ws.name;
        trb_pb_release(google_cloud_bigquery_storage_v1_WriteStream_fields, &ws);
      }
      // After a restart the stream continues where the acknowledged appends
      // ended; a resend of an append that committed without its reply being
      // seen is ALREADY_EXISTS, never a second copy.
      std::string msg;
      grpc_status_code code = AppendOnce(&c, stream, acked_end, kRows, &msg);
      if (sent_end > acked_end) {
        ASSERT_TRUE(code == GRPC_STATUS_OK || code == GRPC_STATUS_ALREADY_EXISTS) << code << " " << msg;
      } else {
        ASSERT_EQ(GRPC_STATUS_OK, code) << msg;
      }
      acked_end += kRows;
      sent_end = acked_end;
    }
    std::atomic<bool> stop{false};
    trb_test::Cond progress;
    int appended = 0;
    std::thread appender([&] {
      Client c(child.bigquery());
      while (!stop) {
        sent_end = acked_end + kRows;
        std::string msg;
        if (AppendOnce(&c, stream, acked_end, kRows, &msg) != GRPC_STATUS_OK) break;
        acked_end += kRows;
        progress.Update([&] { appended++; });
      }
    });
    ASSERT_TRUE(progress.WaitFor([&] { return appended >= 20; })) << child.Stderr();
    child.Stop(SIGKILL);
    stop = true;
    appender.join();
  }
  EmulatorChild child;
  StartChild(&child);
  std::vector<std::string> out = trb_test::SqlJson(dir_ + "/data", "SELECT count(*) AS c, count(DISTINCT n) AS d, min(n) AS lo, max(n) AS hi FROM ds.rows");
  ASSERT_EQ(1u, out.size());
  // Every acknowledged row exactly once; at most the one unacknowledged
  // in-flight append beyond them.
  auto field = [&](const char* key) {
    std::string k = std::string("\"") + key + "\":";
    size_t at = out[0].find(k);
    EXPECT_NE(std::string::npos, at) << key << " in " << out[0];
    return at == std::string::npos ? -1LL : atoll(out[0].c_str() + at + k.size());
  };
  long long c = field("c"), d = field("d"), lo = field("lo"), hi = field("hi");
  EXPECT_EQ(c, d) << "duplicate rows";
  EXPECT_EQ(0, lo);
  EXPECT_GE(c, acked_end);
  EXPECT_LE(c, sent_end);
  EXPECT_EQ(hi, c - 1);
  EXPECT_EQ(0, WEXITSTATUS(child.Stop(SIGTERM)));
}

}  // namespace
