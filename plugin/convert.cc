#include "plugin/convert.h"

#include <chrono>

#include "core/common/time_range.h"

namespace drgate::plugin {
void ToProto(TimePoint t, google::protobuf::Timestamp* out) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  const auto secs = std::chrono::floor<std::chrono::seconds>(ns);
  out->set_seconds(secs.count());
  out->set_nanos(static_cast<int32_t>((ns - secs).count()));
}

StatusOr<TimePoint> FromProto(const google::protobuf::Timestamp& time, std::string_view field) {
  return TimestampToTimePoint(time.seconds(), time.nanos(), field);
}

StatusOr<std::chrono::milliseconds> FromProto(const google::protobuf::Duration& duration,
                                              std::string_view field, Reason reason) {
  return DurationToMillis(duration.seconds(), duration.nanos(), field, reason);
}

StatusOr<BackupType> FromProto(v1::BackupType type) {
  switch (type) {
    case v1::BACKUP_TYPE_FULL: return BackupType::kFull;
    case v1::BACKUP_TYPE_DIFFERENTIAL: return BackupType::kDifferential;
    default:
      return InvalidArgument(
          "backup_type must be BACKUP_TYPE_FULL or BACKUP_TYPE_DIFFERENTIAL, got " +
              std::string(v1::BackupType_Name(type).empty() ? std::to_string(type)
                                                            : v1::BackupType_Name(type)),
          Reason::kInvalidBackupType);
  }
}

v1::BackupType ToProto(BackupType type) {
  return type == BackupType::kFull ? v1::BACKUP_TYPE_FULL : v1::BACKUP_TYPE_DIFFERENTIAL;
}

StatusOr<std::optional<JobState>> FilterFromProto(v1::JobState state) {
  if (state == v1::JOB_STATE_UNSPECIFIED) return std::optional<JobState>();
  if (state >= v1::JOB_STATE_SUBMITTED && state <= v1::JOB_STATE_UNKNOWN) {
    return std::optional<JobState>(static_cast<JobState>(static_cast<int>(state)));
  }
  return InvalidArgument("unknown state filter " + std::to_string(state),
                         Reason::kInvalidStateFilter);
}

v1::JobState ToProto(JobState state) {
  // core's JobState values equal drgate.v1's by construction.
  return static_cast<v1::JobState>(static_cast<int>(state));
}

StatusOr<std::optional<JobOrigin>> FilterFromProto(v1::JobOrigin origin) {
  switch (origin) {
    case v1::JOB_ORIGIN_UNSPECIFIED: return std::optional<JobOrigin>();
    case v1::JOB_ORIGIN_DRGATE: return std::optional<JobOrigin>(JobOrigin::kDrgate);
    case v1::JOB_ORIGIN_COMMSERV: return std::optional<JobOrigin>(JobOrigin::kCommserv);
    default: break;
  }
  return InvalidArgument("unknown origin filter " + std::to_string(origin),
                         Reason::kInvalidOriginFilter);
}

v1::JobOrigin ToProto(JobOrigin origin) {
  return origin == JobOrigin::kCommserv ? v1::JOB_ORIGIN_COMMSERV : v1::JOB_ORIGIN_DRGATE;
}

void ToProto(const Job& job, v1::Job* out) {
  out->set_job_id(job.job_id);
  out->set_commcell(job.commcell);
  out->set_task_id(job.task_id);
  out->set_backup_type(ToProto(job.backup_type));
  out->set_compression(job.compression);
  out->set_state(ToProto(job.state));
  out->set_commserv_status(job.commserv_status);
  out->set_percent_complete(job.percent_complete);
  out->set_failure_reason(job.failure_reason);
  out->set_request_id(job.request_id);
  out->set_requested_by(job.requested_by);
  ToProto(job.create_time, out->mutable_create_time());
  if (job.start_time) ToProto(*job.start_time, out->mutable_start_time());
  if (job.end_time) ToProto(*job.end_time, out->mutable_end_time());
  ToProto(job.update_time, out->mutable_update_time());
  out->set_origin(ToProto(job.origin));
}

}  // namespace drgate::plugin
