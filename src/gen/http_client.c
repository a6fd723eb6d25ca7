/*
 * http_client.c — see http_client.h.
 */
#include "src/gen/http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/common/alloc.h"

struct trb_http_conn_s {
  struct sockaddr_in addr;
  int fd;
  char host[64];
  trb_buf_t in; /* bytes read and not consumed */
};

trb_http_conn_t *trb_http_conn_create(const char *host, int port) {
  trb_http_conn_t *c = trb_calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->fd = -1;
  c->addr.sin_family = AF_INET;
  c->addr.sin_port = htons((uint16_t)port);
  const char *h = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
  if (inet_pton(AF_INET, h, &c->addr.sin_addr) != 1) {
    trb_free(c);
    return NULL;
  }
  snprintf(c->host, sizeof c->host, "%s:%d", h, port);
  trb_buf_init(&c->in);
  return c;
}

static void conn_close(trb_http_conn_t *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  trb_buf_reset(&c->in);
}

void trb_http_conn_destroy(trb_http_conn_t *c) {
  if (!c) return;
  conn_close(c);
  trb_buf_deinit(&c->in);
  trb_free(c);
}

static int wait_fd(int fd, short ev, int timeout_ms) {
  struct pollfd p = {fd, ev, 0};
  for (;;) {
    int n = poll(&p, 1, timeout_ms);
    if (n > 0) return 0;
    if (n == 0) return -ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

static int conn_open(trb_http_conn_t *c, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&c->addr, sizeof c->addr) != 0) {
    if (errno != EINPROGRESS) {
      int e = -errno;
      close(fd);
      return e;
    }
    int rc = wait_fd(fd, POLLOUT, timeout_ms);
    int err = 0;
    socklen_t el = sizeof err;
    if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err)
      rc = -err;
    if (rc) {
      close(fd);
      return rc;
    }
  }
  c->fd = fd;
  return 0;
}

static int send_all(int fd, const char *p, size_t n, int timeout_ms) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = wait_fd(fd, POLLOUT, timeout_ms);
      if (rc) return rc;
      continue;
    }
    return w < 0 ? -errno : -ECONNRESET;
  }
  return 0;
}

/* Read more bytes into c->in. Returns bytes read (0 = EOF) or -errno. */
static int fill(trb_http_conn_t *c, int timeout_ms) {
  if (trb_buf_reserve(&c->in, 16384) != 0) return -ENOMEM;
  for (;;) {
    ssize_t r = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
    if (r >= 0) {
      c->in.len += (size_t)r;
      return (int)r;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int rc = wait_fd(c->fd, POLLIN, timeout_ms);
      if (rc) return rc;
      continue;
    }
    return -errno;
  }
}

static void consume(trb_http_conn_t *c, size_t n) {
  memmove(c->in.data, c->in.data + n, c->in.len - n);
  c->in.len -= n;
}

static const char *find_crlf(const char *p, size_t n) {
  for (size_t i = 0; i + 1 < n; i++)
    if (p[i] == '\r' && p[i + 1] == '\n') return p + i;
  return NULL;
}

/* Read the reply. *got_any tells whether any byte arrived. */
static int read_reply(trb_http_conn_t *c, int timeout_ms, int *status,
                      trb_buf_t *resp, bool *got_any, bool *keep) {
  size_t hend = 0;
  for (;;) {
    if (c->in.len >= 4) {
      const char *e = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
      if (e) {
        hend = (size_t)(e - c->in.data) + 4;
        break;
      }
    }
    if (c->in.len > 65536) return -EPROTO;
    int r = fill(c, timeout_ms);
    if (r < 0) return r;
    if (r == 0) return -ECONNRESET;
    *got_any = true;
  }
  *got_any = true;
  /* Status line. */
  int major = 0, minor = 0, code = 0;
  if (sscanf(c->in.data, "HTTP/%d.%d %d", &major, &minor, &code) != 3)
    return -EPROTO;
  *status = code;
  long long clen = -1;
  bool chunked = false;
  *keep = !(major == 1 && minor == 0);
  const char *p = find_crlf(c->in.data, hend) + 2;
  while (p < c->in.data + hend - 2) {
    const char *eol = find_crlf(p, (size_t)(c->in.data + hend - p));
    if (!eol) break;
    size_t ln = (size_t)(eol - p);
    if (ln > 15 && strncasecmp(p, "content-length:", 15) == 0) {
      clen = strtoll(p + 15, NULL, 10);
    } else if (ln > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0) {
      chunked = memmem(p, ln, "chunked", 7) != NULL;
    } else if (ln > 11 && strncasecmp(p, "connection:", 11) == 0) {
      if (memmem(p, ln, "close", 5)) *keep = false;
      if (memmem(p, ln, "keep-alive", 10)) *keep = true;
    }
    p = eol + 2;
  }
  consume(c, hend);
  if (resp) trb_buf_reset(resp);
  if (code == 204 || code == 304 || (code >= 100 && code < 200)) return 0;
  if (chunked) {
    for (;;) {
      const char *eol;
      while (!(eol = find_crlf(c->in.data, c->in.len))) {
        int r = fill(c, timeout_ms);
        if (r <= 0) return r < 0 ? r : -EPROTO;
      }
      long long sz = strtoll(c->in.data, NULL, 16);
      if (sz < 0) return -EPROTO;
      consume(c, (size_t)(eol - c->in.data) + 2);
      while (c->in.len < (size_t)sz + 2) {
        int r = fill(c, timeout_ms);
        if (r <= 0) return r < 0 ? r : -EPROTO;
      }
      if (sz == 0) {
        /* No trailers expected; skip the final CRLF. */
        consume(c, 2);
        return 0;
      }
      if (resp && trb_buf_append(resp, c->in.data, (size_t)sz) != 0)
        return -ENOMEM;
      consume(c, (size_t)sz + 2);
    }
  }
  if (clen >= 0) {
    while (c->in.len < (size_t)clen) {
      int r = fill(c, timeout_ms);
      if (r <= 0) return r < 0 ? r : -EPROTO;
    }
    if (resp && trb_buf_append(resp, c->in.data, (size_t)clen) != 0)
      return -ENOMEM;
    consume(c, (size_t)clen);
    return 0;
  }
  /* Until EOF. */
  for (;;) {
    int r = fill(c, timeout_ms);
    if (r < 0) return r;
    if (r == 0) break;
  }
  if (resp && trb_buf_append(resp, c->in.data, c->in.len) != 0) return -ENOMEM;
  *keep = false;
  return 0;
}

int trb_http_request(trb_http_conn_t *c, const char *method, const char *path,
                     const char *content_type, const char *body, size_t len,
                     int timeout_ms, int *status, trb_buf_t *resp) {
  char head[512];
  int hn;
  if (content_type) {
    hn = snprintf(head, sizeof head,
                  "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
                  "Content-Length: %zu\r\n\r\n",
                  method, path, c->host, content_type, len);
  } else {
    hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n",
                  method, path, c->host);
  }
  if (hn < 0 || (size_t)hn >= sizeof head) return -EINVAL;
  for (int attempt = 0;; attempt++) {
    bool reused = c->fd >= 0;
    if (!reused) {
      int rc = conn_open(c, timeout_ms);
      if (rc) return rc;
    }
    bool got_any = false, keep = true;
    int rc = send_all(c->fd, head, (size_t)hn, timeout_ms);
    if (rc == 0 && len) rc = send_all(c->fd, body, len, timeout_ms);
    if (rc == 0) rc = read_reply(c, timeout_ms, status, resp, &got_any, &keep);
    if (rc == 0) {
      if (!keep) conn_close(c);
      return 0;
    }
    conn_close(c);
    if (reused && !got_any && attempt == 0 && rc != -ETIMEDOUT) continue;
    return rc;
  }
}

int trb_http_get(const char *host, int port, const char *path, int timeout_ms,
                 int *status, trb_buf_t *resp) {
  trb_http_conn_t *c = trb_http_conn_create(host, port);
  if (!c) return -ENOMEM;
  int rc = trb_http_request(c, "GET", path, NULL, NULL, 0, timeout_ms, status,
                            resp);
  trb_http_conn_destroy(c);
  return rc;
}
