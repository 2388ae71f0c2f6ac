#pragma once

// Certificates made in the test with OpenSSL (P-256, SHA-256), so no key material is committed:
// a CA, certificates it issues, or a self-signed certificate that is its own trust anchor.
// Consumers link OpenSSL::Crypto.

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace drgate::testing {

struct Issued {
  std::shared_ptr<EVP_PKEY> key;
  std::shared_ptr<X509> cert;
  std::string cert_pem;
  std::string key_pem;
};

namespace pki_detail {

inline void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("OpenSSL: ") + what + " failed");
}

inline void AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  Check(ext != nullptr, "X509V3_EXT_conf_nid");
  Check(X509_add_ext(cert, ext, -1) == 1, "X509_add_ext");
  X509_EXTENSION_free(ext);
}

template <typename WriteFn>
std::string ToPem(WriteFn write) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  Check(write(bio.get()) == 1, "PEM_write");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

}  // namespace pki_detail

// A certificate for CN=`cn`, valid from an hour ago for a day. `issuer` nullptr: a self-signed
// CA (which may also serve TLS itself, so it can be its own trust anchor). `san` is an OpenSSL
// subjectAltName value ("DNS:localhost,IP:127.0.0.1"), `eku` an extendedKeyUsage value
// ("serverAuth"); empty for none.
inline Issued Issue(const std::string& cn, const Issued* issuer, const std::string& san = "",
                    const std::string& eku = "") {
  using pki_detail::AddExtension;
  using pki_detail::Check;
  Issued out;
  out.key = std::shared_ptr<EVP_PKEY>(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  Check(out.key != nullptr, "EVP_EC_gen");
  out.cert = std::shared_ptr<X509>(X509_new(), &X509_free);
  X509* cert = out.cert.get();
  Check(cert != nullptr, "X509_new");
  Check(X509_set_version(cert, 2) == 1, "X509_set_version");
  unsigned char serial[8];
  Check(RAND_bytes(serial, sizeof serial) == 1, "RAND_bytes");
  serial[0] &= 0x7f;
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_bin2bn(serial, sizeof serial, nullptr),
                                                 &BN_free);
  Check(BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) != nullptr, "serial");
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  Check(X509_set_pubkey(cert, out.key.get()) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert);
  Check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                   0) == 1,
        "CN");
  X509* issuer_cert = issuer ? issuer->cert.get() : cert;
  Check(X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert)) == 1, "issuer");
  if (issuer == nullptr) {
    AddExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert, cert, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign");
  } else {
    AddExtension(cert, issuer_cert, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert, issuer_cert, NID_key_usage, "critical,digitalSignature");
  }
  if (!eku.empty()) AddExtension(cert, issuer_cert, NID_ext_key_usage, eku);
  AddExtension(cert, issuer_cert, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) AddExtension(cert, issuer_cert, NID_authority_key_identifier, "keyid");
  if (!san.empty()) AddExtension(cert, issuer_cert, NID_subject_alt_name, san);
  EVP_PKEY* signer = issuer ? issuer->key.get() : out.key.get();
  Check(X509_sign(cert, signer, EVP_sha256()) > 0, "X509_sign");
  out.cert_pem = pki_detail::ToPem([&](BIO* b) { return PEM_write_bio_X509(b, cert); });
  out.key_pem = pki_detail::ToPem([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, out.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  return out;
}

// A self-signed certificate that is its own trust anchor, for a TLS server or client.
inline Issued SelfSigned(const std::string& cn, const std::string& san) {
  return Issue(cn, nullptr, san);
}
inline Issued ServerCert(const std::string& cn, const Issued& ca) {
  return Issue(cn, &ca, "DNS:localhost,IP:127.0.0.1", "serverAuth");
}
inline Issued ClientCert(const std::string& cn, const Issued& ca, const std::string& san = "") {
  return Issue(cn, &ca, san, "clientAuth");
}

}  // namespace drgate::testing
