// grpc.tls: parsing, defaults, path resolution and errors that name the key.

#include <gtest/gtest.h>

#include "plugin/server_config.h"
#include "tests/fakes/temp_dir.h"

namespace drgate::plugin {
namespace {

using drgate::testing::TempDir;

constexpr char kCommCells[] = R"(
auth: {mode: insecure}
commcells:
  - name: cs1
    url: https://cs1.example.com/commandcenter/api
    username: admin
    password_file: secrets/password
)";

class TlsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("secrets/password", "s3cret-pw\n");
    dir_.Write("tls/tls.crt", "-----BEGIN CERTIFICATE-----\n");
    dir_.Write("tls/tls.key", "-----BEGIN PRIVATE KEY-----\n");
    dir_.Write("tls/ca.crt", "-----BEGIN CERTIFICATE-----\n");
  }
  StatusOr<ServerConfig> Parse(const std::string& grpc) {
    return ParseServerConfig("grpc:\n" + grpc + kCommCells, dir_.path().string());
  }
  void ExpectError(const std::string& grpc, const std::string& key, const std::string& part) {
    auto c = Parse(grpc);
    ASSERT_FALSE(c.ok()) << grpc;
    EXPECT_EQ(c.status().reason(), "CONFIG_INVALID");
    EXPECT_EQ(c.status().message().rfind(key + ": ", 0), 0u) << c.status().message();
    EXPECT_NE(c.status().message().find(part), std::string::npos) << c.status().message();
  }
  TempDir dir_;
};

TEST_F(TlsConfigTest, AbsentMeansPlaintext) {
  auto c = Parse("  listen: 127.0.0.1:1\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->grpc.tls.has_value());
}

TEST_F(TlsConfigTest, ServerTlsWithDefaults) {
  auto c = Parse("  tls: {cert_file: tls/tls.crt, key_file: tls/tls.key}\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c->grpc.tls.has_value());
  EXPECT_EQ(c->grpc.tls->cert_file, dir_.File("tls/tls.crt"));
  EXPECT_EQ(c->grpc.tls->key_file, dir_.File("tls/tls.key"));
  EXPECT_TRUE(c->grpc.tls->client_ca_file.empty());
  EXPECT_EQ(c->grpc.tls->reload_interval, std::chrono::seconds(60));
}

TEST_F(TlsConfigTest, MutualTls) {
  auto c = Parse(
      "  tls: {cert_file: tls/tls.crt, key_file: tls/tls.key, client_ca_file: tls/ca.crt,\n"
      "        reload_interval: 1s}\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->grpc.tls->client_ca_file, dir_.File("tls/ca.crt"));
  EXPECT_TRUE(c->grpc.tls->require_client_cert);
  EXPECT_EQ(c->grpc.tls->reload_interval, std::chrono::seconds(1));
  auto optional = Parse(
      "  tls: {cert_file: tls/tls.crt, key_file: tls/tls.key, client_ca_file: tls/ca.crt,\n"
      "        require_client_cert: false}\n");
  ASSERT_TRUE(optional.ok()) << optional.status().ToString();
  EXPECT_FALSE(optional->grpc.tls->require_client_cert);
}

TEST_F(TlsConfigTest, ErrorsNameTheKey) {
  ExpectError("  tls: {key_file: tls/tls.key}\n", "grpc.tls.cert_file", "is required");
  ExpectError("  tls: {cert_file: tls/tls.crt}\n", "grpc.tls.key_file", "is required");
  ExpectError("  tls: {cert_file: tls/missing.crt, key_file: tls/tls.key}\n", "grpc.tls.cert_file",
              "missing.crt");
  ExpectError("  tls: {cert_file: tls/tls.crt, key_file: tls}\n", "grpc.tls.key_file",
              "is not a regular file");
  ExpectError("  tls: {cert_file: tls/tls.crt, key_file: tls/tls.key, client_ca_file: nope}\n",
              "grpc.tls.client_ca_file", "No such file or directory");
  ExpectError("  tls: {cert_file: tls/tls.crt, key_file: tls/tls.key, reload_interval: 10ms}\n",
              "grpc.tls.reload_interval", "at least 1s");
  ExpectError("  tls: {cert_file: tls/tls.crt, key_file: tls/tls.key, require_client_cert: true}\n",
              "grpc.tls.require_client_cert", "client_ca_file");
  ExpectError("  tls: {cert_file: tls/tls.crt, key_file: tls/tls.key, require_client_cert: 3}\n",
              "grpc.tls.require_client_cert", "true or false");
  ExpectError("  tls: {cert: tls/tls.crt}\n", "grpc.tls.cert", "unknown key");
}

// A tokens-file entry naming a client certificate can only ever match under mutual TLS.
TEST_F(TlsConfigTest, CertificateCallersNeedMutualTls) {
  dir_.Write("tokens.yaml",
             "tokens:\n  - {certificate: spiffe://example.com/a, identity: a, roles: [viewer]}\n");
  const std::string cells = std::string(kCommCells).substr(sizeof("\nauth: {mode: insecure}"));
  const std::string auth = "auth: {mode: tokens, tokens_file: tokens.yaml}\n";
  auto plain = ParseServerConfig(
      "grpc:\n  tls: {cert_file: tls/tls.crt, key_file: tls/tls.key}\n" + auth + cells,
      dir_.path().string());
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(
      plain.status().message().rfind("auth.tokens_file: tokens[0].certificate: needs mutual "
                                     "TLS (grpc.tls.client_ca_file or http.tls.client_ca_file)",
                                     0),
      0u)
      << plain.status().message();
  auto mutual = ParseServerConfig(
      "grpc:\n  tls: {cert_file: tls/tls.crt, key_file: tls/tls.key, client_ca_file: "
      "tls/ca.crt}\n" +
          auth + cells,
      dir_.path().string());
  ASSERT_TRUE(mutual.ok()) << mutual.status().ToString();
  ASSERT_EQ(mutual->auth.tokens.size(), 1u);
  EXPECT_EQ(mutual->auth.tokens[0].certificate, "spiffe://example.com/a");
}

}  // namespace
}  // namespace drgate::plugin
