/* deliver.c — delivery state of subscriptions: ready queues, leases with
 * ack deadlines on one timer heap, ordering keys, dispatch to StreamingPull
 * streams, acks and modacks, and the timer thread. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/common/log.h"
#include "src/emulator/pubsub/ps_internal.h"

int64_t ps_now_ms(void) { return trb_clock_mono_ms(); }

int64_t ps_scaled_ms(const trb_psemu_t *ps, int64_t secs) {
  return secs * ps->ms_per_s;
}

void ps_lock(trb_psemu_t *ps) { pthread_mutex_lock(&ps->mu); }

void ps_defer(trb_psemu_t *ps, ps_deferred_t *d) {
  d->next = NULL;
  if (ps->def_tail) {
    ps->def_tail->next = d;
  } else {
    ps->def_head = d;
  }
  ps->def_tail = d;
}

/* Deferred ops are counted as pending under mu and enqueued under
 * submit_mu, taken before mu is released: ops reach the db (which commits
 * in enqueue order) in the order of the state changes that queued them,
 * whichever thread unlocks first. (trb_db_submit only appends to a queue;
 * it never waits for the committer.) */
void ps_unlock(trb_psemu_t *ps) {
  if (ps->n_att > 0) {
    ps_ack_op_t *op = ps_att_take(ps);
    if (op != NULL) ps_ack_op_defer(ps, op);
  }
  ps_deferred_t *d = ps->def_head;
  if (d == NULL) {
    pthread_mutex_unlock(&ps->mu);
    return;
  }
  ps->def_head = ps->def_tail = NULL;
  for (ps_deferred_t *x = d; x != NULL; x = x->next) ps->pending_ops++;
  pthread_mutex_lock(&ps->submit_mu);
  pthread_mutex_unlock(&ps->mu);
  ps_deferred_t *failed = NULL, **ft = &failed;
  trb_status_t st;
  grpc_status_code fc = GRPC_STATUS_OK;
  while (d) {
    ps_deferred_t *next = d->next; /* d may be freed once submitted */
    grpc_status_code c = trb_db_submit(ps->db, d->apply, d->done, d->user, &st);
    if (c != GRPC_STATUS_OK) {
      fc = c;
      d->next = NULL;
      *ft = d;
      ft = &d->next;
    }
    d = next;
  }
  pthread_mutex_unlock(&ps->submit_mu);
  while (failed) {
    /* done calls ps_op_finished for the count taken above. */
    ps_deferred_t *next = failed->next;
    trb_status_t fst;
    trb_status_set(&fst, fc, "%s", st.msg);
    failed->done(failed->user, fc, &fst);
    failed = next;
  }
}

void ps_msg_unref(ps_msg_t *m) {
  if (--m->refs <= 0) trb_free(m);
}

/* ---- entries ------------------------------------------------------------ */

static void make_ready(ps_sub_t *s, ps_entry_t *e, bool front) {
  e->state = PS_READY;
  if (front) {
    ps_list_push_front(&s->ready_head, &s->ready_tail, e);
  } else {
    ps_list_push_back(&s->ready_head, &s->ready_tail, e);
  }
  s->n_ready++;
}

static void release_owner(ps_entry_t *e) {
  ps_stream_t *o = e->owner;
  if (o) {
    o->out_msgs--;
    o->out_bytes -= (int64_t)e->msg->body_len;
    e->owner = NULL;
  }
}

const char ps_bound_pull[1], ps_bound_gone[1];

int ps_sub_add(trb_psemu_t *ps, ps_sub_t *s, ps_msg_t *m, int attempts) {
  (void)ps;
  ps_entry_t *e = trb_calloc(1, sizeof(*e));
  if (e == NULL) return -ENOMEM;
  e->msg = m;
  e->sub = s;
  e->heap_idx = -1;
  e->attempts = attempts;
  ps_keyq_t *k = NULL;
  if (s->ordering && m->okey != NULL) {
    k = ps_keyq_get(s, m->okey, true);
    if (k == NULL) {
      trb_free(e);
      return -ENOMEM;
    }
  }
  if (ps_map_put(&s->entries, m->seq, e) != 0) {
    if (k != NULL && k->head == NULL) ps_keyq_drop(s, k);
    trb_free(e);
    return -ENOMEM;
  }
  m->refs++;
  if (k != NULL) {
    e->kq = k;
    ps_klist_push_back(k, e);
    if (k->first_wait != NULL) {
      e->state = PS_KEYWAIT;
      return 0;
    }
    k->first_wait = e;
  }
  make_ready(s, e, false);
  return 0;
}

/* Take `e` (ready or delayed) out of the ready list / timer heap. */
static void unschedule(trb_psemu_t *ps, ps_entry_t *e) {
  ps_sub_t *s = e->sub;
  ps_heap_remove(ps, e);
  if (e->state == PS_READY) {
    ps_list_remove(&s->ready_head, &s->ready_tail, e);
    s->n_ready--;
  }
}

/* `k->first_wait` changed to `n` (may be NULL): make it ready. `front`:
 * at the head of the ready list (redelivery) rather than the back. */
static void key_promote(ps_sub_t *s, ps_keyq_t *k, ps_entry_t *n, bool front) {
  k->first_wait = n;
  if (n != NULL) make_ready(s, n, front);
}

/* `e` (the key's entry) leaves the key for good. */
static void key_remove(ps_sub_t *s, ps_entry_t *e) {
  ps_keyq_t *k = e->kq;
  if (e->state == PS_OUT) {
    if (--k->n_out == 0) k->bound = NULL;
  }
  if (k->first_wait == e) key_promote(s, k, e->knext, true);
  ps_klist_remove(k, e);
  e->kq = NULL;
  if (k->head == NULL) ps_keyq_drop(s, k);
}

int64_t ps_entry_finish(trb_psemu_t *ps, ps_entry_t *e) {
  ps_sub_t *s = e->sub;
  unschedule(ps, e);
  if (e->kq != NULL) key_remove(s, e);
  release_owner(e);
  ps_map_del(&s->entries, e->msg->seq);
  ps_msg_t *m = e->msg;
  int64_t seq = m->seq;
  trb_free(e);
  if (m->refs == 1) {
    ps_msg_unref(m);
    return seq;
  }
  ps_msg_unref(m);
  return 0;
}

void ps_att_record(trb_psemu_t *ps, const ps_entry_t *e) {
  if (ps->n_att == ps->cap_att) {
    size_t cap = ps->cap_att ? ps->cap_att * 2 : 64;
    ps_att_t *a = trb_realloc(ps->att, cap * sizeof(*a));
    if (a == NULL) return; /* best effort: the count stays in memory */
    ps->att = a;
    ps->cap_att = cap;
  }
  ps->att[ps->n_att++] = (ps_att_t){e->sub->id, e->msg->seq, e->attempts};
}

/* Lease of `e` ended (mu held; e is out of the heap, owner released):
 * dead-letter it, delay it (retry backoff) or make it ready at the front.
 * Its delivery count is persisted (an UPDATE after a dead-letter move's
 * DELETE touches nothing). */
static void requeue_one(trb_psemu_t *ps, ps_entry_t *e, int64_t now_ms) {
  ps_sub_t *s = e->sub;
  ps_att_record(ps, e);
  if (s->max_attempts > 0 && e->attempts >= s->max_attempts &&
      s->dlq_topic != NULL) {
    ps_dead_letter(ps, e);
    return;
  }
  if (s->has_retry && s->min_backoff_ms + s->max_backoff_ms > 0) {
    int64_t b = s->min_backoff_ms;
    for (int i = 1; i < e->attempts && b < s->max_backoff_ms; i++) b *= 2;
    if (b > s->max_backoff_ms) b = s->max_backoff_ms;
    if (b > 0) {
      e->state = PS_DELAYED;
      e->due_ms = now_ms + b * ps->ms_per_s / 1000;
      if (ps_heap_push(ps, e) == 0) {
        pthread_cond_signal(&ps->timer_cv);
        return;
      }
    }
  }
  make_ready(s, e, true);
}

void ps_entry_requeue(trb_psemu_t *ps, ps_entry_t *e, int64_t now_ms) {
  ps_keyq_t *k = e->kq;
  if (k == NULL) {
    release_owner(e);
    ps_heap_remove(ps, e);
    requeue_one(ps, e, now_ms);
    return;
  }
  /* Ordering key: `e` and every later leased entry (they follow it up to
   * first_wait) go back to waiting; the key restarts at `e`. */
  if (k->first_wait != NULL) {
    unschedule(ps, k->first_wait);
    k->first_wait->state = PS_KEYWAIT;
  }
  for (ps_entry_t *x = e; x != NULL && x != k->first_wait; x = x->knext) {
    release_owner(x);
    ps_heap_remove(ps, x);
    x->state = PS_KEYWAIT;
    k->n_out--;
    if (x != e) ps_att_record(ps, x); /* e: in requeue_one */
  }
  if (k->n_out == 0) k->bound = NULL;
  k->first_wait = e;
  requeue_one(ps, e, now_ms);
}

void ps_sub_clear(trb_psemu_t *ps, ps_sub_t *s, int64_t **gc, size_t *n_gc) {
  size_t cap = s->entries.n;
  int64_t *out = cap ? trb_malloc(cap * sizeof(*out)) : NULL;
  size_t n = 0;
  while (s->entries.n > 0) {
    ps_entry_t *e = NULL;
    for (size_t i = 0; i < s->entries.cap; i++) {
      if (s->entries.keys[i] > 0) {
        e = s->entries.vals[i];
        break;
      }
    }
    if (e == NULL) break;
    int64_t g = ps_entry_finish(ps, e);
    if (g > 0 && out != NULL && n < cap) out[n++] = g;
  }
  ps_keys_free(s);
  if (gc) {
    *gc = out;
    *n_gc = n;
  } else {
    trb_free(out);
  }
}

/* ---- leasing and dispatch ------------------------------------------------ */

size_t ps_lease_into(trb_psemu_t *ps, ps_sub_t *s, ps_stream_t *owner,
                     int deadline_s, size_t max, size_t max_bytes,
                     trb_buf_t *b) {
  size_t n = 0;
  int64_t due = ps_now_ms() + ps_scaled_ms(ps, deadline_s);
  const void *who = owner ? (const void *)owner : PS_BOUND_PULL;
  char ack[TRB_PS_ACKID_MAX];
  ps_entry_t *e = s->ready_head;
  while (e != NULL && n < max) {
    ps_entry_t *next = e->next;
    ps_keyq_t *k = e->kq;
    if (k != NULL && k->n_out > 0 && k->bound != who) {
      e = next; /* the key's earlier messages are out with another receiver */
      continue;
    }
    if (n > 0 && b->len + e->msg->body_len + 64 > max_bytes) break;
    ps_list_remove(&s->ready_head, &s->ready_tail, e);
    s->n_ready--;
    e->attempts++;
    e->gen++;
    e->state = PS_OUT;
    e->owner = owner;
    e->due_ms = due;
    if (ps_heap_push(ps, e) != 0) {
      e->state = PS_READY;
      e->owner = NULL;
      ps_list_insert_before(&s->ready_head, &s->ready_tail, next, e);
      s->n_ready++;
      break;
    }
    if (owner) {
      owner->out_msgs++;
      owner->out_bytes += (int64_t)e->msg->body_len;
    }
    if (k != NULL) {
      /* The key's next message becomes ready right here, so it follows in
       * this response when there is room. */
      k->n_out++;
      k->bound = who;
      k->first_wait = e->knext;
      if (e->knext != NULL) {
        e->knext->state = PS_READY;
        ps_list_insert_before(&s->ready_head, &s->ready_tail, next, e->knext);
        s->n_ready++;
        next = e->knext;
      }
    }
    trb_ps_ackid_t a = {s->id, e->msg->seq, e->gen, ps->epoch};
    size_t al = trb_ps_ackid_format(&a, ack);
    if (trb_ps_wire_received(b, ack, al, e->msg->body, e->msg->body_len,
                             s->max_attempts > 0 ? e->attempts : 0) != 0) {
      /* Out of memory: the lease stands and expires normally. */
      break;
    }
    n++;
    e = next;
  }
  if (n > 0) pthread_cond_signal(&ps->timer_cv);
  return n;
}

/* How many more messages / bytes the stream may take now (0: none). */
static size_t stream_room(ps_stream_t *st, size_t *bytes) {
  if (st->finished || st->dead || st->sub == NULL) return 0;
  size_t n = PS_RESPONSE_MAX_MESSAGES;
  if (st->max_msgs > 0) {
    if (st->out_msgs >= st->max_msgs) return 0;
    if ((int64_t)n > st->max_msgs - st->out_msgs) {
      n = (size_t)(st->max_msgs - st->out_msgs);
    }
  }
  *bytes = PS_RESPONSE_MAX_BYTES;
  if (st->max_bytes > 0) {
    if (st->out_bytes >= st->max_bytes) return 0;
    if ((int64_t)*bytes > st->max_bytes - st->out_bytes) {
      *bytes = (size_t)(st->max_bytes - st->out_bytes);
    }
  }
  return n;
}

void ps_dispatch(trb_psemu_t *ps, ps_sub_t *s) {
  if (s->waiters != NULL && s->ready_head != NULL) {
    ps_waiters_serve(ps, s, 0, false);
  }
  if (s->ready_head == NULL || s->streams == NULL || s->deleted) return;
  bool progress = true;
  while (s->ready_head != NULL && progress) {
    progress = false;
    ps_stream_t *st = s->streams;
    while (st != NULL && s->ready_head != NULL) {
      ps_stream_t *next = st->snext;
      size_t bytes = 0;
      size_t room = stream_room(st, &bytes);
      if (room > 0 &&
          trb_rpc_server_call_queued_bytes(st->call) >= PS_STREAM_QUEUE_LIMIT) {
        room = 0;
        if (ps->recheck_ms == 0) {
          ps->recheck_ms = ps_now_ms() + PS_RECHECK_MS;
          pthread_cond_signal(&ps->timer_cv);
        }
      }
      if (room > 0) {
        st->buf.len = 0;
        size_t n = ps_lease_into(ps, s, st, st->deadline_s, room, bytes,
                                 &st->buf);
        if (n > 0) {
          /* subscription_properties = 4 {exactly_once=1, ordering=2} */
          uint8_t props[6];
          size_t pl = 0;
          props[pl++] = (4 << 3) | 2;
          props[pl++] = 4;
          props[pl++] = 1 << 3;
          props[pl++] = s->eod ? 1 : 0;
          props[pl++] = 2 << 3;
          props[pl++] = s->ordering ? 1 : 0;
          trb_buf_append(&st->buf, props, pl);
          if (trb_rpc_server_call_write(st->call, st->buf.data, st->buf.len) !=
              GRPC_STATUS_OK) {
            /* The call is over (on_done follows); its leases expire and
             * are redelivered. */
            st->dead = true;
          }
          progress = true;
        }
      }
      st = next;
    }
  }
}

/* ---- ack / modack ------------------------------------------------------- */

static ps_entry_t *lookup(trb_psemu_t *ps, ps_sub_t *s, const char *id,
                          int *res, trb_ps_ackid_t *a) {
  if (!trb_ps_ackid_parse(id, a)) {
    *res = PS_ACK_MALFORMED;
    return NULL;
  }
  (void)ps;
  if (a->sub_id != s->id) {
    *res = PS_ACK_INVALID;
    return NULL;
  }
  ps_entry_t *e = ps_map_get(&s->entries, a->seq);
  *res = e ? PS_ACK_OK : (s->eod ? PS_ACK_INVALID : PS_ACK_OK);
  return e;
}

static bool lease_current(trb_psemu_t *ps, const ps_entry_t *e,
                          const trb_ps_ackid_t *a) {
  return e->state == PS_OUT && e->gen == a->gen && a->epoch == ps->epoch;
}

void ps_ack_ids(trb_psemu_t *ps, ps_sub_t *s, char *const *ids, size_t n,
                int *results, int64_t *seqs, size_t *n_seqs, int64_t *gc,
                size_t *n_gc) {
  for (size_t i = 0; i < n; i++) {
    trb_ps_ackid_t a;
    ps_entry_t *e = lookup(ps, s, ids[i], &results[i], &a);
    if (e == NULL) continue;
    if (s->eod && !lease_current(ps, e, &a)) {
      results[i] = PS_ACK_INVALID;
      continue;
    }
    if (e->state == PS_KEYWAIT && e->attempts == 0) {
      continue; /* never delivered: stale ID */
    }
    int64_t seq = e->msg->seq;
    int64_t g = ps_entry_finish(ps, e);
    seqs[(*n_seqs)++] = seq;
    if (g > 0) gc[(*n_gc)++] = g;
  }
}

void ps_modack_ids(trb_psemu_t *ps, ps_sub_t *s, char *const *ids, size_t n,
                   const int32_t *secs, int32_t all_secs, int *results) {
  int64_t now = ps_now_ms();
  for (size_t i = 0; i < n; i++) {
    trb_ps_ackid_t a;
    ps_entry_t *e = lookup(ps, s, ids[i], &results[i], &a);
    if (e == NULL) continue;
    int32_t sec = secs ? secs[i] : all_secs;
    if (!lease_current(ps, e, &a)) {
      /* A nack of a message already taken back with an earlier message of
       * its ordering key (same lease generation) is accepted. */
      bool taken_back = sec == 0 && e->state == PS_KEYWAIT && e->gen == a.gen &&
                        a.epoch == ps->epoch;
      if (s->eod && !taken_back) results[i] = PS_ACK_INVALID;
      continue;
    }
    if (sec == 0) {
      ps_entry_requeue(ps, e, now);
    } else {
      e->due_ms = now + ps_scaled_ms(ps, sec);
      ps_heap_fix(ps, e);
    }
  }
  pthread_cond_signal(&ps->timer_cv);
}

/* ---- timer thread --------------------------------------------------------- */

static void *timer_main(void *arg) {
  trb_psemu_t *ps = arg;
  ps_lock(ps);
  while (!ps->stop) {
    int64_t now = ps_now_ms();
    bool any = false;
    while (ps->heap_n > 0 && ps->heap[0]->due_ms <= now) {
      ps_entry_t *e = ps->heap[0];
      ps_heap_remove(ps, e);
      if (e->state == PS_OUT) {
        ps_entry_requeue(ps, e, now);
      } else if (e->state == PS_DELAYED) {
        make_ready(e->sub, e, true);
      }
      any = true;
    }
    if (ps->recheck_ms != 0 && now >= ps->recheck_ms) {
      ps->recheck_ms = 0;
      any = true;
    }
    if (any) {
      for (size_t i = 0; i < ps->n_subs; i++) ps_dispatch(ps, ps->subs[i]);
    }
    int64_t wake_pull = INT64_MAX;
    for (size_t i = 0; i < ps->n_subs; i++) {
      if (ps->subs[i]->waiters == NULL) continue;
      int64_t w = ps_waiters_serve(ps, ps->subs[i], now, false);
      if (w < wake_pull) wake_pull = w;
    }
    if (ps->def_head != NULL || ps->n_att > 0) {
      ps_unlock(ps);
      ps_lock(ps);
      continue;
    }
    int64_t wake = INT64_MAX;
    if (ps->heap_n > 0) wake = ps->heap[0]->due_ms;
    if (ps->recheck_ms != 0 && ps->recheck_ms < wake) wake = ps->recheck_ms;
    if (wake_pull < wake) wake = wake_pull;
    if (wake == INT64_MAX) {
      pthread_cond_wait(&ps->timer_cv, &ps->mu);
    } else if (wake > now) {
      struct timespec ts;
      ts.tv_sec = (time_t)(wake / 1000);
      ts.tv_nsec = (long)(wake % 1000) * 1000000L;
      pthread_cond_timedwait(&ps->timer_cv, &ps->mu, &ts);
    }
  }
  ps_unlock(ps);
  return NULL;
}

grpc_status_code ps_timer_start(trb_psemu_t *ps, trb_status_t *st) {
  int rc = pthread_create(&ps->timer, NULL, timer_main, ps);
  if (rc != 0) {
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "pubsub: timer thread: %s", strerror(rc));
  }
  ps->timer_started = true;
  return GRPC_STATUS_OK;
}

void ps_timer_stop(trb_psemu_t *ps) {
  if (!ps->timer_started) return;
  ps_lock(ps);
  ps->stop = true;
  pthread_cond_signal(&ps->timer_cv);
  ps_unlock(ps);
  pthread_join(ps->timer, NULL);
  ps->timer_started = false;
}
