// Per-topic record totals since start, as the materializer counts them (GetStatus reports
// them). A plain value; copies are snapshots.
#pragma once

#include <cstdint>

namespace cachecar::kafka {

struct TopicCounters {
  uint64_t consumed = 0;  // records read, valid or not
  uint64_t applied = 0;   // puts and deletes written to the store
  uint64_t rejected = 0;  // refused and never served (skipped or dead-lettered)
};

}  // namespace cachecar::kafka
