#pragma once

// Reading repeated header fields of a Beast request: shared by the HTTP gateway
// (plugin/http_gateway.cc) and the framing fuzz target, which must judge a request exactly as the
// gateway does. Header-only (Beast only); safe from any thread.

#include <boost/beast/http/fields.hpp>

#include <string_view>
#include <vector>

namespace drgate::plugin {

// Every value of header `key` (a Beast field or a name), in the order sent. The views point into
// `fields`.
template <typename Key>
std::vector<std::string_view> HeaderValues(const boost::beast::http::fields& fields, Key key) {
  std::vector<std::string_view> out;
  const auto range = fields.equal_range(key);
  for (auto it = range.first; it != range.second; ++it) {
    out.emplace_back(it->value().data(), it->value().size());
  }
  return out;
}

}  // namespace drgate::plugin
