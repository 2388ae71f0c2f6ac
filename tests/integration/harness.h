#pragma once

// Integration harness: a real commserv-sim and a real drgate on loopback ports chosen at run time,
// a gRPC stub, and a small HTTP client for the simulator's admin API and /metrics.

#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <poll.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
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
                              const std::string& body = "",
                              const std::map<std::string, std::string>& headers = {}) {
    commserv::HttpRequest r;
    r.method = method;
    r.target = target;
    r.body = body;
    r.headers = headers;
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

// A commserv-sim process with user admin / password `password` (s3cret unless a test needs a
// canary).
class Sim {
 public:
  Sim(const TempDir& dir, std::vector<std::string> extra_args = {}, bool tls = true,
      const std::string& password = "s3cret") {
    const std::string cert_dir = dir.File("sim-cert");
    std::filesystem::create_directories(cert_dir);
    std::vector<std::string> argv = {DRGATE_BIN_DIR "/commserv-sim",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--quiet",
                                     "--username",
                                     "admin",
                                     "--password",
                                     password};
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

  // One entry of drgate's `commcells:` list pointing at this simulator: login admin with the
  // password in the file "password" next to the config, the simulator's CA. `extra`: more keys,
  // each line indented by four spaces ("    request_timeout: 10s\n").
  std::string CommCellYaml(const std::string& name = "cs1", const std::string& extra = "") const {
    return "  - name: " + name + "\n    url: " + base_url_ +
           "/commandcenter/api\n"
           "    username: admin\n"
           "    password_file: password\n"
           "    ca_file: " +
           cert_path_ + "\n" + extra;
  }

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
  // Requests the simulator received for one endpoint name of GET /_sim/stats
  // (requests_by_endpoint: "DRBackup", "JobList", "Job", "Kill", ...); 0 when none.
  int64_t EndpointCount(const std::string& endpoint) {
    const auto stats = admin_->Json("GET", "/_sim/stats");
    const auto& by_endpoint = stats.at("requests_by_endpoint");
    auto it = by_endpoint.find(endpoint);
    return it == by_endpoint.end() ? 0 : it->get<int64_t>();
  }
  // POST /_sim/jobs/{id}: {"status": ..., "pendingReason": ...} or {"outcome": ...}.
  void ForceJob(const std::string& job_id, const nlohmann::json& body) {
    auto resp = admin_->Call("POST", "/_sim/jobs/" + job_id, body.dump());
    if (resp.status != 200) throw std::runtime_error("/_sim/jobs/" + job_id + ": " + resp.body);
  }

 private:
  std::unique_ptr<Process> process_;
  std::string base_url_;
  std::string cert_path_;
  std::unique_ptr<HttpClient> admin_;
};

// A drgate process on ports picked at start; its config is written by the caller.
class Drgate {
 public:
  // `log_level` and `stderr_path` (empty: inherited) let a test read what drgate logs. Without
  // `listen_overrides` the listen addresses come from the file (a reload may change them).
  // `wrapper`: a command drgate runs under (e.g. unshare), its arguments first.
  explicit Drgate(const std::string& config_path, const std::string& log_level = "warn",
                  const std::string& stderr_path = "", bool listen_overrides = true,
                  std::vector<std::string> wrapper = {}) {
    std::vector<std::string> argv = std::move(wrapper);
    argv.insert(argv.end(), {DRGATE_BIN_DIR "/drgate", "--config", config_path});
    if (listen_overrides) {
      argv.insert(argv.end(), {"--grpc-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"});
    }
    if (!log_level.empty()) argv.insert(argv.end(), {"--log-level", log_level});
    process_ = std::make_unique<Process>(argv, stderr_path);
    auto grpc = process_->WaitForLine("gRPC listening on (\\S+)");
    auto metrics = process_->WaitForLine("metrics listening on (\\S+)");
    if (!grpc || !metrics) throw std::runtime_error("drgate did not start: " + process_->Output());
    grpc_address_ = *grpc;
    metrics_url_ = "http://" + *metrics;
    channel_ = grpc::CreateChannel(grpc_address_, grpc::InsecureChannelCredentials());
    stub_ = v1::DrBackupService::NewStub(channel_);
  }

  v1::DrBackupService::Stub& stub() { return *stub_; }

  // TriggerBackup and GetJob as most tests call them: one CommCell, a deadline per call.
  grpc::Status Trigger(const std::string& commcell, v1::BackupType type,
                       const std::string& request_id, v1::TriggerBackupResponse* out,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    v1::TriggerBackupRequest req;
    req.set_commcell(commcell);
    req.set_backup_type(type);
    req.set_request_id(request_id);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    return stub_->TriggerBackup(&ctx, req, out);
  }
  grpc::Status GetJob(const std::string& commcell, const std::string& job_id, v1::Job* out,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    v1::GetJobRequest req;
    req.set_commcell(commcell);
    req.set_job_id(job_id);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    return stub_->GetJob(&ctx, req, out);
  }
  const std::shared_ptr<grpc::Channel>& channel() { return channel_; }
  const std::string& grpc_address() const { return grpc_address_; }
  // The HTTP/JSON port's base URL ("http://127.0.0.1:PORT"); the configuration must set http.
  std::string http_url() {
    auto address = process_->WaitForLine("HTTP listening on (\\S+)", std::chrono::seconds(10));
    if (!address) throw std::runtime_error("drgate printed no HTTP port: " + process_->Output());
    return "http://" + *address;
  }
  std::string Metrics() { return HttpClient(metrics_url_).Call("GET", "/metrics").body; }
  const std::string& metrics_url() const { return metrics_url_; }
  pid_t pid() const { return process_->pid(); }
  void Signal(int sig) { process_->Signal(sig); }
  // SIGTERM; returns the exit code (-1 when killed by a signal).
  int Terminate() {
    int status = process_->Stop(SIGTERM, std::chrono::seconds(20));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // SIGKILL, as in a crash: no drain, no cleanup.
  void Kill() { process_->Stop(SIGKILL, std::chrono::seconds(5)); }

 private:
  std::unique_ptr<Process> process_;
  std::string grpc_address_;
  std::string metrics_url_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::DrBackupService::Stub> stub_;
};

// What a finished command printed on stdout and its exit code (-1: killed by a signal or by the
// timeout). stderr is inherited, so its messages show in the test output.
struct CommandResult {
  int exit_code = -1;
  std::string out;
};

// Runs argv[0] (a path) with argv, reads its stdout to the end, and waits for it; a command still
// running after `timeout` is SIGKILLed.
inline CommandResult RunCommand(const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout) {
  // Built before fork: the child of a multi-threaded process must not allocate.
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  CommandResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char buf[4096];
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.out.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = !timed_out && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// A call deadline `in` from now.
// The wall clock in Unix seconds, as the CommServe writes job times.
inline int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::chrono::system_clock::time_point Deadline(std::chrono::milliseconds in) {
  return std::chrono::system_clock::now() + in;
}

// Polls `condition` every 50 ms until it holds or `timeout` passes; returns its last value.
inline bool Eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// The whole content of a file ("" when it cannot be read).
inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Lowercase hex SHA-256, as a tokens file lists a caller's token (computed here independently of
// drgate's own code).
inline std::string Sha256Hex(const std::string& data) {
  unsigned char digest[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

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
