// Serving snapshots of the store to peers (README "Bootstrap from a peer").
//
// SnapshotSource makes each snapshot: a compacted copy of the store in a private temporary
// directory of the store's volume (store::Store::CopyTo: one read transaction, at disk
// speed), unlinked as soon as it is open, then sent in 256 KiB chunks at most
// max_bytes_per_second, with a header (what it holds) and a trailer (SHA-256). The copy,
// not the live store, is what the peer's pace holds: no read transaction waits on the
// network. At most max_transfers at once; each costs one copy's disk space while it runs.
//
// SnapshotService is the gRPC adapter: one per listener (peers.listen with peers.token,
// the sidecar's own address with grpc.auth_token), sharing one SnapshotSource and its
// limits. Synchronous handlers: a transfer occupies one of gRPC's threads, never the
// completion queues of the CacheService.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cachecar/v1/snapshot.grpc.pb.h"
#include "common/status.h"
#include "peer/peer_stats.h"
#include "peer/topic_settings.h"

namespace cachecar::store { class Store; }

namespace cachecar::peer {

struct SnapshotSourceOptions {
  // Directory copies are made in (the store's own, so they are on its volume). Temporary
  // directories named snapshot-* in it belong to this class (RemoveStaleCopies).
  std::string work_dir;
  uint32_t max_transfers = 2;
  uint64_t max_bytes_per_second = 100ull << 20;
};

class SnapshotSource {
 public:
  // Not owned; all outlive this. `ready`: whether the sidecar is caught up. `topics`: this
  // sidecar's topics with their fingerprints now.
  SnapshotSource(SnapshotSourceOptions options, const store::Store* store,
                 std::function<bool()> ready, std::function<std::vector<LocalTopic>()> topics,
                 const PeerStats* stats);

  v1::DescribeSnapshotResponse Describe() const;

  // Sends one snapshot through `write` (false: the receiver went away), checking
  // `cancelled` between chunks. Errors: UNAVAILABLE (CACHE_NOT_READY), RESOURCE_EXHAUSTED
  // (TOO_MANY_TRANSFERS), CANCELLED, INTERNAL (SNAPSHOT_FAILED).
  Status Stream(const std::function<bool(const v1::StreamSnapshotResponse&)>& write,
                const std::function<bool()>& cancelled);

  // Removes copies a killed process left in work_dir. Call before serving.
  static void RemoveStaleCopies(const std::string& work_dir);

 private:
  Status StreamCopy(const std::function<bool(const v1::StreamSnapshotResponse&)>& write,
                    const std::function<bool()>& cancelled);

  const SnapshotSourceOptions options_;
  const store::Store* store_;
  const std::function<bool()> ready_;
  const std::function<std::vector<LocalTopic>()> topics_;
  const PeerStats* stats_;
  std::atomic<uint32_t> active_{0};
};

class SnapshotService final : public v1::SnapshotService::Service {
 public:
  // `token`: what callers must present ("authorization: Bearer <token>"); empty: nothing.
  SnapshotService(SnapshotSource* source, std::string token, const PeerStats* stats);

  grpc::Status DescribeSnapshot(grpc::ServerContext* ctx, const v1::DescribeSnapshotRequest* req,
                                v1::DescribeSnapshotResponse* resp) override;
  grpc::Status StreamSnapshot(grpc::ServerContext* ctx, const v1::StreamSnapshotRequest* req,
                              grpc::ServerWriter<v1::StreamSnapshotResponse>* writer) override;

 private:
  SnapshotSource* source_;
  const std::string token_;
  const PeerStats* stats_;
};

}  // namespace cachecar::peer
