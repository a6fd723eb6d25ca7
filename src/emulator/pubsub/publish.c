/* publish.c — Publish (validation, message ids, one db op per request) and
 * dead-lettering, which publishes to the dead-letter topic and removes the
 * source row in the same transaction. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <pb_encode.h>

#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/common/log.h"
#include "src/emulator/pubsub/ps_internal.h"
#include "src/rpc/pb.h"

/** One publish into one topic (a Publish RPC or a dead-lettered message). */
typedef struct pub_op_s {
  ps_deferred_t def;          /* for ps_defer (dead letters) */
  trb_psemu_t *ps;
  trb_rpc_server_call_t *call;/* Publish to answer, or NULL */
  char *topic;                /* owned */
  size_t n;
  ps_msg_t **msgs;            /* n, owned until handed to subscriptions */
  const char ***keys, ***values; /* per message attributes (filters) */
  size_t *n_attrs;
  ps_sub_t **subs;            /* snapshot taken in apply (refs held) */
  size_t n_subs;
  uint8_t *match;             /* n_subs * n: message j goes to sub i */
  int64_t last_seq;
  /* dead letter: the source row to delete */
  int64_t src_sub_id, src_seq, src_gc;
  ps_msg_t *src_msg;          /* ref held until done (restored on failure) */
  int src_attempts;
  char *strs;                 /* owned strings behind keys/values (DLQ) */
  google_pubsub_v1_PublishRequest req; /* decoded request (Publish) */
  bool has_req;
} pub_op_t;

static void pub_op_free(pub_op_t *op) {
  for (size_t i = 0; i < op->n; i++) {
    if (op->msgs && op->msgs[i] && op->msgs[i]->refs == 0) trb_free(op->msgs[i]);
  }
  trb_free(op->msgs);
  if (op->keys) {
    for (size_t i = 0; i < op->n; i++) {
      trb_free(op->keys[i]);
      trb_free(op->values[i]);
    }
  }
  trb_free(op->keys);
  trb_free(op->values);
  trb_free(op->n_attrs);
  trb_free(op->subs);
  trb_free(op->match);
  trb_free(op->topic);
  trb_free(op->strs);
  if (op->has_req) {
    trb_pb_release(google_pubsub_v1_PublishRequest_fields, &op->req);
  }
  trb_free(op);
}

static pub_op_t *pub_op_new(trb_psemu_t *ps, const char *topic, size_t n) {
  pub_op_t *op = trb_calloc(1, sizeof(*op));
  if (op == NULL) return NULL;
  op->ps = ps;
  op->n = n;
  op->topic = trb_strdup(topic);
  op->msgs = trb_calloc(n, sizeof(*op->msgs));
  op->keys = trb_calloc(n, sizeof(*op->keys));
  op->values = trb_calloc(n, sizeof(*op->values));
  op->n_attrs = trb_calloc(n, sizeof(*op->n_attrs));
  if (!op->topic || !op->msgs || !op->keys || !op->values || !op->n_attrs) {
    pub_op_free(op);
    return NULL;
  }
  return op;
}

/* Encode `m` with server fields into a new ps_msg_t. */
static ps_msg_t *encode_msg(google_pubsub_v1_PubsubMessage *m, int64_t seq,
                            int64_t now_us) {
  char id[24];
  snprintf(id, sizeof(id), "%" PRId64, seq);
  char *old_id = m->message_id;
  bool old_has = m->has_publish_time;
  google_protobuf_Timestamp old_ts = m->publish_time;
  m->message_id = id;
  m->has_publish_time = true;
  m->publish_time.seconds = now_us / 1000000;
  m->publish_time.nanos = (int32_t)(now_us % 1000000) * 1000;
  size_t size = 0;
  ps_msg_t *out = NULL;
  if (pb_get_encoded_size(&size, google_pubsub_v1_PubsubMessage_fields, m)) {
    const char *k = (m->ordering_key && m->ordering_key[0]) ? m->ordering_key
                                                            : NULL;
    size_t kl = k ? strlen(k) + 1 : 0;
    out = trb_malloc(sizeof(*out) + size + kl);
    if (out) {
      pb_ostream_t os = pb_ostream_from_buffer(out->data, size);
      if (!pb_encode(&os, google_pubsub_v1_PubsubMessage_fields, m)) {
        trb_free(out);
        out = NULL;
      } else {
        out->seq = seq;
        out->refs = 0;
        out->publish_us = now_us;
        out->body = out->data;
        out->body_len = os.bytes_written;
        out->okey = NULL;
        if (k) {
          memcpy(out->data + size, k, kl);
          out->okey = (const char *)out->data + size;
        }
      }
    }
  }
  m->message_id = old_id;
  m->has_publish_time = old_has;
  m->publish_time = old_ts;
  return out;
}

static bool matches(const ps_sub_t *s, const pub_op_t *op, size_t j) {
  if (s->filter) {
    return trb_ps_filter_match(s->filter, op->keys[j], op->values[j],
                               op->n_attrs[j]);
  }
  return true;
}

/* Multi-row INSERT statements: one step stores PS_ROWS_PER_STMT rows
 * (fewer VDBE programs per message on the committer thread). */
#define PS_ROWS_PER_STMT 64
static char g_ins_msg[PS_ROWS_PER_STMT * 24 + 96];
static char g_ins_unacked[PS_ROWS_PER_STMT * 16 + 64];
static pthread_once_t g_ins_once = PTHREAD_ONCE_INIT;

static void build_inserts(void) {
  size_t l = (size_t)snprintf(g_ins_msg, sizeof(g_ins_msg),
                              "INSERT INTO ps_messages(seq, publish_us, okey,"
                              " body) VALUES");
  for (int i = 0; i < PS_ROWS_PER_STMT; i++) {
    l += (size_t)snprintf(g_ins_msg + l, sizeof(g_ins_msg) - l, "%s(?,?,?,?)",
                          i ? "," : "");
  }
  l = (size_t)snprintf(g_ins_unacked, sizeof(g_ins_unacked),
                       "INSERT INTO ps_unacked(sub_id, seq) VALUES");
  for (int i = 0; i < PS_ROWS_PER_STMT; i++) {
    l += (size_t)snprintf(g_ins_unacked + l, sizeof(g_ins_unacked) - l,
                          "%s(?,?)", i ? "," : "");
  }
}

static void bind_msg(sqlite3_stmt *q, int base, const ps_msg_t *m) {
  sqlite3_bind_int64(q, base + 1, m->seq);
  sqlite3_bind_int64(q, base + 2, m->publish_us);
  if (m->okey) {
    sqlite3_bind_text(q, base + 3, m->okey, -1, SQLITE_STATIC);
  } else {
    sqlite3_bind_null(q, base + 3);
  }
  sqlite3_bind_blob(q, base + 4, m->body, (int)m->body_len, SQLITE_STATIC);
}

static grpc_status_code step_done(trb_db_t *db, sqlite3_stmt *q,
                                  const char *what, trb_status_t *st) {
  int rc = sqlite3_step(q);
  sqlite3_reset(q);
  if (rc != SQLITE_DONE) return trb_db_error(db, what, st);
  return GRPC_STATUS_OK;
}

static bool taken(const pub_op_t *op, size_t j) {
  for (size_t k = 0; k < op->n_subs; k++) {
    if (op->match[k * op->n + j]) return true;
  }
  return false;
}

/* Insert the op's message rows (those some subscription takes) and its
 * unacked rows, in sequence order, PS_ROWS_PER_STMT rows per step. */
static grpc_status_code insert_rows(trb_db_t *db, const pub_op_t *op,
                                    trb_status_t *st) {
  pthread_once(&g_ins_once, build_inserts);
  sqlite3_stmt *im1 = trb_db_stmt(
      db,
      "INSERT INTO ps_messages(seq, publish_us, okey, body) VALUES(?1,?2,?3,?4)",
      st);
  sqlite3_stmt *iu1 =
      trb_db_stmt(db, "INSERT INTO ps_unacked(sub_id, seq) VALUES(?1, ?2)", st);
  sqlite3_stmt *imn = trb_db_stmt(db, g_ins_msg, st);
  sqlite3_stmt *iun = trb_db_stmt(db, g_ins_unacked, st);
  if (im1 == NULL || iu1 == NULL || imn == NULL || iun == NULL) {
    return st->code;
  }
  grpc_status_code c;
  /* Unacked rows, subscription by subscription (appends per sub_id); the
   * first `full` rows go in whole multi-row steps, the rest one by one. */
  size_t total = 0;
  for (size_t i = 0; i < op->n_subs * op->n; i++) total += op->match[i] != 0;
  size_t full = total - total % PS_ROWS_PER_STMT, r = 0;
  for (size_t k = 0; k < op->n_subs; k++) {
    for (size_t j = 0; j < op->n; j++) {
      if (!op->match[k * op->n + j]) continue;
      sqlite3_stmt *q = r < full ? iun : iu1;
      int base = r < full ? (int)(r % PS_ROWS_PER_STMT) * 2 : 0;
      sqlite3_bind_int64(q, base + 1, op->subs[k]->id);
      sqlite3_bind_int64(q, base + 2, op->msgs[j]->seq);
      r++;
      if (q == iu1 || r % PS_ROWS_PER_STMT == 0) {
        if ((c = step_done(db, q, "insert unacked", st)) != GRPC_STATUS_OK) {
          return c;
        }
      }
    }
  }
  /* Message rows: bodies some subscription takes. */
  total = 0;
  for (size_t j = 0; j < op->n; j++) total += taken(op, j);
  full = total - total % PS_ROWS_PER_STMT;
  r = 0;
  for (size_t j = 0; j < op->n; j++) {
    if (!taken(op, j)) continue;
    sqlite3_stmt *q = r < full ? imn : im1;
    bind_msg(q, r < full ? (int)(r % PS_ROWS_PER_STMT) * 4 : 0, op->msgs[j]);
    r++;
    if (q == im1 || r % PS_ROWS_PER_STMT == 0) {
      if ((c = step_done(db, q, "insert message", st)) != GRPC_STATUS_OK) {
        return c;
      }
    }
  }
  return GRPC_STATUS_OK;
}

static grpc_status_code pub_apply(trb_db_t *db, sqlite3 *conn, void *user,
                                  trb_status_t *st) {
  (void)conn;
  pub_op_t *op = user;
  trb_psemu_t *ps = op->ps;
  ps_lock(ps);
  ps_topic_t *t = ps_topic_find(ps, op->topic);
  if (t == NULL || t->deleted) {
    ps_unlock(ps);
    return trb_status_set(st, GRPC_STATUS_NOT_FOUND,
                          "Resource not found (resource=%s).", op->topic);
  }
  op->subs = trb_calloc(t->n_subs + 1, sizeof(*op->subs));
  op->match = trb_calloc(t->n_subs * op->n + 1, 1);
  if (op->subs == NULL || op->match == NULL) {
    ps_unlock(ps);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "publish: oom");
  }
  for (size_t i = 0; i < t->n_subs; i++) {
    ps_sub_t *s = t->subs[i];
    if (s->deleted) continue;
    s->refs++;
    size_t k = op->n_subs++;
    op->subs[k] = s;
    for (size_t j = 0; j < op->n; j++) op->match[k * op->n + j] = matches(s, op, j);
  }
  ps_unlock(ps);

  sqlite3_stmt *meta = trb_db_stmt(
      db,
      "INSERT INTO ps_meta(k, v) VALUES('next_seq', ?1) ON CONFLICT(k) DO "
      "UPDATE SET v = max(v, excluded.v)",
      st);
  if (meta == NULL) return st->code;
  grpc_status_code c = insert_rows(db, op, st);
  if (c != GRPC_STATUS_OK) return c;
  sqlite3_bind_int64(meta, 1, op->last_seq + 1);
  int rc = sqlite3_step(meta);
  sqlite3_reset(meta);
  if (rc != SQLITE_DONE) return trb_db_error(db, "update next_seq", st);
  if (op->src_sub_id > 0) {
    int64_t gc = op->src_gc;
    return ps_store_delete(db, op->src_sub_id, &op->src_seq, 1, &gc,
                           gc > 0 ? 1 : 0, st);
  }
  return GRPC_STATUS_OK;
}

/* Decimal text of seq (> 0) into out[24], as "%" PRId64 would. */
static size_t format_seq(int64_t seq, char *out) {
  char tmp[24];
  size_t n = 0;
  uint64_t v = (uint64_t)seq;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

static void pub_done(void *user, grpc_status_code code,
                     const trb_status_t *dst) {
  pub_op_t *op = user;
  trb_psemu_t *ps = op->ps;
  trb_buf_t b = TRB_BUF_INIT;
  char id[24];
  ps_lock(ps);
  for (size_t k = 0; k < op->n_subs; k++) {
    ps_sub_t *s = op->subs[k];
    if (code == GRPC_STATUS_OK && !s->deleted) {
      for (size_t j = 0; j < op->n; j++) {
        if (op->match[k * op->n + j]) ps_sub_add(ps, s, op->msgs[j], 0);
      }
      ps_dispatch(ps, s);
    }
    ps_sub_unref(ps, s);
  }
  /* Messages taken by subscriptions belong to their entries now (and may
   * be acked and freed once mu is released); the rest die with the op. */
  for (size_t j = 0; j < op->n; j++) {
    if (op->call != NULL && code == GRPC_STATUS_OK) {
      size_t l = format_seq(op->msgs[j]->seq, id);
      trb_ps_wire_bytes(&b, 1, id, l);
    }
    if (op->msgs[j]->refs > 0) op->msgs[j] = NULL;
  }
  ps_unlock(ps);
  if (op->call != NULL) {
    if (code != GRPC_STATUS_OK) {
      trb_rpc_server_call_finish(op->call, code, dst->msg, NULL, 0, NULL, 0);
    } else {
      trb_rpc_server_call_finish(op->call, GRPC_STATUS_OK, NULL, NULL, 0,
                                 b.data ? b.data : "", b.len);
    }
  } else if (code != GRPC_STATUS_OK) {
    TRB_LOG(TRB_LOG_WARNING, PS_LOG, "dead-letter publish to %s failed: %s",
            op->topic, dst->msg);
  }
  if (op->src_msg != NULL) {
    ps_lock(ps);
    if (code != GRPC_STATUS_OK) {
      /* The source row is still in the db: deliver it again (it is
       * dead-lettered at its next nack or expiry if the topic is back). */
      for (size_t i = 0; i < ps->n_subs; i++) {
        ps_sub_t *s = ps->subs[i];
        if (s->id != op->src_sub_id || s->deleted) continue;
        if (ps_map_get(&s->entries, op->src_seq) == NULL &&
            ps_sub_add(ps, s, op->src_msg, op->src_attempts) == 0) {
          ps_dispatch(ps, s);
        }
        break;
      }
    }
    ps_msg_unref(op->src_msg);
    ps_unlock(ps);
  }
  trb_buf_deinit(&b);
  pub_op_free(op);
  ps_op_finished(ps);
}

static grpc_status_code check_message(const google_pubsub_v1_PubsubMessage *m,
                                      size_t i, trb_status_t *st) {
  if (m->data.len == 0 && m->attributes_count == 0) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "messages[%zu]: a message must contain data or at "
                          "least one attribute",
                          i);
  }
  if (m->attributes_count > PS_MAX_ATTRIBUTES) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "messages[%zu]: %u attributes, at most %d are allowed",
                          i, (unsigned)m->attributes_count, PS_MAX_ATTRIBUTES);
  }
  for (pb_size_t a = 0; a < m->attributes_count; a++) {
    const char *k = m->attributes[a].key ? m->attributes[a].key : "";
    const char *v = m->attributes[a].value ? m->attributes[a].value : "";
    if (k[0] == '\0') {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "messages[%zu]: attribute keys must not be empty", i);
    }
    if (strlen(k) > PS_MAX_KEY_BYTES) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "messages[%zu]: attribute key is longer than %d "
                            "bytes",
                            i, PS_MAX_KEY_BYTES);
    }
    if (strlen(v) > PS_MAX_VALUE_BYTES) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "messages[%zu]: value of attribute \"%.64s\" is "
                            "longer than %d bytes",
                            i, k, PS_MAX_VALUE_BYTES);
    }
  }
  if (m->ordering_key && strlen(m->ordering_key) > PS_MAX_ORDERING_KEY_BYTES) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "messages[%zu]: ordering_key is longer than %d bytes",
                          i, PS_MAX_ORDERING_KEY_BYTES);
  }
  return GRPC_STATUS_OK;
}

static const char *okey_of(const google_pubsub_v1_PubsubMessage *m) {
  return m->ordering_key ? m->ordering_key : "";
}

static void on_publish(void *user, trb_rpc_server_call_t *call,
                       const uint8_t *req, size_t len) {
  trb_psemu_t *ps = user;
  if (ps_fault(ps, call, true)) return;
  trb_status_t st = {0};
  if (len > PS_MAX_REQUEST_BYTES) {
    trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                   "request is %zu bytes, larger than the limit of %d bytes",
                   len, PS_MAX_REQUEST_BYTES);
    trb_rpc_server_call_finish(call, st.code, st.msg, NULL, 0, NULL, 0);
    return;
  }
  google_pubsub_v1_PublishRequest r = google_pubsub_v1_PublishRequest_init_zero;
  grpc_status_code c =
      trb_pb_decode(google_pubsub_v1_PublishRequest_fields, req, len, &r, &st);
  if (c == GRPC_STATUS_OK) {
    c = trb_ps_name_parse(r.topic, "topics", "topic", NULL, NULL, NULL, &st);
  }
  if (c == GRPC_STATUS_OK && r.messages_count == 0) {
    c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                       "the request must contain at least one message");
  }
  if (c == GRPC_STATUS_OK && r.messages_count > PS_MAX_MESSAGES) {
    c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                       "%u messages in one request, at most %d are allowed",
                       (unsigned)r.messages_count, PS_MAX_MESSAGES);
  }
  for (pb_size_t i = 0; c == GRPC_STATUS_OK && i < r.messages_count; i++) {
    c = check_message(&r.messages[i], i, &st);
    /* PROTOCOL.md fact 47: one ordering key per PublishRequest. */
    if (c == GRPC_STATUS_OK &&
        strcmp(okey_of(&r.messages[i]), okey_of(&r.messages[0])) != 0) {
      c = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                         "all messages of one PublishRequest must have the "
                         "same ordering_key");
    }
  }
  int64_t first = 0;
  if (c == GRPC_STATUS_OK) {
    ps_lock(ps);
    ps_topic_t *t = ps_topic_find(ps, r.topic);
    if (t == NULL) {
      c = trb_status_set(&st, GRPC_STATUS_NOT_FOUND,
                         "Resource not found (resource=%s).", r.topic);
    } else {
      first = ps->next_seq;
      ps->next_seq += r.messages_count;
    }
    ps_unlock(ps);
  }
  pub_op_t *op = NULL;
  if (c == GRPC_STATUS_OK) {
    op = pub_op_new(ps, r.topic, r.messages_count);
    int64_t now = trb_clock_wall_us();
    for (size_t j = 0; op && j < op->n; j++) {
      google_pubsub_v1_PubsubMessage *m = &r.messages[j];
      op->msgs[j] = encode_msg(m, first + (int64_t)j, now);
      op->n_attrs[j] = m->attributes_count;
      op->keys[j] = trb_calloc(m->attributes_count + 1, sizeof(char *));
      op->values[j] = trb_calloc(m->attributes_count + 1, sizeof(char *));
      if (!op->msgs[j] || !op->keys[j] || !op->values[j]) {
        pub_op_free(op);
        op = NULL;
        break;
      }
      for (pb_size_t a = 0; a < m->attributes_count; a++) {
        op->keys[j][a] = m->attributes[a].key ? m->attributes[a].key : "";
        op->values[j][a] = m->attributes[a].value ? m->attributes[a].value : "";
      }
    }
    if (op == NULL) {
      c = trb_status_set(&st, GRPC_STATUS_RESOURCE_EXHAUSTED, "publish: oom");
    }
  }
  if (c != GRPC_STATUS_OK) {
    trb_pb_release(google_pubsub_v1_PublishRequest_fields, &r);
    trb_rpc_server_call_finish(call, c, st.msg, NULL, 0, NULL, 0);
    return;
  }
  op->call = call;
  op->last_seq = first + (int64_t)op->n - 1;
  op->req = r; /* attributes stay alive for filters until done */
  op->has_req = true;
  if (ps_submit(ps, pub_apply, pub_done, op, &st) != GRPC_STATUS_OK) {
    pub_op_free(op);
    trb_rpc_server_call_finish(call, st.code, st.msg, NULL, 0, NULL, 0);
  }
}

grpc_status_code ps_publish_register(trb_psemu_t *ps, trb_rpc_server_t *srv,
                                     trb_status_t *st) {
  return trb_rpc_server_add_unary(srv, "/google.pubsub.v1.Publisher/Publish",
                                  on_publish, ps, st);
}

/* ---- dead letters ------------------------------------------------------------ */

void ps_dead_letter(trb_psemu_t *ps, ps_entry_t *e) {
  ps_sub_t *s = e->sub;
  ps_topic_t *t = ps_topic_find(ps, s->dlq_topic);
  google_pubsub_v1_PubsubMessage m = google_pubsub_v1_PubsubMessage_init_zero;
  trb_status_t st;
  pub_op_t *op = NULL;
  google_pubsub_v1_PubsubMessage_AttributesEntry *attrs = NULL;
  if (t == NULL || t->deleted) goto keep;
  if (trb_pb_decode(google_pubsub_v1_PubsubMessage_fields, e->msg->body,
                    e->msg->body_len, &m, &st) != GRPC_STATUS_OK) {
    goto keep;
  }
  op = pub_op_new(ps, t->name, 1);
  size_t n = m.attributes_count + 4;
  attrs = trb_calloc(n, sizeof(*attrs));
  if (op == NULL) goto keep;
  op->strs = trb_malloc(256 + strlen(s->project) + strlen(s->short_id));
  op->keys[0] = trb_calloc(n, sizeof(char *));
  op->values[0] = trb_calloc(n, sizeof(char *));
  if (!attrs || !op->strs || !op->keys[0] || !op->values[0]) goto keep;
  size_t k = 0;
  for (pb_size_t a = 0; a < m.attributes_count; a++) attrs[k++] = m.attributes[a];
  char *p = op->strs;
  char *count = p;
  p += sprintf(p, "%d", e->attempts) + 1;
  char *ptime = p;
  trb_ps_rfc3339(e->msg->publish_us, p, 40);
  p += strlen(p) + 1;
  char *proj = p;
  p += sprintf(p, "%s", s->project) + 1;
  char *sid = p;
  sprintf(p, "%s", s->short_id);
  attrs[k++] = (google_pubsub_v1_PubsubMessage_AttributesEntry){
      (char *)"CloudPubSubDeadLetterSourceDeliveryCount", count};
  attrs[k++] = (google_pubsub_v1_PubsubMessage_AttributesEntry){
      (char *)"CloudPubSubDeadLetterSourceSubscription", sid};
  attrs[k++] = (google_pubsub_v1_PubsubMessage_AttributesEntry){
      (char *)"CloudPubSubDeadLetterSourceSubscriptionProject", proj};
  attrs[k++] = (google_pubsub_v1_PubsubMessage_AttributesEntry){
      (char *)"CloudPubSubDeadLetterSourceTopicPublishTime", ptime};
  for (size_t a = 0; a < k; a++) {
    op->keys[0][a] = attrs[a].key;
    op->values[0][a] = attrs[a].value;
  }
  op->n_attrs[0] = k;
  google_pubsub_v1_PubsubMessage_AttributesEntry *orig = m.attributes;
  pb_size_t orig_n = m.attributes_count;
  m.attributes = attrs;
  m.attributes_count = (pb_size_t)k;
  int64_t seq = ps->next_seq++;
  op->msgs[0] = encode_msg(&m, seq, trb_clock_wall_us());
  m.attributes = orig;
  m.attributes_count = orig_n;
  if (op->msgs[0] == NULL) goto keep;
  /* keys/values point into `attrs` (orig strings die with `m`): copy. */
  {
    size_t total = 0;
    for (size_t a = 0; a < k; a++) {
      total += strlen(attrs[a].key) + strlen(attrs[a].value) + 2;
    }
    char *buf = trb_malloc(total + 1);
    if (buf == NULL) goto keep;
    char *q = buf;
    for (size_t a = 0; a < k; a++) {
      size_t kl = strlen(attrs[a].key) + 1, vl = strlen(attrs[a].value) + 1;
      memcpy(q, attrs[a].key, kl);
      op->keys[0][a] = q;
      q += kl;
      memcpy(q, attrs[a].value, vl);
      op->values[0][a] = q;
      q += vl;
    }
    trb_free(op->strs);
    op->strs = buf;
  }
  trb_free(attrs);
  trb_pb_release(google_pubsub_v1_PubsubMessage_fields, &m);
  op->last_seq = seq;
  op->src_sub_id = s->id;
  op->src_seq = e->msg->seq;
  op->src_attempts = e->attempts;
  /* The op keeps the body until it committed: if the move fails the entry
   * is restored (pub_done). The body row goes with the move only when no
   * other subscription holds it now (one held later is left to the
   * start-up cleanup). */
  op->src_msg = e->msg;
  bool last = e->msg->refs == 1;
  e->msg->refs++;
  ps_entry_finish(ps, e);
  op->src_gc = last ? op->src_seq : 0;
  op->def.apply = pub_apply;
  op->def.done = pub_done;
  op->def.user = op;
  ps_defer(ps, &op->def);
  return;
keep:
  /* No dead-letter topic to move to: keep redelivering. */
  trb_free(attrs);
  trb_pb_release(google_pubsub_v1_PubsubMessage_fields, &m);
  if (op) pub_op_free(op);
  e->state = PS_READY;
  ps_list_push_front(&s->ready_head, &s->ready_tail, e);
  s->n_ready++;
}
