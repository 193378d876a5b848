// ReadinessPublisher: tells everyone who asks what the CatchUpTracker decides — the gRPC
// health service ("" for the sidecar, "topic/<name>" per topic; what the probes and
// grpc-health-probe read), the ApplyNotifier (WaitReady), the cachecar_ready and
// cachecar_catchup_duration_seconds gauges, and the log. At the first ready it also hands
// the memory catch-up freed back to the system (glibc keeps it otherwise).
//
// Threads: its listener runs on the materializer's thread, as the tracker's listeners do.
#pragma once

#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "health/catch_up.h"
#include "metrics/stats.h"
#include "store/apply_notifier.h"
#include "store/store.h"

namespace cachecar::health {

#define CACHECAR_READINESS_METRICS(COUNTER, GAUGE, COUNTER_FAMILY, GAUGE_FAMILY,               \
                                   HISTOGRAM_FAMILY)                                           \
  GAUGE(ready, "cachecar_ready", "1 once every topic has caught up, else 0.")                 \
  GAUGE(catchup_duration, "cachecar_catchup_duration_seconds",                                \
        "Time from start until every topic had caught up.")

CACHECAR_STATS_STRUCT(ReadinessStats, CACHECAR_READINESS_METRICS);

// The health service name of a topic.
std::string TopicHealthName(const std::string& topic);

class ReadinessPublisher {
 public:
  // Sets every health name NOT_SERVING and registers with the tracker (call before the
  // materializer starts). `started`: when the process started, for the catch-up time.
  // Pointers are not owned and must outlive the tracker's last call.
  ReadinessPublisher(CatchUpTracker* tracker, std::vector<std::string> topics,
                     grpc::HealthCheckServiceInterface* health, store::ApplyNotifier* notifier,
                     const store::Store* store, prometheus::Registry* registry,
                     std::chrono::steady_clock::time_point started);

 private:
  void OnChange(std::optional<size_t> topic, bool ready);

  const CatchUpTracker* tracker_;
  const std::vector<std::string> topics_;
  grpc::HealthCheckServiceInterface* health_;
  store::ApplyNotifier* notifier_;
  const store::Store* store_;
  ReadinessStats stats_;
  const std::chrono::steady_clock::time_point started_;
  bool first_ = true;  // no ready yet
};

}  // namespace cachecar::health
