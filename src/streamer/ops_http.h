/*
 * ops_http.h — the streamer's operations endpoints over HTTP/1.1 (the
 * ingest's HTTP/1.1 server layer, src/ingest/http_server.h):
 *
 *   GET /healthz  200 "ok" while the process runs.
 *   GET /readyz   200 {"ready":true} when a streamer is attached and
 *                 trb_streamer_check_ready says so; otherwise 503
 *                 {"ready":false,"code":"<grpc code>","reason":"..."}
 *                 ("starting" before attach, "draining" once stopped).
 *   GET /metrics  200, Prometheus text format 0.0.4 (metrics.h); before a
 *                 streamer is attached every counter is 0 and ready is 0.
 *   Other paths 404; other methods than GET/HEAD 405.
 *
 * The server starts before the streamer (liveness during a long WAL
 * replay), the streamer is attached once started, and detached (or the
 * server destroyed) before trb_streamer_destroy.
 *
 * Source: Prometheus text exposition format 0.0.4; Kubernetes liveness and
 * readiness probes (any 200-399 is success).
 */
#ifndef TRB_SRC_STREAMER_OPS_HTTP_H
#define TRB_SRC_STREAMER_OPS_HTTP_H

#include <grpc/status.h>

#include "src/common/status.h"
#include "src/streamer/streamer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trb_stream_ops_s trb_stream_ops_t;

/**
 * Start listening.
 * Params:  host — IPv4 address to bind; NULL = "0.0.0.0". port — TCP port;
 *          0 = any free one (trb_stream_ops_port).
 * Returns: OK; INVALID_ARGUMENT (bad host or port); UNAVAILABLE (cannot
 *          bind: port in use, ...); RESOURCE_EXHAUSTED.
 * Threading: thread-safe.
 */
grpc_status_code trb_stream_ops_start(const char *host, int port,
                                      trb_stream_ops_t **out,
                                      trb_status_t *st);

/** The bound port. Thread-safe. */
int trb_stream_ops_port(const trb_stream_ops_t *o);

/**
 * Attach a started streamer (borrowed), or detach with NULL. Detaching
 * waits for requests using the previous streamer to finish, so it may be
 * destroyed afterwards.
 * Threading: thread-safe; not from a request handler.
 */
void trb_stream_ops_attach(trb_stream_ops_t *o, trb_streamer_t *s);

/**
 * Stop: close the listening socket and every connection, join the server
 * threads. NULL-safe.
 * Threading: exclusive.
 */
void trb_stream_ops_destroy(trb_stream_ops_t *o);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_STREAMER_OPS_HTTP_H */
