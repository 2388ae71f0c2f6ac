#include "core/common/audit.h"

#include <gtest/gtest.h>

namespace drgate {
namespace {

TEST(AuditMessageTest, PlainValuesStayBareOthersAreQuoted) {
  EXPECT_EQ(AuditMessage("trigger", {{"commcell", "prod"},
                                     {"type", "full"},
                                     {"request_id", "upgrade 42"},
                                     {"caller", "ci \"main\" \\ bot"},
                                     {"job", "2141"},
                                     {"note", ""},
                                     {"outcome", "a=b"}}),
            R"(audit: trigger commcell=prod type=full request_id="upgrade 42" )"
            R"(caller="ci \"main\" \\ bot" job=2141 note="" outcome="a=b")");
}

TEST(AuditMessageTest, LineBreaksCannotSplitTheRecord) {
  EXPECT_EQ(AuditMessage("cancel", {{"outcome", "line1\nline2\r"}}),
            "audit: cancel outcome=\"line1 line2 \"");
}

TEST(ParseAuditMessageTest, RoundTripsWhatAuditMessageWrites) {
  const AuditFields fields = {{"commcell", "dr-site.2"},
                              {"request_id", "with space and \"quotes\" and \\"},
                              {"caller", ""},
                              {"outcome", "UNAVAILABLE: upstream said x=1 (UPSTREAM_HTTP_5XX)"},
                              {"job", "77"}};
  const auto parsed = ParseAuditMessage(AuditMessage("trigger", fields));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->action, "trigger");
  EXPECT_EQ(parsed->fields, fields);
}

TEST(ParseAuditMessageTest, ActionWithoutFields) {
  const auto parsed = ParseAuditMessage("audit: ping");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->action, "ping");
  EXPECT_TRUE(parsed->fields.empty());
}

TEST(ParseAuditMessageTest, RejectsWhatIsNotAnAuditLine) {
  for (const char* message : {"registry: opened", "audit:trigger x=1", "audit: trigger x",
                              "audit: trigger x=\"unterminated", "audit: trigger x=\"a\"b=1",
                              "audit: Trigger x=1", "audit: trigger X=1", "audit: "}) {
    EXPECT_FALSE(ParseAuditMessage(message).has_value()) << message;
  }
}

}  // namespace
}  // namespace drgate
