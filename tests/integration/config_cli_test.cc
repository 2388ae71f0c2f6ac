// The configuration loader's refusals (issue 18) seen from the outside: `drgate --check-config`
// and a real start exit 2 with a message naming the key, promptly, for every hostile
// configuration; and what --check-config accepts, startup accepts.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kCell[] =
    "commcells:\n"
    "  - name: cs1\n"
    "    url: https://127.0.0.1:1/commandcenter/api\n"
    "    username: admin\n"
    "    password_file: password\n";

class ConfigCliTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_.Write("password", "s3cret\n"); }

  // drgate with `args` after --config; stdout and stderr together.
  CommandResult Drgate(const std::string& yaml, const std::vector<std::string>& args) {
    const std::string config = dir_.Write("drgate.yaml", yaml);
    std::vector<std::string> argv = {
        "/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", DRGATE_BIN_DIR "/drgate", "--config", config};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto start = std::chrono::steady_clock::now();
    CommandResult r = RunCommand(argv, 60s);
    // Prompt: no FIFO wait, no unbounded read. Generous for a loaded machine.
    EXPECT_LT(std::chrono::steady_clock::now() - start, 30s) << r.out;
    return r;
  }
  // --check-config and a real start both exit 2 naming `key`.
  void ExpectRefused(const std::string& yaml, const std::string& key) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"--check-config"},
          std::vector<std::string>{"--grpc-listen", "127.0.0.1:0", "--metrics-listen",
                                   "127.0.0.1:0"}}) {
      const CommandResult r = Drgate(yaml, args);
      EXPECT_EQ(r.exit_code, 2) << args[0] << "\n" << yaml << "\n" << r.out;
      EXPECT_NE(r.out.find(": " + key + ": "), std::string::npos)
          << args[0] << ": expected the key " << key << " in:\n"
          << r.out;
      EXPECT_EQ(r.out.find("s3cret"), std::string::npos) << r.out;
    }
  }
  TempDir dir_;
};

TEST_F(ConfigCliTest, AValidConfigurationPassesCheckConfig) {
  const CommandResult r =
      Drgate(std::string("auth: {mode: insecure}\n") + kCell, {"--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("is valid (1 CommCell(s))"), std::string::npos) << r.out;
}

// Case 3: the later `auth` would have been ignored, leaving the server unauthenticated.
TEST_F(ConfigCliTest, DuplicateKeysAreRefused) {
  dir_.Write("tokens.yaml",
             "tokens: [{sha256: " + std::string(64, 'a') + ", identity: ci, roles: [operator]}]\n");
  ExpectRefused(std::string("auth: {mode: insecure}\n") + kCell +
                    "auth: {mode: tokens, tokens_file: tokens.yaml}\n",
                "auth");
  ExpectRefused(std::string("auth: {mode: insecure}\n") + kCell + "    username: root\n",
                "commcells[0].username");
}

// Case 4: a device or a FIFO as a secret neither grows memory nor blocks.
TEST_F(ConfigCliTest, DeviceAndFifoSecretsAreRefusedPromptly) {
  const std::string fifo = dir_.File("password.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {std::string("/dev/zero"), fifo}) {
    std::string cell = kCell;
    cell.replace(cell.find("password_file: password"),
                 std::string("password_file: password").size(), "password_file: " + path);
    ExpectRefused("auth: {mode: insecure}\n" + cell, "commcells[0].password_file");
    ExpectRefused("auth: {mode: tokens, tokens_file: " + path + "}\n" + kCell, "auth.tokens_file");
  }
  std::string cell = kCell;
  dir_.Write("huge", std::string(70000, 'x'));
  cell.replace(cell.find("password_file: password"), std::string("password_file: password").size(),
               "password_file: huge");
  ExpectRefused("auth: {mode: insecure}\n" + cell, "commcells[0].password_file");
}

// Case 5: what --check-config accepted, startup used to refuse with exit 1.
TEST_F(ConfigCliTest, CheckConfigRefusesWhatStartupRefuses) {
  for (const std::string url : {"https://admin:pw@127.0.0.1/api", "https://127.0.0.1:99999/api",
                                "https://127.0.0.1/api?x=1", "https://127.0.0.1\\0x/api"}) {
    std::string cell = kCell;
    cell.replace(cell.find("url: "), cell.find('\n', cell.find("url: ")) - cell.find("url: "),
                 "url: \"" + url + "\"");
    ExpectRefused("auth: {mode: insecure}\n" + cell, "commcells[0].url");
  }
  // A CA file that exists but holds no certificate: only loading it tells.
  dir_.Write("ca.pem", "not a certificate\n");
  ExpectRefused(std::string("auth: {mode: insecure}\n") + kCell + "    ca_file: ca.pem\n",
                "commcells[0]");
  // A DSN libpq cannot parse, checked where the store is built.
  ExpectRefused(std::string("auth: {mode: insecure}\n") + kCell +
                    "registry: {postgres: {dsn: \"host=db nonsense=1\"}}\n",
                "registry.postgres.dsn");
  // grpc.tls files without PEM.
  dir_.Write("tls.crt", "junk\n");
  dir_.Write("tls.key", "junk\n");
  ExpectRefused(std::string("auth: {mode: insecure}\n") + kCell +
                    "grpc: {tls: {cert_file: tls.crt, key_file: tls.key}}\n",
                "grpc.tls.cert_file");
}

// Case 8: one anchored value used many times.
TEST_F(ConfigCliTest, AliasAmplificationIsRefused) {
  std::string yaml = "big: &v \"" + std::string(512 << 10, 'x') + "\"\nuses: [";
  for (int i = 0; i < 1500; ++i) yaml += i ? ", *v" : "*v";
  yaml += "]\n";
  ExpectRefused(yaml, "uses[6]");
}

}  // namespace
}  // namespace drgate::testing
