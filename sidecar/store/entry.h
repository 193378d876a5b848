// What the store hands to readers: entries and history events, as owned copies (plain
// values: safe to move between threads).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "store/record_codec.h"

namespace cachecar::store {

// One entry of a topic.
struct Entry {
  std::string key;
  std::string value;
  EntryMeta meta;
  // On a registry topic that keeps them: the record's wire-format bytes as read from Kafka
  // (the value is their decoded JSON).
  std::optional<std::string> original;
};

// One change from the history log.
struct HistoryEvent {
  uint64_t revision = 0;
  std::string topic;                  // topic name (stable across config changes)
  std::string key;
  std::optional<std::string> value;   // nullopt: the key was deleted
  EntryMeta meta;                     // of the record that made the change
  std::optional<std::string> original;  // of the value, as in Entry::original
  std::optional<Entry> prev;          // the entry this change replaced or deleted, if any
  // Not a change of one key: the topic was emptied to be read again from Kafka (a
  // rebuild). `key` and `value` are empty.
  bool topic_reset = false;
};

}  // namespace cachecar::store
