#include "store/store.h"

#include <array>
#include <cstring>
#include <filesystem>
#include <random>

#include <sys/statvfs.h>

namespace cachecar::store {
namespace {

constexpr char kFormatVersion[] = "cachecar-store-1";
constexpr std::string_view kKeyFormat = "format";
constexpr std::string_view kKeyStoreId = "store_id";
constexpr std::string_view kKeyRevision = "revision";

MDB_val Val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}
std::string_view View(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

Status LmdbError(const char* what, int rc) {
  std::string msg = std::string("lmdb ") + what + ": " + mdb_strerror(rc);
  if (rc == MDB_MAP_FULL) {
    return Status(Code::kResourceExhausted, msg + " (the map is at store.max_map_size_bytes)",
                  "STORE_FULL");
  }
  if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID ||
      rc == MDB_VERSION_MISMATCH) {
    return Status(Code::kDataLoss, msg, "STORE_CORRUPT");
  }
  if (rc == ENOSPC) return Status(Code::kResourceExhausted, msg, "DISK_FULL");
  return Internal(msg);
}

// A failed commit: LMDB reports a short write (the filesystem filled up part-way) as EIO,
// so EIO on a nearly full filesystem is a full disk too.
Status CommitError(int rc, const std::string& path) {
  if (rc == EIO) {
    struct statvfs fs;
    if (statvfs(path.c_str(), &fs) == 0) {
      uint64_t free = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
      uint64_t total = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize;
      if (free < (64ull << 20) || free < total / 100) rc = ENOSPC;
    }
  }
  if (rc == ENOSPC) {
    return Status(Code::kResourceExhausted,
                  "lmdb commit: No space left on device (" + path + "): free some space or "
                  "give the volume more; commits are retried",
                  "DISK_FULL");
  }
  return LmdbError("commit", rc);
}

std::string PositionKey(const std::string& topic, int32_t partition) {
  std::string k = topic;
  k.push_back('\0');
  uint32_t p = static_cast<uint32_t>(partition);
  char be[4] = {static_cast<char>(p >> 24), static_cast<char>(p >> 16),
                static_cast<char>(p >> 8), static_cast<char>(p)};
  k.append(be, 4);
  return k;
}

std::string NewStoreId() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist;
  uint64_t hi = dist(rd), lo = dist(rd);
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return buf;
}

// Holds the map lock shared for a scope.
struct SharedLock {
  explicit SharedLock(MapLock* l) : lock(l) { lock->LockShared(); }
  ~SharedLock() { lock->UnlockShared(); }
  MapLock* lock;
};

// Aborts a transaction unless released.
struct TxnGuard {
  MDB_txn* txn;
  ~TxnGuard() {
    if (txn != nullptr) mdb_txn_abort(txn);
  }
  MDB_txn* Release() {
    MDB_txn* t = txn;
    txn = nullptr;
    return t;
  }
};

// History log: key = revision, 8 bytes big-endian (so LMDB's order is revision order and
// appends go to the last page); value = HistoryEvent in a flat little-endian layout:
//   u8 flags (1: put, 2: has prev) | u16 topic len, topic | u32 key len, key |
//   [u32 value len, value] | i32 partition, i64 offset, i64 timestamp_ms |
//   [u32 prev value len, prev value, i32 partition, i64 offset, i64 timestamp_ms, u64 revision]
constexpr uint8_t kHistoryPut = 1, kHistoryHasPrev = 2;

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

// Starts a history record: everything but the previous entry.
void EncodeHistoryHead(std::string_view topic, const Mutation& m, std::string* out) {
  out->clear();
  out->push_back(static_cast<char>(m.value ? kHistoryPut : 0));
  PutBytes(out, topic, /*short_length=*/true);
  PutBytes(out, m.key);
  if (m.value) PutBytes(out, *m.value);
  PutMeta(out, EntryMeta{m.partition, m.offset, m.timestamp_ms, 0});
}

void AppendHistoryPrev(const DecodedRecord& prev, std::string* out) {
  (*out)[0] = static_cast<char>((*out)[0] | kHistoryHasPrev);
  PutBytes(out, prev.value);
  PutMeta(out, prev.meta);
  PutFixed<uint64_t>(out, prev.meta.revision);
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

// The topic and key of a history record, without copying.
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
  if (flags & kHistoryPut) {
    std::string value;
    if (!r.Bytes(&value)) return false;
    ev->value = std::move(value);
  } else {
    ev->value.reset();
  }
  if (!r.Meta(&ev->meta)) return false;
  ev->meta.revision = revision;
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
  return r.done();
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
  // Only LMDB's own files: the directory may be a mount point shared with nothing else,
  // but it is not ours to empty.
  for (const char* name : {"data.mdb", "lock.mdb"}) {
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
  for (MDB_txn* txn : read_pool_) mdb_txn_abort(txn);
  if (env_ != nullptr) mdb_env_close(env_);
}

MDB_txn* Store::AcquireReadTxn() const {
  map_lock_.LockShared();
  MDB_txn* txn = nullptr;
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!read_pool_.empty()) {
      txn = read_pool_.back();
      read_pool_.pop_back();
    }
  }
  if (txn != nullptr) {
    if (mdb_txn_renew(txn) == 0) return txn;
    mdb_txn_abort(txn);
    txn = nullptr;
  }
  if (mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn) != 0) {
    map_lock_.UnlockShared();
    return nullptr;
  }
  return txn;
}

void Store::ReleaseReadTxn(MDB_txn* txn) const {
  mdb_txn_reset(txn);
  map_lock_.UnlockShared();
  std::lock_guard<std::mutex> lock(pool_mu_);
  // Keep at most half the reader slots parked, so new readers always find one.
  if (read_pool_.size() < options_.max_readers / 2) {
    read_pool_.push_back(txn);
    return;
  }
  mdb_txn_abort(txn);
}

Status Store::Grow() {
  if (map_size_ >= options_.max_map_size_bytes) {
    return Status(Code::kResourceExhausted,
                  "the store is full: its map is at store.max_map_size_bytes (" +
                      std::to_string(options_.max_map_size_bytes) + ")",
                  "STORE_FULL");
  }
  uint64_t next = std::min(options_.max_map_size_bytes, map_size_ * 2);
  if (!map_lock_.TryLockFor(std::chrono::seconds(1))) {
    return Status(Code::kUnavailable,
                  "the store's map must grow, but readers held snapshots for a second; "
                  "will try again",
                  "STORE_RESIZE_WAITING");
  }
  int rc = mdb_env_set_mapsize(env_, next);
  map_lock_.Unlock();
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
  int rc = mdb_env_create(&env_);
  if (rc != 0) return LmdbError("env_create", rc);
  mdb_env_set_maxdbs(env_, static_cast<MDB_dbi>(options_.topics.size() + 8));
  mdb_env_set_maxreaders(env_, options_.max_readers);
  rc = mdb_env_set_mapsize(env_, options_.map_size_bytes);
  if (rc != 0) return LmdbError("set_mapsize", rc);
  // NOTLS: read transactions are not tied to threads (gRPC runs handlers on a pool).
  // NORDAHEAD: random point reads; readahead only wastes page cache.
  unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (options_.sync ? 0 : MDB_NOSYNC);
  rc = mdb_env_open(env_, options_.path.c_str(), flags, 0644);
  if (rc != 0) {
    Status st = LmdbError("open", rc);
    return Status(st.code(), "cannot open store in " + options_.path + ": " + st.message(),
                  st.reason());
  }
  MDB_envinfo info;
  mdb_env_info(env_, &info);  // LMDB raises the map to the file's size if that is larger
  map_size_ = info.me_mapsize;

  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return LmdbError("txn_begin", rc);
  TxnGuard guard{txn};
  if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &meta_dbi_)) != 0 ||
      (rc = mdb_dbi_open(txn, "positions", MDB_CREATE, &positions_dbi_)) != 0 ||
      (rc = mdb_dbi_open(txn, "history", MDB_CREATE, &history_dbi_)) != 0) {
    return LmdbError("dbi_open", rc);
  }
  MDB_val k = Val(kKeyFormat), v;
  rc = mdb_get(txn, meta_dbi_, &k, &v);
  if (rc == MDB_NOTFOUND) {
    // A new store: stamp its format and a fresh identity.
    store_id_ = NewStoreId();
    MDB_val fv = Val(kFormatVersion), ik = Val(kKeyStoreId), iv = Val(store_id_);
    uint64_t zero = 0;
    MDB_val rk = Val(kKeyRevision), rv{sizeof(zero), &zero};
    if ((rc = mdb_put(txn, meta_dbi_, &k, &fv, 0)) != 0 ||
        (rc = mdb_put(txn, meta_dbi_, &ik, &iv, 0)) != 0 ||
        (rc = mdb_put(txn, meta_dbi_, &rk, &rv, 0)) != 0) {
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
    if (mdb_get(txn, meta_dbi_, &ik, &iv) != 0 || mdb_get(txn, meta_dbi_, &rk, &rv) != 0 ||
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
    topic_dbis_.push_back(dbi);
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
  rc = mdb_cursor_open(txn, history_dbi_, &history);
  if (rc != 0) return LmdbError("cursor_open history", rc);
  std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> history_guard(history, mdb_cursor_close);
  // A reset deletes every key of the topic (so the history log tells watchers), then
  // forgets its positions.
  std::vector<Mutation> resets;
  for (size_t topic : batch.reset_topics) {
    MDB_cursor* cur = nullptr;
    rc = mdb_cursor_open(txn, topic_dbis_.at(topic), &cur);
    if (rc != 0) return LmdbError("cursor_open", rc);
    std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> guard(cur, mdb_cursor_close);
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      auto rec = DecodeRecord(View(k), View(v));
      if (!rec) return Status(Code::kDataLoss, "malformed record in store", "STORE_CORRUPT");
      Mutation m;
      m.topic = topic;
      m.key.assign(rec->key);
      m.partition = rec->meta.partition;
      m.offset = -1;  // not from a record: the topic is being rebuilt
      resets.push_back(std::move(m));
    }
    if (rc != MDB_NOTFOUND) return LmdbError("cursor_get", rc);
    guard.reset();
    std::string prefix = options_.topics.at(topic);
    prefix.push_back('\0');
    // Collect, then delete: a cursor left past the last entry by a delete cannot be asked
    // where it is (EINVAL).
    std::vector<std::string> position_keys;
    rc = mdb_cursor_open(txn, positions_dbi_, &cur);
    if (rc != 0) return LmdbError("cursor_open positions", rc);
    std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> pguard(cur, mdb_cursor_close);
    k = Val(prefix);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && View(k).substr(0, prefix.size()) == prefix;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      position_keys.emplace_back(View(k));
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cursor_get positions", rc);
    pguard.reset();
    for (const auto& pk : position_keys) {
      MDB_val key = Val(pk);
      rc = mdb_del(txn, positions_dbi_, &key, nullptr);
      if (rc != 0) return LmdbError("del position", rc);
    }
  }
  for (size_t i = 0; i < resets.size() + batch.mutations.size(); ++i) {
    const Mutation& m = i < resets.size() ? resets[i] : batch.mutations[i - resets.size()];
    std::string store_key = StoreKey(m.key);
    MDB_val k = Val(store_key);
    MDB_dbi dbi = topic_dbis_.at(m.topic);
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
    EncodeHistoryHead(options_.topics.at(m.topic), m, &history_scratch_);
    if (prev) AppendHistoryPrev(*prev, &history_scratch_);
    if (m.value) {
      EntryMeta meta{m.partition, m.offset, m.timestamp_ms, rev + 1};
      EncodeRecord(m.key, *m.value, meta, &scratch_);
      MDB_val v = Val(scratch_);
      rc = mdb_put(txn, dbi, &k, &v, 0);
      if (rc != 0) return LmdbError("put", rc);
    } else {
      rc = mdb_del(txn, dbi, &k, nullptr);
      if (rc != 0) return LmdbError("del", rc);
    }
    ++rev;
    ++result.changes;
    std::array<char, 8> hk = RevisionKey(rev);
    MDB_val hkv{hk.size(), hk.data()}, hv = Val(history_scratch_);
    rc = mdb_cursor_put(history, &hkv, &hv, MDB_APPEND);
    if (rc != 0) return LmdbError("put history", rc);
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
    rc = mdb_put(txn, positions_dbi_, &k, &v, 0);
    if (rc != 0) return LmdbError("put position", rc);
  }
  if (result.changes > 0) {
    MDB_val k = Val(kKeyRevision), v{sizeof(rev), &rev};
    rc = mdb_put(txn, meta_dbi_, &k, &v, 0);
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
  int rc = mdb_cursor_open(txn, history_dbi_, &cur);
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
  SharedLock map_lock(&map_lock_);
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return LmdbError("txn_begin", rc);
  TxnGuard guard{txn};
  MDB_cursor* cur = nullptr;
  rc = mdb_cursor_open(txn, positions_dbi_, &cur);
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

Result<Snapshot> Store::NewSnapshot() const {
  MDB_txn* txn = AcquireReadTxn();
  if (txn == nullptr) {
    return Status(Code::kResourceExhausted, "lmdb: no reader slot for a read transaction",
                  "STORE_BUSY");
  }
  MDB_val k = Val(kKeyRevision), v;
  uint64_t rev = 0;
  if (mdb_get(txn, meta_dbi_, &k, &v) == 0 && v.mv_size == sizeof(rev)) {
    std::memcpy(&rev, v.mv_data, sizeof(rev));
  }
  return Snapshot(this, txn, rev);
}

Result<uint64_t> Store::KeyCount(size_t topic) const {
  SharedLock map_lock(&map_lock_);
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return LmdbError("txn_begin", rc);
  TxnGuard guard{txn};
  MDB_stat stat;
  rc = mdb_stat(txn, topic_dbis_.at(topic), &stat);
  if (rc != 0) return LmdbError("stat", rc);
  return static_cast<uint64_t>(stat.ms_entries);
}

Store::Usage Store::GetUsage() const {
  SharedLock map_lock(&map_lock_);
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

Snapshot::Snapshot(Snapshot&& other) noexcept
    : store_(other.store_), txn_(other.txn_), revision_(other.revision_) {
  other.txn_ = nullptr;
}

Snapshot::~Snapshot() {
  if (txn_ != nullptr) store_->ReleaseReadTxn(txn_);
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
  int rc = mdb_get(txn_, store_->topic_dbis_.at(topic), &k, &v);
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
  return std::optional<Entry>(Entry{std::string(key), std::string(r.value), r.meta});
}

Result<ScanPage> Snapshot::Scan(size_t topic, std::string_view prefix, std::string_view cursor,
                                size_t limit, size_t max_bytes) const {
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn_, store_->topic_dbis_.at(topic), &cur);
  if (rc != 0) return LmdbError("cursor_open", rc);
  // Stored keys keep only the first kLongKeyPrefix bytes of long keys, so range on that
  // much of the prefix and check the rest against the whole key.
  std::string_view range_prefix = prefix.substr(0, std::min(prefix.size(), kLongKeyPrefix));
  std::string start(cursor.empty() ? range_prefix : cursor);
  MDB_val k = Val(start), v;
  ScanPage page;
  size_t bytes = 0;
  rc = start.empty() ? mdb_cursor_get(cur, &k, &v, MDB_FIRST)
                     : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  if (rc == 0 && !cursor.empty() && View(k) == cursor) {
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);  // the cursor names the last entry sent
  }
  std::string last_key;
  for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    std::string_view sk = View(k);
    if (sk.substr(0, range_prefix.size()) != range_prefix) {
      rc = MDB_NOTFOUND;
      break;
    }
    if (page.entries.size() >= limit || (bytes >= max_bytes && !page.entries.empty())) {
      page.next_cursor = last_key;
      break;
    }
    auto rec = DecodeRecord(sk, View(v));
    if (!rec) {
      mdb_cursor_close(cur);
      return Status(Code::kDataLoss, "malformed record in store", "STORE_CORRUPT");
    }
    last_key.assign(sk);
    if (rec->key.substr(0, prefix.size()) != prefix) continue;
    bytes += rec->key.size() + rec->value.size();
    page.entries.push_back(Entry{std::string(rec->key), std::string(rec->value), rec->meta});
  }
  mdb_cursor_close(cur);
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
  int rc = mdb_cursor_open(txn_, store_->history_dbi_, &cur);
  if (rc != 0) return LmdbError("cursor_open history", rc);
  std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> guard(cur, mdb_cursor_close);
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
    if (filter) {
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
