// Server::Check: what startup checks beyond the configuration parser, and what --check-config
// therefore refuses too.

#include <gtest/gtest.h>

#include "core/config/config.h"
#include "plugin/server.h"
#include "tests/fakes/temp_dir.h"

namespace drgate::plugin {
namespace {

class ServerCheckTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_.Write("password", "s3cret\n"); }
  StatusOr<ServerConfig> Parse(const std::string& extra) {
    return ParseServerConfig(std::string("auth: {mode: insecure}\n"
                                         "commcells:\n"
                                         "  - name: cs1\n"
                                         "    url: https://cs1.example.com/api\n"
                                         "    username: admin\n"
                                         "    password_file: password\n") +
                                 extra,
                             dir_.path().string());
  }
  // Parses (which must succeed), then expects Check to refuse with a message starting `want`.
  void ExpectRefused(const std::string& extra, const std::string& want) {
    auto c = Parse(extra);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    const Status s = Server::Check(*c);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_EQ(s.reason(), "CONFIG_INVALID");
    EXPECT_EQ(s.message().rfind(want, 0), 0u) << s.message();
    EXPECT_EQ(s.message().find("dsn-s3cret"), std::string::npos) << s.message();
  }
  testing::TempDir dir_;
};

TEST_F(ServerCheckTest, AcceptsAValidConfiguration) {
  auto c = Parse("registry: {postgres: {dsn: \"host=db dbname=drgate\"}}\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(Server::Check(*c).ok()) << Server::Check(*c).ToString();
}

TEST_F(ServerCheckTest, RegistryDsnIsCheckedWithoutEchoingIt) {
  ExpectRefused("registry: {postgres: {dsn: \"host=db password=dsn-s3cret\"}}\n",
                "registry.postgres.dsn: must not contain a password");
  ExpectRefused("registry: {postgres: {dsn: \"host=db nonsense=1\"}}\n",
                "registry.postgres.dsn: is not a libpq connection string");
}

TEST_F(ServerCheckTest, CertificateFilesAreLoaded) {
  dir_.Write("junk.pem", "not pem\n");
  ExpectRefused("    ca_file: junk.pem\n", "commcells[0]: ca_file");
  ExpectRefused("grpc: {tls: {cert_file: junk.pem, key_file: junk.pem}}\n", "grpc.tls.cert_file");
  ExpectRefused("metrics: {tls: {cert_file: junk.pem, key_file: junk.pem}}\n",
                "metrics.tls.cert_file");
}

}  // namespace
}  // namespace drgate::plugin
