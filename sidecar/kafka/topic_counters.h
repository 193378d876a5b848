// Per-topic record totals since start, as the materializer counts them (GetStatus reports
// them). A plain value; copies are snapshots.
#pragma once

#include <cstdint>
#include <map>

namespace cachecar::kafka {

struct TopicCounters {
  uint64_t consumed = 0;  // records read, valid or not
  uint64_t applied = 0;   // puts and deletes written to the store
  uint64_t rejected = 0;  // refused and never served (skipped or dead-lettered)
  // value_format: registry topics: puts applied per schema id.
  std::map<int32_t, uint64_t> schema_ids;
};

}  // namespace cachecar::kafka
