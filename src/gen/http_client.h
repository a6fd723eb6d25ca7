/*
 * http_client.h — a small blocking HTTP/1.1 client for one keep-alive
 * connection to a plaintext IPv4 server (what `tributary gen` and
 * `tributary up` use to POST events to ingest and to read /metrics).
 *
 * Requests carry Content-Length; replies are read by Content-Length, by
 * chunked transfer coding, or to the end of the connection. A request on a
 * kept-alive connection the server closed meanwhile (nothing of the reply
 * read yet) is sent once more on a fresh connection — POSTs to ingest are
 * idempotent at the transport level only in that case (nothing was
 * answered), which is the standard client behaviour (RFC 9112 §9.3.1).
 *
 * Source: RFC 9112 (HTTP/1.1 message syntax, chunked coding, persistence).
 * Threading: a connection is used by one thread at a time.
 */
#ifndef TRB_SRC_GEN_HTTP_CLIENT_H
#define TRB_SRC_GEN_HTTP_CLIENT_H

#include <stddef.h>

#include "src/common/arena.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trb_http_conn_s trb_http_conn_t;

/**
 * Create a connection object for `host` (dotted IPv4 or "localhost") and
 * `port`; connects lazily at the first request.
 * Returns: the connection (free with trb_http_conn_destroy); NULL when out
 *          of memory or `host` is not an IPv4 address.
 */
trb_http_conn_t *trb_http_conn_create(const char *host, int port);

/**
 * Send one request and read its reply.
 * Params:  method, path — e.g. "POST", "/events"; borrowed.
 *          content_type — NULL for none (and no body expected).
 *          body, len — request body (len bytes; may be 0).
 *          timeout_ms — for connect, send and each read (> 0).
 *          status — receives the HTTP status code.
 *          resp — receives the reply body (reset first); may be NULL.
 * Returns: 0; -ECONNREFUSED, -ETIMEDOUT, -ECONNRESET, -EPROTO (malformed
 *          reply), -ENOMEM, or another -errno. After an error the
 *          connection is closed and reopened by the next request.
 */
int trb_http_request(trb_http_conn_t *c, const char *method, const char *path,
                     const char *content_type, const char *body, size_t len,
                     int timeout_ms, int *status, trb_buf_t *resp);

/** Close and free. NULL-safe. */
void trb_http_conn_destroy(trb_http_conn_t *c);

/**
 * One-shot GET: open, request, close.
 * Returns: as trb_http_request.
 */
int trb_http_get(const char *host, int port, const char *path, int timeout_ms,
                 int *status, trb_buf_t *resp);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_GEN_HTTP_CLIENT_H */
