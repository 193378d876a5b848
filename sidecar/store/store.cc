#include "store/store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <iterator>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "store/history_codec.h"
#include "store/meta_keys.h"
#include "store/store_file.h"
#include "store/view_codec.h"

namespace cachecar::store {
namespace {

constexpr const char* kFormatVersion = kStoreFormat;

// In the store's directory, for SyncMode::kNone: the boot id of the boot in which the
// store was last opened and not yet closed cleanly (its writes may sit unsynced in that
// boot's page cache), or kCleanState once every write is on disk.
constexpr char kSyncStateFile[] = "sync-state";
constexpr char kCleanState[] = "clean";

// The first line of `path`, or "" if it cannot be read.
std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

// Replaces `dir`/`name` with `content` durably: a temporary file, fsync, rename, fsync of
// the directory.
Status WriteDurably(const std::string& dir, const std::string& name, const std::string& content) {
  const std::string path = dir + "/" + name, tmp = path + ".tmp";
  auto fail = [&](const char* what) {
    return Status(Code::kInternal,
                  std::string("cannot write ") + path + " (" + what + "): " + std::strerror(errno),
                  errno == ENOSPC ? "DISK_FULL" : "STORE_IO");
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail("open");
  const std::string line = content + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return fail("write");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename");
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fail("open directory");
  ok = ::fsync(dfd) == 0;
  ::close(dfd);
  return ok ? Status::Ok() : fail("fsync directory");
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const Options& options) {
  std::unique_ptr<Store> s(new Store(options));
  Status st = s->Init();
  if (!st.ok()) return st;
  return s;
}

Result<std::unique_ptr<Store>> Store::OpenOrRecreate(const Options& options, Status* recreated) {
  *recreated = Status::Ok();
  Result<std::unique_ptr<Store>> s = Open(options);
  if (s.ok() || s.status().code() != Code::kDataLoss) return s;
  *recreated = s.status();
  // Only LMDB's own files and the sync marker: the directory may be a mount point shared
  // with nothing else, but it is not ours to empty.
  for (const char* name : {"data.mdb", "lock.mdb", kSyncStateFile}) {
    std::error_code ec;
    std::filesystem::remove(std::filesystem::path(options.path) / name, ec);
    if (ec) {
      return Status(Code::kInternal,
                    "cannot remove unusable store file " + options.path + "/" + name + ": " +
                        ec.message() + " (it was unusable: " + s.status().message() + ")",
                    "STORE_CORRUPT");
    }
  }
  return Open(options);
}

Store::~Store() {
  read_pool_.reset();  // its transactions before the environment
  if (env_ == nullptr) return;
  // Unsynced writes reach the disk now, so a machine restart after a clean stop keeps the
  // store. If this fails the marker still names this boot: a later boot rebuilds.
  if (sync_mode_ == SyncMode::kNone && mdb_env_sync(env_, 1) == 0) {
    (void)WriteDurably(options_.path, kSyncStateFile, kCleanState);
  }
  mdb_env_close(env_);
}

Status Store::CheckSyncState(const std::string& boot_id) const {
  const std::string state = ReadLine(options_.path + "/" + kSyncStateFile);
  if (state.empty() || state == kCleanState || state == boot_id) return Status::Ok();
  return Status(Code::kDataLoss,
                "store in " + options_.path + " was written without fsync (store.sync: none) " +
                    "in an earlier boot of this machine and not closed cleanly; the machine " +
                    "restarted since, so its last writes may be lost out of order",
                "STORE_UNSYNCED");
}

Status Store::Grow() {
  if (map_size_ >= options_.max_map_size_bytes) {
    return Status(Code::kResourceExhausted,
                  "the store is full: its map is at store.max_map_size_bytes (" +
                      std::to_string(options_.max_map_size_bytes) + ")",
                  "STORE_FULL");
  }
  uint64_t next = std::min(options_.max_map_size_bytes, map_size_ * 2);
  if (!read_pool_->map_lock().TryLockFor(std::chrono::seconds(1))) {
    return Status(Code::kUnavailable,
                  "the store's map must grow, but readers held snapshots for a second; "
                  "will try again",
                  "STORE_RESIZE_WAITING");
  }
  int rc = mdb_env_set_mapsize(env_, next);
  read_pool_->map_lock().Unlock();
  if (rc != 0) return LmdbError("set_mapsize", rc);
  map_size_ = next;
  map_resizes_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

Result<ApplyResult> Store::Apply(const WriteBatch& batch) {
  for (;;) {
    Result<ApplyResult> r = ApplyOnce(batch);
    if (r.ok() || r.status().reason() != "STORE_FULL") return r;
    Status grown = Grow();
    if (!grown.ok()) return grown;
  }
}

Status Store::Init() {
  std::error_code ec;
  std::filesystem::create_directories(options_.path, ec);
  if (ec) {
    return InvalidArgument("cannot create store directory " + options_.path + ": " +
                           ec.message());
  }
  boot_id_ = ReadLine(options_.boot_id_path);
  sync_mode_ = options_.sync;
  if (sync_mode_ == SyncMode::kNone && boot_id_.empty()) sync_mode_ = SyncMode::kData;
  Status sync_state = CheckSyncState(boot_id_);
  if (!sync_state.ok()) return sync_state;
  int rc = mdb_env_create(&env_);
  if (rc != 0) return LmdbError("env_create", rc);
  mdb_env_set_maxdbs(env_, static_cast<MDB_dbi>(options_.topics.size() + options_.views.size() + 8));
  mdb_env_set_maxreaders(env_, options_.max_readers);
  rc = mdb_env_set_mapsize(env_, options_.map_size_bytes);
  if (rc != 0) return LmdbError("set_mapsize", rc);
  // NOTLS: read transactions are not tied to threads (gRPC runs handlers on a pool).
  // NORDAHEAD: random point reads; readahead only wastes page cache.
  // SyncMode (above): MDB_NOSYNC, MDB_NOMETASYNC or neither.
  unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
  if (sync_mode_ == SyncMode::kNone) flags |= MDB_NOSYNC;
  if (sync_mode_ == SyncMode::kData) flags |= MDB_NOMETASYNC;
  rc = mdb_env_open(env_, options_.path.c_str(), flags, 0644);
  if (rc != 0) {
    Status st = LmdbError("open", rc);
    return Status(st.code(), "cannot open store in " + options_.path + ": " + st.message(),
                  st.reason());
  }
  // The marker names this boot before the first unsynced commit; a store that syncs its
  // commits first flushes what an unsynced run of this boot may have left in the cache.
  const std::string state = ReadLine(options_.path + "/" + kSyncStateFile);
  if (sync_mode_ == SyncMode::kNone && state != boot_id_) {
    Status st = WriteDurably(options_.path, kSyncStateFile, boot_id_);
    if (!st.ok()) return st;
  } else if (sync_mode_ != SyncMode::kNone && !state.empty() && state != kCleanState) {
    if ((rc = mdb_env_sync(env_, 1)) != 0) return LmdbError("env_sync", rc);
    Status st = WriteDurably(options_.path, kSyncStateFile, kCleanState);
    if (!st.ok()) return st;
  }
  read_pool_ = std::make_unique<ReadTxnPool>(env_, options_.max_readers);
  MDB_envinfo info;
  mdb_env_info(env_, &info);  // LMDB raises the map to the file's size if that is larger
  map_size_ = info.me_mapsize;

  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return LmdbError("txn_begin", rc);
  TxnGuard guard{txn};
  if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &tables_.meta)) != 0 ||
      (rc = mdb_dbi_open(txn, "positions", MDB_CREATE, &tables_.positions)) != 0 ||
      (rc = mdb_dbi_open(txn, "history", MDB_CREATE, &tables_.history)) != 0) {
    return LmdbError("dbi_open", rc);
  }
  MDB_val k = Val(kKeyFormat), v;
  rc = mdb_get(txn, tables_.meta, &k, &v);
  if (rc == MDB_NOTFOUND) {
    // A new store: stamp its format and a fresh identity.
    store_id_ = NewStoreId();
    MDB_val fv = Val(kFormatVersion), ik = Val(kKeyStoreId), iv = Val(store_id_);
    uint64_t zero = 0;
    MDB_val rk = Val(kKeyRevision), rv{sizeof(zero), &zero};
    if ((rc = mdb_put(txn, tables_.meta, &k, &fv, 0)) != 0 ||
        (rc = mdb_put(txn, tables_.meta, &ik, &iv, 0)) != 0 ||
        (rc = mdb_put(txn, tables_.meta, &rk, &rv, 0)) != 0) {
      return LmdbError("put meta", rc);
    }
  } else if (rc != 0) {
    return LmdbError("get format", rc);
  } else if (View(v) != kFormatVersion) {
    return Status(Code::kDataLoss,
                  "store in " + options_.path + " has format \"" + std::string(View(v)) +
                      "\", this cachecar reads \"" + kFormatVersion + "\"",
                  "STORE_INCOMPATIBLE");
  } else {
    MDB_val ik = Val(kKeyStoreId), iv, rk = Val(kKeyRevision), rv;
    if (mdb_get(txn, tables_.meta, &ik, &iv) != 0 || mdb_get(txn, tables_.meta, &rk, &rv) != 0 ||
        rv.mv_size != sizeof(uint64_t)) {
      return Status(Code::kDataLoss, "store in " + options_.path + " has no valid identity",
                    "STORE_CORRUPT");
    }
    store_id_ = std::string(View(iv));
    uint64_t rev;
    std::memcpy(&rev, rv.mv_data, sizeof(rev));
    revision_.store(rev, std::memory_order_release);
  }
  for (const auto& topic : options_.topics) {
    MDB_dbi dbi;
    std::string name = "t:" + topic;
    if ((rc = mdb_dbi_open(txn, name.c_str(), MDB_CREATE, &dbi)) != 0) {
      return LmdbError("dbi_open topic", rc);
    }
    tables_.topics.push_back(dbi);
  }
  views_of_.assign(options_.topics.size(), {});
  for (size_t v = 0; v < options_.views.size(); ++v) {
    const Options::ViewOf& view = options_.views[v];
    if (view.view >= options_.topics.size() || view.topic >= options_.topics.size() ||
        view.view == view.topic) {
      return Status(Code::kInvalidArgument, "view " + std::to_string(v) + " names no table");
    }
    MDB_dbi dbi;
    std::string name = std::string(kViewKeysDbPrefix) + options_.topics[view.view];
    if ((rc = mdb_dbi_open(txn, name.c_str(), MDB_CREATE, &dbi)) != 0) {
      return LmdbError("dbi_open view keys", rc);
    }
    view_keys_.push_back(dbi);
    views_of_[view.topic].push_back(v);
  }
  Status st = LoadOldestHistory(txn, revision());
  if (!st.ok()) return st;
  rc = mdb_txn_commit(guard.Release());
  if (rc != 0) return LmdbError("commit", rc);
  return Status::Ok();
}

Result<ApplyResult> Store::ApplyOnce(const WriteBatch& batch) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return LmdbError("txn_begin", rc);
  TxnGuard guard{txn};
  uint64_t rev = revision();
  ApplyResult result;
  MDB_cursor* history = nullptr;
  rc = mdb_cursor_open(txn, tables_.history, &history);
  if (rc != 0) return LmdbError("cursor_open history", rc);
  CursorGuard history_guard = GuardCursor(history);
  // A reset forgets the topic's positions and caught-up time, marks it as resetting,
  // tells watchers with one history record, and deletes a first chunk of its keys.
  for (size_t topic : batch.reset_topics) {
    MDB_cursor* cur = nullptr;
    std::string prefix = options_.topics.at(topic);
    prefix.push_back('\0');
    // Collect, then delete: a cursor left past the last entry by a delete cannot be asked
    // where it is (EINVAL).
    std::vector<std::string> position_keys;
    rc = mdb_cursor_open(txn, tables_.positions, &cur);
    if (rc != 0) return LmdbError("cursor_open positions", rc);
    CursorGuard pguard = GuardCursor(cur);
    MDB_val k = Val(prefix), v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && View(k).substr(0, prefix.size()) == prefix;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      position_keys.emplace_back(View(k));
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cursor_get positions", rc);
    pguard.reset();
    for (const auto& pk : position_keys) {
      MDB_val key = Val(pk);
      rc = mdb_del(txn, tables_.positions, &key, nullptr);
      if (rc != 0) return LmdbError("del position", rc);
    }
    std::string ck = CaughtUpKey(options_.topics.at(topic));
    MDB_val ckv = Val(ck);
    rc = mdb_del(txn, tables_.meta, &ckv, nullptr);
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("del caught_up", rc);
    std::string rk = ResettingKey(options_.topics.at(topic));
    MDB_val rkv = Val(rk), one{1, const_cast<char*>("1")};
    rc = mdb_put(txn, tables_.meta, &rkv, &one, 0);
    if (rc != 0) return LmdbError("put resetting", rc);
    EncodeTopicReset(options_.topics.at(topic), &history_scratch_);
    if (Status st = AppendHistory(history, &rev, &result); !st.ok()) return st;
    // Its views are emptied with it: their watchers are told too.
    for (size_t v : views_of_[topic]) {
      EncodeTopicReset(options_.topics.at(options_.views[v].view), &history_scratch_);
      if (Status st = AppendHistory(history, &rev, &result); !st.ok()) return st;
    }
  }
  {
    std::set<size_t> chunked = batch.reset_topics;
    chunked.insert(batch.continue_resets.begin(), batch.continue_resets.end());
    for (size_t topic : chunked) {
      Result<bool> empty = DeleteResetChunk(txn, topic);
      if (!empty.ok()) return empty.status();
      if (!*empty) result.resetting.insert(topic);
    }
  }
  for (const Mutation& m : batch.mutations) {
    std::string store_key = StoreKey(m.key);
    MDB_val k = Val(store_key);
    MDB_dbi dbi = tables_.topics.at(m.topic);
    // The entry being replaced or deleted goes into the history record: copy it out before
    // the write, which may reuse its page.
    MDB_val old;
    rc = mdb_get(txn, dbi, &k, &old);
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("get", rc);
    std::optional<DecodedRecord> prev;
    if (rc == 0) {
      prev = DecodeRecord(store_key.size() >= kLongKeyThreshold ? std::string_view() : m.key,
                          View(old));
      if (!prev) return Status(Code::kDataLoss, "malformed record in store", "STORE_CORRUPT");
      if (prev->key != m.key) prev.reset();  // a long key sharing the stored prefix+hash
    }
    if (!m.value && !prev) continue;  // deleting an absent key changes nothing
    const EntryMeta head{m.partition, m.offset, m.timestamp_ms, 0, m.value ? m.schema_id
                                                                          : std::nullopt};
    EncodeHistoryHead(options_.topics.at(m.topic), m.key, m.value ? &*m.value : nullptr, head,
                      &history_scratch_);
    if (prev) AppendHistoryPrev(*prev, &history_scratch_);
    const std::string* original = m.value && m.original ? &*m.original : nullptr;
    AppendHistoryRegistry(head, original, prev ? &*prev : nullptr, &history_scratch_);
    if (m.value) {
      EntryMeta meta{m.partition, m.offset, m.timestamp_ms, rev + 1, m.schema_id};
      EncodeRecord(m.key, *m.value, meta, &scratch_, original);
      MDB_val v = Val(scratch_);
      rc = mdb_put(txn, dbi, &k, &v, 0);
      if (rc != 0) return LmdbError("put", rc);
    } else {
      rc = mdb_del(txn, dbi, &k, nullptr);
      if (rc != 0) return LmdbError("del", rc);
    }
    if (Status st = AppendHistory(history, &rev, &result); !st.ok()) return st;
    const std::vector<size_t>& views = views_of_[m.topic];
    for (size_t j = 0; j < views.size(); ++j) {
      std::vector<std::string> keys;
      if (m.value && j < m.view_keys.size()) keys = m.view_keys[j];
      Status st = UpdateView(txn, history, views[j], m, std::move(keys), &rev, &result);
      if (!st.ok()) return st;
    }
  }
  // Trim the log to the last history_events changes.
  if (result.changes > 0 && rev > options_.history_events) {
    uint64_t keep_from = rev - options_.history_events + 1;
    MDB_val hk, hv;
    for (rc = mdb_cursor_get(history, &hk, &hv, MDB_FIRST);
         rc == 0 && RevisionFromKey(View(hk)) < keep_from;
         rc = mdb_cursor_get(history, &hk, &hv, MDB_GET_CURRENT)) {
      rc = mdb_cursor_del(history, 0);
      if (rc != 0) return LmdbError("trim history", rc);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("trim history", rc);
  }
  history_guard.reset();
  for (const auto& [tp, next_offset] : batch.positions) {
    std::string pk = PositionKey(options_.topics.at(tp.first), tp.second);
    MDB_val k = Val(pk), v{sizeof(next_offset), const_cast<int64_t*>(&next_offset)};
    rc = mdb_put(txn, tables_.positions, &k, &v, 0);
    if (rc != 0) return LmdbError("put position", rc);
  }
  for (const auto& [topic, ms] : batch.caught_up_ms) {
    std::string ck = CaughtUpKey(options_.topics.at(topic));
    MDB_val k = Val(ck), v{sizeof(ms), const_cast<int64_t*>(&ms)};
    rc = mdb_put(txn, tables_.meta, &k, &v, 0);
    if (rc != 0) return LmdbError("put caught_up", rc);
  }
  for (const auto& [topic, definition] : batch.definitions) {
    std::string dk = DefinitionKey(options_.topics.at(topic));
    MDB_val k = Val(dk), v = Val(definition);
    rc = mdb_put(txn, tables_.meta, &k, &v, 0);
    if (rc != 0) return LmdbError("put definition", rc);
  }
  for (const auto& [key, value] : batch.registry_schemas) {
    std::string mk = std::string(kRegistrySchemaPrefix) + key;
    MDB_val k = Val(mk), v = Val(value);
    rc = mdb_put(txn, tables_.meta, &k, &v, 0);
    if (rc != 0) return LmdbError("put registry schema", rc);
  }
  if (result.changes > 0) {
    MDB_val k = Val(kKeyRevision), v{sizeof(rev), &rev};
    rc = mdb_put(txn, tables_.meta, &k, &v, 0);
    if (rc != 0) return LmdbError("put revision", rc);
  }
  rc = mdb_txn_commit(guard.Release());
  if (rc != 0) return CommitError(rc, options_.path);
  // Publish after commit: readers never see a revision whose data is not readable.
  if (result.changes > 0) {
    uint64_t oldest = rev >= options_.history_events ? rev - options_.history_events + 1 : 1;
    // A store from before the log existed holds only what was applied since.
    oldest_history_.store(std::max(oldest, oldest_history_.load(std::memory_order_relaxed)),
                          std::memory_order_release);
  }
  revision_.store(rev, std::memory_order_release);
  result.revision = rev;
  return result;
}

Status Store::LoadOldestHistory(MDB_txn* txn, uint64_t revision) {
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn, tables_.history, &cur);
  if (rc != 0) return LmdbError("cursor_open history", rc);
  MDB_val k, v;
  rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
  mdb_cursor_close(cur);
  if (rc == MDB_NOTFOUND) {
    oldest_history_.store(revision + 1, std::memory_order_release);
    return Status::Ok();
  }
  if (rc != 0) return LmdbError("cursor_get history", rc);
  oldest_history_.store(RevisionFromKey(View(k)), std::memory_order_release);
  return Status::Ok();
}

Result<std::map<int32_t, int64_t>> Store::LoadPositions(size_t topic) const {
  SharedMapLock map_lock(&read_pool_->map_lock());
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return LmdbError("txn_begin", rc);
  TxnGuard guard{txn};
  MDB_cursor* cur = nullptr;
  rc = mdb_cursor_open(txn, tables_.positions, &cur);
  if (rc != 0) return LmdbError("cursor_open", rc);
  std::string prefix = options_.topics.at(topic);
  prefix.push_back('\0');
  std::map<int32_t, int64_t> out;
  MDB_val k = Val(prefix), v;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    std::string_view key = View(k);
    if (key.size() != prefix.size() + 4 || key.substr(0, prefix.size()) != prefix) break;
    const auto* b = reinterpret_cast<const unsigned char*>(key.data() + prefix.size());
    int32_t partition = static_cast<int32_t>((uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) |
                                             (uint32_t{b[2]} << 8) | uint32_t{b[3]});
    int64_t off;
    if (v.mv_size != sizeof(off)) break;
    std::memcpy(&off, v.mv_data, sizeof(off));
    out[partition] = off;
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cursor_get", rc);
  return out;
}

Result<bool> Store::DeleteResetChunk(MDB_txn* txn, size_t topic) {
  std::string rk = ResettingKey(options_.topics.at(topic));
  MDB_val rkv = Val(rk), v;
  int rc = mdb_get(txn, tables_.meta, &rkv, &v);
  if (rc == MDB_NOTFOUND) return true;  // not resetting
  if (rc != 0) return LmdbError("get resetting", rc);
  // The topic's table, then its views' tables and reverse tables.
  std::vector<MDB_dbi> tables = {tables_.topics.at(topic)};
  for (size_t view : views_of_[topic]) {
    tables.push_back(tables_.topics.at(options_.views[view].view));
    tables.push_back(view_keys_[view]);
  }
  size_t n = 0;
  const size_t chunk = std::max<size_t>(options_.reset_chunk_keys, 1);
  for (MDB_dbi dbi : tables) {
    MDB_cursor* cur = nullptr;
    rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0) return LmdbError("cursor_open", rc);
    CursorGuard guard = GuardCursor(cur);
    MDB_val k;
    for (;; ++n) {
      // From the first key each time: a cursor past a deleted last entry cannot move on.
      rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
      if (rc == MDB_NOTFOUND) break;
      if (rc != 0) return LmdbError("cursor_get", rc);
      if (n == chunk) return false;
      rc = mdb_cursor_del(cur, 0);
      if (rc != 0) return LmdbError("del", rc);
    }
  }
  rc = mdb_del(txn, tables_.meta, &rkv, nullptr);
  if (rc != 0) return LmdbError("del resetting", rc);
  return true;
}

Status Store::AppendHistory(MDB_cursor* history, uint64_t* rev, ApplyResult* result) {
  ++*rev;
  ++result->changes;
  std::array<char, 8> hk = RevisionKey(*rev);
  MDB_val hkv{hk.size(), hk.data()}, hv = Val(history_scratch_);
  int rc = mdb_cursor_put(history, &hkv, &hv, MDB_APPEND);
  return rc == 0 ? Status::Ok() : LmdbError("put history", rc);
}

Status Store::UpdateView(MDB_txn* txn, MDB_cursor* history, size_t v, const Mutation& m,
                         std::vector<std::string> keys, uint64_t* rev, ApplyResult* result) {
  const std::string& view_name = options_.topics.at(options_.views[v].view);
  const MDB_dbi table = tables_.topics.at(options_.views[v].view);
  const MDB_dbi reverse = view_keys_[v];
  keys.erase(std::remove(keys.begin(), keys.end(), std::string()), keys.end());
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  // The view keys the entry was under.
  std::string reverse_key = StoreKey(m.key);
  MDB_val rk = Val(reverse_key), rv;
  int rc = mdb_get(txn, reverse, &rk, &rv);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("get view keys", rc);
  std::vector<std::string> old;
  if (rc == 0) {
    std::optional<DecodedViewKeys> d = DecodeViewKeys(View(rv));
    if (!d) return Status(Code::kDataLoss, "malformed view keys in store", "STORE_CORRUPT");
    if (d->topic_key == m.key) old.assign(d->view_keys.begin(), d->view_keys.end());
  }
  std::vector<std::string> touched;
  std::set_union(old.begin(), old.end(), keys.begin(), keys.end(), std::back_inserter(touched));
  std::vector<std::string> kept;  // the view keys the entry is under after this change
  for (const std::string& view_key : touched) {
    bool member = std::binary_search(keys.begin(), keys.end(), view_key);
    std::string store_key = StoreKey(view_key);
    MDB_val k = Val(store_key), cur;
    rc = mdb_get(txn, table, &k, &cur);
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("get view", rc);
    std::optional<DecodedRecord> prev;
    std::vector<ViewMember> members;
    if (rc == 0) {
      prev = DecodeRecord(IsLongStoreKey(store_key) ? std::string_view() : view_key, View(cur));
      std::optional<std::vector<ViewMember>> d;
      if (prev) d = DecodeViewValue(prev->value);
      if (!d) return Status(Code::kDataLoss, "malformed view entry in store", "STORE_CORRUPT");
      if (prev->key != view_key) {
        prev.reset();  // a long key sharing the stored prefix+hash
      } else {
        members = std::move(*d);
      }
    }
    auto at = std::lower_bound(members.begin(), members.end(), m.key,
                               [](const ViewMember& a, const std::string& b) { return a.key < b; });
    const bool present = at != members.end() && at->key == m.key;
    if (member && !present && members.size() >= options_.views[v].max_entries_per_key) {
      auto& overflow = result->view_overflows[v];
      if (overflow.first++ == 0) overflow.second = {view_key, m.key};
      member = false;
    }
    if (member) kept.push_back(view_key);
    if (present && member) {
      at->value = *m.value;
    } else if (present) {
      members.erase(at);
    } else if (member) {
      members.insert(at, ViewMember{m.key, *m.value});
    } else {
      continue;
    }
    std::optional<std::string> value;
    if (!members.empty()) {
      value.emplace();
      EncodeViewValue(members, &*value);
      if (prev && prev->value == *value) continue;  // e.g. the same record read again
    }
    // Copy what the history record needs before the write, which may reuse its page.
    EncodeHistoryHead(view_name, view_key, value ? &*value : nullptr,
                      EntryMeta{m.partition, m.offset, m.timestamp_ms, 0}, &history_scratch_);
    if (prev) AppendHistoryPrev(*prev, &history_scratch_);
    if (value) {
      EncodeRecord(view_key, *value, EntryMeta{m.partition, m.offset, m.timestamp_ms, *rev + 1},
                   &scratch_);
      MDB_val nv = Val(scratch_);
      rc = mdb_put(txn, table, &k, &nv, 0);
      if (rc != 0) return LmdbError("put view", rc);
    } else {
      rc = mdb_del(txn, table, &k, nullptr);
      if (rc != 0) return LmdbError("del view", rc);
    }
    if (Status st = AppendHistory(history, rev, result); !st.ok()) return st;
  }
  if (kept.empty()) {
    rc = mdb_del(txn, reverse, &rk, nullptr);
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("del view keys", rc);
  } else if (kept != old) {
    EncodeViewKeys(m.key, kept, &scratch_);
    MDB_val nv = Val(scratch_);
    rc = mdb_put(txn, reverse, &rk, &nv, 0);
    if (rc != 0) return LmdbError("put view keys", rc);
  }
  return Status::Ok();
}

Result<bool> Store::ContinueReset(size_t topic) {
  WriteBatch b;
  b.continue_resets.insert(topic);
  Result<ApplyResult> r = Apply(b);
  if (!r.ok()) return r.status();
  return r->resetting.count(topic) == 0;
}

Result<std::optional<std::string>> Store::GetMeta(const std::string& key) const {
  SharedMapLock map_lock(&read_pool_->map_lock());
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return LmdbError("txn_begin", rc);
  TxnGuard guard{txn};
  MDB_val k = Val(key), v;
  rc = mdb_get(txn, tables_.meta, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string>();
  if (rc != 0) return LmdbError("get meta", rc);
  return std::optional<std::string>(View(v));
}

Result<bool> Store::Resetting(size_t topic) const {
  Result<std::optional<std::string>> v = GetMeta(ResettingKey(options_.topics.at(topic)));
  if (!v.ok()) return v.status();
  return v->has_value();
}

Result<std::optional<std::string>> Store::LoadDefinition(size_t topic) const {
  return GetMeta(DefinitionKey(options_.topics.at(topic)));
}

Result<std::map<std::string, std::string>> Store::LoadRegistrySchemas() const {
  SharedMapLock map_lock(&read_pool_->map_lock());
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return LmdbError("txn_begin", rc);
  TxnGuard guard{txn};
  MDB_cursor* cursor = nullptr;
  rc = mdb_cursor_open(txn, tables_.meta, &cursor);
  if (rc != 0) return LmdbError("cursor_open", rc);
  std::map<std::string, std::string> out;
  std::string prefix(kRegistrySchemaPrefix);
  MDB_val k = Val(prefix), v;
  for (rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
    std::string_view key = View(k);
    if (key.substr(0, prefix.size()) != prefix) break;
    out.emplace(std::string(key.substr(prefix.size())), std::string(View(v)));
  }
  mdb_cursor_close(cursor);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("scan registry schemas", rc);
  return out;
}

Result<std::optional<int64_t>> Store::LoadCaughtUp(size_t topic) const {
  Result<std::optional<std::string>> v = GetMeta(CaughtUpKey(options_.topics.at(topic)));
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<int64_t>();
  int64_t ms = 0;
  if ((*v)->size() != sizeof(ms)) {
    return Status(Code::kDataLoss, "malformed caught-up time in store", "STORE_CORRUPT");
  }
  std::memcpy(&ms, (*v)->data(), sizeof(ms));
  return std::optional<int64_t>(ms);
}

Result<Snapshot> Store::NewSnapshot() const {
  MDB_txn* txn = read_pool_->Acquire();
  if (txn == nullptr) {
    return Status(Code::kResourceExhausted, "lmdb: no reader slot for a read transaction",
                  "STORE_BUSY");
  }
  MDB_val k = Val(kKeyRevision), v;
  uint64_t rev = 0;
  if (mdb_get(txn, tables_.meta, &k, &v) == 0 && v.mv_size == sizeof(rev)) {
    std::memcpy(&rev, v.mv_data, sizeof(rev));
  }
  return Snapshot(&tables_, read_pool_.get(), txn, rev);
}

unsigned Store::lmdb_flags() const {
  unsigned flags = 0;
  mdb_env_get_flags(env_, &flags);
  return flags;
}

Result<uint64_t> Store::KeyCount(size_t topic) const {
  SharedMapLock map_lock(&read_pool_->map_lock());
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return LmdbError("txn_begin", rc);
  TxnGuard guard{txn};
  MDB_stat stat;
  rc = mdb_stat(txn, tables_.topics.at(topic), &stat);
  if (rc != 0) return LmdbError("stat", rc);
  return static_cast<uint64_t>(stat.ms_entries);
}

Store::Usage Store::GetUsage() const {
  SharedMapLock map_lock(&read_pool_->map_lock());
  MDB_envinfo info;
  MDB_stat stat;
  Usage u;
  u.map_resizes = map_resizes_.load(std::memory_order_relaxed);
  if (mdb_env_info(env_, &info) == 0 && mdb_env_stat(env_, &stat) == 0) {
    u.used_bytes = static_cast<uint64_t>(info.me_last_pgno + 1) * stat.ms_psize;
    u.map_size_bytes = info.me_mapsize;
  }
  return u;
}

Result<bool> MarkWrittenThisBoot(const std::string& dir, const std::string& boot_id_path) {
  const std::string boot_id = ReadLine(boot_id_path);
  if (boot_id.empty()) return false;
  Status st = WriteDurably(dir, kSyncStateFile, boot_id);
  if (!st.ok()) return st;
  return true;
}

Status Store::CopyTo(int fd) const {
  SharedMapLock map_lock(&read_pool_->map_lock());
  int rc = mdb_env_copyfd2(env_, fd, MDB_CP_COMPACT);
  if (rc != 0) {
    Status st = LmdbError("copy", rc);
    return Status(st.code(), "cannot copy the store: " + st.message(), st.reason());
  }
  return Status::Ok();
}

}  // namespace cachecar::store
