#include "store/lmdb_util.h"

#include <sys/statvfs.h>

#include <cerrno>

namespace cachecar::store {

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

}  // namespace cachecar::store
