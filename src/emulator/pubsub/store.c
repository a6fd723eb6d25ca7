/* store.c — the Pub/Sub emulator's SQLite layout, start-up loading and the
 * row deletions shared by acks and dead-lettering.
 *
 * Tables:
 *   ps_topics(id, name, proto)          serialized google.pubsub.v1.Topic
 *   ps_subs(id, name, topic_id, proto)  serialized Subscription; topic_id 0
 *                                       once the topic was deleted
 *   ps_messages(seq, publish_us, okey, body)  body = serialized PubsubMessage
 *                                       with message_id and publish_time
 *   ps_unacked(sub_id, seq, attempts)   one row per message a subscription
 *                                       still has to see acknowledged;
 *                                       attempts = deliveries whose lease
 *                                       ended without an ack (written on
 *                                       nack / expiry, not on delivery)
 *   ps_meta(k, v)                       'next_seq': next message sequence
 * A message row is deleted when its last unacked row is (GC).
 */
#include <stdlib.h>
#include <string.h>

#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/emulator/pubsub/ps_internal.h"
#include "src/rpc/pb.h"

static const char kSchema[] =
    "CREATE TABLE IF NOT EXISTS ps_topics(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE, proto BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS ps_subs(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE, topic_id INTEGER NOT NULL,"
    " proto BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS ps_messages(seq INTEGER PRIMARY KEY,"
    " publish_us INTEGER NOT NULL, okey TEXT, body BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS ps_unacked(sub_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(sub_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS ps_meta(k TEXT PRIMARY KEY,"
    " v INTEGER NOT NULL);"
    "DELETE FROM ps_unacked WHERE sub_id NOT IN (SELECT id FROM ps_subs);"
    "DELETE FROM ps_messages WHERE seq NOT IN (SELECT seq FROM ps_unacked);";

ps_msg_t *ps_msg_new(int64_t seq, int64_t publish_us, const char *okey,
                     const uint8_t *body, size_t len) {
  size_t kl = (okey && okey[0]) ? strlen(okey) + 1 : 0;
  ps_msg_t *m = trb_malloc(sizeof(*m) + len + kl);
  if (m == NULL) return NULL;
  m->seq = seq;
  m->refs = 0;
  m->publish_us = publish_us;
  m->body = m->data;
  m->body_len = len;
  if (len) memcpy(m->data, body, len);
  if (kl) {
    memcpy(m->data + len, okey, kl);
    m->okey = (const char *)m->data + len;
  } else {
    m->okey = NULL;
  }
  return m;
}

grpc_status_code ps_submit(trb_psemu_t *ps, trb_db_apply_cb apply,
                           trb_db_done_cb done, void *user, trb_status_t *st) {
  pthread_mutex_lock(&ps->mu);
  ps->pending_ops++;
  pthread_mutex_unlock(&ps->mu);
  grpc_status_code c = trb_db_submit(ps->db, apply, done, user, st);
  if (c != GRPC_STATUS_OK) ps_op_finished(ps);
  return c;
}

void ps_op_finished(trb_psemu_t *ps) {
  pthread_mutex_lock(&ps->mu);
  if (--ps->pending_ops == 0) pthread_cond_broadcast(&ps->ops_cv);
  pthread_mutex_unlock(&ps->mu);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

grpc_status_code ps_store_delete(trb_db_t *db, int64_t sub_id, int64_t *seqs,
                                 size_t n, int64_t *gc, size_t n_gc,
                                 trb_status_t *st) {
  if (n > 0) {
    qsort(seqs, n, sizeof(*seqs), cmp_i64);
    sqlite3_stmt *d = trb_db_stmt(
        db, "DELETE FROM ps_unacked WHERE sub_id=?1 AND seq BETWEEN ?2 AND ?3",
        st);
    if (d == NULL) return st->code;
    for (size_t i = 0; i < n;) {
      size_t j = i + 1;
      while (j < n && seqs[j] <= seqs[j - 1] + 1) j++;
      sqlite3_bind_int64(d, 1, sub_id);
      sqlite3_bind_int64(d, 2, seqs[i]);
      sqlite3_bind_int64(d, 3, seqs[j - 1]);
      if (sqlite3_step(d) != SQLITE_DONE) {
        return trb_db_error(db, "delete acked rows", st);
      }
      sqlite3_reset(d);
      i = j;
    }
  }
  if (n_gc > 0) {
    qsort(gc, n_gc, sizeof(*gc), cmp_i64);
    sqlite3_stmt *d =
        trb_db_stmt(db, "DELETE FROM ps_messages WHERE seq BETWEEN ?1 AND ?2",
                    st);
    if (d == NULL) return st->code;
    for (size_t i = 0; i < n_gc;) {
      size_t j = i + 1;
      while (j < n_gc && gc[j] <= gc[j - 1] + 1) j++;
      sqlite3_bind_int64(d, 1, gc[i]);
      sqlite3_bind_int64(d, 2, gc[j - 1]);
      if (sqlite3_step(d) != SQLITE_DONE) {
        return trb_db_error(db, "delete message bodies", st);
      }
      sqlite3_reset(d);
      i = j;
    }
  }
  return GRPC_STATUS_OK;
}

grpc_status_code ps_store_attempts(trb_db_t *db, const ps_att_t *att, size_t n,
                                   trb_status_t *st) {
  sqlite3_stmt *u = trb_db_stmt(
      db, "UPDATE ps_unacked SET attempts=?3 WHERE sub_id=?1 AND seq=?2", st);
  if (u == NULL) return st->code;
  for (size_t i = 0; i < n; i++) {
    sqlite3_bind_int64(u, 1, att[i].sub_id);
    sqlite3_bind_int64(u, 2, att[i].seq);
    sqlite3_bind_int64(u, 3, att[i].attempts);
    int rc = sqlite3_step(u);
    sqlite3_reset(u);
    if (rc != SQLITE_DONE) return trb_db_error(db, "update attempts", st);
  }
  return GRPC_STATUS_OK;
}

/* ---- loading -------------------------------------------------------------- */

static grpc_status_code load_topics(trb_psemu_t *ps, trb_db_t *db,
                                    trb_status_t *st) {
  sqlite3_stmt *q =
      trb_db_stmt(db, "SELECT id, name, proto FROM ps_topics ORDER BY id", st);
  if (q == NULL) return st->code;
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    ps_topic_t *t = trb_calloc(1, sizeof(*t));
    if (t == NULL) goto oom;
    t->id = sqlite3_column_int64(q, 0);
    t->name = trb_strdup((const char *)sqlite3_column_text(q, 1));
    size_t pl = (size_t)sqlite3_column_bytes(q, 2);
    t->proto = trb_malloc(pl + 1);
    if (t->name == NULL || t->proto == NULL) {
      ps_topic_free(t);
      goto oom;
    }
    if (pl) memcpy(t->proto, sqlite3_column_blob(q, 2), pl);
    t->proto_len = pl;
    if (ps->n_topics == ps->cap_topics) {
      size_t cap = ps->cap_topics ? ps->cap_topics * 2 : 16;
      ps_topic_t **a = trb_realloc(ps->topics, cap * sizeof(*a));
      if (a == NULL) {
        ps_topic_free(t);
        goto oom;
      }
      ps->topics = a;
      ps->cap_topics = cap;
    }
    ps->topics[ps->n_topics++] = t;
  }
  sqlite3_reset(q);
  if (rc != SQLITE_DONE) return trb_db_error(db, "load topics", st);
  return GRPC_STATUS_OK;
oom:
  sqlite3_reset(q);
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "load topics");
}

static ps_topic_t *topic_by_id(trb_psemu_t *ps, int64_t id) {
  for (size_t i = 0; i < ps->n_topics; i++) {
    if (ps->topics[i]->id == id) return ps->topics[i];
  }
  return NULL;
}

static grpc_status_code load_subs(trb_psemu_t *ps, trb_db_t *db,
                                  trb_status_t *st) {
  sqlite3_stmt *q = trb_db_stmt(
      db, "SELECT id, name, topic_id, proto FROM ps_subs ORDER BY id", st);
  if (q == NULL) return st->code;
  int rc;
  grpc_status_code c = GRPC_STATUS_OK;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    google_pubsub_v1_Subscription p = google_pubsub_v1_Subscription_init_zero;
    const uint8_t *blob = sqlite3_column_blob(q, 3);
    size_t bl = (size_t)sqlite3_column_bytes(q, 3);
    c = trb_pb_decode(google_pubsub_v1_Subscription_fields, blob, bl, &p, st);
    if (c != GRPC_STATUS_OK) {
      trb_pb_release(google_pubsub_v1_Subscription_fields, &p);
      trb_status_prefix(st, "load subscription %s",
                        (const char *)sqlite3_column_text(q, 1));
      c = trb_status_set(st, GRPC_STATUS_INTERNAL, "%s", st->msg);
      break;
    }
    ps_sub_t *s = trb_calloc(1, sizeof(*s));
    if (s == NULL) {
      trb_pb_release(google_pubsub_v1_Subscription_fields, &p);
      c = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "load subs");
      break;
    }
    s->id = sqlite3_column_int64(q, 0);
    s->proto = trb_malloc(bl + 1);
    if (s->proto) {
      memcpy(s->proto, blob, bl);
      s->proto_len = bl;
    }
    c = s->proto ? ps_sub_settings(ps, s, &p, st)
                 : trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
    trb_pb_release(google_pubsub_v1_Subscription_fields, &p);
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
    if (c != GRPC_STATUS_OK) {
      s->deleted = true;
      ps_sub_unref(ps, s);
      break;
    }
    ps->subs[ps->n_subs++] = s;
    s->refs = 1;
    ps_topic_t *t = topic_by_id(ps, sqlite3_column_int64(q, 2));
    if (t != NULL) {
      if (ps_topic_attach(t, s) != 0) {
        c = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
        break;
      }
      s->topic = t;
    }
  }
  sqlite3_reset(q);
  if (c == GRPC_STATUS_OK && rc != SQLITE_DONE) {
    return trb_db_error(db, "load subscriptions", st);
  }
  return c;
}

static grpc_status_code load_messages(trb_psemu_t *ps, trb_db_t *db,
                                      trb_status_t *st) {
  ps_map_t by_id = {0};
  for (size_t i = 0; i < ps->n_subs; i++) {
    if (ps_map_put(&by_id, ps->subs[i]->id, ps->subs[i]) != 0) {
      ps_map_free(&by_id);
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
    }
  }
  sqlite3_stmt *q = trb_db_stmt(
      db,
      "SELECT u.sub_id, m.seq, m.publish_us, m.okey, m.body, u.attempts"
      " FROM ps_unacked u"
      " JOIN ps_messages m ON m.seq = u.seq ORDER BY u.seq, u.sub_id",
      st);
  if (q == NULL) {
    ps_map_free(&by_id);
    return st->code;
  }
  grpc_status_code c = GRPC_STATUS_OK;
  ps_msg_t *m = NULL;
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    ps_sub_t *s = ps_map_get(&by_id, sqlite3_column_int64(q, 0));
    int64_t seq = sqlite3_column_int64(q, 1);
    if (s == NULL) continue;
    if (m == NULL || m->seq != seq) {
      if (m != NULL && m->refs == 0) trb_free(m);
      m = ps_msg_new(seq, sqlite3_column_int64(q, 2),
                     (const char *)sqlite3_column_text(q, 3),
                     sqlite3_column_blob(q, 4),
                     (size_t)sqlite3_column_bytes(q, 4));
      if (m == NULL) {
        c = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
        break;
      }
    }
    int64_t att = sqlite3_column_int64(q, 5);
    if (ps_sub_add(ps, s, m, att > 0 && att < INT32_MAX ? (int)att : 0) != 0) {
      c = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
      break;
    }
  }
  if (m != NULL && m->refs == 0) trb_free(m);
  sqlite3_reset(q);
  ps_map_free(&by_id);
  if (c == GRPC_STATUS_OK && rc != SQLITE_DONE) {
    return trb_db_error(db, "load messages", st);
  }
  return c;
}

static grpc_status_code load_apply(trb_db_t *db, sqlite3 *conn, void *user,
                                   trb_status_t *st) {
  trb_psemu_t *ps = user;
  grpc_status_code c = trb_db_exec(db, kSchema, st);
  if (c != GRPC_STATUS_OK) return c;
  /* Databases written before ps_unacked.attempts existed. */
  sqlite3_stmt *probe = NULL;
  if (sqlite3_prepare_v2(conn, "SELECT attempts FROM ps_unacked LIMIT 0", -1,
                         &probe, NULL) != SQLITE_OK) {
    c = trb_db_exec(db,
                    "ALTER TABLE ps_unacked ADD COLUMN attempts INTEGER NOT"
                    " NULL DEFAULT 0",
                    st);
  }
  sqlite3_finalize(probe);
  if (c != GRPC_STATUS_OK) return c;
  if ((c = load_topics(ps, db, st)) != GRPC_STATUS_OK) return c;
  if ((c = load_subs(ps, db, st)) != GRPC_STATUS_OK) return c;
  sqlite3_stmt *q = trb_db_stmt(
      db,
      "SELECT max(coalesce((SELECT v FROM ps_meta WHERE k='next_seq'), 1),"
      " coalesce((SELECT max(seq) + 1 FROM ps_messages), 1))",
      st);
  if (q == NULL) return st->code;
  if (sqlite3_step(q) == SQLITE_ROW) ps->next_seq = sqlite3_column_int64(q, 0);
  sqlite3_reset(q);
  if (ps->next_seq < 1) ps->next_seq = 1;
  return load_messages(ps, db, st);
}

grpc_status_code ps_store_load(trb_psemu_t *ps, trb_status_t *st) {
  return trb_db_run(ps->db, load_apply, ps, st);
}
