#include "peer/snapshot_service.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/hex.h"
#include "common/log.h"
#include "common/version.h"
#include "peer/snapshot_receiver.h"
#include "rpc/auth.h"
#include "rpc/errors.h"
#include "store/store.h"
#include "store/store_file.h"

namespace cachecar::peer {
namespace {

constexpr size_t kChunkBytes = 1u << 20;
constexpr char kCopyPrefix[] = "snapshot-";

Status Failed(const std::string& what) {
  return Status(Code::kInternal, "cannot make a snapshot: " + what, "SNAPSHOT_FAILED");
}

// Releases a transfer slot when the transfer ends, however it ends.
class Slot {
 public:
  Slot(std::atomic<uint32_t>* active, uint32_t max) : active_(active) {
    taken_ = active_->fetch_add(1) < max;
    if (!taken_) active_->fetch_sub(1);
  }
  ~Slot() {
    if (taken_) active_->fetch_sub(1);
  }
  bool taken() const { return taken_; }

 private:
  std::atomic<uint32_t>* active_;
  bool taken_;
};


const char* ResultOf(const Status& st) {
  if (st.ok()) return "complete";
  if (st.reason() == "TOO_MANY_TRANSFERS") return "busy";
  if (st.reason() == "CACHE_NOT_READY") return "not_ready";
  if (st.code() == Code::kCancelled) return "cancelled";
  return "failed";
}

}  // namespace

SnapshotSource::SnapshotSource(SnapshotSourceOptions options, const store::Store* store,
                               std::function<bool()> ready,
                               std::function<std::vector<LocalTopic>()> topics,
                               const PeerStats* stats)
    : options_(std::move(options)),
      store_(store),
      ready_(std::move(ready)),
      topics_(std::move(topics)),
      stats_(stats) {}

void SnapshotSource::RemoveStaleCopies(const std::string& work_dir) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(work_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->path().filename().string().rfind(kCopyPrefix, 0) != 0) continue;
    std::error_code rec;
    std::filesystem::remove_all(it->path(), rec);
  }
}

v1::DescribeSnapshotResponse SnapshotSource::Describe() const {
  v1::DescribeSnapshotResponse resp;
  resp.set_store_format(store::kStoreFormat);
  resp.set_ready(ready_());
  resp.set_revision(store_->revision());
  resp.set_version(Version());
  for (const LocalTopic& t : topics_()) {
    v1::SnapshotTopic* st = resp.add_topics();
    st->set_name(t.name);
    st->set_settings_fingerprint(t.fingerprint);
  }
  return resp;
}

Status SnapshotSource::Stream(
    const std::function<bool(const v1::StreamSnapshotResponse&)>& write,
    const std::function<bool()>& cancelled) {
  Status st;
  Slot slot(&active_, options_.max_transfers);
  if (!slot.taken()) {
    st = Status(Code::kResourceExhausted,
                "this sidecar is sending " + std::to_string(options_.max_transfers) +
                    " snapshots already (peers.max_transfers): ask another peer",
                "TOO_MANY_TRANSFERS");
  } else if (!ready_()) {
    st = Status(Code::kUnavailable, "this sidecar has not caught up: ask another peer",
                "CACHE_NOT_READY");
  } else {
    stats_->transfers_active->Increment();
    st = StreamCopy(write, cancelled);
    stats_->transfers_active->Decrement();
  }
  stats_->transfers->Add({{"result", ResultOf(st)}}).Increment();
  return st;
}

Status SnapshotSource::StreamCopy(
    const std::function<bool(const v1::StreamSnapshotResponse&)>& write,
    const std::function<bool()>& cancelled) {
  const auto started = std::chrono::steady_clock::now();
  std::string dir = options_.work_dir + "/" + kCopyPrefix + "XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    return Failed("cannot create a directory in " + options_.work_dir + ": " +
                  std::strerror(errno));
  }
  // The copy lives only as long as its descriptor: unlinked as soon as it is inspected, so
  // no ending of this call (or of the process) leaves it on the volume, but a crash before
  // the unlink (RemoveStaleCopies, at the next start). Written through the page cache, so
  // sending it reads memory.
  const std::string path = dir + "/data.mdb";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  Status copied = fd >= 0 ? store_->CopyTo(fd)
                          : Failed("cannot create " + path + ": " + std::strerror(errno));
  Result<store::StoreFacts> facts =
      copied.ok() ? store::InspectStoreCopy(dir) : Result<store::StoreFacts>(copied);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (!facts.ok()) {
    if (fd >= 0) ::close(fd);
    return copied.ok() ? Failed(facts.status().message()) : copied;
  }
  if (::lseek(fd, 0, SEEK_SET) != 0) {
    ::close(fd);
    return Failed(std::string("cannot read the copy: ") + std::strerror(errno));
  }
  struct stat sb;
  if (::fstat(fd, &sb) != 0) {
    ::close(fd);
    return Failed(std::string("cannot stat the copy: ") + std::strerror(errno));
  }

  v1::StreamSnapshotResponse msg;
  v1::SnapshotHeader* header = msg.mutable_header();
  header->set_stream_version(kSnapshotStreamVersion);
  header->set_store_format(facts->format);
  header->set_revision(facts->revision);
  header->set_data_bytes(static_cast<uint64_t>(sb.st_size));
  header->set_created_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
  header->set_version(Version());
  for (const LocalTopic& t : topics_()) {
    for (const store::TopicFacts& f : facts->topics) {
      if (f.name != t.name) continue;
      v1::SnapshotTopic* st = header->add_topics();
      st->set_name(t.name);
      st->set_settings_fingerprint(t.fingerprint);
      st->mutable_positions()->insert(f.positions.begin(), f.positions.end());
      st->set_keys(f.keys);
    }
  }
  log::Info("sending a snapshot to a peer",
            {{"revision", facts->revision}, {"bytes", static_cast<int64_t>(sb.st_size)},
             {"copy_ms", static_cast<int64_t>(
                             std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - started)
                                 .count())}});
  auto cancelled_status = [] {
    return Status(Code::kCancelled, "the peer went away or the sidecar is stopping",
                  "CANCELLED");
  };
  if (!write(msg)) {
    ::close(fd);
    return cancelled_status();
  }

  // Chunks small enough that one chunk's pause at the rate limit stays near 100 ms, so a
  // cancellation is seen promptly.
  const uint64_t rate = options_.max_bytes_per_second;
  const size_t chunk = static_cast<size_t>(std::max<uint64_t>(4096, std::min<uint64_t>(kChunkBytes, rate / 10)));
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  EVP_DigestInit_ex(sha, EVP_sha256(), nullptr);
  std::string buf(chunk, '\0');
  uint64_t sent = 0;
  const auto send_start = std::chrono::steady_clock::now();
  Status st;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = Failed(std::string("cannot read the copy: ") + std::strerror(errno));
      break;
    }
    if (n == 0) break;
    // The pace: `sent` bytes may not leave before sent / rate seconds.
    auto due = send_start + std::chrono::microseconds(sent * 1000000 / rate);
    while (std::chrono::steady_clock::now() < due) {
      if (cancelled()) break;
      std::this_thread::sleep_until(
          std::min(due, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
    }
    if (cancelled()) {
      st = cancelled_status();
      break;
    }
    EVP_DigestUpdate(sha, buf.data(), static_cast<size_t>(n));
    msg.Clear();
    msg.set_data(buf.data(), static_cast<size_t>(n));
    if (!write(msg)) {
      st = cancelled_status();
      break;
    }
    sent += static_cast<uint64_t>(n);
    stats_->sent_bytes->Increment(static_cast<double>(n));
  }
  ::close(fd);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(sha, digest, &len);
  EVP_MD_CTX_free(sha);
  if (!st.ok()) return st;
  if (sent != static_cast<uint64_t>(sb.st_size)) return Failed("the copy changed size");
  msg.Clear();
  msg.mutable_trailer()->set_sha256(LowerHex(digest, len));
  if (!write(msg)) return cancelled_status();
  log::Info("snapshot sent to a peer",
            {{"revision", facts->revision}, {"bytes", static_cast<int64_t>(sent)}});
  return Status::Ok();
}

SnapshotService::SnapshotService(SnapshotSource* source, std::string token,
                                 const PeerStats* stats)
    : source_(source), token_(std::move(token)), stats_(stats) {}

grpc::Status SnapshotService::DescribeSnapshot(grpc::ServerContext* ctx,
                                               const v1::DescribeSnapshotRequest* req,
                                               v1::DescribeSnapshotResponse* resp) {
  Status auth = rpc::CheckBearerToken(ctx->client_metadata(), token_);
  if (!auth.ok()) return rpc::ToGrpcStatus(auth);
  *resp = source_->Describe();
  return grpc::Status::OK;
}

grpc::Status SnapshotService::StreamSnapshot(
    grpc::ServerContext* ctx, const v1::StreamSnapshotRequest* req,
    grpc::ServerWriter<v1::StreamSnapshotResponse>* writer) {
  Status auth = rpc::CheckBearerToken(ctx->client_metadata(), token_);
  if (!auth.ok()) {
    stats_->transfers->Add({{"result", "unauthenticated"}}).Increment();
    return rpc::ToGrpcStatus(auth);
  }
  Status st = source_->Stream(
      [writer](const v1::StreamSnapshotResponse& m) { return writer->Write(m); },
      [ctx] { return ctx->IsCancelled(); });
  return rpc::ToGrpcStatus(st);
}

}  // namespace cachecar::peer
