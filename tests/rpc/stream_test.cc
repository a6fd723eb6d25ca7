// stream_test.cc — bidirectional streams through src/rpc with real Google
// message types (BigQueryWrite.AppendRows): ordering at volume, status
// details, deadlines, cancellation, server shutdown, many streams per channel.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#include "src/rpc/details.h"
#include "tests/rpc/append_server.h"
#include "tests/rpc/fixture.h"

namespace {

using trb_test::AppendServer;
using trb_test::Cond;
using trb_test::DecodeAppendResult;
using trb_test::EncodeAppend;
using trb_test::kAppendRows;
using trb_test::RpcTest;

// Client side of one AppendRows stream.
struct Client {
  Cond cond;
  int64_t next_expected = 0;  // guarded by cond
  int64_t responses = 0;      // guarded by cond
  int order_errors = 0;       // guarded by cond
  int64_t writes_done = 0;    // guarded by cond
  int writes_failed = 0;      // guarded by cond
  bool closed = false;        // guarded by cond
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  std::string message;
  std::vector<uint8_t> details;
  trb_rpc_stream_t* stream = nullptr;

  static trb_rpc_stream_cbs_t Callbacks() {
    trb_rpc_stream_cbs_t cbs = {};
    cbs.on_message = [](void* user, trb_rpc_stream_t*, const uint8_t* data, size_t len) {
      auto* c = static_cast<Client*>(user);
      int64_t off = DecodeAppendResult(data, len);
      c->cond.Update([&] {
        if (off != c->next_expected) c->order_errors++;
        c->next_expected = off + 1;
        c->responses++;
      });
    };
    cbs.on_write_done = [](void* user, trb_rpc_stream_t*, void*, bool ok) {
      auto* c = static_cast<Client*>(user);
      c->cond.Update([&] {
        c->writes_done++;
        if (!ok) c->writes_failed++;
      });
    };
    cbs.on_close = [](void* user, trb_rpc_stream_t*, const trb_rpc_result_t* r) {
      auto* c = static_cast<Client*>(user);
      c->cond.Update([&] {
        c->closed = true;
        c->code = r->code;
        c->message = r->message;
        c->details.assign(r->details, r->details + r->details_len);
      });
    };
    return cbs;
  }
};

class StreamTest : public RpcTest {
 protected:
  void Open(Client* c, int64_t timeout_ms = 0) {
    trb_rpc_stream_cbs_t cbs = Client::Callbacks();
    std::string routing = std::string("write_stream=") + trb_test::kStream;
    trb_rpc_md_t md[] = {{"x-goog-request-params", routing.c_str(), 0}};
    trb_rpc_call_opts_t opts = {};
    opts.timeout_ms = timeout_ms;
    opts.md = md;
    opts.n_md = 1;
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_rpc_stream_start(loop_, ch_, kAppendRows, &opts, &cbs, c, &c->stream, &st_))
        << st_.msg;
  }
  // A member, so it outlives the server (shut down in TearDown): handlers
  // may still run after a test body returns.
  AppendServer server;

  void Register(AppendServer* s) {
    trb_rpc_stream_handler_t h = AppendServer::Handler();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_add_stream(srv_, kAppendRows, &h, s, &st_)) << st_.msg;
  }
};

TEST_F(StreamTest, HundredThousandMessagesEachWayInOrder) {
  Register(&server);
  Start();
  Client c;
  Open(&c);
  const int64_t kN = 100000;
  const int64_t kWindow = 1000;  // flow control: at most this many queued
  std::string row(40, 'r');
  for (int64_t i = 0; i < kN; i++) {
    ASSERT_TRUE(c.cond.WaitFor([&] { return i - c.writes_done < kWindow; }));
    std::vector<uint8_t> req = EncodeAppend(i, row);
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_write(c.stream, req.data(), req.size(), nullptr));
  }
  ASSERT_TRUE(c.cond.WaitFor([&] { return c.responses == kN || c.closed; }, 120000));
  trb_rpc_stream_writes_done(c.stream);
  ASSERT_TRUE(c.cond.WaitFor([&] { return c.closed; }));
  EXPECT_EQ(GRPC_STATUS_OK, c.code) << c.message;
  EXPECT_EQ(kN, c.responses);
  EXPECT_EQ(0, c.order_errors);
  EXPECT_EQ(kN, c.writes_done);
  EXPECT_EQ(0, c.writes_failed);
  trb_rpc_stream_release(c.stream);
  ASSERT_TRUE(server.cond.WaitFor([&] { return server.done == 1; }));
  EXPECT_EQ(kN, server.received);
  EXPECT_EQ(0, server.order_errors);
  EXPECT_EQ(0, server.cancelled);
}

TEST_F(StreamTest, ServerErrorCarriesStorageErrorDetail) {
  server.fail_at = 3;
  Register(&server);
  Start();
  Client c;
  Open(&c);
  for (int64_t i = 0; i < 4; i++) {
    std::vector<uint8_t> req = EncodeAppend(i, "row");
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_write(c.stream, req.data(), req.size(), nullptr));
  }
  ASSERT_TRUE(c.cond.WaitFor([&] { return c.closed; }));
  EXPECT_EQ(GRPC_STATUS_OUT_OF_RANGE, c.code);
  EXPECT_EQ(3, c.responses);
  ASSERT_FALSE(c.details.empty());

  trb_rpc_status_details_t d;
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_rpc_status_details_decode(c.details.data(), c.details.size(), &d, &st))
      << st.msg;
  EXPECT_EQ(GRPC_STATUS_OUT_OF_RANGE, d.code);
  EXPECT_STREQ("Offset 3 is beyond the end of the stream", d.message);
  const trb_rpc_any_t* any =
      trb_rpc_status_details_find(&d, "google.cloud.bigquery.storage.v1.StorageError");
  ASSERT_NE(nullptr, any);
  google_cloud_bigquery_storage_v1_StorageError se =
      google_cloud_bigquery_storage_v1_StorageError_init_zero;
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_StorageError_fields,
                                          any->value, any->value_len, &se, &st));
  EXPECT_EQ(google_cloud_bigquery_storage_v1_StorageError_StorageErrorCode_OFFSET_OUT_OF_RANGE,
            se.code);
  EXPECT_STREQ(trb_test::kStream, se.entity);
  EXPECT_STREQ("Offset 3 is beyond the end of the stream", se.error_message);
  trb_pb_release(google_cloud_bigquery_storage_v1_StorageError_fields, &se);
  trb_rpc_status_details_deinit(&d);
  trb_rpc_stream_release(c.stream);
  // Writes after the close are refused.
}

TEST_F(StreamTest, WriteAfterCloseIsRefused) {
  server.fail_at = 0;
  Register(&server);
  Start();
  Client c;
  Open(&c);
  std::vector<uint8_t> req = EncodeAppend(0, "row");
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_write(c.stream, req.data(), req.size(), nullptr));
  ASSERT_TRUE(c.cond.WaitFor([&] { return c.closed; }));
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION,
            trb_rpc_stream_write(c.stream, req.data(), req.size(), nullptr));
  trb_rpc_stream_release(c.stream);
}

TEST_F(StreamTest, DeadlineExceededEndsBothSides) {
  server.silent = true;
  Register(&server);
  Start();
  Client c;
  Open(&c, /*timeout_ms=*/300);
  std::vector<uint8_t> req = EncodeAppend(0, "row");
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_write(c.stream, req.data(), req.size(), nullptr));
  ASSERT_TRUE(c.cond.WaitFor([&] { return c.closed; }));
  EXPECT_EQ(GRPC_STATUS_DEADLINE_EXCEEDED, c.code);
  trb_rpc_stream_release(c.stream);
  ASSERT_TRUE(server.cond.WaitFor([&] { return server.done == 1; }));
  EXPECT_EQ(1, server.cancelled);
}

TEST_F(StreamTest, CancelMidStream) {
  Register(&server);
  Start();
  Client c;
  Open(&c);
  for (int64_t i = 0; i < 10; i++) {
    std::vector<uint8_t> req = EncodeAppend(i, "row");
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_write(c.stream, req.data(), req.size(), nullptr));
  }
  ASSERT_TRUE(c.cond.WaitFor([&] { return c.responses == 10; }));
  trb_rpc_stream_cancel(c.stream);
  ASSERT_TRUE(c.cond.WaitFor([&] { return c.closed; }));
  EXPECT_EQ(GRPC_STATUS_CANCELLED, c.code);
  trb_rpc_stream_release(c.stream);
  ASSERT_TRUE(server.cond.WaitFor([&] { return server.done == 1; }));
  EXPECT_EQ(1, server.cancelled);
}

TEST_F(StreamTest, PausedReaderGetsEverythingAfterResume) {
  Register(&server);
  Start();
  Client c;
  Open(&c);
  trb_rpc_stream_read_pause(c.stream);
  const int64_t kN = 2000;
  for (int64_t i = 0; i < kN; i++) {
    std::vector<uint8_t> req = EncodeAppend(i, std::string(1000, 'p'));
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_write(c.stream, req.data(), req.size(), nullptr));
  }
  trb_rpc_stream_writes_done(c.stream);
  ASSERT_TRUE(server.cond.WaitFor([&] { return server.received == kN; }));
  // The server has finished, but the paused client has not read everything:
  // on_close must wait for the reader.
  EXPECT_LT(c.responses, kN);
  trb_rpc_stream_read_resume(c.stream);
  ASSERT_TRUE(c.cond.WaitFor([&] { return c.closed; }));
  EXPECT_EQ(GRPC_STATUS_OK, c.code);
  EXPECT_EQ(kN, c.responses);
  EXPECT_EQ(0, c.order_errors);
  trb_rpc_stream_release(c.stream);
}

TEST_F(StreamTest, ServerShutdownWithStreamsOpen) {
  server.silent = true;
  Register(&server);
  Start();
  const int kStreams = 8;
  std::vector<Client> clients(kStreams);
  for (auto& c : clients) {
    Open(&c);
    std::vector<uint8_t> req = EncodeAppend(0, "row");
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_write(c.stream, req.data(), req.size(), nullptr));
  }
  ASSERT_TRUE(server.cond.WaitFor([&] { return server.received == kStreams; }));
  trb_rpc_server_shutdown(srv_);  // returns once every handler finished
  EXPECT_EQ(kStreams, server.done);
  EXPECT_EQ(kStreams, server.cancelled);
  EXPECT_EQ(0, trb_rpc_server_live_calls(srv_));
  for (auto& c : clients) {
    ASSERT_TRUE(c.cond.WaitFor([&] { return c.closed; }));
    EXPECT_NE(GRPC_STATUS_OK, c.code);
    trb_rpc_stream_release(c.stream);
  }
}

TEST_F(StreamTest, ThousandConcurrentStreamsOnOneChannel) {
  const int kStreams = 1000;
  server.barrier = kStreams;  // nobody is answered before all are open
  Register(&server);
  Start();
  std::vector<Client> clients(kStreams);
  for (auto& c : clients) {
    Open(&c);
    std::vector<uint8_t> req = EncodeAppend(0, "row");
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_write(c.stream, req.data(), req.size(), nullptr));
  }
  for (auto& c : clients) {
    ASSERT_TRUE(c.cond.WaitFor([&] { return c.responses == 1 || c.closed; }, 60000));
    trb_rpc_stream_writes_done(c.stream);
  }
  for (auto& c : clients) {
    ASSERT_TRUE(c.cond.WaitFor([&] { return c.closed; }, 60000));
    EXPECT_EQ(GRPC_STATUS_OK, c.code) << c.message;
    trb_rpc_stream_release(c.stream);
  }
  EXPECT_EQ(kStreams, server.started);
  ASSERT_TRUE(server.cond.WaitFor([&] { return server.done == kStreams; }));
  EXPECT_EQ(0, server.cancelled);
}

}  // namespace
