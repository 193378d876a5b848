// echo_server: the baseline for the Get benchmarks: the same CacheService API on the same
// gRPC stack, answering from memory with a canned ~185-byte entry (the size of
// bench/produce.cc's records) and doing nothing else.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

#include "cachecar/v1/cache.grpc.pb.h"

namespace v1 = cachecar::v1;

class Echo final : public v1::CacheService::CallbackService {
 public:
  Echo() {
    entry_.set_value(std::string(185, 'v'));
    entry_.set_partition(3);
    entry_.set_offset(123456);
    entry_.set_revision(42);
  }
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const v1::GetRequest* req,
                                v1::GetResponse* resp) override {
    resp->set_found(true);
    *resp->mutable_entry() = entry_;
    resp->mutable_entry()->set_key(req->key());
    ctx->AddInitialMetadata("cachecar-store-revision", "42");
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
  grpc::ServerUnaryReactor* BatchGet(grpc::CallbackServerContext* ctx,
                                     const v1::BatchGetRequest* req,
                                     v1::BatchGetResponse* resp) override {
    for (const auto& k : req->keys()) {
      auto* res = resp->add_results();
      res->set_key(k);
      res->set_found(true);
      *res->mutable_entry() = entry_;
      res->mutable_entry()->set_key(k);
    }
    ctx->AddInitialMetadata("cachecar-store-revision", "42");
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }

 private:
  v1::Entry entry_;
};

int main(int argc, char** argv) {
  CLI::App app{"bare gRPC echo server (benchmark baseline)"};
  std::string address = "127.0.0.1:0";
  app.add_option("--address", address);
  CLI11_PARSE(app, argc, argv);
  Echo service;
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  std::printf("echo_server port=%d\n", port);
  std::fflush(stdout);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  int sig;
  sigwait(&s, &sig);
  server->Shutdown();
  return 0;
}
