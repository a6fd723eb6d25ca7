/* subscriber.c — see subscriber.h.
 *
 * Locking: one mutex `mu` guards everything mutable. RPCs are started and
 * stream writes queued with it held (the rpc layer never calls back
 * synchronously); the message callback runs with it released. `cv` wakes
 * the timer thread and stop/destroy waiters alike (broadcast); the hot path
 * (receive, settle, queue an ack id) wakes the timer only when something is
 * due before the time it sleeps until (wake_timer_at), i.e. about once per
 * ack batch, and broadcasts for waiters only while stopping.
 *
 * A message is a handle from receipt on: queued (received, not delivered)
 * → held (delivered, not settled) → freed by trb_ps_ack/nack (or, when
 * settled inside its own callback, once the callback returns). A handle is
 * one allocation holding the message's copy; responses are decoded into
 * views by pull_codec.h (no nanopb structures per message). Stop turns
 * held handles into abandoned ones (nacked by the subscriber; the later
 * trb_ps_ack/nack only frees them). Deliveries happen on the loop thread:
 * from on_message and from every ack RPC completion (an ack frees room and
 * always leads to such a completion), so a queued message never waits for
 * a thread it cannot have.
 */
#include "src/pubsub/subscriber.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "google/pubsub/v1/pubsub.pb.h"
#include "google/rpc/error_details.pb.h"
#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/pubsub/ack_codec.h"
#include "src/pubsub/pull_codec.h"
#include "src/rpc/details.h"
#include "src/rpc/pb.h"
#include "src/rpc/retry.h"

static const char kStreamingPull[] =
    "/google.pubsub.v1.Subscriber/StreamingPull";
static const char kAcknowledge[] = "/google.pubsub.v1.Subscriber/Acknowledge";
static const char kModifyAckDeadline[] =
    "/google.pubsub.v1.Subscriber/ModifyAckDeadline";

#define MAX_DEADLINE_S 600
#define NEVER INT64_MAX

typedef enum { H_QUEUED, H_HELD, H_ABANDONED } hstate_t;

/* One allocation per message: this struct, then the attribute array, the
 * message id, ordering key and attribute strings (NUL-terminated) and the
 * data, all pointed at by `msg`, and the ack id (copied into an ack
 * request when the message is settled). Allocations of up to
 * POOL_MAX_BYTES are rounded up (round_alloc) and recycled through the
 * subscriber's free list (handle_alloc / handle_free). */
struct trb_ps_ack_handle_s {
  trb_ps_ack_handle_t *prev, *next; /* queue, held or abandoned list; `next`
                                       links the free list */
  size_t alloc; /* bytes allocated; 0: exact size, never pooled */
  trb_ps_subscriber_t *s;
  hstate_t state;
  bool in_cb;   /* its message callback is running */
  bool settled; /* settled during the callback: freed after it */
  char *ack_id;       /* inside this allocation */
  size_t ack_id_len;
  size_t bytes;
  int64_t received_ms;
  int64_t extend_at_ms; /* next lease extension; NEVER after max */
  trb_ps_received_t msg;
};

typedef struct hlist_s {
  trb_ps_ack_handle_t *head, *tail;
  int64_t n, bytes;
} hlist_t;

/* One stream slot. */
typedef struct slot_s {
  trb_ps_subscriber_t *s;
  trb_rpc_stream_t *rs; /* open stream or NULL */
  bool dead;            /* ended for good */
  bool reading_paused;
  int deadline_s;       /* stream_ack_deadline_seconds last sent */
  int64_t reconnect_at_ms; /* NEVER when nothing to do */
  int64_t heartbeat_at_ms;
  int64_t ping_at_ms;      /* oldest unanswered ping; NEVER when none */
  bool keepalive_cancel;   /* cancelled by the keepalive check */
  trb_ps_pull_response_t resp; /* decoded response, reused */
  trb_backoff_t bo;
} slot_t;

/* Who wants the result of one ack id (trb_ps_*_with_result). */
typedef struct waiter_s {
  trb_ps_ack_result_cb cb; /* NULL: nobody */
  void *user;
} waiter_t;

/* A result to report once mu is released. */
typedef struct done_s {
  waiter_t w;
  trb_ps_ack_status_t result;
  grpc_status_code code;
  const char *detail; /* ErrorInfo value or NULL */
} done_t;

/* A pending or in-flight Acknowledge / ModifyAckDeadline request, kept
 * encoded (ack_codec.h): `req` has room for the header (`hdr` bytes,
 * written when sent) followed by the ack_ids entries appended as ids are
 * queued, so sending it is one header write, no encoding pass. */
typedef struct op_s {
  struct op_s *next;
  trb_ps_subscriber_t *s;
  bool ack;   /* Acknowledge; else ModifyAckDeadline */
  int secs;   /* modack seconds */
  uint8_t *req;       /* the request; NULL until the first id */
  size_t hdr;         /* header bytes at the front of req */
  size_t len, req_cap; /* bytes used (header included) / allocated */
  trb_ps_ackreq_id_t *ids; /* per id, in order */
  waiter_t *w; /* parallel to ids; NULL until an id has a waiter */
  size_t n, cap;
  int64_t first_ms, retry_at_ms;
  trb_backoff_t bo;
} op_t;

struct trb_ps_subscriber_s {
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
  char *sub;
  size_t sub_len;
  char *params;
  char client_id[33];
  trb_ps_subscriber_config_t cfg;
  trb_ps_message_cb cb;
  void *user;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t timer;
  bool timer_started, timer_stop;

  slot_t *slots;
  int open_streams;
  hlist_t queue, held, abandoned;
  /* Released handles kept for reuse (at most max_outstanding_messages):
   * the receive path does not call malloc/free per message. */
  trb_ps_ack_handle_t *pool;
  int64_t n_pool;

  /* Batches being filled: acks, and modacks by seconds (0 = nack). */
  op_t *fill; /* list of open batches */
  int64_t fill_since_ms;
  op_t *retries;
  int ops_in_flight;

  int64_t timer_wake_ms;  /* when the sleeping timer wakes; 0 while awake */
  int64_t next_extend_ms; /* no lease extension due before this */

  uint32_t hist[MAX_DEADLINE_S + 1];
  uint64_t n_samples;
  int deadline_s;

  bool started, stopping, stopped;
  bool eod; /* the server said exactly-once delivery is enabled */
  uint64_t rng;
  trb_ps_subscriber_stats_t stats;
};

/* ------------------------------------------------------------------------ */

static bool wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                       int64_t deadline_ms) {
  if (deadline_ms < 0) {
    pthread_cond_wait(cv, mu);
    return true;
  }
  if (trb_clock_mono_ms() >= deadline_ms) return false;
  struct timespec ts;
  ts.tv_sec = (time_t)(deadline_ms / 1000);
  ts.tv_nsec = (long)((deadline_ms % 1000) * 1000000);
  pthread_cond_timedwait(cv, mu, &ts);
  return true;
}

static void hl_push(hlist_t *l, trb_ps_ack_handle_t *h) {
  h->next = NULL;
  h->prev = l->tail;
  if (l->tail) {
    l->tail->next = h;
  } else {
    l->head = h;
  }
  l->tail = h;
  l->n++;
  l->bytes += (int64_t)h->bytes;
}

static void hl_remove(hlist_t *l, trb_ps_ack_handle_t *h) {
  if (h->prev) {
    h->prev->next = h->next;
  } else {
    l->head = h->next;
  }
  if (h->next) {
    h->next->prev = h->prev;
  } else {
    l->tail = h->prev;
  }
  h->prev = h->next = NULL;
  l->n--;
  l->bytes -= (int64_t)h->bytes;
}

/* ---------------------------------------------------------- handle pool */

/* Handles above this size are allocated exactly and never pooled. */
#define POOL_MAX_BYTES (64 * 1024)
#define POOL_MIN_BYTES 1024
/* The words of a free handle left unpoisoned: prev, next (the link),
 * alloc. */
#define POOL_KEEP (offsetof(trb_ps_ack_handle_t, alloc) + sizeof(size_t))

/* Bytes to allocate for a handle of `size` bytes (0: exact, unpooled):
 * powers of two from POOL_MIN_BYTES, so that handles of messages of
 * similar sizes fit each other's blocks. */
static size_t round_alloc(size_t size) {
  if (size > POOL_MAX_BYTES) return 0;
  size_t a = POOL_MIN_BYTES;
  while (a < size) a *= 2;
  return a;
}

/* A handle block of at least `size` bytes (>= sizeof(handle)), the
 * handle's fields uninitialised except `alloc`. The bytes past `size` stay
 * poisoned under ASan. With mu held. */
static trb_ps_ack_handle_t *handle_alloc(trb_ps_subscriber_t *s, size_t size) {
  trb_ps_ack_handle_t *h = s->pool;
  if (h) {
    s->pool = h->next;
    s->n_pool--;
    if (h->alloc >= size) {
      TRB_UNPOISON(h, size);
      return h;
    }
    TRB_UNPOISON(h, h->alloc);
    trb_free(h); /* too small for this message: replaced */
  }
  size_t alloc = round_alloc(size);
  h = trb_malloc(alloc ? alloc : size);
  if (!h) return NULL;
  h->alloc = alloc;
  if (alloc) TRB_POISON((char *)h + size, alloc - size);
  return h;
}

/* Release a handle: back to the pool while it holds fewer than
 * max_outstanding_messages (poisoned past its link under ASan), else
 * freed. With mu held, or once no other thread uses `s` (destroy). */
static void handle_free(trb_ps_subscriber_t *s, trb_ps_ack_handle_t *h) {
  if (h->alloc && s->n_pool < s->cfg.max_outstanding_messages) {
    h->next = s->pool;
    s->pool = h;
    s->n_pool++;
    TRB_POISON((char *)h + POOL_KEEP, h->alloc - POOL_KEEP);
    return;
  }
  if (h->alloc) TRB_UNPOISON(h, h->alloc);
  trb_free(h);
}

static void pool_drain(trb_ps_subscriber_t *s) {
  while (s->pool) {
    trb_ps_ack_handle_t *h = s->pool;
    s->pool = h->next;
    TRB_UNPOISON(h, h->alloc);
    trb_free(h);
  }
  s->n_pool = 0;
}

static void set_first_error(trb_ps_subscriber_t *s, grpc_status_code code,
                            const char *what, const char *msg) {
  if (s->stats.first_error.code != GRPC_STATUS_OK) return;
  trb_status_set(&s->stats.first_error, code, "%s: %s", what, msg);
}

static int64_t sec_ms(const trb_ps_subscriber_t *s, int secs) {
  return (int64_t)secs * s->cfg.ms_per_second;
}

/* Something is due at `t`: wake the timer when it sleeps past it. (Not on
 * every ack: the timer is woken once per ack batch.) With mu held. */
static void wake_timer_at(trb_ps_subscriber_t *s, int64_t t) {
  if (t < s->timer_wake_ms) {
    s->timer_wake_ms = t;
    pthread_cond_broadcast(&s->cv);
  }
}

/* ---------------------------------------------------------- ack deadline */

static void record_latency(trb_ps_subscriber_t *s, int64_t ms) {
  int64_t secs = (ms + s->cfg.ms_per_second - 1) / s->cfg.ms_per_second;
  if (secs > MAX_DEADLINE_S) secs = MAX_DEADLINE_S;
  if (secs < 0) secs = 0;
  s->hist[secs]++;
  s->n_samples++;
  /* 99th percentile, bounded to min..600 (fact 56). */
  uint64_t want = s->n_samples - s->n_samples / 100;
  uint64_t seen = 0;
  int p99 = MAX_DEADLINE_S;
  for (int i = 0; i <= MAX_DEADLINE_S; i++) {
    seen += s->hist[i];
    if (seen >= want) {
      p99 = i;
      break;
    }
  }
  if (p99 < s->cfg.min_ack_deadline_s) p99 = s->cfg.min_ack_deadline_s;
  if (s->eod && p99 < 60) p99 = 60;
  if (p99 != s->deadline_s) {
    s->deadline_s = p99;
    wake_timer_at(s, 0); /* tell the streams */
  }
}

/* ------------------------------------------------------------ ack batches */

static op_t *op_new(trb_ps_subscriber_t *s, bool ack, int secs) {
  op_t *o = trb_calloc(1, sizeof(*o));
  if (!o) return NULL;
  o->s = s;
  o->ack = ack;
  o->secs = secs;
  o->hdr = trb_ps_ackreq_header_len(s->sub_len, ack, secs);
  o->len = o->hdr;
  s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
  trb_backoff_init(&o->bo, s->cfg.backoff_initial_ms, s->cfg.backoff_max_ms,
                   s->cfg.backoff_multiplier, s->rng | 1);
  return o;
}

static void op_free(op_t *o) {
  if (!o) return;
  trb_free(o->req);
  trb_free(o->ids);
  trb_free(o->w);
  trb_free(o);
}

/* Results to report after mu is released (a growable array). */
typedef struct dones_s {
  done_t *v;
  size_t n, cap;
} dones_t;

static void dones_add(dones_t *d, waiter_t w, trb_ps_ack_status_t result,
                      grpc_status_code code, const char *detail) {
  if (!w.cb) return;
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 16;
    done_t *v = trb_realloc(d->v, cap * sizeof(*v));
    if (!v) return; /* out of memory: the result is lost (documented) */
    d->v = v;
    d->cap = cap;
  }
  done_t *e = &d->v[d->n++];
  e->w = w;
  e->result = result;
  e->code = code;
  e->detail = detail;
}

/* Call the collected results, without mu held. `what` / `msg` complete
 * the status of failures. Frees the array. */
static void dones_run(dones_t *d, const char *what, const char *msg) {
  static const trb_status_t ok_status; /* OK, "" (shared, not rebuilt per id) */
  for (size_t i = 0; i < d->n; i++) {
    done_t *e = &d->v[i];
    if (e->result == TRB_PS_ACK_SUCCESS) {
      e->w.cb(e->w.user, e->result, &ok_status);
      continue;
    }
    trb_status_t st = {0};
    if (e->result == TRB_PS_ACK_STOPPED) {
      trb_status_set(&st, GRPC_STATUS_CANCELLED, "subscriber stopped");
    } else if (e->detail) {
      trb_status_set(&st, e->code, "%s: %s (%s)", what, e->detail,
                     msg ? msg : "");
    } else {
      trb_status_set(&st, e->code, "%s: %s", what, msg ? msg : "");
    }
    e->w.cb(e->w.user, e->result, &st);
  }
  trb_free(d->v);
  d->v = NULL;
  d->n = d->cap = 0;
}

static trb_ps_ack_status_t status_of_code(grpc_status_code c) {
  if (c == GRPC_STATUS_OK) return TRB_PS_ACK_SUCCESS;
  if (c == GRPC_STATUS_PERMISSION_DENIED) return TRB_PS_ACK_PERMISSION_DENIED;
  if (c == GRPC_STATUS_FAILED_PRECONDITION) {
    return TRB_PS_ACK_FAILED_PRECONDITION;
  }
  return TRB_PS_ACK_OTHER;
}

/* Every waiter of `o` gets `result`; then `o` is freed. */
static void op_finish(op_t *o, dones_t *d, trb_ps_ack_status_t result,
                      grpc_status_code code) {
  if (o->w) {
    for (size_t i = 0; i < o->n; i++) dones_add(d, o->w[i], result, code, NULL);
  }
  op_free(o);
}

static void send_op(trb_ps_subscriber_t *s, op_t *o, int64_t now);

/* Queue ack id `ack_id` (`len` bytes, copied) for an ack (ack=true) or a
 * modack of `secs`; `w` wants the result (w.cb NULL: nobody). Returns
 * false when out of memory (the id is dropped; the caller reports `w`).
 * With mu held. */
static bool enqueue_idw(trb_ps_subscriber_t *s, bool ack, int secs,
                        const char *ack_id, size_t len, waiter_t w) {
  if (!ack_id) return false;
  op_t *o = s->fill;
  for (; o; o = o->next) {
    if (o->ack == ack && (ack || o->secs == secs)) break;
  }
  if (!o) {
    o = op_new(s, ack, secs);
    if (!o) return false;
    o->next = s->fill;
    s->fill = o;
  }
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 256;
    if (cap > TRB_PS_MAX_ACK_IDS_PER_REQUEST) {
      cap = TRB_PS_MAX_ACK_IDS_PER_REQUEST;
    }
    trb_ps_ackreq_id_t *ids = trb_realloc(o->ids, cap * sizeof(*ids));
    if (!ids) return false;
    o->ids = ids;
    if (o->w) {
      waiter_t *nw = trb_realloc(o->w, cap * sizeof(*nw));
      if (!nw) return false;
      o->w = nw;
    }
    o->cap = cap;
  }
  if (w.cb && !o->w) {
    o->w = trb_calloc(o->cap, sizeof(*o->w));
    if (!o->w) return false;
  }
  size_t cost = trb_ps_ackreq_id_len(len);
  if (len > UINT32_MAX / 2) return false;
  if (o->len + cost > o->req_cap) {
    size_t cap = o->req_cap ? o->req_cap * 2 : o->hdr + 16384;
    if (cap < o->len + cost) cap = o->len + cost;
    uint8_t *req = trb_realloc(o->req, cap);
    if (!req) return false;
    o->req = req;
    o->req_cap = cap;
  }
  o->len += trb_ps_ackreq_put_id(o->req + o->len, ack, ack_id, len);
  if (o->w) o->w[o->n] = w;
  o->ids[o->n].off = (uint32_t)(o->len - len);
  o->ids[o->n].len = (uint32_t)len;
  o->n++;
  if (s->fill_since_ms == NEVER) {
    s->fill_since_ms = trb_clock_mono_ms();
    wake_timer_at(s, s->fill_since_ms + s->cfg.ack_flush_ms);
  }
  if (o->n >= TRB_PS_MAX_ACK_IDS_PER_REQUEST) {
    /* Full: send now. */
    op_t **pp = &s->fill;
    while (*pp != o) pp = &(*pp)->next;
    *pp = o->next;
    if (!s->fill) s->fill_since_ms = NEVER;
    send_op(s, o, trb_clock_mono_ms());
  }
  if (s->stopping) pthread_cond_broadcast(&s->cv);
  return true;
}

static void enqueue_id(trb_ps_subscriber_t *s, bool ack, int secs,
                       const char *ack_id, size_t len) {
  waiter_t none = {NULL, NULL};
  (void)enqueue_idw(s, ack, secs, ack_id, len, none);
}

static void flush_fill(trb_ps_subscriber_t *s, int64_t now) {
  op_t *o = s->fill;
  s->fill = NULL;
  s->fill_since_ms = NEVER;
  while (o) {
    op_t *next = o->next;
    send_op(s, o, now);
    o = next;
  }
}

static void deliver_pending(trb_ps_subscriber_t *s);
static void update_reading(trb_ps_subscriber_t *s);

/* Per-ack-id outcomes of a failed request: google.rpc.ErrorInfo metadata
 * {ack_id: PERMANENT_FAILURE_* | TRANSIENT_FAILURE_*} in the status
 * details (fact 60). Returns the decoded ErrorInfo (release with
 * trb_pb_release) or false when there is none. */
static bool error_info(const trb_rpc_result_t *r, google_rpc_ErrorInfo *info) {
  if (!r->details || r->details_len == 0) return false;
  trb_rpc_status_details_t d = {0};
  trb_status_t st;
  bool ok = false;
  if (trb_rpc_status_details_decode(r->details, r->details_len, &d, &st) ==
      GRPC_STATUS_OK) {
    const trb_rpc_any_t *a =
        trb_rpc_status_details_find(&d, "google.rpc.ErrorInfo");
    if (a) {
      ok = trb_pb_decode(google_rpc_ErrorInfo_fields, a->value, a->value_len,
                         info, &st) == GRPC_STATUS_OK;
      if (!ok) trb_pb_release(google_rpc_ErrorInfo_fields, info);
    }
  }
  trb_rpc_status_details_deinit(&d);
  return ok;
}

/* Keep in `o` only the ids to retry: TRANSIENT_* ones, and ids the
 * ErrorInfo does not name when the code is retryable. PERMANENT_* ids are
 * failures; unnamed ids of a non-retryable code took effect (the service
 * names every invalid id). `info` must outlive the results in `d` (their
 * detail points into it). With mu held. */
static void keep_retryable(trb_ps_subscriber_t *s, op_t *o,
                           const google_rpc_ErrorInfo *info,
                           grpc_status_code code, bool code_retryable,
                           dones_t *d) {
  size_t keep = 0;
  size_t at = o->hdr; /* kept entries are moved down to here */
  waiter_t none = {NULL, NULL};
  for (size_t i = 0; i < o->n; i++) {
    const char *v = NULL;
    const char *id = (const char *)o->req + o->ids[i].off;
    size_t id_len = o->ids[i].len;
    for (pb_size_t k = 0; k < info->metadata_count; k++) {
      const char *key = info->metadata[k].key;
      if (key && strlen(key) == id_len && memcmp(key, id, id_len) == 0) {
        v = info->metadata[k].value ? info->metadata[k].value : "";
        break;
      }
    }
    waiter_t w = o->w ? o->w[i] : none;
    bool retry = v ? strncmp(v, "TRANSIENT_", 10) == 0 : code_retryable;
    if (retry) {
      /* Keep: its ack_ids entry moves down behind the last kept one. */
      trb_ps_ackreq_id_t kept = o->ids[i];
      at = trb_ps_ackreq_move_id(o->req, at, &kept);
      if (o->w) o->w[keep] = w;
      o->ids[keep++] = kept;
      continue;
    }
    if (v) {
      trb_ps_ack_status_t res = TRB_PS_ACK_OTHER;
      if (strncmp(v, "PERMANENT_", 10) == 0) s->stats.ack_invalid++;
      if (strcmp(v, "PERMANENT_FAILURE_INVALID_ACK_ID") == 0) {
        res = TRB_PS_ACK_INVALID_ACK_ID;
      }
      s->stats.ack_failures++;
      dones_add(d, w, res, code, v);
    } else {
      dones_add(d, w, TRB_PS_ACK_SUCCESS, GRPC_STATUS_OK, NULL);
    }
  }
  o->n = keep;
  o->len = at;
}

static void on_op_done(void *user, const trb_rpc_result_t *r) {
  op_t *o = user;
  trb_ps_subscriber_t *s = o->s;
  const char *what = o->ack ? "Acknowledge" : "ModifyAckDeadline";
  dones_t d = {NULL, 0, 0};
  if (o->w) { /* `o` is not touched by others while in flight */
    d.v = trb_malloc(o->n * sizeof(*d.v));
    d.cap = d.v ? o->n : 0;
  }
  google_rpc_ErrorInfo info = google_rpc_ErrorInfo_init_zero;
  bool have_info = false;
  pthread_mutex_lock(&s->mu);
  int64_t now = trb_clock_mono_ms();
  if (r->code == GRPC_STATUS_OK) {
    op_finish(o, &d, TRB_PS_ACK_SUCCESS, GRPC_STATUS_OK);
  } else {
    bool retryable = trb_rpc_is_retryable(TRB_RPC_OP_ACK, r->code, r->message);
    if (error_info(r, &info)) {
      have_info = true;
      keep_retryable(s, o, &info, r->code, retryable, &d);
      retryable = o->n > 0;
    }
    if (retryable && now - o->first_ms < s->cfg.ack_retry_deadline_ms) {
      o->retry_at_ms = now + trb_backoff_next_ms(&o->bo);
      o->next = s->retries;
      s->retries = o;
    } else {
      s->stats.ack_failures += o->n;
      if (o->n > 0) set_first_error(s, r->code, what, r->message);
      op_finish(o, &d, status_of_code(r->code), r->code);
    }
  }
  pthread_mutex_unlock(&s->mu);
  dones_run(&d, what, r->message);
  if (have_info) trb_pb_release(google_rpc_ErrorInfo_fields, &info);
  deliver_pending(s);
  /* Last: stop/destroy wait for this count, then may free `s`. */
  pthread_mutex_lock(&s->mu);
  s->ops_in_flight--;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* Start the RPC of `o`. With mu held. */
static void send_op(trb_ps_subscriber_t *s, op_t *o, int64_t now) {
  uint8_t *buf = NULL;
  size_t len = 0;
  trb_status_t st;
  grpc_status_code rc;
  if (o->n > s->stats.peak_ids_per_request) {
    s->stats.peak_ids_per_request = o->n;
  }
  if (o->first_ms == 0) {
    o->first_ms = now;
  } else {
    s->stats.ack_retries++;
  }
  if (o->ack) {
    s->stats.ack_rpcs++;
  } else {
    s->stats.modack_rpcs++;
  }
  rc = GRPC_STATUS_OK;
  if (!o->req) { /* no id (cannot happen for a queued op): header only */
    o->req = trb_malloc(o->hdr);
    o->req_cap = o->hdr;
    if (!o->req) rc = GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  if (rc == GRPC_STATUS_OK) {
    /* The ack_ids entries are in place: the header completes the request. */
    trb_ps_ackreq_put_header(o->req, s->sub, s->sub_len, o->ack, o->secs);
    buf = o->req;
    len = o->len;
    int64_t timeout = s->cfg.rpc_timeout_ms;
    trb_rpc_md_t md = {"x-goog-request-params", s->params, 0};
    trb_rpc_call_opts_t opts = {timeout, &md, 1};
    s->ops_in_flight++;
    rc = trb_rpc_unary_start(s->loop, s->ch,
                             o->ack ? kAcknowledge : kModifyAckDeadline, buf,
                             len, &opts, on_op_done, o, &st);
    if (rc != GRPC_STATUS_OK) s->ops_in_flight--;
  }
  if (rc != GRPC_STATUS_OK) {
    /* Could not start (memory): retry after a backoff. */
    o->retry_at_ms = now + trb_backoff_next_ms(&o->bo);
    o->next = s->retries;
    s->retries = o;
    wake_timer_at(s, o->retry_at_ms);
  }
}

/* ---------------------------------------------------------------- streams */

static void on_stream_message(void *user, trb_rpc_stream_t *rs,
                              const uint8_t *data, size_t len);
static void on_stream_close(void *user, trb_rpc_stream_t *rs,
                            const trb_rpc_result_t *r);

static bool over_limit(const trb_ps_subscriber_t *s) {
  return s->held.n + s->queue.n >= s->cfg.max_outstanding_messages ||
         s->held.bytes + s->queue.bytes >= s->cfg.max_outstanding_bytes;
}

/* Pause or resume reading on every open stream. With mu held. */
static void update_reading(trb_ps_subscriber_t *s) {
  bool pause = over_limit(s) && !s->stopping;
  for (int i = 0; i < s->cfg.streams; i++) {
    slot_t *sl = &s->slots[i];
    if (!sl->rs || sl->reading_paused == pause) continue;
    sl->reading_paused = pause;
    sl->ping_at_ms = NEVER; /* not checked while paused; fresh on resume */
    if (pause) {
      trb_rpc_stream_read_pause(sl->rs);
    } else {
      trb_rpc_stream_read_resume(sl->rs);
    }
  }
}

static void stream_write(slot_t *sl,
                         const google_pubsub_v1_StreamingPullRequest *r) {
  uint8_t *buf = NULL;
  size_t len = 0;
  trb_status_t st;
  if (trb_pb_encode(google_pubsub_v1_StreamingPullRequest_fields, r, &buf,
                    &len, &st) == GRPC_STATUS_OK) {
    trb_rpc_stream_write(sl->rs, buf, len, NULL);
  }
  trb_free(buf);
}

/* Open the stream of `sl`. With mu held. */
static void open_stream(trb_ps_subscriber_t *s, slot_t *sl, int64_t now) {
  trb_rpc_md_t md = {"x-goog-request-params", s->params, 0};
  trb_rpc_call_opts_t opts = {0, &md, 1};
  trb_rpc_stream_cbs_t cbs = {on_stream_message, NULL, on_stream_close};
  trb_status_t st;
  sl->reconnect_at_ms = NEVER;
  if (trb_rpc_stream_start(s->loop, s->ch, kStreamingPull, &opts, &cbs, sl,
                           &sl->rs, &st) != GRPC_STATUS_OK) {
    sl->rs = NULL;
    sl->reconnect_at_ms = now + trb_backoff_next_ms(&sl->bo);
    return;
  }
  s->open_streams++;
  s->stats.streams_opened++;
  sl->reading_paused = false;
  google_pubsub_v1_StreamingPullRequest r =
      google_pubsub_v1_StreamingPullRequest_init_zero;
  r.subscription = s->sub;
  r.stream_ack_deadline_seconds = s->deadline_s;
  r.client_id = s->client_id;
  r.max_outstanding_messages = s->cfg.max_outstanding_messages;
  r.max_outstanding_bytes = s->cfg.max_outstanding_bytes;
  r.protocol_version = 1;
  stream_write(sl, &r);
  sl->deadline_s = s->deadline_s;
  sl->heartbeat_at_ms = now + s->cfg.heartbeat_ms;
  sl->ping_at_ms = NEVER;
  sl->keepalive_cancel = false;
  update_reading(s);
}

/* Copy n bytes to *at, NUL-terminate, advance. */
static char *put_str(char **at, const char *p, size_t n) {
  char *d = *at;
  if (n) memcpy(d, p, n);
  d[n] = '\0';
  *at += n + 1;
  return d;
}

static trb_ps_ack_handle_t *make_handle(trb_ps_subscriber_t *s,
                                        const trb_ps_rx_msg_t *m,
                                        int stream_deadline_s, int64_t now) {
  size_t size = sizeof(trb_ps_ack_handle_t) +
                m->n_attrs * sizeof(trb_ps_attr_t) + m->message_id_len + 1 +
                m->ordering_key_len + 1 + m->attr_bytes + 2 * m->n_attrs +
                m->data_len + m->ack_id_len + 1;
  trb_ps_ack_handle_t *h = handle_alloc(s, size);
  if (!h) return NULL;
  size_t alloc = h->alloc;
  memset(h, 0, sizeof(*h));
  h->alloc = alloc;
  h->s = s;
  trb_ps_attr_t *attrs = (trb_ps_attr_t *)(h + 1);
  char *at = (char *)(attrs + m->n_attrs);
  h->ack_id = put_str(&at, m->ack_id, m->ack_id_len);
  h->ack_id_len = m->ack_id_len;
  h->msg.message_id = put_str(&at, m->message_id, m->message_id_len);
  h->msg.ordering_key = put_str(&at, m->ordering_key, m->ordering_key_len);
  size_t pos = 0, n = 0;
  const char *k, *v;
  size_t kl, vl;
  while (n < m->n_attrs && trb_ps_rx_attr_next(m, &pos, &k, &kl, &v, &vl)) {
    attrs[n].key = put_str(&at, k, kl);
    attrs[n].value = put_str(&at, v, vl);
    n++;
  }
  h->msg.attrs = n ? attrs : NULL;
  h->msg.n_attrs = n;
  if (m->data_len) memcpy(at, m->data, m->data_len);
  h->msg.data = (const uint8_t *)at;
  h->msg.data_len = m->data_len;
  h->msg.publish_time_s = m->publish_s;
  h->msg.publish_time_nanos = m->publish_nanos;
  h->msg.delivery_attempt = m->delivery_attempt;
  h->bytes = m->data_len;
  h->received_ms = now;
  /* The stream's deadline applies from receipt (fact 48); a newer, shorter
   * one applies from the first extension. */
  int dl = stream_deadline_s < s->deadline_s ? stream_deadline_s : s->deadline_s;
  h->extend_at_ms = now + sec_ms(s, dl) * 3 / 4;
  return h;
}

static void on_stream_message(void *user, trb_rpc_stream_t *rs,
                              const uint8_t *data, size_t len) {
  (void)rs;
  slot_t *sl = user;
  trb_ps_subscriber_t *s = sl->s;
  trb_ps_pull_response_t *r = &sl->resp; /* one read at a time per stream */
  trb_status_t st;
  if (trb_ps_pull_response_decode(data, len, r, &st) != GRPC_STATUS_OK) {
    return;
  }
  int64_t now = trb_clock_mono_ms();
  pthread_mutex_lock(&s->mu);
  trb_backoff_reset(&sl->bo);
  sl->ping_at_ms = NEVER; /* any response answers the pings */
  if (r->has_properties && r->exactly_once && !s->eod) {
    /* Exactly-once: the ack deadline is at least 60 s (fact 56). */
    s->eod = true;
    if (s->deadline_s < 60) {
      s->deadline_s = 60;
      wake_timer_at(s, 0);
    }
  }
  int64_t first_extend = NEVER;
  for (size_t i = 0; i < r->n; i++) {
    s->stats.received++;
    const trb_ps_rx_msg_t *m = &r->msgs[i];
    if (s->stopping) {
      enqueue_id(s, false, 0, m->ack_id, m->ack_id_len);
      s->stats.nacked++;
      continue;
    }
    trb_ps_ack_handle_t *h = make_handle(s, m, sl->deadline_s, now);
    if (!h) {
      enqueue_id(s, false, 0, m->ack_id, m->ack_id_len);
      continue;
    }
    h->state = H_QUEUED;
    hl_push(&s->queue, h);
    if (h->extend_at_ms < first_extend) first_extend = h->extend_at_ms;
  }
  if (first_extend < s->next_extend_ms) {
    s->next_extend_ms = first_extend;
    wake_timer_at(s, first_extend);
  }
  update_reading(s);
  pthread_mutex_unlock(&s->mu);
  deliver_pending(s);
}

static void on_stream_close(void *user, trb_rpc_stream_t *rs,
                            const trb_rpc_result_t *r) {
  slot_t *sl = user;
  trb_ps_subscriber_t *s = sl->s;
  bool report = false;
  int left = 0;
  trb_status_t err = {0};
  pthread_mutex_lock(&s->mu);
  sl->rs = NULL;
  s->open_streams--;
  trb_rpc_stream_release(rs);
  bool keepalive = sl->keepalive_cancel;
  sl->keepalive_cancel = false;
  sl->ping_at_ms = NEVER;
  if (!s->stopping) {
    /* CANCELLED not caused by stop is a server-side cancel (e.g. a server
     * shutting down cancels its calls): Java retries it (fact 54); so is
     * the keepalive check's cancel. */
    if (keepalive || r->code == GRPC_STATUS_OK ||
        r->code == GRPC_STATUS_CANCELLED ||
        trb_rpc_is_retryable(TRB_RPC_OP_STREAMING_PULL, r->code,
                             r->message)) {
      s->stats.reconnects++;
      sl->reconnect_at_ms = trb_clock_mono_ms() + trb_backoff_next_ms(&sl->bo);
    } else {
      sl->dead = true;
      s->stats.streams_failed++;
      set_first_error(s, r->code, "StreamingPull", r->message);
      for (int i = 0; i < s->cfg.streams; i++) left += !s->slots[i].dead;
      trb_status_set(&err, r->code, "StreamingPull: %s",
                     r->message ? r->message : "");
      report = s->cfg.on_stream_error != NULL;
    }
  }
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (report) s->cfg.on_stream_error(s->cfg.on_stream_error_user, &err, left);
}

/* Hand queued messages to the application while flow control allows. On
 * the loop thread. */
static void deliver_pending(trb_ps_subscriber_t *s) {
  pthread_mutex_lock(&s->mu);
  while (s->queue.head && !s->stopping) {
    trb_ps_ack_handle_t *h = s->queue.head;
    if (s->held.n > 0 &&
        (s->held.n >= s->cfg.max_outstanding_messages ||
         s->held.bytes + (int64_t)h->bytes > s->cfg.max_outstanding_bytes)) {
      break;
    }
    hl_remove(&s->queue, h);
    h->state = H_HELD;
    hl_push(&s->held, h);
    if ((uint64_t)s->held.n > s->stats.peak_held) {
      s->stats.peak_held = (uint64_t)s->held.n;
    }
    s->stats.delivered++;
    h->in_cb = true;
    pthread_mutex_unlock(&s->mu);
    s->cb(s->user, &h->msg, h); /* may settle h: freed below, not before */
    pthread_mutex_lock(&s->mu);
    if (h->settled) {
      handle_free(s, h);
    } else {
      h->in_cb = false;
    }
  }
  update_reading(s);
  pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------ settle */

static void settle(trb_ps_ack_handle_t *h, bool ack, waiter_t w) {
  if (!h) return;
  trb_ps_subscriber_t *s = h->s;
  trb_ps_ack_status_t now_result = TRB_PS_ACK_SUCCESS; /* SUCCESS: none */
  pthread_mutex_lock(&s->mu);
  if (h->state == H_HELD) {
    hl_remove(&s->held, h);
    if (ack) {
      record_latency(s, trb_clock_mono_ms() - h->received_ms);
      s->stats.acked++;
    } else {
      s->stats.nacked++;
    }
    if (!enqueue_idw(s, ack, 0, h->ack_id, h->ack_id_len, w))
      now_result = TRB_PS_ACK_OTHER;
    update_reading(s);
  } else if (h->state == H_ABANDONED) {
    hl_remove(&s->abandoned, h);
    now_result = TRB_PS_ACK_STOPPED;
  }
  if (s->stopping) pthread_cond_broadcast(&s->cv);
  /* Settled inside its own callback: the message stays readable until the
   * callback returns (deliver_pending frees it). */
  h->settled = true;
  if (!h->in_cb) handle_free(s, h);
  pthread_mutex_unlock(&s->mu);
  if (w.cb && now_result != TRB_PS_ACK_SUCCESS) {
    trb_status_t st = {0};
    if (now_result == TRB_PS_ACK_STOPPED) {
      trb_status_set(&st, GRPC_STATUS_CANCELLED, "subscriber stopped");
    } else {
      trb_status_set(&st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                     "out of memory queueing the ack id");
    }
    w.cb(w.user, now_result, &st);
  }
}

void trb_ps_ack(trb_ps_ack_handle_t *h) {
  waiter_t none = {NULL, NULL};
  settle(h, true, none);
}

void trb_ps_nack(trb_ps_ack_handle_t *h) {
  waiter_t none = {NULL, NULL};
  settle(h, false, none);
}

void trb_ps_ack_with_result(trb_ps_ack_handle_t *h, trb_ps_ack_result_cb cb,
                            void *user) {
  waiter_t w = {cb, user};
  settle(h, true, w);
}

void trb_ps_nack_with_result(trb_ps_ack_handle_t *h, trb_ps_ack_result_cb cb,
                             void *user) {
  waiter_t w = {cb, user};
  settle(h, false, w);
}

const trb_ps_received_t *trb_ps_ack_handle_message(
    const trb_ps_ack_handle_t *h) {
  return &h->msg;
}

/* ------------------------------------------------------------------- timer */

static void extend_list(trb_ps_subscriber_t *s, hlist_t *l, int64_t now,
                        int64_t *wake) {
  int64_t dl_ms = sec_ms(s, s->deadline_s);
  for (trb_ps_ack_handle_t *h = l->head; h; h = h->next) {
    if (h->extend_at_ms == NEVER) continue;
    if (now >= h->extend_at_ms) {
      if (now - h->received_ms >= s->cfg.max_extension_ms) {
        h->extend_at_ms = NEVER; /* left to expire */
        continue;
      }
      enqueue_id(s, false, s->deadline_s, h->ack_id, h->ack_id_len);
      s->stats.extensions++;
      h->extend_at_ms = now + dl_ms * 3 / 4;
    }
    if (h->extend_at_ms < *wake) *wake = h->extend_at_ms;
  }
}

static void *timer_main(void *arg) {
  trb_ps_subscriber_t *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->timer_stop) {
    int64_t now = trb_clock_mono_ms();
    int64_t wake = NEVER;
    s->timer_wake_ms = 0; /* awake: nobody needs to wake us */
    /* Leases (held and queued messages), when one may be due. */
    if (now >= s->next_extend_ms) {
      int64_t next = NEVER;
      extend_list(s, &s->held, now, &next);
      extend_list(s, &s->queue, now, &next);
      s->next_extend_ms = next;
    }
    if (s->next_extend_ms < wake) wake = s->next_extend_ms;
    /* Ack batches. */
    if (s->fill && now >= s->fill_since_ms + s->cfg.ack_flush_ms) {
      flush_fill(s, now);
    }
    if (s->fill && s->fill_since_ms + s->cfg.ack_flush_ms < wake) {
      wake = s->fill_since_ms + s->cfg.ack_flush_ms;
    }
    /* Retries of ack requests. */
    op_t **pp = &s->retries;
    while (*pp) {
      op_t *o = *pp;
      if (now >= o->retry_at_ms) {
        *pp = o->next;
        send_op(s, o, now);
        continue;
      }
      if (o->retry_at_ms < wake) wake = o->retry_at_ms;
      pp = &o->next;
    }
    /* Streams: reconnects, heartbeats, deadline updates. */
    for (int i = 0; s->started && !s->stopping && i < s->cfg.streams; i++) {
      slot_t *sl = &s->slots[i];
      if (sl->dead) continue;
      if (!sl->rs) {
        if (now >= sl->reconnect_at_ms) open_stream(s, sl, now);
        if (!sl->rs) {
          if (sl->reconnect_at_ms < wake) wake = sl->reconnect_at_ms;
          continue;
        }
      }
      if (sl->keepalive_cancel) continue; /* closing */
      /* Keepalive: a ping unanswered for keepalive_timeout_ms (fact 54). */
      if (sl->ping_at_ms != NEVER && !sl->reading_paused &&
          now >= sl->ping_at_ms + s->cfg.keepalive_timeout_ms) {
        s->stats.keepalive_timeouts++;
        sl->keepalive_cancel = true;
        sl->ping_at_ms = NEVER;
        trb_rpc_stream_cancel(sl->rs);
        continue;
      }
      google_pubsub_v1_StreamingPullRequest r =
          google_pubsub_v1_StreamingPullRequest_init_zero;
      if (sl->deadline_s != s->deadline_s) {
        r.stream_ack_deadline_seconds = s->deadline_s;
        sl->deadline_s = s->deadline_s;
        stream_write(sl, &r);
      }
      if (now >= sl->heartbeat_at_ms) {
        /* An empty request: the ping (protocol_version=1). */
        r.stream_ack_deadline_seconds = 0;
        stream_write(sl, &r);
        sl->heartbeat_at_ms = now + s->cfg.heartbeat_ms;
        if (sl->ping_at_ms == NEVER && !sl->reading_paused) {
          sl->ping_at_ms = now;
        }
      }
      if (sl->heartbeat_at_ms < wake) wake = sl->heartbeat_at_ms;
      if (sl->ping_at_ms != NEVER &&
          sl->ping_at_ms + s->cfg.keepalive_timeout_ms < wake) {
        wake = sl->ping_at_ms + s->cfg.keepalive_timeout_ms;
      }
    }
    if (s->timer_stop) break;
    s->timer_wake_ms = wake;
    wait_until(&s->cv, &s->mu, wake == NEVER ? -1 : wake);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ------------------------------------------------------------------ public */

static int64_t or_default(int64_t v, int64_t d) { return v == 0 ? d : v; }

grpc_status_code trb_ps_subscriber_create(
    trb_rpc_loop_t *loop, trb_rpc_channel_t *ch, const char *subscription,
    const trb_ps_subscriber_config_t *cfg, trb_ps_message_cb cb, void *user,
    trb_ps_subscriber_t **out, trb_status_t *st) {
  *out = NULL;
  if (!loop || !ch || !subscription || !subscription[0] || !cb) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "subscriber needs a loop, a channel, a "
                          "subscription and a message callback");
  }
  trb_ps_subscriber_config_t c = {0};
  if (cfg) c = *cfg;
  c.streams = (int)or_default(c.streams, 1);
  c.max_outstanding_messages = or_default(c.max_outstanding_messages, 1000);
  c.max_outstanding_bytes =
      or_default(c.max_outstanding_bytes, 100 * 1024 * 1024);
  c.max_extension_ms = or_default(c.max_extension_ms, 60 * 60 * 1000);
  c.min_ack_deadline_s = (int)or_default(c.min_ack_deadline_s, 10);
  c.ack_flush_ms = or_default(c.ack_flush_ms, 5);
  c.ack_retry_deadline_ms = or_default(c.ack_retry_deadline_ms, 60000);
  c.rpc_timeout_ms = or_default(c.rpc_timeout_ms, 60000);
  c.backoff_initial_ms = or_default(c.backoff_initial_ms, 100);
  c.backoff_max_ms = or_default(c.backoff_max_ms, 10000);
  if (c.backoff_multiplier == 0) c.backoff_multiplier = 2.0;
  c.heartbeat_ms = or_default(c.heartbeat_ms, 30000);
  c.keepalive_timeout_ms = or_default(c.keepalive_timeout_ms, 15000);
  c.ms_per_second = (int)or_default(c.ms_per_second, 1000);
  if (c.seed == 0) c.seed = (uint64_t)trb_clock_mono_ns() | 1;
  if (c.streams < 1 || c.streams > 64 || c.max_outstanding_messages < 1 ||
      c.max_outstanding_bytes < 1 || c.max_extension_ms < 1 ||
      c.min_ack_deadline_s < 10 || c.min_ack_deadline_s > MAX_DEADLINE_S ||
      c.ack_flush_ms < 0 || c.ack_retry_deadline_ms < 1 ||
      c.rpc_timeout_ms < 1 || c.backoff_initial_ms < 1 ||
      c.backoff_max_ms < c.backoff_initial_ms || c.backoff_multiplier < 1.0 ||
      c.heartbeat_ms < 1 || c.keepalive_timeout_ms < 1 ||
      c.ms_per_second < 1) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "subscriber config out of range (streams 1..64, "
                          "min_ack_deadline_s 10..600, positive limits)");
  }
  trb_ps_subscriber_t *s = trb_calloc(1, sizeof(*s));
  if (!s) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  s->loop = loop;
  s->ch = ch;
  s->cfg = c;
  s->cb = cb;
  s->user = user;
  s->rng = c.seed;
  s->fill_since_ms = NEVER;
  s->next_extend_ms = NEVER;
  s->deadline_s = c.min_ack_deadline_s > 60 ? c.min_ack_deadline_s : 60;
  s->sub = trb_strdup(subscription);
  s->sub_len = strlen(subscription);
  size_t plen = strlen(subscription) + 16;
  s->params = trb_malloc(plen);
  s->slots = trb_calloc((size_t)c.streams, sizeof(*s->slots));
  if (!s->sub || !s->params || !s->slots) {
    trb_free(s->sub);
    trb_free(s->params);
    trb_free(s->slots);
    trb_free(s);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  }
  snprintf(s->params, plen, "subscription=%s", subscription);
  /* client_id: 128 random bits, kept across reconnects (fact 48). */
  uint64_t x = c.seed ^ (uint64_t)trb_clock_wall_us();
  for (int i = 0; i < 32; i++) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->client_id[i] = "0123456789abcdef"[(x * 2685821657736338717ULL) >> 60];
  }
  s->client_id[32] = '\0';
  for (int i = 0; i < c.streams; i++) {
    s->slots[i].s = s;
    s->slots[i].reconnect_at_ms = NEVER;
    s->slots[i].ping_at_ms = NEVER;
    s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    trb_backoff_init(&s->slots[i].bo, c.backoff_initial_ms, c.backoff_max_ms,
                     c.backoff_multiplier, s->rng | 1);
  }
  s->stats.ack_deadline_s = s->deadline_s;
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&s->timer, NULL, timer_main, s) != 0) {
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    trb_free(s->sub);
    trb_free(s->params);
    trb_free(s->slots);
    trb_free(s);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "cannot start the subscriber timer thread");
  }
  s->timer_started = true;
  *out = s;
  return GRPC_STATUS_OK;
}

grpc_status_code trb_ps_subscriber_start(trb_ps_subscriber_t *s,
                                         trb_status_t *st) {
  pthread_mutex_lock(&s->mu);
  if (s->started || s->stopping) {
    pthread_mutex_unlock(&s->mu);
    return trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "subscriber already started or stopped");
  }
  s->started = true;
  int64_t now = trb_clock_mono_ms();
  for (int i = 0; i < s->cfg.streams; i++) open_stream(s, &s->slots[i], now);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return GRPC_STATUS_OK;
}

void trb_ps_subscriber_stats(trb_ps_subscriber_t *s,
                             trb_ps_subscriber_stats_t *out) {
  pthread_mutex_lock(&s->mu);
  *out = s->stats;
  out->ack_deadline_s = s->deadline_s;
  pthread_mutex_unlock(&s->mu);
}

grpc_status_code trb_ps_subscriber_stop(trb_ps_subscriber_t *s,
                                        int64_t timeout_ms, trb_status_t *st) {
  int64_t deadline = timeout_ms < 0 ? -1 : trb_clock_mono_ms() + timeout_ms;
  pthread_mutex_lock(&s->mu);
  if (s->stopped) {
    pthread_mutex_unlock(&s->mu);
    return GRPC_STATUS_OK;
  }
  s->stopping = true;
  /* 1. Streams: cancel (a paused stream closes on cancel too). */
  for (int i = 0; i < s->cfg.streams; i++) {
    s->slots[i].reconnect_at_ms = NEVER;
    if (s->slots[i].rs) trb_rpc_stream_cancel(s->slots[i].rs);
  }
  while (s->open_streams > 0) pthread_cond_wait(&s->cv, &s->mu);
  /* 2. Nack what was never delivered. */
  while (s->queue.head) {
    trb_ps_ack_handle_t *h = s->queue.head;
    hl_remove(&s->queue, h);
    enqueue_id(s, false, 0, h->ack_id, h->ack_id_len);
    s->stats.nacked++;
    handle_free(s, h);
  }
  /* 3. Let the application settle what it holds. */
  bool timed_out = false;
  while (s->held.n > 0) {
    if (!wait_until(&s->cv, &s->mu, deadline)) {
      timed_out = true;
      break;
    }
  }
  while (s->held.head) {
    trb_ps_ack_handle_t *h = s->held.head;
    hl_remove(&s->held, h);
    enqueue_id(s, false, 0, h->ack_id, h->ack_id_len);
    s->stats.nacked++;
    h->state = H_ABANDONED;
    hl_push(&s->abandoned, h);
  }
  /* 4. Send everything pending now and wait for the RPCs. */
  flush_fill(s, trb_clock_mono_ms());
  /* Retries (and batches they refill) are sent by the timer thread. */
  while (s->ops_in_flight > 0 || s->retries || s->fill) {
    if (!wait_until(&s->cv, &s->mu, deadline)) {
      timed_out = true;
      break;
    }
  }
  s->stopped = true;
  pthread_mutex_unlock(&s->mu);
  if (timed_out) {
    return trb_status_set(st, GRPC_STATUS_DEADLINE_EXCEEDED,
                          "subscriber stop: messages held or acks in flight "
                          "at the deadline");
  }
  return GRPC_STATUS_OK;
}

void trb_ps_subscriber_destroy(trb_ps_subscriber_t *s) {
  if (!s) return;
  trb_status_t st;
  trb_ps_subscriber_stop(s, 0, &st);
  pthread_mutex_lock(&s->mu);
  /* RPCs in flight reference `s` (bounded by rpc_timeout_ms). */
  while (s->ops_in_flight > 0) pthread_cond_wait(&s->cv, &s->mu);
  s->timer_stop = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (s->timer_started) pthread_join(s->timer, NULL);
  while (s->abandoned.head) {
    trb_ps_ack_handle_t *h = s->abandoned.head;
    hl_remove(&s->abandoned, h);
    handle_free(s, h);
  }
  pool_drain(s);
  /* Requests never sent or still to be retried: their waiters learn that
   * the subscriber stopped. */
  dones_t d = {NULL, 0, 0};
  for (op_t *o = s->fill; o;) {
    op_t *n = o->next;
    op_finish(o, &d, TRB_PS_ACK_STOPPED, GRPC_STATUS_CANCELLED);
    o = n;
  }
  for (op_t *o = s->retries; o;) {
    op_t *n = o->next;
    op_finish(o, &d, TRB_PS_ACK_STOPPED, GRPC_STATUS_CANCELLED);
    o = n;
  }
  s->fill = s->retries = NULL;
  dones_run(&d, "Acknowledge", NULL);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  for (int i = 0; i < s->cfg.streams; i++) {
    trb_ps_pull_response_deinit(&s->slots[i].resp);
  }
  trb_free(s->sub);
  trb_free(s->params);
  trb_free(s->slots);
  trb_free(s);
}
