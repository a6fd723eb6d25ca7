/*
 * config.h — declarative configuration tables (STYLE.md 3.7; models:
 * Fluent Bit flb_config_map, Redis createIntConfig, nginx typed slots).
 *
 * A component describes its settings once, as a table of trb_config_entry_t
 * (name, type, default, bounds, unit, offsetof field, description). The same
 * table then: fills a caller struct with defaults, parses values from flags,
 * environment and files with errors that name where each value came from,
 * rejects unknown and duplicate keys, and generates the --help text.
 *
 * Loading order is the caller's: defaults first, then each source in
 * increasing precedence (file, env, flags); a later set overrides an earlier
 * one. Duplicates are detected within one source (one file, one command
 * line) by passing the same trb_config_seen_t to each set of that source.
 * Once loaded, pass the struct on as `const` — there is no global config.
 *
 * Field types in the caller's struct, by entry type:
 *   TRB_CONFIG_BOOL        bool
 *   TRB_CONFIG_INT64       int64_t
 *   TRB_CONFIG_DOUBLE      double
 *   TRB_CONFIG_STRING      char * (owned; freed by trb_config_free)
 *   TRB_CONFIG_DURATION_MS int64_t, milliseconds ("250ms", "5s", "2m", "1h")
 *   TRB_CONFIG_SIZE_BYTES  int64_t, bytes ("1000", "64KiB", "10MiB", "1GB")
 *
 * Threading: all functions are thread-compatible: a table is immutable and
 * may be shared; one struct / seen set is used by one thread at a time.
 * trb_config_apply_env reads the environment (see its note).
 */
#ifndef TRB_SRC_COMMON_CONFIG_H
#define TRB_SRC_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/common/arena.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Value types of a configuration entry (see the field-type table above). */
typedef enum {
  TRB_CONFIG_BOOL = 0,
  TRB_CONFIG_INT64,
  TRB_CONFIG_DOUBLE,
  TRB_CONFIG_STRING,
  TRB_CONFIG_DURATION_MS,
  TRB_CONFIG_SIZE_BYTES
} trb_config_type_t;

/**
 * One setting. Positional initialization works in C and C++:
 *   {"max_batch_rows", TRB_CONFIG_INT64, "500",
 *    offsetof(trb_streamer_config_t, max_batch_rows), 1, 10000, 0, 0,
 *    "rows", "Maximum rows per AppendRows request."}
 *
 * name          — lower_snake_case key; unique in the table.
 * type          — trb_config_type_t.
 * default_value — text parsed like any other source, or NULL for the zero
 *                 value (false, 0, 0.0, NULL string).
 * offset        — offsetof() of the field in the caller's struct.
 * min, max      — inclusive bounds for INT64 (plain number), DURATION_MS
 *                 (milliseconds) and SIZE_BYTES (bytes). Both 0 = unbounded
 *                 (durations and sizes are never negative anyway).
 * dmin, dmax    — inclusive bounds for DOUBLE; both 0 = unbounded.
 * unit          — shown in help for INT64/DOUBLE ("rows"); may be NULL.
 * description   — one sentence for the help text.
 */
typedef struct trb_config_entry_s {
  const char *name;
  trb_config_type_t type;
  const char *default_value;
  size_t offset;
  int64_t min;
  int64_t max;
  double dmin;
  double dmax;
  const char *unit;
  const char *description;
} trb_config_entry_t;

/**
 * A component's table: `component` names it in help text and table errors
 * ("streamer"); `entries` is an array of `n_entries`, usually static const.
 */
typedef struct trb_config_table_s {
  const char *component;
  const trb_config_entry_t *entries;
  size_t n_entries;
} trb_config_table_t;

/** Longest source label remembered for duplicate reports, in bytes. */
#define TRB_CONFIG_SOURCE_MAX 128

/** Which keys one source has already set (opaque). */
typedef struct trb_config_seen_s trb_config_seen_t;

/**
 * Check the table and write every default into `cfg`.
 *
 * Params:  t — table; borrowed.
 *          cfg — the caller's struct; must be zero-filled (or hold values
 *                set by this table) since string fields are replaced/freed.
 * Returns: GRPC_STATUS_OK; INTERNAL if the table is malformed (empty or
 *          duplicate name, unknown type, a default that does not parse or
 *          is out of bounds), message `config table "streamer": ...`;
 *          RESOURCE_EXHAUSTED if a string default cannot be copied.
 *          `st` (may be NULL) gets detail. On failure `cfg` may be partly
 *          filled; trb_config_free still releases it.
 * Threading: thread-compatible (one thread per `cfg`).
 * Source:  the table's default_value strings.
 */
grpc_status_code trb_config_defaults(const trb_config_table_t *t, void *cfg,
                                     trb_status_t *st);

/**
 * Set one key from its text form.
 *
 * Params:  t, cfg — as trb_config_defaults.
 *          seen — duplicate tracker for the current source, or NULL for
 *                 no duplicate check (e.g. layered overrides).
 *          key — setting name; value — its text; both borrowed.
 *          source — where the value came from, used verbatim at the start
 *                 of error messages: "flag --max_batch_rows",
 *                 "env TRB_MAX_BATCH_ROWS", "pipeline.yaml:12". Borrowed;
 *                 NULL reads "(unknown source)".
 * Returns: GRPC_STATUS_OK and the field updated (a STRING's old value
 *          freed). Otherwise `cfg` is unchanged and `st` (may be NULL) reads
 *          `<source>: ...`:
 *          INVALID_ARGUMENT — unknown key (`unknown configuration key
 *            "x"`), key already set by this source (`key "x" is set more
 *            than once (first at <source>)`), unparsable value, or out of
 *            bounds (`pipeline.yaml:12: key "max_batch_rows": 0 is below
 *            the minimum 1`);
 *          RESOURCE_EXHAUSTED — a string value could not be copied;
 *          INTERNAL — `seen` was created for another table.
 * Threading: thread-compatible (one thread per `cfg` and `seen`).
 * Source:  whatever `source` names (flag, env, file:line).
 */
grpc_status_code trb_config_set(const trb_config_table_t *t, void *cfg,
                                trb_config_seen_t *seen, const char *key,
                                const char *value, const char *source,
                                trb_status_t *st);

/**
 * Apply environment overrides: for each entry, the variable `prefix` +
 * upper-cased name (non-alphanumerics become '_'), e.g. prefix
 * "TRB_STREAMER_" and key "max_batch_rows" read TRB_STREAMER_MAX_BATCH_ROWS.
 * Unset or empty variables are skipped. Variables that match no key are not
 * detected (the environment is shared by all components).
 *
 * Params:  prefix — borrowed; "" allowed.
 * Returns: GRPC_STATUS_OK, or the first trb_config_set error, whose message
 *          starts with `env TRB_STREAMER_MAX_BATCH_ROWS: `; INVALID_ARGUMENT
 *          if a variable name would exceed 255 bytes.
 * Threading: reads the environment with getenv(3); do not run concurrently
 *          with setenv(3) (i.e. call at startup).
 * Source:  config comes from the process environment.
 */
grpc_status_code trb_config_apply_env(const trb_config_table_t *t, void *cfg,
                                      const char *prefix, trb_status_t *st);

/**
 * Append the help text for `t` to `out`: one header line, then per entry
 *   "  max_batch_rows (int64 rows; default 500; range 1..10000;
 *    env TRB_STREAMER_MAX_BATCH_ROWS)\n      <description>\n".
 *
 * Params:  env_prefix — as trb_config_apply_env, or NULL to omit env names.
 *          out — an initialized buffer; text is appended.
 * Returns: GRPC_STATUS_OK; RESOURCE_EXHAUSTED if `out` cannot grow (it then
 *          holds a prefix of the text).
 * Threading: thread-compatible (one thread per `out`).
 */
grpc_status_code trb_config_help(const trb_config_table_t *t,
                                 const char *env_prefix, trb_buf_t *out,
                                 trb_status_t *st);

/**
 * Free the STRING fields of `cfg` and set them to NULL. NULL-safe (`cfg`).
 * Other fields are left as they are.
 * Threading: thread-compatible (one thread per `cfg`).
 */
void trb_config_free(const trb_config_table_t *t, void *cfg);

/**
 * The entry named `key` (borrowed; NULL gives NULL) in `t`.
 * Returns: a pointer into `t` (borrowed), or NULL if there is none.
 * Threading: thread-safe (the table is immutable).
 */
const trb_config_entry_t *trb_config_find(const trb_config_table_t *t,
                                          const char *key);

/**
 * Create a duplicate tracker for one source (one file, one argv).
 * Params:  t — the table the tracker is for; borrowed, must outlive it.
 * Returns: an owned tracker (trb_config_seen_destroy), NULL on allocation
 *          failure.
 * Threading: thread-safe; the tracker is then thread-compatible.
 */
trb_config_seen_t *trb_config_seen_create(const trb_config_table_t *t);

/** Free a tracker. NULL-safe. Threading: owner thread only. */
void trb_config_seen_destroy(trb_config_seen_t *seen);

/**
 * Parse a duration: an unsigned decimal integer followed by a unit "ms",
 * "s", "m" or "h" ("250ms", "5s", "2m"); "0" needs no unit.
 * Returns: true and `*out_ms` in milliseconds; false on bad syntax or
 *          int64 overflow (`*out_ms` untouched). NULL `s` gives false.
 * Threading: thread-safe.
 */
bool trb_config_parse_duration_ms(const char *s, int64_t *out_ms);

/**
 * Parse a size: an unsigned decimal integer with an optional unit, binary
 * "KiB" "MiB" "GiB" "TiB" (x1024^n), decimal "kB" "MB" "GB" "TB" (x1000^n)
 * or "B"; units are case-insensitive ("1000", "64KiB", "10MiB").
 * Returns: true and `*out_bytes`; false on bad syntax or int64 overflow
 *          (`*out_bytes` untouched). NULL `s` gives false.
 * Threading: thread-safe.
 */
bool trb_config_parse_size_bytes(const char *s, int64_t *out_bytes);

/**
 * The name used in help text: "bool", "int64", "double", "string",
 * "duration", "size"; "unknown" for other values.
 * Returns: a static string. Threading: thread-safe.
 */
const char *trb_config_type_name(trb_config_type_t type);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_COMMON_CONFIG_H */
