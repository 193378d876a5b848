// ReadHandler: the logic of the read RPCs, on plain proto messages, so it is testable
// without a server. It checks requests (every problem at once, as field violations),
// enforces readiness, and reads one Snapshot per request.
//
// Thread-safe: any number of RPC threads may call it at once.
#pragma once

#include <functional>
#include <vector>

#include "api/entry_proto.h"
#include "cachecar/v1/cache.pb.h"
#include "common/status.h"
#include "config/config.h"
#include "health/catch_up.h"
#include "kafka/rejected_log.h"
#include "kafka/topic_counters.h"
#include "store/store.h"

namespace cachecar::rpc {

struct ReadLimits {
  size_t max_key_bytes = 1 << 20;
  size_t max_batch_keys = 1000;
  int32_t default_page_size = 100;
  int32_t max_page_size = 1000;
  size_t max_page_bytes = 3 << 20;  // stays under gRPC's default 4 MiB response limit
};

class ReadHandler {
 public:
  using CountersFn = std::function<std::vector<kafka::TopicCounters>()>;

  // Pointers are not owned and must outlive the handler.
  ReadHandler(const config::Config* config, const store::Store* store,
              const health::CatchUpTracker* tracker, CountersFn counters,
              ReadLimits limits = {});

  Status Get(const v1::GetRequest& req, v1::GetResponse* resp) const;
  Status BatchGet(const v1::BatchGetRequest& req, v1::BatchGetResponse* resp) const;
  Status List(const v1::ListRequest& req, v1::ListResponse* resp) const;
  Status GetStatus(const v1::GetStatusRequest& req, v1::GetStatusResponse* resp) const;
  Status ListRejectedRecords(const v1::ListRejectedRecordsRequest& req,
                             v1::ListRejectedRecordsResponse* resp) const;

  // Where rejected records are remembered (not owned; null: none are).
  void set_rejected_log(const kafka::RejectedLog* log) { rejected_ = log; }
  // Gives registry entries their subject_version. Call before use.
  void set_subject_versions(api::SubjectVersionFn versions) { versions_ = std::move(versions); }

  // The store's revision now (for response headers on any outcome).
  uint64_t revision() const { return store_->revision(); }

 private:
  // Resolves the topic and checks readiness. Appends violations for a missing name. Sets
  // `stale` (if given) while the topic serves its stored state.
  Result<size_t> ResolveTopic(const std::string& topic, bool allow_cold,
                              std::vector<FieldViolation>* violations,
                              std::optional<health::Staleness>* stale = nullptr) const;
  // Why `key` is not acceptable for `topic`, or empty when it is. Builds no string for a
  // good key: BatchGet checks up to max_batch_keys of them per call.
  std::string ValidateKey(size_t topic, const std::string& key) const;

  const config::Config* config_;
  const store::Store* store_;
  const health::CatchUpTracker* tracker_;
  CountersFn counters_;
  ReadLimits limits_;
  const kafka::RejectedLog* rejected_ = nullptr;
  api::SubjectVersionFn versions_;
};

}  // namespace cachecar::rpc
