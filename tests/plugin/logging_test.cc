#include "plugin/logging.h"

#include <gtest/gtest.h>

namespace drgate::plugin {
namespace {

TEST(JsonLogLineTest, IsOneEscapedObject) {
  EXPECT_EQ(
      JsonLogLine("2026-11-27T03:00:00.000Z", "info", "job 2141 on \"cs1\"\nfinished\t\\"),
      R"({"time":"2026-11-27T03:00:00.000Z","level":"info","message":"job 2141 on \"cs1\"\nfinished\t\\"})");
}

TEST(JsonLogLineTest, ControlCharactersAreEscaped) {
  EXPECT_EQ(JsonLogLine("t", "warn", std::string("a\x01") + "b"),
            R"({"time":"t","level":"warn","message":"a\u0001b"})");
}

TEST(JsonLogLineTest, AuditFieldsBecomeKeysOfTheirOwn) {
  EXPECT_EQ(JsonLogLine("t", "info",
                        R"(audit: trigger commcell=prod type=full request_id="up 42" caller="ci" )"
                        R"(job=2141 outcome=submitted)"),
            R"({"time":"t","level":"info","message":"audit: trigger commcell=prod type=full )"
            R"(request_id=\"up 42\" caller=\"ci\" job=2141 outcome=submitted","audit":"trigger",)"
            R"("commcell":"prod","type":"full","request_id":"up 42","caller":"ci","job":"2141",)"
            R"("outcome":"submitted"})");
}

TEST(JsonLogLineTest, AuditFieldsCannotOverwriteTheEnvelope) {
  EXPECT_EQ(JsonLogLine("t", "info", "audit: cancel level=x job=7"),
            R"({"time":"t","level":"info","message":"audit: cancel level=x job=7",)"
            R"("audit":"cancel","job":"7"})");
}

TEST(JsonLogLineTest, AMalformedAuditLineStaysAPlainMessage) {
  EXPECT_EQ(JsonLogLine("t", "info", "audit: trigger x=\"open"),
            R"({"time":"t","level":"info","message":"audit: trigger x=\"open"})");
}

// gRPC's own log lines go through RedactSecrets: a metadata dump or an assertion message that
// quotes a header keeps no credential.
TEST(RedactSecretsTest, CredentialsBecomeRedacted) {
  const std::string canary = "canary-TOKEN-4e2c8a6b";
  EXPECT_EQ(RedactSecrets("rejected header value Bearer " + canary + " here"),
            "rejected header value Bearer [redacted] here");
  EXPECT_EQ(RedactSecrets("key=authorization value=Bearer " + canary + "\nnext line"),
            "key=authorization[redacted]\nnext line");
  EXPECT_EQ(RedactSecrets("\"AUTHORIZATION\": \"" + canary + "\""), "\"AUTHORIZATION[redacted]");
  EXPECT_EQ(RedactSecrets("x-drgate-gateway: 0123abcd"), "x-drgate-gateway[redacted]");
  EXPECT_EQ(RedactSecrets("bearer\t" + canary), "bearer\t[redacted]");
  EXPECT_EQ(RedactSecrets("no secret, forbearers"), "no secret, forbearers");
  EXPECT_EQ(RedactSecrets(""), "");
}

}  // namespace
}  // namespace drgate::plugin
