#include "core/common/audit.h"

namespace drgate {
namespace {

constexpr std::string_view kPrefix = "audit: ";

bool IsBare(std::string_view v) {
  if (v.empty()) return false;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c == 0x7f) return false;
  }
  return true;
}

bool IsKey(std::string_view k) {
  if (k.empty()) return false;
  for (char c : k) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

}  // namespace

std::string AuditMessage(std::string_view action, const AuditFields& fields) {
  std::string out(kPrefix);
  out += action;
  for (const auto& [key, value] : fields) {
    out += ' ';
    out += key;
    out += '=';
    if (IsBare(value)) {
      out += value;
      continue;
    }
    out += '"';
    for (char c : value) {
      if (c == '"' || c == '\\') out += '\\';
      // Line breaks would split the record in text logs.
      out += (c == '\n' || c == '\r') ? ' ' : c;
    }
    out += '"';
  }
  return out;
}

std::optional<AuditRecord> ParseAuditMessage(std::string_view message) {
  if (message.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view rest = message.substr(kPrefix.size());
  AuditRecord record;
  const auto space = rest.find(' ');
  record.action = std::string(rest.substr(0, space));
  if (!IsKey(record.action)) return std::nullopt;
  rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  while (!rest.empty()) {
    const auto eq = rest.find('=');
    if (eq == std::string_view::npos || !IsKey(rest.substr(0, eq))) return std::nullopt;
    std::string key(rest.substr(0, eq));
    rest = rest.substr(eq + 1);
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      std::size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value += rest[i];
      }
      if (i >= rest.size()) return std::nullopt;  // no closing quote
      rest = rest.substr(i + 1);
    } else {
      const auto end = rest.find(' ');
      value = std::string(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    }
    if (!rest.empty()) {
      if (rest.front() != ' ') return std::nullopt;
      rest.remove_prefix(1);
    }
    record.fields.emplace_back(std::move(key), std::move(value));
  }
  return record;
}

}  // namespace drgate
