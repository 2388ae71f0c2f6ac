#pragma once

// Integration harness: a real commserv-sim and a real drgate on loopback ports chosen at run time,
// a gRPC stub, and a small HTTP client for the simulator's admin API and /metrics.

#include <grpcpp/grpcpp.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/commserv/beast_transport.h"
#include "drgate/v1/drgate.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tests/fakes/process.h"
#include "tests/fakes/temp_dir.h"

namespace drgate::testing {

// Synchronous HTTP(S) calls to one base URL (test code only), on core's transport.
class HttpClient {
 public:
  HttpClient(const std::string& url, const std::string& ca_file = "") {
    auto ep = commserv::ParseEndpoint(url);
    if (!ep.ok()) throw std::runtime_error("bad url " + url + ": " + ep.status().ToString());
    commserv::TransportOptions opts;
    opts.ca_file = ca_file;
    auto t = commserv::MakeBeastTransport(io_, *ep, opts);
    if (!t.ok()) throw std::runtime_error("transport: " + t.status().ToString());
    transport_ = std::move(*t);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~HttpClient() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  commserv::HttpResponse Call(const std::string& method, const std::string& target,
                              const std::string& body = "") {
    commserv::HttpRequest r;
    r.method = method;
    r.target = target;
    r.body = body;
    if (!body.empty()) r.headers["Content-Type"] = "application/json";
    std::promise<StatusOr<commserv::HttpResponse>> p;
    transport_->Send(r, [&p](StatusOr<commserv::HttpResponse> resp) { p.set_value(resp); });
    auto resp = p.get_future().get();
    if (!resp.ok()) throw std::runtime_error("HTTP " + target + ": " + resp.status().ToString());
    return *resp;
  }
  nlohmann::json Json(const std::string& method, const std::string& target,
                      const std::string& body = "") {
    return nlohmann::json::parse(Call(method, target, body).body);
  }

 private:
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_{
      io_.get_executor()};
  std::unique_ptr<commserv::HttpTransport> transport_;
  std::thread thread_;
};

// A commserv-sim process with user admin / password s3cret.
class Sim {
 public:
  Sim(const TempDir& dir, std::vector<std::string> extra_args = {}, bool tls = true) {
    const std::string cert_dir = dir.File("sim-cert");
    std::filesystem::create_directories(cert_dir);
    std::vector<std::string> argv = {DRGATE_BIN_DIR "/commserv-sim",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--quiet",
                                     "--username",
                                     "admin",
                                     "--password",
                                     "s3cret"};
    if (tls) {
      argv.push_back("--cert-out");
      argv.push_back(cert_dir);
    } else {
      argv.push_back("--plain");
    }
    for (auto& a : extra_args) argv.push_back(a);
    process_ = std::make_unique<Process>(argv);
    auto url = process_->WaitForLine("commserv-sim listening on (\\S+)");
    if (!url) throw std::runtime_error("commserv-sim did not start: " + process_->Output());
    base_url_ = *url;
    if (tls) {
      auto cert = process_->WaitForLine("commserv-sim certificate (\\S+)");
      if (!cert) throw std::runtime_error("commserv-sim printed no certificate");
      cert_path_ = *cert;
    }
    admin_ = std::make_unique<HttpClient>(base_url_, cert_path_);
  }

  const std::string& base_url() const { return base_url_; }  // https://127.0.0.1:PORT
  const std::string& cert_path() const { return cert_path_; }
  HttpClient& admin() { return *admin_; }

  // Requests the simulator received for one endpoint suffix (e.g. "/CommServ/DRBackup").
  std::vector<nlohmann::json> Requests(const std::string& suffix) {
    std::vector<nlohmann::json> out;
    for (const auto& r : admin_->Json("GET", "/_sim/requests")) {
      const std::string target = r.value("target", "");
      if (target.size() >= suffix.size() &&
          target.compare(target.size() - suffix.size(), suffix.size(), suffix) == 0) {
        out.push_back(r);
      }
    }
    return out;
  }
  void Fault(const nlohmann::json& rules) { admin_->Call("POST", "/_sim/faults", rules.dump()); }

 private:
  std::unique_ptr<Process> process_;
  std::string base_url_;
  std::string cert_path_;
  std::unique_ptr<HttpClient> admin_;
};

// A drgate process on ports picked at start; its config is written by the caller.
class Drgate {
 public:
  explicit Drgate(const std::string& config_path) {
    process_ = std::make_unique<Process>(std::vector<std::string>{
        DRGATE_BIN_DIR "/drgate", "--config", config_path, "--grpc-listen", "127.0.0.1:0",
        "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"});
    auto grpc = process_->WaitForLine("gRPC listening on (\\S+)");
    auto metrics = process_->WaitForLine("metrics listening on (\\S+)");
    if (!grpc || !metrics) throw std::runtime_error("drgate did not start: " + process_->Output());
    grpc_address_ = *grpc;
    metrics_url_ = "http://" + *metrics;
    channel_ = grpc::CreateChannel(grpc_address_, grpc::InsecureChannelCredentials());
    stub_ = v1::DrBackupService::NewStub(channel_);
  }

  v1::DrBackupService::Stub& stub() { return *stub_; }
  const std::shared_ptr<grpc::Channel>& channel() { return channel_; }
  const std::string& grpc_address() const { return grpc_address_; }
  std::string Metrics() { return HttpClient(metrics_url_).Call("GET", "/metrics").body; }
  // SIGTERM; returns the exit code (-1 when killed by a signal).
  int Terminate() {
    int status = process_->Stop(SIGTERM, std::chrono::seconds(20));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  std::unique_ptr<Process> process_;
  std::string grpc_address_;
  std::string metrics_url_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::DrBackupService::Stub> stub_;
};

// The ErrorInfo of a failed call (empty reason when there is none).
inline google::rpc::ErrorInfo ErrorInfoOf(const grpc::Status& status) {
  google::rpc::Status rich;
  google::rpc::ErrorInfo info;
  if (rich.ParseFromString(status.error_details())) {
    for (const auto& any : rich.details()) {
      if (any.UnpackTo(&info)) break;
    }
  }
  return info;
}

// The value of one sample line of a Prometheus text exposition, or -1 when absent.
inline double MetricValue(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

}  // namespace drgate::testing
