#include "store/history_codec.h"

#include <cstring>

namespace cachecar::store {
namespace {

constexpr uint8_t kHistoryPut = 1, kHistoryHasPrev = 2, kHistoryTopicReset = 4,
                  kHistorySchemaId = 8, kHistoryPrevSchemaId = 16, kHistoryOriginal = 32,
                  kHistoryPrevOriginal = 64;

template <typename T>
void PutFixed(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

void PutBytes(std::string* out, std::string_view b, bool short_length = false) {
  if (short_length) {
    PutFixed<uint16_t>(out, static_cast<uint16_t>(b.size()));
  } else {
    PutFixed<uint32_t>(out, static_cast<uint32_t>(b.size()));
  }
  out->append(b);
}

void PutMeta(std::string* out, const EntryMeta& m) {
  PutFixed<int32_t>(out, m.partition);
  PutFixed<int64_t>(out, m.offset);
  PutFixed<int64_t>(out, m.timestamp_ms);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  bool Fixed(T* v) {
    if (in_.size() < sizeof(T)) return false;
    std::memcpy(v, in_.data(), sizeof(T));
    in_.remove_prefix(sizeof(T));
    return true;
  }
  bool Bytes(std::string* out, bool short_length = false) {
    uint32_t n = 0;
    if (short_length) {
      uint16_t n16;
      if (!Fixed(&n16)) return false;
      n = n16;
    } else if (!Fixed(&n)) {
      return false;
    }
    if (in_.size() < n) return false;
    out->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool Meta(EntryMeta* m) {
    return Fixed(&m->partition) && Fixed(&m->offset) && Fixed(&m->timestamp_ms);
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

}  // namespace

std::array<char, 8> RevisionKey(uint64_t rev) {
  std::array<char, 8> k;
  for (int i = 0; i < 8; ++i) k[i] = static_cast<char>(rev >> (56 - 8 * i));
  return k;
}

uint64_t RevisionFromKey(std::string_view k) {
  uint64_t rev = 0;
  for (unsigned char c : k.substr(0, 8)) rev = (rev << 8) | c;
  return rev;
}

void EncodeHistoryHead(std::string_view topic, std::string_view key, const std::string* value,
                       const EntryMeta& meta, std::string* out) {
  out->clear();
  out->push_back(static_cast<char>(value != nullptr ? kHistoryPut : 0));
  PutBytes(out, topic, /*short_length=*/true);
  PutBytes(out, key);
  if (value != nullptr) PutBytes(out, *value);
  PutMeta(out, meta);
}

void AppendHistoryPrev(const DecodedRecord& prev, std::string* out) {
  (*out)[0] = static_cast<char>((*out)[0] | kHistoryHasPrev);
  PutBytes(out, prev.value);
  PutMeta(out, prev.meta);
  PutFixed<uint64_t>(out, prev.meta.revision);
}

void AppendHistoryRegistry(const EntryMeta& meta, const std::string* original,
                           const DecodedRecord* prev, std::string* out) {
  auto flag = [&](uint8_t f) { (*out)[0] = static_cast<char>((*out)[0] | f); };
  if (meta.schema_id) {
    flag(kHistorySchemaId);
    PutFixed<int32_t>(out, *meta.schema_id);
  }
  if (prev != nullptr && prev->meta.schema_id) {
    flag(kHistoryPrevSchemaId);
    PutFixed<int32_t>(out, *prev->meta.schema_id);
  }
  if (original != nullptr) {
    flag(kHistoryOriginal);
    PutBytes(out, *original);
  }
  if (prev != nullptr && prev->original) {
    flag(kHistoryPrevOriginal);
    PutBytes(out, *prev->original);
  }
}

void EncodeTopicReset(std::string_view topic, std::string* out) {
  out->clear();
  out->push_back(static_cast<char>(kHistoryTopicReset));
  PutBytes(out, topic, /*short_length=*/true);
  PutBytes(out, std::string_view());
  PutMeta(out, EntryMeta{0, -1, -1, 0});
}

bool IsTopicReset(std::string_view in) {
  return !in.empty() && (static_cast<uint8_t>(in[0]) & kHistoryTopicReset) != 0;
}

bool PeekHistory(std::string_view in, std::string_view* topic, std::string_view* key) {
  if (in.size() < 3) return false;
  uint16_t tn;
  std::memcpy(&tn, in.data() + 1, sizeof(tn));
  in.remove_prefix(3);
  if (in.size() < tn + sizeof(uint32_t)) return false;
  *topic = in.substr(0, tn);
  in.remove_prefix(tn);
  uint32_t kn;
  std::memcpy(&kn, in.data(), sizeof(kn));
  in.remove_prefix(sizeof(kn));
  if (in.size() < kn) return false;
  *key = in.substr(0, kn);
  return true;
}

bool DecodeHistory(uint64_t revision, std::string_view in, HistoryEvent* ev) {
  Reader r(in);
  uint8_t flags;
  if (!r.Fixed(&flags) || !r.Bytes(&ev->topic, true) || !r.Bytes(&ev->key)) return false;
  ev->revision = revision;
  ev->topic_reset = (flags & kHistoryTopicReset) != 0;
  if (flags & kHistoryPut) {
    std::string value;
    if (!r.Bytes(&value)) return false;
    ev->value = std::move(value);
  } else {
    ev->value.reset();
  }
  if (!r.Meta(&ev->meta)) return false;
  ev->meta.revision = revision;
  ev->meta.schema_id.reset();  // unless the record ends with one
  if (flags & kHistoryHasPrev) {
    Entry prev;
    prev.key = ev->key;
    if (!r.Bytes(&prev.value) || !r.Meta(&prev.meta) || !r.Fixed(&prev.meta.revision)) {
      return false;
    }
    ev->prev = std::move(prev);
  } else {
    ev->prev.reset();
  }
  if (flags & kHistorySchemaId) {
    int32_t id = 0;
    if (!r.Fixed(&id)) return false;
    ev->meta.schema_id = id;
  }
  if (flags & kHistoryPrevSchemaId) {
    int32_t id = 0;
    if (!ev->prev || !r.Fixed(&id)) return false;
    ev->prev->meta.schema_id = id;
  }
  ev->original.reset();
  if (flags & kHistoryOriginal) {
    std::string original;
    if (!ev->value || !r.Bytes(&original)) return false;
    ev->original = std::move(original);
  }
  if (flags & kHistoryPrevOriginal) {
    std::string original;
    if (!ev->prev || !r.Bytes(&original)) return false;
    ev->prev->original = std::move(original);
  }
  return r.done();
}

}  // namespace cachecar::store
