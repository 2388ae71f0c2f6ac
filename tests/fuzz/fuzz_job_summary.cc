// Fuzzes the job summary decoder (GET Job/{id} and the DR job list) and the status text mapping.
// The input is the body.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/commserv/codec.h"
#include "tests/fuzz/invariants.h"

using namespace drgate::commserv;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  (void)MapJobStatus(body);
  for (const char* type : {"application/json", ""}) {
    auto jobs = DecodeJobList(drgate::fuzz::Response(200, type, body));
    if (!jobs.ok()) {
      drgate::fuzz::CheckStatus(jobs.status());
      continue;
    }
    for (const JobSummary& job : *jobs) {
      // The documented promises: an id, a percentage in 0..100, texts cut to 512 bytes.
      if (job.job_id.empty()) std::abort();
      if (job.percent_complete < 0 || job.percent_complete > 100) std::abort();
      for (const std::string* text :
           {&job.status, &job.pending_reason, &job.phase, &job.operation}) {
        drgate::fuzz::CheckText(*text);
      }
      (void)MapJobStatus(job.status);
    }
  }
  (void)DecodeJobList(drgate::fuzz::Response(404, "text/html", body));
  return 0;
}
