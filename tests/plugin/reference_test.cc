// docs/configuration-reference.md is generated from the key declarations: it must equal what
// ConfigurationReference() prints, and every key it documents must parse.

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "plugin/server_config.h"

namespace drgate::plugin {
namespace {

TEST(ConfigurationReferenceTest, CommittedReferenceMatchesTheDeclarations) {
  const std::string path = DRGATE_SOURCE_DIR "/docs/configuration-reference.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing " << path;
  const std::string committed((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
  EXPECT_TRUE(committed == ConfigurationReference())
      << path
      << " differs from the declarations; regenerate it with\n"
         "  build/bin/drgate --config-reference > docs/configuration-reference.md";
}

TEST(ConfigurationReferenceTest, DocumentsEveryKeyWithItsDefault) {
  const std::string ref = ConfigurationReference();
  for (const char* row : {"| `grpc.listen` | HOST:PORT | `127.0.0.1:50051` |",
                          "| `commcells[].retry.max_attempts` | integer 1-10 | `3` |",
                          "| `commcells[].format` | json \\| xml | `json` |",
                          "| `commcells[].on_active` | reject \\| reuse | `reject` |",
                          "| `tracking.retention` | duration | `90d` |",
                          "| `auth.mode` | tokens \\| insecure |  | live | Required. ",
                          "| `tokens[].roles` | list of viewer \\| operator |  |"}) {
    EXPECT_NE(ref.find(row), std::string::npos) << row << "\n" << ref;
  }
}

// Each key says whether a reload applies it; the reload's truth is tested in e2e_test.
TEST(ConfigurationReferenceTest, SaysForEachKeyWhetherAReloadAppliesIt) {
  const std::string ref = ConfigurationReference();
  for (const char* row :
       {"| `grpc.listen` | HOST:PORT | `127.0.0.1:50051` | restart |",
        "| `grpc.unix_socket` | file (unix socket) |  | restart |",
        "| `grpc.tls` | map (optional) |  | restart |",
        "| `metrics.listen` | HOST:PORT | `127.0.0.1:9464` | restart |",
        "| `registry.path` | file | `drgate.db` | restart |",
        "| `registry.postgres.pool_size` | integer 1-100 | `8` | restart |",
        "| `log.level` | trace \\| debug \\| info \\| warn \\| error | `info` | live |",
        "| `log.format` | auto \\| json \\| text | `auto` | restart |",
        "| `shutdown_grace` | duration | `10s` | live |",
        "| `tracking.poll_interval` | duration >= 1ms | `10s` | live |",
        "| `tracking.history` | boolean | `true` | restart |",
        "| `tracking.options_interval` | duration >= 1s | `1h` | live |",
        "| `commcells[].url` | URL |  | live |",
        "| `auth.rate_limit.burst` | integer 1-10000 | `3` | live |"}) {
    EXPECT_NE(ref.find(row), std::string::npos) << row << "\n" << ref;
  }
  // Every key row has one of the two marks.
  std::size_t rows = 0;
  for (std::size_t at = ref.find("\n| `"); at != std::string::npos;
       at = ref.find("\n| `", at + 1)) {
    const std::string line = ref.substr(at + 1, ref.find('\n', at + 1) - at - 1);
    EXPECT_TRUE(line.find(" | live | ") != std::string::npos ||
                line.find(" | restart | ") != std::string::npos)
        << line;
    ++rows;
  }
  EXPECT_GT(rows, 90u);
}

}  // namespace
}  // namespace drgate::plugin
