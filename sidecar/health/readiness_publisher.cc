#include "health/readiness_publisher.h"

#include <malloc.h>

#include "common/log.h"

namespace cachecar::health {
namespace {

// Catch-up leaves the consumer's prefetch buffers (queued.max.messages.kbytes) freed but
// still held by glibc's arenas. Handing them back at ready keeps steady-state anonymous
// memory independent of how large the topic was (bench/: RssAnon after catch-up).
void ReleaseFreedMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace

std::string TopicHealthName(const std::string& topic) { return "topic/" + topic; }

ReadinessPublisher::ReadinessPublisher(CatchUpTracker* tracker, std::vector<std::string> topics,
                                       grpc::HealthCheckServiceInterface* health,
                                       store::ApplyNotifier* notifier, const store::Store* store,
                                       prometheus::Registry* registry,
                                       std::chrono::steady_clock::time_point started)
    : tracker_(tracker),
      topics_(std::move(topics)),
      health_(health),
      notifier_(notifier),
      store_(store),
      stats_(ReadinessStats::Register(*registry)),
      started_(started) {
  health_->SetServingStatus("", false);
  for (const auto& t : topics_) health_->SetServingStatus(TopicHealthName(t), false);
  tracker->AddListener([this](std::optional<size_t> topic, bool ready) { OnChange(topic, ready); });
  // The listener hears transitions only. A tracker ready from the start (every topic
  // optional) makes none, so its state is published now (nothing runs concurrently yet).
  if (tracker->Ready()) OnChange(std::nullopt, true);
}

void ReadinessPublisher::OnChange(std::optional<size_t> topic, bool ready) {
  if (topic) {
    health_->SetServingStatus(TopicHealthName(topics_[*topic]), ready);
    log::Info(ready ? "topic caught up" : "topic not ready", {{"topic", topics_[*topic]}});
    return;
  }
  health_->SetServingStatus("", ready);
  notifier_->SetReady(ready, ready ? "" : tracker_->NotReadyReason());
  stats_.ready->Set(ready ? 1 : 0);
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  if (ready && first_) {
    // Catch-up is start to the first ready; later transitions are lag or faults.
    first_ = false;
    stats_.catchup_duration->Set(secs);
    ReleaseFreedMemory();  // before the log line, which bench/run.sh waits on
  }
  if (ready) {
    log::Info("ready: every topic caught up",
              {{"catchup_seconds", secs}, {"revision", store_->revision()}});
  } else {
    log::Warn("not ready",
              {{"reason", tracker_->NotReadyReason()}, {"revision", store_->revision()}});
  }
}

}  // namespace cachecar::health
