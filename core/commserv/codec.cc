#include "core/commserv/codec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <utility>

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

namespace drgate::commserv {
namespace {

using nlohmann::json;

// Upstream texts that reach a message are cut to this many bytes (including the ellipsis).
constexpr std::size_t kMaxTextBytes = 512;
// JSON bodies nesting deeper than this are rejected before parsing. No expected body nests more
// than 4 levels; the limit keeps every later operation on the parsed value shallow.
constexpr int kMaxJsonDepth = 64;
// Only this prefix of a body is searched for an HTML <title>.
constexpr std::size_t kMaxTitleSearchBytes = 64 * 1024;
// Longest token accepted from the CommServe (QSDK tokens are a few hundred bytes).
constexpr std::size_t kMaxTokenBytes = 16 * 1024;
// Job ids are decimal; 20 digits hold any uint64.
constexpr std::size_t kMaxJobIdDigits = 20;

constexpr Reason kMalformed = Reason::kMalformedUpstreamResponse;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

char ToLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), ToLower);
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (ToLower(s[i]) != ToLower(prefix[i])) return false;
  }
  return true;
}

bool ContainsIgnoreCase(std::string_view haystack, std::string_view needle) {
  return Lower(haystack).find(Lower(needle)) != std::string::npos;
}

// Length of the well-formed UTF-8 sequence at the start of `s` (1-4), or 0 when it is not one
// (overlong forms, surrogates and code points above U+10FFFF are not well-formed).
std::size_t Utf8SequenceLength(std::string_view s, char32_t* code_point) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) {
    *code_point = b0;
    return 1;
  }
  std::size_t len;
  char32_t cp;
  char32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < len) return 0;
  for (std::size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  *code_point = cp;
  return len;
}

// Makes an upstream text safe for a Status message (which ends up in logs and in protobuf string
// fields that must be valid UTF-8): whitespace runs become one space, other control characters
// and malformed UTF-8 bytes become '?', and the result is at most `max_bytes` bytes, cut on a
// character boundary and ending in "..." when cut.
std::string SanitizeText(std::string_view in, std::size_t max_bytes = kMaxTextBytes) {
  std::string out;
  out.reserve(std::min(in.size(), max_bytes));
  bool pending_space = false;
  bool truncated = false;
  while (!in.empty()) {
    char32_t cp = 0;
    std::size_t len = Utf8SequenceLength(in, &cp);
    std::string_view piece = in.substr(0, len == 0 ? 1 : len);
    in.remove_prefix(piece.size());
    if (len != 0 && (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' ||
                     cp == '\v' || cp == 0xA0)) {
      pending_space = !out.empty();
      continue;
    }
    if (len == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) piece = "?";
    const std::size_t need = piece.size() + (pending_space ? 1 : 0);
    if (out.size() + need > max_bytes) {
      truncated = true;
      break;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.append(piece);
  }
  if (truncated) {
    // Make room for the ellipsis without splitting a multi-byte character.
    while (!out.empty() && out.size() + 3 > max_bytes) {
      do {
        out.pop_back();
      } while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80);
      if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += "...";
  }
  return out;
}

// Decodes the few entities that appear in server error page titles; others stay as written.
std::string DecodeHtmlEntities(std::string_view s) {
  static constexpr std::pair<std::string_view, std::string_view> kEntities[] = {
      {"&amp;", "&"}, {"&lt;", "<"},   {"&gt;", ">"},   {"&quot;", "\""},
      {"&#39;", "'"}, {"&apos;", "'"}, {"&nbsp;", " "},
  };
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    bool replaced = false;
    if (s.front() == '&') {
      for (const auto& [entity, text] : kEntities) {
        if (StartsWithIgnoreCase(s, entity)) {
          out.append(text);
          s.remove_prefix(entity.size());
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) {
      out.push_back(s.front());
      s.remove_prefix(1);
    }
  }
  return out;
}

// Removes <...> markup, keeping line structure (a tag becomes a space).
std::string StripTags(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool in_tag = false;
  for (char c : s) {
    if (in_tag) {
      if (c == '>') {
        in_tag = false;
        out.push_back(' ');
      }
    } else if (c == '<') {
      in_tag = true;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FirstNonEmptyLine(std::string_view s) {
  while (!s.empty()) {
    const std::size_t eol = s.find_first_of("\r\n");
    std::string_view line = Trim(s.substr(0, eol));
    if (!line.empty()) return SanitizeText(line);
    if (eol == std::string_view::npos) break;
    s.remove_prefix(eol + 1);
  }
  return {};
}

// ---- numbers ----------------------------------------------------------------------------------

std::optional<int64_t> ParseInt(std::string_view s) {
  s = Trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// A finite double in int64 range, truncated toward zero.
std::optional<int64_t> DoubleToInt(double d) {
  if (!std::isfinite(d) || d < -9.0e18 || d > 9.0e18) return std::nullopt;
  return static_cast<int64_t>(d);
}

// Integers, integral-valued or fractional numbers (truncated) and numeric strings: the CommServe
// sends some numbers as strings.
std::optional<int64_t> JsonToInt(const json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) return DoubleToInt(v.get<double>());
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (auto i = ParseInt(s)) return i;
    std::string_view t = Trim(s);
    double d = 0;
    auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
    if (!t.empty() && ec == std::errc() && ptr == t.data() + t.size()) return DoubleToInt(d);
  }
  return std::nullopt;
}

// Job ids travel into URL paths (Job/{id}), so only plain decimal digits are accepted.
std::optional<std::string> DigitsId(std::string_view s) {
  s = Trim(s);
  if (s.empty() || s.size() > kMaxJobIdDigits) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return std::string(s);
}

std::optional<std::string> JsonToId(const json& v) {
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) {
    const auto i = v.get<int64_t>();
    if (i < 0) return std::nullopt;
    return std::to_string(i);
  }
  if (v.is_string()) return DigitsId(v.get_ref<const std::string&>());
  return std::nullopt;
}

// Strings as they are, numbers in decimal, anything else empty.
std::string JsonToText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return {};
}

const json* Field(const json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string TextField(const json& object, std::string_view key) {
  const json* v = Field(object, key);
  return v == nullptr ? std::string() : JsonToText(*v);
}

// ---- body parsing -----------------------------------------------------------------------------

// True when `body` nests arrays/objects deeper than `limit` (strings are skipped correctly).
bool JsonTooDeep(std::string_view body, int limit) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limit) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

std::string_view SkipBomAndSpace(std::string_view body) {
  if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
  return Trim(body);
}

// The media type without parameters, lower-cased: "text/html; charset=utf-8" -> "text/html".
std::string MediaType(std::string_view content_type) {
  return Lower(Trim(content_type.substr(0, content_type.find(';'))));
}

enum class Detected { kJson, kXml, kHtml, kUnknown };

// The content type decides when it names json or xml (or html, which no call answers with);
// otherwise the first byte does.
Detected DetectFormat(const HttpResponse& response) {
  const std::string media = MediaType(response.content_type);
  if (media.find("json") != std::string::npos) return Detected::kJson;
  if (media.find("html") != std::string::npos) return Detected::kHtml;
  if (media.find("xml") != std::string::npos) return Detected::kXml;
  std::string_view body = SkipBomAndSpace(response.body);
  if (body.empty()) return Detected::kUnknown;
  if (body.front() == '{' || body.front() == '[') return Detected::kJson;
  if (body.front() == '<') return Detected::kXml;
  return Detected::kUnknown;
}

Status WithHttpStatus(Status status, int http_status) {
  return std::move(status).With("http_status", std::to_string(http_status));
}

Status Malformed(const std::string& message, int http_status) {
  return WithHttpStatus(Status(StatusCode::kInternal, message, kMalformed), http_status);
}

// A parsed JSON or XML body. Move-only (the XML document is not copyable).
struct Body {
  WireFormat format = WireFormat::kJson;
  json json_value;
  std::unique_ptr<pugi::xml_document> xml;

  pugi::xml_node XmlRoot() const { return xml ? xml->document_element() : pugi::xml_node(); }
};

StatusOr<Body> ParseJson(std::string_view text, int http_status) {
  if (JsonTooDeep(text, kMaxJsonDepth)) {
    return Malformed(
        "body is not JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels",
        http_status);
  }
  Body body;
  body.format = WireFormat::kJson;
  try {
    body.json_value = json::parse(text);
  } catch (const json::exception& e) {
    return Malformed("body is not JSON: " + SanitizeText(e.what(), 256), http_status);
  }
  return body;
}

StatusOr<Body> ParseXml(std::string_view text, int http_status) {
  Body body;
  body.format = WireFormat::kXml;
  body.xml = std::make_unique<pugi::xml_document>();
  // Default options: no DOCTYPE processing and no entity expansion beyond the predefined ones.
  pugi::xml_parse_result result =
      body.xml->load_buffer(text.data(), text.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!result) {
    return Malformed("body is not XML: " + SanitizeText(result.description()) + " at offset " +
                         std::to_string(result.offset),
                     http_status);
  }
  if (!body.XmlRoot()) return Malformed("body is not XML: no root element", http_status);
  return body;
}

// Parses the body of a 2xx response. Errors are INTERNAL / MALFORMED_UPSTREAM_RESPONSE.
StatusOr<Body> ParseBody(const HttpResponse& response, WireFormat fallback) {
  const Detected detected = DetectFormat(response);
  if (detected == Detected::kHtml) {
    return Malformed("unexpected content type " +
                         SanitizeText(MediaType(response.content_type), 128) + ": " +
                         ErrorTextOf(response.body),
                     response.status);
  }
  if (SkipBomAndSpace(response.body).empty()) {
    return Malformed("empty response body", response.status);
  }
  WireFormat format = fallback;
  if (detected == Detected::kJson) format = WireFormat::kJson;
  if (detected == Detected::kXml) format = WireFormat::kXml;
  if (detected == Detected::kUnknown) {
    // Neither the content type nor the first byte says JSON or XML: the body is plain text.
    return Malformed(
        std::string(format == WireFormat::kJson ? "body is not JSON: " : "body is not XML: ") +
            "starts with \"" + SanitizeText(SkipBomAndSpace(response.body), 64) + "\"",
        response.status);
  }
  return format == WireFormat::kJson ? ParseJson(response.body, response.status)
                                     : ParseXml(response.body, response.status);
}

// ---- upstream error detection -----------------------------------------------------------------

struct UpstreamError {
  std::string text;                 // raw, sanitized when put into a message
  std::optional<int64_t> code;      // errorCode when the body has one
  bool account_locked = false;      // login only
  std::string remaining_lock_time;  // login only
};

UpstreamError MakeError(std::string text, std::optional<int64_t> code) {
  UpstreamError error;
  error.text = std::move(text);
  error.code = code;
  return error;
}

// Reads an error out of an {errorCode, errorMessage|errLogMessage} group. A group reports an
// error when its code is non-zero, or when it has no usable code but a non-empty message.
std::optional<UpstreamError> ErrorFromJsonGroup(const json& group) {
  if (group.is_string()) {
    if (Trim(group.get_ref<const std::string&>()).empty()) return std::nullopt;
    return MakeError(group.get<std::string>(), std::nullopt);
  }
  if (!group.is_object()) return std::nullopt;
  std::optional<int64_t> code;
  if (const json* c = Field(group, "errorCode")) code = JsonToInt(*c);
  std::string text = TextField(group, "errorMessage");
  if (Trim(text).empty()) text = TextField(group, "errLogMessage");
  if (code.has_value() ? *code == 0 : Trim(text).empty()) return std::nullopt;
  return MakeError(std::move(text), code);
}

// The error a JSON body reports: top-level errorCode/errorMessage, errList[0], or "error".
std::optional<UpstreamError> FindJsonError(const json& root) {
  if (!root.is_object()) return std::nullopt;
  std::optional<UpstreamError> error = ErrorFromJsonGroup(root);
  if (!error) {
    const json* list = Field(root, "errList");
    if (list != nullptr && list->is_array() && !list->empty()) {
      error = ErrorFromJsonGroup(list->front());
    }
  }
  if (!error) {
    if (const json* e = Field(root, "error")) error = ErrorFromJsonGroup(*e);
  }
  if (error) {
    if (const json* locked = Field(root, "isAccountLocked")) {
      error->account_locked =
          (locked->is_boolean() && locked->get<bool>()) || JsonToText(*locked) == "true";
    }
    error->remaining_lock_time = TextField(root, "remainingLockTime");
  }
  return error;
}

std::optional<UpstreamError> ErrorFromXmlNode(const pugi::xml_node& node) {
  if (!node) return std::nullopt;
  std::optional<int64_t> code;
  if (auto a = node.attribute("errorCode")) code = ParseInt(a.value());
  std::string text = node.attribute("errorMessage").value();
  if (Trim(text).empty()) text = node.attribute("errLogMessage").value();
  if (code.has_value() ? *code == 0 : Trim(text).empty()) return std::nullopt;
  return MakeError(std::move(text), code);
}

// The error an XML body reports: attributes of the root (TMMsg_GenericResp, CVGui_GenericResp,
// App_GenericResp and the like), or of an <errList>/<error> child.
std::optional<UpstreamError> FindXmlError(const pugi::xml_node& root) {
  std::optional<UpstreamError> error = ErrorFromXmlNode(root);
  if (!error) error = ErrorFromXmlNode(root.child("errList"));
  if (!error) error = ErrorFromXmlNode(root.child("error"));
  return error;
}

std::optional<UpstreamError> FindError(const Body& body) {
  return body.format == WireFormat::kJson ? FindJsonError(body.json_value)
                                          : FindXmlError(body.XmlRoot());
}

// The most useful text of a non-2xx body: a structured error message when the body carries one,
// else ErrorTextOf(). Parse failures are ignored here: the HTTP status already is the error.
std::optional<UpstreamError> ErrorOfErrorBody(const HttpResponse& response) {
  const Detected detected = DetectFormat(response);
  std::string_view body = response.body;
  if (detected == Detected::kJson && !JsonTooDeep(body, kMaxJsonDepth)) {
    json value = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!value.is_discarded()) return FindJsonError(value);
  } else if (detected == Detected::kXml) {
    pugi::xml_document doc;
    if (doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8)) {
      return FindXmlError(doc.document_element());
    }
  }
  return std::nullopt;
}

// ---- error statuses ---------------------------------------------------------------------------

// Which call a response answers: login and renewal report their failures with their own reasons.
enum class Call { kDefault, kLogin, kRenew };

bool SaysAlreadyRunning(std::string_view text) {
  // The documented refusal says a DR job "is already running"; "already in progress" is the
  // wording other CommServe refusals use for the same condition.
  return ContainsIgnoreCase(text, "already running") ||
         ContainsIgnoreCase(text, "already in progress");
}

// The documented refusal names the running job: "DR backup job [2100] is already running."
// Returns the first bracketed run of digits, when there is one.
std::optional<std::string> BracketedJobId(std::string_view text) {
  for (std::size_t open = text.find('['); open != std::string_view::npos;
       open = text.find('[', open + 1)) {
    std::size_t end = open + 1;
    while (end < text.size() && end - open <= 20 &&
           std::isdigit(static_cast<unsigned char>(text[end]))) {
      ++end;
    }
    if (end > open + 1 && end < text.size() && text[end] == ']') {
      return std::string(text.substr(open + 1, end - open - 1));
    }
  }
  return std::nullopt;
}

// A DR_JOB_ALREADY_RUNNING status carrying the running job's id, when the text names it.
Status AlreadyRunning(std::string message, std::string_view raw_text) {
  Status s(StatusCode::kAborted, std::move(message), Reason::kDrJobAlreadyRunning);
  if (auto id = BracketedJobId(raw_text)) s.With("active_job_id", *id);
  return s;
}

std::string DescribeError(const UpstreamError& error) {
  std::string text = SanitizeText(error.text);
  if (text.empty()) text = "(no message)";
  if (error.code) text += " (errorCode " + std::to_string(*error.code) + ")";
  return text;
}

Status AddErrorCode(Status status, const UpstreamError& error) {
  if (error.code) status.With("upstream_error_code", std::to_string(*error.code));
  return status;
}

// `prefix` is "" or "HTTP 401: ".
Status LoginFailure(const UpstreamError& error, int http_status, const std::string& prefix = {}) {
  std::string message = "login failed: " + prefix + DescribeError(error);
  if (error.account_locked) {
    message += "; account locked";
    std::string_view remaining = Trim(error.remaining_lock_time);
    if (!remaining.empty() && remaining != "0") {
      message += " (remainingLockTime " + SanitizeText(remaining, 32) + ")";
    }
  }
  Status status(StatusCode::kUnauthenticated, std::move(message), Reason::kUpstreamLoginFailed);
  if (error.account_locked) status.With("account_locked", "true");
  return WithHttpStatus(AddErrorCode(std::move(status), error), http_status);
}

// The CommServe answered and refused (HTTP 200 with an error, or an error body on 4xx/5xx).
Status Rejected(const UpstreamError& error, int http_status, Call call) {
  switch (call) {
    case Call::kLogin: return LoginFailure(error, http_status);
    case Call::kRenew:
      return WithHttpStatus(AddErrorCode(Status(StatusCode::kUnauthenticated,
                                                "token renewal failed: " + DescribeError(error),
                                                Reason::kUpstreamRenewFailed),
                                         error),
                            http_status);
    case Call::kDefault: break;
  }
  if (SaysAlreadyRunning(error.text)) {
    return WithHttpStatus(
        AddErrorCode(AlreadyRunning("a DR backup job is already running: " + DescribeError(error),
                                    error.text),
                     error),
        http_status);
  }
  return WithHttpStatus(
      AddErrorCode(FailedPrecondition("CommServe rejected the request: " + DescribeError(error),
                                      Reason::kUpstreamRejected),
                   error),
      http_status);
}

// A response whose status is not 2xx.
Status HttpError(const HttpResponse& response, Call call) {
  const int http = response.status;
  std::optional<UpstreamError> structured = ErrorOfErrorBody(response);
  std::string text = structured ? DescribeError(*structured) : ErrorTextOf(response.body);
  if (text.empty()) text = "(empty body)";
  const std::string raw_text = structured ? structured->text : text;
  const std::string prefix = "HTTP " + std::to_string(http) + ": ";

  if (http == 401) {
    if (call == Call::kLogin) {
      return LoginFailure(structured.value_or(MakeError(text, std::nullopt)), http, prefix);
    }
    if (call == Call::kRenew) {
      return WithHttpStatus(
          Status(StatusCode::kUnauthenticated, "token renewal failed: " + prefix + text,
                 Reason::kUpstreamRenewFailed),
          http);
    }
    return WithHttpStatus(
        Status(StatusCode::kUnauthenticated, prefix + text, Reason::kUpstreamUnauthenticated),
        http);
  }

  Status status;
  if (http == 429) {
    status = Unavailable(prefix + "rate limited: " + text, Reason::kUpstreamRateLimited);
  } else if (http >= 500 && http <= 599) {
    status = Unavailable(prefix + text, Reason::kUpstreamHttp5xx);
  } else if (http >= 400 && http <= 499) {
    status = FailedPrecondition(prefix + text, Reason::kUpstreamHttp4xx);
  } else if (http >= 300 && http <= 399) {
    // The webservice root is wrong (e.g. webconsole/api redirecting to commandcenter/api).
    // Following it here would resend a POST and its Authtoken elsewhere: configuration must
    // name the final root.
    std::string location;
    if (auto it = response.headers.find("location"); it != response.headers.end()) {
      location = " to " + SanitizeText(it->second, 256);
    }
    status = FailedPrecondition("HTTP " + std::to_string(http) + " redirect" + location +
                                    ": fix the configured webservice root",
                                Reason::kUpstreamRedirected);
  } else {
    status = Malformed("unexpected HTTP status " + std::to_string(http), http);
  }

  if (http != 429 && (http >= 400 && http <= 599) && SaysAlreadyRunning(raw_text) &&
      call == Call::kDefault) {
    status = AlreadyRunning("a DR backup job is already running: " + prefix + text, raw_text);
  }
  if (http == 429 || http == 503) {
    if (auto it = response.headers.find("retry-after"); it != response.headers.end()) {
      if (auto seconds = ParseInt(it->second); seconds && *seconds >= 0) {
        status.With("retry_after_seconds", std::to_string(*seconds));
      }
    }
  }
  if (structured) status = AddErrorCode(std::move(status), *structured);
  return WithHttpStatus(std::move(status), http);
}

bool Is2xx(int status) {
  return status >= 200 && status <= 299;
}

// A token goes verbatim into a header: printable ASCII only, so it cannot split the header.
bool IsValidToken(std::string_view token) {
  if (token.empty() || token.size() > kMaxTokenBytes) return false;
  return std::all_of(token.begin(), token.end(), [](char c) { return c >= 0x20 && c < 0x7F; });
}

// Login and renewal answer with {"token": "..."}.
StatusOr<std::string> DecodeTokenResponse(const HttpResponse& response, Call call) {
  if (!Is2xx(response.status)) return HttpError(response, call);
  StatusOr<Body> body = ParseBody(response, WireFormat::kJson);
  if (!body.ok()) return body.status();
  if (body->format == WireFormat::kJson) {
    if (const json* token = Field(body->json_value, "token");
        token != nullptr && token->is_string() &&
        !Trim(token->get_ref<const std::string&>()).empty()) {
      std::string_view value = Trim(token->get_ref<const std::string&>());
      // Never echo the token: it is a credential.
      if (!IsValidToken(value)) {
        return Malformed("token contains characters not allowed in a header", response.status);
      }
      return NormalizeToken(value);
    }
  }
  if (std::optional<UpstreamError> error = FindError(*body)) {
    return Rejected(*error, response.status, call);
  }
  if (call == Call::kRenew && body->format == WireFormat::kJson &&
      Field(body->json_value, "error") != nullptr) {
    // {"error":{...}} without a readable code or message still means the renewal was refused.
    return Rejected(MakeError("no token in the answer", std::nullopt), response.status, call);
  }
  return Malformed(body->format == WireFormat::kJson ? "missing token" : "missing token (XML body)",
                   response.status);
}

const char* kBase64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out.push_back(kBase64Alphabet[(v >> 18) & 0x3F]);
    out.push_back(kBase64Alphabet[(v >> 12) & 0x3F]);
    out.push_back(kBase64Alphabet[(v >> 6) & 0x3F]);
    out.push_back(kBase64Alphabet[v & 0x3F]);
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out.push_back(kBase64Alphabet[(v >> 18) & 0x3F]);
    out.push_back(kBase64Alphabet[(v >> 12) & 0x3F]);
    out.push_back(rest == 2 ? kBase64Alphabet[(v >> 6) & 0x3F] : '=');
    out.push_back('=');
  }
  return out;
}

// Serializes without throwing: invalid UTF-8 in a caller's string becomes U+FFFD.
std::string DumpJson(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// Collapses whitespace runs and lower-cases, for status comparison.
std::string NormalizeStatusText(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : Trim(s)) {
    if (IsSpace(c)) {
      space = true;
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(ToLower(c));
  }
  return out;
}

}  // namespace

const char* ContentTypeOf(WireFormat format) {
  return format == WireFormat::kJson ? "application/json" : "application/xml";
}

std::string EncodeDrBackupRequest(const DrBackupRequest& request, WireFormat format) {
  const bool full = request.backup_type != BackupType::kDifferential;
  const char* compression = request.compression ? "true" : "false";
  if (format == WireFormat::kJson) {
    return std::string("{\"isCompressionEnabled\":") + compression +
           ",\"jobType\":1,\"backupType\":" + (full ? "1" : "3") + "}";
  }
  return std::string("<TMMsg_CommcellDRBackupReq isCompressionEnabled=\"") + compression +
         "\" jobType=\"IMMEDIATE\" backupType=\"" + (full ? "full" : "differential") + "\"/>";
}

StatusOr<DrBackupResult> DecodeDrBackupResponse(const HttpResponse& response, WireFormat format) {
  if (!Is2xx(response.status)) return HttpError(response, Call::kDefault);
  StatusOr<Body> body = ParseBody(response, format);
  if (!body.ok()) return body.status();
  const int http = response.status;

  // Collect what the body offers; job ids win over an error indication, because a job that
  // exists must be followed (reporting a refusal would orphan it).
  std::optional<int64_t> task_id;
  bool has_task_id = false;
  bool has_job_ids = false;
  std::vector<std::string> job_ids;
  std::optional<std::string> bad_job_id;

  if (body->format == WireFormat::kJson) {
    const json& root = body->json_value;
    if (!root.is_object()) return Malformed("body is not a JSON object", http);
    if (const json* t = Field(root, "taskId")) {
      has_task_id = true;
      task_id = JsonToInt(*t);
    }
    if (const json* ids = Field(root, "jobIds")) {
      has_job_ids = true;
      if (!ids->is_array()) return Malformed("jobIds is not a list", http);
      for (const json& id : *ids) {
        if (auto parsed = JsonToId(id)) {
          job_ids.push_back(std::move(*parsed));
        } else if (!bad_job_id) {
          bad_job_id = id.is_string() ? id.get<std::string>() : std::string(id.type_name());
        }
      }
    }
  } else {
    const pugi::xml_node root = body->XmlRoot();
    if (auto t = root.attribute("taskId")) {
      has_task_id = true;
      task_id = ParseInt(t.value());
    }
    for (const pugi::xml_node& id : root.children("jobIds")) {
      has_job_ids = true;
      std::string_view text = id.attribute("val") ? id.attribute("val").value() : id.child_value();
      if (auto parsed = DigitsId(text)) {
        job_ids.push_back(std::move(*parsed));
      } else if (!bad_job_id) {
        bad_job_id = std::string(text);
      }
    }
  }

  if (job_ids.empty() && !bad_job_id) {
    if (std::optional<UpstreamError> error = FindError(*body)) {
      return Rejected(*error, http, Call::kDefault);
    }
  }
  if (!has_task_id) return Malformed("missing taskId", http);
  if (!task_id || *task_id <= 0) return Malformed("invalid taskId", http);
  if (!has_job_ids) return Malformed("missing jobIds", http);
  if (bad_job_id) {
    return Malformed("invalid job id \"" + SanitizeText(*bad_job_id, 64) + "\"", http);
  }
  if (job_ids.empty()) return Malformed("jobIds is empty", http);
  return DrBackupResult{*task_id, std::move(job_ids)};
}

std::string EncodeLoginRequest(const std::string& username, const std::string& password,
                               const std::string& device_id) {
  nlohmann::ordered_json body;
  body["username"] = username;
  body["password"] = Base64(password);
  body["domain"] = "";
  body["deviceId"] = device_id;
  body["timeout"] = 30;
  return DumpJson(body);
}

StatusOr<std::string> DecodeLoginResponse(const HttpResponse& response) {
  return DecodeTokenResponse(response, Call::kLogin);
}

std::string EncodeRenewRequest(const std::string& token, const std::string& device_id) {
  nlohmann::ordered_json body;
  body["sessionId"] = token;
  body["deviceId"] = device_id;
  return DumpJson(body);
}

StatusOr<std::string> DecodeRenewResponse(const HttpResponse& response) {
  return DecodeTokenResponse(response, Call::kRenew);
}

std::string NormalizeToken(std::string_view token) {
  token = Trim(token);
  if (token.empty()) return {};
  for (std::string_view prefix : {"QSDK ", "SAML "}) {
    if (StartsWithIgnoreCase(token, prefix)) {
      std::string_view rest = Trim(token.substr(prefix.size()));
      std::string out(prefix.substr(0, 4));
      return out + " " + std::string(rest);
    }
  }
  return "QSDK " + std::string(token);
}

StatusOr<std::vector<JobSummary>> DecodeJobList(const HttpResponse& response) {
  if (!Is2xx(response.status)) return HttpError(response, Call::kDefault);
  StatusOr<Body> body = ParseBody(response, WireFormat::kJson);
  if (!body.ok()) return body.status();
  const int http = response.status;
  if (std::optional<UpstreamError> error = FindError(*body)) {
    return Rejected(*error, http, Call::kDefault);
  }
  if (body->format != WireFormat::kJson) return Malformed("job list is not JSON", http);
  const json& root = body->json_value;
  if (!root.is_object()) return Malformed("body is not a JSON object", http);

  std::vector<JobSummary> out;
  const json* jobs = Field(root, "jobs");
  // A missing list is an empty one: servers omit it when nothing matches (N = 0).
  if (jobs == nullptr || jobs->is_null()) return out;
  if (!jobs->is_array()) return Malformed("jobs is not a list", http);
  out.reserve(std::min<std::size_t>(jobs->size(), 4096));
  for (std::size_t i = 0; i < jobs->size(); ++i) {
    const std::string where = "jobs[" + std::to_string(i) + "]";
    const json* summary = Field((*jobs)[i], "jobSummary");
    if (summary == nullptr || !summary->is_object()) {
      return Malformed(where + " has no jobSummary", http);
    }
    const json* id = Field(*summary, "jobId");
    if (id == nullptr) return Malformed(where + ".jobSummary has no jobId", http);
    std::optional<std::string> job_id = JsonToId(*id);
    if (!job_id) return Malformed(where + ".jobSummary.jobId is not a job id", http);

    auto int_field = [&](std::string_view key) -> int64_t {
      const json* v = Field(*summary, key);
      return v == nullptr ? 0 : JsonToInt(*v).value_or(0);
    };
    JobSummary job;
    job.job_id = std::move(*job_id);
    job.status = SanitizeText(TextField(*summary, "status"));
    job.percent_complete =
        static_cast<int32_t>(std::clamp<int64_t>(int_field("percentComplete"), 0, 100));
    job.start_time = std::max<int64_t>(int_field("jobStartTime"), 0);
    job.end_time = std::max<int64_t>(int_field("jobEndTime"), 0);
    job.last_update_time = std::max<int64_t>(int_field("lastUpdateTime"), 0);
    job.pending_reason = SanitizeText(StripTags(TextField(*summary, "pendingReason")));
    job.phase = SanitizeText(TextField(*summary, "currentPhaseName"));
    job.operation = SanitizeText(TextField(*summary, "localizedOperationName"));
    job.backup_level = SanitizeText(TextField(*summary, "backupLevelName"));
    out.push_back(std::move(job));
  }
  return out;
}

StatusOr<JobListPage> DecodeJobListPage(const HttpResponse& response) {
  StatusOr<std::vector<JobSummary>> jobs = DecodeJobList(response);
  if (!jobs.ok()) return jobs.status();
  JobListPage page;
  page.jobs = std::move(*jobs);
  page.total = static_cast<int64_t>(page.jobs.size());
  // DecodeJobList succeeded, so the body is a JSON object.
  const json root = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (const json* total = Field(root, "totalRecordsWithoutPaging")) {
    if (std::optional<int64_t> n = JsonToInt(*total); n && *n >= page.total) page.total = *n;
  }
  return page;
}

namespace {

// 1/0, true/false, "1"/"0", "true"/"false" (any case); anything else is unknown.
std::optional<bool> JsonToFlag(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) {
    std::optional<int64_t> n = JsonToInt(v);
    if (n == 0) return false;
    if (n == 1) return true;
    return std::nullopt;
  }
  if (v.is_string()) {
    std::string text(Trim(v.get_ref<const std::string&>()));
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (text == "1" || text == "true") return true;
    if (text == "0" || text == "false") return false;
  }
  return std::nullopt;
}

}  // namespace

std::optional<bool> CopyLeavesHost(const DrBackupOptions& options) {
  if (options.network_share == true || options.cloud_upload == true) return true;
  if (options.network_share == false && options.cloud_upload == false) return false;
  return std::nullopt;
}

StatusOr<DrBackupOptions> DecodeDrBackupOptions(const HttpResponse& response) {
  const int http = response.status;
  if (http == 404) {
    return WithHttpStatus(
        Status(StatusCode::kNotFound, "the CommServe has no DR backup options endpoint (HTTP 404)",
               Reason::kDrOptionsUnavailable),
        http);
  }
  if (!Is2xx(http)) return HttpError(response, Call::kDefault);
  StatusOr<Body> body = ParseBody(response, WireFormat::kJson);
  if (!body.ok()) {
    Status s = body.status();
    return WithHttpStatus(Status(s.code(), s.message(), Reason::kDrOptionsUnavailable), http);
  }
  if (std::optional<UpstreamError> error = FindError(*body)) {
    return Rejected(*error, http, Call::kDefault);
  }
  if (body->format != WireFormat::kJson || !body->json_value.is_object()) {
    return WithHttpStatus(Status(StatusCode::kInternal, "DR backup options are not a JSON object",
                                 Reason::kDrOptionsUnavailable),
                          http);
  }
  const json* wrapped = Field(body->json_value, "properties");
  const json& properties = wrapped != nullptr && wrapped->is_object() ? *wrapped : body->json_value;

  DrBackupOptions options;
  if (const json* v = Field(properties, "DRDumpLocation"); v != nullptr && v->is_string()) {
    options.destination = SanitizeText(v->get<std::string>());
  }
  if (const json* v = Field(properties, "DRNumFulls")) {
    std::optional<int64_t> n = JsonToInt(*v);
    if (n && *n >= 0 && *n <= std::numeric_limits<int32_t>::max()) {
      options.retained_fulls = static_cast<int32_t>(*n);
    }
  }
  if (const json* v = Field(properties, "UseLocalDrive")) options.local_drive = JsonToFlag(*v);
  if (const json* v = Field(properties, "UseNetworkShare")) options.network_share = JsonToFlag(*v);
  if (const json* v = Field(properties, "uploadBackupMetadataToCloud")) {
    options.cloud_upload = JsonToFlag(*v);
  }
  if (const json* v = Field(properties, "cloudLibrary"); v != nullptr && v->is_object()) {
    // A named or numbered cloud library is an upload target, whatever the flag says.
    for (const auto& [key, value] : v->items()) {
      if ((value.is_string() && !Trim(value.get_ref<const std::string&>()).empty()) ||
          (value.is_number() && JsonToInt(value).value_or(0) > 0)) {
        options.cloud_upload = true;
        break;
      }
    }
  }
  return options;
}

std::optional<JobState> MapJobStatus(std::string_view status) {
  static constexpr std::pair<std::string_view, JobState> kExact[] = {
      {"running", JobState::kRunning},
      {"running (cannot be verified)", JobState::kRunning},
      // Kill/interrupt requests are not terminal until the CommServe reports Killed/Failed; an
      // interrupted job is restarted by the CommServe itself. All are "still alive".
      {"kill pending", JobState::kRunning},
      {"interrupt pending", JobState::kRunning},
      {"interrupted", JobState::kRunning},
      {"waiting", JobState::kQueued},
      {"pending", JobState::kQueued},
      {"queued", JobState::kQueued},
      {"suspended", JobState::kSuspended},
      {"suspend pending", JobState::kSuspended},
      {"completed", JobState::kSucceeded},
      {"completed w/ one or more warnings", JobState::kSucceeded},
      {"completed w/ one or more errors", JobState::kSucceededWithErrors},
      {"committed", JobState::kSucceeded},
      {"failed", JobState::kFailed},
      {"failed to start", JobState::kFailed},
      {"killed", JobState::kKilled},
      {"abnormal terminated cleanup", JobState::kFailed},
  };
  const std::string text = NormalizeStatusText(status);
  for (const auto& [name, state] : kExact) {
    if (text == name) return state;
  }
  // Unlisted variants of the finished states (the API page: finished means the text contains
  // completed, committed, killed or failed) are mapped so that a job never looks alive forever.
  if (text.find("killed") != std::string::npos) return JobState::kKilled;
  if (text.find("completed") != std::string::npos || text.find("committed") != std::string::npos) {
    return text.find("error") != std::string::npos ? JobState::kSucceededWithErrors
                                                   : JobState::kSucceeded;
  }
  if (text.find("failed") != std::string::npos) return JobState::kFailed;
  return std::nullopt;
}

Status DecodeGenericResponse(const HttpResponse& response) {
  if (!Is2xx(response.status)) return HttpError(response, Call::kDefault);
  // An empty 2xx answer carries no error: the action was accepted.
  if (SkipBomAndSpace(response.body).empty() && DetectFormat(response) != Detected::kHtml) {
    return Status::Ok();
  }
  StatusOr<Body> body = ParseBody(response, WireFormat::kJson);
  if (!body.ok()) return body.status();
  if (std::optional<UpstreamError> error = FindError(*body)) {
    return Rejected(*error, response.status, Call::kDefault);
  }
  return Status::Ok();
}

std::string ErrorTextOf(std::string_view body) {
  const std::string head = Lower(body.substr(0, kMaxTitleSearchBytes));
  if (std::size_t open = head.find("<title"); open != std::string::npos) {
    const std::size_t start = head.find('>', open);
    if (start != std::string::npos) {
      const std::size_t end = head.find("</title", start);
      std::string_view title =
          body.substr(start + 1, (end == std::string::npos ? head.size() : end) - start - 1);
      std::string text = SanitizeText(DecodeHtmlEntities(title));
      if (!text.empty()) return text;
    }
  }
  if (!SkipBomAndSpace(body).empty() && SkipBomAndSpace(body).front() == '<') {
    return FirstNonEmptyLine(DecodeHtmlEntities(StripTags(body)));
  }
  return FirstNonEmptyLine(body);
}

}  // namespace drgate::commserv
