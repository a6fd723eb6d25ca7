/*
 * publish.c — see publish.h.
 */
#include "src/ingest/publish.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "src/common/alloc.h"
#include "src/common/clock.h"

struct trb_ingest_pubs_s {
  trb_ps_publisher_t **pubs;
  size_t n;
  trb_ingest_metrics_t *metrics;
  _Atomic bool failing;
};

typedef struct {
  trb_ingest_pubs_t *p;
  trb_ingest_event_t *events;
  size_t n;
  int route;
  _Atomic size_t remaining; /* events without outcome + 1 while publishing */
  trb_ingest_batch_done_cb done;
  void *user;
} batch_t;

void trb_ingest_event_deinit(trb_ingest_event_t *e) {
  if (!e) return;
  trb_buf_deinit(&e->data);
  trb_free(e->message_id);
  e->message_id = NULL;
}

static void batch_release(batch_t *b) {
  if (atomic_fetch_sub(&b->remaining, 1) != 1) return;
  trb_ingest_batch_done_cb done = b->done;
  void *user = b->user;
  trb_ingest_event_t *events = b->events;
  size_t n = b->n;
  trb_free(b);
  done(user, events, n);
}

static bool outage(grpc_status_code c) {
  return c == GRPC_STATUS_UNAVAILABLE || c == GRPC_STATUS_DEADLINE_EXCEEDED;
}

static void on_published(void *user, grpc_status_code code,
                         const char *message, const char *message_id) {
  trb_ingest_event_t *e = user;
  batch_t *b = e->batch;
  e->code = code;
  if (code == GRPC_STATUS_OK) {
    e->message_id = trb_strdup(message_id ? message_id : "");
    int64_t lat_us = (trb_clock_mono_ns() - e->start_ns) / 1000;
    trb_ingest_metrics_published(b->p->metrics, b->route, e->data.len, lat_us);
    atomic_store_explicit(&b->p->failing, false, memory_order_relaxed);
  } else {
    snprintf(e->error, sizeof(e->error), "Pub/Sub publish failed: %s: %s",
             trb_status_code_name(code), message ? message : "");
    if (outage(code)) {
      atomic_store_explicit(&b->p->failing, true, memory_order_relaxed);
    }
  }
  batch_release(b);
}

void trb_ingest_pubs_publish(trb_ingest_pubs_t *p, size_t topic, int route,
                             trb_ingest_event_t *events, size_t n,
                             trb_ingest_batch_done_cb done, void *user) {
  batch_t *b = trb_calloc(1, sizeof(*b));
  if (!b) {
    for (size_t i = 0; i < n; i++) {
      events[i].code = GRPC_STATUS_RESOURCE_EXHAUSTED;
      events[i].refused = true;
      snprintf(events[i].error, sizeof(events[i].error), "out of memory");
    }
    done(user, events, n);
    return;
  }
  b->p = p;
  b->events = events;
  b->n = n;
  b->route = route;
  b->done = done;
  b->user = user;
  atomic_init(&b->remaining, n + 1);
  for (size_t i = 0; i < n; i++) {
    trb_ingest_event_t *e = &events[i];
    e->batch = b;
    e->start_ns = trb_clock_mono_ns();
    trb_ps_message_t m = {0};
    m.data = (const uint8_t *)e->data.data;
    m.data_len = e->data.len;
    m.attrs = e->n_attrs ? e->attrs : NULL;
    m.n_attrs = e->n_attrs;
    trb_status_t st = {0};
    grpc_status_code c = trb_ps_publish(p->pubs[topic], &m, on_published, e, &st);
    if (c != GRPC_STATUS_OK) {
      e->code = c;
      e->refused = true;
      snprintf(e->error, sizeof(e->error), "%s", st.msg);
      atomic_fetch_sub(&b->remaining, 1);
    }
  }
  batch_release(b);
}

grpc_status_code trb_ingest_pubs_create(trb_rpc_loop_t *loop,
                                        trb_rpc_channel_t *ch,
                                        const char *const *topics, size_t n,
                                        const trb_ps_publisher_config_t *cfg,
                                        trb_ingest_metrics_t *metrics,
                                        trb_ingest_pubs_t **out,
                                        trb_status_t *st) {
  *out = NULL;
  trb_ingest_pubs_t *p = trb_calloc(1, sizeof(*p));
  if (!p) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  p->pubs = trb_calloc(n ? n : 1, sizeof(*p->pubs));
  if (!p->pubs) {
    trb_free(p);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  p->n = n;
  p->metrics = metrics;
  atomic_init(&p->failing, false);
  for (size_t i = 0; i < n; i++) {
    grpc_status_code c =
        trb_ps_publisher_create(loop, ch, topics[i], cfg, &p->pubs[i], st);
    if (c != GRPC_STATUS_OK) {
      trb_ingest_pubs_destroy(p);
      return c;
    }
  }
  *out = p;
  return GRPC_STATUS_OK;
}

bool trb_ingest_pubs_failing(const trb_ingest_pubs_t *p) {
  return atomic_load_explicit(&((trb_ingest_pubs_t *)p)->failing,
                              memory_order_relaxed);
}

grpc_status_code trb_ingest_pubs_shutdown(trb_ingest_pubs_t *p,
                                          int64_t timeout_ms,
                                          trb_status_t *st) {
  grpc_status_code first = GRPC_STATUS_OK;
  int64_t end = trb_clock_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
  for (size_t i = 0; i < p->n; i++) {
    if (!p->pubs[i]) continue;
    int64_t left = timeout_ms < 0 ? -1 : end - trb_clock_mono_ms();
    if (timeout_ms >= 0 && left < 0) left = 0;
    trb_status_t s = {0};
    grpc_status_code c = trb_ps_publisher_shutdown(p->pubs[i], left, NULL, &s);
    if (c != GRPC_STATUS_OK && first == GRPC_STATUS_OK) {
      first = c;
      if (st) *st = s;
    }
  }
  return first;
}

void trb_ingest_pubs_destroy(trb_ingest_pubs_t *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n; i++) trb_ps_publisher_destroy(p->pubs[i]);
  trb_free(p->pubs);
  trb_free(p);
}
