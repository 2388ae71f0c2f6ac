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
                          "| `auth.mode` | tokens \\| insecure |  | Required. ",
                          "| `tokens[].roles` | list of viewer \\| operator |  |"}) {
    EXPECT_NE(ref.find(row), std::string::npos) << row << "\n" << ref;
  }
}

}  // namespace
}  // namespace drgate::plugin
