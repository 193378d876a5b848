// Metrics of snapshots served to peers and of this sidecar's own bootstrap.
#pragma once

#include "metrics/stats.h"

namespace cachecar::peer {

#define CACHECAR_PEER_METRICS(COUNTER, GAUGE, COUNTER_FAMILY, GAUGE_FAMILY, HISTOGRAM_FAMILY) \
  GAUGE(transfers_active, "cachecar_snapshot_transfers_active",                              \
        "Snapshots being sent to peers now.")                                                \
  COUNTER_FAMILY(transfers, "cachecar_snapshot_transfers_total",                            \
                 "Snapshot transfers asked of this sidecar, by result (complete, busy, "     \
                 "not_ready, unauthenticated, cancelled, failed).")                          \
  COUNTER(sent_bytes, "cachecar_snapshot_sent_bytes_total",                                  \
          "Snapshot data bytes sent to peers.")                                              \
  COUNTER_FAMILY(bootstrap_attempts, "cachecar_bootstrap_attempts_total",                    \
                 "Attempts to fill the empty store at start, by source (file, peer) and "    \
                 "result (installed, unreachable, not_ready, busy, incompatible, corrupt, "  \
                 "failed).")                                                                  \
  GAUGE_FAMILY(bootstrap_source, "cachecar_bootstrap_source",                                \
               "1 for how this process's store was filled at start: existing (the store "    \
               "was there), file, peer, or kafka (replayed from the topics).")               \
  GAUGE(bootstrap_seconds, "cachecar_bootstrap_duration_seconds",                            \
        "Time the bootstrap at start took, all attempts included.")                          \
  GAUGE(bootstrap_bytes, "cachecar_bootstrap_bytes",                                         \
        "Data bytes of the snapshot the store was filled from (0 if none).")

CACHECAR_STATS_STRUCT(PeerStats, CACHECAR_PEER_METRICS);

// Every labelled series whose labels are known, at 0, so alerts need no `or vector(0)`.
inline void ExportPeerSeries(const PeerStats& stats) {
  for (const char* r :
       {"complete", "busy", "not_ready", "unauthenticated", "cancelled", "failed"}) {
    stats.transfers->Add({{"result", r}});
  }
  for (const char* source : {"file", "peer"}) {
    for (const char* r : {"installed", "unreachable", "not_ready", "busy", "incompatible",
                          "corrupt", "failed"}) {
      stats.bootstrap_attempts->Add({{"source", source}, {"result", r}});
    }
  }
}

}  // namespace cachecar::peer
