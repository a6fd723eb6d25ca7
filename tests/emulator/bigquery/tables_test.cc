// tables_test.cc — every seed table in examples/tables/ parses and is created
// by the emulator; GetWriteStream(FULL) on its _default stream returns it.
#include <dirent.h>

#include <fstream>
#include <sstream>

#include "tests/emulator/bigquery/bq_fixture.h"

namespace {

using namespace bqt;

class TablesTest : public BqTest {};

TEST_F(TablesTest, EverySeedTableLoads) {
  DIR* d = opendir("examples/tables");
  ASSERT_NE(nullptr, d) << "examples/tables is not in the runfiles";
  int n = 0;
  while (dirent* e = readdir(d)) {
    std::string f = e->d_name;
    if (f.size() < 6 || f.substr(f.size() - 5) != ".json") continue;
    std::ifstream in("examples/tables/" + f);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    trb_bq_table_t t;
    trb_status_t st{};
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(text.data(), text.size(), &t, &st)) << f << ": " << st.msg;
    std::string base = f.substr(0, f.size() - 5);
    size_t dot = base.find('.');
    ASSERT_NE(std::string::npos, dot) << f;
    std::string ds = base.substr(0, dot), tb = base.substr(dot + 1);
    ASSERT_EQ(GRPC_STATUS_OK, trb_bqemu_create_table(bq_, ds.c_str(), tb.c_str(), &t, &st)) << f << ": " << st.msg;
    std::string name = "projects/demo/datasets/" + ds + "/tables/" + tb + "/_default";
    google_cloud_bigquery_storage_v1_GetWriteStreamRequest g = {};
    g.name = (char*)name.c_str();
    g.view = google_cloud_bigquery_storage_v1_WriteStreamView_FULL;
    std::string resp;
    ASSERT_EQ(GRPC_STATUS_OK,
              Unary("GetWriteStream", google_cloud_bigquery_storage_v1_GetWriteStreamRequest_fields, &g, &resp));
    google_cloud_bigquery_storage_v1_WriteStream ws;
    ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_WriteStream_fields,
                                            (const uint8_t*)resp.data(), resp.size(), &ws, &st));
    EXPECT_EQ((pb_size_t)t.n_fields, ws.table_schema.fields_count) << f;
    trb_pb_release(google_cloud_bigquery_storage_v1_WriteStream_fields, &ws);
    trb_bq_table_deinit(&t);
    n++;
  }
  closedir(d);
  EXPECT_EQ(5, n);
  EXPECT_EQ(0u, Query("SELECT * FROM backend_events.order_events").size());
}

}  // namespace
