// ConfigWatcher: reloads on request and on file changes, keeps the old configuration when a
// reload fails, counts both outcomes, and never blocks the caller of RequestReload.

#include "plugin/config_watcher.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <future>

#include "tests/fakes/temp_dir.h"

namespace drgate::plugin {
namespace {

using namespace std::chrono_literals;

ServerConfig Named(const std::string& name) {
  ServerConfig c;
  c.core.commcells.push_back(CommCellConfig{});
  c.core.commcells[0].name = name;
  return c;
}

double Counter(prometheus::Registry& registry, const std::string& result) {
  for (const auto& family : registry.Collect()) {
    if (family.name != "drgate_config_reloads_total") continue;
    for (const auto& m : family.metric) {
      for (const auto& l : m.label) {
        if (l.name == "result" && l.value == result) return m.counter.value;
      }
    }
  }
  return -1;
}

class ConfigWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_.Write("drgate.yaml", "v1"); }
  testing::TempDir dir_;
  std::string path_;
  prometheus::Registry registry_;
  std::mutex mu_;
  std::vector<std::string> applied_;               // guarded by mu_
  StatusOr<ServerConfig> next_ = Named("second");  // guarded by mu_
};

TEST_F(ConfigWatcherTest, FailedReloadKeepsTheOldConfigurationAndIsCounted) {
  ConfigWatcher watcher(
      {path_, 1h}, Named("first"),
      [this]() -> StatusOr<ServerConfig> {
        std::lock_guard lock(mu_);
        return next_;
      },
      [this](const ServerConfig& c) {
        std::lock_guard lock(mu_);
        applied_.push_back(c.core.commcells[0].name);
        return Status::Ok();
      },
      &registry_);
  {
    std::lock_guard lock(mu_);
    next_ = Status(StatusCode::kInvalidArgument, "auth: duplicate key", Reason::kConfigInvalid);
  }
  watcher.RequestReload("test");
  ASSERT_TRUE(watcher.WaitForAttempts(1, 30s));
  EXPECT_EQ(watcher.failures(), 1u);
  EXPECT_EQ(watcher.successes(), 0u);
  EXPECT_EQ(Counter(registry_, "failure"), 1);
  EXPECT_EQ(Counter(registry_, "success"), 0);
  {
    std::lock_guard lock(mu_);
    EXPECT_TRUE(applied_.empty());
    next_ = Named("second");
  }
  watcher.RequestReload("test");
  ASSERT_TRUE(watcher.WaitForAttempts(2, 30s));
  EXPECT_EQ(watcher.successes(), 1u);
  EXPECT_EQ(Counter(registry_, "success"), 1);
  std::lock_guard lock(mu_);
  EXPECT_EQ(applied_, std::vector<std::string>{"second"});
}

TEST_F(ConfigWatcherTest, ARefusedApplyIsAFailure) {
  ConfigWatcher watcher(
      {path_, 1h}, Named("first"), [] { return StatusOr<ServerConfig>(Named("x")); },
      [](const ServerConfig&) {
        return Status(StatusCode::kInvalidArgument, "commcells[0]: bad", Reason::kConfigInvalid);
      },
      nullptr);
  watcher.RequestReload("test");
  ASSERT_TRUE(watcher.WaitForAttempts(1, 30s));
  EXPECT_EQ(watcher.failures(), 1u);
}

TEST_F(ConfigWatcherTest, AChangedConfigurationFileTriggersAReload) {
  ConfigWatcher watcher(
      {path_, 20ms}, Named("first"), [] { return StatusOr<ServerConfig>(Named("x")); },
      [](const ServerConfig&) { return Status::Ok(); }, nullptr);
  // A different modification time, whatever the file system's clock resolution.
  std::filesystem::last_write_time(path_,
                                   std::filesystem::last_write_time(path_) + std::chrono::hours(1));
  ASSERT_TRUE(watcher.WaitForAttempts(1, 30s));
  EXPECT_EQ(watcher.successes(), 1u);
  // Reported once, not at every poll.
  EXPECT_FALSE(watcher.WaitForAttempts(2, 300ms));
}

TEST_F(ConfigWatcherTest, RequestAndStopReturnWhileAReloadIsSlow) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> started{false};
  ConfigWatcher watcher(
      {path_, 1h}, Named("first"),
      [&]() -> StatusOr<ServerConfig> {
        started = true;
        released.wait_for(2s);  // a slow reload (bounded, as every file read is)
        return Named("x");
      },
      [](const ServerConfig&) { return Status::Ok(); }, nullptr);
  watcher.RequestReload("first");
  while (!started) std::this_thread::sleep_for(1ms);
  const auto t0 = std::chrono::steady_clock::now();
  watcher.RequestReload("second");  // must not wait for the first
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  release.set_value();
  watcher.Stop();
}

}  // namespace
}  // namespace drgate::plugin
