// writer_test.cc — trb_bq_writer against the in-process BigQuery Write
// emulator on 127.0.0.1:0: rows appear exactly once (checked in the
// emulator's SQLite), offsets, row errors, request splitting, dropped
// connections and injected in-stream / open errors.
#include "tests/bigquery/writer_fixture.h"

namespace {

using namespace wt;  // NOLINT: the shared fixture

TEST_F(WriterTest, CommittedOffsetsAndRowsOnce) {
  Create(TRB_BQ_STREAM_COMMITTED);
  EXPECT_NE(nullptr, strstr(trb_bq_writer_stream(w_), "/streams/"));
  Collector col(3);
  Append(Rows(0, 1), &col, 0);
  Append(Rows(1, 3), &col, 1);
  Append(Rows(3, 4), &col, 2);
  ASSERT_TRUE(col.WaitAll());
  int64_t want[] = {0, 1, 3};  // fact 20
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(GRPC_STATUS_OK, col.out[i].code) << col.out[i].message;
    EXPECT_EQ(want[i], col.out[i].offset);
    EXPECT_EQ(1, col.out[i].calls);
  }
  EXPECT_EQ(0u, trb_bq_writer_pending(w_));
  ExpectExactlyOnce(4);
  int64_t rc = -1;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_writer_finalize(w_, &rc, &st)) << st.msg;
  EXPECT_EQ(4, rc);
}

TEST_F(WriterTest, DefaultStreamHasNoOffsets) {
  Create(TRB_BQ_STREAM_DEFAULT);
  EXPECT_STREQ("projects/demo/datasets/ds/tables/t/streams/_default", trb_bq_writer_stream(w_));
  Collector col(2);
  Append(Rows(0, 3), &col, 0);
  Append(Rows(3, 5), &col, 1);
  ASSERT_TRUE(col.WaitAll());
  for (auto& o : col.out) {
    EXPECT_EQ(GRPC_STATUS_OK, o.code) << o.message;
    EXPECT_EQ(-1, o.offset);
  }
  EXPECT_EQ(3u, col.out[0].rows_written);
  ExpectExactlyOnce(5);
  trb_status_t st{};
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, trb_bq_writer_finalize(w_, nullptr, &st));
}

TEST_F(WriterTest, TranscodeRowErrorsExcludeOnlyThoseRows) {
  Create(TRB_BQ_STREAM_COMMITTED);
  Collector col(2);
  std::vector<std::string> rows = {R"({"id":0})", R"({"id":"x"})", R"({"id":1})", R"({"name":"no id"})",
                                   R"({"id":2})"};
  Append(rows, &col, 0);
  Append({R"({"id":3})"}, &col, 1);
  ASSERT_TRUE(col.WaitAll());
  EXPECT_EQ(GRPC_STATUS_OK, col.out[0].code) << col.out[0].message;
  EXPECT_EQ(3u, col.out[0].rows_written);
  ASSERT_EQ(2u, col.out[0].row_errors.size());
  EXPECT_EQ(1u, col.out[0].row_errors[0].first);
  EXPECT_EQ(3u, col.out[0].row_errors[1].first);
  EXPECT_NE(std::string::npos, col.out[0].row_errors[1].second.find("id")) << col.out[0].row_errors[1].second;
  EXPECT_EQ(0, col.out[0].offset);
  EXPECT_EQ(3, col.out[1].offset);
  ExpectExactlyOnce(4);
}

TEST_F(WriterTest, AllRowsBadCompletesInline) {
  Create(TRB_BQ_STREAM_COMMITTED);
  Collector col(1);
  Append({"not json", R"({"id":true})"}, &col, 0);
  ASSERT_TRUE(col.out[0].done);  // no request: completed before append returned
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, col.out[0].code);
  EXPECT_EQ(2u, col.out[0].row_errors.size());
  EXPECT_EQ(0u, col.out[0].rows_written);
}

// maxLength is enforced by the server: row_errors, nothing of that request
// written, and the requests behind it move down to the right offsets.
TEST_F(WriterTest, ServerRowErrorsAndOffsetsBehind) {
  Create(TRB_BQ_STREAM_COMMITTED);
  Collector col(3);
  Append(Rows(0, 2), &col, 0);
  Append({R"({"id":100,"name":"abcdefghijkl"})", R"({"id":101})"}, &col, 1);
  Append(Rows(2, 5), &col, 2);
  ASSERT_TRUE(col.WaitAll());
  EXPECT_EQ(GRPC_STATUS_OK, col.out[0].code);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, col.out[1].code);
  ASSERT_EQ(1u, col.out[1].row_errors.size());
  EXPECT_EQ(0u, col.out[1].row_errors[0].first);
  EXPECT_EQ(0u, col.out[1].rows_written);
  EXPECT_EQ(GRPC_STATUS_OK, col.out[2].code) << col.out[2].message;
  EXPECT_EQ(2, col.out[2].offset);
  ExpectExactlyOnce(5);
}

TEST_F(WriterTest, SplitsUnderRequestLimit) {
  Create(TRB_BQ_STREAM_COMMITTED, 2048);
  Collector col(1);
  std::vector<std::string> rows;
  for (int i = 0; i < 300; i++)
    rows.push_back("{\"id\":" + std::to_string(i) + ",\"name\":\"" + std::string(8, 'a' + i % 26) + "\"}");
  Append(rows, &col, 0);
  ASSERT_TRUE(col.WaitAll());
  EXPECT_EQ(GRPC_STATUS_OK, col.out[0].code) << col.out[0].message;
  EXPECT_EQ(0, col.out[0].offset);
  EXPECT_EQ(300u, col.out[0].rows_written);
  ExpectExactlyOnce(300);
  trb_status_t st{};
  std::string big = "{\"id\":1,\"name\":\"" + std::string(4000, 'x') + "\"}";
  const char* p = big.c_str();
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_writer_append(w_, &p, 1, Collector::Cb, nullptr, &st));
}

// The default limit keeps every request under the emulator's (and the
// service's) 10 MB: 24 MB of rows in one append go out as 3 requests.
TEST_F(WriterTest, DefaultLimitSplitsLargeAppend) {
  Create(TRB_BQ_STREAM_COMMITTED);
  Collector col(1);
  std::vector<std::string> rows;
  for (int i = 0; i < 1200; i++)
    rows.push_back("{\"id\":" + std::to_string(i) + ",\"name\":\"" + std::string(20000, 'a' + i % 26) + "\"}");
  // name is STRING(10) in kSchema: use a table without maxLength instead.
  trb_bq_writer_destroy(w_);
  w_ = nullptr;
  trb_status_t st{};
  const char* big = R"([{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"name","type":"STRING"}])";
  trb_bq_table_t t;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(big, strlen(big), &t, &st)) << st.msg;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bqemu_create_table(bq_, "ds", "big", &t, &st)) << st.msg;
  trb_bq_table_deinit(&t);
  trb_bq_writer_config_t c = {};
  c.table = "projects/demo/datasets/ds/tables/big";
  c.kind = TRB_BQ_STREAM_COMMITTED;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_writer_create(loop_, ch_, &c, &w_, &st)) << st.msg;
  Append(rows, &col, 0);
  ASSERT_TRUE(col.WaitAll(60000));
  EXPECT_EQ(GRPC_STATUS_OK, col.out[0].code) << col.out[0].message;
  EXPECT_EQ(1200u, col.out[0].rows_written);
  trb_bq_writer_stats_t ws;
  trb_bq_writer_get_stats(w_, &ws);
  EXPECT_EQ(3, ws.requests_sent);
  EXPECT_EQ(std::vector<std::string>{"{\"c\":1200,\"n\":1200}"},
            Query("SELECT COUNT(*) AS c, COUNT(DISTINCT id) AS n FROM ds.big"));
}

// Throughput of small rows through the writer and the emulator (printed;
// correctness checked).
TEST_F(WriterTest, ThroughputSmallRows) {
  Create(TRB_BQ_STREAM_COMMITTED);
  constexpr int kAppends = 100, kPer = 200;
  Collector col(kAppends);
  std::vector<std::vector<std::string>> batches;
  for (int i = 0; i < kAppends; i++) batches.push_back(Rows(i * kPer, (i + 1) * kPer));
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kAppends; i++) Append(batches[i], &col, i);
  ASSERT_TRUE(col.WaitAll(60000));
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  printf("writer: %d rows in %d appends: %.3f s, %.0f rows/s\n", kAppends * kPer, kAppends, s,
         kAppends * kPer / s);
  for (auto& o : col.out) EXPECT_EQ(GRPC_STATUS_OK, o.code) << o.message;
  ExpectExactlyOnce(kAppends * kPer);
}

// Many appends in flight while connections are dropped and in-stream
// INTERNAL / open-time UNAVAILABLE are injected: every row exactly once.
TEST_F(WriterTest, FaultsEveryRowExactlyOnce) {
  Create(TRB_BQ_STREAM_COMMITTED);
  constexpr int kAppends = 50, kPer = 5;
  Collector col(kAppends);
  trb_status_t st{};
  auto done_upto = [&](int n) {
    return col.cond.WaitFor([&] {
      for (int i = 0; i < n; i++)
        if (!col.out[i].done) return false;
      return true;
    });
  };
  // A: the connection drops with appends in flight.
  for (int i = 0; i < 10; i++) Append(Rows(i * kPer, (i + 1) * kPer), &col, i);
  trb_faults_drop_streams(faults_, GRPC_STATUS_UNAVAILABLE, "dropped");
  ASSERT_TRUE(done_upto(10));
  // B: in-stream INTERNAL, then the reopened stream fails INTERNAL at open.
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, kAppend, 2, GRPC_STATUS_INTERNAL, "injected", &st));
  for (int i = 10; i < 20; i++) Append(Rows(i * kPer, (i + 1) * kPer), &col, i);
  ASSERT_TRUE(done_upto(20));
  EXPECT_EQ(2, trb_faults_injected(faults_));
  // C: dropped, and the next two opens fail UNAVAILABLE.
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, kAppend, 2, GRPC_STATUS_UNAVAILABLE, "injected", &st));
  trb_faults_drop_streams(faults_, GRPC_STATUS_UNAVAILABLE, "dropped");
  for (int i = 20; i < 30; i++) Append(Rows(i * kPer, (i + 1) * kPer), &col, i);
  ASSERT_TRUE(done_upto(30));
  EXPECT_EQ(4, trb_faults_injected(faults_));
  // D: dropped with INTERNAL between two bursts.
  for (int i = 30; i < 40; i++) Append(Rows(i * kPer, (i + 1) * kPer), &col, i);
  trb_faults_drop_streams(faults_, GRPC_STATUS_INTERNAL, "dropped");
  for (int i = 40; i < kAppends; i++) Append(Rows(i * kPer, (i + 1) * kPer), &col, i);
  ASSERT_TRUE(col.WaitAll());
  for (int i = 0; i < kAppends; i++) {
    EXPECT_EQ(GRPC_STATUS_OK, col.out[i].code) << i << ": " << col.out[i].message;
    EXPECT_EQ(i * kPer, col.out[i].offset) << i;
    EXPECT_EQ(1, col.out[i].calls);
  }
  ExpectExactlyOnce(kAppends * kPer);
  trb_bq_writer_stats_t ws;
  trb_bq_writer_get_stats(w_, &ws);
  printf("faults: connections %lld, sent %lld, resent %lld, already_exists %lld, in-stream retries %lld\n",
         (long long)ws.connections, (long long)ws.requests_sent, (long long)ws.requests_resent,
         (long long)ws.already_exists, (long long)ws.retries);
  EXPECT_GE(ws.connections, 5);  // initial, A, C (drop + two failed opens)
  EXPECT_GT(ws.requests_resent, 0);
  EXPECT_GE(ws.requests_sent, kAppends);
}

// _default: an in-stream INTERNAL is retried on the same connection after a
// backoff; the requests behind it are not resent (no duplicates).
TEST_F(WriterTest, DefaultStreamRetriesInStreamError) {
  Create(TRB_BQ_STREAM_DEFAULT);
  Collector col(3);
  Append(Rows(0, 3), &col, 0);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[0].done; }));
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, kAppend, 1, GRPC_STATUS_INTERNAL, "injected", &st));
  Append(Rows(3, 6), &col, 1);
  Append(Rows(6, 9), &col, 2);
  ASSERT_TRUE(col.WaitAll());
  for (auto& o : col.out) EXPECT_EQ(GRPC_STATUS_OK, o.code) << o.message;
  EXPECT_EQ(1, trb_faults_injected(faults_));
  ExpectExactlyOnce(9);
  trb_bq_writer_stats_t ws;
  trb_bq_writer_get_stats(w_, &ws);
  EXPECT_EQ(1, ws.connections);
  EXPECT_EQ(1, ws.retries);
  EXPECT_EQ(1, ws.requests_resent);
  EXPECT_EQ(4, ws.requests_sent);
}

// COMMITTED with one request in flight: retried in place, same offset.
TEST_F(WriterTest, CommittedRetriesInStreamErrorInPlace) {
  Create(TRB_BQ_STREAM_COMMITTED);
  Collector col(2);
  Append(Rows(0, 2), &col, 0);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[0].done; }));
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, kAppend, 1, GRPC_STATUS_ABORTED, "injected", &st));
  Append(Rows(2, 4), &col, 1);
  ASSERT_TRUE(col.WaitAll());
  EXPECT_EQ(GRPC_STATUS_OK, col.out[1].code) << col.out[1].message;
  EXPECT_EQ(2, col.out[1].offset);
  ExpectExactlyOnce(4);
  trb_bq_writer_stats_t ws;
  trb_bq_writer_get_stats(w_, &ws);
  EXPECT_EQ(1, ws.connections);
  EXPECT_EQ(1, ws.retries);
}

// A status that is not retryable goes to the caller; later appends work.
TEST_F(WriterTest, NonRetryableInStreamErrorToCaller) {
  Create(TRB_BQ_STREAM_COMMITTED);
  Collector col(3);
  Append(Rows(0, 2), &col, 0);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[0].done; }));
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_add_error(faults_, kAppend, 1, GRPC_STATUS_PERMISSION_DENIED, "injected", &st));
  Append(Rows(100, 102), &col, 1);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[1].done; }));
  EXPECT_EQ(GRPC_STATUS_PERMISSION_DENIED, col.out[1].code);
  EXPECT_EQ("injected", col.out[1].message);
  EXPECT_EQ(-1, col.out[1].offset);
  Append(Rows(2, 4), &col, 2);
  ASSERT_TRUE(col.WaitAll());
  EXPECT_EQ(GRPC_STATUS_OK, col.out[2].code) << col.out[2].message;
  EXPECT_EQ(2, col.out[2].offset);
  ExpectExactlyOnce(4);
}

TEST_F(WriterTest, DefaultStreamSurvivesDrop) {
  Create(TRB_BQ_STREAM_DEFAULT);
  Collector col(2);
  Append(Rows(0, 3), &col, 0);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[0].done; }));
  trb_faults_drop_streams(faults_, GRPC_STATUS_UNAVAILABLE, "dropped");
  Append(Rows(3, 6), &col, 1);
  ASSERT_TRUE(col.WaitAll());
  EXPECT_EQ(GRPC_STATUS_OK, col.out[1].code) << col.out[1].message;
  ExpectExactlyOnce(6);
}

TEST_F(WriterTest, PendingVisibleAfterFinalizeAndCommit) {
  Create(TRB_BQ_STREAM_PENDING);
  Collector col(2);
  Append(Rows(0, 3), &col, 0);
  trb_faults_drop_streams(faults_, GRPC_STATUS_UNAVAILABLE, "dropped");
  Append(Rows(3, 5), &col, 1);
  ASSERT_TRUE(col.WaitAll());
  EXPECT_EQ(GRPC_STATUS_OK, col.out[1].code) << col.out[1].message;
  EXPECT_EQ(3, col.out[1].offset);
  EXPECT_EQ(std::vector<std::string>{"{\"c\":0}"}, Query("SELECT COUNT(*) AS c FROM ds.t"));
  trb_status_t st{};
  const char* streams[] = {trb_bq_writer_stream(w_)};
  // Not finalized yet: stream_errors, nothing committed.
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, trb_bq_batch_commit(loop_, ch_, kTable, streams, 1, nullptr, &st));
  int64_t rc = -1;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_writer_finalize(w_, &rc, &st)) << st.msg;
  EXPECT_EQ(5, rc);
  int64_t t = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_batch_commit(loop_, ch_, kTable, streams, 1, &t, &st)) << st.msg;
  EXPECT_GT(t, 0);
  ExpectExactlyOnce(5);
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, trb_bq_batch_commit(loop_, ch_, kTable, streams, 1, nullptr, &st));
  EXPECT_NE(nullptr, strstr(st.msg, streams[0])) << st.msg;
}

TEST_F(WriterTest, UnknownTableFailsCreate) {
  trb_bq_writer_config_t c = {};
  c.table = "projects/demo/datasets/ds/tables/nope";
  c.kind = TRB_BQ_STREAM_COMMITTED;
  trb_status_t st{};
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, trb_bq_writer_create(loop_, ch_, &c, &w_, &st)) << st.msg;
  EXPECT_EQ(nullptr, w_);
  c.kind = TRB_BQ_STREAM_DEFAULT;
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, trb_bq_writer_create(loop_, ch_, &c, &w_, &st)) << st.msg;
}

TEST_F(WriterTest, DestroyCancelsPending) {
  Create(TRB_BQ_STREAM_COMMITTED);
  trb_status_t st{};
  // Every AppendRows open fails: appends stay queued until destroy.
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, kAppend, -1, GRPC_STATUS_UNAVAILABLE, "down", &st));
  trb_faults_drop_streams(faults_, GRPC_STATUS_UNAVAILABLE, "dropped");
  Collector col(1);
  Append(Rows(0, 2), &col, 0);
  trb_bq_writer_destroy(w_);
  w_ = nullptr;
  ASSERT_TRUE(col.out[0].done);
  EXPECT_EQ(1, col.out[0].calls);
  EXPECT_NE(GRPC_STATUS_OK, col.out[0].code);
  trb_faults_clear(faults_);
}

}  // namespace
