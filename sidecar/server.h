// Server: the composition root. Owns every component and fixes their start and stop order.
//
// Start: bootstrap (an empty store from a snapshot) -> store -> catch-up tracker -> Kafka
// source -> materializer -> gRPC (cache service, snapshot service, health, reflection) ->
// peer listener -> HTTP. Health says NOT_SERVING for "" and for "topic/<name>" until the
// tracker reports the topic (or all topics) caught up.
// Stop: peer listener (transfers cancelled) -> health NOT_SERVING -> gRPC stops accepting and drains in-flight calls -> HTTP ->
// materializer commits its last batch -> Kafka consumer closes -> store closes.
#pragma once

#include <grpcpp/server.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"
#include "config/config.h"

namespace prometheus { class Registry; }

namespace cachecar {

namespace store {
class Store;
class StoreMonitor;
class ApplyNotifier;
}  // namespace store
namespace registry {
class RegistryClient;
class SchemaCache;
}  // namespace registry
namespace health {
class CatchUpTracker;
class ReadinessPublisher;
}  // namespace health
namespace kafka {
class RdKafkaSource;
class RdKafkaProducer;
class Materializer;
class RejectedLog;
class EntryPreview;
}  // namespace kafka
namespace schema { class SchemaSet; }
namespace transform { class Sandbox; }
namespace rpc { class ReadHandler; class WriteHandler; class CacheService; }
namespace metrics { class HttpServer; }
namespace peer {
struct PeerStats;
class SnapshotSource;
class SnapshotService;
}  // namespace peer
namespace watch { class Hub; }

class Server {
 public:
  // Builds every component and starts serving. Errors name what could not start.
  static Result<std::unique_ptr<Server>> BuildAndStart(config::Config config);
  ~Server();

  // Ordered shutdown; in-flight RPCs get up to `grace` to finish. Idempotent.
  void Shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

  int grpc_port() const { return grpc_port_; }
  int http_port() const;
  int peer_port() const { return peer_port_; }

 private:
  explicit Server(config::Config config);
  Status Start();

  const config::Config config_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::StoreMonitor> store_monitor_;
  std::unique_ptr<health::CatchUpTracker> tracker_;
  std::unique_ptr<health::ReadinessPublisher> readiness_;
  std::unique_ptr<kafka::RdKafkaSource> source_;
  std::unique_ptr<schema::SchemaSet> schemas_;
  std::unique_ptr<schema::SchemaSet> entry_schemas_;  // null: no topic has an entry_schema
  std::unique_ptr<transform::Sandbox> transforms_;  // null: no topic has a transform
  std::unique_ptr<transform::Sandbox> view_keys_;  // null: no view
  std::unique_ptr<transform::Sandbox> put_transforms_;  // null: no writable one has
  std::unique_ptr<kafka::EntryPreview> entry_preview_;  // null: no Put needs one
  std::unique_ptr<kafka::RejectedLog> rejected_log_;
  std::unique_ptr<store::ApplyNotifier> notifier_;
  std::unique_ptr<kafka::RdKafkaProducer> producer_;
  std::unique_ptr<registry::RegistryClient> registry_client_;  // null: no registry topic
  std::unique_ptr<registry::SchemaCache> schema_registry_;
  std::unique_ptr<kafka::Materializer> materializer_;
  std::unique_ptr<rpc::ReadHandler> read_handler_;
  std::unique_ptr<rpc::WriteHandler> write_handler_;
  std::unique_ptr<watch::Hub> watch_hub_;
  std::unique_ptr<rpc::CacheService> cache_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<metrics::HttpServer> http_server_;
  std::unique_ptr<peer::PeerStats> peer_stats_;
  std::unique_ptr<peer::SnapshotSource> snapshot_source_;
  std::unique_ptr<peer::SnapshotService> local_snapshots_;
  std::unique_ptr<peer::SnapshotService> peer_snapshots_;
  std::unique_ptr<grpc::Server> peer_server_;
  int peer_port_ = 0;
  int grpc_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace cachecar
