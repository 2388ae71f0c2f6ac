// The OpenAPI document compiled into drgate (plugin/openapi.h): valid JSON, Swagger 2.0, drgate's
// version, and every HTTP route of the contract (docs/http.md) with its method.

#include "plugin/openapi.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#ifndef DRGATE_VERSION
#error "DRGATE_VERSION (project(VERSION)) must be defined by tests/plugin/CMakeLists.txt"
#endif

namespace drgate::plugin {
namespace {

nlohmann::json Document() {
  return nlohmann::json::parse(OpenApiDocument(), /*cb=*/nullptr, /*allow_exceptions=*/false);
}

TEST(OpenApiDocumentTest, IsSwagger2WithDrgatesTitleAndVersion) {
  const nlohmann::json doc = Document();
  ASSERT_TRUE(doc.is_object()) << "not a JSON object: " << OpenApiDocument().substr(0, 200);
  EXPECT_EQ(doc.value("swagger", ""), "2.0");
  ASSERT_TRUE(doc.contains("info"));
  EXPECT_EQ(doc["info"].value("version", ""), DRGATE_VERSION);
  EXPECT_EQ(doc["info"].value("title", ""), "drgate DrBackupService");
}

TEST(OpenApiDocumentTest, HasEveryRouteOfTheContract) {
  const nlohmann::json doc = Document();
  ASSERT_TRUE(doc.is_object());
  ASSERT_TRUE(doc.contains("paths") && doc["paths"].is_object());
  const nlohmann::json& paths = doc["paths"];
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"post", "/v1/commcells/{commcell}/backups"},
      {"post", "/v1/commcells/{commcell}/backups:ensureRecent"},
      {"get", "/v1/commcells/{commcell}/jobs/{job_id}"},
      {"get", "/v1/jobs"},
      {"get", "/v1/commcells/{commcell}/jobs"},
      {"post", "/v1/commcells/{commcell}/jobs/{job_id}:cancel"},
      {"get", "/v1/commcells/{commcell}/jobs/{job_id}:watch"},
      {"get", "/v1/commcells"},
  };
  for (const auto& [method, path] : routes) {
    SCOPED_TRACE(method + " " + path);
    ASSERT_TRUE(paths.contains(path)) << "path missing";
    EXPECT_TRUE(paths[path].contains(method)) << "method missing; has " << paths[path].dump();
  }
}

}  // namespace
}  // namespace drgate::plugin
