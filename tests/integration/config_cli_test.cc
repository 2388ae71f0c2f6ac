// The configuration loader's refusals (issue 18) seen from the outside: `drgate --check-config`
// and a real start exit 2 with a message naming the key, promptly, for every hostile
// configuration; and what --check-config accepts, startup accepts.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <tuple>
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
  CommandResult RunDrgate(const std::string& yaml, const std::vector<std::string>& args) {
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
      const CommandResult r = RunDrgate(yaml, args);
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
      RunDrgate(std::string("auth: {mode: insecure}\n") + kCell, {"--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("is valid (1 CommCell(s))"), std::string::npos) << r.out;
}

// Command-line values are validated as the keys they replace, and named as such.
TEST_F(ConfigCliTest, BadCommandLineOverridesNameTheirKey) {
  const std::string yaml = std::string("auth: {mode: insecure}\n") + kCell;
  for (const auto& [flag, value, key] :
       {std::tuple{"--log-level", "loud", "log.level"},
        std::tuple{"--log-format", "xml", "log.format"},
        std::tuple{"--grpc-listen", "nowhere", "grpc.listen"},
        std::tuple{"--metrics-listen", "127.0.0.1:99999", "metrics.listen"}}) {
    const CommandResult r = RunDrgate(yaml, {"--check-config", flag, value});
    EXPECT_EQ(r.exit_code, 2) << flag << "\n" << r.out;
    EXPECT_NE(r.out.find(std::string(": ") + key + ": "), std::string::npos) << r.out;
  }
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

std::vector<std::string> CommCellNames(Drgate& drgate) {
  v1::ListCommCellsResponse cells;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  std::vector<std::string> names;
  if (!drgate.stub().ListCommCells(&ctx, {}, &cells).ok()) return {"(call failed)"};
  for (const auto& c : cells.commcells()) names.push_back(c.name());
  return names;
}

// drgate_config_reloads_total{result=...} from /metrics; -1 when absent.
double Reloads(Drgate& drgate, const std::string& result) {
  const std::string metrics = drgate.Metrics();
  const std::string prefix = "drgate_config_reloads_total{result=\"" + result + "\"} ";
  const auto at = metrics.find(prefix);
  if (at == std::string::npos) return -1;
  return std::stod(metrics.substr(at + prefix.size()));
}

// One drgate per SQLite registry: a second one on the same file exits 2 naming the file and the
// first one's pid, --check-config is not disturbed by the running one, and once the first stops
// (cleanly, or killed as in a crash) the next one starts.
TEST_F(ConfigCliTest, SecondDrgateOnTheSameSqliteRegistryExits2NamingTheFileAndTheHolder) {
  const std::string yaml =
      std::string("registry: {path: state/drgate.db}\n") + "auth: {mode: insecure}\n" + kCell;
  const std::string db = dir_.File("state/drgate.db");
  auto first = std::make_unique<Drgate>(dir_.Write("drgate.yaml", yaml));

  const CommandResult second =
      RunDrgate(yaml, {"--grpc-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"});

  EXPECT_EQ(second.exit_code, 2) << second.out;
  EXPECT_NE(second.out.find("registry database '" + db + "' is in use by another drgate (pid " +
                            std::to_string(first->pid()) + ","),
            std::string::npos)
      << second.out;
  EXPECT_EQ(second.out.find("gRPC listening"), std::string::npos) << second.out;
  const CommandResult check = RunDrgate(yaml, {"--check-config"});
  EXPECT_EQ(check.exit_code, 0) << check.out;

  EXPECT_EQ(first->Terminate(), 0);
  first.reset();
  auto next = std::make_unique<Drgate>(dir_.Write("drgate.yaml", yaml));  // throws if refused
  next->Kill();  // SIGKILL: the lock file stays behind, the kernel drops the lock
  next.reset();
  ASSERT_TRUE(std::filesystem::exists(db + ".lock"));
  Drgate after_crash(dir_.Write("drgate.yaml", yaml));
  EXPECT_FALSE(after_crash.Metrics().empty());
}

// Waits until the counter exceeds `above`; returns its value.
double WaitForReloads(Drgate& drgate, const std::string& result, double above) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  double v = Reloads(drgate, result);
  while (v <= above && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    v = Reloads(drgate, result);
  }
  return v;
}

// A running drgate given hostile reloads keeps its configuration, keeps serving, and still stops
// at once on SIGTERM (a FIFO secret used to block the signal loop; /dev/zero used to kill it).
TEST_F(ConfigCliTest, BadReloadsKeepTheOldConfigurationAndSigtermStillWorks) {
  const std::string good = std::string("auth: {mode: insecure}\n") + kCell;
  // A second CommCell: applied, it would show in ListCommCells.
  auto with_second = [&](const std::string& password_file) {
    return good +
           "  - name: cs2\n"
           "    url: https://127.0.0.1:1/commandcenter/api\n"
           "    username: admin\n"
           "    password_file: " +
           password_file + "\n";
  };
  const std::string fifo = dir_.File("password.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Drgate drgate(dir_.Write("drgate.yaml", good), "warn", dir_.File("drgate.log"));
  ASSERT_EQ(CommCellNames(drgate), std::vector<std::string>{"cs1"});
  ASSERT_EQ(Reloads(drgate, "failure"), 0);

  double failures = 0;
  for (const std::string& bad :
       {with_second("password") + "auth: {mode: insecure}\n",  // duplicate key
        with_second("/dev/zero"), with_second(fifo)}) {
    dir_.Write("drgate.yaml", bad);
    drgate.Signal(SIGHUP);
    const double now = WaitForReloads(drgate, "failure", failures);
    EXPECT_GT(now, failures) << bad;
    failures = now;
    EXPECT_EQ(CommCellNames(drgate), std::vector<std::string>{"cs1"}) << bad;
  }
  EXPECT_EQ(Reloads(drgate, "success"), 0);

  // The watcher is alive: a good reload applies.
  dir_.Write("drgate.yaml", with_second("password"));
  drgate.Signal(SIGHUP);
  EXPECT_GE(WaitForReloads(drgate, "success", 0), 1);
  EXPECT_EQ(CommCellNames(drgate), (std::vector<std::string>{"cs1", "cs2"}));

  // SIGTERM right behind a reload of a FIFO secret: a clean, prompt exit.
  dir_.Write("drgate.yaml", with_second(fifo));
  drgate.Signal(SIGHUP);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(drgate.Terminate(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
}

}  // namespace
}  // namespace drgate::testing
