#include "core/commserv/beast_transport.h"

#include <condition_variable>
#include <mutex>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/commserv/name_resolver.h"
#include "tests/core/transport/test_server.h"
#include "tests/fakes/manual_clock.h"
#include "tests/fakes/temp_dir.h"
#include "tests/fakes/test_pki.h"

namespace drgate::commserv {
namespace {

using drgate::testing::Issued;
using drgate::testing::SelfSigned;
using drgate::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::Reply;
using ::testing::StartsWith;
using testing::TestServer;
using namespace std::chrono_literals;

constexpr auto kWait = 5s;

// Runs the transports' io_context on two threads, as production does on small machines.
class BeastTransportTest : public ::testing::Test {
 protected:
  BeastTransportTest() : guard_(io_.get_executor()) {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~BeastTransportTest() override {
    guard_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  static Endpoint PlainEndpoint(unsigned short port, std::string host = "127.0.0.1") {
    Endpoint e;
    e.tls = false;
    e.host = std::move(host);
    e.port = std::to_string(port);
    e.base_path = "/commandcenter/api";
    return e;
  }
  static Endpoint TlsEndpoint(unsigned short port, std::string host) {
    Endpoint e = PlainEndpoint(port, std::move(host));
    e.tls = true;
    return e;
  }
  static TransportOptions FastOptions() {
    TransportOptions o;
    o.resolve_timeout = 2000ms;
    o.connect_timeout = 2000ms;
    o.handshake_timeout = 2000ms;
    o.write_timeout = 2000ms;
    o.read_timeout = 2000ms;
    return o;
  }

  std::unique_ptr<HttpTransport> Make(Endpoint endpoint, TransportOptions options) {
    StatusOr<std::unique_ptr<HttpTransport>> t =
        MakeBeastTransport(io_, std::move(endpoint), std::move(options));
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(t).value() : nullptr;
  }

  static HttpRequest Get(std::string target = "/commandcenter/api/Job") {
    HttpRequest r;
    r.method = "GET";
    r.target = std::move(target);
    return r;
  }

  // Sends and waits for the callback, failing the test when it does not come.
  static StatusOr<HttpResponse> SendAndWait(HttpTransport& transport, HttpRequest request) {
    auto promise = std::make_shared<std::promise<StatusOr<HttpResponse>>>();
    std::future<StatusOr<HttpResponse>> future = promise->get_future();
    transport.Send(std::move(request),
                   [promise](StatusOr<HttpResponse> r) { promise->set_value(std::move(r)); });
    if (future.wait_for(kWait) != std::future_status::ready) {
      ADD_FAILURE() << "callback not called within " << kWait.count() << " s";
      return Status(StatusCode::kUnknown, "no callback");
    }
    return future.get();
  }

  static void ExpectPhaseError(const StatusOr<HttpResponse>& result, const std::string& reason,
                               const std::string& phase, const std::string& request_sent) {
    ASSERT_FALSE(result.ok());
    const Status& s = result.status();
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_EQ(s.reason(), reason) << s.ToString();
    EXPECT_THAT(s.message(), StartsWith(phase + ": "));
    ASSERT_EQ(s.metadata().count("phase"), 1u);
    EXPECT_EQ(s.metadata().at("phase"), phase);
    ASSERT_EQ(s.metadata().count("request_sent"), 1u);
    EXPECT_EQ(s.metadata().at("request_sent"), request_sent);
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

Reply Ok(std::string body = "{}") {
  Reply r;
  r.body = std::move(body);
  return r;
}

unsigned short UnusedPort() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();  // closed on return: nobody listens there
}

TEST_F(BeastTransportTest, PlainHttpRoundTripCarriesRequestAndResponse) {
  TestServer server([](const testing::ReceivedRequest&) {
    Reply r;
    r.status = 201;
    r.content_type = "application/json; charset=utf-8";
    r.headers = {{"X-Custom-Header", "v1"}};
    r.body = R"({"jobIds":["42"]})";
    return r;
  });
  auto transport = Make(PlainEndpoint(server.port()), FastOptions());
  HttpRequest request;
  request.method = "POST";
  request.target = "/commandcenter/api/CommServ/DRBackup";
  request.headers = {{"Authtoken", "QSDK secret-token"},
                     {"Accept", "application/json"},
                     {"Content-Type", "application/json"}};
  request.body = R"({"isCompressionEnabled":true})";

  StatusOr<HttpResponse> result = SendAndWait(*transport, request);

  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, 201);
  EXPECT_EQ(result->content_type, "application/json; charset=utf-8");
  EXPECT_EQ(result->headers.at("x-custom-header"), "v1");
  EXPECT_EQ(result->headers.at("content-type"), "application/json; charset=utf-8");
  EXPECT_EQ(result->body, R"({"jobIds":["42"]})");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& got = requests[0];
  EXPECT_EQ(got.method, "POST");
  EXPECT_EQ(got.target, "/commandcenter/api/CommServ/DRBackup");
  EXPECT_EQ(got.body, request.body);
  EXPECT_EQ(got.headers.at("authtoken"), "QSDK secret-token");
  EXPECT_EQ(got.headers.at("accept"), "application/json");
  EXPECT_EQ(got.headers.at("content-type"), "application/json");
  EXPECT_EQ(got.headers.at("content-length"), std::to_string(request.body.size()));
  EXPECT_EQ(got.headers.at("host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_THAT(got.headers.at("user-agent"), StartsWith("drgate/"));
  EXPECT_EQ(got.headers.at("connection"), "keep-alive");
}

// Name lookups run off the I/O threads, one per host: requests to a host whose DNS never answers
// share one lookup and time out on their own (resolve phase), while another host's lookup and
// request go through meanwhile. (Asio's resolver runs every lookup of an io_context on one
// thread, one after the other: the second host would time out too.)
TEST_F(BeastTransportTest, AHostWhoseNameLookupHangsDelaysNoOtherHost) {
  TestServer server([](const testing::ReceivedRequest&) { return Ok(R"({"ok":1})"); });
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> hung_lookups{0};
  auto resolver = std::make_shared<NameResolver>(
      [&](const std::string& host, const std::string& port)
          -> std::pair<boost::system::error_code, NameResolver::Endpoints> {
        if (host == "hangs.test") {
          ++hung_lookups;
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return release; });
          return {boost::asio::error::host_not_found, {}};
        }
        return {{},
                {boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                static_cast<unsigned short>(std::stoi(port)))}};
      });
  TransportOptions options = FastOptions();
  options.resolve_timeout = 500ms;
  options.resolver = resolver;
  auto hung = Make(PlainEndpoint(server.port(), "hangs.test"), options);
  auto fine = Make(PlainEndpoint(server.port(), "answers.test"), options);

  std::vector<std::future<StatusOr<HttpResponse>>> waiting;
  for (int i = 0; i < 3; ++i) {
    auto promise = std::make_shared<std::promise<StatusOr<HttpResponse>>>();
    waiting.push_back(promise->get_future());
    hung->Send(Get(), [promise](StatusOr<HttpResponse> r) { promise->set_value(std::move(r)); });
  }
  StatusOr<HttpResponse> answered = SendAndWait(*fine, Get());
  ASSERT_TRUE(answered.ok()) << answered.status().ToString();
  EXPECT_EQ(answered->body, R"({"ok":1})");

  for (auto& f : waiting) {
    ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
    StatusOr<HttpResponse> r = f.get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(r.status().reason(), "UPSTREAM_TIMEOUT") << r.status().ToString();
    EXPECT_EQ(r.status().message(), "resolve: timed out after 500 ms");
  }
  EXPECT_EQ(hung_lookups.load(), 1);  // one lookup for the three requests
  EXPECT_EQ(resolver->lookups_under_way(), 1);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (resolver->lookups_under_way() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(resolver->lookups_under_way(), 0);
}

// Past its bound of lookups under way, the resolver fails at once (try again) instead of
// queueing; an IP literal never takes a lookup.
TEST(NameResolverTest, PastItsBoundALookupFailsAtOnceAndALiteralNeedsNone) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  NameResolver resolver(
      [&](const std::string&,
          const std::string&) -> std::pair<boost::system::error_code, NameResolver::Endpoints> {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return release; });
        return {boost::asio::error::host_not_found, {}};
      },
      /*max_lookups=*/2);
  std::atomic<int> answered{0};
  auto count = [&](boost::system::error_code, NameResolver::Endpoints) { ++answered; };
  resolver.Resolve("a.test", "443", count);
  resolver.Resolve("b.test", "443", count);
  std::optional<boost::system::error_code> third;
  resolver.Resolve("c.test", "443",
                   [&](boost::system::error_code ec, NameResolver::Endpoints) { third = ec; });
  ASSERT_TRUE(third.has_value());  // answered inline
  EXPECT_EQ(*third, boost::asio::error::host_not_found_try_again);
  NameResolver::Endpoints literal;
  resolver.Resolve("127.0.0.1", "8443",
                   [&](boost::system::error_code ec, NameResolver::Endpoints e) {
                     EXPECT_FALSE(ec);
                     literal = std::move(e);
                   });
  ASSERT_EQ(literal.size(), 1u);
  EXPECT_EQ(literal[0].port(), 8443);
  EXPECT_EQ(resolver.lookups_under_way(), 2);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (answered.load() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(answered.load(), 2);
}

TEST_F(BeastTransportTest, HttpsRoundTripTrustsCaFileAndSendsSni) {
  const Issued cert = SelfSigned("localhost", "DNS:localhost,IP:127.0.0.1");
  TempDir dir;
  TestServer server([](const testing::ReceivedRequest&) { return Ok(R"({"ok":1})"); }, &cert);
  TransportOptions options = FastOptions();
  options.ca_file = dir.Write("ca.pem", cert.cert_pem);
  auto transport = Make(TlsEndpoint(server.port(), "localhost"), options);

  StatusOr<HttpResponse> result = SendAndWait(*transport, Get());

  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, R"({"ok":1})");
  EXPECT_EQ(server.last_sni(), "localhost");
  EXPECT_EQ(server.requests().at(0).headers.at("host"),
            "localhost:" + std::to_string(server.port()));
}

TEST_F(BeastTransportTest, HttpsByIpAddressVerifiesIpSanWithoutSni) {
  const Issued cert = SelfSigned("localhost", "DNS:localhost,IP:127.0.0.1");
  TempDir dir;
  TestServer server([](const testing::ReceivedRequest&) { return Ok(); }, &cert);
  TransportOptions options = FastOptions();
  options.ca_file = dir.Write("ca.pem", cert.cert_pem);
  auto transport = Make(TlsEndpoint(server.port(), "127.0.0.1"), options);

  StatusOr<HttpResponse> result = SendAndWait(*transport, Get());

  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(server.last_sni(), "");
}

TEST_F(BeastTransportTest, UntrustedCertificateIsTlsError) {
  const Issued cert = SelfSigned("localhost", "DNS:localhost,IP:127.0.0.1");
  TestServer server([](const testing::ReceivedRequest&) { return Ok(); }, &cert);
  auto transport = Make(TlsEndpoint(server.port(), "localhost"), FastOptions());

  StatusOr<HttpResponse> result = SendAndWait(*transport, Get());

  ExpectPhaseError(result, "UPSTREAM_TLS_ERROR", "handshake", "false");
  EXPECT_THAT(result.status().message(), HasSubstr("certificate verify failed (self"));
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(BeastTransportTest, IpAddressMissingFromCertificateIsTlsError) {
  const Issued cert = SelfSigned("other.example", "DNS:other.example");
  TempDir dir;
  TestServer server([](const testing::ReceivedRequest&) { return Ok(); }, &cert);
  TransportOptions options = FastOptions();
  options.ca_file = dir.Write("ca.pem", cert.cert_pem);
  auto transport = Make(TlsEndpoint(server.port(), "127.0.0.1"), options);

  StatusOr<HttpResponse> result = SendAndWait(*transport, Get());

  ExpectPhaseError(result, "UPSTREAM_TLS_ERROR", "handshake", "false");
  EXPECT_THAT(result.status().message(),
              HasSubstr("certificate verify failed (IP address mismatch"));
}

TEST_F(BeastTransportTest, HostNameMissingFromCertificateIsTlsError) {
  const Issued cert = SelfSigned("other.example", "DNS:other.example,IP:127.0.0.1");
  TempDir dir;
  TestServer server([](const testing::ReceivedRequest&) { return Ok(); }, &cert);
  TransportOptions options = FastOptions();
  options.ca_file = dir.Write("ca.pem", cert.cert_pem);
  auto transport = Make(TlsEndpoint(server.port(), "localhost"), options);

  StatusOr<HttpResponse> result = SendAndWait(*transport, Get());

  ExpectPhaseError(result, "UPSTREAM_TLS_ERROR", "handshake", "false");
  EXPECT_THAT(result.status().message(), HasSubstr("certificate verify failed (hostname mismatch"));
}

TEST_F(BeastTransportTest, InsecureSkipVerifyAcceptsUntrustedCertificate) {
  const Issued cert = SelfSigned("other.example", "DNS:other.example");
  TestServer server([](const testing::ReceivedRequest&) { return Ok(); }, &cert);
  TransportOptions options = FastOptions();
  options.insecure_skip_verify = true;
  auto transport = Make(TlsEndpoint(server.port(), "127.0.0.1"), options);

  StatusOr<HttpResponse> result = SendAndWait(*transport, Get());

  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, 200);
}

TEST_F(BeastTransportTest, KeepAliveReusesOneConnection) {
  TestServer server([](const testing::ReceivedRequest&) { return Ok(); });
  auto transport = Make(PlainEndpoint(server.port()), FastOptions());

  ASSERT_TRUE(SendAndWait(*transport, Get()).ok());
  ASSERT_TRUE(SendAndWait(*transport, Get()).ok());

  EXPECT_EQ(server.accepts(), 1);
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST_F(BeastTransportTest, KeepAliveReusesOneTlsConnection) {
  const Issued cert = SelfSigned("localhost", "DNS:localhost,IP:127.0.0.1");
  TempDir dir;
  TestServer server([](const testing::ReceivedRequest&) { return Ok(); }, &cert);
  TransportOptions options = FastOptions();
  options.ca_file = dir.Write("ca.pem", cert.cert_pem);
  auto transport = Make(TlsEndpoint(server.port(), "localhost"), options);

  ASSERT_TRUE(SendAndWait(*transport, Get()).ok());
  ASSERT_TRUE(SendAndWait(*transport, Get()).ok());

  EXPECT_EQ(server.accepts(), 1);
}

TEST_F(BeastTransportTest, IdleConnectionClosedByPeerIsReplaced) {
  TestServer server([](const testing::ReceivedRequest&) {
    Reply r = Ok();
    r.close_after = true;  // looks keep-alive, but the server hangs up right after
    return r;
  });
  auto transport = Make(PlainEndpoint(server.port()), FastOptions());
  ASSERT_TRUE(SendAndWait(*transport, Get()).ok());
  ASSERT_TRUE(server.WaitForClosed(1, kWait));
  std::this_thread::sleep_for(20ms);  // let the FIN reach the client's socket

  StatusOr<HttpResponse> second = SendAndWait(*transport, Get());

  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(server.accepts(), 2);
}

TEST_F(BeastTransportTest, ConnectionCloseFromServerIsHonoured) {
  TestServer server([](const testing::ReceivedRequest&) {
    Reply r = Ok();
    r.connection_close = true;
    return r;
  });
  auto transport = Make(PlainEndpoint(server.port()), FastOptions());

  ASSERT_TRUE(SendAndWait(*transport, Get()).ok());
  ASSERT_TRUE(SendAndWait(*transport, Get()).ok());

  EXPECT_EQ(server.accepts(), 2);
}

TEST_F(BeastTransportTest, IdleConnectionOlderThanIdleTimeoutIsNotReused) {
  TestServer server([](const testing::ReceivedRequest&) { return Ok(); });
  TransportOptions options = FastOptions();
  options.idle_timeout = 0s;
  auto transport = Make(PlainEndpoint(server.port()), options);

  ASSERT_TRUE(SendAndWait(*transport, Get()).ok());
  std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(SendAndWait(*transport, Get()).ok());

  EXPECT_EQ(server.accepts(), 2);
  EXPECT_TRUE(server.WaitForClosed(1, kWait));  // the expired one was closed, not leaked
}

TEST_F(BeastTransportTest, ConnectionRefusedIsUnreachableBeforeSending) {
  auto transport = Make(PlainEndpoint(UnusedPort()), FastOptions());

  StatusOr<HttpResponse> result = SendAndWait(*transport, Get());

  ExpectPhaseError(result, "UPSTREAM_UNREACHABLE", "connect", "false");
  EXPECT_THAT(result.status().message(), HasSubstr("refused"));
}

TEST_F(BeastTransportTest, SilentServerTimesOutInReadAfterSending) {
  TestServer server([](const testing::ReceivedRequest&) {
    Reply r;
    r.kind = Reply::Kind::kHang;
    return r;
  });
  TransportOptions options = FastOptions();
  options.read_timeout = 200ms;
  auto transport = Make(PlainEndpoint(server.port()), options);
  const auto start = std::chrono::steady_clock::now();

  StatusOr<HttpResponse> result = SendAndWait(*transport, Get());

  ExpectPhaseError(result, "UPSTREAM_TIMEOUT", "read", "true");
  EXPECT_EQ(result.status().message(), "read: timed out after 200 ms");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 190ms);
  EXPECT_LT(elapsed, 2s);
}

TEST_F(BeastTransportTest, RequestDeadlineCutsTheReadTimeoutAndIsNotAnsweredEarly) {
  TestServer server([](const testing::ReceivedRequest&) {
    Reply r;
    r.kind = Reply::Kind::kHang;
    return r;
  });
  TransportOptions options = FastOptions();
  options.read_timeout = 10s;
  auto transport = Make(PlainEndpoint(server.port()), options);
  HttpRequest request = Get();
  const auto start = std::chrono::steady_clock::now();
  request.deadline = start + 300ms;

  StatusOr<HttpResponse> result = SendAndWait(*transport, request);

  const auto ended = std::chrono::steady_clock::now();
  ExpectPhaseError(result, "UPSTREAM_TIMEOUT", "read", "true");
  EXPECT_GE(ended, *request.deadline) << "a deadline-cut timeout never fires early";
  EXPECT_LT(ended - start, 2s);
}

// The transport measures a request's deadline by the clock the deadline was made with
// (TransportOptions::clock), not by the process's steady clock: a deadline 10 s ahead on a fake
// clock that is then moved 9.7 s on leaves the request 300 ms, and the read phase ends then (real
// time). Read by the real steady clock, the same deadline would leave about 10 s.
TEST_F(BeastTransportTest, AFakeClockDrivesTheRequestDeadline) {
  TestServer server([](const testing::ReceivedRequest&) {
    Reply r;
    r.kind = Reply::Kind::kHang;
    return r;
  });
  drgate::testing::ManualClock clock;
  TransportOptions options = FastOptions();
  options.read_timeout = 20s;
  options.clock = &clock;
  auto transport = Make(PlainEndpoint(server.port()), options);
  HttpRequest request = Get();
  request.deadline = clock.Monotonic() + 10s;
  clock.Advance(9700ms);
  const auto start = std::chrono::steady_clock::now();

  StatusOr<HttpResponse> result = SendAndWait(*transport, request);

  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(result.status().reason(), "UPSTREAM_TIMEOUT");
  // What was left of the 300 ms when the read phase began, rounded up to whole milliseconds.
  EXPECT_THAT(result.status().message(),
              ::testing::MatchesRegex("read: timed out after (2[0-9][0-9]|300) ms"));
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s);
}

TEST_F(BeastTransportTest, ServerClosingAfterRequestIsUnreachableAfterSending) {
  TestServer server([](const testing::ReceivedRequest&) {
    Reply r;
    r.kind = Reply::Kind::kClose;
    return r;
  });
  auto transport = Make(PlainEndpoint(server.port()), FastOptions());

  StatusOr<HttpResponse> result = SendAndWait(*transport, Get());

  ExpectPhaseError(result, "UPSTREAM_UNREACHABLE", "read", "true");
}

TEST_F(BeastTransportTest, ResponseOverSizeCapIsRejected) {
  TestServer server([](const testing::ReceivedRequest&) { return Ok(std::string(4096, 'x')); });
  TransportOptions options = FastOptions();
  options.max_response_bytes = 1024;
  auto transport = Make(PlainEndpoint(server.port()), options);

  StatusOr<HttpResponse> result = SendAndWait(*transport, Get());

  ExpectPhaseError(result, "UPSTREAM_RESPONSE_TOO_LARGE", "read", "true");
  EXPECT_EQ(result.status().message(), "read: response exceeds 1024 bytes");
}

TEST_F(BeastTransportTest, ChunkedResponseOverSizeCapIsRejected) {
  TestServer server([](const testing::ReceivedRequest&) {
    Reply r;
    r.raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" +
            std::string(0x800, 'x') + "\r\n0\r\n\r\n";
    return r;
  });
  TransportOptions options = FastOptions();
  options.max_response_bytes = 1024;
  auto transport = Make(PlainEndpoint(server.port()), options);

  StatusOr<HttpResponse> result = SendAndWait(*transport, Get());

  ExpectPhaseError(result, "UPSTREAM_RESPONSE_TOO_LARGE", "read", "true");
}

TEST_F(BeastTransportTest, ResponseWithoutBodyCompletesAndKeepsConnection) {
  TestServer server([](const testing::ReceivedRequest&) {
    Reply r;
    r.raw = "HTTP/1.1 204 No Content\r\nX-Request: done\r\n\r\n";
    return r;
  });
  auto transport = Make(PlainEndpoint(server.port()), FastOptions());

  StatusOr<HttpResponse> first = SendAndWait(*transport, Get());
  StatusOr<HttpResponse> second = SendAndWait(*transport, Get());

  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->status, 204);
  EXPECT_EQ(first->body, "");
  EXPECT_EQ(first->headers.at("x-request"), "done");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(server.accepts(), 1);
}

TEST_F(BeastTransportTest, ConcurrentSendsFromSeveralThreadsCompleteExactlyOnce) {
  TestServer server([](const testing::ReceivedRequest& r) { return Ok(r.target); });
  auto transport = Make(PlainEndpoint(server.port()), FastOptions());
  constexpr int kThreads = 5;
  constexpr int kPerThread = 10;
  constexpr int kTotal = kThreads * kPerThread;
  std::vector<std::atomic<int>> calls(kTotal);
  std::vector<std::atomic<bool>> body_matches(kTotal);
  std::atomic<int> completed{0};
  std::promise<void> all_done;

  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int id = t * kPerThread + i;
        const std::string target = "/commandcenter/api/Job/" + std::to_string(id);
        transport->Send(Get(target), [&, id, target](StatusOr<HttpResponse> r) {
          body_matches[id] = r.ok() && r->body == target;
          ++calls[id];
          if (++completed == kTotal) all_done.set_value();
        });
      }
    });
  }
  for (auto& s : senders) s.join();

  ASSERT_EQ(all_done.get_future().wait_for(kWait), std::future_status::ready);
  std::this_thread::sleep_for(50ms);  // a second callback would show up here
  for (int id = 0; id < kTotal; ++id) {
    EXPECT_EQ(calls[id].load(), 1) << "request " << id;
    EXPECT_TRUE(body_matches[id].load()) << "request " << id;
  }
  EXPECT_LE(server.accepts(), kTotal);
}

TEST_F(BeastTransportTest, CallbackRunsOnAnIoThreadNotInsideSend) {
  auto transport = Make(PlainEndpoint(UnusedPort()), FastOptions());
  std::promise<std::thread::id> callback_thread;

  transport->Send(Get(), [&](StatusOr<HttpResponse>) {
    callback_thread.set_value(std::this_thread::get_id());
  });

  auto future = callback_thread.get_future();
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
  EXPECT_NE(future.get(), std::this_thread::get_id());
}

TEST_F(BeastTransportTest, HeaderWithLineBreakIsRejectedWithoutEchoingItsValue) {
  TestServer server([](const testing::ReceivedRequest&) { return Ok(); });
  auto transport = Make(PlainEndpoint(server.port()), FastOptions());
  HttpRequest request = Get();
  request.headers["Authtoken"] = "QSDK secret\r\nX-Injected: 1";

  StatusOr<HttpResponse> result = SendAndWait(*transport, request);

  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("Authtoken"));
  EXPECT_THAT(result.status().message(), ::testing::Not(HasSubstr("secret")));
  EXPECT_EQ(server.accepts(), 0);
}

TEST_F(BeastTransportTest, DestroyingTransportWithPendingSendStillCallsBack) {
  TestServer server([](const testing::ReceivedRequest&) {
    Reply r;
    r.kind = Reply::Kind::kHang;
    return r;
  });
  TransportOptions options = FastOptions();
  options.read_timeout = 200ms;
  auto transport = Make(PlainEndpoint(server.port()), options);
  auto promise = std::make_shared<std::promise<StatusOr<HttpResponse>>>();
  transport->Send(Get(), [promise](StatusOr<HttpResponse> r) { promise->set_value(std::move(r)); });

  transport.reset();

  auto future = promise->get_future();
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
  ExpectPhaseError(future.get(), "UPSTREAM_TIMEOUT", "read", "true");
}

TEST_F(BeastTransportTest, MissingCaFileIsInvalidArgumentNamingIt) {
  TransportOptions options;
  options.ca_file = "/nonexistent/drgate/ca.pem";

  StatusOr<std::unique_ptr<HttpTransport>> t =
      MakeBeastTransport(io_, TlsEndpoint(443, "cs.example.com"), options);

  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("/nonexistent/drgate/ca.pem"));
}

TEST_F(BeastTransportTest, CaFileWithoutCertificatesIsInvalidArgumentNamingIt) {
  TempDir dir;
  TransportOptions options;
  options.ca_file = dir.Write("garbage.pem", "not a certificate\n");

  StatusOr<std::unique_ptr<HttpTransport>> t =
      MakeBeastTransport(io_, TlsEndpoint(443, "cs.example.com"), options);

  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr(options.ca_file));
}

TEST_F(BeastTransportTest, AMatchingClientCertificateAndKeyLoad) {
  TempDir dir;
  const Issued client = SelfSigned("drgate-client", "DNS:drgate.example.com");
  TransportOptions options;
  options.client_cert_file = dir.Write("client.pem", client.cert_pem);
  options.client_key_file = dir.Write("client.key", client.key_pem);

  auto t = MakeBeastTransport(io_, TlsEndpoint(443, "cs.example.com"), options);

  EXPECT_TRUE(t.ok()) << t.status().ToString();
}

TEST_F(BeastTransportTest, AClientKeyOfAnotherCertificateIsInvalidArgumentNamingBoth) {
  TempDir dir;
  const Issued client = SelfSigned("drgate-client", "DNS:drgate.example.com");
  const Issued other = SelfSigned("other", "DNS:other.example.com");
  TransportOptions options;
  options.client_cert_file = dir.Write("client.pem", client.cert_pem);
  options.client_key_file = dir.Write("other.key", other.key_pem);

  auto t = MakeBeastTransport(io_, TlsEndpoint(443, "cs.example.com"), options);

  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("key values mismatch"));
  EXPECT_THAT(t.status().message(), HasSubstr(options.client_cert_file));
  EXPECT_THAT(t.status().message(), HasSubstr(options.client_key_file));
  EXPECT_THAT(t.status().message(), Not(HasSubstr("PRIVATE KEY")));
}

// The estate case: many CommCells with one CA file share one TLS context (and its copy of the
// system certificate store) instead of building one each.
TEST(TlsContextCacheTest, CommCellsWithOneCaFileShareOneContext) {
  const Issued cert = SelfSigned("localhost", "DNS:localhost");
  TempDir dir;
  TransportOptions a;
  a.ca_file = dir.Write("ca.pem", cert.cert_pem);
  TransportOptions b;
  b.ca_file = dir.Write("copy-of-ca.pem", cert.cert_pem);  // same contents, another path
  TlsContextCache cache;

  auto first = cache.Get(a);
  auto second = cache.Get(a);
  auto third = cache.Get(b);

  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(second.ok() && third.ok());
  EXPECT_EQ(first->get(), second->get());
  EXPECT_EQ(first->get(), third->get());
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TlsContextCacheTest, AChangedCaFileGivesANewContext) {
  const Issued old_ca = SelfSigned("localhost", "DNS:localhost");
  const Issued new_ca = SelfSigned("localhost", "DNS:localhost");
  TempDir dir;
  TransportOptions options;
  options.ca_file = dir.Write("ca.pem", old_ca.cert_pem);
  TlsContextCache cache;
  auto before = cache.Get(options);
  auto key_before = TlsContextCache::KeyOf(options);
  ASSERT_TRUE(before.ok() && key_before.ok());

  dir.Write("ca.pem", new_ca.cert_pem);
  auto after = cache.Get(options);
  auto key_after = TlsContextCache::KeyOf(options);

  ASSERT_TRUE(after.ok() && key_after.ok());
  EXPECT_NE(before->get(), after->get());
  EXPECT_NE(*key_before, *key_after);
  EXPECT_EQ(cache.size(), 2u);  // the old one lives while a transport holds it
  before->reset();
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TlsContextCacheTest, VerificationOptionAndClientCertificateAreKeysToo) {
  const Issued cert = SelfSigned("localhost", "DNS:localhost");
  const Issued client = SelfSigned("drgate-client", "DNS:drgate.example.com");
  TempDir dir;
  TransportOptions verify;
  verify.ca_file = dir.Write("ca.pem", cert.cert_pem);
  TransportOptions skip = verify;
  skip.insecure_skip_verify = true;
  TransportOptions with_client = verify;
  with_client.client_cert_file = dir.Write("client.pem", client.cert_pem);
  with_client.client_key_file = dir.Write("client.key", client.key_pem);
  TlsContextCache cache;

  auto a = cache.Get(verify);
  auto b = cache.Get(skip);
  auto c = cache.Get(with_client);

  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_NE(a->get(), b->get());
  EXPECT_NE(a->get(), c->get());
  EXPECT_NE(b->get(), c->get());
  EXPECT_EQ(cache.size(), 3u);
}

TEST(TlsContextCacheTest, AMissingCaFileIsTheSameErrorAsWithoutTheCache) {
  TransportOptions options;
  options.ca_file = "/nonexistent/drgate/ca.pem";
  TlsContextCache cache;

  auto ctx = cache.Get(options);

  ASSERT_FALSE(ctx.ok());
  EXPECT_EQ(ctx.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(ctx.status().message(), HasSubstr("ca_file \"/nonexistent/drgate/ca.pem\""));
  EXPECT_EQ(cache.size(), 0u);
}

// The shared context carries the trust anchors only: each connection still checks its own
// CommServe's name.
TEST_F(BeastTransportTest, TransportsSharingAContextStillVerifyTheirOwnHostName) {
  const Issued cert = SelfSigned("localhost", "DNS:localhost");  // no IP address
  TempDir dir;
  TestServer server([](const testing::ReceivedRequest&) { return Ok(R"({"ok":1})"); }, &cert);
  TransportOptions options = FastOptions();
  options.ca_file = dir.Write("ca.pem", cert.cert_pem);
  TlsContextCache cache;
  auto good = MakeBeastTransport(io_, TlsEndpoint(server.port(), "localhost"), options, cache);
  auto wrong_name =
      MakeBeastTransport(io_, TlsEndpoint(server.port(), "127.0.0.1"), options, cache);
  ASSERT_TRUE(good.ok() && wrong_name.ok());
  EXPECT_EQ(cache.size(), 1u);

  StatusOr<HttpResponse> ok = SendAndWait(**good, Get());
  StatusOr<HttpResponse> refused = SendAndWait(**wrong_name, Get());

  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->status, 200);
  ExpectPhaseError(refused, "UPSTREAM_TLS_ERROR", "handshake", "false");
  EXPECT_THAT(refused.status().message(), HasSubstr("IP address mismatch"));
}

}  // namespace
}  // namespace drgate::commserv
