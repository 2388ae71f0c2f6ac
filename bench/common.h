#pragma once

// Shared pieces of drgate-bench: latency samples and their percentiles, result rows (one line of
// the markdown table each), a synchronous HTTP(S) client on core's transport, and CPU / memory of
// a process read from /proc.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "core/commserv/transport.h"

namespace drgate::bench {

using SteadyClock = std::chrono::steady_clock;

inline double MicrosSince(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::micro>(SteadyClock::now() - start).count();
}

// Latency samples in microseconds. Not thread-safe: one writer at a time.
class Samples {
 public:
  void Add(double micros) { values_.push_back(micros); }
  void Append(const Samples& other) {
    values_.insert(values_.end(), other.values_.begin(), other.values_.end());
  }
  std::size_t size() const { return values_.size(); }
  bool empty() const { return values_.empty(); }
  // The q-quantile (0..1) by the nearest-rank method; 0 when empty. Sorts a copy.
  double Quantile(double q) const;
  double Max() const;
  double Mean() const;
  // One sample per line, in the order taken.
  void Write(const std::string& path) const;

 private:
  std::vector<double> values_;
};

// "12.3 us", "1.23 ms", "1.23 s": three significant digits in a unit that suits.
std::string FormatMicros(double micros);
// "%.*f".
std::string Fixed(double value, int decimals);

// One row of the result table: | scenario | measure | result | target | verdict |. `verdict`
// is "meets", "misses", or "" (no target). Printed at once on stdout.
void Row(const std::string& scenario, const std::string& measure, const std::string& result,
         const std::string& target = "", const std::string& verdict = "");
inline std::string Verdict(bool met) {
  return met ? "meets" : "MISSES";
}

// Synchronous calls to one base URL on core's Beast transport (TLS verified against `ca_file`).
// Connections are kept alive unless `keep_alive` is false (then every call opens a new one, TLS
// handshake included). A fresh object has no connection yet. Thread-compatible: one call at a
// time.
class HttpClient {
 public:
  // Throws std::runtime_error when the URL or the CA file is unusable.
  explicit HttpClient(const std::string& url, const std::string& ca_file = "",
                      bool keep_alive = true);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Throws std::runtime_error on a transport error (never on an HTTP status).
  commserv::HttpResponse Call(const std::string& method, const std::string& target,
                              const std::string& body = "",
                              const std::map<std::string, std::string>& headers = {});
  const commserv::Endpoint& endpoint() const { return endpoint_; }

 private:
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  commserv::Endpoint endpoint_;
  std::unique_ptr<commserv::HttpTransport> transport_;
  std::thread thread_;
};

// CPU time (user + system) and resident memory of a process, from /proc/<pid>.
struct ProcSample {
  double cpu_seconds = 0;
  int64_t rss_kib = 0;
  SteadyClock::time_point at;
};
// Throws std::runtime_error when the process is gone.
ProcSample ReadProc(int pid);

// The 1-, 5- and 15-minute load averages as /proc/loadavg has them ("2.45 1.75 1.86").
std::string LoadAverage();

}  // namespace drgate::bench
