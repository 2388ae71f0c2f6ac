#include "plugin/server_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>

#include "core/common/file.h"

#include "tests/fakes/temp_dir.h"

namespace drgate::plugin {
namespace {

using drgate::testing::TempDir;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("secrets/password", "s3cret-pw\n");
    dir_.Write("secrets/token", "QSDK abc\n");
  }
  StatusOr<ServerConfig> Parse(const std::string& yaml) {
    return ParseServerConfig(yaml, dir_.path().string());
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
  EXPECT_EQ(c->grpc.listen, "127.0.0.1:50051");
  EXPECT_EQ(c->metrics.listen, "127.0.0.1:9464");
  EXPECT_EQ(c->core.registry_path, dir_.File("drgate.db"));
  ASSERT_EQ(c->core.commcells.size(), 1u);
  const auto& cell = c->core.commcells[0];
  EXPECT_EQ(cell.name, "cs1");
  EXPECT_EQ(cell.format, commserv::WireFormat::kJson);
  EXPECT_EQ(cell.password.value, "s3cret-pw");  // trimmed
  EXPECT_EQ(cell.password_file, dir_.File("secrets/password"));
  EXPECT_EQ(cell.device_id, "drgate-cs1");
  EXPECT_FALSE(cell.insecure_skip_verify);
  EXPECT_EQ(cell.policy.request_timeout, std::chrono::seconds(60));
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
  EXPECT_EQ(c->grpc.listen, "0.0.0.0:7000");
  EXPECT_EQ(c->core.registry_path, "/var/lib/drgate/jobs.db");
  EXPECT_EQ(c->core.log_level, LogLevel::kDebug);
  EXPECT_EQ(c->core.shutdown_grace, std::chrono::seconds(3));
  ASSERT_EQ(c->core.commcells.size(), 2u);
  EXPECT_EQ(c->core.commcells[0].format, commserv::WireFormat::kXml);
  EXPECT_EQ(c->core.commcells[0].token.value, "QSDK abc");
  EXPECT_TRUE(c->core.commcells[0].password.empty());
  EXPECT_EQ(c->core.commcells[0].ca_file, dir_.File("ca.pem"));
  EXPECT_TRUE(c->core.commcells[0].insecure_skip_verify);
  EXPECT_EQ(c->core.commcells[0].device_id, "my-device");
  EXPECT_EQ(c->core.commcells[0].connect_timeout, std::chrono::seconds(2));
  EXPECT_EQ(c->core.commcells[0].policy.request_timeout, std::chrono::seconds(90));
  EXPECT_EQ(c->core.commcells[1].name, "dr");
}

TEST_F(ConfigTest, ErrorsNameTheKey) {
  ExpectError("commcells: []", "commcells", "at least one");
  ExpectError("commcells:", "commcells", "at least one");
  ExpectError("commcells: cs1", "commcells", "must be a list");
  ExpectError("grpc: {listen: nope}\ncommcells: []", "grpc.listen", "HOST:PORT");
  ExpectError("registry: {pth: x}", "registry.pth", "unknown key");
  ExpectError("colour: red", "colour", "unknown key");
  ExpectError("log: {level: loud}\ncommcells: []", "log.level",
              "must be trace, debug, info, warn or error");
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
  EXPECT_EQ(defaults->core.tracking.history_lookback, std::chrono::hours(24 * 7));
  EXPECT_EQ(defaults->core.tracking.history_interval, std::chrono::minutes(5));
  EXPECT_EQ(defaults->core.tracking.options_interval, std::chrono::hours(1));

  auto set =
      Parse(std::string(kMinimal) +
            "tracking: {history_lookback: 2d, history_interval: 1m, options_interval: 30m}\n");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->core.tracking.history_lookback, std::chrono::hours(48));
  EXPECT_EQ(set->core.tracking.history_interval, std::chrono::minutes(1));
  EXPECT_EQ(set->core.tracking.options_interval, std::chrono::minutes(30));

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
  EXPECT_EQ(c->grpc.max_message_bytes, 65536);
  c = Parse(std::string("grpc: {max_message_bytes: 2048}") + kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->grpc.max_message_bytes, 2048);
  ExpectError(std::string("grpc: {max_message_bytes: 100}") + kMinimal, "grpc.max_message_bytes",
              "1024-16777216");
}

TEST_F(ConfigTest, MaxConcurrentPolls) {
  auto c = Parse(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->core.tracking.max_concurrent_polls, 16);
  c = Parse(std::string("tracking: {max_concurrent_polls: 4}") + kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->core.tracking.max_concurrent_polls, 4);
  ExpectError(std::string("tracking: {max_concurrent_polls: 0}") + kMinimal,
              "tracking.max_concurrent_polls", "must be 1-1000");
  ExpectError(std::string("tracking: {max_concurrent_polls: many}") + kMinimal,
              "tracking.max_concurrent_polls", "wrong type");
}

TEST_F(ConfigTest, GrpcResourceLimits) {
  auto c = Parse(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->grpc.memory_limit_bytes, 64 << 20);
  EXPECT_EQ(c->grpc.max_concurrent_streams, 4096);
  EXPECT_EQ(c->grpc.max_metadata_bytes, 8192);
  c = Parse(std::string("grpc: {memory_limit_bytes: 268435456, max_concurrent_streams: 8, "
                        "max_metadata_bytes: 16384}\n") +
            kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->grpc.memory_limit_bytes, 268435456);
  EXPECT_EQ(c->grpc.max_concurrent_streams, 8);
  EXPECT_EQ(c->grpc.max_metadata_bytes, 16384);
  ExpectError(std::string("grpc: {memory_limit_bytes: 1000}\n") + kMinimal,
              "grpc.memory_limit_bytes", "4194304-68719476736");
  ExpectError(std::string("grpc: {max_concurrent_streams: 0}\n") + kMinimal,
              "grpc.max_concurrent_streams", "1-100000");
  ExpectError(std::string("grpc: {max_metadata_bytes: 100}\n") + kMinimal,
              "grpc.max_metadata_bytes", "1024-1048576");
  ExpectError(std::string("grpc: {max_concurrent_streams: many}\n") + kMinimal,
              "grpc.max_concurrent_streams", "wrong type");
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
  auto c = LoadServerConfig(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->core.registry_path, dir_.File("etc/state/jobs.db"));
  EXPECT_EQ(c->core.commcells[0].password.value, "s3cret-pw");
  auto missing = LoadServerConfig(dir_.File("nope.yaml"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot read"), std::string::npos);
}

}  // namespace
}  // namespace drgate::plugin

namespace drgate::plugin {
namespace {

// Upstream fault policies per CommCell (README, "Upstream faults").
std::string WithPolicy(const std::string& extra) {
  return std::string(kMinimal) + extra;
}

TEST_F(ConfigTest, UpstreamPoliciesHaveDocumentedDefaults) {
  auto c = Parse(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const auto& cell = c->core.commcells[0];
  EXPECT_EQ(cell.policy.retry.max_attempts, 3);
  EXPECT_EQ(cell.policy.retry.initial_backoff, std::chrono::milliseconds(200));
  EXPECT_EQ(cell.policy.retry.max_backoff, std::chrono::seconds(2));
  EXPECT_EQ(cell.policy.circuit_breaker.failure_threshold, 5);
  EXPECT_EQ(cell.policy.circuit_breaker.open_for, std::chrono::seconds(30));
  EXPECT_EQ(cell.policy.max_response_bytes, 4u * 1024 * 1024);
  EXPECT_EQ(cell.policy.max_pending_requests, 64u);
}

TEST_F(ConfigTest, UpstreamPoliciesAreReadPerCommCell) {
  auto c = Parse(WithPolicy(R"(    retry: {max_attempts: 5, initial_backoff: 50ms, max_backoff: 1s}
    circuit_breaker: {failure_threshold: 2, open_for: 2s}
    max_response_bytes: 65536
    max_pending_requests: 8
)"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const auto& cell = c->core.commcells[0];
  EXPECT_EQ(cell.policy.retry.max_attempts, 5);
  EXPECT_EQ(cell.policy.retry.initial_backoff, std::chrono::milliseconds(50));
  EXPECT_EQ(cell.policy.retry.max_backoff, std::chrono::seconds(1));
  EXPECT_EQ(cell.policy.circuit_breaker.failure_threshold, 2);
  EXPECT_EQ(cell.policy.circuit_breaker.open_for, std::chrono::seconds(2));
  EXPECT_EQ(cell.policy.max_response_bytes, 65536u);
  EXPECT_EQ(cell.policy.max_pending_requests, 8u);
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
  StatusOr<ServerConfig> Parse(const std::string& registry) {
    return ParseServerConfig(registry + R"(
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
  ASSERT_TRUE(c->core.registry_postgres.has_value());
  EXPECT_EQ(c->core.registry_postgres->dsn, "host=db port=5432 dbname=drgate user=drgate");
  EXPECT_EQ(c->core.registry_postgres->password.value, "pg-s3cret");
  EXPECT_EQ(c->core.registry_postgres->pool_size, 4);
  EXPECT_EQ(c->core.registry_postgres->leader_lease, std::chrono::seconds(5));
  EXPECT_EQ(c->core.registry_postgres->watch_interval, std::chrono::milliseconds(200));
}

TEST_F(PostgresRegistryConfigTest, SqliteStaysTheDefault) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->core.registry_postgres.has_value());
  EXPECT_EQ(c->core.registry_path, (dir_.path() / "drgate.db").string());
}

TEST_F(PostgresRegistryConfigTest, ErrorsNameTheKeyAndNeverEchoTheDsn) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"registry: {postgres: {password_file: secrets/pg}}", "registry.postgres.dsn: is required"},
      {"registry: {postgres: {dsn: \"host=db\", pool_size: 0}}",
       "registry.postgres.pool_size: must be 1-100, got 0"},
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

// Issue 18, case 3: yaml-cpp keeps the first of two equal keys, so a later `auth` block that turns
// authentication on would be ignored. The loader refuses the file instead.
TEST_F(ConfigTest, DuplicateTopLevelKeyIsRefusedWithBothLines) {
  dir_.Write("tokens.yaml",
             "tokens: [{sha256: " + std::string(64, 'a') + ", identity: ci, roles: [operator]}]\n");
  ExpectError(std::string(kMinimal) + "auth: {mode: tokens, tokens_file: tokens.yaml}\n", "auth",
              "duplicate key: first on line 2, again on line 8");
}

TEST_F(ConfigTest, NestedDuplicateKeyIsRefusedWithItsPath) {
  ExpectError(R"(auth: {mode: insecure}
commcells:
  - name: cs1
    url: https://cs1.example.com/commandcenter/api
    username: admin
    password_file: secrets/password
    retry:
      max_attempts: 2
      max_attempts: 9
)",
              "commcells[0].retry.max_attempts", "first on line 8, again on line 9");
  // In flow style too, and in the tokens file.
  ExpectError("auth: {mode: insecure, mode: tokens}\n", "auth.mode", "duplicate key");
  dir_.Write("tokens.yaml", "tokens:\n  - {sha256: " + std::string(64, 'a') +
                                ", identity: ci, roles: [viewer], roles: [operator]}\n");
  auto tokens = ParseTokensFile("tokens:\n  - {sha256: " + std::string(64, 'a') +
                                    ", identity: ci, roles: [viewer], roles: [operator]}\n",
                                "auth.tokens_file", {"cs1"});
  ASSERT_FALSE(tokens.ok());
  EXPECT_EQ(tokens.status().message(),
            "auth.tokens_file: tokens[0].roles: duplicate key: first on line 2, again on line 2");
}

// Issue 18, case 4: secret and certificate files are read only when they are regular files of
// bounded size; a FIFO never blocks the loader and /dev/zero never grows memory.
class ConfigFileTypeTest : public ConfigTest {
 protected:
  std::string WithPasswordFile(const std::string& path) {
    return "auth: {mode: insecure}\ncommcells:\n  - name: cs1\n"
           "    url: https://cs1.example.com/commandcenter/api\n    username: admin\n"
           "    password_file: " +
           path + "\n";
  }
  std::string Fifo(const std::string& name) {
    const std::string path = dir_.File(name);
    EXPECT_EQ(mkfifo(path.c_str(), 0600), 0);
    return path;
  }
};

TEST_F(ConfigFileTypeTest, DeviceSecretIsRefused) {
  ExpectError(WithPasswordFile("/dev/zero"), "commcells[0].password_file", "is not a regular file");
}

TEST_F(ConfigFileTypeTest, FifoSecretIsRefusedWithoutBlocking) {
  // Nobody writes to the FIFO: a blocking open or read would hang this test.
  ExpectError(WithPasswordFile(Fifo("pw.fifo")), "commcells[0].password_file",
              "is not a regular file");
}

TEST_F(ConfigFileTypeTest, DirectorySecretIsRefused) {
  ExpectError(WithPasswordFile(dir_.File("secrets")), "commcells[0].password_file",
              "is not a regular file");
}

TEST_F(ConfigFileTypeTest, OversizedSecretIsRefusedAtTheCap) {
  dir_.Write("big", std::string(kMaxSecretFileBytes, 'x'));
  ASSERT_TRUE(Parse(WithPasswordFile("big")).ok()) << "exactly the cap is accepted";
  dir_.Write("big", std::string(kMaxSecretFileBytes + 1, 'x'));
  ExpectError(WithPasswordFile("big"), "commcells[0].password_file", "is larger than 65536 bytes");
}

TEST_F(ConfigFileTypeTest, EveryFileKeyRefusesDevicesAndFifos) {
  const std::string fifo = Fifo("any.fifo");
  for (const std::string& path : {std::string("/dev/zero"), fifo}) {
    ExpectError("auth: {mode: tokens, tokens_file: " + path + "}\n" +
                    std::string(kMinimal).substr(std::string(kMinimal).find("commcells")),
                "auth.tokens_file", "is not a regular file");
    ExpectError(std::string(kMinimal) + "    ca_file: " + path + "\n", "commcells[0].ca_file",
                "is not a regular file");
    ExpectError(std::string(kMinimal) + "metrics: {tls: {cert_file: " + path +
                    ", key_file: " + path + "}}\n",
                "metrics.tls.cert_file", "is not a regular file");
    ExpectError(
        std::string(kMinimal) + "grpc: {tls: {cert_file: " + path + ", key_file: " + path + "}}\n",
        "grpc.tls.cert_file", "is not a regular file");
    ExpectError(std::string(kMinimal) +
                    "registry: {postgres: {dsn: \"host=db\", password_file: " + path + "}}\n",
                "registry.postgres.password_file", "is not a regular file");
  }
}

TEST_F(ConfigFileTypeTest, LoadConfigRefusesAFifoADeviceAndAnOversizedFile) {
  for (const std::string& path : {Fifo("drgate.yaml"), std::string("/dev/zero")}) {
    auto c = LoadServerConfig(path);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().message().rfind("--config: ", 0), 0u) << c.status().message();
    EXPECT_NE(c.status().message().find("is not a regular file"), std::string::npos);
  }
  const std::string big =
      dir_.Write("big.yaml", std::string(kMinimal) + "#" + std::string(kMaxConfigFileBytes, 'x'));
  auto c = LoadServerConfig(big);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("is larger than 1048576 bytes"), std::string::npos)
      << c.status().message();
}

// Issue 18, case 5: the URL is parsed as the transport parses it.
TEST_F(ConfigTest, CommCellUrlIsParsedAsTheTransportParsesIt) {
  auto with_url = [](const std::string& url) {
    return "auth: {mode: insecure}\ncommcells:\n  - name: cs1\n    url: \"" + url +
           "\"\n    username: admin\n    password_file: secrets/password\n";
  };
  ExpectError(with_url("https://admin:pw@cs1/api"), "commcells[0].url", "credentials");
  ExpectError(with_url("https://cs1:99999/api"), "commcells[0].url", "port");
  ExpectError(with_url("https://cs1/api?x=1"), "commcells[0].url", "query");
  ExpectError(with_url("https://cs1\\0evil/api"), "commcells[0].url", "");
  auto c = Parse(with_url("https://admin:s3cret-in-url@cs1/api"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().find("s3cret-in-url"), std::string::npos)
      << "the URL's password leaked: " << c.status().message();
}

// Issue 18, case 8: aliases are counted as expanded, so a small file cannot make the loader
// walk or copy gigabytes.
TEST_F(ConfigTest, AliasAmplificationIsRefusedNamingTheLine) {
  std::string yaml = "big: &v \"" + std::string(512 << 10, 'x') + "\"\nuses: [";
  for (int i = 0; i < 1500; ++i) yaml += i ? ", *v" : "*v";
  yaml += "]\n";
  ASSERT_LT(yaml.size(), kMaxConfigFileBytes);
  const auto start = std::chrono::steady_clock::now();
  ExpectError(yaml, "uses[6]",
              "more than 4194304 bytes of values once aliases are expanded (this value is "
              "defined on line 1)");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(ConfigTest, NestedAliasesAreRefusedByTheNodeCap) {
  // "Billion laughs": 10^9 values once expanded, in a few hundred bytes.
  std::string yaml = "l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n";
  for (int i = 1; i <= 9; ++i) {
    const std::string prev = "*l" + std::to_string(i - 1);
    yaml += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) yaml += (j ? ", " : "") + prev;
    yaml += "]\n";
  }
  auto c = Parse(yaml);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("more than 100000 values once aliases are expanded"),
            std::string::npos)
      << c.status().message();
}

TEST_F(ConfigTest, NonScalarKeysAreRefused) {
  ExpectError("? [a, b]\n: c\n", "(top level)", "line 1: keys must be plain names");
}

TEST_F(ConfigTest, UnixSocketIsOffByDefaultAndResolvedAgainstTheFolder) {
  auto off = Parse(kMinimal);
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_EQ(off->grpc.unix_socket, "");
  auto relative = Parse(std::string(kMinimal) + "grpc: {unix_socket: run/drgate.sock}\n");
  ASSERT_TRUE(relative.ok()) << relative.status().ToString();
  EXPECT_EQ(relative->grpc.unix_socket, dir_.File("run/drgate.sock"));
  auto absolute = Parse(std::string(kMinimal) + "grpc: {unix_socket: /run/drgate/drgate.sock}\n");
  ASSERT_TRUE(absolute.ok()) << absolute.status().ToString();
  EXPECT_EQ(absolute->grpc.unix_socket, "/run/drgate/drgate.sock");
  // sockaddr_un holds 107 bytes and a NUL.
  ExpectError(std::string(kMinimal) + "grpc: {unix_socket: /" + std::string(107, 's') + "}\n",
              "grpc.unix_socket", "must be at most 107 bytes once resolved");
  ExpectError(std::string(kMinimal) + "grpc: {unix_socket: [a]}\n", "grpc.unix_socket",
              "must be a string");
}

TEST_F(ConfigTest, ChangesSayWhichKeysWaitForARestart) {
  using config::Apply;
  using config::Change;
  auto before = Parse(std::string(kMinimal) + "tracking: {poll_interval: 10s}\n");
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_TRUE(ConfigChanges(*before, *before).empty());
  auto after = Parse(std::string(kMinimal) +
                     "grpc: {listen: 0.0.0.0:50051}\n"
                     "tracking: {poll_interval: 2s}\n"
                     "log: {level: debug, format: json}\n"
                     "registry: {path: other.db}\n");
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(ConfigChanges(*before, *after),
            (std::vector<Change>{{"grpc.listen", Apply::kRestart},
                                 {"registry.path", Apply::kRestart},
                                 {"log.level", Apply::kLive},
                                 {"log.format", Apply::kRestart},
                                 {"tracking.poll_interval", Apply::kLive}}));
  // A section added or removed is one change of its own key.
  auto tls = Parse(std::string(kMinimal) + "grpc: {unix_socket: /run/d.sock}\nhttp: {}\n");
  ASSERT_TRUE(tls.ok()) << tls.status().ToString();
  EXPECT_EQ(
      ConfigChanges(*before, *tls),
      (std::vector<Change>{{"grpc.unix_socket", Apply::kRestart}, {"http", Apply::kRestart}}));
}

}  // namespace
}  // namespace drgate::plugin
