// Watch: change streams over the store's history log.
//
// The Hub follows the store: after every commit the materializer calls Notify(), and the
// hub's thread reads the new changes back from the history log (so no event is sent
// before its data is readable by Get) and hands each to the watches it matches. It never
// blocks on a client: a watch's queue is bounded, and a watch whose queue is full is
// cancelled with SLOW_CONSUMER and the last revision it was sent.
//
// A Session is one Watch stream (many watches). Its transport (rpc/watch_reactor) feeds
// it requests with Handle() and pulls responses with Next() whenever it can write; the
// session calls the `wake` function it was given when it has something new to send.
//
// Each watch is in one of three phases:
//   snapshot  it sends the current matching entries, from one LMDB snapshot at revision S,
//             page by page as the client reads, then snapshot_end(S) — then catch-up;
//   catch-up  it reads the history log after its position, a page at a time as the client
//             reads (resume, or after a snapshot); when it reaches what the hub has
//             handed out, it joins the hub (under the hub's lock, so nothing falls
//             between the two) — then live;
//   live      the hub queues its matching events. When a watch's queue holds
//             buffer_events, it goes back to catch-up from the last queued revision (as
//             etcd's unsynced watchers): a burst never cancels a client that reads, and
//             memory stays bounded.
// A catch-up reads only as fast as the client takes responses, so a resume from far back
// costs no memory; only live watches have queues. A stream whose client takes nothing for
// slow_consumer_timeout while responses wait is a client that stopped reading: every watch
// on it is cancelled with SLOW_CONSUMER and the last revision it was sent.
//
// Locks: Hub::mu_ before Session::mu_, never the other way. `wake` is never called with
// either held.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cachecar/v1/cache.pb.h"
#include "config/config.h"
#include "store/store.h"

namespace cachecar::watch {

struct Options {
  uint32_t buffer_events = 1024;
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

// A change as it goes out: decoded once, shared by every watch it matches.
struct Event {
  uint64_t revision = 0;
  size_t topic = 0;
  std::string key;
  bool is_delete = false;
  v1::Entry entry;
  std::optional<v1::Entry> prev;
  size_t bytes = 0;
};

class Session;

// One watch. The fields after `session` are guarded by the session's mutex.
struct Watch {
  int64_t id = 0;
  size_t topic = 0;
  std::string key;
  bool prefix = false;
  bool no_put = false;
  bool no_delete = false;
  bool prev_entry = false;
  Session* session = nullptr;

  enum class Phase { kSnapshot, kCatchUp, kLive };
  Phase phase = Phase::kLive;
  std::optional<store::Snapshot> snapshot;  // kSnapshot only
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
  bool progress_queued = false;
  bool in_ready = false;
  bool canceled = false;
  std::chrono::steady_clock::time_point last_send;

  bool Matches(size_t t, const std::string& k) const;
  bool Wants(const Event& e) const { return e.is_delete ? !no_delete : !no_put; }
};

class Hub {
 public:
  using ReadyFn = std::function<bool()>;

  // `store`, `config` and `registry` must outlive the hub. `ready` says whether the cache
  // has caught up (watches need it unless allow_cold_cache).
  Hub(const store::Store* store, const config::Config* config, Options options, ReadyFn ready,
      prometheus::Registry* registry);
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Starts the fan-out thread.
  void Start();
  // Cancels every watch with SHUTTING_DOWN, refuses new ones, stops the thread. Idempotent.
  void Shutdown();

  // A commit happened (the materializer, after Apply). Cheap; never blocks.
  void Notify();

  // A new stream. `wake` is called (from any thread, no lock held) when the session may
  // have something new for Next().
  std::shared_ptr<Session> NewSession(std::function<void()> wake);

  // One fan-out step: hands the changes committed since the last step to the live
  // watches. The thread runs it; tests call it directly. Returns the revision reached.
  uint64_t FanOut();
  // Queues a progress response on live watches that have sent nothing for the progress
  // interval (or on all of them, if `all`).
  void SendProgress(bool all);
  // Cancels the watches of streams whose client has taken nothing since
  // now - slow_consumer_timeout while responses wait. The thread runs it; tests too.
  void CancelStalled(std::chrono::steady_clock::time_point now);

  uint64_t fanned_out() const { return fanned_out_.load(std::memory_order_acquire); }
  size_t watch_count() const;

  const store::Store* store() const { return store_; }
  const Options& options() const { return options_; }

 private:
  friend class Session;

  struct TopicIndex {
    std::unordered_map<std::string, std::unordered_set<std::shared_ptr<Watch>>> exact;
    std::unordered_set<std::shared_ptr<Watch>> prefix;
  };

  void Run();
  // Builds the shared event for a history entry; nullptr for a topic not configured.
  std::shared_ptr<const Event> MakeEvent(store::HistoryEvent&& h) const;
  // Requires mu_.
  bool AnyWatchLocked(std::string_view topic, std::string_view key) const;
  void IndexLocked(const std::shared_ptr<Watch>& w);
  void UnindexLocked(const std::shared_ptr<Watch>& w);
  void Unregister(const std::vector<std::shared_ptr<Watch>>& watches);
  void CountCancel(v1::WatchCanceled::Reason reason);

  const store::Store* store_;
  const config::Config* config_;
  const Options options_;
  ReadyFn ready_;
  std::unordered_map<std::string, size_t> topic_index_;

  mutable std::mutex mu_;  // guards the fields below
  std::vector<TopicIndex> index_;
  std::unordered_set<Session*> sessions_;
  size_t watches_ = 0;
  bool shutting_down_ = false;
  std::atomic<uint64_t> fanned_out_{0};  // written under mu_

  std::mutex wake_mu_;  // guards notified_, stop_
  std::condition_variable wake_cv_;
  bool notified_ = false;
  bool stop_ = false;
  std::thread thread_;

  prometheus::Gauge* streams_gauge_;
  prometheus::Gauge* watches_gauge_;
  prometheus::Gauge* fanned_out_gauge_;
  prometheus::Gauge* oldest_gauge_;
  prometheus::Counter* events_sent_;
  prometheus::Counter* demotions_;
  prometheus::Family<prometheus::Counter>* canceled_family_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  ~Session();

  // One request from the client. Returns false if the stream must end (a malformed
  // request or a client that does not read); `error` then says why.
  bool Handle(const v1::WatchRequest& request, std::string* error);
  // The next response to send; false if there is none now.
  bool Next(v1::WatchResponse* out);
  // The stream is over (client gone or finished): unregisters every watch. Idempotent.
  void Close();
  // True once shutdown was requested and every response has been handed out.
  bool Finished();
  // No watches and nothing left to send.
  bool Idle();

 private:
  friend class Hub;
  Session(Hub* hub, std::function<void()> wake) : hub_(hub), wake_(std::move(wake)) {}

  enum class Delivery { kIgnored, kQueued };
  // The hub hands a live watch an event (Hub::mu_ held).
  Delivery Deliver(const std::shared_ptr<Watch>& w, const std::shared_ptr<const Event>& e);
  // Requires mu_. Returns whether anything was queued.
  bool QueueProgress(uint64_t revision, bool all, std::chrono::steady_clock::time_point now);
  void ShutdownLocked();
  void Wake() { wake_(); }

  // Require mu_.
  void Create(const v1::WatchCreateRequest& c);  // Hub::mu_ held as well
  void CancelLocked(std::shared_ptr<Watch> w, v1::WatchCanceled::Reason reason,
                    std::string message, uint64_t compact_revision = 0);
  void Refuse(int64_t id, v1::WatchCanceled::Reason reason, std::string message,
              uint64_t compact_revision = 0);
  void MakeReady(const std::shared_ptr<Watch>& w);
  void FillEvents(Watch& w, v1::WatchResponse* out);
  // A snapshot page; false (and the watch cancelled) on a store error.
  bool FillSnapshot(const std::shared_ptr<Watch>& w, v1::WatchResponse* out);
  // Attempts the catch-up -> live step (takes Hub::mu_ then mu_).
  bool TryJoin(const std::shared_ptr<Watch>& w, uint64_t reached);

  Hub* hub_;
  std::function<void()> wake_;
  std::mutex mu_;  // guards everything below
  std::map<int64_t, std::shared_ptr<Watch>> watches_;
  std::deque<std::shared_ptr<Watch>> ready_;
  std::deque<v1::WatchResponse> control_;
  std::vector<std::shared_ptr<Watch>> to_unindex_;  // cancelled outside Hub::mu_
  // When the client last took a response, and when responses started waiting on a
  // session that had none: a stall is measured from the later of the two.
  std::chrono::steady_clock::time_point last_take_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point work_since_ = last_take_;
  void NoteWork() {
    if (ready_.empty() && control_.empty()) work_since_ = std::chrono::steady_clock::now();
  }
  bool closed_ = false;
  bool shutting_down_ = false;
};

}  // namespace cachecar::watch
