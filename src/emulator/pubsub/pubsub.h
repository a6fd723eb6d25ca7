/*
 * pubsub.h — the emulator's google.pubsub.v1 Publisher and Subscriber
 * services: durable topics, subscriptions and messages in SQLite (db.h),
 * delivery state in memory.
 *
 * Model
 * -----
 * SQLite is the log of record: topics, subscriptions (serialized
 * google.pubsub.v1.Subscription), message bodies and one row per
 * (subscription, message) not yet acknowledged. Every mutation is a db op;
 * a Publish, an Acknowledge (unary) or an admin call is answered from the
 * op's done callback, i.e. after its transaction committed. At start the
 * unacknowledged rows are loaded and delivered again.
 *
 * Delivery state (ready queues, leases with ack deadlines, ordering-key
 * queues, StreamingPull streams) lives in memory under one mutex. A timer
 * thread sleeps on a condition variable until the earliest ack deadline or
 * retry backoff and redelivers expired leases. Delivery attempts are
 * persisted when a lease ends without an ack (nack, ack-deadline expiry),
 * batched per unlock of the service and written with the unary nack's
 * answer; a first delivery is not written, so a lease still running at a
 * restart is not counted. After a restart delivery_attempt continues from
 * the stored count and dead-lettering counts attempts from before it.
 *
 * Ack IDs are opaque strings "<sub>-<seq>-<gen>-<epoch>" (lower-case hex):
 * the subscription's row id, the message's sequence number (= message_id),
 * the lease generation and the process epoch. A string that does not parse
 * or names another subscription is malformed. On a subscription without
 * exactly-once delivery an ack of a valid ID acknowledges the message even
 * after its lease expired (as long as it is not acknowledged yet); with
 * exactly-once delivery only the current lease's ID is accepted, and a
 * unary Acknowledge / ModifyAckDeadline naming a failed ID answers
 * INVALID_ARGUMENT with a google.rpc.ErrorInfo (reason
 * EXACTLY_ONCE_ACKID_FAILURE, metadata ack_id →
 * PERMANENT_FAILURE_INVALID_ACK_ID) after the valid IDs took effect — the
 * code the real service uses (sources in pull.c).
 *
 * A StreamingPull that the client cancels leaves its outstanding messages
 * leased until their ack deadline, then they are redelivered (as the real
 * service does).
 *
 * Methods: Publisher CreateTopic, GetTopic, ListTopics, DeleteTopic,
 * ListTopicSubscriptions, Publish; Subscriber CreateSubscription,
 * GetSubscription, UpdateSubscription, ListSubscriptions,
 * DeleteSubscription, Pull, Acknowledge, ModifyAckDeadline, StreamingPull,
 * Seek (to a time only: unacknowledged messages published before it are
 * acknowledged; acknowledged messages are not retained, so none come back;
 * a snapshot target is UNIMPLEMENTED). Other methods (UpdateTopic,
 * snapshots, DetachSubscription, push configs) answer UNIMPLEMENTED.
 *
 * A Pull without return_immediately that finds nothing waits up to 1 s
 * (less when the client's deadline is nearer) for messages.
 *
 * Ordering keys (enable_message_ordering): several messages of a key may
 * be outstanding at once, always delivered in publish order, within one
 * response and across responses. While a key has outstanding messages it
 * is bound to the stream (or to unary Pull) holding them; other streams
 * get none of its messages until they are all acknowledged, nacked or
 * expired (a cancelled stream's leases keep the key until their deadline).
 * When an outstanding message of a key is nacked (deadline 0) or its ack
 * deadline expires, it and every later outstanding message of the key are
 * taken back and redelivered in order, before any newer message of the key
 * ("Message ordering", Considerations when using ordered messaging,
 * https://cloud.google.com/pubsub/docs/ordering). With exactly-once
 * delivery the taken-back leases' ack IDs are invalid; a nack of one is
 * confirmed. A message dead-lettered on its last attempt lets the rest of
 * its key through (they are redelivered). Retry backoff delays the key.
 *
 * Limits of the emulation: fault-injected latency sleeps on the server
 * thread that runs the call.
 *
 * Source: google/pubsub/v1/pubsub.proto; ../shared/PROTOCOL.md section B.
 */
#ifndef TRB_SRC_EMULATOR_PUBSUB_PUBSUB_H
#define TRB_SRC_EMULATOR_PUBSUB_PUBSUB_H

#include <grpc/status.h>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/status.h"
#include "src/emulator/db.h"
#include "src/emulator/faults.h"
#include "src/rpc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trb_psemu_s trb_psemu_t;

/** Service settings. Zero-initialize, then set what you need. */
typedef struct trb_psemu_config_s {
  /** Borrowed; opened by the caller (db.h; NULL path = in memory). Must
   *  outlive trb_psemu_destroy. Required. */
  trb_db_t *db;
  /** Default project, e.g. "demo" (for logs); names of any project are
   *  accepted. Borrowed (copied); NULL = "demo". */
  const char *project;
  /** Fault registry; borrowed, may be NULL. Must outlive the service. */
  trb_faults_t *faults;
  /** TEST ONLY: how many milliseconds one second of ack deadline, lease
   *  extension or retry backoff lasts (the API still validates seconds,
   *  e.g. 10..600). 0 = 1000 (real time). Tests set e.g. 20 so that a 10 s
   *  deadline expires after 200 ms. */
  int test_ms_per_second;
} trb_psemu_config_t;

/**
 * Create the service: creates the tables if needed and loads durable state
 * (topics, subscriptions, unacknowledged messages), starts the timer thread.
 * Params:  cfg — borrowed. out — receives the service (trb_psemu_destroy).
 * Returns: OK; INVALID_ARGUMENT (no db); INTERNAL / UNAVAILABLE when the
 *          database cannot be read; RESOURCE_EXHAUSTED.
 * Threading: thread-safe; must not be called from a db callback.
 */
grpc_status_code trb_psemu_create(const trb_psemu_config_t *cfg,
                                  trb_psemu_t **out, trb_status_t *st);

/**
 * Register every Publisher and Subscriber method on `srv` (before
 * trb_rpc_server_start). `srv` must outlive the service's use of it
 * (shut the server down before trb_psemu_destroy).
 * Returns: OK; the server's error (ALREADY_EXISTS, FAILED_PRECONDITION).
 * Threading: owner only.
 */
grpc_status_code trb_psemu_register(trb_psemu_t *ps, trb_rpc_server_t *srv,
                                    trb_status_t *st);

/**
 * Create a topic as the CreateTopic RPC does (same validation, durable
 * before return). `topic` borrowed.
 * Returns: OK; INVALID_ARGUMENT (bad name, with the reason);
 *          ALREADY_EXISTS; INTERNAL / RESOURCE_EXHAUSTED from storage.
 * Threading: thread-safe; not from a db callback.
 * Source: google.pubsub.v1.Publisher.CreateTopic.
 */
grpc_status_code trb_psemu_create_topic(trb_psemu_t *ps,
                                        const google_pubsub_v1_Topic *topic,
                                        trb_status_t *st);

/**
 * Create a subscription as the CreateSubscription RPC does. `sub` borrowed.
 * Returns: OK; INVALID_ARGUMENT (bad name, ack deadline outside 10..600,
 *          dead-letter attempts outside 5..100, bad filter, backoff outside
 *          0..600 s); NOT_FOUND (topic or dead-letter topic missing);
 *          ALREADY_EXISTS; storage errors.
 * Threading: thread-safe; not from a db callback.
 * Source: google.pubsub.v1.Subscriber.CreateSubscription.
 */
grpc_status_code trb_psemu_create_subscription(
    trb_psemu_t *ps, const google_pubsub_v1_Subscription *sub,
    trb_status_t *st);

/**
 * End every open StreamingPull with UNAVAILABLE and stop the timer thread;
 * later StreamingPull opens are refused with UNAVAILABLE. Call before
 * trb_rpc_server_shutdown. Idempotent. Threading: owner only.
 */
void trb_psemu_shutdown(trb_psemu_t *ps);

/**
 * Wait for the service's pending db ops, then free everything. Call after
 * trb_rpc_server_shutdown and before trb_db_close. NULL-safe.
 * Threading: owner only.
 */
void trb_psemu_destroy(trb_psemu_t *ps);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_EMULATOR_PUBSUB_PUBSUB_H */
