#pragma once

// Self-signed certificates made in the test with OpenSSL, so no key material is committed.

#include <string>
#include <vector>

namespace drgate::commserv::testing {

struct TestCert {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed P-256 certificate (CA:TRUE, so it can be its own trust anchor) valid from an
// hour ago for a day, with subject CN=`common_name` and the given DNS and IP subject alternative
// names. Aborts the test binary on an OpenSSL failure.
TestCert MakeSelfSignedCert(const std::string& common_name, const std::vector<std::string>& dns,
                            const std::vector<std::string>& ips);

// A fresh directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `contents` to path()/name and returns the full path.
  std::string Write(const std::string& name, const std::string& contents) const;

 private:
  std::string path_;
};

}  // namespace drgate::commserv::testing
