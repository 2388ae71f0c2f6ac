#pragma once

// Translation between drgate.v1 messages and core's domain types. Pure functions.

#include <chrono>
#include <optional>
#include <string_view>

#include "core/common/job.h"
#include "core/common/status.h"
#include "drgate/v1/drgate.pb.h"
#include "google/protobuf/duration.pb.h"

namespace drgate::plugin {

// INVALID_ARGUMENT (reason INVALID_BACKUP_TYPE) for BACKUP_TYPE_UNSPECIFIED or unknown values.
StatusOr<BackupType> FromProto(v1::BackupType type);
v1::BackupType ToProto(BackupType type);

// nullopt for JOB_STATE_UNSPECIFIED (no filter); INVALID_ARGUMENT for unknown values.
StatusOr<std::optional<JobState>> FilterFromProto(v1::JobState state);
v1::JobState ToProto(JobState state);

// nullopt for JOB_ORIGIN_UNSPECIFIED (every origin); INVALID_ARGUMENT (reason
// INVALID_ORIGIN_FILTER) for unknown values.
StatusOr<std::optional<JobOrigin>> FilterFromProto(v1::JobOrigin origin);
v1::JobOrigin ToProto(JobOrigin origin);

void ToProto(const Job& job, v1::Job* out);
void ToProto(TimePoint time, google::protobuf::Timestamp* out);
// A caller's Timestamp, checked (core/common/time_range.h): INVALID_ARGUMENT (reason
// INVALID_TIME) naming `field` outside 0001-01-01..9999-12-31 or with nanos outside
// 0..999999999; saturated to TimePoint's span otherwise.
StatusOr<TimePoint> FromProto(const google::protobuf::Timestamp& time, std::string_view field);
// A caller's Duration in milliseconds (rounded up), checked likewise: +-315,576,000,000 s, nanos
// within +-999,999,999 with the sign of seconds; INVALID_ARGUMENT with `reason` otherwise.
StatusOr<std::chrono::milliseconds> FromProto(const google::protobuf::Duration& duration,
                                              std::string_view field, Reason reason);

}  // namespace drgate::plugin
