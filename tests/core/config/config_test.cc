#include "core/config/config.h"

#include <gtest/gtest.h>

#include "tests/fakes/temp_dir.h"

namespace drgate {
namespace {

using drgate::testing::TempDir;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("secrets/password", "s3cret-pw\n");
    dir_.Write("secrets/token", "QSDK abc\n");
  }
  StatusOr<Config> Parse(const std::string& yaml) {
    return ParseConfig(yaml, dir_.path().string());
  }
  // Asserts a CONFIG_INVALID error whose message starts with `key`.
  void ExpectError(const std::string& yaml, const std::string& key, const std::string& part) {
    auto c = Parse(yaml);
    ASSERT_FALSE(c.ok()) << yaml;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(c.status().reason(), "CONFIG_INVALID");
    EXPECT_EQ(c.status().message().rfind(key + ": ", 0), 0u) << c.status().message();
    EXPECT_NE(c.status().message().find(part), std::string::npos) << c.status().message();
  }
  TempDir dir_;
};

constexpr char kMinimal[] = R"(
commcells:
  - name: cs1
    url: https://cs1.example.com/commandcenter/api
    username: admin
    password_file: secrets/password
)";

TEST_F(ConfigTest, MinimalConfigGetsDefaults) {
  auto c = Parse(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->grpc_listen, "127.0.0.1:50051");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(c->registry_path, dir_.File("drgate.db"));
  ASSERT_EQ(c->commcells.size(), 1u);
  const auto& cell = c->commcells[0];
  EXPECT_EQ(cell.name, "cs1");
  EXPECT_EQ(cell.format, "json");
  EXPECT_EQ(cell.password.value, "s3cret-pw");  // trimmed
  EXPECT_EQ(cell.password_file, dir_.File("secrets/password"));
  EXPECT_EQ(cell.device_id, "drgate-cs1");
  EXPECT_FALSE(cell.insecure_skip_verify);
  EXPECT_EQ(cell.request_timeout, std::chrono::seconds(60));
}

TEST_F(ConfigTest, FullConfig) {
  dir_.Write("ca.pem", "pem");
  auto c = Parse(R"(
grpc: {listen: "0.0.0.0:7000"}
metrics: {listen: "127.0.0.1:0"}
registry: {path: /var/lib/drgate/jobs.db}
log: {level: debug}
shutdown_grace: 3s
commcells:
  - name: prod.cs-1
    url: https://cs1/webconsole/api
    format: xml
    token_file: secrets/token
    ca_file: ca.pem
    insecure_skip_verify: true
    device_id: my-device
    connect_timeout: 2s
    request_timeout: 1m30s
  - name: dr
    url: http://cs2:81/SearchSvc/CVWebService.svc
    username: u
    password_file: secrets/password
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->grpc_listen, "0.0.0.0:7000");
  EXPECT_EQ(c->registry_path, "/var/lib/drgate/jobs.db");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->shutdown_grace, std::chrono::seconds(3));
  ASSERT_EQ(c->commcells.size(), 2u);
  EXPECT_EQ(c->commcells[0].format, "xml");
  EXPECT_EQ(c->commcells[0].token.value, "QSDK abc");
  EXPECT_TRUE(c->commcells[0].password.empty());
  EXPECT_EQ(c->commcells[0].ca_file, dir_.File("ca.pem"));
  EXPECT_TRUE(c->commcells[0].insecure_skip_verify);
  EXPECT_EQ(c->commcells[0].device_id, "my-device");
  EXPECT_EQ(c->commcells[0].connect_timeout, std::chrono::seconds(2));
  EXPECT_EQ(c->commcells[0].request_timeout, std::chrono::seconds(90));
  EXPECT_EQ(c->commcells[1].name, "dr");
}

TEST_F(ConfigTest, ErrorsNameTheKey) {
  ExpectError("commcells: []", "commcells", "at least one");
  ExpectError("grpc: {listen: nope}\ncommcells: []", "grpc.listen", "HOST:PORT");
  ExpectError("registry: {pth: x}", "registry.pth", "unknown key");
  ExpectError("colour: red", "colour", "unknown key");
  ExpectError("log: {level: loud}\ncommcells: []", "log.level", "must be one of");
  ExpectError(R"(
commcells:
  - url: https://x/api
    username: a
    password_file: secrets/password
)",
              "commcells[0].name", "is required");
  ExpectError(R"(
commcells:
  - name: a
    url: ftp://x/api
    username: a
    password_file: secrets/password
)",
              "commcells[0].url", "https:// or http://");
  ExpectError(R"(
commcells:
  - name: a
    url: https://x/api
    format: yaml
    username: a
    password_file: secrets/password
)",
              "commcells[0].format", "json or xml");
  ExpectError(R"(
commcells:
  - name: a
    url: https://x/api
)",
              "commcells[0]", "either username + password_file or token_file");
  ExpectError(R"(
commcells:
  - name: a
    url: https://x/api
    username: a
    password_file: missing.txt
)",
              "commcells[0].password_file", "cannot read file");
  ExpectError(R"(
commcells:
  - name: a
    url: https://x/api
    username: a
    password_file: secrets/password
    insecure_skip_verify: maybe
)",
              "commcells[0].insecure_skip_verify", "true or false");
  ExpectError(R"(
commcells:
  - name: a
    url: https://x/api
    username: a
    password_file: secrets/password
  - name: a
    url: https://y/api
    username: a
    password_file: secrets/password
)",
              "commcells[1].name", "duplicate");
  ExpectError(R"(
commcells:
  - name: a
    url: https://x/api
    username: a
    password_file: secrets/password
    request_timeout: soon
)",
              "commcells[0].request_timeout", "invalid duration");
}

TEST_F(ConfigTest, IntentGraceMustOutlastTheSlowestTrigger) {
  ExpectError(R"(
tracking: {intent_grace: 30s}
commcells:
  - name: a
    url: https://x/api
    username: a
    password_file: secrets/password
    request_timeout: 20s
)",
              "tracking.intent_grace", "2 x connect_timeout + 2 x request_timeout = 50 s");
}

TEST_F(ConfigTest, SyntaxErrorNamesTheLine) {
  auto c = Parse("commcells:\n  - name: [unclosed\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().reason(), "CONFIG_INVALID");
  EXPECT_NE(c.status().message().find("line "), std::string::npos) << c.status().message();
}

TEST_F(ConfigTest, SecretsNeverAppearInErrors) {
  // The password file exists; a later error must not echo its content.
  auto c = Parse(R"(
commcells:
  - name: a
    url: https://x/api
    username: a
    password_file: secrets/password
    format: nope
)");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().find("s3cret-pw"), std::string::npos);
}

TEST(ParseDurationTest, AcceptsUnitsAndSums) {
  EXPECT_EQ(*ParseDuration("500ms"), std::chrono::milliseconds(500));
  EXPECT_EQ(*ParseDuration("30s"), std::chrono::seconds(30));
  EXPECT_EQ(*ParseDuration("5m"), std::chrono::minutes(5));
  EXPECT_EQ(*ParseDuration("1h30m"), std::chrono::minutes(90));
  for (const char* bad : {"", "5", "s", "5w", "-1s", "1.5s"}) {
    auto d = ParseDuration(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().reason(), "INVALID_DURATION") << bad;
  }
}

TEST_F(ConfigTest, LoadConfigResolvesAgainstTheFilesFolder) {
  const std::string path = dir_.Write("etc/drgate.yaml", R"(
registry: {path: state/jobs.db}
commcells:
  - name: cs1
    url: https://cs1/commandcenter/api
    username: admin
    password_file: ../secrets/password
)");
  auto c = LoadConfig(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->registry_path, dir_.File("etc/state/jobs.db"));
  EXPECT_EQ(c->commcells[0].password.value, "s3cret-pw");
  auto missing = LoadConfig(dir_.File("nope.yaml"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot read"), std::string::npos);
}

}  // namespace
}  // namespace drgate

namespace drgate {
namespace {

class PostgresRegistryConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("secrets/password", "s3cret-pw\n");
    dir_.Write("secrets/pg", "pg-s3cret\n");
  }
  StatusOr<Config> Parse(const std::string& registry) {
    return ParseConfig(registry + R"(
commcells:
  - name: cs1
    url: https://cs1.example.com/commandcenter/api
    username: admin
    password_file: secrets/password
)",
                       dir_.path().string());
  }
  testing::TempDir dir_;
};

TEST_F(PostgresRegistryConfigTest, SelectsPostgresWithThePasswordFromItsFile) {
  auto c = Parse(R"(
registry:
  postgres:
    dsn: "host=db port=5432 dbname=drgate user=drgate"
    password_file: secrets/pg
    pool_size: 4
    leader_lease: 5s
    watch_interval: 200ms
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c->registry_postgres.has_value());
  EXPECT_EQ(c->registry_postgres->dsn, "host=db port=5432 dbname=drgate user=drgate");
  EXPECT_EQ(c->registry_postgres->password.value, "pg-s3cret");
  EXPECT_EQ(c->registry_postgres->pool_size, 4);
  EXPECT_EQ(c->registry_postgres->leader_lease, std::chrono::seconds(5));
  EXPECT_EQ(c->registry_postgres->watch_interval, std::chrono::milliseconds(200));
}

TEST_F(PostgresRegistryConfigTest, SqliteStaysTheDefault) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->registry_postgres.has_value());
  EXPECT_EQ(c->registry_path, (dir_.path() / "drgate.db").string());
}

TEST_F(PostgresRegistryConfigTest, ErrorsNameTheKeyAndNeverEchoTheDsn) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"registry: {postgres: {password_file: secrets/pg}}", "registry.postgres.dsn: is required"},
      {"registry: {postgres: {dsn: \"host=db password=dsn-s3cret\"}}",
       "registry.postgres.dsn: must not contain a password"},
      {"registry: {postgres: {dsn: \"host=db nonsense=1\"}}",
       "registry.postgres.dsn: is not a libpq connection string"},
      {"registry: {postgres: {dsn: \"host=db\", pool_size: 0}}",
       "registry.postgres.pool_size: must be between 1 and 100"},
      {"registry: {postgres: {dsn: \"host=db\", leader_lease: 500ms}}",
       "registry.postgres.leader_lease: must be at least 1s"},
      {"registry: {postgres: {dsn: \"host=db\", password_file: secrets/missing}}",
       "registry.postgres.password_file: cannot read file"},
      {"registry: {path: x.db, postgres: {dsn: \"host=db\"}}",
       "registry.postgres: cannot be combined with registry.path"},
      {"registry: {postgres: {dsn: \"host=db\", typo: 1}}", "registry.postgres"},
  };
  for (const auto& [yaml, want] : cases) {
    auto c = Parse(yaml);
    ASSERT_FALSE(c.ok()) << yaml;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << yaml;
    EXPECT_EQ(c.status().message().rfind(want, 0), 0u) << c.status().message();
    EXPECT_EQ(c.status().message().find("dsn-s3cret"), std::string::npos);
    EXPECT_EQ(c.status().message().find("pg-s3cret"), std::string::npos);
  }
}

}  // namespace
}  // namespace drgate
