// The HTTP routes read from drgate.proto's google.api.http annotations, and how an HTTP
// request's path, query and body become the request message.

#include "plugin/http_routes.h"

#include <google/protobuf/wrappers.pb.h>
#include <gtest/gtest.h>

#include "drgate/v1/drgate.pb.h"

namespace drgate::plugin {
namespace {

std::vector<Route> Routes() {
  auto routes =
      RoutesOf(*v1::GetJobRequest::descriptor()->file()->FindServiceByName("DrBackupService"));
  EXPECT_TRUE(routes.ok()) << routes.status().ToString();
  return routes.ok() ? *routes : std::vector<Route>{};
}

TEST(HttpRoutesTest, EveryMethodHasTheRoutesOfTheContract) {
  std::vector<std::string> seen;
  for (const Route& r : Routes()) {
    seen.push_back(r.http_method + " " + r.path.text() + " " + r.body + " -> " + r.method->name());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "POST /v1/commcells/{commcell}/backups * -> TriggerBackup",
                      "GET /v1/commcells/{commcell}/jobs/{job_id}  -> GetJob",
                      "GET /v1/jobs  -> ListJobs",
                      "GET /v1/commcells/{commcell}/jobs  -> ListJobs",
                      "GET /v1/commcells/{commcell}/jobs/{job_id}:watch  -> WatchJob",
                      "POST /v1/commcells/{commcell}/jobs/{job_id}:cancel * -> CancelJob",
                      "POST /v1/commcells/{commcell}/backups:ensureRecent * -> EnsureRecentBackup",
                      "GET /v1/commcells  -> ListCommCells",
                  }));
}

TEST(HttpRoutesTest, PathsFindTheirMethodAndVariables) {
  const auto routes = Routes();
  std::map<std::string, std::string> vars;
  bool other_method = false;
  const Route* r = FindRoute(routes, "GET", "/v1/commcells/prod/jobs/2141", vars);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->method->name(), "GetJob");
  EXPECT_EQ(vars, (std::map<std::string, std::string>{{"commcell", "prod"}, {"job_id", "2141"}}));

  r = FindRoute(routes, "GET", "/v1/commcells/prod/jobs/2141:watch", vars);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->method->name(), "WatchJob");
  EXPECT_EQ(vars.at("job_id"), "2141");

  r = FindRoute(routes, "POST", "/v1/commcells/dr%2Dsite/backups:ensureRecent", vars);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->method->name(), "EnsureRecentBackup");
  EXPECT_EQ(vars.at("commcell"), "dr-site");

  r = FindRoute(routes, "GET", "/v1/commcells/prod/jobs", vars);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->method->name(), "ListJobs");
  EXPECT_EQ(vars.at("commcell"), "prod");

  // A known path with another method is a 405; unknown paths and verbs are 404s.
  EXPECT_EQ(FindRoute(routes, "DELETE", "/v1/commcells/prod/jobs/1", vars, &other_method), nullptr);
  EXPECT_TRUE(other_method);
  EXPECT_EQ(FindRoute(routes, "GET", "/v1/commcells/prod/jobs/1:explode", vars, &other_method),
            nullptr);
  EXPECT_FALSE(other_method);
  EXPECT_EQ(FindRoute(routes, "GET", "/v1/commcells//jobs/1", vars), nullptr);
  EXPECT_EQ(FindRoute(routes, "GET", "/v1/commcells/prod/jobs/%zz", vars), nullptr);
  EXPECT_EQ(FindRoute(routes, "GET", "v1/jobs", vars), nullptr);
}

TEST(HttpRoutesTest, QueryParametersFillTheRequest) {
  const auto routes = Routes();
  std::map<std::string, std::string> vars;
  const Route* r = FindRoute(routes, "GET", "/v1/commcells/prod/jobs", vars);
  ASSERT_NE(r, nullptr);
  v1::ListJobsRequest request;
  ASSERT_TRUE(FillRequest(*r, vars,
                          "state=JOB_STATE_FAILED&pageSize=10&page_token=abc%3D&createdAfter="
                          "2026-12-01T00:00:00Z",
                          "", request)
                  .ok());
  EXPECT_EQ(request.commcell(), "prod");
  EXPECT_EQ(request.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(request.page_size(), 10);
  EXPECT_EQ(request.page_token(), "abc=");
  EXPECT_EQ(request.created_after().seconds(), 1796083200);
}

TEST(HttpRoutesTest, BadQueriesAreRefusedNamingTheField) {
  const auto routes = Routes();
  std::map<std::string, std::string> vars;
  const Route* r = FindRoute(routes, "GET", "/v1/jobs", vars);
  ASSERT_NE(r, nullptr);
  for (const auto& [query, names] :
       std::vector<std::pair<std::string, std::string>>{{"colour=red", "colour"},
                                                        {"pageSize=ten", "page_size"},
                                                        {"pageSize=1&pageSize=2", "pageSize"},
                                                        {"state=JOB_STATE_SLEEPING", "state"},
                                                        {"createdAfter=yesterday", "createdAfter"},
                                                        {"pageToken=%G1", "percent"}}) {
    v1::ListJobsRequest request;
    Status s = FillRequest(*r, vars, query, "", request);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << query;
    EXPECT_NE(s.message().find(names), std::string::npos) << query << ": " << s.message();
  }
}

TEST(HttpRoutesTest, BodiesFillTheRequestAndThePathMustAgree) {
  const auto routes = Routes();
  std::map<std::string, std::string> vars;
  const Route* r = FindRoute(routes, "POST", "/v1/commcells/prod/backups", vars);
  ASSERT_NE(r, nullptr);
  v1::TriggerBackupRequest request;
  ASSERT_TRUE(
      FillRequest(*r, vars, "", R"({"backupType": "BACKUP_TYPE_FULL", "requestId": "k1"})", request)
          .ok());
  EXPECT_EQ(request.commcell(), "prod");
  EXPECT_EQ(request.backup_type(), v1::BACKUP_TYPE_FULL);
  EXPECT_EQ(request.request_id(), "k1");

  v1::TriggerBackupRequest empty;
  EXPECT_TRUE(FillRequest(*r, vars, "", "", empty).ok());  // no body: {}
  EXPECT_EQ(empty.commcell(), "prod");

  for (const auto& [body, names] :
       std::vector<std::pair<std::string, std::string>>{{R"({"colour": "red"})", "colour"},
                                                        {R"({"backupType": 7.5})", "backupType"},
                                                        {R"({"backupType": )", "body"},
                                                        {R"({"commcell": "other"})", "commcell"}}) {
    v1::TriggerBackupRequest bad;
    Status s = FillRequest(*r, vars, "", body, bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << body;
    EXPECT_NE(s.message().find(names), std::string::npos) << body << ": " << s.message();
  }
  v1::TriggerBackupRequest queried;
  EXPECT_EQ(FillRequest(*r, vars, "requestId=k1", "", queried).code(),
            StatusCode::kInvalidArgument);
}

// Proto3's JSON mapping, not protobuf's lenient reading of it: protobuf 3.21 takes "yes" and "1"
// for true, a string of digits for an enum, and keeps the last of a key given twice.
TEST(HttpRoutesTest, BodiesAreStrictProto3Json) {
  const auto routes = Routes();
  std::map<std::string, std::string> vars;
  const Route* r = FindRoute(routes, "POST", "/v1/commcells/prod/backups", vars);
  ASSERT_NE(r, nullptr);
  for (const auto& [body, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"compression": "yes"})", "body: compression: must be true or false"},
           {R"({"compression": "true"})", "body: compression: must be true or false"},
           {R"({"compression": 1})", "body: compression: must be true or false"},
           {R"({"backupType": "1"})",
            "body: backupType: must be one of BACKUP_TYPE_UNSPECIFIED, "
            "BACKUP_TYPE_FULL, BACKUP_TYPE_DIFFERENTIAL, or its number"},
           {R"({"backupType": true})", "body: backupType: must be one of"},
           {R"({"requestId": 42})", "body: requestId: must be a JSON string"},
           {R"({"backupType": "BACKUP_TYPE_FULL", "backupType": "BACKUP_TYPE_DIFFERENTIAL"})",
            "body: backupType: given more than once"},
           {R"({"compression": false, "compression": true})",
            "body: compression: given more than once"},
           {R"(["BACKUP_TYPE_FULL"])", "body: must be a JSON object"},
       }) {
    v1::TriggerBackupRequest bad;
    Status s = FillRequest(*r, vars, "", body, bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(s.message().rfind(message, 0), 0u) << body << ": " << s.message();
  }
  // What the mapping allows: value names, enum numbers, true/false, null for a default.
  for (const char* body : {R"({"backupType": "BACKUP_TYPE_DIFFERENTIAL"})",
                           R"({"backupType": 2, "compression": true})",
                           R"({"backup_type": 2, "compression": null})"}) {
    v1::TriggerBackupRequest ok;
    Status s = FillRequest(*r, vars, "", body, ok);
    EXPECT_TRUE(s.ok()) << body << ": " << s.ToString();
    EXPECT_EQ(ok.backup_type(), v1::BACKUP_TYPE_DIFFERENTIAL) << body;
  }
}

// Whether proto3 accepts `text` in a string field: the bytes of a message with it must parse.
bool Proto3String(const std::string& text) {
  google::protobuf::StringValue value;
  value.set_value(text);
  google::protobuf::StringValue again;
  return again.ParseFromString(value.SerializeAsString()) && again.value() == text;
}

// Found by tests/fuzz/fuzz_http_request.cc: a path variable that is not UTF-8 ("%FF", or a raw
// byte >= 0x80) was accepted, and the gRPC server then refused to parse the proto3 request
// (INTERNAL, an HTTP 500); a body or query that is not UTF-8 was refused with a message quoting
// the bytes, which a google.rpc.Status (the error's details) cannot carry.
TEST(HttpRoutesTest, TextThatIsNotUtf8IsRefusedWithAUtf8Message) {
  const auto routes = Routes();
  std::map<std::string, std::string> vars;
  for (const std::string path : {"/v1/commcells/prod/jobs/%FF", "/v1/commcells/prod/jobs/1\xb7",
                                 "/v1/commcells/%C0%AF/jobs/1", "/v1/commcells/%ED%A0%80/jobs/1"}) {
    const Route* r = FindRoute(routes, "GET", path, vars);
    ASSERT_NE(r, nullptr) << path;
    v1::GetJobRequest request;
    Status s = FillRequest(*r, vars, "", "", request);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << path;
    EXPECT_NE(s.message().find("UTF-8"), std::string::npos) << s.message();
    EXPECT_TRUE(Proto3String(s.message())) << path;
  }

  const Route* list = FindRoute(routes, "GET", "/v1/jobs", vars);
  ASSERT_NE(list, nullptr);
  for (const auto& [query, names] : std::vector<std::pair<std::string, std::string>>{
           {"pageToken=%FF", "pageToken"}, {"page%FF=1", "parameter name"}}) {
    v1::ListJobsRequest request;
    Status s = FillRequest(*list, vars, query, "", request);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << query;
    EXPECT_NE(s.message().find(names), std::string::npos) << query << ": " << s.message();
    EXPECT_TRUE(Proto3String(s.message())) << query;
  }

  const Route* trigger = FindRoute(routes, "POST", "/v1/commcells/prod/backups", vars);
  ASSERT_NE(trigger, nullptr);
  v1::TriggerBackupRequest request;
  Status s = FillRequest(*trigger, vars, "", "{\"requestId\": \"k\xb7\"}", request);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Proto3String(s.message())) << s.message();

  // UTF-8 itself is fine, escaped or not.
  const Route* r = FindRoute(routes, "GET", "/v1/commcells/caf%C3%A9/jobs/\xe2\x91\xa0", vars);
  ASSERT_NE(r, nullptr);
  v1::GetJobRequest ok;
  ASSERT_TRUE(FillRequest(*r, vars, "", "", ok).ok());
  EXPECT_EQ(ok.commcell(), "caf\xc3\xa9");
  EXPECT_EQ(ok.job_id(), "\xe2\x91\xa0");
}

TEST(HttpRoutesTest, TemplatesOutsideTheSubsetAreRefused) {
  for (const char* bad :
       {"v1/jobs", "/v1/{a.b}", "/v1/**", "/v1//x", "/v1/{x}/{x}", "/v1/x:", "/v1/{unclosed"}) {
    EXPECT_FALSE(PathTemplate::Parse(bad).ok()) << bad;
  }
  EXPECT_TRUE(PathTemplate::Parse("/v1/commcells/{commcell}:do").ok());
}

}  // namespace
}  // namespace drgate::plugin
