// WatchReactor: one Watch RPC on gRPC's callback API, feeding a watch::Session.
//
// One read and at most one write are outstanding at a time; the response after the write
// in flight is taken from the session in advance, so that the write can be coalesced with
// it (see Kick). Whoever finds the stream idle (a read that produced work, a finished
// write, the hub's wake-up) takes the write turn and asks the session for the next
// response; a wake-up that arrives while the turn is taken is remembered, so none is
// lost. The stream ends:
//   - when the client cancels or disconnects;
//   - when the client has closed its side and no watch is left (so a one-shot client such
//     as grpcurl can send its creates, close, and still receive events);
//   - on a malformed request (INVALID_ARGUMENT) or a client that sends requests without
//     reading the answers (RESOURCE_EXHAUSTED);
//   - on shutdown, after every watch got its SHUTTING_DOWN cancel (UNAVAILABLE).
// The reactor owns itself and is freed after gRPC's OnDone and the last wake-up.
//
// Threads: gRPC runs the On* reactions on its callback threads and the hub's wake-up comes
// from any thread; mu_ orders them. Session::Next runs only while the write turn is held.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>

#include "cachecar/v1/cache.grpc.pb.h"
#include "watch/hub.h"

namespace cachecar::watch {

class WatchReactor final : public grpc::ServerBidiReactor<v1::WatchRequest, v1::WatchResponse> {
 public:
  // Starts serving a new stream.
  static grpc::ServerBidiReactor<v1::WatchRequest, v1::WatchResponse>* Start(Hub* hub);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  WatchReactor() = default;
  // Takes the write turn if free and writes the next response, or ends the stream.
  void Kick();
  // Ends the stream with `status` once no write is outstanding. Requires mu_.
  void EndLocked(grpc::Status status);

  std::shared_ptr<WatchReactor> self_;  // released in OnDone
  std::shared_ptr<Session> session_;
  v1::WatchRequest request_;

  std::mutex mu_;  // guards the fields below
  // Only the turn holder touches these two.
  v1::WatchResponse response_;  // the write in flight
  v1::WatchResponse next_;      // the response after it, taken from the session already
  bool have_next_ = false;
  bool wrote_once_ = false;  // the first write (with the initial metadata) was started
  bool busy_ = false;           // the write turn is taken (or a write is in flight)
  bool again_ = false;          // a wake-up arrived while busy_
  bool reads_done_ = false;     // the client closed its side
  bool finished_ = false;       // Finish() was called
  bool end_requested_ = false;  // end with end_status_ when the write turn is free
  grpc::Status end_status_;
};

}  // namespace cachecar::watch
