#include "watch/session.h"

#include <algorithm>
#include <variant>

#include "api/entry_proto.h"
#include "watch/hub.h"

namespace cachecar::watch {
namespace {

using Clock = std::chrono::steady_clock;
using Reason = v1::WatchCanceled::Reason;

}  // namespace

Session::~Session() { Close(); }

void Session::Close() {
  std::lock_guard<std::mutex> hub_lock(hub_->mu_);
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  closed_ = true;
  for (auto& [id, w] : watches_) {
    w->canceled = true;
    hub_->UnindexLocked(w);
  }
  for (auto& w : to_unindex_) hub_->UnindexLocked(w);
  watches_.clear();
  ready_.clear();
  control_.clear();
  to_unindex_.clear();
  hub_->sessions_.erase(this);
  hub_->stats_.streams->Decrement();
}

bool Session::Finished() {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_ || (shutting_down_ && control_.empty());
}

bool Session::Idle() {
  std::lock_guard<std::mutex> lock(mu_);
  return watches_.empty() && control_.empty();
}

bool Session::Handle(const v1::WatchRequest& request, std::string* error) {
  std::lock_guard<std::mutex> hub_lock(hub_->mu_);
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) {
    *error = "the stream is closed";
    return false;
  }
  switch (request.request_case()) {
    case v1::WatchRequest::kCreate:
      Create(request.create());
      break;
    case v1::WatchRequest::kCancel: {
      auto it = watches_.find(request.cancel().watch_id());
      if (it == watches_.end()) {
        Refuse(request.cancel().watch_id(), v1::WatchCanceled::INVALID_REQUEST,
               "cancel.watch_id: no live watch " + std::to_string(request.cancel().watch_id()) +
                   " on this stream");
      } else {
        CancelLocked(it->second, v1::WatchCanceled::CANCELED_BY_CLIENT, "canceled by the client");
      }
      break;
    }
    case v1::WatchRequest::kProgress:
      QueueProgress(hub_->fanned_out(), /*all=*/true, Clock::now());
      break;
    default:
      *error = "a WatchRequest must set one of create, cancel or progress";
      return false;
  }
  for (auto& w : to_unindex_) hub_->UnindexLocked(w);
  to_unindex_.clear();
  if (control_.size() > hub_->options_.max_control_responses) {
    *error = "more than " + std::to_string(hub_->options_.max_control_responses) +
             " responses are waiting to be read: the client sends requests but does not "
             "read the answers";
    return false;
  }
  return true;
}

void Session::Create(const v1::WatchCreateRequest& c) {
  const store::Store* store = hub_->store_;
  CreateContext ctx;
  ctx.topics = &hub_->config_->topics;
  ctx.topic_index = &hub_->topic_index_;
  ctx.options = &hub_->options_;
  ctx.shutting_down = shutting_down_ || hub_->shutting_down_;
  ctx.id_in_use = watches_.count(c.watch_id()) > 0;
  ctx.ready = c.allow_cold_cache() || hub_->ready_();
  ctx.head = store->revision();
  ctx.store_id = store->store_id();
  ctx.oldest = store->oldest_history_revision();
  ctx.stream_watches = watches_.size();
  ctx.total_watches = hub_->index_.size();
  std::variant<WatchSpec, Refusal> checked = CheckCreate(c, ctx);
  if (auto* r = std::get_if<Refusal>(&checked)) {
    return Refuse(c.watch_id(), r->reason, std::move(r->message), r->compact_revision);
  }
  const WatchSpec& spec = std::get<WatchSpec>(checked);
  const int64_t id = spec.id;

  auto w = std::make_shared<Watch>();
  w->id = id;
  w->topic = spec.topic;
  w->key = spec.key;
  w->prefix = spec.prefix;
  w->no_put = spec.no_put;
  w->no_delete = spec.no_delete;
  w->prev_entry = spec.prev_entry;
  w->original_value = spec.original_value;
  w->session = this;
  w->last_send = Clock::now();
  if (spec.snapshot) {
    // Pages are read later, each at a revision at least this one (see Watch).
    w->phase = Watch::Phase::kSnapshot;
    w->position = store->revision();
  } else if (spec.resume_revision) {
    w->phase = Watch::Phase::kCatchUp;
    w->position = w->sent = *spec.resume_revision;
  } else {
    // From now: the store's revision, not what the hub has handed out so far. A page the
    // hub read before this watch existed skipped its keys, so the watch must not be owed
    // anything in it (etcd starts a new synced watcher at currentRev + 1 likewise).
    w->phase = Watch::Phase::kLive;
    w->position = w->sent = std::max({hub_->fanned_out(), store->revision(),
                                      hub_->reading_to_.load(std::memory_order_acquire)});
  }
  NoteWork();
  v1::WatchResponse& created = control_.emplace_back();
  created.set_watch_id(id);
  created.mutable_created()->set_store_id(store->store_id());
  created.mutable_created()->set_revision(w->position);
  watches_[id] = w;
  hub_->IndexLocked(w);
  if (w->phase != Watch::Phase::kLive) MakeReady(w);
}

void Session::Refuse(int64_t id, Reason reason, std::string message, uint64_t compact_revision) {
  NoteWork();
  v1::WatchResponse& r = control_.emplace_back();
  r.set_watch_id(id);
  v1::WatchCanceled* c = r.mutable_canceled();
  c->set_reason(reason);
  c->set_message(std::move(message));
  c->set_compact_revision(compact_revision);
  c->set_store_id(hub_->store_->store_id());
  hub_->CountCancel(reason);
}

// `w` by value: erasing it from watches_ below must not free it while in use.
// NOLINTNEXTLINE(performance-unnecessary-value-param)
void Session::CancelLocked(std::shared_ptr<Watch> w, Reason reason, std::string message,
                           uint64_t compact_revision) {
  if (w->canceled) return;
  w->canceled = true;
  w->queue.clear();
  w->queued_events = 0;
  w->queued_bytes = 0;
  w->snapshot_pages.clear();
  if (auto it = watches_.find(w->id); it != watches_.end() && it->second == w) watches_.erase(it);
  to_unindex_.push_back(w);
  Refuse(w->id, reason, std::move(message), compact_revision);
  control_.back().mutable_canceled()->set_last_revision(w->sent);
}

void Session::ShutdownLocked() {
  std::lock_guard<std::mutex> lock(mu_);
  shutting_down_ = true;
  std::vector<std::shared_ptr<Watch>> all;
  for (auto& [id, w] : watches_) all.push_back(w);
  for (auto& w : all) {
    CancelLocked(w, v1::WatchCanceled::SHUTTING_DOWN,
                 "the sidecar is shutting down; reconnect and resume from last_revision");
  }
  for (auto& w : to_unindex_) hub_->UnindexLocked(w);
  to_unindex_.clear();
}

void Session::MakeReady(const std::shared_ptr<Watch>& w) {
  if (w->in_ready || w->canceled) return;
  NoteWork();
  w->in_ready = true;
  ready_.push_back(w);
}

Session::DeliverOutcome Session::Deliver(const std::shared_ptr<Watch>& w,
                                   const std::shared_ptr<const Event>& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (w->canceled || w->phase != Watch::Phase::kLive || e->revision <= w->position) {
    return DeliverOutcome::kIgnored;
  }
  if (!w->Wants(*e)) {
    w->position = e->revision;
    return DeliverOutcome::kIgnored;
  }
  const Options& o = hub_->options_;
  if (w->queued_events >= o.buffer_events ||
      (w->queued_events > 0 && w->queued_bytes + e->bytes > o.buffer_bytes)) {
    // The client is slower than the changes: stop queueing and let it read the rest from
    // the history log once it has taken what is queued (position stays at the last
    // queued revision).
    w->phase = Watch::Phase::kCatchUp;
    hub_->stats_.demotions->Increment();
    MakeReady(w);
    return DeliverOutcome::kQueued;
  }
  w->position = e->revision;
  w->queue.push_back(Watch::Item{e, nullptr, 0});
  ++w->queued_events;
  w->queued_bytes += e->bytes;
  MakeReady(w);
  return DeliverOutcome::kQueued;
}

bool Session::QueueProgress(uint64_t revision, bool all, Clock::time_point now) {
  bool queued = false;
  for (auto& [id, w] : watches_) {
    if (w->canceled || w->phase == Watch::Phase::kSnapshot || w->progress_queued) continue;
    if (!all && (w->phase != Watch::Phase::kLive || w->queued_events > 0 ||
                 now - w->last_send < hub_->options_.progress_interval)) {
      continue;
    }
    // Everything matching up to the position is queued ahead of this response; a live
    // watch has also been offered everything up to what the hub has handed out.
    uint64_t rev = w->phase == Watch::Phase::kLive ? std::max(revision, w->position) : w->position;
    auto r = std::make_unique<v1::WatchResponse>();
    r->set_watch_id(w->id);
    r->mutable_progress()->set_revision(rev);
    w->queue.push_back(Watch::Item{nullptr, std::move(r), rev});
    w->progress_queued = true;
    MakeReady(w);
    queued = true;
  }
  return queued;
}

namespace {

void AppendEvent(const Watch& w, const Event& e, v1::WatchEvents* out) {
  v1::WatchEvent* ev = out->add_events();
  ev->set_type(e.is_delete ? v1::WatchEvent::DELETE : v1::WatchEvent::PUT);
  ev->set_revision(e.revision);
  const bool original = w.original_value;
  *ev->mutable_entry() = original && e.original_entry ? *e.original_entry : e.entry;
  if (w.prev_entry && e.prev) {
    *ev->mutable_prev_entry() = original && e.original_prev ? *e.original_prev : *e.prev;
  }
}

}  // namespace

void Session::FillEvents(Watch& w, v1::WatchResponse* out) {
  Watch::Item& front = w.queue.front();
  if (front.control) {
    *out = std::move(*front.control);
    w.sent = std::max(w.sent, front.control_revision);
    if (out->has_progress()) w.progress_queued = false;
    w.queue.pop_front();
    return;
  }
  out->set_watch_id(w.id);
  v1::WatchEvents* events = out->mutable_events();
  size_t bytes = 0;
  const Options& o = hub_->options_;
  while (!w.queue.empty() && w.queue.front().event &&
         static_cast<size_t>(events->events_size()) < o.max_items_per_response &&
         bytes < o.max_response_bytes) {
    const Event& e = *w.queue.front().event;
    AppendEvent(w, e, events);
    bytes += e.bytes;
    w.sent = e.revision;
    --w.queued_events;
    w.queued_bytes -= e.bytes;
    w.queue.pop_front();
  }
  hub_->stats_.events_sent->Increment(events->events_size());
}

bool Session::FillSnapshot(const std::shared_ptr<Watch>& w, v1::WatchResponse* out) {
  const Options& o = hub_->options_;
  // One short read transaction per page: none is held while the client reads.
  Result<store::Snapshot> snap = hub_->store_->NewSnapshot();
  if (!snap.ok()) {
    CancelLocked(w, v1::WatchCanceled::INTERNAL, "snapshot: " + snap.status().ToString());
    return false;
  }
  std::vector<store::Entry> entries;
  bool done = true;
  if (w->prefix) {
    Result<store::ScanPage> page = snap->Scan(w->topic, w->key, w->snapshot_cursor,
                                              o.max_items_per_response, o.max_response_bytes);
    if (!page.ok()) {
      CancelLocked(w, v1::WatchCanceled::INTERNAL, "snapshot: " + page.status().ToString());
      return false;
    }
    entries = std::move(page->entries);
    w->snapshot_cursor = page->next_cursor;
    done = page->next_cursor.empty();
  } else {
    Result<std::optional<store::Entry>> e = snap->Get(w->topic, w->key);
    if (!e.ok()) {
      CancelLocked(w, v1::WatchCanceled::INTERNAL, "snapshot: " + e.status().ToString());
      return false;
    }
    if (e->has_value()) entries.push_back(std::move(**e));
  }
  w->snapshot_pages.push_back(
      Watch::SnapshotPage{done ? std::string() : w->snapshot_cursor, done, snap->revision()});
  w->snapshot_max_revision = std::max(w->snapshot_max_revision, snap->revision());
  out->set_watch_id(w->id);
  if (done) {
    // The last page: the watch continues with the changes after the revision it was
    // created at, less those the pages already hold.
    const uint64_t s = w->position;
    w->snapshot_cursor.clear();
    w->phase = Watch::Phase::kCatchUp;
    auto end = std::make_unique<v1::WatchResponse>();
    end->set_watch_id(w->id);
    end->mutable_snapshot_end()->set_revision(s);
    if (entries.empty()) {
      *out = std::move(*end);
      w->sent = s;
      return true;
    }
    w->queue.push_front(Watch::Item{nullptr, std::move(end), s});
  }
  v1::WatchSnapshot* snap_out = out->mutable_snapshot();
  for (const store::Entry& e : entries) {
    api::EntryToProto(e.key, api::ServedValue(e.value, e.original, w->original_value), e.meta,
                      snap_out->add_entries(), hub_->subject_versions(), w->topic);
  }
  return true;
}

bool Session::TryJoin(const std::shared_ptr<Watch>& w, uint64_t reached) {
  std::lock_guard<std::mutex> hub_lock(hub_->mu_);
  std::lock_guard<std::mutex> lock(mu_);
  if (w->canceled || w->phase != Watch::Phase::kCatchUp || hub_->fanned_out() > reached) {
    return false;
  }
  w->phase = Watch::Phase::kLive;
  w->position = std::max(w->position, reached);
  return true;
}

bool Session::Next(v1::WatchResponse* out) {
  out->Clear();
  std::unique_lock<std::mutex> lock(mu_);
  bool have = false;
  while (!have) {
    if (!control_.empty()) {
      *out = std::move(control_.front());
      control_.pop_front();
      have = true;
      break;
    }
    if (ready_.empty()) break;
    std::shared_ptr<Watch> w = std::move(ready_.front());
    ready_.pop_front();
    w->in_ready = false;
    if (w->canceled) continue;
    if (!w->queue.empty()) {
      FillEvents(*w, out);
      have = true;
    } else if (w->phase == Watch::Phase::kSnapshot) {
      have = FillSnapshot(w, out);
    } else if (w->phase == Watch::Phase::kCatchUp) {
      // Read the next page of history without holding the lock: the hub may deliver to
      // other watches meanwhile. Only this thread moves a catching-up watch forward.
      const uint64_t after = w->position;
      lock.unlock();
      std::vector<std::shared_ptr<const Event>> matched;
      uint64_t reached = after;
      Result<store::HistoryPage> page = [&]() -> Result<store::HistoryPage> {
        Result<store::Snapshot> snap = hub_->store_->NewSnapshot();
        if (!snap.ok()) return snap.status();
        const std::string& topic = hub_->config_->topics[w->topic].name;
        return snap->ReadHistory(after, hub_->options_.history_page_events, kHistoryPageBytes,
                                 [&](std::string_view t, std::string_view k) {
                                   return t == topic && (w->prefix ? k.substr(0, w->key.size()) == w->key
                                                                   : k == w->key);
                                 });
      }();
      bool exhausted = false;
      bool reset = false;  // the log says this watch's topic was emptied
      if (page.ok() && !page->compacted) {
        exhausted = true;
        for (store::HistoryEvent& h : page->events) {
          if (matched.size() >= hub_->options_.max_items_per_response) {
            exhausted = false;
            break;
          }
          reached = h.revision;
          auto e = hub_->MakeEvent(std::move(h));
          if (e && e->topic_reset) {
            if (e->topic != w->topic) continue;
            reset = true;
            exhausted = false;
            break;
          }
          if (e && w->Wants(*e) && !w->InSnapshot(*e)) matched.push_back(std::move(e));
        }
        // Exhausted only if the page looked at everything up to its snapshot.
        if (exhausted && page->last >= page->revision) {
          reached = page->revision;
        } else if (exhausted) {
          reached = page->last;
          exhausted = false;
        }
      }
      const bool joined = exhausted && TryJoin(w, reached);
      lock.lock();
      if (w->canceled) continue;
      if (!page.ok()) {
        CancelLocked(w, v1::WatchCanceled::INTERNAL,
                     "cannot read the history log: " + page.status().ToString());
        continue;
      }
      if (reset) {
        CancelLocked(w, v1::WatchCanceled::TOPIC_RESET, hub_->ResetMessage(w->topic));
        continue;
      }
      if (page->compacted) {
        CancelLocked(w, v1::WatchCanceled::HISTORY_COMPACTED,
                     "the changes after revision " + std::to_string(after) +
                         " are no longer kept; take a new snapshot",
                     page->oldest);
        continue;
      }
      w->position = std::max(w->position, reached);
      if (w->position >= w->snapshot_max_revision) w->snapshot_pages.clear();  // all past
      if (!matched.empty()) {
        out->set_watch_id(w->id);
        v1::WatchEvents* events = out->mutable_events();
        for (const auto& e : matched) AppendEvent(*w, *e, events);
        w->sent = matched.back()->revision;
        hub_->stats_.events_sent->Increment(static_cast<double>(matched.size()));
        have = true;
      }
      if (!joined) MakeReady(w);
      if (!have) continue;
    }
    if (have) {
      w->last_send = Clock::now();
      if (!w->queue.empty() || w->phase != Watch::Phase::kLive) MakeReady(w);
    }
  }
  if (have) last_take_ = Clock::now();
  std::vector<std::shared_ptr<Watch>> unindex;
  unindex.swap(to_unindex_);
  lock.unlock();
  if (!unindex.empty()) hub_->Unregister(unindex);
  return have;
}

}  // namespace cachecar::watch
