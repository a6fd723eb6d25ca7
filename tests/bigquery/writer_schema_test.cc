// writer_schema_test.cc — updated_schema end to end: the emulator's table
// gains a column at run time (trb_bqemu_update_table_schema), the writer
// learns it from AppendRowsResponse.updated_schema, rebuilds its writer
// schema and writes the new column from then on; rows encoded before keep
// the old writer schema; nothing lost or duplicated.
#include "tests/bigquery/writer_fixture.h"

namespace {

using namespace wt;  // NOLINT: the shared fixture

constexpr const char* kSchemaExtra =
    R"([{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"name","type":"STRING","maxLength":10},)"
    R"({"name":"extra","type":"STRING"}])";

class WriterSchemaTest : public WriterTest {
 protected:
  void AddColumn() {
    trb_bq_table_t t;
    trb_status_t st{};
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(kSchemaExtra, strlen(kSchemaExtra), &t, &st)) << st.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_bqemu_update_table_schema(bq_, "ds", "t", &t, &st)) << st.msg;
    trb_bq_table_deinit(&t);
  }
  trb_bq_writer_stats_t Stats() {
    trb_bq_writer_stats_t s;
    trb_bq_writer_get_stats(w_, &s);
    return s;
  }
  static std::vector<std::string> ExtraRows(int from, int to) {
    std::vector<std::string> v;
    for (int i = from; i < to; i++)
      v.push_back("{\"id\":" + std::to_string(i) + ",\"extra\":\"x" + std::to_string(i) + "\"}");
    return v;
  }
};

// Unknown fields rejected (the default): a row with the new field is a row
// error until updated_schema arrives, then it is written with the column.
TEST_F(WriterSchemaTest, CommittedRejectsUntilUpdatedSchemaThenWritesColumn) {
  Create(TRB_BQ_STREAM_COMMITTED);
  Collector col(5);
  Append({R"({"id":0})", R"({"id":1,"extra":"early"})"}, &col, 0);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[0].done; }));
  EXPECT_EQ(1u, col.out[0].rows_written);
  ASSERT_EQ(1u, col.out[0].row_errors.size());
  EXPECT_EQ(1u, col.out[0].row_errors[0].first);
  EXPECT_NE(std::string::npos, col.out[0].row_errors[0].second.find("extra")) << col.out[0].row_errors[0].second;

  AddColumn();
  // The writer has not heard of it yet: still a row error (no request).
  Append({R"({"id":2,"extra":"still unknown"})"}, &col, 1);
  ASSERT_TRUE(col.out[1].done);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, col.out[1].code);
  EXPECT_EQ(0, Stats().schema_updates);
  // The next response on the open connection carries updated_schema.
  Append({R"({"id":1})"}, &col, 2);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[2].done; }));
  EXPECT_EQ(GRPC_STATUS_OK, col.out[2].code) << col.out[2].message;
  EXPECT_EQ(1, Stats().schema_updates);
  // From now on the column is known and written.
  Append(ExtraRows(2, 4), &col, 3);
  Append({R"({"id":4,"name":"n4"})"}, &col, 4);
  ASSERT_TRUE(col.WaitAll());
  for (int i = 2; i < 5; i++) EXPECT_EQ(GRPC_STATUS_OK, col.out[i].code) << col.out[i].message;
  EXPECT_EQ(2, col.out[3].offset);
  EXPECT_EQ(4, col.out[4].offset);
  auto s = Stats();
  EXPECT_EQ(1, s.schema_updates);
  EXPECT_EQ(1, s.schema_reconnects);  // the new writer schema opened a new connection
  EXPECT_EQ(2, s.connections);
  ExpectExactlyOnce(5);
  EXPECT_EQ((std::vector<std::string>{R"({"id":0,"extra":null})", R"({"id":1,"extra":null})",
                                      R"({"id":2,"extra":"x2"})", R"({"id":3,"extra":"x3"})",
                                      R"({"id":4,"extra":null})"}),
            Query("SELECT id, extra FROM ds.t ORDER BY id"));
}

// Unknown fields ignored, many appends in flight across the change: rows
// encoded before the update are sent with the old writer schema (the
// column dropped), rows encoded after it carry the column; every row once.
TEST_F(WriterSchemaTest, InFlightAcrossChangeEveryRowOnce) {
  Create(TRB_BQ_STREAM_COMMITTED, 0, [](trb_bq_writer_config_t* c) { c->ignore_unknown_fields = true; });
  constexpr int kPer = 10, kBefore = 10, kDuring = 10, kAfter = 10;
  constexpr int kAll = kBefore + kDuring + kAfter;
  Collector col(kAll);
  for (int i = 0; i < kBefore; i++) Append(ExtraRows(i * kPer, (i + 1) * kPer), &col, i);
  AddColumn();
  for (int i = kBefore; i < kBefore + kDuring; i++) Append(ExtraRows(i * kPer, (i + 1) * kPer), &col, i);
  ASSERT_TRUE(col.cond.WaitFor([&] {
    for (int i = 0; i < kBefore + kDuring; i++)
      if (!col.out[i].done) return false;
    return true;
  }));
  ASSERT_EQ(1, Stats().schema_updates);
  for (int i = kBefore + kDuring; i < kAll; i++) Append(ExtraRows(i * kPer, (i + 1) * kPer), &col, i);
  ASSERT_TRUE(col.WaitAll());
  for (int i = 0; i < kAll; i++) {
    EXPECT_EQ(GRPC_STATUS_OK, col.out[i].code) << i << ": " << col.out[i].message;
    EXPECT_EQ(i * kPer, col.out[i].offset) << i;
    EXPECT_TRUE(col.out[i].row_errors.empty()) << i;
  }
  ExpectExactlyOnce(kAll * kPer);
  // Encoded before the change: no column. After updated_schema: all have it.
  EXPECT_EQ(std::vector<std::string>{"{\"c\":0}"},
            Query("SELECT COUNT(*) AS c FROM ds.t WHERE id < " + std::to_string(kBefore * kPer) +
                  " AND extra IS NOT NULL"));
  EXPECT_EQ(std::vector<std::string>{"{\"c\":" + std::to_string(kAfter * kPer) + "}"},
            Query("SELECT COUNT(*) AS c FROM ds.t WHERE id >= " + std::to_string((kBefore + kDuring) * kPer) +
                  " AND extra = 'x' || id"));
  auto s = Stats();
  EXPECT_EQ(1, s.schema_updates);
  EXPECT_GE(s.schema_reconnects, 1);
  EXPECT_EQ(0, s.requests_resent);
}

// The connection drops while requests under both writer schemas are
// queued: the old-schema ones are resent on a connection opened with the
// old writer schema, then the new ones on one with the new schema; every
// row once, the column written for rows encoded after the update.
TEST_F(WriterSchemaTest, DropDuringSchemaSwitchEveryRowOnce) {
  Create(TRB_BQ_STREAM_COMMITTED, 0, [](trb_bq_writer_config_t* c) { c->ignore_unknown_fields = true; });
  trb_status_t st{};
  Collector col(12);
  Append(ExtraRows(0, 5), &col, 0);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[0].done; }));
  AddColumn();
  // Slow the server so that requests under both schemas are queued.
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_set_latency(faults_, kAppend, 10, &st));
  for (int i = 1; i < 6; i++) Append(ExtraRows(i * 5, (i + 1) * 5), &col, i);  // old schema
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[1].done; }));  // carries updated_schema
  ASSERT_EQ(1, Stats().schema_updates);
  for (int i = 6; i < 12; i++) Append(ExtraRows(i * 5, (i + 1) * 5), &col, i);  // new schema
  trb_faults_drop_streams(faults_, GRPC_STATUS_UNAVAILABLE, "dropped");
  ASSERT_TRUE(col.WaitAll());
  for (int i = 0; i < 12; i++) {
    EXPECT_EQ(GRPC_STATUS_OK, col.out[i].code) << i << ": " << col.out[i].message;
    EXPECT_EQ(i * 5, col.out[i].offset) << i;
  }
  ExpectExactlyOnce(60);
  EXPECT_EQ(std::vector<std::string>{"{\"c\":30,\"lo\":30}"},
            Query("SELECT COUNT(*) AS c, MIN(id) AS lo FROM ds.t WHERE extra = 'x' || id"));
  EXPECT_EQ(std::vector<std::string>{"{\"c\":30}"}, Query("SELECT COUNT(*) AS c FROM ds.t WHERE extra IS NULL"));
  auto s = Stats();
  EXPECT_GE(s.connections, 3);  // first, after the drop, and for the new schema
  EXPECT_GE(s.schema_reconnects, 1);
}

// The _default stream learns the new column the same way.
TEST_F(WriterSchemaTest, DefaultStreamPicksUpNewColumn) {
  Create(TRB_BQ_STREAM_DEFAULT, 0, [](trb_bq_writer_config_t* c) { c->ignore_unknown_fields = true; });
  Collector col(3);
  Append(ExtraRows(0, 2), &col, 0);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[0].done; }));
  AddColumn();
  Append(ExtraRows(2, 3), &col, 1);
  ASSERT_TRUE(col.cond.WaitFor([&] { return col.out[1].done; }));
  EXPECT_EQ(1, Stats().schema_updates);
  Append(ExtraRows(3, 5), &col, 2);
  ASSERT_TRUE(col.WaitAll());
  for (auto& o : col.out) EXPECT_EQ(GRPC_STATUS_OK, o.code) << o.message;
  ExpectExactlyOnce(5);
  EXPECT_EQ((std::vector<std::string>{R"({"id":0,"extra":null})", R"({"id":1,"extra":null})",
                                      R"({"id":2,"extra":null})", R"({"id":3,"extra":"x3"})",
                                      R"({"id":4,"extra":"x4"})"}),
            Query("SELECT id, extra FROM ds.t ORDER BY id"));
}

}  // namespace
