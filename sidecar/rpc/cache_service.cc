#include "rpc/cache_service.h"

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>

#include "rpc/auth.h"
#include "rpc/errors.h"

namespace cachecar::rpc {

namespace {

// A unary call that waits (a read with min_revision, WaitReady, Put/Delete until applied).
// It is finished exactly once: by its wait's answer (Claim() true), or at once with
// CANCELLED when the client cancels or goes away (OnCancel), which also drops the wait so
// nothing keeps waiting for a caller that is gone. The claim lives in a shared state that
// the wait's callback holds: the reactor itself is gone after OnDone.
class WaitingCall final : public grpc::ServerUnaryReactor {
 public:
  struct State {
    std::mutex mu;
    bool finished = false;   // claimed by an answer or by the cancellation
    bool cancelled = false;
    std::function<void()> drop;  // drops the pending wait
    // Whether the caller may finish the call; true once.
    bool Claim() {
      std::lock_guard<std::mutex> lock(mu);
      if (finished) return false;
      finished = true;
      return true;
    }
  };

  explicit WaitingCall(std::function<void()> on_cancelled)
      : state_(std::make_shared<State>()), on_cancelled_(std::move(on_cancelled)) {}

  std::shared_ptr<State> state() const { return state_; }

  // Registers how to drop the wait; drops it at once if the call was cancelled already.
  void SetDrop(std::function<void()> drop) {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      if (!state_->cancelled) {
        state_->drop = std::move(drop);
        return;
      }
    }
    drop();
  }

  void OnCancel() override {
    std::function<void()> drop;
    bool claimed = false;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->cancelled = true;
      drop = std::move(state_->drop);
      claimed = !state_->finished;
      state_->finished = true;
    }
    if (drop) drop();
    if (claimed) {
      on_cancelled_();
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled"));
    }
  }

  void OnDone() override { delete this; }

 private:
  std::shared_ptr<State> state_;
  std::function<void()> on_cancelled_;  // records the cancellation (metrics)
};

}  // namespace

CacheService::CacheService(const ReadHandler* handler, prometheus::Registry* registry,
                           const WriteHandler* writes, store::ApplyNotifier* notifier,
                           std::chrono::milliseconds max_wait, std::string auth_token)
    : handler_(handler),
      writes_(writes),
      notifier_(notifier),
      max_wait_(max_wait),
      auth_token_(std::move(auth_token)),
      stats_(RpcStats::Register(*registry)) {
  SetMessageAllocatorFor_Get(&get_allocator_);
  SetMessageAllocatorFor_BatchGet(&batch_get_allocator_);
  SetMessageAllocatorFor_List(&list_allocator_);
}

namespace {

// Finishes a Watch stream at once (a refused call).
class RefusedStream : public grpc::ServerBidiReactor<v1::WatchRequest, v1::WatchResponse> {
 public:
  explicit RefusedStream(const grpc::Status& st) { Finish(st); }
  void OnDone() override { delete this; }
};

}  // namespace

Status CacheService::Authenticate(const grpc::CallbackServerContext* ctx) const {
  return CheckBearerToken(ctx->client_metadata(), auth_token_);
}

void CacheService::Finish(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
                          Method method, Clock::time_point start, const Status& st) {
  ctx->AddInitialMetadata(kRevisionHeader, std::to_string(handler_->revision()));
  reactor->Finish(ToGrpcStatus(st));
  Record(method, start, st);
}

void CacheService::Record(Method method, Clock::time_point start, const Status& st) {
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  int code = static_cast<int>(st.code());
  if (code < 0 || code >= kCodeCount) code = static_cast<int>(Code::kUnknown);
  prometheus::Histogram* latency = latency_[method][code].load(std::memory_order_acquire);
  prometheus::Counter* requests = requests_[method][code].load(std::memory_order_acquire);
  if (latency == nullptr || requests == nullptr) {
    static const char* const kMethods[kMethodCount] = {"Get",    "BatchGet",           "List",
                                                 "GetStatus", "Put", "Delete",
                                                 "ListRejectedRecords", "WaitReady", "Watch"};
    static const prometheus::Histogram::BucketBoundaries kBuckets = {
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1, 10};
    std::map<std::string, std::string> labels = {{"method", kMethods[method]},
                                                 {"code", CodeName(static_cast<Code>(code))}};
    // Family::Add returns the existing metric for known labels, so racing threads agree.
    latency = &stats_.duration->Add(labels, kBuckets);
    requests = &stats_.requests->Add(labels);
    latency_[method][code].store(latency, std::memory_order_release);
    requests_[method][code].store(requests, std::memory_order_release);
  }
  latency->Observe(seconds);
  requests->Increment();
}

template <typename Fn>
grpc::ServerUnaryReactor* CacheService::Serve(grpc::CallbackServerContext* ctx, Method method,
                                              Fn fn) {
  auto start = Clock::now();
  Status st = Authenticate(ctx);
  if (st.ok()) st = fn();
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Finish(ctx, reactor, method, start, st);
  return reactor;
}

CacheService::Clock::time_point CacheService::WaitDeadline(
    const grpc::CallbackServerContext* ctx) const {
  auto now = Clock::now();
  auto limit = now + max_wait_;
  auto sys_deadline = ctx->deadline();
  if (sys_deadline == std::chrono::system_clock::time_point::max()) return limit;
  auto remaining = sys_deadline - std::chrono::system_clock::now();
  auto margin = std::min<std::chrono::system_clock::duration>(std::chrono::milliseconds(50),
                                                              remaining / 10);
  auto until = now + std::chrono::duration_cast<Clock::duration>(remaining - margin);
  return std::min(until, limit);
}

template <typename Fn>
grpc::ServerUnaryReactor* CacheService::ServeAt(grpc::CallbackServerContext* ctx, Method method,
                                                uint64_t min_revision, Fn fn) {
  if (Status st = Authenticate(ctx); !st.ok()) return Serve(ctx, method, [&] { return st; });
  if (min_revision <= handler_->revision() || notifier_ == nullptr) {
    if (min_revision > handler_->revision()) {
      return Serve(ctx, method, [&] {
        return Status(Code::kOutOfRange, "min_revision is ahead of the store",
                      "REVISION_NOT_YET_APPLIED")
            .With("current_revision", std::to_string(handler_->revision()));
      });
    }
    return Serve(ctx, method, fn);
  }
  auto start = Clock::now();
  auto* reactor = new WaitingCall([this, method, start] {
    Record(method, start, Status(Code::kCancelled, "cancelled"));
  });
  auto state = reactor->state();
  uint64_t wait = notifier_->WaitForRevision(
      min_revision, WaitDeadline(ctx),
      [this, ctx, reactor, state, method, start, min_revision, fn](const Status& st,
                                                                   uint64_t current) {
        if (!state->Claim()) return;  // cancelled: the caller is gone
        if (st.ok()) {
          // Not on the notifier's thread (see read_pool()).
          read_pool_.Post([this, ctx, reactor, method, start, fn] {
            Finish(ctx, reactor, method, start, fn());
          });
          return;
        }
        Status out = st;
        if (st.code() == Code::kDeadlineExceeded) {
          out = Status(Code::kOutOfRange,
                       "the store did not reach revision " + std::to_string(min_revision) +
                           " before the deadline (it is at " + std::to_string(current) + ")",
                       "REVISION_NOT_YET_APPLIED")
                    .With("current_revision", std::to_string(current));
        }
        Finish(ctx, reactor, method, start, out);
      });
  store::ApplyNotifier* notifier = notifier_;
  reactor->SetDrop([notifier, wait] { notifier->Cancel(wait); });
  return reactor;
}

grpc::ServerUnaryReactor* CacheService::Get(grpc::CallbackServerContext* ctx,
                                            const v1::GetRequest* req, v1::GetResponse* resp) {
  return ServeAt(ctx, kGet, req->min_revision(), [this, req, resp] { return handler_->Get(*req, resp); });
}

grpc::ServerUnaryReactor* CacheService::BatchGet(grpc::CallbackServerContext* ctx,
                                                 const v1::BatchGetRequest* req,
                                                 v1::BatchGetResponse* resp) {
  return ServeAt(ctx, kBatchGet, req->min_revision(),
                 [this, req, resp] { return handler_->BatchGet(*req, resp); });
}

grpc::ServerUnaryReactor* CacheService::List(grpc::CallbackServerContext* ctx,
                                             const v1::ListRequest* req, v1::ListResponse* resp) {
  return ServeAt(ctx, kList, req->min_revision(),
                 [this, req, resp] { return handler_->List(*req, resp); });
}

grpc::ServerUnaryReactor* CacheService::GetStatus(grpc::CallbackServerContext* ctx,
                                                  const v1::GetStatusRequest* req,
                                                  v1::GetStatusResponse* resp) {
  return Serve(ctx, kGetStatus, [&] { return handler_->GetStatus(*req, resp); });
}

namespace {

template <typename Response>
void FillWrite(const WriteResult& r, Response* resp) {
  resp->set_partition(r.partition);
  resp->set_offset(r.offset);
  resp->set_applied(r.applied);
  resp->set_store_revision(r.revision);
}

}  // namespace

template <typename Request, typename Response>
grpc::ServerUnaryReactor* CacheService::ServeWrite(
    grpc::CallbackServerContext* ctx, Method method, const Request* req, Response* resp,
    WriteHandler::Abandon (WriteHandler::*write)(const Request&, Clock::time_point,
                                             WriteHandler::Done) const) {
  if (Status st = Authenticate(ctx); !st.ok()) return Serve(ctx, method, [&] { return st; });
  if (writes_ == nullptr) {
    return Serve(ctx, method, [] { return Status(Code::kUnimplemented, "writes are disabled"); });
  }
  auto start = Clock::now();
  auto* reactor = new WaitingCall([this, method, start] {
    Record(method, start, Status(Code::kCancelled, "cancelled"));
  });
  auto state = reactor->state();
  WriteHandler::Abandon abandon = (writes_->*write)(
      *req, WaitDeadline(ctx),
      [this, ctx, reactor, state, method, start, resp](const Status& st, const WriteResult& r) {
        if (!state->Claim()) return;  // cancelled: the caller is gone
        if (st.ok()) FillWrite(r, resp);
        Finish(ctx, reactor, method, start, st);
      });
  reactor->SetDrop(std::move(abandon));
  return reactor;
}

grpc::ServerUnaryReactor* CacheService::Put(grpc::CallbackServerContext* ctx,
                                            const v1::PutRequest* req, v1::PutResponse* resp) {
  return ServeWrite(ctx, kPut, req, resp, &WriteHandler::Put);
}

grpc::ServerUnaryReactor* CacheService::Delete(grpc::CallbackServerContext* ctx,
                                               const v1::DeleteRequest* req,
                                               v1::DeleteResponse* resp) {
  return ServeWrite(ctx, kDelete, req, resp, &WriteHandler::Delete);
}

grpc::ServerUnaryReactor* CacheService::ListRejectedRecords(
    grpc::CallbackServerContext* ctx, const v1::ListRejectedRecordsRequest* req,
    v1::ListRejectedRecordsResponse* resp) {
  return Serve(ctx, kListRejectedRecords,
               [&] { return handler_->ListRejectedRecords(*req, resp); });
}

grpc::ServerUnaryReactor* CacheService::WaitReady(grpc::CallbackServerContext* ctx,
                                                  const v1::WaitReadyRequest*,
                                                  v1::WaitReadyResponse* resp) {
  if (Status st = Authenticate(ctx); !st.ok() || notifier_ == nullptr) {
    return Serve(ctx, kWaitReady, [&] {
      return st.ok() ? Status(Code::kUnimplemented, "readiness waits are not available") : st;
    });
  }
  auto start = Clock::now();
  auto* reactor = new WaitingCall([this, start] {
    Record(kWaitReady, start, Status(Code::kCancelled, "cancelled"));
  });
  auto state = reactor->state();
  // Answered a little before the deadline (WaitDeadline), so the caller gets the reason
  // rather than its own DEADLINE_EXCEEDED.
  uint64_t wait = notifier_->WaitForReady(WaitDeadline(ctx), [this, ctx, reactor, state, resp,
                                                              start](const Status& st,
                                                                     uint64_t revision) {
    if (!state->Claim()) return;  // cancelled: the caller is gone
    if (st.code() == Code::kUnavailable || st.code() == Code::kResourceExhausted) {
      return Finish(ctx, reactor, kWaitReady, start, st);
    }
    resp->set_ready(st.ok());
    if (!st.ok()) resp->set_not_ready_reason(st.message());
    resp->set_store_revision(revision);
    Finish(ctx, reactor, kWaitReady, start, Status::Ok());
  });
  store::ApplyNotifier* notifier = notifier_;
  reactor->SetDrop([notifier, wait] { notifier->Cancel(wait); });
  return reactor;
}

grpc::ServerBidiReactor<v1::WatchRequest, v1::WatchResponse>* CacheService::Watch(
    grpc::CallbackServerContext* ctx) {
  if (Status st = Authenticate(ctx); !st.ok()) {
    Record(kWatch, Clock::now(), st);
    return new RefusedStream(ToGrpcStatus(st));
  }
  if (!watch_factory_) return v1::CacheService::CallbackService::Watch(ctx);
  return watch_factory_();
}

}  // namespace cachecar::rpc
