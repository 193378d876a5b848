// The pieces a watch is made of, shared by the hub (hub.h), the stream it belongs to
// (session.h) and their helpers. See hub.h for how they move; each type says which mutex
// guards what.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cachecar/v1/cache.pb.h"
#include "store/snapshot.h"

namespace cachecar::watch {

struct Options {
  uint32_t buffer_events = 1024;
  // A live watch's queue holds at most buffer_events events and about buffer_bytes of
  // keys and values (always at least one event); past either it reads from the history
  // log instead.
  size_t buffer_bytes = 16u << 20;
  std::chrono::milliseconds slow_consumer_timeout{30000};
  uint32_t max_watches_per_stream = 1000;
  uint32_t max_watches = 20000;
  // 0: progress only on request.
  std::chrono::milliseconds progress_interval{10000};
  size_t max_key_bytes = 1 << 20;
  // One response carries at most this many events or snapshot entries, and about this
  // many bytes of keys and values (always at least one).
  size_t max_items_per_response = 256;
  size_t max_response_bytes = 1 << 20;
  // History read per catch-up step (matching or not).
  size_t history_page_events = 1024;
  // Responses a client may leave unread outside its watches' buffers (creates, cancels)
  // before the stream is ended: a client that sends requests but never reads.
  size_t max_control_responses = 4096;
};

// About how many bytes of history one read takes (hub fan-out and catch-up alike).
inline constexpr size_t kHistoryPageBytes = 4 << 20;

// A change as it goes out: decoded once, shared by every watch it matches. Immutable
// once built.
struct Event {
  uint64_t revision = 0;
  size_t topic = 0;
  std::string key;
  bool is_delete = false;
  v1::Entry entry;
  std::optional<v1::Entry> prev;
  // The same with the value as it was in Kafka, for watches that ask (original_value):
  // built only when the change (or the entry it replaced) has its original kept apart
  // (registry topics); otherwise entry and prev serve them too.
  std::optional<v1::Entry> original_entry;
  std::optional<v1::Entry> original_prev;
  size_t bytes = 0;
  // The topic was emptied to be read again (store::HistoryEvent::topic_reset): its
  // watches are cancelled with TOPIC_RESET rather than sent anything.
  bool topic_reset = false;
};

class Session;

// One watch. The fields up to `session` are fixed at creation; the ones after it are
// guarded by the session's mutex.
struct Watch {
  int64_t id = 0;
  size_t topic = 0;
  std::string key;
  bool prefix = false;
  bool no_put = false;
  bool no_delete = false;
  bool prev_entry = false;
  bool original_value = false;
  Session* session = nullptr;

  enum class Phase { kSnapshot, kCatchUp, kLive };
  Phase phase = Phase::kLive;
  // A snapshot is read a page at a time, each page in a short read transaction of its own
  // (no transaction is held while the client reads), at a revision of its own, at least
  // `position` (the store's revision when the watch was created; snapshot_end says it).
  // Each page covers the keys after the previous page's last key up to its own
  // (`last_key`; the final page covers the rest). A change to a key at or below the
  // revision its page was read at is already in the snapshot and is not sent as an event
  // (InSnapshot); any later change is.
  struct SnapshotPage {
    std::string last_key;
    bool final = false;
    uint64_t revision = 0;
  };
  std::vector<SnapshotPage> snapshot_pages;  // kSnapshot and kCatchUp
  uint64_t snapshot_max_revision = 0;        // the highest page revision
  std::string snapshot_cursor;
  // Every matching change up to `position` has been queued or sent.
  uint64_t position = 0;
  // The last revision handed to the client (event, snapshot_end or progress).
  uint64_t sent = 0;
  struct Item {
    std::shared_ptr<const Event> event;            // or:
    std::unique_ptr<v1::WatchResponse> control;    // snapshot_end or progress
    uint64_t control_revision = 0;
  };
  std::deque<Item> queue;
  size_t queued_events = 0;
  size_t queued_bytes = 0;  // Event::bytes of the queued events
  bool progress_queued = false;
  bool in_ready = false;
  bool canceled = false;
  std::chrono::steady_clock::time_point last_send;

  bool Matches(size_t t, const std::string& k) const {
    if (t != topic) return false;
    return prefix ? k.compare(0, key.size(), key) == 0 : k == key;
  }
  bool Wants(const Event& e) const { return e.is_delete ? !no_delete : !no_put; }
  // Whether the change is already reflected in the snapshot sent (see SnapshotPage).
  bool InSnapshot(const Event& e) const {
    if (e.revision > snapshot_max_revision || snapshot_pages.empty()) return false;
    // Pages are in key order, the final one last: the first page whose last key is not
    // below the key covers it.
    auto end = snapshot_pages.end();
    if (snapshot_pages.back().final) --end;
    auto it = std::lower_bound(snapshot_pages.begin(), end, e.key,
                               [](const SnapshotPage& p, const std::string& k) {
                                 return p.last_key < k;
                               });
    if (it == end && (end == snapshot_pages.end())) return false;  // past every page read
    return e.revision <= it->revision;
  }
};

}  // namespace cachecar::watch
