// A throwaway self-signed server certificate, so that the simulator can serve TLS without setup.
#ifndef DRGATE_TOOLS_COMMSERV_SIM_CERTIFICATE_H_
#define DRGATE_TOOLS_COMMSERV_SIM_CERTIFICATE_H_

#include <filesystem>

namespace commserv_sim {

struct CertificateFiles {
  std::filesystem::path cert;  // PEM certificate; clients can trust it as their CA file.
  std::filesystem::path key;   // PEM private key, readable by the owner only.
};

// Generates an EC P-256 key and a self-signed certificate for CN=localhost with subjectAltName
// DNS:localhost and IP:127.0.0.1, valid for one day, and writes them to `dir` as cert.pem and
// key.pem (creating `dir` if needed). Throws std::runtime_error on failure.
CertificateFiles WriteSelfSignedCertificate(const std::filesystem::path& dir);

// Writes `dir`/expired-cert.pem: a certificate issued by `valid.cert` with its key (same
// extensions and names, subject "commserv-sim expired certificate"), so a client that trusts
// `valid.cert` builds the chain, whose validity ended a day ago and began two days ago. A client
// verifying it fails with "certificate has expired". Throws std::runtime_error on failure.
std::filesystem::path WriteExpiredCertificate(const CertificateFiles& valid,
                                              const std::filesystem::path& dir);

// Creates a fresh private directory under the system temp directory. Throws std::runtime_error.
std::filesystem::path MakeTempDirectory();

}  // namespace commserv_sim

#endif  // DRGATE_TOOLS_COMMSERV_SIM_CERTIFICATE_H_
