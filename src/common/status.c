/*
 * status.c — value-type status (see status.h).
 */
#include "src/common/status.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

#define N_CODES ((int)(sizeof(code_names) / sizeof(code_names[0])))

grpc_status_code trb_status_setv(trb_status_t *st, grpc_status_code code,
                                 const char *fmt, va_list ap) {
  if (st == NULL) return code;
  st->code = code;
  vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
  return code;
}

grpc_status_code trb_status_set(trb_status_t *st, grpc_status_code code,
                                const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  trb_status_setv(st, code, fmt, ap);
  va_end(ap);
  return code;
}

void trb_status_clear(trb_status_t *st) {
  if (st == NULL) return;
  st->code = GRPC_STATUS_OK;
  st->msg[0] = '\0';
}

void trb_status_prefix(trb_status_t *st, const char *fmt, ...) {
  char prefix[TRB_STATUS_MSG_MAX];
  char old[TRB_STATUS_MSG_MAX];
  va_list ap;

  if (st == NULL) return;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof(prefix), fmt, ap);
  va_end(ap);
  memcpy(old, st->msg, sizeof(old));
  snprintf(st->msg, sizeof(st->msg), "%s: %s", prefix, old);
}

const char *trb_status_code_name(grpc_status_code code) {
  if ((int)code < 0 || (int)code >= N_CODES) return "UNKNOWN_CODE";
  return code_names[code];
}

bool trb_status_code_parse(const char *name, grpc_status_code *out) {
  for (int i = 0; i < N_CODES; i++) {
    if (strcasecmp(name, code_names[i]) == 0) {
      *out = (grpc_status_code)i;
      return true;
    }
  }
  return false;
}

grpc_status_code trb_status_from_errno(int err) {
  if (err < 0) err = -err;
  switch (err) {
    case 0:
      return GRPC_STATUS_OK;
    case EAGAIN:
    case EINTR:
    case ECONNRESET:
    case ECONNREFUSED:
    case ECONNABORTED:
    case EPIPE:
    case ENETUNREACH:
    case EHOSTUNREACH:
      return GRPC_STATUS_UNAVAILABLE;
    case ETIMEDOUT:
      return GRPC_STATUS_DEADLINE_EXCEEDED;
    case ENOSPC:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EDQUOT:
      return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case ENOENT:
      return GRPC_STATUS_NOT_FOUND;
    case EEXIST:
      return GRPC_STATUS_ALREADY_EXISTS;
    case EACCES:
    case EPERM:
      return GRPC_STATUS_PERMISSION_DENIED;
    case EINVAL:
    case ERANGE:
      return GRPC_STATUS_INVALID_ARGUMENT;
    case ECANCELED:
      return GRPC_STATUS_CANCELLED;
    default:
      return GRPC_STATUS_INTERNAL;
  }
}

int trb_status_http_code(grpc_status_code code) {
  switch (code) {
    case GRPC_STATUS_OK:
      return 200;
    case GRPC_STATUS_CANCELLED:
      return 499;
    case GRPC_STATUS_INVALID_ARGUMENT:
    case GRPC_STATUS_FAILED_PRECONDITION:
    case GRPC_STATUS_OUT_OF_RANGE:
      return 400;
    case GRPC_STATUS_DEADLINE_EXCEEDED:
      return 504;
    case GRPC_STATUS_NOT_FOUND:
      return 404;
    case GRPC_STATUS_ALREADY_EXISTS:
    case GRPC_STATUS_ABORTED:
      return 409;
    case GRPC_STATUS_PERMISSION_DENIED:
      return 403;
    case GRPC_STATUS_UNAUTHENTICATED:
      return 401;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
      return 429;
    case GRPC_STATUS_UNIMPLEMENTED:
      return 501;
    case GRPC_STATUS_UNAVAILABLE:
      return 503;
    case GRPC_STATUS_UNKNOWN:
    case GRPC_STATUS_INTERNAL:
    case GRPC_STATUS_DATA_LOSS:
    default:
      return 500;
  }
}
