#pragma once

// Process-wide logging set-up: structured JSON (one object per line: time, level, message) by
// default, human-readable text when stderr is a terminal. Log call sites never pass secrets.
// Audit lines (core/common/audit.h) also carry their fields as keys: "audit" (the action), then
// commcell, caller, request_id, job, outcome, ... as strings.

#include <string>

namespace drgate::plugin {

// `format`: "json", "text" or "auto" (text on a terminal, JSON otherwise). `level`: spdlog's
// names (trace, debug, info, warn, error).
void ConfigureLogging(const std::string& format, const std::string& level);

// The JSON object for one log line, without the newline. Pure; exposed for tests.
std::string JsonLogLine(const std::string& time_iso8601, const std::string& level,
                        const std::string& message);

}  // namespace drgate::plugin
