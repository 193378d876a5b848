#include "rpc/cache_service.h"

#include <chrono>

#include "rpc/errors.h"

namespace cachecar::rpc {

CacheService::CacheService(const ReadHandler* handler, prometheus::Registry* registry)
    : handler_(handler),
      latency_(&prometheus::BuildHistogram()
                    .Name("cachecar_rpc_duration_seconds")
                    .Help("Time to handle an RPC, by method and status code.")
                    .Register(*registry)),
      requests_(&prometheus::BuildCounter()
                     .Name("cachecar_rpc_requests_total")
                     .Help("RPCs handled, by method and status code.")
                     .Register(*registry)) {}

template <typename Fn>
grpc::ServerUnaryReactor* CacheService::Serve(grpc::CallbackServerContext* ctx,
                                              const char* method, Fn fn) {
  auto start = std::chrono::steady_clock::now();
  Status st = fn();
  ctx->AddInitialMetadata(kRevisionHeader, std::to_string(handler_->revision()));
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(st));
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1};
  std::map<std::string, std::string> labels = {{"method", method}, {"code", CodeName(st.code())}};
  latency_->Add(labels, kBuckets).Observe(seconds);
  requests_->Add(labels).Increment();
  return reactor;
}

grpc::ServerUnaryReactor* CacheService::Get(grpc::CallbackServerContext* ctx,
                                            const v1::GetRequest* req, v1::GetResponse* resp) {
  return Serve(ctx, "Get", [&] { return handler_->Get(*req, resp); });
}

grpc::ServerUnaryReactor* CacheService::BatchGet(grpc::CallbackServerContext* ctx,
                                                 const v1::BatchGetRequest* req,
                                                 v1::BatchGetResponse* resp) {
  return Serve(ctx, "BatchGet", [&] { return handler_->BatchGet(*req, resp); });
}

grpc::ServerUnaryReactor* CacheService::List(grpc::CallbackServerContext* ctx,
                                             const v1::ListRequest* req, v1::ListResponse* resp) {
  return Serve(ctx, "List", [&] { return handler_->List(*req, resp); });
}

grpc::ServerUnaryReactor* CacheService::GetStatus(grpc::CallbackServerContext* ctx,
                                                  const v1::GetStatusRequest* req,
                                                  v1::GetStatusResponse* resp) {
  return Serve(ctx, "GetStatus", [&] { return handler_->GetStatus(*req, resp); });
}

}  // namespace cachecar::rpc
