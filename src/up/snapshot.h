/*
 * snapshot.h — one reading of the pipeline's counters for `tributary up`:
 * ingest's and the streamers' /metrics (prom.h) folded into events
 * published, rows per table, dead letters per stage and table, messages in
 * flight and the end-to-end latency histogram; differences between two
 * readings. Pure apart from trb_up_snapshot_scrape (HTTP GETs).
 *
 * Threading: a snapshot is plain data, used by one thread at a time.
 */
#ifndef TRB_SRC_UP_SNAPSHOT_H
#define TRB_SRC_UP_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>

#include "src/up/prom.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TRB_UP_MAX_TABLES 16
#define TRB_UP_MAX_DL 32

typedef struct trb_up_count_s {
  char table[128]; /* "dataset.table", or "" (dead letters without one) */
  char stage[16];  /* dead letters: parse, route, transcode, append */
  double n;
} trb_up_count_t;

typedef struct trb_up_snapshot_s {
  bool ingest_ok;      /* ingest's /metrics answered */
  int streams_ok;      /* streamers whose /metrics answered */
  double published;    /* tributary_ingest_events_published_total */
  double refused;      /* tributary_ingest_rejected_total (all reasons) */
  double received;     /* messages_received_total, all streamers */
  double in_flight;    /* messages_in_flight, all streamers */
  double rows, dead;   /* totals of the arrays below */
  trb_up_count_t tables[TRB_UP_MAX_TABLES];
  int n_tables;
  trb_up_count_t dl[TRB_UP_MAX_DL];
  int n_dl;
  trb_prom_hist_t e2e; /* end_to_end_latency_seconds, merged */
} trb_up_snapshot_t;

/** Fold one ingest /metrics text into `s` (zero-initialised first). */
void trb_up_snapshot_add_ingest(trb_up_snapshot_t *s, const char *text,
                                size_t len);

/** Fold one streamer /metrics text into `s`. */
void trb_up_snapshot_add_stream(trb_up_snapshot_t *s, const char *text,
                                size_t len);

/**
 * Read ingest (port `ingest_port`, 0 = skip) and the streamers (`ports`,
 * `n_ports`) on 127.0.0.1 into `s` (reset first).
 * Params:  timeout_ms — per request.
 */
void trb_up_snapshot_scrape(trb_up_snapshot_t *s, int ingest_port,
                            const int *ports, int n_ports, int timeout_ms);

/** `out` = `now` - `base` for every counter and histogram bucket (what
 *  happened between the two readings); gauges (in_flight) from `now`. */
void trb_up_snapshot_diff(const trb_up_snapshot_t *now,
                          const trb_up_snapshot_t *base,
                          trb_up_snapshot_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_UP_SNAPSHOT_H */
