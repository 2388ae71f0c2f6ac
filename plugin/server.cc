#include "plugin/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "core/common/clock.h"
#include "core/common/executor.h"
#include "core/common/keyed_executor.h"
#include "core/commserv/beast_transport.h"
#include "core/commserv/session.h"
#include "core/jobs/dr_history.h"
#include "core/jobs/orchestrator.h"
#include "core/jobs/tracker.h"
#include "core/jobs/watch_hub.h"
#include "core/jobs/watch_refresher.h"
#include "core/metrics/metrics.h"
#include "core/metrics/process_metrics.h"
#include "core/registry/fenced_job_store.h"
#include "core/registry/leader_election.h"
#include "core/registry/postgres_job_store.h"
#include "core/registry/postgres_leader_election.h"
#include "core/registry/postgres_tracking_leases.h"
#include "core/registry/sqlite_job_store.h"
#include "plugin/auth.h"
#include "plugin/edge_metrics.h"
#include "plugin/grpc_metrics.h"
#include "plugin/http_admin.h"
#include "plugin/http_gateway.h"
#include "plugin/http_routes.h"
#include "plugin/logging.h"
#include "plugin/service.h"
#include "plugin/tls.h"

namespace drgate::plugin {
namespace {

namespace asio = boost::asio;

constexpr int kIoThreads = 2;
constexpr int kBlockingThreads = 2;
// Registry reads (docs/architecture.md, "Threads, blocking and locks"): at most half the pool for
// one CommCell, so a CommCell whose reads stall leaves the other half to the others; half is also
// at most half the registry's connections (PostgreSQL pool_size, SQLite's read connections, 8 by
// default each). Beyond 1000 reads of one CommCell waiting, more are refused (UNAVAILABLE) instead
// of queued.
constexpr KeyedPoolOptions kReadPool{/*threads=*/8, /*per_key=*/4, /*max_queued=*/1000};

commserv::TransportOptions TransportOptionsFor(const CommCellConfig& c) {
  commserv::TransportOptions topts;
  topts.connect_timeout = c.connect_timeout;
  topts.handshake_timeout = c.connect_timeout;
  topts.read_timeout = c.policy.request_timeout;
  topts.write_timeout = c.policy.request_timeout;
  topts.ca_file = c.ca_file;
  topts.insecure_skip_verify = c.insecure_skip_verify;
  topts.client_cert_file = c.client_cert_file;
  topts.client_key_file = c.client_key_file;
  topts.max_response_bytes = c.policy.max_response_bytes;
  return topts;
}

std::string Join(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
  return out;
}

// Logs how far a loop over the CommCells has got, once a second, when it takes more than a
// second (a large estate): start must never look hung.
class Progress {
 public:
  Progress(const char* what, std::size_t total) : what_(what), total_(total) {}
  void Step(std::size_t done) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1)) return;
    last_ = now;
    spdlog::info("{}: {} of {} CommCells", what_, done, total_);
  }

 private:
  const char* what_;
  const std::size_t total_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

HttpAdminOptions AdminOptionsFor(const MetricsConfig& config) {
  HttpAdminOptions admin_options;
  admin_options.listen = config.listen;
  admin_options.cert_file = config.cert_file;
  admin_options.key_file = config.key_file;
  admin_options.username = config.username;
  admin_options.password = config.password.value;
  admin_options.max_connections = config.max_connections;
  admin_options.max_connections_per_client = config.max_connections_per_client;
  return admin_options;
}

// Makes grpc.unix_socket's path free for gRPC to bind: a socket left behind by a drgate that
// did not exit cleanly is removed; a socket something still serves, or a file that is not a
// socket, is refused (never removed). The folder must exist.
Status PrepareUnixSocket(const std::string& path) {
  auto refuse = [&path](const std::string& why) {
    return Status(StatusCode::kFailedPrecondition, "grpc.unix_socket: " + path + ": " + why,
                  Reason::kListenFailed);
  };
  const auto folder = std::filesystem::path(path).parent_path();
  struct stat st {};
  if (!folder.empty() && (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
    return refuse("its folder " + folder.string() + " does not exist");
  }
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return refuse(std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return refuse(
        "exists and is not a socket; drgate does not remove it (remove it or choose "
        "another path)");
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());  // the key allows at most 107 bytes
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return refuse(std::strerror(errno));
  const bool served =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  if (served) {
    return refuse("another process serves this socket (is another drgate running?)");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return refuse(std::string("cannot remove the stale socket: ") + std::strerror(errno));
  }
  spdlog::info("grpc.unix_socket: removed the stale socket {}", path);
  return Status::Ok();
}

class ServerImpl final : public Server {
 public:
  ~ServerImpl() override { Shutdown(std::chrono::milliseconds(0)); }

  int grpc_port() const override { return grpc_port_; }
  int metrics_port() const override { return metrics_port_; }
  int http_port() const override { return gateway_ ? gateway_->port() : 0; }
  prometheus::Registry& metrics_registry() override { return *registry_; }

  void Shutdown(std::chrono::milliseconds grace) override {
    std::lock_guard lock(shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
    shutting_down_ = true;
    // Readiness goes first, so load balancers stop sending calls while in-flight ones finish.
    if (health_ != nullptr) {
      health_->SetServingStatus("readiness", false);
      health_->SetServingStatus(false);
    }
    {
      std::lock_guard health_lock(health_mu_);
      health_stop_ = true;
    }
    health_cv_.notify_all();
    if (health_thread_.joinable()) health_thread_.join();
    // No new HTTP requests; those under way are gRPC calls, drained with the rest below.
    if (gateway_) gateway_->Stop();
    if (grpc_server_) {
      grpc_server_->Shutdown(std::chrono::system_clock::now() + grace);
      grpc_server_->Wait();
    }
    RemoveUnixSocket();
    if (admin_) admin_->Stop();
    if (tracker_) tracker_->Stop();
    if (refresher_) refresher_->Stop();
    // After the tracker: the lease goes to another replica once this one polls no more.
    if (leader_) leader_->Stop();
    // Triggers waiting for another replica's outcome are answered now, while the blocking
    // pool still runs.
    if (orchestrator_) orchestrator_->StopWaiting();
    // Calls have ended; let transport callbacks and registry writes that are still queued
    // finish, then stop the io threads.
    work_guard_.reset();
    reads_.reset();     // runs what is queued (reads may post writes), joins
    blocking_.reset();  // runs what is queued, joins
    io_.stop();
    for (auto& t : io_threads_) t.join();
    io_threads_.clear();
    orchestrator_.reset();
    tracker_.reset();
    history_.reset();
    refresher_.reset();
    leader_store_.reset();
    leader_.reset();
    {
      std::lock_guard lock(clients_mu_);
      built_.clear();
    }
    admin_.reset();
    gateway_.reset();
    store_.reset();
  }

  // CommCells whose jobs this replica follows now (drgate_tracking_commcells).
  int TrackedCommCells() const {
    std::lock_guard lock(clients_mu_);
    int n = 0;
    for (const auto& [name, built] : built_) n += leader_->Tracks(name) ? 1 : 0;
    return n;
  }

  // Ready: the registry is open (Init succeeded), at least one CommCell accepted drgate's login
  // or a call, and the server is not shutting down.
  Readiness CheckReady() const {
    if (shutting_down_) return {false, "shutting down"};
    std::string why = "no CommCell has answered drgate yet";
    std::lock_guard lock(clients_mu_);
    for (const auto& [name, built] : built_) {
      const auto r = built.client->reachability();
      if (r.reachable) return {true, ""};
      if (r.contacted && !r.last_error.empty()) why = "no CommCell reachable: " + r.last_error;
    }
    return {false, why};
  }

  Status Init(const ServerConfig& config);
  Status OpenRegistry(const Config& config);
  // Removes grpc.unix_socket's file if it is still the one this server bound (same device and
  // inode): never another process's socket that replaced it.
  void RemoveUnixSocket();
  Status Reload(const ServerConfig& config) override;

 private:
  SystemClock clock_;
  std::unique_ptr<JobStore> store_;
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  std::unique_ptr<Metrics> metrics_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_guard_;
  std::vector<std::thread> io_threads_;
  std::unique_ptr<ThreadPool> blocking_;
  std::unique_ptr<KeyedThreadPool> reads_;
  // One built CommCell: its configuration (to tell whether a reload changed it) and client.
  struct Built {
    CommCellConfig config;
    std::string url;
    std::shared_ptr<commserv::SessionClient> client;
    std::string tls_key;  // TlsContextCache::KeyOf when built: a changed CA file rebuilds
  };
  StatusOr<std::vector<jobs::CommCell>> BuildCommCells(const Config& config);
  mutable std::mutex clients_mu_;
  std::map<std::string, Built> built_;  // guarded by clients_mu_
  std::mutex reload_mu_;                // one reload at a time
  ServerConfig config_;                 // guarded by reload_mu_ after Init: the last applied
  ServerConfig started_;                // what Init started with (restart-only keys in force)
  prometheus::Gauge* restart_required_ = nullptr;  // drgate_config_restart_required
  // One TLS context per distinct trust settings, shared by the CommCells' transports.
  commserv::TlsContextCache tls_contexts_;
  jobs::WatchHub hub_;
  std::unique_ptr<LeaderElection> leader_;
  // The registry as the tracker writes it: leader writes fenced by leader_'s lease.
  std::unique_ptr<FencedJobStore> leader_store_;
  std::unique_ptr<jobs::WatchRefresher> refresher_;  // replicas sharing a registry only
  // The CommServes' own DR jobs and DR backup options (docs/dr-history.md), driven by the tracker.
  jobs::DrOptionsHolder dr_options_;
  std::unique_ptr<jobs::DrHistory> history_;
  std::unique_ptr<jobs::Tracker> tracker_;
  std::unique_ptr<jobs::Orchestrator> orchestrator_;
  std::unique_ptr<DrBackupServiceImpl> service_;
  // Caller authentication (auth.*): the limiter survives reloads that keep its settings.
  Gate MakeGate(const AuthConfig& auth);
  std::shared_ptr<RateLimiter> limiter_;
  bool local_socket_ = false;  // grpc.unix_socket is served; set once by Init
  std::string unix_socket_;    // its path, while this server's socket file exists
  dev_t unix_socket_dev_ = 0;
  ino_t unix_socket_ino_ = 0;
  prometheus::Gauge* auth_insecure_ = nullptr;
  std::unique_ptr<GrpcServerMetrics> grpc_metrics_;
  // Drawn once per process: proves the HTTP gateway's in-process calls (plugin/gateway_mark.h).
  const std::shared_ptr<const GatewayMark> gateway_mark_ = std::make_shared<GatewayMark>();
  std::unique_ptr<EdgeMetrics> edge_metrics_;
  std::unique_ptr<HttpAdmin> admin_;
  std::unique_ptr<HttpGateway> gateway_;  // http.*: null when off
  std::atomic<bool> shutting_down_{false};
  std::mutex health_mu_;
  std::condition_variable health_cv_;
  bool health_stop_ = false;  // guarded by health_mu_
  std::thread health_thread_;
  std::unique_ptr<grpc::Server> grpc_server_;
  grpc::HealthCheckServiceInterface* health_ = nullptr;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::mutex shutdown_mu_;
  bool shut_down_ = false;  // guarded by shutdown_mu_
};

// The registry and who leads: SQLite (one process, always the leader) or PostgreSQL shared by
// replicas (a lease decides which one polls the CommServe).
Status ServerImpl::OpenRegistry(const Config& config) {
  if (config.registry_postgres) {
    const PostgresRegistryConfig& pg = *config.registry_postgres;
    registry::PostgresEndpoint endpoint{pg.dsn, pg.password.value};
    PostgresStoreOptions options;
    options.endpoint = endpoint;
    options.pool_size = pg.pool_size;
    options.clock = &clock_;
    auto store = PostgresJobStore::Open(std::move(options));
    if (!store.ok()) return store.status().WithContext("registry.postgres");
    spdlog::info("registry: {} (pool of {} connections, leader lease {} ms)",
                 (*store)->description(), pg.pool_size, pg.leader_lease.count());
    store_ = std::move(*store);
    if (pg.tracking == PostgresRegistryConfig::Tracking::kPerCommCell) {
      PostgresTrackingOptions tracking;
      tracking.endpoint = endpoint;
      tracking.lease = pg.leader_lease;
      std::vector<std::string> names;
      for (const auto& c : config.commcells) names.push_back(c.name);
      leader_ =
          std::make_unique<PostgresTrackingLeases>(std::move(tracking), clock_, std::move(names));
      return Status::Ok();
    }
    PostgresLeaderOptions leader;
    leader.endpoint = endpoint;
    leader.lease = pg.leader_lease;
    leader_ = std::make_unique<PostgresLeaderElection>(std::move(leader), clock_);
    return Status::Ok();
  }
  if (config.registry_path != ":memory:") {
    const auto dir = std::filesystem::path(config.registry_path).parent_path();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    if (ec) {
      return Status(StatusCode::kFailedPrecondition,
                    "registry.path: cannot create folder " + dir.string() + ": " + ec.message(),
                    Reason::kRegistryUnavailable);
    }
  }
  auto store = SqliteJobStore::Open(config.registry_path, &clock_);
  if (!store.ok()) return store.status().WithContext("registry.path " + config.registry_path);
  // Counted once metrics_ exists (Init creates it right after the registry; no write comes
  // earlier).
  (*store)->SetWriteFailureObserver([this](const std::string& problem) {
    if (metrics_ != nullptr) metrics_->CountRegistryWriteFailure(problem);
  });
  store_ = std::move(*store);
  leader_ = std::make_unique<AlwaysLeader>();
  return Status::Ok();
}

Status ServerImpl::Init(const ServerConfig& server_config) {
  const Config& config = server_config.core;
  // Registry first: without it nothing can be acknowledged.
  if (Status s = OpenRegistry(config); !s.ok()) return s;
  const bool shared = config.registry_postgres.has_value();

  metrics_ = std::make_unique<Metrics>(
      *registry_, MetricsOptions{server_config.metrics.per_commcell_histograms});
  work_guard_.emplace(io_.get_executor());
  for (int i = 0; i < kIoThreads; ++i) io_threads_.emplace_back([this] { io_.run(); });
  blocking_ = std::make_unique<ThreadPool>(kBlockingThreads);
  reads_ = std::make_unique<KeyedThreadPool>(kReadPool);

  auto built = BuildCommCells(config);
  if (!built.ok()) return built.status();
  std::vector<jobs::CommCell> cells = std::move(*built);
  config_ = server_config;
  started_ = server_config;
  restart_required_ = &prometheus::BuildGauge()
                           .Name("drgate_config_restart_required")
                           .Help(
                               "1 when the configuration file changes a key that takes effect "
                               "only after a restart (logged at the reload), else 0")
                           .Register(*registry_)
                           .Add({});
  restart_required_->Set(0);
  jobs::TrackerOptions tracking{config.tracking};
  tracking.shared_registry = shared;
  // The tracker's writes are the leader's: fenced by the lease (docs/replicas-fencing.md).
  leader_store_ = std::make_unique<FencedJobStore>(
      *store_, *leader_, [this](const std::string&) { metrics_->CountFencedWrite(); });
  jobs::DrHistoryOptions history;
  history.lookback = std::chrono::duration_cast<std::chrono::seconds>(tracking.history_lookback);
  history.options_interval = tracking.options_interval;
  history_ =
      std::make_unique<jobs::DrHistory>(*leader_store_, *metrics_, dr_options_, clock_, history);
  tracker_ =
      std::make_unique<jobs::Tracker>(cells, *leader_store_, *metrics_, clock_, hub_, tracking,
                                      leader_.get(), tracking.history ? history_.get() : nullptr);
  jobs::OrchestratorOptions orchestration;
  orchestration.dr_options = &dr_options_;
  if (shared) {
    // A trigger racing another replica's with one request_id waits for it as long as that one
    // may take: the slowest CommCell's connect and request timeouts, twice, and a margin.
    std::chrono::milliseconds slowest{0};
    for (const auto& c : config.commcells) {
      slowest = std::max(slowest, 2 * c.connect_timeout + 2 * c.policy.request_timeout);
    }
    orchestration.shared_wait = slowest + std::chrono::seconds(5);
    refresher_ = std::make_unique<jobs::WatchRefresher>(*store_, hub_,
                                                        config.registry_postgres->watch_interval);
  }
  orchestrator_ = std::make_unique<jobs::Orchestrator>(
      std::move(cells), *store_, *metrics_, clock_, *blocking_, *reads_, *tracker_, orchestration);
  // "Last success" survives restarts: seed it from the registry.
  for (const auto& c : config.commcells) {
    for (BackupType type : {BackupType::kFull, BackupType::kDifferential}) {
      auto last =
          store_->LatestJob(c.name, type, {JobState::kSucceeded, JobState::kSucceededWithErrors});
      if (last.ok() && last->has_value()) {
        metrics_->SetLastSuccess(c.name, type, (*last)->end_time.value_or((*last)->create_time));
      }
    }
  }
  std::vector<std::string> route_labels;
  if (auto routes = ServiceRoutes(); routes.ok()) {
    for (const Route& r : *routes) route_labels.push_back(RouteLabel(r));
  }
  route_labels.push_back(std::string("GET ") + kOpenApiPath);
  edge_metrics_ = std::make_unique<EdgeMetrics>(*registry_, route_labels);
  const std::string& unix_socket = server_config.grpc.unix_socket;
  local_socket_ = !unix_socket.empty();
  service_ = std::make_unique<DrBackupServiceImpl>(
      *orchestrator_, hub_, MakeGate(server_config.auth), edge_metrics_.get());

  auto admin = HttpAdmin::Start(io_, AdminOptionsFor(server_config.metrics),
                                {registry_, std::make_shared<ProcessMetrics>()},
                                [this] { return CheckReady(); });
  if (!admin.ok()) return admin.status();
  admin_ = std::move(*admin);
  metrics_port_ = admin_->port();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc_metrics_ = std::make_unique<GrpcServerMetrics>(*registry_, ServedMethods(), gateway_mark_);
  grpc::ServerBuilder builder;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(grpc_metrics_->MakeFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  const GrpcConfig& grpc_config = server_config.grpc;
  auto credentials = MakeGrpcServerCredentials(grpc_config.tls, grpc_config.listen);
  if (!credentials.ok()) return credentials.status();
  builder.AddListeningPort(grpc_config.listen, *credentials, &grpc_port_);
  if (!unix_socket.empty()) {
    if (Status s = PrepareUnixSocket(unix_socket); !s.ok()) return s;
    // No TLS on the socket: the connection never leaves the host, and the file's mode decides
    // who may connect.
    builder.AddListeningPort("unix:" + unix_socket, grpc::InsecureServerCredentials());
  }
  // Requests are small; a cap keeps a hostile or broken caller from making drgate buffer
  // megabytes per call (gRPC's default is 4 MiB). Replies (ListJobs pages) are not capped.
  builder.SetMaxReceiveMessageSize(grpc_config.max_message_bytes);
  // gRPC 1.51 buffers a whole message before that check (a caller announcing 1 GiB is read to
  // the end, before any authentication): the bound on memory is a ResourceQuota, under which
  // gRPC cancels streams (RST_STREAM ENHANCE_YOUR_CALM) and closes idle connections. Streams per
  // connection are capped too; the metadata limit is passed on, though gRPC 1.51 was measured
  // serving larger metadata anyway (docs/hostile-input.md).
  grpc::ResourceQuota quota("drgate-grpc");
  quota.Resize(static_cast<std::size_t>(grpc_config.memory_limit_bytes));
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, grpc_config.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, grpc_config.max_metadata_bytes);
  builder.RegisterService(service_.get());
  // The socket is created by bind() inside BuildAndStart with the process umask: a umask that
  // leaves no permission to others closes the moment between bind and the chmod below. Files
  // other threads create meanwhile (none are expected) only get stricter modes.
  const mode_t umask_before = unix_socket.empty() ? 0 : ::umask(0117);
  grpc_server_ = builder.BuildAndStart();
  if (!unix_socket.empty()) ::umask(umask_before);
  if (!grpc_server_ || grpc_port_ == 0) {
    return Status(StatusCode::kFailedPrecondition,
                  "grpc.listen: cannot listen on " + grpc_config.listen +
                      (unix_socket.empty() ? "" : " or grpc.unix_socket on " + unix_socket),
                  Reason::kListenFailed);
  }
  if (!unix_socket.empty()) {
    struct stat st {};
    if (::lstat(unix_socket.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
      return Status(StatusCode::kFailedPrecondition,
                    "grpc.unix_socket: cannot listen on " + unix_socket, Reason::kListenFailed);
    }
    unix_socket_ = unix_socket;
    unix_socket_dev_ = st.st_dev;
    unix_socket_ino_ = st.st_ino;
    // Owner and group (drgate's user and group) may connect, nobody else.
    if (::chmod(unix_socket.c_str(), 0660) != 0) {
      return Status(
          StatusCode::kFailedPrecondition,
          "grpc.unix_socket: cannot set mode 0660 on " + unix_socket + ": " + std::strerror(errno),
          Reason::kListenFailed);
    }
    spdlog::info("gRPC also serves the local operator on unix:{} (mode 0660, no token needed)",
                 unix_socket);
  }
  if (server_config.http) {
    // The HTTP/JSON face calls the same server in process: same gate, metrics and audit.
    HttpGatewayOptions http;
    http.listen = server_config.http->listen;
    http.default_deadline = server_config.http->default_deadline;
    http.max_body_bytes = static_cast<std::size_t>(server_config.http->max_body_bytes);
    http.tls = server_config.http->tls;
    http.max_connections = server_config.http->max_connections;
    http.max_connections_per_client = server_config.http->max_connections_per_client;
    http.max_watch_streams_per_caller = server_config.http->max_watch_streams_per_caller;
    http.mark = gateway_mark_;
    http.metrics = edge_metrics_.get();
    http.clock = &clock_;
    auto gateway =
        HttpGateway::Start(io_, http, grpc_server_->InProcessChannel(grpc::ChannelArguments()));
    if (!gateway.ok()) return gateway.status();
    gateway_ = std::move(*gateway);
  }
  health_ = grpc_server_->GetHealthCheckService();
  health_->SetServingStatus("liveness", true);
  health_->SetServingStatus("readiness", false);
  // The replica that tracks a CommCell polls it; one that becomes leader, or takes CommCells
  // over, starts with a full round at once.
  leader_->Start([this](bool leading) {
    metrics_->SetRegistryLeader(leading);
    metrics_->SetTrackingCommCells(TrackedCommCells());
    if (tracker_) tracker_->Poke();
  });
  tracker_->Start();
  if (refresher_) refresher_->Start();
  // Readiness follows the CommCells' reachability (the tracker probes them).
  health_thread_ = std::thread([this] {
    bool last = false;
    std::unique_lock lock(health_mu_);
    for (;;) {
      metrics_->SetTrackingCommCells(TrackedCommCells());
      const bool ready = CheckReady().ready;
      if (ready != last) {
        health_->SetServingStatus("readiness", ready);
        spdlog::info("readiness: {}", ready ? "ready" : "not ready");
        last = ready;
      }
      if (health_cv_.wait_for(lock, std::chrono::milliseconds(250),
                              [this] { return health_stop_; })) {
        return;
      }
    }
  });
  return Status::Ok();
}

void ServerImpl::RemoveUnixSocket() {
  if (unix_socket_.empty()) return;
  struct stat st {};
  if (::lstat(unix_socket_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
      st.st_dev == unix_socket_dev_ && st.st_ino == unix_socket_ino_) {
    ::unlink(unix_socket_.c_str());
  }
  unix_socket_.clear();
}

Gate ServerImpl::MakeGate(const AuthConfig& auth) {
  const bool insecure = auth.mode != AuthMode::kTokens;
  if (auth_insecure_ == nullptr) {
    auth_insecure_ = &prometheus::BuildGauge()
                          .Name("drgate_auth_insecure")
                          .Help(
                              "1 when gRPC callers are not authenticated (auth.mode: "
                              "insecure), else 0")
                          .Register(*registry_)
                          .Add({});
  }
  auth_insecure_->Set(insecure ? 1 : 0);
  if (insecure) {
    spdlog::warn(
        "SECURITY: caller authentication is OFF (auth.mode: insecure): anyone who can reach the "
        "gRPC port can start and cancel DR backups; set auth.mode: tokens (see README, "
        "Security)");
    limiter_.reset();
    return Gate{Authenticator::Insecure(), nullptr, gateway_mark_, local_socket_};
  }
  if (limiter_ == nullptr || !(limiter_->config() == auth.rate_limit)) {
    limiter_ = std::make_shared<RateLimiter>(auth.rate_limit, clock_);
  }
  const auto certificates =
      std::count_if(auth.tokens.begin(), auth.tokens.end(),
                    [](const AuthTokenEntry& e) { return !e.certificate.empty(); });
  spdlog::info(
      "auth: {} caller token(s) and {} client certificate(s) from {}; write calls limited to "
      "{}/min, burst {}",
      auth.tokens.size() - certificates, certificates, auth.tokens_file,
      auth.rate_limit.triggers_per_minute, auth.rate_limit.burst);
  return Gate{Authenticator::FromTokens(auth.tokens), limiter_, gateway_mark_, local_socket_};
}

StatusOr<std::vector<jobs::CommCell>> ServerImpl::BuildCommCells(const Config& config) {
  std::map<std::string, Built> next;
  std::vector<jobs::CommCell> cells;
  Progress progress("building", config.commcells.size());
  for (std::size_t i = 0; i < config.commcells.size(); ++i) {
    progress.Step(i);
    const CommCellConfig& c = config.commcells[i];
    const std::string key = "commcells[" + std::to_string(i) + "]";
    commserv::TransportOptions topts = TransportOptionsFor(c);
    topts.clock = &clock_;  // the sessions' deadlines are made with it too
    auto digest = commserv::TlsContextCache::KeyOf(topts);
    const std::string tls_key = digest.ok() ? *digest : std::string();
    if (auto it = built_.find(c.name);
        it != built_.end() && it->second.config == c && it->second.tls_key == tls_key) {
      // Unchanged CommCell: keep the client, its session and its keep-alive connections. Any
      // change (a rotated password, a timeout, on_active, a CA file's contents) builds a new
      // client.
      next.emplace(c.name, it->second);
      cells.push_back(jobs::CommCell{c.name, it->second.url, it->second.client, c.on_active});
      continue;
    }
    auto endpoint = commserv::ParseEndpoint(c.url);
    if (!endpoint.ok()) return endpoint.status().WithContext(key + ".url");
    if (c.insecure_skip_verify && endpoint->tls) {
      spdlog::warn(
          "commcell {}: insecure_skip_verify is set: the CommServe's TLS certificate is "
          "NOT verified; anyone on the path can impersonate it and read drgate's "
          "credentials",
          c.name);
    }
    if (!endpoint->tls) {
      spdlog::warn("commcell {}: plain http:// is configured: credentials travel unencrypted",
                   c.name);
    }
    auto transport = commserv::MakeBeastTransport(io_, *endpoint, topts, tls_contexts_);
    if (!transport.ok()) return transport.status().WithContext(key);
    commserv::SessionOptions sopts;
    sopts.commcell = c.name;
    sopts.endpoint = *endpoint;
    sopts.format = c.format;
    sopts.username = c.username;
    sopts.password = c.password;
    sopts.token = c.token;
    sopts.device_id = c.device_id;
    sopts.policy = c.policy;
    auto client =
        commserv::SessionClient::Create(std::move(sopts), std::move(*transport), *metrics_, clock_,
                                        commserv::MakeAsioScheduler(io_));
    next.emplace(c.name, Built{c, endpoint->ToString(), client, tls_key});
    cells.push_back(jobs::CommCell{c.name, endpoint->ToString(), client, c.on_active});
  }
  // Only now, with every CommCell built, does the new set replace the old one.
  std::lock_guard lock(clients_mu_);
  built_ = std::move(next);
  return cells;
}

Status ServerImpl::Reload(const ServerConfig& next) {
  const Config& config = next.core;
  if (Status s = Server::Check(next); !s.ok()) return s;
  std::lock_guard reload(reload_mu_);
  if (shutting_down_)
    return Status(StatusCode::kUnavailable, "shutting down", Reason::kShuttingDown);
  // Keys marked restart (core/config/schema.h) keep the values drgate started with: compared with
  // those, so a change that is undone again clears the gauge.
  std::vector<std::string> waiting;
  for (const config::Change& c : ConfigChanges(started_, next)) {
    if (c.apply == config::Apply::kRestart) waiting.push_back(c.key);
  }
  std::vector<std::string> live;
  for (const config::Change& c : ConfigChanges(config_, next)) {
    if (c.apply == config::Apply::kLive) live.push_back(c.key);
  }
  auto cells = BuildCommCells(config);
  if (!cells.ok()) return cells.status();
  {
    std::vector<std::string> names;
    for (const auto& c : *cells) names.push_back(c.name);
    leader_->SetCommCells(std::move(names));
  }
  tracker_->SetCommCells(*cells);
  orchestrator_->SetCommCells(std::move(*cells));
  spdlog::info("reload: {} CommCell(s) configured", config.commcells.size());
  // Every key marked live: CommCells above, then tracking, logging, shutdown_grace (main reads
  // it at SIGTERM) and auth (tokens, roles, rate limit).
  tracker_->SetTracking(config.tracking);
  service_->SetGate(MakeGate(next.auth));
  config_ = next;
  if (!live.empty()) spdlog::info("reload: applied {}", Join(live));
  if (!waiting.empty()) {
    spdlog::warn("reload: {} changed; in force only after a restart (the running values stay)",
                 Join(waiting));
  }
  restart_required_->Set(waiting.empty() ? 0 : 1);
  SetLogLevel(config.log_level);  // last, so the lines above are written at the level they had
  return Status::Ok();
}

}  // namespace

Status Server::Check(const ServerConfig& server_config) {
  const Config& config = server_config.core;
  auto invalid = [](const std::string& key, const Status& s) {
    // Messages that already start with the key keep it; others get it.
    const std::string& m = s.message();
    return Status(StatusCode::kInvalidArgument, m.rfind(key, 0) == 0 ? m : key + ": " + m,
                  Reason::kConfigInvalid);
  };
  if (config.registry_postgres) {
    // The message never echoes the DSN: it might hold a password by mistake.
    if (Status s = registry::PostgresEndpoint::Validate(config.registry_postgres->dsn); !s.ok()) {
      return invalid("registry.postgres.dsn", s);
    }
  }
  if (server_config.grpc.tls) {
    if (Status s = CheckGrpcTlsFiles(*server_config.grpc.tls); !s.ok()) {
      return invalid("grpc.tls", s);
    }
  }
  if (Status s = HttpAdmin::CheckTls(AdminOptionsFor(server_config.metrics)); !s.ok()) {
    return invalid("metrics.tls", s);
  }
  // Each CommCell's transport, built as startup builds it (URL, CA file, client certificate and
  // key loaded into a TLS context), on an io_context that never runs.
  asio::io_context io;
  commserv::TlsContextCache contexts;  // as at startup: one context per trust settings
  // Held to the end: the cache's contexts live as long as a transport holds them.
  std::vector<std::unique_ptr<commserv::HttpTransport>> transports;
  Progress progress("checking", config.commcells.size());
  for (std::size_t i = 0; i < config.commcells.size(); ++i) {
    progress.Step(i);
    const CommCellConfig& c = config.commcells[i];
    const std::string key = "commcells[" + std::to_string(i) + "]";
    auto endpoint = commserv::ParseEndpoint(c.url);
    if (!endpoint.ok()) return invalid(key + ".url", endpoint.status());
    auto transport = commserv::MakeBeastTransport(io, *endpoint, TransportOptionsFor(c), contexts);
    if (!transport.ok()) return invalid(key, transport.status());
    transports.push_back(std::move(*transport));
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<Server>> Server::Start(const ServerConfig& config) {
  if (Status s = Check(config); !s.ok()) return s;
  auto server = std::make_unique<ServerImpl>();
  if (Status s = server->Init(config); !s.ok()) return s;
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace drgate::plugin
