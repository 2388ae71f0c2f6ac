// Fuzzes the HTTP/JSON face of DrBackupService (plugin/http_routes.h): an HTTP request from an
// untrusted client becomes a route and a request message. The input reads like the request:
//
//   <method> <target>\n      e.g. "GET /v1/commcells/prod/jobs?state=JOB_STATE_FAILED"
//   <body>                   the rest, e.g. {"backupType": "BACKUP_TYPE_FULL"}
//
// The target is split at its first '?' into path and query, as plugin/http_gateway.cc does. The
// routes are the real ones, read once from drgate.proto's annotations. The path is also parsed
// as a path template (PathTemplate::Parse), and a template that parses is matched against the
// path, against a path built from the template itself and against the body.
//
// Besides crashes, leaks and undefined behaviour, a broken promise of http_routes.h aborts:
// FindRoute answers a route of the request's method whose template matches the path with the
// variables given; FillRequest answers OK or INVALID_ARGUMENT (reason INVALID_ARGUMENT) with a
// message in valid UTF-8; on OK the path variables are in the fields of their names, exactly as
// matched, and the message survives the serialization the gateway sends to the gRPC server;
// PercentDecode never grows a text; Match gives exactly the template's variables, none empty.

#include <google/protobuf/message.h>
#include <google/protobuf/wrappers.pb.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "drgate/v1/drgate.pb.h"
#include "plugin/http_routes.h"

namespace {

using drgate::Reason;
using drgate::Status;
using drgate::StatusCode;
using drgate::plugin::PathTemplate;
using drgate::plugin::Route;

void Require(bool promise) {
  if (!promise) std::abort();
}

const std::vector<Route>& Routes() {
  static const std::vector<Route>* routes = [] {
    const auto* service =
        drgate::v1::GetJobRequest::descriptor()->file()->FindServiceByName("DrBackupService");
    Require(service != nullptr);
    auto parsed = drgate::plugin::RoutesOf(*service);
    Require(parsed.ok() && !parsed->empty());
    return new std::vector<Route>(std::move(*parsed));
  }();
  return *routes;
}

// Whether proto3 accepts `text` in a string field: the bytes of a message with it must parse.
bool Proto3String(const std::string& text) {
  google::protobuf::StringValue value;
  value.set_value(text);
  google::protobuf::StringValue again;
  return again.ParseFromString(value.SerializeAsString()) && again.value() == text;
}

void CheckPercentDecode(std::string_view text) {
  const auto decoded = drgate::plugin::PercentDecode(text);
  if (decoded) Require(decoded->size() <= text.size());
}

// Match gives exactly the template's variables, each non-empty.
void CheckMatch(const PathTemplate& t, std::string_view path) {
  const auto vars = t.Match(path);
  if (!vars) return;
  const std::vector<std::string> names = t.variables();
  Require(vars->size() == names.size());
  for (const std::string& name : names) {
    const auto it = vars->find(name);
    Require(it != vars->end() && !it->second.empty());
  }
}

void FuzzTemplate(std::string_view text, std::string_view path, std::string_view body) {
  const auto parsed = PathTemplate::Parse(text);
  if (!parsed.ok()) {
    Require(parsed.status().code() == StatusCode::kInvalidArgument);
    Require(!parsed.status().message().empty());
    return;
  }
  Require(parsed->text() == text);
  const std::vector<std::string> names = parsed->variables();
  Require(std::set<std::string>(names.begin(), names.end()).size() == names.size());
  CheckMatch(*parsed, path);
  CheckMatch(*parsed, body);
  // The template with each {name} written as the segment "name" is a path it matches, with
  // every variable equal to its name (names are [a-z0-9_], which percent-decoding keeps).
  std::string instance(text);
  for (const std::string& name : names) {
    const std::size_t at = instance.find("{" + name + "}");
    Require(at != std::string::npos);
    instance.replace(at, name.size() + 2, name);
  }
  const auto vars = parsed->Match(instance);
  Require(vars.has_value() && vars->size() == names.size());
  for (const std::string& name : names) {
    const auto it = vars->find(name);
    Require(it != vars->end() && it->second == name);
  }
}

void FuzzRequest(std::string_view method, std::string_view path, std::string_view query,
                 std::string_view body) {
  const std::vector<Route>& routes = Routes();
  std::map<std::string, std::string> vars;
  bool other_method = false;
  const Route* route = drgate::plugin::FindRoute(routes, method, path, vars, &other_method);
  if (route == nullptr) {
    // A 405 only when the path is served under another method.
    if (other_method) {
      bool found = false;
      for (const Route& r : routes)
        found = found || (r.http_method != method && r.path.Match(path));
      Require(found);
    }
    return;
  }
  Require(route->http_method == method);
  const auto matched = route->path.Match(path);
  Require(matched.has_value() && *matched == vars);
  CheckMatch(route->path, path);

  // A fresh request message, as the gateway makes it.
  std::unique_ptr<google::protobuf::Message> request(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(route->method->input_type())
          ->New());
  const Status s = drgate::plugin::FillRequest(*route, vars, query, body, *request);
  if (!s.ok()) {
    Require(s.code() == StatusCode::kInvalidArgument);
    Require(s.reason() == Reason::kInvalidArgument);
    Require(!s.message().empty());
    // The message goes into a google.rpc.Status (the error's details, then the HTTP error
    // body): a proto3 string, so valid UTF-8 whatever bytes the client sent.
    Require(Proto3String(s.message()));
    return;
  }
  const google::protobuf::Descriptor& type = *request->GetDescriptor();
  const google::protobuf::Reflection& reflection = *request->GetReflection();
  for (const auto& [name, value] : vars) {
    const google::protobuf::FieldDescriptor* field = type.FindFieldByName(name);
    Require(field != nullptr);
    Require(reflection.GetString(*request, field) == value);
  }
  // The gateway sends the message's bytes to the gRPC server, which parses them again: what
  // FillRequest accepts must survive that trip unchanged.
  std::string bytes;
  Require(request->SerializeToString(&bytes));
  std::unique_ptr<google::protobuf::Message> again(request->New());
  Require(again->ParseFromString(bytes));
  std::string bytes_again;
  Require(again->SerializeToString(&bytes_again) && bytes_again == bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t eol = input.find('\n');
  const std::string_view line = input.substr(0, eol);
  const std::string_view body = eol == std::string_view::npos ? "" : input.substr(eol + 1);
  const std::size_t space = line.find(' ');
  const std::string_view method = line.substr(0, space);
  const std::string_view target = space == std::string_view::npos ? "" : line.substr(space + 1);
  const std::size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);

  CheckPercentDecode(path);
  CheckPercentDecode(query);
  CheckPercentDecode(body);
  FuzzTemplate(path, path, body);
  FuzzRequest(method, path, query, body);
  return 0;
}
