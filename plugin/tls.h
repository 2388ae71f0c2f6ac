#pragma once

// TLS on drgate's gRPC port: server credentials from grpc.tls, and the caller identity a client
// certificate carries.

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/server_credentials.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "core/common/status.h"
#include "plugin/server_config.h"

namespace drgate::plugin {

// Credentials for the gRPC listening port. Without grpc.tls: insecure (plaintext) credentials,
// with a warning unless `listen` is a loopback address. With grpc.tls: TLS (1.2 or later) whose
// certificate, key and client CA files are re-read every reload_interval, so rotated files apply
// to new connections without a restart; established connections are left alone. With
// client_ca_file: mutual TLS (clients must present a certificate from that CA unless
// require_client_cert is false). FAILED_PRECONDITION when the files do not hold usable PEM.
StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeGrpcServerCredentials(
    const std::optional<GrpcTlsConfig>& tls, const std::string& listen);

// Checks that grpc.tls's files hold PEM of the right kind (what MakeGrpcServerCredentials checks
// before it starts watching them). FAILED_PRECONDITION naming the key.
Status CheckGrpcTlsFiles(const GrpcTlsConfig& tls);

// The identity of a peer whose client certificate the TLS handshake verified: its first URI
// subject alternative name (e.g. a SPIFFE id), else its first DNS one, else its subject common
// name. Empty when the peer presented no verified certificate.
std::string PeerCertificateIdentity(const grpc::AuthContext& auth);

// The same identity from a certificate the TLS handshake verified (the HTTP port's, read with
// OpenSSL): URI SAN, else DNS SAN, else common name.
std::string CertificateIdentity(X509* certificate);

// True for "127.x.x.x:port", "localhost:port", "[::1]:port" and unix sockets.
bool IsLoopbackListen(const std::string& listen);

}  // namespace drgate::plugin
