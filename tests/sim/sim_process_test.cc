// commserv-sim as a process: each test starts the real binary on a free loopback port and talks
// HTTP/1.1 (or HTTPS) to it with a small synchronous Beast client.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using nlohmann::json;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr char kBase[] = "/commandcenter/api";
constexpr auto kStartTimeout = std::chrono::seconds(10);

// The simulator process. Starts it with `--listen 127.0.0.1:0` plus `args`, reads the announced
// address (and certificate) from its stdout; SIGTERMs it on destruction.
class SimProcess {
 public:
  explicit SimProcess(std::vector<std::string> args) {
    args.insert(args.begin(), {DRGATE_BIN_DIR "/commserv-sim", "--listen", "127.0.0.1:0"});
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    stdout_fd_ = out[0];
    const std::string first = ReadLine();
    const std::string prefix = "commserv-sim listening on ";
    if (first.rfind(prefix, 0) != 0) throw std::runtime_error("unexpected output: " + first);
    url_ = first.substr(prefix.size());
    port_ = static_cast<uint16_t>(std::stoi(url_.substr(url_.rfind(':') + 1)));
    if (url_.rfind("https://", 0) == 0) {
      const std::string line = ReadLine();
      cert_ = line.substr(std::string("commserv-sim certificate ").size());
    }
  }

  ~SimProcess() {
    if (pid_ > 0) Stop();
    if (stdout_fd_ >= 0) close(stdout_fd_);
  }

  // Sends SIGTERM and returns the exit code (-1 when it did not exit normally).
  int Stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  uint16_t port() const { return port_; }
  const std::string& url() const { return url_; }
  const std::string& cert() const { return cert_; }

 private:
  std::string ReadLine() {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd fd{stdout_fd_, POLLIN, 0};
      if (poll(&fd, 1, 100) <= 0) continue;
      char c;
      if (read(stdout_fd_, &c, 1) != 1) break;
      if (c == '\n') return line;
      line.push_back(c);
    }
    throw std::runtime_error("commserv-sim did not announce itself; got: " + line);
  }

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  uint16_t port_ = 0;
  std::string url_;
  std::string cert_;
};

struct Answer {
  beast::error_code error;  // Set when no answer arrived (e.g. the server closed the connection).
  http::response<http::string_body> response;

  unsigned status() const { return response.result_int(); }
  json Json() const { return json::parse(response.body()); }
};

http::request<http::string_body> MakeRequest(http::verb method, const std::string& target,
                                             const std::string& body, const Headers& headers) {
  http::request<http::string_body> request(method, target, 11);
  request.set(http::field::host, "127.0.0.1");
  if (!body.empty()) request.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  request.prepare_payload();
  return request;
}

// One keep-alive connection. Throws when it cannot connect.
class Client {
 public:
  explicit Client(uint16_t port) : stream_(io_context_) {
    stream_.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  }

  Answer Send(http::verb method, const std::string& target, const std::string& body = "",
              const Headers& headers = {}) {
    auto request = MakeRequest(method, target, body, headers);
    Answer answer;
    stream_.expires_after(std::chrono::seconds(5));
    http::write(stream_, request, answer.error);
    if (!answer.error) http::read(stream_, buffer_, answer.response, answer.error);
    return answer;
  }
  Answer Get(const std::string& target, const Headers& headers = {}) {
    return Send(http::verb::get, target, "", headers);
  }
  Answer Post(const std::string& target, const std::string& body, const Headers& headers = {}) {
    return Send(http::verb::post, target, body, headers);
  }

 private:
  asio::io_context io_context_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

std::string Base64(std::string_view text) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < text.size(); i += 3) {
    uint32_t chunk = static_cast<unsigned char>(text[i]) << 16;
    if (i + 1 < text.size()) chunk |= static_cast<unsigned char>(text[i + 1]) << 8;
    if (i + 2 < text.size()) chunk |= static_cast<unsigned char>(text[i + 2]);
    out.push_back(kAlphabet[(chunk >> 18) & 63]);
    out.push_back(kAlphabet[(chunk >> 12) & 63]);
    out.push_back(i + 1 < text.size() ? kAlphabet[(chunk >> 6) & 63] : '=');
    out.push_back(i + 2 < text.size() ? kAlphabet[chunk & 63] : '=');
  }
  return out;
}

std::string LoginBody(std::string_view user, std::string_view password_base64) {
  return json{{"username", user},
              {"password", password_base64},
              {"domain", ""},
              {"deviceId", "sim-test"},
              {"timeout", 30}}
      .dump();
}

// Logs in as admin/admin and returns the Authtoken header to send.
Headers LogIn(Client& client) {
  const Answer answer = client.Post(std::string(kBase) + "/Login", LoginBody("admin", "YWRtaW4="));
  return {{"Authtoken", answer.Json().at("token").get<std::string>()}};
}

Answer PostFullBackup(Client& client, const Headers& auth) {
  return client.Post(std::string(kBase) + "/CommServ/DRBackup",
                     R"({"isCompressionEnabled":false,"jobType":1,"backupType":1})", auth);
}

json JobSummary(Client& client, const Headers& auth, const std::string& job_id) {
  const json list = client.Get(std::string(kBase) + "/Job/" + job_id, auth).Json();
  if (list.at("totalRecordsWithoutPaging") == 0) return json();
  return list.at("jobs").at(0).at("jobSummary");
}

// Polls Job/{id} until `done` holds for its summary (or 5 s pass) and returns the last summary.
json WaitForJob(Client& client, const Headers& auth, const std::string& job_id,
                const std::function<bool(const json&)>& done) {
  json summary;
  for (int i = 0; i < 100; ++i) {
    summary = JobSummary(client, auth, job_id);
    if (!summary.is_null() && done(summary)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return summary;
}

bool IsFinished(const json& summary) {
  return summary.at("jobEndTime").get<int64_t>() > 0;
}

TEST(CommservSimTest, AnnouncesItsPortAndExitsZeroOnSigterm) {
  SimProcess sim({"--plain", "--quiet"});
  EXPECT_THAT(sim.url(), StartsWith("http://127.0.0.1:"));
  EXPECT_GT(sim.port(), 0);
  Client client(sim.port());
  EXPECT_EQ(client.Get("/nowhere").status(), 404);
  EXPECT_EQ(sim.Stop(), 0);
}

TEST(CommservSimTest, LoginAcceptsTheBase64PasswordAndRecordsTheBodyVerbatim) {
  SimProcess sim({"--plain", "--quiet", "--username", "operator", "--password", "pässwörd"});
  Client client(sim.port());
  const std::string body = LoginBody("operator", Base64("pässwörd"));
  const Answer answer = client.Post("/webconsole/api/Login", body);
  ASSERT_EQ(answer.status(), 200);
  EXPECT_THAT(answer.Json().at("token").get<std::string>(), StartsWith("QSDK "));
  EXPECT_EQ(answer.Json().at("userName"), "operator");

  const json recorded = client.Get("/_sim/requests").Json();
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0].at("body"), body);
  EXPECT_EQ(recorded[0].at("target"), "/webconsole/api/Login");
  EXPECT_EQ(recorded[0].at("has_authtoken"), false);
}

TEST(CommservSimTest, WrongOrUnencodedPasswordFailsLogin) {
  SimProcess sim({"--plain", "--quiet"});
  Client client(sim.port());
  for (const std::string& password : {Base64("wrong"), std::string("admin")}) {
    const Answer answer = client.Post(std::string(kBase) + "/Login", LoginBody("admin", password));
    EXPECT_EQ(answer.status(), 200);
    EXPECT_EQ(answer.Json().at("errList").at(0).at("errorCode"), 5);
    EXPECT_EQ(answer.Json().at("errList").at(0).at("errLogMessage"),
              "Login failed: invalid username or password");
  }

  SimProcess strict({"--plain", "--quiet", "--login-failure-status", "401"});
  Client strict_client(strict.port());
  const Answer denied =
      strict_client.Post(std::string(kBase) + "/Login", LoginBody("admin", Base64("wrong")));
  EXPECT_EQ(denied.status(), 401);
  EXPECT_EQ(denied.Json(), json::parse(R"({"errorCode":5,"errorMessage":"Access denied"})"));
}

TEST(CommservSimTest, ExpiredTokenGets401AndRenewalReplacesIt) {
  SimProcess sim({"--plain", "--quiet"});
  Client client(sim.port());
  const std::string target = std::string(kBase) + "/Job?jobCategory=Active&jobFilter=CSDRBKP";
  EXPECT_EQ(client.Get(target).status(), 401);
  const Headers auth = LogIn(client);
  EXPECT_EQ(client.Get(target, auth).status(), 200);

  client.Post("/_sim/expire-tokens", "");
  const Answer expired = client.Get(target, auth);
  EXPECT_EQ(expired.status(), 401);
  EXPECT_EQ(expired.Json().at("errorCode"), 5);

  const std::string renew_body =
      json{{"sessionId", auth[0].second}, {"deviceId", "sim-test"}}.dump();
  const Answer renewed = client.Post(std::string(kBase) + "/RenewLoginToken", renew_body);
  const std::string token = renewed.Json().at("token").get<std::string>();
  EXPECT_THAT(token, StartsWith("QSDK "));
  EXPECT_EQ(client.Get(target, {{"Authtoken", token}}).status(), 200);
  const Answer again = client.Post(std::string(kBase) + "/RenewLoginToken", renew_body);
  EXPECT_EQ(again.Json().at("error").at("errorString"), "Invalid session");
}

TEST(CommservSimTest, DrBackupAcceptsTheSeedFormsOnEveryBasePathOverOneConnection) {
  SimProcess sim({"--plain", "--quiet"});
  Client client(sim.port());
  const Headers auth = LogIn(client);
  const Answer seed =
      client.Post("/commandcenter/api/CommServ/DRBackup",
                  R"({"isCompressionEnabled":"false","jobType":1,"backupType":"1"})",
                  {auth[0], {"Accept", "application/json"}});
  EXPECT_EQ(seed.Json(), json::parse(R"({"taskId":400,"jobIds":["2100"]})"));
  const Answer doubled =
      client.Post("/webconsole/api//CommServ/DRBackup",
                  R"({"isCompressionEnabled":true,"jobType":1,"backupType":3})", auth);
  EXPECT_EQ(doubled.Json(), json::parse(R"({"taskId":401,"jobIds":["2101"]})"));
  const Answer direct = client.Post("/SearchSvc/CVWebService.svc/CommServ/DRBackup",
                                    R"({"isCompressionEnabled":"true","backupType":"1"})", auth);
  EXPECT_EQ(direct.Json(), json::parse(R"({"taskId":402,"jobIds":["2102"]})"));

  const json jobs = client.Get("/_sim/jobs").Json();
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[1].at("type"), "Differential");
  EXPECT_EQ(jobs[1].at("compression"), true);
  EXPECT_EQ(jobs[2].at("compression"), true);
}

TEST(CommservSimTest, DrBackupXmlIsAnsweredInTheAcceptedFormat) {
  SimProcess sim({"--plain", "--quiet", "--first-task-id", "433", "--first-job-id", "2141"});
  Client client(sim.port());
  const Headers auth = LogIn(client);
  const std::string xml =
      R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="1" jobType="IMMEDIATE" backupType="full"/>)";
  const Answer as_xml = client.Post(std::string(kBase) + "/CommServ/DRBackup", xml,
                                    {auth[0], {"Content-Type", "application/xml"}});
  EXPECT_EQ(as_xml.response[http::field::content_type], "application/xml");
  EXPECT_EQ(as_xml.response.body(),
            R"(<TMMsg_CreateTaskResp taskId="433"><jobIds val="2141"/></TMMsg_CreateTaskResp>)");

  const Answer as_json = client.Post(
      std::string(kBase) + "/CommServ/DRBackup",
      R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="false" jobType="IMMEDIATE" backupType="differential"/>)",
      {auth[0], {"Content-Type", "application/xml"}, {"Accept", "application/json"}});
  EXPECT_EQ(as_json.Json(), json::parse(R"({"taskId":434,"jobIds":["2142"]})"));
}

TEST(CommservSimTest, InvalidDrBackupBodyGetsErrorCode2AndCreatesNoJob) {
  SimProcess sim({"--plain", "--quiet"});
  Client client(sim.port());
  const Headers auth = LogIn(client);
  const Answer json_answer =
      client.Post(std::string(kBase) + "/CommServ/DRBackup",
                  R"({"isCompressionEnabled":false,"jobType":1,"backupType":2})", auth);
  EXPECT_EQ(json_answer.status(), 200);
  EXPECT_EQ(json_answer.Json().at("errorCode"), 2);
  EXPECT_THAT(json_answer.Json().at("errorMessage").get<std::string>(),
              StartsWith("Invalid input: backupType"));

  const Answer xml_answer = client.Post(std::string(kBase) + "/CommServ/DRBackup",
                                        R"(<TMMsg_CommcellDRBackupReq backupType="full")",
                                        {auth[0], {"Content-Type", "application/xml"}});
  EXPECT_EQ(xml_answer.status(), 200);
  EXPECT_THAT(xml_answer.response.body(),
              StartsWith(R"(<TMMsg_GenericResp errorCode="2" errorMessage="Invalid input: )"));
  EXPECT_EQ(client.Get("/_sim/jobs").Json().size(), 0u);
}

TEST(CommservSimTest, RefusesAThirdFullAndASecondDifferentialBackup) {
  SimProcess sim({"--plain", "--quiet", "--job-duration-ms", "60000"});
  Client client(sim.port());
  const Headers auth = LogIn(client);
  const std::string target = std::string(kBase) + "/CommServ/DRBackup";
  EXPECT_EQ(PostFullBackup(client, auth).Json().at("jobIds").at(0), "2100");
  EXPECT_EQ(PostFullBackup(client, auth).Json().at("jobIds").at(0), "2101");
  EXPECT_EQ(
      PostFullBackup(client, auth).Json(),
      json::parse(R"({"errorCode":1,"errorMessage":"DR backup job [2100] is already running."})"));
  const std::string differential = R"({"isCompressionEnabled":false,"jobType":1,"backupType":3})";
  EXPECT_EQ(client.Post(target, differential, auth).Json().at("jobIds").at(0), "2102");
  EXPECT_EQ(client.Post(target, differential, auth).Json().at("errorMessage"),
            "DR backup job [2102] is already running.");
  // Killing one full job frees its slot.
  EXPECT_EQ(client.Post(std::string(kBase) + "/Job/2100/action/kill", "", auth).Json(),
            json::parse(R"({"errorCode":0})"));
  EXPECT_EQ(PostFullBackup(client, auth).Json().at("jobIds").at(0), "2103");
}

TEST(CommservSimTest, JobsWaitRunAndCompleteAndAreListedByCategory) {
  SimProcess sim({"--plain", "--quiet", "--job-duration-ms", "600", "--job-ids-as-numbers"});
  Client client(sim.port());
  const Headers auth = LogIn(client);
  EXPECT_EQ(PostFullBackup(client, auth).Json().at("jobIds"), json::parse("[2100]"));
  EXPECT_EQ(PostFullBackup(client, auth).Json().at("jobIds"), json::parse("[2101]"));
  const json waiting = JobSummary(client, auth, "2101");
  EXPECT_EQ(waiting.at("status"), "Waiting");
  EXPECT_EQ(waiting.at("jobEndTime"), 0);
  EXPECT_EQ(waiting.at("localizedOperationName"), "Disaster Recovery Backup");
  const std::string list =
      std::string(kBase) + "/Job?jobFilter=CSDRBKP&completedJobLookupTime=3600&jobCategory=";
  EXPECT_EQ(client.Get(list + "Active", auth).Json().at("totalRecordsWithoutPaging"), 2);

  const json first = WaitForJob(client, auth, "2100", IsFinished);
  EXPECT_EQ(first.at("status"), "Completed");
  EXPECT_EQ(first.at("percentComplete"), 100);
  EXPECT_GE(first.at("jobEndTime").get<int64_t>(), first.at("jobStartTime").get<int64_t>());
  EXPECT_EQ(WaitForJob(client, auth, "2101", IsFinished).at("status"), "Completed");

  const json finished = client.Get(list + "Finished", auth).Json();
  EXPECT_EQ(finished.at("totalRecordsWithoutPaging"), 2);
  EXPECT_EQ(finished.at("jobs").at(0).at("jobSummary").at("jobId"), 2101);  // Newest first.
  const json paged = client.Get(list + "All", {auth[0], {"limit", "1"}, {"offset", "1"}}).Json();
  EXPECT_EQ(paged.at("totalRecordsWithoutPaging"), 2);
  ASSERT_EQ(paged.at("jobs").size(), 1u);
  EXPECT_EQ(paged.at("jobs").at(0).at("jobSummary").at("jobId"), 2100);
  EXPECT_EQ(client.Get(list + "Active", auth).Json().at("totalRecordsWithoutPaging"), 0);
}

TEST(CommservSimTest, FailedJobsCarryAReasonAndOutcomesCanBeSetPerJob) {
  SimProcess sim({"--plain", "--quiet", "--job-duration-ms", "300", "--outcome", "Failed"});
  Client client(sim.port());
  const Headers auth = LogIn(client);
  PostFullBackup(client, auth);
  const json failed = WaitForJob(client, auth, "2100", IsFinished);
  EXPECT_EQ(failed.at("status"), "Failed");
  const std::string reason = failed.at("pendingReason").get<std::string>();
  EXPECT_FALSE(reason.empty());
  const json details =
      client.Post(std::string(kBase) + "/JobDetails", R"({"jobId":2100})", auth).Json();
  EXPECT_EQ(details.at("job").at("jobDetail").at("progressInfo").at("reasonForJobDelay"), reason);

  PostFullBackup(client, auth);
  client.Post("/_sim/jobs/2101", R"({"outcome":"Completed w/ one or more errors"})");
  EXPECT_EQ(WaitForJob(client, auth, "2101", IsFinished).at("status"),
            "Completed w/ one or more errors");

  PostFullBackup(client, auth);
  client.Post("/_sim/jobs/2102", R"({"status":"Failed","pendingReason":"Disk full"})");
  EXPECT_EQ(JobSummary(client, auth, "2102").at("pendingReason"), "Disk full");
  EXPECT_EQ(
      client.Post(std::string(kBase) + "/Job/2102/action/kill", "", auth).Json().at("errorMessage"),
      "Job [2102] is not active");
}

TEST(CommservSimTest, NewJobStaysInvisibleForTheVisibilityDelay) {
  SimProcess sim({"--plain", "--quiet", "--visibility-delay-ms", "400"});
  Client client(sim.port());
  const Headers auth = LogIn(client);
  PostFullBackup(client, auth);
  EXPECT_EQ(client.Get(std::string(kBase) + "/Job/2100", auth).Json(),
            json::parse(R"({"totalRecordsWithoutPaging":0,"jobs":[]})"));
  const json summary = WaitForJob(client, auth, "2100", [](const json&) { return true; });
  EXPECT_EQ(summary.at("jobId"), 2100);
}

TEST(CommservSimTest, FaultsReplaceTheAnswerAndSkipTheSideEffectUnlessAsked) {
  SimProcess sim({"--plain", "--quiet"});
  Client admin(sim.port());
  const Headers auth = LogIn(admin);
  const std::string html = "<html><head><title>Internal Server Error</title></head></html>";
  const json rules =
      json::array({{{"endpoint", "DRBackup"},
                    {"action", "status"},
                    {"http_status", 500},
                    {"content_type", "text/html"},
                    {"body", html}},
                   {{"endpoint", "DRBackup"}, {"action", "close"}},
                   {{"endpoint", "DRBackup"}, {"action", "close"}, {"after_side_effect", true}}});
  ASSERT_EQ(admin.Post("/_sim/faults", rules.dump()).status(), 200);

  Client client(sim.port());
  const Answer error_page = PostFullBackup(client, auth);
  EXPECT_EQ(error_page.status(), 500);
  EXPECT_EQ(error_page.response[http::field::content_type], "text/html");
  EXPECT_EQ(error_page.response.body(), html);
  EXPECT_TRUE(PostFullBackup(client, auth).error);  // Closed, no job.
  EXPECT_EQ(admin.Get("/_sim/jobs").Json().size(), 0u);

  Client second(sim.port());
  EXPECT_TRUE(PostFullBackup(second, auth).error);  // Closed after creating job 2100.
  EXPECT_EQ(admin.Get("/_sim/jobs").Json().at(0).at("id"), 2100);

  Client third(sim.port());
  EXPECT_EQ(PostFullBackup(third, auth).Json().at("jobIds").at(0), "2101");  // Rules used up.
  const json stats = admin.Get("/_sim/stats").Json();
  EXPECT_EQ(stats.at("drbackup_posts"), 4);
  EXPECT_EQ(stats.at("requests_by_endpoint").at("DRBackup"), 4);
}

TEST(CommservSimTest, FaultsCanAnswerRateLimitsErrorCodesUnauthorizedAndDelays) {
  SimProcess sim({"--plain", "--quiet"});
  Client client(sim.port());
  const Headers auth = LogIn(client);
  const json rules = json::array({{{"endpoint", "JobList"},
                                   {"action", "status"},
                                   {"http_status", 429},
                                   {"headers", {{"Retry-After", "2"}}}},
                                  {{"endpoint", "DRBackup"},
                                   {"action", "error_code"},
                                   {"error_code", 7},
                                   {"message", "CommServe busy"}},
                                  {{"endpoint", "Job"}, {"action", "unauthorized"}},
                                  {{"endpoint", "Job"}, {"action", "delay"}, {"delay_ms", 300}}});
  ASSERT_EQ(client.Post("/_sim/faults", rules.dump()).status(), 200);

  const Answer limited = client.Get(std::string(kBase) + "/Job?jobCategory=All", auth);
  EXPECT_EQ(limited.status(), 429);
  EXPECT_EQ(limited.response["Retry-After"], "2");
  const Answer refused = client.Post(
      std::string(kBase) + "/CommServ/DRBackup",
      R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="0" jobType="IMMEDIATE" backupType="full"/>)",
      {auth[0], {"Content-Type", "application/xml"}});
  EXPECT_EQ(refused.response.body(),
            R"(<TMMsg_GenericResp errorCode="7" errorMessage="CommServe busy"/>)");
  EXPECT_EQ(client.Get(std::string(kBase) + "/Job/1", auth).status(), 401);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(client.Get(std::string(kBase) + "/Job/1", auth).Json().at("totalRecordsWithoutPaging"),
            0);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
}

TEST(CommservSimTest, FaultsMangleAnswersAfterTheSideEffectAndCountPerRequest) {
  // Jobs end at once, so the concurrency rule never refuses a full backup here.
  SimProcess sim({"--plain", "--quiet", "--job-duration-ms", "0"});
  Client admin(sim.port());
  const Headers auth = LogIn(admin);
  const json rules =
      json::array({{{"endpoint", "DRBackup"}, {"action", "malformed"}, {"skip", 1}},
                   {{"endpoint", "DRBackup"}, {"action", "truncate"}, {"after_side_effect", true}},
                   {{"endpoint", "DRBackup"}, {"action", "wrong_content_type"}},
                   {{"endpoint", "DRBackup"}, {"action", "oversized"}, {"size_bytes", 5000}},
                   {{"endpoint", "DRBackup"}, {"action", "reset"}, {"after_side_effect", true}}});
  ASSERT_EQ(admin.Post("/_sim/faults", rules.dump()).status(), 200);

  Client client(sim.port());
  // skip 1: the first DRBackup passes untouched (job 2100), the second is malformed (no job).
  EXPECT_EQ(PostFullBackup(client, auth).Json().at("jobIds").at(0), "2100");
  const Answer malformed = PostFullBackup(client, auth);
  EXPECT_EQ(malformed.status(), 200);
  EXPECT_TRUE(json::parse(malformed.response.body(), nullptr, false).is_discarded());
  // truncate: Content-Length promises more than arrives, then the connection closes (job 2101).
  EXPECT_EQ(PostFullBackup(client, auth).error, http::error::partial_message);
  Client second(sim.port());
  const Answer html = PostFullBackup(second, auth);  // the real answer (job 2102), as text/html
  EXPECT_EQ(html.response[http::field::content_type], "text/html");
  EXPECT_EQ(html.Json().at("jobIds").at(0), "2102");
  const Answer big = PostFullBackup(second, auth);
  EXPECT_EQ(big.response.body().size(), 5000u);
  EXPECT_TRUE(json::parse(big.response.body(), nullptr, false).is_object());
  EXPECT_EQ(PostFullBackup(second, auth).error, asio::error::connection_reset);  // job 2103
  EXPECT_EQ(admin.Get("/_sim/jobs").Json().size(), 4u);
  EXPECT_EQ(admin.Get("/_sim/stats").Json().at("faults_applied"), 5);
}

TEST(CommservSimTest, InvalidFaultRulesAreRefusedNamingTheProblem) {
  SimProcess sim({"--plain", "--quiet"});
  Client admin(sim.port());
  const Answer tls =
      admin.Post("/_sim/faults", R"([{"endpoint":"Login","action":"tls_handshake_failure"}])");
  EXPECT_EQ(tls.status(), 400);
  EXPECT_NE(tls.response.body().find("endpoint must be"), std::string::npos) << tls.response.body();
  const Answer unknown = admin.Post("/_sim/faults", R"({"action":"explode"})");
  EXPECT_EQ(unknown.status(), 400);
  EXPECT_NE(unknown.response.body().find("unknown action: explode"), std::string::npos);
  EXPECT_EQ(admin.Get("/_sim/faults").Json().size(), 0u);
}

TEST(CommservSimTest, FaultsFileIsLoadedAtStartup) {
  const std::string path =
      std::filesystem::temp_directory_path() / ("sim-faults-" + std::to_string(getpid()) + ".json");
  {
    std::ofstream file(path);
    file << R"([{"endpoint":"DRBackup","action":"status","http_status":503,"count":2}])";
  }
  SimProcess sim({"--plain", "--quiet", "--faults", path});
  std::filesystem::remove(path);
  Client client(sim.port());
  const Headers auth = LogIn(client);
  EXPECT_EQ(PostFullBackup(client, auth).status(), 503);
  EXPECT_EQ(PostFullBackup(client, auth).status(), 503);
  EXPECT_EQ(PostFullBackup(client, auth).status(), 200);
}

TEST(CommservSimTest, ServesManyConcurrentKeepAliveConnections) {
  SimProcess sim({"--plain", "--quiet"});
  Client login(sim.port());
  const Headers auth = LogIn(login);
  constexpr int kConnections = 32;
  constexpr int kRequestsEach = 10;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kConnections; ++i) clients.push_back(std::make_unique<Client>(sim.port()));
  std::vector<int> ok(kConnections, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kConnections; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 0; r < kRequestsEach; ++r) {
        if (clients[i]->Get(std::string(kBase) + "/Job/5", auth).status() == 200) ++ok[i];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kConnections; ++i) EXPECT_EQ(ok[i], kRequestsEach) << "connection " << i;
  EXPECT_EQ(login.Get("/_sim/stats").Json().at("requests_by_endpoint").at("Job"),
            kConnections * kRequestsEach);
}

TEST(CommservSimTest, ServesTlsWithTheGeneratedCertificate) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("sim-test-" + std::to_string(getpid()));
  SimProcess sim({"--quiet", "--cert-out", dir.string()});
  EXPECT_THAT(sim.url(), StartsWith("https://127.0.0.1:"));
  EXPECT_EQ(sim.cert(), (dir / "cert.pem").string());

  asio::io_context io_context;
  ssl::context tls(ssl::context::tls_client);
  tls.load_verify_file(sim.cert());
  beast::ssl_stream<beast::tcp_stream> stream(io_context, tls);
  stream.set_verify_mode(ssl::verify_peer);
  stream.set_verify_callback(ssl::host_name_verification("localhost"));
  ASSERT_TRUE(SSL_set_tlsext_host_name(stream.native_handle(), "localhost"));
  beast::get_lowest_layer(stream).connect(
      tcp::endpoint(asio::ip::address_v4::loopback(), sim.port()));
  stream.handshake(ssl::stream_base::client);
  EXPECT_GE(SSL_version(stream.native_handle()), TLS1_2_VERSION);

  auto request = MakeRequest(http::verb::post, std::string(kBase) + "/Login",
                             LoginBody("admin", "YWRtaW4="), {});
  http::write(stream, request);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(stream, buffer, response);
  EXPECT_THAT(response.body(), HasSubstr("\"token\":\"QSDK "));
  std::filesystem::remove_all(dir);
}

TEST(CommservSimTest, SeededHistoryIsPagedAndBoundedByTheLookupTime) {
  SimProcess sim({"--plain", "--quiet"});
  Client client(sim.port());
  const Headers auth = LogIn(client);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  json history = json::array();
  for (int day = 1; day <= 5; ++day) {
    history.push_back({{"start", now - day * 86400}, {"end", now - day * 86400 + 600}});
  }
  history.push_back({{"start", now - 3600},
                     {"end", now - 3000},
                     {"level", "Differential"},
                     {"status", "Failed"},
                     {"reason", "Error Code: [19:857] Description: no space"}});
  const Answer seeded = client.Post("/_sim/history", history.dump());
  ASSERT_EQ(seeded.status(), 200u) << seeded.response.body();
  EXPECT_EQ(seeded.Json().at("job_ids"), json::parse("[2100,2101,2102,2103,2104,2105]"));

  const std::string list = std::string(kBase) + "/Job?jobCategory=All&jobFilter=CSDRBKP";
  const json week = client.Get(list + "&completedJobLookupTime=604800", auth).Json();
  EXPECT_EQ(week.at("totalRecordsWithoutPaging"), 6);
  const json first_page =
      client.Get(list + "&completedJobLookupTime=604800", {auth[0], {"limit", "4"}}).Json();
  ASSERT_EQ(first_page.at("jobs").size(), 4u);
  const json failed = first_page.at("jobs").at(0).at("jobSummary");
  EXPECT_EQ(failed.at("jobId"), 2105);
  EXPECT_EQ(failed.at("status"), "Failed");
  EXPECT_EQ(failed.at("backupLevelName"), "Differential");
  EXPECT_EQ(failed.at("pendingReason"), "Error Code: [19:857] Description: no space");
  EXPECT_EQ(failed.at("jobStartTime"), now - 3600);
  EXPECT_EQ(failed.at("jobEndTime"), now - 3000);
  const json second_page =
      client
          .Get(list + "&completedJobLookupTime=604800", {auth[0], {"limit", "4"}, {"offset", "4"}})
          .Json();
  EXPECT_EQ(second_page.at("totalRecordsWithoutPaging"), 6);
  ASSERT_EQ(second_page.at("jobs").size(), 2u);
  EXPECT_EQ(second_page.at("jobs").at(1).at("jobSummary").at("jobId"), 2104);  // 5 days ago.
  // About 28 hours back: the failed differential and yesterday's full.
  EXPECT_EQ(client.Get(list + "&completedJobLookupTime=100000", auth)
                .Json()
                .at("totalRecordsWithoutPaging"),
            2);

  const Answer future =
      client.Post("/_sim/history", json{{"start", now}, {"end", now + 3600}}.dump());
  EXPECT_EQ(future.status(), 400u);
  EXPECT_EQ(future.Json().at("error"), "end lies in the future");
  EXPECT_EQ(client.Post("/_sim/history", R"([{"start": 1}])").status(), 400u);
}

TEST(CommservSimTest, TheDrScheduleStartsBackupsNobodyPosted) {
  SimProcess sim({"--plain", "--quiet", "--dr-schedule", "300ms", "--job-duration-ms", "100"});
  Client client(sim.port());
  const Headers auth = LogIn(client);
  const std::string list =
      std::string(kBase) + "/Job?jobCategory=All&jobFilter=CSDRBKP&completedJobLookupTime=3600";
  json jobs;
  for (int i = 0; i < 200; ++i) {
    jobs = client.Get(list, auth).Json();
    if (jobs.at("totalRecordsWithoutPaging").get<int>() >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(jobs.at("totalRecordsWithoutPaging").get<int>(), 2);
  EXPECT_EQ(jobs.at("jobs").back().at("jobSummary").at("backupLevelName"), "Full");
  const json stats = client.Get("/_sim/stats").Json();
  EXPECT_GE(stats.at("scheduled_starts").get<int>(), 2);
  EXPECT_EQ(stats.at("drbackup_posts"), 0);
  EXPECT_THROW(SimProcess({"--plain", "--quiet", "--dr-schedule", "daily"}), std::runtime_error);
}

TEST(CommservSimTest, DrOptionsAnswerTheDefaultOrWhatTheAdminApiSet) {
  SimProcess sim({"--plain", "--quiet"});
  Client client(sim.port());
  const Headers auth = LogIn(client);
  const std::string options = std::string(kBase) + "/Commcell/DRBackup/Options";
  EXPECT_EQ(client.Get(options).status(), 401u);
  const Answer standard = client.Get(options, auth);
  ASSERT_EQ(standard.status(), 200u);
  EXPECT_EQ(standard.response[http::field::content_type], "application/json");
  const json properties = standard.Json().at("properties");
  EXPECT_EQ(properties.at("DRDumpLocation"), "C:\\Program Files\\Commvault\\DR");
  EXPECT_EQ(properties.at("UseLocalDrive"), 1);
  EXPECT_EQ(properties.at("UseNetworkShare"), 0);
  EXPECT_EQ(properties.at("DRNumFulls"), 5);
  EXPECT_EQ(properties.at("uploadBackupMetadataToCloud"), false);

  // Quirks: no wrapper, quoted numbers, booleans for flags.
  const json quirky = {
      {"DRDumpLocation", "\\\\nas01\\dr"}, {"UseNetworkShare", true}, {"DRNumFulls", "7"}};
  ASSERT_EQ(client.Post("/_sim/dr-options", json{{"body", quirky}}.dump()).status(), 200u);
  EXPECT_EQ(client.Get(options, auth).Json(), quirky);
  ASSERT_EQ(client.Post("/_sim/dr-options", R"({"body": "{not json"})").status(), 200u);
  EXPECT_EQ(client.Get(options, auth).response.body(), "{not json");

  ASSERT_EQ(client.Post("/_sim/dr-options", R"({"http_status": 404})").status(), 200u);
  EXPECT_EQ(client.Get(options, auth).status(), 404u);
  EXPECT_EQ(client.Get("/_sim/dr-options").Json().at("http_status"), 404);
  EXPECT_EQ(client.Post("/_sim/dr-options", R"({"http_status": 7})").status(), 400u);

  ASSERT_EQ(client.Post("/_sim/reset", "").status(), 200u);
  EXPECT_EQ(client.Get(options, auth).Json().at("properties").at("DRNumFulls"), 5);
  // Faults name the endpoint DROptions.
  ASSERT_EQ(client
                .Post("/_sim/faults", R"({"endpoint": "DROptions", "action": "status",
                                            "http_status": 503})")
                .status(),
            200u);
  EXPECT_EQ(client.Get(options, auth).status(), 503u);
  EXPECT_EQ(client.Get(options, auth).status(), 200u);
}

}  // namespace
