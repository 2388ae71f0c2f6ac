#pragma once

// Translation between drgate.v1 messages and core's domain types. Pure functions.

#include <optional>

#include "core/common/job.h"
#include "core/common/status.h"
#include "drgate/v1/drgate.pb.h"

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
TimePoint FromProto(const google::protobuf::Timestamp& time);

}  // namespace drgate::plugin
