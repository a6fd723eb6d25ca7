// The worker's object pool (src/streamer/pool.h): reuse, the cap on free
// objects, and one taker with concurrent givers (each object live in at
// most one place at a time; under ASan a free object is poisoned, so a
// write to one handed out twice or used after give reports).
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

extern "C" {
#include "src/streamer/pool.h"
}

namespace {

struct Obj {
  void *link_space;  // the pool's link while free
  uint64_t owner;    // who holds it now (0 = nobody)
  char payload[48];
};

TEST(Pool, ReusesGivenObjectsUpToTheCap) {
  trb_pool_t p;
  trb_pool_init(&p, sizeof(Obj), 4);
  std::vector<void *> got;
  for (int i = 0; i < 6; i++) {
    void *o = trb_pool_take(&p);
    ASSERT_NE(o, nullptr);
    memset(o, 0xab, sizeof(Obj));  // the whole object is writable
    got.push_back(o);
  }
  EXPECT_EQ(trb_pool_free_count(&p), 0u);
  for (void *o : got) trb_pool_give(&p, o);
  trb_pool_give(&p, nullptr);  // no-op
  EXPECT_EQ(trb_pool_free_count(&p), 4u);  // two were freed: over the cap
  // The next four takes are four of the objects given back (last first).
  std::set<void *> before(got.begin(), got.end());
  std::set<void *> again;
  for (int i = 0; i < 4; i++) {
    void *o = trb_pool_take(&p);
    ASSERT_TRUE(before.count(o)) << i;
    again.insert(o);
  }
  EXPECT_EQ(again.size(), 4u);
  EXPECT_EQ(trb_pool_free_count(&p), 0u);
  for (void *o : again) trb_pool_give(&p, o);
  trb_pool_deinit(&p);
  EXPECT_EQ(trb_pool_free_count(&p), 0u);
}

// The owner takes objects and hands them to giver threads, which check
// that nobody else holds them and give them back, while the owner keeps
// taking (the give-back stack is pushed concurrently with the owner's
// exchange).
TEST(Pool, OneTakerManyGivers) {
  trb_pool_t p;
  trb_pool_init(&p, sizeof(Obj), 64);
  const int kGivers = 4, kPerGiver = 20000;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Obj *> q[kGivers];
  bool done = false;
  std::atomic<int> bad{0};
  std::vector<std::thread> th;
  for (int g = 0; g < kGivers; g++) {
    th.emplace_back([&, g] {
      for (;;) {
        Obj *o;
        {
          std::unique_lock<std::mutex> l(mu);
          cv.wait(l, [&] { return !q[g].empty() || done; });
          if (q[g].empty()) return;
          o = q[g].front();
          q[g].pop_front();
        }
        if (o->owner != static_cast<uint64_t>(g + 1)) bad++;
        o->owner = 0;
        trb_pool_give(&p, o);
      }
    });
  }
  for (int i = 0; i < kGivers * kPerGiver; i++) {
    Obj *o = static_cast<Obj *>(trb_pool_take(&p));
    ASSERT_NE(o, nullptr);
    int g = i % kGivers;
    o->owner = static_cast<uint64_t>(g + 1);
    memset(o->payload, i & 0xff, sizeof o->payload);
    {
      std::lock_guard<std::mutex> l(mu);
      q[g].push_back(o);
    }
    cv.notify_all();
  }
  {
    std::lock_guard<std::mutex> l(mu);
    done = true;
  }
  cv.notify_all();
  for (auto &t : th) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LE(trb_pool_free_count(&p), 64u);
  trb_pool_deinit(&p);  // LeakSanitizer: every object freed once
}

}  // namespace
