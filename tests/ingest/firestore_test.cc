// firestore_test.cc — rendering of Firestore DocumentEventData (protobuf
// and proto3 JSON) as plain JSON: every fixture of ../shared/corpus/firestore,
// every Value type through a nanopb-encoded document, malformed input.
#include <gtest/gtest.h>
#include <jansson.h>

#include <cstring>
#include <string>
#include <vector>

#include "google/events/cloud/firestore/v1/data.pb.h"
#include "src/common/alloc.h"
#include "src/ingest/firestore.h"
#include "src/ingest/push.h"
#include "src/rpc/pb.h"
#include "tests/ingest/corpus.h"

namespace {

// Doubles are compared at 15 significant digits (ingest writes 17, which
// round-trips exactly: 51.4543 → 51.454300000000003).
std::string Dump(const json_t* j) {
  char* t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY |
                              JSON_REAL_PRECISION(15));
  std::string s = t ? t : "";
  free(t);
  return s;
}

json_t* Load(const std::string& s) {
  json_error_t err;
  json_t* j = json_loadb(s.data(), s.size(), JSON_DECODE_ANY, &err);
  EXPECT_NE(nullptr, j) << err.text;
  return j;
}

std::string FromJson(const std::string& text, trb_status_t* st = nullptr) {
  json_t* in = Load(text);
  json_t* out = nullptr;
  trb_status_t local = {};
  grpc_status_code c = trb_ingest_firestore_from_json(in, &out, st ? st : &local);
  json_decref(in);
  if (c != GRPC_STATUS_OK) return "<error>";
  std::string s = Dump(out);
  json_decref(out);
  return s;
}

std::string Corpus(const std::string& rel) {
  std::string s;
  EXPECT_TRUE(trb_test::ReadFile(trb_test::CorpusDir() + "/firestore/" + rel, &s)) << rel;
  return s;
}

TEST(FirestoreTest, TimestampFormat) {
  char b[40];
  trb_ingest_timestamp_format(1714891972, 884271000, b);
  EXPECT_STREQ("2024-05-05T06:52:52.884271Z", b);
  trb_ingest_timestamp_format(0, 0, b);
  EXPECT_STREQ("1970-01-01T00:00:00Z", b);
  trb_ingest_timestamp_format(1, 500000000, b);
  EXPECT_STREQ("1970-01-01T00:00:01.500Z", b);
  trb_ingest_timestamp_format(1, 1, b);
  EXPECT_STREQ("1970-01-01T00:00:01.000000001Z", b);
}

TEST(FirestoreTest, SimpleUpdateFixture) {
  for (const char* path :
       {"googleapis__google-cloudevents/examples/binary/firestore/DocumentEventData-simple.json",
        "googleapis__google-cloudevents/testdata/google/events/cloud/firestore/v1/"
        "DocumentEventData-simple.json"}) {
    SCOPED_TRACE(path);
    std::string got = FromJson(Corpus(path));
    json_t* j = Load(got);
    ASSERT_NE(nullptr, j) << got;
    EXPECT_EQ(4, json_integer_value(json_object_get(
                     json_object_get(json_object_get(j, "value"), "fields"), "count")));
    EXPECT_EQ(3, json_integer_value(json_object_get(
                     json_object_get(json_object_get(j, "old_value"), "fields"), "count")));
    EXPECT_STREQ("asd", json_string_value(json_object_get(
                            json_object_get(json_object_get(j, "value"), "fields"),
                            "another test")));
    EXPECT_EQ("[\"count\"]", Dump(json_object_get(j, "update_mask")));
    EXPECT_NE(nullptr, json_object_get(json_object_get(j, "value"), "create_time"));
    json_decref(j);
  }
}

TEST(FirestoreTest, ComplexCreateFixtureEveryType) {
  const std::string want =
      "{\"value\":{\"create_time\":\"2020-04-23T14:25:05.349632Z\",\"fields\":{"
      "\"arrayValue\":[1,2],\"booleanValue\":true,\"doubleValue\":5.5,"
      "\"geoPointValue\":{\"latitude\":51.4543,\"longitude\":-0.9781},"
      "\"intValue\":50,\"mapValue\":{\"field1\":\"x\",\"field2\":[\"x\",1]},"
      "\"nullValue\":null,\"referenceValue\":"
      "\"projects/project-id/databases/(default)/documents/foo/bar/baz/qux\","
      "\"stringValue\":\"text\",\"timestampValue\":\"2020-04-23T14:23:53.241Z\"},"
      "\"name\":\"projects/project-id/databases/(default)/documents/gcf-test/"
      "IH75dRdeYJKd4uuQiqch\",\"update_time\":\"2020-04-23T14:25:05.349632Z\"}}";
  for (const char* path :
       {"googleapis__google-cloudevents/examples/binary/firestore/DocumentEventData-complex.json",
        "googleapis__google-cloudevents/testdata/google/events/cloud/firestore/v1/"
        "DocumentEventData-complex.json"}) {
    SCOPED_TRACE(path);
    // Empty oldValue {} and updateMask {} of a create are left out.
    EXPECT_EQ(want, FromJson(Corpus(path)));
  }
}

TEST(FirestoreTest, ConformanceStructuredAndLegacyDataRenderAlike) {
  const std::string dir =
      "GoogleCloudPlatform__functions-framework-conformance/events/generate/data/";
  for (const char* kind : {"simple", "complex"}) {
    std::string rendered;
    for (const char* form : {"cloudevent-input", "cloudevent-output", "legacy-input",
                             "legacy-output"}) {
      SCOPED_TRACE(std::string(kind) + " " + form);
      json_t* root = Load(Corpus(dir + "firestore_" + kind + "-" + form + ".json"));
      ASSERT_NE(nullptr, root);
      json_t* out = nullptr;
      trb_status_t st = {};
      ASSERT_EQ(GRPC_STATUS_OK,
                trb_ingest_firestore_from_json(json_object_get(root, "data"), &out, &st))
          << st.msg;
      std::string s = Dump(out);
      if (rendered.empty()) rendered = s;
      EXPECT_EQ(rendered, s);
      EXPECT_NE(nullptr, json_object_get(out, "value"));
      json_decref(out);
      json_decref(root);
    }
  }
}

TEST(FirestoreTest, RealProtobufCapture) {
  std::string pb = Corpus("CodeHavenX__MonoRepo/edifikana_document_created.pb");
  std::string b64 = Corpus("CodeHavenX__MonoRepo/edifikana_document_created.pb.b64");
  while (!b64.empty() && (b64.back() == '\n' || b64.back() == '\r')) b64.pop_back();
  std::vector<uint8_t> dec(b64.size());
  int64_t n = trb_ingest_base64_decode(b64.data(), b64.size(), dec.data());
  ASSERT_EQ(static_cast<int64_t>(pb.size()), n);
  EXPECT_EQ(0, memcmp(pb.data(), dec.data(), pb.size()));

  json_t* out = nullptr;
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_ingest_firestore_from_proto(reinterpret_cast<const uint8_t*>(pb.data()),
                                            pb.size(), &out, &st))
      << st.msg;
  json_t* v = json_object_get(out, "value");
  EXPECT_STREQ(
      "projects/edifikana/databases/(default)/documents/timeCardRecords/"
      "DNI_47202201-CLOCK_OUT-1714891969",
      json_string_value(json_object_get(v, "name")));
  json_t* f = json_object_get(v, "fields");
  EXPECT_EQ(8u, json_object_size(f));
  EXPECT_EQ(1714891969, json_integer_value(json_object_get(f, "eventTime")));
  EXPECT_STREQ("CLOCK_OUT", json_string_value(json_object_get(f, "eventType")));
  EXPECT_STREQ("DNI_47202201", json_string_value(json_object_get(f, "employeeDocumentId")));
  EXPECT_STREQ("clockinout/2024-05-04-23-52-47-846.jpg",
               json_string_value(json_object_get(f, "imageUrl")));
  EXPECT_TRUE(json_is_null(json_object_get(f, "fallbackEmployeeName")));
  EXPECT_STREQ("2024-05-05T06:52:52.884271Z",
               json_string_value(json_object_get(v, "create_time")));
  EXPECT_EQ(nullptr, json_object_get(out, "old_value"));
  EXPECT_EQ(nullptr, json_object_get(out, "update_mask"));
  json_decref(out);
}

// Encode a DocumentEventData with every Value type through the generated
// nanopb stubs, then render it.
TEST(FirestoreTest, EveryValueTypeFromProtobuf) {
  using Value = google_events_cloud_firestore_v1_Value;
  std::vector<Value> arr(2);
  memset(arr.data(), 0, sizeof(Value) * 2);
  arr[0].which_value_type = google_events_cloud_firestore_v1_Value_integer_value_tag;
  arr[0].value_type.integer_value = -9007199254740993LL;
  arr[1].which_value_type = google_events_cloud_firestore_v1_Value_string_value_tag;
  arr[1].value_type.string_value = const_cast<char*>("é");

  google_events_cloud_firestore_v1_MapValue_FieldsEntry inner[1];
  memset(inner, 0, sizeof(inner));
  inner[0].key = const_cast<char*>("list");
  inner[0].has_value = true;
  inner[0].value.which_value_type = google_events_cloud_firestore_v1_Value_array_value_tag;
  inner[0].value.value_type.array_value.values_count = 2;
  inner[0].value.value_type.array_value.values = arr.data();

  uint8_t raw[3] = {0, 1, 255};
  pb_bytes_array_t* bytes = static_cast<pb_bytes_array_t*>(malloc(PB_BYTES_ARRAY_T_ALLOCSIZE(3)));
  bytes->size = 3;
  memcpy(bytes->bytes, raw, 3);

  google_events_cloud_firestore_v1_Document_FieldsEntry fields[9];
  memset(fields, 0, sizeof(fields));
  const char* names[] = {"n", "b", "d", "t", "s", "y", "r", "g", "m"};
  for (int i = 0; i < 9; i++) {
    fields[i].key = const_cast<char*>(names[i]);
    fields[i].has_value = true;
  }
  fields[0].value.which_value_type = google_events_cloud_firestore_v1_Value_null_value_tag;
  fields[1].value.which_value_type = google_events_cloud_firestore_v1_Value_boolean_value_tag;
  fields[1].value.value_type.boolean_value = true;
  fields[2].value.which_value_type = google_events_cloud_firestore_v1_Value_double_value_tag;
  fields[2].value.value_type.double_value = 0.25;
  fields[3].value.which_value_type = google_events_cloud_firestore_v1_Value_timestamp_value_tag;
  fields[3].value.value_type.timestamp_value.seconds = 1587651953;
  fields[3].value.value_type.timestamp_value.nanos = 241000000;
  fields[4].value.which_value_type = google_events_cloud_firestore_v1_Value_string_value_tag;
  fields[4].value.value_type.string_value = const_cast<char*>("text \"q\"");
  fields[5].value.which_value_type = google_events_cloud_firestore_v1_Value_bytes_value_tag;
  fields[5].value.value_type.bytes_value = bytes;
  fields[6].value.which_value_type = google_events_cloud_firestore_v1_Value_reference_value_tag;
  fields[6].value.value_type.reference_value = const_cast<char*>("projects/p/databases/d/documents/a/b");
  fields[7].value.which_value_type = google_events_cloud_firestore_v1_Value_geo_point_value_tag;
  fields[7].value.value_type.geo_point_value.latitude = 51.5;
  fields[7].value.value_type.geo_point_value.longitude = -0.25;
  fields[8].value.which_value_type = google_events_cloud_firestore_v1_Value_map_value_tag;
  fields[8].value.value_type.map_value.fields_count = 1;
  fields[8].value.value_type.map_value.fields = inner;

  char* paths[] = {const_cast<char*>("s"), const_cast<char*>("m.list")};
  google_events_cloud_firestore_v1_DocumentEventData ev;
  memset(&ev, 0, sizeof(ev));
  ev.has_value = true;
  ev.value.name = const_cast<char*>("projects/p/databases/d/documents/c/1");
  ev.value.fields_count = 9;
  ev.value.fields = fields;
  ev.value.has_update_time = true;
  ev.value.update_time.seconds = 1;
  ev.has_old_value = true;
  ev.old_value.name = const_cast<char*>("projects/p/databases/d/documents/c/1");
  ev.has_update_mask = true;
  ev.update_mask.field_paths_count = 2;
  ev.update_mask.field_paths = paths;

  uint8_t* buf = nullptr;
  size_t len = 0;
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_encode(google_events_cloud_firestore_v1_DocumentEventData_fields,
                                          &ev, &buf, &len, &st))
      << st.msg;
  free(bytes);
  json_t* out = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ingest_firestore_from_proto(buf, len, &out, &st)) << st.msg;
  EXPECT_EQ(
      "{\"old_value\":{\"fields\":{},\"name\":\"projects/p/databases/d/documents/c/1\"},"
      "\"update_mask\":[\"s\",\"m.list\"],\"value\":{\"fields\":{\"b\":true,\"d\":0.25,"
      "\"g\":{\"latitude\":51.5,\"longitude\":-0.25},\"m\":{\"list\":[-9007199254740993,"
      "\"\xc3\xa9\"]},\"n\":null,\"r\":\"projects/p/databases/d/documents/a/b\","
      "\"s\":\"text \\\"q\\\"\",\"t\":\"2020-04-23T14:25:53.241Z\",\"y\":\"AAH/\"},"
      "\"name\":\"projects/p/databases/d/documents/c/1\",\"update_time\":"
      "\"1970-01-01T00:00:01Z\"}}",
      Dump(out));
  json_decref(out);

  // Every truncation of the encoding is refused or renders; none crashes.
  for (size_t cut = 0; cut < len; cut++) {
    json_t* o = nullptr;
    trb_status_t s2 = {};
    grpc_status_code c = trb_ingest_firestore_from_proto(buf, cut, &o, &s2);
    EXPECT_TRUE(c == GRPC_STATUS_OK || c == GRPC_STATUS_INVALID_ARGUMENT) << cut;
    json_decref(o);
  }
  trb_free(buf);
}

TEST(FirestoreTest, MalformedProtobuf) {
  const uint8_t garbage[] = {0x0a, 0x05, 0x01};  // length past the end
  json_t* out = nullptr;
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_ingest_firestore_from_proto(garbage, 3, &out, &st));
  EXPECT_NE(nullptr, strstr(st.msg, "malformed DocumentEventData protobuf")) << st.msg;
  EXPECT_EQ(nullptr, out);
}

TEST(FirestoreTest, DeepProtobufNestingRefusedBeforeDecoding) {
  // value{fields{key,value{array{values{array{...}}}}}} 100 levels deep:
  // built inside out.
  std::string v;  // a Value
  for (int i = 0; i < 100; i++) {
    std::string arr = std::string(1, '\x0a') + static_cast<char>(v.size()) + v;  // values=1
    if (arr.size() > 127) break;
    v = std::string(1, '\x4a') + static_cast<char>(arr.size()) + arr;  // array_value=9
  }
  // Use longer varint lengths: simpler to nest maps via the generic helper.
  std::string val = "\x58\x00";  // null_value
  for (int i = 0; i < 80; i++) {
    std::string arr = "\x0a";  // ArrayValue.values = 1
    std::string len;
    size_t n = val.size();
    do {
      uint8_t b = n & 0x7f;
      n >>= 7;
      len.push_back(static_cast<char>(b | (n ? 0x80 : 0)));
    } while (n);
    arr += len + val;
    std::string outer = "\x4a";  // Value.array_value = 9
    n = arr.size();
    len.clear();
    do {
      uint8_t b = n & 0x7f;
      n >>= 7;
      len.push_back(static_cast<char>(b | (n ? 0x80 : 0)));
    } while (n);
    val = outer + len + arr;
  }
  auto lp = [](uint8_t tag, const std::string& body) {
    std::string s(1, static_cast<char>(tag));
    size_t n = body.size();
    do {
      uint8_t b = n & 0x7f;
      n >>= 7;
      s.push_back(static_cast<char>(b | (n ? 0x80 : 0)));
    } while (n);
    return s + body;
  };
  std::string entry = lp(0x0a, "k") + lp(0x12, val);  // key=1, value=2
  std::string doc = lp(0x12, entry);                  // Document.fields=2
  std::string ev = lp(0x0a, doc);                     // DocumentEventData.value=1
  json_t* out = nullptr;
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ingest_firestore_from_proto(reinterpret_cast<const uint8_t*>(ev.data()),
                                            ev.size(), &out, &st));
  EXPECT_NE(nullptr, strstr(st.msg, "nested deeper than 64")) << st.msg;
}

TEST(FirestoreTest, BadJsonValuesNameTheMember) {
  trb_status_t st = {};
  EXPECT_EQ("<error>", FromJson("{\"value\":{\"fields\":{\"n\":{\"integerValue\":\"x1\"}}}}", &st));
  EXPECT_STREQ("value.fields.n: integerValue is not an int64: x1", st.msg);
  EXPECT_EQ("<error>", FromJson("{\"value\":{\"fields\":{\"a\":{\"mapValue\":{\"fields\":"
                                "{\"b\":{\"fooValue\":1}}}}}}}",
                                &st));
  EXPECT_STREQ("value.fields.a.b: unknown Firestore value type fooValue", st.msg);
  EXPECT_EQ("<error>", FromJson("{\"value\":{\"fields\":{\"a\":{}}}}", &st));
  EXPECT_STREQ("value.fields.a: Firestore value must have exactly one type member", st.msg);
  EXPECT_EQ("<error>", FromJson("[]", &st));
  EXPECT_STREQ("DocumentEventData is not a JSON object", st.msg);
  EXPECT_EQ("{\"value\":{\"fields\":{\"d\":\"NaN\"}}}",
            FromJson("{\"value\":{\"fields\":{\"d\":{\"doubleValue\":\"NaN\"}}}}"));
}

}  // namespace
