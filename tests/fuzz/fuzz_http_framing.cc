// Fuzzes the framing layer of the HTTP/JSON port (plugin/http_gateway.cc): the bytes a client
// sends on a connection are read by Beast's request parser with the gateway's limits (16 KiB of
// header, 64 KiB of body), fed in two pieces split where the input's first byte says (as a
// network delivers them); a request that parses is then judged by CheckFraming and its forwarded
// headers by CheckForwardedHeaders (plugin/http_request_checks.h), exactly as the gateway does.
//
// Besides crashes, leaks and undefined behaviour, a broken promise aborts: what
// CheckForwardedHeaders lets through is something gRPC metadata can carry (the Authorization
// value printable ASCII, the Idempotency-Key 1-36 printable characters without spaces, the
// timeout at most kMaxGrpcTimeout); its errors are UNAUTHENTICATED (INVALID_TOKEN, one of the
// fixed texts about the header, never its value) or INVALID_ARGUMENT, with a printable-ASCII
// message; a
// framing refusal is a 400 or a 501 with a printable message.

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "plugin/http_fields.h"
#include "plugin/http_request_checks.h"

namespace {

namespace http = boost::beast::http;
using drgate::Reason;
using drgate::StatusCode;
namespace plugin = drgate::plugin;
using drgate::plugin::HeaderValues;

void Require(bool promise) {
  if (!promise) std::abort();
}

bool Printable(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return false;
  }
  return true;
}

void Judge(const http::request<http::string_body>& req) {
  plugin::RequestFraming framing;
  framing.version = req.version();
  framing.host = HeaderValues(req, http::field::host);
  framing.transfer_encoding = HeaderValues(req, http::field::transfer_encoding);
  framing.has_content_length = req.find(http::field::content_length) != req.end();
  if (auto refused = plugin::CheckFraming(framing)) {
    Require(refused->http_status == 400 || refused->http_status == 501);
    Require(Printable(refused->message));
  }

  plugin::ForwardedHeaderValues values;
  values.authorization = HeaderValues(req, http::field::authorization);
  values.idempotency_key = HeaderValues(req, "Idempotency-Key");
  values.grpc_timeout = HeaderValues(req, "grpc-timeout");
  auto checked = plugin::CheckForwardedHeaders(values);
  if (!checked.ok()) {
    const auto& s = checked.status();
    Require(s.code() == StatusCode::kUnauthenticated || s.code() == StatusCode::kInvalidArgument);
    Require(Printable(s.message()));
    if (s.code() == StatusCode::kUnauthenticated) {
      // A refused Authorization is described, never quoted: the message is one of the fixed
      // texts about the header, whatever the value was.
      Require(s.reason() == Reason::kInvalidToken);
      Require(s.message().rfind("the Authorization header ", 0) == 0 &&
              s.message().find(':') == std::string::npos);
    }
    return;
  }
  if (checked->authorization) Require(plugin::IsLegalMetadataValue(*checked->authorization));
  if (checked->idempotency_key) {
    const std::string& key = *checked->idempotency_key;
    Require(!key.empty() && key.size() <= 36 && Printable(key) &&
            key.find(' ') == std::string::npos);
  }
  if (checked->timeout) {
    Require(checked->timeout->count() >= 0 && *checked->timeout <= plugin::kMaxGrpcTimeout);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::size_t split = data[0] % size;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  boost::beast::error_code ec;
  std::size_t used = 0;
  // Two deliveries, as TCP may cut them; the parser is fed what it has not consumed yet.
  for (std::string_view piece : {bytes.substr(0, std::min(split, bytes.size())), bytes}) {
    while (used < piece.size() && !parser.is_done()) {
      const std::size_t n =
          parser.put(boost::asio::buffer(piece.data() + used, piece.size() - used), ec);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec) return 0;  // the gateway answers 400 (or 413/431) and closes
      if (n == 0) break;
      used += n;
    }
    if (ec) return 0;
  }
  if (!parser.is_done()) {
    if (!parser.got_some()) return 0;  // nothing sent: the connection just closes
    parser.put_eof(ec);  // the client closed: ends a body that runs to the end of the stream
    if (ec || !parser.is_done()) return 0;
  }
  Judge(parser.get());
  return 0;
}
