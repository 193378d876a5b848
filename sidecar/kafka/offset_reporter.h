// OffsetReporter: reports the applied positions to the pod's Kafka consumer group every
// interval, for lag tooling (kafka-consumer-groups, Burrow, ...). Only positions durable in
// the store are reported, so the group never claims more than a restart would resume
// from; the store's positions, not the group's, are what a restart uses.
//
// Writer thread only (the source's commit answers also arrive on it, inside Poll).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "kafka/materializer_stats.h"
#include "kafka/record_source.h"

namespace cachecar::kafka {

class OffsetReporter {
 public:
  // `interval` zero: never report. Pointers are not owned and must outlive this; the
  // source's commit answers are counted from construction on.
  OffsetReporter(RecordSource* source, std::chrono::milliseconds interval, std::string group_id,
                 MaterializerStats* stats);

  // Whether a report is due at `now` (the interval has passed since the last one).
  bool Due(std::chrono::steady_clock::time_point now) const {
    return interval_.count() > 0 && now - last_report_ >= interval_;
  }
  // Reports `durable`, the positions that are in the store, at `now`.
  void Report(std::chrono::steady_clock::time_point now, const std::vector<Assignment>& durable);

 private:
  RecordSource* const source_;
  const std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_report_;
};

}  // namespace cachecar::kafka
