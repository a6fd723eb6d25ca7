// mutation_test.cc — the generated stubs and the zero-copy views against
// hostile input: protoc's golden encodings (see BUILD), mutated with a fixed
// seed (bit flips, truncation, inserted bytes, length-prefix damage), must
// decode or fail cleanly — never read out of bounds (run under ASan) — and a
// message that decodes must re-encode.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/alloc.h"
#include "src/rpc/details.h"
#include "src/rpc/pb.h"

namespace {

std::vector<uint8_t> Golden(const std::string& name) {
  std::ifstream f("tests/googleapis/" + name + ".bin", std::ios::binary);
  EXPECT_TRUE(f.good()) << name;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

std::vector<uint8_t> Mutate(const std::vector<uint8_t>& in, std::mt19937_64* rng) {
  std::vector<uint8_t> out = in;
  int edits = 1 + static_cast<int>((*rng)() % 4);
  for (int e = 0; e < edits && !out.empty(); e++) {
    size_t at = (*rng)() % out.size();
    switch ((*rng)() % 5) {
      case 0:  // flip a bit
        out[at] ^= static_cast<uint8_t>(1u << ((*rng)() % 8));
        break;
      case 1:  // truncate
        out.resize(at);
        break;
      case 2:  // insert a random byte
        out.insert(out.begin() + static_cast<long>(at), static_cast<uint8_t>((*rng)()));
        break;
      case 3:  // a large varint where a length may be
        out[at] = 0xff;
        break;
      default:  // duplicate a slice (repeated fields, nested messages)
        out.insert(out.end(), out.begin() + static_cast<long>(at), out.end());
        break;
    }
  }
  return out;
}

template <typename Msg>
int DecodeMutants(const pb_msgdesc_t* fields, const std::vector<uint8_t>& golden, int rounds,
        void (*extra_release)(Msg*)) {
  std::mt19937_64 rng(0x7472696275746172ULL);  // fixed seed: reproducible
  int decoded = 0;
  for (int i = 0; i < rounds; i++) {
    // Decode from an exact-size heap copy so ASan sees any overread.
    std::vector<uint8_t> m = Mutate(golden, &rng);
    std::unique_ptr<uint8_t[]> buf(new uint8_t[m.size() + 1]);
    std::copy(m.begin(), m.end(), buf.get());
    Msg msg = {};
    trb_status_t st;
    if (trb_pb_decode(fields, buf.get(), m.size(), &msg, &st) == GRPC_STATUS_OK) {
      decoded++;
      uint8_t* out = nullptr;
      size_t len = 0;
      EXPECT_EQ(GRPC_STATUS_OK, trb_pb_encode(fields, &msg, &out, &len, &st)) << st.msg;
      trb_free(out);
    }
    if (extra_release) extra_release(&msg);
    trb_pb_release(fields, &msg);
  }
  return decoded;
}

void ReleaseRows(google_cloud_bigquery_storage_v1_AppendRowsRequest* m) {
  trb_pb_view_list_free(&m->proto_rows.rows.serialized_rows);
}

constexpr int kRounds = 20000;

TEST(MutationTest, PublishRequest) {
  int ok = DecodeMutants<google_pubsub_v1_PublishRequest>(google_pubsub_v1_PublishRequest_fields,
                                                Golden("publish_request"), kRounds, nullptr);
  EXPECT_GT(ok, 0);         // some mutations stay valid protobuf
  EXPECT_LT(ok, kRounds);   // and many do not
}

TEST(MutationTest, AppendRowsRequest) {
  int ok = DecodeMutants<google_cloud_bigquery_storage_v1_AppendRowsRequest>(
      google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, Golden("append_rows_request"),
      kRounds, ReleaseRows);
  EXPECT_GT(ok, 0);
  EXPECT_LT(ok, kRounds);
}

TEST(MutationTest, StatusDetails) {
  std::vector<uint8_t> golden = Golden("storage_error_status");
  std::mt19937_64 rng(42);
  int ok = 0;
  for (int i = 0; i < kRounds; i++) {
    std::vector<uint8_t> m = Mutate(golden, &rng);
    std::unique_ptr<uint8_t[]> buf(new uint8_t[m.size() + 1]);
    std::copy(m.begin(), m.end(), buf.get());
    trb_rpc_status_details_t d;
    trb_status_t st;
    if (trb_rpc_status_details_decode(buf.get(), m.size(), &d, &st) == GRPC_STATUS_OK) {
      ok++;
      ASSERT_NE(nullptr, d.message);
      for (size_t k = 0; k < d.n_details; k++) ASSERT_NE(nullptr, d.details[k].type_url);
    }
    trb_rpc_status_details_deinit(&d);
  }
  EXPECT_GT(ok, 0);
  EXPECT_LT(ok, kRounds);
}

}  // namespace

namespace {

// The `rows` oneof switching from proto_rows (with decoded row views) to
// arrow_rows: in a union the view list would be overwritten and leak
// (pb_release does not know it); generated without unions (nanopb.options)
// it stays reachable. LeakSanitizer checks at exit.
TEST(MutationTest, OneofSwitchAfterRowViewsDoesNotLeak) {
  const uint8_t bytes[] = {0x22, 0x05, 0x12, 0x03, 0x0a, 0x01, 'a', 0x2a, 0x00};
  google_cloud_bigquery_storage_v1_AppendRowsRequest m =
      google_cloud_bigquery_storage_v1_AppendRowsRequest_init_zero;
  trb_status_t st;
  grpc_status_code code = trb_pb_decode(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields,
                                        bytes, sizeof(bytes), &m, &st);
  EXPECT_EQ(GRPC_STATUS_OK, code) << st.msg;
  EXPECT_TRUE(m.has_arrow_rows);
  EXPECT_EQ(1u, m.proto_rows.rows.serialized_rows.count);
  trb_pb_view_list_free(&m.proto_rows.rows.serialized_rows);
  trb_pb_release(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, &m);
}

}  // namespace
