/*
 * source.h — the events `tributary gen` and `tributary up` send: lines of
 * JSON Lines files (replayed verbatim, in file order) followed by the
 * generator's events (gen.h). Reads files; no network.
 *
 * A replayed line goes to the route `replay_path` (e.g. "/events", the raw
 * backend-events route); blank lines are skipped. Whether a line is
 * `batchable` (exactly one JSON object, so ingest will take it in an
 * NDJSON batch) is decided with the transcoder's JSON reader
 * (trb_bq_json_check).
 *
 * Threading: one thread at a time.
 */
#ifndef TRB_SRC_GEN_SOURCE_H
#define TRB_SRC_GEN_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/common/arena.h"
#include "src/gen/gen.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trb_gen_source_s trb_gen_source_t;

/** One event. Pointers valid until the next trb_gen_source_next. */
typedef struct trb_gen_item_s {
  const char *json;
  size_t len;
  /** Ingest route path ("/events", "/", "/orders"). */
  const char *path;
  /** Pub/Sub topic id for direct publishing. */
  const char *topic;
  /** One JSON object: may share an NDJSON batch. */
  bool batchable;
  /** true for a replayed file line; false for a generated event. */
  bool replayed;
  /** Generated events: what the generator made (else zeroed). */
  trb_gen_event_t ev;
} trb_gen_item_t;

/**
 * Read the files and set up the generator.
 * Params:  files/n_files — JSON Lines files (read whole now; borrowed).
 *          replay_path, replay_topic — where replayed lines go (copied).
 *          gen_cfg — generator settings (copied).
 *          gen_events — generated events after the files; negative =
 *          unlimited.
 *          err/err_len — receives a message on failure.
 * Returns: the source; NULL on error (unreadable file, out of memory).
 */
trb_gen_source_t *trb_gen_source_create(const char *const *files,
                                        size_t n_files,
                                        const char *replay_path,
                                        const char *replay_topic,
                                        const trb_gen_config_t *gen_cfg,
                                        int64_t gen_events, char *err,
                                        size_t err_len);

/** The next event into `it`. Returns true, or false when exhausted. */
bool trb_gen_source_next(trb_gen_source_t *s, trb_gen_item_t *it);

/** Lines of the files (non-blank), all of them. */
uint64_t trb_gen_source_replay_lines(const trb_gen_source_t *s);

/** Free. NULL-safe. */
void trb_gen_source_destroy(trb_gen_source_t *s);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_GEN_SOURCE_H */
