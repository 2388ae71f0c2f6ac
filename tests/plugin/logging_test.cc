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

}  // namespace
}  // namespace drgate::plugin
