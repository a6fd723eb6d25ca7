/*
 * ingest.c — see ingest.h. The request handler: routing, authentication,
 * content-type dispatch to the pure codecs (json_input, envelope, push,
 * cloudevent, firestore), then the publish layer (publish.h) and the reply.
 */
#include "src/ingest/ingest.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <jansson.h>

#include "src/common/alloc.h"
#include "src/common/arena.h"
#include "src/common/clock.h"
#include "src/common/log.h"
#include "src/ingest/cloudevent.h"
#include "src/ingest/envelope.h"
#include "src/ingest/firestore.h"
#include "src/ingest/http_server.h"
#include "src/ingest/json_input.h"
#include "src/ingest/metrics.h"
#include "src/ingest/publish.h"
#include "src/ingest/push.h"
#include "src/ingest/routes.h"

#define MAX_BODY_LIMIT (10 * 1024 * 1024)

struct trb_ingest_s {
  trb_ingest_config_t cfg;
  char *bearer; /* "Bearer <token>" or NULL */
  trb_ingest_routes_t routes;
  size_t route_topic[TRB_INGEST_MAX_ROUTES]; /* route → publisher index */
  trb_ingest_metrics_t *metrics;
  trb_ingest_pubs_t *pubs;
  trb_http_server_t *http;
  _Atomic bool draining;
  pthread_mutex_t mu; /* guards shut */
  bool shut;
  grpc_status_code shut_code;
  /* Per-HTTP-thread scratch events (see scratch_t). */
  pthread_key_t scratch_key;
  bool scratch_key_ok;
  pthread_mutex_t scratch_mu; /* guards scratches */
  struct scratch_s *scratches;
  /* Single-event requests given back by completions (any thread), for
   * the HTTP threads to reuse: a stack pushed with CAS and emptied whole
   * with an exchange (so no ABA). Holds at most the peak number of
   * requests in flight at once. */
  _Atomic(struct ireq_s *) free_reqs;
};

/* Events are built in storage of the HTTP thread, reused from request to
 * request: the publisher copies an event into its request buffer inside
 * trb_ingest_pubs_publish, so nothing of the event outlives the handler
 * call. `events[0..cap)` are initialised; their data buffers keep their
 * capacity (up to SCRATCH_KEEP_BYTES) for the next request. Owned by the
 * trb_ingest_t (freed by trb_ingest_destroy); used by one thread. */
typedef struct scratch_s {
  struct scratch_s *next;
  trb_ingest_event_t *events;
  size_t cap;
  struct ireq_s *free_reqs; /* taken from trb_ingest_s.free_reqs */
} scratch_t;

/* Largest data buffer / event count kept for the next request. */
#define SCRATCH_KEEP_BYTES (64 * 1024)
#define SCRATCH_KEEP_EVENTS 64

/* One request with events being published: one allocation holding the
 * request, the batch bookkeeping and the `n` outcomes. */
typedef struct ireq_s {
  struct ireq_s *next_free;
  bool pooled; /* single-event: goes back to ing->free_reqs */
  trb_ingest_t *ing;
  trb_http_request_t *http;
  const trb_ingest_route_t *route;
  int route_idx;
  size_t body_len;
  bool batch;
  size_t n;
  trb_ingest_batch_t pb;
  trb_ingest_outcome_t outs[];
} ireq_t;

/* ---------------------------------------------------------------------- */
/* Replies                                                                 */
/* ---------------------------------------------------------------------- */

static void reply(trb_ingest_t *ing, trb_http_request_t *r, int route_idx,
                  size_t body_len, int status, const char *body, size_t len) {
  char retry[16];
  trb_http_header_t h[1];
  size_t nh = 0;
  if (status == 503) {
    snprintf(retry, sizeof(retry), "%d", ing->cfg.retry_after_s);
    h[nh].name = "Retry-After";
    h[nh].value = retry;
    nh++;
  }
  bool close = atomic_load(&ing->draining);
  trb_ingest_metrics_request(ing->metrics, route_idx, status, body_len);
  trb_http_respond(r, status, "application/json", body, len, h, nh, close);
}

static void reply_error(trb_ingest_t *ing, trb_http_request_t *r,
                        int route_idx, size_t body_len, int status,
                        trb_ingest_reason_t reason, const char *msg) {
  trb_buf_t b = TRB_BUF_INIT;
  if (trb_buf_append_str(&b, "{\"error\":") != 0 ||
      trb_ingest_json_append_str(&b, msg, strlen(msg)) != 0 ||
      trb_buf_append_str(&b, "}") != 0) {
    trb_buf_deinit(&b);
    static const char kOom[] = "{\"error\":\"out of memory\"}";
    reply(ing, r, route_idx, body_len, 503, kOom, sizeof(kOom) - 1);
    return;
  }
  trb_ingest_metrics_rejected(ing->metrics, reason, 1);
  reply(ing, r, route_idx, body_len, status, b.data, b.len);
  trb_buf_deinit(&b);
}

/* HTTP status of an event that was not confirmed. */
static int event_http_status(const trb_ingest_outcome_t *e) {
  switch (e->code) {
    case GRPC_STATUS_OK: return 200;
    case GRPC_STATUS_INVALID_ARGUMENT:
      return e->refused ? 400 : 500; /* refused: message limits */
    case GRPC_STATUS_UNAVAILABLE:
    case GRPC_STATUS_DEADLINE_EXCEEDED:
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
    case GRPC_STATUS_ABORTED:
    case GRPC_STATUS_CANCELLED:
    case GRPC_STATUS_FAILED_PRECONDITION: /* refused: shutting down */
      return e->code == GRPC_STATUS_FAILED_PRECONDITION && !e->refused ? 500 : 503;
    default:
      return 500;
  }
}

static trb_ingest_reason_t event_reason(const trb_ingest_outcome_t *e) {
  if (e->refused) {
    if (e->code == GRPC_STATUS_FAILED_PRECONDITION) return TRB_INGEST_REASON_DRAINING;
    if (e->code == GRPC_STATUS_INVALID_ARGUMENT) return TRB_INGEST_REASON_BAD_REQUEST;
    return TRB_INGEST_REASON_BACKPRESSURE;
  }
  return TRB_INGEST_REASON_PUBLISH_FAILED;
}

static int append_event_result(trb_buf_t *b, const trb_ingest_outcome_t *e) {
  int rc = 0;
  if (e->code == GRPC_STATUS_OK) {
    if (e->issue_id[0]) {
      rc |= trb_buf_append_str(b, "{\"issue_id\":\"");
      rc |= trb_buf_append_str(b, e->issue_id);
      rc |= trb_buf_append_str(b, "\",\"status\":\"created\"}");
    } else {
      rc |= trb_buf_append_str(b, "{\"message_id\":");
      rc |= trb_ingest_json_append_str(b, e->message_id, strlen(e->message_id));
      rc |= trb_buf_append_str(b, ",\"status\":\"published\"}");
    }
  } else {
    rc |= trb_buf_appendf(b, "{\"status\":\"error\",\"code\":%d,\"error\":",
                          event_http_status(e));
    rc |= trb_ingest_json_append_str(b, e->error, strlen(e->error));
    rc |= trb_buf_append_str(b, "}");
  }
  return rc;
}

/* Give a request back (any thread). */
static void free_outcomes(ireq_t *q) {
  for (size_t i = 0; i < q->n; i++) trb_ingest_outcome_deinit(&q->outs[i]);
  if (!q->pooled) {
    trb_free(q);
    return;
  }
  trb_ingest_t *ing = q->ing;
  ireq_t *head = atomic_load_explicit(&ing->free_reqs, memory_order_relaxed);
  do {
    q->next_free = head;
  } while (!atomic_compare_exchange_weak_explicit(
      &ing->free_reqs, &head, q, memory_order_release, memory_order_relaxed));
}

static void free_req_list(ireq_t *q) {
  while (q) {
    ireq_t *next = q->next_free;
    trb_free(q);
    q = next;
  }
}

/* Whether `id` can go into a JSON string as is (no escaping needed). */
static bool plain_id(const char *id, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)id[i];
    if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) return false;
  }
  return true;
}

/* Append `n` bytes at `*o` if they fit before `end`. */
static bool put(char **o, const char *end, const char *s, size_t n) {
  if ((size_t)(end - *o) < n) return false;
  memcpy(*o, s, n);
  *o += n;
  return true;
}

/* The reply to a single confirmed event, into `out` (no allocation, no
 * printf). Returns its length, or 0 when it does not fit / needs
 * escaping. */
static size_t format_single_ok(const trb_ingest_outcome_t *e, char *out,
                               size_t cap) {
  static const char kIssue[] = "{\"issue_id\":\"";
  static const char kCreated[] = "\",\"status\":\"created\"}";
  static const char kMsg[] = "{\"message_id\":\"";
  static const char kPublished[] = "\",\"status\":\"published\"}";
  char *o = out;
  const char *end = out + cap;
  bool ok;
  if (e->issue_id[0]) {
    ok = put(&o, end, kIssue, sizeof(kIssue) - 1) &&
         put(&o, end, e->issue_id, strlen(e->issue_id)) &&
         put(&o, end, kCreated, sizeof(kCreated) - 1);
  } else {
    size_t l = strlen(e->message_id);
    ok = plain_id(e->message_id, l) && put(&o, end, kMsg, sizeof(kMsg) - 1) &&
         put(&o, end, e->message_id, l) &&
         put(&o, end, kPublished, sizeof(kPublished) - 1);
  }
  return ok ? (size_t)(o - out) : 0;
}

/* Publish layer completion: reply and free. Runs on the loop thread (or
 * the handler's thread when every event was refused at once). */
static void on_batch_done(void *user, trb_ingest_outcome_t *events, size_t n) {
  ireq_t *q = user;
  trb_ingest_t *ing = q->ing;
  if (!q->batch && n == 1 && events[0].code == GRPC_STATUS_OK) {
    /* The common case: formatted on the stack. */
    char out[256];
    size_t len = format_single_ok(&events[0], out, sizeof(out));
    if (len > 0) {
      reply(ing, q->http, q->route_idx, q->body_len, 200, out, len);
      free_outcomes(q);
      return;
    }
  }
  size_t ok = 0;
  int first_fail = 0;
  for (size_t i = 0; i < n; i++) {
    if (events[i].code == GRPC_STATUS_OK) {
      ok++;
    } else {
      if (!first_fail) first_fail = event_http_status(&events[i]);
      trb_ingest_metrics_rejected(ing->metrics, event_reason(&events[i]), 1);
      TRB_LOG(TRB_LOG_WARNING, "ingest", "%s %s: event %zu not published: %s",
              q->route->path, q->route->topic, i, events[i].error);
    }
  }
  trb_buf_t b = TRB_BUF_INIT;
  int status;
  int rc = trb_buf_reserve(&b, q->batch ? 128 * n : 128);
  if (!q->batch) {
    status = ok ? 200 : first_fail;
    if (ok) {
      rc = append_event_result(&b, &events[0]);
    } else {
      rc |= trb_buf_append_str(&b, "{\"error\":");
      rc |= trb_ingest_json_append_str(&b, events[0].error, strlen(events[0].error));
      rc |= trb_buf_append_str(&b, "}");
    }
  } else {
    status = ok == n ? 200 : ok > 0 ? 207 : first_fail;
    rc |= trb_buf_append_str(&b, "{\"results\":[");
    for (size_t i = 0; i < n; i++) {
      if (i) rc |= trb_buf_append_str(&b, ",");
      rc |= append_event_result(&b, &events[i]);
    }
    rc |= trb_buf_appendf(&b, "],\"published\":%zu,\"failed\":%zu}", ok, n - ok);
  }
  if (rc != 0) {
    /* Cannot say which events were confirmed: refuse the whole reply. A
     * confirmed event may then be sent again by the client (duplicate,
     * never loss). */
    trb_buf_deinit(&b);
    static const char kOom[] = "{\"error\":\"out of memory building the reply\"}";
    reply(ing, q->http, q->route_idx, q->body_len, 503, kOom, sizeof(kOom) - 1);
  } else {
    reply(ing, q->http, q->route_idx, q->body_len, status, b.data, b.len);
  }
  trb_buf_deinit(&b);
  free_outcomes(q);
}

/* ---------------------------------------------------------------------- */
/* Building events                                                         */
/* ---------------------------------------------------------------------- */

/* 16 random bytes for a UUID, from a per-thread pool refilled with
 * getrandom(2). */
static void random16(uint8_t out[16]) {
  static _Thread_local uint8_t pool[4096];
  static _Thread_local size_t left = 0;
  if (left < 16) {
    size_t got = 0;
    while (got < sizeof(pool)) {
      ssize_t n = getrandom(pool + got, sizeof(pool) - got, 0);
      if (n <= 0) break;
      got += (size_t)n;
    }
    if (got < 16) { /* getrandom unavailable: clock-derived, still unique */
      uint64_t a = (uint64_t)trb_clock_mono_ns(), c = (uint64_t)trb_clock_wall_us();
      memcpy(pool, &a, 8);
      memcpy(pool + 8, &c, 8);
      got = 16;
    }
    left = got;
  }
  memcpy(out, pool + sizeof(pool) - left, 16);
  left -= 16;
}

/* Wrap `payload` in the issues envelope into event `e`. */
static grpc_status_code wrap(trb_ingest_event_t *e, const char *source,
                             const char *payload, size_t len,
                             trb_status_t *st) {
  uint8_t rnd[16];
  random16(rnd);
  trb_ingest_uuid4_format(rnd, e->issue_id);
  char now[TRB_INGEST_TIME_LEN];
  trb_ingest_rfc3339_ms(trb_clock_wall_us(), now);
  if (trb_ingest_envelope_append(&e->data, e->issue_id, source, now, payload,
                                 len) != 0) {
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  e->attrs[e->n_attrs].key = "source";
  e->attrs[e->n_attrs].value = source;
  e->n_attrs++;
  return GRPC_STATUS_OK;
}

/* One JSON object (text `text`, parsed `obj`) → event, by route mode.
 * `obj` NULL: the text was checked by trb_ingest_json_fast_check, is an
 * object, and has no top-level "event_type" (no tree was built). */
static grpc_status_code json_event(const trb_ingest_route_t *route,
                                   trb_ingest_event_t *e, const json_t *obj,
                                   const char *text, size_t len,
                                   trb_status_t *st) {
  if (obj && !json_is_object(obj)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "event is not a JSON object");
  }
  if (route->mode == TRB_INGEST_MODE_WRAP) {
    return wrap(e, TRB_INGEST_SOURCE_MANUAL, text, len, st);
  }
  if (trb_buf_append(&e->data, text, len) != 0) {
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  if (!obj) return GRPC_STATUS_OK;
  const json_t *et = json_object_get(obj, "event_type");
  if (json_is_string(et) && json_string_length(et) > 0 &&
      json_string_length(et) <= TRB_PS_MAX_ATTR_VALUE_BYTES) {
    e->attrs[e->n_attrs].key = "event_type";
    e->attrs[e->n_attrs].value = json_string_value(et);
    e->n_attrs++;
  }
  return GRPC_STATUS_OK;
}

/* Media type of a Content-Type value, lower-cased, without parameters. */
static void media_type(const char *ct, char *out, size_t cap) {
  size_t o = 0;
  if (ct) {
    while (*ct == ' ' || *ct == '\t') ct++;
    for (; *ct && *ct != ';' && *ct != ' ' && o + 1 < cap; ct++) {
      out[o++] = (char)tolower((unsigned char)*ct);
    }
  }
  out[o] = '\0';
}

typedef struct {
  trb_ingest_t *ing;
  trb_http_request_t *http;
  const trb_ingest_route_t *route;
  int route_idx;
  const char *body;
  size_t len;
  trb_arena_t *arena;   /* composed attribute keys; created on first use */
  json_t *roots[1];     /* parsed documents kept alive until publish */
  scratch_t *scratch;   /* events[0..n) are this request's */
  size_t n;
  int http_status;      /* on error */
  trb_ingest_reason_t reason;
  trb_status_t st;
} build_t;

/* Allocate from the build's arena, creating it on first use (most
 * requests need none). NULL when out of memory. */
static void *arena_alloc(build_t *b, size_t n) {
  if (!b->arena) b->arena = trb_arena_create(1024);
  return b->arena ? trb_arena_alloc(b->arena, n) : NULL;
}

/* The calling thread's scratch; NULL when out of memory. */
static scratch_t *get_scratch(trb_ingest_t *ing) {
  if (!ing->scratch_key_ok) return NULL;
  scratch_t *s = pthread_getspecific(ing->scratch_key);
  if (s) return s;
  s = trb_calloc(1, sizeof(*s));
  if (!s) return NULL;
  if (pthread_setspecific(ing->scratch_key, s) != 0) {
    trb_free(s);
    return NULL;
  }
  pthread_mutex_lock(&ing->scratch_mu);
  s->next = ing->scratches;
  ing->scratches = s;
  pthread_mutex_unlock(&ing->scratch_mu);
  return s;
}

/* After a request: give back what a large request made the scratch
 * hold. */
static void scratch_trim(scratch_t *s, size_t used) {
  if (!s) return;
  for (size_t i = 0; i < used && i < s->cap; i++) {
    if (s->events[i].data.cap > SCRATCH_KEEP_BYTES) {
      trb_buf_deinit(&s->events[i].data);
    }
  }
  if (s->cap > SCRATCH_KEEP_EVENTS) {
    for (size_t i = 0; i < s->cap; i++) trb_buf_deinit(&s->events[i].data);
    trb_free(s->events);
    s->events = NULL;
    s->cap = 0;
  }
}

static void scratch_free(scratch_t *s) {
  free_req_list(s->free_reqs);
  for (size_t i = 0; i < s->cap; i++) trb_buf_deinit(&s->events[i].data);
  trb_free(s->events);
  trb_free(s);
}

/* A zeroed request for `n` events: single-event ones from the pool (no
 * allocation in steady state), others from the heap. NULL when out of
 * memory. HTTP thread. */
static ireq_t *new_req(trb_ingest_t *ing, scratch_t *s, size_t n) {
  size_t size = sizeof(ireq_t) + n * sizeof(trb_ingest_outcome_t);
  if (n != 1 || !s) return trb_calloc(1, size);
  ireq_t *q = s->free_reqs;
  if (!q) {
    q = atomic_exchange_explicit(&ing->free_reqs, NULL, memory_order_acquire);
  }
  if (q) {
    s->free_reqs = q->next_free;
    memset(q, 0, size);
  } else {
    q = trb_calloc(1, size);
    if (!q) return NULL;
  }
  q->pooled = true;
  return q;
}

static trb_ingest_event_t *new_event(build_t *b) {
  scratch_t *s = b->scratch;
  if (!s) return NULL;
  if (b->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 1;
    trb_ingest_event_t *ev = trb_realloc(s->events, cap * sizeof(*ev));
    if (!ev) return NULL;
    for (size_t i = s->cap; i < cap; i++) trb_buf_init(&ev[i].data);
    s->events = ev;
    s->cap = cap;
  }
  trb_ingest_event_t *e = &s->events[b->n++];
  trb_buf_reset(&e->data);
  e->n_attrs = 0;
  e->issue_id[0] = '\0';
  return e;
}

static bool fail(build_t *b, int http, trb_ingest_reason_t reason) {
  b->http_status = http;
  b->reason = reason;
  return false;
}

static bool fail_code(build_t *b) {
  if (b->st.code == GRPC_STATUS_RESOURCE_EXHAUSTED) {
    return fail(b, 503, TRB_INGEST_REASON_BACKPRESSURE);
  }
  return fail(b, 400, TRB_INGEST_REASON_BAD_REQUEST);
}

/* Keep a parsed root until the build is done. */
static void keep_root(build_t *b, json_t *root) {
  json_decref(b->roots[0]);
  b->roots[0] = root;
}

static bool build_firestore(build_t *b, const trb_ingest_ce_t *ce);

/* Whether `text` can become an event without a jansson tree: the one-pass
 * scanner accepted it, it is an object, and nothing in it needs the tree
 * (wrap: no "data", which a GCF legacy Firestore event has; raw: no
 * "event_type" to copy into an attribute). `*t`/`*n` receive the value
 * without surrounding whitespace. */
static bool fast_object(const build_t *b, const char *text, size_t len,
                        const char **t, size_t *n) {
  trb_ingest_json_shape_t sh;
  if (!trb_ingest_json_fast_check(text, len, b->ing->cfg.max_depth, &sh) ||
      !sh.is_object) {
    return false;
  }
  if (b->route->mode == TRB_INGEST_MODE_WRAP ? sh.has_data : sh.has_event_type) {
    return false;
  }
  *t = text + sh.start;
  *n = sh.end - sh.start;
  return true;
}

/* application/json: an object or an array of objects. */
static bool build_json(build_t *b, bool *batch) {
  const char *ft;
  size_t fn;
  if (fast_object(b, b->body, b->len, &ft, &fn)) {
    trb_ingest_event_t *e = new_event(b);
    if (!e) {
      trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return fail_code(b);
    }
    if (json_event(b->route, e, NULL, ft, fn, &b->st) != GRPC_STATUS_OK) {
      return fail_code(b);
    }
    return true;
  }
  json_t *root = NULL;
  if (trb_ingest_json_parse(b->body, b->len, b->ing->cfg.max_depth, &root,
                            &b->st) != GRPC_STATUS_OK) {
    return fail_code(b);
  }
  keep_root(b, root);
  if (json_is_array(root)) {
    *batch = true;
    size_t n = json_array_size(root);
    if (n == 0) {
      trb_status_set(&b->st, GRPC_STATUS_INVALID_ARGUMENT, "empty JSON array");
      return fail_code(b);
    }
    if (n > (size_t)b->ing->cfg.max_batch_events) {
      trb_status_set(&b->st, GRPC_STATUS_INVALID_ARGUMENT,
                     "batch of %zu events; at most %d per request", n,
                     b->ing->cfg.max_batch_events);
      return fail(b, 413, TRB_INGEST_REASON_TOO_LARGE);
    }
    for (size_t i = 0; i < n; i++) {
      json_t *el = json_array_get(root, i);
      trb_ingest_event_t *e = new_event(b);
      if (!e) {
        trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return fail_code(b);
      }
      char *text = json_is_object(el)
                       ? json_dumps(el, JSON_COMPACT | JSON_ENCODE_ANY)
                       : NULL;
      grpc_status_code c =
          json_is_object(el) && !text
              ? trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory")
              : json_event(b->route, e, el, text ? text : "",
                           text ? strlen(text) : 0, &b->st);
      free(text);
      if (c != GRPC_STATUS_OK) {
        trb_status_prefix(&b->st, "event %zu", i);
        return fail_code(b);
      }
    }
    return true;
  }
  if (b->route->mode == TRB_INGEST_MODE_WRAP) {
    /* A Cloud Functions 1st-gen Firestore event (GCF's legacy format). */
    /* The composed attribute strings must live until the publish: arena. */
    char *scratch = arena_alloc(b, TRB_INGEST_CE_LEGACY_SCRATCH);
    trb_ingest_ce_t ce;
    memset(&ce, 0, sizeof(ce));
    if (scratch && trb_ingest_ce_from_legacy_firestore(root, &ce, scratch)) {
      return build_firestore(b, &ce);
    }
  }
  trb_ingest_event_t *e = new_event(b);
  if (!e) {
    trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return fail_code(b);
  }
  /* The original text, without surrounding whitespace. */
  const char *t = b->body;
  size_t n = b->len;
  while (n > 0 && (*t == ' ' || *t == '\t' || *t == '\r' || *t == '\n')) {
    t++;
    n--;
  }
  while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\r' ||
                   t[n - 1] == '\n')) {
    n--;
  }
  if (json_event(b->route, e, root, t, n, &b->st) != GRPC_STATUS_OK) {
    return fail_code(b);
  }
  return true;
}

/* application/x-ndjson: one object per line. Lines are parsed one at a
 * time; each event's attributes point into its line's root, so raw-mode
 * attributes are copied into the arena. */
static bool build_ndjson(build_t *b) {
  size_t pos = 0, lineno = 0;
  const char *line;
  size_t line_len;
  while (trb_ingest_ndjson_next(b->body, b->len, &pos, &line, &line_len, &lineno)) {
    if (b->n == (size_t)b->ing->cfg.max_batch_events) {
      trb_status_set(&b->st, GRPC_STATUS_INVALID_ARGUMENT,
                     "more than %d events in one request",
                     b->ing->cfg.max_batch_events);
      return fail(b, 413, TRB_INGEST_REASON_TOO_LARGE);
    }
    const char *ft;
    size_t fn;
    if (fast_object(b, line, line_len, &ft, &fn)) {
      trb_ingest_event_t *e = new_event(b);
      grpc_status_code c =
          e ? json_event(b->route, e, NULL, line, line_len, &b->st)
            : trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      if (c != GRPC_STATUS_OK) {
        trb_status_prefix(&b->st, "line %zu", lineno);
        return fail_code(b);
      }
      continue;
    }
    json_t *obj = NULL;
    if (trb_ingest_json_parse(line, line_len, b->ing->cfg.max_depth, &obj,
                              &b->st) != GRPC_STATUS_OK) {
      trb_status_prefix(&b->st, "line %zu", lineno);
      return fail_code(b);
    }
    trb_ingest_event_t *e = new_event(b);
    grpc_status_code c =
        e ? json_event(b->route, e, obj, line, line_len, &b->st)
          : trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    if (c == GRPC_STATUS_OK) {
      for (size_t i = 0; i < e->n_attrs; i++) {
        if (strcmp(e->attrs[i].key, "event_type") == 0) {
          size_t vl = strlen(e->attrs[i].value);
          char *v = arena_alloc(b, vl + 1);
          if (v) memcpy(v, e->attrs[i].value, vl + 1);
          e->attrs[i].value = v;
          if (!v) {
            c = trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
          }
        }
      }
    }
    json_decref(obj);
    if (c != GRPC_STATUS_OK) {
      trb_status_prefix(&b->st, "line %zu", lineno);
      return fail_code(b);
    }
  }
  if (b->n == 0) {
    trb_status_set(&b->st, GRPC_STATUS_INVALID_ARGUMENT, "empty body");
    return fail_code(b);
  }
  return true;
}

/* Pub/Sub push body → one event with the decoded data and attributes. */
static bool build_push(build_t *b) {
  json_t *root = NULL;
  if (trb_ingest_json_parse(b->body, b->len, b->ing->cfg.max_depth, &root,
                            &b->st) != GRPC_STATUS_OK) {
    return fail_code(b);
  }
  keep_root(b, root);
  trb_ingest_push_msg_t m;
  memset(&m, 0, sizeof(m));
  if (trb_ingest_push_decode(root, &m, &b->st) != GRPC_STATUS_OK) {
    trb_ingest_push_msg_deinit(&m);
    return fail_code(b);
  }
  trb_ingest_event_t *e = new_event(b);
  if (!e || trb_buf_append(&e->data, m.data, m.data_len) != 0) {
    trb_ingest_push_msg_deinit(&m);
    trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return fail_code(b);
  }
  trb_ingest_push_msg_deinit(&m);
  if (m.n_attrs > TRB_INGEST_EVENT_MAX_ATTRS) {
    trb_status_set(&b->st, GRPC_STATUS_INVALID_ARGUMENT,
                   "message has more than %d attributes",
                   TRB_INGEST_EVENT_MAX_ATTRS);
    return fail_code(b);
  }
  memcpy(e->attrs, m.attrs, m.n_attrs * sizeof(m.attrs[0]));
  e->n_attrs = m.n_attrs;
  return true;
}

/* Add "ce-<name>" attributes for every CloudEvent attribute. */
static bool ce_attrs(build_t *b, trb_ingest_event_t *e,
                     const trb_ingest_ce_t *ce, bool only_core) {
  static const char *const core[] = {"id", "type", "source", "subject", "time"};
  for (size_t i = 0; i < ce->n_attrs; i++) {
    const char *name = ce->attrs[i].name;
    if (only_core) {
      bool keep = false;
      for (size_t k = 0; k < 5; k++) keep |= strcasecmp(name, core[k]) == 0;
      if (!keep) continue;
    }
    if (e->n_attrs == TRB_INGEST_EVENT_MAX_ATTRS) break;
    size_t nl = strlen(name);
    char *key = arena_alloc(b, nl + 4);
    if (!key) {
      trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return fail_code(b);
    }
    memcpy(key, "ce-", 3);
    for (size_t k = 0; k <= nl; k++) key[3 + k] = (char)tolower((unsigned char)name[k]);
    e->attrs[e->n_attrs].key = key;
    e->attrs[e->n_attrs].value = ce->attrs[i].value;
    e->n_attrs++;
  }
  return true;
}

/* Whether a body that failed to parse as JSON looks like protobuf
 * (DocumentEventData starts with field 1, 2 or 3, length-delimited). */
static bool looks_like_protobuf(const uint8_t *d, size_t len) {
  return len > 0 && (d[0] == 0x0a || d[0] == 0x12 || d[0] == 0x1a);
}

/* Firestore document event → the issues envelope with the rendered
 * document in `payload`. */
static bool build_firestore(build_t *b, const trb_ingest_ce_t *ce) {
  char mt[96];
  media_type(ce->datacontenttype, mt, sizeof(mt));
  json_t *doc = NULL;
  trb_status_t dst = {0};
  grpc_status_code c;
  uint8_t *decoded = NULL;
  if (ce->structured && ce->data_json) {
    c = trb_ingest_firestore_from_json(ce->data_json, &doc, &dst);
  } else if (ce->structured && ce->data_b64) {
    size_t l = strlen(ce->data_b64);
    decoded = trb_malloc((l / 4 + 1) * 3);
    int64_t n = decoded ? trb_ingest_base64_decode(ce->data_b64, l, decoded) : -1;
    if (!decoded) {
      c = trb_status_set(&dst, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    } else if (n < 0) {
      c = trb_status_set(&dst, GRPC_STATUS_INVALID_ARGUMENT,
                         "CloudEvent data_base64 is not valid base64");
    } else {
      c = trb_ingest_firestore_from_proto(decoded, (size_t)n, &doc, &dst);
    }
  } else if (ce->structured) {
    c = trb_status_set(&dst, GRPC_STATUS_INVALID_ARGUMENT,
                       "Firestore CloudEvent has no data");
  } else if (mt[0] == '\0' || strcmp(mt, "application/protobuf") == 0 ||
             strcmp(mt, "application/x-protobuf") == 0) {
    c = trb_ingest_firestore_from_proto(ce->data, ce->data_len, &doc, &dst);
  } else if (strcmp(mt, "application/json") == 0) {
    json_t *root = NULL;
    c = trb_ingest_json_parse((const char *)ce->data, ce->data_len,
                              b->ing->cfg.max_depth, &root, &dst);
    if (c == GRPC_STATUS_OK) {
      c = trb_ingest_firestore_from_json(root, &doc, &dst);
      json_decref(root);
    } else if (c == GRPC_STATUS_INVALID_ARGUMENT &&
               looks_like_protobuf(ce->data, ce->data_len)) {
      /* Sent as application/json but the body is DocumentEventData
       * protobuf (seen in the wild: curl of a base64-decoded capture). */
      trb_status_t pst = {0};
      json_t *pdoc = NULL;
      if (trb_ingest_firestore_from_proto(ce->data, ce->data_len, &pdoc,
                                          &pst) == GRPC_STATUS_OK) {
        doc = pdoc;
        c = GRPC_STATUS_OK;
        TRB_LOG(TRB_LOG_INFO, "ingest",
                "Firestore event %s: Content-Type application/json, body is "
                "protobuf; decoded as protobuf", ce->id);
      }
    }
  } else {
    snprintf(b->st.msg, sizeof(b->st.msg),
             "unsupported Firestore event data content type \"%s\" (want "
             "application/protobuf or application/json)", mt);
    b->st.code = GRPC_STATUS_INVALID_ARGUMENT;
    trb_free(decoded);
    return fail(b, 415, TRB_INGEST_REASON_MEDIA_TYPE);
  }
  trb_free(decoded);
  if (c != GRPC_STATUS_OK) {
    b->st = dst;
    return fail_code(b);
  }
  /* payload: the event's identity, then the rendered document. */
  json_t *payload = json_object();
  bool ok = payload != NULL;
  const char *keys[][2] = {{"id", ce->id},           {"type", ce->type},
                           {"source", ce->source},   {"subject", ce->subject},
                           {"time", ce->time}};
  for (size_t i = 0; ok && i < 5; i++) {
    if (!keys[i][1]) continue;
    json_t *s = json_string(keys[i][1]);
    if (!s) {
      trb_status_set(&b->st, GRPC_STATUS_INVALID_ARGUMENT,
                     "CloudEvent %s is not valid UTF-8", keys[i][0]);
      json_decref(payload);
      json_decref(doc);
      return fail_code(b);
    }
    ok = json_object_set_new(payload, keys[i][0], s) == 0;
  }
  ok = ok && json_object_update(payload, doc) == 0;
  json_decref(doc);
  char *text = ok ? json_dumps(payload, JSON_COMPACT) : NULL;
  json_decref(payload);
  trb_ingest_event_t *e = text ? new_event(b) : NULL;
  grpc_status_code wc =
      e ? wrap(e, TRB_INGEST_SOURCE_FIRESTORE, text, strlen(text), &b->st)
        : trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  free(text);
  if (wc != GRPC_STATUS_OK) return fail_code(b);
  return ce_attrs(b, e, ce, true);
}

/* Any other CloudEvent: its data as the message, attributes as ce-*. */
static bool build_ce_passthrough(build_t *b, const trb_ingest_ce_t *ce) {
  trb_ingest_event_t *e = new_event(b);
  if (!e) {
    trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return fail_code(b);
  }
  int rc = 0;
  if (!ce->structured) {
    rc = trb_buf_append(&e->data, ce->data, ce->data_len);
  } else if (ce->data_b64) {
    size_t l = strlen(ce->data_b64);
    if (trb_buf_reserve(&e->data, (l / 4 + 1) * 3) != 0) {
      rc = -1;
    } else {
      int64_t n = trb_ingest_base64_decode(ce->data_b64, l, (uint8_t *)e->data.data);
      if (n < 0) {
        trb_status_set(&b->st, GRPC_STATUS_INVALID_ARGUMENT,
                       "CloudEvent data_base64 is not valid base64");
        return fail_code(b);
      }
      e->data.len = (size_t)n;
      e->data.data[n] = '\0';
    }
  } else if (ce->data_json) {
    if (json_is_string(ce->data_json)) {
      rc = trb_buf_append(&e->data, json_string_value(ce->data_json),
                          json_string_length(ce->data_json));
    } else {
      char *t = json_dumps(ce->data_json, JSON_COMPACT | JSON_ENCODE_ANY);
      rc = t ? trb_buf_append_str(&e->data, t) : -1;
      free(t);
    }
  }
  if (rc != 0) {
    trb_status_set(&b->st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return fail_code(b);
  }
  return ce_attrs(b, e, ce, false);
}

static bool build_cloudevent(build_t *b, const trb_ingest_ce_t *ce) {
  if (trb_ingest_ce_is_firestore(ce->type) && b->route->mode == TRB_INGEST_MODE_WRAP) {
    return build_firestore(b, ce);
  }
  return build_ce_passthrough(b, ce);
}

/* Dispatch on mode and Content-Type; fills b->events or the error. */
static bool build(build_t *b, bool *batch) {
  const char *ct = trb_http_request_header(b->http, "Content-Type");
  char mt[96];
  media_type(ct, mt, sizeof(mt));
  size_t nh = 0;
  const trb_ingest_kv_t *hs = trb_http_request_headers(b->http, &nh);

  if (b->route->mode == TRB_INGEST_MODE_PUSH) {
    if (mt[0] && strcmp(mt, "application/json") != 0 &&
        strcmp(mt, "application/x-www-form-urlencoded") != 0 &&
        strcmp(mt, "text/plain") != 0) {
      snprintf(b->st.msg, sizeof(b->st.msg),
               "unsupported Content-Type \"%s\" for a Pub/Sub push body "
               "(want application/json)", mt);
      return fail(b, 415, TRB_INGEST_REASON_MEDIA_TYPE);
    }
    return build_push(b);
  }
  if (trb_ingest_ce_is_binary(hs, nh)) {
    trb_ingest_ce_t ce;
    memset(&ce, 0, sizeof(ce));
    if (trb_ingest_ce_from_headers(hs, nh, ct, (const uint8_t *)b->body,
                                   b->len, &ce, &b->st) != GRPC_STATUS_OK) {
      return fail_code(b);
    }
    return build_cloudevent(b, &ce);
  }
  if (strcmp(mt, "application/cloudevents+json") == 0) {
    json_t *root = NULL;
    if (trb_ingest_json_parse(b->body, b->len, b->ing->cfg.max_depth, &root,
                              &b->st) != GRPC_STATUS_OK) {
      return fail_code(b);
    }
    keep_root(b, root);
    trb_ingest_ce_t ce;
    memset(&ce, 0, sizeof(ce));
    if (trb_ingest_ce_from_json(root, &ce, &b->st) != GRPC_STATUS_OK) {
      return fail_code(b);
    }
    return build_cloudevent(b, &ce);
  }
  if (strcmp(mt, "application/json") == 0) return build_json(b, batch);
  if (strcmp(mt, "application/x-ndjson") == 0 ||
      strcmp(mt, "application/jsonl") == 0 ||
      strcmp(mt, "application/json-lines") == 0) {
    *batch = true;
    return build_ndjson(b);
  }
  if (mt[0] == '\0') {
    snprintf(b->st.msg, sizeof(b->st.msg),
             "missing Content-Type (want application/json, "
             "application/x-ndjson or application/cloudevents+json)");
  } else {
    snprintf(b->st.msg, sizeof(b->st.msg),
             "unsupported Content-Type \"%s\" (want application/json, "
             "application/x-ndjson or application/cloudevents+json)", mt);
  }
  return fail(b, 415, TRB_INGEST_REASON_MEDIA_TYPE);
}

/* ---------------------------------------------------------------------- */
/* The handler                                                             */
/* ---------------------------------------------------------------------- */

static void reply_text(trb_ingest_t *ing, trb_http_request_t *r, int status,
                       const char *ct, const char *body, size_t len) {
  trb_ingest_metrics_request(ing->metrics, -1, status, 0);
  trb_http_respond(r, status, ct, body, len, NULL, 0,
                   atomic_load(&ing->draining));
}

static bool handle_get(trb_ingest_t *ing, trb_http_request_t *r,
                       const char *path) {
  if (strcmp(path, "/healthz") == 0) {
    static const char k[] = "{\"status\":\"ok\"}";
    reply_text(ing, r, 200, "application/json", k, sizeof(k) - 1);
    return true;
  }
  if (strcmp(path, "/readyz") == 0) {
    if (atomic_load(&ing->draining)) {
      static const char k[] = "{\"status\":\"draining\"}";
      reply_text(ing, r, 503, "application/json", k, sizeof(k) - 1);
    } else if (!trb_ingest_pubs_ready(ing->pubs)) {
      /* Not confirmed yet, or failing: check again (asynchronously). */
      trb_ingest_pubs_probe(ing->pubs);
      static const char k[] = "{\"status\":\"pubsub not reachable or topic missing\"}";
      reply_text(ing, r, 503, "application/json", k, sizeof(k) - 1);
    } else {
      static const char k[] = "{\"status\":\"ready\"}";
      reply_text(ing, r, 200, "application/json", k, sizeof(k) - 1);
    }
    return true;
  }
  if (strcmp(path, "/metrics") == 0) {
    trb_buf_t b = TRB_BUF_INIT;
    if (trb_ingest_metrics_render(ing->metrics, &b) != 0) {
      trb_buf_deinit(&b);
      reply_text(ing, r, 503, "text/plain", "out of memory\n", 14);
      return true;
    }
    reply_text(ing, r, 200, "text/plain; version=0.0.4", b.data, b.len);
    trb_buf_deinit(&b);
    return true;
  }
  return false;
}

static void on_too_large(void *user) {
  trb_ingest_t *ing = user;
  trb_ingest_metrics_rejected(ing->metrics, TRB_INGEST_REASON_TOO_LARGE, 1);
  trb_ingest_metrics_request(ing->metrics, -1, 413, 0);
}

static void on_request(void *user, trb_http_request_t *r) {
  trb_ingest_t *ing = user;
  const char *method = trb_http_request_method(r);
  const char *path = trb_http_request_path(r);
  size_t len = 0;
  const char *body = trb_http_request_body(r, &len);

  if (strcmp(method, "GET") == 0 && handle_get(ing, r, path)) return;
  const trb_ingest_route_t *route = trb_ingest_routes_match(&ing->routes, path);
  if (!route) {
    reply_error(ing, r, -1, len, 404, TRB_INGEST_REASON_NOT_FOUND, "no such route");
    return;
  }
  int route_idx = (int)(route - ing->routes.routes);
  if (strcmp(method, "POST") != 0) {
    reply_error(ing, r, route_idx, len, 405, TRB_INGEST_REASON_NOT_FOUND,
                "method not allowed (use POST)");
    return;
  }
  if (ing->bearer) {
    const char *auth = trb_http_request_header(r, "Authorization");
    if (!auth || strcmp(auth, ing->bearer) != 0) {
      reply_error(ing, r, route_idx, len, 401, TRB_INGEST_REASON_UNAUTHORIZED,
                  auth ? "bad bearer token" : "missing Authorization: Bearer token");
      return;
    }
  }
  if (atomic_load(&ing->draining)) {
    reply_error(ing, r, route_idx, len, 503, TRB_INGEST_REASON_DRAINING,
                "server shutting down");
    return;
  }

  build_t b;
  memset(&b, 0, sizeof(b));
  b.ing = ing;
  b.http = r;
  b.route = route;
  b.route_idx = route_idx;
  b.body = body;
  b.len = len;
  b.scratch = get_scratch(ing);
  bool batch = false;
  bool ok = build(&b, &batch);
  ireq_t *q = ok ? new_req(ing, b.scratch, b.n) : NULL;
  if (!q) {
    if (ok) {
      b.http_status = 503;
      b.reason = TRB_INGEST_REASON_BACKPRESSURE;
      snprintf(b.st.msg, sizeof(b.st.msg), "out of memory");
    }
    reply_error(ing, r, route_idx, len, b.http_status, b.reason, b.st.msg);
    scratch_trim(b.scratch, b.n);
    json_decref(b.roots[0]);
    trb_arena_destroy(b.arena);
    return;
  }
  q->ing = ing;
  q->http = r;
  q->route = route;
  q->route_idx = route_idx;
  q->body_len = len;
  q->batch = batch;
  q->n = b.n;
  for (size_t i = 0; i < b.n; i++) {
    memcpy(q->outs[i].issue_id, b.scratch->events[i].issue_id,
           sizeof(q->outs[i].issue_id));
  }
  /* Event data and attribute strings (scratch, arena, JSON roots, headers)
   * are copied by the publisher inside trb_ingest_pubs_publish; reuse or
   * free them after. The reply may already have been sent (and `r` and
   * `q` gone) when it returns. */
  trb_ingest_pubs_publish(ing->pubs, ing->route_topic[route_idx], route_idx,
                          b.scratch->events, q->outs, b.n, &q->pb,
                          on_batch_done, q);
  scratch_trim(b.scratch, b.n);
  json_decref(b.roots[0]);
  trb_arena_destroy(b.arena);
}

/* ---------------------------------------------------------------------- */
/* Lifecycle                                                               */
/* ---------------------------------------------------------------------- */

grpc_status_code trb_ingest_start(const trb_ingest_config_t *cfg,
                                  trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                                  trb_ingest_t **out, trb_status_t *st) {
  *out = NULL;
  /* Seed jansson's hash tables before any HTTP thread creates objects
   * (its lazy seeding is only race-free with atomic builtins). */
  json_object_seed(0);
  trb_ingest_t *ing = trb_calloc(1, sizeof(*ing));
  if (!ing) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  pthread_mutex_init(&ing->mu, NULL);
  pthread_mutex_init(&ing->scratch_mu, NULL);
  ing->scratch_key_ok = pthread_key_create(&ing->scratch_key, NULL) == 0;
  atomic_init(&ing->draining, false);
  ing->cfg = *cfg;
  trb_ingest_config_t *c = &ing->cfg;
  c->host = NULL;
  c->project = NULL;
  c->routes = NULL;
  c->topic = NULL;
  c->bearer_token = NULL;
  if (c->max_body_bytes <= 0) c->max_body_bytes = 1024 * 1024;
  if (c->max_depth <= 0) c->max_depth = TRB_INGEST_DEFAULT_MAX_DEPTH;
  if (c->max_batch_events <= 0) c->max_batch_events = 1000;
  if (c->retry_after_s <= 0) c->retry_after_s = 1;
  if (!cfg->publisher_flow_set) c->publisher.flow = TRB_PS_FLOW_REJECT;
  if (c->publisher.max_delay_ms == 0) c->publisher.max_delay_ms = 5;
  /* A client waits for the confirmation: bound a publish by 30 s of
   * retries and one attempt by 10 s (this also bounds how far a shutdown
   * can overrun its grace period). */
  if (c->publisher.retry_deadline_ms == 0) c->publisher.retry_deadline_ms = 30000;
  if (c->publisher.rpc_timeout_ms == 0) c->publisher.rpc_timeout_ms = 10000;
  grpc_status_code code = GRPC_STATUS_OK;
  if (c->max_body_bytes > MAX_BODY_LIMIT) {
    code = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "max body %lld bytes is above Pub/Sub's 10 MiB "
                          "message limit", (long long)c->max_body_bytes);
    goto fail;
  }
  if (cfg->bearer_token && *cfg->bearer_token) {
    size_t n = strlen(cfg->bearer_token) + 8;
    ing->bearer = trb_malloc(n);
    if (!ing->bearer) goto oom;
    snprintf(ing->bearer, n, "Bearer %s", cfg->bearer_token);
  }
  if (cfg->routes && *cfg->routes) {
    code = trb_ingest_routes_parse(cfg->routes, cfg->project, &ing->routes, st);
  } else if (cfg->topic && *cfg->topic) {
    size_t n = strlen(cfg->topic) + 4;
    char *spec = trb_malloc(n);
    if (!spec) goto oom;
    snprintf(spec, n, "/=%s", cfg->topic);
    code = trb_ingest_routes_parse(spec, cfg->project, &ing->routes, st);
    trb_free(spec);
  } else {
    code = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "no topic: set a topic or routes");
  }
  if (code != GRPC_STATUS_OK) goto fail;
  for (size_t i = 0; i < ing->routes.n; i++) {
    if (strstr(ing->routes.routes[i].topic, "projects//")) {
      code = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "route %s: topic id without a project (set the "
                            "project or give projects/P/topics/T)",
                            ing->routes.routes[i].path);
      goto fail;
    }
  }
  /* One publisher per distinct topic. */
  const char *topics[TRB_INGEST_MAX_ROUTES];
  const char *paths[TRB_INGEST_MAX_ROUTES];
  size_t nt = 0;
  for (size_t i = 0; i < ing->routes.n; i++) {
    paths[i] = ing->routes.routes[i].path;
    size_t k = 0;
    while (k < nt && strcmp(topics[k], ing->routes.routes[i].topic) != 0) k++;
    if (k == nt) topics[nt++] = ing->routes.routes[i].topic;
    ing->route_topic[i] = k;
  }
  ing->metrics = trb_ingest_metrics_create(paths, ing->routes.n);
  if (!ing->metrics) goto oom;
  code = trb_ingest_pubs_create(loop, ch, topics, nt, &c->publisher,
                                ing->metrics, &ing->pubs, st);
  if (code != GRPC_STATUS_OK) goto fail;

  trb_http_server_config_t hc = {0};
  hc.host = cfg->host;
  hc.port = cfg->port;
  hc.threads = cfg->threads;
  hc.max_body_bytes = c->max_body_bytes;
  hc.max_connections = cfg->max_connections;
  hc.on_too_large = on_too_large;
  code = trb_http_server_start(&hc, on_request, ing, &ing->http, st);
  if (code != GRPC_STATUS_OK) goto fail;
  trb_ingest_pubs_probe(ing->pubs); /* /readyz turns 200 once it answers */
  for (size_t i = 0; i < ing->routes.n; i++) {
    TRB_LOG(TRB_LOG_INFO, "ingest", "route %s -> %s (%s)",
            ing->routes.routes[i].path, ing->routes.routes[i].topic,
            trb_ingest_mode_name(ing->routes.routes[i].mode));
  }
  *out = ing;
  return GRPC_STATUS_OK;
oom:
  code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
fail:
  ing->shut = true;
  trb_ingest_destroy(ing);
  return code;
}

int trb_ingest_port(const trb_ingest_t *ing) {
  return trb_http_server_port(ing->http);
}

int64_t trb_ingest_pending(const trb_ingest_t *ing) {
  return ing->http ? trb_http_server_pending(ing->http) : 0;
}

uint64_t trb_ingest_published(const trb_ingest_t *ing) {
  return trb_ingest_metrics_published_total(ing->metrics);
}

grpc_status_code trb_ingest_shutdown(trb_ingest_t *ing, int64_t grace_ms,
                                     trb_status_t *st) {
  pthread_mutex_lock(&ing->mu);
  if (ing->shut) {
    grpc_status_code c = ing->shut_code;
    pthread_mutex_unlock(&ing->mu);
    return c;
  }
  ing->shut = true;
  int64_t start = trb_clock_mono_ms();
  if (grace_ms < 0) grace_ms = 0;
  /* Keep a slice of the grace period for the replies after the flush. */
  int64_t reserve = grace_ms / 10 < 500 ? grace_ms / 10 : 500;
  atomic_store(&ing->draining, true);
  trb_http_server_quiesce(ing->http);
  /* Let accepted requests finish on their own (publishes in flight). */
  int64_t left = grace_ms - reserve - (trb_clock_mono_ms() - start);
  trb_http_server_wait_idle(ing->http, left > 0 ? left : 0);
  /* Flush; unsent events complete with DEADLINE_EXCEEDED → 503. */
  left = grace_ms - reserve - (trb_clock_mono_ms() - start);
  grpc_status_code code =
      trb_ingest_pubs_shutdown(ing->pubs, left > 0 ? left : 0, st);
  left = grace_ms - (trb_clock_mono_ms() - start);
  trb_http_server_wait_idle(ing->http, left > 0 ? left : 0);
  trb_http_server_destroy(ing->http);
  ing->http = NULL;
  ing->shut_code = code;
  pthread_mutex_unlock(&ing->mu);
  TRB_LOG(TRB_LOG_INFO, "ingest", "stopped after %lld ms (%llu events published)",
          (long long)(trb_clock_mono_ms() - start),
          (unsigned long long)trb_ingest_metrics_published_total(ing->metrics));
  return code;
}

void trb_ingest_destroy(trb_ingest_t *ing) {
  if (!ing) return;
  if (ing->http) trb_ingest_shutdown(ing, 10000, NULL);
  trb_http_server_destroy(ing->http);
  trb_ingest_pubs_destroy(ing->pubs);
  trb_ingest_metrics_destroy(ing->metrics);
  trb_ingest_routes_deinit(&ing->routes);
  trb_free(ing->bearer);
  pthread_mutex_destroy(&ing->mu);
  /* The HTTP threads are gone: their scratch and the pool can go. */
  free_req_list(atomic_load(&ing->free_reqs));
  while (ing->scratches) {
    scratch_t *sc = ing->scratches;
    ing->scratches = sc->next;
    scratch_free(sc);
  }
  if (ing->scratch_key_ok) pthread_key_delete(ing->scratch_key);
  pthread_mutex_destroy(&ing->scratch_mu);
  trb_free(ing);
}
