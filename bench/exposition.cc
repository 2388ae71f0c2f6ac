// drgate-bench exposition: the server side of one /metrics scrape, in process: collect every
// series of drgate's Metrics with N CommCells registered, and serialise them as the metrics port
// does (drgate's serialiser, or prometheus-cpp's that it replaced). Small enough to run under
// callgrind for instruction counts.
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <iostream>

#include "bench/common.h"
#include "bench/scenarios.h"
#include "core/metrics/metrics.h"
#include "core/metrics/text_format.h"

namespace drgate::bench {

int RunExposition(int cells, int iterations, const std::string& serializer) {
  prometheus::Registry registry;
  Metrics metrics(registry);
  for (int i = 0; i < cells; ++i) {
    const std::string name = "cs" + std::to_string(i);
    metrics.RegisterCommCell(name);
    // Some traffic, so that histograms and counters hold values other than 0.
    metrics.ObserveTriggerDuration(name, 0.004);
    metrics.ObserveCommServRequest(name, CommServEndpoint::kJobList, 0.0007);
    metrics.CountCommServRequest(name, CommServEndpoint::kJobList, 200);
  }
  Samples times;
  std::size_t bytes = 0;
  for (int i = 0; i < iterations; ++i) {
    const auto start = SteadyClock::now();
    const auto families = registry.Collect();
    const std::string body = serializer == "prometheus-cpp"
                                 ? prometheus::TextSerializer().Serialize(families)
                                 : SerializeTextFormat(families);
    times.Add(MicrosSince(start));
    bytes = body.size();
  }
  Row("/metrics, " + std::to_string(cells) + " CommCells",
      "exposition in process, " + serializer + " serialiser (collect + serialise " +
          Fixed(static_cast<double>(bytes) / 1024, 0) + " KiB), p50 / p99",
      FormatMicros(times.Quantile(0.5)) + " / " + FormatMicros(times.Quantile(0.99)));
  return 0;
}

}  // namespace drgate::bench
