#include "plugin/tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

#include "core/common/file.h"

namespace drgate::plugin {
namespace {

std::string ReadFile(const std::string& path) {
  auto content = ReadRegularFile(path, kMaxPemFileBytes);
  return content.ok() ? *content : std::string();
}

// gRPC logs, but does not report, files it cannot use; an operator should learn at startup.
Status CheckPem(const std::string& key, const std::string& path, const std::string& marker) {
  const std::string content = ReadFile(path);
  if (content.find("-----BEGIN ") == std::string::npos ||
      content.find(marker) == std::string::npos) {
    return Status(StatusCode::kFailedPrecondition,
                  key + ": " + path + " holds no PEM " +
                      (marker == "PRIVATE KEY-----" ? "private key" : "certificate"),
                  Reason::kTlsConfigInvalid);
  }
  return Status::Ok();
}

std::string FirstProperty(const grpc::AuthContext& auth, const char* name) {
  for (const auto& v : auth.FindPropertyValues(name)) {
    if (!v.empty()) return std::string(v.data(), v.size());
  }
  return "";
}

}  // namespace

bool IsLoopbackListen(const std::string& listen) {
  return listen.rfind("127.", 0) == 0 || listen.rfind("localhost:", 0) == 0 ||
         listen.rfind("[::1]:", 0) == 0 || listen.rfind("unix:", 0) == 0;
}

Status CheckGrpcTlsFiles(const GrpcTlsConfig& tls) {
  for (Status s : {CheckPem("grpc.tls.cert_file", tls.cert_file, "CERTIFICATE-----"),
                   CheckPem("grpc.tls.key_file", tls.key_file, "PRIVATE KEY-----")}) {
    if (!s.ok()) return s;
  }
  if (!tls.client_ca_file.empty()) {
    return CheckPem("grpc.tls.client_ca_file", tls.client_ca_file, "CERTIFICATE-----");
  }
  return Status::Ok();
}

StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeGrpcServerCredentials(
    const std::optional<GrpcTlsConfig>& tls, const std::string& listen) {
  if (!tls) {
    if (!IsLoopbackListen(listen)) {
      spdlog::warn(
          "grpc.tls is not configured: the gRPC port {} is plaintext; calls and bearer tokens "
          "travel unencrypted. Configure grpc.tls or bind grpc.listen to loopback",
          listen);
    }
    return grpc::InsecureServerCredentials();
  }
  if (Status s = CheckGrpcTlsFiles(*tls); !s.ok()) return s;
  const bool mutual = !tls->client_ca_file.empty();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(tls->reload_interval);
  const unsigned int refresh = static_cast<unsigned int>(std::max<long long>(1, seconds.count()));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls->key_file, tls->cert_file, mutual ? tls->client_ca_file : std::string(), refresh);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (mutual) {
    options.watch_root_certs();
    options.set_cert_request_type(tls->require_client_cert
                                      ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                      : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  // gRPC 1.51 has no set_min_tls_version on the C++ options; its default minimum is TLS 1.2
  // (and the maximum TLS 1.3), which is what drgate wants.
  auto creds = grpc::experimental::TlsServerCredentials(options);
  if (!creds) {
    return Status(StatusCode::kFailedPrecondition, "grpc.tls: gRPC refused the TLS settings",
                  Reason::kTlsConfigInvalid);
  }
  spdlog::info("gRPC TLS: certificate {}, {}, files re-read every {} s", tls->cert_file,
               !mutual                    ? "no client certificates"
               : tls->require_client_cert ? "client certificates required (mutual TLS)"
                                          : "client certificates verified when sent",
               refresh);
  return creds;
}

std::string PeerCertificateIdentity(const grpc::AuthContext& auth) {
  // Set only when the handshake verified a client certificate.
  if (auth.FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME).empty()) return "";
  for (const char* name :
       {GRPC_PEER_URI_PROPERTY_NAME, GRPC_PEER_DNS_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME}) {
    if (auto id = FirstProperty(auth, name); !id.empty()) return id;
  }
  return "";
}

std::string CertificateIdentity(X509* certificate) {
  if (certificate == nullptr) return "";
  std::unique_ptr<GENERAL_NAMES, void (*)(GENERAL_NAMES*)> names(
      static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr)),
      GENERAL_NAMES_free);
  auto first = [&names](int type) -> std::string {
    for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type != type) continue;
      const ASN1_IA5STRING* text =
          type == GEN_URI ? name->d.uniformResourceIdentifier : name->d.dNSName;
      return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                         static_cast<std::size_t>(ASN1_STRING_length(text)));
    }
    return "";
  };
  for (int type : {GEN_URI, GEN_DNS}) {
    if (std::string id = first(type); !id.empty()) return id;
  }
  char cn[256] = {};
  const int n =
      X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, cn, sizeof(cn));
  return n > 0 ? std::string(cn, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace drgate::plugin
