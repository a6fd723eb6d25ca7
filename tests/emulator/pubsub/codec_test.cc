// codec_test.cc — pure helpers of the Pub/Sub emulator: resource names,
// ack IDs, the protobuf wire writer (checked against nanopb's decoder).
#include <gtest/gtest.h>

#include <string>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/alloc.h"
#include "src/emulator/pubsub/codec.h"
#include "src/rpc/pb.h"

namespace {

TEST(PsCodecTest, ResourceNames) {
  trb_status_t st;
  const char *project = nullptr, *id = nullptr;
  size_t plen = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_name_parse("projects/my-proj/topics/Ab_c.d~e+f%g", "topics",
                                              "topic", &project, &plen, &id, &st));
  EXPECT_EQ("my-proj", std::string(project, plen));
  EXPECT_STREQ("Ab_c.d~e+f%g", id);
  const char* bad[] = {"",
                       "projects/p/topics/ab",
                       "projects/p/topics/1abc",
                       "projects/p/topics/goog-x",
                       "projects/p/topics/a/b",
                       "projects//topics/abc",
                       "projects/p/subscriptions/abc",
                       "project/p/topics/abc",
                       "projects/p/topics/",
                       "projects/p/topicsabc"};
  for (const char* b : bad) {
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
              trb_ps_name_parse(b, "topics", "topic", nullptr, nullptr, nullptr, &st))
        << b;
    EXPECT_NE(std::string::npos, std::string(st.msg).find("topic")) << st.msg;
  }
  std::string longest = "projects/p/topics/a" + std::string(254, 'b');
  EXPECT_EQ(GRPC_STATUS_OK, trb_ps_name_parse(longest.c_str(), "topics", "topic", nullptr,
                                              nullptr, nullptr, &st));
  longest += "c";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_ps_name_parse(longest.c_str(), "topics", "topic",
                                                            nullptr, nullptr, nullptr, &st));
}

TEST(PsCodecTest, AckIdRoundTripAndRejects) {
  trb_ps_ackid_t in = {0x7fffffffffffffLL, 123456789012LL, 0xffffffffu, 1};
  char buf[TRB_PS_ACKID_MAX];
  size_t n = trb_ps_ackid_format(&in, buf);
  EXPECT_EQ(strlen(buf), n);
  EXPECT_LT(n, sizeof(buf));
  trb_ps_ackid_t out = {};
  ASSERT_TRUE(trb_ps_ackid_parse(buf, &out));
  EXPECT_EQ(in.sub_id, out.sub_id);
  EXPECT_EQ(in.seq, out.seq);
  EXPECT_EQ(in.gen, out.gen);
  EXPECT_EQ(in.epoch, out.epoch);
  const char* bad[] = {"", "1", "1-2-3", "1-2-3-4-5", "1-2-3-", "-1-2-3", "1--2-3",
                       "01-2-3-4", "1-2-3-G", "1-2-3-4 ", "1-2-100000000-4",
                       "10000000000000000-2-3-4"};
  for (const char* b : bad) EXPECT_FALSE(trb_ps_ackid_parse(b, &out)) << b;
  EXPECT_FALSE(trb_ps_ackid_parse(nullptr, &out));
}

TEST(PsCodecTest, ReceivedMessagesDecodeWithNanopb) {
  google_pubsub_v1_PubsubMessage m = google_pubsub_v1_PubsubMessage_init_zero;
  std::string data(300, 'x');
  m.data.data = reinterpret_cast<const uint8_t*>(data.data());
  m.data.len = data.size();
  m.message_id = const_cast<char*>("42");
  uint8_t* body = nullptr;
  size_t body_len = 0;
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_encode(google_pubsub_v1_PubsubMessage_fields, &m, &body,
                                          &body_len, &st));
  trb_buf_t b = TRB_BUF_INIT;
  ASSERT_EQ(0, trb_ps_wire_received(&b, "ack-1", 5, body, body_len, 0));
  size_t first = b.len;
  EXPECT_EQ(first, trb_ps_wire_received_len(5, body_len, 0));
  ASSERT_EQ(0, trb_ps_wire_received(&b, "ack-2", 5, body, body_len, 300));
  EXPECT_EQ(b.len - first, trb_ps_wire_received_len(5, body_len, 300));
  google_pubsub_v1_PullResponse r = google_pubsub_v1_PullResponse_init_zero;
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_pubsub_v1_PullResponse_fields,
                                          reinterpret_cast<const uint8_t*>(b.data), b.len, &r, &st))
      << st.msg;
  ASSERT_EQ(2, r.received_messages_count);
  EXPECT_STREQ("ack-1", r.received_messages[0].ack_id);
  EXPECT_EQ(0, r.received_messages[0].delivery_attempt);
  EXPECT_STREQ("ack-2", r.received_messages[1].ack_id);
  EXPECT_EQ(300, r.received_messages[1].delivery_attempt);
  EXPECT_STREQ("42", r.received_messages[1].message.message_id);
  EXPECT_EQ(data, std::string(reinterpret_cast<const char*>(r.received_messages[1].message.data.data),
                              r.received_messages[1].message.data.len));
  trb_pb_release(google_pubsub_v1_PullResponse_fields, &r);
  trb_buf_deinit(&b);
  trb_free(body);
}

TEST(PsCodecTest, Rfc3339) {
  char buf[40];
  trb_ps_rfc3339(1694598681340000LL, buf, sizeof(buf));
  EXPECT_STREQ("2023-09-13T09:51:21.340000Z", buf);
  trb_ps_rfc3339(0, buf, sizeof(buf));
  EXPECT_STREQ("1970-01-01T00:00:00.000000Z", buf);
}

}  // namespace
