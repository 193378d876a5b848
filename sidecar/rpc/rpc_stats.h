// Every metric the RPC layer exports, in one table (metrics/stats.h).
#pragma once

#include "metrics/stats.h"

namespace cachecar::rpc {

#define CACHECAR_RPC_METRICS(COUNTER, GAUGE, COUNTER_FAMILY, GAUGE_FAMILY, HISTOGRAM_FAMILY)  \
  HISTOGRAM_FAMILY(duration, "cachecar_rpc_duration_seconds",                                 \
                   "Time to handle an RPC, by method and status code.")                       \
  COUNTER_FAMILY(requests, "cachecar_rpc_requests_total",                                     \
                 "RPCs handled, by method and status code.")

// The CacheService's.
CACHECAR_STATS_STRUCT(RpcStats, CACHECAR_RPC_METRICS);

#define CACHECAR_WRITE_METRICS(COUNTER, GAUGE, COUNTER_FAMILY, GAUGE_FAMILY, HISTOGRAM_FAMILY) \
  HISTOGRAM_FAMILY(apply_duration, "cachecar_write_apply_duration_seconds",                   \
                   "Put/Delete from arrival until its record was applied locally (writes "    \
                   "that wait for it), by topic.")                                         \
  HISTOGRAM_FAMILY(stage_duration, "cachecar_write_stage_duration_seconds",                   \
                   "A Put/Delete's time in each stage, by topic and stage: check (arrival to "  \
                   "produce: validation), ack (produce to the broker's acknowledgement), "     \
                   "apply (acknowledgement to applied locally, for writes that wait for it).")

// The WriteHandler's.
CACHECAR_STATS_STRUCT(WriteStats, CACHECAR_WRITE_METRICS);

}  // namespace cachecar::rpc
