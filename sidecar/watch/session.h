// Session: one Watch stream, with many watches (see hub.h for how a watch moves through
// its phases, and for the lock order).
//
// Threads: Handle, Close, Finished and Idle may be called from any thread. Next must not
// run concurrently with itself: the transport (watch_reactor.h) calls it only while it
// holds the stream's write turn. The hub calls Deliver, QueueProgress and ShutdownLocked
// with its own mutex held.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cachecar/v1/cache.pb.h"
#include "watch/create_request.h"
#include "watch/watch.h"

namespace cachecar::watch {

class Hub;

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

  enum class DeliverOutcome { kIgnored, kQueued };
  // The hub hands a live watch an event (Hub::mu_ held).
  DeliverOutcome Deliver(const std::shared_ptr<Watch>& w, const std::shared_ptr<const Event>& e);
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
