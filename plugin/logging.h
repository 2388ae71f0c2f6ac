#pragma once

// Process-wide logging set-up: structured JSON (one object per line: time, level, message) by
// default, human-readable text when stderr is a terminal. Log call sites never pass secrets.
// Audit lines (core/common/audit.h) also carry their fields as keys: "audit" (the action), then
// commcell, caller, request_id, job, outcome, ... as strings.

#include <string>
#include <string_view>

#include "core/config/config.h"

namespace drgate::plugin {

// `format`: auto is text on a terminal, JSON otherwise. Also routes gRPC's own log lines
// (gpr_log) through drgate's logger, prefixed "grpc: " and passed through RedactSecrets.
void ConfigureLogging(LogFormat format, LogLevel level);

// `text` with credentials made unreadable, for lines drgate does not write itself (gRPC's): the
// word after "Bearer ", and the rest of the line after a metadata key that carries a secret
// ("authorization", drgate's gateway mark), each become "[redacted]". Case-insensitive. Pure.
std::string RedactSecrets(std::string_view text);

// Changes the level of the logger ConfigureLogging made (log.level on a reload).
void SetLogLevel(LogLevel level);

// The JSON object for one log line, without the newline. Pure; exposed for tests.
std::string JsonLogLine(const std::string& time_iso8601, const std::string& level,
                        const std::string& message);

}  // namespace drgate::plugin
