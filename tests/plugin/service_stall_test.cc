// DrBackupService in process, on a real gRPC server over loopback, with a registry that stalls
// for one CommCell (tests/fakes/blocking_job_store.h): no gRPC thread waits on the registry, so
// grpc.health.v1.Health/Check and calls about other CommCells keep answering while that
// CommCell's reads hang. Also WatchJob through the real reactor.

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "core/common/executor.h"
#include "core/common/keyed_executor.h"
#include "core/jobs/orchestrator.h"
#include "core/jobs/tracker.h"
#include "core/jobs/watch_hub.h"
#include "core/metrics/metrics.h"
#include "core/registry/sqlite_job_store.h"
#include "drgate/v1/drgate.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "plugin/service.h"
#include "tests/fakes/blocking_job_store.h"
#include "tests/fakes/fake_commserv_client.h"
#include "tests/fakes/manual_clock.h"

namespace drgate::plugin {
namespace {

using namespace std::chrono_literals;
using drgate::testing::BlockingJobStore;
using drgate::testing::FakeCommServClient;

Job StoredJob(const std::string& commcell, const std::string& job_id, JobState state) {
  Job job;
  job.commcell = commcell;
  job.job_id = job_id;
  job.state = state;
  job.percent_complete = 10;
  job.create_time = TimePoint(std::chrono::hours(1));
  job.update_time = job.create_time;
  return job;
}

class ServiceStallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<jobs::CommCell> cells;
    for (const char* name : {"cs1", "cs2"}) {
      cells.push_back(jobs::CommCell{name, std::string("https://") + name + "/api", client_});
    }
    tracker_ = std::make_unique<jobs::Tracker>(cells, store_, metrics_, clock_, hub_,
                                               jobs::TrackerOptions{});
    orchestrator_ = std::make_unique<jobs::Orchestrator>(cells, store_, metrics_, clock_, blocking_,
                                                         reads_, *tracker_);
    service_ = std::make_unique<DrBackupServiceImpl>(*orchestrator_, hub_);
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    server_->GetHealthCheckService()->SetServingStatus("", true);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::DrBackupService::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
    ASSERT_TRUE(channel_->WaitForConnected(std::chrono::system_clock::now() + 10s));
  }
  void TearDown() override {
    store_.Release();
    server_->Shutdown(std::chrono::system_clock::now() + 5s);
    server_->Wait();
  }

  // One asynchronous GetJob; the future gets its status and job.
  struct Call {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    v1::Job response;
    std::promise<grpc::Status> done;
  };
  std::unique_ptr<Call> GetJobAsync(const std::string& commcell, const std::string& job_id,
                                    std::chrono::milliseconds timeout = 60s) {
    auto call = std::make_unique<Call>();
    call->context.set_deadline(std::chrono::system_clock::now() + timeout);
    call->request.set_commcell(commcell);
    call->request.set_job_id(job_id);
    Call* c = call.get();
    stub_->async()->GetJob(&c->context, &c->request, &c->response,
                           [c](grpc::Status s) { c->done.set_value(std::move(s)); });
    return call;
  }

  std::shared_ptr<FakeCommServClient> client_ = std::make_shared<FakeCommServClient>();
  BlockingJobStore store_{std::move(*SqliteJobStore::Open(":memory:"))};
  prometheus::Registry registry_;
  Metrics metrics_{registry_};
  drgate::testing::ManualClock clock_;
  ThreadPool blocking_{2};
  KeyedThreadPool reads_{KeyedPoolOptions{}};
  jobs::WatchHub hub_;
  std::unique_ptr<jobs::Tracker> tracker_;
  std::unique_ptr<jobs::Orchestrator> orchestrator_;
  std::unique_ptr<DrBackupServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::DrBackupService::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

TEST_F(ServiceStallTest, HealthAndOtherCommCellsAnswerWhileOneCommCellsRegistryStalls) {
  ASSERT_TRUE(store_.PutJobs({StoredJob("cs2", "700", JobState::kRunning)}).ok());
  store_.Stall("cs1");
  // Far more stalled calls than gRPC has callback threads: before reads left those threads,
  // each of these held one.
  constexpr int kStalled = 64;
  std::vector<std::unique_ptr<Call>> stalled;
  for (int i = 0; i < kStalled; ++i) stalled.push_back(GetJobAsync("cs1", std::to_string(i)));
  ASSERT_TRUE(store_.WaitBlocked(1));

  // Health answers within 100 ms, every time.
  std::chrono::steady_clock::duration slowest{};
  for (int i = 0; i < 5; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 100ms);
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    const auto start = std::chrono::steady_clock::now();
    grpc::Status s = health_->Check(&context, request, &response);
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(s.ok()) << "Health/Check #" << i << ": " << s.error_code() << " "
                        << s.error_message() << " after "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                        << " ms";
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
    slowest = std::max(slowest, took);
  }
  RecordProperty(
      "slowest_health_check_us",
      std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(slowest).count()));
  // Reads of the other CommCell, and what needs no registry, answer too.
  auto other = GetJobAsync("cs2", "700", 10s);
  grpc::Status s = other->done.get_future().get();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(other->response.job_id(), "700");
  EXPECT_EQ(other->response.commcell(), "cs2");
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::ListCommCellsResponse cells;
    ASSERT_TRUE(stub_->ListCommCells(&context, v1::ListCommCellsRequest(), &cells).ok());
    EXPECT_EQ(cells.commcells_size(), 2);
  }
  // cs1's reads hold their share of the read pool, and no more.
  ASSERT_TRUE(store_.WaitBlocked(KeyedPoolOptions{}.per_key));
  EXPECT_EQ(store_.max_blocked(), KeyedPoolOptions{}.per_key);

  store_.Release();
  for (auto& call : stalled) {
    grpc::Status r = call->done.get_future().get();
    EXPECT_EQ(r.error_code(), grpc::StatusCode::NOT_FOUND) << r.error_message();
  }
}

TEST_F(ServiceStallTest, WatchJobWritesTheCurrentStateThenChangesAndEndsAfterAFinalState) {
  Job job = StoredJob("cs1", "2141", JobState::kRunning);
  ASSERT_TRUE(store_.PutJobs({job}).ok());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 60s);
  v1::WatchJobRequest request;
  request.set_commcell("cs1");
  request.set_job_id("2141");
  auto reader = stub_->WatchJob(&context, request);

  v1::Job message;
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_EQ(message.job_id(), "2141");
  EXPECT_EQ(message.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(message.percent_complete(), 10);
  // The tracker's publications, as it records them.
  job.percent_complete = 60;
  ASSERT_TRUE(store_.PutJobs({job}).ok());
  hub_.Publish(job);
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_EQ(message.percent_complete(), 60);
  job.state = JobState::kSucceeded;
  job.percent_complete = 100;
  ASSERT_TRUE(store_.PutJobs({job}).ok());
  hub_.Publish(job);
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_EQ(message.state(), v1::JOB_STATE_SUCCEEDED);

  EXPECT_FALSE(reader->Read(&message));
  grpc::Status s = reader->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(hub_.watcher_count(), 0u);
}

TEST_F(ServiceStallTest, WatchJobOfAnUnknownJobIsNotFound) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 60s);
  v1::WatchJobRequest request;
  request.set_commcell("cs1");
  request.set_job_id("404");
  auto reader = stub_->WatchJob(&context, request);
  v1::Job message;
  EXPECT_FALSE(reader->Read(&message));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  EXPECT_EQ(hub_.watcher_count(), 0u);
}

}  // namespace
}  // namespace drgate::plugin
