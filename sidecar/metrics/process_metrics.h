// The process's own series, as every Prometheus client library exports them (the
// `process_*` names of the Go and Java clients, so existing dashboards work), plus
// cachecar_build_info. prometheus-cpp has no process collector; these are read from
// /proc/self at each scrape.
//
//   process_cpu_seconds_total        user + system CPU time
//   process_resident_memory_bytes    resident set size
//   process_virtual_memory_bytes     virtual memory size
//   process_open_fds                 open file descriptors
//   process_max_fds                  the soft limit on them
//   process_start_time_seconds       start time, seconds since the Unix epoch
//   cachecar_build_info{version,revision} 1
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <vector>

namespace cachecar::metrics {

// Reads the series now. A value /proc does not give (another OS, a hardened procfs) is
// left out rather than reported as 0.
std::vector<prometheus::MetricFamily> CollectProcessMetrics();

// Parses the fields of /proc/self/stat that the series need, from its text. Returns
// false if the text is not in that format. Exposed for tests.
struct ProcStat {
  double utime_ticks = 0;
  double stime_ticks = 0;
  double start_ticks = 0;  // after boot
  double vsize_bytes = 0;
  double rss_pages = 0;
};
bool ParseProcStat(const std::string& text, ProcStat* out);

}  // namespace cachecar::metrics
