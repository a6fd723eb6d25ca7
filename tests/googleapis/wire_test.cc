// wire_test.cc — the nanopb stubs against protoc's own encodings of the
// official protos (goldens made at build time, see BUILD): decode them, check
// every field, re-encode and compare byte for byte.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
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

std::vector<uint8_t> Encode(const pb_msgdesc_t* fields, const void* msg) {
  uint8_t* buf = nullptr;
  size_t len = 0;
  trb_status_t st;
  EXPECT_EQ(GRPC_STATUS_OK, trb_pb_encode(fields, msg, &buf, &len, &st)) << st.msg;
  std::vector<uint8_t> out(buf, buf + len);
  trb_free(buf);
  return out;
}

std::string View(const trb_pb_view_t& v) {
  return std::string(reinterpret_cast<const char*>(v.data), v.len);
}

TEST(WireTest, PublishRequest) {
  std::vector<uint8_t> golden = Golden("publish_request");
  google_pubsub_v1_PublishRequest m = google_pubsub_v1_PublishRequest_init_zero;
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_pubsub_v1_PublishRequest_fields, golden.data(),
                                          golden.size(), &m, &st))
      << st.msg;
  EXPECT_STREQ("projects/demo/topics/events", m.topic);
  ASSERT_EQ(2, m.messages_count);
  EXPECT_EQ("{\"event_type\":\"order\",\"order_id\":\"o-1\"}", View(m.messages[0].data));
  ASSERT_EQ(1, m.messages[0].attributes_count);
  EXPECT_STREQ("source", m.messages[0].attributes[0].key);
  EXPECT_STREQ("ingest", m.messages[0].attributes[0].value);
  EXPECT_STREQ("user-42", m.messages[0].ordering_key);
  EXPECT_EQ("second", View(m.messages[1].data));
  EXPECT_EQ(golden, Encode(google_pubsub_v1_PublishRequest_fields, &m));
  trb_pb_release(google_pubsub_v1_PublishRequest_fields, &m);
}

TEST(WireTest, AppendRowsRequestWithWriterSchema) {
  std::vector<uint8_t> golden = Golden("append_rows_request");
  google_cloud_bigquery_storage_v1_AppendRowsRequest m =
      google_cloud_bigquery_storage_v1_AppendRowsRequest_init_zero;
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields,
                                          golden.data(), golden.size(), &m, &st))
      << st.msg;
  EXPECT_STREQ("projects/p/datasets/backend_events_data/tables/order_events/streams/s1",
               m.write_stream);
  ASSERT_TRUE(m.has_offset);
  EXPECT_EQ(1234, m.offset.value);
  ASSERT_TRUE(m.has_proto_rows);
  EXPECT_FALSE(m.has_arrow_rows);
  const auto& pd = m.proto_rows;
  ASSERT_TRUE(pd.has_writer_schema);
  ASSERT_TRUE(pd.writer_schema.has_proto_descriptor);
  const google_protobuf_DescriptorProto& d = pd.writer_schema.proto_descriptor;
  EXPECT_STREQ("order_events", d.name);
  ASSERT_EQ(3, d.field_count);
  EXPECT_STREQ("event_id", d.field[0].name);
  EXPECT_EQ(google_protobuf_FieldDescriptorProto_Label_LABEL_REQUIRED, d.field[0].label);
  EXPECT_EQ(google_protobuf_FieldDescriptorProto_Type_TYPE_DOUBLE, d.field[1].type);
  EXPECT_EQ(google_protobuf_FieldDescriptorProto_Label_LABEL_REPEATED, d.field[2].label);
  EXPECT_STREQ("items", d.field[2].type_name);
  ASSERT_EQ(1, d.nested_type_count);
  EXPECT_EQ(2, d.nested_type[0].field_count);
  ASSERT_TRUE(pd.has_rows);
  ASSERT_EQ(2u, pd.rows.serialized_rows.count);
  EXPECT_EQ(std::string("\n\003e-1\021\000\000\000\000\000\000$@", 14),
            View(pd.rows.serialized_rows.items[0]));
  EXPECT_EQ(std::string("\n\003e-2"), View(pd.rows.serialized_rows.items[1]));
  EXPECT_STREQ("tributary", m.trace_id);
  EXPECT_EQ(golden, Encode(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, &m));
  trb_pb_view_list_free(&m.proto_rows.rows.serialized_rows);
  trb_pb_release(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, &m);
}

TEST(WireTest, StatusWithStorageErrorDetail) {
  std::vector<uint8_t> golden = Golden("storage_error_status");
  trb_rpc_status_details_t d;
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_status_details_decode(golden.data(), golden.size(), &d, &st))
      << st.msg;
  EXPECT_EQ(GRPC_STATUS_OUT_OF_RANGE, d.code);
  EXPECT_STREQ("Offset 7 is beyond the end of the stream", d.message);
  const trb_rpc_any_t* any =
      trb_rpc_status_details_find(&d, "google.cloud.bigquery.storage.v1.StorageError");
  ASSERT_NE(nullptr, any);
  google_cloud_bigquery_storage_v1_StorageError se =
      google_cloud_bigquery_storage_v1_StorageError_init_zero;
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_StorageError_fields,
                                          any->value, any->value_len, &se, &st));
  EXPECT_EQ(google_cloud_bigquery_storage_v1_StorageError_StorageErrorCode_OFFSET_OUT_OF_RANGE,
            se.code);
  EXPECT_STREQ("stream", se.entity);
  EXPECT_STREQ("out of range!", se.error_message);
  trb_pb_release(google_cloud_bigquery_storage_v1_StorageError_fields, &se);

  uint8_t* buf = nullptr;
  size_t len = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_status_details_encode(static_cast<grpc_status_code>(d.code),
                                                          d.message, d.details, d.n_details, &buf,
                                                          &len, &st));
  EXPECT_EQ(golden, std::vector<uint8_t>(buf, buf + len));
  trb_free(buf);
  trb_rpc_status_details_deinit(&d);
}

TEST(WireTest, TruncatedInputIsRejected) {
  std::vector<uint8_t> golden = Golden("publish_request");
  google_pubsub_v1_PublishRequest m = google_pubsub_v1_PublishRequest_init_zero;
  trb_status_t st;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_pb_decode(google_pubsub_v1_PublishRequest_fields, golden.data(), golden.size() - 3,
                          &m, &st));
  EXPECT_NE(std::string::npos, std::string(st.msg).find("protobuf decode"));
  trb_pb_release(google_pubsub_v1_PublishRequest_fields, &m);
}

}  // namespace
