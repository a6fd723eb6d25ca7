// unary_test.cc — unary calls through src/rpc with real Google message types
// (google.pubsub.v1.Publisher/Publish), routing metadata, unknown methods and
// deadlines.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/alloc.h"
#include "src/rpc/pb.h"
#include "tests/rpc/fixture.h"

namespace {

using trb_test::Cond;
using trb_test::RpcTest;

constexpr char kPublish[] = "/google.pubsub.v1.Publisher/Publish";
constexpr char kTopic[] = "projects/demo/topics/events";

struct PublishServer {
  std::atomic<int> calls{0};
  std::string routing;  // x-goog-request-params seen by the last call
};

// Decodes the PublishRequest, checks it, answers with one message id per
// message ("<topic>#<index>:<data length>").
void OnPublish(void* user, trb_rpc_server_call_t* call, const uint8_t* req, size_t len) {
  auto* s = static_cast<PublishServer*>(user);
  google_pubsub_v1_PublishRequest in = google_pubsub_v1_PublishRequest_init_zero;
  trb_status_t st;
  size_t md_len = 0;
  const char* md = trb_rpc_server_call_metadata(call, "x-goog-request-params", &md_len);
  s->routing = md ? std::string(md, md_len) : "";
  s->calls++;
  if (trb_pb_decode(google_pubsub_v1_PublishRequest_fields, req, len, &in, &st) != GRPC_STATUS_OK) {
    trb_pb_release(google_pubsub_v1_PublishRequest_fields, &in);
    trb_rpc_server_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, st.msg, nullptr, 0, nullptr, 0);
    return;
  }
  std::vector<std::string> ids;
  for (pb_size_t i = 0; i < in.messages_count; i++) {
    ids.push_back(std::string(in.topic) + "#" + std::to_string(i) + ":" +
                  std::to_string(in.messages[i].data.len));
  }
  std::vector<char*> id_ptrs;
  for (auto& id : ids) id_ptrs.push_back(&id[0]);
  google_pubsub_v1_PublishResponse out = google_pubsub_v1_PublishResponse_init_zero;
  out.message_ids_count = static_cast<pb_size_t>(id_ptrs.size());
  out.message_ids = id_ptrs.data();
  uint8_t* buf = nullptr;
  size_t buf_len = 0;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_pb_encode(google_pubsub_v1_PublishResponse_fields, &out, &buf, &buf_len, &st));
  trb_pb_release(google_pubsub_v1_PublishRequest_fields, &in);
  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, nullptr, nullptr, 0, buf, buf_len);
  trb_free(buf);
}

std::vector<uint8_t> EncodePublish(const std::vector<std::string>& payloads) {
  std::vector<google_pubsub_v1_PubsubMessage> msgs(payloads.size());
  for (size_t i = 0; i < payloads.size(); i++) {
    msgs[i] = google_pubsub_v1_PubsubMessage_init_zero;
    msgs[i].data.data = reinterpret_cast<const uint8_t*>(payloads[i].data());
    msgs[i].data.len = payloads[i].size();
  }
  google_pubsub_v1_PublishRequest req = google_pubsub_v1_PublishRequest_init_zero;
  req.topic = const_cast<char*>(kTopic);
  req.messages_count = static_cast<pb_size_t>(msgs.size());
  req.messages = msgs.data();
  uint8_t* buf = nullptr;
  size_t len = 0;
  trb_status_t st;
  EXPECT_EQ(GRPC_STATUS_OK, trb_pb_encode(google_pubsub_v1_PublishRequest_fields, &req, &buf, &len, &st));
  std::vector<uint8_t> out(buf, buf + len);
  trb_free(buf);
  return out;
}

TEST_F(RpcTest, PublishShapedUnaryRoundTrip) {
  PublishServer ps;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_add_unary(srv_, kPublish, OnPublish, &ps, &st_));
  Start();

  // One small message and one larger than nanopb's 64 KiB bytes limit.
  std::vector<std::string> payloads = {"{\"event_type\":\"order\"}", std::string(300000, 'x')};
  std::vector<uint8_t> req = EncodePublish(payloads);
  std::string routing = std::string("topic=") + kTopic;
  trb_rpc_md_t md[] = {{"x-goog-request-params", routing.c_str(), 0}};
  trb_rpc_call_opts_t opts = {};
  opts.timeout_ms = 10000;
  opts.md = md;
  opts.n_md = 1;

  trb_rpc_response_t resp;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_rpc_unary_call(loop_, ch_, kPublish, req.data(), req.size(), &opts, &resp))
      << resp.message;
  google_pubsub_v1_PublishResponse out = google_pubsub_v1_PublishResponse_init_zero;
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_pubsub_v1_PublishResponse_fields, resp.response,
                                          resp.response_len, &out, &st));
  ASSERT_EQ(2u, out.message_ids_count);
  EXPECT_STREQ("projects/demo/topics/events#0:22", out.message_ids[0]);
  EXPECT_STREQ("projects/demo/topics/events#1:300000", out.message_ids[1]);
  trb_pb_release(google_pubsub_v1_PublishResponse_fields, &out);
  trb_rpc_response_deinit(&resp);
  EXPECT_EQ(1, ps.calls.load());
  EXPECT_EQ(routing, ps.routing);
}

TEST_F(RpcTest, AsyncUnaryCallbackRunsOncePerCall) {
  PublishServer ps;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_add_unary(srv_, kPublish, OnPublish, &ps, &st_));
  Start();

  struct Ctx {
    Cond cond;
    int done = 0;
    int ok = 0;
  } ctx;
  std::vector<uint8_t> req = EncodePublish({"a"});
  const int kCalls = 200;
  for (int i = 0; i < kCalls; i++) {
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_rpc_unary_start(
                  loop_, ch_, kPublish, req.data(), req.size(), nullptr,
                  [](void* user, const trb_rpc_result_t* r) {
                    auto* c = static_cast<Ctx*>(user);
                    c->cond.Update([&] {
                      c->done++;
                      if (r->code == GRPC_STATUS_OK && r->response_len > 0) c->ok++;
                    });
                  },
                  &ctx, &st_))
        << st_.msg;
  }
  ASSERT_TRUE(ctx.cond.WaitFor([&] { return ctx.done == kCalls; }));
  EXPECT_EQ(kCalls, ctx.ok);
  EXPECT_EQ(kCalls, ps.calls.load());
}

TEST_F(RpcTest, UnknownMethodIsUnimplemented) {
  Start();
  trb_rpc_response_t resp;
  EXPECT_EQ(GRPC_STATUS_UNIMPLEMENTED,
            trb_rpc_unary_call(loop_, ch_, "/google.pubsub.v1.Publisher/Nope", "", 0, nullptr, &resp));
  EXPECT_NE(nullptr, strstr(resp.message, "/google.pubsub.v1.Publisher/Nope")) << resp.message;
  trb_rpc_response_deinit(&resp);
}

TEST_F(RpcTest, MalformedMethodNameIsRejectedWithoutCallback) {
  Start();
  int called = 0;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_rpc_unary_start(loop_, ch_, "Publish", "", 0, nullptr,
                                [](void* u, const trb_rpc_result_t*) { ++*static_cast<int*>(u); },
                                &called, &st_));
  EXPECT_NE(nullptr, strstr(st_.msg, "/package.Service/Method"));
  EXPECT_EQ(0, called);
}

TEST_F(RpcTest, BadRequestBytesGetInvalidArgument) {
  PublishServer ps;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_add_unary(srv_, kPublish, OnPublish, &ps, &st_));
  Start();
  const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};  // length beyond the buffer
  trb_rpc_response_t resp;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_rpc_unary_call(loop_, ch_, kPublish, junk, sizeof(junk), nullptr, &resp));
  EXPECT_NE(nullptr, strstr(resp.message, "protobuf decode")) << resp.message;
  trb_rpc_response_deinit(&resp);
}

// The handler holds the call past the client's deadline.
TEST_F(RpcTest, UnaryDeadlineExceeded) {
  struct Held {
    Cond cond;
    trb_rpc_server_call_t* call = nullptr;
  } held;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_rpc_server_add_unary(
                srv_, kPublish,
                [](void* user, trb_rpc_server_call_t* call, const uint8_t*, size_t) {
                  auto* h = static_cast<Held*>(user);
                  h->cond.Update([&] { h->call = call; });
                },
                &held, &st_));
  Start();
  trb_rpc_call_opts_t opts = {};
  opts.timeout_ms = 200;
  trb_rpc_response_t resp;
  EXPECT_EQ(GRPC_STATUS_DEADLINE_EXCEEDED,
            trb_rpc_unary_call(loop_, ch_, kPublish, "", 0, &opts, &resp));
  trb_rpc_response_deinit(&resp);
  ASSERT_TRUE(held.cond.WaitFor([&] { return held.call != nullptr; }));
  // Finishing a call whose client has gone is harmless (the status is
  // discarded); TearDown checks that nothing leaked.
  trb_rpc_server_call_finish(held.call, GRPC_STATUS_OK, nullptr, nullptr, 0, "", 0);
}

}  // namespace
