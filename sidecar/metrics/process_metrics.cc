#include "metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/version.h"

namespace cachecar::metrics {
namespace {

std::string ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

prometheus::MetricFamily OneValue(std::string name, std::string help, double value,
                               prometheus::MetricType type = prometheus::MetricType::Gauge) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

// Seconds since the epoch at which the machine booted (/proc/stat's btime).
bool BootTime(double* out) {
  std::istringstream in(ReadFile("/proc/stat"));
  std::string word;
  while (in >> word) {
    if (word == "btime") return static_cast<bool>(in >> *out);
  }
  return false;
}

int OpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n - 3;  // ".", ".." and the directory's own descriptor
}

}  // namespace

bool ParseProcStat(const std::string& text, ProcStat* out) {
  // The command name (field 2) is in parentheses and may hold spaces or ')': the fields
  // after it start after the last ')'.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream in(text.substr(close + 1));
  std::vector<std::string> fields;  // field 3 onwards
  std::string f;
  while (in >> f) fields.push_back(f);
  // Fields (1-based, proc(5)): 14 utime, 15 stime, 22 starttime, 23 vsize, 24 rss.
  if (fields.size() < 22) return false;
  try {
    out->utime_ticks = std::stod(fields[14 - 3]);
    out->stime_ticks = std::stod(fields[15 - 3]);
    out->start_ticks = std::stod(fields[22 - 3]);
    out->vsize_bytes = std::stod(fields[23 - 3]);
    out->rss_pages = std::stod(fields[24 - 3]);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

std::vector<prometheus::MetricFamily> CollectProcessMetrics() {
  std::vector<prometheus::MetricFamily> out;
  {
    prometheus::MetricFamily f;
    f.name = "cachecar_build_info";
    f.help = "The running build: its version and the source revision it was built from (always 1)";
    f.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric m;
    m.label = {{"version", Version()}, {"revision", Revision()}};
    m.gauge.value = 1;
    f.metric.push_back(std::move(m));
    out.push_back(std::move(f));
  }
  ProcStat st;
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  if (ticks > 0 && page > 0 && ParseProcStat(ReadFile("/proc/self/stat"), &st)) {
    out.push_back(OneValue("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                        (st.utime_ticks + st.stime_ticks) / static_cast<double>(ticks),
                        prometheus::MetricType::Counter));
    out.push_back(OneValue("process_resident_memory_bytes", "Resident memory size in bytes.",
                        st.rss_pages * static_cast<double>(page)));
    out.push_back(OneValue("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                        st.vsize_bytes));
    double boot = 0;
    if (BootTime(&boot)) {
      out.push_back(OneValue("process_start_time_seconds",
                          "Start time of the process since unix epoch in seconds.",
                          boot + st.start_ticks / static_cast<double>(ticks)));
    }
  }
  if (int fds = OpenFds(); fds >= 0) {
    out.push_back(OneValue("process_open_fds", "Number of open file descriptors.", fds));
  }
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    out.push_back(OneValue("process_max_fds", "Maximum number of open file descriptors.",
                        static_cast<double>(lim.rlim_cur)));
  }
  return out;
}

}  // namespace cachecar::metrics
