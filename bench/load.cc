// drgate-bench load: closed-loop read load on drgate's gRPC port. `concurrency` calls are always
// outstanding on gRPC's callback API (each completion starts the next call), so a few library
// threads drive hundreds of concurrent calls. Per level: throughput, latency percentiles, and
// drgate's CPU time per call (from /proc), which says what two dedicated cores would sustain
// even when the client and other work share this machine's cores.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "bench/common.h"
#include "bench/scenarios.h"
#include "drgate/v1/drgate.grpc.pb.h"

namespace drgate::bench {
namespace {

// Channels that do not share one TCP connection (each has its own subchannel pool).
std::vector<std::unique_ptr<v1::DrBackupService::Stub>> MakeStubs(const std::string& target,
                                                                  int channels) {
  std::vector<std::unique_ptr<v1::DrBackupService::Stub>> stubs;
  for (int i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("drgate.bench.channel", i);
    stubs.push_back(v1::DrBackupService::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

// The measured window of one concurrency level: a warm-up, then `seconds`. Fixed before any loop
// starts, so every thread reads it without a lock.
struct Window {
  explicit Window(const LoadOptions& options)
      : measure_from(SteadyClock::now() +
                     std::chrono::duration_cast<SteadyClock::duration>(
                         std::chrono::duration<double>(options.warmup_seconds))),
        stop_at(measure_from + std::chrono::duration_cast<SteadyClock::duration>(
                                   std::chrono::duration<double>(options.seconds))) {}
  SteadyClock::time_point measure_from;
  SteadyClock::time_point stop_at;
};

// What one closed loop measured; only that loop writes it.
struct Tally {
  // Calls that started in the window and ended in it count.
  void Record(const Window& window, SteadyClock::time_point started, SteadyClock::time_point now,
              bool ok, const std::string& error) {
    if (started < window.measure_from || now > window.stop_at) return;
    if (ok) {
      samples.Add(std::chrono::duration<double, std::micro>(now - started).count());
      return;
    }
    if (first_error.empty()) first_error = error;
    ++errors;
  }
  Samples samples;
  int64_t errors = 0;
  std::string first_error;
};

// Every loop's samples; their errors added to `errors`, the first error message kept.
template <typename Loops>
Samples Merge(const Loops& loops, int64_t* errors, std::string* first_error) {
  Samples all;
  for (const Tally& loop : loops) {
    all.Append(loop.samples);
    *errors += loop.errors;
    if (first_error->empty()) *first_error = loop.first_error;
  }
  return all;
}

// One closed loop: a call at a time, the next one started from the previous one's callback.
struct Loop : Tally {
  v1::DrBackupService::Stub* stub = nullptr;
  std::mt19937_64 random;
  std::unique_ptr<grpc::ClientContext> context;
  v1::GetJobRequest get_request;
  v1::Job get_response;
  v1::ListJobsRequest list_request;
  v1::ListJobsResponse list_response;
  SteadyClock::time_point started;
};

class Runner {
 public:
  Runner(const LoadOptions& options, const Window& window, int concurrency,
         const std::vector<std::unique_ptr<v1::DrBackupService::Stub>>& stubs)
      : options_(options), window_(window), loops_(concurrency) {
    for (int i = 0; i < concurrency; ++i) {
      loops_[i].stub = stubs[i % stubs.size()].get();
      loops_[i].random.seed(1000 + i);
    }
  }

  void Run() {
    running_ = static_cast<int>(loops_.size());
    for (auto& loop : loops_) Issue(loop);
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return running_ == 0; });
  }

  Samples Merged(int64_t* errors, std::string* first_error) const {
    return Merge(loops_, errors, first_error);
  }

 private:
  void Issue(Loop& loop) {
    loop.context = std::make_unique<grpc::ClientContext>();
    loop.context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    loop.started = SteadyClock::now();
    auto done = [this, &loop](grpc::Status status) { Done(loop, status); };
    if (options_.method == "GetJob") {
      std::uniform_int_distribution<int64_t> pick(0, options_.jobs - 1);
      loop.get_request.set_commcell(options_.commcell);
      loop.get_request.set_job_id(std::to_string(kFirstFilledJobId + pick(loop.random)));
      loop.stub->async()->GetJob(loop.context.get(), &loop.get_request, &loop.get_response,
                                 std::move(done));
    } else {
      loop.list_request.set_commcell(options_.commcell);
      loop.list_request.set_page_size(options_.page_size);
      loop.stub->async()->ListJobs(loop.context.get(), &loop.list_request, &loop.list_response,
                                   std::move(done));
    }
  }

  void Done(Loop& loop, const grpc::Status& status) {
    const auto now = SteadyClock::now();
    loop.Record(window_, loop.started, now, status.ok(), status.error_message());
    if (now < window_.stop_at) {
      Issue(loop);
      return;
    }
    std::lock_guard lock(mu_);
    if (--running_ == 0) cv_.notify_all();
  }

  const LoadOptions& options_;
  const Window& window_;
  std::vector<Loop> loops_;
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0;  // guarded by mu_
};

// The same closed loops over the HTTP/JSON port: a thread and a keep-alive connection per
// concurrent caller, each waiting for its answer before the next request (HTTP/1.1 has no
// multiplexing).
class HttpRunner {
 public:
  HttpRunner(const LoadOptions& options, const Window& window, int concurrency)
      : options_(options), window_(window), loops_(concurrency) {}

  void Run() {
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < loops_.size(); ++i) {
      threads.emplace_back([this, i] { RunLoop(loops_[i], static_cast<int>(i)); });
    }
    for (auto& t : threads) t.join();
  }

  Samples Merged(int64_t* errors, std::string* first_error) const {
    return Merge(loops_, errors, first_error);
  }

 private:
  void RunLoop(Tally& loop, int index) {
    HttpClient client(options_.http_url);
    std::mt19937_64 random(1000 + index);
    std::uniform_int_distribution<int64_t> pick(0, options_.jobs - 1);
    const std::string jobs = "/v1/commcells/" + options_.commcell + "/jobs";
    while (true) {
      const std::string target = options_.method == "GetJob"
                                     ? jobs + "/" + std::to_string(kFirstFilledJobId + pick(random))
                                     : jobs + "?pageSize=" + std::to_string(options_.page_size);
      const auto started = SteadyClock::now();
      std::string error;
      try {
        auto r = client.Call("GET", target);
        if (r.status != 200) error = "HTTP " + std::to_string(r.status) + ": " + r.body;
      } catch (const std::exception& e) {
        error = e.what();
      }
      const auto now = SteadyClock::now();
      loop.Record(window_, started, now, error.empty(), error);
      if (now >= window_.stop_at) return;
    }
  }

  const LoadOptions& options_;
  const Window& window_;
  std::vector<Tally> loops_;
};

}  // namespace

int RunLoad(const LoadOptions& options) {
  const bool http = !options.http_url.empty();
  const auto stubs = http ? std::vector<std::unique_ptr<v1::DrBackupService::Stub>>()
                          : MakeStubs(options.target, options.channels);
  for (int concurrency : options.concurrency) {
    const Window window(options);
    std::optional<Runner> grpc_runner;
    std::optional<HttpRunner> http_runner;
    if (http) {
      http_runner.emplace(options, window, concurrency);
    } else {
      grpc_runner.emplace(options, window, concurrency, stubs);
    }
    // CPU time is read at the edges of the measured window, from a helper thread.
    std::thread sampler;
    std::optional<ProcSample> cpu_start, cpu_end;
    if (options.pid > 0) {
      sampler = std::thread([&] {
        std::this_thread::sleep_until(window.measure_from);
        cpu_start = ReadProc(options.pid);
        std::this_thread::sleep_until(window.stop_at);
        cpu_end = ReadProc(options.pid);
      });
    }
    if (http) {
      http_runner->Run();
    } else {
      grpc_runner->Run();
    }
    if (sampler.joinable()) sampler.join();

    int64_t errors = 0;
    std::string first_error;
    const Samples samples = http ? http_runner->Merged(&errors, &first_error)
                                 : grpc_runner->Merged(&errors, &first_error);
    const double rate = static_cast<double>(samples.size()) / options.seconds;
    const std::string name =
        (options.method == "GetJob" ? options.method
                                    : options.method + "/" + std::to_string(options.page_size)) +
        (http ? " over HTTP/JSON" : "");
    const std::string scenario = "read " + name + " @" + std::to_string(concurrency);
    const bool p99_ok = samples.Quantile(0.99) < 2000;
    // The scale targets are the gRPC API's; the HTTP rows are figures beside them.
    const bool targeted = !http;
    Row(scenario, "throughput (calls/s, " + Fixed(options.seconds, 1) + " s)", Fixed(rate, 0),
        targeted && concurrency >= 16 ? ">= 20,000/s on 2 cores" : "",
        targeted && concurrency >= 16 ? Verdict(rate >= 20000) : "");
    Row(scenario, "latency p50 / p90 / p99 / max",
        FormatMicros(samples.Quantile(0.5)) + " / " + FormatMicros(samples.Quantile(0.9)) + " / " +
            FormatMicros(samples.Quantile(0.99)) + " / " + FormatMicros(samples.Max()),
        targeted ? "p99 < 2 ms" : "", targeted ? Verdict(p99_ok) : "");
    if (cpu_start && cpu_end && !samples.empty()) {
      const double cpu_us = (cpu_end->cpu_seconds - cpu_start->cpu_seconds) * 1e6 /
                            static_cast<double>(samples.size());
      const double capacity = cpu_us > 0 ? 2e6 / cpu_us : 0;
      Row(scenario, "drgate CPU per call (capacity of 2 dedicated cores)",
          FormatMicros(cpu_us) + " (" + Fixed(capacity, 0) + "/s)",
          targeted ? ">= 20,000/s on 2 cores" : "", targeted ? Verdict(capacity >= 20000) : "");
    }
    if (errors > 0) {
      Row(scenario, "errors", std::to_string(errors) + " (" + first_error + ")");
    }
    if (!options.out.empty()) {
      const std::string page =
          options.method == "GetJob" ? "" : "-" + std::to_string(options.page_size);
      samples.Write(options.out + "/read-" + options.method + page + (http ? "-http" : "") + "-" +
                    std::to_string(concurrency) + ".txt");
    }
    std::cerr << scenario << ": " << samples.size() << " calls\n";
    if (samples.empty()) return 1;
  }
  return 0;
}

}  // namespace drgate::bench
