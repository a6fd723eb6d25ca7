// ingest_e2e_test.cc — `tributary ingest` end to end: the in-process
// emulator and the ingest server on 127.0.0.1:0, HTTP requests from a small
// socket client, and a Pub/Sub Pull that checks exactly the 2xx'd events
// reached the topic: the seed's curl request, batches, every fixture of
// ../shared/corpus/push and ../shared/corpus/firestore, a table of
// malformed requests, publisher faults, backpressure, and shutdown under
// load.
#include <gtest/gtest.h>
#include <jansson.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/alloc.h"
#include "src/emulator/emulator.h"
#include "src/emulator/faults.h"
#include "src/ingest/http_server.h"
#include "src/ingest/ingest.h"
#include "src/ingest/push.h"
#include "src/rpc/pb.h"
#include "src/rpc/rpc.h"
#include "tests/ingest/corpus.h"
#include "tests/ingest/http_client.h"
#include "tests/testutil/wait.h"

namespace {

using trb_test::HttpConn;
using trb_test::HttpResponse;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr char kPublish[] = "/google.pubsub.v1.Publisher/Publish";
const Headers kJson = {{"Content-Type", "application/json"}};

struct Pulled {
  std::string data;
  std::map<std::string, std::string> attrs;
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

json_t* Parse(const std::string& s) {
  json_error_t err;
  return json_loadb(s.data(), s.size(), JSON_DECODE_ANY, &err);
}

// Whether `s` matches `pattern`, where '#' is a hex digit, 'd' a decimal
// digit, 'V' one of 89ab and every other character itself.
bool Shape(const std::string& s, const std::string& pattern) {
  if (s.size() != pattern.size()) return false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i], p = pattern[i];
    bool ok = p == '#'   ? (isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'))
              : p == 'd' ? isdigit(static_cast<unsigned char>(c)) != 0
              : p == 'V' ? (c == '8' || c == '9' || c == 'a' || c == 'b')
                         : c == p;
    if (!ok) return false;
  }
  return true;
}

std::string Str(json_t* o, const char* k) {
  json_t* v = json_object_get(o, k);
  return json_is_string(v) ? json_string_value(v) : "";
}

class IngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    trb_rpc_init();
    trb_emulator_config_t cfg = {};
    cfg.host = "127.0.0.1";
    ASSERT_EQ(GRPC_STATUS_OK, trb_emulator_start(&cfg, &emu_, &st_)) << st_.msg;
    project_ = trb_emulator_project(emu_);
    faults_ = trb_emulator_faults(emu_);
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("ingest-test", &loop_, &st_));
    target_ = "127.0.0.1:" + std::to_string(trb_emulator_pubsub_port(emu_));
    trb_rpc_channel_config_t cc = {};
    cc.target = target_.c_str();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch_, &st_)) << st_.msg;
    for (const char* t : {"issues", "events", "replay"}) {
      CreateTopic(t);
      CreateSub(std::string(t) + "-sub", t);
    }
  }

  void TearDown() override {
    trb_ingest_destroy(ing_);
    ing_ = nullptr;
    if (loop_) {
      EXPECT_EQ(0, trb_rpc_loop_live_calls(loop_));
    }
    trb_rpc_loop_destroy(loop_);
    trb_rpc_channel_destroy(ch_);
    trb_emulator_stop(emu_);
    trb_rpc_shutdown();
  }

  static trb_ingest_config_t Defaults() {
    trb_ingest_config_t c = {};
    c.host = "127.0.0.1";
    c.port = 0;
    c.routes = "/=issues,/events=events:raw,/push=replay:push";
    c.publisher.backoff_initial_ms = 1;
    c.publisher.backoff_max_ms = 5;
    c.publisher.backoff_multiplier = 2;
    c.publisher.seed = 7;
    return c;
  }

  void Start(trb_ingest_config_t c = Defaults()) {
    c.project = project_.c_str();
    ASSERT_EQ(GRPC_STATUS_OK, trb_ingest_start(&c, loop_, ch_, &ing_, &st_)) << st_.msg;
    port_ = trb_ingest_port(ing_);
    ASSERT_GT(port_, 0);
  }

  // GET /readyz until it answers `want` (it checks the topics
  // asynchronously), with a deadline; returns the last status.
  int WaitReady(int want, int timeout_ms = 10000) {
    HttpConn c(port_);
    int64_t end = NowMs() + timeout_ms;
    int got = 0;
    while ((got = c.Do("GET", "/readyz", "").status) != want && NowMs() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return got;
  }

  std::string Topic(const std::string& id) { return "projects/" + project_ + "/topics/" + id; }
  std::string Sub(const std::string& id) {
    return "projects/" + project_ + "/subscriptions/" + id;
  }
  void CreateTopic(const std::string& id) {
    google_pubsub_v1_Topic t = google_pubsub_v1_Topic_init_zero;
    std::string name = Topic(id);
    t.name = &name[0];
    ASSERT_EQ(GRPC_STATUS_OK, trb_psemu_create_topic(trb_emulator_pubsub(emu_), &t, &st_))
        << st_.msg;
  }
  void CreateSub(const std::string& id, const std::string& topic) {
    google_pubsub_v1_Subscription s = google_pubsub_v1_Subscription_init_zero;
    std::string name = Sub(id), tn = Topic(topic);
    s.name = &name[0];
    s.topic = &tn[0];
    s.ack_deadline_seconds = 600;
    ASSERT_EQ(GRPC_STATUS_OK, trb_psemu_create_subscription(trb_emulator_pubsub(emu_), &s, &st_))
        << st_.msg;
  }

  // Pull + Acknowledge until `want` messages arrived or 20 s passed.
  std::vector<Pulled> PullAll(const std::string& sub, size_t want) {
    std::vector<Pulled> out;
    std::string sn = Sub(sub);
    int64_t end = NowMs() + 20000;
    while (out.size() < want && NowMs() < end) {
      google_pubsub_v1_PullRequest r = google_pubsub_v1_PullRequest_init_zero;
      r.subscription = &sn[0];
      r.max_messages = 1000;
      uint8_t* buf = nullptr;
      size_t len = 0;
      EXPECT_EQ(GRPC_STATUS_OK,
                trb_pb_encode(google_pubsub_v1_PullRequest_fields, &r, &buf, &len, &st_));
      trb_rpc_response_t resp = {};
      trb_rpc_call_opts_t opts = {};
      opts.timeout_ms = 10000;
      trb_rpc_unary_call(loop_, ch_, "/google.pubsub.v1.Subscriber/Pull", buf, len, &opts, &resp);
      trb_free(buf);
      if (resp.code != GRPC_STATUS_OK) {
        ADD_FAILURE() << "Pull: " << (resp.message ? resp.message : "");
        trb_rpc_response_deinit(&resp);
        break;
      }
      google_pubsub_v1_PullResponse pr = google_pubsub_v1_PullResponse_init_zero;
      EXPECT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_pubsub_v1_PullResponse_fields, resp.response,
                                              resp.response_len, &pr, &st_));
      std::vector<char*> acks;
      for (pb_size_t i = 0; i < pr.received_messages_count; i++) {
        const auto& m = pr.received_messages[i].message;
        Pulled p;
        p.data.assign(reinterpret_cast<const char*>(m.data.data), m.data.len);
        for (pb_size_t a = 0; a < m.attributes_count; a++) {
          p.attrs[m.attributes[a].key] = m.attributes[a].value ? m.attributes[a].value : "";
        }
        out.push_back(p);
        acks.push_back(pr.received_messages[i].ack_id);
      }
      if (!acks.empty()) {
        google_pubsub_v1_AcknowledgeRequest ar = google_pubsub_v1_AcknowledgeRequest_init_zero;
        ar.subscription = &sn[0];
        ar.ack_ids_count = static_cast<pb_size_t>(acks.size());
        ar.ack_ids = acks.data();
        uint8_t* ab = nullptr;
        size_t al = 0;
        EXPECT_EQ(GRPC_STATUS_OK,
                  trb_pb_encode(google_pubsub_v1_AcknowledgeRequest_fields, &ar, &ab, &al, &st_));
        trb_rpc_response_t aresp = {};
        trb_rpc_unary_call(loop_, ch_, "/google.pubsub.v1.Subscriber/Acknowledge", ab, al, &opts,
                           &aresp);
        trb_free(ab);
        trb_rpc_response_deinit(&aresp);
      }
      trb_pb_release(google_pubsub_v1_PullResponse_fields, &pr);
      trb_rpc_response_deinit(&resp);
    }
    return out;
  }

  // Publish a sentinel through ingest and pull until it arrives: returns
  // every message on `sub` before it (so "nothing else was published" can
  // be checked without waiting for a timeout).
  std::vector<Pulled> DrainUntilSentinel(const std::string& path, const std::string& sub) {
    HttpConn c(port_);
    HttpResponse r;
    if (path == "/push") {
      r = c.Do("POST", path, "{\"message\":{\"data\":\"c2VudGluZWw=\"}}", kJson);  // "sentinel"
    } else {
      r = c.Do("POST", path, "{\"sentinel\":true}", kJson);
    }
    EXPECT_EQ(200, r.status) << r.body;
    std::vector<Pulled> out;
    int64_t end = NowMs() + 20000;
    while (NowMs() < end) {
      auto got = PullAll(sub, 1);
      for (auto& p : got) {
        if (p.data.find("sentinel") != std::string::npos) return out;
        out.push_back(p);
      }
    }
    ADD_FAILURE() << "sentinel never arrived";
    return out;
  }

  trb_status_t st_ = {};
  trb_emulator_t* emu_ = nullptr;
  trb_faults_t* faults_ = nullptr;
  trb_rpc_loop_t* loop_ = nullptr;
  trb_rpc_channel_t* ch_ = nullptr;
  trb_ingest_t* ing_ = nullptr;
  int port_ = 0;
  std::string project_, target_;
};

// The seed's request: curl -X POST -H 'Content-Type: application/json'
// -d '{"title": ...}' — 200 {"issue_id","status":"created"} and the flat
// envelope on the topic.
TEST_F(IngestTest, SeedCurlRequest) {
  Start();
  const std::string body =
      "{\"title\": \"Checkout button broken\", \"description\": \"Clicking pay does "
      "nothing\", \"priority\": \"high\", \"reporter\": \"ana@example.com\"}";
  HttpConn c(port_);
  HttpResponse r = c.Do("POST", "/", body, kJson);
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ("application/json", r.headers["content-type"]);
  json_t* reply = Parse(r.body);
  ASSERT_NE(nullptr, reply) << r.body;
  EXPECT_EQ(2u, json_object_size(reply));
  EXPECT_EQ("created", Str(reply, "status"));
  std::string id = Str(reply, "issue_id");
  EXPECT_TRUE(Shape(id, "########-####-4###-V###-############")) << id;
  json_decref(reply);

  auto got = PullAll("issues-sub", 1);
  ASSERT_EQ(1u, got.size());
  json_t* env = Parse(got[0].data);
  ASSERT_NE(nullptr, env) << got[0].data;
  EXPECT_EQ(4u, json_object_size(env));
  EXPECT_EQ(id, Str(env, "issue_id"));
  EXPECT_EQ("manual-api", Str(env, "source"));
  EXPECT_EQ(body, Str(env, "payload"));
  EXPECT_TRUE(Shape(Str(env, "created_at"), "dddd-dd-ddTdd:dd:dd.dddZ")) << Str(env, "created_at");
  EXPECT_EQ("manual-api", got[0].attrs["source"]);
  json_decref(env);
  EXPECT_EQ(1u, trb_ingest_published(ing_));
}

TEST_F(IngestTest, KeepAliveConnectionServesManyRequests) {
  Start();
  HttpConn c(port_);
  std::set<std::string> ids;
  for (int i = 0; i < 50; i++) {
    HttpResponse r = c.Do("POST", "/", "{\"n\":" + std::to_string(i) + "}",
                          {{"Content-Type", "application/json; charset=utf-8"}});
    ASSERT_EQ(200, r.status) << r.body;
    ASSERT_TRUE(c.connected()) << "server closed a keep-alive connection";
    json_t* j = Parse(r.body);
    ids.insert(Str(j, "issue_id"));
    json_decref(j);
  }
  EXPECT_EQ(50u, ids.size());
  auto got = PullAll("issues-sub", 50);
  ASSERT_EQ(50u, got.size());
  std::set<std::string> pulled;
  for (auto& p : got) {
    json_t* j = Parse(p.data);
    pulled.insert(Str(j, "issue_id"));
    json_decref(j);
  }
  EXPECT_EQ(ids, pulled);
}

TEST_F(IngestTest, NdjsonAndArrayBatchesOneResultPerEvent) {
  Start();
  HttpConn c(port_);
  HttpResponse r = c.Do("POST", "/", "{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":3}\n",
                        {{"Content-Type", "application/x-ndjson"}});
  ASSERT_EQ(200, r.status) << r.body;
  json_t* j = Parse(r.body);
  ASSERT_NE(nullptr, j);
  EXPECT_EQ(3u, json_array_size(json_object_get(j, "results")));
  EXPECT_EQ(3, json_integer_value(json_object_get(j, "published")));
  EXPECT_EQ(0, json_integer_value(json_object_get(j, "failed")));
  std::set<std::string> ids;
  for (size_t i = 0; i < 3; i++) {
    json_t* e = json_array_get(json_object_get(j, "results"), i);
    EXPECT_EQ("created", Str(e, "status"));
    ids.insert(Str(e, "issue_id"));
  }
  json_decref(j);
  r = c.Do("POST", "/", "[{\"d\":4},{\"e\":[5]}]", kJson);
  ASSERT_EQ(200, r.status) << r.body;
  j = Parse(r.body);
  for (size_t i = 0; i < 2; i++) {
    ids.insert(Str(json_array_get(json_object_get(j, "results"), i), "issue_id"));
  }
  json_decref(j);
  EXPECT_EQ(5u, ids.size());

  auto got = PullAll("issues-sub", 5);
  ASSERT_EQ(5u, got.size());
  std::set<std::string> payloads, pulled;
  for (auto& p : got) {
    json_t* e = Parse(p.data);
    pulled.insert(Str(e, "issue_id"));
    payloads.insert(Str(e, "payload"));
    json_decref(e);
  }
  EXPECT_EQ(ids, pulled);
  EXPECT_EQ((std::set<std::string>{"{\"a\":1}", "{\"b\":2}", "{\"c\":3}", "{\"d\":4}",
                                   "{\"e\":[5]}"}),
            payloads);
}

TEST_F(IngestTest, RawRoutePassesJsonThroughWithEventType) {
  Start();
  HttpConn c(port_);
  const std::string ev = "{\"event_type\":\"order\",\"order_id\":\"o-1\",\"amount\":8.00}";
  HttpResponse r = c.Do("POST", "/events", ev, kJson);
  ASSERT_EQ(200, r.status) << r.body;
  json_t* j = Parse(r.body);
  EXPECT_EQ("published", Str(j, "status"));
  EXPECT_FALSE(Str(j, "message_id").empty());
  json_decref(j);
  auto got = PullAll("events-sub", 1);
  ASSERT_EQ(1u, got.size());
  EXPECT_EQ(ev, got[0].data);  // byte for byte ("8.00" kept)
  EXPECT_EQ("order", got[0].attrs["event_type"]);
}

// The fast path (one-pass check, no jansson tree) and the tree path give
// the same events: raw lines with and without event_type, an escaped key,
// surrounding whitespace; over epoll (more connections than poll(2) is
// used for) and over poll(2).
TEST_F(IngestTest, FastAndTreePathsAgreeOverPollAndEpoll) {
  for (int max_conns : {0, TRB_HTTP_POLL_MAX_CONNECTIONS + 1}) {
    SCOPED_TRACE(max_conns);
    trb_ingest_config_t cfg = Defaults();
    cfg.max_connections = max_conns;
    Start(cfg);
    HttpConn c(port_);
    HttpResponse r = c.Do("POST", "/events",
                          "{\"event_type\":\"a\",\"n\":1}\n {\"n\":2} \n{\"\\u006e\":3}\n",
                          {{"Content-Type", "application/x-ndjson"}});
    ASSERT_EQ(200, r.status) << r.body;
    r = c.Do("POST", "/events", " \n{\"n\":4,\"o\":{\"event_type\":\"inner\"}}\r\n", kJson);
    ASSERT_EQ(200, r.status) << r.body;
    r = c.Do("POST", "/", "\t{\"title\":\"t\\\"q\\\"\",\"x\":[1,{\"y\":null}]} ", kJson);
    ASSERT_EQ(200, r.status) << r.body;
    r = c.Do("POST", "/", "{\"a\":1,\"b\":{\"a\":2,\"a\":3}}", kJson);
    EXPECT_EQ(400, r.status) << r.body;
    EXPECT_NE(std::string::npos, r.body.find("malformed JSON")) << r.body;
    ASSERT_TRUE(c.connected());

    auto raw = PullAll("events-sub", 4);
    ASSERT_EQ(4u, raw.size());
    std::map<std::string, std::string> type_of;  // data -> event_type attr
    for (auto& p : raw) {
      type_of[p.data] = p.attrs.count("event_type") ? p.attrs["event_type"] : "-";
    }
    EXPECT_EQ((std::map<std::string, std::string>{
                  {"{\"event_type\":\"a\",\"n\":1}", "a"},
                  {" {\"n\":2} ", "-"},
                  {"{\"\\u006e\":3}", "-"},
                  {"{\"n\":4,\"o\":{\"event_type\":\"inner\"}}", "-"}}),
              type_of);
    auto wrapped = PullAll("issues-sub", 1);
    ASSERT_EQ(1u, wrapped.size());
    json_t* env = Parse(wrapped[0].data);
    ASSERT_NE(nullptr, env) << wrapped[0].data;
    EXPECT_EQ("{\"title\":\"t\\\"q\\\"\",\"x\":[1,{\"y\":null}]}", Str(env, "payload"));
    json_decref(env);
    ASSERT_EQ(GRPC_STATUS_OK, trb_ingest_shutdown(ing_, 5000, &st_)) << st_.msg;
    trb_ingest_destroy(ing_);
    ing_ = nullptr;
  }
}

// Request headers live in libmicrohttpd's per-connection pool
// (TRB_HTTP_CONNECTION_MEMORY): 12 KB of headers are served, headers
// larger than the pool are refused 431 and nothing is published.
TEST_F(IngestTest, LargeHeadersUpToTheConnectionPool) {
  Start();
  {
    HttpConn c(port_);
    HttpResponse r = c.Do("POST", "/", "{\"a\":1}",
                          {{"Content-Type", "application/json"},
                           {"X-Big", std::string(12000, 'a')}});
    EXPECT_EQ(200, r.status) << r.body;
  }
  {
    HttpConn c(port_);
    HttpResponse r = c.Do("POST", "/", "{\"a\":2}",
                          {{"Content-Type", "application/json"},
                           {"X-Big", std::string(TRB_HTTP_CONNECTION_MEMORY + 1000, 'a')}});
    EXPECT_EQ(431, r.status) << r.body;
  }
  EXPECT_EQ(1u, trb_ingest_published(ing_));
}

// Every push fixture: the decoded data and attributes are republished.
TEST_F(IngestTest, EveryPushFixtureIsRepublished) {
  Start();
  std::string dir = trb_test::CorpusDir() + "/push";
  struct Case {
    std::string name, body;
    Headers headers;
  };
  std::vector<Case> cases;
  std::vector<std::string> files;
  trb_test::ListFiles(dir, ".json", &files);
  for (auto& f : files) {
    Case c;
    c.name = f;
    ASSERT_TRUE(trb_test::ReadFile(f, &c.body));
    c.headers = kJson;
    cases.push_back(c);
  }
  std::string jsonl;
  ASSERT_TRUE(trb_test::ReadFile(dir + "/push_examples.jsonl", &jsonl));
  size_t pos = 0;
  while (pos < jsonl.size()) {
    size_t nl = jsonl.find('\n', pos);
    std::string line = jsonl.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? jsonl.size() : nl + 1;
    if (line.empty()) continue;
    json_t* j = Parse(line);
    ASSERT_NE(nullptr, j);
    Case c;
    c.name = "push_examples.jsonl " + line.substr(0, 60);
    if (json_t* b = json_object_get(j, "body")) {
      char* t = json_dumps(b, JSON_COMPACT);
      c.body = t;
      free(t);
      c.headers = kJson;
    } else {
      c.body = Str(j, "body_raw");
      // As sent: ce-* headers and no Content-Type.
      const char* k;
      json_t* v;
      json_object_foreach(json_object_get(j, "headers"), k, v) {
        c.headers.emplace_back(k, json_string_value(v));
      }
    }
    json_decref(j);
    cases.push_back(c);
  }
  ASSERT_GE(cases.size(), 20u);

  std::multiset<std::string> want;
  HttpConn conn(port_);
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    HttpResponse r = conn.Do("POST", "/push", c.body, c.headers);
    ASSERT_EQ(200, r.status) << r.body;
    json_t* root = Parse(c.body);
    trb_ingest_push_msg_t m;
    memset(&m, 0, sizeof(m));
    ASSERT_EQ(GRPC_STATUS_OK, trb_ingest_push_decode(root, &m, nullptr));
    std::string key(reinterpret_cast<char*>(m.data), m.data_len);
    for (size_t i = 0; i < m.n_attrs; i++) {
      key += std::string("|") + m.attrs[i].key + "=" + m.attrs[i].value;
    }
    want.insert(key);
    trb_ingest_push_msg_deinit(&m);
    json_decref(root);
  }
  auto got = PullAll("replay-sub", cases.size());
  ASSERT_EQ(cases.size(), got.size());
  std::multiset<std::string> have;
  for (auto& p : got) {
    std::string key = p.data;
    for (auto& a : p.attrs) key += "|" + a.first + "=" + a.second;
    have.insert(key);
  }
  EXPECT_EQ(want, have);
}

struct FsCase {
  std::string name, body;
  Headers headers;
  std::string id;  // the event id expected in the payload
};

std::vector<FsCase> FirestoreCases() {
  std::vector<FsCase> out;
  std::string dir = trb_test::CorpusDir() + "/firestore/";
  auto binary = [](const std::string& type, const std::string& id, const std::string& ct) {
    Headers h = {{"ce-specversion", "1.0"},
                 {"ce-id", id},
                 {"ce-type", type},
                 {"ce-source", "//firestore.googleapis.com/projects/p/databases/(default)"},
                 {"ce-subject", "documents/c/" + id},
                 {"ce-time", "2020-09-29T11:32:00.123Z"}};
    if (!ct.empty()) h.emplace_back("Content-Type", ct);
    return h;
  };
  // DocumentEventData JSON examples, binary mode, application/json.
  std::vector<std::string> files;
  trb_test::ListFiles(dir + "googleapis__google-cloudevents", ".json", &files);
  int n = 0;
  for (auto& f : files) {
    FsCase c;
    c.name = f;
    EXPECT_TRUE(trb_test::ReadFile(f, &c.body));
    c.id = "gce-" + std::to_string(n++);
    c.headers = binary(f.find("simple") != std::string::npos
                           ? "google.cloud.firestore.document.v1.updated"
                           : "google.cloud.firestore.document.v1.created",
                       c.id, "application/json");
    out.push_back(c);
  }
  // Conformance: structured CloudEvents and the legacy GCF form.
  files.clear();
  trb_test::ListFiles(dir + "GoogleCloudPlatform__functions-framework-conformance", ".json",
                      &files);
  for (auto& f : files) {
    FsCase c;
    c.name = f;
    EXPECT_TRUE(trb_test::ReadFile(f, &c.body));
    c.id = "aaaaaa-1111-bbbb-2222-cccccccccccc";
    c.headers = {{"Content-Type", f.find("-cloudevent-") != std::string::npos
                                      ? "application/cloudevents+json"
                                      : "application/json"}};
    out.push_back(c);
  }
  // The real protobuf capture: binary mode as Eventarc sends it, and as
  // structured data_base64.
  std::string pb, b64;
  EXPECT_TRUE(trb_test::ReadFile(dir + "CodeHavenX__MonoRepo/edifikana_document_created.pb", &pb));
  EXPECT_TRUE(
      trb_test::ReadFile(dir + "CodeHavenX__MonoRepo/edifikana_document_created.pb.b64", &b64));
  while (!b64.empty() && (b64.back() == '\n' || b64.back() == '\r')) b64.pop_back();
  {
    FsCase c;
    c.name = "edifikana .pb binary";
    c.body = pb;
    c.id = "pb-binary";
    c.headers = binary("google.cloud.firestore.document.v1.created", c.id, "application/protobuf");
    out.push_back(c);
    c.name = "edifikana .pb.b64 structured";
    c.id = "pb-structured";
    c.body = "{\"specversion\":\"1.0\",\"id\":\"pb-structured\",\"source\":\"//firestore\","
             "\"type\":\"google.cloud.firestore.document.v1.created\","
             "\"datacontenttype\":\"application/protobuf\",\"data_base64\":\"" +
             b64 + "\"}";
    c.headers = {{"Content-Type", "application/cloudevents+json"}};
    out.push_back(c);
  }
  // cloudevent_headers.jsonl: each example as sent (headers + body or body
  // file); attribute-only examples as binary mode with the .pb body.
  std::string jsonl;
  EXPECT_TRUE(trb_test::ReadFile(dir + "cloudevent_headers.jsonl", &jsonl));
  size_t pos = 0;
  int line_no = 0;
  while (pos < jsonl.size()) {
    size_t nl = jsonl.find('\n', pos);
    std::string line = jsonl.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? jsonl.size() : nl + 1;
    if (line.empty()) continue;
    line_no++;
    json_t* j = Parse(line);
    EXPECT_NE(nullptr, j);
    if (!j) continue;
    FsCase c;
    c.name = "cloudevent_headers.jsonl:" + std::to_string(line_no);
    std::string body_file = Str(j, "body_file");
    if (!body_file.empty()) {
      EXPECT_TRUE(trb_test::ReadFile(trb_test::CorpusDir() + "/" + body_file, &c.body));
    } else {
      c.body = Str(j, "body");
    }
    const char* k;
    json_t* v;
    if (json_t* h = json_object_get(j, "headers")) {
      json_object_foreach(h, k, v) { c.headers.emplace_back(k, json_string_value(v)); }
      c.id = Str(h, "ce-id");
    } else if (body_file.find("cloudevent-input") != std::string::npos) {
      c.headers = {{"Content-Type", "application/cloudevents+json"}};
      c.id = Str(json_object_get(j, "attributes"), "id");
    } else {
      json_t* a = json_object_get(j, "attributes");
      json_object_foreach(a, k, v) {
        if (strcmp(k, "datacontenttype") == 0) {
          c.headers.emplace_back("Content-Type", json_string_value(v));
        } else {
          c.headers.emplace_back(std::string("ce-") + k, json_string_value(v));
        }
      }
      c.id = Str(a, "id");
      c.body = pb;
    }
    json_decref(j);
    out.push_back(c);
  }
  return out;
}

// Every Firestore fixture: 200 with an issue_id, and on the topic the
// envelope (source firestore-eventarc) whose payload keeps the event id,
// type, subject, time and the rendered document.
TEST_F(IngestTest, EveryFirestoreFixtureIsWrapped) {
  Start();
  auto cases = FirestoreCases();
  ASSERT_GE(cases.size(), 20u) << trb_test::CorpusDir();
  std::map<std::string, std::string> want;  // issue_id → event id
  HttpConn conn(port_);
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    HttpResponse r = conn.Do("POST", "/", c.body, c.headers);
    ASSERT_EQ(200, r.status) << r.body;
    json_t* j = Parse(r.body);
    want[Str(j, "issue_id")] = c.id;
    json_decref(j);
  }
  auto got = PullAll("issues-sub", cases.size());
  ASSERT_EQ(cases.size(), got.size());
  for (auto& p : got) {
    json_t* env = Parse(p.data);
    ASSERT_NE(nullptr, env) << p.data;
    SCOPED_TRACE(p.data);
    EXPECT_EQ(4u, json_object_size(env));
    EXPECT_EQ("firestore-eventarc", Str(env, "source"));
    std::string issue = Str(env, "issue_id");
    ASSERT_EQ(1u, want.count(issue));
    json_t* payload = Parse(Str(env, "payload"));
    ASSERT_NE(nullptr, payload);
    EXPECT_EQ(want[issue], Str(payload, "id"));
    EXPECT_EQ(0u, Str(payload, "type").find("google.cloud.firestore.document.v1."));
    json_t* value = json_object_get(payload, "value");
    ASSERT_TRUE(json_is_object(value));
    EXPECT_NE(std::string::npos, Str(value, "name").find("/documents/"));
    // Rendered, not typed: no Firestore "...Value" wrappers left.
    EXPECT_EQ(std::string::npos, Str(env, "payload").find("stringValue\":{"));
    EXPECT_EQ(std::string::npos, Str(env, "payload").find("\"integerValue\":\""));
    EXPECT_EQ(want[issue], p.attrs["ce-id"]);
    json_decref(payload);
    json_decref(env);
  }
}

TEST_F(IngestTest, OtherCloudEventsPassThroughWithAttributes) {
  Start();
  HttpConn c(port_);
  HttpResponse r = c.Do("POST", "/", "{\"hello\":\"world\"}",
                        {{"Content-Type", "application/json"},
                         {"ce-specversion", "1.0"},
                         {"ce-id", "e-1"},
                         {"ce-type", "com.example.thing.v1"},
                         {"ce-source", "//example"},
                         {"ce-myext", "x"}});
  ASSERT_EQ(200, r.status) << r.body;
  r = c.Do("POST", "/",
           "{\"specversion\":\"1.0\",\"id\":\"e-2\",\"type\":\"com.example.other\","
           "\"source\":\"//example\",\"data_base64\":\"AQIDBA==\"}",
           {{"Content-Type", "application/cloudevents+json"}});
  ASSERT_EQ(200, r.status) << r.body;
  auto got = PullAll("issues-sub", 2);
  ASSERT_EQ(2u, got.size());
  std::map<std::string, Pulled> by_id;
  for (auto& p : got) by_id[p.attrs["ce-id"]] = p;
  EXPECT_EQ("{\"hello\":\"world\"}", by_id["e-1"].data);
  EXPECT_EQ("com.example.thing.v1", by_id["e-1"].attrs["ce-type"]);
  EXPECT_EQ("x", by_id["e-1"].attrs["ce-myext"]);
  EXPECT_EQ("application/json", by_id["e-1"].attrs["ce-datacontenttype"]);
  EXPECT_EQ(std::string("\x01\x02\x03\x04", 4), by_id["e-2"].data);
}

struct BadCase {
  const char* name;
  std::string method, path, body;
  Headers headers;
  int status;
  const char* error;  // substring of the reply's "error"
};

// Malformed requests: each gets its 4xx with a JSON error naming the
// problem, and nothing is published.
TEST_F(IngestTest, MalformedRequestsPublishNothing) {
  trb_ingest_config_t cfg = Defaults();
  cfg.max_body_bytes = 64 * 1024;
  Start(cfg);
  std::string deep = std::string(100, '[') + std::string(100, ']');
  std::string deep_obj;
  for (int i = 0; i < 70; i++) deep_obj += "{\"a\":";
  deep_obj += "1" + std::string(70, '}');
  const Headers ce_fs = {{"ce-specversion", "1.0"},
                         {"ce-id", "1"},
                         {"ce-type", "google.cloud.firestore.document.v1.created"},
                         {"ce-source", "//firestore"},
                         {"Content-Type", "application/protobuf"}};
  std::vector<BadCase> cases = {
      {"empty", "POST", "/", "", kJson, 400, "empty body"},
      {"whitespace", "POST", "/", " \n ", kJson, 400, "empty body"},
      {"malformed", "POST", "/", "{\"title\":", kJson, 400, "malformed JSON"},
      {"trailing", "POST", "/", "{\"a\":1}}", kJson, 400, "malformed JSON"},
      {"not an object", "POST", "/", "\"just a string\"", kJson, 400, "not a JSON object"},
      {"number", "POST", "/", "42", kJson, 400, "not a JSON object"},
      {"array of scalars", "POST", "/", "[{\"a\":1},2]", kJson, 400, "event 1"},
      {"empty array", "POST", "/", "[]", kJson, 400, "empty JSON array"},
      {"invalid utf-8", "POST", "/", "{\"a\":\"\xc3\x28\"}", kJson, 400, "invalid UTF-8"},
      {"too deep", "POST", "/", deep, kJson, 400, "nested deeper than 64"},
      {"too deep object", "POST", "/", deep_obj, kJson, 400, "nested deeper than 64"},
      {"duplicate keys", "POST", "/", "{\"a\":1,\"a\":2}", kJson, 400, "malformed JSON"},
      {"ndjson bad line", "POST", "/", "{\"a\":1}\n{\"b\":\n", {{"Content-Type", "application/x-ndjson"}},
       400, "line 2"},
      {"ndjson empty", "POST", "/", "\n\n", {{"Content-Type", "application/x-ndjson"}}, 400,
       "empty body"},
      {"too large", "POST", "/", "{\"a\":\"" + std::string(70 * 1024, 'x') + "\"}", kJson, 413,
       "larger than 65536 bytes"},
      {"no content type", "POST", "/", "{\"a\":1}", {}, 415, "missing Content-Type"},
      {"form", "POST", "/", "a=1", {{"Content-Type", "application/x-www-form-urlencoded"}}, 415,
       "unsupported Content-Type"},
      {"xml", "POST", "/", "<a/>", {{"Content-Type", "application/xml"}}, 415,
       "unsupported Content-Type"},
      {"unknown path", "POST", "/nope", "{}", kJson, 404, "no such route"},
      {"GET on a route", "GET", "/", "", {}, 405, "method not allowed"},
      {"push bad base64", "POST", "/push", "{\"message\":{\"data\":\"@@@\"}}", kJson, 400,
       "not valid base64"},
      {"push no message", "POST", "/push", "{\"subscription\":\"s\"}", kJson, 400,
       "no message object"},
      {"push empty message", "POST", "/push", "{\"message\":{}}", kJson, 400,
       "neither data nor attributes"},
      {"push protobuf", "POST", "/push", "x", {{"Content-Type", "application/protobuf"}}, 415,
       "unsupported Content-Type"},
      {"ce missing id", "POST", "/", "{}",
       {{"ce-specversion", "1.0"}, {"ce-type", "t"}, {"ce-source", "s"}, {"Content-Type", "application/json"}},
       400, "CloudEvent has no ce-id"},
      {"ce bad specversion", "POST", "/", "{}",
       {{"ce-specversion", "0.3"}, {"ce-id", "1"}, {"ce-type", "t"}, {"ce-source", "s"}}, 400,
       "specversion"},
      {"structured not object", "POST", "/", "[1]", {{"Content-Type", "application/cloudevents+json"}},
       400, "not a JSON object"},
      {"firestore bad protobuf", "POST", "/", std::string("\x0a\x7f\x01", 3), ce_fs, 400,
       "malformed DocumentEventData protobuf"},
      {"firestore bad json value", "POST", "/",
       "{\"value\":{\"fields\":{\"n\":{\"integerValue\":\"ten\"}}}}",
       {{"ce-specversion", "1.0"}, {"ce-id", "1"},
        {"ce-type", "google.cloud.firestore.document.v1.created"}, {"ce-source", "//f"},
        {"Content-Type", "application/json"}},
       400, "value.fields.n: integerValue is not an int64"},
      {"firestore unsupported content", "POST", "/", "x",
       {{"ce-specversion", "1.0"}, {"ce-id", "1"},
        {"ce-type", "google.cloud.firestore.document.v1.created"}, {"ce-source", "//f"},
        {"Content-Type", "something"}},
       415, "unsupported Firestore event data content type"},
      {"firestore structured no data", "POST", "/",
       "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
       "\"type\":\"google.cloud.firestore.document.v1.deleted\"}",
       {{"Content-Type", "application/cloudevents+json"}}, 400, "has no data"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    HttpConn conn(port_);
    HttpResponse r = conn.Do(c.method, c.path, c.body, c.headers);
    EXPECT_EQ(c.status, r.status) << r.body;
    EXPECT_EQ("application/json", r.headers["content-type"]);
    json_t* j = Parse(r.body);
    ASSERT_NE(nullptr, j) << r.body;
    EXPECT_NE(std::string::npos, Str(j, "error").find(c.error)) << r.body;
    json_decref(j);
  }
  EXPECT_EQ(0u, DrainUntilSentinel("/", "issues-sub").size());
  EXPECT_EQ(0u, DrainUntilSentinel("/push", "replay-sub").size());
  EXPECT_EQ(2u, trb_ingest_published(ing_));
}

// Bodies that arrive one byte per write, or chunked, are read whole.
TEST_F(IngestTest, ByteAtATimeAndChunkedBodies) {
  Start();
  const std::string body = "{\"title\":\"slow client\"}";
  HttpConn c(port_);
  HttpResponse r = c.Raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
                         1);
  ASSERT_EQ(200, r.status) << r.body;
  r = c.Raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
            "9\r\n{\"title\":\r\n"
            "9\r\n\"chunked\"\r\n1\r\n}\r\n0\r\n\r\n");
  ASSERT_EQ(200, r.status) << r.body;
  auto got = PullAll("issues-sub", 2);
  ASSERT_EQ(2u, got.size());
  std::set<std::string> payloads;
  for (auto& p : got) {
    json_t* j = Parse(p.data);
    payloads.insert(Str(j, "payload"));
    json_decref(j);
  }
  EXPECT_EQ((std::set<std::string>{body, "{\"title\":\"chunked\"}"}), payloads);
}

// 413 three ways: a client waiting for 100 Continue is answered before it
// sends the body; an absurd Content-Length is answered at once; a chunked
// body that outgrows the limit is read, dropped and answered.
TEST_F(IngestTest, OversizedBodies) {
  trb_ingest_config_t cfg = Defaults();
  cfg.max_body_bytes = 1024;
  Start(cfg);
  {
    HttpConn c(port_);
    HttpResponse r = c.Raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n");
    EXPECT_EQ(413, r.status) << r.body;
    EXPECT_NE(std::string::npos, r.body.find("larger than 1024 bytes"));
    EXPECT_EQ("close", r.headers["connection"]);
  }
  {
    HttpConn c(port_);
    HttpResponse r = c.Raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Content-Length: 1000000000\r\n\r\n{");
    EXPECT_EQ(413, r.status) << r.body;
  }
  {
    HttpConn c(port_);
    std::string chunk(1000, 'x');
    std::string req = "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; i++) req += "3e8\r\n" + chunk + "\r\n";
    req += "0\r\n\r\n";
    HttpResponse r = c.Raw(req);
    EXPECT_EQ(413, r.status) << r.body;
  }
  HttpConn c(port_);
  HttpResponse m = c.Do("GET", "/metrics", "");
  EXPECT_NE(std::string::npos, m.body.find("tributary_ingest_rejected_total{reason=\"too_large\"} 3\n"))
      << m.body;
  EXPECT_EQ(0u, DrainUntilSentinel("/", "issues-sub").size());
}

TEST_F(IngestTest, BearerToken) {
  trb_ingest_config_t cfg = Defaults();
  cfg.bearer_token = "s3cret";
  Start(cfg);
  HttpConn c(port_);
  HttpResponse r = c.Do("POST", "/", "{\"a\":1}", kJson);
  EXPECT_EQ(401, r.status);
  EXPECT_NE(std::string::npos, r.body.find("missing Authorization"));
  r = c.Do("POST", "/", "{\"a\":1}", {{"Content-Type", "application/json"},
                                      {"Authorization", "Bearer wrong"}});
  EXPECT_EQ(401, r.status);
  r = c.Do("POST", "/", "{\"a\":1}", {{"Content-Type", "application/json"},
                                      {"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(200, r.status) << r.body;
  r = c.Do("GET", "/healthz", "");
  EXPECT_EQ(200, r.status);  // probes need no token
  EXPECT_EQ(1u, PullAll("issues-sub", 1).size());
}

TEST_F(IngestTest, HealthReadyAndMetrics) {
  Start();
  HttpConn c(port_);
  EXPECT_EQ(200, c.Do("GET", "/healthz", "").status);
  EXPECT_EQ(200, WaitReady(200));
  ASSERT_EQ(200, c.Do("POST", "/", "{\"a\":1}", kJson).status);
  ASSERT_EQ(400, c.Do("POST", "/", "{", kJson).status);
  HttpResponse m = c.Do("GET", "/metrics", "");
  ASSERT_EQ(200, m.status);
  EXPECT_EQ(0u, m.headers["content-type"].find("text/plain"));
  for (const char* line :
       {"tributary_ingest_requests_total{route=\"/\",code=\"200\"} 1\n",
        "tributary_ingest_requests_total{route=\"/\",code=\"400\"} 1\n",
        "tributary_ingest_events_published_total{route=\"/\"} 1\n",
        "tributary_ingest_rejected_total{reason=\"bad_request\"} 1\n",
        "tributary_ingest_publish_latency_seconds_count 1\n",
        "tributary_ingest_publish_latency_seconds_bucket{le=\"+Inf\"} 1\n",
        "# TYPE tributary_ingest_publish_latency_seconds histogram\n"}) {
    EXPECT_NE(std::string::npos, m.body.find(line)) << line << m.body;
  }
}

// A route whose topic does not exist: /readyz stays 503 (GetTopic says
// NOT_FOUND) and its events are refused 500, never 200.
TEST_F(IngestTest, MissingTopicIsNotReady) {
  trb_ingest_config_t cfg = Defaults();
  cfg.routes = "/=issues,/ghost=no-such-topic";
  Start(cfg);
  HttpConn c(port_);
  HttpResponse r = c.Do("POST", "/ghost", "{\"a\":1}", kJson);
  EXPECT_EQ(500, r.status) << r.body;
  EXPECT_NE(std::string::npos, r.body.find("NOT_FOUND")) << r.body;
  // Ask for 1 s (several GetTopic checks answer meanwhile): never ready.
  int64_t end = NowMs() + 1000;
  int status = 0;
  while (NowMs() < end) {
    status = c.Do("GET", "/readyz", "").status;
    if (status != 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(503, status);
  CreateTopic("no-such-topic");
  EXPECT_EQ(200, WaitReady(200));
}

// UNAVAILABLE is retried by the publisher: still 200, the event on the
// topic once.
TEST_F(IngestTest, UnavailableIsRetried) {
  Start();
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_add_error(faults_, kPublish, 3, GRPC_STATUS_UNAVAILABLE, "flaky", &st_));
  HttpConn c(port_);
  HttpResponse r = c.Do("POST", "/", "{\"retry\":1}", kJson);
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ(3, trb_faults_injected(faults_));
  auto got = PullAll("issues-sub", 1);
  ASSERT_EQ(1u, got.size());
  EXPECT_NE(std::string::npos, got[0].data.find("retry"));
  EXPECT_EQ(0u, DrainUntilSentinel("/", "issues-sub").size());
}

// A non-retryable failure is a 5xx, never a 2xx, and nothing is published;
// a Pub/Sub outage longer than the retry deadline is a 503 + Retry-After
// and /readyz says so.
TEST_F(IngestTest, PublishFailuresAreNeverTwoHundred) {
  trb_ingest_config_t cfg = Defaults();
  cfg.publisher.retry_deadline_ms = 300;
  Start(cfg);
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, kPublish, 1,
                                                 GRPC_STATUS_PERMISSION_DENIED, "no", &st_));
  HttpConn c(port_);
  HttpResponse r = c.Do("POST", "/", "{\"denied\":1}", kJson);
  EXPECT_EQ(500, r.status) << r.body;
  EXPECT_NE(std::string::npos, r.body.find("PERMISSION_DENIED"));

  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_add_error(faults_, kPublish, -1, GRPC_STATUS_UNAVAILABLE, "down", &st_));
  r = c.Do("POST", "/", "[{\"down\":1},{\"down\":2}]", kJson);
  EXPECT_EQ(503, r.status) << r.body;
  EXPECT_EQ("1", r.headers["retry-after"]);
  json_t* j = Parse(r.body);
  EXPECT_EQ(0, json_integer_value(json_object_get(j, "published")));
  EXPECT_EQ(2, json_integer_value(json_object_get(j, "failed")));
  json_decref(j);
  EXPECT_EQ(503, c.Do("GET", "/readyz", "").status);
  trb_faults_clear(faults_);

  // Nothing of the above reached the topic.
  EXPECT_EQ(0u, DrainUntilSentinel("/", "issues-sub").size());
  EXPECT_EQ(200, WaitReady(200));
}

// REJECT flow control: with a full buffer requests get 503 + Retry-After
// at once; exactly the 200'd events are on the topic.
TEST_F(IngestTest, BackpressureAnswers503AndLosesNothing) {
  trb_ingest_config_t cfg = Defaults();
  cfg.publisher.flow_max_messages = 2;
  cfg.threads = 4;
  Start(cfg);
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_set_latency(faults_, kPublish, 200, &st_));
  std::mutex mu;
  std::set<std::string> ok_ids;
  std::atomic<int> n503{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      HttpConn c(port_);
      for (int i = 0; i < 3; i++) {
        HttpResponse r = c.Do("POST", "/", "{\"t\":" + std::to_string(t) + "}", kJson);
        if (r.status == 200) {
          json_t* j = Parse(r.body);
          std::lock_guard<std::mutex> g(mu);
          ok_ids.insert(Str(j, "issue_id"));
          json_decref(j);
        } else if (r.status == 503 && r.headers["retry-after"] == "1" &&
                   r.body.find("error") != std::string::npos) {
          n503++;
        } else {
          other++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  trb_faults_clear(faults_);
  EXPECT_EQ(0, other.load());
  EXPECT_GT(n503.load(), 0);
  EXPECT_GT(ok_ids.size(), 0u);
  EXPECT_EQ(24u, ok_ids.size() + static_cast<size_t>(n503.load()));
  auto got = DrainUntilSentinel("/", "issues-sub");
  std::set<std::string> pulled;
  for (auto& p : got) {
    json_t* j = Parse(p.data);
    pulled.insert(Str(j, "issue_id"));
    json_decref(j);
  }
  EXPECT_EQ(ok_ids, pulled);
}

// Shutdown during load: every 2xx'd event is on the topic; requests after
// the drain began are refused (503 or connection refused), never 2xx'd
// and lost.
TEST_F(IngestTest, ShutdownUnderLoadLosesNoAcknowledgedEvent) {
  trb_ingest_config_t cfg = Defaults();
  cfg.threads = 2;
  Start(cfg);
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_set_latency(faults_, kPublish, 20, &st_));
  std::mutex mu;
  std::set<std::string> ok_ids;
  std::atomic<int> ok_count{0}, refused{0}, ok_after_drain{0};
  std::atomic<bool> stop{false}, draining{false};
  trb_test::Cond progress;
  std::map<std::string, int> refusals;  // status + error → count (mu)
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; t++) {
    threads.emplace_back([&, t] {
      HttpConn c(port_, 15000);
      int i = 0;
      while (!stop.load()) {
        std::string body = t % 2 ? "{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i++) + "}"
                                 : "{\"x\":1}\n{\"y\":2}\n";
        HttpResponse r = c.Do("POST", "/", body,
                              {{"Content-Type", t % 2 ? "application/json" : "application/x-ndjson"}});
        if (r.status == 200) {
          json_t* j = Parse(r.body);
          std::lock_guard<std::mutex> g(mu);
          if (json_t* res = json_object_get(j, "results")) {
            for (size_t k = 0; k < json_array_size(res); k++) {
              ok_ids.insert(Str(json_array_get(res, k), "issue_id"));
            }
          } else {
            ok_ids.insert(Str(j, "issue_id"));
          }
          json_decref(j);
          if (draining.load()) ok_after_drain++;
          progress.Update([&] { ok_count++; });
        } else {
          refused++;
          {
            std::lock_guard<std::mutex> g(mu);
            refusals[std::to_string(r.status) + " " + r.body.substr(0, 80)]++;
          }
          if (r.status == 0) {
            // Connection refused/closed: the server is gone or draining.
            if (!c.connected()) {
              HttpResponse probe = c.Do("GET", "/healthz", "");
              if (probe.status == 0) return;
            }
          } else {
            EXPECT_EQ(503, r.status) << r.body;
          }
        }
      }
    });
  }
  ASSERT_TRUE(progress.WaitFor([&] { return ok_count.load() >= 300; }, 30000));
  // Begin the drain while requests are waiting for their Publish (the
  // clients move in step with the 20 ms Publish batches): poll the
  // server's pending count, with a deadline.
  int64_t poll_end = NowMs() + 10000;
  while (trb_ingest_pending(ing_) < 3 && NowMs() < poll_end) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  int64_t pending_at_drain = trb_ingest_pending(ing_);
  ASSERT_GE(pending_at_drain, 3);
  draining = true;
  int64_t t0 = NowMs();
  trb_ingest_shutdown(ing_, 5000, &st_);
  int64_t took = NowMs() - t0;
  stop = true;
  for (auto& th : threads) th.join();
  trb_faults_clear(faults_);
  EXPECT_LT(took, 6000);
  EXPECT_EQ(0, trb_ingest_pending(ing_));
  // The requests pending when the drain began were answered 200 (their
  // publishes completed during the drain), not cut off.
  EXPECT_GE(ok_after_drain.load(), 1);
  std::printf("shutdown under load: %d requests 2xx'd (%zu events), %lld pending at drain, "
              "%d 2xx'd during the drain, %d refused, drain %lld ms\n",
              ok_count.load(), ok_ids.size(), static_cast<long long>(pending_at_drain),
              ok_after_drain.load(), refused.load(), static_cast<long long>(took));
  for (auto& r : refusals) std::printf("  refused %dx: %s\n", r.second, r.first.c_str());

  // Every 2xx'd event is on the topic (events refused may be there too:
  // a Publish whose reply was cut off).
  auto got = PullAll("issues-sub", ok_ids.size());
  std::set<std::string> pulled;
  for (auto& p : got) {
    json_t* j = Parse(p.data);
    pulled.insert(Str(j, "issue_id"));
    json_decref(j);
  }
  for (auto& id : ok_ids) EXPECT_EQ(1u, pulled.count(id)) << id;
  // The port no longer accepts connections.
  HttpConn late(port_);
  EXPECT_EQ(0, late.Do("GET", "/healthz", "").status);
}

}  // namespace
