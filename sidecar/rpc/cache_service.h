// CacheService: the gRPC adapter. Each method converts nothing but transport concerns:
// it calls the ReadHandler or WriteHandler, sets the cachecar-store-revision header,
// records latency and maps the Status (rpc/errors.h). Reads run inline on gRPC's callback
// threads (short LMDB read transactions); a read with min_revision ahead of the store, and
// every Put and Delete, finish later from the ApplyNotifier's or producer's thread, so no
// gRPC thread blocks.
#pragma once

#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <functional>

#include "cachecar/v1/cache.grpc.pb.h"
#include "common/task_pool.h"
#include "store/apply_notifier.h"
#include "rpc/arena_allocator.h"
#include "rpc/read_handler.h"
#include "rpc/rpc_stats.h"
#include "rpc/write_handler.h"

namespace cachecar::rpc {

inline constexpr char kRevisionHeader[] = "cachecar-store-revision";

class CacheService final : public v1::CacheService::CallbackService {
 public:
  // Not owned. `writes` and `notifier` may be null (then Put/Delete answer
  // UNIMPLEMENTED and min_revision ahead of the store fails at once). `max_wait` bounds
  // waits of calls without a deadline.
  CacheService(const ReadHandler* handler, prometheus::Registry* registry,
               const WriteHandler* writes = nullptr, store::ApplyNotifier* notifier = nullptr,
               std::chrono::milliseconds max_wait = std::chrono::seconds(30),
               std::string auth_token = {});

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const v1::GetRequest* req,
                                v1::GetResponse* resp) override;
  grpc::ServerUnaryReactor* BatchGet(grpc::CallbackServerContext* ctx,
                                     const v1::BatchGetRequest* req,
                                     v1::BatchGetResponse* resp) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* ctx, const v1::ListRequest* req,
                                 v1::ListResponse* resp) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* ctx,
                                      const v1::GetStatusRequest* req,
                                      v1::GetStatusResponse* resp) override;
  grpc::ServerUnaryReactor* WaitReady(grpc::CallbackServerContext* ctx,
                                      const v1::WaitReadyRequest* req,
                                      v1::WaitReadyResponse* resp) override;
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const v1::PutRequest* req,
                                v1::PutResponse* resp) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx,
                                   const v1::DeleteRequest* req,
                                   v1::DeleteResponse* resp) override;
  grpc::ServerUnaryReactor* ListRejectedRecords(grpc::CallbackServerContext* ctx,
                                                const v1::ListRejectedRecordsRequest* req,
                                                v1::ListRejectedRecordsResponse* resp) override;

  // Watch streams are served by the watch module (sidecar/watch); without a factory the
  // method answers UNIMPLEMENTED.
  using WatchFactory =
      std::function<grpc::ServerBidiReactor<v1::WatchRequest, v1::WatchResponse>*()>;
  void set_watch_factory(WatchFactory factory) { watch_factory_ = std::move(factory); }
  grpc::ServerBidiReactor<v1::WatchRequest, v1::WatchResponse>* Watch(
      grpc::CallbackServerContext* ctx) override;

  // Where reads deferred until a min_revision run, off the ApplyNotifier's one thread
  // (a large BatchGet or List there would hold up every other waiter); for tests.
  TaskPool* read_pool() { return &read_pool_; }

 private:
  enum Method {
    kGet, kBatchGet, kList, kGetStatus, kPut, kDelete, kListRejectedRecords, kWaitReady,
    kWatch, kMethodCount
  };
  static constexpr int kCodeCount = 17;  // gRPC status codes 0..16
  static constexpr size_t kReadPoolThreads = 2;
  using Clock = std::chrono::steady_clock;

  // Finishes the call: revision header, status, latency and request metrics.
  void Finish(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
              Method method, Clock::time_point start, const Status& st);
  template <typename Fn>
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* ctx, Method method, Fn fn);
  // As Serve, once the store has reached `min_revision` (or fails OUT_OF_RANGE).
  template <typename Fn>
  grpc::ServerUnaryReactor* ServeAt(grpc::CallbackServerContext* ctx, Method method,
                                    uint64_t min_revision, Fn fn);
  // Put and Delete: the WriteHandler answers later, from another thread.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* ServeWrite(
      grpc::CallbackServerContext* ctx, Method method, const Request* req, Response* resp,
      WriteHandler::Abandon (WriteHandler::*write)(const Request&, Clock::time_point,
                                             WriteHandler::Done) const);
  // OK, or UNAUTHENTICATED when a token is required and the call lacks it.
  Status Authenticate(const grpc::CallbackServerContext* ctx) const;
  // Counts a finished call in the request metrics.
  void Record(Method method, Clock::time_point start, const Status& st);
  // When to give up waiting: a little before the call's deadline, so the answer (a
  // distinct error) reaches the client before its own deadline does; max_wait if none.
  Clock::time_point WaitDeadline(const grpc::CallbackServerContext* ctx) const;

  const ReadHandler* handler_;
  const WriteHandler* writes_;
  store::ApplyNotifier* notifier_;
  std::chrono::milliseconds max_wait_;
  const std::string auth_token_;  // empty: no authentication
  WatchFactory watch_factory_;
  ArenaMessageAllocator<v1::GetRequest, v1::GetResponse> get_allocator_;
  ArenaMessageAllocator<v1::BatchGetRequest, v1::BatchGetResponse> batch_get_allocator_;
  ArenaMessageAllocator<v1::ListRequest, v1::ListResponse> list_allocator_;
  // Resolved once per (method, code) on first use: a family lookup takes a lock and hashes
  // labels, too much for every call; creating all up front would flood /metrics.
  RpcStats stats_;
  std::atomic<prometheus::Histogram*> latency_[kMethodCount][kCodeCount] = {};
  std::atomic<prometheus::Counter*> requests_[kMethodCount][kCodeCount] = {};
  // Last: joined first, before anything its tasks use is destroyed.
  TaskPool read_pool_{kReadPoolThreads};
};

}  // namespace cachecar::rpc
