#include "core/commserv/http.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace drgate::commserv {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ParseEndpoint, AcceptsWebserviceRoots) {
  struct Case {
    std::string url;
    bool tls;
    std::string host;
    std::string port;
    std::string base_path;
    std::string canonical;
  };
  const Case cases[] = {
      {"https://cs.example.com/commandcenter/api", true, "cs.example.com", "443",
       "/commandcenter/api", "https://cs.example.com:443/commandcenter/api"},
      {"https://cs.example.com:8443/commandcenter/api/", true, "cs.example.com", "8443",
       "/commandcenter/api", "https://cs.example.com:8443/commandcenter/api"},
      {"http://cs:81/SearchSvc/CVWebService.svc", false, "cs", "81", "/SearchSvc/CVWebService.svc",
       "http://cs:81/SearchSvc/CVWebService.svc"},
      {"HTTP://cs", false, "cs", "80", "", "http://cs:80"},
      {"https://cs/", true, "cs", "443", "", "https://cs:443"},
      {"  https://10.0.0.5:0443/webconsole/api//  ", true, "10.0.0.5", "443", "/webconsole/api",
       "https://10.0.0.5:443/webconsole/api"},
      {"https://[::1]:8443/api", true, "::1", "8443", "/api", "https://[::1]:8443/api"},
      {"https://[fe80::1:2]/api", true, "fe80::1:2", "443", "/api", "https://[fe80::1:2]:443/api"},
      {"https://cs:65535", true, "cs", "65535", "", "https://cs:65535"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.url);
    auto endpoint = ParseEndpoint(c.url);
    ASSERT_TRUE(endpoint.ok()) << endpoint.status().ToString();
    EXPECT_EQ(endpoint->tls, c.tls);
    EXPECT_EQ(endpoint->host, c.host);
    EXPECT_EQ(endpoint->port, c.port);
    EXPECT_EQ(endpoint->base_path, c.base_path);
    EXPECT_EQ(endpoint->ToString(), c.canonical);
  }
}

TEST(ParseEndpoint, RejectsWhatCannotBeARoot) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "empty"},
      {"ftp://cs/api", "scheme must be https:// or http://"},
      {"cs.example.com/api", "scheme must be https:// or http://"},
      {"https://", "host is missing"},
      {"https:///api", "host is missing"},
      {"https://:443/api", "host is missing"},
      {"https://cs:0/api", "port must be a number from 1 to 65535"},
      {"https://cs:65536/api", "port must be a number from 1 to 65535"},
      {"https://cs:/api", "port must be a number from 1 to 65535"},
      {"https://cs:-1/api", "port must be a number from 1 to 65535"},
      {"https://cs:44x/api", "port must be a number from 1 to 65535"},
      {"https://cs:+443/api", "port must be a number from 1 to 65535"},
      {"https://admin:S3cretPw@cs/api", "credentials (user:password@) are not allowed"},
      {"https://admin@cs/api", "credentials (user:password@) are not allowed"},
      {"https://cs/api?x=1", "a query or fragment is not allowed"},
      {"https://cs/api#top", "a query or fragment is not allowed"},
      {"https://cs?x", "a query or fragment is not allowed"},
      {"https://[::1/api", "unterminated IPv6 literal"},
      {"https://[nothex]/api", "not a valid IPv6 literal"},
      {"https://[]/api", "not a valid IPv6 literal"},
      {"https://[::1]x/api", "unexpected text after IPv6 literal"},
      {"https://[::1]:99999/api", "port must be a number from 1 to 65535"},
      {"https://c s/api", "host contains characters not allowed"},
      {"https://cs/api path", "path contains characters not allowed"},
      {"https://cs/api\r\nX: y", "path contains characters not allowed"},
  };
  for (const auto& [url, part] : cases) {
    SCOPED_TRACE(url);
    auto endpoint = ParseEndpoint(url);
    ASSERT_FALSE(endpoint.ok());
    EXPECT_EQ(endpoint.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(endpoint.status().reason(), "INVALID_ARGUMENT");
    EXPECT_THAT(endpoint.status().message(), HasSubstr(part));
    EXPECT_THAT(endpoint.status().message(), Not(HasSubstr("S3cretPw")));
  }
}

TEST(EndpointTarget, JoinsWithExactlyOneSlash) {
  struct Case {
    std::string base_path;
    std::string path;
    std::string target;
  };
  const Case cases[] = {
      {"/commandcenter/api", "CommServ/DRBackup", "/commandcenter/api/CommServ/DRBackup"},
      {"/commandcenter/api", "/CommServ/DRBackup", "/commandcenter/api/CommServ/DRBackup"},
      {"/commandcenter/api/", "//CommServ/DRBackup/", "/commandcenter/api/CommServ/DRBackup"},
      {"commandcenter/api", "Login", "/commandcenter/api/Login"},
      {"", "Login", "/Login"},
      {"", "/Login", "/Login"},
      {"/api", "", "/api"},
      {"", "", "/"},
      {"/api", "Job?jobCategory=Active&jobFilter=CSDRBKP",
       "/api/Job?jobCategory=Active&jobFilter=CSDRBKP"},
      {"/api", "Job?path=a/", "/api/Job?path=a/"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.base_path + " + " + c.path);
    Endpoint endpoint;
    endpoint.host = "cs";
    endpoint.port = "443";
    endpoint.base_path = c.base_path;
    EXPECT_EQ(endpoint.Target(c.path), c.target);
  }
}

}  // namespace
}  // namespace drgate::commserv
