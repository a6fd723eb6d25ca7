// stream_fixture.h — the emulator (in process, durable in a temp dir) with
// the example pipeline's topics and subscriptions (examples/emulator.json)
// and the backend_events tables plus BigQuery-subscription metadata columns
// (so every row carries its Pub/Sub message_id), a publisher, and readers
// for what ended where: table rows (through the emulator's SQL) and dead
// letters (pulled from tributary-dead-letter-inspect).
#ifndef TRB_TESTS_STREAMER_STREAM_FIXTURE_H
#define TRB_TESTS_STREAMER_STREAM_FIXTURE_H

#include <gtest/gtest.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "google/pubsub/v1/pubsub.pb.h"
#include "src/bigquery/schema.h"
#include "src/common/alloc.h"
#include "src/emulator/bigquery/bigquery.h"
#include "src/emulator/emulator.h"
#include "src/emulator/pubsub/pubsub.h"
#include "src/emulator/faults.h"
#include "src/pubsub/publisher.h"
#include "src/rpc/pb.h"
#include "src/rpc/rpc.h"
#include "src/streamer/pipeline.h"
#include "src/streamer/streamer.h"
}
#include "tests/testutil/wait.h"

namespace st_test {

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The shared corpus (../shared/corpus, read at test time; bazel/test.sh
// passes TRIBUTARY_SHARED).
inline std::string SharedDir() {
  const char* e = getenv("TRIBUTARY_SHARED");
  if (e && *e) return e;
  return "/work/shared";
}

// Every line of every backend_events corpus file (MANIFEST excluded).
inline std::vector<std::string> CorpusLines() {
  std::vector<std::string> out;
  std::string dir = SharedDir() + "/corpus/backend_events/";
  for (const char* f : {"Jvmd95__re-partners-test.jsonl", "mhassan01__gcp-realtime-data-pipeline.jsonl",
                        "nieweglp__gymshark-task.jsonl", "paulobevilaqua__re-case.jsonl"}) {
    std::ifstream in(dir + f);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) out.push_back(line);
  }
  return out;
}

struct DeadLetter {
  std::string data;
  std::map<std::string, std::string> attrs;
};

// A well-formed seed-shaped event with id suffix `id`, chosen by `kind`
// (0..99): below 50 an order (one item, customer c-1), below 75 an
// inventory change, else a user_activity login.
inline std::string ValidEvent(int kind, const std::string& id) {
  if (kind < 50)
    return R"({"event_type":"order","order_id":"o-)" + id +
           R"(","customer_id":"c-1","order_date":"2025-02-24T12:30:00Z","status":"processing","items":[{"product_id":"p1","product_name":"Widget","quantity":2,"price":8.25}],"total_amount":16.50})";
  if (kind < 75)
    return R"({"event_type":"inventory","inventory_id":"i-)" + id +
           R"(","product_id":"p1","warehouse_id":"wh-1","quantity_change":-3,"reason":"sale","timestamp":"2025-02-23T11:00:00Z"})";
  return R"({"event_type":"user_activity","user_id":"u-)" + id +
         R"(","activity_type":"login","ip_address":"10.0.0.1","user_agent":"curl","timestamp":"2025-02-23T09:15:00Z"})";
}

class StreamEnv {
 public:
  trb_emulator_t* emu = nullptr;
  std::string dir, data_dir, wal_dir, project;
  trb_rpc_loop_t* loop = nullptr;
  trb_rpc_channel_t *ps_ch = nullptr, *bq_ch = nullptr;
  trb_ps_publisher_t* pub = nullptr;
  std::string ps_target, bq_target;
  trb_status_t st{};

  ~StreamEnv() { Stop(); }

  void Start(int ms_per_second = 0) {
    trb_rpc_init();
    char tmpl[] = "/tmp/trb_stream_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
    data_dir = dir + "/emu";
    wal_dir = dir + "/wal";
    ms_per_second_ = ms_per_second;
    StartEmulator();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("stream-test", &loop, &st)) << st.msg;
    ps_target = "127.0.0.1:" + std::to_string(trb_emulator_pubsub_port(emu));
    bq_target = "127.0.0.1:" + std::to_string(trb_emulator_bigquery_port(emu));
    trb_rpc_channel_config_t cc = {};
    cc.target = ps_target.c_str();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ps_ch, &st)) << st.msg;
    cc.target = bq_target.c_str();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &bq_ch, &st)) << st.msg;
    trb_ps_publisher_config_t pc = {};
    pc.max_delay_ms = 1;
    std::string topic = "projects/" + project + "/topics/backend-events";
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_ps_publisher_create(loop, ps_ch, topic.c_str(), &pc, &pub, &st))
        << st.msg;
  }

  void StartEmulator() {
    trb_emulator_config_t cfg = {};
    cfg.host = "127.0.0.1";
    cfg.data_dir = data_dir.c_str();
    cfg.config_path = "examples/emulator.json";
    cfg.test_ms_per_second = ms_per_second_;
    cfg.pubsub_port = pubsub_port_;
    cfg.bigquery_port = bigquery_port_;
    ASSERT_EQ(GRPC_STATUS_OK, trb_emulator_start(&cfg, &emu, &st)) << st.msg;
    project = trb_emulator_project(emu);
    pubsub_port_ = trb_emulator_pubsub_port(emu);
    bigquery_port_ = trb_emulator_bigquery_port(emu);
    for (const char* t : {"order_events", "inventory_events", "user_activity_events"})
      CreateTable("backend_events", t);
  }

  // Kill the emulator (clean stop) and start it again on the same ports
  // and data directory.
  void RestartEmulator() {
    trb_emulator_stop(emu);
    emu = nullptr;
    StartEmulator();
  }

  // The example table plus subscription_name, message_id, publish_time,
  // attributes (BigQuery subscriptions' write_metadata columns).
  void CreateTable(const char* dataset, const char* table) {
    trb_bq_table_t def;
    ASSERT_TRUE(TableDef(dataset, table, "", &def));
    grpc_status_code c = trb_bqemu_create_table(trb_emulator_bigquery(emu), dataset, table, &def, &st);
    EXPECT_TRUE(c == GRPC_STATUS_OK || c == GRPC_STATUS_ALREADY_EXISTS) << st.msg;
    trb_bq_table_deinit(&def);
  }

  // The definition CreateTable uses, with `extra` columns (JSON objects,
  // comma-separated, e.g. R"({"name": "coupon", "type": "STRING"})")
  // appended. Release with trb_bq_table_deinit.
  bool TableDef(const char* dataset, const char* table, const std::string& extra,
                trb_bq_table_t* def) {
    std::string json = ReadFile(std::string("examples/tables/") + dataset + "." + table + ".json");
    size_t at = json.find("\"schema\": [");
    if (at == std::string::npos) return false;
    json.insert(at + strlen("\"schema\": ["),
                R"({"name": "subscription_name", "type": "STRING"},
                   {"name": "message_id", "type": "STRING"},
                   {"name": "publish_time", "type": "TIMESTAMP"},
                   {"name": "attributes", "type": "JSON"},)");
    if (!extra.empty()) {
      size_t end = json.rfind(']');
      json.insert(end, "," + extra);
    }
    bool ok = trb_bq_table_parse(json.data(), json.size(), def, &st) == GRPC_STATUS_OK;
    EXPECT_TRUE(ok) << st.msg;
    return ok;
  }

  void Stop() {
    if (pub) trb_ps_publisher_destroy(pub);
    pub = nullptr;
    if (loop) trb_rpc_loop_destroy(loop);
    loop = nullptr;
    if (ps_ch) trb_rpc_channel_destroy(ps_ch);
    if (bq_ch) trb_rpc_channel_destroy(bq_ch);
    ps_ch = bq_ch = nullptr;
    if (emu) trb_emulator_stop(emu);
    emu = nullptr;
    if (!dir.empty()) {
      std::string cmd = "rm -rf " + dir;
      (void)system(cmd.c_str());
      dir.clear();
      trb_rpc_shutdown();
    }
  }

  // The pipeline of the example: routes by event_type, metadata columns.
  std::string PipelineJson(const std::string& extra = "") {
    return R"({"project": ")" + project + R"(",
      "subscription": "backend-events-tributary",
      "dead_letter_topic": "tributary-dead-letter",
      "workers": 2, "batch_max_latency": "5ms", "http_port": -1,
      "wal_dir": ")" + wal_dir + R"(", "wal_sync": "none",
      "routes": [
        {"equals": "order", "table": "backend_events.order_events"},
        {"equals": "inventory", "table": "backend_events.inventory_events"},
        {"equals": "user_activity", "table": "backend_events.user_activity_events"}],
      "tables": {
        "backend_events.order_events": {"write_metadata": true},
        "backend_events.inventory_events": {"write_metadata": true},
        "backend_events.user_activity_events": {"write_metadata": true}})" +
           extra + "}";
  }

  // Publish `lines`; returns the message ids in order.
  std::vector<std::string> Publish(const std::vector<std::string>& lines) {
    struct Ids {
      trb_test::Cond c;
      std::vector<std::string> ids;
      size_t done = 0;
      static void Cb(void* u, grpc_status_code code, const char*, const char* id) {
        auto* p = static_cast<std::pair<Ids*, size_t>*>(u);
        p->first->c.Update([&] {
          if (code == GRPC_STATUS_OK) p->first->ids[p->second] = id;
          p->first->done++;
        });
        delete p;
      }
    } ids;
    ids.ids.resize(lines.size());
    for (size_t i = 0; i < lines.size(); i++) {
      trb_ps_message_t m = {};
      m.data = reinterpret_cast<const uint8_t*>(lines[i].data());
      m.data_len = lines[i].size();
      trb_ps_attr_t a = {"origin", "test"};
      m.attrs = &a;
      m.n_attrs = 1;
      EXPECT_EQ(GRPC_STATUS_OK,
                trb_ps_publish(pub, &m, Ids::Cb, new std::pair<Ids*, size_t>(&ids, i), &st))
          << st.msg;
    }
    EXPECT_TRUE(ids.c.WaitFor([&] { return ids.done == lines.size(); }, 60000));
    for (auto& id : ids.ids) EXPECT_FALSE(id.empty());
    return ids.ids;
  }

  // One column of a table, per row (JSON lines from the emulator's SQL).
  std::vector<std::string> Column(const std::string& table, const std::string& col) {
    char* buf = nullptr;
    size_t len = 0;
    FILE* f = open_memstream(&buf, &len);
    std::string sql = "SELECT " + col + " AS v FROM " + table;
    EXPECT_EQ(GRPC_STATUS_OK, trb_bqemu_sql(data_dir.c_str(), sql.c_str(), true, f, &st)) << st.msg;
    fclose(f);
    std::vector<std::string> out;
    std::istringstream in(std::string(buf, len));
    free(buf);
    std::string line;
    while (std::getline(in, line)) {
      json_error_t e;
      json_t* j = json_loads(line.c_str(), 0, &e);
      if (!j) continue;
      json_t* v = json_object_get(j, "v");
      if (json_is_string(v)) out.push_back(json_string_value(v));
      else if (json_is_integer(v)) out.push_back(std::to_string(json_integer_value(v)));
      else if (json_is_real(v)) out.push_back(std::to_string(json_real_value(v)));
      else out.push_back("null");
      json_decref(j);
    }
    return out;
  }

  // Pull (and ack) every dead letter waiting on tributary-dead-letter-inspect.
  std::vector<DeadLetter> PullDeadLetters() {
    std::vector<DeadLetter> out;
    std::string sub = "projects/" + project + "/subscriptions/tributary-dead-letter-inspect";
    for (;;) {
      google_pubsub_v1_PullRequest r = google_pubsub_v1_PullRequest_init_zero;
      r.subscription = &sub[0];
      r.max_messages = 1000;
      r.return_immediately = true;
      uint8_t* buf = nullptr;
      size_t len = 0;
      EXPECT_EQ(GRPC_STATUS_OK, trb_pb_encode(google_pubsub_v1_PullRequest_fields, &r, &buf, &len, &st));
      trb_rpc_response_t resp = {};
      trb_rpc_call_opts_t opts = {};
      opts.timeout_ms = 10000;
      trb_rpc_unary_call(loop, ps_ch, "/google.pubsub.v1.Subscriber/Pull", buf, len, &opts, &resp);
      trb_free(buf);
      EXPECT_EQ(GRPC_STATUS_OK, resp.code) << resp.message;
      google_pubsub_v1_PullResponse pr = google_pubsub_v1_PullResponse_init_zero;
      if (resp.code == GRPC_STATUS_OK) {
        EXPECT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_pubsub_v1_PullResponse_fields, resp.response,
                                                resp.response_len, &pr, &st));
      }
      trb_rpc_response_t pulled = resp;  // message data are views into it
      if (pr.received_messages_count == 0) {
        trb_pb_release(google_pubsub_v1_PullResponse_fields, &pr);
        trb_rpc_response_deinit(&pulled);
        break;
      }
      google_pubsub_v1_AcknowledgeRequest ack = google_pubsub_v1_AcknowledgeRequest_init_zero;
      std::vector<char*> ack_ids;
      for (pb_size_t i = 0; i < pr.received_messages_count; i++) {
        auto* rm = &pr.received_messages[i];
        DeadLetter d;
        d.data.assign(reinterpret_cast<const char*>(rm->message.data.data), rm->message.data.len);
        for (pb_size_t a = 0; a < rm->message.attributes_count; a++)
          d.attrs[rm->message.attributes[a].key] = rm->message.attributes[a].value;
        out.push_back(d);
        ack_ids.push_back(rm->ack_id);
      }
      ack.subscription = &sub[0];
      ack.ack_ids = ack_ids.data();
      ack.ack_ids_count = (pb_size_t)ack_ids.size();
      EXPECT_EQ(GRPC_STATUS_OK, trb_pb_encode(google_pubsub_v1_AcknowledgeRequest_fields, &ack, &buf, &len, &st));
      resp = trb_rpc_response_t{};
      trb_rpc_unary_call(loop, ps_ch, "/google.pubsub.v1.Subscriber/Acknowledge", buf, len, &opts, &resp);
      trb_free(buf);
      EXPECT_EQ(GRPC_STATUS_OK, resp.code) << resp.message;
      trb_rpc_response_deinit(&resp);
      trb_pb_release(google_pubsub_v1_PullResponse_fields, &pr);
      trb_rpc_response_deinit(&pulled);
    }
    return out;
  }

 private:
  int ms_per_second_ = 0;
  int pubsub_port_ = 0, bigquery_port_ = 0;
};

// A loaded pipeline.
struct Pipeline {
  trb_pipeline_t p{};
  Pipeline() { trb_pipeline_defaults(&p, nullptr); }
  ~Pipeline() { trb_pipeline_free(&p); }
  grpc_status_code Load(const std::string& json, trb_status_t* st) {
    grpc_status_code c = trb_pipeline_apply_json(&p, "test.json", json.data(), json.size(), st);
    return c ? c : trb_pipeline_finish(&p, st);
  }
};

// Poll the streamer's counters until `pred` holds or `ms` pass.
template <typename P>
bool WaitStats(trb_streamer_t* s, P pred, int ms = 30000) {
  trb_test::Cond c;
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  trb_streamer_stats_t x;
  while (std::chrono::steady_clock::now() < end) {
    trb_streamer_stats(s, &x);
    if (pred(x)) return true;
    c.WaitFor([] { return false; }, 5);  // poll interval, bounded by `end`
  }
  trb_streamer_stats(s, &x);
  return pred(x);
}

}  // namespace st_test

#endif  // TRB_TESTS_STREAMER_STREAM_FIXTURE_H
