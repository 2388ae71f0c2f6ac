#pragma once

// What both JobStore backends share so that they behave alike: the stored time unit and the
// ListJobs page token (a keyset cursor bound to the filter it was issued for).

#include <cstdint>
#include <limits>
#include <string>

#include "core/common/job.h"
#include "core/common/status.h"
#include "core/registry/job_store.h"

namespace drgate::registry {

// Stored times are whole milliseconds since the epoch (rounded down at write).
int64_t ToMillis(TimePoint t);
// `stored < t` holds exactly when `stored_ms < CeilMillis(t)`, and `stored >= t` when
// `stored_ms >= CeilMillis(t)`.
int64_t CeilMillis(TimePoint t);
TimePoint FromMillis(int64_t ms);

// The create_time range of a filter in stored milliseconds, both ends inclusive; the whole int64
// range for an unset end.
struct MillisRange {
  int64_t from = std::numeric_limits<int64_t>::min();
  int64_t until = std::numeric_limits<int64_t>::max();
};
MillisRange CreateTimeRange(const JobFilter& filter);

// The last row of a page; the next page starts strictly after it in the order create_time
// descending, then commcell and job_id descending.
struct Cursor {
  uint64_t fingerprint = 0;  // FilterFingerprint of the filter the page was listed with
  int64_t create_time_ms = 0;
  std::string commcell;
  std::string job_id;
};

// Two filters that select the same rows have the same fingerprint.
uint64_t FilterFingerprint(const JobFilter& filter);
std::string EncodePageToken(const Cursor& cursor);
// INVALID_ARGUMENT (reason INVALID_PAGE_TOKEN) for a malformed token or one issued for another
// filter.
StatusOr<Cursor> DecodePageToken(const std::string& token, const JobFilter& filter);

// AddIntent's answer when an open intent with the same CommCell and request id exists:
// ALREADY_EXISTS, reason REQUEST_ID_IN_FLIGHT, metadata commcell and request_id.
Status RequestIdInFlight(const TriggerIntent& intent);

// The backup type of stored intent `intent_id`; INTERNAL (reason REGISTRY_ERROR) naming the intent
// and the value when the row holds an unknown one.
StatusOr<BackupType> IntentBackupType(int64_t intent_id, const std::string& backup_type);

}  // namespace drgate::registry
