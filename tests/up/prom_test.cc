// prom_test — the Prometheus text reader behind `tributary up`'s progress
// and summary: sums by label, label unescaping, histogram quantiles, and
// the snapshot fold of real ingest / streamer metric names.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "src/up/prom.h"
#include "src/up/snapshot.h"

namespace {

const char kStream[] =
    "# HELP tributary_stream_rows_appended_total Rows.\n"
    "# TYPE tributary_stream_rows_appended_total counter\n"
    "tributary_stream_rows_appended_total{table=\"a.b\"} 10\n"
    "tributary_stream_rows_appended_total{table=\"a.c\"} 5\n"
    "tributary_stream_rows_appended_total_other 99\n"
    "tributary_stream_dead_letters_total{stage=\"route\",table=\"\"} 3\n"
    "tributary_stream_dead_letters_total{stage=\"transcode\",table=\"a.b\"} 2\n"
    "tributary_stream_messages_in_flight 4\n"
    "tributary_stream_end_to_end_latency_seconds_bucket{le=\"0.01\"} 0\n"
    "tributary_stream_end_to_end_latency_seconds_bucket{le=\"0.1\"} 50\n"
    "tributary_stream_end_to_end_latency_seconds_bucket{le=\"1\"} 100\n"
    "tributary_stream_end_to_end_latency_seconds_bucket{le=\"+Inf\"} 100\n"
    "tributary_stream_end_to_end_latency_seconds_count 100\n";

TEST(Prom, SumsByNameAndLabel) {
  size_t n = sizeof kStream - 1;
  EXPECT_EQ(trb_prom_sum(kStream, n, "tributary_stream_rows_appended_total", nullptr, nullptr),
            15);
  EXPECT_EQ(trb_prom_sum(kStream, n, "tributary_stream_rows_appended_total", "table", "a.c"), 5);
  EXPECT_EQ(trb_prom_sum(kStream, n, "tributary_stream_dead_letters_total", "stage", "route"), 3);
  EXPECT_EQ(trb_prom_sum(kStream, n, "nope", nullptr, nullptr), 0);
}

TEST(Prom, LabelsUnescapedAndBracesInsideValues) {
  std::string t = "m{a=\"x\\\"}y\",b=\"1\\\\2\\n\"} 7\n";
  EXPECT_EQ(trb_prom_sum(t.data(), t.size(), "m", "b", "1\\2\n"), 7);
  EXPECT_EQ(trb_prom_sum(t.data(), t.size(), "m", "a", "x\"}y"), 7);
  char out[16];
  EXPECT_EQ(trb_prom_label("a=\"v\"", 5, "b", out, sizeof out), 0);
}

TEST(Prom, HistogramQuantilesInterpolateAndMerge) {
  trb_prom_hist_t h{};
  EXPECT_EQ(trb_prom_hist_quantile(&h, 0.5), -1);
  trb_prom_hist_add(&h, kStream, sizeof kStream - 1, "tributary_stream_end_to_end_latency_seconds");
  ASSERT_EQ(h.n, 4);
  EXPECT_NEAR(trb_prom_hist_quantile(&h, 0.5), 0.1, 1e-9);
  EXPECT_NEAR(trb_prom_hist_quantile(&h, 0.25), 0.055, 1e-9);  // halfway in (0.01, 0.1]
  EXPECT_NEAR(trb_prom_hist_quantile(&h, 0.99), 0.982, 1e-9);
  trb_prom_hist_add(&h, kStream, sizeof kStream - 1, "tributary_stream_end_to_end_latency_seconds");
  EXPECT_EQ(h.count[3], 200);
  EXPECT_NEAR(trb_prom_hist_quantile(&h, 0.5), 0.1, 1e-9);
  // Everything beyond the last finite bound: the bound.
  std::string inf = "x_bucket{le=\"1\"} 0\nx_bucket{le=\"+Inf\"} 5\n";
  trb_prom_hist_t g{};
  trb_prom_hist_add(&g, inf.data(), inf.size(), "x");
  EXPECT_EQ(trb_prom_hist_quantile(&g, 0.5), 1);
}

TEST(Snapshot, FoldsAndDiffs) {
  trb_up_snapshot_t a{}, b{}, d{};
  trb_up_snapshot_add_stream(&a, kStream, sizeof kStream - 1);
  EXPECT_EQ(a.rows, 15);
  EXPECT_EQ(a.dead, 5);
  EXPECT_EQ(a.in_flight, 4);
  EXPECT_EQ(a.n_tables, 2);
  std::string ing = "tributary_ingest_events_published_total{route=\"/\"} 7\n"
                    "tributary_ingest_events_published_total{route=\"/events\"} 13\n"
                    "tributary_ingest_rejected_total{reason=\"bad_request\"} 2\n";
  trb_up_snapshot_add_ingest(&a, ing.data(), ing.size());
  EXPECT_EQ(a.published, 20);
  EXPECT_EQ(a.refused, 2);
  b = a;
  trb_up_snapshot_add_stream(&b, kStream, sizeof kStream - 1);  // doubles every counter
  trb_up_snapshot_diff(&b, &a, &d);
  EXPECT_EQ(d.rows, 15);
  EXPECT_EQ(d.dead, 5);
  EXPECT_EQ(d.published, 0);
  EXPECT_EQ(d.e2e.count[3], 100);
}

}  // namespace
