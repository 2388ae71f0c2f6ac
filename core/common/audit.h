#pragma once

// Audit records: who asked drgate to start or cancel what, and what came of it. One log line each,
// readable as text and parseable into fields:
//
//   audit: trigger commcell=prod type=full request_id="upgrade-42" caller="ci" job=2141 task=9
//
// A value is written bare when it is a plain token, else in double quotes with \" and \\ escaped
// (request ids, callers and error texts may hold spaces). In JSON logs the fields also become keys
// of their own (plugin/logging.cc), so a log pipeline can filter on caller or request_id without
// parsing the message. Never put a credential in a field.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace drgate {

using AuditFields = std::vector<std::pair<std::string, std::string>>;

// "audit: <action> k=v ...", fields in the order given.
std::string AuditMessage(std::string_view action, const AuditFields& fields);

struct AuditRecord {
  std::string action;
  AuditFields fields;
};

// The inverse of AuditMessage: nullopt when `message` is not an audit line or is malformed.
std::optional<AuditRecord> ParseAuditMessage(std::string_view message);

}  // namespace drgate
