// cachecar::client::Client: the C++ client an app links to talk to its cachecar sidecar.
//
// Every call has a deadline (ClientOptions::timeout unless given). Errors come back as a
// cachecar::Status carrying the server's google.rpc details: the ErrorInfo reason
// (TOPIC_NOT_FOUND, CACHE_NOT_READY, ...) and every BadRequest field violation.
// Thread-safe: one Client may be shared by all threads.
#pragma once

#include <grpcpp/channel.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cachecar/v1/cache.grpc.pb.h"
#include "cachecar/v1/snapshot.pb.h"
#include "common/status.h"

namespace cachecar::client {

struct ClientOptions {
  // gRPC target: "127.0.0.1:50051" or "unix:/run/cachecar/cachecar.sock".
  std::string target = "127.0.0.1:50051";
  // Deadline of each call. Default 5 s.
  std::chrono::milliseconds timeout{5000};
  // Sent as "authorization: Bearer <token>" when the sidecar requires one
  // (grpc.auth_token_file). Empty: none.
  std::string auth_token;
};

struct ReadOptions {
  bool allow_cold_cache = false;
  // Read only once the store has reached this revision (e.g. a Put's store_revision seen
  // by another client); 0 reads now. See GetRequest.min_revision.
  uint64_t min_revision = 0;
  // Values exactly as they were in Kafka (a registry topic's wire-format bytes) rather
  // than as stored; see GetRequest.original_value.
  bool original_value = false;
};

// One Watch stream (see WatchRequest/WatchResponse in the proto): send creates, cancels
// and progress requests; read responses until Read() returns false, then Finish() says
// why the stream ended. Send and Read may be used from two threads, one each.
class WatchStream {
 public:
  bool Send(const v1::WatchRequest& request) { return stream_->Write(request); }
  bool Read(v1::WatchResponse* response) { return stream_->Read(response); }
  // Half-closes the client side; the server keeps serving live watches.
  bool CloseSend() { return stream_->WritesDone(); }
  // Ends the stream from any thread.
  void Cancel() { context_.TryCancel(); }
  Status Finish();

 private:
  friend class Client;
  WatchStream() = default;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WatchRequest, v1::WatchResponse>> stream_;
};

class Client {
 public:
  explicit Client(ClientOptions options);

  Result<v1::GetResponse> Get(const std::string& topic, const std::string& key,
                              ReadOptions ro = {});
  Result<v1::BatchGetResponse> BatchGet(const std::string& topic,
                                        const std::vector<std::string>& keys,
                                        ReadOptions ro = {});
  // One page; pass the previous page's next_page_token to continue.
  Result<v1::ListResponse> List(const std::string& topic, const std::string& prefix,
                                int32_t page_size, const std::string& page_token,
                                ReadOptions ro = {});
  // Every entry with the prefix, following pages (at most `limit` entries; 0 = no limit).
  Result<std::vector<v1::Entry>> ListAll(const std::string& topic, const std::string& prefix,
                                         size_t limit = 0, ReadOptions ro = {});
  Result<v1::GetStatusResponse> GetStatus();
  // The standard gRPC health check (grpc.health.v1.Health/Check) of `service` ("" is the
  // whole sidecar, "topic/<name>" one topic): true when SERVING. Needs no token.
  Result<bool> CheckHealth(const std::string& service);
  // Waits until the sidecar is ready or `timeout` passes (ready = false and the reason).
  Result<v1::WaitReadyResponse> WaitReady(std::chrono::milliseconds timeout);
  // Writes through the topic; by default returns once the sidecar has applied the record.
  Result<v1::PutResponse> Put(const std::string& topic, const std::string& key,
                              const std::string& value, bool ack_only = false);
  Result<v1::DeleteResponse> Delete(const std::string& topic, const std::string& key,
                                    bool ack_only = false);
  Result<v1::ListRejectedRecordsResponse> ListRejectedRecords(const std::string& topic);
  // Opens a Watch stream. It has no deadline: it lasts until cancelled or ended.
  std::unique_ptr<WatchStream> Watch();

  // Saves a snapshot of the sidecar's store to `path` (SnapshotService.StreamSnapshot, in
  // the file layout `cachecar --bootstrap-from` reads), checking its SHA-256 as it arrives;
  // written to `path`.partial and renamed only once whole and checked. `timeout` bounds the
  // whole transfer. DATA_LOSS (SNAPSHOT_CORRUPT) for a stream that does not check out.
  Result<v1::SnapshotHeader> SaveSnapshot(const std::string& path,
                                          std::chrono::milliseconds timeout);

 private:
  std::unique_ptr<grpc::ClientContext> NewContext() const;
  std::unique_ptr<grpc::ClientContext> NewContext(std::chrono::milliseconds timeout) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CacheService::Stub> stub_;
};

// Converts a gRPC status, decoding google.rpc details (reason, metadata, violations).
Status FromGrpcStatus(const grpc::Status& status);

}  // namespace cachecar::client
