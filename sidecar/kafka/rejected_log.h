// RejectedLog: the last N records per topic that the materializer refused to serve, for
// ListRejectedRecords and `cachecarctl rejected`. Held in memory (a restart starts it
// empty; the counters in /metrics and the log lines remain).
//
// Thread-safe: the materializer adds, RPC threads read.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace cachecar::kafka {

struct RejectedRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  bool has_key = false;
  std::string key;          // at most kMaxKeyBytes of it
  std::string reason;       // "schema_violation", "invalid_json", "missing_key", ...
  std::string detail;       // what exactly, without quoting the record's values
  std::string action;       // "skipped", "dead-lettered", "halted"
  int64_t timestamp_ms = -1;  // the record's Kafka timestamp
  std::chrono::system_clock::time_point rejected_at;
};

class RejectedLog {
 public:
  static constexpr size_t kMaxKeyBytes = 1024;

  // One capacity per topic index (0 keeps nothing).
  explicit RejectedLog(std::vector<size_t> capacities);

  void Add(size_t topic, RejectedRecord record);
  // Newest first.
  std::vector<RejectedRecord> List(size_t topic) const;

 private:
  mutable std::mutex mu_;  // guards rings_
  std::vector<size_t> capacities_;
  std::vector<std::deque<RejectedRecord>> rings_;
};

}  // namespace cachecar::kafka
