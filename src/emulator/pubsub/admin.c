/* admin.c — topics and subscriptions: CreateTopic, GetTopic, ListTopics,
 * DeleteTopic, ListTopicSubscriptions, CreateSubscription, GetSubscription,
 * UpdateSubscription, ListSubscriptions, DeleteSubscription. Each mutation
 * is a db op; the RPC is answered from its done callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "google/protobuf/empty.pb.h"
#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/emulator/pubsub/ps_internal.h"
#include "src/rpc/pb.h"

#define DELETED_TOPIC "_deleted-topic_"

/* ---- common helpers --------------------------------------------------------- */

void ps_reply(trb_rpc_server_call_t *call, const pb_msgdesc_t *fields,
              const void *msg) {
  uint8_t *out = NULL;
  size_t len = 0;
  trb_status_t st;
  if (trb_pb_encode(fields, msg, &out, &len, &st) != GRPC_STATUS_OK) {
    trb_rpc_server_call_finish(call, st.code, st.msg, NULL, 0, NULL, 0);
    return;
  }
  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0, out, len);
  trb_free(out);
}

static void finish_st(trb_rpc_server_call_t *call, const trb_status_t *st) {
  trb_rpc_server_call_finish(call, st->code, st->msg, NULL, 0, NULL, 0);
}

static void finish_bytes(trb_rpc_server_call_t *call, const void *b,
                         size_t n) {
  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0, b ? b : "",
                             n);
}

bool ps_fault(trb_psemu_t *ps, trb_rpc_server_call_t *call, bool finish) {
  if (ps->faults == NULL) return false;
  grpc_status_code code = GRPC_STATUS_OK;
  char msg[TRB_STATUS_MSG_MAX];
  int latency_ms = 0;
  bool fail = trb_faults_take(ps->faults, trb_rpc_server_call_method(call),
                              &code, msg, sizeof(msg), &latency_ms);
  if (latency_ms > 0) usleep((useconds_t)latency_ms * 1000);
  if (fail && finish) {
    trb_rpc_server_call_finish(call, code, msg, NULL, 0, NULL, 0);
  }
  return fail;
}

static bool decode(trb_rpc_server_call_t *call, const pb_msgdesc_t *f,
                   const uint8_t *req, size_t len, void *msg) {
  trb_status_t st;
  if (trb_pb_decode(f, req, len, msg, &st) != GRPC_STATUS_OK) {
    trb_pb_release(f, msg);
    trb_rpc_server_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, st.msg,
                               NULL, 0, NULL, 0);
    return false;
  }
  return true;
}

ps_topic_t *ps_topic_find(trb_psemu_t *ps, const char *name) {
  for (size_t i = 0; i < ps->n_topics; i++) {
    if (strcmp(ps->topics[i]->name, name) == 0) return ps->topics[i];
  }
  return NULL;
}

ps_sub_t *ps_sub_find(trb_psemu_t *ps, const char *name) {
  for (size_t i = 0; i < ps->n_subs; i++) {
    if (strcmp(ps->subs[i]->name, name) == 0) return ps->subs[i];
  }
  return NULL;
}

void ps_topic_free(ps_topic_t *t) {
  if (t == NULL) return;
  trb_free(t->name);
  trb_free(t->proto);
  trb_free(t->subs);
  trb_free(t);
}

int ps_topic_attach(ps_topic_t *t, ps_sub_t *s) {
  if (t->n_subs == t->cap_subs) {
    size_t cap = t->cap_subs ? t->cap_subs * 2 : 4;
    ps_sub_t **a = trb_realloc(t->subs, cap * sizeof(*a));
    if (a == NULL) return -1;
    t->subs = a;
    t->cap_subs = cap;
  }
  t->subs[t->n_subs++] = s;
  return 0;
}

void ps_topic_detach(ps_topic_t *t, ps_sub_t *s) {
  for (size_t i = 0; i < t->n_subs; i++) {
    if (t->subs[i] == s) {
      t->subs[i] = t->subs[--t->n_subs];
      return;
    }
  }
}

void ps_sub_unref(trb_psemu_t *ps, ps_sub_t *s) {
  (void)ps;
  if (--s->refs > 0) return;
  ps_map_free(&s->entries);
  ps_keys_free(s);
  trb_free(s->name);
  trb_free(s->project);
  trb_free(s->proto);
  trb_free(s->dlq_topic);
  trb_ps_filter_free(s->filter);
  trb_free(s);
}

static int64_t dur_ms(const google_protobuf_Duration *d) {
  return d->seconds * 1000 + d->nanos / 1000000;
}

grpc_status_code ps_sub_settings(trb_psemu_t *ps, ps_sub_t *s,
                                 const google_pubsub_v1_Subscription *p,
                                 trb_status_t *st) {
  (void)ps;
  const char *project = NULL, *id = NULL;
  size_t plen = 0;
  if (s->name == NULL) {
    s->name = trb_strdup(p->name);
    if (s->name == NULL) {
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
    }
    if (trb_ps_name_parse(s->name, "subscriptions", "subscription", &project,
                          &plen, &id, st) != GRPC_STATUS_OK) {
      return st->code;
    }
    s->project = trb_strndup(project, plen);
    s->short_id = id;
    if (s->project == NULL) {
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
    }
  }
  s->ack_deadline_s = p->ack_deadline_seconds ? p->ack_deadline_seconds : 10;
  s->ordering = p->enable_message_ordering;
  s->eod = p->enable_exactly_once_delivery;
  s->detached = p->detached;
  trb_free(s->dlq_topic);
  s->dlq_topic = NULL;
  s->max_attempts = 0;
  if (p->has_dead_letter_policy && p->dead_letter_policy.dead_letter_topic &&
      p->dead_letter_policy.dead_letter_topic[0]) {
    s->dlq_topic = trb_strdup(p->dead_letter_policy.dead_letter_topic);
    s->max_attempts = p->dead_letter_policy.max_delivery_attempts
                          ? p->dead_letter_policy.max_delivery_attempts
                          : 5;
  }
  s->has_retry = p->has_retry_policy;
  s->min_backoff_ms = p->retry_policy.has_minimum_backoff
                          ? dur_ms(&p->retry_policy.minimum_backoff)
                          : 10000;
  s->max_backoff_ms = p->retry_policy.has_maximum_backoff
                          ? dur_ms(&p->retry_policy.maximum_backoff)
                          : 600000;
  if (s->filter == NULL && p->filter && p->filter[0]) {
    if (trb_ps_filter_parse(p->filter, &s->filter, st) != GRPC_STATUS_OK) {
      return st->code;
    }
  }
  return GRPC_STATUS_OK;
}

/* Validate and normalize a Subscription (create: `creating`; update: the
 * merged result). mu held. */
static grpc_status_code validate_sub(trb_psemu_t *ps,
                                     google_pubsub_v1_Subscription *p,
                                     bool creating, trb_status_t *st) {
  if (trb_ps_name_parse(p->name, "subscriptions", "subscription", NULL, NULL,
                        NULL, st) != GRPC_STATUS_OK) {
    return st->code;
  }
  if (creating && trb_ps_name_parse(p->topic, "topics", "topic", NULL, NULL,
                                    NULL, st) != GRPC_STATUS_OK) {
    return st->code;
  }
  if (p->ack_deadline_seconds == 0) p->ack_deadline_seconds = 10;
  if (p->ack_deadline_seconds < 10 || p->ack_deadline_seconds > 600) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "ack_deadline_seconds must be between 10 and 600 "
                          "(got %d)",
                          (int)p->ack_deadline_seconds);
  }
  if (p->has_push_config && p->push_config.push_endpoint &&
      p->push_config.push_endpoint[0]) {
    return trb_status_set(st, GRPC_STATUS_UNIMPLEMENTED,
                          "push subscriptions are not supported by the "
                          "tributary emulator");
  }
  if (p->has_dead_letter_policy) {
    google_pubsub_v1_DeadLetterPolicy *d = &p->dead_letter_policy;
    if (d->dead_letter_topic == NULL || d->dead_letter_topic[0] == '\0') {
      p->has_dead_letter_policy = false;
    } else {
      if (trb_ps_name_parse(d->dead_letter_topic, "topics",
                            "dead_letter_policy.dead_letter_topic", NULL, NULL,
                            NULL, st) != GRPC_STATUS_OK) {
        return st->code;
      }
      if (ps_topic_find(ps, d->dead_letter_topic) == NULL) {
        return trb_status_set(st, GRPC_STATUS_NOT_FOUND,
                              "dead-letter topic not found: %s",
                              d->dead_letter_topic);
      }
      if (d->max_delivery_attempts == 0) d->max_delivery_attempts = 5;
      if (d->max_delivery_attempts < 5 || d->max_delivery_attempts > 100) {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "dead_letter_policy.max_delivery_attempts must "
                              "be between 5 and 100 (got %d)",
                              (int)d->max_delivery_attempts);
      }
    }
  }
  if (p->has_retry_policy) {
    google_pubsub_v1_RetryPolicy *r = &p->retry_policy;
    if (!r->has_minimum_backoff) {
      r->has_minimum_backoff = true;
      r->minimum_backoff.seconds = 10;
    }
    if (!r->has_maximum_backoff) {
      r->has_maximum_backoff = true;
      r->maximum_backoff.seconds = 600;
    }
    int64_t mn = dur_ms(&r->minimum_backoff), mx = dur_ms(&r->maximum_backoff);
    if (mn < 0 || mn > 600000 || mx < 0 || mx > 600000 || mn > mx) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "retry_policy: backoffs must be within 0..600s "
                            "and minimum_backoff <= maximum_backoff");
    }
  }
  if (creating && p->filter && p->filter[0]) {
    trb_ps_filter_t *f = NULL;
    if (trb_ps_filter_parse(p->filter, &f, st) != GRPC_STATUS_OK) {
      return st->code;
    }
    trb_ps_filter_free(f);
  }
  if (creating) p->state = google_pubsub_v1_Subscription_State_ACTIVE;
  return GRPC_STATUS_OK;
}

/* ---- admin ops -------------------------------------------------------------- */

enum { OP_CREATE_TOPIC = 1, OP_DELETE_TOPIC, OP_CREATE_SUB, OP_UPDATE_SUB,
       OP_DELETE_SUB };

typedef struct admin_op_s {
  trb_psemu_t *ps;
  trb_rpc_server_call_t *call; /* NULL for the C API */
  int kind;
  char *name;
  char *topic_name;             /* CREATE_SUB */
  uint8_t *proto;
  size_t proto_len;
  int64_t id;
  ps_sub_t *sub;                /* DELETE_SUB (ref held) */
  trb_status_t st;              /* outcome (C API) */
} admin_op_t;

static void admin_op_free(admin_op_t *op) {
  trb_free(op->name);
  trb_free(op->topic_name);
  trb_free(op->proto);
  trb_free(op);
}

static grpc_status_code step_done(trb_db_t *db, sqlite3_stmt *q,
                                  const char *what, trb_status_t *st) {
  int rc = sqlite3_step(q);
  sqlite3_reset(q);
  if (rc == SQLITE_CONSTRAINT) {
    return trb_status_set(st, GRPC_STATUS_ALREADY_EXISTS,
                          "%s: resource already exists", what);
  }
  if (rc != SQLITE_DONE) return trb_db_error(db, what, st);
  return GRPC_STATUS_OK;
}

static grpc_status_code admin_apply(trb_db_t *db, sqlite3 *conn, void *user,
                                    trb_status_t *st) {
  admin_op_t *op = user;
  trb_psemu_t *ps = op->ps;
  sqlite3_stmt *q = NULL;
  grpc_status_code c;
  switch (op->kind) {
    case OP_CREATE_TOPIC:
      q = trb_db_stmt(db, "INSERT INTO ps_topics(name, proto) VALUES(?1, ?2)",
                      st);
      if (q == NULL) return st->code;
      sqlite3_bind_text(q, 1, op->name, -1, SQLITE_STATIC);
      sqlite3_bind_blob(q, 2, op->proto, (int)op->proto_len, SQLITE_STATIC);
      c = step_done(db, q, op->name, st);
      op->id = sqlite3_last_insert_rowid(conn);
      return c;
    case OP_DELETE_TOPIC: {
      ps_lock(ps);
      ps_topic_t *t = ps_topic_find(ps, op->name);
      if (t) t->deleted = true;
      ps_unlock(ps);
      q = trb_db_stmt(db, "DELETE FROM ps_topics WHERE name=?1", st);
      if (q == NULL) return st->code;
      sqlite3_bind_text(q, 1, op->name, -1, SQLITE_STATIC);
      if ((c = step_done(db, q, op->name, st)) != GRPC_STATUS_OK) return c;
      if (t == NULL) return GRPC_STATUS_OK;
      q = trb_db_stmt(db, "UPDATE ps_subs SET topic_id=0 WHERE topic_id=?1",
                      st);
      if (q == NULL) return st->code;
      sqlite3_bind_int64(q, 1, t->id);
      return step_done(db, q, op->name, st);
    }
    case OP_CREATE_SUB: {
      ps_lock(ps);
      ps_topic_t *t = ps_topic_find(ps, op->topic_name);
      int64_t tid = (t && !t->deleted) ? t->id : 0;
      ps_unlock(ps);
      if (tid == 0) {
        return trb_status_set(st, GRPC_STATUS_NOT_FOUND,
                              "topic not found: %s", op->topic_name);
      }
      q = trb_db_stmt(
          db, "INSERT INTO ps_subs(name, topic_id, proto) VALUES(?1, ?2, ?3)",
          st);
      if (q == NULL) return st->code;
      sqlite3_bind_text(q, 1, op->name, -1, SQLITE_STATIC);
      sqlite3_bind_int64(q, 2, tid);
      sqlite3_bind_blob(q, 3, op->proto, (int)op->proto_len, SQLITE_STATIC);
      c = step_done(db, q, op->name, st);
      op->id = sqlite3_last_insert_rowid(conn);
      return c;
    }
    case OP_UPDATE_SUB:
      q = trb_db_stmt(db, "UPDATE ps_subs SET proto=?2 WHERE name=?1", st);
      if (q == NULL) return st->code;
      sqlite3_bind_text(q, 1, op->name, -1, SQLITE_STATIC);
      sqlite3_bind_blob(q, 2, op->proto, (int)op->proto_len, SQLITE_STATIC);
      return step_done(db, q, op->name, st);
    case OP_DELETE_SUB: {
      ps_lock(ps);
      op->sub->deleted = true; /* later publishes skip it */
      ps_unlock(ps);
      q = trb_db_stmt(db, "DELETE FROM ps_subs WHERE id=?1", st);
      if (q == NULL) return st->code;
      sqlite3_bind_int64(q, 1, op->sub->id);
      if ((c = step_done(db, q, op->name, st)) != GRPC_STATUS_OK) return c;
      q = trb_db_stmt(db, "DELETE FROM ps_unacked WHERE sub_id=?1", st);
      if (q == NULL) return st->code;
      sqlite3_bind_int64(q, 1, op->sub->id);
      if ((c = step_done(db, q, op->name, st)) != GRPC_STATUS_OK) return c;
      return trb_db_exec(db,
                         "DELETE FROM ps_messages WHERE seq NOT IN"
                         " (SELECT seq FROM ps_unacked)",
                         st);
    }
    default:
      return trb_status_set(st, GRPC_STATUS_INTERNAL, "bad admin op");
  }
}

/* Apply a committed op to memory (mu held). Returns the reply bytes in
 * *out (borrowed from state) for RPCs. */
static grpc_status_code admin_commit(admin_op_t *op, trb_status_t *st) {
  trb_psemu_t *ps = op->ps;
  switch (op->kind) {
    case OP_CREATE_TOPIC: {
      ps_topic_t *t = trb_calloc(1, sizeof(*t));
      if (t == NULL) break;
      t->id = op->id;
      t->name = trb_strdup(op->name);
      t->proto = trb_malloc(op->proto_len + 1);
      if (t->name == NULL || t->proto == NULL) {
        ps_topic_free(t);
        break;
      }
      memcpy(t->proto, op->proto, op->proto_len);
      t->proto_len = op->proto_len;
      if (ps->n_topics == ps->cap_topics) {
        size_t cap = ps->cap_topics ? ps->cap_topics * 2 : 16;
        ps_topic_t **a = trb_realloc(ps->topics, cap * sizeof(*a));
        if (a == NULL) {
          ps_topic_free(t);
          break;
        }
        ps->topics = a;
        ps->cap_topics = cap;
      }
      ps->topics[ps->n_topics++] = t;
      return GRPC_STATUS_OK;
    }
    case OP_DELETE_TOPIC: {
      for (size_t i = 0; i < ps->n_topics; i++) {
        ps_topic_t *t = ps->topics[i];
        if (strcmp(t->name, op->name) != 0) continue;
        for (size_t j = 0; j < t->n_subs; j++) t->subs[j]->topic = NULL;
        ps->topics[i] = ps->topics[--ps->n_topics];
        ps_topic_free(t);
        break;
      }
      return GRPC_STATUS_OK;
    }
    case OP_CREATE_SUB:
    case OP_UPDATE_SUB: {
      google_pubsub_v1_Subscription p = google_pubsub_v1_Subscription_init_zero;
      if (trb_pb_decode(google_pubsub_v1_Subscription_fields, op->proto,
                        op->proto_len, &p, st) != GRPC_STATUS_OK) {
        trb_pb_release(google_pubsub_v1_Subscription_fields, &p);
        return st->code;
      }
      ps_sub_t *s = op->kind == OP_UPDATE_SUB ? ps_sub_find(ps, op->name) : NULL;
      bool fresh = s == NULL;
      if (fresh) {
        s = trb_calloc(1, sizeof(*s));
        if (s == NULL) {
          trb_pb_release(google_pubsub_v1_Subscription_fields, &p);
          break;
        }
        s->id = op->id;
        s->refs = 1;
      }
      uint8_t *proto = trb_malloc(op->proto_len + 1);
      grpc_status_code c =
          proto ? ps_sub_settings(ps, s, &p, st)
                : trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
      trb_pb_release(google_pubsub_v1_Subscription_fields, &p);
      if (proto) {
        memcpy(proto, op->proto, op->proto_len);
        trb_free(s->proto);
        s->proto = proto;
        s->proto_len = op->proto_len;
      }
      if (!fresh) return c;
      if (c == GRPC_STATUS_OK && ps->n_subs == ps->cap_subs) {
        size_t cap = ps->cap_subs ? ps->cap_subs * 2 : 16;
        ps_sub_t **a = trb_realloc(ps->subs, cap * sizeof(*a));
        if (a == NULL) {
          c = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
        } else {
          ps->subs = a;
          ps->cap_subs = cap;
        }
      }
      ps_topic_t *t = ps_topic_find(ps, op->topic_name);
      if (c == GRPC_STATUS_OK && t != NULL && ps_topic_attach(t, s) != 0) {
        c = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
      }
      if (c != GRPC_STATUS_OK) {
        s->deleted = true;
        ps_sub_unref(ps, s);
        return c;
      }
      s->topic = t;
      ps->subs[ps->n_subs++] = s;
      return GRPC_STATUS_OK;
    }
    case OP_DELETE_SUB: {
      ps_sub_t *s = op->sub;
      for (size_t i = 0; i < ps->n_subs; i++) {
        if (ps->subs[i] == s) {
          ps->subs[i] = ps->subs[--ps->n_subs];
          ps_sub_unref(ps, s); /* the list's reference */
          break;
        }
      }
      if (s->topic) ps_topic_detach(s->topic, s);
      s->topic = NULL;
      while (s->streams) {
        ps_stream_close(ps, s->streams, GRPC_STATUS_NOT_FOUND,
                        "subscription deleted");
      }
      ps_waiters_serve(ps, s, 0, true);
      ps_sub_clear(ps, s, NULL, NULL);
      ps_sub_unref(ps, s); /* the op's reference */
      op->sub = NULL;
      return GRPC_STATUS_OK;
    }
    default:
      break;
  }
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
}

static void admin_done(void *user, grpc_status_code code,
                       const trb_status_t *dst) {
  admin_op_t *op = user;
  trb_psemu_t *ps = op->ps;
  trb_status_t st = {0};
  if (code == GRPC_STATUS_OK) {
    ps_lock(ps);
    code = admin_commit(op, &st);
    ps_unlock(ps);
  } else {
    st = *dst;
    if (op->sub) {
      ps_lock(ps);
      op->sub->deleted = false;
      ps_sub_unref(ps, op->sub);
      ps_unlock(ps);
    }
  }
  if (op->call) {
    if (code != GRPC_STATUS_OK) {
      finish_st(op->call, &st);
    } else if (op->kind == OP_DELETE_TOPIC || op->kind == OP_DELETE_SUB) {
      finish_bytes(op->call, NULL, 0);
    } else {
      finish_bytes(op->call, op->proto, op->proto_len);
    }
    admin_op_free(op);
    ps_op_finished(ps);
  } else {
    op->st = st;
    op->st.code = code;
    ps_op_finished(ps);
  }
}

/* Run or submit: with a call, asynchronously; without, synchronously. */
static grpc_status_code admin_run(admin_op_t *op, trb_status_t *st) {
  trb_psemu_t *ps = op->ps;
  if (op->call) {
    trb_status_t s;
    if (ps_submit(ps, admin_apply, admin_done, op, &s) != GRPC_STATUS_OK) {
      if (op->sub) {
        ps_lock(ps);
        op->sub->deleted = false;
        ps_sub_unref(ps, op->sub);
        ps_unlock(ps);
      }
      finish_st(op->call, &s);
      admin_op_free(op);
      return s.code;
    }
    return GRPC_STATUS_OK;
  }
  pthread_mutex_lock(&ps->mu);
  ps->pending_ops++;
  pthread_mutex_unlock(&ps->mu);
  grpc_status_code c = trb_db_run(ps->db, admin_apply, op, st);
  if (c == GRPC_STATUS_OK) {
    ps_lock(ps);
    c = admin_commit(op, st);
    ps_unlock(ps);
  }
  ps_op_finished(ps);
  admin_op_free(op);
  return c;
}

static admin_op_t *admin_op_new(trb_psemu_t *ps, trb_rpc_server_call_t *call,
                                int kind, const char *name) {
  admin_op_t *op = trb_calloc(1, sizeof(*op));
  if (op == NULL) return NULL;
  op->ps = ps;
  op->call = call;
  op->kind = kind;
  op->name = trb_strdup(name);
  if (op->name == NULL) {
    trb_free(op);
    return NULL;
  }
  return op;
}

static grpc_status_code fail_call(trb_rpc_server_call_t *call,
                                  trb_status_t *st) {
  if (call) finish_st(call, st);
  return st->code;
}

/* ---- topics ------------------------------------------------------------------ */

static grpc_status_code create_topic(trb_psemu_t *ps,
                                     trb_rpc_server_call_t *call,
                                     const google_pubsub_v1_Topic *t,
                                     trb_status_t *st) {
  if (trb_ps_name_parse(t->name, "topics", "topic", NULL, NULL, NULL, st) !=
      GRPC_STATUS_OK) {
    return fail_call(call, st);
  }
  ps_lock(ps);
  bool exists = ps_topic_find(ps, t->name) != NULL;
  ps_unlock(ps);
  if (exists) {
    trb_status_set(st, GRPC_STATUS_ALREADY_EXISTS, "Topic already exists: %s",
                   t->name);
    return fail_call(call, st);
  }
  admin_op_t *op = admin_op_new(ps, call, OP_CREATE_TOPIC, t->name);
  google_pubsub_v1_Topic copy = *t;
  copy.state = google_pubsub_v1_Topic_State_ACTIVE;
  if (op == NULL || trb_pb_encode(google_pubsub_v1_Topic_fields, &copy,
                                  &op->proto, &op->proto_len,
                                  st) != GRPC_STATUS_OK) {
    if (op) admin_op_free(op);
    trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "create topic: oom");
    return fail_call(call, st);
  }
  return admin_run(op, st);
}

grpc_status_code trb_psemu_create_topic(trb_psemu_t *ps,
                                        const google_pubsub_v1_Topic *topic,
                                        trb_status_t *st) {
  return create_topic(ps, NULL, topic, st);
}

static void on_create_topic(void *user, trb_rpc_server_call_t *call,
                            const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_Topic t = google_pubsub_v1_Topic_init_zero;
  if (!decode(call, google_pubsub_v1_Topic_fields, req, len, &t)) return;
  trb_status_t st;
  create_topic(ps, call, &t, &st);
  trb_pb_release(google_pubsub_v1_Topic_fields, &t);
}

static void on_get_topic(void *user, trb_rpc_server_call_t *call,
                         const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_GetTopicRequest r = google_pubsub_v1_GetTopicRequest_init_zero;
  if (!decode(call, google_pubsub_v1_GetTopicRequest_fields, req, len, &r)) return;
  trb_status_t st;
  if (trb_ps_name_parse(r.topic, "topics", "topic", NULL, NULL, NULL, &st) !=
      GRPC_STATUS_OK) {
    finish_st(call, &st);
  } else {
    ps_lock(ps);
    ps_topic_t *t = ps_topic_find(ps, r.topic);
    if (t) {
      finish_bytes(call, t->proto, t->proto_len);
    } else {
      trb_rpc_server_call_finish(call, GRPC_STATUS_NOT_FOUND,
                                 "Resource not found (resource=topic).", NULL,
                                 0, NULL, 0);
    }
    ps_unlock(ps);
  }
  trb_pb_release(google_pubsub_v1_GetTopicRequest_fields, &r);
}

static void on_delete_topic(void *user, trb_rpc_server_call_t *call,
                            const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_DeleteTopicRequest r =
      google_pubsub_v1_DeleteTopicRequest_init_zero;
  if (!decode(call, google_pubsub_v1_DeleteTopicRequest_fields, req, len, &r)) return;
  trb_status_t st;
  if (trb_ps_name_parse(r.topic, "topics", "topic", NULL, NULL, NULL, &st) ==
      GRPC_STATUS_OK) {
    ps_lock(ps);
    bool found = ps_topic_find(ps, r.topic) != NULL;
    ps_unlock(ps);
    if (!found) {
      trb_rpc_server_call_finish(call, GRPC_STATUS_NOT_FOUND,
                                 "Resource not found (resource=topic).", NULL,
                                 0, NULL, 0);
    } else {
      admin_op_t *op = admin_op_new(ps, call, OP_DELETE_TOPIC, r.topic);
      if (op) {
        admin_run(op, &st);
      } else {
        trb_rpc_server_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom",
                                   NULL, 0, NULL, 0);
      }
    }
  } else {
    finish_st(call, &st);
  }
  trb_pb_release(google_pubsub_v1_DeleteTopicRequest_fields, &r);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Validate "projects/{p}" and return the prefix "projects/{p}/<kind>/". */
static bool project_prefix(const char *project, const char *kind, char *out,
                           size_t out_len, trb_status_t *st) {
  if (project == NULL || strncmp(project, "projects/", 9) != 0 ||
      project[9] == '\0' || strchr(project + 9, '/') != NULL) {
    trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                   "project: invalid resource name \"%s\": expected "
                   "projects/{project}",
                   project ? project : "");
    return false;
  }
  snprintf(out, out_len, "%s/%s/", project, kind);
  return true;
}

/* Page over `names` (sorted in place, borrowed): indexes [*start, *end). */
static void page(const char **names, size_t n, int32_t page_size,
                 const char *token, size_t *start, size_t *end) {
  qsort(names, n, sizeof(*names), cmp_str);
  size_t i = 0;
  if (token && token[0]) {
    while (i < n && strcmp(names[i], token) <= 0) i++;
  }
  size_t ps_ = page_size > 0 ? (size_t)page_size : 1000;
  *start = i;
  *end = (n - i > ps_) ? i + ps_ : n;
}

static void on_list_topics(void *user, trb_rpc_server_call_t *call,
                           const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_ListTopicsRequest r =
      google_pubsub_v1_ListTopicsRequest_init_zero;
  if (!decode(call, google_pubsub_v1_ListTopicsRequest_fields, req, len, &r)) return;
  trb_status_t st;
  char prefix[512];
  if (!project_prefix(r.project, "topics", prefix, sizeof(prefix), &st)) {
    finish_st(call, &st);
    trb_pb_release(google_pubsub_v1_ListTopicsRequest_fields, &r);
    return;
  }
  size_t pl = strlen(prefix);
  trb_buf_t b = TRB_BUF_INIT;
  ps_lock(ps);
  const char **names = trb_calloc(ps->n_topics + 1, sizeof(*names));
  size_t n = 0;
  for (size_t i = 0; names && i < ps->n_topics; i++) {
    if (strncmp(ps->topics[i]->name, prefix, pl) == 0) {
      names[n++] = ps->topics[i]->name;
    }
  }
  size_t a = 0, e = 0;
  if (names) page(names, n, r.page_size, r.page_token, &a, &e);
  for (size_t i = a; i < e; i++) {
    ps_topic_t *t = ps_topic_find(ps, names[i]);
    trb_ps_wire_bytes(&b, 1, t->proto, t->proto_len);
  }
  if (e < n) trb_ps_wire_bytes(&b, 2, names[e - 1], strlen(names[e - 1]));
  ps_unlock(ps);
  trb_free(names);
  finish_bytes(call, b.data, b.len);
  trb_buf_deinit(&b);
  trb_pb_release(google_pubsub_v1_ListTopicsRequest_fields, &r);
}

static void on_list_topic_subs(void *user, trb_rpc_server_call_t *call,
                               const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_ListTopicSubscriptionsRequest r =
      google_pubsub_v1_ListTopicSubscriptionsRequest_init_zero;
  if (!decode(call, google_pubsub_v1_ListTopicSubscriptionsRequest_fields, req,
              len, &r)) {
    return;
  }
  trb_status_t st;
  if (trb_ps_name_parse(r.topic, "topics", "topic", NULL, NULL, NULL, &st) !=
      GRPC_STATUS_OK) {
    finish_st(call, &st);
    trb_pb_release(google_pubsub_v1_ListTopicSubscriptionsRequest_fields, &r);
    return;
  }
  ps_lock(ps);
  ps_topic_t *t = ps_topic_find(ps, r.topic);
  if (t == NULL) {
    ps_unlock(ps);
    trb_rpc_server_call_finish(call, GRPC_STATUS_NOT_FOUND,
                               "Resource not found (resource=topic).", NULL, 0,
                               NULL, 0);
    trb_pb_release(google_pubsub_v1_ListTopicSubscriptionsRequest_fields, &r);
    return;
  }
  trb_buf_t b = TRB_BUF_INIT;
  const char **names = trb_calloc(t->n_subs + 1, sizeof(*names));
  size_t n = 0;
  for (size_t i = 0; names && i < t->n_subs; i++) {
    if (!t->subs[i]->deleted) names[n++] = t->subs[i]->name;
  }
  size_t a = 0, e = 0;
  if (names) page(names, n, r.page_size, r.page_token, &a, &e);
  for (size_t i = a; i < e; i++) {
    trb_ps_wire_bytes(&b, 1, names[i], strlen(names[i]));
  }
  if (e < n) trb_ps_wire_bytes(&b, 2, names[e - 1], strlen(names[e - 1]));
  ps_unlock(ps);
  trb_free(names);
  finish_bytes(call, b.data, b.len);
  trb_buf_deinit(&b);
  trb_pb_release(google_pubsub_v1_ListTopicSubscriptionsRequest_fields, &r);
}

/* ---- subscriptions --------------------------------------------------------------- */

static grpc_status_code create_sub(trb_psemu_t *ps,
                                   trb_rpc_server_call_t *call,
                                   const google_pubsub_v1_Subscription *in,
                                   trb_status_t *st) {
  google_pubsub_v1_Subscription p = *in; /* shallow: pointers borrowed */
  ps_lock(ps);
  grpc_status_code c = validate_sub(ps, &p, true, st);
  if (c == GRPC_STATUS_OK && ps_sub_find(ps, p.name) != NULL) {
    c = trb_status_set(st, GRPC_STATUS_ALREADY_EXISTS,
                       "Subscription already exists: %s", p.name);
  }
  if (c == GRPC_STATUS_OK && ps_topic_find(ps, p.topic) == NULL) {
    c = trb_status_set(st, GRPC_STATUS_NOT_FOUND,
                       "Resource not found (resource=%s).", p.topic);
  }
  ps_unlock(ps);
  if (c != GRPC_STATUS_OK) return fail_call(call, st);
  admin_op_t *op = admin_op_new(ps, call, OP_CREATE_SUB, p.name);
  if (op == NULL || (op->topic_name = trb_strdup(p.topic)) == NULL ||
      trb_pb_encode(google_pubsub_v1_Subscription_fields, &p, &op->proto,
                    &op->proto_len, st) != GRPC_STATUS_OK) {
    if (op) admin_op_free(op);
    trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "create sub: oom");
    return fail_call(call, st);
  }
  return admin_run(op, st);
}

grpc_status_code trb_psemu_create_subscription(
    trb_psemu_t *ps, const google_pubsub_v1_Subscription *sub,
    trb_status_t *st) {
  return create_sub(ps, NULL, sub, st);
}

static void on_create_sub(void *user, trb_rpc_server_call_t *call,
                          const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_Subscription s = google_pubsub_v1_Subscription_init_zero;
  if (!decode(call, google_pubsub_v1_Subscription_fields, req, len, &s)) return;
  trb_status_t st;
  create_sub(ps, call, &s, &st);
  trb_pb_release(google_pubsub_v1_Subscription_fields, &s);
}

/* The stored proto of `s`, with topic "_deleted-topic_" once its topic is
 * gone. Appends to `b` as field `field` (0 = the bare message). mu held. */
static void sub_proto(ps_sub_t *s, trb_buf_t *b, uint32_t field) {
  if (s->topic != NULL) {
    if (field) {
      trb_ps_wire_bytes(b, field, s->proto, s->proto_len);
    } else {
      trb_buf_append(b, s->proto, s->proto_len);
    }
    return;
  }
  google_pubsub_v1_Subscription p = google_pubsub_v1_Subscription_init_zero;
  trb_status_t st;
  uint8_t *out = NULL;
  size_t n = 0;
  if (trb_pb_decode(google_pubsub_v1_Subscription_fields, s->proto,
                    s->proto_len, &p, &st) == GRPC_STATUS_OK) {
    char *old = p.topic;
    p.topic = (char *)DELETED_TOPIC;
    if (trb_pb_encode(google_pubsub_v1_Subscription_fields, &p, &out, &n,
                      &st) == GRPC_STATUS_OK) {
      if (field) {
        trb_ps_wire_bytes(b, field, out, n);
      } else {
        trb_buf_append(b, out, n);
      }
    }
    trb_free(out);
    p.topic = old;
  }
  trb_pb_release(google_pubsub_v1_Subscription_fields, &p);
}

static void not_found_sub(trb_rpc_server_call_t *call) {
  trb_rpc_server_call_finish(call, GRPC_STATUS_NOT_FOUND,
                             "Resource not found (resource=subscription).",
                             NULL, 0, NULL, 0);
}

static void on_get_sub(void *user, trb_rpc_server_call_t *call,
                       const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_GetSubscriptionRequest r =
      google_pubsub_v1_GetSubscriptionRequest_init_zero;
  if (!decode(call, google_pubsub_v1_GetSubscriptionRequest_fields, req, len, &r)) return;
  trb_status_t st;
  if (trb_ps_name_parse(r.subscription, "subscriptions", "subscription", NULL,
                        NULL, NULL, &st) != GRPC_STATUS_OK) {
    finish_st(call, &st);
  } else {
    trb_buf_t b = TRB_BUF_INIT;
    ps_lock(ps);
    ps_sub_t *s = ps_sub_find(ps, r.subscription);
    if (s) sub_proto(s, &b, 0);
    ps_unlock(ps);
    if (s) {
      finish_bytes(call, b.data, b.len);
    } else {
      not_found_sub(call);
    }
    trb_buf_deinit(&b);
  }
  trb_pb_release(google_pubsub_v1_GetSubscriptionRequest_fields, &r);
}

#define SWAP(a, b)          \
  do {                      \
    __typeof__(a) tmp_ = a; \
    a = b;                  \
    b = tmp_;               \
  } while (0)

/* Move the fields named in `mask` from `in` into `cur` (swapping owned
 * pointers, so both structs stay releasable). */
static grpc_status_code apply_mask(google_pubsub_v1_Subscription *cur,
                                   google_pubsub_v1_Subscription *in,
                                   const google_protobuf_FieldMask *mask,
                                   trb_status_t *st) {
  if (mask->paths_count == 0) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "update_mask must name at least one field");
  }
  for (pb_size_t i = 0; i < mask->paths_count; i++) {
    const char *f = mask->paths[i];
    if (strcmp(f, "ack_deadline_seconds") == 0) {
      cur->ack_deadline_seconds = in->ack_deadline_seconds;
    } else if (strcmp(f, "labels") == 0) {
      SWAP(cur->labels_count, in->labels_count);
      SWAP(cur->labels, in->labels);
    } else if (strcmp(f, "dead_letter_policy") == 0) {
      SWAP(cur->has_dead_letter_policy, in->has_dead_letter_policy);
      SWAP(cur->dead_letter_policy, in->dead_letter_policy);
    } else if (strcmp(f, "retry_policy") == 0) {
      SWAP(cur->has_retry_policy, in->has_retry_policy);
      SWAP(cur->retry_policy, in->retry_policy);
    } else if (strcmp(f, "push_config") == 0) {
      SWAP(cur->has_push_config, in->has_push_config);
      SWAP(cur->push_config, in->push_config);
    } else if (strcmp(f, "retain_acked_messages") == 0) {
      cur->retain_acked_messages = in->retain_acked_messages;
    } else if (strcmp(f, "message_retention_duration") == 0) {
      cur->has_message_retention_duration = in->has_message_retention_duration;
      cur->message_retention_duration = in->message_retention_duration;
    } else if (strcmp(f, "expiration_policy") == 0) {
      cur->has_expiration_policy = in->has_expiration_policy;
      cur->expiration_policy = in->expiration_policy;
    } else if (strcmp(f, "enable_exactly_once_delivery") == 0) {
      cur->enable_exactly_once_delivery = in->enable_exactly_once_delivery;
    } else if (strcmp(f, "detached") == 0) {
      cur->detached = in->detached;
    } else {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "update_mask: field \"%s\" cannot be updated", f);
    }
  }
  return GRPC_STATUS_OK;
}

static void on_update_sub(void *user, trb_rpc_server_call_t *call,
                          const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_UpdateSubscriptionRequest r =
      google_pubsub_v1_UpdateSubscriptionRequest_init_zero;
  if (!decode(call, google_pubsub_v1_UpdateSubscriptionRequest_fields, req,
              len, &r)) {
    return;
  }
  google_pubsub_v1_Subscription cur = google_pubsub_v1_Subscription_init_zero;
  trb_status_t st;
  grpc_status_code c = GRPC_STATUS_OK;
  admin_op_t *op = NULL;
  if (!r.has_subscription) {
    c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                       "subscription is required");
  } else if (!r.has_update_mask) {
    c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                       "update_mask is required");
  } else {
    c = trb_ps_name_parse(r.subscription.name, "subscriptions",
                          "subscription", NULL, NULL, NULL, &st);
  }
  if (c == GRPC_STATUS_OK) {
    ps_lock(ps);
    ps_sub_t *s = ps_sub_find(ps, r.subscription.name);
    if (s == NULL) {
      c = trb_status_set(&st, GRPC_STATUS_NOT_FOUND,
                         "Resource not found (resource=subscription).");
    } else {
      c = trb_pb_decode(google_pubsub_v1_Subscription_fields, s->proto,
                        s->proto_len, &cur, &st);
    }
    if (c == GRPC_STATUS_OK) c = apply_mask(&cur, &r.subscription, &r.update_mask, &st);
    if (c == GRPC_STATUS_OK) c = validate_sub(ps, &cur, false, &st);
    ps_unlock(ps);
  }
  if (c == GRPC_STATUS_OK) {
    op = admin_op_new(ps, call, OP_UPDATE_SUB, r.subscription.name);
    if (op == NULL ||
        trb_pb_encode(google_pubsub_v1_Subscription_fields, &cur, &op->proto,
                      &op->proto_len, &st) != GRPC_STATUS_OK) {
      c = trb_status_set(&st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
      if (op) admin_op_free(op);
      op = NULL;
    }
  }
  trb_pb_release(google_pubsub_v1_Subscription_fields, &cur);
  trb_pb_release(google_pubsub_v1_UpdateSubscriptionRequest_fields, &r);
  if (c != GRPC_STATUS_OK) {
    finish_st(call, &st);
  } else {
    admin_run(op, &st);
  }
}

static void on_list_subs(void *user, trb_rpc_server_call_t *call,
                         const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_ListSubscriptionsRequest r =
      google_pubsub_v1_ListSubscriptionsRequest_init_zero;
  if (!decode(call, google_pubsub_v1_ListSubscriptionsRequest_fields, req, len,
              &r)) {
    return;
  }
  trb_status_t st;
  char prefix[512];
  if (!project_prefix(r.project, "subscriptions", prefix, sizeof(prefix), &st)) {
    finish_st(call, &st);
    trb_pb_release(google_pubsub_v1_ListSubscriptionsRequest_fields, &r);
    return;
  }
  size_t pl = strlen(prefix);
  trb_buf_t b = TRB_BUF_INIT;
  ps_lock(ps);
  const char **names = trb_calloc(ps->n_subs + 1, sizeof(*names));
  size_t n = 0;
  for (size_t i = 0; names && i < ps->n_subs; i++) {
    if (strncmp(ps->subs[i]->name, prefix, pl) == 0) {
      names[n++] = ps->subs[i]->name;
    }
  }
  size_t a = 0, e = 0;
  if (names) page(names, n, r.page_size, r.page_token, &a, &e);
  for (size_t i = a; i < e; i++) sub_proto(ps_sub_find(ps, names[i]), &b, 1);
  if (e < n) trb_ps_wire_bytes(&b, 2, names[e - 1], strlen(names[e - 1]));
  ps_unlock(ps);
  trb_free(names);
  finish_bytes(call, b.data, b.len);
  trb_buf_deinit(&b);
  trb_pb_release(google_pubsub_v1_ListSubscriptionsRequest_fields, &r);
}

static void on_delete_sub(void *user, trb_rpc_server_call_t *call,
                          const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  google_pubsub_v1_DeleteSubscriptionRequest r =
      google_pubsub_v1_DeleteSubscriptionRequest_init_zero;
  if (!decode(call, google_pubsub_v1_DeleteSubscriptionRequest_fields, req,
              len, &r)) {
    return;
  }
  trb_status_t st;
  if (trb_ps_name_parse(r.subscription, "subscriptions", "subscription", NULL,
                        NULL, NULL, &st) != GRPC_STATUS_OK) {
    finish_st(call, &st);
  } else {
    ps_lock(ps);
    ps_sub_t *s = ps_sub_find(ps, r.subscription);
    if (s && !s->deleted) s->refs++;
    ps_unlock(ps);
    if (s == NULL || s->deleted) {
      not_found_sub(call);
    } else {
      admin_op_t *op = admin_op_new(ps, call, OP_DELETE_SUB, r.subscription);
      if (op == NULL) {
        ps_lock(ps);
        ps_sub_unref(ps, s);
        ps_unlock(ps);
        trb_rpc_server_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom",
                                   NULL, 0, NULL, 0);
      } else {
        op->sub = s;
        admin_run(op, &st);
      }
    }
  }
  trb_pb_release(google_pubsub_v1_DeleteSubscriptionRequest_fields, &r);
}

grpc_status_code ps_admin_register(trb_psemu_t *ps, trb_rpc_server_t *srv,
                                   trb_status_t *st) {
  static const struct {
    const char *method;
    trb_rpc_unary_handler_cb cb;
  } kMethods[] = {
      {"/google.pubsub.v1.Publisher/CreateTopic", on_create_topic},
      {"/google.pubsub.v1.Publisher/GetTopic", on_get_topic},
      {"/google.pubsub.v1.Publisher/ListTopics", on_list_topics},
      {"/google.pubsub.v1.Publisher/DeleteTopic", on_delete_topic},
      {"/google.pubsub.v1.Publisher/ListTopicSubscriptions", on_list_topic_subs},
      {"/google.pubsub.v1.Subscriber/CreateSubscription", on_create_sub},
      {"/google.pubsub.v1.Subscriber/GetSubscription", on_get_sub},
      {"/google.pubsub.v1.Subscriber/UpdateSubscription", on_update_sub},
      {"/google.pubsub.v1.Subscriber/ListSubscriptions", on_list_subs},
      {"/google.pubsub.v1.Subscriber/DeleteSubscription", on_delete_sub},
  };
  for (size_t i = 0; i < sizeof(kMethods) / sizeof(kMethods[0]); i++) {
    grpc_status_code c = trb_rpc_server_add_unary(srv, kMethods[i].method,
                                                  kMethods[i].cb, ps, st);
    if (c != GRPC_STATUS_OK) return c;
  }
  return GRPC_STATUS_OK;
}
