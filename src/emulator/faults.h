/*
 * faults.h — fault injection for tests: make the next N calls of a method
 * fail with a chosen status, add latency to a method, and drop every open
 * stream. One registry per emulator, shared by its services.
 *
 * Services consult the registry at the start of every unary call and of
 * every streaming call (StreamingPull open, AppendRows open) and, for
 * AppendRows, before answering each request (so "the next N AppendRows"
 * can fail in-stream). Streams register a drop callback so that
 * trb_faults_drop_streams() can end them with a chosen status.
 *
 * A drop-after-write rule makes the BigQuery service write an append and
 * then end its stream instead of replying (the client's resend meets
 * ALREADY_EXISTS). The registry also carries the BigQuery service's
 * schema-update hook, so the admin RPC can reach it.
 *
 * Method names are gRPC full names ("/google.pubsub.v1.Publisher/Publish");
 * "*" matches every method.
 *
 * Threading: every function is thread-safe.
 */
#ifndef TRB_SRC_EMULATOR_FAULTS_H
#define TRB_SRC_EMULATOR_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trb_faults_s trb_faults_t;

/** Create an empty registry. NULL on allocation failure. */
trb_faults_t *trb_faults_create(void);

/** Free. NULL-safe. No service may use it afterwards. */
void trb_faults_destroy(trb_faults_t *f);

/**
 * Make the next `count` calls of `method` fail with `code` / `message`.
 * `count` < 0: every call until trb_faults_clear(). A later rule for the same
 * method replaces the earlier one. Strings are copied.
 * Returns: OK; INVALID_ARGUMENT (code OK, empty method); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_faults_add_error(trb_faults_t *f, const char *method,
                                      int count, grpc_status_code code,
                                      const char *message, trb_status_t *st);

/**
 * Delay every call of `method` by `latency_ms` milliseconds (0 removes).
 * Returns: OK; INVALID_ARGUMENT (negative, empty method); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_faults_set_latency(trb_faults_t *f, const char *method,
                                        int latency_ms, trb_status_t *st);

/** Remove every rule. */
void trb_faults_clear(trb_faults_t *f);

/**
 * Consult the registry for one call of `method`. When an error rule
 * matches, one unit of its count is consumed, `*code` / `message` receive
 * the status and true is returned. `*latency_ms` (may be NULL) receives the
 * delay to apply (0 when none), whether or not an error is returned.
 * `message` has room for `message_len` bytes (NUL-terminated, truncated).
 */
bool trb_faults_take(trb_faults_t *f, const char *method,
                     grpc_status_code *code, char *message,
                     size_t message_len, int *latency_ms);

/** Callback that ends every open stream of one service with the status.
 *  Runs on the thread calling trb_faults_drop_streams(). */
typedef void (*trb_faults_drop_cb)(void *user, grpc_status_code code,
                                   const char *message);

/**
 * Register a service's stream dropper (at most 8). Returns OK or
 * RESOURCE_EXHAUSTED. Registered until trb_faults_off_drop().
 */
grpc_status_code trb_faults_on_drop(trb_faults_t *f, trb_faults_drop_cb cb,
                                    void *user, trb_status_t *st);

/**
 * Unregister a dropper registered with the same cb and user (a service
 * being destroyed before the registry). Waits for a drop running on another
 * thread to finish, so after return the callback is never called again.
 * Not callable from inside a drop callback. No-op when not registered.
 */
void trb_faults_off_drop(trb_faults_t *f, trb_faults_drop_cb cb, void *user);

/** End every open stream of every registered service with code/message
 *  (UNAVAILABLE is what a real server restart looks like). */
void trb_faults_drop_streams(trb_faults_t *f, grpc_status_code code,
                             const char *message);

/**
 * Make the next `count` successful appends of `method` (today only
 * "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows" consults
 * it) be written (durably, offsets advanced) and then have their stream
 * ended with UNAVAILABLE instead of the reply: the client never learns the
 * append landed, so a resend with the same offset meets ALREADY_EXISTS.
 * `count` <= 0 removes the rule. Replaces an earlier count for `method`.
 * Returns: OK; INVALID_ARGUMENT (empty method); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_faults_add_drop_after_write(trb_faults_t *f,
                                                 const char *method, int count,
                                                 trb_status_t *st);

/** Consume one unit of a drop-after-write rule for `method` (exact name or
 *  "*"); true when the stream must be dropped instead of replying. Counted
 *  in trb_faults_injected. NULL `f`: false. */
bool trb_faults_take_drop_after_write(trb_faults_t *f, const char *method);

/**
 * Schema-update hook: the BigQuery service registers how to change a
 * table's schema at run time, so EmulatorAdmin.UpdateTableSchema (which only
 * knows the registry) can reach it. `table` is "projects/{p}/datasets/{d}/
 * tables/{t}" or "{d}.{t}"; `schema_json` (`len` bytes) a table file or
 * schema array as src/bigquery/schema.h parses. Runs on the caller's
 * thread; returns the update's status.
 */
typedef grpc_status_code (*trb_faults_schema_cb)(void *user, const char *table,
                                                 const char *schema_json,
                                                 size_t len, trb_status_t *st);

/** Register the (single) schema-update hook; a later one replaces it. */
void trb_faults_on_schema_update(trb_faults_t *f, trb_faults_schema_cb cb,
                                 void *user);

/** Unregister the hook if it is (cb, user). Not callable from inside it;
 *  waits for a running call of it to return. */
void trb_faults_off_schema_update(trb_faults_t *f, trb_faults_schema_cb cb,
                                  void *user);

/**
 * Change a table's schema through the registered hook.
 * Returns: the hook's status (OK; NOT_FOUND; INVALID_ARGUMENT for a
 *          schema that is not an additive change; ...); UNIMPLEMENTED when
 *          no hook is registered.
 */
grpc_status_code trb_faults_update_table_schema(trb_faults_t *f,
                                                const char *table,
                                                const char *schema_json,
                                                size_t len, trb_status_t *st);

/** Total calls failed by error rules so far (tests). */
int64_t trb_faults_injected(trb_faults_t *f);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_EMULATOR_FAULTS_H */
