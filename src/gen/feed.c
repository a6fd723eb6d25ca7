/*
 * feed.c — see feed.h.
 */
#include "src/gen/feed.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/common/alloc.h"
#include "src/common/arena.h"
#include "src/common/clock.h"
#include "src/gen/http_client.h"

#define MAX_PATHS 8
#define RTT_BUCKETS 128 /* bucket k: [2^(k/4), 2^((k+1)/4)) microseconds */

typedef struct req_s {
  struct req_s *next;
  char *path;
  trb_buf_t body;
  uint32_t n;      /* events */
  bool batch;      /* NDJSON; else one JSON value */
} req_t;

typedef struct {
  char *path;
  req_t *cur; /* batch being filled */
} route_t;

struct trb_feed_s {
  trb_feed_config_t cfg;
  char *host;
  pthread_mutex_t mu;
  pthread_cond_t cv_work;  /* queue not empty / cancel */
  pthread_cond_t cv_room;  /* queue has room; idle */
  req_t *head, *tail;
  int queued_reqs;
  int busy;
  bool cancel, closing;
  route_t routes[MAX_PATHS];
  int nroutes;
  pthread_t *threads;
  int nthreads;
  trb_feed_stats_t st;
  uint64_t rtt[RTT_BUCKETS];
};

static void req_free(req_t *r) {
  if (!r) return;
  trb_free(r->path);
  trb_buf_deinit(&r->body);
  trb_free(r);
}

static req_t *req_new(const char *path, bool batch) {
  req_t *r = trb_calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->path = trb_strdup(path);
  if (!r->path) {
    trb_free(r);
    return NULL;
  }
  trb_buf_init(&r->body);
  r->batch = batch;
  return r;
}

/* Under mu. */
static void push_back(trb_feed_t *f, req_t *r) {
  r->next = NULL;
  if (f->tail) {
    f->tail->next = r;
  } else {
    f->head = r;
  }
  f->tail = r;
  f->queued_reqs++;
  pthread_cond_signal(&f->cv_work);
}

static void rtt_observe(trb_feed_t *f, int64_t us) {
  if (us < 1) us = 1;
  int k = (int)(log2((double)us) * 4);
  if (k < 0) k = 0;
  if (k >= RTT_BUCKETS) k = RTT_BUCKETS - 1;
  f->rtt[k]++;
}

static uint64_t rtt_quantile(const trb_feed_t *f, double q) {
  uint64_t total = 0;
  for (int k = 0; k < RTT_BUCKETS; k++) total += f->rtt[k];
  if (!total) return 0;
  uint64_t want = (uint64_t)ceil(q * (double)total), acc = 0;
  for (int k = 0; k < RTT_BUCKETS; k++) {
    acc += f->rtt[k];
    if (acc >= want) return (uint64_t)exp2(((double)k + 0.5) / 4);
  }
  return 0;
}

/* Parse "key": <int> out of a JSON reply; -1 when absent. */
static long long reply_int(const trb_buf_t *b, const char *k) {
  char pat[32];
  snprintf(pat, sizeof pat, "\"%s\":", k);
  if (!b->data) return -1;
  const char *p = memmem(b->data, b->len, pat, strlen(pat));
  if (!p) return -1;
  p += strlen(pat);
  char num[24];
  size_t n = 0;
  const char *end = b->data + b->len;
  while (p < end && *p == ' ') p++;
  while (p < end && n + 1 < sizeof num && *p >= '0' && *p <= '9') num[n++] = *p++;
  num[n] = '\0';
  return n ? strtoll(num, NULL, 10) : -1;
}

/* Split a refused batch into single-event requests at the queue's front
 * (in their original order). */
static void split(trb_feed_t *f, req_t *r) {
  const char *p = r->body.data, *end = r->body.data + r->body.len;
  req_t *first = NULL, *last = NULL;
  int count = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
    req_t *s = req_new(r->path, false);
    if (!s || trb_buf_append(&s->body, p, ln) != 0) {
      req_free(s);
      __atomic_fetch_add(&f->st.failed, 1, __ATOMIC_RELAXED);
      __atomic_fetch_add(&f->st.sent, 1, __ATOMIC_RELAXED);
    } else {
      s->n = 1;
      if (last) {
        last->next = s;
      } else {
        first = s;
      }
      last = s;
      count++;
    }
    p += ln + 1;
  }
  pthread_mutex_lock(&f->mu);
  f->st.split++;
  if (first) {
    last->next = f->head;
    f->head = first;
    if (!f->tail) f->tail = last;
    f->queued_reqs += count;
    pthread_cond_broadcast(&f->cv_work);
  }
  pthread_mutex_unlock(&f->mu);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static bool cancelled(trb_feed_t *f) {
  return __atomic_load_n(&f->cancel, __ATOMIC_ACQUIRE);
}

/* Send `r` until answered or given up, and account its events (a batch
 * refused with 400 is split into single requests instead). */
static void handle(trb_feed_t *f, trb_http_conn_t *c, req_t *r,
                   trb_buf_t *resp) {
  int64_t start = trb_clock_mono_ms();
  int backoff = 20;
  for (;;) {
    int status = 0;
    int64_t t0 = trb_clock_mono_ns();
    int rc = trb_http_request(
        c, "POST", r->path, r->batch ? "application/x-ndjson" : "application/json",
        r->body.data, r->body.len, f->cfg.timeout_ms, &status, resp);
    int64_t t1 = trb_clock_mono_ns();
    bool retry = rc != 0 || status == 503 || status == 502 || status == 504;
    if (!retry) {
      pthread_mutex_lock(&f->mu);
      rtt_observe(f, (t1 - t0) / 1000);
      f->st.requests++;
      pthread_mutex_unlock(&f->mu);
      if (status == 400 && r->batch && r->n > 1) {
        split(f, r);
        return;
      }
      uint64_t ok = 0, refused = 0, failed = 0;
      if (status >= 200 && status < 300) {
        long long pub = r->batch ? reply_int(resp, "published") : -1;
        ok = pub >= 0 ? (uint64_t)pub : r->n;
        if (ok > r->n) ok = r->n;
        failed = r->n - ok;
      } else if (status >= 400 && status < 500) {
        refused = r->n;
      } else {
        failed = r->n;
      }
      __atomic_fetch_add(&f->st.accepted, ok, __ATOMIC_RELAXED);
      __atomic_fetch_add(&f->st.refused, refused, __ATOMIC_RELAXED);
      __atomic_fetch_add(&f->st.failed, failed, __ATOMIC_RELAXED);
      __atomic_fetch_add(&f->st.sent, r->n, __ATOMIC_RELAXED);
      return;
    }
    if (cancelled(f) || trb_clock_mono_ms() - start > f->cfg.retry_ms) {
      __atomic_fetch_add(&f->st.failed, r->n, __ATOMIC_RELAXED);
      __atomic_fetch_add(&f->st.sent, r->n, __ATOMIC_RELAXED);
      return;
    }
    __atomic_fetch_add(&f->st.retries, 1, __ATOMIC_RELAXED);
    sleep_ms(backoff);
    if (backoff < 500) backoff *= 2;
  }
}

static void *sender(void *arg) {
  trb_feed_t *f = arg;
  trb_http_conn_t *c = trb_http_conn_create(f->host, f->cfg.port);
  trb_buf_t resp = TRB_BUF_INIT;
  for (;;) {
    pthread_mutex_lock(&f->mu);
    while (!f->head && !f->cancel && !f->closing)
      pthread_cond_wait(&f->cv_work, &f->mu);
    if (f->cancel || (!f->head && f->closing)) {
      pthread_mutex_unlock(&f->mu);
      break;
    }
    req_t *r = f->head;
    f->head = r->next;
    if (!f->head) f->tail = NULL;
    f->queued_reqs--;
    f->busy++;
    pthread_cond_broadcast(&f->cv_room);
    pthread_mutex_unlock(&f->mu);
    if (c) {
      handle(f, c, r, &resp);
    } else {
      __atomic_fetch_add(&f->st.failed, r->n, __ATOMIC_RELAXED);
    }
    req_free(r);
    pthread_mutex_lock(&f->mu);
    f->busy--;
    pthread_cond_broadcast(&f->cv_room);
    pthread_mutex_unlock(&f->mu);
  }
  trb_buf_deinit(&resp);
  trb_http_conn_destroy(c);
  return NULL;
}

trb_feed_t *trb_feed_create(const trb_feed_config_t *cfg) {
  trb_feed_t *f = trb_calloc(1, sizeof(*f));
  if (!f) return NULL;
  f->cfg = *cfg;
  if (f->cfg.connections <= 0) f->cfg.connections = 4;
  if (f->cfg.batch_max <= 0) f->cfg.batch_max = 100;
  if (f->cfg.batch_max > 1000) f->cfg.batch_max = 1000;
  if (f->cfg.queue_max <= 0) f->cfg.queue_max = 4 * f->cfg.connections;
  if (f->cfg.timeout_ms <= 0) f->cfg.timeout_ms = 30000;
  if (f->cfg.retry_ms <= 0) f->cfg.retry_ms = 60000;
  f->host = trb_strdup(cfg->host ? cfg->host : "127.0.0.1");
  f->threads = trb_calloc((size_t)f->cfg.connections, sizeof(pthread_t));
  if (!f->host || !f->threads) {
    trb_free(f->host);
    trb_free(f->threads);
    trb_free(f);
    return NULL;
  }
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv_work, NULL);
  pthread_cond_init(&f->cv_room, NULL);
  for (int i = 0; i < f->cfg.connections; i++) {
    if (pthread_create(&f->threads[i], NULL, sender, f) != 0) break;
    f->nthreads++;
  }
  if (f->nthreads == 0) {
    trb_feed_destroy(f);
    return NULL;
  }
  return f;
}

/* Under mu: wait for room; false when cancelled. */
static bool wait_room(trb_feed_t *f) {
  while (!f->cancel && f->queued_reqs >= f->cfg.queue_max)
    pthread_cond_wait(&f->cv_room, &f->mu);
  return !f->cancel;
}

static int enqueue(trb_feed_t *f, req_t *r) {
  pthread_mutex_lock(&f->mu);
  if (!wait_room(f)) {
    pthread_mutex_unlock(&f->mu);
    req_free(r);
    return -ECANCELED;
  }
  push_back(f, r);
  pthread_mutex_unlock(&f->mu);
  return 0;
}

int trb_feed_add(trb_feed_t *f, const char *path, const char *json, size_t len,
                 bool batchable) {
  if (cancelled(f)) return -ECANCELED;
  __atomic_fetch_add(&f->st.queued, 1, __ATOMIC_RELAXED);
  if (!batchable || f->cfg.batch_max == 1) {
    req_t *r = req_new(path, false);
    if (!r || trb_buf_append(&r->body, json, len) != 0) {
      req_free(r);
      return -ENOMEM;
    }
    r->n = 1;
    return enqueue(f, r);
  }
  route_t *rt = NULL;
  for (int i = 0; i < f->nroutes; i++)
    if (strcmp(f->routes[i].path, path) == 0) rt = &f->routes[i];
  if (!rt) {
    if (f->nroutes == MAX_PATHS) return -ENOMEM;
    rt = &f->routes[f->nroutes];
    rt->path = trb_strdup(path);
    if (!rt->path) return -ENOMEM;
    f->nroutes++;
  }
  if (!rt->cur) {
    rt->cur = req_new(path, true);
    if (!rt->cur) return -ENOMEM;
  }
  req_t *r = rt->cur;
  if ((r->n && trb_buf_append(&r->body, "\n", 1) != 0) ||
      trb_buf_append(&r->body, json, len) != 0)
    return -ENOMEM;
  r->n++;
  if ((int)r->n >= f->cfg.batch_max) {
    rt->cur = NULL;
    return enqueue(f, r);
  }
  return 0;
}

int trb_feed_flush(trb_feed_t *f) {
  for (int i = 0; i < f->nroutes; i++) {
    req_t *r = f->routes[i].cur;
    if (!r) continue;
    f->routes[i].cur = NULL;
    int rc = enqueue(f, r);
    if (rc) return rc;
  }
  return 0;
}

int trb_feed_finish(trb_feed_t *f) {
  int rc = trb_feed_flush(f);
  if (rc) return rc;
  pthread_mutex_lock(&f->mu);
  while (!f->cancel && (f->head || f->busy))
    pthread_cond_wait(&f->cv_room, &f->mu);
  rc = f->cancel ? -ECANCELED : 0;
  pthread_mutex_unlock(&f->mu);
  return rc;
}

void trb_feed_cancel(trb_feed_t *f) {
  pthread_mutex_lock(&f->mu);
  __atomic_store_n(&f->cancel, true, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&f->cv_work);
  pthread_cond_broadcast(&f->cv_room);
  pthread_mutex_unlock(&f->mu);
}

void trb_feed_stats(trb_feed_t *f, trb_feed_stats_t *out) {
  out->queued = __atomic_load_n(&f->st.queued, __ATOMIC_RELAXED);
  out->sent = __atomic_load_n(&f->st.sent, __ATOMIC_RELAXED);
  out->accepted = __atomic_load_n(&f->st.accepted, __ATOMIC_RELAXED);
  out->refused = __atomic_load_n(&f->st.refused, __ATOMIC_RELAXED);
  out->failed = __atomic_load_n(&f->st.failed, __ATOMIC_RELAXED);
  out->retries = __atomic_load_n(&f->st.retries, __ATOMIC_RELAXED);
  pthread_mutex_lock(&f->mu);
  out->requests = f->st.requests;
  out->split = f->st.split;
  out->rtt_p50_us = rtt_quantile(f, 0.50);
  out->rtt_p99_us = rtt_quantile(f, 0.99);
  pthread_mutex_unlock(&f->mu);
}

void trb_feed_destroy(trb_feed_t *f) {
  if (!f) return;
  trb_feed_cancel(f);
  pthread_mutex_lock(&f->mu);
  f->closing = true;
  pthread_cond_broadcast(&f->cv_work);
  pthread_mutex_unlock(&f->mu);
  for (int i = 0; i < f->nthreads; i++) pthread_join(f->threads[i], NULL);
  while (f->head) {
    req_t *r = f->head;
    f->head = r->next;
    req_free(r);
  }
  for (int i = 0; i < f->nroutes; i++) {
    trb_free(f->routes[i].path);
    req_free(f->routes[i].cur);
  }
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cv_work);
  pthread_cond_destroy(&f->cv_room);
  trb_free(f->host);
  trb_free(f->threads);
  trb_free(f);
}
