#include "plugin/gateway_mark.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>

#include "plugin/http_request_checks.h"

namespace drgate::plugin {
namespace {

constexpr char kSecretKey[] = "x-drgate-gateway";
constexpr char kPeerKey[] = "x-drgate-gateway-peer";
constexpr char kCertificateKey[] = "x-drgate-gateway-certificate";

std::string Find(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                 const char* key) {
  auto it = metadata.find(key);
  return it == metadata.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

}  // namespace

const char* ProtocolName(Protocol protocol) {
  return protocol == Protocol::kHttp ? "http" : "grpc";
}

GatewayMark::GatewayMark() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw std::runtime_error("cannot draw the HTTP gateway's secret: OpenSSL RAND_bytes failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char b : bytes) {
    secret_ += kHex[b >> 4];
    secret_ += kHex[b & 0xf];
  }
}

std::vector<std::pair<std::string, std::string>> GatewayMark::Metadata(
    const ForwardedCaller& caller) const {
  // A certificate's identity is the client's text (a signed one, but any bytes a CA wrote): it
  // goes into metadata only in a form gRPC can carry.
  std::vector<std::pair<std::string, std::string>> out = {
      {kSecretKey, secret_}, {kPeerKey, EscapeMetadataValue(caller.peer)}};
  if (!caller.certificate.empty()) {
    out.emplace_back(kCertificateKey, EscapeMetadataValue(caller.certificate));
  }
  return out;
}

void GatewayMark::Apply(grpc::ClientContext& context, const ForwardedCaller& caller) const {
  for (const auto& [key, value] : Metadata(caller)) context.AddMetadata(key, value);
}

std::optional<ForwardedCaller> GatewayMark::Verify(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  // One value only: a caller cannot slip a second, forged one beside a copied key.
  if (metadata.count(kSecretKey) != 1) return std::nullopt;
  const std::string given = Find(metadata, kSecretKey);
  if (given.size() != secret_.size() ||
      CRYPTO_memcmp(given.data(), secret_.data(), secret_.size()) != 0) {
    return std::nullopt;
  }
  return ForwardedCaller{Find(metadata, kPeerKey), Find(metadata, kCertificateKey)};
}

}  // namespace drgate::plugin
