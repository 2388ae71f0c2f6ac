// drgate-bench trigger: latency of starting one DR backup, three ways, against the same TLS
// commserv-sim, in one invocation so that the ratios compare like with like:
//   (a)  a shell runbook: bash + curl, log in then POST CommServ/DRBackup (bench/runbook.sh);
//   (b0) a direct Beast client without keep-alive: Login and POST, each on a new TLS connection
//        (what the runbook does, without the processes);
//   (b)  the floor: a direct Beast client on a kept-alive connection with a cached token, one
//        POST (what drgate itself sends upstream for a trigger);
//   (c)  TriggerBackup through drgate (gRPC, a fresh request_id each: the idempotent path);
//   (c') optionally the same through a second drgate whose registry is on tmpfs, where fsync
//        costs nothing: c' - b is drgate's own overhead, c - c' the disk's.
// Samples alternate b, c, b, c ... and a, b0, a, b0 ..., so load changes on this shared machine
// hit both sides of each ratio alike. After each (c) the bench waits until drgate's tracker has
// recorded the job's end (the simulator's jobs finish at once), so the tracker's work for one
// sample does not run into the next. Between rounds the simulator forgets its jobs (its job
// list, which drgate polls, stays short, as a real CommServe's DR job list is).
#include <grpcpp/grpcpp.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>

#include <iostream>

#include <optional>

#include "bench/common.h"
#include "bench/scenarios.h"
#include "core/commserv/codec.h"
#include "drgate/v1/drgate.grpc.pb.h"

extern char** environ;

namespace drgate::bench {
namespace {

// The floor: core's own transport and codec, without drgate's orchestration around them.
class FloorClient {
 public:
  FloorClient(const TriggerOptions& options, bool keep_alive)
      : options_(options), http_(options.sim_url + options.api_path, options.ca_file, keep_alive) {}

  void Login() {
    auto response = http_.Call(
        "POST", http_.endpoint().Target("Login"),
        commserv::EncodeLoginRequest(options_.username, options_.password, "drgate-bench"),
        {{"Accept", "application/json"}});
    auto token = commserv::DecodeLoginResponse(response);
    if (!token.ok()) throw std::runtime_error("floor login: " + token.status().ToString());
    token_ = commserv::NormalizeToken(*token);
  }

  std::string Trigger() {
    auto response = http_.Call(
        "POST", http_.endpoint().Target("CommServ/DRBackup"),
        commserv::EncodeDrBackupRequest({BackupType::kFull, false}, commserv::WireFormat::kJson),
        {{"Accept", "application/json"},
         {"Content-Type", "application/json"},
         {"Authtoken", token_}});
    auto result = commserv::DecodeDrBackupResponse(response, commserv::WireFormat::kJson);
    if (!result.ok()) throw std::runtime_error("floor trigger: " + result.status().ToString());
    return result->job_ids.front();
  }

 private:
  const TriggerOptions& options_;
  HttpClient http_;
  std::string token_;
};

// Runs the runbook once; throws when it fails (it checks that a job id came back).
void RunRunbook(const TriggerOptions& options) {
  const std::string base = options.sim_url + options.api_path;
  std::vector<std::string> argv = {"/bin/bash",     options.runbook,  base,
                                   options.ca_file, options.username, options.password};
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start the runbook");
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("the runbook failed (exit status " + std::to_string(status) + ")");
  }
}

std::string PercentileCell(const Samples& s) {
  return FormatMicros(s.Quantile(0.5)) + " / " + FormatMicros(s.Quantile(0.99)) + " (" +
         std::to_string(s.size()) + ")";
}

// Waits (polling GetJob, for a few seconds at most) until drgate's tracker has seen the job end, so
// the next trigger starts a new job instead of finding this one running.
void WaitUntilFinished(v1::DrBackupService::Stub& drgate, const std::string& commcell,
                       const std::string& job_id) {
  for (int i = 0; i < 10000; ++i) {
    v1::GetJobRequest get;
    get.set_commcell(commcell);
    get.set_job_id(job_id);
    v1::Job job;
    grpc::ClientContext context;
    if (drgate.GetJob(&context, get, &job).ok() && job.state() >= v1::JOB_STATE_SUCCEEDED) return;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

}  // namespace

int RunTrigger(const TriggerOptions& options) {
  auto stub = v1::DrBackupService::NewStub(
      grpc::CreateChannel(options.target, grpc::InsecureChannelCredentials()));
  std::unique_ptr<v1::DrBackupService::Stub> tmpfs_stub;
  if (!options.target_tmpfs.empty()) {
    tmpfs_stub = v1::DrBackupService::NewStub(
        grpc::CreateChannel(options.target_tmpfs, grpc::InsecureChannelCredentials()));
  }
  HttpClient admin(options.sim_url, options.ca_file);
  FloorClient floor(options, /*keep_alive=*/true);
  floor.Login();
  FloorClient cold(options, /*keep_alive=*/false);
  const std::string run_id = std::to_string(getpid());
  int64_t sequence = 0;

  // (c): one TriggerBackup, then wait until the tracker has seen the job end.
  auto through_drgate = [&](v1::DrBackupService::Stub* drgate) -> double {
    v1::TriggerBackupRequest request;
    request.set_commcell(options.commcell);
    request.set_backup_type(v1::BACKUP_TYPE_FULL);
    request.set_request_id("bench-" + run_id + "-" + std::to_string(++sequence));
    v1::TriggerBackupResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    const auto start = SteadyClock::now();
    grpc::Status status = drgate->TriggerBackup(&context, request, &response);
    const double micros = MicrosSince(start);
    if (!status.ok()) {
      throw std::runtime_error("TriggerBackup: " + std::to_string(status.error_code()) + " " +
                               status.error_message());
    }
    WaitUntilFinished(*drgate, options.commcell, response.job().job_id());
    return micros;
  };
  // (c-http): the same over drgate's HTTP/JSON port (one keep-alive connection).
  std::optional<HttpClient> http;
  if (!options.http_url.empty()) http.emplace(options.http_url);
  auto through_http = [&]() -> double {
    const std::string body = R"({"backupType": "BACKUP_TYPE_FULL", "requestId": "bench-)" + run_id +
                             "-" + std::to_string(++sequence) + R"("})";
    const auto start = SteadyClock::now();
    auto r = http->Call("POST", "/v1/commcells/" + options.commcell + "/backups", body,
                        {{"Content-Type", "application/json"}, {"grpc-timeout", "30S"}});
    const double micros = MicrosSince(start);
    if (r.status != 200) {
      throw std::runtime_error("HTTP TriggerBackup: " + std::to_string(r.status) + " " + r.body);
    }
    const std::string id = nlohmann::json::parse(r.body).at("job").at("jobId");
    WaitUntilFinished(*stub, options.commcell, id);
    return micros;
  };
  auto floor_warm = [&] {
    const auto start = SteadyClock::now();
    floor.Trigger();
    return MicrosSince(start);
  };
  auto floor_cold = [&] {
    const auto start = SteadyClock::now();
    cold.Login();
    cold.Trigger();
    return MicrosSince(start);
  };
  auto runbook = [&] {
    const auto start = SteadyClock::now();
    RunRunbook(options);
    return MicrosSince(start);
  };

  // Warm-up: connections, tokens, caches; not measured.
  for (int i = 0; i < 3; ++i) {
    floor_warm();
    through_drgate(stub.get());
    if (tmpfs_stub) through_drgate(tmpfs_stub.get());
    if (http) through_http();
  }
  runbook();
  floor_cold();
  admin.Call("POST", "/_sim/reset");

  Samples a, b0, b, c, c_tmpfs, c_http;
  for (int round = 0; round < options.rounds; ++round) {
    for (int i = 0; i < options.per_round; ++i) {
      b.Add(floor_warm());
      c.Add(through_drgate(stub.get()));
      if (tmpfs_stub) c_tmpfs.Add(through_drgate(tmpfs_stub.get()));
      if (http) c_http.Add(through_http());
    }
    for (int i = 0; i < options.runbook_per_round; ++i) {
      a.Add(runbook());
      b0.Add(floor_cold());
    }
    admin.Call("POST", "/_sim/reset");
    std::cerr << "trigger: round " << round + 1 << "/" << options.rounds << " done\n";
  }

  const std::string scenario = "trigger latency";
  Row(scenario, "(a) shell runbook: curl login + POST, p50 / p99 (n)", PercentileCell(a));
  Row(scenario, "(b0) direct Beast, no keep-alive: login + POST, 2 TLS handshakes, p50 / p99 (n)",
      PercentileCell(b0));
  Row(scenario, "(b) direct Beast floor, keep-alive + cached token, p50 / p99 (n)",
      PercentileCell(b));
  Row(scenario, "(c) TriggerBackup through drgate, p50 / p99 (n)", PercentileCell(c));
  if (!c_tmpfs.empty()) {
    Row(scenario, "(c') TriggerBackup through drgate, registry on tmpfs, p50 / p99 (n)",
        PercentileCell(c_tmpfs));
  }
  if (!c_http.empty()) {
    Row(scenario, "(c-http) TriggerBackup over drgate's HTTP/JSON port, p50 / p99 (n)",
        PercentileCell(c_http));
    Row(scenario, "c-http p50 - c p50 (what JSON over HTTP/1.1 adds)",
        FormatMicros(c_http.Quantile(0.5) - c.Quantile(0.5)));
  }
  const double cb50 = c.Quantile(0.5) / b.Quantile(0.5);
  const double cb99 = c.Quantile(0.99) / b.Quantile(0.99);
  const double gap = c.Quantile(0.5) - b.Quantile(0.5);
  Row(scenario, "c/b at p50 (p99)", Fixed(cb50, 2) + " (" + Fixed(cb99, 2) + ")", "<= 1.3",
      Verdict(cb50 <= 1.3));
  Row(scenario, "c p50 - b p50", FormatMicros(gap), "< 1 ms", Verdict(gap < 1000));
  const double ac = a.Quantile(0.5) / c.Quantile(0.5);
  Row(scenario, "a/c at p50 (p99)",
      Fixed(ac, 1) + " (" + Fixed(a.Quantile(0.99) / c.Quantile(0.99), 1) + ")", ">= 10",
      Verdict(ac >= 10));
  if (!c_tmpfs.empty()) {
    Row(scenario, "c'/b at p50 (p99); c' p50 - b p50 (drgate without the disk)",
        Fixed(c_tmpfs.Quantile(0.5) / b.Quantile(0.5), 2) + " (" +
            Fixed(c_tmpfs.Quantile(0.99) / b.Quantile(0.99), 2) + "); " +
            FormatMicros(c_tmpfs.Quantile(0.5) - b.Quantile(0.5)));
  }
  Row(scenario, "b0/c at p50 (a direct client that logs in per call, vs drgate)",
      Fixed(b0.Quantile(0.5) / c.Quantile(0.5), 1));
  if (!options.out.empty()) {
    a.Write(options.out + "/trigger-a-runbook.txt");
    b0.Write(options.out + "/trigger-b0-beast-cold.txt");
    b.Write(options.out + "/trigger-b-beast.txt");
    c.Write(options.out + "/trigger-c-drgate.txt");
    if (!c_tmpfs.empty()) c_tmpfs.Write(options.out + "/trigger-c-drgate-tmpfs.txt");
    if (!c_http.empty()) c_http.Write(options.out + "/trigger-c-drgate-http.txt");
  }
  return 0;
}

}  // namespace drgate::bench
