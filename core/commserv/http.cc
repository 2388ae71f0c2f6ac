#include "core/commserv/http.h"

#include <arpa/inet.h>

#include <charconv>
#include <string_view>

namespace drgate::commserv {
namespace {

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != prefix[i]) return false;
  }
  return true;
}

// RFC 3986 reg-name restricted to what DNS names use.
bool IsValidHostName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    if (!IsAlnum(c) && c != '-' && c != '.' && c != '_') return false;
  }
  return true;
}

// RFC 3986 pchar plus '/': the path goes verbatim into the request line, so whitespace and
// control characters (request splitting) are refused.
bool IsValidPath(std::string_view path) {
  static constexpr std::string_view kAllowed = "-._~!$&'()*+,;=:@/%";
  for (char c : path) {
    if (!IsAlnum(c) && kAllowed.find(c) == std::string_view::npos) return false;
  }
  return true;
}

Status UrlError(const std::string& what) {
  return InvalidArgument("invalid CommServe URL: " + what);
}

}  // namespace

std::string Endpoint::ToString() const {
  std::string out = tls ? "https://" : "http://";
  // IPv6 literals are stored without brackets (that is what the resolver and SNI want).
  if (host.find(':') != std::string::npos) {
    out += "[" + host + "]";
  } else {
    out += host;
  }
  out += ":" + port;
  out += base_path;
  return out;
}

std::string Endpoint::Target(const std::string& path) const {
  std::string_view base = base_path;
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  while (!base.empty() && base.front() == '/') base.remove_prefix(1);
  std::string_view rest = path;
  while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
  // A trailing '/' is dropped unless it belongs to a query string.
  if (rest.find('?') == std::string_view::npos) {
    while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  }
  std::string out = "/";
  out += base;
  if (!base.empty() && !rest.empty()) out += "/";
  out += rest;
  return out;
}

StatusOr<Endpoint> ParseEndpoint(const std::string& url) {
  std::string_view s = url;
  while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  if (s.empty()) return UrlError("empty");

  // The URL is never echoed: it may hold credentials. Messages name only the offending part.
  Endpoint endpoint;
  if (StartsWithIgnoreCase(s, "https://")) {
    endpoint.tls = true;
    s.remove_prefix(8);
  } else if (StartsWithIgnoreCase(s, "http://")) {
    endpoint.tls = false;
    s.remove_prefix(7);
  } else {
    return UrlError("scheme must be https:// or http://");
  }

  const std::size_t authority_end = s.find_first_of("/?#");
  std::string_view authority = s.substr(0, authority_end);
  std::string_view path =
      authority_end == std::string_view::npos ? std::string_view() : s.substr(authority_end);

  if (authority.find('@') != std::string_view::npos) {
    return UrlError(
        "credentials (user:password@) are not allowed in the URL; configure them "
        "separately");
  }
  if (path.find_first_of("?#") != std::string_view::npos) {
    return UrlError("a query or fragment is not allowed in the webservice root");
  }

  std::string_view host;
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return UrlError("unterminated IPv6 literal in host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return UrlError("unexpected text after IPv6 literal");
      has_port = true;
      port = after.substr(1);
    }
    in6_addr addr{};
    if (host.empty() || inet_pton(AF_INET6, std::string(host).c_str(), &addr) != 1) {
      return UrlError("host is not a valid IPv6 literal");
    }
  } else {
    const std::size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port = authority.substr(colon + 1);
    }
    if (host.empty()) return UrlError("host is missing");
    if (!IsValidHostName(host)) return UrlError("host contains characters not allowed");
  }
  endpoint.host = std::string(host);

  if (has_port) {
    int value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || port.size() > 5 || ec != std::errc() || ptr != port.data() + port.size() ||
        value < 1 || value > 65535) {
      return UrlError("port must be a number from 1 to 65535");
    }
    endpoint.port = std::to_string(value);
  } else {
    endpoint.port = endpoint.tls ? "443" : "80";
  }

  if (!IsValidPath(path)) return UrlError("path contains characters not allowed");
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  endpoint.base_path = std::string(path);
  return endpoint;
}

}  // namespace drgate::commserv
