#include "core/metrics/text_format.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

namespace drgate {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// As an ostream with the classic locale and precision max_digits10 - 1 writes a double (that is,
// printf's %.16g), with prometheus-cpp's spellings of NaN and the infinities.
void AppendDouble(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "Nan";
    return;
  }
  if (std::isinf(value)) {
    out += value < 0 ? "-Inf" : "+Inf";
    return;
  }
  char buf[64];
  // Most samples are whole numbers (counts, zeros, timestamps): the integer path is exact and
  // matches %.16g for every integer of at most 16 digits.
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(value));
    // -0.0 prints as "-0" with %g.
    if (value == 0 && std::signbit(value)) out += '-';
    out.append(buf, end);
    return;
  }
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::general,
                                       std::numeric_limits<double>::max_digits10 - 1);
  out.append(buf, end);
}

void AppendUint(std::string& out, uint64_t value) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, end);
}

// Label values escape backslash, double quote and newline.
void AppendEscaped(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      default: out += c;
    }
  }
}

// `name{labels,extra="..."} ` ; the extra label (a histogram's le) is written by `extra`.
template <typename Extra>
void AppendHead(std::string& out, const MetricFamily& family, const ClientMetric& metric,
                std::string_view suffix, std::string_view extra_name, Extra extra) {
  out += family.name;
  out += suffix;
  if (!metric.label.empty() || !extra_name.empty()) {
    out += '{';
    const char* separator = "";
    for (const auto& label : metric.label) {
      out += separator;
      out += label.name;
      out += "=\"";
      AppendEscaped(out, label.value);
      out += '"';
      separator = ",";
    }
    if (!extra_name.empty()) {
      out += separator;
      out += extra_name;
      out += "=\"";
      extra(out);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
}

void AppendHead(std::string& out, const MetricFamily& family, const ClientMetric& metric,
                std::string_view suffix = "") {
  AppendHead(out, family, metric, suffix, "", [](std::string&) {});
}

void AppendTail(std::string& out, const ClientMetric& metric) {
  if (metric.timestamp_ms != 0) {
    out += ' ';
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, metric.timestamp_ms);
    out.append(buf, end);
  }
  out += '\n';
}

void AppendMetric(std::string& out, const MetricFamily& family, const ClientMetric& metric) {
  switch (family.type) {
    case MetricType::Counter:
      AppendHead(out, family, metric);
      AppendDouble(out, metric.counter.value);
      AppendTail(out, metric);
      break;
    case MetricType::Gauge:
      AppendHead(out, family, metric);
      AppendDouble(out, metric.gauge.value);
      AppendTail(out, metric);
      break;
    case MetricType::Untyped:
      AppendHead(out, family, metric);
      AppendDouble(out, metric.untyped.value);
      AppendTail(out, metric);
      break;
    case MetricType::Summary: {
      const auto& summary = metric.summary;
      AppendHead(out, family, metric, "_count");
      AppendUint(out, summary.sample_count);
      AppendTail(out, metric);
      AppendHead(out, family, metric, "_sum");
      AppendDouble(out, summary.sample_sum);
      AppendTail(out, metric);
      for (const auto& q : summary.quantile) {
        AppendHead(out, family, metric, "", "quantile",
                   [&q](std::string& o) { AppendDouble(o, q.quantile); });
        AppendDouble(out, q.value);
        AppendTail(out, metric);
      }
      break;
    }
    case MetricType::Histogram: {
      const auto& histogram = metric.histogram;
      AppendHead(out, family, metric, "_count");
      AppendUint(out, histogram.sample_count);
      AppendTail(out, metric);
      AppendHead(out, family, metric, "_sum");
      AppendDouble(out, histogram.sample_sum);
      AppendTail(out, metric);
      double last = -std::numeric_limits<double>::infinity();
      for (const auto& bucket : histogram.bucket) {
        AppendHead(out, family, metric, "_bucket", "le",
                   [&bucket](std::string& o) { AppendDouble(o, bucket.upper_bound); });
        last = bucket.upper_bound;
        AppendUint(out, bucket.cumulative_count);
        AppendTail(out, metric);
      }
      if (last != std::numeric_limits<double>::infinity()) {
        AppendHead(out, family, metric, "_bucket", "le", [](std::string& o) { o += "+Inf"; });
        AppendUint(out, histogram.sample_count);
        AppendTail(out, metric);
      }
      break;
    }
    default: break;
  }
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::Counter: return "counter";
    case MetricType::Gauge: return "gauge";
    case MetricType::Summary: return "summary";
    case MetricType::Histogram: return "histogram";
    default: return "untyped";
  }
}

}  // namespace

std::string SerializeTextFormat(const std::vector<MetricFamily>& families) {
  std::string out;
  // A sample line is rarely longer than this: one allocation for most expositions.
  std::size_t lines = 0;
  for (const auto& family : families) {
    lines += 2;
    for (const auto& metric : family.metric) lines += 3 + metric.histogram.bucket.size();
  }
  out.reserve(lines * 96);
  for (const auto& family : families) {
    if (!family.help.empty()) {
      out += "# HELP ";
      out += family.name;
      out += ' ';
      out += family.help;
      out += '\n';
    }
    out += "# TYPE ";
    out += family.name;
    out += ' ';
    out += TypeName(family.type);
    out += '\n';
    for (const auto& metric : family.metric) AppendMetric(out, family, metric);
  }
  return out;
}

}  // namespace drgate
