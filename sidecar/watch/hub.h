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
//   snapshot  it sends the current matching entries page by page as the client reads, each
//             page from a short LMDB read transaction of its own, then snapshot_end with
//             the revision it was created at — then catch-up, leaving out the changes
//             the pages already hold (watch.h, SnapshotPage);
//   catch-up  it reads the history log after its position, a page at a time as the client
//             reads (resume, or after a snapshot); when it reaches what the hub has
//             handed out, it joins the hub (under the hub's lock, so nothing falls
//             between the two) — then live;
//   live      the hub queues its matching events. When a watch's queue holds
//             buffer_events, it goes back to catch-up from the last queued revision (as
//             etcd's unsynced watchers): a burst never cancels a client that reads, and
//             memory stays bounded.
// A topic reset in the history log (a rebuild) cancels the topic's watches with
// TOPIC_RESET: live ones when the hub reads it, others when their catch-up reaches it.
// A catch-up reads only as fast as the client takes responses, so a resume from far back
// costs no memory; only live watches have queues. A stream whose client takes nothing for
// slow_consumer_timeout while responses wait is a client that stopped reading: every watch
// on it is cancelled with SLOW_CONSUMER and the last revision it was sent.
//
// Locks: Hub::mu_ before Session::mu_, never the other way. `wake` is never called with
// either held.
//
// Files: hub.cc (fan-out, progress, stalls), session.cc (one stream's watches and
// queues), create_request.cc (what a create may ask), watch_index.cc (who wants a change),
// watch.h (the types), watch_stats.h (every metric), watch_reactor.cc (the gRPC stream).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "api/entry_proto.h"
#include "cachecar/v1/cache.pb.h"
#include "common/task_pool.h"
#include "config/config.h"
#include "store/commit_observer.h"
#include "store/store.h"
#include "watch/session.h"
#include "watch/watch.h"
#include "watch/watch_index.h"
#include "watch/watch_stats.h"

namespace cachecar::watch {

class Hub final : public store::CommitObserver {
 public:
  using ReadyFn = std::function<bool()>;

  // `store`, `config` and `registry` must outlive the hub. `ready` says whether the cache
  // has caught up (watches need it unless allow_cold_cache).
  Hub(const store::Store* store, const config::Config* config, Options options, ReadyFn ready,
      prometheus::Registry* registry);
  ~Hub() override;
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Gives registry entries their subject_version. Call before Start.
  void set_subject_versions(api::SubjectVersionFn versions) { versions_ = std::move(versions); }
  const api::SubjectVersionFn& subject_versions() const { return versions_; }

  // Starts the fan-out thread.
  void Start();
  // Cancels every watch with SHUTTING_DOWN, refuses new ones, stops the thread. Idempotent.
  void Shutdown();

  // A commit happened. Cheap; never blocks.
  void Notify();
  // CommitObserver: a commit that changed something is a Notify.
  void OnCommit(const store::CommitInfo& commit) override {
    if (commit.changes > 0) Notify();
  }

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

  // A sync point for tests: called by FanOut after it has read a page of history and
  // before it delivers it, with no lock held. Set it only while no FanOut runs.
  void SetAfterReadHookForTest(std::function<void()> hook) { after_read_hook_ = std::move(hook); }
  // Called while a page of the log is being read (from its filter, once per page).
  void SetDuringReadHookForTest(std::function<void()> hook) { during_read_hook_ = std::move(hook); }
  size_t watch_count() const;

  const store::Store* store() const { return store_; }
  const Options& options() const { return options_; }

 private:
  friend class Session;

  void Run();
  // Cancels the live watches of a reset topic with TOPIC_RESET. Needs mu_.
  void CancelResetLocked(const Event& e, std::unordered_set<std::shared_ptr<Session>>* wake);
  std::string ResetMessage(size_t topic) const;
  // Builds the shared event for a history entry; nullptr for a topic not configured.
  std::shared_ptr<const Event> MakeEvent(store::HistoryEvent&& h) const;
  // Calls each session's wake on wake_pool_ (never on the hub's thread).
  template <typename Sessions>
  void WakeAll(const Sessions& sessions) {
    for (const auto& s : sessions) wake_pool_.Post([s] { s->Wake(); });
  }
  // Require mu_.
  void IndexLocked(const std::shared_ptr<Watch>& w);
  void UnindexLocked(const std::shared_ptr<Watch>& w);
  void Unregister(const std::vector<std::shared_ptr<Watch>>& watches);
  void CountCancel(v1::WatchCanceled::Reason reason);

  const store::Store* store_;
  const config::Config* config_;
  const Options options_;
  ReadyFn ready_;
  std::unordered_map<std::string, size_t> topic_index_;
  api::SubjectVersionFn versions_;
  WatchStats stats_;

  mutable std::mutex mu_;  // guards the fields below
  WatchIndex index_;
  std::unordered_set<Session*> sessions_;
  bool shutting_down_ = false;
  std::atomic<uint64_t> fanned_out_{0};  // written under mu_
  // The revision of the snapshot FanOut is reading (written under mu_): a watch created
  // from now starts at least there, as the page may skip its key.
  std::atomic<uint64_t> reading_to_{0};

  std::mutex wake_mu_;  // guards notified_, stop_
  std::condition_variable wake_cv_;
  bool notified_ = false;
  bool stop_ = false;
  std::thread thread_;
  std::function<void()> after_read_hook_;  // tests only
  std::function<void()> during_read_hook_;  // tests only
  // Streams' wake-ups (they build and start writes). Last: joined before anything its
  // tasks use is destroyed.
  TaskPool wake_pool_{2};
};

}  // namespace cachecar::watch
