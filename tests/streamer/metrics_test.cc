// The streamer's metrics: histogram recording (bucket edges, concurrency)
// and the Prometheus text exposition of a snapshot.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "src/common/arena.h"
#include "src/streamer/metrics.h"
}

namespace {

std::string Render(const trb_stream_metrics_t& m) {
  trb_buf_t b = TRB_BUF_INIT;
  EXPECT_EQ(trb_stream_metrics_render(&m, &b), 0);
  std::string s(b.data ? b.data : "", b.len);
  trb_buf_deinit(&b);
  return s;
}

// Sample lines "name{labels} value" → value; checks every sample's family
// has HELP and TYPE lines before it.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::set<std::string> help, type;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      help.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      type.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    size_t sp = line.rfind(' ');
    EXPECT_NE(sp, std::string::npos) << line;
    std::string key = line.substr(0, sp);
    std::string fam = key.substr(0, key.find('{'));
    for (const char* suf : {"_bucket", "_sum", "_count"}) {
      size_t n = strlen(suf);
      if (!help.count(fam) && fam.size() > n &&
          fam.compare(fam.size() - n, n, suf) == 0)
        fam = fam.substr(0, fam.size() - n);
    }
    EXPECT_TRUE(help.count(fam)) << "no HELP for " << line;
    EXPECT_TRUE(type.count(fam)) << "no TYPE for " << line;
    EXPECT_EQ(out.count(key), 0u) << "duplicate sample " << key;
    out[key] = line.substr(sp + 1);
    EXPECT_EQ(fam.rfind("tributary_stream_", 0), 0u) << line;
  }
  return out;
}

TEST(StreamMetrics, HistogramBucketEdges) {
  trb_sm_hist_t h{};
  trb_sm_hist_observe(&h, -5);        // clamped to 0 → le 0.001
  trb_sm_hist_observe(&h, 1000);      // exactly 1 ms → le 0.001
  trb_sm_hist_observe(&h, 1001);      // → le 0.0025
  trb_sm_hist_observe(&h, 60000000);  // exactly 60 s → le 60
  trb_sm_hist_observe(&h, 60000001);  // → +Inf
  trb_sm_hist_observe_n(&h, 300000, 3);  // 0.3 s x3 → le 0.5
  trb_sm_hist_observe_n(&h, 300000, 0);  // nothing
  EXPECT_EQ(h.bucket[0], 2u);
  EXPECT_EQ(h.bucket[1], 1u);
  EXPECT_EQ(h.bucket[8], 3u);
  EXPECT_EQ(h.bucket[TRB_SM_BOUNDS - 1], 1u);
  EXPECT_EQ(h.bucket[TRB_SM_BOUNDS], 1u);
  EXPECT_EQ(trb_sm_hist_count(&h), 8u);
  EXPECT_EQ(h.sum_us, 0u + 1000 + 1001 + 60000000 + 60000001 + 900000);
  EXPECT_DOUBLE_EQ(trb_sm_bounds_s[8], 0.5);
}

TEST(StreamMetrics, HistogramConcurrentObserversLoseNothing) {
  trb_sm_hist_t h{};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++)
    ts.emplace_back([&h, t] {
      for (int i = 0; i < 50000; i++) trb_sm_hist_observe(&h, (i % 7) * 1000 * (t + 1));
    });
  for (auto& t : ts) t.join();
  trb_sm_hist_t acc{};
  trb_sm_hist_read(&h, &acc);
  trb_sm_hist_read(&h, &acc);  // reads add up (per-worker sums)
  EXPECT_EQ(trb_sm_hist_count(&acc), 2u * 4 * 50000);
  uint64_t want_sum = 0;
  for (int t = 0; t < 4; t++)
    for (int i = 0; i < 50000; i++) want_sum += (uint64_t)((i % 7) * 1000 * (t + 1));
  EXPECT_EQ(acc.sum_us, 2 * want_sum);
}

TEST(StreamMetrics, RendersEveryFamilyWithLabels) {
  static const char* const names[] = {"events", "we\"ird\\name\nx"};
  trb_stream_metrics_t m{};
  m.ready = true;
  m.received = 10;
  m.duplicates = 2;
  m.rows_written = 7;
  m.batches_written = 3;
  m.dead_letters = 3;
  m.acks_ok = 9;
  m.acks_failed = 1;
  m.append_retries = 4;
  m.in_flight = 5;
  m.wal_full = 6;
  m.replayed_batches = 11;
  m.replayed_rows = 12;
  m.n_tables = 2;
  m.table_names = names;
  m.table_rows[0] = 5;
  m.table_rows[1] = 2;
  m.dead[0][TRB_SM_MAX_TABLES] = 1;  // parse, no table
  m.dead[3][1] = 2;                  // append, second table
  m.has_wal = true;
  m.wal_live_bytes = 4096;
  m.wal_live_segments = 2;
  m.wal_unreleased_records = 3;
  m.wal_records_appended = 20;
  m.wal_bytes_written = 8192;
  m.streams_opened = 4;
  m.reconnects = 1;
  m.lease_extensions = 13;
  m.bq_connections = 2;
  m.bq_retries = 1;
  trb_sm_hist_observe(&m.append_latency, 2000);     // le 0.0025
  trb_sm_hist_observe(&m.append_latency, 1500000);  // le 2.5
  trb_sm_hist_observe_n(&m.e2e_latency, 40000, 7);  // le 0.05

  std::string text = Render(m);
  auto s = Samples(text);
  const std::string P = "tributary_stream_";
  EXPECT_EQ(s[P + "up"], "1");
  EXPECT_EQ(s[P + "ready"], "1");
  EXPECT_EQ(s[P + "messages_received_total"], "10");
  EXPECT_EQ(s[P + "duplicates_acked_total"], "2");
  EXPECT_EQ(s[P + "rows_appended_total{table=\"events\"}"], "5");
  EXPECT_EQ(s[P + "rows_appended_total{table=\"we\\\"ird\\\\name\\nx\"}"], "2");
  EXPECT_EQ(s[P + "batches_appended_total"], "3");
  EXPECT_EQ(s[P + "dead_letters_total{stage=\"parse\",table=\"\"}"], "1");
  EXPECT_EQ(s[P + "dead_letters_total{stage=\"route\",table=\"\"}"], "0");
  EXPECT_EQ(s[P + "dead_letters_total{stage=\"transcode\",table=\"events\"}"], "0");
  EXPECT_EQ(s[P + "dead_letters_total{stage=\"append\",table=\"we\\\"ird\\\\name\\nx\"}"], "2");
  EXPECT_EQ(s.count(P + "dead_letters_total{stage=\"parse\",table=\"events\"}"), 0u);
  EXPECT_EQ(s.count(P + "dead_letters_total{stage=\"append\",table=\"\"}"), 0u);
  EXPECT_EQ(s[P + "dead_letters_confirmed_total"], "3");
  EXPECT_EQ(s[P + "acks_total{result=\"ok\"}"], "9");
  EXPECT_EQ(s[P + "acks_total{result=\"failed\"}"], "1");
  EXPECT_EQ(s[P + "append_retries_total"], "4");
  EXPECT_EQ(s[P + "messages_in_flight"], "5");
  EXPECT_EQ(s[P + "wal_full_total"], "6");
  EXPECT_EQ(s[P + "replayed_batches_total"], "11");
  EXPECT_EQ(s[P + "replayed_rows_total"], "12");
  EXPECT_EQ(s[P + "wal_live_bytes"], "4096");
  EXPECT_EQ(s[P + "wal_live_segments"], "2");
  EXPECT_EQ(s[P + "wal_unreleased_records"], "3");
  EXPECT_EQ(s[P + "wal_records_appended_total"], "20");
  EXPECT_EQ(s[P + "wal_bytes_written_total"], "8192");
  EXPECT_EQ(s[P + "pubsub_streams_opened_total"], "4");
  EXPECT_EQ(s[P + "pubsub_reconnects_total"], "1");
  EXPECT_EQ(s[P + "lease_extensions_total"], "13");
  EXPECT_EQ(s[P + "bigquery_connections_total"], "2");
  EXPECT_EQ(s[P + "bigquery_append_retries_total"], "1");

  // Histograms: cumulative buckets, +Inf = count, sum in seconds.
  const std::string a = P + "append_latency_seconds";
  EXPECT_EQ(s[a + "_bucket{le=\"0.001\"}"], "0");
  EXPECT_EQ(s[a + "_bucket{le=\"0.0025\"}"], "1");
  EXPECT_EQ(s[a + "_bucket{le=\"1\"}"], "1");
  EXPECT_EQ(s[a + "_bucket{le=\"2.5\"}"], "2");
  EXPECT_EQ(s[a + "_bucket{le=\"60\"}"], "2");
  EXPECT_EQ(s[a + "_bucket{le=\"+Inf\"}"], "2");
  EXPECT_EQ(s[a + "_count"], "2");
  EXPECT_EQ(s[a + "_sum"], "1.502000");
  const std::string e = P + "end_to_end_latency_seconds";
  EXPECT_EQ(s[e + "_bucket{le=\"0.025\"}"], "0");
  EXPECT_EQ(s[e + "_bucket{le=\"0.05\"}"], "7");
  EXPECT_EQ(s[e + "_count"], "7");
  EXPECT_EQ(s[e + "_sum"], "0.280000");
  int buckets = 0;
  for (auto& kv : s)
    if (kv.first.rfind(e + "_bucket", 0) == 0) buckets++;
  EXPECT_EQ(buckets, TRB_SM_BOUNDS + 1);
  EXPECT_NE(text.find("# TYPE " + e + " histogram\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE " + P + "messages_in_flight gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE " + P + "acks_total counter\n"), std::string::npos);
  EXPECT_EQ(text.back(), '\n');
}

TEST(StreamMetrics, WithoutWalOrTables) {
  trb_stream_metrics_t m{};
  auto s = Samples(Render(m));
  EXPECT_EQ(s["tributary_stream_ready"], "0");
  EXPECT_EQ(s.count("tributary_stream_wal_live_bytes"), 0u);
  EXPECT_EQ(s["tributary_stream_wal_full_total"], "0");
  EXPECT_EQ(s["tributary_stream_dead_letters_total{stage=\"route\",table=\"\"}"], "0");
  EXPECT_EQ(s["tributary_stream_end_to_end_latency_seconds_count"], "0");
  for (auto& kv : s) EXPECT_EQ(kv.first.find("table=\"x"), std::string::npos);
}

}  // namespace
