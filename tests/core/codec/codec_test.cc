#include "core/commserv/codec.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace drgate::commserv {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

HttpResponse Resp(int status, std::string content_type, std::string body,
                  std::map<std::string, std::string> headers = {}) {
  HttpResponse r;
  r.status = status;
  r.content_type = std::move(content_type);
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

constexpr char kJson[] = "application/json";
constexpr char kXml[] = "application/xml";

// An expected error: code, reason and a distinctive part of the message.
struct Err {
  StatusCode code;
  std::string reason;
  std::string message_part;
};

void ExpectError(const Status& status, const Err& want, int http_status) {
  EXPECT_EQ(status.code(), want.code) << status.ToString();
  EXPECT_EQ(status.reason(), want.reason) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr(want.message_part));
  ASSERT_TRUE(status.metadata().count("http_status")) << status.ToString();
  EXPECT_EQ(status.metadata().at("http_status"), std::to_string(http_status));
}

// True when `s` is well-formed UTF-8 without control characters.
bool IsCleanUtf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x20 || b == 0x7F) return false;
    std::size_t len = b < 0x80             ? 1
                      : (b & 0xE0) == 0xC0 ? 2
                      : (b & 0xF0) == 0xE0 ? 3
                      : (b & 0xF8) == 0xF0 ? 4
                                           : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

const Err kMalformed(std::string part) {
  return {StatusCode::kInternal, "MALFORMED_UPSTREAM_RESPONSE", std::move(part)};
}
const Err kRejected(std::string part) {
  return {StatusCode::kFailedPrecondition, "UPSTREAM_REJECTED", std::move(part)};
}
const Err kAlreadyRunning(std::string part) {
  return {StatusCode::kAborted, "DR_JOB_ALREADY_RUNNING", std::move(part)};
}
const Err k5xx(std::string part) {
  return {StatusCode::kUnavailable, "UPSTREAM_HTTP_5XX", std::move(part)};
}
const Err k4xx(std::string part) {
  return {StatusCode::kFailedPrecondition, "UPSTREAM_HTTP_4XX", std::move(part)};
}

// ---- the seed document --------------------------------------------------------------------------

// The seed's sample requests send strings ("false", "1"); the SDKs and drgate send a JSON bool and
// ints with the same keys in the same order.
TEST(SeedDocument, JsonRequestHasTheSampleKeysWithTypedValues) {
  const std::string seed_sample =
      R"({"isCompressionEnabled":"false","jobType":1,"backupType":"1"})";
  std::string ours = EncodeDrBackupRequest({BackupType::kFull, false}, WireFormat::kJson);
  std::string typed = seed_sample;
  typed.replace(typed.find("\"false\""), 7, "false");
  typed.replace(typed.find("\"1\"}"), 3, "1");
  EXPECT_EQ(ours, typed);
}

TEST(SeedDocument, XmlRequestMatchesTheSampleElement) {
  // Seed: <TMMsg_CommcellDRBackupReq isCompressionEnabled="1" jobType="IMMEDIATE"
  // backupType="full"/>; the attribute takes the documented values true/false.
  EXPECT_EQ(
      EncodeDrBackupRequest({BackupType::kFull, true}, WireFormat::kXml),
      R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="true" jobType="IMMEDIATE" backupType="full"/>)");
}

TEST(SeedDocument, XmlSampleResponseDecodes) {
  auto result = DecodeDrBackupResponse(Resp(200, kXml,
                                            "<TMMsg_CreateTaskResp taskId=\"434\">\n"
                                            "   <jobIds val=\"2142\" />\n"
                                            " </TMMsg_CreateTaskResp>"),
                                       WireFormat::kXml);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->task_id, 434);
  EXPECT_EQ(result->job_ids, std::vector<std::string>{"2142"});
}

TEST(SeedDocument, JsonSampleResponseAsCorrectedDecodes) {
  auto result = DecodeDrBackupResponse(
      Resp(200, kJson, "{\n   \"taskId\": 433,\n   \"jobIds\": [\n     \"2141\"\n   ]\n }"),
      WireFormat::kJson);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->task_id, 433);
  EXPECT_EQ(result->job_ids, std::vector<std::string>{"2141"});
}

// The sample as printed lacks opening quotes: it is not JSON, and is reported as such.
TEST(SeedDocument, JsonSampleResponseAsPrintedIsMalformed) {
  auto result = DecodeDrBackupResponse(
      Resp(200, kJson, "{\n   taskId\": 433,\n   jobIds\": [\n     \"2141\"\n   ]\n }"),
      WireFormat::kJson);
  ExpectError(result.status(), kMalformed("body is not JSON"), 200);
}

// ---- EncodeDrBackupRequest ----------------------------------------------------------------------

TEST(EncodeDrBackupRequest, GivesExactlyTheDocumentedBodies) {
  struct Case {
    BackupType type;
    bool compression;
    WireFormat format;
    std::string body;
  };
  const Case cases[] = {
      {BackupType::kFull, false, WireFormat::kJson,
       R"({"isCompressionEnabled":false,"jobType":1,"backupType":1})"},
      {BackupType::kFull, true, WireFormat::kJson,
       R"({"isCompressionEnabled":true,"jobType":1,"backupType":1})"},
      {BackupType::kDifferential, false, WireFormat::kJson,
       R"({"isCompressionEnabled":false,"jobType":1,"backupType":3})"},
      {BackupType::kDifferential, true, WireFormat::kJson,
       R"({"isCompressionEnabled":true,"jobType":1,"backupType":3})"},
      {BackupType::kFull, false, WireFormat::kXml,
       R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="false" jobType="IMMEDIATE" backupType="full"/>)"},
      {BackupType::kFull, true, WireFormat::kXml,
       R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="true" jobType="IMMEDIATE" backupType="full"/>)"},
      {BackupType::kDifferential, false, WireFormat::kXml,
       R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="false" jobType="IMMEDIATE" backupType="differential"/>)"},
      {BackupType::kDifferential, true, WireFormat::kXml,
       R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="true" jobType="IMMEDIATE" backupType="differential"/>)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    EXPECT_EQ(EncodeDrBackupRequest({c.type, c.compression}, c.format), c.body);
  }
}

TEST(ContentTypeOf, NamesTheMediaType) {
  EXPECT_STREQ(ContentTypeOf(WireFormat::kJson), "application/json");
  EXPECT_STREQ(ContentTypeOf(WireFormat::kXml), "application/xml");
}

// ---- DecodeDrBackupResponse: successes ----------------------------------------------------------

struct DrSuccessCase {
  std::string name;
  HttpResponse response;
  WireFormat format;
  int64_t task_id;
  std::vector<std::string> job_ids;
};

class DrBackupSuccessTest : public ::testing::TestWithParam<DrSuccessCase> {};

TEST_P(DrBackupSuccessTest, DecodesTaskAndJobIds) {
  const DrSuccessCase& c = GetParam();
  auto result = DecodeDrBackupResponse(c.response, c.format);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->task_id, c.task_id);
  EXPECT_EQ(result->job_ids, c.job_ids);
}

INSTANTIATE_TEST_SUITE_P(
    Codec, DrBackupSuccessTest,
    ::testing::Values(
        DrSuccessCase{"JsonStringId",
                      Resp(200, kJson, R"({"taskId": 433, "jobIds": ["2141"]})"),
                      WireFormat::kJson,
                      433,
                      {"2141"}},
        DrSuccessCase{"JsonNumberId",
                      Resp(200, kJson, R"({"taskId":433,"jobIds":[2141]})"),
                      WireFormat::kJson,
                      433,
                      {"2141"}},
        DrSuccessCase{"JsonSeveralIdsMixed",
                      Resp(200, kJson, R"({"taskId":"435","jobIds":["2143",2144," 2145 "]})"),
                      WireFormat::kJson,
                      435,
                      {"2143", "2144", "2145"}},
        DrSuccessCase{
            "JsonErrorCodeZero",
            Resp(200, kJson, R"({"errorCode":0,"errorMessage":"","taskId":7,"jobIds":["9"]})"),
            WireFormat::kJson,
            7,
            {"9"}},
        // A job that exists must be followed even when the body also reports an error.
        DrSuccessCase{
            "JsonJobIdsWinOverErrorCode",
            Resp(200, kJson, R"({"errorCode":3,"errorMessage":"x","taskId":7,"jobIds":["9"]})"),
            WireFormat::kJson,
            7,
            {"9"}},
        DrSuccessCase{
            "JsonCharsetParameter",
            Resp(200, "application/json; charset=utf-8", R"({"taskId":1,"jobIds":["2"]})"),
            WireFormat::kXml,
            1,
            {"2"}},
        DrSuccessCase{"JsonSniffedWithoutContentType",
                      Resp(200, "", "\xEF\xBB\xBF  {\"taskId\":1,\"jobIds\":[\"2\"]}"),
                      WireFormat::kXml,
                      1,
                      {"2"}},
        DrSuccessCase{
            "XmlSeed",
            Resp(
                200, kXml,
                R"(<TMMsg_CreateTaskResp taskId="434"><jobIds val="2142"/></TMMsg_CreateTaskResp>)"),
            WireFormat::kXml,
            434,
            {"2142"}},
        DrSuccessCase{
            "XmlSeveralIds",
            Resp(
                200, "text/xml",
                R"(<?xml version="1.0"?><TMMsg_CreateTaskResp taskId="5"><jobIds val="10"/><jobIds val="11"/></TMMsg_CreateTaskResp>)"),
            WireFormat::kJson,
            5,
            {"10", "11"}},
        DrSuccessCase{
            "XmlErrorCodeZero",
            Resp(
                200, kXml,
                R"(<TMMsg_CreateTaskResp errorCode="0" taskId="5"><jobIds val="10"/></TMMsg_CreateTaskResp>)"),
            WireFormat::kXml,
            5,
            {"10"}},
        DrSuccessCase{
            "XmlSniffedFromTextPlain",
            Resp(200, "text/plain",
                 R"(<TMMsg_CreateTaskResp taskId="6"><jobIds val="12"/></TMMsg_CreateTaskResp>)"),
            WireFormat::kJson,
            6,
            {"12"}},
        DrSuccessCase{"Http201",
                      Resp(201, kJson, R"({"taskId":1,"jobIds":["2"]})"),
                      WireFormat::kJson,
                      1,
                      {"2"}}),
    [](const ::testing::TestParamInfo<DrSuccessCase>& info) { return info.param.name; });

// ---- DecodeDrBackupResponse: errors -------------------------------------------------------------

struct DrErrorCase {
  std::string name;
  HttpResponse response;
  WireFormat format;
  Err want;
};

class DrBackupErrorTest : public ::testing::TestWithParam<DrErrorCase> {};

TEST_P(DrBackupErrorTest, MapsToStatus) {
  const DrErrorCase& c = GetParam();
  auto result = DecodeDrBackupResponse(c.response, c.format);
  ASSERT_FALSE(result.ok());
  ExpectError(result.status(), c.want, c.response.status);
  EXPECT_TRUE(IsCleanUtf8(result.status().message())) << result.status().message();
}

const char kHtml500[] =
    "<!DOCTYPE html>\n<html><head><title>500 - Internal server error.</title></head>\n"
    "<body><h1>Server Error</h1></body></html>";

INSTANTIATE_TEST_SUITE_P(
    Codec, DrBackupErrorTest,
    ::testing::Values(
        // Well-formed bodies lacking what a success needs.
        DrErrorCase{"EmptyJobIds", Resp(200, kJson, R"({"taskId":433,"jobIds":[]})"),
                    WireFormat::kJson, kMalformed("jobIds is empty")},
        DrErrorCase{"MissingTaskId", Resp(200, kJson, R"({"jobIds":["2141"]})"), WireFormat::kJson,
                    kMalformed("missing taskId")},
        DrErrorCase{"MissingJobIds", Resp(200, kJson, R"({"taskId":433})"), WireFormat::kJson,
                    kMalformed("missing jobIds")},
        DrErrorCase{"EmptyObject", Resp(200, kJson, "{}"), WireFormat::kJson,
                    kMalformed("missing taskId")},
        DrErrorCase{"TaskIdNotANumber", Resp(200, kJson, R"({"taskId":"x","jobIds":["1"]})"),
                    WireFormat::kJson, kMalformed("invalid taskId")},
        DrErrorCase{"TaskIdZero", Resp(200, kJson, R"({"taskId":0,"jobIds":["1"]})"),
                    WireFormat::kJson, kMalformed("invalid taskId")},
        DrErrorCase{"JobIdNotDigits", Resp(200, kJson, R"({"taskId":1,"jobIds":["../x"]})"),
                    WireFormat::kJson, kMalformed("invalid job id \"../x\"")},
        DrErrorCase{"JobIdNegative", Resp(200, kJson, R"({"taskId":1,"jobIds":[-4]})"),
                    WireFormat::kJson, kMalformed("invalid job id")},
        DrErrorCase{"JobIdsNotAList", Resp(200, kJson, R"({"taskId":1,"jobIds":"1"})"),
                    WireFormat::kJson, kMalformed("jobIds is not a list")},
        DrErrorCase{"JsonArrayRoot", Resp(200, kJson, R"([{"taskId":1}])"), WireFormat::kJson,
                    kMalformed("body is not a JSON object")},
        DrErrorCase{
            "XmlMissingTaskId",
            Resp(200, kXml, R"(<TMMsg_CreateTaskResp><jobIds val="1"/></TMMsg_CreateTaskResp>)"),
            WireFormat::kXml, kMalformed("missing taskId")},
        DrErrorCase{"XmlEmptyJobIds", Resp(200, kXml, R"(<TMMsg_CreateTaskResp taskId="4"/>)"),
                    WireFormat::kXml, kMalformed("missing jobIds")},
        DrErrorCase{"XmlGenericRespCodeZero",
                    Resp(200, kXml, R"(<TMMsg_GenericResp errorCode="0" errorMessage=""/>)"),
                    WireFormat::kXml, kMalformed("missing taskId")},
        // Refusals inside HTTP 200.
        DrErrorCase{
            "JsonErrorCode",
            Resp(200, kJson, R"({"errorCode":2,"errorMessage":"User does not have permission"})"),
            WireFormat::kJson, kRejected("User does not have permission (errorCode 2)")},
        DrErrorCase{"JsonErrorCodeAsString",
                    Resp(200, kJson, R"({"errorCode":"87","errorMessage":"Invalid input"})"),
                    WireFormat::kJson, kRejected("Invalid input (errorCode 87)")},
        DrErrorCase{"JsonErrorCodeWithoutMessage", Resp(200, kJson, R"({"errorCode":9})"),
                    WireFormat::kJson, kRejected("(no message) (errorCode 9)")},
        DrErrorCase{"JsonErrorMessageOnly",
                    Resp(200, kJson, R"({"errorMessage":"Request declined"})"), WireFormat::kJson,
                    kRejected("Request declined")},
        DrErrorCase{
            "JsonErrList",
            Resp(200, kJson,
                 R"({"errList":[{"errLogMessage":"Operation not allowed","errorCode":1}]})"),
            WireFormat::kJson, kRejected("Operation not allowed")},
        DrErrorCase{"JsonErrorObject",
                    Resp(200, kJson, R"({"error":{"errorCode":4,"errorMessage":"Bad state"}})"),
                    WireFormat::kJson, kRejected("Bad state (errorCode 4)")},
        DrErrorCase{
            "XmlTMMsgGenericResp",
            Resp(200, kXml, R"(<TMMsg_GenericResp errorCode="2" errorMessage="No permission"/>)"),
            WireFormat::kXml, kRejected("No permission (errorCode 2)")},
        DrErrorCase{"XmlCVGuiGenericResp",
                    Resp(200, kXml, R"(<CVGui_GenericResp errorCode="5" errorMessage="Denied"/>)"),
                    WireFormat::kXml, kRejected("Denied (errorCode 5)")},
        DrErrorCase{
            "XmlAppGenericResp",
            Resp(200, kXml, R"(<App_GenericResp errorCode="6" errorMessage="Not licensed"/>)"),
            WireFormat::kXml, kRejected("Not licensed (errorCode 6)")},
        DrErrorCase{
            "XmlErrListChild",
            Resp(200, kXml,
                 R"(<App_LoginResp><errList errorCode="1" errLogMessage="Nope"/></App_LoginResp>)"),
            WireFormat::kXml, kRejected("Nope (errorCode 1)")},
        // The concurrency refusal.
        DrErrorCase{
            "JsonAlreadyRunning",
            Resp(
                200, kJson,
                R"({"errorCode":1,"errorMessage":"Failed to start: a DR backup job is already running."})"),
            WireFormat::kJson,
            kAlreadyRunning("a DR backup job is already running: Failed to start")},
        DrErrorCase{
            "XmlAlreadyRunning",
            Resp(200, kXml,
                 R"(<TMMsg_GenericResp errorCode="1" errorMessage="Job is Already Running"/>)"),
            WireFormat::kXml, kAlreadyRunning("Job is Already Running (errorCode 1)")},
        DrErrorCase{"PlainText400AlreadyRunning",
                    Resp(400, "text/plain", "DR backup job is already running\n"),
                    WireFormat::kJson,
                    kAlreadyRunning("HTTP 400: DR backup job is already running")},
        // HTTP errors.
        DrErrorCase{"PlainText400",
                    Resp(400, "text/plain", "\n  Bad Request: invalid backupType\nmore"),
                    WireFormat::kJson, k4xx("HTTP 400: Bad Request: invalid backupType")},
        DrErrorCase{"Json403",
                    Resp(403, kJson, R"({"errorCode":403,"errorMessage":"Forbidden by policy"})"),
                    WireFormat::kJson, k4xx("HTTP 403: Forbidden by policy (errorCode 403)")},
        DrErrorCase{
            "Html404",
            Resp(404, "text/html",
                 "<html><head><title>404 - File or directory not found.</title></head></html>"),
            WireFormat::kJson, k4xx("HTTP 404: 404 - File or directory not found.")},
        DrErrorCase{"Html500", Resp(500, "text/html", kHtml500), WireFormat::kJson,
                    k5xx("HTTP 500: 500 - Internal server error.")},
        DrErrorCase{"Html502", Resp(502, "text/html", "<title>502 Bad Gateway</title>"),
                    WireFormat::kJson, k5xx("HTTP 502: 502 Bad Gateway")},
        DrErrorCase{"Html503",
                    Resp(503, "text/html; charset=us-ascii",
                         "<HTML><HEAD><TITLE>Service Unavailable</TITLE></HEAD></HTML>"),
                    WireFormat::kXml, k5xx("HTTP 503: Service Unavailable")},
        DrErrorCase{"Empty504", Resp(504, "", ""), WireFormat::kJson,
                    k5xx("HTTP 504: (empty body)")},
        DrErrorCase{"RateLimited429", Resp(429, "text/plain", "Too Many Requests"),
                    WireFormat::kJson,
                    Err{StatusCode::kUnavailable, "UPSTREAM_RATE_LIMITED",
                        "HTTP 429: rate limited: Too Many Requests"}},
        DrErrorCase{"Unauthorized401",
                    Resp(401, kJson, R"({"errorCode":5,"errorMessage":"Access denied"})"),
                    WireFormat::kJson,
                    Err{StatusCode::kUnauthenticated, "UPSTREAM_UNAUTHENTICATED",
                        "HTTP 401: Access denied"}},
        DrErrorCase{"Redirect302",
                    Resp(302, "text/html", "",
                         {{"location", "https://cs/commandcenter/api/CommServ/DRBackup"}}),
                    WireFormat::kJson,
                    Err{StatusCode::kFailedPrecondition, "UPSTREAM_REDIRECTED",
                        "redirect to https://cs/commandcenter/api"}},
        DrErrorCase{"StatusZero", Resp(0, "", ""), WireFormat::kJson,
                    kMalformed("unexpected HTTP status 0")},
        // Bodies that are not what they claim.
        DrErrorCase{"TruncatedJson", Resp(200, kJson, R"({"taskId": 433, "jobIds": ["21)"),
                    WireFormat::kJson, kMalformed("body is not JSON: ")},
        DrErrorCase{"TruncatedXml",
                    Resp(200, kXml, R"(<TMMsg_CreateTaskResp taskId="434"><jobIds val="2142"/>)"),
                    WireFormat::kXml, kMalformed("body is not XML: ")},
        DrErrorCase{"XmlCutInsideAttribute", Resp(200, kXml, R"(<TMMsg_CreateTaskResp taskId="4)"),
                    WireFormat::kXml, kMalformed("body is not XML: ")},
        DrErrorCase{"PlainTextBody", Resp(200, "text/plain", "OK job started"), WireFormat::kJson,
                    kMalformed("body is not JSON: starts with \"OK job started\"")},
        DrErrorCase{"PlainTextBodyXmlExpected", Resp(200, "", "Done"), WireFormat::kXml,
                    kMalformed("body is not XML: starts with \"Done\"")},
        DrErrorCase{"JsonContentTypeXmlBody", Resp(200, kJson, "<a/>"), WireFormat::kXml,
                    kMalformed("body is not JSON")},
        DrErrorCase{"EmptyBody", Resp(200, kJson, ""), WireFormat::kJson,
                    kMalformed("empty response body")},
        DrErrorCase{"WhitespaceBody", Resp(200, "", " \r\n"), WireFormat::kJson,
                    kMalformed("empty response body")},
        DrErrorCase{"HtmlOn200",
                    Resp(200, "text/html; charset=utf-8", "<html><title>Login</title></html>"),
                    WireFormat::kJson, kMalformed("unexpected content type text/html")},
        DrErrorCase{"InvalidUtf8Json", Resp(200, kJson, "{\"taskId\":1,\"jobIds\":[\"\xff\"]}"),
                    WireFormat::kJson, kMalformed("body is not JSON")},
        DrErrorCase{"DeeplyNestedJson", Resp(200, kJson, std::string(100000, '[')),
                    WireFormat::kJson, kMalformed("nested deeper than 64 levels")}),
    [](const ::testing::TestParamInfo<DrErrorCase>& info) { return info.param.name; });

TEST(DecodeDrBackupResponse, RejectionCarriesTheUpstreamErrorCode) {
  auto result = DecodeDrBackupResponse(Resp(200, kJson, R"({"errorCode":2,"errorMessage":"No"})"),
                                       WireFormat::kJson);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().metadata().at("upstream_error_code"), "2");
}

TEST(DecodeDrBackupResponse, RateLimitCarriesRetryAfter) {
  auto result = DecodeDrBackupResponse(
      Resp(429, "", "", {{"retry-after", "30"}, {"x-ratelimit-remaining", "0"}}),
      WireFormat::kJson);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().metadata().at("retry_after_seconds"), "30");
}

TEST(DecodeDrBackupResponse, UpstreamTextIsSanitizedAndBounded) {
  std::string message = "bad\x01thing\xff\xfe\ttab " + std::string(2000, 'x') + "\r\nnext";
  auto result = DecodeDrBackupResponse(Resp(400, "text/plain", message), WireFormat::kJson);
  ASSERT_FALSE(result.ok());
  const std::string& text = result.status().message();
  EXPECT_THAT(text, HasSubstr("bad?thing?? tab"));
  EXPECT_THAT(text, HasSubstr("..."));
  EXPECT_LE(text.size(), 512u + 20u);  // "HTTP 400: " plus at most 512 bytes of upstream text
  EXPECT_TRUE(IsCleanUtf8(text));
}

// Every prefix of valid answers and some garbage: no crash, every failure is well-formed.
TEST(DecodeDrBackupResponse, SurvivesEveryTruncation) {
  const std::pair<std::string, std::string> bodies[] = {
      {kJson,
       R"({"taskId":433,"jobIds":["2141",2142],"errorCode":0,"errList":[{"errLogMessage":"x"}]})"},
      {kXml,
       R"(<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><TMMsg_CreateTaskResp taskId="434"><jobIds val="2142"/></TMMsg_CreateTaskResp>)"},
      {"", "<html><title>\xe2\x82\xac</title>"},
  };
  for (const auto& [type, body] : bodies) {
    for (std::size_t n = 0; n <= body.size(); ++n) {
      for (int status : {200, 400, 500}) {
        SCOPED_TRACE(std::to_string(status) + " " + body.substr(0, n));
        HttpResponse r = Resp(status, type, body.substr(0, n));
        for (WireFormat f : {WireFormat::kJson, WireFormat::kXml}) {
          auto result = DecodeDrBackupResponse(r, f);
          if (!result.ok()) {
            EXPECT_TRUE(IsCleanUtf8(result.status().message()));
            EXPECT_EQ(result.status().metadata().count("http_status"), 1u);
          }
        }
        (void)DecodeJobList(r);
        (void)DecodeJobListPage(r);
        (void)DecodeDrBackupOptions(r);
        (void)DecodeLoginResponse(r);
        (void)DecodeRenewResponse(r);
        (void)DecodeGenericResponse(r);
      }
    }
  }
}

// ---- Login and renewal --------------------------------------------------------------------------

TEST(EncodeLoginRequest, SendsBase64OfUtf8Password) {
  struct Case {
    std::string password;
    std::string base64;
  };
  const Case cases[] = {
      {"", ""},
      {"a", "YQ=="},
      {"ab", "YWI="},
      {"abc", "YWJj"},
      {"p\xc3\xa4ssw\xc3\xb6rd\xe2\x82\xac", "cMOkc3N3w7ZyZOKCrA=="},            // "pässwörd€"
      {"\xd1\x81\xd0\xb5\xd0\xba\xd1\x80\xd0\xb5\xd1\x82", "0YHQtdC60YDQtdGC"},  // "секрет"
      {"p@ss\"w0rd\\", "cEBzcyJ3MHJkXA=="},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.password);
    EXPECT_EQ(EncodeLoginRequest("admin", c.password, "drgate-1"),
              R"({"username":"admin","password":")" + c.base64 +
                  R"(","domain":"","deviceId":"drgate-1","timeout":30})");
  }
}

TEST(EncodeLoginRequest, EscapesUserNameAndNeverSendsThePasswordInClear) {
  const std::string body = EncodeLoginRequest("dom\\us\"er", "hunter2", "dev");
  EXPECT_THAT(body, HasSubstr(R"("username":"dom\\us\"er")"));
  EXPECT_THAT(body, Not(HasSubstr("hunter2")));
  // Invalid UTF-8 in a name does not throw; it is replaced.
  EXPECT_THAT(EncodeLoginRequest("a\xff", "x", "d"), HasSubstr("\"username\":\"a\xef\xbf\xbd\""));
}

TEST(DecodeLoginResponse, ReturnsTheToken) {
  struct Case {
    std::string body;
    std::string token;
  };
  const Case cases[] = {
      {R"({"aliasName":"1","userGUID":"x","token":"QSDK 3856abc","userName":"admin"})",
       "QSDK 3856abc"},
      {R"({"token":"3856abc","userName":"admin","errList":[]})", "QSDK 3856abc"},
      {R"({"token":" QSDK 3856abc ","errorCode":0})", "QSDK 3856abc"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    auto token = DecodeLoginResponse(Resp(200, kJson, c.body));
    ASSERT_TRUE(token.ok()) << token.status().ToString();
    EXPECT_EQ(*token, c.token);
  }
}

TEST(DecodeLoginResponse, MapsFailures) {
  const Err login_failed{StatusCode::kUnauthenticated, "UPSTREAM_LOGIN_FAILED", ""};
  struct Case {
    std::string name;
    HttpResponse response;
    Err want;
  };
  auto with = [](Err e, std::string part) {
    e.message_part = std::move(part);
    return e;
  };
  const Case cases[] = {
      {"ErrList",
       Resp(200, kJson,
            R"({"errList":[{"errLogMessage":"Invalid Username or Password","errorCode":1}]})"),
       with(login_failed, "login failed: Invalid Username or Password (errorCode 1)")},
      {"AccountLocked",
       Resp(
           200, kJson,
           R"({"errList":[{"errLogMessage":"Account locked"}],"isAccountLocked":true,"remainingLockTime":300})"),
       with(login_failed, "; account locked (remainingLockTime 300)")},
      {"Http401", Resp(401, kJson, R"({"errorCode":5,"errorMessage":"Access denied"})"),
       with(login_failed, "login failed: HTTP 401: Access denied (errorCode 5)")},
      {"Http401Empty", Resp(401, "", ""),
       with(login_failed, "login failed: HTTP 401: (empty body)")},
      {"ErrorCodeIn200", Resp(200, kJson, R"({"errorCode":1,"errorMessage":"User disabled"})"),
       with(login_failed, "User disabled")},
      {"Html503", Resp(503, "text/html", kHtml500), k5xx("HTTP 503: 500 - Internal server error.")},
      {"MissingToken", Resp(200, kJson, R"({"userName":"admin"})"), kMalformed("missing token")},
      {"EmptyToken", Resp(200, kJson, R"({"token":""})"), kMalformed("missing token")},
      {"TokenNotString", Resp(200, kJson, R"({"token":42})"), kMalformed("missing token")},
      {"TokenWithNewline", Resp(200, kJson, R"({"token":"QSDK abc\r\nX-Evil: 1"})"),
       kMalformed("token contains characters not allowed in a header")},
      {"NotJson", Resp(200, "text/plain", "welcome"), kMalformed("body is not JSON")},
      {"HtmlOn200", Resp(200, "text/html", "<title>Sign in</title>"),
       kMalformed("unexpected content type text/html")},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto token = DecodeLoginResponse(c.response);
    ASSERT_FALSE(token.ok());
    ExpectError(token.status(), c.want, c.response.status);
    EXPECT_THAT(token.status().message(), Not(HasSubstr("abc")));
  }
}

TEST(DecodeLoginResponse, AccountLockedIsMetadata) {
  auto token = DecodeLoginResponse(
      Resp(200, kJson, R"({"errList":[{"errLogMessage":"Locked"}],"isAccountLocked":true})"));
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().metadata().at("account_locked"), "true");
}

TEST(EncodeRenewRequest, SendsSessionIdAndDeviceId) {
  EXPECT_EQ(EncodeRenewRequest("QSDK abc", "drgate-1"),
            R"({"sessionId":"QSDK abc","deviceId":"drgate-1"})");
}

TEST(DecodeRenewResponse, ReturnsTheNewToken) {
  auto token = DecodeRenewResponse(Resp(200, kJson, R"({"token":"QSDK def"})"));
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(*token, "QSDK def");
}

TEST(DecodeRenewResponse, MapsFailures) {
  const Err renew_failed{StatusCode::kUnauthenticated, "UPSTREAM_RENEW_FAILED", ""};
  auto with = [](Err e, std::string part) {
    e.message_part = std::move(part);
    return e;
  };
  struct Case {
    std::string name;
    HttpResponse response;
    Err want;
  };
  const Case cases[] = {
      {"ErrorObject",
       Resp(200, kJson, R"({"error":{"errorCode":1,"errorMessage":"Session expired"}})"),
       with(renew_failed, "token renewal failed: Session expired (errorCode 1)")},
      {"ErrorObjectWithoutText", Resp(200, kJson, R"({"error":{}})"),
       with(renew_failed, "no token in the answer")},
      {"Http401", Resp(401, "text/plain", "Unauthorized"),
       with(renew_failed, "token renewal failed: HTTP 401: Unauthorized")},
      {"Http500", Resp(500, "text/html", "<title>Oops</title>"), k5xx("HTTP 500: Oops")},
      {"NoToken", Resp(200, kJson, "{}"), kMalformed("missing token")},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto token = DecodeRenewResponse(c.response);
    ASSERT_FALSE(token.ok());
    ExpectError(token.status(), c.want, c.response.status);
  }
}

TEST(NormalizeToken, PrependsQsdkOnlyWhenThereIsNoPrefix) {
  const std::pair<std::string, std::string> cases[] = {
      {"3856abc", "QSDK 3856abc"},
      {"QSDK 3856abc", "QSDK 3856abc"},
      {"qsdk 3856abc", "QSDK 3856abc"},
      {"  QSDK   3856abc \n", "QSDK 3856abc"},
      {"SAML xyz", "SAML xyz"},
      {"QSDK3856", "QSDK QSDK3856"},
      {"", ""},
      {"   ", ""},
  };
  for (const auto& [in, out] : cases) {
    SCOPED_TRACE(in);
    EXPECT_EQ(NormalizeToken(in), out);
  }
}

// ---- Job list -----------------------------------------------------------------------------------

TEST(DecodeJobList, ReadsEveryField) {
  auto jobs = DecodeJobList(Resp(200, kJson, R"({
    "totalRecordsWithoutPaging": 2,
    "jobs": [
      {"jobSummary": {"jobId": 2141, "status": "Running", "percentComplete": 40,
                      "jobStartTime": 1700000000, "jobEndTime": 0, "lastUpdateTime": 1700000100,
                      "pendingReason": "", "currentPhaseName": "Backup",
                      "localizedOperationName": "DR Backup", "jobType": "CommServe DR"}},
      {"jobSummary": {"jobId": "2142", "status": "Completed w/ one or more errors",
                      "percentComplete": "100", "jobStartTime": "1700000200",
                      "jobEndTime": "1700000900", "lastUpdateTime": 1700000900.0,
                      "pendingReason": "<br>Upload to cloud failed.<br>",
                      "currentPhaseName": 2, "localizedOperationName": "DR Backup"}}
    ]})"));
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  ASSERT_EQ(jobs->size(), 2u);
  const JobSummary& a = (*jobs)[0];
  EXPECT_EQ(a.job_id, "2141");
  EXPECT_EQ(a.status, "Running");
  EXPECT_EQ(a.percent_complete, 40);
  EXPECT_EQ(a.start_time, 1700000000);
  EXPECT_EQ(a.end_time, 0);
  EXPECT_EQ(a.last_update_time, 1700000100);
  EXPECT_EQ(a.pending_reason, "");
  EXPECT_EQ(a.phase, "Backup");
  EXPECT_EQ(a.operation, "DR Backup");
  const JobSummary& b = (*jobs)[1];
  EXPECT_EQ(b.job_id, "2142");
  EXPECT_EQ(b.status, "Completed w/ one or more errors");
  EXPECT_EQ(b.percent_complete, 100);
  EXPECT_EQ(b.start_time, 1700000200);
  EXPECT_EQ(b.end_time, 1700000900);
  EXPECT_EQ(b.last_update_time, 1700000900);
  EXPECT_EQ(b.pending_reason, "Upload to cloud failed.");
  EXPECT_EQ(b.phase, "2");
}

TEST(DecodeJobListPage, KeepsTheWholeListsSizeForPaging) {
  auto page = DecodeJobListPage(Resp(200, kJson, R"({"totalRecordsWithoutPaging": "57",
      "jobs": [{"jobSummary": {"jobId": 9}}]})"));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->total, 57);
  ASSERT_EQ(page->jobs.size(), 1u);
  EXPECT_EQ(page->jobs[0].job_id, "9");
  // Missing or smaller than the page: the page's own size.
  EXPECT_EQ(DecodeJobListPage(Resp(200, kJson, R"({"jobs":[{"jobSummary":{"jobId":1}},
      {"jobSummary":{"jobId":2}}]})"))
                ->total,
            2);
  EXPECT_EQ(DecodeJobListPage(Resp(200, kJson, R"({"totalRecordsWithoutPaging":-3,
      "jobs":[{"jobSummary":{"jobId":1}}]})"))
                ->total,
            1);
  EXPECT_EQ(DecodeJobListPage(Resp(200, kJson, R"({"totalRecordsWithoutPaging":0})"))->total, 0);
  EXPECT_EQ(DecodeJobListPage(Resp(500, "text/html", "<title>Down</title>")).status().reason(),
            "UPSTREAM_HTTP_5XX");
}

// ---- DR backup options
// ----------------------------------------------------------------------------

TEST(DecodeDrBackupOptions, ReadsTheDocumentedAnswer) {
  auto options = DecodeDrBackupOptions(Resp(200, kJson, R"({"properties": {
      "DRDumpLocation": "C:\\Program Files\\Commvault\\DR", "UseLocalDrive": 1,
      "UseNetworkShare": 0, "isUserAccountEnabled": 0, "DRNumFulls": 5,
      "uploadBackupMetadataToCloud": false}})"));
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->destination, "C:\\Program Files\\Commvault\\DR");
  EXPECT_EQ(options->retained_fulls, 5);
  EXPECT_EQ(options->local_drive, true);
  EXPECT_EQ(options->network_share, false);
  EXPECT_EQ(options->cloud_upload, false);
  EXPECT_EQ(CopyLeavesHost(*options), false);
}

TEST(DecodeDrBackupOptions, ToleratesQuotedNumbersBooleansAndNoWrapper) {
  auto options = DecodeDrBackupOptions(Resp(200, kJson, R"({"DRDumpLocation": "\\\\nas01\\dr",
      "UseLocalDrive": "false", "UseNetworkShare": true, "DRNumFulls": "7",
      "uploadBackupMetadataToCloud": "0"})"));
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->destination, "\\\\nas01\\dr");
  EXPECT_EQ(options->retained_fulls, 7);
  EXPECT_EQ(options->local_drive, false);
  EXPECT_EQ(options->network_share, true);
  EXPECT_EQ(options->cloud_upload, false);
  EXPECT_EQ(CopyLeavesHost(*options), true);
}

TEST(DecodeDrBackupOptions, MissingOrOddFieldsAreUnknownNotFalse) {
  auto options = DecodeDrBackupOptions(Resp(200, kJson, R"({"properties": {
      "UseNetworkShare": 0, "DRNumFulls": "many", "uploadBackupMetadataToCloud": 2}})"));
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->destination, std::nullopt);
  EXPECT_EQ(options->retained_fulls, std::nullopt);
  EXPECT_EQ(options->local_drive, std::nullopt);
  EXPECT_EQ(options->network_share, false);
  EXPECT_EQ(options->cloud_upload, std::nullopt);
  EXPECT_EQ(CopyLeavesHost(*options), std::nullopt);
  EXPECT_EQ(*DecodeDrBackupOptions(Resp(200, kJson, "{}")), DrBackupOptions{});
}

TEST(DecodeDrBackupOptions, ANamedCloudLibraryMeansTheUploadIsOn) {
  auto options = DecodeDrBackupOptions(Resp(200, kJson, R"({"properties": {
      "UseNetworkShare": 0, "uploadBackupMetadataToCloud": 0,
      "cloudLibrary": {"libraryName": "MetallicDR", "libraryId": 12}}})"));
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->cloud_upload, true);
  EXPECT_EQ(CopyLeavesHost(*options), true);
  // An empty library object names nothing.
  auto empty = DecodeDrBackupOptions(Resp(200, kJson, R"({"properties": {
      "uploadBackupMetadataToCloud": 0, "cloudLibrary": {"libraryName": "", "libraryId": 0}}})"));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->cloud_upload, false);
}

TEST(DecodeDrBackupOptions, NotFoundOrUnreadableIsUnavailable) {
  auto missing = DecodeDrBackupOptions(Resp(404, "text/html", "<title>Not Found</title>"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().reason(), Reason::kDrOptionsUnavailable);
  EXPECT_EQ(missing.status().metadata().at("http_status"), "404");
  for (const char* body : {"{not json", "[1, 2]", "\"text\""}) {
    SCOPED_TRACE(body);
    auto unreadable = DecodeDrBackupOptions(Resp(200, kJson, body));
    ASSERT_FALSE(unreadable.ok());
    EXPECT_EQ(unreadable.status().reason(), Reason::kDrOptionsUnavailable);
  }
  // Other failures keep their usual meaning.
  EXPECT_EQ(DecodeDrBackupOptions(Resp(503, "text/plain", "busy")).status().reason(),
            "UPSTREAM_HTTP_5XX");
  EXPECT_EQ(DecodeDrBackupOptions(Resp(401, kJson, R"({"errorCode":5})")).status().code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(DecodeDrBackupOptions(Resp(200, kJson, R"({"errorCode":2,"errorMessage":"no"})"))
                .status()
                .reason(),
            "UPSTREAM_REJECTED");
}

TEST(DecodeJobList, ToleratesOddValues) {
  auto jobs = DecodeJobList(Resp(200, kJson, R"({"jobs":[{"jobSummary":{"jobId":" 7 ",
      "percentComplete":250, "jobStartTime":"soon", "jobEndTime":-5, "status":null}}]})"));
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].job_id, "7");
  EXPECT_EQ((*jobs)[0].percent_complete, 100);
  EXPECT_EQ((*jobs)[0].start_time, 0);
  EXPECT_EQ((*jobs)[0].end_time, 0);
  EXPECT_EQ((*jobs)[0].status, "");
}

TEST(DecodeJobList, NoRecordsIsAnEmptyList) {
  for (const char* body :
       {R"({"totalRecordsWithoutPaging":0})", R"({"totalRecordsWithoutPaging":0,"jobs":[]})", "{}",
        R"({"jobs":null})"}) {
    SCOPED_TRACE(body);
    auto jobs = DecodeJobList(Resp(200, kJson, body));
    ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
    EXPECT_TRUE(jobs->empty());
  }
}

TEST(DecodeJobList, MapsFailures) {
  struct Case {
    std::string name;
    HttpResponse response;
    Err want;
  };
  const Case cases[] = {
      {"JobsNotAList", Resp(200, kJson, R"({"jobs":{}})"), kMalformed("jobs is not a list")},
      {"NoSummary", Resp(200, kJson, R"({"jobs":[{}]})"), kMalformed("jobs[0] has no jobSummary")},
      {"NoJobId", Resp(200, kJson, R"({"jobs":[{"jobSummary":{"jobId":1}},{"jobSummary":{}}]})"),
       kMalformed("jobs[1].jobSummary has no jobId")},
      {"BadJobId", Resp(200, kJson, R"({"jobs":[{"jobSummary":{"jobId":"1 OR 1"}}]})"),
       kMalformed("jobs[0].jobSummary.jobId is not a job id")},
      {"ErrorCode", Resp(200, kJson, R"({"errorCode":1,"errorMessage":"Invalid job id"})"),
       kRejected("Invalid job id")},
      {"Xml", Resp(200, kXml, R"(<JobManager_JobListResponse/>)"),
       kMalformed("job list is not JSON")},
      {"Truncated", Resp(200, kJson, R"({"jobs":[{"jobSummary":{"jobId":1)"),
       kMalformed("body is not JSON")},
      {"Unauthorized", Resp(401, "", ""),
       Err{StatusCode::kUnauthenticated, "UPSTREAM_UNAUTHENTICATED", "HTTP 401"}},
      {"NotFound", Resp(404, "text/plain", "Not Found"), k4xx("HTTP 404: Not Found")},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto jobs = DecodeJobList(c.response);
    ASSERT_FALSE(jobs.ok());
    ExpectError(jobs.status(), c.want, c.response.status);
  }
}

// ---- MapJobStatus -------------------------------------------------------------------------------

TEST(MapJobStatus, MapsEveryDocumentedStatus) {
  const std::pair<std::string, std::optional<JobState>> cases[] = {
      {"Running", JobState::kRunning},
      {"Running (cannot be verified)", JobState::kRunning},
      {"Kill Pending", JobState::kRunning},
      {"Interrupt Pending", JobState::kRunning},
      {"Interrupted", JobState::kRunning},
      {"Waiting", JobState::kQueued},
      {"Pending", JobState::kQueued},
      {"Queued", JobState::kQueued},
      {"Suspended", JobState::kSuspended},
      {"Suspend Pending", JobState::kSuspended},
      {"Completed", JobState::kSucceeded},
      {"Completed w/ one or more warnings", JobState::kSucceeded},
      {"Completed w/ one or more errors", JobState::kSucceededWithErrors},
      {"Committed", JobState::kSucceeded},
      {"Failed", JobState::kFailed},
      {"Failed to Start", JobState::kFailed},
      {"Killed", JobState::kKilled},
      {"Abnormal Terminated Cleanup", JobState::kFailed},
      // Case, surrounding and repeated whitespace do not matter.
      {"RUNNING", JobState::kRunning},
      {"  completed W/ ONE or more   errors ", JobState::kSucceededWithErrors},
      {"failed TO start", JobState::kFailed},
      {"suspend pending", JobState::kSuspended},
      // Unlisted texts naming a finished state.
      {"Completed w/ one or more errors (upload)", JobState::kSucceededWithErrors},
      {"Killed by system", JobState::kKilled},
      {"Failed during upload", JobState::kFailed},
      // Unknown.
      {"", std::nullopt},
      {"Frobnicating", std::nullopt},
      {"Completing", std::nullopt},
  };
  for (const auto& [text, state] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(MapJobStatus(text), state);
  }
}

// ---- DecodeGenericResponse ----------------------------------------------------------------------

TEST(DecodeGenericResponse, AcceptsSuccess) {
  const std::pair<std::string, std::string> cases[] = {
      {kJson, R"({"errorCode":0})"},
      {kJson, R"({"errorCode":0,"errorMessage":""})"},
      {kJson, R"({"errorCode":"0","errorMessage":"Success"})"},
      {kJson, R"({"errList":[],"error":{"errorCode":0}})"},
      {kJson, ""},
      {kXml, R"(<TMMsg_GenericResp errorCode="0" errorMessage=""/>)"},
      {kXml, R"(<CVGui_GenericResp errorCode="0"/>)"},
      {kXml, R"(<App_GenericResp errorCode="" errorMessage=""/>)"},
  };
  for (const auto& [type, body] : cases) {
    SCOPED_TRACE(body);
    Status s = DecodeGenericResponse(Resp(200, type, body));
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
}

TEST(DecodeGenericResponse, MapsFailures) {
  struct Case {
    std::string name;
    HttpResponse response;
    Err want;
  };
  const Case cases[] = {
      {"JsonErrorCode", Resp(200, kJson, R"({"errorCode":1,"errorMessage":"Job not found"})"),
       kRejected("Job not found (errorCode 1)")},
      {"JsonErrList", Resp(200, kJson, R"({"errList":[{"errLogMessage":"Cannot kill"}]})"),
       kRejected("Cannot kill")},
      {"TMMsgGenericResp",
       Resp(200, kXml, R"(<TMMsg_GenericResp errorCode="3" errorMessage="a"/>)"),
       kRejected("a (errorCode 3)")},
      {"CVGuiGenericResp",
       Resp(200, kXml, R"(<CVGui_GenericResp errorCode="4" errorMessage="b"/>)"),
       kRejected("b (errorCode 4)")},
      {"AppGenericResp", Resp(200, kXml, R"(<App_GenericResp errorCode="5" errorMessage="c"/>)"),
       kRejected("c (errorCode 5)")},
      {"HtmlOn200", Resp(200, "text/html", "<p>hi</p>"),
       kMalformed("unexpected content type text/html")},
      {"Garbage", Resp(200, "", "OK"), kMalformed("body is not JSON")},
      {"Http500", Resp(500, "text/html", kHtml500), k5xx("500 - Internal server error.")},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ExpectError(DecodeGenericResponse(c.response), c.want, c.response.status);
  }
}

// ---- ErrorTextOf --------------------------------------------------------------------------------

TEST(ErrorTextOf, ExtractsTheUsefulText) {
  const std::pair<std::string, std::string> cases[] = {
      {kHtml500, "500 - Internal server error."},
      {"<html><head><TITLE lang=en>\n  Bad &amp; worse &lt;x&gt;\n</TITLE>", "Bad & worse <x>"},
      {"<html><head><title></title></head><body>\n<h1>Gateway Timeout</h1></body></html>",
       "Gateway Timeout"},
      {"\n\n   \nfirst line\nsecond line", "first line"},
      {"only line", "only line"},
      {"a < b and c > d", "a < b and c > d"},
      {"", ""},
      {"   \r\n\t", ""},
      {"bell\x07 and \xc3\x28 bad utf8", "bell? and ?( bad utf8"},
      {"<title>unterminated title", "unterminated title"},
  };
  for (const auto& [body, text] : cases) {
    SCOPED_TRACE(body);
    EXPECT_EQ(ErrorTextOf(body), text);
  }
}

TEST(ErrorTextOf, TruncatesTo512BytesOnACharacterBoundary) {
  std::string euros;
  for (int i = 0; i < 400; ++i) euros += "\xe2\x82\xac";  // 1200 bytes
  const std::string text = ErrorTextOf(euros);
  EXPECT_LE(text.size(), 512u);
  EXPECT_GE(text.size(), 500u);
  EXPECT_EQ(text.substr(text.size() - 3), "...");
  EXPECT_TRUE(IsCleanUtf8(text));
  EXPECT_EQ(ErrorTextOf(std::string(512, 'a')), std::string(512, 'a'));
  EXPECT_EQ(ErrorTextOf(std::string(513, 'a')), std::string(509, 'a') + "...");
}

}  // namespace
}  // namespace drgate::commserv

namespace drgate::commserv {
namespace {

TEST(AlreadyRunningTest, NamesTheActiveJobWhenTheTextDoes) {
  HttpResponse r;
  r.status = 200;
  r.content_type = "application/json";
  r.body = R"({"errorCode":1,"errorMessage":"DR backup job [2100] is already running."})";
  auto result = DecodeDrBackupResponse(r, WireFormat::kJson);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kAborted);
  EXPECT_EQ(result.status().reason(), "DR_JOB_ALREADY_RUNNING");
  EXPECT_EQ(result.status().metadata().at("active_job_id"), "2100");

  r.body = R"({"errorCode":1,"errorMessage":"A DR backup job is already running."})";
  auto unnamed = DecodeDrBackupResponse(r, WireFormat::kJson);
  EXPECT_EQ(unnamed.status().reason(), "DR_JOB_ALREADY_RUNNING");
  EXPECT_EQ(unnamed.status().metadata().count("active_job_id"), 0u);
}

TEST(JobListTest, ReadsTheBackupLevel) {
  HttpResponse r;
  r.status = 200;
  r.content_type = "application/json";
  r.body = R"({"totalRecordsWithoutPaging":1,"jobs":[{"jobSummary":{"jobId":7,
      "status":"Running","backupLevelName":"Differential"}}]})";
  auto jobs = DecodeJobList(r);
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].job_id, "7");
  EXPECT_EQ((*jobs)[0].backup_level, "Differential");
}

}  // namespace
}  // namespace drgate::commserv
