#include "store/store_file.h"

#include <lmdb.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "store/lmdb_util.h"
#include "store/meta_keys.h"

namespace cachecar::store {
namespace {

// Named databases a copy may hold: the three tables and one per topic, of this sidecar
// or of the peer that made the copy.
constexpr MDB_dbi kMaxDbs = 4096;

// An environment on a copy, closed on destruction.
class CopyEnv {
 public:
  ~CopyEnv() {
    if (env_ != nullptr) mdb_env_close(env_);
  }
  Status Open(const std::string& dir, bool writable) {
    int rc = mdb_env_create(&env_);
    if (rc != 0) return LmdbError("env_create", rc);
    mdb_env_set_maxdbs(env_, kMaxDbs);
    // NOLOCK: nobody else has the copy open (header); no lock file is left behind.
    // NOSYNC: a commit here must not flush the whole freshly written file; the installer
    // decides how it becomes durable (MarkWrittenThisBoot).
    unsigned flags = MDB_NOLOCK | MDB_NORDAHEAD | (writable ? MDB_NOSYNC : MDB_RDONLY);
    rc = mdb_env_open(env_, dir.c_str(), flags, 0644);
    if (rc != 0) {
      Status st = LmdbError("open", rc);
      // A file that is not an LMDB environment at all is a corrupt copy, not an I/O error.
      if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) {
        return Status(Code::kDataLoss, "not a store: " + st.message(), "STORE_CORRUPT");
      }
      return Status(st.code(), "cannot open the copy in " + dir + ": " + st.message(),
                    st.reason());
    }
    return Status::Ok();
  }
  MDB_env* get() const { return env_; }

 private:
  MDB_env* env_ = nullptr;
};

Status Corrupt(const std::string& what) {
  return Status(Code::kDataLoss, "store copy: " + what, "STORE_CORRUPT");
}

Status OpenTables(MDB_txn* txn, MDB_dbi* meta, MDB_dbi* positions) {
  if (mdb_dbi_open(txn, "meta", 0, meta) != 0 || mdb_dbi_open(txn, "positions", 0, positions) != 0) {
    return Corrupt("no meta or positions table");
  }
  return Status::Ok();
}

// Names of the topic databases in the copy (the main database lists the named ones).
Result<std::vector<std::string>> TopicDbNames(MDB_txn* txn) {
  MDB_dbi main;
  int rc = mdb_dbi_open(txn, nullptr, 0, &main);
  if (rc != 0) return LmdbError("dbi_open main", rc);
  MDB_cursor* cur = nullptr;
  rc = mdb_cursor_open(txn, main, &cur);
  if (rc != 0) return LmdbError("cursor_open main", rc);
  CursorGuard guard = GuardCursor(cur);
  std::vector<std::string> names;
  MDB_val k, v;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    std::string_view name = View(k);
    if (name.substr(0, kTopicDbPrefix.size()) == kTopicDbPrefix) {
      names.emplace_back(name.substr(kTopicDbPrefix.size()));
    }
  }
  if (rc != MDB_NOTFOUND) return LmdbError("cursor_get main", rc);
  return names;
}

Result<std::map<int32_t, int64_t>> Positions(MDB_txn* txn, MDB_dbi positions,
                                            const std::string& topic) {
  std::string prefix = topic;
  prefix.push_back('\0');
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn, positions, &cur);
  if (rc != 0) return LmdbError("cursor_open positions", rc);
  CursorGuard guard = GuardCursor(cur);
  std::map<int32_t, int64_t> out;
  MDB_val k = Val(prefix), v;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    std::string_view key = View(k);
    if (key.substr(0, prefix.size()) != prefix) break;
    if (key.size() != prefix.size() + 4 || v.mv_size != sizeof(int64_t)) {
      return Corrupt("malformed position of topic " + topic);
    }
    const auto* b = reinterpret_cast<const unsigned char*>(key.data() + prefix.size());
    int32_t partition = static_cast<int32_t>((uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) |
                                             (uint32_t{b[2]} << 8) | uint32_t{b[3]});
    int64_t off;
    std::memcpy(&off, v.mv_data, sizeof(off));
    out[partition] = off;
  }
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cursor_get positions", rc);
  return out;
}

}  // namespace

std::string NewStoreId() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist;
  uint64_t hi = dist(rd), lo = dist(rd);
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return buf;
}

Result<StoreFacts> InspectStoreCopy(const std::string& dir) {
  CopyEnv env;
  Status st = env.Open(dir, /*writable=*/false);
  if (!st.ok()) return st;
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env.get(), nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return LmdbError("txn_begin", rc);
  TxnGuard guard{txn};
  MDB_dbi meta, positions;
  if (Status t = OpenTables(txn, &meta, &positions); !t.ok()) return t;
  StoreFacts facts;
  MDB_val k = Val(kKeyFormat), v;
  if (mdb_get(txn, meta, &k, &v) != 0) return Corrupt("no format");
  facts.format = std::string(View(v));
  if (facts.format != kStoreFormat) {
    return Status(Code::kDataLoss,
                  "store copy has format \"" + facts.format + "\", this cachecar reads \"" +
                      kStoreFormat + "\"",
                  "STORE_INCOMPATIBLE");
  }
  k = Val(kKeyStoreId);
  if (mdb_get(txn, meta, &k, &v) != 0) return Corrupt("no store id");
  facts.store_id = std::string(View(v));
  k = Val(kKeyRevision);
  if (mdb_get(txn, meta, &k, &v) != 0 || v.mv_size != sizeof(uint64_t)) {
    return Corrupt("no revision");
  }
  std::memcpy(&facts.revision, v.mv_data, sizeof(uint64_t));
  Result<std::vector<std::string>> names = TopicDbNames(txn);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    TopicFacts t;
    t.name = name;
    MDB_dbi dbi;
    std::string db = std::string(kTopicDbPrefix) + name;
    if ((rc = mdb_dbi_open(txn, db.c_str(), 0, &dbi)) != 0) {
      return Corrupt("topic database " + name + ": " + mdb_strerror(rc));
    }
    MDB_stat stat;
    if ((rc = mdb_stat(txn, dbi, &stat)) != 0) return LmdbError("stat", rc);
    t.keys = stat.ms_entries;
    Result<std::map<int32_t, int64_t>> p = Positions(txn, positions, name);
    if (!p.ok()) return p.status();
    t.positions = std::move(p).value();
    facts.topics.push_back(std::move(t));
  }
  return facts;
}

Status AdoptStoreCopy(const std::string& dir, const std::vector<std::string>& topics) {
  CopyEnv env;
  Status st = env.Open(dir, /*writable=*/true);
  if (!st.ok()) return st;
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env.get(), nullptr, 0, &txn);
  if (rc != 0) return LmdbError("txn_begin", rc);
  TxnGuard guard{txn};
  MDB_dbi meta, positions;
  if (Status t = OpenTables(txn, &meta, &positions); !t.ok()) return t;
  const std::string id = NewStoreId();
  MDB_val ik = Val(kKeyStoreId), iv = Val(id);
  if ((rc = mdb_put(txn, meta, &ik, &iv, 0)) != 0) return LmdbError("put store_id", rc);
  Result<std::vector<std::string>> names = TopicDbNames(txn);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    if (std::find(topics.begin(), topics.end(), name) != topics.end()) continue;
    MDB_dbi dbi;
    std::string db = std::string(kTopicDbPrefix) + name;
    if ((rc = mdb_dbi_open(txn, db.c_str(), 0, &dbi)) != 0) return LmdbError("dbi_open", rc);
    if ((rc = mdb_drop(txn, dbi, 1)) != 0) return LmdbError("drop", rc);
    // A view's reverse table goes with it.
    const std::string keys_db = std::string(kViewKeysDbPrefix) + name;
    rc = mdb_dbi_open(txn, keys_db.c_str(), 0, &dbi);
    if (rc == 0) rc = mdb_drop(txn, dbi, 1);
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("drop view keys", rc);
    Result<std::map<int32_t, int64_t>> p = Positions(txn, positions, name);
    if (!p.ok()) return p.status();
    for (const auto& [partition, offset] : *p) {
      std::string pk = PositionKey(name, partition);
      MDB_val pkv = Val(pk);
      if ((rc = mdb_del(txn, positions, &pkv, nullptr)) != 0) return LmdbError("del", rc);
    }
    for (const std::string& mk : {CaughtUpKey(name), ResettingKey(name)}) {
      MDB_val mkv = Val(mk);
      rc = mdb_del(txn, meta, &mkv, nullptr);
      if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("del", rc);
    }
  }
  if ((rc = mdb_txn_commit(guard.Release())) != 0) return LmdbError("commit", rc);
  return Status::Ok();
}

}  // namespace cachecar::store
