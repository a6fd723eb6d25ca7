/*
 * prom.h — read Prometheus text exposition (format 0.0.4) as served on the
 * /metrics endpoints of `tributary ingest` and `tributary stream`: sample
 * lookup by name and labels, and quantiles of histograms. Pure (no I/O).
 *
 * Source: prometheus.io/docs/instrumenting/exposition_formats (sample line
 * `name{label="value",...} value [timestamp]`; histogram `_bucket` series
 * with cumulative counts by `le`, `le="+Inf"` equal to `_count`).
 * Threading: thread-safe (no state).
 */
#ifndef TRB_SRC_UP_PROM_H
#define TRB_SRC_UP_PROM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Called for each sample of the metric asked for.
 * Params: labels — the text between the braces ("" when none), `labels_len`
 *         bytes, not NUL-terminated; value — the sample value.
 */
typedef void (*trb_prom_sample_cb)(void *user, const char *labels,
                                   size_t labels_len, double value);

/** Call `cb` for every sample named exactly `name` in `text` (`len`
 *  bytes). Comment lines and other metrics are skipped. */
void trb_prom_each(const char *text, size_t len, const char *name,
                   trb_prom_sample_cb cb, void *user);

/**
 * Sum of the samples named `name` whose labels include `label`="`value`"
 * (both NULL: all samples). 0 when there are none.
 */
double trb_prom_sum(const char *text, size_t len, const char *name,
                    const char *label, const char *value);

/**
 * Copy label `label`'s value out of a sample's label text into `out`
 * (`cap` bytes, NUL-terminated, escapes \\ \" \n decoded).
 * Returns 1 when found, 0 when absent.
 */
int trb_prom_label(const char *labels, size_t labels_len, const char *label,
                   char *out, size_t cap);

/** A histogram's cumulative buckets, summed over series. */
#define TRB_PROM_MAX_BUCKETS 64
typedef struct trb_prom_hist_s {
  double le[TRB_PROM_MAX_BUCKETS];    /* upper bounds, ascending; +Inf last */
  double count[TRB_PROM_MAX_BUCKETS]; /* cumulative counts */
  int n;
} trb_prom_hist_t;

/**
 * Add the `<name>_bucket` samples of `text` into `h` (zero-initialise it
 * first; call again with other texts to merge processes with the same
 * bounds).
 */
void trb_prom_hist_add(trb_prom_hist_t *h, const char *text, size_t len,
                       const char *name);

/**
 * The `q` quantile (0..1) of `h`, linearly interpolated inside its bucket
 * (the lower bound of the first bucket is 0; a quantile in the +Inf bucket
 * is the largest finite bound). Returns -1 when `h` holds no observation.
 */
double trb_prom_hist_quantile(const trb_prom_hist_t *h, double q);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_UP_PROM_H */
