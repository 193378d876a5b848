// CheckCreate: whether a WatchCreateRequest can become a watch, as a pure function of the
// request and the state it is checked against, so every refusal is testable on its own.
// Thread-safe; the caller gathers the context under the locks that guard it.
//
// Refusals, in the order they are checked (the first that applies wins):
//   SHUTTING_DOWN      the sidecar or the stream is shutting down;
//   WATCH_ID_IN_USE    a live watch on the stream has the id (that watch is unaffected);
//   INVALID_REQUEST    every problem with the fields at once, "field: problem; ...";
//   CACHE_NOT_READY    not caught up, and allow_cold_cache is not set;
//   STORE_CHANGED      store_id is not this store's, or resume_revision is ahead of it;
//   HISTORY_COMPACTED  the changes after resume_revision are no longer kept
//                      (compact_revision: the oldest held);
//   LIMIT_EXCEEDED     the stream's or the sidecar's watch limit is reached.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "cachecar/v1/cache.pb.h"
#include "config/config.h"
#include "watch/watch.h"

namespace cachecar::watch {

// What the request is checked against.
struct CreateContext {
  const std::vector<config::TopicConfig>* topics = nullptr;
  const std::unordered_map<std::string, size_t>* topic_index = nullptr;  // name -> index
  const Options* options = nullptr;
  bool shutting_down = false;
  bool id_in_use = false;
  bool ready = true;            // the cache has caught up
  uint64_t head = 0;            // the store's revision
  std::string_view store_id;
  uint64_t oldest = 0;          // the oldest revision the history log holds
  size_t stream_watches = 0;    // live watches on the stream
  size_t total_watches = 0;     // live watches in the sidecar
};

// An accepted request.
struct WatchSpec {
  int64_t id = 0;
  size_t topic = 0;
  std::string key;
  bool prefix = false;
  bool no_put = false;
  bool no_delete = false;
  bool prev_entry = false;
  bool original_value = false;
  bool snapshot = false;
  std::optional<uint64_t> resume_revision;
};

struct Refusal {
  v1::WatchCanceled::Reason reason = v1::WatchCanceled::INVALID_REQUEST;
  std::string message;
  uint64_t compact_revision = 0;
};

std::variant<WatchSpec, Refusal> CheckCreate(const v1::WatchCreateRequest& c,
                                             const CreateContext& ctx);

}  // namespace cachecar::watch
