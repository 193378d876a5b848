#include "server.h"

#include <algorithm>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <filesystem>
#include <future>
#include <set>

#include "common/log.h"
#include "grpc/health/v1/health.pb.h"
#include "health/catch_up.h"
#include "health/readiness_publisher.h"
#include "kafka/materializer.h"
#include "kafka/producer.h"
#include "kafka/rdkafka_source.h"
#include "kafka/rejected_log.h"
#include "metrics/http_server.h"
#include "peer/bootstrapper.h"
#include "peer/snapshot_service.h"
#include "rpc/cache_service.h"
#include "rpc/read_handler.h"
#include "registry/registry_client.h"
#include "registry/schema_cache.h"
#include "rpc/write_handler.h"
#include "schema/schema_set.h"
#include "store/apply_notifier.h"
#include "store/store.h"
#include "transform/sandbox.h"
#include "store/store_monitor.h"
#include "watch/hub.h"
#include "watch/watch_reactor.h"

namespace cachecar {


Server::Server(config::Config config) : config_(std::move(config)) {}

Server::~Server() { Shutdown(); }

int Server::http_port() const { return http_server_ ? http_server_->port() : 0; }

Result<std::unique_ptr<Server>> Server::BuildAndStart(config::Config config) {
  std::unique_ptr<Server> s(new Server(std::move(config)));
  Status st = s->Start();
  if (!st.ok()) return st;
  return s;
}

Status Server::Start() {
  registry_ = std::make_shared<prometheus::Registry>();
  std::vector<std::string> topic_names;
  std::vector<schema::TopicSchema> topic_schemas = schema::TopicSchemasOf(config_);
  std::vector<size_t> rejected_capacity;
  std::set<std::string> produce_topics;  // writable ones and dead-letter targets
  for (const auto& t : config_.topics) {
    topic_names.push_back(t.name);
    rejected_capacity.push_back(t.rejected_history);
    if (!t.read_only) produce_topics.insert(t.name);
    if (t.on_invalid == config::InvalidPolicy::kDeadLetter) produce_topics.insert(t.dead_letter_topic);
  }
  // A schema that does not compile stops the start: never serve a topic whose rules
  // cannot be enforced.
  Result<std::unique_ptr<schema::SchemaSet>> schemas =
      schema::SchemaSet::Load(topic_schemas, registry_.get());
  if (!schemas.ok()) return schemas.status();
  schemas_ = std::move(schemas).value();
  if (std::any_of(config_.topics.begin(), config_.topics.end(),
                  [](const config::TopicConfig& t) { return !t.entry_schema_path.empty(); })) {
    Result<std::unique_ptr<schema::SchemaSet>> entry =
        schema::SchemaSet::Load(schema::EntrySchemasOf(config_), registry_.get());
    if (!entry.ok()) return entry.status();
    entry_schemas_ = std::move(entry).value();
  }
  // So does a transform that does not compile, or a worker that cannot be started.
  Result<std::unique_ptr<transform::Sandbox>> transforms =
      kafka::StartTransforms(config_, registry_.get());
  if (!transforms.ok()) return transforms.status();
  transforms_ = std::move(transforms).value();
  Result<std::unique_ptr<transform::Sandbox>> view_keys =
      kafka::StartViewKeys(config_, registry_.get());
  if (!view_keys.ok()) return view_keys.status();
  view_keys_ = std::move(view_keys).value();
  // Topics read from Kafka come first in config_.topics; views after them. The store holds
  // both; the consumer and the tracker only the topics (a view is as ready as its topic).
  const size_t kafka_topics = config_.kafka_topic_count();
  std::vector<std::string> store_topics = topic_names;
  topic_names.resize(kafka_topics);
  rejected_log_ = std::make_unique<kafka::RejectedLog>(rejected_capacity);

  // An empty store is filled from a snapshot (bootstrap.from_file, bootstrap.peers) when
  // one is configured and can be had; otherwise the topics are replayed from Kafka.
  peer_stats_ = std::make_unique<peer::PeerStats>(peer::PeerStats::Register(*registry_));
  peer::ExportPeerSeries(*peer_stats_);
  {
    const auto started = std::chrono::steady_clock::now();
    peer::BootstrapResult boot =
        peer::Bootstrap(config_, peer::LocalTopics(config_, *schemas_), peer_stats_.get());
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    peer_stats_->bootstrap_source->Add({{"source", boot.source}}).Set(1);
    peer_stats_->bootstrap_seconds->Set(seconds);
    peer_stats_->bootstrap_bytes->Set(static_cast<double>(boot.bytes));
    if (boot.source == "file" || boot.source == "peer") {
      log::Info("store filled from a snapshot",
                {{"source", boot.source}, {"from", boot.from},
                 {"bytes", static_cast<int64_t>(boot.bytes)},
                 {"revision", boot.revision}, {"seconds", seconds}});
    } else if (boot.source == "kafka" &&
               (!config_.bootstrap.peers.empty() || !config_.bootstrap.from_file.empty())) {
      log::Warn("no snapshot could be had; replaying the topics from Kafka",
                {{"seconds", seconds}});
    }
  }
  const std::string snapshot_dir =
      config_.peers.work_dir.empty() ? config_.store.path : config_.peers.work_dir;
  {
    std::error_code ec;
    std::filesystem::create_directories(snapshot_dir, ec);
    if (ec) {
      return InvalidArgument("cannot create peers.work_dir " + snapshot_dir + ": " +
                             ec.message());
    }
    peer::SnapshotSource::RemoveStaleCopies(snapshot_dir);
  }

  store::Options so;
  so.path = config_.store.path;
  so.topics = store_topics;
  for (size_t i = kafka_topics; i < config_.topics.size(); ++i) {
    so.views.push_back(
        {i, *config_.topics[i].view_of, config_.topics[i].view_max_entries_per_key});
  }
  so.map_size_bytes = config_.store.map_size_bytes;
  so.max_map_size_bytes = config_.store.max_map_size_bytes;
  switch (config_.store.sync) {
    case config::StoreSync::kNone: so.sync = store::SyncMode::kNone; break;
    case config::StoreSync::kData: so.sync = store::SyncMode::kData; break;
    case config::StoreSync::kFull: so.sync = store::SyncMode::kFull; break;
  }
  so.history_events = config_.watch.history_events;
  // The store is a cache of the topics: one that cannot be read (corrupt, or written by an
  // incompatible version) is recreated and rebuilt, never a reason to crash-loop.
  Status recreated;
  Result<std::unique_ptr<store::Store>> store = store::Store::OpenOrRecreate(so, &recreated);
  if (!store.ok()) return store.status();
  store_ = std::move(store).value();
  store_monitor_ = std::make_unique<store::StoreMonitor>(store_.get(), registry_.get(), recreated);
  if (!recreated.ok()) {
    log::Error("store was unusable; deleted it and rebuilding from Kafka",
               {{"path", config_.store.path}, {"reason", recreated.reason()},
                {"error", recreated.message()}});
  }
  if (so.sync == store::SyncMode::kNone && store_->sync_mode() != so.sync) {
    log::Warn("store.sync: none needs the machine's boot id to tell a machine restart, and "
              "cannot read it; syncing each commit's data instead (as store.sync: data)",
              {{"boot_id_path", so.boot_id_path}});
  }
  if (config_.watch.snapshot_max_hold_ms != 0) {
    log::Warn("watch.snapshot_max_hold_ms is no longer used and can be removed: a Watch "
              "snapshot holds no read transaction between its pages",
              {{"snapshot_max_hold_ms", static_cast<int64_t>(config_.watch.snapshot_max_hold_ms)}});
  }
  log::Info("store opened", {{"path", config_.store.path},
                             {"store_id", store_->store_id()},
                             {"revision", store_->revision()}});

  if (std::any_of(config_.topics.begin(), config_.topics.end(), [](const config::TopicConfig& t) {
        return t.value_format == config::ValueFormat::kRegistry || t.registry_keys;
      })) {
    registry_client_ = std::make_unique<registry::RegistryClient>(config_.registry);
    schema_registry_ =
        std::make_unique<registry::SchemaCache>(config_, registry_client_.get(), registry_.get());
    // The schemas an earlier run fetched: their records decode while the registry is down.
    Result<std::map<std::string, std::string>> kept = store_->LoadRegistrySchemas();
    if (!kept.ok()) return kept.status();
    schema_registry_->Seed(*kept);
    log::Info("schema registry", {{"url", config_.registry.url},
                                  {"schemas_kept", static_cast<int64_t>(kept->size())}});
  }

  health::LagPolicy lag;
  lag.max_records = static_cast<int64_t>(config_.readiness.max_lag_records);
  lag.max_for = std::chrono::milliseconds(config_.readiness.max_lag_duration_ms);
  std::set<size_t> optional_topics;
  for (size_t i = 0; i < kafka_topics; ++i) {
    if (config_.topics[i].readiness == config::TopicReadiness::kOptional) optional_topics.insert(i);
  }
  tracker_ = std::make_unique<health::CatchUpTracker>(topic_names, lag, optional_topics);
  notifier_ = std::make_unique<store::ApplyNotifier>(store_->revision(), registry_.get(),
                                                     config_.grpc.max_waiting_calls);
  if (!produce_topics.empty()) {
    kafka::ProducerOptions po;
    po.bootstrap_servers = config_.kafka.bootstrap_servers;
    po.properties = config_.kafka.properties;
    po.topics = produce_topics;
    po.linger_ms = config_.writes.linger_ms;
    po.delivery_timeout_ms = config_.writes.delivery_timeout_ms;
    po.registry = registry_.get();
    po.metadata_refresh_ms = config_.kafka.metadata_refresh_ms;
    Result<std::unique_ptr<kafka::RdKafkaProducer>> producer = kafka::RdKafkaProducer::Create(po);
    if (!producer.ok()) return producer.status();
    producer_ = std::move(producer).value();
  }

  Result<std::unique_ptr<kafka::RdKafkaSource>> source =
      kafka::RdKafkaSource::Create(config_.kafka.bootstrap_servers, config_.kafka.properties,
                                   topic_names, config_.kafka.group_id);
  if (!source.ok()) return source.status();
  source_ = std::move(source).value();

  kafka::MaterializerOptions mo;
  for (size_t i = 0; i < config_.topics.size(); ++i) {
    (i < kafka_topics ? mo.topics : mo.views).push_back(config_.topics[i]);
  }
  mo.view_keys = view_keys_.get();
  mo.batch_max_records = config_.materializer.batch_max_records;
  mo.batch_max_bytes = config_.materializer.batch_max_bytes;
  mo.batch_max_delay = std::chrono::milliseconds(config_.materializer.batch_max_delay_ms);
  mo.dead_letter_timeout = std::chrono::milliseconds(config_.writes.delivery_timeout_ms);
  mo.schemas = schemas_.get();
  mo.transforms = transforms_.get();
  mo.entry_schemas = entry_schemas_.get();
  mo.registry = schema_registry_.get();
  mo.dead_letters = producer_.get();
  mo.rejected = rejected_log_.get();
  mo.commit_interval = std::chrono::milliseconds(config_.kafka.commit_interval_ms);
  mo.group_id = config_.kafka.group_id;
  mo.metadata_refresh = std::chrono::milliseconds(config_.kafka.metadata_refresh_ms);
  mo.outage_policy = config_.readiness.broker_outage_at_start;
  mo.outage_grace = std::chrono::milliseconds(config_.readiness.broker_outage_grace_ms);
  watch::Options wo;
  wo.buffer_events = config_.watch.buffer_events;
  wo.buffer_bytes = config_.watch.buffer_bytes;
  wo.slow_consumer_timeout = std::chrono::milliseconds(config_.watch.slow_consumer_timeout_ms);
  wo.max_watches_per_stream = config_.watch.max_watches_per_stream;
  wo.max_watches = config_.watch.max_watches;
  wo.progress_interval = std::chrono::milliseconds(config_.watch.progress_interval_ms);
  watch_hub_ = std::make_unique<watch::Hub>(store_.get(), &config_, wo,
                                            [t = tracker_.get()] { return t->Servable(); },
                                            registry_.get());
  // After the tracker (always first): Put and min_revision waiters, then Watch.
  mo.observers = {notifier_.get(), watch_hub_.get()};
  materializer_ = std::make_unique<kafka::Materializer>(mo, store_.get(), source_.get(),
                                                        tracker_.get(), registry_.get());
  read_handler_ = std::make_unique<rpc::ReadHandler>(
      &config_, store_.get(), tracker_.get(),
      [m = materializer_.get()] { return m->Counters(); });
  read_handler_->set_rejected_log(rejected_log_.get());
  if (schema_registry_ != nullptr) {
    api::SubjectVersionFn versions = [r = schema_registry_.get()](size_t topic, int32_t id) {
      return r->SubjectVersionFor(topic, id);
    };
    read_handler_->set_subject_versions(versions);
    watch_hub_->set_subject_versions(std::move(versions));
  }
  write_handler_ = std::make_unique<rpc::WriteHandler>(
      &config_, schemas_.get(), producer_.get(), notifier_.get(), 1 << 20, registry_.get());
  write_handler_->set_registry(schema_registry_.get());
  {
    // Puts to topics with a transform, merge-patch or entry_schema are checked for the
    // entry they lead to; their transforms run in a worker of their own (the
    // materializer's serves one thread).
    bool writable_transform = false;
    bool writable_entry = false;
    for (const auto& t : config_.topics) {
      if (t.read_only) continue;
      writable_transform |= !t.transform.empty();
      writable_entry |= !t.transform.empty() || t.apply == config::ApplyMode::kMergePatch ||
                        !t.entry_schema_path.empty();
    }
    if (writable_transform) {
      Result<std::unique_ptr<transform::Sandbox>> put_transforms =
          kafka::StartTransforms(config_, nullptr);
      if (!put_transforms.ok()) return put_transforms.status();
      put_transforms_ = std::move(put_transforms).value();
    }
    if (writable_entry) {
      entry_preview_ = std::make_unique<kafka::EntryPreview>(
          &config_, put_transforms_.get(), entry_schemas_.get(), store_.get());
      write_handler_->set_entry_preview(entry_preview_.get());
    }
  }
  cache_service_ = std::make_unique<rpc::CacheService>(
      read_handler_.get(), registry_.get(), write_handler_.get(), notifier_.get(),
      std::chrono::milliseconds(config_.writes.max_wait_ms), config_.grpc.auth_token);
  cache_service_->set_watch_factory(
      [h = watch_hub_.get()] { return watch::WatchReactor::Start(h); });

  grpc::EnableDefaultHealthCheckService(true);
  // Reflection describes services from the generated descriptor pool; gRPC's health
  // service is not generated from protobuf C++, so its file is loaded here, or
  // `grpcurl describe grpc.health.v1.Health` (and grpcurl's calls to it) would fail.
  grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!config_.grpc.address.empty()) {
    builder.AddListeningPort(config_.grpc.address, grpc::InsecureServerCredentials(),
                             &grpc_port_);
  }
  if (!config_.grpc.unix_socket.empty()) {
    std::error_code ec;
    std::filesystem::remove(config_.grpc.unix_socket, ec);  // a stale socket from a crash
    builder.AddListeningPort("unix:" + config_.grpc.unix_socket,
                             grpc::InsecureServerCredentials());
  }
  builder.SetMaxReceiveMessageSize(static_cast<int>(config_.grpc.max_request_bytes));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(config_.grpc.max_concurrent_streams));
  // gRPC turns SO_REUSEPORT on by default; two sidecars must never share a port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(cache_service_.get());
  // Snapshots: on the sidecar's own address (cachecarctl snapshot save), and on
  // peers.listen for peers, with one source and one set of limits.
  peer::SnapshotSourceOptions snap;
  snap.work_dir = config_.peers.work_dir.empty() ? config_.store.path : config_.peers.work_dir;
  snap.max_transfers = config_.peers.max_transfers;
  snap.max_bytes_per_second = config_.peers.max_bytes_per_second;
  snapshot_source_ = std::make_unique<peer::SnapshotSource>(
      snap, store_.get(), [t = tracker_.get()] { return t->NotReadyReason().empty(); },
      [this] { return peer::LocalTopics(config_, *schemas_); }, peer_stats_.get());
  local_snapshots_ = std::make_unique<peer::SnapshotService>(
      snapshot_source_.get(), config_.grpc.auth_token, peer_stats_.get());
  builder.RegisterService(local_snapshots_.get());
  grpc_server_ = builder.BuildAndStart();
  if (!grpc_server_ || (!config_.grpc.address.empty() && grpc_port_ == 0)) {
    return Status(Code::kUnavailable,
                  "cannot listen for gRPC on " +
                      (config_.grpc.address.empty() ? "unix:" + config_.grpc.unix_socket
                                                    : config_.grpc.address) +
                      " (address in use or not local?)",
                  "LISTEN_FAILED");
  }
  if (!config_.peers.listen.empty()) {
    peer_snapshots_ = std::make_unique<peer::SnapshotService>(
        snapshot_source_.get(), config_.peers.token, peer_stats_.get());
    grpc::ServerBuilder pb;
    pb.AddListeningPort(config_.peers.listen, grpc::InsecureServerCredentials(), &peer_port_);
    pb.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    pb.RegisterService(peer_snapshots_.get());
    peer_server_ = pb.BuildAndStart();
    if (!peer_server_ || peer_port_ == 0) {
      return Status(Code::kUnavailable,
                    "cannot listen for peers on " + config_.peers.listen + " (address in use?)",
                    "LISTEN_FAILED");
    }
  }
  readiness_ = std::make_unique<health::ReadinessPublisher>(
      tracker_.get(), topic_names, grpc_server_->GetHealthCheckService(), notifier_.get(),
      store_.get(), registry_.get(), std::chrono::steady_clock::now());

  if (!config_.http.address.empty()) {
    Result<std::unique_ptr<metrics::HttpServer>> http = metrics::HttpServer::Start(
        config_.http.address, registry_, [t = tracker_.get()] { return t->NotReadyReason(); },
        [m = materializer_.get(),
         bound = std::chrono::milliseconds(config_.materializer.stall_timeout_ms)] {
          auto since = m->SinceProgress();
          if (since < bound) return std::string();
          return "the writer has made no progress for " +
                 std::to_string(
                     std::chrono::duration_cast<std::chrono::seconds>(since).count()) +
                 " s (materializer.stall_timeout_ms)";
        });
    if (!http.ok()) return http.status();
    http_server_ = std::move(http).value();
  }
  watch_hub_->Start();
  store_monitor_->Start();
  materializer_->Start();
  schemas_->StartWatching(std::chrono::milliseconds(config_.schemas.reload_interval_ms));
  if (entry_schemas_) {
    entry_schemas_->StartWatching(std::chrono::milliseconds(config_.schemas.reload_interval_ms));
  }
  log::Info("listening", {{"grpc_address", config_.grpc.address},
                          {"grpc_port", grpc_port_},
                          {"unix_socket", config_.grpc.unix_socket},
                          {"http_port", http_port()},
                          {"peer_port", peer_port_},
                          {"auth", config_.grpc.auth_token.empty() ? "none" : "token"},
                          {"group_id", config_.kafka.group_id}});
  return Status::Ok();
}

void Server::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (peer_server_) {
    // Transfers in flight are cancelled: the peer tries another, or replays Kafka.
    peer_server_->Shutdown(std::chrono::system_clock::now());
    peer_server_->Wait();
  }
  if (grpc_server_) {
    grpc_server_->GetHealthCheckService()->Shutdown();  // probes see NOT_SERVING at once
    // Watches end first, each with SHUTTING_DOWN and its last revision; their streams
    // then finish, so the server's shutdown need not wait for them.
    if (watch_hub_) watch_hub_->Shutdown();
    // Calls in flight get the grace period; Puts and reads still waiting after it are
    // answered UNAVAILABLE (SHUTTING_DOWN) so that every call can finish.
    auto deadline = std::chrono::system_clock::now() + grace;
    auto stopped = std::async(std::launch::async, [&] { grpc_server_->Shutdown(deadline); });
    if (stopped.wait_until(deadline) != std::future_status::ready && notifier_) {
      notifier_->Shutdown();
    }
    stopped.wait();
    grpc_server_->Wait();
  }
  if (schemas_) schemas_->Stop();
  if (entry_schemas_) entry_schemas_->Stop();
  http_server_.reset();
  if (materializer_) materializer_->Stop();
  store_monitor_.reset();
  producer_.reset();  // after the materializer (dead letters), before the notifier
  notifier_.reset();
  source_.reset();
  log::Info("stopped", {{"revision", store_ ? store_->revision() : 0}});
  store_.reset();
}

}  // namespace cachecar
