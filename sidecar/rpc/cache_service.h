// CacheService: the gRPC adapter. Each method converts nothing but transport concerns:
// it calls the ReadHandler, sets the cachecar-store-revision header, records latency and
// maps the Status (rpc/errors.h). Handlers run inline on gRPC's callback threads; they only
// take short LMDB read transactions, so nothing blocks.
#pragma once

#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>

#include "cachecar/v1/cache.grpc.pb.h"
#include "rpc/arena_allocator.h"
#include "rpc/read_handler.h"

namespace cachecar::rpc {

inline constexpr char kRevisionHeader[] = "cachecar-store-revision";

class CacheService final : public v1::CacheService::CallbackService {
 public:
  CacheService(const ReadHandler* handler, prometheus::Registry* registry);

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

 private:
  enum Method { kGet, kBatchGet, kList, kGetStatus, kMethodCount };
  static constexpr int kCodeCount = 17;  // gRPC status codes 0..16

  template <typename Fn>
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* ctx, Method method, Fn fn);

  const ReadHandler* handler_;
  ArenaMessageAllocator<v1::GetRequest, v1::GetResponse> get_allocator_;
  ArenaMessageAllocator<v1::BatchGetRequest, v1::BatchGetResponse> batch_get_allocator_;
  ArenaMessageAllocator<v1::ListRequest, v1::ListResponse> list_allocator_;
  // Resolved once per (method, code) on first use: a family lookup takes a lock and hashes
  // labels, too much for every call; creating all up front would flood /metrics.
  prometheus::Family<prometheus::Histogram>* latency_family_;
  prometheus::Family<prometheus::Counter>* requests_family_;
  std::atomic<prometheus::Histogram*> latency_[kMethodCount][kCodeCount] = {};
  std::atomic<prometheus::Counter*> requests_[kMethodCount][kCodeCount] = {};
};

}  // namespace cachecar::rpc
