/*
 * config.c — `--config FILE` (see config.h): JSON → Topic / Subscription.
 */
#include "src/emulator/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/common/alloc.h"
#include "src/rpc/pb.h"

typedef struct {
  const char *origin;
  const char *project;
  trb_status_t *st;
} ctx_t;

__attribute__((format(printf, 3, 4))) static grpc_status_code bad(
    ctx_t *c, const char *path, const char *fmt, ...) {
  char reason[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  return trb_status_set(c->st, GRPC_STATUS_INVALID_ARGUMENT, "%s: %s: %s",
                        c->origin ? c->origin : "config", path, reason);
}

/* "events" → "projects/{p}/{kind}/events"; full names kept. */
static char *expand_name(ctx_t *c, const char *kind, const char *name) {
  if (strncmp(name, "projects/", 9) == 0) return trb_pb_strdup(name);
  size_t n = strlen(c->project) + strlen(kind) + strlen(name) + 16;
  char *buf = malloc(n);
  if (buf) snprintf(buf, n, "projects/%s/%s/%s", c->project, kind, name);
  return buf;
}

/* Only the listed keys may appear in `obj`. */
static grpc_status_code check_keys(ctx_t *c, const char *path, json_t *obj,
                                   const char *const *allowed) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    bool ok = false;
    for (const char *const *a = allowed; *a; a++) ok = ok || strcmp(*a, key) == 0;
    if (!ok) {
      char p[192];
      snprintf(p, sizeof(p), "%s.%s", path, key);
      return bad(c, p, "unknown key");
    }
  }
  return GRPC_STATUS_OK;
}

static grpc_status_code get_string(ctx_t *c, const char *path, json_t *obj,
                                   const char *key, const char **out) {
  json_t *v = json_object_get(obj, key);
  *out = NULL;
  if (!v) return GRPC_STATUS_OK;
  if (!json_is_string(v)) {
    char p[192];
    snprintf(p, sizeof(p), "%s.%s", path, key);
    return bad(c, p, "must be a string");
  }
  *out = json_string_value(v);
  return GRPC_STATUS_OK;
}

static grpc_status_code get_int(ctx_t *c, const char *path, json_t *obj,
                                const char *key, int32_t *out) {
  json_t *v = json_object_get(obj, key);
  if (!v) return GRPC_STATUS_OK;
  char p[192];
  snprintf(p, sizeof(p), "%s.%s", path, key);
  if (!json_is_integer(v)) return bad(c, p, "must be an integer");
  json_int_t i = json_integer_value(v);
  if (i < INT32_MIN || i > INT32_MAX) return bad(c, p, "out of range");
  *out = (int32_t)i;
  return GRPC_STATUS_OK;
}

static grpc_status_code get_bool(ctx_t *c, const char *path, json_t *obj,
                                 const char *key, bool *out) {
  json_t *v = json_object_get(obj, key);
  if (!v) return GRPC_STATUS_OK;
  if (!json_is_boolean(v)) {
    char p[192];
    snprintf(p, sizeof(p), "%s.%s", path, key);
    return bad(c, p, "must be true or false");
  }
  *out = json_is_true(v);
  return GRPC_STATUS_OK;
}

/* Proto3 JSON Duration: "<seconds>[.<fraction>]s", e.g. "10s", "1.5s". */
static grpc_status_code get_duration(ctx_t *c, const char *path, json_t *obj,
                                     const char *key, bool *has,
                                     google_protobuf_Duration *out) {
  const char *s;
  grpc_status_code code = get_string(c, path, obj, key, &s);
  if (code != GRPC_STATUS_OK || !s) return code;
  char p[192];
  snprintf(p, sizeof(p), "%s.%s", path, key);
  char *end;
  errno = 0;
  long long secs = strtoll(s, &end, 10);
  int32_t nanos = 0;
  if (end == s || errno || secs < 0) {
    return bad(c, p, "\"%s\" is not a duration like \"10s\"", s);
  }
  if (*end == '.') {
    end++;
    int digits = 0;
    while (*end >= '0' && *end <= '9') {
      if (digits < 9) nanos = nanos * 10 + (*end - '0');
      digits++;
      end++;
    }
    if (digits == 0) return bad(c, p, "\"%s\" is not a duration like \"10s\"", s);
    for (; digits < 9; digits++) nanos *= 10;
  }
  if (strcmp(end, "s") != 0) {
    return bad(c, p, "\"%s\" is not a duration like \"10s\"", s);
  }
  *has = true;
  out->seconds = secs;
  out->nanos = nanos;
  return GRPC_STATUS_OK;
}

/* "labels": {"k": "v"} into a nanopb LabelsEntry array (key, value). */
typedef struct {
  char *key;
  char *value;
} label_t;

static grpc_status_code get_labels(ctx_t *c, const char *path, json_t *obj,
                                   pb_size_t *count, void **entries) {
  json_t *v = json_object_get(obj, "labels");
  if (!v) return GRPC_STATUS_OK;
  char p[192];
  snprintf(p, sizeof(p), "%s.labels", path);
  if (!json_is_object(v)) return bad(c, p, "must be an object");
  size_t n = json_object_size(v);
  if (n == 0) return GRPC_STATUS_OK;
  label_t *l = calloc(n, sizeof(*l));
  if (!l) return trb_status_set(c->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "labels");
  *entries = l;
  const char *key;
  json_t *val;
  size_t i = 0;
  json_object_foreach(v, key, val) {
    if (!json_is_string(val)) {
      char q[256];
      snprintf(q, sizeof(q), "%s.%s", p, key);
      return bad(c, q, "must be a string");
    }
    l[i].key = trb_pb_strdup(key);
    l[i].value = trb_pb_strdup(json_string_value(val));
    *count = (pb_size_t)++i;
    if (!l[i - 1].key || !l[i - 1].value)
      return trb_status_set(c->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "labels");
  }
  return GRPC_STATUS_OK;
}

static grpc_status_code parse_topic(ctx_t *c, const char *path, json_t *v,
                                    google_pubsub_v1_Topic *t) {
  static const char *const keys[] = {"name", "labels",
                                     "messageRetentionDuration", NULL};
  const char *name = NULL;
  grpc_status_code code = GRPC_STATUS_OK;
  if (json_is_string(v)) {
    name = json_string_value(v);
  } else if (json_is_object(v)) {
    if ((code = check_keys(c, path, v, keys)) != GRPC_STATUS_OK) return code;
    if ((code = get_string(c, path, v, "name", &name)) != GRPC_STATUS_OK) return code;
    code = get_labels(c, path, v, &t->labels_count, (void **)&t->labels);
    if (code != GRPC_STATUS_OK) return code;
    code = get_duration(c, path, v, "messageRetentionDuration",
                        &t->has_message_retention_duration,
                        &t->message_retention_duration);
    if (code != GRPC_STATUS_OK) return code;
  } else {
    return bad(c, path, "must be a topic name or a Topic object");
  }
  if (!name || !*name) return bad(c, path, "needs a \"name\"");
  t->name = expand_name(c, "topics", name);
  if (!t->name) return trb_status_set(c->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "topic");
  return GRPC_STATUS_OK;
}

static grpc_status_code parse_subscription(ctx_t *c, const char *path,
                                           json_t *v,
                                           google_pubsub_v1_Subscription *s) {
  static const char *const keys[] = {
      "name", "topic", "ackDeadlineSeconds", "retainAckedMessages",
      "messageRetentionDuration", "labels", "enableMessageOrdering", "filter",
      "deadLetterPolicy", "retryPolicy", "enableExactlyOnceDelivery", NULL};
  if (!json_is_object(v)) return bad(c, path, "must be a Subscription object");
  grpc_status_code code = check_keys(c, path, v, keys);
  const char *name = NULL, *topic = NULL, *filter = NULL;
  if (code == GRPC_STATUS_OK) code = get_string(c, path, v, "name", &name);
  if (code == GRPC_STATUS_OK) code = get_string(c, path, v, "topic", &topic);
  if (code == GRPC_STATUS_OK) code = get_string(c, path, v, "filter", &filter);
  if (code == GRPC_STATUS_OK)
    code = get_int(c, path, v, "ackDeadlineSeconds", &s->ack_deadline_seconds);
  if (code == GRPC_STATUS_OK)
    code = get_bool(c, path, v, "retainAckedMessages", &s->retain_acked_messages);
  if (code == GRPC_STATUS_OK)
    code = get_bool(c, path, v, "enableMessageOrdering", &s->enable_message_ordering);
  if (code == GRPC_STATUS_OK)
    code = get_bool(c, path, v, "enableExactlyOnceDelivery",
                    &s->enable_exactly_once_delivery);
  if (code == GRPC_STATUS_OK)
    code = get_duration(c, path, v, "messageRetentionDuration",
                        &s->has_message_retention_duration,
                        &s->message_retention_duration);
  if (code == GRPC_STATUS_OK)
    code = get_labels(c, path, v, &s->labels_count, (void **)&s->labels);
  if (code != GRPC_STATUS_OK) return code;
  if (!name || !*name) return bad(c, path, "needs a \"name\"");
  if (!topic || !*topic) return bad(c, path, "needs a \"topic\"");
  s->name = expand_name(c, "subscriptions", name);
  s->topic = expand_name(c, "topics", topic);
  if (filter) s->filter = trb_pb_strdup(filter);
  if (!s->name || !s->topic || (filter && !s->filter))
    return trb_status_set(c->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "subscription");

  char p[192];
  json_t *dl = json_object_get(v, "deadLetterPolicy");
  if (dl) {
    static const char *const dkeys[] = {"deadLetterTopic", "maxDeliveryAttempts", NULL};
    snprintf(p, sizeof(p), "%s.deadLetterPolicy", path);
    if (!json_is_object(dl)) return bad(c, p, "must be an object");
    if ((code = check_keys(c, p, dl, dkeys)) != GRPC_STATUS_OK) return code;
    const char *dlt = NULL;
    if ((code = get_string(c, p, dl, "deadLetterTopic", &dlt)) != GRPC_STATUS_OK) return code;
    if (!dlt || !*dlt) return bad(c, p, "needs a \"deadLetterTopic\"");
    code = get_int(c, p, dl, "maxDeliveryAttempts",
                   &s->dead_letter_policy.max_delivery_attempts);
    if (code != GRPC_STATUS_OK) return code;
    s->has_dead_letter_policy = true;
    s->dead_letter_policy.dead_letter_topic = expand_name(c, "topics", dlt);
    if (!s->dead_letter_policy.dead_letter_topic)
      return trb_status_set(c->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "subscription");
  }
  json_t *rp = json_object_get(v, "retryPolicy");
  if (rp) {
    static const char *const rkeys[] = {"minimumBackoff", "maximumBackoff", NULL};
    snprintf(p, sizeof(p), "%s.retryPolicy", path);
    if (!json_is_object(rp)) return bad(c, p, "must be an object");
    if ((code = check_keys(c, p, rp, rkeys)) != GRPC_STATUS_OK) return code;
    s->has_retry_policy = true;
    code = get_duration(c, p, rp, "minimumBackoff",
                        &s->retry_policy.has_minimum_backoff,
                        &s->retry_policy.minimum_backoff);
    if (code == GRPC_STATUS_OK)
      code = get_duration(c, p, rp, "maximumBackoff",
                          &s->retry_policy.has_maximum_backoff,
                          &s->retry_policy.maximum_backoff);
    if (code != GRPC_STATUS_OK) return code;
  }
  return GRPC_STATUS_OK;
}

static char *resolve_relative(const char *origin, const char *rel) {
  if (rel[0] == '/' || !origin || !strchr(origin, '/')) return trb_strdup(rel);
  size_t dir = (size_t)(strrchr(origin, '/') - origin);
  size_t n = dir + 1 + strlen(rel) + 1;
  char *out = trb_malloc(n);
  if (out) snprintf(out, n, "%.*s/%s", (int)dir, origin, rel);
  return out;
}

void trb_emu_file_deinit(trb_emu_file_t *f) {
  if (!f) return;
  trb_free(f->project);
  trb_free(f->tables_dir);
  for (size_t i = 0; i < f->n_topics; i++)
    trb_pb_release(google_pubsub_v1_Topic_fields, &f->topics[i]);
  for (size_t i = 0; i < f->n_subscriptions; i++)
    trb_pb_release(google_pubsub_v1_Subscription_fields, &f->subscriptions[i]);
  trb_free(f->topics);
  trb_free(f->subscriptions);
  memset(f, 0, sizeof(*f));
}

static grpc_status_code parse_doc(ctx_t *c, json_t *root, const char *project,
                                  bool project_overrides, trb_emu_file_t *out) {
  static const char *const keys[] = {"project", "tables", "topics",
                                     "subscriptions", NULL};
  if (!json_is_object(root)) return bad(c, "$", "must be a JSON object");
  grpc_status_code code = check_keys(c, "$", root, keys);
  const char *fproject = NULL, *tables = NULL;
  if (code == GRPC_STATUS_OK) code = get_string(c, "$", root, "project", &fproject);
  if (code == GRPC_STATUS_OK) code = get_string(c, "$", root, "tables", &tables);
  if (code != GRPC_STATUS_OK) return code;
  if (fproject) {
    if (!*fproject) return bad(c, "$.project", "must not be empty");
    out->project = trb_strdup(fproject);
    if (!out->project) return trb_status_set(c->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "config");
  }
  c->project = (fproject && !project_overrides) ? fproject : project;
  if (!c->project || !*c->project) c->project = fproject ? fproject : "local-project";
  if (tables) {
    out->tables_dir = resolve_relative(c->origin, tables);
    if (!out->tables_dir) return trb_status_set(c->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "config");
  }

  json_t *topics = json_object_get(root, "topics");
  if (topics) {
    if (!json_is_array(topics)) return bad(c, "$.topics", "must be an array");
    size_t n = json_array_size(topics);
    out->topics = trb_calloc(n ? n : 1, sizeof(*out->topics));
    if (!out->topics) return trb_status_set(c->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "config");
    for (size_t i = 0; i < n; i++) {
      char path[64];
      snprintf(path, sizeof(path), "topics[%zu]", i);
      out->n_topics = i + 1;
      code = parse_topic(c, path, json_array_get(topics, i), &out->topics[i]);
      if (code != GRPC_STATUS_OK) return code;
    }
  }
  json_t *subs = json_object_get(root, "subscriptions");
  if (subs) {
    if (!json_is_array(subs)) return bad(c, "$.subscriptions", "must be an array");
    size_t n = json_array_size(subs);
    out->subscriptions = trb_calloc(n ? n : 1, sizeof(*out->subscriptions));
    if (!out->subscriptions)
      return trb_status_set(c->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "config");
    for (size_t i = 0; i < n; i++) {
      char path[64];
      snprintf(path, sizeof(path), "subscriptions[%zu]", i);
      out->n_subscriptions = i + 1;
      code = parse_subscription(c, path, json_array_get(subs, i),
                                &out->subscriptions[i]);
      if (code != GRPC_STATUS_OK) return code;
    }
  }
  return GRPC_STATUS_OK;
}

grpc_status_code trb_emu_file_parse(const char *json, size_t len,
                                    const char *origin, const char *project,
                                    bool project_overrides,
                                    trb_emu_file_t *out, trb_status_t *st) {
  memset(out, 0, sizeof(*out));
  ctx_t c = {.origin = origin, .project = project, .st = st};
  json_error_t err;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
  if (!root) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s:%d:%d: %s", origin ? origin : "config", err.line,
                          err.column, err.text);
  }
  grpc_status_code code = parse_doc(&c, root, project, project_overrides, out);
  json_decref(root);
  if (code != GRPC_STATUS_OK) trb_emu_file_deinit(out);
  return code;
}

grpc_status_code trb_emu_file_load(const char *path, const char *project,
                                   bool project_overrides, trb_emu_file_t *out,
                                   trb_status_t *st) {
  memset(out, 0, sizeof(*out));
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    return trb_status_set(st, trb_status_from_errno(e), "%s: %s", path,
                          strerror(e));
  }
  size_t cap = 4096, len = 0;
  char *buf = trb_malloc(cap);
  while (buf) {
    len += fread(buf + len, 1, cap - len, f);
    if (len < cap) break;
    char *nb = trb_realloc(buf, cap * 2);
    if (!nb) {
      trb_free(buf);
      buf = NULL;
      break;
    }
    buf = nb;
    cap *= 2;
  }
  bool read_err = ferror(f);
  fclose(f);
  if (!buf) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s", path);
  if (read_err) {
    trb_free(buf);
    return trb_status_set(st, GRPC_STATUS_UNAVAILABLE, "%s: read error", path);
  }
  grpc_status_code code =
      trb_emu_file_parse(buf, len, path, project, project_overrides, out, st);
  trb_free(buf);
  return code;
}
