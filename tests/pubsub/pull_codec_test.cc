// pull_codec_test.cc — src/pubsub/pull_codec.h against responses encoded by
// the nanopb stubs of google/pubsub/v1/pubsub.proto: every field the
// subscriber reads, unknown / skipped fields, reuse of the array, and
// malformed input.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/alloc.h"
#include "src/pubsub/pull_codec.h"
#include "src/rpc/pb.h"

namespace {

std::string S(const char* p, size_t n) { return std::string(p, n); }

// A length-delimited field (field numbers < 16): tag, varint length, body.
std::string ld(int field, const std::string& body) {
  std::string o(1, static_cast<char>(field << 3 | 2));
  size_t n = body.size();
  while (n >= 0x80) {
    o += static_cast<char>((n & 0x7f) | 0x80);
    n >>= 7;
  }
  o += static_cast<char>(n);
  return o + body;
}

// Encode a StreamingPullResponse of `n` messages (message i: ack id
// "ack-i", id "id-i", data "data-i", attributes a=1 and b=<i> for odd i,
// ordering key "k" for even i, publish time 1700000000+i s / i ns,
// delivery attempt i), subscription properties, and an acknowledge
// confirmation (skipped by the decoder).
std::string Encode(int n) {
  std::vector<std::string> strs;
  strs.reserve(8 * n + 8);
  auto keep = [&](std::string v) -> char* {
    strs.push_back(std::move(v));
    return &strs.back()[0];
  };
  std::vector<google_pubsub_v1_ReceivedMessage> rms(n);
  std::vector<google_pubsub_v1_PubsubMessage_AttributesEntry> attrs(2 * n);
  for (int i = 0; i < n; i++) {
    google_pubsub_v1_ReceivedMessage& rm = rms[i];
    rm = google_pubsub_v1_ReceivedMessage_init_zero;
    rm.ack_id = keep("ack-" + std::to_string(i));
    rm.has_message = true;
    rm.message.message_id = keep("id-" + std::to_string(i));
    char* d = keep("data-" + std::to_string(i));
    rm.message.data.data = reinterpret_cast<const uint8_t*>(d);
    rm.message.data.len = strlen(d);
    if (i % 2) {
      attrs[2 * i].key = keep("a");
      attrs[2 * i].value = keep("1");
      attrs[2 * i + 1].key = keep("b");
      attrs[2 * i + 1].value = keep(std::to_string(i));
      rm.message.attributes = &attrs[2 * i];
      rm.message.attributes_count = 2;
    } else {
      rm.message.ordering_key = keep("k");
    }
    rm.message.has_publish_time = true;
    rm.message.publish_time.seconds = 1700000000 + i;
    rm.message.publish_time.nanos = i;
    rm.delivery_attempt = i;
  }
  google_pubsub_v1_StreamingPullResponse r = google_pubsub_v1_StreamingPullResponse_init_zero;
  r.received_messages_count = static_cast<pb_size_t>(n);
  r.received_messages = n ? rms.data() : nullptr;
  r.has_subscription_properties = true;
  r.subscription_properties.exactly_once_delivery_enabled = true;
  r.subscription_properties.message_ordering_enabled = false;
  char* conf[1] = {keep("ack-x")};
  r.has_acknowledge_confirmation = true;
  r.acknowledge_confirmation.ack_ids_count = 1;
  r.acknowledge_confirmation.ack_ids = conf;
  uint8_t* buf = nullptr;
  size_t len = 0;
  trb_status_t st;
  EXPECT_EQ(GRPC_STATUS_OK,
            trb_pb_encode(google_pubsub_v1_StreamingPullResponse_fields, &r, &buf, &len, &st))
      << st.msg;
  std::string out(reinterpret_cast<char*>(buf), len);
  trb_free(buf);
  return out;
}

TEST(PullCodecTest, DecodesEveryFieldTheSubscriberReads) {
  std::string wire = Encode(150);  // more than the first array capacity
  trb_ps_pull_response_t r = {};
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_ps_pull_response_decode(reinterpret_cast<const uint8_t*>(wire.data()),
                                        wire.size(), &r, &st))
      << st.msg;
  ASSERT_EQ(150u, r.n);
  EXPECT_TRUE(r.has_properties);
  EXPECT_TRUE(r.exactly_once);
  EXPECT_FALSE(r.ordering);
  for (int i = 0; i < 150; i++) {
    const trb_ps_rx_msg_t& m = r.msgs[i];
    EXPECT_EQ("ack-" + std::to_string(i), S(m.ack_id, m.ack_id_len));
    EXPECT_EQ("id-" + std::to_string(i), S(m.message_id, m.message_id_len));
    EXPECT_EQ("data-" + std::to_string(i),
              S(reinterpret_cast<const char*>(m.data), m.data_len));
    EXPECT_EQ(1700000000 + i, m.publish_s);
    EXPECT_EQ(i, m.publish_nanos);
    EXPECT_EQ(i, m.delivery_attempt);
    size_t pos = 0;
    const char *k, *v;
    size_t kl, vl;
    if (i % 2) {
      EXPECT_EQ(2u, m.n_attrs);
      EXPECT_EQ(2u + 1 + std::to_string(i).size(), m.attr_bytes);
      ASSERT_TRUE(trb_ps_rx_attr_next(&m, &pos, &k, &kl, &v, &vl));
      EXPECT_EQ("a", S(k, kl));
      EXPECT_EQ("1", S(v, vl));
      ASSERT_TRUE(trb_ps_rx_attr_next(&m, &pos, &k, &kl, &v, &vl));
      EXPECT_EQ("b", S(k, kl));
      EXPECT_EQ(std::to_string(i), S(v, vl));
      EXPECT_EQ(0u, m.ordering_key_len);
    } else {
      EXPECT_EQ(0u, m.n_attrs);
      EXPECT_EQ("k", S(m.ordering_key, m.ordering_key_len));
    }
    EXPECT_FALSE(trb_ps_rx_attr_next(&m, &pos, &k, &kl, &v, &vl));
  }
  // Reuse: a smaller response replaces the content, keeps the array.
  size_t cap = r.cap;
  std::string small = Encode(2);
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_ps_pull_response_decode(reinterpret_cast<const uint8_t*>(small.data()),
                                        small.size(), &r, &st));
  EXPECT_EQ(2u, r.n);
  EXPECT_EQ(cap, r.cap);
  EXPECT_EQ("ack-1", S(r.msgs[1].ack_id, r.msgs[1].ack_id_len));
  trb_ps_pull_response_deinit(&r);
  EXPECT_EQ(nullptr, r.msgs);
}

// Attributes interleaved with other fields (attribute, data, unknown
// field with a two-byte tag, attribute): iteration starts at the first
// entry and still finds the later one; a multi-byte length (data of 200
// bytes) and a two-byte tag take the out-of-line varint path.
TEST(PullCodecTest, InterleavedAttributesAndLongVarints) {
  std::string data(200, 'd');
  std::string msg = ld(3, "mid") + ld(2, ld(1, "k1") + ld(2, "v1")) + ld(1, data) +
                    std::string("\x80\x01\x05", 3) /* field 16, varint 5 */ +
                    ld(2, ld(1, "k2") + ld(2, "v2")) +
                    // Entries off the fast path: value before key; a key of
                    // 130 bytes; no value; an unknown field inside.
                    ld(2, ld(2, "v3") + ld(1, "k3")) + ld(2, ld(1, std::string(130, 'K')) +
                    ld(2, "v4")) + ld(2, ld(1, "k5")) +
                    ld(2, ld(1, "k6") + std::string("\x18\x01", 2) + ld(2, "v6"));
  std::string wire = ld(1, ld(1, "ack") + ld(2, msg));
  trb_ps_pull_response_t r = {};
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_ps_pull_response_decode(reinterpret_cast<const uint8_t*>(wire.data()),
                                        wire.size(), &r, &st))
      << st.msg;
  ASSERT_EQ(1u, r.n);
  const trb_ps_rx_msg_t& m = r.msgs[0];
  EXPECT_EQ("ack", S(m.ack_id, m.ack_id_len));
  EXPECT_EQ("mid", S(m.message_id, m.message_id_len));
  EXPECT_EQ(data, S(reinterpret_cast<const char*>(m.data), m.data_len));
  EXPECT_EQ(6u, m.n_attrs);
  size_t pos = 0;
  const char *k, *v;
  size_t kl, vl;
  ASSERT_TRUE(trb_ps_rx_attr_next(&m, &pos, &k, &kl, &v, &vl));
  EXPECT_EQ("k1", S(k, kl));
  EXPECT_EQ("v1", S(v, vl));
  ASSERT_TRUE(trb_ps_rx_attr_next(&m, &pos, &k, &kl, &v, &vl));
  EXPECT_EQ("k2", S(k, kl));
  EXPECT_EQ("v2", S(v, vl));
  const char* rest[][2] = {{"k3", "v3"}, {nullptr, "v4"}, {"k5", ""}, {"k6", "v6"}};
  for (auto& kv : rest) {
    ASSERT_TRUE(trb_ps_rx_attr_next(&m, &pos, &k, &kl, &v, &vl));
    EXPECT_EQ(kv[0] ? std::string(kv[0]) : std::string(130, 'K'), S(k, kl));
    EXPECT_EQ(kv[1], S(v, vl));
  }
  EXPECT_FALSE(trb_ps_rx_attr_next(&m, &pos, &k, &kl, &v, &vl));
  trb_ps_pull_response_deinit(&r);
}

// A ReceivedMessage with two `message` fields: the attributes counted and
// iterated are those of the last one only (the subscriber sizes its copy
// from the count and bytes, then iterates).
TEST(PullCodecTest, RepeatedMessageFieldKeepsAttributesConsistent) {
  std::string first = ld(2, ld(1, "a") + ld(2, "1")) + ld(2, ld(1, "b") + ld(2, "2"));
  std::string second = ld(1, "data") + ld(2, ld(1, "ccc") + ld(2, "3"));
  std::string wire = ld(1, ld(1, "ack") + ld(2, first) + ld(2, second));
  trb_ps_pull_response_t r = {};
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_ps_pull_response_decode(reinterpret_cast<const uint8_t*>(wire.data()),
                                        wire.size(), &r, &st))
      << st.msg;
  ASSERT_EQ(1u, r.n);
  const trb_ps_rx_msg_t& m = r.msgs[0];
  EXPECT_EQ(1u, m.n_attrs);
  EXPECT_EQ(4u, m.attr_bytes);
  size_t pos = 0;
  const char *k, *v;
  size_t kl, vl;
  ASSERT_TRUE(trb_ps_rx_attr_next(&m, &pos, &k, &kl, &v, &vl));
  EXPECT_EQ("ccc", S(k, kl));
  EXPECT_EQ("3", S(v, vl));
  EXPECT_FALSE(trb_ps_rx_attr_next(&m, &pos, &k, &kl, &v, &vl));
  trb_ps_pull_response_deinit(&r);
}

TEST(PullCodecTest, EmptyResponseIsAKeepaliveAnswer) {
  trb_ps_pull_response_t r = {};
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_pull_response_decode(nullptr, 0, &r, &st));
  EXPECT_EQ(0u, r.n);
  EXPECT_FALSE(r.has_properties);
  trb_ps_pull_response_deinit(&r);
}

TEST(PullCodecTest, MalformedInputIsRejected) {
  std::string wire = Encode(3);
  trb_ps_pull_response_t r = {};
  trb_status_t st;
  // Every truncation of the encoding is malformed, except the cuts that
  // fall exactly between top-level fields (after each of the 3 messages and
  // after the subscription properties).
  int rejected = 0;
  for (size_t cut = 1; cut < wire.size(); cut++) {
    if (trb_ps_pull_response_decode(reinterpret_cast<const uint8_t*>(wire.data()), cut, &r,
                                    &st) != GRPC_STATUS_OK) {
      EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, st.code);
      EXPECT_EQ(0u, r.n);
      rejected++;
    }
  }
  EXPECT_EQ(static_cast<int>(wire.size()) - 1 - 4, rejected);
  const uint8_t bad_wire_type[] = {0x0f, 0x00};  // field 1, wire type 7
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_pull_response_decode(bad_wire_type, sizeof bad_wire_type, &r, &st));
  const uint8_t long_len[] = {0x0a, 0x7f, 0x00};  // length past the end
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_pull_response_decode(long_len, sizeof long_len, &r, &st));
  trb_ps_pull_response_deinit(&r);
}

}  // namespace
