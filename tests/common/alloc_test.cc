// Tests for src/common/alloc.h: libc-like behaviour and the failure hook.
#include "src/common/alloc.h"

#include <stdint.h>
#include <string.h>

#include <gtest/gtest.h>

namespace {

struct Counter {
  int calls = 0;
  int fail_from = 0;  // fail the calls numbered >= fail_from (1-based); 0 = never
};

int count_and_fail(size_t, void *user) {
  Counter *c = static_cast<Counter *>(user);
  c->calls++;
  return c->fail_from != 0 && c->calls >= c->fail_from;
}

class AllocTest : public ::testing::Test {
 protected:
  void TearDown() override { trb_alloc_set_fail_hook(nullptr, nullptr); }
};

TEST_F(AllocTest, BasicAllocationsWork) {
  char *p = static_cast<char *>(trb_malloc(16));
  ASSERT_NE(nullptr, p);
  memset(p, 'a', 16);
  p = static_cast<char *>(trb_realloc(p, 64));
  ASSERT_NE(nullptr, p);
  EXPECT_EQ('a', p[15]);
  trb_free(p);

  int *z = static_cast<int *>(trb_calloc(8, sizeof(int)));
  ASSERT_NE(nullptr, z);
  for (int i = 0; i < 8; i++) EXPECT_EQ(0, z[i]);
  trb_free(z);
  trb_free(nullptr);
}

TEST_F(AllocTest, ZeroSizeGivesFreeablePointer) {
  void *p = trb_malloc(0);
  EXPECT_NE(nullptr, p);
  trb_free(p);
  p = trb_calloc(0, 8);
  EXPECT_NE(nullptr, p);
  trb_free(p);
}

TEST_F(AllocTest, CallocOverflowFails) {
  EXPECT_EQ(nullptr, trb_calloc(SIZE_MAX / 2, 4));
}

TEST_F(AllocTest, StrdupAndStrndup) {
  char *s = trb_strdup("hello");
  ASSERT_NE(nullptr, s);
  EXPECT_STREQ("hello", s);
  trb_free(s);
  s = trb_strndup("hello", 3);
  ASSERT_NE(nullptr, s);
  EXPECT_STREQ("hel", s);
  trb_free(s);
  EXPECT_EQ(nullptr, trb_strdup(nullptr));
  EXPECT_EQ(nullptr, trb_strndup(nullptr, 3));
}

TEST_F(AllocTest, HookSeesEveryAllocationAndCanFailIt) {
  Counter c;
  c.fail_from = 3;
  trb_alloc_set_fail_hook(count_and_fail, &c);
  void *a = trb_malloc(1);
  void *b = trb_calloc(1, 1);
  EXPECT_NE(nullptr, a);
  EXPECT_NE(nullptr, b);
  EXPECT_EQ(nullptr, trb_malloc(1));
  EXPECT_EQ(nullptr, trb_strdup("x"));
  EXPECT_EQ(4, c.calls);
  trb_free(a);
  trb_free(b);
}

TEST_F(AllocTest, FailedReallocKeepsTheOldBlock) {
  Counter c;
  char *p = static_cast<char *>(trb_malloc(8));
  ASSERT_NE(nullptr, p);
  memcpy(p, "abcdefg", 8);
  c.fail_from = 1;
  trb_alloc_set_fail_hook(count_and_fail, &c);
  EXPECT_EQ(nullptr, trb_realloc(p, 1 << 20));
  trb_alloc_set_fail_hook(nullptr, nullptr);
  EXPECT_STREQ("abcdefg", p);
  trb_free(p);
}

TEST_F(AllocTest, RemovingTheHookRestoresAllocation) {
  Counter c;
  c.fail_from = 1;
  trb_alloc_set_fail_hook(count_and_fail, &c);
  EXPECT_EQ(nullptr, trb_malloc(4));
  trb_alloc_set_fail_hook(nullptr, nullptr);
  void *p = trb_malloc(4);
  EXPECT_NE(nullptr, p);
  trb_free(p);
  EXPECT_EQ(1, c.calls);
}

}  // namespace
