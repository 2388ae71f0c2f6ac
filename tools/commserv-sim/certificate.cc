#include "tools/commserv-sim/certificate.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>

namespace commserv_sim {
namespace {

constexpr long kValiditySeconds = 24 * 60 * 60;

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* pointer) const {
    Free(pointer);
  }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
struct FileCloser {
  void operator()(FILE* file) const { std::fclose(file); }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

void Check(bool ok, const char* step) {
  if (!ok) throw std::runtime_error(std::string("certificate generation failed: ") + step);
}

void AddExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, cert, cert, nullptr, nullptr, 0);
  ExtensionPtr extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value));
  Check(extension != nullptr, "extension");
  Check(X509_add_ext(cert, extension.get(), -1) == 1, "add extension");
}

// Opens `path` for writing, created with `mode` (so a key is never readable by others).
FilePtr OpenForWrite(const std::filesystem::path& path, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  FILE* file = fd >= 0 ? fdopen(fd, "w") : nullptr;
  if (file == nullptr) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot write " + path.string());
  }
  return FilePtr(file);
}

}  // namespace

CertificateFiles WriteSelfSignedCertificate(const std::filesystem::path& dir) {
  KeyPtr key(EVP_EC_gen("P-256"));
  Check(key != nullptr, "key");

  CertPtr cert(X509_new());
  Check(cert != nullptr, "X509_new");
  Check(X509_set_version(cert.get(), 2) == 1, "version");
  Check(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()),
                         static_cast<long>(std::time(nullptr))) == 1,
        "serial");
  Check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60) != nullptr, "notBefore");
  Check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), kValiditySeconds) != nullptr, "notAfter");
  X509_NAME* name = X509_get_subject_name(cert.get());
  Check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("localhost"), -1, -1,
                                   0) == 1,
        "subject");
  Check(X509_set_issuer_name(cert.get(), name) == 1, "issuer");
  Check(X509_set_pubkey(cert.get(), key.get()) == 1, "public key");
  AddExtension(cert.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  AddExtension(cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign");
  AddExtension(cert.get(), NID_ext_key_usage, "serverAuth");
  Check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "sign");

  std::filesystem::create_directories(dir);
  CertificateFiles files{dir / "cert.pem", dir / "key.pem"};
  {
    FilePtr file = OpenForWrite(files.cert, 0644);
    Check(PEM_write_X509(file.get(), cert.get()) == 1, "write certificate");
  }
  {
    std::filesystem::remove(files.key);  // An existing file would keep its old mode.
    FilePtr file = OpenForWrite(files.key, 0600);
    Check(PEM_write_PrivateKey(file.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "write key");
  }
  return files;
}

std::filesystem::path WriteExpiredCertificate(const CertificateFiles& valid,
                                              const std::filesystem::path& dir) {
  CertPtr cert;
  {
    FilePtr file(std::fopen(valid.cert.c_str(), "r"));
    Check(file != nullptr, "read certificate");
    cert.reset(PEM_read_X509(file.get(), nullptr, nullptr, nullptr));
    Check(cert != nullptr, "parse certificate");
  }
  KeyPtr key;
  {
    FilePtr file(std::fopen(valid.key.c_str(), "r"));
    Check(file != nullptr, "read key");
    key.reset(PEM_read_PrivateKey(file.get(), nullptr, nullptr, nullptr));
    Check(key != nullptr, "parse key");
  }
  // Issued by the valid certificate (same key), under a subject of its own: a self-issued copy
  // would only be reported as "self-signed", not as expired.
  Check(X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) == 1, "issuer");
  X509_NAME* subject = X509_NAME_new();
  Check(subject != nullptr && X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                                         reinterpret_cast<const unsigned char*>(
                                                             "commserv-sim expired certificate"),
                                                         -1, -1, 0) == 1,
        "subject");
  const bool subject_set = X509_set_subject_name(cert.get(), subject) == 1;
  X509_NAME_free(subject);
  Check(subject_set, "subject");
  Check(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()),
                         static_cast<long>(std::time(nullptr)) + 1) == 1,
        "serial");
  Check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -2 * kValiditySeconds) != nullptr,
        "notBefore");
  Check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), -kValiditySeconds) != nullptr, "notAfter");
  Check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "sign");
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / "expired-cert.pem";
  FilePtr file = OpenForWrite(path, 0644);
  Check(PEM_write_X509(file.get(), cert.get()) == 1, "write certificate");
  return path;
}

std::filesystem::path MakeTempDirectory() {
  std::string pattern = (std::filesystem::temp_directory_path() / "commserv-sim-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

}  // namespace commserv_sim
