// What one write transaction of the store applies (Store::Apply), and what it reports.
// Plain values, built and owned by the writer thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace cachecar::store {

// A change. `value` nullopt means delete (a tombstone).
struct Mutation {
  size_t topic = 0;  // index into Options::topics
  std::string key;
  std::optional<std::string> value;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
  // For a put to a value_format: registry topic: the schema id its value was decoded with.
  std::optional<int32_t> schema_id;
  // For such a put, if the topic keeps them: the record's value as read from Kafka.
  std::optional<std::string> original;
  // For a put to a topic with views: per view of the topic (Options::views' order), the
  // view keys its value is under. Missing ones: none.
  std::vector<std::vector<std::string>> view_keys;
};

// (topic index, partition): how positions are keyed everywhere.
using PartitionKey = std::pair<size_t, int32_t>;

struct WriteBatch {
  std::vector<Mutation> mutations;
  // Partition -> next offset to consume.
  std::map<PartitionKey, int64_t> positions;
  // Topics to empty before the mutations (a rebuild): their positions and caught-up time
  // are forgotten, one "topic reset" record goes into the history log (watchers of the
  // topic are told once, whatever its size), the topic is marked as resetting, and up to
  // Options::reset_chunk_keys of its keys are deleted. The rest go with continue_resets.
  std::set<size_t> reset_topics;
  // Resetting topics of which to delete the next reset_chunk_keys keys (no history); the
  // mark goes with the last key. See ApplyResult::resetting.
  std::set<size_t> continue_resets;
  // Topics that were caught up with Kafka when this batch was built -> that time (Unix ms).
  // Stored with the data (Store::LoadCaughtUp), so a restart knows the state it holds was
  // once current; a reset forgets it.
  std::map<size_t, int64_t> caught_up_ms;
  // Topics -> the definition their values are stored under (the materializer's transform
  // and apply mode), kept in the meta table (DefinitionKey) with the data it produced.
  std::map<size_t, std::string> definitions;
  // Schema Registry schemas fetched for the records of this batch (the caller's key ->
  // value), kept in the meta table with them so a restart decodes those records while the
  // registry is down (Store::LoadRegistrySchemas).
  std::map<std::string, std::string> registry_schemas;
  size_t bytes = 0;  // payload bytes, for the caller's batching decisions

  void Clear() {
    mutations.clear();
    positions.clear();
    reset_topics.clear();
    continue_resets.clear();
    caught_up_ms.clear();
    definitions.clear();
    registry_schemas.clear();
    bytes = 0;
  }
  bool empty() const {
    return mutations.empty() && positions.empty() && reset_topics.empty() &&
           continue_resets.empty() && caught_up_ms.empty() && definitions.empty() &&
           registry_schemas.empty();
  }
};

struct ApplyResult {
  uint64_t revision = 0;      // the store revision after the batch
  size_t changes = 0;         // puts, and deletes that removed a key, and topic resets
  std::set<size_t> resetting;  // topics of reset_topics and continue_resets not yet empty
  // By index into Options::views: entries left out of a view key that held
  // max_entries_per_key already (view key, topic key of the first one).
  std::map<size_t, std::pair<uint64_t, std::pair<std::string, std::string>>> view_overflows;
};

}  // namespace cachecar::store
