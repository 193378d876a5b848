// The frames cachecar and its transform worker exchange over one socket (sandbox.h,
// worker.h). A frame is a little-endian u32 length and that many bytes; inside, fields are
// fixed-width little-endian integers and length-prefixed strings, in the order the
// messages below list them:
//
//   sidecar -> worker                         worker -> sidecar
//   'C' n, n x filter code                    'c' n x (u8 ok, error)
//   'B' max_output u32, flush_each u8, n,     'r' k, k x (u8 Outcome, text), as many
//       n x (filter u32, key, value,              frames as it takes to answer all n
//       partition i32, offset i64,               (flushed every kFlushBytes or
//       timestamp i64, headers)                   kFlushInterval, or each one)
//
// Both sides read a frame whole before acting on it. A malformed frame ends the
// conversation (the sidecar then kills the worker); nothing in it is trusted further.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace cachecar::transform::wire {

// Largest frame either side accepts.
constexpr uint32_t kMaxFrameBytes = 512u << 20;

class Writer {
 public:
  void U8(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Fixed(v, 4); }
  void I32(int32_t v) { Fixed(static_cast<uint32_t>(v), 4); }
  void I64(int64_t v) { Fixed(static_cast<uint64_t>(v), 8); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    buf_.append(s);
  }
  void Raw(std::string_view s) { buf_.append(s); }
  // The payload written so far, without a length prefix. Resets the writer.
  std::string Take() {
    std::string s = std::move(buf_);
    buf_.clear();
    return s;
  }
  // The frame: length prefix and payload. Resets the writer.
  std::string Frame();
  size_t size() const { return buf_.size(); }

 private:
  void Fixed(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) buf_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string buf_;
};

// Reads a frame's payload; any read past its end sets failed() and returns zeros.
class Reader {
 public:
  explicit Reader(std::string_view payload) : in_(payload) {}
  uint8_t U8() { return static_cast<uint8_t>(Fixed(1)); }
  uint32_t U32() { return static_cast<uint32_t>(Fixed(4)); }
  int32_t I32() { return static_cast<int32_t>(static_cast<uint32_t>(Fixed(4))); }
  int64_t I64() { return static_cast<int64_t>(Fixed(8)); }
  std::string_view Str();
  bool failed() const { return failed_; }
  bool done() const { return in_.empty(); }

 private:
  uint64_t Fixed(int bytes);
  std::string_view in_;
  bool failed_ = false;
};

// Writes all of `data` to `fd` (a socket: MSG_NOSIGNAL, so a dead peer is an error, not
// SIGPIPE), retrying short writes and EINTR.
Status WriteAll(int fd, std::string_view data);

// Reads one frame from `fd` into `payload`. `wait_ms` < 0 waits forever; otherwise no byte
// arriving for that long is DEADLINE_EXCEEDED. End of stream is UNAVAILABLE with reason
// "WORKER_EXITED"; a frame over kMaxFrameBytes, DATA_LOSS.
Status ReadFrame(int fd, std::string* payload, int deadline_ms);

}  // namespace cachecar::transform::wire
