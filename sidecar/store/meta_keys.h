// Names and key layouts of the store's meta and positions tables, shared by the store and
// the code that reads a copy of it offline (store_file.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cachecar::store {

inline constexpr std::string_view kKeyFormat = "format";
inline constexpr std::string_view kKeyStoreId = "store_id";
inline constexpr std::string_view kKeyRevision = "revision";
// Meta key of a topic's caught-up time: this prefix, then the topic name.
inline constexpr std::string_view kKeyCaughtUpPrefix = "caught_up/";
// Name of a topic's database: this prefix, then the topic name.
inline constexpr std::string_view kTopicDbPrefix = "t:";
// Name of a view's reverse table (view_codec.h): this prefix, then the view name.
inline constexpr std::string_view kViewKeysDbPrefix = "k:";

inline std::string CaughtUpKey(const std::string& topic) {
  return std::string(kKeyCaughtUpPrefix) + topic;
}

// Meta key of the definition a topic's values were stored under (WriteBatch::definitions).
inline std::string DefinitionKey(const std::string& topic) { return "definition/" + topic; }

// Meta keys of the Schema Registry schemas the materializer fetched
// (WriteBatch::registry_schemas): this prefix, then the caller's key.
inline constexpr std::string_view kRegistrySchemaPrefix = "registry_schema/";

// Meta key present while a topic is being emptied (a reset not finished).
inline std::string ResettingKey(const std::string& topic) { return "resetting/" + topic; }

// Positions table key: the topic name, a zero byte, the partition big-endian.
inline std::string PositionKey(const std::string& topic, int32_t partition) {
  std::string k = topic;
  k.push_back('\0');
  uint32_t p = static_cast<uint32_t>(partition);
  char be[4] = {static_cast<char>(p >> 24), static_cast<char>(p >> 16),
                static_cast<char>(p >> 8), static_cast<char>(p)};
  k.append(be, 4);
  return k;
}

// A new random store identity (32 hex digits).
std::string NewStoreId();

}  // namespace cachecar::store
