#include "bench/common.h"

#include "core/commserv/beast_transport.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace drgate::bench {

double Samples::Quantile(double q) const {
  if (values_.empty()) return 0;
  std::vector<double> sorted = values_;
  std::sort(sorted.begin(), sorted.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

double Samples::Max() const {
  return values_.empty() ? 0 : *std::max_element(values_.begin(), values_.end());
}

double Samples::Mean() const {
  if (values_.empty()) return 0;
  return std::accumulate(values_.begin(), values_.end(), 0.0) / static_cast<double>(values_.size());
}

void Samples::Write(const std::string& path) const {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write " + path);
  for (double v : values_) out << Fixed(v, 1) << "\n";
}

std::string Fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string FormatMicros(double micros) {
  auto three = [](double v, const char* unit) {
    const int decimals = v >= 100 ? 0 : v >= 10 ? 1 : 2;
    return Fixed(v, decimals) + " " + unit;
  };
  if (micros < 1000) return three(micros, "us");
  if (micros < 1e6) return three(micros / 1000, "ms");
  return three(micros / 1e6, "s");
}

void Row(const std::string& scenario, const std::string& measure, const std::string& result,
         const std::string& target, const std::string& verdict) {
  std::cout << "| " << scenario << " | " << measure << " | " << result << " | "
            << (target.empty() ? "-" : target) << " | " << (verdict.empty() ? "-" : verdict) << " |"
            << std::endl;
}

HttpClient::HttpClient(const std::string& url, const std::string& ca_file, bool keep_alive)
    : guard_(io_.get_executor()) {
  auto endpoint = commserv::ParseEndpoint(url);
  if (!endpoint.ok())
    throw std::runtime_error("bad url " + url + ": " + endpoint.status().ToString());
  endpoint_ = *endpoint;
  commserv::TransportOptions options;
  options.ca_file = ca_file;
  if (!keep_alive) options.max_idle_connections = 0;
  auto transport = commserv::MakeBeastTransport(io_, endpoint_, options);
  if (!transport.ok()) throw std::runtime_error("transport: " + transport.status().ToString());
  transport_ = std::move(*transport);
  thread_ = std::thread([this] { io_.run(); });
}

HttpClient::~HttpClient() {
  guard_.reset();
  transport_.reset();
  io_.stop();
  thread_.join();
}

commserv::HttpResponse HttpClient::Call(const std::string& method, const std::string& target,
                                        const std::string& body,
                                        const std::map<std::string, std::string>& headers) {
  commserv::HttpRequest request;
  request.method = method;
  request.target = target;
  request.body = body;
  request.headers = headers;
  if (!body.empty() && !request.headers.count("Content-Type")) {
    request.headers["Content-Type"] = "application/json";
  }
  std::promise<StatusOr<commserv::HttpResponse>> promise;
  auto future = promise.get_future();
  transport_->Send(std::move(request), [&promise](StatusOr<commserv::HttpResponse> response) {
    promise.set_value(std::move(response));
  });
  auto response = future.get();
  if (!response.ok()) {
    throw std::runtime_error(method + " " + target + ": " + response.status().ToString());
  }
  return std::move(*response);
}

ProcSample ReadProc(int pid) {
  ProcSample sample;
  sample.at = SteadyClock::now();
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line))
    throw std::runtime_error("process " + std::to_string(pid) + " is gone");
  // Fields after the command name (which may hold spaces) start after the last ')'.
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string field;
  double utime = 0;
  double stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  sample.cpu_seconds = (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) sample.rss_kib = std::stoll(line.substr(6));
  }
  return sample;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

}  // namespace drgate::bench
