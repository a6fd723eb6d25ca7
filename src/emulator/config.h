/*
 * config.h — the emulator's `--config FILE`: topics and subscriptions to
 * create at start, so that tests and `tributary up` need no admin calls.
 * A pure codec (JSON text → nanopb resources); emulator.c does the I/O.
 *
 * Format (JSON; resource fields use the names of the Pub/Sub REST
 * resources, https://cloud.google.com/pubsub/docs/reference/rest):
 *
 *   {
 *     "project": "demo",                       optional
 *     "tables": "tables/",                     optional, like --tables;
 *                                              relative to the file
 *     "topics": [ "events",                    a name, or a Topic resource:
 *                 {"name": "dlq", "labels": {"team": "data"}} ],
 *     "subscriptions": [
 *       {"name": "events-sub", "topic": "events",
 *        "ackDeadlineSeconds": 30, "enableMessageOrdering": true,
 *        "enableExactlyOnceDelivery": false, "filter": "attributes:kind",
 *        "retainAckedMessages": false, "messageRetentionDuration": "604800s",
 *        "labels": {"k": "v"},
 *        "deadLetterPolicy": {"deadLetterTopic": "dlq", "maxDeliveryAttempts": 5},
 *        "retryPolicy": {"minimumBackoff": "10s", "maximumBackoff": "600s"}} ]
 *   }
 *
 * Short names ("events") expand to "projects/{project}/topics/events"
 * (likewise subscriptions); full names are kept as written. Unknown keys
 * and wrong types are rejected with the file, the JSON path and the reason
 * ("emulator.json: subscriptions[0].ackDeadline: unknown key"). Values are
 * range-checked by the Pub/Sub service when the resources are created, with
 * the same rules as CreateTopic / CreateSubscription.
 */
#ifndef TRB_SRC_EMULATOR_CONFIG_H
#define TRB_SRC_EMULATOR_CONFIG_H

#include <stddef.h>

#include <grpc/status.h>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A parsed config file; everything owned (trb_emu_file_deinit). */
typedef struct trb_emu_file_s {
  /** "project", or NULL when the file has none. */
  char *project;
  /** "tables" resolved against the file's directory, or NULL. */
  char *tables_dir;
  google_pubsub_v1_Topic *topics;
  size_t n_topics;
  google_pubsub_v1_Subscription *subscriptions;
  size_t n_subscriptions;
} trb_emu_file_t;

/**
 * Parse a config document.
 * Params:  json, len — the document (borrowed).
 *          origin — file name used in messages and to resolve "tables"
 *          (borrowed; may be NULL: then "tables" is kept as written).
 *          project — the project for short names when the file has no
 *          "project" key (a --project flag passed here wins over the file's).
 *          project_overrides — true when `project` came from a flag and so
 *          beats the file's "project".
 * Returns: OK; INVALID_ARGUMENT (syntax, unknown key, wrong type, bad
 *          duration) with "origin: path: reason"; RESOURCE_EXHAUSTED.
 * On failure `out` is left empty. Threading: thread-safe.
 */
grpc_status_code trb_emu_file_parse(const char *json, size_t len,
                                    const char *origin, const char *project,
                                    bool project_overrides,
                                    trb_emu_file_t *out, trb_status_t *st);

/** Read `path` and parse it. NOT_FOUND / PERMISSION_DENIED when it cannot
 *  be read; otherwise as trb_emu_file_parse. */
grpc_status_code trb_emu_file_load(const char *path, const char *project,
                                   bool project_overrides, trb_emu_file_t *out,
                                   trb_status_t *st);

/** Free everything; leaves `f` zeroed. NULL-safe. */
void trb_emu_file_deinit(trb_emu_file_t *f);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_EMULATOR_CONFIG_H */
