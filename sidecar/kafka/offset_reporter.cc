#include "kafka/offset_reporter.h"

#include "common/log.h"

namespace cachecar::kafka {

OffsetReporter::OffsetReporter(RecordSource* source, std::chrono::milliseconds interval,
                               std::string group_id, MaterializerStats* stats)
    : source_(source), interval_(interval) {
  source_->SetCommitListener([ok = &stats->offset_commits->Add({{"result", "ok"}}),
                              failed = &stats->offset_commits->Add({{"result", "failed"}}),
                              group = std::move(group_id)](bool success,
                                                           const std::string& error) {
    (success ? ok : failed)->Increment();
    if (!success) {
      log::Warn("committing offsets to the consumer group failed",
                {{"group_id", group}, {"error", error}});
    }
  });
}

void OffsetReporter::Report(std::chrono::steady_clock::time_point now,
                            const std::vector<Assignment>& durable) {
  last_report_ = now;
  source_->CommitOffsets(durable);
}

}  // namespace cachecar::kafka
