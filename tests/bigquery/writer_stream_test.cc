// writer_stream_test.cc — trb_bq_writer exactly-once across a reply lost
// after the append was written (ALREADY_EXISTS on the resend), stream
// rotation, the retry time limit, and BUFFERED streams with FlushRows.
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

}  // namespace
