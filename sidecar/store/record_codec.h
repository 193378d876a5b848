// How an entry is laid out in LMDB. Internal to the store. Pure functions; thread-safe.
//
// Key: LMDB keys are limited to 511 bytes, Kafka keys are not. A key shorter than
// kLongKeyThreshold is stored as it is; a longer one as its first kLongKeyPrefix bytes
// followed by the SHA-256 of the whole key (exactly kLongKeyThreshold bytes, so the two
// forms never collide), with the whole key kept in the value. Byte order, and so prefix
// scans, hold for the first kLongKeyPrefix bytes of every key.
//
// Value: a fixed little-endian header, then (versions 2 and 3) the Schema Registry id the
// value was decoded with, then (version 3) the record's original wire-format bytes, then
// (long keys only) the whole key, then the value:
//   u8 version | u8 flags | i32 partition | i64 offset | i64 timestamp_ms | u64 revision |
//   [i32 schema_id] | [u32 original_len | original] | [u32 key_len | key] | value
// Records without a schema id are version 1 (as before ids were kept), so a store of
// json and bytes topics reads the same in earlier versions; a version-2 or -3 record is
// refused by a version that does not know it as malformed rather than misread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cachecar::store {

inline constexpr size_t kLongKeyPrefix = 448;
inline constexpr size_t kLongKeyThreshold = kLongKeyPrefix + 32;

struct EntryMeta {
  EntryMeta() = default;
  EntryMeta(int32_t in_partition, int64_t at_offset, int64_t at_ms, uint64_t at_revision,
            std::optional<int32_t> with_schema_id = std::nullopt)
      : partition(in_partition),
        offset(at_offset),
        timestamp_ms(at_ms),
        revision(at_revision),
        schema_id(with_schema_id) {}

  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
  uint64_t revision = 0;
  // The registry schema id a value_format: registry value was decoded with.
  std::optional<int32_t> schema_id;
};

// The LMDB key for a Kafka key (non-empty).
std::string StoreKey(std::string_view key);

// True if `store_key` is the hashed form of a long key.
inline bool IsLongStoreKey(std::string_view store_key) {
  return store_key.size() == kLongKeyThreshold;
}

// Appends the encoded record to `out` (cleared first). `original`: the record's bytes as
// read from Kafka, kept beside a decoded value (needs meta.schema_id); null: none.
void EncodeRecord(std::string_view key, std::string_view value, const EntryMeta& meta,
                  std::string* out, const std::string* original = nullptr);

struct DecodedRecord {
  EntryMeta meta;
  std::string_view key;  // the whole key (from the value for long keys, else store_key)
  std::string_view value;
  std::optional<std::string_view> original;  // see EncodeRecord
};

// Decodes a stored record; nullopt if it is malformed (a corrupt or foreign store).
// The views point into `store_key` and `stored`.
std::optional<DecodedRecord> DecodeRecord(std::string_view store_key, std::string_view stored);

}  // namespace cachecar::store
