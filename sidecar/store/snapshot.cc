#include "store/snapshot.h"

#include <algorithm>
#include <array>

#include "store/history_codec.h"
#include "store/read_txn_pool.h"

namespace cachecar::store {

Snapshot::Snapshot(Snapshot&& other) noexcept
    : tables_(other.tables_), pool_(other.pool_), txn_(other.txn_), revision_(other.revision_) {
  other.txn_ = nullptr;
}

Snapshot::~Snapshot() {
  if (txn_ != nullptr) pool_->Release(txn_);
}

Result<std::optional<DecodedRecord>> Snapshot::GetView(size_t topic, std::string_view key) const {
  // Short keys are stored as they are: no copy to build the store key.
  std::string long_key;
  std::string_view store_key = key;
  if (key.size() >= kLongKeyThreshold) {
    long_key = StoreKey(key);
    store_key = long_key;
  }
  MDB_val k = Val(store_key), v;
  int rc = mdb_get(txn_, tables_->topics.at(topic), &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<DecodedRecord>();
  if (rc != 0) return LmdbError("get", rc);
  // For short keys, point the key view at the caller's key rather than at long_key's
  // temporary; for long keys DecodeRecord takes it from the stored value.
  auto rec = DecodeRecord(long_key.empty() ? key : std::string_view(), View(v));
  if (!rec) return Status(Code::kDataLoss, "malformed record in store", "STORE_CORRUPT");
  // A long key's hash matched: confirm it really is this key.
  if (rec->key != key) return std::optional<DecodedRecord>();
  return rec;
}

Result<std::optional<Entry>> Snapshot::Get(size_t topic, std::string_view key) const {
  Result<std::optional<DecodedRecord>> rec = GetView(topic, key);
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) return std::optional<Entry>();
  const DecodedRecord& r = **rec;
  return std::optional<Entry>(Entry{std::string(key), std::string(r.value), r.meta,
                                    r.original ? std::optional<std::string>(*r.original)
                                               : std::nullopt});
}

Result<ScanPage> Snapshot::Scan(size_t topic, std::string_view prefix, std::string_view cursor,
                                size_t limit, size_t max_bytes) const {
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn_, tables_->topics.at(topic), &cur);
  if (rc != 0) return LmdbError("cursor_open", rc);
  CursorGuard guard = GuardCursor(cur);
  limit = std::max<size_t>(limit, 1);
  // Stored keys keep only the first kLongKeyPrefix bytes of long keys, so range on that
  // much of the prefix and check the rest against the whole key.
  std::string_view range_prefix = prefix.substr(0, std::min(prefix.size(), kLongKeyPrefix));
  // The cursor is the whole key of the last entry sent. Stored keys of kLongKeyPrefix bytes
  // or more that share their first kLongKeyPrefix bytes (a "group") are contiguous in LMDB,
  // but their stored order is not their keys' order (a hash ends the long ones), so a scan
  // orders each group by whole key and resumes at the start of the cursor's group.
  std::string start(cursor.empty() ? range_prefix : cursor.substr(0, kLongKeyPrefix));
  if (start < range_prefix) start = range_prefix;
  auto wanted = [&](std::string_view key) {
    return key.substr(0, prefix.size()) == prefix && (cursor.empty() || key > cursor);
  };
  ScanPage page;
  size_t bytes = 0;
  auto full = [&] {
    return page.entries.size() >= limit || (bytes >= max_bytes && !page.entries.empty());
  };
  auto emit = [&](const DecodedRecord& r) {
    bytes += r.key.size() + r.value.size();
    page.entries.push_back(Entry{std::string(r.key), std::string(r.value), r.meta,
                                 r.original ? std::optional<std::string>(*r.original)
                                            : std::nullopt});
  };
  auto corrupt = [] {
    return Status(Code::kDataLoss, "malformed record in store", "STORE_CORRUPT");
  };
  auto key_less = [](const DecodedRecord& a, const DecodedRecord& b) { return a.key < b.key; };

  MDB_val k = Val(start), v;
  rc = start.empty() ? mdb_cursor_get(cur, &k, &v, MDB_FIRST)
                     : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  while (rc == 0) {
    std::string_view sk = View(k);
    if (sk.substr(0, range_prefix.size()) != range_prefix) break;
    if (sk.size() < kLongKeyPrefix) {
      std::optional<DecodedRecord> rec = DecodeRecord(sk, View(v));
      if (!rec) return corrupt();
      if (wanted(rec->key)) {
        if (full()) {
          page.next_cursor = page.entries.back().key;
          return page;
        }
        emit(*rec);
      }
      rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
      continue;
    }
    // A group: keep the smallest wanted keys, one more than the page can still hold (so a
    // full page knows whether more remain). The views point into the map; nothing is copied
    // and memory stays bounded by the page size, whatever the group's size.
    const std::string group(sk.substr(0, kLongKeyPrefix));
    const size_t keep = (limit > page.entries.size() ? limit - page.entries.size() : 0) + 1;
    std::vector<DecodedRecord> best;  // a max-heap by key
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      sk = View(k);
      if (sk.size() < kLongKeyPrefix || sk.substr(0, kLongKeyPrefix) != group) break;
      std::optional<DecodedRecord> rec = DecodeRecord(sk, View(v));
      if (!rec) return corrupt();
      if (!wanted(rec->key)) continue;
      best.push_back(*rec);
      std::push_heap(best.begin(), best.end(), key_less);
      if (best.size() > keep) {
        std::pop_heap(best.begin(), best.end(), key_less);
        best.pop_back();
      }
    }
    std::sort_heap(best.begin(), best.end(), key_less);
    for (const DecodedRecord& r : best) {
      if (full()) {
        page.next_cursor = page.entries.back().key;
        return page;
      }
      emit(r);
    }
  }
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cursor_get", rc);
  return page;
}

Result<HistoryPage> Snapshot::ReadHistory(uint64_t after, size_t limit, size_t max_bytes,
                                          const HistoryFilter& filter) const {
  HistoryPage page;
  page.revision = revision_;
  page.last = after;
  if (after >= revision_) return page;
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn_, tables_->history, &cur);
  if (rc != 0) return LmdbError("cursor_open history", rc);
  CursorGuard guard = GuardCursor(cur);
  std::array<char, 8> start = RevisionKey(after + 1);
  MDB_val k{start.size(), start.data()}, v;
  rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cursor_get history", rc);
  uint64_t first = rc == 0 ? RevisionFromKey(View(k)) : revision_ + 1;
  if (first != after + 1) {
    // Revisions are contiguous: a gap at the start means they were trimmed (or this store
    // predates the log).
    page.compacted = true;
    page.oldest = first;
    return page;
  }
  size_t bytes = 0, looked = 0;
  for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    uint64_t r = RevisionFromKey(View(k));
    if (r > revision_) break;
    if (looked >= limit || (bytes >= max_bytes && !page.events.empty())) break;
    ++looked;
    page.last = r;
    if (filter && !IsTopicReset(View(v))) {  // a reset concerns every watcher of its topic
      std::string_view topic, key;
      if (!PeekHistory(View(v), &topic, &key)) {
        return Status(Code::kDataLoss, "malformed history record in store", "STORE_CORRUPT");
      }
      if (!filter(topic, key)) continue;
    }
    HistoryEvent ev;
    if (!DecodeHistory(r, View(v), &ev)) {
      return Status(Code::kDataLoss, "malformed history record in store", "STORE_CORRUPT");
    }
    bytes += ev.key.size() + (ev.value ? ev.value->size() : 0) +
             (ev.prev ? ev.prev->value.size() : 0);
    page.events.push_back(std::move(ev));
  }
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cursor_get history", rc);
  return page;
}

}  // namespace cachecar::store
