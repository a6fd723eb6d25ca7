// tls_test.cc — the Google Cloud credential path against the emulator:
// TLS with a certificate minted at test time (never committed) and a
// required bearer token, reached through exactly what `tributary ingest`
// and `tributary stream` use for googleapis.com (trb_rpc_channel_config_from_env
// with TRIBUTARY_<API>_ENDPOINT, TRIBUTARY_ACCESS_TOKEN_FILE and custom roots
// in GRPC_DEFAULT_SSL_ROOTS_FILE_PATH), including token refresh (the token
// file rewritten while running) and UNAUTHENTICATED answers.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "src/emulator/bigquery/bigquery.h"
#include "src/emulator/emulator.h"
#include "src/pubsub/publisher.h"
#include "src/rpc/rpc.h"
#include "tests/rpc/test_cert.h"
#include "tests/testutil/wait.h"

extern char** environ;

namespace {

constexpr char kProject[] = "local-project";

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Write + rename, as a token refresher does.
void WriteAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  std::ofstream(tmp, std::ios::trunc) << text;
  ASSERT_EQ(0, rename(tmp.c_str(), path.c_str()));
}

// One POST on a fresh connection (Connection: close); returns the status
// line's code and fills `body`; 0 on a transport failure.
int Post(int port, const std::string& path, const std::string& json, std::string* body) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return 0;
  }
  std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                    "Content-Type: application/json\r\nConnection: close\r\n" +
                    "Content-Length: " + std::to_string(json.size()) + "\r\n\r\n" + json;
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return 0;
  }
  std::string resp;
  char buf[4096];
  for (;;) {
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 30000) <= 0) break;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  int code = 0;
  if (sscanf(resp.c_str(), "HTTP/1.1 %d", &code) != 1) return 0;
  size_t at = resp.find("\r\n\r\n");
  *body = at == std::string::npos ? "" : resp.substr(at + 4);
  return code;
}

// A `tributary` child: argv, extra environment, stdout read line by line,
// stderr to a log file.
class Child {
 public:
  bool Start(const std::vector<std::string>& args, const std::vector<std::string>& env,
             const std::string& log) {
    log_ = log;
    int out[2];
    if (pipe(out) != 0) return false;
    std::vector<std::string> envs;
    for (char** e = environ; *e; e++) {
      if (strncmp(*e, "PUBSUB_EMULATOR_HOST=", 21) == 0 ||
          strncmp(*e, "BIGQUERY_STORAGE_EMULATOR_HOST=", 31) == 0)
        continue;
      envs.push_back(*e);
    }
    envs.insert(envs.end(), env.begin(), env.end());
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      dup2(out[1], 1);
      FILE* f = fopen(log.c_str(), "w");
      if (f) dup2(fileno(f), 2);
      close(out[0]);
      std::vector<std::string> all = {"src/cli/tributary"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv, ev;
      for (auto& a : all) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      for (auto& e : envs) ev.push_back(const_cast<char*>(e.c_str()));
      ev.push_back(nullptr);
      execve(argv[0], argv.data(), ev.data());
      _exit(127);
    }
    close(out[1]);
    out_fd_ = out[0];
    return true;
  }
  // The value of the first stdout line "KEY=value" (30 s deadline).
  std::string WaitLine(const std::string& key) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      size_t nl;
      while ((nl = buf_.find('\n')) != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
      }
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (left <= 0) return "";
      pollfd p = {out_fd_, POLLIN, 0};
      if (poll(&p, 1, left) <= 0) continue;
      char chunk[512];
      ssize_t n = read(out_fd_, chunk, sizeof(chunk));
      if (n <= 0) return "";
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  // SIGTERM and wait; the exit code (128 + signal when killed).
  int Stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (out_fd_ >= 0) close(out_fd_);
    out_fd_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // Wait (bounded) for the child to exit by itself; its exit code, or -1
  // when it is still running at the deadline.
  int WaitExit(int timeout_ms) {
    trb_test::Cond poll;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (pid_ > 0) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() >= end) return -1;
      poll.WaitFor([] { return false; }, 50);  // poll interval, bounded by `end`
    }
    return -1;
  }
  std::string Log() const { return ReadAll(log_).substr(0, 20000); }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buf_, log_;
};

class EmulatorTlsTest : public ::testing::Test {
 protected:
  // gRPC reads GRPC_DEFAULT_SSL_ROOTS_FILE_PATH once per process: one
  // certificate for the whole suite.
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/trb_emulator_tls_XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    suite_dir_ = new std::string(tmpl);
    cert_ = new std::string;
    key_ = new std::string;
    ASSERT_TRUE(trb_test::MintLocalhostCertificate(cert_, key_));
    ca_path_ = new std::string(*suite_dir_ + "/ca.pem");
    std::ofstream(*ca_path_) << *cert_;
    setenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", ca_path_->c_str(), 1);
  }
  static void TearDownTestSuite() {
    unlink(ca_path_->c_str());
    rmdir(suite_dir_->c_str());
    delete ca_path_;
    delete suite_dir_;
    delete cert_;
    delete key_;
  }

  void SetUp() override {
    trb_rpc_init();
    char tmpl[] = "/tmp/trb_emulator_tls_t_XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    token_path_ = dir_ + "/token";
    WriteAtomically(token_path_, "token-one\n");
    trb_emulator_config_t cfg = {};
    data_dir_ = dir_ + "/emu";
    cfg.data_dir = data_dir_.c_str();
    cfg.config_path = "examples/emulator.json";
    cfg.tables_dir = "examples/tables";
    cfg.tls_cert_chain_pem = cert_->c_str();
    cfg.tls_private_key_pem = key_->c_str();
    cfg.bearer_token = "token-one";
    // Strict: routed calls must carry their x-goog-request-params key, so
    // every test here also checks the clients' routing headers.
    cfg.require_routing_params = true;
    ASSERT_EQ(GRPC_STATUS_OK, trb_emulator_start(&cfg, &emu_, &st_)) << st_.msg;
    ps_ = "127.0.0.1:" + std::to_string(trb_emulator_pubsub_port(emu_));
    bq_ = "127.0.0.1:" + std::to_string(trb_emulator_bigquery_port(emu_));
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("tls-test", &loop_, &st_));
  }
  void TearDown() override {
    trb_rpc_loop_destroy(loop_);
    trb_emulator_stop(emu_);
    trb_rpc_shutdown();
    std::string cmd = "rm -rf " + dir_;
    (void)system(cmd.c_str());
  }

  // The environment that points the Google Cloud path at the emulator.
  std::vector<std::string> CloudEnv() const {
    return {"TRIBUTARY_PUBSUB_ENDPOINT=" + ps_, "TRIBUTARY_BIGQUERY_STORAGE_ENDPOINT=" + bq_,
            "TRIBUTARY_ACCESS_TOKEN_FILE=" + token_path_,
            "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=" + *ca_path_,
            std::string("GOOGLE_CLOUD_PROJECT=") + kProject};
  }

  // A Pub/Sub channel made the way ingest and stream make theirs.
  trb_rpc_channel_t* CloudChannel() {
    unsetenv("PUBSUB_EMULATOR_HOST");
    setenv("TRIBUTARY_PUBSUB_ENDPOINT", ps_.c_str(), 1);
    setenv("TRIBUTARY_ACCESS_TOKEN_FILE", token_path_.c_str(), 1);
    trb_rpc_channel_config_t cc;
    EXPECT_FALSE(trb_rpc_channel_config_from_env(&cc, "pubsub.googleapis.com:443",
                                                 "PUBSUB_EMULATOR_HOST"));
    EXPECT_EQ(TRB_RPC_CREDS_TLS, cc.creds);
    trb_rpc_channel_t* ch = nullptr;
    EXPECT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch, &st_)) << st_.msg;
    unsetenv("TRIBUTARY_PUBSUB_ENDPOINT");
    unsetenv("TRIBUTARY_ACCESS_TOKEN_FILE");
    return ch;
  }

  grpc_status_code GetTopic(trb_rpc_channel_t* ch, std::string* message) {
    std::string topic = std::string("projects/") + kProject + "/topics/issues";
    std::string req = std::string("\x0a", 1) + static_cast<char>(topic.size()) + topic;
    trb_rpc_call_opts_t opts = {};
    opts.timeout_ms = 10000;
    trb_rpc_response_t resp;
    grpc_status_code code = trb_rpc_unary_call(
        loop_, ch, "/google.pubsub.v1.Publisher/GetTopic", req.data(), req.size(), &opts, &resp);
    *message = resp.message ? resp.message : "";
    trb_rpc_response_deinit(&resp);
    return code;
  }

  int64_t Rows(const std::string& table) {
    char* buf = nullptr;
    size_t len = 0;
    FILE* f = open_memstream(&buf, &len);
    std::string sql = "SELECT COUNT(*) AS n FROM " + table;
    grpc_status_code code = trb_bqemu_sql(data_dir_.c_str(), sql.c_str(), true, f, &st_);
    fclose(f);
    std::string out(buf, len);
    free(buf);
    if (code != GRPC_STATUS_OK) return -1;
    long long n = -1;
    if (sscanf(out.c_str(), "{\"n\": %lld", &n) != 1) sscanf(out.c_str(), "{\"n\":%lld", &n);
    return n;
  }

  static std::string *suite_dir_, *cert_, *key_, *ca_path_;
  std::string dir_, data_dir_, token_path_, ps_, bq_;
  trb_status_t st_ = {};
  trb_emulator_t* emu_ = nullptr;
  trb_rpc_loop_t* loop_ = nullptr;
};
std::string* EmulatorTlsTest::suite_dir_ = nullptr;
std::string* EmulatorTlsTest::cert_ = nullptr;
std::string* EmulatorTlsTest::key_ = nullptr;
std::string* EmulatorTlsTest::ca_path_ = nullptr;

TEST_F(EmulatorTlsTest, TokenIsRequiredWithGoogleWording) {
  trb_rpc_channel_t* ch = CloudChannel();
  ASSERT_NE(nullptr, ch);
  std::string msg;
  EXPECT_EQ(GRPC_STATUS_OK, GetTopic(ch, &msg)) << msg;
  trb_rpc_channel_destroy(ch);

  // TLS, right roots, no token.
  trb_rpc_channel_config_t cc = {};
  cc.target = ps_.c_str();
  cc.creds = TRB_RPC_CREDS_TLS;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch, &st_)) << st_.msg;
  EXPECT_EQ(GRPC_STATUS_UNAUTHENTICATED, GetTopic(ch, &msg));
  EXPECT_EQ(0u, msg.find("Request is missing required authentication credential.")) << msg;
  trb_rpc_channel_destroy(ch);

  // A wrong token.
  cc.bearer_token = "token-other";
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch, &st_)) << st_.msg;
  EXPECT_EQ(GRPC_STATUS_UNAUTHENTICATED, GetTopic(ch, &msg));
  EXPECT_EQ(0u, msg.find("Request had invalid authentication credentials.")) << msg;
  trb_rpc_channel_destroy(ch);

  // Plaintext against the TLS port: no connection.
  trb_rpc_channel_config_t plain = {};
  plain.target = ps_.c_str();
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&plain, &ch, &st_)) << st_.msg;
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, GetTopic(ch, &msg)) << msg;
  trb_rpc_channel_destroy(ch);
}

struct Outcome {
  trb_test::Cond c;
  bool done = false;
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  std::string message, id;
  static void Cb(void* u, grpc_status_code code, const char* message, const char* id) {
    auto* o = static_cast<Outcome*>(u);
    o->c.Update([&] {
      o->code = code;
      o->message = message;
      o->id = id ? id : "";
      o->done = true;
    });
  }
};

// The publisher through the cloud path: a token rotated on the server is
// answered UNAUTHENTICATED (not retried), and the refreshed token file is
// used by the next request of the same publisher and channel.
TEST_F(EmulatorTlsTest, PublisherFollowsTokenRefresh) {
  trb_rpc_channel_t* ch = CloudChannel();
  ASSERT_NE(nullptr, ch);
  trb_ps_publisher_config_t pc = {};
  pc.max_delay_ms = 1;
  trb_ps_publisher_t* pub = nullptr;
  std::string topic = std::string("projects/") + kProject + "/topics/backend-events";
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_create(loop_, ch, topic.c_str(), &pc, &pub, &st_))
      << st_.msg;
  auto publish = [&](Outcome* o) {
    static const char kData[] = "{\"event_type\":\"order\"}";
    trb_ps_message_t m = {};
    m.data = reinterpret_cast<const uint8_t*>(kData);
    m.data_len = sizeof(kData) - 1;
    ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish(pub, &m, Outcome::Cb, o, &st_)) << st_.msg;
    ASSERT_TRUE(o->c.WaitFor([&] { return o->done; }, 30000));
  };

  Outcome first;
  publish(&first);
  EXPECT_EQ(GRPC_STATUS_OK, first.code) << first.message;
  EXPECT_FALSE(first.id.empty());

  ASSERT_EQ(GRPC_STATUS_OK, trb_emulator_set_bearer_token(emu_, "token-two", &st_));
  Outcome refused;
  publish(&refused);
  EXPECT_EQ(GRPC_STATUS_UNAUTHENTICATED, refused.code);
  EXPECT_NE(std::string::npos, refused.message.find("invalid authentication credentials"))
      << refused.message;

  WriteAtomically(token_path_, "token-two\n");
  Outcome after;
  publish(&after);
  EXPECT_EQ(GRPC_STATUS_OK, after.code) << after.message;
  EXPECT_FALSE(after.id.empty());

  trb_ps_publisher_stats_t stats;
  trb_ps_publisher_shutdown(pub, 10000, &stats, &st_);
  EXPECT_EQ(2u, stats.succeeded);
  EXPECT_EQ(1u, stats.failed);
  EXPECT_EQ(0u, stats.retries);  // UNAUTHENTICATED is final, not retried
  trb_ps_publisher_destroy(pub);
  trb_rpc_channel_destroy(ch);
}

// The two binaries, as deployed: `tributary ingest` publishes POSTed issues
// to `issues`, `tributary stream` writes them to tributary.issues — both
// over TLS with the token file. The server's token is rotated: ingest
// answers the next POST with a clear UNAUTHENTICATED error; once the file
// holds the new token, both continue without a restart.
TEST_F(EmulatorTlsTest, IngestAndStreamOverTlsWithTokenRefresh) {
  std::string pipeline = dir_ + "/issues.json";
  std::ofstream(pipeline) << R"({"project": ")" << kProject << R"(",
    "subscription": "issues-tributary", "dead_letter_topic": "tributary-dead-letter",
    "wal_dir": ")" << dir_ << R"(/wal", "wal_sync": "none", "http_port": -1,
    "batch_max_latency": "5ms", "default_table": "tributary.issues"})";

  Child ingest, stream;
  ASSERT_TRUE(ingest.Start({"ingest", "--port", "0", "--routes", "/=issues"}, CloudEnv(),
                           dir_ + "/ingest.log"));
  std::string url = ingest.WaitLine("INGEST_URL");
  ASSERT_FALSE(url.empty()) << ingest.Log();
  int port = atoi(url.substr(url.rfind(':') + 1).c_str());
  ASSERT_GT(port, 0) << url;
  ASSERT_TRUE(stream.Start({"stream", "--pipeline", pipeline}, CloudEnv(), dir_ + "/stream.log"));

  auto issue = [](int i) {
    return "{\"title\": \"Issue " + std::to_string(i) +
           "\", \"description\": \"over TLS\", \"priority\": \"high\", "
           "\"reporter\": \"ana@example.com\"}";
  };
  std::string body;
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(200, Post(port, "/", issue(i), &body)) << body << "\n" << ingest.Log();
    EXPECT_NE(std::string::npos, body.find("\"issue_id\"")) << body;
  }
  trb_test::Cond poll;
  auto rows_reach = [&](int64_t n) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < end) {
      if (Rows("tributary.issues") >= n) return true;
      poll.WaitFor([] { return false; }, 100);  // poll interval, bounded by `end`
    }
    return false;
  };
  ASSERT_TRUE(rows_reach(3)) << Rows("tributary.issues") << "\n" << stream.Log();

  // The token expires on the server.
  ASSERT_EQ(GRPC_STATUS_OK, trb_emulator_set_bearer_token(emu_, "token-two", &st_));
  int code = Post(port, "/", issue(100), &body);
  EXPECT_EQ(500, code) << body;
  EXPECT_NE(std::string::npos, body.find("UNAUTHENTICATED")) << body;
  EXPECT_NE(std::string::npos, body.find("Request had invalid authentication credentials"))
      << body;

  // The refresher writes the new token: no restart needed.
  WriteAtomically(token_path_, "token-two\n");
  ASSERT_EQ(200, Post(port, "/", issue(4), &body)) << body << "\n" << ingest.Log();
  ASSERT_TRUE(rows_reach(4)) << Rows("tributary.issues") << "\n" << stream.Log();
  EXPECT_EQ(4, Rows("tributary.issues"));

  // ingest exits 1 when any accepted event went unconfirmed in its
  // lifetime — here the one refused while the token was stale.
  EXPECT_EQ(1, ingest.Stop()) << ingest.Log();
  EXPECT_NE(std::string::npos, ingest.Log().find("1 of 5 messages failed")) << ingest.Log();
  EXPECT_EQ(0, stream.Stop()) << stream.Log();
}

// A streamer whose token the server refuses: it stops with an error that
// names UNAUTHENTICATED and the server's reason (under systemd,
// Restart=always starts it again, and the next start reads the refreshed
// token file).
TEST_F(EmulatorTlsTest, StreamWithRefusedTokenReportsUnauthenticated) {
  std::string pipeline = dir_ + "/issues.json";
  std::ofstream(pipeline) << R"({"project": ")" << kProject << R"(",
    "subscription": "issues-tributary", "dead_letter_topic": "tributary-dead-letter",
    "wal_dir": ")" << dir_ << R"(/wal", "wal_sync": "none", "http_port": -1,
    "default_table": "tributary.issues"})";
  WriteAtomically(token_path_, "token-stale\n");
  Child stream;
  ASSERT_TRUE(stream.Start({"stream", "--pipeline", pipeline}, CloudEnv(), dir_ + "/stream.log"));
  int code = stream.WaitExit(60000);
  EXPECT_NE(-1, code) << "still running\n" << stream.Log();
  EXPECT_NE(0, code) << stream.Log();
  std::string log = stream.Log();
  EXPECT_NE(std::string::npos, log.find("UNAUTHENTICATED")) << log;
  // The server's reason ("Request had invalid authentication credentials.
  // ..."); matched on its tail only — see the report on worker.c's
  // overlapping status message.
  EXPECT_NE(std::string::npos, log.find("authentication credential")) << log;
}

// `tributary emulator --tls-cert --tls-key --bearer-token`: prints the
// endpoint variables of the cloud path (not *_EMULATOR_HOST, which means
// plaintext), serves TLS and wants the token; half a TLS pair is a usage
// error.
TEST_F(EmulatorTlsTest, CommandLineServesTlsWithToken) {
  std::string cert = dir_ + "/cert.pem", key = dir_ + "/key.pem";
  std::ofstream(cert) << *cert_;
  std::ofstream(key) << *key_;
  Child emu;
  ASSERT_TRUE(emu.Start({"emulator", "--pubsub-port", "0", "--bigquery-port", "0",
                         "--tls-cert", cert, "--tls-key", key, "--bearer-token", "token-cli"},
                        {}, dir_ + "/emulator.log"));
  std::string ps = emu.WaitLine("TRIBUTARY_PUBSUB_ENDPOINT");
  ASSERT_FALSE(ps.empty()) << emu.Log();
  std::string bq = emu.WaitLine("TRIBUTARY_BIGQUERY_STORAGE_ENDPOINT");
  ASSERT_FALSE(bq.empty()) << emu.Log();

  WriteAtomically(token_path_, "token-cli\n");
  trb_rpc_channel_config_t cc = {};
  cc.target = ps.c_str();
  cc.creds = TRB_RPC_CREDS_TLS;
  cc.root_certs_pem = cert_->c_str();
  cc.bearer_token_file = token_path_.c_str();
  trb_rpc_channel_t* ch = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch, &st_)) << st_.msg;
  std::string msg;
  // No such topic in this emulator: NOT_FOUND means the call was admitted.
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, GetTopic(ch, &msg)) << msg;
  trb_rpc_channel_destroy(ch);
  cc.bearer_token_file = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch, &st_)) << st_.msg;
  EXPECT_EQ(GRPC_STATUS_UNAUTHENTICATED, GetTopic(ch, &msg)) << msg;
  trb_rpc_channel_destroy(ch);
  EXPECT_EQ(0, emu.Stop()) << emu.Log();

  Child half;
  ASSERT_TRUE(half.Start({"emulator", "--pubsub-port", "0", "--bigquery-port", "0",
                          "--tls-cert", cert},
                         {}, dir_ + "/half.log"));
  EXPECT_EQ(2, half.WaitExit(30000)) << half.Log();
  EXPECT_NE(std::string::npos, half.Log().find("--tls-cert and --tls-key go together"))
      << half.Log();
}

// Strict routing: a Publish without `topic=` in x-goog-request-params is
// refused with a message naming the method and the key; with it, admitted.
TEST_F(EmulatorTlsTest, RoutingHeaderIsRequiredInStrictMode) {
  trb_rpc_channel_t* ch = CloudChannel();
  ASSERT_NE(nullptr, ch);
  std::string topic = std::string("projects/") + kProject + "/topics/issues";
  // PublishRequest{topic, messages: [{data: "x"}]}
  std::string req = std::string("\x0a", 1) + static_cast<char>(topic.size()) + topic +
                    std::string("\x12\x03\x0a\x01x", 5);
  auto publish = [&](const trb_rpc_md_t* md, size_t n_md, std::string* msg) {
    trb_rpc_call_opts_t opts = {};
    opts.timeout_ms = 10000;
    opts.md = md;
    opts.n_md = n_md;
    trb_rpc_response_t resp;
    grpc_status_code code = trb_rpc_unary_call(
        loop_, ch, "/google.pubsub.v1.Publisher/Publish", req.data(), req.size(), &opts, &resp);
    *msg = resp.message ? resp.message : "";
    trb_rpc_response_deinit(&resp);
    return code;
  };
  std::string msg;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, publish(nullptr, 0, &msg));
  EXPECT_NE(std::string::npos, msg.find("/google.pubsub.v1.Publisher/Publish")) << msg;
  EXPECT_NE(std::string::npos, msg.find("no topic=")) << msg;
  std::string wrong_key = "subscription=" + topic;
  trb_rpc_md_t wrong = {"x-goog-request-params", wrong_key.c_str(), 0};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, publish(&wrong, 1, &msg)) << msg;
  std::string params = "x=1&topic=" + topic;
  trb_rpc_md_t good = {"x-goog-request-params", params.c_str(), 0};
  EXPECT_EQ(GRPC_STATUS_OK, publish(&good, 1, &msg)) << msg;
  trb_rpc_channel_destroy(ch);
}

}  // namespace
