#pragma once

// Process-wide logging set-up: structured JSON (one object per line: time, level, message) by
// default, human-readable text when stderr is a terminal. Log call sites never pass secrets.
// Audit lines (core/common/audit.h) also carry their fields as keys: "audit" (the action), then
// commcell, caller, request_id, job, outcome, ... as strings.

#include <string>

#include "core/config/config.h"

namespace drgate::plugin {

// `format`: auto is text on a terminal, JSON otherwise.
void ConfigureLogging(LogFormat format, LogLevel level);

// Changes the level of the logger ConfigureLogging made (log.level on a reload).
void SetLogLevel(LogLevel level);

// The JSON object for one log line, without the newline. Pure; exposed for tests.
std::string JsonLogLine(const std::string& time_iso8601, const std::string& level,
                        const std::string& message);

}  // namespace drgate::plugin
