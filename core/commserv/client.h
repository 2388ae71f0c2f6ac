#pragma once

// What the orchestration needs from one CommServe: an interface, so core/jobs is tested with a
// fake and no sockets.

#include <functional>
#include <optional>
#include <string>

#include "core/commserv/codec.h"
#include "core/common/job.h"
#include "core/common/status.h"

namespace drgate::commserv {

// Whether the last login or call to a CommServe succeeded.
struct Reachability {
  bool contacted = false;  // false until the first answer or failure
  bool reachable = false;
  std::string last_error;  // empty when reachable; never contains secrets
  TimePoint last_contact{};
};

class CommServClient {
 public:
  template <typename T>
  using Callback = std::function<void(StatusOr<T>)>;

  virtual ~CommServClient() = default;

  // POST CommServ/DRBackup with a valid session token (logging in or renewing as needed). The
  // callback runs exactly once, on a transport thread, never inline. Errors follow codec.h and
  // transport.h; credentials the CommServe rejects are FAILED_PRECONDITION.
  virtual void TriggerDrBackup(const DrBackupRequest& request,
                               Callback<DrBackupResult> done) = 0;

  virtual Reachability reachability() const = 0;
};

}  // namespace drgate::commserv
