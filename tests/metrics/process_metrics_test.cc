#include "metrics/process_metrics.h"

#include <gtest/gtest.h>

#include <map>

#include "common/version.h"

namespace cachecar::metrics {
namespace {

// proc(5): "pid (comm) state ppid ... utime(14) stime(15) ... starttime(22) vsize(23) rss(24)".
std::string StatLine(const std::string& comm) {
  std::string s = "4242 (" + comm + ") S";
  for (int field = 4; field <= 52; ++field) {
    s += " ";
    switch (field) {
      case 14: s += "150"; break;      // utime
      case 15: s += "50"; break;       // stime
      case 22: s += "1000"; break;     // starttime
      case 23: s += "8192000"; break;  // vsize
      case 24: s += "300"; break;      // rss pages
      default: s += "0";
    }
  }
  return s + "\n";
}

TEST(ProcessMetricsTest, ParsesProcStatWhateverTheCommandName) {
  // The command name may hold spaces and parentheses: fields are counted after the last ')'.
  for (const std::string comm : {"cachecar", "a b", "x) (y", ") 1 2 3 ("}) {
    ProcStat st;
    ASSERT_TRUE(ParseProcStat(StatLine(comm), &st)) << comm;
    EXPECT_EQ(st.utime_ticks, 150) << comm;
    EXPECT_EQ(st.stime_ticks, 50) << comm;
    EXPECT_EQ(st.start_ticks, 1000) << comm;
    EXPECT_EQ(st.vsize_bytes, 8192000) << comm;
    EXPECT_EQ(st.rss_pages, 300) << comm;
  }
}

TEST(ProcessMetricsTest, RefusesTextNotInTheFormat) {
  ProcStat st;
  EXPECT_FALSE(ParseProcStat("", &st));
  EXPECT_FALSE(ParseProcStat("no parenthesis at all 1 2 3", &st));
  EXPECT_FALSE(ParseProcStat("1 (short) S 1 2 3", &st));
  std::string bad = StatLine("c");
  bad.replace(bad.find(" 150 "), 5, " x15 ");
  EXPECT_FALSE(ParseProcStat(bad, &st));
}

TEST(ProcessMetricsTest, ThisProcessHasItsSeriesAndTheBuildInfo) {
  std::map<std::string, prometheus::MetricFamily> by_name;
  for (auto& f : CollectProcessMetrics()) by_name[f.name] = f;
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_start_time_seconds",
                           "process_open_fds", "cachecar_build_info"}) {
    ASSERT_TRUE(by_name.count(name)) << name;
    ASSERT_EQ(by_name[name].metric.size(), 1u) << name;
  }
  EXPECT_EQ(by_name["process_cpu_seconds_total"].type, prometheus::MetricType::Counter);
  EXPECT_GT(by_name["process_resident_memory_bytes"].metric[0].gauge.value, 1 << 20);
  EXPECT_GT(by_name["process_open_fds"].metric[0].gauge.value, 0);
  // Started within the last day of the wall clock.
  const double start = by_name["process_start_time_seconds"].metric[0].gauge.value;
  const double now = static_cast<double>(time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 86400);
  std::map<std::string, std::string> labels;
  for (const auto& l : by_name["cachecar_build_info"].metric[0].label) labels[l.name] = l.value;
  EXPECT_EQ(labels["version"], Version());
  EXPECT_EQ(labels["revision"], Revision());
  EXPECT_NE(labels["revision"], "");
}

}  // namespace
}  // namespace cachecar::metrics
