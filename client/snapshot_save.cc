// Client::SaveSnapshot: a snapshot stream to a file (layout: proto/cachecar/v1/snapshot.proto).
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cachecar/v1/snapshot.grpc.pb.h"
#include "client/client.h"
#include "common/hex.h"

namespace cachecar::client {
namespace {

constexpr char kMagic[] = "CCSNAP01";

Status Corrupt(const std::string& what) {
  return Status(Code::kDataLoss, "snapshot refused: " + what, "SNAPSHOT_CORRUPT");
}

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}


// The stream's checks, as the bootstrap makes them: header first, data adding up to its
// size, trailer last with the data's SHA-256.
class StreamCheck {
 public:
  StreamCheck() : sha_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr); }
  ~StreamCheck() { EVP_MD_CTX_free(sha_); }
  Status Add(const v1::StreamSnapshotResponse& m) {
    if (trailer_) return Corrupt("a message after the trailer");
    if (m.has_header()) {
      if (header_) return Corrupt("a second header");
      header_ = true;
      header_msg_ = m.header();
    } else if (m.part_case() == v1::StreamSnapshotResponse::kData) {
      if (!header_) return Corrupt("data before the header");
      if (m.data().size() > header_msg_.data_bytes() - bytes_) {
        return Corrupt("more data than the header declares");
      }
      EVP_DigestUpdate(sha_, m.data().data(), m.data().size());
      bytes_ += m.data().size();
    } else if (m.has_trailer()) {
      if (!header_) return Corrupt("a trailer before the header");
      trailer_ = true;
      unsigned char d[EVP_MAX_MD_SIZE];
      unsigned n = 0;
      EVP_DigestFinal_ex(sha_, d, &n);
      if (bytes_ != header_msg_.data_bytes()) return Corrupt("data shorter than declared");
      if (LowerHex(d, n) != m.trailer().sha256()) return Corrupt("SHA-256 mismatch");
    } else {
      return Corrupt("a message of an unknown kind");
    }
    return Status::Ok();
  }
  bool complete() const { return trailer_; }
  const v1::SnapshotHeader& header() const { return header_msg_; }

 private:
  EVP_MD_CTX* sha_;
  bool header_ = false, trailer_ = false;
  uint64_t bytes_ = 0;
  v1::SnapshotHeader header_msg_;
};

}  // namespace

Result<v1::SnapshotHeader> Client::SaveSnapshot(const std::string& path,
                                                std::chrono::milliseconds timeout) {
  const std::string partial = path + ".partial";
  std::FILE* f = std::fopen(partial.c_str(), "wb");
  if (f == nullptr) {
    return InvalidArgument("cannot write " + partial + ": " + std::strerror(errno));
  }
  auto stub = v1::SnapshotService::NewStub(channel_);
  std::unique_ptr<grpc::ClientContext> ctx = NewContext(timeout);
  auto reader = stub->StreamSnapshot(ctx.get(), v1::StreamSnapshotRequest());
  StreamCheck check;
  Status st;
  v1::StreamSnapshotResponse m;
  std::string out;
  bool write_ok = std::fwrite(kMagic, 1, 8, f) == 8;
  while (write_ok && reader->Read(&m)) {
    st = check.Add(m);
    if (!st.ok()) {
      ctx->TryCancel();
      break;
    }
    out.clear();
    AppendVarint(m.ByteSizeLong(), &out);
    m.AppendToString(&out);
    write_ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
  }
  if (!write_ok) ctx->TryCancel();
  grpc::Status gst = reader->Finish();
  write_ok = write_ok && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  std::fclose(f);
  if (st.ok() && !gst.ok()) st = FromGrpcStatus(gst);
  if (st.ok() && !write_ok) st = Internal("cannot write " + partial + ": " + std::strerror(errno));
  if (st.ok() && !check.complete()) st = Corrupt("the stream ended before its trailer");
  if (st.ok() && std::rename(partial.c_str(), path.c_str()) != 0) {
    st = Internal("cannot rename " + partial + ": " + std::strerror(errno));
  }
  if (!st.ok()) {
    std::remove(partial.c_str());
    return st;
  }
  return check.header();
}

}  // namespace cachecar::client
