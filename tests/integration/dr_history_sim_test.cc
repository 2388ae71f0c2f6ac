// The DR history pieces against a real commserv-sim process: drgate's own CommServe client
// (SessionClient over the Beast transport) pages through a seeded DR history and reads the DR
// backup options in every form the simulator can answer, and DrHistory records that history in a
// registry. drgate's own process (the tracker reading the history at startup, the options reaching
// ListCommCells and drgatectl status) is tested in dr_history_test.cc.
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <boost/asio/executor_work_guard.hpp>

#include "core/common/clock.h"
#include "core/commserv/beast_transport.h"
#include "core/commserv/session.h"
#include "core/jobs/dr_history.h"
#include "core/registry/sqlite_job_store.h"
#include "tests/fakes/metric_value.h"
#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using nlohmann::json;

class DrHistorySimTest : public ::testing::Test {
 protected:
  DrHistorySimTest() : sim_(dir_, {}, /*tls=*/false) {
    commserv::SessionOptions options;
    options.commcell = "cs1";
    options.endpoint = *commserv::ParseEndpoint(sim_.base_url() + "/commandcenter/api");
    options.username = "admin";
    options.password = Secret{"s3cret"};
    options.device_id = "drgate-cs1";
    auto transport = commserv::MakeBeastTransport(io_, options.endpoint, {});
    client_ = commserv::SessionClient::Create(std::move(options), std::move(*transport), metrics_,
                                              clock_, commserv::MakeAsioScheduler(io_));
    thread_ = std::thread([this] { io_.run(); });
    store_ = std::move(*SqliteJobStore::Open(":memory:"));
  }
  ~DrHistorySimTest() override {
    client_.reset();
    guard_.reset();
    io_.stop();
    thread_.join();
  }

  StatusOr<commserv::JobListPage> Page(int64_t offset, int64_t limit) {
    std::promise<StatusOr<commserv::JobListPage>> p;
    client_->ListDrJobPage(std::chrono::hours(24 * 7), offset, limit,
                           [&p](StatusOr<commserv::JobListPage> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
  StatusOr<commserv::DrBackupOptions> Options() {
    std::promise<StatusOr<commserv::DrBackupOptions>> p;
    client_->GetDrBackupOptions(
        [&p](StatusOr<commserv::DrBackupOptions> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
  void SetOptions(const json& body) {
    const auto answer = sim_.admin().Call("POST", "/_sim/dr-options", body.dump());
    ASSERT_EQ(answer.status, 200) << answer.body;
  }

  TempDir dir_;
  Sim sim_;
  prometheus::Registry registry_;
  Metrics metrics_{registry_};
  SystemClock clock_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_ =
      boost::asio::make_work_guard(io_);
  std::thread thread_;
  std::shared_ptr<commserv::SessionClient> client_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(DrHistorySimTest, TheClientPagesTheSeededHistoryAndDrHistoryRecordsItAsCommserv) {
  const int64_t now = UnixNow();
  json history = json::array();
  for (int day = 1; day <= 5; ++day) {
    history.push_back({{"start", now - day * 86400}, {"end", now - day * 86400 + 900}});
  }
  history.push_back({{"start", now - 7200},
                     {"end", now - 6600},
                     {"level", "Differential"},
                     {"status", "Failed"},
                     {"reason", "Error Code: [19:857] no space"}});
  // Older than the 7-day lookback: not listed.
  history.push_back({{"start", now - 9 * 86400}, {"end", now - 9 * 86400 + 900}});
  const auto seeded = sim_.admin().Call("POST", "/_sim/history", history.dump());
  ASSERT_EQ(seeded.status, 200) << seeded.body;

  auto first = Page(0, 4);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->total, 6);
  ASSERT_EQ(first->jobs.size(), 4u);
  EXPECT_EQ(first->jobs[0].job_id, "2105");
  EXPECT_EQ(first->jobs[0].backup_level, "Differential");
  EXPECT_EQ(first->jobs[0].pending_reason, "Error Code: [19:857] no space");
  auto second = Page(4, 4);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_EQ(second->jobs.size(), 2u);
  EXPECT_EQ(second->jobs[1].job_id, "2104");

  jobs::DrOptionsHolder holder;
  jobs::DrHistoryOptions config;
  config.page_size = 4;
  jobs::DrHistory reader(*store_, metrics_, holder, clock_, config);
  ASSERT_TRUE(reader.ReadHistory("cs1", *client_).ok());
  JobFilter commserv;
  commserv.origin = JobOrigin::kCommserv;
  auto listed = store_->ListJobs(commserv, 100, "");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->jobs.size(), 6u);
  const Job failed = *store_->GetJob("cs1", "2105");
  EXPECT_EQ(failed.state, JobState::kFailed);
  EXPECT_EQ(failed.backup_type, BackupType::kDifferential);
  EXPECT_EQ(failed.failure_reason, "Error Code: [19:857] no space");
  EXPECT_EQ(store_->GetJob("cs1", "2106").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_last_success_timestamp_seconds",
                        {{"commcell", "cs1"}, {"backup_type", "full"}}),
            now - 86400 + 900);
  EXPECT_EQ(sim_.admin().Json("GET", "/_sim/stats").at("drbackup_posts"), 0);
}

TEST_F(DrHistorySimTest, TheClientReadsTheOptionsInEveryFormAndA404LeavesThemUnknown) {
  auto standard = Options();
  ASSERT_TRUE(standard.ok()) << standard.status().ToString();
  EXPECT_EQ(standard->destination, "C:\\Program Files\\Commvault\\DR");
  EXPECT_EQ(standard->retained_fulls, 5);
  EXPECT_EQ(standard->local_drive, true);
  EXPECT_EQ(commserv::CopyLeavesHost(*standard), false);

  SetOptions({{"body",
               {{"DRDumpLocation", "\\\\nas01\\dr"},
                {"UseNetworkShare", true},
                {"DRNumFulls", "7"},
                {"uploadBackupMetadataToCloud", "0"}}}});
  auto quirky = Options();
  ASSERT_TRUE(quirky.ok()) << quirky.status().ToString();
  EXPECT_EQ(quirky->retained_fulls, 7);
  EXPECT_EQ(quirky->network_share, true);
  EXPECT_EQ(quirky->cloud_upload, false);
  EXPECT_EQ(commserv::CopyLeavesHost(*quirky), true);

  jobs::DrOptionsHolder holder;
  jobs::DrHistory reader(*store_, metrics_, holder, clock_, jobs::DrHistoryOptions{});
  ASSERT_TRUE(reader.RefreshOptions("cs1", *client_).ok());
  ASSERT_TRUE(holder.Get("cs1").has_value());
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_offsite", {{"commcell", "cs1"}}), 1);
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_retained_fulls", {{"commcell", "cs1"}}), 7);

  SetOptions({{"http_status", 404}});
  auto missing = Options();
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().reason(), Reason::kDrOptionsUnavailable);
  // A fresh reader (the interval has not passed for the first one) sees the 404: unknown.
  jobs::DrHistory later(*store_, metrics_, holder, clock_, jobs::DrHistoryOptions{});
  ASSERT_TRUE(later.RefreshOptions("cs1", *client_).ok());
  EXPECT_FALSE(holder.Get("cs1").has_value());
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_offsite", {{"commcell", "cs1"}}), -1);

  SetOptions({{"http_status", 200}, {"body", "<html>not json</html>"}});
  auto unreadable = Options();
  ASSERT_FALSE(unreadable.ok());
  EXPECT_EQ(unreadable.status().reason(), Reason::kDrOptionsUnavailable);
}

}  // namespace
}  // namespace drgate::testing
