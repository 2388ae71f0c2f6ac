// Fuzzes the XML answers of CommServ/DRBackup (TMMsg_CreateTaskResp, *_GenericResp) and XML error
// bodies. The input is the body.

#include <cstdint>
#include <string>

#include "core/commserv/codec.h"
#include "tests/fuzz/invariants.h"

using namespace drgate::commserv;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (const auto& [status, type] : {std::pair<int, const char*>{200, "application/xml"},
                                     {200, "text/xml; charset=utf-8"},
                                     {200, ""},
                                     {503, "application/xml"},
                                     {404, "text/html"}}) {
    HttpResponse r = drgate::fuzz::Response(status, type, body);
    drgate::fuzz::CheckDrBackup(DecodeDrBackupResponse(r, WireFormat::kXml));
    drgate::fuzz::CheckStatus(DecodeGenericResponse(r));
  }
  drgate::fuzz::CheckText(ErrorTextOf(body));
  return 0;
}
