/*
 * http_server.c — see http_server.h.
 *
 * Ownership. A connection belongs to the loop thread that accepted it: only
 * that thread reads from it, parses, calls the handler, arms timers and
 * frees it. Other threads touch a connection only through trb_http_respond
 * (its request is embedded in the connection), under the connection's
 * mutex `mu`, which guards: req (the request state), the write buffer,
 * closed/fd, readable/peer_eof, in_dispatch and the loop's ready list.
 *
 * One request at a time per connection: when a request is complete the
 * parser is paused and the rest of the input waits in the read buffer until
 * the reply is out, so pipelined requests are answered in order.
 *
 * Reply path (trb_http_respond, any thread, under mu):
 *   - during the handler call (in_dispatch): append the reply; the loop
 *     sends it when the handler returns;
 *   - later, with nothing queued: send it on the spot (MSG_DONTWAIT); when
 *     all of it went and the loop has nothing to do for the connection
 *     (no unread input, no close), the request is finished right there —
 *     no wake-up of the loop at all;
 *   - otherwise (partial write, EAGAIN, close, input waiting, peer gone):
 *     put the connection on its loop's ready list; the eventfd is written
 *     only when the list goes from empty to non-empty (one wake-up per
 *     batch of replies).
 *
 * Sockets are edge-triggered in epoll for IN|OUT|RDHUP, registered once:
 * no epoll_ctl per request. A read that returns less than asked is taken to
 * have drained the socket (a later arrival raises a new edge), so a request
 * costs one recv under load.
 */
#include "src/ingest/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "src/common/alloc.h"
#include "src/common/log.h"

/* Request states (conn->req). */
enum {
  R_IDLE = 0,    /* between requests, or reading one */
  R_HANDLER = 1, /* handed to the handler, not answered */
  R_DONE = 2     /* answered; reply in wbuf (maybe already sent) */
};

/* Seconds a closing connection keeps reading (and dropping) input after
 * its last reply, so the client sees the reply rather than a reset. */
#define LINGER_S 2
/* Bytes read per recv when the read buffer is empty. */
#define READ_CHUNK 16384

typedef struct loop_s loop_t;
typedef struct conn_s conn_t;

struct trb_http_request_s {
  conn_t *c;
  const char *method;
  const char *path;
  const char *body;
  size_t body_len;
  trb_ingest_kv_t headers[TRB_HTTP_MAX_HEADERS];
  size_t n_headers;
};

struct conn_s {
  loop_t *loop;
  int fd;
  pthread_mutex_t mu;
  /* guarded by mu */
  int req;
  bool closed;      /* fd closed */
  bool readable;    /* an input edge not yet read */
  bool peer_eof;    /* the client shut down its side */
  bool broken;      /* a send failed */
  bool in_dispatch; /* the loop is inside the handler call */
  bool on_ready;    /* on loop->ready */
  bool close_after; /* close once wbuf is sent */
  bool counted;     /* in srv->active */
  bool rdhup;       /* the client's FIN was signalled: read to EOF */
  bool keep_alive;  /* the request allows another one after it */
  bool head;        /* the request is HEAD: no reply body */
  char *wbuf;
  size_t wlen, woff, wcap;
  conn_t *ready_next;
  /* loop thread only */
  bool dead;        /* freed at the end of the loop's event batch */
  conn_t *gnext;    /* loop->graveyard */
  bool lingering;
  int64_t since_ms; /* idle / linger clock start, now_ms() */
  http_parser parser;
  char *rbuf;
  size_t rlen, rpos, rcap;
  /* the request being parsed */
  bool msg_done;
  bool too_large;
  uint64_t body_seen; /* body bytes received, dropped ones included */
  bool in_value;  /* last header callback was a value */
  int reject;     /* status to answer at once (413, 431, 400), then close */
  char hbuf[TRB_HTTP_CONNECTION_MEMORY]; /* URL, header names and values */
  size_t hlen;
  size_t url_off;
  size_t hname_off[TRB_HTTP_MAX_HEADERS];
  size_t hvalue_off[TRB_HTTP_MAX_HEADERS];
  size_t nh; /* headers stored */
  char *body;
  size_t blen, bcap;
  trb_http_request_t r;
  conn_t *prev, *next; /* loop->conns */
};

struct loop_s {
  trb_http_server_t *srv;
  pthread_t thread;
  bool started;
  int epfd;
  int evfd;
  _Atomic int64_t now_ms; /* now_ms() at the last wake-up of the loop */
  pthread_mutex_t mu;      /* guards ready */
  conn_t *ready;
  conn_t *conns; /* loop thread only (and destroy after join) */
  conn_t *graveyard; /* closed, freed after the current event batch */
  bool accept_paused; /* out of descriptors: listening socket taken out of
                         epfd until the next sweep (loop thread only) */
  char scratch[4096];
};

struct trb_http_server_s {
  trb_http_handler_cb handler;
  void (*on_too_large)(void *user);
  void *user;
  trb_http_server_config_t cfg;
  int port;
  int listen_fd;
  loop_t *loops;
  int n_loops;
  http_parser_settings settings;
  _Atomic bool stopping;
  _Atomic bool quiesced;
  _Atomic int nconns;
  _Atomic int64_t pending;
  /* Handed to the handler, reply not yet sent nor connection closed.
   * Decremented without mu; the decrement to zero takes mu to broadcast
   * `idle`, so a waiter holding mu cannot miss it. */
  _Atomic int64_t active;
  pthread_mutex_t mu;
  pthread_cond_t idle;
};

/* Monotonic milliseconds (coarse clock: a few ms resolution, vDSO). */
static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- counters ---------------------------------------------------------- */

static void active_done(trb_http_server_t *s) {
  if (atomic_fetch_sub(&s->active, 1) == 1) {
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
  }
}

/* ---- reply formatting (caller holds c->mu) ------------------------------ */

static const char *reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

/* "Date: <IMF-fixdate>\r\n", formatted once per second per thread. */
static const char *date_line(size_t *len) {
  static _Thread_local time_t cached = 0;
  static _Thread_local char line[64];
  static _Thread_local size_t n = 0;
  time_t t = time(NULL);
  if (t != cached) {
    struct tm tm;
    gmtime_r(&t, &tm);
    n = strftime(line, sizeof(line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    cached = t;
  }
  *len = n;
  return line;
}

static bool wreserve(conn_t *c, size_t more) {
  if (c->wlen + more <= c->wcap) return true;
  size_t cap = c->wcap ? c->wcap : 1024;
  while (cap < c->wlen + more) cap *= 2;
  char *p = trb_realloc(c->wbuf, cap);
  if (!p) return false;
  c->wbuf = p;
  c->wcap = cap;
  return true;
}

static void wput(conn_t *c, const char *s, size_t n) {
  memcpy(c->wbuf + c->wlen, s, n);
  c->wlen += n;
}

static void wputs(conn_t *c, const char *s) { wput(c, s, strlen(s)); }

/* Decimal digits of v (no snprintf: this is on every reply). */
static void wputu(conn_t *c, uint64_t v) {
  char tmp[24];
  size_t i = sizeof(tmp);
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  wput(c, tmp + i, sizeof(tmp) - i);
}

/* Appends a whole reply to wbuf; false when out of memory (the connection
 * is then closed without a reply). Sets close_after when `close`. */
static bool format_reply(conn_t *c, int status, const char *content_type,
                         const char *body, size_t len,
                         const trb_http_header_t *headers, size_t n_headers,
                         bool close, bool http10_keep_alive, bool head) {
  size_t need = 256 + len + (content_type ? strlen(content_type) + 20 : 0);
  for (size_t i = 0; i < n_headers; i++) {
    need += strlen(headers[i].name) + strlen(headers[i].value) + 4;
  }
  if (!wreserve(c, need)) return false;
  if (status < 100 || status > 999) status = 500;
  wputs(c, "HTTP/1.1 ");
  wputu(c, (uint64_t)status);
  wput(c, " ", 1);
  wputs(c, reason(status));
  wputs(c, "\r\n");
  size_t dl;
  const char *d = date_line(&dl);
  wput(c, d, dl);
  wputs(c, "Content-Length: ");
  wputu(c, len);
  wputs(c, "\r\n");
  if (content_type) {
    wputs(c, "Content-Type: ");
    wputs(c, content_type);
    wputs(c, "\r\n");
  }
  for (size_t i = 0; i < n_headers; i++) {
    wputs(c, headers[i].name);
    wputs(c, ": ");
    wputs(c, headers[i].value);
    wputs(c, "\r\n");
  }
  if (close) {
    wputs(c, "Connection: close\r\n");
    c->close_after = true;
  } else if (http10_keep_alive) {
    wputs(c, "Connection: keep-alive\r\n");
  }
  wputs(c, "\r\n");
  if (len && !head) wput(c, body, len);
  return true;
}

/* The server's own error replies (JSON body). */
static void format_error(conn_t *c, int status, const char *msg) {
  char body[160];
  int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", msg);
  if (!format_reply(c, status, "application/json", body, (size_t)n, NULL, 0,
                    true, false, false)) {
    c->broken = true;
  }
}

/* ---- sending and closing (caller holds c->mu) --------------------------- */

/* Send what wbuf holds: 1 all sent, 0 would block (EPOLLOUT will call
 * back), -1 broken. */
static int flush_locked(conn_t *c) {
  while (c->woff < c->wlen) {
    ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c->woff += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return 0;
    } else {
      c->broken = true;
      return -1;
    }
  }
  c->wlen = c->woff = 0;
  return 1;
}

static void close_locked(conn_t *c) {
  if (c->closed) return;
  c->closed = true;
  close(c->fd); /* also leaves the epoll set */
  c->fd = -1;
  atomic_fetch_sub(&c->loop->srv->nconns, 1);
  if (c->counted) {
    c->counted = false;
    active_done(c->loop->srv);
  }
}

/* Caller holds c->mu; pushes onto the loop's ready list (one eventfd write
 * per batch). */
static void kick_locked(conn_t *c) {
  if (c->on_ready) return;
  loop_t *l = c->loop;
  c->on_ready = true;
  pthread_mutex_lock(&l->mu);
  bool was_empty = l->ready == NULL;
  c->ready_next = l->ready;
  l->ready = c;
  pthread_mutex_unlock(&l->mu);
  if (was_empty) {
    uint64_t one = 1;
    ssize_t w = write(l->evfd, &one, sizeof(one));
    (void)w;
  }
}

/* ---- public: respond ----------------------------------------------------- */

void trb_http_respond(trb_http_request_t *r, int status,
                      const char *content_type, const char *body, size_t len,
                      const trb_http_header_t *headers, size_t n_headers,
                      bool close) {
  conn_t *c = r->c;
  trb_http_server_t *s = c->loop->srv;
  close = close || !c->keep_alive;
  bool http10_ka = c->parser.http_major == 1 && c->parser.http_minor == 0 &&
                   !close;
  pthread_mutex_lock(&c->mu);
  atomic_fetch_sub(&s->pending, 1);
  c->req = R_DONE;
  if (c->closed) {
    kick_locked(c); /* the loop frees it */
    pthread_mutex_unlock(&c->mu);
    return;
  }
  bool queued_before = c->wlen > c->woff;
  if (!format_reply(c, status, content_type, body, len, headers, n_headers,
                    close, http10_ka, c->head)) {
    c->broken = true;
  }
  if (c->in_dispatch) { /* the loop sends it when the handler returns */
    pthread_mutex_unlock(&c->mu);
    return;
  }
  if (!queued_before && !c->broken && flush_locked(c) == 1 &&
      !c->close_after && !c->readable && !c->peer_eof &&
      c->rpos == c->rlen) {
    /* Sent in full, and the loop has nothing to do: finish here. */
    c->req = R_IDLE;
    /* The loop's clock (at most one wake-up old) is good enough here. */
    c->since_ms = atomic_load_explicit(&c->loop->now_ms, memory_order_relaxed);
    if (c->counted) {
      c->counted = false;
      active_done(s);
    }
    pthread_mutex_unlock(&c->mu);
    return;
  }
  /* A reply the client does not read is timed out from now. */
  c->since_ms = atomic_load_explicit(&c->loop->now_ms, memory_order_relaxed);
  kick_locked(c);
  pthread_mutex_unlock(&c->mu);
}

/* ---- parser callbacks (loop thread) -------------------------------------- */

static conn_t *conn_of(http_parser *p) { return p->data; }

static bool happend(conn_t *c, const char *at, size_t len) {
  if (c->hlen + len + 1 > sizeof(c->hbuf)) {
    c->reject = 431;
    return false;
  }
  memcpy(c->hbuf + c->hlen, at, len);
  c->hlen += len;
  return true;
}

/* Marks the request too large (once); the 413 follows the body. */
static void set_too_large(conn_t *c) {
  trb_http_server_t *s = c->loop->srv;
  if (c->too_large) return;
  c->too_large = true;
  if (s->on_too_large) s->on_too_large(s->user);
}

static int on_message_begin(http_parser *p) {
  conn_t *c = conn_of(p);
  c->hlen = 0;
  c->url_off = 0;
  c->nh = 0;
  c->in_value = false;
  c->blen = 0;
  c->too_large = false;
  c->body_seen = 0;
  c->msg_done = false;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  return happend(conn_of(p), at, len) ? 0 : -1;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  conn_t *c = conn_of(p);
  if (c->in_value || c->nh == 0) {
    /* A new header: terminate what came before (URL or last value). */
    if (!happend(c, "", 1)) return -1;
    c->in_value = false;
    if (c->nh < TRB_HTTP_MAX_HEADERS) c->hname_off[c->nh] = c->hlen;
    c->nh++;
  }
  return happend(c, at, len) ? 0 : -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  conn_t *c = conn_of(p);
  if (!c->in_value) {
    if (!happend(c, "", 1)) return -1;
    c->in_value = true;
    if (c->nh - 1 < TRB_HTTP_MAX_HEADERS) c->hvalue_off[c->nh - 1] = c->hlen;
  }
  return happend(c, at, len) ? 0 : -1;
}

static const char *find_header(const trb_http_request_t *r, const char *name) {
  for (size_t i = 0; i < r->n_headers; i++) {
    if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
  }
  return NULL;
}

static int on_headers_complete(http_parser *p) {
  conn_t *c = conn_of(p);
  trb_http_server_t *s = c->loop->srv;
  if (!happend(c, "", 1)) return -1;
  /* A header name without a value (cannot happen with http_parser, which
   * requires the colon) is given an empty one. */
  if (c->nh > 0 && !c->in_value && c->nh - 1 < TRB_HTTP_MAX_HEADERS) {
    c->hvalue_off[c->nh - 1] = c->hlen - 1;
  }
  trb_http_request_t *r = &c->r;
  r->n_headers = c->nh < TRB_HTTP_MAX_HEADERS ? c->nh : TRB_HTTP_MAX_HEADERS;
  for (size_t i = 0; i < r->n_headers; i++) {
    r->headers[i].name = c->hbuf + c->hname_off[i];
    r->headers[i].value = c->hbuf + c->hvalue_off[i];
  }
  /* The path: the URL up to '?' or '#'. */
  char *url = c->hbuf + c->url_off;
  url[strcspn(url, "?#")] = '\0';
  r->path = url[0] ? url : "/";
  r->method = http_method_str((enum http_method)p->method);
  if (p->method == HTTP_CONNECT) {
    /* http_parser hands what follows a CONNECT over as "another protocol"
     * without reading its body: that body would be parsed as the next
     * request (smuggling). Not a method this server serves. */
    c->reject = 400;
    return -1;
  }

  bool has_length = !(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX;
  if (has_length && p->content_length > (uint64_t)s->cfg.max_body_bytes) {
    set_too_large(c);
    /* A client waiting for "100 Continue" has sent no body yet: answer
     * now. So for absurd sizes, not worth reading. Otherwise read and drop
     * the body first, so the client is reading when the 413 comes. */
    const char *expect = find_header(r, "Expect");
    if ((expect && strcasecmp(expect, "100-continue") == 0) ||
        p->content_length / 16 > (uint64_t)s->cfg.max_body_bytes) {
      c->reject = 413;
      return -1; /* stop parsing this connection */
    }
    return 0;
  }
  const char *expect = find_header(r, "Expect");
  if (expect && strcasecmp(expect, "100-continue") == 0 && p->http_minor >= 1 &&
      !(has_length && p->content_length == 0)) {
    static const char k100[] = "HTTP/1.1 100 Continue\r\n\r\n";
    pthread_mutex_lock(&c->mu);
    if (wreserve(c, sizeof(k100) - 1)) {
      wput(c, k100, sizeof(k100) - 1);
      flush_locked(c);
    }
    pthread_mutex_unlock(&c->mu);
  }
  if (has_length && p->content_length > 0 && c->bcap < p->content_length + 1) {
    size_t cap = (size_t)p->content_length + 1;
    char *b = trb_realloc(c->body, cap);
    if (!b) return -1;
    c->body = b;
    c->bcap = cap;
  }
  return 0;
}

/* A chunked body is refused at once, like a declared Content-Length, when
 * it goes past 16 times the limit: by a chunk-size line, or by the bytes
 * dropped so far. p->content_length is the chunk's size here. */
static int on_chunk_header(http_parser *p) {
  conn_t *c = conn_of(p);
  uint64_t max = (uint64_t)c->loop->srv->cfg.max_body_bytes;
  uint64_t size = p->content_length;
  if (size > max || c->body_seen + size > max) set_too_large(c);
  if (size / 16 > max || (c->body_seen + size) / 16 > max) {
    c->reject = 413;
    return -1;
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  conn_t *c = conn_of(p);
  trb_http_server_t *s = c->loop->srv;
  c->body_seen += len;
  if (c->too_large) return 0; /* drained */
  if ((int64_t)(c->blen + len) > s->cfg.max_body_bytes) {
    set_too_large(c);
    return 0;
  }
  if (c->blen + len + 1 > c->bcap) {
    size_t cap = c->bcap ? c->bcap : 1024;
    while (cap < c->blen + len + 1) cap *= 2;
    char *b = trb_realloc(c->body, cap);
    if (!b) return -1;
    c->body = b;
    c->bcap = cap;
  }
  memcpy(c->body + c->blen, at, len);
  c->blen += len;
  return 0;
}

static int on_message_complete(http_parser *p) {
  conn_t *c = conn_of(p);
  c->msg_done = true;
  http_parser_pause(p, 1);
  return 0;
}

/* ---- connection life (loop thread) --------------------------------------- */

static void conn_unlink(conn_t *c) {
  loop_t *l = c->loop;
  if (c->prev) c->prev->next = c->next;
  else l->conns = c->next;
  if (c->next) c->next->prev = c->prev;
}

static void conn_free(conn_t *c) {
  pthread_mutex_destroy(&c->mu);
  trb_free(c->wbuf);
  trb_free(c->rbuf);
  trb_free(c->body);
  trb_free(c);
}

/* Frees `c` when nobody else can reach it; returns true if it did. */
static bool maybe_free(conn_t *c) {
  pthread_mutex_lock(&c->mu);
  bool can = c->closed && c->req != R_HANDLER && !c->on_ready && !c->dead;
  if (can) c->dead = true;
  pthread_mutex_unlock(&c->mu);
  if (can) {
    conn_unlink(c);
    c->gnext = c->loop->graveyard;
    c->loop->graveyard = c;
  }
  return can;
}

/* Begin closing after the last reply: stop sending, keep dropping input
 * for LINGER_S seconds (or until the client closes). */
static void start_linger(conn_t *c) {
  c->lingering = true;
  c->since_ms = now_ms();
  shutdown(c->fd, SHUT_WR);
}

/* Dispatch the request just parsed; the handler may answer inline. */
static void dispatch(conn_t *c) {
  trb_http_server_t *s = c->loop->srv;
  if (c->body) c->body[c->blen] = '\0';
  c->r.body = c->body ? c->body : "";
  c->r.body_len = c->blen;
  c->keep_alive = http_should_keep_alive(&c->parser) != 0;
  c->head = c->parser.method == HTTP_HEAD;
  atomic_fetch_add(&s->pending, 1);
  atomic_fetch_add(&s->active, 1);
  pthread_mutex_lock(&c->mu);
  c->req = R_HANDLER;
  c->since_ms = atomic_load_explicit(&c->loop->now_ms, memory_order_relaxed);
  c->counted = true;
  c->in_dispatch = true;
  pthread_mutex_unlock(&c->mu);
  s->handler(s->user, &c->r);
  pthread_mutex_lock(&c->mu);
  c->in_dispatch = false;
  pthread_mutex_unlock(&c->mu);
}

/* Parse buffered input: dispatches at most one request, or sets reject. */
static void parse_some(conn_t *c) {
  trb_http_server_t *s = c->loop->srv;
  if (HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED) http_parser_pause(&c->parser, 0);
  size_t avail = c->rlen - c->rpos;
  size_t n = http_parser_execute(&c->parser, &s->settings, c->rbuf + c->rpos, avail);
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  c->rpos += n;
  if (c->rpos == c->rlen) c->rpos = c->rlen = 0;
  if (c->msg_done) {
    c->msg_done = false;
    if (c->too_large) {
      c->reject = 413;
    } else {
      dispatch(c);
      return;
    }
  } else if (e != HPE_OK && e != HPE_PAUSED && !c->reject) {
    c->reject = e == HPE_HEADER_OVERFLOW ? 431 : 400;
  } else if (n == 0 && avail > 0 && !c->reject) {
    c->reject = 400; /* no progress (cannot happen with 2.9.4): do not spin */
  }
  if (!c->reject) return;
  pthread_mutex_lock(&c->mu);
  if (c->reject == 413) {
    char msg[96];
    snprintf(msg, sizeof(msg), "request body larger than %lld bytes",
             (long long)s->cfg.max_body_bytes);
    format_error(c, 413, msg);
  } else if (c->reject == 431) {
    format_error(c, 431, "request headers too large");
  } else {
    format_error(c, 400, "malformed HTTP request");
  }
  pthread_mutex_unlock(&c->mu);
  c->rpos = c->rlen = 0; /* the rest of the input is dropped */
}

/* Read once; returns false at EOF / error (peer_eof or broken set). */
static void read_some(conn_t *c) {
  if (c->rpos > 0 && c->rpos == c->rlen) c->rpos = c->rlen = 0;
  if (c->rcap - c->rlen < READ_CHUNK / 2) {
    if (c->rpos > 0) { /* compact */
      memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
      c->rlen -= c->rpos;
      c->rpos = 0;
    }
    if (c->rcap - c->rlen < READ_CHUNK / 2) {
      size_t cap = c->rcap ? c->rcap * 2 : READ_CHUNK;
      char *b = trb_realloc(c->rbuf, cap);
      if (!b) {
        c->broken = true;
        return;
      }
      c->rbuf = b;
      c->rcap = cap;
    }
  }
  size_t want = c->rcap - c->rlen;
  ssize_t n = recv(c->fd, c->rbuf + c->rlen, want, 0);
  if (n > 0) {
    c->rlen += (size_t)n;
    /* A short read drained the socket (a later arrival is a new edge),
     * unless the FIN is already signalled: then read on to the EOF. */
    if ((size_t)n < want && !c->rdhup) c->readable = false;
  } else if (n == 0) {
    c->readable = false;
    c->peer_eof = true;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
    c->readable = false;
  } else if (errno != EINTR) {
    c->readable = false;
    c->broken = true;
  }
}

/* Drop input while lingering; closes at EOF. */
static void linger_read(conn_t *c) {
  for (int i = 0; c->readable; i++) {
    if (i == 64) {
      /* A client that keeps sending faster than this drains must not hold
       * the loop (nor outlive the linger: the sweep does not see a
       * connection that is always back on the ready list). */
      if (now_ms() - c->since_ms >= 1000 * (int64_t)LINGER_S) {
        c->peer_eof = true;
      } else {
        pthread_mutex_lock(&c->mu);
        kick_locked(c);
        pthread_mutex_unlock(&c->mu);
      }
      return;
    }
    ssize_t n = recv(c->fd, c->loop->scratch, sizeof(c->loop->scratch), 0);
    if (n > 0) continue;
    c->readable = false;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      c->peer_eof = true;
    }
  }
}

/* Move a connection as far as it can go; may free it. */
static void drive(conn_t *c) {
  trb_http_server_t *s = c->loop->srv;
  for (int guard = 0; guard < 1024; guard++) {
    pthread_mutex_lock(&c->mu);
    if (c->closed) {
      pthread_mutex_unlock(&c->mu);
      maybe_free(c);
      return;
    }
    if (c->broken) {
      close_locked(c);
      pthread_mutex_unlock(&c->mu);
      continue;
    }
    if (c->wlen > c->woff) {
      int f = flush_locked(c);
      if (f == 0) {
        pthread_mutex_unlock(&c->mu);
        return; /* EPOLLOUT drives it again */
      }
      if (f < 0) {
        pthread_mutex_unlock(&c->mu);
        continue;
      }
    }
    if (c->req == R_HANDLER) {
      pthread_mutex_unlock(&c->mu);
      return; /* trb_http_respond drives it on */
    }
    if (c->req == R_DONE) {
      c->req = R_IDLE;
      c->since_ms = atomic_load_explicit(&c->loop->now_ms, memory_order_relaxed);
      if (c->counted) {
        c->counted = false;
        active_done(s);
      }
    }
    if (c->close_after && !c->lingering) {
      pthread_mutex_unlock(&c->mu);
      start_linger(c);
      continue;
    }
    pthread_mutex_unlock(&c->mu);

    if (c->lingering) {
      linger_read(c);
      if (c->peer_eof) {
        pthread_mutex_lock(&c->mu);
        close_locked(c);
        pthread_mutex_unlock(&c->mu);
        continue;
      }
      return;
    }
    if (c->reject) {
      /* The error reply is queued (close_after); loop round to send it. */
      c->reject = 0;
      c->close_after = true;
      continue;
    }
    if (c->rpos < c->rlen) {
      parse_some(c);
      continue;
    }
    if (c->readable) {
      read_some(c);
      continue; /* parse it; at EOF (a truncated request too): close */
    }
    if (c->peer_eof) {
      pthread_mutex_lock(&c->mu);
      close_locked(c);
      pthread_mutex_unlock(&c->mu);
      continue;
    }
    return;
  }
  /* Many pipelined requests answered inline: let the other connections
   * have a turn; the input is still buffered. */
  pthread_mutex_lock(&c->mu);
  kick_locked(c);
  pthread_mutex_unlock(&c->mu);
}

static void accept_some(loop_t *l) {
  trb_http_server_t *s = l->srv;
  for (int i = 0; i < 64; i++) {
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* Out of descriptors (or memory): the listening socket stays
         * readable (level-triggered), so waiting on it would spin. Take it
         * out of this loop's set until the next sweep; the connections
         * wait in the backlog meanwhile. */
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->listen_fd, NULL);
        l->accept_paused = true;
      }
      return; /* EAGAIN, or quiesced (EINVAL) */
    }
    if (atomic_fetch_add(&s->nconns, 1) >= s->cfg.max_connections) {
      atomic_fetch_sub(&s->nconns, 1);
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn_t *c = trb_malloc(sizeof(*c));
    if (!c) {
      atomic_fetch_sub(&s->nconns, 1);
      close(fd);
      continue;
    }
    /* hbuf is large and needs no zeroing. */
    memset(c, 0, offsetof(conn_t, hbuf));
    memset((char *)c + offsetof(conn_t, hlen), 0, sizeof(*c) - offsetof(conn_t, hlen));
    c->loop = l;
    c->fd = fd;
    pthread_mutex_init(&c->mu, NULL);
    c->since_ms = now_ms();
    c->r.c = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = l->conns;
    if (l->conns) l->conns->prev = c;
    l->conns = c;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = c};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      pthread_mutex_lock(&c->mu);
      close_locked(c);
      pthread_mutex_unlock(&c->mu);
      conn_unlink(c);
      conn_free(c);
    }
  }
}

/* Idle keep-alive connections (and slow clients that have not completed a
 * request, or do not read their reply) past the idle timeout, and lingering ones past LINGER_S; run
 * every 250 ms. */
static void sweep(loop_t *l) {
  trb_http_server_t *s = l->srv;
  int64_t now = now_ms();
  if (l->accept_paused && !atomic_load(&s->quiesced)) {
    l->accept_paused = false;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = s};
    epoll_ctl(l->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev);
    /* quiesce sets `quiesced` before taking the socket out of every set:
     * either it saw this one, or this sees `quiesced`. */
    if (atomic_load(&s->quiesced)) epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->listen_fd, NULL);
  }
  conn_t *next;
  for (conn_t *c = l->conns; c; c = next) {
    next = c->next;
    pthread_mutex_lock(&c->mu);
    /* Waiting for a request (or its bytes), or for the client to read
     * a reply; never while the handler has the request. */
    /* A connection on the ready list is not spared: one that is always
     * back on it (a client sending without end) would never time out. It
     * is freed once the loop has taken it off the list. */
    bool idle = c->req != R_HANDLER && !c->closed;
    int64_t limit = 1000 * (int64_t)(c->lingering ? LINGER_S : s->cfg.idle_timeout_s);
    if (idle && now - c->since_ms >= limit) {
      close_locked(c);
      pthread_mutex_unlock(&c->mu);
      maybe_free(c);
      continue;
    }
    pthread_mutex_unlock(&c->mu);
  }
}

static void run_ready(loop_t *l) {
  uint64_t v;
  ssize_t rd = read(l->evfd, &v, sizeof(v));
  (void)rd;
  pthread_mutex_lock(&l->mu);
  conn_t *list = l->ready;
  l->ready = NULL;
  pthread_mutex_unlock(&l->mu);
  while (list) {
    conn_t *c = list;
    list = c->ready_next;
    pthread_mutex_lock(&c->mu);
    c->on_ready = false;
    c->ready_next = NULL;
    pthread_mutex_unlock(&c->mu);
    drive(c);
  }
}

static void *loop_main(void *arg) {
  loop_t *l = arg;
  trb_http_server_t *s = l->srv;
  struct epoll_event evs[64];
  int64_t last_sweep = now_ms();
  while (!atomic_load(&s->stopping)) {
    int n = epoll_wait(l->epfd, evs, 64, 250);
    atomic_store_explicit(&l->now_ms, now_ms(), memory_order_relaxed);
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == l) {
        run_ready(l);
      } else if (p == s) {
        if (!atomic_load(&s->quiesced)) accept_some(l);
      } else {
        conn_t *c = p;
        uint32_t e = evs[i].events;
        pthread_mutex_lock(&c->mu);
        if (c->dead) {
          pthread_mutex_unlock(&c->mu);
          continue;
        }
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->readable = true;
        if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->rdhup = true;
        if ((e & (EPOLLHUP | EPOLLERR)) && c->req == R_HANDLER) {
          /* The client is gone (reset) while its reply is pending: close
           * now; trb_http_respond drops the reply. */
          close_locked(c);
        }
        bool wait = c->req == R_HANDLER;
        pthread_mutex_unlock(&c->mu);
        if (!wait) drive(c);
      }
    }
    int64_t now = now_ms();
    if (now - last_sweep >= 250) {
      last_sweep = now;
      sweep(l);
    }
    while (l->graveyard) {
      conn_t *c = l->graveyard;
      l->graveyard = c->gnext;
      conn_free(c);
    }
  }
  return NULL;
}

/* ---- public: lifecycle ---------------------------------------------------- */

grpc_status_code trb_http_server_start(const trb_http_server_config_t *cfg,
                                       trb_http_handler_cb handler, void *user,
                                       trb_http_server_t **out,
                                       trb_status_t *st) {
  *out = NULL;
  trb_http_server_t *s = trb_calloc(1, sizeof(*s));
  if (!s) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  if (cfg) s->cfg = *cfg;
  s->cfg.host = NULL; /* not kept */
  if (s->cfg.threads <= 0) s->cfg.threads = 2;
  if (s->cfg.max_body_bytes <= 0) s->cfg.max_body_bytes = 1024 * 1024;
  if (s->cfg.max_connections <= 0) s->cfg.max_connections = 256;
  if (s->cfg.idle_timeout_s <= 0) s->cfg.idle_timeout_s = 60;
  s->handler = handler;
  s->on_too_large = cfg ? cfg->on_too_large : NULL;
  s->user = user;
  s->listen_fd = -1;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->idle, NULL);
  http_parser_settings_init(&s->settings);
  s->settings.on_message_begin = on_message_begin;
  s->settings.on_url = on_url;
  s->settings.on_header_field = on_header_field;
  s->settings.on_header_value = on_header_value;
  s->settings.on_headers_complete = on_headers_complete;
  s->settings.on_body = on_body;
  s->settings.on_chunk_header = on_chunk_header;
  s->settings.on_message_complete = on_message_complete;

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)(cfg ? cfg->port : 0));
  const char *host = cfg && cfg->host ? cfg->host : "0.0.0.0";
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    trb_http_server_destroy(s);
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "http: bad IPv4 address \"%s\"", host);
  }
  s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (s->listen_fd < 0 ||
      setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
      listen(s->listen_fd, 1024) != 0) {
    int err = errno;
    trb_http_server_destroy(s);
    return trb_status_set(st, GRPC_STATUS_UNAVAILABLE,
                          "http: cannot listen on %s:%d (%s)", host,
                          cfg ? cfg->port : 0, strerror(err));
  }
  struct sockaddr_in bound;
  socklen_t bl = sizeof(bound);
  getsockname(s->listen_fd, (struct sockaddr *)&bound, &bl);
  s->port = ntohs(bound.sin_port);

  s->loops = trb_calloc((size_t)s->cfg.threads, sizeof(loop_t));
  if (!s->loops) {
    trb_http_server_destroy(s);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  for (int i = 0; i < s->cfg.threads; i++) {
    loop_t *l = &s->loops[i];
    l->srv = s;
    l->now_ms = now_ms();
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&l->mu, NULL);
    s->n_loops = i + 1;
    struct epoll_event ev_l = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = s};
    struct epoll_event ev_e = {.events = EPOLLIN, .data.ptr = l};
    if (l->epfd < 0 || l->evfd < 0 ||
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev_l) != 0 ||
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev_e) != 0 ||
        pthread_create(&l->thread, NULL, loop_main, l) != 0) {
      int err = errno;
      trb_http_server_destroy(s);
      return trb_status_set(st, GRPC_STATUS_UNAVAILABLE,
                            "http: cannot start a server thread (%s)", strerror(err));
    }
    l->started = true;
  }
  *out = s;
  return GRPC_STATUS_OK;
}

int trb_http_server_port(const trb_http_server_t *s) { return s->port; }

void trb_http_server_quiesce(trb_http_server_t *s) {
  if (atomic_exchange(&s->quiesced, true)) return;
  if (s->listen_fd < 0) return;
  for (int i = 0; i < s->n_loops; i++) {
    epoll_ctl(s->loops[i].epfd, EPOLL_CTL_DEL, s->listen_fd, NULL);
  }
  /* Stop listening now (new connections are refused); the descriptor is
   * closed by destroy, once no loop thread can be inside accept4 on it. */
  shutdown(s->listen_fd, SHUT_RDWR);
}

int64_t trb_http_server_pending(trb_http_server_t *s) {
  return atomic_load(&s->pending);
}

bool trb_http_server_wait_idle(trb_http_server_t *s, int64_t timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  if (timeout_ms >= 0) {
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
  }
  pthread_mutex_lock(&s->mu);
  while (atomic_load(&s->active) > 0) {
    if (timeout_ms < 0) {
      pthread_cond_wait(&s->idle, &s->mu);
    } else if (pthread_cond_timedwait(&s->idle, &s->mu, &until) == ETIMEDOUT) {
      break;
    }
  }
  bool idle = atomic_load(&s->active) == 0;
  pthread_mutex_unlock(&s->mu);
  return idle;
}

void trb_http_server_destroy(trb_http_server_t *s) {
  if (!s) return;
  atomic_store(&s->stopping, true);
  for (int i = 0; i < s->n_loops; i++) {
    loop_t *l = &s->loops[i];
    uint64_t one = 1;
    if (l->evfd >= 0) {
      ssize_t w = write(l->evfd, &one, sizeof(one));
      (void)w;
    }
  }
  for (int i = 0; i < s->n_loops; i++) {
    if (s->loops[i].started) pthread_join(s->loops[i].thread, NULL);
  }
  /* The loops are stopped: answer what is still pending 503 (one attempt
   * to send), then close everything. */
  static const char kBody[] = "{\"error\":\"server stopping\"}";
  for (int i = 0; i < s->n_loops; i++) {
    loop_t *l = &s->loops[i];
    while (l->conns) {
      conn_t *c = l->conns;
      pthread_mutex_lock(&c->mu);
      if (c->req == R_HANDLER) {
        atomic_fetch_sub(&s->pending, 1);
        c->req = R_DONE;
        if (!c->closed &&
            format_reply(c, 503, "application/json", kBody, sizeof(kBody) - 1,
                         NULL, 0, true, false, false)) {
          flush_locked(c);
        }
      } else if (!c->closed && c->wlen > c->woff) {
        flush_locked(c);
      }
      close_locked(c);
      pthread_mutex_unlock(&c->mu);
      conn_unlink(c);
      conn_free(c);
    }
    while (l->graveyard) {
      conn_t *c = l->graveyard;
      l->graveyard = c->gnext;
      conn_free(c);
    }
    if (l->epfd >= 0) close(l->epfd);
    if (l->evfd >= 0) close(l->evfd);
    pthread_mutex_destroy(&l->mu);
  }
  if (s->listen_fd >= 0) close(s->listen_fd);
  trb_free(s->loops);
  pthread_cond_destroy(&s->idle);
  pthread_mutex_destroy(&s->mu);
  trb_free(s);
}

/* ---- request accessors ----------------------------------------------------- */

const char *trb_http_request_method(const trb_http_request_t *r) {
  return r->method;
}

const char *trb_http_request_path(const trb_http_request_t *r) { return r->path; }

const char *trb_http_request_header(const trb_http_request_t *r,
                                    const char *name) {
  return find_header(r, name);
}

const trb_ingest_kv_t *trb_http_request_headers(const trb_http_request_t *r,
                                                size_t *n) {
  *n = r->n_headers;
  return r->headers;
}

const char *trb_http_request_body(const trb_http_request_t *r, size_t *len) {
  *len = r->body_len;
  return r->body;
}
