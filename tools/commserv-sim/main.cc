// commserv-sim: a Commvault CommServe REST API simulator for drgate's tests and demos.
// See --help; the admin API (/_sim/...) is described in service.h.
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include "tools/commserv-sim/certificate.h"
#include "tools/commserv-sim/commserv_state.h"
#include "tools/commserv-sim/server.h"
#include "tools/commserv-sim/service.h"

namespace commserv_sim {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr int kIoThreads = 2;

struct Flags {
  std::string listen = "127.0.0.1:8443";
  bool plain = false;
  std::string cert_file;
  std::string key_file;
  std::string cert_out;
  std::string password_file;
  bool quiet = false;
  int64_t token_ttl_seconds = 1800;
  int64_t job_duration_ms = 2000;
  int64_t visibility_delay_ms = 0;
  std::string dr_schedule;
  std::string faults_file;
  bool expired_cert = false;
  StateOptions state;
  ServiceOptions service;
};

// "500ms", "30s", "5m", "24h" (a positive integer and a unit) as milliseconds.
std::optional<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && digits < 12 &&
         std::isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  const int64_t count = std::stoll(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  int64_t factor = 0;
  if (unit == "ms") factor = 1;
  if (unit == "s") factor = 1000;
  if (unit == "m") factor = 60 * 1000;
  if (unit == "h") factor = 60 * 60 * 1000;
  if (factor == 0 || count <= 0) return std::nullopt;
  return std::chrono::milliseconds(count * factor);
}

void DefineFlags(CLI::App& app, Flags& flags) {
  app.add_option("--listen", flags.listen, "HOST:PORT to listen on; port 0 picks a free port")
      ->capture_default_str();
  auto* plain = app.add_flag("--plain", flags.plain, "Serve plain HTTP instead of HTTPS");
  auto* cert = app.add_option("--cert", flags.cert_file,
                              "PEM certificate (chain) to serve; default: a generated self-signed "
                              "one for localhost and 127.0.0.1")
                   ->check(CLI::ExistingFile);
  auto* key = app.add_option("--key", flags.key_file, "PEM private key of --cert")
                  ->check(CLI::ExistingFile);
  auto* cert_out = app.add_option("--cert-out", flags.cert_out,
                                  "Directory to write the generated cert.pem and key.pem to "
                                  "(default: a fresh temporary directory)");
  cert->needs(key);
  key->needs(cert);
  cert_out->excludes(cert);
  plain->excludes(cert)->excludes(key)->excludes(cert_out);
  app.add_option("--username", flags.state.username, "User name that Login accepts")
      ->capture_default_str();
  auto* password = app.add_option("--password", flags.state.password,
                                  "Password that Login accepts (plain text; clients send base64)")
                       ->capture_default_str();
  auto* password_file =
      app.add_option("--password-file", flags.password_file,
                     "Read the password from this file (trailing newline ignored)")
          ->check(CLI::ExistingFile);
  password->excludes(password_file);
  app.add_option("--token-ttl", flags.token_ttl_seconds,
                 "Seconds of inactivity after which a token expires (renewable for 24 h more)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--job-duration-ms", flags.job_duration_ms,
                 "Running time of a DR backup job from start to its outcome")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--outcome", flags.state.outcome,
                 "Status a job ends with, e.g. Completed, Failed, \"Completed w/ one or more "
                 "errors\", Killed (per job: POST /_sim/jobs/{id} {\"outcome\": ...})")
      ->capture_default_str();
  app.add_option("--visibility-delay-ms", flags.visibility_delay_ms,
                 "A new job is missing from Job/{id} and the job list for this long")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--login-failure-status", flags.service.login_failure_status,
                 "Wrong credentials get 200 with errList, or 401 Access denied")
      ->check(CLI::IsMember({200, 401}))
      ->capture_default_str();
  app.add_flag("--job-ids-as-numbers", flags.service.job_ids_as_numbers,
               "DRBackup answers jobIds as JSON numbers instead of strings");
  app.add_option("--first-job-id", flags.state.first_job_id, "Id of the first job")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--first-task-id", flags.state.first_task_id, "Id of the first task")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--api-token", flags.state.api_tokens,
                 "A pre-issued API access token (repeatable) that is valid without Login and "
                 "without the inactivity timeout, until /_sim/expire-tokens");
  app.add_option("--dr-schedule", flags.dr_schedule,
                 "Start a full DR backup on its own every DURATION (e.g. 500ms, 30s, 5m, 24h), "
                 "like the CommServe's own DR schedule; the first one DURATION after startup")
      ->check([](const std::string& text) {
        return ParseDuration(text) ? std::string() : "expected a duration like 30s, 5m or 24h";
      });
  app.add_flag("--quiet", flags.quiet, "Do not log one line per request to stderr");
  app.add_option("--faults", flags.faults_file,
                 "JSON file with fault rules to install at startup (the body POST /_sim/faults "
                 "accepts: an array of rules, or one rule); see the fault rules below")
      ->check(CLI::ExistingFile);
  app.add_flag("--expired-cert", flags.expired_cert,
               "Serve an expired copy of the certificate (same name and key, so a client that "
               "trusts the printed certificate fails with \"certificate has expired\")")
      ->excludes(plain);
  app.footer(R"(Fault rules (POST /_sim/faults, GET to list, DELETE to clear; or --faults FILE):
  {"endpoint": E, "action": A, "count": N, "skip": K, ...options}
  endpoint  Login, RenewLoginToken, Logout, DRBackup, Job, JobList, Kill, Pause, Resume,
            JobDetails, DROptions, NotFound, or "*" (default): which requests the rule matches.
  count     matching requests (connections, for connection-level actions) affected; default 1,
            -1 = forever. skip: matching requests let through first (default 0), so
            {"skip": 2, "count": 1} hits the third one.
  after_side_effect  true: the request's real work happens first (e.g. the DR job starts),
            then the fault replaces the answer; default false (nothing happens).
  The first rule that matches decides; each application counts in GET /_sim/stats
  "faults_applied".
Actions:
  delay               answer normally after delay_ms (added latency).
  hang                send nothing and hold the connection open for delay_ms (default 600000),
                      then close (no answer).
  close               close the connection without answering (FIN).
  reset               reset the connection (TCP RST) without answering; with after_side_effect
                      the job has started, so the client cannot know whether it did.
  status              answer http_status (default 500) with content_type (default text/plain),
                      body and headers, e.g. 500 text/html "<title>Down</title>", or 429 with
                      headers {"Retry-After": "2"}.
  unauthorized        401 {"errorCode":5,"errorMessage":"Access denied"}; with count N on "*"
                      (Login included) or on one endpoint: a 401 storm of N requests.
  error_code          200 with {"errorCode": error_code, "errorMessage": message} (XML when the
                      request asked for XML).
  malformed           200 with a syntactically broken JSON (or XML) body.
  truncate            Content-Length promises missing_bytes (default 16) more than is sent, then
                      the connection closes; the body is the real answer with after_side_effect.
  wrong_content_type  the real answer (its side effect happens) with Content-Type content_type
                      (default text/html).
  oversized           200 with a well-formed body of size_bytes (default 16777216).
  tls_handshake_failure  connection-level (endpoint "*"): the next count TLS connections get
                      bytes that are not TLS and are closed; their handshake fails.
  expired_cert        connection-level (endpoint "*"): the next count TLS connections are served
                      an expired copy of the certificate (see --expired-cert).
Connection-level rules count connections, not requests: clients that keep connections alive
meet them only when they open a new one.
DR history and options (admin API):
  POST /_sim/history [{"start": S, "end": E, "level": "Full"|"Differential",
            "status": "Completed"|"Failed"|..., "reason": "..."}]  (epoch seconds) adds finished
            jobs to the job list; answers {"ok": true, "job_ids": [...]}.
  POST /_sim/dr-options {"body": {...} or "raw text", "http_status": 200|404|...} sets what
            GET Commcell/DRBackup/Options answers (GET /_sim/dr-options shows it; reset restores
            the default: local drive, 5 fulls, no upload).
  GET /_sim/stats also counts "scheduled_starts" (jobs --dr-schedule started), and
  "requests_by_prefix": requests whose path has one segment before the API base
  (/cc17/commandcenter/api/..., as a reverse proxy serving several CommServes forwards them), by
  that segment and endpoint: one simulator can stand in for many CommCells and count each.)");
}

std::string ReadPassword(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot read " + path);
  std::ostringstream content;
  content << file.rdbuf();
  std::string password = content.str();
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  return password;
}

// Resolves "HOST:PORT" ("[v6]:PORT" for IPv6 literals) to the first matching endpoint.
tcp::endpoint ResolveListen(asio::io_context& io_context, const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("--listen must be HOST:PORT");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  tcp::resolver resolver(io_context);
  const auto results = resolver.resolve(host, listen.substr(colon + 1),
                                        tcp::resolver::passive | tcp::resolver::numeric_service);
  if (results.empty()) throw std::runtime_error("cannot resolve " + host);
  return results.begin()->endpoint();
}

std::string Url(bool tls, const tcp::endpoint& endpoint) {
  const std::string address = endpoint.address().to_string();
  const std::string host = endpoint.address().is_v6() ? "[" + address + "]" : address;
  return (tls ? "https://" : "http://") + host + ":" + std::to_string(endpoint.port());
}

int Run(Flags flags) {
  if (!flags.password_file.empty()) flags.state.password = ReadPassword(flags.password_file);
  flags.state.token_ttl = std::chrono::seconds(flags.token_ttl_seconds);
  flags.state.job_duration = std::chrono::milliseconds(flags.job_duration_ms);
  flags.state.visibility_delay = std::chrono::milliseconds(flags.visibility_delay_ms);
  if (!flags.dr_schedule.empty()) flags.state.dr_schedule = *ParseDuration(flags.dr_schedule);

  std::shared_ptr<asio::ssl::context> tls;
  CertificateFiles certificate;
  if (!flags.plain) {
    if (!flags.cert_file.empty()) {
      certificate = {flags.cert_file, flags.key_file};
    } else {
      certificate = WriteSelfSignedCertificate(
          flags.cert_out.empty() ? MakeTempDirectory() : std::filesystem::path(flags.cert_out));
    }
    tls = MakeServerTlsContext(certificate.cert, certificate.key);
  }
  // The expired copy serves the expired_cert fault (and --expired-cert from the start).
  std::shared_ptr<asio::ssl::context> expired_tls;
  if (tls) {
    const auto expired = WriteExpiredCertificate(
        certificate,
        flags.cert_out.empty() ? MakeTempDirectory() : std::filesystem::path(flags.cert_out));
    expired_tls = MakeServerTlsContext(expired, certificate.key);
    if (flags.expired_cert) tls = expired_tls;
  }

  CommservState state(flags.state, std::make_unique<SystemClock>());
  Service service(state, flags.service);
  if (!flags.faults_file.empty()) {
    std::ifstream file(flags.faults_file, std::ios::binary);
    const auto rules = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
    if (rules.is_discarded()) throw std::runtime_error(flags.faults_file + ": not valid JSON");
    try {
      service.AddFaults(rules);
    } catch (const std::invalid_argument& error) {
      throw std::runtime_error(flags.faults_file + ": " + error.what());
    }
  }
  asio::io_context io_context(kIoThreads);
  // Signals are caught before the address is announced, so a caller may stop us at any time.
  asio::signal_set signals(io_context, SIGINT, SIGTERM);
  Server server(
      io_context, ResolveListen(io_context, flags.listen), tls,
      [&service](const HttpRequest& request) { return service.Handle(request); }, !flags.quiet,
      [&service] { return service.OnConnection(); }, expired_tls);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) server.Stop([&io_context] { io_context.stop(); });
  });
  server.Start();

  std::cout << "commserv-sim listening on " << Url(tls != nullptr, server.LocalEndpoint()) << "\n";
  if (tls) std::cout << "commserv-sim certificate " << certificate.cert.string() << "\n";
  std::cout << std::flush;

  std::vector<std::thread> threads;
  for (int i = 1; i < kIoThreads; ++i) threads.emplace_back([&io_context] { io_context.run(); });
  io_context.run();
  for (std::thread& thread : threads) thread.join();
  return 0;
}

}  // namespace
}  // namespace commserv_sim

int main(int argc, char** argv) {
  CLI::App app{
      "commserv-sim: simulates the Commvault CommServe REST API (Login, DR backups, "
      "jobs) for drgate's tests, with an admin API under /_sim/ for fault injection"};
  commserv_sim::Flags flags;
  commserv_sim::DefineFlags(app, flags);
  CLI11_PARSE(app, argc, argv);
  try {
    return commserv_sim::Run(std::move(flags));
  } catch (const std::exception& error) {
    std::cerr << "commserv-sim: " << error.what() << "\n";
    return 1;
  }
}
