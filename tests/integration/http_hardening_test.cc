// The HTTP/JSON port against a hostile network client, end to end (a real drgate in tokens mode in
// front of commserv-sim): header values gRPC cannot carry (they used to abort drgate before
// authentication, and gRPC logged the token), clients that hoard connections or watch streams,
// a request id reused for another backup, loose JSON, malformed framing, and a body too large
// for the limit sent by a client that keeps sending.

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using nlohmann::json;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr char kOperatorToken[] = "operator-TOKEN-9a1c3e5f7b2d4680";
constexpr char kViewerToken[] = "viewer-TOKEN-1b3d5f7a9c2e4068";
// Never valid, and never allowed in a log line: sent inside the hostile header values.
constexpr char kCanary[] = "CANARY-f00dfeed-7e3a";

// One raw HTTP exchange from `from` (a loopback address), for bytes no client library sends.
class RawClient {
 public:
  RawClient(int port, const std::string& from = "127.0.0.1") : socket_(io_) {
    socket_.open(tcp::v4());
    socket_.bind({asio::ip::make_address(from), 0});
    socket_.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    timeval tv{10, 0};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void Send(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }
  // Everything until the server closes (or 10 s pass).
  std::string ReadToEnd() {
    std::string out;
    boost::system::error_code ec;
    asio::read(socket_, asio::dynamic_buffer(out), ec);
    return out;
  }
  // The response head (status line and headers).
  std::string ReadHead() {
    std::string out;
    boost::system::error_code ec;
    asio::read_until(socket_, asio::dynamic_buffer(out), "\r\n\r\n", ec);
    return out;
  }
  // Whether the server has closed this connection (EOF or reset), without waiting.
  bool ClosedByServer() {
    char byte;
    const ssize_t n = recv(socket_.native_handle(), &byte, 1, MSG_DONTWAIT | MSG_PEEK);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
};

// "HTTP/1.1 401 Unauthorized..." -> 401; 0 when there is no status line.
int StatusOf(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return 0;
  return std::stoi(response.substr(9, 3));
}

std::string BodyOf(const std::string& response) {
  const auto at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

std::string ReasonOf(const std::string& response) {
  const json body = json::parse(BodyOf(response), nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return "";
  for (const auto& d : body.value("details", json::array())) {
    if (d.value("@type", "") == "type.googleapis.com/google.rpc.ErrorInfo") {
      return d.value("reason", "");
    }
  }
  return "";
}

class HttpHardeningTest : public ::testing::Test {
 protected:
  void Start(const std::string& http_extra = "", const std::string& metrics_extra = "") {
    sim_ = std::make_unique<Sim>(dir_, std::vector<std::string>{"--job-duration-ms", "600000"});
    dir_.Write("password", "s3cret\n");
    dir_.Write("tokens.yaml",
               "tokens:\n  - {sha256: " + Sha256Hex(kOperatorToken) +
                   ", identity: ci, roles: [operator]}\n  - {sha256: " + Sha256Hex(kViewerToken) +
                   ", identity: alice, roles: [viewer]}\n");
    const std::string yaml =
        "registry: {path: state/drgate.db}\n"
        "http: {listen: 127.0.0.1:0" +
        http_extra + "}\n" + (metrics_extra.empty() ? "" : "metrics: {" + metrics_extra + "}\n") +
        "tracking: {poll_interval: 200ms}\n"
        "auth: {mode: tokens, tokens_file: tokens.yaml,\n"
        "       rate_limit: {triggers_per_minute: 60, burst: 20}}\n"
        "commcells:\n" +
        sim_->CommCellYaml("cs1", "    request_timeout: 10s\n");
    log_path_ = dir_.File("drgate.stderr");
    try {
      // debug: the canary must be in no line drgate (or gRPC through it) writes at any level.
      drgate_ = std::make_unique<Drgate>(dir_.Write("drgate.yaml", yaml), "debug", log_path_);
    } catch (const std::exception& e) {
      FAIL() << e.what() << "\n" << ReadAll(log_path_);
    }
    const std::string url = drgate_->http_url();
    http_port_ = std::stoi(url.substr(url.rfind(':') + 1));
    const std::string& metrics = drgate_->metrics_url();
    metrics_port_ = std::stoi(metrics.substr(metrics.rfind(':') + 1));
  }

  // One request on its own connection; the whole answer.
  std::string Exchange(const std::string& request, const std::string& from = "127.0.0.1") {
    RawClient client(http_port_, from);
    client.Send(request);
    return client.ReadToEnd();
  }
  static std::string Get(const std::string& target, const std::string& headers) {
    return "GET " + target + " HTTP/1.1\r\nHost: drgate\r\n" + headers +
           "Connection: close\r\n\r\n";
  }
  static std::string Post(const std::string& target, const std::string& headers,
                          const std::string& body) {
    return "POST " + target + " HTTP/1.1\r\nHost: drgate\r\n" + headers +
           "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body;
  }
  static std::string Auth(const std::string& token = kOperatorToken) {
    return "Authorization: Bearer " + token + "\r\n";
  }
  // An authenticated call answers, and how long it took.
  std::chrono::milliseconds TimedCommCells(const std::string& from = "127.0.0.1") {
    const auto start = std::chrono::steady_clock::now();
    const std::string answer = Exchange(Get("/v1/commcells", Auth()), from);
    EXPECT_EQ(StatusOf(answer), 200) << answer;
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  }
  std::string TriggerFull(const std::string& key) {
    const std::string answer =
        Exchange(Post("/v1/commcells/cs1/backups", Auth() + "Idempotency-Key: " + key + "\r\n",
                      R"({"backupType": "BACKUP_TYPE_FULL"})"));
    EXPECT_EQ(StatusOf(answer), 200) << answer;
    return json::parse(BodyOf(answer)).at("job").at("jobId");
  }

  TempDir dir_;
  std::unique_ptr<Sim> sim_;
  std::unique_ptr<Drgate> drgate_;
  std::string log_path_;
  int http_port_ = 0;
  int metrics_port_ = 0;
};

// Each value once inside Authorization (around it, the canary token), Idempotency-Key and
// grpc-timeout (in the middle: HTTP strips white space at a value's ends): refused before gRPC,
// drgate keeps serving, the canary is in no log line.
TEST_F(HttpHardeningTest, HeaderValuesGrpcCannotCarryAreRefusedAndNeverLogged) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::vector<std::pair<std::string, std::string>> bad = {{"tab", "\t"},
                                                                {"UTF-8", "\xc3\xa9"},
                                                                {"high byte", "\xff"},
                                                                {"control", "\x01"},
                                                                {"DEL", "\x7f"}};
  for (const auto& [what, bytes] : bad) {
    SCOPED_TRACE(what);
    // Authorization: a 401 as a token matching none. (A control byte or DEL is not even valid
    // HTTP: the parser refuses it with a 400 first.)
    const std::string auth = Exchange(
        Get("/v1/jobs", "Authorization: Bearer " + std::string(kCanary) + bytes + "value\r\n"));
    if (what == "tab" || what == "UTF-8" || what == "high byte") {
      EXPECT_EQ(StatusOf(auth), 401) << auth;
      EXPECT_EQ(ReasonOf(auth), "INVALID_TOKEN") << auth;
    } else {
      EXPECT_TRUE(StatusOf(auth) == 400 || StatusOf(auth) == 401) << auth;
    }
    EXPECT_EQ(auth.find(kCanary), std::string::npos) << auth;

    const std::string key = Exchange(Post("/v1/commcells/cs1/backups",
                                          Auth() + "Idempotency-Key: key" + bytes + "end\r\n",
                                          R"({"backupType": "BACKUP_TYPE_FULL"})"));
    EXPECT_EQ(StatusOf(key), 400) << key;
    if (what == "tab" || what == "UTF-8" || what == "high byte") {
      EXPECT_EQ(ReasonOf(key), "INVALID_REQUEST_ID") << key;
      EXPECT_NE(BodyOf(key).find("Idempotency-Key"), std::string::npos) << key;
    }

    const std::string timeout =
        Exchange(Get("/v1/jobs", Auth() + "grpc-timeout: 3" + bytes + "S\r\n"));
    EXPECT_EQ(StatusOf(timeout), 400) << timeout;
    if (what == "tab" || what == "UTF-8" || what == "high byte") {
      EXPECT_EQ(ReasonOf(timeout), "INVALID_HEADER") << timeout;
      EXPECT_NE(BodyOf(timeout).find("grpc-timeout"), std::string::npos) << timeout;
    }
  }
  // Still serving, and nothing was sent upstream.
  EXPECT_LT(TimedCommCells(), std::chrono::seconds(5));
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), 0);
  const std::string log = ReadAll(log_path_);
  EXPECT_NE(log.find("\"level\""), std::string::npos) << "no log lines at all";
  EXPECT_EQ(log.find(kCanary), std::string::npos) << log;
}

// 300 idle connections from one address and 300 watch streams of one caller (from another) take
// neither the port nor its capacity from everybody else.
TEST_F(HttpHardeningTest, ConnectionAndStreamHoardersDoNotLockOthersOut) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string job = TriggerFull("watched-job");

  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 300; ++i)
    idle.push_back(std::make_unique<RawClient>(http_port_, "127.0.0.2"));

  // Past its 32 streams (http.max_watch_streams_per_caller) the caller is answered 429; once its
  // address holds 128 connections (the streams, and the refused ones while they linger), the
  // rest are closed as they are accepted, unanswered.
  std::vector<std::unique_ptr<RawClient>> watchers;
  int streaming = 0;
  int too_many = 0;
  int unanswered = 0;
  for (int i = 0; i < 300; ++i) {
    auto w = std::make_unique<RawClient>(http_port_, "127.0.0.3");
    w->Send(Get("/v1/commcells/cs1/jobs/" + job + ":watch", Auth(kViewerToken)));
    const std::string head = w->ReadHead();
    if (StatusOf(head) == 200) {
      ++streaming;
    } else if (StatusOf(head) == 429) {
      EXPECT_EQ(ReasonOf(head + w->ReadToEnd()), "TOO_MANY_STREAMS");
      ++too_many;
    } else {
      EXPECT_EQ(head, "");
      ++unanswered;
    }
    watchers.push_back(std::move(w));
  }
  EXPECT_EQ(streaming, 32);
  EXPECT_GE(too_many, 1);
  EXPECT_EQ(streaming + too_many + unanswered, 300);

  // The idle hoarder holds its share of 128; the rest of its connections were closed at once.
  int closed = 0;
  EXPECT_TRUE(Eventually(
      [&] {
        closed = 0;
        for (auto& c : idle) closed += c->ClosedByServer();
        return closed == 300 - 128;
      },
      std::chrono::seconds(5)))
      << closed;

  EXPECT_LT(TimedCommCells("127.0.0.1"), std::chrono::seconds(1));
  // The refused watch streams' tokens were never echoed or logged either.
  EXPECT_EQ(ReadAll(log_path_).find(kViewerToken), std::string::npos);
}

// Near the cap, the connection idle longest makes room for a new one.
TEST_F(HttpHardeningTest, AFullPortClosesItsLongestIdleConnectionForANewOne) {
  ASSERT_NO_FATAL_FAILURE(Start(", max_connections: 8"));
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 8; ++i) {
    idle.push_back(std::make_unique<RawClient>(http_port_, "127.0.0.2"));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // an order of idleness
  }
  EXPECT_LT(TimedCommCells("127.0.0.1"), std::chrono::seconds(1));
  EXPECT_TRUE(Eventually([&] { return idle.front()->ClosedByServer(); }, std::chrono::seconds(5)));
  EXPECT_FALSE(idle.back()->ClosedByServer());
}

// The metrics port's probes survive 200 slow clients.
TEST_F(HttpHardeningTest, SlowClientsOnTheMetricsPortDoNotFailTheProbes) {
  ASSERT_NO_FATAL_FAILURE(Start());
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 200; ++i) {
    slow.push_back(std::make_unique<RawClient>(metrics_port_, "127.0.0.2"));
    slow.back()->Send("GET /metrics HTTP/1.1\r\nHost: x\r\n");  // and never the rest
  }
  const auto start = std::chrono::steady_clock::now();
  RawClient probe(metrics_port_, "127.0.0.1");
  probe.Send("GET /healthz HTTP/1.1\r\nHost: drgate\r\nConnection: close\r\n\r\n");
  const std::string answer = probe.ReadToEnd();
  EXPECT_EQ(StatusOf(answer), 200) << answer;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

// The same key with another backup type is refused on HTTP and gRPC, and only the first POST
// reaches the CommServe.
TEST_F(HttpHardeningTest, AReusedIdempotencyKeyWithAnotherBackupTypeIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string job = TriggerFull("nightly-2026-12-07");

  const std::string http =
      Exchange(Post("/v1/commcells/cs1/backups", Auth() + "Idempotency-Key: nightly-2026-12-07\r\n",
                    R"({"backupType": "BACKUP_TYPE_DIFFERENTIAL"})"));
  EXPECT_EQ(StatusOf(http), 400) << http;
  EXPECT_EQ(ReasonOf(http), "REQUEST_ID_REUSED") << http;
  EXPECT_NE(BodyOf(http).find("backup_type full"), std::string::npos) << http;

  v1::TriggerBackupRequest request;
  request.set_commcell("cs1");
  request.set_backup_type(v1::BACKUP_TYPE_DIFFERENTIAL);
  request.set_request_id("nightly-2026-12-07");
  v1::TriggerBackupResponse response;
  grpc::ClientContext context;
  context.AddMetadata("authorization", std::string("Bearer ") + kOperatorToken);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  const grpc::Status status = drgate_->stub().TriggerBackup(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(ErrorInfoOf(status).reason(), "REQUEST_ID_REUSED") << status.error_message();
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("field"), "backup_type");

  // The same parameters still answer the first job.
  EXPECT_EQ(TriggerFull("nightly-2026-12-07"), job);
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), 1);
}

TEST_F(HttpHardeningTest, LooseJsonIsRefusedNamingTheField) {
  ASSERT_NO_FATAL_FAILURE(Start());
  for (const auto& [body, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"backupType": "BACKUP_TYPE_FULL", "compression": "yes"})", "compression"},
           {R"({"backupType": "1"})", "backupType"},
           {R"({"backupType": "BACKUP_TYPE_FULL", "backupType": "BACKUP_TYPE_DIFFERENTIAL"})",
            "backupType"}}) {
    const std::string answer = Exchange(Post("/v1/commcells/cs1/backups", Auth(), body));
    EXPECT_EQ(StatusOf(answer), 400) << body << answer;
    EXPECT_NE(BodyOf(answer).find("body: " + field + ": "), std::string::npos) << answer;
  }
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), 0);
}

TEST_F(HttpHardeningTest, MalformedFramingIsAnsweredAsTheRfcAsks) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string auth = Auth();
  const std::vector<std::tuple<std::string, std::string, int>> cases = {
      {"both lengths",
       "POST /v1/commcells/cs1/backups HTTP/1.1\r\nHost: d\r\n" + auth +
           "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"bad chunk size",
       "POST /v1/commcells/cs1/backups HTTP/1.1\r\nHost: d\r\n" + auth +
           "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
       400},
      {"bare LF",
       "GET /v1/commcells HTTP/1.1\nHost: d\n" + auth.substr(0, auth.size() - 2) + "\n\n", 400},
      {"two lengths",
       "POST /v1/commcells/cs1/backups HTTP/1.1\r\nHost: d\r\n" + auth +
           "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
       400},
      {"unknown coding",
       "POST /v1/commcells/cs1/backups HTTP/1.1\r\nHost: d\r\n" + auth +
           "Transfer-Encoding: gzip\r\n\r\n{}",
       501},
      {"no Host", "GET /v1/commcells HTTP/1.1\r\n" + auth + "\r\n", 400},
      {"HTTP/1.0 needs no Host", "GET /v1/commcells HTTP/1.0\r\n" + auth + "\r\n", 200},
  };
  for (const auto& [what, request, code] : cases) {
    const std::string answer = Exchange(request);
    EXPECT_EQ(StatusOf(answer), code) << what << ": " << answer;
  }
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), 0);
  EXPECT_LT(TimedCommCells(), std::chrono::seconds(5));
}

// A client still sending a body past the limit reads the 413 (curl and Python's urllib, as
// operators' scripts use them), instead of a broken pipe.
TEST_F(HttpHardeningTest, AClientSendingTooLargeABodyReadsThe413) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string body_file = dir_.Write("big.json", std::string(2 << 20, ' ') + "{}");
  const std::string url =
      "http://127.0.0.1:" + std::to_string(http_port_) + "/v1/commcells/cs1/backups";
  const CommandResult curl =
      RunCommand({"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                  std::string("Authorization: Bearer ") + kOperatorToken, "-H",
                  "Content-Type: application/json", "--data-binary", "@" + body_file, url},
                 std::chrono::seconds(30));
  EXPECT_EQ(curl.exit_code, 0);
  EXPECT_EQ(curl.out, "413");

  const std::string script =
      "import sys, urllib.request, urllib.error\n"
      "req = urllib.request.Request(sys.argv[1], data=open(sys.argv[2], 'rb').read(),\n"
      "    headers={'Authorization': 'Bearer ' + sys.argv[3], 'Content-Type': "
      "'application/json'})\n"
      "try:\n"
      "    urllib.request.urlopen(req, timeout=20)\n"
      "    print('no error')\n"
      "except urllib.error.HTTPError as e:\n"
      "    print(e.code)\n";
  const CommandResult python = RunCommand(
      {"/usr/bin/python3", "-c", script, url, body_file, kOperatorToken}, std::chrono::seconds(30));
  EXPECT_EQ(python.exit_code, 0);
  EXPECT_EQ(python.out, "413\n");
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), 0);
}

}  // namespace
}  // namespace drgate::testing
