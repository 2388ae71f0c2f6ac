// Checked conversions of callers' Timestamps and Durations, and saturating clock arithmetic:
// edge values of every range, exact messages, and a sweep that compares with 128-bit arithmetic.

#include "core/common/time_range.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace drgate {
namespace {

using std::chrono::milliseconds;
__extension__ using Int128 = __int128;
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

Int128 TicksOf(TimePoint t) {
  return t.time_since_epoch().count();
}

TEST(TimestampToTimePoint, ConvertsTimesTimePointCanHold) {
  auto t = TimestampToTimePoint(1700000000, 123456789, "created_after");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->time_since_epoch(),
            std::chrono::seconds(1700000000) + std::chrono::nanoseconds(123456789));
  auto epoch = TimestampToTimePoint(0, 0, "created_after");
  ASSERT_TRUE(epoch.ok());
  EXPECT_EQ(epoch->time_since_epoch().count(), 0);
  auto before = TimestampToTimePoint(-1, 999999999, "created_before");
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->time_since_epoch(), std::chrono::nanoseconds(-1));
}

TEST(TimestampToTimePoint, SaturatesValidTimesBeyondTimePointsSpan) {
  // Year 9999 and 10^10 s before the epoch (1653) are valid Timestamps TimePoint cannot hold.
  for (int64_t s : {kMaxTimestampSeconds, int64_t{253402300799} - 1, int64_t{9223372037}}) {
    auto t = TimestampToTimePoint(s, kMaxNanos, "created_after");
    ASSERT_TRUE(t.ok()) << s;
    EXPECT_EQ(*t, TimePoint::max()) << s;
  }
  for (int64_t s : {kMinTimestampSeconds, int64_t{-10000000000}, int64_t{-9223372037}}) {
    auto t = TimestampToTimePoint(s, 0, "created_before");
    ASSERT_TRUE(t.ok()) << s;
    EXPECT_EQ(*t, TimePoint::min()) << s;
  }
  // The last second TimePoint holds whole.
  auto edge = TimestampToTimePoint(9223372036, 854775807, "created_after");
  ASSERT_TRUE(edge.ok());
  EXPECT_EQ(*edge, TimePoint::max());
  auto inside = TimestampToTimePoint(9223372036, 0, "created_after");
  ASSERT_TRUE(inside.ok());
  EXPECT_EQ(inside->time_since_epoch().count(), 9223372036000000000);
}

TEST(TimestampToTimePoint, RefusesOutOfRangeSecondsAndNanosNamingTheField) {
  auto far = TimestampToTimePoint(kInt64Max, 0, "created_after");
  ASSERT_FALSE(far.ok());
  EXPECT_EQ(far.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(far.status().reason(), "INVALID_TIME");
  EXPECT_EQ(far.status().message(),
            "created_after is out of range: seconds must be within -62135596800..253402300799 "
            "(0001-01-01T00:00:00Z..9999-12-31T23:59:59Z), got 9223372036854775807");
  EXPECT_EQ(far.status().metadata().at("field"), "created_after");
  for (int64_t s : {kMaxTimestampSeconds + 1, kMinTimestampSeconds - 1, kInt64Min}) {
    EXPECT_EQ(TimestampToTimePoint(s, 0, "created_before").status().code(),
              StatusCode::kInvalidArgument)
        << s;
  }
  auto nanos = TimestampToTimePoint(0, 1000000000, "created_before");
  ASSERT_FALSE(nanos.ok());
  EXPECT_EQ(nanos.status().message(),
            "created_before is out of range: nanos must be within 0..999999999, got 1000000000");
  EXPECT_FALSE(TimestampToTimePoint(0, -1, "created_before").ok());
  EXPECT_FALSE(TimestampToTimePoint(0, std::numeric_limits<int32_t>::min(), "t").ok());
}

TEST(DurationToMillis, ConvertsAndRoundsUp) {
  EXPECT_EQ(*DurationToMillis(3600, 0, "max_age"), milliseconds(3600000));
  EXPECT_EQ(*DurationToMillis(1, 500000000, "max_age"), milliseconds(1500));
  EXPECT_EQ(*DurationToMillis(0, 1, "max_age"), milliseconds(1));  // positive stays positive
  EXPECT_EQ(*DurationToMillis(0, 999999999, "max_age"), milliseconds(1000));
  EXPECT_EQ(*DurationToMillis(0, -1, "max_age"), milliseconds(0));
  EXPECT_EQ(*DurationToMillis(-2, -1500000, "max_age"), milliseconds(-2001));
  EXPECT_EQ(*DurationToMillis(kMaxDurationSeconds, kMaxNanos, "max_age"),
            milliseconds(315576000000000 + 1000));
  EXPECT_EQ(*DurationToMillis(-kMaxDurationSeconds, -kMaxNanos, "max_age"),
            milliseconds(-315576000000000 - 999));
  EXPECT_EQ(*DurationToMillis(30000000000, 0, "max_age"), milliseconds(30000000000000));
}

TEST(DurationToMillis, RefusesOutOfRangeValuesWithTheGivenReason) {
  auto huge = DurationToMillis(kInt64Max, 0, "max_age", Reason::kInvalidMaxAge);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(huge.status().reason(), "INVALID_MAX_AGE");
  EXPECT_EQ(huge.status().message(),
            "max_age is out of range: seconds must be within -315576000000..315576000000, got "
            "9223372036854775807");
  EXPECT_FALSE(DurationToMillis(kMaxDurationSeconds + 1, 0, "max_age").ok());
  EXPECT_FALSE(DurationToMillis(-kMaxDurationSeconds - 1, 0, "max_age").ok());
  EXPECT_FALSE(DurationToMillis(kInt64Min, 0, "max_age").ok());
  EXPECT_EQ(DurationToMillis(0, 1000000000, "max_age").status().message(),
            "max_age is out of range: nanos must be within -999999999..999999999, got 1000000000");
  EXPECT_FALSE(DurationToMillis(0, -1000000000, "max_age").ok());
  auto sign = DurationToMillis(1, -1, "max_age");
  ASSERT_FALSE(sign.ok());
  EXPECT_EQ(sign.status().message(),
            "max_age is out of range: nanos must have the sign of seconds, got seconds 1 and "
            "nanos -1");
  EXPECT_EQ(sign.status().reason(), "INVALID_TIME");
  EXPECT_FALSE(DurationToMillis(-1, 1, "max_age").ok());
}

TEST(SaturatingSub, SubtractsExactlyOrSaturates) {
  const TimePoint now = TimePoint(std::chrono::seconds(1700000000));
  EXPECT_EQ(SaturatingSub(now, milliseconds(1500)), now - milliseconds(1500));
  EXPECT_EQ(SaturatingSub(now, milliseconds(-1500)), now + milliseconds(1500));
  EXPECT_EQ(SaturatingSub(now, milliseconds(30000000000000)), TimePoint::min());
  EXPECT_EQ(SaturatingSub(now, milliseconds::max()), TimePoint::min());
  EXPECT_EQ(SaturatingSub(now, milliseconds::min()), TimePoint::max());
  EXPECT_EQ(SaturatingSub(TimePoint::min(), milliseconds(1)), TimePoint::min());
  EXPECT_EQ(SaturatingSub(TimePoint::max(), milliseconds(-1)), TimePoint::max());
  EXPECT_EQ(SaturatingSub(TimePoint::max(), milliseconds(0)), TimePoint::max());
}

// A property sweep: edge values and random ones, checked against 128-bit arithmetic.
TEST(TimeRange, PropertiesHoldOverEdgeAndRandomValues) {
  std::vector<int64_t> seconds = {0,
                                  1,
                                  -1,
                                  kMinTimestampSeconds,
                                  kMaxTimestampSeconds,
                                  kMaxDurationSeconds,
                                  -kMaxDurationSeconds,
                                  9223372036,
                                  -9223372037,
                                  kInt64Max,
                                  kInt64Min};
  std::vector<int32_t> nanos = {0,
                                1,
                                -1,
                                kMaxNanos,
                                -kMaxNanos,
                                1000000000,
                                -1000000000,
                                std::numeric_limits<int32_t>::max(),
                                std::numeric_limits<int32_t>::min()};
  std::mt19937_64 rng(20261203);
  for (int i = 0; i < 300; ++i) {
    seconds.push_back(static_cast<int64_t>(rng()));
    seconds.push_back(static_cast<int64_t>(rng() % (2 * 400000000000ULL)) - 400000000000LL);
    nanos.push_back(static_cast<int32_t>(rng()));
    nanos.push_back(static_cast<int32_t>(rng() % 2000000000) - 1000000000);
  }
  constexpr Int128 kTickMin = std::numeric_limits<TimePoint::rep>::min();
  constexpr Int128 kTickMax = std::numeric_limits<TimePoint::rep>::max();
  for (int64_t s : seconds) {
    for (int32_t n : nanos) {
      const bool timestamp_valid =
          s >= kMinTimestampSeconds && s <= kMaxTimestampSeconds && n >= 0 && n <= kMaxNanos;
      auto t = TimestampToTimePoint(s, n, "t");
      ASSERT_EQ(t.ok(), timestamp_valid) << s << " " << n;
      if (t.ok()) {
        const Int128 exact = static_cast<Int128>(s) * 1000000000 + n;
        const Int128 want = exact < kTickMin ? kTickMin : exact > kTickMax ? kTickMax : exact;
        ASSERT_TRUE(TicksOf(*t) == want) << s << " " << n;
      }
      const bool duration_valid = s >= -kMaxDurationSeconds && s <= kMaxDurationSeconds &&
                                  n >= -kMaxNanos && n <= kMaxNanos && !(s > 0 && n < 0) &&
                                  !(s < 0 && n > 0);
      auto d = DurationToMillis(s, n, "d");
      ASSERT_EQ(d.ok(), duration_valid) << s << " " << n;
      if (d.ok()) {
        // Rounded up: the smallest whole millisecond count at or above the exact value.
        const Int128 exact_ns = static_cast<Int128>(s) * 1000000000 + n;
        const Int128 ms = d->count();
        ASSERT_TRUE(ms * 1000000 >= exact_ns && (ms - 1) * 1000000 < exact_ns) << s << " " << n;
        const TimePoint now = TimePoint(std::chrono::seconds(1700000000));
        const Int128 diff = TicksOf(now) - ms * 1000000;
        const Int128 want = diff < kTickMin ? kTickMin : diff > kTickMax ? kTickMax : diff;
        ASSERT_TRUE(TicksOf(SaturatingSub(now, *d)) == want) << s << " " << n;
      }
    }
  }
}

}  // namespace
}  // namespace drgate
