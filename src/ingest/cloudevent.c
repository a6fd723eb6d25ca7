/*
 * cloudevent.c — see cloudevent.h.
 */
#include "src/ingest/cloudevent.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool has_ce_prefix(const char *name) {
  return strncasecmp(name, "ce-", 3) == 0 && name[3] != '\0';
}

bool trb_ingest_ce_is_binary(const trb_ingest_kv_t *headers, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (headers[i].name && has_ce_prefix(headers[i].name)) return true;
  }
  return false;
}

const char *trb_ingest_ce_attr(const trb_ingest_ce_t *ce, const char *name) {
  for (size_t i = 0; i < ce->n_attrs; i++) {
    if (strcasecmp(ce->attrs[i].name, name) == 0) return ce->attrs[i].value;
  }
  return NULL;
}

static grpc_status_code add_attr(trb_ingest_ce_t *ce, const char *name,
                                 const char *value, trb_status_t *st) {
  if (trb_ingest_ce_attr(ce, name)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "CloudEvent attribute %s given twice", name);
  }
  if (ce->n_attrs == TRB_INGEST_CE_MAX_ATTRS) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "more than %d CloudEvent attributes",
                          TRB_INGEST_CE_MAX_ATTRS);
  }
  ce->attrs[ce->n_attrs].name = name;
  ce->attrs[ce->n_attrs].value = value;
  ce->n_attrs++;
  return GRPC_STATUS_OK;
}

/* Fill the well-known pointers and check the required attributes. */
static grpc_status_code finish(trb_ingest_ce_t *ce, const char *how,
                               trb_status_t *st) {
  ce->specversion = trb_ingest_ce_attr(ce, "specversion");
  ce->id = trb_ingest_ce_attr(ce, "id");
  ce->source = trb_ingest_ce_attr(ce, "source");
  ce->type = trb_ingest_ce_attr(ce, "type");
  ce->subject = trb_ingest_ce_attr(ce, "subject");
  ce->time = trb_ingest_ce_attr(ce, "time");
  ce->datacontenttype = trb_ingest_ce_attr(ce, "datacontenttype");
  ce->dataschema = trb_ingest_ce_attr(ce, "dataschema");
  static const char *const required[] = {"specversion", "id", "source",
                                         "type"};
  for (size_t i = 0; i < 4; i++) {
    const char *v = trb_ingest_ce_attr(ce, required[i]);
    if (!v || !*v) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "CloudEvent has no %s%s", how, required[i]);
    }
  }
  if (strcmp(ce->specversion, "1.0") != 0) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "unsupported CloudEvent specversion \"%.32s\" "
                          "(want 1.0)", ce->specversion);
  }
  return GRPC_STATUS_OK;
}

grpc_status_code trb_ingest_ce_from_headers(const trb_ingest_kv_t *headers,
                                            size_t n, const char *content_type,
                                            const uint8_t *body, size_t len,
                                            trb_ingest_ce_t *out,
                                            trb_status_t *st) {
  for (size_t i = 0; i < n; i++) {
    if (!headers[i].name || !has_ce_prefix(headers[i].name)) continue;
    grpc_status_code c =
        add_attr(out, headers[i].name + 3,
                 headers[i].value ? headers[i].value : "", st);
    if (c != GRPC_STATUS_OK) return c;
  }
  /* Binary mode: Content-Type is the datacontenttype (binding §3.1.1). */
  if (content_type && *content_type && !trb_ingest_ce_attr(out, "datacontenttype")) {
    grpc_status_code c = add_attr(out, "datacontenttype", content_type, st);
    if (c != GRPC_STATUS_OK) return c;
  }
  out->data = body;
  out->data_len = len;
  out->structured = false;
  return finish(out, "ce-", st);
}

grpc_status_code trb_ingest_ce_from_json(const json_t *root,
                                         trb_ingest_ce_t *out,
                                         trb_status_t *st) {
  if (!json_is_object(root)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "CloudEvent is not a JSON object");
  }
  out->structured = true;
  const char *key;
  const json_t *val;
  json_object_foreach((json_t *)root, key, val) {
    if (strcmp(key, "data") == 0) {
      out->data_json = val;
      continue;
    }
    if (strcmp(key, "data_base64") == 0) {
      if (!json_is_string(val)) {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "CloudEvent data_base64 is not a string");
      }
      out->data_b64 = json_string_value(val);
      continue;
    }
    if (json_is_null(val)) continue; /* unset attribute */
    if (!json_is_string(val)) {
      /* Attribute values are strings in JSON except for extension
       * integers and booleans, which ingest does not keep typed. */
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "CloudEvent attribute %s is not a string", key);
    }
    grpc_status_code c = add_attr(out, key, json_string_value(val), st);
    if (c != GRPC_STATUS_OK) return c;
  }
  if (out->data_json && out->data_b64) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "CloudEvent has both data and data_base64");
  }
  return finish(out, "", st);
}

bool trb_ingest_ce_is_firestore(const char *type) {
  static const char prefix[] = "google.cloud.firestore.document.v1.";
  return type && strncmp(type, prefix, sizeof(prefix) - 1) == 0;
}

static const char *legacy_str(const json_t *root, const json_t *ctx,
                              const char *key) {
  const json_t *v = json_object_get(root, key);
  if (!v && ctx) v = json_object_get(ctx, key);
  if (json_is_object(v)) v = json_object_get(v, "name"); /* resource */
  return json_is_string(v) ? json_string_value(v) : NULL;
}

bool trb_ingest_ce_from_legacy_firestore(const json_t *root,
                                         trb_ingest_ce_t *out, char *scratch) {
  static const char kPrefix[] = "providers/cloud.firestore/eventTypes/document.";
  static const char *const kMap[][2] = {{"create", "created"},
                                        {"update", "updated"},
                                        {"delete", "deleted"},
                                        {"write", "written"}};
  if (!json_is_object(root)) return false;
  const json_t *ctx = json_object_get(root, "context");
  if (!json_is_object(ctx)) ctx = NULL;
  const char *type = legacy_str(root, ctx, "eventType");
  const char *id = legacy_str(root, ctx, "eventId");
  const char *resource = legacy_str(root, ctx, "resource");
  const char *time = legacy_str(root, ctx, "timestamp");
  const json_t *data = json_object_get(root, "data");
  if (!type || !id || !resource || !json_is_object(data) ||
      strncmp(type, kPrefix, sizeof(kPrefix) - 1) != 0) {
    return false;
  }
  const char *verb = type + sizeof(kPrefix) - 1;
  const char *mapped = NULL;
  for (size_t i = 0; i < 4; i++) {
    if (strcmp(verb, kMap[i][0]) == 0) mapped = kMap[i][1];
  }
  const char *docs = strstr(resource, "/documents/");
  if (!mapped || !docs) return false;
  char *ce_type = scratch;
  int n1 = snprintf(ce_type, 64, "google.cloud.firestore.document.v1.%s", mapped);
  char *source = scratch + n1 + 1;
  size_t room = TRB_INGEST_CE_LEGACY_SCRATCH - (size_t)n1 - 1;
  int n2 = snprintf(source, room, "//firestore.googleapis.com/%.*s",
                    (int)(docs - resource), resource);
  if (n2 < 0 || (size_t)n2 + 1 >= room) return false;
  char *subject = source + n2 + 1;
  room -= (size_t)n2 + 1;
  int n3 = snprintf(subject, room, "%s", docs + 1);
  if (n3 < 0 || (size_t)n3 >= room) return false;
  out->n_attrs = 0;
  out->attrs[out->n_attrs++] = (trb_ingest_kv_t){"specversion", "1.0"};
  out->attrs[out->n_attrs++] = (trb_ingest_kv_t){"id", id};
  out->attrs[out->n_attrs++] = (trb_ingest_kv_t){"source", source};
  out->attrs[out->n_attrs++] = (trb_ingest_kv_t){"type", ce_type};
  out->attrs[out->n_attrs++] = (trb_ingest_kv_t){"subject", subject};
  if (time) out->attrs[out->n_attrs++] = (trb_ingest_kv_t){"time", time};
  out->attrs[out->n_attrs++] =
      (trb_ingest_kv_t){"datacontenttype", "application/json"};
  out->data_json = data;
  out->structured = true;
  return finish(out, "", NULL) == GRPC_STATUS_OK;
}
