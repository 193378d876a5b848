// CacheService: the gRPC adapter. Each method converts nothing but transport concerns:
// it calls the ReadHandler, sets the cachecar-store-revision header, records latency and
// maps the Status (rpc/errors.h). Handlers run inline on gRPC's callback threads; they only
// take short LMDB read transactions, so nothing blocks.
#pragma once

#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "cachecar/v1/cache.grpc.pb.h"
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
  template <typename Fn>
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* ctx, const char* method, Fn fn);

  const ReadHandler* handler_;
  prometheus::Family<prometheus::Histogram>* latency_;
  prometheus::Family<prometheus::Counter>* requests_;
};

}  // namespace cachecar::rpc
