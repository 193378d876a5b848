// A scripted RecordSource for the materializer's tests.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kafka/record_source.h"

namespace cachecar::kafka {

// Tests push events; Poll hands them out in order.
class FakeSource : public RecordSource {
 public:
  struct Record {
    SourceEvent ev;
    std::string key, value;
  };

  void SetPartitions(size_t topic, int32_t count, std::vector<int64_t> ends) {
    std::lock_guard<std::mutex> lock(mu_);
    partitions_[topic] = count;
    ends_[topic] = std::move(ends);
  }
  void PushRecord(size_t topic, int32_t partition, int64_t offset, std::optional<std::string> key,
                  std::optional<std::string> value) {
    Record r;
    r.ev.kind = SourceEvent::Kind::kRecord;
    r.ev.topic = topic;
    r.ev.partition = partition;
    r.ev.offset = offset;
    r.ev.timestamp_ms = 1000;
    r.ev.has_key = key.has_value();
    r.key = key.value_or("");
    r.ev.has_value = value.has_value();
    r.value = value.value_or("");
    Push(std::move(r));
  }
  void PushEnd(size_t topic, int32_t partition, int64_t offset) {
    Record r;
    r.ev.kind = SourceEvent::Kind::kPartitionEnd;
    r.ev.topic = topic;
    r.ev.partition = partition;
    r.ev.offset = offset;
    Push(std::move(r));
  }
  void PushOutOfRange(size_t topic, int32_t partition) {
    Record r;
    r.ev.kind = SourceEvent::Kind::kOffsetOutOfRange;
    r.ev.topic = topic;
    r.ev.partition = partition;
    r.ev.error = Status(Code::kUnavailable, "offset out of range", "KAFKA_ERROR");
    Push(std::move(r));
  }
  void PushError(size_t topic, Status error) {
    Record r;
    r.ev.kind = SourceEvent::Kind::kError;
    r.ev.topic = topic;
    r.ev.error = std::move(error);
    Push(std::move(r));
  }
  // The topic no longer exists (PartitionCount says NOT_FOUND).
  void RemoveTopic(size_t topic) {
    std::lock_guard<std::mutex> lock(mu_);
    partitions_.erase(topic);
  }
  std::vector<std::vector<Assignment>> commits() {
    std::lock_guard<std::mutex> lock(mu_);
    return commits_;
  }
  void CommitOffsets(const std::vector<Assignment>& positions) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      commits_.push_back(positions);
    }
    cv_.notify_all();
  }
  bool WaitCommits(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return commits_.size() >= n; });
  }
  std::vector<Assignment> assignment() {
    std::lock_guard<std::mutex> lock(mu_);
    return assignment_;
  }
  // Waits until Poll has handed out every pushed event.
  bool WaitDrained(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return queue_.empty(); });
  }

  Result<int32_t> PartitionCount(size_t topic, std::chrono::milliseconds) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = partitions_.find(topic);
    if (it == partitions_.end()) return NotFound("no such topic", "KAFKA_TOPIC_NOT_FOUND");
    return it->second;
  }
  Result<std::vector<int64_t>> EndOffsets(size_t topic, int32_t, std::chrono::milliseconds) override {
    std::lock_guard<std::mutex> lock(mu_);
    return ends_.at(topic);
  }
  Status Assign(const std::vector<Assignment>& a) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      assignment_ = a;
      paused_.clear();
      ++assigns_;
    }
    cv_.notify_all();
    return Status::Ok();
  }
  Status Pause(size_t topic, int32_t partition) override {
    std::lock_guard<std::mutex> lock(mu_);
    paused_.insert({topic, partition});
    return Status::Ok();
  }
  std::set<std::pair<size_t, int32_t>> paused() {
    std::lock_guard<std::mutex> lock(mu_);
    return paused_;
  }
  // Waits until Assign has been called more than `n` times.
  bool WaitAssigns(int n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return assigns_ > n; });
  }
  int assigns() {
    std::lock_guard<std::mutex> lock(mu_);
    return assigns_;
  }
  bool Poll(std::chrono::milliseconds timeout, SourceEvent* ev) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !queue_.empty(); });
    if (queue_.empty()) return false;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    if (queue_.empty()) cv_.notify_all();  // WaitDrained
    *ev = current_.ev;
    ev->key = current_.key;
    ev->value = current_.value;
    return true;
  }
  // -1 (unknown) unless ReportCachedEnds(true): then the ends given to SetPartitions.
  int64_t CachedEndOffset(size_t topic, int32_t partition) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!report_cached_ends_) return -1;
    auto it = ends_.find(topic);
    if (it == ends_.end() || partition < 0 ||
        static_cast<size_t>(partition) >= it->second.size()) {
      return -1;
    }
    return it->second[static_cast<size_t>(partition)];
  }
  void ReportCachedEnds(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    report_cached_ends_ = on;
  }

 private:
  void Push(Record r) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(r));
    }
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<size_t, int32_t> partitions_;
  std::map<size_t, std::vector<int64_t>> ends_;
  bool report_cached_ends_ = false;
  std::vector<Assignment> assignment_;
  std::set<std::pair<size_t, int32_t>> paused_;
  int assigns_ = 0;
  std::vector<std::vector<Assignment>> commits_;
  std::deque<Record> queue_;
  Record current_;  // the event the last Poll's views point into
};

}  // namespace cachecar::kafka
