/* publisher.c — see publisher.h.
 *
 * Messages are encoded at publish time straight into the request buffer of
 * the open batch of their ordering key (PublishRequest wire format, the
 * topic field first), so a message costs no allocation of its own and one
 * copy of its data; a batch closes when the next message would break
 * max_messages / max_bytes, and is sent when closed, when its first message
 * has waited max_delay_ms, or on flush.
 *
 * Locking: one mutex `mu` guards everything mutable. A batch to send is
 * prepared with it held (counted in rpcs_in_flight, put on `starting`);
 * whoever holds the lock takes that list before releasing it and starts
 * the RPCs after (take_starts / run_starts), so copying a request into
 * gRPC never happens under the lock the publishing threads need. User
 * callbacks always run with it released. Two condition variables:
 * `timer_cv` wakes the timer thread, `room_cv` wakes publishers blocked on
 * flow control and flush/shutdown waiters.
 */
#include "src/pubsub/publisher.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/rpc/retry.h"

static const char kMethod[] = "/google.pubsub.v1.Publisher/Publish";

/* One message of a batch: its completion and encoded size. */
typedef struct ent_s {
  trb_ps_publish_cb cb;
  void *user;
  size_t len; /* encoded PubsubMessage bytes (flow-control unit) */
} ent_t;

typedef struct keyq_s keyq_t;

typedef struct batch_s {
  struct batch_s *next; /* key queue, then retry list */
  trb_ps_publisher_t *p;
  keyq_t *kq;
  uint8_t *req; /* PublishRequest being built / sent */
  size_t req_len, req_cap;
  ent_t *ents;
  size_t n, ents_cap;
  size_t flow_bytes;
  bool full; /* no further message fits */
  int64_t created_ms; /* first message queued */
  int64_t first_ms;   /* first attempt */
  int64_t retry_at_ms;
  int64_t attempt_timeout_ms; /* of the attempt being started */
  trb_backoff_t bo;
  /* Message ids of a successful response (into the response buffer). */
  const char **ids;
  size_t *id_lens;
} batch_t;

struct keyq_s {
  struct keyq_s *next;
  char *key;             /* "" for the unordered queue */
  batch_t *head, *tail;  /* batches not yet sent; only the tail is open */
  int in_flight;
  bool paused;
  grpc_status_code pause_code;
};

struct trb_ps_publisher_s {
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
  char *topic;
  char *params; /* x-goog-request-params value */
  size_t topic_cost;
  trb_ps_publisher_config_t cfg;
  size_t req_hint; /* capacity for a new request buffer */

  pthread_mutex_t mu;
  pthread_cond_t timer_cv;
  pthread_cond_t room_cv;
  pthread_t timer;
  bool timer_started;
  /* The timer thread sleeps on timer_cv until timer_wake_ms (monotonic;
   * -1 = until signalled). Signalling it is needed only when something
   * becomes due earlier (need_timer); the wake-up is sent after mu is
   * released (wake_timer, unlock_and_start), so the timer thread does not
   * wake up only to block on mu. */
  bool timer_sleeping;
  int64_t timer_wake_ms;
  bool wake_timer;

  keyq_t unordered;
  keyq_t *keys; /* ordered keys with state */
  int unordered_in_flight;
  batch_t *retries;
  batch_t *starting; /* prepared attempts, newest first (start_attempt) */
  int rpcs_in_flight;
  int batches; /* sent and not completed (incl. waiting for a retry) */

  int64_t out_msgs, out_bytes; /* accepted, not completed */
  int flushers;                /* > 0: send regardless of thresholds */
  bool closing, aborting, stop;
  uint64_t seq;
  trb_ps_publisher_stats_t stats; /* succeeded/failed: the atomics below */
  /* Messages completed, counted before their callbacks run (no lock). */
  _Atomic uint64_t done_ok, done_failed;
};

/* ------------------------------------------------------------------------ */

static void timespec_at(int64_t mono_ms, struct timespec *ts) {
  ts->tv_sec = (time_t)(mono_ms / 1000);
  ts->tv_nsec = (long)((mono_ms % 1000) * 1000000);
}

/* Wait on `cv` until `deadline_ms` (monotonic; < 0 = forever). Returns
 * false when the deadline passed. */
static bool wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                       int64_t deadline_ms) {
  if (deadline_ms < 0) {
    pthread_cond_wait(cv, mu);
    return true;
  }
  if (trb_clock_mono_ms() >= deadline_ms) return false;
  struct timespec ts;
  timespec_at(deadline_ms, &ts);
  pthread_cond_timedwait(cv, mu, &ts);
  return true;
}

static void batch_free(batch_t *b) {
  if (!b) return;
  trb_free(b->req);
  trb_free(b->ents);
  trb_free(b->ids);
  trb_free(b->id_lens);
  trb_free(b);
}

static void batch_list_free(batch_t *b) {
  while (b) {
    batch_t *next = b->next;
    batch_free(b);
    b = next;
  }
}

static keyq_t *find_key(trb_ps_publisher_t *p, const char *key, bool create) {
  if (!key || !key[0]) return &p->unordered;
  for (keyq_t *k = p->keys; k; k = k->next) {
    if (strcmp(k->key, key) == 0) return k;
  }
  if (!create) return NULL;
  keyq_t *k = trb_calloc(1, sizeof(*k));
  if (!k) return NULL;
  k->key = trb_strdup(key);
  if (!k->key) {
    trb_free(k);
    return NULL;
  }
  k->next = p->keys;
  p->keys = k;
  return k;
}

/* Drop ordered keys that hold no state (bounded memory for many keys). */
static void gc_key(trb_ps_publisher_t *p, keyq_t *k) {
  if (k == &p->unordered || k->head || k->in_flight > 0 || k->paused) return;
  for (keyq_t **pp = &p->keys; *pp; pp = &(*pp)->next) {
    if (*pp == k) {
      *pp = k->next;
      trb_free(k->key);
      trb_free(k);
      return;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */
/* ------------------------------------------------------------------------ */

static void on_publish_done(void *user, const trb_rpc_result_t *r);

static bool can_send(const trb_ps_publisher_t *p, const keyq_t *k) {
  if (!k->head) return false;
  if (k == &p->unordered) return p->unordered_in_flight < p->cfg.max_in_flight;
  return k->in_flight == 0 && !k->paused;
}

static bool due(const trb_ps_publisher_t *p, const keyq_t *k, int64_t now) {
  return p->flushers > 0 || p->closing || k->head->full ||
         now - k->head->created_ms >= p->cfg.max_delay_ms;
}

/* Prepare (or re-prepare) the RPC of `b`: counted in flight, queued on
 * `starting`; run_starts starts it. With mu held. */
static void start_attempt(trb_ps_publisher_t *p, batch_t *b, int64_t now) {
  int64_t left = b->first_ms + p->cfg.retry_deadline_ms - now;
  int64_t timeout = p->cfg.rpc_timeout_ms;
  if (left < timeout) timeout = left;
  if (timeout < 1) timeout = 1;
  b->attempt_timeout_ms = timeout;
  p->stats.requests++;
  p->rpcs_in_flight++;
  b->next = p->starting;
  p->starting = b;
}

/* Take the prepared attempts, oldest first. With mu held. */
static batch_t *take_starts(trb_ps_publisher_t *p) {
  batch_t *rev = NULL;
  while (p->starting) {
    batch_t *b = p->starting;
    p->starting = b->next;
    b->next = rev;
    rev = b;
  }
  return rev;
}

/* Start the RPCs of a take_starts list. Without mu. `p` stays valid: each
 * batch is counted in rpcs_in_flight, which shutdown waits for. */
static void run_starts(trb_ps_publisher_t *p, batch_t *list) {
  while (list) {
    batch_t *b = list;
    list = b->next;
    b->next = NULL;
    trb_rpc_md_t md = {"x-goog-request-params", p->params, 0};
    trb_rpc_call_opts_t opts = {b->attempt_timeout_ms, &md, 1};
    trb_status_t st;
    if (trb_rpc_unary_start(p->loop, p->ch, kMethod, b->req, b->req_len,
                            &opts, on_publish_done, b, &st) == GRPC_STATUS_OK) {
      continue; /* `b` may already be completed and freed */
    }
    /* Could not even start (memory): try again after a backoff. */
    pthread_mutex_lock(&p->mu);
    b->retry_at_ms = trb_clock_mono_ms() + trb_backoff_next_ms(&b->bo);
    b->next = p->retries;
    p->retries = b;
    pthread_cond_signal(&p->timer_cv);
    p->rpcs_in_flight--;
    pthread_cond_broadcast(&p->room_cv);
    pthread_mutex_unlock(&p->mu);
  }
}

/* Whether the timer thread must be woken for something due at `at_ms`:
 * it sleeps, and past that time or forever. With mu held. */
static bool need_timer(const trb_ps_publisher_t *p, int64_t at_ms) {
  return p->timer_sleeping && (p->timer_wake_ms < 0 || at_ms < p->timer_wake_ms);
}

/* Release mu, then wake the timer thread if asked (wake_timer) and start
 * what was prepared under the lock. */
static void unlock_and_start(trb_ps_publisher_t *p) {
  batch_t *list = take_starts(p);
  bool wake = p->wake_timer;
  p->wake_timer = false;
  pthread_mutex_unlock(&p->mu);
  if (wake) pthread_cond_signal(&p->timer_cv);
  run_starts(p, list);
}

/* Send the head batch of `k`. With mu held; can_send(k) true. */
static void send_head(trb_ps_publisher_t *p, keyq_t *k, int64_t now) {
  batch_t *b = k->head;
  k->head = b->next;
  if (!k->head) k->tail = NULL;
  b->next = NULL;
  b->full = true;
  if (k == &p->unordered && b->req_len > p->req_hint) {
    p->req_hint = b->req_len;
  }
  b->first_ms = now;
  trb_backoff_init(&b->bo, p->cfg.backoff_initial_ms, p->cfg.backoff_max_ms,
                   p->cfg.backoff_multiplier, p->cfg.seed + (++p->seq));
  k->in_flight++;
  if (k == &p->unordered) p->unordered_in_flight++;
  if ((uint64_t)++p->batches > p->stats.peak_in_flight) {
    p->stats.peak_in_flight = (uint64_t)p->batches;
  }
  start_attempt(p, b, now);
}

static void pump_key(trb_ps_publisher_t *p, keyq_t *k, int64_t now) {
  while (can_send(p, k) && due(p, k, now)) send_head(p, k, now);
}

/* Send every queue that is due. With mu held. */
static void pump(trb_ps_publisher_t *p) {
  int64_t now = trb_clock_mono_ms();
  pump_key(p, &p->unordered, now);
  for (keyq_t *k = p->keys; k; k = k->next) pump_key(p, k, now);
}

/* ------------------------------------------------------------------------ */
/* Completion                                                                */
/* ------------------------------------------------------------------------ */

/* Run the callbacks of `b` with one status (no lock held). */
static void fail_batch(const batch_t *b, grpc_status_code code,
                       const char *msg) {
  atomic_fetch_add(&b->p->done_failed, b->n);
  for (size_t i = 0; i < b->n; i++) {
    if (b->ents[i].cb) b->ents[i].cb(b->ents[i].user, code, msg, NULL);
  }
}

/* Account for `n` completed messages of `bytes`. With mu held. */
static void account(trb_ps_publisher_t *p, size_t n, size_t bytes, bool ok,
                    grpc_status_code code, const char *msg) {
  p->out_msgs -= (int64_t)n;
  p->out_bytes -= (int64_t)bytes;
  if (!ok && n > 0 && p->stats.first_error.code == GRPC_STATUS_OK) {
    trb_status_set(&p->stats.first_error, code, "%s", msg);
  }
  pthread_cond_broadcast(&p->room_cv);
}

/* Fail a list of batches (no lock held), then account (takes the lock). */
static void fail_batches(trb_ps_publisher_t *p, batch_t *list,
                         grpc_status_code code, const char *msg) {
  size_t n = 0, bytes = 0;
  for (batch_t *b = list; b; b = b->next) {
    fail_batch(b, code, msg);
    n += b->n;
    bytes += b->flow_bytes;
  }
  pthread_mutex_lock(&p->mu);
  account(p, n, bytes, false, code, msg);
  pthread_mutex_unlock(&p->mu);
}

static void collect_id(void *user, size_t i, const char *id, size_t len) {
  batch_t *b = user;
  if (i < b->n) {
    b->ids[i] = id;
    b->id_lens[i] = len;
  }
}

static void on_publish_done(void *user, const trb_rpc_result_t *r) {
  batch_t *b = user;
  trb_ps_publisher_t *p = b->p;
  grpc_status_code code = r->code;
  char message[256];
  snprintf(message, sizeof(message), "%s", r->message ? r->message : "");

  if (code == GRPC_STATUS_OK) {
    size_t n_ids = 0;
    trb_status_t st;
    b->ids = trb_calloc(b->n ? b->n : 1, sizeof(*b->ids));
    b->id_lens = trb_calloc(b->n ? b->n : 1, sizeof(*b->id_lens));
    if (!b->ids || !b->id_lens) {
      code = GRPC_STATUS_RESOURCE_EXHAUSTED;
      snprintf(message, sizeof(message), "out of memory");
    } else if (trb_ps_response_ids(r->response, r->response_len, collect_id,
                                   b, &n_ids, &st) != GRPC_STATUS_OK) {
      code = GRPC_STATUS_INTERNAL;
      snprintf(message, sizeof(message), "%s", st.msg);
    } else if (n_ids != b->n) {
      code = GRPC_STATUS_INTERNAL;
      snprintf(message, sizeof(message),
               "PublishResponse has %zu message ids for %zu messages", n_ids,
               b->n);
    }
  }

  keyq_t *k = b->kq;
  batch_t *dropped = NULL;
  if (code != GRPC_STATUS_OK) {
    pthread_mutex_lock(&p->mu);
    int64_t now = trb_clock_mono_ms();
    if (!p->aborting &&
        trb_rpc_is_retryable(TRB_RPC_OP_PUBLISH, code, message)) {
      int64_t delay = trb_backoff_next_ms(&b->bo);
      if (now + delay < b->first_ms + p->cfg.retry_deadline_ms) {
        p->rpcs_in_flight--;
        b->retry_at_ms = now + delay;
        b->next = p->retries;
        p->retries = b;
        pthread_cond_signal(&p->timer_cv);
        pthread_mutex_unlock(&p->mu);
        return;
      }
    }
    /* The key stays "in flight" until the callbacks below have run: later
     * messages of the key (even ones published from those callbacks) wait,
     * and the key cannot be collected under us (e.g. by a concurrent
     * trb_ps_publisher_resume). */
    if (k != &p->unordered) {
      /* Pause the key; what is queued behind the failure fails too. */
      k->paused = true;
      k->pause_code = code;
      dropped = k->head;
      k->head = k->tail = NULL;
    }
    pthread_mutex_unlock(&p->mu);
  }

  if (code == GRPC_STATUS_OK) {
    char stackbuf[128];
    atomic_fetch_add(&p->done_ok, b->n);
    for (size_t i = 0; i < b->n; i++) {
      const ent_t *e = &b->ents[i];
      if (!e->cb) continue;
      size_t len = b->id_lens[i];
      char *id = len < sizeof(stackbuf) ? stackbuf : trb_malloc(len + 1);
      if (!id) {
        e->cb(e->user, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
        continue;
      }
      memcpy(id, b->ids[i], len);
      id[len] = '\0';
      e->cb(e->user, GRPC_STATUS_OK, "", id);
      if (id != stackbuf) trb_free(id);
    }
  } else {
    fail_batch(b, code, message);
  }
  if (dropped) {
    char pmsg[320];
    snprintf(pmsg, sizeof(pmsg),
             "ordering key \"%.64s\" paused after a failed publish (%s: %.160s)"
             "; call trb_ps_publisher_resume",
             k->key, trb_status_code_name(code), message);
    fail_batches(p, dropped, GRPC_STATUS_FAILED_PRECONDITION, pmsg);
  }

  pthread_mutex_lock(&p->mu);
  account(p, b->n, b->flow_bytes, code == GRPC_STATUS_OK, code, message);
  k->in_flight--;
  p->batches--;
  if (k == &p->unordered) p->unordered_in_flight--;
  pump(p);
  /* What is left behind this request may now wait for its delay: only
   * then does the timer thread need waking (otherwise a futex wake and a
   * timer-thread wake-up per request for nothing). */
  if (k->head && need_timer(p, k->head->created_ms + p->cfg.max_delay_ms)) {
    p->wake_timer = true;
  }
  gc_key(p, k);
  /* Last touch of `p` (but for attempts prepared above, which count
   * themselves): shutdown waits for rpcs_in_flight == 0. */
  p->rpcs_in_flight--;
  pthread_cond_broadcast(&p->room_cv);
  unlock_and_start(p);
  batch_list_free(dropped);
  batch_free(b);
}

/* ------------------------------------------------------------------------ */
/* Timer thread                                                              */
/* ------------------------------------------------------------------------ */

static int64_t next_wake(trb_ps_publisher_t *p) {
  int64_t w = -1;
  for (batch_t *b = p->retries; b; b = b->next) {
    if (w < 0 || b->retry_at_ms < w) w = b->retry_at_ms;
  }
  keyq_t *k = &p->unordered;
  while (k) {
    if (can_send(p, k)) {
      int64_t t = k->head->created_ms + p->cfg.max_delay_ms;
      if (w < 0 || t < w) w = t;
    }
    k = (k == &p->unordered) ? p->keys : k->next;
  }
  return w;
}

static void *timer_main(void *arg) {
  trb_ps_publisher_t *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    int64_t now = trb_clock_mono_ms();
    /* Resend due retries. */
    batch_t **pp = &p->retries;
    while (*pp) {
      batch_t *b = *pp;
      if (b->retry_at_ms <= now) {
        *pp = b->next;
        b->next = NULL;
        p->stats.retries++;
        start_attempt(p, b, now);
      } else {
        pp = &b->next;
      }
    }
    pump(p);
    if (p->starting) {
      unlock_and_start(p);
      pthread_mutex_lock(&p->mu);
      continue;
    }
    p->timer_wake_ms = next_wake(p);
    p->timer_sleeping = true;
    wait_until(&p->timer_cv, &p->mu, p->timer_wake_ms);
    p->timer_sleeping = false;
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* API                                                                       */
/* ------------------------------------------------------------------------ */

static int64_t or_default(int64_t v, int64_t d) { return v == 0 ? d : v; }

grpc_status_code trb_ps_publisher_create(trb_rpc_loop_t *loop,
                                         trb_rpc_channel_t *ch,
                                         const char *topic,
                                         const trb_ps_publisher_config_t *cfg,
                                         trb_ps_publisher_t **out,
                                         trb_status_t *st) {
  *out = NULL;
  if (!loop || !ch || !topic || !topic[0]) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "publisher needs a loop, a channel and a topic");
  }
  trb_ps_publisher_config_t c = {0};
  if (cfg) c = *cfg;
  c.max_messages = (int)or_default(c.max_messages, 100);
  c.max_bytes = or_default(c.max_bytes, 1000000);
  c.max_delay_ms = or_default(c.max_delay_ms, 10);
  if (c.max_delay_ms < 0) c.max_delay_ms = 0;
  c.max_in_flight = (int)or_default(c.max_in_flight, 8);
  c.flow_max_messages = or_default(c.flow_max_messages, 1000);
  c.flow_max_bytes = or_default(c.flow_max_bytes, 100 * 1024 * 1024);
  c.block_timeout_ms = or_default(c.block_timeout_ms, 60000);
  c.retry_deadline_ms = or_default(c.retry_deadline_ms, 60000);
  c.backoff_initial_ms = or_default(c.backoff_initial_ms, 100);
  c.backoff_max_ms = or_default(c.backoff_max_ms, 60000);
  if (c.backoff_multiplier == 0) c.backoff_multiplier = 4.0;
  c.rpc_timeout_ms = or_default(c.rpc_timeout_ms, 60000);
  if (c.seed == 0) c.seed = (uint64_t)trb_clock_mono_ns() | 1;
  if (c.max_messages < 1 || c.max_messages > TRB_PS_MAX_REQUEST_MESSAGES ||
      c.max_bytes < 1 || c.max_bytes > TRB_PS_MAX_REQUEST_BYTES ||
      c.max_in_flight < 1 || c.flow_max_messages < 1 ||
      c.flow_max_bytes < 1 || c.retry_deadline_ms < 1 ||
      c.backoff_initial_ms < 1 || c.backoff_max_ms < c.backoff_initial_ms ||
      c.backoff_multiplier < 1.0 || c.rpc_timeout_ms < 1 ||
      (c.flow != TRB_PS_FLOW_BLOCK && c.flow != TRB_PS_FLOW_REJECT)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "publisher config out of range (max_messages "
                          "1..1000, max_bytes 1..10000000, positive limits)");
  }
  trb_ps_publisher_t *p = trb_calloc(1, sizeof(*p));
  if (!p) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  p->loop = loop;
  p->ch = ch;
  p->cfg = c;
  p->topic = trb_strdup(topic);
  size_t plen = strlen(topic) + 8;
  p->params = trb_malloc(plen);
  p->unordered.key = trb_strdup("");
  if (!p->topic || !p->params || !p->unordered.key) {
    trb_free(p->topic);
    trb_free(p->params);
    trb_free(p->unordered.key);
    trb_free(p);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  }
  snprintf(p->params, plen, "topic=%s", topic);
  p->topic_cost = trb_ps_request_topic_cost(topic);
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->timer_cv, &ca);
  pthread_cond_init(&p->room_cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&p->timer, NULL, timer_main, p) != 0) {
    pthread_cond_destroy(&p->timer_cv);
    pthread_cond_destroy(&p->room_cv);
    pthread_mutex_destroy(&p->mu);
    trb_free(p->topic);
    trb_free(p->params);
    trb_free(p->unordered.key);
    trb_free(p);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "cannot start the publisher timer thread");
  }
  p->timer_started = true;
  *out = p;
  return GRPC_STATUS_OK;
}

static grpc_status_code validate(const trb_ps_message_t *m, trb_status_t *st) {
  if (m->data_len > 0 && !m->data) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "data is NULL with data_len > 0");
  }
  if (m->data_len == 0 && m->n_attrs == 0) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "a message needs non-empty data or an attribute");
  }
  if (m->data_len > TRB_PS_MAX_DATA_BYTES) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "data is %zu bytes; the limit is %d", m->data_len,
                          TRB_PS_MAX_DATA_BYTES);
  }
  if (m->n_attrs > TRB_PS_MAX_ATTRIBUTES) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%zu attributes; the limit is %d", m->n_attrs,
                          TRB_PS_MAX_ATTRIBUTES);
  }
  if (m->n_attrs > 0 && !m->attrs) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "attrs is NULL with n_attrs > 0");
  }
  for (size_t i = 0; i < m->n_attrs; i++) {
    const char *k = m->attrs[i].key, *v = m->attrs[i].value;
    size_t kl = k ? strlen(k) : 0, vl = v ? strlen(v) : 0;
    if (kl == 0) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "attribute %zu has an empty key", i);
    }
    if (kl > TRB_PS_MAX_ATTR_KEY_BYTES) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "attribute key of %zu bytes; the limit is %d", kl,
                            TRB_PS_MAX_ATTR_KEY_BYTES);
    }
    if (vl > TRB_PS_MAX_ATTR_VALUE_BYTES) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "attribute value of %zu bytes; the limit is %d",
                            vl, TRB_PS_MAX_ATTR_VALUE_BYTES);
    }
  }
  if (m->ordering_key &&
      strlen(m->ordering_key) > TRB_PS_MAX_ORDERING_KEY_BYTES) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "ordering key longer than %d bytes",
                          TRB_PS_MAX_ORDERING_KEY_BYTES);
  }
  return GRPC_STATUS_OK;
}


/* A new open batch at the tail of `k`, with room for `cost` bytes of
 * message. With mu held. NULL on allocation failure. */
static batch_t *new_batch(trb_ps_publisher_t *p, keyq_t *k, size_t cost,
                          int64_t now) {
  batch_t *b = trb_calloc(1, sizeof(*b));
  if (!b) return NULL;
  /* The unordered queue starts at the size its requests reach (no
   * regrowth in steady state); an ordering key starts small, since many
   * keys may each hold one small open batch. */
  size_t cap = 4096;
  if (k == &p->unordered && p->req_hint > cap) cap = p->req_hint;
  if (cap < p->topic_cost + cost) cap = p->topic_cost + cost;
  size_t ents = (size_t)p->cfg.max_messages < 128 ? (size_t)p->cfg.max_messages
                                                   : 128;
  b->req = trb_malloc(cap);
  b->ents = trb_malloc(ents * sizeof(*b->ents));
  if (!b->req || !b->ents) {
    batch_free(b);
    return NULL;
  }
  b->req_cap = cap;
  b->ents_cap = ents;
  b->req_len = trb_ps_request_put_topic(b->req, p->topic);
  b->p = p;
  b->kq = k;
  b->created_ms = now;
  if (k->tail) {
    k->tail->next = b;
  } else {
    k->head = b;
  }
  k->tail = b;
  return b;
}

/* Make room in `b` for one more message of `cost` request bytes. */
static bool batch_reserve(batch_t *b, size_t cost) {
  if (b->req_len + cost > b->req_cap) {
    size_t cap = b->req_cap * 2;
    if (cap < b->req_len + cost) cap = b->req_len + cost;
    uint8_t *r = trb_realloc(b->req, cap);
    if (!r) return false;
    b->req = r;
    b->req_cap = cap;
  }
  if (b->n == b->ents_cap) {
    size_t cap = b->ents_cap * 2;
    ent_t *e = trb_realloc(b->ents, cap * sizeof(*e));
    if (!e) return false;
    b->ents = e;
    b->ents_cap = cap;
  }
  return true;
}

/* Checks of one message that need no lock; `*len`/`*cost` receive its
 * encoded size and its cost in a request. */
static grpc_status_code check_msg(const trb_ps_publisher_t *p,
                                  const trb_ps_message_t *msg, size_t *len,
                                  size_t *cost, trb_status_t *st) {
  grpc_status_code rc = validate(msg, st);
  if (rc != GRPC_STATUS_OK) return rc;
  *len = trb_ps_msg_encoded_len(msg->data, msg->data_len, msg->attrs,
                                msg->n_attrs, msg->ordering_key);
  *cost = trb_ps_request_msg_cost(*len);
  if (p->topic_cost + *cost > TRB_PS_MAX_REQUEST_BYTES) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "message of %zu bytes does not fit a request of "
                          "%d bytes",
                          *len, TRB_PS_MAX_REQUEST_BYTES);
  }
  if ((int64_t)*len > p->cfg.flow_max_bytes) {
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "message of %zu bytes exceeds the flow-control "
                          "limit of %lld bytes",
                          *len, (long long)p->cfg.flow_max_bytes);
  }
  return GRPC_STATUS_OK;
}

/* Queue one checked message (`len`, `cost` from check_msg). With mu held;
 * may release it while waiting for flow-control room. `*deadline` is the
 * BLOCK deadline, computed on first need (INT64_MIN = not yet). */
static grpc_status_code enqueue_locked(trb_ps_publisher_t *p,
                                       const trb_ps_message_t *msg,
                                       size_t len, size_t cost,
                                       trb_ps_publish_cb cb, void *user,
                                       int64_t *deadline, trb_status_t *st) {
  grpc_status_code rc = GRPC_STATUS_OK;
  for (;;) {
    if (p->closing) {
      rc = trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "publisher is shutting down");
      break;
    }
    keyq_t *k = find_key(p, msg->ordering_key, false);
    if (k && k->paused) {
      rc = trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "ordering key \"%.64s\" is paused after a failed "
                          "publish (%s); call trb_ps_publisher_resume",
                          k->key, trb_status_code_name(k->pause_code));
      break;
    }
    if (p->out_msgs + 1 <= p->cfg.flow_max_messages &&
        p->out_bytes + (int64_t)len <= p->cfg.flow_max_bytes) {
      break;
    }
    if (p->cfg.flow == TRB_PS_FLOW_REJECT) {
      rc = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "flow control: %lld messages / %lld bytes "
                          "outstanding (limits %lld / %lld)",
                          (long long)p->out_msgs, (long long)p->out_bytes,
                          (long long)p->cfg.flow_max_messages,
                          (long long)p->cfg.flow_max_bytes);
      break;
    }
    if (p->starting || p->wake_timer) {
      /* Start what this thread prepared before sleeping. */
      unlock_and_start(p);
      pthread_mutex_lock(&p->mu);
      continue;
    }
    if (*deadline == INT64_MIN) {
      *deadline = p->cfg.block_timeout_ms < 0
                      ? -1
                      : trb_clock_mono_ms() + p->cfg.block_timeout_ms;
    }
    if (!wait_until(&p->room_cv, &p->mu, *deadline)) {
      rc = trb_status_set(st, GRPC_STATUS_DEADLINE_EXCEEDED,
                          "flow control: no room within %lld ms",
                          (long long)p->cfg.block_timeout_ms);
      break;
    }
  }
  int64_t now = trb_clock_mono_ms();
  keyq_t *k = NULL;
  batch_t *b = NULL;
  if (rc == GRPC_STATUS_OK) {
    k = find_key(p, msg->ordering_key, true);
    b = k ? k->tail : NULL;
    if (b && !b->full &&
        (b->n + 1 > (size_t)p->cfg.max_messages ||
         (int64_t)(b->req_len + cost) > p->cfg.max_bytes)) {
      b->full = true;
    }
    if (k && (!b || b->full)) b = new_batch(p, k, cost, now);
    if (!b || !batch_reserve(b, cost)) {
      rc = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
      if (k) gc_key(p, k);
    }
  }
  if (rc != GRPC_STATUS_OK) return rc;
  uint8_t *w = b->req + b->req_len;
  w += trb_ps_request_put_msg_header(w, len);
  w += trb_ps_msg_encode(w, msg->data, msg->data_len, msg->attrs,
                         msg->n_attrs, msg->ordering_key);
  b->req_len = (size_t)(w - b->req);
  b->ents[b->n++] = (ent_t){cb, user, len};
  b->flow_bytes += len;
  if (b->n >= (size_t)p->cfg.max_messages ||
      (int64_t)b->req_len >= p->cfg.max_bytes) {
    b->full = true;
  }
  p->out_msgs++;
  p->out_bytes += (int64_t)len;
  p->stats.accepted++;
  if (can_send(p, k)) {
    if (due(p, k, now)) {
      pump_key(p, k, now);
    } else if (k->head == b && b->n == 1 &&
               need_timer(p, b->created_ms + p->cfg.max_delay_ms)) {
      /* The queue went from empty to non-empty and the timer thread
       * sleeps past its delay: arm it (after the lock is released). */
      p->wake_timer = true;
    }
  }
  return GRPC_STATUS_OK;
}

grpc_status_code trb_ps_publish(trb_ps_publisher_t *p,
                                const trb_ps_message_t *msg,
                                trb_ps_publish_cb cb, void *user,
                                trb_status_t *st) {
  size_t accepted = 0;
  return trb_ps_publish_many(p, msg, 1, cb, &user, &accepted, st);
}

grpc_status_code trb_ps_publish_many(trb_ps_publisher_t *p,
                                     const trb_ps_message_t *msgs, size_t n,
                                     trb_ps_publish_cb cb,
                                     void *const *users, size_t *accepted,
                                     trb_status_t *st) {
  size_t dummy;
  if (!accepted) accepted = &dummy;
  *accepted = 0;
  if (!p || (!msgs && n > 0) || (!users && n > 0)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "NULL argument");
  }
  if (n == 0) return GRPC_STATUS_OK;
  size_t len, cost;
  grpc_status_code rc = check_msg(p, &msgs[0], &len, &cost, st);
  if (rc != GRPC_STATUS_OK) return rc;
  int64_t deadline = INT64_MIN;
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0;;) {
    rc = enqueue_locked(p, &msgs[i], len, cost, cb, users[i], &deadline, st);
    if (rc != GRPC_STATUS_OK) break;
    *accepted = ++i;
    if (i == n) break;
    /* The checks of the next message hold the lock a little longer than
     * necessary but save a lock round trip per message. */
    rc = check_msg(p, &msgs[i], &len, &cost, st);
    if (rc != GRPC_STATUS_OK) break;
  }
  unlock_and_start(p);
  return rc;
}

void trb_ps_publisher_resume(trb_ps_publisher_t *p, const char *ordering_key) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  keyq_t *k = find_key(p, ordering_key, false);
  if (k && k->paused) {
    k->paused = false;
    gc_key(p, k);
    pthread_cond_signal(&p->timer_cv);
  }
  pthread_mutex_unlock(&p->mu);
}

grpc_status_code trb_ps_publisher_flush(trb_ps_publisher_t *p,
                                        int64_t timeout_ms, trb_status_t *st) {
  int64_t deadline = timeout_ms < 0 ? -1 : trb_clock_mono_ms() + timeout_ms;
  pthread_mutex_lock(&p->mu);
  p->flushers++;
  pump(p);
  pthread_cond_signal(&p->timer_cv);
  grpc_status_code rc = GRPC_STATUS_OK;
  while (p->out_msgs > 0) {
    if (p->starting) {
      unlock_and_start(p);
      pthread_mutex_lock(&p->mu);
      continue;
    }
    if (!wait_until(&p->room_cv, &p->mu, deadline)) {
      rc = trb_status_set(st, GRPC_STATUS_DEADLINE_EXCEEDED,
                          "flush: %lld messages still outstanding",
                          (long long)p->out_msgs);
      break;
    }
  }
  p->flushers--;
  unlock_and_start(p);
  return rc;
}

void trb_ps_publisher_stats(trb_ps_publisher_t *p,
                            trb_ps_publisher_stats_t *out) {
  pthread_mutex_lock(&p->mu);
  *out = p->stats;
  pthread_mutex_unlock(&p->mu);
  out->succeeded = atomic_load(&p->done_ok);
  out->failed = atomic_load(&p->done_failed);
}


grpc_status_code trb_ps_publisher_shutdown(trb_ps_publisher_t *p,
                                           int64_t timeout_ms,
                                           trb_ps_publisher_stats_t *stats,
                                           trb_status_t *st) {
  pthread_mutex_lock(&p->mu);
  p->closing = true;
  pthread_mutex_unlock(&p->mu);
  trb_status_t fst;
  bool drained =
      trb_ps_publisher_flush(p, timeout_ms, &fst) == GRPC_STATUS_OK;

  if (!drained) {
    /* Give up on what has not been sent (or waits for a retry); requests
     * in flight finish without further retries. */
    pthread_mutex_lock(&p->mu);
    p->aborting = true;
    batch_t *dropped = NULL, **tail = &dropped;
    keyq_t *k = &p->unordered;
    while (k) {
      if (k->head) {
        *tail = k->head;
        tail = &k->tail->next;
        k->head = k->tail = NULL;
      }
      k = (k == &p->unordered) ? p->keys : k->next;
    }
    batch_t *rb = p->retries;
    p->retries = NULL;
    for (batch_t *b = rb; b; b = b->next) {
      b->kq->in_flight--;
      p->batches--;
      if (b->kq == &p->unordered) p->unordered_in_flight--;
    }
    *tail = rb;
    pthread_mutex_unlock(&p->mu);
    fail_batches(p, dropped, GRPC_STATUS_DEADLINE_EXCEEDED,
                 "publisher shut down before the message was sent");
    batch_list_free(dropped);
  }
  pthread_mutex_lock(&p->mu);
  while (p->out_msgs > 0 || p->rpcs_in_flight > 0) {
    wait_until(&p->room_cv, &p->mu, -1);
  }
  bool join = p->timer_started && !p->stop;
  p->stop = true;
  pthread_cond_signal(&p->timer_cv);
  trb_ps_publisher_stats_t s = p->stats;
  pthread_mutex_unlock(&p->mu);
  s.succeeded = atomic_load(&p->done_ok);
  s.failed = atomic_load(&p->done_failed);
  if (join) pthread_join(p->timer, NULL);
  if (stats) *stats = s;
  if (s.failed > 0) {
    return trb_status_set(st, s.first_error.code,
                          "%llu of %llu messages failed; first: %s",
                          (unsigned long long)s.failed,
                          (unsigned long long)s.accepted, s.first_error.msg);
  }
  return GRPC_STATUS_OK;
}

void trb_ps_publisher_destroy(trb_ps_publisher_t *p) {
  if (!p) return;
  trb_status_t st;
  trb_ps_publisher_shutdown(p, -1, NULL, &st);
  while (p->keys) {
    keyq_t *k = p->keys;
    p->keys = k->next;
    batch_list_free(k->head);
    trb_free(k->key);
    trb_free(k);
  }
  batch_list_free(p->unordered.head);
  trb_free(p->unordered.key);
  pthread_cond_destroy(&p->timer_cv);
  pthread_cond_destroy(&p->room_cv);
  pthread_mutex_destroy(&p->mu);
  trb_free(p->topic);
  trb_free(p->params);
  trb_free(p);
}
