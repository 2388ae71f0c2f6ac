#pragma once

// The HTTP/JSON face of DrBackupService, read from the proto: each method's google.api.http
// option (and its additional_bindings) becomes a Route; a request's path, query and body become
// the method's request message. No second route table: the annotations in drgate.proto are the
// only place routes are written (docs/http.md).
//
// Path templates are the subset drgate's proto uses: literal segments, single-segment variables
// `{field}` naming a top-level string field, and an optional `:verb` suffix on the last segment
// ("/v1/commcells/{commcell}/jobs/{job_id}:watch").

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "core/common/status.h"

namespace drgate::plugin {

class PathTemplate {
 public:
  // INVALID_ARGUMENT when `text` is not a template of the supported subset.
  static StatusOr<PathTemplate> Parse(std::string_view text);

  // The variables of `path` (percent-decoded) when it matches; nullopt otherwise. A variable
  // matches one non-empty segment.
  std::optional<std::map<std::string, std::string>> Match(std::string_view path) const;

  const std::string& text() const { return text_; }
  // The variable names, in order.
  std::vector<std::string> variables() const;

 private:
  struct Segment {
    bool variable = false;
    std::string text;  // the literal, or the variable's field name
  };
  std::string text_;
  std::vector<Segment> segments_;
  std::string verb_;  // without the ':'; empty: none
};

struct Route {
  std::string http_method;  // "GET" or "POST"
  PathTemplate path;
  std::string body;  // "*": the whole request message is the body; "": no body
  const google::protobuf::MethodDescriptor* method = nullptr;
};

// Every route of `service`'s methods, in declaration order (a method's own binding first, then
// its additional bindings). INVALID_ARGUMENT when an annotation is outside the supported subset
// or names a field the request message lacks: a broken proto fails at startup, not per request.
StatusOr<std::vector<Route>> RoutesOf(const google::protobuf::ServiceDescriptor& service);

// The routes of drgate.v1.DrBackupService (drgate.proto).
StatusOr<std::vector<Route>> ServiceRoutes();

// "POST /v1/commcells/{commcell}/backups": a route's name in metrics and logs.
std::string RouteLabel(const Route& route);

// The route for `http_method` and `path`, and its variables; nullptr when none matches.
// `method_allowed` is set when the path matched another method's route (a 405, not a 404).
const Route* FindRoute(const std::vector<Route>& routes, std::string_view http_method,
                       std::string_view path, std::map<std::string, std::string>& variables,
                       bool* method_allowed = nullptr);

// Fills `request` from an HTTP request: the JSON body (body "*"; empty means {}), then the query
// parameters (fields by JSON or proto name; enums by name; Timestamps in RFC 3339; Durations as
// "30s"), then the path variables, which win. The body is proto3 JSON as the mapping defines it:
// booleans are true/false, enums their value names or numbers (not strings of digits), strings
// JSON strings, and no key twice in an object. Unknown fields, wrong types, malformed JSON, a
// field set twice and text that is not UTF-8 (proto3 strings are) are INVALID_ARGUMENT (reason
// INVALID_ARGUMENT) naming the field; the message is valid UTF-8 whatever the request held.
Status FillRequest(const Route& route, const std::map<std::string, std::string>& variables,
                   std::string_view query, std::string_view body,
                   google::protobuf::Message& request);

// Percent-decodes `text` ('+' stays '+'); nullopt on a bad escape.
std::optional<std::string> PercentDecode(std::string_view text);

}  // namespace drgate::plugin
