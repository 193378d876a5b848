// SchemaSet: the compiled JSON Schema of every topic that names one, kept current.
//
// Load() compiles every schema at start and fails, naming the topic and the file, if one
// does not compile: the sidecar must not serve a topic whose rules it cannot enforce.
// Afterwards Reload() (called every reload_interval by the watcher thread, or directly)
// recompiles a topic's schema when its file, or any JSON file in the same folder (a $ref
// target), has changed. A schema that compiles replaces the old one atomically; one that
// does not is refused: the old one stays in force, the error is logged and
// cachecar_schema_reload_failing{topic} is 1 until a good file arrives. Kubernetes updates
// a mounted ConfigMap by swapping a symlink, which this sees as a content change.
//
// Thread-safe: Get() from any thread (a copy of a shared_ptr under a short lock); the
// schema it returns stays valid for as long as the caller holds it, even across a swap.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "schema/json_schema.h"

namespace cachecar::schema {

struct TopicSchema {
  std::string topic;
  std::string path;  // empty: the topic has no schema
  CompileOptions options = {};  // base_uri and root_dir come from `path`
};

// The compile options a topic's configuration asks for (patterns, formats, budget).
CompileOptions CompileOptionsFor(const config::TopicConfig& topic,
                                 const config::SchemasConfig& schemas);

// Every topic of `cfg`, in order, with its schema file and options.
std::vector<TopicSchema> TopicSchemasOf(const config::Config& cfg);
// The same with each topic's entry_schema, named "<topic>:entry" (in messages and
// metrics' topic label).
std::vector<TopicSchema> EntrySchemasOf(const config::Config& cfg);

class SchemaSet {
 public:
  // `topics` in configuration order; indices below refer to it. The registry is not owned.
  static Result<std::unique_ptr<SchemaSet>> Load(std::vector<TopicSchema> topics,
                                                 prometheus::Registry* registry);
  ~SchemaSet();

  // The topic's schema now, or nullptr if it has none.
  std::shared_ptr<const JsonSchema> Get(size_t topic) const;

  // A digest of the contents of the files the topic's schema in force was compiled from
  // (the schema file, and every *.json file beside it as its $ref targets), independent of
  // where they are mounted; empty if the topic has no schema. Peers compare it (README
  // "Bootstrap from a peer").
  std::string ContentFingerprint(size_t topic) const;

  struct ReloadResult {
    int replaced = 0;  // schemas swapped for a new version
    int refused = 0;   // changed files that did not compile (old schema kept)
  };
  // Recompiles the schemas whose files changed since the last look.
  ReloadResult Reload();

  // Calls Reload() every `interval` on a thread of its own until Stop(). 0 disables.
  void StartWatching(std::chrono::milliseconds interval);
  void Stop();

 private:
  struct Slot {
    TopicSchema source;
    std::string fingerprint;  // of the files the schema was last compiled (or refused) from
    std::shared_ptr<const JsonSchema> current;
    std::string content_fingerprint;  // of `current`; guarded by mu_
    prometheus::Counter* reloaded = nullptr;
    prometheus::Counter* refused = nullptr;
    prometheus::Gauge* failing = nullptr;
  };
  SchemaSet() = default;

  mutable std::mutex mu_;  // guards slots_[*].current and content_fingerprint
  std::vector<Slot> slots_;
  std::mutex reload_mu_;  // serializes Reload() (fingerprints)

  std::thread watcher_;
  std::mutex stop_mu_;  // guards stopping_
  std::condition_variable stop_cv_;
  bool stopping_ = false;
};

// A digest of the schema file and every *.json file beside it (names and contents), so a
// change to a $ref target is noticed. Empty if the folder cannot be read.
std::string FingerprintSchemaFolder(const std::string& schema_path);

// As FingerprintSchemaFolder, of the contents alone (no paths), so two pods that mount the
// same files anywhere agree.
std::string SchemaContentFingerprint(const std::string& schema_path);

}  // namespace cachecar::schema
