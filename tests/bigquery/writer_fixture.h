// writer_fixture.h — shared by the writer tests: the emulator's BigQuery
// fixture (tests/emulator/bigquery/bq_fixture.h) plus a trb_bq_writer on
// table ds.t, an append-outcome collector, and SQL checks of the rows.
#ifndef TRB_TESTS_BIGQUERY_WRITER_FIXTURE_H
#define TRB_TESTS_BIGQUERY_WRITER_FIXTURE_H

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "src/bigquery/schema.h"
#include "src/bigquery/writer.h"
#include "src/common/alloc.h"
#include "src/emulator/bigquery/bigquery.h"
#include "src/emulator/db.h"
#include "src/emulator/faults.h"
#include "src/rpc/rpc.h"
#include "src/rpc/server.h"
#include "tests/emulator/bigquery/bq_fixture.h"
#include "tests/testutil/wait.h"

namespace wt {

inline constexpr const char* kTable = "projects/demo/datasets/ds/tables/t";
inline constexpr const char* kAppend = "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows";
inline constexpr const char* kSchema =
    R"([{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"name","type":"STRING","maxLength":10}])";

// Outcome of one append, as seen by the callback.
struct Outcome {
  bool done = false;
  int calls = 0;
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  std::string message;
  int64_t offset = -2;
  size_t rows_written = 0;
  std::vector<std::pair<size_t, std::string>> row_errors;
};

struct Collector {
  trb_test::Cond cond;
  std::vector<Outcome> out;  // guarded by cond
  explicit Collector(size_t n) : out(n) {}
  struct Ctx {
    Collector* c;
    size_t i;
  };
  std::vector<Ctx> ctx;
  static void Cb(void* user, const trb_bq_append_result_t* r) {
    Ctx* x = (Ctx*)user;
    x->c->cond.Update([&] {
      Outcome& o = x->c->out[x->i];
      o.done = true;
      o.calls++;
      o.code = r->code;
      o.message = r->message ? r->message : "";
      o.offset = r->offset;
      o.rows_written = r->rows_written;
      for (size_t k = 0; k < r->n_row_errors; k++)
        o.row_errors.push_back({r->row_errors[k].index, r->row_errors[k].message});
    });
  }
  void* User(size_t i) {
    if (ctx.empty()) {
      ctx.resize(out.size());
      for (size_t k = 0; k < out.size(); k++) ctx[k] = {this, k};
    }
    return &ctx[i];
  }
  bool WaitAll(int ms = 30000) {
    return cond.WaitFor(
        [&] {
          for (auto& o : out)
            if (!o.done) return false;
          return true;
        },
        ms);
  }
};

// The emulator's BigQuery fixture (server on 127.0.0.1:0, loop, channel)
// plus a writer on table ds.t.
class WriterTest : public bqt::BqTest {
 protected:
  void SetUp() override {
    bqt::BqTest::SetUp();
    CreateTable("ds", "t", kSchema);
  }

  void TearDown() override {
    trb_bq_writer_destroy(w_);
    w_ = nullptr;
    bqt::BqTest::TearDown();
  }

  void Create(trb_bq_stream_kind_t kind, size_t max_bytes = 0,
              const std::function<void(trb_bq_writer_config_t*)>& tweak = nullptr) {
    trb_bq_writer_config_t c = {};
    c.table = kTable;
    c.kind = kind;
    c.max_request_bytes = max_bytes;
    c.backoff_initial_ms = 5;
    c.backoff_max_ms = 50;
    if (tweak) tweak(&c);
    trb_status_t st{};
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_writer_create(loop_, ch_, &c, &w_, &st)) << st.msg;
  }

  // Append rows[i] for i in [from, to) as one append.
  void Append(const std::vector<std::string>& rows, Collector* col, size_t slot) {
    std::vector<const char*> p;
    for (auto& r : rows) p.push_back(r.c_str());
    trb_status_t st{};
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_writer_append(w_, p.data(), p.size(), Collector::Cb, col->User(slot), &st))
        << st.msg;
  }

  static std::vector<std::string> Rows(int from, int to) {
    std::vector<std::string> v;
    for (int i = from; i < to; i++) v.push_back("{\"id\":" + std::to_string(i) + ",\"name\":\"n" + std::to_string(i) + "\"}");
    return v;
  }

  std::vector<std::string> Query(const std::string& sql) {
    char* buf = nullptr;
    size_t len = 0;
    FILE* f = open_memstream(&buf, &len);
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_OK, trb_bqemu_sql(dir_.c_str(), sql.c_str(), true, f, &st)) << st.msg;
    fclose(f);
    std::vector<std::string> out;
    std::string s(buf, len);
    free(buf);
    size_t p = 0;
    while (p < s.size()) {
      size_t e = s.find('\n', p);
      out.push_back(s.substr(p, e - p));
      p = e + 1;
    }
    return out;
  }

  // Every id in [0, n) exactly once, nothing else.
  void ExpectExactlyOnce(int n) {
    auto total = Query("SELECT COUNT(*) AS c FROM ds.t");
    ASSERT_EQ(1u, total.size());
    EXPECT_EQ("{\"c\":" + std::to_string(n) + "}", total[0]);
    auto d = Query("SELECT COUNT(DISTINCT id) AS c, MIN(id) AS lo, MAX(id) AS hi FROM ds.t");
    ASSERT_EQ(1u, d.size());
    EXPECT_EQ("{\"c\":" + std::to_string(n) + ",\"lo\":0,\"hi\":" + std::to_string(n - 1) + "}", d[0]);
  }

  trb_bq_writer_t* w_ = nullptr;
};

}  // namespace wt

#endif  // TRB_TESTS_BIGQUERY_WRITER_FIXTURE_H
