/*
 * routes.h — pure parsing of ingest routes (no I/O): which request path
 * publishes to which Pub/Sub topic, and how.
 *
 * Spec text (flag --routes / env TRB_INGEST_ROUTES): comma-separated
 * `PATH=TOPIC[:MODE]`, e.g. "/=issues,/events=backend-events:raw,
 * /push=issues-replay:push". PATH starts with '/' and matches exactly
 * (printable ASCII without quotes, backslash, '?' or '#');
 * TOPIC is a topic id (expanded to projects/{project}/topics/{id}) or a
 * full "projects/p/topics/t" name. MODE:
 *   wrap  (default) JSON objects → the issues envelope (source manual-api);
 *         Firestore CloudEvents → the envelope (source firestore-eventarc);
 *         other CloudEvents pass through with their attributes.
 *   raw   JSON objects published unchanged (a top-level string
 *         `event_type` is copied to the attribute `event_type`, which the
 *         streamer routes by); CloudEvents pass through.
 *   push  Pub/Sub push bodies: message.data decoded and republished with
 *         its attributes.
 * Threading: thread-safe.
 */
#ifndef TRB_SRC_INGEST_ROUTES_H
#define TRB_SRC_INGEST_ROUTES_H

#include <stddef.h>

#include <grpc/status.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most routes. */
#define TRB_INGEST_MAX_ROUTES 16

typedef enum trb_ingest_mode_e {
  TRB_INGEST_MODE_WRAP = 0,
  TRB_INGEST_MODE_RAW = 1,
  TRB_INGEST_MODE_PUSH = 2,
} trb_ingest_mode_t;

/** One route; strings owned by the trb_ingest_routes_t. */
typedef struct trb_ingest_route_s {
  char *path;
  char *topic; /* full name */
  trb_ingest_mode_t mode;
} trb_ingest_route_t;

typedef struct trb_ingest_routes_s {
  trb_ingest_route_t routes[TRB_INGEST_MAX_ROUTES];
  size_t n;
} trb_ingest_routes_t;

/**
 * Parse `spec` (see the file comment) into `out` (zero-initialised).
 * Params:  project — expands topic ids; borrowed.
 * Returns: OK; INVALID_ARGUMENT ("route 2 \"x\": path must start with
 *          '/'", unknown mode, duplicate path, empty topic, too many);
 *          RESOURCE_EXHAUSTED. On error `out` may be partly filled:
 *          trb_ingest_routes_deinit it.
 */
grpc_status_code trb_ingest_routes_parse(const char *spec,
                                         const char *project,
                                         trb_ingest_routes_t *out,
                                         trb_status_t *st);

/** The route for `path`, or NULL. */
const trb_ingest_route_t *trb_ingest_routes_match(
    const trb_ingest_routes_t *r, const char *path);

/** Name of a mode ("wrap", "raw", "push"). */
const char *trb_ingest_mode_name(trb_ingest_mode_t m);

/** Free the strings. NULL-safe. */
void trb_ingest_routes_deinit(trb_ingest_routes_t *r);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_ROUTES_H */
