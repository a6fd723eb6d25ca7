/*
 * pipeline.c — pipeline file, environment and flag settings of the
 * streamer (see pipeline.h).
 */
#include "src/streamer/pipeline.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "src/common/alloc.h"
#include "src/streamer/jsonfield.h"

#define OFF(f) offsetof(trb_pipeline_t, f)

static const trb_config_entry_t kEntries[] = {
    {"project", TRB_CONFIG_STRING, NULL, OFF(project), 0, 0, 0, 0, NULL,
     "Google Cloud project (else GOOGLE_CLOUD_PROJECT)."},
    {"subscription", TRB_CONFIG_STRING, NULL, OFF(subscription), 0, 0, 0, 0,
     NULL, "Pub/Sub subscription to stream from (short or full name)."},
    {"dead_letter_topic", TRB_CONFIG_STRING, NULL, OFF(dead_letter_topic), 0,
     0, 0, 0, NULL,
     "Topic that receives messages that cannot be written, with the reason."},
    {"delivery", TRB_CONFIG_STRING, "exactly_once", OFF(delivery_text), 0, 0,
     0, 0, NULL,
     "exactly_once (COMMITTED streams + WAL) or at_least_once (_default)."},
    {"workers", TRB_CONFIG_INT64, "2", OFF(workers), 1, 64, 0, 0, "threads",
     "Worker threads; each owns its streams, transcoders and writers."},
    {"streams_per_worker", TRB_CONFIG_INT64, "1", OFF(streams_per_worker), 1,
     16, 0, 0, "streams", "StreamingPull streams per worker."},
    {"batch_max_rows", TRB_CONFIG_INT64, "500", OFF(batch_max_rows), 1, 10000,
     0, 0, "rows", "Most rows in one AppendRows request."},
    {"batch_max_bytes", TRB_CONFIG_SIZE_BYTES, "4MiB", OFF(batch_max_bytes),
     1024, 9000000, 0, 0, NULL, "Most serialized row bytes in one request."},
    {"batch_max_latency", TRB_CONFIG_DURATION_MS, "50ms",
     OFF(batch_max_latency_ms), 1, 60000, 0, 0, NULL,
     "Longest a row waits for its batch to fill."},
    {"max_outstanding_messages", TRB_CONFIG_INT64, "2000",
     OFF(max_outstanding_messages), 1, 1000000, 0, 0, "messages",
     "Flow control per worker: messages held (received, not acked)."},
    {"max_outstanding_bytes", TRB_CONFIG_SIZE_BYTES, "64MiB",
     OFF(max_outstanding_bytes), 1024, (int64_t)1 << 40, 0, 0, NULL,
     "Flow control per worker: message bytes held."},
    {"wal_dir", TRB_CONFIG_STRING, "./tributary-wal", OFF(wal_dir), 0, 0, 0, 0,
     NULL, "Write-ahead log directory (exactly_once)."},
    {"wal_sync", TRB_CONFIG_STRING, "fsync", OFF(wal_sync_text), 0, 0, 0, 0,
     NULL, "fsync (power-loss safe) or none (kill -9 safe only)."},
    {"wal_max_bytes", TRB_CONFIG_SIZE_BYTES, "1GiB", OFF(wal_max_bytes), 0, 0,
     0, 0, NULL, "Disk budget of the WAL; when full, pulling stops."},
    {"http_port", TRB_CONFIG_INT64, "9464", OFF(http_port), -1, 65535, 0, 0,
     "port", "Port of /healthz, /readyz, /metrics; 0 = any, -1 = none."},
    {"grace_period", TRB_CONFIG_DURATION_MS, "10s", OFF(grace_period_ms), 0,
     3600000, 0, 0, NULL, "How long SIGTERM waits for in-flight work."},
    {"route_field", TRB_CONFIG_STRING, "event_type", OFF(route_field), 0, 0, 0,
     0, NULL, "JSON field the routes match when they name none."},
};

const trb_config_table_t trb_pipeline_table = {
    "stream", kEntries, sizeof(kEntries) / sizeof(kEntries[0])};

grpc_status_code trb_pipeline_defaults(trb_pipeline_t *p, trb_status_t *st) {
  p->default_table = -1;
  return trb_config_defaults(&trb_pipeline_table, p, st);
}

static char *dupz(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = trb_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static grpc_status_code bad(trb_status_t *st, const char *file,
                            const char *path, const char *why) {
  return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "%s: %s: %s", file,
                        path, why);
}

/* "dataset.table" with BigQuery's character rules. */
static bool valid_table_name(const char *s) {
  const char *dot = strchr(s, '.');
  if (!dot || dot == s || !dot[1] || strchr(dot + 1, '.')) return false;
  for (const char *c = s; *c; c++) {
    if (c == dot) continue;
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
      return false;
  }
  return true;
}

/* Index of table `name`, added with default options when new. */
static int64_t table_index(trb_pipeline_t *p, const char *name) {
  for (size_t i = 0; i < p->n_tables; i++)
    if (strcmp(p->tables[i].name, name) == 0) return (int64_t)i;
  trb_table_opts_t *t =
      trb_realloc(p->tables, (p->n_tables + 1) * sizeof *p->tables);
  if (!t) return -2;
  p->tables = t;
  memset(&t[p->n_tables], 0, sizeof *t);
  t[p->n_tables].name = dupz(name);
  if (!t[p->n_tables].name) return -2;
  return (int64_t)p->n_tables++;
}

static grpc_status_code scalar_text(json_t *v, char *buf, size_t cap,
                                    const char **out) {
  if (json_is_string(v)) {
    *out = json_string_value(v);
  } else if (json_is_integer(v)) {
    snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    *out = buf;
  } else if (json_is_boolean(v)) {
    *out = json_is_true(v) ? "true" : "false";
  } else if (json_is_real(v)) {
    snprintf(buf, cap, "%.17g", json_real_value(v));
    *out = buf;
  } else {
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  return GRPC_STATUS_OK;
}

static grpc_status_code parse_routes(trb_pipeline_t *p, const char *file,
                                     json_t *arr, trb_status_t *st) {
  if (!json_is_array(arr)) return bad(st, file, "$.routes", "must be an array");
  char path[96];
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *r = json_array_get(arr, i);
    snprintf(path, sizeof path, "$.routes[%zu]", i);
    if (!json_is_object(r)) return bad(st, file, path, "must be an object");
    const char *k;
    json_t *v;
    json_object_foreach(r, k, v) {
      if (strcmp(k, "field") && strcmp(k, "attribute") && strcmp(k, "equals") &&
          strcmp(k, "table")) {
        char why[160];
        snprintf(why, sizeof why,
                 "unknown key \"%.60s\" (expected field, attribute, equals, "
                 "table)", k);
        return bad(st, file, path, why);
      }
    }
    json_t *field = json_object_get(r, "field");
    json_t *attr = json_object_get(r, "attribute");
    json_t *eq = json_object_get(r, "equals");
    json_t *table = json_object_get(r, "table");
    if (field && attr)
      return bad(st, file, path, "give either field or attribute, not both");
    if ((field && (!json_is_string(field) || !*json_string_value(field))) ||
        (attr && (!json_is_string(attr) || !*json_string_value(attr))))
      return bad(st, file, path, "field / attribute must be a non-empty string");
    char buf[64];
    const char *eqs;
    if (!eq || json_is_null(eq) || scalar_text(eq, buf, sizeof buf, &eqs))
      return bad(st, file, path,
                 "equals is required (a string, number or boolean)");
    if (!json_is_string(table) || !valid_table_name(json_string_value(table)))
      return bad(st, file, path, "table must be \"<dataset>.<table>\"");
    int64_t ti = table_index(p, json_string_value(table));
    if (ti < 0) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
    trb_route_rule_t *nr =
        trb_realloc(p->rules, (p->n_rules + 1) * sizeof *p->rules);
    if (!nr) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
    p->rules = nr;
    trb_route_rule_t *rule = &nr[p->n_rules++];
    memset(rule, 0, sizeof *rule);
    rule->table = (size_t)ti;
    rule->equals = dupz(eqs);
    rule->equals_len = rule->equals ? strlen(rule->equals) : 0;
    if (field) rule->field = dupz(json_string_value(field));
    if (attr) rule->attribute = dupz(json_string_value(attr));
    if (!rule->equals || (field && !rule->field) || (attr && !rule->attribute))
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  }
  return GRPC_STATUS_OK;
}

static grpc_status_code parse_tables(trb_pipeline_t *p, const char *file,
                                     json_t *obj, trb_status_t *st) {
  if (!json_is_object(obj)) return bad(st, file, "$.tables", "must be an object");
  const char *name;
  json_t *t;
  char path[160];
  json_object_foreach(obj, name, t) {
    snprintf(path, sizeof path, "$.tables[\"%.100s\"]", name);
    if (!valid_table_name(name))
      return bad(st, file, path, "table keys must be \"<dataset>.<table>\"");
    if (!json_is_object(t)) return bad(st, file, path, "must be an object");
    int64_t ti = table_index(p, name);
    if (ti < 0) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
    trb_table_opts_t *o = &p->tables[ti];
    const char *k;
    json_t *v;
    json_object_foreach(t, k, v) {
      char kp[200];
      snprintf(kp, sizeof kp, "%s.%s", path, k);
      if (strcmp(k, "unknown_fields") == 0) {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "reject") == 0) o->ignore_unknown_fields = false;
        else if (s && strcmp(s, "ignore") == 0) o->ignore_unknown_fields = true;
        else return bad(st, file, kp, "must be \"reject\" or \"ignore\"");
      } else if (strcmp(k, "write_metadata") == 0 || strcmp(k, "envelope") == 0) {
        if (!json_is_boolean(v)) return bad(st, file, kp, "must be true or false");
        if (k[0] == 'w') o->write_metadata = json_is_true(v);
        else o->envelope = json_is_true(v);
      } else {
        return bad(st, file, kp,
                   "unknown key (expected unknown_fields, write_metadata, "
                   "envelope)");
      }
    }
  }
  return GRPC_STATUS_OK;
}

grpc_status_code trb_pipeline_apply_json(trb_pipeline_t *p, const char *file,
                                         const char *json, size_t len,
                                         trb_status_t *st) {
  p->first_ready = false; /* rules or route_field may change */
  p->first_key = NULL;
  json_error_t err;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
  if (!root) {
    char why[240];
    snprintf(why, sizeof why, "line %d column %d: %s", err.line, err.column,
             err.text);
    return bad(st, file, "$", why);
  }
  grpc_status_code code = GRPC_STATUS_OK;
  trb_config_seen_t *seen = NULL;
  if (!json_is_object(root)) {
    code = bad(st, file, "$", "the pipeline file must be a JSON object");
    goto out;
  }
  seen = trb_config_seen_create(&trb_pipeline_table);
  if (!seen) {
    code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
    goto out;
  }
  json_t *routes = json_object_get(root, "routes");
  json_t *tables = json_object_get(root, "tables");
  json_t *def = json_object_get(root, "default_table");
  if (tables && (code = parse_tables(p, file, tables, st))) goto out;
  if (routes && (code = parse_routes(p, file, routes, st))) goto out;
  if (def && !json_is_null(def)) {
    if (!json_is_string(def) || !valid_table_name(json_string_value(def))) {
      code = bad(st, file, "$.default_table",
                 "must be \"<dataset>.<table>\" or null");
      goto out;
    }
    p->default_table = table_index(p, json_string_value(def));
    if (p->default_table < 0) {
      code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
      goto out;
    }
  }
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if (!strcmp(k, "routes") || !strcmp(k, "tables") ||
        !strcmp(k, "default_table"))
      continue;
    char src[200], buf[64];
    snprintf(src, sizeof src, "%s: $.%.100s", file, k);
    const char *text;
    if (scalar_text(v, buf, sizeof buf, &text) != GRPC_STATUS_OK) {
      code = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s: must be a string, number or boolean", src);
      goto out;
    }
    code = trb_config_set(&trb_pipeline_table, p, seen, k, text, src, st);
    if (code) goto out;
  }
  if (p->pipeline_file == NULL) p->pipeline_file = dupz(file);
out:
  trb_config_seen_destroy(seen);
  json_decref(root);
  return code;
}

grpc_status_code trb_pipeline_load_file(trb_pipeline_t *p, const char *path,
                                        trb_status_t *st) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return trb_status_set(st,
                          errno == ENOENT ? GRPC_STATUS_NOT_FOUND
                                          : GRPC_STATUS_PERMISSION_DENIED,
                          "%s: %s", path, strerror(errno));
  char *text = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 > cap) {
      cap = cap ? cap * 2 : 8192;
      char *n = trb_realloc(text, cap);
      if (!n) {
        fclose(f);
        trb_free(text);
        return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
      }
      text = n;
    }
    size_t got = fread(text + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  fclose(f);
  grpc_status_code code = trb_pipeline_apply_json(p, path, text, len, st);
  trb_free(text);
  return code;
}

/* Expand a short name into projects/<p>/<kind>/<name>. */
static grpc_status_code full_name(char **name, const char *project,
                                  const char *kind, const char *key,
                                  trb_status_t *st) {
  if (!*name || !**name)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "pipeline: %s: is required", key);
  if (strncmp(*name, "projects/", 9) == 0) {
    char want[64];
    snprintf(want, sizeof want, "/%s/", kind);
    if (!strstr(*name, want))
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "pipeline: %s: \"%s\" is not a %s name", key, *name,
                            kind);
    return GRPC_STATUS_OK;
  }
  if (strchr(*name, '/'))
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "pipeline: %s: \"%s\" must be a short name or "
                          "projects/<p>/%s/<name>",
                          key, *name, kind);
  size_t n = strlen(project) + strlen(kind) + strlen(*name) + 16;
  char *f = trb_malloc(n);
  if (!f) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  snprintf(f, n, "projects/%s/%s/%s", project, kind, *name);
  trb_free(*name);
  *name = f;
  return GRPC_STATUS_OK;
}

static const char *first_key_of(const trb_pipeline_t *p);

grpc_status_code trb_pipeline_finish(trb_pipeline_t *p, trb_status_t *st) {
  if (!p->project || !*p->project) {
    const char *env = getenv("GOOGLE_CLOUD_PROJECT");
    if (env && *env) {
      trb_free(p->project);
      p->project = dupz(env);
    }
  }
  if (!p->project || !*p->project)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "pipeline: project: is required (or set "
                          "GOOGLE_CLOUD_PROJECT)");
  grpc_status_code code;
  if ((code = full_name(&p->subscription, p->project, "subscriptions",
                        "subscription", st)) ||
      (code = full_name(&p->dead_letter_topic, p->project, "topics",
                        "dead_letter_topic", st)))
    return code;
  if (strcmp(p->delivery_text, "exactly_once") == 0)
    p->delivery = TRB_DELIVERY_EXACTLY_ONCE;
  else if (strcmp(p->delivery_text, "at_least_once") == 0)
    p->delivery = TRB_DELIVERY_AT_LEAST_ONCE;
  else
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "pipeline: delivery: \"%s\" is not exactly_once or "
                          "at_least_once",
                          p->delivery_text);
  if (strcmp(p->wal_sync_text, "fsync") == 0) p->wal_fsync = true;
  else if (strcmp(p->wal_sync_text, "none") == 0) p->wal_fsync = false;
  else
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "pipeline: wal_sync: \"%s\" is not fsync or none",
                          p->wal_sync_text);
  if (p->n_rules == 0 && p->default_table < 0)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "pipeline: routes: no route and no default_table; "
                          "every message would be dead-lettered");
  if (!p->route_field || !*p->route_field)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "pipeline: route_field: must not be empty");
  for (size_t i = 0; i < p->n_tables; i++) {
    trb_table_opts_t *t = &p->tables[i];
    if (t->path) continue;
    const char *dot = strchr(t->name, '.');
    size_t n = strlen(p->project) + strlen(t->name) + 40;
    t->path = trb_malloc(n);
    if (!t->path) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
    snprintf(t->path, n, "projects/%s/datasets/%.*s/tables/%s", p->project,
             (int)(dot - t->name), t->name, dot + 1);
  }
  p->first_key = first_key_of(p);
  p->first_key_len = p->first_key ? strlen(p->first_key) : 0;
  p->first_key_plain =
      p->first_key && trb_json_key_plain(p->first_key, p->first_key_len);
  p->first_ready = true;
  return GRPC_STATUS_OK;
}

int64_t trb_pipeline_route(const trb_pipeline_t *p, const char *json,
                           size_t len, const char *const *attr_keys,
                           const char *const *attr_values, size_t n_attrs) {
  /* The value of the last field looked up: rules on the same field (the
   * usual case: one route_field, one rule per value) scan the text once. */
  const char *looked_up = NULL;
  const char *v = NULL;
  size_t vl = 0;
  trb_json_kind_t k = TRB_JSON_MISSING;
  for (size_t i = 0; i < p->n_rules; i++) {
    const trb_route_rule_t *r = &p->rules[i];
    if (r->attribute) {
      for (size_t a = 0; a < n_attrs; a++)
        if (strcmp(attr_keys[a], r->attribute) == 0 &&
            strcmp(attr_values[a], r->equals) == 0)
          return (int64_t)r->table;
      continue;
    }
    const char *path = r->field ? r->field : p->route_field;
    if (!looked_up || strcmp(path, looked_up) != 0) {
      k = trb_json_field(json, len, path, &v, &vl);
      looked_up = path;
    }
    if (k == TRB_JSON_STRING) {
      if (trb_json_string_equals(v, vl, r->equals)) return (int64_t)r->table;
    } else if (k == TRB_JSON_NUMBER || k == TRB_JSON_BOOL) {
      if (r->equals_len == vl && memcmp(v, r->equals, vl) == 0)
        return (int64_t)r->table;
    }
  }
  return p->default_table;
}

/* The one top-level field every rule reads (borrowed from `p`), or NULL
 * when a rule reads an attribute, a nested field or another field. */
static const char *first_key_of(const trb_pipeline_t *p) {
  const char *path = p->route_field;
  if (p->n_rules == 0) return NULL;
  for (size_t i = 0; i < p->n_rules; i++) {
    const trb_route_rule_t *r = &p->rules[i];
    if (r->attribute) return NULL;
    const char *f = r->field ? r->field : p->route_field;
    if (!f) return NULL;
    if (i == 0) path = f;
    else if (strcmp(f, path) != 0) return NULL;
  }
  if (!path || strchr(path, '.')) return NULL;
  return path;
}

int64_t trb_pipeline_route_first(const trb_pipeline_t *p, const char *json,
                                 size_t len, const char **key,
                                 const char **raw, size_t *raw_len) {
  const char *path;
  size_t path_len;
  if (p->first_ready) {
    path = p->first_key;
    path_len = p->first_key_len;
  } else {
    path = first_key_of(p);
    path_len = path ? strlen(path) : 0;
  }
  if (!path) return TRB_PIPELINE_ROUTE_FULL;
  const char *v;
  size_t vl;
  trb_json_kind_t k =
      p->first_ready && p->first_key_plain
          ? trb_json_field_first_plain(json, len, path, path_len, &v, &vl, raw,
                                       raw_len)
          : trb_json_field_first(json, len, path, path_len, &v, &vl, raw,
                                 raw_len);
  if (k != TRB_JSON_STRING && k != TRB_JSON_NUMBER && k != TRB_JSON_BOOL)
    return TRB_PIPELINE_ROUTE_FULL;
  /* A string body without a backslash is its own decoded text, so it
   * equals a rule's text exactly when the bytes do (the escape-aware
   * trb_json_string_equals otherwise); numbers and booleans compare by
   * their JSON text. */
  bool plain = k != TRB_JSON_STRING || !memchr(v, '\\', vl);
  for (size_t i = 0; i < p->n_rules; i++) {
    const trb_route_rule_t *r = &p->rules[i];
    if (plain) {
      if (r->equals_len != vl || memcmp(v, r->equals, vl) != 0) continue;
    } else if (!trb_json_string_equals(v, vl, r->equals)) {
      continue;
    }
    *key = path;
    return (int64_t)r->table;
  }
  return TRB_PIPELINE_ROUTE_FULL;
}

void trb_pipeline_free(trb_pipeline_t *p) {
  if (!p) return;
  trb_config_free(&trb_pipeline_table, p);
  for (size_t i = 0; i < p->n_rules; i++) {
    trb_free(p->rules[i].field);
    trb_free(p->rules[i].attribute);
    trb_free(p->rules[i].equals);
  }
  trb_free(p->rules);
  for (size_t i = 0; i < p->n_tables; i++) {
    trb_free(p->tables[i].name);
    trb_free(p->tables[i].path);
  }
  trb_free(p->tables);
  trb_free(p->pipeline_file);
  memset(p, 0, sizeof *p);
  p->default_table = -1;
}
