#include "transform/wire.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cachecar::transform::wire {

std::string Writer::Frame() {
  std::string out;
  out.reserve(buf_.size() + 4);
  const auto n = static_cast<uint32_t>(buf_.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(buf_);
  buf_.clear();
  return out;
}

uint64_t Reader::Fixed(int bytes) {
  if (failed_ || in_.size() < static_cast<size_t>(bytes)) {
    failed_ = true;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<uint8_t>(in_[i])} << (8 * i);
  in_.remove_prefix(bytes);
  return v;
}

std::string_view Reader::Str() {
  const uint32_t n = U32();
  if (failed_ || in_.size() < n) {
    failed_ = true;
    return {};
  }
  std::string_view s = in_.substr(0, n);
  in_.remove_prefix(n);
  return s;
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status(Code::kUnavailable,
                    std::string("transform worker: write failed: ") + std::strerror(errno),
                    "WORKER_EXITED");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

namespace {

// Reads exactly `n` bytes into `out`.
Status ReadExactly(int fd, char* out, size_t n, int wait_ms) {
  while (n > 0) {
    if (wait_ms >= 0) {
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, wait_ms);
      if (r < 0) {
        if (errno == EINTR) continue;
        return Status(Code::kInternal, std::string("poll: ") + std::strerror(errno));
      }
      if (r == 0) {
        return Status(Code::kDeadlineExceeded, "transform worker: no answer in time",
                      "TRANSFORM_BUDGET_EXCEEDED");
      }
    }
    ssize_t got = ::read(fd, out, n);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status(Code::kUnavailable,
                    std::string("transform worker: read failed: ") + std::strerror(errno),
                    "WORKER_EXITED");
    }
    if (got == 0) return Status(Code::kUnavailable, "transform worker exited", "WORKER_EXITED");
    out += got;
    n -= static_cast<size_t>(got);
  }
  return Status::Ok();
}

}  // namespace

Status ReadFrame(int fd, std::string* payload, int wait_ms) {
  unsigned char len[4];
  Status st = ReadExactly(fd, reinterpret_cast<char*>(len), 4, wait_ms);
  if (!st.ok()) return st;
  const uint32_t n = uint32_t{len[0]} | uint32_t{len[1]} << 8 | uint32_t{len[2]} << 16 |
                     uint32_t{len[3]} << 24;
  if (n > kMaxFrameBytes) {
    return Status(Code::kDataLoss, "transform worker: frame of " + std::to_string(n) +
                                       " bytes is over the limit");
  }
  payload->resize(n);
  return ReadExactly(fd, payload->data(), n, wait_ms);
}

}  // namespace cachecar::transform::wire
