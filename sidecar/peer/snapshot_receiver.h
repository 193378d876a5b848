// SnapshotReceiver: takes a snapshot stream (from a peer or a file) apart, checks it, and
// leaves a store in a directory, ready to be installed.
//
// Checks, in order: the header comes first and once; its stream version and store format
// are this build's; the snapshot fits this sidecar (topic_settings.h); the data fits the
// disk; data chunks add up to exactly the size the header declares; the trailer comes last
// and its SHA-256 matches the data; the data opens as a store whose revision and positions
// are the header's; then it is made this sidecar's (store::AdoptStoreCopy). Nothing is
// installed here, nor synced to disk (the installer decides how the data becomes durable):
// on any failure the caller removes the directory.
//
// Not thread-safe; one stream per receiver.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cachecar/v1/snapshot.pb.h"
#include "common/status.h"
#include "peer/topic_settings.h"
#include "store/store_file.h"

namespace cachecar::peer {

// A snapshot file: these 8 bytes, then each StreamSnapshotResponse as a varint length and
// the message.
inline constexpr char kSnapshotFileMagic[] = "CCSNAP01";
inline constexpr size_t kSnapshotFileMagicBytes = 8;
// The largest message a stream or file may carry (data chunks are 256 KiB at most).
inline constexpr size_t kMaxSnapshotMessageBytes = 8u << 20;
inline constexpr uint32_t kSnapshotStreamVersion = 1;

class SnapshotReceiver {
 public:
  // `dir`: an existing empty directory for the data file. `mine`: this sidecar's topics.
  SnapshotReceiver(std::string dir, std::vector<LocalTopic> mine);
  ~SnapshotReceiver();
  SnapshotReceiver(const SnapshotReceiver&) = delete;
  SnapshotReceiver& operator=(const SnapshotReceiver&) = delete;

  // The next message. Errors: DATA_LOSS (SNAPSHOT_CORRUPT) for a stream out of order or
  // larger than declared; FAILED_PRECONDITION (PEER_INCOMPATIBLE, SNAPSHOT_INCOMPATIBLE)
  // for a header that does not fit; RESOURCE_EXHAUSTED (DISK_FULL); INTERNAL for I/O.
  Status Add(const v1::StreamSnapshotResponse& message);

  // After the trailer: the checks that need the whole data, then the adoption. Returns
  // what the store holds. Errors as Add, and DATA_LOSS (SNAPSHOT_CORRUPT) for a checksum
  // or content mismatch or a stream that ended early.
  Result<store::StoreFacts> Finish();

  // Data bytes received so far.
  uint64_t bytes() const { return received_; }

 private:
  std::string dir_;
  std::vector<LocalTopic> mine_;
  v1::SnapshotHeader header_;
  bool have_header_ = false;
  bool have_trailer_ = false;
  std::string sha256_hex_;  // the trailer's
  uint64_t received_ = 0;
  int fd_ = -1;
  EVP_MD_CTX* sha_ = nullptr;
};

// Reads a snapshot file into a receiver. Errors as SnapshotReceiver, and INVALID_ARGUMENT
// for a file that cannot be read or is not a snapshot file.
Result<store::StoreFacts> ReceiveSnapshotFile(const std::string& path, SnapshotReceiver* receiver);

}  // namespace cachecar::peer
