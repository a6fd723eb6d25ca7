/*
 * http_server.h — the HTTP/1.1 layer of `tributary ingest`, over GNU
 * libmicrohttpd (Debian libmicrohttpd-dev 0.9.75): keep-alive, a pool of
 * `threads` polling threads, request bodies buffered up to a limit,
 * and asynchronous replies (the handler may answer later, from any thread;
 * the connection is suspended meanwhile and costs no thread).
 *
 * Model: for every request the server reads the whole body, then calls the
 * handler once on a server thread. The handler reads the request through the
 * accessors below (valid only during that call) and, then or later, calls
 * trb_http_respond exactly once.
 *
 * A body larger than `max_body_bytes` (by Content-Length or as it arrives)
 * is answered 413 by the server itself, with Connection: close — at once
 * when the client waits for "100 Continue" or declares more than 16 times
 * the limit, else after reading and dropping the body (so the client sees
 * the reply instead of a reset).
 *
 * Polling: poll(2) while `max_connections` ≤ TRB_HTTP_POLL_MAX_CONNECTIONS,
 * else epoll. A request waiting for its reply is a suspended connection;
 * with epoll, libmicrohttpd takes it out of the epoll set and puts it back
 * (two epoll_ctl calls per request, plus a read that finds nothing), while
 * poll(2) rebuilds its set each round, which costs O(connections) per
 * round but is shared by every request answered in that round — cheaper
 * under load for a few hundred connections (perf/ingest_bench/README.md).
 *
 * Memory: each connection has a TRB_HTTP_CONNECTION_MEMORY pool for the
 * request line, headers and read/write buffers (libmicrohttpd zeroes it
 * for every request, so it is kept small); a request whose headers do not
 * fit is refused by libmicrohttpd (431). Bodies are buffered separately,
 * up to `max_body_bytes`.
 *
 * Shutdown: trb_http_server_quiesce stops accepting connections (existing
 * keep-alive connections keep being served); trb_http_server_wait_idle waits
 * until every started request has had its reply sent; then
 * trb_http_server_destroy closes everything.
 *
 * Source: RFC 9112 (HTTP/1.1); libmicrohttpd manual (suspend/resume,
 * MHD_quiesce_daemon).
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

/** Most request headers passed to the handler; more are ignored. */
#define TRB_HTTP_MAX_HEADERS 96

typedef struct trb_http_server_s trb_http_server_t;
typedef struct trb_http_request_s trb_http_request_t;

/**
 * Handler: called once per request on a server thread, after the whole
 * body arrived. Must call trb_http_respond exactly once (now, or later from
 * any thread). Must not block for long (it holds a server thread).
 */
typedef void (*trb_http_handler_cb)(void *user, trb_http_request_t *req);

/** Above this many connections the server polls with epoll, not poll(2). */
#define TRB_HTTP_POLL_MAX_CONNECTIONS 1024

/** Bytes of libmicrohttpd memory pool per connection (headers, buffers). */
#define TRB_HTTP_CONNECTION_MEMORY (16 * 1024)

/** Server settings. Zero-initialise; 0 / NULL means the default shown. */
typedef struct trb_http_server_config_s {
  /** Address to bind (IPv4 dotted quad); NULL = "0.0.0.0". */
  const char *host;
  /** TCP port; 0 = pick a free one (trb_http_server_port). */
  int port;
  /** Polling threads (default 2). */
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
 * Stop: close every connection and join the threads. Requests still
 * pending are answered 503 first so their connections can close. NULL-safe.
 * Threading: exclusive; not from a handler.
 */
void trb_http_server_destroy(trb_http_server_t *s);

/* Request accessors: valid only during the handler call. */

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
 * Answer a request. Exactly once per request, from any thread; the request
 * must not be used afterwards.
 * Params:  status — HTTP status; content_type — may be NULL; body, len —
 *          copied; headers — `n_headers` extra headers, copied.
 *          close — ask the client to close the connection after it.
 */
void trb_http_respond(trb_http_request_t *r, int status,
                      const char *content_type, const char *body, size_t len,
                      const trb_http_header_t *headers, size_t n_headers,
                      bool close);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_HTTP_SERVER_H */
