// drgate-bench registry: the SQLite registry at scale, in process (no gRPC): fill, open, GetJob,
// ListJobs pages, file size.
#include "bench/scenarios.h"

#include <time.h>

#include <filesystem>
#include <iostream>
#include <random>

#include "bench/common.h"
#include "core/registry/sqlite_job_store.h"

namespace drgate::bench {
namespace {

// Jobs of the filled registries: ids "<first_id + i>" on one CommCell, created one every
// `kSpacing` up to now, mostly succeeded (as a registry that has run for a while looks).
constexpr auto kSpacing = std::chrono::seconds(2);

Job FilledJob(const std::string& commcell, int64_t i, TimePoint newest, int64_t count) {
  Job job;
  job.commcell = commcell;
  job.job_id = std::to_string(kFirstFilledJobId + i);
  job.task_id = 400 + i;
  job.backup_type = i % 4 == 0 ? BackupType::kFull : BackupType::kDifferential;
  job.compression = i % 2 == 0;
  job.state = i % 20 == 0   ? JobState::kFailed
              : i % 20 == 1 ? JobState::kSucceededWithErrors
                            : JobState::kSucceeded;
  job.commserv_status = job.state == JobState::kFailed ? "Failed" : "Completed";
  job.percent_complete = 100;
  if (job.state == JobState::kFailed) job.failure_reason = "Failed to upload to cloud";
  job.request_id = i % 3 == 0 ? "" : "req-" + std::to_string(i);
  job.requested_by = "bench";
  job.create_time = newest - kSpacing * (count - i);
  job.start_time = job.create_time + std::chrono::seconds(1);
  job.end_time = job.create_time + std::chrono::minutes(5);
  job.update_time = *job.end_time;
  return job;
}

int64_t CountJobs(const std::string& path) {
  // A registry filled earlier with `count` jobs has its newest job's id as the marker.
  auto store = SqliteJobStore::Open(path);
  if (!store.ok()) return -1;
  auto page = (*store)->ListJobs({}, 1, "");
  if (!page.ok() || page->jobs.empty()) return 0;
  return std::stoll(page->jobs.front().job_id) - kFirstFilledJobId + 1;
}

// CPU time of the calling thread, in microseconds: what a call costs, whatever else the machine
// runs (wall times here include being preempted by other processes on a shared machine).
double ThreadCpuMicros() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

}  // namespace

std::string FillRegistry(const std::string& path, const std::string& commcell, int64_t count) {
  if (std::filesystem::exists(path) && CountJobs(path) == count) return "reused";
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  auto store = SqliteJobStore::Open(path);
  if (!store.ok()) throw std::runtime_error(store.status().ToString());
  const auto start = SteadyClock::now();
  const TimePoint newest = std::chrono::system_clock::now();
  constexpr int64_t kBatch = 5000;
  std::vector<Job> batch;
  for (int64_t i = 0; i < count; i += kBatch) {
    batch.clear();
    for (int64_t j = i; j < std::min(count, i + kBatch); ++j) {
      batch.push_back(FilledJob(commcell, j, newest, count));
    }
    if (Status s = (*store)->PutJobs(batch); !s.ok()) throw std::runtime_error(s.ToString());
  }
  return "filled in " + FormatMicros(MicrosSince(start));
}

int RunRegistry(const RegistryOptions& options) {
  std::mt19937_64 random(42);
  for (int64_t count : options.sizes) {
    const std::string path = options.dir + "/registry-" + std::to_string(count) + ".db";
    const std::string how = FillRegistry(path, options.commcell, count);
    const std::string scenario = "registry " + std::to_string(count) + " jobs";
    std::cerr << "registry: " << count << " jobs (" << how << ")\n";

    // Open: what drgate's start pays for the registry (schema check, WAL, migrations: none).
    Samples open_times;
    std::unique_ptr<SqliteJobStore> store;
    for (int i = 0; i < 5; ++i) {
      store.reset();
      const auto start = SteadyClock::now();
      auto opened = SqliteJobStore::Open(path);
      if (!opened.ok()) throw std::runtime_error(opened.status().ToString());
      // The first read opens a pooled read connection: part of being ready to serve.
      (void)(*opened)->GetJob(options.commcell, std::to_string(kFirstFilledJobId));
      open_times.Add(MicrosSince(start));
      store = std::move(*opened);
    }

    Samples get;
    Samples get_cpu;
    std::uniform_int_distribution<int64_t> pick(0, count - 1);
    for (int i = 0; i < options.get_samples; ++i) {
      const std::string id = std::to_string(kFirstFilledJobId + pick(random));
      const auto start = SteadyClock::now();
      const double cpu_start = ThreadCpuMicros();
      auto job = store->GetJob(options.commcell, id);
      get_cpu.Add(ThreadCpuMicros() - cpu_start);
      get.Add(MicrosSince(start));
      if (!job.ok()) throw std::runtime_error("GetJob " + id + ": " + job.status().ToString());
    }

    // Pages of 1000 (the largest), walked from the newest job with their tokens; and pages of
    // 1000 filtered by state (failed: 5% of the jobs, so a page spans 20,000 jobs of the table).
    struct Walk {
      Samples wall;
      Samples cpu;
    };
    auto walk = [&](const JobFilter& filter, int page_size, int pages) {
      Walk times;
      std::string token;
      for (int i = 0; i < pages; ++i) {
        const auto start = SteadyClock::now();
        const double cpu_start = ThreadCpuMicros();
        auto page = store->ListJobs(filter, page_size, token);
        times.cpu.Add(ThreadCpuMicros() - cpu_start);
        times.wall.Add(MicrosSince(start));
        if (!page.ok()) throw std::runtime_error("ListJobs: " + page.status().ToString());
        token = page->next_page_token;
        if (token.empty()) token.clear();
      }
      return times;
    };
    const int pages = static_cast<int>(std::min<int64_t>(options.pages, count / 1000));
    JobFilter all;
    JobFilter failed;
    failed.commcell = options.commcell;
    failed.state = JobState::kFailed;
    const Walk list_all = walk(all, 1000, std::max(pages, 1));
    const Walk list_failed = walk(failed, 1000, std::max(pages / 20, 1));
    const Walk list_small = walk(all, 50, options.pages);
    store.reset();

    std::error_code ec;
    const auto bytes = std::filesystem::file_size(path, ec);
    const bool big = count >= 1000000;
    Row(scenario, "open (schema check + first read), median of 5",
        FormatMicros(open_times.Quantile(0.5)), big ? "< 1 s (startup)" : "",
        big ? Verdict(open_times.Quantile(0.5) < 1e6) : "");
    Row(scenario,
        "GetJob wall p50 / p99 / max, CPU p99 (" + std::to_string(get.size()) + " random ids)",
        FormatMicros(get.Quantile(0.5)) + " / " + FormatMicros(get.Quantile(0.99)) + " / " +
            FormatMicros(get.Max()) + ", CPU " + FormatMicros(get_cpu.Quantile(0.99)),
        big ? "p99 < 1 ms" : "", big ? Verdict(get.Quantile(0.99) < 1000) : "");
    // Wall time p50 / p99, then the thread's CPU time p99. The verdict is on CPU time: on a shared
    // machine a page's wall time includes waiting for a core.
    auto pages_row = [&](const std::string& what, const Walk& w, bool target) {
      Row(scenario,
          what + ", wall p50 / p99, CPU p99 (" + std::to_string(w.wall.size()) + " pages)",
          FormatMicros(w.wall.Quantile(0.5)) + " / " + FormatMicros(w.wall.Quantile(0.99)) +
              ", CPU " + FormatMicros(w.cpu.Quantile(0.99)),
          target ? "< 5 ms" : "", target ? Verdict(w.cpu.Quantile(0.99) < 5000) : "");
    };
    pages_row("ListJobs page of 1000", list_all, big);
    pages_row("ListJobs page of 1000 filtered by state (5% match)", list_failed, big);
    pages_row("ListJobs page of 50 (default size)", list_small, false);
    Row(scenario, "file size",
        Fixed(static_cast<double>(bytes) / (1 << 20), 1) + " MiB (" +
            Fixed(static_cast<double>(bytes) / static_cast<double>(count), 0) + " B/job)");
    if (!options.out.empty()) {
      get.Write(options.out + "/registry-" + std::to_string(count) + "-getjob.txt");
      list_all.wall.Write(options.out + "/registry-" + std::to_string(count) + "-listjobs1000.txt");
    }
  }
  return 0;
}

}  // namespace drgate::bench
