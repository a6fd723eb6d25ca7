/*
 * publish.c — see publish.h.
 */
#include "src/ingest/publish.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/common/log.h"

/* Deadline of one GetTopic probe. */
#define PROBE_TIMEOUT_MS 5000

struct trb_ingest_pubs_s {
  trb_ps_publisher_t **pubs;
  char **topics;
  size_t n;
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
  trb_ingest_metrics_t *metrics;
  _Atomic bool failing;
  _Atomic size_t confirmed; /* topics GetTopic found */
  pthread_mutex_t mu;       /* guards probing, closed, done[] */
  pthread_cond_t probes_done;
  int probing;              /* GetTopic calls in flight */
  bool closed;
  bool *done;               /* per topic: confirmed */
};

typedef struct {
  trb_ingest_pubs_t *p;
  size_t idx;
} probe_t;

void trb_ingest_event_deinit(trb_ingest_event_t *e) {
  if (!e) return;
  trb_buf_deinit(&e->data);
}

void trb_ingest_outcome_deinit(trb_ingest_outcome_t *o) {
  if (!o) return;
  if (o->message_id && o->message_id != o->id_inline) {
    trb_free((char *)o->message_id);
  }
  o->message_id = NULL;
}

static void batch_release(trb_ingest_batch_t *b, size_t k) {
  if (__atomic_sub_fetch(&b->remaining, k, __ATOMIC_ACQ_REL) != 0) return;
  b->done(b->user, b->outs, b->n);
}

static bool outage(grpc_status_code c) {
  return c == GRPC_STATUS_UNAVAILABLE || c == GRPC_STATUS_DEADLINE_EXCEEDED;
}

static void on_published(void *user, grpc_status_code code,
                         const char *message, const char *message_id) {
  trb_ingest_outcome_t *o = user;
  trb_ingest_batch_t *b = o->batch;
  o->code = code;
  if (code == GRPC_STATUS_OK) {
    const char *id = message_id ? message_id : "";
    size_t l = strlen(id);
    if (l < sizeof(o->id_inline)) {
      memcpy(o->id_inline, id, l + 1);
      o->message_id = o->id_inline;
    } else {
      o->message_id = trb_strndup(id, l);
      if (!o->message_id) {
        o->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(o->error, sizeof(o->error), "out of memory");
      }
    }
    int64_t lat_us = (trb_clock_mono_ns() - o->start_ns) / 1000;
    trb_ingest_metrics_published(b->p->metrics, b->route, o->data_len, lat_us);
    if (atomic_load_explicit(&b->p->failing, memory_order_relaxed)) {
      atomic_store_explicit(&b->p->failing, false, memory_order_relaxed);
    }
  } else {
    snprintf(o->error, sizeof(o->error), "Pub/Sub publish failed: %s: %s",
             trb_status_code_name(code), message ? message : "");
    if (outage(code)) {
      atomic_store_explicit(&b->p->failing, true, memory_order_relaxed);
    }
  }
  batch_release(b, 1);
}

/* Most events handed to the publisher per trb_ps_publish_many call (the
 * message and user arrays live on the stack). */
#define CHUNK 64

void trb_ingest_pubs_publish(trb_ingest_pubs_t *p, size_t topic, int route,
                             const trb_ingest_event_t *events,
                             trb_ingest_outcome_t *outs, size_t n,
                             trb_ingest_batch_t *b,
                             trb_ingest_batch_done_cb done, void *user) {
  b->p = p;
  b->outs = outs;
  b->n = n;
  b->route = route;
  b->done = done;
  b->user = user;
  __atomic_store_n(&b->remaining, n + 1, __ATOMIC_RELAXED);
  int64_t now = trb_clock_mono_ns();
  trb_ps_message_t msgs[CHUNK];
  void *users[CHUNK];
  size_t refused = 0;
  for (size_t base = 0; base < n;) {
    size_t m = n - base < CHUNK ? n - base : CHUNK;
    for (size_t i = 0; i < m; i++) {
      const trb_ingest_event_t *e = &events[base + i];
      trb_ingest_outcome_t *o = &outs[base + i];
      o->batch = b;
      o->start_ns = now;
      o->data_len = e->data.len;
      msgs[i] = (trb_ps_message_t){(const uint8_t *)e->data.data, e->data.len,
                                   e->n_attrs ? e->attrs : NULL, e->n_attrs,
                                   NULL};
      users[i] = o;
    }
    size_t done_here = 0;
    while (done_here < m) {
      size_t acc = 0;
      trb_status_t st = {0};
      grpc_status_code c =
          trb_ps_publish_many(p->pubs[topic], msgs + done_here, m - done_here,
                              on_published, users + done_here, &acc, &st);
      done_here += acc;
      if (c == GRPC_STATUS_OK) break;
      /* Event `done_here` was refused; the rest are tried again. */
      trb_ingest_outcome_t *o = &outs[base + done_here];
      o->code = c;
      o->refused = true;
      snprintf(o->error, sizeof(o->error), "%s", st.msg);
      refused++;
      done_here++;
    }
    base += m;
  }
  batch_release(b, refused + 1);
}

static void on_probe(void *user, const trb_rpc_result_t *res) {
  probe_t *pr = user;
  trb_ingest_pubs_t *p = pr->p;
  if (res->code == GRPC_STATUS_OK) {
    TRB_LOG(TRB_LOG_DEBUG, "ingest", "topic %s: reachable", p->topics[pr->idx]);
  } else {
    TRB_LOG(res->code == GRPC_STATUS_NOT_FOUND ? TRB_LOG_ERROR : TRB_LOG_WARNING,
            "ingest", "topic %s: GetTopic failed: %s: %s", p->topics[pr->idx],
            trb_status_code_name(res->code), res->message);
  }
  pthread_mutex_lock(&p->mu);
  /* PERMISSION_DENIED counts as reachable: roles/pubsub.publisher grants
   * pubsub.topics.publish but not pubsub.topics.get. */
  if (res->code == GRPC_STATUS_OK || res->code == GRPC_STATUS_PERMISSION_DENIED) {
    atomic_store(&p->failing, false);
    if (!p->done[pr->idx]) {
      p->done[pr->idx] = true;
      atomic_fetch_add(&p->confirmed, 1);
    }
  }
  if (--p->probing == 0) pthread_cond_broadcast(&p->probes_done);
  pthread_mutex_unlock(&p->mu);
  trb_free(pr);
}

void trb_ingest_pubs_probe(trb_ingest_pubs_t *p) {
  pthread_mutex_lock(&p->mu);
  if (p->probing > 0 || p->closed) {
    pthread_mutex_unlock(&p->mu);
    return;
  }
  /* After an outage, check every topic again: a success clears it (no
   * traffic reaches an unready instance, so a publish cannot). */
  bool failing = trb_ingest_pubs_failing(p);
  for (size_t i = 0; i < p->n; i++) {
    if (p->done[i] && !failing) continue;
    /* GetTopicRequest{topic = 1}, encoded by hand. */
    size_t tl = strlen(p->topics[i]);
    uint8_t *req = trb_malloc(tl + 11);
    probe_t *pr = trb_calloc(1, sizeof(*pr));
    char *md_value = trb_malloc(tl + 7);
    if (!req || !pr || !md_value) {
      trb_free(req);
      trb_free(pr);
      trb_free(md_value);
      break;
    }
    size_t o = 0;
    req[o++] = 0x0a;
    size_t v = tl;
    do {
      req[o++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
      v >>= 7;
    } while (v);
    memcpy(req + o, p->topics[i], tl);
    o += tl;
    snprintf(md_value, tl + 7, "topic=%s", p->topics[i]);
    trb_rpc_md_t md = {"x-goog-request-params", md_value, 0};
    trb_rpc_call_opts_t opts = {0};
    opts.timeout_ms = PROBE_TIMEOUT_MS;
    opts.md = &md;
    opts.n_md = 1;
    pr->p = p;
    pr->idx = i;
    p->probing++;
    trb_status_t st = {0};
    if (trb_rpc_unary_start(p->loop, p->ch, "/google.pubsub.v1.Publisher/GetTopic",
                            req, o, &opts, on_probe, pr, &st) != GRPC_STATUS_OK) {
      p->probing--;
      trb_free(pr);
    }
    trb_free(req);
    trb_free(md_value);
  }
  pthread_mutex_unlock(&p->mu);
}

bool trb_ingest_pubs_ready(const trb_ingest_pubs_t *p) {
  return atomic_load(&((trb_ingest_pubs_t *)p)->confirmed) == p->n &&
         !trb_ingest_pubs_failing(p);
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
  p->loop = loop;
  p->ch = ch;
  p->metrics = metrics;
  atomic_init(&p->failing, false);
  atomic_init(&p->confirmed, 0);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->probes_done, NULL);
  p->topics = trb_calloc(n ? n : 1, sizeof(*p->topics));
  p->done = trb_calloc(n ? n : 1, sizeof(*p->done));
  if (!p->topics || !p->done) {
    trb_ingest_pubs_destroy(p);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    p->topics[i] = trb_strdup(topics[i]);
    if (!p->topics[i]) {
      trb_ingest_pubs_destroy(p);
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
  }
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

/* Stop probing and wait for probes in flight (each bounded by its
 * deadline). */
static void close_probes(trb_ingest_pubs_t *p) {
  pthread_mutex_lock(&p->mu);
  p->closed = true;
  while (p->probing > 0) pthread_cond_wait(&p->probes_done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

grpc_status_code trb_ingest_pubs_shutdown(trb_ingest_pubs_t *p,
                                          int64_t timeout_ms,
                                          trb_status_t *st) {
  grpc_status_code first = GRPC_STATUS_OK;
  close_probes(p);
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
  close_probes(p);
  for (size_t i = 0; i < p->n; i++) {
    trb_ps_publisher_destroy(p->pubs[i]);
    if (p->topics) trb_free(p->topics[i]);
  }
  trb_free(p->pubs);
  trb_free(p->topics);
  trb_free(p->done);
  pthread_cond_destroy(&p->probes_done);
  pthread_mutex_destroy(&p->mu);
  trb_free(p);
}
