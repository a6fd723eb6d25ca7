/*
 * routes.c — see routes.h.
 */
#include "src/ingest/routes.h"

#include <stdio.h>
#include <string.h>

#include "src/common/alloc.h"

const char *trb_ingest_mode_name(trb_ingest_mode_t m) {
  switch (m) {
    case TRB_INGEST_MODE_RAW: return "raw";
    case TRB_INGEST_MODE_PUSH: return "push";
    case TRB_INGEST_MODE_WRAP:
    default: return "wrap";
  }
}

static void trim(const char **s, size_t *n) {
  while (*n > 0 && (**s == ' ' || **s == '\t')) {
    (*s)++;
    (*n)--;
  }
  while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

grpc_status_code trb_ingest_routes_parse(const char *spec,
                                         const char *project,
                                         trb_ingest_routes_t *out,
                                         trb_status_t *st) {
  if (!spec) spec = "";
  const char *p = spec;
  int idx = 0;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    const char *item = p;
    p = comma ? comma + 1 : p + n;
    trim(&item, &n);
    idx++;
    if (n == 0) continue;
    const char *eq = memchr(item, '=', n);
    if (!eq) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "route %d \"%.*s\": want PATH=TOPIC[:MODE]", idx,
                            (int)n, item);
    }
    const char *path = item;
    size_t path_len = (size_t)(eq - item);
    const char *topic = eq + 1;
    size_t topic_len = n - path_len - 1;
    trim(&path, &path_len);
    trb_ingest_mode_t mode = TRB_INGEST_MODE_WRAP;
    /* The mode follows the last ':' when it names a mode (topic names
     * have no ':'). */
    const char *colon = memchr(topic, ':', topic_len);
    if (colon) {
      const char *m = colon + 1;
      size_t mlen = topic_len - (size_t)(m - topic);
      trim(&m, &mlen);
      if (mlen == 4 && memcmp(m, "wrap", 4) == 0) mode = TRB_INGEST_MODE_WRAP;
      else if (mlen == 3 && memcmp(m, "raw", 3) == 0) mode = TRB_INGEST_MODE_RAW;
      else if (mlen == 4 && memcmp(m, "push", 4) == 0) mode = TRB_INGEST_MODE_PUSH;
      else {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "route %d: unknown mode \"%.*s\" (want wrap, "
                              "raw or push)", idx, (int)mlen, m);
      }
      topic_len = (size_t)(colon - topic);
    }
    trim(&topic, &topic_len);
    if (path_len == 0 || path[0] != '/') {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "route %d: path \"%.*s\" must start with '/'", idx,
                            (int)path_len, path);
    }
    for (size_t k = 0; k < path_len; k++) {
      unsigned char ch = (unsigned char)path[k];
      if (ch <= ' ' || ch == '"' || ch == '\\' || ch == '?' || ch == '#' || ch >= 0x7f) {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "route %d: path \"%.*s\" has a character that is "
                              "not allowed (space, quote, backslash, ?, #, "
                              "non-ASCII)", idx, (int)path_len, path);
      }
    }
    if (topic_len == 0) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "route %d: empty topic", idx);
    }
    if (out->n == TRB_INGEST_MAX_ROUTES) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "more than %d routes", TRB_INGEST_MAX_ROUTES);
    }
    for (size_t i = 0; i < out->n; i++) {
      if (strlen(out->routes[i].path) == path_len &&
          memcmp(out->routes[i].path, path, path_len) == 0) {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "route %d: path \"%.*s\" given twice", idx,
                              (int)path_len, path);
      }
    }
    trb_ingest_route_t *r = &out->routes[out->n];
    r->path = trb_strndup(path, path_len);
    if (topic_len > 9 && memcmp(topic, "projects/", 9) == 0) {
      r->topic = trb_strndup(topic, topic_len);
    } else {
      size_t need = strlen(project ? project : "") + topic_len + 32;
      r->topic = trb_malloc(need);
      if (r->topic) {
        snprintf(r->topic, need, "projects/%s/topics/%.*s",
                 project ? project : "", (int)topic_len, topic);
      }
    }
    r->mode = mode;
    out->n++;
    if (!r->path || !r->topic) {
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
  }
  if (out->n == 0) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "no routes");
  }
  return GRPC_STATUS_OK;
}

const trb_ingest_route_t *trb_ingest_routes_match(
    const trb_ingest_routes_t *r, const char *path) {
  for (size_t i = 0; i < r->n; i++) {
    if (strcmp(r->routes[i].path, path) == 0) return &r->routes[i];
  }
  return NULL;
}

void trb_ingest_routes_deinit(trb_ingest_routes_t *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n; i++) {
    trb_free(r->routes[i].path);
    trb_free(r->routes[i].topic);
  }
  r->n = 0;
}
