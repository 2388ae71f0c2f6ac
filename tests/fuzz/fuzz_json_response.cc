// Fuzzes the JSON answers of the CommServe: DRBackup, Login, RenewLoginToken, kill/pause/resume,
// and error bodies under the status codes that take other paths. The input is the body.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/commserv/codec.h"
#include "tests/fuzz/invariants.h"

using namespace drgate::commserv;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (const auto& [status, type] : {std::pair<int, const char*>{200, "application/json"},
                                     {200, ""},
                                     {500, "application/json"},
                                     {429, "application/json"},
                                     {400, "text/plain"}}) {
    HttpResponse r = drgate::fuzz::Response(status, type, body);
    drgate::fuzz::CheckDrBackup(DecodeDrBackupResponse(r, WireFormat::kJson));
    drgate::fuzz::CheckStatus(DecodeGenericResponse(r));
    auto login = DecodeLoginResponse(r);
    if (login.ok()) drgate::fuzz::CheckToken(*login);
    auto renew = DecodeRenewResponse(r);
    if (renew.ok()) drgate::fuzz::CheckToken(*renew);
  }
  drgate::fuzz::CheckText(ErrorTextOf(body));
  return 0;
}
