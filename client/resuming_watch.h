// ResumingWatch: a Watch of one key or prefix that survives disconnects and sidecar
// restarts. It resumes from the last revision it delivered (events, snapshot end or
// progress), with the store's id, so nothing is missed or repeated. When the sidecar's
// history no longer reaches back that far (HISTORY_COMPACTED) or its store was rebuilt
// (STORE_CHANGED), it delivers a kReset item, then the entries of a new snapshot
// (snapshot = true), then changes again: drop what you built from earlier items.
//
// Reconnects back off from 50 ms to 2 s (with jitter). Next() blocks; Close() may be
// called from any thread and makes Next() return false. Refusals a retry cannot fix
// (INVALID_REQUEST, LIMIT_EXCEEDED, UNAUTHENTICATED, an unknown topic) end the watch:
// Next() returns false and status() says why.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "client/client.h"

namespace cachecar::client {

struct WatchSpec {
  std::string topic;
  std::string key;      // one key, or with prefix = true every key starting with it
  bool prefix = false;
  bool snapshot = false;  // first deliver the current entries (snapshot = true items)
  bool prev_entry = false;
  // Values as they were in Kafka (see ReadOptions::original_value).
  bool original_value = false;
  // Deliver the changes after this revision (e.g. a store_revision read earlier), without
  // a snapshot. Unset: after the store's revision when the stream opens (the first Next()).
  std::optional<uint64_t> from_revision;
};

struct WatchItem {
  enum class Type { kPut, kDelete, kReset };
  Type type = Type::kPut;
  std::string key;
  std::string value;       // kPut
  uint64_t revision = 0;
  bool snapshot = false;   // an entry of a snapshot, not a change
  bool has_prev = false;
  std::string prev_value;  // with prev_entry, the value this change replaced
};

class ResumingWatch {
 public:
  // `client` must outlive the watch.
  ResumingWatch(Client* client, WatchSpec spec);
  ~ResumingWatch();

  // The next item; false once closed or ended (see status()).
  bool Next(WatchItem* item);
  void Close();
  Status status() const;
  // The last revision delivered: where a resume would start.
  uint64_t revision() const;

 private:
  // One connection: reads until it ends. Returns false if the watch must end.
  bool Connect();
  v1::WatchRequest CreateRequest() const;
  void Backoff();

  Client* client_;
  const WatchSpec spec_;
  std::deque<WatchItem> pending_;
  // Resume state (Next's thread only).
  uint64_t revision_ = 0;
  std::string store_id_;
  bool started_ = false;  // a resume point exists
  bool want_snapshot_;
  bool reset_owed_ = false;
  int backoff_ms_ = 50;

  mutable std::mutex mu_;  // guards stream_, closed_, status_
  std::condition_variable cv_;
  std::unique_ptr<WatchStream> stream_;
  bool closed_ = false;
  Status status_;
};

}  // namespace cachecar::client
