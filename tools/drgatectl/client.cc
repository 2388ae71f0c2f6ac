#include "tools/drgatectl/client.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <thread>
#include <utility>

#include "tools/drgatectl/output.h"

namespace drgate::cli {
namespace {

using std::chrono::steady_clock;
using std::chrono::system_clock;

bool ReadFile(const std::string& what, const std::string& path, std::string* content,
              std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + what + " " + path;
    return false;
  }
  content->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) {
    *error = "cannot read " + what + " " + path;
    return false;
  }
  if (content->empty()) {
    *error = what + " " + path + " is empty";
    return false;
  }
  return true;
}

// The same instant on the wall clock, which is what grpc::ClientContext deadlines use.
system_clock::time_point ToSystem(steady_clock::time_point t) {
  return system_clock::now() +
         std::chrono::duration_cast<system_clock::duration>(t - steady_clock::now());
}

void SleepUntilEarlier(steady_clock::time_point a, steady_clock::time_point b) {
  std::this_thread::sleep_until(std::min(a, b));
}

std::string Describe(std::string_view method, const grpc::Status& status) {
  std::string out(method);
  out += ": " + StatusCodeName(status.error_code());
  if (!status.error_message().empty()) out += ": " + status.error_message();
  return out;
}

}  // namespace

bool ReadTokenFile(const std::string& path, std::string* token, std::string* error) {
  std::string content;
  if (!ReadFile("token file", path, &content, error)) return false;
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  auto begin = std::find_if(content.begin(), content.end(), not_space);
  auto end = std::find_if(content.rbegin(), content.rend(), not_space).base();
  if (begin >= end) {
    *error = "token file " + path + " holds no token";
    return false;
  }
  token->assign(begin, end);
  return true;
}

bool IsUsableSocket(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
         ::access(path.c_str(), W_OK) == 0;
}

std::string ChooseServer(bool server_given, const std::string& server, const std::string& socket,
                         bool tls, const std::function<bool(const std::string&)>& usable) {
  if (server_given) return server;
  if (!socket.empty()) return "unix:" + socket;
  if (!tls) {
    for (const char* path : kDefaultSockets) {
      if (usable(path)) return std::string("unix:") + path;
    }
  }
  return kDefaultServer;
}

std::shared_ptr<grpc::Channel> MakeChannel(const ConnectionOptions& options, std::string* error) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_file.empty() &&
        !ReadFile("CA file", options.ca_file, &ssl.pem_root_certs, error)) {
      return nullptr;
    }
    if (!options.cert_file.empty() &&
        !ReadFile("certificate file", options.cert_file, &ssl.pem_cert_chain, error)) {
      return nullptr;
    }
    if (!options.key_file.empty() &&
        !ReadFile("key file", options.key_file, &ssl.pem_private_key, error)) {
      return nullptr;
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  args.SetUserAgentPrefix("drgatectl");
  return grpc::CreateCustomChannel(options.server, credentials, args);
}

Client::Client(std::unique_ptr<v1::DrBackupService::StubInterface> stub, std::string token,
               std::chrono::milliseconds timeout)
    : stub_(std::move(stub)),
      authorization_(token.empty() ? std::string() : "Bearer " + token),
      timeout_(timeout) {}

void Client::Prepare(grpc::ClientContext* context, system_clock::time_point deadline) const {
  context->set_deadline(deadline);
  if (!authorization_.empty()) context->AddMetadata("authorization", authorization_);
}

void Client::Prepare(grpc::ClientContext* context) const {
  Prepare(context, system_clock::now() + timeout_);
}

grpc::Status Client::TriggerBackup(const v1::TriggerBackupRequest& request,
                                   v1::TriggerBackupResponse* response) {
  grpc::ClientContext context;
  Prepare(&context);
  return stub_->TriggerBackup(&context, request, response);
}

grpc::Status Client::EnsureRecentBackup(const v1::EnsureRecentBackupRequest& request,
                                        v1::TriggerBackupResponse* response) {
  grpc::ClientContext context;
  Prepare(&context);
  return stub_->EnsureRecentBackup(&context, request, response);
}

grpc::Status Client::GetJob(const v1::GetJobRequest& request, v1::Job* response) {
  grpc::ClientContext context;
  Prepare(&context);
  return stub_->GetJob(&context, request, response);
}

grpc::Status Client::ListJobs(const v1::ListJobsRequest& request, v1::ListJobsResponse* response) {
  grpc::ClientContext context;
  Prepare(&context);
  return stub_->ListJobs(&context, request, response);
}

grpc::Status Client::CancelJob(const v1::CancelJobRequest& request, v1::Job* response) {
  grpc::ClientContext context;
  Prepare(&context);
  return stub_->CancelJob(&context, request, response);
}

grpc::Status Client::ListCommCells(const v1::ListCommCellsRequest& request,
                                   v1::ListCommCellsResponse* response) {
  grpc::ClientContext context;
  Prepare(&context);
  return stub_->ListCommCells(&context, request, response);
}

grpc::Status Client::WatchJob(const v1::WatchJobRequest& request, system_clock::time_point deadline,
                              const std::function<void(const v1::Job&)>& on_job) {
  grpc::ClientContext context;
  Prepare(&context, deadline);
  std::unique_ptr<grpc::ClientReaderInterface<v1::Job>> reader = stub_->WatchJob(&context, request);
  v1::Job job;
  while (reader->Read(&job)) on_job(job);
  return reader->Finish();
}

WaitResult WaitForJob(Client& client, v1::Job job, const WaitOptions& options,
                      const std::function<void(const v1::Job&)>& on_job,
                      const std::function<void(std::string_view)>& on_notice) {
  // Until the server has answered once about this job, every failure ends the wait: a wrong
  // address or job id should fail fast, not be retried for --wait-timeout.
  bool seen = job.state() != v1::JOB_STATE_UNSPECIFIED;
  auto update = [&](const v1::Job& latest) {
    job = latest;
    seen = true;
    on_job(latest);
  };
  auto failed = [&](const char* method, const grpc::Status& status) {
    return WaitResult{WaitResult::Outcome::kFailed, job, method, status};
  };
  bool watch = true;
  while (true) {
    if (IsTerminal(job.state())) return WaitResult{WaitResult::Outcome::kFinished, job, "", {}};
    const steady_clock::time_point start = steady_clock::now();
    if (start >= options.deadline) {
      return WaitResult{WaitResult::Outcome::kTimedOut, job, "", {}};
    }
    const steady_clock::time_point next_try = start + options.poll_interval;
    if (watch) {
      v1::WatchJobRequest request;
      request.set_commcell(job.commcell());
      request.set_job_id(job.job_id());
      const steady_clock::time_point segment_end =
          std::min(options.deadline, start + options.watch_segment);
      grpc::Status status = client.WatchJob(request, ToSystem(segment_end), update);
      if (IsTerminal(job.state())) continue;
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
        on_notice("the server does not support WatchJob; polling GetJob every " +
                  FormatDuration(options.poll_interval));
        watch = false;
        continue;
      }
      const bool segment_ended = status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
                                 steady_clock::now() >= segment_end;
      if (!status.ok() && !segment_ended) {
        if (!seen || !IsRetryableWhileWaiting(status.error_code())) {
          return failed("WatchJob", status);
        }
        on_notice(Describe("WatchJob", status) + "; retrying in " +
                  FormatDuration(options.poll_interval));
      }
      // A stream that ended before a terminal state (server shutdown, segment deadline, network)
      // is reopened, but never more often than every poll_interval.
      SleepUntilEarlier(next_try, options.deadline);
    } else {
      // A job never seen yet (jobs watch) is fetched at once; a known one after poll_interval.
      if (seen) SleepUntilEarlier(next_try, options.deadline);
      v1::GetJobRequest request;
      request.set_commcell(job.commcell());
      request.set_job_id(job.job_id());
      v1::Job latest;
      grpc::Status status = client.GetJob(request, &latest);
      if (status.ok()) {
        update(latest);
      } else if (seen && IsRetryableWhileWaiting(status.error_code())) {
        on_notice(Describe("GetJob", status) + "; retrying in " +
                  FormatDuration(options.poll_interval));
      } else {
        return failed("GetJob", status);
      }
    }
  }
}

}  // namespace drgate::cli
