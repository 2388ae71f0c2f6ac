#include "plugin/gateway_mark.h"

#include <gtest/gtest.h>

namespace drgate::plugin {
namespace {

using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

// The metadata a call arrives with, as the server sees it (views into `storage`).
Metadata AsReceived(const std::vector<std::pair<std::string, std::string>>& storage) {
  Metadata md;
  for (const auto& [k, v] : storage) md.emplace(grpc::string_ref(k), grpc::string_ref(v));
  return md;
}

TEST(GatewayMarkTest, TheGatewaysOwnCallsAreBelievedWithWhatTheyForward) {
  GatewayMark mark;
  const auto sent = mark.Metadata({"ipv4:10.1.2.3:40000", "ops-runner"});
  auto forwarded = mark.Verify(AsReceived(sent));
  ASSERT_TRUE(forwarded.has_value());
  EXPECT_EQ(forwarded->peer, "ipv4:10.1.2.3:40000");
  EXPECT_EQ(forwarded->certificate, "ops-runner");

  const auto plain = mark.Metadata({"ipv4:10.1.2.3:40001", ""});
  forwarded = mark.Verify(AsReceived(plain));
  ASSERT_TRUE(forwarded.has_value());
  EXPECT_EQ(forwarded->certificate, "");
}

TEST(GatewayMarkTest, AnotherProcessesSecretOrNoneIsNotBelieved) {
  GatewayMark mark;
  GatewayMark other;  // what a caller could at best have learnt: another drgate's secret
  EXPECT_FALSE(mark.Verify(AsReceived(other.Metadata({"ipv4:10.1.2.3:1", "admin"}))));
  EXPECT_FALSE(mark.Verify(AsReceived({{"x-drgate-gateway-certificate", "admin"}})));
  EXPECT_FALSE(mark.Verify(AsReceived({{"x-drgate-gateway", ""}})));
  EXPECT_FALSE(mark.Verify(Metadata{}));
}

TEST(GatewayMarkTest, ASecondSecretBesideTheRightOneIsNotBelieved) {
  GatewayMark mark;
  auto sent = mark.Metadata({"ipv4:10.1.2.3:1", "admin"});
  sent.emplace_back("x-drgate-gateway", "forged");
  EXPECT_FALSE(mark.Verify(AsReceived(sent)));
}

TEST(GatewayMarkTest, EachProcessDrawsItsOwnSecret) {
  GatewayMark a;
  GatewayMark b;
  const auto ma = a.Metadata({});
  const auto mb = b.Metadata({});
  ASSERT_EQ(ma.front().first, "x-drgate-gateway");
  EXPECT_EQ(ma.front().second.size(), 64u);  // 256 bits, hex
  EXPECT_NE(ma.front().second, mb.front().second);
}

}  // namespace
}  // namespace drgate::plugin
