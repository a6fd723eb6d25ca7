/*
 * firestore.c — see firestore.h.
 */
#include "src/ingest/firestore.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "google/events/cloud/firestore/v1/data.pb.h"
#include "src/common/alloc.h"
#include "src/ingest/json_input.h"
#include "src/rpc/pb.h"

typedef google_events_cloud_firestore_v1_DocumentEventData event_pb_t;
typedef google_events_cloud_firestore_v1_Document doc_pb_t;
typedef google_events_cloud_firestore_v1_Value value_pb_t;

void trb_ingest_timestamp_format(int64_t seconds, int32_t nanos,
                                 char out[40]) {
  time_t t = (time_t)seconds;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) memset(&tm, 0, sizeof(tm));
  int n = snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec);
  if (n < 0 || n >= 40) n = 0;
  if (nanos < 0 || nanos > 999999999) nanos = 0;
  if (nanos == 0) {
    snprintf(out + n, (size_t)(40 - n), "Z");
  } else if (nanos % 1000000 == 0) {
    snprintf(out + n, (size_t)(40 - n), ".%03dZ", nanos / 1000000);
  } else if (nanos % 1000 == 0) {
    snprintf(out + n, (size_t)(40 - n), ".%06dZ", nanos / 1000);
  } else {
    snprintf(out + n, (size_t)(40 - n), ".%09dZ", nanos);
  }
}

/* ---------------------------------------------------------------------- */
/* Protobuf input                                                          */
/* ---------------------------------------------------------------------- */

/* Message kinds of data.proto, for the depth pre-scan. */
enum { K_EVENT, K_DOC, K_DOC_ENTRY, K_VALUE, K_MAP, K_MAP_ENTRY, K_ARRAY,
       K_LEAF };

static int child_kind(int kind, uint32_t field) {
  switch (kind) {
    case K_EVENT: return (field == 1 || field == 2) ? K_DOC : K_LEAF;
    case K_DOC: return field == 2 ? K_DOC_ENTRY : K_LEAF;
    case K_DOC_ENTRY: return field == 2 ? K_VALUE : K_LEAF;
    case K_VALUE: return field == 6 ? K_MAP : field == 9 ? K_ARRAY : K_LEAF;
    case K_MAP: return field == 1 ? K_MAP_ENTRY : K_LEAF;
    case K_MAP_ENTRY: return field == 2 ? K_VALUE : K_LEAF;
    case K_ARRAY: return field == 1 ? K_VALUE : K_LEAF;
    default: return K_LEAF;
  }
}

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    r |= (uint64_t)(b & 0x7F) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false;
}

/* Whether Values nest deeper than the limit. Malformed wire data stops the
 * scan without an error: nanopb reports it next, with its reason. The
 * recursion is bounded by the limit (three frames per Value level). */
static bool too_deep(const uint8_t *p, size_t len, int kind, int depth) {
  if (kind == K_VALUE && ++depth > TRB_INGEST_FIRESTORE_MAX_DEPTH) return true;
  const uint8_t *end = p + len;
  while (p < end) {
    uint64_t key, n;
    if (!read_varint(&p, end, &key)) return false;
    switch (key & 7) {
      case 0:
        if (!read_varint(&p, end, &n)) return false;
        break;
      case 1:
        if (end - p < 8) return false;
        p += 8;
        break;
      case 5:
        if (end - p < 4) return false;
        p += 4;
        break;
      case 2: {
        if (!read_varint(&p, end, &n) || n > (uint64_t)(end - p)) return false;
        int ck = child_kind(kind, (uint32_t)(key >> 3));
        if (ck != K_LEAF && too_deep(p, (size_t)n, ck, depth)) return true;
        p += n;
        break;
      }
      default:
        return false;
    }
  }
  return false;
}

static const char kB64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *base64_json(const uint8_t *d, size_t n) {
  size_t olen = (n + 2) / 3 * 4;
  char *s = trb_malloc(olen + 1);
  if (!s) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16;
    if (i + 1 < n) v |= (uint32_t)d[i + 1] << 8;
    if (i + 2 < n) v |= d[i + 2];
    s[o++] = kB64[(v >> 18) & 63];
    s[o++] = kB64[(v >> 12) & 63];
    s[o++] = i + 1 < n ? kB64[(v >> 6) & 63] : '=';
    s[o++] = i + 2 < n ? kB64[v & 63] : '=';
  }
  json_t *j = json_stringn(s, o);
  trb_free(s);
  return j;
}

/* Renders set *err (a static reason) and return NULL on failure. */
static json_t *utf8_string(const char *s, const char **err) {
  if (!s) s = "";
  size_t len = strlen(s);
  if (!trb_ingest_utf8_valid(s, len, NULL)) {
    *err = "a string is not valid UTF-8";
    return NULL;
  }
  json_t *j = json_stringn(s, len);
  if (!j) *err = "out of memory";
  return j;
}

static json_t *double_json(double d) {
  if (isnan(d)) return json_string("NaN");
  if (isinf(d)) return json_string(d > 0 ? "Infinity" : "-Infinity");
  return json_real(d);
}

static json_t *ts_json(const google_protobuf_Timestamp *t) {
  char buf[40];
  trb_ingest_timestamp_format(t->seconds, t->nanos, buf);
  return json_string(buf);
}

static int set_new(json_t *o, const char *k, json_t *v) {
  if (!v) return -1;
  return json_object_set_new(o, k, v);
}

static json_t *render_pb_value(const value_pb_t *v, const char **err);

static json_t *render_pb_map(const google_events_cloud_firestore_v1_MapValue *m,
                             const char **err) {
  json_t *o = json_object();
  if (!o) return NULL;
  for (pb_size_t i = 0; i < m->fields_count; i++) {
    const google_events_cloud_firestore_v1_MapValue_FieldsEntry *e = &m->fields[i];
    json_t *v = e->has_value ? render_pb_value(&e->value, err) : json_null();
    const char *key = e->key ? e->key : "";
    if (!v || !trb_ingest_utf8_valid(key, strlen(key), NULL) ||
        json_object_set_new(o, key, v) != 0) {
      if (!*err) *err = "a field name is not valid UTF-8";
      json_decref(o);
      return NULL;
    }
  }
  return o;
}

static json_t *render_pb_value(const value_pb_t *v, const char **err) {
  switch (v->which_value_type) {
    case google_events_cloud_firestore_v1_Value_null_value_tag:
    case 0: /* no value set */
      return json_null();
    case google_events_cloud_firestore_v1_Value_boolean_value_tag:
      return json_boolean(v->value_type.boolean_value);
    case google_events_cloud_firestore_v1_Value_integer_value_tag:
      return json_integer((json_int_t)v->value_type.integer_value);
    case google_events_cloud_firestore_v1_Value_double_value_tag:
      return double_json(v->value_type.double_value);
    case google_events_cloud_firestore_v1_Value_timestamp_value_tag:
      return ts_json(&v->value_type.timestamp_value);
    case google_events_cloud_firestore_v1_Value_string_value_tag:
      return utf8_string(v->value_type.string_value, err);
    case google_events_cloud_firestore_v1_Value_reference_value_tag:
      return utf8_string(v->value_type.reference_value, err);
    case google_events_cloud_firestore_v1_Value_bytes_value_tag: {
      const pb_bytes_array_t *b = v->value_type.bytes_value;
      return base64_json(b ? b->bytes : NULL, b ? b->size : 0);
    }
    case google_events_cloud_firestore_v1_Value_geo_point_value_tag: {
      json_t *o = json_object();
      if (!o ||
          set_new(o, "latitude", double_json(v->value_type.geo_point_value.latitude)) ||
          set_new(o, "longitude", double_json(v->value_type.geo_point_value.longitude))) {
        json_decref(o);
        return NULL;
      }
      return o;
    }
    case google_events_cloud_firestore_v1_Value_array_value_tag: {
      const google_events_cloud_firestore_v1_ArrayValue *a = &v->value_type.array_value;
      json_t *arr = json_array();
      if (!arr) return NULL;
      for (pb_size_t i = 0; i < a->values_count; i++) {
        json_t *e = render_pb_value(&a->values[i], err);
        if (!e || json_array_append_new(arr, e) != 0) {
          json_decref(arr);
          return NULL;
        }
      }
      return arr;
    }
    case google_events_cloud_firestore_v1_Value_map_value_tag:
      return render_pb_map(&v->value_type.map_value, err);
    default:
      *err = "unknown Firestore value type";
      return NULL;
  }
}

static json_t *render_pb_doc(const doc_pb_t *d, const char **err) {
  json_t *o = json_object();
  if (!o) return NULL;
  if (d->name && *d->name) {
    if (set_new(o, "name", utf8_string(d->name, err))) goto fail;
  }
  json_t *fields = json_object();
  if (set_new(o, "fields", fields)) goto fail;
  for (pb_size_t i = 0; i < d->fields_count; i++) {
    const google_events_cloud_firestore_v1_Document_FieldsEntry *e = &d->fields[i];
    const char *key = e->key ? e->key : "";
    json_t *v = e->has_value ? render_pb_value(&e->value, err) : json_null();
    if (!v) goto fail;
    if (!trb_ingest_utf8_valid(key, strlen(key), NULL)) {
      json_decref(v);
      *err = "a field name is not valid UTF-8";
      goto fail;
    }
    if (json_object_set_new(fields, key, v) != 0) goto fail;
  }
  if (d->has_create_time && set_new(o, "create_time", ts_json(&d->create_time))) goto fail;
  if (d->has_update_time && set_new(o, "update_time", ts_json(&d->update_time))) goto fail;
  return o;
fail:
  json_decref(o);
  return NULL;
}

static bool pb_doc_empty(const doc_pb_t *d) {
  return (!d->name || !*d->name) && d->fields_count == 0 &&
         !d->has_create_time && !d->has_update_time;
}

grpc_status_code trb_ingest_firestore_from_proto(const uint8_t *buf,
                                                 size_t len, json_t **out,
                                                 trb_status_t *st) {
  *out = NULL;
  if (too_deep(buf, len, K_EVENT, 0)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "DocumentEventData values nested deeper than %d",
                          TRB_INGEST_FIRESTORE_MAX_DEPTH);
  }
  event_pb_t ev;
  memset(&ev, 0, sizeof(ev));
  trb_status_t dst = {0};
  if (trb_pb_decode(google_events_cloud_firestore_v1_DocumentEventData_fields,
                    buf, len, &ev, &dst) != GRPC_STATUS_OK) {
    trb_pb_release(google_events_cloud_firestore_v1_DocumentEventData_fields, &ev);
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "malformed DocumentEventData protobuf: %s", dst.msg);
  }
  const char *err = NULL;
  json_t *o = json_object();
  if (!o) goto oom;
  if (ev.has_value && !pb_doc_empty(&ev.value)) {
    if (set_new(o, "value", render_pb_doc(&ev.value, &err))) goto fail;
  }
  if (ev.has_old_value && !pb_doc_empty(&ev.old_value)) {
    if (set_new(o, "old_value", render_pb_doc(&ev.old_value, &err))) goto fail;
  }
  if (ev.has_update_mask && ev.update_mask.field_paths_count > 0) {
    json_t *m = json_array();
    if (set_new(o, "update_mask", m)) goto fail;
    for (pb_size_t i = 0; i < ev.update_mask.field_paths_count; i++) {
      json_t *p = utf8_string(ev.update_mask.field_paths[i], &err);
      if (!p || json_array_append_new(m, p) != 0) goto fail;
    }
  }
  trb_pb_release(google_events_cloud_firestore_v1_DocumentEventData_fields, &ev);
  *out = o;
  return GRPC_STATUS_OK;
fail:
  json_decref(o);
  trb_pb_release(google_events_cloud_firestore_v1_DocumentEventData_fields, &ev);
  if (err) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "DocumentEventData: %s", err);
  }
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "out of memory rendering DocumentEventData");
oom:
  trb_pb_release(google_events_cloud_firestore_v1_DocumentEventData_fields, &ev);
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "out of memory rendering DocumentEventData");
}

/* ---------------------------------------------------------------------- */
/* JSON input                                                              */
/* ---------------------------------------------------------------------- */

typedef struct {
  trb_status_t *st;
  grpc_status_code code;
  char path[160];
} jctx_t;

static json_t *jfail(jctx_t *c, const char *fmt, const char *arg) {
  if (c->code == GRPC_STATUS_OK) {
    c->code = trb_status_set(c->st, GRPC_STATUS_INVALID_ARGUMENT, "%s: %s%s",
                             c->path, fmt, arg ? arg : "");
  }
  return NULL;
}

static json_t *joom(jctx_t *c) {
  if (c->code == GRPC_STATUS_OK) {
    c->code = trb_status_set(c->st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                             "out of memory rendering DocumentEventData");
  }
  return NULL;
}

/* Append ".name" (s) or "[i]" to the error path for the duration of a
 * call. */
static size_t path_push(jctx_t *c, const char *s, size_t i) {
  size_t old = strlen(c->path);
  if (s) {
    snprintf(c->path + old, sizeof(c->path) - old, ".%s", s);
  } else {
    char tmp[24];
    snprintf(tmp, sizeof(tmp), "[%zu]", i);
    snprintf(c->path + old, sizeof(c->path) - old, "%s", tmp);
  }
  return old;
}

static json_t *render_json_value(jctx_t *c, const json_t *v, int depth);

static json_t *render_json_fields(jctx_t *c, const json_t *fields, int depth) {
  json_t *o = json_object();
  if (!o) return joom(c);
  if (!fields || json_is_null(fields)) return o;
  if (!json_is_object(fields)) {
    json_decref(o);
    return jfail(c, "fields is not an object", NULL);
  }
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)fields, k, v) {
    size_t old = path_push(c, k, 0);
    json_t *r = render_json_value(c, v, depth);
    c->path[old] = '\0';
    if (!r) {
      json_decref(o);
      return NULL;
    }
    if (json_object_set_new(o, k, r) != 0) {
      json_decref(o);
      return joom(c);
    }
  }
  return o;
}

static json_t *render_json_value(jctx_t *c, const json_t *v, int depth) {
  if (depth > TRB_INGEST_FIRESTORE_MAX_DEPTH) {
    return jfail(c, "values nested too deeply", NULL);
  }
  if (!json_is_object(v)) return jfail(c, "Firestore value is not an object", NULL);
  if (json_object_size(v) != 1) {
    return jfail(c, "Firestore value must have exactly one type member", NULL);
  }
  const char *kind = json_object_iter_key(json_object_iter((json_t *)v));
  const json_t *x = json_object_iter_value(json_object_iter((json_t *)v));
  if (strcmp(kind, "nullValue") == 0) {
    return json_null();
  }
  if (strcmp(kind, "booleanValue") == 0) {
    if (!json_is_boolean(x)) return jfail(c, "booleanValue is not a boolean", NULL);
    return json_incref((json_t *)x);
  }
  if (strcmp(kind, "integerValue") == 0) {
    if (json_is_integer(x)) return json_incref((json_t *)x);
    if (!json_is_string(x)) return jfail(c, "integerValue is not an int64", NULL);
    const char *s = json_string_value(x);
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
      return jfail(c, "integerValue is not an int64: ", s);
    }
    return json_integer((json_int_t)n);
  }
  if (strcmp(kind, "doubleValue") == 0) {
    if (json_is_number(x)) return json_incref((json_t *)x);
    if (json_is_string(x)) {
      const char *s = json_string_value(x);
      if (strcmp(s, "NaN") == 0 || strcmp(s, "Infinity") == 0 ||
          strcmp(s, "-Infinity") == 0) {
        return json_incref((json_t *)x);
      }
    }
    return jfail(c, "doubleValue is not a number", NULL);
  }
  if (strcmp(kind, "timestampValue") == 0 || strcmp(kind, "stringValue") == 0 ||
      strcmp(kind, "referenceValue") == 0 || strcmp(kind, "bytesValue") == 0) {
    if (!json_is_string(x)) return jfail(c, "value is not a string: ", kind);
    return json_incref((json_t *)x);
  }
  if (strcmp(kind, "geoPointValue") == 0) {
    if (!json_is_object(x)) return jfail(c, "geoPointValue is not an object", NULL);
    const json_t *lat = json_object_get(x, "latitude");
    const json_t *lng = json_object_get(x, "longitude");
    if ((lat && !json_is_number(lat)) || (lng && !json_is_number(lng))) {
      return jfail(c, "geoPointValue latitude/longitude is not a number", NULL);
    }
    json_t *o = json_object();
    if (!o || set_new(o, "latitude", lat ? json_incref((json_t *)lat) : json_real(0)) ||
        set_new(o, "longitude", lng ? json_incref((json_t *)lng) : json_real(0))) {
      json_decref(o);
      return joom(c);
    }
    return o;
  }
  if (strcmp(kind, "arrayValue") == 0) {
    if (!json_is_object(x)) return jfail(c, "arrayValue is not an object", NULL);
    const json_t *vals = json_object_get(x, "values");
    json_t *arr = json_array();
    if (!arr) return joom(c);
    if (!vals || json_is_null(vals)) return arr;
    if (!json_is_array(vals)) {
      json_decref(arr);
      return jfail(c, "arrayValue.values is not an array", NULL);
    }
    for (size_t i = 0; i < json_array_size(vals); i++) {
      size_t old = path_push(c, NULL, i);
      json_t *r = render_json_value(c, json_array_get(vals, i), depth + 1);
      c->path[old] = '\0';
      if (!r) {
        json_decref(arr);
        return NULL;
      }
      if (json_array_append_new(arr, r) != 0) {
        json_decref(arr);
        return joom(c);
      }
    }
    return arr;
  }
  if (strcmp(kind, "mapValue") == 0) {
    if (!json_is_object(x)) return jfail(c, "mapValue is not an object", NULL);
    return render_json_fields(c, json_object_get(x, "fields"), depth + 1);
  }
  return jfail(c, "unknown Firestore value type ", kind);
}

static json_t *render_json_doc(jctx_t *c, const json_t *d) {
  if (!json_is_object(d)) return jfail(c, "document is not an object", NULL);
  json_t *o = json_object();
  if (!o) return joom(c);
  const json_t *name = json_object_get(d, "name");
  if (name && !json_is_null(name)) {
    if (!json_is_string(name)) {
      json_decref(o);
      return jfail(c, "name is not a string", NULL);
    }
    if (json_object_set(o, "name", (json_t *)name) != 0) goto oom;
  }
  size_t old = path_push(c, "fields", 0);
  json_t *fields = render_json_fields(c, json_object_get(d, "fields"), 1);
  c->path[old] = '\0';
  if (!fields) {
    json_decref(o);
    return NULL;
  }
  if (json_object_set_new(o, "fields", fields) != 0) goto oom;
  static const char *const times[][2] = {{"createTime", "create_time"},
                                         {"updateTime", "update_time"}};
  for (int i = 0; i < 2; i++) {
    const json_t *t = json_object_get(d, times[i][0]);
    if (!t) t = json_object_get(d, times[i][1]);
    if (!t || json_is_null(t)) continue;
    if (!json_is_string(t)) {
      json_decref(o);
      return jfail(c, "time is not a string: ", times[i][0]);
    }
    if (json_object_set(o, times[i][1], (json_t *)t) != 0) goto oom;
  }
  return o;
oom:
  json_decref(o);
  return joom(c);
}

static bool json_doc_absent(const json_t *d) {
  return !d || json_is_null(d) || (json_is_object(d) && json_object_size(d) == 0);
}

grpc_status_code trb_ingest_firestore_from_json(const json_t *data,
                                                json_t **out,
                                                trb_status_t *st) {
  *out = NULL;
  jctx_t c;
  memset(&c, 0, sizeof(c));
  c.st = st;
  if (!json_is_object(data)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "DocumentEventData is not a JSON object");
  }
  json_t *o = json_object();
  if (!o) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  static const char *const docs[][3] = {{"value", "value", "value"},
                                        {"oldValue", "old_value", "old_value"}};
  for (int i = 0; i < 2; i++) {
    const json_t *d = json_object_get(data, docs[i][0]);
    if (!d) d = json_object_get(data, docs[i][1]);
    if (json_doc_absent(d)) continue;
    snprintf(c.path, sizeof(c.path), "%s", docs[i][0]);
    json_t *r = render_json_doc(&c, d);
    if (!r || json_object_set_new(o, docs[i][2], r) != 0) {
      json_decref(o);
      return c.code != GRPC_STATUS_OK
                 ? c.code
                 : trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
  }
  const json_t *mask = json_object_get(data, "updateMask");
  if (!mask) mask = json_object_get(data, "update_mask");
  if (mask && !json_is_null(mask)) {
    const json_t *paths = json_is_object(mask) ? json_object_get(mask, "fieldPaths") : NULL;
    if (!paths && json_is_object(mask)) paths = json_object_get(mask, "field_paths");
    if (!json_is_object(mask) || (paths && !json_is_array(paths))) {
      json_decref(o);
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "updateMask is not {\"fieldPaths\": [...]}");
    }
    if (paths && json_array_size(paths) > 0) {
      for (size_t i = 0; i < json_array_size(paths); i++) {
        if (!json_is_string(json_array_get(paths, i))) {
          json_decref(o);
          return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                                "updateMask.fieldPaths[%zu] is not a string", i);
        }
      }
      if (json_object_set(o, "update_mask", (json_t *)paths) != 0) {
        json_decref(o);
        return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      }
    }
  }
  *out = o;
  return GRPC_STATUS_OK;
}
