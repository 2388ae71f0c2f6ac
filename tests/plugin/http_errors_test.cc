// gRPC outcomes as HTTP: status codes, the google.rpc.Status JSON body, Retry-After.

#include "plugin/http_errors.h"

#include <gtest/gtest.h>

#include "plugin/http_gateway.h"
#include "plugin/status_mapping.h"

namespace drgate::plugin {
namespace {

TEST(HttpErrorsTest, EachGrpcCodeHasItsHttpStatus) {
  const std::vector<std::pair<grpc::StatusCode, int>> table = {
      {grpc::StatusCode::OK, 200},
      {grpc::StatusCode::CANCELLED, 499},
      {grpc::StatusCode::UNKNOWN, 500},
      {grpc::StatusCode::INVALID_ARGUMENT, 400},
      {grpc::StatusCode::DEADLINE_EXCEEDED, 504},
      {grpc::StatusCode::NOT_FOUND, 404},
      {grpc::StatusCode::ALREADY_EXISTS, 409},
      {grpc::StatusCode::PERMISSION_DENIED, 403},
      {grpc::StatusCode::UNAUTHENTICATED, 401},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, 429},
      {grpc::StatusCode::FAILED_PRECONDITION, 400},
      {grpc::StatusCode::ABORTED, 409},
      {grpc::StatusCode::OUT_OF_RANGE, 400},
      {grpc::StatusCode::UNIMPLEMENTED, 501},
      {grpc::StatusCode::INTERNAL, 500},
      {grpc::StatusCode::UNAVAILABLE, 503},
      {grpc::StatusCode::DATA_LOSS, 500},
  };
  for (const auto& [code, http] : table) EXPECT_EQ(HttpStatusOf(code), http) << code;
}

TEST(HttpErrorsTest, TheBodyCarriesTheErrorInfoWithItsType) {
  const grpc::Status status =
      ToGrpcStatus(Status(StatusCode::kNotFound, "no job 42 on commcell prod", Reason::kJobNotFound)
                       .With("commcell", "prod"));
  const std::string body = ErrorBody(status);
  EXPECT_NE(body.find(R"("code":5)"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("message":"no job 42 on commcell prod")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("@type":"type.googleapis.com/google.rpc.ErrorInfo")"), std::string::npos)
      << body;
  EXPECT_NE(body.find(R"("reason":"JOB_NOT_FOUND")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("commcell":"prod")"), std::string::npos) << body;
  EXPECT_EQ(RetryAfterSeconds(status), std::nullopt);
}

TEST(HttpErrorsTest, RetryInfoBecomesRetryAfterInWholeSeconds) {
  const grpc::Status status =
      ToGrpcStatus(Status(StatusCode::kUnavailable, "circuit open", Reason::kCircuitOpen)
                       .With("retry_after_ms", "1500"));
  EXPECT_EQ(RetryAfterSeconds(status), 2);
  EXPECT_NE(ErrorBody(status).find("google.rpc.RetryInfo"), std::string::npos);
}

TEST(HttpErrorsTest, AStatusWithoutDetailsStillHasABody) {
  const grpc::Status status(grpc::StatusCode::UNAVAILABLE, "connection refused");
  EXPECT_EQ(ErrorBody(status), R"({"code":14,"message":"connection refused"})");
}

TEST(HttpGatewayTest, GrpcTimeoutsAreReadAndHugeOnesCapped) {
  using namespace std::chrono;
  EXPECT_EQ(ParseGrpcTimeout("30S"), nanoseconds(seconds(30)));
  EXPECT_EQ(ParseGrpcTimeout("500m"), nanoseconds(milliseconds(500)));
  EXPECT_EQ(ParseGrpcTimeout("2H"), nanoseconds(hours(2)));
  // The largest values the format allows would overflow int64 nanoseconds: capped.
  EXPECT_EQ(ParseGrpcTimeout("99999999H"), kMaxGrpcTimeout);
  EXPECT_EQ(ParseGrpcTimeout("99999999M"), kMaxGrpcTimeout);
  EXPECT_EQ(ParseGrpcTimeout("99999999n"), nanoseconds(99999999));
  for (const char* bad : {"", "S", "30", "30s", "-1S", "123456789S", "1.5S", "30 S"}) {
    EXPECT_EQ(ParseGrpcTimeout(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace drgate::plugin
