// Bootstrap: filling an empty store at start from a snapshot (a file, or a ready peer)
// instead of replaying every topic from Kafka (README "Bootstrap from a peer").
//
// Order: bootstrap.from_file, then each address of each of bootstrap.peers (a name's
// addresses in random order, so new pods spread over the peers). A peer is asked first
// whether it is ready and fits (DescribeSnapshot, within connect_timeout_ms), then streams
// its snapshot into a private directory of the store's volume (SnapshotReceiver checks it);
// only a snapshot that passed every check is moved into place, by one rename of its file
// into the store directory. Any failure (no answer, not ready, busy, incompatible, corrupt,
// the peer dying mid-transfer, a kill of this process) leaves no store behind, and the
// next source is tried; after the last, the store stays empty and the topics are replayed
// from Kafka. A store that is already there is never touched.
//
// Runs on the starting thread, before the store is opened.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "peer/peer_stats.h"
#include "peer/topic_settings.h"

namespace cachecar::peer {

struct BootstrapResult {
  // existing (a store was there), file, peer, or kafka (none worked, or none configured).
  std::string source;
  std::string from;  // the file, or the peer's address
  uint64_t bytes = 0;
  uint64_t revision = 0;
};

// Never fails: each failed attempt is logged and counted (cachecar_bootstrap_attempts_total)
// and the next is tried. `mine`: this sidecar's topics and fingerprints.
BootstrapResult Bootstrap(const config::Config& config, const std::vector<LocalTopic>& mine,
                          const PeerStats* stats);

// Removes what a killed bootstrap left in the store's directory. Bootstrap() calls it.
void RemoveStaleBootstrapDirs(const std::string& store_dir);

}  // namespace cachecar::peer
