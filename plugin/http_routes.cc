#include "plugin/http_routes.h"

#include <google/api/annotations.pb.h>
#include <google/api/http.pb.h>
#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

#include "drgate/v1/drgate.pb.h"

#include <cctype>
#include <set>

namespace drgate::plugin {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// The length of the UTF-8 sequence at the start of `text` (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF); 0 when it is not one.
std::size_t Utf8SequenceLength(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char c = byte(0);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;  // overlong
    if (c == 0xed) hi = 0x9f;  // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;  // overlong
    if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
  } else {
    return 0;
  }
  if (text.size() < n || byte(1) < lo || byte(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
  }
  return n;
}

bool ValidUtf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = Utf8SequenceLength(text.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Messages echo what the client sent (a path variable, a query key, protobuf's quote of a JSON
// body) and become a proto3 string (google.rpc.Status.message): each byte that is not part of
// valid UTF-8 is written as U+FFFD.
Status Invalid(const std::string& message) {
  if (ValidUtf8(message)) return InvalidArgument(message);
  std::string valid;
  for (std::size_t i = 0; i < message.size();) {
    const std::size_t n = Utf8SequenceLength(std::string_view(message).substr(i));
    if (n == 0) {
      valid += "\xEF\xBF\xBD";
      ++i;
    } else {
      valid.append(message, i, n);
      i += n;
    }
  }
  return InvalidArgument(valid);
}

bool ValidFieldName(std::string_view name) {
  if (name.empty() || !(std::islower(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
    return false;
  }
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '_')) {
      return false;
    }
  }
  return true;
}

std::vector<std::string_view> Split(std::string_view text, char by) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = text.find(by, start);
    parts.push_back(text.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A query component: '+' is a space (application/x-www-form-urlencoded), then %XX.
std::optional<std::string> QueryDecode(std::string_view text) {
  std::string plus(text);
  for (char& c : plus) {
    if (c == '+') c = ' ';
  }
  return PercentDecode(plus);
}

const FieldDescriptor* FieldByName(const Descriptor& type, const std::string& name) {
  if (const FieldDescriptor* f = type.FindFieldByName(name)) return f;
  return type.FindFieldByCamelcaseName(name);
}

// Appends `value` to `json` as the JSON of one value of `field`: a literal for booleans, a JSON
// string otherwise (proto3's JSON mapping reads numbers, enums, Timestamps and Durations from
// strings).
Status AppendJsonValue(const FieldDescriptor& field, const std::string& value, std::string& json) {
  if (field.cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
    if (value != "true" && value != "false") {
      return Invalid(field.json_name() + ": must be true or false, got \"" + value + "\"");
    }
    json += value;
    return Status::Ok();
  }
  if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    const std::string& full = field.message_type()->full_name();
    if (full != "google.protobuf.Timestamp" && full != "google.protobuf.Duration") {
      return Invalid(field.json_name() + ": cannot be given as a query parameter");
    }
  }
  json += '"';
  for (char c : value) {
    switch (c) {
      case '"': json += "\\\""; break;
      case '\\': json += "\\\\"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static const char* kHex = "0123456789abcdef";
          json += "\\u00";
          json += kHex[(c >> 4) & 0xf];
          json += kHex[c & 0xf];
        } else {
          json += c;
        }
    }
  }
  json += '"';
  return Status::Ok();
}

Status ParseJson(std::string_view json, Message& into, const std::string& what) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &into, options);
  if (!status.ok()) {
    return Invalid(what + ": " + std::string(status.message()));
  }
  return Status::Ok();
}

// What protobuf's JSON parser is lenient about and proto3's JSON mapping is not, checked before
// it runs: a key given twice in one object (protobuf keeps the last one), a boolean given as
// anything but true/false ("yes", "1"), an enum given as a string that is not one of its value
// names ("1"), and a string field given a number or a boolean. Unknown fields, number ranges and
// formats (Timestamps, Durations) stay protobuf's to judge.
class StrictJson {
 public:
  // OK, or INVALID_ARGUMENT naming the field ("body: backupType: ...").
  static Status Check(std::string_view text, const Descriptor& type) {
    StrictJson check;
    nlohmann::json doc = nlohmann::json::parse(
        text.begin(), text.end(),
        [&check](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
          return check.OnEvent(depth, event, parsed);
        },
        /*allow_exceptions=*/false);
    if (!check.duplicate_.empty()) {
      return Invalid("body: " + check.duplicate_ + ": given more than once");
    }
    if (doc.is_discarded()) return Status::Ok();  // malformed: protobuf's parser says where
    if (!doc.is_object()) return Invalid("body: must be a JSON object");
    return CheckObject(doc, type, "");
  }

 private:
  bool OnEvent(int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    switch (event) {
      case Event::object_start: objects_.emplace_back(); break;
      case Event::object_end:
        if (!objects_.empty()) objects_.pop_back();
        break;
      case Event::key:
        if (!objects_.empty() && parsed.is_string()) {
          const std::string& key = parsed.get_ref<const std::string&>();
          if (!objects_.back().insert(key).second && duplicate_.empty()) duplicate_ = key;
        }
        break;
      default: break;
    }
    return true;
  }

  static Status CheckObject(const nlohmann::json& object, const Descriptor& type,
                            const std::string& prefix) {
    for (const auto& [key, value] : object.items()) {
      const FieldDescriptor* field = FieldByName(type, key);
      if (field == nullptr) continue;         // protobuf names the unknown field
      const std::string name = prefix + key;  // as the client wrote it
      if (field->is_map()) continue;
      if (field->is_repeated() && !value.is_null()) {
        if (!value.is_array()) return Invalid("body: " + name + ": must be a JSON array");
        for (std::size_t i = 0; i < value.size(); ++i) {
          if (Status s = CheckValue(value[i], *field, name + "[" + std::to_string(i) + "]");
              !s.ok()) {
            return s;
          }
        }
        continue;
      }
      if (Status s = CheckValue(value, *field, name); !s.ok()) return s;
    }
    return Status::Ok();
  }

  static Status CheckValue(const nlohmann::json& value, const FieldDescriptor& field,
                           const std::string& name) {
    if (value.is_null()) return Status::Ok();  // proto3 JSON: null is the field's default
    switch (field.cpp_type()) {
      case FieldDescriptor::CPPTYPE_BOOL:
        if (!value.is_boolean()) return Invalid("body: " + name + ": must be true or false");
        return Status::Ok();
      case FieldDescriptor::CPPTYPE_ENUM: {
        if (value.is_number_integer()) return Status::Ok();
        const auto& type = *field.enum_type();
        if (value.is_string() &&
            type.FindValueByName(value.get_ref<const std::string&>()) != nullptr) {
          return Status::Ok();
        }
        std::string names;
        for (int i = 0; i < type.value_count(); ++i) {
          names += (i == 0 ? "" : ", ") + type.value(i)->name();
        }
        return Invalid("body: " + name + ": must be one of " + names + ", or its number");
      }
      case FieldDescriptor::CPPTYPE_STRING:
        if (!value.is_string()) return Invalid("body: " + name + ": must be a JSON string");
        return Status::Ok();
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        const std::string& full = field.message_type()->full_name();
        if (full == "google.protobuf.Timestamp" || full == "google.protobuf.Duration") {
          if (!value.is_string()) {
            return Invalid("body: " + name + ": must be a JSON string (" +
                           (full == "google.protobuf.Duration" ? "\"30s\"" : "RFC 3339") + ")");
          }
          return Status::Ok();
        }
        if (full.rfind("google.protobuf.", 0) == 0) return Status::Ok();  // other well-known
        if (!value.is_object()) return Invalid("body: " + name + ": must be a JSON object");
        return CheckObject(value, *field.message_type(), name + ".");
      }
      default:  // numbers: a JSON number, or a string of one (proto3 JSON allows both)
        if (!value.is_number() && !value.is_string()) {
          return Invalid("body: " + name + ": must be a number");
        }
        return Status::Ok();
    }
  }

  std::vector<std::set<std::string>> objects_;  // the keys seen in each open object
  std::string duplicate_;                       // the first key seen twice
};

}  // namespace

std::optional<std::string> PercentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int hi = HexValue(text[i + 1]);
    const int lo = HexValue(text[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

StatusOr<PathTemplate> PathTemplate::Parse(std::string_view text) {
  const std::string where = "path template \"" + std::string(text) + "\"";
  if (text.empty() || text[0] != '/') return Invalid(where + ": must start with '/'");
  PathTemplate t;
  t.text_ = std::string(text);
  std::string_view rest = text.substr(1);
  // The verb: after the last ':' of the last segment (outside a variable).
  const std::size_t last_slash = rest.rfind('/');
  const std::size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash) &&
      rest.find('}', colon) == std::string_view::npos) {
    t.verb_ = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (t.verb_.empty()) return Invalid(where + ": empty verb");
  }
  std::set<std::string> seen;
  for (std::string_view part : Split(rest, '/')) {
    if (part.empty()) return Invalid(where + ": empty segment");
    Segment s;
    if (part.front() == '{') {
      if (part.back() != '}') return Invalid(where + ": unclosed variable");
      s.variable = true;
      s.text = std::string(part.substr(1, part.size() - 2));
      if (!ValidFieldName(s.text)) {
        return Invalid(where + ": variable \"" + s.text + "\" is not a plain field name");
      }
      if (!seen.insert(s.text).second) return Invalid(where + ": variable " + s.text + " twice");
    } else {
      if (part.find_first_of("{}:*") != std::string_view::npos) {
        return Invalid(where + ": segment \"" + std::string(part) + "\" is not supported");
      }
      s.text = std::string(part);
    }
    t.segments_.push_back(std::move(s));
  }
  return t;
}

std::optional<std::map<std::string, std::string>> PathTemplate::Match(std::string_view path) const {
  if (path.empty() || path[0] != '/') return std::nullopt;
  std::string_view rest = path.substr(1);
  if (!verb_.empty()) {
    const std::size_t last_slash = rest.rfind('/');
    const std::size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos ||
        (last_slash != std::string_view::npos && colon < last_slash) ||
        rest.substr(colon + 1) != verb_) {
      return std::nullopt;
    }
    rest = rest.substr(0, colon);
  }
  const std::vector<std::string_view> parts = Split(rest, '/');
  if (parts.size() != segments_.size()) return std::nullopt;
  std::map<std::string, std::string> variables;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const Segment& s = segments_[i];
    if (!s.variable) {
      if (parts[i] != s.text) return std::nullopt;
      continue;
    }
    if (parts[i].empty()) return std::nullopt;
    // A ':' left in a variable of a route without a verb is someone else's verb.
    if (verb_.empty() && i + 1 == parts.size() && parts[i].find(':') != std::string_view::npos) {
      return std::nullopt;
    }
    auto decoded = PercentDecode(parts[i]);
    if (!decoded || decoded->empty()) return std::nullopt;
    variables[s.text] = std::move(*decoded);
  }
  return variables;
}

std::vector<std::string> PathTemplate::variables() const {
  std::vector<std::string> names;
  for (const Segment& s : segments_) {
    if (s.variable) names.push_back(s.text);
  }
  return names;
}

StatusOr<std::vector<Route>> RoutesOf(const google::protobuf::ServiceDescriptor& service) {
  std::vector<Route> routes;
  for (int m = 0; m < service.method_count(); ++m) {
    const google::protobuf::MethodDescriptor* method = service.method(m);
    if (!method->options().HasExtension(google::api::http)) continue;
    const google::api::HttpRule& rule = method->options().GetExtension(google::api::http);
    std::vector<const google::api::HttpRule*> rules = {&rule};
    for (const auto& extra : rule.additional_bindings()) rules.push_back(&extra);
    for (const google::api::HttpRule* r : rules) {
      const std::string where = method->full_name();
      Route route;
      route.method = method;
      std::string pattern;
      switch (r->pattern_case()) {
        case google::api::HttpRule::kGet:
          route.http_method = "GET";
          pattern = r->get();
          break;
        case google::api::HttpRule::kPost:
          route.http_method = "POST";
          pattern = r->post();
          break;
        default: return Invalid(where + ": only get and post routes are supported");
      }
      if (r->body() != "" && r->body() != "*") {
        return Invalid(where + ": body must be \"*\" or absent, got \"" + r->body() + "\"");
      }
      route.body = r->body();
      auto parsed = PathTemplate::Parse(pattern);
      if (!parsed.ok()) return Invalid(where + ": " + parsed.status().message());
      route.path = std::move(*parsed);
      for (const std::string& v : route.path.variables()) {
        const FieldDescriptor* f = method->input_type()->FindFieldByName(v);
        if (f == nullptr || f->is_repeated() || f->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
          return Invalid(where + ": path variable {" + v + "} is not a string field of " +
                         method->input_type()->full_name());
        }
      }
      routes.push_back(std::move(route));
    }
  }
  return routes;
}

const Route* FindRoute(const std::vector<Route>& routes, std::string_view http_method,
                       std::string_view path, std::map<std::string, std::string>& variables,
                       bool* method_allowed) {
  if (method_allowed != nullptr) *method_allowed = false;
  for (const Route& r : routes) {
    auto matched = r.path.Match(path);
    if (!matched) continue;
    if (r.http_method != http_method) {
      if (method_allowed != nullptr) *method_allowed = true;
      continue;
    }
    variables = std::move(*matched);
    return &r;
  }
  return nullptr;
}

Status FillRequest(const Route& route, const std::map<std::string, std::string>& variables,
                   std::string_view query, std::string_view body, Message& request) {
  const Descriptor& type = *request.GetDescriptor();
  const bool blank = body.find_first_not_of(" \t\r\n") == std::string_view::npos;
  if (route.body == "*") {
    if (!blank) {
      if (Status s = StrictJson::Check(body, type); !s.ok()) return s;
      if (Status s = ParseJson(body, request, "body"); !s.ok()) return s;
    }
  } else if (!blank) {
    return Invalid("body: " + route.http_method + " " + route.path.text() + " takes no body");
  }

  if (!query.empty()) {
    if (route.body == "*") {
      return Invalid("query: " + route.path.text() +
                     " takes its fields in the body, not as query parameters");
    }
    // Gathered per field (a repeated field may be given several times), then read through
    // proto3's JSON mapping, which knows enums, 64-bit integers, Timestamps and Durations.
    std::map<const FieldDescriptor*, std::vector<std::string>> values;
    for (std::string_view pair : Split(query, '&')) {
      if (pair.empty()) continue;
      const std::size_t eq = pair.find('=');
      auto key = QueryDecode(pair.substr(0, eq));
      auto value = QueryDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
      if (!key || !value) return Invalid("query: bad percent-encoding");
      // Proto3 strings are UTF-8: checked here, where the parameter can be named.
      if (!ValidUtf8(*key)) return Invalid("query: a parameter name is not valid UTF-8");
      const FieldDescriptor* field = FieldByName(type, *key);
      if (field == nullptr) {
        return Invalid("query: " + type.full_name() + " has no field \"" + *key + "\"");
      }
      if (!ValidUtf8(*value)) return Invalid(field->json_name() + ": not valid UTF-8");
      auto& list = values[field];
      if (!field->is_repeated() && !list.empty()) {
        return Invalid(field->json_name() + ": given more than once");
      }
      list.push_back(std::move(*value));
    }
    std::string json = "{";
    for (const auto& [field, list] : values) {
      if (json.size() > 1) json += ',';
      json += '"' + field->json_name() + "\":";
      if (field->is_repeated()) json += '[';
      for (std::size_t i = 0; i < list.size(); ++i) {
        if (i > 0) json += ',';
        if (Status s = AppendJsonValue(*field, list[i], json); !s.ok()) return s;
      }
      if (field->is_repeated()) json += ']';
    }
    json += '}';
    std::unique_ptr<Message> parsed(request.New());
    if (Status s = ParseJson(json, *parsed, "query"); !s.ok()) return s;
    request.MergeFrom(*parsed);
  }

  const google::protobuf::Reflection& reflection = *request.GetReflection();
  for (const auto& [name, value] : variables) {
    const FieldDescriptor* field = type.FindFieldByName(name);
    if (field == nullptr) return Invalid("path: no field " + name);  // RoutesOf checked it
    // A proto3 string the gRPC server would refuse to parse (an INTERNAL error, not the
    // caller's INVALID_ARGUMENT): "%FF" or a raw byte >= 0x80 that is not UTF-8.
    if (!ValidUtf8(value)) {
      return Invalid(field->json_name() + ": the path's value is not valid UTF-8");
    }
    const std::string given = reflection.GetString(request, field);
    if (!given.empty() && given != value) {
      return Invalid(field->json_name() + ": the path says \"" + value + "\", the body \"" + given +
                     "\"");
    }
    reflection.SetString(&request, field, value);
  }
  return Status::Ok();
}

StatusOr<std::vector<Route>> ServiceRoutes() {
  // Through a message of drgate.proto, so that its descriptors are linked in.
  const auto* service =
      v1::GetJobRequest::descriptor()->file()->FindServiceByName("DrBackupService");
  if (service == nullptr) {
    return Status(StatusCode::kInternal, "drgate.v1.DrBackupService is not linked in");
  }
  return RoutesOf(*service);
}

std::string RouteLabel(const Route& route) {
  return route.http_method + " " + route.path.text();
}

}  // namespace drgate::plugin
