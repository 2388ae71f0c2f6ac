// drgatectl's side of the wire: the channel, one method per RPC, and following a job to its end.
#ifndef DRGATE_TOOLS_DRGATECTL_CLIENT_H_
#define DRGATE_TOOLS_DRGATECTL_CLIENT_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "drgate/v1/drgate.grpc.pb.h"

namespace drgate::cli {

struct ConnectionOptions {
  std::string server = "127.0.0.1:50051";
  // TLS with the system roots, or with ca_file when it is set. cert_file and key_file (both or
  // neither) add a client certificate.
  bool tls = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // A file holding a bearer token; surrounding whitespace is ignored.
  std::string token_file;
  // The deadline of every unary call.
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

// The address drgatectl uses when --server is not given.
inline constexpr char kDefaultServer[] = "127.0.0.1:50051";
// drgate's local sockets where it is installed: the Debian package's, then the container's.
inline constexpr const char* kDefaultSockets[] = {"/run/drgate/drgate.sock",
                                                  "/var/lib/drgate/drgate.sock"};

// Whether `path` is a unix socket this user may connect to (it exists and is writable).
bool IsUsableSocket(const std::string& path);

// The address to connect to. `server` when --server (or DRGATE_SERVER) was given; else
// "unix:<socket>" when --socket (or DRGATE_SOCKET) was given; else, unless TLS was asked for (the
// socket is plaintext), the first of kDefaultSockets that `usable` accepts; else kDefaultServer.
std::string ChooseServer(bool server_given, const std::string& server, const std::string& socket,
                         bool tls, const std::function<bool(const std::string&)>& usable);

// Reads the files named in `options` and opens a channel. Returns nullptr and sets *error (naming
// the file, never its content) when a file cannot be read or is empty.
std::shared_ptr<grpc::Channel> MakeChannel(const ConnectionOptions& options, std::string* error);

// Reads a bearer token from `path`, trimmed. Returns false and sets *error when the file cannot
// be read or holds only whitespace.
bool ReadTokenFile(const std::string& path, std::string* token, std::string* error);

// One method per DrBackupService RPC. Every call carries the bearer token (when there is one) and
// the configured deadline. Not thread-safe: drgatectl makes one call at a time.
class Client {
 public:
  // `token` is sent as "authorization: Bearer <token>" when not empty and is never printed.
  Client(std::unique_ptr<v1::DrBackupService::StubInterface> stub, std::string token,
         std::chrono::milliseconds timeout);

  grpc::Status TriggerBackup(const v1::TriggerBackupRequest& request,
                             v1::TriggerBackupResponse* response);
  grpc::Status EnsureRecentBackup(const v1::EnsureRecentBackupRequest& request,
                                  v1::TriggerBackupResponse* response);
  grpc::Status GetJob(const v1::GetJobRequest& request, v1::Job* response);
  grpc::Status ListJobs(const v1::ListJobsRequest& request, v1::ListJobsResponse* response);
  grpc::Status CancelJob(const v1::CancelJobRequest& request, v1::Job* response);
  grpc::Status ListCommCells(const v1::ListCommCellsRequest& request,
                             v1::ListCommCellsResponse* response);

  // Streams the job's states into on_job until the stream ends or `deadline` passes (the unary
  // timeout does not apply: a watch lasts as long as the job).
  grpc::Status WatchJob(const v1::WatchJobRequest& request,
                        std::chrono::system_clock::time_point deadline,
                        const std::function<void(const v1::Job&)>& on_job);

 private:
  void Prepare(grpc::ClientContext* context, std::chrono::system_clock::time_point deadline) const;
  void Prepare(grpc::ClientContext* context) const;

  std::unique_ptr<v1::DrBackupService::StubInterface> stub_;
  std::string authorization_;  // "Bearer <token>" or empty. Secret: never logged.
  std::chrono::milliseconds timeout_;
};

struct WaitOptions {
  // Pause between GetJob polls, and before reopening a watch that ended early or failed.
  std::chrono::milliseconds poll_interval{std::chrono::seconds(5)};
  // When to give up.
  std::chrono::steady_clock::time_point deadline;
  // A watch stream is reopened after this long, so a connection that died silently (no RST,
  // no keepalive) delays the news by at most this much. Reopening is cheap: the first message
  // of a watch is the job's current state.
  std::chrono::milliseconds watch_segment{std::chrono::minutes(10)};
};

struct WaitResult {
  enum class Outcome {
    kFinished,  // job is in a terminal state.
    kTimedOut,  // the deadline passed; job is the last state seen.
    kFailed,    // a call failed in a way retrying will not fix; see method and status.
  };
  Outcome outcome = Outcome::kFailed;
  v1::Job job;
  std::string method;
  grpc::Status status;
};

// Follows `job` until it is terminal or options.deadline passes. Uses WatchJob and falls back to
// polling GetJob every poll_interval when the server answers UNIMPLEMENTED. Once the server has
// answered about the job (or `job` already has a state), calls that fail with a retryable code
// (IsRetryableWhileWaiting) are retried after poll_interval; before that, every failure ends the
// wait. on_job sees every state received (also unchanged ones); on_notice gets one line per
// fallback or retry, for stderr.
WaitResult WaitForJob(Client& client, v1::Job job, const WaitOptions& options,
                      const std::function<void(const v1::Job&)>& on_job,
                      const std::function<void(std::string_view)>& on_notice);

}  // namespace drgate::cli

#endif  // DRGATE_TOOLS_DRGATECTL_CLIENT_H_
