/*
 * log.h — structured logging: one JSON object per line, in the shape Google
 * Cloud Logging's agent parses from stderr (STYLE.md 3.7; models: Redis
 * serverLog, gpr_set_log_function, SQLite sqlite3_log, Fluent Bit
 * log_suppress_interval).
 *
 * A line looks like (one line, wrapped here):
 *   {"severity":"ERROR","time":"2026-11-20T23:11:26.123456Z",
 *    "component":"streamer","message":"append failed: UNAVAILABLE",
 *    "logging.googleapis.com/sourceLocation":{"file":"src/streamer/x.c",
 *    "line":"42"},"stream":"projects/p/...","attempt":3}
 *
 * Encoding rules:
 *  - Lines are built in a stack buffer of TRB_LOG_LINE_MAX bytes (no malloc)
 *    and handed to the sink in one call; the stderr sink does one write(2)
 *    per line, so lines from several threads never interleave.
 *  - Strings are JSON-escaped: `"` and `\` are backslash-escaped, \n \r \t
 *    use their short forms, every other byte below 0x20 becomes \u00XX.
 *    Invalid UTF-8 (stray continuation bytes, overlong forms, surrogates,
 *    code points above U+10FFFF, cut-off sequences) is replaced by U+FFFD,
 *    one replacement per offending byte, so the line is always valid UTF-8.
 *  - A line that would exceed TRB_LOG_LINE_MAX is cut at a character
 *    boundary: the string being written is closed, fields that do not fit
 *    are dropped, and `"truncated":true` is added as the last member. The
 *    line is still one valid JSON object.
 *  - sourceLocation.line is a JSON string, as LogEntrySourceLocation.line is
 *    an int64 (proto3 JSON maps int64 to strings). Integer fields are JSON
 *    numbers; non-finite doubles become the strings "NaN", "Infinity",
 *    "-Infinity" (proto3 JSON mapping).
 *  - By convention a field named "action" carries what the code was doing
 *    when it logged (nginx `log->action`): TRB_LOG_STR("action", "flushing").
 *
 * Process-wide state: the minimum level and the sink are the only globals;
 * like gpr_set_log_function they are set once at startup (or by tests).
 * Source: https://cloud.google.com/logging/docs/structured-logging (special
 * JSON fields) and google/logging/type/log_severity.proto (severity names).
 */
#ifndef TRB_SRC_COMMON_LOG_H
#define TRB_SRC_COMMON_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include "src/common/clock.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Capacity of one log line in bytes, including the trailing newline. */
#define TRB_LOG_LINE_MAX 4096

/** Severities, in increasing order; names match Cloud Logging's LogSeverity. */
typedef enum {
  TRB_LOG_DEBUG = 0,
  TRB_LOG_INFO,
  TRB_LOG_WARNING,
  TRB_LOG_ERROR
} trb_log_level_t;

/** Value types of a structured field (trb_log_field_t.type). */
typedef enum {
  TRB_LOG_FIELD_STR = 0,
  TRB_LOG_FIELD_INT,
  TRB_LOG_FIELD_DBL,
  TRB_LOG_FIELD_BOOL
} trb_log_field_type_t;

/**
 * One structured field, emitted as a top-level JSON member `"key":value`.
 * `key` and `v.s` are borrowed for the duration of the log call; a NULL
 * `v.s` is emitted as JSON null. Build fields with the TRB_LOG_STR/INT/DBL/
 * BOOL helpers, which work in C and C++ array initializers.
 */
typedef struct trb_log_field_s {
  const char *key;
  int type; /* a trb_log_field_type_t */
  union {
    const char *s;
    int64_t i;
    double d;
    int b;
  } v;
} trb_log_field_t;

/**
 * A string field. Params: key, value — borrowed for the log call; a NULL
 * value is written as JSON null. Threading: thread-safe (pure).
 */
static inline trb_log_field_t trb_log_field_str(const char *key, const char *value) {
  trb_log_field_t f;
  f.key = key;
  f.type = TRB_LOG_FIELD_STR;
  f.v.s = value;
  return f;
}
/** An integer field (a JSON number). Threading: thread-safe (pure). */
static inline trb_log_field_t trb_log_field_int(const char *key, int64_t value) {
  trb_log_field_t f;
  f.key = key;
  f.type = TRB_LOG_FIELD_INT;
  f.v.i = value;
  return f;
}
/**
 * A floating-point field: a JSON number, or the string "NaN", "Infinity" or
 * "-Infinity". Threading: thread-safe (pure).
 */
static inline trb_log_field_t trb_log_field_dbl(const char *key, double value) {
  trb_log_field_t f;
  f.key = key;
  f.type = TRB_LOG_FIELD_DBL;
  f.v.d = value;
  return f;
}
/**
 * A boolean field (JSON true/false; any nonzero `value` is true).
 * Threading: thread-safe (pure).
 */
static inline trb_log_field_t trb_log_field_bool(const char *key, int value) {
  trb_log_field_t f;
  f.key = key;
  f.type = TRB_LOG_FIELD_BOOL;
  f.v.b = value != 0;
  return f;
}

/**
 * Field builders for TRB_LOGF arrays, usable in C and C++ initializers:
 *   trb_log_field_t f[] = {TRB_LOG_STR("stream", name), TRB_LOG_INT("rows", n)};
 * Keys and string values are borrowed for the duration of the log call.
 */
#define TRB_LOG_STR(k, val) trb_log_field_str((k), (val))
#define TRB_LOG_INT(k, val) trb_log_field_int((k), (int64_t)(val))
#define TRB_LOG_DBL(k, val) trb_log_field_dbl((k), (double)(val))
#define TRB_LOG_BOOL(k, val) trb_log_field_bool((k), (val) ? 1 : 0)

/**
 * Log a printf-style message at `level` for `component` (a short static tag:
 * "ingest", "streamer"). Arguments are not evaluated when `level` is
 * disabled. A single statement; safe in unbraced if/else.
 */
#define TRB_LOG(level, component, ...)                                    \
  do {                                                                    \
    if (!trb_log_enabled(level)) break;                                   \
    trb_log_write((level), (component), __FILE__, __LINE__, NULL, 0,      \
                  __VA_ARGS__);                                           \
  } while (0)

/**
 * As TRB_LOG, with `n_fields` structured fields from the array `fields`
 * (borrowed for the call).
 */
#define TRB_LOGF(level, component, fields, n_fields, ...)                 \
  do {                                                                    \
    if (!trb_log_enabled(level)) break;                                   \
    trb_log_write((level), (component), __FILE__, __LINE__, (fields),     \
                  (n_fields), __VA_ARGS__);                               \
  } while (0)

/**
 * Write one line. Usually reached through TRB_LOG/TRB_LOGF, which check the
 * level first; this function writes regardless of the minimum level.
 *
 * Params:  level — clamped into [TRB_LOG_DEBUG, TRB_LOG_ERROR].
 *          component — tag; borrowed; NULL is written as "".
 *          file, line — call site (__FILE__, __LINE__); borrowed.
 *          fields — `n_fields` fields, borrowed; may be NULL when n_fields 0.
 *          fmt — printf format for "message".
 * Returns: nothing; output errors (EPIPE on stderr, ...) are ignored.
 * Threading: thread-safe. The sink may run concurrently on several threads.
 */
void trb_log_write(trb_log_level_t level, const char *component,
                   const char *file, int line, const trb_log_field_t *fields,
                   size_t n_fields, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/**
 * Set the minimum level written (default TRB_LOG_INFO).
 * Threading: thread-safe (atomic store); meant for startup and tests.
 */
void trb_log_set_level(trb_log_level_t level);

/** The current minimum level. Threading: thread-safe (atomic load). */
trb_log_level_t trb_log_get_level(void);

/**
 * True if a message at `level` would be written (level >= minimum).
 * Threading: thread-safe; one relaxed atomic load, cheap enough per call.
 */
bool trb_log_enabled(trb_log_level_t level);

/**
 * The Cloud Logging severity name of `level`: "DEBUG", "INFO", "WARNING" or
 * "ERROR" ("ERROR" for out-of-range values).
 * Returns: a static string. Threading: thread-safe.
 */
const char *trb_log_level_name(trb_log_level_t level);

/**
 * Parse a level name: "debug", "info", "warning" (or "warn"), "error",
 * case-insensitive.
 * Params:  s — borrowed; NULL is rejected.
 * Returns: true and sets `*out`; false (and `*out` untouched) otherwise.
 * Threading: thread-safe.
 */
bool trb_log_level_parse(const char *s, trb_log_level_t *out);

/**
 * Set the minimum level from the environment variable TRB_LOG_LEVEL, if set
 * and non-empty; otherwise keep the current level.
 *
 * Returns: GRPC_STATUS_OK; INVALID_ARGUMENT if the value is not a level name,
 *          with `st` (may be NULL) reading `env TRB_LOG_LEVEL: unknown log
 *          level "x" (expected debug, info, warning or error)`.
 * Threading: call at startup, before threads that may call setenv(3).
 * Source:  config comes from env TRB_LOG_LEVEL.
 */
grpc_status_code trb_log_init_from_env(trb_status_t *st);

/**
 * A sink receives each finished line: `line` is `len` bytes ending in '\n',
 * and is also NUL-terminated (line[len] == '\0'). `line` is borrowed for the
 * duration of the call.
 */
typedef void (*trb_log_sink_cb)(trb_log_level_t level, const char *line,
                                size_t len, void *user);

/**
 * Replace the sink. NULL `cb` restores the default (stderr, one write(2) per
 * line). `user` is borrowed and passed back to `cb`.
 *
 * Callback: `cb` runs on the logging thread, possibly on several threads at
 *          once; it must be thread-safe and must not call trb_log_set_sink.
 *          After trb_log_set_sink returns, the previous sink is never called
 *          again, so its `user` may be freed.
 * Threading: thread-safe; waits for sink calls in progress.
 */
void trb_log_set_sink(trb_log_sink_cb cb, void *user);

/**
 * Rate limiter for repeated messages: at most `burst` messages per
 * `interval_ms` window (Linux ___ratelimit). Initialize with
 * TRB_LOG_RATELIMIT_INIT (static or automatic storage) or
 * trb_log_ratelimit_init. Fields are private.
 */
typedef struct trb_log_ratelimit_s {
  int64_t interval_ms;   /* window length; <= 0 disables limiting */
  uint32_t burst;        /* messages allowed per window; 0 acts as 1 */
  pthread_mutex_t mu;    /* guards the three fields below */
  int64_t window_start_ms; /* start of the current window; -1 = none yet */
  uint32_t allowed;      /* messages allowed in the current window */
  uint64_t suppressed;   /* calls refused since the last allowed one */
} trb_log_ratelimit_t;

/** Static initializer: `static trb_log_ratelimit_t rl = TRB_LOG_RATELIMIT_INIT(5000, 10);` */
#define TRB_LOG_RATELIMIT_INIT(interval_ms_, burst_) \
  { (interval_ms_), (burst_), PTHREAD_MUTEX_INITIALIZER, -1, 0, 0 }

/**
 * Initialize `rl` at run time (same as TRB_LOG_RATELIMIT_INIT).
 * Params:  interval_ms — window in milliseconds (<= 0: never limit);
 *          burst — messages per window (0 acts as 1).
 * Threading: not thread-safe; before `rl` is shared. No deinit is needed.
 */
void trb_log_ratelimit_init(trb_log_ratelimit_t *rl, int64_t interval_ms,
                            uint32_t burst);

/**
 * Decide whether a message may be logged now.
 *
 * Params:  rl — limiter; borrowed.
 *          now_ms — CLOCK_MONOTONIC milliseconds (trb_clock_mono_ms()).
 *          suppressed — may be NULL. When this returns true, set to the
 *                   number of calls refused since the previous allowed call
 *                   (then reset), for a "(N similar messages suppressed)"
 *                   note. Not written when this returns false.
 * Returns: true if the caller should log; false to drop the message. A new
 *          window starts at the first call `interval_ms` or more after the
 *          previous window's start.
 * Threading: thread-safe (internal mutex).
 */
bool trb_log_ratelimit_allow(trb_log_ratelimit_t *rl, int64_t now_ms,
                             uint64_t *suppressed);

/**
 * TRB_LOG through a rate limiter `rl` (a trb_log_ratelimit_t *). When calls
 * were suppressed since the last line, the line carries an integer field
 * "suppressed" with their count. Arguments are not evaluated when the level
 * is disabled or the limiter refuses.
 */
#define TRB_LOG_RATELIMITED(rl, level, component, ...)                     \
  do {                                                                     \
    uint64_t trb_log_sup_ = 0;                                             \
    trb_log_field_t trb_log_f_;                                            \
    if (!trb_log_enabled(level)) break;                                    \
    if (!trb_log_ratelimit_allow((rl), trb_clock_mono_ms(), &trb_log_sup_)) \
      break;                                                               \
    trb_log_f_ = trb_log_field_int("suppressed", (int64_t)trb_log_sup_);   \
    trb_log_write((level), (component), __FILE__, __LINE__, &trb_log_f_,   \
                  trb_log_sup_ != 0 ? 1u : 0u, __VA_ARGS__);               \
  } while (0)

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_COMMON_LOG_H */
