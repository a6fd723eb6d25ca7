// http_server_adversarial_test — src/ingest/http_server.h against hostile
// or odd clients: request smuggling shapes (RFC 9112 §6.3), chunk sizes far
// past the body limit, CONNECT, NUL bytes, trailers, HEAD in a pipeline,
// half-close after a pipeline, a FIN while a reply is pending, a pipeline
// longer than one drive of the loop next to another client, and a server
// out of file descriptors (EMFILE) that must not spin on accept.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
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
  explicit Client(int port, int timeout_ms = 5000) : RawClient(port, timeout_ms) {}
};

class HttpAdversarialTest : public ::testing::Test {
 protected:
  static void OnRequest(void* user, trb_http_request_t* r) {
    auto* t = static_cast<HttpAdversarialTest*>(user);
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
    Echo(r);
  }

  static void Echo(trb_http_request_t* r) {
    size_t len = 0;
    const char* body = trb_http_request_body(r, &len);
    if (std::string(trb_http_request_path(r)) == "/big") {  // > socket buffers
      std::string big(300000, len ? body[0] : '?');
      trb_http_respond(r, 200, "text/plain", big.data(), big.size(), nullptr, 0, false);
      return;
    }
    std::string out = std::string(trb_http_request_method(r)) + " " +
                      trb_http_request_path(r) + " " + std::string(body, len);
    trb_http_respond(r, 200, "text/plain", out.data(), out.size(), nullptr, 0, false);
  }

  void Start(trb_http_server_config_t cfg = {}) {
    cfg.host = "127.0.0.1";
    if (cfg.max_body_bytes == 0) cfg.max_body_bytes = 1024;
    trb_status_t st = {};
    ASSERT_EQ(GRPC_STATUS_OK, trb_http_server_start(&cfg, OnRequest, this, &srv_, &st))
        << st.msg;
    port_ = trb_http_server_port(srv_);
  }

  void SetDefer(bool d) {
    cond_.Update([&] { defer_ = d; });
  }

  void TearDown() override { trb_http_server_destroy(srv_); }

  trb_http_request_t* TakeDeferred() {
    if (!cond_.WaitFor([&] { return !deferred_.empty(); }, 10000)) return nullptr;
    auto l = cond_.Lock();
    trb_http_request_t* r = deferred_.front();
    deferred_.pop_front();
    return r;
  }

  std::vector<std::string> Seen() {
    auto l = cond_.Lock();
    return seen_;
  }

  // Sends `req` on a fresh connection; expects `status` and a close.
  void ExpectRejected(const std::string& req, int status) {
    Client c(port_);
    ASSERT_TRUE(c.connected());
    c.Send(req);
    Reply r = c.Read();
    EXPECT_EQ(status, r.status) << req.substr(0, 200) << "\n" << r.head;
    EXPECT_TRUE(r.Has("Connection: close\r\n")) << r.head;
    EXPECT_TRUE(c.ClosedByServer()) << req.substr(0, 200);
  }

  trb_test::Cond cond_;
  bool defer_ = false;
  std::deque<trb_http_request_t*> deferred_;
  std::vector<std::string> seen_;
  trb_http_server_t* srv_ = nullptr;
  int port_ = 0;
};

// RFC 9112 §6.3: Content-Length with Transfer-Encoding, a Transfer-Encoding
// whose final coding is not chunked, and disagreeing Content-Lengths are
// all answered 400 and closed; the smuggled request is never dispatched.
TEST_F(HttpAdversarialTest, SmugglingShapesAre400AndNothingIsDispatched) {
  Start();
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  ExpectRejected("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400);
  ExpectRejected("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, 400);
  ExpectRejected("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" +
                 smuggled, 400);
  ExpectRejected("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" +
                 smuggled, 400);
  ExpectRejected("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                 "Content-Length: 40\r\n\r\nabc" + smuggled, 400);
  ExpectRejected("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", 400);
  ExpectRejected("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400);
  ExpectRejected("POST /a HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 99999999999999999999999\r\n\r\n", 400);
  // CONNECT would make http_parser hand the rest of the stream over as
  // "another protocol": its body would be parsed as the next request.
  ExpectRejected("CONNECT x:443 HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                 std::to_string(smuggled.size()) + "\r\n\r\n" + smuggled, 400);
  for (const auto& s : Seen()) EXPECT_EQ(std::string::npos, s.find("smuggled")) << s;
  EXPECT_TRUE(Seen().empty());
}

// Odd bytes: NUL in a header value, in the URL, a control byte in the
// method; all 400, nothing dispatched.
TEST_F(HttpAdversarialTest, NulAndControlBytesAre400) {
  Start();
  using namespace std::string_literals;
  ExpectRejected("POST /a HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n"s,
                 400);
  ExpectRejected("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n"s, 400);
  ExpectRejected("G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
  ExpectRejected("GET / HTTP/9.9x\r\nHost: x\r\n\r\n", 400);
  ExpectRejected("\r\n\r\n\r\n\x80\x81\x82 garbage\r\n\r\n", 400);
  EXPECT_TRUE(Seen().empty());
  // High bytes in the path are passed through as they are.
  Client c(port_);
  ASSERT_TRUE(c.Send("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ("GET /caf\xc3\xa9 ", c.Read().body);
}

// A chunk size far past the body limit (and one that overflows 64 bits) is
// refused at once — not after reading and dropping gigabytes, nor after the
// idle timeout.
TEST_F(HttpAdversarialTest, HugeChunkSizesAreRefusedAtOnce) {
  Start();  // max_body_bytes 1024
  ExpectRejected("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "fffffffffffffffffffff\r\n", 400);
  // 256 MiB declared in one chunk, a little of it sent: 413 now.
  ExpectRejected("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "10000000\r\n" + std::string(100, 'x'), 413);
  // Many chunks each under the limit adding up to far past it: 413 once
  // 16 times the limit was dropped, without waiting for the end.
  {
    Client c(port_);
    std::string req = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 40; i++) req += "400\r\n" + std::string(1024, 'y') + "\r\n";
    ASSERT_TRUE(c.Send(req));
    Reply r = c.Read();
    EXPECT_EQ(413, r.status) << r.head;
    EXPECT_TRUE(c.ClosedByServer());
  }
  EXPECT_TRUE(Seen().empty());
}

// Many tiny chunks, chunk extensions and trailers: the body is assembled;
// trailers do not replace headers; oversized trailers are 431.
TEST_F(HttpAdversarialTest, TinyChunksExtensionsAndTrailers) {
  Start();
  Client c(port_);
  std::string req = "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string want;
  for (int i = 0; i < 1000; i++) {
    char ch = static_cast<char>('a' + i % 26);
    req += (i % 3 == 0 ? "1;ext=v\r\n" : "1\r\n") + std::string(1, ch) + "\r\n";
    want += ch;
  }
  req += "0\r\nX-Trailer: t\r\n\r\n";
  ASSERT_TRUE(c.Send(req));
  Reply r = c.Read();
  EXPECT_EQ(200, r.status);
  EXPECT_EQ("POST /t " + want, r.body);
  // Still usable afterwards.
  ASSERT_TRUE(c.Send(Post("/u", "v")));
  EXPECT_EQ("POST /u v", c.Read().body);
  ExpectRejected("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "1\r\na\r\n0\r\nX-Big: " + std::string(20000, 'z') + "\r\n\r\n", 431);
}

// HEAD in a pipeline: its reply has Content-Length but no body, and the
// reply after it is intact.
TEST_F(HttpAdversarialTest, HeadInAPipelineHasNoBody) {
  Start();
  Client c(port_);
  ASSERT_TRUE(c.Send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n" + Post("/p", "after")));
  Reply h = c.Read(/*head_only=*/true);
  EXPECT_EQ(200, h.status);
  EXPECT_TRUE(h.Has("Content-Length: 8\r\n")) << h.head;
  Reply p = c.Read();
  EXPECT_EQ("POST /p after", p.body);
}

// Requests after one with "Connection: close" (or HTTP/1.0) are not
// dispatched; the connection closes after the first reply.
TEST_F(HttpAdversarialTest, NothingAfterConnectionCloseIsDispatched) {
  Start();
  Client c(port_);
  ASSERT_TRUE(c.Send(Post("/first", "1", "Connection: close\r\n") + Post("/second", "2")));
  EXPECT_EQ("POST /first 1", c.Read().body);
  EXPECT_TRUE(c.ClosedByServer());
  Client d(port_);
  ASSERT_TRUE(d.Send("GET /old HTTP/1.0\r\n\r\nGET /second HTTP/1.0\r\n\r\n"));
  EXPECT_EQ("GET /old ", d.Read().body);
  EXPECT_TRUE(d.ClosedByServer());
  std::vector<std::string> want = {"POST /first", "GET /old"};
  EXPECT_EQ(want, Seen());
}

// Half-close after a pipeline of deferred requests: every reply comes, in
// order, then the close; a FIN (not a reset) while a reply is pending
// leaves the reply deliverable and the request counted until it is sent.
TEST_F(HttpAdversarialTest, HalfCloseAfterPipelineGetsEveryReply) {
  Start();
  SetDefer(true);
  Client c(port_);
  ASSERT_TRUE(c.Send(Post("/1", "a") + Post("/2", "b") + Post("/3", "c")));
  shutdown(c.fd(), SHUT_WR);
  for (int i = 0; i < 3; i++) {
    trb_http_request_t* r = TakeDeferred();
    ASSERT_NE(nullptr, r);
    std::thread([r] { Echo(r); }).join();
  }
  EXPECT_EQ("POST /1 a", c.Read().body);
  EXPECT_EQ("POST /2 b", c.Read().body);
  EXPECT_EQ("POST /3 c", c.Read().body);
  EXPECT_TRUE(c.ClosedByServer());
  EXPECT_TRUE(trb_http_server_wait_idle(srv_, 10000));
  EXPECT_EQ(0, trb_http_server_pending(srv_));
}

// A pipeline longer than one turn of the loop on a single loop thread does
// not starve another client, and every request is answered once, in order.
TEST_F(HttpAdversarialTest, LongPipelineDoesNotStarveOthersAndLosesNothing) {
  trb_http_server_config_t cfg = {};
  cfg.threads = 1;
  Start(cfg);
  const int kN = 3000;
  std::string burst;
  for (int i = 0; i < kN; i++) burst += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n";
  Client a(port_, 10000);
  std::atomic<int> got{0};
  std::atomic<bool> in_order{true};
  std::thread reader([&] {
    for (int i = 0; i < kN; i++) {
      Reply r = a.Read();
      if (r.body != "GET /" + std::to_string(i) + " ") {
        in_order = false;
        return;
      }
      got++;
    }
  });
  ASSERT_TRUE(a.Send(burst));
  Client b(port_);
  ASSERT_TRUE(b.Send(Post("/other", "o")));
  EXPECT_EQ("POST /other o", b.Read().body);
  reader.join();
  EXPECT_TRUE(in_order.load());
  EXPECT_EQ(kN, got.load());
}

// A reply from another thread while the handler is still running (the
// handler waits for that thread): sent once, after the handler returns.
TEST_F(HttpAdversarialTest, ReplyFromAnotherThreadDuringTheHandler) {
  Start();
  SetDefer(true);
  Client c(port_);
  for (int i = 0; i < 50; i++) {
    ASSERT_TRUE(c.Send(Post("/r", std::to_string(i))));
    trb_http_request_t* r = TakeDeferred();
    ASSERT_NE(nullptr, r);
    std::thread([r] { Echo(r); }).join();
    EXPECT_EQ("POST /r " + std::to_string(i), c.Read().body);
  }
  EXPECT_TRUE(trb_http_server_wait_idle(srv_, 10000));
}

// Peers that reset while replies are pending, racing the replies from
// another thread: no crash, no leak, nothing left counted.
TEST_F(HttpAdversarialTest, ResetsRacingReplies) {
  Start();
  SetDefer(true);
  std::thread responder([&] {
    for (int i = 0; i < 100; i++) {
      trb_http_request_t* r = TakeDeferred();
      if (!r) return;
      Echo(r);
    }
  });
  for (int i = 0; i < 100; i++) {
    Client c(port_);
    ASSERT_TRUE(c.Send(Post("/x", "y")));
    if (i % 2) c.Read();
    struct linger lg = {1, 0};
    setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  responder.join();
  EXPECT_TRUE(trb_http_server_wait_idle(srv_, 10000));
  EXPECT_EQ(0, trb_http_server_pending(srv_));
}

// A request delivered one byte per segment (every callback of the parser
// split), and more headers than are kept: the request is reassembled
// intact; the headers past TRB_HTTP_MAX_HEADERS are ignored.
TEST_F(HttpAdversarialTest, ByteAtATimeAndTooManyHeaders) {
  Start();
  Client c(port_);
  std::string req = Post("/by?te=1", "split body", "X-Long-Header-Name: some value\r\n");
  for (char ch : req) {
    ASSERT_TRUE(c.Send(std::string(1, ch)));
  }
  EXPECT_EQ("POST /by split body", c.Read().body);
  std::string many;
  for (int i = 0; i < 300; i++) many += "X-H" + std::to_string(i) + ": v\r\n";
  ASSERT_TRUE(c.Send(Post("/many", "m", many)));
  EXPECT_EQ("POST /many m", c.Read().body);
  ASSERT_TRUE(c.Send(Post("/after", "a")));
  EXPECT_EQ("POST /after a", c.Read().body);
}

// Large replies from another thread to a pipeline whose client reads
// slowly: partial sends hand over to the loop (EAGAIN), the next request
// is only taken once the reply before it is out; every reply arrives once,
// whole, in order. Then quiesce with replies still pending: they are sent.
TEST_F(HttpAdversarialTest, PartialSendsFromResponderAndQuiesceWithPending) {
  Start();
  SetDefer(true);
  Client c(port_, 10000);
  const int kN = 12;
  std::string burst;
  for (int i = 0; i < kN; i++) burst += Post("/big", std::string(1, static_cast<char>('a' + i)));
  ASSERT_TRUE(c.Send(burst));
  std::atomic<bool> stop{false};
  std::thread responder([&] {
    for (int i = 0; i < kN + 1 && !stop.load(); i++) {
      trb_http_request_t* r = TakeDeferred();
      if (r) Echo(r);
    }
  });
  for (int i = 0; i < kN; i++) {
    Reply r = c.Read();
    ASSERT_EQ(200, r.status) << i;
    ASSERT_EQ(300000u, r.body.size());
    EXPECT_EQ(std::string(300000, static_cast<char>('a' + i)), r.body) << i;
  }
  ASSERT_TRUE(c.Send(Post("/p", "last")));
  ASSERT_TRUE(cond_.WaitFor([&] { return seen_.size() == kN + 1; }, 10000));
  trb_http_server_quiesce(srv_);
  responder.join();
  EXPECT_EQ("POST /p last", c.Read().body);
  EXPECT_TRUE(trb_http_server_wait_idle(srv_, 10000));
  EXPECT_EQ(0, trb_http_server_pending(srv_));
}

// After a 413 the connection lingers, dropping input; a client that keeps
// sending faster than that drains does not hold the loop thread (another
// client on the same loop is answered) and is closed after the linger.
TEST_F(HttpAdversarialTest, FloodWhileLingeringDoesNotHoldTheLoop) {
  trb_http_server_config_t cfg = {};
  cfg.threads = 1;
  Start(cfg);  // max_body_bytes 1024: 100000 is refused at once
  Client f(port_);
  ASSERT_TRUE(f.Send("POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"));
  EXPECT_EQ(413, f.Read().status);
  std::atomic<bool> stop{false};
  std::atomic<bool> send_failed{false};
  std::thread flood([&] {
    std::string junk(1 << 20, 'j');
    while (!stop.load()) {
      if (send(f.fd(), junk.data(), junk.size(), MSG_NOSIGNAL) < 0) {
        send_failed = true;
        return;
      }
    }
  });
  Client other(port_, 3000);
  ASSERT_TRUE(other.Send(Post("/other", "o")));
  EXPECT_EQ("POST /other o", other.Read().body);
  // Closed by the server within the linger (2 s) plus a sweep.
  bool closed = cond_.WaitFor([&] { return send_failed.load(); }, 8000);
  stop = true;
  flood.join();
  EXPECT_TRUE(closed);
}

// Chunk-size lines: a long one (leading zeros, an extension) is parsed as
// it streams, not buffered; one of a megabyte is refused (http_parser
// counts chunk-size lines against its 80 KB header limit: 431), so a
// client cannot stream an endless chunk-size line.
TEST_F(HttpAdversarialTest, LongChunkSizeLines) {
  Start();
  Client c(port_);
  std::string req = "POST /l HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                    std::string(4000, '0') + "3\r\nabc\r\n" + "2;e=" +
                    std::string(4000, 'e') + "\r\nde\r\n0\r\n\r\n";
  ASSERT_TRUE(c.Send(req));
  Reply r = c.Read();
  EXPECT_EQ(200, r.status) << r.head;
  EXPECT_EQ("POST /l abcde", r.body);
  ExpectRejected("POST /l HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                 std::string(1 << 20, '0'), 431);
  ExpectRejected("POST /l HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;e=" +
                 std::string(1 << 20, 'e'), 431);
}

// Out of file descriptors: connections wait in the backlog, the loop does
// not spin on a listening socket it cannot accept from, and once
// descriptors are free again they are served.
TEST_F(HttpAdversarialTest, EmfileDoesNotSpinAndRecovers) {
  trb_http_server_config_t cfg = {};
  cfg.threads = 1;
  Start(cfg);
  Client warm(port_);
  ASSERT_TRUE(warm.Send(Post("/w", "1")));
  ASSERT_EQ(200, warm.Read().status);
  // Sockets created now; connected once no descriptor is left.
  std::vector<std::unique_ptr<Client>> cs;
  for (int i = 0; i < 4; i++) cs.emplace_back(new Client(0));
  int top = 0;
  for (int fd = 0; fd < 4096; fd++) {
    if (fcntl(fd, F_GETFD) != -1) top = fd;
  }
  struct rlimit old;
  ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &old));
  struct rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(top + 1);
  ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &low));
  for (auto& c : cs) ASSERT_TRUE(c->Connect(port_));
  ASSERT_TRUE(cs[0]->Send(Post("/late", "z")));
  struct timespec c0, w0, c1, w1;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  clock_gettime(CLOCK_MONOTONIC, &w0);
  // Measure the process's CPU over half a second of wall time (the test
  // thread blocks; only the loop thread could burn CPU).
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &w1);
    double el = (w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) / 1e9;
    if (el >= 0.5) break;
    struct timespec nap = {0, 50 * 1000 * 1000};
    nanosleep(&nap, nullptr);
  }
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  // Not accepted (no descriptor for it): no reply yet.
  char tmp[16];
  ssize_t got = recv(cs[0]->fd(), tmp, sizeof(tmp), MSG_DONTWAIT);
  int err = errno;
  ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &old));
  EXPECT_EQ(-1, got);
  EXPECT_EQ(EAGAIN, err);
  double cpu = (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9;
  EXPECT_LT(cpu, 0.2) << "the loop spins on EMFILE";
  printf("cpu over 0.5 s at EMFILE: %.3f s\n", cpu);
  for (size_t i = 0; i < cs.size(); i++) {
    auto& c = cs[i];
    if (i > 0) {
      ASSERT_TRUE(c->Send(Post("/late", "z")));
    }
    EXPECT_EQ("POST /late z", c->Read().body);
  }
}

}  // namespace
