// drgate-bench: load generator and benchmark scenarios for drgate (see bench/README.md).
// bench/run.sh starts the processes and runs every scenario; each subcommand here is one
// scenario and prints rows of the result table on stdout.
#include <CLI/CLI.hpp>
#include <iostream>

#include "bench/common.h"
#include "bench/scenarios.h"
#include "core/commserv/codec.h"

namespace drgate::bench {
namespace {

// Forgets the simulator's jobs, starts two full and one differential DR job (as many as it lets
// run at once) and returns their ids. The simulator must run them long enough for the measurement.
std::vector<std::string> StartSimJobs(const std::string& url, const std::string& ca_file,
                                      const std::string& password) {
  HttpClient sim(url + "/commandcenter/api", ca_file);
  sim.Call("POST", "/_sim/reset");  // the jobs of an earlier seed would block these
  auto login = sim.Call("POST", sim.endpoint().Target("Login"),
                        commserv::EncodeLoginRequest("admin", password, "drgate-bench"));
  auto token = commserv::DecodeLoginResponse(login);
  if (!token.ok()) throw std::runtime_error("login: " + token.status().ToString());
  std::vector<std::string> ids;
  for (BackupType type : {BackupType::kFull, BackupType::kFull, BackupType::kDifferential}) {
    auto response =
        sim.Call("POST", sim.endpoint().Target("CommServ/DRBackup"),
                 commserv::EncodeDrBackupRequest({type, false}, commserv::WireFormat::kJson),
                 {{"Accept", "application/json"}, {"Authtoken", commserv::NormalizeToken(*token)}});
    auto result = commserv::DecodeDrBackupResponse(response, commserv::WireFormat::kJson);
    if (!result.ok()) throw std::runtime_error("DRBackup: " + result.status().ToString());
    ids.push_back(result->job_ids.front());
  }
  return ids;
}

}  // namespace
}  // namespace drgate::bench

int main(int argc, char** argv) {
  using namespace drgate::bench;
  CLI::App app{"drgate-bench: load generator and benchmark scenarios for drgate"};
  app.require_subcommand(1);

  RegistryOptions registry;
  auto* reg = app.add_subcommand("registry", "SQLite registry at scale, in process");
  reg->add_option("--dir", registry.dir, "folder of the registry files (reused between runs)")
      ->required();
  reg->add_option("--sizes", registry.sizes, "numbers of jobs")->capture_default_str();
  reg->add_option("--get-samples", registry.get_samples)->capture_default_str();
  reg->add_option("--pages", registry.pages)->capture_default_str();
  reg->add_option("--commcell", registry.commcell)->capture_default_str();
  reg->add_option("--out", registry.out, "folder for raw samples");

  std::string fill_path;
  int64_t fill_count = 0;
  std::string fill_commcell = "bench";
  auto* fill = app.add_subcommand("fill", "create a registry file of finished jobs");
  fill->add_option("--db", fill_path)->required();
  fill->add_option("--jobs", fill_count)->required();
  fill->add_option("--commcell", fill_commcell)->capture_default_str();

  LoadOptions load;
  auto* ld = app.add_subcommand("load", "closed-loop GetJob/ListJobs load on drgate");
  ld->add_option("--target", load.target, "drgate gRPC HOST:PORT")->required();
  ld->add_option("--method", load.method)->check(CLI::IsMember({"GetJob", "ListJobs"}));
  ld->add_option("--http", load.http_url,
                 "http://HOST:PORT: call drgate's HTTP/JSON port instead (one keep-alive "
                 "connection and thread per concurrent caller)");
  ld->add_option("--concurrency", load.concurrency)->capture_default_str();
  ld->add_option("--seconds", load.seconds)->capture_default_str();
  ld->add_option("--warmup", load.warmup_seconds)->capture_default_str();
  ld->add_option("--channels", load.channels)->capture_default_str();
  ld->add_option("--commcell", load.commcell)->capture_default_str();
  ld->add_option("--jobs", load.jobs, "jobs in the registry (GetJob picks among them)")
      ->capture_default_str();
  ld->add_option("--page-size", load.page_size)->capture_default_str();
  ld->add_option("--pid", load.pid, "drgate's pid, for CPU time per call");
  ld->add_option("--out", load.out);

  TriggerOptions trigger;
  auto* tr = app.add_subcommand("trigger", "trigger latency: runbook vs Beast floor vs drgate");
  tr->add_option("--sim", trigger.sim_url, "https://HOST:PORT of commserv-sim")->required();
  tr->add_option("--ca", trigger.ca_file, "the simulator's certificate")->required();
  tr->add_option("--password", trigger.password)->required();
  tr->add_option("--target", trigger.target, "drgate gRPC HOST:PORT")->required();
  tr->add_option("--target-tmpfs", trigger.target_tmpfs,
                 "a second drgate, its registry on tmpfs (isolates the cost of fsync)");
  tr->add_option(
      "--http", trigger.http_url,
      "http://HOST:PORT of drgate's HTTP/JSON port: adds (c-http), the trigger over HTTP");
  tr->add_option("--commcell", trigger.commcell)->capture_default_str();
  tr->add_option("--runbook", trigger.runbook, "bench/runbook.sh")->required();
  tr->add_option("--rounds", trigger.rounds)->capture_default_str();
  tr->add_option("--per-round", trigger.per_round)->capture_default_str();
  tr->add_option("--runbook-per-round", trigger.runbook_per_round)->capture_default_str();
  tr->add_option("--out", trigger.out);

  std::string seed_db, seed_prefix = "cs", seed_sim, seed_ca, seed_password;
  int seed_cells = 100, seed_jobs = 3;
  auto* sd = app.add_subcommand(
      "seed", "start 3 long DR jobs on the simulator and record them as running per CommCell");
  sd->add_option("--db", seed_db)->required();
  sd->add_option("--prefix", seed_prefix)->capture_default_str();
  sd->add_option("--cells", seed_cells)->capture_default_str();
  sd->add_option("--jobs-per-cell", seed_jobs)->capture_default_str()->check(CLI::Range(1, 3));
  sd->add_option("--sim", seed_sim)->required();
  sd->add_option("--ca", seed_ca)->required();
  sd->add_option("--password", seed_password)->required();

  TrackingOptions tracking;
  auto* tk = app.add_subcommand("tracking", "upstream requests, CPU, memory; watchers; /metrics");
  tk->add_option("--label", tracking.label)->required();
  tk->add_option("--sim", tracking.sim_url)->required();
  tk->add_option("--ca", tracking.ca_file)->required();
  tk->add_option("--target", tracking.target)->required();
  tk->add_option("--metrics", tracking.metrics_url, "drgate's http://HOST:PORT")->required();
  tk->add_option("--pid", tracking.pid)->required();
  tk->add_option("--cells", tracking.cells)->capture_default_str();
  tk->add_option("--interval", tracking.interval_seconds, "drgate's poll interval, seconds")
      ->capture_default_str();
  tk->add_option("--window", tracking.window_seconds)->capture_default_str();
  tk->add_option("--watchers", tracking.watchers)->capture_default_str();
  tk->add_option("--channels", tracking.channels)->capture_default_str();
  tk->add_option("--watch-commcell", tracking.watch_commcell);
  tk->add_option("--watch-job", tracking.watch_job);
  tk->add_option("--scrapes", tracking.scrapes)->capture_default_str();
  tk->add_option("--out", tracking.out);

  IsolationOptions isolation;
  auto* is = app.add_subcommand(
      "isolation", "job-list requests of healthy CommCells while other CommServes hang");
  is->add_option("--label", isolation.label)->required();
  is->add_option("--sim", isolation.sim_url, "the healthy CommCells' simulator")->required();
  is->add_option("--ca", isolation.ca_file)->required();
  is->add_option("--hung-sim", isolation.hung_sim_url, "the simulator whose job list hangs")
      ->required();
  is->add_option("--hung-ca", isolation.hung_ca_file)->required();
  is->add_option("--metrics", isolation.metrics_url, "drgate's http://HOST:PORT")->required();
  is->add_option("--pid", isolation.pid)->required();
  is->add_option("--cells", isolation.cells, "healthy CommCells")->capture_default_str();
  is->add_option("--hung-cells", isolation.hung_cells)->capture_default_str();
  is->add_option("--interval", isolation.interval_seconds, "drgate's poll interval, seconds")
      ->capture_default_str();
  is->add_option("--window", isolation.window_seconds)->capture_default_str();

  int expo_cells = 100, expo_iterations = 50;
  auto* ex = app.add_subcommand("exposition", "collect + serialise drgate's metrics in process");
  ex->add_option("--cells", expo_cells)->capture_default_str();
  ex->add_option("--iterations", expo_iterations)->capture_default_str();
  std::string expo_serializer = "drgate";
  ex->add_option("--serializer", expo_serializer)
      ->check(CLI::IsMember({"drgate", "prometheus-cpp"}))
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  try {
    if (reg->parsed()) return RunRegistry(registry);
    if (fill->parsed()) {
      std::cerr << "fill: " << FillRegistry(fill_path, fill_commcell, fill_count) << "\n";
      return 0;
    }
    if (ld->parsed()) return RunLoad(load);
    if (tr->parsed()) return RunTrigger(trigger);
    if (sd->parsed()) {
      const auto ids = StartSimJobs(seed_sim, seed_ca, seed_password);
      SeedActive(seed_db, seed_prefix, seed_cells, seed_jobs, ids);
      std::cout << ids.front() << "\n";
      return 0;
    }
    if (tk->parsed()) return RunTracking(tracking);
    if (is->parsed()) return RunIsolation(isolation);
    if (ex->parsed()) return RunExposition(expo_cells, expo_iterations, expo_serializer);
  } catch (const std::exception& error) {
    std::cerr << "drgate-bench: " << error.what() << "\n";
    return 1;
  }
  return 2;
}
