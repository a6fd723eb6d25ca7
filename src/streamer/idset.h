/*
 * idset.h — the streamer's set of Pub/Sub message ids it is handling or
 * has handled and not yet forgotten: the in-memory half of redelivery
 * de-duplication (DESIGN.md "Delivery semantics", step 4). Rebuilt from
 * the write-ahead log at start-up.
 *
 * States: PENDING (claimed: in a batch not yet appended, or on its way to
 * the dead-letter topic), WRITTEN (its row is in the table), DEAD (it is on
 * the dead-letter topic). A redelivered message that finds its id
 * WRITTEN or DEAD is acked without being written again; one that finds it
 * PENDING waits (its ack handle is parked as a waiter and handed back when
 * the first copy settles).
 *
 * Sharded (64 shards, one mutex each): no global lock on the hot path.
 * Entries are cells of per-shard slabs (an id over 36 bytes gets its own
 * allocation): no allocation per id once the set has reached its peak
 * size, which it keeps until destroyed (cells and slot arrays are reused,
 * not given back) — about 100 bytes per id held at the peak.
 * Threading: every function is thread-safe; callbacks run on the calling
 * thread with the shard lock released.
 */
#ifndef TRB_SRC_STREAMER_IDSET_H
#define TRB_SRC_STREAMER_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum trb_id_state_e {
  TRB_ID_NONE = 0,
  TRB_ID_PENDING = 1,
  TRB_ID_WRITTEN = 2,
  TRB_ID_DEAD = 3,
} trb_id_state_t;

typedef struct trb_idset_s trb_idset_t;

/** Called once per parked waiter (the `waiter` pointer given to claim). */
typedef void (*trb_idset_waiter_cb)(void *ctx, void *waiter,
                                    trb_id_state_t final_state);

/** Create an empty set. Returns NULL when out of memory. */
trb_idset_t *trb_idset_create(void);

/**
 * Claim `id` (`len` bytes) for handling.
 * Returns: TRB_ID_NONE when it was absent — it is now PENDING and the
 *          caller handles the message; TRB_ID_PENDING when another copy is
 *          in flight — `waiter` (non-NULL) is parked and given back to a
 *          waiter callback later; TRB_ID_WRITTEN / TRB_ID_DEAD when it was
 *          already settled (ack it). On allocation failure returns
 *          TRB_ID_NONE without inserting (the message is then handled as
 *          new, which is safe: at worst a later duplicate is not caught).
 *          `tag` (may be NULL) receives the entry's tag when it existed.
 */
trb_id_state_t trb_idset_claim(trb_idset_t *s, const char *id, size_t len,
                               void *waiter, uint64_t *tag);

/**
 * Set the state of `id` (inserting it when absent — WAL replay). Parked
 * waiters are handed to `cb` (may be NULL only when none can exist) with
 * the new state when it is WRITTEN or DEAD. `tag` is stored with the id
 * (the streamer keeps the WAL lsn that records the id's settlement).
 */
void trb_idset_mark(trb_idset_t *s, const char *id, size_t len,
                    trb_id_state_t state, uint64_t tag, trb_idset_waiter_cb cb,
                    void *ctx);

/** The entry of an id the caller claimed (TRB_ID_NONE from
 *  trb_idset_claim_ref): marking through it skips the hash look-up. */
typedef struct trb_idset_entry_s *trb_idset_ref_t;

/**
 * trb_idset_claim, and when it returns TRB_ID_NONE with the id inserted,
 * `*ref` receives its entry (else NULL). The reference is valid while the
 * id is PENDING and owned by the caller: until the caller's
 * trb_idset_mark_ref / trb_idset_mark / trb_idset_forget of the id; it
 * must not be used after that.
 */
trb_id_state_t trb_idset_claim_ref(trb_idset_t *s, const char *id, size_t len,
                                   void *waiter, uint64_t *tag,
                                   trb_idset_ref_t *ref);

/** trb_idset_mark for a claimed id through its reference (non-NULL, see
 *  trb_idset_claim_ref); the reference is invalid afterwards. */
void trb_idset_mark_ref(trb_idset_t *s, trb_idset_ref_t ref,
                        trb_id_state_t state, uint64_t tag,
                        trb_idset_waiter_cb cb, void *ctx);

/**
 * Forget `id`: its messages are settled for good (acks confirmed), or its
 * PENDING handling failed (then parked waiters are handed to `cb` with
 * TRB_ID_NONE: nack them so the message is redelivered).
 */
void trb_idset_forget(trb_idset_t *s, const char *id, size_t len,
                      trb_idset_waiter_cb cb, void *ctx);

/** Forget `id` only if its tag is `tag` (an older settlement record must
 *  not drop a newer one). Returns true when it was forgotten. */
bool trb_idset_forget_tagged(trb_idset_t *s, const char *id, size_t len,
                             uint64_t tag);

/** Current state of `id` (TRB_ID_NONE when absent). */
trb_id_state_t trb_idset_get(trb_idset_t *s, const char *id, size_t len);

/** Ids held. */
size_t trb_idset_size(trb_idset_t *s);

/** Free the set. Parked waiters go to `cb` with TRB_ID_NONE. NULL-safe. */
void trb_idset_destroy(trb_idset_t *s, trb_idset_waiter_cb cb, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_STREAMER_IDSET_H */
