// StoreMonitor: the store's size and room as metrics, refreshed on its own thread once a
// period (the map's size and use, map growths, free disk), so they stay current whatever
// the writer is doing — also while it is stuck on a failing commit.
//
// Thread-safe. The store must outlive the monitor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "metrics/stats.h"
#include "store/store.h"

namespace cachecar::store {

#define CACHECAR_STORE_METRICS(COUNTER, GAUGE, COUNTER_FAMILY, GAUGE_FAMILY,                   \
                               HISTOGRAM_FAMILY)                                               \
  GAUGE(map_size, "cachecar_store_map_size_bytes",                                            \
        "LMDB map size: what the store can hold before it grows again.")                     \
  GAUGE(used_bytes, "cachecar_store_used_bytes", "Bytes of the LMDB map in use.")             \
  GAUGE(disk_free, "cachecar_store_disk_free_bytes",                                          \
        "Free bytes on the store's filesystem (for unprivileged users).")                    \
  COUNTER(map_resizes, "cachecar_store_map_resizes_total", "Times the LMDB map grew.")       \
  COUNTER_FAMILY(recreated, "cachecar_store_recreated_total",                                 \
                 "Stores found unusable at start and rebuilt, by reason (STORE_CORRUPT, "     \
                 "STORE_INCOMPATIBLE).")

CACHECAR_STATS_STRUCT(StoreStats, CACHECAR_STORE_METRICS);

class StoreMonitor {
 public:
  // Registers the metrics and reports once. `recreated`: the reason the store was found
  // unusable and recreated at open (OpenOrRecreate), or OK.
  StoreMonitor(const Store* store, prometheus::Registry* registry, const Status& recreated);
  ~StoreMonitor();  // Stop()
  StoreMonitor(const StoreMonitor&) = delete;
  StoreMonitor& operator=(const StoreMonitor&) = delete;

  // Reports every `period` on a thread of its own until Stop.
  void Start(std::chrono::milliseconds period = std::chrono::seconds(1));
  void Stop();  // idempotent
  // One report now (the thread calls it; tests too).
  void Report();

 private:
  const Store* const store_;
  StoreStats stats_;
  uint64_t resizes_seen_ = 0;  // guarded by report_mu_
  std::mutex report_mu_;       // one Report at a time
  std::mutex mu_;              // guards stop_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace cachecar::store
