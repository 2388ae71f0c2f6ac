// Fuzzes the configuration parsers (the whole file, and the core's keys alone), the auth tokens
// file parser and durations. The input is the file's text. File paths in it resolve against an
// empty temporary folder, so relative names read nothing; the parser must answer every input with
// a config or an error naming a key.

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/config/config.h"
#include "plugin/server_config.h"

namespace {

const std::string& BaseDir() {
  static const std::string dir = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "drgate-fuzz-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    return pattern;
  }();
  return dir;
}

void CheckError(const drgate::Status& s) {
  if (s.ok()) return;
  // Every error is INVALID_ARGUMENT with a message that starts with the key (never empty).
  if (s.code() != drgate::StatusCode::kInvalidArgument || s.message().empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = drgate::plugin::ParseServerConfig(text, BaseDir());
  if (!config.ok()) CheckError(config.status());
  auto core = drgate::ParseConfig(text, BaseDir());
  if (!core.ok()) CheckError(core.status());
  auto tokens = drgate::plugin::ParseTokensFile(text, "auth.tokens_file", {"prod", "dr-site"});
  if (!tokens.ok()) CheckError(tokens.status());
  if (size < 64) {
    auto d = drgate::ParseDuration(text);
    if (d.ok() && d->count() < 0) std::abort();
  }
  return 0;
}
