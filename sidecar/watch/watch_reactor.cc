#include "watch/watch_reactor.h"

namespace cachecar::watch {

grpc::ServerBidiReactor<v1::WatchRequest, v1::WatchResponse>* WatchReactor::Start(Hub* hub) {
  std::shared_ptr<WatchReactor> r(new WatchReactor());
  r->self_ = r;
  std::weak_ptr<WatchReactor> weak = r;
  r->session_ = hub->NewSession([weak] {
    if (auto held = weak.lock()) held->Kick();
  });
  r->StartRead(&r->request_);
  r->Kick();  // a stream opened during shutdown ends at once
  return r.get();
}

void WatchReactor::OnReadDone(bool ok) {
  if (!ok) {
    // The client closed its side (or is gone: OnCancel follows). Keep serving the
    // watches it has; end when none is left.
    {
      std::lock_guard<std::mutex> lock(mu_);
      reads_done_ = true;
    }
    Kick();
    return;
  }
  std::string error;
  if (!session_->Handle(request_, &error)) {
    const bool flood = error.find("does not read") != std::string::npos;
    session_->Close();
    std::lock_guard<std::mutex> lock(mu_);
    EndLocked(grpc::Status(
        flood ? grpc::StatusCode::RESOURCE_EXHAUSTED : grpc::StatusCode::INVALID_ARGUMENT,
        error));
    return;
  }
  request_.Clear();
  StartRead(&request_);
  Kick();
}

void WatchReactor::OnWriteDone(bool ok) {
  if (!ok) session_->Close();  // the stream is broken; OnCancel or OnDone follows
  {
    std::lock_guard<std::mutex> lock(mu_);
    busy_ = false;
    if (!ok) {
      EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      return;
    }
  }
  Kick();
}

void WatchReactor::OnCancel() {
  session_->Close();
  std::lock_guard<std::mutex> lock(mu_);
  EndLocked(grpc::Status::CANCELLED);
}

void WatchReactor::OnDone() {
  session_->Close();
  self_.reset();  // frees this once no wake-up holds it
}

void WatchReactor::EndLocked(grpc::Status status) {
  if (finished_) return;
  if (!end_requested_) {
    end_requested_ = true;
    end_status_ = std::move(status);
  }
  if (busy_) return;  // OnWriteDone comes back here through Kick
  finished_ = true;
  Finish(end_status_);
}

void WatchReactor::Kick() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    if (end_requested_) return EndLocked(end_status_);
    if (busy_) {
      again_ = true;
      return;
    }
    busy_ = true;
    again_ = false;
  }
  for (;;) {
    // Only the turn holder is here, so response_ and next_ are ours.
    bool have = have_next_;
    if (have) {
      response_.Swap(&next_);
      have_next_ = false;
    } else {
      have = session_->Next(&response_);
    }
    // The response after this one, taken now: while it is in hand this write may carry
    // gRPC's buffer_hint, because a write is certain to follow it (see StartWrite below).
    if (have) have_next_ = session_->Next(&next_);
    const bool finished = !have && session_->Finished();
    const bool idle = !have && session_->Idle();
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_ || end_requested_) {
      busy_ = false;
      if (!finished_) EndLocked(end_status_);
      return;
    }
    if (have) {
      // A Put watched by every watch of a stream is that many responses at once. With the
      // next response already in hand, this one is written with buffer_hint: gRPC may keep
      // it in the stream's buffer (its write still completes) and send it with the next
      // ones in one frame and syscall. It goes out no later than the first write without
      // the hint (the last of a run: nothing in hand after it), a full per-stream buffer,
      // or the end of the call. A hinted write is thus never held waiting for a response
      // that may not come.
      // Never on the stream's first write: it carries the initial metadata, and gRPC then
      // holds a hinted write (and its completion) until something flushes the stream, which
      // nothing would (WatchReactorTest.AResumeGetsItsCreatedAndItsMissedChange).
      const bool hint = have_next_ && wrote_once_;
      wrote_once_ = true;
      StartWrite(&response_, hint ? grpc::WriteOptions().set_buffer_hint() : grpc::WriteOptions());
      return;  // busy_ stays set until OnWriteDone
    }
    if (again_) {
      again_ = false;
      continue;
    }
    busy_ = false;
    if (finished) {
      EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "cachecar is shutting down"));
    } else if (reads_done_ && idle) {
      EndLocked(grpc::Status::OK);
    }
    return;
  }
}

}  // namespace cachecar::watch
