/*
 * details.c — google.rpc.Status codec for `grpc-status-details-bin`
 * (see details.h).
 */
#include "src/rpc/details.h"

#include <stdlib.h>
#include <string.h>

#include "google/rpc/status.pb.h"
#include "src/common/alloc.h"
#include "src/rpc/pb.h"

grpc_status_code trb_rpc_status_details_encode(grpc_status_code code,
                                               const char *message,
                                               const trb_rpc_any_t *details,
                                               size_t n_details, uint8_t **out,
                                               size_t *out_len,
                                               trb_status_t *st) {
  google_rpc_Status s = google_rpc_Status_init_zero;
  google_protobuf_Any *any = NULL;
  grpc_status_code rc;

  *out = NULL;
  *out_len = 0;
  if (n_details > PB_SIZE_MAX) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "status details: %zu details is too many",
                          n_details);
  }
  if (n_details > 0) {
    any = trb_calloc(n_details, sizeof(*any));
    if (any == NULL) {
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                            "status details: out of memory");
    }
    for (size_t i = 0; i < n_details; i++) {
      any[i].type_url = (char *)details[i].type_url;
      any[i].value.data = details[i].value;
      any[i].value.len = details[i].value_len;
    }
  }
  s.code = (int32_t)code;
  s.message = (char *)(message ? message : "");
  s.details_count = (pb_size_t)n_details;
  s.details = any;
  rc = trb_pb_encode(google_rpc_Status_fields, &s, out, out_len, st);
  trb_free(any);
  return rc;
}

grpc_status_code trb_rpc_status_details_decode(const uint8_t *buf, size_t len,
                                               trb_rpc_status_details_t *out,
                                               trb_status_t *st) {
  google_rpc_Status *s;
  grpc_status_code rc;

  memset(out, 0, sizeof(*out));
  s = trb_calloc(1, sizeof(*s));
  if (s == NULL) goto oom;
  out->impl_ = s;
  rc = trb_pb_decode(google_rpc_Status_fields, buf, len, s, st);
  if (rc != GRPC_STATUS_OK) {
    trb_status_prefix(st, "google.rpc.Status");
    return rc;
  }
  out->code = s->code;
  /* Copy what the views point at: the caller's buffer may go away. */
  out->message = trb_strdup(s->message ? s->message : "");
  if (out->message == NULL) goto oom;
  if (s->details_count > 0) {
    out->details = trb_calloc(s->details_count, sizeof(*out->details));
    if (out->details == NULL) goto oom;
    for (pb_size_t i = 0; i < s->details_count; i++) {
      const google_protobuf_Any *a = &s->details[i];
      uint8_t *v = trb_malloc(a->value.len ? a->value.len : 1);
      char *url = trb_strdup(a->type_url ? a->type_url : "");
      if (v == NULL || url == NULL) {
        trb_free(v);
        trb_free(url);
        goto oom;
      }
      if (a->value.len) memcpy(v, a->value.data, a->value.len);
      out->details[i].type_url = url;
      out->details[i].value = v;
      out->details[i].value_len = a->value.len;
      out->n_details = i + 1;
    }
  }
  return GRPC_STATUS_OK;
oom:
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "google.rpc.Status: out of memory");
}

void trb_rpc_status_details_deinit(trb_rpc_status_details_t *d) {
  if (d == NULL) return;
  for (size_t i = 0; i < d->n_details; i++) {
    trb_free((void *)d->details[i].type_url);
    trb_free((void *)d->details[i].value);
  }
  trb_free(d->details);
  trb_free(d->message);
  if (d->impl_) {
    trb_pb_release(google_rpc_Status_fields, d->impl_);
    trb_free(d->impl_);
  }
  memset(d, 0, sizeof(*d));
}

const trb_rpc_any_t *trb_rpc_status_details_find(
    const trb_rpc_status_details_t *d, const char *type_url) {
  size_t plen = strlen(TRB_RPC_TYPE_URL_PREFIX);
  for (size_t i = 0; i < d->n_details; i++) {
    const char *u = d->details[i].type_url;
    if (strcmp(u, type_url) == 0) return &d->details[i];
    if (strncmp(u, TRB_RPC_TYPE_URL_PREFIX, plen) == 0 &&
        strcmp(u + plen, type_url) == 0) {
      return &d->details[i];
    }
  }
  return NULL;
}
