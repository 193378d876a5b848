// RecordSource: where the materializer's records come from. The seam between the
// materializer and Kafka, so the materializer's logic (batching, positions, rejects,
// readiness) can be tested with a scripted source; RdKafkaSource is the real one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cachecar::kafka {

inline constexpr int64_t kOffsetBeginning = -2;  // as RD_KAFKA_OFFSET_BEGINNING

struct Assignment {
  size_t topic = 0;  // index into the source's topic list
  int32_t partition = 0;
  int64_t offset = kOffsetBeginning;  // next offset to read
};

struct SourceEvent {
  enum class Kind {
    kRecord,        // a data record (never a control record or an aborted one)
    kPartitionEnd,  // the partition has been read up to `offset` (exclusive)
    kError,         // a consumer error; `error` says what. The source keeps retrying.
    // The partition's position is not in the log any more (retention deleted records not
    // yet read, or the topic was recreated shorter): the partition must be re-read from
    // the beginning, and what the store holds of the topic may be stale.
    kOffsetOutOfRange,
  };
  Kind kind = Kind::kRecord;
  size_t topic = 0;  // for kError, may be out of range: an error not tied to one topic
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
  bool has_key = false;
  std::string_view key;  // views valid until the next Poll
  bool has_value = false;
  std::string_view value;
  // The record's headers in order: name, value (nullopt for a header without one).
  std::vector<std::pair<std::string_view, std::optional<std::string_view>>> headers;
  Status error;
};

class RecordSource {
 public:
  virtual ~RecordSource() = default;

  // Partition count of a topic, from broker metadata. NOT_FOUND if the topic does not
  // exist, UNAVAILABLE if no broker answered in time.
  virtual Result<int32_t> PartitionCount(size_t topic, std::chrono::milliseconds timeout) = 0;

  // The end offsets now of partitions 0..partitions-1 (for read_committed: the last
  // stable offsets, the furthest a read_committed consumer can get).
  virtual Result<std::vector<int64_t>> EndOffsets(size_t topic, int32_t partitions,
                                                  std::chrono::milliseconds timeout) = 0;

  // The first offset a partition's log still holds (records below it were deleted by
  // retention). UNIMPLEMENTED where the source cannot tell.
  virtual Result<int64_t> LogStartOffset(size_t topic, int32_t partition,
                                         std::chrono::milliseconds timeout) {
    return Status(Code::kUnimplemented, "log start offsets are not known to this source");
  }

  // Replaces the whole assignment (every partition in it fetching, none paused).
  virtual Status Assign(const std::vector<Assignment>& assignments) = 0;

  // Stops fetching a partition until the next Assign (a halted partition). Events already
  // fetched may still arrive. The default does nothing.
  virtual Status Pause(size_t topic, int32_t partition) { return Status::Ok(); }

  // Waits up to `timeout` for the next event. Returns false if none came.
  virtual bool Poll(std::chrono::milliseconds timeout, SourceEvent* event) = 0;

  // The latest end offset the consumer has seen for the partition, without asking the
  // broker; -1 if unknown.
  virtual int64_t CachedEndOffset(size_t topic, int32_t partition) = 0;

  // Reports applied positions (next offsets) to Kafka's consumer-group offsets, for lag
  // tooling only; never waits. The default does nothing.
  virtual void CommitOffsets(const std::vector<Assignment>& positions) {}

  // Called with the broker's answer to each CommitOffsets (inside Poll, on the polling
  // thread). Set before the first Poll. The default never calls it.
  using CommitListener = std::function<void(bool ok, const std::string& error)>;
  virtual void SetCommitListener(const CommitListener& listener) {}
};

}  // namespace cachecar::kafka
