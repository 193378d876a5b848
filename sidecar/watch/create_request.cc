#include "watch/create_request.h"

#include "api/entry_proto.h"
#include "api/key_rules.h"

namespace cachecar::watch {

std::variant<WatchSpec, Refusal> CheckCreate(const v1::WatchCreateRequest& c,
                                             const CreateContext& ctx) {
  const int64_t id = c.watch_id();
  const Options& o = *ctx.options;
  if (ctx.shutting_down) {
    return Refusal{v1::WatchCanceled::SHUTTING_DOWN, "the sidecar is shutting down"};
  }
  if (ctx.id_in_use) {
    return Refusal{v1::WatchCanceled::WATCH_ID_IN_USE,
                   "watch_id " + std::to_string(id) +
                       " is in use by a live watch on this stream (that watch is unaffected)"};
  }
  // Every problem with the request at once, as "field: problem; field: problem".
  std::vector<std::string> problems;
  auto topic = ctx.topic_index->find(c.topic());
  if (c.topic().empty()) {
    problems.push_back("topic: required");
  } else if (topic == ctx.topic_index->end()) {
    problems.push_back("topic: \"" + c.topic().substr(0, 256) +
                       "\" is not configured in this sidecar");
  }
  if (c.prefix()) {
    if (c.key().size() > o.max_key_bytes) {
      problems.push_back("key: the prefix is " + std::to_string(c.key().size()) +
                         " bytes; at most " + std::to_string(o.max_key_bytes) + " allowed");
    }
  } else if (topic != ctx.topic_index->end()) {
    std::string problem =
        api::ValidateKey((*ctx.topics)[topic->second], c.key(), o.max_key_bytes);
    if (!problem.empty()) {
      problems.push_back("key: " + problem + (c.key().empty() ? " (or set prefix)" : ""));
    }
  }
  if (c.snapshot() && c.has_resume_revision()) {
    problems.push_back("snapshot: cannot be combined with resume_revision");
  }
  if (c.original_value() && topic != ctx.topic_index->end()) {
    std::string why = api::WhyNoOriginal((*ctx.topics)[topic->second]);
    if (!why.empty()) problems.push_back("original_value: " + why);
  }
  if (c.no_put() && c.no_delete()) {
    problems.push_back("no_put: together with no_delete it leaves nothing to watch");
  }
  if (!problems.empty()) {
    std::string message;
    for (const auto& p : problems) message += (message.empty() ? "" : "; ") + p;
    return Refusal{v1::WatchCanceled::INVALID_REQUEST, std::move(message)};
  }
  if (!c.allow_cold_cache() && !ctx.ready) {
    return Refusal{v1::WatchCanceled::CACHE_NOT_READY,
                   "the cache is still catching up (set allow_cold_cache to watch anyway)"};
  }
  if (!c.store_id().empty() && c.store_id() != ctx.store_id) {
    return Refusal{v1::WatchCanceled::STORE_CHANGED,
                   "store_id " + c.store_id().substr(0, 64) +
                       " is not this store's: it was rebuilt; take a new snapshot"};
  }
  if (c.resume_revision() > ctx.head) {
    return Refusal{v1::WatchCanceled::STORE_CHANGED,
                   "resume_revision " + std::to_string(c.resume_revision()) +
                       " is ahead of this store (at " + std::to_string(ctx.head) +
                       "): the revisions came from another store; take a new snapshot"};
  }
  if (c.has_resume_revision() && c.resume_revision() + 1 < ctx.oldest) {
    return Refusal{v1::WatchCanceled::HISTORY_COMPACTED,
                   "the changes after revision " + std::to_string(c.resume_revision()) +
                       " are no longer kept (the oldest held is " + std::to_string(ctx.oldest) +
                       "); take a new snapshot",
                   ctx.oldest};
  }
  if (ctx.stream_watches >= o.max_watches_per_stream) {
    return Refusal{v1::WatchCanceled::LIMIT_EXCEEDED,
                   "this stream has " + std::to_string(ctx.stream_watches) +
                       " watches, the most allowed (watch.max_watches_per_stream)"};
  }
  if (ctx.total_watches >= o.max_watches) {
    return Refusal{v1::WatchCanceled::LIMIT_EXCEEDED,
                   "the sidecar has " + std::to_string(ctx.total_watches) +
                       " watches, the most allowed (watch.max_watches)"};
  }
  WatchSpec spec;
  spec.id = id;
  spec.topic = topic->second;
  // One key of a key_format: registry topic is watched in the form the store keeps it.
  spec.key = c.prefix() ? c.key() : api::StoredKey((*ctx.topics)[topic->second], c.key());
  spec.prefix = c.prefix();
  spec.no_put = c.no_put();
  spec.no_delete = c.no_delete();
  spec.prev_entry = c.prev_entry();
  spec.original_value = c.original_value();
  spec.snapshot = c.snapshot();
  if (c.has_resume_revision()) spec.resume_revision = c.resume_revision();
  return spec;
}

}  // namespace cachecar::watch
