// append_codec_test.cc — src/bigquery/append_codec.h against nanopb: every
// request shape the writer sends, random and edge-case, must encode to the
// bytes trb_pb_encode produces for the same AppendRowsRequest struct.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#include "google/protobuf/descriptor.pb.h"
#include "src/bigquery/append_codec.h"
#include "src/common/alloc.h"
#include "src/rpc/pb.h"
#include "src/rpc/pb_view.h"

namespace {

struct Shape {
  std::string stream;
  bool has_stream = false;
  bool has_offset = false;
  int64_t offset = 0;
  bool has_schema = false;
  google_protobuf_DescriptorProto desc = google_protobuf_DescriptorProto_init_zero;
  std::vector<std::string> rows;
};

// nanopb's encoding of `sh` (the struct writer.c used to build).
std::string Nanopb(const Shape& sh) {
  google_cloud_bigquery_storage_v1_AppendRowsRequest r;
  std::memset(&r, 0, sizeof r);
  if (sh.has_stream) r.write_stream = const_cast<char*>(sh.stream.c_str());
  if (sh.has_offset) {
    r.has_offset = true;
    r.offset.value = sh.offset;
  }
  r.has_proto_rows = true;
  if (sh.has_schema) {
    r.proto_rows.has_writer_schema = true;
    r.proto_rows.writer_schema.has_proto_descriptor = true;
    r.proto_rows.writer_schema.proto_descriptor = sh.desc;
  }
  r.proto_rows.has_rows = true;
  std::vector<trb_pb_view_t> v(sh.rows.size() + 1);
  for (size_t i = 0; i < sh.rows.size(); i++) {
    v[i].data = reinterpret_cast<const uint8_t*>(sh.rows[i].data());
    v[i].len = sh.rows[i].size();
  }
  r.proto_rows.rows.serialized_rows.items = v.data();
  r.proto_rows.rows.serialized_rows.count = sh.rows.size();
  uint8_t* buf = nullptr;
  size_t len = 0;
  trb_status_t st;
  EXPECT_EQ(trb_pb_encode(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields,
                          &r, &buf, &len, &st),
            GRPC_STATUS_OK);
  std::string out(reinterpret_cast<char*>(buf), len);
  trb_free(buf);
  return out;
}

// The hand encoder, fed as writer.c feeds it (descriptor pre-encoded,
// rows concatenated with a length array).
std::string Hand(const Shape& sh) {
  std::string desc_bytes;
  if (sh.has_schema) {
    uint8_t* d = nullptr;
    size_t dl = 0;
    trb_status_t st;
    EXPECT_EQ(trb_pb_encode(google_protobuf_DescriptorProto_fields, &sh.desc, &d, &dl, &st),
              GRPC_STATUS_OK);
    desc_bytes.assign(reinterpret_cast<char*>(d), dl);
    trb_free(d);
  }
  std::string concat;
  std::vector<size_t> lens;
  for (const auto& row : sh.rows) {
    concat += row;
    lens.push_back(row.size());
  }
  trb_bq_append_req_t r;
  std::memset(&r, 0, sizeof r);
  r.write_stream = sh.has_stream ? sh.stream.c_str() : nullptr;
  r.has_offset = sh.has_offset;
  r.offset = sh.offset;
  r.has_writer_schema = sh.has_schema;
  r.descriptor = reinterpret_cast<const uint8_t*>(desc_bytes.data());
  r.descriptor_len = desc_bytes.size();
  r.rows = reinterpret_cast<const uint8_t*>(concat.data());
  r.row_len = lens.data();
  r.n_rows = lens.size();
  uint8_t* buf = nullptr;
  size_t len = 0;
  EXPECT_TRUE(trb_bq_append_req_encode(&r, &buf, &len));
  std::string out(reinterpret_cast<char*>(buf), len);
  trb_free(buf);
  return out;
}

std::string Hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string o;
  for (unsigned char c : s.substr(0, 64)) {
    o += d[c >> 4];
    o += d[c & 15];
  }
  return o;
}

void ExpectSame(const Shape& sh) {
  std::string a = Nanopb(sh), b = Hand(sh);
  ASSERT_EQ(a.size(), b.size()) << Hex(a) << " vs " << Hex(b);
  ASSERT_TRUE(a == b) << Hex(a) << " vs " << Hex(b);
}

TEST(AppendCodecTest, EmptyRequestIsJustEmptyRows) {
  Shape sh;
  ExpectSame(sh);
  EXPECT_EQ(Hand(sh), std::string("\x22\x02\x12\x00", 4));
}

TEST(AppendCodecTest, ZeroOffsetIsAnEmptyInt64Value) {
  Shape sh;
  sh.has_offset = true;
  ExpectSame(sh);
  EXPECT_EQ(Hand(sh).substr(0, 2), std::string("\x12\x00", 2));
}

TEST(AppendCodecTest, NegativeOffsetIsTenByteVarint) {
  Shape sh;
  sh.has_offset = true;
  sh.offset = -1;
  ExpectSame(sh);
  EXPECT_EQ(Hand(sh)[1], 11);
}

TEST(AppendCodecTest, EmptyStreamNameAndEmptyDescriptorAreSent) {
  Shape sh;
  sh.has_stream = true;
  sh.has_schema = true;
  sh.rows = {"", "", "x"};
  ExpectSame(sh);
}

TEST(AppendCodecTest, RandomShapesMatchNanopb) {
  std::mt19937_64 rng(12345);
  const size_t kSizes[] = {0, 1, 2, 126, 127, 128, 129, 16382, 16383, 16384, 16385, 70000};
  for (int iter = 0; iter < 400; iter++) {
    Shape sh;
    sh.has_stream = rng() % 2;
    sh.stream = "projects/p/datasets/d/tables/t/streams/" + std::string(rng() % 200, 's');
    sh.has_offset = rng() % 2;
    switch (rng() % 4) {
      case 0: sh.offset = 0; break;
      case 1: sh.offset = static_cast<int64_t>(rng() % 1000); break;
      case 2: sh.offset = static_cast<int64_t>(rng() >> 1); break;
      default: sh.offset = static_cast<int64_t>(1) << (rng() % 63); break;
    }
    sh.has_schema = rng() % 2;
    std::string name = "row_" + std::to_string(iter);
    std::vector<google_protobuf_FieldDescriptorProto> fields(rng() % 40);
    std::vector<std::string> fnames(fields.size());
    for (size_t i = 0; i < fields.size(); i++) {
      fields[i] = google_protobuf_FieldDescriptorProto_init_zero;
      fnames[i] = "f" + std::to_string(i) + std::string(rng() % 300, 'n');
      fields[i].name = const_cast<char*>(fnames[i].c_str());
      fields[i].has_number = true;
      fields[i].number = static_cast<int32_t>(i + 1);
    }
    if (sh.has_schema) {
      sh.desc.name = const_cast<char*>(name.c_str());
      sh.desc.field_count = static_cast<pb_size_t>(fields.size());
      sh.desc.field = fields.data();
    }
    size_t n = iter < 50 ? static_cast<size_t>(iter) : rng() % 600;
    for (size_t i = 0; i < n; i++) {
      size_t len = rng() % 8 == 0 ? kSizes[rng() % (sizeof kSizes / sizeof kSizes[0])]
                                  : rng() % 300;
      if (iter % 7 == 0) len = len % 3;
      std::string row(len, '\0');
      for (auto& c : row) c = static_cast<char>(rng());
      sh.rows.push_back(std::move(row));
    }
    SCOPED_TRACE(iter);
    ExpectSame(sh);
  }
}

}  // namespace
