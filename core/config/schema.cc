#include "core/config/schema.h"

#include <filesystem>
#include <sstream>

#include "core/common/file.h"

namespace drgate {

StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text);  // config.h

namespace config {

Status Error(const std::string& key, const std::string& what) {
  return Status(StatusCode::kInvalidArgument, key + ": " + what, Reason::kConfigInvalid);
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty() || fs::path(path).is_absolute() || base_dir.empty()) return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

Type<std::string> String(std::string name,
                         std::function<Status(const std::string& key, const std::string&)> check) {
  return Type<std::string>{
      std::move(name),
      [check](const YAML::Node& n, const std::string& key, const Context&, std::string& out) {
        if (!n.IsScalar()) return Error(key, "must be a string");
        if (check) {
          if (Status s = check(key, n.Scalar()); !s.ok()) return s;
        }
        out = n.Scalar();
        return Status::Ok();
      },
      [](const std::string& v) { return v; }, nullptr};
}

Type<bool> Bool() {
  return Type<bool>{"boolean",
                    [](const YAML::Node& n, const std::string& key, const Context&, bool& out) {
                      try {
                        if (!n.IsScalar()) return Error(key, "must be true or false");
                        out = n.as<bool>();
                      } catch (const YAML::Exception&) {
                        return Error(key, "must be true or false");
                      }
                      return Status::Ok();
                    },
                    [](const bool& v) { return std::string(v ? "true" : "false"); }, nullptr};
}

Type<std::chrono::milliseconds> Duration(std::chrono::milliseconds min) {
  std::string name = "duration";
  if (min.count() > 0) name += " >= " + FormatDuration(min);
  return Type<std::chrono::milliseconds>{
      name,
      [min](const YAML::Node& n, const std::string& key, const Context&,
            std::chrono::milliseconds& out) {
        if (!n.IsScalar()) return Error(key, "must be a duration such as 30s");
        auto d = ParseDuration(n.Scalar());
        if (!d.ok()) return Error(key, d.status().message());
        if (*d < min) {
          return Error(key, min.count() <= 1 ? std::string("must be > 0")
                                             : "must be at least " + FormatDuration(min));
        }
        out = *d;
        return Status::Ok();
      },
      [](const std::chrono::milliseconds& d) { return FormatDuration(d); }, nullptr};
}

Type<std::string> FilePath(bool pem) {
  return Type<std::string>{
      pem ? "file (PEM)" : "file",
      [pem](const YAML::Node& n, const std::string& key, const Context& ctx, std::string& out) {
        if (!n.IsScalar()) return Error(key, "must be a string");
        out = Resolve(ctx.base_dir, n.Scalar());
        if (pem && !out.empty()) {
          auto content = ReadRegularFile(out, kMaxPemFileBytes);
          if (!content.ok()) return Error(key, content.status().message());
        }
        return Status::Ok();
      },
      [](const std::string& v) { return v; }, nullptr};
}

std::string FormatDuration(std::chrono::milliseconds d) {
  long long ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  for (const auto& [unit, size] :
       {std::pair{"d", 86400000LL}, {"h", 3600000LL}, {"m", 60000LL}, {"s", 1000LL}}) {
    if (ms >= size && (ms % size == 0 || std::string(unit) != "d")) {
      out += std::to_string(ms / size) + unit;
      ms %= size;
    }
  }
  if (ms > 0) out += std::to_string(ms) + "ms";
  return out;
}

namespace {

std::string Cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string RenderReference(const std::vector<DocRow>& rows,
                            const std::vector<std::string>& rules) {
  std::ostringstream md;
  md << "| Key | Type | Default | Description |\n|---|---|---|---|\n";
  for (const auto& r : rows) {
    md << "| `" << r.key << "` | " << Cell(r.type) << " | "
       << (r.default_value.empty() ? "" : "`" + Cell(r.default_value) + "`") << " | " << Cell(r.doc)
       << " |\n";
  }
  if (!rules.empty()) {
    md << "\nRules across keys:\n\n";
    for (const auto& r : rules) md << "- " << r << "\n";
  }
  return md.str();
}

}  // namespace config
}  // namespace drgate
