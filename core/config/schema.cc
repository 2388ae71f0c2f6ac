#include "core/config/schema.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/common/file.h"

namespace drgate {

StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text);  // config.h

namespace config {
namespace {

// Limits on the parsed YAML tree, counted with aliases expanded (yaml-cpp shares an aliased
// node; every use of it is walked, and read, again): a small file must not turn into gigabytes.
constexpr std::size_t kMaxYamlNodes = 100000;
constexpr std::size_t kMaxYamlScalarBytes = 4 << 20;
constexpr int kMaxYamlDepth = 64;

struct YamlBudget {
  std::size_t nodes = 0;
  std::size_t scalar_bytes = 0;
};

std::string Line(const YAML::Node& n) {
  return std::to_string(n.Mark().line + 1);
}

// Refuses what yaml-cpp accepts silently: a key repeated in one mapping (the first would win,
// so `auth: {mode: insecure}` before `auth: {mode: tokens}` would turn authentication off),
// non-scalar keys, and trees that aliases blow up past the limits above.
Status CheckYamlTree(const YAML::Node& node, const std::string& path, int depth,
                     YamlBudget& budget) {
  // `path` is "" at the top of the configuration, "auth.tokens_file: " at the top of another file.
  const bool top = path.empty() || path.back() == ' ';
  const std::string where =
      path.empty() ? "(top level)" : (top ? path.substr(0, path.size() - 2) : path);
  if (++budget.nodes > kMaxYamlNodes) {
    return Error(where, "line " + Line(node) + ": more than " + std::to_string(kMaxYamlNodes) +
                            " values once aliases are expanded; refused");
  }
  if (depth > kMaxYamlDepth) {
    return Error(where, "line " + Line(node) + ": nested deeper than " +
                            std::to_string(kMaxYamlDepth) + " levels; refused");
  }
  auto count = [&](const YAML::Node& scalar) -> Status {
    budget.scalar_bytes += scalar.Scalar().size();
    if (budget.scalar_bytes > kMaxYamlScalarBytes) {
      return Error(where, "more than " + std::to_string(kMaxYamlScalarBytes) +
                              " bytes of values once aliases are expanded (this value is "
                              "defined on line " +
                              Line(scalar) + "); refused");
    }
    return Status::Ok();
  };
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return count(node);
    case YAML::NodeType::Sequence: {
      std::size_t i = 0;
      for (const auto& item : node) {
        const std::string k = path + "[" + std::to_string(i) + "]";
        if (Status s = CheckYamlTree(item, k, depth + 1, budget); !s.ok()) return s;
        ++i;
      }
      return Status::Ok();
    }
    case YAML::NodeType::Map: {
      std::map<std::string, std::string> first_line;
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return Error(where, "line " + Line(kv.first) + ": keys must be plain names");
        }
        if (Status s = count(kv.first); !s.ok()) return s;
        const std::string& name = kv.first.Scalar();
        const std::string k = top ? path + name : path + "." + name;
        auto [it, inserted] = first_line.emplace(name, Line(kv.first));
        if (!inserted) {
          return Error(k, "duplicate key: first on line " + it->second + ", again on line " +
                              Line(kv.first));
        }
        if (Status s = CheckYamlTree(kv.second, k, depth + 1, budget); !s.ok()) return s;
      }
      return Status::Ok();
    }
    default: return Status::Ok();
  }
}

Status ValidateListen(const std::string& key, const std::string& value) {
  auto colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == value.size()) {
    return Error(key, "must be HOST:PORT, got \"" + value + "\"");
  }
  const std::string port = value.substr(colon + 1);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::stoi(port) > 65535) {
    return Error(key, "port must be 0-65535, got \"" + port + "\"");
  }
  return Status::Ok();
}

}  // namespace

Status Error(const std::string& key, const std::string& what) {
  return Status(StatusCode::kInvalidArgument, key + ": " + what, Reason::kConfigInvalid);
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty() || fs::path(path).is_absolute() || base_dir.empty()) return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

StatusOr<YAML::Node> LoadYaml(const std::string& text, const std::string& key) {
  if (text.size() > kMaxConfigFileBytes) {
    return Error(key.empty() ? "(top level)" : key,
                 "larger than " + std::to_string(kMaxConfigFileBytes) + " bytes; refused");
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return Error(key.empty() ? "(syntax)" : key,
                 "line " + std::to_string(e.mark.line + 1) + ", column " +
                     std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  YamlBudget budget;
  if (Status s = CheckYamlTree(root, key.empty() ? "" : key + ": ", 0, budget); !s.ok()) return s;
  return root;
}

StatusOr<Secret> ReadSecretFile(const std::string& key, const std::string& path) {
  auto content = ReadRegularFile(path, kMaxSecretFileBytes);
  if (!content.ok()) return Error(key, content.status().message());
  std::string s = std::move(*content);
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  if (s.empty()) return Error(key, "file " + path + " is empty");
  return Secret{std::move(s)};
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (unsigned char c : name) {
    if (!std::isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

Type<std::string> Listen() {
  return config::String("HOST:PORT", ValidateListen);
}

Type<std::string> Name() {
  return config::String("name", [](const std::string& key, const std::string& v) {
    if (ValidName(v)) return Status::Ok();
    return Error(key,
                 "must be 1-63 characters of letters, digits, '.', '_' or '-', got \"" + v + "\"");
  });
}

namespace {

// Sets each override's dotted key in the YAML tree (creating maps on the way).
Status ApplyOverrides(YAML::Node& root, const std::vector<Override>& overrides) {
  for (const auto& o : overrides) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
      const std::size_t dot = o.key.find('.', start);
      parts.push_back(o.key.substr(start, dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    std::vector<YAML::Node> path = {root};
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      YAML::Node next = path.back()[parts[i]];
      if (!next.IsMap()) {
        path.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
        next = path.back()[parts[i]];
      }
      path.push_back(next);
    }
    path.back()[parts.back()] = o.value;
  }
  return Status::Ok();
}

}  // namespace

StatusOr<YAML::Node> LoadDocument(const std::string& yaml_text,
                                  const std::vector<Override>& overrides) {
  auto loaded = LoadYaml(yaml_text, "");
  if (!loaded.ok()) return loaded.status();
  YAML::Node root = *loaded;
  if (!root || root.IsNull()) return Error("(top level)", "the configuration is empty");
  try {
    if (!root.IsMap()) return Error("(top level)", "must be a map");
    if (Status s = ApplyOverrides(root, overrides); !s.ok()) return s;
  } catch (const YAML::Exception& e) {
    return Error("(structure)", e.msg);
  }
  return root;
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

const char* ApplyName(Apply apply) {
  return apply == Apply::kRestart ? "restart" : "live";
}

std::string RenderReference(const std::vector<DocRow>& rows,
                            const std::vector<std::string>& rules) {
  std::ostringstream md;
  md << "| Key | Type | Default | Applied | Description |\n|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    md << "| `" << r.key << "` | " << Cell(r.type) << " | "
       << (r.default_value.empty() ? "" : "`" + Cell(r.default_value) + "`") << " | "
       << ApplyName(r.apply) << " | " << Cell(r.doc) << " |\n";
  }
  if (!rules.empty()) {
    md << "\nRules across keys:\n\n";
    for (const auto& r : rules) md << "- " << r << "\n";
  }
  return md.str();
}

}  // namespace config
}  // namespace drgate
