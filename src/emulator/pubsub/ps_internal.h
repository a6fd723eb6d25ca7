/*
 * ps_internal.h — shared state of the Pub/Sub emulator's files (not a
 * public interface; visibility is the package and its tests).
 *
 * Locking: every field of every structure below is guarded by
 * trb_psemu_t.mu unless marked otherwise. db ops are never submitted while
 * holding `mu` (done callbacks take `mu` on the committer thread).
 */
#ifndef TRB_SRC_EMULATOR_PUBSUB_PS_INTERNAL_H
#define TRB_SRC_EMULATOR_PUBSUB_PS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/arena.h"
#include "src/emulator/pubsub/codec.h"
#include "src/emulator/pubsub/pubsub.h"

#include "src/emulator/pubsub/filter.h"

#define PS_LOG "pubsub"

/* Publish limits (PROTOCOL.md facts 44-46). */
#define PS_MAX_MESSAGES 1000
#define PS_MAX_REQUEST_BYTES 10000000
#define PS_MAX_ATTRIBUTES 100
#define PS_MAX_KEY_BYTES 256
#define PS_MAX_VALUE_BYTES 1024
#define PS_MAX_ORDERING_KEY_BYTES 1024

/* Delivery tuning. */
#define PS_RESPONSE_MAX_BYTES (1u << 20)   /* per StreamingPullResponse */
#define PS_RESPONSE_MAX_MESSAGES 1000
#define PS_STREAM_QUEUE_LIMIT (4u << 20)   /* bytes queued to one client */
#define PS_RECHECK_MS 2                    /* re-poll a backpressured stream */

typedef struct ps_topic_s ps_topic_t;
typedef struct ps_sub_s ps_sub_t;
typedef struct ps_stream_s ps_stream_t;

/** One published message body, shared by the subscriptions needing it. */
typedef struct ps_msg_s {
  int64_t seq;         /* global sequence = message_id */
  int refs;            /* entries referencing it */
  int64_t publish_us;  /* wall clock */
  const char *okey;    /* ordering key (points into data) or NULL */
  size_t body_len;     /* serialized PubsubMessage */
  uint8_t *body;       /* points into data */
  uint8_t data[];
} ps_msg_t;

enum { PS_READY = 1, PS_OUT, PS_DELAYED, PS_KEYWAIT };

/** A delivery count to persist: ps_unacked(sub_id, seq).attempts. */
typedef struct ps_att_s {
  int64_t sub_id, seq;
  int64_t attempts;
} ps_att_t;

/** One message of one subscription, not yet acknowledged. */
typedef struct ps_entry_s {
  ps_msg_t *msg;
  ps_sub_t *sub;
  int64_t due_ms;      /* lease deadline or backoff end (timer heap) */
  int heap_idx;        /* -1 when not in the heap */
  int state;
  int attempts;        /* deliveries so far */
  uint32_t gen;        /* lease generation */
  ps_stream_t *owner;  /* stream holding the lease, or NULL */
  struct ps_entry_s *prev, *next;   /* ready list */
  struct ps_entry_s *kprev, *knext; /* its ordering key's list */
  struct ps_keyq_s *kq;             /* its ordering key, or NULL */
} ps_entry_t;

/** int64 → pointer open-addressing map (seq → entry). */
typedef struct ps_map_s {
  int64_t *keys;  /* 0 = empty, -1 = tombstone (seqs are > 0) */
  void **vals;
  size_t cap, n, used;
} ps_map_t;

/**
 * Ordering-key state of one key on one subscription (ordering enabled).
 * `head..tail` (kprev/knext) lists every unacknowledged entry of the key in
 * publish order. Invariant: the leased entries (PS_OUT) are a prefix of the
 * list; `first_wait` is the first entry after them (or NULL), and it alone
 * is PS_READY (in the ready list) or PS_DELAYED (retry backoff); every later
 * entry is PS_KEYWAIT. Leasing `first_wait` promotes its successor, so a key
 * may have several messages outstanding, always delivered in order. While
 * n_out > 0 the key is bound to `bound` (a stream, PS_BOUND_PULL or
 * PS_BOUND_GONE) and only that receiver gets its next messages.
 */
typedef struct ps_keyq_s {
  char *key;
  ps_entry_t *head, *tail;    /* every entry of the key, publish order */
  ps_entry_t *first_wait;     /* first entry not leased, or NULL */
  size_t n_out;               /* leased entries (the list's prefix) */
  const void *bound;          /* receiver of the leased entries */
  struct ps_keyq_s *hnext;    /* hash chain */
} ps_keyq_t;

/** `bound` values besides a ps_stream_t*: unary Pull; a closed stream whose
 *  leases still run (nobody gets the key until they end). */
extern const char ps_bound_pull[1], ps_bound_gone[1];
#define PS_BOUND_PULL ((const void *)ps_bound_pull)
#define PS_BOUND_GONE ((const void *)ps_bound_gone)

struct ps_topic_s {
  int64_t id;
  char *name;
  uint8_t *proto;   /* serialized Topic */
  size_t proto_len;
  ps_sub_t **subs;  /* attached subscriptions */
  size_t n_subs, cap_subs;
  bool deleted;
};

struct ps_sub_s {
  int64_t id;
  char *name;
  char *project;    /* owned copy */
  const char *short_id; /* into name */
  ps_topic_t *topic;    /* NULL once the topic was deleted */
  uint8_t *proto;   /* serialized Subscription */
  size_t proto_len;
  /* settings from the proto */
  int ack_deadline_s;
  bool ordering, eod, detached;
  int max_attempts;        /* 0 = no dead-letter policy */
  char *dlq_topic;         /* owned */
  bool has_retry;
  int64_t min_backoff_ms, max_backoff_ms; /* API milliseconds */
  trb_ps_filter_t *filter;
  bool deleted;
  int refs;                /* ops holding a pointer (freed at 0 + deleted) */
  /* delivery state */
  ps_map_t entries;        /* seq → entry */
  ps_entry_t *ready_head, *ready_tail;
  size_t n_ready;
  ps_keyq_t **keys;        /* hash table of ordering keys */
  size_t keys_cap;
  ps_stream_t *streams;    /* doubly linked via snext/sprev */
  struct ps_waiter_s *waiters; /* unary Pulls waiting for messages */
};

/** A unary Pull with nothing to return yet (return_immediately false). */
typedef struct ps_waiter_s {
  trb_rpc_server_call_t *call;
  ps_sub_t *sub;
  size_t max;
  int64_t due_ms;               /* answer empty at this time */
  struct ps_waiter_s *next;     /* sub->waiters */
} ps_waiter_t;

/** How long a Pull waits for messages, milliseconds (real time). */
#define PS_PULL_WAIT_MS 1000

struct ps_stream_s {
  trb_psemu_t *ps;
  trb_rpc_server_call_t *call;
  ps_sub_t *sub;               /* NULL until the first request */
  bool started, finished, done;
  bool dead;                    /* a write failed: the call is over */
  int deadline_s;
  int64_t max_msgs, max_bytes;  /* <= 0: no limit */
  int64_t out_msgs, out_bytes;  /* leased to this stream */
  int64_t protocol_version;
  int pending_ops;              /* ack ops holding a pointer */
  ps_stream_t *snext, *sprev;   /* sub->streams */
  ps_stream_t *anext, *aprev;   /* ps->streams (all) */
  trb_buf_t buf;                /* response scratch */
};

struct trb_psemu_s {
  trb_db_t *db;
  trb_faults_t *faults;
  char *project;
  int ms_per_s;
  uint32_t epoch;

  pthread_mutex_t mu;
  pthread_mutex_t submit_mu; /* orders deferred submissions (ps_unlock);
                                taken after mu, never the other way */
  pthread_cond_t timer_cv;   /* wakes the timer thread */
  pthread_cond_t ops_cv;     /* pending_ops reached 0 */
  pthread_t timer;
  bool timer_started, stop, shut;

  ps_topic_t **topics;
  size_t n_topics, cap_topics;
  ps_sub_t **subs;
  size_t n_subs, cap_subs;
  int64_t next_seq;          /* next message sequence number */
  int64_t next_topic_id, next_sub_id;

  ps_entry_t **heap;         /* min-heap on due_ms */
  size_t heap_n, heap_cap;
  int64_t recheck_ms;        /* 0 = none; stream backpressure re-poll */
  ps_stream_t *streams;      /* all open streams */
  int pending_ops;           /* db ops whose done has not run */
  ps_att_t *att;             /* delivery counts to persist (ps_att_record) */
  size_t n_att, cap_att;
  struct ps_deferred_s *def_head, *def_tail; /* ops to submit after unlock */
};

/** A db op queued while holding mu (submitted by ps_unlock). */
typedef struct ps_deferred_s {
  trb_db_apply_cb apply;
  trb_db_done_cb done;
  void *user;
  struct ps_deferred_s *next;
} ps_deferred_t;

/** Queue an op for submission at the next ps_unlock (mu held). `d` is
 *  caller memory (embedded in the op) that must stay valid until `done`.
 *  Deferred ops reach the db in the order they were deferred, across
 *  threads, so an answer given from a later op's `done` implies the
 *  earlier ops committed. */
void ps_defer(trb_psemu_t *ps, ps_deferred_t *d);
void ps_lock(trb_psemu_t *ps);
/** Unlock and submit the deferred ops. */
void ps_unlock(trb_psemu_t *ps);

/* ---- util.c: maps, heap, lists ---------------------------------------- */
int ps_map_put(ps_map_t *m, int64_t key, void *val);
void *ps_map_get(const ps_map_t *m, int64_t key);
void *ps_map_del(ps_map_t *m, int64_t key);
void ps_map_free(ps_map_t *m);
int ps_heap_push(trb_psemu_t *ps, ps_entry_t *e);
void ps_heap_remove(trb_psemu_t *ps, ps_entry_t *e);
void ps_heap_fix(trb_psemu_t *ps, ps_entry_t *e);
ps_keyq_t *ps_keyq_get(ps_sub_t *s, const char *key, bool create);
void ps_keyq_drop(ps_sub_t *s, ps_keyq_t *k);
void ps_keys_free(ps_sub_t *s);
void ps_list_push_back(ps_entry_t **head, ps_entry_t **tail, ps_entry_t *e);
void ps_list_push_front(ps_entry_t **head, ps_entry_t **tail, ps_entry_t *e);
void ps_list_remove(ps_entry_t **head, ps_entry_t **tail, ps_entry_t *e);
/** Insert `e` before `at` (NULL: at the back). */
void ps_list_insert_before(ps_entry_t **head, ps_entry_t **tail,
                           ps_entry_t *at, ps_entry_t *e);
/** Same operations on an ordering key's list (kprev/knext). */
void ps_klist_push_back(ps_keyq_t *k, ps_entry_t *e);
void ps_klist_remove(ps_keyq_t *k, ps_entry_t *e);

/* ---- admin.c ----------------------------------------------------------- */
ps_topic_t *ps_topic_find(trb_psemu_t *ps, const char *name);
ps_sub_t *ps_sub_find(trb_psemu_t *ps, const char *name);
/** Apply a Subscription proto's settings to `s` (validated already). */
grpc_status_code ps_sub_settings(trb_psemu_t *ps, ps_sub_t *s,
                                 const google_pubsub_v1_Subscription *p,
                                 trb_status_t *st);
void ps_sub_unref(trb_psemu_t *ps, ps_sub_t *s);
void ps_topic_free(ps_topic_t *t);
int ps_topic_attach(ps_topic_t *t, ps_sub_t *s);
void ps_topic_detach(ps_topic_t *t, ps_sub_t *s);
grpc_status_code ps_admin_register(trb_psemu_t *ps, trb_rpc_server_t *srv,
                                   trb_status_t *st);
/** Encode `fields` message and finish a unary call OK with it. */
void ps_reply(trb_rpc_server_call_t *call, const pb_msgdesc_t *fields,
              const void *msg);
/** Consult faults for a call; true when the call was finished with an
 *  injected error. */
bool ps_fault(trb_psemu_t *ps, trb_rpc_server_call_t *call, bool finish);

/* ---- store.c ----------------------------------------------------------- */
/** Persist attempts of rows (sub_id, seq) (missing rows are skipped).
 *  Committer thread. */
grpc_status_code ps_store_attempts(trb_db_t *db, const ps_att_t *att, size_t n,
                                   trb_status_t *st);
/** A message with refs 0 (the first ps_sub_add takes it to 1). `okey` NULL
 *  or "" = none. NULL on allocation failure. */
ps_msg_t *ps_msg_new(int64_t seq, int64_t publish_us, const char *okey,
                     const uint8_t *body, size_t len);
grpc_status_code ps_store_load(trb_psemu_t *ps, trb_status_t *st);
/** Submit helper counting pending ops (call without mu held). */
grpc_status_code ps_submit(trb_psemu_t *ps, trb_db_apply_cb apply,
                           trb_db_done_cb done, void *user, trb_status_t *st);
void ps_op_finished(trb_psemu_t *ps);
/** Delete unacked rows (sub, seqs) and message rows `gc` (sorted in
 *  place). Committer thread. */
grpc_status_code ps_store_delete(trb_db_t *db, int64_t sub_id, int64_t *seqs,
                                 size_t n, int64_t *gc, size_t n_gc,
                                 trb_status_t *st);

/* ---- publish.c --------------------------------------------------------- */
grpc_status_code ps_publish_register(trb_psemu_t *ps, trb_rpc_server_t *srv,
                                     trb_status_t *st);
/** Dead-letter entry `e` (mu held): removes it from its subscription and
 *  queues a db op that publishes it to the dead-letter topic and deletes
 *  the source row atomically. Submitted via ps_deferred_flush. */
void ps_dead_letter(trb_psemu_t *ps, ps_entry_t *e);

/* ---- deliver.c --------------------------------------------------------- */
grpc_status_code ps_timer_start(trb_psemu_t *ps, trb_status_t *st);
void ps_timer_stop(trb_psemu_t *ps);
int64_t ps_now_ms(void);
/** Scaled milliseconds for `secs` API seconds. */
int64_t ps_scaled_ms(const trb_psemu_t *ps, int64_t secs);
/** Add a committed message to a subscription (mu held). */
int ps_sub_add(trb_psemu_t *ps, ps_sub_t *s, ps_msg_t *m, int attempts);
/** Deliver what is ready to the subscription's streams (mu held). */
void ps_dispatch(trb_psemu_t *ps, ps_sub_t *s);
/** Lease up to `max` ready messages to `owner` (may be NULL for Pull)
 *  appending ReceivedMessages to `b`. Returns the count. mu held. */
size_t ps_lease_into(trb_psemu_t *ps, ps_sub_t *s, ps_stream_t *owner,
                     int deadline_s, size_t max, size_t max_bytes,
                     trb_buf_t *b);
/** Remove an entry for good (acked or dead-lettered): out of the map, heap,
 *  lists, key queue; frees it. Returns the message seq to GC (>0) when no
 *  subscription needs the body any more, else 0. mu held. */
int64_t ps_entry_finish(trb_psemu_t *ps, ps_entry_t *e);
/** Lease ended without an ack (nack / expiry). With an ordering key, every
 *  later leased entry of the key is taken back too and the key restarts
 *  at `e` (redelivered first, in order). mu held. */
void ps_entry_requeue(trb_psemu_t *ps, ps_entry_t *e, int64_t now_ms);
/** A lease of `e` ended without an ack (nack / expiry): remember its
 *  delivery count for the db (mu held). Flushed by ps_unlock as one op
 *  (ps_att_take), so the count survives a restart; first deliveries are
 *  not written. */
void ps_att_record(trb_psemu_t *ps, const ps_entry_t *e);
/** Drop every entry of a deleted subscription. mu held. */
void ps_sub_clear(trb_psemu_t *ps, ps_sub_t *s, int64_t **gc, size_t *n_gc);
void ps_msg_unref(ps_msg_t *m);

/** Message of the INVALID_ARGUMENT status carrying the exactly-once
 *  ErrorInfo (EXACTLY_ONCE_ACKID_FAILURE), as the real service words it. */
#define PS_EOD_ACK_FAILURE                                                   \
  "Some acknowledgement ids in the request were invalid. This could be "    \
  "because the acknowledgement ids have expired or the acknowledgement ids " \
  "were malformed."

/** Ack / modack results per ack ID. */
enum { PS_ACK_OK = 0, PS_ACK_INVALID, PS_ACK_MALFORMED };

/**
 * Acknowledge `ids` on `s` (mu held). results[i] gets PS_ACK_*; seqs to
 * delete and bodies to GC are appended to the op arrays (caller-owned,
 * capacity n each).
 */
void ps_ack_ids(trb_psemu_t *ps, ps_sub_t *s, char *const *ids, size_t n,
                int *results, int64_t *seqs, size_t *n_seqs, int64_t *gc,
                size_t *n_gc);
/** Modify deadlines: secs[i] (or `all_secs` when secs NULL). mu held. */
void ps_modack_ids(trb_psemu_t *ps, ps_sub_t *s, char *const *ids, size_t n,
                   const int32_t *secs, int32_t all_secs, int *results);

/** An ack op: delete rows, then optionally finish a unary call or send
 *  stream confirmations. */
typedef struct ps_ack_op_s {
  ps_deferred_t def;            /* for ps_defer */
  trb_psemu_t *ps;
  int64_t sub_id;
  int64_t *seqs, *gc;
  size_t n_seqs, n_gc;
  trb_rpc_server_call_t *call;  /* unary Acknowledge to answer, or NULL */
  uint8_t *details;             /* EOD ErrorInfo status for `call` */
  size_t details_len;
  char *err_msg;
  ps_stream_t *stream;          /* stream to confirm on, or NULL */
  uint8_t *confirm;             /* encoded StreamingPullResponse */
  size_t confirm_len;
  ps_att_t *att;                /* delivery counts to persist */
  size_t n_att;
} ps_ack_op_t;
/** The delivery counts recorded since the last ps_unlock as an ack op with
 *  nothing to delete (NULL: none, or out of memory: then they are
 *  dropped). mu held. */
ps_ack_op_t *ps_att_take(trb_psemu_t *ps);
/** Queue for submission at ps_unlock (mu held); takes ownership of `op`.
 *  Always written, even with no row to delete, so that an ack of an ID
 *  another in-flight op took (an earlier ack, Seek, dead-letter move) is
 *  answered only after that op committed. */
void ps_ack_op_defer(trb_psemu_t *ps, ps_ack_op_t *op);
void ps_ack_op_free(ps_ack_op_t *op);

/* ---- stream.c / pull.c ------------------------------------------------- */
grpc_status_code ps_stream_register(trb_psemu_t *ps, trb_rpc_server_t *srv,
                                    trb_status_t *st);
grpc_status_code ps_pull_register(trb_psemu_t *ps, trb_rpc_server_t *srv,
                                  trb_status_t *st);
/** Answer waiting Pulls of `s` that can be served, or all of them
 *  (`all`: at their deadline / shutdown) with what is ready. mu held.
 *  Returns the earliest remaining waiter deadline (INT64_MAX: none). */
int64_t ps_waiters_serve(trb_psemu_t *ps, ps_sub_t *s, int64_t now_ms,
                         bool all);
/** Finish every stream with code/message (mu held). */
void ps_streams_close_all(trb_psemu_t *ps, grpc_status_code code,
                          const char *message);
/** Finish one stream (mu held), releasing its leases to their deadlines. */
void ps_stream_close(trb_psemu_t *ps, ps_stream_t *s, grpc_status_code code,
                     const char *message);
/** Unlink a stream from its subscription (mu held). */
void ps_stream_detach(trb_psemu_t *ps, ps_stream_t *s);

#endif /* TRB_SRC_EMULATOR_PUBSUB_PS_INTERNAL_H */
