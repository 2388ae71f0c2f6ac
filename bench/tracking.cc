// drgate-bench tracking: what following jobs costs upstream and in drgate, as CommCells, jobs and
// watchers grow; and the /metrics scrape with that many CommCells.
//
// drgate runs against one commserv-sim that serves every CommCell (each CommCell has its own
// session and connections, so the simulator cannot tell them apart, but it counts every request
// in /_sim/stats). The registry was seeded with running jobs that exist on the simulator, so each
// CommCell's DR job list shows its jobs.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/common.h"
#include "bench/scenarios.h"
#include "core/registry/sqlite_job_store.h"
#include "drgate/v1/drgate.grpc.pb.h"

namespace drgate::bench {
namespace {

// Counts of every WatchJob stream, shared by all of them.
struct WatchCounters {
  std::mutex mu;
  std::condition_variable cv;
  int first_messages = 0;                       // guarded by mu
  int terminal = 0;                             // guarded by mu
  int done = 0;                                 // guarded by mu
  int failed = 0;                               // guarded by mu: ended without a terminal state
  std::map<std::string, int> refused;           // guarded by mu: ended before a first message
  SteadyClock::time_point first_terminal_at{};  // guarded by mu
  SteadyClock::time_point last_terminal_at{};   // guarded by mu
};

// One WatchJob stream on the callback API: reads until the server ends the stream.
class Watcher final : public grpc::ClientReadReactor<v1::Job> {
 public:
  Watcher(v1::DrBackupService::Stub* stub, const std::string& commcell, const std::string& job_id,
          WatchCounters& counters)
      : counters_(counters) {
    request_.set_commcell(commcell);
    request_.set_job_id(job_id);
    stub->async()->WatchJob(&context_, &request_, this);
    StartRead(&message_);
    StartCall();
  }
  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    const bool terminal = message_.state() >= v1::JOB_STATE_SUCCEEDED;
    {
      std::lock_guard lock(counters_.mu);
      if (!seen_first_) ++counters_.first_messages;
      if (terminal && !seen_terminal_) {
        const auto now = SteadyClock::now();
        if (counters_.terminal == 0) counters_.first_terminal_at = now;
        counters_.last_terminal_at = now;
        ++counters_.terminal;
      }
    }
    seen_first_ = true;
    seen_terminal_ = seen_terminal_ || terminal;
    counters_.cv.notify_all();
    StartRead(&message_);
  }
  void OnDone(const grpc::Status& status) override {
    {
      std::lock_guard lock(counters_.mu);
      ++counters_.done;
      if (!seen_terminal_) ++counters_.failed;
      if (!seen_first_) {
        ++counters_.refused[std::to_string(status.error_code()) + " " + status.error_message()];
      }
    }
    counters_.cv.notify_all();
  }

 private:
  WatchCounters& counters_;
  grpc::ClientContext context_;
  v1::WatchJobRequest request_;
  v1::Job message_;
  bool seen_first_ = false;  // only the reactor's own reactions touch these, one at a time
  bool seen_terminal_ = false;
};

struct Upstream {
  int64_t job_list = 0;
  int64_t job = 0;
  int64_t total = 0;
};

Upstream ReadStats(HttpClient& sim) {
  const auto stats = nlohmann::json::parse(sim.Call("GET", "/_sim/stats").body);
  Upstream u;
  for (const auto& [name, count] : stats.at("requests_by_endpoint").items()) {
    const int64_t n = count.get<int64_t>();
    u.total += n;
    if (name == "JobList") u.job_list = n;
    if (name == "Job") u.job = n;
  }
  return u;
}

// Watches drgate and the simulator for one window and prints what one poll interval cost.
void MeasureWindow(const TrackingOptions& options, HttpClient& sim, const std::string& scenario) {
  const Upstream u0 = ReadStats(sim);
  const ProcSample p0 = ReadProc(options.pid);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.window_seconds));
  const Upstream u1 = ReadStats(sim);
  const ProcSample p1 = ReadProc(options.pid);
  const double wall = std::chrono::duration<double>(p1.at - p0.at).count();
  const double intervals = wall / options.interval_seconds;
  const double per_interval = static_cast<double>(u1.total - u0.total) / intervals;
  const double ideal = options.cells;  // one job-list request per CommCell per interval
  Row(scenario, "upstream requests per poll interval (JobList + Job/{id} + other)",
      Fixed(per_interval, 1) + " (" +
          Fixed(static_cast<double>(u1.job_list - u0.job_list) / intervals, 1) + " + " +
          Fixed(static_cast<double>(u1.job - u0.job) / intervals, 1) + " + " +
          Fixed(static_cast<double>((u1.total - u1.job_list - u1.job) -
                                    (u0.total - u0.job_list - u0.job)) /
                    intervals,
                1) +
          ")",
      "= CommCells (" + std::to_string(options.cells) + "), whatever the jobs and watchers",
      Verdict(per_interval <= ideal * 1.1 && u1.job == u0.job));
  Row(scenario, "drgate CPU (of one core) / RSS",
      Fixed((p1.cpu_seconds - p0.cpu_seconds) / wall * 100, 1) + "% / " +
          Fixed(static_cast<double>(p1.rss_kib) / 1024, 1) + " MiB");
}

// drgate's answered job-list requests per CommCell (drgate_commserv_requests_total with
// endpoint="job_list" and code="200"), from its /metrics.
std::map<std::string, int64_t> JobListsByCommCell(HttpClient& metrics) {
  std::map<std::string, int64_t> out;
  std::istringstream in(metrics.Call("GET", "/metrics").body);
  std::string line;
  const std::string family = "drgate_commserv_requests_total{";
  while (std::getline(in, line)) {
    if (line.rfind(family, 0) != 0 || line.find("endpoint=\"job_list\"") == std::string::npos ||
        line.find("code=\"200\"") == std::string::npos) {
      continue;
    }
    const size_t at = line.find("commcell=\"");
    const size_t close = line.find('}');
    if (at == std::string::npos || close == std::string::npos) continue;
    const size_t begin = at + 10;
    const std::string name = line.substr(begin, line.find('"', begin) - begin);
    out[name] = static_cast<int64_t>(std::stod(line.substr(close + 2)));
  }
  return out;
}

int64_t Stat(HttpClient& sim, const std::string& key) {
  return nlohmann::json::parse(sim.Call("GET", "/_sim/stats").body).value(key, int64_t{0});
}

}  // namespace

int RunIsolation(const IsolationOptions& options) {
  HttpClient sim(options.sim_url, options.ca_file);
  HttpClient hung(options.hung_sim_url, options.hung_ca_file);
  HttpClient metrics(options.metrics_url);
  const std::string scenario = "isolation " + options.label;
  // Every healthy CommCell logged in and every hung one has its poll hanging; then a poll
  // interval and a half to settle.
  const auto give_up = SteadyClock::now() + std::chrono::seconds(120);
  while (
      (Stat(sim, "logins") < options.cells || Stat(hung, "faults_applied") < options.hung_cells) &&
      SteadyClock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(options.interval_seconds * 1.5));

  const Upstream u0 = ReadStats(sim);
  const int64_t hung0 = ReadStats(hung).job_list;
  const auto per_cell0 = JobListsByCommCell(metrics);
  const ProcSample p0 = ReadProc(options.pid);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.window_seconds));
  const Upstream u1 = ReadStats(sim);
  const int64_t hung1 = ReadStats(hung).job_list;
  const auto per_cell1 = JobListsByCommCell(metrics);
  const ProcSample p1 = ReadProc(options.pid);
  const double wall = std::chrono::duration<double>(p1.at - p0.at).count();
  const double intervals = wall / options.interval_seconds;

  const double lists = static_cast<double>(u1.job_list - u0.job_list) / intervals;
  Row(scenario, "job-list requests per poll interval, healthy CommServes (simulator's count)",
      Fixed(lists, 1), "= healthy CommCells (" + std::to_string(options.cells) + ")",
      Verdict(lists >= options.cells * 0.9 && lists <= options.cells * 1.1));
  // Per CommCell, from drgate's own counters: the slowest and the fastest healthy one.
  double lo = 1e9;
  double hi = 0;
  int counted = 0;
  for (const auto& [name, after] : per_cell1) {
    auto before = per_cell0.find(name);
    if (before == per_cell0.end() || after == before->second) continue;  // a hung CommCell
    const double rate = static_cast<double>(after - before->second) / intervals;
    lo = std::min(lo, rate);
    hi = std::max(hi, rate);
    ++counted;
  }
  if (counted == 0) lo = 0;
  Row(scenario,
      "job-list answers per poll interval per healthy CommCell, min / max (" +
          std::to_string(counted) + " CommCells answering)",
      Fixed(lo, 2) + " / " + Fixed(hi, 2), "1 / 1, all " + std::to_string(options.cells),
      Verdict(counted == options.cells && lo >= 0.9 && hi <= 1.1));
  Row(scenario, "job-list requests sent to the hung CommServe in the window",
      std::to_string(hung1 - hung0) + " (" + std::to_string(hung1) + " hanging since the start)",
      "0: one poll per hung CommCell, still waiting", Verdict(hung1 - hung0 == 0));
  Row(scenario, "drgate CPU (of one core) / RSS",
      Fixed((p1.cpu_seconds - p0.cpu_seconds) / wall * 100, 1) + "% / " +
          Fixed(static_cast<double>(p1.rss_kib) / 1024, 1) + " MiB");
  return 0;
}

int SeedActive(const std::string& path, const std::string& prefix, int cells, int jobs_per_cell,
               const std::vector<std::string>& job_ids) {
  auto store = SqliteJobStore::Open(path);
  if (!store.ok()) throw std::runtime_error(store.status().ToString());
  const TimePoint now = std::chrono::system_clock::now();
  std::vector<Job> jobs;
  for (int cell = 0; cell < cells; ++cell) {
    for (int j = 0; j < jobs_per_cell; ++j) {
      Job job;
      job.commcell = prefix + std::to_string(cell);
      job.job_id = job_ids[j % job_ids.size()];
      // The simulator's jobs: two full, then one differential.
      job.backup_type = j % 3 == 2 ? BackupType::kDifferential : BackupType::kFull;
      job.state = JobState::kRunning;
      job.commserv_status = "Running";
      job.requested_by = "bench";
      job.create_time = now;
      job.update_time = now;
      jobs.push_back(std::move(job));
    }
  }
  if (Status s = (*store)->PutJobs(jobs); !s.ok()) throw std::runtime_error(s.ToString());
  return 0;
}

int RunTracking(const TrackingOptions& options) {
  HttpClient sim(options.sim_url, options.ca_file);
  const std::string scenario = "tracking " + options.label;
  // Let every CommCell log in (the first round logs in one CommCell after the other) and settle
  // into its poll rhythm first.
  const auto give_up = SteadyClock::now() + std::chrono::seconds(120);
  while (nlohmann::json::parse(sim.Call("GET", "/_sim/stats").body).value("logins", 0) <
             options.cells &&
         SteadyClock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(options.interval_seconds * 1.5));
  MeasureWindow(options, sim, scenario);

  if (options.watchers > 0) {
    std::vector<std::unique_ptr<v1::DrBackupService::Stub>> stubs;
    for (int i = 0; i < options.channels; ++i) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("drgate.bench.channel", i);
      stubs.push_back(v1::DrBackupService::NewStub(
          grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args)));
    }
    const ProcSample before = ReadProc(options.pid);
    WatchCounters counters;
    std::vector<std::unique_ptr<Watcher>> watchers;
    const auto opening = SteadyClock::now();
    for (int i = 0; i < options.watchers; ++i) {
      watchers.push_back(std::make_unique<Watcher>(
          stubs[i % stubs.size()].get(), options.watch_commcell, options.watch_job, counters));
    }
    {
      std::unique_lock lock(counters.mu);
      counters.cv.wait_for(lock, std::chrono::seconds(120), [&] {
        return counters.first_messages + counters.done >= options.watchers;
      });
    }
    const double open_us = MicrosSince(opening);
    const std::string with = scenario + " + " + std::to_string(options.watchers) + " watchers";
    int opened = 0;
    {
      std::lock_guard lock(counters.mu);
      opened = counters.first_messages;
    }
    Row(with, "watchers holding a stream (first message received) / time to open all",
        std::to_string(opened) + " / " + FormatMicros(open_us), std::to_string(options.watchers),
        Verdict(opened == options.watchers));
    {
      std::lock_guard lock(counters.mu);
      for (const auto& [why, n] : counters.refused) {
        std::cerr << "bench: " << n << " watcher(s) ended before their first message: gRPC code "
                  << why << "\n";
      }
    }
    MeasureWindow(options, sim, with);
    const ProcSample after = ReadProc(options.pid);
    Row(with, "drgate memory per watcher",
        Fixed(static_cast<double>(after.rss_kib - before.rss_kib) * 1024 / options.watchers, 0) +
            " B");

    // The job ends upstream: every watcher must get the terminal state, with no extra upstream
    // request (the tracker's next poll finds it).
    const auto forced = SteadyClock::now();
    sim.Call("POST", "/_sim/jobs/" + options.watch_job, R"({"status": "Completed"})");
    {
      std::unique_lock lock(counters.mu);
      counters.cv.wait_for(lock, std::chrono::seconds(60),
                           [&] { return counters.done >= options.watchers; });
      const double to_first =
          std::chrono::duration<double, std::micro>(counters.first_terminal_at - forced).count();
      const double spread = std::chrono::duration<double, std::micro>(counters.last_terminal_at -
                                                                      counters.first_terminal_at)
                                .count();
      Row(with, "job ends: watchers told / first told after (<= 1 poll interval) / all told within",
          std::to_string(counters.terminal) + " / " + FormatMicros(to_first) + " / " +
              FormatMicros(spread),
          std::to_string(options.watchers), Verdict(counters.terminal == options.watchers));
    }
    for (auto& w : watchers) w->Cancel();
    {
      std::unique_lock lock(counters.mu);
      counters.cv.wait_for(lock, std::chrono::seconds(30),
                           [&] { return counters.done >= options.watchers; });
      if (counters.done < options.watchers) {
        // Reactors still running must not be destroyed: leave them to the process exit.
        for (auto& w : watchers) w.release();
      }
    }
  }

  if (options.scrapes > 0) {
    HttpClient metrics(options.metrics_url);
    std::string body = metrics.Call("GET", "/metrics").body;  // warm-up, and the size
    Samples scrapes;
    for (int i = 0; i < options.scrapes; ++i) {
      const auto start = SteadyClock::now();
      body = metrics.Call("GET", "/metrics").body;
      scrapes.Add(MicrosSince(start));
    }
    int64_t series = 0;
    for (size_t at = 0; at < body.size();) {
      const size_t end = std::min(body.find('\n', at), body.size());
      if (end > at && body[at] != '#') ++series;
      at = end + 1;
    }
    const std::string scrape_scenario = "/metrics, " + std::to_string(options.cells) + " CommCells";
    Row(scrape_scenario, "scrape p50 / p99 / max (" + std::to_string(scrapes.size()) + ")",
        FormatMicros(scrapes.Quantile(0.5)) + " / " + FormatMicros(scrapes.Quantile(0.99)) + " / " +
            FormatMicros(scrapes.Max()),
        "< 10 ms", Verdict(scrapes.Quantile(0.99) < 10000));
    Row(scrape_scenario, "exposition size",
        std::to_string(series) + " series, " + Fixed(static_cast<double>(body.size()) / 1024, 0) +
            " KiB");
    if (!options.out.empty()) scrapes.Write(options.out + "/metrics-scrape.txt");
  }
  return 0;
}

}  // namespace drgate::bench
