#include "peer/snapshot_receiver.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/hex.h"

namespace cachecar::peer {
namespace {

Status Corrupt(const std::string& what) {
  return Status(Code::kDataLoss, "snapshot refused: " + what, "SNAPSHOT_CORRUPT");
}

Status Io(const std::string& what) {
  return Status(errno == ENOSPC ? Code::kResourceExhausted : Code::kInternal,
                what + ": " + std::strerror(errno), errno == ENOSPC ? "DISK_FULL" : "SNAPSHOT_IO");
}


}  // namespace

SnapshotReceiver::SnapshotReceiver(std::string dir, std::vector<LocalTopic> mine)
    : dir_(std::move(dir)), mine_(std::move(mine)), sha_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr);
}

SnapshotReceiver::~SnapshotReceiver() {
  if (fd_ >= 0) ::close(fd_);
  EVP_MD_CTX_free(sha_);
}

Status SnapshotReceiver::Add(const v1::StreamSnapshotResponse& message) {
  if (have_trailer_) return Corrupt("a message after the trailer");
  switch (message.part_case()) {
    case v1::StreamSnapshotResponse::kHeader: {
      if (have_header_) return Corrupt("a second header");
      header_ = message.header();
      have_header_ = true;
      if (header_.stream_version() != kSnapshotStreamVersion) {
        return Status(Code::kFailedPrecondition,
                      "snapshot stream version " + std::to_string(header_.stream_version()) +
                          ", this cachecar reads " + std::to_string(kSnapshotStreamVersion),
                      "SNAPSHOT_INCOMPATIBLE");
      }
      if (header_.store_format() != store::kStoreFormat) {
        return Status(Code::kFailedPrecondition,
                      "snapshot of store format \"" + header_.store_format() +
                          "\", this cachecar reads \"" + store::kStoreFormat + "\"",
                      "SNAPSHOT_INCOMPATIBLE");
      }
      Status fits = CheckCompatible(mine_, header_.topics());
      if (!fits.ok()) return fits;
      struct statvfs fs;
      if (::statvfs(dir_.c_str(), &fs) == 0) {
        uint64_t free = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
        if (header_.data_bytes() > free) {
          return Status(Code::kResourceExhausted,
                        "the snapshot needs " + std::to_string(header_.data_bytes()) +
                            " bytes, the store's volume has " + std::to_string(free) + " free",
                        "DISK_FULL");
        }
      }
      const std::string path = dir_ + "/data.mdb";
      fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ < 0) return Io("cannot create " + path);
      return Status::Ok();
    }
    case v1::StreamSnapshotResponse::kData: {
      if (!have_header_) return Corrupt("data before the header");
      const std::string& data = message.data();
      if (data.size() > header_.data_bytes() - received_) {
        return Corrupt("more data than the header's " + std::to_string(header_.data_bytes()) +
                       " bytes");
      }
      EVP_DigestUpdate(sha_, data.data(), data.size());
      for (size_t done = 0; done < data.size();) {
        ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return Io("cannot write the snapshot to " + dir_);
        done += static_cast<size_t>(n);
      }
      received_ += data.size();
      return Status::Ok();
    }
    case v1::StreamSnapshotResponse::kTrailer:
      if (!have_header_) return Corrupt("a trailer before the header");
      have_trailer_ = true;
      sha256_hex_ = message.trailer().sha256();
      return Status::Ok();
    default:
      return Corrupt("a message of an unknown kind (a newer peer?)");
  }
}

Result<store::StoreFacts> SnapshotReceiver::Finish() {
  if (!have_header_) return Corrupt("no header");
  if (received_ != header_.data_bytes()) {
    return Corrupt("the stream ended after " + std::to_string(received_) + " of " +
                   std::to_string(header_.data_bytes()) + " bytes");
  }
  if (!have_trailer_) return Corrupt("no trailer");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(sha_, digest, &len);
  if (LowerHex(digest, len) != sha256_hex_) {
    return Corrupt("its SHA-256 is " + LowerHex(digest, len) + ", the trailer says " +
                   (sha256_hex_.empty() ? std::string("nothing") : sha256_hex_));
  }
  ::close(fd_);
  fd_ = -1;
  Result<store::StoreFacts> facts = store::InspectStoreCopy(dir_);
  if (!facts.ok()) return Corrupt(facts.status().message());
  if (facts->revision != header_.revision()) {
    return Corrupt("the data is at revision " + std::to_string(facts->revision) +
                   ", the header says " + std::to_string(header_.revision()));
  }
  for (const auto& t : header_.topics()) {
    const store::TopicFacts* f = nullptr;
    for (const auto& ft : facts->topics) {
      if (ft.name == t.name()) f = &ft;
    }
    std::map<int32_t, int64_t> declared(t.positions().begin(), t.positions().end());
    if (f == nullptr || f->positions != declared || f->keys != t.keys()) {
      return Corrupt("topic " + t.name() + " in the data differs from the header");
    }
  }
  std::vector<std::string> names;
  for (const auto& t : mine_) names.push_back(t.name);
  Status adopted = store::AdoptStoreCopy(dir_, names);
  if (!adopted.ok()) return adopted;
  return facts;
}

Result<store::StoreFacts> ReceiveSnapshotFile(const std::string& path,
                                              SnapshotReceiver* receiver) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return InvalidArgument("cannot read snapshot file " + path + ": " + std::strerror(errno));
  }
  char magic[kSnapshotFileMagicBytes];
  if (!in.read(magic, sizeof(magic)) ||
      std::memcmp(magic, kSnapshotFileMagic, kSnapshotFileMagicBytes) != 0) {
    return InvalidArgument(path + " is not a cachecar snapshot file (cachecarctl snapshot save)");
  }
  std::string buf;
  v1::StreamSnapshotResponse message;
  for (;;) {
    // A varint length, then that many bytes; a length past the bound is refused before
    // anything is allocated for it.
    uint64_t len = 0;
    int shift = 0, c = in.get();
    if (c == EOF) break;  // a clean end between messages
    for (;;) {
      len |= static_cast<uint64_t>(c & 0x7f) << shift;
      if ((c & 0x80) == 0) break;
      shift += 7;
      if (shift > 28 || (c = in.get()) == EOF) return Corrupt("a malformed message length");
    }
    if (len > kMaxSnapshotMessageBytes) {
      return Corrupt("a message of " + std::to_string(len) + " bytes (at most " +
                     std::to_string(kMaxSnapshotMessageBytes) + ")");
    }
    buf.resize(len);
    if (!in.read(buf.data(), static_cast<std::streamsize>(len))) {
      return Corrupt("the file ends inside a message");
    }
    if (!message.ParseFromString(buf)) return Corrupt("a message that does not decode");
    Status st = receiver->Add(message);
    if (!st.ok()) return st;
  }
  return receiver->Finish();
}

}  // namespace cachecar::peer
