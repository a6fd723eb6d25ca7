/*
 * gen.h — the event generator of `tributary gen` and `tributary up` (pure:
 * no I/O, no clock, no global state). Deterministic: the same config
 * (seed included) yields the same events, byte for byte.
 *
 * Event kinds, and where each goes in the example pipeline
 * (examples/emulator.json, examples/pipelines, examples/tables):
 *   order          backend-events topic, event_type "order" →
 *                  backend_events.order_events (nested items[], a
 *                  shipping_address record, NUMERIC prices and totals)
 *   inventory      backend-events, "inventory" →
 *                  backend_events.inventory_events
 *   user_activity  backend-events, "user_activity" →
 *                  backend_events.user_activity_events (metadata record)
 *   issue          issues topic via ingest's wrap route (POST /) →
 *                  tributary.issues (the envelope; the event is its payload)
 *   raw_order      raw-orders topic → tributary.raw_orders
 * Values vary like the shared corpus (../shared/corpus/backend_events):
 * ids in the corpus's styles (ord-12345, UUIDs, cust-001, prod-001,
 * wh-eu-west-1), statuses pending/processing/shipped/delivered, reasons
 * restock/sale/return/damage, activity types login/logout/view_product/
 * add_to_cart/remove_from_cart, platforms web/mobile/tablet, timestamps as
 * RFC 3339 with "Z", with a ±hh:mm offset, with 3 or 6 fraction digits,
 * and — for order_date only, as in the corpus — a bare date "2023-01-01"
 * (the transcoder reads it as midnight UTC, transcode.h).
 *
 * Malformed events (a configurable fraction, backend-events kinds only),
 * each tagged with the streamer stage that must dead-letter it
 * (docs/streamer.md "What happens to a message"):
 *   BROKEN_JSON       not JSON at all          stage "parse" (through
 *                     ingest the request is refused with 400 instead:
 *                     ingest only publishes well-formed JSON)
 *   UNKNOWN_TYPE      event_type no route has  stage "route"
 *   WRONG_TYPE        a value of the wrong JSON type for its column
 *                     (quantity "two", reason 7.5 as object, ...)
 *                                              stage "transcode"
 *   MISSING_REQUIRED  a REQUIRED column absent stage "transcode"
 *
 * Threading: a trb_gen_t is used by one thread at a time; distinct
 * generators are independent.
 */
#ifndef TRB_SRC_GEN_GEN_H
#define TRB_SRC_GEN_GEN_H

#include <stdint.h>

#include "src/common/arena.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What an event is. */
typedef enum trb_gen_kind_e {
  TRB_GEN_ORDER = 0,
  TRB_GEN_INVENTORY = 1,
  TRB_GEN_USER_ACTIVITY = 2,
  TRB_GEN_ISSUE = 3,
  TRB_GEN_RAW_ORDER = 4,
  TRB_GEN_KINDS = 5,
} trb_gen_kind_t;

/** How an event is broken (TRB_GEN_VALID: it is not). */
typedef enum trb_gen_defect_e {
  TRB_GEN_VALID = 0,
  TRB_GEN_BROKEN_JSON = 1,
  TRB_GEN_UNKNOWN_TYPE = 2,
  TRB_GEN_WRONG_TYPE = 3,
  TRB_GEN_MISSING_REQUIRED = 4,
  TRB_GEN_DEFECTS = 5,
} trb_gen_defect_t;

/** Settings. Zero-initialise, then set what you need. */
typedef struct trb_gen_config_s {
  /** PRNG seed (splitmix64); 0 is a valid seed. */
  uint64_t seed;
  /** Fraction of events made malformed, 0..1 (clamped). Only order,
   *  inventory and user_activity events are made malformed. */
  double malformed_fraction;
  /** Relative weights of the kinds; all zero = the default mix
   *  (order 30, inventory 25, user_activity 30, issue 10, raw_order 5). */
  uint32_t weights[TRB_GEN_KINDS];
  /** Event time of the first event, microseconds since the Unix epoch;
   *  0 = 2025-01-15T00:00:00Z. Later events are spread after it (about
   *  50 ms apart, with jitter). */
  int64_t base_time_us;
} trb_gen_config_t;

/** Generator state (plain data; copyable). */
typedef struct trb_gen_s {
  trb_gen_config_t cfg;
  uint64_t state;      /* splitmix64 state */
  uint64_t seq;        /* events generated so far */
  uint64_t weight_sum; /* of cfg.weights */
} trb_gen_t;

/** What one generated event is, and where it must end up. Strings are
 *  static. */
typedef struct trb_gen_event_s {
  trb_gen_kind_t kind;
  trb_gen_defect_t defect;
  /** Sequence number (0-based) of the event in this generator. */
  uint64_t seq;
  /** Pub/Sub topic id of the example pipeline ("backend-events",
   *  "issues", "raw-orders"). */
  const char *topic;
  /** Ingest route path that publishes to `topic` as `tributary up` sets
   *  it up: "/events" (raw), "/" (wrap into the issues envelope),
   *  "/orders" (raw). */
  const char *path;
  /** Table a valid event is written to ("dataset.table"); for a malformed
   *  one the table it would have gone to, or NULL (UNKNOWN_TYPE,
   *  BROKEN_JSON). */
  const char *table;
  /** Streamer dead-letter stage a malformed event must get ("parse",
   *  "route", "transcode"); NULL for a valid event. */
  const char *stage;
  /** The event_type value written, or NULL (issue, raw_order, broken). */
  const char *event_type;
} trb_gen_event_t;

/** Initialise `g` from `cfg` (copied). */
void trb_gen_init(trb_gen_t *g, const trb_gen_config_t *cfg);

/**
 * Generate the next event: append its JSON text (one line, no newline) to
 * `out` and describe it in `ev`.
 * Returns: 0; -ENOMEM (`out` may hold part of the event: discard or reset
 *          it; the generator has still advanced).
 */
int trb_gen_next(trb_gen_t *g, trb_buf_t *out, trb_gen_event_t *ev);

/** Name of a kind ("order", "inventory", "user_activity", "issue",
 *  "raw_order"); "?" when out of range. */
const char *trb_gen_kind_name(trb_gen_kind_t k);

/** Name of a defect ("valid", "broken_json", "unknown_event_type",
 *  "wrong_type", "missing_required"); "?" when out of range. */
const char *trb_gen_defect_name(trb_gen_defect_t d);

/**
 * Format `us` (microseconds since the Unix epoch) in one of the generator's
 * timestamp styles into `out` (at least 40 bytes):
 *   0 "2025-01-15T10:30:00Z"         1 "2025-01-15T10:30:00.123Z"
 *   2 "2025-01-15T10:30:00.123456Z"  3 "2025-01-15T12:30:00+02:00"
 *   4 "2025-01-15T05:30:00-05:00"    5 "2025-01-15" (date only)
 * Every style but 5 denotes the instant `us` truncated to its precision.
 */
void trb_gen_format_time(int64_t us, int style, char *out);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_GEN_GEN_H */
