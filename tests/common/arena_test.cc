// Tests for src/common/arena.h: the bump arena (alignment, growth, large
// allocations, reset, counters) and trb_buf_t, both under injected
// allocation failure.
#include "src/common/arena.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "src/common/alloc.h"

namespace {

// Fails every allocation numbered >= fail_at (1-based); counts them all.
struct FailAt {
  int calls = 0;
  int fail_at = 1;
};
int fail_at_hook(size_t, void *user) {
  FailAt *f = static_cast<FailAt *>(user);
  return ++f->calls >= f->fail_at;
}

bool Aligned(const void *p) { return reinterpret_cast<uintptr_t>(p) % TRB_ARENA_ALIGN == 0; }

class ArenaTest : public ::testing::Test {
 protected:
  void TearDown() override { trb_alloc_set_fail_hook(nullptr, nullptr); }
};

TEST_F(ArenaTest, CreateAndDestroy) {
  trb_arena_t *a = trb_arena_create(0);
  ASSERT_NE(nullptr, a);
  EXPECT_EQ(0u, trb_arena_bytes_used(a));
  EXPECT_GE(trb_arena_bytes_reserved(a), size_t{TRB_ARENA_DEFAULT_CHUNK_BYTES});
  trb_arena_destroy(a);
  trb_arena_destroy(nullptr);
}

class ArenaSizeTest : public ArenaTest, public ::testing::WithParamInterface<size_t> {};

// Every allocation is 16-byte aligned and none overlaps another: each is
// filled with its own byte and checked after all were made.
TEST_P(ArenaSizeTest, AlignedAndDisjoint) {
  const size_t size = GetParam();
  trb_arena_t *a = trb_arena_create(128);
  ASSERT_NE(nullptr, a);
  std::vector<unsigned char *> ptrs;
  for (int i = 0; i < 200; i++) {
    unsigned char *p = static_cast<unsigned char *>(trb_arena_alloc(a, size));
    ASSERT_NE(nullptr, p);
    ASSERT_TRUE(Aligned(p)) << "size " << size << " #" << i;
    memset(p, i & 0xff, size);
    ptrs.push_back(p);
  }
  for (int i = 0; i < 200; i++) {
    for (size_t k = 0; k < size; k++) ASSERT_EQ(i & 0xff, ptrs[i][k]);
  }
  EXPECT_GE(trb_arena_bytes_used(a), 200 * (size == 0 ? 1 : size));
  EXPECT_LE(trb_arena_bytes_used(a), trb_arena_bytes_reserved(a));
  trb_arena_destroy(a);
}

INSTANTIATE_TEST_SUITE_P(Sizes, ArenaSizeTest,
                         ::testing::Values(0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65,
                                           100, 127, 128, 129, 1000, 5000));

TEST_F(ArenaTest, UsedCountsPaddingAndReservedGrowsByChunks) {
  trb_arena_t *a = trb_arena_create(256);
  ASSERT_NE(nullptr, a);
  size_t reserved0 = trb_arena_bytes_reserved(a);
  ASSERT_NE(nullptr, trb_arena_alloc(a, 16));
  ASSERT_NE(nullptr, trb_arena_alloc(a, 1));
  ASSERT_NE(nullptr, trb_arena_alloc(a, 16));
  // 16 + 1 + 15 (padding) + 16, or up to 15 more if the chunk start was odd.
  EXPECT_GE(trb_arena_bytes_used(a), 48u);
  EXPECT_LE(trb_arena_bytes_used(a), 63u);
  EXPECT_EQ(reserved0, trb_arena_bytes_reserved(a));
  for (int i = 0; i < 100; i++) ASSERT_NE(nullptr, trb_arena_alloc(a, 64));
  EXPECT_GT(trb_arena_bytes_reserved(a), reserved0 + 100 * 64 - 256);
  EXPECT_GE(trb_arena_bytes_reserved(a), trb_arena_bytes_used(a));
  trb_arena_destroy(a);
}

TEST_F(ArenaTest, LargeAllocationGetsItsOwnChunk) {
  trb_arena_t *a = trb_arena_create(4096);
  ASSERT_NE(nullptr, a);
  char *small1 = static_cast<char *>(trb_arena_alloc(a, 16));
  size_t reserved0 = trb_arena_bytes_reserved(a);
  char *big = static_cast<char *>(trb_arena_alloc(a, 1 << 20));
  ASSERT_NE(nullptr, big);
  EXPECT_TRUE(Aligned(big));
  memset(big, 0xab, 1 << 20);
  EXPECT_GE(trb_arena_bytes_reserved(a), reserved0 + (1 << 20));
  // The first chunk's free space is still used afterwards.
  char *small2 = static_cast<char *>(trb_arena_alloc(a, 16));
  EXPECT_EQ(small1 + 16, small2);
  trb_arena_destroy(a);
}

TEST_F(ArenaTest, ResetKeepsOnlyTheFirstChunk) {
  trb_arena_t *a = trb_arena_create(512);
  ASSERT_NE(nullptr, a);
  size_t reserved0 = trb_arena_bytes_reserved(a);
  void *first = trb_arena_alloc(a, 32);
  for (int i = 0; i < 1000; i++) ASSERT_NE(nullptr, trb_arena_alloc(a, 100));
  ASSERT_NE(nullptr, trb_arena_alloc(a, 100000));
  EXPECT_GT(trb_arena_bytes_reserved(a), reserved0);
  trb_arena_reset(a);
  EXPECT_EQ(0u, trb_arena_bytes_used(a));
  EXPECT_EQ(reserved0, trb_arena_bytes_reserved(a));
  EXPECT_EQ(first, trb_arena_alloc(a, 32));  // reuses the first chunk from its start
  for (int i = 0; i < 1000; i++) ASSERT_NE(nullptr, trb_arena_alloc(a, 100));  // regrows
  trb_arena_destroy(a);
}

TEST_F(ArenaTest, CopiesAndZeroing) {
  trb_arena_t *a = trb_arena_create(64);
  ASSERT_NE(nullptr, a);
  char *s = trb_arena_strdup(a, "hello arena");
  ASSERT_NE(nullptr, s);
  EXPECT_STREQ("hello arena", s);
  EXPECT_TRUE(Aligned(s));
  char *n = trb_arena_strndup(a, "abc\0def", 7);
  ASSERT_NE(nullptr, n);
  EXPECT_EQ(0, memcmp("abc\0def", n, 8));
  const unsigned char bytes[] = {1, 2, 3, 0, 5};
  void *m = trb_arena_memdup(a, bytes, sizeof(bytes));
  ASSERT_NE(nullptr, m);
  EXPECT_EQ(0, memcmp(bytes, m, sizeof(bytes)));
  EXPECT_NE(nullptr, trb_arena_memdup(a, nullptr, 0));
  int *z = static_cast<int *>(trb_arena_calloc(a, 100, sizeof(int)));
  ASSERT_NE(nullptr, z);
  for (int i = 0; i < 100; i++) EXPECT_EQ(0, z[i]);
  EXPECT_EQ(nullptr, trb_arena_strdup(a, nullptr));
  EXPECT_EQ(nullptr, trb_arena_strndup(a, nullptr, 3));
  trb_arena_destroy(a);
}

TEST_F(ArenaTest, OverflowingRequestsFailAndLeaveTheArenaUsable) {
  trb_arena_t *a = trb_arena_create(64);
  ASSERT_NE(nullptr, a);
  EXPECT_EQ(nullptr, trb_arena_alloc(a, SIZE_MAX));
  EXPECT_EQ(nullptr, trb_arena_alloc(a, SIZE_MAX - 8));
  EXPECT_EQ(nullptr, trb_arena_calloc(a, SIZE_MAX / 2, 4));
  EXPECT_EQ(nullptr, trb_arena_create(SIZE_MAX));
  EXPECT_NE(nullptr, trb_arena_alloc(a, 8));
  trb_arena_destroy(a);
}

TEST_F(ArenaTest, CreateFailsCleanlyWhenAllocationFails) {
  FailAt f;
  trb_alloc_set_fail_hook(fail_at_hook, &f);
  EXPECT_EQ(nullptr, trb_arena_create(100));
  EXPECT_EQ(1, f.calls);
}

TEST_F(ArenaTest, GrowthFailureReturnsNullButExistingSpaceStillWorks) {
  trb_arena_t *a = trb_arena_create(256);
  ASSERT_NE(nullptr, a);
  FailAt f;
  trb_alloc_set_fail_hook(fail_at_hook, &f);
  EXPECT_NE(nullptr, trb_arena_alloc(a, 64));    // fits the first chunk: no malloc
  EXPECT_EQ(nullptr, trb_arena_alloc(a, 4096));  // needs a chunk: fails
  EXPECT_EQ(nullptr, trb_arena_strdup(a, std::string(1000, 's').c_str()));
  EXPECT_NE(nullptr, trb_arena_alloc(a, 64));
  EXPECT_EQ(2, f.calls);
  trb_alloc_set_fail_hook(nullptr, nullptr);
  EXPECT_NE(nullptr, trb_arena_alloc(a, 4096));
  trb_arena_destroy(a);
}

// Fail the n-th allocation of a workload for every n: each failure shows up
// as NULL at the call that needed memory, and destroy frees all (LeakSanitizer
// checks under --config=asan).
TEST_F(ArenaTest, FaultSweepReportsEveryFailureWithoutLeaks) {
  int n = 1;
  for (; n < 100; n++) {
    FailAt f;
    f.fail_at = n;
    trb_alloc_set_fail_hook(fail_at_hook, &f);
    trb_arena_t *a = trb_arena_create(64);
    int failures = 0;
    if (a == nullptr) {
      failures++;
    } else {
      for (int i = 0; i < 200; i++) {
        if (trb_arena_alloc(a, 48) == nullptr) failures++;
      }
    }
    trb_alloc_set_fail_hook(nullptr, nullptr);
    trb_arena_destroy(a);
    if (failures == 0) break;  // the workload needs fewer than n allocations
  }
  // create + doubling chunks (128 ... 8192 bytes) for 200 x 48 bytes: every
  // one of those allocations had its turn to fail.
  EXPECT_GE(n, 6);
  EXPECT_LT(n, 100);
}

// ---------------------------------------------------------------- trb_buf_t

TEST(BufTest, AppendsAndStaysNulTerminated) {
  trb_buf_t b;
  trb_buf_init(&b);
  EXPECT_EQ(nullptr, b.data);
  ASSERT_EQ(0, trb_buf_append(&b, "abc", 3));
  ASSERT_EQ(0, trb_buf_append_str(&b, "def"));
  ASSERT_EQ(0, trb_buf_append(&b, nullptr, 0));
  EXPECT_EQ(6u, b.len);
  EXPECT_STREQ("abcdef", b.data);
  ASSERT_EQ(0, trb_buf_appendf(&b, "-%d-%s", 42, "x"));
  EXPECT_STREQ("abcdef-42-x", b.data);
  std::string big(1000, 'z');
  ASSERT_EQ(0, trb_buf_appendf(&b, "%s", big.c_str()));
  EXPECT_EQ(11u + 1000u, b.len);
  EXPECT_EQ('\0', b.data[b.len]);
  EXPECT_GT(b.cap, b.len);
  trb_buf_deinit(&b);
  EXPECT_EQ(nullptr, b.data);
  trb_buf_deinit(&b);
  trb_buf_deinit(nullptr);
}

TEST(BufTest, ReserveAvoidsReallocation) {
  trb_buf_t b = TRB_BUF_INIT;
  ASSERT_EQ(0, trb_buf_reserve(&b, 1000));
  char *d = b.data;
  for (int i = 0; i < 100; i++) ASSERT_EQ(0, trb_buf_append(&b, "0123456789", 10));
  EXPECT_EQ(d, b.data);
  EXPECT_EQ(-EOVERFLOW, trb_buf_reserve(&b, SIZE_MAX));
  EXPECT_EQ(1000u, b.len);
  trb_buf_deinit(&b);
}

TEST(BufTest, ResetKeepsCapacity) {
  trb_buf_t b = TRB_BUF_INIT;
  ASSERT_EQ(0, trb_buf_append_str(&b, "hello"));
  size_t cap = b.cap;
  trb_buf_reset(&b);
  EXPECT_EQ(0u, b.len);
  EXPECT_STREQ("", b.data);
  EXPECT_EQ(cap, b.cap);
  trb_buf_deinit(&b);
}

TEST(BufTest, TakeTransfersOwnership) {
  trb_buf_t b = TRB_BUF_INIT;
  ASSERT_EQ(0, trb_buf_appendf(&b, "%s=%d", "rows", 3));
  size_t len = 0;
  char *s = trb_buf_take(&b, &len);
  EXPECT_STREQ("rows=3", s);
  EXPECT_EQ(6u, len);
  EXPECT_EQ(nullptr, b.data);
  EXPECT_EQ(0u, b.len);
  EXPECT_EQ(0u, b.cap);
  trb_free(s);
  s = trb_buf_take(&b, nullptr);  // never allocated: a fresh ""
  ASSERT_NE(nullptr, s);
  EXPECT_STREQ("", s);
  trb_free(s);
}

TEST(BufTest, EmptyFormatAllocatesNothing) {
  trb_buf_t b = TRB_BUF_INIT;
  EXPECT_EQ(0, trb_buf_appendf(&b, "%s", ""));
  EXPECT_EQ(nullptr, b.data);
}

class BufFaultTest : public ::testing::Test {
 protected:
  void TearDown() override { trb_alloc_set_fail_hook(nullptr, nullptr); }
};

TEST_F(BufFaultTest, FailedAppendsLeaveContentUnchanged) {
  trb_buf_t b = TRB_BUF_INIT;
  ASSERT_EQ(0, trb_buf_append_str(&b, "abc"));
  size_t cap = b.cap;
  FailAt f;
  trb_alloc_set_fail_hook(fail_at_hook, &f);
  std::string big(cap * 4, 'q');
  EXPECT_EQ(-ENOMEM, trb_buf_append(&b, big.data(), big.size()));
  EXPECT_EQ(-ENOMEM, trb_buf_reserve(&b, cap * 4));
  // appendf first formats into the spare room, then fails to grow: the
  // terminator it overwrote must be restored.
  EXPECT_EQ(-ENOMEM, trb_buf_appendf(&b, "%s", big.c_str()));
  EXPECT_EQ(3u, b.len);
  EXPECT_STREQ("abc", b.data);
  EXPECT_EQ(cap, b.cap);
  EXPECT_EQ(0, trb_buf_append_str(&b, "d"));  // fits: no allocation needed
  EXPECT_STREQ("abcd", b.data);
  trb_alloc_set_fail_hook(nullptr, nullptr);
  trb_buf_deinit(&b);
}

TEST_F(BufFaultTest, FirstAllocationFailure) {
  trb_buf_t b = TRB_BUF_INIT;
  FailAt f;
  trb_alloc_set_fail_hook(fail_at_hook, &f);
  EXPECT_EQ(-ENOMEM, trb_buf_append_str(&b, "x"));
  EXPECT_EQ(-ENOMEM, trb_buf_appendf(&b, "%d", 5));
  EXPECT_EQ(nullptr, b.data);
  size_t len = 99;
  EXPECT_EQ(nullptr, trb_buf_take(&b, &len));
  EXPECT_EQ(0u, len);
}

}  // namespace
