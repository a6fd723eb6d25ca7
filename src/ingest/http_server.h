/*
 * http_server.h — the HTTP/1.1 layer of `tributary ingest`: an epoll loop of
 * our own over non-blocking sockets, requests parsed by the Node.js
 * http_parser (Debian libhttp-parser-dev 2.9.4); keep-alive, a pool of
 * `threads` loop threads, request bodies buffered up to a limit, and
 * asynchronous replies (the handler may answer later, from any thread; the
 * connection waits meanwhile and costs no thread).
 *
 * Model: for every request the server reads the whole body (Content-Length
 * or chunked), then calls the handler once on the loop thread that owns the
 * connection. The handler reads the request through the accessors below
 * and, then or later, calls trb_http_respond exactly once. A connection
 * carries one request at a time: pipelined requests wait, already read,
 * until the reply before them is out, so they are answered in order.
 * HTTP/1.0 requests and `Connection: close` get their reply and then the
 * connection is closed; `Expect: 100-continue` is answered
 * "100 Continue" before the body is read.
 *
 * A body larger than `max_body_bytes` (by Content-Length or as it arrives)
 * is answered 413 by the server itself, with Connection: close — at once
 * when the client waits for "100 Continue" or goes past 16 times the limit
 * (a Content-Length, a chunk size, or chunked bytes received), else after
 * reading and dropping the body (so the client sees the reply instead of a
 * reset). A request line plus headers (or trailers) larger than
 * TRB_HTTP_CONNECTION_MEMORY is answered 431; a malformed request 400 —
 * among them Content-Length with Transfer-Encoding, a Transfer-Encoding
 * not ending in chunked, disagreeing Content-Lengths (RFC 9112 §6.3), and
 * CONNECT (whose body http_parser would not read, leaving it to be parsed
 * as the next request); all with Connection: close. After a closing reply the server stops writing
 * and drops input for up to 2 s before closing, so the client reads the
 * reply rather than a reset.
 *
 * Replies: trb_http_respond formats the reply into the connection's
 * (reused) write buffer. Called during the handler, the loop sends it when
 * the handler returns. Called later from another thread (a publisher's
 * completion), it sends the reply itself, on the spot, with one
 * non-blocking send under the connection's lock — no wake-up of the loop —
 * unless the loop has work for that connection (the send would block or
 * was partial, the connection closes after the reply, pipelined input is
 * waiting, the client is gone): then the connection goes on its loop's
 * ready list, and the loop is woken (one eventfd write) only when that
 * list was empty, i.e. once per batch of replies.
 *
 * Costs per request under load: one recv (a short read is taken to drain
 * the socket: sockets are edge-triggered and a later arrival is a new
 * edge), one send, no epoll_ctl (each socket is registered once for
 * IN|OUT|RDHUP, edge-triggered), no allocation (the read, header, body and
 * write buffers belong to the connection and are reused).
 *
 * Timeouts: a connection that has not completed a request within
 * `idle_timeout_s` of its previous reply (or of its accept) is closed —
 * idle keep-alive connections and slow senders ("slowloris") alike; bytes
 * trickling in do not extend it. So is one whose client has not read its
 * reply within `idle_timeout_s`. A request waiting for its reply (from the
 * handler) is never timed out by the server. Checked every 250 ms.
 *
 * A client that resets its connection while its reply is pending: the
 * connection is closed at once (it leaves trb_http_server_wait_idle's
 * count); the later trb_http_respond drops the reply. A client that only
 * shuts down its sending side still gets the reply, then the close.
 *
 * Out of file descriptors (EMFILE/ENFILE) on accept: the loop stops
 * watching the listening socket until its next 250 ms check, and the
 * connections wait in the kernel's backlog (no busy loop).
 *
 * Shutdown: trb_http_server_quiesce stops accepting connections (existing
 * keep-alive connections keep being served); trb_http_server_wait_idle waits
 * until every started request has had its reply sent; then
 * trb_http_server_destroy closes everything.
 *
 * Source: RFC 9112 (HTTP/1.1 message syntax, persistence, 100-continue,
 * chunked transfer coding); RFC 9110 §15 (status codes); RFC 6585 §5 (431);
 * epoll(7) (edge-triggered mode).
 */
#ifndef TRB_SRC_INGEST_HTTP_SERVER_H
#define TRB_SRC_INGEST_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"
#include "src/ingest/cloudevent.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most request headers passed to the handler (and seen by
 *  trb_http_request_header); more are ignored. */
#define TRB_HTTP_MAX_HEADERS 96

typedef struct trb_http_server_s trb_http_server_t;
typedef struct trb_http_request_s trb_http_request_t;

/**
 * Handler: called once per request on a server thread, after the whole
 * body arrived. Must call trb_http_respond exactly once (now, or later from
 * any thread). Must not block for long (it holds a server thread).
 */
typedef void (*trb_http_handler_cb)(void *user, trb_http_request_t *req);

/** Kept for callers of the libmicrohttpd-based server, where it chose
 *  between poll(2) and epoll; the server always uses epoll now and the
 *  value has no effect. */
#define TRB_HTTP_POLL_MAX_CONNECTIONS 1024

/** Largest request line plus headers, bytes (a per-connection buffer they
 *  are copied into); more is answered 431. */
#define TRB_HTTP_CONNECTION_MEMORY (16 * 1024)

/** Server settings. Zero-initialise; 0 / NULL means the default shown. */
typedef struct trb_http_server_config_s {
  /** Address to bind (IPv4 dotted quad); NULL = "0.0.0.0". */
  const char *host;
  /** TCP port; 0 = pick a free one (trb_http_server_port). */
  int port;
  /** Loop threads (default 2); each owns the connections it accepted. */
  int threads;
  /** Largest request body, bytes (default 1 MiB). */
  int64_t max_body_bytes;
  /** Most open connections (default 256). */
  int max_connections;
  /** Idle keep-alive connection timeout, seconds (default 60). */
  int idle_timeout_s;
  /** Called (server thread, with the handler's `user`) for each request
   *  refused 413 by the server; may be NULL. */
  void (*on_too_large)(void *user);
} trb_http_server_config_t;

/** One extra response header; both strings borrowed for the call. */
typedef struct trb_http_header_s {
  const char *name;
  const char *value;
} trb_http_header_t;

/**
 * Start listening.
 * Params:  cfg — may be NULL; copied. handler, user — borrowed; `user`
 *          must outlive the server.
 * Returns: OK; INVALID_ARGUMENT (bad host); UNAVAILABLE (cannot bind or
 *          start: port in use, ...).
 * Threading: thread-safe.
 */
grpc_status_code trb_http_server_start(const trb_http_server_config_t *cfg,
                                       trb_http_handler_cb handler, void *user,
                                       trb_http_server_t **out,
                                       trb_status_t *st);

/** The bound port. Thread-safe. */
int trb_http_server_port(const trb_http_server_t *s);

/**
 * Stop accepting new connections (the listening socket is closed);
 * connections already open are still served. Idempotent. Thread-safe;
 * not from a handler.
 */
void trb_http_server_quiesce(trb_http_server_t *s);

/** Requests handed to the handler and not yet answered. Thread-safe. */
int64_t trb_http_server_pending(trb_http_server_t *s);

/**
 * Wait until no request is in progress (every request that started has had
 * its reply sent, or its connection closed), at most `timeout_ms`
 * (negative = forever). Idle keep-alive connections do not count. Returns
 * true when idle. Thread-safe; not from a handler.
 */
bool trb_http_server_wait_idle(trb_http_server_t *s, int64_t timeout_ms);

/**
 * Stop: join the loop threads, then answer every request still pending
 * 503 (one non-blocking send, Connection: close) and close every
 * connection. NULL-safe.
 * Threading: exclusive; not from a handler; no trb_http_respond may run
 * concurrently or later (a pending request is answered here, and its
 * memory freed) — drain the producers of replies first
 * (trb_http_server_wait_idle, or stop them).
 */
void trb_http_server_destroy(trb_http_server_t *s);

/* Request accessors: valid from the handler call until trb_http_respond. */

/** "POST", "GET", ... Borrowed. */
const char *trb_http_request_method(const trb_http_request_t *r);
/** The path without the query string. Borrowed. */
const char *trb_http_request_path(const trb_http_request_t *r);
/** Header value by name (case-insensitive), or NULL. Borrowed. */
const char *trb_http_request_header(const trb_http_request_t *r,
                                    const char *name);
/** All headers (at most TRB_HTTP_MAX_HEADERS), in arrival order. */
const trb_ingest_kv_t *trb_http_request_headers(const trb_http_request_t *r,
                                                size_t *n);
/** The body (may be empty; NUL-terminated at body[len]). Borrowed; valid
 *  until trb_http_respond returns. */
const char *trb_http_request_body(const trb_http_request_t *r, size_t *len);

/**
 * Answer a request. Exactly once per request, from any thread (including
 * the handler, before it returns); the request must not be used afterwards.
 * Does not block: the reply is sent at once when the socket takes it, else
 * by the connection's loop thread. A reply to a client that is gone is
 * dropped.
 * Params:  status — HTTP status; content_type — may be NULL; body, len —
 *          copied; headers — `n_headers` extra headers, copied.
 *          close — ask the client to close the connection after it
 *          (the server closes it too); also implied when the request did
 *          not allow keep-alive (HTTP/1.0 without it, Connection: close).
 *          A HEAD request's reply carries no body.
 */
void trb_http_respond(trb_http_request_t *r, int status,
                      const char *content_type, const char *body, size_t len,
                      const trb_http_header_t *headers, size_t n_headers,
                      bool close);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_HTTP_SERVER_H */
