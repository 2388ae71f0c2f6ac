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
auth: {mode: insecure}
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
auth: {mode: insecure}
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

TEST_F(ConfigTest, DrHistoryKeysHaveDefaultsAndAreRead) {
  auto defaults = Parse(kMinimal);
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(defaults->tracking.history_lookback, std::chrono::hours(24 * 7));
  EXPECT_EQ(defaults->tracking.history_interval, std::chrono::minutes(5));
  EXPECT_EQ(defaults->tracking.options_interval, std::chrono::hours(1));

  auto set =
      Parse(std::string(kMinimal) +
            "tracking: {history_lookback: 2d, history_interval: 1m, options_interval: 30m}\n");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->tracking.history_lookback, std::chrono::hours(48));
  EXPECT_EQ(set->tracking.history_interval, std::chrono::minutes(1));
  EXPECT_EQ(set->tracking.options_interval, std::chrono::minutes(30));

  ExpectError(std::string(kMinimal) + "tracking: {options_interval: 0s}\n",
              "tracking.options_interval", "at least 1s");
}

TEST_F(ConfigTest, IntentGraceMustOutlastTheSlowestTrigger) {
  ExpectError(R"(
tracking: {intent_grace: 30s}
auth: {mode: insecure}
commcells:
  - name: a
    url: https://x/api
    username: a
    password_file: secrets/password
    request_timeout: 20s
)",
              "tracking.intent_grace", "2 x connect_timeout + 2 x request_timeout = 50 s");
}

// Who may start a DR backup is never a silent default: an absent `auth` section is an error that
// shows both ways to write it.
TEST_F(ConfigTest, AuthSectionIsRequired) {
  const std::string without_auth = std::string(kMinimal).substr(sizeof("\nauth: {mode: insecure}"));
  ExpectError("\n" + without_auth, "auth", "auth: {mode: insecure}");
  ExpectError("auth: {}\n" + without_auth, "auth.mode", "tokens or insecure");
}

TEST_F(ConfigTest, MaxMessageBytes) {
  auto c = Parse(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->grpc_max_message_bytes, 65536);
  c = Parse(std::string("grpc: {max_message_bytes: 2048}") + kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->grpc_max_message_bytes, 2048);
  ExpectError(std::string("grpc: {max_message_bytes: 100}") + kMinimal, "grpc.max_message_bytes",
              "1024-16777216");
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
auth: {mode: insecure}
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

// Upstream fault policies per CommCell (README, "Upstream faults").
std::string WithPolicy(const std::string& extra) {
  return std::string(kMinimal) + extra;
}

TEST_F(ConfigTest, UpstreamPoliciesHaveDocumentedDefaults) {
  auto c = Parse(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const auto& cell = c->commcells[0];
  EXPECT_EQ(cell.retry_max_attempts, 3);
  EXPECT_EQ(cell.retry_initial_backoff, std::chrono::milliseconds(200));
  EXPECT_EQ(cell.retry_max_backoff, std::chrono::seconds(2));
  EXPECT_EQ(cell.breaker_failure_threshold, 5);
  EXPECT_EQ(cell.breaker_open_for, std::chrono::seconds(30));
  EXPECT_EQ(cell.max_response_bytes, 4 * 1024 * 1024);
  EXPECT_EQ(cell.max_pending_requests, 64);
}

TEST_F(ConfigTest, UpstreamPoliciesAreReadPerCommCell) {
  auto c = Parse(WithPolicy(R"(    retry: {max_attempts: 5, initial_backoff: 50ms, max_backoff: 1s}
    circuit_breaker: {failure_threshold: 2, open_for: 2s}
    max_response_bytes: 65536
    max_pending_requests: 8
)"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const auto& cell = c->commcells[0];
  EXPECT_EQ(cell.retry_max_attempts, 5);
  EXPECT_EQ(cell.retry_initial_backoff, std::chrono::milliseconds(50));
  EXPECT_EQ(cell.retry_max_backoff, std::chrono::seconds(1));
  EXPECT_EQ(cell.breaker_failure_threshold, 2);
  EXPECT_EQ(cell.breaker_open_for, std::chrono::seconds(2));
  EXPECT_EQ(cell.max_response_bytes, 65536);
  EXPECT_EQ(cell.max_pending_requests, 8);
}

TEST_F(ConfigTest, InvalidUpstreamPoliciesNameTheKey) {
  ExpectError(WithPolicy("    retry: {max_attempts: 0}\n"), "commcells[0].retry.max_attempts",
              "must be 1-10");
  ExpectError(WithPolicy("    retry: {max_attempts: many}\n"), "commcells[0].retry.max_attempts",
              "wrong type");
  ExpectError(WithPolicy("    retry: {attempts: 2}\n"), "commcells[0].retry.attempts",
              "unknown key");
  ExpectError(WithPolicy("    retry: {initial_backoff: 2s, max_backoff: 1s}\n"),
              "commcells[0].retry.max_backoff", "at least");
  ExpectError(WithPolicy("    retry: {initial_backoff: soon}\n"),
              "commcells[0].retry.initial_backoff", "invalid duration");
  ExpectError(WithPolicy("    circuit_breaker: {failure_threshold: 0}\n"),
              "commcells[0].circuit_breaker.failure_threshold", "must be 1-1000");
  ExpectError(WithPolicy("    circuit_breaker: {open_for: 10ms}\n"),
              "commcells[0].circuit_breaker.open_for", "at least 100ms");
  ExpectError(WithPolicy("    max_response_bytes: 100\n"), "commcells[0].max_response_bytes",
              "must be 1024-1073741824");
  ExpectError(WithPolicy("    max_pending_requests: 0\n"), "commcells[0].max_pending_requests",
              "must be 1-100000");
}

class PostgresRegistryConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("secrets/password", "s3cret-pw\n");
    dir_.Write("secrets/pg", "pg-s3cret\n");
  }
  StatusOr<Config> Parse(const std::string& registry) {
    return ParseConfig(registry + R"(
auth: {mode: insecure}
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
