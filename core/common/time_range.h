#pragma once

// Checked conversions for the times and durations callers send (google.protobuf.Timestamp and
// Duration, given here as their two fields so core stays free of protobuf), and saturating
// arithmetic where a caller's duration meets the clock. Nothing here overflows, whatever the
// input: out-of-range values are refused (INVALID_ARGUMENT naming the field and its valid range),
// in-range values that TimePoint cannot represent saturate.
//
// TimePoint (std::chrono::system_clock, int64 nanoseconds with libstdc++) spans about
// 1677-09-21..2262-04-11; a Timestamp spans 0001-01-01..9999-12-31. A Timestamp outside
// TimePoint's span becomes TimePoint's min() or max(), which keeps every comparison with a real
// job time right (no job is created before 1677 or after 2262).

#include <chrono>
#include <cstdint>
#include <string_view>

#include "core/common/job.h"
#include "core/common/status.h"

namespace drgate {

// The ranges of the protobuf well-known types (google/protobuf/timestamp.proto, duration.proto).
inline constexpr int64_t kMinTimestampSeconds = -62135596800;  // 0001-01-01T00:00:00Z
inline constexpr int64_t kMaxTimestampSeconds = 253402300799;  // 9999-12-31T23:59:59Z
inline constexpr int64_t kMaxDurationSeconds = 315576000000;   // about 10,000 years
inline constexpr int32_t kMaxNanos = 999999999;

// Reason of the refusals below unless the caller names another.

// A Timestamp (`seconds` since the epoch, `nanos` 0..999999999) as a TimePoint, saturated to
// TimePoint's span. INVALID_ARGUMENT (reason INVALID_TIME) naming `field` when seconds or nanos
// are out of the Timestamp range.
StatusOr<TimePoint> TimestampToTimePoint(int64_t seconds, int32_t nanos, std::string_view field,
                                         Reason reason = Reason::kInvalidTime);

// A Duration (`seconds` within +-315,576,000,000; `nanos` within +-999,999,999 and of the same
// sign as seconds when both are non-zero) in milliseconds, rounded towards +infinity (a positive
// duration never becomes zero). INVALID_ARGUMENT (reason `reason`) naming `field` otherwise.
StatusOr<std::chrono::milliseconds> DurationToMillis(int64_t seconds, int32_t nanos,
                                                     std::string_view field,
                                                     Reason reason = Reason::kInvalidTime);

// `t - d`, saturated to TimePoint's min() and max() instead of overflowing.
TimePoint SaturatingSub(TimePoint t, std::chrono::milliseconds d);

}  // namespace drgate
