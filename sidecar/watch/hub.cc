#include "watch/hub.h"

#include <algorithm>

#include "api/entry_proto.h"
#include "common/log.h"

namespace cachecar::watch {
namespace {

using Clock = std::chrono::steady_clock;
using Reason = v1::WatchCanceled::Reason;

const char* ReasonName(Reason r) { return v1::WatchCanceled::Reason_Name(r).c_str(); }

}  // namespace

Hub::Hub(const store::Store* store, const config::Config* config, Options options,
         ReadyFn ready, prometheus::Registry* registry)
    : store_(store),
      config_(config),
      options_(options),
      ready_(std::move(ready)),
      stats_(WatchStats::Register(*registry)),
      index_([&] {
        std::vector<std::string> names;
        for (const auto& t : config->topics) names.push_back(t.name);
        return names;
      }()) {
  for (size_t i = 0; i < config_->topics.size(); ++i) topic_index_[config_->topics[i].name] = i;
  fanned_out_.store(store_->revision(), std::memory_order_release);
  stats_.fanned_out->Set(static_cast<double>(fanned_out()));
  stats_.oldest->Set(static_cast<double>(store_->oldest_history_revision()));
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
  stats_.streams->Increment();
  if (shutting_down_) s->shutting_down_ = true;
  return s;
}

size_t Hub::watch_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.size();
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
  e->topic_reset = h.topic_reset;
  e->is_delete = !h.value.has_value();
  const size_t topic = t->second;
  api::EntryToProto(h.key, h.value ? *h.value : std::string_view(), h.meta, &e->entry,
                    versions_, topic);
  e->bytes = h.key.size() + (h.value ? h.value->size() : 0);
  if (h.original) {
    e->original_entry.emplace();
    api::EntryToProto(h.key, *h.original, h.meta, &*e->original_entry, versions_, topic);
  }
  if (h.prev) {
    e->prev.emplace();
    api::EntryToProto(h.prev->key, h.prev->value, h.prev->meta, &*e->prev, versions_, topic);
    if (h.prev->original) {
      e->original_prev.emplace();
      api::EntryToProto(h.prev->key, *h.prev->original, h.prev->meta, &*e->original_prev,
                        versions_, topic);
    }
  }
  e->key = std::move(h.key);
  return e;
}

void Hub::IndexLocked(const std::shared_ptr<Watch>& w) {
  if (index_.Add(w)) stats_.watches->Increment();
}

void Hub::UnindexLocked(const std::shared_ptr<Watch>& w) {
  if (index_.Remove(w)) stats_.watches->Decrement();
}

void Hub::Unregister(const std::vector<std::shared_ptr<Watch>>& watches) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& w : watches) UnindexLocked(w);
}

void Hub::CountCancel(Reason reason) {
  stats_.canceled->Add({{"reason", ReasonName(reason)}}).Increment();
}

uint64_t Hub::FanOut() {
  stats_.oldest->Set(static_cast<double>(store_->oldest_history_revision()));
  const uint64_t target = store_->revision();
  uint64_t from = fanned_out();
  while (from < target) {
    // The read's snapshot first, then what is watched: a watch created "from now" after
    // that look starts at or after the snapshot's revision (reading_to_), so it is owed
    // nothing the page skips for it.
    std::optional<Result<store::Snapshot>> snap(store_->NewSnapshot());
    std::shared_ptr<const WatchInterest> interest;
    {
      // Nobody is watching: skip ahead without reading. Checked and moved under one hold
      // of mu_, so a watch created "from now" sees either the old position (and gets the
      // events) or the new one.
      std::lock_guard<std::mutex> lock(mu_);
      if (index_.size() == 0 || shutting_down_) {
        fanned_out_.store(target, std::memory_order_release);
        stats_.fanned_out->Set(static_cast<double>(target));
        return target;
      }
      if (snap->ok()) {
        reading_to_.store((*snap)->revision(), std::memory_order_release);
        interest = index_.Interest();
      }
    }
    // Read without mu_: only changes some watch matches are decoded (with no watcher on a
    // key, reading it back costs a key comparison), and creating, cancelling and
    // delivering go on meanwhile.
    Result<store::HistoryPage> page = [&]() -> Result<store::HistoryPage> {
      if (!snap->ok()) return snap->status();
      return (*snap)->ReadHistory(from, options_.history_page_events, kHistoryPageBytes,
                               [this, &interest, first = true](std::string_view topic,
                                                               std::string_view key) mutable {
                                 if (first && during_read_hook_) during_read_hook_();
                                 first = false;
                                 return interest->Any(topic, key);
                               });
    }();
    snap.reset();  // the read transaction ends here
    if (after_read_hook_) after_read_hook_();
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
      for (const auto& e : events) {
        if (e->topic_reset) {
          CancelResetLocked(*e, &wake);
          continue;
        }
        index_.ForEachMatch(e->topic, e->key, [&](const std::shared_ptr<Watch>& w) {
          auto held = w->session->weak_from_this().lock();
          if (!held) return;  // the stream is going away; its Close() unindexes it
          if (held->Deliver(w, e) == Session::DeliverOutcome::kQueued) {
            wake.insert(std::move(held));
          }
        });
      }
      from = last;
      fanned_out_.store(from, std::memory_order_release);
    }
    stats_.fanned_out->Set(static_cast<double>(from));
    WakeAll(wake);
  }
  return from;
}

std::string Hub::ResetMessage(size_t topic) const {
  return "topic " + config_->topics[topic].name +
         " was emptied to be read again from Kafka (a rebuild: its positions fell out of the "
         "log, or it was deleted); wait until it is ready, then take a new snapshot";
}

void Hub::CancelResetLocked(const Event& e, std::unordered_set<std::shared_ptr<Session>>* wake) {
  // Live watches only: the others read the log themselves and meet the reset there.
  for (Session* s : sessions_) {
    auto held = s->weak_from_this().lock();
    if (!held) continue;
    std::lock_guard<std::mutex> slock(s->mu_);
    std::vector<std::shared_ptr<Watch>> hit;
    for (auto& [id, w] : s->watches_) {
      if (w->topic == e.topic && w->phase == Watch::Phase::kLive) hit.push_back(w);
    }
    if (hit.empty()) continue;
    for (auto& w : hit) s->CancelLocked(w, v1::WatchCanceled::TOPIC_RESET, ResetMessage(e.topic));
    for (auto& w : s->to_unindex_) UnindexLocked(w);
    s->to_unindex_.clear();
    wake->insert(std::move(held));
  }
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
  WakeAll(wake);
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
  WakeAll(wake);
}

}  // namespace cachecar::watch
