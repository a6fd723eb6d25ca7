/* stream.c — StreamingPull: first-request rules, flow control, acks and
 * modacks on the stream, keepalive answers, exactly-once confirmations,
 * and closing streams (shutdown, fault drops, deleted subscriptions). */
#include <string.h>

#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/emulator/pubsub/ps_internal.h"
#include "src/rpc/pb.h"

#define STREAMING_PULL "/google.pubsub.v1.Subscriber/StreamingPull"

static void stream_free(ps_stream_t *s) {
  trb_buf_deinit(&s->buf);
  trb_free(s);
}

void ps_stream_detach(trb_psemu_t *ps, ps_stream_t *s) {
  (void)ps;
  ps_sub_t *sub = s->sub;
  if (sub == NULL) return;
  if (s->sprev) {
    s->sprev->snext = s->snext;
  } else {
    sub->streams = s->snext;
  }
  if (s->snext) s->snext->sprev = s->sprev;
  s->snext = s->sprev = NULL;
  /* Leases outlive the stream until their deadline (as the real service). */
  if (s->out_msgs > 0) {
    for (size_t i = 0; i < sub->entries.cap; i++) {
      if (sub->entries.keys[i] <= 0) continue;
      ps_entry_t *e = sub->entries.vals[i];
      if (e->owner == s) e->owner = NULL;
      /* Its ordering keys stay bound until those leases end. */
      if (e->kq != NULL && e->kq->bound == s) e->kq->bound = PS_BOUND_GONE;
    }
  }
  s->out_msgs = s->out_bytes = 0;
  s->sub = NULL;
  ps_sub_unref(ps, sub);
}

void ps_stream_close(trb_psemu_t *ps, ps_stream_t *s, grpc_status_code code,
                     const char *message) {
  if (s->finished && s->sub == NULL) return;
  ps_stream_detach(ps, s);
  if (!s->finished) {
    s->finished = true;
    trb_rpc_server_call_finish(s->call, code, message, NULL, 0, NULL, 0);
  }
}

void ps_streams_close_all(trb_psemu_t *ps, grpc_status_code code,
                          const char *message) {
  for (ps_stream_t *s = ps->streams; s; s = s->anext) {
    ps_stream_close(ps, s, code, message);
  }
}

static void on_start(void *user, trb_rpc_server_call_t *call) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  ps_stream_t *s = trb_calloc(1, sizeof(*s));
  if (s == NULL) {
    trb_rpc_server_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                               "out of memory", NULL, 0, NULL, 0);
    return;
  }
  s->ps = ps;
  s->call = call;
  trb_rpc_server_call_set_user(call, s);
  ps_lock(ps);
  s->anext = ps->streams;
  if (ps->streams) ps->streams->aprev = s;
  ps->streams = s;
  if (ps->shut) {
    s->finished = true;
    trb_rpc_server_call_finish(call, GRPC_STATUS_UNAVAILABLE,
                               "the emulator is shutting down", NULL, 0, NULL,
                               0);
  }
  ps_unlock(ps);
}

/* First request: subscription, deadline, flow control. mu held. */
static grpc_status_code first_request(trb_psemu_t *ps, ps_stream_t *s,
                                      const google_pubsub_v1_StreamingPullRequest *r,
                                      trb_status_t *st) {
  if (r->subscription == NULL || r->subscription[0] == '\0') {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "the first StreamingPullRequest must set "
                          "subscription");
  }
  if (trb_ps_name_parse(r->subscription, "subscriptions", "subscription",
                        NULL, NULL, NULL, st) != GRPC_STATUS_OK) {
    return st->code;
  }
  if (r->stream_ack_deadline_seconds < 10 ||
      r->stream_ack_deadline_seconds > 600) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "stream_ack_deadline_seconds must be between 10 and "
                          "600 (got %d)",
                          (int)r->stream_ack_deadline_seconds);
  }
  ps_sub_t *sub = ps_sub_find(ps, r->subscription);
  if (sub == NULL || sub->deleted) {
    return trb_status_set(st, GRPC_STATUS_NOT_FOUND,
                          "Resource not found (resource=%s).",
                          r->subscription);
  }
  if (sub->detached) {
    return trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "subscription is detached: %s", r->subscription);
  }
  s->deadline_s = r->stream_ack_deadline_seconds;
  s->max_msgs = r->max_outstanding_messages;
  s->max_bytes = r->max_outstanding_bytes;
  s->protocol_version = r->protocol_version;
  s->started = true;
  s->sub = sub;
  sub->refs++;
  s->snext = sub->streams;
  if (sub->streams) sub->streams->sprev = s;
  sub->streams = s;
  return GRPC_STATUS_OK;
}

/* Encode an exactly-once confirmation (field 5 acks / 3 modacks). */
static void confirmation(trb_buf_t *b, uint32_t field, char *const *ids,
                         const int *res, size_t n) {
  trb_buf_t in = TRB_BUF_INIT;
  for (size_t i = 0; i < n; i++) {
    trb_ps_wire_bytes(&in, res[i] == PS_ACK_OK ? 1 : 2, ids[i], strlen(ids[i]));
  }
  trb_ps_wire_bytes(b, field, in.data ? in.data : "", in.len);
  trb_buf_deinit(&in);
}

static void on_message(void *user, trb_rpc_server_call_t *call,
                       const uint8_t *data, size_t len) {
  trb_psemu_t *ps = user;
  ps_stream_t *s = trb_rpc_server_call_user(call);
  if (s == NULL) return;
  google_pubsub_v1_StreamingPullRequest r =
      google_pubsub_v1_StreamingPullRequest_init_zero;
  trb_status_t st = {0};
  grpc_status_code c = trb_pb_decode(google_pubsub_v1_StreamingPullRequest_fields,
                                     data, len, &r, &st);
  ps_ack_op_t *op = NULL;
  int *res = NULL;
  ps_lock(ps);
  if (s->finished) goto out;
  bool empty = len == 0;
  if (c == GRPC_STATUS_OK && !s->started) {
    c = first_request(ps, s, &r, &st);
  } else if (c == GRPC_STATUS_OK) {
    if (r.subscription && r.subscription[0]) {
      c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                         "subscription must only be set on the first "
                         "StreamingPullRequest");
    } else if (r.max_outstanding_messages != 0 ||
               r.max_outstanding_bytes != 0) {
      c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                         "max_outstanding_messages and max_outstanding_bytes "
                         "may only be set on the first StreamingPullRequest");
    } else if (r.protocol_version != 0) {
      c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                         "protocol_version may only be set on the first "
                         "StreamingPullRequest");
    } else if (r.stream_ack_deadline_seconds != 0) {
      if (r.stream_ack_deadline_seconds < 10 ||
          r.stream_ack_deadline_seconds > 600) {
        c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                           "stream_ack_deadline_seconds must be between 10 "
                           "and 600 (got %d)",
                           (int)r.stream_ack_deadline_seconds);
      } else {
        s->deadline_s = r.stream_ack_deadline_seconds;
      }
    }
  }
  if (c == GRPC_STATUS_OK &&
      r.modify_deadline_seconds_count != r.modify_deadline_ack_ids_count) {
    c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                       "modify_deadline_seconds has %u items but "
                       "modify_deadline_ack_ids has %u",
                       (unsigned)r.modify_deadline_seconds_count,
                       (unsigned)r.modify_deadline_ack_ids_count);
  }
  for (pb_size_t i = 0; c == GRPC_STATUS_OK && i < r.modify_deadline_seconds_count; i++) {
    if (r.modify_deadline_seconds[i] < 0) {
      c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                         "modify_deadline_seconds must be >= 0 (got %d)",
                         (int)r.modify_deadline_seconds[i]);
    } else if (r.modify_deadline_seconds[i] > 600) {
      r.modify_deadline_seconds[i] = 600;
    }
  }
  trb_ps_ackid_t a;
  for (pb_size_t i = 0; c == GRPC_STATUS_OK && i < r.ack_ids_count; i++) {
    if (!trb_ps_ackid_parse(r.ack_ids[i], &a)) {
      c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                         "malformed ack ID \"%.64s\"", r.ack_ids[i]);
    }
  }
  for (pb_size_t i = 0; c == GRPC_STATUS_OK && i < r.modify_deadline_ack_ids_count; i++) {
    if (!trb_ps_ackid_parse(r.modify_deadline_ack_ids[i], &a)) {
      c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                         "malformed ack ID \"%.64s\"",
                         r.modify_deadline_ack_ids[i]);
    }
  }
  if (c != GRPC_STATUS_OK) {
    if (c != GRPC_STATUS_NOT_FOUND && c != GRPC_STATUS_FAILED_PRECONDITION) {
      c = GRPC_STATUS_INVALID_ARGUMENT;
    }
    ps_stream_close(ps, s, c, st.msg);
    goto out;
  }
  ps_sub_t *sub = s->sub;
  size_t nm = r.modify_deadline_ack_ids_count;
  size_t na = r.ack_ids_count;
  res = trb_calloc(na + nm + 1, sizeof(*res));
  if (res == NULL) {
    ps_stream_close(ps, s, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  trb_buf_t conf = TRB_BUF_INIT;
  if (nm > 0) {
    ps_modack_ids(ps, sub, r.modify_deadline_ack_ids, nm,
                  r.modify_deadline_seconds, 0, res + na);
    if (sub->eod) confirmation(&conf, 3, r.modify_deadline_ack_ids, res + na, nm);
  }
  if (na > 0) {
    op = trb_calloc(1, sizeof(*op));
    if (op) {
      op->seqs = trb_malloc(na * sizeof(int64_t));
      op->gc = trb_malloc(na * sizeof(int64_t));
    }
    if (op == NULL || op->seqs == NULL || op->gc == NULL) {
      ps_ack_op_free(op);
      op = NULL;
      trb_buf_deinit(&conf);
      ps_stream_close(ps, s, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      goto out;
    }
    op->ps = ps;
    op->sub_id = sub->id;
    ps_ack_ids(ps, sub, r.ack_ids, na, res, op->seqs, &op->n_seqs, op->gc,
               &op->n_gc);
    if (sub->eod) {
      trb_buf_t ac = TRB_BUF_INIT;
      confirmation(&ac, 5, r.ack_ids, res, na);
      /* Sent after the acks are committed. */
      op->confirm = (uint8_t *)ac.data;
      op->confirm_len = ac.len;
      op->stream = s;
      s->pending_ops++;
    }
  }
  if (conf.len > 0) {
    trb_rpc_server_call_write(s->call, conf.data, conf.len);
  } else if (empty && s->protocol_version >= 1 && s->started) {
    trb_rpc_server_call_write(s->call, "", 0); /* keepalive answer */
  }
  trb_buf_deinit(&conf);
  if (op != NULL) ps_ack_op_defer(ps, op);
  ps_dispatch(ps, sub);
out:
  ps_unlock(ps);
  trb_free(res);
  trb_pb_release(google_pubsub_v1_StreamingPullRequest_fields, &r);
}

static void on_half_close(void *user, trb_rpc_server_call_t *call) {
  trb_psemu_t *ps = user;
  ps_stream_t *s = trb_rpc_server_call_user(call);
  if (s == NULL) return;
  ps_lock(ps);
  ps_stream_close(ps, s, GRPC_STATUS_OK, NULL);
  ps_unlock(ps);
}

static void on_done(void *user, trb_rpc_server_call_t *call, bool cancelled) {
  trb_psemu_t *ps = user;
  ps_stream_t *s = trb_rpc_server_call_user(call);
  if (s == NULL) return;
  ps_lock(ps);
  ps_stream_close(ps, s, GRPC_STATUS_CANCELLED,
                  cancelled ? "cancelled" : NULL);
  if (s->aprev) {
    s->aprev->anext = s->anext;
  } else {
    ps->streams = s->anext;
  }
  if (s->anext) s->anext->aprev = s->aprev;
  s->done = true;
  bool free_now = s->pending_ops == 0;
  ps_unlock(ps);
  if (free_now) stream_free(s);
}

/* ---- ack ops (shared with pull.c) ------------------------------------------ */

void ps_ack_op_free(ps_ack_op_t *op) {
  if (op == NULL) return;
  trb_free(op->seqs);
  trb_free(op->gc);
  trb_free(op->details);
  trb_free(op->err_msg);
  trb_free(op->confirm);
  trb_free(op->att);
  trb_free(op);
}

ps_ack_op_t *ps_att_take(trb_psemu_t *ps) {
  if (ps->n_att == 0) return NULL;
  ps_ack_op_t *op = trb_calloc(1, sizeof(*op));
  if (op == NULL) {
    ps->n_att = 0;
    return NULL;
  }
  op->ps = ps;
  op->att = ps->att;
  op->n_att = ps->n_att;
  ps->att = NULL;
  ps->n_att = ps->cap_att = 0;
  return op;
}

static grpc_status_code ack_apply(trb_db_t *db, sqlite3 *conn, void *user,
                                  trb_status_t *st) {
  (void)conn;
  ps_ack_op_t *op = user;
  grpc_status_code c = ps_store_delete(db, op->sub_id, op->seqs, op->n_seqs,
                                       op->gc, op->n_gc, st);
  if (c == GRPC_STATUS_OK && op->n_att > 0) {
    c = ps_store_attempts(db, op->att, op->n_att, st);
  }
  return c;
}

static void ack_done(void *user, grpc_status_code code,
                     const trb_status_t *dst) {
  ps_ack_op_t *op = user;
  trb_psemu_t *ps = op->ps;
  if (op->call) {
    if (code != GRPC_STATUS_OK) {
      trb_rpc_server_call_finish(op->call, code, dst->msg, NULL, 0, NULL, 0);
    } else if (op->details) {
      trb_rpc_server_call_finish(op->call, GRPC_STATUS_INVALID_ARGUMENT,
                                 op->err_msg, op->details, op->details_len,
                                 NULL, 0);
    } else {
      trb_rpc_server_call_finish(op->call, GRPC_STATUS_OK, NULL, NULL, 0, "",
                                 0);
    }
  }
  ps_stream_t *s = op->stream;
  bool free_stream = false;
  if (s) {
    ps_lock(ps);
    if (!s->finished && op->confirm) {
      trb_rpc_server_call_write(s->call, op->confirm, op->confirm_len);
    }
    free_stream = --s->pending_ops == 0 && s->done;
    ps_unlock(ps);
  }
  if (free_stream) stream_free(s);
  ps_ack_op_free(op);
  ps_op_finished(ps);
}

void ps_ack_op_defer(trb_psemu_t *ps, ps_ack_op_t *op) {
  op->def.apply = ack_apply;
  op->def.done = ack_done;
  op->def.user = op;
  ps_defer(ps, &op->def);
}

grpc_status_code ps_stream_register(trb_psemu_t *ps, trb_rpc_server_t *srv,
                                    trb_status_t *st) {
  trb_rpc_stream_handler_t h = {0};
  h.on_start = on_start;
  h.on_message = on_message;
  h.on_half_close = on_half_close;
  h.on_done = on_done;
  return trb_rpc_server_add_stream(srv, STREAMING_PULL, &h, ps, st);
}
