// What the HTTP gateway judges before anything of a request reaches gRPC: the forwarded headers
// (a value gRPC cannot carry made it abort the process) and the framing RFC 9112 asks a server to
// refuse.

#include "plugin/http_request_checks.h"

#include <gtest/gtest.h>

namespace drgate::plugin {
namespace {

using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr char kCanary[] = "canary-TOKEN-0b9e7c5a3f1d";

// The values an attacker sends: a tab, UTF-8, a control byte, DEL, a lone high byte.
std::vector<std::string> BadValues(const std::string& around) {
  return {around + "\t" + around, around + "\xc3\xa9", around + std::string(1, '\x01'),
          around + "\x7f", around + "\xff"};
}

TEST(HttpRequestChecksTest, MetadataValuesArePrintableAscii) {
  EXPECT_TRUE(IsLegalMetadataValue("Bearer abc-DEF_123.~+/="));
  EXPECT_TRUE(IsLegalMetadataValue(""));
  for (const std::string& bad : BadValues("Bearer x")) {
    EXPECT_FALSE(IsLegalMetadataValue(bad)) << bad;
  }
  EXPECT_EQ(EscapeMetadataValue("CN=caf\xc3\xa9\t\\"), "CN=caf\\xc3\\xa9\\x09\\\\");
  EXPECT_TRUE(IsLegalMetadataValue(EscapeMetadataValue("\x01\xff\n")));
}

TEST(HttpRequestChecksTest, AnAuthorizationGrpcCannotCarryIsAnInvalidToken) {
  for (const std::string& bad : BadValues(std::string("Bearer ") + kCanary)) {
    ForwardedHeaderValues values;
    values.authorization = {bad};
    auto checked = CheckForwardedHeaders(values);
    ASSERT_FALSE(checked.ok()) << bad;
    EXPECT_EQ(checked.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(checked.status().reason(), Reason::kInvalidToken);
    EXPECT_EQ(checked.status().message().find("canary"), std::string::npos);
  }
  ForwardedHeaderValues twice;
  twice.authorization = {"Bearer a", "Bearer b"};
  EXPECT_EQ(CheckForwardedHeaders(twice).status().reason(), Reason::kInvalidToken);

  const std::string bearer = std::string("Bearer ") + kCanary;  // the views point into it
  ForwardedHeaderValues good;
  good.authorization = {bearer};
  auto checked = CheckForwardedHeaders(good);
  ASSERT_TRUE(checked.ok());
  EXPECT_EQ(checked->authorization, bearer);
}

TEST(HttpRequestChecksTest, IdempotencyKeysFollowTheRequestIdRule) {
  for (const std::string& bad : BadValues("key")) {
    ForwardedHeaderValues values;
    values.idempotency_key = {bad};
    auto checked = CheckForwardedHeaders(values);
    ASSERT_FALSE(checked.ok()) << bad;
    EXPECT_EQ(checked.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(checked.status().reason(), Reason::kInvalidRequestId);
    EXPECT_EQ(checked.status().message().rfind("Idempotency-Key: ", 0), 0u);
  }
  for (const std::string& bad : {std::string(), std::string(37, 'k'), std::string("a b")}) {
    ForwardedHeaderValues values;
    values.idempotency_key = {bad};  // `bad` outlives the check
    EXPECT_EQ(CheckForwardedHeaders(values).status().reason(), Reason::kInvalidRequestId) << bad;
  }
  ForwardedHeaderValues twice;
  twice.idempotency_key = {"a", "b"};
  EXPECT_EQ(CheckForwardedHeaders(twice).status().reason(), Reason::kInvalidRequestId);

  const std::string longest(36, 'k');
  ForwardedHeaderValues good;
  good.idempotency_key = {longest};
  ASSERT_TRUE(CheckForwardedHeaders(good).ok());
  EXPECT_EQ(CheckForwardedHeaders(good)->idempotency_key, std::string(36, 'k'));
}

TEST(HttpRequestChecksTest, AGrpcTimeoutMustBeGrpcsForm) {
  for (const std::string& bad : BadValues("30S")) {
    ForwardedHeaderValues values;
    values.grpc_timeout = {bad};
    auto checked = CheckForwardedHeaders(values);
    ASSERT_FALSE(checked.ok()) << bad;
    EXPECT_EQ(checked.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(checked.status().reason(), Reason::kInvalidHeader);
    EXPECT_EQ(checked.status().message().rfind("grpc-timeout: ", 0), 0u);
  }
  ForwardedHeaderValues good;
  good.grpc_timeout = {"30S"};
  EXPECT_EQ(CheckForwardedHeaders(good)->timeout, nanoseconds(seconds(30)));
  EXPECT_EQ(CheckForwardedHeaders(ForwardedHeaderValues{})->timeout, std::nullopt);
}

TEST(HttpRequestChecksTest, FramingIsRefusedAsRfc9112Asks) {
  RequestFraming ok;
  ok.host = {"drgate:8080"};
  EXPECT_EQ(CheckFraming(ok), std::nullopt);

  RequestFraming no_host;
  EXPECT_EQ(CheckFraming(no_host)->http_status, 400);
  no_host.version = 10;  // HTTP/1.0 needs none
  EXPECT_EQ(CheckFraming(no_host), std::nullopt);

  RequestFraming two_hosts = ok;
  two_hosts.host.push_back("other");
  EXPECT_EQ(CheckFraming(two_hosts)->http_status, 400);

  RequestFraming both = ok;
  both.transfer_encoding = {"chunked"};
  both.has_content_length = true;
  EXPECT_EQ(CheckFraming(both)->http_status, 400);

  RequestFraming chunked = ok;
  chunked.transfer_encoding = {"Chunked"};
  EXPECT_EQ(CheckFraming(chunked), std::nullopt);

  for (const std::vector<std::string_view>& codings : std::vector<std::vector<std::string_view>>{
           {"gzip"}, {"gzip, chunked"}, {"gzip", "chunked"}, {"identity"}}) {
    RequestFraming unknown = ok;
    unknown.transfer_encoding = codings;
    auto refused = CheckFraming(unknown);
    ASSERT_TRUE(refused.has_value()) << codings[0];
    EXPECT_EQ(refused->http_status, 501) << codings[0];
  }

  RequestFraming old = ok;
  old.version = 10;
  old.transfer_encoding = {"chunked"};
  EXPECT_EQ(CheckFraming(old)->http_status, 400);
}

}  // namespace
}  // namespace drgate::plugin
