// Fuzzes the checked conversions of callers' Timestamps and Durations and the saturating clock
// arithmetic (core/common/time_range.h). The input is read as int64 seconds, int32 nanos and an
// int64 "now" in ticks. UBSan (built with -fno-sanitize-recover) stops on any signed overflow;
// the checks below compare every answer with exact 128-bit arithmetic.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/common/time_range.h"

namespace {

__extension__ using Int128 = __int128;

template <typename T>
T Take(const uint8_t*& data, size_t& size) {
  T value{};
  const size_t n = size < sizeof(T) ? size : sizeof(T);
  std::memcpy(&value, data, n);
  data += n;
  size -= n;
  return value;
}

Int128 Clamp(Int128 v) {
  constexpr Int128 kMin = std::numeric_limits<drgate::TimePoint::rep>::min();
  constexpr Int128 kMax = std::numeric_limits<drgate::TimePoint::rep>::max();
  return v < kMin ? kMin : v > kMax ? kMax : v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drgate;
  const auto seconds = Take<int64_t>(data, size);
  const auto nanos = Take<int32_t>(data, size);
  const auto now_ticks = Take<int64_t>(data, size);
  static_assert(std::is_same_v<TimePoint::duration, std::chrono::nanoseconds>,
                "the checks below assume nanosecond ticks");

  auto t = TimestampToTimePoint(seconds, nanos, "t");
  const bool t_valid = seconds >= kMinTimestampSeconds && seconds <= kMaxTimestampSeconds &&
                       nanos >= 0 && nanos <= kMaxNanos;
  if (t.ok() != t_valid) std::abort();
  if (t.ok() && t->time_since_epoch().count() != Clamp(Int128(seconds) * 1000000000 + nanos)) {
    std::abort();
  }
  if (!t.ok() && (t.status().code() != StatusCode::kInvalidArgument ||
                  t.status().message().rfind("t is out of range: ", 0) != 0)) {
    std::abort();
  }

  auto d = DurationToMillis(seconds, nanos, "d");
  const bool d_valid = seconds >= -kMaxDurationSeconds && seconds <= kMaxDurationSeconds &&
                       nanos >= -kMaxNanos && nanos <= kMaxNanos && !(seconds > 0 && nanos < 0) &&
                       !(seconds < 0 && nanos > 0);
  if (d.ok() != d_valid) std::abort();
  if (d.ok()) {
    const Int128 exact = Int128(seconds) * 1000000000 + nanos;
    const Int128 ms = d->count();
    if (!(ms * 1000000 >= exact && (ms - 1) * 1000000 < exact)) std::abort();
  }

  // SaturatingSub with any "now" and any millisecond count (not only valid durations).
  const TimePoint now{std::chrono::nanoseconds(now_ticks)};
  const std::chrono::milliseconds any(seconds);
  if (SaturatingSub(now, any).time_since_epoch().count() !=
      Clamp(Int128(now_ticks) - Int128(seconds) * 1000000)) {
    std::abort();
  }
  if (d.ok() && SaturatingSub(now, *d).time_since_epoch().count() !=
                    Clamp(Int128(now_ticks) - Int128(d->count()) * 1000000)) {
    std::abort();
  }
  return 0;
}
