/*
 * jsonfield.h — find one field of a JSON object without parsing the rest
 * into memory (pure, no allocation). Used to route messages by a field
 * such as `event_type` before they are transcoded for their table.
 *
 * Threading: thread-safe (no state).
 * Source: RFC 8259.
 */
#ifndef TRB_SRC_STREAMER_JSONFIELD_H
#define TRB_SRC_STREAMER_JSONFIELD_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Kinds of value trb_json_field reports. */
typedef enum trb_json_kind_e {
  TRB_JSON_MISSING = 0, /* no such key (or a path step is not an object) */
  TRB_JSON_STRING,
  TRB_JSON_NUMBER,
  TRB_JSON_BOOL,
  TRB_JSON_NULL,
  TRB_JSON_OBJECT,
  TRB_JSON_ARRAY,
  TRB_JSON_MALFORMED,   /* the text is not valid JSON up to the field */
} trb_json_kind_t;

/**
 * Look up `path` — object keys separated by '.', e.g. "event_type" or
 * "metadata.platform" — in the JSON object at `json` (`len` bytes). Keys
 * compare exactly, escapes included (a key written with \u escapes does
 * not match). When a key repeats, the last one wins (as most parsers).
 * Params:  val, val_len — receive the value's raw text (for strings:
 *          between the quotes, still escaped).
 * Returns: the value's kind; TRB_JSON_MISSING; TRB_JSON_MALFORMED when the
 *          scan meets invalid JSON before the answer is known (the rest of
 *          the text is not checked).
 */
trb_json_kind_t trb_json_field(const char *json, size_t len, const char *path,
                               const char **val, size_t *val_len);

/**
 * As trb_json_field for a top-level key `key` (`key_len` bytes, compared
 * exactly, escapes included) but the FIRST member with that key wins and
 * the scan stops after its value (the rest of the text is not read).
 * Params:  val, val_len — as trb_json_field; raw, raw_len — the value's
 *          whole raw text (strings with their quotes). Borrowed spans of
 *          `json`.
 * Returns: the value's kind; TRB_JSON_MISSING (every member read, none has
 *          the key, or the text is not an object); TRB_JSON_MALFORMED.
 */
trb_json_kind_t trb_json_field_first(const char *json, size_t len,
                                     const char *key, size_t key_len,
                                     const char **val, size_t *val_len,
                                     const char **raw, size_t *raw_len);

/**
 * Whether `key` (`key_len` bytes) is plain: no '"', '\\' or control byte
 * (< 0x20). Such a key reads the same raw and unescaped.
 */
bool trb_json_key_plain(const char *key, size_t key_len);

/**
 * trb_json_field_first for a key the caller has checked with
 * trb_json_key_plain (e.g. once, when the pipeline is loaded): the same
 * answers, with a fast path when the object's first member has the key.
 * Params and returns: as trb_json_field_first. `key` must be plain.
 */
trb_json_kind_t trb_json_field_first_plain(const char *json, size_t len,
                                           const char *key, size_t key_len,
                                           const char **val, size_t *val_len,
                                           const char **raw, size_t *raw_len);

/**
 * Compare a raw JSON string body (as from trb_json_field, escapes intact)
 * with the plain text `want`. Handles \" \\ \/ \b \f \n \r \t and \uXXXX
 * (with surrogate pairs) escapes.
 * Returns: true when equal.
 */
bool trb_json_string_equals(const char *raw, size_t raw_len, const char *want);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_STREAMER_JSONFIELD_H */
