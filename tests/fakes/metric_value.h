#pragma once

// Reads one series from a prometheus-cpp registry, as tests assert metrics through Collect().

#include <prometheus/registry.h>

#include <map>
#include <string>

namespace drgate::testing {

// The value of the counter or gauge `name` whose labels include `labels`; -1 when absent.
inline double MetricValue(prometheus::Registry& registry, const std::string& name,
                          const std::map<std::string, std::string>& labels) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      std::map<std::string, std::string> got;
      for (const auto& l : m.label) got[l.name] = l.value;
      bool match = true;
      for (const auto& [k, v] : labels) match = match && got[k] == v;
      if (!match) continue;
      if (family.type == prometheus::MetricType::Counter) return m.counter.value;
      if (family.type == prometheus::MetricType::Gauge) return m.gauge.value;
    }
  }
  return -1;
}

}  // namespace drgate::testing
