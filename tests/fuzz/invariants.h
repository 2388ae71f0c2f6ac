#pragma once

// What every fuzz target checks about a decoder's answer beyond "no crash": the promises of
// core/commserv/codec.h. A broken promise aborts, so libFuzzer reports it like a crash.

#include <cstdlib>
#include <string>

#include "core/commserv/codec.h"

namespace drgate::fuzz {

inline commserv::HttpResponse Response(int status, const char* content_type,
                                       const std::string& body) {
  commserv::HttpResponse r;
  r.status = status;
  r.content_type = content_type;
  if (status == 429 || status == 503) r.headers["retry-after"] = "7";
  r.body = body;
  return r;
}

// Sanitized upstream text: at most 512 bytes (plus a "..." marker) and no control characters.
inline void CheckText(const std::string& text) {
  if (text.size() > 512 + 3) std::abort();
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) std::abort();
  }
}

// Every error has a reason and the "http_status" metadata.
inline void CheckStatus(const Status& s) {
  if (s.ok()) return;
  if (s.reason() == Reason::kNone) std::abort();
  if (s.metadata().find("http_status") == s.metadata().end()) std::abort();
}

// Success means at least one job id, each of decimal digits (they go into URL paths).
inline void CheckDrBackup(const StatusOr<commserv::DrBackupResult>& result) {
  if (!result.ok()) {
    CheckStatus(result.status());
    return;
  }
  if (result->job_ids.empty()) std::abort();
  for (const std::string& id : result->job_ids) {
    if (id.empty()) std::abort();
    for (char c : id) {
      if (c < '0' || c > '9') std::abort();
    }
  }
}

// A token goes into a header: no CR, LF or other control characters.
inline void CheckToken(const std::string& token) {
  for (unsigned char c : token) {
    if (c < 0x20 || c == 0x7f) std::abort();
  }
}

}  // namespace drgate::fuzz
