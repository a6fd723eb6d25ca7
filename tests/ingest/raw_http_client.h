// raw_http_client.h — a raw HTTP/1.1 client socket for the server-layer
// tests (http_server_test, http_server_adversarial_test): sends bytes as
// given (pipelined, split, malformed) and reads replies one at a time.
// Loopback only; every recv waits at most the receive timeout.
#ifndef TRB_TESTS_INGEST_RAW_HTTP_CLIENT_H
#define TRB_TESTS_INGEST_RAW_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace trb_test {

// One reply: status 0 when the connection closed (or timed out) first.
struct RawReply {
  int status = 0;
  std::string head;
  std::string body;
  bool Has(const std::string& h) const { return head.find(h) != std::string::npos; }
};

// A client socket with a receive timeout (ms) and TCP_NODELAY; port 0:
// not connected yet (Connect).
class RawClient {
 public:
  RawClient(int port, int timeout_ms) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (port > 0) Connect(port);
  }
  ~RawClient() {
    if (fd_ >= 0) close(fd_);
  }
  bool Connect(int port) {
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) == 0;
    return connected_;
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool Send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // One reply; `head_only`: a HEAD reply (Content-Length but no body).
  RawReply Read(bool head_only = false) {
    RawReply r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return r;
    }
    r.head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    int status = atoi(r.head.c_str() + 9);
    size_t len = 0;
    size_t cl = r.head.find("Content-Length: ");
    if (cl != std::string::npos && !head_only) {
      len = static_cast<size_t>(atoll(r.head.c_str() + cl + 16));
    }
    while (buf_.size() < len) {
      if (!Fill()) return r;
    }
    r.body = buf_.substr(0, len);
    buf_.erase(0, len);
    r.status = status;
    return r;
  }

  // True when the server closes (EOF or reset) before the receive timeout.
  bool ClosedByServer() {
    buf_.clear();
    char tmp[4096];
    for (;;) {
      ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }
  const std::string& buffered() const { return buf_; }

 private:
  bool Fill() {
    char tmp[65536];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

// A POST with a Content-Length body; `extra`: more header lines (CRLF-ended).
inline std::string Post(const std::string& path, const std::string& body,
                 const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace trb_test

#endif  // TRB_TESTS_INGEST_RAW_HTTP_CLIENT_H
