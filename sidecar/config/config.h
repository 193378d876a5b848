// The sidecar's configuration: parsed and validated once at start, then frozen and shared
// read-only by every component (no locking needed).
//
// Source: a YAML file (in Kubernetes, a ConfigMap) in which every scalar may use
// ${NAME} or ${NAME:-default} to read the environment ($$ is a literal $), plus command-line
// overrides applied before validation. LoadConfig reports every problem at once, each with
// its place: "cachecar.yaml:12:5: topics[2].name: required".
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace cachecar::config {

enum class KeyEncoding { kUtf8, kBytes };
// json: a JSON document. bytes: any bytes. registry: the Confluent Schema Registry wire
// format (a zero byte, the 4-byte big-endian schema id, the payload), the schema fetched
// from RegistryConfig's registry by id; JSON Schema payloads only so far (README "Schema
// Registry topics").
enum class ValueFormat { kJson, kBytes, kRegistry };
// What the materializer does with a record it cannot serve (bad key, not JSON, schema
// violation). In every case the record is never served.
enum class InvalidPolicy {
  kSkip,        // keep the key's previous value, count it, remember it, move on
  kDeadLetter,  // produce it with error headers to dead_letter_topic, then skip it
  kFail,        // stop applying that partition; the sidecar reports not ready
};

const char* KeyEncodingName(KeyEncoding e);
const char* ValueFormatName(ValueFormat f);
const char* InvalidPolicyName(InvalidPolicy p);

// How a topic's schema runs "pattern", "patternProperties" and "format": regex.
enum class SchemaPatterns {
  kLinear,        // a linear-time engine; a pattern that needs backtracking is refused
  kBacktracking,  // such patterns allowed, under schemas.backtrack_limit and
                  // schemas.backtracking_max_string_bytes
};

// Whether "format" is asserted (a value that breaks it is invalid) or an annotation.
enum class SchemaFormats { kAssert, kAnnotate };

// How a topic's record becomes the key's value (README "Transforms and merges").
enum class ApplyMode {
  kReplace,     // the record's value (after the transform) replaces the key's value
  kMergePatch,  // it is an RFC 7396 JSON merge patch onto the key's current value
};
const char* ApplyModeName(ApplyMode m);

// Whether a topic's state counts in the sidecar's readiness (/readyz, gRPC health "",
// WaitReady). An optional topic that is catching up, halted or being rebuilt leaves the pod
// ready (its own reads are refused, and its per-topic health and status say why).
enum class TopicReadiness { kRequired, kOptional };

// What a sidecar restarted while Kafka cannot be reached does with the state its store
// holds (see ReadinessConfig).
enum class BrokerOutageAtStart { kServeStored, kWait };

struct TopicConfig {
  std::string name;
  // utf-8: keys must be valid UTF-8 (records with other keys are rejected, requests with
  // other keys are INVALID_ARGUMENT). bytes: any key.
  KeyEncoding key_encoding = KeyEncoding::kUtf8;
  // registry: keys are in the Schema Registry wire format too (Confluent's key
  // serializers); each is decoded with its schema and stored as compact JSON with sorted
  // members (README "Keys in the registry format"). A Put's or Delete's key, given as
  // JSON, is encoded with registry_key_subject's latest schema.
  bool registry_keys = false;
  // With key_format: registry, the subject a Put's or Delete's key is encoded under.
  // Default "<topic>-key" (the TopicNameStrategy).
  std::string registry_key_subject;
  // json: values must be JSON documents (invalid ones are rejected, never served).
  // bytes: any value. registry: see ValueFormat.
  ValueFormat value_format = ValueFormat::kJson;
  // With value_format: registry, the subject a Put's value is encoded under (its latest
  // schema). Default "<topic>-value" (the TopicNameStrategy).
  std::string registry_subject;
  // With value_format: registry, the version of registry_subject a Put encodes with; 0:
  // the latest (asked again after registry.latest_ttl_ms).
  int32_t registry_version = 0;
  // With value_format: registry, whether each record's wire-format bytes are stored beside
  // its decoded JSON, so reads can ask for them (original_value). Default false: they cost
  // their size again and catch-up time (README "Benchmarks"). Changing it rebuilds the
  // topic.
  bool keep_original = false;
  // Whether values are JSON once decoded (json, or registry), as stored and served.
  bool json_values() const { return value_format != ValueFormat::kBytes; }
  // Path of the topic's JSON Schema, relative paths resolved against the config file's
  // directory. Empty: no schema.
  std::string schema_path;
  // See SchemaPatterns and SchemaFormats. Defaults linear, assert.
  SchemaPatterns schema_patterns = SchemaPatterns::kLinear;
  SchemaFormats schema_formats = SchemaFormats::kAssert;
  // Read-only topics accept no writes through the sidecar (PERMISSION_DENIED), and no
  // producer is created for them. Default true.
  bool read_only = true;
  // See InvalidPolicy. Default skip.
  InvalidPolicy on_invalid = InvalidPolicy::kSkip;
  // Where on_invalid: dead-letter sends records; required with it.
  std::string dead_letter_topic;
  // Largest value a Put may write. Default 1 MiB (the broker's own default limit is about
  // the same; a larger record is refused by the broker anyway).
  uint32_t max_value_bytes = 1u << 20;
  // How many rejected records to remember for ListRejectedRecords. Default 100.
  uint32_t rejected_history = 100;
  // See TopicReadiness. Default required.
  TopicReadiness readiness = TopicReadiness::kRequired;
  // When the stored position of a partition is below the log start (Kafka's retention
  // deleted records before this sidecar read them: a restart after a long stop, or a store
  // bootstrapped from an old snapshot): false (default) empties the topic and reads it
  // again from the log start, so the cache holds exactly what Kafka holds; true keeps the
  // stored data and reads on from the log start, so keys whose records Kafka no longer
  // has stay served (the deleted records' own changes are never seen; counted).
  bool retain_beyond_log = false;
  // A jq filter applied to each record's value before it is stored (empty: none). `.` is
  // the value; $key, $partition, $offset, $timestamp and $headers the record's metadata.
  // It gives the value to store, null to delete the key, or nothing (`empty`) to skip the
  // record. A tombstone deletes without running it. Needs value_format: json.
  std::string transform;
  std::string transform_place;  // "cachecar.yaml:14:16", for compile errors at start
  // See ApplyMode. Default replace. merge-patch needs value_format: json.
  ApplyMode apply = ApplyMode::kReplace;
  // Path of a JSON Schema the key's value must satisfy after the transform and merge (the
  // entry, not the message), resolved like schema_path. A record whose entry breaks it is
  // invalid (reason entry_schema_violation, the topic's on_invalid applies); a Put whose
  // entry would, is refused. Empty: none. Needs value_format: json.
  std::string entry_schema_path;
  // Views of this topic (README "Views"): indices into Config::topics of the entries made
  // for them, which follow every topic read from Kafka.
  std::vector<size_t> views;

  // Set on the entry of a view, never on a topic read from Kafka: the index of the topic it
  // indexes, and the jq expression that gives an entry's view keys (each output a key;
  // strings as they are, numbers and booleans as their JSON text, null none). A view is
  // read-only, its keys UTF-8, its values JSON arrays of {"key", "value"} (the entries of
  // its topic under that view key, by key).
  std::optional<size_t> view_of;
  std::string view_topic;  // that topic's name
  std::string view_key;
  std::string view_key_place;  // "cachecar.yaml:14:16", for compile errors at start
  // Most entries one view key holds (views[].max_entries_per_key, default 1000): each
  // change of one rewrites the key's whole array, so this bounds a change's cost. An entry
  // past it is left out of that view key, counted.
  uint32_t view_max_entries_per_key = 1000;
  bool is_view() const { return view_of.has_value(); }
  // Whether a read can have each value exactly as it was in Kafka (original_value): a
  // registry topic that keeps them, or a topic that stores its values as they came (no
  // transform, no merge, not a view).
  bool serves_original() const {
    if (is_view()) return false;
    if (value_format == ValueFormat::kRegistry) return keep_original;
    return transform.empty() && apply == ApplyMode::kReplace;
  }
};

struct KafkaConfig {
  // Comma-separated host:port list. Required.
  std::string bootstrap_servers;
  // librdkafka properties passed through as they are (TLS, SASL, timeouts...). The ones
  // cachecar must control itself are refused at load. Includes those read from files
  // (properties_from_files), so secrets never need to be in the config file.
  std::map<std::string, std::string> properties;
  // The consumer group the applied offsets are committed to, so Kafka's group tools show
  // this pod's lag. The group is never joined (no rebalancing). Default
  // "$POD_NAMESPACE.$POD_NAME" (the pod's identity), else "cachecar.$HOSTNAME".
  std::string group_id;
  // How often applied offsets are committed to group_id; 0 never. Default 5000. The
  // store's own offsets are what a restart resumes from; these are for people and tools.
  uint32_t commit_interval_ms = 5000;
  // How often the partition count of every topic is asked for, so partitions added to a
  // running topic are read (and how often the producer refreshes its metadata, so Puts
  // reach them). One metadata request per topic each time.
  uint32_t metadata_refresh_ms = 10000;
};

// True for librdkafka property names whose values are secrets (never logged).
bool IsSecretProperty(const std::string& name);

// store.sync; see StoreConfig::sync.
enum class StoreSync { kNone, kData, kFull };

struct StoreConfig {
  // Directory of the LMDB environment; created if missing. Default /var/lib/cachecar.
  std::string path = "/var/lib/cachecar";
  // LMDB map size at start. Costs address space, not memory or disk (the file grows as
  // data is written). When the data outgrows it, the map doubles, up to
  // max_map_size_bytes. Default 1 GiB.
  uint64_t map_size_bytes = 1ull << 30;
  // The most the store may grow to; past it the store is full (STORE_FULL: the sidecar
  // goes not ready and Puts fail). Default 1 TiB (address space only).
  uint64_t max_map_size_bytes = 1ull << 40;
  // How commits reach the disk (README "Configuration" for operators):
  //   none (default): no fsync per commit. A process crash (kill -9, OOM kill, container
  //     restart) loses nothing: the kernel's page cache holds every write. After a machine
  //     crash (power loss, kernel panic, node reboot) the unsynced store is discarded at the
  //     next start and rebuilt from Kafka, since its last writes may be lost out of order.
  //     Where the machine's boot id cannot be read, as data.
  //   data (`false` before): one fsync of each commit's data (MDB_NOMETASYNC); the store
  //     survives a machine crash, which may undo only its last commit (read again from
  //     Kafka: offsets and data share the transaction).
  //   full (`true` before): data and LMDB's meta page fsynced at every commit.
  StoreSync sync = StoreSync::kNone;
};

struct MaterializerConfig {
  // A write transaction commits when it holds this many records, this many bytes, or has
  // been open this long, whichever comes first, and at once when the consumer is idle.
  // Larger batches make catch-up faster; the delay bounds how stale a live read can be.
  uint32_t batch_max_records = 10000;
  uint64_t batch_max_bytes = 16ull << 20;
  uint32_t batch_max_delay_ms = 50;
  // /livez fails (and Kubernetes restarts the pod) when the writer thread has not gone
  // round its loop for this long: it is wedged. Longer than anything it may wait on
  // (a dead letter's acknowledgement, 30 s; a metadata request, 5 s). Default 120 s.
  uint32_t stall_timeout_ms = 120000;
};

struct GrpcConfig {
  // host:port to listen on; empty disables TCP. Default 127.0.0.1:50051.
  std::string address = "127.0.0.1:50051";
  // Unix socket path to listen on as well; empty (default) disables it.
  std::string unix_socket;
  // Binding a non-loopback address exposes the cache to the network: it must be asked
  // for explicitly. Default false.
  bool allow_non_loopback = false;
  // Largest request accepted. Default 4 MiB.
  uint32_t max_request_bytes = 4u << 20;
  // Calls that may wait at once (Puts until applied, reads with min_revision, WaitReady);
  // past it a new one is refused RESOURCE_EXHAUSTED (TOO_MANY_WAITING_CALLS), a Put before
  // producing. Default 10000.
  uint32_t max_waiting_calls = 10000;
  // Concurrent calls (streams) per client connection (HTTP/2 SETTINGS_MAX_CONCURRENT_
  // STREAMS); a client queues the ones past it. Default 1000.
  uint32_t max_concurrent_streams = 1000;
  // A file holding a shared token (e.g. a mounted Secret). When set, every CacheService
  // call must carry "authorization: Bearer <token>" or is refused UNAUTHENTICATED. The
  // health service stays open (Kubernetes probes send no metadata). Read at start.
  std::string auth_token_file;
  std::string auth_token;  // the file's content (trailing newline removed); a secret
};

struct ReadinessConfig {
  // After the first catch-up, report not ready while any partition has lagged more than
  // max_lag_records for longer than max_lag_duration_ms; ready again once it is back
  // within the bound. 0 (default) never: once ready, a pod stays ready.
  uint64_t max_lag_records = 0;
  uint32_t max_lag_duration_ms = 30000;
  // A restart while Kafka cannot be reached: serve_stored (default) makes each topic whose
  // store was caught up with Kafka before the restart ready after broker_outage_grace_ms,
  // serving that state with every read marked stale (with when it was last caught up)
  // until Kafka answers and the topic has caught up again. wait: not ready until Kafka
  // answers and every topic has caught up. A store never caught up is never served.
  BrokerOutageAtStart broker_outage_at_start = BrokerOutageAtStart::kServeStored;
  uint32_t broker_outage_grace_ms = 10000;
};

struct HttpConfig {
  // host:port for /metrics, /readyz and /livez; empty disables. Default 127.0.0.1:9090.
  std::string address = "127.0.0.1:9090";
  bool allow_non_loopback = false;
};

struct SchemasConfig {
  // How often to look for changed schema files (0: never). Default 5000 ms. Each look
  // reads the schema folders and hashes them; recompiling happens only on a change.
  uint32_t reload_interval_ms = 5000;
  // The budget of backtracking patterns (topics with schema_patterns: backtracking): steps
  // per match, and the longest string a document may hold. Over it a value is neither
  // valid nor invalid: a Put is refused with SCHEMA_BUDGET_EXCEEDED, a record is rejected
  // with reason schema_budget_exceeded. Defaults 10000 and 4096.
  uint32_t backtrack_limit = 10000;
  uint32_t backtracking_max_string_bytes = 4096;
};

// The worker process topics' transforms run in (transform/sandbox.h).
struct TransformsConfig {
  // Longest one record's filter may run; past it the worker is killed and started again,
  // and the record is invalid (reason transform_budget_exceeded). Default 1000 ms.
  uint32_t record_budget_ms = 1000;
  // Address space the worker may use; a filter that needs more is killed with its record
  // (transform_crashed). Default 1 GiB.
  uint64_t max_memory_bytes = 1ull << 30;
};

struct WritesConfig {
  // librdkafka linger.ms for Put/Delete: how long the producer waits to fill a batch.
  // Default 0 (lowest latency); raise it for throughput under many concurrent writers.
  uint32_t linger_ms = 0;
  // How long the producer keeps retrying one record before giving up (message.timeout.ms).
  // Default 30000. A call's own deadline ends the wait for it sooner.
  uint32_t delivery_timeout_ms = 30000;
  // The longest a Put waits for its record to be applied, or a read for min_revision,
  // when the call has no deadline of its own. Default 30000.
  uint32_t max_wait_ms = 30000;
};

struct WatchConfig {
  // Changes kept in the store's history log, so a Watch can resume after a disconnect or a
  // restart. A resume from further back is cancelled with the oldest revision still held
  // (the client re-lists). Costs about one key+value+previous value of disk per change.
  // Default 100000.
  uint64_t history_events = 100000;
  // How often an idle watch is told the revision it is current to (0: only on request).
  // Default 10000 ms.
  uint32_t progress_interval_ms = 10000;
  // Events one watch may have queued for its client. Past it, the watch stops queueing
  // and reads the rest from the history log as the client takes them (nothing is dropped,
  // memory stays bounded). Default 1024.
  uint32_t buffer_events = 1024;
  // The same bound in bytes of keys and values (at least one event is always queued).
  // Default 16 MiB: without it, 1024 queued 1 MiB values would hold a GiB for one client.
  uint64_t buffer_bytes = 16u << 20;
  // A stream whose client takes nothing for this long while responses wait has stopped
  // reading: its watches are cancelled with SLOW_CONSUMER and their last revision.
  // Default 30000.
  uint32_t slow_consumer_timeout_ms = 30000;
  // No longer used (a snapshot holds no read transaction between its pages); still
  // accepted so that older configurations start, with a warning. 0 unless set.
  uint32_t snapshot_max_hold_ms = 0;
  // Watches on one stream, and in the whole process. Defaults 1000 and 20000.
  uint32_t max_watches_per_stream = 1000;
  uint32_t max_watches = 20000;
};

// Serving this sidecar's store to peers (README "Bootstrap from a peer").
struct PeersConfig {
  // host:port on which SnapshotService alone is served to peers (typically 0.0.0.0:50052,
  // behind a headless Service); empty (default): not served to the network. The
  // CacheService never listens here: reads stay on grpc.address.
  std::string listen;
  // File holding the token peers share (a mounted Secret): presented when bootstrapping,
  // required of callers on `listen`. Required with `listen` or bootstrap.peers.
  std::string token_file;
  std::string token;  // the file's content; a secret
  // Directory each transfer's compacted copy is made in while it is sent (created if
  // missing). Default: the store's directory. A copy takes up to the store's used size, so
  // under a size-limited volume (a Kubernetes emptyDir's sizeLimit) give copies a volume of
  // their own, or the volume must hold the store plus max_transfers copies.
  std::string work_dir;
  // Snapshot transfers served at once; past it a peer is refused RESOURCE_EXHAUSTED and
  // asks another. Default 2. Each needs disk for one compacted copy while it runs.
  uint32_t max_transfers = 2;
  // Bytes per second each transfer is sent at, at most, so a bootstrap cannot take the
  // serving pod's disk and network from its own reads. Default 100 MiB/s.
  uint64_t max_bytes_per_second = 100ull << 20;
};

// Filling an empty store from a snapshot instead of replaying Kafka.
struct BootstrapConfig {
  // Peers to ask, in order of preference, each host:port; a name that resolves to several
  // addresses (a headless Service) is each of them, in random order. Empty (default):
  // never bootstrap from peers.
  std::vector<std::string> peers;
  // A snapshot file (cachecarctl snapshot save) to fill an empty store from; also
  // --bootstrap-from. Tried before peers.
  std::string from_file;
  // Longest a whole transfer from one peer may take before the next is tried. Default 10 min.
  uint32_t transfer_timeout_ms = 600000;
  // Longest a peer may take to answer whether it can serve. Default 5 s.
  uint32_t connect_timeout_ms = 5000;
};

// The Confluent-compatible Schema Registry of value_format: registry topics.
struct RegistryConfig {
  // Base URL of its API, e.g. "http://registry:8080/apis/ccompat/v7". Required when a
  // topic has value_format: registry.
  std::string url;
  // HTTP basic credentials, read from files (both or neither).
  std::string username_file;
  std::string password_file;
  std::string username;  // the files' contents; secrets
  std::string password;
  // Longest one request to the registry may take. Default 5 s.
  uint32_t timeout_ms = 5000;
  // How long a subject's latest schema (the one a Put encodes with) is used before it is
  // asked again. Default 30 s.
  uint32_t latest_ttl_ms = 30000;
};

struct LogConfig {
  // trace, debug, info, warn or error. Default info.
  std::string level = "info";
  // json (one object per line) or text. Default json.
  std::string format = "json";
};

struct Config {
  std::string source;  // the file it came from, for messages
  KafkaConfig kafka;
  StoreConfig store;
  MaterializerConfig materializer;
  GrpcConfig grpc;
  HttpConfig http;
  LogConfig log;
  SchemasConfig schemas;
  TransformsConfig transforms;
  WritesConfig writes;
  WatchConfig watch;
  ReadinessConfig readiness;
  PeersConfig peers;
  BootstrapConfig bootstrap;
  RegistryConfig registry;
  // The topics read from Kafka, in the file's order, then the views of every topic (each
  // a TopicConfig with view_of set). An index into this list is also the topic's index in
  // the store.
  std::vector<TopicConfig> topics;

  // Returns the topic's (or view's) config, or nullptr if it is not configured.
  const TopicConfig* FindTopic(std::string_view name) const;
  // How many entries of `topics` are read from Kafka: those come first.
  size_t kafka_topic_count() const;
};

// Command-line values that replace the file's.
struct Overrides {
  std::optional<std::string> bootstrap_servers;
  std::optional<std::string> store_path;
  std::optional<std::string> grpc_address;
  std::optional<std::string> unix_socket;
  std::optional<std::string> http_address;
  std::optional<std::string> log_level;
  std::optional<std::string> bootstrap_from;
};

// Looks up an environment variable; nullopt if unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup ProcessEnv();

// Parses and validates YAML text. `source` names it in messages. On failure the Status is
// INVALID_ARGUMENT with one FieldViolation per problem: field = "topics[2].name",
// description = "line 12, column 5: required".
Result<Config> ParseConfig(const std::string& yaml_text, const std::string& source,
                           const EnvLookup& env, const Overrides& overrides = {});

// Reads the file, then ParseConfig. Schema paths are resolved against its directory.
Result<Config> LoadConfig(const std::string& path, const EnvLookup& env,
                          const Overrides& overrides = {});

// Expands ${NAME}, ${NAME:-default} and $$ in `text`. Fails (INVALID_ARGUMENT, message
// naming the variable) on an unset variable without default or a malformed reference.
Result<std::string> ExpandEnv(const std::string& text, const EnvLookup& env);

// True for a legal Kafka topic name: 1-249 of [A-Za-z0-9._-], not "." or "..".
bool IsValidTopicName(const std::string& name);

}  // namespace cachecar::config
