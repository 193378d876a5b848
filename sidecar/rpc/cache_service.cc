#include "rpc/cache_service.h"

#include <chrono>

#include "rpc/errors.h"

namespace cachecar::rpc {

CacheService::CacheService(const ReadHandler* handler, prometheus::Registry* registry)
    : handler_(handler),
      latency_family_(&prometheus::BuildHistogram()
                           .Name("cachecar_rpc_duration_seconds")
                           .Help("Time to handle an RPC, by method and status code.")
                           .Register(*registry)),
      requests_family_(&prometheus::BuildCounter()
                            .Name("cachecar_rpc_requests_total")
                            .Help("RPCs handled, by method and status code.")
                            .Register(*registry)) {
  SetMessageAllocatorFor_Get(&get_allocator_);
  SetMessageAllocatorFor_BatchGet(&batch_get_allocator_);
  SetMessageAllocatorFor_List(&list_allocator_);
}

template <typename Fn>
grpc::ServerUnaryReactor* CacheService::Serve(grpc::CallbackServerContext* ctx, Method method,
                                              Fn fn) {
  auto start = std::chrono::steady_clock::now();
  Status st = fn();
  ctx->AddInitialMetadata(kRevisionHeader, std::to_string(handler_->revision()));
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(st));
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int code = static_cast<int>(st.code());
  if (code < 0 || code >= kCodeCount) code = static_cast<int>(Code::kUnknown);
  prometheus::Histogram* latency = latency_[method][code].load(std::memory_order_acquire);
  prometheus::Counter* requests = requests_[method][code].load(std::memory_order_acquire);
  if (latency == nullptr || requests == nullptr) {
    static const char* kMethods[kMethodCount] = {"Get", "BatchGet", "List", "GetStatus"};
    static const prometheus::Histogram::BucketBoundaries kBuckets = {
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1};
    std::map<std::string, std::string> labels = {{"method", kMethods[method]},
                                                 {"code", CodeName(static_cast<Code>(code))}};
    // Family::Add returns the existing metric for known labels, so racing threads agree.
    latency = &latency_family_->Add(labels, kBuckets);
    requests = &requests_family_->Add(labels);
    latency_[method][code].store(latency, std::memory_order_release);
    requests_[method][code].store(requests, std::memory_order_release);
  }
  latency->Observe(seconds);
  requests->Increment();
  return reactor;
}

grpc::ServerUnaryReactor* CacheService::Get(grpc::CallbackServerContext* ctx,
                                            const v1::GetRequest* req, v1::GetResponse* resp) {
  return Serve(ctx, kGet, [&] { return handler_->Get(*req, resp); });
}

grpc::ServerUnaryReactor* CacheService::BatchGet(grpc::CallbackServerContext* ctx,
                                                 const v1::BatchGetRequest* req,
                                                 v1::BatchGetResponse* resp) {
  return Serve(ctx, kBatchGet, [&] { return handler_->BatchGet(*req, resp); });
}

grpc::ServerUnaryReactor* CacheService::List(grpc::CallbackServerContext* ctx,
                                             const v1::ListRequest* req, v1::ListResponse* resp) {
  return Serve(ctx, kList, [&] { return handler_->List(*req, resp); });
}

grpc::ServerUnaryReactor* CacheService::GetStatus(grpc::CallbackServerContext* ctx,
                                                  const v1::GetStatusRequest* req,
                                                  v1::GetStatusResponse* resp) {
  return Serve(ctx, kGetStatus, [&] { return handler_->GetStatus(*req, resp); });
}

}  // namespace cachecar::rpc
