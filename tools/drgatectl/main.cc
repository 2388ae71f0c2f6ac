// drgatectl: the command-line client of drgate, for runbooks, CI jobs and people.
//
// Output contract: stdout holds the result (with --output json: exactly one JSON document per
// command that reached the server, in protobuf's JSON mapping with snake_case field names);
// stderr holds errors, warnings and the progress of waits (on a terminal one line redrawn in
// place, otherwise one timestamped line per change).
//
// Exit codes (kExitCodesHelp, ExitCode in output.h and the README say the same; 1, 5, 6 and 7
// only come from backup --wait, ensure --wait and jobs watch):
//   0  success; when waiting: the job SUCCEEDED
//   1  the job FAILED (or ended UNKNOWN)
//   2  usage error: bad flags, unreadable token or certificate files
//   3  drgate refused the request (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ABORTED,
//      PERMISSION_DENIED, UNAUTHENTICATED, ALREADY_EXISTS, OUT_OF_RANGE, UNIMPLEMENTED)
//   4  drgate or the CommServe unreachable or unavailable, or the call failed on their side
//      (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED, CANCELLED,
//      DATA_LOSS)
//   5  --wait-timeout reached before the job finished
//   6  the job SUCCEEDED_WITH_ERRORS
//   7  the job was KILLED
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>

#include <CLI/CLI.hpp>

#include "absl/base/thread_annotations.h"

#include "tools/drgatectl/client.h"
#include "tools/drgatectl/output.h"
#include "tools/drgatectl/registry_backup.h"

#ifndef DRGATE_VERSION
#define DRGATE_VERSION "unknown"
#endif
#ifndef DRGATE_VERSION_TEXT
#define DRGATE_VERSION_TEXT DRGATE_VERSION
#endif

namespace drgate::cli {
namespace {

using nlohmann::ordered_json;
using std::chrono::milliseconds;

constexpr char kExitCodesHelp[] =
    R"(Exit codes (1, 5, 6 and 7 only when waiting: --wait, jobs watch):
  0  success; when waiting: the job SUCCEEDED
  1  the job FAILED (or ended UNKNOWN)
  2  usage error (bad flags, unreadable token or certificate file)
  3  drgate refused the request (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ABORTED,
     PERMISSION_DENIED, UNAUTHENTICATED, ALREADY_EXISTS, OUT_OF_RANGE, UNIMPLEMENTED)
  4  drgate or the CommServe unreachable or unavailable (UNAVAILABLE, DEADLINE_EXCEEDED,
     INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED, CANCELLED, DATA_LOSS)
  5  --wait-timeout reached before the job finished (the job keeps running)
  6  the job SUCCEEDED_WITH_ERRORS
  7  the job was KILLED)";

constexpr char kGlobalOptionsHint[] =
    "Global options (--server, --socket, --timeout, --output, --tls, --ca-file, --cert, --key,\n"
    "--token-file, --verbose) may come before or after the command: see drgatectl --help.";

std::string LeafFooter(std::string_view examples) {
  return std::string("Examples:\n") + std::string(examples) + "\n\n" + kGlobalOptionsHint + "\n\n" +
         kExitCodesHelp;
}

// A CLI11 check for DURATION values; `positive` rejects zero.
CLI::Validator DurationValidator(bool positive) {
  return CLI::Validator(
      [positive](std::string& text) -> std::string {
        std::optional<milliseconds> duration = ParseDuration(text);
        if (!duration) {
          return "expected a duration such as 500ms, 30s, 5m, 4h or 1h30m, got \"" + text + "\"";
        }
        if (positive && duration->count() == 0) return "must be greater than zero";
        return "";
      },
      "");
}

CLI::Validator JobStateValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (ParseJobState(text)) return "";
        return "unknown state \"" + text +
               "\"; expected submitted, queued, running, suspended, succeeded, "
               "succeeded_with_errors, failed, killed or unknown";
      },
      "");
}

// The API's limit on request ids, checked here so a typo is a usage error (exit 2).
CLI::Validator RequestIdValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (text.empty() || text.size() > 36) return "must be 1 to 36 characters";
        for (unsigned char c : text) {
          if (c < 0x21 || c > 0x7e) return "must be printable ASCII without spaces";
        }
        return "";
      },
      "");
}

std::string NewRequestId() {
  std::random_device random;
  std::array<std::uint8_t, 16> bytes;
  for (size_t i = 0; i < bytes.size(); i += 4) {
    std::uint32_t word = random();
    for (size_t j = 0; j < 4; ++j) bytes[i + j] = static_cast<std::uint8_t>(word >> (8 * j));
  }
  return FormatUuidV4(bytes);
}

std::string NowUtc() {
  google::protobuf::Timestamp now;
  now.set_seconds(std::time(nullptr));
  return FormatTimestamp(now);
}

// Whether a bearer token sent in plaintext to `server` stays on this machine.
bool IsLocal(std::string_view server) {
  for (std::string_view prefix : {"127.", "localhost:", "[::1]:", "unix:", "unix-abstract:",
                                  "dns:///localhost:", "ipv4:127.", "ipv6:[::1]"}) {
    if (server.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

// Shows the progress of a wait on stderr. On a terminal: one line, redrawn in place whenever a
// state arrives and once a second (so the elapsed time moves while the job does not change),
// with notices printed above it; Finish() ends it with a newline. Otherwise: one timestamped
// line per change (RenderProgress) and per notice. Thread-safe: on a terminal a ticker thread
// redraws the line, and every write to stderr holds mu_.
class ProgressReporter {
 public:
  // `previous` is the state already printed (by backup/ensure), if any.
  explicit ProgressReporter(std::optional<v1::Job> previous)
      : interactive_(isatty(STDERR_FILENO) == 1),
        start_(std::chrono::steady_clock::now()),
        job_(std::move(previous)) {
    if (!interactive_) return;
    {
      std::lock_guard lock(mu_);
      DrawLocked();
    }
    ticker_ = std::jthread([this](std::stop_token stop) {
      std::unique_lock lock(mu_);
      while (!stop.stop_requested()) {
        tick_.wait_for(lock, stop, std::chrono::seconds(1), [] { return false; });
        if (!stop.stop_requested()) DrawLocked();
      }
    });
  }

  ~ProgressReporter() { Finish(); }

  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  void OnJob(const v1::Job& latest) {
    std::lock_guard lock(mu_);
    if (interactive_) {
      job_ = latest;
      DrawLocked();
      return;
    }
    if (auto line = RenderProgress(job_ ? &*job_ : nullptr, latest)) {
      std::cerr << NowUtc() << " " << *line << std::endl;
    }
    job_ = latest;
  }

  void OnNotice(std::string_view notice) {
    std::lock_guard lock(mu_);
    if (drawn_) std::cerr << "\r\x1b[K";  // Clear the bar; the next draw puts it back below.
    std::cerr << NowUtc() << " drgatectl: " << notice << std::endl;
    if (drawn_) DrawLocked();
  }

  // Stops redrawing and ends the progress line with a newline, so what the command prints next
  // starts on a line of its own. Idempotent.
  void Finish() {
    if (ticker_.joinable()) {
      ticker_.request_stop();
      ticker_.join();
    }
    std::lock_guard lock(mu_);
    if (drawn_) std::cerr << std::endl;
    drawn_ = false;
  }

 private:
  static constexpr int kBarWidth = 20;

  void DrawLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!job_ || job_->state() == v1::JOB_STATE_UNSPECIFIED) return;
    std::string line = RenderProgressBar(
        *job_, kBarWidth,
        std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start_));
    // A line that wraps cannot be redrawn with \r: cut it to the terminal's width.
    winsize size{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 1 &&
        line.size() >= size.ws_col) {
      line.resize(size.ws_col - 1);
    }
    std::cerr << "\r\x1b[K" << line << std::flush;
    drawn_ = true;
  }

  const bool interactive_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable_any tick_;
  std::optional<v1::Job> job_ ABSL_GUARDED_BY(mu_);
  bool drawn_ ABSL_GUARDED_BY(mu_) = false;  // The bar is on screen and the cursor after it.
  std::jthread ticker_;  // Declared last: stopped before the members it reads are destroyed.
};

struct GlobalOptions {
  ConnectionOptions connection;
  std::string timeout = "30s";
  std::string output = "human";
  bool verbose = false;
  std::string socket;  // --socket / DRGATE_SOCKET
};

struct WaitArgs {
  bool wait = false;
  std::string poll_interval = "5s";
  std::string wait_timeout = "4h";
};

struct BackupArgs {
  std::string commcell;
  std::string type;
  bool compress = false;
  std::string request_id;
  WaitArgs wait;
};

struct EnsureArgs {
  std::string commcell;
  std::string type;
  std::string max_age;
  std::string request_id;
  std::string origin;
  WaitArgs wait;
};

struct JobArgs {
  std::string commcell;
  std::string job_id;
  WaitArgs wait;  // jobs watch: always waits.
};

struct ListArgs {
  std::string commcell;
  std::string state;
  std::string origin;
  int page_size = 0;
  std::string page_token;
  bool all = false;
};

// Runs one command against the server and renders its result. Each method returns the exit code.
class Commands {
 public:
  Commands(Client& client, bool json, bool verbose)
      : client_(client), json_(json), verbose_(verbose) {}

  int Backup(const BackupArgs& args) {
    v1::TriggerBackupRequest request;
    request.set_commcell(args.commcell);
    request.set_backup_type(*ParseBackupType(args.type));
    request.set_compression(args.compress);
    request.set_request_id(args.request_id.empty() ? NewRequestId() : args.request_id);
    v1::TriggerBackupResponse response;
    grpc::Status status = client_.TriggerBackup(request, &response);
    if (!status.ok()) {
      return TriggerFailed("TriggerBackup", status, request.request_id(), args.request_id.empty());
    }
    return Triggered(response, request.request_id(), args.wait);
  }

  int Ensure(const EnsureArgs& args) {
    v1::EnsureRecentBackupRequest request;
    request.set_commcell(args.commcell);
    request.set_backup_type(*ParseBackupType(args.type));
    milliseconds max_age = *ParseDuration(args.max_age);
    request.mutable_max_age()->set_seconds(max_age.count() / 1000);
    request.mutable_max_age()->set_nanos(static_cast<int>(max_age.count() % 1000) * 1'000'000);
    request.set_request_id(args.request_id.empty() ? NewRequestId() : args.request_id);
    if (!args.origin.empty()) request.set_origin(*ParseJobOrigin(args.origin));
    v1::TriggerBackupResponse response;
    grpc::Status status = client_.EnsureRecentBackup(request, &response);
    if (!status.ok()) {
      return TriggerFailed("EnsureRecentBackup", status, request.request_id(),
                           args.request_id.empty());
    }
    return Triggered(response, request.request_id(), args.wait);
  }

  int GetJob(const JobArgs& args) {
    v1::GetJobRequest request;
    request.set_commcell(args.commcell);
    request.set_job_id(args.job_id);
    v1::Job job;
    grpc::Status status = client_.GetJob(request, &job);
    if (!status.ok()) return Failed("GetJob", status);
    if (json_) {
      PrintJson(MessageToJson(job));
    } else {
      std::cout << RenderJobDetail(job);
    }
    return kExitOk;
  }

  int CancelJob(const JobArgs& args) {
    v1::CancelJobRequest request;
    request.set_commcell(args.commcell);
    request.set_job_id(args.job_id);
    v1::Job job;
    grpc::Status status = client_.CancelJob(request, &job);
    if (!status.ok()) return Failed("CancelJob", status);
    if (json_) {
      PrintJson(MessageToJson(job));
    } else {
      std::cout << RenderJobSummary(job) << "\n";
    }
    return kExitOk;
  }

  int WatchJob(const JobArgs& args) {
    // The first message of the watch is the current state; start from an unknown one.
    v1::Job job;
    job.set_commcell(args.commcell);
    job.set_job_id(args.job_id);
    return Follow(job, args.wait, [](const v1::Job& latest) { return MessageToJson(latest); });
  }

  int ListJobs(const ListArgs& args) {
    v1::ListJobsRequest request;
    request.set_commcell(args.commcell);
    if (!args.state.empty()) request.set_state(*ParseJobState(args.state));
    if (!args.origin.empty()) request.set_origin(*ParseJobOrigin(args.origin));
    request.set_page_size(args.page_size);
    request.set_page_token(args.page_token);
    v1::ListJobsResponse all;
    std::set<std::string> seen_tokens;
    while (true) {
      v1::ListJobsResponse page;
      grpc::Status status = client_.ListJobs(request, &page);
      if (!status.ok()) return Failed("ListJobs", status);
      for (v1::Job& job : *page.mutable_jobs()) *all.add_jobs() = std::move(job);
      all.set_next_page_token(page.next_page_token());
      // A token seen before would loop forever: stop and hand it to the caller instead.
      if (!args.all || page.next_page_token().empty() ||
          !seen_tokens.insert(page.next_page_token()).second) {
        break;
      }
      request.set_page_token(page.next_page_token());
    }
    if (json_) {
      PrintJson(MessageToJson(all));
    } else {
      std::cout << RenderJobTable(all);
    }
    return kExitOk;
  }

  // One line per CommCell: last successful full and differential DR backup (any origin), what
  // runs, the last failure, and where DR backups go. Reads the newest 100 jobs of each CommCell.
  int ShowStatus() {
    v1::ListCommCellsResponse cells;
    grpc::Status status = client_.ListCommCells(v1::ListCommCellsRequest(), &cells);
    if (!status.ok()) return Failed("ListCommCells", status);
    std::vector<v1::ListJobsResponse> jobs(cells.commcells_size());
    std::vector<CommCellStatus> rows;
    for (int i = 0; i < cells.commcells_size(); ++i) {
      v1::ListJobsRequest request;
      request.set_commcell(cells.commcells(i).name());
      request.set_page_size(100);
      status = client_.ListJobs(request, &jobs[i]);
      if (!status.ok()) return Failed("ListJobs", status);
      rows.push_back(BuildCommCellStatus(cells.commcells(i), jobs[i].jobs()));
    }
    google::protobuf::Timestamp now;
    now.set_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
    if (json_) {
      PrintJson(StatusToJson(rows, now));
    } else {
      std::cout << RenderStatus(rows, now);
    }
    return kExitOk;
  }

  int ListCommCells() {
    v1::ListCommCellsResponse response;
    grpc::Status status = client_.ListCommCells(v1::ListCommCellsRequest(), &response);
    if (!status.ok()) return Failed("ListCommCells", status);
    if (json_) {
      PrintJson(MessageToJson(response));
    } else {
      std::cout << RenderCommCellTable(response);
    }
    return kExitOk;
  }

 private:
  static void PrintJson(const ordered_json& document) {
    std::cout << document.dump(2) << std::endl;
  }

  // Reports a failed call. With --output json the document is {"error": {...}} followed by the
  // keys of `partial`: what the command knew before the failure (the request id of a trigger,
  // the job and deduplicated flag of a wait).
  int Failed(std::string_view method, const grpc::Status& status,
             ordered_json partial = ordered_json::object()) {
    RpcError error = ParseRpcError(status);
    std::cerr << RenderErrorHuman(method, error) << std::endl;
    if (json_) {
      ordered_json document = {{"error", ErrorToJson(error)}};
      for (const auto& [key, value] : partial.items()) document[key] = value;
      PrintJson(document);
    }
    return ExitCodeFor(status.error_code());
  }

  // `generated` tells whether drgatectl made up the request id (the caller does not know it).
  int TriggerFailed(std::string_view method, const grpc::Status& status,
                    const std::string& request_id, bool generated) {
    ordered_json partial = ordered_json::object();
    partial["request_id"] = request_id;
    int code = Failed(method, status, std::move(partial));
    if (code == kExitUnavailable && generated) {
      // The server may have started the backup before the answer was lost.
      std::cerr << "drgatectl: the backup may have started; repeat the command with --request-id "
                << request_id << " to get its job instead of starting a second backup" << std::endl;
    }
    return code;
  }

  int Triggered(v1::TriggerBackupResponse response, const std::string& request_id,
                const WaitArgs& wait) {
    if (!json_) {
      std::cout << RenderTriggerResponse(response);
      if (verbose_) std::cout << "request id: " << request_id << "\n";
      std::cout << std::flush;
    }
    if (!wait.wait) {
      if (json_) PrintJson(MessageToJson(response));
      return kExitOk;
    }
    return Follow(response.job(), wait, [&response](const v1::Job& latest) {
      *response.mutable_job() = latest;
      return MessageToJson(response);
    });
  }

  // Waits for the job to finish, printing progress to stderr, then prints the final document
  // (built by `document` from the last job seen) and returns the exit code for the outcome.
  int Follow(const v1::Job& job, const WaitArgs& args,
             const std::function<ordered_json(const v1::Job&)>& document) {
    WaitOptions options;
    options.poll_interval = *ParseDuration(args.poll_interval);
    options.deadline = std::chrono::steady_clock::now() + *ParseDuration(args.wait_timeout);
    std::optional<v1::Job> previous;
    if (!job.job_id().empty() && job.state() != v1::JOB_STATE_UNSPECIFIED) previous = job;
    ProgressReporter progress(std::move(previous));
    WaitResult result = WaitForJob(
        client_, job, options, [&progress](const v1::Job& latest) { progress.OnJob(latest); },
        [&progress](std::string_view notice) { progress.OnNotice(notice); });
    progress.Finish();
    switch (result.outcome) {
      case WaitResult::Outcome::kFailed:
        return Failed(result.method, result.status,
                      result.job.state() == v1::JOB_STATE_UNSPECIFIED ? ordered_json::object()
                                                                      : document(result.job));
      case WaitResult::Outcome::kTimedOut:
        std::cerr << "drgatectl: gave up after --wait-timeout " << args.wait_timeout << ": "
                  << (result.job.state() == v1::JOB_STATE_UNSPECIFIED
                          ? "no state received for job " + result.job.job_id()
                          : RenderJobSummary(result.job))
                  << std::endl;
        if (json_) PrintJson(document(result.job));
        return kExitWaitTimeout;
      case WaitResult::Outcome::kFinished: break;
    }
    if (json_) {
      PrintJson(document(result.job));
    } else {
      std::cout << RenderJobSummary(result.job) << std::endl;
    }
    int code = ExitCodeForJobState(result.job.state());
    if (code == kExitJobSucceededWithErrors) {
      std::cerr << "drgatectl: job " << result.job.job_id()
                << " finished with errors: " << JobStateName(result.job.state()) << std::endl;
    } else if (code != kExitOk) {
      std::cerr << "drgatectl: job " << result.job.job_id()
                << " did not succeed: " << JobStateName(result.job.state()) << std::endl;
    }
    return code;
  }

  Client& client_;
  const bool json_;
  const bool verbose_;
};

void AddWaitOptions(CLI::App* command, WaitArgs* args, bool with_flag) {
  CLI::Option* wait = nullptr;
  if (with_flag) {
    wait = command->add_flag("--wait", args->wait,
                             "Follow the job until it ends; exit with its outcome (0 succeeded, "
                             "1 failed, 6 succeeded with errors, 7 killed). Progress goes to "
                             "stderr.");
  }
  CLI::Option* poll =
      command
          ->add_option("--poll-interval", args->poll_interval,
                       "Pause between GetJob polls when the server cannot stream (WatchJob), "
                       "and between retries while drgate is unavailable")
          ->type_name("DURATION")
          ->check(DurationValidator(true))
          ->capture_default_str();
  CLI::Option* timeout = command
                             ->add_option("--wait-timeout", args->wait_timeout,
                                          "Give up waiting after this long (exit 5); the job "
                                          "keeps running. The global --timeout bounds each "
                                          "call, not the wait")
                             ->type_name("DURATION")
                             ->check(DurationValidator(true))
                             ->capture_default_str();
  if (wait != nullptr) {
    poll->needs(wait);
    timeout->needs(wait);
  }
}

CLI::Option* AddCommCellOption(CLI::App* command, std::string* commcell, bool filter) {
  return command->add_option(
      "-c,--commcell", *commcell,
      filter ? "Only jobs of this CommCell (default: every CommCell)"
             : "The CommCell's configured name (may be omitted when drgate serves exactly one)");
}

struct TokenHashArgs {
  std::string identity;
  std::vector<std::string> roles;
  std::vector<std::string> commcells;
  bool generate = false;
  std::string token_out;
};

std::string Base64Url(const unsigned char* data, std::size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | data[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

std::string YamlList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out + "]";
}

// `drgatectl token hash`: the tokens_file entry on stdout; the token never goes to stdout/stderr.
int TokenHash(const TokenHashArgs& args) {
  std::string token;
  if (args.generate) {
    std::array<unsigned char, 32> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
      std::cerr << "drgatectl: cannot generate random bytes" << std::endl;
      return kExitUsage;
    }
    token = Base64Url(bytes.data(), bytes.size());
    const int fd = ::open(args.token_out.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
      std::cerr << "drgatectl: --token-out " << args.token_out << ": " << std::strerror(errno)
                << " (an existing file is never overwritten)" << std::endl;
      return kExitUsage;
    }
    const std::string line = token + "\n";
    const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(fd);
    if (!written) {
      std::cerr << "drgatectl: cannot write --token-out " << args.token_out << std::endl;
      return kExitUsage;
    }
    std::cerr << "drgatectl: token written to " << args.token_out << " (mode 0600)" << std::endl;
  } else {
    if (isatty(STDIN_FILENO)) std::cerr << "token (not echoed to stdout): " << std::flush;
    std::getline(std::cin, token);
    auto not_space = [](unsigned char c) { return !std::isspace(c); };
    token.erase(token.begin(), std::find_if(token.begin(), token.end(), not_space));
    token.erase(std::find_if(token.rbegin(), token.rend(), not_space).base(), token.end());
    if (token.empty()) {
      std::cerr << "drgatectl: no token on stdin" << std::endl;
      return kExitUsage;
    }
    if (std::any_of(token.begin(), token.end(), [](unsigned char c) { return std::isspace(c); })) {
      std::cerr << "drgatectl: a token must not contain white space" << std::endl;
      return kExitUsage;
    }
    if (token.size() < 20) {
      std::cerr << "drgatectl: warning: a token shorter than 20 characters is easy to guess; "
                   "prefer --generate"
                << std::endl;
    }
  }
  std::array<unsigned char, 32> digest{};
  unsigned int len = 0;
  if (EVP_Digest(token.data(), token.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1) {
    std::cerr << "drgatectl: SHA-256 failed" << std::endl;
    return kExitUsage;
  }
  OPENSSL_cleanse(token.data(), token.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : digest) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 0xf]);
  }
  std::cout << "  - sha256: " << hex << "\n"
            << "    identity: " << args.identity << "\n"
            << "    roles: " << YamlList(args.roles) << "\n";
  if (!args.commcells.empty()) std::cout << "    commcells: " << YamlList(args.commcells) << "\n";
  std::cout << std::flush;
  return kExitOk;
}

int Run(int argc, char** argv) {
  CLI::App app(
      "drgatectl: start and follow Commvault CommServe DR backups through drgate.\n"
      "stdout holds results (--output json: one JSON document per command, field names as in\n"
      "the drgate.v1 API); errors and wait progress go to stderr.",
      "drgatectl");
  app.set_version_flag("--version", "drgatectl " DRGATE_VERSION_TEXT,
                       "print version, git revision and build type, then exit");
  app.require_subcommand(1);
  // Global options are accepted after the command name too ("drgatectl jobs list --output json").
  app.fallthrough();
  app.footer(std::string(R"(Examples:
  drgatectl backup --commcell cs1 --type full --wait
  drgatectl --output json jobs list --state failed --all
  DRGATE_SERVER=drgate.dr.svc:50051 drgatectl --tls --ca-file ca.pem commcells
  sudo drgatectl commcells        (on drgate's host: its local socket, no token needed)

Where it connects: --server (DRGATE_SERVER) when given; else the unix socket --socket
(DRGATE_SOCKET) names; else, without --tls, drgate's local socket if there is one this user
may open (/run/drgate/drgate.sock, then /var/lib/drgate/drgate.sock); else 127.0.0.1:50051.
A call on drgate's socket is the local operator: the socket's file mode is its authentication.

)") + kExitCodesHelp);

  GlobalOptions global;
  CLI::Option* server_option =
      app.add_option("-s,--server", global.connection.server,
                     "drgate's gRPC address, HOST:PORT (not given: drgate's local socket if "
                     "there is one, else this default)")
          ->type_name("HOST:PORT")
          ->envname("DRGATE_SERVER")
          ->capture_default_str();
  CLI::Option* socket_option =
      app.add_option("--socket", global.socket,
                     "drgate's unix socket (grpc.unix_socket), used when --server is not given "
                     "(default: /run/drgate/drgate.sock, else /var/lib/drgate/drgate.sock, if "
                     "present)")
          ->type_name("PATH")
          ->envname("DRGATE_SOCKET");
  app.add_option("--timeout", global.timeout,
                 "Deadline of each call, e.g. 500ms, 30s, 5m (a wait is bounded by "
                 "--wait-timeout instead)")
      ->type_name("DURATION")
      ->check(DurationValidator(true))
      ->capture_default_str();
  app.add_option("-o,--output", global.output,
                 "human: lines and tables; json: one JSON document on stdout (errors too)")
      ->check(CLI::IsMember({"human", "json"}))
      ->capture_default_str();
  app.add_flag("--tls", global.connection.tls,
               "Connect with TLS, verifying the server against the system roots or --ca-file");
  app.add_option("--ca-file", global.connection.ca_file,
                 "PEM roots to verify the server with (implies --tls)")
      ->check(CLI::ExistingFile);
  CLI::Option* cert = app.add_option("--cert", global.connection.cert_file,
                                     "PEM client certificate for mutual TLS (implies --tls; "
                                     "needs --key)")
                          ->check(CLI::ExistingFile);
  CLI::Option* key =
      app.add_option("--key", global.connection.key_file, "PEM private key of --cert")
          ->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  app.add_option("--token-file", global.connection.token_file,
                 "File holding a bearer token, sent as 'authorization: Bearer <token>' (never "
                 "printed)")
      ->envname("DRGATE_TOKEN_FILE")
      ->check(CLI::ExistingFile);
  app.add_flag("-v,--verbose", global.verbose,
               "Also print the request id of backup/ensure and where drgatectl connects");

  // backup
  BackupArgs backup_args;
  CLI::App* backup = app.add_subcommand(
      "backup", "Start a DR backup (TriggerBackup) and optionally wait for it to finish");
  AddCommCellOption(backup, &backup_args.commcell, false);
  backup->add_option("-t,--type", backup_args.type, "Backup type")
      ->required()
      ->check(CLI::IsMember({"full", "differential"}));
  backup->add_flag("--compress", backup_args.compress, "Compress the DR backup (default: off)");
  backup
      ->add_option("--request-id", backup_args.request_id,
                   "Idempotency key (at most 36 ASCII characters): repeating a command with "
                   "the same id answers the first job instead of starting another backup "
                   "(default: a new random UUID per invocation)")
      ->type_name("ID")
      ->check(RequestIdValidator());
  AddWaitOptions(backup, &backup_args.wait, true);
  backup->footer(LeafFooter(
      "  drgatectl backup --commcell cs1 --type full\n"
      "  drgatectl backup -c cs1 -t differential --compress --wait --wait-timeout 2h\n"
      "  drgatectl -o json backup -c cs1 -t full --request-id \"$CI_PIPELINE_ID\" --wait"));

  // ensure
  EnsureArgs ensure_args;
  CLI::App* ensure = app.add_subcommand(
      "ensure",
      "Make sure a DR backup succeeded within --max-age (EnsureRecentBackup): answer a recent "
      "or running job, start a new one only when there is none");
  AddCommCellOption(ensure, &ensure_args.commcell, false);
  ensure->add_option("-t,--type", ensure_args.type, "Backup type")
      ->required()
      ->check(CLI::IsMember({"full", "differential"}));
  ensure
      ->add_option("--max-age", ensure_args.max_age,
                   "How old the last successful backup may be, e.g. 24h, 90m, 2d")
      ->required()
      ->type_name("DURATION")
      ->check(DurationValidator(true));
  ensure
      ->add_option("--request-id", ensure_args.request_id,
                   "Idempotency key for the backup this may start (default: a new random "
                   "UUID per invocation)")
      ->type_name("ID")
      ->check(RequestIdValidator());
  ensure
      ->add_option("--origin", ensure_args.origin,
                   "Count only DR backups drgate started (drgate) or only the CommServe's own "
                   "(commserv) as recent (default: any origin)")
      ->check([](const std::string& text) {
        return ParseJobOrigin(text) ? std::string() : "expected drgate or commserv";
      });
  AddWaitOptions(ensure, &ensure_args.wait, true);
  ensure->footer(
      LeafFooter("  drgatectl ensure --commcell cs1 --type full --max-age 24h --wait\n"
                 "  drgatectl ensure -t full --max-age 6h --wait --wait-timeout 3h && "
                 "./upgrade.sh"));

  // jobs
  CLI::App* jobs = app.add_subcommand("jobs", "Inspect, follow and cancel jobs drgate started");
  jobs->require_subcommand(1);
  jobs->footer(std::string(kGlobalOptionsHint) + "\n\n" + kExitCodesHelp);

  JobArgs get_args;
  CLI::App* get = jobs->add_subcommand("get", "Show one job (GetJob)");
  AddCommCellOption(get, &get_args.commcell, false);
  get->add_option("JOB_ID", get_args.job_id, "The CommServe's job id")->required();
  get->footer(
      LeafFooter("  drgatectl jobs get --commcell cs1 2141\n"
                 "  drgatectl -o json jobs get -c cs1 2141 | jq -r .state"));

  ListArgs list_args;
  CLI::App* list = jobs->add_subcommand(
      "list", "List DR jobs (drgate's and the CommServe's own), newest first (ListJobs)");
  AddCommCellOption(list, &list_args.commcell, true);
  list->add_option("--state", list_args.state,
                   "Only jobs in this state: submitted, queued, running, suspended, succeeded, "
                   "succeeded_with_errors, failed, killed, unknown (default: every state)")
      ->type_name("STATE")
      ->check(JobStateValidator());
  list->add_option("--origin", list_args.origin,
                   "Only jobs drgate started (drgate) or found in the CommServe's DR history "
                   "(commserv)")
      ->check([](const std::string& text) {
        return ParseJobOrigin(text) ? std::string() : "expected drgate or commserv";
      });
  list->add_option("--page-size", list_args.page_size,
                   "Jobs per page, 1-1000 (default: the server's, 50)")
      ->check(CLI::Range(1, 1000));
  CLI::Option* page_token = list->add_option(
      "--page-token", list_args.page_token, "Continue after a previous page (its next_page_token)");
  list->add_flag("--all", list_args.all, "Follow next_page_token and print every page as one list")
      ->excludes(page_token);
  list->footer(
      LeafFooter("  drgatectl jobs list --commcell cs1 --state running\n"
                 "  drgatectl -o json jobs list --state failed --all"));

  JobArgs watch_args;
  CLI::App* watch = jobs->add_subcommand(
      "watch", "Follow a job until it ends (WatchJob, or GetJob polling); exit with its outcome");
  AddCommCellOption(watch, &watch_args.commcell, false);
  watch->add_option("JOB_ID", watch_args.job_id, "The CommServe's job id")->required();
  AddWaitOptions(watch, &watch_args.wait, false);
  watch->footer(
      LeafFooter("  drgatectl jobs watch --commcell cs1 2141\n"
                 "  drgatectl jobs watch -c cs1 2141 --wait-timeout 30m"));

  JobArgs cancel_args;
  CLI::App* cancel = jobs->add_subcommand("cancel", "Kill a job on the CommServe (CancelJob)");
  AddCommCellOption(cancel, &cancel_args.commcell, false);
  cancel->add_option("JOB_ID", cancel_args.job_id, "The CommServe's job id")->required();
  cancel->footer(LeafFooter("  drgatectl jobs cancel --commcell cs1 2141"));

  // commcells
  CLI::App* commcells = app.add_subcommand(
      "commcells", "List the configured CommCells and whether drgate reaches them");
  commcells->footer(LeafFooter("  drgatectl commcells\n  drgatectl -o json commcells"));

  // status
  CLI::App* status_cmd = app.add_subcommand(
      "status",
      "One line per CommCell: last successful full and differential DR backup (age, origin), "
      "what runs, the last failure, retained fulls and whether a copy leaves the host");
  status_cmd->footer(LeafFooter("  drgatectl status\n  drgatectl -o json status"));

  // token hash
  CLI::App* token_cmd =
      app.add_subcommand("token", "Manage caller tokens for drgate's auth.tokens_file");
  token_cmd->require_subcommand(1);
  TokenHashArgs token_args;
  CLI::App* token_hash = token_cmd->add_subcommand(
      "hash",
      "Print the auth.tokens_file entry for a token: its SHA-256, identity, roles, CommCells.\n"
      "The token is read from the first line of stdin; with --generate a new random token\n"
      "(32 bytes, base64url) is written to --token-out (mode 0600) instead. stdout holds only\n"
      "the YAML entry, to append under 'tokens:'. No server is contacted.");
  token_hash
      ->add_option("--identity", token_args.identity,
                   "Name recorded as requested_by on the jobs this caller starts")
      ->required();
  token_hash
      ->add_option("--role", token_args.roles,
                   "viewer (read jobs and CommCells) or operator (also trigger and cancel); "
                   "repeatable")
      ->required()
      ->check(CLI::IsMember({"viewer", "operator"}));
  token_hash->add_option("--commcell", token_args.commcells,
                         "Limit the caller to this CommCell; repeatable (default: every CommCell)");
  CLI::Option* generate = token_hash->add_flag(
      "--generate", token_args.generate, "Generate a new random token instead of reading stdin");
  token_hash
      ->add_option("--token-out", token_args.token_out,
                   "With --generate: new file to write the token to (never printed), for "
                   "drgatectl --token-file")
      ->needs(generate);
  generate->needs(token_hash->get_option("--token-out"));
  token_hash->footer(
      "Examples:\n"
      "  printf '%s' \"$TOKEN\" | drgatectl token hash --identity ci --role operator "
      "--commcell cs1 >> tokens.yaml\n"
      "  drgatectl token hash --generate --token-out ci.token --identity ci --role operator "
      ">> tokens.yaml\n\n"
      "tokens.yaml starts with a line 'tokens:'; point auth.tokens_file at it.\n"
      "Exit codes: 0 printed, 2 usage error (bad flags, empty token, --token-out exists).");

  // registry backup
  CLI::App* registry_cmd = app.add_subcommand("registry", "Look after drgate's SQLite registry");
  registry_cmd->require_subcommand(1);
  std::string registry_path = "/var/lib/drgate/drgate.db";
  std::string backup_file;
  CLI::App* registry_backup = registry_cmd->add_subcommand(
      "backup",
      "Copy the SQLite registry to FILE while drgate runs: SQLite's online backup, one consistent\n"
      "snapshot, checked (PRAGMA integrity_check) before it is named FILE. Reads the registry\n"
      "file directly (run it where the file is: on the VM, or kubectl exec in the pod); no\n"
      "server is contacted. A PostgreSQL registry is backed up with pg_dump instead.");
  registry_backup
      ->add_option("FILE", backup_file,
                   "New file to write the copy to (never "
                   "overwritten)")
      ->required();
  registry_backup
      ->add_option("--registry", registry_path, "The registry file (drgate's registry.path)")
      ->capture_default_str();
  registry_backup->footer(
      "Examples:\n"
      "  sudo -u drgate drgatectl registry backup /var/lib/drgate/backup-$(date +%F).db\n"
      "  kubectl exec deploy/drgate -- drgatectl registry backup /var/lib/drgate/backup.db\n\n"
      "Exit codes: 0 copied, 2 FILE exists or the registry cannot be read, 4 the copy failed.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every parse error is a usage error, exit 2 (CLI11's own
    // codes are not part of our contract).
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  if (*token_hash) return TokenHash(token_args);
  if (*registry_backup) return BackupRegistry(registry_path, backup_file, std::cout, std::cerr);

  ConnectionOptions& connection = global.connection;
  connection.timeout = *ParseDuration(global.timeout);
  if (!connection.ca_file.empty() || !connection.cert_file.empty()) connection.tls = true;
  const bool server_given = server_option->count() > 0;
  if (!server_given && socket_option->count() > 0 && !global.socket.empty() && connection.tls) {
    std::cerr << "drgatectl: --socket is plaintext: --tls, --ca-file and --cert apply to --server"
              << std::endl;
    return kExitUsage;
  }
  connection.server =
      ChooseServer(server_given, connection.server, global.socket, connection.tls, IsUsableSocket);

  std::string error;
  std::string token;
  if (!connection.token_file.empty() && !ReadTokenFile(connection.token_file, &token, &error)) {
    std::cerr << "drgatectl: " << error << std::endl;
    return kExitUsage;
  }
  if (!token.empty() && !connection.tls && !IsLocal(connection.server)) {
    std::cerr << "drgatectl: warning: sending a bearer token to " << connection.server
              << " without --tls" << std::endl;
  }
  std::shared_ptr<grpc::Channel> channel = MakeChannel(connection, &error);
  if (channel == nullptr) {
    std::cerr << "drgatectl: " << error << std::endl;
    return kExitUsage;
  }
  if (global.verbose) {
    std::cerr << "drgatectl: connecting to " << connection.server
              << (connection.tls ? " with TLS" : " without TLS")
              << (token.empty() ? "" : ", with a bearer token") << ", call timeout "
              << FormatDuration(connection.timeout) << std::endl;
  }
  Client client(v1::DrBackupService::NewStub(channel), token, connection.timeout);
  Commands commands(client, global.output == "json", global.verbose);

  if (*backup) return commands.Backup(backup_args);
  if (*ensure) return commands.Ensure(ensure_args);
  if (*get) return commands.GetJob(get_args);
  if (*list) return commands.ListJobs(list_args);
  if (*watch) return commands.WatchJob(watch_args);
  if (*cancel) return commands.CancelJob(cancel_args);
  if (*commcells) return commands.ListCommCells();
  if (*status_cmd) return commands.ShowStatus();
  return kExitUsage;  // Unreachable: require_subcommand(1) at every level.
}

}  // namespace
}  // namespace drgate::cli

int main(int argc, char** argv) {
  return drgate::cli::Run(argc, argv);
}
