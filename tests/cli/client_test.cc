#include "tools/drgatectl/client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/test/client_context_test_peer.h>
#include <grpcpp/test/mock_stream.h>
#include <gtest/gtest.h>

#include "drgate/v1/drgate_mock.grpc.pb.h"

namespace drgate::cli {
namespace {

using std::chrono::milliseconds;
using ::testing::_;
using ::testing::DoAll;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::Not;
using ::testing::Return;
using ::testing::SetArgPointee;

v1::Job JobIn(v1::JobState state, int percent = 0) {
  v1::Job job;
  job.set_job_id("2141");
  job.set_commcell("cs1");
  job.set_state(state);
  job.set_percent_complete(percent);
  return job;
}

// A WatchJob stream that delivers `jobs`, then ends with `status`. Owned by the caller of
// WatchJobRaw (the Client), as with a real stub.
grpc::ClientReaderInterface<v1::Job>* Stream(std::vector<v1::Job> jobs, grpc::Status status) {
  auto* reader = new grpc::testing::MockClientReader<v1::Job>();
  auto next = std::make_shared<size_t>(0);
  EXPECT_CALL(*reader, Read(_)).WillRepeatedly(Invoke([jobs, next](v1::Job* job) {
    if (*next >= jobs.size()) return false;
    *job = jobs[(*next)++];
    return true;
  }));
  EXPECT_CALL(*reader, Finish()).WillOnce(Return(status));
  return reader;
}

class WaitForJobTest : public ::testing::Test {
 protected:
  WaitForJobTest() {
    auto stub = std::make_unique<v1::MockDrBackupServiceStub>();
    stub_ = stub.get();
    client_ = std::make_unique<Client>(std::move(stub), "", milliseconds(1000));
    options_.poll_interval = milliseconds(1);
    options_.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  }

  WaitResult Wait(v1::Job job) {
    return WaitForJob(
        *client_, std::move(job), options_,
        [this](const v1::Job& seen) { seen_.push_back(seen.state()); },
        [this](std::string_view notice) { notices_.emplace_back(notice); });
  }

  v1::MockDrBackupServiceStub* stub_;
  std::unique_ptr<Client> client_;
  WaitOptions options_;
  std::vector<v1::JobState> seen_;
  std::vector<std::string> notices_;
};

TEST_F(WaitForJobTest, TerminalJobNeedsNoCall) {
  EXPECT_CALL(*stub_, WatchJobRaw(_, _)).Times(0);
  WaitResult result = Wait(JobIn(v1::JOB_STATE_SUCCEEDED));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::kFinished);
  EXPECT_EQ(result.job.state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(WaitForJobTest, FollowsWatchToTerminalState) {
  EXPECT_CALL(*stub_, WatchJobRaw(_, _))
      .WillOnce(Invoke([](grpc::ClientContext*, const v1::WatchJobRequest& request) {
        EXPECT_EQ(request.commcell(), "cs1");
        EXPECT_EQ(request.job_id(), "2141");
        return Stream({JobIn(v1::JOB_STATE_RUNNING, 10), JobIn(v1::JOB_STATE_RUNNING, 90),
                       JobIn(v1::JOB_STATE_FAILED, 90)},
                      grpc::Status::OK);
      }));
  WaitResult result = Wait(JobIn(v1::JOB_STATE_SUBMITTED));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::kFinished);
  EXPECT_EQ(result.job.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(seen_, (std::vector<v1::JobState>{v1::JOB_STATE_RUNNING, v1::JOB_STATE_RUNNING,
                                              v1::JOB_STATE_FAILED}));
  EXPECT_TRUE(notices_.empty());
}

TEST_F(WaitForJobTest, FallsBackToPollingWhenWatchIsUnimplemented) {
  EXPECT_CALL(*stub_, WatchJobRaw(_, _))
      .WillOnce(Return(Stream({}, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""))));
  EXPECT_CALL(*stub_, GetJob(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(JobIn(v1::JOB_STATE_RUNNING, 50)), Return(grpc::Status::OK)))
      .WillOnce(
          DoAll(SetArgPointee<2>(JobIn(v1::JOB_STATE_SUCCEEDED, 100)), Return(grpc::Status::OK)));
  WaitResult result = Wait(JobIn(v1::JOB_STATE_SUBMITTED));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::kFinished);
  EXPECT_EQ(result.job.state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(notices_.size(), 1u);
  EXPECT_THAT(notices_[0], HasSubstr("polling GetJob every 1ms"));
}

TEST_F(WaitForJobTest, ReopensWatchAfterUnavailable) {
  EXPECT_CALL(*stub_, WatchJobRaw(_, _))
      .WillOnce(Return(Stream({JobIn(v1::JOB_STATE_RUNNING, 10)},
                              grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting"))))
      .WillOnce(
          Return(Stream({JobIn(v1::JOB_STATE_SUCCEEDED_WITH_ERRORS, 100)}, grpc::Status::OK)));
  WaitResult result = Wait(JobIn(v1::JOB_STATE_SUBMITTED));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::kFinished);
  EXPECT_EQ(result.job.state(), v1::JOB_STATE_SUCCEEDED_WITH_ERRORS);
  ASSERT_EQ(notices_.size(), 1u);
  EXPECT_THAT(notices_[0], HasSubstr("WatchJob: UNAVAILABLE: restarting; retrying"));
}

TEST_F(WaitForJobTest, ReopensWatchThatEndedBeforeTerminalState) {
  EXPECT_CALL(*stub_, WatchJobRaw(_, _))
      .WillOnce(Return(Stream({JobIn(v1::JOB_STATE_RUNNING, 10)}, grpc::Status::OK)))
      .WillOnce(Return(Stream({JobIn(v1::JOB_STATE_KILLED, 10)}, grpc::Status::OK)));
  WaitResult result = Wait(JobIn(v1::JOB_STATE_SUBMITTED));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::kFinished);
  EXPECT_EQ(result.job.state(), v1::JOB_STATE_KILLED);
}

TEST_F(WaitForJobTest, RefusedWatchEndsTheWait) {
  EXPECT_CALL(*stub_, WatchJobRaw(_, _))
      .WillOnce(Return(Stream({}, grpc::Status(grpc::StatusCode::NOT_FOUND, "no job 2141"))));
  WaitResult result = Wait(JobIn(v1::JOB_STATE_SUBMITTED));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::kFailed);
  EXPECT_EQ(result.method, "WatchJob");
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(result.job.state(), v1::JOB_STATE_SUBMITTED);
}

TEST_F(WaitForJobTest, RefusedPollEndsTheWait) {
  EXPECT_CALL(*stub_, WatchJobRaw(_, _))
      .WillOnce(Return(Stream({}, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""))));
  EXPECT_CALL(*stub_, GetJob(_, _, _))
      .WillOnce(Return(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down")))
      .WillOnce(Return(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no")));
  WaitResult result = Wait(JobIn(v1::JOB_STATE_RUNNING));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::kFailed);
  EXPECT_EQ(result.method, "GetJob");
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(notices_.size(), 2u);  // The fallback, then the retry after UNAVAILABLE.
}

TEST_F(WaitForJobTest, TimesOutWithLastStateSeen) {
  options_.deadline = std::chrono::steady_clock::now() + milliseconds(50);
  EXPECT_CALL(*stub_, WatchJobRaw(_, _))
      .WillRepeatedly(Invoke([](grpc::ClientContext*, const v1::WatchJobRequest&) {
        return Stream({JobIn(v1::JOB_STATE_RUNNING, 42)},
                      grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, ""));
      }));
  WaitResult result = Wait(JobIn(v1::JOB_STATE_SUBMITTED));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::kTimedOut);
  EXPECT_EQ(result.job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(result.job.percent_complete(), 42);
}

TEST_F(WaitForJobTest, UnseenJobIsPolledAtOnce) {
  options_.poll_interval = std::chrono::hours(1);
  EXPECT_CALL(*stub_, WatchJobRaw(_, _))
      .WillOnce(Return(Stream({}, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""))));
  EXPECT_CALL(*stub_, GetJob(_, _, _))
      .WillOnce(
          DoAll(SetArgPointee<2>(JobIn(v1::JOB_STATE_SUCCEEDED, 100)), Return(grpc::Status::OK)));
  v1::Job unseen;
  unseen.set_commcell("cs1");
  unseen.set_job_id("2141");
  WaitResult result = Wait(unseen);
  EXPECT_EQ(result.outcome, WaitResult::Outcome::kFinished);
}

TEST_F(WaitForJobTest, UnseenJobFailsFastWhenUnavailable) {
  EXPECT_CALL(*stub_, WatchJobRaw(_, _))
      .WillOnce(Return(Stream({}, grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused"))));
  v1::Job unseen;
  unseen.set_job_id("2141");
  WaitResult result = Wait(unseen);
  EXPECT_EQ(result.outcome, WaitResult::Outcome::kFailed);
  EXPECT_EQ(result.method, "WatchJob");
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(notices_.empty());
}

// Metadata and deadlines of unary calls.

std::multimap<std::string, std::string> SentMetadata(Client& client,
                                                     v1::MockDrBackupServiceStub* stub) {
  std::multimap<std::string, std::string> sent;
  EXPECT_CALL(*stub, GetJob(_, _, _))
      .WillOnce(Invoke([&sent](grpc::ClientContext* context, const v1::GetJobRequest&, v1::Job*) {
        sent = grpc::testing::ClientContextTestPeer(context).GetSendInitialMetadata();
        return grpc::Status::OK;
      }));
  v1::Job job;
  EXPECT_TRUE(client.GetJob(v1::GetJobRequest(), &job).ok());
  return sent;
}

TEST(ClientTest, SendsBearerToken) {
  auto stub = std::make_unique<v1::MockDrBackupServiceStub>();
  v1::MockDrBackupServiceStub* raw = stub.get();
  Client client(std::move(stub), "s3cret", milliseconds(1000));
  auto sent = SentMetadata(client, raw);
  ASSERT_EQ(sent.count("authorization"), 1u);
  EXPECT_EQ(sent.find("authorization")->second, "Bearer s3cret");
}

TEST(ClientTest, NoTokenNoAuthorization) {
  auto stub = std::make_unique<v1::MockDrBackupServiceStub>();
  v1::MockDrBackupServiceStub* raw = stub.get();
  Client client(std::move(stub), "", milliseconds(1000));
  EXPECT_EQ(SentMetadata(client, raw).count("authorization"), 0u);
}

TEST(ClientTest, UnaryCallsCarryTheTimeout) {
  auto stub = std::make_unique<v1::MockDrBackupServiceStub>();
  v1::MockDrBackupServiceStub* raw = stub.get();
  Client client(std::move(stub), "", std::chrono::seconds(30));
  std::chrono::system_clock::time_point deadline;
  EXPECT_CALL(*raw, ListCommCells(_, _, _))
      .WillOnce(Invoke([&deadline](grpc::ClientContext* context, const v1::ListCommCellsRequest&,
                                   v1::ListCommCellsResponse*) {
        deadline = context->deadline();
        return grpc::Status::OK;
      }));
  auto before = std::chrono::system_clock::now();
  v1::ListCommCellsResponse response;
  ASSERT_TRUE(client.ListCommCells(v1::ListCommCellsRequest(), &response).ok());
  EXPECT_GE(deadline, before + std::chrono::seconds(29));
  EXPECT_LE(deadline, std::chrono::system_clock::now() + std::chrono::seconds(31));
}

// Token files.

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "drgatectl_token_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  void TearDown() override { std::remove(path_.c_str()); }
  void Write(const std::string& content) { std::ofstream(path_, std::ios::binary) << content; }

  std::string path_;
};

TEST_F(TokenFileTest, TrimsWhitespace) {
  Write("  abc.def\n\n");
  std::string token, error;
  ASSERT_TRUE(ReadTokenFile(path_, &token, &error)) << error;
  EXPECT_EQ(token, "abc.def");
}

TEST_F(TokenFileTest, BlankFileIsAnError) {
  Write(" \n\t");
  std::string token, error;
  EXPECT_FALSE(ReadTokenFile(path_, &token, &error));
  EXPECT_THAT(error, HasSubstr(path_));
}

TEST_F(TokenFileTest, MissingFileIsAnErrorNamingIt) {
  std::string token, error;
  EXPECT_FALSE(ReadTokenFile(path_ + ".missing", &token, &error));
  EXPECT_THAT(error, HasSubstr(path_ + ".missing"));
}

TEST(MakeChannelTest, UnreadableCaFileIsAnError) {
  ConnectionOptions options;
  options.tls = true;
  options.ca_file = "/nonexistent/ca.pem";
  std::string error;
  EXPECT_EQ(MakeChannel(options, &error), nullptr);
  EXPECT_THAT(error, HasSubstr("/nonexistent/ca.pem"));
}

TEST(MakeChannelTest, PlaintextChannelNeedsNoFiles) {
  ConnectionOptions options;
  std::string error;
  EXPECT_NE(MakeChannel(options, &error), nullptr);
  EXPECT_THAT(error, Not(HasSubstr("cannot")));
}

TEST(ChooseServerTest, ServerThenSocketThenDefaultSocketsThenTcp) {
  std::vector<std::string> asked;
  auto none = [&asked](const std::string& path) {
    asked.push_back(path);
    return false;
  };
  auto only = [](const std::string& wanted) {
    return [wanted](const std::string& path) { return path == wanted; };
  };
  // --server (or DRGATE_SERVER) wins over everything.
  EXPECT_EQ(ChooseServer(true, "cs.example:50051", "/tmp/x.sock", false, only("/tmp/x.sock")),
            "cs.example:50051");
  // --socket (or DRGATE_SOCKET) is used as given, also when it is missing (the error says so).
  EXPECT_EQ(ChooseServer(false, kDefaultServer, "/srv/d.sock", false, none), "unix:/srv/d.sock");
  EXPECT_TRUE(asked.empty());
  // The package's socket first, then the container's, then TCP.
  EXPECT_EQ(ChooseServer(false, kDefaultServer, "", false, only("/run/drgate/drgate.sock")),
            "unix:/run/drgate/drgate.sock");
  EXPECT_EQ(ChooseServer(false, kDefaultServer, "", false, only("/var/lib/drgate/drgate.sock")),
            "unix:/var/lib/drgate/drgate.sock");
  EXPECT_EQ(ChooseServer(false, kDefaultServer, "", false, none), "127.0.0.1:50051");
  EXPECT_EQ(asked,
            (std::vector<std::string>{"/run/drgate/drgate.sock", "/var/lib/drgate/drgate.sock"}));
  // TLS is asked for: the plaintext socket is not probed.
  asked.clear();
  EXPECT_EQ(ChooseServer(false, kDefaultServer, "", true, none), "127.0.0.1:50051");
  EXPECT_TRUE(asked.empty());
}

TEST(ChooseServerTest, OnlyAWritableSocketIsUsable) {
  EXPECT_FALSE(IsUsableSocket("/nonexistent/drgate.sock"));
  char path[] = "/tmp/drgatectl-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(IsUsableSocket(path));  // a regular file
  close(fd);
  std::remove(path);
  // A socket: usable once bound (the file exists and this user may write it).
  const int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path, std::strlen(path));
  ASSERT_EQ(bind(sock, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_TRUE(IsUsableSocket(path));
  close(sock);
  std::remove(path);
}

}  // namespace
}  // namespace drgate::cli
