// A real drgate process on a real PostgreSQL registry that stalls: another session holds an
// exclusive lock on the jobs table, so every read of it waits. gRPC health keeps answering within
// 100 ms (no gRPC thread waits on the registry), and the stalled calls answer once the lock goes.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/fakes/postgres_server.h"
#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using namespace std::chrono_literals;

// One libpq session of the test's own (the superuser's).
class Session {
 public:
  Session(const PostgresServer& pg, const std::string& dbname)
      : conn_(PQconnectdb((pg.Dsn(dbname) + " password=" + pg.password()).c_str())) {}
  ~Session() { PQfinish(conn_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  bool connected() const { return PQstatus(conn_) == CONNECTION_OK; }
  // The first column of the first row as text ("" for a command); throws on error.
  std::string Query(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    const auto st = PQresultStatus(r);
    std::string out;
    std::string error;
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) error = PQresultErrorMessage(r);
    PQclear(r);
    if (!error.empty()) throw std::runtime_error(sql + ": " + error);
    return out;
  }

 private:
  PGconn* conn_;
};

class RegistryStallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_.Exec("CREATE DATABASE drgate");
    sim_ = std::make_unique<Sim>(dir_);
    dir_.Write("password", "s3cret\n");
    const std::string yaml =
        "auth: {mode: insecure}\n"
        "registry:\n"
        "  postgres:\n"
        "    dsn: \"" +
        pg_.Dsn("drgate") + "\"\n    password_file: " + pg_.password_file() +
        "\n"
        "    pool_size: 8\n"
        "shutdown_grace: 2s\n"
        "tracking: {poll_interval: 200ms, probe_interval: 1h}\n"
        "commcells:\n" +
        sim_->CommCellYaml("cs1", "");
    drgate_ = std::make_unique<Drgate>(dir_.Write("drgate.yaml", yaml));
  }

  PostgresServer pg_;
  TempDir dir_;
  std::unique_ptr<Sim> sim_;
  std::unique_ptr<Drgate> drgate_;
};

TEST_F(RegistryStallTest, HealthAnswersWithin100MsWhileRegistryReadsHang) {
  auto locker = std::make_unique<Session>(pg_, "drgate");
  Session observer(pg_, "drgate");
  ASSERT_TRUE(locker->connected());
  ASSERT_TRUE(observer.connected());
  locker->Query("BEGIN");
  locker->Query("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE");

  struct Call {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    v1::Job response;
    std::promise<grpc::Status> done;
  };
  constexpr int kCalls = 64;
  std::vector<std::unique_ptr<Call>> calls;
  std::vector<std::future<grpc::Status>> results;
  // Whatever happens below, the lock goes and every call ends before `calls` does.
  struct Drain {
    std::function<void()> run;
    ~Drain() { run(); }
  } drain{[&] {
    if (locker != nullptr) {
      try {
        locker->Query("COMMIT");
      } catch (const std::exception&) {
      }
      locker.reset();
    }
    for (auto& call : calls) call->context.TryCancel();
    for (auto& r : results) {
      if (r.valid()) r.wait();
    }
  }};
  for (int i = 0; i < kCalls; ++i) {
    auto call = std::make_unique<Call>();
    call->context.set_deadline(Deadline(120s));
    call->request.set_commcell("cs1");
    call->request.set_job_id(std::to_string(1000 + i));
    Call* c = call.get();
    results.push_back(c->done.get_future());
    drgate_->stub().async()->GetJob(&c->context, &c->request, &c->response,
                                    [c](grpc::Status s) { c->done.set_value(std::move(s)); });
    calls.push_back(std::move(call));
  }
  // Sessions of drgate waiting for the lock, once there are at least `n` (or after 30 s).
  auto waiting_for_lock = [&](int n) {
    const auto until = std::chrono::steady_clock::now() + 30s;
    int waiting = 0;
    while (std::chrono::steady_clock::now() < until) {
      waiting = std::stoi(
          observer.Query("SELECT count(*) FROM pg_stat_activity WHERE datname = 'drgate' AND "
                         "wait_event_type = 'Lock'"));
      if (waiting >= n) break;
      std::this_thread::sleep_for(20ms);
    }
    return waiting;
  };
  ASSERT_GE(waiting_for_lock(1), 1) << "drgate's registry reads never waited for the lock";

  auto health = grpc::health::v1::Health::NewStub(drgate_->channel());
  std::chrono::steady_clock::duration slowest{};
  for (int i = 0; i < 5; ++i) {
    grpc::ClientContext context;
    context.set_deadline(Deadline(100ms));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    const auto start = std::chrono::steady_clock::now();
    grpc::Status s = health->Check(&context, request, &response);
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(s.ok()) << "Health/Check #" << i << ": code " << s.error_code() << " after "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                        << " ms";
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
    slowest = std::max(slowest, took);
  }
  RecordProperty(
      "slowest_health_check_us",
      std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(slowest).count()));
  // The reads hang in the read pool, cs1's share of it (4) at a time, and the tracker's round.
  EXPECT_GE(waiting_for_lock(4), 4);
  // ListCommCells needs no registry: it answers too.
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline(5s));
    v1::ListCommCellsResponse cells;
    ASSERT_TRUE(drgate_->stub().ListCommCells(&context, v1::ListCommCellsRequest(), &cells).ok());
    EXPECT_EQ(cells.commcells_size(), 1);
  }

  locker->Query("COMMIT");
  locker.reset();
  for (auto& r : results) {
    grpc::Status s = r.get();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  }
}

}  // namespace
}  // namespace drgate::testing
