#pragma once

#include <memory>
#include <string>

#include "core/common/on_active.h"
#include "core/commserv/client.h"

namespace drgate::jobs {

// One configured CommCell as core/jobs sees it.
struct CommCell {
  std::string name;
  std::string url;  // without credentials
  std::shared_ptr<commserv::CommServClient> client;
  OnActive on_active = OnActive::kReject;
};

}  // namespace drgate::jobs
