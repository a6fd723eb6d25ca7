// ack_codec_test.cc — src/pubsub/ack_codec.h against nanopb: Acknowledge
// and ModifyAckDeadline requests assembled from a header and appended
// ack_ids entries must equal trb_pb_encode of the same nanopb struct, for
// random subscriptions, ids (empty, short, >127 and >16383 bytes), counts
// (0..1000) and deadlines (0, negative, large).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/alloc.h"
#include "src/pubsub/ack_codec.h"
#include "src/rpc/pb.h"

namespace {

std::string Nanopb(bool ack, const std::string& sub, int32_t secs,
                   const std::vector<std::string>& ids) {
  std::vector<char*> p;
  for (const auto& id : ids) p.push_back(const_cast<char*>(id.c_str()));
  uint8_t* buf = nullptr;
  size_t len = 0;
  trb_status_t st;
  if (ack) {
    google_pubsub_v1_AcknowledgeRequest r = google_pubsub_v1_AcknowledgeRequest_init_zero;
    r.subscription = const_cast<char*>(sub.c_str());
    r.ack_ids_count = static_cast<pb_size_t>(ids.size());
    r.ack_ids = p.data();
    EXPECT_EQ(trb_pb_encode(google_pubsub_v1_AcknowledgeRequest_fields, &r, &buf, &len, &st),
              GRPC_STATUS_OK);
  } else {
    google_pubsub_v1_ModifyAckDeadlineRequest r =
        google_pubsub_v1_ModifyAckDeadlineRequest_init_zero;
    r.subscription = const_cast<char*>(sub.c_str());
    r.ack_deadline_seconds = secs;
    r.ack_ids_count = static_cast<pb_size_t>(ids.size());
    r.ack_ids = p.data();
    EXPECT_EQ(
        trb_pb_encode(google_pubsub_v1_ModifyAckDeadlineRequest_fields, &r, &buf, &len, &st),
        GRPC_STATUS_OK);
  }
  std::string out(reinterpret_cast<char*>(buf), len);
  trb_free(buf);
  return out;
}

// As subscriber.c builds it: entries appended after room for the header,
// the header written last.
std::string Hand(bool ack, const std::string& sub, int32_t secs,
                 const std::vector<std::string>& ids) {
  size_t hdr = trb_ps_ackreq_header_len(sub.size(), ack, secs);
  size_t total = hdr;
  for (const auto& id : ids) total += trb_ps_ackreq_id_len(id.size());
  std::vector<uint8_t> buf(total + 1, 0xee);
  size_t at = hdr;
  for (const auto& id : ids) {
    size_t n = trb_ps_ackreq_put_id(buf.data() + at, ack, id.data(), id.size());
    EXPECT_EQ(n, trb_ps_ackreq_id_len(id.size()));
    // The id is the last bytes of its entry (subscriber.c relies on it).
    EXPECT_EQ(0, std::memcmp(buf.data() + at + n - id.size(), id.data(), id.size()));
    at += n;
  }
  EXPECT_EQ(hdr, trb_ps_ackreq_put_header(buf.data(), sub.data(), sub.size(), ack, secs));
  EXPECT_EQ(0xee, buf[total]);  // nothing written past the computed size
  return std::string(reinterpret_cast<char*>(buf.data()), total);
}

TEST(AckCodecTest, KnownBytes) {
  EXPECT_EQ(Hand(true, "s", 0, {"a", "bc"}), std::string("\x0a\x01s\x12\x01" "a\x12\x02" "bc"));
  EXPECT_EQ(Hand(false, "s", 10, {"a"}), std::string("\x0a\x01s\x18\x0a\x22\x01" "a"));
  // ack_deadline_seconds 0 (a nack) is not sent (proto3 default).
  EXPECT_EQ(Hand(false, "s", 0, {"a"}), std::string("\x0a\x01s\x22\x01" "a"));
}

TEST(AckCodecTest, RandomRequestsMatchNanopb) {
  std::mt19937_64 rng(777);
  const size_t kSizes[] = {0, 1, 127, 128, 200, 16383, 16384, 20000};
  const int32_t kSecs[] = {0, 1, 10, 60, 127, 128, 600, -1, INT32_MIN, INT32_MAX};
  for (int iter = 0; iter < 300; iter++) {
    bool ack = rng() % 2;
    std::string sub = "projects/p/subscriptions/" + std::string(rng() % 300, 'x');
    if (iter == 1) sub.clear();
    int32_t secs = kSecs[rng() % (sizeof kSecs / sizeof kSecs[0])];
    size_t n = iter < 20 ? static_cast<size_t>(iter) : rng() % 1001;
    std::vector<std::string> ids;
    for (size_t i = 0; i < n; i++) {
      size_t len = rng() % 16 == 0 ? kSizes[rng() % (sizeof kSizes / sizeof kSizes[0])]
                                   : 1 + rng() % 180;
      std::string id(len, 'a');
      for (auto& c : id) c = static_cast<char>('!' + rng() % 90);
      ids.push_back(std::move(id));
    }
    SCOPED_TRACE(iter);
    ASSERT_EQ(Nanopb(ack, sub, secs, ids), Hand(ack, sub, secs, ids));
  }
}

// Dropping ids from an encoded request (what the subscriber does before
// retrying only the TRANSIENT ones) leaves exactly the request of the kept
// ids.
TEST(AckCodecTest, MoveIdKeepsARequestOfTheKeptIds) {
  std::mt19937_64 rng(99);
  for (int iter = 0; iter < 200; iter++) {
    bool ack = rng() % 2;
    std::string sub = "projects/p/subscriptions/s" + std::to_string(iter);
    int32_t secs = static_cast<int32_t>(rng() % 700);
    size_t n = rng() % 300;
    std::vector<std::string> ids, kept_ids;
    std::vector<uint8_t> req(trb_ps_ackreq_header_len(sub.size(), ack, secs));
    std::vector<trb_ps_ackreq_id_t> pos;
    for (size_t i = 0; i < n; i++) {
      std::string id(rng() % 8 == 0 ? 130 + rng() % 200 : 1 + rng() % 60, 'k');
      for (auto& c : id) c = static_cast<char>('0' + rng() % 70);
      size_t at = req.size();
      req.resize(at + trb_ps_ackreq_id_len(id.size()));
      at += trb_ps_ackreq_put_id(req.data() + at, ack, id.data(), id.size());
      pos.push_back({static_cast<uint32_t>(at - id.size()), static_cast<uint32_t>(id.size())});
      ids.push_back(std::move(id));
    }
    size_t hdr = trb_ps_ackreq_header_len(sub.size(), ack, secs);
    size_t at = hdr;
    for (size_t i = 0; i < n; i++) {
      if (rng() % 3 == 0) continue;
      trb_ps_ackreq_id_t id = pos[i];
      at = trb_ps_ackreq_move_id(req.data(), at, &id);
      ASSERT_EQ(0, std::memcmp(req.data() + id.off, ids[i].data(), ids[i].size()));
      kept_ids.push_back(ids[i]);
    }
    trb_ps_ackreq_put_header(req.data(), sub.data(), sub.size(), ack, secs);
    SCOPED_TRACE(iter);
    ASSERT_EQ(Nanopb(ack, sub, secs, kept_ids),
              std::string(reinterpret_cast<char*>(req.data()), at));
  }
}

}  // namespace
