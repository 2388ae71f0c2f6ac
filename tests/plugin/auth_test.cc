#include "plugin/auth.h"

#include <gtest/gtest.h>

#include "core/common/audit.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "plugin/status_mapping.h"
#include "tests/fakes/manual_clock.h"

namespace drgate::plugin {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// SHA-256("abc"), FIPS 180-2 appendix B.1.
constexpr char kAbcSha256[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

AuthTokenEntry Entry(const std::string& token, const std::string& identity, std::vector<Role> roles,
                     std::vector<std::string> commcells = {}) {
  return AuthTokenEntry{.sha256 = Sha256Hex(token),
                        .certificate = "",  // a token entry
                        .identity = identity,
                        .roles = std::move(roles),
                        .commcells = std::move(commcells)};
}

std::shared_ptr<const Authenticator> MakeAuth() {
  return Authenticator::FromTokens(
      {Entry("viewer-token-0123456789", "alice", {Role::kViewer}),
       Entry("operator-token-0123456789", "ci", {Role::kOperator}),
       Entry("limited-token-0123456789", "ops-a", {Role::kOperator}, {"cs-a"})});
}

TEST(Sha256HexTest, KnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"), kAbcSha256);
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(ConstantTimeEqualTest, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEqual("", ""));
  EXPECT_TRUE(ConstantTimeEqual("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEqual(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(AuthenticatorTest, ValidTokenGivesItsPrincipal) {
  auto auth = MakeAuth();
  EXPECT_FALSE(auth->insecure());
  auto p = auth->Authenticate("Bearer operator-token-0123456789");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->identity, "ci");
  EXPECT_TRUE(p->operator_role);
  EXPECT_TRUE(p->viewer);
  EXPECT_TRUE(p->commcells.empty());
  // The scheme is case-insensitive.
  EXPECT_TRUE(auth->Authenticate("bearer viewer-token-0123456789").ok());
}

TEST(AuthenticatorTest, MissingCredentials) {
  auto auth = MakeAuth();
  for (std::optional<std::string_view> header :
       {std::optional<std::string_view>(), std::optional<std::string_view>(""),
        std::optional<std::string_view>("Bearer "),
        std::optional<std::string_view>("Basic dXNlcjpwYXNz")}) {
    auto p = auth->Authenticate(header);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(p.status().reason(), "MISSING_CREDENTIALS");
  }
}

TEST(AuthenticatorTest, InvalidTokenIsNotEchoed) {
  auto auth = MakeAuth();
  auto p = auth->Authenticate("Bearer wrong-token-SECRETVALUE");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(p.status().reason(), "INVALID_TOKEN");
  EXPECT_EQ(p.status().ToString().find("SECRETVALUE"), std::string::npos);
  for (const auto& [k, v] : p.status().metadata()) {
    EXPECT_EQ(v.find("SECRETVALUE"), std::string::npos) << k;
  }
  // A hash of a configured token is not itself a token.
  EXPECT_FALSE(auth->Authenticate("Bearer " + Sha256Hex("operator-token-0123456789")).ok());
}

TEST(AuthenticatorTest, InsecureModeIsAnOperatorEverywhere) {
  auto auth = Authenticator::Insecure();
  EXPECT_TRUE(auth->insecure());
  auto p = auth->Authenticate(std::nullopt, "peer-x");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->identity, "peer-x");
  EXPECT_TRUE(Authenticator::Authorize(*p, Method::kTriggerBackup, "any").ok());
}

TEST(AuthorizeTest, ViewerReadsButDoesNotWrite) {
  auto p = *MakeAuth()->Authenticate("Bearer viewer-token-0123456789");
  for (Method m : {Method::kGetJob, Method::kListJobs, Method::kWatchJob, Method::kListCommCells}) {
    EXPECT_TRUE(Authenticator::Authorize(p, m, "cs-a").ok());
  }
  for (Method m : {Method::kTriggerBackup, Method::kCancelJob, Method::kEnsureRecentBackup}) {
    Status s = Authenticator::Authorize(p, m, "cs-a");
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(s.reason(), "PERMISSION_DENIED");
  }
}

TEST(AuthorizeTest, OperatorDoesEverything) {
  auto p = *MakeAuth()->Authenticate("Bearer operator-token-0123456789");
  for (Method m : {Method::kGetJob, Method::kListJobs, Method::kWatchJob, Method::kListCommCells,
                   Method::kTriggerBackup, Method::kCancelJob, Method::kEnsureRecentBackup}) {
    EXPECT_TRUE(Authenticator::Authorize(p, m, "cs-b").ok());
    EXPECT_TRUE(Authenticator::Authorize(p, m, "").ok());
  }
}

TEST(AuthorizeTest, CommCellLimits) {
  auto p = *MakeAuth()->Authenticate("Bearer limited-token-0123456789");
  EXPECT_TRUE(Authenticator::Authorize(p, Method::kTriggerBackup, "cs-a").ok());
  Status other = Authenticator::Authorize(p, Method::kTriggerBackup, "cs-b");
  EXPECT_EQ(other.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(other.reason(), "COMMCELL_NOT_ALLOWED");
  EXPECT_EQ(Authenticator::Authorize(p, Method::kGetJob, "cs-b").reason(), "COMMCELL_NOT_ALLOWED");
  // A limited caller must name its CommCell.
  EXPECT_EQ(Authenticator::Authorize(p, Method::kListJobs, "").reason(), "COMMCELL_NOT_ALLOWED");
  // ListCommCells names none; the service filters the answer.
  EXPECT_TRUE(Authenticator::Authorize(p, Method::kListCommCells, "").ok());
  EXPECT_TRUE(p.MayUse("cs-a"));
  EXPECT_FALSE(p.MayUse("cs-b"));
}

TEST(RateLimiterTest, BurstThenRefillWithRetryAfter) {
  testing::ManualClock clock;
  RateLimiter limiter(RateLimitConfig{6, 3}, clock);  // one token every 10 s
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Acquire("ci").ok()) << i;
  Status limited = limiter.Acquire("ci");
  EXPECT_EQ(limited.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(limited.reason(), "RATE_LIMITED");
  EXPECT_EQ(limited.metadata().at("retry_after_ms"), "10000");
  // Identities have their own buckets.
  EXPECT_TRUE(limiter.Acquire("other").ok());

  clock.Advance(seconds(4));
  Status still = limiter.Acquire("ci");
  EXPECT_EQ(still.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(still.metadata().at("retry_after_ms"), "6000");
  clock.Advance(seconds(6));
  EXPECT_TRUE(limiter.Acquire("ci").ok());
  EXPECT_FALSE(limiter.Acquire("ci").ok());
  // A long pause refills no more than the burst.
  clock.Advance(std::chrono::hours(1));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Acquire("ci").ok()) << i;
  EXPECT_FALSE(limiter.Acquire("ci").ok());
}

TEST(RateLimiterTest, ClockGoingBackwardsRefillsNothing) {
  testing::ManualClock clock;
  RateLimiter limiter(RateLimitConfig{60, 1}, clock);
  EXPECT_TRUE(limiter.Acquire("ci").ok());
  clock.Advance(-std::chrono::hours(1));
  EXPECT_FALSE(limiter.Acquire("ci").ok());
}

TEST(StatusMappingTest, RetryAfterBecomesRetryInfo) {
  Status s = Status(StatusCode::kResourceExhausted, "slow down", Reason::kRateLimited)
                 .With("retry_after_ms", "2500");
  grpc::Status g = ToGrpcStatus(s);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  google::rpc::Status rich;
  ASSERT_TRUE(rich.ParseFromString(g.error_details()));
  bool found = false;
  for (const auto& any : rich.details()) {
    google::rpc::RetryInfo retry;
    if (any.UnpackTo(&retry)) {
      found = true;
      EXPECT_EQ(retry.retry_delay().seconds(), 2);
      EXPECT_EQ(retry.retry_delay().nanos(), 500000000);
    }
  }
  EXPECT_TRUE(found);
}

TEST(AuthenticatorTest, ClientCertificateStandsForItsEntry) {
  auto auth =
      Authenticator::FromTokens({Entry("operator-token-0123456789", "ci", {Role::kOperator}),
                                 AuthTokenEntry{.sha256 = "",  // a certificate entry
                                                .certificate = "spiffe://example.com/upgrader",
                                                .identity = "upgrader",
                                                .roles = {Role::kViewer},
                                                .commcells = {"cs-a"}}});
  auto p = auth->Authenticate(std::nullopt, "spiffe://example.com/upgrader");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->identity, "upgrader");
  EXPECT_TRUE(p->viewer);
  EXPECT_FALSE(p->operator_role);
  EXPECT_EQ(p->commcells, std::vector<std::string>{"cs-a"});

  auto unknown = auth->Authenticate(std::nullopt, "spiffe://example.com/other");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(unknown.status().reason(), "UNKNOWN_CERTIFICATE");
  // A sent token decides alone: a wrong one is not rescued by a listed certificate.
  auto wrong = auth->Authenticate("Bearer nope-0123456789", "spiffe://example.com/upgrader");
  EXPECT_EQ(wrong.status().reason(), "INVALID_TOKEN");
  auto token = auth->Authenticate("Bearer operator-token-0123456789", "spiffe://x/other");
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(token->identity, "ci");
  // In insecure mode the certificate names the caller.
  auto insecure = Authenticator::Insecure()->Authenticate(std::nullopt, "ops.example.com");
  ASSERT_TRUE(insecure.ok());
  EXPECT_EQ(insecure->identity, "ops.example.com");
  EXPECT_EQ(Authenticator::Insecure()->Authenticate(std::nullopt)->identity, "anonymous");
}

TEST(TokensFileTest, CertificateEntries) {
  auto ok = ParseTokensFile(
      "tokens:\n  - {certificate: spiffe://example.com/a, identity: a, roles: [operator]}\n",
      "auth.tokens_file", {"cs1"});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)[0].certificate, "spiffe://example.com/a");
  EXPECT_TRUE((*ok)[0].sha256.empty());

  auto both = ParseTokensFile(std::string("tokens:\n  - {sha256: ") + kAbcSha256 +
                                  ", certificate: a.example.com, identity: a, roles: [viewer]}\n",
                              "auth.tokens_file", {"cs1"});
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.status().message().rfind("auth.tokens_file: tokens[0]: needs exactly one", 0), 0u)
      << both.status().message();
  auto neither =
      ParseTokensFile("tokens:\n  - {identity: a, roles: [viewer]}\n", "auth.tokens_file", {});
  ASSERT_FALSE(neither.ok());
  EXPECT_NE(neither.status().message().find("needs exactly one"), std::string::npos);
  auto dup = ParseTokensFile(
      "tokens:\n  - {certificate: a.example.com, identity: a, roles: [viewer]}\n"
      "  - {certificate: a.example.com, identity: b, roles: [viewer]}\n",
      "auth.tokens_file", {});
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().message().rfind("auth.tokens_file: tokens[1].certificate:", 0), 0u)
      << dup.status().message();
  auto spaced =
      ParseTokensFile("tokens:\n  - {certificate: 'CN=a b', identity: a, roles: [viewer]}\n",
                      "auth.tokens_file", {});
  ASSERT_FALSE(spaced.ok());
  EXPECT_NE(spaced.status().message().find("tokens[0].certificate"), std::string::npos);
}

TEST(TokensFileTest, ParsesAndNamesTheKeyOnErrors) {
  const std::string ok = std::string("tokens:\n  - sha256: ") + kAbcSha256 +
                         "\n    identity: ci\n    roles: [operator]\n    commcells: [cs1]\n";
  auto entries = ParseTokensFile(ok, "auth.tokens_file", {"cs1"});
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].identity, "ci");
  EXPECT_EQ((*entries)[0].commcells, std::vector<std::string>{"cs1"});

  auto bad_hash = ParseTokensFile("tokens:\n  - {sha256: abc, identity: ci, roles: [viewer]}\n",
                                  "auth.tokens_file", {"cs1"});
  ASSERT_FALSE(bad_hash.ok());
  EXPECT_EQ(bad_hash.status().message().rfind("auth.tokens_file: tokens[0].sha256:", 0), 0u)
      << bad_hash.status().message();
  auto bad_role = ParseTokensFile(
      std::string("tokens:\n  - {sha256: ") + kAbcSha256 + ", identity: ci, roles: [admin]}\n",
      "auth.tokens_file", {"cs1"});
  ASSERT_FALSE(bad_role.ok());
  EXPECT_NE(bad_role.status().message().find("tokens[0].roles[0]"), std::string::npos);
  auto bad_cell = ParseTokensFile(std::string("tokens:\n  - {sha256: ") + kAbcSha256 +
                                      ", identity: ci, roles: [viewer], commcells: [nope]}\n",
                                  "auth.tokens_file", {"cs1"});
  ASSERT_FALSE(bad_cell.ok());
  EXPECT_NE(bad_cell.status().message().find("tokens[0].commcells[0]"), std::string::npos);
}

}  // namespace
}  // namespace drgate::plugin

namespace drgate::plugin {
namespace {

TEST(RefusalAuditTest, WritesOneLinePerRefusalThenSuppressesAndCounts) {
  testing::ManualClock clock;
  std::vector<std::string> lines;
  RefusalAudit audit(
      clock, [&lines](const std::string& line) { lines.push_back(line); }, 3);
  const Status unauthenticated(StatusCode::kUnauthenticated,
                               "this call needs 'authorization: Bearer <token>' metadata",
                               Reason::kMissingCredentials);
  audit.Refused(Method::kTriggerBackup, "prod", "", "ipv4:10.0.0.7:50122", unauthenticated);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "audit: trigger method=TriggerBackup commcell=prod caller=unauthenticated "
            "peer=ipv4:10.0.0.7:50122 outcome=refused code=UNAUTHENTICATED "
            "reason=MISSING_CREDENTIALS error=\"this call needs 'authorization: Bearer <token>' "
            "metadata\"");
  Principal alice;
  alice.identity = "alice";
  alice.viewer = true;
  const Status denied = Authenticator::Authorize(alice, Method::kCancelJob, "prod");
  audit.Refused(Method::kCancelJob, "prod", "alice", "ipv6:[::1]:4000", denied);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1],
            "audit: cancel method=CancelJob commcell=prod caller=alice peer=ipv6:[::1]:4000 "
            "outcome=refused code=PERMISSION_DENIED reason=PERMISSION_DENIED error=\"identity "
            "alice may not call CancelJob (needs role operator)\"");

  // A flood: the third line goes out, the next 100 are only counted.
  for (int i = 0; i < 101; ++i) {
    audit.Refused(Method::kEnsureRecentBackup, "prod", "", "ipv4:10.0.0.7:1", unauthenticated);
  }
  EXPECT_EQ(lines.size(), 3u);
  audit.Flush();  // the bucket is still empty
  EXPECT_EQ(lines.size(), 3u);

  // A second later the bucket has 3 tokens again: the count first, then the next refusal.
  clock.Advance(seconds(1));
  audit.Refused(Method::kTriggerBackup, "prod", "", "ipv4:10.0.0.7:2", unauthenticated);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[3], "audit: refusals outcome=suppressed count=100");
  EXPECT_EQ(lines[4].rfind("audit: trigger method=TriggerBackup commcell=prod ", 0), 0u)
      << lines[4];

  // Suppressed refusals are reported by Flush alone once the bucket refills, even if no refusal
  // follows; the summary line costs no token.
  audit.Refused(Method::kTriggerBackup, "prod", "", "p", unauthenticated);
  audit.Refused(Method::kTriggerBackup, "prod", "", "p", unauthenticated);
  audit.Refused(Method::kTriggerBackup, "prod", "", "p", unauthenticated);  // suppressed
  EXPECT_EQ(lines.size(), 7u);
  clock.Advance(milliseconds(400));
  audit.Flush();
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(lines[7], "audit: refusals outcome=suppressed count=1");
  audit.Flush();
  EXPECT_EQ(lines.size(), 8u);
}

TEST(RefusalAuditTest, AbbreviatesEchoedValuesAndParsesBack) {
  testing::ManualClock clock;
  std::vector<std::string> lines;
  RefusalAudit audit(clock, [&lines](const std::string& line) { lines.push_back(line); });
  const std::string commcell(60000, 'c');
  audit.Refused(Method::kTriggerBackup, commcell, "ci", "ipv4:127.0.0.1:1",
                Status(StatusCode::kResourceExhausted, "identity ci exceeded 6 write calls",
                       Reason::kRateLimited));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_LT(lines[0].size(), 600u);
  auto record = ParseAuditMessage(lines[0]);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->action, "trigger");
  ASSERT_GE(record->fields.size(), 2u);
  EXPECT_EQ(record->fields[1].first, "commcell");
  EXPECT_EQ(record->fields[1].second, std::string(128, 'c') + "\u2026(60000 bytes)");
}

TEST(LocalSocketTest, OnlyAUnixPeerIsTheLocalOperator) {
  EXPECT_TRUE(IsUnixSocketPeer("unix:/run/drgate/drgate.sock"));
  EXPECT_TRUE(IsUnixSocketPeer("unix:"));
  EXPECT_FALSE(IsUnixSocketPeer("ipv4:127.0.0.1:50122"));
  EXPECT_FALSE(IsUnixSocketPeer("ipv6:[::1]:50122"));
  EXPECT_FALSE(IsUnixSocketPeer("unix-abstract:drgate"));
  EXPECT_FALSE(IsUnixSocketPeer("inproc"));
  EXPECT_FALSE(IsUnixSocketPeer(""));
  const Principal local = LocalSocketPrincipal();
  EXPECT_EQ(local.identity, "local-socket");
  EXPECT_TRUE(local.viewer);
  EXPECT_TRUE(local.operator_role);
  EXPECT_TRUE(local.commcells.empty());
  EXPECT_TRUE(Authenticator::Authorize(local, Method::kCancelJob, "any").ok());
}

}  // namespace
}  // namespace drgate::plugin
