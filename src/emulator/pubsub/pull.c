/* pull.c — unary Pull, Acknowledge and ModifyAckDeadline, with the
 * exactly-once ErrorInfo results (PROTOCOL.md B.4). */
#include <string.h>

#include "google/rpc/error_details.pb.h"
#include "src/common/alloc.h"
#include "src/emulator/pubsub/ps_internal.h"
#include "src/rpc/details.h"
#include "src/rpc/pb.h"

static void finish_err(trb_rpc_server_call_t *call, const trb_status_t *st) {
  trb_rpc_server_call_finish(call, st->code, st->msg, NULL, 0, NULL, 0);
}

/* Look the subscription up (mu held) or set st. */
static ps_sub_t *find_sub(trb_psemu_t *ps, const char *name, trb_status_t *st) {
  if (trb_ps_name_parse(name, "subscriptions", "subscription", NULL, NULL,
                        NULL, st) != GRPC_STATUS_OK) {
    return NULL;
  }
  ps_sub_t *s = ps_sub_find(ps, name);
  if (s == NULL || s->deleted) {
    trb_status_set(st, GRPC_STATUS_NOT_FOUND,
                   "Resource not found (resource=subscription).");
    return NULL;
  }
  return s;
}

int64_t ps_waiters_serve(trb_psemu_t *ps, ps_sub_t *s, int64_t now_ms,
                         bool all) {
  int64_t next = INT64_MAX;
  ps_waiter_t **pp = &s->waiters;
  while (*pp != NULL) {
    ps_waiter_t *w = *pp;
    bool ready = s->ready_head != NULL && !s->deleted;
    if (!all && !ready && w->due_ms > now_ms) {
      if (w->due_ms < next) next = w->due_ms;
      pp = &w->next;
      continue;
    }
    *pp = w->next;
    trb_buf_t b = TRB_BUF_INIT;
    if (ready) {
      ps_lease_into(ps, s, NULL, s->ack_deadline_s, w->max,
                    PS_MAX_REQUEST_BYTES, &b);
    }
    trb_rpc_server_call_finish(w->call, GRPC_STATUS_OK, NULL, NULL, 0,
                               b.data ? b.data : "", b.len);
    trb_buf_deinit(&b);
    ps_sub_unref(ps, s);
    trb_free(w);
  }
  return next;
}

static void on_pull(void *user, trb_rpc_server_call_t *call,
                    const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_PullRequest r = google_pubsub_v1_PullRequest_init_zero;
  trb_status_t st = {0};
  if (trb_pb_decode(google_pubsub_v1_PullRequest_fields, req, len, &r, &st) !=
      GRPC_STATUS_OK) {
    trb_pb_release(google_pubsub_v1_PullRequest_fields, &r);
    st.code = GRPC_STATUS_INVALID_ARGUMENT;
    finish_err(call, &st);
    return;
  }
  trb_buf_t b = TRB_BUF_INIT;
  ps_lock(ps);
  ps_sub_t *s = find_sub(ps, r.subscription, &st);
  if (s != NULL && r.max_messages <= 0) {
    trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                   "max_messages must be a positive integer");
    s = NULL;
  } else if (s != NULL && s->detached) {
    trb_status_set(&st, GRPC_STATUS_FAILED_PRECONDITION,
                   "subscription is detached");
    s = NULL;
  }
  bool parked = false;
  if (s != NULL) {
    size_t n = ps_lease_into(ps, s, NULL, s->ack_deadline_s,
                             (size_t)r.max_messages, PS_MAX_REQUEST_BYTES, &b);
    int64_t left = trb_rpc_server_call_remaining_ms(call);
    ps_waiter_t *w = NULL;
    if (n == 0 && !r.return_immediately && !ps->shut && left > 100 &&
        (w = trb_calloc(1, sizeof(*w))) != NULL) {
      /* Wait for messages (the real service holds a Pull "for a bounded
       * amount of time"), answering before the client's deadline. */
      w->call = call;
      w->sub = s;
      w->max = (size_t)r.max_messages;
      int64_t wait = left - 50 < PS_PULL_WAIT_MS ? left - 50 : PS_PULL_WAIT_MS;
      w->due_ms = ps_now_ms() + wait;
      w->next = s->waiters;
      s->waiters = w;
      s->refs++;
      parked = true;
      pthread_cond_signal(&ps->timer_cv);
    }
  }
  ps_unlock(ps);
  if (parked) {
    trb_pb_release(google_pubsub_v1_PullRequest_fields, &r);
    trb_buf_deinit(&b);
    return;
  }
  trb_pb_release(google_pubsub_v1_PullRequest_fields, &r);
  if (s == NULL) {
    finish_err(call, &st);
  } else {
    trb_rpc_server_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0,
                               b.data ? b.data : "", b.len);
  }
  trb_buf_deinit(&b);
}

/* google.rpc.Status{INVALID_ARGUMENT, details=[ErrorInfo]} naming each
 * failed ack ID as PERMANENT_FAILURE_INVALID_ACK_ID. The top-level code is
 * INVALID_ARGUMENT (HTTP 400), as the real service answers: see
 * googleapis/google-cloud-php PubSub/tests/Unit/SubscriptionTest.php
 * (testAcknowledgeBatchSuppressExceptionsForEod: "code":400,
 * "status":"INVALID_ARGUMENT", reason EXACTLY_ONCE_ACKID_FAILURE) and
 * client logs of the real service quoted in public code ("InvalidArgument:
 * 400 Some acknowledgement ids in the request were invalid. [reason:
 * "EXACTLY_ONCE_ACKID_FAILURE" ..."). The clients key on the metadata. */
static grpc_status_code eod_details(char *const *ids, const int *res, size_t n,
                                    uint8_t **out, size_t *out_len,
                                    size_t *n_failed) {
  google_rpc_ErrorInfo info = google_rpc_ErrorInfo_init_zero;
  google_rpc_ErrorInfo_MetadataEntry *md = trb_calloc(n + 1, sizeof(*md));
  if (md == NULL) return GRPC_STATUS_RESOURCE_EXHAUSTED;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (res[i] == PS_ACK_OK) continue;
    md[k].key = ids[i];
    md[k].value = (char *)"PERMANENT_FAILURE_INVALID_ACK_ID";
    k++;
  }
  *n_failed = k;
  if (k == 0) {
    trb_free(md);
    return GRPC_STATUS_OK;
  }
  info.reason = (char *)"EXACTLY_ONCE_ACKID_FAILURE";
  info.domain = (char *)"pubsub.googleapis.com";
  info.metadata_count = (pb_size_t)k;
  info.metadata = md;
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  trb_status_t st;
  grpc_status_code c =
      trb_pb_encode(google_rpc_ErrorInfo_fields, &info, &enc, &enc_len, &st);
  trb_free(md);
  if (c != GRPC_STATUS_OK) return c;
  trb_rpc_any_t any = {TRB_RPC_TYPE_URL_PREFIX "google.rpc.ErrorInfo", enc,
                       enc_len};
  c = trb_rpc_status_details_encode(GRPC_STATUS_INVALID_ARGUMENT,
                                    PS_EOD_ACK_FAILURE, &any, 1, out,
                                    out_len, &st);
  trb_free(enc);
  return c;
}

static void on_ack(void *user, trb_rpc_server_call_t *call,
                   const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_AcknowledgeRequest r =
      google_pubsub_v1_AcknowledgeRequest_init_zero;
  trb_status_t st = {0};
  if (trb_pb_decode(google_pubsub_v1_AcknowledgeRequest_fields, req, len, &r,
                    &st) != GRPC_STATUS_OK) {
    trb_pb_release(google_pubsub_v1_AcknowledgeRequest_fields, &r);
    st.code = GRPC_STATUS_INVALID_ARGUMENT;
    finish_err(call, &st);
    return;
  }
  size_t n = r.ack_ids_count;
  ps_ack_op_t *op = trb_calloc(1, sizeof(*op));
  int *res = trb_calloc(n + 1, sizeof(*res));
  if (op) {
    op->seqs = trb_malloc((n + 1) * sizeof(int64_t));
    op->gc = trb_malloc((n + 1) * sizeof(int64_t));
  }
  if (!op || !res || !op->seqs || !op->gc) {
    trb_status_set(&st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    goto fail;
  }
  op->ps = ps;
  op->call = call;
  ps_lock(ps);
  ps_sub_t *s = find_sub(ps, r.subscription, &st);
  if (s != NULL && n == 0) {
    trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                   "ack_ids must not be empty");
    s = NULL;
  }
  if (s != NULL) {
    op->sub_id = s->id;
    ps_ack_ids(ps, s, r.ack_ids, n, res, op->seqs, &op->n_seqs, op->gc,
               &op->n_gc);
    size_t failed = 0;
    if (s->eod &&
        eod_details(r.ack_ids, res, n, &op->details, &op->details_len,
                    &failed) == GRPC_STATUS_OK &&
        failed > 0) {
      op->err_msg = trb_strdup(PS_EOD_ACK_FAILURE);
    }
    ps_ack_op_defer(ps, op); /* answered once committed, in order */
    ps_dispatch(ps, s);
  }
  ps_unlock(ps);
  trb_free(res);
  trb_pb_release(google_pubsub_v1_AcknowledgeRequest_fields, &r);
  if (s != NULL) return;
  ps_ack_op_free(op);
  finish_err(call, &st);
  return;
fail:
  ps_ack_op_free(op);
  trb_free(res);
  trb_pb_release(google_pubsub_v1_AcknowledgeRequest_fields, &r);
  finish_err(call, &st);
}

static void on_modack(void *user, trb_rpc_server_call_t *call,
                      const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_ModifyAckDeadlineRequest r =
      google_pubsub_v1_ModifyAckDeadlineRequest_init_zero;
  trb_status_t st = {0};
  if (trb_pb_decode(google_pubsub_v1_ModifyAckDeadlineRequest_fields, req, len,
                    &r, &st) != GRPC_STATUS_OK) {
    trb_pb_release(google_pubsub_v1_ModifyAckDeadlineRequest_fields, &r);
    st.code = GRPC_STATUS_INVALID_ARGUMENT;
    finish_err(call, &st);
    return;
  }
  size_t n = r.ack_ids_count;
  int *res = trb_calloc(n + 1, sizeof(*res));
  ps_sub_t *s = NULL;
  bool eod = false, queued = false;
  if (res == NULL) {
    trb_status_set(&st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  } else if (r.ack_deadline_seconds < 0 || r.ack_deadline_seconds > 600) {
    trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                   "ack_deadline_seconds must be between 0 and 600 (got %d)",
                   (int)r.ack_deadline_seconds);
  } else if (n == 0) {
    trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                   "ack_ids must not be empty");
  } else {
    ps_lock(ps);
    s = find_sub(ps, r.subscription, &st);
    if (s != NULL) {
      eod = s->eod;
      ps_modack_ids(ps, s, r.ack_ids, n, NULL, r.ack_deadline_seconds, res);
      /* A nack's delivery counts (recorded by ps_modack_ids: the buffer is
       * flushed at every unlock) are written before the answer. */
      ps_ack_op_t *op = ps_att_take(ps);
      if (op != NULL) {
        size_t failed = 0;
        op->call = call;
        if (eod &&
            eod_details(r.ack_ids, res, n, &op->details, &op->details_len,
                        &failed) == GRPC_STATUS_OK &&
            failed > 0) {
          op->err_msg = trb_strdup(PS_EOD_ACK_FAILURE);
        }
        ps_ack_op_defer(ps, op);
        queued = true;
      }
      ps_dispatch(ps, s);
    }
    ps_unlock(ps);
  }
  if (queued) {
    /* answered by the op */
  } else if (s == NULL) {
    finish_err(call, &st);
  } else {
    uint8_t *details = NULL;
    size_t details_len = 0, failed = 0;
    if (eod && eod_details(r.ack_ids, res, n, &details, &details_len,
                           &failed) == GRPC_STATUS_OK &&
        failed > 0) {
      trb_rpc_server_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
                                 PS_EOD_ACK_FAILURE,
                                 details, details_len, NULL, 0);
    } else {
      trb_rpc_server_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0, "", 0);
    }
    trb_free(details);
  }
  trb_free(res);
  trb_pb_release(google_pubsub_v1_ModifyAckDeadlineRequest_fields, &r);
}

/* Seek to a time: unacknowledged messages published before it are
 * acknowledged (durably, before the reply). Acknowledged messages are not
 * retained, so nothing already acknowledged comes back; snapshots are not
 * supported. */
static void on_seek(void *user, trb_rpc_server_call_t *call,
                    const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_SeekRequest r = google_pubsub_v1_SeekRequest_init_zero;
  trb_status_t st = {0};
  if (trb_pb_decode(google_pubsub_v1_SeekRequest_fields, req, len, &r, &st) !=
      GRPC_STATUS_OK) {
    trb_pb_release(google_pubsub_v1_SeekRequest_fields, &r);
    st.code = GRPC_STATUS_INVALID_ARGUMENT;
    finish_err(call, &st);
    return;
  }
  ps_ack_op_t *op = NULL;
  grpc_status_code c = GRPC_STATUS_OK;
  if (r.which_target == google_pubsub_v1_SeekRequest_snapshot_tag) {
    c = trb_status_set(&st, GRPC_STATUS_UNIMPLEMENTED,
                       "seeking to a snapshot is not supported by the "
                       "tributary emulator");
  } else if (r.which_target != google_pubsub_v1_SeekRequest_time_tag) {
    c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                       "one of time or snapshot is required");
  }
  if (c == GRPC_STATUS_OK) {
    int64_t t_us = r.target.time.seconds * 1000000 + r.target.time.nanos / 1000;
    ps_lock(ps);
    ps_sub_t *s = find_sub(ps, r.subscription, &st);
    size_t n = s ? s->entries.n : 0;
    op = s ? trb_calloc(1, sizeof(*op)) : NULL;
    if (op) {
      op->seqs = trb_malloc((n + 1) * sizeof(int64_t));
      op->gc = trb_malloc((n + 1) * sizeof(int64_t));
    }
    if (s == NULL) {
      c = st.code;
    } else if (!op || !op->seqs || !op->gc) {
      c = trb_status_set(&st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    } else {
      op->ps = ps;
      op->call = call;
      op->sub_id = s->id;
      for (size_t i = 0; i < s->entries.cap && s->entries.n > 0; i++) {
        if (s->entries.keys[i] <= 0) continue;
        ps_entry_t *e = s->entries.vals[i];
        if (e->msg->publish_us >= t_us) continue;
        int64_t seq = e->msg->seq;
        int64_t g = ps_entry_finish(ps, e);
        op->seqs[op->n_seqs++] = seq;
        if (g > 0) op->gc[op->n_gc++] = g;
      }
      ps_ack_op_defer(ps, op);
      ps_dispatch(ps, s);
    }
    ps_unlock(ps);
  }
  trb_pb_release(google_pubsub_v1_SeekRequest_fields, &r);
  if (c != GRPC_STATUS_OK) {
    ps_ack_op_free(op);
    finish_err(call, &st);
  }
}

grpc_status_code ps_pull_register(trb_psemu_t *ps, trb_rpc_server_t *srv,
                                  trb_status_t *st) {
  grpc_status_code c = trb_rpc_server_add_unary(
      srv, "/google.pubsub.v1.Subscriber/Pull", on_pull, ps, st);
  if (c == GRPC_STATUS_OK) {
    c = trb_rpc_server_add_unary(
        srv, "/google.pubsub.v1.Subscriber/Acknowledge", on_ack, ps, st);
  }
  if (c == GRPC_STATUS_OK) {
    c = trb_rpc_server_add_unary(
        srv, "/google.pubsub.v1.Subscriber/ModifyAckDeadline", on_modack, ps,
        st);
  }
  if (c == GRPC_STATUS_OK) {
    c = trb_rpc_server_add_unary(srv, "/google.pubsub.v1.Subscriber/Seek",
                                 on_seek, ps, st);
  }
  return c;
}
