/*
 * status.h — Tributary's value-type status: a gRPC status code plus an inline
 * message. One code space covers the Pub/Sub and BigQuery clients, the
 * emulator and the HTTP mapping at ingest (STYLE.md 3.3).
 *
 * Threading: all functions are thread-compatible (a trb_status_t belongs to
 * whoever holds it); the code-name and mapping functions are thread-safe.
 * Source: codes and their HTTP equivalents mirror include/grpc/status.h and
 * google/rpc/code.proto.
 */
#ifndef TRB_SRC_COMMON_STATUS_H
#define TRB_SRC_COMMON_STATUS_H

#include <stdarg.h>
#include <stdbool.h>

#include <grpc/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Capacity of trb_status_t.msg in bytes, including the terminating NUL. */
#define TRB_STATUS_MSG_MAX 256

/**
 * A status: `code` (GRPC_STATUS_OK = 0 on success) and a NUL-terminated
 * human-readable `msg` (empty when OK). Plain value: copy with `=`.
 */
typedef struct trb_status_s {
  grpc_status_code code;
  char msg[TRB_STATUS_MSG_MAX];
} trb_status_t;

/**
 * Set `st` to `code` with a printf-style message (truncated to fit).
 *
 * Params:  st — may be NULL (then this is a no-op); fmt — printf format.
 * Returns: `code`, so callers can write `return trb_status_set(st, ...)`.
 */
grpc_status_code trb_status_set(trb_status_t *st, grpc_status_code code,
                                const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** As trb_status_set, with a va_list. */
grpc_status_code trb_status_setv(trb_status_t *st, grpc_status_code code,
                                 const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/** Reset `st` (may be NULL) to OK with an empty message. */
void trb_status_clear(trb_status_t *st);

/**
 * Prefix the message of `st` (may be NULL) with "`what`: ", keeping the
 * code — context added on the way up ("publish projects/p/topics/t: ...").
 */
void trb_status_prefix(trb_status_t *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * Canonical upper-case name of a status code ("UNAVAILABLE"), or
 * "UNKNOWN_CODE" outside 0..16. Returns a static string.
 */
const char *trb_status_code_name(grpc_status_code code);

/**
 * Parse a canonical name ("NOT_FOUND", case-insensitive) into `*out`.
 * Returns true on success; false (and `*out` untouched) otherwise.
 */
bool trb_status_code_parse(const char *name, grpc_status_code *out);

/**
 * Map a positive or negative errno value to a status code: EAGAIN/EINTR/
 * ECONNRESET/ECONNREFUSED/EPIPE/ETIMEDOUT → UNAVAILABLE or DEADLINE_EXCEEDED,
 * ENOSPC/ENOMEM/EMFILE → RESOURCE_EXHAUSTED, ENOENT → NOT_FOUND, EEXIST →
 * ALREADY_EXISTS, EACCES/EPERM → PERMISSION_DENIED, EINVAL → INVALID_ARGUMENT,
 * ECANCELED → CANCELLED, 0 → OK, anything else → INTERNAL.
 */
grpc_status_code trb_status_from_errno(int err);

/**
 * The HTTP status that corresponds to `code` (google/rpc/code.proto's table:
 * OK 200, INVALID_ARGUMENT 400, UNAUTHENTICATED 401, ..., UNAVAILABLE 503).
 * Used by ingest replies. Unknown codes map to 500.
 */
int trb_status_http_code(grpc_status_code code);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_COMMON_STATUS_H */
