#pragma once

// The declaration mechanism behind drgate's configuration: each key is declared once, in a
// Section table, with its name, type (which parses and validates it), the member it lands in and
// its documentation. Parsing, unknown-key detection, "is required" errors and the generated
// reference (drgate --config-reference) all come from that one declaration. Defaults are the
// member initialisers of the struct the section fills; the reference prints them from a
// default-constructed struct, so the documented default cannot drift from the real one. A
// section can embed another library's section (Section::Embed), so each key is declared by the
// code that uses it and the file is still parsed, and documented, in one pass.
//
// Every key also says when a change of it takes effect (Apply): on a reload (live) or only after
// a restart. A Section is made with the mark of its keys and a key that differs says so
// (Section::Restart/Live after its Add), so no key is without one; the reference shows it, and
// Section::Diff tells a reload which changed keys wait for a restart.
//
// Errors are INVALID_ARGUMENT (reason CONFIG_INVALID) whose message starts with the key path
// ("commcells[1].retry.max_attempts: must be 1-10, got 0").

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/common/secret.h"
#include "core/common/status.h"

namespace drgate::config {

Status Error(const std::string& key, const std::string& what);

// `path` resolved against `base_dir` (absolute paths and an empty base_dir leave it as is).
std::string Resolve(const std::string& base_dir, const std::string& path);

// A value given on the command line in place of the file's, e.g. {"grpc.listen", "127.0.0.1:0"}:
// set in the YAML tree before it is parsed, so it is validated, and named in errors, exactly as
// the key in the file would be.
struct Override {
  std::string key;  // dotted path of a scalar key
  std::string value;
};

// Parses a YAML file's text and refuses what yaml-cpp accepts silently: a key repeated in one
// mapping (the first would win), non-scalar keys, more than 1 MiB of text, and trees that
// aliases blow up (more than 100,000 values, 4 MiB of values or 64 levels once expanded).
// `key` names the file in errors ("auth.tokens_file"); empty for the configuration itself.
StatusOr<YAML::Node> LoadYaml(const std::string& text, const std::string& key);

// LoadYaml for the configuration itself, which must be a non-empty map, with `overrides` set in
// it: the tree a root Section then parses.
StatusOr<YAML::Node> LoadDocument(const std::string& yaml_text,
                                  const std::vector<Override>& overrides);

// Reads a secret file: the whole content with surrounding white space removed. Only a regular
// file of at most kMaxSecretFileBytes is read (never a FIFO or a device); errors name `key`.
StatusOr<Secret> ReadSecretFile(const std::string& key, const std::string& path);

// A name drgate gives things (CommCells, caller identities): 1-63 letters, digits, '.', '_', '-'.
bool ValidName(const std::string& name);

// What parsing needs besides the YAML: the folder relative file names resolve against.
struct Context {
  std::string base_dir;
};

// When a changed key takes effect.
enum class Apply {
  kLive,     // on a reload (SIGHUP, a change of the file)
  kRestart,  // only after a restart; a reload says it waits
};

// "live" or "restart", as the reference writes it.
const char* ApplyName(Apply apply);

// One row of the generated reference.
struct DocRow {
  std::string key;            // "commcells[].retry.max_attempts"
  std::string type;           // "integer 1-10"
  std::string default_value;  // "3"; empty: no default
  std::string doc;
  Apply apply = Apply::kLive;
};

// A key whose value differs between two configurations (Section::Diff).
struct Change {
  std::string key;  // "grpc.listen", "tracking.poll_interval"
  Apply apply;
  bool operator==(const Change&) const = default;
};

// How to read one value of type T from YAML: `parse` validates (errors name `key`), `show`
// formats a default for the reference, `rows` documents a nested section, `diff` lists what
// differs between two values (null: the whole value is compared with ==, one key).
template <typename T>
struct Type {
  std::string name;
  std::function<Status(const YAML::Node&, const std::string& key, const Context&, T&)> parse;
  std::function<std::string(const T&)> show;
  std::function<void(const std::string& prefix, std::vector<DocRow>&)> rows;
  std::function<void(const T&, const T&, const std::string& key, Apply, std::vector<Change>&)>
      diff = nullptr;
};

// The keys of one YAML mapping, filling a struct S.
template <typename S>
class Section {
 public:
  // `apply`: when a change of this section's keys takes effect, unless a key says otherwise.
  explicit Section(Apply apply) : apply_(apply) {}

  // Declares a key whose value lands in `field(s)`.
  template <typename T, typename Field>
  Section& Add(std::string name, Type<T> type, Field field, std::string doc) {
    return AddKey(std::move(name), std::move(type), std::move(field), std::move(doc), "");
  }
  // A key that must be present; `hint` follows "is required" in the error.
  template <typename T, typename Field>
  Section& Require(std::string name, Type<T> type, Field field, std::string doc,
                   std::string hint = "") {
    return AddKey(std::move(name), std::move(type), std::move(field), std::move(doc),
                  hint.empty() ? "is required" : "is required: " + hint);
  }
  // The key declared last takes effect only after a restart / on a reload.
  Section& Restart() {
    keys_.back().apply = Apply::kRestart;
    return *this;
  }
  Section& Live() {
    keys_.back().apply = Apply::kLive;
    return *this;
  }

  // Appends to `out` every key whose value differs between `a` and `b` (a nested section's keys
  // one by one; a section that is present in only one of them as itself).
  void Diff(const S& a, const S& b, const std::string& prefix, std::vector<Change>& out) const {
    for (const auto& k : keys_) k.diff(a, b, Join(prefix, k.name), k.apply, out);
  }

  // A rule across keys, checked (and free to complete `s`, e.g. derive a default) after every
  // key of the section was read. `doc` goes to the reference.
  Section& Rule(std::string doc,
                std::function<Status(S&, const std::string& prefix, const Context&)> check) {
    rules_.push_back({std::move(doc), std::move(check)});
    return *this;
  }

  Status Parse(const YAML::Node& node, const std::string& prefix, const Context& ctx,
               S& out) const {
    const std::string where = prefix.empty() ? "(top level)" : prefix;
    if (!node.IsMap()) return Error(where, "must be a map");
    for (const auto& kv : node) {
      const std::string name = kv.first.Scalar();
      bool known = false;
      for (const auto& k : keys_) known = known || k.name == name;
      if (!known) return Error(Join(prefix, name), "unknown key");
    }
    for (const auto& k : keys_) {
      const YAML::Node value = node[k.name];
      if (!value) {
        if (!k.required.empty()) return Error(Join(prefix, k.name), k.required);
        continue;
      }
      if (Status s = k.parse(value, Join(prefix, k.name), ctx, out); !s.ok()) return s;
    }
    for (const auto& r : rules_) {
      if (Status s = r.check(out, prefix, ctx); !s.ok()) return s;
    }
    return Status::Ok();
  }

  void Document(const std::string& prefix, std::vector<DocRow>& rows,
                std::vector<std::string>& rules) const {
    const S defaults{};
    for (const auto& k : keys_) {
      const std::size_t first = rows.size();
      k.document(Join(prefix, k.name), defaults, rows, rules);
      if (first < rows.size()) rows[first].apply = k.apply;
    }
    for (const auto& r : rules_) {
      if (!r.doc.empty()) rules.push_back((prefix.empty() ? "" : "`" + prefix + "`: ") + r.doc);
    }
  }

  // Adds every key and rule of `base`, a section filling the part `part(s)` of S: a front end
  // declares its own keys around the ones a library declares, in one file and one reference.
  template <typename B, typename Part>
  Section& Embed(const Section<B>& base, Part part) {
    for (const auto& k : base.keys_) {
      Key key;
      key.name = k.name;
      key.required = k.required;
      key.apply = k.apply;
      key.diff = [diff = k.diff, part](const S& a, const S& b, const std::string& name, Apply apply,
                                       std::vector<Change>& out) {
        diff(part(const_cast<S&>(a)), part(const_cast<S&>(b)), name, apply, out);
      };
      key.parse = [parse = k.parse, part](const YAML::Node& n, const std::string& name,
                                          const Context& ctx,
                                          S& out) { return parse(n, name, ctx, part(out)); };
      key.document = [document = k.document, part](const std::string& name, const S& defaults,
                                                   std::vector<DocRow>& rows,
                                                   std::vector<std::string>& rules) {
        S copy = defaults;
        document(name, part(copy), rows, rules);
      };
      keys_.push_back(std::move(key));
    }
    for (const auto& r : base.rules_) {
      rules_.push_back(
          {r.doc, [check = r.check, part](S& s, const std::string& prefix, const Context& ctx) {
             return check(part(s), prefix, ctx);
           }});
    }
    return *this;
  }

  // Type<S> for a nested mapping filled by this section.
  Type<S> AsType() const {
    auto self = std::make_shared<Section<S>>(*this);
    return Type<S>{"map",
                   [self](const YAML::Node& n, const std::string& key, const Context& ctx, S& out) {
                     return self->Parse(n, key, ctx, out);
                   },
                   nullptr,
                   [self](const std::string& prefix, std::vector<DocRow>& rows) {
                     std::vector<std::string> rules;
                     self->Document(prefix, rows, rules);
                     for (auto& r : rules) rows.push_back({"", "rule", "", std::move(r)});
                   },
                   [self](const S& a, const S& b, const std::string& key, Apply,
                          std::vector<Change>& out) { self->Diff(a, b, key, out); }};
  }

  static std::string Join(const std::string& prefix, const std::string& name) {
    return prefix.empty() ? name : prefix + "." + name;
  }

 private:
  template <typename>
  friend class Section;

  struct Key {
    std::string name;
    std::string required;  // empty: optional; else the error when absent
    Apply apply = Apply::kLive;
    std::function<void(const S&, const S&, const std::string& key, Apply, std::vector<Change>&)>
        diff;
    std::function<Status(const YAML::Node&, const std::string&, const Context&, S&)> parse;
    std::function<void(const std::string& key, const S& defaults, std::vector<DocRow>&,
                       std::vector<std::string>&)>
        document;
  };
  struct RuleEntry {
    std::string doc;
    std::function<Status(S&, const std::string&, const Context&)> check;
  };

  template <typename T, typename Field>
  Section& AddKey(std::string name, Type<T> type, Field field, std::string doc,
                  std::string required) {
    auto t = std::make_shared<Type<T>>(std::move(type));
    Key k;
    k.name = std::move(name);
    k.required = std::move(required);
    k.apply = apply_;
    // The field accessors take S&; Diff only reads through them.
    k.diff = [t, field](const S& a, const S& b, const std::string& key, Apply apply,
                        std::vector<Change>& out) {
      const T& va = field(const_cast<S&>(a));
      const T& vb = field(const_cast<S&>(b));
      if (t->diff) {
        t->diff(va, vb, key, apply, out);
      } else if (!(va == vb)) {
        out.push_back({key, apply});
      }
    };
    k.parse = [t, field](const YAML::Node& n, const std::string& key, const Context& ctx, S& out) {
      return t->parse(n, key, ctx, field(out));
    };
    const bool must = !k.required.empty();
    k.document = [t, field, must, doc = std::move(doc)](const std::string& key, const S& defaults,
                                                        std::vector<DocRow>& rows,
                                                        std::vector<std::string>& rules) {
      S copy = defaults;
      const std::string shown = t->show && !must ? t->show(field(copy)) : "";
      rows.push_back({key, t->name, shown, must ? "Required. " + doc : doc});
      if (t->rows) {
        std::vector<DocRow> nested;
        t->rows(key, nested);
        for (auto& r : nested) {
          if (r.key.empty()) {
            rules.push_back(std::move(r.doc));
          } else {
            rows.push_back(std::move(r));
          }
        }
      }
    };
    keys_.push_back(std::move(k));
    return *this;
  }

  Apply apply_;
  std::vector<Key> keys_;
  std::vector<RuleEntry> rules_;
};

// The value types keys are declared with.

Type<std::string> String(
    std::string name = "string",
    std::function<Status(const std::string& key, const std::string&)> check = nullptr);
Type<bool> Bool();
Type<std::chrono::milliseconds> Duration(std::chrono::milliseconds min);
// An integer in [lo, hi]; `note` follows the range in errors ("1 = no retries").
template <typename T>
Type<T> Integer(T lo, T hi, std::string note = "");
// A file name, resolved against the configuration's folder. With `pem`: the file must be a
// readable regular file of at most kMaxPemFileBytes (its content is checked where it is loaded).
Type<std::string> FilePath(bool pem);
// A list of values of type T; at least `min` entries (`min_error` otherwise).
template <typename T>
Type<std::vector<T>> List(Type<T> item, std::size_t min, std::string min_error);
// A section that may be absent (std::nullopt) or present (filled from a default T).
template <typename T>
Type<std::optional<T>> Optional(Type<T> inner);
// HOST:PORT with a port 0-65535 (0: any free port).
Type<std::string> Listen();
// A name (ValidName).
Type<std::string> Name();

// A secret file: `path(s)` gets the resolved name and `secret(s)` the trimmed content
// (ReadSecretFile).
template <typename S, typename PathField, typename SecretField>
Type<S> SecretFile(PathField path, SecretField secret) {
  return Type<S>{
      "file (secret)",
      [path, secret](const YAML::Node& n, const std::string& key, const Context& ctx, S& out) {
        if (!n.IsScalar()) return Error(key, "must be a string");
        path(out) = Resolve(ctx.base_dir, n.Scalar());
        if (path(out).empty()) return Error(key, "must not be empty");
        auto s = ReadSecretFile(key, path(out));
        if (!s.ok()) return s.status();
        secret(out) = std::move(*s);
        return Status::Ok();
      },
      nullptr, nullptr,
      [path, secret](const S& a, const S& b, const std::string& key, Apply apply,
                     std::vector<Change>& out) {
        S& ma = const_cast<S&>(a);
        S& mb = const_cast<S&>(b);
        if (path(ma) != path(mb) || !(secret(ma) == secret(mb))) out.push_back({key, apply});
      }};
}

// The field accessor of a key whose type fills the whole struct (a nested section sharing it).
template <typename S>
auto Self() {
  return [](S& s) -> S& { return s; };
}

// Parses a whole configuration document (LoadDocument) with the section `root`.
template <typename S>
StatusOr<S> ParseDocument(const Section<S>& root, const std::string& yaml_text,
                          const std::string& base_dir, const std::vector<Override>& overrides) {
  auto doc = LoadDocument(yaml_text, overrides);
  if (!doc.ok()) return doc.status();
  S out;
  try {
    if (Status s = root.Parse(*doc, "", Context{base_dir}, out); !s.ok()) return s;
  } catch (const YAML::Exception& e) {
    return Error("(structure)", e.msg);
  }
  return out;
}

// One of a fixed set of names, parsed into an enum when the file is read.
template <typename E>
Type<E> Choice(std::vector<std::pair<std::string, E>> names) {
  std::string list;
  for (std::size_t i = 0; i < names.size(); ++i) {
    list += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i].first;
  }
  std::string type;
  for (const auto& [n, e] : names) type += (type.empty() ? "" : " \\| ") + n;
  auto table = std::make_shared<std::vector<std::pair<std::string, E>>>(std::move(names));
  return Type<E>{
      type,
      [table, list](const YAML::Node& n, const std::string& key, const Context&, E& out) {
        if (!n.IsScalar()) return Error(key, "must be " + list);
        for (const auto& [name, e] : *table) {
          if (n.Scalar() == name) {
            out = e;
            return Status::Ok();
          }
        }
        return Error(key, "must be " + list + ", got \"" + n.Scalar() + "\"");
      },
      [table](const E& e) {
        for (const auto& [name, v] : *table) {
          if (v == e) return name;
        }
        return std::string();
      },
      nullptr};
}

template <typename T>
Type<T> Integer(T lo, T hi, std::string note) {
  const std::string range = std::to_string(lo) + "-" + std::to_string(hi);
  return Type<T>{
      "integer " + range,
      [lo, hi, range, note](const YAML::Node& n, const std::string& key, const Context&, T& out) {
        T v{};
        try {
          if (!n.IsScalar()) return Error(key, "has the wrong type");
          v = n.as<T>();
        } catch (const YAML::Exception&) {
          return Error(key, "has the wrong type");
        }
        if (v < lo || v > hi) {
          return Error(key, "must be " + range + note + ", got " + std::to_string(v));
        }
        out = v;
        return Status::Ok();
      },
      [](const T& v) { return std::to_string(v); }, nullptr};
}

template <typename T>
Type<std::vector<T>> List(Type<T> item, std::size_t min, std::string min_error) {
  auto t = std::make_shared<Type<T>>(std::move(item));
  return Type<std::vector<T>>{
      "list of " + t->name,
      [t, min, min_error](const YAML::Node& n, const std::string& key, const Context& ctx,
                          std::vector<T>& out) {
        out.clear();
        if (n.IsNull() || (n.IsSequence() && n.size() < min)) {
          return min == 0 ? Status::Ok() : Error(key, min_error);
        }
        if (!n.IsSequence()) return Error(key, "must be a list");
        for (std::size_t i = 0; i < n.size(); ++i) {
          T v{};
          if (Status s = t->parse(n[i], key + "[" + std::to_string(i) + "]", ctx, v); !s.ok()) {
            return s;
          }
          out.push_back(std::move(v));
        }
        return Status::Ok();
      },
      nullptr,
      t->rows ? std::function<void(const std::string&, std::vector<DocRow>&)>(
                    [t](const std::string& prefix, std::vector<DocRow>& rows) {
                      t->rows(prefix + "[]", rows);
                    })
              : nullptr};
}

template <typename T>
Type<std::optional<T>> Optional(Type<T> inner) {
  auto t = std::make_shared<Type<T>>(std::move(inner));
  return Type<std::optional<T>>{
      t->name + " (optional)",
      [t](const YAML::Node& n, const std::string& key, const Context& ctx, std::optional<T>& out) {
        T v{};
        if (Status s = t->parse(n, key, ctx, v); !s.ok()) return s;
        out = std::move(v);
        return Status::Ok();
      },
      nullptr, t->rows,
      [t](const std::optional<T>& a, const std::optional<T>& b, const std::string& key, Apply apply,
          std::vector<Change>& out) {
        if (a.has_value() != b.has_value()) {
          out.push_back({key, apply});  // added or removed
        } else if (a && t->diff) {
          t->diff(*a, *b, key, apply, out);
        } else if (a && !(*a == *b)) {
          out.push_back({key, apply});
        }
      }};
}

// "30s", "500ms", "1h30m" for the reference.
std::string FormatDuration(std::chrono::milliseconds d);

// Markdown for a set of top-level sections' rows and rules.
std::string RenderReference(const std::vector<DocRow>& rows, const std::vector<std::string>& rules);

}  // namespace drgate::config
