/*
 * schema.c — BigQuery table definitions (see schema.h). Pure: JSON text in,
 * structs out, and back.
 */
#include "src/bigquery/schema.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <pb_decode.h>

#include "src/bigquery/default_expr.h"
#include "src/common/alloc.h"

#define MAX_DEPTH 15
#define MAX_NAME 300

static const struct {
  const char *name;
  trb_bq_type_t type;
} kTypes[] = {
    {"STRING", TRB_BQ_TYPE_STRING},       {"BYTES", TRB_BQ_TYPE_BYTES},
    {"INT64", TRB_BQ_TYPE_INT64},         {"INTEGER", TRB_BQ_TYPE_INT64},
    {"FLOAT64", TRB_BQ_TYPE_DOUBLE},      {"FLOAT", TRB_BQ_TYPE_DOUBLE},
    {"NUMERIC", TRB_BQ_TYPE_NUMERIC},     {"BIGNUMERIC", TRB_BQ_TYPE_BIGNUMERIC},
    {"BOOL", TRB_BQ_TYPE_BOOL},           {"BOOLEAN", TRB_BQ_TYPE_BOOL},
    {"TIMESTAMP", TRB_BQ_TYPE_TIMESTAMP}, {"DATE", TRB_BQ_TYPE_DATE},
    {"TIME", TRB_BQ_TYPE_TIME},           {"DATETIME", TRB_BQ_TYPE_DATETIME},
    {"GEOGRAPHY", TRB_BQ_TYPE_GEOGRAPHY}, {"JSON", TRB_BQ_TYPE_JSON},
    {"INTERVAL", TRB_BQ_TYPE_INTERVAL},   {"STRUCT", TRB_BQ_TYPE_STRUCT},
    {"RECORD", TRB_BQ_TYPE_STRUCT},       {"BIGDECIMAL", TRB_BQ_TYPE_BIGNUMERIC},
    {"DECIMAL", TRB_BQ_TYPE_NUMERIC},
};

bool trb_bq_type_parse(const char *name, trb_bq_type_t *out) {
  for (size_t i = 0; i < sizeof kTypes / sizeof kTypes[0]; i++) {
    if (strcasecmp(name, kTypes[i].name) == 0) {
      *out = kTypes[i].type;
      return true;
    }
  }
  return false;
}

const char *trb_bq_type_name(trb_bq_type_t t) {
  switch (t) {
    case TRB_BQ_TYPE_STRING: return "STRING";
    case TRB_BQ_TYPE_INT64: return "INT64";
    case TRB_BQ_TYPE_DOUBLE: return "FLOAT64";
    case TRB_BQ_TYPE_STRUCT: return "STRUCT";
    case TRB_BQ_TYPE_BYTES: return "BYTES";
    case TRB_BQ_TYPE_BOOL: return "BOOL";
    case TRB_BQ_TYPE_TIMESTAMP: return "TIMESTAMP";
    case TRB_BQ_TYPE_DATE: return "DATE";
    case TRB_BQ_TYPE_TIME: return "TIME";
    case TRB_BQ_TYPE_DATETIME: return "DATETIME";
    case TRB_BQ_TYPE_GEOGRAPHY: return "GEOGRAPHY";
    case TRB_BQ_TYPE_NUMERIC: return "NUMERIC";
    case TRB_BQ_TYPE_BIGNUMERIC: return "BIGNUMERIC";
    case TRB_BQ_TYPE_INTERVAL: return "INTERVAL";
    case TRB_BQ_TYPE_JSON: return "JSON";
    case TRB_BQ_TYPE_UNSPECIFIED: break;
  }
  return "TYPE_UNSPECIFIED";
}

const char *trb_bq_mode_name(trb_bq_mode_t m) {
  switch (m) {
    case TRB_BQ_MODE_REQUIRED: return "REQUIRED";
    case TRB_BQ_MODE_REPEATED: return "REPEATED";
    case TRB_BQ_MODE_NULLABLE: break;
  }
  return "NULLABLE";
}

int trb_bq_field_find(const trb_bq_field_t *fields, size_t n, const char *name,
                      size_t len) {
  for (size_t i = 0; i < n; i++) {
    if (strlen(fields[i].name) == len &&
        strncasecmp(fields[i].name, name, len) == 0)
      return (int)i;
  }
  return -1;
}

/* ---- freeing ------------------------------------------------------------ */

static void field_deinit(trb_bq_field_t *f) {
  trb_free(f->name);
  trb_free(f->description);
  trb_free(f->default_value_expression);
  for (size_t i = 0; i < f->n_fields; i++) field_deinit(&f->fields[i]);
  trb_free(f->fields);
  memset(f, 0, sizeof *f);
}

void trb_bq_table_deinit(trb_bq_table_t *t) {
  if (!t) return;
  trb_free(t->description);
  trb_free(t->partition_type);
  trb_free(t->partition_field);
  for (size_t i = 0; i < t->n_clustering; i++) trb_free(t->clustering[i]);
  trb_free(t->clustering);
  for (size_t i = 0; i < t->n_fields; i++) field_deinit(&t->fields[i]);
  trb_free(t->fields);
  memset(t, 0, sizeof *t);
}

/* ---- JSON parsing ------------------------------------------------------- */

#define OOM(st) trb_status_set((st), GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory")

static grpc_status_code bad(trb_status_t *st, const char *path,
                            const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static grpc_status_code bad(trb_status_t *st, const char *path,
                            const char *fmt, ...) {
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "%s: %s", path, msg);
}

static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_NAME) return false;
  if (!(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
  for (size_t i = 1; i < n; i++) {
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return false;
  }
  return true;
}

/* An int64 given as a JSON integer or a decimal string (REST style). */
static grpc_status_code get_int(json_t *v, const char *path, int64_t *out,
                                trb_status_t *st) {
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end) return bad(st, path, "want an integer");
    *out = x;
  } else {
    return bad(st, path, "want an integer");
  }
  if (*out < 0) return bad(st, path, "must not be negative");
  return GRPC_STATUS_OK;
}

static grpc_status_code dup_str(json_t *v, const char *path, char **out,
                                trb_status_t *st) {
  if (!json_is_string(v)) return bad(st, path, "want a string");
  *out = trb_strdup(json_string_value(v));
  return *out ? GRPC_STATUS_OK : OOM(st);
}

static grpc_status_code parse_fields(json_t *arr, const char *path, int depth,
                                     trb_bq_field_t **out, size_t *n_out,
                                     trb_status_t *st);

/* A default value expression must be on a top-level column and be a
 * literal that suits the column (default_expr.h). */
static grpc_status_code check_default(const trb_bq_field_t *f, int depth,
                                      const char *path, trb_status_t *st) {
  if (depth > 0)
    return bad(st, path, "defaultValueExpression: the emulator supports "
                         "defaults on top-level columns only");
  trb_bq_default_t d;
  trb_status_t dst;
  grpc_status_code c = trb_bq_default_parse(f->default_value_expression, f, &d, &dst);
  trb_bq_default_deinit(&d);
  if (c == GRPC_STATUS_RESOURCE_EXHAUSTED) return OOM(st);
  if (c) return bad(st, path, "defaultValueExpression: %s", dst.msg);
  return GRPC_STATUS_OK;
}

static grpc_status_code parse_field(json_t *o, const char *path, int depth,
                                    trb_bq_field_t *f, trb_status_t *st) {
  char p[512];
  grpc_status_code c;
  if (!json_is_object(o)) return bad(st, path, "want an object");
  f->mode = TRB_BQ_MODE_NULLABLE;
  json_t *fields = NULL;
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    snprintf(p, sizeof p, "%s.%s", path, key);
    if (strcmp(key, "name") == 0) {
      if ((c = dup_str(v, p, &f->name, st))) return c;
      if (!valid_name(f->name))
        return bad(st, p, "invalid field name \"%s\" (letters, digits and "
                          "underscores, not starting with a digit, at most "
                          "300)", f->name);
    } else if (strcmp(key, "type") == 0) {
      if (!json_is_string(v)) return bad(st, p, "want a string");
      if (!trb_bq_type_parse(json_string_value(v), &f->type))
        return bad(st, p, "unknown type \"%s\"", json_string_value(v));
    } else if (strcmp(key, "mode") == 0) {
      if (!json_is_string(v)) return bad(st, p, "want a string");
      const char *m = json_string_value(v);
      if (strcasecmp(m, "NULLABLE") == 0) f->mode = TRB_BQ_MODE_NULLABLE;
      else if (strcasecmp(m, "REQUIRED") == 0) f->mode = TRB_BQ_MODE_REQUIRED;
      else if (strcasecmp(m, "REPEATED") == 0) f->mode = TRB_BQ_MODE_REPEATED;
      else return bad(st, p, "unknown mode \"%s\"", m);
    } else if (strcmp(key, "description") == 0) {
      if ((c = dup_str(v, p, &f->description, st))) return c;
    } else if (strcmp(key, "maxLength") == 0) {
      if ((c = get_int(v, p, &f->max_length, st))) return c;
    } else if (strcmp(key, "precision") == 0) {
      if ((c = get_int(v, p, &f->precision, st))) return c;
    } else if (strcmp(key, "scale") == 0) {
      if ((c = get_int(v, p, &f->scale, st))) return c;
    } else if (strcmp(key, "defaultValueExpression") == 0) {
      if ((c = dup_str(v, p, &f->default_value_expression, st))) return c;
    } else if (strcmp(key, "fields") == 0) {
      fields = v;
    } else {
      return bad(st, p, "unknown key");
    }
  }
  if (!f->name) return bad(st, path, "missing \"name\"");
  if (f->type == TRB_BQ_TYPE_UNSPECIFIED) return bad(st, path, "missing \"type\"");
  if (f->max_length &&
      f->type != TRB_BQ_TYPE_STRING && f->type != TRB_BQ_TYPE_BYTES)
    return bad(st, path, "maxLength is only for STRING and BYTES");
  if ((f->precision || f->scale) &&
      f->type != TRB_BQ_TYPE_NUMERIC && f->type != TRB_BQ_TYPE_BIGNUMERIC)
    return bad(st, path, "precision and scale are only for NUMERIC and "
                         "BIGNUMERIC");
  if (f->default_value_expression &&
      (c = check_default(f, depth, path, st)))
    return c;
  if (f->type == TRB_BQ_TYPE_STRUCT) {
    if (!fields) return bad(st, path, "a RECORD needs \"fields\"");
    if (depth >= MAX_DEPTH) return bad(st, path, "nested deeper than 15 levels");
    snprintf(p, sizeof p, "%s.fields", path);
    return parse_fields(fields, p, depth + 1, &f->fields, &f->n_fields, st);
  }
  if (fields) return bad(st, path, "\"fields\" on a non-RECORD field");
  return GRPC_STATUS_OK;
}

static grpc_status_code parse_fields(json_t *arr, const char *path, int depth,
                                     trb_bq_field_t **out, size_t *n_out,
                                     trb_status_t *st) {
  if (!json_is_array(arr)) return bad(st, path, "want an array of fields");
  size_t n = json_array_size(arr);
  if (n == 0) return bad(st, path, "no fields");
  trb_bq_field_t *fs = trb_calloc(n, sizeof *fs);
  if (!fs) return OOM(st);
  *out = fs;
  *n_out = n; /* owned by the caller from here on (partial ok for deinit) */
  char p[512];
  for (size_t i = 0; i < n; i++) {
    snprintf(p, sizeof p, "%s[%zu]", path, i);
    grpc_status_code c = parse_field(json_array_get(arr, i), p, depth, &fs[i], st);
    if (c) return c;
    if (trb_bq_field_find(fs, i, fs[i].name, strlen(fs[i].name)) >= 0)
      return bad(st, p, "duplicate field name \"%s\" (names are "
                        "case-insensitive)", fs[i].name);
  }
  return GRPC_STATUS_OK;
}

static grpc_status_code parse_object(json_t *root, trb_bq_table_t *t,
                                     trb_status_t *st) {
  const char *key;
  json_t *v;
  json_t *schema = NULL;
  char p[512];
  grpc_status_code c;
  json_object_foreach(root, key, v) {
    snprintf(p, sizeof p, "$.%s", key);
    if (strcmp(key, "description") == 0) {
      if ((c = dup_str(v, p, &t->description, st))) return c;
    } else if (strcmp(key, "schema") == 0) {
      schema = v;
    } else if (strcmp(key, "timePartitioning") == 0) {
      if (!json_is_object(v)) return bad(st, p, "want an object");
      const char *k2;
      json_t *v2;
      json_object_foreach(v, k2, v2) {
        char p2[600];
        snprintf(p2, sizeof p2, "%s.%s", p, k2);
        if (strcmp(k2, "type") == 0) {
          if ((c = dup_str(v2, p2, &t->partition_type, st))) return c;
          const char *ty = t->partition_type;
          if (strcmp(ty, "DAY") && strcmp(ty, "HOUR") && strcmp(ty, "MONTH") &&
              strcmp(ty, "YEAR"))
            return bad(st, p2, "unknown partitioning type \"%s\" (DAY, HOUR, "
                               "MONTH, YEAR)", ty);
        } else if (strcmp(k2, "field") == 0) {
          if ((c = dup_str(v2, p2, &t->partition_field, st))) return c;
        } else if (strcmp(k2, "expirationMs") == 0 ||
                   strcmp(k2, "requirePartitionFilter") == 0) {
          /* accepted, not enforced by the emulator */
        } else {
          return bad(st, p2, "unknown key");
        }
      }
      if (!t->partition_type) return bad(st, p, "missing \"type\"");
    } else if (strcmp(key, "clustering") == 0) {
      json_t *cf = json_is_object(v) ? json_object_get(v, "fields") : NULL;
      if (!json_is_object(v) || json_object_size(v) != 1 || !json_is_array(cf))
        return bad(st, p, "want {\"fields\": [names]}");
      size_t n = json_array_size(cf);
      if (n == 0 || n > 4) return bad(st, p, "1 to 4 clustering fields");
      t->clustering = trb_calloc(n, sizeof(char *));
      if (!t->clustering) return OOM(st);
      for (size_t i = 0; i < n; i++) {
        char p2[600];
        snprintf(p2, sizeof p2, "%s.fields[%zu]", p, i);
        if ((c = dup_str(json_array_get(cf, i), p2, &t->clustering[i], st)))
          return c;
        t->n_clustering = i + 1;
      }
    } else {
      return bad(st, p, "unknown key");
    }
  }
  if (!schema) return bad(st, "$", "missing \"schema\"");
  if (json_is_object(schema)) {
    json_t *f = json_object_get(schema, "fields");
    if (!f || json_object_size(schema) != 1)
      return bad(st, "$.schema", "want [fields] or {\"fields\": [...]}");
    return parse_fields(f, "$.schema.fields", 0, &t->fields, &t->n_fields, st);
  }
  return parse_fields(schema, "$.schema", 0, &t->fields, &t->n_fields, st);
}

static grpc_status_code check_options(const trb_bq_table_t *t,
                                      trb_status_t *st) {
  if (t->partition_field) {
    int i = trb_bq_field_find(t->fields, t->n_fields, t->partition_field,
                              strlen(t->partition_field));
    if (i < 0)
      return bad(st, "$.timePartitioning.field", "no column \"%s\"",
                 t->partition_field);
    const trb_bq_field_t *f = &t->fields[i];
    if ((f->type != TRB_BQ_TYPE_TIMESTAMP && f->type != TRB_BQ_TYPE_DATE &&
         f->type != TRB_BQ_TYPE_DATETIME) || f->mode == TRB_BQ_MODE_REPEATED)
      return bad(st, "$.timePartitioning.field",
                 "column \"%s\" is %s %s; want a TIMESTAMP, DATE or DATETIME "
                 "that is not REPEATED",
                 f->name, trb_bq_mode_name(f->mode), trb_bq_type_name(f->type));
  }
  for (size_t k = 0; k < t->n_clustering; k++) {
    char p[64];
    snprintf(p, sizeof p, "$.clustering.fields[%zu]", k);
    int i = trb_bq_field_find(t->fields, t->n_fields, t->clustering[k],
                              strlen(t->clustering[k]));
    if (i < 0) return bad(st, p, "no column \"%s\"", t->clustering[k]);
    const trb_bq_field_t *f = &t->fields[i];
    if (f->type == TRB_BQ_TYPE_STRUCT || f->mode == TRB_BQ_MODE_REPEATED ||
        f->type == TRB_BQ_TYPE_JSON || f->type == TRB_BQ_TYPE_DOUBLE)
      return bad(st, p, "column \"%s\" cannot be a clustering column",
                 f->name);
  }
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bq_table_parse(const char *text, size_t len,
                                    trb_bq_table_t *out, trb_status_t *st) {
  memset(out, 0, sizeof *out);
  json_error_t err;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
  if (!root) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "line %d column %d: %s", err.line, err.column,
                          err.text);
  }
  grpc_status_code c;
  if (json_is_array(root)) {
    c = parse_fields(root, "$", 0, &out->fields, &out->n_fields, st);
  } else if (json_is_object(root)) {
    c = parse_object(root, out, st);
  } else {
    c = bad(st, "$", "want a schema array or a table object");
  }
  if (c == GRPC_STATUS_OK) c = check_options(out, st);
  json_decref(root);
  if (c != GRPC_STATUS_OK) trb_bq_table_deinit(out);
  return c;
}

/* ---- JSON output -------------------------------------------------------- */

static json_t *fields_json(const trb_bq_field_t *fs, size_t n) {
  json_t *arr = json_array();
  if (!arr) return NULL;
  for (size_t i = 0; i < n; i++) {
    const trb_bq_field_t *f = &fs[i];
    json_t *o = json_object();
    if (!o || json_array_append_new(arr, o)) goto fail;
    if (json_object_set_new(o, "name", json_string(f->name)) ||
        json_object_set_new(o, "type", json_string(trb_bq_type_name(f->type))) ||
        json_object_set_new(o, "mode", json_string(trb_bq_mode_name(f->mode))))
      goto fail;
    if (f->description &&
        json_object_set_new(o, "description", json_string(f->description)))
      goto fail;
    if (f->max_length &&
        json_object_set_new(o, "maxLength", json_integer(f->max_length)))
      goto fail;
    if (f->precision &&
        json_object_set_new(o, "precision", json_integer(f->precision)))
      goto fail;
    if (f->scale && json_object_set_new(o, "scale", json_integer(f->scale)))
      goto fail;
    if (f->default_value_expression &&
        json_object_set_new(o, "defaultValueExpression",
                            json_string(f->default_value_expression)))
      goto fail;
    if (f->n_fields) {
      json_t *sub = fields_json(f->fields, f->n_fields);
      if (!sub || json_object_set_new(o, "fields", sub)) goto fail;
    }
  }
  return arr;
fail:
  json_decref(arr);
  return NULL;
}

grpc_status_code trb_bq_table_to_json(const trb_bq_table_t *t, char **out,
                                      trb_status_t *st) {
  *out = NULL;
  json_t *o = json_object();
  json_t *fs = fields_json(t->fields, t->n_fields);
  bool ok = o && fs;
  if (ok && t->description)
    ok = !json_object_set_new(o, "description", json_string(t->description));
  if (ok && t->partition_type) {
    json_t *tp = json_object();
    ok = tp && !json_object_set_new(o, "timePartitioning", tp) &&
         !json_object_set_new(tp, "type", json_string(t->partition_type));
    if (ok && t->partition_field)
      ok = !json_object_set_new(tp, "field", json_string(t->partition_field));
  }
  if (ok && t->n_clustering) {
    json_t *cl = json_object(), *arr = json_array();
    ok = cl && arr && !json_object_set_new(o, "clustering", cl) &&
         !json_object_set_new(cl, "fields", arr);
    if (!ok && !cl) json_decref(arr);
    for (size_t i = 0; ok && i < t->n_clustering; i++)
      ok = !json_array_append_new(arr, json_string(t->clustering[i]));
  }
  if (ok) {
    ok = !json_object_set_new(o, "schema", fs);
    fs = NULL;
  }
  char *s = ok ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(o);
  json_decref(fs);
  if (!s) return OOM(st);
  *out = trb_strdup(s);
  free(s);
  return *out ? GRPC_STATUS_OK : OOM(st);
}

/* ---- copy / compare ----------------------------------------------------- */

static bool field_copy(const trb_bq_field_t *s, trb_bq_field_t *d) {
  memset(d, 0, sizeof *d);
  *d = *s;
  d->name = trb_strdup(s->name);
  d->description = s->description ? trb_strdup(s->description) : NULL;
  d->default_value_expression = s->default_value_expression
                                    ? trb_strdup(s->default_value_expression)
                                    : NULL;
  d->fields = NULL;
  d->n_fields = 0;
  if (!d->name || (s->description && !d->description) ||
      (s->default_value_expression && !d->default_value_expression))
    return false;
  if (s->n_fields) {
    d->fields = trb_calloc(s->n_fields, sizeof *d->fields);
    if (!d->fields) return false;
    d->n_fields = s->n_fields;
    for (size_t i = 0; i < s->n_fields; i++)
      if (!field_copy(&s->fields[i], &d->fields[i])) return false;
  }
  return true;
}

static char *dup_opt(const char *s, bool *ok) {
  if (!s) return NULL;
  char *d = trb_strdup(s);
  if (!d) *ok = false;
  return d;
}

grpc_status_code trb_bq_table_copy(const trb_bq_table_t *src,
                                   trb_bq_table_t *dst, trb_status_t *st) {
  memset(dst, 0, sizeof *dst);
  bool ok = true;
  dst->description = dup_opt(src->description, &ok);
  dst->partition_type = dup_opt(src->partition_type, &ok);
  dst->partition_field = dup_opt(src->partition_field, &ok);
  if (ok && src->n_clustering) {
    dst->clustering = trb_calloc(src->n_clustering, sizeof(char *));
    ok = dst->clustering != NULL;
    for (size_t i = 0; ok && i < src->n_clustering; i++) {
      dst->clustering[i] = dup_opt(src->clustering[i], &ok);
      dst->n_clustering = i + 1;
    }
  }
  if (ok && src->n_fields) {
    dst->fields = trb_calloc(src->n_fields, sizeof *dst->fields);
    ok = dst->fields != NULL;
    for (size_t i = 0; ok && i < src->n_fields; i++) {
      dst->n_fields = i + 1;
      ok = field_copy(&src->fields[i], &dst->fields[i]);
    }
  }
  if (!ok) {
    trb_bq_table_deinit(dst);
    return OOM(st);
  }
  return GRPC_STATUS_OK;
}

static bool fields_equal(const trb_bq_field_t *a, size_t na,
                         const trb_bq_field_t *b, size_t nb) {
  if (na != nb) return false;
  for (size_t i = 0; i < na; i++) {
    if (strcasecmp(a[i].name, b[i].name) || a[i].type != b[i].type ||
        a[i].mode != b[i].mode || a[i].max_length != b[i].max_length ||
        a[i].precision != b[i].precision || a[i].scale != b[i].scale ||
        !!a[i].default_value_expression != !!b[i].default_value_expression ||
        (a[i].default_value_expression &&
         strcmp(a[i].default_value_expression, b[i].default_value_expression)) ||
        !fields_equal(a[i].fields, a[i].n_fields, b[i].fields, b[i].n_fields))
      return false;
  }
  return true;
}

bool trb_bq_schema_equal(const trb_bq_table_t *a, const trb_bq_table_t *b) {
  return fields_equal(a->fields, a->n_fields, b->fields, b->n_fields);
}

/* ---- TableSchema (nanopb) ----------------------------------------------- */

/* nanopb's pb_release frees with free(): allocate with malloc here. */
static char *pb_strdup_opt(const char *s, bool *ok) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *ok = false;
  return d;
}

static bool to_proto_fields(const trb_bq_field_t *fs, size_t n,
                            pb_size_t *count,
                            google_cloud_bigquery_storage_v1_TableFieldSchema **out) {
  if (n == 0) return true;
  *out = calloc(n, sizeof **out);
  if (!*out) return false;
  *count = (pb_size_t)n;
  bool ok = true;
  for (size_t i = 0; ok && i < n; i++) {
    google_cloud_bigquery_storage_v1_TableFieldSchema *p = &(*out)[i];
    p->name = pb_strdup_opt(fs[i].name, &ok);
    p->type = (google_cloud_bigquery_storage_v1_TableFieldSchema_Type)fs[i].type;
    p->mode = (google_cloud_bigquery_storage_v1_TableFieldSchema_Mode)fs[i].mode;
    p->description = pb_strdup_opt(fs[i].description, &ok);
    p->max_length = fs[i].max_length;
    p->precision = fs[i].precision;
    p->scale = fs[i].scale;
    p->default_value_expression = pb_strdup_opt(fs[i].default_value_expression, &ok);
    if (ok) ok = to_proto_fields(fs[i].fields, fs[i].n_fields, &p->fields_count,
                                 &p->fields);
  }
  return ok;
}

grpc_status_code trb_bq_table_to_proto(
    const trb_bq_table_t *t, google_cloud_bigquery_storage_v1_TableSchema *out,
    trb_status_t *st) {
  memset(out, 0, sizeof *out);
  if (!to_proto_fields(t->fields, t->n_fields, &out->fields_count,
                       &out->fields)) {
    pb_release(google_cloud_bigquery_storage_v1_TableSchema_fields, out);
    memset(out, 0, sizeof *out);
    return OOM(st);
  }
  return GRPC_STATUS_OK;
}

static grpc_status_code from_proto_fields(
    const google_cloud_bigquery_storage_v1_TableFieldSchema *in, size_t n,
    const char *path, int depth, trb_bq_field_t **out, size_t *n_out,
    trb_status_t *st) {
  if (n == 0) return bad(st, path, "no fields");
  trb_bq_field_t *fs = trb_calloc(n, sizeof *fs);
  if (!fs) return OOM(st);
  *out = fs;
  *n_out = n;
  char p[512];
  for (size_t i = 0; i < n; i++) {
    snprintf(p, sizeof p, "%s[%zu]", path, i);
    const google_cloud_bigquery_storage_v1_TableFieldSchema *f = &in[i];
    if (!f->name || !valid_name(f->name)) return bad(st, p, "invalid name");
    if (trb_bq_field_find(fs, i, f->name, strlen(f->name)) >= 0)
      return bad(st, p, "duplicate field name \"%s\"", f->name);
    fs[i].name = trb_strdup(f->name);
    if (!fs[i].name) return OOM(st);
    if (f->description && !(fs[i].description = trb_strdup(f->description)))
      return OOM(st);
    int ty = (int)f->type;
    if (ty < TRB_BQ_TYPE_STRING || ty > TRB_BQ_TYPE_JSON)
      return bad(st, p, "unsupported type %d", ty);
    fs[i].type = (trb_bq_type_t)ty;
    int mode = (int)f->mode;
    fs[i].mode = mode == 0 ? TRB_BQ_MODE_NULLABLE : (trb_bq_mode_t)mode;
    if (mode < 0 || mode > 3) return bad(st, p, "unknown mode %d", mode);
    fs[i].max_length = f->max_length;
    fs[i].precision = f->precision;
    fs[i].scale = f->scale;
    if (f->default_value_expression && *f->default_value_expression) {
      if (!(fs[i].default_value_expression = trb_strdup(f->default_value_expression)))
        return OOM(st);
      grpc_status_code c = check_default(&fs[i], depth, p, st);
      if (c) return c;
    }
    if (fs[i].type == TRB_BQ_TYPE_STRUCT) {
      if (depth >= MAX_DEPTH) return bad(st, p, "nested too deeply");
      char p2[600];
      snprintf(p2, sizeof p2, "%s.fields", p);
      grpc_status_code c = from_proto_fields(f->fields, f->fields_count, p2,
                                             depth + 1, &fs[i].fields,
                                             &fs[i].n_fields, st);
      if (c) return c;
    } else if (f->fields_count) {
      return bad(st, p, "fields on a non-STRUCT field");
    }
  }
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bq_table_from_proto(
    const google_cloud_bigquery_storage_v1_TableSchema *in,
    trb_bq_table_t *out, trb_status_t *st) {
  memset(out, 0, sizeof *out);
  grpc_status_code c = from_proto_fields(in->fields, in->fields_count,
                                         "fields", 0, &out->fields,
                                         &out->n_fields, st);
  if (c) trb_bq_table_deinit(out);
  return c;
}

grpc_status_code trb_bq_table_parse_json(const char *json, size_t len,
                                         trb_bq_table_t **out,
                                         trb_status_t *st) {
  *out = NULL;
  trb_bq_table_t *t = trb_calloc(1, sizeof *t);
  if (!t) return OOM(st);
  grpc_status_code c = trb_bq_table_parse(json, len, t, st);
  if (c) {
    trb_free(t);
    return c;
  }
  *out = t;
  return GRPC_STATUS_OK;
}

void trb_bq_table_free(trb_bq_table_t *t) {
  if (!t) return;
  trb_bq_table_deinit(t);
  trb_free(t);
}
