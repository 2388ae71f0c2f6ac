#include "plugin/allocator.h"

#include <gtest/gtest.h>
#include <stdlib.h>

namespace drgate::plugin {
namespace {

using std::chrono::seconds;
using Time = std::chrono::steady_clock::time_point;

TEST(AllocatorTrimmerTest, TrimsAtOnceThenAtMostOncePerInterval) {
  AllocatorTrimmer trimmer(seconds(30));
  const Time t0 = Time() + seconds(1000);
  EXPECT_TRUE(trimmer.MaybeTrim(t0));
  EXPECT_FALSE(trimmer.MaybeTrim(t0 + seconds(2)));
  EXPECT_FALSE(trimmer.MaybeTrim(t0 + seconds(29)));
  EXPECT_TRUE(trimmer.MaybeTrim(t0 + seconds(30)));
  EXPECT_FALSE(trimmer.MaybeTrim(t0 + seconds(59)));
  EXPECT_TRUE(trimmer.MaybeTrim(t0 + seconds(95)));
}

TEST(LimitMallocArenasTest, TheOperatorsMallocArenaMaxWins) {
  ASSERT_EQ(setenv("MALLOC_ARENA_MAX", "6", 1), 0);
  EXPECT_EQ(LimitMallocArenas(2), 6);
  ASSERT_EQ(unsetenv("MALLOC_ARENA_MAX"), 0);
  EXPECT_EQ(LimitMallocArenas(0), 0);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Sanitizers bring their own allocator, whose mallopt() accepts nothing.
  EXPECT_EQ(LimitMallocArenas(2), 2);
#endif
}

}  // namespace
}  // namespace drgate::plugin
