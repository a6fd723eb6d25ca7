/*
 * filter.h — the Pub/Sub subscription filter language: parse a
 * `Subscription.filter` expression once, then evaluate it against each
 * message's attributes. A pure codec: no I/O, no global state.
 *
 * Grammar (docs.cloud.google.com/pubsub/docs/filtering, "Syntax to create a
 * filter"; PROTOCOL.md fact 64). Whitespace (space, \t, \n, \r, \f, \v) may
 * separate any two tokens.
 *
 *   filter  := expr                     -- or empty / all whitespace
 *   expr    := unary { AND unary }      -- one operator per level: AND and
 *            | unary { OR unary }       -- OR never mix without parentheses
 *   unary   := NOT unary | "-" unary | primary     -- NOT binds tightest
 *   primary := "(" expr ")"
 *            | attributes ":" key                  -- key is present
 *            | attributes "." key "=" string       -- present and equal
 *            | attributes "." key "!=" string      -- NOT (... = ...)
 *            | hasPrefix "(" attributes "." key "," string ")"
 *   key     := [A-Za-z0-9_-]+ | string
 *   string  := '"' { char | escape } '"'
 *
 * Semantics and rules, as documented:
 *   - Keys and values are case-sensitive and compared byte for byte.
 *   - AND, OR and NOT must be upper case; `-` is a synonym for NOT.
 *   - `attributes.k != "v"` matches messages without `k` too (the docs:
 *     "Messages without the name attribute and the value of com"), i.e. it is
 *     exactly NOT `attributes.k = "v"`. Likewise NOT hasPrefix(...) matches
 *     messages without the key.
 *   - hasPrefix is the only function; regular expressions are not supported.
 *   - An equality must have a key on the left and a string literal on the
 *     right ("com" = attributes.k and attributes.a = attributes.b are
 *     rejected); an operand of AND/OR must be a complete expression.
 *   - At most 256 bytes.
 *   - String escapes (CEL's set, which the docs call "Unicode, hexadecimal,
 *     and octal escape sequences"): \a \b \f \n \r \t \v \\ \" \' \` \?,
 *     \xHH or \XHH and \ooo (octal, <= \377) — both denote the code point
 *     U+0000..U+00FF, stored UTF-8 encoded, as in CEL string literals —
 *     \uHHHH and \UHHHHHHHH (Unicode scalar values only, no surrogates).
 *     Control characters (< 0x20, 0x7F) inside a literal must be escaped.
 *   - The whole filter must be valid UTF-8 (it is a proto3 string field);
 *     outside string literals only ASCII is meaningful.
 *
 * Source: google.pubsub.v1.Subscription.filter (pubsub.proto field 12) and
 * the "Filter messages from a subscription" guide cited above.
 */
#ifndef TRB_SRC_EMULATOR_PUBSUB_FILTER_H
#define TRB_SRC_EMULATOR_PUBSUB_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include <grpc/status.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest accepted filter, in bytes (the documented limit). */
#define TRB_PS_FILTER_MAX_BYTES 256

/**
 * A parsed filter: immutable after trb_ps_filter_parse returns. Opaque.
 * Threading: any number of threads may call trb_ps_filter_match on the same
 * filter concurrently; trb_ps_filter_free must not race with them.
 */
typedef struct trb_ps_filter_s trb_ps_filter_t;

/**
 * Parse a subscription filter expression.
 *
 * Params:  expr — NUL-terminated filter text; borrowed. NULL is treated as
 *                 "" (an absent proto string field).
 *          out  — receives the parsed filter (owned by the caller; release
 *                 with trb_ps_filter_free), or NULL when `expr` is empty or
 *                 all whitespace (then every message matches). Set to NULL on
 *                 every error. Must not be NULL.
 *          st   — optional detail (may be NULL).
 * Returns: GRPC_STATUS_OK on success.
 *          INVALID_ARGUMENT when the filter is longer than
 *          TRB_PS_FILTER_MAX_BYTES bytes (checked first, before anything
 *          else), is not valid UTF-8, has a syntax error, uses an unknown
 *          function (e.g. hasSuffix) or identifier, or mixes AND and OR
 *          without parentheses. The message names the reason and the
 *          0-based byte offset in `expr`: "invalid filter: <reason> at byte
 *          offset N". Also when `out` is NULL.
 *          RESOURCE_EXHAUSTED when memory allocation fails.
 * Memory:  the result is one allocation sized to the filter (under 4 KiB);
 *          parsing also uses one temporary allocation of about 4 KiB.
 * Threading: thread-safe (no shared state).
 * Source:  google.pubsub.v1.Subscription.filter; see the grammar above.
 */
grpc_status_code trb_ps_filter_parse(const char *expr, trb_ps_filter_t **out,
                                     trb_status_t *st);

/**
 * Evaluate a filter against one message's attributes.
 *
 * Params:  f      — parsed filter, or NULL (matches every message); borrowed.
 *          keys, values — `n_attrs` parallel NUL-terminated attribute keys
 *                   and values (PubsubMessage.attributes); borrowed, read
 *                   only during the call. May be NULL when n_attrs is 0. If a
 *                   key occurs more than once, the first occurrence counts.
 *          n_attrs — number of attributes.
 * Returns: true when the message matches (is delivered), false when it does
 *          not (the service auto-acknowledges it).
 * Cost:    O(leaves × n_attrs) byte comparisons; no allocation.
 * Threading: thread-safe for concurrent calls on the same filter.
 */
bool trb_ps_filter_match(const trb_ps_filter_t *f, const char *const *keys,
                         const char *const *values, size_t n_attrs);

/** Release a filter from trb_ps_filter_parse. NULL-safe. Not thread-safe
 *  with concurrent trb_ps_filter_match calls on the same filter. */
void trb_ps_filter_free(trb_ps_filter_t *f);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_EMULATOR_PUBSUB_FILTER_H */
