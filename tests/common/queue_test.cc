// Tests for src/common/queue.h: FIFO order, many producers, blocking with
// deadlines, close semantics and the coalescing wakeup fd. Every wait in
// these tests is a condition wait or poll(2) with a deadline; nothing sleeps.
#include "src/common/queue.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "src/common/alloc.h"
#include "src/common/clock.h"

namespace {

void *Item(uintptr_t v) { return reinterpret_cast<void *>(v); }
uintptr_t Val(void *p) { return reinterpret_cast<uintptr_t>(p); }
int64_t In(int64_t ms) { return trb_clock_mono_ms() + ms; }

// A one-shot event to wait for with a deadline.
class Event {
 public:
  void Set() {
    std::lock_guard<std::mutex> lock(mu_);
    set_ = true;
    cv_.notify_all();
  }
  bool WaitFor(int ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

bool Readable(int fd, int timeout_ms = 0) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

class QueueTest : public ::testing::Test {
 protected:
  void Make(size_t cap) { ASSERT_EQ(0, trb_queue_create(cap, &q_)); }
  void TearDown() override {
    trb_alloc_set_fail_hook(nullptr, nullptr);
    trb_queue_destroy(q_);
  }
  trb_queue_t *q_ = nullptr;
};

int fail_all(size_t, void *) { return 1; }

TEST_F(QueueTest, CreateRejectsZeroCapacityAndReportsAllocationFailure) {
  trb_queue_t *q = reinterpret_cast<trb_queue_t *>(Item(1));  // must be reset to NULL
  EXPECT_EQ(-EINVAL, trb_queue_create(0, &q));
  EXPECT_EQ(nullptr, q);
  EXPECT_EQ(-EINVAL, trb_queue_create(SIZE_MAX, &q));
  trb_alloc_set_fail_hook(fail_all, nullptr);
  EXPECT_EQ(-ENOMEM, trb_queue_create(4, &q));
  EXPECT_EQ(nullptr, q);
  trb_alloc_set_fail_hook(nullptr, nullptr);
  trb_queue_destroy(nullptr);
}

// The second allocation (the ring) failing must free the first.
int fail_second(size_t, void *user) { return ++*static_cast<int *>(user) == 2; }

TEST_F(QueueTest, PartialCreateIsCleanedUp) {
  int calls = 0;
  trb_queue_t *q = nullptr;
  trb_alloc_set_fail_hook(fail_second, &calls);
  EXPECT_EQ(-ENOMEM, trb_queue_create(4, &q));
  EXPECT_EQ(nullptr, q);
  EXPECT_EQ(2, calls);
}

TEST_F(QueueTest, FifoWithTryPushAndTryPop) {
  Make(4);
  EXPECT_EQ(4u, trb_queue_capacity(q_));
  for (uintptr_t i = 1; i <= 4; i++) ASSERT_EQ(0, trb_queue_try_push(q_, Item(i)));
  EXPECT_EQ(-EAGAIN, trb_queue_try_push(q_, Item(5)));
  EXPECT_EQ(4u, trb_queue_size(q_));
  void *out = nullptr;
  for (uintptr_t i = 1; i <= 4; i++) {
    ASSERT_EQ(0, trb_queue_try_pop(q_, &out));
    EXPECT_EQ(i, Val(out));
  }
  EXPECT_EQ(-EAGAIN, trb_queue_try_pop(q_, &out));
  // Wrap around the ring a few times; NULL items are allowed.
  for (uintptr_t i = 0; i < 10; i++) {
    ASSERT_EQ(0, trb_queue_push(q_, Item(i), -1));
    ASSERT_EQ(0, trb_queue_pop(q_, &out, -1));
    EXPECT_EQ(i, Val(out));
  }
}

TEST_F(QueueTest, PopManyDrainsInOrderUpToMax) {
  Make(8);
  for (uintptr_t i = 0; i < 7; i++) ASSERT_EQ(0, trb_queue_push(q_, Item(i), -1));
  void *items[5];
  ASSERT_EQ(5, trb_queue_pop_many(q_, items, 5, -1));
  for (uintptr_t i = 0; i < 5; i++) EXPECT_EQ(i, Val(items[i]));
  ASSERT_EQ(2, trb_queue_pop_many(q_, items, 5, 0));
  EXPECT_EQ(5u, Val(items[0]));
  EXPECT_EQ(6u, Val(items[1]));
  EXPECT_EQ(-ETIMEDOUT, trb_queue_pop_many(q_, items, 5, 0));  // deadline passed: poll
  EXPECT_EQ(-EINVAL, trb_queue_pop_many(q_, items, 0, -1));
}

TEST_F(QueueTest, PushDeadlineExpiresWhenFull) {
  Make(1);
  ASSERT_EQ(0, trb_queue_push(q_, Item(1), -1));
  int64_t start = trb_clock_mono_ms();
  EXPECT_EQ(-ETIMEDOUT, trb_queue_push(q_, Item(2), start + 50));
  EXPECT_GE(trb_clock_mono_ms(), start + 50);
  EXPECT_EQ(-ETIMEDOUT, trb_queue_push(q_, Item(2), 0));
  EXPECT_EQ(1u, trb_queue_size(q_));
}

TEST_F(QueueTest, PopDeadlineExpiresWhenEmpty) {
  Make(2);
  void *out = Item(7);
  int64_t start = trb_clock_mono_ms();
  EXPECT_EQ(-ETIMEDOUT, trb_queue_pop(q_, &out, start + 30));
  EXPECT_GE(trb_clock_mono_ms(), start + 30);
  EXPECT_EQ(7u, Val(out));  // untouched
}

TEST_F(QueueTest, FullQueueBlocksProducerUntilConsumerPops) {
  Make(2);
  ASSERT_EQ(0, trb_queue_push(q_, Item(1), -1));
  ASSERT_EQ(0, trb_queue_push(q_, Item(2), -1));
  Event pushed;
  int rc = -1;
  std::thread producer([&] {
    rc = trb_queue_push(q_, Item(3), In(10000));
    pushed.Set();
  });
  EXPECT_FALSE(pushed.WaitFor(50));  // still blocked: the queue is full
  void *out = nullptr;
  ASSERT_EQ(0, trb_queue_pop(q_, &out, In(1000)));
  EXPECT_EQ(1u, Val(out));
  EXPECT_TRUE(pushed.WaitFor(5000));
  producer.join();
  EXPECT_EQ(0, rc);
  ASSERT_EQ(0, trb_queue_pop(q_, &out, In(1000)));
  EXPECT_EQ(2u, Val(out));
  ASSERT_EQ(0, trb_queue_pop(q_, &out, In(1000)));
  EXPECT_EQ(3u, Val(out));
}

TEST_F(QueueTest, EmptyQueueBlocksConsumerUntilPush) {
  Make(2);
  Event popped;
  void *out = nullptr;
  int rc = -1;
  std::thread consumer([&] {
    rc = trb_queue_pop(q_, &out, -1);
    popped.Set();
  });
  EXPECT_FALSE(popped.WaitFor(50));
  ASSERT_EQ(0, trb_queue_push(q_, Item(42), -1));
  EXPECT_TRUE(popped.WaitFor(5000));
  consumer.join();
  EXPECT_EQ(0, rc);
  EXPECT_EQ(42u, Val(out));
}

// Several producers push many items through a small queue; the consumer
// sees every item exactly once, and each producer's items in order.
TEST_F(QueueTest, ManyProducersEveryItemOnceInPerProducerOrder) {
  constexpr int kProducers = 4;
  constexpr uintptr_t kItems = 20000;
  Make(64);
  std::vector<std::thread> producers;
  std::atomic<int> push_errors{0};
  for (int p = 0; p < kProducers; p++) {
    producers.emplace_back([this, p, &push_errors] {
      for (uintptr_t i = 0; i < kItems; i++) {
        // Item = producer in the high bits, sequence in the low bits.
        if (trb_queue_push(q_, Item((uintptr_t(p) << 32) | i), In(30000)) != 0) push_errors++;
      }
    });
  }
  std::vector<uintptr_t> next(kProducers, 0);
  size_t total = 0, batches = 0;
  void *items[16];
  while (total < kProducers * kItems) {
    int n = trb_queue_pop_many(q_, items, 16, In(30000));
    ASSERT_GT(n, 0) << "rc " << n << " after " << total;
    batches++;
    for (int k = 0; k < n; k++) {
      uintptr_t v = Val(items[k]);
      size_t p = v >> 32;
      ASSERT_LT(p, size_t{kProducers});
      ASSERT_EQ(next[p], v & 0xffffffffu) << "producer " << p;
      next[p]++;
      total++;
    }
  }
  for (auto &t : producers) t.join();
  EXPECT_EQ(0, push_errors.load());
  for (int p = 0; p < kProducers; p++) EXPECT_EQ(kItems, next[p]);
  EXPECT_LE(batches, total);
  void *out;
  EXPECT_EQ(-EAGAIN, trb_queue_try_pop(q_, &out));
  trb_queue_close(q_);
  EXPECT_EQ(-EPIPE, trb_queue_pop(q_, &out, -1));
}

TEST_F(QueueTest, CloseWakesBlockedProducersWithEpipe) {
  constexpr int kProducers = 3;
  Make(1);
  ASSERT_EQ(0, trb_queue_push(q_, Item(1), -1));
  std::vector<std::thread> producers;
  std::vector<int> rcs(kProducers, 1);
  std::atomic<int> done{0};
  Event all_done;
  for (int p = 0; p < kProducers; p++) {
    producers.emplace_back([&, p] {
      rcs[p] = trb_queue_push(q_, Item(100 + p), -1);
      if (++done == kProducers) all_done.Set();
    });
  }
  EXPECT_FALSE(all_done.WaitFor(50));
  trb_queue_close(q_);
  EXPECT_TRUE(all_done.WaitFor(5000));
  for (auto &t : producers) t.join();
  for (int rc : rcs) EXPECT_EQ(-EPIPE, rc);
  EXPECT_EQ(-EPIPE, trb_queue_try_push(q_, Item(9)));
  EXPECT_EQ(-EPIPE, trb_queue_push(q_, Item(9), In(1000)));
  void *out = nullptr;
  ASSERT_EQ(0, trb_queue_pop(q_, &out, -1));  // the item queued before close
  EXPECT_EQ(1u, Val(out));
  EXPECT_EQ(-EPIPE, trb_queue_pop(q_, &out, -1));
  EXPECT_EQ(-EPIPE, trb_queue_try_pop(q_, &out));
}

TEST_F(QueueTest, CloseWakesBlockedConsumer) {
  Make(4);
  Event popped;
  int rc = 0;
  std::thread consumer([&] {
    void *out;
    rc = trb_queue_pop(q_, &out, -1);
    popped.Set();
  });
  EXPECT_FALSE(popped.WaitFor(50));
  trb_queue_close(q_);
  EXPECT_TRUE(popped.WaitFor(5000));
  consumer.join();
  EXPECT_EQ(-EPIPE, rc);
}

TEST_F(QueueTest, CloseDrainsRemainingItemsThenEpipe) {
  Make(8);
  for (uintptr_t i = 0; i < 3; i++) ASSERT_EQ(0, trb_queue_push(q_, Item(i), -1));
  EXPECT_FALSE(trb_queue_is_closed(q_));
  trb_queue_close(q_);
  trb_queue_close(q_);  // idempotent
  EXPECT_TRUE(trb_queue_is_closed(q_));
  void *items[10];
  ASSERT_EQ(3, trb_queue_pop_many(q_, items, 10, -1));
  EXPECT_EQ(2u, Val(items[2]));
  EXPECT_EQ(-EPIPE, trb_queue_pop_many(q_, items, 10, -1));
  EXPECT_EQ(-EPIPE, trb_queue_pop_many(q_, items, 10, 0));
}

TEST_F(QueueTest, WakeupFdFollowsPushClearAndClose) {
  Make(4);
  int fd = trb_queue_wakeup_fd(q_);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(Readable(fd));
  ASSERT_EQ(0, trb_queue_push(q_, Item(1), -1));
  EXPECT_TRUE(Readable(fd));
  trb_queue_wakeup_clear(q_);  // an item is left: stays readable
  EXPECT_TRUE(Readable(fd));
  void *out;
  ASSERT_EQ(0, trb_queue_try_pop(q_, &out));
  EXPECT_TRUE(Readable(fd));  // pops do not touch the fd
  trb_queue_wakeup_clear(q_);
  EXPECT_FALSE(Readable(fd));
  trb_queue_wakeup_clear(q_);  // clearing twice is harmless
  EXPECT_FALSE(Readable(fd));
  trb_queue_close(q_);
  EXPECT_TRUE(Readable(fd));
  trb_queue_wakeup_clear(q_);  // closed: stays readable
  EXPECT_TRUE(Readable(fd));
}

TEST_F(QueueTest, WakeupsCoalesce) {
  Make(128);
  for (uintptr_t i = 0; i < 100; i++) ASSERT_EQ(0, trb_queue_try_push(q_, Item(i)));
  // White box: the eventfd counter shows how many writes happened.
  uint64_t counter = 0;
  ASSERT_EQ(ssize_t{sizeof(counter)}, read(trb_queue_wakeup_fd(q_), &counter, sizeof(counter)));
  EXPECT_EQ(1u, counter);
}

// The event-loop pattern: poll the fd, drain, clear, repeat; the producer
// pushes concurrently. Every item arrives and close ends the loop.
TEST_F(QueueTest, EventLoopConsumerSeesEveryItem) {
  constexpr uintptr_t kItems = 5000;
  Make(32);
  std::thread producer([this] {
    for (uintptr_t i = 0; i < kItems; i++) ASSERT_EQ(0, trb_queue_push(q_, Item(i), In(30000)));
    trb_queue_close(q_);
  });
  uintptr_t next = 0;
  int wakeups = 0;
  bool closed = false;
  while (!closed) {
    ASSERT_TRUE(Readable(trb_queue_wakeup_fd(q_), 30000)) << "stalled at " << next;
    wakeups++;
    void *items[8];
    int n;
    while ((n = trb_queue_pop_many(q_, items, 8, 0)) > 0) {
      for (int k = 0; k < n; k++) ASSERT_EQ(next++, Val(items[k]));
    }
    ASSERT_TRUE(n == -ETIMEDOUT || n == -EPIPE) << n;
    closed = n == -EPIPE;
    trb_queue_wakeup_clear(q_);
  }
  producer.join();
  EXPECT_EQ(kItems, next);
  EXPECT_LE(wakeups, static_cast<int>(kItems) + 1);
}

}  // namespace
