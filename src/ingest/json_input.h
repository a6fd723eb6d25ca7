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
 * escaping `"`, `\` and control characters.
 * Returns: 0; -ENOMEM (buffer content unchanged up to the old length is
 *          not guaranteed; discard the buffer).
 */
int trb_ingest_json_append_str(trb_buf_t *b, const char *s, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_JSON_INPUT_H */
