/* descriptor.c — see descriptor.h. */
#include "src/bigquery/descriptor.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pb.h>
#include <pb_common.h>
#include <pb_decode.h>

#include "src/common/alloc.h"

#define MAX_FIELD_NUMBER 536870911

typedef google_protobuf_DescriptorProto msg_t;
typedef google_protobuf_FieldDescriptorProto fdp_t;

static bool is_ident(const char *s) {
  if (!s[0]) return false;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t trb_bq_proto_field_name(const char *name, char *out, size_t cap) {
  size_t n = 0;
#define PUT(ch)                     \
  do {                              \
    if (n + 1 < cap) out[n] = (ch); \
    n++;                            \
  } while (0)
  if (is_ident(name)) {
    for (size_t i = 0; name[i]; i++) {
      char c = name[i];
      PUT((c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c);
    }
  } else {
    PUT('c');
    PUT('o');
    PUT('l');
    PUT('_');
    const unsigned char *s = (const unsigned char *)name;
    size_t len = strlen(name);
    for (size_t i = 0; i < len; i += 3) {
      uint32_t v = (uint32_t)s[i] << 16;
      if (i + 1 < len) v |= (uint32_t)s[i + 1] << 8;
      if (i + 2 < len) v |= s[i + 2];
      size_t chars = i + 2 < len ? 4 : (i + 1 < len ? 3 : 2);
      for (size_t k = 0; k < chars; k++) {
        char c = B64[(v >> (18 - 6 * k)) & 63];
        if (c != '+' && c != '/') PUT(c);
      }
    }
  }
#undef PUT
  if (cap) out[n < cap ? n : cap - 1] = '\0';
  return n;
}

static char *dup_field_name(const char *name) {
  size_t need = trb_bq_proto_field_name(name, NULL, 0);
  char *s = malloc(need + 1);
  if (s) trb_bq_proto_field_name(name, s, need + 1);
  return s;
}

static int proto_type(trb_bq_type_t t) {
  switch (t) {
    case TRB_BQ_TYPE_BOOL:
      return google_protobuf_FieldDescriptorProto_Type_TYPE_BOOL;
    case TRB_BQ_TYPE_BYTES:
    case TRB_BQ_TYPE_NUMERIC:
    case TRB_BQ_TYPE_BIGNUMERIC:
      return google_protobuf_FieldDescriptorProto_Type_TYPE_BYTES;
    case TRB_BQ_TYPE_DATE:
      return google_protobuf_FieldDescriptorProto_Type_TYPE_INT32;
    case TRB_BQ_TYPE_DATETIME:
    case TRB_BQ_TYPE_TIME:
    case TRB_BQ_TYPE_INT64:
    case TRB_BQ_TYPE_TIMESTAMP:
      return google_protobuf_FieldDescriptorProto_Type_TYPE_INT64;
    case TRB_BQ_TYPE_DOUBLE:
      return google_protobuf_FieldDescriptorProto_Type_TYPE_DOUBLE;
    case TRB_BQ_TYPE_GEOGRAPHY:
    case TRB_BQ_TYPE_JSON:
    case TRB_BQ_TYPE_INTERVAL:
    case TRB_BQ_TYPE_STRING:
      return google_protobuf_FieldDescriptorProto_Type_TYPE_STRING;
    case TRB_BQ_TYPE_STRUCT:
      return google_protobuf_FieldDescriptorProto_Type_TYPE_MESSAGE;
    default:
      return 0;
  }
}

static grpc_status_code fill_msg(msg_t *m, const char *scope,
                                 const trb_bq_field_t *fs, size_t n,
                                 trb_status_t *st) {
  if (n == 0)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: a message needs at least one field", scope);
  if (n > MAX_FIELD_NUMBER || n > (pb_size_t)-1)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: too many fields (%zu)", scope, n);
  m->name = strdup(scope);
  m->field = calloc(n, sizeof *m->field);
  if (!m->name || !m->field) goto oom;
  m->field_count = (pb_size_t)n;
  size_t n_nested = 0;
  for (size_t i = 0; i < n; i++)
    if (fs[i].type == TRB_BQ_TYPE_STRUCT) n_nested++;
  if (n_nested) {
    m->nested_type = calloc(n_nested, sizeof *m->nested_type);
    if (!m->nested_type) goto oom;
  }
  for (size_t i = 0; i < n; i++) {
    const trb_bq_field_t *f = &fs[i];
    fdp_t *fd = &m->field[i];
    int ty = proto_type(f->type);
    if (!ty)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s.%s: unsupported type %d", scope, f->name,
                            (int)f->type);
    fd->name = dup_field_name(f->name);
    if (!fd->name) goto oom;
    fd->has_number = true;
    fd->number = (int32_t)(i + 1);
    fd->has_label = true;
    fd->label = f->mode == TRB_BQ_MODE_REQUIRED
                    ? google_protobuf_FieldDescriptorProto_Label_LABEL_REQUIRED
                : f->mode == TRB_BQ_MODE_REPEATED
                    ? google_protobuf_FieldDescriptorProto_Label_LABEL_REPEATED
                    : google_protobuf_FieldDescriptorProto_Label_LABEL_OPTIONAL;
    fd->has_type = true;
    fd->type = (google_protobuf_FieldDescriptorProto_Type)ty;
    if (f->type == TRB_BQ_TYPE_STRUCT) {
      size_t sl = strlen(scope), nl = strlen(fd->name);
      char *child = malloc(sl + 2 + nl + 1);
      if (!child) goto oom;
      memcpy(child, scope, sl);
      memcpy(child + sl, "__", 2);
      memcpy(child + sl + 2, fd->name, nl + 1);
      fd->type_name = child;
      msg_t *sub = &m->nested_type[m->nested_type_count++];
      grpc_status_code rc = fill_msg(sub, child, f->fields, f->n_fields, st);
      if (rc != GRPC_STATUS_OK) return rc;
    }
  }
  return GRPC_STATUS_OK;
oom:
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "out of memory building the writer schema");
}

grpc_status_code trb_bq_descriptor_build(const trb_bq_table_t *t,
                                         google_protobuf_DescriptorProto *out,
                                         trb_status_t *st) {
  memset(out, 0, sizeof *out);
  grpc_status_code rc =
      fill_msg(out, TRB_BQ_DESCRIPTOR_ROOT, t->fields, t->n_fields, st);
  if (rc != GRPC_STATUS_OK) trb_bq_descriptor_release(out);
  return rc;
}

void trb_bq_descriptor_release(google_protobuf_DescriptorProto *d) {
  if (!d) return;
  pb_release(google_protobuf_DescriptorProto_fields, d);
  memset(d, 0, sizeof *d);
}

#define MAX_DEPTH 15

static grpc_status_code ws_fields(
    const google_cloud_bigquery_storage_v1_TableFieldSchema *in, size_t n,
    int depth, const char *path, trb_bq_field_t **out, size_t *n_out,
    trb_status_t *st) {
  if (n == 0)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "%s: no fields",
                          path);
  if (depth > MAX_DEPTH)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: RECORD nesting deeper than %d", path, MAX_DEPTH);
  trb_bq_field_t *fs = trb_calloc(n, sizeof *fs);
  if (!fs) goto oom;
  *out = fs;
  *n_out = n;
  for (size_t i = 0; i < n; i++) {
    const google_cloud_bigquery_storage_v1_TableFieldSchema *f = &in[i];
    char p[300];
    snprintf(p, sizeof p, "%s[%zu]", path, i);
    if (!f->name || !f->name[0])
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s: empty column name", p);
    if (trb_bq_field_find(fs, i, f->name, strlen(f->name)) >= 0)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s: duplicate column name \"%s\"", p, f->name);
    fs[i].name = trb_strdup(f->name);
    if (!fs[i].name) goto oom;
    int ty = (int)f->type;
    if (ty == google_cloud_bigquery_storage_v1_TableFieldSchema_Type_RANGE) {
      int et = f->has_range_element_type ? (int)f->range_element_type.type : 0;
      if (et != TRB_BQ_TYPE_DATE && et != TRB_BQ_TYPE_DATETIME &&
          et != TRB_BQ_TYPE_TIMESTAMP)
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "%s (%s): RANGE element type must be DATE, "
                              "DATETIME or TIMESTAMP (got %d)",
                              p, f->name, et);
      int rmode = (int)f->mode;
      if (rmode < 0 || rmode > 3)
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "%s (%s): unknown mode %d", p, f->name, rmode);
      /* RANGE<T> as RECORD {start T, end T} (fact 33's wire shape). */
      fs[i].type = TRB_BQ_TYPE_STRUCT;
      fs[i].mode = rmode == 0 ? TRB_BQ_MODE_NULLABLE : (trb_bq_mode_t)rmode;
      fs[i].fields = trb_calloc(2, sizeof *fs[i].fields);
      if (!fs[i].fields) goto oom;
      fs[i].n_fields = 2;
      fs[i].fields[0].name = trb_strdup("start");
      fs[i].fields[1].name = trb_strdup("end");
      if (!fs[i].fields[0].name || !fs[i].fields[1].name) goto oom;
      for (int k = 0; k < 2; k++) {
        fs[i].fields[k].type = (trb_bq_type_t)et;
        fs[i].fields[k].mode = TRB_BQ_MODE_NULLABLE;
      }
      continue;
    }
    if (ty < TRB_BQ_TYPE_STRING || ty > TRB_BQ_TYPE_JSON)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s (%s): unknown type %d", p, f->name, ty);
    fs[i].type = (trb_bq_type_t)ty;
    int mode = (int)f->mode;
    if (mode < 0 || mode > 3)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s (%s): unknown mode %d", p, f->name, mode);
    fs[i].mode = mode == 0 ? TRB_BQ_MODE_NULLABLE : (trb_bq_mode_t)mode;
    fs[i].max_length = f->max_length;
    fs[i].precision = f->precision;
    fs[i].scale = f->scale;
    if (fs[i].type == TRB_BQ_TYPE_STRUCT) {
      char sub[300];
      snprintf(sub, sizeof sub, "%s.fields", p);
      grpc_status_code rc = ws_fields(f->fields, f->fields_count, depth + 1,
                                      sub, &fs[i].fields, &fs[i].n_fields, st);
      if (rc != GRPC_STATUS_OK) return rc;
    } else if (f->fields_count) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s (%s): fields on a non-RECORD column", p,
                            f->name);
    }
  }
  return GRPC_STATUS_OK;
oom:
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "out of memory converting the table schema");
}

grpc_status_code trb_bq_table_from_write_schema(
    const google_cloud_bigquery_storage_v1_TableSchema *in,
    trb_bq_table_t *out, trb_status_t *st) {
  memset(out, 0, sizeof *out);
  grpc_status_code rc = ws_fields(in->fields, in->fields_count, 1, "fields",
                                  &out->fields, &out->n_fields, st);
  if (rc != GRPC_STATUS_OK) trb_bq_table_deinit(out);
  return rc;
}
