// Which stores can share data: a topic's settings fingerprint, and the rule that decides
// whether a snapshot from a peer may fill this sidecar's store (README "Bootstrap from a
// peer"). Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "cachecar/v1/snapshot.pb.h"
#include "common/status.h"
#include "config/config.h"

namespace cachecar::schema { class SchemaSet; }

namespace cachecar::peer {

struct LocalTopic {
  std::string name;
  std::string fingerprint;  // TopicSettingsFingerprint
};

// Hex SHA-256 of everything that decides what the topic stores for a record: key encoding,
// value format, on_invalid (and its dead-letter topic), retain_beyond_log, schema patterns
// and formats modes,
// and the content of the schema in force (SchemaSet::ContentFingerprint; empty: none).
// Not: read_only, max_value_bytes, readiness, rejected_history (they change no entry).
std::string TopicSettingsFingerprint(const config::TopicConfig& topic,
                                     const std::string& schema_content_fingerprint);

// This sidecar's topics with their fingerprints now (the schemas in force).
std::vector<LocalTopic> LocalTopics(const config::Config& config,
                                    const schema::SchemaSet& schemas);

// OK if the snapshot holds every local topic with an equal fingerprint (it may hold more:
// they are dropped when it is installed). FAILED_PRECONDITION (PEER_INCOMPATIBLE) naming
// every difference otherwise.
Status CheckCompatible(const std::vector<LocalTopic>& mine,
                       const google::protobuf::RepeatedPtrField<v1::SnapshotTopic>& offered);

}  // namespace cachecar::peer
