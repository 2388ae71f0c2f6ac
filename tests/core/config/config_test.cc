// core/config on its own: a document of the core's keys only, and the declaration mechanism a
// front end embeds them with (the whole file, with the edge's keys, is tested in
// tests/plugin/server_config_test.cc).

#include "core/config/config.h"

#include <gtest/gtest.h>

#include "tests/fakes/temp_dir.h"

namespace drgate {
namespace {

using drgate::testing::TempDir;

constexpr char kCells[] = R"(
commcells:
  - name: cs1
    url: https://cs1.example.com/commandcenter/api
    username: admin
    password_file: secrets/password
)";

class CoreConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_.Write("secrets/password", "s3cret-pw\n"); }
  TempDir dir_;
};

TEST_F(CoreConfigTest, TheCoreKeysParseWithoutTheEdgeOnes) {
  auto c = ParseConfig(std::string("log: {level: warn}\n") + kCells, dir_.path().string());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->log_level, LogLevel::kWarn);
  EXPECT_EQ(c->registry_path, dir_.File("drgate.db"));
  ASSERT_EQ(c->commcells.size(), 1u);
  EXPECT_EQ(c->commcells[0].password.value, "s3cret-pw");
}

TEST_F(CoreConfigTest, TheEdgeKeysAreNotTheCoresOwn) {
  for (const char* key : {"grpc", "metrics", "auth"}) {
    auto c = ParseConfig(std::string(key) + ": {}\n" + kCells, dir_.path().string());
    ASSERT_FALSE(c.ok()) << key;
    EXPECT_EQ(c.status().reason(), "CONFIG_INVALID");
    EXPECT_EQ(c.status().message(), std::string(key) + ": unknown key");
  }
}

// A front end's file: its own keys around the core's, as plugin/server_config.cc declares it.
struct Front {
  std::string banner = "hello";
  Config core;
  bool operator==(const Front&) const = default;
};

config::Section<Front> FrontSection() {
  config::Section<Front> s(config::Apply::kLive);
  s.Add(
       "banner", config::String(), [](Front& f) -> std::string& { return f.banner; },
       "A key of the front end.")
      .Embed(ConfigSection(), [](Front& f) -> Config& { return f.core; })
      .Rule("the banner is not empty", [](Front& f, const std::string&, const config::Context&) {
        return f.banner.empty() ? config::Error("banner", "must not be empty") : Status::Ok();
      });
  return s;
}

TEST_F(CoreConfigTest, AnEmbeddedSectionParsesValidatesAndDocumentsTheCoreKeys) {
  const auto section = FrontSection();
  auto f = config::ParseDocument(section, std::string("banner: hi\n") + kCells,
                                 dir_.path().string(), {{"log.format", "json"}});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->banner, "hi");
  EXPECT_EQ(f->core.log_format, LogFormat::kJson);  // an override of an embedded key
  // The core's rules run on the embedded part: registry.path is resolved.
  EXPECT_EQ(f->core.registry_path, dir_.File("drgate.db"));

  // The core's errors keep their key paths; the front end's own keys are known.
  auto missing = config::ParseDocument(section, "banner: hi\n", dir_.path().string(), {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message().rfind("commcells: is required", 0), 0u)
      << missing.status().message();
  auto unknown =
      config::ParseDocument(section, std::string("nope: 1\n") + kCells, dir_.path().string(), {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(), "nope: unknown key");
  auto rule = config::ParseDocument(section, std::string("banner: ''\n") + kCells,
                                    dir_.path().string(), {});
  ASSERT_FALSE(rule.ok());
  EXPECT_EQ(rule.status().message(), "banner: must not be empty");

  std::vector<config::DocRow> rows;
  std::vector<std::string> rules;
  section.Document("", rows, rules);
  auto documented = [&](const std::string& key, const std::string& default_value) {
    for (const auto& r : rows) {
      if (r.key == key) return r.default_value == default_value;
    }
    return false;
  };
  EXPECT_TRUE(documented("banner", "hello"));
  EXPECT_TRUE(documented("tracking.poll_interval", "10s"));
  EXPECT_TRUE(documented("registry.path", "drgate.db"));
}

}  // namespace
}  // namespace drgate
