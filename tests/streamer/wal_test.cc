// wal_test — the streamer's write-ahead log (src/streamer/wal.h) and its
// record codec (src/streamer/wal_frame.h): round trips across reopen, group
// commit, release + prefix compaction, the disk budget, torn-tail recovery,
// corruption → DATA_LOSS, the directory lock, and kill -9 of a child process
// while it appends.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/streamer/wal.h"
#include "src/streamer/wal_frame.h"
#include "tests/testutil/wait.h"

namespace {

// ---- helpers ---------------------------------------------------------------

std::string Payload(uint64_t seed, size_t size) {
  std::string s(size, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = (char)(x >> 24);
  }
  return s;
}

std::string MakeTempDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/wal_test_XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  EXPECT_NE(nullptr, mkdtemp(buf.data()));
  return std::string(buf.data()) + "/wal";  // trb_wal_open creates this level
}

void RemoveTree(const std::string& dir) {
  std::string parent = dir.substr(0, dir.rfind('/'));
  std::string cmd = "rm -rf '" + parent + "'";
  EXPECT_EQ(0, system(cmd.c_str()));
}

std::string SegName(uint64_t first) {
  char b[64];
  snprintf(b, sizeof(b), "wal-%020llu.log", (unsigned long long)first);
  return b;
}

// Segment file names in `dir`, sorted.
std::vector<std::string> Segments(const std::string& dir) {
  std::vector<std::string> out;
  std::string cmd = "ls '" + dir + "'";
  FILE* p = popen(cmd.c_str(), "r");
  char line[256];
  while (p && fgets(line, sizeof(line), p)) {
    std::string s(line);
    while (!s.empty() && s.back() == '\n') s.pop_back();
    if (s.rfind("wal-", 0) == 0) out.push_back(s);
  }
  if (p) pclose(p);
  std::sort(out.begin(), out.end());
  return out;
}

off_t FileSize(const std::string& path) {
  struct stat sb;
  if (stat(path.c_str(), &sb) != 0) return -1;
  return sb.st_size;
}

struct Rec {
  uint8_t type;
  std::string payload;
};

// Replay sink: lsn → record, and the order seen.
struct Replayed {
  std::map<uint64_t, Rec> recs;
  std::vector<uint64_t> order;
  static void Cb(void* user, trb_wal_lsn_t lsn, uint8_t type, const uint8_t* payload,
                 size_t len) {
    auto* r = static_cast<Replayed*>(user);
    r->recs[lsn] = Rec{type, std::string(reinterpret_cast<const char*>(payload), len)};
    r->order.push_back(lsn);
  }
};

// Done-callback sink: lsn → code, callback order, wakes waiters.
struct Done {
  trb_test::Cond cond;
  std::map<uint64_t, grpc_status_code> codes;
  std::vector<uint64_t> order;
  std::string last_message;
  static void Cb(void* user, trb_wal_lsn_t lsn, grpc_status_code code, const char* msg) {
    auto* d = static_cast<Done*>(user);
    d->cond.Update([&] {
      d->codes[lsn] = code;
      d->order.push_back(lsn);
      d->last_message = msg;
    });
  }
  bool WaitCount(size_t n) {
    return cond.WaitFor([&] { return codes.size() >= n; });
  }
  bool AllOk() {
    auto l = cond.Lock();
    for (auto& kv : codes)
      if (kv.second != GRPC_STATUS_OK) return false;
    return true;
  }
};

trb_wal_config_t Config(const std::string& dir, trb_wal_sync_t sync = TRB_WAL_SYNC_NONE,
                        size_t segment_bytes = 0, uint64_t max_bytes = 0) {
  trb_wal_config_t c = {};
  c.dir = dir.c_str();
  c.sync = sync;
  c.segment_bytes = segment_bytes;
  c.max_bytes = max_bytes;
  return c;
}

trb_wal_t* Open(const trb_wal_config_t& c, Replayed* r = nullptr) {
  trb_wal_t* w = nullptr;
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_OK,
            trb_wal_open(&c, r ? Replayed::Cb : nullptr, r, &w, &st))
      << st.msg;
  return w;
}

uint64_t Append(trb_wal_t* w, uint8_t type, const std::string& p, Done* d) {
  trb_wal_lsn_t lsn = 0;
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_OK, trb_wal_append(w, type, p.data(), p.size(), Done::Cb, d, &lsn, &st))
      << st.msg;
  return lsn;
}

// Captures WARNING+ log lines for the duration of a test.
class LogCapture {
 public:
  LogCapture() { trb_log_set_sink(Sink, this); }
  ~LogCapture() { trb_log_set_sink(nullptr, nullptr); }
  std::string Text() {
    std::lock_guard<std::mutex> g(mu_);
    return text_;
  }

 private:
  static void Sink(trb_log_level_t level, const char* line, size_t len, void* user) {
    auto* c = static_cast<LogCapture*>(user);
    if (level < TRB_LOG_WARNING) return;
    std::lock_guard<std::mutex> g(c->mu_);
    c->text_.append(line, len);
  }
  std::mutex mu_;
  std::string text_;
};

// ---- codec -----------------------------------------------------------------

TEST(WalFrameTest, Crc32cKnownValuesAndHardwareMatchesTable) {
  const char* check = "123456789";
  EXPECT_EQ(0xE3069283u, trb_wal_crc32c(0, check, 9));
  EXPECT_EQ(0xE3069283u, trb_wal_crc32c_sw(0, check, 9));
  EXPECT_EQ(0u, trb_wal_crc32c(0, nullptr, 0));
  // RFC 3720 B.4: 32 bytes of zeros → 0x8A9136AA.
  std::string zeros(32, '\0');
  EXPECT_EQ(0x8A9136AAu, trb_wal_crc32c(0, zeros.data(), zeros.size()));
  std::string buf = Payload(7, 5000);
  for (size_t off : {0, 1, 3, 7}) {
    for (size_t len : {0, 1, 7, 8, 9, 63, 64, 1000, 4993}) {
      uint32_t hw = trb_wal_crc32c(0, buf.data() + off, len);
      EXPECT_EQ(trb_wal_crc32c_sw(0, buf.data() + off, len), hw) << off << " " << len;
      // Incremental == one shot.
      uint32_t part = trb_wal_crc32c(0, buf.data() + off, len / 3);
      EXPECT_EQ(hw, trb_wal_crc32c(part, buf.data() + off + len / 3, len - len / 3));
    }
  }
}

std::string Frame(uint8_t type, uint64_t lsn, const std::string& p) {
  std::string f(TRB_WAL_FRAME_HEADER_BYTES, '\0');
  trb_wal_frame_header(reinterpret_cast<uint8_t*>(&f[0]), type, lsn, p.size(),
                       trb_wal_crc32c(0, p.data(), p.size()));
  return f + p;
}

TEST(WalFrameTest, DecodeRoundTripShortAndEveryFlippedByteRejected) {
  std::string p = Payload(3, 40);
  std::string f = Frame(9, 123456789012345ull, p);
  ASSERT_EQ(TRB_WAL_FRAME_HEADER_BYTES + p.size(), f.size());
  trb_wal_frame_t out = {};
  const uint8_t* b = reinterpret_cast<const uint8_t*>(f.data());
  ASSERT_EQ(TRB_WAL_FRAME_OK, trb_wal_frame_decode(b, f.size(), true, &out));
  EXPECT_EQ(9, out.type);
  EXPECT_EQ(123456789012345ull, out.lsn);
  EXPECT_EQ(p, std::string(reinterpret_cast<const char*>(out.payload), out.len));
  EXPECT_EQ(f.size(), out.frame_bytes);
  for (size_t n = 0; n < f.size(); n++)
    EXPECT_EQ(TRB_WAL_FRAME_SHORT, trb_wal_frame_decode(b, n, true, &out)) << n;
  for (size_t i = 0; i < f.size(); i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string g = f;
      g[i] ^= (char)(1 << bit);
      EXPECT_NE(TRB_WAL_FRAME_OK,
                trb_wal_frame_decode(reinterpret_cast<const uint8_t*>(g.data()), g.size(), true,
                                     &out))
          << "byte " << i << " bit " << bit;
    }
  }
  // Empty payload; type 0 and lsn 0 are rejected.
  std::string e = Frame(1, 1, "");
  EXPECT_EQ(TRB_WAL_FRAME_OK,
            trb_wal_frame_decode(reinterpret_cast<const uint8_t*>(e.data()), e.size(), true, &out));
  EXPECT_EQ(0u, out.len);
  std::string z = Frame(0, 1, "x");
  EXPECT_EQ(TRB_WAL_FRAME_BAD,
            trb_wal_frame_decode(reinterpret_cast<const uint8_t*>(z.data()), z.size(), true, &out));
  z = Frame(1, 0, "x");
  EXPECT_EQ(TRB_WAL_FRAME_BAD,
            trb_wal_frame_decode(reinterpret_cast<const uint8_t*>(z.data()), z.size(), true, &out));
}

TEST(WalFrameTest, StreamOfFramesFedOneByteAtATimeAndRandomGarbage) {
  // 50 frames back to back, decoded as a reader that gets one more byte at
  // a time: SHORT until a frame is complete, then exactly that frame.
  std::string stream;
  std::vector<size_t> ends;
  for (uint64_t i = 1; i <= 50; i++) {
    stream += Frame((uint8_t)(i % 255 + 1), i, Payload(i, (size_t)(i * i * 7 % 3000)));
    ends.push_back(stream.size());
  }
  const uint8_t* b = reinterpret_cast<const uint8_t*>(stream.data());
  size_t start = 0, next = 0;
  uint64_t want_lsn = 1;
  for (size_t have = start; have <= stream.size(); have++) {
    trb_wal_frame_t f = {};
    trb_wal_frame_result_t r = trb_wal_frame_decode(b + start, have - start, true, &f);
    if (have < ends[next]) {
      ASSERT_EQ(TRB_WAL_FRAME_SHORT, r) << "at " << have;
      continue;
    }
    ASSERT_EQ(TRB_WAL_FRAME_OK, r) << "at " << have;
    EXPECT_EQ(want_lsn, f.lsn);
    EXPECT_EQ(ends[next] - start, f.frame_bytes);
    EXPECT_TRUE(Payload(want_lsn, f.len) == std::string((const char*)f.payload, f.len));
    start = ends[next++];
    want_lsn++;
    if (next == ends.size()) break;
  }
  EXPECT_EQ(50u, next);
  // Random bytes never decode as a record (deterministic seeds).
  for (uint64_t seed = 0; seed < 20000; seed++) {
    std::string g = Payload(seed + 1000000, 17 + seed % 200);
    if (seed % 2) g[0] = (char)(seed % 150), g[1] = g[2] = g[3] = 0;  // plausible length
    trb_wal_frame_t f = {};
    EXPECT_NE(TRB_WAL_FRAME_OK, trb_wal_frame_decode(reinterpret_cast<const uint8_t*>(g.data()),
                                                     g.size(), true, &f))
        << seed;
  }
}

// ---- WAL -------------------------------------------------------------------

class WalTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }
  void TearDown() override { RemoveTree(dir_); }
  std::string Path(const std::string& name) { return dir_ + "/" + name; }
  std::string dir_;
};

TEST_F(WalTest, RoundTripAcrossReopenManyTypesAndSizes) {
  const size_t sizes[] = {0, 1, 16, 17, 100, 600, 4095, 4096, 65537, 300000, 1 << 20,
                          (3 << 20) + 7};
  std::map<uint64_t, Rec> want;
  {
    Replayed r;
    trb_wal_t* w = Open(Config(dir_, TRB_WAL_SYNC_FSYNC, 1 << 20), &r);
    ASSERT_NE(nullptr, w);
    EXPECT_TRUE(r.recs.empty());
    Done d;
    uint64_t seed = 0;
    for (int round = 0; round < 3; round++) {
      for (size_t sz : sizes) {
        uint8_t type = (uint8_t)(1 + (seed * 37) % 255);
        std::string p = Payload(seed++, sz);
        uint64_t lsn = Append(w, type, p, &d);
        EXPECT_EQ(want.size() + 1, lsn);
        want[lsn] = Rec{type, p};
      }
    }
    // Gather variant: header + rows without concatenating.
    std::string h = "batch-header", r1 = Payload(99, 1000), r2 = Payload(100, 0),
                r3 = Payload(101, 70000);
    struct iovec iov[4] = {{&h[0], h.size()}, {&r1[0], r1.size()}, {&r2[0], 0},
                           {&r3[0], r3.size()}};
    trb_wal_lsn_t lsn = 0;
    trb_status_t st = {};
    ASSERT_EQ(GRPC_STATUS_OK, trb_wal_appendv(w, 255, iov, 4, Done::Cb, &d, &lsn, &st)) << st.msg;
    want[lsn] = Rec{255, h + r1 + r2 + r3};
    ASSERT_TRUE(d.WaitCount(want.size()));
    EXPECT_TRUE(d.AllOk());
    // Invalid arguments are refused and no callback runs for them.
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
              trb_wal_append(w, 0, "x", 1, Done::Cb, &d, &lsn, &st));
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
              trb_wal_appendv(w, 1, iov, -1, Done::Cb, &d, &lsn, &st));
    trb_wal_stats_t s;
    trb_wal_stats(w, &s);
    EXPECT_EQ(want.size(), s.records_appended);
    EXPECT_EQ(want.size(), s.unreleased_records);
    EXPECT_EQ(1u, s.oldest_unreleased);
    EXPECT_GT(s.live_segments, 3u);  // 1 MiB segments rolled
    EXPECT_EQ(s.live_bytes, s.bytes_written);
    trb_wal_close(w);
    EXPECT_EQ(want.size(), d.codes.size());
    // Callbacks ran in lsn order.
    EXPECT_TRUE(std::is_sorted(d.order.begin(), d.order.end()));
  }
  for (int reopen = 0; reopen < 2; reopen++) {
    Replayed r;
    trb_wal_t* w = Open(Config(dir_, TRB_WAL_SYNC_FSYNC, 1 << 20), &r);
    ASSERT_NE(nullptr, w);
    ASSERT_EQ(want.size(), r.recs.size());
    EXPECT_TRUE(std::is_sorted(r.order.begin(), r.order.end()));
    for (auto& kv : want) {
      ASSERT_TRUE(r.recs.count(kv.first)) << kv.first;
      EXPECT_EQ(kv.second.type, r.recs[kv.first].type) << kv.first;
      EXPECT_TRUE(kv.second.payload == r.recs[kv.first].payload) << kv.first;
    }
    // The lsn continues after the last replayed record.
    Done d;
    std::string p = Payload(1000 + reopen, 333);
    uint64_t lsn = Append(w, 42, p, &d);
    EXPECT_EQ(want.rbegin()->first + 1, lsn);
    want[lsn] = Rec{42, p};
    trb_wal_stats_t s;
    trb_wal_stats(w, &s);
    EXPECT_EQ(want.size(), s.unreleased_records);
    trb_wal_close(w);
    EXPECT_EQ(GRPC_STATUS_OK, d.codes[lsn]);
  }
}

// trb_wal_appendv_lent (the last buffers written from the caller's memory)
// against trb_wal_appendv (everything copied): the same records in two
// directories give byte-identical segment files, across segment rolls and
// groups of more buffers than one writev takes; bad arguments are refused.
TEST_F(WalTest, LentBuffersWriteTheSameBytesAsCopiedOnes) {
  std::string lent_dir = dir_ + "_lent";
  trb_wal_config_t c1 = Config(dir_, TRB_WAL_SYNC_NONE, 64 << 10);
  trb_wal_config_t c2 = Config(lent_dir, TRB_WAL_SYNC_NONE, 64 << 10);
  c1.max_group_delay_us = c2.max_group_delay_us = 20000;  // big groups
  trb_wal_t* copied = Open(c1);
  trb_wal_t* lent = Open(c2);
  ASSERT_NE(nullptr, copied);
  ASSERT_NE(nullptr, lent);
  Done d1, d2;
  std::vector<std::string> parts;  // alive until both WALs are closed
  parts.reserve(4000);
  uint64_t x = 7;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  size_t n_records = 600;
  for (size_t i = 0; i < n_records; i++) {
    int iovcnt = 1 + (int)(next() % 5);
    struct iovec iov[5];
    for (int k = 0; k < iovcnt; k++) {
      size_t sz = next() % 4 == 0 ? 0 : next() % (k == iovcnt - 1 ? 9000 : 300);
      parts.push_back(Payload(next(), sz));
      iov[k].iov_base = parts.back().empty() ? nullptr : &parts.back()[0];
      iov[k].iov_len = sz;
    }
    int n_lent = (int)(next() % (uint64_t)(std::min(iovcnt, TRB_WAL_MAX_LENT) + 1));
    uint8_t type = (uint8_t)(1 + next() % 255);
    trb_wal_lsn_t l1 = 0, l2 = 0;
    trb_status_t st = {};
    ASSERT_EQ(GRPC_STATUS_OK, trb_wal_appendv(copied, type, iov, iovcnt, Done::Cb, &d1, &l1, &st))
        << st.msg;
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_wal_appendv_lent(lent, type, iov, iovcnt, n_lent, Done::Cb, &d2, &l2, &st))
        << st.msg;
    ASSERT_EQ(l1, l2);
  }
  ASSERT_TRUE(d1.WaitCount(n_records));
  ASSERT_TRUE(d2.WaitCount(n_records));
  EXPECT_TRUE(d1.AllOk());
  EXPECT_TRUE(d2.AllOk());
  // Refused: more lent buffers than given or than allowed, lent without a
  // callback.
  struct iovec one[5] = {};
  trb_wal_lsn_t lsn = 0;
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_wal_appendv_lent(lent, 1, one, 1, 2, Done::Cb, &d2, &lsn, &st));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_wal_appendv_lent(lent, 1, one, 5, TRB_WAL_MAX_LENT + 1, Done::Cb, &d2, &lsn, &st));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_wal_appendv_lent(lent, 1, one, 1, 1, nullptr, nullptr, &lsn, &st));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_wal_appendv_lent(lent, 1, one, 1, -1, Done::Cb, &d2, &lsn, &st));
  trb_wal_stats_t s;
  trb_wal_stats(lent, &s);
  EXPECT_EQ(n_records, s.records_appended);
  EXPECT_GT(s.live_segments, 3u);
  trb_wal_close(copied);
  trb_wal_close(lent);
  std::vector<std::string> segs = Segments(dir_);
  ASSERT_EQ(segs, Segments(lent_dir));
  for (const std::string& name : segs) {
    std::ifstream a(Path(name), std::ios::binary), b(lent_dir + "/" + name, std::ios::binary);
    std::string ta((std::istreambuf_iterator<char>(a)), std::istreambuf_iterator<char>());
    std::string tb((std::istreambuf_iterator<char>(b)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(ta == tb) << name;
    EXPECT_GT(ta.size(), 0u);
  }
  // And it replays.
  Replayed r;
  trb_wal_t* w = Open(c2, &r);
  ASSERT_NE(nullptr, w);
  EXPECT_EQ(n_records, r.recs.size());
  trb_wal_close(w);
}

TEST_F(WalTest, GroupCommitBatchesConcurrentAppends) {
  trb_wal_t* w = Open(Config(dir_, TRB_WAL_SYNC_FSYNC));
  ASSERT_NE(nullptr, w);
  Done d;
  const int kThreads = 4, kPer = 400;
  std::vector<std::thread> ts;
  std::mutex mu;
  std::map<uint64_t, std::string> want;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kPer; i++) {
        std::string p = Payload((uint64_t)t * 100000 + i, 600);
        uint64_t lsn = Append(w, (uint8_t)(t + 1), p, &d);
        std::lock_guard<std::mutex> g(mu);
        EXPECT_TRUE(want.emplace(lsn, p).second) << "duplicate lsn " << lsn;
      }
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_TRUE(d.WaitCount(kThreads * kPer));
  EXPECT_TRUE(d.AllOk());
  trb_wal_stats_t s;
  trb_wal_stats(w, &s);
  EXPECT_EQ((uint64_t)kThreads * kPer, s.records_appended);
  EXPECT_LT(s.groups_committed, s.records_appended / 4)
      << "group commit should put many appends in one fdatasync";
  EXPECT_GE(s.groups_committed, 1u);
  trb_wal_close(w);
  {
    auto l = d.cond.Lock();
    EXPECT_TRUE(std::is_sorted(d.order.begin(), d.order.end()));
  }
  // lsns are exactly 1..N and all replay byte-identical.
  Replayed r;
  w = Open(Config(dir_), &r);
  ASSERT_NE(nullptr, w);
  ASSERT_EQ(want.size(), r.recs.size());
  EXPECT_EQ(1u, want.begin()->first);
  EXPECT_EQ(want.size(), want.rbegin()->first);
  for (auto& kv : want) EXPECT_TRUE(kv.second == r.recs[kv.first].payload) << kv.first;
  trb_wal_close(w);
}

TEST_F(WalTest, GroupDelayGrowsGroups) {
  trb_wal_config_t c = Config(dir_, TRB_WAL_SYNC_NONE);
  c.max_group_delay_us = 500000;  // 500 ms: the 50 appends below land in one or two groups
  trb_wal_t* w = Open(c);
  ASSERT_NE(nullptr, w);
  Done d;
  for (int i = 0; i < 50; i++) Append(w, 1, Payload(i, 10), &d);
  ASSERT_TRUE(d.WaitCount(50));
  trb_wal_stats_t s;
  trb_wal_stats(w, &s);
  EXPECT_LE(s.groups_committed, 2u);
  trb_wal_close(w);
}

TEST_F(WalTest, ReleaseDeletesOnlyFullyReleasedPrefixSegments) {
  // 1000-byte payloads frame to 1017 bytes: four per 4096-byte segment, so
  // lsns 1-4, 5-8, 9-12, 13-16, 17-20 are five segments.
  trb_wal_config_t c = Config(dir_, TRB_WAL_SYNC_FSYNC, 4096);
  trb_wal_t* w = Open(c);
  ASSERT_NE(nullptr, w);
  Done d;
  std::map<uint64_t, std::string> want;
  for (int i = 1; i <= 20; i++) {
    std::string p = Payload(i, 1000);
    EXPECT_EQ((uint64_t)i, Append(w, 7, p, &d));
    want[i] = p;
  }
  ASSERT_TRUE(d.WaitCount(20));
  EXPECT_EQ((std::vector<std::string>{SegName(1), SegName(5), SegName(9), SegName(13),
                                      SegName(17)}),
            Segments(dir_));
  for (uint64_t l = 1; l <= 8; l++) trb_wal_release(w, l);    // segments 1 and 5
  for (uint64_t l = 9; l <= 11; l++) trb_wal_release(w, l);   // 9: all but 12
  for (uint64_t l = 13; l <= 16; l++) trb_wal_release(w, l);  // 13: not a prefix
  trb_wal_release(w, 3);     // twice: ignored
  trb_wal_release(w, 9999);  // unknown: ignored
  trb_wal_release(w, 0);
  trb_wal_stats_t s;
  trb_wal_stats(w, &s);
  EXPECT_EQ(3u, s.live_segments);
  EXPECT_EQ(3u * 4 * 1017, s.live_bytes);
  EXPECT_EQ(20u - 15, s.unreleased_records);
  EXPECT_EQ(12u, s.oldest_unreleased);
  trb_wal_close(w);  // the writer has deleted the compacted files when close returns
  EXPECT_EQ((std::vector<std::string>{SegName(9), SegName(13), SegName(17)}), Segments(dir_));

  Replayed r;
  w = Open(c, &r);
  ASSERT_NE(nullptr, w);
  std::vector<uint64_t> expect_lsns;
  for (uint64_t l = 9; l <= 20; l++) expect_lsns.push_back(l);
  EXPECT_EQ(expect_lsns, r.order);
  for (auto l : r.order) EXPECT_TRUE(want[l] == r.recs[l].payload) << l;
  // Replayed records are live until released; release 9..20: 9 and 13 go,
  // the current segment (17) stays even though it is fully released.
  for (uint64_t l = 9; l <= 20; l++) trb_wal_release(w, l);
  trb_wal_stats(w, &s);
  EXPECT_EQ(1u, s.live_segments);
  EXPECT_EQ(0u, s.unreleased_records);
  EXPECT_EQ(0u, s.oldest_unreleased);
  trb_wal_close(w);
  EXPECT_EQ((std::vector<std::string>{SegName(17)}), Segments(dir_));
  Replayed r2;
  w = Open(c, &r2);
  ASSERT_NE(nullptr, w);
  EXPECT_EQ((std::vector<uint64_t>{17, 18, 19, 20}), r2.order);
  // Appending continues: lsn 21 rolls to a new segment (17 is full), and
  // 17 goes once released again.
  Done d2;
  EXPECT_EQ(21u, Append(w, 1, Payload(21, 1000), &d2));
  for (uint64_t l = 17; l <= 20; l++) trb_wal_release(w, l);
  ASSERT_TRUE(d2.WaitCount(1));
  trb_wal_close(w);
  EXPECT_EQ((std::vector<std::string>{SegName(21)}), Segments(dir_));
}

TEST_F(WalTest, BudgetRefusesAppendsUntilReleased) {
  // Budget 40000 bytes; segments are capped at a quarter of it (10000).
  trb_wal_config_t c = Config(dir_, TRB_WAL_SYNC_NONE, 0, 40000);
  trb_wal_t* w = Open(c);
  ASSERT_NE(nullptr, w);
  Done d;
  std::vector<uint64_t> lsns;
  trb_status_t st = {};
  grpc_status_code code = GRPC_STATUS_OK;
  std::string p = Payload(1, 1000);
  while (lsns.size() < 100) {
    trb_wal_lsn_t lsn = 0;
    code = trb_wal_append(w, 3, p.data(), p.size(), Done::Cb, &d, &lsn, &st);
    if (code != GRPC_STATUS_OK) break;
    lsns.push_back(lsn);
  }
  ASSERT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED, code) << st.msg;
  EXPECT_EQ(40000u / 1017, lsns.size());
  EXPECT_NE(nullptr, strstr(st.msg, "WAL full: 39663 bytes live of 40000")) << st.msg;
  ASSERT_TRUE(d.WaitCount(lsns.size()));
  trb_wal_stats_t s;
  trb_wal_stats(w, &s);
  EXPECT_EQ(lsns.size(), s.records_appended);  // the refused append wrote nothing
  EXPECT_EQ(39663u, s.bytes_written);
  // Releasing the oldest segment (9 records) makes room for 9 more.
  for (int i = 0; i < 9; i++) trb_wal_release(w, lsns[i]);
  for (int i = 0; i < 9; i++) {
    trb_wal_lsn_t lsn = 0;
    ASSERT_EQ(GRPC_STATUS_OK, trb_wal_append(w, 3, p.data(), p.size(), Done::Cb, &d, &lsn, &st))
        << i << " " << st.msg;
    lsns.push_back(lsn);
  }
  EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED,
            trb_wal_append(w, 3, p.data(), p.size(), Done::Cb, &d, nullptr, &st));
  // Release everything: the current segment alone is rolled when it stands
  // in the way, so appends succeed again indefinitely.
  for (auto l : lsns) trb_wal_release(w, l);
  for (int i = 0; i < 200; i++) {
    trb_wal_lsn_t lsn = 0;
    ASSERT_EQ(GRPC_STATUS_OK, trb_wal_append(w, 3, p.data(), p.size(), Done::Cb, &d, &lsn, &st))
        << i << " " << st.msg;
    trb_wal_release(w, lsn);
  }
  trb_wal_stats(w, &s);
  EXPECT_LE(s.live_bytes, 40000u);
  trb_wal_close(w);
  EXPECT_TRUE(d.AllOk());
  EXPECT_LE(Segments(dir_).size(), 4u);
}

TEST_F(WalTest, RecordsReleasedBeforeTheyAreDurableAreCompactedSafely) {
  // Each record is released right after its append, usually before the
  // writer has written it: segments die while the writer is still writing
  // them, and their files go only once the writer has moved past them.
  trb_wal_config_t c = Config(dir_, TRB_WAL_SYNC_FSYNC, 4096);
  trb_wal_t* w = Open(c);
  ASSERT_NE(nullptr, w);
  Done d;
  for (int i = 1; i <= 40; i++) trb_wal_release(w, Append(w, 2, Payload(i, 1000), &d));
  trb_wal_stats_t s;
  trb_wal_stats(w, &s);
  EXPECT_EQ(1u, s.live_segments);
  EXPECT_EQ(0u, s.unreleased_records);
  ASSERT_TRUE(d.WaitCount(40));
  EXPECT_TRUE(d.AllOk());
  trb_wal_close(w);
  EXPECT_EQ((std::vector<std::string>{SegName(37)}), Segments(dir_));
  Replayed r;
  w = Open(c, &r);
  ASSERT_NE(nullptr, w);
  EXPECT_EQ((std::vector<uint64_t>{37, 38, 39, 40}), r.order);
  for (uint64_t l = 37; l <= 40; l++) EXPECT_TRUE(Payload(l, 1000) == r.recs[l].payload) << l;
  trb_wal_close(w);
}

TEST_F(WalTest, RecordLargerThanTheBudgetIsRefused) {
  trb_wal_t* w = Open(Config(dir_, TRB_WAL_SYNC_NONE, 0, 10000));
  ASSERT_NE(nullptr, w);
  Done d;
  std::string big = Payload(1, 10000);  // 10017 bytes framed
  trb_status_t st = {};
  trb_wal_lsn_t lsn = 0;
  EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED,
            trb_wal_append(w, 1, big.data(), big.size(), Done::Cb, &d, &lsn, &st));
  EXPECT_NE(nullptr, strstr(st.msg, "WAL full: 0 bytes live of 10000")) << st.msg;
  // Exactly the budget fits.
  std::string fits = Payload(2, 10000 - TRB_WAL_FRAME_HEADER_BYTES);
  EXPECT_EQ(1u, Append(w, 1, fits, &d));
  trb_wal_close(w);
  EXPECT_EQ(1u, d.codes.size());
}

// Fails the n-th trb_malloc/calloc/realloc from now on (1-based), once.
struct FailNth {
  std::atomic<long> left{0};
  static int Hook(size_t, void* user) {
    auto* f = static_cast<FailNth*>(user);
    return f->left.fetch_sub(1) == 1 ? 1 : 0;
  }
};

TEST_F(WalTest, AllocationFailuresAtOpenAndAppendAreCleanErrors) {
  // Some state on disk first: two segments (lsns 1-4 and 5-6).
  trb_wal_config_t c = Config(dir_, TRB_WAL_SYNC_NONE, 4096);
  {
    trb_wal_t* w = Open(c);
    ASSERT_NE(nullptr, w);
    Done d;
    for (int i = 1; i <= 6; i++) Append(w, 1, Payload(i, 1000), &d);
    trb_wal_close(w);
  }
  FailNth f;
  trb_alloc_set_fail_hook(FailNth::Hook, &f);
  int failed = 0;
  for (long n = 1; n <= 40; n++) {
    f.left = n;
    Replayed r;
    trb_wal_t* w = nullptr;
    trb_status_t st = {};
    grpc_status_code code = trb_wal_open(&c, Replayed::Cb, &r, &w, &st);
    f.left = 0;
    if (code != GRPC_STATUS_OK) {
      EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED, code) << n << " " << st.msg;
      EXPECT_EQ(nullptr, w);
      failed++;
      continue;
    }
    EXPECT_EQ(6u, r.recs.size()) << n;
    // An append whose allocation fails is refused and calls back never.
    Done d;
    trb_wal_lsn_t lsn = 0;
    f.left = 1;
    EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED,
              trb_wal_append(w, 1, "x", 1, Done::Cb, &d, &lsn, &st));
    f.left = 0;
    EXPECT_EQ(7u, Append(w, 1, "y", &d));
    trb_wal_release(w, 7);
    ASSERT_TRUE(d.WaitCount(1));
    trb_wal_close(w);
    EXPECT_EQ(1u, d.codes.size());
    // Put the log back as it was (lsn 7 went into segment 5).
    ASSERT_EQ(0, truncate(Path(SegName(5)).c_str(), 2 * 1017));
  }
  trb_alloc_set_fail_hook(nullptr, nullptr);
  EXPECT_GT(failed, 3) << "the open path allocates and its failures were exercised";
}

TEST_F(WalTest, TornTailOfLastSegmentIsTruncatedWithWarning) {
  trb_wal_config_t c = Config(dir_, TRB_WAL_SYNC_FSYNC);
  std::map<uint64_t, std::string> want;
  std::vector<off_t> ends;  // file offset after each record
  trb_wal_t* w = Open(c);
  ASSERT_NE(nullptr, w);
  Done d;
  off_t end = 0;
  for (int i = 1; i <= 10; i++) {
    std::string p = Payload(i, (size_t)(i * 97));
    Append(w, 5, p, &d);
    want[i] = p;
    end += TRB_WAL_FRAME_HEADER_BYTES + p.size();
    ends.push_back(end);
  }
  ASSERT_TRUE(d.WaitCount(10));
  trb_wal_close(w);
  std::string seg = Path(SegName(1));
  ASSERT_EQ(end, FileSize(seg));

  // 1. Cut inside the last record's payload.
  ASSERT_EQ(0, truncate(seg.c_str(), end - 5));
  {
    LogCapture log;
    Replayed r;
    w = Open(c, &r);
    ASSERT_NE(nullptr, w);
    ASSERT_EQ(9u, r.recs.size());
    for (uint64_t l = 1; l <= 9; l++) EXPECT_TRUE(want[l] == r.recs[l].payload) << l;
    std::string text = log.Text();
    EXPECT_NE(std::string::npos, text.find(seg)) << text;
    EXPECT_NE(std::string::npos, text.find("offset " + std::to_string(ends[8]))) << text;
    EXPECT_EQ(ends[8], FileSize(seg));
    // lsn 10 never became durable as far as the log knows: it is given again.
    Done d2;
    std::string p = Payload(110, 50);
    EXPECT_EQ(10u, Append(w, 6, p, &d2));
    want[10] = p;
    trb_wal_close(w);
  }
  end = ends[8] + (off_t)(TRB_WAL_FRAME_HEADER_BYTES + 50);
  ASSERT_EQ(end, FileSize(seg));

  // 2. Cut inside a header (3 bytes of the next record's header).
  {
    int fd = open(seg.c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(3, write(fd, "\x10\x00\x00", 3));
    close(fd);
  }
  // 3. Then garbage after it (random bytes, as after a crash that extended
  //    the file but not its data).
  {
    std::string g = Payload(555, 4000);
    std::ofstream(seg, std::ios::app | std::ios::binary) << g;
  }
  {
    LogCapture log;
    Replayed r;
    w = Open(c, &r);
    ASSERT_NE(nullptr, w);
    ASSERT_EQ(10u, r.recs.size());
    for (uint64_t l = 1; l <= 10; l++) EXPECT_TRUE(want[l] == r.recs[l].payload) << l;
    EXPECT_EQ(6, r.recs[10].type);
    EXPECT_NE(std::string::npos, log.Text().find("offset " + std::to_string(end)))
        << log.Text();
    trb_wal_close(w);
  }
  EXPECT_EQ(end, FileSize(seg));
  // A clean log opens without a warning.
  {
    LogCapture log;
    Replayed r;
    w = Open(c, &r);
    ASSERT_NE(nullptr, w);
    EXPECT_EQ(10u, r.recs.size());
    trb_wal_close(w);
    EXPECT_EQ("", log.Text());
  }
}

TEST_F(WalTest, TornFirstRecordOfNewLastSegmentLeavesItEmpty) {
  trb_wal_config_t c = Config(dir_, TRB_WAL_SYNC_NONE, 4096);
  trb_wal_t* w = Open(c);
  ASSERT_NE(nullptr, w);
  Done d;
  for (int i = 1; i <= 5; i++) Append(w, 1, Payload(i, 1000), &d);  // 1-4, then 5
  ASSERT_TRUE(d.WaitCount(5));
  trb_wal_close(w);
  ASSERT_EQ(0, truncate(Path(SegName(5)).c_str(), 100));
  Replayed r;
  w = Open(c, &r);
  ASSERT_NE(nullptr, w);
  EXPECT_EQ((std::vector<uint64_t>{1, 2, 3, 4}), r.order);
  EXPECT_EQ(0, FileSize(Path(SegName(5))));
  Done d2;
  EXPECT_EQ(5u, Append(w, 1, Payload(5, 1000), &d2));
  trb_wal_close(w);
  Replayed r2;
  w = Open(c, &r2);
  ASSERT_NE(nullptr, w);
  EXPECT_EQ((std::vector<uint64_t>{1, 2, 3, 4, 5}), r2.order);
  trb_wal_close(w);
}

TEST_F(WalTest, CorruptionOutsideTheTailIsDataLoss) {
  trb_wal_config_t c = Config(dir_, TRB_WAL_SYNC_NONE, 4096);
  trb_wal_t* w = Open(c);
  ASSERT_NE(nullptr, w);
  Done d;
  for (int i = 1; i <= 12; i++) Append(w, 1, Payload(i, 1000), &d);  // segments 1, 5, 9
  ASSERT_TRUE(d.WaitCount(12));
  trb_wal_close(w);
  std::string seg1 = Path(SegName(1));
  std::string orig;
  {
    std::ifstream f(seg1, std::ios::binary);
    orig.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  auto write_file = [&](const std::string& data) {
    std::ofstream(seg1, std::ios::binary | std::ios::trunc) << data;
  };
  struct Case {
    size_t byte;
    const char* what;
  };
  // A payload byte of record 2 (offset 1017), a length byte of record 3
  // (offset 2034), the lsn of record 4 (offset 3051).
  const Case cases[] = {{1017 + 17 + 500, "corrupt"}, {2034 + 1, "offset 2034"},
                        {3051 + 12, "offset 3051"}};
  for (const Case& cs : cases) {
    std::string bad = orig;
    bad[cs.byte] ^= 0x40;
    write_file(bad);
    Replayed r;
    trb_wal_t* w2 = nullptr;
    trb_status_t st = {};
    EXPECT_EQ(GRPC_STATUS_DATA_LOSS, trb_wal_open(&c, Replayed::Cb, &r, &w2, &st)) << cs.byte;
    EXPECT_EQ(nullptr, w2);
    EXPECT_NE(nullptr, strstr(st.msg, SegName(1).c_str())) << st.msg;
    EXPECT_NE(nullptr, strstr(st.msg, cs.what)) << st.msg;
    EXPECT_TRUE(r.recs.empty()) << "no record is replayed from a log that fails to open";
  }
  {
    std::string bad = orig;
    bad[1017 + 17 + 500] ^= 0x40;
    write_file(bad);
    trb_wal_t* w2 = nullptr;
    trb_status_t st = {};
    ASSERT_EQ(GRPC_STATUS_DATA_LOSS, trb_wal_open(&c, nullptr, nullptr, &w2, &st));
    EXPECT_NE(nullptr, strstr(st.msg, "offset 1017")) << st.msg;
  }
  // The middle segment is missing: a gap in the lsns.
  write_file(orig);
  std::string seg5 = Path(SegName(5)), moved = Path("moved");
  ASSERT_EQ(0, rename(seg5.c_str(), moved.c_str()));
  {
    trb_wal_t* w2 = nullptr;
    trb_status_t st = {};
    ASSERT_EQ(GRPC_STATUS_DATA_LOSS, trb_wal_open(&c, nullptr, nullptr, &w2, &st));
    EXPECT_NE(nullptr, strstr(st.msg, SegName(9).c_str())) << st.msg;
  }
  // Restored, everything opens again.
  ASSERT_EQ(0, rename(moved.c_str(), seg5.c_str()));
  Replayed r;
  w = Open(c, &r);
  ASSERT_NE(nullptr, w);
  EXPECT_EQ(12u, r.recs.size());
  trb_wal_close(w);
}

TEST_F(WalTest, SecondOpenerGetsFailedPreconditionNamingTheHolder) {
  trb_wal_config_t c = Config(dir_);
  trb_wal_t* w = Open(c);
  ASSERT_NE(nullptr, w);
  trb_wal_t* w2 = nullptr;
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_FAILED_PRECONDITION, trb_wal_open(&c, nullptr, nullptr, &w2, &st));
  EXPECT_EQ(nullptr, w2);
  std::string want = "pid " + std::to_string(getpid());
  EXPECT_NE(nullptr, strstr(st.msg, want.c_str())) << st.msg;
  trb_wal_close(w);
  w2 = Open(c);
  ASSERT_NE(nullptr, w2);
  trb_wal_close(w2);
}

TEST_F(WalTest, AppendAfterWriteErrorFailsAndBreaksTheLog) {
  // A write error: RLIMIT_FSIZE makes write(2) fail with EFBIG past 100000
  // bytes. The limit is process-wide, so the log runs in a child process.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    trb_wal_t* w = nullptr;
    trb_status_t st = {};
    trb_wal_config_t c = Config(dir_);
    if (trb_wal_open(&c, nullptr, nullptr, &w, &st) != GRPC_STATUS_OK) _exit(10);
    struct rlimit rl = {100000, 100000};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(11);
    Done d;
    std::string p = Payload(1, 60000);
    trb_wal_lsn_t l1 = 0, l2 = 0, l3 = 0;
    if (trb_wal_append(w, 1, p.data(), p.size(), Done::Cb, &d, &l1, &st) != 0) _exit(12);
    if (!d.WaitCount(1) || d.codes[l1] != GRPC_STATUS_OK) _exit(13);
    if (trb_wal_health(w, &st) != GRPC_STATUS_OK) _exit(21);
    if (trb_wal_append(w, 1, p.data(), p.size(), Done::Cb, &d, &l2, &st) != 0) _exit(14);
    if (!d.WaitCount(2) || d.codes[l2] != GRPC_STATUS_INTERNAL) _exit(15);
    if (d.last_message.find("File too large") == std::string::npos) _exit(16);
    if (trb_wal_append(w, 1, p.data(), p.size(), Done::Cb, &d, &l3, &st) !=
        GRPC_STATUS_FAILED_PRECONDITION)
      _exit(17);
    if (strstr(st.msg, "broken") == nullptr) _exit(18);
    if (trb_wal_health(w, &st) != GRPC_STATUS_INTERNAL) _exit(19);
    if (strstr(st.msg, "File too large") == nullptr) _exit(20);
    trb_wal_close(w);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(0, WEXITSTATUS(status));
  // The torn second record is dropped at the next open; the first survives.
  Replayed r;
  trb_wal_t* w = Open(Config(dir_), &r);
  ASSERT_NE(nullptr, w);
  EXPECT_EQ((std::vector<uint64_t>{1}), r.order);
  trb_wal_close(w);
}

// ---- kill -9 -----------------------------------------------------------------

size_t Kill9Size(uint64_t seed) { return seed % 11 == 0 ? 30000 : 600 + seed % 300; }

// A report from the kill -9 child: 24 bytes (atomic on a pipe).
struct Kill9Report {
  uint64_t lsn;
  uint64_t seed;
  uint64_t released;  // 0: lsn is durable; 1: the child is about to release it
};

struct Kill9Options {
  trb_wal_sync_t sync = TRB_WAL_SYNC_NONE;
  size_t kill_after = 0;     // durable records before the SIGKILL
  size_t segment_bytes = 0;  // 0 = default (64 MiB: no roll)
  size_t keep = 0;           // release all but the newest `keep` durable records; 0 = none
};

// Child: two threads append forever; each done callback reports the record
// durable, and (with keep) reports then releases the durable record `keep`
// places older, so segments roll and are compacted while the child dies.
[[noreturn]] void Kill9Child(const std::string& dir, const Kill9Options& o, int fd) {
  trb_wal_config_t c = Config(dir, o.sync, o.segment_bytes);
  trb_wal_t* w = nullptr;
  trb_status_t st = {};
  if (trb_wal_open(&c, nullptr, nullptr, &w, &st) != GRPC_STATUS_OK) _exit(3);
  struct Ctx {
    trb_wal_t* w;
    int fd;
    size_t keep;
    std::mutex mu;
    std::condition_variable cv;
    int inflight = 0;
    std::vector<uint64_t> durable;  // writer thread only
    size_t released = 0;            // writer thread only
  } ctx;
  ctx.w = w;
  ctx.fd = fd;
  ctx.keep = o.keep;
  std::atomic<uint64_t> next_seed{1};
  auto cb = [](void* user, trb_wal_lsn_t lsn, grpc_status_code code, const char*) {
    auto* x = static_cast<std::pair<Ctx*, uint64_t>*>(user);
    Ctx* cx = x->first;
    if (code != GRPC_STATUS_OK) _exit(7);
    Kill9Report rep = {lsn, x->second, 0};
    if (write(cx->fd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep)) _exit(4);
    if (cx->keep) {
      cx->durable.push_back(lsn);
      while (cx->durable.size() - cx->released > cx->keep) {
        Kill9Report rel = {cx->durable[cx->released++], 0, 1};
        if (write(cx->fd, &rel, sizeof(rel)) != (ssize_t)sizeof(rel)) _exit(4);
        trb_wal_release(cx->w, rel.lsn);
      }
    }
    delete x;
    std::lock_guard<std::mutex> g(cx->mu);
    cx->inflight--;
    cx->cv.notify_all();
  };
  auto run = [&] {
    for (;;) {
      {
        std::unique_lock<std::mutex> l(ctx.mu);
        ctx.cv.wait(l, [&] { return ctx.inflight < 2000; });
        ctx.inflight++;
      }
      uint64_t seed = next_seed++;
      std::string p = Payload(seed, Kill9Size(seed));
      auto* u = new std::pair<Ctx*, uint64_t>(&ctx, seed);
      trb_status_t st2 = {};
      if (trb_wal_append(w, (uint8_t)(1 + seed % 255), p.data(), p.size(), cb, u, nullptr,
                         &st2) != GRPC_STATUS_OK)
        _exit(5);
    }
  };
  std::thread t1(run), t2(run);
  t1.join();  // never returns: SIGKILL ends the process
  _exit(6);
}

void RunKill9(const std::string& dir, const Kill9Options& o) {
  int p[2];
  ASSERT_EQ(0, pipe(p));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(p[0]);
    Kill9Child(dir, o, p[1]);
  }
  close(p[1]);
  std::map<uint64_t, uint64_t> durable;  // lsn → seed
  std::set<uint64_t> released;
  std::string buf;
  auto read_some = [&](int timeout_ms) {
    struct pollfd pf = {p[0], POLLIN, 0};
    if (poll(&pf, 1, timeout_ms) <= 0) return false;
    char chunk[4096];
    ssize_t n = read(p[0], chunk, sizeof(chunk));
    if (n <= 0) return false;
    buf.append(chunk, (size_t)n);
    while (buf.size() >= sizeof(Kill9Report)) {
      Kill9Report rep;
      memcpy(&rep, buf.data(), sizeof(rep));
      buf.erase(0, sizeof(rep));
      if (rep.released) {
        EXPECT_TRUE(durable.count(rep.lsn)) << "released before durable " << rep.lsn;
        released.insert(rep.lsn);
      } else {
        EXPECT_TRUE(durable.emplace(rep.lsn, rep.seed).second) << "reported twice " << rep.lsn;
      }
    }
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (durable.size() < o.kill_after && std::chrono::steady_clock::now() < deadline)
    if (!read_some(1000)) break;
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << status;
  while (read_some(0)) {
  }
  close(p[0]);
  ASSERT_GE(durable.size(), o.kill_after);

  Replayed r;
  trb_wal_t* w = Open(Config(dir, o.sync, o.segment_bytes), &r);
  ASSERT_NE(nullptr, w);
  ASSERT_FALSE(r.order.empty());
  // Replay is gapless, and every lsn reported durable and not released is
  // there, byte-identical; so is every durable one that survived compaction.
  for (size_t i = 0; i < r.order.size(); i++) ASSERT_EQ(r.order[0] + i, r.order[i]);
  size_t missing = 0, differ = 0;
  for (auto& kv : durable) {
    auto it = r.recs.find(kv.first);
    if (it == r.recs.end()) {
      if (!released.count(kv.first)) missing++;
      continue;
    }
    if (it->second.payload != Payload(kv.second, Kill9Size(kv.second)) ||
        it->second.type != (uint8_t)(1 + kv.second % 255))
      differ++;
  }
  EXPECT_EQ(0u, missing);
  EXPECT_EQ(0u, differ);
  if (o.keep) {
    EXPECT_GT(r.order[0], 1u) << "released prefix segments were compacted away";
    EXPECT_GT(Segments(dir).size(), 1u);
  } else {
    EXPECT_EQ(1u, r.order[0]);
  }
  trb_wal_close(w);
}

TEST_F(WalTest, Kill9WhileAppendingKeepsEveryDurableRecord) {
  Kill9Options o;
  o.sync = TRB_WAL_SYNC_NONE;
  o.kill_after = 20000;
  RunKill9(dir_, o);
  RemoveTree(dir_);
  dir_ = MakeTempDir();
  o.sync = TRB_WAL_SYNC_FSYNC;
  o.kill_after = 3000;
  RunKill9(dir_, o);
}

TEST_F(WalTest, Kill9DuringSegmentRollsAndCompaction) {
  // 64 KiB segments and releases as records become durable: the child dies
  // while segments are being created and deleted.
  Kill9Options o;
  o.segment_bytes = 64 * 1024;
  o.keep = 300;
  for (int round = 0; round < 3; round++) {
    o.sync = round == 1 ? TRB_WAL_SYNC_FSYNC : TRB_WAL_SYNC_NONE;
    o.kill_after = round == 1 ? 3000 : 10000 + 5000 * (size_t)round;
    RunKill9(dir_, o);
    RemoveTree(dir_);
    dir_ = MakeTempDir();
  }
}

}  // namespace
