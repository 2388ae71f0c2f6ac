#include "plugin/logging.h"

#include "core/common/audit.h"

#include <grpc/support/log.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

namespace drgate::plugin {
namespace {

void AppendEscaped(std::string& out, std::string_view text) {
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

std::string Iso8601(std::chrono::system_clock::time_point t) {
  const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
  const std::time_t tt = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string line = JsonLogLine(Iso8601(msg.time), std::string(level.data(), level.size()),
                                         std::string(msg.payload.data(), msg.payload.size()));
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// Where `needle` (lower case) starts in `text` at or after `from`, ignoring case; npos if nowhere.
std::size_t FindIgnoreCase(std::string_view text, std::string_view needle, std::size_t from) {
  for (std::size_t i = from; i + needle.size() <= text.size(); ++i) {
    bool same = true;
    for (std::size_t j = 0; j < needle.size() && same; ++j) {
      same = std::tolower(static_cast<unsigned char>(text[i + j])) == needle[j];
    }
    if (same) return i;
  }
  return std::string_view::npos;
}

// gRPC's log lines (errors by default; GRPC_VERBOSITY widens them) as drgate's own.
void LogFromGrpc(gpr_log_func_args* args) {
  const std::string line = "grpc: " + RedactSecrets(args->message != nullptr ? args->message : "");
  switch (args->severity) {
    case GPR_LOG_SEVERITY_DEBUG: spdlog::debug("{}", line); break;
    case GPR_LOG_SEVERITY_INFO: spdlog::info("{}", line); break;
    default: spdlog::error("{}", line); break;
  }
}

}  // namespace

std::string RedactSecrets(std::string_view text) {
  static constexpr std::string_view kRedacted = "[redacted]";
  std::string out;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t bearer = FindIgnoreCase(text, "bearer", at);
    const std::size_t auth = FindIgnoreCase(text, "authorization", at);
    const std::size_t mark = FindIgnoreCase(text, "x-drgate-gateway", at);
    const std::size_t key = std::min(auth, mark);
    if (key != std::string_view::npos && key <= bearer) {
      // A secret-carrying key: the rest of its line may be its value, in whatever quoting.
      const std::size_t name_end = key + (key == auth ? 13 : 16);
      out.append(text.substr(at, name_end - at));
      const std::size_t eol = text.find('\n', name_end);
      out.append(kRedacted);
      if (eol == std::string_view::npos) return out;
      at = eol;
      continue;
    }
    if (bearer == std::string_view::npos) break;
    std::size_t word = bearer + 6;
    out.append(text.substr(at, word - at));
    std::size_t gap = word;
    while (gap < text.size() && (text[gap] == ' ' || text[gap] == '\t')) ++gap;
    if (gap == word) {  // "bearer" inside another word
      at = word;
      continue;
    }
    std::size_t end = gap;
    while (end < text.size() && text[end] != ' ' && text[end] != '"' && text[end] != '\'' &&
           text[end] != ',' && text[end] != '\n') {
      ++end;
    }
    out.append(text.substr(word, gap - word));
    out.append(kRedacted);
    at = end;
  }
  out.append(text.substr(std::min(at, text.size())));
  return out;
}

std::string JsonLogLine(const std::string& time_iso8601, const std::string& level,
                        const std::string& message) {
  std::string out = "{\"time\":\"";
  AppendEscaped(out, time_iso8601);
  out += "\",\"level\":\"";
  AppendEscaped(out, level);
  out += "\",\"message\":\"";
  AppendEscaped(out, message);
  out += '"';
  // An audit record's fields become keys of their own, next to the readable message.
  if (auto audit = ParseAuditMessage(message)) {
    out += ",\"audit\":\"";
    AppendEscaped(out, audit->action);
    out += '"';
    for (const auto& [key, value] : audit->fields) {
      if (key == "time" || key == "level" || key == "message" || key == "audit") continue;
      out += ",\"";
      AppendEscaped(out, key);
      out += "\":\"";
      AppendEscaped(out, value);
      out += '"';
    }
  }
  out += '}';
  return out;
}

void SetLogLevel(LogLevel level) {
  spdlog::default_logger()->set_level(spdlog::level::from_str(NameOf(level)));
}

void ConfigureLogging(LogFormat format, LogLevel level) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  const bool json =
      format == LogFormat::kJson || (format == LogFormat::kAuto && !isatty(STDERR_FILENO));
  if (json) {
    sink->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ %v", spdlog::pattern_time_type::utc));
  }
  auto logger = std::make_shared<spdlog::logger>("drgate", sink);
  logger->set_level(spdlog::level::from_str(NameOf(level)));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  gpr_set_log_function(LogFromGrpc);
}

}  // namespace drgate::plugin
