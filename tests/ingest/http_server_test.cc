// http_server_test — the HTTP/1.1 layer of `tributary ingest` on its own
// (src/ingest/http_server.h): keep-alive, pipelining, chunked bodies,
// 100-continue, 413/431, HTTP/1.0, the idle timeout against a slow sender,
// replies from another thread, destroy with pending requests, a client
// that goes away while its reply is pending, quiesce and max_connections.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <cstdlib>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "src/ingest/http_server.h"
#include "tests/ingest/raw_http_client.h"
#include "tests/testutil/wait.h"

namespace {

using Reply = trb_test::RawReply;
using trb_test::Post;

class Client : public trb_test::RawClient {
 public:
  explicit Client(int port, int timeout_ms = 10000) : RawClient(port, timeout_ms) {}
};

class HttpServerTest : public ::testing::Test {
 protected:
  // The handler answers at once (echo) unless `defer_`; deferred requests
  // are queued for the test to answer from its own thread.
  static void OnRequest(void* user, trb_http_request_t* r) {
    auto* t = static_cast<HttpServerTest*>(user);
    bool defer;
    {
      auto l = t->cond_.Lock();
      t->seen_.push_back(std::string(trb_http_request_method(r)) + " " +
                         trb_http_request_path(r));
      defer = t->defer_;
    }
    if (defer) {
      t->cond_.Update([&] { t->deferred_.push_back(r); });
      return;
    }
    if (std::string(trb_http_request_path(r)) == "/big") {  // more than socket buffers hold
      std::string big(64 << 20, 'b');
      trb_http_respond(r, 200, "text/plain", big.data(), big.size(), nullptr, 0, false);
      return;
    }
    Echo(r);
  }

  static void Echo(trb_http_request_t* r) {
    size_t len = 0;
    const char* body = trb_http_request_body(r, &len);
    std::string out = std::string(trb_http_request_method(r)) + " " +
                      trb_http_request_path(r) + " " + std::string(body, len);
    const char* x = trb_http_request_header(r, "x-test");
    if (x) out += std::string(" x-test=") + x;
    trb_http_header_t h[1] = {{"X-Echo", "1"}};
    trb_http_respond(r, 200, "text/plain", out.data(), out.size(), h, 1, false);
  }

  static void OnTooLarge(void* user) {
    auto* t = static_cast<HttpServerTest*>(user);
    t->cond_.Update([&] { t->too_large_++; });
  }

  void Start(trb_http_server_config_t cfg = {}) {
    cfg.host = "127.0.0.1";
    cfg.on_too_large = OnTooLarge;
    trb_status_t st = {};
    ASSERT_EQ(GRPC_STATUS_OK, trb_http_server_start(&cfg, OnRequest, this, &srv_, &st))
        << st.msg;
    port_ = trb_http_server_port(srv_);
  }

  void SetDefer(bool d) {
    cond_.Update([&] { defer_ = d; });
  }

  void TearDown() override { trb_http_server_destroy(srv_); }

  // Waits for `n` deferred requests; returns the oldest, removed.
  trb_http_request_t* TakeDeferred() {
    if (!cond_.WaitFor([&] { return !deferred_.empty(); }, 10000)) return nullptr;
    auto l = cond_.Lock();
    trb_http_request_t* r = deferred_.front();
    deferred_.pop_front();
    return r;
  }

  trb_test::Cond cond_;
  bool defer_ = false;
  std::deque<trb_http_request_t*> deferred_;
  std::vector<std::string> seen_;
  int too_large_ = 0;
  trb_http_server_t* srv_ = nullptr;
  int port_ = 0;
};

TEST_F(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  Start();
  Client c(port_);
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 5; i++) {
    ASSERT_TRUE(c.Send(Post("/p?q=1", "body" + std::to_string(i), "X-Test: v\r\n")));
    Reply r = c.Read();
    ASSERT_EQ(200, r.status) << r.head;
    EXPECT_EQ("POST /p body" + std::to_string(i) + " x-test=v", r.body);
    EXPECT_TRUE(r.Has("X-Echo: 1\r\n")) << r.head;
    EXPECT_TRUE(r.Has("Content-Type: text/plain\r\n")) << r.head;
    EXPECT_FALSE(r.Has("Connection: close")) << r.head;
  }
  EXPECT_EQ(0, trb_http_server_pending(srv_));
}

// Requests sent in one write are answered in order, also when each reply
// comes from another thread after the next request was already read.
TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Start();
  Client c(port_);
  ASSERT_TRUE(c.Send(Post("/a", "1") + Post("/b", "22") +
                     "GET /c HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ("POST /a 1", c.Read().body);
  EXPECT_EQ("POST /b 22", c.Read().body);
  EXPECT_EQ("GET /c ", c.Read().body);

  SetDefer(true);
  ASSERT_TRUE(c.Send(Post("/d", "x") + Post("/e", "y")));
  trb_http_request_t* d = TakeDeferred();
  ASSERT_NE(nullptr, d);
  // The second request is not handed over before the first is answered.
  EXPECT_EQ(1, trb_http_server_pending(srv_));
  EXPECT_TRUE(deferred_.empty());
  std::thread([d] { Echo(d); }).join();
  trb_http_request_t* e = TakeDeferred();
  ASSERT_NE(nullptr, e);
  std::thread([e] { Echo(e); }).join();
  EXPECT_EQ("POST /d x", c.Read().body);
  EXPECT_EQ("POST /e y", c.Read().body);
}

TEST_F(HttpServerTest, ChunkedBodyIsReadWhole) {
  Start();
  Client c(port_);
  ASSERT_TRUE(c.Send("POST /ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: t\r\n\r\n"));
  Reply r = c.Read();
  EXPECT_EQ(200, r.status);
  EXPECT_EQ("POST /ch hello world", r.body);
  // One byte per write: same result.
  std::string req = Post("/slow", "0123456789");
  for (char ch : req) ASSERT_TRUE(c.Send(std::string(1, ch)));
  EXPECT_EQ("POST /slow 0123456789", c.Read().body);
}

TEST_F(HttpServerTest, ExpectContinueGetsInterimReplyBeforeTheBody) {
  Start();
  Client c(port_);
  ASSERT_TRUE(c.Send("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     "Content-Length: 3\r\n\r\n"));
  Reply interim = c.Read();
  EXPECT_EQ(100, interim.status) << interim.head;
  ASSERT_TRUE(c.Send("abc"));
  Reply r = c.Read();
  EXPECT_EQ(200, r.status);
  EXPECT_EQ("POST /e abc", r.body);
}

// 413 at once (100-continue; Content-Length above 16× the limit), after
// draining (Content-Length; chunked), each with Connection: close.
TEST_F(HttpServerTest, OversizedBodiesAre413) {
  trb_http_server_config_t cfg = {};
  cfg.max_body_bytes = 100;
  Start(cfg);
  struct Case {
    const char* name;
    std::string req;
  } cases[] = {
      {"expect", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: 101\r\n\r\n"},
      {"huge", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{"},
      {"drained", Post("/", std::string(150, 'x'))},
      {"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "50\r\n" + std::string(80, 'y') + "\r\n50\r\n" + std::string(80, 'y') +
                  "\r\n0\r\n\r\n"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    Client c(port_);
    ASSERT_TRUE(c.Send(k.req));
    Reply r = c.Read();
    EXPECT_EQ(413, r.status) << r.head;
    EXPECT_TRUE(r.Has("Connection: close\r\n")) << r.head;
    EXPECT_NE(std::string::npos, r.body.find("larger than 100 bytes")) << r.body;
    EXPECT_TRUE(c.ClosedByServer());
  }
  EXPECT_EQ(4, too_large_);
  EXPECT_TRUE(seen_.empty());
  // At the limit exactly: served.
  Client c(port_);
  ASSERT_TRUE(c.Send(Post("/", std::string(100, 'z'))));
  EXPECT_EQ(200, c.Read().status);
}

TEST_F(HttpServerTest, OversizedHeadersAre431AndMalformedRequests400) {
  Start();
  {
    Client c(port_);
    ASSERT_TRUE(c.Send(Post("/", "a", "X-Big: " + std::string(12000, 'a') + "\r\n")));
    Reply r = c.Read();
    EXPECT_EQ(200, r.status);
  }
  {
    Client c(port_);
    ASSERT_TRUE(c.Send(
        Post("/", "a", "X-Big: " + std::string(TRB_HTTP_CONNECTION_MEMORY, 'a') + "\r\n")));
    Reply r = c.Read();
    EXPECT_EQ(431, r.status) << r.head;
    EXPECT_TRUE(r.Has("Connection: close\r\n"));
    EXPECT_TRUE(c.ClosedByServer());
  }
  {
    Client c(port_);
    ASSERT_TRUE(c.Send("NOT HTTP AT ALL\r\n\r\n"));
    Reply r = c.Read();
    EXPECT_EQ(400, r.status) << r.head;
    EXPECT_TRUE(c.ClosedByServer());
  }
  EXPECT_EQ(1u, seen_.size());
}

TEST_F(HttpServerTest, Http10AndConnectionCloseCloseAfterTheReply) {
  Start();
  {
    Client c(port_);
    ASSERT_TRUE(c.Send("GET /old HTTP/1.0\r\n\r\n"));
    Reply r = c.Read();
    EXPECT_EQ(200, r.status);
    EXPECT_EQ("GET /old ", r.body);
    EXPECT_TRUE(r.Has("Connection: close\r\n")) << r.head;
    EXPECT_TRUE(c.ClosedByServer());
  }
  {
    Client c(port_);
    ASSERT_TRUE(c.Send("GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    Reply r = c.Read();
    EXPECT_TRUE(r.Has("Connection: keep-alive\r\n")) << r.head;
    ASSERT_TRUE(c.Send("GET /ka2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    EXPECT_EQ("GET /ka2 ", c.Read().body);
  }
  {
    Client c(port_);
    ASSERT_TRUE(c.Send(Post("/bye", "b", "Connection: close\r\n")));
    Reply r = c.Read();
    EXPECT_EQ("POST /bye b", r.body);
    EXPECT_TRUE(r.Has("Connection: close\r\n"));
    EXPECT_TRUE(c.ClosedByServer());
  }
}

// A client that sends its headers a byte at a time is cut off at the idle
// timeout: trickling bytes do not extend it.
TEST_F(HttpServerTest, SlowSenderIsClosedAtTheIdleTimeout) {
  trb_http_server_config_t cfg = {};
  cfg.idle_timeout_s = 1;
  Start(cfg);
  Client c(port_, 200);
  auto start = std::chrono::steady_clock::now();
  std::string head = "POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  bool closed = false;
  for (int i = 0; i < 100 && !closed; i++) {  // ≤ 100 × 200 ms receive timeouts
    if (!c.Send(i < static_cast<int>(head.size()) ? head.substr(i, 1) : "a")) break;
    char b;
    ssize_t n = recv(c.fd(), &b, 1, 0);
    closed = n == 0 || (n < 0 && errno == ECONNRESET);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(closed);
  EXPECT_GE(s, 0.9);
  EXPECT_LT(s, 5.0);
  EXPECT_TRUE(seen_.empty());
}

// A client that stops reading its reply is closed at the idle timeout:
// it gets less than the whole reply, then the end of the stream.
TEST_F(HttpServerTest, ClientNotReadingItsReplyIsClosedAtTheIdleTimeout) {
  trb_http_server_config_t cfg = {};
  cfg.idle_timeout_s = 1;
  Start(cfg);
  Client c(port_, 10000);
  ASSERT_TRUE(c.Send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(cond_.WaitFor([&] { return seen_.size() == 1; }, 10000));
  EXPECT_TRUE(trb_http_server_wait_idle(srv_, 10000));  // closed, so no longer active
  size_t got = 0;
  char tmp[65536];
  for (;;) {
    ssize_t n = recv(c.fd(), tmp, sizeof(tmp), 0);
    if (n <= 0) {
      EXPECT_TRUE(n == 0 || errno == ECONNRESET) << errno;
      break;
    }
    got += static_cast<size_t>(n);
  }
  EXPECT_LT(got, static_cast<size_t>(64 << 20));
}

TEST_F(HttpServerTest, ReplyFromAnotherThreadAndWaitIdle) {
  Start();
  SetDefer(true);
  std::vector<std::unique_ptr<Client>> cs;
  for (int i = 0; i < 8; i++) {
    cs.push_back(std::make_unique<Client>(port_));
    ASSERT_TRUE(cs.back()->Send(Post("/d", std::to_string(i))));
  }
  std::vector<trb_http_request_t*> rs;
  for (int i = 0; i < 8; i++) {
    rs.push_back(TakeDeferred());
    ASSERT_NE(nullptr, rs.back());
  }
  EXPECT_EQ(8, trb_http_server_pending(srv_));
  EXPECT_FALSE(trb_http_server_wait_idle(srv_, 0));
  std::thread t([&] {
    for (auto* r : rs) Echo(r);
  });
  t.join();
  for (int i = 0; i < 8; i++) {
    Reply r = cs[i]->Read();
    EXPECT_EQ(200, r.status);
    EXPECT_EQ("POST /d " + std::to_string(i), r.body);
  }
  EXPECT_EQ(0, trb_http_server_pending(srv_));
  EXPECT_TRUE(trb_http_server_wait_idle(srv_, 10000));
  // The connections are still usable.
  SetDefer(false);
  ASSERT_TRUE(cs[3]->Send(Post("/again", "z")));
  EXPECT_EQ("POST /again z", cs[3]->Read().body);
}

TEST_F(HttpServerTest, DestroyAnswersPendingRequests503) {
  Start();
  SetDefer(true);
  Client c(port_);
  ASSERT_TRUE(c.Send(Post("/p", "x")));
  ASSERT_NE(nullptr, TakeDeferred());
  trb_http_server_destroy(srv_);
  srv_ = nullptr;
  Reply r = c.Read();
  EXPECT_EQ(503, r.status) << r.head;
  EXPECT_TRUE(r.Has("Connection: close\r\n"));
  EXPECT_TRUE(c.ClosedByServer());
}

// A client resets its connection while its reply is pending: the request
// no longer counts for wait_idle, and the late reply is dropped.
TEST_F(HttpServerTest, PeerResetWhileReplyPending) {
  Start();
  SetDefer(true);
  trb_http_request_t* r;
  {
    Client c(port_);
    ASSERT_TRUE(c.Send(Post("/gone", "x")));
    r = TakeDeferred();
    ASSERT_NE(nullptr, r);
    struct linger lg = {1, 0};  // close → RST
    setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  EXPECT_TRUE(trb_http_server_wait_idle(srv_, 10000));
  EXPECT_EQ(1, trb_http_server_pending(srv_));
  std::thread([r] { Echo(r); }).join();
  EXPECT_EQ(0, trb_http_server_pending(srv_));
  // A client that only shuts down its sending side still gets its reply.
  Client c(port_);
  ASSERT_TRUE(c.Send(Post("/half", "y")));
  trb_http_request_t* h = TakeDeferred();
  ASSERT_NE(nullptr, h);
  shutdown(c.fd(), SHUT_WR);
  std::thread([h] { Echo(h); }).join();
  EXPECT_EQ("POST /half y", c.Read().body);
  EXPECT_TRUE(c.ClosedByServer());
  // The server is still fine.
  SetDefer(false);
  Client d(port_);
  ASSERT_TRUE(d.Send(Post("/ok", "z")));
  EXPECT_EQ(200, d.Read().status);
}

TEST_F(HttpServerTest, QuiesceRefusesNewConnectionsAndServesOpenOnes) {
  Start();
  Client c(port_);
  ASSERT_TRUE(c.Send(Post("/1", "a")));
  EXPECT_EQ(200, c.Read().status);
  trb_http_server_quiesce(srv_);
  trb_http_server_quiesce(srv_);
  Client late(port_);
  EXPECT_FALSE(late.connected());
  ASSERT_TRUE(c.Send(Post("/2", "b")));
  EXPECT_EQ("POST /2 b", c.Read().body);
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitAreClosed) {
  trb_http_server_config_t cfg = {};
  cfg.max_connections = 2;
  cfg.threads = 1;
  Start(cfg);
  Client a(port_), b(port_);
  ASSERT_TRUE(a.Send(Post("/a", "1")));
  ASSERT_TRUE(b.Send(Post("/b", "2")));
  EXPECT_EQ(200, a.Read().status);
  EXPECT_EQ(200, b.Read().status);
  Client c(port_);
  ASSERT_TRUE(c.connected());  // the kernel accepts; the server closes it
  c.Send(Post("/c", "3"));
  EXPECT_EQ(0, c.Read().status);
  a.Send(Post("/a", "again"));
  EXPECT_EQ("POST /a again", a.Read().body);
}

// Many clients, replies from a separate thread while requests keep coming:
// every reply reaches its own client.
TEST_F(HttpServerTest, ConcurrentClientsWithAsyncReplies) {
  trb_http_server_config_t cfg = {};
  cfg.threads = 2;
  Start(cfg);
  SetDefer(true);
  std::atomic<bool> stop{false};
  std::thread responder([&] {
    while (!stop.load()) {
      trb_http_request_t* r = nullptr;
      cond_.WaitFor([&] { return !deferred_.empty() || stop.load(); }, 100);
      {
        auto l = cond_.Lock();
        if (!deferred_.empty()) {
          r = deferred_.front();
          deferred_.pop_front();
        }
      }
      if (r) Echo(r);
    }
  });
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int k = 0; k < 4; k++) {
    clients.emplace_back([&, k] {
      Client c(port_);
      for (int i = 0; i < 200; i++) {
        std::string body = std::to_string(k) + "-" + std::to_string(i);
        // Every fourth round: two pipelined requests.
        bool two = i % 4 == 0;
        if (!c.Send(Post("/c", body) + (two ? Post("/c2", body) : ""))) return;
        if (c.Read().body != "POST /c " + body) return;
        if (two && c.Read().body != "POST /c2 " + body) return;
        ok++;
      }
    });
  }
  for (auto& t : clients) t.join();
  stop = true;
  cond_.Notify();
  responder.join();
  EXPECT_EQ(800, ok.load());
  EXPECT_TRUE(trb_http_server_wait_idle(srv_, 10000));
}

}  // namespace
