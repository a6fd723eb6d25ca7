/*
 * json_input.h — pure checks and parsing of JSON request bodies for
 * `tributary ingest` (no I/O): UTF-8 validation, nesting depth, one JSON
 * text, NDJSON lines, and JSON string escaping for the replies and
 * envelopes ingest writes itself.
 *
 * Every error is INVALID_ARGUMENT with a message that names the problem
 * ("empty body", "invalid UTF-8 at byte 12", "JSON nested deeper than 64
 * levels", "malformed JSON at line 1 column 7: ..."), which ingest returns
 * verbatim as `{"error": ...}` with HTTP 400.
 *
 * Source: RFC 8259 (JSON), RFC 3629 (UTF-8), the NDJSON spec
 * (github.com/ndjson/ndjson-spec: one JSON text per LF-terminated line,
 * CR before LF allowed).
 * Threading: every function is thread-safe (no shared state).
 */
#ifndef TRB_SRC_INGEST_JSON_INPUT_H
#define TRB_SRC_INGEST_JSON_INPUT_H

#include <stdbool.h>
#include <stddef.h>

#include <grpc/status.h>
#include <jansson.h>

#include "src/common/arena.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Default deepest nesting of arrays/objects accepted in a body. */
#define TRB_INGEST_DEFAULT_MAX_DEPTH 64

/**
 * Whether `s[0..len)` is well-formed UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF).
 * Params:  bad_offset — may be NULL; receives the offset of the first
 *          byte of the first bad sequence when false is returned.
 */
bool trb_ingest_utf8_valid(const char *s, size_t len, size_t *bad_offset);

/**
 * Deepest nesting of `[`/`{` in JSON text `s[0..len)`, ignoring brackets
 * inside strings. Scanning stops once the depth exceeds `limit` (the
 * result is then limit + 1). Not a validator: malformed text gives some
 * number.
 */
int trb_ingest_json_depth(const char *s, size_t len, int limit);

/**
 * Parse one JSON text (any value; duplicate object keys rejected).
 * Checks, in order: only whitespace → "empty body"; invalid UTF-8; depth
 * above `max_depth` (0 = TRB_INGEST_DEFAULT_MAX_DEPTH); malformed JSON.
 * Params:  out — receives a new reference (json_decref) on OK.
 * Returns: OK; INVALID_ARGUMENT as above (message names the problem);
 *          RESOURCE_EXHAUSTED when memory runs out.
 */
grpc_status_code trb_ingest_json_parse(const char *s, size_t len,
                                       int max_depth, json_t **out,
                                       trb_status_t *st);

/** What trb_ingest_json_fast_check learned about a text it accepted. */
typedef struct trb_ingest_json_shape_s {
  /** The top-level value is an object. */
  bool is_object;
  /** The top-level object has the key "data" / "event_type" (spelled
   *  without escapes; keys with escapes are never accepted, see below). */
  bool has_data;
  bool has_event_type;
  /** The value without surrounding whitespace: `s[start..end)`. */
  size_t start, end;
} trb_ingest_json_shape_t;

/**
 * One pass, no allocation, no tree: whether `s[0..len)` certainly passes
 * trb_ingest_json_parse with the same `max_depth` (UTF-8 per RFC 3629,
 * depth, RFC 8259 syntax, no duplicate keys, no `\u0000` in keys).
 * Conservative: it returns false for every text trb_ingest_json_parse
 * rejects and also for some it accepts but this scanner does not decide
 * (object keys with escapes, any `\u0000`, more than 32 keys in one
 * object or 256 open keys in all, integers over 18 digits, numbers with
 * over 200 integer digits or a 3-digit exponent, depth over 128) — call
 * trb_ingest_json_parse then, for the verdict and the reason.
 * Params:  shape — receives what was found when true is returned
 *          (unspecified otherwise).
 * Returns: true when the text is valid JSON under those rules.
 */
bool trb_ingest_json_fast_check(const char *s, size_t len, int max_depth,
                                trb_ingest_json_shape_t *shape);

/**
 * Iterate NDJSON lines: from `*pos`, find the next line that is not only
 * whitespace; set `*line`/`*line_len` to it (without the LF and a CR
 * before it), advance `*pos` past its LF, and return true. Returns false
 * at the end. `*lineno` (may be NULL) receives its 1-based line number
 * when `*lineno` held the number of the line before `*pos` (start at 0).
 */
bool trb_ingest_ndjson_next(const char *s, size_t len, size_t *pos,
                            const char **line, size_t *line_len,
                            size_t *lineno);

/** Whether `s[0..len)` is only JSON whitespace (space, tab, CR, LF). */
bool trb_ingest_json_blank(const char *s, size_t len);

/**
 * Append `s[0..len)` (valid UTF-8) as a JSON string literal with quotes,
 * escaping `"`, `\` and control characters (U+0000..U+001F: the short
 * forms \n \r \t \b \f, else \u00XX). Non-ASCII bytes are copied.
 * Returns: 0; -ENOMEM (buffer content unchanged up to the old length is
 *          not guaranteed; discard the buffer).
 */
int trb_ingest_json_append_str(trb_buf_t *b, const char *s, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_JSON_INPUT_H */
