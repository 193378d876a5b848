// WriteHandler: the logic of Put and Delete, on plain proto messages, testable without a
// server. A write is checked (every problem at once: topic, key, size, JSON Schema) and
// then produced to the topic; the store changes only when the materializer reads the
// record back. Unless the request says ack_only, the answer waits until the record is
// applied locally (ApplyNotifier), so the caller's next read sees it.
//
// Errors (reasons as in proto/cachecar/v1/cache.proto): TOPIC_NOT_FOUND, TOPIC_READ_ONLY,
// INVALID_ARGUMENT (key), VALUE_TOO_LARGE, INVALID_JSON, SCHEMA_VIOLATION (BadRequest: one
// violation per schema error, field "value/<JSON Pointer>", reason = keyword),
// TRANSFORM_FAILED and ENTRY_SCHEMA_VIOLATION (kafka/entry_preview.h); then
// KAFKA_UNAVAILABLE (also at once while no broker is reachable), KAFKA_TIMEOUT,
// NOT_YET_APPLIED, PARTITION_HALTED, and RESOURCE_EXHAUSTED with the store's reason
// (DISK_FULL, STORE_FULL) while store commits fail: a write that waits to be applied is
// refused before producing (ack_only writes, which do not need the local store, go on).
// Nothing is produced when any check fails.
//
// Thread-safe. `done` runs exactly once, on the calling thread (refused at once), the
// producer's thread (ack_only) or the notifier's thread; never after `deadline` by more
// than the time the callback itself takes.
#pragma once

#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <functional>

#include "cachecar/v1/cache.pb.h"
#include "common/status.h"
#include "config/config.h"
#include "store/apply_notifier.h"
#include "kafka/entry_preview.h"
#include "registry/schema_cache.h"
#include "kafka/producer.h"
#include "rpc/rpc_stats.h"
#include "schema/schema_set.h"

namespace cachecar::rpc {

struct WriteResult {
  int32_t partition = -1;
  int64_t offset = -1;
  bool applied = false;
  uint64_t revision = 0;
};

class WriteHandler {
 public:
  using Clock = std::chrono::steady_clock;
  using Done = std::function<void(const Status&, const WriteResult&)>;

  // Not owned; all must outlive the handler. `sink` may be null when no topic is
  // writable; `schemas` may be null when no topic has a schema.
  WriteHandler(const config::Config* config, const schema::SchemaSet* schemas,
               kafka::RecordSink* sink, store::ApplyNotifier* notifier,
               size_t max_key_bytes = 1 << 20, prometheus::Registry* registry = nullptr);

  // Called when the caller is gone (cancelled, disconnected): drops the call's waits at
  // once and makes sure `done` is never called. Thread-safe; harmless after `done`.
  using Abandon = std::function<void()>;
  // Check, produce, then answer `done` once: at the ack (ack_only) or once applied. A record
  // produced before the caller left stays produced.
  Abandon Put(const v1::PutRequest& req, Clock::time_point deadline, Done done) const;
  Abandon Delete(const v1::DeleteRequest& req, Clock::time_point deadline, Done done) const;

  // The checks Put makes of the value itself before producing, without producing: what
  // `cachecarctl validate` and tests use. OK or the INVALID_ARGUMENT a Put would get.
  // For a value_format: registry topic the value is checked against its subject's latest
  // schema, and `wire` (if not null) set to the record to produce (the wire format); the
  // registry's absence is UNAVAILABLE (REGISTRY_UNAVAILABLE), a subject it does not have
  // or a schema cachecar cannot use FAILED_PRECONDITION.
  Status CheckValue(size_t topic, const std::string& value, std::string* wire = nullptr) const;
  // For a key_format: registry topic: the key (JSON, as ValidateKey requires) in the wire
  // format, encoded with registry_key_subject's latest schema into `wire`; otherwise as
  // CheckValue (problems named under "key").
  Status EncodeKey(size_t topic, const std::string& key, std::string* wire) const;

  // Also check, for topics with a transform, merge-patch or entry_schema, the entry a Put
  // would lead to (TRANSFORM_FAILED, ENTRY_SCHEMA_VIOLATION). Not owned; call before use.
  void set_entry_preview(const kafka::EntryPreview* entries) { entries_ = entries; }
  // The schemas of value_format: registry topics; required if a topic has that format.
  // Not owned; call before use.
  void set_registry(registry::SchemaCache* registry) { registry_ = registry; }

 private:
  // The latest schema of `subject` (`latest`, as SchemaCache gave it) applied to `json`,
  // a Put's value or key (`field`): the record's bytes in the wire format into `wire`, or
  // why not (problems named under `field`).
  Status EncodeRegistry(const config::TopicConfig& t, const std::string& subject,
                        const Result<std::shared_ptr<const registry::ResolvedSchema>>& latest,
                        const std::string& json, const std::string& field,
                        std::string* wire) const;
  // Resolves a writable topic; appends violations for missing fields.
  Result<size_t> ResolveWritable(const std::string& topic, const std::string& key,
                                 std::vector<FieldViolation>* violations) const;
  // Checks, then Produce. `value` null: a tombstone (not validated).
  Abandon Write(const std::string& topic, const std::string& key, const std::string* value,
                bool ack_only, Clock::time_point deadline, Done done) const;
  // Produces a checked record and answers once it is acknowledged (ack_only) or applied.
  // `arrived`: when Write began (the check stage ends here).
  Abandon Produce(size_t topic, const std::string& key, const std::string* value,
                  bool ack_only, Clock::time_point deadline, Clock::time_point arrived,
                  Done done) const;

  const config::Config* config_;
  const schema::SchemaSet* schemas_;
  const kafka::EntryPreview* entries_ = nullptr;
  registry::SchemaCache* registry_ = nullptr;
  kafka::RecordSink* sink_;
  store::ApplyNotifier* notifier_;
  size_t max_key_bytes_;
  // Per writable topic (all null without a registry or for a read-only topic).
  struct TopicMetrics {
    prometheus::Histogram* total = nullptr;  // arrival to applied, for writes that wait
    prometheus::Histogram* check = nullptr;  // arrival to produce
    prometheus::Histogram* ack = nullptr;    // produce to the broker's acknowledgement
    prometheus::Histogram* apply = nullptr;  // acknowledgement to applied locally
  };
  std::vector<TopicMetrics> metrics_;
};

}  // namespace cachecar::rpc
