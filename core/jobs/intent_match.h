#pragma once

// The one rule that decides whether a DR job the CommServe lists may be the answer to one of
// drgate's trigger intents. The tracker adopts by it (an intent whose answer was lost) and the
// DR history leaves alone what it matches (those jobs are drgate's, not the CommServe's own).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/common/clock.h"
#include "core/common/job.h"
#include "core/commserv/client.h"
#include "core/registry/job_store.h"

namespace drgate::jobs {

// How far the CommServe's clock may be behind drgate's when a job's start is compared with an
// intent's creation.
inline constexpr std::chrono::minutes kClockSkew{2};

// The CommServe's times are whole epoch seconds.
inline TimePoint FromEpochSeconds(int64_t seconds) {
  return TimePoint(std::chrono::seconds(seconds));
}

// The level a DR job names ("Full", "Differential", any case); nullopt when it names none.
std::optional<BackupType> LevelOf(const std::string& backup_level);

// True when `level` names `type`, or is empty (the CommServe did not say: a DR job of any level
// may be ours). A level named but unknown matches no type.
bool LevelMatches(const std::string& level, BackupType type);

// An intent may claim a DR job of its level (or of no named level) that did not start before
// the intent, give or take kClockSkew.
bool MayClaim(const TriggerIntent& intent, const commserv::JobSummary& job);

}  // namespace drgate::jobs
