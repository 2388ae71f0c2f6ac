#include "core/jobs/intent_match.h"

#include <cctype>

namespace drgate::jobs {

std::optional<BackupType> LevelOf(const std::string& backup_level) {
  std::string lower;
  for (char c : backup_level) {
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (lower.find("full") != std::string::npos) return BackupType::kFull;
  if (lower.find("diff") != std::string::npos) return BackupType::kDifferential;
  return std::nullopt;
}

bool LevelMatches(const std::string& level, BackupType type) {
  if (level.empty()) return true;  // the CommServe did not say: any DR job may be ours
  return LevelOf(level) == type;
}

bool MayClaim(const TriggerIntent& intent, const commserv::JobSummary& job) {
  if (!LevelMatches(job.backup_level, intent.backup_type)) return false;
  return job.start_time <= 0 || FromEpochSeconds(job.start_time) >= intent.create_time - kClockSkew;
}

}  // namespace drgate::jobs
