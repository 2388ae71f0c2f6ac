// Fuzzes the job summary decoder (GET Job/{id} and the DR job list, one page of it), the DR
// backup options decoder and the status text mapping.
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
  // The same bytes as a page of the list and as the DR backup options.
  auto page = DecodeJobListPage(drgate::fuzz::Response(200, "application/json", body));
  if (page.ok() && page->total < static_cast<int64_t>(page->jobs.size())) std::abort();
  if (!page.ok()) drgate::fuzz::CheckStatus(page.status());
  auto options = DecodeDrBackupOptions(drgate::fuzz::Response(200, "application/json", body));
  if (options.ok()) {
    if (options->destination) drgate::fuzz::CheckText(*options->destination);
    if (options->retained_fulls && *options->retained_fulls < 0) std::abort();
  } else {
    drgate::fuzz::CheckStatus(options.status());
  }
  return 0;
}
