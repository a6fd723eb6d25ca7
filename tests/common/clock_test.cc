// Tests for src/common/clock.h: units and monotonicity.
#include "src/common/clock.h"

#include <time.h>

#include <gtest/gtest.h>

namespace {

TEST(ClockTest, MonotonicNeverGoesBack) {
  int64_t prev = trb_clock_mono_ns();
  for (int i = 0; i < 1000; i++) {
    int64_t now = trb_clock_mono_ns();
    ASSERT_GE(now, prev);
    prev = now;
  }
}

TEST(ClockTest, MillisecondsAgreeWithNanoseconds) {
  int64_t ms = trb_clock_mono_ms();
  int64_t ns = trb_clock_mono_ns();
  EXPECT_LE(ms, ns / 1000000);
  EXPECT_LE(ns / 1000000 - ms, 1000);
}

TEST(ClockTest, WallClockIsMicrosecondsSinceEpoch) {
  int64_t us = trb_clock_wall_us();
  int64_t s = static_cast<int64_t>(time(nullptr));
  EXPECT_LE(s - 1, us / 1000000);
  EXPECT_GE(s + 1, us / 1000000);
}

TEST(ClockTest, CpuTimeIsNonNegative) { EXPECT_GE(trb_clock_cpu_ns(), 0); }

}  // namespace
