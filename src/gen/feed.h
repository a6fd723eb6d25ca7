/*
 * feed.h — send events to `tributary ingest` over HTTP/1.1 keep-alive
 * connections: per-route NDJSON batches, a few connections in parallel,
 * retries of 503s, and counts of what ingest confirmed.
 *
 * Ingest answers a batch whole (ingest.h): 200 all published, 207 some
 * ("published": n), 400 when any event is malformed — then nothing of the
 * batch was published and the feed resends its events one by one, so only
 * the malformed ones are refused. 503 (buffer full, Pub/Sub unavailable,
 * draining) is retried with backoff until `retry_ms` has passed; a
 * transport error likewise (which can duplicate an event whose publish
 * was confirmed but whose reply was lost — ingest's at-least-once
 * contract).
 *
 * Threading: trb_feed_add / trb_feed_flush / trb_feed_finish from one
 * producer thread; trb_feed_stats and trb_feed_cancel from any thread.
 * Sender threads are internal.
 */
#ifndef TRB_SRC_GEN_FEED_H
#define TRB_SRC_GEN_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Settings; zero-initialise, 0 = default. */
typedef struct trb_feed_config_s {
  /** Ingest's address (IPv4 dotted) and port. Required. */
  const char *host;
  int port;
  /** Parallel keep-alive connections (default 4). */
  int connections;
  /** Most events per request (default 100; 1 = one event per request). */
  int batch_max;
  /** Requests queued and not yet sent before trb_feed_add blocks
   *  (default 4 × connections). */
  int queue_max;
  /** Per-request I/O timeout, ms (default 30000). */
  int timeout_ms;
  /** Longest time a request is retried (503, transport errors), ms
   *  (default 60000). */
  int retry_ms;
} trb_feed_config_t;

/** Counts of events (not requests) so far. */
typedef struct trb_feed_stats_s {
  uint64_t queued;    /* handed to trb_feed_add */
  uint64_t sent;      /* in a request that was answered or gave up */
  uint64_t accepted;  /* confirmed published by ingest (2xx) */
  uint64_t refused;   /* answered 4xx on their own: never published */
  uint64_t failed;    /* 5xx or transport errors after retries */
  uint64_t requests;  /* HTTP requests answered */
  uint64_t retries;   /* requests sent again (503 / transport) */
  uint64_t split;     /* batches refused with 400 and resent one by one */
  /* HTTP round-trip time of answered requests, microseconds. */
  uint64_t rtt_p50_us, rtt_p99_us;
} trb_feed_stats_t;

typedef struct trb_feed_s trb_feed_t;

/**
 * Start the sender threads.
 * Returns: the feed; NULL when out of memory or threads cannot start.
 */
trb_feed_t *trb_feed_create(const trb_feed_config_t *cfg);

/**
 * Queue one event (`len` bytes of JSON text, no newline; copied) for the
 * route `path` ("/events"). Events believed malformed (`batchable` false:
 * not one JSON object on one line) are sent in a request of their own so
 * they do not take a batch down with them.
 * Blocks while the send queue is full. Returns 0; -ECANCELED after
 * trb_feed_cancel; -ENOMEM.
 */
int trb_feed_add(trb_feed_t *f, const char *path, const char *json, size_t len,
                 bool batchable);

/** Send the partly filled batches now (at low rates). Returns as add. */
int trb_feed_flush(trb_feed_t *f);

/**
 * Flush and wait until every queued event is answered (or cancelled).
 * Returns 0, or -ECANCELED.
 */
int trb_feed_finish(trb_feed_t *f);

/** Stop: queued requests are dropped (not counted as sent), retries end,
 *  blocked calls return -ECANCELED. Requests in flight finish. */
void trb_feed_cancel(trb_feed_t *f);

/** A snapshot of the counts. Thread-safe. */
void trb_feed_stats(trb_feed_t *f, trb_feed_stats_t *out);

/** Cancel if needed, join the threads, free. NULL-safe. */
void trb_feed_destroy(trb_feed_t *f);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_GEN_FEED_H */
