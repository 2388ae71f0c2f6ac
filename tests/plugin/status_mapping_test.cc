// The error edge keeps echoed caller input small: a 60,000-character job id or CommCell name must
// not turn a NOT_FOUND into trailers no default gRPC client accepts.

#include "plugin/status_mapping.h"

#include <gtest/gtest.h>

#include <string>

#include "core/common/echo.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace drgate::plugin {
namespace {

google::rpc::ErrorInfo InfoOf(const grpc::Status& status) {
  google::rpc::Status rich;
  google::rpc::ErrorInfo info;
  EXPECT_TRUE(rich.ParseFromString(status.error_details()));
  for (const auto& any : rich.details()) {
    if (any.UnpackTo(&info)) break;
  }
  return info;
}

TEST(Abbreviate, KeepsShortValuesAndMarksCutOnes) {
  EXPECT_EQ(Abbreviate("cs1"), "cs1");
  EXPECT_EQ(Abbreviate(std::string(128, 'a')), std::string(128, 'a'));
  EXPECT_EQ(Abbreviate(std::string(129, 'a')), std::string(128, 'a') + "\u2026(129 bytes)");
  EXPECT_EQ(Abbreviate("abcdef", 3), "abc\u2026(6 bytes)");
  // Never splits a UTF-8 sequence: "é" is two bytes, the cut at 3 would fall inside the second.
  EXPECT_EQ(Abbreviate("a\u00e9\u00e9", 4), "a\u00e9\u2026(5 bytes)");
  EXPECT_EQ(Abbreviate("\u00e9\u00e9", 1), "\u2026(4 bytes)");
}

TEST(ToGrpcStatus, AbbreviatesEchoedValuesInMessageAndMetadata) {
  const std::string job_id(60000, '7');
  const Status s = Status(StatusCode::kNotFound,
                          "job '" + job_id + "' was not started by drgate on CommCell 'cs1'",
                          Reason::kJobNotFound)
                       .With("commcell", "cs1")
                       .With("job_id", job_id);
  const grpc::Status g = ToGrpcStatus(s);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::NOT_FOUND);
  const std::string shown = std::string(128, '7') + "\u2026(60000 bytes)";
  EXPECT_EQ(g.error_message(), "job '" + shown + "' was not started by drgate on CommCell 'cs1'");
  const auto info = InfoOf(g);
  EXPECT_EQ(info.reason(), "JOB_NOT_FOUND");
  EXPECT_EQ(info.metadata().at("job_id"), shown);
  EXPECT_EQ(info.metadata().at("commcell"), "cs1");
  // Message and details together, as they travel (details base64: 4/3), far below 8 KiB.
  EXPECT_LT(g.error_message().size() + g.error_details().size() * 4 / 3, 2048u);
}

TEST(ToGrpcStatus, CutsALongMessageWithoutMetadata) {
  const grpc::Status g = ToGrpcStatus(
      Status(StatusCode::kInvalidArgument, std::string(5000, 'x'), Reason::kInvalidTime));
  EXPECT_EQ(g.error_message(), std::string(1024, 'x') + "\u2026(5000 bytes)");
  google::rpc::Status rich;
  ASSERT_TRUE(rich.ParseFromString(g.error_details()));
  EXPECT_EQ(rich.message(), g.error_message());
}

TEST(ToGrpcStatus, LeavesOrdinaryStatusesAlone) {
  const Status s = Status(StatusCode::kNotFound, "CommCell \"prod\" is not configured",
                          Reason::kCommCellNotFound)
                       .With("commcell", "prod");
  const grpc::Status g = ToGrpcStatus(s);
  EXPECT_EQ(g.error_message(), "CommCell \"prod\" is not configured");
  EXPECT_EQ(InfoOf(g).metadata().at("commcell"), "prod");
}

}  // namespace
}  // namespace drgate::plugin
