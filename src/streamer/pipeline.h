/*
 * pipeline.h — the configuration of `tributary stream`: one JSON pipeline
 * file, overridden by TRIBUTARY_STREAM_* environment variables and flags.
 *
 * File shape (every key optional unless marked; docs/streamer.md has the
 * reference and an example):
 *
 *   {
 *     "project": "my-project",                       (required*)
 *     "subscription": "backend-events-tributary",    (required; short or
 *                                                     projects/../subscriptions/..)
 *     "dead_letter_topic": "tributary-dead-letter",  (required; short or full)
 *     "delivery": "exactly_once" | "at_least_once",
 *     "workers": 2, "streams_per_worker": 1,
 *     "batch_max_rows": 500, "batch_max_bytes": "4MiB",
 *     "batch_max_latency": "50ms",
 *     "max_outstanding_messages": 2000, "max_outstanding_bytes": "64MiB",
 *     "wal_dir": "./tributary-wal", "wal_sync": "fsync" | "none",
 *     "wal_max_bytes": "1GiB",
 *     "http_port": 9464, "grace_period": "10s",
 *     "route_field": "event_type",
 *     "routes": [ {"equals": "order", "table": "backend_events.order_events"},
 *                 {"field": "kind", "equals": "x", "table": "d.t"},
 *                 {"attribute": "type", "equals": "y", "table": "d.t2"} ],
 *     "default_table": "tributary.issues",           (else unmatched →
 *                                                     dead-letter topic)
 *     "tables": {
 *       "backend_events.order_events": {
 *         "unknown_fields": "reject" | "ignore",
 *         "write_metadata": true,                    (subscription_name,
 *                                                     message_id, publish_time,
 *                                                     attributes columns)
 *         "envelope": false                          (true: the whole message
 *                                                     as the `payload` column)
 *       }
 *     }
 *   }
 *   * project may come from GOOGLE_CLOUD_PROJECT instead.
 *
 * Scalar keys form a src/common/config.h table (trb_pipeline_table), so
 * the environment (TRIBUTARY_STREAM_<KEY>) and flags (--<key>) override the
 * file in that order. `routes`, `default_table` and `tables` come from the
 * file only.
 *
 * Errors name the file, the JSON path and the reason:
 *   "pipeline.json: $.routes[1].table: must be \"<dataset>.<table>\"".
 *
 * Threading: parsing is thread-compatible; a loaded trb_pipeline_t is
 * immutable and may be shared.
 */
#ifndef TRB_SRC_STREAMER_PIPELINE_H
#define TRB_SRC_STREAMER_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/config.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Delivery mode (DESIGN.md "Delivery semantics"). */
typedef enum trb_delivery_e {
  /** COMMITTED write streams with offsets + write-ahead log (default). */
  TRB_DELIVERY_EXACTLY_ONCE = 0,
  /** The table's _default stream, ack after append, no WAL: duplicates are
   *  possible after failures. */
  TRB_DELIVERY_AT_LEAST_ONCE = 1,
} trb_delivery_t;

/** One routing rule: a message whose JSON field `field` (dotted path of
 *  object keys) — or whose attribute `attribute` — equals `equals` (string
 *  compare; numbers and booleans compare by their JSON text) goes to
 *  `table`. Rules are tried in order; the first match wins. */
typedef struct trb_route_rule_s {
  char *field;     /* NULL when `attribute` is set */
  char *attribute; /* NULL when `field` is set */
  char *equals;
  size_t equals_len; /* strlen(equals) */
  size_t table;    /* index into trb_pipeline_t.tables */
} trb_route_rule_t;

/** Per destination table. */
typedef struct trb_table_opts_s {
  /** "dataset.table" as written in the file. */
  char *name;
  /** "projects/{p}/datasets/{d}/tables/{t}". */
  char *path;
  bool ignore_unknown_fields;
  /** Add subscription_name, message_id, publish_time, attributes columns
   *  (as BigQuery subscriptions' write_metadata). */
  bool write_metadata;
  /** Write the whole message data as the STRING column `payload`. */
  bool envelope;
} trb_table_opts_t;

/** The loaded pipeline. Scalar fields are set by trb_pipeline_table. */
typedef struct trb_pipeline_s {
  char *project;
  char *subscription;      /* full name after load */
  char *dead_letter_topic; /* full name after load */
  char *delivery_text;
  trb_delivery_t delivery;
  int64_t workers;
  int64_t streams_per_worker;
  int64_t batch_max_rows;
  int64_t batch_max_bytes;
  int64_t batch_max_latency_ms;
  int64_t max_outstanding_messages; /* per worker */
  int64_t max_outstanding_bytes;    /* per worker */
  char *wal_dir;
  char *wal_sync_text;
  bool wal_fsync;
  int64_t wal_max_bytes;
  int64_t http_port; /* -1 = no HTTP server; 0 = any free port */
  int64_t grace_period_ms;
  char *route_field;
  char *pipeline_file; /* the file given, or NULL */

  trb_route_rule_t *rules;
  size_t n_rules;
  trb_table_opts_t *tables;
  size_t n_tables;
  /** Index into `tables`, or -1 (unmatched messages are dead-lettered). */
  int64_t default_table;

  /** Precomputed by trb_pipeline_finish for trb_pipeline_route_first (and
   *  cleared by trb_pipeline_apply_json): `first_key` (borrowed from a rule
   *  or `route_field`, `first_key_len` bytes) is the one top-level field
   *  every rule reads, or NULL when the rules are not of that form. */
  bool first_ready;
  const char *first_key;
  size_t first_key_len;
  bool first_key_plain; /* trb_json_key_plain(first_key) */
} trb_pipeline_t;

/** The scalar settings table (for flags, env and help). */
extern const trb_config_table_t trb_pipeline_table;

/** Environment prefix of the scalar settings. */
#define TRB_PIPELINE_ENV_PREFIX "TRIBUTARY_STREAM_"

/**
 * Fill `p` with the defaults of trb_pipeline_table. `p` must be zeroed.
 * Returns: OK; RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_pipeline_defaults(trb_pipeline_t *p, trb_status_t *st);

/**
 * Apply a pipeline file's JSON text (`len` bytes). `file` names it in
 * errors (borrowed). Scalars go through trb_config_set; `routes`,
 * `default_table` and `tables` are parsed here (tables named only by
 * routes get default options).
 * Returns: OK; INVALID_ARGUMENT "<file>: <$.path>: <reason>" (malformed
 *          JSON with line and column, unknown key, wrong type, bad value);
 *          RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_pipeline_apply_json(trb_pipeline_t *p, const char *file,
                                         const char *json, size_t len,
                                         trb_status_t *st);

/** Read and apply a pipeline file. Returns as trb_pipeline_apply_json, and
 *  NOT_FOUND / PERMISSION_DENIED when it cannot be read. */
grpc_status_code trb_pipeline_load_file(trb_pipeline_t *p, const char *path,
                                        trb_status_t *st);

/**
 * Final checks after every source was applied: project (else
 * GOOGLE_CLOUD_PROJECT), subscription and dead-letter topic present and
 * expanded to full names, delivery and wal_sync words, at least one route
 * or a default table.
 * Returns: OK; INVALID_ARGUMENT "pipeline: <key>: <reason>".
 */
grpc_status_code trb_pipeline_finish(trb_pipeline_t *p, trb_status_t *st);

/**
 * Which table a message goes to (pure; no allocation).
 * Params:  json/len — message data; attrs — `n_attrs` key/value pairs.
 * Returns: the table index, or -1 when no rule matches and there is no
 *          default table (the caller dead-letters with reason "no route").
 *          A message that is not a JSON object matches only attribute
 *          rules and the default table.
 */
int64_t trb_pipeline_route(const trb_pipeline_t *p, const char *json,
                           size_t len, const char *const *attr_keys,
                           const char *const *attr_values, size_t n_attrs);

/** trb_pipeline_route_first's answer when it does not apply. */
#define TRB_PIPELINE_ROUTE_FULL (-2)

/**
 * The fast half of trb_pipeline_route: when every rule is a JSON rule on
 * the same top-level field (no '.', no attribute rule), route on the FIRST
 * member with that key and stop reading there. The caller must then check
 * that the key's last occurrence has the same raw value text (e.g. with a
 * trb_bq_watch_t while transcoding) and else use trb_pipeline_route.
 * Params:  key — receives the field name (borrowed from `p`); raw, raw_len
 *          — the first occurrence's raw value text (a span of `json`).
 * Returns: a table index (>= 0) matched by a rule; TRB_PIPELINE_ROUTE_FULL
 *          when the rules are not of that form, the key is missing, the
 *          text is malformed before it, or no rule matches the value (the
 *          caller then uses trb_pipeline_route).
 * Cost: the key and rule lengths come from trb_pipeline_finish; a value
 *          without escapes compares as raw bytes (the escape-aware compare
 *          only when it holds a backslash). Before trb_pipeline_finish (or
 *          after a later trb_pipeline_apply_json) the rules are examined on
 *          every call: same answers, slower. Changing `route_field` or the
 *          rules after trb_pipeline_finish requires calling it again.
 * Threading: thread-safe (reads `p`).
 */
int64_t trb_pipeline_route_first(const trb_pipeline_t *p, const char *json,
                                 size_t len, const char **key,
                                 const char **raw, size_t *raw_len);

/** Free everything `p` owns. NULL-safe. */
void trb_pipeline_free(trb_pipeline_t *p);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_STREAMER_PIPELINE_H */
