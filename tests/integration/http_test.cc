// The HTTP/JSON face end to end: a real drgate (auth.mode: tokens, http.listen) in front of
// commserv-sim, each route called over HTTP and the same call over gRPC.

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/fakes/test_pki.h"
#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using nlohmann::json;

constexpr char kOperatorToken[] = "operator-TOKEN-5d1f0a7c3e9b2468";
constexpr char kViewerToken[] = "viewer-TOKEN-7f3a9c1e5b2d4086";
constexpr char kScopedToken[] = "scoped-TOKEN-2c4e6a8b0d1f3579";  // a viewer of cs1 only

std::string Bearer(const std::string& token) {
  return "Bearer " + token;
}

class HttpTest : public ::testing::Test {
 protected:
  void Start(const std::string& auth, const std::string& tokens = "",
             std::vector<std::string> sim_args = {},
             const std::string& http = "{listen: 127.0.0.1:0}") {
    sim_ = std::make_unique<Sim>(dir_, std::move(sim_args));
    dir_.Write("password", "s3cret\n");
    if (!tokens.empty()) dir_.Write("tokens.yaml", tokens);
    std::string yaml =
        "registry: {path: state/drgate.db}\n"
        "http: " +
        http +
        "\n"
        "tracking: {poll_interval: 200ms}\n" +
        auth + "commcells:\n" + sim_->CommCellYaml("cs1", "    request_timeout: 10s\n");
    log_path_ = dir_.File("drgate.stderr");
    try {
      drgate_ = std::make_unique<Drgate>(dir_.Write("drgate.yaml", yaml), "info", log_path_);
    } catch (const std::exception& e) {
      FAIL() << e.what() << "\n" << ReadAll(log_path_);
    }
    if (http.find("tls:") == std::string::npos) {
      http_ = std::make_unique<HttpClient>(drgate_->http_url());
    }
  }
  // `burst` write calls at once per caller, then 6 a minute.
  void StartWithTokens(int burst) {
    Start(
        "auth:\n  mode: tokens\n  tokens_file: tokens.yaml\n"
        "  rate_limit: {triggers_per_minute: 6, burst: " +
            std::to_string(burst) + "}\n",
        "tokens:\n"
        "  - {sha256: " +
            Sha256Hex(kOperatorToken) +
            ", identity: ci, roles: [operator]}\n"
            "  - {sha256: " +
            Sha256Hex(kViewerToken) +
            ", identity: alice, roles: [viewer]}\n"
            "  - {sha256: " +
            Sha256Hex(kScopedToken) + ", identity: bob, roles: [viewer], commcells: [cs1]}\n");
  }
  commserv::HttpResponse Call(const std::string& method, const std::string& target,
                              const std::string& body = "",
                              std::map<std::string, std::string> headers = {},
                              const std::string& token = kOperatorToken) {
    if (!token.empty()) headers["Authorization"] = Bearer(token);
    return http_->Call(method, target, body, headers);
  }
  json JsonOf(const commserv::HttpResponse& r) { return json::parse(r.body); }
  // The ErrorInfo reason of an error body.
  std::string ReasonOf(const commserv::HttpResponse& r) {
    const json body = JsonOf(r);
    for (const auto& d : body.value("details", json::array())) {
      if (d.value("@type", "") == "type.googleapis.com/google.rpc.ErrorInfo") {
        return d.value("reason", "");
      }
    }
    return "";
  }
  // The JSON objects of a newline-delimited stream.
  static std::vector<json> Frames(const std::string& body) {
    std::vector<json> out;
    std::istringstream in(body);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.push_back(json::parse(line));
    }
    return out;
  }
  double Metric(const std::string& series) { return MetricValue(drgate_->Metrics(), series); }
  grpc::ClientContext* Context(grpc::ClientContext& ctx,
                               const std::string& token = kOperatorToken) {
    ctx.AddMetadata("authorization", Bearer(token));
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return &ctx;
  }

  TempDir dir_;
  std::unique_ptr<Sim> sim_;
  std::unique_ptr<Drgate> drgate_;
  std::unique_ptr<HttpClient> http_;
  std::string log_path_;
};

TEST_F(HttpTest, EveryUnaryRouteAnswersWhatGrpcAnswers) {
  ASSERT_NO_FATAL_FAILURE(StartWithTokens(/*burst=*/10));
  // TriggerBackup over HTTP, then the same request id over gRPC: one job, found by both.
  auto posted = Call("POST", "/v1/commcells/cs1/backups", R"({"backupType": "BACKUP_TYPE_FULL"})",
                     {{"Idempotency-Key", "upgrade-42"}});
  ASSERT_EQ(posted.status, 200) << posted.body;
  EXPECT_EQ(posted.content_type, "application/json");
  const json job = JsonOf(posted).at("job");
  const std::string id = job.at("jobId");
  EXPECT_EQ(job.at("requestId"), "upgrade-42");
  EXPECT_EQ(job.at("requestedBy"), "ci");
  EXPECT_EQ(JsonOf(posted).at("deduplicated"), false);
  {
    v1::TriggerBackupRequest req;
    req.set_commcell("cs1");
    req.set_backup_type(v1::BACKUP_TYPE_FULL);
    req.set_request_id("upgrade-42");
    v1::TriggerBackupResponse out;
    grpc::ClientContext ctx;
    ASSERT_TRUE(drgate_->stub().TriggerBackup(Context(ctx), req, &out).ok());
    EXPECT_TRUE(out.deduplicated());
    EXPECT_EQ(out.job().job_id(), id);
  }
  EXPECT_EQ(sim_->admin().Json("GET", "/_sim/stats").at("drbackup_posts"), 1);

  // GetJob.
  auto got = Call("GET", "/v1/commcells/cs1/jobs/" + id);
  ASSERT_EQ(got.status, 200) << got.body;
  {
    v1::GetJobRequest req;
    req.set_commcell("cs1");
    req.set_job_id(id);
    v1::Job out;
    grpc::ClientContext ctx;
    ASSERT_TRUE(drgate_->stub().GetJob(Context(ctx), req, &out).ok());
    EXPECT_EQ(JsonOf(got).at("jobId"), out.job_id());
    EXPECT_EQ(JsonOf(got).at("requestId"), out.request_id());
    EXPECT_EQ(JsonOf(got).at("backupType"), v1::BackupType_Name(out.backup_type()));
    EXPECT_EQ(JsonOf(got).at("origin"), v1::JobOrigin_Name(out.origin()));
  }

  // ListJobs, on both bindings, with query parameters.
  for (const std::string target :
       {"/v1/jobs?pageSize=10", "/v1/commcells/cs1/jobs?pageSize=10&backupType=BACKUP_TYPE_FULL"}) {
    auto listed = Call("GET", target);
    ASSERT_EQ(listed.status, 200) << target << ": " << listed.body;
    const json jobs = JsonOf(listed).at("jobs");
    ASSERT_EQ(jobs.size(), 1u) << listed.body;
    EXPECT_EQ(jobs[0].at("jobId"), id);
  }
  auto none = Call("GET", "/v1/commcells/cs1/jobs?backupType=BACKUP_TYPE_DIFFERENTIAL");
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(JsonOf(none).value("jobs", json::array()).size(), 0u);

  // ListCommCells.
  auto cells = Call("GET", "/v1/commcells");
  ASSERT_EQ(cells.status, 200) << cells.body;
  ASSERT_EQ(JsonOf(cells).at("commcells").size(), 1u);
  EXPECT_EQ(JsonOf(cells).at("commcells")[0].at("name"), "cs1");

  // EnsureRecentBackup: the running full is recent enough.
  auto ensured = Call("POST", "/v1/commcells/cs1/backups:ensureRecent",
                      R"({"backupType": "BACKUP_TYPE_FULL", "maxAge": "7200s"})");
  ASSERT_EQ(ensured.status, 200) << ensured.body;
  EXPECT_EQ(JsonOf(ensured).at("job").at("jobId"), id);
  EXPECT_EQ(JsonOf(ensured).at("deduplicated"), true);
  EXPECT_EQ(sim_->admin().Json("GET", "/_sim/stats").at("drbackup_posts"), 1);

  // CancelJob.
  auto cancelled = Call("POST", "/v1/commcells/cs1/jobs/" + id + ":cancel");
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_EQ(JsonOf(cancelled).at("jobId"), id);

  // WatchJob: the cancelled job's stream ends at once with its final state.
  auto watched = Call("GET", "/v1/commcells/cs1/jobs/" + id + ":watch");
  ASSERT_EQ(watched.status, 200) << watched.body;
  EXPECT_EQ(watched.content_type, "application/x-ndjson");
  const auto frames = Frames(watched.body);
  ASSERT_FALSE(frames.empty()) << watched.body;
  EXPECT_EQ(frames.back().at("result").at("jobId"), id);
}

TEST_F(HttpTest, ErrorsHaveTheHttpStatusAndReasonOfTheirGrpcCode) {
  ASSERT_NO_FATAL_FAILURE(StartWithTokens(/*burst=*/3));
  struct Case {
    std::string name, method, target, body, token;
    int status;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"no token", "GET", "/v1/jobs", "", "", 401, "MISSING_CREDENTIALS"},
      {"wrong token", "GET", "/v1/jobs", "", "not-a-token", 401, "INVALID_TOKEN"},
      {"viewer triggers", "POST", "/v1/commcells/cs1/backups", "{}", kViewerToken, 403,
       "PERMISSION_DENIED"},
      {"unknown job", "GET", "/v1/commcells/cs1/jobs/424242", "", kOperatorToken, 404,
       "JOB_NOT_FOUND"},
      {"unknown commcell", "GET", "/v1/commcells/nope/jobs/1", "", kOperatorToken, 404,
       "COMMCELL_NOT_FOUND"},
      {"unknown field", "POST", "/v1/commcells/cs1/backups", R"({"colour": 1})", kOperatorToken,
       400, "INVALID_ARGUMENT"},
      {"bad page size", "GET", "/v1/jobs?pageSize=ten", "", kOperatorToken, 400,
       "INVALID_ARGUMENT"},
      {"limited to some CommCells, names none", "GET", "/v1/jobs", "", kScopedToken, 403,
       "COMMCELL_NOT_ALLOWED"},
      {"limited to some CommCells, names its own", "GET", "/v1/commcells/cs1/jobs", "",
       kScopedToken, 200, ""},
  };
  for (const Case& c : cases) {
    auto r = Call(c.method, c.target, c.body, {}, c.token);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
    EXPECT_EQ(ReasonOf(r), c.reason) << c.name << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/json") << c.name;
  }
  auto unknown = Call("POST", "/v1/commcells/cs1/backups", R"({"colour": 1})");
  EXPECT_NE(JsonOf(unknown).at("message").get<std::string>().find("colour"), std::string::npos);

  // The rate limit: a burst of 3 triggers, then 429 with Retry-After from the RetryInfo.
  int limited = 0;
  for (int i = 0; i < 4; ++i) {
    auto r = Call("POST", "/v1/commcells/cs1/backups", R"({"backupType": "BACKUP_TYPE_FULL"})",
                  {{"Idempotency-Key", "burst-" + std::to_string(i)}});
    if (r.status == 429) {
      ++limited;
      EXPECT_EQ(ReasonOf(r), "RATE_LIMITED") << r.body;
      ASSERT_TRUE(r.headers.count("retry-after")) << r.body;
      EXPECT_GE(std::stoi(r.headers.at("retry-after")), 1);
    }
  }
  EXPECT_EQ(limited, 1);

  // No token reaches an answer or the log.
  for (const Case& c : cases) {
    auto r = Call(c.method, c.target, c.body, {}, c.token);
    EXPECT_EQ(r.body.find(kOperatorToken), std::string::npos);
    EXPECT_EQ(r.body.find(kViewerToken), std::string::npos);
  }
  const std::string log = ReadAll(log_path_);
  EXPECT_EQ(log.find(kOperatorToken), std::string::npos);
  EXPECT_EQ(log.find(kViewerToken), std::string::npos);
}

TEST_F(HttpTest, ManyConcurrentTriggersWithOneIdempotencyKeyPostOnce) {
  ASSERT_NO_FATAL_FAILURE(Start("auth: {mode: insecure}\n"));
  constexpr int kThreads = 100;
  constexpr int kPerThread = 10;  // 1,000 triggers
  const std::string url = drgate_->http_url();
  std::atomic<int> ok{0};
  std::set<std::string> ids;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      HttpClient client(url);
      for (int i = 0; i < kPerThread; ++i) {
        auto r =
            client.Call("POST", "/v1/commcells/cs1/backups",
                        R"({"backupType": "BACKUP_TYPE_FULL"})", {{"Idempotency-Key", "one-key"}});
        if (r.status != 200) continue;
        ++ok;
        std::lock_guard lock(mu);
        ids.insert(json::parse(r.body).at("job").at("jobId").get<std::string>());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(sim_->admin().Json("GET", "/_sim/stats").at("drbackup_posts"), 1);
}

TEST_F(HttpTest, AWatchStreamsEachChangeAndEndsAfterTheFinalState) {
  ASSERT_NO_FATAL_FAILURE(StartWithTokens(/*burst=*/10));
  // (Re)started with a job that runs long enough to be seen queued or running first.
  drgate_.reset();
  sim_.reset();
  ASSERT_NO_FATAL_FAILURE(Start(
      "auth:\n  mode: tokens\n  tokens_file: tokens.yaml\n",
      "tokens:\n  - {sha256: " + Sha256Hex(kOperatorToken) + ", identity: ci, roles: [operator]}\n",
      {"--job-duration-ms", "1500"}));
  for (const std::string outcome : {"Completed", "Failed"}) {
    SCOPED_TRACE(outcome);
    auto posted =
        Call("POST", "/v1/commcells/cs1/backups", R"({"backupType": "BACKUP_TYPE_FULL"})");
    ASSERT_EQ(posted.status, 200) << posted.body;
    const std::string id = JsonOf(posted).at("job").at("jobId");
    sim_->admin().Json("POST", "/_sim/jobs/" + id, R"({"outcome": ")" + outcome + R"("})");

    auto watched = Call("GET", "/v1/commcells/cs1/jobs/" + id + ":watch");
    ASSERT_EQ(watched.status, 200) << watched.body;
    EXPECT_EQ(watched.content_type, "application/x-ndjson");
    std::vector<std::string> states;
    for (const json& frame : Frames(watched.body)) {
      ASSERT_TRUE(frame.contains("result")) << frame.dump();
      EXPECT_EQ(frame.at("result").at("jobId"), id);
      const std::string state = frame.at("result").at("state");
      if (states.empty() || states.back() != state) states.push_back(state);
    }
    ASSERT_GE(states.size(), 2u) << watched.body;  // a change was streamed, not only the end
    EXPECT_EQ(states.back(), outcome == "Completed" ? "JOB_STATE_SUCCEEDED" : "JOB_STATE_FAILED");
    EXPECT_NE(states.front(), states.back());
  }
  // A job drgate does not know: an ordinary error answer, not a stream.
  auto unknown = Call("GET", "/v1/commcells/cs1/jobs/999999:watch");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(ReasonOf(unknown), "JOB_NOT_FOUND");
  // Without credentials: refused before anything is streamed.
  auto anonymous = Call("GET", "/v1/commcells/cs1/jobs/999999:watch", "", {}, "");
  EXPECT_EQ(anonymous.status, 401) << anonymous.body;

  // Counted as HTTP requests, not as gRPC calls.
  const std::string route = R"(route="GET /v1/commcells/{commcell}/jobs/{job_id}:watch")";
  EXPECT_EQ(Metric("drgate_http_requests_total{code=\"200\"," + route + "}"), 2);
  EXPECT_EQ(Metric("drgate_http_requests_total{code=\"404\"," + route + "}"), 1);
  EXPECT_EQ(Metric("drgate_http_requests_total{code=\"401\"," + route + "}"), 1);
  EXPECT_EQ(
      Metric(
          R"(grpc_server_started_total{grpc_method="WatchJob",grpc_service="drgate.v1.DrBackupService",grpc_type="server_stream"})"),
      0);
}

TEST_F(HttpTest, AClientThatHangsUpFreesItsWatcher) {
  ASSERT_NO_FATAL_FAILURE(Start("auth: {mode: insecure}\n", "", {"--job-duration-ms", "600000"}));
  auto posted = Call("POST", "/v1/commcells/cs1/backups", R"({"backupType": "BACKUP_TYPE_FULL"})");
  ASSERT_EQ(posted.status, 200) << posted.body;
  const std::string id = JsonOf(posted).at("job").at("jobId");

  // A raw connection, to hang up in the middle of the stream.
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  const auto colon = drgate_->http_url().rfind(':');
  socket.connect({boost::asio::ip::make_address("127.0.0.1"),
                  static_cast<unsigned short>(std::stoi(drgate_->http_url().substr(colon + 1)))});
  const std::string request =
      "GET /v1/commcells/cs1/jobs/" + id + ":watch HTTP/1.1\r\nHost: drgate\r\n\r\n";
  boost::asio::write(socket, boost::asio::buffer(request));
  std::string received;
  boost::asio::read_until(socket, boost::asio::dynamic_buffer(received), "}\n");
  EXPECT_NE(received.find("200 OK"), std::string::npos) << received;
  EXPECT_NE(received.find(R"({"result":{"jobId":")" + id), std::string::npos) << received;

  const std::string http_watchers = R"(drgate_watch_streams{protocol="http"})";
  EXPECT_EQ(Metric(http_watchers), 1);
  EXPECT_EQ(Metric(R"(drgate_watch_streams{protocol="grpc"})"), 0);
  socket.close();
  EXPECT_TRUE(Eventually([&] { return Metric(http_watchers) == 0; }, std::chrono::seconds(10)))
      << "the watcher outlived its client: " << Metric(http_watchers);
  EXPECT_EQ(
      Metric(
          R"(drgate_http_requests_total{code="499",route="GET /v1/commcells/{commcell}/jobs/{job_id}:watch"})"),
      1);
}

TEST_F(HttpTest, TheOpenApiDocumentIsServedWithoutCredentials) {
  ASSERT_NO_FATAL_FAILURE(StartWithTokens(/*burst=*/10));
  auto doc = Call("GET", "/v1/openapi.json", "", {}, /*token=*/"");
  ASSERT_EQ(doc.status, 200) << doc.body;
  EXPECT_EQ(doc.content_type, "application/json");
  const json openapi = JsonOf(doc);
  EXPECT_EQ(openapi.at("swagger"), "2.0");
  EXPECT_TRUE(openapi.at("paths").contains("/v1/commcells/{commcell}/backups"));
  EXPECT_TRUE(
      openapi.at("paths").at("/v1/commcells/{commcell}/jobs/{job_id}:watch").contains("get"));
  // Only GET: anything else there is an API call without a route.
  EXPECT_EQ(Call("POST", "/v1/openapi.json", "{}", {}, "").status, 404);
  EXPECT_EQ(Metric(R"(drgate_http_requests_total{code="200",route="GET /v1/openapi.json"})"), 1);
}

// One HTTPS request, with a client certificate when `client` is set (the harness's client sends
// none). Throws when the TLS handshake or the exchange fails.
commserv::HttpResponse HttpsCall(const std::string& url, const std::string& ca_file,
                                 const Issued* client, const std::string& method,
                                 const std::string& target, const std::string& body = "",
                                 const std::string& token = "", std::string* server_cn = nullptr) {
  namespace ssl = boost::asio::ssl;
  namespace http = boost::beast::http;
  boost::asio::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(ca_file);
  ctx.set_verify_mode(ssl::verify_peer);
  if (client != nullptr) {
    ctx.use_certificate(boost::asio::buffer(client->cert_pem), ssl::context::pem);
    ctx.use_private_key(boost::asio::buffer(client->key_pem), ssl::context::pem);
  }
  ssl::stream<boost::asio::ip::tcp::socket> stream(io, ctx);
  const auto colon = url.rfind(':');
  stream.next_layer().connect({boost::asio::ip::make_address("127.0.0.1"),
                               static_cast<unsigned short>(std::stoi(url.substr(colon + 1)))});
  stream.handshake(ssl::stream_base::client);
  if (server_cn != nullptr) {
    char cn[256] = {};
    X509_NAME_get_text_by_NID(
        X509_get_subject_name(SSL_get0_peer_certificate(stream.native_handle())), NID_commonName,
        cn, sizeof(cn));
    *server_cn = cn;
  }
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  commserv::HttpResponse out;
  out.status = static_cast<int>(res.result_int());
  out.body = res.body();
  return out;
}

TEST_F(HttpTest, HttpsWithClientCertificatesAuthenticatesAsGrpcDoes) {
  const Issued ca = Issue("drgate test CA", nullptr);
  const Issued foreign_ca = Issue("another CA", nullptr);
  const Issued server = ServerCert("drgate", ca);
  const Issued ops = ClientCert("ops-runner", ca, "DNS:ops.example.com");
  const Issued intruder = ClientCert("intruder", foreign_ca, "DNS:ops.example.com");
  dir_.Write("tls/ca.crt", ca.cert_pem);
  dir_.Write("tls/tls.crt", server.cert_pem);
  dir_.Write("tls/tls.key", server.key_pem);
  ASSERT_NO_FATAL_FAILURE(
      Start("auth:\n  mode: tokens\n  tokens_file: tokens.yaml\n",
            "tokens:\n"
            "  - {certificate: ops.example.com, identity: ops, roles: [operator]}\n"
            "  - {sha256: " +
                Sha256Hex(kViewerToken) + ", identity: alice, roles: [viewer]}\n",
            {},
            "{listen: 127.0.0.1:0, tls: {cert_file: tls/tls.crt, key_file: tls/tls.key, "
            "client_ca_file: tls/ca.crt, require_client_cert: false}}"));
  const std::string url = drgate_->http_url();
  const std::string ca_file = dir_.File("tls/ca.crt");
  const std::string trigger = R"({"backupType": "BACKUP_TYPE_FULL"})";

  // The certificate listed in the tokens file is the operator "ops".
  auto posted = HttpsCall(url, ca_file, &ops, "POST", "/v1/commcells/cs1/backups", trigger);
  ASSERT_EQ(posted.status, 200) << posted.body;
  EXPECT_EQ(JsonOf(posted).at("job").at("requestedBy"), "ops");
  // Without a certificate: a bearer token, with its own roles.
  EXPECT_EQ(HttpsCall(url, ca_file, nullptr, "GET", "/v1/commcells", "", kViewerToken).status, 200);
  auto viewer =
      HttpsCall(url, ca_file, nullptr, "POST", "/v1/commcells/cs1/backups", trigger, kViewerToken);
  EXPECT_EQ(viewer.status, 403) << viewer.body;
  auto nobody = HttpsCall(url, ca_file, nullptr, "POST", "/v1/commcells/cs1/backups", trigger);
  EXPECT_EQ(nobody.status, 401) << nobody.body;
  // A certificate of another CA does not get through the handshake.
  EXPECT_ANY_THROW(HttpsCall(url, ca_file, &intruder, "GET", "/v1/commcells"));
  // Plain HTTP on the HTTPS port gets no answer.
  EXPECT_ANY_THROW(HttpClient(url).Call("GET", "/v1/commcells"));

  // A gRPC caller cannot claim the certificate the gateway would forward.
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-drgate-gateway", std::string(64, 'a'));
  ctx.AddMetadata("x-drgate-gateway-certificate", "ops.example.com");
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::TriggerBackupRequest req;
  req.set_commcell("cs1");
  req.set_backup_type(v1::BACKUP_TYPE_FULL);
  v1::TriggerBackupResponse out;
  const grpc::Status forged = drgate_->stub().TriggerBackup(&ctx, req, &out);
  EXPECT_EQ(forged.error_code(), grpc::StatusCode::UNAUTHENTICATED) << forged.error_message();
}

TEST_F(HttpTest, RotatedCertificateFilesApplyToNewConnectionsWithoutARestart) {
  const Issued ca = Issue("drgate test CA", nullptr);
  dir_.Write("tls/ca.crt", ca.cert_pem);
  const Issued first = ServerCert("drgate-first", ca);
  dir_.Write("tls/tls.crt", first.cert_pem);
  dir_.Write("tls/tls.key", first.key_pem);
  ASSERT_NO_FATAL_FAILURE(Start("auth: {mode: insecure}\n", "", {},
                                "{listen: 127.0.0.1:0, tls: {cert_file: tls/tls.crt, key_file: "
                                "tls/tls.key, reload_interval: 1s}}"));
  const std::string url = drgate_->http_url();
  const std::string ca_file = dir_.File("tls/ca.crt");
  std::string cn;
  ASSERT_EQ(HttpsCall(url, ca_file, nullptr, "GET", "/v1/commcells", "", "", &cn).status, 200);
  EXPECT_EQ(cn, "drgate-first");

  // A broken certificate file is not used: the last good one stays.
  dir_.Write("tls/tls.crt", "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  ASSERT_EQ(HttpsCall(url, ca_file, nullptr, "GET", "/v1/commcells", "", "", &cn).status, 200);
  EXPECT_EQ(cn, "drgate-first");

  // Rotated (as cert-manager does): new connections get the new certificate.
  const Issued second = ServerCert("drgate-second", ca);
  dir_.Write("tls/tls.key", second.key_pem);
  dir_.Write("tls/tls.crt", second.cert_pem);
  EXPECT_TRUE(Eventually(
      [&] {
        try {
          return HttpsCall(url, ca_file, nullptr, "GET", "/v1/commcells", "", "", &cn).status ==
                     200 &&
                 cn == "drgate-second";
        } catch (const std::exception&) {
          return false;
        }
      },
      std::chrono::seconds(10)))
      << "still served: " << cn;
  EXPECT_NE(ReadAll(log_path_).find("http.tls: certificate files changed"), std::string::npos);
}

}  // namespace
}  // namespace drgate::testing
