/*
 * deadletters.h — `tributary up` reads the dead-letter topic through its
 * inspection subscription (examples/emulator.json:
 * tributary-dead-letter-inspect) and tallies the dead letters of this run
 * by stage and reason (the streamer's attributes tributary_error_stage and
 * tributary_error_reason, docs/streamer.md). Messages are held (leases
 * extended) and nacked at the end, so they stay in the subscription for the
 * user; redeliveries are counted once (by message id). Dead letters
 * published before `since_us` (earlier runs) are not counted.
 *
 * Reasons are normalised so that one kind of problem is one line: quoted
 * values become "…", array indexes [n] become [*], digits after a byte
 * offset are dropped; at most 100 bytes.
 *
 * Threading: create/finish/destroy from one thread (not the rpc loop);
 * counting happens on the subscriber's loop thread, under a mutex.
 */
#ifndef TRB_SRC_UP_DEADLETTERS_H
#define TRB_SRC_UP_DEADLETTERS_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"
#include "src/rpc/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TRB_UP_MAX_REASONS 64

typedef struct trb_up_reason_s {
  char stage[16];
  char reason[104];
  uint64_t n;
} trb_up_reason_t;

typedef struct trb_up_deadletters_s trb_up_deadletters_t;

/**
 * Subscribe to `subscription` (full name) on `ch`.
 * Params:  loop, ch — borrowed, must outlive the reader.
 *          since_us — wall-clock start of this run (µs since the epoch).
 * Returns: OK; the subscriber's errors.
 */
grpc_status_code trb_up_deadletters_start(trb_rpc_loop_t *loop,
                                          trb_rpc_channel_t *ch,
                                          const char *subscription,
                                          int64_t since_us,
                                          trb_up_deadletters_t **out,
                                          trb_status_t *st);

/** Distinct dead letters of this run counted so far. Thread-safe. */
uint64_t trb_up_deadletters_count(trb_up_deadletters_t *d);

/**
 * Copy the tally, largest first, into `out` (`cap` entries).
 * Returns the number of entries written. Thread-safe.
 */
int trb_up_deadletters_reasons(trb_up_deadletters_t *d, trb_up_reason_t *out,
                               int cap);

/** Nack what is held, stop the subscriber (within `timeout_ms`) and free.
 *  NULL-safe. */
void trb_up_deadletters_destroy(trb_up_deadletters_t *d, int64_t timeout_ms);

/** The normalisation above, from `in` (`len` bytes) into `out` (`cap`). */
void trb_up_reason_normalize(const char *in, size_t len, char *out,
                             size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_UP_DEADLETTERS_H */
