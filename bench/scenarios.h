#pragma once

// The scenarios of drgate-bench. Each prints its results as rows of the markdown table (see
// Row() in common.h) on stdout, progress on stderr, and returns the process exit code. Raw
// latency samples go to files under `out` (one value in microseconds per line) when it is set.

#include <cstdint>
#include <string>
#include <vector>

namespace drgate::bench {

// Job ids of the filled registries start here (decimal strings, as the CommServe gives them).
constexpr int64_t kFirstFilledJobId = 1000000;

struct RegistryOptions {
  std::string dir;  // registry-<N>.db files live (and are reused) here
  std::string commcell = "bench";
  std::vector<int64_t> sizes = {10000, 100000, 1000000};
  int get_samples = 20000;
  int pages = 200;
  std::string out;
};
int RunRegistry(const RegistryOptions& options);
// Creates (or reuses, when it already holds `count` jobs) a registry file of `count` finished jobs
// on `commcell`. Returns how ("reused", "filled in 1.2 s").
std::string FillRegistry(const std::string& path, const std::string& commcell, int64_t count);

struct LoadOptions {
  std::string target;             // gRPC HOST:PORT of drgate (plaintext)
  std::string http_url;           // http://HOST:PORT: the calls go to the HTTP/JSON port instead
  std::string method = "GetJob";  // GetJob | ListJobs
  std::vector<int> concurrency = {1, 16, 256};
  double seconds = 3;
  double warmup_seconds = 0.5;
  int channels = 1;
  std::string commcell = "bench";
  int64_t jobs = 10000;  // GetJob picks ids among the filled registry's
  int page_size = 50;
  int pid = 0;  // drgate's, for its CPU time per request
  std::string out;
};
int RunLoad(const LoadOptions& options);

struct TriggerOptions {
  std::string sim_url;  // https://127.0.0.1:PORT (the simulator's root)
  std::string api_path = "/commandcenter/api";
  std::string ca_file;  // the simulator's certificate
  std::string username = "admin";
  std::string password;
  std::string target;        // drgate gRPC HOST:PORT
  std::string target_tmpfs;  // optional: a drgate whose registry is on tmpfs
  std::string http_url;      // optional: drgate's HTTP/JSON port, for (c-http)
  std::string commcell = "bench";
  std::string runbook;  // the shell runbook script (bench/runbook.sh)
  int rounds = 5;
  int per_round = 60;         // (b) and (c) samples per round
  int runbook_per_round = 6;  // (a) and (b0) samples per round
  std::string out;
};
int RunTrigger(const TriggerOptions& options);

struct TrackingOptions {
  std::string label;  // e.g. "100 CommCells x 3 jobs"
  std::string sim_url;
  std::string ca_file;
  std::string target;       // drgate gRPC
  std::string metrics_url;  // drgate http://HOST:PORT
  int pid = 0;
  int cells = 100;
  int jobs_per_cell = 3;
  double interval_seconds = 1;
  double window_seconds = 5;
  int watchers = 0;  // 0: no watcher phase
  int channels = 8;
  std::string watch_commcell;
  std::string watch_job;
  int scrapes = 0;  // 0: no /metrics phase
  std::string out;
};
int RunTracking(const TrackingOptions& options);

// 100 CommCells of which some hang: `sim_url` serves the healthy ones, `hung_sim_url` the others
// (its DR job list hangs). Counts job-list requests per poll interval on the healthy simulator
// and, per CommCell, in drgate's drgate_commserv_requests_total.
struct IsolationOptions {
  std::string label;
  std::string sim_url;
  std::string ca_file;
  std::string hung_sim_url;
  std::string hung_ca_file;
  std::string metrics_url;  // drgate http://HOST:PORT
  int pid = 0;
  int cells = 90;       // healthy CommCells
  int hung_cells = 10;  // CommCells whose job list hangs
  double interval_seconds = 1;
  double window_seconds = 10;
};
int RunIsolation(const IsolationOptions& options);

// The server side of a /metrics scrape with `cells` CommCells, in process.
// `serializer`: "drgate" (what the metrics port uses) or "prometheus-cpp" (the one it replaced).
int RunExposition(int cells, int iterations, const std::string& serializer);

// Writes `cells` x `jobs_per_cell` running jobs (ids from `job_ids`, cycled) into the registry
// at `path`, on CommCells <prefix>0 .. <prefix>N-1.
int SeedActive(const std::string& path, const std::string& prefix, int cells, int jobs_per_cell,
               const std::vector<std::string>& job_ids);

}  // namespace drgate::bench
