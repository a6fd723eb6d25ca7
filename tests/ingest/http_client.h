// http_client.h — a tiny blocking HTTP/1.1 client for the ingest tests:
// one TCP connection to 127.0.0.1, requests with Content-Length, replies
// read by Content-Length; keep-alive unless the server says close.
#ifndef TRB_TESTS_INGEST_HTTP_CLIENT_H
#define TRB_TESTS_INGEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace trb_test {

struct HttpResponse {
  int status = 0;  // 0 = transport failure (connection refused/closed)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

class HttpConn {
 public:
  explicit HttpConn(int port, int timeout_ms = 30000) : port_(port), timeout_ms_(timeout_ms) {}
  ~HttpConn() { Close(); }
  HttpConn(const HttpConn&) = delete;
  HttpConn& operator=(const HttpConn&) = delete;

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    buf_.clear();
  }

  // Send one request (reconnecting if needed) and read the reply.
  HttpResponse Do(const std::string& method, const std::string& path, const std::string& body,
                  const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    HttpResponse r;
    if (fd_ < 0 && !Connect()) return r;
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& h : headers) req += h.first + ": " + h.second + "\r\n";
    if (method != "GET" || !body.empty()) {
      req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    req += "\r\n";
    req += body;
    if (!SendAll(req)) {
      Close();
      return r;
    }
    if (!ReadReply(&r)) {
      Close();
      r.status = 0;
      return r;
    }
    auto it = r.headers.find("connection");
    if (it != r.headers.end() && strcasecmp(it->second.c_str(), "close") == 0) Close();
    return r;
  }

  bool connected() const { return fd_ >= 0; }

  // Send raw bytes (`chunk` bytes per send(), 0 = all at once), then read
  // one reply. For requests the Do() form cannot express.
  HttpResponse Raw(const std::string& bytes, size_t chunk = 0) {
    HttpResponse r;
    if (fd_ < 0 && !Connect()) return r;
    if (chunk == 0) chunk = bytes.size();
    for (size_t off = 0; off < bytes.size(); off += chunk) {
      if (!SendAll(bytes.substr(off, chunk))) {
        Close();
        return r;
      }
    }
    if (!ReadReply(&r)) {
      Close();
      r.status = 0;
    }
    return r;
  }

 private:
  bool Connect() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return false;
    struct timeval tv;
    tv.tv_sec = timeout_ms_ / 1000;
    tv.tv_usec = (timeout_ms_ % 1000) * 1000;
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) != 0) {
      Close();
      return false;
    }
    return true;
  }

  bool SendAll(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  bool Fill() {
    char tmp[65536];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  bool ReadReply(HttpResponse* r) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t sp = head.find(' ');
    if (sp == std::string::npos) return false;
    r->status = atoi(head.c_str() + sp + 1);
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos
                                                                         : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string k = line.substr(0, colon);
        for (auto& c : k) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
        std::string v = line.substr(colon + 1);
        while (!v.empty() && v[0] == ' ') v.erase(0, 1);
        r->headers[k] = v;
      }
      pos = next;
    }
    size_t len = 0;
    auto it = r->headers.find("content-length");
    if (it != r->headers.end()) len = static_cast<size_t>(atoll(it->second.c_str()));
    while (buf_.size() < len) {
      if (!Fill()) return false;
    }
    r->body = buf_.substr(0, len);
    buf_.erase(0, len);
    return true;
  }

  int port_;
  int timeout_ms_;
  int fd_ = -1;
  std::string buf_;
};

}  // namespace trb_test

#endif  // TRB_TESTS_INGEST_HTTP_CLIENT_H
