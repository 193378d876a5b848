#include "client/resuming_watch.h"

#include <algorithm>
#include <random>

namespace cachecar::client {

namespace {
using Canceled = v1::WatchCanceled;

bool Retryable(Code code) {
  return code == Code::kUnavailable || code == Code::kDeadlineExceeded ||
         code == Code::kCancelled || code == Code::kInternal || code == Code::kResourceExhausted;
}
}  // namespace

ResumingWatch::ResumingWatch(Client* client, WatchSpec spec)
    : client_(client), spec_(std::move(spec)), want_snapshot_(spec_.snapshot) {
  if (spec_.from_revision && !spec_.snapshot) {
    revision_ = *spec_.from_revision;
    started_ = true;
  }
}

ResumingWatch::~ResumingWatch() { Close(); }

void ResumingWatch::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  if (stream_) stream_->Cancel();
  cv_.notify_all();
}

Status ResumingWatch::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

uint64_t ResumingWatch::revision() const { return revision_; }

v1::WatchRequest ResumingWatch::CreateRequest() const {
  v1::WatchRequest req;
  auto* c = req.mutable_create();
  c->set_watch_id(1);
  c->set_topic(spec_.topic);
  c->set_key(spec_.key);
  c->set_prefix(spec_.prefix);
  c->set_snapshot(want_snapshot_);
  c->set_prev_entry(spec_.prev_entry);
  c->set_original_value(spec_.original_value);
  if (started_ && !want_snapshot_) {
    c->set_resume_revision(revision_);
    c->set_store_id(store_id_);
  }
  return req;
}

void ResumingWatch::Backoff() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  int ms = std::uniform_int_distribution<int>(backoff_ms_ / 2, backoff_ms_ * 3 / 2)(rng);
  backoff_ms_ = std::min(backoff_ms_ * 2, 2000);
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return closed_; });
}

bool ResumingWatch::Next(WatchItem* item) {
  while (pending_.empty()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_ || !status_.ok()) return false;
    }
    if (!Connect()) return false;
  }
  *item = std::move(pending_.front());
  pending_.pop_front();
  return true;
}

bool ResumingWatch::Connect() {
  WatchStream* stream;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stream_) {
      stream_ = client_->Watch();
      if (!stream_->Send(CreateRequest())) {
        // The stream failed at once: Read below returns false and Finish says why.
      }
    }
    stream = stream_.get();
  }
  v1::WatchResponse resp;
  bool backoff = false;
  while (pending_.empty() && stream->Read(&resp)) {
    switch (resp.kind_case()) {
      case v1::WatchResponse::kCreated:
        backoff_ms_ = 50;
        store_id_ = resp.created().store_id();
        if (!started_) revision_ = resp.created().revision();
        if (reset_owed_) {
          WatchItem r;
          r.type = WatchItem::Type::kReset;
          pending_.push_back(std::move(r));
          reset_owed_ = false;
        }
        if (!want_snapshot_) started_ = true;
        break;
      case v1::WatchResponse::kSnapshot:
        for (const auto& e : resp.snapshot().entries()) {
          WatchItem it;
          it.key = e.key();
          it.value = e.value();
          it.revision = e.revision();
          it.snapshot = true;
          pending_.push_back(std::move(it));
        }
        break;
      case v1::WatchResponse::kSnapshotEnd:
        revision_ = resp.snapshot_end().revision();
        started_ = true;
        want_snapshot_ = false;
        break;
      case v1::WatchResponse::kEvents:
        for (const auto& ev : resp.events().events()) {
          WatchItem it;
          it.type = ev.type() == v1::WatchEvent::PUT ? WatchItem::Type::kPut
                                                     : WatchItem::Type::kDelete;
          it.key = ev.entry().key();
          if (it.type == WatchItem::Type::kPut) it.value = ev.entry().value();
          it.revision = ev.revision();
          it.has_prev = ev.has_prev_entry();
          if (it.has_prev) it.prev_value = ev.prev_entry().value();
          revision_ = ev.revision();
          pending_.push_back(std::move(it));
        }
        break;
      case v1::WatchResponse::kProgress:
        revision_ = std::max(revision_, resp.progress().revision());
        break;
      case v1::WatchResponse::kCanceled: {
        const auto& c = resp.canceled();
        revision_ = std::max(revision_, c.last_revision());
        switch (c.reason()) {
          case Canceled::HISTORY_COMPACTED:
          case Canceled::STORE_CHANGED:
            // Too old, or another store: start over from a snapshot.
            want_snapshot_ = true;
            reset_owed_ = true;
            started_ = false;
            break;
          case Canceled::INVALID_REQUEST:
          case Canceled::LIMIT_EXCEEDED:
          case Canceled::WATCH_ID_IN_USE:
          case Canceled::CANCELED_BY_CLIENT: {
            std::lock_guard<std::mutex> lock(mu_);
            status_ = Status(Code::kFailedPrecondition, c.message(),
                             Canceled::Reason_Name(c.reason()));
            break;
          }
          default:  // SHUTTING_DOWN, SLOW_CONSUMER, CACHE_NOT_READY, INTERNAL
            backoff = true;
        }
        stream->Cancel();
        break;
      }
      default:
        break;
    }
    if (resp.kind_case() == v1::WatchResponse::kCanceled) break;
  }
  if (!pending_.empty() && resp.kind_case() != v1::WatchResponse::kCanceled) {
    return true;  // the stream goes on; deliver first
  }
  // The stream ended (or was cancelled after a `canceled`): finish it, then decide.
  Status st = stream->Finish();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stream_.reset();
    if (closed_) return !pending_.empty();
    if (!status_.ok()) return !pending_.empty();
    if (!st.ok() && !Retryable(st.code())) {
      status_ = st;
      return !pending_.empty();
    }
  }
  if (backoff || !st.ok() || pending_.empty()) {
    if (!(resp.kind_case() == v1::WatchResponse::kCanceled && !backoff)) Backoff();
  }
  return true;
}

}  // namespace cachecar::client
