#include "core/common/time_range.h"

#include <limits>
#include <ratio>
#include <string>

namespace drgate {
namespace {

// Wide enough for every product and sum below (a GCC and Clang extension).
__extension__ using Int128 = __int128;

using Ticks = TimePoint::duration;
static_assert(Ticks::period::num == 1 && 1000000000 % Ticks::period::den == 0,
              "TimePoint ticks must divide a second into at most nanoseconds");
constexpr int64_t kTicksPerSecond = Ticks::period::den;
constexpr int64_t kNanosPerTick = 1000000000 / kTicksPerSecond;
constexpr int64_t kTicksPerMilli = kTicksPerSecond / 1000;
static_assert(kTicksPerMilli * 1000 == kTicksPerSecond,
              "TimePoint ticks must divide a millisecond");

// Exact 128-bit arithmetic, then clamped.
TimePoint ClampTicks(Int128 ticks) {
  constexpr Int128 kMin = std::numeric_limits<Ticks::rep>::min();
  constexpr Int128 kMax = std::numeric_limits<Ticks::rep>::max();
  if (ticks < kMin) return TimePoint::min();
  if (ticks > kMax) return TimePoint::max();
  return TimePoint(Ticks(static_cast<Ticks::rep>(ticks)));
}

Status OutOfRange(std::string_view field, Reason reason, const std::string& what) {
  return InvalidArgument(std::string(field) + " is out of range: " + what, reason)
      .With("field", std::string(field));
}

}  // namespace

StatusOr<TimePoint> TimestampToTimePoint(int64_t seconds, int32_t nanos, std::string_view field,
                                         Reason reason) {
  if (seconds < kMinTimestampSeconds || seconds > kMaxTimestampSeconds) {
    return OutOfRange(field, reason,
                      "seconds must be within " + std::to_string(kMinTimestampSeconds) + ".." +
                          std::to_string(kMaxTimestampSeconds) +
                          " (0001-01-01T00:00:00Z..9999-12-31T23:59:59Z), got " +
                          std::to_string(seconds));
  }
  if (nanos < 0 || nanos > kMaxNanos) {
    return OutOfRange(field, reason,
                      "nanos must be within 0..999999999, got " + std::to_string(nanos));
  }
  return ClampTicks(static_cast<Int128>(seconds) * kTicksPerSecond + nanos / kNanosPerTick);
}

StatusOr<std::chrono::milliseconds> DurationToMillis(int64_t seconds, int32_t nanos,
                                                     std::string_view field, Reason reason) {
  if (seconds < -kMaxDurationSeconds || seconds > kMaxDurationSeconds) {
    return OutOfRange(field, reason,
                      "seconds must be within -" + std::to_string(kMaxDurationSeconds) + ".." +
                          std::to_string(kMaxDurationSeconds) + ", got " + std::to_string(seconds));
  }
  if (nanos < -kMaxNanos || nanos > kMaxNanos) {
    return OutOfRange(field, reason,
                      "nanos must be within -999999999..999999999, got " + std::to_string(nanos));
  }
  if ((seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
    return OutOfRange(field, reason,
                      "nanos must have the sign of seconds, got seconds " +
                          std::to_string(seconds) + " and nanos " + std::to_string(nanos));
  }
  // |seconds| * 1000 + 1000 fits in int64 by far (about 3.2e14). Integer division truncates
  // towards zero, which is the ceiling for negative nanos.
  const int64_t millis = nanos > 0 ? (static_cast<int64_t>(nanos) + 999999) / 1000000
                                   : static_cast<int64_t>(nanos) / 1000000;
  return std::chrono::milliseconds(seconds * 1000 + millis);
}

TimePoint SaturatingSub(TimePoint t, std::chrono::milliseconds d) {
  return ClampTicks(static_cast<Int128>(t.time_since_epoch().count()) -
                    static_cast<Int128>(d.count()) * kTicksPerMilli);
}

}  // namespace drgate
