#include "store/record_codec.h"

#include <openssl/sha.h>

#include <cstring>

namespace cachecar::store {
namespace {

constexpr uint8_t kVersion = 1;
constexpr uint8_t kVersionWithSchemaId = 2;
constexpr uint8_t kVersionWithOriginal = 3;
constexpr uint8_t kFlagLongKey = 1;
constexpr size_t kHeaderSize = 1 + 1 + 4 + 8 + 8 + 8;

template <typename T>
void Put(std::string* out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // hosts we build for are little-endian
  out->append(buf, sizeof(T));
}

template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the store format is little-endian");

// Reads a u32 length and that many bytes at *pos into *out; false if they run past the end.
bool TakeLengthPrefixed(std::string_view stored, size_t* pos, std::string_view* out) {
  if (stored.size() < *pos + 4) return false;
  uint32_t len = Get<uint32_t>(stored.data() + *pos);
  *pos += 4;
  if (stored.size() - *pos < len) return false;
  *out = stored.substr(*pos, len);
  *pos += len;
  return true;
}

}  // namespace

std::string StoreKey(std::string_view key) {
  if (key.size() < kLongKeyThreshold) return std::string(key);
  std::string out(key.substr(0, kLongKeyPrefix));
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  out.append(reinterpret_cast<const char*>(digest), sizeof(digest));
  return out;
}

void EncodeRecord(std::string_view key, std::string_view value, const EntryMeta& meta,
                  std::string* out, const std::string* original) {
  out->clear();
  bool long_key = key.size() >= kLongKeyThreshold;
  if (!meta.schema_id) original = nullptr;  // kept only beside a decoded value
  out->reserve(kHeaderSize + 4 + value.size() + (long_key ? 4 + key.size() : 0) +
               (original != nullptr ? 4 + original->size() : 0));
  out->push_back(static_cast<char>(original != nullptr ? kVersionWithOriginal
                                   : meta.schema_id    ? kVersionWithSchemaId
                                                       : kVersion));
  out->push_back(static_cast<char>(long_key ? kFlagLongKey : 0));
  Put<int32_t>(out, meta.partition);
  Put<int64_t>(out, meta.offset);
  Put<int64_t>(out, meta.timestamp_ms);
  Put<uint64_t>(out, meta.revision);
  if (meta.schema_id) Put<int32_t>(out, *meta.schema_id);
  if (original != nullptr) {
    Put<uint32_t>(out, static_cast<uint32_t>(original->size()));
    out->append(*original);
  }
  if (long_key) {
    Put<uint32_t>(out, static_cast<uint32_t>(key.size()));
    out->append(key);
  }
  out->append(value);
}

std::optional<DecodedRecord> DecodeRecord(std::string_view store_key, std::string_view stored) {
  const uint8_t version = stored.empty() ? 0 : static_cast<uint8_t>(stored[0]);
  if (version != kVersion && version != kVersionWithSchemaId &&
      version != kVersionWithOriginal) {
    return std::nullopt;
  }
  if (stored.size() < kHeaderSize + (version != kVersion ? 4 : 0)) return std::nullopt;
  const char* p = stored.data();
  uint8_t flags = static_cast<uint8_t>(p[1]);
  DecodedRecord r;
  r.meta.partition = Get<int32_t>(p + 2);
  r.meta.offset = Get<int64_t>(p + 6);
  r.meta.timestamp_ms = Get<int64_t>(p + 14);
  r.meta.revision = Get<uint64_t>(p + 22);
  size_t pos = kHeaderSize;
  if (version != kVersion) {
    r.meta.schema_id = Get<int32_t>(p + pos);
    pos += 4;
  }
  if (version == kVersionWithOriginal) {
    std::string_view original;
    if (!TakeLengthPrefixed(stored, &pos, &original)) return std::nullopt;
    r.original = original;
  }
  if (flags & kFlagLongKey) {
    if (!TakeLengthPrefixed(stored, &pos, &r.key)) return std::nullopt;
  } else {
    r.key = store_key;
  }
  r.value = stored.substr(pos);
  return r;
}

}  // namespace cachecar::store
