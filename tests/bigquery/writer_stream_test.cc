// writer_stream_test.cc — trb_bq_writer exactly-once across a reply lost
// after the append was written (ALREADY_EXISTS on the resend), stream
// rotation, the retry time limit, and BUFFERED streams with FlushRows.
#include <thread>

#include "tests/bigquery/writer_fixture.h"

namespace {

using namespace wt;  // NOLINT: the shared fixture

trb_bq_writer_stats_t Stats(trb_bq_writer_t* w) {
  trb_bq_writer_stats_t s;
  trb_bq_writer_get_stats(w, &s);
  return s;
}

// The emulator writes the first append, then drops the stream instead of
// replying: the writer reconnects, resends at the same offset, gets
// ALREADY_EXISTS and counts it as written. Every row exactly once.
TEST_F(WriterTest, LostReplyResendGetsAlreadyExists) {
  Create(TRB_BQ_STREAM_COMMITTED);
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_drop_after_write(faults_, kAppend, 1, &st)) << st.msg;
  Collector col(4);
  Append(Rows(0, 5), &col, 0);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[0].done; }));
  EXPECT_EQ(GRPC_STATUS_OK, col.out[0].code) << col.out[0].message;
  EXPECT_EQ(0, col.out[0].offset);
  EXPECT_EQ(5u, col.out[0].rows_written);
  auto s = Stats(w_);
  EXPECT_EQ(1, s.already_exists);
  EXPECT_GE(s.requests_resent, 1);
  EXPECT_EQ(2, s.connections);
  EXPECT_EQ(1, trb_faults_injected(faults_));
  // Several in flight when the reply is lost: the written ones come back
  // ALREADY_EXISTS, the others are written on the resend.
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_drop_after_write(faults_, kAppend, 1, &st)) << st.msg;
  Append(Rows(5, 8), &col, 1);
  Append(Rows(8, 10), &col, 2);
  Append(Rows(10, 12), &col, 3);
  ASSERT_TRUE(col.WaitAll());
  int64_t want[] = {0, 5, 8, 10};
  for (int i = 0; i < 4; i++) {
    EXPECT_EQ(GRPC_STATUS_OK, col.out[i].code) << i << ": " << col.out[i].message;
    EXPECT_EQ(want[i], col.out[i].offset) << i;
    EXPECT_EQ(1, col.out[i].calls);
  }
  s = Stats(w_);
  EXPECT_GE(s.already_exists, 2);
  EXPECT_EQ(3, s.connections);
  ExpectExactlyOnce(12);
}

// Rotation while appends are in flight (slowed by latency): the old
// stream's appends finish there, later ones go to the new stream from
// offset 0; the two streams' row counts add up; every row once.
TEST_F(WriterTest, RotateCommittedWithoutGapsOrDuplicates) {
  Create(TRB_BQ_STREAM_COMMITTED);
  std::string first = trb_bq_writer_stream(w_);
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_set_latency(faults_, kAppend, 20, &st));
  constexpr int kN = 8;
  Collector col(kN + 2);
  for (int i = 0; i < 4; i++) Append(Rows(i * 5, (i + 1) * 5), &col, i);
  int64_t old_rows = -1;
  char* old_name = nullptr;
  grpc_status_code rc = GRPC_STATUS_UNKNOWN;
  trb_status_t rst{};
  std::thread rot([&] { rc = trb_bq_writer_rotate(w_, &old_rows, &old_name, &rst); });
  for (int i = 4; i < kN; i++) Append(Rows(i * 5, (i + 1) * 5), &col, i);
  rot.join();
  ASSERT_EQ(GRPC_STATUS_OK, rc) << rst.msg;
  ASSERT_NE(nullptr, old_name);
  EXPECT_EQ(first, old_name);
  trb_free(old_name);
  std::string second = trb_bq_writer_stream(w_);
  EXPECT_NE(first, second);
  EXPECT_NE(std::string::npos, second.find("/streams/"));
  // The four appends made before the call were on the old stream.
  EXPECT_GE(old_rows, 20);
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_set_latency(faults_, kAppend, 0, &st));
  Append(Rows(kN * 5, kN * 5 + 3), &col, kN);
  Append(Rows(kN * 5 + 3, kN * 5 + 5), &col, kN + 1);
  ASSERT_TRUE(col.WaitAll());
  // Offsets: consecutive on the old stream up to old_rows, then from 0.
  int64_t old_next = 0, new_next = 0;
  for (int i = 0; i < kN + 2; i++) {
    EXPECT_EQ(GRPC_STATUS_OK, col.out[i].code) << i << ": " << col.out[i].message;
    if (old_next < old_rows) {
      EXPECT_EQ(old_next, col.out[i].offset) << i;
      old_next += (int64_t)col.out[i].rows_written;
    } else {
      EXPECT_EQ(new_next, col.out[i].offset) << i;
      new_next += (int64_t)col.out[i].rows_written;
    }
  }
  EXPECT_EQ(old_rows, old_next);
  int64_t new_rows = -1;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_writer_finalize(w_, &new_rows, &st)) << st.msg;
  EXPECT_EQ(new_next, new_rows);
  EXPECT_EQ(kN * 5 + 5, old_rows + new_rows);
  EXPECT_EQ(1, Stats(w_).rotations);
  ExpectExactlyOnce(kN * 5 + 5);
}

// A PENDING writer rotated: both streams committed together make every row
// visible once.
TEST_F(WriterTest, RotatePendingThenBatchCommitBoth) {
  Create(TRB_BQ_STREAM_PENDING);
  Collector col(2);
  Append(Rows(0, 4), &col, 0);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[0].done; }));
  char* old_name = nullptr;
  int64_t n = -1;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_writer_rotate(w_, &n, &old_name, &st)) << st.msg;
  EXPECT_EQ(4, n);
  Append(Rows(4, 7), &col, 1);
  ASSERT_TRUE(col.WaitAll());
  EXPECT_EQ(0, col.out[1].offset);
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_writer_finalize(w_, &n, &st)) << st.msg;
  EXPECT_EQ(3, n);
  EXPECT_EQ(std::vector<std::string>{"{\"c\":0}"}, Query("SELECT COUNT(*) AS c FROM ds.t"));
  const char* names[] = {old_name, trb_bq_writer_stream(w_)};
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_batch_commit(loop_, ch_, kTable, names, 2, nullptr, &st)) << st.msg;
  trb_free(old_name);
  ExpectExactlyOnce(7);
}

TEST_F(WriterTest, RotateDefaultIsFailedPrecondition) {
  Create(TRB_BQ_STREAM_DEFAULT);
  trb_status_t st{};
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, trb_bq_writer_rotate(w_, nullptr, nullptr, &st));
}

// With the server refusing every AppendRows, an append fails with the last
// status once it has been retrying for max_retry_ms (attempts unlimited
// for the test); the writer goes on once the server is back.
TEST_F(WriterTest, RetryTimeLimitFailsAppendWithLastStatus) {
  Create(TRB_BQ_STREAM_COMMITTED, 0, [](trb_bq_writer_config_t* c) {
    c->max_attempts = 1000000;
    c->max_retry_ms = 300;
  });
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_add_error(faults_, kAppend, -1, GRPC_STATUS_UNAVAILABLE, "still down", &st));
  Collector col(2);
  auto t0 = std::chrono::steady_clock::now();
  Append(Rows(0, 3), &col, 0);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[0].done; }));
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, col.out[0].code);
  EXPECT_NE(std::string::npos, col.out[0].message.find("still down")) << col.out[0].message;
  EXPECT_EQ(0u, col.out[0].rows_written);
  EXPECT_GE(ms, 300.0);
  EXPECT_GE(Stats(w_).retries_expired, 1);
  trb_faults_clear(faults_);
  Append(Rows(0, 2), &col, 1);
  ASSERT_TRUE(col.WaitAll());
  EXPECT_EQ(GRPC_STATUS_OK, col.out[1].code) << col.out[1].message;
  EXPECT_EQ(0, col.out[1].offset);  // the failed append's offsets were given back
  ExpectExactlyOnce(2);
}

// BUFFERED: appended rows are invisible until flushed; FlushRows makes
// visible the rows up to and including the offset.
TEST_F(WriterTest, BufferedRowsVisibleUpToFlushOffset) {
  Create(TRB_BQ_STREAM_BUFFERED);
  Collector col(2);
  Append(Rows(0, 6), &col, 0);
  Append(Rows(6, 10), &col, 1);
  ASSERT_TRUE(col.WaitAll());
  EXPECT_EQ(0, col.out[0].offset);
  EXPECT_EQ(6, col.out[1].offset);
  EXPECT_EQ(std::vector<std::string>{"{\"c\":0}"}, Query("SELECT COUNT(*) AS c FROM ds.t"));
  trb_status_t st{};
  int64_t flushed = -1;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_writer_flush(w_, 4, &flushed, &st)) << st.msg;
  EXPECT_EQ(4, flushed);
  EXPECT_EQ(std::vector<std::string>{"{\"c\":5,\"hi\":4}"},
            Query("SELECT COUNT(*) AS c, MAX(id) AS hi FROM ds.t"));
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_writer_flush(w_, 9, &flushed, &st)) << st.msg;
  EXPECT_EQ(9, flushed);
  ExpectExactlyOnce(10);
  EXPECT_NE(GRPC_STATUS_OK, trb_bq_writer_flush(w_, 20, nullptr, &st));  // beyond the rows
}

}  // namespace
