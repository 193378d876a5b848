#include "watch/watch_hub.h"

#include <algorithm>

#include "common/log.h"
#include "rpc/read_handler.h"

namespace cachecar::watch {
namespace {

using Clock = std::chrono::steady_clock;
using Reason = v1::WatchCanceled::Reason;

constexpr size_t kHistoryPageBytes = 4 << 20;

const char* ReasonName(Reason r) { return v1::WatchCanceled::Reason_Name(r).c_str(); }

}  // namespace

bool Watch::Matches(size_t t, const std::string& k) const {
  if (t != topic) return false;
  return prefix ? k.compare(0, key.size(), key) == 0 : k == key;
}

// ---------------------------------------------------------------------------------------
// Hub

Hub::Hub(const store::Store* store, const config::Config* config, Options options,
         ReadyFn ready, prometheus::Registry* registry)
    : store_(store), config_(config), options_(options), ready_(std::move(ready)) {
  for (size_t i = 0; i < config_->topics.size(); ++i) topic_index_[config_->topics[i].name] = i;
  index_.resize(config_->topics.size());
  fanned_out_.store(store_->revision(), std::memory_order_release);
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  streams_gauge_ = &BuildGauge()
                        .Name("cachecar_watch_streams")
                        .Help("Open Watch streams")
                        .Register(*registry)
                        .Add({});
  watches_gauge_ = &BuildGauge()
                        .Name("cachecar_watches")
                        .Help("Watches open across all streams")
                        .Register(*registry)
                        .Add({});
  fanned_out_gauge_ = &BuildGauge()
                           .Name("cachecar_watch_fanout_revision")
                           .Help("Store revision up to which changes have been handed to live "
                                 "watches (compare cachecar_store_revision)")
                           .Register(*registry)
                           .Add({});
  oldest_gauge_ = &BuildGauge()
                       .Name("cachecar_watch_history_oldest_revision")
                       .Help("Oldest revision the history log still holds: a resume from "
                             "further back is cancelled with HISTORY_COMPACTED")
                       .Register(*registry)
                       .Add({});
  events_sent_ = &BuildCounter()
                      .Name("cachecar_watch_events_sent_total")
                      .Help("Watch events handed to clients")
                      .Register(*registry)
                      .Add({});
  demotions_ = &BuildCounter()
                    .Name("cachecar_watch_buffer_overflows_total")
                    .Help("Times a live watch's buffer filled and it went back to reading "
                          "the history log (a client slower than the changes)")
                    .Register(*registry)
                    .Add({});
  canceled_family_ = &BuildCounter()
                          .Name("cachecar_watch_canceled_total")
                          .Help("Watches ended or refused, by reason (CANCELED_BY_CLIENT included)")
                          .Register(*registry);
  fanned_out_gauge_->Set(static_cast<double>(fanned_out()));
  oldest_gauge_->Set(static_cast<double>(store_->oldest_history_revision()));
}

Hub::~Hub() { Shutdown(); }

void Hub::Start() { thread_ = std::thread([this] { Run(); }); }

void Hub::Shutdown() {
  std::vector<std::shared_ptr<Session>> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!shutting_down_) {
      shutting_down_ = true;
      for (Session* s : sessions_) {
        if (auto held = s->weak_from_this().lock()) {
          held->ShutdownLocked();
          wake.push_back(std::move(held));
        }
      }
    }
  }
  for (auto& s : wake) s->Wake();
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    stop_ = true;
  }
  wake_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Hub::Notify() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    notified_ = true;
  }
  wake_cv_.notify_one();
}

std::shared_ptr<Session> Hub::NewSession(std::function<void()> wake) {
  std::shared_ptr<Session> s(new Session(this, std::move(wake)));
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.insert(s.get());
  streams_gauge_->Increment();
  if (shutting_down_) s->shutting_down_ = true;
  return s;
}

size_t Hub::watch_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watches_;
}

void Hub::Run() {
  auto tick = std::chrono::milliseconds(1000);
  if (options_.progress_interval.count() > 0) {
    tick = std::clamp(options_.progress_interval / 4, std::chrono::milliseconds(10), tick);
  }
  auto last_progress = Clock::now();
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(wake_mu_);
      wake_cv_.wait_for(lock, tick, [&] { return notified_ || stop_; });
      if (stop_) return;
      notified_ = false;
    }
    FanOut();
    if (Clock::now() - last_progress >= tick) {
      if (options_.progress_interval.count() > 0) SendProgress(/*all=*/false);
      CancelStalled(Clock::now());
      last_progress = Clock::now();
    }
  }
}

std::shared_ptr<const Event> Hub::MakeEvent(store::HistoryEvent&& h) const {
  auto t = topic_index_.find(h.topic);
  if (t == topic_index_.end()) return nullptr;
  auto e = std::make_shared<Event>();
  e->revision = h.revision;
  e->topic = t->second;
  e->is_delete = !h.value.has_value();
  rpc::EntryToProto(h.key, h.value ? *h.value : std::string_view(), h.meta, &e->entry);
  e->bytes = h.key.size() + (h.value ? h.value->size() : 0);
  if (h.prev) {
    e->prev.emplace();
    rpc::EntryToProto(h.prev->key, h.prev->value, h.prev->meta, &*e->prev);
  }
  e->key = std::move(h.key);
  return e;
}

bool Hub::AnyWatchLocked(std::string_view topic, std::string_view key) const {
  // Called for every change read back: compare names in place rather than build a string
  // for the map (topics are few).
  size_t t = 0;
  while (t < config_->topics.size() && config_->topics[t].name != topic) ++t;
  if (t == config_->topics.size()) return false;
  const TopicIndex& ti = index_[t];
  if (!ti.exact.empty() && ti.exact.count(std::string(key)) > 0) return true;
  for (const auto& w : ti.prefix) {
    if (key.substr(0, w->key.size()) == w->key) return true;
  }
  return false;
}

void Hub::IndexLocked(const std::shared_ptr<Watch>& w) {
  TopicIndex& ti = index_[w->topic];
  bool inserted = w->prefix ? ti.prefix.insert(w).second : ti.exact[w->key].insert(w).second;
  if (inserted) {
    ++watches_;
    watches_gauge_->Increment();
  }
}

void Hub::UnindexLocked(const std::shared_ptr<Watch>& w) {
  TopicIndex& ti = index_[w->topic];
  size_t erased = 0;
  if (w->prefix) {
    erased = ti.prefix.erase(w);
  } else if (auto it = ti.exact.find(w->key); it != ti.exact.end()) {
    erased = it->second.erase(w);
    if (it->second.empty()) ti.exact.erase(it);
  }
  if (erased > 0) {
    --watches_;
    watches_gauge_->Decrement();
  }
}

void Hub::Unregister(const std::vector<std::shared_ptr<Watch>>& watches) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& w : watches) UnindexLocked(w);
}

void Hub::CountCancel(Reason reason) {
  canceled_family_->Add({{"reason", ReasonName(reason)}}).Increment();
}

uint64_t Hub::FanOut() {
  oldest_gauge_->Set(static_cast<double>(store_->oldest_history_revision()));
  const uint64_t target = store_->revision();
  uint64_t from = fanned_out();
  while (from < target) {
    {
      // Nobody is watching: skip ahead without reading. Checked and moved under one hold
      // of mu_, so a watch created "from now" sees either the old position (and gets the
      // events) or the new one.
      std::lock_guard<std::mutex> lock(mu_);
      if (watches_ == 0 || shutting_down_) {
        fanned_out_.store(target, std::memory_order_release);
        fanned_out_gauge_->Set(static_cast<double>(target));
        return target;
      }
    }
    // Read under mu_ so the filter can consult the index: only changes some watch matches
    // are decoded (with no watcher on a key, reading it back costs a key comparison).
    std::unique_lock<std::mutex> index_lock(mu_);
    Result<store::HistoryPage> page = [&]() -> Result<store::HistoryPage> {
      Result<store::Snapshot> snap = store_->NewSnapshot();
      if (!snap.ok()) return snap.status();
      return snap->ReadHistory(from, options_.history_page_events, kHistoryPageBytes,
                               [this](std::string_view topic, std::string_view key) {
                                 return AnyWatchLocked(topic, key);
                               });
    }();
    index_lock.unlock();
    if (!page.ok()) {
      log::Warn("watch: cannot read the history log; will retry",
                {{"error", page.status().ToString()}});
      return from;
    }
    std::unordered_set<std::shared_ptr<Session>> wake;
    if (page->compacted) {
      // The log was trimmed past what live watches have been given (history_events is
      // smaller than a burst of changes): they cannot be served without a gap.
      std::lock_guard<std::mutex> lock(mu_);
      log::Warn("watch: history trimmed past the live watches; cancelling them",
                {{"from_revision", std::to_string(from)},
                 {"oldest_revision", std::to_string(page->oldest)}});
      for (Session* s : sessions_) {
        auto held = s->weak_from_this().lock();
        if (!held) continue;
        std::lock_guard<std::mutex> slock(s->mu_);
        std::vector<std::shared_ptr<Watch>> live;
        for (auto& [id, w] : s->watches_) {
          if (w->phase == Watch::Phase::kLive) live.push_back(w);
        }
        for (auto& w : live) {
          s->CancelLocked(w, v1::WatchCanceled::HISTORY_COMPACTED,
                          "changes were trimmed from the history log before they could be "
                          "sent (raise watch.history_events); take a new snapshot",
                          page->oldest);
        }
        for (auto& w : s->to_unindex_) UnindexLocked(w);
        s->to_unindex_.clear();
        wake.insert(std::move(held));
      }
      from = page->oldest - 1;
      fanned_out_.store(from, std::memory_order_release);
    } else {
      std::vector<std::shared_ptr<const Event>> events;
      events.reserve(page->events.size());
      const uint64_t last = page->last;
      for (store::HistoryEvent& h : page->events) {
        if (auto e = MakeEvent(std::move(h))) events.push_back(std::move(e));
      }
      std::lock_guard<std::mutex> lock(mu_);
      auto deliver = [&](const std::shared_ptr<Watch>& w, const std::shared_ptr<const Event>& e) {
        auto held = w->session->weak_from_this().lock();
        if (!held) return;  // the stream is going away; its Close() unindexes it
        if (held->Deliver(w, e) == Session::Delivery::kQueued) wake.insert(std::move(held));
      };
      for (const auto& e : events) {
        TopicIndex& ti = index_[e->topic];
        if (auto it = ti.exact.find(e->key); it != ti.exact.end()) {
          for (const auto& w : it->second) deliver(w, e);
        }
        for (const auto& w : ti.prefix) {
          if (e->key.compare(0, w->key.size(), w->key) == 0) deliver(w, e);
        }
      }
      from = last;
      fanned_out_.store(from, std::memory_order_release);
    }
    fanned_out_gauge_->Set(static_cast<double>(from));
    for (const auto& s : wake) s->Wake();
  }
  return from;
}

void Hub::SendProgress(bool all) {
  std::vector<std::shared_ptr<Session>> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = Clock::now();
    for (Session* s : sessions_) {
      auto held = s->weak_from_this().lock();
      if (!held) continue;
      std::lock_guard<std::mutex> slock(held->mu_);
      if (held->QueueProgress(fanned_out(), all, now)) wake.push_back(held);
    }
  }
  for (auto& s : wake) s->Wake();
}

void Hub::CancelStalled(Clock::time_point now) {
  std::vector<std::shared_ptr<Session>> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Session* s : sessions_) {
      auto held = s->weak_from_this().lock();
      if (!held) continue;
      std::lock_guard<std::mutex> slock(held->mu_);
      if ((held->ready_.empty() && held->control_.empty()) || held->watches_.empty() ||
          now - std::max(held->last_take_, held->work_since_) < options_.slow_consumer_timeout) {
        continue;
      }
      std::vector<std::shared_ptr<Watch>> all;
      for (auto& [id, w] : held->watches_) all.push_back(w);
      for (auto& w : all) {
        held->CancelLocked(w, v1::WatchCanceled::SLOW_CONSUMER,
                           "the client took nothing for " +
                               std::to_string(options_.slow_consumer_timeout.count()) +
                               " ms while changes waited (watch.slow_consumer_timeout_ms); "
                               "resume from last_revision");
      }
      for (auto& w : held->to_unindex_) UnindexLocked(w);
      held->to_unindex_.clear();
      wake.push_back(std::move(held));
    }
  }
  for (auto& s : wake) s->Wake();
}

// ---------------------------------------------------------------------------------------
// Session

Session::~Session() { Close(); }

void Session::Close() {
  std::lock_guard<std::mutex> hub_lock(hub_->mu_);
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  closed_ = true;
  for (auto& [id, w] : watches_) {
    w->canceled = true;
    w->snapshot.reset();
    hub_->UnindexLocked(w);
  }
  for (auto& w : to_unindex_) hub_->UnindexLocked(w);
  watches_.clear();
  ready_.clear();
  control_.clear();
  to_unindex_.clear();
  hub_->sessions_.erase(this);
  hub_->streams_gauge_->Decrement();
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
  const int64_t id = c.watch_id();
  const Options& o = hub_->options_;
  const store::Store* store = hub_->store_;
  if (shutting_down_ || hub_->shutting_down_) {
    return Refuse(id, v1::WatchCanceled::SHUTTING_DOWN, "the sidecar is shutting down");
  }
  if (watches_.count(id) > 0) {
    return Refuse(id, v1::WatchCanceled::WATCH_ID_IN_USE,
                  "watch_id " + std::to_string(id) +
                      " is in use by a live watch on this stream (that watch is unaffected)");
  }
  // Every problem with the request at once, as "field: problem; field: problem".
  std::vector<std::string> problems;
  auto topic = hub_->topic_index_.find(c.topic());
  if (c.topic().empty()) {
    problems.push_back("topic: required");
  } else if (topic == hub_->topic_index_.end()) {
    problems.push_back("topic: \"" + c.topic().substr(0, 256) +
                       "\" is not configured in this sidecar");
  }
  if (c.prefix()) {
    if (c.key().size() > o.max_key_bytes) {
      problems.push_back("key: the prefix is " + std::to_string(c.key().size()) +
                         " bytes; at most " + std::to_string(o.max_key_bytes) + " allowed");
    }
  } else if (topic != hub_->topic_index_.end()) {
    std::string problem =
        rpc::KeyProblem(hub_->config_->topics[topic->second], c.key(), o.max_key_bytes);
    if (!problem.empty()) {
      problems.push_back("key: " + problem + (c.key().empty() ? " (or set prefix)" : ""));
    }
  }
  if (c.snapshot() && c.has_resume_revision()) {
    problems.push_back("snapshot: cannot be combined with resume_revision");
  }
  if (c.no_put() && c.no_delete()) {
    problems.push_back("no_put: together with no_delete it leaves nothing to watch");
  }
  if (!problems.empty()) {
    std::string message;
    for (const auto& p : problems) message += (message.empty() ? "" : "; ") + p;
    return Refuse(id, v1::WatchCanceled::INVALID_REQUEST, std::move(message));
  }
  if (!c.allow_cold_cache() && !hub_->ready_()) {
    return Refuse(id, v1::WatchCanceled::CACHE_NOT_READY,
                  "the cache is still catching up (set allow_cold_cache to watch anyway)");
  }
  const uint64_t head = store->revision();
  if (!c.store_id().empty() && c.store_id() != store->store_id()) {
    return Refuse(id, v1::WatchCanceled::STORE_CHANGED,
                  "store_id " + c.store_id().substr(0, 64) +
                      " is not this store's: it was rebuilt; take a new snapshot");
  }
  if (c.resume_revision() > head) {
    return Refuse(id, v1::WatchCanceled::STORE_CHANGED,
                  "resume_revision " + std::to_string(c.resume_revision()) +
                      " is ahead of this store (at " + std::to_string(head) +
                      "): the revisions came from another store; take a new snapshot");
  }
  const uint64_t oldest = store->oldest_history_revision();
  if (c.has_resume_revision() && c.resume_revision() + 1 < oldest) {
    return Refuse(id, v1::WatchCanceled::HISTORY_COMPACTED,
                  "the changes after revision " + std::to_string(c.resume_revision()) +
                      " are no longer kept (the oldest held is " + std::to_string(oldest) +
                      "); take a new snapshot",
                  oldest);
  }
  if (watches_.size() >= o.max_watches_per_stream) {
    return Refuse(id, v1::WatchCanceled::LIMIT_EXCEEDED,
                  "this stream has " + std::to_string(watches_.size()) +
                      " watches, the most allowed (watch.max_watches_per_stream)");
  }
  if (hub_->watches_ >= o.max_watches) {
    return Refuse(id, v1::WatchCanceled::LIMIT_EXCEEDED,
                  "the sidecar has " + std::to_string(hub_->watches_) +
                      " watches, the most allowed (watch.max_watches)");
  }

  auto w = std::make_shared<Watch>();
  w->id = id;
  w->topic = topic->second;
  w->key = c.key();
  w->prefix = c.prefix();
  w->no_put = c.no_put();
  w->no_delete = c.no_delete();
  w->prev_entry = c.prev_entry();
  w->session = this;
  w->last_send = Clock::now();
  if (c.snapshot()) {
    Result<store::Snapshot> snap = store->NewSnapshot();
    if (!snap.ok()) {
      return Refuse(id, v1::WatchCanceled::INTERNAL,
                    "cannot open a snapshot: " + snap.status().ToString());
    }
    w->phase = Watch::Phase::kSnapshot;
    w->position = snap->revision();
    w->snapshot.emplace(std::move(*snap));
  } else if (c.has_resume_revision()) {
    w->phase = Watch::Phase::kCatchUp;
    w->position = w->sent = c.resume_revision();
  } else {
    w->phase = Watch::Phase::kLive;
    w->position = w->sent = hub_->fanned_out();
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

void Session::CancelLocked(std::shared_ptr<Watch> w, Reason reason, std::string message,
                           uint64_t compact_revision) {
  if (w->canceled) return;
  w->canceled = true;
  w->queue.clear();
  w->queued_events = 0;
  w->snapshot.reset();
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

Session::Delivery Session::Deliver(const std::shared_ptr<Watch>& w,
                                   const std::shared_ptr<const Event>& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (w->canceled || w->phase != Watch::Phase::kLive || e->revision <= w->position) {
    return Delivery::kIgnored;
  }
  if (!w->Wants(*e)) {
    w->position = e->revision;
    return Delivery::kIgnored;
  }
  if (w->queued_events >= hub_->options_.buffer_events) {
    // The client is slower than the changes: stop queueing and let it read the rest from
    // the history log once it has taken what is queued (position stays at the last
    // queued revision).
    w->phase = Watch::Phase::kCatchUp;
    hub_->demotions_->Increment();
    MakeReady(w);
    return Delivery::kQueued;
  }
  w->position = e->revision;
  w->queue.push_back(Watch::Item{e, nullptr, 0});
  ++w->queued_events;
  MakeReady(w);
  return Delivery::kQueued;
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
  *ev->mutable_entry() = e.entry;
  if (w.prev_entry && e.prev) *ev->mutable_prev_entry() = *e.prev;
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
    w.queue.pop_front();
  }
  hub_->events_sent_->Increment(events->events_size());
}

bool Session::FillSnapshot(const std::shared_ptr<Watch>& w, v1::WatchResponse* out) {
  const Options& o = hub_->options_;
  std::vector<store::Entry> entries;
  bool done = true;
  if (w->prefix) {
    Result<store::ScanPage> page = w->snapshot->Scan(w->topic, w->key, w->snapshot_cursor,
                                                     o.max_items_per_response, o.max_response_bytes);
    if (!page.ok()) {
      CancelLocked(w, v1::WatchCanceled::INTERNAL, "snapshot: " + page.status().ToString());
      return false;
    }
    entries = std::move(page->entries);
    w->snapshot_cursor = page->next_cursor;
    done = page->next_cursor.empty();
  } else {
    Result<std::optional<store::Entry>> e = w->snapshot->Get(w->topic, w->key);
    if (!e.ok()) {
      CancelLocked(w, v1::WatchCanceled::INTERNAL, "snapshot: " + e.status().ToString());
      return false;
    }
    if (e->has_value()) entries.push_back(std::move(**e));
  }
  out->set_watch_id(w->id);
  if (done) {
    // The last page: the watch continues from the snapshot's revision.
    const uint64_t s = w->snapshot->revision();
    w->snapshot.reset();
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
  v1::WatchSnapshot* snap = out->mutable_snapshot();
  for (const store::Entry& e : entries) {
    rpc::EntryToProto(e.key, e.value, e.meta, snap->add_entries());
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
      if (page.ok() && !page->compacted) {
        exhausted = true;
        for (store::HistoryEvent& h : page->events) {
          if (matched.size() >= hub_->options_.max_items_per_response) {
            exhausted = false;
            break;
          }
          reached = h.revision;
          auto e = hub_->MakeEvent(std::move(h));
          if (e && w->Wants(*e)) matched.push_back(std::move(e));
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
      if (page->compacted) {
        CancelLocked(w, v1::WatchCanceled::HISTORY_COMPACTED,
                     "the changes after revision " + std::to_string(after) +
                         " are no longer kept; take a new snapshot",
                     page->oldest);
        continue;
      }
      w->position = std::max(w->position, reached);
      if (!matched.empty()) {
        out->set_watch_id(w->id);
        v1::WatchEvents* events = out->mutable_events();
        for (const auto& e : matched) AppendEvent(*w, *e, events);
        w->sent = matched.back()->revision;
        hub_->events_sent_->Increment(static_cast<double>(matched.size()));
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
