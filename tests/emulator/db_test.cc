// db_test — group commit, per-op rollback, statement cache, durability.
#include "src/emulator/db.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil/wait.h"

namespace {

grpc_status_code CreateTable(trb_db_t* db, sqlite3*, void*, trb_status_t* st) {
  return trb_db_exec(db, "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v TEXT)", st);
}

struct Insert {
  int k;
  const char* v;
};

grpc_status_code DoInsert(trb_db_t* db, sqlite3*, void* user, trb_status_t* st) {
  auto* in = static_cast<Insert*>(user);
  sqlite3_stmt* s = trb_db_stmt(db, "INSERT INTO t(k, v) VALUES (?1, ?2)", st);
  if (!s) return st->code;
  sqlite3_bind_int(s, 1, in->k);
  sqlite3_bind_text(s, 2, in->v, -1, SQLITE_STATIC);
  if (sqlite3_step(s) != SQLITE_DONE) return trb_db_error(db, "insert", st);
  return GRPC_STATUS_OK;
}

struct Count {
  long long n = -1;
};

grpc_status_code DoCount(trb_db_t* db, sqlite3*, void* user, trb_status_t* st) {
  sqlite3_stmt* s = trb_db_stmt(db, "SELECT count(*) FROM t", st);
  if (!s) return st->code;
  if (sqlite3_step(s) != SQLITE_ROW) return trb_db_error(db, "count", st);
  static_cast<Count*>(user)->n = sqlite3_column_int64(s, 0);
  return GRPC_STATUS_OK;
}

long long CountRows(trb_db_t* db) {
  Count c;
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_OK, trb_db_run(db, DoCount, &c, &st)) << st.msg;
  return c.n;
}

TEST(Db, RunAppliesAndReportsErrors) {
  trb_db_t* db = nullptr;
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, trb_db_open(nullptr, nullptr, &db, &st)) << st.msg;
  ASSERT_EQ(GRPC_STATUS_OK, trb_db_run(db, CreateTable, nullptr, &st)) << st.msg;
  Insert a{1, "one"};
  EXPECT_EQ(GRPC_STATUS_OK, trb_db_run(db, DoInsert, &a, &st)) << st.msg;
  // Duplicate primary key: the op fails with SQLite's reason, nothing else.
  EXPECT_EQ(GRPC_STATUS_INTERNAL, trb_db_run(db, DoInsert, &a, &st));
  EXPECT_NE(std::string(st.msg).find("UNIQUE"), std::string::npos) << st.msg;
  EXPECT_EQ(1, CountRows(db));
  trb_db_close(db);
}

// Ops queued while a batch is applying form the next batch: one COMMIT for
// all of them; a failing op in that batch is rolled back alone.
struct Gate {
  trb_test::Cond cond;
  bool entered = false, open = false;
};

grpc_status_code Blocker(trb_db_t*, sqlite3*, void* user, trb_status_t*) {
  auto* g = static_cast<Gate*>(user);
  g->cond.Update([&] { g->entered = true; });
  EXPECT_TRUE(g->cond.WaitFor([&] { return g->open; }));
  return GRPC_STATUS_OK;
}

struct Results {
  trb_test::Cond cond;
  int ok = 0, failed = 0;
};

struct Job {
  Insert in;
  Results* res;
};

grpc_status_code JobApply(trb_db_t* db, sqlite3* c, void* user, trb_status_t* st) {
  return DoInsert(db, c, &static_cast<Job*>(user)->in, st);
}

void JobDone(void* user, grpc_status_code code, const trb_status_t*) {
  Results* r = static_cast<Job*>(user)->res;
  r->cond.Update([&] { (code == GRPC_STATUS_OK ? r->ok : r->failed)++; });
}

TEST(Db, GroupCommitBatchesQueuedOpsAndRollsBackOnlyTheFailedOne) {
  trb_db_t* db = nullptr;
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, trb_db_open(nullptr, nullptr, &db, &st));
  ASSERT_EQ(GRPC_STATUS_OK, trb_db_run(db, CreateTable, nullptr, &st));

  Gate gate;
  ASSERT_EQ(GRPC_STATUS_OK, trb_db_submit(db, Blocker, nullptr, &gate, &st));
  ASSERT_TRUE(gate.cond.WaitFor([&] { return gate.entered; }));
  long long ops0, commits0;
  trb_db_stats(db, &ops0, &commits0);

  Results res;
  std::vector<Job> jobs;
  for (int i = 0; i < 100; i++) jobs.push_back({{i, "x"}, &res});
  jobs.push_back({{5, "duplicate"}, &res});  // fails inside the batch
  for (auto& j : jobs) {
    ASSERT_EQ(GRPC_STATUS_OK, trb_db_submit(db, JobApply, JobDone, &j, &st));
  }
  gate.cond.Update([&] { gate.open = true; });
  ASSERT_TRUE(res.cond.WaitFor([&] { return res.ok + res.failed == 101; }));
  EXPECT_EQ(100, res.ok);
  EXPECT_EQ(1, res.failed);
  EXPECT_EQ(100, CountRows(db));
  long long ops1, commits1;
  trb_db_stats(db, &ops1, &commits1);
  // The blocker's batch, then the 101 queued ops in one transaction, then
  // CountRows' own.
  EXPECT_EQ(3, commits1 - commits0);
  trb_db_close(db);
}

TEST(Db, CloseRunsEveryQueuedOp) {
  trb_db_t* db = nullptr;
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, trb_db_open(nullptr, nullptr, &db, &st));
  ASSERT_EQ(GRPC_STATUS_OK, trb_db_run(db, CreateTable, nullptr, &st));
  Results res;
  std::vector<Job> jobs;
  for (int i = 0; i < 1000; i++) jobs.push_back({{i, "x"}, &res});
  for (auto& j : jobs) ASSERT_EQ(GRPC_STATUS_OK, trb_db_submit(db, JobApply, JobDone, &j, &st));
  trb_db_close(db);
  EXPECT_EQ(1000, res.ok);
}

TEST(Db, ConcurrentSubmittersAllCommitAndSurviveReopen) {
  char tmpl[] = "/tmp/trb_db_test_XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(tmpl));
  std::string path = std::string(tmpl) + "/x.sqlite";
  trb_db_options_t opt = {};
  opt.name = "test";
  trb_db_t* db = nullptr;
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, trb_db_open(path.c_str(), &opt, &db, &st)) << st.msg;
  ASSERT_EQ(GRPC_STATUS_OK, trb_db_run(db, CreateTable, nullptr, &st));
  Results res;
  std::vector<Job> jobs;
  for (int i = 0; i < 4000; i++) jobs.push_back({{i, "v"}, &res});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      trb_status_t s = {};
      for (int i = t; i < 4000; i += 4)
        EXPECT_EQ(GRPC_STATUS_OK, trb_db_submit(db, JobApply, JobDone, &jobs[i], &s));
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(res.cond.WaitFor([&] { return res.ok == 4000; }));
  long long ops, commits;
  trb_db_stats(db, &ops, &commits);
  EXPECT_GE(ops, 4001);
  trb_db_close(db);

  ASSERT_EQ(GRPC_STATUS_OK, trb_db_open(path.c_str(), &opt, &db, &st)) << st.msg;
  EXPECT_EQ(4000, CountRows(db));
  trb_db_close(db);
  std::string cmd = "rm -rf " + std::string(tmpl);
  ASSERT_EQ(0, system(cmd.c_str()));
}

TEST(Db, OpenReportsUnusablePath) {
  trb_db_t* db = nullptr;
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE,
            trb_db_open("/nonexistent-dir/x.sqlite", nullptr, &db, &st));
  EXPECT_EQ(nullptr, db);
  EXPECT_NE(std::string(st.msg).find("/nonexistent-dir/x.sqlite"), std::string::npos) << st.msg;
}

TEST(Db, StatementCacheReturnsTheSamePreparedStatement) {
  struct Check {
    sqlite3_stmt* a = nullptr;
    sqlite3_stmt* b = nullptr;
    grpc_status_code bad = GRPC_STATUS_OK;
  } c;
  trb_db_t* db = nullptr;
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, trb_db_open(nullptr, nullptr, &db, &st));
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_db_run(db,
                       [](trb_db_t* d, sqlite3*, void* u, trb_status_t* s) {
                         auto* c = static_cast<Check*>(u);
                         c->a = trb_db_stmt(d, "SELECT 1", s);
                         c->b = trb_db_stmt(d, "SELECT 1", s);
                         trb_status_t bs = {};
                         if (!trb_db_stmt(d, "SELEKT nonsense", &bs)) c->bad = bs.code;
                         return GRPC_STATUS_OK;
                       },
                       &c, &st));
  EXPECT_NE(nullptr, c.a);
  EXPECT_EQ(c.a, c.b);
  EXPECT_EQ(GRPC_STATUS_INTERNAL, c.bad);
  trb_db_close(db);
}

}  // namespace
