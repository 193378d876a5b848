// How the history log is laid out in LMDB. Internal to the store. Pure functions;
// thread-safe.
//
// Key: the revision, 8 bytes big-endian, so LMDB's order is revision order and appends go
// to the last page.
// Value: one change in a flat little-endian layout:
//   u8 flags (1: put, 2: has prev, 4: topic reset) | u16 topic len, topic | u32 key len, key |
//   [u32 value len, value] | i32 partition, i64 offset, i64 timestamp_ms |
//   [u32 prev value len, prev value, i32 partition, i64 offset, i64 timestamp_ms, u64 revision] |
//   [i32 schema id (flag 8)] | [i32 prev schema id (flag 16)] |
//   [u32 original len, original (flag 32)] | [u32 prev original len, prev original (flag 64)]
// What registry topics add (schema ids, original wire-format bytes) comes last, so earlier
// versions refuse such a record (trailing bytes) rather than misread it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "store/entry.h"
#include "store/record_codec.h"

namespace cachecar::store {

std::array<char, 8> RevisionKey(uint64_t revision);
uint64_t RevisionFromKey(std::string_view key);

// Starts a history record in `out` (cleared first): everything but the previous entry.
// `value` null: a delete. meta.revision is not stored (the key holds it).
void EncodeHistoryHead(std::string_view topic, std::string_view key, const std::string* value,
                       const EntryMeta& meta, std::string* out);
// Adds the entry the change replaced to a record EncodeHistoryHead started.
void AppendHistoryPrev(const DecodedRecord& prev, std::string* out);

// Ends a record with what a registry topic adds, if anything: the schema ids of the change
// and of the entry it replaced (`prev`, null if none), and their original wire-format
// bytes (`original`, null if none kept). After AppendHistoryPrev.
void AppendHistoryRegistry(const EntryMeta& meta, const std::string* original,
                           const DecodedRecord* prev, std::string* out);

// A record saying the topic was emptied to be read again (no key, no value).
void EncodeTopicReset(std::string_view topic, std::string* out);
// Whether a record is such a reset (false for a malformed one).
bool IsTopicReset(std::string_view in);

// The topic and key of a history record, without copying: the views point into `in`.
// False if the record is malformed.
bool PeekHistory(std::string_view in, std::string_view* topic, std::string_view* key);

// Decodes the record stored under `revision`. False if it is malformed.
bool DecodeHistory(uint64_t revision, std::string_view in, HistoryEvent* ev);

}  // namespace cachecar::store
